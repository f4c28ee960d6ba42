/*
 * stats.h: a deployment's telemetry, read on the main lcore into a plain
 * struct that the control port (StatsReply) and any other front encode.
 * Counters are written by one lcore each and read without locks: a reading
 * may be a moment stale, never torn (64-bit stores).
 */
#ifndef LAMINA_DP_STATS_H
#define LAMINA_DP_STATS_H

#include <stdint.h>

#include "bundle.h"
#include "deployment.h"
#include "queue.h"
#include "spec.h"

struct lm_dp_stage_stats {
	unsigned stage, first, last;
	unsigned n_cores;
	uint32_t cores[LM_DP_MAX_REPLICAS];
	uint64_t requests;    /* bundles it ran */
	uint64_t samples;     /* live samples in them */
	uint64_t errors;
	uint64_t busy_cycles; /* TSC cycles running the stage */
	uint64_t idle_cycles; /* TSC cycles polling empty or asleep */
	unsigned queue_depth, queue_capacity; /* its input ring */
	struct lm_dp_hist hist; /* run times, its replicas summed */
};

struct lm_dp_stats {
	char id[LM_WIRE_ID_LEN], name[LM_WIRE_ID_LEN];
	uint64_t tsc_hz;
	double uptime_s;
	int ingress; /* stage 0 is here: `ing` holds its telemetry */
	struct lm_dp_ingress_stats ing;
	/* across laminads: re-sends, second answers dropped, given up,
	 * bundles this laminad could not send */
	uint64_t resent, dup_answers, gave_up, send_lost;
	unsigned n_stages; /* of them here (loaded) */
	struct lm_dp_stage_stats stages[LM_DP_MAX_STAGES];
};

/** Read d's telemetry at TSC time now. */
void lm_dp_stats_read(const struct lm_dp_deployment *d, uint64_t now,
		      uint64_t tsc_hz, struct lm_dp_stats *s);

#endif
