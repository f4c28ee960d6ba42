/*
 * devcache.h: the devices lamina knows of, kept between runs in the state
 * folder as STATE/devices-cache.json.  devcache.c is its only reader and
 * writer; `lamina devices` shows it merged with what answers now
 * (discover.h).
 *
 *   {"format": "lamina-devices-cache", "version": 1,
 *    "devices": [
 *      {"name": "nodeA",              the device name (a laminad's
 *                                     instance name, or for a device
 *                                     added by hand its host until a
 *                                     laminad there answers)
 *       "address": "10.0.0.2",        IPv4 of its last answer, or the
 *                                     host added by hand
 *       "port": 7700,                 its control port (SRV), 0: unknown
 *       "last_seen": 1765000000,      Unix seconds of its last answer,
 *                                     0: never
 *       "ssh": "ssh://u@host:22",     only for a device added by hand
 *       "txt": {"v", "cores", "cores_free", "mem", "mem_free", "numa",
 *               "huge", "ingress", "http", "deps", "cpu", "fp"}
 *                                     what its last answer said (the TXT
 *                                     keys of dataplane/dnssd.h), or for
 *                                     a host added by hand what
 *                                     `laminad --describe-host` said
 *                                     there; absent when neither
 *      }]}
 *
 * A device found by discovery and not heard from for longer than the
 * age-out (LM_DEVCACHE_AGE_OUT_S, 10 minutes: long enough for a laminad
 * restarted or a host rebooted to come back under its name, short enough
 * that a list does not fill with machines gone for good) is dropped; one
 * added by hand stays until `lamina devices remove`.  Two lamina
 * processes writing at once each write the whole file (atomically), the
 * last one wins: it is a cache.
 */
#ifndef LAMINA_DEVCACHE_H
#define LAMINA_DEVCACHE_H

#include <stdint.h>

#include "dnssd.h"
#include "lamina/common.h"

#define LM_DEVCACHE_FILE "devices-cache.json"
#define LM_DEVCACHE_FORMAT "lamina-devices-cache"
#define LM_DEVCACHE_VERSION 1
#define LM_DEVCACHE_AGE_OUT_S 600
#define LM_DEVCACHE_MAX 4096

struct lm_found; /* discover.h */

typedef struct lm_known {
	char name[LM_DNSSD_LABEL_MAX + 1];
	char address[256];
	int port;
	int64_t last_seen;
	char ssh[512]; /**< "" unless added by hand */
	int has_txt;
	struct lm_dnssd_txt txt;
	int answering; /**< answered the browse just made (not saved) */
} lm_known;

typedef struct lm_devcache {
	int n, cap;
	lm_known *dev;
} lm_devcache;

/**
 * Read the cache file `path` into c (emptied first); a missing file is
 * an empty cache.
 * @return 0; -errno; -EINVAL naming the file and the field.
 */
int lm_devcache_load(const char *path, lm_devcache *c, lm_error *e);

/** Write c to path (atomically, 0600). */
int lm_devcache_save(const char *path, const lm_devcache *c, lm_error *e);

/**
 * Add a device by hand: "ssh://[user@]host[:port]" (host a name, an IPv4
 * address or [an IPv6 one]).  A device named host gets the URL; else
 * every device at that address (a host may run several laminads, all
 * reached through it); else a new one, named and addressed host.
 * @return 0; -EINVAL naming what is wrong with url; -ENOSPC; -ENOMEM.
 */
int lm_devcache_add(lm_devcache *c, const char *url, lm_error *e);

/**
 * What `laminad --describe-host` said over ssh of the host of url (added
 * with lm_devcache_add): every device of that URL never heard from gets
 * t as its record and control port `port` (a laminad lamina starts there
 * listens on it), so `lamina plan` plans for it before any laminad runs.
 * @return how many devices it gave it to.
 */
int lm_devcache_describe(lm_devcache *c, const char *url, int port,
			 const struct lm_dnssd_txt *t);

/**
 * The ssh destination of k as remote.h and devices.json's "ssh" take it,
 * "[user@]host[:port]" (its URL without "ssh://"), into out; "" for a
 * device not added by hand.
 * @return 0; -ENAMETOOLONG when it does not fit in len.
 */
int lm_devcache_ssh_dest(const lm_known *k, char *out, size_t len);

/**
 * Remove the device named `name` and every device whose ssh URL names
 * that host.
 * @return 0 or -ENOENT (none).
 */
int lm_devcache_remove(lm_devcache *c, const char *name);

/**
 * What answered now (n laminads) into c at Unix time `now`: a device
 * known by the name, or added by hand with its address, is updated,
 * others are added; answering is set for these and cleared for the rest.
 * @return 0; -ENOSPC past LM_DEVCACHE_MAX; -ENOMEM.
 */
int lm_devcache_merge(lm_devcache *c, const struct lm_found *f, int n,
		      int64_t now, lm_error *e);

/** Drop devices found by discovery and not heard from in age_s seconds
 *  (devices added by hand stay). */
void lm_devcache_age_out(lm_devcache *c, int64_t now, int64_t age_s);

/** Sort by name. */
void lm_devcache_sort(lm_devcache *c);

/** Free what c holds (c itself is the caller's); safe on an empty one. */
void lm_devcache_free(lm_devcache *c);

#endif
