/*
 * norm.c: normalisations, softmax and reductions (BatchNormalization,
 * LayerNormalization, InstanceNormalization, Softmax, LogSoftmax,
 * ReduceMean, ReduceSum, ReduceMax): shapes and FLOP counts.
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

static const lm_op ops[] = {
	{ "BatchNormalization", LM_OP_ELEMENTWISE, batchnorm_infer, NULL,
	  batchnorm_flops },
	{ "LayerNormalization", LM_OP_COMPUTE, layernorm_infer, NULL,
	  norm5_flops },
	{ "InstanceNormalization", LM_OP_COMPUTE, instnorm_infer, NULL,
	  norm5_flops },
	{ "Softmax", LM_OP_COMPUTE, softmax_infer, NULL, softmax_flops },
	{ "LogSoftmax", LM_OP_COMPUTE, softmax_infer, NULL, softmax_flops },
	{ "ReduceMean", LM_OP_COMPUTE, reduce_infer, NULL, reduce_flops },
	{ "ReduceSum", LM_OP_COMPUTE, reduce_infer, NULL, reduce_flops },
	{ "ReduceMax", LM_OP_COMPUTE, reduce_infer, NULL, reduce_flops },
};

const struct lm_ops_family lm_ops_norm = { ops, ARRAY_SIZE(ops) };
