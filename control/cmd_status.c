/*
 * cmd_status.c: `lamina status`, what a deployment is doing: where it
 * serves, its throughput in inferences (samples) per second over the last
 * 10 s and its uptime, its batches, queue and errors, latency percentiles
 * (interpolated inside the histograms' buckets), its stages and their
 * cores, from the laminad stats message (proto/lamina.proto) and the
 * deployment record.  Without an id, the recorded deployments.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "agent.h"
#include "cli.h"
#include "record.h"

static const char status_help[] =
	"usage: lamina status [ID] [--json] [--state-dir DIR]\n"
	"\n"
	"Show deployment ID: where it serves, its throughput in inferences\n"
	"(samples) per second over the last 10 s and over its uptime, its\n"
	"requests, batches (and their sizes), queue and errors by kind,\n"
	"latency percentiles (p50, p90, p99 of the end-to-end time at the\n"
	"ingress, of the time in the queue and of each stage's run time), and\n"
	"its stages and their cores.\n"
	"Without ID, list the deployments recorded in the state folder, each\n"
	"running, down (a laminad of it is gone: 'lamina teardown ID' cleans\n"
	"up), or as far as deploy or teardown got.\n"
	"\n"
	"options:\n"
	"  -j, --json            print JSON instead of a table\n"
	"  -s, --state-dir DIR   deployment records (see 'lamina deploy "
	"--help')\n"
	"  -h, --help            this text\n";

/*
 * The q-quantile (0..1) of a histogram whose bucket i holds times in
 * [bounds[i-1], bounds[i]) (bucket 0 from 0; a last bucket past the final
 * bound, when counts has one more entry, is open), interpolated linearly
 * inside the bucket; an open bucket gives its lower bound.  NAN when
 * empty.
 */
static double percentile(const double *bounds, size_t nb,
			 const uint64_t *counts, size_t nc, double q)
{
	double total = 0, cum = 0;
	if (nc > nb + 1)
		nc = nb + 1;
	for (size_t i = 0; i < nc; i++)
		total += (double)counts[i];
	if (total <= 0)
		return NAN;
	double target = q * total;
	for (size_t i = 0; i < nc; i++) {
		double n = (double)counts[i];
		if (n <= 0 || cum + n < target) {
			cum += n;
			continue;
		}
		double lo = i ? bounds[i - 1] : 0;
		if (i >= nb)
			return lo;
		return lo + (bounds[i] - lo) * (target - cum) / n;
	}
	return nb ? bounds[nb - 1] : NAN;
}

struct pcts {
	double p50, p90, p99; /* microseconds */
};

static struct pcts pcts_of(const double *bounds, size_t nb,
			   const uint64_t *counts, size_t nc)
{
	struct pcts p = { percentile(bounds, nb, counts, nc, 0.50),
			  percentile(bounds, nb, counts, nc, 0.90),
			  percentile(bounds, nb, counts, nc, 0.99) };
	return p;
}

static json_t *pcts_json(struct pcts p)
{
	json_t *o = json_object();
	const char *k[3] = { "p50", "p90", "p99" };
	double v[3] = { p.p50, p.p90, p.p99 };
	for (int i = 0; i < 3; i++)
		json_object_set_new(o, k[i], isnan(v[i]) ? json_null()
							 : json_real(v[i]));
	return o;
}

static const char *ms(double us, char *buf, size_t len)
{
	if (isnan(us))
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%.3f", us / 1e3);
	return buf;
}

static int list_deployments(const char *state, int as_json)
{
	char (*ids)[LM_REC_ID_MAX] = NULL;
	int n = 0;
	lm_error e;
	json_t *arr = json_array();
	if (lm_record_list(state, &ids, &n, &e) && n) {
		json_decref(arr);
		return cli_error("status", &e);
	}
	if (!as_json && !n)
		printf("no deployments in %s\n", state);
	for (int i = 0; i < n; i++) {
		lm_record *r = NULL;
		if (lm_record_load(state, ids[i], &r, &e)) {
			fprintf(stderr, "lamina status: %s\n", e.msg);
			continue;
		}
		/* a record says what was done; whether it still runs is
		 * the laminads' to say */
		const char *status = r->status;
		for (int l = 0; !strcmp(r->status, "running") &&
				l < r->n_laminads; l++)
			if (!lm_agent_up(&r->laminads[l]))
				status = "down";
		if (as_json)
			json_array_append_new(arr, json_pack(
				"{s:s, s:s, s:s, s:s, s:i, s:i}", "id", r->id,
				"status", status, "created", r->created,
				"plan", r->plan, "batch", r->batch, "stages",
				r->n_stages));
		else
			printf("%s  %-12s %s  %d stage%s at batch %d  %s\n",
			       r->id, status, r->created, r->n_stages,
			       r->n_stages == 1 ? "" : "s", r->batch, r->plan);
		lm_record_free(r);
	}
	if (as_json) {
		json_dumpf(arr, stdout, JSON_INDENT(2));
		putchar('\n');
	}
	json_decref(arr);
	free(ids);
	return 0;
}

/* The stats of r from each of its laminads. */
static int fetch(const lm_record *r, Lamina__Reply **replies, lm_error *e)
{
	for (int l = 0; l < r->n_laminads; l++) {
		Lamina__Request req = LAMINA__REQUEST__INIT;
		Lamina__StatsRequest sr = LAMINA__STATS_REQUEST__INIT;
		const lm_rec_laminad *ld = &r->laminads[l];
		sr.deployment = (char *)r->id;
		req.body_case = LAMINA__REQUEST__BODY_STATS;
		req.stats = &sr;
		int rc = lm_agent_call(ld->host, ld->control_port,
				       LM_AGENT_QUICK_MS, &req, &replies[l], e);
		if (!rc && replies[l]->body_case != LAMINA__REPLY__BODY_STATS)
			rc = lm_fail(e, -EPROTO, "the reply is not stats");
		if (rc)
			return lm_fail_prefix(e, rc, "laminad at %s:%d",
					      ld->host, ld->control_port);
	}
	return 0;
}

/* Stage i's stats among the replies (its laminad numbers it i, as the
 * whole pipeline does), or NULL. */
static const Lamina__StageStats *stage_stats(const lm_record *r,
					     Lamina__Reply **replies, int i)
{
	const Lamina__StatsReply *s = replies[r->stages[i].laminad]->stats;
	for (size_t k = 0; k < s->n_stages; k++)
		if ((int)s->stages[k]->stage == i)
			return s->stages[k];
	return NULL;
}

/* Bundles every laminad of r could not send to the next. */
static uint64_t send_lost(const lm_record *r, Lamina__Reply **replies)
{
	uint64_t n = 0;
	for (int l = 0; l < r->n_laminads; l++)
		n += replies[l]->stats->send_lost;
	return n;
}

/* Per second over t seconds (0 when t is not positive). */
static double rate(uint64_t n, double t)
{
	return t > 0 ? (double)n / t : 0;
}

/* Mean live samples per batch, from the batch-size counts. */
static double mean_batch(const Lamina__StatsReply *s)
{
	double n = 0, rows = 0;
	for (size_t i = 0; i < s->n_batch_rows; i++) {
		n += (double)s->batch_rows[i];
		rows += (double)(i + 1) * (double)s->batch_rows[i];
	}
	return n > 0 ? rows / n : 0;
}

static void print_table(const lm_record *r, Lamina__Reply **replies)
{
	const lm_rec_laminad *in = &r->laminads[r->stages[0].laminad];
	const Lamina__StatsReply *s = replies[r->stages[0].laminad]->stats;
	struct pcts e2e = pcts_of(s->bucket_us, s->n_bucket_us, s->counts,
				  s->n_counts);
	struct pcts queue = pcts_of(s->bucket_us, s->n_bucket_us,
				    s->queue_counts, s->n_queue_counts);
	char b1[32], b2[32], b3[32], url[512];
	double up = s->uptime_s > 0 ? s->uptime_s : 0;
	printf("deployment %s ('%s'): %s, %d stage%s at batch %d, up %.1f s\n",
	       r->id, r->name, r->status, r->n_stages,
	       r->n_stages == 1 ? "" : "s", r->batch, up);
	printf("  plan    %s\n  model   %s\n", r->plan, r->model);
	if (lm_record_http_url(r, url, sizeof(url)))
		printf("  http    %s\n", url);
	printf("  ingress %s:%d (laminad pid %d%s)\n", in->host,
	       in->ingress_port, in->pid,
	       in->started ? ", started by this deployment" : "");
	printf("  throughput %.1f inferences/s over the last %.0f s (%.1f "
	       "requests/s); %.1f inferences/s over its uptime\n",
	       rate(s->recent_samples, s->recent_s), s->recent_s,
	       rate(s->recent_requests, s->recent_s),
	       rate(s->samples, up));
	printf("  answered %llu requests, %llu inferences, in %llu batches "
	       "(%.2f samples each, of %u)\n",
	       (unsigned long long)s->requests,
	       (unsigned long long)s->samples,
	       (unsigned long long)s->batches, mean_batch(s), s->batch);
	printf("  errors   %llu", (unsigned long long)s->errors);
	for (size_t k = 0; k < s->n_error_kinds && k < s->n_error_counts; k++)
		if (s->error_counts[k])
			printf("%s %s %llu", k ? "," : ":", s->error_kinds[k],
			       (unsigned long long)s->error_counts[k]);
	putchar('\n');
	printf("  queue    %u waiting of %u, %u in the pipeline; a batch waits "
	       "at most %.3f ms; time in queue ms p50 %s p99 %s\n",
	       s->queue_depth, s->max_queue, s->in_flight,
	       s->max_delay_us / 1e3, ms(queue.p50, b1, sizeof(b1)),
	       ms(queue.p99, b2, sizeof(b2)));
	printf("  latency  ms p50 %s p90 %s p99 %s (end to end, at the "
	       "ingress)\n", ms(e2e.p50, b1, sizeof(b1)),
	       ms(e2e.p90, b2, sizeof(b2)), ms(e2e.p99, b3, sizeof(b3)));
	if (r->n_laminads > 1)
		printf("  across laminads: %llu sent again, %llu duplicate "
		       "answers dropped, %llu given up; %llu bundles not "
		       "sent (queue full)\n",
		       (unsigned long long)s->resent,
		       (unsigned long long)s->duplicate_answers,
		       (unsigned long long)s->gave_up,
		       (unsigned long long)send_lost(r, replies));
	putchar('\n');
	printf("%5s  %-12s %-9s %-9s %9s %8s %6s %7s %6s %8s %8s %8s\n",
	       "stage", "device", "slices", "cores", "batches", "inf/s",
	       "busy%", "queue", "errors", "p50 ms", "p90 ms", "p99 ms");
	for (int i = 0; i < r->n_stages; i++) {
		const lm_rec_stage *st = &r->stages[i];
		const Lamina__StageStats *ss = stage_stats(r, replies, i);
		char sl[32], cores[64] = "";
		snprintf(sl, sizeof(sl), "%d-%d", st->first, st->last);
		for (int c = 0; c < st->n_cores; c++) {
			size_t off = strlen(cores);
			snprintf(cores + off, sizeof(cores) - off, "%s%d",
				 c ? "," : "", st->cores[c]);
		}
		if (!ss) {
			printf("%5d  %-12.12s %-9s %-9s (no stats)\n", i,
			       st->device, sl, cores);
			continue;
		}
		struct pcts p = pcts_of(ss->bucket_us, ss->n_bucket_us,
					ss->counts, ss->n_counts);
		double cyc = (double)ss->busy_cycles + (double)ss->idle_cycles;
		char q[32];
		snprintf(q, sizeof(q), "%u/%u", ss->queue_depth,
			 ss->queue_capacity);
		printf("%5d  %-12.12s %-9s %-9s %9llu %8.1f %6.1f %7s %6llu "
		       "%8s %8s %8s\n", i, st->device, sl, cores,
		       (unsigned long long)ss->requests, rate(ss->samples, up),
		       cyc > 0 ? 100 * (double)ss->busy_cycles / cyc : 0, q,
		       (unsigned long long)ss->errors,
		       ms(p.p50, b1, sizeof(b1)), ms(p.p90, b2, sizeof(b2)),
		       ms(p.p99, b3, sizeof(b3)));
	}
	printf("\n(inferences are samples: a request carries 1 to %d of them; "
	       "stage rates are over the uptime)\n", r->batch);
}

static void print_json(const lm_record *r, Lamina__Reply **replies)
{
	const lm_rec_laminad *in = &r->laminads[r->stages[0].laminad];
	const Lamina__StatsReply *s = replies[r->stages[0].laminad]->stats;
	double up = s->uptime_s > 0 ? s->uptime_s : 0;
	char url[512];
	json_t *stages = json_array();
	for (int i = 0; i < r->n_stages; i++) {
		const lm_rec_stage *st = &r->stages[i];
		const Lamina__StageStats *ss = stage_stats(r, replies, i);
		/* busy and idle time summed over the stage's replicas */
		double hz = (double)replies[st->laminad]->stats->tsc_hz;
		json_t *cores = json_array();
		for (int c = 0; c < st->n_cores; c++)
			json_array_append_new(cores, json_integer(st->cores[c]));
		json_t *o = json_pack("{s:i, s:s, s:[i, i], s:o}", "stage", i,
				      "device", st->device, "slices",
				      st->first, st->last, "cores", cores);
		if (ss) {
			double cyc = (double)ss->busy_cycles +
				     (double)ss->idle_cycles;
			json_object_update_new(o, json_pack(
				"{s:I, s:I, s:f, s:f, s:f, s:f, s:i, s:i, s:I, "
				"s:o}",
				"batches", (json_int_t)ss->requests,
				"samples", (json_int_t)ss->samples,
				"inferences_per_s", rate(ss->samples, up),
				"busy_pct",
				cyc > 0 ? 100 * (double)ss->busy_cycles / cyc
					: 0.0,
				"busy_s", hz > 0 ? (double)ss->busy_cycles / hz
						 : 0.0,
				"idle_s", hz > 0 ? (double)ss->idle_cycles / hz
						 : 0.0,
				"queue_depth", (int)ss->queue_depth,
				"queue_capacity", (int)ss->queue_capacity,
				"errors", (json_int_t)ss->errors, "latency_us",
				pcts_json(pcts_of(ss->bucket_us,
						  ss->n_bucket_us, ss->counts,
						  ss->n_counts))));
		}
		json_array_append_new(stages, o);
	}
	json_t *kinds = json_object(), *sizes = json_array();
	for (size_t k = 0; k < s->n_error_kinds && k < s->n_error_counts; k++)
		json_object_set_new(kinds, s->error_kinds[k],
				    json_integer((json_int_t)s->error_counts[k]));
	for (size_t k = 0; k < s->n_batch_rows; k++)
		json_array_append_new(sizes,
				      json_integer((json_int_t)s->batch_rows[k]));
	lm_record_http_url(r, url, sizeof(url));
	json_t *doc = json_pack(
		"{s:s, s:s, s:s, s:s, s:s, s:i, s:s, s:s?, s:i, s:i, s:f, "
		"s:I, s:I, s:I, s:I, s:f, s:{s:f, s:f, s:f}, s:o, s:o, s:f, "
		"s:{s:i, s:i, s:i, s:i, s:o}, s:o, s:o}",
		"id", r->id, "name", r->name, "status", r->status, "plan",
		r->plan, "model", r->model, "batch", r->batch, "host",
		in->host, "http_url", url[0] ? url : NULL, "ingress_port",
		in->ingress_port, "laminad_pid", in->pid, "uptime_s", up,
		"requests", (json_int_t)s->requests, "samples",
		(json_int_t)s->samples, "batches", (json_int_t)s->batches,
		"errors", (json_int_t)s->errors, "inferences_per_s",
		rate(s->samples, up), "recent", "window_s", s->recent_s,
		"inferences_per_s", rate(s->recent_samples, s->recent_s),
		"requests_per_s", rate(s->recent_requests, s->recent_s),
		"errors_by_kind", kinds, "batch_sizes", sizes,
		"mean_batch", mean_batch(s), "queue", "depth",
		(int)s->queue_depth, "capacity", (int)s->max_queue,
		"in_flight", (int)s->in_flight, "max_delay_us",
		(int)s->max_delay_us, "latency_us",
		pcts_json(pcts_of(s->bucket_us, s->n_bucket_us,
				  s->queue_counts, s->n_queue_counts)),
		"latency_us",
		pcts_json(pcts_of(s->bucket_us, s->n_bucket_us, s->counts,
				  s->n_counts)),
		"stages", stages);
	json_object_update_new(doc, json_pack(
		"{s:I, s:I, s:I, s:I}", "resent", (json_int_t)s->resent,
		"duplicate_answers", (json_int_t)s->duplicate_answers,
		"gave_up", (json_int_t)s->gave_up, "send_lost",
		(json_int_t)send_lost(r, replies)));
	json_dumpf(doc, stdout, JSON_INDENT(2));
	putchar('\n');
	json_decref(doc);
}

int cmd_status(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, 0, 'j' },
		{ "state-dir", required_argument, 0, 's' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	const char *state_dir = NULL;
	int c, as_json = 0;
	char state[PATH_MAX];
	lm_error e;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":js:h", opts, NULL)) != -1) {
		switch (c) {
		case 'j': as_json = 1; break;
		case 's': state_dir = optarg; break;
		case 'h':
			fputs(status_help, stdout);
			exit(0);
		default:
			return cli_bad_option("status", c, argv);
		}
	}
	if (optind < argc - 1)
		return cli_errorf("status", "expected at most one deployment "
				  "ID (see 'lamina status --help')");
	if (lm_state_dir(state_dir, state, sizeof(state), &e))
		return cli_error("status", &e);
	if (optind == argc)
		return list_deployments(state, as_json);
	lm_record *r = NULL;
	if (lm_record_load(state, argv[optind], &r, &e))
		return cli_error("status", &e);
	Lamina__Reply *replies[LM_REC_MAX_LAMINADS] = { 0 };
	int rc = 0;
	if (strcmp(r->status, "running"))
		rc = cli_errorf("status", "deployment %s is %s (run 'lamina "
				"teardown %s' to undo it)", r->id, r->status,
				r->id);
	else if (fetch(r, replies, &e))
		rc = cli_errorf("status", "%s: %s (run 'lamina teardown %s' to "
				"clean up)", r->id, e.msg, r->id);
	else if (as_json)
		print_json(r, replies);
	else
		print_table(r, replies);
	for (int l = 0; l < LM_REC_MAX_LAMINADS; l++)
		if (replies[l])
			lamina__reply__free_unpacked(replies[l], NULL);
	lm_record_free(r);
	return rc;
}
