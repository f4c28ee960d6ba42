/*
 * deployment.c: the table of deployments (see deployment.h).
 */
#include "deployment.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"

int lm_dp_id_ok(const char *id)
{
	size_t n = id ? strlen(id) : 0;
	if (n == 0 || n >= LM_WIRE_ID_LEN)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!(id[i] >= 'a' && id[i] <= 'z') &&
		    !(id[i] >= 'A' && id[i] <= 'Z') &&
		    !(id[i] >= '0' && id[i] <= '9') && !strchr("-_.", id[i]))
			return 0;
	return 1;
}

struct lm_dp_deployment *lm_dp_find(struct lm_dp_deployments *t,
				    const char *id)
{
	for (int i = 0; id && i < LM_DP_MAX_DEPLOYMENTS; i++)
		if (t->d[i] && !strncmp(t->d[i]->id, id, LM_WIRE_ID_LEN))
			return t->d[i];
	return NULL;
}

struct lm_dp_deployment *lm_dp_find_served(struct lm_dp_deployments *t,
					   const char *name)
{
	struct lm_dp_deployment *by_id = NULL;
	for (int i = 0; name && i < LM_DP_MAX_DEPLOYMENTS; i++) {
		struct lm_dp_deployment *d = t->d[i];
		if (!d || !d->ing)
			continue;
		if (!strncmp(d->name, name, LM_WIRE_ID_LEN))
			return d;
		if (!strncmp(d->id, name, LM_WIRE_ID_LEN))
			by_id = d;
	}
	return by_id;
}

struct lm_dp_deployment *lm_dp_find_key(struct lm_dp_deployments *t,
					uint32_t key)
{
	for (int i = 0; i < LM_DP_MAX_DEPLOYMENTS; i++)
		if (t->d[i] && t->d[i]->key == key)
			return t->d[i];
	return NULL;
}

int lm_dp_deployment_add(struct lm_dp_deployments *t, const char *id,
			 uint64_t now, struct lm_dp_deployment **out)
{
	int slot = -1;
	for (int i = 0; i < LM_DP_MAX_DEPLOYMENTS && slot < 0; i++)
		if (!t->d[i])
			slot = i;
	if (slot < 0)
		return -ENOSPC;
	struct lm_dp_deployment *d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	snprintf(d->id, sizeof(d->id), "%s", id);
	d->gen = ++t->next_gen;
	d->key = lm_frame_deployment_key(d->id);
	d->t_created = now;
	t->d[slot] = d;
	*out = d;
	return 0;
}

void lm_dp_deployment_remove(struct lm_dp_deployments *t,
			     struct lm_dp_deployment *d)
{
	for (int i = 0; i < LM_DP_MAX_DEPLOYMENTS; i++)
		if (t->d[i] == d)
			t->d[i] = NULL;
	free(d);
}
