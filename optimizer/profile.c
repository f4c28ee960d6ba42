/*
 * profile.c: what `lamina bench` measured and `lamina plan` reads, kept in
 * profile.json.  For each batch size: every slice's weight, arena and
 * output bytes and its time on each device, the bytes crossing every cut,
 * the model's input bytes and the cost of one ring handoff on a device.
 * One file holds as many batch sizes as were measured.
 *
 * --model-speed NAME=F[@FROM] makes a device's times from a measured one's:
 * time(NAME) = time(FROM) / F, for every slice and batch.  F is a speed,
 * so F = 2 is twice as fast and F = 0.5 half as fast.  FROM defaults to
 * the first measured device (for `lamina bench` on one host: "local") and
 * must itself be measured, so requests never depend on their order.  The
 * derived times are stored like measured ones and the file records where
 * they came from ("derived"), so a reader needs nothing special.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define MAX_SLICES 1000000
#define MAX_BATCH 1000000
#define MAX_TIME_US 1e12

int lm_profile_create(int n_slices, lm_profile **out)
{
	*out = NULL;
	if (n_slices < 1 || n_slices > MAX_SLICES)
		return -EINVAL;
	lm_profile *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->n_slices = n_slices;
	*out = p;
	return 0;
}

static void free_batch(lm_profile_batch *b, int n_slices)
{
	if (b->slices)
		for (int i = 0; i < n_slices; i++)
			free(b->slices[i].time_us);
	free(b->slices);
	free(b->cut_bytes);
	free(b->bundle_bytes);
}

void lm_profile_free(lm_profile *p)
{
	if (!p)
		return;
	for (int i = 0; i < p->n_batches; i++)
		free_batch(&p->batches[i], p->n_slices);
	free(p->batches);
	free(p->devices);
	free(p->derived_from);
	free(p->speed);
	free(p->notes);
	free(p);
}

int lm_profile_find_device(const lm_profile *p, const char *name)
{
	for (int i = 0; i < p->n_devices; i++)
		if (!strcmp(p->devices[i], name))
			return i;
	return -1;
}

int lm_profile_find_batch(const lm_profile *p, int batch)
{
	for (int i = 0; i < p->n_batches; i++)
		if (p->batches[i].batch == batch)
			return i;
	return -1;
}

int lm_profile_add_device(lm_profile *p, const char *name)
{
	if (lm_profile_find_device(p, name) >= 0)
		return -EEXIST;
	if (strlen(name) >= LM_NAME_MAX || !jv_name_ok(name))
		return -EINVAL;
	size_t n = (size_t)p->n_devices + 1;
	char(*names)[LM_NAME_MAX] = realloc(p->devices, n * LM_NAME_MAX);
	if (!names)
		return -ENOMEM;
	p->devices = names;
	int *from = realloc(p->derived_from, n * sizeof(int));
	if (!from)
		return -ENOMEM;
	p->derived_from = from;
	double *speed = realloc(p->speed, n * sizeof(double));
	if (!speed)
		return -ENOMEM;
	p->speed = speed;
	char(*notes)[LM_NOTE_MAX] = realloc(p->notes, n * LM_NOTE_MAX);
	if (!notes)
		return -ENOMEM;
	p->notes = notes;
	p->notes[n - 1][0] = '\0';
	/* Every slice of every batch gets a column, unmeasured. */
	for (int b = 0; b < p->n_batches; b++)
		for (int i = 0; i < p->n_slices; i++) {
			lm_profile_slice *s = &p->batches[b].slices[i];
			double *t = realloc(s->time_us, n * sizeof(double));
			if (!t)
				return -ENOMEM;
			t[n - 1] = -1;
			s->time_us = t;
		}
	snprintf(p->devices[n - 1], LM_NAME_MAX, "%s", name);
	p->derived_from[n - 1] = -1;
	p->speed[n - 1] = 1;
	p->n_devices = (int)n;
	return (int)n - 1;
}

lm_profile_batch *lm_profile_add_batch(lm_profile *p, int batch)
{
	if (batch < 1 || lm_profile_find_batch(p, batch) >= 0)
		return NULL;
	lm_profile_batch *bs = realloc(p->batches, ((size_t)p->n_batches + 1) *
							   sizeof(*bs));
	if (!bs)
		return NULL;
	p->batches = bs;
	lm_profile_batch *b = &bs[p->n_batches];
	memset(b, 0, sizeof(*b));
	b->batch = batch;
	b->slices = calloc((size_t)p->n_slices, sizeof(*b->slices));
	b->cut_bytes = calloc((size_t)p->n_slices, sizeof(double));
	b->bundle_bytes = malloc(((size_t)p->n_slices + 1) * sizeof(double));
	if (!b->slices || !b->cut_bytes || !b->bundle_bytes) {
		free_batch(b, 0);
		return NULL;
	}
	for (int k = 0; k <= p->n_slices; k++)
		b->bundle_bytes[k] = -1;
	for (int i = 0; i < p->n_slices; i++) {
		size_t nd = p->n_devices ? (size_t)p->n_devices : 1;
		b->slices[i].time_us = malloc(nd * sizeof(double));
		if (!b->slices[i].time_us) {
			free_batch(b, p->n_slices);
			return NULL;
		}
		for (size_t d = 0; d < nd; d++)
			b->slices[i].time_us[d] = -1;
	}
	p->n_batches++;
	return b;
}

/* ---- reading ---- */

static int read_slice(const json_t *o, lm_profile *p, lm_profile_slice *s,
		      int i, const char *where_batch, lm_error *e)
{
	static const char *const known[] = { "index", "label", "weight_bytes",
					     "arena_bytes", "output_bytes",
					     "time_us", NULL };
	char where[4400];
	long long index = -1;
	int rc;
	snprintf(where, sizeof(where), "%s, slice %d", where_batch, i);
	if (!json_is_object(o))
		return lm_fail(e, -EINVAL, "%s: not an object", where);
	if ((rc = jv_only(o, known, where, e)) ||
	    (rc = jv_int(o, "index", 1, 0, MAX_SLICES, &index, where, e)))
		return rc;
	if (index != i)
		return lm_fail(e, -EINVAL, "%s: \"index\" is %lld (slices must "
			       "be listed in order)", where, index);
	if ((rc = jv_string(o, "label", 0, s->label, sizeof(s->label), where,
			    e)) ||
	    (rc = jv_number(o, "weight_bytes", 1, 0, LM_BYTES_MAX,
			    &s->weight_bytes, where, e)) ||
	    (rc = jv_number(o, "arena_bytes", 1, 0, LM_BYTES_MAX,
			    &s->arena_bytes, where, e)) ||
	    (rc = jv_number(o, "output_bytes", 1, 0, LM_BYTES_MAX,
			    &s->output_bytes, where, e)))
		return rc;
	json_t *times = json_object_get(o, "time_us");
	if (!json_is_object(times))
		return lm_fail(e, -EINVAL, "%s: \"time_us\" must be an object "
			       "of device: microseconds", where);
	const char *dev;
	json_t *v;
	json_object_foreach(times, dev, v) {
		int d = lm_profile_find_device(p, dev);
		if (d < 0)
			return lm_fail(e, -EINVAL, "%s: time for '%s', which is "
				       "not in \"devices\"", where, dev);
		if ((rc = jv_number(times, dev, 1, 0, MAX_TIME_US,
				    &s->time_us[d], where, e)))
			return rc;
	}
	for (int d = 0; d < p->n_devices; d++)
		if (s->time_us[d] < 0)
			return lm_fail(e, -EINVAL, "%s: no time for device "
				       "'%s'", where, p->devices[d]);
	return 0;
}

static int read_batch(const json_t *o, lm_profile *p, int i,
		      const char *path, lm_error *e)
{
	static const char *const known[] = { "batch", "input_bytes",
					     "handoff_us", "slices",
					     "cut_bytes", "bundle_bytes",
					     NULL };
	char where[4200];
	long long batch = 0;
	int rc;
	snprintf(where, sizeof(where), "%s: batch entry %d", path, i);
	if (!json_is_object(o))
		return lm_fail(e, -EINVAL, "%s: not an object", where);
	if ((rc = jv_only(o, known, where, e)) ||
	    (rc = jv_int(o, "batch", 1, 1, MAX_BATCH, &batch, where, e)))
		return rc;
	snprintf(where, sizeof(where), "%s: batch %lld", path, batch);
	if (lm_profile_find_batch(p, (int)batch) >= 0)
		return lm_fail(e, -EINVAL, "%s: listed twice", where);
	lm_profile_batch *b = lm_profile_add_batch(p, (int)batch);
	if (!b)
		return lm_fail(e, -ENOMEM, "%s: out of memory", where);
	if ((rc = jv_number(o, "input_bytes", 1, 0, LM_BYTES_MAX,
			    &b->input_bytes, where, e)) ||
	    (rc = jv_number(o, "handoff_us", 1, 0, MAX_TIME_US,
			    &b->handoff_us, where, e)))
		return rc;
	json_t *slices = json_object_get(o, "slices");
	if (!json_is_array(slices) ||
	    json_array_size(slices) != (size_t)p->n_slices)
		return lm_fail(e, -EINVAL, "%s: \"slices\" must list all %d "
			       "slices", where, p->n_slices);
	for (int s = 0; s < p->n_slices; s++)
		if ((rc = read_slice(json_array_get(slices, (size_t)s), p,
				     &b->slices[s], s, where, e)))
			return rc;
	json_t *cuts = json_object_get(o, "cut_bytes");
	if (!json_is_array(cuts) ||
	    json_array_size(cuts) != (size_t)p->n_slices - 1)
		return lm_fail(e, -EINVAL, "%s: \"cut_bytes\" must list %d "
			       "numbers, one per cut", where, p->n_slices - 1);
	for (int k = 0; k + 1 < p->n_slices; k++) {
		json_t *v = json_array_get(cuts, (size_t)k);
		double x = json_number_value(v);
		if (!json_is_number(v) || !isfinite(x) || x < 0 ||
		    x > LM_BYTES_MAX)
			return lm_fail(e, -EINVAL, "%s: \"cut_bytes\"[%d] must "
				       "be a byte count", where, k);
		b->cut_bytes[k] = x;
	}
	json_t *bundles = json_object_get(o, "bundle_bytes");
	if (!bundles)
		return 0; /* an older profile: the cost model estimates */
	if (!json_is_array(bundles) ||
	    json_array_size(bundles) != (size_t)p->n_slices + 1)
		return lm_fail(e, -EINVAL, "%s: \"bundle_bytes\" must list %d "
			       "numbers, one per boundary", where,
			       p->n_slices + 1);
	for (int k = 0; k <= p->n_slices; k++) {
		json_t *v = json_array_get(bundles, (size_t)k);
		double x = json_number_value(v);
		if (!json_is_number(v) || !isfinite(x) || x < 0 ||
		    x > LM_BYTES_MAX)
			return lm_fail(e, -EINVAL, "%s: \"bundle_bytes\"[%d] "
				       "must be a byte count", where, k);
		b->bundle_bytes[k] = x;
	}
	return 0;
}

static int read_derived(const json_t *derived, lm_profile *p,
			const char *path, lm_error *e)
{
	static const char *const known[] = { "from", "speed", "note", NULL };
	const char *name;
	json_t *o;
	int rc;
	if (!json_is_object(derived))
		return lm_fail(e, -EINVAL, "%s: \"derived\" must be an object",
			       path);
	json_object_foreach((json_t *)derived, name, o) {
		char where[4200], from[LM_NAME_MAX];
		double speed = 1;
		snprintf(where, sizeof(where), "%s: derived '%s'", path, name);
		int d = lm_profile_find_device(p, name);
		if (d < 0)
			return lm_fail(e, -EINVAL, "%s: not in \"devices\"",
				       where);
		if (!json_is_object(o))
			return lm_fail(e, -EINVAL, "%s: not an object", where);
		if ((rc = jv_only(o, known, where, e)) ||
		    (rc = jv_string(o, "from", 1, from, sizeof(from), where,
				    e)) ||
		    (rc = jv_number(o, "speed", 1, 1e-9, 1e9, &speed, where,
				    e)) ||
		    (rc = jv_string(o, "note", 0, p->notes[d], LM_NOTE_MAX,
				    where, e)))
			return rc;
		int f = lm_profile_find_device(p, from);
		if (f < 0 || f == d)
			return lm_fail(e, -EINVAL, "%s: \"from\" must name "
				       "another device in \"devices\"", where);
		p->derived_from[d] = f;
		p->speed[d] = speed;
	}
	for (int d = 0; d < p->n_devices; d++)
		if (p->derived_from[d] >= 0 &&
		    p->derived_from[p->derived_from[d]] >= 0)
			return lm_fail(e, -EINVAL, "%s: derived '%s' comes from "
				       "'%s', itself derived", path,
				       p->devices[d],
				       p->devices[p->derived_from[d]]);
	return 0;
}

int lm_profile_load(const char *path, lm_profile **out, lm_error *e)
{
	static const char *const known[] = { "format", "version", "model",
					     "slices", "devices", "derived",
					     "batches", NULL };
	lm_profile *p = NULL;
	char format[64] = "";
	long long version = 0, n = 0;
	size_t i;
	json_t *v;
	int rc;
	*out = NULL;
	json_t *doc = jv_load(path, &rc, e);
	if (!doc)
		return rc;
	if ((rc = jv_string(doc, "format", 1, format, sizeof(format), path,
			    e)))
		goto out;
	if (strcmp(format, "lamina-profile")) {
		rc = lm_fail(e, -EINVAL, "%s: not a lamina profile (format "
			     "'%s')", path, format);
		goto out;
	}
	if ((rc = jv_int(doc, "version", 1, 1, 1000, &version, path, e)))
		goto out;
	if (version != 1) {
		rc = lm_fail(e, -EINVAL, "%s: profile version %lld (this "
			     "lamina reads version 1)", path, version);
		goto out;
	}
	if ((rc = jv_only(doc, known, path, e)) ||
	    (rc = jv_int(doc, "slices", 1, 1, MAX_SLICES, &n, path, e)))
		goto out;
	if ((rc = lm_profile_create((int)n, &p)))
		goto out;
	if ((rc = jv_string(doc, "model", 0, p->model, sizeof(p->model), path,
			    e)))
		goto out;
	json_t *devs = json_object_get(doc, "devices");
	if (!json_is_array(devs) || json_array_size(devs) == 0 ||
	    json_array_size(devs) > 4096) {
		rc = lm_fail(e, -EINVAL, "%s: \"devices\" must list the names "
			     "of the timed devices", path);
		goto out;
	}
	json_array_foreach(devs, i, v) {
		const char *name = json_string_value(v);
		rc = name ? lm_profile_add_device(p, name) : -EINVAL;
		if (rc == -EEXIST) {
			rc = lm_fail(e, -EINVAL, "%s: device '%s' is listed "
				     "twice", path, name);
			goto out;
		}
		if (rc < 0) {
			rc = lm_fail(e, rc, "%s: \"devices\"[%zu] must be a "
				     "name of 1 to %d printable characters",
				     path, i, LM_NAME_MAX - 1);
			goto out;
		}
	}
	json_t *derived = json_object_get(doc, "derived");
	if (derived && (rc = read_derived(derived, p, path, e)))
		goto out;
	json_t *batches = json_object_get(doc, "batches");
	if (!json_is_array(batches) || json_array_size(batches) == 0) {
		rc = lm_fail(e, -EINVAL, "%s: \"batches\" must list at least "
			     "one batch size", path);
		goto out;
	}
	json_array_foreach(batches, i, v)
		if ((rc = read_batch(v, p, (int)i, path, e)))
			goto out;
	rc = 0;
out:
	json_decref(doc);
	if (rc < 0) {
		lm_profile_free(p);
		return rc;
	}
	*out = p;
	return 0;
}

/* ---- writing ---- */

int lm_profile_save(const lm_profile *p, const char *path, lm_error *e)
{
	for (int b = 0; b < p->n_batches; b++)
		for (int i = 0; i < p->n_slices; i++)
			for (int d = 0; d < p->n_devices; d++)
				if (!(p->batches[b].slices[i].time_us[d] >= 0))
					return lm_fail(e, -EINVAL, "%s: batch "
						       "%d, slice %d has no "
						       "time for '%s'", path,
						       p->batches[b].batch, i,
						       p->devices[d]);
	if (p->n_devices == 0 || p->n_batches == 0)
		return lm_fail(e, -EINVAL, "%s: a profile needs a device and a "
			       "batch size", path);
	json_t *doc = json_object(), *devs = json_array();
	json_t *derived = json_object(), *batches = json_array();
	json_object_set_new(doc, "format", json_string("lamina-profile"));
	json_object_set_new(doc, "version", json_integer(1));
	if (p->model[0])
		json_object_set_new(doc, "model", json_string(p->model));
	json_object_set_new(doc, "slices", json_integer(p->n_slices));
	for (int d = 0; d < p->n_devices; d++) {
		json_array_append_new(devs, json_string(p->devices[d]));
		if (p->derived_from[d] >= 0) {
			json_t *o = json_pack("{s:s, s:f}", "from",
					      p->devices[p->derived_from[d]],
					      "speed", p->speed[d]);
			if (o && p->notes[d][0])
				json_object_set_new(o, "note",
						    json_string(p->notes[d]));
			json_object_set_new(derived, p->devices[d], o);
		}
	}
	json_object_set_new(doc, "devices", devs);
	if (json_object_size(derived))
		json_object_set_new(doc, "derived", derived);
	else
		json_decref(derived);
	for (int b = 0; b < p->n_batches; b++) {
		const lm_profile_batch *pb = &p->batches[b];
		json_t *o = json_object(), *slices = json_array();
		json_t *cuts = json_array();
		json_object_set_new(o, "batch", json_integer(pb->batch));
		json_object_set_new(o, "input_bytes",
				    json_integer((json_int_t)pb->input_bytes));
		json_object_set_new(o, "handoff_us", json_real(pb->handoff_us));
		for (int i = 0; i < p->n_slices; i++) {
			const lm_profile_slice *s = &pb->slices[i];
			json_t *so = json_object(), *t = json_object();
			json_object_set_new(so, "index", json_integer(i));
			if (s->label[0])
				json_object_set_new(so, "label",
						    json_string(s->label));
			json_object_set_new(so, "weight_bytes",
					    json_integer((json_int_t)
							 s->weight_bytes));
			json_object_set_new(so, "arena_bytes",
					    json_integer((json_int_t)
							 s->arena_bytes));
			json_object_set_new(so, "output_bytes",
					    json_integer((json_int_t)
							 s->output_bytes));
			for (int d = 0; d < p->n_devices; d++)
				json_object_set_new(t, p->devices[d],
						    json_real(s->time_us[d]));
			json_object_set_new(so, "time_us", t);
			json_array_append_new(slices, so);
		}
		for (int k = 0; k + 1 < p->n_slices; k++)
			json_array_append_new(
				cuts, json_integer((json_int_t)pb->cut_bytes[k]));
		json_object_set_new(o, "slices", slices);
		json_object_set_new(o, "cut_bytes", cuts);
		int measured = 1;
		for (int k = 0; k <= p->n_slices; k++)
			measured &= pb->bundle_bytes[k] >= 0;
		if (measured) {
			json_t *bb = json_array();
			for (int k = 0; k <= p->n_slices; k++)
				json_array_append_new(
					bb, json_integer((json_int_t)
							 pb->bundle_bytes[k]));
			json_object_set_new(o, "bundle_bytes", bb);
		}
		json_array_append_new(batches, o);
	}
	json_object_set_new(doc, "batches", batches);
	int rc = jv_save(doc, path, e);
	json_decref(doc);
	return rc;
}

/* ---- --model-speed ---- */

int lm_profile_parse_speed(const char *arg, lm_model_speed *s, lm_error *e)
{
	const char *eq = strchr(arg, '=');
	memset(s, 0, sizeof(*s));
	if (!eq || eq == arg || (size_t)(eq - arg) >= sizeof(s->name))
		return lm_fail(e, -EINVAL, "--model-speed '%s': expected "
			       "NAME=F or NAME=F@FROM", arg);
	memcpy(s->name, arg, (size_t)(eq - arg));
	char *end;
	s->factor = strtod(eq + 1, &end);
	if (end == eq + 1 || !isfinite(s->factor) || s->factor <= 0 ||
	    s->factor > 1e6 || (*end && *end != '@'))
		return lm_fail(e, -EINVAL, "--model-speed '%s': the speed must "
			       "be a number above 0 (2: twice as fast)", arg);
	if (*end == '@') {
		if (!end[1] || strlen(end + 1) >= sizeof(s->from))
			return lm_fail(e, -EINVAL, "--model-speed '%s': "
				       "expected a device name after '@'",
				       arg);
		snprintf(s->from, sizeof(s->from), "%s", end + 1);
	}
	if (!jv_name_ok(s->name))
		return lm_fail(e, -EINVAL, "--model-speed '%s': bad device "
			       "name", arg);
	return 0;
}

int lm_profile_derive(lm_profile *p, const lm_model_speed *s, lm_error *e)
{
	int from = -1;
	if (s->from[0]) {
		from = lm_profile_find_device(p, s->from);
		if (from < 0)
			return lm_fail(e, -EINVAL, "--model-speed %s=%g@%s: the "
				       "profile has no times for '%s'",
				       s->name, s->factor, s->from, s->from);
	} else {
		for (int d = 0; d < p->n_devices && from < 0; d++)
			if (p->derived_from[d] < 0)
				from = d;
		if (from < 0)
			return lm_fail(e, -EINVAL, "--model-speed %s: the "
				       "profile has no measured device",
				       s->name);
	}
	if (p->derived_from[from] >= 0)
		return lm_fail(e, -EINVAL, "--model-speed %s: '%s' is itself "
			       "derived; derive from a measured device",
			       s->name, p->devices[from]);
	if (!strcmp(p->devices[from], s->name))
		return lm_fail(e, -EINVAL, "--model-speed %s: a device cannot "
			       "be derived from itself", s->name);
	int d = lm_profile_find_device(p, s->name);
	for (int k = 0; d >= 0 && k < p->n_devices; k++)
		if (p->derived_from[k] == d)
			return lm_fail(e, -EINVAL, "--model-speed %s: '%s' is "
				       "derived from it; derive both from a "
				       "measured device", s->name,
				       p->devices[k]);
	if (d < 0) {
		d = lm_profile_add_device(p, s->name);
		if (d < 0)
			return lm_fail(e, d, "--model-speed %s: cannot add the "
				       "device", s->name);
	}
	for (int b = 0; b < p->n_batches; b++)
		for (int i = 0; i < p->n_slices; i++) {
			lm_profile_slice *sl = &p->batches[b].slices[i];
			if (sl->time_us[from] < 0)
				return lm_fail(e, -EINVAL, "--model-speed %s: "
					       "'%s' has no time for slice %d "
					       "at batch %d", s->name,
					       p->devices[from], i,
					       p->batches[b].batch);
			sl->time_us[d] = sl->time_us[from] / s->factor;
		}
	p->derived_from[d] = from;
	p->speed[d] = s->factor;
	snprintf(p->notes[d], LM_NOTE_MAX, "%s", s->note);
	return 0;
}
