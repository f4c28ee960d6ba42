/*
 * deployment.h: what laminad holds of one deployment, and the table of
 * them.  A deployment is three parts, each owned and freed by its own
 * file: the pipeline (pipeline.c: stages and edges), the ingress's part
 * (ingress.c: answers and telemetry; only where stage 0 is) and reliable
 * delivery (reliable.c: only at an ingress whose pipeline crosses to
 * another laminad; the ingress makes it, with the copies it keeps).  This file only holds them together and finds them:
 * it calls none of those files (main.c's teardown frees each part
 * through its owner, in order).
 */
#ifndef LAMINA_DP_DEPLOYMENT_H
#define LAMINA_DP_DEPLOYMENT_H

#include <stdint.h>

#include "lamina/wire.h"
#include "reliable.h"

#define LM_DP_MAX_DEPLOYMENTS 32

struct lm_pipeline;
struct lm_dp_ingress;

struct lm_dp_deployment {
	char id[LM_WIRE_ID_LEN];
	char name[LM_WIRE_ID_LEN];   /* clients' name for it (stage 0's
					laminad; "" elsewhere) */
	uint32_t gen; /* unique in this laminad's life: bundles carry it */
	uint32_t key; /* frames between laminads carry it (frame.h) */
	struct lm_pipeline *pipe;
	struct lm_dp_ingress *ing;   /* NULL: stage 0 is elsewhere */
	lm_rel *rel;                 /* NULL: nothing crosses laminads;
					made and freed by the ingress with
					the request copies it keeps */
	uint64_t t_created;          /* TSC */
};

struct lm_dp_deployments {
	struct lm_dp_deployment *d[LM_DP_MAX_DEPLOYMENTS];
	uint32_t next_gen;
};

/** 1 when id is 1 to 31 letters, digits, '-', '_' or '.'. */
int lm_dp_id_ok(const char *id);

/** The deployment with this id, or NULL. */
struct lm_dp_deployment *lm_dp_find(struct lm_dp_deployments *t,
				    const char *id);

/** The deployment clients call `name` (its name, else its id) that
 *  takes requests here (its stage 0 is here), or NULL. */
struct lm_dp_deployment *lm_dp_find_served(struct lm_dp_deployments *t,
					   const char *name);

/** The deployment whose frames carry key, or NULL. */
struct lm_dp_deployment *lm_dp_find_key(struct lm_dp_deployments *t,
					uint32_t key);

/**
 * A new, empty deployment id in the table (its parts still NULL).
 * @return 0; -ENOSPC when the table is full; -ENOMEM.
 */
int lm_dp_deployment_add(struct lm_dp_deployments *t, const char *id,
			 uint64_t now, struct lm_dp_deployment **out);

/** Take d out of the table and free the struct (its parts must already
 *  be freed by their owners). */
void lm_dp_deployment_remove(struct lm_dp_deployments *t,
			     struct lm_dp_deployment *d);

#endif
