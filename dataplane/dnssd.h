/*
 * dnssd.h: how a laminad is found.  Its DNS-SD records (RFC 6763) over
 * multicast DNS (RFC 6762), through libmdnsd (Debian's libmdnsd-dev,
 * which embeds a responder and a querier: no daemon).  laminad announces
 * them (announce.c), lamina browses them (control/discover.c); both link
 * this module, the one owner of the records' format, and nothing else
 * encodes or decodes them.
 *
 * The records of a laminad whose instance name is NAME:
 *
 *   _services._dns-sd._udp.local.  PTR  _lamina._tcp.local.        shared
 *   _lamina._tcp.local.            PTR  NAME._lamina._tcp.local.   shared
 *   NAME._lamina._tcp.local.       SRV  0 0 CONTROL_PORT HOST      unique
 *   NAME._lamina._tcp.local.       TXT  key=value ...              unique
 *   HOST                           A    ADDRESS, one per address   unique
 *
 * NAME is laminad's device name (--name, else the host name) with '.'
 * made '-' (a DNS label holds no dot here), at most 63 bytes; when it is
 * taken on the link laminad renames itself "NAME (2)", "NAME (3)"... (RFC
 * 6762 section 9).  HOST is "laminad-PORT-LABEL.local." where LABEL is
 * NAME in host-name letters (lm_dnssd_host): not the machine's own host
 * name, which the system's responder (avahi) may hold with other
 * addresses.  ADDRESS: the address laminad listens on, or with --listen
 * 0.0.0.0 every IPv4 address of its interfaces but loopback.
 *
 * TXT, one "key=value" string each (RFC 6763 section 6), values in
 * decimal or printable ASCII:
 *
 *   txtvers=1       this list's version
 *   v=0.2.0         laminad's version
 *   cores=N         worker cpus
 *   cores_free=N    worker cpus no loaded stage uses
 *   mem=B           memory of its NUMA nodes, bytes
 *   mem_free=B      free memory of its NUMA nodes, bytes
 *   numa=N          NUMA nodes
 *   huge=B          free hugepages, bytes
 *   ingress=PORT    the inference ingress
 *   http=PORT       the HTTP front (0: none)
 *   deps=N          deployments loaded
 *   cpu=MODEL       the cpu's model name (/proc/cpuinfo)
 *   fp=HEX          the fingerprint of the fleet key laminad was given
 *                   (lamina/fleet.h: 16 lowercase hex digits); absent
 *                   when laminad has no fleet key
 *
 * A reader ignores keys it does not know and all but the first of a key
 * given twice (RFC 6763 section 6.4); it refuses a record missing v,
 * cores, cores_free, mem or mem_free, a number that is not one, and text
 * that is not printable (it is shown on terminals).
 *
 * Time to live: 10 s on every record (LM_DNSSD_TTL).  RFC 6762 suggests
 * 120 s for host records and 75 minutes for the others; a laminad that is
 * killed sends no goodbye, and caches (avahi's, a browser's) would list
 * it that long.  With 10 s it ages out of them within about 10 s, at the
 * cost of a refresh of each record every ~8 s (libmdnsd sends one 2 s
 * before the TTL runs out): a few hundred bytes per laminad, negligible.
 * A clean exit sends every record again with TTL 0 (a goodbye), which
 * removes it from caches at once.
 *
 * Packets from the network are untrusted: libmdnsd's own parser
 * (message_parse) takes no length, follows compression pointers without
 * a bound and indexes past what was received, so this module parses each
 * datagram itself (lm_dnssd_parse: every length checked against what
 * remains, pointers only backwards, names at most 255 bytes) into
 * libmdnsd's struct message, and hands libmdnsd only what parsed.
 */
#ifndef LAMINA_DP_DNSSD_H
#define LAMINA_DP_DNSSD_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

#include "lamina/common.h"

#define LM_DNSSD_SERVICE "_lamina._tcp.local."
#define LM_DNSSD_ENUM "_services._dns-sd._udp.local."
#define LM_DNSSD_TTL 10	      /* seconds, every record: see above */
#define LM_DNSSD_TXT_VERSION 1
#define LM_DNSSD_PORT 5353
#define LM_DNSSD_GROUP "224.0.0.251"
#define LM_DNSSD_LABEL_MAX 63 /* bytes of one DNS label */
#define LM_DNSSD_NAME_MAX 256 /* a dotted name, with its NUL */
#define LM_DNSSD_MAX_PACKET 9000 /* RFC 6762 section 17 */
#define LM_DNSSD_MAX_IFS 32

/** What a laminad's TXT record says. */
struct lm_dnssd_txt {
	char version[32];
	uint32_t cores, cores_free, numa, deployments;
	uint64_t mem, mem_free, huge;
	uint16_t ingress, http;
	char cpu[128];
	char fp[96];
};

/** Longest TXT record lm_dnssd_txt_encode writes. */
#define LM_DNSSD_TXT_MAX 640

/**
 * Encode t as TXT rdata (length-prefixed "key=value" strings) into out,
 * which holds cap bytes; *len is the length written.
 * @return 0; -ENOSPC when it does not fit; -EINVAL when a text field is
 *         not printable ASCII.
 */
int lm_dnssd_txt_encode(const struct lm_dnssd_txt *t, uint8_t *out,
			size_t cap, size_t *len, lm_error *e);

/**
 * Decode TXT rdata (len bytes, untrusted) into t (zeroed first).
 * @return 0; -EINVAL naming the key or the string that is wrong.
 */
int lm_dnssd_txt_decode(const uint8_t *rdata, size_t len,
			struct lm_dnssd_txt *t, lm_error *e);

/**
 * The instance label for device name `name`: '.' and control characters
 * made '-', cut to fit 63 bytes with " (N)" appended when n >= 2 (the
 * n-th name tried after conflicts).  out holds at least 64 bytes.
 */
void lm_dnssd_instance(const char *name, unsigned n, char *out, size_t len);

/** "INSTANCE._lamina._tcp.local." into out (LM_DNSSD_NAME_MAX bytes). */
void lm_dnssd_service_name(const char *instance, char *out, size_t len);

/**
 * The instance label of a service name "INSTANCE._lamina._tcp.local.",
 * or -EINVAL when name is not one.
 */
int lm_dnssd_instance_of(const char *name, char *out, size_t len);

/**
 * The SRV target of a laminad: "laminad-PORT-LABEL.local.", LABEL the
 * instance in lower-case letters, digits and '-'.
 */
void lm_dnssd_host(const char *instance, uint16_t port, char *out,
		   size_t len);

/** This host's cpu model ("model name" of /proc/cpuinfo, else ""). */
void lm_dnssd_cpu_model(char *out, size_t len);

struct message; /* libmdnsd's (1035.h) */

/**
 * Parse a DNS message of n bytes (untrusted) into m, which must be
 * zeroed: names decompressed into m's own storage, rdata copied there,
 * records laid out as libmdnsd's parser lays them (answers, authority and
 * additional records in one array).
 * @return 0; -EINVAL for anything malformed (m is then unusable).
 */
int lm_dnssd_parse(const uint8_t *p, size_t n, struct message *m);

/* ---- the multicast socket and a libmdnsd daemon on it ---- */

/** An interface mDNS runs on. */
struct lm_dnssd_if {
	int index;
	struct in_addr addr, mask;
	char name[16];
};

struct lm_mdns;

/**
 * A libmdnsd daemon and its socket: UDP port 5353 (shared with other
 * responders on the host: SO_REUSEADDR, SO_REUSEPORT), a member of
 * 224.0.0.251 on every interface that is up, multicast and not loopback
 * and has an IPv4 address, or with `only` (non-NULL) on the interface
 * holding that address alone.  Non-blocking; sends with TTL 255 (RFC 6762
 * section 11) and loops its multicast back to this host (another process
 * here may be browsing), dropping its own packets when they come back.
 * @return 0; -ENODEV when there is no such interface; -errno from the
 *         socket calls; -ENOMEM.
 */
int lm_mdns_open(const struct in_addr *only, struct lm_mdns **out,
		 lm_error *e);

/** The daemon, for libmdnsd's calls (mdnsd.h). */
struct mdns_daemon *lm_mdns_daemon(struct lm_mdns *m);

/** The socket, to wait on. */
int lm_mdns_fd(const struct lm_mdns *m);

/** The interfaces it runs on. */
const struct lm_dnssd_if *lm_mdns_ifs(const struct lm_mdns *m, int *n);

/**
 * Hook called with each parsed message from another process before
 * libmdnsd sees it; it may edit m (e.g. drop records).  NULL: none.
 */
typedef void (*lm_mdns_filter)(struct message *m, void *arg);
void lm_mdns_set_filter(struct lm_mdns *m, lm_mdns_filter f, void *arg);

/**
 * Read what waits on the socket (at most 64 datagrams) and give what
 * parses to the daemon.  Malformed ones are counted, never acted on.
 * @return datagrams given to the daemon.
 */
int lm_mdns_input(struct lm_mdns *m);

/**
 * Send what the daemon has to send now, multicast on every interface.
 * @return microseconds until it next has something to send.
 */
uint64_t lm_mdns_output(struct lm_mdns *m);

/**
 * Ask this daemon for its own records (names[i] of types[i], at most 8),
 * as if the question came from the link: it answers them there on the
 * next lm_mdns_output.  A responder's way to send them all again.
 */
void lm_mdns_ask_self(struct lm_mdns *m, const char *const *names,
		      const int *types, int n);

/** Datagrams dropped as malformed so far. */
uint64_t lm_mdns_dropped(const struct lm_mdns *m);

/**
 * Send goodbyes for every published record (TTL 0), then free the
 * daemon and close the socket; safe on NULL.
 */
void lm_mdns_close(struct lm_mdns *m);

#endif
