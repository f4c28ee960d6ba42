/*
 * runtime.h: executing a graph on the CPU.
 *
 * A session is made once per graph: it fuses what can be fused, prepares
 * every node's kernel (rejecting unsupported operators and attributes by
 * name, before anything runs), packs weights and plans one arena for every
 * intermediate tensor from their lifetimes.  lm_session_run then allocates
 * nothing: inputs are read from the caller's buffers and outputs written
 * straight into the caller's buffers.
 *
 * Lifecycle: lm_session_create(), lm_session_run() any number of times,
 * lm_session_free().  A session is not safe to run from two threads at once;
 * make one per worker.
 */
#ifndef LAMINA_RUNTIME_H
#define LAMINA_RUNTIME_H

#include "lamina/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lm_session lm_session;

typedef struct lm_session_options {
	int threads; /**< threads for the heavy kernels; 0 or 1: one */
	int profile; /**< measure time per node (lm_session_profile) */
	int no_fuse; /**< keep the graph as it is (for tests) */
	/** Tests: run the first split_nodes nodes (of the graph after
	 *  fusion) one sample at a time, or as many of them as keep the
	 *  batch on axis 0; 0: lamina's choice (see exec.c), -1: never. */
	int split_nodes;
} lm_session_options;

/**
 * The graph rewrites a session makes before its kernels are prepared
 * (unless no_fuse): BatchNormalization and zero Pad folded into
 * convolutions; residual Adds and activations into the epilogue of Conv,
 * ConvTranspose, Gemm and MatMul; LayerNorm, GELU, SiLU, HardSwish and
 * squeeze-excitation patterns into single nodes; channels-last blocks
 * rewritten channels-first.  A tensor made inside a fused node is made by
 * no node afterwards.  The slicer runs it on a copy of the model to keep
 * those tensors off its cuts.
 * @return the number of rewrites, or a negative code.
 */
int lm_fuse(lm_graph *g, lm_error *e);

/**
 * Build a session over a prepared graph (shapes inferred, constants
 * folded: see lm_onnx_prepare).  The graph is rewritten by fusion and must
 * outlive the session.
 * @return 0; -ENOTSUP naming the first node whose operator, attribute or
 *         element type the runtime cannot execute; -ENOMEM.
 */
int lm_session_create(lm_graph *g, const lm_session_options *o,
		      lm_session **out, lm_error *e);

/** Free a session; safe on NULL. */
void lm_session_free(lm_session *s);

/**
 * Run once.  inputs[i] is graph input i and outputs[i] graph output i:
 * dtype and shape must match the graph, data must point at enough memory.
 * @return 0, or -EINVAL naming the input whose type or shape is wrong.
 */
int lm_session_run(lm_session *s, const lm_tensor *inputs, int n_inputs,
		   lm_tensor *outputs, int n_outputs, lm_error *e);

/** Bytes of the arena holding every intermediate tensor. */
size_t lm_session_arena_bytes(const lm_session *s);

/** Bytes of weights as the kernels hold them (packed). */
size_t lm_session_weight_bytes(const lm_session *s);

/** Time spent in one node over all profiled runs. */
typedef struct lm_node_time {
	const char *name;
	const char *op;     /**< op type, with fused ops as "Conv+Add+Relu" */
	const char *kernel; /**< which implementation ran ("winograd", ...) */
	double seconds;
	double flops;       /**< per run */
	long runs;
} lm_node_time;

/**
 * Per-node times (when created with profile set), in execution order.
 * The array belongs to the session.  Returns the number of rows.
 */
int lm_session_profile(const lm_session *s, const lm_node_time **rows);

/**
 * Check a tensor against a graph input or output value: dtype, rank and
 * every dim.  Returns 0 or -EINVAL with "input 'x': expected float32
 * 1x3x224x224, got ...".
 */
int lm_tensor_check(const lm_value *v, const lm_tensor *t, const char *what,
		    lm_error *e);

#ifdef __cplusplus
}
#endif

#endif
