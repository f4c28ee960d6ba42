/*
 * discover.c: browsing for laminads (DNS-SD over mDNS, through libmdnsd
 * as a querier: dataplane/dnssd.h) and the fleet made of what answers and
 * what the devices cache remembers (discover.h).
 *
 * A browse asks for the PTR records of _lamina._tcp.local.; for each
 * instance it learns of it asks for its SRV and TXT records, and for each
 * SRV target its A records, until the time is up.  Everything that comes
 * in, asked for or announced unasked, lands in libmdnsd's cache, which is
 * read at the end.  A laminad answers within about 0.2 s (libmdnsd delays
 * shared answers 20-120 ms, laminad's loop looks every 100 ms), so the
 * three rounds take well under the default 1.5 s; libmdnsd asks again
 * after 1 s for what did not answer.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libmdnsd/mdnsd.h>

#include "lamina/fleet.h"

#include "agent.h"
#include "discover.h"
#include "record.h"

#define MAX_FOUND 1024
#define MAX_ASKED 4096

struct browse {
	struct lm_mdns *m;
	mdns_daemon_t *d;
	struct {
		char name[LM_DNSSD_NAME_MAX];
		int type;
	} *asked;
	int n_asked;
};

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Answers are read from the cache at the end: nothing to do on each. */
static int on_answer(mdns_answer_t *a, void *arg)
{
	(void)a;
	(void)arg;
	return 0;
}

static void ask(struct browse *b, const char *name, int type)
{
	for (int i = 0; i < b->n_asked; i++)
		if (b->asked[i].type == type && !strcmp(b->asked[i].name, name))
			return;
	if (b->n_asked == MAX_ASKED || strlen(name) >= LM_DNSSD_NAME_MAX)
		return;
	snprintf(b->asked[b->n_asked].name, LM_DNSSD_NAME_MAX, "%s", name);
	b->asked[b->n_asked++].type = type;
	mdnsd_query(b->d, name, type, on_answer, b);
}

/* Ask for what the instances and targets learnt of so far lack. */
static void follow(struct browse *b)
{
	mdns_answer_t *p = NULL, *s;
	while ((p = mdnsd_list(b->d, LM_DNSSD_SERVICE, QTYPE_PTR, p))) {
		char inst[LM_DNSSD_LABEL_MAX + 1];
		if (!p->rdname || lm_dnssd_instance_of(p->rdname, inst,
							sizeof(inst)))
			continue;
		ask(b, p->rdname, QTYPE_SRV);
		ask(b, p->rdname, QTYPE_TXT);
		for (s = NULL; (s = mdnsd_list(b->d, p->rdname, QTYPE_SRV, s));)
			if (s->rdname)
				ask(b, s->rdname, QTYPE_A);
	}
}

/* An address of host, preferably on the subnet of one of the interfaces
 * browsed on (the others may not be reachable from here). */
static int pick_address(struct browse *b, const char *host, char *out,
			size_t len)
{
	int n_ifs, found = 0;
	const struct lm_dnssd_if *ifs = lm_mdns_ifs(b->m, &n_ifs);
	for (mdns_answer_t *a = NULL;
	     (a = mdnsd_list(b->d, host, QTYPE_A, a));) {
		int near = 0;
		for (int i = 0; i < n_ifs; i++)
			near |= ((a->ip.s_addr ^ ifs[i].addr.s_addr) &
				 ifs[i].mask.s_addr) == 0;
		if (!found || near)
			inet_ntop(AF_INET, &a->ip, out, (socklen_t)len);
		if (near)
			return 1;
		found = 1;
	}
	return found;
}

/* The instance named by PTR target `service`, resolved; 0 or -EINVAL. */
static int resolve(struct browse *b, const char *service, lm_found *f)
{
	mdns_answer_t *srv = NULL, *txt = NULL;
	memset(f, 0, sizeof(*f));
	if (lm_dnssd_instance_of(service, f->name, sizeof(f->name)))
		return -EINVAL;
	while ((srv = mdnsd_list(b->d, service, QTYPE_SRV, srv)) &&
	       !srv->rdname)
		;
	while ((txt = mdnsd_list(b->d, service, QTYPE_TXT, txt)) &&
	       !txt->rdata)
		;
	if (!srv || !txt || !srv->srv.port ||
	    lm_dnssd_txt_decode(txt->rdata, txt->rdlen, &f->txt, NULL))
		return -EINVAL;
	f->port = srv->srv.port;
	snprintf(f->host, sizeof(f->host), "%s", srv->rdname);
	return pick_address(b, f->host, f->address, sizeof(f->address)) ? 0
									  : -EINVAL;
}

static int by_name(const void *x, const void *y)
{
	return strcmp(((const lm_found *)x)->name, ((const lm_found *)y)->name);
}

/* Every instance in the cache, resolved, once each. */
static int collect(struct browse *b, lm_found **out, int *n, int *skipped)
{
	lm_found *f = calloc(MAX_FOUND, sizeof(*f));
	char (*tried)[LM_DNSSD_LABEL_MAX + 1] = calloc(MAX_FOUND,
						       sizeof(*tried));
	int k = 0, n_tried = 0;
	if (!f || !tried) {
		free(f);
		free(tried);
		return -ENOMEM;
	}
	for (mdns_answer_t *p = NULL;
	     (p = mdnsd_list(b->d, LM_DNSSD_SERVICE, QTYPE_PTR, p)) &&
	     n_tried < MAX_FOUND;) {
		int dup = 0;
		if (!p->rdname || lm_dnssd_instance_of(p->rdname,
							tried[n_tried],
							sizeof(tried[0])))
			continue;
		for (int i = 0; i < n_tried && !dup; i++)
			dup = !strcmp(tried[i], tried[n_tried]);
		if (dup)
			continue;
		n_tried++;
		k += resolve(b, p->rdname, &f[k]) == 0;
	}
	free(tried);
	qsort(f, (size_t)k, sizeof(*f), by_name);
	*out = f;
	*n = k;
	if (skipped)
		*skipped = n_tried - k;
	return 0;
}

int lm_discover(unsigned timeout_ms, lm_found **out, int *n, int *skipped,
		lm_error *e)
{
	struct browse b = { 0 };
	int rc;
	*out = NULL;
	*n = 0;
	if (skipped)
		*skipped = 0;
	rc = lm_mdns_open(NULL, &b.m, e);
	if (rc == -ENODEV)
		return 0; /* loopback only: nobody to ask */
	if (rc)
		return rc;
	if (!(b.asked = calloc(MAX_ASKED, sizeof(*b.asked)))) {
		lm_mdns_close(b.m);
		return lm_fail(e, -ENOMEM, "out of memory");
	}
	b.d = lm_mdns_daemon(b.m);
	mdnsd_query(b.d, LM_DNSSD_SERVICE, QTYPE_PTR, on_answer, &b);
	uint64_t deadline = now_ms() + timeout_ms;
	for (;;) {
		follow(&b);
		uint64_t us = lm_mdns_output(b.m), now = now_ms();
		if (now >= deadline)
			break;
		uint64_t wait = us / 1000 + 1;
		if (wait > deadline - now)
			wait = deadline - now;
		struct pollfd pf = { .fd = lm_mdns_fd(b.m), .events = POLLIN };
		if (poll(&pf, 1, (int)wait) > 0)
			lm_mdns_input(b.m);
	}
	rc = collect(&b, out, n, skipped);
	free(b.asked);
	/* a querier: nothing published, so no goodbyes go out */
	lm_mdns_close(b.m);
	return rc ? lm_fail(e, rc, "out of memory") : 0;
}

/* ---- the fleet ---- */

const char *lm_fleet_own_fingerprint(void)
{
	/* the key this lamina proves on every control connection
	 * (lm_agent_fleet_key), read once; not made here: listing devices
	 * makes no key, and without one every device is "unknown" */
	static char fp[LM_FLEET_FP_CHARS + 1];
	static int done;
	if (!done) {
		char path[PATH_MAX];
		lm_fleet_key key;
		lm_error ignore;
		done = 1;
		if (!lm_fleet_key_path(path, sizeof(path), &ignore) &&
		    !lm_fleet_key_load(path, &key, &ignore))
			lm_fleet_fingerprint(&key, fp);
		lm_fleet_key_wipe(&key);
	}
	return fp;
}

const char *lm_fleet_member(const char *fp)
{
	const char *ours = lm_fleet_own_fingerprint();
	if (!*ours || !fp || !*fp)
		return "unknown";
	return strcmp(ours, fp) ? "no" : "yes";
}

/* Seconds a device found by discovery is kept after its last answer. */
static int64_t age_out_s(void)
{
	const char *v = getenv("LAMINA_DEVICES_AGE_OUT");
	char *end;
	long long s = v && *v ? strtoll(v, &end, 10) : -1;
	return s >= 0 && v && !*end ? s : LM_DEVCACHE_AGE_OUT_S;
}

/* "HOST", "HOST:PORT" or "[V6]:PORT" into host and port (LM_CONTROL_PORT
 * when not given); 0 or -EINVAL. */
static int split_addr(const char *a, char *host, size_t len, int *port)
{
	const char *colon = NULL;
	*port = LM_CONTROL_PORT;
	if (*a == '[') {
		const char *end = strchr(a, ']');
		if (!end || (end[1] && end[1] != ':'))
			return -EINVAL;
		snprintf(host, len, "%.*s", (int)(end - a - 1), a + 1);
		colon = end[1] ? end + 1 : NULL;
	} else if ((colon = strchr(a, ':')) && !strchr(colon + 1, ':')) {
		snprintf(host, len, "%.*s", (int)(colon - a), a);
	} else {
		snprintf(host, len, "%s", a);
		colon = NULL;
	}
	if (colon) {
		char *end;
		long p = strtol(colon + 1, &end, 10);
		if (!colon[1] || *end || p < 1 || p > 65535)
			return -EINVAL;
		*port = (int)p;
	}
	return *host ? 0 : -EINVAL;
}

/* The record a browse would have found, from a Describe reply. */
static void from_describe(const Lamina__DescribeReply *d, lm_found *f)
{
	struct lm_dnssd_txt *t = &f->txt;
	snprintf(t->version, sizeof(t->version), "%s", d->version);
	t->cores = d->n_worker_cores;
	t->cores_free = d->n_worker_cores > d->n_busy_cores
				? d->n_worker_cores - d->n_busy_cores
				: 0;
	t->numa = d->n_numa;
	for (size_t i = 0; i < d->n_numa; i++) {
		t->mem += d->numa[i]->total_bytes;
		t->mem_free += d->numa[i]->free_bytes;
		t->huge += d->numa[i]->hugepages_free *
			   d->numa[i]->hugepage_bytes;
	}
	t->ingress = d->ingress_port;
	t->http = d->http_port;
	t->deployments = d->n_deployments;
}

int lm_discover_direct(const char *const *addr, const char *const *names,
		       int n_addr, unsigned timeout_ms, lm_found *out,
		       lm_error *e)
{
	int k = 0;
	for (int i = 0; i < n_addr; i++) {
		char host[LM_ADDR_MAX], ip[INET_ADDRSTRLEN];
		struct addrinfo hints = { .ai_family = AF_INET,
					  .ai_socktype = SOCK_STREAM },
				*res = NULL;
		Lamina__Reply *rep = NULL;
		lm_error why;
		int port, g;
		if (split_addr(addr[i], host, sizeof(host), &port))
			return lm_fail(e, -EINVAL, "'%s': not HOST[:PORT]",
				       addr[i]);
		if ((g = getaddrinfo(host, NULL, &hints, &res)))
			return lm_fail(e, -EINVAL, "'%s': %s", addr[i],
				       gai_strerror(g));
		inet_ntop(AF_INET,
			  &((struct sockaddr_in *)res->ai_addr)->sin_addr, ip,
			  sizeof(ip));
		freeaddrinfo(res);
		if (lm_agent_describe(ip, port, (int)timeout_ms, &rep, &why)) {
			fprintf(stderr, "lamina devices: no laminad answers at "
				"%s: %s\n", addr[i], why.msg);
			continue;
		}
		lm_found *f = &out[k++];
		memset(f, 0, sizeof(*f));
		snprintf(f->name, sizeof(f->name), "%s",
			 names && names[i] ? names[i] : rep->describe->name);
		snprintf(f->address, sizeof(f->address), "%s", ip);
		f->port = (uint16_t)port;
		from_describe(rep->describe, f);
		lamina__reply__free_unpacked(rep, NULL);
	}
	return k;
}

int lm_fleet_list(const char *state, unsigned timeout_ms,
		  const lm_found *extra, int n_extra, lm_devcache *c,
		  lm_error *e)
{
	char dir[4096], path[4200];
	lm_found *f = NULL;
	int n = 0, rc;
	if ((rc = lm_state_dir(state, dir, sizeof(dir), e)))
		return rc;
	snprintf(path, sizeof(path), "%s/%s", dir, LM_DEVCACHE_FILE);
	if ((rc = lm_devcache_load(path, c, e)) ||
	    (rc = lm_discover(timeout_ms, &f, &n, NULL, e)))
		return rc;
	if (n_extra > 0) {
		/* a laminad asked directly that also answered the browse
		 * is the browse's (the name it announces) */
		lm_found *all = realloc(f, (size_t)(n + n_extra) * sizeof(*f));
		if (!all) {
			free(f);
			return lm_fail(e, -ENOMEM, "out of memory");
		}
		f = all;
		for (int j = 0; j < n_extra; j++) {
			int dup = 0;
			for (int i = 0; i < n && !dup; i++)
				dup = !strcmp(f[i].address, extra[j].address) &&
				      f[i].port == extra[j].port;
			if (!dup)
				f[n++] = extra[j];
		}
	}
	int64_t now = (int64_t)time(NULL);
	rc = lm_devcache_merge(c, f, n, now, e);
	free(f);
	if (rc)
		return rc;
	lm_devcache_age_out(c, now, age_out_s());
	lm_devcache_sort(c);
	return lm_devcache_save(path, c, e);
}

/* Whether x goes into a plan: a laminad of this fleet (or of none known)
 * that answers with a free core and free memory, or one that answered
 * before on a host added by hand, where deploy starts it again over ssh
 * (its last record gives its cores and memory; a host never heard from
 * has none: it is listed, not planned for). */
static int plannable(const lm_known *x)
{
	if (!x->has_txt || !strcmp(lm_fleet_member(x->txt.fp), "no"))
		return 0;
	if (x->answering)
		return x->txt.cores_free > 0 && x->txt.mem_free > 0;
	return x->ssh[0] && x->port > 0 && x->txt.cores > 0 &&
	       x->txt.mem_free > 0;
}

int lm_fleet_devices(const lm_devcache *c, lm_devices **out, lm_error *e)
{
	int n = 0, k = 0;
	lm_devices *d;
	*out = NULL;
	for (int i = 0; i < c->n; i++)
		n += plannable(&c->dev[i]);
	if (!n)
		return 0;
	if (lm_devices_create(n, &d))
		return lm_fail(e, -ENOMEM, "out of memory");
	for (int i = 0; i < c->n; i++) {
		const lm_known *x = &c->dev[i];
		if (!plannable(x))
			continue;
		lm_device *v = &d->dev[k++];
		/* a laminad started afresh has every core free */
		uint64_t cores = x->answering ? x->txt.cores_free : x->txt.cores;
		snprintf(v->name, sizeof(v->name), "%s", x->name);
		snprintf(v->address, sizeof(v->address), "%s:%d", x->address,
			 x->port);
		if (lm_devcache_ssh_dest(x, v->ssh, sizeof(v->ssh))) {
			lm_devices_free(d);
			return lm_fail(e, -ENAMETOOLONG, "device '%s': its ssh "
				       "destination is longer than %zu bytes",
				       x->name, sizeof(v->ssh) - 1);
		}
		v->cores = cores > 4096 ? 4096 : (int)cores;
		v->memory_bytes = x->txt.mem_free > LM_BYTES_MAX
					  ? LM_BYTES_MAX
					  : (double)x->txt.mem_free;
	}
	for (int a = 0; a < n; a++)
		for (int b = 0; b < n; b++)
			if (a != b)
				d->links[a * n + b] = (lm_link){
					1, LM_DISCOVER_LINK_US,
					LM_DISCOVER_LINK_GBPS };
	*out = d;
	return 0;
}

int lm_fleet_default(const char *cmd, lm_devices **out, lm_devcache *c,
		     int *fleet, lm_error *e)
{
	int rc;
	*out = NULL;
	*fleet = 0;
	if (lm_fleet_list(NULL, LM_DISCOVER_MS, NULL, 0, c, e)) {
		lm_found *f = NULL;
		int n = 0;
		fprintf(stderr, "lamina %s: devices cache: %s (passed over)\n",
			cmd, e->msg);
		lm_devcache_free(c);
		if (lm_discover(LM_DISCOVER_MS, &f, &n, NULL, e) == 0)
			lm_devcache_merge(c, f, n, (int64_t)time(NULL), e);
		free(f);
	}
	if ((rc = lm_fleet_devices(c, out, e)))
		return rc;
	if (*out) {
		*fleet = 1;
		return 0;
	}
	return lm_devices_local(out, e);
}

int lm_fleet_this_host(const lm_devices *d)
{
	struct ifaddrs *all;
	int found = -1;
	if (getifaddrs(&all) != 0)
		return -1;
	for (int i = 0; i < d->n && found < 0; i++) {
		char ip[LM_ADDR_MAX];
		struct in_addr a;
		snprintf(ip, sizeof(ip), "%s", d->dev[i].address);
		ip[strcspn(ip, ":")] = '\0';
		if (inet_pton(AF_INET, ip, &a) != 1)
			continue;
		if ((ntohl(a.s_addr) >> 24) == 127)
			found = i;
		for (struct ifaddrs *f = all; f && found < 0; f = f->ifa_next)
			if (f->ifa_addr && f->ifa_addr->sa_family == AF_INET &&
			    ((struct sockaddr_in *)f->ifa_addr)->sin_addr.s_addr ==
				    a.s_addr)
				found = i;
	}
	freeifaddrs(all);
	return found;
}
