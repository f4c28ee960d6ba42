/*
 * direct.c: convolutions computed straight from the image, for the two
 * kinds a GEMM with im2col serves badly: few input channels (stems,
 * 3 -> 16..64 channels, 3x3 or 7x7 at stride 2), where the im2col matrix
 * is as large as the work done with it, and grouped convolutions (ResNeXt,
 * RegNetX), whose groups of 4 to 32 channels leave the GEMM's tiles half
 * empty and pay the packing once per group.
 *
 * Per image and group the group's channels are copied once into
 * zero-padded phase planes: for strides sh x sw, plane (c, py, px) holds
 * rows py, py + sh, ... and columns px, px + sw, ... of the padded image
 * (at stride 1 that is the padded image itself).  Tap k = (c, ky, kx) then
 * reads plane (c, ky % sh, kx % sw) at a fixed offset, so output (oy, ox)
 * of tap k is at
 *
 *	P[off[k] + oy * pw + ox],  off[k] = plane's start + (ky / sh) * pw +
 *	                                    kx / sw
 *
 * with pw the planes' row length.  Over the flat index f = oy * pw + ox
 * that is one GEMM, C (M/g x f) = W (M/g x K) * B (K x f) whose row k of B
 * is P from off[k], read in place: no im2col matrix and no packing.  The
 * (kw - 1) / sw positions a row has past its last output are computed
 * too and dropped: stored packed, the outputs of a vector of positions
 * are consecutive in Y even across a row end.
 *
 * The micro-kernel is pgemm's shape: MR output channels of packed weights
 * broadcast against NV vectors of positions (8 x 3 or 4 x 6 on AVX-512,
 * 4 x 3 with 16 registers), written once (direct_simd.h) for AVX-512,
 * AVX2 and portable C.  Needs constant weights (packed at prepare) and no
 * dilation.
 */
#include "kernels.h"
#include "act.h"

#include <stdlib.h>

struct dc_state;
typedef void (*dc_phases_fn)(const struct dc_state *st, const float *x,
			     float *p);
typedef void (*dc_band_fn)(const struct dc_state *st, const float *p,
			   const float *pa, const float *bias, int64_t oy0,
			   int64_t oy1, float *y);

/* One instruction set's functions: phase planes, and the band kernels
 * with MR rows: [0] for groups of more than 4 output channels, [1]. */
struct dc_fns {
	dc_phases_fn phases;
	dc_band_fn band[2];
	int mr[2];
};

struct dc_state {
	struct lm_conv_desc d;
	int64_t mg, cg, kt;       /* per group: outputs, inputs, taps * cg */
	int64_t ph, pw, plane;    /* phase planes: rows, row length, floats */
	int64_t band;             /* output rows per band */
	int32_t *off;             /* kt tap offsets into the planes */
	float *pa;                /* weights: group, sliver, tap, MR rows */
	size_t pa_group;          /* floats per group */
	int which;                /* band[which], MR = mr[which] */
	const struct dc_fns *fns;
};

#if defined(__x86_64__)
#define LM_SIMD 512
#include "simd.h"
#include "direct_simd.h"
#undef LM_SIMD
#define LM_SIMD 256
#include "simd.h"
#include "direct_simd.h"
#undef LM_SIMD
#endif
#define LM_SIMD 0
#include "simd.h"
#include "direct_simd.h"
#undef LM_SIMD

/* Positions past the flat grid's end that a strip may read: NV * VL at
 * most (6 x 16). */
#define DC_SLACK 96

static void dc_free(void *p)
{
	struct dc_state *s = p;

	if (s) {
		free(s->off);
		free(s->pa);
	}
	free(s);
}

static int run_direct(const lm_kargs *a)
{
	const struct dc_state *s = a->state;
	const struct lm_conv_desc *d = &s->d;
	const float *x = a->in[0]->data;
	const float *bias = lm_bias_input(a, d->has_bias);
	const float *sum = lm_epilogue_sum(a, &d->ep);
	int has_ep = d->ep.act != LM_ACT_NONE || sum;
	float *y = a->out[0]->data, *p = a->scratch;
	int64_t ip = d->h * d->w, np = d->oh * d->ow;

	for (int64_t n = 0; n < d->n; n++)
		for (int64_t g = 0; g < d->group; g++) {
			int64_t yo = (n * d->m + g * s->mg) * np;
			s->fns->phases(s, x + (n * d->c + g * s->cg) * ip, p);
			for (int64_t oy0 = 0; oy0 < d->oh; oy0 += s->band) {
				int64_t oy1 = oy0 + s->band < d->oh
					      ? oy0 + s->band : d->oh;
				s->fns->band[s->which](s, p, s->pa +
					(size_t)g * s->pa_group,
					bias ? bias + g * s->mg : NULL, oy0,
					oy1, y + yo);
				for (int64_t m = 0; has_ep && m < s->mg; m++) {
					int64_t o = yo + m * np + oy0 * d->ow;
					lm_epilogue_apply(&d->ep, y + o,
						sum ? sum + o : NULL,
						(size_t)((oy1 - oy0) * d->ow));
				}
			}
		}
	return 0;
}

int lm_direct_fits(const struct lm_conv_desc *d)
{
	/* offsets into the planes are 32-bit */
	int64_t pw = d->ow + (d->kw - 1) / d->sw;
	int64_t ph = d->oh + (d->kh - 1) / d->sh;
	double p = (double)(d->c / d->group) * (double)(d->sh * d->sw) *
		   (double)ph * (double)pw;
	return d->dh == 1 && d->dw == 1 && p < 1e9;
}

/*
 * Grouped convs, and stems of at most 4 input channels at stride 2 (or
 * at stride 1 too without AVX-512, where the alternative is OpenBLAS).
 * bench_kernels, AVX-512, against im2col+sgemm: ResNeXt-50 and RegNetX
 * grouped layers 1.7-3.0x (rx50 g32 3x3 56x56x128: 23 -> 71 GFLOP/s),
 * stems 3x3 s2 3->16..64 1.1-1.5x, ResNet's 7x7 s2 1.04x; but VGG's
 * 3x3 s1 224x224 3->64 0.55x and ConvNeXt's 4x4 s4 0.94x.  At batch 8
 * (-b 8) the grouped layers keep their lead (2-2.5x) and so does the 7x7
 * stem, but the 3x3 stems, whose 27 taps are over before their reads of
 * the phase planes arrive once the output has pushed those out of L2,
 * fall behind (sq conv1 3x3 s2 3->64: 30 against 37 GFLOP/s): those
 * stay direct at batch 1 only.  AVX2, against im2col+OpenBLAS (batch 1):
 * grouped 1.4-8x, stems 1.3-2.3x (VGG's too), the s4 stem 0.89x.
 */
int lm_direct_wins(const struct lm_conv_desc *d)
{
	if (!lm_direct_fits(d) || lm_depthwise_fits(d))
		return 0;
	if (d->group > 1)
		return 1;
	return d->c <= 4 && d->sh <= 2 && d->sw <= 2 &&
	       ((d->sh == 2 && d->sw == 2) || lm_isa() < LM_ISA_AVX512) &&
	       (d->n == 1 || d->c * d->kh * d->kw >= 64);
}

int lm_direct_prepare(const struct lm_conv_desc *d, const float *w,
		      lm_kernel *k)
{
	struct dc_state *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	k->state = s;
	k->free_state = dc_free;
	k->run = run_direct;
	k->impl = d->group > 1 ? "direct grouped" : "direct";
	s->d = *d;
	switch (lm_isa()) {
#if defined(__x86_64__)
	case LM_ISA_AVX512:
		s->fns = &dc_fns_avx512;
		break;
	case LM_ISA_AVX2:
		s->fns = &dc_fns_avx2;
		break;
#endif
	default:
		s->fns = &dc_fns_c;
		break;
	}
	s->mg = d->m / d->group;
	s->cg = d->c / d->group;
	s->kt = s->cg * d->kh * d->kw;
	s->pw = d->ow + (d->kw - 1) / d->sw;
	s->ph = d->oh + (d->kh - 1) / d->sh;
	s->plane = s->ph * s->pw;
	s->which = s->mg <= 4;
	int64_t mr = s->fns->mr[s->which];

	/* tap offsets */
	s->off = malloc(sizeof(int32_t) * (size_t)(s->kt ? s->kt : 1));
	if (!s->off)
		return -ENOMEM;
	for (int64_t c = 0, t = 0; c < s->cg; c++)
		for (int64_t ky = 0; ky < d->kh; ky++)
			for (int64_t kx = 0; kx < d->kw; kx++, t++)
				s->off[t] = (int32_t)((((c * d->sh + ky % d->sh) *
					     d->sw + kx % d->sw) * s->plane) +
					     ky / d->sh * s->pw + kx / d->sw);

	/* weights: per group, slivers of mr output channels, tap by tap */
	int64_t slivers = (s->mg + mr - 1) / mr;
	s->pa_group = (size_t)(slivers * mr * s->kt);
	s->pa = lm_kalloc(s->pa_group * (size_t)d->group * sizeof(float));
	if (!s->pa)
		return -ENOMEM;
	k->state_bytes = s->pa_group * (size_t)d->group * sizeof(float);
	float *pa = s->pa;
	for (int64_t g = 0; g < d->group; g++)
		for (int64_t m0 = 0; m0 < s->mg; m0 += mr)
			for (int64_t t = 0; t < s->kt; t++)
				for (int64_t i = 0; i < mr; i++)
					*pa++ = m0 + i < s->mg ? w[(g * s->mg +
						m0 + i) * s->kt + t] : 0.0f;

	/* Bands of output rows of at most 256 KiB (all mg channels), which
	 * the epilogue then finds in L2. */
	s->band = 65536 / (s->mg * d->ow);
	s->band = s->band < 1 ? 1 : s->band > d->oh ? d->oh : s->band;
	k->scratch_bytes = (size_t)(s->cg * d->sh * d->sw * s->plane +
				    DC_SLACK) * sizeof(float);
	return 0;
}
