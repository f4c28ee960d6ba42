/*
 * common.h: what every lamina module shares: the error convention, element
 * types, checked size arithmetic and the plain tensor descriptor.  It is
 * the top of common/, the bottom library every other part links (beside
 * it: npy.h for .npy files, log.h for logging, fsutil.h for files and
 * folders).
 *
 * Errors: functions that can fail return 0 or a negative errno-style code
 * and, when given an lm_error, leave a one-line message in it naming the
 * input and the problem.  The CLI prints that line and nothing else.
 */
#ifndef LAMINA_COMMON_H
#define LAMINA_COMMON_H

#include <errno.h>
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

/** IEEE binary16 (FLOAT16) and bfloat16 (BFLOAT16) to float and back,
 *  rounding to nearest even (NaN stays NaN, overflow goes to infinity). */
float lm_half_to_float(uint16_t h);
uint16_t lm_float_to_half(float f);
float lm_bf16_to_float(uint16_t h);
uint16_t lm_float_to_bf16(float f);
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

/** Number of elements of a shape; 1 for rank 0, -1 if any dim is unknown
 *  or the product does not fit an int64_t. */
int64_t lm_shape_numel(int rank, const int64_t *dims);

/* ---- checked size arithmetic: every size taken from a file or the wire
 * goes through these before it is used ---- */

/** *out = a * b; 0, or -EOVERFLOW when it does not fit a size_t. */
static inline int lm_size_mul(size_t a, size_t b, size_t *out)
{
	return __builtin_mul_overflow(a, b, out) ? -EOVERFLOW : 0;
}

/** *out = a + b; 0, or -EOVERFLOW when it does not fit a size_t. */
static inline int lm_size_add(size_t a, size_t b, size_t *out)
{
	return __builtin_add_overflow(a, b, out) ? -EOVERFLOW : 0;
}

/**
 * Bytes of a dense tensor of this type and shape.
 * @return 0; -EINVAL for a type without a fixed size, a negative (unknown)
 *         dim or a rank outside 0..LM_MAX_RANK; -EOVERFLOW when the
 *         product does not fit a size_t.
 */
int lm_shape_bytes(lm_dtype dtype, int rank, const int64_t *dims,
		   size_t *out);

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
