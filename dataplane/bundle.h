/*
 * bundle.h: what moves through laminad: tensor bundles and their layouts,
 * the histograms every part keeps, and the main lcore's doorbell.  The
 * bottom of the dataplane: it includes no other dataplane header.
 *
 * A bundle is one mempool element: a 64-byte header (struct lm_dp_bundle)
 * followed by the tensors that cross one edge, each at its offset in the
 * edge's layout.  Workers hand bundles on as pointers through rings; across
 * laminads a bundle travels whole, header included (frame.h).
 */
#ifndef LAMINA_DP_BUNDLE_H
#define LAMINA_DP_BUNDLE_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include "lamina/common.h"
#include "lamina/manifest.h"

#define LM_DP_ALIGN 64
#define LM_DP_MAX_TENSORS 64
#define LM_DP_BURST 8

/* ---- bundles ---- */

struct lm_dp_bundle {
	uint64_t request_id;
	uint64_t conn;       /* the ingress's flight: slot | generation << 32
				(queue.h) */
	uint64_t t_in;       /* TSC when the ingress enqueued it */
	uint32_t deployment; /* generation of the deployment */
	int32_t status;      /* 0, or the negative errno a stage failed with */
	/* across laminads: the ingress's slot for the request and the
	 * ticket of this send (reliable.h) */
	uint32_t keep, ticket;
	uint32_t rows; /* samples in it (the rest of the batch is padding) */
} __attribute__((aligned(LM_DP_ALIGN)));

/* the layout lamina bench measures and the planner charges (manifest.h) */
_Static_assert(sizeof(struct lm_dp_bundle) == LM_BUNDLE_HEAD,
	       "a bundle's header is LM_BUNDLE_HEAD bytes");
_Static_assert(LM_DP_ALIGN == LM_BUNDLE_ALIGN,
	       "tensors in a bundle are LM_BUNDLE_ALIGN-aligned");

static inline uint8_t *lm_dp_bundle_data(struct lm_dp_bundle *b)
{
	return (uint8_t *)(b + 1);
}

/* ---- layouts: the tensors crossing one cut ---- */

struct lm_dp_tdesc {
	char *name;
	lm_dtype dtype;
	int rank;
	int64_t dims[LM_MAX_RANK];
	size_t nbytes;
	size_t offset; /* from lm_dp_bundle_data(), LM_DP_ALIGN-aligned */
	int batch_axis; /* the manifest's: -1 when it holds no batch */
};

struct lm_dp_layout {
	int n;
	struct lm_dp_tdesc t[LM_DP_MAX_TENSORS];
	size_t bytes; /* of the data part of a bundle */
	/* 0: every tensor holds the batch, one sample per index of its batch
	 * axis; 1: some tensor holds none (or the batch merged with another
	 * dim, as inside attention), and a request carries exactly the
	 * batch */
	int exact_batch;
	/* some tensor holds its batch on an axis other than 0 (a
	 * sequence-first transformer's [seq, batch, d]): the ingress gathers
	 * samples batch-major, so a sample is still rows, and moves the axis
	 * into place at dispatch and back at the answers (lm_dp_batch_move);
	 * a request then carries 1 sample or the whole batch */
	int moved_batch;
};

/**
 * The layout of cut k of manifest m at batch `batch` (lm_manifest_cut
 * says which tensors; each is sized at the batch along its batch axis,
 * lm_mtensor_shape_at).
 * @return 0; -EINVAL for a tensor too large, or a batch the model does
 *         not run at (lm_manifest_batch_ok); -E2BIG above
 *         LM_DP_MAX_TENSORS; -ENOMEM.
 */
int lm_dp_layout_cut(const lm_manifest *m, int k, int64_t batch,
		     struct lm_dp_layout *l, lm_error *e);
void lm_dp_layout_clear(struct lm_dp_layout *l);
/** Index of the tensor with this name, or -1. */
int lm_dp_layout_find(const struct lm_dp_layout *l, const char *name);
/** True when two layouts hold the same tensors in the same places. */
int lm_dp_layout_equal(const struct lm_dp_layout *a,
		       const struct lm_dp_layout *b);

/**
 * Move the batch of every tensor of l whose batch axis is not 0, in the
 * bundle data `data` at batch `batch`: to_model 1 from batch-major
 * ([batch][before][after], how the ingress gathers samples) to the
 * model's [before][batch][after], 0 back.  scratch holds the largest
 * tensor of l.
 */
void lm_dp_batch_move(const struct lm_dp_layout *l, unsigned batch,
		      uint8_t *data, uint8_t *scratch, int to_model);

/** Bytes of one bundle of layout l: header and data. */
static inline size_t lm_dp_bundle_bytes(const struct lm_dp_layout *l)
{
	return sizeof(struct lm_dp_bundle) + l->bytes;
}

/* ---- latency histograms ---- */

#define LM_DP_HIST_BUCKETS 100 /* 4 per octave from 1 us */

/* Counts per bucket: bucket 0 holds [0, 1 us), bucket i > 0 holds
 * [2^((i-1)/4), 2^(i/4)) us, and the last one everything above too. */
struct lm_dp_hist {
	uint64_t counts[LM_DP_HIST_BUCKETS];
	double sum_us; /* of every time added */
};

static inline void lm_dp_hist_add(struct lm_dp_hist *h, uint64_t cycles,
				  double cycles_per_us)
{
	double us = (double)cycles / cycles_per_us;
	int i = us < 1.0 ? 0 : 1 + (int)(4.0 * log2(us));
	h->counts[i < LM_DP_HIST_BUCKETS ? i : LM_DP_HIST_BUCKETS - 1]++;
	h->sum_us += us;
}

/** Upper bound, in microseconds, of histogram bucket i. */
static inline double lm_dp_hist_edge(int i)
{
	return pow(2.0, (double)i / 4.0);
}

/* ---- the main lcore's doorbell ---- */

/* An eventfd in the main lcore's epoll set that a worker writes after
 * handing it a bundle (the answers' edge, an edge to another laminad)
 * while the main lcore sleeps, so that it sleeps until there is work
 * instead of waking every few hundred microseconds to look. */
struct lm_dp_bell {
	int fd;
	int sleeping; /* main lcore: about to wait or waiting */
};

/* A worker that enqueued on an edge the main lcore drains: wake it if it
 * sleeps.  B1 pairs with the main lcore's M1 (main.c, loop): either it
 * sees this bundle before it waits, or this sees it sleeping. */
static inline void lm_dp_bell_ring(struct lm_dp_bell *b)
{
	if (!b)
		return;
	__atomic_thread_fence(__ATOMIC_SEQ_CST); /* B1 */
	if (__atomic_load_n(&b->sleeping, __ATOMIC_RELAXED)) {
		uint64_t one = 1;
		ssize_t w = write(b->fd, &one, sizeof(one));
		(void)w;
	}
}

#endif
