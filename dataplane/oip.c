/*
 * oip.c: the Open Inference Protocol's JSON for one model (see oip.h).
 */
#include "oip.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

/* ---- requests ---- */

void lm_oip_request_free(lm_oip_request *r)
{
	for (int i = 0; i < LM_DP_MAX_TENSORS; i++) {
		free(r->owned[i]);
		r->owned[i] = NULL;
	}
}

static int is_float(lm_dtype t)
{
	return t == LM_DT_FLOAT || t == LM_DT_DOUBLE || t == LM_DT_FLOAT16 ||
	       t == LM_DT_BFLOAT16;
}

/* Walk JSON data (nested or flat arrays) into dst; *k counts elements,
 * at most n.  0, -E2BIG (too many elements), -EINVAL (an element of the
 * wrong kind), -ELOOP (nested deeper than any tensor). */
static int walk(lm_dtype t, const json_t *a, uint8_t *dst, size_t n,
		size_t *k, int depth)
{
	size_t i;
	const json_t *v;
	if (depth > LM_MAX_RANK)
		return -ELOOP;
	json_array_foreach(a, i, v) {
		int rc;
		if (json_is_array(v)) {
			if ((rc = walk(t, v, dst, n, k, depth + 1)))
				return rc;
			continue;
		}
		if (*k >= n)
			return -E2BIG;
		if ((rc = lm_oip_elem_from_json(t, dst, *k, v)))
			return rc;
		++*k;
	}
	return 0;
}

/* The names of a layout's tensors, "a, b, c", for error messages. */
static const char *names(const struct lm_dp_layout *l, char *buf, size_t len)
{
	size_t off = 0;
	buf[0] = '\0';
	for (int i = 0; i < l->n && off < len; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s'%s'",
					i ? ", " : "", l->t[i].name);
	return buf;
}

const char *lm_dp_layout_exact_why(const struct lm_dp_layout *in,
				   const struct lm_dp_layout *out,
				   unsigned batch, char *buf, size_t len)
{
	buf[0] = '\0';
	for (int side = 0; side < 2; side++) {
		const struct lm_dp_layout *l = side ? out : in;
		for (int i = 0; l->exact_batch && i < l->n; i++) {
			const struct lm_dp_tdesc *t = &l->t[i];
			char how[96];
			if (t->batch_axis < 0)
				snprintf(how, sizeof(how), "holds no batch");
			else if (t->dims[t->batch_axis] != batch)
				snprintf(how, sizeof(how), "holds %lld per "
					 "sample on axis %d (the batch merged "
					 "with another dim)",
					 (long long)(t->dims[t->batch_axis] /
						     batch),
					 t->batch_axis);
			else
				continue;
			snprintf(buf, len, "the model's %s '%s' %s, so a "
				 "request carries exactly the plan's batch of "
				 "%u", side ? "output" : "input", t->name, how,
				 batch);
			return buf;
		}
	}
	return buf;
}

int64_t lm_dp_shape_rows(const struct lm_dp_tdesc *t, int exact, int moved,
			 unsigned batch, int rank, const int64_t *dims)
{
	int ax = exact ? -1 : t->batch_axis;
	if (rank != t->rank)
		return 0;
	for (int k = 0; k < rank; k++)
		if (k != ax && dims[k] != t->dims[k])
			return 0;
	if (ax < 0)
		return batch;
	int64_t rows = dims[ax];
	if (rows < 1 || rows > batch || (moved && rows != 1 && rows != batch))
		return 0;
	return rows;
}

static int find(const struct lm_dp_layout *l, const char *name)
{
	for (int i = 0; name && i < l->n; i++)
		if (!strcmp(l->t[i].name, name))
			return i;
	return -1;
}

/* One request input: name, datatype, shape, then its data (JSON) or its
 * binary_data_size bytes from *bin. */
static int decode_input(const json_t *j, const struct lm_dp_layout *in,
			const struct lm_dp_layout *out, unsigned batch,
			lm_oip_request *r, uint8_t *seen,
			const uint8_t **bin, size_t *bin_left, int ordinal,
			lm_error *e)
{
	char list[512], want[128];
	const char *name = json_string_value(json_object_get(j, "name"));
	const char *dt = json_string_value(json_object_get(j, "datatype"));
	const json_t *shape = json_object_get(j, "shape");
	const json_t *params = json_object_get(j, "parameters");
	const json_t *data = json_object_get(j, "data");
	if (!json_is_object(j) || !name)
		return lm_fail(e, -EINVAL, "inputs[%d] has no \"name\"",
			       ordinal);
	int i = find(in, name);
	if (i < 0)
		return lm_fail(e, -EINVAL, "unknown input '%.64s': the model's "
			       "inputs are %s", name,
			       names(in, list, sizeof(list)));
	if (seen[i]++)
		return lm_fail(e, -EINVAL, "input '%s' is given twice", name);
	const struct lm_dp_tdesc *t = &in->t[i];
	int exact = in->exact_batch || out->exact_batch;
	int moved = !exact && (in->moved_batch || out->moved_batch);
	lm_dtype dtype = lm_oip_dtype(dt);
	if (dtype != t->dtype)
		return lm_fail(e, -EINVAL, "input '%s': datatype %.16s, but the "
			       "model takes %s", name, dt ? dt : "(none)",
			       lm_oip_datatype(t->dtype)
				       ? lm_oip_datatype(t->dtype)
				       : lm_dtype_name(t->dtype));
	/* the shape: the model's, with 1 to batch samples on its batch
	 * axis (1 or the batch when that is not axis 0); exactly the
	 * model's when some tensor holds no batch (bundle.h) */
	int64_t any[LM_MAX_RANK], dims[LM_MAX_RANK];
	char rule[288];
	memcpy(any, t->dims, sizeof(any));
	if (exact)
		lm_dp_layout_exact_why(in, out, batch, rule, sizeof(rule));
	else if (moved)
		snprintf(rule, sizeof(rule), "-1: 1 sample or the whole batch "
			 "of %u on axis %d", batch, t->batch_axis);
	else
		snprintf(rule, sizeof(rule), "-1: 1 to %u rows", batch);
	if (!exact)
		any[t->batch_axis] = -1;
	lm_shape_str(t->rank, any, want, sizeof(want));
	if (!json_is_array(shape) || (int)json_array_size(shape) != t->rank)
		return lm_fail(e, -EINVAL, "input '%s': shape must be %s (%s)",
			       name, want, rule);
	for (int k = 0; k < t->rank; k++) {
		const json_t *d = json_array_get(shape, (size_t)k);
		dims[k] = json_is_integer(d) ? json_integer_value(d) : -1;
	}
	int64_t rows = lm_dp_shape_rows(t, exact, moved, batch, t->rank, dims);
	if (!rows)
		return lm_fail(e, -EINVAL, "input '%s': shape must be %s (%s)",
			       name, want, rule);
	if (r->rows && rows != r->rows)
		return lm_fail(e, -EINVAL, "input '%s' has %lld rows, another "
			       "input %u: every input has the same rows",
			       name, (long long)rows, r->rows);
	r->rows = (unsigned)rows;
	size_t nbytes = t->nbytes / batch * (size_t)rows;
	size_t esize = lm_dtype_size(t->dtype);
	r->in_bytes[i] = nbytes;
	/* binary */
	const json_t *bds = json_object_get(params, "binary_data_size");
	if (params && !json_is_object(params))
		return lm_fail(e, -EINVAL, "input '%s': \"parameters\" must be "
			       "an object", name);
	if (bds) {
		if (!json_is_integer(bds) || json_integer_value(bds) < 0)
			return lm_fail(e, -EINVAL, "input '%s': binary_data_size "
				       "must be a byte count", name);
		if (data)
			return lm_fail(e, -EINVAL, "input '%s' has both "
				       "\"data\" and binary_data_size", name);
		if (!*bin)
			return lm_fail(e, -EINVAL, "input '%s': binary_data_size "
				       "without the Inference-Header-Content-"
				       "Length header", name);
		if ((uint64_t)json_integer_value(bds) != nbytes)
			return lm_fail(e, -EINVAL, "input '%s': binary_data_size "
				       "%lld, but %lld rows of %s are %zu bytes",
				       name, (long long)json_integer_value(bds),
				       (long long)rows, want, nbytes);
		if (nbytes > *bin_left)
			return lm_fail(e, -EINVAL, "input '%s': its %zu bytes run "
				       "past the end of the body", name, nbytes);
		r->in[i] = *bin;
		*bin += nbytes;
		*bin_left -= nbytes;
		return 0;
	}
	/* JSON data */
	if (!json_is_array(data))
		return lm_fail(e, -EINVAL, "input '%s' has no \"data\" array "
			       "(nor binary_data_size)", name);
	size_t n = nbytes / esize, k = 0;
	if (!(r->owned[i] = malloc(nbytes ? nbytes : 1)))
		return lm_fail(e, -ENOMEM, "out of memory");
	int rc = walk(t->dtype, data, r->owned[i], n, &k, 1);
	if (rc == -EINVAL)
		return lm_fail(e, -EINVAL, "input '%s': element %zu is not a %s "
			       "value (%s), or out of its range", name, k,
			       lm_oip_datatype(t->dtype),
			       t->dtype == LM_DT_BOOL ? "true or false"
			       : is_float(t->dtype)   ? "a number"
						      : "an integer");
	if (rc == -ELOOP)
		return lm_fail(e, -EINVAL, "input '%s': data nested deeper "
			       "than its shape", name);
	if (rc == -E2BIG || k != n)
		return lm_fail(e, -EINVAL, "input '%s': shape %s with %lld rows "
			       "holds %zu elements, data has %s%zu", name, want,
			       (long long)rows, n, rc ? "more than " : "", k);
	r->in[i] = r->owned[i];
	return 0;
}

static int decode_outputs(const json_t *outs, int binary_default,
			  const struct lm_dp_layout *out, lm_oip_request *r,
			  lm_error *e)
{
	char list[512];
	size_t k;
	const json_t *o;
	if (!outs) {
		for (int i = 0; i < out->n; i++) {
			r->out[i] = i;
			r->out_binary[i] = (uint8_t)binary_default;
		}
		r->n_out = out->n;
		return 0;
	}
	if (!json_is_array(outs) || json_array_size(outs) > (size_t)out->n)
		return lm_fail(e, -EINVAL, "\"outputs\" must be an array of at "
			       "most the model's %d outputs", out->n);
	json_array_foreach(outs, k, o) {
		const char *name = json_string_value(json_object_get(o, "name"));
		const json_t *p = json_object_get(o, "parameters");
		const json_t *bin = json_object_get(p, "binary_data");
		int i = find(out, name);
		if (i < 0)
			return lm_fail(e, -EINVAL, "unknown output '%.64s': the "
				       "model's outputs are %s",
				       name ? name : "(no name)",
				       names(out, list, sizeof(list)));
		for (int j = 0; j < r->n_out; j++)
			if (r->out[j] == i)
				return lm_fail(e, -EINVAL, "output '%s' is asked "
					       "for twice", name);
		if ((p && !json_is_object(p)) || (bin && !json_is_boolean(bin)))
			return lm_fail(e, -EINVAL, "output '%s': binary_data "
				       "must be true or false", name);
		if (json_object_get(p, "classification"))
			return lm_fail(e, -EINVAL, "output '%s': the "
				       "classification extension is not "
				       "supported", name);
		r->out[r->n_out] = i;
		r->out_binary[r->n_out++] =
			(uint8_t)(bin ? json_is_true(bin) : binary_default);
	}
	return 0;
}

int lm_oip_request_decode(const uint8_t *body, size_t len, size_t header_len,
			  const struct lm_dp_layout *in,
			  const struct lm_dp_layout *out, unsigned batch,
			  lm_oip_request *r, lm_error *e)
{
	json_error_t je;
	uint8_t seen[LM_DP_MAX_TENSORS] = { 0 };
	char list[512];
	int rc = -EINVAL;
	memset(r, 0, sizeof(*r));
	if (header_len > len)
		return lm_fail(e, -EINVAL, "Inference-Header-Content-Length "
			       "%zu is past the body's %zu bytes", header_len,
			       len);
	size_t json_len = header_len ? header_len : len;
	json_t *root = json_loadb((const char *)body, json_len,
				  JSON_REJECT_DUPLICATES, &je);
	if (!root)
		return lm_fail(e, -EINVAL, "the request is not JSON: %s "
			       "(line %d, column %d)", je.text, je.line,
			       je.column);
	const json_t *id = json_object_get(root, "id");
	const json_t *params = json_object_get(root, "parameters");
	const json_t *inputs = json_object_get(root, "inputs");
	const json_t *timeout = json_object_get(params, "timeout");
	const json_t *bout = json_object_get(params, "binary_data_output");
	const uint8_t *bin = header_len ? body + header_len : NULL;
	size_t bin_left = header_len ? len - header_len : 0;
	if (!json_is_object(root)) {
		lm_fail(e, -EINVAL, "the request must be a JSON object");
		goto out;
	}
	if (id && (!json_is_string(id) ||
		   json_string_length(id) >= LM_OIP_ID_MAX)) {
		lm_fail(e, -EINVAL, "\"id\" must be a string of at most %d "
			"bytes", LM_OIP_ID_MAX - 1);
		goto out;
	}
	if (id)
		memcpy(r->id, json_string_value(id), json_string_length(id) + 1);
	if (params && !json_is_object(params)) {
		lm_fail(e, -EINVAL, "\"parameters\" must be an object");
		goto out;
	}
	if (timeout && (!json_is_integer(timeout) ||
			json_integer_value(timeout) < 0)) {
		lm_fail(e, -EINVAL, "parameters.timeout must be microseconds "
			"(an integer, 0: none)");
		goto out;
	}
	r->timeout_us = timeout ? (uint64_t)json_integer_value(timeout) : 0;
	if (bout && !json_is_boolean(bout)) {
		lm_fail(e, -EINVAL, "parameters.binary_data_output must be "
			"true or false");
		goto out;
	}
	if (!json_is_array(inputs) || json_array_size(inputs) > (size_t)in->n) {
		lm_fail(e, -EINVAL, "\"inputs\" must be an array of the model's "
			"%d input(s): %s", in->n, names(in, list, sizeof(list)));
		goto out;
	}
	size_t k;
	const json_t *j;
	json_array_foreach(inputs, k, j)
		if ((rc = decode_input(j, in, out, batch, r, seen, &bin,
				       &bin_left,
				       (int)k, e)))
			goto out;
	rc = -EINVAL;
	for (int i = 0; i < in->n; i++)
		if (!seen[i]) {
			lm_fail(e, -EINVAL, "input '%s' is missing (the model's "
				"inputs are %s)", in->t[i].name,
				names(in, list, sizeof(list)));
			goto out;
		}
	if (!in->n)
		r->rows = batch;
	if (bin_left) {
		lm_fail(e, -EINVAL, "%zu bytes of binary data after the last "
			"binary input", bin_left);
		goto out;
	}
	rc = decode_outputs(json_object_get(root, "outputs"),
			    bout && json_is_true(bout), out, r, e);
out:
	json_decref(root);
	return rc;
}

/* ---- responses ---- */

/* t's shape with `rows` samples on its batch axis (-1: any), or whole
 * when exact. */
static json_t *shape_json(const struct lm_dp_tdesc *t, int64_t rows,
			  int exact)
{
	json_t *a = json_array();
	for (int k = 0; a && k < t->rank; k++)
		json_array_append_new(a, json_integer(
						 k != t->batch_axis || exact
							 ? t->dims[k]
							 : rows));
	return a;
}

int lm_oip_response_encode(const char *model, const lm_oip_request *r,
			   const struct lm_dp_layout *out, const uint8_t *data,
			   unsigned batch, unsigned row0, uint8_t **body,
			   size_t *len, size_t *header_len)
{
	json_t *root = json_object(), *outs = json_array();
	size_t bin = 0;
	int any_binary = 0, any_double = 0, rc = -ENOMEM;
	char *text = NULL;
	*body = NULL;
	if (!root || !outs)
		goto out;
	json_object_set_new(root, "model_name", json_string(model));
	if (r->id[0])
		json_object_set_new(root, "id", json_string(r->id));
	json_object_set_new(root, "outputs", outs);
	for (int o = 0; o < r->n_out; o++) {
		const struct lm_dp_tdesc *t = &out->t[r->out[o]];
		size_t row = t->nbytes / batch, nbytes = row * r->rows;
		const uint8_t *p = data + t->offset + row * row0;
		json_t *j = json_object();
		if (!j || json_array_append_new(outs, j))
			goto out;
		json_object_set_new(j, "name", json_string(t->name));
		json_object_set_new(j, "datatype",
				    json_string(lm_oip_datatype(t->dtype)
							? lm_oip_datatype(t->dtype)
							: lm_dtype_name(t->dtype)));
		json_object_set_new(j, "shape",
				    shape_json(t, r->rows, out->exact_batch));
		if (r->out_binary[o]) {
			json_t *pj = json_object();
			json_object_set_new(pj, "binary_data_size",
					    json_integer((json_int_t)nbytes));
			json_object_set_new(j, "parameters", pj);
			bin += nbytes;
			any_binary = 1;
			continue;
		}
		size_t n = nbytes / lm_dtype_size(t->dtype);
		json_t *a = json_array();
		if (!a || json_object_set_new(j, "data", a))
			goto out;
		any_double |= t->dtype == LM_DT_DOUBLE;
		for (size_t k = 0; k < n; k++) {
			json_t *v = lm_oip_elem_to_json(t->dtype, p, k);
			if (!v) {
				rc = -ERANGE;
				goto out;
			}
			json_array_append_new(a, v);
		}
	}
	text = json_dumps(root, JSON_COMPACT |
					JSON_REAL_PRECISION(
						lm_oip_precision(any_double
							? LM_DT_DOUBLE
							: LM_DT_FLOAT)));
	if (!text)
		goto out;
	size_t tl = strlen(text);
	if (!(*body = malloc(tl + bin + 1)))
		goto out;
	memcpy(*body, text, tl);
	*len = tl;
	for (int o = 0; o < r->n_out; o++) {
		const struct lm_dp_tdesc *t = &out->t[r->out[o]];
		size_t row = t->nbytes / batch;
		if (!r->out_binary[o])
			continue;
		memcpy(*body + *len, data + t->offset + row * row0,
		       row * r->rows);
		*len += row * r->rows;
	}
	*header_len = any_binary ? tl : 0;
	rc = 0;
out:
	free(text);
	json_decref(root);
	if (rc) {
		free(*body);
		*body = NULL;
	}
	return rc;
}

/* ---- the rest ---- */

static char *dump(json_t *j, size_t *len)
{
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (s)
		*len = strlen(s);
	return s;
}

char *lm_oip_error(const char *msg, size_t *len)
{
	return dump(json_pack("{s:s}", "error", msg), len);
}

static json_t *tensors(const struct lm_dp_layout *l, int exact)
{
	json_t *a = json_array();
	for (int i = 0; a && i < l->n; i++) {
		const char *dt = lm_oip_datatype(l->t[i].dtype);
		json_array_append_new(
			a, json_pack("{s:s,s:s,s:o}", "name", l->t[i].name,
				     "datatype",
				     dt ? dt : lm_dtype_name(l->t[i].dtype),
				     "shape", shape_json(&l->t[i], -1, exact)));
	}
	return a;
}

char *lm_oip_model_metadata(const char *name, const struct lm_dp_layout *in,
			    const struct lm_dp_layout *out, unsigned batch,
			    size_t *len)
{
	char b[16];
	int exact = in->exact_batch || out->exact_batch;
	snprintf(b, sizeof(b), "%u", batch);
	return dump(json_pack("{s:s,s:[s],s:s,s:o,s:o,s:{s:s}}", "name", name,
			      "versions", "1", "platform", "lamina_onnx",
			      "inputs", tensors(in, exact), "outputs",
			      tensors(out, exact),
			      "properties", "max_batch_size", b),
		    len);
}

char *lm_oip_model_ready(const char *name, int ready, size_t *len)
{
	return dump(json_pack("{s:s,s:b}", "name", name, "ready", ready), len);
}

char *lm_oip_server_metadata(const char *version, size_t *len)
{
	return dump(json_pack("{s:s,s:s,s:[s]}", "name", "lamina", "version",
			      version, "extensions", "binary_tensor_data"),
		    len);
}

char *lm_oip_flag(const char *key, int value, size_t *len)
{
	return dump(json_pack("{s:b}", key, value), len);
}
