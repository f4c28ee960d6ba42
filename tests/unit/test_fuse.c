/*
 * test_fuse.c: the pattern fusions of runtime/fuse.c and the private
 * operators they make (lm.Act, lm.LayerNormChannels, lm.SqueezeExcite).
 *
 * Each graph is built twice by hand and run on the same input, once as it
 * is (no_fuse) and once fused: the outputs agree to 1e-5 of their scale,
 * and the fused graph holds exactly the ops expected, so a pattern that
 * stopped matching fails here even though its results would stay right.
 * Sizes are odd (13 and 20 channels, 7x9 and 17x19 planes, batch 2) so
 * that no count is a whole number of vectors, and 17x19 = 323 pixels
 * crosses lm.LayerNormChannels' 256-pixel blocks.  Hand-made private
 * nodes with wrong shapes or attributes are refused by name.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "lamina/runtime.h"
#include "testgraph.h"

#include "../../runtime/ops/kernel.h"

typedef void (*build_fn)(lm_graph *g);

static unsigned seed_of(const char *s)
{
	unsigned h = 2166136261u;
	while (*s)
		h = (h ^ (unsigned char)*s++) * 16777619u;
	return h;
}

/* A float initializer of uniform values in [lo, hi), seeded by its name. */
static void init(lm_graph *g, const char *name, int rank, const int64_t *dims,
		 float lo, float hi)
{
	size_t n = (size_t)lm_shape_numel(rank, dims);
	float *d = malloc(n * sizeof(float));
	unsigned s = seed_of(name);
	for (size_t i = 0; i < n; i++) {
		s = s * 1103515245u + 12345u;
		d[i] = lo + (hi - lo) * (float)(s >> 8 & 0xffff) / 65536.0f;
	}
	tg_init(g, name, LM_DT_FLOAT, rank, dims, d);
	free(d);
}

static void scalar(lm_graph *g, const char *name, float v)
{
	tg_init(g, name, LM_DT_FLOAT, 0, NULL, &v);
}

static lm_node *op1(lm_graph *g, const char *op, const char *a,
		    const char *y)
{
	const char *in[] = { a };
	return tg_node(g, y, op, in, 1, &y, 1);
}

static lm_node *op2(lm_graph *g, const char *op, const char *a,
		    const char *b, const char *y)
{
	const char *in[] = { a, b };
	return tg_node(g, y, op, in, 2, &y, 1);
}

static lm_node *op3(lm_graph *g, const char *op, const char *a,
		    const char *b, const char *c, const char *y)
{
	const char *in[] = { a, b, c };
	return tg_node(g, y, op, in, 3, &y, 1);
}

/* x [2, 8, h, w] -> Conv 3x3 (pads 1) -> "c" [2, ch, h, w] */
static void conv_stem(lm_graph *g, int64_t ch, int64_t h, int64_t w)
{
	int64_t xd[4] = { 2, 8, h, w }, wd[4] = { ch, 8, 3, 3 };
	int64_t pads[4] = { 1, 1, 1, 1 };
	tg_input(g, "x", LM_DT_FLOAT, 4, xd);
	init(g, "cw", 4, wd, -0.3f, 0.3f);
	init(g, "cb", 1, &ch, -0.5f, 0.5f);
	tg_attr_is(op3(g, "Conv", "x", "cw", "cb", "c"), "pads", pads, 4);
}

struct outcome {
	float *y;
	size_t n;
	char ops[256];          /* the fused graph's op types, comma-joined */
};

static int run(build_fn build, int fuse, struct outcome *o)
{
	lm_graph *g = tg_graph(17);
	lm_session_options opt = { .no_fuse = !fuse };
	lm_session *s = NULL;
	lm_error e;
	lm_tensor x = { 0 }, y = { 0 };
	int rc = -1;

	build(g);
	lm_graph_add_output(g, lm_graph_find(g, "y"));
	if (lm_graph_sort(g, &e) || lm_graph_infer_shapes(g, &e) ||
	    lm_session_create(g, &opt, &s, &e)) {
		printf("# %s\n", e.msg);
		goto out;
	}
	lm_value *xv = &g->values[g->inputs[0]];
	lm_value *yv = &g->values[g->outputs[0]];
	lm_tensor_alloc(&x, LM_DT_FLOAT, xv->rank, xv->dims);
	lm_tensor_alloc(&y, LM_DT_FLOAT, yv->rank, yv->dims);
	size_t nx = (size_t)lm_shape_numel(xv->rank, xv->dims);
	for (size_t i = 0; i < nx; i++)
		((float *)x.data)[i] = 2.0f * sinf(0.37f * (float)i + 0.1f);
	if (lm_session_run(s, &x, 1, &y, 1, &e)) {
		printf("# %s\n", e.msg);
		goto out;
	}
	o->n = (size_t)lm_shape_numel(yv->rank, yv->dims);
	o->y = malloc(o->n * sizeof(float));
	memcpy(o->y, y.data, o->n * sizeof(float));
	o->ops[0] = 0;
	for (int i = 0; i < g->n_nodes; i++) {
		size_t len = strlen(o->ops);
		snprintf(o->ops + len, sizeof(o->ops) - len, "%s%s",
			 i ? "," : "", g->nodes[i].op_type);
	}
	rc = 0;
out:
	lm_tensor_free(&x);
	lm_tensor_free(&y);
	lm_session_free(s);
	lm_graph_free(g);
	return rc;
}

/* Fused and unfused agree to tol of the output's scale, and the fused
 * graph's ops are `ops`. */
static int same_as_unfused(build_fn build, const char *ops, double tol)
{
	struct outcome a = { 0 }, b = { 0 };
	int ok = run(build, 0, &a) == 0 && run(build, 1, &b) == 0 &&
		 a.n == b.n;
	double diff = 0, scale = 0;
	for (size_t i = 0; ok && i < a.n; i++) {
		diff = fmax(diff, fabs((double)a.y[i] - b.y[i]));
		scale = fmax(scale, fabs((double)a.y[i]));
	}
	if (ok && strcmp(b.ops, ops)) {
		printf("# fused ops %s, expected %s\n", b.ops, ops);
		ok = 0;
	}
	if (ok && !(diff <= tol * scale && scale > 1e-3)) {
		printf("# max|diff| %g, max|y| %g\n", diff, scale);
		ok = 0;
	}
	free(a.y);
	free(b.y);
	return ok;
}

/* ---- activations ---- */

static void hardswish_after_conv(lm_graph *g)
{
	conv_stem(g, 13, 7, 9);
	tg_attr_f(op1(g, "HardSigmoid", "c", "h"), "alpha", 1.0f / 6.0f);
	op2(g, "Mul", "c", "h", "y");
}

static void silu_alone(lm_graph *g)
{
	int64_t d[3] = { 3, 5, 11 };
	tg_input(g, "x", LM_DT_FLOAT, 3, d);
	op1(g, "Sigmoid", "x", "s");
	op2(g, "Mul", "s", "x", "y");
}

/* torch's erf GELU: (x (1 + erf(x / sqrt 2))) 0.5 */
static void gelu_erf_after_conv(lm_graph *g)
{
	conv_stem(g, 13, 7, 9);
	scalar(g, "k", 1.41421356f);
	scalar(g, "one", 1.0f);
	scalar(g, "half", 0.5f);
	op2(g, "Div", "c", "k", "d");
	op1(g, "Erf", "d", "e");
	op2(g, "Add", "e", "one", "a");
	op2(g, "Mul", "c", "a", "m");
	op2(g, "Mul", "m", "half", "y");
}

/* tanh GELU, 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
static void gelu_tanh_alone(lm_graph *g)
{
	int64_t d[4] = { 1, 20, 5, 3 };
	tg_input(g, "x", LM_DT_FLOAT, 4, d);
	scalar(g, "kappa", 0.044715f);
	scalar(g, "beta", 0.7978845608f);
	scalar(g, "one", 1.0f);
	scalar(g, "half", 0.5f);
	op2(g, "Mul", "x", "x", "sq");
	op2(g, "Mul", "x", "sq", "cu");
	op2(g, "Mul", "kappa", "cu", "kc");
	op2(g, "Add", "x", "kc", "u");
	op2(g, "Mul", "beta", "u", "in");
	op1(g, "Tanh", "in", "t");
	op2(g, "Add", "one", "t", "a");
	op2(g, "Mul", "half", "x", "h");
	op2(g, "Mul", "h", "a", "y");
}

/* a transformer's Linear then GELU: MatMul [2, 9, 24] x [24, 40] + bias,
 * the Gelu op (opset 20) */
static void linear_gelu(lm_graph *g)
{
	int64_t xd[3] = { 2, 9, 24 }, wd[2] = { 24, 40 }, bd = 40;
	tg_input(g, "x", LM_DT_FLOAT, 3, xd);
	init(g, "w", 2, wd, -0.4f, 0.4f);
	init(g, "b", 1, &bd, -0.5f, 0.5f);
	op2(g, "MatMul", "x", "w", "m");
	op2(g, "Add", "b", "m", "h");
	tg_attr_s(op1(g, "Gelu", "h", "y"), "approximate", "none");
}

/* DenseNet's BN -> Relu on a tensor no conv made */
static void bn_relu(lm_graph *g)
{
	int64_t xd[4] = { 2, 13, 7, 9 }, c = 13;
	tg_input(g, "x", LM_DT_FLOAT, 4, xd);
	init(g, "s", 1, &c, 0.5f, 1.5f);
	init(g, "bb", 1, &c, -0.5f, 0.5f);
	init(g, "m", 1, &c, -0.5f, 0.5f);
	init(g, "v", 1, &c, 0.5f, 2.0f);
	const char *in[] = { "x", "s", "bb", "m", "v" }, *out = "n";
	tg_node(g, "bn", "BatchNormalization", in, 5, &out, 1);
	op1(g, "Relu", "n", "y");
}

TEST(activation_patterns)
{
	CHECK(same_as_unfused(bn_relu, "BatchNormalization", 1e-6));
	CHECK(same_as_unfused(linear_gelu, "MatMul", 1e-5));
	CHECK(same_as_unfused(hardswish_after_conv, "Conv", 1e-5));
	CHECK(same_as_unfused(silu_alone, "lm.Act", 1e-5));
	CHECK(same_as_unfused(gelu_erf_after_conv, "Conv", 1e-5));
	CHECK(same_as_unfused(gelu_tanh_alone, "Gelu", 1e-5));
}

/* The epilogue kernels against double-precision formulas, over values
 * from -12 to 12 (odd count, so the vector loops' tails run too), to
 * 1e-6 of max(1, |y|), 1.5e-6 for the erf GELU of epilogues
 * (vm_gelu_fast: its negative tail is right in absolute terms only, see
 * act.h; 9.7e-7 at worst over 2e6 points). */
TEST(epilogue_gelu_and_hardswish)
{
	enum { N = 20001 };
	static float y[N];
	for (int act = LM_ACT_HARD_SWISH; act <= LM_ACT_GELU_TANH; act++) {
		if (act != LM_ACT_HARD_SWISH && act != LM_ACT_GELU &&
		    act != LM_ACT_GELU_TANH)
			continue;
		for (int i = 0; i < N; i++)
			y[i] = -12.0f + 24.0f * (float)i / (N - 1);
		lm_epilogue ep = { (enum lm_act)act, 0.2f, 0.4f, -1 };
		lm_epilogue_apply(&ep, y, NULL, N);
		double worst = 0;
		for (int i = 0; i < N; i++) {
			/* the float the kernel saw */
			double x = (float)(-12.0f + 24.0f * (float)i / (N - 1));
			double r;
			if (act == LM_ACT_HARD_SWISH)
				r = x * fmin(1, fmax(0, 0.2 * x + 0.4));
			else if (act == LM_ACT_GELU)
				r = 0.5 * x * (1 + erf(x / sqrt(2.0)));
			else
				r = 0.5 * x * (1 + tanh(sqrt(2 / M_PI) *
							(x + 0.044715 * x * x * x)));
			worst = fmax(worst, fabs(y[i] - r) / fmax(1, fabs(r)));
		}
		printf("# act %d worst %g\n", act, worst);
		CHECK(worst < (act == LM_ACT_GELU ? 1.5e-6 : 1e-6));
	}
	CHECK(!strcmp(lm_act_name(LM_ACT_GELU), "Gelu"));
	CHECK(!strcmp(lm_act_name(LM_ACT_COUNT), "?"));
}

/* ---- layer norms ---- */

/* LayerNorm written out over `axis` of c [2, 13, h, w]. */
static void layernorm_body(lm_graph *g, int64_t axis, int64_t h, int64_t w)
{
	int64_t cd[3] = { 13, 1, 1 }, ld[1] = { w };
	int channels = axis == 1;
	conv_stem(g, 13, h, w);
	scalar(g, "two", 2.0f);
	scalar(g, "eps", 1e-5f);
	init(g, "gamma", channels ? 3 : 1, channels ? cd : ld, 0.5f, 1.5f);
	init(g, "beta", channels ? 3 : 1, channels ? cd : ld, -0.5f, 0.5f);
	tg_attr_is(op1(g, "ReduceMean", "c", "mu"), "axes", &axis, 1);
	op2(g, "Sub", "c", "mu", "d");
	op2(g, "Pow", "d", "two", "p");
	tg_attr_is(op1(g, "ReduceMean", "p", "var"), "axes", &axis, 1);
	op2(g, "Add", "var", "eps", "ve");
	op1(g, "Sqrt", "ve", "sd");
	op2(g, "Div", "d", "sd", "n");
	op2(g, "Mul", "n", "gamma", "gm");
	op2(g, "Add", "gm", "beta", "y");
}

static void layernorm_channels_small(lm_graph *g)
{
	layernorm_body(g, 1, 7, 9);
}

static void layernorm_channels_blocks(lm_graph *g)
{
	layernorm_body(g, 1, 17, 19);
}

static void layernorm_last(lm_graph *g)
{
	layernorm_body(g, -1, 7, 9);
}

/* ConvNeXt's block in miniature, channels last between two Transposes:
 * LayerNorm (an ONNX op here), Linear, GELU, Linear, then layer scale and
 * the residual. */
static void convnext_block(lm_graph *g)
{
	int64_t c = 13, xd[4] = { 2, 13, 7, 9 }, f1[2] = { 13, 40 };
	int64_t f2[2] = { 40, 13 }, b1 = 40, sd[3] = { 13, 1, 1 };
	int64_t to_last[4] = { 0, 2, 3, 1 }, to_first[4] = { 0, 3, 1, 2 };
	tg_input(g, "x", LM_DT_FLOAT, 4, xd);
	init(g, "g", 1, &c, 0.5f, 1.5f);
	init(g, "b", 1, &c, -0.2f, 0.2f);
	init(g, "w1", 2, f1, -0.3f, 0.3f);
	init(g, "b1", 1, &b1, -0.2f, 0.2f);
	init(g, "w2", 2, f2, -0.2f, 0.2f);
	init(g, "b2", 1, &c, -0.2f, 0.2f);
	init(g, "ls", 3, sd, 0.2f, 0.6f);
	tg_attr_is(op1(g, "Transpose", "x", "t"), "perm", to_last, 4);
	tg_attr_f(op3(g, "LayerNormalization", "t", "g", "b", "n"), "epsilon",
		  1e-6f);
	op2(g, "MatMul", "n", "w1", "m1");
	op2(g, "Add", "b1", "m1", "h1");
	tg_attr_s(op1(g, "Gelu", "h1", "gl"), "approximate", "none");
	op2(g, "MatMul", "gl", "w2", "m2");
	op2(g, "Add", "m2", "b2", "h2");
	tg_attr_is(op1(g, "Transpose", "h2", "back"), "perm", to_first, 4);
	op2(g, "Mul", "back", "ls", "sc");
	op2(g, "Add", "x", "sc", "y");
}

TEST(layernorm_patterns)
{
	CHECK(same_as_unfused(layernorm_channels_small,
			      "Conv,lm.LayerNormChannels", 1e-5));
	CHECK(same_as_unfused(layernorm_channels_blocks,
			      "Conv,lm.LayerNormChannels", 1e-5));
	CHECK(same_as_unfused(layernorm_last, "Conv,LayerNormalization",
			      1e-5));
	/* LayerNorm over channels, two 1x1 Convs (Gelu and residual in
	 * their epilogues, the layer scale in the second's weights) */
	CHECK(same_as_unfused(convnext_block,
			      "lm.LayerNormChannels,Conv,Conv", 1e-5));
}

/* ---- squeeze-excitation ---- */

static void se_block(lm_graph *g, const char *gate)
{
	int64_t w1[4] = { 5, 20, 1, 1 }, w2[4] = { 20, 5, 1, 1 };
	int64_t r = 5, c = 20;
	conv_stem(g, 20, 7, 9);
	init(g, "w1", 4, w1, -0.5f, 0.5f);
	init(g, "b1", 1, &r, -0.2f, 0.2f);
	init(g, "w2", 4, w2, -0.5f, 0.5f);
	init(g, "b2", 1, &c, -0.2f, 0.2f);
	op1(g, "GlobalAveragePool", "c", "p");
	op3(g, "Conv", "p", "w1", "b1", "q");
	op1(g, "Relu", "q", "qa");
	op3(g, "Conv", "qa", "w2", "b2", "z");
	op1(g, gate, "z", "s");
	op2(g, "Mul", "c", "s", "y");
}

static void se_hardsigmoid(lm_graph *g)
{
	se_block(g, "HardSigmoid");
}

static void se_sigmoid(lm_graph *g)
{
	se_block(g, "Sigmoid");
}

TEST(squeeze_excitation)
{
	CHECK(same_as_unfused(se_hardsigmoid, "Conv,lm.SqueezeExcite", 1e-5));
	CHECK(same_as_unfused(se_sigmoid, "Conv,lm.SqueezeExcite", 1e-5));
}

/* A model may name the private operators itself: wrong shapes and
 * unknown activations are refused at session creation, by node. */
TEST(private_ops_check_their_inputs)
{
	int64_t xd[4] = { 1, 6, 3, 3 }, w1[4] = { 2, 6, 1, 1 };
	int64_t w2[4] = { 5, 2, 1, 1 };
	lm_graph *g = tg_graph(17);
	lm_session *s;
	lm_error e;
	tg_input(g, "x", LM_DT_FLOAT, 4, xd);
	init(g, "w1", 4, w1, -1, 1);
	init(g, "w2", 4, w2, -1, 1);
	const char *in[] = { "x", "w1", "", "w2", "" }, *out = "y";
	tg_node(g, "se", "lm.SqueezeExcite", in, 5, &out, 1);
	lm_graph_add_output(g, lm_graph_find(g, "y"));
	CHECK(lm_graph_sort(g, &e) == 0 && lm_graph_infer_shapes(g, &e) == 0);
	CHECK(lm_session_create(g, NULL, &s, &e) < 0);
	printf("# %s\n", e.msg);
	CHECK(strstr(e.msg, "'se'") && strstr(e.msg, "do not fit"));
	lm_graph_free(g);

	g = tg_graph(17);
	tg_input(g, "x", LM_DT_FLOAT, 4, xd);
	tg_attr_i(op1(g, "lm.Act", "x", "y"), "lm.act", 99);
	lm_graph_add_output(g, lm_graph_find(g, "y"));
	CHECK(lm_graph_sort(g, &e) == 0 && lm_graph_infer_shapes(g, &e) == 0);
	CHECK(lm_session_create(g, NULL, &s, &e) < 0);
	printf("# %s\n", e.msg);
	CHECK(strstr(e.msg, "'y'") && strstr(e.msg, "activation"));
	lm_graph_free(g);
}

int main(void)
{
	RUN(activation_patterns);
	RUN(epilogue_gelu_and_hardswish);
	RUN(layernorm_patterns);
	RUN(squeeze_excitation);
	RUN(private_ops_check_their_inputs);
	return harness_done();
}
