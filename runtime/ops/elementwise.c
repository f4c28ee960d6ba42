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
 * none, being no-ops at inference.  lm.Act is private: an activation the
 * fusion pass made from a pattern (fuse.c), counted as 6.
 */
#include "ops.h"
#include "kernel.h"
#include "../kernels/act.h"

#include <math.h>
#include <stdlib.h>
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

/* ---- execution ---- */

/*
 * Kernels run at session time on the shapes fixed at prepare; prepare
 * works out everything shape-related (element counts, broadcast plans,
 * constant operands) into the node's state, so a run is only the loops.
 * Float kernels are vectorised (kernels/act.h explains how); the integer
 * and bool ones exist for shape arithmetic that was not folded and stay
 * simple.
 */

static int unsupported(lm_graph *g, const lm_node *n, const lm_value *v,
		       const char *supported, lm_error *e)
{
	return lm_ops_fail(e, g, n, -ENOTSUP, "input '%s' has element type %s, "
			   "which is not supported (only %s)", v->name,
			   lm_dtype_name(v->dtype), supported);
}

/* Element count of output 0, known and in range since infer ran. */
static size_t out_elems(lm_graph *g, const lm_node *n)
{
	lm_value *y = lm_node_out(g, n, 0);
	int64_t c = y ? lm_ops_numel(y->rank, y->dims) : -1;
	return c > 0 ? (size_t)c : 0;
}

/* Input 0 and output 0 have the same size: may the output take its
 * memory? */
static int same_layout(lm_graph *g, const lm_node *n)
{
	lm_value *x = lm_node_in(g, n, 0), *y = lm_node_out(g, n, 0);

	return x && y && x->dtype == y->dtype && x->rank == y->rank &&
	       !memcmp(x->dims, y->dims, (size_t)x->rank * sizeof(int64_t));
}

/* Output 0 = input 0 byte for byte, for when the executor cannot alias. */
static int copy_run(const lm_kargs *a)
{
	const lm_tensor *x = a->in[0];
	lm_tensor *y = a->out[0];

	if (y->data != x->data)
		memcpy(y->data, x->data, y->nbytes);
	return 0;
}

/* -- unary -- */

LM_F32_UNARY(f_exp, LM_VFOR, vm_exp(v))
LM_F32_UNARY(f_erf, LM_VFOR, vm_erf(v))
LM_F32_UNARY(f_gelu, LM_VFOR, vm_gelu(v))
LM_F32_UNARY(f_gelu_tanh, LM_VFOR, vm_gelu_tanh(v))
LM_F32_UNARY(f_neg, LM_VFOR, -v)
LM_F32_UNARY(f_abs, LM_VFOR, vm_float(vm_bits(v) & 0x7fffffffu))
LM_F32_UNARY(f_recip, LM_VFOR, 1.0f / v)
LM_F32_UNARY(f_square, LM_VFOR, v * v)
LM_F32_UNARY(f_cube, LM_VFOR, v * v * v)
LM_F32_UNARY(f_sqrt, LM_SFOR, sqrtf(v))
LM_F32_UNARY(f_rsqrt, LM_SFOR, 1.0f / sqrtf(v))
LM_F32_UNARY(f_pow, LM_SFOR, powf(v, p))

#define INT_UNARY(name, T, UT, expr)                                    \
	static void name(void *py, const void *px, size_t n)            \
	{                                                               \
		T *y = py;                                              \
		const T *x = px;                                        \
		for (size_t i = 0; i < n; i++) {                        \
			T v = x[i];                                     \
			y[i] = (expr);                                  \
		}                                                       \
	}

/* Negation in unsigned arithmetic: wraps like the hardware, where the
 * signed expression would be undefined for the most negative value. */
INT_UNARY(i32_neg, int32_t, uint32_t, (int32_t)(0u - (uint32_t)v))
INT_UNARY(i64_neg, int64_t, uint64_t, (int64_t)(0u - (uint64_t)v))
INT_UNARY(i32_abs, int32_t, uint32_t,
	  v < 0 ? (int32_t)(0u - (uint32_t)v) : v)
INT_UNARY(i64_abs, int64_t, uint64_t,
	  v < 0 ? (int64_t)(0u - (uint64_t)v) : v)
INT_UNARY(b_not, uint8_t, uint8_t, v == 0)

struct unary {
	size_t n;
	/* one of: a float function, an activation, a typed loop */
	void (*fip)(float *y, size_t n, float p);
	void (*fop)(float *restrict y, const float *restrict x, size_t n,
		    float p);
	float p;
	int act_op;
	enum lm_act act;
	float alpha, beta;
	int lo_in, hi_in;       /* Clip: input holding min/max, or 0 */
	void (*gen)(void *y, const void *x, size_t n);
};

static int unary_run(const lm_kargs *a)
{
	const struct unary *u = a->state;
	const void *x = a->in[0]->data;
	void *y = a->out[0]->data;

	if (u->fip) {
		if (x == y)
			u->fip(y, u->n, u->p);
		else
			u->fop(y, x, u->n, u->p);
	} else if (u->act_op) {
		float lo = u->alpha, hi = u->beta;
		/* Clip limits fed at run time (checked scalar at prepare). */
		if (u->lo_in && a->in[u->lo_in])
			lo = *(const float *)a->in[u->lo_in]->data;
		if (u->hi_in && a->in[u->hi_in])
			hi = *(const float *)a->in[u->hi_in]->data;
		lm_act_map(u->act, lo, hi, x, y, u->n);
	} else {
		u->gen(y, x, u->n);
	}
	return 0;
}

/* Common part of every unary prepare: input 0, the state, run. */
static int unary_setup(lm_graph *g, lm_node *n, lm_kernel *k, lm_value **x,
		       struct unary **u, lm_error *e)
{
	*u = NULL;
	int rc = lm_ops_in(g, n, 0, x, e);

	if (rc)
		return rc;
	if (!lm_node_out(g, n, 0))
		return lm_ops_fail(e, g, n, -EINVAL, "output 0 is missing");
	*u = lm_kernel_new_state(g, n, k, sizeof(**u), e);
	if (!*u)
		return -ENOMEM;
	(*u)->n = out_elems(g, n);
	k->run = unary_run;
	k->inplace = same_layout(g, n);
	return 0;
}

/* Activations: float only, parameters from the attributes. */
static int act_prepare(lm_graph *g, lm_node *n, lm_kernel *k,
		       enum lm_act act, float alpha, float beta, lm_error *e)
{
	lm_value *x;
	struct unary *u;
	int rc = unary_setup(g, n, k, &x, &u, e);

	if (rc)
		return rc;
	if (x->dtype != LM_DT_FLOAT)
		return unsupported(g, n, x, "float32", e);
	u->act_op = 1;
	u->act = act;
	u->alpha = alpha;
	u->beta = beta;
	k->impl = "act";
	return 0;
}

static int relu_prepare(lm_graph *g, lm_node *n, lm_kernel *k, lm_error *e)
{
	return act_prepare(g, n, k, LM_ACT_RELU, 0, 0, e);
}

static int leaky_prepare(lm_graph *g, lm_node *n, lm_kernel *k,
			 lm_error *e)
{
	return act_prepare(g, n, k, LM_ACT_LEAKY_RELU,
			   lm_attr_float(n, "alpha", 0.01f), 0, e);
}

static int sigmoid_prepare(lm_graph *g, lm_node *n, lm_kernel *k,
			   lm_error *e)
{
	return act_prepare(g, n, k, LM_ACT_SIGMOID, 0, 0, e);
}

static int hard_sigmoid_prepare(lm_graph *g, lm_node *n, lm_kernel *k,
				lm_error *e)
{
	return act_prepare(g, n, k, LM_ACT_HARD_SIGMOID,
			   lm_attr_float(n, "alpha", 0.2f),
			   lm_attr_float(n, "beta", 0.5f), e);
}

static int hard_swish_prepare(lm_graph *g, lm_node *n, lm_kernel *k,
			      lm_error *e)
{
	return act_prepare(g, n, k, LM_ACT_HARD_SWISH, 1.0f / 6.0f, 0.5f, e);
}

/* lm.Act: an activation the fusion pass made from a pattern (x *
 * Sigmoid(x), x * HardSigmoid(x)) that no product could take into its
 * epilogue; attributes as an epilogue's ("lm.act", "lm.alpha",
 * "lm.beta"), an unknown activation being refused. */
static int lm_act_prepare(lm_graph *g, lm_node *n, lm_kernel *k,
			  lm_error *e)
{
	lm_epilogue ep;

	lm_epilogue_get(n, &ep);
	if (ep.act == LM_ACT_NONE ||
	    lm_attr_int(n, "lm.act", 0) != (int64_t)ep.act)
		return lm_ops_fail(e, g, n, -ENOTSUP, "no known activation in "
				   "lm.act");
	return act_prepare(g, n, k, ep.act, ep.alpha, ep.beta, e);
}

static int tanh_prepare(lm_graph *g, lm_node *n, lm_kernel *k, lm_error *e)
{
	return act_prepare(g, n, k, LM_ACT_TANH, 0, 0, e);
}

/* Clip: min and max are attributes before opset 11 and optional scalar
 * inputs from then on, read here when constant and at run otherwise. */
static int clip_prepare(lm_graph *g, lm_node *n, lm_kernel *k, lm_error *e)
{
	float lim[2] = { -INFINITY, INFINITY };
	int rc;

	if (lm_ops_opset(g) < 11) {
		lim[0] = lm_attr_float(n, "min", lim[0]);
		lim[1] = lm_attr_float(n, "max", lim[1]);
	}
	if ((rc = act_prepare(g, n, k, LM_ACT_CLIP, 0, 0, e)))
		return rc;
	struct unary *u = k->state;
	for (int i = 1; i < n->n_inputs && i < 3; i++) {
		lm_value *v = lm_node_in(g, n, i);
		if (!v)
			continue;
		if (v->dtype != LM_DT_FLOAT)
			return unsupported(g, n, v, "float32", e);
		if (lm_ops_numel(v->rank, v->dims) != 1)
			return lm_ops_fail(e, g, n, -EINVAL, "%s '%s' is not a "
					   "scalar", i == 1 ? "min" : "max",
					   v->name);
		if (!lm_value_is_const(v)) {
			*(i == 1 ? &u->lo_in : &u->hi_in) = i;
			continue;
		}
		const float *d = lm_ops_fold_in(g, n, i, e);
		if (!d)
			return -EINVAL;
		lim[i - 1] = d[0];
	}
	u->alpha = lim[0];
	u->beta = lim[1];
	return 0;
}

/* Float functions of one element; Neg and Abs also for integers. */
static int float_prepare(lm_graph *g, lm_node *n, lm_kernel *k,
			 void (*fip)(float *, size_t, float),
			 void (*fop)(float *restrict, const float *restrict,
				     size_t, float),
			 void (*i32)(void *, const void *, size_t),
			 void (*i64)(void *, const void *, size_t),
			 lm_error *e)
{
	lm_value *x;
	struct unary *u;
	int rc = unary_setup(g, n, k, &x, &u, e);

	if (rc)
		return rc;
	k->impl = "unary";
	switch (x->dtype) {
	case LM_DT_FLOAT:
		u->fip = fip;
		u->fop = fop;
		return 0;
	case LM_DT_INT32:
		u->gen = i32;
		break;
	case LM_DT_INT64:
		u->gen = i64;
		break;
	default:
		break;
	}
	if (!u->gen)
		return unsupported(g, n, x, i32 ? "float32, int32, int64"
					       : "float32", e);
	return 0;
}

#define FLOAT_PREPARE(fn, kern, i32, i64)                               \
	static int fn(lm_graph *g, lm_node *n, lm_kernel *k, lm_error *e) \
	{                                                               \
		return float_prepare(g, n, k, kern##_ip, kern##_op, i32, i64, \
				     e);                                \
	}

FLOAT_PREPARE(exp_prepare, f_exp, NULL, NULL)
FLOAT_PREPARE(erf_prepare, f_erf, NULL, NULL)
FLOAT_PREPARE(sqrt_prepare, f_sqrt, NULL, NULL)
FLOAT_PREPARE(reciprocal_prepare, f_recip, NULL, NULL)
FLOAT_PREPARE(neg_prepare, f_neg, i32_neg, i64_neg)
FLOAT_PREPARE(abs_prepare, f_abs, i32_abs, i64_abs)

/* Gelu-20: approximate "none" (erf) or "tanh". */
static int gelu_prepare(lm_graph *g, lm_node *n, lm_kernel *k, lm_error *e)
{
	const char *ap = lm_attr_str(n, "approximate", "none");

	if (!strcmp(ap, "none"))
		return float_prepare(g, n, k, f_gelu_ip, f_gelu_op, NULL,
				     NULL, e);
	if (!strcmp(ap, "tanh"))
		return float_prepare(g, n, k, f_gelu_tanh_ip, f_gelu_tanh_op,
				     NULL, NULL, e);
	return lm_ops_fail(e, g, n, -ENOTSUP, "approximate '%s' is not "
			   "supported (only none, tanh)", ap);
}

static int not_prepare(lm_graph *g, lm_node *n, lm_kernel *k, lm_error *e)
{
	lm_value *x;
	struct unary *u;
	int rc = unary_setup(g, n, k, &x, &u, e);

	if (rc)
		return rc;
	if (x->dtype != LM_DT_BOOL)
		return unsupported(g, n, x, "bool", e);
	u->gen = b_not;
	k->impl = "unary";
	return 0;
}

/* Identity and Dropout move no data: the executor aliases the output. */
static int identity_prepare(lm_graph *g, lm_node *n, lm_kernel *k,
			    lm_error *e)
{
	lm_value *x;
	int rc = lm_ops_in(g, n, 0, &x, e);

	if (rc)
		return rc;
	if (lm_dtype_size(x->dtype) == 0)
		return unsupported(g, n, x, "fixed-size types", e);
	k->run = copy_run;
	k->alias = 1;
	k->impl = "alias";
	return 0;
}

/* Dropout at inference is the identity.  The mask, when asked for, is
 * all true (nothing dropped); training mode is refused. */
static int dropout_run(const lm_kargs *a)
{
	copy_run(a);
	if (a->n_out > 1 && a->out[1])
		memset(a->out[1]->data, 1, a->out[1]->nbytes);
	return 0;
}

static int dropout_prepare(lm_graph *g, lm_node *n, lm_kernel *k,
			   lm_error *e)
{
	lm_value *t = lm_node_in(g, n, 2), *mask = lm_node_out(g, n, 1);
	int rc;

	if (t) {
		if (!lm_value_is_const(t) || t->dtype != LM_DT_BOOL ||
		    lm_ops_numel(t->rank, t->dims) != 1)
			return lm_ops_fail(e, g, n, -ENOTSUP, "training_mode "
					   "'%s' must be a constant bool "
					   "scalar", t->name);
		const uint8_t *d = lm_ops_fold_in(g, n, 2, e);
		if (!d)
			return -EINVAL;
		if (d[0])
			return lm_ops_fail(e, g, n, -ENOTSUP, "training mode "
					   "is not supported");
	}
	if (lm_attr_int(n, "is_test", 1) == 0 && lm_ops_opset(g) < 7)
		return lm_ops_fail(e, g, n, -ENOTSUP, "training mode "
				   "(is_test 0) is not supported");
	if ((rc = identity_prepare(g, n, k, e)))
		return rc;
	if (mask) {
		if (mask->dtype != LM_DT_BOOL)
			return lm_ops_fail(e, g, n, -ENOTSUP, "mask output "
					   "'%s' of type %s is not supported",
					   mask->name,
					   lm_dtype_name(mask->dtype));
		/* run must fill the mask, so no aliasing; in place will do. */
		k->run = dropout_run;
		k->alias = 0;
		k->inplace = 1;
		k->impl = "copy+mask";
	}
	return 0;
}

/* -- Cast -- */

/* Float to integer: truncate toward zero; NaN gives 0 and values out of
 * range saturate (ONNX leaves both undefined; C would be undefined). */
static inline int64_t f2i64(float v)
{
	return v != v ? 0 : v >= 9223372036854775807.0f ? INT64_MAX
		: v <= -9223372036854775808.0f ? INT64_MIN : (int64_t)v;
}

static inline int32_t f2i32(float v)
{
	return v != v ? 0 : v >= 2147483647.0f ? INT32_MAX
		: v <= -2147483648.0f ? INT32_MIN : (int32_t)v;
}

#define CAST(name, S, D, expr)                                          \
	static void name(void *py, const void *px, size_t n)            \
	{                                                               \
		D *restrict y = py;                                     \
		const S *restrict x = px;                               \
		for (size_t i = 0; i < n; i++) {                        \
			S v = x[i];                                     \
			y[i] = (expr);                                  \
		}                                                       \
	}

CAST(cast_f32_i64, float, int64_t, f2i64(v))
CAST(cast_f32_i32, float, int32_t, f2i32(v))
CAST(cast_i64_f32, int64_t, float, (float)v)
CAST(cast_i32_f32, int32_t, float, (float)v)
CAST(cast_i64_i32, int64_t, int32_t, (int32_t)v)
CAST(cast_i32_i64, int32_t, int64_t, v)
CAST(cast_b_f32, uint8_t, float, v != 0)
CAST(cast_f32_b, float, uint8_t, v != 0)
CAST(cast_b_i64, uint8_t, int64_t, v != 0)
CAST(cast_i64_b, int64_t, uint8_t, v != 0)
CAST(cast_u8_f32, uint8_t, float, v)
CAST(cast_f32_f64, float, double, v)
CAST(cast_f64_f32, double, float, (float)v)

static const struct {
	lm_dtype from, to;
	void (*fn)(void *y, const void *x, size_t n);
} casts[] = {
	{ LM_DT_FLOAT, LM_DT_INT64, cast_f32_i64 },
	{ LM_DT_FLOAT, LM_DT_INT32, cast_f32_i32 },
	{ LM_DT_INT64, LM_DT_FLOAT, cast_i64_f32 },
	{ LM_DT_INT32, LM_DT_FLOAT, cast_i32_f32 },
	{ LM_DT_INT64, LM_DT_INT32, cast_i64_i32 },
	{ LM_DT_INT32, LM_DT_INT64, cast_i32_i64 },
	{ LM_DT_BOOL, LM_DT_FLOAT, cast_b_f32 },
	{ LM_DT_FLOAT, LM_DT_BOOL, cast_f32_b },
	{ LM_DT_BOOL, LM_DT_INT64, cast_b_i64 },
	{ LM_DT_INT64, LM_DT_BOOL, cast_i64_b },
	{ LM_DT_UINT8, LM_DT_FLOAT, cast_u8_f32 },
	{ LM_DT_FLOAT, LM_DT_DOUBLE, cast_f32_f64 },
	{ LM_DT_DOUBLE, LM_DT_FLOAT, cast_f64_f32 },
};

struct cast {
	lm_dtype from, to;
	size_t n;
	void (*fn)(void *y, const void *x, size_t n);
};

static int cast_run(const lm_kargs *a)
{
	const struct cast *c = a->state;
	const void *x = a->in[0]->data;
	void *y = a->out[0]->data;

	if (c->fn) {
		c->fn(y, x, c->n);
		return 0;
	}
	/* The other pairs element by element, through double or int64 with
	 * the folding code's conversions. */
	for (size_t i = 0; i < c->n; i++) {
		if (lm_ops_is_float(c->from) || lm_ops_is_float(c->to) ||
		    c->from == LM_DT_UINT64)
			lm_ops_put_f(y, c->to, (int64_t)i,
				     lm_ops_get_f(x, c->from, (int64_t)i));
		else
			lm_ops_put_i(y, c->to, (int64_t)i,
				     lm_ops_get_i(x, c->from, (int64_t)i));
	}
	return 0;
}

static int cast_prepare(lm_graph *g, lm_node *n, lm_kernel *k, lm_error *e)
{
	lm_value *x, *y = lm_node_out(g, n, 0);
	int rc = lm_ops_in(g, n, 0, &x, e);

	if (rc)
		return rc;
	if (!lm_ops_numeric(x->dtype))
		return unsupported(g, n, x, "numeric types and bool", e);
	if (!y || !lm_ops_numeric(y->dtype))
		return lm_ops_fail(e, g, n, -ENOTSUP, "cast to %s is not "
				   "supported", y ? lm_dtype_name(y->dtype)
						  : "nothing");
	if (x->dtype == y->dtype)
		return identity_prepare(g, n, k, e);
	struct cast *c = lm_kernel_new_state(g, n, k, sizeof(*c), e);
	if (!c)
		return -ENOMEM;
	c->from = x->dtype;
	c->to = y->dtype;
	c->n = out_elems(g, n);
	for (int i = 0; i < ARRAY_SIZE(casts); i++)
		if (casts[i].from == c->from && casts[i].to == c->to)
			c->fn = casts[i].fn;
	k->run = cast_run;
	k->impl = c->fn ? "cast" : "cast-generic";
	return 0;
}

/* -- broadcasting -- */

/*
 * Each operand gets a stride per output axis, 0 where it is broadcast.
 * Axes of size 1 drop out, and neighbouring axes on which every operand is
 * either contiguous or broadcast merge into one.  What remains is short:
 * same shapes and scalars become one axis, a per-channel operand (1,C,1,1)
 * against NCHW becomes (N, C, HW), a trailing vector (N,K) + (K) becomes
 * (N, K).  A run walks all but the last axis with an odometer and gives
 * the last to a row kernel, for which each operand is a vector (stride 1)
 * or a scalar (stride 0).
 */
#define BC_OPS 3

struct bcast {
	int rank;
	int64_t dims[LM_MAX_RANK];
	int64_t st[BC_OPS][LM_MAX_RANK];
	int64_t rows;   /* product of all dims but the last */
	int64_t len;    /* the last dim */
};

static void bcast_plan(struct bcast *p, const lm_value *y, int nops,
		       const lm_value *const *x)
{
	int64_t st[BC_OPS][LM_MAX_RANK];
	int r = 0;

	for (int k = 0; k < nops; k++) {
		int64_t s = 1;
		for (int d = y->rank - 1; d >= 0; d--) {
			int id = d - (y->rank - x[k]->rank);
			if (id < 0 || x[k]->dims[id] == 1) {
				st[k][d] = 0;
				continue;
			}
			st[k][d] = s;
			s *= x[k]->dims[id];
		}
	}
	memset(p, 0, sizeof(*p));
	for (int d = 0; d < y->rank; d++) {
		if (y->dims[d] == 1)
			continue;
		int merge = r > 0;
		for (int k = 0; k < nops && merge; k++)
			merge = p->st[k][r - 1] == st[k][d] * y->dims[d];
		if (merge)
			p->dims[r - 1] *= y->dims[d];
		else
			p->dims[r++] = y->dims[d];
		for (int k = 0; k < nops; k++)
			p->st[k][r - 1] = st[k][d];
	}
	if (r == 0) {
		/* One element: every operand is a one-element vector. */
		p->dims[r++] = 1;
		for (int k = 0; k < nops; k++)
			p->st[k][0] = 1;
	}
	p->rank = r;
	p->len = p->dims[r - 1];
	p->rows = 1;
	for (int d = 0; d < r - 1; d++)
		p->rows *= p->dims[d];
}

/* Advance the odometer over all axes but the last by one row. */
static void bcast_next(const struct bcast *p, int nops, int64_t *idx,
		       int64_t *off)
{
	for (int d = p->rank - 2; d >= 0; d--) {
		for (int k = 0; k < nops; k++)
			off[k] += p->st[k][d];
		if (++idx[d] < p->dims[d])
			return;
		for (int k = 0; k < nops; k++)
			off[k] -= p->st[k][d] * p->dims[d];
		idx[d] = 0;
	}
}

/* What a plan amounts to, for profiles. */
static const char *bcast_kind(const struct bcast *p, int nops)
{
	int scalar = 0;

	for (int k = 0; k < nops; k++)
		scalar |= p->st[k][p->rank - 1] == 0;
	if (p->rank == 1)
		return scalar ? "binary-scalar" : "binary-same";
	return scalar ? "binary-channel" : "binary-broadcast";
}

/* -- binary -- */

struct f32_binary {
	void (*vv)(float *restrict y, const float *restrict a,
		   const float *restrict b, size_t n);
	void (*vs)(float *restrict y, const float *restrict a, float b,
		   size_t n);
	void (*sv)(float *restrict y, float a, const float *restrict b,
		   size_t n);
	void (*vv_ip)(float *y, const float *restrict b, size_t n);
	void (*vs_ip)(float *y, float b, size_t n);
};

#define F32_BINARY(name, loop, expr)                                          \
	static LM_CLONES void name##_vv(float *restrict y,              \
					const float *restrict pa,       \
					const float *restrict pb, size_t n) \
	{                                                               \
		loop(i, n, float a = pa[i]; float b = pb[i];         \
			y[i] = (expr));                                 \
	}                                                               \
	static LM_CLONES void name##_vs(float *restrict y,              \
					const float *restrict pa, float b, \
					size_t n)                       \
	{                                                               \
		loop(i, n, float a = pa[i]; y[i] = (expr));          \
	}                                                               \
	static LM_CLONES void name##_sv(float *restrict y, float a,     \
					const float *restrict pb, size_t n) \
	{                                                               \
		loop(i, n, float b = pb[i]; y[i] = (expr));          \
	}                                                               \
	static LM_CLONES void name##_vv_ip(float *y,                    \
					   const float *restrict pb,    \
					   size_t n)                    \
	{                                                               \
		loop(i, n, float a = y[i]; float b = pb[i];          \
			y[i] = (expr));                                 \
	}                                                               \
	static LM_CLONES void name##_vs_ip(float *y, float b, size_t n) \
	{                                                               \
		loop(i, n, float a = y[i]; y[i] = (expr));           \
	}                                                               \
	static const struct f32_binary name = {                         \
		name##_vv, name##_vs, name##_sv, name##_vv_ip,          \
		name##_vs_ip,                                           \
	};

F32_BINARY(f_add, LM_VFOR, a + b)
F32_BINARY(f_sub, LM_VFOR, a - b)
F32_BINARY(f_mul, LM_VFOR, a * b)
F32_BINARY(f_div, LM_VFOR, a / b)
/* NaN in either operand gives NaN, as NumPy's maximum and minimum. */
F32_BINARY(f_max, LM_VFOR, a > b || a != a ? a : b)
F32_BINARY(f_min, LM_VFOR, a < b || a != a ? a : b)
F32_BINARY(f_powb, LM_SFOR, powf(a, b))

struct f32_compare {
	void (*vv)(uint8_t *restrict y, const float *restrict a,
		   const float *restrict b, size_t n);
	void (*vs)(uint8_t *restrict y, const float *restrict a, float b,
		   size_t n);
	void (*sv)(uint8_t *restrict y, float a, const float *restrict b,
		   size_t n);
};

#define F32_COMPARE(name, expr)                                         \
	static LM_CLONES void name##_vv(uint8_t *restrict y,            \
					const float *restrict pa,       \
					const float *restrict pb, size_t n) \
	{                                                               \
		LM_VFOR(i, n, float a = pa[i]; float b = pb[i];         \
			y[i] = (expr));                                 \
	}                                                               \
	static LM_CLONES void name##_vs(uint8_t *restrict y,            \
					const float *restrict pa, float b, \
					size_t n)                       \
	{                                                               \
		LM_VFOR(i, n, float a = pa[i]; y[i] = (expr));          \
	}                                                               \
	static LM_CLONES void name##_sv(uint8_t *restrict y, float a,   \
					const float *restrict pb, size_t n) \
	{                                                               \
		LM_VFOR(i, n, float b = pb[i]; y[i] = (expr));          \
	}                                                               \
	static const struct f32_compare name = {                        \
		name##_vv, name##_vs, name##_sv,                        \
	};

F32_COMPARE(f_eq, a == b)
F32_COMPARE(f_lt, a < b)
F32_COMPARE(f_gt, a > b)

/*
 * Integer and bool rows: operands with stride 0 or 1, any overlap of y
 * with a allowed (same index).  Add, Sub and Mul wrap as the hardware
 * does; division truncates, and a zero divisor gives 0 rather than a
 * trap (ONNX leaves it undefined, and a run must not fail).
 */
typedef void (*gen_row)(void *y, const void *a, size_t sa, const void *b,
			size_t sb, size_t n);

#define GEN_BINARY(name, T, TY, expr)                                   \
	static void name(void *py, const void *pa_, size_t sa,          \
			 const void *pb_, size_t sb, size_t n)          \
	{                                                               \
		TY *y = py;                                             \
		const T *pa = pa_, *pb = pb_;                           \
		for (size_t i = 0; i < n; i++) {                        \
			T a = pa[i * sa], b = pb[i * sb];               \
			y[i] = (expr);                                  \
		}                                                       \
	}

#define INT_BINARIES(p, T, UT)                                    \
	GEN_BINARY(p##_add, T, T, (T)((UT)a + (UT)b))                   \
	GEN_BINARY(p##_sub, T, T, (T)((UT)a - (UT)b))                   \
	GEN_BINARY(p##_mul, T, T, (T)((UT)a * (UT)b))                   \
	GEN_BINARY(p##_div, T, T, b == 0 ? 0 : b == -1 ? (T)(0u - (UT)a) \
						       : a / b)         \
	GEN_BINARY(p##_max, T, T, a > b ? a : b)                        \
	GEN_BINARY(p##_min, T, T, a < b ? a : b)                        \
	GEN_BINARY(p##_eq, T, uint8_t, a == b)                          \
	GEN_BINARY(p##_lt, T, uint8_t, a < b)                           \
	GEN_BINARY(p##_gt, T, uint8_t, a > b)

INT_BINARIES(i32, int32_t, uint32_t)
INT_BINARIES(i64, int64_t, uint64_t)
GEN_BINARY(b_and, uint8_t, uint8_t, a != 0 && b != 0)
GEN_BINARY(b_or, uint8_t, uint8_t, a != 0 || b != 0)
GEN_BINARY(b_eq, uint8_t, uint8_t, (a != 0) == (b != 0))

enum xop { X_ADD, X_SUB, X_MUL, X_DIV, X_MAX, X_MIN, X_POW, X_EQ, X_LT,
	   X_GT, X_AND, X_OR, X_COUNT };

static const struct {
	const char *op;
	const struct f32_binary *f;
	const struct f32_compare *fc;
	gen_row i32, i64, b;
} xops[X_COUNT] = {
	[X_ADD] = { "Add", &f_add, NULL, i32_add, i64_add, NULL },
	[X_SUB] = { "Sub", &f_sub, NULL, i32_sub, i64_sub, NULL },
	[X_MUL] = { "Mul", &f_mul, NULL, i32_mul, i64_mul, NULL },
	[X_DIV] = { "Div", &f_div, NULL, i32_div, i64_div, NULL },
	[X_MAX] = { "Max", &f_max, NULL, i32_max, i64_max, NULL },
	[X_MIN] = { "Min", &f_min, NULL, i32_min, i64_min, NULL },
	[X_POW] = { "Pow", &f_powb, NULL, NULL, NULL, NULL },
	[X_EQ] = { "Equal", NULL, &f_eq, i32_eq, i64_eq, b_eq },
	[X_LT] = { "Less", NULL, &f_lt, i32_lt, i64_lt, NULL },
	[X_GT] = { "Greater", NULL, &f_gt, i32_gt, i64_gt, NULL },
	[X_AND] = { "And", NULL, NULL, NULL, NULL, b_and },
	[X_OR] = { "Or", NULL, NULL, NULL, NULL, b_or },
};

/*
 * A binary node, or a variadic Max/Min as a chain of them: step 0 is
 * y = in0 op in1 and step k is y = y op in(k+1), each over the output
 * shape with its own plan.
 */
struct binary {
	const struct f32_binary *f;
	const struct f32_compare *fc;
	gen_row gen;
	size_t esa, esb, esy;
	int steps;
	struct bcast plan[];
};

static void f32_row(const struct f32_binary *f, float *y, const float *a,
		    int64_t sa, const float *b, int64_t sb, size_t n)
{
	if (sa && sb) {
		if (y == a)
			f->vv_ip(y, b, n);
		else
			f->vv(y, a, b, n);
	} else if (sa) {
		if (y == a)
			f->vs_ip(y, *b, n);
		else
			f->vs(y, a, *b, n);
	} else {
		/* A scalar a against a broadcast b only happens for rows of
		 * one element (see bcast_plan), which sv handles too. */
		f->sv(y, *a, b, n);
	}
}

static void cmp_row(const struct f32_compare *f, uint8_t *y, const float *a,
		    int64_t sa, const float *b, int64_t sb, size_t n)
{
	if (sa && sb)
		f->vv(y, a, b, n);
	else if (sa)
		f->vs(y, a, *b, n);
	else
		f->sv(y, *a, b, n);
}

static void binary_step(const struct binary *s, const struct bcast *p,
			char *y, const char *a, const char *b)
{
	int64_t idx[LM_MAX_RANK] = { 0 }, off[2] = { 0, 0 };
	int64_t sa = p->st[0][p->rank - 1], sb = p->st[1][p->rank - 1];
	size_t len = (size_t)p->len;

	for (int64_t r = 0; r < p->rows; r++) {
		char *yr = y + (size_t)r * len * s->esy;
		const char *ar = a + (size_t)off[0] * s->esa;
		const char *br = b + (size_t)off[1] * s->esb;
		if (s->f)
			f32_row(s->f, (float *)yr, (const float *)ar, sa,
				(const float *)br, sb, len);
		else if (s->fc)
			cmp_row(s->fc, (uint8_t *)yr, (const float *)ar, sa,
				(const float *)br, sb, len);
		else
			s->gen(yr, ar, (size_t)sa, br, (size_t)sb, len);
		bcast_next(p, 2, idx, off);
	}
}

static int binary_run(const lm_kargs *a)
{
	const struct binary *s = a->state;
	char *y = a->out[0]->data;

	binary_step(s, &s->plan[0], y, a->in[0]->data,
		    a->in[a->n_in > 1 ? 1 : 0]->data);
	for (int k = 1; k < s->steps; k++)
		binary_step(s, &s->plan[k], y, y, a->in[k + 1]->data);
	return 0;
}

/* Supported types of an op, for its message. */
static const char *xop_types(enum xop op)
{
	int f = xops[op].f || xops[op].fc, i = xops[op].i32 != NULL;
	int b = xops[op].b != NULL;

	if (f && i && b)
		return "float32, int32, int64, bool";
	if (f && i)
		return "float32, int32, int64";
	if (f)
		return "float32";
	return "bool";
}

static int binary_prepare(lm_graph *g, lm_node *n, lm_kernel *k,
			  enum xop op, lm_error *e)
{
	lm_value *y = lm_node_out(g, n, 0), *x0, *v;
	int rc, steps = n->n_inputs > 2 ? n->n_inputs - 1 : 1;

	if ((rc = lm_ops_in(g, n, 0, &x0, e)))
		return rc;
	for (int i = 1; i < n->n_inputs; i++)
		if ((rc = lm_ops_in(g, n, i, &v, e)))
			return rc;
	if (!y)
		return lm_ops_fail(e, g, n, -EINVAL, "output 0 is missing");
	struct binary *s = lm_kernel_new_state(g, n, k, sizeof(*s) + (size_t)steps *
				     sizeof(struct bcast), e);
	if (!s)
		return -ENOMEM;
	switch (x0->dtype) {
	case LM_DT_FLOAT:
		s->f = xops[op].f;
		s->fc = xops[op].fc;
		break;
	case LM_DT_INT32:
		s->gen = xops[op].i32;
		break;
	case LM_DT_INT64:
		s->gen = xops[op].i64;
		break;
	case LM_DT_BOOL:
		s->gen = xops[op].b;
		break;
	default:
		break;
	}
	if (!s->f && !s->fc && !s->gen)
		return unsupported(g, n, x0, xop_types(op), e);
	s->esa = lm_dtype_size(x0->dtype);
	s->esb = s->esa;
	s->esy = lm_dtype_size(y->dtype);
	s->steps = steps;
	for (int i = 0; i < steps; i++) {
		/* Max or Min of a single input is max(x, x). */
		const lm_value *pair[2] = {
			i == 0 ? x0 : y,
			n->n_inputs > 1 ? lm_node_in(g, n, i + 1) : x0,
		};
		bcast_plan(&s->plan[i], y, 2, pair);
	}
	k->run = binary_run;
	k->inplace = same_layout(g, n);
	k->impl = bcast_kind(&s->plan[0], 2);
	return 0;
}

#define BINARY_PREPARE(fn, op)                                          \
	static int fn(lm_graph *g, lm_node *n, lm_kernel *k, lm_error *e) \
	{                                                               \
		return binary_prepare(g, n, k, op, e);                  \
	}

BINARY_PREPARE(add_prepare, X_ADD)
BINARY_PREPARE(sub_prepare, X_SUB)
BINARY_PREPARE(mul_prepare, X_MUL)
BINARY_PREPARE(div_prepare, X_DIV)
BINARY_PREPARE(max_prepare, X_MAX)
BINARY_PREPARE(min_prepare, X_MIN)
BINARY_PREPARE(equal_prepare, X_EQ)
BINARY_PREPARE(less_prepare, X_LT)
BINARY_PREPARE(greater_prepare, X_GT)
BINARY_PREPARE(and_prepare, X_AND)
BINARY_PREPARE(or_prepare, X_OR)

/*
 * Pow: float32 base.  A constant one-element exponent (x^2 in a
 * hand-written LayerNorm, x^0.5, ...) becomes a unary kernel, with the
 * common exponents as plain arithmetic; otherwise the exponent must be
 * float32 too and broadcasts like any binary op.
 */
static int pow_prepare(lm_graph *g, lm_node *n, lm_kernel *k, lm_error *e)
{
	lm_value *x, *p;
	int rc;

	if ((rc = lm_ops_in(g, n, 0, &x, e)) ||
	    (rc = lm_ops_in(g, n, 1, &p, e)))
		return rc;
	if (x->dtype != LM_DT_FLOAT)
		return unsupported(g, n, x, "float32", e);
	if (!lm_value_is_const(p) || lm_ops_numel(p->rank, p->dims) != 1 ||
	    !lm_ops_numeric(p->dtype)) {
		if (p->dtype != LM_DT_FLOAT)
			return lm_ops_fail(e, g, n, -ENOTSUP, "exponent '%s' "
					   "is %s; only float32 or a constant "
					   "scalar is supported", p->name,
					   lm_dtype_name(p->dtype));
		return binary_prepare(g, n, k, X_POW, e);
	}
	const void *d = lm_ops_fold_in(g, n, 1, e);
	if (!d)
		return -EINVAL;
	double v = lm_ops_get_f(d, p->dtype, 0);
	struct unary *u;
	if ((rc = unary_setup(g, n, k, &x, &u, e)))
		return rc;
	static const struct {
		double exp;
		void (*ip)(float *, size_t, float);
		void (*op)(float *restrict, const float *restrict, size_t,
			   float);
	} special[] = {
		{ 2, f_square_ip, f_square_op }, { 3, f_cube_ip, f_cube_op },
		{ 0.5, f_sqrt_ip, f_sqrt_op }, { -1, f_recip_ip, f_recip_op },
		{ -0.5, f_rsqrt_ip, f_rsqrt_op },
	};
	u->fip = f_pow_ip;
	u->fop = f_pow_op;
	u->p = (float)v;
	for (int i = 0; i < ARRAY_SIZE(special); i++) {
		if (special[i].exp == v) {
			u->fip = special[i].ip;
			u->fop = special[i].op;
		}
	}
	k->impl = "pow-scalar";
	return 0;
}

/* Where: cond (bool) ? x : y with all three broadcast; any fixed-size
 * element type. */
struct where {
	size_t es;
	struct bcast plan;
};

#define WHERE_ROW(T)                                                    \
	do {                                                            \
		T *yy = (T *)y;                                         \
		const T *xx = (const T *)x, *zz = (const T *)z;         \
		for (size_t i = 0; i < n; i++)                          \
			yy[i] = c[i * sc] ? xx[i * sx] : zz[i * sz];     \
	} while (0)

static void where_row(size_t es, char *y, const uint8_t *c, size_t sc,
		      const char *x, size_t sx, const char *z, size_t sz,
		      size_t n)
{
	switch (es) {
	case 1: WHERE_ROW(uint8_t); break;
	case 2: WHERE_ROW(uint16_t); break;
	case 4: WHERE_ROW(uint32_t); break;
	case 8: WHERE_ROW(uint64_t); break;
	default:
		for (size_t i = 0; i < n; i++)
			memcpy(y + i * es, c[i * sc] ? x + i * sx * es
						     : z + i * sz * es, es);
		break;
	}
}

static int where_run(const lm_kargs *a)
{
	const struct where *w = a->state;
	const struct bcast *p = &w->plan;
	const uint8_t *c = a->in[0]->data;
	const char *x = a->in[1]->data, *z = a->in[2]->data;
	char *y = a->out[0]->data;
	int64_t idx[LM_MAX_RANK] = { 0 }, off[3] = { 0, 0, 0 };
	size_t len = (size_t)p->len, es = w->es;

	for (int64_t r = 0; r < p->rows; r++) {
		where_row(es, y + (size_t)r * len * es, c + off[0],
			  (size_t)p->st[0][p->rank - 1],
			  x + (size_t)off[1] * es,
			  (size_t)p->st[1][p->rank - 1],
			  z + (size_t)off[2] * es,
			  (size_t)p->st[2][p->rank - 1], len);
		bcast_next(p, 3, idx, off);
	}
	return 0;
}

static int where_prepare(lm_graph *g, lm_node *n, lm_kernel *k,
			 lm_error *e)
{
	lm_value *v[3], *y = lm_node_out(g, n, 0);
	int rc;

	for (int i = 0; i < 3; i++)
		if ((rc = lm_ops_in(g, n, i, &v[i], e)))
			return rc;
	if (v[0]->dtype != LM_DT_BOOL)
		return unsupported(g, n, v[0], "bool", e);
	if (!y || lm_dtype_size(y->dtype) == 0)
		return unsupported(g, n, v[1], "fixed-size types", e);
	struct where *w = lm_kernel_new_state(g, n, k, sizeof(*w), e);
	if (!w)
		return -ENOMEM;
	w->es = lm_dtype_size(y->dtype);
	bcast_plan(&w->plan, y, 3, (const lm_value *const *)v);
	k->run = where_run;
	k->impl = "where";
	return 0;
}

#define EW LM_OP_ELEMENTWISE

static const lm_op ops[] = {
	{ "Relu", EW, unary_infer, NULL, flops_1, relu_prepare },
	{ "LeakyRelu", EW, unary_infer, NULL, flops_1, leaky_prepare },
	{ "Clip", EW, clip_infer, NULL, flops_1, clip_prepare },
	{ "Sigmoid", EW, unary_infer, NULL, flops_6, sigmoid_prepare },
	{ "HardSigmoid", EW, unary_infer, NULL, flops_3,
	  hard_sigmoid_prepare },
	{ "HardSwish", EW, unary_infer, NULL, flops_4, hard_swish_prepare },
	{ "Tanh", EW, unary_infer, NULL, flops_4, tanh_prepare },
	{ "Erf", EW, unary_infer, NULL, flops_4, erf_prepare },
	{ "Gelu", EW, unary_infer, NULL, flops_8, gelu_prepare },
	{ "lm.Act", EW, unary_infer, NULL, flops_6, lm_act_prepare },
	{ "Exp", EW, unary_infer, NULL, flops_4, exp_prepare },
	{ "Sqrt", EW, unary_infer, NULL, flops_1, sqrt_prepare },
	{ "Neg", EW, unary_infer, neg_fold, flops_1, neg_prepare },
	{ "Abs", EW, unary_infer, NULL, flops_1, abs_prepare },
	{ "Reciprocal", EW, unary_infer, NULL, flops_1, reciprocal_prepare },
	{ "Identity", LM_OP_RESHAPE, unary_infer, lm_ops_fold_copy, NULL,
	  identity_prepare },
	{ "Dropout", EW, dropout_infer, NULL, NULL, dropout_prepare },
	{ "Cast", EW, cast_infer, cast_fold, flops_1, cast_prepare },
	{ "Add", EW, arith_infer, add_fold, flops_1, add_prepare },
	{ "Sub", EW, arith_infer, sub_fold, flops_1, sub_prepare },
	{ "Mul", EW, arith_infer, mul_fold, flops_1, mul_prepare },
	{ "Div", EW, arith_infer, div_fold, flops_1, div_prepare },
	{ "Pow", EW, pow_infer, NULL, flops_4, pow_prepare },
	{ "Equal", EW, compare_infer, equal_fold, flops_1, equal_prepare },
	{ "Less", EW, compare_infer, less_fold, flops_1, less_prepare },
	{ "Greater", EW, compare_infer, greater_fold, flops_1,
	  greater_prepare },
	{ "Where", EW, where_infer, where_fold, flops_1, where_prepare },
	{ "Not", EW, not_infer, neg_fold, flops_1, not_prepare },
	{ "And", EW, compare_infer, and_fold, flops_1, and_prepare },
	{ "Or", EW, compare_infer, or_fold, flops_1, or_prepare },
	{ "Max", EW, minmax_infer, max_fold, flops_minmax, max_prepare },
	{ "Min", EW, minmax_infer, min_fold, flops_minmax, min_prepare },
};

const struct lm_ops_family lm_ops_elementwise = { ops, ARRAY_SIZE(ops) };
