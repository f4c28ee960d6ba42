/*
 * ingress.h: the binary TCP front of the ingress (lamina/wire.h, which
 * lm_client speaks), on the main lcore.  The queue it feeds, batching,
 * flights and answers are queue.h's; HTTP is http.h's.
 *
 * The front holds the connections of the ingress port, each a small
 * state machine over the request format: the fixed head, then per tensor
 * its head and its bytes.  Heads go through a small per-connection staging
 * buffer; once tensor 0's head tells the request's rows, the request is
 * admitted (queue.h) and its tensor bytes are read from the socket straight
 * into its rows of the bundle being gathered.  A request that does not fit
 * the deployment, or that the queue refuses, is answered with an error and
 * the rest of it skipped, using its length field, so the connection keeps
 * serving; only broken framing (bad magic, a length too short for the
 * head, a stream ending mid-request) closes the connection.
 *
 * Flow control: a connection may have LM_DP_CONN_WINDOW requests open
 * (admitted and unanswered, or answered and unsent).  When its window is
 * full, or its request waits for rows, it stops reading (EPOLLIN off)
 * until room comes.  Every parsed request yields exactly one answer.
 *
 * Answers are written with writev from the answer head, the tensor heads
 * (formatted per answer: the rows vary) and the request's rows of the
 * answer bundle, whose flight the connection holds until sent.  An answer
 * for a connection that closed meanwhile is dropped.
 */
#ifndef LAMINA_DP_INGRESS_H
#define LAMINA_DP_INGRESS_H

#include <stdint.h>

#include "queue.h"

#define LM_DP_MAX_CONNS 1024
#define LM_DP_CONN_WINDOW 64 /* requests a connection may have open */

struct lm_dp_conn;

struct lm_dp_front {
	int epfd; /* the main loop's */
	struct lm_dp_serve *serve;
	struct lm_dp_conn *conns; /* LM_DP_MAX_CONNS slots */
	int *dirty;		  /* slots with answers to send or to resume */
	int n_dirty;
	unsigned refused; /* refusals, to rate-limit their log */
};

/* epoll user data of an ingress connection: kind in the top bits */
#define LM_DP_EV(kind, slot) (((uint64_t)(kind) << 32) | (uint32_t)(slot))

/** The connection table, registered with serve as its TCP front.  0 or
 *  -ENOMEM. */
int lm_dp_front_init(struct lm_dp_front *f, int epfd,
		     struct lm_dp_serve *serve, lm_error *e);
/** Close every connection and free the table. */
void lm_dp_front_close(struct lm_dp_front *f);

/** Accept every pending connection on listening socket fd; each is
 *  registered in epoll as LM_DP_EV(kind, slot). */
int lm_dp_front_accept(struct lm_dp_front *f, int fd, uint32_t kind);
/** Read requests from / write answers to connection `slot`. */
void lm_dp_front_event(struct lm_dp_front *f, int slot, uint32_t events);
/** Send what the queue answered and resume connections it gave rows;
 *  call after lm_dp_serve_egress and lm_dp_serve_tick. */
void lm_dp_front_flush(struct lm_dp_front *f);
/**
 * Close connections that hold the table or rows for nothing: idle (no
 * request open) for a minute, or stalled for 5 s half-way through a
 * request (call about every second).  A new connection to a full table
 * takes the slot of the idle one quiet the longest.
 */
void lm_dp_front_sweep(struct lm_dp_front *f);

#endif
