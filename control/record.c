/*
 * record.c: deployment records (see record.h for the format).  Everything
 * is read through jansson's json_unpack, which checks the types; lengths
 * are checked before anything is copied.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "lamina/fsutil.h"
#include "record.h"

int lm_state_dir(const char *dir, char *out, size_t len, lm_error *e)
{
	const char *env = getenv("LAMINA_STATE_DIR");
	const char *xdg = getenv("XDG_STATE_HOME");
	const char *home = getenv("HOME");
	int n;
	if (dir && *dir)
		n = snprintf(out, len, "%s", dir);
	else if (env && *env)
		n = snprintf(out, len, "%s", env);
	else if (xdg && *xdg == '/')
		n = snprintf(out, len, "%s/lamina", xdg);
	else if (home && *home)
		n = snprintf(out, len, "%s/.local/state/lamina", home);
	else
		return lm_fail(e, -ENOENT, "no state folder: set HOME, "
			       "XDG_STATE_HOME or give --state-dir");
	if (n < 0 || (size_t)n >= len)
		return lm_fail(e, -ENAMETOOLONG, "state folder path too long");
	int rc = lm_mkdirs(out, 0700);
	if (rc)
		return lm_fail(e, rc, "state folder %s: %s", out, strerror(-rc));
	/* absolute: laminad is given it, and records name files in it */
	char abs[PATH_MAX];
	if (!realpath(out, abs))
		return lm_fail(e, -errno, "state folder %s: %s", out,
			       strerror(errno));
	if (strlen(abs) >= len)
		return lm_fail(e, -ENAMETOOLONG, "state folder path too long");
	memcpy(out, abs, strlen(abs) + 1);
	return 0;
}

int lm_record_id_ok(const char *id)
{
	size_t n = strlen(id);
	if (n < 3 || n >= LM_REC_ID_MAX || strncmp(id, "d-", 2))
		return 0;
	for (size_t i = 2; i < n; i++)
		if (!strchr("0123456789abcdef", id[i]))
			return 0;
	return 1;
}

static lm_record *alloc_record(int n_devices, int n_stages)
{
	lm_record *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->devices = calloc((size_t)(n_devices ? n_devices : 1),
			    sizeof(*r->devices));
	r->stages = calloc((size_t)(n_stages ? n_stages : 1),
			   sizeof(*r->stages));
	if (!r->devices || !r->stages) {
		lm_record_free(r);
		return NULL;
	}
	r->n_devices = n_devices;
	r->n_stages = n_stages;
	return r;
}

void lm_record_free(lm_record *r)
{
	if (!r)
		return;
	free(r->devices);
	free(r->stages);
	free(r);
}

int lm_record_create(const char *dir, int n_devices, int n_stages,
		     lm_record **out, lm_error *e)
{
	uint32_t rnd;
	*out = NULL;
	if (getrandom(&rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		return lm_fail(e, -errno, "no randomness for a deployment id: "
			       "%s", strerror(errno));
	lm_record *r = alloc_record(n_devices, n_stages);
	if (!r)
		return lm_fail(e, -ENOMEM, "out of memory");
	snprintf(r->id, sizeof(r->id), "d-%08x", rnd);
	if (snprintf(r->file, sizeof(r->file), "%s/%s.json", dir, r->id) >=
	    (int)sizeof(r->file)) {
		lm_record_free(r);
		return lm_fail(e, -ENAMETOOLONG, "state folder path too long");
	}
	snprintf(r->status, sizeof(r->status), "deploying");
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	r->created_unix = (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	strftime(r->created, sizeof(r->created), "%Y-%m-%dT%H:%M:%SZ", &tm);
	*out = r;
	return 0;
}

static const char *stage_status_name(lm_stage_status s)
{
	return s == LM_STAGE_LOADED ? "loaded"
	       : s == LM_STAGE_LOADING ? "loading" : "planned";
}

int lm_record_save(const lm_record *r, lm_error *e)
{
	json_t *devs = json_array(), *lds = json_array(), *stages = json_array();
	for (int i = 0; i < r->n_devices; i++)
		json_array_append_new(devs, json_pack(
			"{s:s, s:s, s:i}", "name", r->devices[i].name,
			"address", r->devices[i].address, "laminad",
			r->devices[i].laminad));
	for (int i = 0; i < r->n_laminads; i++) {
		const lm_rec_laminad *l = &r->laminads[i];
		json_array_append_new(lds, json_pack(
			"{s:s, s:i, s:i, s:i, s:b, s:s, s:s, s:i}", "host",
			l->host, "control_port", l->control_port,
			"ingress_port", l->ingress_port, "http_port",
			l->http_port, "started", l->started, "ssh", l->ssh,
			"exe", l->exe, "pid", l->pid));
	}
	for (int i = 0; i < r->n_stages; i++) {
		const lm_rec_stage *st = &r->stages[i];
		json_t *cores = json_array();
		for (int c = 0; c < st->n_cores; c++)
			json_array_append_new(cores, json_integer(st->cores[c]));
		json_array_append_new(stages, json_pack(
			"{s:i, s:s, s:i, s:[i, i], s:i, s:o, s:s}", "stage", i,
			"device", st->device, "laminad", st->laminad, "slices",
			st->first, st->last, "replicas", st->replicas, "cores",
			cores, "status", stage_status_name(st->status)));
	}
	json_t *doc = json_pack(
		"{s:s, s:i, s:s, s:s, s:s, s:s, s:s, s:i, s:s, s:f, s:o, s:o, "
		"s:o}",
		"format", "lamina-deployment", "version", 2, "id", r->id,
		"name", r->name[0] ? r->name : r->id,
		"status", r->status, "plan", r->plan, "model", r->model,
		"batch", r->batch, "created", r->created, "created_unix",
		r->created_unix, "devices", devs, "laminads", lds, "stages",
		stages);
	char *text = doc ? json_dumps(doc, JSON_INDENT(2)) : NULL;
	json_decref(doc);
	if (!text)
		return lm_fail(e, -ENOMEM, "out of memory");
	/* on disk before the rename: the record is what teardown trusts */
	int rc = lm_write_atomic(r->file, text, strlen(text), 0600, e);
	free(text);
	return rc;
}

int lm_record_http_url(const lm_record *r, char *buf, size_t len)
{
	const lm_rec_laminad *in =
		r->n_stages ? &r->laminads[r->stages[0].laminad] : NULL;
	buf[0] = '\0';
	if (!in || !in->http_port)
		return 0;
	int v6 = strchr(in->host, ':') != NULL;
	snprintf(buf, len, "http://%s%s%s:%d/v2/models/%s", v6 ? "[" : "",
		 in->host, v6 ? "]" : "", in->http_port,
		 r->name[0] ? r->name : r->id);
	return 1;
}

int lm_record_remove(const lm_record *r, lm_error *e)
{
	if (unlink(r->file) && errno != ENOENT)
		return lm_fail(e, -errno, "%s: %s", r->file, strerror(errno));
	return 0;
}

/* Copy a string a file gave, refusing what does not fit. */
static int copy(char *dst, size_t len, const char *src, const char *field,
		const char *path, lm_error *e)
{
	if (strlen(src) >= len)
		return lm_fail(e, -EINVAL, "%s: \"%s\" is too long", path,
			       field);
	memcpy(dst, src, strlen(src) + 1);
	return 0;
}

static int read_laminad(json_t *o, lm_rec_laminad *l, const char *path,
			lm_error *e)
{
	const char *host, *ssh = "", *exe = "";
	json_error_t je;
	if (json_unpack_ex(o, &je, 0,
			   "{s:s, s:i, s:i, s?i, s:b, s?s, s?s, s?i}", "host",
			   &host, "control_port", &l->control_port,
			   "ingress_port", &l->ingress_port, "http_port",
			   &l->http_port, "started", &l->started, "ssh", &ssh,
			   "exe", &exe, "pid", &l->pid))
		return lm_fail(e, -EINVAL, "%s: laminads: %s", path, je.text);
	if (l->control_port < 1 || l->control_port > 65535 ||
	    l->ingress_port < 0 || l->ingress_port > 65535 ||
	    l->http_port < 0 || l->http_port > 65535 || l->pid < 0)
		return lm_fail(e, -EINVAL, "%s: laminads: a port or pid out of "
			       "range", path);
	if (copy(l->ssh, sizeof(l->ssh), ssh, "ssh", path, e) ||
	    copy(l->exe, sizeof(l->exe), exe, "exe", path, e))
		return -EINVAL;
	return copy(l->host, sizeof(l->host), host, "host", path, e);
}

static int read_stage(json_t *o, lm_record *r, lm_rec_stage *st,
		      const char *path, lm_error *e)
{
	const char *device, *status;
	json_t *cores;
	json_error_t je;
	if (json_unpack_ex(o, &je, 0, "{s:s, s:i, s:[i, i], s:i, s:o, s:s}",
			   "device", &device, "laminad", &st->laminad,
			   "slices", &st->first, &st->last, "replicas",
			   &st->replicas, "cores", &cores, "status", &status))
		return lm_fail(e, -EINVAL, "%s: stages: %s", path, je.text);
	if (st->laminad < 0 || st->laminad >= r->n_laminads ||
	    !json_is_array(cores) || json_array_size(cores) > LM_REC_MAX_CORES)
		return lm_fail(e, -EINVAL, "%s: stages: bad \"laminad\" or "
			       "\"cores\"", path);
	st->n_cores = (int)json_array_size(cores);
	for (int c = 0; c < st->n_cores; c++)
		st->cores[c] = (int)json_integer_value(
			json_array_get(cores, (size_t)c));
	st->status = !strcmp(status, "loaded")	  ? LM_STAGE_LOADED
		     : !strcmp(status, "loading") ? LM_STAGE_LOADING
						  : LM_STAGE_PLANNED;
	return copy(st->device, sizeof(st->device), device, "device", path, e);
}

int lm_record_load(const char *dir, const char *id, lm_record **out,
		   lm_error *e)
{
	char path[PATH_MAX];
	const char *fmt, *rid, *status, *plan, *model, *created, *dname = NULL;
	json_t *devs, *lds, *stages;
	json_error_t je;
	int rc, batch;
	double created_unix;
	*out = NULL;
	if (!lm_record_id_ok(id))
		return lm_fail(e, -EINVAL, "'%s' is not a deployment id (they "
			       "look like d-1a2b3c4d)", id);
	snprintf(path, sizeof(path), "%s/%s.json", dir, id);
	json_t *doc = json_load_file(path, 0, &je);
	if (!doc) {
		if (access(path, F_OK))
			return lm_fail(e, -ENOENT, "no deployment %s in %s", id,
				       dir);
		return lm_fail(e, -EINVAL, "%s: %s", path, je.text);
	}
	if (json_unpack_ex(doc, &je, 0,
			   "{s:s, s:s, s?s, s:s, s:s, s:s, s:i, s:s, s:F, s:o, "
			   "s:o, s:o}", "format", &fmt, "id", &rid, "name",
			   &dname, "status",
			   &status, "plan", &plan, "model", &model, "batch",
			   &batch, "created", &created, "created_unix",
			   &created_unix, "devices", &devs, "laminads", &lds,
			   "stages", &stages)) {
		rc = lm_fail(e, -EINVAL, "%s: %s", path, je.text);
		goto out;
	}
	if (strcmp(fmt, "lamina-deployment") || strcmp(rid, id) ||
	    !json_is_array(devs) || !json_is_array(lds) ||
	    !json_is_array(stages) ||
	    json_array_size(lds) > LM_REC_MAX_LAMINADS ||
	    json_array_size(devs) > 4096 || json_array_size(stages) > 1000000) {
		rc = lm_fail(e, -EINVAL, "%s: not a lamina deployment record",
			     path);
		goto out;
	}
	lm_record *r = alloc_record((int)json_array_size(devs),
				    (int)json_array_size(stages));
	if (!r) {
		rc = lm_fail(e, -ENOMEM, "out of memory");
		goto out;
	}
	snprintf(r->id, sizeof(r->id), "%s", id);
	snprintf(r->file, sizeof(r->file), "%s", path);
	r->batch = batch;
	r->created_unix = created_unix;
	r->n_laminads = (int)json_array_size(lds);
	if ((rc = copy(r->name, sizeof(r->name), dname ? dname : id, "name", path,
		       e)) ||
	    (rc = copy(r->status, sizeof(r->status), status, "status", path,
		       e)) ||
	    (rc = copy(r->plan, sizeof(r->plan), plan, "plan", path, e)) ||
	    (rc = copy(r->model, sizeof(r->model), model, "model", path, e)) ||
	    (rc = copy(r->created, sizeof(r->created), created, "created",
		       path, e)))
		goto fail;
	for (int i = 0; i < r->n_devices; i++) {
		const char *name, *addr;
		if (json_unpack_ex(json_array_get(devs, (size_t)i), &je, 0,
				   "{s:s, s:s, s:i}", "name", &name,
				   "address", &addr, "laminad",
				   &r->devices[i].laminad)) {
			rc = lm_fail(e, -EINVAL, "%s: devices: %s", path,
				     je.text);
			goto fail;
		}
		if ((rc = copy(r->devices[i].name, sizeof(r->devices[i].name),
			       name, "name", path, e)) ||
		    (rc = copy(r->devices[i].address,
			       sizeof(r->devices[i].address), addr, "address",
			       path, e)))
			goto fail;
	}
	for (int i = 0; i < r->n_laminads; i++)
		if ((rc = read_laminad(json_array_get(lds, (size_t)i),
				       &r->laminads[i], path, e)))
			goto fail;
	for (int i = 0; i < r->n_stages; i++)
		if ((rc = read_stage(json_array_get(stages, (size_t)i), r,
				     &r->stages[i], path, e)))
			goto fail;
	json_decref(doc);
	*out = r;
	return 0;
fail:
	lm_record_free(r);
out:
	json_decref(doc);
	return rc;
}

static int cmp_id(const void *a, const void *b)
{
	return strcmp(a, b);
}

int lm_record_list(const char *dir, char (**ids)[LM_REC_ID_MAX], int *n,
		   lm_error *e)
{
	*ids = NULL;
	*n = 0;
	DIR *d = opendir(dir);
	if (!d)
		return lm_fail(e, -errno, "%s: %s", dir, strerror(errno));
	struct dirent *de;
	int cap = 0, rc = 0;
	while ((de = readdir(d))) {
		char id[LM_REC_ID_MAX];
		size_t len = strlen(de->d_name);
		if (len < 6 || len - 5 >= sizeof(id) ||
		    strcmp(de->d_name + len - 5, ".json"))
			continue;
		memcpy(id, de->d_name, len - 5);
		id[len - 5] = '\0';
		if (!lm_record_id_ok(id))
			continue;
		if (*n == cap) {
			cap = cap ? 2 * cap : 16;
			void *p = realloc(*ids, (size_t)cap * sizeof(**ids));
			if (!p) {
				rc = lm_fail(e, -ENOMEM, "out of memory");
				break;
			}
			*ids = p;
		}
		memcpy((*ids)[(*n)++], id, sizeof(id));
	}
	closedir(d);
	if (rc) {
		free(*ids);
		*ids = NULL;
		*n = 0;
		return rc;
	}
	if (*n)
		qsort(*ids, (size_t)*n, sizeof(**ids), cmp_id);
	return 0;
}
