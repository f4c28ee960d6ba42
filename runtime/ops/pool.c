/*
 * pool.c: pooling (MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool):
 * output shapes, FLOP counts, and prepare (kernels in
 * runtime/kernels/pool.c).  All head a layer.
 *
 * Windowed pools share lm_ops_window() with Conv; they add ceil_mode
 * (opset 10+) and take the kernel from the kernel_shape attribute.
 * dilations exist for MaxPool from opset 10 and AveragePool from 19; an
 * older model simply has none, so they are read regardless of opset.
 */
#include "ops.h"
#include "../kernels/kernels.h"
#include "../kernels/prep.h"

#include <string.h>

static int pool_infer(lm_graph *g, lm_node *n, lm_error *e)
{
	lm_value *x;
	int64_t kernel[LM_MAX_RANK], dims[LM_MAX_RANK];
	int is_max = strcmp(n->op_type, "MaxPool") == 0;
	int rc;

	if ((rc = lm_ops_arity(g, n, 1, 1, 1, is_max ? 2 : 1, e)) ||
	    (rc = lm_ops_in(g, n, 0, &x, e)))
		return rc;
	if (x->rank < 3)
		return lm_ops_fail(e, g, n, -EINVAL, "input '%s' has rank %d, "
				   "expected at least 3 (N, C, spatial...)",
				   x->name, x->rank);
	int nsp = x->rank - 2;
	const lm_attr *ks = lm_node_attr(n, "kernel_shape");
	if (!ks)
		return lm_ops_fail(e, g, n, -EINVAL, "kernel_shape attribute "
				   "is missing");
	if ((rc = lm_ops_attr_ints(g, n, "kernel_shape", kernel, nsp, 0,
				   e)) < 0)
		return rc;
	int ceil_mode = lm_attr_int(n, "ceil_mode", 0) != 0;
	if ((rc = lm_ops_window(g, n, nsp, x->dims + 2, kernel, ceil_mode,
				dims + 2, e)))
		return rc;
	dims[0] = x->dims[0];
	dims[1] = x->dims[1];
	if ((rc = lm_ops_out(g, n, 0, x->dtype, x->rank, dims, e)))
		return rc;
	/* MaxPool's optional Indices output: flat int64 positions. */
	return lm_ops_out(g, n, 1, LM_DT_INT64, x->rank, dims, e);
}

static int global_pool_infer(lm_graph *g, lm_node *n, lm_error *e)
{
	lm_value *x;
	int64_t dims[LM_MAX_RANK];
	int rc;

	if ((rc = lm_ops_arity(g, n, 1, 1, 1, 1, e)) ||
	    (rc = lm_ops_in(g, n, 0, &x, e)))
		return rc;
	if (x->rank < 3)
		return lm_ops_fail(e, g, n, -EINVAL, "input '%s' has rank %d, "
				   "expected at least 3 (N, C, spatial...)",
				   x->name, x->rank);
	dims[0] = x->dims[0];
	dims[1] = x->dims[1];
	for (int i = 2; i < x->rank; i++)
		dims[i] = 1;
	return lm_ops_out(g, n, 0, x->dtype, x->rank, dims, e);
}

/* One operation per window element per output: output elements times the
 * kernel size (a compare for max, an add for average). */
static double pool_flops(lm_graph *g, const lm_node *n)
{
	int cnt;
	const int64_t *k = lm_attr_ints(n, "kernel_shape", &cnt);
	double f = lm_ops_out_elems(g, n, 0);

	for (int i = 0; k && i < cnt; i++)
		f *= (double)k[i];
	return f;
}

/* Every input element is read once. */
static double global_pool_flops(lm_graph *g, const lm_node *n)
{
	return lm_ops_in_elems(g, n, 0);
}

/* MaxPool and AveragePool over one or two spatial axes (1-D as 2-D with
 * one row).  MaxPool's Indices output is not supported. */
static int pool_prepare(lm_graph *g, lm_node *n, lm_kernel *k, lm_error *e)
{
	lm_value *x = lm_node_in(g, n, 0), *y = lm_node_out(g, n, 0);
	int is_max = strcmp(n->op_type, "MaxPool") == 0;
	int64_t ks[2], st[2], dl[2], pd[4];
	int rc;

	if (!x || !y)
		return lm_ops_fail(e, g, n, -EINVAL, "input or output is "
				   "missing");
	if ((rc = lm_prep_float(g, n, x, e)) ||
	    (rc = lm_prep_float(g, n, y, e)))
		return rc;
	if (is_max && lm_node_out(g, n, 1))
		return lm_ops_fail(e, g, n, -ENOTSUP, "the Indices output is "
				   "not supported");
	int nsp = x->rank - 2;
	if (nsp < 1 || nsp > 2)
		return lm_ops_fail(e, g, n, -ENOTSUP, "%d-D pooling is not "
				   "supported (1-D and 2-D are)", nsp);
	if ((rc = lm_ops_attr_ints(g, n, "kernel_shape", ks, nsp, 0, e)) < 0 ||
	    (rc = lm_ops_attr_ints(g, n, "strides", st, nsp, 1, e)) < 0 ||
	    (rc = lm_ops_attr_ints(g, n, "dilations", dl, nsp, 1, e)) < 0)
		return rc;
	if ((rc = lm_prep_pads(g, n, nsp, x->dims + 2, ks, st, dl,
			       y->dims + 2, pd, e)))
		return rc;
	int o = 2 - nsp;
	struct lm_pool_desc d = {
		.n = x->dims[0], .c = x->dims[1],
		.h = o ? 1 : x->dims[2], .w = x->dims[3 - o],
		.oh = o ? 1 : y->dims[2], .ow = y->dims[3 - o],
		.kh = o ? 1 : ks[0], .kw = ks[1 - o],
		.sh = o ? 1 : st[0], .sw = st[1 - o],
		.dh = o ? 1 : dl[0], .dw = dl[1 - o],
		.pt = o ? 0 : pd[0], .pl = pd[1 - o],
		.pb = o ? 0 : pd[nsp], .pr = pd[nsp + 1 - o],
		.is_max = is_max,
		.count_include_pad = lm_attr_int(n, "count_include_pad",
						 0) != 0,
	};
	if ((rc = lm_pool_prepare(&d, k)))
		return lm_ops_fail(e, g, n, rc, "out of memory");
	return 0;
}

static int global_pool_prepare(lm_graph *g, lm_node *n, lm_kernel *k,
			       lm_error *e)
{
	lm_value *x = lm_node_in(g, n, 0), *y = lm_node_out(g, n, 0);
	int rc;

	if (!x || !y || x->rank < 2)
		return lm_ops_fail(e, g, n, -EINVAL, "input or output is "
				   "missing");
	if ((rc = lm_prep_float(g, n, x, e)) ||
	    (rc = lm_prep_float(g, n, y, e)))
		return rc;
	int64_t spatial = lm_ops_numel(x->rank - 2, x->dims + 2);
	if ((rc = lm_global_pool_prepare(x->dims[0] * x->dims[1], spatial,
					 !strcmp(n->op_type, "GlobalMaxPool"),
					 k)))
		return lm_ops_fail(e, g, n, rc, "out of memory");
	return 0;
}

static const lm_op ops[] = {
	{ "MaxPool", LM_OP_COMPUTE, pool_infer, NULL, pool_flops,
	  pool_prepare },
	{ "AveragePool", LM_OP_COMPUTE, pool_infer, NULL, pool_flops,
	  pool_prepare },
	{ "GlobalAveragePool", LM_OP_COMPUTE, global_pool_infer, NULL,
	  global_pool_flops, global_pool_prepare },
	{ "GlobalMaxPool", LM_OP_COMPUTE, global_pool_infer, NULL,
	  global_pool_flops, global_pool_prepare },
};

const struct lm_ops_family lm_ops_pool = { ops, ARRAY_SIZE(ops) };
