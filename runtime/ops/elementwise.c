/*
 * elementwise.c: unary and binary elementwise operators with NumPy
 * broadcasting: shapes, FLOP counts, and constant evaluation for the ones
 * that appear in shape arithmetic (Add, Sub, Mul, Div, Equal, Less,
 * Greater, And, Or, Not, Neg, Where, Min, Max, Cast, Identity).
 *
 * All of them join the layer of their producer (LM_OP_ELEMENTWISE), except
 * Identity, which moves no data (LM_OP_RESHAPE).
 *
 * FLOPs are output elements times a per-element cost: 1 for arithmetic,
 * comparisons, clamps and conversions; 4 for a transcendental function
 * (Exp, Tanh, Erf, Pow); Sigmoid 6 (exp, add, divide); HardSigmoid 3 (mul,
 * add, clamp); HardSwish 4 (HardSigmoid and a mul); Gelu 8 (erf and four
 * arithmetic ops); Max and Min one per extra input; Identity and Dropout
 * none, being no-ops at inference.
 */
#include "ops.h"

#include <math.h>
#include <string.h>

/* ---- shape inference ---- */

static int unary_infer(lm_graph *g, lm_node *n, lm_error *e)
{
	lm_value *x;
	int rc;

	if ((rc = lm_ops_arity(g, n, 1, 1, 1, 1, e)) ||
	    (rc = lm_ops_in(g, n, 0, &x, e)))
		return rc;
	return lm_ops_out_like(g, n, 0, x, e);
}

/* Clip takes min and max as attributes before opset 11, as optional
 * scalar inputs from then on. */
static int clip_infer(lm_graph *g, lm_node *n, lm_error *e)
{
	lm_value *x, *lim;
	int rc;

	if ((rc = lm_ops_arity(g, n, 1, lm_ops_opset(g) >= 11 ? 3 : 1, 1, 1,
			       e)) ||
	    (rc = lm_ops_in(g, n, 0, &x, e)))
		return rc;
	for (int i = 1; i < n->n_inputs; i++) {
		if ((rc = lm_ops_opt(g, n, i, &lim, e)))
			return rc;
		if (lim && lm_ops_numel(lim->rank, lim->dims) != 1)
			return lm_ops_fail(e, g, n, -EINVAL, "%s '%s' is not a "
					   "scalar", i == 1 ? "min" : "max",
					   lim->name);
	}
	return lm_ops_out_like(g, n, 0, x, e);
}

/* Dropout: data, then ratio and training_mode inputs from opset 12; the
 * optional mask output is bool from opset 10, the data type before. */
static int dropout_infer(lm_graph *g, lm_node *n, lm_error *e)
{
	lm_value *x;
	int rc;

	if ((rc = lm_ops_arity(g, n, 1, 3, 1, 2, e)) ||
	    (rc = lm_ops_in(g, n, 0, &x, e)) ||
	    (rc = lm_ops_out_like(g, n, 0, x, e)))
		return rc;
	return lm_ops_out(g, n, 1, lm_ops_opset(g) >= 10 ? LM_DT_BOOL
							 : x->dtype,
			  x->rank, x->dims, e);
}

static int cast_infer(lm_graph *g, lm_node *n, lm_error *e)
{
	lm_value *x;
	int rc;

	if ((rc = lm_ops_arity(g, n, 1, 1, 1, 1, e)) ||
	    (rc = lm_ops_in(g, n, 0, &x, e)))
		return rc;
	const lm_attr *to = lm_node_attr(n, "to");
	if (!to || to->type != LM_ATTR_INT)
		return lm_ops_fail(e, g, n, -EINVAL, "attribute 'to' is "
				   "missing");
	if (to->i <= 0 || to->i > 64 || lm_dtype_size((lm_dtype)to->i) == 0)
		return lm_ops_fail(e, g, n, -EINVAL, "cannot cast to element "
				   "type %lld", (long long)to->i);
	return lm_ops_out(g, n, 0, (lm_dtype)to->i, x->rank, x->dims, e);
}

static int need_bool(lm_graph *g, lm_node *n, const lm_value *v, lm_error *e)
{
	if (v->dtype != LM_DT_BOOL)
		return lm_ops_fail(e, g, n, -EINVAL, "input '%s' is %s, "
				   "expected bool", v->name,
				   lm_dtype_name(v->dtype));
	return 0;
}

static int not_infer(lm_graph *g, lm_node *n, lm_error *e)
{
	lm_value *x;
	int rc;

	if ((rc = lm_ops_arity(g, n, 1, 1, 1, 1, e)) ||
	    (rc = lm_ops_in(g, n, 0, &x, e)) ||
	    (rc = need_bool(g, n, x, e)))
		return rc;
	return lm_ops_out_like(g, n, 0, x, e);
}

/* Variadic broadcast over inputs [first, n_inputs) into (rank, dims),
 * all of one element type unless mixed is set (Pow's exponent). */
static int broadcast_all(lm_graph *g, lm_node *n, int first, int mixed,
			 int *rank, int64_t *dims, lm_dtype *dt, lm_error *e)
{
	lm_value *v, *v0 = NULL;
	int rc;

	*rank = 0;
	for (int i = first; i < n->n_inputs; i++) {
		if ((rc = lm_ops_in(g, n, i, &v, e)))
			return rc;
		if (!v0)
			v0 = v;
		else if (!mixed && (rc = lm_ops_same_type(g, n, v0, v, e)))
			return rc;
		if ((rc = lm_ops_broadcast(g, n, *rank, dims, v->rank, v->dims,
					   rank, dims, e)))
			return rc;
	}
	*dt = v0 ? v0->dtype : LM_DT_UNDEFINED;
	return 0;
}

/* Add, Sub, Mul, Div: same types in, same type out. */
static int arith_infer(lm_graph *g, lm_node *n, lm_error *e)
{
	int64_t dims[LM_MAX_RANK];
	int rank, rc;
	lm_dtype dt;

	if ((rc = lm_ops_arity(g, n, 2, 2, 1, 1, e)) ||
	    (rc = broadcast_all(g, n, 0, 0, &rank, dims, &dt, e)))
		return rc;
	return lm_ops_out(g, n, 0, dt, rank, dims, e);
}

/* Pow: the exponent may have another numeric type. */
static int pow_infer(lm_graph *g, lm_node *n, lm_error *e)
{
	int64_t dims[LM_MAX_RANK];
	int rank, rc;
	lm_dtype dt;

	if ((rc = lm_ops_arity(g, n, 2, 2, 1, 1, e)) ||
	    (rc = broadcast_all(g, n, 0, 1, &rank, dims, &dt, e)))
		return rc;
	return lm_ops_out(g, n, 0, lm_node_in(g, n, 0)->dtype, rank, dims, e);
}

/* Equal, Less, Greater, And, Or: bool out. */
static int compare_infer(lm_graph *g, lm_node *n, lm_error *e)
{
	int64_t dims[LM_MAX_RANK];
	int rank, rc;
	lm_dtype dt;

	if ((rc = lm_ops_arity(g, n, 2, 2, 1, 1, e)) ||
	    (rc = broadcast_all(g, n, 0, 0, &rank, dims, &dt, e)))
		return rc;
	if ((!strcmp(n->op_type, "And") || !strcmp(n->op_type, "Or")) &&
	    (rc = need_bool(g, n, lm_node_in(g, n, 0), e)))
		return rc;
	return lm_ops_out(g, n, 0, LM_DT_BOOL, rank, dims, e);
}

static int where_infer(lm_graph *g, lm_node *n, lm_error *e)
{
	int64_t dims[LM_MAX_RANK];
	int rank, rc;
	lm_dtype dt;
	lm_value *c;

	if ((rc = lm_ops_arity(g, n, 3, 3, 1, 1, e)) ||
	    (rc = lm_ops_in(g, n, 0, &c, e)) ||
	    (rc = need_bool(g, n, c, e)) ||
	    (rc = broadcast_all(g, n, 1, 0, &rank, dims, &dt, e)) ||
	    (rc = lm_ops_broadcast(g, n, rank, dims, c->rank, c->dims, &rank,
				   dims, e)))
		return rc;
	return lm_ops_out(g, n, 0, dt, rank, dims, e);
}

/* Max, Min: one or more inputs of one type. */
static int minmax_infer(lm_graph *g, lm_node *n, lm_error *e)
{
	int64_t dims[LM_MAX_RANK];
	int rank, rc;
	lm_dtype dt;

	if ((rc = lm_ops_arity(g, n, 1, -1, 1, 1, e)) ||
	    (rc = broadcast_all(g, n, 0, 0, &rank, dims, &dt, e)))
		return rc;
	return lm_ops_out(g, n, 0, dt, rank, dims, e);
}

/* ---- constant evaluation ---- */

enum bop { B_ADD, B_SUB, B_MUL, B_DIV, B_EQ, B_LT, B_GT, B_AND, B_OR,
	   B_MAX, B_MIN };

/* uint64 beyond INT64_MAX would not survive the int64 arithmetic below;
 * shape arithmetic never uses it. */
static int foldable_type(lm_dtype t)
{
	return lm_ops_numeric(t) && t != LM_DT_UINT64;
}

/* y[iy] = a[ia] op b[ib], in double for float types and in int64 (with
 * two's complement wrap-around, as the kernels behave) for the rest. */
static int apply(lm_graph *g, const lm_node *n, enum bop op, lm_dtype t,
		 const void *pa, int64_t ia, const void *pb, int64_t ib,
		 void *py, lm_dtype ty, int64_t iy, lm_error *e)
{
	if (lm_ops_is_float(t)) {
		double x = lm_ops_get_f(pa, t, ia), z = lm_ops_get_f(pb, t, ib);
		double r = 0;
		switch (op) {
		case B_ADD: r = x + z; break;
		case B_SUB: r = x - z; break;
		case B_MUL: r = x * z; break;
		case B_DIV: r = x / z; break;
		case B_EQ: r = x == z; break;
		case B_LT: r = x < z; break;
		case B_GT: r = x > z; break;
		case B_AND: r = x != 0 && z != 0; break;
		case B_OR: r = x != 0 || z != 0; break;
		case B_MAX: r = isnan(x) || isnan(z) ? NAN : x > z ? x : z;
			break;
		case B_MIN: r = isnan(x) || isnan(z) ? NAN : x < z ? x : z;
			break;
		}
		lm_ops_put_f(py, ty, iy, r);
		return 0;
	}

	int64_t x = lm_ops_get_i(pa, t, ia), z = lm_ops_get_i(pb, t, ib);
	int64_t r = 0;
	switch (op) {
	case B_ADD: r = (int64_t)((uint64_t)x + (uint64_t)z); break;
	case B_SUB: r = (int64_t)((uint64_t)x - (uint64_t)z); break;
	case B_MUL: r = (int64_t)((uint64_t)x * (uint64_t)z); break;
	case B_DIV:
		if (z == 0)
			return lm_ops_fail(e, g, n, -EDOM, "integer division "
					   "by zero in constant data");
		/* Truncates toward zero, as the C++ kernels do. */
		r = (x == INT64_MIN && z == -1) ? INT64_MIN : x / z;
		break;
	case B_EQ: r = x == z; break;
	case B_LT: r = x < z; break;
	case B_GT: r = x > z; break;
	case B_AND: r = x && z; break;
	case B_OR: r = x || z; break;
	case B_MAX: r = x > z ? x : z; break;
	case B_MIN: r = x < z ? x : z; break;
	}
	lm_ops_put_i(py, ty, iy, r);
	return 0;
}

/* Fold a variadic (Max, Min) or binary op: y starts as input 0 broadcast,
 * then each further input is combined into it. */
static int fold_bop(lm_graph *g, lm_node *n, enum bop op, lm_error *e)
{
	lm_value *y = lm_node_out(g, n, 0);
	lm_value *a = lm_node_in(g, n, 0);
	int rc;

	if (!y || !a)
		return -EINVAL;
	for (int i = 0; i < n->n_inputs; i++) {
		lm_value *v = lm_node_in(g, n, i);
		if (!v || !foldable_type(v->dtype))
			return -EOPNOTSUPP;
	}
	if (!foldable_type(y->dtype))
		return -EOPNOTSUPP;
	int64_t cnt = lm_ops_numel(y->rank, y->dims);
	const void *pa = lm_ops_fold_in(g, n, 0, e);
	if (cnt < 0 || !pa)
		return -EINVAL;

	if (op == B_MAX || op == B_MIN) {
		/* Start from input 0, then fold the others in place. */
		void *py = lm_ops_fold_out(g, n, 0, e);
		if (!py)
			return -ENOMEM;
		for (int64_t i = 0; i < cnt; i++) {
			int64_t ia = lm_ops_bcast_src(y->rank, y->dims, a->rank,
						      a->dims, i);
			if (lm_ops_is_float(a->dtype))
				lm_ops_put_f(py, y->dtype, i,
					     lm_ops_get_f(pa, a->dtype, ia));
			else
				lm_ops_put_i(py, y->dtype, i,
					     lm_ops_get_i(pa, a->dtype, ia));
		}
		for (int k = 1; k < n->n_inputs; k++) {
			lm_value *b = lm_node_in(g, n, k);
			const void *pb = lm_ops_fold_in(g, n, k, e);
			if (!pb)
				return -EINVAL;
			for (int64_t i = 0; i < cnt; i++) {
				int64_t ib = lm_ops_bcast_src(y->rank, y->dims,
							      b->rank, b->dims,
							      i);
				if ((rc = apply(g, n, op, y->dtype, py, i, pb,
						ib, py, y->dtype, i, e)))
					return rc;
			}
		}
		return 0;
	}

	lm_value *b = lm_node_in(g, n, 1);
	const void *pb = lm_ops_fold_in(g, n, 1, e);
	if (!pb)
		return -EINVAL;
	void *py = lm_ops_fold_out(g, n, 0, e);
	if (!py)
		return -ENOMEM;
	for (int64_t i = 0; i < cnt; i++) {
		int64_t ia = lm_ops_bcast_src(y->rank, y->dims, a->rank,
					      a->dims, i);
		int64_t ib = lm_ops_bcast_src(y->rank, y->dims, b->rank,
					      b->dims, i);
		if ((rc = apply(g, n, op, a->dtype, pa, ia, pb, ib, py,
				y->dtype, i, e)))
			return rc;
	}
	return 0;
}

static int add_fold(lm_graph *g, lm_node *n, lm_error *e)
{
	return fold_bop(g, n, B_ADD, e);
}

static int sub_fold(lm_graph *g, lm_node *n, lm_error *e)
{
	return fold_bop(g, n, B_SUB, e);
}

static int mul_fold(lm_graph *g, lm_node *n, lm_error *e)
{
	return fold_bop(g, n, B_MUL, e);
}

static int div_fold(lm_graph *g, lm_node *n, lm_error *e)
{
	return fold_bop(g, n, B_DIV, e);
}

static int equal_fold(lm_graph *g, lm_node *n, lm_error *e)
{
	return fold_bop(g, n, B_EQ, e);
}

static int less_fold(lm_graph *g, lm_node *n, lm_error *e)
{
	return fold_bop(g, n, B_LT, e);
}

static int greater_fold(lm_graph *g, lm_node *n, lm_error *e)
{
	return fold_bop(g, n, B_GT, e);
}

static int and_fold(lm_graph *g, lm_node *n, lm_error *e)
{
	return fold_bop(g, n, B_AND, e);
}

static int or_fold(lm_graph *g, lm_node *n, lm_error *e)
{
	return fold_bop(g, n, B_OR, e);
}

static int max_fold(lm_graph *g, lm_node *n, lm_error *e)
{
	return fold_bop(g, n, B_MAX, e);
}

static int min_fold(lm_graph *g, lm_node *n, lm_error *e)
{
	return fold_bop(g, n, B_MIN, e);
}

/* Cast, Neg and Not: one element in, one element out. */
static int fold_unary(lm_graph *g, lm_node *n, int neg, lm_error *e)
{
	lm_value *x = lm_node_in(g, n, 0), *y = lm_node_out(g, n, 0);

	if (!x || !y || !foldable_type(x->dtype) || !foldable_type(y->dtype))
		return -EOPNOTSUPP;
	int64_t cnt = lm_ops_numel(y->rank, y->dims);
	const void *px = lm_ops_fold_in(g, n, 0, e);
	if (cnt < 0 || !px)
		return -EINVAL;
	void *py = lm_ops_fold_out(g, n, 0, e);
	if (!py)
		return -ENOMEM;
	for (int64_t i = 0; i < cnt; i++) {
		if (x->dtype == LM_DT_BOOL && neg) {
			int64_t v = lm_ops_get_i(px, x->dtype, i);
			lm_ops_put_i(py, y->dtype, i, !v);
		} else if (lm_ops_is_float(x->dtype)) {
			double v = lm_ops_get_f(px, x->dtype, i);
			lm_ops_put_f(py, y->dtype, i, neg ? -v : v);
		} else {
			int64_t v = lm_ops_get_i(px, x->dtype, i);
			lm_ops_put_i(py, y->dtype, i,
				     neg ? (int64_t)(0 - (uint64_t)v) : v);
		}
	}
	return 0;
}

static int cast_fold(lm_graph *g, lm_node *n, lm_error *e)
{
	return fold_unary(g, n, 0, e);
}

/* Neg of numbers and Not of bools are the same negation. */
static int neg_fold(lm_graph *g, lm_node *n, lm_error *e)
{
	return fold_unary(g, n, 1, e);
}

static int where_fold(lm_graph *g, lm_node *n, lm_error *e)
{
	lm_value *c = lm_node_in(g, n, 0), *y = lm_node_out(g, n, 0);
	lm_value *v[2] = { lm_node_in(g, n, 1), lm_node_in(g, n, 2) };
	const void *pc = lm_ops_fold_in(g, n, 0, e);
	const void *pv[2] = { lm_ops_fold_in(g, n, 1, e),
			      lm_ops_fold_in(g, n, 2, e) };
	size_t es = y ? lm_dtype_size(y->dtype) : 0;

	if (!pc || !pv[0] || !pv[1] || !y || !es)
		return -EINVAL;
	int64_t cnt = lm_ops_numel(y->rank, y->dims);
	char *py = lm_ops_fold_out(g, n, 0, e);
	if (cnt < 0 || !py)
		return -ENOMEM;
	for (int64_t i = 0; i < cnt; i++) {
		int64_t ic = lm_ops_bcast_src(y->rank, y->dims, c->rank,
					      c->dims, i);
		int k = lm_ops_get_i(pc, c->dtype, ic) ? 0 : 1;
		int64_t is = lm_ops_bcast_src(y->rank, y->dims, v[k]->rank,
					      v[k]->dims, i);
		memcpy(py + (size_t)i * es,
		       (const char *)pv[k] + (size_t)is * es, es);
	}
	return 0;
}

/* ---- FLOPs ---- */

static double flops_1(lm_graph *g, const lm_node *n)
{
	return lm_ops_out_elems(g, n, 0);
}

static double flops_3(lm_graph *g, const lm_node *n)
{
	return 3 * lm_ops_out_elems(g, n, 0);
}

static double flops_4(lm_graph *g, const lm_node *n)
{
	return 4 * lm_ops_out_elems(g, n, 0);
}

static double flops_6(lm_graph *g, const lm_node *n)
{
	return 6 * lm_ops_out_elems(g, n, 0);
}

static double flops_8(lm_graph *g, const lm_node *n)
{
	return 8 * lm_ops_out_elems(g, n, 0);
}

static double flops_minmax(lm_graph *g, const lm_node *n)
{
	return (n->n_inputs - 1) * lm_ops_out_elems(g, n, 0);
}

#define EW LM_OP_ELEMENTWISE

static const lm_op ops[] = {
	{ "Relu", EW, unary_infer, NULL, flops_1 },
	{ "LeakyRelu", EW, unary_infer, NULL, flops_1 },
	{ "Clip", EW, clip_infer, NULL, flops_1 },
	{ "Sigmoid", EW, unary_infer, NULL, flops_6 },
	{ "HardSigmoid", EW, unary_infer, NULL, flops_3 },
	{ "HardSwish", EW, unary_infer, NULL, flops_4 },
	{ "Tanh", EW, unary_infer, NULL, flops_4 },
	{ "Erf", EW, unary_infer, NULL, flops_4 },
	{ "Gelu", EW, unary_infer, NULL, flops_8 },
	{ "Exp", EW, unary_infer, NULL, flops_4 },
	{ "Sqrt", EW, unary_infer, NULL, flops_1 },
	{ "Neg", EW, unary_infer, neg_fold, flops_1 },
	{ "Abs", EW, unary_infer, NULL, flops_1 },
	{ "Reciprocal", EW, unary_infer, NULL, flops_1 },
	{ "Identity", LM_OP_RESHAPE, unary_infer, lm_ops_fold_copy, NULL },
	{ "Dropout", EW, dropout_infer, NULL, NULL },
	{ "Cast", EW, cast_infer, cast_fold, flops_1 },
	{ "Add", EW, arith_infer, add_fold, flops_1 },
	{ "Sub", EW, arith_infer, sub_fold, flops_1 },
	{ "Mul", EW, arith_infer, mul_fold, flops_1 },
	{ "Div", EW, arith_infer, div_fold, flops_1 },
	{ "Pow", EW, pow_infer, NULL, flops_4 },
	{ "Equal", EW, compare_infer, equal_fold, flops_1 },
	{ "Less", EW, compare_infer, less_fold, flops_1 },
	{ "Greater", EW, compare_infer, greater_fold, flops_1 },
	{ "Where", EW, where_infer, where_fold, flops_1 },
	{ "Not", EW, not_infer, neg_fold, flops_1 },
	{ "And", EW, compare_infer, and_fold, flops_1 },
	{ "Or", EW, compare_infer, or_fold, flops_1 },
	{ "Max", EW, minmax_infer, max_fold, flops_minmax },
	{ "Min", EW, minmax_infer, min_fold, flops_minmax },
};

const struct lm_ops_family lm_ops_elementwise = { ops, ARRAY_SIZE(ops) };
