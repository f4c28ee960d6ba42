/*
 * simd.c: which instruction set the kernels may use (lm_isa, kernels.h):
 * what the CPU supports, capped by LAMINA_ISA and by lm_isa_cap() so that
 * the AVX2 and portable code paths can be run and tested on an AVX-512
 * machine.
 */
#include "kernels.h"

#include <stdlib.h>
#include <string.h>

static enum lm_isa cpu_isa(void)
{
#if defined(__x86_64__)
	if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma"))
		return LM_ISA_AVX512;
	if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
		return LM_ISA_AVX2;
#endif
	return LM_ISA_C;
}

/* LAMINA_ISA as a cap; unset or unknown values cap nothing. */
static enum lm_isa env_cap(void)
{
	const char *v = getenv("LAMINA_ISA");

	if (v && !strcmp(v, "c"))
		return LM_ISA_C;
	if (v && !strcmp(v, "avx2"))
		return LM_ISA_AVX2;
	return LM_ISA_AVX512;
}

/* -1 until first asked.  Relaxed atomics: threads that race to detect
 * store the same value, and the cap is a test's setting, not a fence. */
static int detected = -1;
static int test_cap = LM_ISA_AVX512;

enum lm_isa lm_isa(void)
{
	int d = __atomic_load_n(&detected, __ATOMIC_RELAXED);
	int cap = __atomic_load_n(&test_cap, __ATOMIC_RELAXED);

	if (d < 0) {
		enum lm_isa c = cpu_isa(), e = env_cap();
		d = (int)(c < e ? c : e);
		__atomic_store_n(&detected, d, __ATOMIC_RELAXED);
	}
	return (enum lm_isa)(d < cap ? d : cap);
}

void lm_isa_cap(enum lm_isa cap)
{
	__atomic_store_n(&test_cap, (int)cap, __ATOMIC_RELAXED);
}
