/*
 * stats.c: telemetry of a deployment as a StatsReply: per stage the
 * bundles run, busy and idle TSC cycles, queue depth and a histogram of
 * run times (summed over its replicas), and the ingress's end-to-end
 * histogram.  Counters are written by one lcore each and read here without
 * locks: a reading may be a moment stale, never torn (64-bit stores).
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dp.h"
#include "transport_eth.h"

double lm_dp_hist_edge(int i)
{
	return pow(2.0, (double)i / 4.0);
}

static int hist_fill(const struct lm_dp_hist *h, size_t *n_edges,
		     double **edges, size_t *n_counts, uint64_t **counts)
{
	*edges = calloc(LM_DP_HIST_BUCKETS, sizeof(double));
	*counts = calloc(LM_DP_HIST_BUCKETS, sizeof(uint64_t));
	if (!*edges || !*counts)
		return -ENOMEM;
	for (int i = 0; i < LM_DP_HIST_BUCKETS; i++) {
		(*edges)[i] = lm_dp_hist_edge(i);
		(*counts)[i] = h->counts[i];
	}
	*n_edges = *n_counts = LM_DP_HIST_BUCKETS;
	return 0;
}

void lm_dp_stats_reply_free(Lamina__StatsReply *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n_stages; i++) {
		Lamina__StageStats *st = s->stages[i];
		if (!st)
			continue;
		free(st->cores);
		free(st->bucket_us);
		free(st->counts);
		free(st);
	}
	free(s->stages);
	free(s->bucket_us);
	free(s->counts);
	free(s);
}

int lm_dp_stats_reply(struct lm_dp *dp, struct lm_dp_deployment *d,
		      Lamina__StatsReply **out, lm_error *e)
{
	Lamina__StatsReply *s = calloc(1, sizeof(*s));
	if (!s)
		return lm_fail(e, -ENOMEM, "out of memory");
	lamina__stats_reply__init(s);
	s->deployment = d->id;
	s->tsc_hz = dp->tsc_hz;
	s->uptime_s = (double)(rte_rdtsc() - d->t_created) /
		      (double)dp->tsc_hz;
	s->requests = d->requests;
	s->resent = d->resent;
	s->duplicate_answers = d->dup_answers;
	s->gave_up = d->gave_up;
	for (unsigned k = 0; k <= d->n_stages; k++)
		if (d->edges[k].tx)
			s->send_lost +=
				lm_dp_eth_get_stats(d->edges[k].tx)->tx_full;
	s->errors = d->errors;
	if (hist_fill(&d->e2e, &s->n_bucket_us, &s->bucket_us, &s->n_counts,
		      &s->counts))
		goto nomem;
	s->stages = calloc(d->n_stages, sizeof(*s->stages));
	if (!s->stages)
		goto nomem;
	for (unsigned k = 0; k < d->n_stages; k++) {
		const struct lm_dp_stage *st = d->stages[k];
		if (!st)
			continue; /* not loaded yet */
		Lamina__StageStats *o = calloc(1, sizeof(*o));
		struct lm_dp_hist h;
		if (!o)
			goto nomem;
		s->stages[s->n_stages++] = o;
		lamina__stage_stats__init(o);
		o->stage = st->index;
		o->first = st->first;
		o->last = st->last;
		if (!(o->cores = calloc((size_t)st->n_replicas,
					sizeof(uint32_t))))
			goto nomem;
		o->n_cores = (size_t)st->n_replicas;
		memset(&h, 0, sizeof(h));
		for (int i = 0; i < st->n_replicas; i++) {
			const struct lm_dp_replica *r = st->rep[i];
			o->cores[i] = r->cpu;
			o->requests += r->requests;
			o->errors += r->errors;
			o->busy_cycles += r->busy_cycles;
			o->idle_cycles += r->idle_cycles;
			for (int b = 0; b < LM_DP_HIST_BUCKETS; b++)
				h.counts[b] += r->hist.counts[b];
		}
		const struct lm_dp_edge *in = &d->edges[k];
		if (in->ring) {
			o->queue_depth = rte_ring_count(in->ring);
			o->queue_capacity = in->n_bufs;
		}
		if (hist_fill(&h, &o->n_bucket_us, &o->bucket_us, &o->n_counts,
			      &o->counts))
			goto nomem;
	}
	*out = s;
	return 0;
nomem:
	lm_dp_stats_reply_free(s);
	return lm_fail(e, -ENOMEM, "out of memory");
}
