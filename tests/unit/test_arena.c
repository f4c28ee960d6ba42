/*
 * test_arena.c: the static memory planner (runtime/arena.c) never lets two
 * blocks alive at the same step overlap, aligns every block, and packs
 * simple cases as tightly as they allow.
 */
#include <stdlib.h>

#include "arena.h"
#include "harness.h"

static int overlap(const struct lm_block *a, const struct lm_block *b)
{
	int alive = a->first <= b->last && b->first <= a->last;
	int mem = a->offset < b->offset + b->size &&
		  b->offset < a->offset + a->size;
	return alive && mem && a->size && b->size;
}

TEST(chain_reuses_memory)
{
	/* a -> b -> c -> d: each tensor lives two steps; two buffers do */
	struct lm_block b[4];
	for (int i = 0; i < 4; i++)
		b[i] = (struct lm_block){ 1000, i, i + 1, 0 };
	size_t peak = lm_arena_plan(b, 4);
	CHECK_EQ_I64(peak, 2 * 1024);
	for (int i = 0; i < 4; i++)
		CHECK_EQ_I64(b[i].offset % LM_ARENA_ALIGN, 0);
}

TEST(random_plans_never_overlap)
{
	srand(1);
	for (int round = 0; round < 500; round++) {
		int n = 1 + rand() % 60;
		struct lm_block b[60];
		size_t live_max = 0;
		for (int i = 0; i < n; i++) {
			int first = rand() % 40;
			b[i] = (struct lm_block){ (size_t)(rand() % 5000),
						  first, first + rand() % 10,
						  0 };
		}
		size_t peak = lm_arena_plan(b, n);
		for (int i = 0; i < n; i++) {
			CHECK(b[i].offset + b[i].size <= peak);
			for (int j = i + 1; j < n; j++)
				CHECK(!overlap(&b[i], &b[j]));
		}
		/* no plan can beat the most bytes alive at one step */
		for (int step = 0; step < 50; step++) {
			size_t live = 0;
			for (int i = 0; i < n; i++)
				if (b[i].first <= step && step <= b[i].last)
					live += b[i].size;
			if (live > live_max)
				live_max = live;
		}
		CHECK(peak >= live_max);
	}
}

int main(void)
{
	RUN(chain_reuses_memory);
	RUN(random_plans_never_overlap);
	return harness_done();
}
