/*
 * norm.c: normalisations, softmax and reductions (BatchNormalization,
 * LayerNormalization, InstanceNormalization, Softmax, LogSoftmax,
 * ReduceMean, ReduceSum, ReduceMax, and the private lm.LayerNormChannels
 * that the fusion pass makes): shapes and FLOP counts.
 *
 * BatchNormalization at inference is a per-channel scale and shift, so it
 * joins its producer's layer; the others reduce over axes and head a layer.
 *
 * Opset differences handled here: Softmax's default axis is 1 before
 * opset 13 and -1 from then on; the reductions take axes as an attribute
 * until ReduceSum-13 and ReduceMean/ReduceMax-18, as an optional input
 * after (with noop_with_empty_axes).
 */
#include "ops.h"
#include "kernel.h"
#include "../kernels/act.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Check that input i holds one value per channel (C values). */
static int per_channel(lm_graph *g, lm_node *n, int i, int64_t c,
		       lm_value **v, lm_error *e)
{
	int rc = lm_ops_in(g, n, i, v, e);
	if (rc)
		return rc;
	if (lm_ops_numel((*v)->rank, (*v)->dims) != c || (*v)->rank > 1)
		return lm_ops_fail(e, g, n, -EINVAL, "input '%s' should hold "
				   "%lld per-channel values", (*v)->name,
				   (long long)c);
	return 0;
}

/* Y like X; in training mode also the running (opset 14+) or the
 * running and saved (before 14) means and variances, each of shape (C). */
static int batchnorm_infer(lm_graph *g, lm_node *n, lm_error *e)
{
	lm_value *x, *v = NULL;
	int rc;

	if ((rc = lm_ops_arity(g, n, 5, 5, 1, 5, e)) ||
	    (rc = lm_ops_in(g, n, 0, &x, e)))
		return rc;
	if (x->rank < 1)
		return lm_ops_fail(e, g, n, -EINVAL, "input '%s' is a scalar",
				   x->name);
	int64_t c = x->rank >= 2 ? x->dims[1] : 1;
	for (int i = 1; i < 5; i++)
		if ((rc = per_channel(g, n, i, c, &v, e)))
			return rc;
	if ((rc = lm_ops_out_like(g, n, 0, x, e)))
		return rc;
	lm_dtype st = lm_node_in(g, n, 3)->dtype;
	for (int i = 1; i < n->n_outputs; i++)
		if ((rc = lm_ops_out(g, n, i, st, 1, &c, e)))
			return rc;
	return 0;
}

/* Y like X; Mean and InvStdDev keep the leading dims and set the
 * normalised ones to 1, in the stash_type precision (float32 default). */
static int layernorm_infer(lm_graph *g, lm_node *n, lm_error *e)
{
	lm_value *x, *s, *b;
	int64_t dims[LM_MAX_RANK];
	int axis, rc, r;

	if ((rc = lm_ops_arity(g, n, 2, 3, 1, 3, e)) ||
	    (rc = lm_ops_in(g, n, 0, &x, e)) ||
	    (rc = lm_ops_in(g, n, 1, &s, e)) ||
	    (rc = lm_ops_opt(g, n, 2, &b, e)) ||
	    (rc = lm_ops_axis(g, n, lm_attr_int(n, "axis", -1), x->rank,
			      "axis", &axis, e)))
		return rc;
	/* Scale and bias broadcast to the normalised part of X. */
	for (int i = 1; i < 3; i++) {
		lm_value *p = i == 1 ? s : b;
		if (!p)
			continue;
		if ((rc = lm_ops_broadcast(g, n, x->rank - axis,
					   x->dims + axis, p->rank, p->dims,
					   &r, dims, e)))
			return rc;
		if (r != x->rank - axis ||
		    memcmp(dims, x->dims + axis, (size_t)r * sizeof(int64_t)))
			return lm_ops_fail(e, g, n, -EINVAL, "'%s' does not "
					   "broadcast to the normalised dims "
					   "of '%s'", p->name, x->name);
	}
	if ((rc = lm_ops_out_like(g, n, 0, x, e)))
		return rc;
	int64_t st = lm_attr_int(n, "stash_type", LM_DT_FLOAT);
	if (st <= 0 || st > 64 || lm_dtype_size((lm_dtype)st) == 0)
		return lm_ops_fail(e, g, n, -EINVAL, "stash_type %lld is not "
				   "an element type", (long long)st);
	for (int i = 0; i < x->rank; i++)
		dims[i] = i < axis ? x->dims[i] : 1;
	for (int i = 1; i < 3; i++)
		if ((rc = lm_ops_out(g, n, i, (lm_dtype)st, x->rank, dims, e)))
			return rc;
	return 0;
}

static int instnorm_infer(lm_graph *g, lm_node *n, lm_error *e)
{
	lm_value *x, *v;
	int rc;

	if ((rc = lm_ops_arity(g, n, 3, 3, 1, 1, e)) ||
	    (rc = lm_ops_in(g, n, 0, &x, e)))
		return rc;
	if (x->rank < 3)
		return lm_ops_fail(e, g, n, -EINVAL, "input '%s' has rank %d, "
				   "expected at least 3 (N, C, spatial...)",
				   x->name, x->rank);
	if ((rc = per_channel(g, n, 1, x->dims[1], &v, e)) ||
	    (rc = per_channel(g, n, 2, x->dims[1], &v, e)))
		return rc;
	return lm_ops_out_like(g, n, 0, x, e);
}

static int softmax_infer(lm_graph *g, lm_node *n, lm_error *e)
{
	lm_value *x;
	int axis, rc;
	int64_t dflt = lm_ops_opset(g) >= 13 ? -1 : 1;

	if ((rc = lm_ops_arity(g, n, 1, 1, 1, 1, e)) ||
	    (rc = lm_ops_in(g, n, 0, &x, e)) ||
	    (rc = lm_ops_axis(g, n, lm_attr_int(n, "axis", dflt), x->rank,
			      "axis", &axis, e)))
		return rc;
	return lm_ops_out_like(g, n, 0, x, e);
}

/* Does this reduction take its axes as an input at the graph's opset? */
static int axes_from_input(const lm_graph *g, const lm_node *n)
{
	int64_t since = strcmp(n->op_type, "ReduceSum") == 0 ? 13 : 18;
	return lm_ops_opset(g) >= since;
}

static int reduce_infer(lm_graph *g, lm_node *n, lm_error *e)
{
	lm_value *x;
	int64_t axes[LM_MAX_RANK], dims[LM_MAX_RANK];
	uint8_t reduced[LM_MAX_RANK] = { 0 };
	int naxes, rc, r = 0;
	int by_input = axes_from_input(g, n);

	if ((rc = lm_ops_arity(g, n, 1, by_input ? 2 : 1, 1, 1, e)) ||
	    (rc = lm_ops_in(g, n, 0, &x, e)))
		return rc;
	if (by_input && lm_node_in(g, n, 1))
		naxes = lm_ops_const_ints(g, n, 1, "axes", axes, LM_MAX_RANK,
					  e);
	else
		naxes = lm_ops_attr_list(g, n, "axes", axes, LM_MAX_RANK, e);
	if (naxes < 0)
		return naxes;
	if (naxes == 0 && lm_attr_int(n, "noop_with_empty_axes", 0))
		return lm_ops_out_like(g, n, 0, x, e);
	for (int i = 0; i < naxes; i++) {
		int a;
		if ((rc = lm_ops_axis(g, n, axes[i], x->rank, "axis", &a, e)))
			return rc;
		if (reduced[a])
			return lm_ops_fail(e, g, n, -EINVAL, "axis %lld is "
					   "listed twice", (long long)axes[i]);
		reduced[a] = 1;
	}
	/* No axes: reduce over all of them. */
	for (int i = 0; i < x->rank; i++) {
		if (naxes > 0 && !reduced[i])
			dims[r++] = x->dims[i];
		else if (lm_attr_int(n, "keepdims", 1))
			dims[r++] = 1;
	}
	return lm_ops_out(g, n, 0, x->dtype, r, dims, e);
}

/* Scale and shift: a multiply-add per element. */
static double batchnorm_flops(lm_graph *g, const lm_node *n)
{
	return 2 * lm_ops_out_elems(g, n, 0);
}

/* Mean, variance, subtract, scale, shift: about five per element. */
/* lm.LayerNormChannels (x [N, C, ...], scale [C], bias [C]): y like x. */
static int lnchan_infer(lm_graph *g, lm_node *n, lm_error *e)
{
	lm_value *x, *s, *b;
	int rc;

	if ((rc = lm_ops_arity(g, n, 2, 3, 1, 1, e)) ||
	    (rc = lm_ops_in(g, n, 0, &x, e)) ||
	    (rc = lm_ops_in(g, n, 1, &s, e)) ||
	    (rc = lm_ops_opt(g, n, 2, &b, e)))
		return rc;
	if (x->rank < 2)
		return lm_ops_fail(e, g, n, -EINVAL, "input '%s' has rank %d, "
				   "expected at least 2", x->name, x->rank);
	return lm_ops_out_like(g, n, 0, x, e);
}

static double norm5_flops(lm_graph *g, const lm_node *n)
{
	return 5 * lm_ops_out_elems(g, n, 0);
}

/* Exponent, sum, divide: about three per element. */
static double softmax_flops(lm_graph *g, const lm_node *n)
{
	return 3 * lm_ops_out_elems(g, n, 0);
}

/* Every input element enters the reduction once. */
static double reduce_flops(lm_graph *g, const lm_node *n)
{
	return lm_ops_in_elems(g, n, 0);
}

/* ---- execution ---- */

/*
 * Float32 only.  Rows are reduced with the 16-lane sums of act.c; the
 * elementwise passes are the vectorised kernels below, each in an
 * in-place and an out-of-place form (the executor may run these ops in
 * place, and see act.h for why the forms are kept apart).
 */

static int need_float(lm_graph *g, const lm_node *n, int i, lm_error *e)
{
	lm_value *v = lm_node_in(g, n, i);

	if (v && v->dtype != LM_DT_FLOAT)
		return lm_ops_fail(e, g, n, -ENOTSUP, "input '%s' has element "
				   "type %s, which is not supported (only "
				   "float32)", v->name,
				   lm_dtype_name(v->dtype));
	return 0;
}

static int64_t numel_from(const lm_value *v, int from)
{
	return lm_ops_numel(v->rank - from, v->dims + from);
}

LM_F32_UNARY(f_expsub, LM_VFOR, vm_exp(v - p))

static LM_CLONES void f_logsub_ip(float *y, size_t n, float m, float ls)
{
	LM_VFOR(i, n, y[i] = (y[i] - m) - ls);
}

static LM_CLONES void f_logsub_op(float *restrict y, const float *restrict x,
				  size_t n, float m, float ls)
{
	LM_VFOR(i, n, y[i] = (x[i] - m) - ls);
}

static LM_CLONES void scale_ip(float *y, size_t n, float a)
{
	LM_VFOR(i, n, y[i] *= a);
}

/* y = x a + b over a row. */
static LM_CLONES void affine_ip(float *y, size_t n, float a, float b)
{
	LM_VFOR(i, n, y[i] = y[i] * a + b);
}

static LM_CLONES void affine_op(float *restrict y, const float *restrict x,
				size_t n, float a, float b)
{
	LM_VFOR(i, n, y[i] = x[i] * a + b);
}

static void affine(float *y, const float *x, size_t n, float a, float b)
{
	if (x == y)
		affine_ip(y, n, a, b);
	else
		affine_op(y, x, n, a, b);
}

/* y[i] = x[i] a[i] + b[i]: per-channel affine when channels are last. */
static LM_CLONES void affine_vec_ip(float *y, const float *restrict a,
				    const float *restrict b, size_t n)
{
	LM_VFOR(i, n, y[i] = y[i] * a[i] + b[i]);
}

static LM_CLONES void affine_vec_op(float *restrict y,
				    const float *restrict x,
				    const float *restrict a,
				    const float *restrict b, size_t n)
{
	LM_VFOR(i, n, y[i] = x[i] * a[i] + b[i]);
}

static void affine_vec(float *y, const float *x, const float *a,
		       const float *b, size_t n)
{
	if (x == y)
		affine_vec_ip(y, a, b, n);
	else
		affine_vec_op(y, x, a, b, n);
}

/* -- BatchNormalization (inference) -- */

/* y = x a[c] + b[c] with a = scale / sqrt(var + eps), b = B - mean a. */
struct batchnorm {
	int64_t outer, c, inner;
	float eps;
	int at_run;     /* parameters not constant: a, b made per run */
	lm_epilogue ep; /* an activation fuse.c put after it (DenseNet's
			 * BN -> Relu before each conv) */
	float ab[];     /* a[c] then b[c] */
};

static void bn_params(int64_t c, float eps, const float *scale,
		      const float *bias, const float *mean, const float *var,
		      float *a, float *b)
{
	for (int64_t i = 0; i < c; i++) {
		a[i] = scale[i] / sqrtf(var[i] + eps);
		b[i] = bias[i] - mean[i] * a[i];
	}
}

static int batchnorm_run(const lm_kargs *k)
{
	const struct batchnorm *s = k->state;
	const float *x = k->in[0]->data;
	float *y = k->out[0]->data;
	const float *a = s->ab, *b = s->ab + s->c;

	if (s->at_run) {
		float *ab = k->scratch;
		bn_params(s->c, s->eps, k->in[1]->data, k->in[2]->data,
			  k->in[3]->data, k->in[4]->data, ab, ab + s->c);
		a = ab;
		b = ab + s->c;
	}
	for (int64_t o = 0; o < s->outer; o++) {
		size_t base = (size_t)(o * s->c * s->inner);
		if (s->inner == 1) {
			affine_vec(y + base, x + base, a, b, (size_t)s->c);
			lm_act_apply(s->ep.act, s->ep.alpha, s->ep.beta,
				     y + base, (size_t)s->c);
			continue;
		}
		for (int64_t c = 0; c < s->c; c++) {
			size_t off = base + (size_t)(c * s->inner);
			affine(y + off, x + off, (size_t)s->inner, a[c], b[c]);
			lm_act_apply(s->ep.act, s->ep.alpha, s->ep.beta,
				     y + off, (size_t)s->inner);
		}
	}
	return 0;
}

static int batchnorm_prepare(lm_graph *g, lm_node *n, lm_kernel *k,
			     lm_error *e)
{
	lm_value *x = lm_node_in(g, n, 0);
	int rc, consts = 1;

	for (int i = 0; i < 5; i++) {
		lm_value *v;
		if ((rc = lm_ops_in(g, n, i, &v, e)) ||
		    (rc = need_float(g, n, i, e)))
			return rc;
		if (i > 0)
			consts &= lm_value_is_const(v);
	}
	if (lm_attr_int(n, "training_mode", 0))
		return lm_ops_fail(e, g, n, -ENOTSUP, "training_mode 1 is not "
				   "supported");
	for (int i = 1; i < n->n_outputs; i++)
		if (lm_node_out(g, n, i))
			return lm_ops_fail(e, g, n, -ENOTSUP, "training "
					   "outputs (running or saved mean "
					   "and variance) are not supported");
	int64_t c = x->rank >= 2 ? x->dims[1] : 1;
	struct batchnorm *s = lm_kernel_new_state(g, n, k, sizeof(*s) + (size_t)(2 * c)
					* sizeof(float), e);
	if (!s)
		return -ENOMEM;
	s->outer = x->rank >= 1 ? x->dims[0] : 1;
	s->c = c;
	s->inner = x->rank >= 2 ? numel_from(x, 2) : 1;
	s->eps = lm_attr_float(n, "epsilon", 1e-5f);
	lm_epilogue_get(n, &s->ep);
	if (consts) {
		const float *p[4];
		for (int i = 0; i < 4; i++)
			if (!(p[i] = lm_ops_fold_in(g, n, i + 1, e)))
				return -EINVAL;
		bn_params(c, s->eps, p[0], p[1], p[2], p[3], s->ab,
			  s->ab + c);
	} else {
		s->at_run = 1;
		k->scratch_bytes = (size_t)(2 * c) * sizeof(float);
	}
	k->run = batchnorm_run;
	k->inplace = 1;
	k->impl = "batchnorm";
	return 0;
}

/* -- LayerNormalization, InstanceNormalization -- */

/* y = (x - mean) inv s[i] + b[i] over a row of n. */
static LM_CLONES void ln_row_ip(float *y, float mean, float inv,
				const float *restrict s,
				const float *restrict b, size_t n)
{
	if (b)
		LM_VFOR(i, n, y[i] = (y[i] - mean) * inv * s[i] + b[i]);
	else
		LM_VFOR(i, n, y[i] = (y[i] - mean) * inv * s[i]);
}

static LM_CLONES void ln_row_op(float *restrict y, const float *restrict x,
				float mean, float inv,
				const float *restrict s,
				const float *restrict b, size_t n)
{
	if (b)
		LM_VFOR(i, n, y[i] = (x[i] - mean) * inv * s[i] + b[i]);
	else
		LM_VFOR(i, n, y[i] = (x[i] - mean) * inv * s[i]);
}

/*
 * LayerNormalization: each of `outer` rows of `len` values (the axes from
 * `axis` on) is normalised, then scaled and shifted elementwise.  Scale and
 * bias are expanded to a full row at prepare when constant; otherwise they
 * must already hold a full row and are read at run.
 */
struct layernorm {
	int64_t outer, len;
	float eps;
	int scale_in, bias_in;  /* read from inputs at run (else below) */
	int has_bias;
	float *scale, *bias;    /* into rows[] */
	float rows[];
};

static int layernorm_run(const lm_kargs *k)
{
	const struct layernorm *s = k->state;
	const float *sc = s->scale_in ? k->in[1]->data : s->scale;
	const float *bi = s->bias_in ? k->in[2]->data : s->bias;
	float *mean = k->n_out > 1 && k->out[1] ? k->out[1]->data : NULL;
	float *istd = k->n_out > 2 && k->out[2] ? k->out[2]->data : NULL;
	size_t len = (size_t)s->len;

	if (!s->has_bias)
		bi = NULL;
	for (int64_t r = 0; r < s->outer; r++) {
		const float *x = (const float *)k->in[0]->data + r * s->len;
		float *y = (float *)k->out[0]->data + r * s->len;
		float m = lm_vsum(x, len) / (float)len;
		float inv = 1.0f / sqrtf(lm_vsumsq(x, m, len) / (float)len +
					 s->eps);
		if (mean)
			mean[r] = m;
		if (istd)
			istd[r] = inv;
		if (x == y)
			ln_row_ip(y, m, inv, sc, bi, len);
		else
			ln_row_op(y, x, m, inv, sc, bi, len);
	}
	return 0;
}

/* Expand constant input i (broadcast to the normalised dims) into out. */
static int ln_expand(lm_graph *g, lm_node *n, int i, const lm_value *x,
		     int axis, float *out, int64_t len, lm_error *e)
{
	lm_value *p = lm_node_in(g, n, i);
	const float *d = lm_ops_fold_in(g, n, i, e);

	if (!d)
		return -EINVAL;
	for (int64_t j = 0; j < len; j++)
		out[j] = d[lm_ops_bcast_src(x->rank - axis, x->dims + axis,
					    p->rank, p->dims, j)];
	return 0;
}

static int layernorm_prepare(lm_graph *g, lm_node *n, lm_kernel *k,
			     lm_error *e)
{
	lm_value *x, *p[3];
	int axis, rc;

	if ((rc = lm_ops_in(g, n, 0, &x, e)) ||
	    (rc = lm_ops_in(g, n, 1, &p[1], e)) ||
	    (rc = lm_ops_opt(g, n, 2, &p[2], e)) ||
	    (rc = lm_ops_axis(g, n, lm_attr_int(n, "axis", -1), x->rank,
			      "axis", &axis, e)))
		return rc;
	for (int i = 0; i < 3; i++)
		if ((rc = need_float(g, n, i, e)))
			return rc;
	if (lm_attr_int(n, "stash_type", LM_DT_FLOAT) != LM_DT_FLOAT)
		return lm_ops_fail(e, g, n, -ENOTSUP, "stash_type %lld is not "
				   "supported (only float32)",
				   (long long)lm_attr_int(n, "stash_type", 0));
	int64_t len = numel_from(x, axis);
	struct layernorm *s = lm_kernel_new_state(g, n, k, sizeof(*s) + (size_t)(2 * len)
					* sizeof(float), e);
	if (!s)
		return -ENOMEM;
	s->outer = lm_ops_numel(axis, x->dims);
	s->len = len;
	s->eps = lm_attr_float(n, "epsilon", 1e-5f);
	s->scale = s->rows;
	s->bias = s->rows + len;
	s->has_bias = p[2] != NULL;
	for (int i = 1; i < 3; i++) {
		if (!p[i])
			continue;
		if (lm_value_is_const(p[i])) {
			if ((rc = ln_expand(g, n, i, x, axis,
					    i == 1 ? s->scale : s->bias, len,
					    e)))
				return rc;
		} else if (lm_ops_numel(p[i]->rank, p[i]->dims) == len) {
			*(i == 1 ? &s->scale_in : &s->bias_in) = 1;
		} else {
			return lm_ops_fail(e, g, n, -ENOTSUP, "'%s' is neither "
					   "a constant nor a full row of %lld "
					   "values", p[i]->name,
					   (long long)len);
		}
	}
	k->run = layernorm_run;
	k->inplace = 1;
	k->impl = "layernorm";
	return 0;
}

/*
 * lm.LayerNormChannels, private (fuse.c makes it from a channels-last
 * LayerNorm between two transposes, or a LayerNorm written out over axis
 * 1): x is [N, C, S...] and each of the N * S pixels is normalised over
 * its C channels, y = (x - mean) inv scale[c] + bias[c].  In NCHW a
 * pixel's channels lie a plane apart, so pixels go in blocks of
 * LNC_BLOCK with per-pixel accumulators: a vectorised pass over the C
 * rows of the block for the sums, one for the squared deviations, one
 * for the output; the block's rows stay in L2 between the passes.
 */
#define LNC_BLOCK 256

struct lnchan {
	int64_t n, c, plane;
	float eps;
	int has_bias;
	float *scale, *bias;    /* into rows[] */
	float rows[];
};

static LM_CLONES void lnc_sum(float *restrict acc, const float *restrict x,
			      size_t n)
{
	LM_VFOR(i, n, acc[i] += x[i]);
}

static LM_CLONES void lnc_sqdev(float *restrict acc, const float *restrict x,
				const float *restrict m, size_t n)
{
	LM_VFOR(i, n, float d = x[i] - m[i]; acc[i] += d * d);
}

static LM_CLONES void lnc_out_ip(float *y, const float *restrict m,
				 const float *restrict inv, float s, float b,
				 size_t n)
{
	LM_VFOR(i, n, y[i] = (y[i] - m[i]) * inv[i] * s + b);
}

static LM_CLONES void lnc_out_op(float *restrict y, const float *restrict x,
				 const float *restrict m,
				 const float *restrict inv, float s, float b,
				 size_t n)
{
	LM_VFOR(i, n, y[i] = (x[i] - m[i]) * inv[i] * s + b);
}

static int lnchan_run(const lm_kargs *k)
{
	const struct lnchan *s = k->state;
	float acc[LNC_BLOCK], mean[LNC_BLOCK], inv[LNC_BLOCK];
	float rcp = 1.0f / (float)s->c;

	for (int64_t n = 0; n < s->n; n++) {
		const float *x = (const float *)k->in[0]->data +
				 n * s->c * s->plane;
		float *y = (float *)k->out[0]->data + n * s->c * s->plane;
		for (int64_t p0 = 0; p0 < s->plane; p0 += LNC_BLOCK) {
			size_t nb = (size_t)(s->plane - p0 < LNC_BLOCK
					     ? s->plane - p0 : LNC_BLOCK);
			memset(acc, 0, nb * sizeof(float));
			for (int64_t c = 0; c < s->c; c++)
				lnc_sum(acc, x + c * s->plane + p0, nb);
			for (size_t i = 0; i < nb; i++) {
				mean[i] = acc[i] * rcp;
				acc[i] = 0;
			}
			for (int64_t c = 0; c < s->c; c++)
				lnc_sqdev(acc, x + c * s->plane + p0, mean, nb);
			for (size_t i = 0; i < nb; i++)
				inv[i] = 1.0f / sqrtf(acc[i] * rcp + s->eps);
			for (int64_t c = 0; c < s->c; c++) {
				float b = s->has_bias ? s->bias[c] : 0.0f;
				size_t off = (size_t)(c * s->plane + p0);
				if (x == y)
					lnc_out_ip(y + off, mean, inv,
						   s->scale[c], b, nb);
				else
					lnc_out_op(y + off, x + off, mean, inv,
						   s->scale[c], b, nb);
			}
		}
	}
	return 0;
}

static int lnchan_prepare(lm_graph *g, lm_node *n, lm_kernel *k,
			  lm_error *e)
{
	lm_value *x, *p[3];
	int rc;

	if ((rc = lm_ops_in(g, n, 0, &x, e)) ||
	    (rc = lm_ops_in(g, n, 1, &p[1], e)) ||
	    (rc = lm_ops_opt(g, n, 2, &p[2], e)))
		return rc;
	for (int i = 0; i < 3; i++)
		if ((rc = need_float(g, n, i, e)))
			return rc;
	if (x->rank < 2)
		return lm_ops_fail(e, g, n, -EINVAL, "input '%s' has rank %d, "
				   "expected at least 2", x->name, x->rank);
	int64_t c = x->dims[1];
	for (int i = 1; i < 3; i++)
		if (p[i] && (!lm_value_is_const(p[i]) ||
			     lm_ops_numel(p[i]->rank, p[i]->dims) != c))
			return lm_ops_fail(e, g, n, -ENOTSUP, "'%s' is not a "
					   "constant of %lld values", p[i]->name,
					   (long long)c);
	struct lnchan *s = lm_kernel_new_state(g, n, k, sizeof(*s) +
					       (size_t)(2 * c) * sizeof(float),
					       e);
	if (!s)
		return -ENOMEM;
	s->n = x->dims[0];
	s->c = c;
	s->plane = numel_from(x, 2);
	s->eps = lm_attr_float(n, "epsilon", 1e-5f);
	s->scale = s->rows;
	s->bias = s->rows + c;
	s->has_bias = p[2] != NULL;
	for (int i = 1; i < 3; i++) {
		const float *d = p[i] ? lm_ops_fold_in(g, n, i, e) : NULL;
		if (p[i] && !d)
			return -EINVAL;
		if (d)
			memcpy(i == 1 ? s->scale : s->bias, d,
			       (size_t)c * sizeof(float));
	}
	k->run = lnchan_run;
	k->inplace = 1;
	k->impl = "layernorm-channels";
	return 0;
}

/* InstanceNormalization: each (n, c) plane normalised on its own, then
 * y = x a + b with a = scale[c] / std, b = B[c] - mean a. */
struct instnorm {
	int64_t n, c, plane;
	float eps;
};

static int instnorm_run(const lm_kargs *k)
{
	const struct instnorm *s = k->state;
	const float *scale = k->in[1]->data, *bias = k->in[2]->data;
	size_t plane = (size_t)s->plane;

	for (int64_t i = 0; i < s->n * s->c; i++) {
		const float *x = (const float *)k->in[0]->data + i * s->plane;
		float *y = (float *)k->out[0]->data + i * s->plane;
		float m = lm_vsum(x, plane) / (float)plane;
		float inv = 1.0f / sqrtf(lm_vsumsq(x, m, plane) /
					 (float)plane + s->eps);
		float a = scale[i % s->c] * inv;
		affine(y, x, plane, a, bias[i % s->c] - m * a);
	}
	return 0;
}

static int instnorm_prepare(lm_graph *g, lm_node *n, lm_kernel *k,
			    lm_error *e)
{
	lm_value *x, *v;
	int rc;

	for (int i = 0; i < 3; i++)
		if ((rc = lm_ops_in(g, n, i, i ? &v : &x, e)) ||
		    (rc = need_float(g, n, i, e)))
			return rc;
	struct instnorm *s = lm_kernel_new_state(g, n, k, sizeof(*s), e);
	if (!s)
		return -ENOMEM;
	s->n = x->dims[0];
	s->c = x->dims[1];
	s->plane = numel_from(x, 2);
	s->eps = lm_attr_float(n, "epsilon", 1e-5f);
	k->run = instnorm_run;
	k->inplace = 1;
	k->impl = "instnorm";
	return 0;
}

/* -- Softmax, LogSoftmax -- */

/* Running maximum and sums across rows, for softmax over an axis that
 * is not the last: the rows are `inner` long and contiguous. */
static LM_CLONES void max_into(float *restrict m, const float *restrict x,
			       size_t n)
{
	LM_VFOR(i, n, m[i] = x[i] > m[i] || x[i] != x[i] ? x[i] : m[i]);
}

static LM_CLONES void expsub_acc_ip(float *y, const float *restrict m,
				    float *restrict s, size_t n)
{
	LM_VFOR(i, n, float t = vm_exp(y[i] - m[i]); y[i] = t; s[i] += t);
}

static LM_CLONES void expsub_acc_op(float *restrict y,
				    const float *restrict x,
				    const float *restrict m,
				    float *restrict s, size_t n)
{
	LM_VFOR(i, n, float t = vm_exp(x[i] - m[i]); y[i] = t; s[i] += t);
}

static LM_CLONES void expsub_sum(float *restrict s, const float *restrict x,
				 const float *restrict m, size_t n)
{
	LM_VFOR(i, n, s[i] += vm_exp(x[i] - m[i]));
}

static LM_CLONES void mul_vec(float *y, const float *restrict r, size_t n)
{
	LM_VFOR(i, n, y[i] *= r[i]);
}

static LM_CLONES void logsub_vec_ip(float *y, const float *restrict m,
				    const float *restrict ls, size_t n)
{
	LM_VFOR(i, n, y[i] = (y[i] - m[i]) - ls[i]);
}

static LM_CLONES void logsub_vec_op(float *restrict y,
				    const float *restrict x,
				    const float *restrict m,
				    const float *restrict ls, size_t n)
{
	LM_VFOR(i, n, y[i] = (x[i] - m[i]) - ls[i]);
}

/* Sum of e^(x - m) over a row, without storing it (LogSoftmax in place
 * must keep x). */
static LM_CLONES float expsub_total(const float *x, float m, size_t n)
{
	float acc[16] = { 0 };
	size_t i = 0;

	for (; i + 16 <= n; i += 16) {
		LM_IVDEP
		for (size_t j = 0; j < 16; j++)
			acc[j] += vm_exp(x[i + j] - m);
	}
	float s = 0;
	for (size_t j = 0; j < 16; j++)
		s += acc[j];
	for (; i < n; i++)
		s += vm_exp(x[i] - m);
	return s;
}

/*
 * Softmax over `len` values spaced `inner` apart, in `outer` blocks.
 * Before opset 13 Softmax flattened the input to 2-D at the axis and
 * normalised over everything after it: len is then that product and
 * inner 1.  Numerically stable: the maximum is subtracted first.
 */
struct softmax {
	int64_t outer, len, inner;
	int log;
};

static void softmax_rows(const struct softmax *s, const float *x, float *y)
{
	size_t len = (size_t)s->len;

	for (int64_t r = 0; r < s->outer; r++, x += len, y += len) {
		float m = lm_vmax(x, len);
		if (s->log) {
			/* (x - m) - log s, not x - (m + log s): near the
			 * maximum x - m is exact, and the result keeps its
			 * relative accuracy. */
			float ls = logf(expsub_total(x, m, len));
			if (x == y)
				f_logsub_ip(y, len, m, ls);
			else
				f_logsub_op(y, x, len, m, ls);
			continue;
		}
		if (x == y)
			f_expsub_ip(y, len, m);
		else
			f_expsub_op(y, x, len, m);
		scale_ip(y, len, 1.0f / lm_vsum(y, len));
	}
}

static void softmax_strided(const struct softmax *s, const float *x,
			    float *y, float *scratch)
{
	size_t in = (size_t)s->inner, block = (size_t)s->len * in;
	float *m = scratch, *sum = scratch + in;

	for (int64_t r = 0; r < s->outer; r++, x += block, y += block) {
		for (size_t j = 0; j < in; j++) {
			m[j] = -INFINITY;
			sum[j] = 0;
		}
		for (int64_t l = 0; l < s->len; l++)
			max_into(m, x + l * in, in);
		for (int64_t l = 0; l < s->len; l++) {
			if (s->log)
				expsub_sum(sum, x + l * in, m, in);
			else if (x == y)
				expsub_acc_ip(y + l * in, m, sum, in);
			else
				expsub_acc_op(y + l * in, x + l * in, m, sum,
					      in);
		}
		for (size_t j = 0; j < in; j++)
			sum[j] = s->log ? logf(sum[j]) : 1.0f / sum[j];
		for (int64_t l = 0; l < s->len; l++) {
			if (!s->log)
				mul_vec(y + l * in, sum, in);
			else if (x == y)
				logsub_vec_ip(y + l * in, m, sum, in);
			else
				logsub_vec_op(y + l * in, x + l * in, m, sum,
					      in);
		}
	}
}

static int softmax_run(const lm_kargs *k)
{
	const struct softmax *s = k->state;

	if (s->inner == 1)
		softmax_rows(s, k->in[0]->data, k->out[0]->data);
	else
		softmax_strided(s, k->in[0]->data, k->out[0]->data,
				k->scratch);
	return 0;
}

static int softmax_prepare(lm_graph *g, lm_node *n, lm_kernel *k,
			   lm_error *e)
{
	lm_value *x;
	int axis, rc;
	int old = lm_ops_opset(g) < 13;

	if ((rc = lm_ops_in(g, n, 0, &x, e)) ||
	    (rc = need_float(g, n, 0, e)) ||
	    (rc = lm_ops_axis(g, n, lm_attr_int(n, "axis", old ? 1 : -1),
			      x->rank, "axis", &axis, e)))
		return rc;
	struct softmax *s = lm_kernel_new_state(g, n, k, sizeof(*s), e);
	if (!s)
		return -ENOMEM;
	s->outer = lm_ops_numel(axis, x->dims);
	s->len = old ? numel_from(x, axis) : x->dims[axis];
	s->inner = old ? 1 : numel_from(x, axis + 1);
	s->log = !strcmp(n->op_type, "LogSoftmax");
	if (s->inner > 1)
		k->scratch_bytes = 2 * (size_t)s->inner * sizeof(float);
	k->run = softmax_run;
	k->inplace = 1;
	k->impl = s->inner > 1 ? "softmax-strided" : "softmax";
	return 0;
}

/* -- ReduceMean, ReduceSum, ReduceMax -- */

static LM_CLONES void add_into(float *restrict y, const float *restrict x,
			       size_t n)
{
	LM_VFOR(i, n, y[i] += x[i]);
}

/*
 * The input's axes, with those of size 1 dropped and neighbours of the
 * same kind (reduced or kept) merged, alternate between kept and reduced
 * groups.  The run walks the input row by row (a row is the last group):
 * a reduced row folds into one output value, a kept row into a run of
 * them.  Output offsets follow the kept groups (stride 0 on reduced ones).
 */
struct reduce {
	int rank;
	int64_t dims[LM_MAX_RANK];
	int64_t ost[LM_MAX_RANK];       /* output stride per group */
	uint8_t red[LM_MAX_RANK];
	int64_t rows, len, out_n;
	float scale;                    /* 1/count for the mean, else 1 */
	int max;
	int copy;                       /* nothing reduced */
};

static int reduce_run(const lm_kargs *k)
{
	const struct reduce *s = k->state;
	const float *x = k->in[0]->data;
	float *y = k->out[0]->data;
	int64_t idx[LM_MAX_RANK] = { 0 }, off = 0;
	size_t len = (size_t)s->len;

	if (s->copy) {
		if (x != y)
			memcpy(y, x, (size_t)s->out_n * sizeof(float));
		return 0;
	}
	int last_red = s->red[s->rank - 1];
	for (int64_t i = 0; i < s->out_n; i++)
		y[i] = s->max ? -INFINITY : 0.0f;
	for (int64_t r = 0; r < s->rows; r++, x += len) {
		if (last_red) {
			float v = s->max ? lm_vmax(x, len) : lm_vsum(x, len);
			if (!s->max)
				y[off] += v;
			else if (v > y[off] || v != v)
				y[off] = v;
		} else if (s->max) {
			max_into(y + off, x, len);
		} else {
			add_into(y + off, x, len);
		}
		for (int d = s->rank - 2; d >= 0; d--) {
			off += s->ost[d];
			if (++idx[d] < s->dims[d])
				break;
			off -= s->ost[d] * s->dims[d];
			idx[d] = 0;
		}
	}
	if (s->scale != 1.0f)
		scale_ip(y, (size_t)s->out_n, s->scale);
	return 0;
}

static int reduce_prepare(lm_graph *g, lm_node *n, lm_kernel *k,
			  lm_error *e)
{
	lm_value *x, *y = lm_node_out(g, n, 0);
	int64_t axes[LM_MAX_RANK];
	uint8_t red[LM_MAX_RANK] = { 0 };
	int naxes, rc;

	if ((rc = lm_ops_in(g, n, 0, &x, e)) ||
	    (rc = need_float(g, n, 0, e)))
		return rc;
	if (!y)
		return lm_ops_fail(e, g, n, -EINVAL, "output 0 is missing");
	if (axes_from_input(g, n) && lm_node_in(g, n, 1))
		naxes = lm_ops_const_ints(g, n, 1, "axes", axes, LM_MAX_RANK,
					  e);
	else
		naxes = lm_ops_attr_list(g, n, "axes", axes, LM_MAX_RANK, e);
	if (naxes < 0)
		return naxes;
	struct reduce *s = lm_kernel_new_state(g, n, k, sizeof(*s), e);
	if (!s)
		return -ENOMEM;
	s->out_n = lm_ops_numel(y->rank, y->dims);
	s->max = !strcmp(n->op_type, "ReduceMax");
	k->run = reduce_run;
	k->impl = "reduce";
	if (naxes == 0 && lm_attr_int(n, "noop_with_empty_axes", 0)) {
		s->copy = 1;
		k->inplace = 1;
		return 0;
	}
	for (int i = 0; i < naxes; i++) {
		int a;
		if ((rc = lm_ops_axis(g, n, axes[i], x->rank, "axis", &a, e)))
			return rc;
		red[a] = 1;
	}
	int64_t count = 1;
	int r = 0;
	for (int d = 0; d < x->rank; d++) {
		int rd = naxes == 0 || red[d];
		if (rd)
			count *= x->dims[d];
		if (x->dims[d] == 1)
			continue;
		if (r > 0 && s->red[r - 1] == rd) {
			s->dims[r - 1] *= x->dims[d];
		} else {
			s->red[r] = (uint8_t)rd;
			s->dims[r++] = x->dims[d];
		}
	}
	if (r == 0) {
		/* A single element: "reducing" it copies it. */
		s->copy = 1;
		k->inplace = 1;
		return 0;
	}
	s->rank = r;
	int64_t st = 1;
	for (int d = r - 1; d >= 0; d--) {
		s->ost[d] = s->red[d] ? 0 : st;
		if (!s->red[d])
			st *= s->dims[d];
	}
	s->len = s->dims[r - 1];
	s->rows = 1;
	for (int d = 0; d < r - 1; d++)
		s->rows *= s->dims[d];
	s->scale = !strcmp(n->op_type, "ReduceMean") && count > 0
		? 1.0f / (float)count : 1.0f;
	return 0;
}

static const lm_op ops[] = {
	{ "BatchNormalization", LM_OP_ELEMENTWISE, batchnorm_infer, NULL,
	  batchnorm_flops, batchnorm_prepare },
	{ "LayerNormalization", LM_OP_COMPUTE, layernorm_infer, NULL,
	  norm5_flops, layernorm_prepare },
	{ "lm.LayerNormChannels", LM_OP_COMPUTE, lnchan_infer, NULL,
	  norm5_flops, lnchan_prepare },
	{ "InstanceNormalization", LM_OP_COMPUTE, instnorm_infer, NULL,
	  norm5_flops, instnorm_prepare },
	{ "Softmax", LM_OP_COMPUTE, softmax_infer, NULL, softmax_flops,
	  softmax_prepare },
	{ "LogSoftmax", LM_OP_COMPUTE, softmax_infer, NULL, softmax_flops,
	  softmax_prepare },
	{ "ReduceMean", LM_OP_COMPUTE, reduce_infer, NULL, reduce_flops,
	  reduce_prepare },
	{ "ReduceSum", LM_OP_COMPUTE, reduce_infer, NULL, reduce_flops,
	  reduce_prepare },
	{ "ReduceMax", LM_OP_COMPUTE, reduce_infer, NULL, reduce_flops,
	  reduce_prepare },
};

const struct lm_ops_family lm_ops_norm = { ops, ARRAY_SIZE(ops) };
