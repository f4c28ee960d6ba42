/*
 * worker.c: the loop one worker lcore runs for one replica of a stage:
 * poll the input ring, run the stage on a burst of bundles, hand each
 * output on, count.  Set-up and tear-down are pipeline.c's; nothing here
 * allocates or frees.
 */
#include <errno.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#include <rte_cycles.h>
#include <rte_pause.h>

#include "pipeline.h"

/* Idle: spin a little, then (adaptive) sleep a little longer each time. */
static inline void backoff(int busy_poll, unsigned *empty)
{
	if (busy_poll || ++*empty < 64) {
		rte_pause();
		return;
	}
	/* 10 us at first, up to 500 us when idle for long */
	unsigned us = (*empty - 64) * 10;
	struct timespec ts = { 0, (long)(us < 10 ? 10 : us > 500 ? 500 : us)
				      * 1000 };
	nanosleep(&ts, NULL);
}

/* Run the stage on one bundle. */
static int stage_exec(struct lm_dp_replica *r, uint8_t *in, uint8_t *out)
{
	const struct lm_dp_stage *st = r->stage;
	struct lm_dp_step *s = &r->step;
	for (int i = 0; i < s->n_in; i++)
		s->in[i].data = in + s->in_off[i];
	for (int j = 0; j < s->n_out; j++)
		s->out[j].data = out + s->out_off[j];
	int rc = lm_session_run(s->session, s->in, s->n_in, s->out, s->n_out,
				&r->err);
	if (rc)
		return rc;
	for (int c = 0; c < st->n_copies; c++)
		memcpy(out + st->copies[c].to, in + st->copies[c].from,
		       st->copies[c].nbytes);
	return 0;
}

/* One bundle: take an output buffer, run, hand the input back to its pool
 * and the output on.  -EINTR when told to stop while waiting for a buffer
 * (the bundle is then still the caller's). */
static int run_one(struct lm_dp_replica *r, struct lm_dp_bundle *b)
{
	struct lm_dp_stage *st = r->stage;
	struct lm_dp_bundle *o;
	unsigned empty = 0;
	while (rte_mempool_get(st->out_edge->pool, (void **)&o) != 0) {
		if (r->stop)
			return -EINTR;
		backoff(r->busy_poll, &empty);
	}
	*o = *b;
	if (b->status == 0) {
		uint64_t t0 = rte_rdtsc();
		int rc = stage_exec(r, lm_dp_bundle_data(b),
				    lm_dp_bundle_data(o));
		lm_dp_hist_add(&r->hist, rte_rdtsc() - t0, st->cycles_per_us);
		if (rc) {
			o->status = rc;
			r->errors++;
		}
		r->requests++;
		r->samples += b->rows;
	}
	rte_mempool_put(st->in_edge->pool, b);
	while (rte_ring_enqueue(st->out_edge->ring, o) != 0)
		rte_pause(); /* cannot happen: the ring holds the whole pool */
	lm_dp_bell_ring(st->out_edge->bell);
	return 0;
}

int lm_dp_worker_main(void *arg)
{
	struct lm_dp_replica *r = arg;
	struct lm_dp_stage *st = r->stage;
	struct lm_dp_bundle *in[LM_DP_BURST];
	/* replicas share their ring: take one at a time to share the load */
	unsigned burst = st->n_replicas > 1 ? 1 : LM_DP_BURST, empty = 0;
	uint64_t t = rte_rdtsc();

	prctl(PR_SET_TIMERSLACK, 1000UL); /* short sleeps when adaptive */
	while (!r->stop) {
		unsigned n = r->n_held;
		if (n) {
			memcpy(in, r->held, n * sizeof(in[0]));
			r->n_held = 0;
		} else {
			n = rte_ring_dequeue_burst(st->in_edge->ring,
						   (void **)in, burst, NULL);
		}
		if (!n) {
			backoff(r->busy_poll, &empty);
			continue;
		}
		empty = 0;
		uint64_t t0 = rte_rdtsc();
		r->idle_cycles += t0 - t;
		for (unsigned i = 0; i < n; i++)
			if (run_one(r, in[i]) == -EINTR) {
				r->n_held = n - i;
				memcpy(r->held, in + i,
				       r->n_held * sizeof(in[0]));
				break;
			}
		t = rte_rdtsc();
		r->busy_cycles += t - t0;
	}
	r->idle_cycles += rte_rdtsc() - t;
	return 0;
}
