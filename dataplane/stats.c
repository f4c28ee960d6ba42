/*
 * stats.c: reading a deployment's telemetry (see stats.h).
 */
#include "stats.h"

#include <string.h>

#include <rte_ring.h>

#include "net.h"
#include "pipeline.h"

void lm_dp_stats_read(const struct lm_dp_deployment *d, uint64_t now,
		      uint64_t tsc_hz, struct lm_dp_stats *s)
{
	const struct lm_pipeline *p = d->pipe;
	memset(s, 0, sizeof(*s));
	memcpy(s->id, d->id, sizeof(s->id));
	memcpy(s->name, d->name, sizeof(s->name));
	s->tsc_hz = tsc_hz;
	s->uptime_s = (double)(now - d->t_created) / (double)tsc_hz;
	s->ingress = d->ing != NULL;
	lm_dp_ingress_read(d, &s->ing);
	if (d->rel) {
		const lm_rel_stats *r = lm_rel_get_stats(d->rel);
		s->resent = r->resent;
		s->dup_answers = r->dup_answers;
		s->gave_up = r->gave_up;
	}
	s->send_lost = lm_dp_net_send_lost(d);
	for (unsigned k = 0; p && k < p->n_stages; k++) {
		const struct lm_dp_stage *st = p->stages[k];
		if (!st)
			continue; /* elsewhere, or not loaded yet */
		struct lm_dp_stage_stats *o = &s->stages[s->n_stages++];
		o->stage = st->index;
		o->first = st->first;
		o->last = st->last;
		o->n_cores = (unsigned)st->n_replicas;
		for (int i = 0; i < st->n_replicas; i++) {
			const struct lm_dp_replica *r = st->rep[i];
			o->cores[i] = r->cpu;
			o->requests += r->requests;
			o->samples += r->samples;
			o->errors += r->errors;
			o->busy_cycles += r->busy_cycles;
			o->idle_cycles += r->idle_cycles;
			for (int b = 0; b < LM_DP_HIST_BUCKETS; b++)
				o->hist.counts[b] += r->hist.counts[b];
			o->hist.sum_us += r->hist.sum_us;
		}
		const struct lm_dp_edge *in = &p->edges[k];
		if (in->ring) {
			o->queue_depth = rte_ring_count(in->ring);
			o->queue_capacity = in->n_bufs;
		}
	}
}
