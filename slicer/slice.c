/*
 * slice.c: writing a slicing to a folder: one ONNX model per slice and
 * manifest.json (lamina/manifest.h).  Everything is written into a
 * temporary folder beside the target and renamed into place at the end, so
 * a failure never leaves a partial result.
 */
#include "lamina/fsutil.h"
#include "lamina/slicer.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int file_digits(int n)
{
	int d = 1;
	for (int x = n - 1; x >= 10; x /= 10)
		d++;
	return d < 3 ? 3 : d;
}

static int set_tensors(const lm_graph *g, const lm_batch *b, const int *idx,
		       int n, lm_mtensor **out, int *count)
{
	*out = calloc((size_t)n + 1, sizeof(**out));
	if (!*out)
		return -ENOMEM;
	*count = 0;
	for (int i = 0; i < n; i++) {
		const lm_value *v = &g->values[idx[i]];
		int rc = lm_mtensor_set(&(*out)[i], v->name, v->dtype,
					v->rank, v->dims);
		if (rc)
			return rc;
		(*out)[i].batch_axis = b ? lm_batch_of(b, idx[i]).axis : -1;
		*count = i + 1;
	}
	return 0;
}

int lm_manifest_build(lm_onnx_model *model, const lm_slicing *s,
		      const char *source, lm_manifest **out, lm_error *e)
{
	lm_graph *g = lm_onnx_graph(model);
	const lm_batch *bt = lm_onnx_batch(model);
	lm_manifest *m = NULL;
	int digits = file_digits(s->n), rc = lm_manifest_create(s->n, &m);
	char file[64];
	/* a model whose samples mix records why, and no batch axes */
	const lm_batch *b = bt->stop < 0 && bt->n ? bt : NULL;
	if (!rc && !(m->source = strdup(source)))
		rc = -ENOMEM;
	if (!rc && !b &&
	    !(m->batch_fixed = strdup(bt->n ? bt->why
					    : "its inputs have no batch dim")))
		rc = -ENOMEM;
	if (!rc) {
		m->batch = bt->size > 0 ? bt->size : 1;
		m->opset = (int)g->opset;
		m->ir_version = (int)g->ir_version;
		m->node_granularity = s->granularity == LM_GRAN_NODE;
		rc = set_tensors(g, b, g->inputs, g->n_inputs, &m->inputs,
				 &m->n_inputs);
	}
	if (!rc)
		rc = set_tensors(g, b, g->outputs, g->n_outputs, &m->outputs,
				 &m->n_outputs);
	for (int i = 0; i < s->n && !rc; i++) {
		const lm_slice *sl = &s->slices[i];
		lm_mslice *ms = &m->slices[i];
		snprintf(file, sizeof(file), "slice_%0*d.onnx", digits, i);
		ms->n_nodes = sl->last_node - sl->first_node + 1;
		if (!(ms->file = strdup(file)) ||
		    !(ms->label = strdup(sl->label ? sl->label : "")) ||
		    !(ms->nodes = calloc((size_t)ms->n_nodes, sizeof(char *)))) {
			rc = -ENOMEM;
			break;
		}
		for (int k = 0; k < ms->n_nodes && !rc; k++)
			if (!(ms->nodes[k] = strdup(
				      g->nodes[sl->first_node + k].name)))
				rc = -ENOMEM;
		if (!rc)
			rc = set_tensors(g, b, sl->inputs, sl->n_inputs,
					 &ms->inputs, &ms->n_inputs);
		if (!rc)
			rc = set_tensors(g, b, sl->outputs, sl->n_outputs,
					 &ms->outputs, &ms->n_outputs);
		ms->flops = sl->flops;
		ms->param_bytes = sl->param_bytes;
		ms->output_bytes = sl->output_bytes;
		ms->cut_bytes = sl->cut_bytes;
		m->total_flops += sl->flops;
		m->total_param_bytes += sl->param_bytes;
	}
	if (rc) {
		lm_manifest_free(m);
		return rc == -ENOMEM ? lm_fail(e, rc, "out of memory")
				     : lm_fail(e, rc, "%s: a tensor without a "
					       "size", source);
	}
	*out = m;
	return 0;
}

/* Files `lamina bench` and `lamina plan` may leave in a slice folder. */
static const char *const slicing_extras[] = { "profile.json" };

/* A folder --force may replace: an empty one, or exactly an earlier
 * slicing: a manifest that loads and regular files it names (and what
 * bench writes beside them), nothing else. */
static int replaceable(const char *dir)
{
	struct stat st;
	lm_manifest *man = NULL;
	if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
		return 0;
	DIR *d = opendir(dir);
	if (!d)
		return 0;
	int ok = 1, empty = 1, slicing;
	if (lm_manifest_load(dir, &man, NULL) != 0)
		man = NULL;
	slicing = man != NULL;
	struct dirent *de;
	while (ok && (de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		empty = 0;
		int known = man && !strcmp(de->d_name, LM_MANIFEST_FILE);
		for (size_t i = 0; man && !known &&
				   i < sizeof(slicing_extras) /
					       sizeof(slicing_extras[0]);
		     i++)
			known = !strcmp(de->d_name, slicing_extras[i]);
		for (int i = 0; man && !known && i < man->n_slices; i++)
			known = !strcmp(de->d_name, man->slices[i].file);
		if (known && fstatat(dirfd(d), de->d_name, &st,
				     AT_SYMLINK_NOFOLLOW) == 0)
			known = S_ISREG(st.st_mode);
		ok = known;
	}
	closedir(d);
	lm_manifest_free(man);
	return ok && (slicing || empty);
}

int lm_slice_write(lm_onnx_model *m, const lm_slicing *s, const char *dir,
		   int force, void (*progress)(int done, int total),
		   lm_error *e)
{
	char tmp[PATH_MAX], old[PATH_MAX], path[PATH_MAX];
	struct stat st;
	int rc = 0, exists = lstat(dir, &st) == 0;

	if (exists && !force)
		return lm_fail(e, -EEXIST, "%s: already exists (use --force "
			       "to replace it)", dir);
	if (exists && !replaceable(dir))
		return lm_fail(e, -EEXIST, "%s: exists and is not exactly an "
			       "earlier slicing (other files are in it); "
			       "refusing to replace it", dir);
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
		lm_manifest *man = NULL;
		rc = lm_manifest_build(m, s, src ? src + 1 : lm_onnx_path(m),
				       &man, e);
		if (!rc && snprintf(path, sizeof(path), "%s/%s", tmp,
				    LM_MANIFEST_FILE) >= (int)sizeof(path))
			rc = lm_fail(e, -ENAMETOOLONG, "%s: path too long", dir);
		if (!rc)
			rc = lm_manifest_save(man, path, e);
		lm_manifest_free(man);
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
