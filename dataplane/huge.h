/*
 * huge.h: hugepages a laminad reserves for itself and gives back.
 *
 * nr_hugepages is one number for the whole machine, and several laminads
 * (and other programs) change it.  Every change lamina makes is done
 * under one machine-wide lock (flock on LM_HUGE_DIR/hugepages.lock) and
 * recorded in a ledger beside it (hugepages.json: {"owners": {"PID":
 * {"page_kb", "count"}}}), so that a reservation and its give-back are
 * paired by owner: a laminad gives back exactly what it was granted, a
 * dead laminad's pages are given back by `laminad --cleanup`, and the
 * number is never lowered below what the other owners in the ledger
 * hold.  The ledger lives in /run (tmpfs), as nr_hugepages does not
 * survive a reboot either.
 */
#ifndef LAMINA_DP_HUGE_H
#define LAMINA_DP_HUGE_H

#include <limits.h>

#include "lamina/common.h"

#define LM_HUGE_DIR "/run/lamina"

/* Pages reserved by one owner, and where they are mounted. */
struct lm_huge {
	unsigned page_kb; /* size of one page */
	unsigned count;	  /* pages granted (0: none reserved) */
	char mount[PATH_MAX]; /* hugetlbfs mounted for the owner, or "" */
};

/**
 * Reserve want_mb of hugepages for owner (a pid) and mount hugetlbfs at
 * mount (a folder it creates).  Only root can; a grant below half of what
 * was asked (fragmented memory) is given back and refused.
 * @return 0 with h filled; -EPERM (not root, or no hugepage support);
 *         -ENOMEM (too few pages); -errno of the mount.
 */
int lm_huge_reserve(unsigned want_mb, const char *mount, int owner,
		    struct lm_huge *h, lm_error *e);

/**
 * Give back what owner was granted (from h, or when h->count is 0 from
 * the ledger's entry for owner), unmount and remove h->mount.
 * Idempotent.
 * @return 0; -errno when nr_hugepages cannot be written.
 */
int lm_huge_release(struct lm_huge *h, int owner, lm_error *e);

/** Pages the ledger says owner holds (0 when none). */
unsigned lm_huge_owned(int owner);

#endif
