/*
 * pipeline.h: a deployment's stages on this laminad and the edges between
 * them: what runs on the worker lcores.
 *
 * Edge s feeds stage s (edge 0 is fed by the ingress, edge n_stages feeds
 * the egress).  An edge is one rte_mempool of bundles (bundle.h) and one
 * rte_ring of pointers to them.  Stage s makes edge s's mempool when it is
 * loaded, on its own NUMA socket (the consumer's); the last stage also
 * makes the last edge's.  The pool holds exactly the bundles the plan
 * charged for the edge (the LoadStage's in/out/answers_bundles): the
 * memory a plan promises is the memory laminad takes.  Rings are made at
 * the first start, when the producer and consumer counts of every edge are
 * known (single producer / single consumer wherever one lcore sits on that
 * side), each able to hold its whole pool, so an enqueue never fails.
 *
 * A stage runs slices [first, last] of the slice folder joined into one
 * graph (lm_slice_join) as one session of the single-threaded runtime,
 * once per replica (one per worker lcore), with weights and arena on the
 * replica's NUMA node.  Its outputs are written by lm_session_run straight
 * into the bundle taken from the output edge's pool; tensors that only
 * pass through the stage (a skip connection spanning it) are the one copy
 * a stage makes.  Nothing is allocated per request.
 *
 * Across laminads a laminad holds some of the stages, numbered as in the
 * whole pipeline, and the edges that touch them: a stage whose output goes
 * to another laminad makes its output edge too (remote_out: the main
 * lcore drains it into the network, net.c), one whose input comes from
 * another laminad has its input edge filled from the network (remote_in),
 * and stage 0's laminad, the ingress, makes the last edge for the answers
 * coming back (remote_in).  The worker loop (worker.c) does not change.
 *
 * Ownership: the pipeline owns its stages, replicas and edges; only the
 * main lcore creates, starts, stops or frees; workers touch their own
 * replica, the rings and the pools.  The pipeline knows nothing of the
 * ingress or the network: an edge's transport is net.c's (edge->link).
 */
#ifndef LAMINA_DP_PIPELINE_H
#define LAMINA_DP_PIPELINE_H

#include <limits.h>
#include <stdint.h>

#include <rte_mempool.h>
#include <rte_ring.h>

#include "bundle.h"
#include "eal.h"
#include "lamina/runtime.h"
#include "spec.h"

struct lm_dp_link; /* net.c: how a remote edge crosses */

/* A stage's slices joined into one graph and session: its inputs are
 * read from the input bundle and its outputs written into the output
 * bundle, each at its offset in the edge's layout. */
struct lm_dp_step {
	lm_graph *graph;
	lm_session *session;
	int n_in, n_out;
	lm_tensor in[LM_DP_MAX_TENSORS], out[LM_DP_MAX_TENSORS];
	size_t in_off[LM_DP_MAX_TENSORS], out_off[LM_DP_MAX_TENSORS];
};

struct lm_dp_copy {
	size_t from, to, nbytes;
};

struct lm_dp_stage;

/* One worker lcore running one copy of a stage.  Its counters are written
 * by that worker only and read by the main lcore. */
struct lm_dp_replica {
	struct lm_dp_stage *stage;
	unsigned lcore, cpu;
	int socket;
	struct lm_dp_step step;
	volatile int stop;
	int busy_poll;
	/* bundles dequeued but not run when told to stop */
	struct lm_dp_bundle *held[LM_DP_BURST];
	unsigned n_held;
	/* telemetry */
	volatile uint64_t requests, samples, errors, busy_cycles, idle_cycles;
	struct lm_dp_hist hist;
	lm_error err;
} __attribute__((aligned(LM_DP_ALIGN)));

struct lm_dp_edge {
	struct lm_dp_layout layout;
	struct rte_mempool *pool;
	struct rte_ring *ring;
	unsigned n_bufs;
	int socket;
	int loaded;	/* layout and pool made */
	int remote_in;	/* filled by the network (net.c) */
	int remote_out; /* drained into the network (net.c) */
	struct lm_dp_bell *bell; /* the main lcore drains it: ring after */
	struct lm_dp_link *link; /* net.c's, for a remote edge */
	uint64_t pool_bytes;	 /* the pool's memory, as DPDK sized it */
};

struct lm_dp_stage {
	unsigned index, first, last;
	struct lm_dp_layout in, out;
	struct lm_dp_copy copies[LM_DP_MAX_TENSORS];
	int n_copies;
	struct lm_dp_edge *in_edge, *out_edge;
	int n_replicas;
	struct lm_dp_replica *rep[LM_DP_MAX_REPLICAS];
	uint64_t weight_bytes, arena_bytes, ring_bytes;
	double cycles_per_us;
};

struct lm_pipeline {
	char id[LM_WIRE_ID_LEN];
	uint32_t gen; /* names its pools and rings */
	char dir[PATH_MAX];
	unsigned batch, n_stages, n_slices;
	struct lm_dp_stage *stages[LM_DP_MAX_STAGES];
	struct lm_dp_edge edges[LM_DP_MAX_STAGES + 1];
	int started, running;
	double cycles_per_us;
};

/** What loading a stage took, for the LoadStage reply. */
struct lm_dp_loaded {
	unsigned n_cores;
	uint32_t cores[LM_DP_MAX_REPLICAS];
	uint64_t weight_bytes, arena_bytes, ring_bytes;
};

/**
 * An empty pipeline for the deployment of spec s (its id, stage count,
 * batch and folder), identified by gen in pool and ring names.
 * @return 0; -ENOMEM.
 */
int lm_pipeline_create(const struct lm_dp_stage_spec *s, uint32_t gen,
		       double cycles_per_us, struct lm_pipeline **out,
		       lm_error *e);

/**
 * Load stage s->stage: its slices once per replica on the replica's NUMA
 * node, worker lcores from lc, and the edges it makes (exactly the
 * bundles s asks for).
 * @return 0; -EINVAL naming the bad field or file (another deployment
 *         with this id, slices beyond the folder, an edge already made);
 *         -EEXIST (stage loaded); -EBUSY (running, or no free worker
 *         slot); -ENOMEM; errors of loading a slice.
 */
int lm_pipeline_load(struct lm_pipeline *p, const struct lm_dp_stage_spec *s,
		     struct lm_dp_lcores *lc, struct lm_dp_loaded *out,
		     lm_error *e);

/**
 * Check that the stages loaded here chain (each edge has its two ends, or
 * one end remote), make the rings and launch a worker per replica.  bell
 * is rung by producers on edges the main lcore drains (the answers' edge
 * and those to other laminads).  Idempotent.
 * @return 0; -EINVAL naming the missing or mismatched stage; -ENOMEM;
 *         -EBUSY when an lcore is busy.
 */
int lm_pipeline_start(struct lm_pipeline *p, struct lm_dp_bell *bell,
		      int busy_poll, lm_error *e);

/** Stop the workers (bundles in flight wait for the next start). */
void lm_pipeline_stop(struct lm_pipeline *p);

/**
 * Every bundle in the pipeline (on its rings and held by stopped
 * workers), each given to fn with the edge it was on, then back to its
 * pool.  The pipeline must be stopped.  fn may be NULL.
 */
void lm_pipeline_drain(struct lm_pipeline *p,
		       void (*fn)(void *ctx, struct lm_dp_bundle *b,
				  unsigned edge),
		       void *ctx);

/** Stop, drain without telling anyone, free everything and give the
 *  lcores back; safe on NULL.  Edge links must be closed first. */
void lm_pipeline_free(struct lm_pipeline *p, struct lm_dp_lcores *lc);

/** Whether some edge here crosses to another laminad. */
int lm_pipeline_remote(const struct lm_pipeline *p);

/** Whether stage 0 is here (this laminad is the ingress). */
static inline int lm_pipeline_ingress(const struct lm_pipeline *p)
{
	return p->stages[0] != NULL;
}

/** The edge the ingress feeds and the one answers arrive on. */
static inline struct lm_dp_edge *lm_pipeline_input(struct lm_pipeline *p)
{
	return &p->edges[0];
}

static inline struct lm_dp_edge *lm_pipeline_answers(struct lm_pipeline *p)
{
	return &p->edges[p->n_stages];
}

/* worker.c */
/** The worker loop of one replica (rte_eal_remote_launch's function). */
int lm_dp_worker_main(void *replica);

#endif
