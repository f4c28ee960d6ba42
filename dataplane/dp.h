/*
 * dp.h: laminad's internal structures, shared by its files and by nothing
 * else (the public interface of the dataplane is lamina/client.h and the
 * two wire protocols it documents).
 *
 * The pieces, in the order a request meets them:
 *
 *   ingress.c  main lcore: accepts ingress connections, parses requests
 *              straight into a bundle taken from edge 0's mempool and
 *              enqueues its pointer on edge 0's ring; polls the last edge
 *              and writes answers from the bundle to the right connection.
 *   stage.c    a deployment: its stages, the edges between them (one
 *              rte_ring + one rte_mempool of bundles each) and the worker
 *              loop that runs a stage on its pinned lcore.
 *   layout.c   which tensors cross each cut of a slice folder, and where
 *              each lives inside a bundle.
 *   control.c  main lcore: the control port (protobuf-c, lamina.proto).
 *   net.c      main lcore: the port between laminads (--port): bundles of
 *              edges whose other end is another laminad, both ways.
 *   stats.c    latency histograms and the stats reply.
 *   eal.c      EAL arguments, lcore map, hugepages, NUMA facts.
 *   main.c     options, daemon start-up, state file, the event loop.
 *
 * Ownership: struct lm_dp owns deployments and connections; a deployment
 * owns its stages and edges; a stage owns its replicas (one per lcore).
 * Only the main lcore creates or frees anything; workers touch their own
 * replica, the rings and the mempools.
 */
#ifndef LAMINA_DP_H
#define LAMINA_DP_H

#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include <rte_cycles.h>
#include <rte_mempool.h>
#include <rte_ring.h>

#include "ctl.h"
#include "lamina/client.h"
#include "lamina/runtime.h"
#include "lamina/manifest.h"
#include "lamina/slicer.h"

#define LM_DP_VERSION "0.1.0"
#define LM_DP_MAX_STAGES 64
#define LM_DP_MAX_REPLICAS 16
#define LM_DP_MAX_TENSORS 64
#define LM_DP_MAX_DEPLOYMENTS 32
#define LM_DP_MAX_CONNS 1024
#define LM_DP_MAX_LCORES 128
#define LM_DP_LCORES_PER_CPU 4   /* worker lcore slots per worker cpu */
#define LM_DP_CONN_WINDOW 64     /* requests a connection may have open */
#define LM_DP_BURST 8
#define LM_DP_ALIGN 64
#define LM_DP_HIST_BUCKETS 100   /* 4 per octave from 1 us */

/* ---- latency histograms ---- */

/* Counts per bucket: bucket 0 holds [0, 1 us), bucket i > 0 holds
 * [2^((i-1)/4), 2^(i/4)) us, and the last one everything above too. */
struct lm_dp_hist {
	uint64_t counts[LM_DP_HIST_BUCKETS];
};

static inline void lm_dp_hist_add(struct lm_dp_hist *h, uint64_t cycles,
				  double cycles_per_us)
{
	double us = (double)cycles / cycles_per_us;
	int i = us < 1.0 ? 0 : 1 + (int)(4.0 * log2(us));
	h->counts[i < LM_DP_HIST_BUCKETS ? i : LM_DP_HIST_BUCKETS - 1]++;
}

/** Upper bound, in microseconds, of histogram bucket i. */
double lm_dp_hist_edge(int i);

/* ---- bundles: one mempool element, a header then the tensors ---- */

struct lm_dp_bundle {
	uint64_t request_id;
	uint64_t conn;       /* ingress connection: slot | generation << 32 */
	uint64_t t_in;       /* TSC when the ingress enqueued it */
	uint32_t deployment; /* generation of the deployment */
	int32_t status;      /* 0, or the negative errno a stage failed with */
	/* across laminads: the ingress's copy of the request (keep slot) and
	 * which send of it this is, to drop a second answer */
	uint32_t keep, ticket;
} __attribute__((aligned(LM_DP_ALIGN)));

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
};

struct lm_dp_layout {
	int n;
	struct lm_dp_tdesc t[LM_DP_MAX_TENSORS];
	size_t bytes; /* of the data part of a bundle */
};

/**
 * The tensors crossing the cut after slice k at batch `batch`: the model
 * inputs for k = -1, the model outputs (manifest order) for the last slice,
 * else every tensor produced at or before k and read after it.
 */
int lm_dp_layout_cut(const lm_manifest *m, int k, int64_t batch,
		     struct lm_dp_layout *l, lm_error *e);
void lm_dp_layout_clear(struct lm_dp_layout *l);
/** Index of the tensor with this name, or -1. */
int lm_dp_layout_find(const struct lm_dp_layout *l, const char *name);
/** True when two layouts hold the same tensors in the same places. */
int lm_dp_layout_equal(const struct lm_dp_layout *a,
		       const struct lm_dp_layout *b);

/* ---- stages and deployments ---- */

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
	volatile uint64_t requests, errors, busy_cycles, idle_cycles;
	struct lm_dp_hist hist;
	lm_error err;
} __attribute__((aligned(LM_DP_ALIGN)));

struct lm_dp_eth;

/* The main lcore's doorbell: an eventfd in its epoll set that a worker
 * writes after handing it a bundle (the answers' edge, an edge to another
 * laminad) while the main lcore sleeps, so that it sleeps until there is
 * work instead of waking every few hundred microseconds to look. */
struct lm_dp_bell {
	int fd;
	int sleeping; /* main lcore: about to wait or waiting */
};

/* An edge: the ring and mempool between stage s-1 (or the ingress) and
 * stage s (or the egress).  Across laminads each end has its own: on the
 * producer's side (remote_out) the main lcore drains the ring into the
 * port and gives the bundles back; on the consumer's side (remote_in) it
 * reassembles bundles from the port into the pool and fills the ring. */
struct lm_dp_edge {
	struct lm_dp_layout layout;
	struct rte_mempool *pool;
	struct rte_ring *ring;
	unsigned n_bufs;
	int socket;
	int loaded; /* layout and pool made */
	int remote_in, remote_out;
	uint8_t peer_mac[6]; /* remote_out: the consumer's port */
	uint32_t peer_ip;
	struct lm_dp_eth *tx;	/* remote_out, from start */
	/* a laminad on this host at the other end: a memif port of the
	 * edge's own (server on the consumer's side, client on the
	 * producer's) instead of laminad --port */
	int memif, memif_server;
	uint16_t mport;
	char memif_path[108]; /* its socket (sun_path's size) */
	struct lm_dp_eth *rx; /* remote_in over memif: the receiver */
	struct lm_dp_bundle *pending; /* memif: being sent, part way */
	uint64_t pending_since;	      /* its TSC at dequeue */
	struct lm_dp_bell *bell; /* the main lcore drains it: ring after */
};

/* The ingress's copy of a request in flight across laminads. */
struct lm_dp_keep {
	struct lm_dp_bundle *copy; /* owned by the slot for its life */
	uint64_t t_sent;	   /* TSC of the last send */
	uint32_t ticket;	   /* 0: the slot is free */
	unsigned tries;
	unsigned ahead;		   /* requests in flight before it, at send */
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

struct lm_dp_deployment {
	char id[LM_WIRE_ID_LEN];
	uint32_t gen;
	char dir[PATH_MAX];
	unsigned batch, n_stages, n_slices;
	struct lm_dp_stage *stages[LM_DP_MAX_STAGES];
	struct lm_dp_edge edges[LM_DP_MAX_STAGES + 1];
	int started, running;
	/* answer tensor headers, formatted once at start */
	uint8_t *answer_thdr;
	size_t thdr_off[LM_DP_MAX_TENSORS + 1];
	size_t answer_bytes; /* after the answer's length field */
	/* ingress telemetry */
	uint64_t requests, errors, t_created;
	struct lm_dp_hist e2e;
	/* across laminads */
	uint32_t key;	 /* lm_frame_deployment_key of id: frames carry it */
	int remote;	 /* some edge of it here crosses to another laminad */
	int ingress;	 /* stage 0 is here: so are its clients */
	unsigned retry_ms, max_retries; /* retry_ms: the shortest wait */
	/* answer times of requests sent once (TSC cycles), smoothed as TCP
	 * smooths round trips (RFC 6298): the wait before a re-send is
	 * srtt + 4 rttvar, at least retry_ms, doubled per re-send; and at
	 * least twice the time the requests ahead of it take at the plan's
	 * predicted period (period_us, 0: unknown) */
	double srtt, rttvar;
	unsigned period_us;
	/* with remote and ingress: every request kept until answered */
	struct rte_mempool *keep_pool;
	struct lm_dp_keep *keep;
	unsigned *keep_free, n_keep, n_keep_free;
	uint32_t next_ticket;
	uint64_t resent, dup_answers, gave_up;
};

/* laminad --port: one af_packet (or any ethdev) port to other laminads. */
struct lm_dp_net {
	int has_port; /* laminad --port; else only memif edges use this */
	uint16_t port;
	unsigned mtu;
	uint8_t mac[6];
	uint32_t ip; /* host order */
	char mac_str[32];
	struct rte_mempool *rx_pool, *tx_pool;
	struct lm_dp_eth *rx; /* receives for every deployment */
	uint64_t t_retry;     /* TSC of the next retry scan */
};

/* ---- the service ---- */

enum lm_dp_poll { LM_DP_POLL_AUTO, LM_DP_POLL_BUSY, LM_DP_POLL_ADAPTIVE };

struct lm_dp_config {
	uint16_t control_port, ingress_port;
	const char *listen, *name, *cores, *eal, *state_dir, *log;
	enum lm_dp_poll poll;
	int hugepages_auto, foreground;
	unsigned memory_mb;
	const char *port_iface, *port_ip; /* --port, --port-ip */
	unsigned mtu;
	uint32_t fault_dup_ppm, fault_swap_ppm; /* --fault, tests only */
};

struct lm_dp_conn;
struct lm_dp_ctl;

struct lm_dp_lcore {
	unsigned cpu;
	int used;
};

struct lm_dp {
	struct lm_dp_config cfg;
	char name[256];
	char state_file[PATH_MAX], log_path[PATH_MAX];
	char file_prefix[64], run_dir[PATH_MAX];
	/* hugepages this laminad reserved, to give back on exit */
	unsigned huge_kb, huge_count;
	char huge_mount[PATH_MAX];
	int hugepages; /* EAL runs on hugepages */
	/* lcores: 0 is main, 1.. are worker slots pinned to worker cpus */
	unsigned n_lcores;
	struct lm_dp_lcore lcore[LM_DP_MAX_LCORES];
	unsigned worker_cpus[LM_DP_MAX_LCORES], n_worker_cpus;
	unsigned n_online_cpus;
	/* sockets and the loop */
	int epfd, ctl_fd, ing_fd;
	struct lm_dp_bell bell;
	struct lm_dp_deployment *dep[LM_DP_MAX_DEPLOYMENTS];
	uint32_t next_gen;
	struct lm_dp_conn *conns; /* LM_DP_MAX_CONNS slots */
	int n_blocked, inflight;
	unsigned refused; /* ingress refusals, to rate-limit their log */
	struct lm_dp_ctl *ctls[64];
	struct lm_dp_net *net; /* NULL without --port */
	uint64_t tsc_hz, t_start;
	double cycles_per_us;
	int quit;
};

/* eal.c */
/**
 * Build EAL's argument vector from the configuration: lcore map, file
 * prefix, memory.  Reserves hugepages when asked and needed (recorded in
 * dp).  argv is malloc'd; free with lm_dp_eal_args_free.
 */
int lm_dp_eal_args(struct lm_dp *dp, int *argc, char ***argv, lm_error *e);
void lm_dp_eal_args_free(int argc, char **argv);
/** Give back hugepages this laminad reserved (idempotent). */
void lm_dp_hugepages_release(struct lm_dp *dp);
/** Remove the EAL run folder of this instance. */
void lm_dp_eal_rundir_remove(struct lm_dp *dp);
/**
 * Whether workers busy-poll: as configured, or (auto) only when every
 * loaded stage's worker has a cpu to itself and one cpu is left over.
 */
int lm_dp_poll_busy(const struct lm_dp *dp);
/**
 * Whether the main lcore spins while requests are in the pipeline: only
 * when workers busy-poll and some cpu it may run on holds no worker.
 * Otherwise it waits for its sockets with a short timeout between polls
 * of the last edge, so that it never takes a busy worker's cpu for long.
 */
int lm_dp_main_spins(const struct lm_dp *dp);
/** NUMA node of a cpu (0 without libnuma support). */
int lm_dp_cpu_node(unsigned cpu);

/* stage.c */
/**
 * Load one stage (LoadStage): validate the request, load and prepare its
 * slices once per replica on the replica's NUMA node, pick worker lcores,
 * make its input edge's mempool (and the last edge's for the last stage).
 * Creates the deployment on its first stage.
 * @param reply  filled with cores (malloc'd), weight, arena and ring bytes
 * @return 0; -EINVAL naming the bad field or file; -EEXIST (stage loaded);
 *         -EBUSY (deployment running, or no free worker slot); -ENOSPC;
 *         -ENOMEM; errors of loading a slice.
 */
int lm_dp_stage_load(struct lm_dp *dp, const Lamina__LoadStageRequest *r,
		     Lamina__LoadStageReply *reply, lm_error *e);
/**
 * Start serving: check every stage is loaded and that they chain, make the
 * rings, launch a worker per replica.  Idempotent.
 * @return 0; -EINVAL naming the missing or mismatched stage; -ENOMEM.
 */
int lm_dp_deployment_start(struct lm_dp *dp, struct lm_dp_deployment *d,
			   lm_error *e);
/** Stop the workers (bundles in flight wait for the next start). */
void lm_dp_deployment_stop(struct lm_dp *dp, struct lm_dp_deployment *d);
/** Stop, cancel what is in flight, free everything; safe on NULL. */
void lm_dp_deployment_free(struct lm_dp *dp, struct lm_dp_deployment *d);
/** The deployment with this id, or NULL. */
struct lm_dp_deployment *lm_dp_deployment_find(struct lm_dp *dp,
					       const char *id);

/* ingress.c */
/** Accept every pending ingress connection. */
int lm_dp_ingress_accept(struct lm_dp *dp);
/** Read requests from / write answers to connection `slot`. */
void lm_dp_ingress_event(struct lm_dp *dp, int slot, uint32_t events);
/** Poll the last edge of every deployment; returns answers handled. */
int lm_dp_egress_poll(struct lm_dp *dp);
/** Resume connections that waited for a buffer or their window. */
void lm_dp_ingress_unblock(struct lm_dp *dp);
/** Drop everything connections hold of a deployment being torn down. */
void lm_dp_ingress_forget(struct lm_dp *dp, struct lm_dp_deployment *d);
/** Allocate the connection table.  Returns 0 or -ENOMEM. */
int lm_dp_ingress_init(struct lm_dp *dp, lm_error *e);
/** Close every connection and free the table. */
void lm_dp_ingress_close_all(struct lm_dp *dp);

/** Take a keep slot for a request of d (RX_WAIT); -1 when none is free. */
int lm_dp_keep_take(struct lm_dp_deployment *d);
/** Re-send what waited too long for its answer; give up after retries. */
void lm_dp_ingress_retry(struct lm_dp *dp);

/* net.c */
/**
 * Create and start the port of --port IFACE (in laminad's network
 * namespace), learn its MAC and IPv4 address.  Returns 0 or -EINVAL naming
 * the interface and what failed.
 */
int lm_dp_net_open(struct lm_dp *dp, lm_error *e);
/** Stop and close the port; safe without one. */
void lm_dp_net_close(struct lm_dp *dp);
/** The sender of remote_out edge k of d, at its start.  0 or -ENOMEM. */
int lm_dp_net_edge_open(struct lm_dp *dp, struct lm_dp_deployment *d,
			unsigned k, lm_error *e);
/** Before d's pools go: give back the bundles reassembly holds of it. */
void lm_dp_net_forget(struct lm_dp *dp, struct lm_dp_deployment *d);
/** Whether a started deployment uses the port (the loop must poll). */
int lm_dp_net_active(const struct lm_dp *dp);
/** Receive into remote_in edges, send remote_out edges; returns work. */
int lm_dp_net_poll(struct lm_dp *dp);
/** Free an edge's sender (edge_free); safe on NULL. */
void lm_dp_net_edge_close(struct lm_dp_edge *ed);

/* Give edge k of d a memif port at socket path: the server (the edge's
 * consumer is here: its bundles are reassembled from it) or the client
 * (its producer is here: net.c sends on it from start).  Makes dp->net
 * (its mbuf pools) when laminad has no --port. */
int lm_dp_net_memif_open(struct lm_dp *dp, struct lm_dp_deployment *d,
			 unsigned k, const char *path, int server,
			 lm_error *e);

/* control.c */
/** Accept every pending control connection. */
int lm_dp_control_accept(struct lm_dp *dp);
/** Read, handle and answer control messages on connection `slot`. */
void lm_dp_control_event(struct lm_dp *dp, int slot, uint32_t events);
/** Flush last replies and close every control connection. */
void lm_dp_control_close_all(struct lm_dp *dp);

/* stats.c */
/**
 * The deployment's telemetry as a StatsReply (deployment borrows d->id).
 * @return 0 or -ENOMEM; free with lm_dp_stats_reply_free.
 */
int lm_dp_stats_reply(struct lm_dp *dp, struct lm_dp_deployment *d,
		      Lamina__StatsReply **out, lm_error *e);
void lm_dp_stats_reply_free(Lamina__StatsReply *s);

/* main.c: logging to laminad's log (DPDK's log stream) */
void lm_dp_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* epoll user data: kind in the top bits, slot below */
enum { LM_DP_EV_CTL_LISTEN = 1, LM_DP_EV_ING_LISTEN, LM_DP_EV_CTL,
       LM_DP_EV_ING, LM_DP_EV_BELL };

/* A worker that enqueued on an edge the main lcore drains: wake it if it
 * sleeps.  The fences pair with the main lcore's (main.c, loop): either
 * it sees this bundle before it waits, or this sees it sleeping. */
static inline void lm_dp_bell_ring(struct lm_dp_bell *b)
{
	if (!b)
		return;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (__atomic_load_n(&b->sleeping, __ATOMIC_RELAXED)) {
		uint64_t one = 1;
		ssize_t w = write(b->fd, &one, sizeof(one));
		(void)w;
	}
}
#define LM_DP_EV(kind, slot) (((uint64_t)(kind) << 32) | (uint32_t)(slot))

#endif
