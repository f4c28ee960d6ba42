/*
 * metrics.c: laminad's telemetry in the Prometheus text format (version
 * 0.0.4), what the HTTP front serves at /metrics: per deployment (labels
 * deployment="NAME", id="ID") the ingress's requests, samples, batches,
 * batch sizes, errors by kind, queue depth and queue, compute and
 * end-to-end times; per stage (label stage="K") what it ran and its run
 * times.  Counters end in _total, times are in seconds, histograms have
 * cumulative _bucket{le}, _sum and _count (the latency buckets are
 * octaves from 1 us to 16.8 s, from the 4-per-octave ones kept, bundle.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_cycles.h>

#include "dp.h"
#include "stats.h"

#define FOR_DEPS(dp, s)                                                   \
	for (int i_ = 0; i_ < LM_DP_MAX_DEPLOYMENTS; i_++)                \
		if ((dp)->deps.d[i_] &&                                   \
		    (lm_dp_stats_read((dp)->deps.d[i_], now, (dp)->tsc_hz, \
				      (s)),                               \
		     1))

static void family(FILE *f, const char *name, const char *type,
		   const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void labels(FILE *f, const struct lm_dp_stats *s)
{
	fprintf(f, "{deployment=\"%s\",id=\"%s\"", s->name[0] ? s->name : s->id,
		s->id);
}

static void series(FILE *f, const char *name, const struct lm_dp_stats *s,
		   const char *extra, double v)
{
	fputs(name, f);
	labels(f, s);
	fprintf(f, "%s} %.17g\n", extra ? extra : "", v);
}

/* A latency histogram in seconds: octave buckets, cumulative. */
static void hist(FILE *f, const char *name, const struct lm_dp_stats *s,
		 const char *extra, const struct lm_dp_hist *h)
{
	uint64_t cum = 0;
	for (int i = 0; i < LM_DP_HIST_BUCKETS; i++) {
		cum += h->counts[i];
		if (i % 4 || i == LM_DP_HIST_BUCKETS - 1)
			continue;
		fprintf(f, "%s_bucket", name);
		labels(f, s);
		fprintf(f, "%s,le=\"%g\"} %llu\n", extra ? extra : "",
			lm_dp_hist_edge(i) * 1e-6, (unsigned long long)cum);
	}
	fprintf(f, "%s_bucket", name);
	labels(f, s);
	fprintf(f, "%s,le=\"+Inf\"} %llu\n", extra ? extra : "",
		(unsigned long long)cum);
	char n[128];
	snprintf(n, sizeof(n), "%s_sum", name);
	series(f, n, s, extra, h->sum_us * 1e-6);
	snprintf(n, sizeof(n), "%s_count", name);
	series(f, n, s, extra, (double)cum);
}

/* Batches by samples: buckets at powers of two and the batch. */
static void batch_hist(FILE *f, const struct lm_dp_stats *s)
{
	const struct lm_dp_ingress_stats *g = &s->ing;
	uint64_t cum = 0, count = 0;
	double sum = 0;
	unsigned top = g->batch < LM_DP_MAX_BATCH_HIST ? g->batch
						       : LM_DP_MAX_BATCH_HIST;
	for (unsigned r = 1; r <= LM_DP_MAX_BATCH_HIST; r++) {
		count += g->batch_rows[r];
		sum += (double)r * (double)g->batch_rows[r];
	}
	for (unsigned r = 1; r <= top; r++) {
		cum += g->batch_rows[r];
		if ((r & (r - 1)) && r != top)
			continue;
		fputs("lamina_batch_size_bucket", f);
		labels(f, s);
		fprintf(f, ",le=\"%u\"} %llu\n", r, (unsigned long long)cum);
	}
	fputs("lamina_batch_size_bucket", f);
	labels(f, s);
	fprintf(f, ",le=\"+Inf\"} %llu\n", (unsigned long long)count);
	series(f, "lamina_batch_size_sum", s, NULL, sum);
	series(f, "lamina_batch_size_count", s, NULL, (double)count);
}

char *lm_dp_metrics(void *ctx, size_t *len)
{
	struct lm_dp *dp = ctx;
	struct lm_dp_stats *s = malloc(sizeof(*s));
	char *buf = NULL, extra[64];
	FILE *f = s ? open_memstream(&buf, len) : NULL;
	uint64_t now = rte_rdtsc();
	if (!f) {
		free(s);
		return NULL;
	}
	family(f, "lamina_build_info", "gauge", "The laminad serving.");
	fprintf(f, "lamina_build_info{version=\"%s\",device=\"%s\"} 1\n",
		LM_DP_VERSION, dp->name);

#define ING_COUNTER(metric, help, expr)                                    \
	do {                                                               \
		family(f, metric, "counter", help);                       \
		FOR_DEPS(dp, s) if (s->ingress)                           \
			series(f, metric, s, NULL, (double)(expr));       \
	} while (0)
	ING_COUNTER("lamina_requests_total", "Inference requests answered "
		    "with outputs.", s->ing.requests);
	ING_COUNTER("lamina_samples_total", "Samples (rows along the batch "
		    "axis) in the requests answered with outputs.",
		    s->ing.samples);
	ING_COUNTER("lamina_batches_total", "Batches dispatched into the "
		    "pipeline.", s->ing.batches);
	family(f, "lamina_errors_total", "counter", "Requests answered with "
	       "an error, by kind.");
	FOR_DEPS(dp, s) if (s->ingress)
		for (int k = 0; k < LM_DP_ERR_KINDS; k++) {
			snprintf(extra, sizeof(extra), ",kind=\"%s\"",
				 lm_dp_err_kind((enum lm_dp_err)k));
			series(f, "lamina_errors_total", s, extra,
			       (double)s->ing.errors[k]);
		}
	ING_COUNTER("lamina_resent_total", "Requests sent again to other "
		    "laminads because their answer was late.", s->resent);
	ING_COUNTER("lamina_gave_up_total", "Requests given up after every "
		    "re-send.", s->gave_up);
	ING_COUNTER("lamina_duplicate_answers_total", "Second answers "
		    "dropped.", s->dup_answers);
#undef ING_COUNTER

#define ING_GAUGE(metric, help, expr)                                      \
	do {                                                               \
		family(f, metric, "gauge", help);                         \
		FOR_DEPS(dp, s) if (s->ingress)                           \
			series(f, metric, s, NULL, (double)(expr));       \
	} while (0)
	ING_GAUGE("lamina_queue_depth", "Requests waiting or gathering into "
		  "a batch now.", s->ing.queue_depth);
	ING_GAUGE("lamina_queue_capacity", "Requests the queue takes before "
		  "refusing.", s->ing.max_queue);
	ING_GAUGE("lamina_in_flight_requests", "Requests in the pipeline "
		  "now.", s->ing.in_flight);
	ING_GAUGE("lamina_batch_max", "The plan's batch size.",
		  s->ing.batch);
	ING_GAUGE("lamina_max_queue_delay_seconds", "The longest a batch "
		  "waits to fill.", s->ing.max_delay_us * 1e-6);
#undef ING_GAUGE

	family(f, "lamina_batch_size", "histogram", "Samples per batch "
	       "dispatched.");
	FOR_DEPS(dp, s) if (s->ingress)
		batch_hist(f, s);
	family(f, "lamina_queue_seconds", "histogram", "Per request: from "
	       "admission to dispatch in a batch.");
	FOR_DEPS(dp, s) if (s->ingress)
		hist(f, "lamina_queue_seconds", s, NULL, &s->ing.queue);
	family(f, "lamina_compute_seconds", "histogram", "Per batch: from "
	       "dispatch to its answer (the pipeline).");
	FOR_DEPS(dp, s) if (s->ingress)
		hist(f, "lamina_compute_seconds", s, NULL, &s->ing.compute);
	family(f, "lamina_request_seconds", "histogram", "Per request: from "
	       "admission to its answer.");
	FOR_DEPS(dp, s) if (s->ingress)
		hist(f, "lamina_request_seconds", s, NULL, &s->ing.e2e);

	family(f, "lamina_send_lost_total", "counter", "Bundles this laminad "
	       "could not send to another (each re-sent by the ingress).");
	FOR_DEPS(dp, s)
		series(f, "lamina_send_lost_total", s, NULL,
		       (double)s->send_lost);

#define STAGES(metric, type, help, expr)                                   \
	do {                                                               \
		family(f, metric, type, help);                            \
		FOR_DEPS(dp, s) for (unsigned k = 0; k < s->n_stages; k++) { \
			const struct lm_dp_stage_stats *t = &s->stages[k];  \
			snprintf(extra, sizeof(extra), ",stage=\"%u\"",     \
				 t->stage);                                \
			series(f, metric, s, extra, (double)(expr));      \
		}                                                         \
	} while (0)
	STAGES("lamina_stage_batches_total", "counter", "Batches the stage "
	       "ran.", t->requests);
	STAGES("lamina_stage_samples_total", "counter", "Samples in the "
	       "batches the stage ran.", t->samples);
	STAGES("lamina_stage_errors_total", "counter", "Batches the stage "
	       "failed to run.", t->errors);
	STAGES("lamina_stage_busy_seconds_total", "counter", "Time the "
	       "stage's workers spent running it.",
	       (double)t->busy_cycles / (double)dp->tsc_hz);
	STAGES("lamina_stage_idle_seconds_total", "counter", "Time the "
	       "stage's workers spent polling or asleep.",
	       (double)t->idle_cycles / (double)dp->tsc_hz);
	STAGES("lamina_stage_queue_depth", "gauge", "Batches waiting on the "
	       "stage's input now.", t->queue_depth);
#undef STAGES
	family(f, "lamina_stage_run_seconds", "histogram", "Per batch: the "
	       "stage's run time.");
	FOR_DEPS(dp, s) for (unsigned k = 0; k < s->n_stages; k++) {
		snprintf(extra, sizeof(extra), ",stage=\"%u\"",
			 s->stages[k].stage);
		hist(f, "lamina_stage_run_seconds", s, extra,
		     &s->stages[k].hist);
	}
	fclose(f);
	free(s);
	return buf;
}
