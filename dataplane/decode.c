/*
 * decode.c: a LoadStage message decoded and checked into a stage spec
 * (decode.h).
 */
#include "decode.h"

#include <errno.h>
#include <netinet/ether.h>
#include <stdio.h>
#include <string.h>

#include "deployment.h"
#include "lamina/fsutil.h"

static int bundles_ok(uint32_t n)
{
	return n >= 1 && n <= LM_DP_MAX_BUNDLES;
}

int lm_dp_spec_decode(const Lamina__LoadStageRequest *r,
		      struct lm_dp_stage_spec *s, lm_error *e)
{
	struct ether_addr mac;
	memset(s, 0, sizeof(*s));
	if (!lm_dp_id_ok(r->deployment))
		return lm_fail(e, -EINVAL, "deployment id '%.40s' must be 1 to "
			       "%d letters, digits, '-', '_' or '.'",
			       r->deployment ? r->deployment : "",
			       LM_WIRE_ID_LEN - 1);
	snprintf(s->deployment, sizeof(s->deployment), "%s", r->deployment);
	if (r->n_stages < 1 || r->n_stages > LM_DP_MAX_STAGES ||
	    r->stage >= r->n_stages)
		return lm_fail(e, -EINVAL, "stage %u of %u: stages must number "
			       "1 to %d", r->stage, r->n_stages,
			       LM_DP_MAX_STAGES);
	s->stage = r->stage;
	s->n_stages = r->n_stages;
	if (r->batch < 1 || r->batch > 4096)
		return lm_fail(e, -EINVAL, "batch %u: must be 1 to 4096",
			       r->batch);
	s->batch = r->batch;
	/* model files come from laminad's store only (control.c links
	 * them and sets dir): a path from the wire is never opened */
	if (r->dir && r->dir[0])
		return lm_fail(e, -EPERM, "LoadStage names a folder ('%.200s'): "
			       "laminad opens model files only from its store "
			       "(ship them first)", r->dir);
	if (!r->n_files)
		return lm_fail(e, -EINVAL, "stage %u: no model files (ship the "
			       "manifest and its slices)", r->stage);
	for (size_t i = 0; i < r->n_files; i++)
		if (!r->files[i]->name || !lm_name_ok(r->files[i]->name) ||
		    r->files[i]->sha256.len != 32)
			return lm_fail(e, -EINVAL, "model file %zu ('%.60s'): a "
				       "plain name and a 32-byte SHA-256 are "
				       "wanted", i,
				       r->files[i]->name ? r->files[i]->name
							 : "");
	if (r->first > r->last)
		return lm_fail(e, -EINVAL, "slices %u..%u: first is after "
			       "last", r->first, r->last);
	s->first = r->first;
	s->last = r->last;
	if (r->n_cores > LM_DP_MAX_REPLICAS)
		return lm_fail(e, -EINVAL, "%zu replicas: at most %d",
			       r->n_cores, LM_DP_MAX_REPLICAS);
	s->n_cores = (unsigned)r->n_cores;
	for (size_t i = 0; i < r->n_cores; i++)
		s->cores[i] = r->cores[i];
	/* memory, as the plan charged it */
	int makes_out = (r->next_mac && r->next_mac[0]) || r->next_memif ||
			r->stage + 1 == r->n_stages;
	if (!bundles_ok(r->in_bundles) ||
	    (makes_out && !bundles_ok(r->out_bundles)) ||
	    (r->answers_remote && (!bundles_ok(r->answers_bundles) ||
				   !bundles_ok(r->keep_bundles))))
		return lm_fail(e, -EINVAL, "stage %u: bundles per edge (in %u, "
			       "out %u, answers %u, kept %u) must be 1 to %d "
			       "as the plan charged them", r->stage,
			       r->in_bundles, r->out_bundles,
			       r->answers_bundles, r->keep_bundles,
			       LM_DP_MAX_BUNDLES);
	s->in_bundles = r->in_bundles;
	s->out_bundles = r->out_bundles;
	s->answers_bundles = r->answers_bundles;
	s->keep_bundles = r->keep_bundles;
	/* topology */
	int next_port = r->next_mac && r->next_mac[0];
	if (next_port && r->next_memif)
		return lm_fail(e, -EINVAL, "stage %u: its output goes over the "
			       "port or a memif, not both", r->stage);
	if ((r->input_memif && !r->input_remote) ||
	    (r->answers_memif && !r->answers_remote))
		return lm_fail(e, -EINVAL, "stage %u: a memif for an edge that "
			       "is not remote", r->stage);
	if (next_port && (!ether_aton_r(r->next_mac, &mac) ||
			  strlen(r->next_mac) > 17 || !r->next_ip))
		return lm_fail(e, -EINVAL, "stage %u: next laminad's port "
			       "'%.40s' needs a MAC aa:bb:cc:dd:ee:ff and an "
			       "IPv4 address", r->stage, r->next_mac);
	if (r->input_remote && r->stage == 0)
		return lm_fail(e, -EINVAL, "stage 0 takes its input from the "
			       "ingress, not another laminad");
	if (r->answers_remote && (r->stage != 0 || r->n_stages < 2))
		return lm_fail(e, -EINVAL, "stage %u: only stage 0 of several "
			       "takes answers from another laminad", r->stage);
	s->next = next_port ? LM_DP_PORT
		  : r->next_memif ? LM_DP_MEMIF : LM_DP_LOCAL;
	if (next_port) {
		memcpy(s->next_mac, mac.ether_addr_octet, 6);
		s->next_ip = r->next_ip;
	}
	s->input = !r->input_remote ? LM_DP_LOCAL
		   : r->input_memif ? LM_DP_MEMIF : LM_DP_PORT;
	s->answers = !r->answers_remote ? LM_DP_LOCAL
		     : r->answers_memif ? LM_DP_MEMIF : LM_DP_PORT;
	s->retry_ms = r->retry_ms;
	s->max_retries = r->max_retries;
	s->period_us = r->period_us;
	if (r->name && r->name[0] && !lm_dp_id_ok(r->name))
		return lm_fail(e, -EINVAL, "deployment name '%.40s' must be 1 "
			       "to %d letters, digits, '-', '_' or '.'",
			       r->name, LM_WIRE_ID_LEN - 1);
	snprintf(s->name, sizeof(s->name), "%s",
		 r->name && r->name[0] ? r->name : r->deployment);
	if (r->max_delay_us > 10000000 || r->max_queue > 1000000)
		return lm_fail(e, -EINVAL, "max_delay_us %u (at most 10 s) or "
			       "max_queue %u (at most 1000000) out of range",
			       r->max_delay_us, r->max_queue);
	s->max_delay_us = r->max_delay_us;
	s->max_queue = r->max_queue;
	return 0;
}

