/*
 * service.c: what the control port asks of laminad, each operation
 * calling the parts of a deployment in order (see dp.h): load a stage,
 * start, stop, tear down.
 */
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LM_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define LM_ASAN 1
#endif
#ifdef LM_ASAN
/* AddressSanitizer replaces malloc: its allocator keeps the count */
#include <sanitizer/allocator_interface.h>
#endif

#include <rte_cycles.h>
#include <rte_malloc.h>

#include "dp.h"
#include "lamina/log.h"

int lm_dp_load(struct lm_dp *dp, const struct lm_dp_stage_spec *s,
	       struct lm_dp_loaded *out, lm_error *e)
{
	struct lm_dp_deployment *d = lm_dp_find(&dp->deps, s->deployment);
	struct lm_dp_deployment *other = s->stage == 0
		? lm_dp_find_served(&dp->deps, s->name) : NULL;
	int rc, created = 0;
	if (other && other != d)
		return lm_fail(e, -EEXIST, "this laminad already serves a "
			       "deployment called '%s' (%s): choose another "
			       "name", s->name, other->id);
	if (!d) {
		rc = lm_dp_deployment_add(&dp->deps, s->deployment,
					  rte_rdtsc(), &d);
		if (rc == -ENOSPC)
			return lm_fail(e, rc, "this laminad already holds %d "
				       "deployments", LM_DP_MAX_DEPLOYMENTS);
		if (rc || (rc = lm_pipeline_create(s, d->gen, dp->cycles_per_us,
						   &d->pipe, e))) {
			if (d)
				lm_dp_deployment_remove(&dp->deps, d);
			return rc == -ENOMEM ? lm_fail(e, rc, "out of memory")
					     : rc;
		}
		created = 1;
	}
	if ((rc = lm_pipeline_load(d->pipe, s, &dp->lc, out, e)))
		goto fail;
	if ((rc = lm_dp_net_link(dp->net, d, s, e)) ||
	    (s->stage == 0 && (rc = lm_dp_queue_create(d, s, e))))
		goto fail;
	if (s->stage == 0)
		snprintf(d->name, sizeof(d->name), "%s", s->name);
	return 0;
fail:
	/* a deployment made for this stage goes with it; an older one keeps
	 * what loaded (lamina tears a failed deployment down whole) */
	if (created)
		lm_dp_teardown(dp, d);
	return rc;
}

int lm_dp_start(struct lm_dp *dp, struct lm_dp_deployment *d, lm_error *e)
{
	int rc;
	if (d->pipe->started)
		return 0;
	if ((rc = lm_dp_net_start(dp->net, d, e)) ||
	    (rc = lm_dp_queue_start(&dp->serve, d, e)) ||
	    (rc = lm_pipeline_start(d->pipe, &dp->bell,
				    lm_dp_poll_busy(&dp->lc), e)))
		return rc;
	unsigned here = 0, workers = 0;
	for (unsigned s = 0; s < d->pipe->n_stages; s++)
		if (d->pipe->stages[s]) {
			here++;
			workers += (unsigned)d->pipe->stages[s]->n_replicas;
		}
	lm_log("deployment %s started: %u stage(s) here, %u worker(s), %s "
	       "poll%s", d->id, here, workers,
	       lm_dp_poll_busy(&dp->lc) ? "busy" : "adaptive",
	       lm_pipeline_remote(d->pipe) ? ", edges to other laminads"
					    : "");
	return 0;
}

void lm_dp_stop(struct lm_dp *dp, struct lm_dp_deployment *d)
{
	(void)dp;
	if (!d->pipe->running)
		return;
	lm_pipeline_stop(d->pipe);
	lm_log("deployment %s stopped", d->id);
}

void lm_dp_teardown(struct lm_dp *dp, struct lm_dp_deployment *d)
{
	char id[LM_WIRE_ID_LEN];
	if (!d)
		return;
	snprintf(id, sizeof(id), "%s", d->id);
	lm_dp_stop(dp, d);
	/* answers first (they read the pipeline's pools), then the links
	 * (reassembly may hold bundles of the pools), then the pools */
	lm_dp_queue_cancel(&dp->serve, d);
	lm_dp_net_forget(dp->net, d);
	lm_dp_queue_free(d);
	lm_pipeline_free(d->pipe, &dp->lc);
	d->pipe = NULL;
	lm_dp_deployment_remove(&dp->deps, d);
	/* its model files, and those no other deployment uses */
	lm_store_forget(dp->store, id);
}

void lm_dp_memory(uint64_t *heap, uint64_t *dpdk)
{
	struct rte_malloc_socket_stats st;
#ifdef LM_ASAN
	*heap = (uint64_t)__sanitizer_get_current_allocated_bytes();
#else
	struct mallinfo2 mi = mallinfo2();
	*heap = (uint64_t)mi.uordblks + (uint64_t)mi.hblkhd;
#endif
	*dpdk = 0;
	for (int s = 0; s < RTE_MAX_NUMA_NODES; s++)
		if (rte_malloc_get_socket_stats(s, &st) == 0)
			*dpdk += st.heap_allocsz_bytes;
}
