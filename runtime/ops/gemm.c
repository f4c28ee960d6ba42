/*
 * gemm.c: matrix products (Gemm, MatMul): output shapes, FLOP counts, and
 * prepare (kernels in runtime/kernels/blas.c).  Both head a layer.
 *
 * Gemm is Y = alpha * op(A) * op(B) + beta * C with A and B of rank 2 and C
 * broadcast to (M, N).  MatMul follows numpy.matmul: 1-D operands gain a
 * dimension that is dropped again, leading (batch) dims broadcast.
 */
#include "ops.h"
#include "../kernels/kernels.h"
#include "../kernels/prep.h"

#include <string.h>

static int gemm_infer(lm_graph *g, lm_node *n, lm_error *e)
{
	lm_value *a, *b, *c;
	int rc;

	if ((rc = lm_ops_arity(g, n, 2, 3, 1, 1, e)) ||
	    (rc = lm_ops_in(g, n, 0, &a, e)) ||
	    (rc = lm_ops_in(g, n, 1, &b, e)) ||
	    (rc = lm_ops_opt(g, n, 2, &c, e)))
		return rc;
	if (a->rank != 2 || b->rank != 2)
		return lm_ops_fail(e, g, n, -EINVAL, "inputs '%s' and '%s' "
				   "have ranks %d and %d, expected 2 and 2",
				   a->name, b->name, a->rank, b->rank);
	if ((rc = lm_ops_same_type(g, n, a, b, e)))
		return rc;
	int ta = lm_attr_int(n, "transA", 0) != 0;
	int tb = lm_attr_int(n, "transB", 0) != 0;
	int64_t dims[2];
	int64_t m = a->dims[ta], k = a->dims[!ta];
	int64_t kb = b->dims[tb], nn = b->dims[!tb];
	if (k != kb)
		return lm_ops_fail(e, g, n, -EINVAL, "inner dims differ: '%s' "
				   "gives K=%lld (transA=%d), '%s' gives "
				   "K=%lld (transB=%d)", a->name, (long long)k,
				   ta, b->name, (long long)kb, tb);
	dims[0] = m;
	dims[1] = nn;
	if (c) {
		/* C broadcasts one way only: the result must stay (M, N). */
		int r;
		int64_t bd[LM_MAX_RANK];
		if ((rc = lm_ops_broadcast(g, n, 2, dims, c->rank, c->dims,
					   &r, bd, e)))
			return rc;
		if (r != 2 || bd[0] != m || bd[1] != nn)
			return lm_ops_fail(e, g, n, -EINVAL, "C '%s' does not "
					   "broadcast to (%lld, %lld)",
					   c->name, (long long)m,
					   (long long)nn);
	}
	return lm_ops_out(g, n, 0, a->dtype, 2, dims, e);
}

/*
 * MatMul's 1-D operands as matrices: (K) -> (1, K) on the left, (K) ->
 * (K, 1) on the right (the extra dim is dropped from the result).  ad and
 * bd have room for LM_MAX_RANK + 1 dims.
 */
static void promote_1d(const lm_value *a, const lm_value *b, int64_t *ad,
		       int *ra, int64_t *bd, int *rb)
{
	*ra = a->rank;
	*rb = b->rank;
	memcpy(ad, a->dims, (size_t)*ra * sizeof(int64_t));
	memcpy(bd, b->dims, (size_t)*rb * sizeof(int64_t));
	if (*ra == 1) {
		ad[1] = ad[0];
		ad[0] = 1;
		*ra = 2;
	}
	if (*rb == 1) {
		bd[1] = 1;
		*rb = 2;
	}
}

static int matmul_infer(lm_graph *g, lm_node *n, lm_error *e)
{
	lm_value *a, *b;
	int64_t ad[LM_MAX_RANK], bd[LM_MAX_RANK], dims[LM_MAX_RANK];
	int rc;

	if ((rc = lm_ops_arity(g, n, 2, 2, 1, 1, e)) ||
	    (rc = lm_ops_in(g, n, 0, &a, e)) ||
	    (rc = lm_ops_in(g, n, 1, &b, e)) ||
	    (rc = lm_ops_same_type(g, n, a, b, e)))
		return rc;
	if (a->rank < 1 || b->rank < 1)
		return lm_ops_fail(e, g, n, -EINVAL, "scalar operand ('%s' "
				   "rank %d, '%s' rank %d)", a->name, a->rank,
				   b->name, b->rank);
	int ra, rb;
	promote_1d(a, b, ad, &ra, bd, &rb);
	if (ad[ra - 1] != bd[rb - 2])
		return lm_ops_fail(e, g, n, -EINVAL, "inner dims differ: '%s' "
				   "has K=%lld, '%s' has K=%lld", a->name,
				   (long long)ad[ra - 1], b->name,
				   (long long)bd[rb - 2]);
	int r;
	if ((rc = lm_ops_broadcast(g, n, ra - 2, ad, rb - 2, bd, &r, dims,
				   e)))
		return rc;
	if (a->rank > 1)
		dims[r++] = ad[ra - 2];
	if (b->rank > 1)
		dims[r++] = bd[rb - 1];
	return lm_ops_out(g, n, 0, a->dtype, r, dims, e);
}

/* 2 * M * N * K, plus M * N additions when C is given. */
static double gemm_flops(lm_graph *g, const lm_node *n)
{
	lm_value *a = lm_node_in(g, n, 0);
	double mn = lm_ops_out_elems(g, n, 0);

	if (!a || a->rank != 2 || mn == 0)
		return 0;
	double k = (double)a->dims[lm_attr_int(n, "transA", 0) ? 0 : 1];
	return 2.0 * mn * k + (lm_node_in(g, n, 2) ? mn : 0);
}

/* 2 * batch * M * N * K: every output element is a K-long dot product. */
static double matmul_flops(lm_graph *g, const lm_node *n)
{
	lm_value *a = lm_node_in(g, n, 0);
	double out = lm_ops_out_elems(g, n, 0);

	if (!a || a->rank < 1 || a->rank > LM_MAX_RANK || out == 0)
		return 0;
	return 2.0 * out * (double)a->dims[a->rank - 1];
}

static int gemm_prepare(lm_graph *g, lm_node *n, lm_kernel *k, lm_error *e)
{
	lm_epilogue ep;
	int nm, rc;

	if ((rc = lm_prep_epilogue(g, n, &ep, &nm, e)))
		return rc;
	lm_value *a = lm_node_in(g, n, 0), *b = lm_node_in(g, n, 1);
	lm_value *c = nm > 2 ? lm_node_in(g, n, 2) : NULL;
	lm_value *y = lm_node_out(g, n, 0);
	if (!a || !b || !y || a->rank != 2 || b->rank != 2 || y->rank != 2 ||
	    (c && c->rank > 2))
		return lm_ops_fail(e, g, n, -EINVAL, "operands are not "
				   "matrices");
	if ((rc = lm_prep_float(g, n, a, e)) ||
	    (rc = lm_prep_float(g, n, b, e)) ||
	    (rc = lm_prep_float(g, n, c, e)) ||
	    (rc = lm_prep_float(g, n, y, e)))
		return rc;
	int ta = lm_attr_int(n, "transA", 0) != 0;
	struct lm_gemm_desc d = {
		.ta = ta, .tb = lm_attr_int(n, "transB", 0) != 0,
		.m = y->dims[0], .n = y->dims[1], .k = a->dims[ta ? 0 : 1],
		.alpha = lm_attr_float(n, "alpha", 1.0f),
		.beta = lm_attr_float(n, "beta", 1.0f),
		.has_c = c != NULL, .c_rank = c ? c->rank : 0, .ep = ep,
	};
	for (int i = 0; c && i < c->rank; i++)
		d.c_dims[i] = c->dims[i];
	if ((rc = lm_gemm_prepare(&d, k)))
		return lm_ops_fail(e, g, n, rc, "out of memory");
	return 0;
}

/* MatMul as a batch of (M x K) (K x N) products: 1-D operands promoted,
 * every shape right-aligned to the output's batch rank. */
static int matmul_prepare(lm_graph *g, lm_node *n, lm_kernel *k,
			  lm_error *e)
{
	lm_epilogue ep;
	int nm, rc;

	if ((rc = lm_prep_epilogue(g, n, &ep, &nm, e)))
		return rc;
	lm_value *a = lm_node_in(g, n, 0), *b = lm_node_in(g, n, 1);
	lm_value *y = lm_node_out(g, n, 0);
	if (!a || !b || !y || a->rank < 1 || b->rank < 1)
		return lm_ops_fail(e, g, n, -EINVAL, "operands are missing or "
				   "scalars");
	if ((rc = lm_prep_float(g, n, a, e)) ||
	    (rc = lm_prep_float(g, n, b, e)) ||
	    (rc = lm_prep_float(g, n, y, e)))
		return rc;
	int64_t ad[LM_MAX_RANK + 1], bd[LM_MAX_RANK + 1];
	int ra, rb;
	promote_1d(a, b, ad, &ra, bd, &rb);
	int r = ra > rb ? ra : rb;
	if (r > LM_MAX_RANK)
		return lm_ops_fail(e, g, n, -ENOTSUP, "rank %d is too large",
				   r);
	struct lm_matmul_desc d = { .rank = r, .ep = ep,
				       .bias_input = -1 };
	/* "lm.impl" = "openblas" keeps a constant B unpacked (benchmarks) */
	if (lm_value_is_const(b) && strcmp(lm_prep_impl(n), "openblas") &&
	    !(d.b_const = lm_ops_fold_in(g, n, 1, e)))
		return -EINVAL;
	for (int i = 0; i < r; i++) {
		d.a_dims[i] = i < r - ra ? 1 : ad[i - (r - ra)];
		d.b_dims[i] = i < r - rb ? 1 : bd[i - (r - rb)];
	}
	for (int i = 0; i < r - 2; i++)
		d.o_dims[i] = d.a_dims[i] == 1 ? d.b_dims[i] : d.a_dims[i];
	d.o_dims[r - 2] = d.a_dims[r - 2];
	d.o_dims[r - 1] = d.b_dims[r - 1];
	/* a bias the fusion pass folded in: N floats added to every row */
	int64_t bi = lm_attr_int(n, "lm.bias", -1);
	if (bi >= 0) {
		lm_value *bv = bi < n->n_inputs ? lm_node_in(g, n, (int)bi)
						 : NULL;
		if (bi < 2 || !bv || bv->dtype != LM_DT_FLOAT ||
		    lm_ops_numel(bv->rank, bv->dims) != d.o_dims[r - 1])
			return lm_ops_fail(e, g, n, -EINVAL, "fused bias input "
					   "%lld does not hold %lld floats",
					   (long long)bi,
					   (long long)d.o_dims[r - 1]);
		d.bias_input = (int)bi;
	}
	if ((rc = lm_matmul_prepare(&d, k)))
		return lm_ops_fail(e, g, n, rc, "out of memory");
	return 0;
}

static const lm_op ops[] = {
	{ "Gemm", LM_OP_COMPUTE, gemm_infer, NULL, gemm_flops, gemm_prepare },
	{ "MatMul", LM_OP_COMPUTE, matmul_infer, NULL, matmul_flops,
	  matmul_prepare },
};

const struct lm_ops_family lm_ops_gemm = { ops, ARRAY_SIZE(ops) };
