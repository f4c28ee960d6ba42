/*
 * eal.h: what laminad tells DPDK's EAL, so that users never do (eal.c).
 *
 *  - lcores: lcore 0 is the main lcore (control port, ingress, egress),
 *    allowed on every cpu this process may use; lcores 1.. are worker
 *    slots, LM_DP_LCORES_PER_CPU per worker cpu, each pinned to one cpu
 *    (EAL's --lcores map).  A plan with more stages than cores still runs:
 *    its stages share cpus, and then poll adaptively.
 *  - one --file-prefix per instance (port and pid), --no-pci,
 *    --no-telemetry, and --in-memory (hugepages) or --no-shconf (no
 *    hugepages): several laminads coexist and leave no shared files.
 *  - memory: hugepages when the host has some free on a hugetlbfs mount;
 *    else, as root with --hugepages auto, reserve them (huge.h) and mount
 *    hugetlbfs in laminad's state folder; else --no-huge.
 *  - NUMA: a worker's node comes from libnuma; stages allocate on it.
 */
#ifndef LAMINA_DP_EAL_H
#define LAMINA_DP_EAL_H

#include <limits.h>
#include <stdint.h>

#include "huge.h"
#include "lamina/common.h"

#define LM_DP_MAX_LCORES 128
#define LM_DP_LCORES_PER_CPU 4 /* worker lcore slots per worker cpu */

enum lm_dp_poll { LM_DP_POLL_AUTO, LM_DP_POLL_BUSY, LM_DP_POLL_ADAPTIVE };

struct lm_dp_lcore {
	unsigned cpu;
	int used; /* a stage's replica holds it */
};

/* The lcore map: 0 is main, 1.. are worker slots pinned to worker cpus. */
struct lm_dp_lcores {
	unsigned n;
	struct lm_dp_lcore l[LM_DP_MAX_LCORES];
	unsigned worker_cpus[LM_DP_MAX_LCORES], n_worker_cpus;
	unsigned n_online_cpus;
	enum lm_dp_poll poll;
};

/* What laminad's options say about EAL. */
struct lm_dp_eal_opts {
	const char *cores;     /* --cores LIST, or NULL */
	const char *extra;     /* --eal "ARGS", or NULL */
	const char *state_dir; /* where a hugetlbfs mount of its own goes */
	unsigned memory_mb;
	int hugepages_auto;
	uint16_t control_port;
	enum lm_dp_poll poll;
};

/* What EAL was given and what laminad reserved for it. */
struct lm_dp_eal {
	char file_prefix[64];
	char run_dir[PATH_MAX]; /* EAL's run folder of that prefix */
	int hugepages;	        /* EAL runs on hugepages */
	struct lm_huge huge;    /* pages reserved by this laminad */
};

/**
 * The lcore map and worker cpus from the options.
 * @return 0; -EINVAL naming a bad --cores; -E2BIG.
 */
int lm_dp_lcores_init(const struct lm_dp_eal_opts *o, struct lm_dp_lcores *lc,
		      lm_error *e);

/**
 * Decide the memory (free hugepages, reserve some, or --no-huge) and build
 * EAL's argument vector (malloc'd; free with lm_dp_eal_args_free).  The
 * file prefix and run folder are set first, so that whoever cleans up
 * after this process knows them even if EAL never starts.  Hugepages
 * reserved are in x->huge (give them back with lm_huge_release).
 */
int lm_dp_eal_args(const struct lm_dp_eal_opts *o,
		   const struct lm_dp_lcores *lc, struct lm_dp_eal *x,
		   int *argc, char ***argv, lm_error *e);
void lm_dp_eal_args_free(int argc, char **argv);

/** EAL's run folder of a file prefix, as EAL chooses it. */
void lm_dp_eal_run_dir(const char *prefix, char *out, size_t len);

/**
 * Whether workers busy-poll: as configured, or (auto) only when every
 * loaded stage's worker has a cpu to itself and one cpu is left over.
 */
int lm_dp_poll_busy(const struct lm_dp_lcores *lc);

/**
 * Whether the main lcore spins while requests are in the pipeline: only
 * when workers busy-poll and some cpu it may run on holds no worker.
 * Otherwise it waits for its sockets with a short timeout between polls
 * of the last edge, so that it never takes a busy worker's cpu for long.
 */
int lm_dp_main_spins(const struct lm_dp_lcores *lc);

/** NUMA node of a cpu (0 without libnuma support). */
int lm_dp_cpu_node(unsigned cpu);

#endif
