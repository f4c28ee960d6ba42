/*
 * fused.c: private operators that the fusion pass (fuse.c) makes from
 * patterns whose parts are too small to run one by one.  Their names
 * begin with "lm.", which no ONNX operator does; a model file that holds
 * one anyway gets the same checks as any node.
 *
 * lm.SqueezeExcite(x, W1, b1, W2, b2), attributes lm.act, lm.alpha,
 * lm.beta (after the first product) and lm.act2, lm.alpha2, lm.beta2
 * (the gate):
 *     p = mean over H, W of x        (GlobalAveragePool)
 *     h = act(W1 p + b1)             (1x1 Conv, R outputs)
 *     s = act2(W2 h + b2)            (1x1 Conv, C outputs, the gate)
 *     y[n, c] = x[n, c] * s[n, c]    (Mul)
 * for x [N, C, H, W], W1 [R, C, 1, 1], W2 [C, R, 1, 1] (biases optional):
 * the squeeze-excitation blocks of MobileNetV3 and EfficientNet, four
 * nodes of a few microseconds each, of which the two products ran as
 * GEMMs with a single column.  Here they are two passes over x (the mean,
 * then the scaling, which may run in place) and two matrix-vector
 * products on weights packed at prepare in panels of SE_P outputs: for
 * each panel, the input times each column of the panel is summed into
 * SE_P accumulators that stay in registers, reading the panel front to
 * back (as dot products with one accumulator chain each, 960 outputs of
 * 240 made the block slower than the four nodes; summing whole
 * transposed rows into y in memory, about even).
 */
#include "ops.h"
#include "kernel.h"
#include "../kernels/act.h"

#include <stdio.h>
#include <string.h>

static int se_infer(lm_graph *g, lm_node *n, lm_error *e)
{
	lm_value *x;
	int rc;

	if ((rc = lm_ops_arity(g, n, 5, 5, 1, 1, e)) ||
	    (rc = lm_ops_in(g, n, 0, &x, e)))
		return rc;
	return lm_ops_out_like(g, n, 0, x, e);
}

/* The two products (2 N C R each), the mean and the scaling. */
static double se_flops(lm_graph *g, const lm_node *n)
{
	lm_value *w = lm_node_in(g, n, 1), *x = lm_node_in(g, n, 0);
	double elems = lm_ops_in_elems(g, n, 0);

	if (!w || w->rank != 4 || !x || x->rank != 4 || w->dims[0] < 1)
		return 2 * elems;
	/* N C R multiply-adds in each product */
	return 4.0 * (double)x->dims[0] * (double)x->dims[1] *
	       (double)w->dims[0] + 2 * elems;
}

/* Outputs per panel: 64 floats, four AVX-512 registers. */
#define SE_P 64

struct se {
	int64_t n, c, r, plane;
	lm_epilogue act1, act2;
	float *w1p, *w2p;       /* W1 and W2 in panels, into wt[] */
	float wt[];
};

/* Panels of W [rows, cols]: for each block of SE_P rows, column by
 * column, SE_P values (rows past the end zero). */
static void se_pack(const float *w, int64_t rows, int64_t cols, float *dst)
{
	for (int64_t r0 = 0; r0 < rows; r0 += SE_P)
		for (int64_t c = 0; c < cols; c++, dst += SE_P)
			for (int64_t i = 0; i < SE_P; i++)
				dst[i] = r0 + i < rows ? w[(r0 + i) * cols + c]
						       : 0.0f;
}

static size_t se_packed(int64_t rows, int64_t cols)
{
	return (size_t)((rows + SE_P - 1) / SE_P * SE_P * cols);
}

/* acc[0..SE_P) = sum over c of v[c] * panel[c][0..SE_P) */
static LM_CLONES void se_panel(float *restrict acc, const float *restrict p,
			       const float *restrict v, int64_t cols)
{
	float a[SE_P] = { 0 };
	for (int64_t c = 0; c < cols; c++, p += SE_P) {
		float vc = v[c];
		LM_IVDEP
		for (int i = 0; i < SE_P; i++)
			a[i] += vc * p[i];
	}
	memcpy(acc, a, sizeof(a));
}

static LM_CLONES void se_scale_ip(float *y, float s, size_t n)
{
	LM_VFOR(i, n, y[i] *= s);
}

static LM_CLONES void se_scale_op(float *restrict y, const float *restrict x,
				  float s, size_t n)
{
	LM_VFOR(i, n, y[i] = x[i] * s);
}

/* y = act(W v + b) for W [rows, cols] packed by se_pack. */
static void se_gemv(const float *wp, const float *b, const float *v,
		    int64_t rows, int64_t cols, const lm_epilogue *ep,
		    float *y)
{
	float acc[SE_P];
	for (int64_t r0 = 0; r0 < rows; r0 += SE_P, wp += SE_P * cols) {
		se_panel(acc, wp, v, cols);
		int64_t nr = rows - r0 < SE_P ? rows - r0 : SE_P;
		for (int64_t i = 0; i < nr; i++)
			y[r0 + i] = acc[i] + (b ? b[r0 + i] : 0.0f);
	}
	lm_act_apply(ep->act, ep->alpha, ep->beta, y, (size_t)rows);
}

static int se_run(const lm_kargs *a)
{
	const struct se *s = a->state;
	const float *b1 = a->in[2] ? a->in[2]->data : NULL;
	const float *b2 = a->in[4] ? a->in[4]->data : NULL;
	float *p = a->scratch, *h = p + s->c, *g = h + s->r;
	size_t plane = (size_t)s->plane;

	for (int64_t n = 0; n < s->n; n++) {
		const float *x = (const float *)a->in[0]->data +
				 n * s->c * s->plane;
		float *y = (float *)a->out[0]->data + n * s->c * s->plane;
		for (int64_t c = 0; c < s->c; c++)
			p[c] = lm_vsum(x + c * s->plane, plane) /
			       (float)s->plane;
		se_gemv(s->w1p, b1, p, s->r, s->c, &s->act1, h);
		se_gemv(s->w2p, b2, h, s->c, s->r, &s->act2, g);
		for (int64_t c = 0; c < s->c; c++) {
			if (x == y)
				se_scale_ip(y + c * s->plane, g[c], plane);
			else
				se_scale_op(y + c * s->plane, x + c * s->plane,
					    g[c], plane);
		}
	}
	return 0;
}

/* An activation from attributes act, alpha and beta (the epilogue's
 * names, or the gate's with a "2"); fails on an unknown one. */
static int se_act(lm_graph *g, const lm_node *n, const char *suffix,
		  lm_epilogue *ep, lm_error *e)
{
	char name[3][16];
	snprintf(name[0], sizeof(name[0]), "lm.act%s", suffix);
	snprintf(name[1], sizeof(name[1]), "lm.alpha%s", suffix);
	snprintf(name[2], sizeof(name[2]), "lm.beta%s", suffix);
	int64_t act = lm_attr_int(n, name[0], LM_ACT_NONE);
	if (act < LM_ACT_NONE || act >= LM_ACT_COUNT)
		return lm_ops_fail(e, g, n, -ENOTSUP, "unknown activation "
				   "%lld in %s", (long long)act, name[0]);
	ep->act = (enum lm_act)act;
	ep->alpha = lm_attr_float(n, name[1], 0);
	ep->beta = lm_attr_float(n, name[2], 0);
	ep->sum_input = -1;
	return 0;
}

static int se_prepare(lm_graph *g, lm_node *n, lm_kernel *k, lm_error *e)
{
	lm_value *v[5], *y = lm_node_out(g, n, 0);
	int rc;

	if ((rc = lm_ops_in(g, n, 0, &v[0], e)) ||
	    (rc = lm_ops_in(g, n, 1, &v[1], e)) ||
	    (rc = lm_ops_opt(g, n, 2, &v[2], e)) ||
	    (rc = lm_ops_in(g, n, 3, &v[3], e)) ||
	    (rc = lm_ops_opt(g, n, 4, &v[4], e)))
		return rc;
	for (int i = 0; i < 5; i++)
		if (v[i] && v[i]->dtype != LM_DT_FLOAT)
			return lm_ops_fail(e, g, n, -ENOTSUP, "'%s' is %s; only "
					   "float32 is supported", v[i]->name,
					   lm_dtype_name(v[i]->dtype));
	lm_value *x = v[0], *w1 = v[1], *w2 = v[3];
	if (x->rank != 4 || !y || y->rank != 4 ||
	    memcmp(x->dims, y->dims, 4 * sizeof(int64_t)))
		return lm_ops_fail(e, g, n, -EINVAL, "input '%s' and the output "
				   "must have one [N, C, H, W] shape", x->name);
	int64_t c = x->dims[1], r = w1->rank == 4 ? w1->dims[0] : -1;
	int64_t w1d[4] = { r, c, 1, 1 }, w2d[4] = { c, r, 1, 1 };
	if (w1->rank != 4 || memcmp(w1->dims, w1d, sizeof(w1d)) ||
	    w2->rank != 4 || memcmp(w2->dims, w2d, sizeof(w2d)) || r < 1 ||
	    (v[2] && lm_ops_numel(v[2]->rank, v[2]->dims) != r) ||
	    (v[4] && lm_ops_numel(v[4]->rank, v[4]->dims) != c))
		return lm_ops_fail(e, g, n, -EINVAL, "weights '%s' and '%s' (and "
				   "biases) do not fit %lld channels",
				   w1->name, w2->name, (long long)c);
	if (!lm_value_is_const(w1) || !lm_value_is_const(w2))
		return lm_ops_fail(e, g, n, -ENOTSUP, "weights '%s' and '%s' "
				   "must be constants", w1->name, w2->name);
	const float *d1 = lm_ops_fold_in(g, n, 1, e);
	const float *d2 = d1 ? lm_ops_fold_in(g, n, 3, e) : NULL;
	if (!d2)
		return -EINVAL;
	size_t n1 = se_packed(r, c), n2 = se_packed(c, r);
	struct se *s = lm_kernel_new_state(g, n, k, sizeof(*s) +
					   (n1 + n2) * sizeof(float), e);
	if (!s)
		return -ENOMEM;
	s->w1p = s->wt;
	s->w2p = s->wt + n1;
	se_pack(d1, r, c, s->w1p);
	se_pack(d2, c, r, s->w2p);
	if ((rc = se_act(g, n, "", &s->act1, e)) ||
	    (rc = se_act(g, n, "2", &s->act2, e)))
		return rc;
	s->n = x->dims[0];
	s->c = c;
	s->r = r;
	s->plane = x->dims[2] * x->dims[3];
	k->run = se_run;
	k->inplace = 1;
	k->scratch_bytes = (size_t)(2 * c + r) * sizeof(float);
	k->impl = "squeeze-excite";
	return 0;
}

static const lm_op ops[] = {
	{ "lm.SqueezeExcite", LM_OP_COMPUTE, se_infer, NULL, se_flops,
	  se_prepare },
};

const struct lm_ops_family lm_ops_fused = { ops, ARRAY_SIZE(ops) };
