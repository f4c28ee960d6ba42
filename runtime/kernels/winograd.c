/*
 * winograd.c: 3x3 stride-1 convolutions by Winograd's minimal filtering,
 * F(4x4, 3x3) and F(2x2, 3x3) (Lavin and Gray, "Fast Algorithms for
 * Convolutional Neural Networks", 2016).
 *
 * Each m x m output tile comes from an a x a input tile (a = m + 2):
 *     Y = A^T [ (G g G^T) .* (B^T d B) ] A
 * so the per-tile products become a*a independent matrix products over
 * channels: for each transform position t,
 *     M_t (tiles x M) = V_t (tiles x C) * U_t (C x M).
 * F(4x4) needs 36 multiplies per 16 outputs per channel pair where direct
 * convolution needs 144: 4x less arithmetic, 2.25x for F(2x2).  F(6x6) is
 * left out: its transforms lose too much float32 precision.
 *
 * Layout: the transforms run on 16 channels at once, so the input is
 * first copied into a zero-padded channel-blocked buffer [C/16][H'][W'][16]
 * (16x16 transposes).  V_t is then plain rows of channels, which the GEMM
 * broadcasts from directly (lm_pgemm_rows); U_t was packed into panels at
 * prepare; M_t comes out as rows of output channels, which the output
 * transform reads 16 at a time and transposes back into NCHW.  Tiles are
 * processed a few tile rows at a time so that V and M stay in L2, and each
 * block's finished output rows get the epilogue at once.
 */
#include "kernels.h"

#include <stdlib.h>
#include <string.h>

struct wino_state {
	struct lm_conv_desc d;
	int m, a;               /* output tile, input tile (m + 2) */
	int64_t cp, mp;         /* C, M rounded up to 16 */
	int64_t ty, tx;         /* tiles down and across */
	int64_t hp, wp;         /* padded input: ty*m + 2 by tx*m + 2 */
	int64_t rows_blk;       /* tile rows per block */
	float *u;               /* a*a packed C x M matrices */
	size_t u_stride;
	size_t v_stride, m_stride; /* floats per t in V and M */
	size_t off_v, off_m;    /* scratch offsets, floats */
};

int lm_winograd_fits(const struct lm_conv_desc *d)
{
	return d->kh == 3 && d->kw == 3 && d->sh == 1 && d->sw == 1 &&
	       d->dh == 1 && d->dw == 1 && d->group == 1;
}

/*
 * Which tile, by a cost model fitted to bench_kernels on Zen 5.  Both
 * variants run a*a products of C x M weights over T tiles (a = 6 for
 * F(4x4), 4 for F(2x2)), so time goes as a^2 (T + R cold): T multiply-adds
 * per weight element, plus R = 20 multiply-adds' worth of time to read the
 * element from memory when the transformed weights are too big to still
 * be in cache from the last run (over 4 MiB for the layer; F(4x4) makes
 * them 4x the original, F(2x2) 16/9x).  T is rounded up to the 8-row
 * sliver of the GEMM.  Measured (ms, caches swept before each run /
 * warm; the choice in brackets):
 *                      im2col+sgemm  F(2x2)       F(4x4)
 *     56x56  64->64     -   /1.46    -   /0.81    -   /0.47  [4]
 *     28x28 128->128    1.53/1.27    0.84/0.60    0.75/0.36  [4]
 *     14x14 256->256    1.41/1.29    0.81/0.55    1.08/0.54  [2]
 *      7x7  512->512    1.62/1.53    1.17/0.81    1.87/1.97  [2]
 *     VGG 28x28 256->512   9.48      5.56         4.68       [4]
 *     VGG 14x14 512->512   5.18      3.49         4.49       [2]
 * Below 16 channels the GEMMs are too thin to pay for the transforms.
 */
static int64_t wino_cost(const struct lm_conv_desc *d, int64_t m)
{
	int64_t a = m + 2;
	int64_t tiles = ((d->oh + m - 1) / m) * ((d->ow + m - 1) / m);
	int64_t bytes = a * a * d->c * d->m * 4;
	return a * a * (lm_round_up(tiles, 8) +
			(bytes > (4 << 20) ? 20 : 0));
}

int lm_winograd_choose(const struct lm_conv_desc *d)
{
	if (!lm_winograd_fits(d) || d->c < 16 || d->m < 16)
		return 0;
	return wino_cost(d, 4) <= wino_cost(d, 2) ? 4 : 2;
}

static void wino_free(void *p)
{
	struct wino_state *s = p;

	if (s)
		free(s->u);
	free(s);
}

/* ---- weight transform (prepare, in double) ---- */

/*
 * F(4x4, 3x3) interpolates at 0, 1, -1, 1/2, -2 and infinity rather than
 * Lavin's 0, +-1, +-2: the products at +-2 are 8x the output in A^T and
 * cancel, and swapping +2 for its reciprocal halves that.  Barabasz et
 * al. ("Error analysis and improving the accuracy of Winograd convolution
 * for deep neural networks", 2020) found this set best for F(4, 3); in a
 * float32 simulation (64 channels, 2000 tiles against float64) it has
 * 0.65x the RMS and 0.42x the largest error of Lavin's.  Whole networks
 * against onnxruntime, max|diff| / max|logit|: Inception v3 9.8e-5 ->
 * 6.5e-5, Wide ResNet-50 5.6e-5 -> 3.5e-5, ResNet-50 3.0e-5 -> 2.4e-5; the
 * speed is the same within 1% (bench_kernels -i winograd4; the transforms
 * take 20 and 12 operations instead of 13 and 10, against 36 C M / 16
 * multiply-adds per tile in the products).  Rows of B^T, columns of A^T
 * and rows of G are scaled by powers of two (exact in float) so that B^T
 * and A^T have small integers: B^T rows by 2, 2, 2, 1, 2, 2, A^T's column
 * for 1/2 by 8, and G's rows divided to match.
 */
static const double g4[6][3] = {
	{ 1.0 / 2, 0, 0 },
	{ 1.0 / 6, 1.0 / 6, 1.0 / 6 },
	{ -1.0 / 6, 1.0 / 6, -1.0 / 6 },
	{ -2.0 / 15, -1.0 / 15, -1.0 / 30 },
	{ 1.0 / 30, -1.0 / 15, 2.0 / 15 },
	{ 0, 0, 1.0 / 2 },
};

static const double g2[4][3] = {
	{ 1, 0, 0 },
	{ 0.5, 0.5, 0.5 },
	{ 0.5, -0.5, 0.5 },
	{ 0, 0, 1 },
};

/* u (a x a) = G w G^T for one 3x3 kernel. */
static void transform_kernel(int a, const float *w, double *u)
{
	const double(*g)[3] = a == 6 ? g4 : g2;
	double t[6][3];

	for (int i = 0; i < a; i++)
		for (int j = 0; j < 3; j++)
			t[i][j] = g[i][0] * w[j] + g[i][1] * w[3 + j] +
				  g[i][2] * w[6 + j];
	for (int i = 0; i < a; i++)
		for (int j = 0; j < a; j++)
			u[i * a + j] = t[i][0] * g[j][0] + t[i][1] * g[j][1] +
				       t[i][2] * g[j][2];
}

#if defined(__x86_64__)

/* NCHW image -> zero-padded [cp/16][hp][wp][16], image at (pt, pl). */
static LM_AVX512 void pack_input(const struct wino_state *s, const float *x,
				 float *xb)
{
	const struct lm_conv_desc *d = &s->d;
	int64_t rowf = s->wp * 16;

	for (int64_t cb = 0; cb < s->cp / 16; cb++) {
		for (int64_t yy = 0; yy < s->hp; yy++) {
			float *dst = xb + (cb * s->hp + yy) * rowf;
			int64_t iy = yy - d->pt;
			if (iy < 0 || iy >= d->h) {
				memset(dst, 0, (size_t)rowf * sizeof(float));
				continue;
			}
			memset(dst, 0, (size_t)(d->pl * 16) * sizeof(float));
			memset(dst + (d->pl + d->w) * 16, 0,
			       (size_t)((s->wp - d->pl - d->w) * 16) *
			       sizeof(float));
			for (int64_t ix0 = 0; ix0 < d->w; ix0 += 16) {
				int64_t nv = d->w - ix0 < 16 ? d->w - ix0 : 16;
				__mmask16 mk = lm_lanes(0, nv);
				__m512 r[16];
				for (int l = 0; l < 16; l++) {
					int64_t c = cb * 16 + l;
					r[l] = c < d->c
					       ? _mm512_maskz_loadu_ps(mk, x +
						 (c * d->h + iy) * d->w + ix0)
					       : _mm512_setzero_ps();
				}
				lm_transpose16(r);
				float *o = dst + (d->pl + ix0) * 16;
				for (int64_t j = 0; j < nv; j++)
					_mm512_storeu_ps(o + j * 16, r[j]);
			}
		}
	}
}

/* ---- the 1-D transforms, 16 lanes at a time ---- */

/*
 * B^T of F(4x4, 3x3) applied to x[0..5] (stride sx), into y (stride sy):
 *     [ 2 -3 -4  3  2  0 ]      with t = d3 - d1, s = d4 - d2:
 *     [ 0 -2  1  5  2  0 ]      y0 = 2 (d0 - d2 + s) + 3 t
 *     [ 0  2 -5  1  2  0 ]      y1 = 2 (t + s) + 3 (d2 + d3)
 *     [ 0 -2 -1  2  1  0 ]      y2 = 2 (s - t) + 3 (d3 - d2)
 *     [ 0  1 -2 -1  2  0 ]      y3 = 2 t + s,  y4 = 2 s - t
 *     [ 0  2 -3 -4  3  2 ]      y5 = 2 (d5 - d3 - t) + 3 s
 */
static inline __attribute__((always_inline)) LM_AVX512 void
bt4(const __m512 *x, int sx, __m512 *y, int sy)
{
	const __m512 two = _mm512_set1_ps(2.0f), three = _mm512_set1_ps(3.0f);
	__m512 d0 = x[0], d1 = x[sx], d2 = x[2 * sx], d3 = x[3 * sx];
	__m512 d4 = x[4 * sx], d5 = x[5 * sx];
	__m512 t = _mm512_sub_ps(d3, d1), s = _mm512_sub_ps(d4, d2);
	__m512 p = _mm512_add_ps(_mm512_sub_ps(d0, d2), s);
	__m512 q = _mm512_sub_ps(_mm512_sub_ps(d5, d3), t);
	y[0] = _mm512_fmadd_ps(two, p, _mm512_mul_ps(three, t));
	y[sy] = _mm512_fmadd_ps(two, _mm512_add_ps(t, s),
				_mm512_mul_ps(three, _mm512_add_ps(d2, d3)));
	y[2 * sy] = _mm512_fmadd_ps(two, _mm512_sub_ps(s, t),
				    _mm512_mul_ps(three, _mm512_sub_ps(d3, d2)));
	y[3 * sy] = _mm512_fmadd_ps(two, t, s);
	y[4 * sy] = _mm512_fmsub_ps(two, s, t);
	y[5 * sy] = _mm512_fmadd_ps(two, q, _mm512_mul_ps(three, s));
}

/*
 * A^T of F(4x4, 3x3): 6 values -> 4.
 *     [ 1  1  1  8  1  0 ]      with p = m1 + m2, q = m1 - m2:
 *     [ 0  1 -1  4 -2  0 ]      y0 = m0 + p + 8 m3 + m4
 *     [ 0  1  1  2  4  0 ]      y1 = q + 4 m3 - 2 m4
 *     [ 0  1 -1  1 -8  1 ]      y2 = p + 2 m3 + 4 m4
 *                               y3 = q + m3 - 8 m4 + m5
 */
static inline __attribute__((always_inline)) LM_AVX512 void
at4(const __m512 *x, int sx, __m512 *y, int sy)
{
	__m512 m1 = x[sx], m2 = x[2 * sx], m3 = x[3 * sx], m4 = x[4 * sx];
	__m512 p = _mm512_add_ps(m1, m2), q = _mm512_sub_ps(m1, m2);
	y[0] = _mm512_add_ps(_mm512_fmadd_ps(_mm512_set1_ps(8.0f), m3,
					     _mm512_add_ps(x[0], p)), m4);
	y[sy] = _mm512_fmadd_ps(_mm512_set1_ps(4.0f), m3,
				_mm512_fnmadd_ps(_mm512_set1_ps(2.0f), m4, q));
	y[2 * sy] = _mm512_fmadd_ps(_mm512_set1_ps(2.0f), m3,
				    _mm512_fmadd_ps(_mm512_set1_ps(4.0f), m4,
						    p));
	y[3 * sy] = _mm512_add_ps(_mm512_fnmadd_ps(_mm512_set1_ps(8.0f), m4,
						   _mm512_add_ps(q, m3)),
				  x[5 * sx]);
}

/* B^T of F(2x2, 3x3). */
static inline __attribute__((always_inline)) LM_AVX512 void
bt2(const __m512 *x, int sx, __m512 *y, int sy)
{
	y[0] = _mm512_sub_ps(x[0], x[2 * sx]);
	y[sy] = _mm512_add_ps(x[sx], x[2 * sx]);
	y[2 * sy] = _mm512_sub_ps(x[2 * sx], x[sx]);
	y[3 * sy] = _mm512_sub_ps(x[sx], x[3 * sx]);
}

/* A^T of F(2x2, 3x3). */
static inline __attribute__((always_inline)) LM_AVX512 void
at2(const __m512 *x, int sx, __m512 *y, int sy)
{
	y[0] = _mm512_add_ps(_mm512_add_ps(x[0], x[sx]), x[2 * sx]);
	y[sy] = _mm512_sub_ps(_mm512_sub_ps(x[sx], x[2 * sx]), x[3 * sx]);
}

/* B^T d B for one a x a patch p of 16 channels (row pitch wp vectors),
 * the a*a results stored stride apart. */
static inline __attribute__((always_inline)) LM_AVX512 void
tile_in(const int m, const float *p, int64_t wp, float *o, size_t stride)
{
	const int a = m + 2;
	__m512 dd[36], tt[36];

	for (int i = 0; i < a; i++)
		for (int j = 0; j < a; j++)
			dd[i * a + j] = _mm512_loadu_ps(p + (i * wp + j) * 16);
	for (int j = 0; j < a; j++) {
		if (m == 4)
			bt4(dd + j, a, tt + j, a);
		else
			bt2(dd + j, a, tt + j, a);
	}
	for (int i = 0; i < a; i++) {
		if (m == 4)
			bt4(tt + i * a, 1, dd + i * a, 1);
		else
			bt2(tt + i * a, 1, dd + i * a, 1);
	}
	for (int t = 0; t < a * a; t++)
		_mm512_storeu_ps(o + t * stride, dd[t]);
}

/*
 * V[t][tile][c] for the tiles of tile rows [ty0, ty0 + nrows): each tile's
 * a x a input patch, 16 channels per vector, through B^T . B^T.
 */
static inline __attribute__((always_inline)) LM_AVX512 void
input_transform(const int m, const struct wino_state *s, const float *xb,
		int64_t ty0, int64_t nrows, float *v)
{
	int64_t tl = 0;

	for (int64_t ty = ty0; ty < ty0 + nrows; ty++)
		for (int64_t tx = 0; tx < s->tx; tx++, tl++)
			for (int64_t cb = 0; cb < s->cp / 16; cb++)
				tile_in(m, xb + ((cb * s->hp + ty * m) * s->wp +
						 tx * m) * 16, s->wp,
					v + tl * s->cp + cb * 16, s->v_stride);
}

/* A^T M A + bias for one tile of 16 output channels, read stride apart,
 * into r[i * m + j]. */
static inline __attribute__((always_inline)) LM_AVX512 void
tile_out(const int m, const float *p, size_t stride, __m512 bv,
	 __m512 r[16])
{
	const int a = m + 2;
	__m512 mm[36], tt[24];

	for (int t = 0; t < a * a; t++)
		mm[t] = _mm512_loadu_ps(p + t * stride);
	for (int j = 0; j < a; j++) {
		if (m == 4)
			at4(mm + j, a, tt + j, a);
		else
			at2(mm + j, a, tt + j, a);
	}
	for (int i = 0; i < m; i++) {
		if (m == 4)
			at4(tt + i * a, 1, r + i * m, 1);
		else
			at2(tt + i * a, 1, r + i * m, 1);
		for (int j = 0; j < m; j++)
			r[i * m + j] = _mm512_add_ps(r[i * m + j], bv);
	}
}

/* A whole 4x4 tile of 16 channels into NCHW: one 16 x 16 transpose away
 * from 16 channel rows of 4 x 4. */
static inline __attribute__((always_inline)) LM_AVX512 void
store_tile4(__m512 r[16], float *y, int64_t plane, int64_t ow)
{
	lm_transpose16(r);
	for (int l = 0; l < 16; l++, y += plane) {
		_mm_storeu_ps(y, _mm512_extractf32x4_ps(r[l], 0));
		_mm_storeu_ps(y + ow, _mm512_extractf32x4_ps(r[l], 1));
		_mm_storeu_ps(y + 2 * ow, _mm512_extractf32x4_ps(r[l], 2));
		_mm_storeu_ps(y + 3 * ow, _mm512_extractf32x4_ps(r[l], 3));
	}
}

/* Any tile, clipped to hi x wi and nco channels, through a buffer. */
static inline __attribute__((always_inline)) LM_AVX512 void
store_tile(const int m, const __m512 r[16], float *y, int64_t plane,
	   int64_t ow, int64_t nco, int64_t hi, int64_t wi)
{
	float buf[16][16];

	for (int t = 0; t < m * m; t++)
		_mm512_storeu_ps(buf[t], r[t]);
	for (int64_t l = 0; l < nco; l++, y += plane)
		for (int64_t i = 0; i < hi; i++)
			for (int64_t j = 0; j < wi; j++)
				y[i * ow + j] = buf[i * m + j][l];
}

/* Y from M for the same tiles, 16 output channels at a time. */
static inline __attribute__((always_inline)) LM_AVX512 void
output_transform(const int m, const struct wino_state *s, const float *mt,
		 const float *bias, int64_t ty0, int64_t nrows, float *y)
{
	const struct lm_conv_desc *d = &s->d;
	int64_t tl = 0, plane = d->oh * d->ow;

	for (int64_t ty = ty0; ty < ty0 + nrows; ty++) {
		for (int64_t tx = 0; tx < s->tx; tx++, tl++) {
			int64_t oy = ty * m, ox = tx * m;
			int64_t hi = d->oh - oy < m ? d->oh - oy : m;
			int64_t wi = d->ow - ox < m ? d->ow - ox : m;
			for (int64_t co = 0; co < d->m; co += 16) {
				int64_t nco = d->m - co < 16 ? d->m - co : 16;
				__m512 bv = bias ? _mm512_maskz_loadu_ps(
						lm_lanes(0, nco), bias + co)
						 : _mm512_setzero_ps();
				__m512 r[16];
				float *yo = y + co * plane + oy * d->ow + ox;
				tile_out(m, mt + tl * s->mp + co, s->m_stride,
					 bv, r);
				if (m == 4 && hi == 4 && wi == 4 && nco == 16)
					store_tile4(r, yo, plane, d->ow);
				else
					store_tile(m, r, yo, plane, d->ow, nco,
						   hi, wi);
			}
		}
	}
}

static LM_AVX512 void transform_in(const struct wino_state *s,
				   const float *xb, int64_t ty0,
				   int64_t nrows, float *v)
{
	if (s->m == 4)
		input_transform(4, s, xb, ty0, nrows, v);
	else
		input_transform(2, s, xb, ty0, nrows, v);
}

static LM_AVX512 void transform_out(const struct wino_state *s,
				    const float *mt, const float *bias,
				    int64_t ty0, int64_t nrows, float *y)
{
	if (s->m == 4)
		output_transform(4, s, mt, bias, ty0, nrows, y);
	else
		output_transform(2, s, mt, bias, ty0, nrows, y);
}

#else

static void pack_input(const struct wino_state *s, const float *x, float *xb)
{
	(void)s; (void)x; (void)xb;
}

static void transform_in(const struct wino_state *s, const float *xb,
			 int64_t ty0, int64_t nrows, float *v)
{
	(void)s; (void)xb; (void)ty0; (void)nrows; (void)v;
}

static void transform_out(const struct wino_state *s, const float *mt,
			  const float *bias, int64_t ty0, int64_t nrows,
			  float *y)
{
	(void)s; (void)mt; (void)bias; (void)ty0; (void)nrows; (void)y;
}

#endif

static int run_winograd(const lm_kargs *a)
{
	const struct wino_state *s = a->state;
	const struct lm_conv_desc *d = &s->d;
	const float *x = a->in[0]->data;
	const float *bias = lm_bias_input(a, d->has_bias);
	const float *sum = lm_epilogue_sum(a, &d->ep);
	int has_ep = d->ep.act != LM_ACT_NONE || sum;
	float *y = a->out[0]->data, *xb = a->scratch;
	float *v = xb + s->off_v, *mt = xb + s->off_m;
	int64_t plane = d->oh * d->ow;

	for (int64_t n = 0; n < d->n; n++) {
		float *yn = y + n * d->m * plane;
		pack_input(s, x + n * d->c * d->h * d->w, xb);
		for (int64_t ty0 = 0; ty0 < s->ty; ty0 += s->rows_blk) {
			int64_t nr = s->ty - ty0 < s->rows_blk ? s->ty - ty0
							       : s->rows_blk;
			int64_t nt = nr * s->tx;
			transform_in(s, xb, ty0, nr, v);
			for (int t = 0; t < s->a * s->a; t++)
				lm_pgemm_rows(v + t * s->v_stride, s->cp, 1,
					      nt, s->cp,
					      s->u + t * s->u_stride,
					      d->m, mt + t * s->m_stride,
					      s->mp);
			transform_out(s, mt, bias, ty0, nr, yn);
			if (!has_ep)
				continue;
			int64_t r0 = ty0 * s->m;
			int64_t r1 = (ty0 + nr) * s->m;
			if (r1 > d->oh)
				r1 = d->oh;
			for (int64_t co = 0; co < d->m; co++) {
				size_t off = (size_t)((n * d->m + co) * plane +
						      r0 * d->ow);
				lm_epilogue_apply(&d->ep, y + off,
						  sum ? sum + off : NULL,
						  (size_t)((r1 - r0) * d->ow));
			}
		}
	}
	return 0;
}

/* V and M of one block in L2: about 512 KiB between them. */
#define WINO_BLOCK_BYTES (512 * 1024)

int lm_winograd_prepare(const struct lm_conv_desc *d, const float *w,
			int tile, lm_kernel *k)
{
	struct wino_state *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	k->state = s;
	k->free_state = wino_free;
	s->d = *d;
	s->m = tile;
	s->a = tile + 2;
	s->cp = lm_round_up(d->c, 16);
	s->mp = lm_round_up(d->m, 16);
	s->ty = (d->oh + tile - 1) / tile;
	s->tx = (d->ow + tile - 1) / tile;
	s->hp = s->ty * tile + 2;
	s->wp = s->tx * tile + 2;
	int64_t aa = s->a * s->a;
	int64_t per_row = aa * s->tx * (s->cp + s->mp) * 4;
	s->rows_blk = WINO_BLOCK_BYTES / per_row;
	if (s->rows_blk < 1)
		s->rows_blk = 1;
	if (s->rows_blk > s->ty)
		s->rows_blk = s->ty;
	int64_t tb = s->rows_blk * s->tx;
	s->v_stride = (size_t)(tb * s->cp);
	s->m_stride = (size_t)(tb * s->mp);
	s->off_v = (size_t)(s->cp * s->hp * s->wp);
	s->off_m = s->off_v + (size_t)aa * s->v_stride;

	/* U_t = (G w G^T)[t] as a C x M matrix per t, packed for the GEMM;
	 * rows past C stay zero. */
	s->u_stride = lm_pgemm_packed_b_floats(s->cp, d->m);
	s->u = lm_kalloc(s->u_stride * (size_t)aa * sizeof(float));
	float *tmp = calloc((size_t)(aa * s->cp * d->m), sizeof(float));
	if (!s->u || !tmp) {
		free(tmp);
		return -ENOMEM;
	}
	double u[36];
	for (int64_t co = 0; co < d->m; co++) {
		for (int64_t ci = 0; ci < d->c; ci++) {
			transform_kernel(s->a, w + (co * d->c + ci) * 9, u);
			for (int64_t t = 0; t < aa; t++)
				tmp[(t * s->cp + ci) * d->m + co] = (float)u[t];
		}
	}
	for (int64_t t = 0; t < aa; t++)
		lm_pgemm_pack_b(tmp + t * s->cp * d->m, d->m, 1, s->cp, d->m,
				s->u + t * s->u_stride);
	free(tmp);
	k->run = run_winograd;
	k->state_bytes = s->u_stride * (size_t)aa * sizeof(float);
	k->scratch_bytes = (s->off_m + (size_t)aa * s->m_stride) *
			   sizeof(float);
	k->impl = tile == 4 ? "winograd 4x4" : "winograd 2x2";
	return 0;
}
