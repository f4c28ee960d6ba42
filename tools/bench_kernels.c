/*
 * bench_kernels.c: microbenchmark of the convolution and pooling kernels
 * on the layer shapes of ResNet-18/50, MobileNetV2/V3, EfficientNet-B1,
 * MnasNet, ConvNeXt, RegNetX, ResNeXt, ShuffleNet, SqueezeNet and VGG at
 * batch 1, next to the single-thread sgemm peak, so every figure reads as
 * a fraction of what the core can do.
 *
 *	bench_kernels [-r REPS] [-i IMPL] [-a avx512|avx2|c] [-b BATCH] [-c]
 *		      [FILTER...]
 *
 * For each layer, every implementation that can run it (pinned through the
 * private "lm.impl" attribute, as the unit tests do; -i keeps only one of
 * openblas, sgemm, sgemm-t, winograd2, winograd4, direct, grouped,
 * depthwise-generic, depthwise-rows, depthwise-blocked) is prepared once
 * and run REPS times (default 15) after one warm-up; the median is printed with GFLOP/s
 * counted as direct convolution (2 * MACs), so Winograd shows as its
 * effective rate and may pass the peak, and GB/s counted as the bytes the
 * layer must move at least (inputs, weights and output, once each).  The
 * implementation the runtime picks by itself is marked "<- auto".
 * MatMul layers (ConvNeXt's linear layers, a constant B) run the
 * runtime's choice and OpenBLAS pinned.  -a
 * caps the instruction set of the kernels written for several (lm_isa),
 * to measure their AVX2 and portable code on an AVX-512 machine; -b runs
 * BATCH images at once (default 1; the Gemm layers stay at one row).
 * FILTERs keep only layers whose name contains one of them.  Weights
 * stay in cache between runs, unlike in a whole network, which favours
 * large transformed weights: -c ("cold") sweeps 64 MiB through the caches
 * before every run, so that weights come from memory as they do in ResNet
 * or VGG, whose weights do not fit in L3.
 *
 * The figures behind the choices in winograd.c, pgemm.c and depthwise.c
 * come from this tool.
 */
#include "lamina/graph.h"
#include "../runtime/kernels/kernels.h"

#include <cblas.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void openblas_set_num_threads(int num_threads);

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static float *filled(int64_t n)
{
	float *p = lm_kalloc((size_t)(n ? n : 1) * sizeof(float));
	for (int64_t i = 0; p && i < n; i++)
		p[i] = (float)((i * 7919) % 1000) * 0.002f - 1.0f;
	return p;
}

/* ---- sgemm peak ---- */

static double time_sgemm(int lamina, int64_t n, int reps)
{
	float *a = filled(n * n), *b = filled(n * n), *c = filled(n * n);
	float *pa = NULL, *work = NULL;
	double best = 1e30;

	if (lamina) {
		pa = lm_kalloc(lm_pgemm_packed_a_floats(n, n) * sizeof(float));
		work = lm_kalloc(lm_pgemm_work_floats(n, n) * sizeof(float));
		lm_pgemm_pack_a(a, n, n, n, pa);
	}
	struct lm_pgemm_mat src = { b, n };
	struct lm_pgemm_out o = { .c = c, .ldc = n };
	for (int r = 0; r <= reps; r++) {
		double t = now();
		if (lamina)
			lm_pgemm(pa, n, n, n, lm_pgemm_pack_mat, &src, &o,
				 work);
		else
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans,
				    (int)n, (int)n, (int)n, 1.0f, a, (int)n, b,
				    (int)n, 0.0f, c, (int)n);
		t = now() - t;
		if (r && t < best)
			best = t;
	}
	free(a);
	free(b);
	free(c);
	free(pa);
	free(work);
	return 2.0 * (double)n * (double)n * (double)n / best * 1e-9;
}

/* ---- layers ---- */

struct layer {
	const char *name;
	const char *op;         /* Conv, MaxPool, AveragePool */
	int64_t c, h, w, m, k, s, pad, group;
};

#define CONV(nm, c, h, w, m, k, s, p) { nm, "Conv", c, h, w, m, k, s, p, 1 }
#define DW(nm, c, h, s) { nm, "Conv", c, h, h, c, 3, s, 1, c }
#define DWK(nm, c, h, k, s) { nm, "Conv", c, h, h, c, k, s, k / 2, c }
#define GRP(nm, c, h, m, s, g) { nm, "Conv", c, h, h, m, 3, s, 1, g }
#define POOL(nm, op, c, h, k, s, p) { nm, op, c, h, h, c, k, s, p, 1 }
#define FC(nm, k, n) { nm, "Gemm", k, 1, 1, n, 1, 1, 0, 1 }
/* x (1, m, k) times a constant w (k, n) */
#define MM(nm, m, k, n) { nm, "MatMul", k, m, 1, n, 1, 1, 0, 1 }

static const struct layer layers[] = {
	CONV("r18 stem 7x7 s2 224 3->64", 3, 224, 224, 64, 7, 2, 3),
	POOL("r18 maxpool 3x3 s2 112x64", "MaxPool", 64, 112, 3, 2, 1),
	CONV("r18 3x3 56x56 64->64", 64, 56, 56, 64, 3, 1, 1),
	CONV("r18 3x3 s2 56x56 64->128", 64, 56, 56, 128, 3, 2, 1),
	CONV("r18 1x1 s2 56x56 64->128", 64, 56, 56, 128, 1, 2, 0),
	CONV("r18 3x3 28x28 128->128", 128, 28, 28, 128, 3, 1, 1),
	CONV("r18 3x3 s2 28x28 128->256", 128, 28, 28, 256, 3, 2, 1),
	CONV("r18 3x3 14x14 256->256", 256, 14, 14, 256, 3, 1, 1),
	CONV("r18 3x3 s2 14x14 256->512", 256, 14, 14, 512, 3, 2, 1),
	CONV("r18 3x3 7x7 512->512", 512, 7, 7, 512, 3, 1, 1),
	CONV("r50 1x1 56x56 64->64", 64, 56, 56, 64, 1, 1, 0),
	CONV("r50 1x1 56x56 64->256", 64, 56, 56, 256, 1, 1, 0),
	CONV("r50 1x1 56x56 256->64", 256, 56, 56, 64, 1, 1, 0),
	CONV("r50 1x1 56x56 256->128", 256, 56, 56, 128, 1, 1, 0),
	CONV("r50 3x3 s2 56x56 128->128", 128, 56, 56, 128, 3, 2, 1),
	CONV("r50 1x1 s2 56x56 256->512", 256, 56, 56, 512, 1, 2, 0),
	CONV("r50 1x1 28x28 512->128", 512, 28, 28, 128, 1, 1, 0),
	CONV("r50 1x1 28x28 128->512", 128, 28, 28, 512, 1, 1, 0),
	CONV("r50 3x3 28x28 128->128", 128, 28, 28, 128, 3, 1, 1),
	CONV("r50 1x1 14x14 1024->256", 1024, 14, 14, 256, 1, 1, 0),
	CONV("r50 1x1 14x14 256->1024", 256, 14, 14, 1024, 1, 1, 0),
	CONV("r50 3x3 14x14 256->256", 256, 14, 14, 256, 3, 1, 1),
	CONV("r50 1x1 7x7 2048->512", 2048, 7, 7, 512, 1, 1, 0),
	CONV("r50 1x1 7x7 512->2048", 512, 7, 7, 2048, 1, 1, 0),
	CONV("r50 3x3 7x7 512->512", 512, 7, 7, 512, 3, 1, 1),
	CONV("mv2 stem 3x3 s2 224 3->32", 3, 224, 224, 32, 3, 2, 1),
	DW("mv2 dw 3x3 112x112x32", 32, 112, 1),
	CONV("mv2 1x1 112x112 32->16", 32, 112, 112, 16, 1, 1, 0),
	CONV("mv2 1x1 112x112 16->96", 16, 112, 112, 96, 1, 1, 0),
	DW("mv2 dw 3x3 s2 112x112x96", 96, 112, 2),
	CONV("mv2 1x1 56x56 96->24", 96, 56, 56, 24, 1, 1, 0),
	CONV("mv2 1x1 56x56 24->144", 24, 56, 56, 144, 1, 1, 0),
	DW("mv2 dw 3x3 56x56x144", 144, 56, 1),
	CONV("mv2 1x1 56x56 144->24", 144, 56, 56, 24, 1, 1, 0),
	DW("mv2 dw 3x3 s2 56x56x144", 144, 56, 2),
	CONV("mv2 1x1 28x28 32->192", 32, 28, 28, 192, 1, 1, 0),
	DW("mv2 dw 3x3 28x28x192", 192, 28, 1),
	CONV("mv2 1x1 28x28 192->32", 192, 28, 28, 32, 1, 1, 0),
	CONV("mv2 1x1 14x14 64->384", 64, 14, 14, 384, 1, 1, 0),
	DW("mv2 dw 3x3 14x14x384", 384, 14, 1),
	CONV("mv2 1x1 14x14 384->64", 384, 14, 14, 64, 1, 1, 0),
	DW("mv2 dw 3x3 14x14x576", 576, 14, 1),
	DW("mv2 dw 3x3 s2 14x14x576", 576, 14, 2),
	CONV("mv2 1x1 14x14 96->576", 96, 14, 14, 576, 1, 1, 0),
	CONV("mv2 1x1 7x7 160->960", 160, 7, 7, 960, 1, 1, 0),
	DW("mv2 dw 3x3 7x7x960", 960, 7, 1),
	CONV("mv2 1x1 7x7 960->160", 960, 7, 7, 160, 1, 1, 0),
	CONV("mv2 1x1 7x7 320->1280", 320, 7, 7, 1280, 1, 1, 0),
	CONV("sq conv1 3x3 s2 224 3->64", 3, 224, 224, 64, 3, 2, 0),
	POOL("sq maxpool 3x3 s2 111x64", "MaxPool", 64, 111, 3, 2, 0),
	CONV("sq 1x1 55x55 64->16", 64, 55, 55, 16, 1, 1, 0),
	CONV("sq 1x1 55x55 16->64", 16, 55, 55, 64, 1, 1, 0),
	CONV("sq 3x3 55x55 16->64", 16, 55, 55, 64, 3, 1, 1),
	CONV("sq 1x1 27x27 128->32", 128, 27, 27, 32, 1, 1, 0),
	CONV("sq 3x3 27x27 32->128", 32, 27, 27, 128, 3, 1, 1),
	CONV("sq 1x1 13x13 384->48", 384, 13, 13, 48, 1, 1, 0),
	CONV("sq 3x3 13x13 48->192", 48, 13, 13, 192, 3, 1, 1),
	CONV("sq 3x3 13x13 64->256", 64, 13, 13, 256, 3, 1, 1),
	CONV("sq conv10 1x1 13x13 512->1000", 512, 13, 13, 1000, 1, 1, 0),
	CONV("vgg 3x3 224x224 3->64", 3, 224, 224, 64, 3, 1, 1),
	CONV("vgg 3x3 112x112 64->128", 64, 112, 112, 128, 3, 1, 1),
	CONV("vgg 3x3 56x56 128->256", 128, 56, 56, 256, 3, 1, 1),
	CONV("vgg 3x3 28x28 256->512", 256, 28, 28, 512, 3, 1, 1),
	CONV("vgg 3x3 14x14 512->512", 512, 14, 14, 512, 3, 1, 1),
	/* MobileNetV3-Large (every depthwise shape it has) */
	CONV("mv3 stem 3x3 s2 224 3->16", 3, 224, 224, 16, 3, 2, 1),
	DW("mv3 dw 3x3 112x112x16", 16, 112, 1),
	DW("mv3 dw 3x3 s2 112x112x64", 64, 112, 2),
	DW("mv3 dw 3x3 56x56x72", 72, 56, 1),
	DWK("mv3 dw 5x5 s2 56x56x72", 72, 56, 5, 2),
	DWK("mv3 dw 5x5 28x28x120", 120, 28, 5, 1),
	DW("mv3 dw 3x3 s2 28x28x240", 240, 28, 2),
	DW("mv3 dw 3x3 14x14x200", 200, 14, 1),
	DW("mv3 dw 3x3 14x14x480", 480, 14, 1),
	DWK("mv3 dw 5x5 s2 14x14x672", 672, 14, 5, 2),
	DWK("mv3 dw 5x5 7x7x960", 960, 7, 5, 1),
	/* squeeze-excitation, 1x1 on one pixel (MobileNetV3, EfficientNet) */
	CONV("se 1x1 1x1 672->168", 672, 1, 1, 168, 1, 1, 0),
	CONV("se 1x1 1x1 168->672", 168, 1, 1, 672, 1, 1, 0),
	CONV("se 1x1 1x1 1152->48", 1152, 1, 1, 48, 1, 1, 0),
	CONV("se 1x1 1x1 48->1152", 48, 1, 1, 1152, 1, 1, 0),
	/* EfficientNet-B1 */
	CONV("eb1 stem 3x3 s2 224 3->32", 3, 224, 224, 32, 3, 2, 1),
	DW("eb1 dw 3x3 112x112x32", 32, 112, 1),
	DW("eb1 dw 3x3 s2 112x112x96", 96, 112, 2),
	DW("eb1 dw 3x3 56x56x144", 144, 56, 1),
	DWK("eb1 dw 5x5 s2 56x56x144", 144, 56, 5, 2),
	DWK("eb1 dw 5x5 28x28x240", 240, 28, 5, 1),
	DWK("eb1 dw 5x5 14x14x672", 672, 14, 5, 1),
	DWK("eb1 dw 5x5 7x7x1152", 1152, 7, 5, 1),
	DW("eb1 dw 3x3 7x7x1920", 1920, 7, 1),
	/* MnasNet 0.5 */
	DW("mn dw 3x3 s2 112x112x24", 24, 112, 2),
	DW("mn dw 3x3 56x56x48", 48, 56, 1),
	DWK("mn dw 5x5 s2 28x28x144", 144, 28, 5, 2),
	DWK("mn dw 5x5 14x14x240", 240, 14, 5, 1),
	DWK("mn dw 5x5 7x7x576", 576, 7, 5, 1),
	/* ConvNeXt-Small */
	CONV("cnx stem 4x4 s4 224 3->96", 3, 224, 224, 96, 4, 4, 0),
	DWK("cnx dw 7x7 56x56x96", 96, 56, 7, 1),
	DWK("cnx dw 7x7 28x28x192", 192, 28, 7, 1),
	DWK("cnx dw 7x7 14x14x384", 384, 14, 7, 1),
	DWK("cnx dw 7x7 7x7x768", 768, 7, 7, 1),
	CONV("cnx down 2x2 s2 56x56 96->192", 96, 56, 56, 192, 2, 2, 0),
	/* RegNetX-400MF: groups of 16 channels */
	CONV("rgx stem 3x3 s2 224 3->32", 3, 224, 224, 32, 3, 2, 1),
	GRP("rgx g2 3x3 s2 112x112x32", 32, 112, 32, 2, 2),
	CONV("rgx proj 1x1 s2 112 32->32", 32, 112, 112, 32, 1, 2, 0),
	CONV("rgx 1x1 112 32->32", 32, 112, 112, 32, 1, 1, 0),
	CONV("rgx proj 1x1 s2 56 32->64", 32, 56, 56, 64, 1, 2, 0),
	GRP("rgx g4 3x3 s2 56x56x64", 64, 56, 64, 2, 4),
	GRP("rgx g4 3x3 28x28x64", 64, 28, 64, 1, 4),
	GRP("rgx g10 3x3 s2 28x28x160", 160, 28, 160, 2, 10),
	GRP("rgx g10 3x3 14x14x160", 160, 14, 160, 1, 10),
	GRP("rgx g25 3x3 s2 14x14x400", 400, 14, 400, 2, 25),
	GRP("rgx g25 3x3 7x7x400", 400, 7, 400, 1, 25),
	/* ResNeXt-50 32x4d: 32 groups of 4, 8, 16, 32 channels */
	GRP("rx50 g32 3x3 56x56x128", 128, 56, 128, 1, 32),
	GRP("rx50 g32 3x3 s2 56x56x256", 256, 56, 256, 2, 32),
	GRP("rx50 g32 3x3 28x28x256", 256, 28, 256, 1, 32),
	GRP("rx50 g32 3x3 s2 28x28x512", 512, 28, 512, 2, 32),
	GRP("rx50 g32 3x3 14x14x512", 512, 14, 512, 1, 32),
	GRP("rx50 g32 3x3 14x14x1024 s2", 1024, 14, 1024, 2, 32),
	GRP("rx50 g32 3x3 7x7x1024", 1024, 7, 1024, 1, 32),
	/* Inception v3 (299x299) */
	CONV("inc stem 3x3 s2 299 3->32", 3, 299, 299, 32, 3, 2, 0),
	CONV("shf stem 3x3 s2 224 3->24", 3, 224, 224, 24, 3, 2, 1),
	CONV("inc 3x3 149x149 32->32", 32, 149, 149, 32, 3, 1, 0),
	CONV("inc 3x3 147x147 32->64", 32, 147, 147, 64, 3, 1, 1),
	POOL("inc maxpool 3x3 s2 147x64", "MaxPool", 64, 147, 3, 2, 0),
	POOL("inc avgpool 3x3 35x35x288", "AveragePool", 288, 35, 3, 1, 1),
	POOL("inc avgpool 3x3 17x17x768", "AveragePool", 768, 17, 3, 1, 1),
	POOL("inc avgpool 3x3 8x8x2048", "AveragePool", 2048, 8, 3, 1, 1),
	/* ShuffleNetV2 x0.5 */
	DW("sh dw 3x3 s2 56x56x24", 24, 56, 2),
	DW("sh dw 3x3 28x28x24", 24, 28, 1),
	DW("sh dw 3x3 14x14x48", 48, 14, 1),
	DW("sh dw 3x3 7x7x96", 96, 7, 1),
	/* ConvNeXt-Small's linear layers (channels last), batch 1 */
	MM("cnx mm 3136x96->384", 3136, 96, 384),
	MM("cnx mm 3136x384->96", 3136, 384, 96),
	MM("cnx mm 784x192->768", 784, 192, 768),
	MM("cnx mm 784x768->192", 784, 768, 192),
	MM("cnx mm 196x384->1536", 196, 384, 1536),
	MM("cnx mm 196x1536->384", 196, 1536, 384),
	MM("cnx mm 49x768->3072", 49, 768, 3072),
	MM("cnx mm 49x3072->768", 49, 3072, 768),
	FC("mv2 fc 1280->1000", 1280, 1000),
	FC("r50 fc 2048->1000", 2048, 1000),
	FC("vgg fc 25088->4096", 25088, 4096),
	FC("vgg fc 4096->4096", 4096, 4096),
};

static const char *const impls[] = {
	"openblas", "sgemm", "sgemm-t", "winograd2", "winograd4",
	"direct", "grouped", "depthwise-generic", "depthwise-rows",
	"depthwise-blocked",
};

static int add_value(lm_graph *g, const char *name, lm_value_kind kind,
		     int rank, const int64_t *dims)
{
	int v = lm_graph_add_value(g, name, kind, NULL);
	if (v < 0)
		return v;
	lm_value *x = &g->values[v];
	lm_value_set_shape(x, LM_DT_FLOAT, rank, dims);
	x->nbytes = lm_value_bytes(x);
	x->data = filled((int64_t)(x->nbytes / sizeof(float)));
	if (kind == LM_VAL_INPUT)
		lm_graph_add_input(g, v);
	return x->data ? v : -ENOMEM;
}

static void add_ints(lm_node *n, const char *name, int64_t a, int cnt)
{
	lm_attr *at = lm_node_add_attr(n, name, LM_ATTR_INTS);
	if (!at || !(at->ints = malloc(sizeof(int64_t) * 4)))
		return;
	for (int i = 0; i < cnt; i++)
		at->ints[i] = a;
	at->n = cnt;
}

/* Images per run: -b. */
static int64_t batch = 1;

/* A one-node graph for the layer, shapes inferred. */
static lm_graph *layer_graph(const struct layer *l)
{
	lm_graph *g = lm_graph_create(l->name);
	int64_t xd[4] = { batch, l->c, l->h, l->w };
	int64_t wd[4] = { l->m, l->c / l->group, l->k, l->k };
	int is_conv = !strcmp(l->op, "Conv"), is_fc = !strcmp(l->op, "Gemm");
	int is_mm = !strcmp(l->op, "MatMul");
	int64_t md[3] = { batch, l->h, l->c }, mw[2] = { l->c, l->m };
	const char *in[] = { "x", "w", "b" }, *out[] = { "y" };
	lm_error e;

	/* Gemm: x (1, K) times w (N, K) transposed, plus b (N) */
	if (is_mm) {
		add_value(g, "x", LM_VAL_INPUT, 3, md);
		add_value(g, "w", LM_VAL_INITIALIZER, 2, mw);
	} else {
		add_value(g, "x", LM_VAL_INPUT, is_fc ? 2 : 4, xd);
	}
	if (is_conv || is_fc) {
		add_value(g, "w", LM_VAL_INITIALIZER, is_fc ? 2 : 4, wd);
		add_value(g, "b", LM_VAL_INITIALIZER, 1, &l->m);
	}
	int ni = lm_graph_add_node(g, "n", l->op, "", in,
				   is_conv || is_fc ? 3 : is_mm ? 2 : 1, out,
				   1, NULL);
	if (ni < 0) {
		lm_graph_free(g);
		return NULL;
	}
	lm_node *n = &g->nodes[ni];
	if (is_fc) {
		lm_attr *a = lm_node_add_attr(n, "transB", LM_ATTR_INT);
		if (a)
			a->i = 1;
	} else if (is_mm) {
		/* no attributes */
	} else {
		add_ints(n, "strides", l->s, 2);
		add_ints(n, "pads", l->pad, 4);
	}
	if (is_fc || is_mm) {
		/* nothing more */
	} else if (is_conv) {
		lm_attr *a = lm_node_add_attr(n, "group", LM_ATTR_INT);
		if (a)
			a->i = l->group;
		/* the fused ReLU every conv here has in its network */
		a = lm_node_add_attr(n, "lm.act", LM_ATTR_INT);
		if (a)
			a->i = LM_ACT_RELU;
	} else {
		add_ints(n, "kernel_shape", l->k, 2);
	}
	lm_graph_add_output(g, n->outputs[0]);
	if (lm_graph_sort(g, &e) || lm_graph_infer_shapes(g, &e)) {
		fprintf(stderr, "%s: %s\n", l->name, e.msg);
		lm_graph_free(g);
		return NULL;
	}
	return g;
}

/* Evicts the caches when set: -c. */
static float *sweep;
#define SWEEP_FLOATS (16 << 20)

/* Reads, not writes: dirty lines would put their write-backs on the
 * memory bus during the timed run. */
static void evict(void)
{
	volatile float sink = 0;
	float acc = 0;

	for (size_t i = 0; sweep && i < SWEEP_FLOATS; i += 16)
		acc += sweep[i];
	sink = acc;
	(void)sink;
}

/* Median seconds of `reps` runs of node 0 with `impl` pinned; < 0 when
 * the implementation does not apply.  *name gets the kernel's name. */
static double time_layer(lm_graph *g, const char *impl, int reps,
			 const char **name)
{
	lm_node *n = &g->nodes[0];
	lm_kernel k;
	lm_error e;
	double *t = malloc(sizeof(double) * (size_t)reps), med = -1;

	memset(&k, 0, sizeof(k));
	lm_attr *pin = impl ? lm_node_add_attr(n, "lm.impl",
					       LM_ATTR_STRING) : NULL;
	if (pin)
		pin->s = strdup(impl);
	const lm_op *op = lm_op_find("", n->op_type);
	int rc = op->prepare(g, n, &k, &e);
	if (pin) {
		n->n_attrs--;
		free(pin->name);
		free(pin->s);
	}
	if (rc) {
		free(t);
		return -1;
	}
	*name = k.impl;
	lm_tensor tin[3], tout;
	lm_tensor *pi[3], *po = &tout;
	for (int i = 0; i < n->n_inputs; i++) {
		lm_value_as_tensor(lm_node_in(g, n, i), &tin[i]);
		pi[i] = &tin[i];
	}
	lm_value *yv = lm_node_out(g, n, 0);
	lm_tensor_alloc(&tout, yv->dtype, yv->rank, yv->dims);
	void *scratch = k.scratch_bytes ? lm_kalloc(k.scratch_bytes) : NULL;
	lm_kargs a = {
		.node = n, .in = pi, .n_in = n->n_inputs, .out = &po,
		.n_out = 1, .state = k.state, .scratch = scratch,
		.threads = 1,
	};
	k.run(&a);
	for (int r = 0; r < reps; r++) {
		evict();
		double t0 = now();
		k.run(&a);
		t[r] = now() - t0;
	}
	qsort(t, (size_t)reps, sizeof(double), cmp_double);
	med = t[reps / 2];
	free(scratch);
	lm_tensor_free(&tout);
	if (k.free_state)
		k.free_state(k.state);
	free(t);
	return med;
}

/* OpenBLAS's sgemv on a Gemm layer's weights, for comparison. */
static void time_sgemv(lm_graph *g, const struct layer *l, int reps,
		       double flops, double peak)
{
	const float *w = g->values[lm_graph_find(g, "w")].data;
	const float *x = g->values[lm_graph_find(g, "x")].data;
	float *y = filled(l->m);
	double *t = malloc(sizeof(double) * (size_t)reps);

	for (int r = 0; y && t && r < reps; r++) {
		evict();
		double t0 = now();
		cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)l->m, (int)l->c,
			    1.0f, w, (int)l->c, x, 1, 0.0f, y, 1);
		t[r] = now() - t0;
	}
	if (y && t) {
		qsort(t, (size_t)reps, sizeof(double), cmp_double);
		double med = t[reps / 2];
		printf("%-30s %-24s %9.3f %9.1f %7s %5.0f%%\n", l->name,
		       "cblas_sgemv", med * 1e3, flops / med * 1e-9, "",
		       flops / med * 1e-9 / peak * 100);
	}
	free(y);
	free(t);
}

/* Bytes a layer must move at least: its inputs (with the weights) and
 * its output, once each. */
static double layer_bytes(lm_graph *g)
{
	const lm_node *n = &g->nodes[0];
	double b = 0;

	for (int i = 0; i < n->n_inputs; i++)
		b += (double)lm_value_bytes(lm_node_in(g, n, i));
	return b + (double)lm_value_bytes(lm_node_out(g, n, 0));
}

static int wanted(const char *name, int argc, char **argv, int first)
{
	if (first >= argc)
		return 1;
	for (int i = first; i < argc; i++)
		if (strstr(name, argv[i]))
			return 1;
	return 0;
}

int main(int argc, char **argv)
{
	const char *only = NULL;
	int reps = 15, first = 1;

	while (first < argc && argv[first][0] == '-') {
		const char *opt = argv[first++];
		if (!strcmp(opt, "-c")) {
			sweep = filled(SWEEP_FLOATS);
			continue;
		}
		if (first >= argc || (strcmp(opt, "-r") && strcmp(opt, "-i") &&
				      strcmp(opt, "-a") && strcmp(opt, "-b"))) {
			fprintf(stderr, "usage: bench_kernels [-r REPS] "
				"[-i IMPL] [-a avx512|avx2|c] [-b BATCH] [-c] "
				"[FILTER...]\n");
			return 2;
		}
		if (!strcmp(opt, "-r")) {
			reps = atoi(argv[first++]);
		} else if (!strcmp(opt, "-b")) {
			batch = atoi(argv[first++]);
			if (batch < 1)
				batch = 1;
		} else if (!strcmp(opt, "-a")) {
			const char *a = argv[first++];
			lm_isa_cap(!strcmp(a, "c") ? LM_ISA_C
				   : !strcmp(a, "avx2") ? LM_ISA_AVX2
				   : LM_ISA_AVX512);
		} else {
			only = argv[first++];
		}
	}
	if (reps < 1)
		reps = 1;
	openblas_set_num_threads(1);
	double ob1 = time_sgemm(0, 1024, 3), ob2 = time_sgemm(0, 2048, 2);
	double lm1 = 0, lm2 = 0;
	if (lm_have_avx512()) {
		lm1 = time_sgemm(1, 1024, 3);
		lm2 = time_sgemm(1, 2048, 2);
	}
	double peak = ob2 > lm2 ? ob2 : lm2;
	printf("sgemm, 1 thread, GFLOP/s: openblas 1024^3 %.1f, 2048^3 %.1f;"
	       " lamina pgemm 1024^3 %.1f, 2048^3 %.1f\n", ob1, ob2, lm1,
	       lm2);
	printf("%% of peak: of %.1f GFLOP/s (the best 2048^3 above); conv "
	       "GFLOP/s count direct-conv work\n\n", peak);
	printf("%-30s %-24s %9s %9s %7s %6s\n", "layer", "kernel", "ms",
	       "GFLOP/s", "GB/s", "%peak");

	for (size_t i = 0; i < sizeof(layers) / sizeof(layers[0]); i++) {
		const struct layer *l = &layers[i];
		if (!wanted(l->name, argc, argv, first))
			continue;
		lm_graph *g = layer_graph(l);
		if (!g)
			continue;
		double flops = lm_node_flops(g, &g->nodes[0]);
		double bytes = layer_bytes(g);
		int is_conv = !strcmp(l->op, "Conv");
		/* MatMul: its own choice, then OpenBLAS pinned */
		static const char *const mm_impls[] = { NULL, "openblas" };
		int is_mm = !strcmp(l->op, "MatMul");
		size_t ni = is_conv ? sizeof(impls) / sizeof(impls[0])
			    : is_mm ? 2 : 1;
		const char *const *im = is_conv ? impls : is_mm ? mm_impls
			    : NULL;
		const char *chosen = "";
		double ta = time_layer(g, NULL, 1, &chosen);
		(void)ta;
		const char *auto_impl = chosen;
		for (size_t j = 0; j < ni; j++) {
			const char *name = "";
			if (only && is_conv && strcmp(only, impls[j]))
				continue;
			double t = time_layer(g, im ? im[j] : NULL, reps,
					      &name);
			if (t < 0)
				continue;
			printf("%-30s %-24s %9.3f %9.1f %7.1f %5.0f%%%s\n",
			       l->name, name, t * 1e3, flops / t * 1e-9,
			       bytes / t * 1e-9, flops / t * 1e-9 / peak * 100,
			       !strcmp(name, auto_impl) ? "  <- auto" : "");
		}
		if (!strcmp(l->op, "Gemm"))
			time_sgemv(g, l, reps, flops, peak);
		lm_graph_free(g);
	}
	return 0;
}
