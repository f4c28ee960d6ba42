/*
 * pool.c: MaxPool, AveragePool, GlobalAveragePool and GlobalMaxPool on
 * NCHW planes.
 *
 * A window is separable, so each output row is made in two passes: the
 * window's input rows are reduced into one padded row (contiguous, so it
 * vectorises at any stride), then the kernel columns of that row are
 * reduced at the output stride.  Padding never enters a max (padded
 * columns hold -FLT_MAX, as onnxruntime fills an empty window) and enters
 * an average only through the divisor: with count_include_pad the window
 * clipped to the padded input (ceil_mode's extra reach is not padding),
 * without it the inputs actually covered.
 */
#include "kernels.h"
#include "act.h"

#include <float.h>
#include <stdlib.h>
#include <string.h>

struct pool_state {
	struct lm_pool_desc d;
	int64_t wp;             /* padded row: (ow-1)*sw + (kw-1)*dw + 1 */
	int avx512;
	float *inv;             /* average: 1 / divisor per output position,
				 * [oh][ow], the same for every plane */
};

/* Kernel taps along one axis that fall inside [lo, hi) for the window
 * starting at `start`. */
static int64_t taps_in(int64_t start, int64_t k, int64_t dil, int64_t lo,
		       int64_t hi)
{
	int64_t n = 0;

	for (int64_t i = 0; i < k; i++) {
		int64_t p = start + i * dil;
		n += p >= lo && p < hi;
	}
	return n;
}

LM_CLONES static void max_row(float *restrict t, const float *restrict x,
			      int64_t n)
{
	LM_VFOR(i, (size_t)n, t[i] = x[i] > t[i] ? x[i] : t[i]);
}

LM_CLONES static void add_row(float *restrict t, const float *restrict x,
			      int64_t n)
{
	LM_VFOR(i, (size_t)n, t[i] += x[i]);
}

/* The column pass at a constant stride, so that it vectorises (a
 * variable stride would need gathers, which the compilers avoid). */
static inline __attribute__((always_inline)) void
cols_pass(int is_max, const int64_t sw, float *restrict y,
	  const float *restrict t, int64_t ow, int64_t kw, int64_t dw)
{
	LM_VFOR(i, (size_t)ow, y[i] = t[i * sw]);
	for (int64_t kx = 1; kx < kw; kx++) {
		const float *tk = t + kx * dw;
		if (is_max)
			LM_VFOR(i, (size_t)ow,
				y[i] = tk[i * sw] > y[i] ? tk[i * sw] : y[i]);
		else
			LM_VFOR(i, (size_t)ow, y[i] += tk[i * sw]);
	}
}

LM_CLONES static void pool_cols(int is_max, float *restrict y,
				const float *restrict t, int64_t ow,
				int64_t sw, int64_t kw, int64_t dw)
{
	if (sw == 1)
		cols_pass(is_max, 1, y, t, ow, kw, dw);
	else if (sw == 2)
		cols_pass(is_max, 2, y, t, ow, kw, dw);
	else
		cols_pass(is_max, sw, y, t, ow, kw, dw);
}

LM_CLONES static void scale_row(float *restrict y, const float *restrict inv,
				int64_t n)
{
	LM_VFOR(i, (size_t)n, y[i] *= inv[i]);
}

#if defined(__x86_64__)

/* The column pass at stride 2 with AVX-512: 32 floats of the row per 16
 * outputs, even ones kept.  t has 32 floats of slack past its end. */
static LM_AVX512 void pool_cols2(int is_max, float *y, const float *t,
				 int64_t ow, int64_t kw, int64_t dw)
{
	const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16,
					      14, 12, 10, 8, 6, 4, 2, 0);

	for (int64_t i0 = 0; i0 < ow; i0 += 16) {
		const float *p = t + 2 * i0;
		__m512 acc = _mm512_permutex2var_ps(_mm512_loadu_ps(p), even,
						    _mm512_loadu_ps(p + 16));
		for (int64_t kx = 1; kx < kw; kx++) {
			const float *q = p + kx * dw;
			__m512 v = _mm512_permutex2var_ps(_mm512_loadu_ps(q),
				even, _mm512_loadu_ps(q + 16));
			acc = is_max ? _mm512_max_ps(acc, v)
				     : _mm512_add_ps(acc, v);
		}
		int64_t left = ow - i0;
		_mm512_mask_storeu_ps(y + i0, (__mmask16)(left >= 16 ? 0xffff
					      : (1u << left) - 1), acc);
	}
}

/*
 * One plane with AVX-512, both passes inline: per output row, the
 * window's rows reduced into t a vector at a time (masked loads put the
 * padding in, so t needs no fill), then the columns at stride 1 (or 2,
 * pool_cols2) and the average's divisors.  The portable passes cost a
 * call and a scalar tail per row and pass: Inception v3's 3x3 average
 * pools on 35x35, 17x17 and 8x8 planes ran at 3.4 GFLOP/s (lamina run
 * --profile, batch 8), 42 of its 897 ms.  bench_kernels -r 30 pool, ms,
 * row passes -> this: inc avgpool 35x35x288 0.562 -> 0.240, 17x17x768
 * 0.604 -> 0.241, 8x8x2048 0.390 -> 0.214; maxpool 3x3 s2 112x64 0.189
 * -> 0.174, 111x64 0.172 -> 0.159.
 */
static LM_AVX512 void pool_plane512(const struct pool_state *s,
				    const float *xp, float *yp, float *t)
{
	const struct lm_pool_desc *d = &s->d;
	const __m512 padv = _mm512_set1_ps(d->is_max ? -FLT_MAX : 0.0f);
	/* the row t as far as outputs read it: the column pass's whole
	 * vectors past wp only feed lanes it does not store */
	int64_t tn = s->wp, te = lm_round_up(tn, 16);

	/* the slack the rows below never write: read, never stored */
	_mm512_mask_storeu_ps(t + te, lm_lanes(0, tn + 32 - te), padv);
	_mm512_mask_storeu_ps(t + te + 16, lm_lanes(0, tn + 16 - te), padv);

	for (int64_t oy = 0; oy < d->oh; oy++, yp += d->ow) {
		int64_t st = oy * d->sh - d->pt;
		for (int64_t j = 0; j < tn; j += 16) {
			int64_t c0 = j - d->pl;
			__mmask16 mv = lm_lanes(-c0, d->w - c0);
			__m512 acc = padv;
			int first = 1;
			for (int64_t ky = 0; ky < d->kh; ky++) {
				int64_t iy = st + ky * d->dh;
				if (iy < 0 || iy >= d->h)
					continue;
				__m512 v = _mm512_mask_loadu_ps(padv, mv,
						xp + iy * d->w + c0);
				acc = first ? v : d->is_max
				      ? _mm512_max_ps(acc, v)
				      : _mm512_add_ps(acc, v);
				first = 0;
			}
			_mm512_storeu_ps(t + j, acc);
		}
		if (d->sw == 1) {
			/* NULL for a max */
			const float *inv = d->is_max ? NULL
					   : s->inv + oy * d->ow;
			for (int64_t i0 = 0; i0 < d->ow; i0 += 16) {
				__m512 acc = _mm512_loadu_ps(t + i0);
				for (int64_t kx = 1; kx < d->kw; kx++) {
					__m512 v = _mm512_loadu_ps(t + i0 +
								  kx * d->dw);
					acc = d->is_max ? _mm512_max_ps(acc, v)
							: _mm512_add_ps(acc, v);
				}
				__mmask16 m = lm_lanes(0, d->ow - i0);
				if (!d->is_max)
					acc = _mm512_mul_ps(acc,
						_mm512_maskz_loadu_ps(m,
								      inv + i0));
				_mm512_mask_storeu_ps(yp + i0, m, acc);
			}
			continue;
		}
		if (d->sw == 2)
			pool_cols2(d->is_max, yp, t, d->ow, d->kw, d->dw);
		else
			pool_cols(d->is_max, yp, t, d->ow, d->sw, d->kw,
				  d->dw);
		if (!d->is_max)
			scale_row(yp, s->inv + oy * d->ow, d->ow);
	}
}
#else
static void pool_cols2(int is_max, float *y, const float *t, int64_t ow,
		       int64_t kw, int64_t dw)
{
	pool_cols(is_max, y, t, ow, 2, kw, dw);
}

static void pool_plane512(const struct pool_state *s, const float *xp,
			  float *yp, float *t)
{
	(void)s; (void)xp; (void)yp; (void)t;
}
#endif

LM_CLONES static void fill_row(float *t, float v, int64_t n)
{
	LM_VFOR(i, (size_t)n, t[i] = v);
}

static int run_pool(const lm_kargs *a)
{
	const struct pool_state *s = a->state;
	const struct lm_pool_desc *d = &s->d;
	const float *x = a->in[0]->data;
	float *y = a->out[0]->data;
	/* scratch: the padded row */
	float *t = a->scratch;
	int64_t ip = d->h * d->w, op = d->oh * d->ow;
	float pad = d->is_max ? -FLT_MAX : 0.0f;

	for (int64_t p = 0; p < d->n * d->c; p++) {
		const float *xp = x + p * ip;
		float *yp = y + p * op;
		if (s->avx512) {
			pool_plane512(s, xp, yp, t);
			continue;
		}
		for (int64_t oy = 0; oy < d->oh; oy++) {
			int64_t st = oy * d->sh - d->pt;
			fill_row(t, pad, s->wp + 32);
			int first = 1;
			for (int64_t ky = 0; ky < d->kh; ky++) {
				int64_t iy = st + ky * d->dh;
				if (iy < 0 || iy >= d->h)
					continue;
				float *tw = t + d->pl;
				int64_t wn = d->w < s->wp - d->pl
					     ? d->w : s->wp - d->pl;
				if (d->is_max)
					max_row(tw, xp + iy * d->w, wn);
				else if (first)
					memcpy(tw, xp + iy * d->w,
					       (size_t)wn * sizeof(float));
				else
					add_row(tw, xp + iy * d->w, wn);
				first = 0;
			}
			if (s->avx512 && d->sw == 2)
				pool_cols2(d->is_max, yp + oy * d->ow, t, d->ow,
					   d->kw, d->dw);
			else
				pool_cols(d->is_max, yp + oy * d->ow, t, d->ow,
					  d->sw, d->kw, d->dw);
			if (!d->is_max)
				scale_row(yp + oy * d->ow, s->inv + oy * d->ow,
					  d->ow);
		}
	}
	return 0;
}

static void pool_free(void *p)
{
	struct pool_state *s = p;

	if (s)
		free(s->inv);
	free(s);
}

/* 1 / the divisor of every output position of an average: the taps
 * inside the input, or inside the padded input (count_include_pad). */
static int average_divisors(struct pool_state *s)
{
	const struct lm_pool_desc *d = &s->d;

	s->inv = malloc((size_t)(d->oh * d->ow + 1) * sizeof(float));
	if (!s->inv)
		return -ENOMEM;
	for (int64_t oy = 0; oy < d->oh; oy++) {
		int64_t sy = oy * d->sh - d->pt;
		int64_t rows = d->count_include_pad
			? taps_in(sy, d->kh, d->dh, -d->pt, d->h + d->pb)
			: taps_in(sy, d->kh, d->dh, 0, d->h);
		for (int64_t ox = 0; ox < d->ow; ox++) {
			int64_t sx = ox * d->sw - d->pl;
			int64_t cols = d->count_include_pad
				? taps_in(sx, d->kw, d->dw, -d->pl,
					  d->w + d->pr)
				: taps_in(sx, d->kw, d->dw, 0, d->w);
			/* an empty window averages to 0 */
			s->inv[oy * d->ow + ox] = rows * cols > 0
				? 1.0f / (float)(rows * cols) : 0.0f;
		}
	}
	return 0;
}

int lm_pool_prepare(const struct lm_pool_desc *d, lm_kernel *k)
{
	struct pool_state *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->d = *d;
	s->wp = (d->ow - 1) * d->sw + (d->kw - 1) * d->dw + 1;
	/* the row must also hold the input itself for the vertical pass */
	if (s->wp < d->pl + d->w)
		s->wp = d->pl + d->w;
	k->state = s;
	k->free_state = pool_free;
	k->run = run_pool;
	s->avx512 = lm_have_avx512();
	if (!d->is_max && average_divisors(s))
		return -ENOMEM;
	k->state_bytes = d->is_max ? 0 : (size_t)(d->oh * d->ow) *
					  sizeof(float);
	/* the row and 32 floats of slack for whole-vector loads */
	k->scratch_bytes = (size_t)(s->wp + 32) * sizeof(float);
	k->impl = d->is_max ? "maxpool" : "avgpool";
	return 0;
}

/* ---- global pools ---- */

struct gpool_state {
	int64_t planes, spatial;
	int is_max;
};

static int run_global_pool(const lm_kargs *a)
{
	const struct gpool_state *s = a->state;
	const float *x = a->in[0]->data;
	float *y = a->out[0]->data;

	for (int64_t p = 0; p < s->planes; p++) {
		const float *xp = x + p * s->spatial;
		y[p] = s->is_max ? lm_vmax(xp, (size_t)s->spatial)
				 : lm_vsum(xp, (size_t)s->spatial) /
				   (float)s->spatial;
	}
	return 0;
}

int lm_global_pool_prepare(int64_t planes, int64_t spatial, int is_max,
			   lm_kernel *k)
{
	struct gpool_state *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->planes = planes;
	s->spatial = spatial;
	s->is_max = is_max;
	k->state = s;
	k->free_state = free;
	k->run = run_global_pool;
	k->impl = is_max ? "global maxpool" : "global avgpool";
	return 0;
}
