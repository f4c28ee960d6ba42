/*
 * pgemm.c: lamina's own single-precision GEMM for AVX-512, behind the
 * convolutions (conv_gemm.c, winograd.c).
 *
 * Why not OpenBLAS here: Debian's OpenBLAS 0.3.21 does not know AMD Zen 5
 * and runs its Haswell (AVX2) kernels there, about half of what the core
 * can do (110 against 215 GFLOP/s for a 1024^3 sgemm on one core).  A
 * convolution also wants what a BLAS call cannot give: B packed straight
 * from the image (no im2col buffer), the bias loaded into the accumulators
 * and the epilogue applied in the store (Relu, Clip, a residual sum) or on
 * each row block while it is in cache (the others).
 *
 * The scheme is the usual one (Goto): the micro-kernel keeps an 8 x 48
 * tile of C in 24 zmm registers and, per k, loads three vectors of B and
 * broadcasts eight values of A.  A (the weights) is packed once into
 * 8-row slivers; B is packed per call, PG_KC rows by PG_NC columns at a
 * time, into 48-column panels sized to stay in L2 while an A sliver
 * (8 x PG_KC) sits in L1.  Measured on Zen 5 the micro-kernel alone runs
 * at about 230 GFLOP/s from L2.
 */
#include "kernels.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define MR LM_PG_MR
#define NR LM_PG_NR

/* K and N blocking (see bench_kernels): 8 x KC floats of A in L1, KC x NC
 * of B (at most 384 KiB) in L2. */
#ifndef PG_KC
#define PG_KC 384
#endif
#ifndef PG_NC
#define PG_NC 288
#endif

/* Large kernel buffers (packed weights, arenas) start on a 2 MiB boundary
 * and ask for transparent huge pages: a stage streams tens of MB of
 * weights per request, and in 4 KiB pages most of those reads also miss
 * the TLB.  Where THP is off the advice is ignored. */
#define HUGE_BYTES (2u << 20)

void *lm_kalloc(size_t bytes)
{
	size_t sz = (bytes + 63) / 64 * 64;
	if (sz < HUGE_BYTES)
		return aligned_alloc(64, sz ? sz : 64);
	sz = (sz + HUGE_BYTES - 1) / HUGE_BYTES * HUGE_BYTES;
	void *p = aligned_alloc(HUGE_BYTES, sz);
	if (p)
		madvise(p, sz, MADV_HUGEPAGE);
	return p;
}

size_t lm_pgemm_packed_a_floats(int64_t m, int64_t k)
{
	return (size_t)(lm_round_up(m, MR) * k);
}

void lm_pgemm_pack_a(const float *a, int64_t lda, int64_t m, int64_t k,
		     float *dst)
{
	for (int64_t m0 = 0; m0 < m; m0 += MR) {
		int64_t mr = m - m0 < MR ? m - m0 : MR;
		for (int64_t kk = 0; kk < k; kk++) {
			for (int64_t i = 0; i < mr; i++)
				dst[i] = a[(m0 + i) * lda + kk];
			for (int64_t i = mr; i < MR; i++)
				dst[i] = 0;
			dst += MR;
		}
	}
}

/* Width in floats of a panel's rows: 48, or the last panel's width
 * rounded up to whole vectors. */
static int64_t panel_stride(int64_t w)
{
	return w >= NR ? NR : lm_round_up(w, 16);
}

size_t lm_pgemm_packed_b_floats(int64_t k, int64_t n)
{
	return (size_t)(k * lm_round_up(n, 16));
}

size_t lm_pgemm_work_floats(int64_t n, int64_t k)
{
	int64_t kc = k < PG_KC ? k : PG_KC;
	int64_t nc = n < PG_NC ? n : PG_NC;
	return (size_t)(kc * lm_round_up(nc, NR));
}

#if defined(__x86_64__)

typedef void (*ukr_fn)(int64_t kc, const float *a, int64_t ars,
		       int64_t aks, const float *b, int64_t bks, float *c,
		       int64_t ldc, unsigned mask, const float *bias, int acc,
		       const struct lm_clamp *ep);

/*
 * The micro-kernel: C[mr x 16nv] (+)= A[mr x kc] * B[kc x 16nv].  A(i, k)
 * is a[i * ars + k * aks] (a packed sliver or plain rows), B's row k is
 * b + k * bks.  The accumulators start at bias[i] (or 0); with acc set, C
 * is added at the end, then with ep (the last K block) the residual and
 * the clamp, in the order act.c applies them to a stored C.  `mask`
 * selects the lanes of the last vector that exist in C.  mr and nv are
 * constants in each instance below, so the loops unroll into
 * straight-line code over registers; ep is a run-time argument, looked
 * at in the store only (never per k), so that it adds no instances.
 */
static inline __attribute__((always_inline)) LM_AVX512 void
ukr(const int mr, const int nv, const int packed, int64_t kc, const float *a,
    int64_t ars, int64_t aks, const float *b, int64_t bks, float *c,
    int64_t ldc, unsigned mask, const float *bias, int acc,
    const struct lm_clamp *ep)
{
	if (packed) {
		ars = 1;
		aks = MR;
	}
	__m512 t[MR][3];

#pragma GCC unroll 8
	for (int i = 0; i < mr; i++) {
		__m512 v = bias ? _mm512_set1_ps(bias[i]) : _mm512_setzero_ps();
#pragma GCC unroll 3
		for (int j = 0; j < nv; j++)
			t[i][j] = v;
	}
	for (int64_t kk = 0; kk < kc; kk++) {
		__m512 b0 = _mm512_loadu_ps(b);
		__m512 b1 = nv > 1 ? _mm512_loadu_ps(b + 16) : b0;
		__m512 b2 = nv > 2 ? _mm512_loadu_ps(b + 32) : b0;
		/* A packed is read once per sliver, often from L3 (weights
		 * of a late layer): the prefetcher alone leaves the loop
		 * waiting on it, so ask for it 2 KiB ahead. */
		if (packed)
			_mm_prefetch((const char *)(a + 64 * MR), _MM_HINT_T0);
#pragma GCC unroll 8
		for (int i = 0; i < mr; i++) {
			__m512 av = _mm512_set1_ps(a[i * ars]);
			t[i][0] = _mm512_fmadd_ps(av, b0, t[i][0]);
			if (nv > 1)
				t[i][1] = _mm512_fmadd_ps(av, b1, t[i][1]);
			if (nv > 2)
				t[i][2] = _mm512_fmadd_ps(av, b2, t[i][2]);
		}
		a += aks;
		b += bks;
	}
	/* Set up after the k loop, which holds 28 of the 32 vector
	 * registers already. */
	const float *s = ep ? ep->sum : NULL;
	int64_t lds = ep ? ep->ldsum : 0;
	__m512 lo = _mm512_set1_ps(ep ? ep->lo : 0.0f);
	__m512 hi = _mm512_set1_ps(ep ? ep->hi : 0.0f);
#pragma GCC unroll 8
	for (int i = 0; i < mr; i++) {
#pragma GCC unroll 3
		for (int j = 0; j < nv; j++) {
			float *p = c + i * ldc + 16 * j;
			__mmask16 m = (__mmask16)(j == nv - 1 ? mask : 0xffff);
			__m512 v = t[i][j];
			if (acc)
				v = _mm512_add_ps(v,
						  _mm512_maskz_loadu_ps(m, p));
			if (s)
				v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m,
						  s + i * lds + 16 * j));
			if (ep)
				v = lm_clamp_ps(v, lo, hi);
			_mm512_mask_storeu_ps(p, m, v);
		}
	}
}

/* Instances: p (A packed in slivers) or r (A in rows), mr rows, nv
 * vectors. */
#define UKR(kind, packed, mr, nv)                                        \
	static LM_AVX512 void ukr_##kind##mr##_##nv(                    \
		int64_t kc, const float *a, int64_t ars, int64_t aks,   \
		const float *b, int64_t bks, float *c, int64_t ldc,     \
		unsigned mask, const float *bias, int acc,              \
		const struct lm_clamp *ep)                              \
	{                                                                \
		ukr(mr, nv, packed, kc, a, ars, aks, b, bks, c, ldc,    \
		    mask, bias, acc, ep);                                \
	}
#define UKR3(mr) UKR(p, 1, mr, 1) UKR(p, 1, mr, 2) UKR(p, 1, mr, 3) \
		 UKR(r, 0, mr, 1) UKR(r, 0, mr, 2) UKR(r, 0, mr, 3)
UKR3(1) UKR3(2) UKR3(3) UKR3(4) UKR3(5) UKR3(6) UKR3(7) UKR3(8)
#define ROW(k, mr) { ukr_##k##mr##_1, ukr_##k##mr##_2, ukr_##k##mr##_3 }
static const ukr_fn ukr_packed[MR][3] = {
	ROW(p, 1), ROW(p, 2), ROW(p, 3), ROW(p, 4),
	ROW(p, 5), ROW(p, 6), ROW(p, 7), ROW(p, 8),
};
static const ukr_fn ukr_rows[MR][3] = {
	ROW(r, 1), ROW(r, 2), ROW(r, 3), ROW(r, 4),
	ROW(r, 5), ROW(r, 6), ROW(r, 7), ROW(r, 8),
};

/* Lanes of the last vector of a w-column panel that exist. */
static unsigned tail_mask(int64_t w)
{
	int r = (int)(w % 16);
	return r ? (1u << r) - 1 : 0xffff;
}

LM_AVX512 void lm_pgemm_pack_mat(const void *src, int64_t k0, int64_t kc,
				 int64_t n0, int64_t nc, float *dst)
{
	const struct lm_pgemm_mat *s = src;

	for (int64_t p0 = 0; p0 < nc; p0 += NR, dst += NR * kc) {
		int64_t w = nc - p0 < NR ? nc - p0 : NR;
		int64_t st = panel_stride(w);
		const float *b = s->b + k0 * s->ldb + n0 + p0;
		float *d = dst;
		if (w == NR) {
			for (int64_t kk = 0; kk < kc; kk++, b += s->ldb,
			     d += NR) {
				__m512 v0 = _mm512_loadu_ps(b);
				__m512 v1 = _mm512_loadu_ps(b + 16);
				__m512 v2 = _mm512_loadu_ps(b + 32);
				_mm512_storeu_ps(d, v0);
				_mm512_storeu_ps(d + 16, v1);
				_mm512_storeu_ps(d + 32, v2);
			}
			continue;
		}
		for (int64_t kk = 0; kk < kc; kk++, b += s->ldb, d += st) {
			for (int64_t j = 0; j < st; j += 16) {
				__m512 v = _mm512_maskz_loadu_ps(
					lm_lanes(0, w - j), b + j);
				_mm512_storeu_ps(d + j, v);
			}
		}
	}
}

/* Run the epilogue over rows [m0, m0 + mr), columns [n0, n0 + nc): the
 * activations that are no clamp. */
static void epilogue_rows(const struct lm_pgemm_out *o, int64_t m0,
			  int64_t mr, int64_t n0, int64_t nc)
{
	for (int64_t i = m0; i < m0 + mr; i++)
		lm_epilogue_apply(o->ep, o->c + i * o->ldc + n0,
				  o->sum ? o->sum + i * o->ldsum + n0 : NULL,
				  (size_t)nc);
}

void lm_pgemm(const float *pa, int64_t m, int64_t n, int64_t k,
	      lm_pgemm_pack_fn pack, const void *src,
	      const struct lm_pgemm_out *o, float *work)
{
	int has_ep = o->ep && (o->ep->act != LM_ACT_NONE || o->sum);
	struct lm_clamp cl = { .sum = o->sum, .ldsum = o->ldsum };
	int in_store = has_ep && lm_clamp_get(o->ep, &cl);

	if (k == 0) {
		for (int64_t i = 0; i < m; i++)
			for (int64_t j = 0; j < n; j++)
				o->c[i * o->ldc + j] = o->bias ? o->bias[i] : 0;
		if (has_ep)
			epilogue_rows(o, 0, m, 0, n);
		return;
	}
	/* Even K blocks, so that the last is not a sliver. */
	int64_t nkb = (k + PG_KC - 1) / PG_KC;
	int64_t kcb = (k + nkb - 1) / nkb;

	for (int64_t n0 = 0; n0 < n; n0 += PG_NC) {
		int64_t nc = n - n0 < PG_NC ? n - n0 : PG_NC;
		int64_t npan = (nc + NR - 1) / NR;
		for (int64_t k0 = 0; k0 < k; k0 += kcb) {
			int64_t kc = k - k0 < kcb ? k - k0 : kcb;
			int last = k0 + kc == k;
			pack(src, k0, kc, n0, nc, work);
			for (int64_t m0 = 0; m0 < m; m0 += MR) {
				int64_t mr = m - m0 < MR ? m - m0 : MR;
				const float *a = pa + m0 * k + k0 * MR;
				const float *bias = k0 == 0 && o->bias
						    ? o->bias + m0 : NULL;
				for (int64_t p = 0; p < npan; p++) {
					int64_t w = nc - p * NR < NR
						    ? nc - p * NR : NR;
					int64_t st = panel_stride(w);
					int64_t off = n0 + p * NR;
					float *c = o->c + m0 * o->ldc + off;
					struct lm_clamp ep = cl;
					if (o->sum)
						ep.sum = o->sum + m0 *
							 o->ldsum + off;
					ukr_packed[mr - 1][st / 16 - 1](
						kc, a, 1, MR,
						work + p * NR * kc, st, c,
						o->ldc, tail_mask(w), bias,
						k0 > 0, last && in_store
						? &ep : NULL);
				}
				if (last && has_ep && !in_store)
					epilogue_rows(o, m0, mr, n0, nc);
			}
		}
	}
}

void lm_pgemm_rows(const float *a, int64_t ars, int64_t aks, int64_t m,
		   int64_t k, const float *pb, int64_t n, float *c,
		   int64_t ldc)
{
	for (int64_t p0 = 0; p0 < n; p0 += NR) {
		int64_t w = n - p0 < NR ? n - p0 : NR;
		int64_t st = panel_stride(w);
		const float *b = pb + p0 * k;
		for (int64_t m0 = 0; m0 < m; m0 += MR) {
			int64_t mr = m - m0 < MR ? m - m0 : MR;
			ukr_rows[mr - 1][st / 16 - 1](k, a + m0 * ars, ars,
						      aks, b, st,
						      c + m0 * ldc + p0, ldc,
						      tail_mask(w), NULL, 0,
						      NULL);
		}
	}
}

#else /* no AVX-512 kernels on this architecture: never called */

void lm_pgemm_pack_mat(const void *src, int64_t k0, int64_t kc, int64_t n0,
		       int64_t nc, float *dst)
{
	(void)src; (void)k0; (void)kc; (void)n0; (void)nc; (void)dst;
}

void lm_pgemm(const float *pa, int64_t m, int64_t n, int64_t k,
	      lm_pgemm_pack_fn pack, const void *src,
	      const struct lm_pgemm_out *o, float *work)
{
	(void)pa; (void)m; (void)n; (void)k; (void)pack; (void)src; (void)o;
	(void)work;
}

void lm_pgemm_rows(const float *a, int64_t ars, int64_t aks, int64_t m,
		   int64_t k, const float *pb, int64_t n, float *c,
		   int64_t ldc)
{
	(void)a; (void)ars; (void)aks; (void)m; (void)k; (void)pb; (void)n;
	(void)c; (void)ldc;
}

#endif

void lm_pgemm_pack_b(const float *b, int64_t rs, int64_t cs, int64_t k,
		     int64_t n, float *dst)
{
	for (int64_t p0 = 0; p0 < n; p0 += NR) {
		int64_t w = n - p0 < NR ? n - p0 : NR;
		int64_t st = panel_stride(w);
		for (int64_t kk = 0; kk < k; kk++) {
			for (int64_t j = 0; j < st; j++)
				dst[j] = j < w ? b[kk * rs + (p0 + j) * cs] : 0;
			dst += st;
		}
	}
}
