/*
 * manifest.c: reading, checking and writing manifest.json (the format is
 * in lamina/manifest.h).  The only code that touches the file.
 */
#include "lamina/manifest.h"

#include <errno.h>
#include <stdarg.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "lamina/fsutil.h"

/* ---- reading ---- */

/* Context of one load: the file's path for messages, its version and
 * the batch its shapes are at. */
struct rd {
	const char *path;
	lm_error *e;
	int version;
	int64_t batch;
};

static int bad(struct rd *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int bad(struct rd *r, const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return lm_fail(r->e, -EINVAL, "%s: %s", r->path, msg);
}

static char *dup_str(json_t *v)
{
	const char *s = json_string_value(v);
	return s ? strdup(s) : NULL;
}

/* A non-negative integer field that fits a size_t. */
static int get_size(struct rd *r, json_t *obj, const char *key,
		    const char *where, size_t *out)
{
	json_t *v = json_object_get(obj, key);
	char what[160];
	if (!json_is_integer(v) || json_integer_value(v) < 0) {
		snprintf(what, sizeof(what), "%s%s\"%s\"", where,
			 where[0] ? ": " : "", key);
		return bad(r, "%s is not a byte count", what);
	}
	*out = (size_t)json_integer_value(v);
	return 0;
}

static int read_tensor(struct rd *r, json_t *j, lm_mtensor *t,
		       const char *where)
{
	json_t *shape = json_object_get(j, "shape");
	const char *name = json_string_value(json_object_get(j, "name"));
	const char *dt = json_string_value(json_object_get(j, "dtype"));
	int64_t dims[LM_MAX_RANK];
	size_t rank = json_array_size(shape);
	char what[200];
	snprintf(what, sizeof(what), "%s: tensor '%.80s'", where,
		 name ? name : "?");
	if (!name || !name[0])
		return bad(r, "%s has no name", where);
	if (!dt || lm_dtype_from_name(dt) == LM_DT_UNDEFINED ||
	    !lm_dtype_size(lm_dtype_from_name(dt)))
		return bad(r, "%s has an unknown dtype", what);
	if (!json_is_array(shape) || rank > LM_MAX_RANK)
		return bad(r, "%s has no shape of rank 0 to 8", what);
	for (size_t k = 0; k < rank; k++) {
		json_t *d = json_array_get(shape, k);
		if (!json_is_integer(d) || json_integer_value(d) < 0)
			return bad(r, "%s has a dim that is not a size", what);
		dims[k] = json_integer_value(d);
	}
	int rc = lm_mtensor_set(t, name, lm_dtype_from_name(dt), (int)rank,
				dims);
	if (rc == -ENOMEM)
		return lm_fail(r->e, rc, "out of memory");
	if (rc)
		return bad(r, "%s is too large", what);
	/* version 1: every tensor's leading dim is the batch */
	json_t *ax = json_object_get(j, "batch_axis");
	if (r->version == 1)
		t->batch_axis = rank >= 1 && dims[0] >= r->batch &&
					dims[0] % r->batch == 0 ? 0 : -1;
	else if (!ax)
		t->batch_axis = -1;
	else if (!json_is_integer(ax) || json_integer_value(ax) < 0 ||
		 json_integer_value(ax) >= (json_int_t)rank)
		return bad(r, "%s: \"batch_axis\" is not one of its axes",
			   what);
	else
		t->batch_axis = (int)json_integer_value(ax);
	if (t->batch_axis >= 0 && (dims[t->batch_axis] < r->batch ||
				   dims[t->batch_axis] % r->batch))
		return bad(r, "%s: axis %d does not hold the batch of %lld",
			   what, t->batch_axis, (long long)r->batch);
	return 0;
}

static int read_tensors(struct rd *r, json_t *list, lm_mtensor **out,
			int *n, const char *where)
{
	size_t count = json_array_size(list);
	char what[160];
	if (!json_is_array(list))
		return bad(r, "%s is not a list of tensors", where);
	if (count > LM_MANIFEST_MAX_TENSORS)
		return bad(r, "%s lists too many tensors", where);
	*out = calloc(count ? count : 1, sizeof(**out));
	if (!*out)
		return lm_fail(r->e, -ENOMEM, "out of memory");
	*n = 0;
	for (size_t i = 0; i < count; i++) {
		snprintf(what, sizeof(what), "%s[%zu]", where, i);
		int rc = read_tensor(r, json_array_get(list, i), &(*out)[i],
				     what);
		if (rc)
			return rc;
		*n = (int)i + 1;
	}
	return 0;
}

static int read_slice(struct rd *r, json_t *j, int i, lm_mslice *s)
{
	char where[64], in[80], out[80];
	json_t *nodes = json_object_get(j, "nodes"), *idx;
	int rc;
	snprintf(where, sizeof(where), "slice %d", i);
	if (!json_is_object(j))
		return bad(r, "%s is not an object", where);
	idx = json_object_get(j, "index");
	if (!json_is_integer(idx) || json_integer_value(idx) != i)
		return bad(r, "%s: \"index\" is not its position", where);
	s->file = dup_str(json_object_get(j, "file"));
	s->label = dup_str(json_object_get(j, "label"));
	if (!s->file || !lm_name_ok(s->file))
		return bad(r, "%s: \"file\" is not a file name inside the "
			   "folder", where);
	if (!s->label && !(s->label = strdup("")))
		return lm_fail(r->e, -ENOMEM, "out of memory");
	snprintf(in, sizeof(in), "%s inputs", where);
	snprintf(out, sizeof(out), "%s outputs", where);
	if ((rc = read_tensors(r, json_object_get(j, "inputs"), &s->inputs,
			       &s->n_inputs, in)) ||
	    (rc = read_tensors(r, json_object_get(j, "outputs"), &s->outputs,
			       &s->n_outputs, out)))
		return rc;
	if (!json_is_array(nodes))
		return bad(r, "%s: \"nodes\" is not a list", where);
	s->nodes = calloc(json_array_size(nodes) + 1, sizeof(char *));
	if (!s->nodes)
		return lm_fail(r->e, -ENOMEM, "out of memory");
	for (size_t k = 0; k < json_array_size(nodes); k++) {
		if (!(s->nodes[k] = dup_str(json_array_get(nodes, k))))
			return bad(r, "%s: a node name is not a string", where);
		s->n_nodes = (int)k + 1;
	}
	json_t *flops = json_object_get(j, "flops");
	if (!json_is_number(flops) || json_number_value(flops) < 0)
		return bad(r, "%s: \"flops\" is not a count", where);
	s->flops = json_number_value(flops);
	if ((rc = get_size(r, j, "param_bytes", where, &s->param_bytes)) ||
	    (rc = get_size(r, j, "output_bytes", where, &s->output_bytes)) ||
	    (rc = get_size(r, j, "cut_bytes", where, &s->cut_bytes)))
		return rc;
	json_t *ab = json_object_get(j, "arena_bytes");
	s->arena_bytes = json_is_integer(ab) ? json_integer_value(ab) : -1;
	return 0;
}

static int read_root(struct rd *r, json_t *root, lm_manifest *m)
{
	const char *fmt = json_string_value(json_object_get(root, "format"));
	json_t *ver = json_object_get(root, "version");
	json_t *slices = json_object_get(root, "slices");
	const char *gran = json_string_value(json_object_get(root,
							      "granularity"));
	int rc;
	if (!json_is_object(root))
		return bad(r, "%s", "not a JSON object");
	if (!fmt || strcmp(fmt, LM_MANIFEST_FORMAT))
		return bad(r, "%s", "not a lamina slice manifest (\"format\" "
			   "is not \"" LM_MANIFEST_FORMAT "\")");
	if (!json_is_integer(ver) || json_integer_value(ver) < 1 ||
	    json_integer_value(ver) > LM_MANIFEST_VERSION)
		return lm_fail(r->e, -EINVAL, "%s: manifest version %lld; this "
			       "lamina reads versions 1 to %d (slice the model "
			       "again)", r->path,
			       (long long)json_integer_value(ver),
			       LM_MANIFEST_VERSION);
	r->version = (int)json_integer_value(ver);
	json_t *batch = json_object_get(root, "batch");
	json_t *fixed = json_object_get(root, "batch_fixed");
	json_t *in0 = json_object_get(json_array_get(json_object_get(root,
								     "inputs"),
						     0), "shape");
	if (r->version == 1)
		batch = json_array_get(in0, 0);
	r->batch = json_is_integer(batch) ? json_integer_value(batch) : 0;
	if (r->version > 1 && r->batch < 1)
		return bad(r, "%s", "\"batch\" is not a batch size");
	if (r->batch < 1 || r->batch > (int64_t)1 << 40)
		r->batch = 1;
	m->batch = r->batch;
	if (fixed && !json_is_string(fixed))
		return bad(r, "%s", "\"batch_fixed\" is not a string");
	if (fixed && !(m->batch_fixed = dup_str(fixed)))
		return lm_fail(r->e, -ENOMEM, "out of memory");
	if (!(m->source = dup_str(json_object_get(root, "source"))))
		return bad(r, "%s", "\"source\" is not a string");
	m->opset = (int)json_integer_value(json_object_get(root, "opset"));
	m->ir_version = (int)json_integer_value(json_object_get(root,
								"ir_version"));
	m->node_granularity = gran && !strcmp(gran, "node");
	if ((rc = read_tensors(r, json_object_get(root, "inputs"), &m->inputs,
			       &m->n_inputs, "inputs")) ||
	    (rc = read_tensors(r, json_object_get(root, "outputs"),
			       &m->outputs, &m->n_outputs, "outputs")))
		return rc;
	if (!json_is_array(slices) || !json_array_size(slices))
		return bad(r, "%s", "no \"slices\" (is it a folder written by "
			   "`lamina slice`?)");
	size_t n = json_array_size(slices);
	if (n > INT_MAX / 2)
		return bad(r, "%s", "too many slices");
	if (!(m->slices = calloc(n, sizeof(*m->slices))))
		return lm_fail(r->e, -ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		m->n_slices = (int)i + 1;
		m->slices[i].arena_bytes = -1;
		if ((rc = read_slice(r, json_array_get(slices, i), (int)i,
				     &m->slices[i])))
			return rc;
		for (size_t k = 0; k < i; k++)
			if (!strcmp(m->slices[k].file, m->slices[i].file))
				return bad(r, "slice file %s is listed twice",
					   m->slices[i].file);
	}
	json_t *tf = json_object_get(root, "total_flops");
	m->total_flops = json_is_number(tf) ? json_number_value(tf) : 0;
	json_t *tp = json_object_get(root, "total_param_bytes");
	m->total_param_bytes = json_integer_value(tp) > 0
				       ? (size_t)json_integer_value(tp) : 0;
	json_t *ab = json_object_get(root, "arena_bytes");
	m->arena_bytes = json_is_integer(ab) ? json_integer_value(ab) : -1;
	return 0;
}

int lm_manifest_load(const char *dir, lm_manifest **out, lm_error *e)
{
	char path[PATH_MAX];
	char *text = NULL;
	size_t len;
	json_error_t je;
	struct stat st;
	int rc;
	*out = NULL;
	if (snprintf(path, sizeof(path), "%s/%s", dir, LM_MANIFEST_FILE) >=
	    (int)sizeof(path))
		return lm_fail(e, -ENAMETOOLONG, "%s: path too long", dir);
	if (stat(dir, &st) != 0)
		return lm_fail(e, -errno, "%s: %s", dir, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return lm_fail(e, -ENOTDIR, "%s: not a folder (give the folder "
			       "`lamina slice` wrote)", dir);
	if (access(path, F_OK) != 0)
		return lm_fail(e, -ENOENT, "%s: not a slice folder (no %s; "
			       "make one with `lamina slice`)", dir,
			       LM_MANIFEST_FILE);
	/* a manifest lists node names and shapes: 256 MiB is far above any
	 * real model's and bounds what a hostile file costs */
	if ((rc = lm_read_file(path, 256u << 20, &text, &len, e)))
		return rc;
	json_t *root = json_loadb(text, len, 0, &je);
	free(text);
	if (!root)
		return lm_fail(e, -EINVAL, "%s: line %d: %s", path, je.line,
			       je.text);
	lm_manifest *m = calloc(1, sizeof(*m));
	struct rd r = { path, e, LM_MANIFEST_VERSION, 1 };
	rc = m ? read_root(&r, root, m) : lm_fail(e, -ENOMEM, "out of memory");
	json_decref(root);
	if (!rc && !(m->dir = strdup(dir)))
		rc = lm_fail(e, -ENOMEM, "out of memory");
	if (rc) {
		lm_manifest_free(m);
		return rc;
	}
	*out = m;
	return 0;
}

/* ---- building and writing ---- */

int lm_mtensor_set(lm_mtensor *t, const char *name, lm_dtype dtype, int rank,
		   const int64_t *dims)
{
	size_t nbytes;
	if (rank < 0 || rank > LM_MAX_RANK ||
	    lm_shape_bytes(dtype, rank, dims, &nbytes))
		return -EINVAL;
	if (!(t->name = strdup(name)))
		return -ENOMEM;
	t->dtype = dtype;
	t->rank = rank;
	memcpy(t->dims, dims, sizeof(dims[0]) * (size_t)rank);
	t->nbytes = nbytes;
	t->batch_axis = -1;
	return 0;
}

int lm_manifest_create(int n_slices, lm_manifest **out)
{
	lm_manifest *m = calloc(1, sizeof(*m));
	if (!m || n_slices < 1 ||
	    !(m->slices = calloc((size_t)n_slices, sizeof(*m->slices)))) {
		free(m);
		return n_slices < 1 ? -EINVAL : -ENOMEM;
	}
	m->n_slices = n_slices;
	m->batch = 1;
	m->arena_bytes = -1;
	for (int i = 0; i < n_slices; i++)
		m->slices[i].arena_bytes = -1;
	*out = m;
	return 0;
}

static json_t *tensor_json(const lm_mtensor *t)
{
	json_t *shape = json_array();
	for (int i = 0; shape && i < t->rank; i++)
		json_array_append_new(shape, json_integer(t->dims[i]));
	json_t *j = json_pack("{s:s, s:s, s:o*}", "name", t->name, "dtype",
			      lm_dtype_name(t->dtype), "shape", shape);
	if (j && t->batch_axis >= 0)
		json_object_set_new(j, "batch_axis",
				    json_integer(t->batch_axis));
	return j;
}

static json_t *tensors_json(const lm_mtensor *t, int n)
{
	json_t *a = json_array();
	for (int i = 0; a && i < n; i++)
		if (json_array_append_new(a, tensor_json(&t[i]))) {
			json_decref(a);
			return NULL;
		}
	return a;
}

static json_t *manifest_json(const lm_manifest *m)
{
	json_t *slices = json_array();
	for (int i = 0; slices && i < m->n_slices; i++) {
		const lm_mslice *s = &m->slices[i];
		json_t *nodes = json_array();
		for (int k = 0; nodes && k < s->n_nodes; k++)
			json_array_append_new(nodes, json_string(s->nodes[k]));
		json_t *js = json_pack(
			"{s:i, s:s, s:s, s:o*, s:o*, s:o*, s:f, s:I, s:I, "
			"s:I}",
			"index", i, "file", s->file, "label",
			s->label ? s->label : "",
			"inputs", tensors_json(s->inputs, s->n_inputs),
			"outputs", tensors_json(s->outputs, s->n_outputs),
			"nodes", nodes, "flops", s->flops,
			"param_bytes", (json_int_t)s->param_bytes,
			"output_bytes", (json_int_t)s->output_bytes,
			"cut_bytes", (json_int_t)s->cut_bytes);
		if (js && s->arena_bytes >= 0)
			json_object_set_new(js, "arena_bytes",
					    json_integer(s->arena_bytes));
		if (!js || json_array_append_new(slices, js)) {
			json_decref(slices);
			return NULL;
		}
	}
	json_t *root = json_pack(
		"{s:s, s:i, s:s, s:i, s:i, s:s, s:o*, s:o*, s:f, s:I}",
		"format", LM_MANIFEST_FORMAT, "version", LM_MANIFEST_VERSION,
		"source", m->source ? m->source : "", "opset", m->opset,
		"ir_version", m->ir_version, "granularity",
		m->node_granularity ? "node" : "layer",
		"inputs", tensors_json(m->inputs, m->n_inputs),
		"outputs", tensors_json(m->outputs, m->n_outputs),
		"total_flops", m->total_flops,
		"total_param_bytes", (json_int_t)m->total_param_bytes);
	if (root)
		json_object_set_new(root, "batch",
				    json_integer((json_int_t)m->batch));
	if (root && m->batch_fixed)
		json_object_set_new(root, "batch_fixed",
				    json_string(m->batch_fixed));
	if (root && m->arena_bytes >= 0)
		json_object_set_new(root, "arena_bytes",
				    json_integer(m->arena_bytes));
	if (!root || json_object_set_new(root, "slices", slices)) {
		json_decref(root);
		return NULL;
	}
	return root;
}

char *lm_manifest_dumps(const lm_manifest *m)
{
	json_t *j = manifest_json(m);
	char *s = j ? json_dumps(j, JSON_INDENT(2)) : NULL;
	json_decref(j);
	return s;
}

int lm_manifest_save(const lm_manifest *m, const char *path, lm_error *e)
{
	char *text = lm_manifest_dumps(m);
	if (!text)
		return lm_fail(e, -ENOMEM, "%s: out of memory", path);
	size_t n = strlen(text);
	text[n] = '\n'; /* replaces the NUL: written by length */
	int rc = lm_write_atomic(path, text, n + 1, 0644, e);
	free(text);
	return rc;
}

static void tensors_free(lm_mtensor *t, int n)
{
	for (int i = 0; t && i < n; i++)
		free(t[i].name);
	free(t);
}

void lm_manifest_free(lm_manifest *m)
{
	if (!m)
		return;
	for (int i = 0; m->slices && i < m->n_slices; i++) {
		lm_mslice *s = &m->slices[i];
		free(s->file);
		free(s->label);
		tensors_free(s->inputs, s->n_inputs);
		tensors_free(s->outputs, s->n_outputs);
		for (int k = 0; s->nodes && k < s->n_nodes; k++)
			free(s->nodes[k]);
		free(s->nodes);
	}
	free(m->slices);
	tensors_free(m->inputs, m->n_inputs);
	tensors_free(m->outputs, m->n_outputs);
	free(m->source);
	free(m->batch_fixed);
	free(m->dir);
	free(m);
}

/* ---- queries ---- */

int lm_manifest_slice_path(const lm_manifest *m, int i, char *buf,
			   size_t len, lm_error *e)
{
	struct stat st;
	if (i < 0 || i >= m->n_slices)
		return lm_fail(e, -EINVAL, "slice %d: the folder has %d", i,
			       m->n_slices);
	if (snprintf(buf, len, "%s/%s", m->dir ? m->dir : ".",
		     m->slices[i].file) >= (int)len)
		return lm_fail(e, -ENAMETOOLONG, "%s: path too long", m->dir);
	if (lstat(buf, &st) != 0)
		return lm_fail(e, -errno, "%s: %s", buf, strerror(errno));
	if (S_ISLNK(st.st_mode))
		return lm_fail(e, -EINVAL, "%s: a symlink; slice files must be "
			       "plain files inside the slice folder", buf);
	if (!S_ISREG(st.st_mode))
		return lm_fail(e, -EINVAL, "%s: not a regular file", buf);
	return 0;
}

/* Is `name` read by a slice after k, or a model output? */
static int read_after(const lm_manifest *m, const char *name, int k)
{
	if (lm_manifest_output(m, name) >= 0)
		return 1;
	for (int i = k + 1; i < m->n_slices; i++)
		for (int j = 0; j < m->slices[i].n_inputs; j++)
			if (!strcmp(m->slices[i].inputs[j].name, name))
				return 1;
	return 0;
}

int lm_manifest_cut(const lm_manifest *m, int k, const lm_mtensor ***out,
		    int *n, lm_error *e)
{
	int cap = 0;
	*out = NULL;
	*n = 0;
	if (k < -1 || k >= m->n_slices)
		return lm_fail(e, -EINVAL, "cut %d: the folder has %d slices",
			       k, m->n_slices);
	cap = m->n_inputs + m->n_outputs;
	for (int i = 0; i <= k && k < m->n_slices - 1; i++)
		cap += m->slices[i].n_outputs;
	const lm_mtensor **t = calloc((size_t)cap + 1, sizeof(*t));
	if (!t)
		return lm_fail(e, -ENOMEM, "out of memory");
#define ADD(x)                                                             \
	do {                                                               \
		int seen_ = 0;                                             \
		for (int s_ = 0; s_ < *n && !seen_; s_++)                  \
			seen_ = !strcmp(t[s_]->name, (x)->name);           \
		if (!seen_)                                                \
			t[(*n)++] = (x);                                   \
	} while (0)
	if (k < 0) {
		for (int j = 0; j < m->n_inputs; j++)
			ADD(&m->inputs[j]);
	} else if (k == m->n_slices - 1) {
		for (int j = 0; j < m->n_outputs; j++)
			ADD(&m->outputs[j]);
	} else {
		for (int j = 0; j < m->n_inputs; j++)
			if (read_after(m, m->inputs[j].name, k))
				ADD(&m->inputs[j]);
		for (int i = 0; i <= k; i++)
			for (int j = 0; j < m->slices[i].n_outputs; j++)
				if (read_after(m, m->slices[i].outputs[j].name,
					       k))
					ADD(&m->slices[i].outputs[j]);
	}
#undef ADD
	*out = t;
	return 0;
}

int lm_mtensor_shape_at(const lm_manifest *m, const lm_mtensor *t,
			int64_t batch, int64_t *dims, size_t *nbytes)
{
	size_t b;
	memcpy(dims, t->dims, sizeof(dims[0]) * (size_t)t->rank);
	if (t->batch_axis >= 0 && t->batch_axis < t->rank) {
		int64_t per = t->dims[t->batch_axis] / m->batch;
		if (batch < 1 || __builtin_mul_overflow(per, batch,
							&dims[t->batch_axis]))
			return -EINVAL;
	}
	if (lm_shape_bytes(t->dtype, t->rank, dims, &b))
		return -EINVAL;
	if (nbytes)
		*nbytes = b;
	return 0;
}

int lm_manifest_batch_ok(const lm_manifest *m, int64_t batch, lm_error *e)
{
	if (!m->batch_fixed || batch == m->batch)
		return 0;
	return lm_fail(e, -EINVAL, "%s: the model runs at batch %lld only, "
		       "not %lld: %s", m->dir ? m->dir : m->source,
		       (long long)m->batch, (long long)batch, m->batch_fixed);
}

/* Sum of the bytes of tensors t[0..n) at batch, each rounded up to align
 * plus head; 0 when a size overflows. */
static size_t tensors_at(const lm_manifest *m, const lm_mtensor *const *t,
			 int n, int64_t batch, size_t align, size_t head)
{
	size_t total = head;
	for (int i = 0; i < n; i++) {
		int64_t dims[LM_MAX_RANK];
		size_t b;
		if (lm_mtensor_shape_at(m, t[i], batch, dims, &b) ||
		    lm_size_add(b, align - 1, &b) ||
		    lm_size_add(total, b & ~(align - 1), &total))
			return 0;
	}
	return total;
}

size_t lm_manifest_bundle_bytes(const lm_manifest *m, int k, int64_t batch)
{
	const lm_mtensor **t = NULL;
	int n = 0;
	if (batch < 1 || lm_manifest_cut(m, k, &t, &n, NULL))
		return 0;
	size_t total = tensors_at(m, t, n, batch, LM_BUNDLE_ALIGN,
				  LM_BUNDLE_POOL_HEAD + LM_BUNDLE_HEAD);
	free(t);
	return total;
}

size_t lm_manifest_cut_bytes(const lm_manifest *m, int k, int64_t batch)
{
	const lm_mtensor **t = NULL;
	int n = 0;
	if (batch < 1 || lm_manifest_cut(m, k, &t, &n, NULL))
		return 0;
	size_t total = tensors_at(m, t, n, batch, 1, 0);
	free(t);
	return total;
}

size_t lm_manifest_input_bytes(const lm_manifest *m, int64_t batch)
{
	return lm_manifest_cut_bytes(m, -1, batch);
}

int lm_manifest_input(const lm_manifest *m, const char *name)
{
	for (int i = 0; i < m->n_inputs; i++)
		if (!strcmp(m->inputs[i].name, name))
			return i;
	return -1;
}

int lm_manifest_output(const lm_manifest *m, const char *name)
{
	for (int i = 0; i < m->n_outputs; i++)
		if (!strcmp(m->outputs[i].name, name))
			return i;
	return -1;
}

int lm_manifest_slice_of_node(const lm_manifest *m, int from,
			      const char *name)
{
	for (int i = from < 0 ? 0 : from; i < m->n_slices; i++)
		for (int k = 0; k < m->slices[i].n_nodes; k++)
			if (!strcmp(m->slices[i].nodes[k], name))
				return i;
	return -1;
}
