/*
 * dp.h: laminad, the service: its configuration, what it holds, and the
 * operations the control port asks of it (service.c).  The top of the
 * dataplane: only main.c and control.c include it.
 *
 * The parts, from the bottom up (each header says more; no file calls a
 * file above it):
 *
 *   bundle.h, layout.c   bundles and the layouts of the tensors in them
 *   reliable.[ch]        requests kept until answered (pure logic)
 *   huge.[ch], eal.[ch]  hugepages, EAL's arguments, the lcore map
 *   state.[ch]           laminad's state file (lamina links it too)
 *   pipeline.[ch]        stages and edges; worker.c, the worker loop
 *   deployment.[ch]      a deployment's parts, and the table of them
 *   queue.[ch]           the ingress's core: admission, dynamic
 *                        batching, flights, answers, re-sends, drain
 *   ingress.[ch]         its binary TCP front (lamina/wire.h)
 *   oip.[ch]             the Open Inference Protocol's JSON
 *   http.[ch]            its HTTP front (libmicrohttpd)
 *   net.[ch]             edges to other laminads (port and memif)
 *   stats.[ch]           a deployment's telemetry as a plain struct
 *   metrics.c            all of it in the Prometheus text format
 *   store.[ch]           the model files lamina ships (no EAL)
 *   dnssd.[ch]           its DNS-SD records over mDNS (lamina links it
 *                        too, to browse them)
 *   announce.c           laminad announcing itself on the link
 *   service.c            load, start, stop, tear down: the parts in order
 *   control.c            the control port: protobuf in, plain specs out
 *   main.c               options, start-up, the state file, the loop
 *
 * Ownership: struct lm_dp owns the deployments table, the front and the
 * network; a deployment's parts are freed by their owners in
 * lm_dp_teardown.  Only the main lcore creates or frees anything.
 */
#ifndef LAMINA_DP_H
#define LAMINA_DP_H

#include <limits.h>
#include <stdint.h>

#include "lamina/fleet.h"

#include "bundle.h"
#include "deployment.h"
#include "eal.h"
#include "http.h"
#include "ingress.h"
#include "net.h"
#include "pipeline.h"
#include "queue.h"
#include "spec.h"
#include "store.h"

/* the project's version (meson.build), as lamina --version prints it */
#ifndef LAMINA_VERSION
#error "LAMINA_VERSION comes from meson.build"
#endif
#define LM_DP_VERSION LAMINA_VERSION
#define LM_DP_MAX_CTLS 64

#define LM_DP_HTTP_PORT 8000 /* Triton's; the next free one when taken */
#define LM_DP_HTTP_TRIES 100

struct lm_dp_config {
	uint16_t control_port, ingress_port;
	uint16_t http_port; /* 0: no HTTP front */
	int http_auto;	    /* not given: the first free from 8000 */
	const char *listen, *name, *state_dir, *log;
	const char *fleet_key; /* --fleet-key FILE ("-": stdin), or NULL */
	int foreground, managed;
	uint16_t cleanup_port; /* --cleanup-port: clean up and exit */
	int describe_host; /* --describe-host: print the TXT record, exit */
	int announce; /* -1: when listening beyond loopback; 0: no; 1: yes */
	struct lm_dp_eal_opts eal;
	struct lm_dp_net_opts net;
};

struct lm_dp_ctl;
struct lm_dp_announce;

struct lm_dp {
	struct lm_dp_config cfg;
	char name[256];
	char state_file[PATH_MAX], log_path[PATH_MAX];
	struct lm_dp_eal eal;
	struct lm_dp_lcores lc;
	int epfd, ctl_fd, ing_fd;
	struct lm_dp_bell bell;
	struct lm_dp_deployments deps;
	struct lm_dp_serve serve; /* the ingress's queues */
	struct lm_dp_front front; /* its TCP front */
	struct lm_dp_http *http;  /* its HTTP front, or NULL */
	uint16_t http_port;	  /* 0: none */
	struct lm_dp_net *net;
	lm_store *store; /* the model files lamina shipped */
	struct lm_dp_announce *announce; /* NULL: not announced */
	struct lm_dp_ctl *ctls[LM_DP_MAX_CTLS];
	lm_fleet_key key; /* the fleet key, when keyed */
	int keyed;	  /* 0: privileged requests are refused */
	/* the fingerprint of the fleet key laminad was given (16 hex digits,
	 * lamina/fleet.h), "" without one; announce.c publishes it as TXT
	 * "fp" when there is one */
	char fleet_fp[LM_FLEET_FP_CHARS + 1];
	size_t ctl_buffered; /* input buffers of every control connection */
	unsigned ctl_log_lines, ctl_log_dropped; /* control.c's log budget */
	uint64_t ctl_log_t;
	uint64_t tsc_hz, t_start;
	double cycles_per_us;
	int quit;
};

/* epoll user data kinds (ingress.h's LM_DP_EV packs kind and slot) */
enum { LM_DP_EV_CTL_LISTEN = 1, LM_DP_EV_ING_LISTEN, LM_DP_EV_CTL,
       LM_DP_EV_ING, LM_DP_EV_BELL, LM_DP_EV_HTTP, LM_DP_EV_MDNS };

/* service.c */
/**
 * Load one stage: make the deployment on its first stage, load the stage
 * into its pipeline, wire the edges that cross to other laminads, and at
 * stage 0 the ingress's part.  On failure nothing of the stage is left
 * (a deployment made for it is removed again).
 * @return as lm_pipeline_load and lm_dp_net_link; -ENOSPC when the table
 *         is full.
 */
int lm_dp_load(struct lm_dp *dp, const struct lm_dp_stage_spec *s,
	       struct lm_dp_loaded *out, lm_error *e);

/** Start serving d (idempotent).  As lm_pipeline_start; -ENOMEM. */
int lm_dp_start(struct lm_dp *dp, struct lm_dp_deployment *d, lm_error *e);

/** Stop d's workers (bundles in flight wait for the next start). */
void lm_dp_stop(struct lm_dp *dp, struct lm_dp_deployment *d);

/** Stop d, answer what it holds with -ECANCELED, free every part; safe
 *  on NULL. */
void lm_dp_teardown(struct lm_dp *dp, struct lm_dp_deployment *d);

/** Bytes laminad holds: its heap and DPDK's. */
void lm_dp_memory(uint64_t *heap, uint64_t *dpdk);

/* metrics.c */
/** Every deployment's telemetry in the Prometheus text format (ctx: the
 *  struct lm_dp); malloc'd, NULL when out of memory. */
char *lm_dp_metrics(void *ctx, size_t *len);

/* control.c */
/** Accept every pending control connection. */
int lm_dp_control_accept(struct lm_dp *dp);
/** Read, handle and answer control messages on connection `slot`. */
void lm_dp_control_event(struct lm_dp *dp, int slot, uint32_t events);
/** Flush last replies and close every control connection. */
void lm_dp_control_close_all(struct lm_dp *dp);
/** Close control connections idle too long (call about every second). */
void lm_dp_control_sweep(struct lm_dp *dp);

/* announce.c */
/** Whether cfg.announce can be done with cfg.listen (before start-up):
 *  as lm_dp_announce_start's address errors. */
int lm_dp_announce_check(const struct lm_dp_config *c, lm_error *e);
/**
 * Announce this laminad on the link (DNS-SD over mDNS) when cfg.announce
 * asks: always with 1, with -1 when it listens beyond loopback.  Sets
 * dp->announce; the first records go out on a later tick.
 * @return 0 (also when -1 and it cannot: logged); with 1, -EADDRNOTAVAIL
 *         for a loopback --listen, -EAFNOSUPPORT for IPv6, -ENODEV when
 *         no interface has multicast, -errno from the socket.
 */
int lm_dp_announce_start(struct lm_dp *dp, lm_error *e);
/** The mDNS socket is readable. */
void lm_dp_announce_event(struct lm_dp *dp);
/** Every turn of the loop: sends what is due (a comparison otherwise). */
void lm_dp_announce_tick(struct lm_dp *dp);
/** About every second: re-announce the TXT record when it changed. */
void lm_dp_announce_refresh(struct lm_dp *dp);
/** Goodbyes, then everything closed; safe when not announced. */
void lm_dp_announce_close(struct lm_dp *dp);
struct lm_dnssd_txt; /* dnssd.h */
/**
 * What the TXT record says of this laminad now (version, its cores and
 * those free, memory, NUMA nodes, hugepages, ports, deployments, cpu
 * model, fleet fingerprint); needs dp->lc, not the EAL.
 */
void lm_dp_announce_txt(const struct lm_dp *dp, struct lm_dnssd_txt *t);

#endif
