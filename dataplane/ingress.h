/*
 * ingress.h: the inference ingress and egress, on the main lcore.
 *
 * The front (struct lm_dp_front, one per laminad) holds the connections of
 * the ingress port, each a small state machine over the request format of
 * lamina/wire.h: the fixed head, then per tensor its head and its bytes.
 * Heads go through a small per-connection staging buffer; tensor bytes are
 * read from the socket straight into the bundle taken from edge 0's
 * mempool.  A request that does not fit the deployment is answered with an
 * error and the rest of it skipped, using its length field, so the
 * connection keeps serving; only broken framing (bad magic, a length too
 * short for the head, a stream ending mid-request) closes the connection.
 *
 * Flow control: a connection may have LM_DP_CONN_WINDOW requests open (in
 * the pipeline or answered but unsent).  When its window is full, or edge
 * 0 has no free bundle, it stops reading (EPOLLIN off) until the egress
 * frees room.  Every parsed request yields exactly one answer, so the
 * answer queue never holds more than the window.
 *
 * Egress: the last edge's bundles are answered with one writev from the
 * answer head, the tensor heads formatted at start (struct
 * lm_dp_ingress, one per deployment whose stage 0 is here) and the
 * bundle's tensors; the bundle goes back to its pool when the answer is
 * sent.  An answer for a connection that closed meanwhile is dropped.
 *
 * Across laminads a bundle can be lost with a frame, so the ingress keeps
 * a copy of every request in a slot of reliable delivery (reliable.h),
 * taken with its edge-0 bundle, re-sends it when no answer came in time
 * and gives up with an error answer after the last re-send; the first
 * answer frees the slot, later ones are dropped.  In one process nothing
 * is kept: nothing is lost.
 */
#ifndef LAMINA_DP_INGRESS_H
#define LAMINA_DP_INGRESS_H

#include <stdint.h>

#include <rte_mempool.h>

#include "bundle.h"
#include "deployment.h"
#include "spec.h"

#define LM_DP_MAX_CONNS 1024
#define LM_DP_CONN_WINDOW 64 /* requests a connection may have open */

/* The ingress's part of one deployment: answers and telemetry. */
struct lm_dp_ingress {
	/* answer tensor heads, formatted once at start */
	uint8_t *answer_thdr;
	size_t thdr_off[LM_DP_MAX_TENSORS + 1];
	size_t answer_bytes; /* after the answer's length field */
	/* telemetry, written by the main lcore only */
	uint64_t requests, errors;
	struct lm_dp_hist e2e;
	/* reliable delivery: the copies its slots hold */
	struct rte_mempool *keep_pool;
	/* the re-send policy and the requests kept, from stage 0's
	 * LoadStage */
	unsigned retry_ms, max_retries, period_us, keep_slots;
};

struct lm_dp_conn;

struct lm_dp_front {
	int epfd;			 /* the main loop's */
	struct lm_dp_deployments *deps;
	uint64_t tsc_hz;
	double cycles_per_us;
	struct lm_dp_conn *conns;	 /* LM_DP_MAX_CONNS slots */
	int n_blocked;		 /* connections waiting for room */
	int inflight;		 /* requests in pipelines, all of them */
	unsigned refused;	 /* refusals, to rate-limit their log */
	uint64_t t_retry;	 /* TSC of the next re-send scan */
};

/* epoll user data of an ingress connection: kind in the top bits */
#define LM_DP_EV(kind, slot) (((uint64_t)(kind) << 32) | (uint32_t)(slot))

/** The connection table.  0 or -ENOMEM. */
int lm_dp_front_init(struct lm_dp_front *f, int epfd,
		     struct lm_dp_deployments *deps, uint64_t tsc_hz,
		     lm_error *e);
/** Close every connection and free the table. */
void lm_dp_front_close(struct lm_dp_front *f);

/** Accept every pending connection on listening socket fd; each is
 *  registered in epoll as LM_DP_EV(kind, slot). */
int lm_dp_front_accept(struct lm_dp_front *f, int fd, uint32_t kind);
/** Read requests from / write answers to connection `slot`. */
void lm_dp_front_event(struct lm_dp_front *f, int slot, uint32_t events);
/** Poll the answers' edge of every deployment; returns answers handled. */
int lm_dp_front_egress(struct lm_dp_front *f);
/** Resume connections that waited for a bundle or their window. */
void lm_dp_front_unblock(struct lm_dp_front *f);
/** Re-send what waited too long for its answer; give up after the
 *  deployment's retries (deployments that cross laminads only). */
void lm_dp_front_retry(struct lm_dp_front *f);
/**
 * Close connections that hold the table or a bundle for nothing: idle (no
 * request open) for a minute, or stalled for 5 s half-way through a
 * request (call about every second).  A new connection to a full table
 * takes the slot of the idle one quiet the longest.
 */
void lm_dp_front_sweep(struct lm_dp_front *f);

/**
 * Make the ingress's part of d (d->ing) when its stage 0 is loaded here,
 * with the re-send policy stage0 gives.  0 or -ENOMEM.
 */
int lm_dp_ingress_create(struct lm_dp_deployment *d,
			 const struct lm_dp_stage_spec *stage0, lm_error *e);

/**
 * At d's start: format the answer heads and, when its pipeline crosses
 * laminads, make reliable delivery (d->rel) with the kept copies stage 0's
 * LoadStage asked for (keep_bundles, the plan's keep).  Idempotent.
 * @return 0; -EINVAL when none were asked for; -ENOMEM.
 */
int lm_dp_ingress_start(struct lm_dp_front *f, struct lm_dp_deployment *d,
			lm_error *e);

/**
 * Before d goes: answer every request of d still in its pipeline, kept,
 * being read or queued with -ECANCELED (the pipeline must be stopped);
 * the pipeline is left empty.
 */
void lm_dp_front_cancel(struct lm_dp_front *f, struct lm_dp_deployment *d);

/** Free d->ing and d->rel (after lm_dp_front_cancel); safe on NULL. */
void lm_dp_ingress_free(struct lm_dp_deployment *d);

#endif
