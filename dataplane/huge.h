/*
 * huge.h: hugepages a laminad reserves for itself and gives back.
 *
 * nr_hugepages is one number for the whole machine, and several laminads
 * (in any network namespace) change it.  Every change lamina makes reads
 * and writes it under an exclusive flock on that very file (sysfs'
 * hugepages-<size>kB/nr_hugepages), so no two read-modify-writes
 * interleave, and each owner adds and later subtracts exactly the pages
 * it was granted: its own count, never a recomputed total.  The owner
 * records the grant in its state file at once (state.h), so that
 * `laminad --cleanup` gives back a dead laminad's pages; no other file is
 * made.
 */
#ifndef LAMINA_DP_HUGE_H
#define LAMINA_DP_HUGE_H

#include <limits.h>

#include "lamina/common.h"

/* Pages reserved by one owner, and where they are mounted. */
struct lm_huge {
	unsigned page_kb; /* size of one page */
	unsigned count;	  /* pages granted (0: none reserved) */
	char mount[PATH_MAX]; /* hugetlbfs mounted for the owner, or "" */
};

/**
 * Reserve want_mb of hugepages of the default size and mount hugetlbfs at
 * mount (a folder it creates).  Only root can; a grant below half of what
 * was asked (fragmented memory) is given back and refused.
 * @return 0 with h filled; -EPERM (not root, or no hugepage support);
 *         -ENOMEM (too few pages); -errno of the mount.
 */
int lm_huge_reserve(unsigned want_mb, const char *mount, struct lm_huge *h,
		    lm_error *e);

/**
 * Give back the h->count pages of h->page_kb, unmount and remove
 * h->mount.  Pages something still holds (this process's own mappings
 * or open files, on its way out) cannot be taken back yet: h->count is
 * left at how many, to give back once it has exited (the state file
 * keeps them for `laminad --cleanup`); 0 when all went.  Idempotent.
 * @return 0; -errno when nr_hugepages cannot be written.
 */
int lm_huge_release(struct lm_huge *h, lm_error *e);

#endif
