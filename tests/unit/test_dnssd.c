/*
 * test_dnssd.c: laminad's DNS-SD records (dataplane/dnssd.c): the TXT
 * record both ways and every malformed one refused, the names, and the
 * parser that stands between the network and libmdnsd: a well-formed
 * message parsed field by field, each kind of malformed one refused, and
 * 50,000 random mutations of a message parsed without a fault (under
 * ASan in CI), the ones that parse handed on to a libmdnsd daemon.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libmdnsd/mdnsd.h>

#include "dnssd.h"
#include "harness.h"

static struct lm_dnssd_txt sample(void)
{
	struct lm_dnssd_txt t = {
		.version = "0.2.0", .cores = 7, .cores_free = 3, .numa = 2,
		.deployments = 4, .mem = 68719476736ull,
		.mem_free = 1234567890123ull, .huge = 2147483648ull,
		.ingress = 7701, .http = 8000,
		.cpu = "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz",
		.fp = "",
	};
	return t;
}

/* TXT rdata from "key=value" strings (NULL-terminated). */
static size_t txt_of(uint8_t *out, const char *const *s)
{
	size_t off = 0;
	for (; *s; s++) {
		size_t n = strlen(*s);
		out[off++] = (uint8_t)n;
		memcpy(out + off, *s, n);
		off += n;
	}
	return off;
}

TEST(txt_round_trip)
{
	struct lm_dnssd_txt t = sample(), u;
	uint8_t raw[LM_DNSSD_TXT_MAX];
	size_t len = 0;
	lm_error e;
	CHECK_EQ_I64(lm_dnssd_txt_encode(&t, raw, sizeof(raw), &len, &e), 0);
	CHECK(len > 0 && len <= sizeof(raw));
	/* the first string is txtvers=1 (RFC 6763 6.7) */
	CHECK(raw[0] == 9 && !memcmp(raw + 1, "txtvers=1", 9));
	CHECK_EQ_I64(lm_dnssd_txt_decode(raw, len, &u, &e), 0);
	CHECK(!memcmp(&t, &u, sizeof(t)));
	/* without a fleet key the record has no fp key at all */
	CHECK(!memmem(raw, len, "fp=", 3));
	strcpy(t.fp, "0123456789abcdef");
	CHECK_EQ_I64(lm_dnssd_txt_encode(&t, raw, sizeof(raw), &len, &e), 0);
	CHECK_EQ_I64(lm_dnssd_txt_decode(raw, len, &u, &e), 0);
	CHECK(!strcmp(u.fp, t.fp) && u.mem_free == t.mem_free);
	CHECK(memmem(raw, len, "\x13" "fp=0123456789abcdef", 20) != NULL);
	/* too small a buffer, and text that is not printable */
	CHECK_EQ_I64(lm_dnssd_txt_encode(&t, raw, 40, &len, &e), -ENOSPC);
	t.cpu[3] = '\n';
	CHECK_EQ_I64(lm_dnssd_txt_encode(&t, raw, sizeof(raw), &len, &e),
		     -EINVAL);
	CHECK(strstr(e.msg, "cpu") != NULL);
}

TEST(txt_decode_rules)
{
	uint8_t raw[1024];
	struct lm_dnssd_txt t;
	lm_error e;
	static const char *const base[] = {
		"v=1.0", "cores=4", "cores_free=2", "mem=100", "mem_free=50",
		NULL,
	};
	CHECK_EQ_I64(lm_dnssd_txt_decode(raw, txt_of(raw, base), &t, &e), 0);
	CHECK(t.cores == 4 && t.cores_free == 2 && t.mem == 100 &&
	      !strcmp(t.version, "1.0") && t.http == 0 && !t.cpu[0]);
	/* unknown keys, keys without a value and empty strings are passed
	 * over; of a key given twice the first counts (RFC 6763 6.4) */
	static const char *const extra[] = {
		"", "flag", "colour=blue", "cores=4", "cores=9",
		"cores_free=2", "mem=100", "mem_free=50", "v=2", "v=3",
		NULL,
	};
	CHECK_EQ_I64(lm_dnssd_txt_decode(raw, txt_of(raw, extra), &t, &e), 0);
	CHECK(t.cores == 4 && !strcmp(t.version, "2"));
	/* a required key missing */
	static const char *const missing[] = {
		"v=1", "cores=4", "mem=100", "mem_free=50", NULL,
	};
	CHECK_EQ_I64(lm_dnssd_txt_decode(raw, txt_of(raw, missing), &t, &e),
		     -EINVAL);
	CHECK(strstr(e.msg, "cores_free") != NULL);
	/* numbers: not digits, empty, negative, past the field's range */
	static const char *const bad[][2] = {
		{ "cores=4x", "cores" }, { "cores=", "cores" },
		{ "mem=-1", "mem" }, { "cores=4294967296", "cores" },
		{ "http=65536", "http" },
		{ "mem=18446744073709551616", "mem" },
		{ "cpu=a\x01z", "cpu" },
		{ "v=0123456789012345678901234567890123456789", "v" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *s[] = { bad[i][0], "v=1", "cores=4",
				    "cores_free=2", "mem=100", "mem_free=50",
				    NULL };
		CHECK_EQ_I64(lm_dnssd_txt_decode(raw, txt_of(raw, s), &t, &e),
			     -EINVAL);
		CHECK(strstr(e.msg, bad[i][1]) != NULL);
	}
	static const char *const top[] = {
		"mem=18446744073709551615", "v=1", "cores=4", "cores_free=2",
		"mem_free=50", NULL,
	};
	CHECK_EQ_I64(lm_dnssd_txt_decode(raw, txt_of(raw, top), &t, &e), 0);
	CHECK(t.mem == UINT64_MAX);
	/* a string longer than what remains */
	size_t n = txt_of(raw, base);
	raw[n - 11] = 200;
	CHECK_EQ_I64(lm_dnssd_txt_decode(raw, n, &t, &e), -EINVAL);
	CHECK_EQ_I64(lm_dnssd_txt_decode(raw, 0, &t, &e), -EINVAL);
}

TEST(names)
{
	char s[LM_DNSSD_NAME_MAX], in[LM_DNSSD_LABEL_MAX + 1];
	char longname[200];
	lm_dnssd_instance("node1.example.com", 1, in, sizeof(in));
	CHECK(!strcmp(in, "node1-example-com"));
	lm_dnssd_instance("gpu box", 2, in, sizeof(in));
	CHECK(!strcmp(in, "gpu box (2)"));
	lm_dnssd_instance("a\tb\x7f", 1, in, sizeof(in));
	CHECK(!strcmp(in, "a-b-"));
	memset(longname, 'x', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	lm_dnssd_instance(longname, 1, in, sizeof(in));
	CHECK_EQ_I64(strlen(in), 63);
	lm_dnssd_instance(longname, 12, in, sizeof(in));
	CHECK_EQ_I64(strlen(in), 63);
	CHECK(!strcmp(in + 58, " (12)"));

	lm_dnssd_service_name("gpu box (2)", s, sizeof(s));
	CHECK(!strcmp(s, "gpu box (2)._lamina._tcp.local."));
	CHECK_EQ_I64(lm_dnssd_instance_of(s, in, sizeof(in)), 0);
	CHECK(!strcmp(in, "gpu box (2)"));
	CHECK_EQ_I64(lm_dnssd_instance_of("x._http._tcp.local.", in,
					  sizeof(in)), -EINVAL);
	CHECK_EQ_I64(lm_dnssd_instance_of("a.b._lamina._tcp.local.", in,
					  sizeof(in)), -EINVAL);
	CHECK_EQ_I64(lm_dnssd_instance_of("._lamina._tcp.local.", in,
					  sizeof(in)), -EINVAL);
	CHECK_EQ_I64(lm_dnssd_instance_of("_lamina._tcp.local.", in,
					  sizeof(in)), -EINVAL);

	lm_dnssd_host("Node A (2)", 7700, s, sizeof(s));
	CHECK(!strcmp(s, "laminad-7700-node-a-2.local."));
	lm_dnssd_host("--", 7700, s, sizeof(s));
	CHECK(!strcmp(s, "laminad-7700.local."));
	lm_dnssd_host(longname, 65535, s, sizeof(s));
	CHECK(strlen(s) - strlen(".local.") <= 63);
}

/* ---- building DNS messages by hand ---- */

struct pkt {
	uint8_t b[LM_DNSSD_MAX_PACKET + 64];
	size_t n;
};

static void u16(struct pkt *p, unsigned v)
{
	p->b[p->n++] = (uint8_t)(v >> 8);
	p->b[p->n++] = (uint8_t)v;
}

static void u32(struct pkt *p, unsigned long v)
{
	u16(p, (unsigned)(v >> 16));
	u16(p, (unsigned)(v & 0xffff));
}

/* labels of a dotted name, then a pointer to `ptr` (0: the root) */
static size_t name(struct pkt *p, const char *dotted, unsigned ptr)
{
	size_t at = p->n;
	while (*dotted) {
		size_t n = strcspn(dotted, ".");
		p->b[p->n++] = (uint8_t)n;
		memcpy(p->b + p->n, dotted, n);
		p->n += n;
		dotted += n + (dotted[n] == '.');
	}
	if (ptr)
		u16(p, 0xc000 | ptr);
	else
		p->b[p->n++] = 0;
	return at;
}

static void head(struct pkt *p, unsigned flags, unsigned qd, unsigned an,
		 unsigned ns, unsigned ar)
{
	p->n = 0;
	u16(p, 0);
	u16(p, flags);
	u16(p, qd);
	u16(p, an);
	u16(p, ns);
	u16(p, ar);
}

/* A laminad's answer: PTR, SRV, TXT and A, compressed as responders do. */
static void answer(struct pkt *p)
{
	head(p, 0x8400, 0, 4, 0, 0);
	size_t svc = name(p, "_lamina._tcp.local", 0);
	u16(p, QTYPE_PTR);
	u16(p, 1);
	u32(p, 10);
	size_t len_at = p->n;
	u16(p, 0);
	size_t inst = name(p, "nodeA", (unsigned)svc);
	p->b[len_at + 1] = (uint8_t)(p->n - len_at - 2);
	u16(p, 0xc000 | (unsigned)inst); /* SRV of the instance */
	u16(p, QTYPE_SRV);
	u16(p, 0x8001);
	u32(p, 10);
	len_at = p->n;
	u16(p, 0);
	u16(p, 0);
	u16(p, 0);
	u16(p, 7790);
	size_t host = name(p, "laminad-7790-nodea", (unsigned)svc + 13);
	p->b[len_at + 1] = (uint8_t)(p->n - len_at - 2);
	u16(p, 0xc000 | (unsigned)inst); /* TXT */
	u16(p, QTYPE_TXT);
	u16(p, 0x8001);
	u32(p, 10);
	static const char *const txt[] = { "v=1", "cores=2", "cores_free=1",
					   "mem=100", "mem_free=50", NULL };
	uint8_t raw[128];
	size_t tn = txt_of(raw, txt);
	u16(p, (unsigned)tn);
	memcpy(p->b + p->n, raw, tn);
	p->n += tn;
	u16(p, 0xc000 | (unsigned)host); /* A */
	u16(p, QTYPE_A);
	u16(p, 0x8001);
	u32(p, 10);
	u16(p, 4);
	static const uint8_t ip[4] = { 10, 77, 0, 2 };
	memcpy(p->b + p->n, ip, 4);
	p->n += 4;
}

static struct message *fresh(struct message *m)
{
	memset(m, 0, sizeof(*m));
	return m;
}

TEST(parse_answer)
{
	static struct pkt p;
	static struct message m;
	answer(&p);
	CHECK_EQ_I64(lm_dnssd_parse(p.b, p.n, fresh(&m)), 0);
	CHECK(m.header.qr == 1 && m.header.aa == 1 && m.ancount == 4);
	CHECK(!strcmp(m.an[0].name, "_lamina._tcp.local."));
	CHECK(m.an[0].type == QTYPE_PTR && m.an[0].ttl == 10);
	CHECK(!strcmp(m.an[0].known.ptr.name, "nodeA._lamina._tcp.local."));
	CHECK(m.an[0].rdlength == 0); /* as libmdnsd's parser */
	CHECK(!strcmp(m.an[1].name, "nodeA._lamina._tcp.local."));
	CHECK(m.an[1].class == 0x8001 && m.an[1].known.srv.port == 7790);
	CHECK(!strcmp(m.an[1].known.srv.name, "laminad-7790-nodea.local."));
	struct lm_dnssd_txt t;
	CHECK(m.an[2].type == QTYPE_TXT && m.an[2].rdata);
	CHECK_EQ_I64(lm_dnssd_txt_decode(m.an[2].rdata, m.an[2].rdlength, &t,
					 NULL), 0);
	CHECK(t.cores == 2 && t.mem_free == 50);
	CHECK(!strcmp(m.an[3].name, "laminad-7790-nodea.local."));
	CHECK(!strcmp(m.an[3].known.a.name, "10.77.0.2"));
	const uint8_t *ip = (const uint8_t *)&m.an[3].known.a.ip;
	CHECK(ip[0] == 10 && ip[3] == 2);
	/* one array: with no answers, an is ns (libmdnsd's probe check) */
	head(&p, 0, 1, 0, 1, 0);
	size_t q = name(&p, "x._lamina._tcp.local", 0);
	u16(&p, QTYPE_ANY);
	u16(&p, 1);
	u16(&p, 0xc000 | (unsigned)q);
	u16(&p, QTYPE_TXT);
	u16(&p, 1);
	u32(&p, 10);
	u16(&p, 4);
	memcpy(p.b + p.n, "\003a=b", 4);
	p.n += 4;
	CHECK_EQ_I64(lm_dnssd_parse(p.b, p.n, fresh(&m)), 0);
	CHECK(m.qdcount == 1 && m.nscount == 1 && m.an == m.ns);
	CHECK(!strcmp(m.ns[0].name, "x._lamina._tcp.local."));
}

TEST(parse_refusals)
{
	static struct pkt p;
	static struct message m;
	/* too short, too long, too many records */
	answer(&p);
	CHECK_EQ_I64(lm_dnssd_parse(p.b, 11, fresh(&m)), -EINVAL);
	CHECK_EQ_I64(lm_dnssd_parse(p.b, LM_DNSSD_MAX_PACKET + 1, fresh(&m)),
		     -EINVAL);
	head(&p, 0, 65, 0, 0, 0);
	CHECK_EQ_I64(lm_dnssd_parse(p.b, p.n, fresh(&m)), -EINVAL);
	head(&p, 0, 0, 100, 29, 0);
	CHECK_EQ_I64(lm_dnssd_parse(p.b, p.n, fresh(&m)), -EINVAL);
	/* every truncation of a good message */
	answer(&p);
	for (size_t n = 12; n < p.n; n++)
		CHECK_EQ_I64(lm_dnssd_parse(p.b, n, fresh(&m)), -EINVAL);
	CHECK_EQ_I64(lm_dnssd_parse(p.b, p.n, fresh(&m)), 0);
	/* pointers: to itself, forwards, into the header, a loop of two */
	static const unsigned to[] = { 12, 40, 2, 0 };
	for (int i = 0; i < 4; i++) {
		head(&p, 0, 1, 0, 0, 0);
		if (i < 3) {
			u16(&p, 0xc000 | to[i]);
		} else { /* "a" -> pointer to 16 -> "b" -> pointer to 12 */
			name(&p, "a", 16);
			name(&p, "b", 12);
		}
		u16(&p, 1);
		u16(&p, 1);
		p.n += 32; /* room, so only the pointer is wrong */
		CHECK_EQ_I64(lm_dnssd_parse(p.b, p.n, fresh(&m)), -EINVAL);
	}
	/* reserved label types (01, 10), a NUL inside a label */
	for (int i = 0; i < 3; i++) {
		head(&p, 0, 1, 0, 0, 0);
		name(&p, "abc", 0);
		p.b[12] = i == 0 ? 0x43 : i == 1 ? 0x83 : 3;
		if (i == 2)
			p.b[14] = 0;
		u16(&p, 1);
		u16(&p, 1);
		CHECK_EQ_I64(lm_dnssd_parse(p.b, p.n, fresh(&m)), -EINVAL);
	}
	/* a name past 255 bytes: five labels of 63 */
	head(&p, 0, 1, 0, 0, 0);
	for (int i = 0; i < 5; i++) {
		p.b[p.n++] = 63;
		memset(p.b + p.n, 'x', 63);
		p.n += 63;
	}
	p.b[p.n++] = 0;
	u16(&p, 1);
	u16(&p, 1);
	CHECK_EQ_I64(lm_dnssd_parse(p.b, p.n, fresh(&m)), -EINVAL);
	/* rdata: A not 4 bytes, SRV too short, a PTR name running past its
	 * rdata, an rdlength past the end */
	for (int i = 0; i < 4; i++) {
		head(&p, 0x8400, 0, 1, 0, 0);
		name(&p, "h.local", 0);
		u16(&p, i == 0 ? QTYPE_A : i == 1 ? QTYPE_SRV : QTYPE_PTR);
		u16(&p, 1);
		u32(&p, 10);
		if (i == 0) {
			u16(&p, 5);
			p.n += 5;
		} else if (i == 1) {
			u16(&p, 6);
			p.n += 6;
		} else if (i == 2) {
			u16(&p, 3);
			name(&p, "longer.local", 0);
		} else {
			u16(&p, 50);
			p.n += 10;
		}
		CHECK_EQ_I64(lm_dnssd_parse(p.b, p.n, fresh(&m)), -EINVAL);
	}
}

static void on_conflict(char *host, int type, void *arg)
{
	(void)host;
	(void)type;
	*(int *)arg += 1;
}

static int on_answer(mdns_answer_t *a, void *arg)
{
	(void)a;
	(void)arg;
	return 0;
}

/* Random mutations of good messages: parsed or refused, never a fault;
 * what parses goes to a libmdnsd daemon with a query and a published
 * record of the names involved, as laminad's and lamina's would. */
TEST(parse_mutations)
{
	static struct pkt good, p;
	static struct message m;
	mdns_daemon_t *d = mdnsd_new(QCLASS_IN, 1400);
	CHECK(d != NULL);
	int conflicts = 0;
	mdns_record_t *r = mdnsd_unique(d, "nodeA._lamina._tcp.local.",
					QTYPE_TXT, 10, on_conflict,
					&conflicts);
	mdnsd_set_raw(d, r, "\003a=b", 4);
	mdnsd_query(d, "_lamina._tcp.local.", QTYPE_PTR, on_answer, NULL);
	unsigned long long seed = 42;
	int parsed = 0;
	for (int it = 0; it < 50000; it++) {
		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		answer(&good);
		p = good;
		int edits = 1 + (int)(seed >> 60);
		for (int k = 0; k < edits; k++) {
			seed = seed * 6364136223846793005ull + 1;
			size_t at = (size_t)(seed >> 33) % p.n;
			p.b[at] = (uint8_t)(seed >> 25);
		}
		if ((seed >> 20) % 8 == 0)
			p.n = 12 + (size_t)(seed >> 40) % (p.n - 11);
		if (lm_dnssd_parse(p.b, p.n, fresh(&m)) == 0) {
			parsed++;
			for (int i = 0; i < m.ancount + m.nscount + m.arcount;
			     i++)
				CHECK(strlen(m.an[i].name) < LM_DNSSD_NAME_MAX);
			mdnsd_in(d, &m, (struct in_addr){ 0x0100000a }, 5353);
		}
	}
	printf("  %d of 50000 mutations parsed, %d conflict(s)\n", parsed,
	       conflicts);
	CHECK(parsed > 1000);
	mdnsd_free(d);
}

int main(void)
{
	RUN(txt_round_trip);
	RUN(txt_decode_rules);
	RUN(names);
	RUN(parse_answer);
	RUN(parse_refusals);
	RUN(parse_mutations);
	return harness_done();
}
