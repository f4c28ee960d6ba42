/*
 * arena.c: the static memory planner (see arena.h).
 *
 * Greedy by size: the largest blocks are placed first, each at the lowest
 * offset that does not collide with a block already placed whose lifetime
 * overlaps.  It is not optimal (the problem is NP-hard) but is known to come
 * close on inference graphs, whose tensors shrink as they go deep, and it is
 * cheap: O(n^2) for the few thousand tensors of a large model.
 */
#include "arena.h"

#include <stdlib.h>

static size_t align_up(size_t v)
{
	return (v + LM_ARENA_ALIGN - 1) / LM_ARENA_ALIGN * LM_ARENA_ALIGN;
}

static int by_size_desc(const void *a, const void *b)
{
	const struct lm_block *x = *(struct lm_block *const *)a;
	const struct lm_block *y = *(struct lm_block *const *)b;
	if (x->size != y->size)
		return x->size < y->size ? 1 : -1;
	return x->first - y->first;
}

static int by_offset(const void *a, const void *b)
{
	const struct lm_block *x = *(struct lm_block *const *)a;
	const struct lm_block *y = *(struct lm_block *const *)b;
	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

size_t lm_arena_plan(struct lm_block *blocks, int n)
{
	struct lm_block **order = malloc(((size_t)n + 1) * sizeof(*order));
	struct lm_block **placed = malloc(((size_t)n + 1) * sizeof(*placed));
	struct lm_block **live = malloc(((size_t)n + 1) * sizeof(*live));
	size_t peak = 0;
	int n_placed = 0;
	if (!order || !placed || !live) {
		free(order);
		free(placed);
		free(live);
		return (size_t)-1;
	}
	for (int i = 0; i < n; i++)
		order[i] = &blocks[i];
	qsort(order, (size_t)n, sizeof(*order), by_size_desc);
	for (int i = 0; i < n; i++) {
		struct lm_block *b = order[i];
		int n_live = 0;
		for (int j = 0; j < n_placed; j++)
			if (placed[j]->first <= b->last &&
			    b->first <= placed[j]->last)
				live[n_live++] = placed[j];
		qsort(live, (size_t)n_live, sizeof(*live), by_offset);
		/* first gap, in offset order, wide enough for b */
		size_t off = 0, need = align_up(b->size);
		for (int j = 0; j < n_live; j++) {
			if (live[j]->offset >= off + need)
				break;
			size_t end = live[j]->offset + align_up(live[j]->size);
			if (end > off)
				off = end;
		}
		b->offset = off;
		placed[n_placed++] = b;
		if (off + need > peak)
			peak = off + need;
	}
	free(order);
	free(placed);
	free(live);
	return peak;
}
