/*
 * handoff.h: the cost of one same-device stage handoff (see handoff.c).
 */
#ifndef LAMINA_HANDOFF_H
#define LAMINA_HANDOFF_H

#include "lamina/common.h"

/**
 * Median time, in microseconds, of one pointer handoff through an
 * SP/SC rte_ring between two pinned lcores.  Starts and stops DPDK's EAL
 * (once per process).  Returns 0, -ENODEV with one core, or the EAL error.
 */
int lm_handoff_measure(double *us, lm_error *e);

#endif
