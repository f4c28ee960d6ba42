/*
 * common.h: what every lamina module shares: the error convention, element
 * types and the plain tensor descriptor.
 *
 * Errors: functions that can fail return 0 or a negative errno-style code
 * and, when given an lm_error, leave a one-line message in it naming the
 * input and the problem.  The CLI prints that line and nothing else.
 */
#ifndef LAMINA_COMMON_H
#define LAMINA_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** One-line, human-readable description of the last failure. */
typedef struct lm_error {
	char msg[512];
} lm_error;

/**
 * Record a failure.  Formats like printf into e->msg (when e is non-NULL)
 * and returns rc, so a caller can write `return lm_fail(e, -EINVAL, ...)`.
 */
int lm_fail(lm_error *e, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/**
 * Prefix an existing message with context ("model.onnx: ..."), keeping it
 * one line.  Returns rc.
 */
int lm_fail_prefix(lm_error *e, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/** Element types; the values are ONNX's TensorProto.DataType numbers. */
typedef enum lm_dtype {
	LM_DT_UNDEFINED = 0,
	LM_DT_FLOAT = 1,
	LM_DT_UINT8 = 2,
	LM_DT_INT8 = 3,
	LM_DT_UINT16 = 4,
	LM_DT_INT16 = 5,
	LM_DT_INT32 = 6,
	LM_DT_INT64 = 7,
	LM_DT_STRING = 8,
	LM_DT_BOOL = 9,
	LM_DT_FLOAT16 = 10,
	LM_DT_DOUBLE = 11,
	LM_DT_UINT32 = 12,
	LM_DT_UINT64 = 13,
	LM_DT_BFLOAT16 = 16,
} lm_dtype;

/** Bytes per element, 0 for types without a fixed size (string, unknown). */
size_t lm_dtype_size(lm_dtype t);

/** Lower-case name ("float32", "int64", ...) as NumPy would spell it. */
const char *lm_dtype_name(lm_dtype t);

/** Inverse of lm_dtype_name; LM_DT_UNDEFINED when the name is unknown. */
lm_dtype lm_dtype_from_name(const char *name);

#define LM_MAX_RANK 8

/**
 * A dense tensor: element type, shape and row-major strides (in elements),
 * and the memory holding it.  Kernels read dtype, dims and strides from here
 * and never assume them.  `owned` says whether lm_tensor_free releases data.
 */
typedef struct lm_tensor {
	lm_dtype dtype;
	int rank;
	int64_t dims[LM_MAX_RANK];
	int64_t strides[LM_MAX_RANK];
	void *data;
	size_t nbytes;
	int owned;
} lm_tensor;

/** Number of elements of a shape; 1 for rank 0, -1 if any dim is unknown. */
int64_t lm_shape_numel(int rank, const int64_t *dims);

/** Fill t's dims and contiguous strides; leaves data alone. */
void lm_tensor_set_shape(lm_tensor *t, lm_dtype dtype, int rank,
			 const int64_t *dims);

/**
 * Allocate a zeroed, contiguous tensor of the given type and shape.
 * Returns 0, -EINVAL for an unknown dtype or dim, -ENOMEM.
 */
int lm_tensor_alloc(lm_tensor *t, lm_dtype dtype, int rank,
		    const int64_t *dims);

/** Release the tensor's data if it owns it; safe on NULL. */
void lm_tensor_free(lm_tensor *t);

/** Format a byte count for people ("512 B", "1.5 MiB") into buf. */
const char *lm_bytes_str(double bytes, char *buf, size_t len);

/** Format a shape as "1x3x224x224" ("?" for unknown dims) into buf. */
const char *lm_shape_str(int rank, const int64_t *dims, char *buf,
			 size_t len);

#ifdef __cplusplus
}
#endif

#endif
