/*
 * remote.h: laminads on other hosts, started, inspected and cleaned up
 * after over OpenSSH: the user's `ssh`, with their keys and config as
 * they are (lamina types no password: BatchMode).  $LAMINA_SSH replaces
 * the command, e.g. "ssh -F /path/to/config" (split at spaces).
 *
 * A destination is "[user@]host[:port]" (devices.json's "ssh", `lamina
 * devices add ssh://...`).  Commands run in the remote user's shell, each
 * argument quoted for it.  What a command needs to keep secret (the fleet
 * key) goes on its stdin, never in its arguments: a remote command line is
 * visible to every user of that host (ps) and to ssh's logs.
 */
#ifndef LAMINA_REMOTE_H
#define LAMINA_REMOTE_H

#include <stddef.h>

#include "lamina/common.h"
#include "lamina/fleet.h"

#define LM_REMOTE_TIMEOUT_S 60

/**
 * Run argv on dest; up to len - 1 bytes of its output (stdout and stderr)
 * into out (NUL-terminated).
 * @return its exit status (0..255; 255 is ssh's own failure), or a
 *         negative errno (-ETIMEDOUT after timeout_s, it is killed).
 */
int lm_remote_run(const char *dest, const char *const *argv, char *out,
		  size_t len, int timeout_s, lm_error *e);

typedef struct lm_remote_start_opts {
	const char *dest;     /**< ssh destination */
	const char *exe;      /**< laminad there (default "laminad") */
	const char *listen;   /**< the address it listens on */
	int control_port, ingress_port;
	const char *name;     /**< device name */
	const char *port_if;  /**< its port to other laminads, or NULL */
	const char *poll, *hugepages; /**< or NULL */
	/** the fleet key it gets, or NULL: written to ssh's stdin and read
	 *  there by `laminad --fleet-key -` before it detaches, so it is on
	 *  no command line (ps) and in no file on that host */
	const lm_fleet_key *key;
} lm_remote_start_opts;

/**
 * Start laminad on o->dest (it detaches there: `laminad` without
 * --foreground returns once it listens) as a managed laminad.
 * @return 0 with *pid its pid there; -ENOENT when laminad is not
 *         installed there (the message says how to install it);
 *         -EHOSTUNREACH when ssh fails; -EIO with laminad's error.
 */
int lm_remote_start(const lm_remote_start_opts *o, int *pid, lm_error *e);

struct lm_dnssd_txt; /* dataplane/dnssd.h */

/**
 * What a laminad started on dest would offer (`laminad --describe-host`
 * there: cores, memory, NUMA nodes, hugepages, cpu model, version), into
 * t, as its DNS-SD TXT record would say it; exe as in lm_remote_start.
 * @return 0; -ENOENT when laminad is not installed there (the message
 *         says how to install it); -EHOSTUNREACH when ssh fails; -EIO
 *         with what laminad said; -EINVAL for output that is no record.
 */
int lm_remote_describe(const char *dest, const char *exe,
		       struct lm_dnssd_txt *t, lm_error *e);

/**
 * The interface dest routes to address `to` through (`ip -o route get`),
 * into dev.  0; -ENOENT when it has no route; what lm_remote_run returns.
 */
int lm_remote_route_dev(const char *dest, const char *to, char *dev,
			size_t len, lm_error *e);

/**
 * Clean up after the laminad of control port `port` on dest (`laminad
 * --cleanup-port`); with kill_pid > 0, kill that process first (a laminad
 * there that no longer answers and that this deployment started).
 */
int lm_remote_cleanup(const char *dest, const char *exe, int port,
		      int kill_pid, lm_error *e);

#endif
