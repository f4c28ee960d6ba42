/*
 * prep.h: checks shared by the prepare functions of ops/conv.c,
 * ops/gemm.c and ops/pool.c (defined in kernels/prep.c).  Each fails with
 * "node 'n' (Op): ..." and a negative code.
 */
#ifndef LAMINA_KERNELS_PREP_H
#define LAMINA_KERNELS_PREP_H

#include "../ops/ops.h"
#include "../ops/kernel.h"

/** Fail with -ENOTSUP unless v (when present) is float32. */
int lm_prep_float(lm_graph *g, const lm_node *n, const lm_value *v,
		  lm_error *e);

/**
 * Read and check the node's fused epilogue: a known activation, and a
 * sum input of the output's type and shape.  *n_main is the number of
 * inputs the op itself has (without an appended sum).
 */
int lm_prep_epilogue(lm_graph *g, const lm_node *n, lm_epilogue *ep,
		     int *n_main, lm_error *e);

/** The implementation pinned by the private "lm.impl" attribute, or "". */
const char *lm_prep_impl(const lm_node *n);

/**
 * Explicit pads (begins, then ends) for a window op with the given output
 * size: from auto_pad when it is SAME_UPPER, SAME_LOWER or VALID, else the
 * pads attribute.
 */
int lm_prep_pads(lm_graph *g, const lm_node *n, int nsp, const int64_t *in,
		 const int64_t *kernel, const int64_t *strides,
		 const int64_t *dil, const int64_t *out, int64_t *pads,
		 lm_error *e);

#endif
