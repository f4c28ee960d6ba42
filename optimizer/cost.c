/*
 * cost.c: the cost model of a placement (optimizer.h has it in words).
 * A cost binds the devices to one batch of a profile and answers, in
 * constant time from prefix sums, what a stage takes (time, memory) and
 * what a transfer takes.  The solver and the tests' brute force both cost
 * plans through these functions, and lm_plan_evaluate checks a whole plan
 * and fills its predictions with them, so there is one model, not three.
 *
 * Byte counts are whole numbers below 2^53, so their sums are exact in
 * doubles: a memory limit is never missed by rounding.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct lm_plan_cost {
	const lm_devices *d;
	const lm_profile_batch *b;
	int n;          /* slices */
	double headroom;
	double *pre;    /* per device, n + 1 prefix sums of slice times */
	double *bound;  /* n + 1: bytes crossing boundary k */
	double *bundle; /* n + 1: one bundle at boundary k, as allocated */
	double *pmem;   /* n + 1: prefix sums of weight + arena bytes */
	double *pw;     /* n + 1: prefix sums of weight bytes */
	double *pbnd;   /* n + 2: prefix sums of bound[] */
	double *limit;  /* per device */
};

void lm_plan_cost_free(lm_plan_cost *c)
{
	if (!c)
		return;
	free(c->pre);
	free(c->bound);
	free(c->bundle);
	free(c->pmem);
	free(c->pw);
	free(c->pbnd);
	free(c->limit);
	free(c);
}

int lm_plan_cost_create(const lm_devices *d, const lm_profile *p, int batch,
			double headroom, lm_plan_cost **out, lm_error *e)
{
	*out = NULL;
	int bi = lm_profile_find_batch(p, batch);
	if (bi < 0) {
		char have[256] = "";
		size_t off = 0;
		for (int i = 0; i < p->n_batches && off < sizeof(have) - 16;
		     i++)
			off += (size_t)snprintf(have + off, sizeof(have) - off,
						"%s%d", i ? ", " : "",
						p->batches[i].batch);
		return lm_fail(e, -EINVAL, "the profile has no times at batch "
			       "%d (it has batch %s)", batch, have);
	}
	if (!(headroom >= 0 && headroom < 1))
		return lm_fail(e, -EINVAL, "headroom must be from 0 to 99%%");
	for (int i = 0; i < d->n; i++) {
		int col = lm_profile_find_device(p, d->dev[i].name);
		if (col < 0)
			return lm_fail(e, -EINVAL, "the profile has no times "
				       "for device '%s' (bench it, or derive "
				       "it with --model-speed %s=F)",
				       d->dev[i].name, d->dev[i].name);
		for (int s = 0; s < p->n_slices; s++)
			if (!(p->batches[bi].slices[s].time_us[col] >= 0))
				return lm_fail(e, -EINVAL, "the profile has no "
					       "time for device '%s' at slice "
					       "%d, batch %d", d->dev[i].name,
					       s, batch);
		if (d->dev[i].cores < 1 || !(d->dev[i].memory_bytes > 0))
			return lm_fail(e, -EINVAL, "device '%s' has no cores or "
				       "no memory", d->dev[i].name);
	}
	lm_plan_cost *c = calloc(1, sizeof(*c));
	if (!c)
		return lm_fail(e, -ENOMEM, "out of memory");
	int n = p->n_slices;
	c->d = d;
	c->b = &p->batches[bi];
	c->n = n;
	c->headroom = headroom;
	c->pre = malloc((size_t)d->n * (size_t)(n + 1) * sizeof(double));
	c->bound = malloc((size_t)(n + 1) * sizeof(double));
	c->bundle = malloc((size_t)(n + 1) * sizeof(double));
	c->pmem = malloc((size_t)(n + 1) * sizeof(double));
	c->pw = malloc((size_t)(n + 1) * sizeof(double));
	c->pbnd = malloc((size_t)(n + 2) * sizeof(double));
	c->limit = malloc((size_t)d->n * sizeof(double));
	if (!c->pre || !c->bound || !c->bundle || !c->pmem || !c->pw ||
	    !c->pbnd || !c->limit) {
		lm_plan_cost_free(c);
		return lm_fail(e, -ENOMEM, "out of memory");
	}
	for (int i = 0; i < d->n; i++) {
		int col = lm_profile_find_device(p, d->dev[i].name);
		double *pre = c->pre + (size_t)i * (size_t)(n + 1);
		pre[0] = 0;
		for (int s = 0; s < n; s++) {
			pre[s + 1] = pre[s] + c->b->slices[s].time_us[col];
		}
		c->limit[i] = device_limit(&d->dev[i], headroom);
	}
	c->bound[0] = c->b->input_bytes;
	for (int k = 1; k < n; k++)
		c->bound[k] = c->b->cut_bytes[k - 1];
	c->bound[n] = c->b->slices[n - 1].output_bytes;
	for (int k = 0; k <= n; k++)
		c->bundle[k] = c->b->bundle_bytes && c->b->bundle_bytes[k] >= 0
				       ? c->b->bundle_bytes[k]
				       : c->bound[k] + LM_PLAN_BUNDLE_OVERHEAD;
	c->pmem[0] = c->pw[0] = 0;
	for (int s = 0; s < n; s++) {
		c->pmem[s + 1] = c->pmem[s] + c->b->slices[s].weight_bytes +
				 c->b->slices[s].arena_bytes;
		c->pw[s + 1] = c->pw[s] + c->b->slices[s].weight_bytes;
	}
	c->pbnd[0] = 0;
	for (int k = 0; k <= n; k++)
		c->pbnd[k + 1] = c->pbnd[k] + c->bound[k];
	*out = c;
	return 0;
}

const lm_devices *lm_plan_cost_devices(const lm_plan_cost *c)
{
	return c->d;
}

const lm_profile_batch *lm_plan_cost_batch(const lm_plan_cost *c)
{
	return c->b;
}

int lm_plan_cost_slices(const lm_plan_cost *c)
{
	return c->n;
}

double lm_plan_cost_headroom(const lm_plan_cost *c)
{
	return c->headroom;
}

double lm_plan_cost_time(const lm_plan_cost *c, int dev, int first, int last)
{
	const double *pre = c->pre + (size_t)dev * (size_t)(c->n + 1);
	return pre[last + 1] - pre[first];
}

double lm_plan_cost_boundary_bytes(const lm_plan_cost *c, int k)
{
	return c->bound[k];
}

double lm_plan_cost_bundle_bytes(const lm_plan_cost *c, int k)
{
	return c->bundle[k];
}

/* Weights of one replica of [first, last]. */
static double weights_of(const lm_plan_cost *c, int first, int last)
{
	return c->pw[last + 1] - c->pw[first];
}

/* Weights and arena of one replica of [first, last]: the slices' own,
 * and the tensors of its inner cuts, which the joined session holds. */
static double replica_session(const lm_plan_cost *c, int first, int last)
{
	return (c->pmem[last + 1] - c->pmem[first]) +
	       (c->pbnd[last + 1] - c->pbnd[first + 1]);
}

double lm_plan_cost_stage_memory(const lm_plan_cost *c, int first, int last,
				 int r)
{
	double holds = c->bundle[first] + c->bundle[last + 1];
	return r * (replica_session(c, first, last) + holds) +
	       LM_PLAN_RING_DEPTH * c->bundle[first];
}

double lm_plan_cost_run_end(const lm_plan_cost *c, int first, int last)
{
	double m = LM_PLAN_RING_DEPTH * c->bundle[last + 1];
	if (first == 0 && last < c->n - 1) /* the ingress of several */
		m += LM_PLAN_RING_DEPTH * c->bundle[c->n] +
		     LM_PLAN_KEEP * c->bundle[0];
	return m;
}

double lm_plan_cost_memory_limit(const lm_plan_cost *c, int dev)
{
	return c->limit[dev];
}

int lm_plan_cost_transfer(const lm_plan_cost *c, int from, int to, int last,
			  double *latency_us, double *occupancy_us)
{
	if (from == to) {
		*latency_us = *occupancy_us = c->b->handoff_us;
		return 0;
	}
	const lm_link *l = lm_devices_link(c->d, from, to);
	if (!l->present)
		return -1;
	/* gbps is 1e9 bit/s: bytes * 8 / (gbps * 1e9) s, in us */
	double wire = c->bound[last + 1] * 8.0 / (l->gbps * 1e3);
	*latency_us = l->latency_us + wire;
	/* the edge's queue keeps LM_PLAN_RING_DEPTH bundles going: a link
	 * whose latency they do not cover holds the pipeline back */
	*occupancy_us = fmax(wire, *latency_us / LM_PLAN_RING_DEPTH);
	return 0;
}

/* ---- whole plans ---- */

int lm_plan_create(const lm_devices *d, int n_stages, lm_plan **out)
{
	*out = NULL;
	lm_plan *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->devices = lm_devices_copy(d);
	p->n_stages = n_stages;
	p->stages = calloc(n_stages > 0 ? (size_t)n_stages : 1,
			   sizeof(*p->stages));
	p->memory_used = calloc((size_t)d->n, sizeof(double));
	p->memory_limit = calloc((size_t)d->n, sizeof(double));
	p->cores_used = calloc((size_t)d->n, sizeof(int));
	if (!p->devices || !p->stages || !p->memory_used || !p->memory_limit ||
	    !p->cores_used) {
		lm_plan_free(p);
		return -ENOMEM;
	}
	p->bottleneck = -1;
	*out = p;
	return 0;
}

void lm_plan_free(lm_plan *p)
{
	if (!p)
		return;
	lm_devices_free(p->devices);
	free(p->stages);
	free(p->memory_used);
	free(p->memory_limit);
	free(p->cores_used);
	free(p);
}

/* Stages cover 0..n-1 in order; each device holds one run; runs linked. */
static int check_shape(const lm_plan_cost *c, const lm_plan *p, lm_error *e)
{
	const lm_devices *d = c->d;
	int next = 0;
	if (p->n_stages < 1)
		return lm_fail(e, -EINVAL, "the plan has no stages");
	if (!p->devices || p->devices->n != d->n)
		return lm_fail(e, -EINVAL, "the plan is for another fleet "
			       "(%d devices, not %d)",
			       p->devices ? p->devices->n : 0, d->n);
	char *closed = calloc((size_t)d->n, 1);
	if (!closed)
		return lm_fail(e, -ENOMEM, "out of memory");
	int rc = 0;
	for (int i = 0; i < p->n_stages && !rc; i++) {
		const lm_plan_stage *s = &p->stages[i];
		if (s->device < 0 || s->device >= d->n)
			rc = lm_fail(e, -EINVAL, "stage %d: no device %d", i,
				     s->device);
		else if (s->first != next || s->last < s->first ||
			 s->last >= c->n)
			rc = lm_fail(e, -EINVAL, "stage %d: slices %d-%d do not "
				     "follow on from slice %d (of %d)", i,
				     s->first, s->last, next - 1, c->n);
		else if (s->cores < 1)
			rc = lm_fail(e, -EINVAL, "stage %d: %d cores", i,
				     s->cores);
		else if (closed[s->device])
			rc = lm_fail(e, -EINVAL, "stage %d: '%s' already holds "
				     "an earlier run of the pipeline", i,
				     d->dev[s->device].name);
		if (rc)
			break;
		if (i > 0 && p->stages[i - 1].device != s->device) {
			int from = p->stages[i - 1].device;
			closed[from] = 1;
			if (!lm_devices_link(d, from, s->device)->present)
				rc = lm_fail(e, -EINVAL, "stage %d: '%s' has no "
					     "link to '%s'", i,
					     d->dev[from].name,
					     d->dev[s->device].name);
		}
		next = s->last + 1;
	}
	free(closed);
	if (!rc && next != c->n)
		rc = lm_fail(e, -EINVAL, "the stages end at slice %d of %d",
			     next - 1, c->n);
	return rc;
}

int lm_plan_evaluate(const lm_plan_cost *c, lm_plan *p, lm_error *e)
{
	const lm_devices *d = c->d;
	int rc = check_shape(c, p, e);
	if (rc)
		return rc;
	for (int i = 0; i < d->n; i++) {
		p->memory_used[i] = 0;
		p->cores_used[i] = 0;
		p->memory_limit[i] = c->limit[i];
	}
	p->batch = c->b->batch;
	p->n_slices = c->n;
	p->headroom = c->headroom;
	p->latency_us = 0;
	p->period_us = 0;
	p->bottleneck = 0;
	p->bottleneck_xfer = 0;
	int several = 0, run_first = 0;
	for (int i = 1; i < p->n_stages; i++)
		several |= p->stages[i].device != p->stages[0].device;
	p->keep = several ? LM_PLAN_KEEP : 0;
	for (int i = 0; i < p->n_stages; i++) {
		lm_plan_stage *s = &p->stages[i];
		int first_of_run = i == 0 ||
				   p->stages[i - 1].device != s->device;
		int last_of_run = i + 1 == p->n_stages ||
				  p->stages[i + 1].device != s->device;
		if (first_of_run)
			run_first = s->first;
		s->time_us = lm_plan_cost_time(c, s->device, s->first, s->last);
		s->period_us = s->time_us / s->cores;
		s->memory_bytes = lm_plan_cost_stage_memory(c, s->first,
							    s->last, s->cores);
		if (last_of_run)
			s->memory_bytes += lm_plan_cost_run_end(c, run_first,
								s->last);
		/* what laminad allocates when it loads this stage */
		s->weight_bytes = s->cores * weights_of(c, s->first, s->last);
		s->arena_bytes = s->cores * (replica_session(c, s->first,
							     s->last) -
					     weights_of(c, s->first, s->last));
		s->in_bundles = lm_plan_edge_bundles(
			first_of_run ? 0 : p->stages[i - 1].cores, s->cores);
		s->out_bundles = last_of_run ? lm_plan_edge_bundles(s->cores, 0)
					     : 0;
		s->answers_bundles = i == 0 && several
					     ? lm_plan_edge_bundles(0, 0) : 0;
		s->ring_bytes = s->in_bundles * c->bundle[s->first] +
				s->out_bundles * c->bundle[s->last + 1] +
				s->answers_bundles * c->bundle[c->n];
		s->in_bytes = c->bound[s->first];
		s->out_bytes = c->bound[s->last + 1];
		p->memory_used[s->device] += s->memory_bytes;
		p->cores_used[s->device] += s->cores;
		p->latency_us += s->time_us;
		if (s->period_us > p->period_us) {
			p->period_us = s->period_us;
			p->bottleneck = i;
			p->bottleneck_xfer = 0;
		}
		s->xfer = LM_XFER_NONE;
		s->xfer_us = s->xfer_occupancy_us = 0;
		if (i + 1 < p->n_stages) {
			int to = p->stages[i + 1].device;
			s->xfer = to == s->device ? LM_XFER_RING
						  : LM_XFER_LINK;
			lm_plan_cost_transfer(c, s->device, to, s->last,
					      &s->xfer_us,
					      &s->xfer_occupancy_us);
			p->latency_us += s->xfer_us;
			if (s->xfer_occupancy_us > p->period_us) {
				p->period_us = s->xfer_occupancy_us;
				p->bottleneck = i;
				p->bottleneck_xfer = 1;
			}
		}
	}
	p->throughput_rps = p->period_us > 0
				    ? p->batch * 1e6 / p->period_us
				    : p->batch * 1e15;
	for (int i = 0; i < d->n; i++) {
		if (p->cores_used[i] > d->dev[i].cores)
			return lm_fail(e, -ENOSPC, "'%s': the plan uses %d "
				       "cores of %d", d->dev[i].name,
				       p->cores_used[i], d->dev[i].cores);
		if (p->memory_used[i] > c->limit[i])
			return lm_fail(e, -ENOSPC, "'%s': the plan needs %.0f "
				       "bytes, over its limit of %.0f",
				       d->dev[i].name, p->memory_used[i],
				       c->limit[i]);
	}
	return 0;
}
