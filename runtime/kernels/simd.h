/*
 * simd.h: one vocabulary of vector operations, for kernels written once
 * and compiled for each instruction set (the bodies in depthwise_simd.h
 * and direct_simd.h).  Not include-guarded on purpose: a kernel file sets
 * LM_SIMD and includes this file and then its bodies, once per set:
 *
 *	LM_SIMD 512   AVX-512F + FMA: 16 floats a vector, 32 registers
 *	LM_SIMD 256   AVX2 + FMA:      8 floats, 16 registers
 *	LM_SIMD 0     portable C: GCC/clang vectors of 4 floats (SSE2 on
 *	              x86-64, NEON or plain scalars elsewhere), no FMA
 *
 * and gets, for that set (each inclusion replaces the previous one's):
 *
 *	VF, VL, VREGS       vector type, floats per vector, vector registers
 *	SIMD(name)          name##_avx512, name##_avx2 or name##_c
 *	SIMD_FN             attributes of a kernel function for the set
 *	SIMD_INLINE         attributes of a helper inlined into one
 *	SIMD_ALIGNR         1 when v_shift exists
 *	v_zero() v_set1(f) v_load(p) v_store(p, v)   (any alignment)
 *	v_fma(a, b, c)      a * b + c
 *	v_add(a, b)
 *	v_clamp(v, lo, hi)  v < lo ? lo : v > hi ? hi : v, lane by lane, the
 *	                    way act.c computes Relu and Clip (struct
 *	                    lm_clamp in kernels.h: bitwise its epilogue)
 *	v_load_range(p, lo, hi)  lanes [lo, hi) from p[lane], others 0;
 *	                    p + lane is only read for lanes in the range
 *	v_store_n(p, v, n)  lanes [0, n) to p, 0 <= n <= VL
 *	v_store_packed(p, v, m)  the lanes set in bit mask m, in order, to
 *	                    p[0], p[1], ... (a full m stores plainly)
 *	v_shift(a, b, k)    lanes k .. k + VL - 1 of a:b, 0 <= k < VL; only
 *	                    where SIMD_ALIGNR (one valignd), elsewhere an
 *	                    unaligned load is cheaper
 *	v_unzip(a, b, &ev, &od)  even and odd lanes of a:b
 *	v_transpose(r)      r[i] lane j <-> r[j] lane i, for VF r[VL]
 *
 * Which set runs is decided at prepare time from lm_simd_level()
 * (kernels.h): the CPU's, capped by LAMINA_SIMD or lm_simd_cap() so that
 * tests reach every set on one machine.
 */

#undef VF
#undef VL
#undef VREGS
#undef SIMD
#undef SIMD_FN
#undef SIMD_INLINE
#undef SIMD_ALIGNR
#undef v_zero
#undef v_set1
#undef v_load
#undef v_store
#undef v_fma
#undef v_add
#undef v_clamp
#undef v_load_range
#undef v_store_n
#undef v_store_packed
#undef v_shift
#undef v_unzip
#undef v_transpose

#if LM_SIMD == 512

#include <immintrin.h>

#define VF __m512
#define VL 16
#define VREGS 32
#define SIMD(name) name##_avx512
#define SIMD_FN __attribute__((target("avx512f,fma")))
#define SIMD_INLINE static inline __attribute__((always_inline)) SIMD_FN
#define SIMD_ALIGNR 1

#ifndef LM_SIMD_512_DONE
#define LM_SIMD_512_DONE

/* An empty range loads nothing: a masked load with no lanes still costs
 * (on Zen 4 it showed in the depthwise padding, 3x3 s2 56x56x144 0.141
 * -> 0.127 ms). */
static inline __attribute__((always_inline, target("avx512f"))) __m512
simd_load_range_avx512(const float *p, int64_t lo, int64_t hi)
{
	if (hi <= 0 || lo >= 16 || hi <= lo)
		return _mm512_setzero_ps();
	return _mm512_maskz_loadu_ps(lm_lanes(lo, hi), p);
}

static inline __attribute__((always_inline, target("avx512f"))) __m512
simd_shift_avx512(__m512 a, __m512 b, int k)
{
	__m512i x = _mm512_castps_si512(a), y = _mm512_castps_si512(b);
	/* the immediate must be a constant even at -O0 */
	switch (k) {
#define SH(i) case i: return _mm512_castsi512_ps(_mm512_alignr_epi32(y, x, i))
	SH(1); SH(2); SH(3); SH(4); SH(5); SH(6); SH(7); SH(8);
	SH(9); SH(10); SH(11); SH(12); SH(13); SH(14); SH(15);
#undef SH
	default: return a;
	}
}

/* vcompressps to memory is slow on Zen 4: compress in a register, then
 * a masked store. */
static inline __attribute__((always_inline, target("avx512f"))) void
simd_store_packed_avx512(float *p, __m512 v, unsigned m)
{
	if (m == 0xffff) {
		_mm512_storeu_ps(p, v);
		return;
	}
	__m512 c = _mm512_maskz_compress_ps((__mmask16)m, v);
	_mm512_mask_storeu_ps(p, (__mmask16)((1u << __builtin_popcount(m)) -
					     1), c);
}

static inline __attribute__((always_inline, target("avx512f"))) void
simd_unzip_avx512(__m512 a, __m512 b, __m512 *ev, __m512 *od)
{
	const __m512i e = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16,
					   14, 12, 10, 8, 6, 4, 2, 0);
	const __m512i o = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17,
					   15, 13, 11, 9, 7, 5, 3, 1);
	*ev = _mm512_permutex2var_ps(a, e, b);
	*od = _mm512_permutex2var_ps(a, o, b);
}

#endif

#define v_zero() _mm512_setzero_ps()
#define v_set1(f) _mm512_set1_ps(f)
#define v_load(p) _mm512_loadu_ps(p)
#define v_store(p, v) _mm512_storeu_ps(p, v)
#define v_fma(a, b, c) _mm512_fmadd_ps(a, b, c)
#define v_add(a, b) _mm512_add_ps(a, b)
#define v_clamp(v, lo, hi) lm_clamp_ps(v, lo, hi)
#define v_load_range(p, lo, hi) simd_load_range_avx512(p, lo, hi)
#define v_store_n(p, v, n) \
	_mm512_mask_storeu_ps(p, lm_lanes(0, n), v)
#define v_store_packed(p, v, m) simd_store_packed_avx512(p, v, m)
#define v_shift(a, b, k) simd_shift_avx512(a, b, k)
#define v_unzip(a, b, ev, od) simd_unzip_avx512(a, b, ev, od)
#define v_transpose(r) lm_transpose16(r)

#elif LM_SIMD == 256

#include <immintrin.h>

#define VF __m256
#define VL 8
#define VREGS 16
#define SIMD(name) name##_avx2
#define SIMD_FN __attribute__((target("avx2,fma")))
#define SIMD_INLINE static inline __attribute__((always_inline)) SIMD_FN
#define SIMD_ALIGNR 0

#ifndef LM_SIMD_256_DONE
#define LM_SIMD_256_DONE

/* -1 in lanes [lo, hi), for vmaskmovps */
static inline __attribute__((always_inline, target("avx2"))) __m256i
simd_lanes_avx2(int64_t lo, int64_t hi)
{
	const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
	int l = lo < 0 ? 0 : lo > 8 ? 8 : (int)lo;
	int h = hi < 0 ? 0 : hi > 8 ? 8 : (int)hi;
	__m256i ge = _mm256_cmpgt_epi32(idx, _mm256_set1_epi32(l - 1));
	__m256i lt = _mm256_cmpgt_epi32(_mm256_set1_epi32(h), idx);
	return _mm256_and_si256(ge, lt);
}

static inline __attribute__((always_inline, target("avx2"))) __m256
simd_clamp_avx2(__m256 v, __m256 lo, __m256 hi)
{
	__m256 l = _mm256_cmp_ps(v, lo, _CMP_LT_OQ);
	__m256 h = _mm256_andnot_ps(l, _mm256_cmp_ps(v, hi, _CMP_GT_OQ));

	return _mm256_blendv_ps(_mm256_blendv_ps(v, lo, l), hi, h);
}

static inline __attribute__((always_inline, target("avx2"))) __m256
simd_load_range_avx2(const float *p, int64_t lo, int64_t hi)
{
	if (lo <= 0 && hi >= 8)
		return _mm256_loadu_ps(p);
	if (hi <= 0 || lo >= 8 || hi <= lo)
		return _mm256_setzero_ps();
	return _mm256_maskload_ps(p, simd_lanes_avx2(lo, hi));
}

/* vmaskmovps stores are slow on some cores: full vectors go plain. */
static inline __attribute__((always_inline, target("avx2"))) void
simd_store_n_avx2(float *p, __m256 v, int64_t n)
{
	if (n >= 8)
		_mm256_storeu_ps(p, v);
	else if (n > 0)
		_mm256_maskstore_ps(p, simd_lanes_avx2(0, n), v);
}

static inline __attribute__((always_inline, target("avx2"))) void
simd_store_packed_avx2(float *p, __m256 v, unsigned m)
{
	float t[8];

	if (m == 0xff) {
		_mm256_storeu_ps(p, v);
		return;
	}
	_mm256_storeu_ps(t, v);
	for (int i = 0; i < 8; i++)
		if (m >> i & 1)
			*p++ = t[i];
}

static inline __attribute__((always_inline, target("avx2"))) void
simd_unzip_avx2(__m256 a, __m256 b, __m256 *ev, __m256 *od)
{
	/* a0 a2 b0 b2 | a4 a6 b4 b6, then the 64-bit pairs reordered */
	__m256 e = _mm256_shuffle_ps(a, b, 0x88);
	__m256 o = _mm256_shuffle_ps(a, b, 0xdd);
	*ev = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e),
						     0xd8));
	*od = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(o),
						     0xd8));
}

static inline __attribute__((always_inline, target("avx2"))) void
simd_transpose_avx2(__m256 r[8])
{
	__m256 t[8], u[8];

	for (int i = 0; i < 8; i += 2) {
		t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
		t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
	}
	for (int i = 0; i < 8; i += 4) {
		u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
		u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xee);
		u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
		u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xee);
	}
	for (int c = 0; c < 4; c++) {
		r[c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x20);
		r[4 + c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x31);
	}
}

#endif

#define v_zero() _mm256_setzero_ps()
#define v_set1(f) _mm256_set1_ps(f)
#define v_load(p) _mm256_loadu_ps(p)
#define v_store(p, v) _mm256_storeu_ps(p, v)
#define v_fma(a, b, c) _mm256_fmadd_ps(a, b, c)
#define v_add(a, b) _mm256_add_ps(a, b)
#define v_clamp(v, lo, hi) simd_clamp_avx2(v, lo, hi)
#define v_load_range(p, lo, hi) simd_load_range_avx2(p, lo, hi)
#define v_store_n(p, v, n) simd_store_n_avx2(p, v, n)
#define v_store_packed(p, v, m) simd_store_packed_avx2(p, v, m)
#define v_unzip(a, b, ev, od) simd_unzip_avx2(a, b, ev, od)
#define v_transpose(r) simd_transpose_avx2(r)

#elif LM_SIMD == 0

#include <string.h>

#ifndef LM_SIMD_0_DONE
#define LM_SIMD_0_DONE

typedef float simd_v4 __attribute__((vector_size(16)));

static inline __attribute__((always_inline)) simd_v4
simd_load_c(const float *p)
{
	simd_v4 v;
	memcpy(&v, p, sizeof(v));
	return v;
}

static inline __attribute__((always_inline)) void
simd_store_c(float *p, simd_v4 v)
{
	memcpy(p, &v, sizeof(v));
}

static inline __attribute__((always_inline)) simd_v4
simd_clamp_c(simd_v4 v, simd_v4 lo, simd_v4 hi)
{
	for (int i = 0; i < 4; i++)
		v[i] = v[i] < lo[i] ? lo[i] : v[i] > hi[i] ? hi[i] : v[i];
	return v;
}

static inline __attribute__((always_inline)) simd_v4
simd_load_range_c(const float *p, int64_t lo, int64_t hi)
{
	simd_v4 v = { 0, 0, 0, 0 };
	for (int64_t i = lo < 0 ? 0 : lo; i < hi && i < 4; i++)
		v[i] = p[i];
	return v;
}

static inline __attribute__((always_inline)) void
simd_store_n_c(float *p, simd_v4 v, int64_t n)
{
	for (int64_t i = 0; i < n && i < 4; i++)
		p[i] = v[i];
}

static inline __attribute__((always_inline)) void
simd_store_packed_c(float *p, simd_v4 v, unsigned m)
{
	for (int i = 0; i < 4; i++)
		if (m >> i & 1)
			*p++ = v[i];
}

static inline __attribute__((always_inline)) void
simd_unzip_c(simd_v4 a, simd_v4 b, simd_v4 *ev, simd_v4 *od)
{
	*ev = (simd_v4){ a[0], a[2], b[0], b[2] };
	*od = (simd_v4){ a[1], a[3], b[1], b[3] };
}

static inline __attribute__((always_inline)) void
simd_transpose_c(simd_v4 r[4])
{
	simd_v4 t[4];
	for (int i = 0; i < 4; i++)
		for (int j = 0; j < 4; j++)
			t[i][j] = r[j][i];
	memcpy(r, t, sizeof(t));
}

#endif

#define VF simd_v4
#define VL 4
#define VREGS 16
#define SIMD(name) name##_c
#define SIMD_FN
#define SIMD_INLINE static inline __attribute__((always_inline))
#define SIMD_ALIGNR 0
#define v_zero() ((simd_v4){ 0, 0, 0, 0 })
#define v_set1(f) ((simd_v4){ 0, 0, 0, 0 } + (f))
#define v_load(p) simd_load_c(p)
#define v_store(p, v) simd_store_c(p, v)
#define v_fma(a, b, c) ((a) * (b) + (c))
#define v_add(a, b) ((a) + (b))
#define v_clamp(v, lo, hi) simd_clamp_c(v, lo, hi)
#define v_load_range(p, lo, hi) simd_load_range_c(p, lo, hi)
#define v_store_n(p, v, n) simd_store_n_c(p, v, n)
#define v_store_packed(p, v, m) simd_store_packed_c(p, v, m)
#define v_unzip(a, b, ev, od) simd_unzip_c(a, b, ev, od)
#define v_transpose(r) simd_transpose_c(r)

#else
#error "LM_SIMD must be 512, 256 or 0"
#endif
