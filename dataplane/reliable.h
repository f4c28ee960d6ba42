/*
 * reliable.h: reliable delivery of requests whose bundles cross laminads.
 *
 * A bundle sent to another laminad can be lost with a frame.  The ingress
 * therefore keeps every request in a slot until its first answer: the slot
 * has a ticket, new for every request; every send of the request carries
 * (slot, ticket); the first answer frees the slot, so a later answer to
 * the same request (the original was only late, or a frame was
 * duplicated) finds the ticket gone and is dropped: the client sees each
 * answer once.  A request not answered in time is sent again, after a wait
 * learnt from the answer times as TCP learns its retransmission timeout
 * (RFC 6298: srtt + 4 rttvar, from requests sent only once), never below
 * retry_ms, at least twice what the requests ahead of it take at the
 * plan's period, doubled per re-send; after max_retries re-sends it is
 * given up.
 *
 * This file is pure logic: no EAL, no sockets, no clock.  Times are ticks
 * the caller reads (the TSC in laminad) and passes in; what a slot holds
 * (the request's copy) is the caller's, one pointer per slot.  So it is
 * unit-tested alone (tests/unit/test_reliable.c).
 */
#ifndef LAMINA_DP_RELIABLE_H
#define LAMINA_DP_RELIABLE_H

#include <stdint.h>

typedef struct lm_rel lm_rel;

typedef struct lm_rel_config {
	unsigned slots;       /**< requests kept at once (>= 1) */
	double ticks_per_us;  /**< of the times passed in */
	unsigned retry_ms;    /**< shortest wait before a re-send (> 0) */
	unsigned max_retries; /**< re-sends before giving up */
	unsigned period_us;   /**< the plan's predicted period; 0: unknown */
} lm_rel_config;

typedef struct lm_rel_stats {
	uint64_t resent;      /**< re-sends made */
	uint64_t dup_answers; /**< answers dropped as second copies */
	uint64_t gave_up;     /**< requests given up */
} lm_rel_stats;

/** What a due slot needs: sent again, or given up. */
enum lm_rel_due { LM_REL_RESEND = 1, LM_REL_GIVE_UP = 2 };

/**
 * A table of cfg->slots slots, all free; copies[i] (the caller's) is slot
 * i's request copy, returned by lm_rel_copy.
 * @return 0; -EINVAL for a zero slot count or retry_ms; -ENOMEM.
 */
int lm_rel_create(const lm_rel_config *cfg, void *const *copies,
		  lm_rel **out);

/** Free the table (not the copies); safe on NULL. */
void lm_rel_free(lm_rel *r);

/** Take a free slot for a new request; -1 when none is free.  *ticket is
 *  what every send of it carries (never 0). */
int lm_rel_take(lm_rel *r, uint32_t *ticket);

/** Free a slot without an answer (the request was refused while read,
 *  or its client went away). */
void lm_rel_release(lm_rel *r, unsigned slot);

/** The request in slot was sent (first time or again) at time now. */
void lm_rel_sent(lm_rel *r, unsigned slot, uint64_t now);

/**
 * An answer carrying (slot, ticket) arrived at now.
 * @return 1 when it is the request's first answer (the slot is free
 *         again, and a request sent once taught its answer time); 0 for a
 *         second answer or a slot/ticket that is not in flight (counted in
 *         dup_answers): drop it.
 */
int lm_rel_answered(lm_rel *r, unsigned slot, uint32_t ticket, uint64_t now);

/**
 * The next slot, from *cursor on, whose wait expired at now: returns it
 * with *what LM_REL_RESEND (call lm_rel_sent when re-sent; re-sends are
 * counted then) or LM_REL_GIVE_UP (counted; call lm_rel_release).  -1
 * when no slot is due (the cursor is then past the end: start again from
 * 0 on the next scan).
 */
int lm_rel_due(lm_rel *r, uint64_t now, unsigned *cursor, int *what);

/** The wait, in ticks, before the next send of slot (for tests and logs). */
uint64_t lm_rel_wait(const lm_rel *r, unsigned slot);

/** Slot i's copy, as given to lm_rel_create. */
void *lm_rel_copy(const lm_rel *r, unsigned slot);

/** Slots in use (requests being read or in flight). */
unsigned lm_rel_in_use(const lm_rel *r);

/** Whether slot holds a request that was sent (in flight). */
int lm_rel_in_flight(const lm_rel *r, unsigned slot);

/** Slot count. */
unsigned lm_rel_slots(const lm_rel *r);

const lm_rel_stats *lm_rel_get_stats(const lm_rel *r);

#endif
