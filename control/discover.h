/*
 * discover.h: the laminads that answer on the link, found with DNS-SD
 * over mDNS (their records: dataplane/dnssd.h), and the fleet lamina
 * knows: what answers merged with the devices cache (devcache.h).
 *
 *   lm_discover()        browse _lamina._tcp for a while, resolve each
 *                        instance (SRV, TXT, A)
 *   lm_fleet_list()      the cache in the state folder, updated with what
 *                        answers, aged out, saved: `lamina devices`
 *   lm_fleet_devices()   the answering devices of this fleet as the
 *                        optimizer's lm_devices: `lamina plan` and `lamina
 *                        bench` without a devices file
 */
#ifndef LAMINA_DISCOVER_H
#define LAMINA_DISCOVER_H

#include <netinet/in.h>

#include "devcache.h"
#include "dnssd.h"
#include "lamina/optimizer.h"

/** Browse this long by default: the fleet is listed within 2 s. */
#define LM_DISCOVER_MS 1500

/* The link between two discovered devices, for plans: nothing measures
 * it yet, so a LAN is assumed (a devices.json gives real figures). */
#define LM_DISCOVER_LINK_US 100.0
#define LM_DISCOVER_LINK_GBPS 1.0

/** A laminad that answered. */
typedef struct lm_found {
	char name[LM_DNSSD_LABEL_MAX + 1]; /**< its instance name */
	char host[LM_DNSSD_NAME_MAX];      /**< its SRV target */
	char address[INET_ADDRSTRLEN];     /**< an IPv4 address of host */
	uint16_t port;                     /**< its control port (SRV) */
	struct lm_dnssd_txt txt;
} lm_found;

/**
 * Browse for timeout_ms and return every laminad that answered with
 * SRV, TXT and A records, sorted by name (*out malloc'd, n entries).  On
 * a host with no multicast interface but loopback there is nothing to
 * browse: 0 laminads, at once.  *skipped counts instances whose records
 * were incomplete or did not decode (may be NULL).
 * @return 0; -errno from the socket (e.g. -EACCES); -ENOMEM.
 */
int lm_discover(unsigned timeout_ms, lm_found **out, int *n, int *skipped,
		lm_error *e);

/** This lamina's fleet key fingerprint (of lamina/fleet.h's default
 *  file, read once, never made here), "" while it has no key (named
 *  apart from lamina/fleet.h's lm_fleet_fingerprint, which computes one
 *  from a key). */
const char *lm_fleet_own_fingerprint(void);

/** "yes", "no" or "unknown" (either fingerprint empty): whether a
 *  device whose TXT says fp belongs to this lamina's fleet. */
const char *lm_fleet_member(const char *fp);

/**
 * Laminads named rather than found (`lamina devices --device`, a
 * devices.json): each of the n_addr addresses "HOST[:PORT]" (port
 * LM_CONTROL_PORT when not given; HOST resolved to IPv4) asked with
 * Describe within timeout_ms; each that answers goes into out (room for
 * n_addr) as a browse would have found it: names[i] as its name when
 * names is given and names[i] is not NULL, else the name Describe gives;
 * its TXT values from Describe (no cpu model, no fingerprint).  One that
 * does not answer is said on stderr and passed over.
 * @return how many answered (0..n_addr); -EINVAL naming an address that
 *         is not HOST[:PORT] or whose host does not resolve.
 */
int lm_discover_direct(const char *const *addr, const char *const *names,
		       int n_addr, unsigned timeout_ms, lm_found *out,
		       lm_error *e);

/**
 * The devices cache of state folder `state` (NULL: the default), merged
 * with what answers a browse of timeout_ms and with the n_extra laminads
 * of `extra` (lm_discover_direct; one the browse found too counts once),
 * aged out (LM_DEVCACHE_AGE_OUT_S or $LAMINA_DEVICES_AGE_OUT seconds) and
 * saved.
 * @return 0; as lm_discover, lm_devcache_load and lm_devcache_save.
 */
int lm_fleet_list(const char *state, unsigned timeout_ms,
		  const lm_found *extra, int n_extra, lm_devcache *c,
		  lm_error *e);

/**
 * The devices of c that may belong to this fleet, as lm_devices: those
 * that answered, and those added by hand (`lamina devices add ssh://`)
 * whose laminad answered before and does not now (deploy starts it again
 * over ssh).  Each with its name, address "IP:PORT" (its SRV port), its
 * free cores (all its cores when not answering) and free memory, NUMA
 * node 0, its ssh destination ("[user@]host[:port]") when added by hand,
 * every pair linked (LM_DISCOVER_LINK_*).  Devices with no free core, of
 * another fleet, or never heard from are left out.  *out is NULL when
 * none is left.
 * @return 0; -ENOMEM; -ENAMETOOLONG for an ssh destination too long.
 */
int lm_fleet_devices(const lm_devcache *c, lm_devices **out, lm_error *e);

/**
 * The devices of a plan or a bench given no devices file: the fleet that
 * answers a browse (lm_fleet_devices, the devices cache of the default
 * state folder updated on the way) or, when no device of it answers,
 * this host alone (lm_devices_local).  *fleet is set to 1 in the first
 * case, and c (which the caller frees) holds the merged list.  A devices
 * cache that cannot be read or saved is said on stderr ("lamina CMD:
 * ...") and passed over.
 * @return 0; as lm_devices_local; -ENOMEM.
 */
int lm_fleet_default(const char *cmd, lm_devices **out, lm_devcache *c,
		     int *fleet, lm_error *e);

/**
 * The index in d of the device that is this host (its address is one of
 * this host's, or loopback), or -1.
 */
int lm_fleet_this_host(const lm_devices *d);

#endif
