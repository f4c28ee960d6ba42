/*
 * prep.c: checks that the prepare functions of the conv, gemm and pool
 * families share: element types, the fused epilogue, the private
 * "lm.impl" attribute that pins an implementation (tests and benchmarks),
 * and the explicit pads behind auto_pad.  Each fails with the usual
 * "node 'n' (Op): ..." line.
 */
#include "kernels.h"
#include "prep.h"

#include <string.h>

int lm_prep_float(lm_graph *g, const lm_node *n, const lm_value *v,
		  lm_error *e)
{
	if (v && v->dtype != LM_DT_FLOAT)
		return lm_ops_fail(e, g, n, -ENOTSUP, "'%s' is %s; only "
				   "float32 is supported", v->name,
				   lm_dtype_name(v->dtype));
	return 0;
}

int lm_prep_epilogue(lm_graph *g, const lm_node *n, lm_epilogue *ep,
		     int *n_main, lm_error *e)
{
	lm_value *y = lm_node_out(g, n, 0);

	lm_epilogue_get(n, ep);
	*n_main = n->n_inputs;
	if ((int)ep->act < LM_ACT_NONE || ep->act >= LM_ACT_COUNT)
		return lm_ops_fail(e, g, n, -ENOTSUP, "unknown fused "
				   "activation %d", (int)ep->act);
	if (ep->sum_input < 0)
		return 0;
	lm_value *s = lm_node_in(g, n, ep->sum_input);
	if (!s || !y)
		return lm_ops_fail(e, g, n, -EINVAL, "fused sum input %d is "
				   "missing", ep->sum_input);
	if (s->dtype != LM_DT_FLOAT || s->rank != y->rank ||
	    memcmp(s->dims, y->dims, (size_t)y->rank * sizeof(int64_t)))
		return lm_ops_fail(e, g, n, -EINVAL, "fused sum input '%s' "
				   "does not match output '%s' in type and "
				   "shape", s->name, y->name);
	/* The fusion pass appends the sum after the op's own inputs. */
	if (ep->sum_input == n->n_inputs - 1)
		*n_main = n->n_inputs - 1;
	return 0;
}

const char *lm_prep_impl(const lm_node *n)
{
	return lm_attr_str(n, "lm.impl", "");
}

int lm_prep_pads(lm_graph *g, const lm_node *n, int nsp, const int64_t *in,
		 const int64_t *kernel, const int64_t *strides,
		 const int64_t *dil, const int64_t *out, int64_t *pads,
		 lm_error *e)
{
	const char *ap = lm_attr_str(n, "auto_pad", "NOTSET");
	int upper = strcmp(ap, "SAME_UPPER") == 0;
	int lower = strcmp(ap, "SAME_LOWER") == 0;
	int rc;

	if (strcmp(ap, "VALID") == 0) {
		for (int i = 0; i < 2 * nsp; i++)
			pads[i] = 0;
		return 0;
	}
	if (!upper && !lower)
		return (rc = lm_ops_attr_ints(g, n, "pads", pads, 2 * nsp, 0,
					      e)) < 0 ? rc : 0;
	/* SAME_*: pad just enough for `out` windows; the odd one goes at
	 * the end (UPPER) or the beginning (LOWER). */
	for (int i = 0; i < nsp; i++) {
		int64_t ext = (kernel[i] - 1) * dil[i] + 1;
		int64_t total = (out[i] - 1) * strides[i] + ext - in[i];
		if (total < 0)
			total = 0;
		pads[i] = upper ? total / 2 : total - total / 2;
		pads[i + nsp] = total - pads[i];
	}
	return 0;
}
