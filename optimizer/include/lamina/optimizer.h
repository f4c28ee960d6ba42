/*
 * optimizer.h: where the slices of a model run.  Devices and the links
 * between them, profiles (time and memory of every slice on every device),
 * the cost model of a placement, the placement solver and plan files.
 *
 * Lifecycle:
 *   lm_devices_load() / lm_devices_local()   devices.json, or this host
 *   lm_profile_load()                        profile.json (`lamina bench`)
 *   lm_profile_derive()                      --model-speed NAME=F[@FROM]
 *   lm_plan_cost_create()                    devices + profile at batch B
 *   lm_solve()                               the best plan, or why none fits
 *   lm_plan_save() / lm_plan_load()          plan.json
 *   lm_plan_free(), lm_plan_cost_free(), lm_profile_free(),
 *   lm_devices_free()
 *
 * The model (docs/placement.md has it with examples):
 *
 * - A slice range [a, b] is a *stage*; it runs on one device with r worker
 *   cores, each a replica running the whole range (requests are spread over
 *   the replicas).  Time of a stage: the sum of its slices' times on that
 *   device at the batch size; a replica takes that long per batch, so the
 *   stage's period is time / r.
 * - Restriction: each device holds one contiguous run of the pipeline,
 *   split into one or more stages on its cores.  The solver is exact for
 *   this model; the brute force in tests/unit/test_solver.c enumerates it.
 * - Transfers between consecutive stages: on one device a ring handoff
 *   (profile's handoff_us, latency and occupancy); between devices the
 *   link's latency plus bytes / bandwidth.  A missing link means the two
 *   devices cannot talk.  For throughput a link is busy for bytes /
 *   bandwidth per batch, and at least for (latency + that) /
 *   LM_PLAN_RING_DEPTH: its latency overlaps the next batches only as far
 *   as the LM_PLAN_RING_DEPTH bundles queued on each edge reach.
 * - Memory is what laminad allocates, and the plan states it: weights and
 *   an arena per replica (each replica has its own session), and a pool of
 *   bundles per edge.  Edge k's pool holds LM_PLAN_RING_DEPTH bundles plus
 *   one per replica of the stages at its ends on that device
 *   (lm_plan_edge_bundles); an edge between devices has a pool on each.
 *   Charged per stage [a, b] with r replicas:
 *     r x (weights + arenas of a..b + cut bytes of its inner cuts, which
 *          its joined session holds in its arena)
 *     + r x (bundle at a + bundle at b+1: what each replica holds while
 *            it runs) + LM_PLAN_RING_DEPTH x bundle at a (its queue)
 *   and the last stage of a device's run adds LM_PLAN_RING_DEPTH x the
 *   bundle after it (the queue to the next device, or to the egress).  In
 *   a plan over several devices the first device, the ingress, also holds
 *   the answers' queue (LM_PLAN_RING_DEPTH bundles) and the copies of
 *   LM_PLAN_KEEP requests kept until answered.  Bundle bytes are the
 *   profile's (header and alignment included).  A device's stages must fit
 *   memory_bytes x (1 - headroom).
 * - Latency of a plan: one batch end to end, the sum of stage times and
 *   transfers (moving the model's input in and its output out is not
 *   counted).  Period: the largest of stage time / r and transfer
 *   occupancies; throughput = batch / period samples (inferences) per
 *   second.  Over several devices the ingress keeps at most LM_PLAN_KEEP
 *   requests in flight, so a plan whose latency exceeds LM_PLAN_KEEP
 *   periods runs slower than predicted (`lamina plan` says so).
 * - Objectives: latency (lowest latency; among those, the highest
 *   throughput); throughput (highest throughput; among those, the lowest
 *   latency); throughput within a latency budget; all with an optional cap
 *   on the number of stages.  A plan uses the fewest replicas that reach
 *   its period.
 */
#ifndef LAMINA_OPTIMIZER_H
#define LAMINA_OPTIMIZER_H

#include <stddef.h>

#include "lamina/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Bundles queued on each edge beyond those its stages' replicas hold. */
#define LM_PLAN_RING_DEPTH 4

/** Requests the ingress of a plan over several devices keeps (a copy of
 *  each) until answered: at most this many are in flight. */
#define LM_PLAN_KEEP (4 * LM_PLAN_RING_DEPTH)

/** Bytes a bundle takes beyond its tensors when a profile does not say
 *  (profiles written before bundle_bytes): header, pool header and one
 *  tensor's alignment. */
#define LM_PLAN_BUNDLE_OVERHEAD 192

/**
 * Bundles in the pool of an edge on one device: the queue plus one per
 * replica of the stages at its ends there (prod and cons replicas; 0 for
 * an end on another device, or the ingress, egress or network).  The one
 * place this is decided: the plan states the result per stage, laminad
 * allocates exactly it.
 */
static inline int lm_plan_edge_bundles(int prod, int cons)
{
	return LM_PLAN_RING_DEPTH + prod + cons;
}

/** Longest device name, address or slice label, with its NUL. */
#define LM_NAME_MAX 64
#define LM_ADDR_MAX 128
/** Longest note on a derived device of a profile, with its NUL. */
#define LM_NOTE_MAX 256

/** Largest byte count accepted from a file (1 PiB): sums stay exact. */
#define LM_BYTES_MAX 1125899906842624.0

/* ---- devices ---- */

/** A dataplane device: a host, or one NUMA node of a host. */
typedef struct lm_device {
	char name[LM_NAME_MAX];
	int cores;           /**< worker cores lamina may use (>= 1) */
	double memory_bytes; /**< memory lamina may use */
	int numa_node;
	char address[LM_ADDR_MAX];
	/** how lamina reaches the host to start its laminad: an ssh
	 *  destination "[user@]host[:port]"; "" when it does not */
	char ssh[LM_ADDR_MAX];
} lm_device;

/** One direction of a link; present == 0: the devices cannot talk. */
typedef struct lm_link {
	int present;
	double latency_us;
	double gbps; /**< bandwidth, 1e9 bits per second */
} lm_link;

typedef struct lm_devices {
	int n;
	lm_device *dev;
	lm_link *links; /**< n x n, links[from * n + to]; the diagonal unused */
} lm_devices;

/**
 * n devices, zeroed, with no links (for programs that build them).
 * @return 0 or -ENOMEM.
 */
int lm_devices_create(int n, lm_devices **out);

/**
 * Read devices.json:
 *   {"devices": [{"name", "cores", "memory_bytes", "numa_node", "address"}],
 *    "links": [{"from", "to", "latency_us", "gbps"}]}
 * A link applies both ways unless the reverse is listed too.
 * @return 0; -ENOENT/-EACCES; -EINVAL naming the file and the field.
 */
int lm_devices_load(const char *path, lm_devices **out, lm_error *e);

/**
 * This host as one device "local": every online core but one (at least
 * one), the memory it has available (MemAvailable), NUMA node 0, address
 * 127.0.0.1.
 */
int lm_devices_local(lm_devices **out, lm_error *e);

/** A deep copy, or NULL when out of memory. */
lm_devices *lm_devices_copy(const lm_devices *d);

/** Free; safe on NULL. */
void lm_devices_free(lm_devices *d);

/** Index of the device called name, or -1. */
int lm_devices_find(const lm_devices *d, const char *name);

/** The link from -> to (never NULL for valid indices). */
static inline const lm_link *lm_devices_link(const lm_devices *d, int from,
					     int to)
{
	return &d->links[from * d->n + to];
}

/* ---- profiles ---- */

/** One slice at one batch size. */
typedef struct lm_profile_slice {
	double weight_bytes; /**< weights as the runtime holds them */
	double arena_bytes;  /**< intermediate tensors inside the slice */
	double output_bytes; /**< the tensors it hands on */
	double *time_us;     /**< per profile device; < 0 when not measured */
	char label[LM_NAME_MAX]; /**< "Conv+Relu" (may be empty) */
} lm_profile_slice;

/** Everything measured at one batch size. */
typedef struct lm_profile_batch {
	int batch;
	double input_bytes; /**< the model's inputs at this batch */
	double handoff_us;  /**< one bundle through a ring on one device */
	lm_profile_slice *slices; /**< n_slices */
	double *cut_bytes;  /**< n_slices - 1: crossing the cut after slice i */
	/** n_slices + 1: one bundle at boundary k (0: the input, n: the
	 *  output) as laminad allocates it; < 0 when not measured */
	double *bundle_bytes;
} lm_profile_batch;

typedef struct lm_profile {
	int n_slices;
	int n_devices;
	char (*devices)[LM_NAME_MAX]; /**< names of the timed devices */
	int *derived_from; /**< per device: source of --model-speed, or -1 */
	double *speed;     /**< per device: the factor F when derived */
	char (*notes)[LM_NOTE_MAX]; /**< per device: why derived ("" none) */
	int n_batches;
	lm_profile_batch *batches;
	char model[256];   /**< the slice folder it was measured for */
} lm_profile;

/**
 * An empty profile for n_slices slices (>= 1), no devices, no batches.
 * @return 0, -EINVAL, -ENOMEM.
 */
int lm_profile_create(int n_slices, lm_profile **out);

/**
 * Add a timed device (its times start unmeasured, -1).
 * @return its index, or -EEXIST / -ENOMEM.
 */
int lm_profile_add_device(lm_profile *p, const char *name);

/**
 * Add a batch size; its bytes start at 0 and its times at -1.
 * @return the new entry (owned by p), or NULL when the batch exists or
 *         memory ran out.
 */
lm_profile_batch *lm_profile_add_batch(lm_profile *p, int batch);

/** Index of a device / a batch size in p, or -1. */
int lm_profile_find_device(const lm_profile *p, const char *name);
int lm_profile_find_batch(const lm_profile *p, int batch);

/**
 * Read profile.json (format "lamina-profile", version 1):
 *   {"format", "version", "model", "slices": N, "devices": [names],
 *    "derived": {NAME: {"from", "speed", "note"?}},
 *    "batches": [{"batch", "input_bytes", "handoff_us",
 *                 "slices": [{"index", "label", "weight_bytes",
 *                             "arena_bytes", "output_bytes",
 *                             "time_us": {DEVICE: t}}],
 *                 "cut_bytes": [N - 1 numbers],
 *                 "bundle_bytes": [N + 1 numbers]?}]}
 * (bundle_bytes: one bundle at each boundary as laminad allocates it;
 * older profiles lack it and get LM_PLAN_BUNDLE_OVERHEAD on the bytes)
 * Every listed device has a time for every slice of every batch.
 * @return 0; -ENOENT/-EACCES; -EINVAL naming the file and the field.
 */
int lm_profile_load(const char *path, lm_profile **out, lm_error *e);

/**
 * Write profile.json (the format above).  Checks first that every device
 * has every time, so a half-measured profile is refused with -EINVAL.
 * Written to a temporary file and renamed.
 */
int lm_profile_save(const lm_profile *p, const char *path, lm_error *e);

/** Free; safe on NULL. */
void lm_profile_free(lm_profile *p);

/** A --model-speed request: NAME=F or NAME=F@FROM. */
typedef struct lm_model_speed {
	char name[LM_NAME_MAX];
	char from[LM_NAME_MAX]; /**< "" : the profile's first measured device */
	double factor;          /**< > 0: 2 is twice as fast, 0.5 half */
	char note[LM_NOTE_MAX]; /**< why, kept in the profile ("" none) */
} lm_model_speed;

/** Parse NAME=F[@FROM].  Returns 0 or -EINVAL with a message. */
int lm_profile_parse_speed(const char *arg, lm_model_speed *s, lm_error *e);

/**
 * Derive a device's times: for every batch and slice,
 * time(NAME) = time(FROM) / F.  FROM must be a measured device (not itself
 * derived), so the result never depends on the order of requests; NAME is
 * added when the profile lacks it and its times are replaced otherwise.
 * @return 0; -EINVAL naming FROM when it is unknown, derived or NAME.
 */
int lm_profile_derive(lm_profile *p, const lm_model_speed *s, lm_error *e);

/* ---- plans ---- */

typedef enum lm_objective {
	LM_PLAN_LATENCY,
	LM_PLAN_THROUGHPUT,
} lm_objective;

/** How a stage hands its output on. */
typedef enum lm_xfer_kind {
	LM_XFER_NONE, /**< the last stage */
	LM_XFER_RING, /**< the next stage is on the same device */
	LM_XFER_LINK, /**< the next stage is on another device */
} lm_xfer_kind;

typedef struct lm_plan_stage {
	int device;      /**< index into plan->devices */
	int first, last; /**< slices, inclusive */
	int cores;       /**< replicas */
	/* predictions (lm_plan_evaluate) */
	double time_us;      /**< one batch through one replica */
	double period_us;    /**< time_us / cores */
	double memory_bytes; /**< charged to its device (see the top) */
	/* what laminad allocates when it loads the stage: weights and arenas
	 * of its replicas, and the pools of the edges it makes (its input
	 * edge, its output edge when that leaves the device or is the
	 * egress, and at stage 0 of a plan over several devices the answers'
	 * edge) with in_bundles, out_bundles, answers_bundles bundles */
	double weight_bytes, arena_bytes, ring_bytes;
	int in_bundles, out_bundles, answers_bundles;
	double in_bytes, out_bytes; /**< bundles received and handed on */
	lm_xfer_kind xfer;
	double xfer_us;           /**< to the next stage */
	double xfer_occupancy_us; /**< how long the transfer holds its link */
} lm_plan_stage;

typedef struct lm_plan {
	lm_objective objective;
	int batch;
	double latency_budget_us; /**< 0: none */
	int max_stages;           /**< 0: no cap */
	double headroom;          /**< fraction of memory left free */
	int n_slices;
	lm_devices *devices;      /**< the fleet (owned) */
	int n_stages;
	lm_plan_stage *stages;
	/* predictions (lm_plan_evaluate) */
	double latency_us, period_us, throughput_rps;
	double *memory_used;  /**< per device, bytes */
	double *memory_limit; /**< per device, memory x (1 - headroom) */
	int *cores_used;      /**< per device */
	int bottleneck;       /**< stage whose period or transfer sets period */
	int bottleneck_xfer;  /**< 1: the transfer after that stage */
	int keep;             /**< requests the ingress keeps; 0: one device */
	/* how it was found (lm_solve) */
	int exact;            /**< 1: optimal for the model */
	double bound;         /**< best possible objective value: latency_us
				   or throughput_rps */
	double solve_seconds;
	char note[256];       /**< e.g. why the heuristic was used */
	char model[4096];     /**< absolute path of the slice folder; "" when
				   the plan does not say (older plans) */
} lm_plan;

/** A plan with room for n_stages stages and a copy of the devices. */
int lm_plan_create(const lm_devices *d, int n_stages, lm_plan **out);

/** Free; safe on NULL. */
void lm_plan_free(lm_plan *p);

/**
 * Write plan.json:
 *   {"format": "lamina-plan", "version": 2, "model"?, "objective", "batch",
 *    "latency_budget_us"?, "max_stages"?, "headroom_pct", "slices",
 *    "ring_depth", "keep", "devices": [{"name", "address", "numa_node",
 *    "cores", "memory_bytes", "cores_used", "memory_used_bytes",
 *    "memory_limit_bytes"}],
 *    "stages": [{"device", "slices": [first, last], "cores",
 *                "predicted_us", "period_us", "memory_bytes",
 *                "weight_bytes", "arena_bytes", "ring_bytes",
 *                "in_bundles", "out_bundles", "answers_bundles",
 *                "input_bytes", "output_bytes",
 *                "next": {"kind": "ring"|"link", "latency_us",
 *                         "occupancy_us"}}],
 *    "predicted": {"latency_us", "throughput_rps", "period_us",
 *                  "bottleneck": {"stage", "kind": "stage"|"transfer"}},
 *    "solver": {"exact", "bound_latency_us" | "bound_throughput_rps",
 *               "seconds", "note"}}
 */
int lm_plan_save(const lm_plan *p, const char *path, lm_error *e);

/**
 * Read plan.json: the slice folder (when recorded), objective, batch,
 * devices and stages (checked: known devices, slices contiguous from 0,
 * cores within each device) and the recorded predictions.
 * @return 0; -ENOENT/-EACCES; -EINVAL naming the file and the field.
 */
int lm_plan_load(const char *path, lm_plan **out, lm_error *e);

/* ---- the cost model ---- */

/** Devices and one batch of a profile, ready for costing (opaque). */
typedef struct lm_plan_cost lm_plan_cost;

/**
 * Bind devices to a profile's batch.  Every device needs times in the
 * profile.  d and p must outlive the cost.
 * @param headroom  fraction of each device's memory left free (0 <= h < 1)
 * @return 0; -EINVAL naming a device the profile has no times for, or a
 *         batch the profile lacks; -ENOMEM.
 */
int lm_plan_cost_create(const lm_devices *d, const lm_profile *p, int batch,
			double headroom, lm_plan_cost **out, lm_error *e);

/** Free; safe on NULL. */
void lm_plan_cost_free(lm_plan_cost *c);

const lm_devices *lm_plan_cost_devices(const lm_plan_cost *c);
const lm_profile_batch *lm_plan_cost_batch(const lm_plan_cost *c);
int lm_plan_cost_slices(const lm_plan_cost *c);
double lm_plan_cost_headroom(const lm_plan_cost *c);

/** Time of slices first..last on device dev for one batch, in us. */
double lm_plan_cost_time(const lm_plan_cost *c, int dev, int first,
			 int last);

/**
 * Bytes boundary k carries: 0 the model's input, n the model's output,
 * otherwise the cut after slice k - 1.
 */
double lm_plan_cost_boundary_bytes(const lm_plan_cost *c, int k);

/**
 * Memory of stage first..last with r replicas, its input ring included
 * (not the output ring a device's last stage adds: lm_plan_cost_run_end).
 */
double lm_plan_cost_stage_memory(const lm_plan_cost *c, int first, int last,
				 int r);

/**
 * Memory the last stage of a device's run [first, last] adds: the queue
 * after it, and for the first run of a plan over several devices
 * (first == 0, last < n - 1) the answers' queue and the kept requests.
 */
double lm_plan_cost_run_end(const lm_plan_cost *c, int first, int last);

/** One bundle at boundary k, as laminad allocates it. */
double lm_plan_cost_bundle_bytes(const lm_plan_cost *c, int k);

/** memory_bytes x (1 - headroom) of device dev. */
double lm_plan_cost_memory_limit(const lm_plan_cost *c, int dev);

/**
 * Cost of handing the bundle after slice last from device `from` to `to`:
 * a ring handoff when from == to, else the link.
 * @return 0, or -1 when the devices have no link.
 */
int lm_plan_cost_transfer(const lm_plan_cost *c, int from, int to, int last,
			  double *latency_us, double *occupancy_us);

/**
 * Check a plan against the model and fill its predictions: stage times,
 * periods, memory, transfers, per-device use, latency, period, throughput
 * and the bottleneck.  The plan's devices must be the cost's.
 * @return 0; -EINVAL when the stages do not cover the slices in order, a
 *         device holds two runs or has no link to the next one;
 *         -ENOSPC when a device's cores or memory are exceeded.
 */
int lm_plan_evaluate(const lm_plan_cost *c, lm_plan *p, lm_error *e);

/* ---- the solver ---- */

typedef enum lm_solve_mode {
	LM_SOLVE_AUTO,      /**< exact when it fits the work limit */
	LM_SOLVE_EXACT,     /**< exact whatever it costs */
	LM_SOLVE_HEURISTIC, /**< the heuristic and its bound */
} lm_solve_mode;

typedef struct lm_solve_options {
	lm_objective objective;
	double latency_budget_us; /**< > 0: throughput within this latency */
	int max_stages;           /**< > 0: at most this many stages */
	lm_solve_mode mode;
	double work_limit;        /**< steps the exact solver may take in AUTO
				       mode; 0: LM_SOLVE_WORK_LIMIT */
} lm_solve_options;

/** About a second of exact search on a current core. */
#define LM_SOLVE_WORK_LIMIT 1e9

/**
 * The best plan for the model (see the top of this file) at the cost's
 * batch.
 *
 * Exact: dynamic programming over the ordered slices and classes of
 * identical devices; for throughput, a search over the finitely many
 * candidate periods.  When the estimated work exceeds the limit (AUTO) the
 * solver restricts each class to one block in a few class orders and
 * reports the result with a lower bound (plan->exact == 0, plan->note).
 *
 * @return 0; -ENOSPC when no plan fits, with the reason (a slice too big
 *         for every device, too few stages allowed, a latency budget no
 *         plan meets, memory or links); -EINVAL for bad options; -ENOMEM.
 */
int lm_solve(const lm_plan_cost *c, const lm_solve_options *o, lm_plan **out,
	     lm_error *e);

/**
 * The estimated work of the exact solver for these options (what AUTO
 * compares with the work limit).
 */
double lm_solve_estimate(const lm_plan_cost *c, const lm_solve_options *o);

#ifdef __cplusplus
}
#endif

#endif
