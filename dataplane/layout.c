/*
 * layout.c: which tensors cross each cut of a slice folder, and where each
 * one sits inside a bundle.
 *
 * A stage [first, last] reads the tensors crossing the cut before `first`
 * and writes those crossing the cut after `last`; both neighbours of an
 * edge compute its layout with the same function from the same manifest,
 * so they agree without talking (lm_dp_layout_equal checks it at start).
 * Shapes are the manifest's with the leading dim set to the batch: every
 * cut tensor carries the batch (lm_graph_check_batch refuses models that
 * do not), and each stage checks its slices' prepared graphs against them.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "dp.h"

struct lm_dp_manifest {
	json_t *root;
	json_t *inputs, *outputs, *slices;
	char path[PATH_MAX];
};

int lm_dp_manifest_load(const char *dir, struct lm_dp_manifest **out,
			lm_error *e)
{
	struct lm_dp_manifest *m = calloc(1, sizeof(*m));
	json_error_t je;
	if (!m)
		return lm_fail(e, -ENOMEM, "out of memory");
	snprintf(m->path, sizeof(m->path), "%s/manifest.json", dir);
	m->root = json_load_file(m->path, 0, &je);
	if (!m->root) {
		free(m);
		return lm_fail(e, -ENOENT, "%s: %s", dir, je.text);
	}
	m->inputs = json_object_get(m->root, "inputs");
	m->outputs = json_object_get(m->root, "outputs");
	m->slices = json_object_get(m->root, "slices");
	if (!json_is_array(m->inputs) || !json_is_array(m->outputs) ||
	    !json_array_size(m->slices)) {
		lm_dp_manifest_free(m);
		return lm_fail(e, -EINVAL, "%s/manifest.json: no inputs, outputs "
			       "or slices (is it a folder written by `lamina "
			       "slice`?)", dir);
	}
	size_t i;
	json_t *s;
	json_array_foreach(m->slices, i, s)
		if (!json_is_string(json_object_get(s, "file")) ||
		    !json_is_array(json_object_get(s, "inputs")) ||
		    !json_is_array(json_object_get(s, "outputs"))) {
			lm_dp_manifest_free(m);
			return lm_fail(e, -EINVAL, "%s/manifest.json: slice %zu "
				       "has no file, inputs or outputs", dir,
				       i);
		}
	*out = m;
	return 0;
}

void lm_dp_manifest_free(struct lm_dp_manifest *m)
{
	if (!m)
		return;
	json_decref(m->root);
	free(m);
}

int lm_dp_manifest_slices(const struct lm_dp_manifest *m)
{
	return (int)json_array_size(m->slices);
}

const char *lm_dp_manifest_file(const struct lm_dp_manifest *m, int i)
{
	return json_string_value(json_object_get(
		json_array_get(m->slices, (size_t)i), "file"));
}

void lm_dp_layout_clear(struct lm_dp_layout *l)
{
	for (int i = 0; i < l->n; i++)
		free(l->t[i].name);
	memset(l, 0, sizeof(*l));
}

int lm_dp_layout_find(const struct lm_dp_layout *l, const char *name)
{
	for (int i = 0; i < l->n; i++)
		if (!strcmp(l->t[i].name, name))
			return i;
	return -1;
}

int lm_dp_layout_equal(const struct lm_dp_layout *a,
		       const struct lm_dp_layout *b)
{
	if (a->n != b->n || a->bytes != b->bytes)
		return 0;
	for (int i = 0; i < a->n; i++) {
		const struct lm_dp_tdesc *x = &a->t[i], *y = &b->t[i];
		if (strcmp(x->name, y->name) || x->dtype != y->dtype ||
		    x->rank != y->rank || x->offset != y->offset ||
		    memcmp(x->dims, y->dims, sizeof(x->dims[0]) *
			   (size_t)x->rank))
			return 0;
	}
	return 1;
}

/* Append a manifest tensor ({name, dtype, shape}) at the given batch. */
static int add_tensor(struct lm_dp_layout *l, json_t *t, int64_t batch,
		      const char *where, lm_error *e)
{
	const char *name = json_string_value(json_object_get(t, "name"));
	lm_dtype dt = lm_dtype_from_name(json_string_value(
		json_object_get(t, "dtype")));
	json_t *shape = json_object_get(t, "shape");
	size_t rank = json_array_size(shape);
	if (!name || dt == LM_DT_UNDEFINED || !lm_dtype_size(dt) ||
	    !json_is_array(shape) || rank < 1 || rank > LM_MAX_RANK)
		return lm_fail(e, -EINVAL, "%s: a tensor with no name, an "
			       "unknown type or a shape without a batch dim",
			       where);
	if (lm_dp_layout_find(l, name) >= 0)
		return 0;
	if (l->n == LM_DP_MAX_TENSORS)
		return lm_fail(e, -E2BIG, "%s: more than %d tensors cross one "
			       "cut", where, LM_DP_MAX_TENSORS);
	struct lm_dp_tdesc *d = &l->t[l->n];
	memset(d, 0, sizeof(*d));
	d->dtype = dt;
	d->rank = (int)rank;
	size_t nbytes = lm_dtype_size(dt);
	for (size_t k = 0; k < rank; k++) {
		json_int_t v = json_integer_value(json_array_get(shape, k));
		if (k == 0)
			v = batch;
		if (v < 1 || v > (1 << 30) || nbytes > (SIZE_MAX >> 31))
			return lm_fail(e, -EINVAL, "%s: tensor '%s' has an "
				       "unknown or huge dim", where, name);
		d->dims[k] = v;
		nbytes *= (size_t)v;
	}
	if (!(d->name = strdup(name)))
		return lm_fail(e, -ENOMEM, "out of memory");
	d->nbytes = nbytes;
	d->offset = l->bytes;
	l->bytes += (nbytes + LM_DP_ALIGN - 1) & ~(size_t)(LM_DP_ALIGN - 1);
	l->n++;
	return 0;
}

/* Is `name` read by a slice after k, or a model output? */
static int read_after(const struct lm_dp_manifest *m, const char *name,
		      int k)
{
	size_t i, j;
	json_t *t, *s;
	json_array_foreach(m->outputs, j, t)
		if (!strcmp(json_string_value(json_object_get(t, "name")) ?: "",
			    name))
			return 1;
	json_array_foreach(m->slices, i, s) {
		if ((int)i <= k)
			continue;
		json_array_foreach(json_object_get(s, "inputs"), j, t)
			if (!strcmp(json_string_value(json_object_get(t, "name"))
				    ?: "", name))
				return 1;
	}
	return 0;
}

int lm_dp_layout_cut(const struct lm_dp_manifest *m, int k, int64_t batch,
		     struct lm_dp_layout *l, lm_error *e)
{
	int n = lm_dp_manifest_slices(m), rc = 0;
	size_t i, j;
	json_t *t, *s;
	memset(l, 0, sizeof(*l));
	if (k < 0) {
		json_array_foreach(m->inputs, j, t)
			if ((rc = add_tensor(l, t, batch, m->path, e)))
				break;
	} else if (k >= n - 1) {
		json_array_foreach(m->outputs, j, t)
			if ((rc = add_tensor(l, t, batch, m->path, e)))
				break;
	} else {
		/* model inputs still needed, then slice outputs in order */
		json_array_foreach(m->inputs, j, t) {
			const char *name = json_string_value(
				json_object_get(t, "name"));
			if (!rc && name && read_after(m, name, k))
				rc = add_tensor(l, t, batch, m->path, e);
		}
		json_array_foreach(m->slices, i, s) {
			if ((int)i > k || rc)
				break;
			json_array_foreach(json_object_get(s, "outputs"), j, t) {
				const char *name = json_string_value(
					json_object_get(t, "name"));
				if (!rc && name && read_after(m, name, k))
					rc = add_tensor(l, t, batch, m->path,
							e);
			}
		}
	}
	if (rc)
		lm_dp_layout_clear(l);
	return rc;
}
