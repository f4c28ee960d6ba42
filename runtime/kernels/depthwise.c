/*
 * depthwise.c: depthwise convolution (group == C == M, one filter per
 * channel), computed directly: there is no reduction over channels for a
 * GEMM to exploit, so the work is K*K multiply-adds per output and the
 * kernel's job is to keep them in registers and read each plane once.
 *
 * Square kernels of 3, 5 or 7 at stride 1 or 2 without dilation, with
 * any pads (MobileNet, EfficientNet, MnasNet, ConvNeXt), take one of two
 * vector paths, written once (depthwise_simd.h) and compiled for AVX-512,
 * AVX2 and portable C (simd.h; lm_isa() picks at prepare time):
 *
 *   "rows"     vectors along an output row: each plane is copied into a
 *              zero-padded buffer (at stride 2 with even and odd columns
 *              apart), so that every tap of VL outputs is one load and
 *              one FMA with no edge cases; strips of 2 rows x 4 vectors
 *              or 7-8 rows x 1 vector give eight accumulators.
 *   "blocked"  vectors across VL channels, for 5x5 and 7x7 kernels and
 *              3x3 on narrower planes (under 48 outputs a row):
 *              the planes are transposed into a padded [row][column]
 *              [channel] block, strips of 7 or 8 outputs along a row load
 *              each input vector once for all the taps it feeds, with the
 *              weights (transposed at prepare) in registers, and the
 *              results are transposed back (dw_rows_win has the measured
 *              choice).
 *
 * Everything else (dilation, other or non-square kernels, other strides)
 * runs "depthwise", plain loops over output rows that the compiler
 * vectorises per target.  The vector paths apply a Relu or Clip epilogue
 * (and a residual) in registers as they store; the other activations, and
 * the plain loops, run the fused epilogue over each plane (or block of
 * planes) while it is in cache.
 */
#include "kernels.h"
#include "act.h"

#include <stdlib.h>

enum dw_path { DW_GENERIC, DW_ROWS, DW_BLOCKED };

struct dw_state;
typedef void (*dw_rows_fn)(const struct dw_state *st, const float *x,
			   const float *w, float bias, float *y,
			   const float *sum, float *scratch);
typedef void (*dw_blocked_fn)(const struct dw_state *st, const float *x,
			      const float *wt, const float *bias, int64_t nc,
			      float *y, const float *sum, int zero,
			      float *scratch);

struct dw_state {
	struct lm_conv_desc d;
	enum dw_path path;
	int vl;                 /* floats per vector of the chosen set */
	/* rows: vectors per output row, output rows per one-vector strip
	 * (7 or 8); padded plane of hp rows of wp floats, pw per phase.
	 * blocked: hp x wp positions of vl floats, then the outputs at
	 * ob_off and the weights at wt_off (floats into scratch). */
	int64_t nvec, hp, wp, pw;
	int rows;
	int64_t ob_off, wt_off;
	/* blocked: the weights as [block of vl channels][tap][lane], when
	 * the weight was a constant at prepare (else built per call) */
	float *wt;
	/* fuse: the vector paths apply the epilogue as they store, the
	 * residual and then a clamp to [lo, hi] (struct lm_clamp) */
	int fuse;
	float lo, hi;
	dw_rows_fn rows_fn;
	dw_blocked_fn blocked_fn;
};

static void dw_free(void *p)
{
	struct dw_state *s = p;

	if (s)
		free(s->wt);
	free(s);
}

/* Channels [c0, c0 + nc) of w (K*K taps each) as [tap][lane] of vl
 * lanes, zero past nc. */
static void dw_transpose_weights(const float *w, int64_t kk, int64_t nc,
				 int vl, float *wt)
{
	for (int64_t t = 0; t < kk; t++)
		for (int l = 0; l < vl; l++)
			wt[t * vl + l] = l < nc ? w[l * kk + t] : 0.0f;
}

#if defined(__x86_64__)
#define LM_SIMD 512
#include "simd.h"
#include "depthwise_simd.h"
#undef LM_SIMD
#define LM_SIMD 256
#include "simd.h"
#include "depthwise_simd.h"
#undef LM_SIMD
#endif
#define LM_SIMD 0
#include "simd.h"
#include "depthwise_simd.h"
#undef LM_SIMD

int lm_depthwise_fits(const struct lm_conv_desc *d)
{
	return d->group == d->c && d->m == d->c && d->group > 1;
}

int lm_depthwise_vector_fits(const struct lm_conv_desc *d)
{
	return lm_depthwise_fits(d) && d->kh == d->kw &&
	       (d->kh == 3 || d->kh == 5 || d->kh == 7) && d->sh == d->sw &&
	       (d->sh == 1 || d->sh == 2) && d->dh == 1 && d->dw == 1;
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

static int run_depthwise(const lm_kargs *a)
{
	const struct dw_state *s = a->state;
	const struct lm_conv_desc *d = &s->d;
	const float *x = a->in[0]->data, *w = a->in[1]->data;
	const float *bias = lm_bias_input(a, d->has_bias);
	const float *sum = lm_epilogue_sum(a, &d->ep);
	int has_ep = d->ep.act != LM_ACT_NONE || sum;
	float *y = a->out[0]->data;
	int64_t ip = d->h * d->w, op = d->oh * d->ow, kk = d->kh * d->kw;
	/* blocked, weights given at run time: rearranged here per block */
	float *wt = s->path == DW_BLOCKED ? (float *)a->scratch + s->wt_off
					   : NULL;

	if (s->fuse)
		has_ep = 0;
	for (int64_t n = 0; n < d->n; n++) {
		/* blocks of vl channels, or single ones */
		int64_t step = s->path == DW_BLOCKED ? s->vl : 1;
		for (int64_t c = 0; c < d->c; c += step) {
			int64_t i = n * d->c + c;
			int64_t nc = d->c - c < step ? d->c - c : step;
			const float *si = sum ? sum + i * op : NULL;
			if (s->path == DW_BLOCKED) {
				const float *wb = s->wt ? s->wt + c * kk : wt;
				if (!s->wt)
					dw_transpose_weights(w + c * kk, kk,
							     nc, s->vl, wt);
				s->blocked_fn(s, x + i * ip, wb,
					      bias ? bias + c : NULL, nc,
					      y + i * op, si, i == 0,
					      a->scratch);
			} else if (s->path == DW_ROWS) {
				s->rows_fn(s, x + i * ip, w + c * kk,
					   bias ? bias[c] : 0.0f, y + i * op,
					   si, a->scratch);
			} else {
				dw_plane(d, x + i * ip, w + c * kk,
					 bias ? bias[c] : 0.0f, y + i * op);
			}
			/* at most a few tens of KiB: still in L1 or L2 */
			if (has_ep)
				lm_epilogue_apply(&d->ep, y + i * op, si,
						  (size_t)(nc * op));
		}
	}
	return 0;
}

/*
 * Rows or blocked, from bench_kernels (MobileNetV2/V3, EfficientNet-B1,
 * MnasNet, ConvNeXt and ShuffleNet layers, -i depthwise-rows against -i
 * depthwise-blocked, best of 2 x 100 runs): since the blocked path loads
 * each input once per strip (2026-12), rows win only for 3x3 kernels on
 * wide planes, with AVX-512 from 48 outputs a row (3x3 56x56x144: 0.199
 * against 0.224 ms; 112x112x32: 0.168 against 0.198; s2 from 112x112x96,
 * 56 outputs: 0.273 against 0.282); from 28 outputs down blocked wins
 * (28x28x192: 0.078 against 0.093; s2 56x56x144: 0.104 against 0.133;
 * 7x7x960: 0.031 against 0.076); with 8 lanes or 4 also from 48, near
 * enough (AVX2: s2 from 112x112x96 0.290 against 0.351, 112x112x32 0.198
 * against 0.205, but 56x56x144 0.240 against 0.225; 28x28x192 0.116
 * against 0.080; portable C alike).  At 5x5 and
 * 7x7 blocked wins or ties everywhere with warm caches (5x5 s2 56x56x144:
 * 35 against 28, 7x7 28x28x192: 65 against 60).  From cold caches (-c)
 * rows did better at stride 1 on planes of 14 and up, but in MobileNetV2,
 * MobileNetV3, MnasNet and EfficientNet-B1 at batch 1 and 8 (lamina run
 * --profile, every depthwise conv forced to either path) blocked
 * everywhere was as fast as this choice or faster, and rows everywhere
 * 5-20% slower.
 */
static int dw_rows_win(const struct lm_conv_desc *d, int vl)
{
	(void)vl;
	return d->kh == 3 && d->ow >= 48;
}

static const char *const dw_names[3][2][2] = {
	{ { "depthwise 3x3 rows", "depthwise 3x3 blocked" },
	  { "depthwise 3x3 s2 rows", "depthwise 3x3 s2 blocked" } },
	{ { "depthwise 5x5 rows", "depthwise 5x5 blocked" },
	  { "depthwise 5x5 s2 rows", "depthwise 5x5 s2 blocked" } },
	{ { "depthwise 7x7 rows", "depthwise 7x7 blocked" },
	  { "depthwise 7x7 s2 rows", "depthwise 7x7 s2 blocked" } },
};

int lm_depthwise_prepare(const struct lm_conv_desc *d, const float *w,
			 enum lm_dw_variant variant, lm_kernel *k)
{
	int vec = lm_depthwise_vector_fits(d);

	if ((variant == LM_DW_ROWS || variant == LM_DW_BLOCKED) && !vec)
		return -ENOTSUP;
	struct dw_state *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->d = *d;
	k->state = s;
	k->free_state = dw_free;
	k->run = run_depthwise;
	k->impl = "depthwise";
	if (!vec || variant == LM_DW_GENERIC)
		return 0;

	enum lm_isa isa = lm_isa();
	int kx = (int)d->kh / 2 - 1, sx = (int)d->sh - 1;
	int S = (int)d->sh, K = (int)d->kh;
	s->vl = isa == LM_ISA_AVX512 ? 16 : isa == LM_ISA_AVX2 ? 8 : 4;
	s->path = variant == LM_DW_ROWS ? DW_ROWS
		  : variant == LM_DW_BLOCKED ? DW_BLOCKED
		  : dw_rows_win(d, s->vl) ? DW_ROWS : DW_BLOCKED;
	k->impl = dw_names[kx][sx][s->path == DW_BLOCKED];
	struct lm_clamp cl = { 0 };
	s->fuse = lm_clamp_get(&d->ep, &cl) &&
		  (d->ep.act != LM_ACT_NONE || d->ep.sum_input >= 0);
	s->lo = cl.lo;
	s->hi = cl.hi;
	/* strips of 7 outputs where rows are multiples of 7, else 8 (with
	 * 32 registers; 4 with fewer, see DW_STRIP) */
	int strip = s->vl == 16 && d->ow % 7 == 0 ? 7 : s->vl == 16 ? 8 : 4;
	if (s->path == DW_ROWS) {
		s->nvec = (d->ow + s->vl - 1) / s->vl;
		s->pw = s->nvec * s->vl + lm_round_up((K - 1) / S, s->vl);
		s->wp = S * s->pw;
		s->rows = d->oh % 7 == 0 ? 7 : 8;
		int64_t oh2 = lm_round_up(d->oh, 2);
		int64_t ohr = lm_round_up(d->oh, s->rows);
		s->hp = ((oh2 > ohr ? oh2 : ohr) - 1) * S + K;
		k->scratch_bytes = (size_t)(s->hp * s->wp) * sizeof(float);
	} else {
		/* the last strip may run past the row into zeros */
		int64_t need = (lm_round_up(d->ow, strip) - 1) * S + K;
		s->hp = (d->oh - 1) * S + K;
		s->wp = need > d->pl + d->w ? need : d->pl + d->w;
		s->ob_off = s->hp * s->wp * s->vl;
		s->wt_off = s->ob_off + lm_round_up(d->oh * d->ow, 16) * s->vl;
		k->scratch_bytes = (size_t)(s->wt_off + K * K * s->vl) *
				   sizeof(float);
		if (w) {
			int64_t nb = (d->c + s->vl - 1) / s->vl;
			s->wt = lm_kalloc((size_t)(nb * K * K * s->vl) *
					  sizeof(float));
			if (!s->wt)
				return -ENOMEM;
			for (int64_t b = 0; b < nb; b++) {
				int64_t c = b * s->vl;
				dw_transpose_weights(w + c * K * K, K * K,
					d->c - c < s->vl ? d->c - c : s->vl,
					s->vl, s->wt + c * K * K);
			}
			k->state_bytes = (size_t)(nb * K * K * s->vl) *
					 sizeof(float);
		}
	}
	int r = strip == 7;
	switch (isa) {
#if defined(__x86_64__)
	case LM_ISA_AVX512:
		s->rows_fn = dw_rows_avx512[kx][sx];
		s->blocked_fn = dw_blocked_avx512[kx][sx][r];
		break;
	case LM_ISA_AVX2:
		s->rows_fn = dw_rows_avx2[kx][sx];
		s->blocked_fn = dw_blocked_avx2[kx][sx][r];
		break;
#endif
	default:
		s->rows_fn = dw_rows_c[kx][sx];
		s->blocked_fn = dw_blocked_c[kx][sx][r];
		break;
	}
	return 0;
}
