/*
 * agent.h: the control plane's side of laminad, the dataplane service of
 * one device: finding and starting it, one request on its control port,
 * waiting for it to stop, and cleaning up after one that died (the
 * process, then `laminad --cleanup` for what its state file says it
 * took: lamina knows no DPDK file names).
 */
#ifndef LAMINA_AGENT_H
#define LAMINA_AGENT_H

#include <stddef.h>

#include "ctl.h"
#include "record.h"
#include "state.h"

/** Reply timeouts: a quick question, start/stop/teardown, and loading a
 * stage's weights. */
#define LM_AGENT_QUICK_MS 5000
#define LM_AGENT_STEP_MS 60000
#define LM_AGENT_LOAD_MS 300000

/**
 * The laminad executable: `given` when set; else laminad beside this
 * program or in ../dataplane/ of the build tree; else `laminad` on PATH.
 * @return 0; -ENOENT saying where it looked.
 */
int lm_agent_find(const char *given, char *out, size_t len, lm_error *e);

/** How to start a laminad. */
typedef struct lm_agent_spawn_opts {
	const char *exe;
	const char *listen; /**< numeric address */
	int control_port, ingress_port;
	const char *name;      /**< device name */
	const char *state_dir; /**< where it writes laminad-<port>.json */
	const char *poll;      /**< busy, adaptive or NULL */
	const char *hugepages; /**< auto, no or NULL */
	const char *log;       /**< its stdout and stderr go here */
	const char *fleet_key; /**< --fleet-key FILE, or NULL */
} lm_agent_spawn_opts;

/**
 * Start laminad in its own session (it outlives this process), stdin from
 * /dev/null.
 * @return 0 with *pid set; -errno when the log or the fork fails.
 */
int lm_agent_spawn(const lm_agent_spawn_opts *o, int *pid, lm_error *e);

/**
 * Wait until laminad pid (our child) has written state_file saying it is
 * up and answers on host:port, for at most timeout_s.
 * @param st  filled from the state file
 * @return 0; -ECHILD with the last line of its log when it exited;
 *         -ETIMEDOUT; -EINTR when *stop became set.
 */
int lm_agent_wait_up(int pid, const char *state_file, const char *host,
		     int port, double timeout_s, const char *log,
		     volatile int *stop, lm_laminad_state *st, lm_error *e);

/**
 * This user's fleet key (lamina/fleet.h's default file), made on first
 * use; every control connection of lamina proves it.
 * @param path  set to the key's file when not NULL (len bytes of room)
 * @return as lm_fleet_key_ensure.
 */
int lm_agent_fleet_key(lm_fleet_key *key, char *path, size_t len,
		       lm_error *e);

/**
 * One request on a fresh control connection to host:port, proving the
 * fleet key (lm_agent_fleet_key).
 * @param reply  the reply (free with lamina__reply__free_unpacked)
 * @return what lm_agent_connect and lm_ctl_call return.
 */
int lm_agent_call(const char *host, int port, int timeout_ms,
		  Lamina__Request *req, Lamina__Reply **reply, lm_error *e);

/**
 * Connect to the laminad at host:port, proving the fleet key.
 * @return as lm_agent_fleet_key and lm_ctl_connect.
 */
int lm_agent_connect(const char *host, int port, int timeout_ms, lm_ctl **c,
		     lm_error *e);

/**
 * Whether the laminad at host:port takes this lamina's privileged
 * requests (a laminad of another fleet refuses the connection; one
 * without a key makes it anonymous).
 * @return 0; -EACCES saying how to start it with the key; as
 *         lm_agent_connect.
 */
int lm_agent_trusted(const char *host, int port, lm_error *e);

/**
 * Describe the laminad at host:port.
 * @return as lm_agent_call; -EPROTO when the reply is not a description.
 */
int lm_agent_describe(const char *host, int port, int timeout_ms,
		      Lamina__Reply **reply, lm_error *e);

/**
 * A request answered by `done`: start, stop and teardown (of deployment)
 * or shutdown, given by its body case.
 */
int lm_agent_simple(const char *host, int port, int body,
		    const char *deployment, lm_error *e);

/** 1 when numeric address host is this machine: loopback or one of its
 *  interfaces' addresses. */
int lm_agent_is_local(const char *host);

/**
 * Whether the laminad of a record still runs: on this host its pid must
 * be a running laminad; elsewhere it must answer describe.  0 or 1.
 */
int lm_agent_up(const lm_rec_laminad *ld);

/** 1 when pid runs (not a zombie) and is a laminad. */
int lm_agent_alive(int pid);

/**
 * Wait up to timeout_s for laminad pid to end (it need not be our child).
 * @return 0 when it is gone, -ETIMEDOUT.
 */
int lm_agent_wait_exit(int pid, double timeout_s);

/**
 * Clean up after the laminad of control port `port` in state folder
 * state_dir when it will not stop by itself: kill pid if it is still a
 * running laminad, remove its log (STATE/laminad-PORT.log), then run
 * `laminad --cleanup STATE/laminad-PORT.json` (exe found as lm_agent_find
 * does), which gives back what the state file says it took (a state file
 * whose laminad runs is left alone).
 * @return 0; -EBUSY when it does not die; -errno from the clean-up.
 */
int lm_agent_cleanup(const char *state_dir, int port, int pid,
		     const char *exe, lm_error *e);

#endif
