/*
 * plan_io.c: plan.json, what `lamina plan` writes and `lamina deploy`
 * reads.  The file carries the decision (which slices run on which device
 * with how many cores) and what the cost model predicts for it (per stage
 * time, period, memory and transfer; latency, throughput and bottleneck
 * for the whole), so what runs can be compared with what was promised.
 *
 * Reading checks the decision only: known devices, stages covering the
 * slices in order, each device one run, cores within each device.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static json_t *jbytes(double b)
{
	return json_integer((json_int_t)b);
}

int lm_plan_save(const lm_plan *p, const char *path, lm_error *e)
{
	json_t *doc = json_object(), *devs = json_array(), *stages = json_array();
	json_t *pred = json_object(), *solver = json_object();
	json_object_set_new(doc, "format", json_string("lamina-plan"));
	json_object_set_new(doc, "version", json_integer(2));
	if (p->model[0])
		json_object_set_new(doc, "model", json_string(p->model));
	json_object_set_new(doc, "objective",
			    json_string(p->objective == LM_PLAN_LATENCY
						? "latency" : "throughput"));
	json_object_set_new(doc, "batch", json_integer(p->batch));
	if (p->latency_budget_us > 0)
		json_object_set_new(doc, "latency_budget_us",
				    json_real(p->latency_budget_us));
	if (p->max_stages > 0)
		json_object_set_new(doc, "max_stages",
				    json_integer(p->max_stages));
	json_object_set_new(doc, "headroom_pct", json_real(p->headroom * 100));
	json_object_set_new(doc, "slices", json_integer(p->n_slices));
	json_object_set_new(doc, "ring_depth", json_integer(LM_PLAN_RING_DEPTH));
	json_object_set_new(doc, "keep", json_integer(p->keep));
	for (int i = 0; i < p->devices->n; i++) {
		const lm_device *d = &p->devices->dev[i];
		json_t *o = json_object();
		json_object_set_new(o, "name", json_string(d->name));
		json_object_set_new(o, "address", json_string(d->address));
		if (d->ssh[0])
			json_object_set_new(o, "ssh", json_string(d->ssh));
		json_object_set_new(o, "numa_node", json_integer(d->numa_node));
		json_object_set_new(o, "cores", json_integer(d->cores));
		json_object_set_new(o, "memory_bytes", jbytes(d->memory_bytes));
		json_object_set_new(o, "cores_used",
				    json_integer(p->cores_used[i]));
		json_object_set_new(o, "memory_used_bytes",
				    jbytes(p->memory_used[i]));
		json_object_set_new(o, "memory_limit_bytes",
				    jbytes(p->memory_limit[i]));
		json_array_append_new(devs, o);
	}
	json_object_set_new(doc, "devices", devs);
	for (int i = 0; i < p->n_stages; i++) {
		const lm_plan_stage *s = &p->stages[i];
		json_t *o = json_object();
		json_object_set_new(o, "device",
				    json_string(p->devices->dev[s->device].name));
		json_object_set_new(o, "slices",
				    json_pack("[i, i]", s->first, s->last));
		json_object_set_new(o, "cores", json_integer(s->cores));
		json_object_set_new(o, "predicted_us", json_real(s->time_us));
		json_object_set_new(o, "period_us", json_real(s->period_us));
		json_object_set_new(o, "memory_bytes", jbytes(s->memory_bytes));
		json_object_set_new(o, "weight_bytes", jbytes(s->weight_bytes));
		json_object_set_new(o, "arena_bytes", jbytes(s->arena_bytes));
		json_object_set_new(o, "ring_bytes", jbytes(s->ring_bytes));
		json_object_set_new(o, "in_bundles", json_integer(s->in_bundles));
		json_object_set_new(o, "out_bundles",
				    json_integer(s->out_bundles));
		json_object_set_new(o, "answers_bundles",
				    json_integer(s->answers_bundles));
		json_object_set_new(o, "input_bytes", jbytes(s->in_bytes));
		json_object_set_new(o, "output_bytes", jbytes(s->out_bytes));
		if (s->xfer != LM_XFER_NONE)
			json_object_set_new(
				o, "next",
				json_pack("{s:s, s:f, s:f}", "kind",
					  s->xfer == LM_XFER_RING ? "ring"
								  : "link",
					  "latency_us", s->xfer_us,
					  "occupancy_us", s->xfer_occupancy_us));
		json_array_append_new(stages, o);
	}
	json_object_set_new(doc, "stages", stages);
	json_object_set_new(pred, "latency_us", json_real(p->latency_us));
	json_object_set_new(pred, "throughput_rps",
			    json_real(p->throughput_rps));
	json_object_set_new(pred, "period_us", json_real(p->period_us));
	if (p->bottleneck >= 0)
		json_object_set_new(pred, "bottleneck",
				    json_pack("{s:i, s:s}", "stage",
					      p->bottleneck, "kind",
					      p->bottleneck_xfer ? "transfer"
								 : "stage"));
	json_object_set_new(doc, "predicted", pred);
	json_object_set_new(solver, "exact", json_boolean(p->exact));
	json_object_set_new(solver, p->objective == LM_PLAN_LATENCY
					    ? "bound_latency_us"
					    : "bound_throughput_rps",
			    json_real(p->bound));
	json_object_set_new(solver, "seconds", json_real(p->solve_seconds));
	if (p->note[0])
		json_object_set_new(solver, "note", json_string(p->note));
	json_object_set_new(doc, "solver", solver);
	int rc = jv_save(doc, path, e);
	json_decref(doc);
	return rc;
}

static int read_plan_device(const json_t *o, lm_device *d, int i,
			    const char *path, lm_error *e)
{
	char where[4200];
	long long v = 0;
	int rc;
	snprintf(where, sizeof(where), "%s: device %d", path, i);
	if (!json_is_object(o))
		return lm_fail(e, -EINVAL, "%s: not an object", where);
	if ((rc = jv_string(o, "name", 1, d->name, sizeof(d->name), where, e)))
		return rc;
	if (!jv_name_ok(d->name))
		return lm_fail(e, -EINVAL, "%s: bad \"name\"", where);
	snprintf(where, sizeof(where), "%s: device '%s'", path, d->name);
	if ((rc = jv_int(o, "cores", 1, 1, 4096, &v, where, e)))
		return rc;
	d->cores = (int)v;
	v = 0;
	if ((rc = jv_int(o, "numa_node", 0, 0, 1023, &v, where, e)))
		return rc;
	d->numa_node = (int)v;
	if ((rc = jv_number(o, "memory_bytes", 1, 1, LM_BYTES_MAX,
			    &d->memory_bytes, where, e)) ||
	    (rc = jv_string(o, "ssh", 0, d->ssh, sizeof(d->ssh), where, e)))
		return rc;
	return jv_string(o, "address", 0, d->address, sizeof(d->address),
			 where, e);
}

static int read_stage(const json_t *o, lm_plan *p, int i, const char *path,
		      lm_error *e)
{
	lm_plan_stage *s = &p->stages[i];
	char where[4200], dev[LM_NAME_MAX];
	long long v;
	int rc;
	snprintf(where, sizeof(where), "%s: stage %d", path, i);
	if (!json_is_object(o))
		return lm_fail(e, -EINVAL, "%s: not an object", where);
	if ((rc = jv_string(o, "device", 1, dev, sizeof(dev), where, e)))
		return rc;
	s->device = lm_devices_find(p->devices, dev);
	if (s->device < 0)
		return lm_fail(e, -EINVAL, "%s: device '%s' is not in "
			       "\"devices\"", where, dev);
	json_t *sl = json_object_get(o, "slices");
	if (!json_is_array(sl) || json_array_size(sl) != 2 ||
	    !json_is_integer(json_array_get(sl, 0)) ||
	    !json_is_integer(json_array_get(sl, 1)))
		return lm_fail(e, -EINVAL, "%s: \"slices\" must be [first, "
			       "last]", where);
	long long first = json_integer_value(json_array_get(sl, 0));
	long long last = json_integer_value(json_array_get(sl, 1));
	int expect = i ? p->stages[i - 1].last + 1 : 0;
	if (first != expect || last < first || last >= p->n_slices)
		return lm_fail(e, -EINVAL, "%s: slices [%lld, %lld] do not "
			       "follow on from slice %d (of %d)", where, first,
			       last, expect - 1, p->n_slices);
	s->first = (int)first;
	s->last = (int)last;
	if ((rc = jv_int(o, "cores", 1, 1, 4096, &v, where, e)))
		return rc;
	s->cores = (int)v;
	/* the pools laminad makes for this stage, as the plan charged them */
	if ((rc = jv_int(o, "in_bundles", 1, 1, 4096, &v, where, e)))
		return rc;
	s->in_bundles = (int)v;
	v = 0;
	if ((rc = jv_int(o, "out_bundles", 1, 0, 4096, &v, where, e)))
		return rc;
	s->out_bundles = (int)v;
	v = 0;
	if ((rc = jv_int(o, "answers_bundles", 1, 0, 4096, &v, where, e)))
		return rc;
	s->answers_bundles = (int)v;
	if ((rc = jv_number(o, "predicted_us", 0, 0, 1e15, &s->time_us, where,
			    e)) ||
	    (rc = jv_number(o, "period_us", 0, 0, 1e15, &s->period_us, where,
			    e)) ||
	    (rc = jv_number(o, "memory_bytes", 0, 0, 1e18, &s->memory_bytes,
			    where, e)) ||
	    (rc = jv_number(o, "weight_bytes", 1, 0, 1e18, &s->weight_bytes,
			    where, e)) ||
	    (rc = jv_number(o, "arena_bytes", 1, 0, 1e18, &s->arena_bytes,
			    where, e)) ||
	    (rc = jv_number(o, "ring_bytes", 1, 0, 1e18, &s->ring_bytes,
			    where, e)) ||
	    (rc = jv_number(o, "input_bytes", 0, 0, 1e18, &s->in_bytes, where,
			    e)) ||
	    (rc = jv_number(o, "output_bytes", 0, 0, 1e18, &s->out_bytes,
			    where, e)))
		return rc;
	s->xfer = LM_XFER_NONE;
	json_t *next = json_object_get(o, "next");
	if (json_is_object(next)) {
		const char *kind = json_string_value(json_object_get(next,
								     "kind"));
		s->xfer = kind && !strcmp(kind, "ring") ? LM_XFER_RING
							: LM_XFER_LINK;
		if ((rc = jv_number(next, "latency_us", 0, 0, 1e15,
				    &s->xfer_us, where, e)) ||
		    (rc = jv_number(next, "occupancy_us", 0, 0, 1e15,
				    &s->xfer_occupancy_us, where, e)))
			return rc;
	}
	return 0;
}

static int read_plan(json_t *doc, lm_plan **out, const char *path,
		     lm_error *e)
{
	char format[64] = "", obj[32] = "";
	long long v = 0, version = 0, slices = 0;
	lm_devices *devs = NULL;
	lm_plan *p = NULL;
	int rc;
	if ((rc = jv_string(doc, "format", 1, format, sizeof(format), path,
			    e)))
		return rc;
	if (strcmp(format, "lamina-plan"))
		return lm_fail(e, -EINVAL, "%s: not a lamina plan (format "
			       "'%s')", path, format);
	if ((rc = jv_int(doc, "version", 1, 1, 1000, &version, path, e)))
		return rc;
	if (version != 2)
		return lm_fail(e, -EINVAL, "%s: plan version %lld; this lamina "
			       "reads version 2, which states the memory of "
			       "every stage (run `lamina plan` again)", path,
			       version);
	if ((rc = jv_string(doc, "objective", 1, obj, sizeof(obj), path, e)))
		return rc;
	if (strcmp(obj, "latency") && strcmp(obj, "throughput"))
		return lm_fail(e, -EINVAL, "%s: \"objective\" must be latency "
			       "or throughput, not '%s'", path, obj);
	if ((rc = jv_int(doc, "slices", 1, 1, 1000000, &slices, path, e)))
		return rc;
	json_t *jd = json_object_get(doc, "devices");
	json_t *js = json_object_get(doc, "stages");
	if (!json_is_array(jd) || json_array_size(jd) == 0 ||
	    json_array_size(jd) > 4096)
		return lm_fail(e, -EINVAL, "%s: \"devices\" must list the "
			       "devices", path);
	if (!json_is_array(js) || json_array_size(js) == 0 ||
	    json_array_size(js) > (size_t)slices)
		return lm_fail(e, -EINVAL, "%s: \"stages\" must list 1 to %lld "
			       "stages", path, slices);
	if (lm_devices_create((int)json_array_size(jd), &devs))
		return lm_fail(e, -ENOMEM, "out of memory");
	for (int i = 0; i < devs->n; i++) {
		if ((rc = read_plan_device(json_array_get(jd, (size_t)i),
					   &devs->dev[i], i, path, e)))
			goto fail;
		for (int j = 0; j < i; j++)
			if (!strcmp(devs->dev[j].name, devs->dev[i].name)) {
				rc = lm_fail(e, -EINVAL, "%s: two devices are "
					     "named '%s'", path,
					     devs->dev[i].name);
				goto fail;
			}
	}
	if ((rc = lm_plan_create(devs, (int)json_array_size(js), &p))) {
		rc = lm_fail(e, -ENOMEM, "out of memory");
		goto fail;
	}
	p->objective = strcmp(obj, "latency") ? LM_PLAN_THROUGHPUT
					       : LM_PLAN_LATENCY;
	p->n_slices = (int)slices;
	if ((rc = jv_string(doc, "model", 0, p->model, sizeof(p->model), path,
			    e)))
		goto fail;
	if ((rc = jv_int(doc, "batch", 1, 1, 1000000, &v, path, e)))
		goto fail;
	p->batch = (int)v;
	v = 0;
	if ((rc = jv_int(doc, "max_stages", 0, 0, 32000, &v, path, e)))
		goto fail;
	p->max_stages = (int)v;
	double pct = 10;
	if ((rc = jv_number(doc, "latency_budget_us", 0, 0, 1e15,
			    &p->latency_budget_us, path, e)) ||
	    (rc = jv_number(doc, "headroom_pct", 0, 0, 99.999, &pct, path, e)))
		goto fail;
	p->headroom = pct / 100;
	v = 0;
	if ((rc = jv_int(doc, "keep", 0, 0, 1 << 20, &v, path, e)))
		goto fail;
	p->keep = (int)v;
	for (int i = 0; i < p->n_stages; i++)
		if ((rc = read_stage(json_array_get(js, (size_t)i), p, i, path,
				     e)))
			goto fail;
	if (p->stages[p->n_stages - 1].last != p->n_slices - 1) {
		rc = lm_fail(e, -EINVAL, "%s: the stages end at slice %d of "
			     "%d", path, p->stages[p->n_stages - 1].last,
			     p->n_slices);
		goto fail;
	}
	for (int i = 0; i < p->n_stages; i++) {
		int dev = p->stages[i].device;
		p->cores_used[dev] += p->stages[i].cores;
		p->memory_used[dev] += p->stages[i].memory_bytes;
		for (int j = 0; j + 1 < i; j++)
			if (p->stages[j].device == dev &&
			    p->stages[j + 1].device != dev) {
				rc = lm_fail(e, -EINVAL, "%s: stage %d: '%s' "
					     "already holds an earlier run",
					     path, i, devs->dev[dev].name);
				goto fail;
			}
	}
	for (int i = 0; i < devs->n; i++)
		if (p->cores_used[i] > devs->dev[i].cores) {
			rc = lm_fail(e, -EINVAL, "%s: '%s' is given %d cores "
				     "of %d", path, devs->dev[i].name,
				     p->cores_used[i], devs->dev[i].cores);
			goto fail;
		}
	json_t *pr = json_object_get(doc, "predicted");
	if (json_is_object(pr) &&
	    ((rc = jv_number(pr, "latency_us", 0, 0, 1e15, &p->latency_us,
			     path, e)) ||
	     (rc = jv_number(pr, "throughput_rps", 0, 0, 1e18,
			     &p->throughput_rps, path, e)) ||
	     (rc = jv_number(pr, "period_us", 0, 0, 1e15, &p->period_us, path,
			     e))))
		goto fail;
	lm_devices_free(devs);
	*out = p;
	return 0;
fail:
	lm_plan_free(p);
	lm_devices_free(devs);
	return rc;
}

int lm_plan_load(const char *path, lm_plan **out, lm_error *e)
{
	int rc;
	*out = NULL;
	json_t *doc = jv_load(path, &rc, e);
	if (!doc)
		return rc;
	rc = read_plan(doc, out, path, e);
	json_decref(doc);
	return rc;
}
