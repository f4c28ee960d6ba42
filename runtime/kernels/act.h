/*
 * act.h: private header of the runtime's float kernels (act.c, the
 * elementwise, norm and shape families, the pool and depthwise kernels):
 * loop helpers that vectorise, and exp, sigmoid, tanh, erf and GELU
 * written to vectorise, plus the array functions act.c exports.
 *
 * SIMD is chosen at run time: hot loops sit in functions marked LM_CLONES,
 * for which the compiler emits an AVX-512, an AVX2 and a baseline (SSE2)
 * version and the loader picks one by CPUID (an ifunc), so the binary runs
 * on any x86-64 (define LM_NO_CLONES for a single baseline build, for
 * tools that cannot follow ifuncs).  The math below is plain scalar C with no branches, no
 * libm calls and no tables: the vectoriser turns a loop calling it into
 * packed code in each clone.  libm's expf does not vectorise here (glibc's
 * vector variants in libmvec are only used under -ffast-math, which the
 * build does not set), so exp is our own: round x / ln2 to k with the
 * 1.5 * 2^23 trick, reduce r = x - k ln2 in two parts (Cody and Waite),
 * e^r by a degree-6 polynomial fitted on [-ln2/2, ln2/2] (Chebyshev fit,
 * error 1.1e-8), times 2^k built in the exponent bits.  Measured against
 * exp() in double over [-103, 88.7] the relative error is below 2e-7;
 * sigmoid, SiLU and tanh stay below 5e-7, erf and GELU below 1e-6 (see
 * tests/unit/test_misc_kernels.c).
 */
#ifndef LAMINA_KERNELS_ACT_H
#define LAMINA_KERNELS_ACT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../ops/kernel.h"

#if defined(__x86_64__) && !defined(LM_NO_CLONES)
#define LM_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define LM_CLONES
#endif

/* GCC's -O2 needs to be told the blocks below carry no dependences;
 * clang vectorises them anyway, and its equivalent pragma also forces
 * vectorisation, warning wherever it cannot (at -O1, or around libm). */
#ifdef __clang__
#define LM_IVDEP
#else
#define LM_IVDEP _Pragma("GCC ivdep")
#endif

/*
 * for (i = 0; i < n; i++) body;  as a loop both compilers vectorise at -O2
 * as well as -O3.  GCC's -O2 cost model only vectorises a loop that needs
 * neither a scalar epilogue nor run-time alias checks, so the body runs in
 * blocks of 16 (a whole number of vectors for every clone) with the
 * dependences waived, then once per leftover element.  Waiving them is
 * correct for our kernels: an output either is its input (in place, same
 * index) or does not overlap it at all.
 *
 * Even so, a loop must not leave the compiler in doubt about aliasing: at
 * -O3 GCC unrolls the block, vectorises the outer loop instead, versions
 * it on an overlap check and runs scalar code when y is x.  So kernels
 * either read and write through one pointer (in place) or take restrict
 * pointers (out of place), and come in both variants where both are used.
 */
#define LM_VFOR(i, n, ...)                                              \
	do {                                                            \
		size_t i##_blk_ = 0, i##_n_ = (n), i;                   \
		for (; i##_blk_ + 16 <= i##_n_; i##_blk_ += 16) {       \
			LM_IVDEP                                        \
			for (size_t i##_j_ = 0; i##_j_ < 16; i##_j_++) { \
				i = i##_blk_ + i##_j_;                  \
				__VA_ARGS__;                            \
			}                                               \
		}                                                       \
		for (i = i##_blk_; i < i##_n_; i++) {                   \
			__VA_ARGS__;                                    \
		}                                                       \
	} while (0)

/* A plain loop, for bodies that call libm: sqrtf keeps errno, so GCC
 * will not vectorise it without -fno-math-errno, and powf has no vector
 * form. */
#define LM_SFOR(i, n, ...)                                              \
	for (size_t i = 0; i < (n); i++) {                              \
		__VA_ARGS__;                                            \
	}

/*
 * The in-place and out-of-place kernels of one float function of v (the
 * element) and p (a parameter), name##_ip and name##_op; `loop` is
 * LM_VFOR or LM_SFOR.
 */
#define LM_F32_UNARY(name, loop, expr)                                  \
	static LM_CLONES void                                           \
	name##_ip(float *y, size_t n, float p)                          \
	{                                                               \
		(void)p;                                                \
		loop(i, n, float v = y[i]; y[i] = (expr));              \
	}                                                               \
	static LM_CLONES void                                           \
	name##_op(float *restrict y, const float *restrict x, size_t n, \
		  float p)                                              \
	{                                                               \
		(void)p;                                                \
		loop(i, n, float v = x[i]; y[i] = (expr));              \
	}

/* The math must inline into the loops or they cannot vectorise; at -O2
 * GCC's heuristics would keep vm_gelu, called from six clones, out of
 * line. */
#define VM_INLINE static inline __attribute__((always_inline))

VM_INLINE uint32_t vm_bits(float f)
{
	uint32_t u;
	memcpy(&u, &f, sizeof(u));
	return u;
}

VM_INLINE float vm_float(uint32_t u)
{
	float f;
	memcpy(&f, &u, sizeof(f));
	return f;
}

/*
 * c ? a : b, as bit operations.  Written with ?: GCC (keeping floating-
 * point traps, its default) moves the computation of whichever operand
 * only one side uses into a branch, which it then cannot if-convert
 * outside AVX-512 (a float multiply "could trap"): the loop stays scalar.
 * A bitwise select leaves both operands computed on every lane.
 */
VM_INLINE float vm_sel(int c, float a, float b)
{
	uint32_t m = -(uint32_t)c;
	return vm_float((vm_bits(a) & m) | (vm_bits(b) & ~m));
}

/* e^x; +inf above 88.72, 0 below -104, NaN stays NaN. */
VM_INLINE float vm_exp(float x)
{
	float kf = x * 1.44269504089f + 0x1.8p23f;
	int32_t k = (int32_t)(vm_bits(kf) - 0x4b400000u);
	kf -= 0x1.8p23f;
	float r = x - kf * 0.693359375f;
	r = r - kf * -2.12194440054691e-4f;
	float h = 0.00139261761199f;
	h = h * r + 0.00836317307451f;
	h = h * r + 0.0416665546621f;
	h = h * r + 0.166665770256f;
	h = h * r + 0.5f;
	float p = 1.0f + r + r * r * h;
	/* 2^k in two halves, each a normal float for k in [-252, 254]:
	 * results down to the smallest subnormal come out right. */
	int32_t k1 = k >> 1, k2 = k - k1;
	float s1 = vm_float((uint32_t)(k1 + 127) << 23);
	float s2 = vm_float((uint32_t)(k2 + 127) << 23);
	float y = p * s1 * s2;
	/* Out there k is meaningless (the rounding trick needs |k| < 2^22)
	 * but the answer is known. */
	y = vm_sel(x > 88.7228394f, __builtin_inff(), y);
	return vm_sel(x < -104.0f, 0.0f, y);
}

VM_INLINE float vm_sigmoid(float x)
{
	return 1.0f / (1.0f + vm_exp(-x));
}

/* x * sigmoid(x), dividing once. */
VM_INLINE float vm_silu(float x)
{
	return x / (1.0f + vm_exp(-x));
}

/* max(0, min(1, alpha x + beta)) */
VM_INLINE float vm_hard_sigmoid(float x, float alpha, float beta)
{
	float v = alpha * x + beta;
	v = vm_sel(v < 0.0f, 0.0f, v);
	return vm_sel(v > 1.0f, 1.0f, v);
}

VM_INLINE float vm_copysign(float mag, float sgn)
{
	return vm_float((vm_bits(mag) & 0x7fffffffu) |
			(vm_bits(sgn) & 0x80000000u));
}

/*
 * tanh: 1 - 2 / (e^2|x| + 1) loses its relative accuracy to cancellation
 * near 0, so below |x| = 0.625 an odd polynomial (fitted, 2e-8) is used.
 */
VM_INLINE float vm_tanh(float x)
{
	float a = vm_float(vm_bits(x) & 0x7fffffffu);
	float u = a * a;
	float q = -0.00609671416591f;
	q = q * u + 0.0209971789991f;
	q = q * u - 0.0538509095785f;
	q = q * u + 0.13332769737f;
	q = q * u - 0.333333289441f;
	float small = a + a * u * q;
	float big = 1.0f - 2.0f / (vm_exp(2.0f * a) + 1.0f);
	return vm_copysign(vm_sel(a < 0.625f, small, big), x);
}

/* erf(a) / a as a polynomial in a^2, for a < 0.75 (fitted, 2e-9). */
VM_INLINE float vm_erf_small(float a)
{
	float u = a * a;
	float p = -0.000675647956868f;
	p = p * u + 0.00511533211253f;
	p = p * u - 0.0268351145686f;
	p = p * u + 0.112833865384f;
	p = p * u - 0.376126194694f;
	p = p * u + 1.12837916558f;
	return p;
}

/* The high half of a float's significand (12 bits), so that its square
 * is exact. */
VM_INLINE float vm_hi12(float a)
{
	return vm_float(vm_bits(a) & 0xfffff000u);
}

/*
 * erfc(a) for a >= 0.75, given a^2 as an exact sum hi + lo (|lo| small):
 * erfc(a) = e^(-a^2) t K(t) with t = 1 / (1 + a/2) and K fitted on
 * t in (0, 0.727] (error 1e-8).  Rounding a^2 itself would cost up to
 * a^2 * 6e-8 of relative accuracy, hence the split: e^-hi is computed
 * exactly reduced and e^-lo (|lo| < a^2 / 1024) by its series.
 */
VM_INLINE float vm_erfc_big(float a, float hi, float lo)
{
	float t = 1.0f / (1.0f + 0.5f * a);
	float k = -0.0774956222207f;
	k = k * t + 0.251230190079f;
	k = k * t - 0.248893431116f;
	k = k * t + 0.0269613549487f;
	k = k * t - 0.026231262458f;
	k = k * t + 0.0872372442198f;
	k = k * t + 0.175980923369f;
	k = k * t + 0.246849244593f;
	k = k * t + 0.282094460619f;
	k = k * t + 0.282094792958f;
	float el = 1.0f - lo * (1.0f - lo * (0.5f - lo * (1.0f / 6.0f -
							 lo * (1.0f / 24.0f))));
	return vm_exp(-hi) * el * t * k;
}

VM_INLINE float vm_erf(float x)
{
	float a = vm_float(vm_bits(x) & 0x7fffffffu);
	/* Beyond 10 erf is 1 in float; the clamp keeps lo small. */
	float ab = vm_sel(a > 10.0f, 10.0f, a);
	float ah = vm_hi12(ab);
	float big = 1.0f - vm_erfc_big(ab, ah * ah, (ab - ah) * (ab + ah));
	float r = vm_sel(a < 0.75f, a * vm_erf_small(a), big);
	return vm_copysign(r, x);
}

/*
 * GELU, exact form: x/2 (1 + erf(x / sqrt 2)).  For negative x the sum
 * 1 + erf is erfc(|x| / sqrt 2), computed directly, so the small results
 * keep their relative accuracy; the exponent x^2/2 is split from x.
 */
VM_INLINE float vm_gelu(float x)
{
	float ax = vm_float(vm_bits(x) & 0x7fffffffu);
	ax = vm_sel(ax > 14.0f, 14.0f, ax);
	float a = ax * 0.707106781187f;
	float xh = vm_hi12(ax);
	float ec = vm_erfc_big(a, 0.5f * xh * xh,
			       0.5f * (ax - xh) * (ax + xh));
	float big = vm_sel(x > 0, 2.0f - ec, ec);
	float z = x * 0.707106781187f;
	float small = 1.0f + z * vm_erf_small(a);
	float onep = vm_sel(a < 0.75f, small, big);
	/* Past 14 GELU is x itself (positive) or underflows (negative). */
	float r = 0.5f * x * onep;
	r = vm_sel(x < -14.0f, -0.0f, r);
	return vm_sel(x > 14.0f, x, r);
}

/*
 * GELU, exact form, for epilogues: x/2 (1 + erf(z)), z = x / sqrt 2, with
 * erf(z) = z P(z^2) / Q(z^2) on z clamped to [-4, 4] (beyond, erf is +-1
 * within 2e-8), P of degree 6 and Q of degree 5 fitted here by iterated
 * least squares (error 4e-8; 3e-7 evaluated in float).  No exponential:
 * 0.41 ns an element against 0.93 for the erfc form it replaced (Zen 4,
 * in L1), which took 7% of ConvNeXt-Small.  The cost is the far negative
 * tail, where 1 + erf cancels: right to 1e-6 absolute (9.7e-7 at worst,
 * tests/unit/test_fuse.c), not relative; a network's 1e-4 does not see
 * it.  The GELU
 * op itself (vm_gelu) keeps its relative accuracy.
 */
VM_INLINE float vm_gelu_fast(float x)
{
	float z = x * 0.707106781187f;
	z = vm_sel(z > 4.0f, 4.0f, z);
	z = vm_sel(z < -4.0f, -4.0f, z);
	float u = z * z;
	float p = -1.23348442571114e-08f;
	p = p * u + 4.539139808912296e-06f;
	p = p * u + 0.0003732141631189734f;
	p = p * u + 0.0037843056488782167f;
	p = p * u + 0.054034240543842316f;
	p = p * u + 0.18399448692798615f;
	p = p * u + 1.128379225730896f;
	float q = 6.174214649945498e-05f;
	q = q * u + 0.0012857111869379878f;
	q = q * u + 0.015309372916817665f;
	q = q * u + 0.11335039138793945f;
	q = q * u + 0.49639442563056946f;
	q = q * u + 1.0f;
	return 0.5f * x + 0.5f * x * (z * p / q);
}

/* GELU, tanh form: x/2 (1 + tanh(u)) = x sigmoid(2u),
 * u = sqrt(2/pi) (x + 0.044715 x^3). */
VM_INLINE float vm_gelu_tanh(float x)
{
	float u = 0.797884560803f * (x + 0.044715f * x * x * x);
	return x / (1.0f + vm_exp(-2.0f * u));
}

/*
 * y[i] = act(x[i]) for i < n; y is x or does not overlap it.  act.c holds
 * the kernels, the same ones behind lm_act_apply and lm_epilogue_apply.
 */
void lm_act_map(enum lm_act act, float alpha, float beta, const float *x,
		float *y, size_t n);

/* Sum, maximum (NaN wins; -inf for n = 0) and sum of squared deviations
 * from m of n floats, vectorised with 16 partial results. */
float lm_vsum(const float *x, size_t n);
float lm_vmax(const float *x, size_t n);
float lm_vsumsq(const float *x, float m, size_t n);

#endif
