/*
 * common.c: error messages, element types, checked sizes and plain tensors
 * shared by every lamina module (see lamina/common.h).
 */
#include "lamina/common.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int lm_fail(lm_error *e, int rc, const char *fmt, ...)
{
	if (e) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
		va_end(ap);
	}
	return rc;
}

int lm_fail_prefix(lm_error *e, int rc, const char *fmt, ...)
{
	if (e) {
		char prefix[256], old[sizeof(e->msg)];
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(prefix, sizeof(prefix), fmt, ap);
		va_end(ap);
		memcpy(old, e->msg, sizeof(old));
		old[sizeof(old) - 1] = '\0';
		if (snprintf(e->msg, sizeof(e->msg), "%s: %s", prefix, old) >=
		    (int)sizeof(e->msg))
			memcpy(e->msg + sizeof(e->msg) - 4, "...", 4);
	}
	return rc;
}

static const struct {
	lm_dtype t;
	size_t size;
	const char *name;
} dtypes[] = {
	{ LM_DT_FLOAT, 4, "float32" },   { LM_DT_UINT8, 1, "uint8" },
	{ LM_DT_INT8, 1, "int8" },       { LM_DT_UINT16, 2, "uint16" },
	{ LM_DT_INT16, 2, "int16" },     { LM_DT_INT32, 4, "int32" },
	{ LM_DT_INT64, 8, "int64" },     { LM_DT_STRING, 0, "str" },
	{ LM_DT_BOOL, 1, "bool" },       { LM_DT_FLOAT16, 2, "float16" },
	{ LM_DT_DOUBLE, 8, "float64" },  { LM_DT_UINT32, 4, "uint32" },
	{ LM_DT_UINT64, 8, "uint64" },   { LM_DT_BFLOAT16, 2, "bfloat16" },
};

size_t lm_dtype_size(lm_dtype t)
{
	for (size_t i = 0; i < sizeof(dtypes) / sizeof(dtypes[0]); i++)
		if (dtypes[i].t == t)
			return dtypes[i].size;
	return 0;
}

const char *lm_dtype_name(lm_dtype t)
{
	for (size_t i = 0; i < sizeof(dtypes) / sizeof(dtypes[0]); i++)
		if (dtypes[i].t == t)
			return dtypes[i].name;
	return "undefined";
}

lm_dtype lm_dtype_from_name(const char *name)
{
	for (size_t i = 0; i < sizeof(dtypes) / sizeof(dtypes[0]); i++)
		if (strcmp(dtypes[i].name, name) == 0)
			return dtypes[i].t;
	return LM_DT_UNDEFINED;
}

int64_t lm_shape_numel(int rank, const int64_t *dims)
{
	int64_t n = 1;
	if (rank < 0)
		return -1;
	for (int i = 0; i < rank; i++) {
		/* Dims come from files: a product that overflows is as
		 * unusable as an unknown dim (and must not be computed). */
		if (dims[i] < 0 || __builtin_mul_overflow(n, dims[i], &n))
			return -1;
	}
	return n;
}

int lm_shape_bytes(lm_dtype dtype, int rank, const int64_t *dims,
		   size_t *out)
{
	size_t n = lm_dtype_size(dtype);
	if (n == 0 || rank < 0 || rank > LM_MAX_RANK)
		return -EINVAL;
	for (int i = 0; i < rank; i++) {
		if (dims[i] < 0)
			return -EINVAL;
		if ((uint64_t)dims[i] > SIZE_MAX ||
		    lm_size_mul(n, (size_t)dims[i], &n))
			return -EOVERFLOW;
	}
	*out = n;
	return 0;
}

void lm_tensor_set_shape(lm_tensor *t, lm_dtype dtype, int rank,
			 const int64_t *dims)
{
	int64_t stride = 1;
	t->dtype = dtype;
	t->rank = rank;
	for (int i = rank - 1; i >= 0; i--) {
		t->dims[i] = dims[i];
		t->strides[i] = stride;
		/* a shape with a zero dim has no bytes, whatever the others
		 * are (lm_shape_bytes passes it): its strides saturate */
		if (__builtin_mul_overflow(stride, dims[i] > 0 ? dims[i] : 1,
					   &stride))
			stride = INT64_MAX;
	}
}

int lm_tensor_alloc(lm_tensor *t, lm_dtype dtype, int rank,
		    const int64_t *dims)
{
	size_t nbytes;
	int rc = lm_shape_bytes(dtype, rank, dims, &nbytes);
	memset(t, 0, sizeof(*t));
	if (rc)
		return rc == -EOVERFLOW ? -ENOMEM : rc;
	lm_tensor_set_shape(t, dtype, rank, dims);
	t->nbytes = nbytes;
	t->data = calloc(1, t->nbytes ? t->nbytes : 1);
	if (!t->data)
		return -ENOMEM;
	t->owned = 1;
	return 0;
}

void lm_tensor_free(lm_tensor *t)
{
	if (!t)
		return;
	if (t->owned)
		free(t->data);
	t->data = NULL;
	t->owned = 0;
}

const char *lm_bytes_str(double bytes, char *buf, size_t len)
{
	static const char *units[] = { "B", "KiB", "MiB", "GiB", "TiB",
				       "PiB" };
	int u = 0;
	while (bytes >= 1024 && u < 5) {
		bytes /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%.0f B", bytes);
	else
		snprintf(buf, len, "%.1f %s", bytes, units[u]);
	return buf;
}

const char *lm_shape_str(int rank, const int64_t *dims, char *buf,
			 size_t len)
{
	size_t off = 0;
	if (len == 0)
		return buf;
	buf[0] = '\0';
	if (rank < 0) {
		snprintf(buf, len, "?");
		return buf;
	}
	if (rank == 0) {
		snprintf(buf, len, "scalar");
		return buf;
	}
	for (int i = 0; i < rank && off < len; i++) {
		int n = dims[i] < 0
			? snprintf(buf + off, len - off, "%s?", i ? "x" : "")
			: snprintf(buf + off, len - off, "%s%lld", i ? "x" : "",
				   (long long)dims[i]);
		if (n < 0)
			break;
		off += (size_t)n;
	}
	return buf;
}

/* ---- half precision ---- */

float lm_half_to_float(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16;
	uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
	if (exp == 0 && man == 0) {
		bits = sign;
	} else if (exp == 0) { /* subnormal: normalise */
		exp = 127 - 15 + 1;
		while (!(man & 0x400)) {
			man <<= 1;
			exp--;
		}
		bits = sign | exp << 23 | (man & 0x3ff) << 13;
	} else if (exp == 31) {
		bits = sign | 0x7f800000u | man << 13;
	} else {
		bits = sign | (exp + 127 - 15) << 23 | man << 13;
	}
	float f;
	memcpy(&f, &bits, sizeof(f));
	return f;
}

uint16_t lm_float_to_half(float f)
{
	uint32_t x;
	memcpy(&x, &f, sizeof(x));
	uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
	uint32_t ax = x & 0x7fffffffu;
	if (ax >= 0x7f800000u) /* infinity, NaN (kept quiet) */
		return sign | 0x7c00 | (ax > 0x7f800000u ? 0x200 : 0);
	if (ax >= 0x477ff000u) /* 65520 and up round to infinity */
		return sign | 0x7c00;
	if (ax < 0x38800000u) { /* below 2^-14: a half subnormal or 0 */
		uint32_t e = ax >> 23, shift = 126 - e;
		if (shift > 24)
			return sign;
		uint32_t man = (ax & 0x7fffff) | 0x800000;
		uint32_t r = man >> shift, rem = man & ((1u << shift) - 1);
		uint32_t half = 1u << (shift - 1);
		if (rem > half || (rem == half && (r & 1)))
			r++;
		return sign | (uint16_t)r;
	}
	uint32_t b = ax - ((127u - 15u) << 23);
	uint32_t r = b >> 13, rem = b & 0x1fff;
	if (rem > 0x1000 || (rem == 0x1000 && (r & 1)))
		r++; /* a carry into the exponent is the right answer */
	return sign | (uint16_t)r;
}

float lm_bf16_to_float(uint16_t h)
{
	uint32_t x = (uint32_t)h << 16;
	float f;
	memcpy(&f, &x, sizeof(f));
	return f;
}

uint16_t lm_float_to_bf16(float f)
{
	uint32_t x;
	memcpy(&x, &f, sizeof(x));
	if ((x & 0x7fffffffu) > 0x7f800000u) /* NaN: keep it one */
		return (uint16_t)((x >> 16) | 0x40);
	x += 0x7fff + ((x >> 16) & 1); /* nearest even */
	return (uint16_t)(x >> 16);
}
