/*
 * fuzz_control.c: libFuzzer target for what laminad's control port does
 * with a message before acting on it: lamina.Request decoding
 * (protobuf-c) and, for a LoadStage, the checks that turn it into a stage
 * spec (dataplane/decode.c).  A spec that passes must hold what the
 * checks promise: a plain id, stages and slices in range, bundle counts
 * in range, memif only on remote edges.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "decode.h"
#include "deployment.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Lamina__Request *q = lamina__request__unpack(NULL, size, data);
	if (!q)
		return 0;
	if (q->body_case == LAMINA__REQUEST__BODY_LOAD_STAGE && q->load_stage) {
		struct lm_dp_stage_spec s;
		lm_error e;
		if (lm_dp_spec_decode(q->load_stage, &s, &e) == 0) {
			if (!lm_dp_id_ok(s.deployment) ||
			    s.stage >= s.n_stages ||
			    s.n_stages > LM_DP_MAX_STAGES ||
			    s.first > s.last || s.batch < 1 ||
			    s.n_cores > LM_DP_MAX_REPLICAS ||
			    s.dir[0] != '/' || s.in_bundles < 1 ||
			    s.in_bundles > LM_DP_MAX_BUNDLES ||
			    (s.input != LM_DP_LOCAL && s.stage == 0))
				abort();
		} else if (!e.msg[0]) {
			abort();
		}
	}
	lamina__request__free_unpacked(q, NULL);
	return 0;
}
