/*
 * kernels.h: private header of the compute kernels behind the conv, gemm
 * and pool families (blas.c, pgemm.c, conv_gemm.c, winograd.c,
 * depthwise.c, direct.c, grouped.c, pool.c).  The op files (ops/conv.c, ops/gemm.c,
 * ops/pool.c) check a node (with the helpers of prep.h), reduce it to one
 * of the descriptors below and call the matching *_prepare, which picks
 * the code path, packs constant weights into k->state and sizes
 * k->scratch.
 *
 * Layout is NCHW in and out.  1-D convolutions and pools are 2-D ones with
 * H = 1.  Every *_prepare only fails for lack of memory; the op files have
 * already rejected what the kernels cannot do.
 *
 * SIMD: the hot loops that matter (GEMM micro-kernel, im2col packing,
 * Winograd transforms) are written with AVX-512 intrinsics in functions
 * marked LM_AVX512, reached only when lm_have_avx512() says the CPU (and
 * OS) support it.  The depthwise and direct convolutions are written once
 * over simd.h and compiled for AVX-512, AVX2 and portable C, the best
 * lm_isa() allows picked at prepare time.  Elsewhere the portable paths
 * run: OpenBLAS, and plain C loops the compiler vectorises per target
 * (LM_CLONES, from act.h).
 */
#ifndef LAMINA_KERNELS_H
#define LAMINA_KERNELS_H

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "../ops/kernel.h"

#if defined(__x86_64__)
#define LM_AVX512 __attribute__((target("avx512f,fma")))
#else
#define LM_AVX512
#endif

/*
 * The instruction sets the kernels are written for, in order: kernels
 * compiled once per set (simd.h) run the best one lm_isa() allows, and
 * the AVX-512-only kernels run when it is LM_ISA_AVX512.
 */
enum lm_isa {
	LM_ISA_C,       /* portable C */
	LM_ISA_AVX2,    /* AVX2 + FMA */
	LM_ISA_AVX512,  /* AVX-512F + FMA */
};

/**
 * The best set this CPU (and OS) supports, capped by the environment
 * variable LAMINA_ISA ("c", "avx2" or "avx512", read once) and by
 * lm_isa_cap().  Kernels ask at prepare time, so a cap applies to the
 * sessions created after it.
 */
enum lm_isa lm_isa(void);

/** Cap lm_isa() at `cap` from now on (tests; LM_ISA_AVX512 lifts it). */
void lm_isa_cap(enum lm_isa cap);

/** True when the AVX-512 kernels may run on this CPU. */
static inline int lm_have_avx512(void)
{
	return lm_isa() >= LM_ISA_AVX512;
}

/*
 * The epilogues the GEMMs apply in registers while they store C, instead
 * of a pass of lm_epilogue_apply over it once stored (the pass costs more
 * than its arithmetic: act_clip_ip was 6% of MobileNetV2).  Relu, Clip
 * and a residual sum without activation are all one clamp,
 *     v = y + sum;  v < lo ? lo : v > hi ? hi : v
 * with (lo, hi) = (0, +inf) for Relu, (alpha, beta) for Clip and
 * (-inf, +inf) for none.  Those are act.c's comparisons in act.c's order,
 * so the result is bitwise act.c's: NaN fails both and passes through,
 * -0.0 is not below 0, nothing is above +inf, and with lo > hi the first
 * comparison wins.  Other activations keep lm_epilogue_apply.
 */
struct lm_clamp {
	float lo, hi;
	const float *sum;       /* the residual, laid out like C, or NULL */
	int64_t ldsum;
};

/** Set lo and hi from ep and return 1 when its activation is a clamp;
 * else 0. */
static inline int lm_clamp_get(const lm_epilogue *ep, struct lm_clamp *c)
{
	switch (ep->act) {
	case LM_ACT_NONE:
		c->lo = -INFINITY;
		c->hi = INFINITY;
		return 1;
	case LM_ACT_RELU:
		c->lo = 0.0f;
		c->hi = INFINITY;
		return 1;
	case LM_ACT_CLIP:
		c->lo = ep->alpha;
		c->hi = ep->beta;
		return 1;
	default:
		return 0;
	}
}

#if defined(__x86_64__)
#include <immintrin.h>

/* Mask of the vector lanes [lo, hi) (clipped to 0..16): which of 16
 * floats from a position exist, for masked loads and stores that never
 * touch memory outside an array. */
static inline __mmask16 lm_lanes(int64_t lo, int64_t hi)
{
	if (hi > 16)
		hi = 16;
	if (lo < 0)
		lo = 0;
	return (__mmask16)(hi > lo ? ((1u << hi) - 1) & ~((1u << lo) - 1)
				   : 0);
}

/* v < lo ? lo : v > hi ? hi : v per lane (struct lm_clamp): both masks
 * from v, the blend of the first comparison last so that it wins. */
static inline __attribute__((always_inline)) LM_AVX512 __m512
lm_clamp_ps(__m512 v, __m512 lo, __m512 hi)
{
	__mmask16 below = _mm512_cmp_ps_mask(v, lo, _CMP_LT_OQ);
	__mmask16 above = _mm512_cmp_ps_mask(v, hi, _CMP_GT_OQ);

	v = _mm512_mask_blend_ps(above, v, hi);
	return _mm512_mask_blend_ps(below, v, lo);
}

/* r[i][j] -> r[j][i] for a 16 x 16 block of floats in three rounds:
 * 32-bit interleave, 64-bit shuffles (4x4 blocks inside 128-bit lanes),
 * then the 4x4 of lanes.  For the AVX-512 kernels only. */
static inline __attribute__((always_inline)) LM_AVX512 void
lm_transpose16(__m512 r[16])
{
	__m512 t[16], u[16];

	for (int i = 0; i < 16; i += 2) {
		t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
		t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
	}
	for (int i = 0; i < 16; i += 4) {
		u[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
		u[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xee);
		u[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
		u[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xee);
	}
	/* u[4G + c], lane L: rows 4G..4G+3 of column 4L + c. */
	for (int c = 0; c < 4; c++) {
		__m512 y0 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x44);
		__m512 y1 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xee);
		__m512 y2 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x44);
		__m512 y3 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xee);
		r[c] = _mm512_shuffle_f32x4(y0, y2, 0x88);
		r[4 + c] = _mm512_shuffle_f32x4(y0, y2, 0xdd);
		r[8 + c] = _mm512_shuffle_f32x4(y1, y3, 0x88);
		r[12 + c] = _mm512_shuffle_f32x4(y1, y3, 0xdd);
	}
}
#endif

/** 64-byte aligned allocation (size rounded up), freed with free(). */
void *lm_kalloc(size_t bytes);

static inline int64_t lm_round_up(int64_t x, int64_t to)
{
	return (x + to - 1) / to * to;
}

/* ---- packed GEMM on AVX-512 (pgemm.c) ----
 *
 * C = A * B with an 8 x 48 register tile: 8 rows of A broadcast, 48
 * columns of B (three 16-lane vectors).  A is packed once (weights) as
 * slivers of LM_PG_MR rows: element (i, k) of sliver s at s*8*K + k*8 + i.
 * B is packed per call, a block of K x N at a time, into panels of 48 columns
 * (the last one narrower): a pack function fills them from wherever B
 * really lives (a matrix, or an image read as im2col without building it).
 */
#define LM_PG_MR 8
#define LM_PG_NR 48

/** Floats of A (m x k) packed into slivers. */
size_t lm_pgemm_packed_a_floats(int64_t m, int64_t k);

/** Pack rows [0, m) of a row-major m x k matrix (leading dim lda). */
void lm_pgemm_pack_a(const float *a, int64_t lda, int64_t m, int64_t k,
		     float *dst);

/*
 * Fill the panels of B rows [k0, k0 + kc) and columns [n0, n0 + nc):
 * panel p (columns n0 + 48p ...) starts at dst + 48 * p * kc and holds kc
 * rows of w floats, w = 48 for whole panels and the width rounded up to a
 * multiple of 16 for the last (zero-filled past nc).
 */
typedef void (*lm_pgemm_pack_fn)(const void *src, int64_t k0, int64_t kc,
				 int64_t n0, int64_t nc, float *dst);

/* Where C goes, and what is done to it once complete: C = A * B + bias
 * (per row), then the epilogue y = act(y + sum): in the micro-kernel's
 * store when it is a clamp (struct lm_clamp), else on each finished row
 * segment while it is still in cache. */
struct lm_pgemm_out {
	float *c;
	int64_t ldc;
	const float *bias;        /* m values, or NULL */
	const lm_epilogue *ep;    /* NULL: none */
	const float *sum;         /* laid out like c, or NULL */
	int64_t ldsum;
};

/** Floats of the work buffer lm_pgemm needs for an n x k B. */
size_t lm_pgemm_work_floats(int64_t n, int64_t k);

/**
 * C (m x n) = packed A (m x k) * B (k x n), B packed by `pack` from `src`.
 * Only call when lm_have_avx512().
 */
void lm_pgemm(const float *pa, int64_t m, int64_t n, int64_t k,
	      lm_pgemm_pack_fn pack, const void *src,
	      const struct lm_pgemm_out *o, float *work);

/* B as a plain row-major matrix, for lm_pgemm's pack. */
struct lm_pgemm_mat {
	const float *b;
	int64_t ldb;
};
void lm_pgemm_pack_mat(const void *src, int64_t k0, int64_t kc, int64_t n0,
		       int64_t nc, float *dst);

/** Floats of a k x n B packed whole into 48-column panels. */
size_t lm_pgemm_packed_b_floats(int64_t k, int64_t n);

/** Pack all of a k x n B, element (i, j) at b[i * rs + j * cs], into
 * panels. */
void lm_pgemm_pack_b(const float *b, int64_t rs, int64_t cs, int64_t k,
		     int64_t n, float *dst);

/**
 * C (m x n, ldc) = A (m x k, element (i, j) at a[i * ars + j * aks]) * B
 * (packed whole by lm_pgemm_pack_b), overwriting C.  A is read in place:
 * for many small products (Winograd) and for a transposed image (1x1
 * convs on few pixels), where packing it would cost more than it saves.
 */
void lm_pgemm_rows(const float *a, int64_t ars, int64_t aks, int64_t m,
		   int64_t k, const float *pb, int64_t n, float *c,
		   int64_t ldc);

/* ---- OpenBLAS (blas.c) ---- */

/** Row-major C = alpha op(A) op(B) + beta C, through cblas_sgemm, or a
 * matrix-vector product when one side is a vector (AVX-512 when A is a
 * contiguous row, else cblas_sgemv). */
void lm_sgemm(int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha,
	      const float *a, int64_t lda, const float *b, int64_t ldb,
	      float beta, float *c, int64_t ldc);

/* ---- convolution (conv_gemm.c, winograd.c, depthwise.c) ---- */

/* A 2-D convolution with explicit pads (auto_pad already resolved). */
struct lm_conv_desc {
	int64_t n, c, h, w;        /* input */
	int64_t m, oh, ow;         /* output channels and size */
	int64_t kh, kw, sh, sw, dh, dw;
	int64_t pt, pl, pb, pr;    /* pads: top, left, bottom, right */
	int64_t group;
	int has_bias;
	lm_epilogue ep;
};

enum lm_conv_impl {
	LM_CONV_OPENBLAS,  /* im2col (none for 1x1) + cblas_sgemm; any W */
	LM_CONV_SGEMM,     /* packed GEMM on AVX-512, im2col on the fly */
	LM_CONV_SGEMM_T,   /* 1x1 on few pixels: Y^T = X^T W^T, AVX-512 */
	LM_CONV_WINO2,     /* Winograd F(2x2, 3x3) */
	LM_CONV_WINO4,     /* Winograd F(4x4, 3x3) */
	LM_CONV_DEPTHWISE, /* direct, no GEMM */
	LM_CONV_DIRECT,    /* GEMM read in place from phase planes */
	LM_CONV_GROUPED,   /* groups of 16 to 64 channels, AVX-512 */
};

/** Conv through a GEMM: impl LM_CONV_OPENBLAS, LM_CONV_SGEMM or
 * LM_CONV_SGEMM_T (see lm_conv_gemm_t_fits).  w is the constant weight
 * (M, C/group, kh, kw), or NULL to read input 1 at run time (OpenBLAS
 * only). */
int lm_conv_gemm_prepare(const struct lm_conv_desc *d, const float *w,
			 enum lm_conv_impl impl, lm_kernel *k);

/** True when the transposed 1x1 path can run the conv (1x1, no pads,
 * one group). */
int lm_conv_gemm_t_fits(const struct lm_conv_desc *d);

/** True when the conv is a matrix-vector product (1x1 on one pixel),
 * for LM_CONV_OPENBLAS's gemv. */
int lm_conv_gemv_wins(const struct lm_conv_desc *d);

/** True when the transposed 1x1 path is the faster one here. */
int lm_conv_gemm_t_wins(const struct lm_conv_desc *d);

/** Winograd tile size (4 or 2) worth using for this conv, or 0. */
int lm_winograd_choose(const struct lm_conv_desc *d);

/** True when Winograd can run the conv (3x3, stride 1, dilation 1). */
int lm_winograd_fits(const struct lm_conv_desc *d);

/** Winograd F(tile x tile, 3x3), tile 2 or 4; needs constant weights
 * and AVX-512. */
int lm_winograd_prepare(const struct lm_conv_desc *d, const float *w,
			int tile, lm_kernel *k);

/** True when the conv is depthwise (group == C == M). */
int lm_depthwise_fits(const struct lm_conv_desc *d);

/** True when a vector depthwise path runs the conv: square 3x3, 5x5 or
 * 7x7 kernel, stride 1 or 2 on both axes, no dilation, any pads. */
int lm_depthwise_vector_fits(const struct lm_conv_desc *d);

enum lm_dw_variant {
	LM_DW_AUTO,     /* the vector path that fits and wins, else generic */
	LM_DW_ROWS,     /* vectors along output rows */
	LM_DW_BLOCKED,  /* vectors across channels */
	LM_DW_GENERIC,  /* plain loops, any kernel, stride and dilation */
};

/** Direct depthwise conv.  w: the weight when it is a constant (the
 * blocked path then rearranges it once), else NULL and input 1 is read
 * at run time.  -ENOTSUP when a vector variant is asked for and
 * lm_depthwise_vector_fits is false, -ENOMEM. */
int lm_depthwise_prepare(const struct lm_conv_desc *d, const float *w,
			 enum lm_dw_variant variant, lm_kernel *k);

/** True when the direct kernel can run the conv (no dilation). */
int lm_direct_fits(const struct lm_conv_desc *d);

/** True when the direct kernel is the faster one here (stems, grouped). */
int lm_direct_wins(const struct lm_conv_desc *d);

/** Direct conv from phase planes (direct.c); needs the constant weight w
 * (M, C/group, kh, kw).  -ENOMEM. */
int lm_direct_prepare(const struct lm_conv_desc *d, const float *w,
		      lm_kernel *k);

/** True when grouped.c can run the conv: AVX-512, 16, 32, 48 or 64
 * output channels a group, no dilation, column stride 1 or 2. */
int lm_grouped_fits(const struct lm_conv_desc *d);

/** True when grouped.c is the faster one here (grouped but not
 * depthwise, or a stem; rows that its tiles cover with little waste). */
int lm_grouped_wins(const struct lm_conv_desc *d);

/** Grouped conv with channels in the vector (grouped.c); needs the
 * constant weight w (M, C/group, kh, kw) and lm_grouped_fits.  -ENOMEM. */
int lm_grouped_prepare(const struct lm_conv_desc *d, const float *w,
		       lm_kernel *k);

/* ConvTranspose, 2-D, explicit pads (begin only matter) and output size. */
struct lm_convt_desc {
	int64_t n, c, h, w;        /* input */
	int64_t m, oh, ow;         /* output */
	int64_t kh, kw, sh, sw, dh, dw;
	int64_t pt, pl;
	int64_t group;
	int has_bias;
	lm_epilogue ep;
};

/** ConvTranspose as GEMM + col2im; the weight (input 1) is read at run
 * time, constant or not. */
int lm_convt_prepare(const struct lm_convt_desc *d, lm_kernel *k);

/* ---- Gemm and MatMul (blas.c) ---- */

struct lm_gemm_desc {
	int ta, tb;
	int64_t m, n, k;
	float alpha, beta;
	int has_c;
	int c_rank;                /* C's rank, 0 to 2 */
	int64_t c_dims[2];
	lm_epilogue ep;
};

/** Gemm: Y = alpha op(A) op(B) + beta C (C broadcast), then the
 * epilogue. */
int lm_gemm_prepare(const struct lm_gemm_desc *d, lm_kernel *k);

/* MatMul after 1-D promotion: A (..., M, K) x B (..., K, N), batch dims
 * broadcast to the output's. */
struct lm_matmul_desc {
	int rank;                  /* of the broadcast batch + 2 */
	int64_t a_dims[LM_MAX_RANK], b_dims[LM_MAX_RANK];
	int64_t o_dims[LM_MAX_RANK];
	int bias_input;            /* input of N values added to every row
				    * (fuse.c's "lm.bias"), or -1 */
	lm_epilogue ep;
	const float *b_const;      /* B's data when constant, else NULL */
};

/** MatMul: one tall product when B is shared by the whole batch (with a
 * constant B on AVX-512, lamina's GEMM with B packed at prepare), else
 * one per batch index; then the bias and the epilogue.  -ENOMEM. */
int lm_matmul_prepare(const struct lm_matmul_desc *d, lm_kernel *k);

/* ---- pooling (pool.c) ---- */

struct lm_pool_desc {
	int64_t n, c, h, w;
	int64_t oh, ow;
	int64_t kh, kw, sh, sw, dh, dw;
	int64_t pt, pl, pb, pr;
	int is_max;
	int count_include_pad;
};

/** MaxPool (is_max) or AveragePool over 2-D windows, pads explicit. */
int lm_pool_prepare(const struct lm_pool_desc *d, lm_kernel *k);

/** GlobalAveragePool / GlobalMaxPool over `spatial` elements per plane. */
int lm_global_pool_prepare(int64_t planes, int64_t spatial, int is_max,
			   lm_kernel *k);

#endif
