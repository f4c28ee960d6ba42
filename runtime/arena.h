/*
 * arena.h: static memory planning (private to runtime/).
 *
 * Every intermediate tensor, and every kernel's scratch, is a block with a
 * size and a lifetime [first, last] in steps of the node order.  The plan
 * gives each block an offset in one arena so that blocks alive at the same
 * step never overlap; the arena's size is the plan's peak.
 */
#ifndef LAMINA_ARENA_H
#define LAMINA_ARENA_H

#include <stddef.h>

#define LM_ARENA_ALIGN 64

struct lm_block {
	size_t size;
	int first, last;  /* steps during which the block is alive */
	size_t offset;    /* result */
};

/**
 * Place the blocks (greedy by size, largest first, each at the lowest
 * aligned offset free during its lifetime).  Returns the arena size.
 * Returns (size_t)-1 when out of memory.
 */
size_t lm_arena_plan(struct lm_block *blocks, int n);

#endif
