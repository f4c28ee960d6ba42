/*
 * state.h: laminad's state file, STATE/laminad-<control_port>.json, the
 * one record of what a laminad process took from the machine.  state.c
 * is its only reader and writer; laminad writes it and `lamina` reads it
 * (both link this module; it needs no DPDK).
 *
 *   {"format": "laminad-state", "version": 2,
 *    "pid": 4242,                 the laminad process
 *    "phase": "starting" | "up",  written "starting" before laminad
 *                                 reserves anything, "up" once it listens
 *    "control_port": 7700, "ingress_port": 7701,
 *    "listen": "127.0.0.1",       the address both ports listen on
 *    "file_prefix": "laminad-7700-4242",  DPDK's --file-prefix
 *    "run_dir": "/var/run/dpdk/laminad-7700-4242",  EAL's run folder
 *    "hugepages_reserved": null | {"page_kb", "count", "mount"},
 *    "log": "STATE/laminad-7700.log" | null}
 *
 * Cleaning up after a laminad that died is laminad's own knowledge:
 * `laminad --cleanup STATE_FILE` (main.c) gives back what the file says
 * it took.  lamina only decides when (the process is gone) and asks.
 */
#ifndef LAMINA_DP_STATE_H
#define LAMINA_DP_STATE_H

#include <limits.h>

#include "lamina/common.h"

#define LM_STATE_FORMAT "laminad-state"
#define LM_STATE_VERSION 2

typedef struct lm_laminad_state {
	int pid;
	int up; /**< 0: "starting", 1: "up" */
	int control_port, ingress_port;
	char listen[128];
	char file_prefix[64];
	char run_dir[PATH_MAX];
	unsigned huge_page_kb, huge_count; /**< hugepages it reserved */
	char huge_mount[PATH_MAX];
	char log[PATH_MAX]; /**< "" : stderr */
} lm_laminad_state;

/** STATE/laminad-<port>.json into out.  -ENAMETOOLONG or 0. */
int lm_state_path(const char *state_dir, int control_port, char *out,
		  size_t len);

/** STATE/laminad-<port>.log, laminad's log when it runs in the
 *  background (and where lamina sends a laminad's output it starts).
 *  -ENAMETOOLONG or 0. */
int lm_state_log_path(const char *state_dir, int control_port, char *out,
		      size_t len);

/**
 * Read and check a state file.
 * @return 0; -ENOENT when there is none; -EINVAL naming the field.
 */
int lm_state_load(const char *path, lm_laminad_state *s, lm_error *e);

/** Write it (atomically, under a temporary name of its own). */
int lm_state_save(const char *path, const lm_laminad_state *s, lm_error *e);

#endif
