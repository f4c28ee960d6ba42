/*
 * announce.c: laminad announces itself on the link with DNS-SD over mDNS
 * (the records: dnssd.h), so `lamina devices`, `avahi-browse -rt
 * _lamina._tcp` and any DNS-SD browser find it.  libmdnsd is the responder;
 * this file decides what it says and drives it from the main lcore's loop,
 * never blocking it:
 *
 *   lm_dp_announce_start    at start-up, once laminad listens: when it
 *                           listens on an address other hosts can reach
 *                           (not loopback), unless --no-announce
 *   lm_dp_announce_event    the socket is readable (epoll)
 *   lm_dp_announce_tick     every turn of the loop: a comparison with the
 *                           next time libmdnsd has something to send,
 *                           which is all it costs on a busy loop
 *   lm_dp_announce_refresh  about every second: the TXT record again from
 *                           what laminad has free, re-announced when it
 *                           changed (at most every LM_DP_ANNOUNCE_MIN_MS)
 *   lm_dp_announce_close    on exit: goodbyes (every record with TTL 0)
 *
 * The loop wakes at least every 100 ms; libmdnsd's timers (probes 250 ms
 * apart, shared answers delayed 20-120 ms) tolerate being that late, so
 * its next time is not made the loop's timeout, which would make the loop
 * poll in 10 us steps meanwhile (wait_events).
 *
 * Unique names (RFC 6762 sections 8 and 9): the records are registered
 * after a random 0-250 ms (two laminads started together do not probe in
 * step), probed by libmdnsd, then announced.  libmdnsd detects few
 * conflicts (it takes any A record for its own and breaks no ties between
 * simultaneous probes), so this file also watches what others say
 * (conflicts()).  While probing, another responder's answer for one of
 * our unique names with other data, or its probe for one that wins the
 * tie-break of RFC 6762 section 8.2, makes laminad withdraw its records
 * and try "NAME (2)", "NAME (3)"..., at most 15 times in 10 s, then one
 * try every 5 s.  Once announced, such an answer makes it probe for the
 * same name again (RFC 6762 section 9): two laminads that announced one
 * name at the same moment then break the tie by probing, and only the
 * loser is renamed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <numa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/sysinfo.h>
#include <time.h>
#include <unistd.h>

#include <libmdnsd/mdnsd.h>

#include <rte_cycles.h>

#include "dnssd.h"
#include "dp.h"
#include "lamina/log.h"

#define REGISTER_JITTER_MS 250 /* RFC 6762 8.1: before the first probe */
/* Probing: from registering the records until libmdnsd has sent its
 * three probes (0, 250 and 500 ms) and not yet announced (750 ms). */
#define PROBING_MS 700
#define RENAMES_FAST 15	       /* RFC 6762 8.1: in RENAMES_WINDOW_MS ... */
#define RENAMES_WINDOW_MS 10000
#define RENAME_SLOW_MS 5000    /* ... then one try every 5 s */
/* mem_free moves with every allocation on the host: re-announce it only
 * when it moved by more than this or 2% of the memory */
#define MEM_SLACK (64ull << 20)
/* a TXT record changed is re-announced at most this often */
#define ANNOUNCE_MIN_MS 2000
/* Every record is sent again this often, before caches drop it (TTL
 * 10 s).  libmdnsd's own refresh sends only the last record made of each
 * of its hash buckets, so of the SRV and TXT records (one name, one
 * bucket) only one; laminad asks itself for all of them instead
 * (lm_mdns_ask_self), which libmdnsd answers on the link like any query. */
#define REFRESH_MS ((LM_DNSSD_TTL - 3) * 1000)

struct lm_dp_announce;

/* A unique record, and who to tell when libmdnsd gives it up. */
struct unique {
	struct lm_dp_announce *a;
	mdns_record_t *r;
};

/* Our unique records named one name, in the canonical form of RFC 6762
 * 8.2 (type, then rdata with names uncompressed and in lower case). */
struct canon {
	uint16_t type;
	uint8_t data[LM_DNSSD_TXT_MAX];
	size_t len;
};

struct lm_dp_announce {
	struct lm_dp *dp;
	struct lm_mdns *mdns;
	mdns_daemon_t *d;
	unsigned n; /* the n-th name tried: 1 the device name, 2 "NAME (2)" */
	char instance[LM_DNSSD_LABEL_MAX + 1];
	char service[LM_DNSSD_NAME_MAX], host[LM_DNSSD_NAME_MAX];
	struct in_addr addrs[LM_DNSSD_MAX_IFS];
	int n_addrs;
	mdns_record_t *enum_ptr, *ptr;
	struct unique srv, txt, addr[LM_DNSSD_MAX_IFS];
	int registered, conflict;
	uint8_t txt_raw[LM_DNSSD_TXT_MAX];
	size_t txt_len;
	struct lm_dnssd_txt said; /* what the TXT record says */
	char cpu[128];
	uint64_t tsc_hz, due_tsc;
	uint64_t t_register_ms; /* when to register (after a conflict too) */
	uint64_t t_registered_ms, t_txt_ms, t_refresh_ms;
	uint64_t t_renames_ms; /* the start of the current window */
	unsigned renames;
	unsigned rng;
	struct canon ours[LM_DNSSD_MAX_IFS + 2], theirs[LM_DNSSD_MAX_IFS + 2];
};

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static unsigned jitter(struct lm_dp_announce *a, unsigned below)
{
	a->rng ^= a->rng << 13;
	a->rng ^= a->rng >> 17;
	a->rng ^= a->rng << 5;
	return a->rng % below;
}

/* ---- what the TXT record says ---- */

static uint64_t sysfs_number(const char *path)
{
	char buf[32];
	FILE *f = fopen(path, "r");
	size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
	if (f)
		fclose(f);
	buf[n] = '\0';
	return strtoull(buf, NULL, 10);
}

/* As Describe counts them (control.c): worker cpus, those no loaded
 * stage uses, the NUMA nodes' memory and free hugepages. */
static void resources(const struct lm_dp *dp, const char *cpu,
		      struct lm_dnssd_txt *t)
{
	const struct lm_dp_lcores *lc = &dp->lc;
	memset(t, 0, sizeof(*t));
	snprintf(t->version, sizeof(t->version), "%s", LM_DP_VERSION);
	snprintf(t->cpu, sizeof(t->cpu), "%s", cpu);
	snprintf(t->fp, sizeof(t->fp), "%s", dp->fleet_fp);
	t->cores = lc->n_worker_cpus;
	for (unsigned i = 0; i < lc->n_worker_cpus; i++) {
		int busy = 0;
		for (unsigned l = 1; l < lc->n; l++)
			busy |= lc->l[l].cpu == lc->worker_cpus[i] &&
				lc->l[l].used;
		t->cores_free += !busy;
	}
	int nodes = numa_available() >= 0 ? numa_max_node() + 1 : 0;
	uint64_t kb = sysfs_number(
		"/sys/kernel/mm/transparent_hugepage/hpage_pmd_size") / 1024;
	if (!kb)
		kb = 2048;
	for (int n = 0; n < nodes; n++) {
		char path[160];
		long long free_b = 0, total = numa_node_size64(n, &free_b);
		t->mem += total > 0 ? (uint64_t)total : 0;
		t->mem_free += free_b > 0 ? (uint64_t)free_b : 0;
		snprintf(path, sizeof(path), "/sys/devices/system/node/node%d/"
			 "hugepages/hugepages-%llukB/free_hugepages", n,
			 (unsigned long long)kb);
		t->huge += sysfs_number(path) * kb * 1024;
	}
	struct sysinfo si;
	if (!nodes && sysinfo(&si) == 0) {
		t->mem = (uint64_t)si.totalram * si.mem_unit;
		t->mem_free = (uint64_t)si.freeram * si.mem_unit;
	}
	t->numa = nodes ? (uint32_t)nodes : 1;
	t->ingress = dp->cfg.ingress_port;
	t->http = dp->http_port;
	for (int i = 0; i < LM_DP_MAX_DEPLOYMENTS; i++)
		t->deployments += dp->deps.d[i] != NULL;
}

void lm_dp_announce_txt(const struct lm_dp *dp, struct lm_dnssd_txt *t)
{
	char cpu[sizeof(t->cpu)];
	lm_dnssd_cpu_model(cpu, sizeof(cpu));
	resources(dp, cpu, t);
}

/* Whether the record should say t rather than what it says. */
static int txt_moved(const struct lm_dnssd_txt *said,
		     const struct lm_dnssd_txt *t)
{
	struct lm_dnssd_txt x = *t;
	uint64_t slack = t->mem / 50 > MEM_SLACK ? t->mem / 50 : MEM_SLACK;
	uint64_t d = t->mem_free > said->mem_free
			     ? t->mem_free - said->mem_free
			     : said->mem_free - t->mem_free;
	x.mem_free = said->mem_free;
	return d > slack || memcmp(&x, said, sizeof(x)) != 0;
}

/* ---- the records ---- */

static void on_conflict(char *name, int type, void *arg)
{
	struct unique *u = arg;
	(void)name;
	(void)type;
	u->r = NULL; /* libmdnsd frees it after this returns */
	u->a->conflict = 1;
}

static void withdraw(struct lm_dp_announce *a)
{
	struct unique *u[2 + LM_DNSSD_MAX_IFS] = { &a->srv, &a->txt };
	for (int i = 0; i < a->n_addrs; i++)
		u[2 + i] = &a->addr[i];
	if (a->ptr)
		mdnsd_done(a->d, a->ptr);
	a->ptr = NULL;
	for (int i = 0; i < 2 + a->n_addrs; i++)
		if (u[i]->r) {
			mdnsd_done(a->d, u[i]->r);
			u[i]->r = NULL;
		}
	a->registered = 0;
}

static mdns_record_t *unique(struct lm_dp_announce *a, struct unique *u,
			     const char *name, int type)
{
	u->a = a;
	u->r = mdnsd_unique(a->d, name, (unsigned short)type, LM_DNSSD_TTL,
			    on_conflict, u);
	return u->r;
}

static void put_records(struct lm_dp *dp, struct lm_dp_announce *a)
{
	lm_error e;
	lm_dnssd_instance(dp->name, a->n, a->instance, sizeof(a->instance));
	lm_dnssd_service_name(a->instance, a->service, sizeof(a->service));
	lm_dnssd_host(a->instance, dp->cfg.control_port, a->host,
		      sizeof(a->host));
	resources(dp, a->cpu, &a->said);
	if (lm_dnssd_txt_encode(&a->said, a->txt_raw, sizeof(a->txt_raw),
				&a->txt_len, &e)) {
		lm_log("mDNS: not announced: %s", e.msg);
		a->t_register_ms = UINT64_MAX; /* nor tried again */
		return;
	}
	if (!a->enum_ptr) {
		a->enum_ptr = mdnsd_shared(a->d, LM_DNSSD_ENUM, QTYPE_PTR,
					   LM_DNSSD_TTL);
		mdnsd_set_host(a->d, a->enum_ptr, LM_DNSSD_SERVICE);
	}
	a->ptr = mdnsd_shared(a->d, LM_DNSSD_SERVICE, QTYPE_PTR, LM_DNSSD_TTL);
	mdnsd_set_host(a->d, a->ptr, a->service);
	mdnsd_set_srv(a->d, unique(a, &a->srv, a->service, QTYPE_SRV), 0, 0,
		      dp->cfg.control_port, a->host);
	mdnsd_set_raw(a->d, unique(a, &a->txt, a->service, QTYPE_TXT),
		      (const char *)a->txt_raw, (unsigned short)a->txt_len);
	for (int i = 0; i < a->n_addrs; i++)
		mdnsd_set_ip(a->d, unique(a, &a->addr[i], a->host, QTYPE_A),
			     a->addrs[i]);
	a->registered = 1;
	a->conflict = 0;
	a->t_registered_ms = a->t_txt_ms = a->t_refresh_ms = now_ms();
	a->due_tsc = 0;
	lm_log("mDNS: announcing '%s' (%s port %u)", a->instance, a->host,
	       dp->cfg.control_port);
}

/* After a conflict: the records out, and in a while, while probing the
 * next name, once announced the same name again. */
static void on_conflict_seen(struct lm_dp_announce *a)
{
	uint64_t now = now_ms();
	int probing = now - a->t_registered_ms < PROBING_MS;
	char was[sizeof(a->instance)];
	snprintf(was, sizeof(was), "%s", a->instance);
	withdraw(a);
	if (now - a->t_renames_ms > RENAMES_WINDOW_MS) {
		a->t_renames_ms = now;
		a->renames = 0;
	}
	a->renames++;
	a->n += probing;
	a->t_register_ms = now + jitter(a, REGISTER_JITTER_MS) +
			   (a->renames > RENAMES_FAST ? RENAME_SLOW_MS : 0);
	lm_log(probing ? "mDNS: the name '%s' is taken on the link; trying "
			 "the next"
		       : "mDNS: another responder claims '%s'; probing for "
			 "it again", was);
}

/* ---- conflicts libmdnsd does not see ---- */

static size_t canon_name(const char *name, uint8_t *out, size_t cap)
{
	size_t k = 0;
	while (*name && k + 64 < cap) {
		size_t n = strcspn(name, ".");
		if (n > 63)
			n = 63;
		out[k++] = (uint8_t)n;
		for (size_t i = 0; i < n; i++) {
			char c = name[i];
			out[k++] = (uint8_t)(c >= 'A' && c <= 'Z' ? c + 32 : c);
		}
		name += n + (name[n] == '.');
	}
	out[k++] = 0;
	return k;
}

static void canon_resource(const struct resource *r, struct canon *c)
{
	c->type = r->type;
	c->len = 0;
	if (r->type == QTYPE_SRV) {
		uint8_t *p = c->data;
		uint16_t v[3] = { r->known.srv.priority, r->known.srv.weight,
				  r->known.srv.port };
		for (int i = 0; i < 3; i++) {
			p[2 * i] = (uint8_t)(v[i] >> 8);
			p[2 * i + 1] = (uint8_t)v[i];
		}
		c->len = 6 + canon_name(r->known.srv.name ? r->known.srv.name
							  : "", p + 6,
					sizeof(c->data) - 6);
	} else if (r->rdlength <= sizeof(c->data) && r->rdata) {
		memcpy(c->data, r->rdata, r->rdlength);
		c->len = r->rdlength;
	}
}

static int canon_cmp(const void *x, const void *y)
{
	const struct canon *a = x, *b = y;
	if (a->type != b->type)
		return a->type < b->type ? -1 : 1;
	size_t n = a->len < b->len ? a->len : b->len;
	int c = memcmp(a->data, b->data, n);
	return c ? c : (a->len > b->len) - (a->len < b->len);
}

/* Our unique records named `name`, canonical and sorted. */
static int ours_named(const struct lm_dp *dp, const struct lm_dp_announce *a,
		      const char *name, struct canon *out)
{
	int n = 0;
	if (!strcmp(name, a->service)) {
		struct resource r = { .type = QTYPE_SRV };
		r.known.srv.port = dp->cfg.control_port;
		r.known.srv.name = (char *)a->host;
		canon_resource(&r, &out[n++]);
		out[n].type = QTYPE_TXT;
		memcpy(out[n].data, a->txt_raw, a->txt_len);
		out[n++].len = a->txt_len;
	} else if (!strcmp(name, a->host)) {
		for (int i = 0; i < a->n_addrs; i++) {
			out[n].type = QTYPE_A;
			memcpy(out[n].data, &a->addrs[i], 4);
			out[n++].len = 4;
		}
	}
	qsort(out, (size_t)n, sizeof(*out), canon_cmp);
	return n;
}

/* A record of ours with this type and canonical data? */
static int have(const struct canon *ours, int n, const struct canon *c)
{
	for (int i = 0; i < n; i++)
		if (!canon_cmp(&ours[i], c))
			return 1;
	return 0;
}

/*
 * Before libmdnsd sees a message from another process: a response
 * claiming one of our unique names with data we do not have is a
 * conflict; a probe for one while we probe is decided as RFC 6762 8.2
 * says (the lexicographically later set of records wins): when we win,
 * its authority records are dropped so libmdnsd does not give up ours.
 */
static void conflicts(struct message *m, void *arg)
{
	struct lm_dp_announce *a = arg;
	struct canon *ours = a->ours, *theirs = a->theirs;
	const char *names[2] = { a->service, a->host };
	if (!a->registered)
		return;
	unsigned total = (unsigned)m->ancount + m->nscount + m->arcount;
	int decided = 0;
	for (int k = 0; k < 2; k++) {
		int n_ours = ours_named(a->dp, a, names[k], ours), n_theirs = 0;
		for (unsigned i = 0; i < total; i++) {
			const struct resource *r = &m->an[i];
			int authority = i >= m->ancount &&
					i < (unsigned)m->ancount + m->nscount;
			if (strcmp(r->name, names[k]) || r->ttl == 0 ||
			    (r->type != QTYPE_SRV && r->type != QTYPE_TXT &&
			     r->type != QTYPE_A))
				continue;
			if (m->header.qr) {
				struct canon c;
				canon_resource(r, &c);
				if (!have(ours, n_ours, &c))
					a->conflict = 1;
			} else if (authority &&
				   n_theirs < LM_DNSSD_MAX_IFS + 2) {
				canon_resource(r, &theirs[n_theirs++]);
			}
		}
		/* one decision per probe, on the first of our names it
		 * claims (the service name before the host name), so the
		 * two probing laminads reach opposite ones */
		if (!n_theirs || decided ||
		    now_ms() - a->t_registered_ms > PROBING_MS)
			continue;
		decided = 1;
		qsort(theirs, (size_t)n_theirs, sizeof(*theirs), canon_cmp);
		int c = 0;
		for (int i = 0; !c && i < n_ours && i < n_theirs; i++)
			c = canon_cmp(&ours[i], &theirs[i]);
		if (!c)
			c = (n_ours > n_theirs) - (n_ours < n_theirs);
		if (c > 0)
			m->nscount = 0; /* we win: libmdnsd reads it not */
		else if (c < 0)
			a->conflict = 1;
	}
}

/* Every record sent again. */
static void refresh(struct lm_dp_announce *a)
{
	const char *names[5] = { LM_DNSSD_ENUM, LM_DNSSD_SERVICE, a->service,
				 a->service, a->host };
	const int types[5] = { QTYPE_PTR, QTYPE_PTR, QTYPE_SRV, QTYPE_TXT,
			       QTYPE_A };
	lm_mdns_ask_self(a->mdns, names, types, 5);
	a->t_refresh_ms = now_ms();
}

/* ---- the loop's calls ---- */

static void run(struct lm_dp *dp, struct lm_dp_announce *a)
{
	uint64_t now = now_ms();
	if (a->conflict && a->registered)
		on_conflict_seen(a);
	if (!a->registered && now >= a->t_register_ms)
		put_records(dp, a);
	if (a->registered && now - a->t_refresh_ms >= REFRESH_MS)
		refresh(a);
	uint64_t us = lm_mdns_output(a->mdns);
	uint64_t next = a->registered ? a->t_refresh_ms + REFRESH_MS
				       : a->t_register_ms;
	if (next > now && (next - now) * 1000 < us)
		us = (next - now) * 1000;
	a->due_tsc = rte_rdtsc() + us * a->tsc_hz / 1000000;
}

void lm_dp_announce_tick(struct lm_dp *dp)
{
	struct lm_dp_announce *a = dp->announce;
	if (a && rte_rdtsc() >= a->due_tsc)
		run(dp, a);
}

void lm_dp_announce_event(struct lm_dp *dp)
{
	struct lm_dp_announce *a = dp->announce;
	if (!a)
		return;
	lm_mdns_input(a->mdns);
	run(dp, a);
}

void lm_dp_announce_refresh(struct lm_dp *dp)
{
	struct lm_dp_announce *a = dp->announce;
	struct lm_dnssd_txt t;
	lm_error e;
	if (!a || !a->registered || !a->txt.r)
		return;
	resources(dp, a->cpu, &t);
	if (!txt_moved(&a->said, &t) ||
	    now_ms() - a->t_txt_ms < ANNOUNCE_MIN_MS)
		return;
	if (lm_dnssd_txt_encode(&t, a->txt_raw, sizeof(a->txt_raw),
				&a->txt_len, &e)) {
		lm_log("mDNS: TXT not updated: %s", e.msg);
		return;
	}
	a->said = t;
	a->t_txt_ms = now_ms();
	mdnsd_set_raw(a->d, a->txt.r, (const char *)a->txt_raw,
		      (unsigned short)a->txt_len);
	a->due_tsc = 0;
}

/* The IPv4 address --listen names: 0 with *any set for every address,
 * -EADDRNOTAVAIL for loopback, -EAFNOSUPPORT for an IPv6 one. */
static int listen_addr(const char *listen, struct in_addr *addr, int *any,
		       lm_error *e)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res;
	int rc = getaddrinfo(listen, NULL, &hints, &res);
	*any = 0;
	if (rc)
		return lm_fail(e, -EINVAL, "--listen %s: %s", listen,
			       gai_strerror(rc));
	if (res->ai_family == AF_INET) {
		*addr = ((struct sockaddr_in *)res->ai_addr)->sin_addr;
		*any = addr->s_addr == htonl(INADDR_ANY);
		rc = (ntohl(addr->s_addr) >> 24) == 127 ? -EADDRNOTAVAIL : 0;
	} else {
		const struct in6_addr *a6 =
			&((struct sockaddr_in6 *)res->ai_addr)->sin6_addr;
		*any = IN6_IS_ADDR_UNSPECIFIED(a6);
		rc = IN6_IS_ADDR_LOOPBACK(a6) ? -EADDRNOTAVAIL
		     : *any			  ? 0
						  : -EAFNOSUPPORT;
	}
	freeaddrinfo(res);
	if (rc == -EADDRNOTAVAIL)
		lm_fail(e, rc, "laminad listens on loopback (--listen %s): no "
			"other host could reach it", listen);
	else if (rc)
		lm_fail(e, rc, "--listen %s: only IPv4 addresses are announced",
			listen);
	return rc;
}

int lm_dp_announce_check(const struct lm_dp_config *c, lm_error *e)
{
	struct in_addr addr;
	int any;
	if (c->announce <= 0)
		return 0;
	int rc = listen_addr(c->listen, &addr, &any, e);
	return rc ? lm_fail_prefix(e, rc, "--announce") : 0;
}

int lm_dp_announce_start(struct lm_dp *dp, lm_error *e)
{
	struct in_addr addr;
	int any, rc;
	if (!dp->cfg.announce)
		return 0;
	rc = listen_addr(dp->cfg.listen, &addr, &any, e);
	if (rc && dp->cfg.announce < 0) {
		if (rc != -EADDRNOTAVAIL)
			lm_log("mDNS: not announced: %s", e->msg);
		return 0;
	}
	if (rc)
		return lm_fail_prefix(e, rc, "--announce");
	struct lm_dp_announce *a = calloc(1, sizeof(*a));
	if (!a)
		return lm_fail(e, -ENOMEM, "out of memory");
	if ((rc = lm_mdns_open(any ? NULL : &addr, &a->mdns, e))) {
		free(a);
		if (dp->cfg.announce > 0)
			return lm_fail_prefix(e, rc, "--announce");
		lm_log("not announced: %s", e->msg);
		return 0;
	}
	struct epoll_event ev = { .events = EPOLLIN,
				  .data.u64 = LM_DP_EV(LM_DP_EV_MDNS, 0) };
	if (epoll_ctl(dp->epfd, EPOLL_CTL_ADD, lm_mdns_fd(a->mdns), &ev)) {
		rc = lm_fail(e, -errno, "mDNS: epoll: %s", strerror(errno));
		lm_mdns_close(a->mdns);
		free(a);
		return rc;
	}
	int n;
	const struct lm_dnssd_if *ifs = lm_mdns_ifs(a->mdns, &n);
	for (int i = 0; i < n && a->n_addrs < LM_DNSSD_MAX_IFS; i++)
		a->addrs[a->n_addrs++] = ifs[i].addr;
	a->d = lm_mdns_daemon(a->mdns);
	a->n = 1;
	a->tsc_hz = dp->tsc_hz;
	a->rng = (unsigned)getpid() ^ (unsigned)now_ms() ^ 0x9e3779b9u;
	a->t_register_ms = now_ms() + jitter(a, REGISTER_JITTER_MS);
	lm_dnssd_cpu_model(a->cpu, sizeof(a->cpu));
	a->dp = dp;
	lm_mdns_set_filter(a->mdns, conflicts, a);
	dp->announce = a;
	return 0;
}

void lm_dp_announce_close(struct lm_dp *dp)
{
	struct lm_dp_announce *a = dp->announce;
	if (!a)
		return;
	if (a->registered)
		lm_log("mDNS: goodbye ('%s')", a->instance);
	lm_mdns_close(a->mdns); /* the goodbyes, then the socket */
	free(a);
	dp->announce = NULL;
}
