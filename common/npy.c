/*
 * npy.c: NumPy .npy files, the tensor format of lamina's command line.
 *
 * Format (numpy.lib.format): the magic "\x93NUMPY", a version byte pair, a
 * header length (2 bytes in 1.0, 4 in 2.0 and 3.0), then a Python dict
 * literal with 'descr', 'fortran_order' and 'shape', padded with spaces and
 * a newline; the data follows in C order.  Only little-endian, C-order,
 * fixed-size types are read; everything in the header and the file size is
 * checked before use.  No Debian package offers this for C, hence this file.
 */
#include "lamina/npy.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
	const char *descr;
	lm_dtype dtype;
} npy_types[] = {
	{ "<f4", LM_DT_FLOAT },  { "<f8", LM_DT_DOUBLE }, { "<f2", LM_DT_FLOAT16 },
	{ "<i8", LM_DT_INT64 },  { "<i4", LM_DT_INT32 },  { "<i2", LM_DT_INT16 },
	{ "|i1", LM_DT_INT8 },   { "<u8", LM_DT_UINT64 }, { "<u4", LM_DT_UINT32 },
	{ "<u2", LM_DT_UINT16 }, { "|u1", LM_DT_UINT8 },  { "|b1", LM_DT_BOOL },
};

/* The value text after 'key': in a header dict, or NULL. */
static const char *dict_value(const char *hdr, const char *key)
{
	char quoted[32];
	snprintf(quoted, sizeof(quoted), "'%s'", key);
	const char *p = strstr(hdr, quoted);
	if (!p)
		return NULL;
	p += strlen(quoted);
	while (isspace((unsigned char)*p))
		p++;
	if (*p != ':')
		return NULL;
	p++;
	while (isspace((unsigned char)*p))
		p++;
	return p;
}

static int parse_header(const char *path, const char *hdr, lm_tensor *t,
			lm_error *e)
{
	const char *d = dict_value(hdr, "descr");
	const char *f = dict_value(hdr, "fortran_order");
	const char *s = dict_value(hdr, "shape");
	lm_dtype dtype = LM_DT_UNDEFINED;
	int64_t dims[LM_MAX_RANK];
	char shape_buf[160];
	int rank = 0;

	if (!d || !f || !s)
		return lm_fail(e, -EINVAL, "%s: .npy header lacks descr, "
			       "fortran_order or shape", path);
	for (size_t i = 0; i < sizeof(npy_types) / sizeof(npy_types[0]); i++) {
		size_t n = strlen(npy_types[i].descr);
		if ((*d == '\'' || *d == '"') &&
		    !strncmp(d + 1, npy_types[i].descr, n) && d[n + 1] == *d)
			dtype = npy_types[i].dtype;
		/* single-byte types may be written '<i1' or '|i1' */
		if (npy_types[i].descr[0] == '|' && *d == '\'' &&
		    d[1] == '<' && !strncmp(d + 2, npy_types[i].descr + 1, 2))
			dtype = npy_types[i].dtype;
	}
	if (dtype == LM_DT_UNDEFINED) {
		char what[16] = "";
		sscanf(d, "%15[^,}]", what);
		return lm_fail(e, -EINVAL, "%s: element type %s is not supported "
			       "(little-endian numbers and bools only)", path,
			       what);
	}
	if (strncmp(f, "False", 5) != 0)
		return lm_fail(e, -EINVAL, "%s: Fortran-order arrays are not "
			       "supported; save with np.ascontiguousarray", path);
	if (*s != '(')
		return lm_fail(e, -EINVAL, "%s: bad shape in .npy header", path);
	for (s++;;) {
		while (isspace((unsigned char)*s) || *s == ',')
			s++;
		if (*s == ')')
			break;
		char *end;
		errno = 0;
		long long v = strtoll(s, &end, 10);
		if (end == s || errno || v < 0 || rank == LM_MAX_RANK)
			return lm_fail(e, -EINVAL, "%s: bad shape in .npy "
				       "header (rank at most %d)", path,
				       LM_MAX_RANK);
		dims[rank++] = v;
		s = end;
		while (*s == 'L' || isspace((unsigned char)*s))
			s++;
		if (*s != ',' && *s != ')')
			return lm_fail(e, -EINVAL, "%s: bad shape in .npy "
				       "header", path);
	}
	size_t nbytes;
	if (lm_shape_bytes(dtype, rank, dims, &nbytes) ||
	    nbytes > (size_t)INT64_MAX)
		return lm_fail(e, -EINVAL, "%s: shape (%s) is too large for "
			       "memory", path, lm_shape_str(rank, dims, shape_buf,
							    sizeof(shape_buf)));
	lm_tensor_set_shape(t, dtype, rank, dims);
	t->nbytes = nbytes;
	return 0;
}

int lm_npy_read(const char *path, lm_tensor *t, lm_error *e)
{
	unsigned char pre[12];
	char *hdr = NULL;
	size_t hlen, pre_len;
	int rc;
	memset(t, 0, sizeof(*t));
	FILE *f = fopen(path, "rb");
	if (!f)
		return lm_fail(e, -errno, "%s: %s", path, strerror(errno));
	if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0) {
		rc = lm_fail(e, -EINVAL, "%s: not a .npy file", path);
		goto out;
	}
	if (pre[6] == 1) {
		hlen = pre[8] | (size_t)pre[9] << 8;
		pre_len = 10;
	} else if (pre[6] == 2 || pre[6] == 3) {
		if (fread(pre + 10, 1, 2, f) != 2) {
			rc = lm_fail(e, -EINVAL, "%s: truncated .npy header",
				     path);
			goto out;
		}
		hlen = pre[8] | (size_t)pre[9] << 8 | (size_t)pre[10] << 16 |
		       (size_t)pre[11] << 24;
		pre_len = 12;
	} else {
		rc = lm_fail(e, -EINVAL, "%s: .npy version %d is not supported",
			     path, pre[6]);
		goto out;
	}
	if (hlen > 1 << 20 || !(hdr = malloc(hlen + 1)) ||
	    fread(hdr, 1, hlen, f) != hlen) {
		rc = lm_fail(e, -EINVAL, "%s: truncated .npy header", path);
		goto out;
	}
	hdr[hlen] = '\0';
	rc = parse_header(path, hdr, t, e);
	if (rc)
		goto out;
	size_t nbytes = t->nbytes;
	long size = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
	if (size < 0 || (size_t)size < pre_len + hlen ||
	    (size_t)size - (pre_len + hlen) != nbytes) {
		rc = lm_fail(e, -EINVAL, "%s: data is %ld bytes, its shape "
			     "needs %zu", path,
			     size < 0 ? -1L : size - (long)(pre_len + hlen),
			     nbytes);
		t->nbytes = 0;
		goto out;
	}
	fseek(f, (long)(pre_len + hlen), SEEK_SET);
	t->data = malloc(nbytes ? nbytes : 1);
	if (!t->data) {
		rc = lm_fail(e, -ENOMEM, "%s: out of memory", path);
		goto out;
	}
	t->owned = 1;
	t->nbytes = nbytes;
	if (fread(t->data, 1, nbytes, f) != nbytes) {
		rc = lm_fail(e, -EIO, "%s: read failed", path);
		lm_tensor_free(t);
	}
out:
	free(hdr);
	fclose(f);
	return rc;
}

int lm_npy_write(const char *path, const lm_tensor *t, lm_error *e)
{
	const char *descr = NULL;
	char hdr[512], shape[200];
	size_t off = 0;
	for (size_t i = 0; i < sizeof(npy_types) / sizeof(npy_types[0]); i++)
		if (npy_types[i].dtype == t->dtype)
			descr = npy_types[i].descr;
	if (!descr)
		return lm_fail(e, -EINVAL, "%s: cannot write %s as .npy", path,
			       lm_dtype_name(t->dtype));
	shape[0] = '\0';
	for (int i = 0; i < t->rank; i++)
		off += (size_t)snprintf(shape + off, sizeof(shape) - off,
					"%lld,%s", (long long)t->dims[i],
					i + 1 < t->rank ? " " : "");
	if (t->rank > 1)
		shape[off - 1] = '\0'; /* (2, 3) but (2,) */
	int n = snprintf(hdr, sizeof(hdr), "{'descr': '%s', 'fortran_order': "
			 "False, 'shape': (%s), }", descr, shape);
	/* pad so that magic + length + header is a multiple of 64 */
	size_t total = ((size_t)n + 10 + 1 + 63) / 64 * 64, hlen = total - 10;
	memset(hdr + n, ' ', hlen - 1 - (size_t)n);
	hdr[hlen - 1] = '\n';
	size_t nbytes;
	if (lm_shape_bytes(t->dtype, t->rank, t->dims, &nbytes))
		return lm_fail(e, -EINVAL, "%s: a tensor without a valid shape",
			       path);
	FILE *f = fopen(path, "wb");
	if (!f)
		return lm_fail(e, -errno, "%s: %s", path, strerror(errno));
	unsigned char pre[10] = { 0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0,
				  (unsigned char)(hlen & 0xff),
				  (unsigned char)(hlen >> 8) };
	int ok = fwrite(pre, 1, 10, f) == 10 &&
		 fwrite(hdr, 1, hlen, f) == hlen &&
		 fwrite(t->data, 1, nbytes, f) == nbytes;
	if (fclose(f) != 0 || !ok)
		return lm_fail(e, -EIO, "%s: write failed", path);
	return 0;
}
