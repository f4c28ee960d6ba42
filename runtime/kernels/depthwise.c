/*
 * depthwise.c: depthwise convolution (group == C == M, one filter per
 * channel), computed directly: there is no reduction over channels for a
 * GEMM to exploit, so the work is 9 multiply-adds per output and the
 * kernel's job is to keep them in registers and stream the planes once.
 *
 * "depthwise 3x3": stride 1 or 2, dilation 1, any pads (MobileNet's
 * case): AVX-512.  Each plane is first copied into a zero-padded buffer
 * (for stride 2 with even and odd columns split), so that the inner loop
 * has no edge cases: 16 outputs of a row per vector, every tap one
 * unaligned load and one FMA, four vectors in flight.  Planes with rows
 * of at most half a vector run across 16 channels instead (below).
 *
 * "depthwise": every other kernel size, stride and dilation, and CPUs
 * without AVX-512, as plain loops over output rows the compiler
 * vectorises per target.  Each finished plane gets the epilogue.
 */
#include "kernels.h"
#include "act.h"

#include <stdlib.h>

struct dw_state {
	struct lm_conv_desc d;
	int fast3;              /* AVX-512 3x3: 1, 2 (stride), 3 (blocked) */
};

int lm_depthwise_fits(const struct lm_conv_desc *d)
{
	return d->group == d->c && d->m == d->c && d->group > 1;
}

/* One output plane, any kernel: y = bias + sum over taps, tap by tap
 * along whole output rows (ox range clipped to where the input exists). */
LM_CLONES static void dw_plane(const struct lm_conv_desc *d, const float *x,
			       const float *k, float bias, float *y)
{
	for (int64_t oy = 0; oy < d->oh; oy++) {
		float *yr = y + oy * d->ow;
		for (int64_t ox = 0; ox < d->ow; ox++)
			yr[ox] = bias;
		for (int64_t ky = 0; ky < d->kh; ky++) {
			int64_t iy = oy * d->sh - d->pt + ky * d->dh;
			if (iy < 0 || iy >= d->h)
				continue;
			const float *xr = x + iy * d->w;
			for (int64_t kx = 0; kx < d->kw; kx++) {
				int64_t off = kx * d->dw - d->pl;
				float wv = k[ky * d->kw + kx];
				/* first and one past last ox whose input
				 * ox * sw + off lies in [0, w) */
				int64_t lo = off >= 0 ? 0
					     : (-off + d->sw - 1) / d->sw;
				int64_t hi = d->w - 1 - off < 0 ? 0
					     : (d->w - 1 - off) / d->sw + 1;
				if (hi > d->ow)
					hi = d->ow;
				if (d->sw == 1) {
					for (int64_t ox = lo; ox < hi; ox++)
						yr[ox] += wv * xr[ox + off];
				} else {
					for (int64_t ox = lo; ox < hi; ox++)
						yr[ox] += wv *
							  xr[ox * d->sw + off];
				}
			}
		}
	}
}

#if defined(__x86_64__)

/* The padded plane of the 3x3 path: hp rows of wpad floats covering
 * input rows -pt.. and columns -pl.., zero outside the image.  For
 * stride 2 each row is kept deinterleaved (even columns, then odd), so
 * that every tap of 16 outputs is one contiguous load. */
static void pad_dims(const struct lm_conv_desc *d, int64_t *hp,
		     int64_t *wpad)
{
	/* The last vector of a row reaches lane 15 of the last 16-output
	 * chunk plus the taps' offset (2 columns, or 1 in a stride-2
	 * phase): one vector of slack covers it. */
	*hp = (d->oh - 1) * d->sh + 3;
	*wpad = (d->sw == 1 ? 1 : 2) * (lm_round_up(d->ow, 16) + 16);
}

/* Chunk j of a padded row: 16 s columns from padded column 16 s j, that
 * is image columns from 16 s j - pl; masked at the image's edges. */
static inline __attribute__((always_inline)) LM_AVX512 void
pad_chunk(const int s, const int masked, const float *xr, int64_t s0,
	  int64_t w, float *p, int64_t half, int64_t j)
{
	const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16,
					      14, 12, 10, 8, 6, 4, 2, 0);
	const __m512i odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17,
					     15, 13, 11, 9, 7, 5, 3, 1);
	__m512 v0, v1;

	if (masked) {
		v0 = _mm512_maskz_loadu_ps(lm_lanes(-s0, w - s0),
					   xr + s0);
		v1 = s == 1 ? v0 : _mm512_maskz_loadu_ps(lm_lanes(
				-s0 - 16, w - s0 - 16), xr + s0 + 16);
	} else {
		v0 = _mm512_loadu_ps(xr + s0);
		v1 = s == 1 ? v0 : _mm512_loadu_ps(xr + s0 + 16);
	}
	if (s == 1) {
		_mm512_storeu_ps(p + 16 * j, v0);
		return;
	}
	_mm512_storeu_ps(p + 16 * j, _mm512_permutex2var_ps(v0, even, v1));
	_mm512_storeu_ps(p + half + 16 * j,
			 _mm512_permutex2var_ps(v0, odd, v1));
}

/* Padded row r (image row r - pt) into p; chunks [j0, j1) lie inside
 * the image and copy without masks. */
static inline __attribute__((always_inline)) LM_AVX512 void
pad_row(const int s, const struct lm_conv_desc *d, int64_t r, int64_t wpad,
	int64_t j0, int64_t j1, const float *x, float *p)
{
	int64_t cw = 16 * s, nch = wpad / cw, half = wpad / 2;
	int64_t iy = r - d->pt;
	const float *xr = x + iy * d->w;

	if (iy < 0 || iy >= d->h) {
		for (int64_t j = 0; j < wpad; j += 16)
			_mm512_storeu_ps(p + j, _mm512_setzero_ps());
		return;
	}
	for (int64_t j = 0; j < j0; j++)
		pad_chunk(s, 1, xr, j * cw - d->pl, d->w, p, half, j);
	/* The input often comes from memory: the prefetcher alone leaves
	 * these loads waiting, so ask for the row 8 rows down. */
	if (iy + 8 < d->h)
		for (int64_t j = 0; j < d->w; j += 16)
			_mm_prefetch((const char *)(xr + 8 * d->w + j),
				     _MM_HINT_T0);
	for (int64_t j = j0; j < j1; j++)
		pad_chunk(s, 0, xr, j * cw - d->pl, d->w, p, half, j);
	for (int64_t j = j1; j < nch; j++)
		pad_chunk(s, 1, xr, j * cw - d->pl, d->w, p, half, j);
}

/* Tap kx of kernel row r for the 16 outputs at ox0 (padded plane). */
static inline __attribute__((always_inline)) LM_AVX512 __m512
tap(const int s, const float *row, int64_t half, int64_t ox0, int kx)
{
	if (s == 1)
		return _mm512_loadu_ps(row + ox0 + kx);
	return _mm512_loadu_ps(row + (kx == 1 ? half : 0) + ox0 + (kx == 2));
}

/*
 * One output plane from its padded input: 16 outputs per vector, up to
 * four vectors at once with one partial sum per kernel row, so that
 * twelve independent FMA chains hide the latency.
 */
static inline __attribute__((always_inline)) LM_AVX512 void
dw3x3(const int s, const struct lm_conv_desc *d, const float *x,
      float *p, int64_t hp, int64_t wpad, const float *k, float bias,
      float *y)
{
	__m512 wk[9];
	int64_t half = wpad / 2, full = d->ow / 16 * 16;
	int64_t cw = 16 * s, nch = wpad / cw;
	int64_t j0 = (d->pl + cw - 1) / cw, j1 = (d->w + d->pl) / cw;

	j0 = j0 < nch ? j0 : nch;
	j1 = j1 < j0 ? j0 : j1 < nch ? j1 : nch;
	/* The whole plane first: loads right after the stores that made
	 * them, and straddling two of them, would wait on the stores. */
	for (int64_t r = 0; r < hp; r++)
		pad_row(s, d, r, wpad, j0, j1, x, p + r * wpad);
#pragma GCC unroll 9
	for (int i = 0; i < 9; i++)
		wk[i] = _mm512_set1_ps(k[i]);
	for (int64_t oy = 0; oy < d->oh; oy++, y += d->ow) {
		const float *rows[3];
		for (int r = 0; r < 3; r++)
			rows[r] = p + (oy * s + r) * wpad;
		int64_t ox0 = 0;
		for (; ox0 + 64 <= full; ox0 += 64) {
			__m512 acc[4][3];
#pragma GCC unroll 4
			for (int j = 0; j < 4; j++) {
				acc[j][0] = _mm512_set1_ps(bias);
				acc[j][1] = _mm512_setzero_ps();
				acc[j][2] = _mm512_setzero_ps();
			}
#pragma GCC unroll 3
			for (int kx = 0; kx < 3; kx++)
#pragma GCC unroll 4
			for (int j = 0; j < 4; j++)
#pragma GCC unroll 3
			for (int r = 0; r < 3; r++)
				acc[j][r] = _mm512_fmadd_ps(wk[r * 3 + kx],
					tap(s, rows[r], half, ox0 + 16 * j, kx),
					acc[j][r]);
#pragma GCC unroll 4
			for (int j = 0; j < 4; j++)
				_mm512_storeu_ps(y + ox0 + 16 * j,
					_mm512_add_ps(_mm512_add_ps(acc[j][0],
						acc[j][1]), acc[j][2]));
		}
		for (; ox0 < d->ow; ox0 += 16) {
			__m512 acc[3] = { _mm512_set1_ps(bias),
					  _mm512_setzero_ps(),
					  _mm512_setzero_ps() };
#pragma GCC unroll 3
			for (int kx = 0; kx < 3; kx++)
#pragma GCC unroll 3
			for (int r = 0; r < 3; r++)
				acc[r] = _mm512_fmadd_ps(wk[r * 3 + kx],
					tap(s, rows[r], half, ox0, kx), acc[r]);
			_mm512_mask_storeu_ps(y + ox0,
				lm_lanes(0, d->ow - ox0),
				_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]),
					      acc[2]));
		}
	}
}

static LM_AVX512 void dw3x3_s1(const struct lm_conv_desc *d, const float *x,
			       const float *k, float bias, float *y,
			       float *pad)
{
	int64_t hp, wpad;

	pad_dims(d, &hp, &wpad);
	dw3x3(1, d, x, pad, hp, wpad, k, bias, y);
}

static LM_AVX512 void dw3x3_s2(const struct lm_conv_desc *d, const float *x,
			       const float *k, float bias, float *y,
			       float *pad)
{
	int64_t hp, wpad;

	pad_dims(d, &hp, &wpad);
	dw3x3(2, d, x, pad, hp, wpad, k, bias, y);
}


/*
 * Small planes (rows of at most half a vector, 7x7 in MobileNet) waste
 * most lanes and pay per-plane overheads row by row, so there the
 * vectors run across 16 channels instead: their planes are transposed
 * into a padded [row][column][16] block, each output position is 9
 * loads and FMAs for 16 channels, and 16 positions at a time are
 * transposed back into the NCHW planes.
 */
static void blocked_dims(const struct lm_conv_desc *d, int64_t *hp,
			 int64_t *wp)
{
	int64_t need = (d->ow - 1) * d->sw + 3;
	*hp = (d->oh - 1) * d->sh + 3;
	*wp = need > d->pl + d->w ? need : d->pl + d->w;
}

static LM_AVX512 void dw3x3_blocked(const struct lm_conv_desc *d,
				    const float *x, const float *w,
				    const float *bias, float *y, float *xb)
{
	int64_t hp, wp, ip = d->h * d->w, np = d->oh * d->ow;

	blocked_dims(d, &hp, &wp);
	for (int64_t c0 = 0; c0 < d->c; c0 += 16) {
		int64_t nc = d->c - c0 < 16 ? d->c - c0 : 16;
		/* channels c0.. of every padded row, transposed */
		for (int64_t r = 0; r < hp; r++) {
			float *row = xb + r * wp * 16;
			int64_t iy = r - d->pt;
			for (int64_t j = 0; j < wp; j++)
				_mm512_storeu_ps(row + j * 16,
						 _mm512_setzero_ps());
			if (iy < 0 || iy >= d->h)
				continue;
			for (int64_t ix0 = 0; ix0 < d->w; ix0 += 16) {
				int64_t nv = d->w - ix0 < 16 ? d->w - ix0 : 16;
				__mmask16 m = lm_lanes(0, nv);
				__m512 v[16];
				for (int l = 0; l < 16; l++)
					v[l] = l < nc ? _mm512_maskz_loadu_ps(m,
						x + (c0 + l) * ip + iy * d->w +
						ix0) : _mm512_setzero_ps();
				lm_transpose16(v);
				float *o = row + (d->pl + ix0) * 16;
				for (int64_t j = 0; j < nv; j++)
					_mm512_storeu_ps(o + j * 16, v[j]);
			}
		}
		/* the nine taps and the bias as channel vectors */
		float tw[9][16], tb[16];
		for (int l = 0; l < 16; l++) {
			for (int t = 0; t < 9; t++)
				tw[t][l] = l < nc ? w[(c0 + l) * 9 + t] : 0.0f;
			tb[l] = bias && l < nc ? bias[c0 + l] : 0.0f;
		}
		__m512 wv[9];
		for (int t = 0; t < 9; t++)
			wv[t] = _mm512_loadu_ps(tw[t]);
		__m512 bv = _mm512_loadu_ps(tb);
		int64_t oy = 0, ox = 0;  /* of position p0 + i */
		for (int64_t p0 = 0; p0 < np; p0 += 16) {
			int64_t npp = np - p0 < 16 ? np - p0 : 16;
			__m512 acc[16];
			for (int i = 0; i < 16; i++) {
				const float *q = xb + (oy * d->sh * wp +
						       ox * d->sw) * 16;
				if (i < npp - 1 && ++ox == d->ow) {
					ox = 0;
					oy++;
				}
				__m512 a = bv;
				for (int t = 0; t < 9; t++) {
					const float *qt = q + (t / 3 * wp +
							       t % 3) * 16;
					a = _mm512_fmadd_ps(wv[t],
							    _mm512_loadu_ps(qt),
							    a);
				}
				acc[i] = a;
			}
			lm_transpose16(acc);
			__mmask16 m = lm_lanes(0, npp);
			for (int64_t l = 0; l < nc; l++)
				_mm512_mask_storeu_ps(y + (c0 + l) * np + p0, m,
						      acc[l]);
			if (++ox == d->ow) {
				ox = 0;
				oy++;
			}
		}
	}
}

#else

static void pad_dims(const struct lm_conv_desc *d, int64_t *hp,
		     int64_t *wpad)
{
	(void)d;
	*hp = *wpad = 0;
}

static void blocked_dims(const struct lm_conv_desc *d, int64_t *hp,
			 int64_t *wp)
{
	(void)d;
	*hp = *wp = 0;
}

static void dw3x3_blocked(const struct lm_conv_desc *d, const float *x,
			  const float *w, const float *bias, float *y,
			  float *xb)
{
	(void)d; (void)x; (void)w; (void)bias; (void)y; (void)xb;
}

static void dw3x3_s1(const struct lm_conv_desc *d, const float *x,
		     const float *k, float bias, float *y, float *pad)
{
	(void)pad;
	dw_plane(d, x, k, bias, y);
}

static void dw3x3_s2(const struct lm_conv_desc *d, const float *x,
		     const float *k, float bias, float *y, float *pad)
{
	(void)pad;
	dw_plane(d, x, k, bias, y);
}

#endif

static int run_depthwise(const lm_kargs *a)
{
	const struct dw_state *s = a->state;
	const struct lm_conv_desc *d = &s->d;
	const float *x = a->in[0]->data, *w = a->in[1]->data;
	const float *bias = d->has_bias && a->n_in > 2 && a->in[2]
			    ? a->in[2]->data : NULL;
	const float *sum = d->ep.sum_input >= 0
			   ? a->in[d->ep.sum_input]->data : NULL;
	int has_ep = d->ep.act != LM_ACT_NONE || sum;
	float *y = a->out[0]->data;
	int64_t ip = d->h * d->w, op = d->oh * d->ow, kk = d->kh * d->kw;

	for (int64_t n = 0; n < d->n; n++) {
		if (s->fast3 == 3) {
			int64_t off = n * d->c * op;
			dw3x3_blocked(d, x + n * d->c * ip, w, bias, y + off,
				      a->scratch);
			/* small planes: the whole image at once */
			if (has_ep)
				lm_epilogue_apply(&d->ep, y + off,
						  sum ? sum + off : NULL,
						  (size_t)(d->c * op));
			continue;
		}
		for (int64_t c = 0; c < d->c; c++) {
			int64_t i = n * d->c + c;
			float b = bias ? bias[c] : 0.0f;
			if (s->fast3 == 1)
				dw3x3_s1(d, x + i * ip, w + c * kk, b,
					 y + i * op, a->scratch);
			else if (s->fast3 == 2)
				dw3x3_s2(d, x + i * ip, w + c * kk, b,
					 y + i * op, a->scratch);
			else
				dw_plane(d, x + i * ip, w + c * kk, b,
					 y + i * op);
			/* a plane is at most a few tens of KiB: still in
			 * L1 or L2 */
			if (has_ep)
				lm_epilogue_apply(&d->ep, y + i * op,
						  sum ? sum + i * op : NULL,
						  (size_t)op);
		}
	}
	return 0;
}

int lm_depthwise_prepare(const struct lm_conv_desc *d, lm_kernel *k)
{
	struct dw_state *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->d = *d;
	if (d->kh == 3 && d->kw == 3 && d->dh == 1 && d->dw == 1 &&
	    d->sh == d->sw && (d->sh == 1 || d->sh == 2) && lm_have_avx512()) {
		int64_t hp, wpad;
		s->fast3 = (int)d->sh;
		pad_dims(d, &hp, &wpad);
		k->scratch_bytes = (size_t)(hp * wpad) * sizeof(float);
		/* rows of at most half a vector: across channels instead
		 * (bench_kernels, 7x7 outputs: 18 against 13 GFLOP/s; at
		 * 14x14 the rows still win, 28 against 26) */
		if (d->ow < 12) {
			s->fast3 = 3;
			blocked_dims(d, &hp, &wpad);
			k->scratch_bytes = (size_t)(hp * wpad * 16) *
					   sizeof(float);
		}
	}
	k->state = s;
	k->free_state = free;
	k->run = run_depthwise;
	k->impl = s->fast3 ? "depthwise 3x3" : "depthwise";
	return 0;
}
