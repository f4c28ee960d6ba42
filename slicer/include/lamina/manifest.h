/*
 * manifest.h: DIR/manifest.json, the description of a slice folder that
 * `lamina slice` writes and that bench, plan, deploy, infer, inspect and
 * laminad read.  manifest.c is the only code that reads or writes it.
 *
 *   {"format": "lamina-slices", "version": 2,
 *    "source": "resnet18.onnx",        the model the slices came from
 *    "opset": 13, "ir_version": 7,     the model's, kept by every slice
 *    "granularity": "layer" | "node",
 *    "batch": 1,                       the batch it was sliced at
 *    "batch_fixed": "node ...",        (only when the model cannot run at
 *                                      another batch) why not
 *    "inputs":  [TENSOR...],           the model's, in graph order
 *    "outputs": [TENSOR...],
 *    "total_flops": F, "total_param_bytes": B,
 *    "arena_bytes": B?,                (inspect only) the runtime's arena
 *    "slices": [{
 *      "index": i,                     0, 1, ... in order
 *      "file": "slice_000.onnx",       a plain name inside DIR
 *      "label": "Conv+Relu",
 *      "inputs":  [TENSOR...],         what it reads from outside it
 *      "outputs": [TENSOR...],         what it makes that is read later
 *      "nodes": ["/conv1/Conv", ...],  the model's nodes it runs
 *      "flops": F,                     a multiply-add counts 2
 *      "param_bytes": B,               constants it reads
 *      "output_bytes": B,              its outputs
 *      "cut_bytes": B,                 everything alive across the cut
 *                                      after it (passed-through included)
 *      "arena_bytes": B?}]}            (inspect only)
 *   TENSOR := {"name": "x", "dtype": "float32", "shape": [1, 3, 224, 224],
 *              "batch_axis": 0}        (absent: the tensor holds no batch)
 *
 * Shapes and bytes are those of the batch the model was sliced at (its
 * own, or what --input-shape gave): "batch".  A tensor's batch axis holds
 * dims[batch_axis] / batch rows per sample (1 for a plain batch axis, 4
 * for [batch*heads, ...]); at another batch only that dim changes
 * (lm_mtensor_shape_at).  The slice files declare the model's symbolic
 * batch on those axes (lamina/batch.h, lm_batch_dim_name), so one slicing
 * serves every batch unless "batch_fixed" says otherwise.  A cut k
 * (between slice k and k + 1) carries every tensor made at or before k
 * and read after k; k = -1 is the model's inputs and k = n - 1 its
 * outputs (lm_manifest_cut).
 *
 * Version 1 (before the batch axes) is still read: its batch is the
 * leading dim of the first input and every tensor holds it on axis 0.
 *
 * Everything read is untrusted: the format and version must match, every
 * field has its type, slice files are plain names inside the folder (no
 * '/', no ".."), indices run 0..n-1, tensors have known types and shapes
 * whose bytes fit.
 */
#ifndef LAMINA_MANIFEST_H
#define LAMINA_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#include "lamina/common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LM_MANIFEST_FORMAT "lamina-slices"
#define LM_MANIFEST_VERSION 2
#define LM_MANIFEST_FILE "manifest.json"
/** Tensors one slice or one cut may carry (a bound on untrusted lists). */
#define LM_MANIFEST_MAX_TENSORS 4096

/** A tensor as the manifest names it. */
typedef struct lm_mtensor {
	char *name;
	lm_dtype dtype;
	int rank;
	int64_t dims[LM_MAX_RANK];
	size_t nbytes;  /**< of the shape above */
	int batch_axis; /**< -1: the tensor holds no batch */
} lm_mtensor;

typedef struct lm_mslice {
	char *file;  /**< plain name inside the folder */
	char *label;
	int n_inputs, n_outputs, n_nodes;
	lm_mtensor *inputs, *outputs;
	char **nodes;
	double flops;
	size_t param_bytes, output_bytes, cut_bytes;
	int64_t arena_bytes; /**< -1: not known (not in the file) */
} lm_mslice;

typedef struct lm_manifest {
	char *source;
	int opset, ir_version;
	int node_granularity; /**< 1: "node", 0: "layer" */
	int64_t batch;        /**< the batch the shapes are at (>= 1) */
	char *batch_fixed;    /**< why no other batch works, or NULL */
	int n_inputs, n_outputs;
	lm_mtensor *inputs, *outputs;
	double total_flops;
	size_t total_param_bytes;
	int64_t arena_bytes; /**< -1: not known (not in the file) */
	int n_slices;
	lm_mslice *slices;
	char *dir; /**< the folder it was read from; NULL when built */
} lm_manifest;

/**
 * Read and check DIR/manifest.json.
 * @return 0; -ENOENT when DIR has no manifest (the message says DIR is not
 *         a slice folder); -EINVAL naming the file and the field that is
 *         wrong (format, version, a file name outside the folder...);
 *         -ENOMEM.
 */
int lm_manifest_load(const char *dir, lm_manifest **out, lm_error *e);

/** An empty manifest with room for n_slices slices (for the slicer). */
int lm_manifest_create(int n_slices, lm_manifest **out);

/**
 * Write m as JSON to path (atomically, under a temporary name of its own).
 * @return 0, -EIO / -errno naming the file, -ENOMEM.
 */
int lm_manifest_save(const lm_manifest *m, const char *path, lm_error *e);

/** m as indented JSON text (malloc'd, NUL-terminated), or NULL. */
char *lm_manifest_dumps(const lm_manifest *m);

/** Free; safe on NULL. */
void lm_manifest_free(lm_manifest *m);

/**
 * The path of slice i's file ("DIR/FILE") into buf, after checking that
 * it is a regular file inside the folder and not a symlink.
 * @return 0; -ENOENT; -EINVAL when it is a symlink or not a file;
 *         -ENAMETOOLONG.
 */
int lm_manifest_slice_path(const lm_manifest *m, int i, char *buf,
			   size_t len, lm_error *e);

/**
 * The tensors crossing cut k (-1 <= k < n_slices): the model's inputs for
 * k = -1; its outputs (manifest order) for k = n - 1; otherwise the model
 * inputs still read after k, then every slice output up to k still read
 * after k (or a model output), in slice order, each once.
 * @param out  set to a malloc'd array of pointers into m (free())
 * @return 0; -EINVAL for k out of range; -ENOMEM.
 */
int lm_manifest_cut(const lm_manifest *m, int k, const lm_mtensor ***out,
		    int *n, lm_error *e);

/**
 * Tensor t of manifest m at batch `batch`: its shape into dims (rank
 * t->rank) and, when nbytes is not NULL, its bytes.  Only the batch axis
 * changes.  @return 0; -EINVAL when the size overflows.
 */
int lm_mtensor_shape_at(const lm_manifest *m, const lm_mtensor *t,
			int64_t batch, int64_t *dims, size_t *nbytes);

/**
 * Whether the folder's slices run at `batch`: every batch unless the
 * model keeps its own ("batch_fixed").
 * @return 0; -EINVAL naming the folder, the batch it runs at and why.
 */
int lm_manifest_batch_ok(const lm_manifest *m, int64_t batch, lm_error *e);

/**
 * The batch to prepare the folder's slice files at for a run at `batch`
 * (lm_onnx_prepare_batch): `batch`, or 0 (each file as it declares) when
 * the model keeps its own batch, since a slice after the node that fixes
 * it may hold no batch at all.  Check lm_manifest_batch_ok first.
 */
static inline int64_t lm_manifest_slice_batch(const lm_manifest *m,
					      int64_t batch)
{
	return m->batch_fixed ? 0 : batch;
}

/**
 * Bytes of the tensors crossing cut k at batch `batch` (what is alive
 * between slice k and k + 1); 0 when k is out of range or a size
 * overflows.
 */
size_t lm_manifest_cut_bytes(const lm_manifest *m, int k, int64_t batch);

/**
 * Bytes of the model's inputs at batch `batch`; 0 when a size overflows.
 */
size_t lm_manifest_input_bytes(const lm_manifest *m, int64_t batch);

/*
 * The dataplane's bundle, the unit tensors cross an edge in: a header of
 * LM_BUNDLE_HEAD bytes, then each tensor of the cut at an offset aligned
 * to LM_BUNDLE_ALIGN, at the batch of the pipeline; a pool adds
 * LM_BUNDLE_POOL_HEAD bytes per bundle.  laminad lays bundles out so
 * (dataplane/bundle.h checks the header) and `lamina bench` records these
 * sizes in the profile, so the planner charges what laminad allocates.
 */
#define LM_BUNDLE_HEAD 64
#define LM_BUNDLE_ALIGN 64
#define LM_BUNDLE_POOL_HEAD 64

/**
 * Bytes one bundle of cut k takes in laminad's pool at batch `batch`:
 * LM_BUNDLE_POOL_HEAD + LM_BUNDLE_HEAD + each tensor rounded up to
 * LM_BUNDLE_ALIGN.  0 when k is out of range or a size overflows.
 */
size_t lm_manifest_bundle_bytes(const lm_manifest *m, int k, int64_t batch);

/** Index of the model input called name, or -1. */
int lm_manifest_input(const lm_manifest *m, const char *name);

/** Index of the model output called name, or -1. */
int lm_manifest_output(const lm_manifest *m, const char *name);

/** The slice whose nodes include name, searching from slice `from` on;
 *  -1 when none has it. */
int lm_manifest_slice_of_node(const lm_manifest *m, int from,
			      const char *name);

/** Set a tensor's name and shape (bytes computed, no batch axis); 0,
 *  -EINVAL, -ENOMEM. */
int lm_mtensor_set(lm_mtensor *t, const char *name, lm_dtype dtype, int rank,
		   const int64_t *dims);

#ifdef __cplusplus
}
#endif

#endif
