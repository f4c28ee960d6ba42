/*
 * spec.h: one stage to load, as laminad's control port decoded and
 * validated it from a LoadStage message (decode.c).  Nothing past the
 * control port sees protobuf: the pipeline, the network and the ingress
 * are configured from this plain struct, whose every field is already
 * checked (ids are plain names, slice ranges ordered, counts bounded,
 * topology consistent).
 */
#ifndef LAMINA_DP_SPEC_H
#define LAMINA_DP_SPEC_H

#include <limits.h>
#include <stdint.h>

#include "lamina/wire.h"

#define LM_DP_MAX_STAGES 64
#define LM_DP_MAX_REPLICAS 16
#define LM_DP_MAX_BUNDLES 4096 /* per edge: a bound on what a plan asks */

/** How an edge of a stage crosses to another laminad. */
enum lm_dp_cross {
	LM_DP_LOCAL = 0, /**< a ring in this laminad */
	LM_DP_PORT,      /**< frames over laminad --port */
	LM_DP_MEMIF,     /**< a memif pair with a laminad on this host */
};

struct lm_dp_stage_spec {
	char deployment[LM_WIRE_ID_LEN]; /**< a plain id: [A-Za-z0-9._-] */
	unsigned stage, n_stages;        /**< stage < n_stages <= MAX */
	char dir[PATH_MAX];              /**< the stage's folder in laminad's
					    store (set after decoding, by
					    control.c, from the files) */
	unsigned first, last;            /**< slices, first <= last */
	unsigned batch;                  /**< >= 1 */
	unsigned n_cores;                /**< replicas' cpus; 0: pick one */
	uint32_t cores[LM_DP_MAX_REPLICAS];
	/* bundles in flight on the edges this stage makes, as the plan
	 * charged them (1..LM_DP_MAX_BUNDLES): its input edge, its output
	 * edge (when it makes it: the last stage, or an output to another
	 * laminad) and, for stage 0 with answers from elsewhere, the
	 * answers' edge */
	unsigned in_bundles, out_bundles, answers_bundles;
	unsigned keep_bundles; /* stage 0 with answers from elsewhere: the
				  requests the ingress keeps until answered */
	/* topology: where the output goes, where input and answers come
	 * from (answers: stage 0 of a pipeline over several laminads) */
	enum lm_dp_cross next, input, answers;
	uint8_t next_mac[6];   /**< next == LM_DP_PORT */
	uint32_t next_ip;      /**< next == LM_DP_PORT, host order */
	/* stage 0 with answers from elsewhere: the re-send policy
	 * (reliable.h) */
	unsigned retry_ms, max_retries, period_us;
	/* stage 0: serving (queue.h); name "" is the id */
	char name[LM_WIRE_ID_LEN];
	unsigned max_delay_us, max_queue;
};

#endif
