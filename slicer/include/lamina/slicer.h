/*
 * slicer.h: reading and writing ONNX models, and cutting a graph into
 * per-layer slices that are each a standalone ONNX model.
 *
 * Lifecycle:
 *   lm_onnx_load()        parse a model into the graph IR (weights stay in
 *                         the mapped file until asked for)
 *   lm_onnx_prepare()     fix symbolic dims, sort, fold shape subgraphs,
 *                         infer shapes, find the batch in every tensor:
 *                         what slice, inspect and run all need
 *   lm_slice_plan()       group nodes into layers, then into slices
 *   lm_slice_write()      write DIR/manifest.json and one .onnx per slice
 *   lm_slicing_free(), lm_onnx_free()
 */
#ifndef LAMINA_SLICER_H
#define LAMINA_SLICER_H

#include "lamina/batch.h"
#include "lamina/graph.h"
#include "lamina/manifest.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lm_onnx_model lm_onnx_model;

/** A shape given by the user for a graph input ("--input-shape"). */
typedef struct lm_input_shape {
	char name[256];
	int rank;
	int64_t dims[LM_MAX_RANK];
} lm_input_shape;

/**
 * Parse NAME=D0,D1,... into s.  Returns 0, or -EINVAL with a message.
 */
int lm_input_shape_parse(const char *arg, lm_input_shape *s, lm_error *e);

/**
 * Load an ONNX model.  External-data tensors must lie inside the model's
 * folder (relative path, no "..", no symlink leading out); their files are
 * checked here so that errors come before any output is written.
 *
 * @param path  the .onnx file
 * @param out   receives the model; free with lm_onnx_free
 * @param e     receives "path: what is wrong" on failure
 * @return 0; -ENOENT/-EACCES (cannot open), -EINVAL (not ONNX, truncated,
 *         malformed graph), -ENOTSUP (opset or feature lamina cannot read),
 *         -EPERM (external data escaping the folder), -ELOOP (cycle).
 */
int lm_onnx_load(const char *path, lm_onnx_model **out, lm_error *e);

/**
 * Load a model from memory (the buffer must outlive the model).  External
 * data is refused: there is no folder to confine it to.  `name` is used in
 * messages.  Returns as lm_onnx_load.
 */
int lm_onnx_load_memory(const void *buf, size_t len, const char *name,
			lm_onnx_model **out, lm_error *e);

/** Free a model; safe on NULL. */
void lm_onnx_free(lm_onnx_model *m);

/** The model's graph (owned by the model). */
lm_graph *lm_onnx_graph(lm_onnx_model *m);

/** The path the model was loaded from. */
const char *lm_onnx_path(const lm_onnx_model *m);

/**
 * Make the graph ready for analysis: apply user input shapes, give any
 * remaining symbolic dim the value 1 (reported through `defaulted`, which
 * may be NULL), fold constant shape subgraphs, infer every shape, and
 * find where the batch lies in every tensor (lm_onnx_batch): from the
 * symbolic batch the inputs declare, else the first axis of the inputs
 * along which samples stay apart (lamina/batch.h).  When they do, every
 * Reshape target holding the batch as a literal is rewritten to follow
 * any batch (the graph computes the same as before).
 *
 * @param shapes     user shapes (n_shapes entries), each naming an input
 * @param defaulted  if non-NULL, receives how many symbolic dims were set to 1
 * @return 0, or a negative code with a message naming the input or node.
 */
int lm_onnx_prepare(lm_onnx_model *m, const lm_input_shape *shapes,
		    int n_shapes, int *defaulted, lm_error *e);

/**
 * lm_onnx_prepare at batch `batch` (0: as the model and shapes say): a
 * symbolic batch is set before the shapes are inferred; a model whose
 * batch is a number is prepared at its own, then at `batch` when its
 * samples stay apart.  Only the batch axis of each input changes.
 * @return 0; -EINVAL "cannot run at batch N" naming the node that keeps
 *         the batch from changing and the batch the model runs at, or an
 *         output that comes out without the batch; as lm_onnx_prepare.
 */
int lm_onnx_prepare_at(lm_onnx_model *m, const lm_input_shape *shapes,
		       int n_shapes, int64_t batch, int *defaulted,
		       lm_error *e);

/** lm_onnx_prepare_at(m, NULL, 0, batch, NULL, e): what a slice needs. */
int lm_onnx_prepare_batch(lm_onnx_model *m, int64_t batch, lm_error *e);

/** Where the batch lies in every tensor of the prepared graph. */
const lm_batch *lm_onnx_batch(const lm_onnx_model *m);

/** The name of the model's symbolic batch ("batch" when it has none). */
const char *lm_onnx_batch_name(const lm_onnx_model *m);

/* ---- slicing ---- */

typedef enum lm_granularity {
	LM_GRAN_LAYER, /**< a compute node and the elementwise nodes after it */
	LM_GRAN_NODE,  /**< every node alone */
} lm_granularity;

typedef struct lm_slice_options {
	lm_granularity granularity;
	int max_slices; /**< 0: no limit */
	/** One byte per value of the graph, or NULL: 1 for a tensor the
	 *  runtime's fusion makes inside a fused node (lm_onnx_fused_values).
	 *  Layer granularity cuts none of them, so stages running slices
	 *  compute what the whole model computes, bit for bit. */
	const uint8_t *fused;
} lm_slice_options;

/**
 * Which tensors of m's prepared graph the runtime's fusion (lm_fuse) makes
 * inside a fused node: m loaded again from its file, prepared with the
 * same shapes and fused; a tensor that no node of that copy makes, or
 * makes in another shape, is marked.
 * @return 0 with *out (malloc'd, a byte per value of lm_onnx_graph(m));
 *         -ENOTSUP for a model loaded from memory; as lm_onnx_load,
 *         lm_onnx_prepare and lm_fuse.
 */
int lm_onnx_fused_values(lm_onnx_model *m, const lm_input_shape *shapes,
			 int n_shapes, uint8_t **out, lm_error *e);

/** One slice: a contiguous range of the node order. */
typedef struct lm_slice {
	int first_node, last_node; /**< inclusive, in graph order */
	int *inputs;               /**< value indices fed from outside */
	int n_inputs;
	int *outputs;              /**< value indices read later or outputs */
	int n_outputs;
	int *consts;               /**< initializers and constants it reads */
	int n_consts;
	double flops;
	size_t param_bytes;  /**< bytes of the constants it reads */
	size_t output_bytes; /**< bytes of its outputs */
	size_t cut_bytes;    /**< bytes alive across the cut after it */
	char *label;         /**< "Conv+Relu", for tables */
} lm_slice;

typedef struct lm_slicing {
	lm_slice *slices;
	int n;
	lm_granularity granularity;
} lm_slicing;

/**
 * Group a prepared graph's nodes into slices.
 * @return 0, -EINVAL (empty graph), -ENOMEM.
 */
int lm_slice_plan(lm_graph *g, const lm_slice_options *o, lm_slicing **out,
		  lm_error *e);

/** Free a slicing; safe on NULL. */
void lm_slicing_free(lm_slicing *s);

/**
 * Write DIR/manifest.json and DIR/slice_NNN.onnx for every slice.  Writes
 * into a temporary folder beside DIR and renames it at the end, so DIR
 * either appears complete or not at all.
 *
 * @param force  replace DIR when it exists (otherwise -EEXIST)
 * @param progress  if non-NULL, called after each slice with (done, total)
 */
int lm_slice_write(lm_onnx_model *m, const lm_slicing *s, const char *dir,
		   int force, void (*progress)(int done, int total),
		   lm_error *e);

/**
 * Write the nodes [first, last] of the model's graph as a standalone ONNX
 * model with the given graph inputs, outputs and constants (value indices).
 * Intermediate tensors are described in value_info.
 */
int lm_onnx_write_range(lm_onnx_model *m, const lm_slice *s, const char *path,
			lm_error *e);

/**
 * The manifest of a slicing of the prepared model m (lamina/manifest.h):
 * model inputs and outputs, and per slice its file, tensors, nodes and
 * costs; the batch they are at and each tensor's batch axis, or why the
 * model keeps its batch.
 * @param source  the model's file name, recorded in the manifest
 * @return 0, -ENOMEM; free *out with lm_manifest_free.
 */
int lm_manifest_build(lm_onnx_model *m, const lm_slicing *s,
		      const char *source, lm_manifest **out, lm_error *e);

/**
 * Load slice files (consecutive slices of one model, in order), prepare
 * each at the batch size and join them into one graph (lm_graph_absorb):
 * its inputs are the tensors the slices read that none of them makes.  The
 * caller marks the graph outputs it wants (lm_graph_add_output) and owns
 * the graph.  This is how a stage of consecutive slices runs as one
 * session.
 * @return 0, or the load, prepare or join error prefixed with the file.
 */
int lm_slice_join(const char *const *paths, int n, int64_t batch,
		  lm_graph **out, lm_error *e);

#ifdef __cplusplus
}
#endif

#endif
