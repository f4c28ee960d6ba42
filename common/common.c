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
		stride *= dims[i] > 0 ? dims[i] : 1;
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
