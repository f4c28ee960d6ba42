/*
 * reasm.h: putting tensor bundles back together from their fragments.
 *
 * The receiver of an edge between hosts feeds every parsed fragment
 * (frame.h) to lm_reasm_push.  The first fragment of a bundle takes a
 * buffer for the whole bundle from the destination edge (the `alloc`
 * callback, a mempool in laminad) and every fragment's payload is copied
 * straight into it at its offset: one copy, from the frame to where the
 * next stage reads.  A bundle is complete when every fragment has arrived.
 *
 * State is bounded: at most `max_pending` bundles are in flight, each with
 * a fixed-size fragment map; a bundle that makes no progress for
 * `timeout_ns` is dropped (its buffer given back), and when the table is
 * full the oldest pending bundle makes room.  A lost fragment therefore
 * loses its bundle, never memory; the ingress re-sends the request.
 *
 * Dropped and counted: fragments of a bundle already complete or dropped
 * (stale, remembered in a ring of recent bundles), repeated fragments
 * (duplicate), fragments that disagree with their bundle's first one
 * (malformed), fragments for which alloc has no buffer (unknown
 * deployment or edge, or the edge is out of buffers).
 */
#ifndef LAMINA_DP_REASM_H
#define LAMINA_DP_REASM_H

#include <stdint.h>

#include "frame.h"

typedef struct lm_reasm lm_reasm;

typedef struct lm_reasm_config {
	uint32_t max_pending;	  /**< bundles in flight at once */
	uint32_t max_bundle;	  /**< largest bundle in bytes */
	uint32_t recent;	  /**< finished bundles remembered (stale) */
	uint64_t timeout_ns;	  /**< a pending bundle with no news is dropped */
} lm_reasm_config;

typedef struct lm_reasm_ops {
	/**
	 * A buffer of f->total_len bytes for f's deployment and edge, or
	 * NULL with *why set to -ENOENT (unknown deployment or edge) or
	 * -ENOBUFS (none free).
	 */
	void *(*alloc)(void *ctx, const lm_frame_info *f, int *why);
	/** Give back a buffer alloc gave whose bundle was dropped. */
	void (*release)(void *ctx, void *buf);
	void *ctx;
} lm_reasm_ops;

typedef struct lm_reasm_stats {
	uint64_t fragments;  /**< pushed */
	uint64_t completed;  /**< bundles handed on */
	uint64_t duplicate;  /**< fragments seen before */
	uint64_t stale;	     /**< fragments of finished or dropped bundles */
	uint64_t malformed;  /**< disagree with their bundle */
	uint64_t unknown;    /**< no such deployment or edge */
	uint64_t no_buffer;  /**< the edge had no free buffer */
	uint64_t timed_out;  /**< bundles dropped after timeout_ns */
	uint64_t evicted;    /**< bundles dropped to make room */
} lm_reasm_stats;

/** A complete bundle: the buffer alloc gave, now owned by the caller. */
typedef struct lm_reasm_bundle {
	void *buf;
	uint32_t len;
	uint32_t deployment, edge, bundle_id;
	uint64_t request_id;
} lm_reasm_bundle;

/**
 * Create a reassembler; every table is allocated here, none later.
 * @return 0, -EINVAL for a zero or too large setting, -ENOMEM.
 */
int lm_reasm_create(const lm_reasm_config *cfg, const lm_reasm_ops *ops,
		    lm_reasm **out);

/** Free it, giving back the buffers of pending bundles; safe on NULL. */
void lm_reasm_free(lm_reasm *r);

/**
 * Take one parsed fragment received at now_ns.
 * @return 1 when it completed a bundle (*done filled; the buffer is now the
 *         caller's), 0 when it was kept or dropped (see the stats).
 */
int lm_reasm_push(lm_reasm *r, const lm_frame_info *f, uint64_t now_ns,
		  lm_reasm_bundle *done);

/** Drop the bundles with no news since now_ns - timeout_ns. */
void lm_reasm_expire(lm_reasm *r, uint64_t now_ns);

/** Bundles pending now. */
uint32_t lm_reasm_pending(const lm_reasm *r);

/** The counters. */
const lm_reasm_stats *lm_reasm_get_stats(const lm_reasm *r);

#endif
