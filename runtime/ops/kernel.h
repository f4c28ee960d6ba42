/*
 * kernel.h: how the executor runs a node, for the op families.
 *
 * At session creation the executor calls the op's `prepare`, which checks
 * everything the kernel will rely on (element types, attributes, shapes:
 * all known by then) and fails with "node 'n' (Op): ..." for anything it
 * cannot execute, so nothing is discovered mid-run.  prepare sets k->run,
 * may pack constant inputs (weights) into k->state, and asks for scratch
 * memory, which the executor carves out of the arena.
 *
 * At run time k->run gets an lm_kargs whose tensors have fixed dtype, shape
 * and strides (set once) and data pointers into the arena, the caller's
 * buffers (graph inputs/outputs) or the constants.  A run function must not
 * allocate and must not fail on valid data: anything that could fail was
 * checked in prepare.
 */
#ifndef LAMINA_KERNEL_H
#define LAMINA_KERNEL_H

#include <stddef.h>

#include "lamina/graph.h"

typedef struct lm_kargs {
	const lm_node *node;
	lm_tensor *const *in;   /* n_in entries; NULL for omitted inputs */
	int n_in;
	lm_tensor *const *out;  /* n_out entries; NULL for omitted outputs */
	int n_out;
	void *state;            /* what prepare left in k->state */
	void *scratch;          /* k->scratch_bytes, 64-byte aligned */
	int threads;            /* threads the session may use */
} lm_kargs;

typedef struct lm_kernel {
	int (*run)(const lm_kargs *a);
	void *state;
	void (*free_state)(void *state);
	size_t scratch_bytes;
	size_t state_bytes;     /* memory held in state, for reports */
	const char *impl;       /* which implementation: "im2col+sgemm" */
	/* Output 0 may use the memory of input 0 (same size), which the
	 * executor grants when input 0 is read by no one later. */
	int inplace;
	/* Output 0 is input 0 reinterpreted (Reshape, Flatten, Squeeze...):
	 * the executor gives it the same memory and never calls run. */
	int alias;
} lm_kernel;

/**
 * Allocate a zeroed kernel state of `bytes` and hand it to k (freed with
 * the kernel).  Returns it, or NULL with e naming the node.
 */
void *lm_kernel_new_state(lm_graph *g, const lm_node *n, lm_kernel *k,
			  size_t bytes, lm_error *e);

/*
 * Fused epilogue of Conv, ConvTranspose, Gemm and MatMul, set by the
 * executor's fusion pass as private attributes on the node ("lm.act",
 * "lm.alpha", "lm.beta", "lm.sum"): after the product and bias,
 *     y = act(y + sum)
 * where sum is the node's input `sum_input` (same shape as y) or absent.
 */
enum lm_act {
	LM_ACT_NONE,
	LM_ACT_RELU,
	LM_ACT_LEAKY_RELU,   /* alpha */
	LM_ACT_CLIP,         /* alpha = min, beta = max */
	LM_ACT_SIGMOID,
	LM_ACT_HARD_SIGMOID, /* alpha, beta */
	LM_ACT_HARD_SWISH,   /* x * hard_sigmoid(x; alpha, beta), ONNX's
			      * HardSwish with alpha 1/6, beta 1/2 */
	LM_ACT_TANH,
	LM_ACT_SILU,         /* x * sigmoid(x) */
	LM_ACT_GELU,         /* x/2 (1 + erf(x / sqrt 2)) */
	LM_ACT_GELU_TANH,    /* x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
	LM_ACT_COUNT         /* not an activation: the number of them */
};

/** The activation's name as the profile shows it ("Relu", "SiLU"; ""
 * for none, "?" out of range). */
const char *lm_act_name(enum lm_act act);

typedef struct lm_epilogue {
	enum lm_act act;
	float alpha, beta;
	int sum_input;       /* input index, or -1 */
} lm_epilogue;

/** Read a node's fused epilogue (LM_ACT_NONE, -1 when there is none). */
void lm_epilogue_get(const lm_node *n, lm_epilogue *ep);

/** The tensor an epilogue adds (its residual), or NULL. */
static inline const float *lm_epilogue_sum(const lm_kargs *a,
					   const lm_epilogue *ep)
{
	return ep->sum_input >= 0 ? a->in[ep->sum_input]->data : NULL;
}

/** A node's bias, its third input when it has one, or NULL. */
static inline const float *lm_bias_input(const lm_kargs *a, int has_bias)
{
	return has_bias && a->n_in > 2 && a->in[2] ? a->in[2]->data : NULL;
}

/** y[i] = act(y[i] + (sum ? sum[i] : 0)) for i < n (vectorised). */
void lm_epilogue_apply(const lm_epilogue *ep, float *y, const float *sum,
		       size_t n);

/** y[i] = act(y[i]) for i < n: the activations alone (vectorised). */
void lm_act_apply(enum lm_act act, float alpha, float beta, float *y,
		  size_t n);

/** Threads for OpenBLAS calls made by this thread from now on. */
void lm_blas_threads(int threads);

#endif
