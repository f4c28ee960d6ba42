/*
 * oip.c: the Open Inference Protocol's inference bodies (see oip.h for
 * the format): the request `lamina infer --url` sends, in JSON or with
 * the binary tensor data extension, and the answer it reads, field by
 * field, trusting nothing in it.  jansson parses answers; requests are
 * written as text into a memory stream (a tensor's data in JSON can be
 * millions of numbers, which would be as many json_t objects).
 */
#include "oip.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "lamina/oip_types.h"

/* Outputs an answer may hold (a bound on what is allocated per answer). */
#define OIP_MAX_OUTPUTS 1024

/* BF16 has no .npy form: refused here */
static const char *datatype(lm_dtype t)
{
	return t == LM_DT_BFLOAT16 ? NULL : lm_oip_datatype(t);
}

char *oip_model_path(const char *name, const char *suffix)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(name), k = strlen("/v2/models/");
	char *p = malloc(k + 3 * n + strlen(suffix) + 1), *o;
	if (!p)
		return NULL;
	o = p + k;
	memcpy(p, "/v2/models/", k);
	for (size_t i = 0; i < n; i++) { /* RFC 3986's unreserved as is */
		unsigned char ch = (unsigned char)name[i];
		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || strchr("-._~", ch)) {
			*o++ = (char)ch;
		} else {
			*o++ = '%';
			*o++ = hex[ch >> 4];
			*o++ = hex[ch & 15];
		}
	}
	strcpy(o, suffix);
	return p;
}

/* A text from the wire made fit for a one-line message: at most n - 1
 * bytes, control characters as spaces, runs of spaces as one. */
static const char *one_line(const char *s, size_t len, char *buf, size_t n)
{
	size_t o = 0;
	for (size_t i = 0; i < len && o + 1 < n; i++) {
		char c = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? ' ' : s[i];
		if (c == ' ' && (o == 0 || buf[o - 1] == ' '))
			continue;
		buf[o++] = c;
	}
	while (o && buf[o - 1] == ' ')
		o--;
	buf[o] = 0;
	return buf;
}

/* A name from the wire for a message ("?" when it is not a string). */
#define SAFE_NAME(s, buf) \
	one_line((s) ? (s) : "?", (s) ? strlen(s) : 1, (buf), sizeof(buf))

/* ---- the request ---- */

/* A JSON string (escaped by jansson); -EINVAL when s is not UTF-8. */
static int put_string(FILE *f, const char *s)
{
	json_t *j = json_string(s);
	if (!j)
		return -EINVAL;
	int rc = json_dumpf(j, f, JSON_ENCODE_ANY) ? -ENOMEM : 0;
	json_decref(j);
	return rc;
}

/* Whether s is a JSON number literal (RFC 8259's grammar). */
static int is_json_number(const char *s)
{
	if (*s == '-')
		s++;
	if (*s == '0')
		s++;
	else if (*s >= '1' && *s <= '9')
		while (*s >= '0' && *s <= '9')
			s++;
	else
		return 0;
	if (*s == '.') {
		if (!(*++s >= '0' && *s <= '9'))
			return 0;
		while (*s >= '0' && *s <= '9')
			s++;
	}
	if (*s == 'e' || *s == 'E') {
		s++;
		if (*s == '+' || *s == '-')
			s++;
		if (!(*s >= '0' && *s <= '9'))
			return 0;
		while (*s >= '0' && *s <= '9')
			s++;
	}
	return *s == 0;
}

static int put_params(FILE *f, const oip_request *q, lm_error *e)
{
	int def = q->binary && !q->n_out, first = 1;
	for (int i = 0; i < q->n_params; i++)
		if (!strcmp(q->params[i].key, "binary_data_output"))
			def = 0; /* the user's word stands */
	if (!def && !q->n_params)
		return 0;
	fputs("\"parameters\":{", f);
	for (int i = 0; i < q->n_params; i++) {
		const char *v = q->params[i].value;
		if (!first)
			fputc(',', f);
		first = 0;
		if (put_string(f, q->params[i].key))
			return lm_fail(e, -EINVAL, "parameter '%s' is not UTF-8",
				       q->params[i].key);
		fputc(':', f);
		if (!strcmp(v, "true") || !strcmp(v, "false") ||
		    is_json_number(v))
			fputs(v, f);
		else if (put_string(f, v))
			return lm_fail(e, -EINVAL, "parameter %s: value is not "
				       "UTF-8", q->params[i].key);
	}
	if (def)
		fprintf(f, "%s\"binary_data_output\":true", first ? "" : ",");
	fputs("},", f);
	return 0;
}

/* The elements of t as a flat JSON array, each written back exactly;
 * -EINVAL for NaN or infinity, -ENOMEM. */
static int put_data(FILE *f, const lm_tensor *t)
{
	size_t n = t->nbytes / lm_dtype_size(t->dtype);
	json_t *a = json_array();
	int rc = a ? 0 : -ENOMEM;
	for (size_t i = 0; !rc && i < n; i++) {
		json_t *v = lm_oip_elem_to_json(t->dtype, t->data, i);
		rc = !v ? -EINVAL : json_array_append_new(a, v) ? -ENOMEM : 0;
	}
	if (!rc && json_dumpf(a, f, JSON_COMPACT | JSON_REAL_PRECISION(
					    lm_oip_precision(t->dtype))))
		rc = -ENOMEM;
	json_decref(a);
	return rc;
}

static int put_input(FILE *f, const char *name, const lm_tensor *t,
		     int binary, lm_error *e)
{
	const char *dt = datatype(t->dtype);
	if (!dt)
		return lm_fail(e, -EINVAL, "input '%s': %s has no Open "
			       "Inference Protocol datatype", name,
			       lm_dtype_name(t->dtype));
	fputs("{\"name\":", f);
	if (put_string(f, name))
		return lm_fail(e, -EINVAL, "input name is not UTF-8");
	fputs(",\"shape\":[", f);
	for (int d = 0; d < t->rank; d++)
		fprintf(f, "%s%" PRId64, d ? "," : "", t->dims[d]);
	fprintf(f, "],\"datatype\":\"%s\",", dt);
	if (binary) {
		fprintf(f, "\"parameters\":{\"binary_data_size\":%zu}}",
			t->nbytes);
		return 0;
	}
	fputs("\"data\":", f);
	int rc = put_data(f, t);
	if (rc == -EINVAL)
		return lm_fail(e, rc, "input '%s' holds NaN or infinity, "
			       "which JSON cannot carry; leave out --json",
			       name);
	if (rc)
		return lm_fail(e, rc, "out of memory");
	fputc('}', f);
	return 0;
}

int oip_request_write(const oip_request *q, char **body, size_t *len,
		      size_t *json_len, lm_error *e)
{
	char *buf = NULL;
	size_t size = 0;
	int rc = 0;
	*body = NULL;
	FILE *f = open_memstream(&buf, &size);
	if (!f)
		return lm_fail(e, -ENOMEM, "out of memory");
	fputc('{', f);
	if (q->id) {
		fputs("\"id\":", f);
		if ((rc = put_string(f, q->id))) {
			lm_fail(e, rc, "request id is not UTF-8");
			goto out;
		}
		fputc(',', f);
	}
	if ((rc = put_params(f, q, e)))
		goto out;
	fputs("\"inputs\":[", f);
	for (int i = 0; i < q->n_in; i++) {
		if (i)
			fputc(',', f);
		if ((rc = put_input(f, q->in_names[i], &q->in[i], q->binary,
				    e)))
			goto out;
	}
	fputc(']', f);
	if (q->n_out) {
		fputs(",\"outputs\":[", f);
		for (int i = 0; i < q->n_out; i++) {
			fputs(i ? ",{\"name\":" : "{\"name\":", f);
			if ((rc = put_string(f, q->out_names[i]))) {
				lm_fail(e, rc, "output name is not UTF-8");
				goto out;
			}
			fprintf(f, ",\"parameters\":{\"binary_data\":%s}}",
				q->binary ? "true" : "false");
		}
		fputc(']', f);
	}
	fputc('}', f);
	if (fflush(f)) {
		rc = lm_fail(e, -ENOMEM, "out of memory");
		goto out;
	}
	*json_len = size;
	for (int i = 0; q->binary && i < q->n_in; i++)
		fwrite(q->in[i].data, 1, q->in[i].nbytes, f);
out:
	if (fclose(f) && !rc)
		rc = lm_fail(e, -ENOMEM, "out of memory");
	if (rc) {
		free(buf);
		return rc;
	}
	*body = buf;
	*len = size;
	return 0;
}

/* ---- the answer ---- */

static int dims_of(json_t *shape, lm_tensor *t, lm_dtype dt, const char *nm,
		   lm_error *e)
{
	int64_t dims[LM_MAX_RANK];
	size_t i, rank = json_array_size(shape);
	json_t *d;
	if (!json_is_array(shape) || rank > LM_MAX_RANK)
		return lm_fail(e, -EPROTO, "output '%s': shape is not a list "
			       "of at most %d dims", nm, LM_MAX_RANK);
	json_array_foreach(shape, i, d) {
		if (!json_is_integer(d) || json_integer_value(d) < 0)
			return lm_fail(e, -EPROTO, "output '%s': shape holds "
				       "something other than a dim >= 0", nm);
		dims[i] = json_integer_value(d);
	}
	size_t nbytes;
	if (lm_shape_bytes(dt, (int)rank, dims, &nbytes))
		return lm_fail(e, -EPROTO, "output '%s': shape too large for "
			       "memory", nm);
	lm_tensor_set_shape(t, dt, (int)rank, dims);
	t->nbytes = nbytes;
	return 0;
}

/* Count the numbers of nested array a (at most depth levels), or -1. */
static long long count_leaves(json_t *a, int depth)
{
	size_t i;
	json_t *v;
	long long n = 0;
	json_array_foreach(a, i, v) {
		if (json_is_array(v)) {
			long long k = depth > 1 ? count_leaves(v, depth - 1) : -1;
			if (k < 0)
				return -1;
			n += k;
		} else {
			n++;
		}
	}
	return n;
}

/* Fill t from nested array a, from element *i on. */
static int fill(lm_tensor *t, json_t *a, size_t *i)
{
	size_t j;
	json_t *v;
	json_array_foreach(a, j, v) {
		if (json_is_array(v) ? fill(t, v, i)
				     : lm_oip_elem_from_json(t->dtype, t->data,
							     (*i)++, v))
			return -1;
	}
	return 0;
}

static int read_data(json_t *data, lm_tensor *t, const char *nm,
		     lm_error *e)
{
	char shape[128];
	size_t numel = t->nbytes / lm_dtype_size(t->dtype), i = 0;
	long long n = json_is_array(data) ? count_leaves(data, LM_MAX_RANK)
					  : -1;
	if (n < 0)
		return lm_fail(e, -EPROTO, "output '%s': no binary_data_size "
			       "and no \"data\" list (of at most %d levels)",
			       nm, LM_MAX_RANK);
	if ((unsigned long long)n != numel)
		return lm_fail(e, -EPROTO, "output '%s': %lld values for "
			       "shape %s", nm, n,
			       lm_shape_str(t->rank, t->dims, shape,
					    sizeof(shape)));
	lm_tensor keep = *t;
	if (lm_tensor_alloc(t, keep.dtype, keep.rank, keep.dims))
		return lm_fail(e, -ENOMEM, "out of memory");
	if (fill(t, data, &i))
		return lm_fail(e, -EPROTO, "output '%s': \"data\" holds a "
			       "value that is not %s (or out of its range)",
			       nm, datatype(t->dtype));
	return 0;
}

static int read_output(json_t *o, const char *bin, size_t bin_len,
		       size_t *off, char **name, lm_tensor *t, lm_error *e)
{
	char nm[80], shape[128];
	const char *s = json_string_value(json_object_get(o, "name"));
	if (!json_is_object(o) || !s)
		return lm_fail(e, -EPROTO, "an output has no name");
	SAFE_NAME(s, nm);
	if (!(*name = strdup(s)))
		return lm_fail(e, -ENOMEM, "out of memory");
	const char *dts = json_string_value(json_object_get(o, "datatype"));
	lm_dtype dt = dts ? lm_oip_dtype(dts) : LM_DT_UNDEFINED;
	if (dt == LM_DT_BFLOAT16)
		dt = LM_DT_UNDEFINED;
	char dtbuf[32];
	if (dt == LM_DT_UNDEFINED)
		return lm_fail(e, -EPROTO, "output '%s': datatype '%s' is not "
			       "one lamina infer reads (BOOL, UINT8..64, "
			       "INT8..64, FP16, FP32, FP64)", nm,
			       SAFE_NAME(dts, dtbuf));
	int rc = dims_of(json_object_get(o, "shape"), t, dt, nm, e);
	if (rc)
		return rc;
	json_t *params = json_object_get(o, "parameters");
	json_t *size = json_object_get(params, "binary_data_size");
	if (params && !json_is_object(params))
		return lm_fail(e, -EPROTO, "output '%s': parameters is not an "
			       "object", nm);
	if (!size)
		return read_data(json_object_get(o, "data"), t, nm, e);
	if (!json_is_integer(size) || json_integer_value(size) < 0 ||
	    (unsigned long long)json_integer_value(size) > bin_len - *off)
		return lm_fail(e, -EPROTO, "output '%s': binary_data_size "
			       "does not fit the %zu bytes left", nm,
			       bin_len - *off);
	size_t n = (size_t)json_integer_value(size);
	if (n != t->nbytes)
		return lm_fail(e, -EPROTO, "output '%s': binary_data_size %zu "
			       "for shape %s of %s (%zu bytes)", nm, n,
			       lm_shape_str(t->rank, t->dims, shape,
					    sizeof(shape)), dts, t->nbytes);
	lm_tensor keep = *t;
	if (lm_tensor_alloc(t, keep.dtype, keep.rank, keep.dims))
		return lm_fail(e, -ENOMEM, "out of memory");
	if (n)
		memcpy(t->data, bin + *off, n);
	*off += n;
	return 0;
}

int oip_answer_read(const char *body, size_t len, long long json_len,
		    const char *id, const char *const *want, int n_want,
		    oip_answer *a, lm_error *e)
{
	json_error_t je;
	char buf[80];
	size_t jlen = len, off = 0, i;
	json_t *root = NULL, *outs, *o;
	int rc = 0;

	memset(a, 0, sizeof(*a));
	if (json_len >= 0) {
		if ((unsigned long long)json_len > len)
			return lm_fail(e, -EPROTO, "Inference-Header-Content-"
				       "Length %lld is past the %zu-byte body",
				       json_len, len);
		jlen = (size_t)json_len;
	}
	if (!jlen)
		return lm_fail(e, -EPROTO, "the answer is empty");
	root = json_loadb(body, jlen, JSON_REJECT_DUPLICATES, &je);
	if (!root)
		return lm_fail(e, -EPROTO, "the answer is not JSON (%s)%s",
			       one_line(je.text, strlen(je.text), buf,
					sizeof(buf)),
			       strstr(je.text, "too big integer") ?
			       "; integers past 2^63-1 are read in binary "
			       "only: leave out --json" : "");
	outs = json_object_get(root, "outputs");
	if (!json_is_object(root) || !json_is_array(outs)) {
		rc = lm_fail(e, -EPROTO, "the answer has no \"outputs\" list");
		goto out;
	}
	json_t *rid = json_object_get(root, "id");
	if (id && rid && (!json_is_string(rid) ||
			  strcmp(json_string_value(rid), id))) {
		rc = lm_fail(e, -EPROTO, "the answer is not for request %s",
			     id);
		goto out;
	}
	size_t n = json_array_size(outs);
	if (n > OIP_MAX_OUTPUTS) {
		rc = lm_fail(e, -EPROTO, "the answer has %zu outputs, more "
			     "than %d", n, OIP_MAX_OUTPUTS);
		goto out;
	}
	a->names = calloc(n ? n : 1, sizeof(*a->names));
	a->t = calloc(n ? n : 1, sizeof(*a->t));
	if (!a->names || !a->t) {
		rc = lm_fail(e, -ENOMEM, "out of memory");
		goto out;
	}
	json_array_foreach(outs, i, o) {
		a->n = (int)i + 1;
		rc = read_output(o, body + jlen, len - jlen, &off,
				 &a->names[i], &a->t[i], e);
		if (rc)
			goto out;
		for (size_t j = 0; j < i; j++)
			if (!strcmp(a->names[j], a->names[i])) {
				rc = lm_fail(e, -EPROTO, "the answer has "
					     "output '%s' twice",
					     SAFE_NAME(a->names[i], buf));
				goto out;
			}
	}
	if (off != len - jlen) {
		rc = lm_fail(e, -EPROTO, "%zu bytes of binary data belong to "
			     "no output", len - jlen - off);
		goto out;
	}
	for (int w = 0; w < n_want; w++) {
		int found = 0;
		for (int j = 0; j < a->n && !found; j++)
			found = !strcmp(a->names[j], want[w]);
		if (!found) {
			rc = lm_fail(e, -EPROTO, "the answer has no output "
				     "'%s'", want[w]);
			goto out;
		}
	}
out:
	json_decref(root);
	return rc;
}

void oip_answer_free(oip_answer *a)
{
	for (int i = 0; i < a->n; i++) {
		free(a->names[i]);
		lm_tensor_free(&a->t[i]);
	}
	free(a->names);
	free(a->t);
	memset(a, 0, sizeof(*a));
}

/* The "name" strings of list (an array of objects) into *names. */
static int names_of(json_t *list, char ***names, int *n, const char *what,
		    lm_error *e)
{
	size_t i;
	json_t *o;
	if (!list)
		return 0;
	if (!json_is_array(list) || json_array_size(list) > OIP_MAX_OUTPUTS)
		return lm_fail(e, -EPROTO, "the model's %s are not a list of at "
			       "most %d", what, OIP_MAX_OUTPUTS);
	*names = calloc(json_array_size(list) + 1, sizeof(**names));
	if (!*names)
		return lm_fail(e, -ENOMEM, "out of memory");
	json_array_foreach(list, i, o) {
		const char *s = json_string_value(json_object_get(o, "name"));
		if (!s)
			return lm_fail(e, -EPROTO, "one of the model's %s has "
				       "no name", what);
		if (!((*names)[i] = strdup(s)))
			return lm_fail(e, -ENOMEM, "out of memory");
		*n = (int)i + 1;
	}
	return 0;
}

int oip_model_read(const char *body, size_t len, oip_model *m, lm_error *e)
{
	json_error_t je;
	char buf[80];
	memset(m, 0, sizeof(*m));
	json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
	if (!root)
		return lm_fail(e, -EPROTO, "the model metadata is not JSON (%s)",
			       one_line(je.text, strlen(je.text), buf,
					sizeof(buf)));
	int rc = json_is_object(root) ? 0 :
		lm_fail(e, -EPROTO, "the model metadata is not an object");
	if (!rc)
		rc = names_of(json_object_get(root, "inputs"), &m->in,
			      &m->n_in, "inputs", e);
	if (!rc)
		rc = names_of(json_object_get(root, "outputs"), &m->out,
			      &m->n_out, "outputs", e);
	json_decref(root);
	return rc;
}

void oip_model_free(oip_model *m)
{
	for (int i = 0; i < m->n_in; i++)
		free(m->in[i]);
	for (int i = 0; i < m->n_out; i++)
		free(m->out[i]);
	free(m->in);
	free(m->out);
	memset(m, 0, sizeof(*m));
}

const char *oip_error_text(const char *body, size_t len, char *buf,
			   size_t n)
{
	json_t *root = json_loadb(body, len, 0, NULL);
	const char *s = json_string_value(json_object_get(root, "error"));
	if (s)
		one_line(s, strlen(s), buf, n);
	else
		one_line(body, len, buf, n);
	json_decref(root);
	if (!buf[0])
		snprintf(buf, n, "(no error text)");
	return buf;
}
