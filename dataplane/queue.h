/*
 * queue.h: the ingress's core, which its fronts share: the binary TCP port
 * (ingress.c, lamina/wire.h) and HTTP with the Open Inference Protocol
 * (http.c).  It admits requests into a bounded queue, gathers them into
 * the plan's batch (dynamic batching), dispatches bundles into the
 * pipeline, splits the answers back per request, re-sends across laminads,
 * drains and cancels, and keeps the ingress's telemetry.
 *
 * A request has 1 to `batch` rows (samples along axis 0 of every input).
 * When some input or output of the model holds its batch on another axis
 * (a sequence-first transformer's [seq, batch, d]; lm_dp_moved_batch), a
 * request carries 1 sample or the whole batch: samples are gathered
 * batch-major (one sample is then rows, as for any model), the batch axis
 * moved into place at dispatch and back when the answers come
 * (lm_dp_batch_move); a whole batch comes in the model's own layout and
 * fills a bundle alone, moved neither way.  When some input or output
 * holds no batch (or one merged with another dim; lm_dp_exact_batch), a
 * request carries exactly `batch` samples; the fronts refuse other shapes
 * saying why (lm_dp_layout_exact_why).
 * Admission reserves rows for it in the deployment's open bundle, a bundle
 * of edge 0 being gathered; the front then writes its inputs straight into
 * those rows (lm_dp_req_rows: the TCP front reads the socket into them)
 * and commits.  The open bundle is dispatched when its rows are all taken,
 * or max_delay after its first request (padded with zeros) once its
 * writers have committed; a request that does not fit in what is left
 * dispatches it early.  When no bundle (or, across laminads, no kept slot)
 * is free, a request waits in a FIFO; beyond max_queue requests waiting or
 * gathering, admission refuses at once (-EBUSY: HTTP 503).
 *
 * In the pipeline a bundle is a flight: the bundle header's `conn` names a
 * slot of the deployment's flight table (slot | generation << 32), which
 * lists the requests in it and their rows.  When the answers' edge returns
 * it, each member is answered through its front's answer(); a front that
 * writes the rows out later (TCP's writev) holds the flight and releases
 * it when sent: the bundle goes back to its pool after the last release.
 *
 * Deadlines: a request may carry one (TSC).  Expired while waiting or
 * gathering, it is answered -ETIMEDOUT and not run (its rows become
 * padding); once dispatched it runs and is answered.
 *
 * Drain: a deployment being torn down refuses new requests (-ESHUTDOWN),
 * dispatches what it gathers, and counts what is still to answer
 * (lm_dp_queue_pending) until lamina tears it down; cancel then answers
 * what is left with -ECANCELED.
 *
 * Everything here runs on the main lcore.
 */
#ifndef LAMINA_DP_QUEUE_H
#define LAMINA_DP_QUEUE_H

#include <stdint.h>

#include <rte_mempool.h>

#include "bundle.h"
#include "deployment.h"
#include "spec.h"

/* the fronts */
enum { LM_DP_FRONT_TCP, LM_DP_FRONT_HTTP, LM_DP_FRONTS };

/* errors by kind, for telemetry (metrics label in lm_dp_error_kind) */
enum lm_dp_err {
	LM_DP_ERR_INVALID,   /* malformed or not the model's inputs */
	LM_DP_ERR_NOT_FOUND, /* no such deployment */
	LM_DP_ERR_BUSY,      /* queue full */
	LM_DP_ERR_TIMEOUT,   /* deadline expired before it ran */
	LM_DP_ERR_UNAVAILABLE, /* stopped, draining, torn down */
	LM_DP_ERR_FAILED,    /* a stage failed, or no answer came */
	LM_DP_ERR_KINDS
};

/** The metrics label of an error kind. */
const char *lm_dp_err_kind(enum lm_dp_err k);
/** The kind of a request's error status (a negative errno). */
enum lm_dp_err lm_dp_err_of(int status);

/* batch sizes the histogram tells apart (larger ones count as this) */
#define LM_DP_MAX_BATCH_HIST 256

enum { LM_DP_REQ_WAIT, LM_DP_REQ_WRITE, LM_DP_REQ_READY, LM_DP_REQ_RUN };

/* One request, from admission to its answer. */
struct lm_dp_req {
	struct lm_dp_req *next; /* the FIFO of waiters; the free list */
	struct lm_dp_deployment *d;
	unsigned front;  /* LM_DP_FRONT_* */
	uint64_t handle; /* the front's: whom to answer */
	uint64_t tag;	 /* the front's: e.g. the client's request id */
	unsigned rows, row0;
	int state;	/* LM_DP_REQ_* */
	uint32_t flight; /* its flight's slot (WRITE on) */
	uint64_t t_arrive, deadline; /* TSC; deadline 0: none */
};

/* A request's answer, as its front gets it. */
struct lm_dp_reply {
	int status;	 /* 0, or a negative errno */
	const char *msg; /* status != 0: one line */
	/* status 0: the answers' layout, the bundle's data and the rows of
	 * this request in it (tensor i's rows start at
	 * data + t[i].offset + row0 * t[i].nbytes / batch) */
	const struct lm_dp_layout *layout;
	const uint8_t *data;
	unsigned batch, row0, rows;
	uint64_t flight; /* for lm_dp_flight_hold */
};

/* What the core asks of a front. */
struct lm_dp_front_ops {
	/* rows were reserved for waiting request r: write them (state
	 * WRITE) */
	void (*ready)(void *front, struct lm_dp_req *r);
	/* r's answer; r is freed when this returns */
	void (*answer)(void *front, struct lm_dp_req *r,
		       const struct lm_dp_reply *a);
	/* d goes: release every flight of d held and forget d */
	void (*forget)(void *front, struct lm_dp_deployment *d);
};

/* Per deployment whose stage 0 is here: d->ing. */
struct lm_dp_ingress;

/* One per laminad. */
struct lm_dp_serve {
	struct lm_dp_deployments *deps;
	uint64_t tsc_hz;
	double cycles_per_us;
	const struct lm_dp_front_ops *ops[LM_DP_FRONTS];
	void *fronts[LM_DP_FRONTS];
	int inflight;	   /* bundles in every pipeline */
	unsigned gathering; /* requests waiting or gathering, every queue */
	unsigned waiting;   /* of those, waiting for rows */
	uint64_t t_retry;  /* TSC of the next re-send scan */
	struct lm_dp_req *free_reqs;
};

void lm_dp_serve_init(struct lm_dp_serve *s, struct lm_dp_deployments *deps,
		      uint64_t tsc_hz);
void lm_dp_serve_front(struct lm_dp_serve *s, unsigned front,
		       const struct lm_dp_front_ops *ops, void *ctx);
/** Free what serve keeps (after every deployment is gone). */
void lm_dp_serve_close(struct lm_dp_serve *s);

/* ---- a deployment's queue ---- */

/** Defaults: max_queue when the LoadStage gives none, per batch row. */
#define LM_DP_QUEUE_PER_ROW 32
#define LM_DP_QUEUE_MIN 256

/**
 * Make d->ing when d's stage 0 is loaded here, with the batching and
 * re-send policies stage0 gives.  0 or -ENOMEM.
 */
int lm_dp_queue_create(struct lm_dp_deployment *d,
		       const struct lm_dp_stage_spec *stage0, lm_error *e);

/**
 * At d's start: when its pipeline crosses laminads, make reliable
 * delivery (d->rel) with the kept copies stage 0 asked for.  Idempotent.
 * @return 0; -EINVAL when none were asked for; -ENOMEM.
 */
int lm_dp_queue_start(struct lm_dp_serve *s, struct lm_dp_deployment *d,
		      lm_error *e);

/**
 * Admit a request of `rows` rows for d from `front`.
 * @return 0: rows reserved (*out in state WRITE: write, then commit);
 *         1: it waits (*out in state WAIT: the front's ready() comes);
 *         -EINVAL: rows not in 1..batch (not batch, for a model that
 *         takes exact batches); -EBUSY: the queue is full;
 *         -ESHUTDOWN: d is being torn down; -EAGAIN: d is stopped;
 *         -ENOMEM.  On errors nothing is kept.
 */
int lm_dp_admit(struct lm_dp_serve *s, struct lm_dp_deployment *d,
		unsigned front, uint64_t handle, unsigned rows,
		uint64_t deadline, struct lm_dp_req **out);

/** Where request r (state WRITE) writes input i: its rows of tensor i of
 *  edge 0, *nbytes long. */
uint8_t *lm_dp_req_rows(struct lm_dp_req *r, int i, size_t *nbytes);

/** r's inputs are written. */
void lm_dp_commit(struct lm_dp_serve *s, struct lm_dp_req *r);

/** The front gives r up (its connection went, or its later inputs were
 *  bad): its rows become padding, no answer comes, r is freed. */
void lm_dp_abandon(struct lm_dp_serve *s, struct lm_dp_req *r);

/** Keep flight `flight` of d (a reply's) past the answer call ... */
void lm_dp_flight_hold(struct lm_dp_deployment *d, uint64_t flight);
/** ... and let it go: its bundle returns after the last release. */
void lm_dp_flight_release(struct lm_dp_deployment *d, uint64_t flight);

/* ---- the loop ---- */

/** Poll the answers' edge of every deployment; returns answers handled. */
int lm_dp_serve_egress(struct lm_dp_serve *s);

/**
 * Timers: dispatch bundles whose delay is over, answer expired requests,
 * give waiters rows that came free, re-send (across laminads).  Call each
 * loop round; cheap when nothing waits.
 */
void lm_dp_serve_tick(struct lm_dp_serve *s);

/** Microseconds until the next timer of lm_dp_serve_tick, at most cap. */
unsigned lm_dp_serve_next_us(const struct lm_dp_serve *s, unsigned cap);

/* ---- drain and teardown ---- */

/**
 * Stop admitting for d and dispatch what it gathers; returns the requests
 * admitted and not yet answered (call until 0, then tear down).
 */
unsigned lm_dp_queue_drain(struct lm_dp_serve *s, struct lm_dp_deployment *d);

/** Requests of d admitted and not yet answered. */
unsigned lm_dp_queue_pending(const struct lm_dp_deployment *d);

/**
 * Before d goes (its pipeline stopped): answer every request of d
 * waiting, gathering, in the pipeline or kept with -ECANCELED, and have
 * every front forget d; the pipeline is left empty.
 */
void lm_dp_queue_cancel(struct lm_dp_serve *s, struct lm_dp_deployment *d);

/** Free d->ing and d->rel (after lm_dp_queue_cancel); safe on NULL. */
void lm_dp_queue_free(struct lm_dp_deployment *d);

/* ---- what fronts read ---- */

/** d's input layout (edge 0) and answer layout, and its batch. */
const struct lm_dp_layout *lm_dp_inputs(struct lm_dp_deployment *d);
const struct lm_dp_layout *lm_dp_outputs(struct lm_dp_deployment *d);
unsigned lm_dp_batch(const struct lm_dp_deployment *d);
/** Whether d takes only requests of exactly its batch: some input or
 *  output holds no batch, or one merged with another dim. */
int lm_dp_exact_batch(struct lm_dp_deployment *d);
/** Whether d holds its batch on an axis other than 0 somewhere (and every
 *  input and output holds it): requests carry 1 sample or the whole
 *  batch, gathered batch-major and moved into place (bundle.h). */
int lm_dp_moved_batch(struct lm_dp_deployment *d);
/** Whether d takes requests now (started, not draining). */
int lm_dp_ready(const struct lm_dp_deployment *d);

/* ---- telemetry ---- */

struct lm_dp_ingress_stats {
	uint64_t requests, samples, batches; /* answered; dispatched */
	uint64_t errors[LM_DP_ERR_KINDS];
	uint64_t batch_rows[LM_DP_MAX_BATCH_HIST + 1]; /* batches by rows */
	unsigned queue_depth; /* waiting and gathering now */
	unsigned in_flight;   /* requests in the pipeline now */
	unsigned batch, max_queue;
	unsigned max_delay_us;
	struct lm_dp_hist queue, compute, e2e; /* per request, per batch,
						  per request */
	/* the last ~10 s: answered requests and samples over recent_s */
	double recent_s;
	uint64_t recent_requests, recent_samples;
};

/** Count an error of d's front that never reached admission. */
void lm_dp_count_error(struct lm_dp_deployment *d, int status);

/** d's ingress telemetry (zeros when d's stage 0 is elsewhere). */
void lm_dp_ingress_read(const struct lm_dp_deployment *d,
			struct lm_dp_ingress_stats *s);

#endif
