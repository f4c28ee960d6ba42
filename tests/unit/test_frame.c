/*
 * test_frame.c: the wire format between hosts (dataplane/frame.c) and
 * bundle reassembly (dataplane/reasm.c): round trips at several MTUs,
 * every corrupted byte refused, and reassembly through loss, duplicates,
 * reordering, stale and foreign fragments, timeouts and floods, with every
 * buffer given back.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "frame.h"
#include "reasm.h"

static uint64_t rng = 88172645463325252ull;

static uint32_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng >> 32);
}

static const lm_frame_addr addr = {
	.src_mac = { 2, 0, 0, 0, 0, 1 }, .dst_mac = { 2, 0, 0, 0, 0, 2 },
	.src_ip = 0x0a000001, .dst_ip = 0x0a000002,
	.src_port = 40000, .dst_port = LM_FRAME_UDP_PORT,
};

/* All frames of one bundle, each in its own malloc'd buffer. */
struct frames {
	uint8_t **buf;
	size_t *len;
	int n;
};

static int cut(struct frames *fr, const uint8_t *bundle, uint32_t total,
	       unsigned mtu, uint32_t deployment, uint64_t request,
	       uint32_t bundle_id)
{
	uint32_t unit = lm_frame_payload_max(mtu);
	fr->n = (int)((total + unit - 1) / unit);
	fr->buf = calloc((size_t)fr->n, sizeof(*fr->buf));
	fr->len = calloc((size_t)fr->n, sizeof(*fr->len));
	if (!fr->buf || !fr->len)
		return -1;
	for (int i = 0; i < fr->n; i++) {
		lm_frame_info f = {
			.deployment = deployment, .edge = 1,
			.request_id = request, .bundle_id = bundle_id,
			.frag_offset = (uint32_t)i * unit, .frag_unit = unit,
			.total_len = total,
		};
		uint32_t left = total - f.frag_offset;
		f.frag_len = left < unit ? left : unit;
		size_t cap = LM_FRAME_OVERHEAD + f.frag_len;
		fr->buf[i] = malloc(cap);
		if (!fr->buf[i])
			return -1;
		fr->len[i] = lm_frame_build(fr->buf[i], cap, &addr, &f,
					    bundle);
		if (fr->len[i] != cap)
			return -1;
	}
	return 0;
}

static void frames_free(struct frames *fr)
{
	for (int i = 0; i < fr->n; i++)
		free(fr->buf[i]);
	free(fr->buf);
	free(fr->len);
}

TEST(round_trip)
{
	static const unsigned mtus[] = { 1500, 9000 };
	static const uint32_t sizes[] = { 1, 257, 65536, 800000, 3 << 20 };
	for (size_t m = 0; m < 2; m++)
		for (size_t s = 0; s < sizeof(sizes) / sizeof(*sizes); s++) {
			uint32_t total = sizes[s];
			uint8_t *b = malloc(total), *back = calloc(1, total);
			CHECK(b && back);
			for (uint32_t i = 0; i < total; i++)
				b[i] = (uint8_t)rnd();
			struct frames fr;
			CHECK(cut(&fr, b, total, mtus[m], 0xabcd, 77, 5) == 0);
			for (int i = 0; i < fr.n; i++) {
				lm_frame_info f;
				CHECK(fr.len[i] - LM_FRAME_ETH_LEN <= mtus[m]);
				CHECK(lm_frame_parse(fr.buf[i], fr.len[i],
						     LM_FRAME_UDP_PORT, 1u << 30,
						     &f) == 0);
				CHECK(f.deployment == 0xabcd && f.edge == 1 &&
				      f.request_id == 77 && f.bundle_id == 5 &&
				      f.total_len == total &&
				      f.src_ip == addr.src_ip &&
				      f.src_port == addr.src_port);
				memcpy(back + f.frag_offset, f.payload,
				       f.frag_len);
			}
			CHECK(memcmp(b, back, total) == 0);
			frames_free(&fr);
			free(b);
			free(back);
		}
	CHECK(lm_frame_deployment_key("d-1a2B3c4d") == 0x1a2b3c4d);
	CHECK(lm_frame_deployment_key("none") == 0xe);
	CHECK(lm_frame_deployment_key("") == 0);
	CHECK(lm_frame_payload_max(9000) == 9000 - 20 - 8 - 48);
	CHECK(lm_frame_payload_max(100) == 0);
}

/*
 * Every single corrupted bit past the MAC addresses is refused, but for the
 * UDP source port and checksum: the checksum is left zero, as IPv4 allows,
 * since the lamina CRC covers header and payload, and the source port
 * names nothing.
 */
TEST(corruption_refused)
{
	uint8_t b[600];
	for (size_t i = 0; i < sizeof(b); i++)
		b[i] = (uint8_t)i;
	struct frames fr;
	CHECK(cut(&fr, b, sizeof(b), 1500, 1, 2, 3) == 0 && fr.n == 1);
	lm_frame_info f;
	for (size_t i = 12; i < fr.len[0]; i++)
		for (int bit = 0; bit < 8; bit++) {
			if (i == 34 || i == 35 || i == 40 || i == 41)
				continue;
			fr.buf[0][i] ^= (uint8_t)(1 << bit);
			int rc = lm_frame_parse(fr.buf[0], fr.len[0],
						LM_FRAME_UDP_PORT, 1u << 30,
						&f);
			fr.buf[0][i] ^= (uint8_t)(1 << bit);
			if (rc == 0)
				printf("  byte %zu bit %d accepted\n", i, bit);
			CHECK(rc < 0);
		}
	/* truncated anywhere: refused; padded: accepted */
	for (size_t len = 0; len < fr.len[0]; len++)
		CHECK(lm_frame_parse(fr.buf[0], len, LM_FRAME_UDP_PORT,
				     1u << 30, &f) < 0);
	uint8_t padded[700];
	memcpy(padded, fr.buf[0], fr.len[0]);
	CHECK(lm_frame_parse(padded, fr.len[0] + 20, LM_FRAME_UDP_PORT,
			     1u << 30, &f) == 0);
	/* other ports and bundles over the limit */
	CHECK(lm_frame_parse(fr.buf[0], fr.len[0], 9, 1u << 30, &f) ==
	      LM_FRAME_NOT_OURS);
	CHECK(lm_frame_parse(fr.buf[0], fr.len[0], LM_FRAME_UDP_PORT, 599,
			     &f) == LM_FRAME_BAD_RANGE);
	frames_free(&fr);
	/* inconsistent fragments are not built */
	uint8_t out[2000];
	lm_frame_info bad = { .frag_offset = 100, .frag_len = 256,
			      .frag_unit = 256, .total_len = 1000 };
	CHECK(lm_frame_build(out, sizeof(out), &addr, &bad, b) == 0);
	bad.frag_offset = 256;
	CHECK(lm_frame_build(out, 100, &addr, &bad, b) == 0);
	CHECK(lm_frame_build(out, sizeof(out), &addr, &bad, b) ==
	      LM_FRAME_OVERHEAD + 256);
}

/* ---- reassembly ---- */

struct pool {
	int live;	   /* buffers out */
	int max_live;	   /* at most */
	uint32_t known;	   /* the one known deployment */
	int refuse;	   /* answer -ENOBUFS */
};

static void *pool_alloc(void *ctx, const lm_frame_info *f, int *why)
{
	struct pool *p = ctx;
	if (f->deployment != p->known) {
		*why = -ENOENT;
		return NULL;
	}
	if (p->refuse) {
		*why = -ENOBUFS;
		return NULL;
	}
	p->live++;
	if (p->live > p->max_live)
		p->max_live = p->live;
	return malloc(f->total_len);
}

static void pool_release(void *ctx, void *buf)
{
	struct pool *p = ctx;
	p->live--;
	free(buf);
}

static lm_reasm *reasm(struct pool *p, uint32_t pending, uint64_t timeout)
{
	lm_reasm_config cfg = { .max_pending = pending,
				.max_bundle = 4u << 20, .recent = 64,
				.timeout_ns = timeout };
	lm_reasm_ops ops = { pool_alloc, pool_release, p };
	lm_reasm *r;
	return lm_reasm_create(&cfg, &ops, &r) ? NULL : r;
}

static int push(lm_reasm *r, const uint8_t *frame, size_t len, uint64_t now,
		lm_reasm_bundle *done)
{
	lm_frame_info f;
	if (lm_frame_parse(frame, len, LM_FRAME_UDP_PORT, 4u << 20, &f))
		return -1;
	return lm_reasm_push(r, &f, now, done);
}

TEST(reassembly_with_loss_duplicates_reordering)
{
	struct pool p = { .known = 7 };
	lm_reasm *r = reasm(&p, 8, 1000);
	CHECK(r);
	enum { BUNDLES = 40 };
	uint32_t total = 100000;
	uint8_t *b = malloc(total);
	CHECK(b);
	int completed = 0, lost = 0;
	uint64_t now = 0;
	for (int k = 0; k < BUNDLES; k++) {
		for (uint32_t i = 0; i < total; i++)
			b[i] = (uint8_t)(i * 7 + (uint32_t)k);
		struct frames fr;
		CHECK(cut(&fr, b, total, 1500, 7, 1000 + (uint64_t)k,
			  (uint32_t)k) == 0);
		/* shuffle, duplicate a few, lose one in every fourth bundle */
		int order[256], n = 0;
		for (int i = 0; i < fr.n; i++)
			order[n++] = i;
		for (int i = 0; i < 5; i++)
			order[n++] = (int)(rnd() % (uint32_t)fr.n);
		for (int i = n - 1; i > 0; i--) {
			int j = (int)(rnd() % (uint32_t)(i + 1)), t = order[i];
			order[i] = order[j];
			order[j] = t;
		}
		int skip = k % 4 == 3 ? order[0] : -1, done_here = 0;
		for (int i = 0; i < n; i++) {
			if (order[i] == skip)
				continue;
			lm_reasm_bundle d;
			int rc = push(r, fr.buf[order[i]], fr.len[order[i]],
				      ++now, &d);
			CHECK(rc >= 0);
			if (rc == 1) {
				CHECK(!done_here && d.len == total &&
				      d.request_id == 1000 + (uint64_t)k &&
				      d.deployment == 7 && d.edge == 1 &&
				      memcmp(d.buf, b, total) == 0);
				done_here = 1;
				pool_release(&p, d.buf);
			}
		}
		CHECK(done_here == (skip < 0));
		completed += done_here;
		lost += skip >= 0;
		/* a fragment of a finished bundle is stale */
		if (done_here) {
			lm_reasm_bundle d;
			CHECK(push(r, fr.buf[0], fr.len[0], ++now, &d) == 0);
		}
		frames_free(&fr);
	}
	const lm_reasm_stats *s = lm_reasm_get_stats(r);
	CHECK(completed == BUNDLES - BUNDLES / 4 && lost == BUNDLES / 4);
	CHECK(s->completed == (uint64_t)completed);
	/* a repeat after its bundle completed counts as stale */
	CHECK(s->duplicate > 0 && s->stale >= (uint64_t)completed);
	/* the incomplete ones are still held, at most max_pending */
	CHECK(lm_reasm_pending(r) <= 8 && p.live == (int)lm_reasm_pending(r));
	lm_reasm_expire(r, now + 2000);
	CHECK(lm_reasm_pending(r) == 0 && p.live == 0);
	CHECK(s->timed_out + s->evicted == (uint64_t)lost);
	lm_reasm_free(r);
	free(b);
}

TEST(foreign_and_inconsistent_fragments)
{
	struct pool p = { .known = 7 };
	lm_reasm *r = reasm(&p, 4, 1000);
	CHECK(r);
	uint8_t b[3000] = { 0 };
	struct frames fr;
	CHECK(cut(&fr, b, sizeof(b), 1500, 9, 1, 1) == 0);
	lm_reasm_bundle d;
	CHECK(push(r, fr.buf[0], fr.len[0], 1, &d) == 0);
	CHECK(lm_reasm_get_stats(r)->unknown == 1 && p.live == 0);
	frames_free(&fr);

	p.refuse = 1;
	CHECK(cut(&fr, b, sizeof(b), 1500, 7, 1, 1) == 0);
	CHECK(push(r, fr.buf[0], fr.len[0], 1, &d) == 0);
	CHECK(lm_reasm_get_stats(r)->no_buffer == 1 && p.live == 0);
	p.refuse = 0;
	CHECK(push(r, fr.buf[0], fr.len[0], 2, &d) == 0 && p.live == 1);
	/* same bundle id, other request or length: malformed, dropped */
	lm_frame_info f;
	CHECK(lm_frame_parse(fr.buf[1], fr.len[1], LM_FRAME_UDP_PORT,
			     1u << 30, &f) == 0);
	f.request_id = 2;
	CHECK(lm_reasm_push(r, &f, 3, &d) == 0);
	f.request_id = 1;
	f.total_len = 2999;
	CHECK(lm_reasm_push(r, &f, 3, &d) == 0);
	f.total_len = 3000;
	f.frag_offset = 100; /* not a multiple of the unit */
	CHECK(lm_reasm_push(r, &f, 3, &d) == 0);
	CHECK(lm_reasm_get_stats(r)->malformed == 3);
	/* the bundle itself still completes */
	CHECK(fr.n == 3);
	CHECK(push(r, fr.buf[2], fr.len[2], 4, &d) == 0);
	CHECK(push(r, fr.buf[1], fr.len[1], 5, &d) == 1 && d.len == 3000);
	pool_release(&p, d.buf);
	frames_free(&fr);
	lm_reasm_free(r);
	CHECK(p.live == 0);
}

/* A flood of first fragments never holds more than max_pending buffers. */
TEST(flood_is_bounded)
{
	struct pool p = { .known = 7 };
	lm_reasm *r = reasm(&p, 16, 1000000);
	CHECK(r);
	uint8_t b[4096] = { 0 };
	for (uint32_t k = 0; k < 5000; k++) {
		struct frames fr;
		CHECK(cut(&fr, b, sizeof(b), 1500, 7, k, k) == 0);
		lm_reasm_bundle d;
		CHECK(push(r, fr.buf[0], fr.len[0], k, &d) == 0);
		frames_free(&fr);
		CHECK(lm_reasm_pending(r) <= 16);
	}
	CHECK(p.max_live == 16 && p.live == 16);
	CHECK(lm_reasm_get_stats(r)->evicted == 5000 - 16);
	lm_reasm_free(r);
	CHECK(p.live == 0);
	/* settings out of range */
	lm_reasm_config cfg = { 0 };
	lm_reasm_ops ops = { pool_alloc, pool_release, &p };
	CHECK(lm_reasm_create(&cfg, &ops, &r) == -EINVAL && !r);
}

int main(void)
{
	RUN(round_trip);
	RUN(corruption_refused);
	RUN(reassembly_with_loss_duplicates_reordering);
	RUN(foreign_and_inconsistent_fragments);
	RUN(flood_is_bounded);
	return harness_done();
}
