/*
 * test_conv_kernels.c: unit tests of the compute kernels behind Conv,
 * ConvTranspose, Gemm, MatMul and the pools (runtime/kernels/), each
 * implementation against a naive double-precision reference written here.
 *
 * A case builds a one-node graph through the lm_graph_* API (inputs and
 * constant initializers holding random data), infers shapes, optionally
 * adds the fused epilogue the way the fusion pass does (an extra sum input
 * and "lm.*" attributes), pins an implementation with "lm.impl", prepares
 * the kernel and runs it on tensors and scratch allocated here.  Results
 * must be within 1e-4 of the reference, relative to its largest magnitude.
 */
#include "lamina/graph.h"
#include "../../runtime/kernels/kernels.h"
#include "harness.h"
#include "testgraph.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOL 1e-4

/* ---- data ---- */

static uint64_t rng = 88172645463325252ull;

/* Uniform in [-1, 1), deterministic (xorshift). */
static float frand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static float *rand_floats(int64_t n)
{
	float *p = malloc((size_t)(n ? n : 1) * sizeof(float));
	for (int64_t i = 0; p && i < n; i++)
		p[i] = frand();
	return p;
}

static int64_t numel(int rank, const int64_t *dims)
{
	int64_t p = 1;
	for (int i = 0; i < rank; i++)
		p *= dims[i];
	return p;
}

/* ---- graph building ---- */

/* A float value of the given kind holding random data. */
static int value(lm_graph *g, const char *name, lm_value_kind kind,
		 int rank, const int64_t *dims)
{
	int v = lm_graph_add_value(g, name, kind, NULL);
	if (v < 0)
		return v;
	lm_value *x = &g->values[v];
	lm_value_set_shape(x, LM_DT_FLOAT, rank, dims);
	x->nbytes = lm_value_bytes(x);
	x->data = rand_floats(numel(rank, dims));
	if (kind == LM_VAL_INPUT)
		lm_graph_add_input(g, v);
	return x->data ? v : -ENOMEM;
}

/* One node writing the graph's output "y". */
static lm_node *node_y(lm_graph *g, const char *op, const char *const *in,
		       int nin)
{
	const char *out[] = { "y" };
	lm_node *n = tg_node(g, "n", op, in, nin, out, 1);
	if (n)
		lm_graph_add_output(g, n->outputs[0]);
	return n;
}

static int finish(lm_graph *g)
{
	lm_error e;
	int rc = lm_graph_sort(g, &e);
	if (!rc)
		rc = lm_graph_infer_shapes(g, &e);
	if (rc)
		printf("  graph: %s\n", e.msg);
	return rc;
}

/*
 * The fusion pass's epilogue: act with alpha/beta and, when `sum`, an
 * extra input "s" of the output's shape, appended after the op's inputs.
 * Must run after finish() (the output shape is needed).
 */
static int add_epilogue(lm_graph *g, int act, float alpha, float beta,
			int sum)
{
	lm_node *n = &g->nodes[0];
	if (act) {
		tg_attr_i(n, "lm.act", act);
		tg_attr_f(n, "lm.alpha", alpha);
		tg_attr_f(n, "lm.beta", beta);
	}
	if (!sum)
		return 0;
	lm_value *y = &g->values[n->outputs[0]];
	int64_t dims[LM_MAX_RANK];
	int rank = y->rank;
	memcpy(dims, y->dims, sizeof(dims));
	int v = value(g, "s", LM_VAL_INPUT, rank, dims);
	if (v < 0)
		return v;
	n = &g->nodes[0];
	int *in = realloc(n->inputs, sizeof(int) * (size_t)(n->n_inputs + 1));
	if (!in)
		return -ENOMEM;
	in[n->n_inputs] = v;
	n->inputs = in;
	tg_attr_i(n, "lm.sum", n->n_inputs);
	n->n_inputs++;
	return lm_graph_index(g);
}

/* ---- running a node ---- */

/*
 * Prepare node 0 with `impl` pinned ("" for the automatic choice) and run
 * it; *y receives output 0 (malloc'd).  Returns prepare's code (the run
 * itself cannot fail), and names the chosen kernel in *chosen.
 */
static int run_node(lm_graph *g, const char *impl, float **y,
		    const char **chosen)
{
	lm_node *n = &g->nodes[0];
	lm_error e = { "" };
	lm_kernel k;
	int rc;

	memset(&k, 0, sizeof(k));
	if (impl && impl[0])
		tg_attr_s(n, "lm.impl", impl);
	const lm_op *op = lm_op_find("", n->op_type);
	rc = op && op->prepare ? op->prepare(g, n, &k, &e) : -ENOSYS;
	/* take the pin off again for the next implementation */
	if (impl && impl[0])
		n->n_attrs--, free(n->attrs[n->n_attrs].name),
			free(n->attrs[n->n_attrs].s);
	if (rc) {
		if (k.free_state)
			k.free_state(k.state);
		if (rc != -ENOTSUP)
			printf("  prepare: %s\n", e.msg);
		return rc;
	}
	*chosen = k.impl;

	lm_tensor tin[8], tout;
	lm_tensor *pin[8], *pout = &tout;
	for (int i = 0; i < n->n_inputs; i++) {
		lm_value *v = lm_node_in(g, n, i);
		pin[i] = v ? &tin[i] : NULL;
		if (v)
			lm_value_as_tensor(v, &tin[i]);
	}
	lm_value *yv = lm_node_out(g, n, 0);
	lm_tensor_alloc(&tout, yv->dtype, yv->rank, yv->dims);
	/* poison the output: every element must be written */
	for (size_t i = 0; i < tout.nbytes / 4; i++)
		((float *)tout.data)[i] = NAN;
	void *scratch = k.scratch_bytes ? lm_kalloc(k.scratch_bytes) : NULL;
	lm_kargs a = {
		.node = n, .in = pin, .n_in = n->n_inputs, .out = &pout,
		.n_out = 1, .state = k.state, .scratch = scratch,
		.threads = 1,
	};
	rc = k.run(&a);
	free(scratch);
	if (k.free_state)
		k.free_state(k.state);
	*y = tout.data;
	return rc;
}

static float act_ref(int act, float alpha, float beta, double x)
{
	switch (act) {
	case LM_ACT_RELU: return (float)(x > 0 ? x : 0);
	case LM_ACT_CLIP: return (float)(x < alpha ? alpha : x > beta ? beta
								   : x);
	case LM_ACT_SIGMOID: return (float)(1.0 / (1.0 + exp(-x)));
	default: return (float)x;
	}
}

/* Apply the reference epilogue to ref in place (sum from value "s"). */
static void epilogue_ref(lm_graph *g, double *ref, int64_t n, int act,
			 float alpha, float beta)
{
	int sv = lm_graph_find(g, "s");
	const float *s = sv >= 0 ? g->values[sv].data : NULL;
	for (int64_t i = 0; i < n; i++)
		ref[i] = act_ref(act, alpha, beta, ref[i] + (s ? s[i] : 0));
}

/* The instruction set the kernels run with (lm_isa_cap), for messages. */
static const char *isa_name = "best";

/* 0 when |y - ref| <= TOL * max |ref| everywhere (NaN fails). */
static int compare(const float *y, const double *ref, int64_t n,
		   const char *what, const char *impl)
{
	double mx = 0, err = 0;
	int64_t at = 0;
	for (int64_t i = 0; i < n; i++)
		mx = fabs(ref[i]) > mx ? fabs(ref[i]) : mx;
	for (int64_t i = 0; i < n; i++) {
		double d = fabs((double)y[i] - ref[i]);
		if (!(d <= err)) {
			err = d;
			at = i;
		}
	}
	if (err <= TOL * (mx > 0 ? mx : 1))
		return 0;
	printf("  %s [%s, %s]: error %.3g at %lld (got %g, want %g), max "
	       "|ref| %.3g\n", what, impl, isa_name, err, (long long)at,
	       (double)y[at], ref[at], mx);
	return -1;
}

/* ---- Conv ---- */

struct conv_case {
	const char *name;
	int64_t n, c, h, w, m, kh, kw;
	int64_t sh, sw, dh, dw;
	int64_t pads[4];        /* top, left, bottom, right */
	int64_t group;
	int bias;
	const char *auto_pad;   /* NULL: explicit pads */
	int act, sum;
	int one_d;              /* rank 3: h and kh must be 1 */
	int w_input;            /* weight is a graph input, not a constant */
};

static void conv_ref(const struct conv_case *cc, const float *x,
		     const float *w, const float *b, int64_t oh, int64_t ow,
		     const int64_t *pads, double *y)
{
	int64_t cg = cc->c / cc->group, mg = cc->m / cc->group;
	for (int64_t n = 0; n < cc->n; n++)
	for (int64_t m = 0; m < cc->m; m++)
	for (int64_t oy = 0; oy < oh; oy++)
	for (int64_t ox = 0; ox < ow; ox++) {
		int64_t g = m / mg;
		double s = b ? b[m] : 0;
		for (int64_t c = 0; c < cg; c++)
		for (int64_t ky = 0; ky < cc->kh; ky++)
		for (int64_t kx = 0; kx < cc->kw; kx++) {
			int64_t iy = oy * cc->sh - pads[0] + ky * cc->dh;
			int64_t ix = ox * cc->sw - pads[1] + kx * cc->dw;
			if (iy < 0 || iy >= cc->h || ix < 0 || ix >= cc->w)
				continue;
			s += (double)x[((n * cc->c + g * cg + c) * cc->h + iy) *
				      cc->w + ix] *
			     w[((m * cg + c) * cc->kh + ky) * cc->kw + kx];
		}
		y[((n * cc->m + m) * oh + oy) * ow + ox] = s;
	}
}

static const char *const conv_impls[] = {
	"", "openblas", "sgemm", "sgemm-t", "winograd2", "winograd4",
	"direct", "grouped", "depthwise", "depthwise-generic",
	"depthwise-rows", "depthwise-blocked",
};

/* Whether pinning impl must succeed for this case. */
static int conv_impl_applies(const struct conv_case *cc, const char *impl)
{
	int fast = lm_have_avx512() && !cc->w_input;
	if (!impl[0] || !strcmp(impl, "openblas"))
		return 1;
	if (!strcmp(impl, "sgemm"))
		return fast;
	if (!strcmp(impl, "sgemm-t"))
		return fast && cc->kh == 1 && cc->kw == 1 && cc->group == 1 &&
		       !cc->pads[0] && !cc->pads[1] && !cc->pads[2] &&
		       !cc->pads[3];
	if (!strcmp(impl, "direct"))
		return !cc->w_input && cc->dh == 1 && cc->dw == 1;
	if (!strcmp(impl, "grouped"))
		return fast && cc->dh == 1 && cc->dw == 1 && cc->sw <= 2 &&
		       !cc->one_d && (cc->m / cc->group) % 16 == 0 &&
		       cc->m / cc->group <= 64;
	if (!strncmp(impl, "winograd", 8))
		return fast && cc->kh == 3 && cc->kw == 3 && cc->sh == 1 &&
		       cc->sw == 1 && cc->dh == 1 && cc->dw == 1 &&
		       cc->group == 1;
	int dw = cc->group == cc->c && cc->m == cc->c && cc->group > 1;
	if (!strcmp(impl, "depthwise-rows") ||
	    !strcmp(impl, "depthwise-blocked"))
		return dw && cc->kh == cc->kw &&
		       (cc->kh == 3 || cc->kh == 5 || cc->kh == 7) &&
		       cc->sh == cc->sw && (cc->sh == 1 || cc->sh == 2) &&
		       cc->dh == 1 && cc->dw == 1 && !cc->one_d;
	return dw;
}

/* Build, run with every implementation that applies, compare. */
static int conv_check(const struct conv_case *cc)
{
	lm_graph *g = lm_graph_create("conv");
	int rank = cc->one_d ? 3 : 4, fails = 0;
	int64_t xd[4] = { cc->n, cc->c, cc->h, cc->w };
	int64_t wd[4] = { cc->m, cc->c / cc->group, cc->kh, cc->kw };
	if (cc->one_d) {
		xd[2] = cc->w;
		wd[2] = cc->kw;
	}
	const char *in[3] = { "x", "w", "b" };
	value(g, "x", LM_VAL_INPUT, rank, xd);
	value(g, "w", cc->w_input ? LM_VAL_INPUT : LM_VAL_INITIALIZER, rank,
	      wd);
	if (cc->bias)
		value(g, "b", LM_VAL_INITIALIZER, 1, &cc->m);
	lm_node *n = node_y(g, "Conv", in, cc->bias ? 3 : 2);
	if (cc->one_d) {
		tg_attr_is(n, "strides", &cc->sw, 1);
		tg_attr_is(n, "dilations", &cc->dw, 1);
		int64_t p[2] = { cc->pads[1], cc->pads[3] };
		tg_attr_is(n, "pads", p, 2);
	} else {
		int64_t st[2] = { cc->sh, cc->sw }, dl[2] = { cc->dh, cc->dw };
		tg_attr_is(n, "strides", st, 2);
		tg_attr_is(n, "dilations", dl, 2);
		if (cc->auto_pad)
			tg_attr_s(n, "auto_pad", cc->auto_pad);
		else
			tg_attr_is(n, "pads", cc->pads, 4);
	}
	tg_attr_i(n, "group", cc->group);
	if (finish(g) || add_epilogue(g, cc->act, 0.0f, 0.5f, cc->sum)) {
		lm_graph_free(g);
		return -1;
	}

	/* The reference, with auto_pad's pads worked out here again. */
	lm_value *yv = &g->values[g->nodes[0].outputs[0]];
	int64_t oh = cc->one_d ? 1 : yv->dims[2], ow = yv->dims[rank - 1];
	int64_t pads[4];
	memcpy(pads, cc->pads, sizeof(pads));
	if (cc->auto_pad) {
		int64_t out[2] = { oh, ow }, in_[2] = { cc->h, cc->w };
		int64_t k[2] = { cc->kh, cc->kw }, s[2] = { cc->sh, cc->sw };
		int64_t d[2] = { cc->dh, cc->dw };
		for (int i = 0; i < 2; i++) {
			int64_t tot = (out[i] - 1) * s[i] + (k[i] - 1) * d[i] +
				      1 - in_[i];
			tot = tot < 0 ? 0 : tot;
			pads[i] = !strcmp(cc->auto_pad, "SAME_UPPER")
				  ? tot / 2 : !strcmp(cc->auto_pad, "VALID")
				  ? 0 : tot - tot / 2;
		}
	}
	if (cc->one_d)
		pads[0] = 0;
	int64_t ny = numel(yv->rank, yv->dims);
	double *ref = malloc(sizeof(double) * (size_t)ny);
	int bv = lm_graph_find(g, "b");
	conv_ref(cc, g->values[lm_graph_find(g, "x")].data,
		 g->values[lm_graph_find(g, "w")].data,
		 bv >= 0 ? g->values[bv].data : NULL, oh, ow, pads, ref);
	epilogue_ref(g, ref, ny, cc->act, 0.0f, 0.5f);

	for (size_t i = 0; i < sizeof(conv_impls) / sizeof(conv_impls[0]);
	     i++) {
		const char *impl = conv_impls[i], *chosen = "";
		float *y = NULL;
		int applies = conv_impl_applies(cc, impl);
		int rc = run_node(g, impl, &y, &chosen);
		if (!applies) {
			if (rc != -ENOTSUP) {
				printf("  %s [%s]: pinning should fail, got "
				       "%d\n", cc->name, impl, rc);
				fails++;
			}
		} else if (rc) {
			printf("  %s [%s]: prepare failed (%d)\n", cc->name,
			       impl, rc);
			fails++;
		} else {
			fails += compare(y, ref, ny, cc->name, chosen) != 0;
		}
		free(y);
	}
	free(ref);
	lm_graph_free(g);
	return fails ? -1 : 0;
}

#define CONV(...) ((struct conv_case){ __VA_ARGS__ })
#define S1 .sh = 1, .sw = 1, .dh = 1, .dw = 1
#define CHECK_CONV(...) CHECK(conv_check(&CONV(__VA_ARGS__)) == 0)

TEST(conv_3x3_plain)
{
	CHECK_CONV(.name = "3x3 p1", .n = 1, .c = 16, .h = 12, .w = 12,
		   .m = 32, .kh = 3, .kw = 3, S1, .pads = { 1, 1, 1, 1 },
		   .group = 1, .bias = 1);
	/* K over one K block (576 > 384) and N over one N block */
	CHECK_CONV(.name = "3x3 64ch 20x20", .n = 1, .c = 64, .h = 20,
		   .w = 20, .m = 40, .kh = 3, .kw = 3, S1,
		   .pads = { 1, 1, 1, 1 }, .group = 1, .bias = 1);
	/* output channels not a multiple of the 8-row sliver */
	CHECK_CONV(.name = "3x3 m=17", .n = 1, .c = 8, .h = 9, .w = 11,
		   .m = 17, .kh = 3, .kw = 3, S1, .pads = { 1, 1, 1, 1 },
		   .group = 1, .bias = 1);
}

TEST(conv_odd_channels)
{
	static const int64_t cs[] = { 3, 5, 17 };
	for (int i = 0; i < 3; i++) {
		CHECK_CONV(.name = "odd c", .n = 1, .c = cs[i], .h = 7,
			   .w = 10, .m = cs[(i + 1) % 3], .kh = 3, .kw = 3, S1,
			   .pads = { 1, 1, 1, 1 }, .group = 1, .bias = 1);
	}
}

TEST(conv_tiny_images)
{
	CHECK_CONV(.name = "1x1 image 1x1 kernel", .n = 1, .c = 5, .h = 1,
		   .w = 1, .m = 7, .kh = 1, .kw = 1, S1, .group = 1,
		   .bias = 1);
	CHECK_CONV(.name = "1x1 image 3x3 kernel", .n = 1, .c = 5, .h = 1,
		   .w = 1, .m = 7, .kh = 3, .kw = 3, S1,
		   .pads = { 1, 1, 1, 1 }, .group = 1, .bias = 1);
	CHECK_CONV(.name = "2x3 image", .n = 1, .c = 17, .h = 2, .w = 3,
		   .m = 33, .kh = 3, .kw = 3, S1, .pads = { 1, 1, 1, 1 },
		   .group = 1, .bias = 0);
}

TEST(conv_pads)
{
	CHECK_CONV(.name = "pads larger than kernel", .n = 1, .c = 4, .h = 5,
		   .w = 6, .m = 6, .kh = 3, .kw = 3, S1,
		   .pads = { 4, 4, 4, 4 }, .group = 1, .bias = 1);
	CHECK_CONV(.name = "asymmetric pads", .n = 1, .c = 6, .h = 9, .w = 8,
		   .m = 10, .kh = 3, .kw = 3, S1, .pads = { 0, 1, 2, 3 },
		   .group = 1, .bias = 1);
	CHECK_CONV(.name = "SAME_UPPER stride 2", .n = 1, .c = 3, .h = 10,
		   .w = 9, .m = 8, .kh = 4, .kw = 4, .sh = 2, .sw = 2,
		   .dh = 1, .dw = 1, .group = 1, .bias = 1,
		   .auto_pad = "SAME_UPPER");
	CHECK_CONV(.name = "SAME_LOWER", .n = 1, .c = 3, .h = 10, .w = 9,
		   .m = 8, .kh = 2, .kw = 4, S1, .group = 1, .bias = 1,
		   .auto_pad = "SAME_LOWER");
	CHECK_CONV(.name = "VALID", .n = 1, .c = 3, .h = 10, .w = 9, .m = 8,
		   .kh = 3, .kw = 3, S1, .group = 1, .bias = 1,
		   .auto_pad = "VALID");
}

TEST(conv_strides_dilations)
{
	CHECK_CONV(.name = "stride 2", .n = 1, .c = 6, .h = 15, .w = 17,
		   .m = 9, .kh = 3, .kw = 3, .sh = 2, .sw = 2, .dh = 1,
		   .dw = 1, .pads = { 1, 1, 1, 1 }, .group = 1, .bias = 1);
	CHECK_CONV(.name = "stride 3", .n = 1, .c = 5, .h = 16, .w = 19,
		   .m = 8, .kh = 3, .kw = 2, .sh = 3, .sw = 3, .dh = 1,
		   .dw = 1, .pads = { 1, 0, 1, 2 }, .group = 1, .bias = 1);
	CHECK_CONV(.name = "dilation 2", .n = 1, .c = 4, .h = 13, .w = 12,
		   .m = 8, .kh = 3, .kw = 3, .sh = 1, .sw = 1, .dh = 2,
		   .dw = 2, .pads = { 2, 2, 2, 2 }, .group = 1, .bias = 1);
	CHECK_CONV(.name = "1x1 stride 2", .n = 1, .c = 24, .h = 14, .w = 13,
		   .m = 20, .kh = 1, .kw = 1, .sh = 2, .sw = 2, .dh = 1,
		   .dw = 1, .group = 1, .bias = 1);
	/* strided 1x1 without pads (the pixels gathered, then the GEMM):
	 * rows of more than two gathered vectors, odd widths, a row
	 * stride other than the column stride, batch 2 */
	CHECK_CONV(.name = "1x1 s2 wide batch 2", .n = 2, .c = 5, .h = 9,
		   .w = 71, .m = 20, .kh = 1, .kw = 1, .sh = 2, .sw = 2,
		   .dh = 1, .dw = 1, .group = 1, .bias = 1,
		   .act = LM_ACT_RELU, .sum = 1);
	CHECK_CONV(.name = "1x1 s3x2", .n = 1, .c = 7, .h = 11, .w = 34,
		   .m = 9, .kh = 1, .kw = 1, .sh = 3, .sw = 2, .dh = 1,
		   .dw = 1, .group = 1, .bias = 0);
	CHECK_CONV(.name = "1x1 s3", .n = 1, .c = 3, .h = 10, .w = 10,
		   .m = 17, .kh = 1, .kw = 1, .sh = 3, .sw = 3, .dh = 1,
		   .dw = 1, .group = 1, .bias = 1);
	/* stem-like: 7x7 stride 2 on 3 channels, wide enough rows */
	CHECK_CONV(.name = "7x7 s2 stem", .n = 1, .c = 3, .h = 40, .w = 70,
		   .m = 16, .kh = 7, .kw = 7, .sh = 2, .sw = 2, .dh = 1,
		   .dw = 1, .pads = { 3, 3, 3, 3 }, .group = 1, .bias = 1);
}

TEST(conv_groups_batch)
{
	CHECK_CONV(.name = "groups 2", .n = 1, .c = 6, .h = 8, .w = 9, .m = 10,
		   .kh = 3, .kw = 3, S1, .pads = { 1, 1, 1, 1 }, .group = 2,
		   .bias = 1);
	CHECK_CONV(.name = "batch 2", .n = 2, .c = 16, .h = 9, .w = 10,
		   .m = 24, .kh = 3, .kw = 3, S1, .pads = { 1, 1, 1, 1 },
		   .group = 1, .bias = 1, .act = LM_ACT_RELU, .sum = 1);
	CHECK_CONV(.name = "batch 2 1x1", .n = 2, .c = 16, .h = 5, .w = 7,
		   .m = 9, .kh = 1, .kw = 1, S1, .group = 1, .bias = 0);
	CHECK_CONV(.name = "multiplier 2", .n = 1, .c = 4, .h = 6, .w = 7,
		   .m = 8, .kh = 3, .kw = 3, S1, .pads = { 1, 1, 1, 1 },
		   .group = 4, .bias = 1);
}

TEST(conv_depthwise)
{
	CHECK_CONV(.name = "dw 3x3 s1", .n = 1, .c = 19, .h = 21, .w = 35,
		   .m = 19, .kh = 3, .kw = 3, S1, .pads = { 1, 1, 1, 1 },
		   .group = 19, .bias = 1, .act = LM_ACT_CLIP, .sum = 1);
	CHECK_CONV(.name = "dw 3x3 s2", .n = 2, .c = 8, .h = 22, .w = 37,
		   .m = 8, .kh = 3, .kw = 3, .sh = 2, .sw = 2, .dh = 1,
		   .dw = 1, .pads = { 1, 1, 1, 1 }, .group = 8, .bias = 1);
	CHECK_CONV(.name = "dw 3x3 s2 odd pads", .n = 1, .c = 3, .h = 9,
		   .w = 8, .m = 3, .kh = 3, .kw = 3, .sh = 2, .sw = 2, .dh = 1,
		   .dw = 1, .pads = { 0, 0, 1, 1 }, .group = 3, .bias = 0);
	CHECK_CONV(.name = "dw 1x1 image", .n = 1, .c = 5, .h = 1, .w = 1,
		   .m = 5, .kh = 3, .kw = 3, S1, .pads = { 1, 1, 1, 1 },
		   .group = 5, .bias = 1);
	CHECK_CONV(.name = "dw 5x5 dil 2", .n = 1, .c = 4, .h = 12, .w = 11,
		   .m = 4, .kh = 5, .kw = 5, .sh = 1, .sw = 1, .dh = 2,
		   .dw = 2, .pads = { 3, 4, 5, 4 }, .group = 4, .bias = 1);
	CHECK_CONV(.name = "dw 3x3 s3", .n = 1, .c = 4, .h = 12, .w = 17,
		   .m = 4, .kh = 3, .kw = 3, .sh = 3, .sw = 3, .dh = 1,
		   .dw = 1, .pads = { 1, 1, 1, 1 }, .group = 4, .bias = 1);
}

/* The instruction sets the vector kernels are compiled for: lm_isa_cap
 * makes this machine run each (sets it lacks fall back to one it has,
 * and are checked anyway). */
static const struct {
	enum lm_isa isa;
	const char *name;
} isas[] = {
	{ LM_ISA_AVX512, "avx512" },
	{ LM_ISA_AVX2, "avx2" },
	{ LM_ISA_C, "c" },
};

/* conv_check under each instruction set. */
static int conv_check_isas(const struct conv_case *cc)
{
	int fails = 0;

	for (size_t i = 0; i < sizeof(isas) / sizeof(isas[0]); i++) {
		lm_isa_cap(isas[i].isa);
		isa_name = isas[i].name;
		fails += conv_check(cc) != 0;
	}
	lm_isa_cap(LM_ISA_AVX512);
	isa_name = "best";
	return fails ? -1 : 0;
}

#define CHECK_CONV_ISAS(...) CHECK(conv_check_isas(&CONV(__VA_ARGS__)) == 0)

/*
 * The vector depthwise paths (rows and blocked) for every kernel size and
 * stride they take: odd sizes, channel counts that are no multiple of any
 * vector width, rows wider than four vectors (the wide strips and the
 * leftover column strips), heights that are and are not multiples of 7,
 * asymmetric pads and pads larger than the kernel, batch 2, epilogues.
 */
TEST(conv_depthwise_vector)
{
	static const int64_t ks[] = { 3, 5, 7 };
	for (int i = 0; i < 3; i++) {
		int64_t k = ks[i], p = k / 2;
		for (int64_t s = 1; s <= 2; s++) {
			CHECK_CONV_ISAS(.name = "dw odd", .n = 1, .c = 7,
				.h = 13, .w = 11, .m = 7, .kh = k, .kw = k,
				.sh = s, .sw = s, .dh = 1, .dw = 1,
				.pads = { p, p, p, p }, .group = 7, .bias = 1);
			CHECK_CONV_ISAS(.name = "dw wide asym", .n = 1,
				.c = 17, .h = 9, .w = 75, .m = 17, .kh = k,
				.kw = k, .sh = s, .sw = s, .dh = 1, .dw = 1,
				.pads = { 0, p, k - 1, 1 }, .group = 17,
				.bias = 1, .act = LM_ACT_RELU, .sum = 1);
			CHECK_CONV_ISAS(.name = "dw batch 2 14x14", .n = 2,
				.c = 33, .h = 14, .w = 14, .m = 33, .kh = k,
				.kw = k, .sh = s, .sw = s, .dh = 1, .dw = 1,
				.pads = { p, p, p, p }, .group = 33,
				.bias = 0, .act = LM_ACT_CLIP);
			CHECK_CONV_ISAS(.name = "dw tall", .n = 1, .c = 2,
				.h = 28 * s, .w = 20, .m = 2, .kh = k,
				.kw = k, .sh = s, .sw = s, .dh = 1, .dw = 1,
				.pads = { p, p, p, p }, .group = 2, .bias = 1,
				.act = LM_ACT_SIGMOID, .sum = 1);
			CHECK_CONV_ISAS(.name = "dw big pads", .n = 1,
				.c = 5, .h = 6, .w = 7, .m = 5, .kh = k,
				.kw = k, .sh = s, .sw = s, .dh = 1, .dw = 1,
				.pads = { k + 1, k + 2, k, k + 3 }, .group = 5,
				.bias = 1);
			CHECK_CONV_ISAS(.name = "dw 2x3 image", .n = 1,
				.c = 9, .h = 2, .w = 3, .m = 9, .kh = k,
				.kw = k, .sh = s, .sw = s, .dh = 1, .dw = 1,
				.pads = { p, p, p, p }, .group = 9, .bias = 1);
			CHECK_CONV_ISAS(.name = "dw valid", .n = 1, .c = 16,
				.h = 17, .w = 15, .m = 16, .kh = k, .kw = k,
				.sh = s, .sw = s, .dh = 1, .dw = 1,
				.group = 16, .bias = 1);
		}
	}
	/* not for the vector paths: generic only */
	CHECK_CONV_ISAS(.name = "dw 3x5", .n = 1, .c = 6, .h = 10, .w = 12,
		.m = 6, .kh = 3, .kw = 5, S1, .pads = { 1, 2, 1, 2 },
		.group = 6, .bias = 1);
	CHECK_CONV_ISAS(.name = "dw 3x3 s1x2", .n = 1, .c = 6, .h = 10,
		.w = 12, .m = 6, .kh = 3, .kw = 3, .sh = 1, .sw = 2, .dh = 1,
		.dw = 1, .pads = { 1, 1, 1, 1 }, .group = 6, .bias = 1);
}

/*
 * The vector depthwise paths apply Relu, Clip and a residual in registers
 * as they store.  That must be bitwise what the separate epilogue pass
 * gives: each path and instruction set, kernels 3, 5, 7 at strides 1 and
 * 2, against the same conv without the epilogue followed by
 * lm_epilogue_apply, with NaN and -0.0 among the inputs and a Clip whose
 * min is above its max; rows and blocked bitwise equal to each other;
 * weights constant (rearranged at prepare) and given at run time.
 */
static lm_graph *dw_graph(int64_t c, int64_t h, int64_t w, int64_t k,
			  int64_t s, int w_input, int act, float alpha,
			  float beta, int sum)
{
	lm_graph *g = lm_graph_create("dw");
	int64_t xd[4] = { 2, c, h, w }, wd[4] = { c, 1, k, k }, p = k / 2;
	const char *in[3] = { "x", "w", "b" };

	value(g, "x", LM_VAL_INPUT, 4, xd);
	value(g, "w", w_input ? LM_VAL_INPUT : LM_VAL_INITIALIZER, 4, wd);
	value(g, "b", LM_VAL_INITIALIZER, 1, &c);
	lm_node *n = node_y(g, "Conv", in, 3);
	int64_t st[2] = { s, s }, pads[4] = { p, p + 1, p, p };
	tg_attr_is(n, "strides", st, 2);
	tg_attr_is(n, "pads", pads, 4);
	tg_attr_i(n, "group", c);
	if (finish(g) || add_epilogue(g, act, alpha, beta, sum)) {
		lm_graph_free(g);
		return NULL;
	}
	return g;
}

static void copy_value(lm_graph *to, const lm_graph *from, const char *nm)
{
	const lm_value *f = &from->values[lm_graph_find(from, nm)];
	memcpy(to->values[lm_graph_find(to, nm)].data, f->data, f->nbytes);
}

static int dw_fused_check(int64_t k, int64_t s, int w_input, int act,
			  float alpha, float beta, int sum)
{
	static const char *const impls[] = { "depthwise-rows",
					     "depthwise-blocked" };
	/* 37 channels: two whole blocks of 16 and a part; 30 wide: rows
	 * past four vectors of 4 and 8, strips that end past the row */
	lm_graph *g = dw_graph(37, 17, 30, k, s, w_input, act, alpha, beta,
			       sum);
	lm_graph *plain = dw_graph(37, 17, 30, k, s, w_input, 0, 0, 0, 0);
	int fails = 0;

	if (!g || !plain) {
		lm_graph_free(g);
		lm_graph_free(plain);
		return -1;
	}
	float *x = g->values[lm_graph_find(g, "x")].data;
	x[3] = NAN;
	x[40] = -0.0f;
	x[17 * 30 * 5 + 61] = NAN;
	copy_value(plain, g, "x");
	copy_value(plain, g, "w");
	copy_value(plain, g, "b");
	int sv = lm_graph_find(g, "s");
	const float *sd = sv >= 0 ? g->values[sv].data : NULL;
	lm_epilogue ep = { .act = act, .alpha = alpha, .beta = beta };
	int64_t ny = numel(4, g->values[g->nodes[0].outputs[0]].dims);
	float *first = NULL;

	for (int i = 0; i < 2; i++) {
		float *y = NULL, *y0 = NULL;
		const char *chosen = "";
		if (run_node(g, impls[i], &y, &chosen) ||
		    run_node(plain, impls[i], &y0, &chosen)) {
			printf("  dw fused %lldx%lld s%lld [%s]: run failed\n",
			       (long long)k, (long long)k, (long long)s,
			       impls[i]);
			fails++;
		} else {
			lm_epilogue_apply(&ep, y0, sd, (size_t)ny);
			if (memcmp(y, y0, (size_t)ny * sizeof(float)) ||
			    (first && memcmp(y, first, (size_t)ny *
					     sizeof(float)))) {
				printf("  dw fused %lldx%lld s%lld act %d sum "
				       "%d [%s, %s]: not bitwise equal\n",
				       (long long)k, (long long)k,
				       (long long)s, act, sum, impls[i],
				       isa_name);
				fails++;
			}
		}
		free(y0);
		if (!first)
			first = y;
		else
			free(y);
	}
	free(first);
	lm_graph_free(g);
	lm_graph_free(plain);
	return fails ? -1 : 0;
}

TEST(conv_depthwise_fused)
{
	static const struct {
		int act;
		float alpha, beta;
		int sum;
	} eps[] = {
		{ LM_ACT_RELU, 0, 0, 0 },
		{ LM_ACT_RELU, 0, 0, 1 },
		{ LM_ACT_CLIP, 0.0f, 0.5f, 0 },
		{ LM_ACT_CLIP, -0.25f, 0.25f, 1 },
		{ LM_ACT_CLIP, 0.5f, -0.25f, 0 },   /* min above max */
		{ LM_ACT_NONE, 0, 0, 1 },
	};

	for (size_t i = 0; i < sizeof(isas) / sizeof(isas[0]); i++) {
		lm_isa_cap(isas[i].isa);
		isa_name = isas[i].name;
		for (int64_t k = 3; k <= 7; k += 2)
			for (int64_t s = 1; s <= 2; s++)
				for (size_t e = 0; e < sizeof(eps) /
						       sizeof(eps[0]); e++)
					CHECK(dw_fused_check(k, s, (int)e % 2,
						eps[e].act, eps[e].alpha,
						eps[e].beta, eps[e].sum) == 0);
	}
	lm_isa_cap(LM_ISA_AVX512);
	isa_name = "best";
}

/*
 * The direct kernel (stems and grouped convs) under every instruction
 * set: 1 to 4 input channels, output channels that fill no whole sliver
 * (5, 17), groups of 4 (its 4-row slivers) and of 16 (two 8-row ones),
 * strides 1, 2 and 3 and unequal ones, non-square kernels, odd sizes,
 * 7x7 and 1x1 outputs (short last strips), big and asymmetric pads,
 * batch 2 and epilogues.
 */
TEST(conv_direct)
{
	CHECK_CONV_ISAS(.name = "stem 3x3 s2 3->17", .n = 1, .c = 3,
		.h = 37, .w = 41, .m = 17, .kh = 3, .kw = 3, .sh = 2, .sw = 2,
		.dh = 1, .dw = 1, .pads = { 1, 1, 1, 1 }, .group = 1,
		.bias = 1, .act = LM_ACT_RELU);
	CHECK_CONV_ISAS(.name = "stem 7x7 s2 3->16 batch 2", .n = 2, .c = 3,
		.h = 30, .w = 27, .m = 16, .kh = 7, .kw = 7, .sh = 2, .sw = 2,
		.dh = 1, .dw = 1, .pads = { 3, 3, 3, 3 }, .group = 1,
		.bias = 1, .act = LM_ACT_CLIP, .sum = 1);
	CHECK_CONV_ISAS(.name = "stem 1 channel", .n = 1, .c = 1, .h = 20,
		.w = 23, .m = 7, .kh = 3, .kw = 3, S1, .pads = { 1, 1, 1, 1 },
		.group = 1, .bias = 0);
	CHECK_CONV_ISAS(.name = "stem 4ch s2 big pads", .n = 1, .c = 4,
		.h = 9, .w = 8, .m = 33, .kh = 3, .kw = 3, .sh = 2, .sw = 2,
		.dh = 1, .dw = 1, .pads = { 4, 5, 3, 6 }, .group = 1,
		.bias = 1);
	CHECK_CONV_ISAS(.name = "stem 4x4 s4", .n = 1, .c = 3, .h = 32,
		.w = 28, .m = 24, .kh = 4, .kw = 4, .sh = 4, .sw = 4, .dh = 1,
		.dw = 1, .group = 1, .bias = 1);
	CHECK_CONV_ISAS(.name = "g32 of 4", .n = 1, .c = 128, .h = 13,
		.w = 11, .m = 128, .kh = 3, .kw = 3, S1,
		.pads = { 1, 1, 1, 1 }, .group = 32, .bias = 1,
		.act = LM_ACT_RELU, .sum = 1);
	CHECK_CONV_ISAS(.name = "g3 of 16 s2 7x7 out", .n = 2, .c = 48,
		.h = 14, .w = 13, .m = 48, .kh = 3, .kw = 3, .sh = 2, .sw = 2,
		.dh = 1, .dw = 1, .pads = { 1, 1, 1, 1 }, .group = 3,
		.bias = 1);
	CHECK_CONV_ISAS(.name = "g2 3->5 asym", .n = 1, .c = 6, .h = 17,
		.w = 19, .m = 10, .kh = 3, .kw = 5, .sh = 1, .sw = 2, .dh = 1,
		.dw = 1, .pads = { 0, 2, 2, 1 }, .group = 2, .bias = 1);
	CHECK_CONV_ISAS(.name = "g4 s3 1x1 out", .n = 1, .c = 8, .h = 3,
		.w = 3, .m = 12, .kh = 3, .kw = 3, .sh = 3, .sw = 3, .dh = 1,
		.dw = 1, .group = 4, .bias = 1);
	CHECK_CONV_ISAS(.name = "multiplier 3", .n = 1, .c = 5, .h = 11,
		.w = 9, .m = 15, .kh = 5, .kw = 5, .sh = 2, .sw = 2, .dh = 1,
		.dw = 1, .pads = { 2, 2, 2, 2 }, .group = 5, .bias = 1);
	/* dilation: not for the direct kernel (pinning it fails) */
	CHECK_CONV_ISAS(.name = "g2 dilated", .n = 1, .c = 4, .h = 12,
		.w = 12, .m = 4, .kh = 3, .kw = 3, .sh = 1, .sw = 1, .dh = 2,
		.dw = 2, .pads = { 2, 2, 2, 2 }, .group = 2, .bias = 1);
}

/*
 * grouped.c (groups of 16 to 64 output channels, AVX-512; elsewhere
 * pinning it fails): odd sizes and odd input channels per group, rows
 * its tiles of 28, 14 and 7 positions cover exactly and with a short
 * last chunk, tiles of 1 to 4 rows and the rows left over, several
 * bands (56-wide rows), strides 1 and 2 with odd inputs, a row stride
 * of 3, non-square and 1x1 kernels, pads larger than the kernel, 1x1
 * outputs, batch 2, epilogues, and the stems it also runs.
 */
TEST(conv_grouped)
{
	CHECK_CONV_ISAS(.name = "g3 of 16 13x11 batch 2", .n = 2, .c = 48,
		.h = 13, .w = 11, .m = 48, .kh = 3, .kw = 3, S1,
		.pads = { 1, 1, 1, 1 }, .group = 3, .bias = 1,
		.act = LM_ACT_RELU, .sum = 1);
	CHECK_CONV_ISAS(.name = "g5 of 16 s2 odd", .n = 1, .c = 80, .h = 15,
		.w = 17, .m = 80, .kh = 3, .kw = 3, .sh = 2, .sw = 2, .dh = 1,
		.dw = 1, .pads = { 1, 1, 1, 1 }, .group = 5, .bias = 1);
	CHECK_CONV_ISAS(.name = "g3 5->16 7x7", .n = 1, .c = 15, .h = 7,
		.w = 7, .m = 48, .kh = 3, .kw = 3, S1, .pads = { 1, 1, 1, 1 },
		.group = 3, .bias = 0, .act = LM_ACT_CLIP);
	CHECK_CONV_ISAS(.name = "g2 of 16 40x56 bands", .n = 1, .c = 32,
		.h = 40, .w = 56, .m = 32, .kh = 3, .kw = 3, S1,
		.pads = { 1, 1, 1, 1 }, .group = 2, .bias = 1,
		.act = LM_ACT_RELU);
	CHECK_CONV_ISAS(.name = "g2 of 16 14x14", .n = 1, .c = 32, .h = 14,
		.w = 14, .m = 32, .kh = 3, .kw = 3, S1,
		.pads = { 1, 1, 1, 1 }, .group = 2, .bias = 1);
	CHECK_CONV_ISAS(.name = "g3 of 16 s2 27x29", .n = 1, .c = 48,
		.h = 27, .w = 29, .m = 48, .kh = 3, .kw = 3, .sh = 2,
		.sw = 2, .dh = 1, .dw = 1, .pads = { 1, 1, 1, 1 },
		.group = 3, .bias = 1, .sum = 1);
	CHECK_CONV_ISAS(.name = "g2 of 32 9x30", .n = 1, .c = 64, .h = 9,
		.w = 30, .m = 64, .kh = 3, .kw = 3, S1,
		.pads = { 1, 1, 1, 1 }, .group = 2, .bias = 1,
		.act = LM_ACT_RELU);
	CHECK_CONV_ISAS(.name = "g3 of 32 s2 batch 2", .n = 2, .c = 96,
		.h = 14, .w = 13, .m = 96, .kh = 3, .kw = 3, .sh = 2, .sw = 2,
		.dh = 1, .dw = 1, .pads = { 1, 1, 1, 1 }, .group = 3,
		.bias = 1, .act = LM_ACT_RELU, .sum = 1);
	CHECK_CONV_ISAS(.name = "g2 of 16 big pads", .n = 1, .c = 6, .h = 5,
		.w = 6, .m = 32, .kh = 3, .kw = 3, S1,
		.pads = { 4, 5, 3, 6 }, .group = 2, .bias = 1);
	CHECK_CONV_ISAS(.name = "g2 of 16 5x3 s3x1", .n = 1, .c = 14,
		.h = 19, .w = 23, .m = 32, .kh = 5, .kw = 3, .sh = 3, .sw = 1,
		.dh = 1, .dw = 1, .pads = { 2, 0, 1, 2 }, .group = 2,
		.bias = 1);
	CHECK_CONV_ISAS(.name = "g2 of 16 1x4 s1x2", .n = 1, .c = 10,
		.h = 6, .w = 33, .m = 32, .kh = 1, .kw = 4, .sh = 1, .sw = 2,
		.dh = 1, .dw = 1, .pads = { 0, 1, 0, 2 }, .group = 2,
		.bias = 0);
	CHECK_CONV_ISAS(.name = "g4 of 16 1x1", .n = 1, .c = 12, .h = 5,
		.w = 9, .m = 64, .kh = 1, .kw = 1, S1, .group = 4, .bias = 1);
	CHECK_CONV_ISAS(.name = "g2 of 16 1x1 out", .n = 1, .c = 32, .h = 3,
		.w = 3, .m = 32, .kh = 3, .kw = 3, S1, .group = 2, .bias = 1);
	/* stems, which it runs on one image: 3->32 and 3->16 at stride 2,
	 * odd sizes, with and without pads */
	CHECK_CONV_ISAS(.name = "stem 3x3 s2 3->32 37x41", .n = 1, .c = 3,
		.h = 37, .w = 41, .m = 32, .kh = 3, .kw = 3, .sh = 2, .sw = 2,
		.dh = 1, .dw = 1, .pads = { 1, 1, 1, 1 }, .group = 1,
		.bias = 1, .act = LM_ACT_CLIP);
	CHECK_CONV_ISAS(.name = "stem 3x3 s2 3->16 valid 59x31", .n = 1,
		.c = 3, .h = 59, .w = 31, .m = 16, .kh = 3, .kw = 3, .sh = 2,
		.sw = 2, .dh = 1, .dw = 1, .group = 1, .bias = 1,
		.act = LM_ACT_SIGMOID);
	/* groups of 48 and 64 (one-row tiles of 7), ResNet's stem */
	CHECK_CONV_ISAS(.name = "g2 of 48 s2 odd", .n = 1, .c = 10,
		.h = 19, .w = 23, .m = 96, .kh = 3, .kw = 3, .sh = 2, .sw = 2,
		.dh = 1, .dw = 1, .pads = { 1, 1, 1, 1 }, .group = 2,
		.bias = 1, .act = LM_ACT_RELU, .sum = 1);
	CHECK_CONV_ISAS(.name = "stem 7x7 s2 3->64 batch 2", .n = 2, .c = 3,
		.h = 33, .w = 45, .m = 64, .kh = 7, .kw = 7, .sh = 2, .sw = 2,
		.dh = 1, .dw = 1, .pads = { 3, 3, 3, 3 }, .group = 1,
		.bias = 0, .act = LM_ACT_RELU);
	/* dilation and a column stride of 3: not for grouped.c */
	CHECK_CONV_ISAS(.name = "g2 of 16 dilated", .n = 1, .c = 32,
		.h = 12, .w = 12, .m = 32, .kh = 3, .kw = 3, .sh = 1, .sw = 1,
		.dh = 2, .dw = 2, .pads = { 2, 2, 2, 2 }, .group = 2,
		.bias = 1);
	CHECK_CONV_ISAS(.name = "g2 of 16 s3", .n = 1, .c = 32, .h = 12,
		.w = 13, .m = 32, .kh = 3, .kw = 3, .sh = 3, .sw = 3, .dh = 1,
		.dw = 1, .pads = { 1, 1, 1, 1 }, .group = 2, .bias = 1);
}

TEST(conv_epilogue)
{
	CHECK_CONV(.name = "sum+relu", .n = 1, .c = 16, .h = 10, .w = 10,
		   .m = 16, .kh = 3, .kw = 3, S1, .pads = { 1, 1, 1, 1 },
		   .group = 1, .bias = 1, .act = LM_ACT_RELU, .sum = 1);
	CHECK_CONV(.name = "clip", .n = 1, .c = 16, .h = 10, .w = 10,
		   .m = 16, .kh = 1, .kw = 1, S1, .group = 1, .bias = 1,
		   .act = LM_ACT_CLIP);
	CHECK_CONV(.name = "sum+sigmoid no bias", .n = 1, .c = 32, .h = 14,
		   .w = 14, .m = 32, .kh = 3, .kw = 3, S1,
		   .pads = { 1, 1, 1, 1 }, .group = 1, .bias = 0,
		   .act = LM_ACT_SIGMOID, .sum = 1);
	/* the transposed 1x1 path's home: few pixels, many channels */
	CHECK_CONV(.name = "1x1 7x7 sum+relu", .n = 2, .c = 72, .h = 7,
		   .w = 7, .m = 48, .kh = 1, .kw = 1, S1, .group = 1,
		   .bias = 1, .act = LM_ACT_RELU, .sum = 1);
	CHECK_CONV(.name = "1x1 s2 14x14 sum", .n = 1, .c = 40, .h = 14,
		   .w = 13, .m = 35, .kh = 1, .kw = 1, .sh = 2, .sw = 2,
		   .dh = 1, .dw = 1, .group = 1, .bias = 0, .sum = 1);
	/* squeeze-excitation: 1x1 on one pixel, a matrix-vector product */
	CHECK_CONV(.name = "1x1 one pixel sigmoid", .n = 2, .c = 40, .h = 1,
		   .w = 1, .m = 10, .kh = 1, .kw = 1, S1, .group = 1,
		   .bias = 1, .act = LM_ACT_SIGMOID);
	CHECK_CONV(.name = "sum only", .n = 1, .c = 8, .h = 7, .w = 9,
		   .m = 8, .kh = 3, .kw = 3, .sh = 2, .sw = 2, .dh = 1,
		   .dw = 1, .pads = { 1, 1, 1, 1 }, .group = 1, .bias = 1,
		   .sum = 1);
}

/*
 * The GEMM paths apply Relu, Clip and a bare residual sum in the
 * micro-kernel's store (struct lm_clamp in kernels.h): the result must be
 * bitwise what storing the product and then lm_epilogue_apply give, NaN
 * and infinities included.  The same conv runs without the epilogue, then
 * lm_epilogue_apply, and with it fused.
 */
struct ep_case {
	int act;
	float alpha, beta;
	int sum;
};

/* Conv of x (xd) to m channels, k x k with pads k / 2 and stride st, with
 * the epilogue ep (or none), from data drawn after rng = seed; an input
 * pixel is NaN (a column of NaN in y) and the sum holds NaN and
 * infinities. */
static lm_graph *bitwise_graph(uint64_t seed, const int64_t *xd, int64_t m,
			       int64_t k, int64_t st,
			       const struct ep_case *ep)
{
	lm_graph *g = lm_graph_create("conv");
	int64_t wd[4] = { m, xd[1], k, k }, p = k / 2;
	int64_t pads[4] = { p, p, p, p }, strides[2] = { st, st };
	const char *in[3] = { "x", "w", "b" };

	rng = seed;
	value(g, "x", LM_VAL_INPUT, 4, xd);
	value(g, "w", LM_VAL_INITIALIZER, 4, wd);
	value(g, "b", LM_VAL_INITIALIZER, 1, &m);
	lm_node *n = node_y(g, "Conv", in, 3);
	tg_attr_is(n, "strides", strides, 2);
	tg_attr_is(n, "pads", pads, 4);
	if (finish(g) || (ep && add_epilogue(g, ep->act, ep->alpha, ep->beta,
					     ep->sum))) {
		lm_graph_free(g);
		return NULL;
	}
	((float *)g->values[lm_graph_find(g, "x")].data)[4] = NAN;
	int sv = lm_graph_find(g, "s");
	if (sv >= 0) {
		float *s = g->values[sv].data;
		s[1] = NAN;
		s[2] = INFINITY;
		s[3] = -INFINITY;
	}
	return g;
}

static int bitwise_check(const int64_t *xd, int64_t m, int64_t k,
			 int64_t st, const char *impl,
			 const struct ep_case *ep)
{
	uint64_t seed = rng;
	lm_graph *g0 = bitwise_graph(seed, xd, m, k, st, NULL);
	lm_graph *g1 = bitwise_graph(seed, xd, m, k, st, ep);
	float *y0 = NULL, *y1 = NULL;
	const char *chosen = "", *fused = "";
	int fails = 0;

	if (!g0 || !g1 || run_node(g0, impl, &y0, &chosen) ||
	    run_node(g1, impl, &y1, &fused)) {
		printf("  bitwise [%s]: no run\n", impl);
		fails = 1;
		goto out;
	}
	lm_value *yv = &g1->values[g1->nodes[0].outputs[0]];
	int64_t ny = numel(yv->rank, yv->dims);
	int sv = lm_graph_find(g1, "s");
	lm_epilogue e = { ep->act, ep->alpha, ep->beta, -1 };
	lm_epilogue_apply(&e, y0, sv >= 0 ? g1->values[sv].data : NULL,
			  (size_t)ny);
	for (int64_t i = 0; i < ny; i++) {
		if (memcmp(&y0[i], &y1[i], sizeof(float))) {
			printf("  bitwise %lldx%lldx%lldx%lld->%lld k%lld "
			       "s%lld [%s] act %d (%g, %g) sum %d: at %lld "
			       "got %g, want %g\n", (long long)xd[0],
			       (long long)xd[1], (long long)xd[2],
			       (long long)xd[3],
			       (long long)m, (long long)k, (long long)st,
			       fused, ep->act, (double)ep->alpha,
			       (double)ep->beta, ep->sum, (long long)i,
			       (double)y1[i], (double)y0[i]);
			fails = 1;
			break;
		}
	}
	if (strcmp(chosen, fused) || !strstr(fused, "sgemm")) {
		printf("  bitwise [%s]: ran %s and %s\n", impl, chosen, fused);
		fails = 1;
	}
out:
	free(y0);
	free(y1);
	lm_graph_free(g0);
	lm_graph_free(g1);
	return fails;
}

/* 1x1 convs pinned to "sgemm" (strided: "gather+sgemm") and "sgemm-t",
 * and a 3x3 through "im2col+sgemm": K under the K block (384), over it
 * and over two; M and pixels no multiples of 8, 16 or 48; pixels over the
 * N block (288); batch 2. */
TEST(conv_epilogue_bitwise)
{
	static const struct {
		int64_t xd[4], m, k, st;
	} shapes[] = {
		{ { 2, 40, 7, 9 }, 37, 1, 1 },
		{ { 1, 400, 7, 9 }, 37, 1, 1 },
		{ { 1, 1000, 5, 11 }, 21, 1, 1 },
		{ { 1, 24, 17, 19 }, 19, 1, 1 },
		{ { 1, 400, 13, 15 }, 37, 1, 2 },
		{ { 1, 48, 9, 11 }, 29, 3, 1 },
	};
	static const struct ep_case eps[] = {
		{ LM_ACT_RELU, 0, 0, 0 },
		{ LM_ACT_RELU, 0, 0, 1 },
		{ LM_ACT_CLIP, -0.3f, 0.4f, 0 },
		{ LM_ACT_CLIP, 0.0f, 6.0f, 1 },
		{ LM_ACT_CLIP, 0.5f, -0.5f, 1 },   /* alpha > beta */
		{ LM_ACT_NONE, 0, 0, 1 },
	};
	static const char *const impls[] = { "sgemm", "sgemm-t" };
	int fails = 0;

	if (!lm_have_avx512())
		return;
	for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++)
		for (size_t j = 0; j < 2; j++) {
			if (j == 1 && shapes[i].k != 1)
				continue;
			for (size_t e = 0; e < sizeof(eps) / sizeof(eps[0]);
			     e++)
				fails += bitwise_check(shapes[i].xd,
						       shapes[i].m,
						       shapes[i].k,
						       shapes[i].st, impls[j],
						       &eps[e]);
		}
	CHECK(fails == 0);
}

TEST(conv_1d_and_runtime_weights)
{
	CHECK_CONV(.name = "1-D", .n = 2, .c = 6, .h = 1, .w = 50, .m = 10,
		   .kh = 1, .kw = 5, .sh = 1, .sw = 2, .dh = 1, .dw = 1,
		   .pads = { 0, 2, 0, 1 }, .group = 1, .bias = 1, .one_d = 1);
	CHECK_CONV(.name = "weights at run time", .n = 1, .c = 8, .h = 9,
		   .w = 9, .m = 12, .kh = 3, .kw = 3, S1,
		   .pads = { 1, 1, 1, 1 }, .group = 1, .bias = 1,
		   .w_input = 1, .act = LM_ACT_RELU);
	CHECK_CONV(.name = "dw weights at run time", .n = 1, .c = 8, .h = 9,
		   .w = 9, .m = 8, .kh = 3, .kw = 3, S1,
		   .pads = { 1, 1, 1, 1 }, .group = 8, .bias = 1,
		   .w_input = 1);
}

/* Winograd in float32 at realistic channel counts and image sizes,
 * including tiles cut by the image edge (odd sizes). */
TEST(conv_winograd_accuracy)
{
	CHECK_CONV(.name = "56x56x64", .n = 1, .c = 64, .h = 56, .w = 56,
		   .m = 64, .kh = 3, .kw = 3, S1, .pads = { 1, 1, 1, 1 },
		   .group = 1, .bias = 1, .act = LM_ACT_RELU, .sum = 1);
	CHECK_CONV(.name = "14x14x256", .n = 1, .c = 256, .h = 14, .w = 14,
		   .m = 256, .kh = 3, .kw = 3, S1, .pads = { 1, 1, 1, 1 },
		   .group = 1, .bias = 1);
	CHECK_CONV(.name = "7x7x512", .n = 1, .c = 512, .h = 7, .w = 7,
		   .m = 96, .kh = 3, .kw = 3, S1, .pads = { 1, 1, 1, 1 },
		   .group = 1, .bias = 1);
	CHECK_CONV(.name = "13x11 odd", .n = 1, .c = 40, .h = 13, .w = 11,
		   .m = 24, .kh = 3, .kw = 3, S1, .pads = { 1, 1, 1, 1 },
		   .group = 1, .bias = 1);
}

TEST(conv_rejects)
{
	lm_graph *g = lm_graph_create("conv");
	int64_t xd[5] = { 1, 2, 4, 4, 4 }, wd[5] = { 3, 2, 1, 1, 1 };
	const char *in[] = { "x", "w" };
	value(g, "x", LM_VAL_INPUT, 5, xd);
	value(g, "w", LM_VAL_INITIALIZER, 5, wd);
	node_y(g, "Conv", in, 2);
	CHECK(finish(g) == 0);
	float *y = NULL;
	const char *chosen;
	CHECK(run_node(g, "", &y, &chosen) == -ENOTSUP);
	CHECK(run_node(g, "nonsense", &y, &chosen) == -ENOTSUP);
	lm_graph_free(g);
}

/* ---- ConvTranspose ---- */

struct convt_case {
	const char *name;
	int64_t n, c, h, w, m, kh, kw, sh, sw, dh, dw;
	int64_t pads[4], opad[2];
	int64_t group;
	int bias;
	int64_t out_shape[2];   /* {0, 0}: not given */
	const char *auto_pad;
	int act, sum;
};

static int convt_check(const struct convt_case *cc)
{
	lm_graph *g = lm_graph_create("convt");
	int64_t xd[4] = { cc->n, cc->c, cc->h, cc->w };
	int64_t wd[4] = { cc->c, cc->m / cc->group, cc->kh, cc->kw };
	const char *in[] = { "x", "w", "b" };
	value(g, "x", LM_VAL_INPUT, 4, xd);
	value(g, "w", LM_VAL_INITIALIZER, 4, wd);
	if (cc->bias)
		value(g, "b", LM_VAL_INITIALIZER, 1, &cc->m);
	lm_node *n = node_y(g, "ConvTranspose", in, cc->bias ? 3 : 2);
	int64_t st[2] = { cc->sh, cc->sw }, dl[2] = { cc->dh, cc->dw };
	tg_attr_is(n, "strides", st, 2);
	tg_attr_is(n, "dilations", dl, 2);
	tg_attr_is(n, "pads", cc->pads, 4);
	tg_attr_is(n, "output_padding", cc->opad, 2);
	if (cc->out_shape[0])
		tg_attr_is(n, "output_shape", cc->out_shape, 2);
	if (cc->auto_pad)
		tg_attr_s(n, "auto_pad", cc->auto_pad);
	tg_attr_i(n, "group", cc->group);
	if (finish(g) || add_epilogue(g, cc->act, 0, 0, cc->sum)) {
		lm_graph_free(g);
		return -1;
	}
	lm_value *yv = &g->values[g->nodes[0].outputs[0]];
	int64_t oh = yv->dims[2], ow = yv->dims[3], ny = numel(4, yv->dims);
	int64_t pt = cc->pads[0], pl = cc->pads[1];
	if (cc->out_shape[0] || cc->auto_pad) {
		int64_t out[2] = { oh, ow }, in_[2] = { cc->h, cc->w };
		int64_t k[2] = { cc->kh, cc->kw }, p[2];
		for (int i = 0; i < 2; i++) {
			int64_t tot = st[i] * (in_[i] - 1) + cc->opad[i] +
				      (k[i] - 1) * dl[i] + 1 - out[i];
			p[i] = cc->auto_pad &&
			       !strcmp(cc->auto_pad, "SAME_UPPER")
			       ? tot / 2 : tot - tot / 2;
		}
		pt = p[0];
		pl = p[1];
	}
	const float *x = g->values[lm_graph_find(g, "x")].data;
	const float *w = g->values[lm_graph_find(g, "w")].data;
	int bv = lm_graph_find(g, "b");
	const float *b = bv >= 0 ? g->values[bv].data : NULL;
	double *ref = calloc((size_t)ny, sizeof(double));
	int64_t cg = cc->c / cc->group, mg = cc->m / cc->group;
	for (int64_t nn = 0; nn < cc->n; nn++)
	for (int64_t m = 0; m < cc->m; m++)
	for (int64_t i = 0; i < oh * ow; i++)
		ref[(nn * cc->m + m) * oh * ow + i] = b ? b[m] : 0;
	for (int64_t nn = 0; nn < cc->n; nn++)
	for (int64_t c = 0; c < cc->c; c++)
	for (int64_t iy = 0; iy < cc->h; iy++)
	for (int64_t ix = 0; ix < cc->w; ix++)
	for (int64_t mm = 0; mm < mg; mm++)
	for (int64_t ky = 0; ky < cc->kh; ky++)
	for (int64_t kx = 0; kx < cc->kw; kx++) {
		int64_t oy = iy * cc->sh - pt + ky * cc->dh;
		int64_t ox = ix * cc->sw - pl + kx * cc->dw;
		int64_t m = c / cg * mg + mm;
		if (oy < 0 || oy >= oh || ox < 0 || ox >= ow)
			continue;
		double xv = x[((nn * cc->c + c) * cc->h + iy) * cc->w + ix];
		ref[((nn * cc->m + m) * oh + oy) * ow + ox] +=
			xv * w[((c * mg + mm) * cc->kh + ky) * cc->kw + kx];
	}
	epilogue_ref(g, ref, ny, cc->act, 0, 0);
	float *y = NULL;
	const char *chosen = "";
	int rc = run_node(g, "", &y, &chosen);
	if (!rc)
		rc = compare(y, ref, ny, cc->name, chosen);
	free(y);
	free(ref);
	lm_graph_free(g);
	return rc;
}

#define CHECK_CONVT(...) \
	CHECK(convt_check(&(struct convt_case){ __VA_ARGS__ }) == 0)

TEST(convtranspose)
{
	CHECK_CONVT(.name = "s2 k3 p1 opad1", .n = 1, .c = 6, .h = 5, .w = 7,
		    .m = 4, .kh = 3, .kw = 3, .sh = 2, .sw = 2, .dh = 1,
		    .dw = 1, .pads = { 1, 1, 1, 1 }, .opad = { 1, 1 },
		    .group = 1, .bias = 1);
	CHECK_CONVT(.name = "groups 2 dil 2", .n = 2, .c = 6, .h = 4, .w = 5,
		    .m = 8, .kh = 3, .kw = 2, .sh = 1, .sw = 2, .dh = 2,
		    .dw = 1, .pads = { 0, 1, 2, 0 }, .opad = { 0, 1 },
		    .group = 2, .bias = 1, .act = LM_ACT_RELU, .sum = 1);
	CHECK_CONVT(.name = "output_shape", .n = 1, .c = 3, .h = 4, .w = 4,
		    .m = 5, .kh = 3, .kw = 3, .sh = 2, .sw = 2, .dh = 1,
		    .dw = 1, .group = 1, .bias = 0, .out_shape = { 8, 9 });
	CHECK_CONVT(.name = "SAME_UPPER", .n = 1, .c = 3, .h = 4, .w = 5,
		    .m = 2, .kh = 4, .kw = 3, .sh = 2, .sw = 2, .dh = 1,
		    .dw = 1, .group = 1, .bias = 1, .auto_pad = "SAME_UPPER");
	CHECK_CONVT(.name = "1x1 input", .n = 1, .c = 4, .h = 1, .w = 1,
		    .m = 3, .kh = 2, .kw = 2, .sh = 1, .sw = 1, .dh = 1,
		    .dw = 1, .group = 1, .bias = 1);
}

/* ---- Gemm and MatMul ---- */

static int gemm_check(int ta, int tb, int64_t m, int64_t n, int64_t k,
		      int c_rank, const int64_t *c_dims, float alpha,
		      float beta, int act, int sum)
{
	lm_graph *g = lm_graph_create("gemm");
	int64_t ad[2] = { ta ? k : m, ta ? m : k };
	int64_t bd[2] = { tb ? n : k, tb ? k : n };
	const char *in[] = { "a", "b", "c" };
	value(g, "a", LM_VAL_INPUT, 2, ad);
	value(g, "b", LM_VAL_INITIALIZER, 2, bd);
	if (c_rank >= 0)
		value(g, "c", LM_VAL_INITIALIZER, c_rank, c_dims);
	lm_node *nd = node_y(g, "Gemm", in, c_rank >= 0 ? 3 : 2);
	tg_attr_i(nd, "transA", ta);
	tg_attr_i(nd, "transB", tb);
	tg_attr_f(nd, "alpha", alpha);
	tg_attr_f(nd, "beta", beta);
	if (finish(g) || add_epilogue(g, act, 0, 0, sum)) {
		lm_graph_free(g);
		return -1;
	}
	const float *a = g->values[lm_graph_find(g, "a")].data;
	const float *b = g->values[lm_graph_find(g, "b")].data;
	int cv = lm_graph_find(g, "c");
	const float *c = cv >= 0 ? g->values[cv].data : NULL;
	double *ref = malloc(sizeof(double) * (size_t)(m * n));
	for (int64_t i = 0; i < m; i++)
	for (int64_t j = 0; j < n; j++) {
		double s = 0;
		for (int64_t p = 0; p < k; p++)
			s += (double)(ta ? a[p * m + i] : a[i * k + p]) *
			     (tb ? b[j * k + p] : b[p * n + j]);
		s *= alpha;
		if (c) {
			int64_t rows = c_rank == 2 ? c_dims[0] : 1;
			int64_t cols = c_rank ? c_dims[c_rank - 1] : 1;
			s += beta * c[(rows == 1 ? 0 : i) * cols +
				      (cols == 1 ? 0 : j)];
		}
		ref[i * n + j] = s;
	}
	epilogue_ref(g, ref, m * n, act, 0, 0);
	float *y = NULL;
	const char *chosen = "";
	int rc = run_node(g, "", &y, &chosen);
	if (!rc)
		rc = compare(y, ref, m * n, "gemm", chosen);
	if (rc)
		printf("  gemm ta=%d tb=%d %lldx%lldx%lld c_rank=%d\n", ta, tb,
		       (long long)m, (long long)n, (long long)k, c_rank);
	free(y);
	free(ref);
	lm_graph_free(g);
	return rc;
}

TEST(gemm)
{
	const int64_t m = 5, n = 7, k = 9;
	struct {
		int rank;
		int64_t dims[2];
	} cs[] = {
		{ -1, { 0, 0 } }, { 0, { 0, 0 } }, { 1, { n, 0 } },
		{ 1, { 1, 0 } }, { 2, { 1, n } }, { 2, { m, 1 } },
		{ 2, { m, n } },
	};
	for (int ta = 0; ta < 2; ta++)
		for (int tb = 0; tb < 2; tb++)
			for (size_t i = 0; i < sizeof(cs) / sizeof(cs[0]); i++)
				CHECK(gemm_check(ta, tb, m, n, k, cs[i].rank,
						 cs[i].dims, 0.5f, 2.0f, 0,
						 0) == 0);
	/* vector shapes (sgemv), beta 0 with C, epilogue */
	for (int ta = 0; ta < 2; ta++)
		for (int tb = 0; tb < 2; tb++) {
			int64_t c1[1] = { 33 }, cm[2] = { 40, 1 };
			CHECK(gemm_check(ta, tb, 1, 33, 50, 1, c1, 1.0f, 1.0f,
					 LM_ACT_RELU, 1) == 0);
			CHECK(gemm_check(ta, tb, 40, 1, 50, 2, cm, 1.0f, 0.0f,
					 0, 0) == 0);
		}
}

/* A classifier at batch 2-16 (a few rows times W^T) runs gemv_rows four
 * rows at a time: each row bitwise what it gives at batch 1, the 64-float
 * chunks and the tail, and within 1e-4 of the reference through Gemm. */
TEST(gemm_few_rows)
{
	static const int64_t ms[] = { 2, 4, 9, 16 };
	const int64_t n = 37, k = 150;

	for (size_t i = 0; i < sizeof(ms) / sizeof(ms[0]); i++) {
		int64_t m = ms[i], c1[1] = { n };
		CHECK(gemm_check(0, 1, m, n, k, 1, c1, 0.5f, 2.0f,
				 LM_ACT_RELU, 1) == 0);
		if (!lm_have_avx512())
			continue;
		float *a = rand_floats(m * k), *w = rand_floats(n * k);
		float *c = calloc((size_t)(m * n), sizeof(float));
		float *r = calloc((size_t)n, sizeof(float));
		lm_sgemm(0, 1, m, n, k, 1.0f, a, k, w, k, 0.0f, c, n);
		for (int64_t row = 0; row < m; row++) {
			lm_sgemm(0, 1, 1, n, k, 1.0f, a + row * k, k, w, k,
				 0.0f, r, n);
			CHECK(memcmp(r, c + row * n, (size_t)n *
				     sizeof(float)) == 0);
		}
		free(a);
		free(w);
		free(c);
		free(r);
	}
}

/* bconst: B is an initializer (packed at prepare when the product is
 * tall enough), else a graph input. */
static int matmul_check(int ra, const int64_t *ad, int rb, const int64_t *bd,
			int act, int sum, int bconst)
{
	lm_graph *g = lm_graph_create("matmul");
	const char *in[] = { "a", "b" };
	value(g, "a", LM_VAL_INPUT, ra, ad);
	value(g, "b", bconst ? LM_VAL_INITIALIZER : LM_VAL_INPUT, rb, bd);
	node_y(g, "MatMul", in, 2);
	if (finish(g) || add_epilogue(g, act, 0, 0, sum)) {
		lm_graph_free(g);
		return -1;
	}
	/* Reference via the promoted, right-aligned shapes. */
	int64_t pa[LM_MAX_RANK], pb[LM_MAX_RANK], po[LM_MAX_RANK];
	int64_t a2[LM_MAX_RANK], b2[LM_MAX_RANK];
	int na = ra, nb = rb;
	memcpy(a2, ad, sizeof(int64_t) * (size_t)ra);
	memcpy(b2, bd, sizeof(int64_t) * (size_t)rb);
	if (ra == 1) {
		a2[1] = a2[0];
		a2[0] = 1;
		na = 2;
	}
	if (rb == 1) {
		b2[1] = 1;
		nb = 2;
	}
	int r = na > nb ? na : nb;
	for (int i = 0; i < r; i++) {
		pa[i] = i < r - na ? 1 : a2[i - (r - na)];
		pb[i] = i < r - nb ? 1 : b2[i - (r - nb)];
		po[i] = pa[i] == 1 ? pb[i] : pa[i];
	}
	int64_t M = pa[r - 2], K = pa[r - 1], N = pb[r - 1], batch = 1;
	for (int i = 0; i < r - 2; i++)
		batch *= po[i];
	const float *a = g->values[lm_graph_find(g, "a")].data;
	const float *b = g->values[lm_graph_find(g, "b")].data;
	double *ref = malloc(sizeof(double) * (size_t)(batch * M * N));
	for (int64_t bi = 0; bi < batch; bi++) {
		/* batch index -> operand offsets, broadcasting */
		int64_t idx = bi, oa = 0, ob = 0, sa = 1, sb = 1;
		for (int i = r - 3; i >= 0; i--) {
			int64_t ci = idx % po[i];
			idx /= po[i];
			oa += (pa[i] == 1 ? 0 : ci) * sa;
			ob += (pb[i] == 1 ? 0 : ci) * sb;
			sa *= pa[i];
			sb *= pb[i];
		}
		for (int64_t i = 0; i < M; i++)
		for (int64_t j = 0; j < N; j++) {
			double s = 0;
			for (int64_t p = 0; p < K; p++)
				s += (double)a[oa * M * K + i * K + p] *
				     b[ob * K * N + p * N + j];
			ref[(bi * M + i) * N + j] = s;
		}
	}
	epilogue_ref(g, ref, batch * M * N, act, 0, 0);
	float *y = NULL;
	const char *chosen = "";
	int rc = run_node(g, "", &y, &chosen);
	if (!rc)
		rc = compare(y, ref, batch * M * N, "matmul", chosen);
	free(y);
	free(ref);
	lm_graph_free(g);
	return rc;
}

#define D(...) ((const int64_t[]){ __VA_ARGS__ })

TEST(matmul)
{
	CHECK(matmul_check(1, D(4), 2, D(4, 6), 0, 0, 0) == 0);
	CHECK(matmul_check(2, D(3, 4), 1, D(4), 0, 0, 0) == 0);
	CHECK(matmul_check(1, D(5), 1, D(5), 0, 0, 0) == 0);
	CHECK(matmul_check(4, D(2, 1, 3, 4), 3, D(5, 4, 6), 0, 0, 0) == 0);
	CHECK(matmul_check(3, D(3, 4, 5), 2, D(5, 2), LM_ACT_RELU, 1, 0) == 0);
	CHECK(matmul_check(2, D(4, 5), 3, D(3, 5, 2), 0, 1, 0) == 0);
	CHECK(matmul_check(3, D(2, 1, 8), 3, D(2, 8, 3), 0, 0, 0) == 0);
	CHECK(matmul_check(1, D(7), 3, D(2, 7, 3), 0, 0, 0) == 0);
	/* constant B: lamina's GEMM (tall enough), OpenBLAS, sgemv */
	CHECK(matmul_check(3, D(2, 13, 20), 2, D(20, 37), LM_ACT_RELU, 1, 1)
	      == 0);
	CHECK(matmul_check(4, D(1, 5, 7, 33), 2, D(33, 50), 0, 0, 1) == 0);
	CHECK(matmul_check(2, D(3, 9), 2, D(9, 20), 0, 0, 1) == 0);
	CHECK(matmul_check(1, D(9), 2, D(9, 20), 0, 0, 1) == 0);
	CHECK(matmul_check(2, D(10, 6), 1, D(6), 0, 0, 1) == 0);
	CHECK(matmul_check(3, D(2, 3, 4), 3, D(2, 4, 17), 0, 0, 1) == 0);
}

/* ---- pools ---- */

struct pool_case {
	const char *op;
	int64_t n, c, h, w, kh, kw, sh, sw, dh, dw;
	int64_t pads[4];
	int ceil_mode, cip;     /* count_include_pad */
	int one_d;
};

static int pool_check(const struct pool_case *pc)
{
	lm_graph *g = lm_graph_create("pool");
	int is_max = !strcmp(pc->op, "MaxPool");
	int rank = pc->one_d ? 3 : 4;
	int64_t xd[4] = { pc->n, pc->c, pc->h, pc->w };
	if (pc->one_d)
		xd[2] = pc->w;
	const char *in[] = { "x" };
	value(g, "x", LM_VAL_INPUT, rank, xd);
	lm_node *n = node_y(g, pc->op, in, 1);
	if (pc->one_d) {
		int64_t p[2] = { pc->pads[1], pc->pads[3] };
		tg_attr_is(n, "kernel_shape", &pc->kw, 1);
		tg_attr_is(n, "strides", &pc->sw, 1);
		tg_attr_is(n, "dilations", &pc->dw, 1);
		tg_attr_is(n, "pads", p, 2);
	} else {
		int64_t k[2] = { pc->kh, pc->kw }, s[2] = { pc->sh, pc->sw };
		int64_t d[2] = { pc->dh, pc->dw };
		tg_attr_is(n, "kernel_shape", k, 2);
		tg_attr_is(n, "strides", s, 2);
		tg_attr_is(n, "dilations", d, 2);
		tg_attr_is(n, "pads", pc->pads, 4);
	}
	tg_attr_i(n, "ceil_mode", pc->ceil_mode);
	tg_attr_i(n, "count_include_pad", pc->cip);
	if (finish(g)) {
		lm_graph_free(g);
		return -1;
	}
	lm_value *yv = &g->values[g->nodes[0].outputs[0]];
	int64_t oh = pc->one_d ? 1 : yv->dims[2], ow = yv->dims[rank - 1];
	int64_t ny = numel(yv->rank, yv->dims);
	int64_t pt = pc->one_d ? 0 : pc->pads[0], pl = pc->pads[1];
	int64_t pb = pc->one_d ? 0 : pc->pads[2], pr = pc->pads[3];
	const float *x = g->values[lm_graph_find(g, "x")].data;
	double *ref = malloc(sizeof(double) * (size_t)ny);
	for (int64_t p = 0; p < pc->n * pc->c; p++)
	for (int64_t oy = 0; oy < oh; oy++)
	for (int64_t ox = 0; ox < ow; ox++) {
		double acc = is_max ? -3.4028234663852886e38 : 0;
		int64_t cnt = 0, cnt_pad = 0;
		for (int64_t ky = 0; ky < pc->kh; ky++)
		for (int64_t kx = 0; kx < pc->kw; kx++) {
			int64_t iy = oy * pc->sh - pt + ky * pc->dh;
			int64_t ix = ox * pc->sw - pl + kx * pc->dw;
			cnt_pad += iy < pc->h + pb && ix < pc->w + pr;
			if (iy < 0 || iy >= pc->h || ix < 0 || ix >= pc->w)
				continue;
			double v = x[(p * pc->h + iy) * pc->w + ix];
			acc = is_max ? (v > acc ? v : acc) : acc + v;
			cnt++;
		}
		if (!is_max) {
			int64_t dv = pc->cip ? cnt_pad : cnt;
			acc = dv ? acc / (double)dv : 0;
		}
		ref[(p * oh + oy) * ow + ox] = acc;
	}
	float *y = NULL;
	const char *chosen = "";
	int rc = run_node(g, "", &y, &chosen);
	if (!rc)
		rc = compare(y, ref, ny, pc->op, chosen);
	free(y);
	free(ref);
	lm_graph_free(g);
	return rc;
}

#define CHECK_POOL(...) \
	CHECK(pool_check(&(struct pool_case){ __VA_ARGS__ }) == 0)
#define P1 .sh = 1, .sw = 1, .dh = 1, .dw = 1

/* The pool cases, run under AVX-512 (pool.c's plane path) and portable
 * C (its row passes) by TEST(pools). */
static void pool_cases(void)
{
	static const char *const ops[] = { "MaxPool", "AveragePool" };
	for (int i = 0; i < 2; i++) {
		const char *op = ops[i];
		/* Inception's 3x3 stride-1 pools: odd planes, rows of one,
		 * two and more than four vectors, batch 2 */
		for (int cip = 0; cip < 2; cip++) {
			CHECK_POOL(.op = op, .n = 2, .c = 3, .h = 35, .w = 35,
				   .kh = 3, .kw = 3, P1,
				   .pads = { 1, 1, 1, 1 }, .cip = cip);
			CHECK_POOL(.op = op, .n = 1, .c = 2, .h = 8, .w = 17,
				   .kh = 3, .kw = 3, P1,
				   .pads = { 1, 1, 1, 1 }, .cip = cip);
			CHECK_POOL(.op = op, .n = 1, .c = 2, .h = 5, .w = 70,
				   .kh = 5, .kw = 3, P1,
				   .pads = { 2, 0, 1, 2 }, .cip = cip);
		}
		CHECK_POOL(.op = op, .n = 1, .c = 3, .h = 112, .w = 112,
			   .kh = 3, .kw = 3, .sh = 2, .sw = 2, .dh = 1,
			   .dw = 1, .pads = { 1, 1, 1, 1 });
		for (int cip = 0; cip < 2; cip++) {
			CHECK_POOL(.op = op, .n = 2, .c = 3, .h = 13, .w = 13,
				   .kh = 3, .kw = 3, .sh = 2, .sw = 2, .dh = 1,
				   .dw = 1, .ceil_mode = 1, .cip = cip);
			CHECK_POOL(.op = op, .n = 1, .c = 2, .h = 10, .w = 11,
				   .kh = 3, .kw = 2, .sh = 2, .sw = 3, .dh = 1,
				   .dw = 1, .pads = { 1, 0, 2, 1 },
				   .ceil_mode = 1, .cip = cip);
			CHECK_POOL(.op = op, .n = 1, .c = 2, .h = 9, .w = 8,
				   .kh = 2, .kw = 2, P1,
				   .pads = { 1, 1, 1, 1 }, .cip = cip);
		}
		CHECK_POOL(.op = op, .n = 1, .c = 4, .h = 1, .w = 1, .kh = 1,
			   .kw = 1, P1);
		CHECK_POOL(.op = op, .n = 1, .c = 4, .h = 1, .w = 1, .kh = 3,
			   .kw = 3, P1, .pads = { 1, 1, 1, 1 }, .cip = 1);
		CHECK_POOL(.op = op, .n = 1, .c = 3, .h = 1, .w = 20, .kh = 1,
			   .kw = 4, .sh = 1, .sw = 2, .dh = 1, .dw = 1,
			   .pads = { 0, 1, 0, 2 }, .one_d = 1, .cip = 1);
	}
	/* dilations (MaxPool since opset 10) */
	CHECK_POOL(.op = "MaxPool", .n = 1, .c = 2, .h = 12, .w = 13,
		   .kh = 3, .kw = 2, .sh = 1, .sw = 2, .dh = 2, .dw = 3,
		   .pads = { 2, 1, 1, 2 }, .ceil_mode = 1);
	CHECK_POOL(.op = "MaxPool", .n = 1, .c = 1, .h = 224, .w = 224,
		   .kh = 2, .kw = 2, .sh = 2, .sw = 2, .dh = 1, .dw = 1);
	CHECK_POOL(.op = "MaxPool", .n = 1, .c = 2, .h = 19, .w = 21,
		   .kh = 3, .kw = 3, .sh = 1, .sw = 1, .dh = 2, .dw = 2,
		   .pads = { 2, 2, 2, 2 });
}

TEST(pools)
{
	lm_isa_cap(LM_ISA_C);
	isa_name = "c";
	pool_cases();
	lm_isa_cap(LM_ISA_AVX512);
	isa_name = "best";
	pool_cases();
}

static int global_check(const char *op, int rank, const int64_t *dims)
{
	lm_graph *g = lm_graph_create("gpool");
	const char *in[] = { "x" };
	value(g, "x", LM_VAL_INPUT, rank, dims);
	node_y(g, op, in, 1);
	if (finish(g)) {
		lm_graph_free(g);
		return -1;
	}
	int64_t planes = dims[0] * dims[1], sp = numel(rank - 2, dims + 2);
	const float *x = g->values[lm_graph_find(g, "x")].data;
	double *ref = malloc(sizeof(double) * (size_t)planes);
	for (int64_t p = 0; p < planes; p++) {
		double s = 0, m = -INFINITY;
		for (int64_t i = 0; i < sp; i++) {
			s += x[p * sp + i];
			m = x[p * sp + i] > m ? x[p * sp + i] : m;
		}
		ref[p] = strcmp(op, "GlobalMaxPool") ? s / (double)sp : m;
	}
	float *y = NULL;
	const char *chosen = "";
	int rc = run_node(g, "", &y, &chosen);
	if (!rc)
		rc = compare(y, ref, planes, op, chosen);
	free(y);
	free(ref);
	lm_graph_free(g);
	return rc;
}

TEST(global_pools)
{
	CHECK(global_check("GlobalAveragePool", 4, D(2, 5, 7, 7)) == 0);
	CHECK(global_check("GlobalMaxPool", 4, D(1, 3, 13, 1)) == 0);
	CHECK(global_check("GlobalAveragePool", 3, D(1, 4, 1)) == 0);
	CHECK(global_check("GlobalMaxPool", 5, D(1, 2, 3, 4, 5)) == 0);
}

TEST(pool_rejects)
{
	lm_graph *g = lm_graph_create("pool");
	const char *in[] = { "x" }, *out[] = { "y", "idx" };
	int64_t k[2] = { 2, 2 };
	value(g, "x", LM_VAL_INPUT, 4, D(1, 1, 4, 4));
	int ni = lm_graph_add_node(g, "n", "MaxPool", "", in, 1, out, 2, NULL);
	CHECK(ni >= 0);
	tg_attr_is(&g->nodes[ni], "kernel_shape", k, 2);
	CHECK(finish(g) == 0);
	float *y = NULL;
	const char *chosen;
	CHECK(run_node(g, "", &y, &chosen) == -ENOTSUP);
	lm_graph_free(g);
}

int main(void)
{
	printf("AVX-512 kernels: %s\n", lm_have_avx512() ? "yes" : "no");
	RUN(conv_3x3_plain);
	RUN(conv_odd_channels);
	RUN(conv_tiny_images);
	RUN(conv_pads);
	RUN(conv_strides_dilations);
	RUN(conv_groups_batch);
	RUN(conv_depthwise);
	RUN(conv_depthwise_vector);
	RUN(conv_depthwise_fused);
	RUN(conv_direct);
	RUN(conv_grouped);
	RUN(conv_epilogue);
	RUN(conv_epilogue_bitwise);
	RUN(conv_1d_and_runtime_weights);
	RUN(conv_winograd_accuracy);
	RUN(conv_rejects);
	RUN(convtranspose);
	RUN(gemm);
	RUN(gemm_few_rows);
	RUN(matmul);
	RUN(pools);
	RUN(global_pools);
	RUN(pool_rejects);
	return harness_done();
}
