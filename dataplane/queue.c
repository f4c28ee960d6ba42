/*
 * queue.c: the ingress's core (see queue.h for the design).
 */
#include "queue.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_cycles.h>
#include <rte_ring.h>

#include "lamina/log.h"
#include "pipeline.h"

#define RECENT 11 /* one-second snapshots: the last 10 s */

/* A bundle of edge 0 being gathered, then in the pipeline, then answered:
 * one slot of a deployment's flight table. */
struct flight {
	uint32_t gen;
	int used, sealed, sent;
	unsigned rows;	  /* rows taken (gathering) */
	unsigned writers; /* members still writing their rows */
	unsigned n;	  /* members (NULL once gone) */
	unsigned holds;	  /* answered: fronts still writing it out */
	int keep;	  /* reliable slot across laminads, or -1 */
	int whole;	  /* moved batch: one request of the whole batch in
			     the model's layout, so nothing is moved */
	uint32_t ticket;
	uint64_t t_first, t_dispatch;
	struct lm_dp_bundle *b;	  /* edge 0's while gathering */
	struct lm_dp_bundle *ans; /* the answer while held */
	struct lm_dp_req *m[];	  /* batch of them */
};

struct snap {
	uint64_t t, requests, samples;
};

struct lm_dp_ingress {
	struct lm_dp_deployment *d;
	unsigned batch, max_queue;
	unsigned max_delay_us;
	uint64_t max_delay; /* cycles */
	int open;	    /* the flight gathering, or -1 */
	struct lm_dp_req *wait_head, *wait_tail;
	unsigned n_wait, n_gather, in_flight;
	int draining;
	uint64_t seq;
	/* a batch on another axis than 0 (bundle.h, moved_batch): samples
	 * are gathered batch-major and moved through this, which holds the
	 * largest input or output tensor */
	int moved;
	uint8_t *scratch;
	/* the flight table: grows, never shrinks */
	struct flight **fl;
	unsigned n_fl;
	int *free_fl;
	unsigned n_free;
	/* reliable delivery */
	struct rte_mempool *keep_pool;
	unsigned retry_ms, max_retries, period_us, keep_slots;
	/* telemetry */
	struct lm_dp_ingress_stats st;
	struct snap recent[RECENT];
	unsigned recent_i;
	uint64_t t_snap, t_scan;
};

static const char *const err_kinds[LM_DP_ERR_KINDS] = {
	[LM_DP_ERR_INVALID] = "invalid",
	[LM_DP_ERR_NOT_FOUND] = "not_found",
	[LM_DP_ERR_BUSY] = "queue_full",
	[LM_DP_ERR_TIMEOUT] = "timeout",
	[LM_DP_ERR_UNAVAILABLE] = "unavailable",
	[LM_DP_ERR_FAILED] = "failed",
};

const char *lm_dp_err_kind(enum lm_dp_err k)
{
	return (unsigned)k < LM_DP_ERR_KINDS ? err_kinds[k] : "unknown";
}

enum lm_dp_err lm_dp_err_of(int status)
{
	switch (status) {
	case -EINVAL:
	case -EMSGSIZE:
	case -EPROTO:
		return LM_DP_ERR_INVALID;
	case -ENOENT:
		return LM_DP_ERR_NOT_FOUND;
	case -EBUSY:
		return LM_DP_ERR_BUSY;
	case -ETIMEDOUT:
		return LM_DP_ERR_TIMEOUT;
	case -EAGAIN:
	case -ESHUTDOWN:
	case -ECANCELED:
		return LM_DP_ERR_UNAVAILABLE;
	default:
		return LM_DP_ERR_FAILED;
	}
}

/* ---- requests ---- */

static struct lm_dp_req *req_new(struct lm_dp_serve *s)
{
	struct lm_dp_req *r = s->free_reqs;
	if (r)
		s->free_reqs = r->next;
	else if (!(r = malloc(sizeof(*r))))
		return NULL;
	memset(r, 0, sizeof(*r));
	return r;
}

static void req_free(struct lm_dp_serve *s, struct lm_dp_req *r)
{
	r->next = s->free_reqs;
	s->free_reqs = r;
}

void lm_dp_serve_init(struct lm_dp_serve *s, struct lm_dp_deployments *deps,
		      uint64_t tsc_hz)
{
	memset(s, 0, sizeof(*s));
	s->deps = deps;
	s->tsc_hz = tsc_hz;
	s->cycles_per_us = (double)tsc_hz / 1e6;
}

void lm_dp_serve_front(struct lm_dp_serve *s, unsigned front,
		       const struct lm_dp_front_ops *ops, void *ctx)
{
	s->ops[front] = ops;
	s->fronts[front] = ctx;
}

void lm_dp_serve_close(struct lm_dp_serve *s)
{
	while (s->free_reqs) {
		struct lm_dp_req *r = s->free_reqs;
		s->free_reqs = r->next;
		free(r);
	}
}

/* ---- layouts ---- */

const struct lm_dp_layout *lm_dp_inputs(struct lm_dp_deployment *d)
{
	return &lm_pipeline_input(d->pipe)->layout;
}

const struct lm_dp_layout *lm_dp_outputs(struct lm_dp_deployment *d)
{
	return &lm_pipeline_answers(d->pipe)->layout;
}

int lm_dp_exact_batch(struct lm_dp_deployment *d)
{
	return lm_dp_inputs(d)->exact_batch || lm_dp_outputs(d)->exact_batch;
}

int lm_dp_moved_batch(struct lm_dp_deployment *d)
{
	return !lm_dp_exact_batch(d) && (lm_dp_inputs(d)->moved_batch ||
					 lm_dp_outputs(d)->moved_batch);
}

unsigned lm_dp_batch(const struct lm_dp_deployment *d)
{
	return d->pipe->batch;
}

int lm_dp_ready(const struct lm_dp_deployment *d)
{
	return d->ing && d->pipe->started && !d->ing->draining;
}

/* ---- flights ---- */

static uint64_t fl_handle(const struct lm_dp_ingress *in, int slot)
{
	return (uint64_t)(uint32_t)slot | (uint64_t)in->fl[slot]->gen << 32;
}

static struct flight *fl_get(struct lm_dp_ingress *in, uint64_t h, int *slot)
{
	uint32_t i = (uint32_t)h;
	if (i >= in->n_fl || !in->fl[i]->used ||
	    in->fl[i]->gen != (uint32_t)(h >> 32))
		return NULL;
	if (slot)
		*slot = (int)i;
	return in->fl[i];
}

/* A free flight slot; -1 when out of memory. */
static int fl_take(struct lm_dp_ingress *in)
{
	if (!in->n_free) {
		unsigned n = in->n_fl ? in->n_fl * 2 : 16;
		struct flight **fl = realloc(in->fl, n * sizeof(*fl));
		if (!fl)
			return -1;
		in->fl = fl;
		int *fr = realloc(in->free_fl, n * sizeof(*fr));
		if (!fr)
			return -1;
		in->free_fl = fr;
		for (unsigned i = in->n_fl; i < n; i++) {
			fl[i] = calloc(1, sizeof(struct flight) +
						  in->batch * sizeof(fl[i]->m[0]));
			if (!fl[i]) {
				n = i;
				break;
			}
		}
		if (n == in->n_fl)
			return -1;
		for (unsigned i = n; i-- > in->n_fl;)
			in->free_fl[in->n_free++] = (int)i;
		in->n_fl = n;
	}
	int slot = in->free_fl[--in->n_free];
	struct flight *f = in->fl[slot];
	uint32_t gen = f->gen + 1;
	memset(f, 0, sizeof(*f));
	f->gen = gen;
	f->used = 1;
	f->keep = -1;
	return slot;
}

static void fl_free(struct lm_dp_ingress *in, int slot)
{
	in->fl[slot]->used = 0;
	in->free_fl[in->n_free++] = slot;
}

/* Open a flight for gathering: a bundle of edge 0 and, across laminads, a
 * kept slot.  -1 when none is free now. */
static int fl_open(struct lm_dp_ingress *in)
{
	struct lm_dp_deployment *d = in->d;
	struct lm_dp_edge *e0 = lm_pipeline_input(d->pipe);
	struct lm_dp_bundle *b;
	if (d->rel && lm_rel_in_use(d->rel) == lm_rel_slots(d->rel))
		return -1;
	if (rte_mempool_get(e0->pool, (void **)&b) != 0)
		return -1;
	int slot = fl_take(in);
	if (slot < 0) {
		rte_mempool_put(e0->pool, b);
		return -1;
	}
	struct flight *f = in->fl[slot];
	f->b = b;
	if (d->rel)
		f->keep = lm_rel_take(d->rel, &f->ticket);
	return slot;
}

/* Zero rows [row0, row0 + rows) of every input tensor of bundle b. */
static void zero_rows(const struct lm_dp_layout *l, unsigned batch,
		      struct lm_dp_bundle *b, unsigned row0, unsigned rows)
{
	for (int i = 0; i < l->n; i++) {
		size_t row = l->t[i].nbytes / batch;
		memset(lm_dp_bundle_data(b) + l->t[i].offset + row0 * row, 0,
		       rows * row);
	}
}

/* ---- answers ---- */

static void count_answer(struct lm_dp_ingress *in, const struct lm_dp_req *r,
			 int status, uint64_t now, double cpu)
{
	if (status) {
		in->st.errors[lm_dp_err_of(status)]++;
	} else {
		in->st.requests++;
		in->st.samples += r->rows;
	}
	lm_dp_hist_add(&in->st.e2e, now - r->t_arrive, cpu);
}

/* Answer r with an error and free it (it is out of every list). */
static void fail(struct lm_dp_serve *s, struct lm_dp_req *r, int status,
		 const char *msg)
{
	struct lm_dp_reply a = { .status = status, .msg = msg };
	if (r->d->ing)
		count_answer(r->d->ing, r, status, rte_rdtsc(),
			     s->cycles_per_us);
	s->ops[r->front]->answer(s->fronts[r->front], r, &a);
	req_free(s, r);
}

/* Put a bundle back, free the flight and its kept slot. */
static void fl_drop(struct lm_dp_ingress *in, int slot)
{
	struct flight *f = in->fl[slot];
	struct lm_dp_deployment *d = in->d;
	if (f->b)
		rte_mempool_put(lm_pipeline_input(d->pipe)->pool, f->b);
	if (f->ans)
		rte_mempool_put(lm_pipeline_answers(d->pipe)->pool, f->ans);
	if (f->keep >= 0 && d->rel && !f->sent)
		lm_rel_release(d->rel, (unsigned)f->keep);
	f->b = f->ans = NULL;
	fl_free(in, slot);
}

/* ---- dispatch ---- */

/* Flight `slot` goes into the pipeline: expired members are answered and
 * become padding, as does the rest of the batch. */
static void dispatch(struct lm_dp_serve *s, struct lm_dp_ingress *in,
		     int slot)
{
	struct lm_dp_deployment *d = in->d;
	struct flight *f = in->fl[slot];
	struct lm_dp_edge *e0 = lm_pipeline_input(d->pipe);
	uint64_t now = rte_rdtsc();
	unsigned live = 0;
	if (in->open == slot)
		in->open = -1;
	for (unsigned i = 0; i < f->n; i++) {
		struct lm_dp_req *r = f->m[i];
		if (!r)
			continue;
		if (r->deadline && now > r->deadline) {
			zero_rows(&e0->layout, in->batch, f->b, r->row0,
				  r->rows);
			f->m[i] = NULL;
			in->n_gather--;
			s->gathering--;
			fail(s, r, -ETIMEDOUT, "its timeout expired before it "
			     "ran");
			continue;
		}
		live += r->rows;
	}
	if (!live) {
		fl_drop(in, slot);
		return;
	}
	zero_rows(&e0->layout, in->batch, f->b, f->rows, in->batch - f->rows);
	if (in->moved && !f->whole)
		lm_dp_batch_move(&e0->layout, in->batch,
				 lm_dp_bundle_data(f->b), in->scratch, 1);
	struct lm_dp_bundle *b = f->b;
	f->b = NULL;
	b->request_id = ++in->seq;
	b->conn = fl_handle(in, slot);
	b->t_in = now;
	b->deployment = d->gen;
	b->status = 0;
	b->rows = live;
	b->keep = f->keep >= 0 ? (uint32_t)f->keep : UINT32_MAX;
	b->ticket = f->ticket;
	if (f->keep >= 0) {
		memcpy(lm_rel_copy(d->rel, (unsigned)f->keep), b,
		       lm_dp_bundle_bytes(&e0->layout));
		lm_rel_sent(d->rel, (unsigned)f->keep, now);
	}
	f->sent = 1;
	f->t_dispatch = now;
	for (unsigned i = 0; i < f->n; i++) {
		struct lm_dp_req *r = f->m[i];
		if (!r)
			continue;
		r->state = LM_DP_REQ_RUN;
		lm_dp_hist_add(&in->st.queue, now - r->t_arrive,
			       s->cycles_per_us);
		in->n_gather--;
		s->gathering--;
		in->in_flight++;
	}
	in->st.batches++;
	in->st.batch_rows[live < LM_DP_MAX_BATCH_HIST ? live
						      : LM_DP_MAX_BATCH_HIST]++;
	s->inflight++;
	rte_ring_enqueue(e0->ring, b); /* holds the whole pool */
}

/* Gathering in flight `slot` ends: it goes as soon as its writers are
 * done. */
static void seal(struct lm_dp_serve *s, struct lm_dp_ingress *in, int slot)
{
	struct flight *f = in->fl[slot];
	f->sealed = 1;
	if (in->open == slot)
		in->open = -1;
	if (!f->writers)
		dispatch(s, in, slot);
}

/* Rows for r in the open flight (opening one); 0 when no bundle is free. */
static int reserve(struct lm_dp_serve *s, struct lm_dp_ingress *in,
		   struct lm_dp_req *r)
{
	if (in->open >= 0 && in->fl[in->open]->rows + r->rows > in->batch)
		seal(s, in, in->open);
	if (in->open < 0 && (in->open = fl_open(in)) < 0)
		return 0;
	struct flight *f = in->fl[in->open];
	if (!f->n)
		f->t_first = rte_rdtsc();
	r->row0 = f->rows;
	r->flight = (uint32_t)in->open;
	f->whole = in->moved && r->rows == in->batch; /* alone in it */
	r->state = LM_DP_REQ_WRITE;
	f->rows += r->rows;
	f->m[f->n++] = r;
	f->writers++;
	in->n_gather++;
	s->gathering++;
	if (f->rows == in->batch)
		seal(s, in, in->open); /* dispatched at its last commit */
	return 1;
}

/* Give waiters rows, in order, while bundles are free. */
static void serve_waiters(struct lm_dp_serve *s, struct lm_dp_ingress *in)
{
	while (in->wait_head) {
		struct lm_dp_req *r = in->wait_head;
		if (!reserve(s, in, r))
			return;
		in->wait_head = r->next;
		if (!in->wait_head)
			in->wait_tail = NULL;
		r->next = NULL;
		in->n_wait--;
		s->waiting--;
		s->gathering--; /* reserve counted it again */
		s->ops[r->front]->ready(s->fronts[r->front], r);
	}
}

int lm_dp_admit(struct lm_dp_serve *s, struct lm_dp_deployment *d,
		unsigned front, uint64_t handle, unsigned rows,
		uint64_t deadline, struct lm_dp_req **out)
{
	struct lm_dp_ingress *in = d->ing;
	struct lm_dp_req *r;
	*out = NULL;
	if (!in)
		return -ENOENT;
	if (in->draining)
		return -ESHUTDOWN;
	if (!d->pipe->started)
		return -EAGAIN;
	if (rows < 1 || rows > in->batch ||
	    (rows != in->batch && lm_dp_exact_batch(d)) ||
	    (in->moved && rows != 1 && rows != in->batch))
		return -EINVAL;
	if (in->n_wait + in->n_gather >= in->max_queue)
		return -EBUSY;
	if (!(r = req_new(s)))
		return -ENOMEM;
	r->d = d;
	r->front = front;
	r->handle = handle;
	r->rows = rows;
	r->t_arrive = rte_rdtsc();
	r->deadline = deadline;
	*out = r;
	if (!in->n_wait && reserve(s, in, r))
		return 0;
	r->state = LM_DP_REQ_WAIT;
	if (in->wait_tail)
		in->wait_tail->next = r;
	else
		in->wait_head = r;
	in->wait_tail = r;
	in->n_wait++;
	s->waiting++;
	s->gathering++;
	return 1;
}

uint8_t *lm_dp_req_rows(struct lm_dp_req *r, int i, size_t *nbytes)
{
	struct lm_dp_ingress *in = r->d->ing;
	const struct lm_dp_tdesc *t = &lm_dp_inputs(r->d)->t[i];
	size_t row = t->nbytes / in->batch;
	*nbytes = row * r->rows;
	return lm_dp_bundle_data(in->fl[r->flight]->b) + t->offset +
	       row * r->row0;
}

void lm_dp_commit(struct lm_dp_serve *s, struct lm_dp_req *r)
{
	struct lm_dp_ingress *in = r->d->ing;
	struct flight *f = in->fl[r->flight];
	r->state = LM_DP_REQ_READY;
	if (!--f->writers && f->sealed)
		dispatch(s, in, (int)r->flight);
}

/* Take r out of its flight (not yet dispatched); its rows become padding.
 * The flight goes if it was waiting for r alone. */
static void unjoin(struct lm_dp_serve *s, struct lm_dp_ingress *in,
		   struct lm_dp_req *r)
{
	struct flight *f = in->fl[r->flight];
	for (unsigned i = 0; i < f->n; i++)
		if (f->m[i] == r)
			f->m[i] = NULL;
	zero_rows(lm_dp_inputs(in->d), in->batch, f->b, r->row0, r->rows);
	in->n_gather--;
	s->gathering--;
	if (r->state == LM_DP_REQ_WRITE)
		f->writers--;
	unsigned live = 0;
	for (unsigned i = 0; i < f->n; i++)
		live += f->m[i] != NULL;
	if (!live) { /* nobody left to wait for */
		if (in->open == (int)r->flight)
			in->open = -1;
		fl_drop(in, (int)r->flight);
	} else if (!f->writers && f->sealed) {
		dispatch(s, in, (int)r->flight);
	}
}

static void unwait(struct lm_dp_serve *s, struct lm_dp_ingress *in,
		   struct lm_dp_req *r)
{
	struct lm_dp_req **p = &in->wait_head, *prev = NULL;
	while (*p && *p != r) {
		prev = *p;
		p = &(*p)->next;
	}
	if (!*p)
		return;
	*p = r->next;
	if (in->wait_tail == r)
		in->wait_tail = prev;
	in->n_wait--;
	s->waiting--;
	s->gathering--;
}

void lm_dp_abandon(struct lm_dp_serve *s, struct lm_dp_req *r)
{
	struct lm_dp_ingress *in = r->d->ing;
	if (r->state == LM_DP_REQ_WAIT)
		unwait(s, in, r);
	else if (r->state == LM_DP_REQ_WRITE || r->state == LM_DP_REQ_READY)
		unjoin(s, in, r);
	else
		return; /* in the pipeline: its answer finds no one */
	req_free(s, r);
}

/* ---- answers ---- */

void lm_dp_flight_hold(struct lm_dp_deployment *d, uint64_t flight)
{
	struct flight *f = fl_get(d->ing, flight, NULL);
	if (f)
		f->holds++;
}

void lm_dp_flight_release(struct lm_dp_deployment *d, uint64_t flight)
{
	int slot;
	struct flight *f = fl_get(d->ing, flight, &slot);
	if (f && !--f->holds)
		fl_drop(d->ing, slot);
}

/* Answer every member of flight `slot` from bundle b (status 0) or with
 * an error, then let it go (unless a front holds it). */
static void answer_flight(struct lm_dp_serve *s, struct lm_dp_ingress *in,
			  int slot, struct lm_dp_bundle *b, int status,
			  const char *msg)
{
	struct flight *f = in->fl[slot];
	uint64_t now = rte_rdtsc();
	struct lm_dp_reply a = {
		.status = status,
		.msg = msg,
		.layout = lm_dp_outputs(in->d),
		.data = b ? lm_dp_bundle_data(b) : NULL,
		.batch = in->batch,
		.flight = fl_handle(in, slot),
	};
	if (b && in->moved && !f->whole) /* back to samples as rows */
		lm_dp_batch_move(a.layout, in->batch, lm_dp_bundle_data(b),
				 in->scratch, 0);
	f->ans = b;
	f->holds = 1; /* this call's */
	if (f->sent) {
		s->inflight--;
		lm_dp_hist_add(&in->st.compute, now - f->t_dispatch,
			       s->cycles_per_us);
	}
	for (unsigned i = 0; i < f->n; i++) {
		struct lm_dp_req *r = f->m[i];
		if (!r)
			continue;
		f->m[i] = NULL;
		if (r->state == LM_DP_REQ_RUN)
			in->in_flight--;
		else {
			in->n_gather--;
			s->gathering--;
		}
		a.row0 = r->row0;
		a.rows = r->rows;
		count_answer(in, r, status, now, s->cycles_per_us);
		s->ops[r->front]->answer(s->fronts[r->front], r, &a);
		req_free(s, r);
	}
	lm_dp_flight_release(in->d, a.flight);
}

int lm_dp_serve_egress(struct lm_dp_serve *s)
{
	struct lm_dp_bundle *bufs[32];
	int total = 0;
	for (int k = 0; k < LM_DP_MAX_DEPLOYMENTS; k++) {
		struct lm_dp_deployment *d = s->deps->d[k];
		if (!d || !d->ing || !lm_pipeline_answers(d->pipe)->ring)
			continue;
		struct lm_dp_ingress *in = d->ing;
		struct lm_dp_edge *ans = lm_pipeline_answers(d->pipe);
		unsigned n = rte_ring_dequeue_burst(ans->ring, (void **)bufs,
						    32, NULL);
		uint64_t now = rte_rdtsc();
		for (unsigned i = 0; i < n; i++) {
			struct lm_dp_bundle *b = bufs[i];
			int slot;
			struct flight *f = fl_get(in, b->conn, &slot);
			if ((d->rel && !lm_rel_answered(d->rel, b->keep,
							b->ticket, now)) ||
			    !f || !f->sent) {
				rte_mempool_put(ans->pool, b); /* answered */
				continue;
			}
			if (!b->status) {
				answer_flight(s, in, slot, b, 0, NULL);
				continue;
			}
			answer_flight(s, in, slot, NULL, b->status,
				      "a stage failed to run the request (see "
				      "the laminad log)");
			rte_mempool_put(ans->pool, b);
		}
		total += (int)n;
		if (in->n_wait)
			serve_waiters(s, in);
	}
	return total;
}

/* ---- timers ---- */

/* Re-send kept request k of d, or give it up.  0 when edge 0 has no
 * bundle now. */
static int retry_one(struct lm_dp_serve *s, struct lm_dp_ingress *in,
		     unsigned k, int what, uint64_t now)
{
	struct lm_dp_deployment *d = in->d;
	struct lm_dp_bundle *copy = lm_rel_copy(d->rel, k), *b;
	struct lm_dp_edge *e0 = lm_pipeline_input(d->pipe);
	int slot;
	struct flight *f = fl_get(in, copy->conn, &slot);
	if (!f || what == LM_REL_GIVE_UP) {
		lm_rel_release(d->rel, k);
		if (f) {
			f->keep = -1;
			answer_flight(s, in, slot, NULL, -ETIMEDOUT,
				      "no answer from the stages on other "
				      "laminads after the request was sent "
				      "several times");
		}
		return 1;
	}
	if (rte_mempool_get(e0->pool, (void **)&b))
		return 0;
	memcpy(b, copy, lm_dp_bundle_bytes(&e0->layout));
	rte_ring_enqueue(e0->ring, b); /* holds the whole pool */
	lm_rel_sent(d->rel, k, now);
	return 1;
}

/* Waiters past their deadline are answered (they never ran). */
static void expire_waiters(struct lm_dp_serve *s, struct lm_dp_ingress *in,
			   uint64_t now)
{
	struct lm_dp_req *r = in->wait_head, *next;
	for (; r; r = next) {
		next = r->next;
		if (r->deadline && now > r->deadline) {
			unwait(s, in, r);
			fail(s, r, -ETIMEDOUT, "its timeout expired while it "
			     "waited in the queue");
		}
	}
}

static void snapshot(struct lm_dp_ingress *in, uint64_t now)
{
	in->recent_i = (in->recent_i + 1) % RECENT;
	in->recent[in->recent_i] = (struct snap){ now, in->st.requests,
						  in->st.samples };
	in->t_snap = now;
}

void lm_dp_serve_tick(struct lm_dp_serve *s)
{
	uint64_t now = rte_rdtsc();
	int rescan = now >= s->t_retry;
	if (rescan)
		s->t_retry = now + s->tsc_hz / 1000; /* every millisecond */
	for (int i = 0; i < LM_DP_MAX_DEPLOYMENTS; i++) {
		struct lm_dp_deployment *d = s->deps->d[i];
		struct lm_dp_ingress *in = d ? d->ing : NULL;
		if (!in)
			continue;
		if (now - in->t_snap >= s->tsc_hz)
			snapshot(in, now);
		if (in->open >= 0 &&
		    (in->draining ||
		     now - in->fl[in->open]->t_first >= in->max_delay))
			seal(s, in, in->open);
		if (in->n_wait)
			serve_waiters(s, in);
		if (!rescan)
			continue;
		if (in->n_wait)
			expire_waiters(s, in, now);
		unsigned cursor = 0;
		int k, what;
		if (!d->rel || !d->pipe->started)
			continue;
		while ((k = lm_rel_due(d->rel, now, &cursor, &what)) >= 0)
			if (!retry_one(s, in, (unsigned)k, what, now))
				break;
	}
}

unsigned lm_dp_serve_next_us(const struct lm_dp_serve *s, unsigned cap)
{
	uint64_t now = rte_rdtsc(), best = (uint64_t)cap;
	for (int i = 0; i < LM_DP_MAX_DEPLOYMENTS; i++) {
		const struct lm_dp_deployment *d = s->deps->d[i];
		const struct lm_dp_ingress *in = d ? d->ing : NULL;
		if (!in || in->open < 0)
			continue;
		uint64_t due = in->fl[in->open]->t_first + in->max_delay;
		uint64_t us = due <= now ? 0
					 : (uint64_t)((double)(due - now) /
						      s->cycles_per_us);
		if (us < best)
			best = us;
	}
	return (unsigned)best;
}

/* ---- a deployment's queue ---- */

int lm_dp_queue_create(struct lm_dp_deployment *d,
		       const struct lm_dp_stage_spec *s0, lm_error *e)
{
	struct lm_dp_ingress *in;
	if (d->ing)
		return 0;
	if (!(in = calloc(1, sizeof(*in))))
		return lm_fail(e, -ENOMEM, "out of memory");
	in->d = d;
	in->open = -1;
	in->batch = s0->batch;
	in->retry_ms = s0->retry_ms ? s0->retry_ms : 100;
	in->max_retries = s0->max_retries ? s0->max_retries : 8;
	in->period_us = s0->period_us;
	in->keep_slots = s0->keep_bundles;
	in->max_queue = s0->max_queue;
	if (!in->max_queue) {
		in->max_queue = LM_DP_QUEUE_PER_ROW * s0->batch;
		if (in->max_queue < LM_DP_QUEUE_MIN)
			in->max_queue = LM_DP_QUEUE_MIN;
	}
	/* a batch of 1 never waits; otherwise the plan's period, or 1 ms
	 * when the plan did not say */
	in->max_delay_us = s0->batch == 1 ? 0
			   : s0->max_delay_us ? s0->max_delay_us
			   : s0->period_us    ? s0->period_us
					      : 1000;
	d->ing = in;
	return 0;
}

/* Reliable delivery: keep_slots slots, each with a copy from a pool of
 * its own, as the plan charged them. */
static int keep_make(struct lm_dp_serve *s, struct lm_dp_deployment *d,
		     lm_error *e)
{
	struct lm_dp_edge *ed = lm_pipeline_input(d->pipe);
	struct lm_dp_ingress *in = d->ing;
	char name[RTE_MEMPOOL_NAMESIZE];
	unsigned n = in->keep_slots;
	void **copies;
	int rc = 0;
	if (d->rel)
		return 0;
	if (!n)
		return lm_fail(e, -EINVAL, "%s: its stages are on several "
			       "laminads but stage 0 was loaded without kept "
			       "requests (keep_bundles)", d->id);
	copies = calloc(n, sizeof(*copies));
	snprintf(name, sizeof(name), "lm%u_keep", d->gen);
	in->keep_pool = rte_mempool_create(name, n,
					   (unsigned)lm_dp_bundle_bytes(
						   &ed->layout),
					   0, 0, NULL, NULL, NULL, NULL,
					   SOCKET_ID_ANY,
					   RTE_MEMPOOL_F_NO_IOVA_CONTIG |
						   RTE_MEMPOOL_F_NO_SPREAD);
	if (!copies || !in->keep_pool ||
	    rte_mempool_get_bulk(in->keep_pool, copies, n))
		rc = -ENOMEM;
	lm_rel_config cfg = { .slots = n,
			      .ticks_per_us = s->cycles_per_us,
			      .retry_ms = in->retry_ms,
			      .max_retries = in->max_retries,
			      .period_us = in->period_us };
	if (!rc && (rc = lm_rel_create(&cfg, copies, &d->rel)))
		rte_mempool_put_bulk(in->keep_pool, copies, n);
	free(copies);
	if (rc) {
		rte_mempool_free(in->keep_pool);
		in->keep_pool = NULL;
		return lm_fail(e, -ENOMEM, "%s: no memory to keep %u requests "
			       "of %zu bytes until answered", d->id, n,
			       ed->layout.bytes);
	}
	return 0;
}

int lm_dp_queue_start(struct lm_dp_serve *s, struct lm_dp_deployment *d,
		      lm_error *e)
{
	struct lm_dp_ingress *in = d->ing;
	if (!in)
		return 0;
	in->max_delay = (uint64_t)(in->max_delay_us * s->cycles_per_us);
	if ((in->moved = lm_dp_moved_batch(d)) && !in->scratch) {
		size_t most = 0;
		for (int side = 0; side < 2; side++) {
			const struct lm_dp_layout *l = side ? lm_dp_outputs(d)
							    : lm_dp_inputs(d);
			for (int i = 0; i < l->n; i++)
				most = l->t[i].nbytes > most ? l->t[i].nbytes
							     : most;
		}
		if (!(in->scratch = malloc(most ? most : 1)))
			return lm_fail(e, -ENOMEM, "out of memory");
	}
	if (lm_pipeline_remote(d->pipe))
		return keep_make(s, d, e);
	return 0;
}

unsigned lm_dp_queue_pending(const struct lm_dp_deployment *d)
{
	const struct lm_dp_ingress *in = d->ing;
	return in ? in->n_wait + in->n_gather + in->in_flight : 0;
}

unsigned lm_dp_queue_drain(struct lm_dp_serve *s, struct lm_dp_deployment *d)
{
	struct lm_dp_ingress *in = d->ing;
	if (!in)
		return 0;
	if (!in->draining)
		lm_log("deployment %s: draining (%u request(s) to answer)",
		       d->id, lm_dp_queue_pending(d));
	in->draining = 1;
	if (in->open >= 0)
		seal(s, in, in->open);
	if (in->n_wait)
		serve_waiters(s, in);
	return lm_dp_queue_pending(d);
}

struct cancel_ctx {
	struct lm_dp_serve *s;
	struct lm_dp_ingress *in;
};

/* A bundle of the deployment still in its pipeline: its flight is
 * cancelled (across laminads the kept slots stand for them: see below). */
static void cancel_bundle(void *ctx, struct lm_dp_bundle *b, unsigned edge)
{
	struct cancel_ctx *x = ctx;
	int slot;
	(void)edge;
	if (x->in->d->rel)
		return;
	struct flight *f = fl_get(x->in, b->conn, &slot);
	if (f && f->sent && !f->ans)
		answer_flight(x->s, x->in, slot, NULL, -ECANCELED,
			      "the deployment was torn down");
}

void lm_dp_queue_cancel(struct lm_dp_serve *s, struct lm_dp_deployment *d)
{
	struct lm_dp_ingress *in = d->ing;
	struct cancel_ctx x = { s, in };
	if (!in) {
		lm_pipeline_drain(d->pipe, NULL, NULL);
		return;
	}
	in->draining = 1;
	lm_pipeline_drain(d->pipe, cancel_bundle, &x);
	while (in->wait_head) {
		struct lm_dp_req *r = in->wait_head;
		unwait(s, in, r);
		fail(s, r, -ECANCELED, "the deployment was torn down");
	}
	for (unsigned i = 0; i < in->n_fl; i++) {
		struct flight *f = in->fl[i];
		if (f->used && !f->ans)
			answer_flight(s, in, (int)i, NULL, -ECANCELED,
				      "the deployment was torn down");
	}
	in->open = -1;
	for (unsigned k = 0; k < LM_DP_FRONTS; k++)
		if (s->ops[k])
			s->ops[k]->forget(s->fronts[k], d);
	/* fronts released every hold: nothing is left */
	for (unsigned i = 0; i < in->n_fl; i++)
		if (in->fl[i]->used)
			fl_drop(in, (int)i);
	for (unsigned k = 0; d->rel && k < lm_rel_slots(d->rel); k++)
		if (lm_rel_in_flight(d->rel, k))
			lm_rel_release(d->rel, k);
}

void lm_dp_queue_free(struct lm_dp_deployment *d)
{
	if (d->rel) {
		const lm_rel_stats *r = lm_rel_get_stats(d->rel);
		lm_log("deployment %s: %llu request(s) re-sent, %llu duplicate "
		       "answer(s) dropped, %llu given up", d->id,
		       (unsigned long long)r->resent,
		       (unsigned long long)r->dup_answers,
		       (unsigned long long)r->gave_up);
		lm_rel_free(d->rel); /* the copies go with their pool */
		d->rel = NULL;
	}
	struct lm_dp_ingress *in = d->ing;
	if (!in)
		return;
	rte_mempool_free(in->keep_pool);
	for (unsigned i = 0; i < in->n_fl; i++)
		free(in->fl[i]);
	free(in->fl);
	free(in->free_fl);
	free(in->scratch);
	free(in);
	d->ing = NULL;
}

/* ---- telemetry ---- */

void lm_dp_count_error(struct lm_dp_deployment *d, int status)
{
	if (d && d->ing)
		d->ing->st.errors[lm_dp_err_of(status)]++;
}

void lm_dp_ingress_read(const struct lm_dp_deployment *d,
			struct lm_dp_ingress_stats *s)
{
	const struct lm_dp_ingress *in = d->ing;
	memset(s, 0, sizeof(*s));
	if (!in)
		return;
	*s = in->st;
	s->queue_depth = in->n_wait + in->n_gather;
	s->in_flight = in->in_flight;
	s->batch = in->batch;
	s->max_queue = in->max_queue;
	s->max_delay_us = in->max_delay_us;
	/* the oldest snapshot of the last 10 s against now */
	uint64_t now = rte_rdtsc(), hz = rte_get_tsc_hz();
	const struct snap *old = NULL;
	for (unsigned k = 0; k < RECENT; k++) {
		const struct snap *p = &in->recent[k];
		if (p->t && now - p->t <= 10 * hz + hz / 2 &&
		    (!old || p->t < old->t))
			old = p;
	}
	if (old && now > old->t) {
		s->recent_s = (double)(now - old->t) / (double)hz;
		s->recent_requests = in->st.requests - old->requests;
		s->recent_samples = in->st.samples - old->samples;
	}
}
