/*
 * act.c: activations and the fused epilogue of Conv, Gemm and MatMul.
 *
 * The conv and gemm kernels call lm_epilogue_apply on every output row
 * they finish, while it is still in cache, so these loops are on the hot
 * path of every network: one function per activation, each cloned for
 * AVX-512, AVX2 and SSE2 and picked by CPUID at load time (see act.h).
 * The standalone activation ops (Relu, Sigmoid, ... in elementwise.c) run
 * the same kernels through lm_act_map.
 *
 * The fusion pass records an epilogue as private node attributes:
 * "lm.act" (enum lm_act), "lm.alpha", "lm.beta" and "lm.sum" (the input
 * index of a residual to add before the activation).
 */
#include "act.h"

#include <math.h>
#include <string.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ONNX's defaults, for an epilogue recorded without its parameters. */
static void act_defaults(enum lm_act act, float *alpha, float *beta)
{
	switch (act) {
	case LM_ACT_LEAKY_RELU:
		*alpha = 0.01f;
		*beta = 0;
		break;
	case LM_ACT_CLIP:
		*alpha = -INFINITY;
		*beta = INFINITY;
		break;
	case LM_ACT_HARD_SIGMOID:
		*alpha = 0.2f;
		*beta = 0.5f;
		break;
	case LM_ACT_HARD_SWISH:
		*alpha = 1.0f / 6.0f;
		*beta = 0.5f;
		break;
	default:
		*alpha = 0;
		*beta = 0;
		break;
	}
}

void lm_epilogue_get(const lm_node *n, lm_epilogue *ep)
{
	int64_t act = lm_attr_int(n, "lm.act", LM_ACT_NONE);
	int64_t sum = lm_attr_int(n, "lm.sum", -1);

	/* The attributes come from our own fusion pass, but a model file can
	 * carry any attribute name: out-of-range values mean "none". */
	if (act < LM_ACT_NONE || act >= LM_ACT_COUNT)
		act = LM_ACT_NONE;
	ep->act = (enum lm_act)act;
	act_defaults(ep->act, &ep->alpha, &ep->beta);
	ep->alpha = lm_attr_float(n, "lm.alpha", ep->alpha);
	ep->beta = lm_attr_float(n, "lm.beta", ep->beta);
	ep->sum_input = sum >= 0 && sum < n->n_inputs ? (int)sum : -1;
}

/*
 * Two kernels per activation, y[i] = f(v): in place, v = y[i] (+ s[i]
 * when s is given), and out of place, v = x[i].  Keeping them apart means
 * no loop ever needs a run-time overlap check: GCC at -O3 would otherwise
 * version the loop and fall back to scalar code exactly when y is x.  The
 * comparisons are written so that NaN passes through, as it does in the
 * reference implementations.
 */
#define ACT_KERNEL(name, expr)                                          \
	static LM_CLONES void name##_ip(float *y, const float *restrict s, \
					size_t n, float alpha, float beta) \
	{                                                               \
		(void)alpha;                                            \
		(void)beta;                                             \
		if (s)                                                  \
			LM_VFOR(i, n, float v = y[i] + s[i];            \
				y[i] = (expr));                         \
		else                                                    \
			LM_VFOR(i, n, float v = y[i]; y[i] = (expr));   \
	}                                                               \
	static LM_CLONES void name##_op(float *restrict y,              \
					const float *restrict x, size_t n, \
					float alpha, float beta)        \
	{                                                               \
		(void)alpha;                                            \
		(void)beta;                                             \
		LM_VFOR(i, n, float v = x[i]; y[i] = (expr));           \
	}

ACT_KERNEL(act_none, v)
ACT_KERNEL(act_relu, v < 0.0f ? 0.0f : v)
ACT_KERNEL(act_leaky, vm_sel(v < 0.0f, alpha * v, v))
ACT_KERNEL(act_clip, v < alpha ? alpha : v > beta ? beta : v)
ACT_KERNEL(act_sigmoid, vm_sigmoid(v))
ACT_KERNEL(act_hard_sigmoid, vm_hard_sigmoid(v, alpha, beta))
ACT_KERNEL(act_hard_swish, v * vm_hard_sigmoid(v, alpha, beta))
ACT_KERNEL(act_tanh, vm_tanh(v))
ACT_KERNEL(act_silu, vm_silu(v))
ACT_KERNEL(act_gelu, vm_gelu_fast(v))
ACT_KERNEL(act_gelu_tanh, vm_gelu_tanh(v))

struct act_kernels {
	void (*ip)(float *y, const float *restrict s, size_t n, float alpha,
		   float beta);
	void (*op)(float *restrict y, const float *restrict x, size_t n,
		   float alpha, float beta);
};

#define KERNELS(name) { name##_ip, name##_op }

static struct act_kernels act_kernel(enum lm_act act)
{
	static const struct act_kernels k[] = {
		[LM_ACT_NONE] = KERNELS(act_none),
		[LM_ACT_RELU] = KERNELS(act_relu),
		[LM_ACT_LEAKY_RELU] = KERNELS(act_leaky),
		[LM_ACT_CLIP] = KERNELS(act_clip),
		[LM_ACT_SIGMOID] = KERNELS(act_sigmoid),
		[LM_ACT_HARD_SIGMOID] = KERNELS(act_hard_sigmoid),
		[LM_ACT_HARD_SWISH] = KERNELS(act_hard_swish),
		[LM_ACT_TANH] = KERNELS(act_tanh),
		[LM_ACT_SILU] = KERNELS(act_silu),
		[LM_ACT_GELU] = KERNELS(act_gelu),
		[LM_ACT_GELU_TANH] = KERNELS(act_gelu_tanh),
	};

	if ((unsigned)act >= (unsigned)ARRAY_LEN(k))
		act = LM_ACT_NONE;
	return k[act];
}

const char *lm_act_name(enum lm_act act)
{
	static const char *const names[] = {
		[LM_ACT_NONE] = "", [LM_ACT_RELU] = "Relu",
		[LM_ACT_LEAKY_RELU] = "LeakyRelu", [LM_ACT_CLIP] = "Clip",
		[LM_ACT_SIGMOID] = "Sigmoid",
		[LM_ACT_HARD_SIGMOID] = "HardSigmoid",
		[LM_ACT_HARD_SWISH] = "HardSwish", [LM_ACT_TANH] = "Tanh",
		[LM_ACT_SILU] = "SiLU", [LM_ACT_GELU] = "Gelu",
		[LM_ACT_GELU_TANH] = "GeluTanh",
	};
	return (unsigned)act < (unsigned)ARRAY_LEN(names) ? names[act] : "?";
}

void lm_epilogue_apply(const lm_epilogue *ep, float *y, const float *sum,
		       size_t n)
{
	if (ep->act == LM_ACT_NONE && !sum)
		return;
	act_kernel(ep->act).ip(y, sum, n, ep->alpha, ep->beta);
}

void lm_act_apply(enum lm_act act, float alpha, float beta, float *y,
		  size_t n)
{
	if (act != LM_ACT_NONE)
		act_kernel(act).ip(y, NULL, n, alpha, beta);
}

void lm_act_map(enum lm_act act, float alpha, float beta, const float *x,
		float *y, size_t n)
{
	if (x == y)
		lm_act_apply(act, alpha, beta, y, n);
	else
		act_kernel(act).op(y, x, n, alpha, beta);
}

/*
 * Reductions without -ffast-math: a float sum or max is a dependence
 * chain the compiler may not reorder, so we reorder it ourselves into 16
 * independent lanes, an elementwise loop that vectorises, then combine.
 * The exported names are plain functions around the clones: clang names
 * a multiversioned function's dispatcher differently from GCC and does
 * not export the plain name to other files.
 */
static LM_CLONES float vsum(const float *x, size_t n)
{
	float acc[16] = { 0 };
	size_t i = 0;

	for (; i + 16 <= n; i += 16) {
		LM_IVDEP
		for (size_t j = 0; j < 16; j++)
			acc[j] += x[i + j];
	}
	float s = 0;
	for (size_t j = 0; j < 16; j++)
		s += acc[j];
	for (; i < n; i++)
		s += x[i];
	return s;
}

/* NaN-propagating maximum; -inf for n = 0. */
static LM_CLONES float vmax(const float *x, size_t n)
{
	float acc[16];
	size_t i = 0;

	for (size_t j = 0; j < 16; j++)
		acc[j] = -INFINITY;
	for (; i + 16 <= n; i += 16) {
		LM_IVDEP
		for (size_t j = 0; j < 16; j++) {
			float v = x[i + j];
			acc[j] = v > acc[j] || v != v ? v : acc[j];
		}
	}
	float m = -INFINITY;
	for (size_t j = 0; j < 16; j++)
		m = acc[j] > m || acc[j] != acc[j] ? acc[j] : m;
	for (; i < n; i++)
		m = x[i] > m || x[i] != x[i] ? x[i] : m;
	return m;
}

static LM_CLONES float vsumsq(const float *x, float m, size_t n)
{
	float acc[16] = { 0 };
	size_t i = 0;

	for (; i + 16 <= n; i += 16) {
		LM_IVDEP
		for (size_t j = 0; j < 16; j++) {
			float d = x[i + j] - m;
			acc[j] += d * d;
		}
	}
	float s = 0;
	for (size_t j = 0; j < 16; j++)
		s += acc[j];
	for (; i < n; i++)
		s += (x[i] - m) * (x[i] - m);
	return s;
}

float lm_vsum(const float *x, size_t n)
{
	return vsum(x, n);
}

float lm_vmax(const float *x, size_t n)
{
	return vmax(x, n);
}

float lm_vsumsq(const float *x, float m, size_t n)
{
	return vsumsq(x, m, n);
}
