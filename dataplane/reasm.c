/*
 * reasm.c: bounded reassembly of tensor bundles from fragments (reasm.h).
 *
 * Tables are fixed at creation: `max_pending` slots, each with a fragment
 * bitmap big enough for the largest bundle at the smallest fragment unit,
 * and a ring of recently finished bundles.  Slots are found by a linear
 * scan: the table is small (tens of bundles in flight per edge) and a scan
 * of a few cache lines beats hashing at that size.
 */
#include "reasm.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* A bundle is named by its sender's address and its ids; not by the UDP
 * source port, which no checksum covers. */
struct key {
	uint32_t src_ip;
	uint32_t deployment, edge, bundle_id;
};

struct slot {
	int used;
	struct key key;
	uint64_t request_id;
	void *buf;
	uint32_t total, unit, frags, got;
	uint64_t last_ns;
	uint64_t *map; /* one bit per fragment received */
};

struct lm_reasm {
	lm_reasm_config cfg;
	lm_reasm_ops ops;
	lm_reasm_stats stats;
	struct slot *slots;
	uint32_t pending;
	uint64_t *maps;
	size_t map_words;
	struct key *recent;
	uint32_t recent_next, recent_n;
};

static struct key key_of(const lm_frame_info *f)
{
	struct key k;
	memset(&k, 0, sizeof(k));
	k.src_ip = f->src_ip;
	k.deployment = f->deployment;
	k.edge = f->edge;
	k.bundle_id = f->bundle_id;
	return k;
}

static int same(const struct key *a, const struct key *b)
{
	return a->src_ip == b->src_ip &&
	       a->deployment == b->deployment && a->edge == b->edge &&
	       a->bundle_id == b->bundle_id;
}

int lm_reasm_create(const lm_reasm_config *cfg, const lm_reasm_ops *ops,
		    lm_reasm **out)
{
	*out = NULL;
	if (!cfg->max_pending || cfg->max_pending > 65536 || !cfg->recent ||
	    cfg->recent > (1u << 20) || !cfg->max_bundle ||
	    cfg->max_bundle > (1u << 30) || !ops->alloc || !ops->release)
		return -EINVAL;
	lm_reasm *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->cfg = *cfg;
	r->ops = *ops;
	uint32_t max_frags = (cfg->max_bundle + LM_FRAME_MIN_UNIT - 1) /
			     LM_FRAME_MIN_UNIT;
	r->map_words = (max_frags + 63) / 64;
	r->slots = calloc(cfg->max_pending, sizeof(*r->slots));
	r->maps = calloc((size_t)cfg->max_pending * r->map_words,
			 sizeof(uint64_t));
	r->recent = calloc(cfg->recent, sizeof(*r->recent));
	if (!r->slots || !r->maps || !r->recent) {
		lm_reasm_free(r);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < cfg->max_pending; i++)
		r->slots[i].map = r->maps + (size_t)i * r->map_words;
	*out = r;
	return 0;
}

void lm_reasm_free(lm_reasm *r)
{
	if (!r)
		return;
	for (uint32_t i = 0; r->slots && i < r->cfg.max_pending; i++)
		if (r->slots[i].used)
			r->ops.release(r->ops.ctx, r->slots[i].buf);
	free(r->slots);
	free(r->maps);
	free(r->recent);
	free(r);
}

static void remember(lm_reasm *r, const struct key *k)
{
	r->recent[r->recent_next] = *k;
	r->recent_next = (r->recent_next + 1) % r->cfg.recent;
	if (r->recent_n < r->cfg.recent)
		r->recent_n++;
}

static int is_recent(const lm_reasm *r, const struct key *k)
{
	for (uint32_t i = 0; i < r->recent_n; i++)
		if (same(&r->recent[i], k))
			return 1;
	return 0;
}

/* Forget a slot; give its buffer back unless the caller took it. */
static void drop(lm_reasm *r, struct slot *s, int give_back)
{
	if (give_back)
		r->ops.release(r->ops.ctx, s->buf);
	remember(r, &s->key);
	s->used = 0;
	s->buf = NULL;
	r->pending--;
}

/* A free slot, making room by dropping the stalest bundle if need be. */
static struct slot *free_slot(lm_reasm *r)
{
	struct slot *oldest = NULL;
	for (uint32_t i = 0; i < r->cfg.max_pending; i++) {
		struct slot *s = &r->slots[i];
		if (!s->used)
			return s;
		if (!oldest || s->last_ns < oldest->last_ns)
			oldest = s;
	}
	drop(r, oldest, 1);
	r->stats.evicted++;
	return oldest;
}

static struct slot *find(lm_reasm *r, const struct key *k)
{
	if (!r->pending)
		return NULL;
	for (uint32_t i = 0; i < r->cfg.max_pending; i++)
		if (r->slots[i].used && same(&r->slots[i].key, k))
			return &r->slots[i];
	return NULL;
}

/* A slot for the first fragment of a bundle, or NULL (counted). */
static struct slot *start(lm_reasm *r, const lm_frame_info *f,
			  const struct key *k, uint64_t now_ns)
{
	if (f->total_len > r->cfg.max_bundle ||
	    !lm_frame_fits(f, f->total_len, f->frag_unit)) {
		r->stats.malformed++;
		return NULL;
	}
	if (is_recent(r, k)) {
		r->stats.stale++;
		return NULL;
	}
	/* room first, so an edge needs no more buffers than max_pending */
	struct slot *s = free_slot(r);
	int why = -ENOENT;
	void *buf = r->ops.alloc(r->ops.ctx, f, &why);
	if (!buf) {
		if (why == -ENOBUFS)
			r->stats.no_buffer++;
		else
			r->stats.unknown++;
		return NULL;
	}
	s->used = 1;
	s->key = *k;
	s->request_id = f->request_id;
	s->buf = buf;
	s->total = f->total_len;
	s->unit = f->frag_unit;
	s->frags = (f->total_len + f->frag_unit - 1) / f->frag_unit;
	s->got = 0;
	s->last_ns = now_ns;
	memset(s->map, 0, ((s->frags + 63) / 64) * sizeof(uint64_t));
	r->pending++;
	return s;
}

int lm_reasm_push(lm_reasm *r, const lm_frame_info *f, uint64_t now_ns,
		  lm_reasm_bundle *done)
{
	r->stats.fragments++;
	struct key k = key_of(f);
	struct slot *s = find(r, &k);
	if (!s && !(s = start(r, f, &k, now_ns)))
		return 0;
	/* every fragment must agree with its bundle's first one and lie
	 * inside it (the caller may not have used lm_frame_parse) */
	if (f->request_id != s->request_id || f->total_len != s->total ||
	    f->frag_unit != s->unit || !lm_frame_fits(f, s->total, s->unit)) {
		r->stats.malformed++;
		return 0;
	}
	uint32_t i = f->frag_offset / s->unit;
	uint64_t bit = 1ull << (i % 64);
	if (s->map[i / 64] & bit) {
		r->stats.duplicate++;
		return 0;
	}
	s->map[i / 64] |= bit;
	memcpy((uint8_t *)s->buf + f->frag_offset, f->payload, f->frag_len);
	s->last_ns = now_ns;
	if (++s->got < s->frags)
		return 0;
	done->buf = s->buf;
	done->len = s->total;
	done->deployment = s->key.deployment;
	done->edge = s->key.edge;
	done->bundle_id = s->key.bundle_id;
	done->request_id = s->request_id;
	drop(r, s, 0);
	r->stats.completed++;
	return 1;
}

void lm_reasm_expire(lm_reasm *r, uint64_t now_ns)
{
	if (!r->pending || now_ns < r->cfg.timeout_ns)
		return;
	uint64_t before = now_ns - r->cfg.timeout_ns;
	for (uint32_t i = 0; i < r->cfg.max_pending; i++) {
		struct slot *s = &r->slots[i];
		if (s->used && s->last_ns < before) {
			drop(r, s, 1);
			r->stats.timed_out++;
		}
	}
}

uint32_t lm_reasm_pending(const lm_reasm *r)
{
	return r->pending;
}

const lm_reasm_stats *lm_reasm_get_stats(const lm_reasm *r)
{
	return &r->stats;
}
