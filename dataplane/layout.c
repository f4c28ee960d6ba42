/*
 * layout.c: which tensors cross each cut of a slice folder, and where each
 * one sits inside a bundle.
 *
 * A stage [first, last] reads the tensors crossing the cut before `first`
 * and writes those crossing the cut after `last`; both neighbours of an
 * edge compute its layout with the same function from the same manifest,
 * so they agree without talking (lm_dp_layout_equal checks it at start).
 * Which tensors cross a cut is the manifest's knowledge (lm_manifest_cut);
 * this file only lays them out.
 * Shapes are the manifest's at the pipeline's batch: each tensor's batch
 * axis (manifest.h: axis 0 for most, 1 for a sequence-first transformer's
 * [seq, batch, d], the batch times the heads inside attention) scaled from
 * the batch the model was sliced at; a tensor without one keeps its shape.
 * Each stage checks its slices' prepared graphs against them.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bundle.h"

void lm_dp_layout_clear(struct lm_dp_layout *l)
{
	for (int i = 0; i < l->n; i++)
		free(l->t[i].name);
	memset(l, 0, sizeof(*l));
}

int lm_dp_layout_find(const struct lm_dp_layout *l, const char *name)
{
	for (int i = 0; i < l->n; i++)
		if (!strcmp(l->t[i].name, name))
			return i;
	return -1;
}

int lm_dp_layout_equal(const struct lm_dp_layout *a,
		       const struct lm_dp_layout *b)
{
	if (a->n != b->n || a->bytes != b->bytes ||
	    a->exact_batch != b->exact_batch ||
	    a->moved_batch != b->moved_batch)
		return 0;
	for (int i = 0; i < a->n; i++) {
		const struct lm_dp_tdesc *x = &a->t[i], *y = &b->t[i];
		if (strcmp(x->name, y->name) || x->dtype != y->dtype ||
		    x->rank != y->rank || x->offset != y->offset ||
		    x->batch_axis != y->batch_axis ||
		    memcmp(x->dims, y->dims, sizeof(x->dims[0]) *
			   (size_t)x->rank))
			return 0;
	}
	return 1;
}

/* Append a manifest tensor at the given batch. */
static int add_tensor(struct lm_dp_layout *l, const lm_manifest *m,
		      const lm_mtensor *t, int64_t batch, const char *where,
		      lm_error *e)
{
	int64_t dims[LM_MAX_RANK];
	size_t nbytes;
	if (l->n == LM_DP_MAX_TENSORS)
		return lm_fail(e, -E2BIG, "%s: more than %d tensors cross one "
			       "cut", where, LM_DP_MAX_TENSORS);
	if (lm_mtensor_shape_at(m, t, batch, dims, &nbytes) ||
	    nbytes > (size_t)1 << 40)
		return lm_fail(e, -EINVAL, "%s: tensor '%s' is too large at "
			       "batch %lld", where, t->name, (long long)batch);
	struct lm_dp_tdesc *d = &l->t[l->n];
	memset(d, 0, sizeof(*d));
	if (!(d->name = strdup(t->name)))
		return lm_fail(e, -ENOMEM, "out of memory");
	d->dtype = t->dtype;
	d->rank = t->rank;
	memcpy(d->dims, dims, sizeof(dims[0]) * (size_t)t->rank);
	d->nbytes = nbytes;
	d->offset = l->bytes;
	d->batch_axis = t->batch_axis;
	l->bytes += (nbytes + LM_DP_ALIGN - 1) & ~(size_t)(LM_DP_ALIGN - 1);
	l->exact_batch |= t->batch_axis < 0 || dims[t->batch_axis] != batch;
	l->moved_batch |= t->batch_axis > 0;
	l->n++;
	return 0;
}

int lm_dp_layout_cut(const lm_manifest *m, int k, int64_t batch,
		     struct lm_dp_layout *l, lm_error *e)
{
	const lm_mtensor **t = NULL;
	int n = 0, rc;
	memset(l, 0, sizeof(*l));
	if ((rc = lm_manifest_batch_ok(m, batch, e)) ||
	    (rc = lm_manifest_cut(m, k, &t, &n, e)))
		return rc;
	for (int i = 0; i < n && !rc; i++)
		rc = add_tensor(l, m, t[i], batch, m->dir ? m->dir : "manifest",
				e);
	free(t);
	if (rc)
		lm_dp_layout_clear(l);
	return rc;
}

void lm_dp_batch_move(const struct lm_dp_layout *l, unsigned batch,
		      uint8_t *data, uint8_t *scratch, int to_model)
{
	for (int i = 0; i < l->n; i++) {
		const struct lm_dp_tdesc *t = &l->t[i];
		if (t->batch_axis <= 0 || !t->nbytes)
			continue;
		size_t outer = 1;
		for (int k = 0; k < t->batch_axis; k++)
			outer *= (size_t)t->dims[k];
		size_t inner = t->nbytes / batch / outer;
		uint8_t *x = data + t->offset;
		memcpy(scratch, x, t->nbytes);
		for (size_t b = 0; b < batch; b++)
			for (size_t o = 0; o < outer; o++) {
				size_t major = (b * outer + o) * inner;
				size_t model = (o * batch + b) * inner;
				memcpy(x + (to_model ? model : major),
				       scratch + (to_model ? major : model),
				       inner);
			}
	}
}
