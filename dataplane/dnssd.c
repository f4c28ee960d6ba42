/*
 * dnssd.c: laminad's DNS-SD records and the mDNS socket under libmdnsd
 * (dnssd.h has the format and why packets are parsed here).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <libmdnsd/mdnsd.h>

#include "dnssd.h"

/* ---- TXT ---- */

enum { K_TXTVERS, K_V, K_CORES, K_CORES_FREE, K_MEM, K_MEM_FREE, K_NUMA,
       K_HUGE, K_INGRESS, K_HTTP, K_DEPS, K_CPU, K_FP, K_COUNT };

static const char *const keys[K_COUNT] = {
	"txtvers", "v", "cores", "cores_free", "mem", "mem_free", "numa",
	"huge", "ingress", "http", "deps", "cpu", "fp",
};

/* the keys a record must have to be of use */
#define REQUIRED (1u << K_V | 1u << K_CORES | 1u << K_CORES_FREE | \
		  1u << K_MEM | 1u << K_MEM_FREE)

static int printable(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x20 || s[i] > 0x7e)
			return 0;
	return 1;
}

/* Append "key=value" as one length-prefixed string. */
static int put(uint8_t *out, size_t cap, size_t *off, const char *key,
	       const char *val)
{
	size_t k = strlen(key), v = strlen(val);
	if (k + 1 + v > 255 || *off + 1 + k + 1 + v > cap)
		return -ENOSPC;
	out[(*off)++] = (uint8_t)(k + 1 + v);
	memcpy(out + *off, key, k);
	out[*off + k] = '=';
	memcpy(out + *off + k + 1, val, v);
	*off += k + 1 + v;
	return 0;
}

int lm_dnssd_txt_encode(const struct lm_dnssd_txt *t, uint8_t *out,
			size_t cap, size_t *len, lm_error *e)
{
	char num[K_COUNT][24];
	const char *val[K_COUNT];
	const uint64_t nums[K_COUNT] = {
		[K_TXTVERS] = LM_DNSSD_TXT_VERSION, [K_CORES] = t->cores,
		[K_CORES_FREE] = t->cores_free, [K_MEM] = t->mem,
		[K_MEM_FREE] = t->mem_free, [K_NUMA] = t->numa,
		[K_HUGE] = t->huge, [K_INGRESS] = t->ingress,
		[K_HTTP] = t->http, [K_DEPS] = t->deployments,
	};
	size_t off = 0;
	for (int k = 0; k < K_COUNT; k++) {
		snprintf(num[k], sizeof(num[k]), "%llu",
			 (unsigned long long)nums[k]);
		val[k] = num[k];
	}
	val[K_V] = t->version;
	val[K_CPU] = t->cpu;
	val[K_FP] = t->fp;
	for (int k = 0; k < K_COUNT; k++) {
		if (k == K_FP && !*t->fp)
			continue; /* no fleet key: no fp key */
		if (!printable(val[k], strlen(val[k])))
			return lm_fail(e, -EINVAL, "TXT key %s: not printable "
				       "text", keys[k]);
		if (put(out, cap, &off, keys[k], val[k]))
			return lm_fail(e, -ENOSPC, "TXT key %s: the record is "
				       "longer than %zu bytes", keys[k], cap);
	}
	*len = off;
	return 0;
}

/* A decimal number of at most `max`; 0 or -EINVAL. */
static int number(const char *s, size_t n, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	if (n == 0 || n > 20)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		unsigned d = (unsigned)(s[i] - '0');
		if (v > (max - d) / 10)
			return -EINVAL;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

static int text(const char *s, size_t n, char *out, size_t cap)
{
	if (n >= cap || !printable(s, n))
		return -EINVAL;
	memcpy(out, s, n);
	out[n] = '\0';
	return 0;
}

int lm_dnssd_txt_decode(const uint8_t *rdata, size_t len,
			struct lm_dnssd_txt *t, lm_error *e)
{
	static const uint64_t max[K_COUNT] = {
		[K_TXTVERS] = 255, [K_CORES] = UINT32_MAX,
		[K_CORES_FREE] = UINT32_MAX, [K_MEM] = UINT64_MAX,
		[K_MEM_FREE] = UINT64_MAX, [K_NUMA] = UINT32_MAX,
		[K_HUGE] = UINT64_MAX, [K_INGRESS] = 65535, [K_HTTP] = 65535,
		[K_DEPS] = UINT32_MAX,
	};
	unsigned seen = 0;
	size_t off = 0;
	memset(t, 0, sizeof(*t));
	while (off < len) {
		size_t n = rdata[off++];
		if (n > len - off)
			return lm_fail(e, -EINVAL, "TXT: a string of %zu bytes "
				       "where %zu remain", n, len - off);
		const char *s = (const char *)rdata + off;
		const char *eq = memchr(s, '=', n);
		off += n;
		if (!eq)
			continue; /* empty, or a key without a value */
		size_t kl = (size_t)(eq - s), vl = n - kl - 1;
		int k = 0;
		while (k < K_COUNT && (strlen(keys[k]) != kl ||
				       memcmp(keys[k], s, kl)))
			k++;
		if (k == K_COUNT || (seen & 1u << k))
			continue; /* unknown, or not the first */
		seen |= 1u << k;
		uint64_t v = 0;
		int rc;
		switch (k) {
		case K_V:
			rc = text(eq + 1, vl, t->version, sizeof(t->version));
			break;
		case K_CPU:
			rc = text(eq + 1, vl, t->cpu, sizeof(t->cpu));
			break;
		case K_FP:
			rc = text(eq + 1, vl, t->fp, sizeof(t->fp));
			break;
		default:
			rc = number(eq + 1, vl, max[k], &v);
		}
		if (rc)
			return lm_fail(e, -EINVAL, "TXT key %s: not a valid "
				       "value", keys[k]);
		switch (k) {
		case K_CORES: t->cores = (uint32_t)v; break;
		case K_CORES_FREE: t->cores_free = (uint32_t)v; break;
		case K_MEM: t->mem = v; break;
		case K_MEM_FREE: t->mem_free = v; break;
		case K_NUMA: t->numa = (uint32_t)v; break;
		case K_HUGE: t->huge = v; break;
		case K_INGRESS: t->ingress = (uint16_t)v; break;
		case K_HTTP: t->http = (uint16_t)v; break;
		case K_DEPS: t->deployments = (uint32_t)v; break;
		default: break;
		}
	}
	for (int k = 0; k < K_COUNT; k++)
		if ((REQUIRED & 1u << k) && !(seen & 1u << k))
			return lm_fail(e, -EINVAL, "TXT: no key %s", keys[k]);
	return 0;
}

/* ---- names ---- */

void lm_dnssd_instance(const char *name, unsigned n, char *out, size_t len)
{
	char suffix[16] = "";
	if (n >= 2)
		snprintf(suffix, sizeof(suffix), " (%u)", n);
	size_t room = LM_DNSSD_LABEL_MAX - strlen(suffix), k = 0;
	if (room > len - 1 - strlen(suffix))
		room = len - 1 - strlen(suffix);
	for (; name[k] && k < room; k++) {
		char c = name[k];
		out[k] = c == '.' || c < 0x20 || c > 0x7e ? '-' : c;
	}
	snprintf(out + k, len - k, "%s", suffix);
}

void lm_dnssd_service_name(const char *instance, char *out, size_t len)
{
	snprintf(out, len, "%.63s.%s", instance, LM_DNSSD_SERVICE);
}

int lm_dnssd_instance_of(const char *name, char *out, size_t len)
{
	size_t n = strlen(name), s = strlen(LM_DNSSD_SERVICE);
	if (n < s + 2 || strcmp(name + n - s, LM_DNSSD_SERVICE) ||
	    name[n - s - 1] != '.' || n - s - 1 > LM_DNSSD_LABEL_MAX ||
	    n - s - 1 >= len)
		return -EINVAL;
	memcpy(out, name, n - s - 1);
	out[n - s - 1] = '\0';
	/* one label: a dot inside it could not have come from a laminad */
	return strchr(out, '.') || !printable(out, strlen(out)) ? -EINVAL : 0;
}

void lm_dnssd_host(const char *instance, uint16_t port, char *out,
		   size_t len)
{
	char label[LM_DNSSD_LABEL_MAX + 1];
	size_t k = 0;
	int dash = 1; /* no '-' first, nor two in a row */
	for (const char *p = instance; *p && k < 48; p++) {
		char c = *p;
		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
			label[k++] = c;
			dash = 0;
		} else if (!dash) {
			label[k++] = '-';
			dash = 1;
		}
	}
	while (k && label[k - 1] == '-')
		k--;
	label[k] = '\0';
	snprintf(out, len, "laminad-%u%s%s.local.", port, k ? "-" : "", label);
}

void lm_dnssd_cpu_model(char *out, size_t len)
{
	FILE *f = fopen("/proc/cpuinfo", "r");
	char line[512];
	out[0] = '\0';
	while (f && fgets(line, sizeof(line), f)) {
		if (strncmp(line, "model name", 10))
			continue;
		const char *v = strchr(line, ':');
		if (!v)
			break;
		v++;
		while (*v == ' ' || *v == '\t')
			v++;
		size_t n = strcspn(v, "\n"), k = 0;
		while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
			n--;
		for (; k < n && k + 1 < len; k++)
			out[k] = v[k] < 0x20 || v[k] > 0x7e ? '?' : v[k];
		out[k] = '\0';
		break;
	}
	if (f)
		fclose(f);
}

/* ---- parsing a datagram into libmdnsd's struct message ---- */

#define MAX_QUESTIONS 64
#define MAX_RECORDS 128

/* Room in m's storage (m->_packet), 8-byte aligned as libmdnsd's is. */
static void *arena(struct message *m, size_t *used, size_t n)
{
	size_t at = (*used + 7) & ~(size_t)7;
	if (at > sizeof(m->_packet) || n > sizeof(m->_packet) - at)
		return NULL;
	*used = at + n;
	return m->_packet + at;
}

/*
 * The name at *off in p (n bytes), dotted with a final dot as libmdnsd
 * writes names ("" for the root), into out (LM_DNSSD_NAME_MAX bytes);
 * *off moves past it.  Each pointer must lead strictly before the segment
 * it is found in (so the walk ends) and past the header.
 */
static int name_at(const uint8_t *p, size_t n, size_t *off, char *out)
{
	size_t pos = *off, segment = *off, end = 0, k = 0;
	for (;;) {
		if (pos >= n)
			return -EINVAL;
		uint8_t c = p[pos];
		if (c == 0) {
			if (!end)
				end = pos + 1;
			break;
		}
		if ((c & 0xc0) == 0xc0) {
			if (pos + 1 >= n)
				return -EINVAL;
			size_t to = (size_t)(c & 0x3f) << 8 | p[pos + 1];
			if (!end)
				end = pos + 2;
			if (to < 12 || to >= segment)
				return -EINVAL;
			pos = segment = to;
			continue;
		}
		if (c & 0xc0) /* 01 and 10: reserved label types */
			return -EINVAL;
		if (c > n - pos - 1 || k + c + 1 >= LM_DNSSD_NAME_MAX)
			return -EINVAL;
		if (memchr(p + pos + 1, 0, c))
			return -EINVAL;
		memcpy(out + k, p + pos + 1, c);
		k += c;
		out[k++] = '.';
		pos += 1 + (size_t)c;
	}
	out[k] = '\0';
	*off = end;
	return 0;
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* A name into m's storage. */
static char *name_into(struct message *m, size_t *used, const uint8_t *p,
		       size_t n, size_t *off)
{
	char buf[LM_DNSSD_NAME_MAX];
	if (name_at(p, n, off, buf))
		return NULL;
	char *s = arena(m, used, strlen(buf) + 1);
	if (s)
		memcpy(s, buf, strlen(buf) + 1);
	return s;
}

static int record(struct message *m, size_t *used, const uint8_t *p,
		  size_t n, size_t *off, struct resource *r)
{
	if (!(r->name = name_into(m, used, p, n, off)) || n - *off < 10)
		return -EINVAL;
	const uint8_t *h = p + *off;
	r->type = get16(h);
	r->class = get16(h + 2);
	r->ttl = (unsigned long)get16(h + 4) << 16 | get16(h + 6);
	size_t rdlen = get16(h + 8), at = *off + 10, end = at + rdlen;
	if (rdlen > n - at)
		return -EINVAL;
	*off = end;
	switch (r->type) {
	case QTYPE_NS:
	case QTYPE_CNAME:
	case QTYPE_PTR:
		/* as libmdnsd's parser: the name, no rdata */
		if (!(r->known.ptr.name = name_into(m, used, p, n, &at)) ||
		    at != end)
			return -EINVAL;
		return 0;
	case QTYPE_SRV:
		if (rdlen < 7)
			return -EINVAL;
		r->known.srv.priority = get16(p + at);
		r->known.srv.weight = get16(p + at + 2);
		r->known.srv.port = get16(p + at + 4);
		at += 6;
		if (!(r->known.srv.name = name_into(m, used, p, n, &at)) ||
		    at != end)
			return -EINVAL;
		return 0;
	case QTYPE_A:
		if (rdlen != 4 || !(r->known.a.name = arena(m, used, 16)))
			return -EINVAL;
		memcpy(&r->known.a.ip, p + at, 4);
		snprintf(r->known.a.name, 16, "%u.%u.%u.%u", p[at], p[at + 1],
			 p[at + 2], p[at + 3]);
		break;
	case QTYPE_AAAA:
		if (rdlen != 16)
			return -EINVAL;
		memcpy(&r->known.aaaa.ip6, p + at, 16);
		break;
	default:
		break;
	}
	r->rdlength = (unsigned short)rdlen;
	if (rdlen) {
		if (!(r->rdata = arena(m, used, rdlen)))
			return -EINVAL;
		memcpy(r->rdata, p + at, rdlen);
	}
	return 0;
}

int lm_dnssd_parse(const uint8_t *p, size_t n, struct message *m)
{
	size_t used = 0, off = 12;
	if (n < 12 || n > LM_DNSSD_MAX_PACKET)
		return -EINVAL;
	unsigned qd = get16(p + 4), an = get16(p + 6), ns = get16(p + 8),
		 ar = get16(p + 10);
	if (qd > MAX_QUESTIONS || an + ns + ar > MAX_RECORDS)
		return -EINVAL;
	m->id = get16(p);
	m->header.qr = p[2] >> 7 & 1;
	m->header.opcode = p[2] >> 3 & 15;
	m->header.aa = p[2] >> 2 & 1;
	m->header.tc = p[2] >> 1 & 1;
	m->header.rd = p[2] & 1;
	m->header.ra = p[3] >> 7 & 1;
	m->header.z = p[3] >> 4 & 7;
	m->header.rcode = p[3] & 15;
	m->qdcount = (unsigned short)qd;
	m->ancount = (unsigned short)an;
	m->nscount = (unsigned short)ns;
	m->arcount = (unsigned short)ar;
	/* one array, as libmdnsd lays them out: with no answers, m->an is
	 * m->ns (its probe check reads the authority records through an) */
	m->qd = arena(m, &used, qd * sizeof(struct question));
	struct resource *rr = arena(m, &used,
				    (an + ns + ar) * sizeof(struct resource));
	if (!m->qd || !rr)
		return -EINVAL;
	m->an = rr;
	m->ns = rr + an;
	m->ar = rr + an + ns;
	for (unsigned i = 0; i < qd; i++) {
		if (!(m->qd[i].name = name_into(m, &used, p, n, &off)) ||
		    n - off < 4)
			return -EINVAL;
		m->qd[i].type = get16(p + off);
		m->qd[i].class = get16(p + off + 2);
		off += 4;
	}
	for (unsigned i = 0; i < an + ns + ar; i++)
		if (record(m, &used, p, n, &off, &rr[i]))
			return -EINVAL;
	m->_len = (int)used;
	return 0;
}

/* ---- the socket and the daemon ---- */

#define ECHOES 16   /* datagrams remembered to recognise our own */
#define ECHO_MS 5000
#define FRAME 1400  /* the largest datagram libmdnsd makes */

struct lm_mdns {
	int fd;
	mdns_daemon_t *d;
	struct lm_dnssd_if ifs[LM_DNSSD_MAX_IFS];
	int n_ifs;
	struct {
		uint64_t hash, t_ms;
	} sent[ECHOES];
	unsigned next_sent;
	lm_mdns_filter filter;
	void *filter_arg;
	uint64_t dropped;
	int disco; /* a service enumeration question to answer */
	struct question self[8];
	uint8_t pkt[LM_DNSSD_MAX_PACKET + 1];
	struct message msg; /* ~70 KiB: libmdnsd's */
};

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* FNV-1a: our own datagrams, recognised when multicast brings them back */
static uint64_t hash(const uint8_t *p, size_t n)
{
	uint64_t h = 14695981039346656037ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return h ^ n;
}

static int find_ifs(struct lm_mdns *m, const struct in_addr *only,
		    lm_error *e)
{
	struct ifaddrs *all, *a;
	if (getifaddrs(&all) != 0)
		return lm_fail(e, -errno, "mDNS: cannot list the interfaces: "
			       "%s", strerror(errno));
	for (a = all; a && m->n_ifs < LM_DNSSD_MAX_IFS; a = a->ifa_next) {
		const unsigned want = IFF_UP | IFF_MULTICAST;
		if (!a->ifa_addr || a->ifa_addr->sa_family != AF_INET ||
		    (a->ifa_flags & want) != want ||
		    (a->ifa_flags & IFF_LOOPBACK))
			continue;
		struct in_addr ip = ((struct sockaddr_in *)a->ifa_addr)->sin_addr;
		if (only && ip.s_addr != only->s_addr)
			continue;
		struct lm_dnssd_if *f = &m->ifs[m->n_ifs];
		f->index = (int)if_nametoindex(a->ifa_name);
		if (!f->index)
			continue;
		f->addr = ip;
		f->mask = a->ifa_netmask ? ((struct sockaddr_in *)
					    a->ifa_netmask)->sin_addr
					 : (struct in_addr){ 0 };
		snprintf(f->name, sizeof(f->name), "%s", a->ifa_name);
		m->n_ifs++;
	}
	freeifaddrs(all);
	if (!m->n_ifs) {
		char ip[INET_ADDRSTRLEN] = "";
		if (only)
			inet_ntop(AF_INET, only, ip, sizeof(ip));
		return lm_fail(e, -ENODEV, only ? "mDNS: no multicast "
			       "interface holds %s" : "mDNS: no multicast "
			       "interface but loopback%s", ip);
	}
	return 0;
}

/* Whether interface index i is listed before entry k (joined already). */
static int seen_index(const struct lm_mdns *m, int k)
{
	for (int j = 0; j < k; j++)
		if (m->ifs[j].index == m->ifs[k].index)
			return 1;
	return 0;
}

static int sock_open(struct lm_mdns *m, lm_error *e)
{
	int one = 1, zero = 0, ttl = 255;
	unsigned char loop = 1;
	struct sockaddr_in any = { .sin_family = AF_INET,
				   .sin_port = htons(LM_DNSSD_PORT) };
	m->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (m->fd < 0)
		return lm_fail(e, -errno, "mDNS: socket: %s", strerror(errno));
	/* other responders (avahi) share the port; IP_MULTICAST_ALL off:
	 * only the groups joined here, on the interfaces joined here */
	if (setsockopt(m->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    setsockopt(m->fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) ||
	    setsockopt(m->fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one)) ||
	    setsockopt(m->fd, IPPROTO_IP, IP_MULTICAST_ALL, &zero,
		       sizeof(zero)) ||
	    setsockopt(m->fd, IPPROTO_IP, IP_MULTICAST_TTL, &ttl,
		       sizeof(ttl)) ||
	    setsockopt(m->fd, IPPROTO_IP, IP_MULTICAST_LOOP, &loop,
		       sizeof(loop)))
		return lm_fail(e, -errno, "mDNS: socket options: %s",
			       strerror(errno));
	if (bind(m->fd, (struct sockaddr *)&any, sizeof(any)) != 0)
		return lm_fail(e, -errno, "mDNS: cannot bind UDP port %d: %s",
			       LM_DNSSD_PORT, strerror(errno));
	for (int k = 0; k < m->n_ifs; k++) {
		struct ip_mreqn mr = { .imr_address = m->ifs[k].addr,
				       .imr_ifindex = m->ifs[k].index };
		inet_pton(AF_INET, LM_DNSSD_GROUP, &mr.imr_multiaddr);
		if (!seen_index(m, k) &&
		    setsockopt(m->fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mr,
			       sizeof(mr)) != 0)
			return lm_fail(e, -errno, "mDNS: cannot join %s on %s: "
				       "%s", LM_DNSSD_GROUP, m->ifs[k].name,
				       strerror(errno));
	}
	return 0;
}

int lm_mdns_open(const struct in_addr *only, struct lm_mdns **out,
		 lm_error *e)
{
	struct lm_mdns *m = calloc(1, sizeof(*m));
	int rc;
	*out = NULL;
	if (!m)
		return lm_fail(e, -ENOMEM, "out of memory");
	m->fd = -1;
	if ((rc = find_ifs(m, only, e)) || (rc = sock_open(m, e)))
		goto fail;
	if (!(m->d = mdnsd_new(QCLASS_IN, FRAME))) {
		rc = lm_fail(e, -ENOMEM, "out of memory");
		goto fail;
	}
	*out = m;
	return 0;
fail:
	if (m->fd >= 0)
		close(m->fd);
	free(m);
	return rc;
}

struct mdns_daemon *lm_mdns_daemon(struct lm_mdns *m)
{
	return m->d;
}

int lm_mdns_fd(const struct lm_mdns *m)
{
	return m->fd;
}

const struct lm_dnssd_if *lm_mdns_ifs(const struct lm_mdns *m, int *n)
{
	*n = m->n_ifs;
	return m->ifs;
}

void lm_mdns_set_filter(struct lm_mdns *m, lm_mdns_filter f, void *arg)
{
	m->filter = f;
	m->filter_arg = arg;
}

uint64_t lm_mdns_dropped(const struct lm_mdns *m)
{
	return m->dropped;
}

static int ours(struct lm_mdns *m, const uint8_t *p, size_t n)
{
	uint64_t h = hash(p, n), now = now_ms();
	for (int i = 0; i < ECHOES; i++)
		if (m->sent[i].hash == h && now - m->sent[i].t_ms < ECHO_MS)
			return 1;
	return 0;
}

static int known_if(const struct lm_mdns *m, int index)
{
	for (int k = 0; k < m->n_ifs; k++)
		if (m->ifs[k].index == index)
			return 1;
	return 0;
}

/*
 * Service enumeration (RFC 6763 section 9): a question for
 * _services._dns-sd._udp.local. makes libmdnsd drop, until mdnsd_step is
 * next called, every record it is about to send but that PTR (its "disco"
 * mode).  So such a question is taken out of the query it came in and
 * asked alone after the rest is answered (lm_mdns_output).
 */
static void take_disco(struct lm_mdns *m)
{
	int k = 0;
	for (int i = 0; i < m->msg.qdcount; i++) {
		if (!strcmp(m->msg.qd[i].name, LM_DNSSD_ENUM))
			m->disco = 1;
		else
			m->msg.qd[k++] = m->msg.qd[i];
	}
	m->msg.qdcount = (unsigned short)k;
}

int lm_mdns_input(struct lm_mdns *m)
{
	int given = 0;
	for (int i = 0; i < 64; i++) {
		struct sockaddr_in from;
		union {
			struct cmsghdr h;
			char buf[CMSG_SPACE(sizeof(struct in_pktinfo))];
		} ctl;
		struct iovec iov = { m->pkt, sizeof(m->pkt) };
		struct msghdr h = { .msg_name = &from,
				    .msg_namelen = sizeof(from),
				    .msg_iov = &iov, .msg_iovlen = 1,
				    .msg_control = &ctl,
				    .msg_controllen = sizeof(ctl) };
		ssize_t r = recvmsg(m->fd, &h, MSG_DONTWAIT);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			break;
		int index = -1;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&h); c;
		     c = CMSG_NXTHDR(&h, c))
			if (c->cmsg_level == IPPROTO_IP &&
			    c->cmsg_type == IP_PKTINFO)
				index = ((struct in_pktinfo *)CMSG_DATA(c))
						->ipi_ifindex;
		if (!known_if(m, index) || ours(m, m->pkt, (size_t)r))
			continue;
		memset(&m->msg, 0, sizeof(m->msg));
		if ((size_t)r > LM_DNSSD_MAX_PACKET ||
		    (h.msg_flags & MSG_TRUNC) ||
		    lm_dnssd_parse(m->pkt, (size_t)r, &m->msg)) {
			m->dropped++;
			continue;
		}
		if (m->filter)
			m->filter(&m->msg, m->filter_arg);
		if (!m->msg.header.qr)
			take_disco(m);
		/* the port in host order: libmdnsd answers a query from a
		 * port other than 5353 by unicast (a one-shot querier) */
		mdnsd_in(m->d, &m->msg, from.sin_addr, ntohs(from.sin_port));
		given++;
	}
	return given;
}

static void send_one(struct lm_mdns *m, const uint8_t *p, size_t n,
		     struct in_addr to, uint16_t port)
{
	struct in_addr group;
	inet_pton(AF_INET, LM_DNSSD_GROUP, &group);
	m->sent[m->next_sent].hash = hash(p, n);
	m->sent[m->next_sent].t_ms = now_ms();
	m->next_sent = (m->next_sent + 1) % ECHOES;
	if (to.s_addr != group.s_addr) {
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr = to,
					 .sin_port = htons(port) };
		sendto(m->fd, p, n, MSG_DONTWAIT, (struct sockaddr *)&a,
		       sizeof(a));
		return;
	}
	/* multicast on every interface (no route need exist for it) */
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr = group,
				 .sin_port = htons(LM_DNSSD_PORT) };
	for (int k = 0; k < m->n_ifs; k++) {
		struct ip_mreqn mr = { .imr_address = m->ifs[k].addr,
				       .imr_ifindex = m->ifs[k].index };
		if (seen_index(m, k) ||
		    setsockopt(m->fd, IPPROTO_IP, IP_MULTICAST_IF, &mr,
			       sizeof(mr)))
			continue;
		sendto(m->fd, p, n, MSG_DONTWAIT, (struct sockaddr *)&a,
		       sizeof(a));
	}
}

/* A query from this process to its own daemon, answered as from the
 * link (from port 5353: by multicast). */
static void ask(struct lm_mdns *m, const char *const *names,
		const int *types, int n)
{
	memset(&m->msg, 0, sizeof(m->msg));
	for (int i = 0; i < n && i < 8; i++) {
		m->self[i].name = (char *)names[i];
		m->self[i].type = (unsigned short)types[i];
		m->self[i].class = QCLASS_IN;
	}
	m->msg.qd = m->self;
	m->msg.qdcount = (unsigned short)(n < 8 ? n : 8);
	mdnsd_in(m->d, &m->msg, (struct in_addr){ htonl(INADDR_LOOPBACK) },
		 LM_DNSSD_PORT);
}

void lm_mdns_ask_self(struct lm_mdns *m, const char *const *names,
		      const int *types, int n)
{
	const char *keep[8];
	int kt[8], k = 0;
	for (int i = 0; i < n && k < 8; i++) {
		if (!strcmp(names[i], LM_DNSSD_ENUM)) {
			m->disco = 1;
			continue;
		}
		keep[k] = names[i];
		kt[k++] = types[i];
	}
	ask(m, keep, kt, k);
}

/* Where the question section of the n-byte message p ends (0: never). */
static size_t questions_end(const uint8_t *p, size_t n, unsigned qd)
{
	size_t off = 12;
	for (unsigned i = 0; i < qd; i++) {
		while (off < n && p[off] && (p[off] & 0xc0) != 0xc0)
			off += 1 + (size_t)p[off];
		off += off < n && p[off] ? 2 : 1;
		off += 4;
		if (off > n)
			return 0;
	}
	return off;
}

static void send_all(struct lm_mdns *m)
{
	struct in_addr to;
	unsigned short port;
	while (mdnsd_out(m->d, &m->msg, &to, &port) > 0) {
		unsigned char *p = message_packet(&m->msg);
		int n = message_packet_len(&m->msg);
		/* A query's known answers (RFC 6762 7.1) go out without their
		 * answers: libmdnsd 0.12 writes a cached PTR or SRV record as
		 * the 4 bytes of the address it came from and then its data,
		 * a record other responders (laminad's parser, avahi) refuse
		 * whole.  Laminads then answer what the browser knows again. */
		if (n > 0 && !m->msg.header.qr && m->msg.ancount &&
		    !m->msg.nscount && !m->msg.arcount) {
			size_t end = questions_end(p, (size_t)n,
						   m->msg.qdcount);
			if (!end)
				continue;
			p[6] = p[7] = 0;
			n = (int)end;
		}
		/* libmdnsd gives the multicast port in network order and a
		 * unicast one as mdnsd_in was given it, in host order */
		if (n > 0)
			send_one(m, p, (size_t)n, to, port);
	}
}

uint64_t lm_mdns_output(struct lm_mdns *m)
{
	send_all(m);
	if (m->disco) {
		const char *name = LM_DNSSD_ENUM;
		const int type = QTYPE_PTR;
		m->disco = 0;
		ask(m, &name, &type, 1);
		send_all(m);
	}
	/* out of "disco" mode (see take_disco), as libmdnsd's own loop
	 * (mdnsd_step) leaves it after each round: this call does only
	 * that, without input, output or a timeout */
	mdnsd_step(m->d, m->fd, false, false, NULL);
	struct timeval *tv = mdnsd_sleep(m->d);
	return (uint64_t)tv->tv_sec * 1000000 + (uint64_t)tv->tv_usec;
}

void lm_mdns_close(struct lm_mdns *m)
{
	if (!m)
		return;
	if (m->d) {
		mdnsd_shutdown(m->d);
		lm_mdns_output(m); /* the goodbyes */
		mdnsd_free(m->d);
	}
	if (m->fd >= 0)
		close(m->fd);
	free(m);
}
