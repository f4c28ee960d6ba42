/*
 * test_misc_kernels.c: unit tests of the kernels of the elementwise, norm
 * and shape families (runtime/ops/{elementwise,norm,shape_ops}.c) and of
 * the activations and fused epilogue (runtime/kernels/act.c).
 *
 * A case builds a one-node graph through the lm_graph_* API (graph inputs,
 * constant initializers, attributes), sorts it and infers shapes, prepares
 * the node's kernel through the operator table and runs it on tensors
 * allocated here, the way the executor would.  Expected values are worked
 * out by hand or by a double-precision reference written in the test;
 * floats must match within a relative 1e-6 (math functions) or exactly
 * (data movement).  Unsupported attributes and types must fail at prepare
 * with a message naming the node.
 */
#include "lamina/graph.h"
#include "../../runtime/ops/kernel.h"
#include "harness.h"
#include "testgraph.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIST(...)                                                       \
	((const char *const[]){ __VA_ARGS__ }),                         \
	(int)(sizeof((const char *const[]){ __VA_ARGS__ }) /            \
	      sizeof(const char *))
#define DIMS(...) ((const int64_t[]){ __VA_ARGS__ })
#define F32S(...) ((const float[]){ __VA_ARGS__ })
#define I64S(...) ((const int64_t[]){ __VA_ARGS__ })
#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* ---- data ---- */

static uint64_t rng = 0x9e3779b97f4a7c15ull;

/* Uniform in [lo, hi), deterministic (xorshift). */
static float frand(float lo, float hi)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	double u = (double)(rng >> 11) / 9007199254740992.0;
	return (float)(lo + (hi - lo) * u);
}

static void fill_rand(float *p, size_t n, float lo, float hi)
{
	for (size_t i = 0; i < n; i++)
		p[i] = frand(lo, hi);
}

/*
 * Are got[i] and want[i] within rtol relative (or atol absolute, for
 * values near 0)?  Prints the first difference.
 */
static int close_to(const float *got, const double *want, size_t n,
		    double rtol, double atol)
{
	for (size_t i = 0; i < n; i++) {
		double d = fabs((double)got[i] - want[i]);
		if ((double)got[i] == want[i])
			continue;       /* infinities included */
		int bad = isnan(want[i]) ? !isnan(got[i])
			: !(d <= atol || d <= rtol * fabs(want[i]));
		if (bad) {
			printf("  [%zu]: got %.9g, want %.9g\n", i,
			       (double)got[i], want[i]);
			return 0;
		}
	}
	return 1;
}

static int same_f32(const float *got, const float *want, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (memcmp(&got[i], &want[i], sizeof(float)) != 0 &&
		    !(isnan(got[i]) && isnan(want[i]))) {
			printf("  [%zu]: got %.9g, want %.9g\n", i,
			       (double)got[i], (double)want[i]);
			return 0;
		}
	}
	return 1;
}

static int same_i64(const int64_t *got, const int64_t *want, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (got[i] != want[i]) {
			printf("  [%zu]: got %lld, want %lld\n", i,
			       (long long)got[i], (long long)want[i]);
			return 0;
		}
	}
	return 1;
}

static int same_u8(const uint8_t *got, const uint8_t *want, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (got[i] != want[i]) {
			printf("  [%zu]: got %d, want %d\n", i, got[i],
			       want[i]);
			return 0;
		}
	}
	return 1;
}

/* ---- graph building ---- */

/* A 1-D int64 initializer. */
static int ints(lm_graph *g, const char *name, const int64_t *vals, int n)
{
	int64_t len = n;
	return tg_init(g, name, LM_DT_INT64, 1, &len, vals);
}

/* A float scalar initializer. */
static int scalar(lm_graph *g, const char *name, float v)
{
	return tg_init(g, name, LM_DT_FLOAT, 0, NULL, &v);
}

/* ---- running one node as the executor would ---- */

#define FX_MAX 8

struct fx {
	lm_graph *g;
	lm_node *n;
	lm_kernel k;
	lm_tensor in[FX_MAX], out[FX_MAX];
	lm_tensor *inp[FX_MAX], *outp[FX_MAX];
	void *scratch;
	lm_error e;
};

/*
 * Sort, infer and prepare node 0 of g (taking ownership of g), then give
 * every graph input and output a zeroed tensor; constants are read from
 * the graph.  Returns prepare's code; f->e holds its message.
 */
static int fx_prepare(struct fx *f, lm_graph *g)
{
	int rc;

	memset(f, 0, sizeof(*f));
	f->g = g;
	if ((rc = lm_graph_sort(g, &f->e)) ||
	    (rc = lm_graph_infer_shapes(g, &f->e)))
		return rc;
	f->n = &g->nodes[0];
	const lm_op *op = lm_op_find("", f->n->op_type);
	if (!op || !op->prepare)
		return -ENOSYS;
	if ((rc = op->prepare(g, f->n, &f->k, &f->e)))
		return rc;
	if (!f->k.run)
		return -EINVAL;
	for (int i = 0; i < f->n->n_inputs && i < FX_MAX; i++) {
		lm_value *v = lm_node_in(g, f->n, i);
		if (!v)
			continue;
		if (lm_value_is_const(v))
			lm_value_as_tensor(v, &f->in[i]);
		else if (lm_tensor_alloc(&f->in[i], v->dtype, v->rank,
					 v->dims))
			return -ENOMEM;
		f->inp[i] = &f->in[i];
	}
	for (int i = 0; i < f->n->n_outputs && i < FX_MAX; i++) {
		lm_value *v = lm_node_out(g, f->n, i);
		if (!v)
			continue;
		if (lm_tensor_alloc(&f->out[i], v->dtype, v->rank, v->dims))
			return -ENOMEM;
		f->outp[i] = &f->out[i];
	}
	if (f->k.scratch_bytes) {
		size_t b = (f->k.scratch_bytes + 63) & ~(size_t)63;
		f->scratch = aligned_alloc(64, b);
		if (!f->scratch)
			return -ENOMEM;
		/* Kernels must not expect zeroed scratch. */
		memset(f->scratch, 0xa5, b);
	}
	return 0;
}

/* Copy data into graph input i. */
static void fx_set(struct fx *f, int i, const void *data)
{
	memcpy(f->in[i].data, data, f->in[i].nbytes);
}

static int fx_run(struct fx *f)
{
	lm_kargs a = {
		.node = f->n,
		.in = f->inp,
		.n_in = f->n->n_inputs,
		.out = f->outp,
		.n_out = f->n->n_outputs,
		.state = f->k.state,
		.scratch = f->scratch,
		.threads = 1,
	};
	return f->k.run(&a);
}

/* Run with output 0 in the memory of input 0, as the executor does for
 * an in-place kernel; the result is left in in[0]. */
static int fx_run_inplace(struct fx *f)
{
	void *own = f->out[0].data;
	f->out[0].data = f->in[0].data;
	int rc = fx_run(f);
	f->out[0].data = own;
	return rc;
}

static void fx_free(struct fx *f)
{
	if (f->k.free_state)
		f->k.free_state(f->k.state);
	for (int i = 0; i < FX_MAX; i++) {
		lm_tensor_free(&f->in[i]);
		lm_tensor_free(&f->out[i]);
	}
	free(f->scratch);
	lm_graph_free(f->g);
	memset(f, 0, sizeof(*f));
}

#define OUTF(f, i) ((float *)(f)->out[i].data)
#define INF_(f, i) ((float *)(f)->in[i].data)

/* Prepare must fail with "node 'n' (Op): ..." containing `what`. */
static int rejects(lm_graph *g, const char *what)
{
	struct fx f;
	int rc = fx_prepare(&f, g);
	int ok = rc < 0 && strncmp(f.e.msg, "node 'n' (", 10) == 0 &&
		 strstr(f.e.msg, what) != NULL;

	if (!ok)
		printf("  rc %d, message: %s\n", rc, f.e.msg);
	fx_free(&f);
	return ok;
}

/* ---- activations and the epilogue ---- */

/* One float unary node over n values of x, compared with ref(x) in
 * double, out of place and in place. */
static int unary_vs(const char *op, const float *x, size_t n,
		    double (*ref)(double), double rtol, double atol,
		    void (*attrs)(lm_node *))
{
	struct fx f;
	lm_graph *g = tg_graph(20);
	int64_t len = (int64_t)n;
	double *want = malloc(n * sizeof(double));
	int ok = 0;

	tg_input(g, "x", LM_DT_FLOAT, 1, &len);
	lm_node *nd = tg_node(g, "n", op, LIST("x"), LIST("y"));
	if (attrs)
		attrs(nd);
	for (size_t i = 0; i < n; i++)
		want[i] = ref(x[i]);
	if (fx_prepare(&f, g) == 0 && f.k.inplace) {
		fx_set(&f, 0, x);
		ok = fx_run(&f) == 0 &&
		     close_to(OUTF(&f, 0), want, n, rtol, atol) &&
		     fx_run_inplace(&f) == 0 &&
		     close_to(INF_(&f, 0), want, n, rtol, atol);
	} else {
		printf("  prepare: %s\n", f.e.msg);
	}
	fx_free(&f);
	free(want);
	return ok;
}

/* Values spanning the interesting ranges, an odd count so every vector
 * loop has a tail, plus the edges. */
static float *sweep(float lo, float hi, size_t *n)
{
	static const float edge[] = { 0.0f, -0.0f, 1e-7f, -1e-7f, 1e-3f,
				      -1e-3f, 0.5f, -0.5f, 0.625f, -0.75f };
	size_t m = 2001, k = N_OF(edge);
	float *x = malloc((m + k) * sizeof(float));

	for (size_t i = 0; i < m; i++)
		x[i] = lo + (hi - lo) * (float)i / (float)(m - 1);
	memcpy(x + m, edge, sizeof(edge));
	*n = m + k;
	return x;
}

static double ref_relu(double x) { return x < 0 ? 0 : x; }
static double ref_leaky(double x) { return x < 0 ? 0.1 * x : x; }
static double ref_sigmoid(double x) { return 1 / (1 + exp(-x)); }
static double ref_hsig(double x)
{
	return fmax(0, fmin(1, 0.25 * x + 0.375));
}
static double ref_hswish(double x)
{
	return x * fmax(0, fmin(1, x / 6 + 0.5));
}
static double ref_exp(double x) { return exp(x); }
static double ref_neg(double x) { return -x; }
static double ref_abs(double x) { return fabs(x); }
static double ref_recip(double x) { return 1 / x; }
static double ref_sqrt(double x) { return sqrt(x); }
static double ref_gelu(double x) { return 0.5 * x * erfc(-x / sqrt(2)); }
static double ref_gelu_tanh(double x)
{
	/* x sigmoid(2u), the same function as x/2 (1 + tanh u) but without
	 * double's own cancellation for large negative x. */
	double u = sqrt(2 / M_PI) * (x + 0.044715 * x * x * x);
	return x / (1 + exp(-2 * u));
}

static void leaky_attrs(lm_node *n) { tg_attr_f(n, "alpha", 0.1f); }
static void hsig_attrs(lm_node *n)
{
	tg_attr_f(n, "alpha", 0.25f);
	tg_attr_f(n, "beta", 0.375f);
}
static void gelu_tanh_attrs(lm_node *n) { tg_attr_s(n, "approximate", "tanh"); }

TEST(activations_match_double)
{
	size_t n;
	float *x = sweep(-30, 30, &n);

	CHECK(unary_vs("Relu", x, n, ref_relu, 0, 0, NULL));
	CHECK(unary_vs("LeakyRelu", x, n, ref_leaky, 1e-7, 0, leaky_attrs));
	CHECK(unary_vs("Sigmoid", x, n, ref_sigmoid, 1e-6, 1e-30, NULL));
	CHECK(unary_vs("Tanh", x, n, tanh, 1e-6, 0, NULL));
	CHECK(unary_vs("HardSigmoid", x, n, ref_hsig, 1e-6, 1e-7,
		       hsig_attrs));
	CHECK(unary_vs("HardSwish", x, n, ref_hswish, 1e-6, 1e-7, NULL));
	CHECK(unary_vs("Neg", x, n, ref_neg, 0, 0, NULL));
	CHECK(unary_vs("Abs", x, n, ref_abs, 0, 0, NULL));
	CHECK(unary_vs("Reciprocal", x, n, ref_recip, 1e-7, 0, NULL));
	free(x);
	x = sweep(-100, 88, &n);
	CHECK(unary_vs("Exp", x, n, ref_exp, 1e-6, 1e-44, NULL));
	free(x);
	x = sweep(0, 1e4f, &n);
	CHECK(unary_vs("Sqrt", x, n - 4, ref_sqrt, 1e-7, 0, NULL));
	free(x);
}

TEST(erf_and_gelu_match_erf)
{
	size_t n;
	float *x = sweep(-6, 6, &n);

	CHECK(unary_vs("Erf", x, n, erf, 1e-6, 0, NULL));
	free(x);
	/* GELU's negative tail is small but must keep its relative
	 * accuracy: it is computed from erfc, not 1 + erf. */
	x = sweep(-12, 12, &n);
	CHECK(unary_vs("Gelu", x, n, ref_gelu, 1e-6, 1e-37, NULL));
	free(x);
	/* The tanh form's exponent 2u = 1.6 (x + 0.045 x^3) is rounded to
	 * float, worth |2u| 2^-24 relative: 1e-6 at x = -5. */
	x = sweep(-5, 12, &n);
	CHECK(unary_vs("Gelu", x, n, ref_gelu_tanh, 5e-6, 1e-30,
		       gelu_tanh_attrs));
	free(x);
}

TEST(special_values)
{
	const float x[] = { NAN, INFINITY, -INFINITY, 100, -100, 89, -104 };
	float y[N_OF(x)];

	memcpy(y, x, sizeof(x));
	lm_act_apply(LM_ACT_SIGMOID, 0, 0, y, N_OF(x));
	CHECK(isnan(y[0]) && y[1] == 1 && y[2] == 0 && y[3] == 1 &&
	      y[4] < 1e-40);
	memcpy(y, x, sizeof(x));
	lm_act_apply(LM_ACT_TANH, 0, 0, y, N_OF(x));
	CHECK(isnan(y[0]) && y[1] == 1 && y[2] == -1 && y[3] == 1 &&
	      y[4] == -1);
	memcpy(y, x, sizeof(x));
	lm_act_apply(LM_ACT_SILU, 0, 0, y, N_OF(x));
	CHECK(isnan(y[0]) && y[1] == INFINITY && y[3] == 100 && y[4] > -1e-38 &&
	      y[4] <= 0);
	memcpy(y, x, sizeof(x));
	lm_act_apply(LM_ACT_RELU, 0, 0, y, N_OF(x));
	CHECK(isnan(y[0]) && y[1] == INFINITY && y[2] == 0 && y[4] == 0);
}

TEST(clip_limits)
{
	struct fx f;
	lm_graph *g;
	const float x[] = { -3, -1, 0, 0.5f, 2, 7 };

	/* Opset 13: constant min and max inputs. */
	g = tg_graph(13);
	tg_input(g, "x", LM_DT_FLOAT, 2, DIMS(2, 3));
	scalar(g, "lo", -1.5f);
	scalar(g, "hi", 1.0f);
	tg_node(g, "n", "Clip", LIST("x", "lo", "hi"), LIST("y"));
	CHECK(fx_prepare(&f, g) == 0);
	fx_set(&f, 0, x);
	CHECK(fx_run(&f) == 0);
	CHECK(same_f32(OUTF(&f, 0), F32S(-1.5f, -1, 0, 0.5f, 1, 1), 6));
	fx_free(&f);

	/* min omitted, max a graph input read at run time. */
	g = tg_graph(13);
	tg_input(g, "x", LM_DT_FLOAT, 2, DIMS(2, 3));
	tg_input(g, "hi", LM_DT_FLOAT, 0, NULL);
	tg_node(g, "n", "Clip", LIST("x", "", "hi"), LIST("y"));
	CHECK(fx_prepare(&f, g) == 0);
	fx_set(&f, 0, x);
	fx_set(&f, 2, F32S(0.25f));
	CHECK(fx_run(&f) == 0);
	CHECK(same_f32(OUTF(&f, 0), F32S(-3, -1, 0, 0.25f, 0.25f, 0.25f), 6));
	fx_free(&f);

	/* Opset 6: attributes. */
	g = tg_graph(6);
	tg_input(g, "x", LM_DT_FLOAT, 2, DIMS(2, 3));
	lm_node *n = tg_node(g, "n", "Clip", LIST("x"), LIST("y"));
	tg_attr_f(n, "min", 0);
	tg_attr_f(n, "max", 6);
	CHECK(fx_prepare(&f, g) == 0);
	fx_set(&f, 0, x);
	CHECK(fx_run_inplace(&f) == 0);
	CHECK(same_f32(INF_(&f, 0), F32S(0, 0, 0, 0.5f, 2, 6), 6));
	fx_free(&f);
}

TEST(epilogue_from_attributes)
{
	lm_graph *g = tg_graph(17);
	lm_epilogue ep;

	tg_input(g, "x", LM_DT_FLOAT, 1, DIMS(4));
	lm_node *n = tg_node(g, "n", "Relu", LIST("x", "x"), LIST("y"));
	lm_epilogue_get(n, &ep);
	CHECK(ep.act == LM_ACT_NONE && ep.sum_input == -1);

	tg_attr_i(n, "lm.act", LM_ACT_LEAKY_RELU);
	lm_epilogue_get(n, &ep);
	CHECK(ep.act == LM_ACT_LEAKY_RELU && ep.alpha == 0.01f);

	tg_attr_f(n, "lm.alpha", 0.2f);
	tg_attr_i(n, "lm.sum", 1);
	lm_epilogue_get(n, &ep);
	CHECK(ep.alpha == 0.2f && ep.sum_input == 1);

	/* y = leaky(y + sum) */
	float y[37], s[37];
	double want[37];
	for (int i = 0; i < 37; i++) {
		y[i] = (float)(i - 20);
		s[i] = 0.5f;
		double v = y[i] + 0.5;
		want[i] = v < 0 ? 0.2 * v : v;
	}
	lm_epilogue_apply(&ep, y, s, 37);
	CHECK(close_to(y, want, 37, 1e-7, 0));

	/* No activation, only the residual sum. */
	ep.act = LM_ACT_NONE;
	lm_epilogue_apply(&ep, y, s, 37);
	for (int i = 0; i < 37; i++)
		want[i] += 0.5;
	CHECK(close_to(y, want, 37, 1e-7, 0));
	lm_graph_free(g);
}

TEST(epilogue_silu_and_clip)
{
	float y[1000], s[1000];
	double want[1000];
	lm_epilogue ep = { LM_ACT_SILU, 0, 0, -1 };

	fill_rand(y, 1000, -20, 20);
	fill_rand(s, 1000, -1, 1);
	for (int i = 0; i < 1000; i++) {
		double v = (double)y[i] + s[i];
		want[i] = v / (1 + exp(-v));
	}
	lm_epilogue_apply(&ep, y, s, 1000);
	CHECK(close_to(y, want, 1000, 1e-6, 1e-30));

	ep = (lm_epilogue){ LM_ACT_CLIP, 0, 6, -1 };
	fill_rand(y, 1000, -20, 20);
	for (int i = 0; i < 1000; i++)
		want[i] = fmin(6, fmax(0, y[i]));
	lm_epilogue_apply(&ep, y, NULL, 1000);
	CHECK(close_to(y, want, 1000, 0, 0));
}

/* ---- binary elementwise ---- */

/* NumPy-style reference: element i of the output from a and b of their
 * own shapes, aligned right. */
static int64_t bsrc(int orank, const int64_t *od, int rank, const int64_t *d,
		    int64_t i)
{
	int64_t off = 0, st = 1;
	for (int k = orank - 1; k >= 0; k--) {
		int64_t c = i % od[k];
		i /= od[k];
		int j = k - (orank - rank);
		if (j < 0)
			continue;
		if (d[j] != 1)
			off += c * st;
		st *= d[j];
	}
	return off;
}

/* Run op on random a (ra, da) and b (rb, db) and compare with a double
 * reference f, in place too when the kernel allows it. */
static int binary_vs(const char *op, int ra, const int64_t *da, int rb,
		     const int64_t *db, double (*f)(double, double),
		     const char *impl)
{
	struct fx f_;
	struct fx *fx = &f_;
	lm_graph *g = tg_graph(17);
	int ok = 0;

	tg_input(g, "a", LM_DT_FLOAT, ra, da);
	tg_input(g, "b", LM_DT_FLOAT, rb, db);
	tg_node(g, "n", op, LIST("a", "b"), LIST("y"));
	if (fx_prepare(fx, g)) {
		printf("  prepare: %s\n", fx->e.msg);
		fx_free(fx);
		return 0;
	}
	lm_value *y = lm_node_out(g, fx->n, 0);
	size_t na = fx->in[0].nbytes / 4, nb = fx->in[1].nbytes / 4;
	size_t ny = fx->out[0].nbytes / 4;
	fill_rand(INF_(fx, 0), na, -4, 4);
	fill_rand(INF_(fx, 1), nb, 0.5f, 4);
	double *want = malloc(ny * sizeof(double));
	for (size_t i = 0; i < ny; i++)
		want[i] = f(INF_(fx, 0)[bsrc(y->rank, y->dims, ra, da,
					     (int64_t)i)],
			    INF_(fx, 1)[bsrc(y->rank, y->dims, rb, db,
					     (int64_t)i)]);
	ok = fx_run(fx) == 0 && close_to(OUTF(fx, 0), want, ny, 1e-7, 0);
	if (ok && impl && strcmp(fx->k.impl, impl) != 0) {
		printf("  impl %s, expected %s\n", fx->k.impl, impl);
		ok = 0;
	}
	if (ok && fx->k.inplace)
		ok = na == ny && fx_run_inplace(fx) == 0 &&
		     close_to(INF_(fx, 0), want, ny, 1e-7, 0);
	free(want);
	fx_free(fx);
	return ok;
}

static double add(double a, double b) { return a + b; }
static double sub(double a, double b) { return a - b; }
static double mul(double a, double b) { return a * b; }
static double divd(double a, double b) { return (float)a / (float)b; }
static double maxd(double a, double b) { return a > b ? a : b; }
static double powd(double a, double b) { return powf((float)a, (float)b); }

TEST(binary_same_shape_and_in_place)
{
	CHECK(binary_vs("Add", 2, DIMS(5, 37), 2, DIMS(5, 37), add,
			"binary-same"));
	CHECK(binary_vs("Sub", 1, DIMS(1), 1, DIMS(1), sub, "binary-same"));
	CHECK(binary_vs("Div", 3, DIMS(3, 1, 17), 3, DIMS(3, 1, 17), divd,
			NULL));
}

TEST(binary_broadcasts)
{
	/* (2,1,4) + (3,1) -> (2,3,4) */
	CHECK(binary_vs("Add", 3, DIMS(2, 1, 4), 2, DIMS(3, 1), add, NULL));
	/* per channel, both ways round */
	CHECK(binary_vs("Mul", 4, DIMS(2, 3, 5, 7), 4, DIMS(1, 3, 1, 1), mul,
			"binary-channel"));
	CHECK(binary_vs("Mul", 4, DIMS(1, 17, 1, 1), 4, DIMS(2, 17, 3, 3), mul,
			"binary-channel"));
	CHECK(binary_vs("Sub", 4, DIMS(2, 17, 9, 9), 3, DIMS(17, 1, 1), sub,
			"binary-channel"));
	/* trailing vector (N,K) + (K) */
	CHECK(binary_vs("Add", 2, DIMS(6, 33), 1, DIMS(33), add,
			"binary-broadcast"));
	/* scalars on either side */
	CHECK(binary_vs("Div", 3, DIMS(2, 3, 19), 0, NULL, divd,
			"binary-scalar"));
	CHECK(binary_vs("Div", 0, NULL, 2, DIMS(4, 19), divd,
			"binary-scalar"));
	CHECK(binary_vs("Max", 2, DIMS(1, 1), 0, NULL, maxd, NULL));
	/* an outer product */
	CHECK(binary_vs("Mul", 2, DIMS(7, 1), 2, DIMS(1, 5), mul, NULL));
	CHECK(binary_vs("Pow", 2, DIMS(3, 4), 1, DIMS(4), powd, NULL));
}

TEST(variadic_max_min)
{
	struct fx f;
	lm_graph *g = tg_graph(13);

	tg_input(g, "a", LM_DT_FLOAT, 2, DIMS(3, 1));
	tg_input(g, "b", LM_DT_FLOAT, 1, DIMS(4));
	tg_input(g, "c", LM_DT_FLOAT, 3, DIMS(2, 1, 1));
	tg_node(g, "n", "Min", LIST("a", "b", "c"), LIST("y"));
	CHECK(fx_prepare(&f, g) == 0);
	fx_set(&f, 0, F32S(1, 5, NAN));
	fx_set(&f, 1, F32S(0, 2, 4, 6));
	fx_set(&f, 2, F32S(3, -1));
	CHECK(fx_run(&f) == 0);
	const float want[] = {
		0, 1, 1, 1,   0, 2, 3, 3,   NAN, NAN, NAN, NAN,
		-1, -1, -1, -1,   -1, -1, -1, -1,   NAN, NAN, NAN, NAN,
	};
	CHECK(same_f32(OUTF(&f, 0), want, 24));
	fx_free(&f);
}

TEST(integer_arithmetic)
{
	struct fx f;
	lm_graph *g = tg_graph(17);

	tg_input(g, "a", LM_DT_INT64, 1, DIMS(5));
	tg_init(g, "b", LM_DT_INT64, 0, NULL, I64S(-2));
	tg_node(g, "n", "Div", LIST("a", "b"), LIST("y"));
	CHECK(fx_prepare(&f, g) == 0);
	fx_set(&f, 0, I64S(7, -7, 0, INT64_MIN, 5));
	CHECK(fx_run(&f) == 0);
	CHECK(same_i64(f.out[0].data, I64S(-3, 3, 0, INT64_MIN / -2, -2), 5));
	fx_free(&f);

	/* Division by zero gives 0 instead of a trap. */
	g = tg_graph(17);
	tg_input(g, "a", LM_DT_INT32, 1, DIMS(3));
	tg_input(g, "b", LM_DT_INT32, 1, DIMS(3));
	tg_node(g, "n", "Div", LIST("a", "b"), LIST("y"));
	CHECK(fx_prepare(&f, g) == 0);
	fx_set(&f, 0, ((const int32_t[]){ 9, INT32_MIN, 4 }));
	fx_set(&f, 1, ((const int32_t[]){ 0, -1, 3 }));
	CHECK(fx_run(&f) == 0);
	const int32_t *y = f.out[0].data;
	CHECK(y[0] == 0 && y[1] == INT32_MIN && y[2] == 1);
	fx_free(&f);

	g = tg_graph(17);
	tg_input(g, "a", LM_DT_INT64, 2, DIMS(2, 1));
	tg_input(g, "b", LM_DT_INT64, 1, DIMS(3));
	tg_node(g, "n", "Less", LIST("a", "b"), LIST("y"));
	CHECK(fx_prepare(&f, g) == 0);
	fx_set(&f, 0, I64S(1, 5));
	fx_set(&f, 1, I64S(0, 2, 9));
	CHECK(fx_run(&f) == 0);
	CHECK(same_u8(f.out[0].data, (const uint8_t[]){ 0, 1, 1, 0, 0, 1 },
		      6));
	fx_free(&f);

	g = tg_graph(17);
	tg_input(g, "a", LM_DT_INT64, 1, DIMS(4));
	tg_init(g, "b", LM_DT_INT64, 1, DIMS(4), I64S(1, 1, 1, 1));
	tg_node(g, "n", "Mul", LIST("a", "b"), LIST("y"));
	CHECK(fx_prepare(&f, g) == 0);
	CHECK(f.k.inplace);
	fx_set(&f, 0, I64S(3, -4, INT64_MAX, 0));
	CHECK(fx_run_inplace(&f) == 0);
	CHECK(same_i64(f.in[0].data, I64S(3, -4, INT64_MAX, 0), 4));
	fx_free(&f);
}

TEST(float_comparisons)
{
	struct fx f;
	lm_graph *g = tg_graph(17);

	tg_input(g, "a", LM_DT_FLOAT, 2, DIMS(2, 3));
	scalar(g, "b", 1.0f);
	tg_node(g, "n", "Greater", LIST("a", "b"), LIST("y"));
	CHECK(fx_prepare(&f, g) == 0);
	fx_set(&f, 0, F32S(0, 1, 2, NAN, -5, 1.5f));
	CHECK(fx_run(&f) == 0);
	CHECK(same_u8(f.out[0].data, (const uint8_t[]){ 0, 0, 1, 0, 0, 1 },
		      6));
	fx_free(&f);

	g = tg_graph(17);
	tg_input(g, "a", LM_DT_FLOAT, 1, DIMS(3));
	tg_input(g, "b", LM_DT_FLOAT, 2, DIMS(2, 1));
	tg_node(g, "n", "Equal", LIST("a", "b"), LIST("y"));
	CHECK(fx_prepare(&f, g) == 0);
	fx_set(&f, 0, F32S(1, 2, 3));
	fx_set(&f, 1, F32S(2, 3));
	CHECK(fx_run(&f) == 0);
	CHECK(same_u8(f.out[0].data, (const uint8_t[]){ 0, 1, 0, 0, 0, 1 },
		      6));
	fx_free(&f);
}

TEST(bool_logic_and_where)
{
	struct fx f;
	lm_graph *g = tg_graph(17);

	tg_input(g, "a", LM_DT_BOOL, 1, DIMS(4));
	tg_input(g, "b", LM_DT_BOOL, 2, DIMS(2, 1));
	tg_node(g, "n", "Or", LIST("a", "b"), LIST("y"));
	CHECK(fx_prepare(&f, g) == 0);
	fx_set(&f, 0, ((const uint8_t[]){ 0, 1, 0, 1 }));
	fx_set(&f, 1, ((const uint8_t[]){ 0, 1 }));
	CHECK(fx_run(&f) == 0);
	CHECK(same_u8(f.out[0].data,
		      (const uint8_t[]){ 0, 1, 0, 1, 1, 1, 1, 1 }, 8));
	fx_free(&f);

	g = tg_graph(17);
	tg_input(g, "a", LM_DT_BOOL, 1, DIMS(3));
	tg_node(g, "n", "Not", LIST("a"), LIST("y"));
	CHECK(fx_prepare(&f, g) == 0);
	fx_set(&f, 0, ((const uint8_t[]){ 0, 1, 0 }));
	CHECK(fx_run_inplace(&f) == 0);
	CHECK(same_u8(f.in[0].data, (const uint8_t[]){ 1, 0, 1 }, 3));
	fx_free(&f);

	/* Where(cond (2,1), x (1,3), y scalar) -> (2,3) */
	g = tg_graph(17);
	tg_input(g, "c", LM_DT_BOOL, 2, DIMS(2, 1));
	tg_input(g, "x", LM_DT_FLOAT, 2, DIMS(1, 3));
	scalar(g, "z", -1.0f);
	tg_node(g, "n", "Where", LIST("c", "x", "z"), LIST("y"));
	CHECK(fx_prepare(&f, g) == 0);
	fx_set(&f, 0, ((const uint8_t[]){ 1, 0 }));
	fx_set(&f, 1, F32S(1, 2, 3));
	CHECK(fx_run(&f) == 0);
	CHECK(same_f32(OUTF(&f, 0), F32S(1, 2, 3, -1, -1, -1), 6));
	fx_free(&f);

	/* int64 values, cond per element */
	g = tg_graph(17);
	tg_input(g, "c", LM_DT_BOOL, 1, DIMS(4));
	tg_input(g, "x", LM_DT_INT64, 1, DIMS(4));
	tg_input(g, "z", LM_DT_INT64, 1, DIMS(1));
	tg_node(g, "n", "Where", LIST("c", "x", "z"), LIST("y"));
	CHECK(fx_prepare(&f, g) == 0);
	fx_set(&f, 0, ((const uint8_t[]){ 1, 0, 0, 1 }));
	fx_set(&f, 1, I64S(10, 20, 30, 40));
	fx_set(&f, 2, I64S(7));
	CHECK(fx_run(&f) == 0);
	CHECK(same_i64(f.out[0].data, I64S(10, 7, 7, 40), 4));
	fx_free(&f);
}

TEST(pow_constant_exponents)
{
	static const float exps[] = { 2, 3, 0.5f, -1, 1.5f };

	for (size_t k = 0; k < N_OF(exps); k++) {
		struct fx f;
		lm_graph *g = tg_graph(17);
		double want[40];
		tg_input(g, "x", LM_DT_FLOAT, 2, DIMS(2, 20));
		scalar(g, "p", exps[k]);
		tg_node(g, "n", "Pow", LIST("x", "p"), LIST("y"));
		CHECK(fx_prepare(&f, g) == 0);
		CHECK(strcmp(f.k.impl, "pow-scalar") == 0);
		fill_rand(INF_(&f, 0), 40, 0.1f, 5);
		for (int i = 0; i < 40; i++)
			want[i] = pow(INF_(&f, 0)[i], exps[k]);
		CHECK(fx_run(&f) == 0);
		CHECK(close_to(OUTF(&f, 0), want, 40, 1e-6, 0));
		fx_free(&f);
	}

	/* An int64 constant exponent is fine too. */
	struct fx f;
	lm_graph *g = tg_graph(17);
	tg_input(g, "x", LM_DT_FLOAT, 1, DIMS(3));
	tg_init(g, "p", LM_DT_INT64, 1, DIMS(1), I64S(2));
	tg_node(g, "n", "Pow", LIST("x", "p"), LIST("y"));
	CHECK(fx_prepare(&f, g) == 0);
	fx_set(&f, 0, F32S(-3, 0.5f, 4));
	CHECK(fx_run(&f) == 0);
	CHECK(same_f32(OUTF(&f, 0), F32S(9, 0.25f, 16), 3));
	fx_free(&f);
}

/* ---- Cast, Identity, Dropout ---- */

TEST(cast_conversions)
{
	struct fx f;
	lm_graph *g = tg_graph(17);

	/* float -> int64 truncates toward zero; NaN gives 0 and huge
	 * values saturate (both undefined in ONNX). */
	tg_input(g, "x", LM_DT_FLOAT, 1, DIMS(8));
	tg_attr_i(tg_node(g, "n", "Cast", LIST("x"), LIST("y")), "to", LM_DT_INT64);
	CHECK(fx_prepare(&f, g) == 0);
	fx_set(&f, 0, F32S(2.7f, -2.7f, 0.5f, -0.5f, 3, NAN, 1e30f, -1e30f));
	CHECK(fx_run(&f) == 0);
	CHECK(same_i64(f.out[0].data,
		       I64S(2, -2, 0, 0, 3, 0, INT64_MAX, INT64_MIN), 8));
	fx_free(&f);

	g = tg_graph(17);
	tg_input(g, "x", LM_DT_INT64, 1, DIMS(4));
	tg_attr_i(tg_node(g, "n", "Cast", LIST("x"), LIST("y")), "to", LM_DT_FLOAT);
	CHECK(fx_prepare(&f, g) == 0);
	fx_set(&f, 0, I64S(-3, 0, 16777217, 1LL << 40));
	CHECK(fx_run(&f) == 0);
	CHECK(same_f32(OUTF(&f, 0), F32S(-3, 0, 16777216.0f, 1099511627776.0f),
		       4));
	fx_free(&f);

	g = tg_graph(17);
	tg_input(g, "x", LM_DT_FLOAT, 1, DIMS(4));
	tg_attr_i(tg_node(g, "n", "Cast", LIST("x"), LIST("y")), "to", LM_DT_BOOL);
	CHECK(fx_prepare(&f, g) == 0);
	fx_set(&f, 0, F32S(0, -0.0f, 0.1f, NAN));
	CHECK(fx_run(&f) == 0);
	CHECK(same_u8(f.out[0].data, (const uint8_t[]){ 0, 0, 1, 1 }, 4));
	fx_free(&f);

	/* A pair without a fast loop: int16 -> int64. */
	g = tg_graph(17);
	tg_input(g, "x", LM_DT_INT16, 1, DIMS(3));
	tg_attr_i(tg_node(g, "n", "Cast", LIST("x"), LIST("y")), "to", LM_DT_INT64);
	CHECK(fx_prepare(&f, g) == 0);
	CHECK(strcmp(f.k.impl, "cast-generic") == 0);
	fx_set(&f, 0, ((const int16_t[]){ -32768, 5, 32767 }));
	CHECK(fx_run(&f) == 0);
	CHECK(same_i64(f.out[0].data, I64S(-32768, 5, 32767), 3));
	fx_free(&f);
}

TEST(identity_and_dropout)
{
	struct fx f;
	lm_graph *g = tg_graph(17);

	tg_input(g, "x", LM_DT_INT64, 1, DIMS(3));
	tg_node(g, "n", "Identity", LIST("x"), LIST("y"));
	CHECK(fx_prepare(&f, g) == 0);
	CHECK(f.k.alias == 1);
	fx_set(&f, 0, I64S(4, 5, 6));
	CHECK(fx_run(&f) == 0);
	CHECK(same_i64(f.out[0].data, I64S(4, 5, 6), 3));
	fx_free(&f);

	/* Without a mask Dropout is an alias too. */
	g = tg_graph(13);
	tg_input(g, "x", LM_DT_FLOAT, 1, DIMS(3));
	tg_node(g, "n", "Dropout", LIST("x"), LIST("y"));
	CHECK(fx_prepare(&f, g) == 0);
	CHECK(f.k.alias == 1);
	fx_free(&f);

	/* With one it runs, copying and setting the mask all true. */
	g = tg_graph(13);
	tg_input(g, "x", LM_DT_FLOAT, 1, DIMS(3));
	scalar(g, "r", 0.5f);
	tg_node(g, "n", "Dropout", LIST("x", "r"), LIST("y", "mask"));
	CHECK(fx_prepare(&f, g) == 0);
	CHECK(f.k.alias == 0 && f.k.inplace == 1);
	fx_set(&f, 0, F32S(1, 2, 3));
	CHECK(fx_run(&f) == 0);
	CHECK(same_f32(OUTF(&f, 0), F32S(1, 2, 3), 3));
	CHECK(same_u8(f.out[1].data, (const uint8_t[]){ 1, 1, 1 }, 3));
	fx_free(&f);
}

/* ---- shape ops ---- */

/* Fill graph input i with 0, 1, 2, ... as floats. */
static void iota(struct fx *f, int i)
{
	float *p = INF_(f, i);
	for (size_t k = 0; k < f->in[i].nbytes / 4; k++)
		p[k] = (float)k;
}

TEST(gather_axes_and_bad_indices)
{
	struct fx f;
	lm_graph *g = tg_graph(13);

	/* axis 1 of (2,3,2) with indices (2): [-1, 0] */
	tg_input(g, "x", LM_DT_FLOAT, 3, DIMS(2, 3, 2));
	tg_init(g, "i", LM_DT_INT64, 1, DIMS(2), I64S(-1, 0));
	tg_attr_i(tg_node(g, "n", "Gather", LIST("x", "i"), LIST("y")), "axis", 1);
	CHECK(fx_prepare(&f, g) == 0);
	iota(&f, 0);
	CHECK(fx_run(&f) == 0);
	CHECK(same_f32(OUTF(&f, 0), F32S(4, 5, 0, 1, 10, 11, 6, 7), 8));
	fx_free(&f);

	/* int32 indices fed at run time, one out of range: zeros. */
	g = tg_graph(13);
	tg_input(g, "x", LM_DT_FLOAT, 2, DIMS(3, 2));
	tg_input(g, "i", LM_DT_INT32, 2, DIMS(2, 2));
	tg_node(g, "n", "Gather", LIST("x", "i"), LIST("y"));
	CHECK(fx_prepare(&f, g) == 0);
	iota(&f, 0);
	fx_set(&f, 1, ((const int32_t[]){ 2, -3, 3, -4 }));
	CHECK(fx_run(&f) == 0);
	CHECK(same_f32(OUTF(&f, 0), F32S(4, 5, 0, 1, 0, 0, 0, 0), 8));
	fx_free(&f);

	/* scalar index on the last axis */
	g = tg_graph(13);
	tg_input(g, "x", LM_DT_INT64, 2, DIMS(2, 3));
	tg_init(g, "i", LM_DT_INT64, 0, NULL, I64S(-2));
	tg_attr_i(tg_node(g, "n", "Gather", LIST("x", "i"), LIST("y")), "axis", -1);
	CHECK(fx_prepare(&f, g) == 0);
	fx_set(&f, 0, I64S(1, 2, 3, 4, 5, 6));
	CHECK(fx_run(&f) == 0);
	CHECK(same_i64(f.out[0].data, I64S(2, 5), 2));
	fx_free(&f);
}

TEST(concat_and_split)
{
	struct fx f;
	lm_graph *g = tg_graph(13);

	tg_input(g, "a", LM_DT_FLOAT, 2, DIMS(2, 1));
	tg_input(g, "b", LM_DT_FLOAT, 2, DIMS(2, 2));
	tg_attr_i(tg_node(g, "n", "Concat", LIST("a", "b"), LIST("y")), "axis", -1);
	CHECK(fx_prepare(&f, g) == 0);
	fx_set(&f, 0, F32S(1, 2));
	fx_set(&f, 1, F32S(3, 4, 5, 6));
	CHECK(fx_run(&f) == 0);
	CHECK(same_f32(OUTF(&f, 0), F32S(1, 3, 4, 2, 5, 6), 6));
	fx_free(&f);

	g = tg_graph(13);
	tg_input(g, "x", LM_DT_FLOAT, 2, DIMS(2, 5));
	ints(g, "s", I64S(2, 3), 2);
	tg_attr_i(tg_node(g, "n", "Split", LIST("x", "s"), LIST("p", "q")), "axis", 1);
	CHECK(fx_prepare(&f, g) == 0);
	iota(&f, 0);
	CHECK(fx_run(&f) == 0);
	CHECK(same_f32(OUTF(&f, 0), F32S(0, 1, 5, 6), 4));
	CHECK(same_f32(OUTF(&f, 1), F32S(2, 3, 4, 7, 8, 9), 6));
	fx_free(&f);

	/* equal parts on axis 0, int64 */
	g = tg_graph(13);
	tg_input(g, "x", LM_DT_INT64, 1, DIMS(4));
	tg_node(g, "n", "Split", LIST("x"), LIST("p", "q"));
	CHECK(fx_prepare(&f, g) == 0);
	fx_set(&f, 0, I64S(7, 8, 9, 10));
	CHECK(fx_run(&f) == 0);
	CHECK(same_i64(f.out[0].data, I64S(7, 8), 2));
	CHECK(same_i64(f.out[1].data, I64S(9, 10), 2));
	fx_free(&f);
}

TEST(slice_steps)
{
	struct fx f;
	lm_graph *g = tg_graph(13);

	/* x[::-1, 1:] of a (3,4) */
	tg_input(g, "x", LM_DT_FLOAT, 2, DIMS(3, 4));
	ints(g, "st", I64S(-1, 1), 2);
	ints(g, "en", I64S(INT64_MIN, INT64_MAX), 2);
	ints(g, "ax", I64S(0, -1), 2);
	ints(g, "sp", I64S(-1, 1), 2);
	tg_node(g, "n", "Slice", LIST("x", "st", "en", "ax", "sp"), LIST("y"));
	CHECK(fx_prepare(&f, g) == 0);
	iota(&f, 0);
	CHECK(fx_run(&f) == 0);
	CHECK(same_f32(OUTF(&f, 0), F32S(9, 10, 11, 5, 6, 7, 1, 2, 3), 9));
	fx_free(&f);

	/* x[:, 5:0:-2] of a (2,7) */
	g = tg_graph(13);
	tg_input(g, "x", LM_DT_FLOAT, 2, DIMS(2, 7));
	ints(g, "st", I64S(5), 1);
	ints(g, "en", I64S(0), 1);
	ints(g, "ax", I64S(1), 1);
	ints(g, "sp", I64S(-2), 1);
	tg_node(g, "n", "Slice", LIST("x", "st", "en", "ax", "sp"), LIST("y"));
	CHECK(fx_prepare(&f, g) == 0);
	iota(&f, 0);
	CHECK(fx_run(&f) == 0);
	CHECK(same_f32(OUTF(&f, 0), F32S(5, 3, 1, 12, 10, 8), 6));
	fx_free(&f);

	/* an empty slice */
	g = tg_graph(13);
	tg_input(g, "x", LM_DT_FLOAT, 1, DIMS(4));
	ints(g, "st", I64S(3), 1);
	ints(g, "en", I64S(1), 1);
	tg_node(g, "n", "Slice", LIST("x", "st", "en"), LIST("y"));
	CHECK(fx_prepare(&f, g) == 0);
	CHECK(fx_run(&f) == 0);
	CHECK(f.out[0].nbytes == 0);
	fx_free(&f);
}

/* Transpose a random (dims) tensor by perm and compare with a naive
 * index computation. */
static int transpose_vs(int rank, const int64_t *dims, const int64_t *perm,
			const char *impl)
{
	struct fx f;
	lm_graph *g = tg_graph(13);
	int64_t ist[LM_MAX_RANK], od[LM_MAX_RANK], s = 1;
	int ok = 1;

	tg_input(g, "x", LM_DT_FLOAT, rank, dims);
	lm_node *n = tg_node(g, "n", "Transpose", LIST("x"), LIST("y"));
	if (perm)
		tg_attr_is(n, "perm", perm, rank);
	if (fx_prepare(&f, g)) {
		printf("  prepare: %s\n", f.e.msg);
		fx_free(&f);
		return 0;
	}
	for (int d = rank - 1; d >= 0; d--) {
		ist[d] = s;
		s *= dims[d];
	}
	for (int d = 0; d < rank; d++)
		od[d] = dims[perm ? perm[d] : rank - 1 - d];
	iota(&f, 0);
	ok = fx_run(&f) == 0;
	for (int64_t i = 0; ok && i < s; i++) {
		int64_t rem = i, off = 0;
		for (int d = rank - 1; d >= 0; d--) {
			off += (rem % od[d]) * ist[perm ? perm[d]
							: rank - 1 - d];
			rem /= od[d];
		}
		if (OUTF(&f, 0)[i] != (float)off) {
			printf("  [%lld]: got %g, want %lld\n", (long long)i,
			       (double)OUTF(&f, 0)[i], (long long)off);
			ok = 0;
		}
	}
	if (ok && impl && strcmp(f.k.impl, impl) != 0) {
		printf("  impl %s, expected %s\n", f.k.impl, impl);
		ok = 0;
	}
	fx_free(&f);
	return ok;
}

TEST(transpose_paths)
{
	CHECK(transpose_vs(2, DIMS(37, 19), NULL, "transpose-2d"));
	CHECK(transpose_vs(2, DIMS(1, 5), NULL, NULL));
	CHECK(transpose_vs(4, DIMS(2, 3, 5, 8), I64S(0, 2, 1, 3),
			   "copy-rows"));
	CHECK(transpose_vs(4, DIMS(2, 17, 6, 7), I64S(0, 2, 3, 1),
			   "transpose-2d"));
	CHECK(transpose_vs(4, DIMS(2, 6, 7, 17), I64S(0, 3, 1, 2),
			   "transpose-2d"));
	CHECK(transpose_vs(3, DIMS(3, 4, 5), NULL, "copy-strided"));
	CHECK(transpose_vs(5, DIMS(2, 3, 1, 4, 2), I64S(4, 2, 0, 3, 1),
			   NULL));
}

TEST(expand_and_tile)
{
	struct fx f;
	lm_graph *g = tg_graph(13);

	tg_input(g, "x", LM_DT_FLOAT, 2, DIMS(3, 1));
	ints(g, "s", I64S(2, 1, 4), 3);
	tg_node(g, "n", "Expand", LIST("x", "s"), LIST("y"));
	CHECK(fx_prepare(&f, g) == 0);
	fx_set(&f, 0, F32S(1, 2, 3));
	CHECK(fx_run(&f) == 0);
	for (int i = 0; i < 24; i++)
		CHECK(OUTF(&f, 0)[i] == (float)((i / 4) % 3 + 1));
	fx_free(&f);

	g = tg_graph(13);
	tg_input(g, "x", LM_DT_INT64, 2, DIMS(2, 2));
	ints(g, "r", I64S(2, 3), 2);
	tg_node(g, "n", "Tile", LIST("x", "r"), LIST("y"));
	CHECK(fx_prepare(&f, g) == 0);
	fx_set(&f, 0, I64S(1, 2, 3, 4));
	CHECK(fx_run(&f) == 0);
	CHECK(same_i64(f.out[0].data,
		       I64S(1, 2, 1, 2, 1, 2, 3, 4, 3, 4, 3, 4,
			    1, 2, 1, 2, 1, 2, 3, 4, 3, 4, 3, 4), 24));
	fx_free(&f);
}

TEST(pad_modes)
{
	struct fx f;
	lm_graph *g;
	static const char *const modes[] = { "constant", "reflect", "edge" };
	/* x = [[0 1 2] [3 4 5]] with pads (1, 2, 0, 2): a row before and
	 * two columns either side. */
	static const float want[3][21] = {
		{ 9, 9, 9, 9, 9, 9, 9,   9, 9, 0, 1, 2, 9, 9,
		  9, 9, 3, 4, 5, 9, 9 },
		{ 5, 4, 3, 4, 5, 4, 3,   2, 1, 0, 1, 2, 1, 0,
		  5, 4, 3, 4, 5, 4, 3 },
		{ 0, 0, 0, 1, 2, 2, 2,   0, 0, 0, 1, 2, 2, 2,
		  3, 3, 3, 4, 5, 5, 5 },
	};

	for (int m = 0; m < 3; m++) {
		g = tg_graph(13);
		tg_input(g, "x", LM_DT_FLOAT, 2, DIMS(2, 3));
		ints(g, "p", I64S(1, 2, 0, 2), 4);
		scalar(g, "v", 9);
		tg_attr_s(tg_node(g, "n", "Pad", LIST("x", "p", "v"), LIST("y")), "mode",
		       modes[m]);
		CHECK(fx_prepare(&f, g) == 0);
		iota(&f, 0);
		CHECK(fx_run(&f) == 0);
		CHECK(f.out[0].nbytes == 21 * sizeof(float));
		CHECK(same_f32(OUTF(&f, 0), want[m], 21));
		fx_free(&f);
	}

	/* Negative pads crop; opset 2 takes pads and value as attributes. */
	g = tg_graph(2);
	tg_input(g, "x", LM_DT_FLOAT, 2, DIMS(2, 3));
	lm_node *n = tg_node(g, "n", "Pad", LIST("x"), LIST("y"));
	tg_attr_is(n, "pads", I64S(0, -1, 1, 1), 4);
	tg_attr_f(n, "value", -1);
	CHECK(fx_prepare(&f, g) == 0);
	iota(&f, 0);
	CHECK(fx_run(&f) == 0);
	CHECK(same_f32(OUTF(&f, 0), F32S(1, 2, -1, 4, 5, -1, -1, -1, -1), 9));
	fx_free(&f);

	/* A wide row uses block copies; int64 with edge mode. */
	g = tg_graph(13);
	tg_input(g, "x", LM_DT_INT64, 2, DIMS(1, 40));
	ints(g, "p", I64S(0, 3, 0, 1), 4);
	tg_attr_s(tg_node(g, "n", "Pad", LIST("x", "p"), LIST("y")), "mode", "edge");
	CHECK(fx_prepare(&f, g) == 0);
	for (int i = 0; i < 40; i++)
		((int64_t *)f.in[0].data)[i] = i + 1;
	CHECK(fx_run(&f) == 0);
	const int64_t *y = f.out[0].data;
	CHECK(y[0] == 1 && y[1] == 1 && y[2] == 1 && y[3] == 1 &&
	      y[42] == 40 && y[43] == 40);
	for (int i = 0; i < 40; i++)
		CHECK(y[3 + i] == i + 1);
	fx_free(&f);
}

/* Resize of a (1,1,ih,iw) float input by scales (1,1,sh,sw). */
static int resize_case(const char *mode, const char *ctm, const char *nm,
		       int64_t ih, int64_t iw, float sh, float sw,
		       const float *x, const float *want, int64_t oh,
		       int64_t ow)
{
	struct fx f;
	lm_graph *g = tg_graph(13);
	int ok;

	tg_input(g, "x", LM_DT_FLOAT, 4, DIMS(1, 1, ih, iw));
	tg_init(g, "sc", LM_DT_FLOAT, 1, DIMS(4),
	     ((const float[]){ 1, 1, sh, sw }));
	lm_node *n = tg_node(g, "n", "Resize", LIST("x", "", "sc"), LIST("y"));
	tg_attr_s(n, "mode", mode);
	tg_attr_s(n, "coordinate_transformation_mode", ctm);
	if (nm)
		tg_attr_s(n, "nearest_mode", nm);
	if (fx_prepare(&f, g)) {
		printf("  prepare: %s\n", f.e.msg);
		fx_free(&f);
		return 0;
	}
	ok = f.out[0].nbytes == (size_t)(oh * ow) * sizeof(float);
	fx_set(&f, 0, x);
	ok = ok && fx_run(&f) == 0;
	double w[64];
	for (int64_t i = 0; i < oh * ow; i++)
		w[i] = want[i];
	ok = ok && close_to(OUTF(&f, 0), w, (size_t)(oh * ow), 1e-6, 1e-7);
	fx_free(&f);
	return ok;
}

TEST(resize_nearest_and_linear)
{
	const float x[] = { 1, 2, 3, 4 };

	CHECK(resize_case("nearest", "asymmetric", "floor", 2, 2, 2, 2, x,
			  F32S(1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4),
			  4, 4));
	/* half_pixel, x3: coordinates (o + 0.5)/3 - 0.5 round to 0,0,0 /
	 * 1,1,1 (x.5 never occurs). */
	CHECK(resize_case("nearest", "half_pixel", NULL, 1, 2, 1, 3, x,
			  F32S(1, 1, 1, 2, 2, 2), 1, 6));
	/* round_prefer_floor and _ceil differ at exactly x.5: 1x4 -> 1x2
	 * with half_pixel samples 0.5 and 2.5. */
	CHECK(resize_case("nearest", "half_pixel", "round_prefer_floor", 1, 4,
			  1, 0.5f, x, F32S(1, 3), 1, 2));
	CHECK(resize_case("nearest", "half_pixel", "round_prefer_ceil", 1, 4,
			  1, 0.5f, x, F32S(2, 4), 1, 2));
	/* bilinear x2, half_pixel: PyTorch's align_corners=False */
	CHECK(resize_case("linear", "half_pixel", NULL, 2, 2, 2, 2, x,
			  F32S(1, 1.25f, 1.75f, 2, 1.5f, 1.75f, 2.25f, 2.5f,
			       2.5f, 2.75f, 3.25f, 3.5f, 3, 3.25f, 3.75f, 4),
			  4, 4));
	/* align_corners: 2 -> 3 puts the middle sample halfway */
	CHECK(resize_case("linear", "align_corners", NULL, 2, 2, 1.5f, 1.5f,
			  x, F32S(1, 1.5f, 2, 2, 2.5f, 3, 3, 3.5f, 4), 3, 3));
	/* asymmetric x2 on one row: 0, 0.5, 1, 1.5 (clamped) */
	CHECK(resize_case("linear", "asymmetric", NULL, 1, 2, 1, 2, x,
			  F32S(1, 1.5f, 2, 2), 1, 4));
	/* pytorch_half_pixel with an output of one: samples 0 */
	CHECK(resize_case("linear", "pytorch_half_pixel", NULL, 2, 2, 0.5f,
			  0.5f, x, F32S(1), 1, 1));
	CHECK(resize_case("linear", "half_pixel", NULL, 2, 2, 0.5f, 0.5f, x,
			  F32S(2.5f), 1, 1));
}

TEST(resize_sizes_and_rejections)
{
	struct fx f;
	lm_graph *g = tg_graph(13);

	/* sizes: (1,1,2,2) -> (1,1,3,1) nearest asymmetric: scale 1.5 and
	 * 0.5 from sizes / input. */
	tg_input(g, "x", LM_DT_FLOAT, 4, DIMS(1, 1, 2, 2));
	ints(g, "sz", I64S(1, 1, 3, 1), 4);
	lm_node *n = tg_node(g, "n", "Resize", LIST("x", "", "", "sz"), LIST("y"));
	tg_attr_s(n, "coordinate_transformation_mode", "asymmetric");
	tg_attr_s(n, "nearest_mode", "floor");
	CHECK(fx_prepare(&f, g) == 0);
	fx_set(&f, 0, F32S(1, 2, 3, 4));
	CHECK(fx_run(&f) == 0);
	CHECK(same_f32(OUTF(&f, 0), F32S(1, 1, 3), 3));
	fx_free(&f);

	/* Resize-10: (X, scales), asymmetric coordinates and floor. */
	g = tg_graph(10);
	tg_input(g, "x", LM_DT_FLOAT, 2, DIMS(1, 5));
	tg_init(g, "sc", LM_DT_FLOAT, 1, DIMS(2), F32S(1, 1.5f));
	tg_node(g, "n", "Resize", LIST("x", "sc"), LIST("y"));
	CHECK(fx_prepare(&f, g) == 0);
	fx_set(&f, 0, F32S(1, 2, 3, 4, 5));
	CHECK(fx_run(&f) == 0);
	CHECK(same_f32(OUTF(&f, 0), F32S(1, 1, 2, 3, 3, 4, 5), 7));
	fx_free(&f);

	g = tg_graph(13);
	tg_input(g, "x", LM_DT_FLOAT, 4, DIMS(1, 1, 2, 2));
	tg_init(g, "sc", LM_DT_FLOAT, 1, DIMS(4), F32S(1, 1, 2, 2));
	tg_attr_s(tg_node(g, "n", "Resize", LIST("x", "", "sc"), LIST("y")), "mode",
	       "cubic");
	CHECK(rejects(g, "mode 'cubic' is not supported"));

	g = tg_graph(13);
	tg_input(g, "x", LM_DT_FLOAT, 4, DIMS(1, 2, 2, 2));
	tg_init(g, "sc", LM_DT_FLOAT, 1, DIMS(4), F32S(1, 2, 2, 2));
	tg_attr_s(tg_node(g, "n", "Resize", LIST("x", "", "sc"), LIST("y")), "mode",
	       "linear");
	CHECK(rejects(g, "linear resize of axis 1"));

	g = tg_graph(13);
	tg_input(g, "x", LM_DT_FLOAT, 4, DIMS(1, 1, 2, 2));
	tg_init(g, "sc", LM_DT_FLOAT, 1, DIMS(4), F32S(1, 1, 2, 2));
	tg_attr_s(tg_node(g, "n", "Resize", LIST("x", "", "sc"), LIST("y")),
	       "coordinate_transformation_mode", "tf_crop_and_resize");
	CHECK(rejects(g, "coordinate_transformation_mode "
		      "'tf_crop_and_resize'"));
}

TEST(shape_size_constants_range)
{
	struct fx f;
	lm_graph *g = tg_graph(15);

	tg_input(g, "x", LM_DT_FLOAT, 3, DIMS(2, 3, 4));
	tg_attr_i(tg_node(g, "n", "Shape", LIST("x"), LIST("y")), "start", 1);
	CHECK(fx_prepare(&f, g) == 0);
	CHECK(fx_run(&f) == 0);
	CHECK(same_i64(f.out[0].data, I64S(3, 4), 2));
	fx_free(&f);

	g = tg_graph(15);
	tg_input(g, "x", LM_DT_FLOAT, 3, DIMS(2, 3, 4));
	tg_node(g, "n", "Size", LIST("x"), LIST("y"));
	CHECK(fx_prepare(&f, g) == 0);
	CHECK(fx_run(&f) == 0);
	CHECK(same_i64(f.out[0].data, I64S(24), 1));
	fx_free(&f);

	g = tg_graph(15);
	ints(g, "s", I64S(2, 3), 2);
	lm_node *n = tg_node(g, "n", "ConstantOfShape", LIST("s"), LIST("y"));
	lm_attr *a = lm_node_add_attr(n, "value", LM_ATTR_TENSOR);
	a->t = calloc(1, sizeof(*a->t));
	lm_tensor_alloc(a->t, LM_DT_INT64, 1, DIMS(1));
	*(int64_t *)a->t->data = 7;
	CHECK(fx_prepare(&f, g) == 0);
	CHECK(fx_run(&f) == 0);
	CHECK(same_i64(f.out[0].data, I64S(7, 7, 7, 7, 7, 7), 6));
	fx_free(&f);

	g = tg_graph(15);
	scalar(g, "a", 1);
	scalar(g, "b", 2.2f);
	scalar(g, "d", 0.5f);
	tg_node(g, "n", "Range", LIST("a", "b", "d"), LIST("y"));
	CHECK(fx_prepare(&f, g) == 0);
	CHECK(fx_run(&f) == 0);
	CHECK(same_f32(OUTF(&f, 0), F32S(1, 1.5f, 2), 3));
	fx_free(&f);
}

TEST(reshapes_alias)
{
	static const char *const ops[] = { "Reshape", "Flatten", "Squeeze",
					   "Unsqueeze" };

	for (int i = 0; i < 4; i++) {
		struct fx f;
		lm_graph *g = tg_graph(13);
		tg_input(g, "x", LM_DT_FLOAT, 3, DIMS(2, 1, 3));
		ints(g, "s", i == 0 ? I64S(3, 2) : I64S(1), i == 0 ? 2 : 1);
		if (i == 1)
			tg_node(g, "n", ops[i], LIST("x"), LIST("y"));
		else
			tg_node(g, "n", ops[i], LIST("x", "s"), LIST("y"));
		CHECK(fx_prepare(&f, g) == 0);
		CHECK(f.k.alias == 1);
		iota(&f, 0);
		CHECK(fx_run(&f) == 0);
		CHECK(same_f32(OUTF(&f, 0), F32S(0, 1, 2, 3, 4, 5), 6));
		fx_free(&f);
	}
}

/* ---- norm family ---- */

/* Softmax or LogSoftmax of a random (dims) input over axis, vs double. */
static int softmax_vs(const char *op, int64_t opset, int rank,
		      const int64_t *dims, int64_t axis, int inplace)
{
	struct fx f;
	lm_graph *g = tg_graph(opset);
	int ok;

	tg_input(g, "x", LM_DT_FLOAT, rank, dims);
	tg_attr_i(tg_node(g, "n", op, LIST("x"), LIST("y")), "axis", axis);
	if (fx_prepare(&f, g)) {
		printf("  prepare: %s\n", f.e.msg);
		fx_free(&f);
		return 0;
	}
	int a = (int)(axis < 0 ? axis + rank : axis);
	int64_t outer = 1, len = 1, inner = 1;
	for (int d = 0; d < rank; d++)
		*(d < a ? &outer : d == a || opset < 13 ? &len : &inner) *=
			dims[d];
	size_t n = (size_t)(outer * len * inner);
	fill_rand(INF_(&f, 0), n, -30, 30);
	double *want = malloc(n * sizeof(double));
	for (int64_t o = 0; o < outer; o++) {
		for (int64_t j = 0; j < inner; j++) {
			const float *x = INF_(&f, 0) + o * len * inner + j;
			double m = -INFINITY, s = 0;
			for (int64_t l = 0; l < len; l++)
				m = fmax(m, x[l * inner]);
			for (int64_t l = 0; l < len; l++)
				s += exp(x[l * inner] - m);
			for (int64_t l = 0; l < len; l++) {
				double v = x[l * inner] - m;
				want[o * len * inner + l * inner + j] =
					strcmp(op, "Softmax") ? v - log(s)
							      : exp(v) / s;
			}
		}
	}
	/* x - max is rounded to float before exp: with inputs in [-30, 30]
	 * that alone is worth up to 60 * 2^-24 = 3.6e-6 relative. */
	ok = (inplace ? fx_run_inplace(&f) : fx_run(&f)) == 0 &&
	     close_to(inplace ? INF_(&f, 0) : OUTF(&f, 0), want, n, 5e-6,
		      1e-30);
	free(want);
	fx_free(&f);
	return ok;
}

TEST(softmax_axes)
{
	CHECK(softmax_vs("Softmax", 13, 3, DIMS(2, 5, 37), -1, 0));
	CHECK(softmax_vs("Softmax", 13, 3, DIMS(2, 5, 37), -1, 1));
	CHECK(softmax_vs("Softmax", 13, 3, DIMS(2, 5, 37), 1, 0));
	CHECK(softmax_vs("Softmax", 13, 3, DIMS(2, 5, 37), 1, 1));
	CHECK(softmax_vs("Softmax", 13, 4, DIMS(1, 3, 1, 1), 1, 0));
	CHECK(softmax_vs("LogSoftmax", 13, 2, DIMS(3, 100), -1, 0));
	CHECK(softmax_vs("LogSoftmax", 13, 2, DIMS(3, 100), -1, 1));
	CHECK(softmax_vs("LogSoftmax", 13, 3, DIMS(2, 17, 3), 1, 1));
	/* before opset 13 the axis flattens: normalise over 5 x 37 */
	CHECK(softmax_vs("Softmax", 11, 3, DIMS(2, 5, 37), 1, 0));
}

TEST(layernorm_last_axis)
{
	struct fx f;
	lm_graph *g = tg_graph(17);
	float sc[48], bi[48];
	const int rows = 5, d = 48;

	fill_rand(sc, 48, 0.5f, 2);
	fill_rand(bi, 48, -1, 1);
	tg_input(g, "x", LM_DT_FLOAT, 2, DIMS(rows, d));
	tg_init(g, "s", LM_DT_FLOAT, 1, DIMS(d), sc);
	tg_init(g, "b", LM_DT_FLOAT, 1, DIMS(d), bi);
	lm_node *n = tg_node(g, "n", "LayerNormalization", LIST("x", "s", "b"),
			  LIST("y", "mean", "istd"));
	tg_attr_f(n, "epsilon", 1e-3f);
	CHECK(fx_prepare(&f, g) == 0);
	fill_rand(INF_(&f, 0), rows * d, -3, 5);
	double want[5 * 48], wm[5], wi[5];
	for (int r = 0; r < rows; r++) {
		const float *x = INF_(&f, 0) + r * d;
		double m = 0, v = 0;
		for (int i = 0; i < d; i++)
			m += x[i];
		m /= d;
		for (int i = 0; i < d; i++)
			v += (x[i] - m) * (x[i] - m);
		v /= d;
		wm[r] = m;
		wi[r] = 1 / sqrt(v + 1e-3);
		for (int i = 0; i < d; i++)
			want[r * d + i] = (x[i] - m) * wi[r] * sc[i] + bi[i];
	}
	CHECK(fx_run(&f) == 0);
	CHECK(close_to(OUTF(&f, 0), want, rows * d, 1e-5, 1e-5));
	CHECK(close_to(OUTF(&f, 1), wm, rows, 1e-5, 1e-6));
	CHECK(close_to(OUTF(&f, 2), wi, rows, 1e-5, 0));
	CHECK(fx_run_inplace(&f) == 0);
	CHECK(close_to(INF_(&f, 0), want, rows * d, 1e-5, 1e-5));
	fx_free(&f);

	/* axis -2, scale (d) broadcast over (3, d), no bias */
	g = tg_graph(17);
	tg_input(g, "x", LM_DT_FLOAT, 3, DIMS(2, 3, 4));
	tg_init(g, "s", LM_DT_FLOAT, 1, DIMS(4), F32S(1, 2, 3, 4));
	tg_attr_i(tg_node(g, "n", "LayerNormalization", LIST("x", "s"), LIST("y")),
	       "axis", -2);
	CHECK(fx_prepare(&f, g) == 0);
	iota(&f, 0);
	CHECK(fx_run(&f) == 0);
	/* each normalised block is 0..11 plus 12 n: mean 5.5 + 12 n,
	 * variance 143/12 */
	double w2[24];
	for (int i = 0; i < 24; i++)
		w2[i] = ((i % 12) - 5.5) / sqrt(143.0 / 12 + 1e-5) *
			(1 + i % 4);
	CHECK(close_to(OUTF(&f, 0), w2, 24, 1e-5, 1e-6));
	fx_free(&f);
}

TEST(batchnorm_and_instancenorm)
{
	struct fx f;
	lm_graph *g = tg_graph(15);

	tg_input(g, "x", LM_DT_FLOAT, 4, DIMS(2, 3, 1, 5));
	tg_init(g, "s", LM_DT_FLOAT, 1, DIMS(3), F32S(1, 2, 0.5f));
	tg_init(g, "b", LM_DT_FLOAT, 1, DIMS(3), F32S(0, 1, -1));
	tg_init(g, "m", LM_DT_FLOAT, 1, DIMS(3), F32S(1, 2, 3));
	tg_init(g, "v", LM_DT_FLOAT, 1, DIMS(3), F32S(4, 1, 0.25f));
	tg_attr_f(tg_node(g, "n", "BatchNormalization", LIST("x", "s", "b", "m", "v"),
		    LIST("y")), "epsilon", 0);
	CHECK(fx_prepare(&f, g) == 0);
	CHECK(f.k.inplace);
	iota(&f, 0);
	double want[30];
	static const double a[3] = { 0.5, 2, 1 }, c[3] = { -0.5, -3, -4 };
	for (int i = 0; i < 30; i++)
		want[i] = i * a[(i / 5) % 3] + c[(i / 5) % 3];
	CHECK(fx_run(&f) == 0);
	CHECK(close_to(OUTF(&f, 0), want, 30, 1e-6, 1e-6));
	CHECK(fx_run_inplace(&f) == 0);
	CHECK(close_to(INF_(&f, 0), want, 30, 1e-6, 1e-6));
	fx_free(&f);

	/* parameters fed at run time, channels last (N, C) */
	g = tg_graph(15);
	tg_input(g, "x", LM_DT_FLOAT, 2, DIMS(2, 3));
	tg_input(g, "s", LM_DT_FLOAT, 1, DIMS(3));
	tg_input(g, "b", LM_DT_FLOAT, 1, DIMS(3));
	tg_input(g, "m", LM_DT_FLOAT, 1, DIMS(3));
	tg_input(g, "v", LM_DT_FLOAT, 1, DIMS(3));
	tg_attr_f(tg_node(g, "n", "BatchNormalization", LIST("x", "s", "b", "m", "v"),
		    LIST("y")), "epsilon", 0);
	CHECK(fx_prepare(&f, g) == 0);
	CHECK(f.k.scratch_bytes >= 6 * sizeof(float));
	iota(&f, 0);
	fx_set(&f, 1, F32S(1, 2, 0.5f));
	fx_set(&f, 2, F32S(0, 1, -1));
	fx_set(&f, 3, F32S(1, 2, 3));
	fx_set(&f, 4, F32S(4, 1, 0.25f));
	CHECK(fx_run(&f) == 0);
	for (int i = 0; i < 6; i++)
		want[i] = i * a[i % 3] + c[i % 3];
	CHECK(close_to(OUTF(&f, 0), want, 6, 1e-6, 1e-6));
	fx_free(&f);

	/* InstanceNormalization: each (n, c) plane of 0..3 + 4k has mean
	 * 1.5 + 4k and variance 1.25. */
	g = tg_graph(15);
	tg_input(g, "x", LM_DT_FLOAT, 3, DIMS(2, 2, 4));
	tg_init(g, "s", LM_DT_FLOAT, 1, DIMS(2), F32S(1, 2));
	tg_init(g, "b", LM_DT_FLOAT, 1, DIMS(2), F32S(0, 10));
	tg_node(g, "n", "InstanceNormalization", LIST("x", "s", "b"), LIST("y"));
	CHECK(fx_prepare(&f, g) == 0);
	iota(&f, 0);
	CHECK(fx_run(&f) == 0);
	for (int i = 0; i < 16; i++) {
		int ch = (i / 4) % 2;
		want[i] = ((i % 4) - 1.5) / sqrt(1.25 + 1e-5) * (ch ? 2 : 1) +
			  (ch ? 10 : 0);
	}
	CHECK(close_to(OUTF(&f, 0), want, 16, 1e-5, 1e-6));
	fx_free(&f);
}

TEST(reductions)
{
	struct fx f;
	lm_graph *g = tg_graph(13);

	/* ReduceMean over axis 1 of (2,3,4), keepdims */
	tg_input(g, "x", LM_DT_FLOAT, 3, DIMS(2, 3, 4));
	tg_attr_is(tg_node(g, "n", "ReduceMean", LIST("x"), LIST("y")), "axes", I64S(1),
		1);
	CHECK(fx_prepare(&f, g) == 0);
	iota(&f, 0);
	CHECK(fx_run(&f) == 0);
	CHECK(same_f32(OUTF(&f, 0), F32S(4, 5, 6, 7, 16, 17, 18, 19), 8));
	fx_free(&f);

	/* ReduceSum-13 over axes (0, 2) from an input, no keepdims */
	g = tg_graph(13);
	tg_input(g, "x", LM_DT_FLOAT, 3, DIMS(2, 3, 4));
	ints(g, "ax", I64S(0, -1), 2);
	tg_attr_i(tg_node(g, "n", "ReduceSum", LIST("x", "ax"), LIST("y")), "keepdims",
	       0);
	CHECK(fx_prepare(&f, g) == 0);
	iota(&f, 0);
	CHECK(fx_run(&f) == 0);
	/* sum over n, w of n*12 + c*4 + w = 8 * 4c + 2*6 + 4*12 = 32c + 60 */
	CHECK(same_f32(OUTF(&f, 0), F32S(60, 92, 124), 3));
	fx_free(&f);

	/* ReduceMax over everything, with a NaN somewhere else */
	g = tg_graph(13);
	tg_input(g, "x", LM_DT_FLOAT, 2, DIMS(3, 37));
	tg_attr_i(tg_node(g, "n", "ReduceMax", LIST("x"), LIST("y")), "keepdims", 0);
	CHECK(fx_prepare(&f, g) == 0);
	fill_rand(INF_(&f, 0), 111, -5, 5);
	INF_(&f, 0)[77] = 9;
	CHECK(fx_run(&f) == 0);
	CHECK(OUTF(&f, 0)[0] == 9);
	INF_(&f, 0)[5] = NAN;
	CHECK(fx_run(&f) == 0);
	CHECK(isnan(OUTF(&f, 0)[0]));
	fx_free(&f);

	/* ReduceMean-18, last axis of (4, 100) */
	g = tg_graph(18);
	tg_input(g, "x", LM_DT_FLOAT, 2, DIMS(4, 100));
	ints(g, "ax", I64S(1), 1);
	tg_node(g, "n", "ReduceMean", LIST("x", "ax"), LIST("y"));
	CHECK(fx_prepare(&f, g) == 0);
	iota(&f, 0);
	CHECK(fx_run(&f) == 0);
	CHECK(same_f32(OUTF(&f, 0), F32S(49.5f, 149.5f, 249.5f, 349.5f), 4));
	fx_free(&f);

	/* noop_with_empty_axes: a copy */
	g = tg_graph(18);
	tg_input(g, "x", LM_DT_FLOAT, 1, DIMS(3));
	tg_attr_i(tg_node(g, "n", "ReduceSum", LIST("x"), LIST("y")),
	       "noop_with_empty_axes", 1);
	CHECK(fx_prepare(&f, g) == 0);
	iota(&f, 0);
	CHECK(fx_run(&f) == 0);
	CHECK(same_f32(OUTF(&f, 0), F32S(0, 1, 2), 3));
	fx_free(&f);
}

/* ---- what prepare refuses ---- */

TEST(prepare_rejections)
{
	lm_graph *g;

	g = tg_graph(20);
	tg_input(g, "x", LM_DT_FLOAT, 1, DIMS(3));
	tg_attr_s(tg_node(g, "n", "Gelu", LIST("x"), LIST("y")), "approximate", "erf");
	CHECK(rejects(g, "approximate 'erf' is not supported"));

	g = tg_graph(17);
	tg_input(g, "a", LM_DT_UINT8, 1, DIMS(3));
	tg_input(g, "b", LM_DT_UINT8, 1, DIMS(3));
	tg_node(g, "n", "Add", LIST("a", "b"), LIST("y"));
	CHECK(rejects(g, "input 'a' has element type uint8"));

	g = tg_graph(17);
	tg_input(g, "x", LM_DT_INT64, 1, DIMS(3));
	tg_node(g, "n", "Sigmoid", LIST("x"), LIST("y"));
	CHECK(rejects(g, "only float32"));

	g = tg_graph(17);
	tg_input(g, "x", LM_DT_FLOAT, 1, DIMS(3));
	tg_attr_i(tg_node(g, "n", "Cast", LIST("x"), LIST("y")), "to", LM_DT_FLOAT16);
	CHECK(rejects(g, "cast to float16 is not supported"));

	g = tg_graph(13);
	tg_input(g, "x", LM_DT_FLOAT, 1, DIMS(3));
	tg_init(g, "r", LM_DT_FLOAT, 0, NULL, F32S(0.5f));
	tg_init(g, "t", LM_DT_BOOL, 0, NULL, ((const uint8_t[]){ 1 }));
	tg_node(g, "n", "Dropout", LIST("x", "r", "t"), LIST("y"));
	CHECK(rejects(g, "training mode is not supported"));

	g = tg_graph(15);
	tg_input(g, "x", LM_DT_FLOAT, 2, DIMS(2, 3));
	for (int i = 0; i < 4; i++) {
		static const char *const nm[] = { "s", "b", "m", "v" };
		tg_init(g, nm[i], LM_DT_FLOAT, 1, DIMS(3), F32S(1, 1, 1));
	}
	tg_attr_i(tg_node(g, "n", "BatchNormalization", LIST("x", "s", "b", "m", "v"),
		    LIST("y")), "training_mode", 1);
	CHECK(rejects(g, "training_mode 1 is not supported"));

	g = tg_graph(17);
	tg_input(g, "x", LM_DT_FLOAT, 2, DIMS(2, 3));
	tg_init(g, "s", LM_DT_FLOAT, 1, DIMS(3), F32S(1, 1, 1));
	tg_attr_i(tg_node(g, "n", "LayerNormalization", LIST("x", "s"), LIST("y")),
	       "stash_type", LM_DT_DOUBLE);
	CHECK(rejects(g, "stash_type 11 is not supported"));

	g = tg_graph(13);
	tg_input(g, "x", LM_DT_FLOAT, 1, DIMS(3));
	ints(g, "p", I64S(1, 1), 2);
	tg_attr_s(tg_node(g, "n", "Pad", LIST("x", "p"), LIST("y")), "mode", "mirror");
	CHECK(rejects(g, "mode 'mirror' is not supported"));

	g = tg_graph(13);
	tg_input(g, "x", LM_DT_FLOAT, 1, DIMS(3));
	tg_input(g, "p", LM_DT_INT64, 1, DIMS(3));
	tg_node(g, "n", "Pow", LIST("x", "p"), LIST("y"));
	CHECK(rejects(g, "exponent 'p' is int64"));

	g = tg_graph(13);
	tg_input(g, "x", LM_DT_INT64, 1, DIMS(3));
	tg_node(g, "n", "Softmax", LIST("x"), LIST("y"));
	CHECK(rejects(g, "input 'x' has element type int64"));
}

int main(void)
{
	RUN(activations_match_double);
	RUN(erf_and_gelu_match_erf);
	RUN(special_values);
	RUN(clip_limits);
	RUN(epilogue_from_attributes);
	RUN(epilogue_silu_and_clip);
	RUN(binary_same_shape_and_in_place);
	RUN(binary_broadcasts);
	RUN(variadic_max_min);
	RUN(integer_arithmetic);
	RUN(float_comparisons);
	RUN(bool_logic_and_where);
	RUN(pow_constant_exponents);
	RUN(cast_conversions);
	RUN(identity_and_dropout);
	RUN(gather_axes_and_bad_indices);
	RUN(concat_and_split);
	RUN(slice_steps);
	RUN(transpose_paths);
	RUN(expand_and_tile);
	RUN(pad_modes);
	RUN(resize_nearest_and_linear);
	RUN(resize_sizes_and_rejections);
	RUN(shape_size_constants_range);
	RUN(reshapes_alias);
	RUN(softmax_axes);
	RUN(layernorm_last_axis);
	RUN(batchnorm_and_instancenorm);
	RUN(reductions);
	RUN(prepare_rejections);
	return harness_done();
}
