/*
 * grouped.c: grouped convolutions whose groups are one to four vectors
 * of output channels wide (RegNetX's groups of 16 channels, ResNeXt's
 * 16 and 32), and stems of 16 to 64 channels (a group of one), with the
 * vector across output channels instead of across positions as in
 * direct.c.
 *
 * direct.c runs such a group as a GEMM over the flat grid of its phase
 * planes, whose row ends are computed and dropped: on RegNetX-400MF's
 * 7x7 and 14x14 stages that is 64 positions for 49 outputs and 224 for
 * 196, and its 8-channel slivers leave short strips.  Here a tile is R
 * output rows of Q positions (R * Q * vectors <= 28 accumulators), each
 * accumulator one position's group of output channels; every tap
 * broadcasts one input value per position (an FMA with a memory
 * operand) against one weight vector, so any stride reads in place and
 * only a row's last chunk of Q positions computes outputs it drops.
 *
 * Per image, group and band of output rows, the group's input rows are
 * copied once, zero-padded, into planes of pw floats a row (wide enough
 * for every chunk's reads), and tap k = (c, ky, kx) is at offset
 *
 *	off[k] = c * plane + ky * pw + kx
 *
 * from the tile's first position.  Tiles leave their results position by
 * position (a vector of channels each) in a buffer of the band; a 16 x 16
 * transpose then writes the band's output planes (NCHW), where the fused
 * epilogue runs while they are in cache.
 *
 * Groups of 48 and 64 channels (stems: ResNet's 7x7 3->64) take tiles of
 * one row of 7 positions.
 *
 * AVX-512 only: the tile needs 32 registers to hold enough positions
 * (AVX2's 16 leave 6 positions of a 16-channel group; direct.c serves it).
 * Needs constant weights, no dilation, a column stride of 1 or 2.
 */
#include "kernels.h"

#include <math.h>
#include <stdlib.h>

#if defined(__x86_64__)
#define LM_SIMD 512
#include "simd.h"

struct gc_state;
typedef void (*gc_tile_fn)(const struct gc_state *st, const float *w,
			   const float *b, const float *bias, float *t,
			   int64_t qv);

struct gc_state {
	struct lm_conv_desc d;
	int64_t mg, cg, kt;       /* per group: outputs, inputs, taps * cg */
	int64_t mv;               /* mg / 16: vectors of a position */
	int64_t q, chunks;        /* tile columns; chunks of q per row */
	int64_t rmax;             /* tile rows at most */
	int64_t band;             /* output rows per band */
	int clamp;                /* the epilogue is max(lo, min(hi, y)) */
	float lo, hi;
	int64_t pw, plane;        /* band planes: row length, floats */
	int32_t *off;             /* kt tap offsets into the planes */
	float *pw_;               /* weights: group, tap, mg channels */
	size_t t_off;             /* scratch floats before the tile buffer */
	gc_tile_fn tile[4];       /* by rows - 1, up to rmax */
};

/*
 * R rows of Q positions, MV vectors of channels each: the group's
 * weights w (tap k's at w + k * mg), the input at b (position (r, j), tap k at
 * b[r * rs + j * SW + off[k]]), bias (the group's, or NULL); position
 * (r, j) for j < qv to t + r * tp + j * mg, clamped when st->clamp.
 */
static inline __attribute__((always_inline)) LM_AVX512 void
gc_tile(const int MV, const int R, const int Q, const int SW,
	const struct gc_state *st, const float *w, const float *b,
	const float *bias, float *t, int64_t qv)
{
	__m512 acc[4][28][4];
	const int32_t *off = st->off;
	int64_t mg = st->mg, kt = st->kt, rs = st->d.sh * st->pw;
	int64_t tp = st->d.ow * mg;

#pragma GCC unroll 4
	for (int v = 0; v < MV; v++) {
		__m512 bv = bias ? _mm512_loadu_ps(bias + 16 * v)
				 : _mm512_setzero_ps();
#pragma GCC unroll 4
		for (int r = 0; r < R; r++)
#pragma GCC unroll 28
			for (int j = 0; j < Q; j++)
				acc[r][j][v] = bv;
	}
	/* one pointer a row: each broadcast is then row + off[k] * 4 +
	 * j * SW * 4, an address mode of its own (from b + r * rs + off[k]
	 * gcc 12 made indices, spilled for want of registers) */
	const float *br[4];
#pragma GCC unroll 4
	for (int r = 0; r < R; r++)
		br[r] = b + r * rs;
	for (int64_t k = 0; k < kt; k++, w += mg) {
		int64_t o = off[k];
		__m512 wv[4];
#pragma GCC unroll 4
		for (int v = 0; v < MV; v++)
			wv[v] = _mm512_loadu_ps(w + 16 * v);
#pragma GCC unroll 4
		for (int r = 0; r < R; r++)
#pragma GCC unroll 28
			for (int j = 0; j < Q; j++) {
				__m512 x = _mm512_set1_ps(br[r][o + j * SW]);
#pragma GCC unroll 4
				for (int v = 0; v < MV; v++)
					acc[r][j][v] = _mm512_fmadd_ps(x,
						wv[v], acc[r][j][v]);
			}
	}
	__m512 lo = _mm512_set1_ps(st->lo), hi = _mm512_set1_ps(st->hi);
#pragma GCC unroll 4
	for (int r = 0; r < R; r++)
#pragma GCC unroll 28
		for (int j = 0; j < Q; j++) {
			if (j >= qv)
				break;
#pragma GCC unroll 4
			for (int v = 0; v < MV; v++) {
				__m512 a = acc[r][j][v];
				if (st->clamp)
					a = _mm512_min_ps(_mm512_max_ps(a, lo),
							  hi);
				_mm512_storeu_ps(t + r * tp + j * mg + 16 * v,
						 a);
			}
		}
}

#define GC_TILE(mv, r, q, sw)                                              \
	static LM_AVX512 void gc_tile_##mv##_##r##_##q##_##sw(            \
		const struct gc_state *st, const float *w, const float *b, \
		const float *bias, float *t, int64_t qv)                  \
	{                                                                  \
		gc_tile(mv, r, q, sw, st, w, b, bias, t, qv);             \
	}
#define GC_TILES(sw)                                                       \
	GC_TILE(1, 1, 28, sw) GC_TILE(1, 1, 14, sw) GC_TILE(1, 2, 14, sw)  \
	GC_TILE(1, 1, 7, sw) GC_TILE(1, 2, 7, sw) GC_TILE(1, 3, 7, sw)     \
	GC_TILE(1, 4, 7, sw) GC_TILE(2, 1, 14, sw) GC_TILE(2, 1, 7, sw)    \
	GC_TILE(2, 2, 7, sw) GC_TILE(3, 1, 7, sw) GC_TILE(4, 1, 7, sw)
GC_TILES(1)
GC_TILES(2)
#undef GC_TILES
#undef GC_TILE

/* The tiles of one shape by rows - 1: [vectors - 1][column stride - 1]
 * [Q = 28, 14, 7]; a NULL first entry marks a Q not built for MV. */
#define GC_SET(mv, q, sw, r1, r2, r3, r4) \
	{ r1(mv, q, sw), r2(mv, q, sw), r3(mv, q, sw), r4(mv, q, sw) }
#define T1(mv, q, sw) gc_tile_##mv##_1_##q##_##sw
#define T2(mv, q, sw) gc_tile_##mv##_2_##q##_##sw
#define T3(mv, q, sw) gc_tile_##mv##_3_##q##_##sw
#define T4(mv, q, sw) gc_tile_##mv##_4_##q##_##sw
#define TN(mv, q, sw) NULL
static const int64_t gc_qs[3] = { 28, 14, 7 };
static const gc_tile_fn gc_tiles[4][2][3][4] = {
	{ { GC_SET(1, 28, 1, T1, TN, TN, TN), GC_SET(1, 14, 1, T1, T2, TN, TN),
	    GC_SET(1, 7, 1, T1, T2, T3, T4) },
	  { GC_SET(1, 28, 2, T1, TN, TN, TN), GC_SET(1, 14, 2, T1, T2, TN, TN),
	    GC_SET(1, 7, 2, T1, T2, T3, T4) } },
	{ { GC_SET(2, 28, 1, TN, TN, TN, TN), GC_SET(2, 14, 1, T1, TN, TN, TN),
	    GC_SET(2, 7, 1, T1, T2, TN, TN) },
	  { GC_SET(2, 28, 2, TN, TN, TN, TN), GC_SET(2, 14, 2, T1, TN, TN, TN),
	    GC_SET(2, 7, 2, T1, T2, TN, TN) } },
	{ { GC_SET(3, 28, 1, TN, TN, TN, TN), GC_SET(3, 14, 1, TN, TN, TN, TN),
	    GC_SET(3, 7, 1, T1, TN, TN, TN) },
	  { GC_SET(3, 28, 2, TN, TN, TN, TN), GC_SET(3, 14, 2, TN, TN, TN, TN),
	    GC_SET(3, 7, 2, T1, TN, TN, TN) } },
	{ { GC_SET(4, 28, 1, TN, TN, TN, TN), GC_SET(4, 14, 1, TN, TN, TN, TN),
	    GC_SET(4, 7, 1, T1, TN, TN, TN) },
	  { GC_SET(4, 28, 2, TN, TN, TN, TN), GC_SET(4, 14, 2, TN, TN, TN, TN),
	    GC_SET(4, 7, 2, T1, TN, TN, TN) } },
};
#undef T1
#undef T2
#undef T3
#undef T4
#undef TN
#undef GC_SET

/* Rows [oy0, oy1) of the group's cg input planes x (h x w each) that
 * output rows [oy0, oy1) read, zero-padded, into planes of st->pw. */
static LM_AVX512 void gc_pad(const struct gc_state *st, const float *x,
			     int64_t oy0, int64_t oy1, float *p)
{
	const struct lm_conv_desc *d = &st->d;
	int64_t rows = (oy1 - oy0 - 1) * d->sh + d->kh, pw = st->pw;

	for (int64_t c = 0; c < st->cg; c++, x += d->h * d->w)
		for (int64_t i = 0; i < rows; i++) {
			int64_t iy = oy0 * d->sh - d->pt + i;
			float *row = p + c * st->plane + i * pw;
			if (iy < 0 || iy >= d->h) {
				for (int64_t j = 0; j < pw; j += 16)
					v_store_n(row + j, v_zero(), pw - j);
				continue;
			}
			const float *xr = x + iy * d->w;
			for (int64_t j = 0; j < pw; j += 16) {
				int64_t c0 = j - d->pl;
				VF a = v_load_range(xr + c0, -c0, d->w - c0);
				v_store_n(row + j, a, pw - j);
			}
		}
}

/* The band's positions (np_b of them, mg floats each, in t) into the
 * group's output planes y (np floats apart), 16 positions and 16
 * channels at a time. */
static LM_AVX512 void gc_unpack(const struct gc_state *st, const float *t,
				int64_t np_b, float *y, int64_t np)
{
	int64_t mg = st->mg;

	for (int64_t v = 0; v < st->mv; v++)
		for (int64_t p0 = 0; p0 < np_b; p0 += 16) {
			int64_t n = np_b - p0 < 16 ? np_b - p0 : 16;
			__mmask16 m = lm_lanes(0, n);
			__m512 r[16];
			for (int i = 0; i < 16; i++)
				r[i] = i < n ? _mm512_loadu_ps(t + (p0 + i) *
							       mg + 16 * v)
					     : _mm512_setzero_ps();
			lm_transpose16(r);
			for (int i = 0; i < 16; i++)
				_mm512_mask_storeu_ps(y + (16 * v + i) * np +
						      p0, m, r[i]);
		}
}

static LM_AVX512 int run_grouped(const lm_kargs *a)
{
	const struct gc_state *s = a->state;
	const struct lm_conv_desc *d = &s->d;
	const float *x = a->in[0]->data;
	const float *bias = lm_bias_input(a, d->has_bias);
	const float *sum = lm_epilogue_sum(a, &d->ep);
	int has_ep = !s->clamp && (d->ep.act != LM_ACT_NONE || sum);
	float *y = a->out[0]->data, *p = a->scratch, *t = p + s->t_off;
	int64_t ip = d->h * d->w, np = d->oh * d->ow;
	int64_t rs = d->sh * s->pw;

	for (int64_t n = 0; n < d->n; n++)
	for (int64_t g = 0; g < d->group; g++) {
		const float *xg = x + (n * d->c + g * s->cg) * ip;
		const float *bg = bias ? bias + g * s->mg : NULL;
		int64_t yo = (n * d->m + g * s->mg) * np;
		const float *wg = s->pw_ + (size_t)g * (size_t)(s->kt * s->mg);
		for (int64_t oy0 = 0; oy0 < d->oh; oy0 += s->band) {
			int64_t oy1 = oy0 + s->band < d->oh ? oy0 + s->band
							    : d->oh;
			gc_pad(s, xg, oy0, oy1, p);
			for (int64_t oy = oy0; oy < oy1; oy += s->rmax) {
				int64_t r = oy1 - oy < s->rmax ? oy1 - oy
							       : s->rmax;
				for (int64_t c = 0; c < s->chunks; c++) {
					int64_t x0 = c * s->q;
					int64_t qv = d->ow - x0;
					s->tile[r - 1](s, wg, p + (oy - oy0) *
						rs + x0 * d->sw, bg, t +
						((oy - oy0) * d->ow + x0) *
						s->mg, qv);
				}
			}
			int64_t o = oy0 * d->ow, nb = (oy1 - oy0) * d->ow;
			gc_unpack(s, t, nb, y + yo + o, np);
			for (int64_t m = 0; has_ep && m < s->mg; m++)
				lm_epilogue_apply(&d->ep, y + yo + m * np + o,
					sum ? sum + yo + m * np + o : NULL,
					(size_t)nb);
		}
	}
	return 0;
}

static void gc_free(void *p)
{
	struct gc_state *s = p;

	if (s) {
		free(s->off);
		free(s->pw_);
	}
	free(s);
}

/* The tile width for the conv: of the built ones (for mg / 16 vectors),
 * the one computing the fewest positions per row, the widest on ties. */
static int64_t gc_pick_q(const struct lm_conv_desc *d, int64_t mv,
			 int64_t *chunks)
{
	int64_t best = 0, best_n = 0;

	for (int i = 0; i < 3; i++) {
		int64_t q = gc_qs[i], n = (d->ow + q - 1) / q;
		if (!gc_tiles[mv - 1][0][i][0])
			continue;
		if (!best || n * q < best_n * best) {
			best = q;
			best_n = n;
		}
	}
	*chunks = best_n;
	return best;
}
#endif

int lm_grouped_fits(const struct lm_conv_desc *d)
{
#if defined(__x86_64__)
	int64_t mg = d->m / d->group;
	/* offsets into the band planes are 32-bit */
	double p = (double)(d->c / d->group) * (double)(d->oh * d->sh +
		   d->kh) * (double)(d->ow * d->sw + 32 * d->sw + d->kw);
	return lm_isa() >= LM_ISA_AVX512 && mg % 16 == 0 && mg <= 64 &&
	       d->dh == 1 && d->dw == 1 && d->sw <= 2 && p < 1e9;
#else
	(void)d;
	return 0;
#endif
}

/*
 * Grouped convs (not depthwise), and stems of at most 4 input channels at
 * stride 2, whose last chunk of a row wastes at most a fifth of it.
 * Stems, bench_kernels -c stem (cold, as in a network), ms, direct ->
 * grouped: 3x3 s2 224 3->32 0.514 -> 0.394, 3->16 0.296 -> 0.224, 299
 * 3->32 1.164 -> 0.859, ResNet's 7x7 s2 3->64 2.73 -> 2.52; warm 0.289
 * -> 0.269, 0.152 -> 0.141, 0.572 -> 0.519.  At batch 8 (-b 8 -c),
 * against the im2col+sgemm or direct they ran: 7x7 s2 3->64 33.2
 * (direct) -> 19.8, SqueezeNet's 3x3 s2 3->64 9.4 -> 6.0, 3->16 2.1 ->
 * 1.8; the 3->32 stems equal (3.3, 6.1 ms).
 * RegNetX-400MF's grouped layers, bench_kernels -r 40 rgx, ms, direct ->
 * grouped: 3x3 7x7x400 g25 0.087 -> 0.062, s2 14x14x400 0.103 -> 0.072,
 * 14x14x160 0.106 -> 0.088, s2 28x28x160 0.127 -> 0.107, 28x28x64 0.153
 * -> 0.139, s2 56x56x64 0.179 -> 0.169; s2 112x112x32 equal (0.35).
 * (AVX-512, 2-core EPYC VM shared with other work.)
 */
int lm_grouped_wins(const struct lm_conv_desc *d)
{
#if defined(__x86_64__)
	int64_t chunks;
	int stem = d->group == 1 && d->c <= 4 && d->sh == 2 && d->sw == 2;
	if ((d->group < 2 && !stem) || !lm_grouped_fits(d) ||
	    lm_depthwise_fits(d))
		return 0;
	int64_t q = gc_pick_q(d, d->m / d->group / 16, &chunks);
	return chunks * q * 4 <= d->ow * 5;
#else
	(void)d;
	return 0;
#endif
}

int lm_grouped_prepare(const struct lm_conv_desc *d, const float *w,
		       lm_kernel *k)
{
#if defined(__x86_64__)
	struct gc_state *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	k->state = s;
	k->free_state = gc_free;
	k->run = run_grouped;
	k->impl = "grouped";
	s->d = *d;
	s->mg = d->m / d->group;
	s->cg = d->c / d->group;
	s->kt = s->cg * d->kh * d->kw;
	s->mv = s->mg / 16;
	/* Relu and Clip without a sum are done in the tiles' registers:
	 * no pass of lm_epilogue_apply per channel and band */
	if (d->ep.sum_input < 0 && (d->ep.act == LM_ACT_RELU ||
				     d->ep.act == LM_ACT_CLIP)) {
		s->clamp = 1;
		s->lo = d->ep.act == LM_ACT_RELU ? 0.0f : d->ep.alpha;
		s->hi = d->ep.act == LM_ACT_RELU ? INFINITY : d->ep.beta;
	}
	s->q = gc_pick_q(d, s->mv, &s->chunks);
	int qi = s->q == 28 ? 0 : s->q == 14 ? 1 : 2;
	for (int r = 0; r < 4; r++) {
		s->tile[r] = gc_tiles[s->mv - 1][d->sw - 1][qi][r];
		if (s->tile[r])
			s->rmax = r + 1;
	}

	/* Bands of output rows whose positions fill at most 32 KiB, whole
	 * tiles of rows where the image has enough. */
	s->band = 8192 / (d->ow * s->mg);
	if (s->band > s->rmax)
		s->band -= s->band % s->rmax;
	s->band = s->band < 1 ? 1 : s->band > d->oh ? d->oh : s->band;
	s->pw = (s->chunks * s->q - 1) * d->sw + d->kw;
	s->plane = ((s->band - 1) * d->sh + d->kh) * s->pw;

	s->off = malloc(sizeof(int32_t) * (size_t)(s->kt ? s->kt : 1));
	if (!s->off)
		return -ENOMEM;
	for (int64_t c = 0, t = 0; c < s->cg; c++)
		for (int64_t ky = 0; ky < d->kh; ky++)
			for (int64_t kx = 0; kx < d->kw; kx++, t++)
				s->off[t] = (int32_t)(c * s->plane +
						      ky * s->pw + kx);

	/* weights: per group, tap by tap, the group's mg channels */
	size_t nw = (size_t)(d->group * s->kt * s->mg);
	s->pw_ = lm_kalloc(nw * sizeof(float));
	if (!s->pw_)
		return -ENOMEM;
	k->state_bytes = nw * sizeof(float);
	float *pw = s->pw_;
	for (int64_t g = 0; g < d->group; g++)
		for (int64_t t = 0; t < s->kt; t++)
			for (int64_t m = 0; m < s->mg; m++)
				*pw++ = w[(g * s->mg + m) * s->kt + t];

	s->t_off = (size_t)lm_round_up(s->cg * s->plane, 16);
	k->scratch_bytes = (s->t_off + (size_t)(s->band * d->ow * s->mg)) *
			   sizeof(float);
	return 0;
#else
	(void)d;
	(void)w;
	(void)k;
	return -ENOTSUP;
#endif
}
