/*
 * test_cut.c: grouping nodes into layers and slices, and what crosses each
 * cut (slicer/cut.c).
 */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "lamina/slicer.h"

static lm_graph *start(void)
{
	lm_graph *g = lm_graph_create("g");
	int x = lm_graph_add_value(g, "x", LM_VAL_INPUT, NULL);
	int64_t dims[4] = { 1, 4, 8, 8 };
	lm_value_set_shape(&g->values[x], LM_DT_FLOAT, 4, dims);
	lm_graph_add_input(g, x);
	return g;
}

/* A 3x3 convolution 4 -> 4 channels, padded to keep 8x8. */
static void conv(lm_graph *g, const char *name, const char *in,
		 const char *out)
{
	char w[64];
	snprintf(w, sizeof(w), "%s.w", name);
	int v = lm_graph_add_value(g, w, LM_VAL_INITIALIZER, NULL);
	int64_t dims[4] = { 4, 4, 3, 3 };
	lm_value_set_shape(&g->values[v], LM_DT_FLOAT, 4, dims);
	g->values[v].nbytes = 4 * 4 * 9 * 4;
	g->values[v].data = calloc(1, g->values[v].nbytes);
	const char *ins[2] = { in, w }, *outs[1] = { out };
	int n = lm_graph_add_node(g, name, "Conv", "", ins, 2, outs, 1, NULL);
	lm_attr *a = lm_node_add_attr(&g->nodes[n], "pads", LM_ATTR_INTS);
	a->n = 4;
	a->ints = calloc(4, sizeof(int64_t));
	for (int i = 0; i < 4; i++)
		a->ints[i] = 1;
}

static void op(lm_graph *g, const char *name, const char *type,
	       const char *a, const char *b, const char *out)
{
	const char *ins[2] = { a, b }, *outs[1] = { out };
	lm_graph_add_node(g, name, type, "", ins, b ? 2 : 1, outs, 1, NULL);
}

static lm_slicing *plan(lm_graph *g, const char *output, lm_granularity gr,
			int max)
{
	lm_slice_options o = { gr, max, NULL };
	lm_slicing *s = NULL;
	lm_graph_add_output(g, lm_graph_find(g, output));
	if (lm_graph_sort(g, NULL) || lm_graph_infer_shapes(g, NULL) ||
	    lm_slice_plan(g, &o, &s, NULL))
		return NULL;
	return s;
}

TEST(conv_and_relu_form_one_layer)
{
	lm_graph *g = start();
	conv(g, "c1", "x", "a");
	op(g, "r1", "Relu", "a", NULL, "b");
	conv(g, "c2", "b", "c");
	op(g, "r2", "Relu", "c", NULL, "d");
	lm_slicing *s = plan(g, "d", LM_GRAN_LAYER, 0);
	CHECK(s != NULL);
	CHECK_EQ_I64(s->n, 2);
	CHECK(!strcmp(s->slices[0].label, "Conv+Relu"));
	CHECK_EQ_I64(s->slices[0].last_node, 1);
	CHECK_EQ_I64(s->slices[0].cut_bytes, 4 * 8 * 8 * 4);
	CHECK_EQ_I64(s->slices[0].param_bytes, 4 * 4 * 9 * 4);
	CHECK_EQ_I64(s->slices[1].cut_bytes, 0);
	/* 2 * N*Cout*H*W * Cin*kh*kw per conv, plus one per Relu output */
	CHECK(s->slices[0].flops >= 2.0 * 4 * 64 * 4 * 9);
	lm_slicing_free(s);
	lm_graph_free(g);
}

TEST(residual_cut_carries_two_tensors)
{
	lm_graph *g = start();
	conv(g, "c1", "x", "a");
	op(g, "r1", "Relu", "a", NULL, "b");
	conv(g, "c2", "b", "c");
	op(g, "add", "Add", "c", "x", "d");
	op(g, "r2", "Relu", "d", NULL, "e");
	lm_slicing *s = plan(g, "e", LM_GRAN_LAYER, 0);
	CHECK(s != NULL);
	CHECK_EQ_I64(s->n, 2);
	CHECK(!strcmp(s->slices[1].label, "Conv+Add+Relu"));
	CHECK_EQ_I64(s->slices[1].n_inputs, 2);
	CHECK_EQ_I64(s->slices[0].cut_bytes, 2 * 4 * 8 * 8 * 4);
	lm_slicing_free(s);
	lm_graph_free(g);
}

TEST(silu_joins_its_conv)
{
	lm_graph *g = start();
	conv(g, "c1", "x", "a");
	op(g, "sig", "Sigmoid", "a", NULL, "b");
	op(g, "mul", "Mul", "a", "b", "c");
	lm_slicing *s = plan(g, "c", LM_GRAN_LAYER, 0);
	CHECK(s != NULL);
	CHECK_EQ_I64(s->n, 1);
	CHECK(!strcmp(s->slices[0].label, "Conv+Sigmoid+Mul"));
	lm_slicing_free(s);
	lm_graph_free(g);
}

TEST(elementwise_reading_a_shared_tensor_starts_a_layer)
{
	/* a feeds both the Relu and a later Add: joining the Relu would not
	 * make the cut smaller, so it stays apart */
	lm_graph *g = start();
	conv(g, "c1", "x", "a");
	op(g, "r1", "Relu", "a", NULL, "b");
	conv(g, "c2", "b", "c");
	op(g, "add", "Add", "c", "a", "d");
	lm_slicing *s = plan(g, "d", LM_GRAN_LAYER, 0);
	CHECK(s != NULL);
	CHECK_EQ_I64(s->n, 3);
	CHECK(!strcmp(s->slices[1].label, "Relu"));
	lm_slicing_free(s);
	lm_graph_free(g);
}

/* A tensor the runtime fuses away (opt.fused) is never cut: the layers
 * on both sides of it stay one; node granularity cuts it anyway. */
TEST(fused_tensors_stay_inside_a_slice)
{
	for (int gran = 0; gran < 2; gran++) {
		lm_graph *g = start();
		conv(g, "c1", "x", "a");
		conv(g, "c2", "a", "b");
		conv(g, "c3", "b", "c");
		conv(g, "c4", "c", "d");
		lm_graph_add_output(g, lm_graph_find(g, "d"));
		CHECK_EQ_I64(lm_graph_sort(g, NULL), 0);
		CHECK_EQ_I64(lm_graph_infer_shapes(g, NULL), 0);
		uint8_t *fused = calloc((size_t)g->n_values, 1);
		fused[lm_graph_find(g, "b")] = 1;
		lm_slice_options o = { gran ? LM_GRAN_NODE : LM_GRAN_LAYER, 0,
				       fused };
		lm_slicing *s = NULL;
		CHECK_EQ_I64(lm_slice_plan(g, &o, &s, NULL), 0);
		if (!gran) {
			CHECK_EQ_I64(s->n, 3);
			CHECK_EQ_I64(s->slices[1].first_node, 1);
			CHECK_EQ_I64(s->slices[1].last_node, 2);
			CHECK_EQ_I64(s->slices[2].first_node, 3);
		} else {
			CHECK_EQ_I64(s->n, 4);
		}
		lm_slicing_free(s);
		free(fused);
		lm_graph_free(g);
	}
}

TEST(node_granularity_and_max_slices)
{
	lm_graph *g = start();
	conv(g, "c1", "x", "a");
	op(g, "r1", "Relu", "a", NULL, "b");
	conv(g, "c2", "b", "c");
	op(g, "r2", "Relu", "c", NULL, "d");
	conv(g, "c3", "d", "e");
	conv(g, "c4", "e", "f");
	lm_slicing *s = plan(g, "f", LM_GRAN_NODE, 0);
	CHECK(s != NULL);
	CHECK_EQ_I64(s->n, 6);
	lm_slicing_free(s);
	lm_slice_options o = { LM_GRAN_LAYER, 2 };
	CHECK_EQ_I64(lm_slice_plan(g, &o, &s, NULL), 0);
	/* four equal convs in two slices: two each */
	CHECK_EQ_I64(s->n, 2);
	CHECK_EQ_I64(s->slices[0].last_node, 3);
	CHECK(s->slices[0].flops >= s->slices[1].flops &&
	      s->slices[0].flops - s->slices[1].flops <
		      0.02 * s->slices[1].flops);
	CHECK_EQ_I64(s->slices[1].n_inputs, 1);
	lm_slicing_free(s);
	lm_graph_free(g);
}

int main(void)
{
	RUN(conv_and_relu_form_one_layer);
	RUN(residual_cut_carries_two_tensors);
	RUN(silu_joins_its_conv);
	RUN(elementwise_reading_a_shared_tensor_starts_a_layer);
	RUN(fused_tensors_stay_inside_a_slice);
	RUN(node_granularity_and_max_slices);
	return harness_done();
}
