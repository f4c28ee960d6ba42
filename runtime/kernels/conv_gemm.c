/*
 * conv_gemm.c: convolution as a matrix product, and ConvTranspose.
 *
 * Per image and group, Y (M/g x OH*OW) = W (M/g x C/g*kh*kw) * im2col(X).
 * Three ways to run it:
 *
 *   "1x1 sgemm", "im2col+sgemm"  lamina's AVX-512 GEMM (pgemm.c) with the
 *       weights packed at prepare and B packed panel by panel straight
 *       from the image: a 1x1 stride-1 conv reads X as the matrix it is,
 *       any other conv has its im2col columns built in the packing, so no
 *       im2col buffer exists (with a column stride the image's rows are
 *       first split by phase, so that every copy stays contiguous).  Bias
 *       rides in the accumulators; the fused epilogue is applied in the
 *       micro-kernel's store when it is Relu, Clip or a bare residual sum
 *       (struct lm_clamp), else per row block while it is in cache.
 *   "1x1 gather+sgemm"  a strided 1x1 conv without pads: the pixels it
 *       reads gathered into a matrix first (a quarter of the image at
 *       stride 2, where the phase split would copy all of it), then the
 *       same GEMM.  bench_kernels -c, ms: r50 1x1 s2 56x56 256->512 2.30
 *       -> 2.08, r18 64->128 0.24 -> 0.20, rgx 56 32->64 0.09 -> 0.07.
 *   "1x1 sgemm-t"  1x1 convs on few pixels, the same GEMM the other way
 *       round (see below).
 *   "1x1 openblas", "im2col+openblas"  the portable path: im2col into
 *       scratch (none for 1x1) and cblas_sgemm.  Used on CPUs without
 *       AVX-512 and when the weight is not a constant.
 *
 * ConvTranspose is the adjoint: col = W^T X on OpenBLAS, then col2im adds
 * each column into the output window it came from.
 */
#include "kernels.h"

#include <stdlib.h>
#include <string.h>

struct conv_state {
	struct lm_conv_desc d;
	int sgemm;              /* pgemm path, else OpenBLAS */
	int direct;             /* 1x1, stride 1, no pads: B is X */
	int gather;             /* 1x1 strided, no pads: B is X's pixels
				 * that the conv reads, gathered */
	int trans;              /* 1x1 on few pixels, as Y^T = X^T W^T */
	int64_t mg, cg, kg, np; /* per group: M, C, K; output pixels */
	float *pa;              /* packed weights, group after group */
	size_t pa_group;        /* floats per group */
	int64_t wq;             /* stride > 1: phase length, ceil(w / sw) */
	size_t split_off;       /* floats of scratch before the split image */
	size_t gather_off;      /* trans: scratch floats before gathered X */
};

static void conv_free(void *p)
{
	struct conv_state *s = p;

	if (s)
		free(s->pa);
	free(s);
}

/* ---- AVX-512: B panels straight from the image ---- */

/*
 * One image and group of X, read as its im2col matrix.  With a column
 * stride sw > 1, x is the image with every row split into its sw phases
 * (columns j * sw + p for p < sw, each wq = ceil(w / sw) long), so that
 * the inputs of consecutive outputs are consecutive in memory.
 */
struct im2col {
	const float *x;
	int64_t h, w, kh, kw, sh, sw, dh, dw, pt, pl, ow;
	int64_t wq;
};

#if defined(__x86_64__)

/* d[j] = xr[ix0 + j] for j < len, 0 outside [0, w).  Lanes that fall
 * outside are masked off, so the loads never touch memory there. */
static LM_AVX512 void fill_run(float *d, const float *xr, int64_t ix0,
			       int64_t len, int64_t w)
{
	for (int64_t j = 0; j < len; j += 16) {
		int64_t s0 = ix0 + j;
		__mmask16 mv = lm_lanes(-s0, w - s0);
		__mmask16 ms = lm_lanes(0, len - j);
		__m512 v = mv ? _mm512_maskz_loadu_ps(mv, xr + s0)
			      : _mm512_setzero_ps();
		_mm512_mask_storeu_ps(d + j, ms, v);
	}
}

/* Rows of c channels of x split into their sw phases (see struct
 * im2col): xs row (c, iy) holds phase 0, then phase 1, ... each wq long,
 * zero-padded. */
static LM_AVX512 void split_phases(const float *x, int64_t c, int64_t h,
				   int64_t w, int64_t sw, int64_t wq,
				   float *xs)
{
	const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16,
					      14, 12, 10, 8, 6, 4, 2, 0);
	const __m512i odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17,
					     15, 13, 11, 9, 7, 5, 3, 1);

	for (int64_t r = 0; r < c * h; r++, x += w, xs += sw * wq) {
		if (sw != 2) {
			for (int64_t p = 0; p < sw; p++)
				for (int64_t j = 0; j < wq; j++)
					xs[p * wq + j] = j * sw + p < w
						? x[j * sw + p] : 0.0f;
			continue;
		}
		for (int64_t j = 0; j < wq; j += 16) {
			int64_t s0 = 2 * j;
			__mmask16 m0 = lm_lanes(0, w - s0);
			__mmask16 m1 = lm_lanes(0, w - s0 - 16);
			__mmask16 ms = lm_lanes(0, wq - j);
			__m512 v0 = _mm512_maskz_loadu_ps(m0, x + s0);
			__m512 v1 = _mm512_maskz_loadu_ps(m1, x + s0 + 16);
			_mm512_mask_storeu_ps(xs + j, ms,
				_mm512_permutex2var_ps(v0, even, v1));
			_mm512_mask_storeu_ps(xs + wq + j, ms,
				_mm512_permutex2var_ps(v0, odd, v1));
		}
	}
}

/*
 * The pixels a strided 1x1 conv without pads reads, of c channels of x:
 * g (c x oh * ow) row c, column oy * ow + ox = x (c, oy * sh, ox * sw).
 * Only the rows and columns read are touched; at stride 2 the even
 * columns are picked 16 at a time.
 */
static LM_AVX512 void gather_1x1(const float *x, int64_t c, int64_t h,
				 int64_t w, int64_t sh, int64_t sw,
				 int64_t oh, int64_t ow, float *g)
{
	const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16,
					      14, 12, 10, 8, 6, 4, 2, 0);

	for (int64_t ch = 0; ch < c; ch++, x += h * w)
		for (int64_t oy = 0; oy < oh; oy++, g += ow) {
			const float *xr = x + oy * sh * w;
			if (sw != 2) {
				for (int64_t ox = 0; ox < ow; ox++)
					g[ox] = xr[ox * sw];
				continue;
			}
			for (int64_t j = 0; j < ow; j += 16) {
				int64_t s0 = 2 * j;
				__m512 v0 = _mm512_maskz_loadu_ps(
					lm_lanes(0, w - s0), xr + s0);
				__m512 v1 = _mm512_maskz_loadu_ps(
					lm_lanes(0, w - s0 - 16), xr + s0 + 16);
				_mm512_mask_storeu_ps(g + j,
					lm_lanes(0, ow - j),
					_mm512_permutex2var_ps(v0, even, v1));
			}
		}
}

static LM_AVX512 void zero_run(float *d, int64_t len)
{
	for (int64_t j = 0; j < len; j += 16)
		_mm512_mask_storeu_ps(d + j, lm_lanes(0, len - j),
				      _mm512_setzero_ps());
}

/*
 * lm_pgemm_pack_fn for im2col(X): row k = (c, ky, kx) of B, column
 * p = (oy, ox).  A panel's 48 columns are cut into runs along output rows
 * once; each k then copies every run from one input row (or zeros it when
 * the row is in the padding).
 */
static LM_AVX512 void pack_im2col(const void *src, int64_t k0, int64_t kc,
				  int64_t n0, int64_t nc, float *dst)
{
	const struct im2col *s = src;
	struct run {
		int64_t oy, ox, len, off;
	} runs[LM_PG_NR];
	int64_t khw = s->kh * s->kw;

	for (int64_t p0 = 0; p0 < nc; p0 += LM_PG_NR, dst += LM_PG_NR * kc) {
		int64_t wd = nc - p0 < LM_PG_NR ? nc - p0 : LM_PG_NR;
		int64_t st = wd == LM_PG_NR ? LM_PG_NR : lm_round_up(wd, 16);
		int nruns = 0;
		for (int64_t q = 0; q < wd;) {
			int64_t pos = n0 + p0 + q;
			int64_t ox = pos % s->ow, len = s->ow - ox;
			if (len > wd - q)
				len = wd - q;
			runs[nruns++] = (struct run){ pos / s->ow, ox, len, q };
			q += len;
		}
		int64_t c = k0 / khw, r = k0 % khw;
		int64_t ky = r / s->kw, kx = r % s->kw;
		float *d = dst;
		for (int64_t kk = 0; kk < kc; kk++, d += st) {
			/* Tap (c, ky, kx) reads rows of channel c shifted by
			 * q: of the image, or with a stride, of its phase p
			 * (tap offset = q * sw + p). */
			int64_t off = kx * s->dw - s->pl, p = 0, q = off;
			int64_t len = s->w, pitch = s->w;
			if (s->sw > 1) {
				p = ((off % s->sw) + s->sw) % s->sw;
				q = (off - p) / s->sw;
				len = (s->w - p + s->sw - 1) / s->sw;
				pitch = s->sw * s->wq;
			}
			const float *xc = s->x + c * s->h * pitch + p * s->wq;
			for (int i = 0; i < nruns; i++) {
				const struct run *ru = &runs[i];
				int64_t iy = ru->oy * s->sh - s->pt +
					     ky * s->dh;
				if (iy < 0 || iy >= s->h)
					zero_run(d + ru->off, ru->len);
				else
					fill_run(d + ru->off, xc + iy * pitch,
						 ru->ox + q, ru->len, len);
			}
			if (wd < st)
				zero_run(d + wd, st - wd);
			if (++kx == s->kw) {
				kx = 0;
				if (++ky == s->kh) {
					ky = 0;
					c++;
				}
			}
		}
	}
}

#else

static void pack_im2col(const void *src, int64_t k0, int64_t kc, int64_t n0,
			int64_t nc, float *dst)
{
	(void)src; (void)k0; (void)kc; (void)n0; (void)nc; (void)dst;
}

static void split_phases(const float *x, int64_t c, int64_t h, int64_t w,
			 int64_t sw, int64_t wq, float *xs)
{
	(void)x; (void)c; (void)h; (void)w; (void)sw; (void)wq; (void)xs;
}

static void gather_1x1(const float *x, int64_t c, int64_t h, int64_t w,
		       int64_t sh, int64_t sw, int64_t oh, int64_t ow,
		       float *g)
{
	(void)x; (void)c; (void)h; (void)w; (void)sh; (void)sw; (void)oh;
	(void)ow; (void)g;
}

#endif

static int run_sgemm(const lm_kargs *a)
{
	const struct conv_state *s = a->state;
	const struct lm_conv_desc *d = &s->d;
	const float *x = a->in[0]->data, *bias = lm_bias_input(a, d->has_bias);
	const float *sum = lm_epilogue_sum(a, &d->ep);
	float *y = a->out[0]->data;
	float *xsplit = (float *)a->scratch + s->split_off;
	int64_t xs = d->h * d->w;

	for (int64_t n = 0; n < d->n; n++) {
		for (int64_t g = 0; g < d->group; g++) {
			const float *xg = x + (n * d->c + g * s->cg) * xs;
			int64_t yo = (n * d->m + g * s->mg) * s->np;
			struct lm_pgemm_out o = {
				.c = y + yo, .ldc = s->np,
				.bias = bias ? bias + g * s->mg : NULL,
				.ep = &d->ep, .sum = sum ? sum + yo : NULL,
				.ldsum = s->np,
			};
			const float *pa = s->pa + (size_t)g * s->pa_group;
			if (s->gather) {
				gather_1x1(xg, s->cg, d->h, d->w, d->sh,
					   d->sw, d->oh, d->ow, xsplit);
				struct lm_pgemm_mat src = { xsplit, s->np };
				lm_pgemm(pa, s->mg, s->np, s->kg,
					 lm_pgemm_pack_mat, &src, &o,
					 a->scratch);
			} else if (s->direct) {
				struct lm_pgemm_mat src = { xg, xs };
				lm_pgemm(pa, s->mg, s->np, s->kg,
					 lm_pgemm_pack_mat, &src, &o,
					 a->scratch);
			} else {
				struct im2col src = {
					xg, d->h, d->w, d->kh, d->kw, d->sh,
					d->sw, d->dh, d->dw, d->pt, d->pl,
					d->ow, s->wq,
				};
				if (d->sw > 1) {
					split_phases(xg, s->cg, d->h, d->w,
						     d->sw, s->wq, xsplit);
					src.x = xsplit;
				}
				lm_pgemm(pa, s->mg, s->np, s->kg, pack_im2col,
					 &src, &o, a->scratch);
			}
		}
	}
	return 0;
}

/* ---- 1x1 on few pixels: Y^T = X^T W^T ----
 *
 * With 7x7 outputs the 48-wide panels over pixels are a third empty (49
 * is 48 + 1), so the product runs the other way round: the pixels become
 * the 8 broadcast rows (X read in place, a row of 8 pixels per channel),
 * the output channels the 48 vector columns (W^T packed at prepare), and
 * the result is transposed back into NCHW 16 x 16 at a time.
 */

#if defined(__x86_64__)

/*
 * y (m x np) = ct^T (ct is np x m) + bias, 16 x 16 blocks, then by
 * `fused`: 0 nothing, 1 the clamp, 2 the residual (ep->sum, laid out like
 * y) and the clamp.  fused is a constant in each instance below, and lo
 * and hi are broadcast after the transpose: with tests in the row loop,
 * or two more vectors live across the transpose, GCC spilled registers
 * (bench_kernels, sgemm-t: 2-4% slower than with the separate pass).
 */
static inline __attribute__((always_inline)) LM_AVX512 void
store_t(const int fused, const float *ct, int64_t np, int64_t m,
	const float *bias, const struct lm_clamp *ep, float *y)
{
	for (int64_t m0 = 0; m0 < m; m0 += 16) {
		int64_t nm = m - m0 < 16 ? m - m0 : 16;
		__mmask16 mm = lm_lanes(0, nm);
		for (int64_t p0 = 0; p0 < np; p0 += 16) {
			int64_t npp = np - p0 < 16 ? np - p0 : 16;
			__m512 r[16];
			for (int i = 0; i < 16; i++)
				r[i] = i < npp ? _mm512_maskz_loadu_ps(mm,
						ct + (p0 + i) * m + m0)
					       : _mm512_setzero_ps();
			lm_transpose16(r);
			__mmask16 mp = lm_lanes(0, npp);
			__m512 lo = _mm512_set1_ps(fused ? ep->lo : 0.0f);
			__m512 hi = _mm512_set1_ps(fused ? ep->hi : 0.0f);
			for (int64_t l = 0; l < nm; l++) {
				int64_t at = (m0 + l) * np + p0;
				__m512 v = r[l];
				if (bias)
					v = _mm512_add_ps(v, _mm512_set1_ps(
						bias[m0 + l]));
				if (fused == 2)
					v = _mm512_add_ps(v,
						_mm512_maskz_loadu_ps(mp,
							ep->sum + at));
				if (fused)
					v = lm_clamp_ps(v, lo, hi);
				_mm512_mask_storeu_ps(y + at, mp, v);
			}
		}
	}
}

static LM_AVX512 void store_t_plain(const float *ct, int64_t np, int64_t m,
				    const float *bias, float *y)
{
	store_t(0, ct, np, m, bias, NULL, y);
}

static LM_AVX512 void store_t_clamp(const float *ct, int64_t np, int64_t m,
				    const float *bias,
				    const struct lm_clamp *ep, float *y)
{
	store_t(1, ct, np, m, bias, ep, y);
}

static LM_AVX512 void store_t_sum(const float *ct, int64_t np, int64_t m,
				  const float *bias, const struct lm_clamp *ep,
				  float *y)
{
	store_t(2, ct, np, m, bias, ep, y);
}

/* y = ct^T + bias, then with ep its residual and clamp. */
static void store_transposed(const float *ct, int64_t np, int64_t m,
			     const float *bias, const struct lm_clamp *ep,
			     float *y)
{
	if (!ep)
		store_t_plain(ct, np, m, bias, y);
	else if (!ep->sum)
		store_t_clamp(ct, np, m, bias, ep, y);
	else
		store_t_sum(ct, np, m, bias, ep, y);
}

#else

static void store_transposed(const float *ct, int64_t np, int64_t m,
			     const float *bias, const struct lm_clamp *ep,
			     float *y)
{
	(void)ct; (void)np; (void)m; (void)bias; (void)ep; (void)y;
}

#endif

static int run_sgemm_t(const lm_kargs *a)
{
	const struct conv_state *s = a->state;
	const struct lm_conv_desc *d = &s->d;
	const float *x = a->in[0]->data, *bias = lm_bias_input(a, d->has_bias);
	const float *sum = lm_epilogue_sum(a, &d->ep);
	float *y = a->out[0]->data, *ct = a->scratch;
	float *xg = (float *)a->scratch + s->gather_off;
	int has_ep = d->ep.act != LM_ACT_NONE || sum;
	struct lm_clamp cl = { .ldsum = s->np };
	int in_store = has_ep && lm_clamp_get(&d->ep, &cl);

	for (int64_t n = 0; n < d->n; n++) {
		const float *xn = x + n * d->c * d->h * d->w;
		if (!s->direct) {
			/* strided 1x1: the pixels it reads, packed */
			for (int64_t c = 0; c < d->c; c++)
				for (int64_t oy = 0; oy < d->oh; oy++)
					for (int64_t ox = 0; ox < d->ow; ox++)
						xg[(c * d->oh + oy) * d->ow +
						   ox] = xn[(c * d->h + oy *
							     d->sh) * d->w +
							    ox * d->sw];
			xn = xg;
		}
		lm_pgemm_rows(xn, 1, s->np, s->np, s->kg, s->pa, d->m, ct,
			      d->m);
		float *yn = y + n * d->m * s->np;
		cl.sum = sum ? sum + n * d->m * s->np : NULL;
		store_transposed(ct, s->np, d->m, bias, in_store ? &cl : NULL,
				 yn);
		for (int64_t m = 0; has_ep && !in_store && m < d->m; m++)
			lm_epilogue_apply(&d->ep, yn + m * s->np,
					  sum ? sum + (n * d->m + m) * s->np
					      : NULL, (size_t)s->np);
	}
	return 0;
}

/* ---- portable: im2col + OpenBLAS ---- */

/* The im2col matrix of one image and group: row (c, ky, kx), column
 * (oy, ox). */
static void im2col(const struct lm_conv_desc *d, int64_t cg, const float *x,
		   float *col)
{
	for (int64_t c = 0; c < cg; c++)
	for (int64_t ky = 0; ky < d->kh; ky++)
	for (int64_t kx = 0; kx < d->kw; kx++) {
		const float *xc = x + c * d->h * d->w;
		for (int64_t oy = 0; oy < d->oh; oy++, col += d->ow) {
			int64_t iy = oy * d->sh - d->pt + ky * d->dh;
			if (iy < 0 || iy >= d->h) {
				memset(col, 0, (size_t)d->ow * sizeof(float));
				continue;
			}
			const float *xr = xc + iy * d->w;
			int64_t ix = kx * d->dw - d->pl;
			for (int64_t ox = 0; ox < d->ow; ox++, ix += d->sw)
				col[ox] = ix >= 0 && ix < d->w ? xr[ix] : 0.0f;
		}
	}
}

static int run_openblas(const lm_kargs *a)
{
	const struct conv_state *s = a->state;
	const struct lm_conv_desc *d = &s->d;
	const float *x = a->in[0]->data, *w = a->in[1]->data;
	const float *bias = lm_bias_input(a, d->has_bias), *sum = lm_epilogue_sum(a, &d->ep);
	float *y = a->out[0]->data, *col = a->scratch;
	int64_t xs = d->h * d->w;

	for (int64_t n = 0; n < d->n; n++) {
		for (int64_t g = 0; g < d->group; g++) {
			const float *xg = x + (n * d->c + g * s->cg) * xs;
			float *yg = y + (n * d->m + g * s->mg) * s->np;
			const float *b = xg;
			if (!s->direct) {
				im2col(d, s->cg, xg, col);
				b = col;
			}
			for (int64_t i = 0; bias && i < s->mg; i++)
				for (int64_t j = 0; j < s->np; j++)
					yg[i * s->np + j] = bias[g * s->mg + i];
			lm_sgemm(0, 0, s->mg, s->np, s->kg, 1.0f,
				 w + g * s->mg * s->kg, s->kg, b, s->np,
				 bias ? 1.0f : 0.0f, yg, s->np);
		}
	}
	if (d->ep.act != LM_ACT_NONE || sum)
		lm_epilogue_apply(&d->ep, y, sum,
				  (size_t)(d->n * d->m * s->np));
	return 0;
}

int lm_conv_gemm_t_fits(const struct lm_conv_desc *d)
{
	return d->kh == 1 && d->kw == 1 && d->group == 1 && d->pt == 0 &&
	       d->pl == 0 && d->pb == 0 && d->pr == 0;
}

/* Whole vectors of output channels, and few pixels (bench_kernels: 7x7
 * and 14x14 outputs) or fewer outputs than inputs: a projection's K
 * deep reduction fills the 8 x 48 tiles either way, and its few output
 * channels fit the 48 columns better than its pixels' ragged panels
 * (warm caches, ms: mv2 28x28 192->32 0.096 -> 0.086, 14x14 384->64
 * 0.095 -> 0.084, r50 56x56 256->64 0.982 -> 0.936; with cold caches
 * mixed, SqueezeNet's 55x55 64->16 0.140 -> 0.233).  Whole models at
 * batch 1, lamina run --repeat 30, alternating 3 each: MobileNetV2 8.00
 * -> 7.83 ms, SqueezeNet 5.72 -> 5.63, ResNet-50 65.5 -> 64.0; MnasNet,
 * RegNetX and batch 8 unchanged within noise. */
int lm_conv_gemm_t_wins(const struct lm_conv_desc *d)
{
	return lm_conv_gemm_t_fits(d) && d->m % 16 == 0 &&
	       (d->oh * d->ow <= 100 || d->c > d->m);
}

/* One output pixel per image (the squeeze-excitation convs of MobileNetV3
 * and EfficientNet): a matrix-vector product over the weights as they
 * lie, which lm_sgemm hands to OpenBLAS's sgemv.  bench_kernels
 * "se 1x1": 672->168 in 5 us against 33 for the packed GEMM, whose
 * 48-column panels hold one real column. */
int lm_conv_gemv_wins(const struct lm_conv_desc *d)
{
	return d->kh == 1 && d->kw == 1 && d->group == 1 && d->oh == 1 &&
	       d->ow == 1 && d->pt == 0 && d->pl == 0 && d->pb == 0 &&
	       d->pr == 0;
}

int lm_conv_gemm_prepare(const struct lm_conv_desc *d, const float *w,
			 enum lm_conv_impl impl, lm_kernel *k)
{
	struct conv_state *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->d = *d;
	s->mg = d->m / d->group;
	s->cg = d->c / d->group;
	s->kg = s->cg * d->kh * d->kw;
	s->np = d->oh * d->ow;
	s->direct = d->kh == 1 && d->kw == 1 && d->sh == 1 && d->sw == 1 &&
		    d->pt == 0 && d->pl == 0 && d->pb == 0 && d->pr == 0;
	s->sgemm = (impl == LM_CONV_SGEMM || impl == LM_CONV_SGEMM_T) && w &&
		   lm_have_avx512();
	s->gather = s->sgemm && impl == LM_CONV_SGEMM && !s->direct &&
		    d->kh == 1 && d->kw == 1 && d->pt == 0 && d->pl == 0 &&
		    d->pb == 0 && d->pr == 0;
	s->trans = s->sgemm && impl == LM_CONV_SGEMM_T;
	k->state = s;
	k->free_state = conv_free;
	if (s->trans) {
		/* W^T (K x M) packed whole into 48-channel panels */
		size_t pb = lm_pgemm_packed_b_floats(s->kg, d->m);
		s->pa = lm_kalloc(pb * sizeof(float));
		if (!s->pa)
			return -ENOMEM;
		lm_pgemm_pack_b(w, 1, s->kg, s->kg, d->m, s->pa);
		k->run = run_sgemm_t;
		k->state_bytes = pb * sizeof(float);
		/* Y^T with 16 floats of slack for the last masked rows, then
		 * the gathered pixels of a strided conv */
		s->gather_off = (size_t)lm_round_up(s->np * d->m + 16, 16);
		k->scratch_bytes = (s->gather_off + (s->direct ? 0
				    : (size_t)(d->c * s->np))) * sizeof(float);
		k->impl = "1x1 sgemm-t";
	} else if (s->sgemm) {
		s->pa_group = lm_pgemm_packed_a_floats(s->mg, s->kg);
		s->pa = lm_kalloc(s->pa_group * (size_t)d->group *
				  sizeof(float));
		if (!s->pa)
			return -ENOMEM;
		for (int64_t g = 0; g < d->group; g++)
			lm_pgemm_pack_a(w + g * s->mg * s->kg, s->kg, s->mg,
					s->kg, s->pa + (size_t)g * s->pa_group);
		k->run = run_sgemm;
		k->state_bytes = s->pa_group * (size_t)d->group * sizeof(float);
		/* the pgemm work buffer, then the phase-split image */
		s->split_off = (size_t)lm_round_up(
			(int64_t)lm_pgemm_work_floats(s->np, s->kg), 16);
		s->wq = (d->w + d->sw - 1) / d->sw;
		k->scratch_bytes = s->split_off * sizeof(float);
		if (s->gather)
			k->scratch_bytes += (size_t)(s->cg * s->np) *
					    sizeof(float);
		else if (d->sw > 1 && !s->direct)
			k->scratch_bytes += (size_t)(s->cg * d->h * d->sw *
						     s->wq) * sizeof(float);
		k->impl = s->direct ? "1x1 sgemm" : s->gather
			  ? "1x1 gather+sgemm" : "im2col+sgemm";
	} else {
		k->run = run_openblas;
		k->scratch_bytes = s->direct ? 0 : (size_t)(s->kg * s->np) *
						   sizeof(float);
		/* lm_sgemm runs one pixel as a matrix-vector product */
		k->impl = s->direct && s->np == 1 ? "1x1 openblas sgemv"
			  : s->direct ? "1x1 openblas" : "im2col+openblas";
	}
	return 0;
}

/* ---- ConvTranspose ---- */

struct convt_state {
	struct lm_convt_desc d;
	int64_t mg, cg, kg;     /* per group: M, C; rows of col = M/g*kh*kw */
};

/* Y (one group's M/g channels) += col2im(col). */
static void col2im(const struct lm_convt_desc *d, int64_t mg,
		   const float *col, float *y)
{
	int64_t np = d->h * d->w;

	for (int64_t m = 0; m < mg; m++)
	for (int64_t ky = 0; ky < d->kh; ky++)
	for (int64_t kx = 0; kx < d->kw; kx++, col += np) {
		float *ym = y + m * d->oh * d->ow;
		for (int64_t iy = 0; iy < d->h; iy++) {
			int64_t oy = iy * d->sh - d->pt + ky * d->dh;
			if (oy < 0 || oy >= d->oh)
				continue;
			float *yr = ym + oy * d->ow;
			const float *cr = col + iy * d->w;
			int64_t ox = kx * d->dw - d->pl;
			for (int64_t ix = 0; ix < d->w; ix++, ox += d->sw)
				if (ox >= 0 && ox < d->ow)
					yr[ox] += cr[ix];
		}
	}
}

static int run_convt(const lm_kargs *a)
{
	const struct convt_state *s = a->state;
	const struct lm_convt_desc *d = &s->d;
	const float *x = a->in[0]->data, *w = a->in[1]->data;
	const float *bias = lm_bias_input(a, d->has_bias);
	const float *sum = lm_epilogue_sum(a, &d->ep);
	float *y = a->out[0]->data, *col = a->scratch;
	int64_t np = d->h * d->w, onp = d->oh * d->ow;

	for (int64_t n = 0; n < d->n; n++) {
		for (int64_t g = 0; g < d->group; g++) {
			const float *xg = x + (n * d->c + g * s->cg) * np;
			float *yg = y + (n * d->m + g * s->mg) * onp;
			/* col (M/g*kh*kw x HW) = W_g^T (C/g rows) * X_g */
			lm_sgemm(1, 0, s->kg, np, s->cg, 1.0f,
				 w + g * s->cg * s->kg, s->kg, xg, np, 0.0f,
				 col, np);
			for (int64_t i = 0; i < s->mg; i++) {
				float b = bias ? bias[g * s->mg + i] : 0.0f;
				for (int64_t j = 0; j < onp; j++)
					yg[i * onp + j] = b;
			}
			col2im(d, s->mg, col, yg);
		}
	}
	if (d->ep.act != LM_ACT_NONE || sum)
		lm_epilogue_apply(&d->ep, y, sum, (size_t)(d->n * d->m * onp));
	return 0;
}

int lm_convt_prepare(const struct lm_convt_desc *d, lm_kernel *k)
{
	struct convt_state *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->d = *d;
	s->mg = d->m / d->group;
	s->cg = d->c / d->group;
	s->kg = s->mg * d->kh * d->kw;
	k->state = s;
	k->free_state = free;
	k->run = run_convt;
	k->scratch_bytes = (size_t)(s->kg * d->h * d->w) * sizeof(float);
	k->impl = "sgemm+col2im";
	return 0;
}
