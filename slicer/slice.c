/*
 * slice.c: writing a slicing to a folder: one ONNX model per slice and
 * manifest.json (format in the README).  Everything is written into a
 * temporary folder beside the target and renamed into place at the end, so
 * a failure never leaves a partial result.
 */
#include "lamina/fsutil.h"
#include "lamina/slicer.h"

#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static json_t *tensor_json(const lm_value *v)
{
	json_t *shape = json_array();
	for (int i = 0; i < v->rank; i++)
		json_array_append_new(shape, json_integer(v->dims[i]));
	return json_pack("{s:s, s:s, s:o}", "name", v->name, "dtype",
			 lm_dtype_name(v->dtype), "shape", shape);
}

static json_t *tensor_list(const lm_graph *g, const int *idx, int n)
{
	json_t *a = json_array();
	for (int i = 0; i < n; i++)
		json_array_append_new(a, tensor_json(&g->values[idx[i]]));
	return a;
}

static int file_digits(int n)
{
	int d = 1;
	for (int x = n - 1; x >= 10; x /= 10)
		d++;
	return d < 3 ? 3 : d;
}

json_t *lm_manifest_build(lm_graph *g, const lm_slicing *s,
			  const char *source)
{
	json_t *slices = json_array();
	double total_flops = 0;
	size_t total_params = 0;
	int digits = file_digits(s->n);
	for (int i = 0; i < s->n; i++) {
		const lm_slice *sl = &s->slices[i];
		char file[64];
		json_t *nodes = json_array();
		for (int ni = sl->first_node; ni <= sl->last_node; ni++)
			json_array_append_new(nodes,
					      json_string(g->nodes[ni].name));
		if (snprintf(file, sizeof(file), "slice_%0*d.onnx", digits, i) >=
		    (int)sizeof(file))
			file[0] = '\0';
		json_array_append_new(slices, json_pack(
			"{s:i, s:s, s:s, s:o, s:o, s:o, s:f, s:I, s:I, s:I}",
			"index", i, "file", file, "label", sl->label,
			"inputs", tensor_list(g, sl->inputs, sl->n_inputs),
			"outputs", tensor_list(g, sl->outputs, sl->n_outputs),
			"nodes", nodes, "flops", sl->flops,
			"param_bytes", (json_int_t)sl->param_bytes,
			"output_bytes", (json_int_t)sl->output_bytes,
			"cut_bytes", (json_int_t)sl->cut_bytes));
		total_flops += sl->flops;
		total_params += sl->param_bytes;
	}
	return json_pack("{s:s, s:i, s:s, s:I, s:I, s:s, s:o, s:o, s:f, s:I, "
			 "s:o}",
			 "format", "lamina-slices", "version", 1,
			 "source", source,
			 "opset", (json_int_t)g->opset,
			 "ir_version", (json_int_t)g->ir_version,
			 "granularity", s->granularity == LM_GRAN_NODE
						? "node" : "layer",
			 "inputs", tensor_list(g, g->inputs, g->n_inputs),
			 "outputs", tensor_list(g, g->outputs, g->n_outputs),
			 "total_flops", total_flops,
			 "total_param_bytes", (json_int_t)total_params,
			 "slices", slices);
}

/* A folder --force may replace: empty, or an earlier slicing. */
static int replaceable(const char *dir)
{
	char p[PATH_MAX];
	struct stat st;
	if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
		return 0;
	snprintf(p, sizeof(p), "%s/manifest.json", dir);
	if (access(p, F_OK) == 0)
		return 1;
	return rmdir(dir) == 0 && mkdir(dir, 0755) == 0;
}

int lm_slice_write(lm_onnx_model *m, const lm_slicing *s, const char *dir,
		   int force, void (*progress)(int done, int total),
		   lm_error *e)
{
	char tmp[PATH_MAX], old[PATH_MAX], path[PATH_MAX];
	struct stat st;
	lm_graph *g = lm_onnx_graph(m);
	int rc = 0, exists = lstat(dir, &st) == 0;

	if (exists && !force)
		return lm_fail(e, -EEXIST, "%s: already exists (use --force "
			       "to replace it)", dir);
	if (exists && !replaceable(dir))
		return lm_fail(e, -EEXIST, "%s: exists and is not a lamina "
			       "slice folder; refusing to replace it", dir);
	if (snprintf(tmp, sizeof(tmp), "%s.tmp-XXXXXX", dir) >=
	    (int)sizeof(tmp))
		return lm_fail(e, -ENAMETOOLONG, "%s: path too long", dir);
	if (!mkdtemp(tmp))
		return lm_fail(e, -errno, "%s: cannot create a folder beside "
			       "it: %s", dir, strerror(errno));

	int digits = file_digits(s->n);
	for (int i = 0; i < s->n && !rc; i++) {
		if (snprintf(path, sizeof(path), "%s/slice_%0*d.onnx", tmp,
			     digits, i) >= (int)sizeof(path))
			rc = lm_fail(e, -ENAMETOOLONG, "%s: path too long", dir);
		else
			rc = lm_onnx_write_range(m, &s->slices[i], path, e);
		if (progress)
			progress(i + 1, s->n);
	}
	if (!rc) {
		const char *src = strrchr(lm_onnx_path(m), '/');
		json_t *man = lm_manifest_build(
			g, s, src ? src + 1 : lm_onnx_path(m));
		if (!man ||
		    snprintf(path, sizeof(path), "%s/manifest.json", tmp) >=
			    (int)sizeof(path) || json_dump_file(man, path, JSON_INDENT(2)) != 0)
			rc = lm_fail(e, -EIO, "%s: cannot write manifest.json",
				     dir);
		json_decref(man);
	}
	if (!rc && exists) {
		snprintf(old, sizeof(old), "%s.old-XXXXXX", dir);
		if (!mkdtemp(old) || rename(dir, old) != 0)
			rc = lm_fail(e, -errno, "%s: cannot move the old "
				     "folder aside: %s", dir, strerror(errno));
	}
	if (!rc && rename(tmp, dir) != 0) {
		rc = lm_fail(e, -errno, "%s: cannot rename the new folder "
			     "into place: %s", dir, strerror(errno));
		if (exists)
			rename(old, dir);
	}
	if (rc)
		lm_remove_tree(tmp);
	else if (exists)
		lm_remove_tree(old);
	return rc;
}

int lm_slice_join(const char *const *paths, int n, int64_t batch,
		  lm_graph **out, lm_error *e)
{
	lm_graph *g = lm_graph_create("stage");
	int rc = g ? 0 : lm_fail(e, -ENOMEM, "out of memory");
	for (int k = 0; k < n && !rc; k++) {
		lm_onnx_model *m = NULL;
		if (!(rc = lm_onnx_load(paths[k], &m, e)) &&
		    (rc = lm_onnx_prepare_batch(m, batch, e)) == 0 &&
		    (rc = lm_graph_absorb(g, lm_onnx_graph(m), e)))
			lm_fail_prefix(e, rc, "%s", paths[k]);
		lm_onnx_free(m);
	}
	if (rc) {
		lm_graph_free(g);
		return rc;
	}
	*out = g;
	return 0;
}
