/*
 * test_shapes.c: unit tests of shape inference, constant folding and FLOP
 * counts (runtime/shape.c, runtime/fold.c, runtime/ops/).
 *
 * Each case builds a small graph through the lm_graph_* API, as the ONNX
 * reader would, and checks the shapes, values or errors that come out.
 */
#include "lamina/graph.h"
#include "harness.h"
#include "testgraph.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- graph building ---- */

#define LIST(...)                                                       \
	((const char *const[]){ __VA_ARGS__ }),                         \
	(int)(sizeof((const char *const[]){ __VA_ARGS__ }) /            \
	      sizeof(const char *))
#define DIMS(...) ((const int64_t[]){ __VA_ARGS__ })
#define I64S(...) ((const int64_t[]){ __VA_ARGS__ }),                   \
	(int)(sizeof((const int64_t[]){ __VA_ARGS__ }) / sizeof(int64_t))

/* A 1-D int64 initializer. */
static int ints(lm_graph *g, const char *name, const int64_t *vals, int n)
{
	int64_t len = n;
	return tg_init(g, name, LM_DT_INT64, 1, &len, vals);
}

/* A tensor attribute holding a copy of vals. */
static void attr_t(lm_node *n, const char *name, lm_dtype dt, int rank,
		   const int64_t *dims, const void *vals)
{
	lm_attr *a = lm_node_add_attr(n, name, LM_ATTR_TENSOR);
	if (!a)
		return;
	a->t = calloc(1, sizeof(*a->t));
	if (a->t && lm_tensor_alloc(a->t, dt, rank, dims) == 0)
		memcpy(a->t->data, vals, a->t->nbytes);
}

static lm_value *val(lm_graph *g, const char *name)
{
	int v = lm_graph_find(g, name);
	return v < 0 ? NULL : &g->values[v];
}

static void output(lm_graph *g, const char *name)
{
	lm_graph_add_output(g, lm_graph_find(g, name));
}

/* Does value `name` have this shape?  Describes the difference in msg. */
static int shape_is(lm_graph *g, const char *name, int rank,
		    const int64_t *dims, char *msg, size_t len)
{
	char got[128], want[128];
	lm_value *v = val(g, name);

	if (!v) {
		snprintf(msg, len, "no value '%s'", name);
		return 0;
	}
	if (v->rank == rank &&
	    (rank == 0 || !memcmp(v->dims, dims, sizeof(int64_t) * rank)))
		return 1;
	snprintf(msg, len, "'%s' is %s, expected %s", name,
		 lm_shape_str(v->rank, v->dims, got, sizeof(got)),
		 lm_shape_str(rank, dims, want, sizeof(want)));
	return 0;
}

#define CHECK_SHAPE(g, name, rank, dims)                                \
	do {                                                            \
		char sm_[300];                                          \
		if (!shape_is(g, name, rank, dims, sm_, sizeof(sm_))) { \
			harness_fail(__FILE__, __LINE__, sm_);          \
			return;                                         \
		}                                                       \
	} while (0)

/* Sort then infer, as the pipeline does. */
static int infer(lm_graph *g, lm_error *e)
{
	int rc = lm_graph_sort(g, e);
	return rc ? rc : lm_graph_infer_shapes(g, e);
}

/* rc is an error and the message mentions `what`. */
static int failed_with(int rc, const lm_error *e, const char *what)
{
	if (rc >= 0 || !strstr(e->msg, what)) {
		printf("  (rc %d, message: %s)\n", rc, e->msg);
		return 0;
	}
	return 1;
}

/* ---- shape inference ---- */

TEST(conv_output_shapes)
{
	lm_graph *g = tg_graph(13);
	lm_error e = { "" };
	lm_node *n;

	tg_input(g, "x", LM_DT_FLOAT, 4, DIMS(1, 3, 32, 32));
	tg_input(g, "xd", LM_DT_FLOAT, 4, DIMS(1, 8, 16, 16));
	tg_input(g, "x7", LM_DT_FLOAT, 4, DIMS(1, 3, 7, 7));
	tg_input(g, "x1", LM_DT_FLOAT, 4, DIMS(1, 3, 1, 1));
	tg_init(g, "w", LM_DT_FLOAT, 4, DIMS(8, 3, 3, 3), NULL);
	tg_init(g, "w1", LM_DT_FLOAT, 4, DIMS(8, 3, 1, 1), NULL);
	tg_init(g, "wd", LM_DT_FLOAT, 4, DIMS(8, 1, 3, 3), NULL);
	tg_init(g, "b", LM_DT_FLOAT, 1, DIMS(8), NULL);

	n = tg_node(g, "pad1", "Conv", LIST("x", "w", "b"), LIST("y_pad"));
	tg_attr_is(n, "pads", I64S(1, 1, 1, 1));
	n = tg_node(g, "stride2", "Conv", LIST("x", "w"), LIST("y_stride"));
	tg_attr_is(n, "strides", I64S(2, 2));
	n = tg_node(g, "dil2", "Conv", LIST("x", "w"), LIST("y_dil"));
	tg_attr_is(n, "dilations", I64S(2, 2));
	n = tg_node(g, "dw", "Conv", LIST("xd", "wd"), LIST("y_dw"));
	tg_attr_i(n, "group", 8);
	tg_attr_is(n, "pads", I64S(1, 1, 1, 1));
	tg_attr_is(n, "strides", I64S(2, 2));
	tg_attr_is(n, "kernel_shape", I64S(3, 3));
	n = tg_node(g, "same", "Conv", LIST("x7", "w"), LIST("y_same"));
	tg_attr_s(n, "auto_pad", "SAME_UPPER");
	tg_attr_is(n, "strides", I64S(2, 2));
	n = tg_node(g, "valid", "Conv", LIST("x7", "w"), LIST("y_valid"));
	tg_attr_s(n, "auto_pad", "VALID");
	tg_attr_is(n, "strides", I64S(2, 2));
	tg_node(g, "px1", "Conv", LIST("x1", "w1"), LIST("y_1x1"));
	n = tg_node(g, "px1k3", "Conv", LIST("x1", "w"), LIST("y_1x1k3"));
	tg_attr_is(n, "pads", I64S(1, 1, 1, 1));

	CHECK_EQ_I64(infer(g, &e), 0);
	CHECK_SHAPE(g, "y_pad", 4, DIMS(1, 8, 32, 32));
	CHECK_SHAPE(g, "y_stride", 4, DIMS(1, 8, 15, 15));
	CHECK_SHAPE(g, "y_dil", 4, DIMS(1, 8, 28, 28));
	CHECK_SHAPE(g, "y_dw", 4, DIMS(1, 8, 8, 8));
	CHECK_SHAPE(g, "y_same", 4, DIMS(1, 8, 4, 4));
	CHECK_SHAPE(g, "y_valid", 4, DIMS(1, 8, 3, 3));
	CHECK_SHAPE(g, "y_1x1", 4, DIMS(1, 8, 1, 1));
	CHECK_SHAPE(g, "y_1x1k3", 4, DIMS(1, 8, 1, 1));
	CHECK(val(g, "y_pad")->dtype == LM_DT_FLOAT);
	lm_graph_free(g);
}

TEST(conv_channel_mismatch)
{
	lm_graph *g = tg_graph(13);
	lm_error e = { "" };

	tg_input(g, "x", LM_DT_FLOAT, 4, DIMS(1, 4, 8, 8));
	tg_init(g, "w", LM_DT_FLOAT, 4, DIMS(8, 3, 3, 3), NULL);
	tg_node(g, "c", "Conv", LIST("x", "w"), LIST("y"));
	CHECK(failed_with(infer(g, &e), &e, "node 'c' (Conv): input 'x' has "
			  "4 channels"));
	lm_graph_free(g);
}

TEST(conv_rank_mismatch)
{
	lm_graph *g = tg_graph(13);
	lm_error e = { "" };

	tg_input(g, "x", LM_DT_FLOAT, 4, DIMS(1, 3, 8, 8));
	tg_init(g, "w", LM_DT_FLOAT, 3, DIMS(8, 3, 3), NULL);
	tg_node(g, "c", "Conv", LIST("x", "w"), LIST("y"));
	CHECK(failed_with(infer(g, &e), &e, "weight 'w' has rank 3"));
	lm_graph_free(g);
}

TEST(conv_transpose_shapes)
{
	lm_graph *g = tg_graph(13);
	lm_error e = { "" };
	lm_node *n;

	tg_input(g, "x", LM_DT_FLOAT, 4, DIMS(1, 8, 7, 7));
	tg_init(g, "w", LM_DT_FLOAT, 4, DIMS(8, 4, 3, 3), NULL);
	tg_init(g, "wg", LM_DT_FLOAT, 4, DIMS(8, 2, 4, 4), NULL);
	/* 2 * (7 - 1) + 1 + 3 - 2 = 14 */
	n = tg_node(g, "up", "ConvTranspose", LIST("x", "w"), LIST("y"));
	tg_attr_is(n, "strides", I64S(2, 2));
	tg_attr_is(n, "pads", I64S(1, 1, 1, 1));
	tg_attr_is(n, "output_padding", I64S(1, 1));
	/* groups of 2: 2 * 2 = 4 output channels; 2 * 6 + 4 - 2 = 14 */
	n = tg_node(g, "upg", "ConvTranspose", LIST("x", "wg"), LIST("yg"));
	tg_attr_i(n, "group", 2);
	tg_attr_is(n, "strides", I64S(2, 2));
	tg_attr_is(n, "pads", I64S(1, 1, 1, 1));
	n = tg_node(g, "ups", "ConvTranspose", LIST("x", "w"), LIST("ys"));
	tg_attr_is(n, "output_shape", I64S(20, 21));
	tg_attr_is(n, "strides", I64S(3, 3));
	n = tg_node(g, "same", "ConvTranspose", LIST("x", "w"), LIST("ysame"));
	tg_attr_s(n, "auto_pad", "SAME_UPPER");
	tg_attr_is(n, "strides", I64S(2, 2));

	CHECK_EQ_I64(infer(g, &e), 0);
	CHECK_SHAPE(g, "y", 4, DIMS(1, 4, 14, 14));
	CHECK_SHAPE(g, "yg", 4, DIMS(1, 4, 14, 14));
	CHECK_SHAPE(g, "ys", 4, DIMS(1, 4, 20, 21));
	CHECK_SHAPE(g, "ysame", 4, DIMS(1, 4, 14, 14));
	lm_graph_free(g);
}

TEST(pool_ceil_mode)
{
	lm_graph *g = tg_graph(13);
	lm_error e = { "" };
	lm_node *n;

	tg_input(g, "x", LM_DT_FLOAT, 4, DIMS(1, 2, 6, 6));
	tg_input(g, "x4", LM_DT_FLOAT, 4, DIMS(1, 2, 4, 4));
	n = tg_node(g, "floor", "MaxPool", LIST("x"), LIST("y_floor"));
	tg_attr_is(n, "kernel_shape", I64S(3, 3));
	tg_attr_is(n, "strides", I64S(2, 2));
	n = tg_node(g, "ceil", "MaxPool", LIST("x"), LIST("y_ceil", "idx"));
	tg_attr_is(n, "kernel_shape", I64S(3, 3));
	tg_attr_is(n, "strides", I64S(2, 2));
	tg_attr_i(n, "ceil_mode", 1);
	/* ceil would give 3, but the third window would start in the end
	 * padding, so it is dropped. */
	n = tg_node(g, "edge", "AveragePool", LIST("x4"), LIST("y_edge"));
	tg_attr_is(n, "kernel_shape", I64S(2, 2));
	tg_attr_is(n, "strides", I64S(2, 2));
	tg_attr_is(n, "pads", I64S(0, 0, 1, 1));
	tg_attr_i(n, "ceil_mode", 1);
	tg_node(g, "gap", "GlobalAveragePool", LIST("x"), LIST("y_gap"));

	CHECK_EQ_I64(infer(g, &e), 0);
	CHECK_SHAPE(g, "y_floor", 4, DIMS(1, 2, 2, 2));
	CHECK_SHAPE(g, "y_ceil", 4, DIMS(1, 2, 3, 3));
	CHECK_SHAPE(g, "idx", 4, DIMS(1, 2, 3, 3));
	CHECK(val(g, "idx")->dtype == LM_DT_INT64);
	CHECK_SHAPE(g, "y_edge", 4, DIMS(1, 2, 2, 2));
	CHECK_SHAPE(g, "y_gap", 4, DIMS(1, 2, 1, 1));
	lm_graph_free(g);
}

TEST(gemm_transb)
{
	lm_graph *g = tg_graph(13);
	lm_error e = { "" };
	lm_node *n;

	tg_input(g, "a", LM_DT_FLOAT, 2, DIMS(4, 8));
	tg_init(g, "b", LM_DT_FLOAT, 2, DIMS(16, 8), NULL);
	tg_init(g, "c", LM_DT_FLOAT, 1, DIMS(16), NULL);
	n = tg_node(g, "fc", "Gemm", LIST("a", "b", "c"), LIST("y"));
	tg_attr_i(n, "transB", 1);
	CHECK_EQ_I64(infer(g, &e), 0);
	CHECK_SHAPE(g, "y", 2, DIMS(4, 16));
	lm_graph_free(g);

	/* Without transB the inner dims (8 and 16) differ. */
	g = tg_graph(13);
	tg_input(g, "a", LM_DT_FLOAT, 2, DIMS(4, 8));
	tg_init(g, "b", LM_DT_FLOAT, 2, DIMS(16, 8), NULL);
	tg_node(g, "fc", "Gemm", LIST("a", "b"), LIST("y"));
	CHECK(failed_with(infer(g, &e), &e, "inner dims differ"));
	lm_graph_free(g);
}

TEST(matmul_broadcast_and_1d)
{
	lm_graph *g = tg_graph(13);
	lm_error e = { "" };

	tg_input(g, "a4", LM_DT_FLOAT, 4, DIMS(2, 1, 4, 5));
	tg_input(g, "b3", LM_DT_FLOAT, 3, DIMS(3, 5, 6));
	tg_input(g, "v5", LM_DT_FLOAT, 1, DIMS(5));
	tg_input(g, "a3", LM_DT_FLOAT, 3, DIMS(2, 3, 5));
	tg_node(g, "batched", "MatMul", LIST("a4", "b3"), LIST("y_b"));
	tg_node(g, "vec_mat", "MatMul", LIST("v5", "b3"), LIST("y_vm"));
	tg_node(g, "mat_vec", "MatMul", LIST("a3", "v5"), LIST("y_mv"));
	tg_node(g, "dot", "MatMul", LIST("v5", "v5"), LIST("y_dot"));
	CHECK_EQ_I64(infer(g, &e), 0);
	CHECK_SHAPE(g, "y_b", 4, DIMS(2, 3, 4, 6));
	CHECK_SHAPE(g, "y_vm", 2, DIMS(3, 6));
	CHECK_SHAPE(g, "y_mv", 2, DIMS(2, 3));
	CHECK_SHAPE(g, "y_dot", 0, NULL);
	lm_graph_free(g);
}

TEST(broadcast_add)
{
	lm_graph *g = tg_graph(13);
	lm_error e = { "" };

	tg_input(g, "a", LM_DT_FLOAT, 3, DIMS(2, 1, 4));
	tg_input(g, "b", LM_DT_FLOAT, 2, DIMS(3, 1));
	tg_input(g, "c", LM_DT_FLOAT, 3, DIMS(2, 1, 4));
	tg_node(g, "add", "Add", LIST("a", "b"), LIST("y"));
	tg_node(g, "eq", "Equal", LIST("a", "c"), LIST("m"));
	CHECK_EQ_I64(infer(g, &e), 0);
	CHECK_SHAPE(g, "y", 3, DIMS(2, 3, 4));
	CHECK_SHAPE(g, "m", 3, DIMS(2, 1, 4));
	CHECK(val(g, "m")->dtype == LM_DT_BOOL);
	lm_graph_free(g);
}

TEST(broadcast_mismatch)
{
	lm_graph *g = tg_graph(13);
	lm_error e = { "" };

	tg_input(g, "a", LM_DT_FLOAT, 2, DIMS(2, 3));
	tg_input(g, "b", LM_DT_FLOAT, 1, DIMS(4));
	tg_node(g, "add", "Add", LIST("a", "b"), LIST("y"));
	CHECK(failed_with(infer(g, &e), &e, "node 'add' (Add): shapes 2x3 "
			  "and 4 cannot be broadcast"));
	lm_graph_free(g);
}

TEST(reshape_zero_and_minus_one)
{
	lm_graph *g = tg_graph(14);
	lm_error e = { "" };

	tg_input(g, "x", LM_DT_FLOAT, 3, DIMS(2, 3, 4));
	ints(g, "s1", I64S(0, -1));
	ints(g, "s2", I64S(-1, 4));
	ints(g, "s3", I64S(0, 0, 2, 2));
	tg_node(g, "r1", "Reshape", LIST("x", "s1"), LIST("y1"));
	tg_node(g, "r2", "Reshape", LIST("x", "s2"), LIST("y2"));
	tg_node(g, "r3", "Reshape", LIST("x", "s3"), LIST("y3"));
	CHECK_EQ_I64(infer(g, &e), 0);
	CHECK_SHAPE(g, "y1", 2, DIMS(2, 12));
	CHECK_SHAPE(g, "y2", 2, DIMS(6, 4));
	CHECK_SHAPE(g, "y3", 4, DIMS(2, 3, 2, 2));
	lm_graph_free(g);

	/* 24 elements do not make 5 x 5. */
	g = tg_graph(14);
	tg_input(g, "x", LM_DT_FLOAT, 3, DIMS(2, 3, 4));
	ints(g, "s", I64S(5, 5));
	tg_node(g, "r", "Reshape", LIST("x", "s"), LIST("y"));
	CHECK(failed_with(infer(g, &e), &e, "cannot reshape"));
	lm_graph_free(g);
}

TEST(reshape_shape_not_constant)
{
	lm_graph *g = tg_graph(14);
	lm_error e = { "" };

	tg_input(g, "x", LM_DT_FLOAT, 3, DIMS(2, 3, 4));
	tg_input(g, "s", LM_DT_INT64, 1, DIMS(2));
	tg_node(g, "r", "Reshape", LIST("x", "s"), LIST("y"));
	CHECK(failed_with(infer(g, &e), &e, "node 'r' (Reshape): shape input "
			  "'s' is not a constant"));
	lm_graph_free(g);
}

TEST(slice_negative_indices_and_steps)
{
	lm_graph *g = tg_graph(13);
	lm_error e = { "" };

	tg_input(g, "x", LM_DT_FLOAT, 2, DIMS(10, 8));
	ints(g, "m3", I64S(-3));
	ints(g, "m1", I64S(-1));
	ints(g, "big", I64S(INT64_MAX));
	ints(g, "small", I64S(INT64_MIN));
	ints(g, "ax0", I64S(0));
	ints(g, "axm1", I64S(-1));
	ints(g, "one", I64S(1));
	ints(g, "seven", I64S(7));
	ints(g, "neg2", I64S(-2));
	/* last three rows */
	tg_node(g, "tail", "Slice", LIST("x", "m3", "big", "ax0"), LIST("y1"));
	/* columns reversed */
	tg_node(g, "rev", "Slice", LIST("x", "m1", "small", "axm1", "m1"),
	     LIST("y2"));
	/* rows 7, 5, 3 */
	tg_node(g, "back2", "Slice", LIST("x", "seven", "one", "ax0", "neg2"),
	     LIST("y3"));
	/* columns 1..6 */
	tg_node(g, "mid", "Slice", LIST("x", "one", "m1", "axm1"), LIST("y4"));
	CHECK_EQ_I64(infer(g, &e), 0);
	CHECK_SHAPE(g, "y1", 2, DIMS(3, 8));
	CHECK_SHAPE(g, "y2", 2, DIMS(10, 8));
	CHECK_SHAPE(g, "y3", 2, DIMS(3, 8));
	CHECK_SHAPE(g, "y4", 2, DIMS(10, 6));
	lm_graph_free(g);

	/* Opset 9: starts, ends and axes are attributes. */
	g = tg_graph(9);
	tg_input(g, "x", LM_DT_FLOAT, 2, DIMS(10, 8));
	lm_node *n = tg_node(g, "s9", "Slice", LIST("x"), LIST("y"));
	tg_attr_is(n, "starts", I64S(2, -4));
	tg_attr_is(n, "ends", I64S(100, -1));
	CHECK_EQ_I64(infer(g, &e), 0);
	CHECK_SHAPE(g, "y", 2, DIMS(8, 3));
	lm_graph_free(g);
}

TEST(concat_negative_axis)
{
	lm_graph *g = tg_graph(13);
	lm_error e = { "" };

	tg_input(g, "a", LM_DT_FLOAT, 2, DIMS(2, 3));
	tg_input(g, "b", LM_DT_FLOAT, 2, DIMS(2, 5));
	lm_node *n = tg_node(g, "cat", "Concat", LIST("a", "b"), LIST("y"));
	tg_attr_i(n, "axis", -1);
	CHECK_EQ_I64(infer(g, &e), 0);
	CHECK_SHAPE(g, "y", 2, DIMS(2, 8));
	lm_graph_free(g);
}

TEST(split_equal_and_sized)
{
	lm_graph *g = tg_graph(13);
	lm_error e = { "" };
	lm_node *n;

	tg_input(g, "x", LM_DT_FLOAT, 2, DIMS(2, 6));
	ints(g, "sizes", I64S(1, 5));
	n = tg_node(g, "eq", "Split", LIST("x"), LIST("e0", "e1", "e2"));
	tg_attr_i(n, "axis", 1);
	n = tg_node(g, "sized", "Split", LIST("x", "sizes"), LIST("s0", "s1"));
	tg_attr_i(n, "axis", -1);
	CHECK_EQ_I64(infer(g, &e), 0);
	CHECK_SHAPE(g, "e0", 2, DIMS(2, 2));
	CHECK_SHAPE(g, "e2", 2, DIMS(2, 2));
	CHECK_SHAPE(g, "s0", 2, DIMS(2, 1));
	CHECK_SHAPE(g, "s1", 2, DIMS(2, 5));
	lm_graph_free(g);

	/* Opset 18's num_outputs: ceil(10 / 4) = 3, the last takes 1. */
	g = tg_graph(18);
	tg_input(g, "x", LM_DT_FLOAT, 1, DIMS(10));
	n = tg_node(g, "n4", "Split", LIST("x"), LIST("a", "b", "c", "d"));
	tg_attr_i(n, "num_outputs", 4);
	CHECK_EQ_I64(infer(g, &e), 0);
	CHECK_SHAPE(g, "a", 1, DIMS(3));
	CHECK_SHAPE(g, "d", 1, DIMS(1));
	lm_graph_free(g);

	/* Opset 11: split is an attribute; sizes must add up. */
	g = tg_graph(11);
	tg_input(g, "x", LM_DT_FLOAT, 1, DIMS(10));
	n = tg_node(g, "bad", "Split", LIST("x"), LIST("a", "b"));
	tg_attr_is(n, "split", I64S(3, 4));
	CHECK(failed_with(infer(g, &e), &e, "split sizes add up to 7 but "
			  "axis 0 has size 10"));
	lm_graph_free(g);
}

TEST(squeeze_unsqueeze_opset11)
{
	lm_graph *g = tg_graph(11);
	lm_error e = { "" };
	lm_node *n;

	tg_input(g, "x", LM_DT_FLOAT, 2, DIMS(3, 4));
	n = tg_node(g, "u", "Unsqueeze", LIST("x"), LIST("u"));
	tg_attr_is(n, "axes", I64S(0, -1));
	n = tg_node(g, "s", "Squeeze", LIST("u"), LIST("s"));
	tg_attr_is(n, "axes", I64S(0));
	tg_node(g, "sall", "Squeeze", LIST("u"), LIST("sall"));
	CHECK_EQ_I64(infer(g, &e), 0);
	CHECK_SHAPE(g, "u", 4, DIMS(1, 3, 4, 1));
	CHECK_SHAPE(g, "s", 3, DIMS(3, 4, 1));
	CHECK_SHAPE(g, "sall", 2, DIMS(3, 4));
	lm_graph_free(g);

	/* Squeezing an axis that is not 1 is an error. */
	g = tg_graph(11);
	tg_input(g, "x", LM_DT_FLOAT, 2, DIMS(3, 4));
	n = tg_node(g, "s", "Squeeze", LIST("x"), LIST("s"));
	tg_attr_is(n, "axes", I64S(1));
	CHECK(failed_with(infer(g, &e), &e, "cannot squeeze axis 1"));
	lm_graph_free(g);
}

TEST(squeeze_unsqueeze_opset13)
{
	lm_graph *g = tg_graph(13);
	lm_error e = { "" };

	tg_input(g, "x", LM_DT_FLOAT, 2, DIMS(3, 4));
	ints(g, "ax", I64S(1, 3));
	ints(g, "ax1", I64S(-1));
	tg_node(g, "u", "Unsqueeze", LIST("x", "ax"), LIST("u"));
	tg_node(g, "s", "Squeeze", LIST("u", "ax1"), LIST("s"));
	tg_node(g, "sall", "Squeeze", LIST("u"), LIST("sall"));
	CHECK_EQ_I64(infer(g, &e), 0);
	CHECK_SHAPE(g, "u", 4, DIMS(3, 1, 4, 1));
	CHECK_SHAPE(g, "s", 3, DIMS(3, 1, 4));
	CHECK_SHAPE(g, "sall", 2, DIMS(3, 4));
	lm_graph_free(g);
}

TEST(gather_axis1_negative_index)
{
	lm_graph *g = tg_graph(13);
	lm_error e = { "" };
	lm_node *n;
	float data[6] = { 0, 1, 2, 10, 11, 12 };

	tg_input(g, "x", LM_DT_FLOAT, 2, DIMS(3, 5));
	tg_init(g, "d", LM_DT_FLOAT, 2, DIMS(2, 3), data);
	ints(g, "idx", I64S(-1, 0));
	n = tg_node(g, "gx", "Gather", LIST("x", "idx"), LIST("y"));
	tg_attr_i(n, "axis", 1);
	n = tg_node(g, "gd", "Gather", LIST("d", "idx"), LIST("yd"));
	tg_attr_i(n, "axis", 1);
	output(g, "y");
	output(g, "yd");
	CHECK_EQ_I64(infer(g, &e), 0);
	CHECK_SHAPE(g, "y", 2, DIMS(3, 2));
	CHECK_SHAPE(g, "yd", 2, DIMS(2, 2));
	/* Folding the constant one picks columns 2 and 0. */
	CHECK_EQ_I64(lm_graph_fold_constants(g, &e), 1);
	const float *yd = val(g, "yd")->data;
	CHECK(yd && yd[0] == 2 && yd[1] == 0 && yd[2] == 12 && yd[3] == 10);
	lm_graph_free(g);
}

TEST(transpose_flatten_expand)
{
	lm_graph *g = tg_graph(13);
	lm_error e = { "" };
	lm_node *n;

	tg_input(g, "x", LM_DT_FLOAT, 3, DIMS(2, 3, 4));
	tg_input(g, "x4", LM_DT_FLOAT, 4, DIMS(2, 3, 4, 5));
	tg_input(g, "c", LM_DT_FLOAT, 2, DIMS(3, 1));
	ints(g, "shape", I64S(2, 1, 4));
	n = tg_node(g, "t", "Transpose", LIST("x"), LIST("t"));
	tg_attr_is(n, "perm", I64S(1, 0, 2));
	tg_node(g, "trev", "Transpose", LIST("x"), LIST("trev"));
	n = tg_node(g, "f2", "Flatten", LIST("x4"), LIST("f2"));
	tg_attr_i(n, "axis", 2);
	n = tg_node(g, "f0", "Flatten", LIST("x4"), LIST("f0"));
	tg_attr_i(n, "axis", 0);
	n = tg_node(g, "fm1", "Flatten", LIST("x4"), LIST("fm1"));
	tg_attr_i(n, "axis", -1);
	tg_node(g, "ex", "Expand", LIST("c", "shape"), LIST("ex"));
	CHECK_EQ_I64(infer(g, &e), 0);
	CHECK_SHAPE(g, "t", 3, DIMS(3, 2, 4));
	CHECK_SHAPE(g, "trev", 3, DIMS(4, 3, 2));
	CHECK_SHAPE(g, "f2", 2, DIMS(6, 20));
	CHECK_SHAPE(g, "f0", 2, DIMS(1, 120));
	CHECK_SHAPE(g, "fm1", 2, DIMS(24, 5));
	CHECK_SHAPE(g, "ex", 3, DIMS(2, 3, 4));
	lm_graph_free(g);
}

TEST(resize_scales_and_sizes)
{
	lm_graph *g = tg_graph(13);
	lm_error e = { "" };
	float sc[4] = { 1, 1, 2, 1.5f };

	tg_input(g, "x", LM_DT_FLOAT, 4, DIMS(1, 3, 10, 10));
	tg_init(g, "scales", LM_DT_FLOAT, 1, DIMS(4), sc);
	tg_init(g, "roi", LM_DT_FLOAT, 1, DIMS(0), NULL);
	tg_init(g, "noscales", LM_DT_FLOAT, 1, DIMS(0), NULL);
	ints(g, "sizes", I64S(1, 3, 7, 9));
	tg_node(g, "up", "Resize", LIST("x", "", "scales"), LIST("y"));
	tg_node(g, "sz", "Resize", LIST("x", "roi", "noscales", "sizes"),
	     LIST("ys"));
	CHECK_EQ_I64(infer(g, &e), 0);
	CHECK_SHAPE(g, "y", 4, DIMS(1, 3, 20, 15));
	CHECK_SHAPE(g, "ys", 4, DIMS(1, 3, 7, 9));
	lm_graph_free(g);

	/* Opset 10: (X, scales). */
	g = tg_graph(10);
	tg_input(g, "x", LM_DT_FLOAT, 4, DIMS(1, 3, 10, 10));
	tg_init(g, "scales", LM_DT_FLOAT, 1, DIMS(4), sc);
	tg_node(g, "up", "Resize", LIST("x", "scales"), LIST("y"));
	CHECK_EQ_I64(infer(g, &e), 0);
	CHECK_SHAPE(g, "y", 4, DIMS(1, 3, 20, 15));
	lm_graph_free(g);
}

TEST(norms_and_reductions)
{
	lm_graph *g = tg_graph(18);
	lm_error e = { "" };
	lm_node *n;

	tg_input(g, "x", LM_DT_FLOAT, 3, DIMS(2, 5, 8));
	tg_init(g, "gamma", LM_DT_FLOAT, 1, DIMS(8), NULL);
	ints(g, "ax", I64S(-1));
	n = tg_node(g, "ln", "LayerNormalization", LIST("x", "gamma"),
		 LIST("ln", "mean"));
	tg_attr_i(n, "axis", -1);
	tg_node(g, "sm", "Softmax", LIST("x"), LIST("sm"));
	n = tg_node(g, "rm", "ReduceMean", LIST("x", "ax"), LIST("rm"));
	tg_attr_i(n, "keepdims", 0);
	tg_node(g, "rall", "ReduceMax", LIST("x"), LIST("rall"));
	CHECK_EQ_I64(infer(g, &e), 0);
	CHECK_SHAPE(g, "ln", 3, DIMS(2, 5, 8));
	CHECK_SHAPE(g, "mean", 3, DIMS(2, 5, 1));
	CHECK_SHAPE(g, "sm", 3, DIMS(2, 5, 8));
	CHECK_SHAPE(g, "rm", 2, DIMS(2, 5));
	CHECK_SHAPE(g, "rall", 3, DIMS(1, 1, 1));
	lm_graph_free(g);

	/* Before opset 18 ReduceMean's axes are an attribute. */
	g = tg_graph(13);
	tg_input(g, "x", LM_DT_FLOAT, 3, DIMS(2, 5, 8));
	n = tg_node(g, "rm", "ReduceMean", LIST("x"), LIST("rm"));
	tg_attr_is(n, "axes", I64S(1));
	CHECK_EQ_I64(infer(g, &e), 0);
	CHECK_SHAPE(g, "rm", 3, DIMS(2, 1, 8));
	lm_graph_free(g);
}

TEST(hostile_attributes)
{
	lm_graph *g;
	lm_error e = { "" };
	lm_node *n;
	int64_t ten[10] = { 1, 1, 1, 1, 1, 1, 1, 1, 1, 24 };

	/* pads of the wrong length */
	g = tg_graph(13);
	tg_input(g, "x", LM_DT_FLOAT, 4, DIMS(1, 3, 8, 8));
	tg_init(g, "w", LM_DT_FLOAT, 4, DIMS(8, 3, 3, 3), NULL);
	n = tg_node(g, "c", "Conv", LIST("x", "w"), LIST("y"));
	tg_attr_is(n, "pads", I64S(1, 1, 1));
	CHECK(failed_with(infer(g, &e), &e, "'pads' has 3 values"));
	lm_graph_free(g);

	/* an axis of 1e9 */
	g = tg_graph(13);
	tg_input(g, "x", LM_DT_FLOAT, 2, DIMS(2, 3));
	n = tg_node(g, "s", "Softmax", LIST("x"), LIST("y"));
	tg_attr_i(n, "axis", 1000000000);
	CHECK(failed_with(infer(g, &e), &e, "axis 1000000000 is out of "
			  "range"));
	lm_graph_free(g);

	/* a shape of 10 dims */
	g = tg_graph(13);
	tg_input(g, "x", LM_DT_FLOAT, 3, DIMS(2, 3, 4));
	ints(g, "s", ten, 10);
	tg_node(g, "r", "Reshape", LIST("x", "s"), LIST("y"));
	CHECK(failed_with(infer(g, &e), &e, "has 10 values, expected at "
			  "most 8"));
	lm_graph_free(g);

	/* a constant whose data is shorter than its shape */
	g = tg_graph(13);
	tg_input(g, "x", LM_DT_FLOAT, 3, DIMS(2, 3, 4));
	ints(g, "s", I64S(6, 4));
	val(g, "s")->nbytes = 8;
	tg_node(g, "r", "Reshape", LIST("x", "s"), LIST("y"));
	CHECK(failed_with(infer(g, &e), &e, "holds 8 bytes"));
	lm_graph_free(g);

	/* a dilated kernel whose extent overflows int64 */
	g = tg_graph(13);
	tg_input(g, "x", LM_DT_FLOAT, 4, DIMS(1, 3, 8, 8));
	n = tg_node(g, "p", "MaxPool", LIST("x"), LIST("y"));
	tg_attr_is(n, "kernel_shape", I64S(INT64_MAX, 2));
	tg_attr_is(n, "dilations", I64S(INT64_MAX, 1));
	CHECK(failed_with(infer(g, &e), &e, "overflow"));
	lm_graph_free(g);

	/* missing inputs */
	g = tg_graph(13);
	tg_input(g, "x", LM_DT_FLOAT, 4, DIMS(1, 3, 8, 8));
	tg_node(g, "c", "Conv", LIST("x"), LIST("y"));
	CHECK(failed_with(infer(g, &e), &e, "has 1 inputs, expects 2 to 3"));
	lm_graph_free(g);
}

TEST(unknown_operator_and_symbolic_input)
{
	lm_graph *g = tg_graph(13);
	lm_error e = { "" };

	tg_input(g, "x", LM_DT_FLOAT, 2, DIMS(2, 3));
	lm_graph_add_node(g, "custom", "FusedThing", "com.example",
			  LIST("x"), LIST("y"), NULL);
	/* The file declared y's shape: kept. */
	lm_value_set_shape(val(g, "y"), LM_DT_FLOAT, 2, DIMS(2, 7));
	tg_node(g, "r", "Relu", LIST("y"), LIST("z"));
	lm_graph_add_node(g, "mystery", "Mystery", "", LIST("z"),
			  LIST("w"), NULL);
	CHECK(failed_with(infer(g, &e), &e, "node 'mystery' (Mystery): "
			  "unknown operator and the model declares no shape "
			  "for output 'w'"));
	CHECK_SHAPE(g, "z", 2, DIMS(2, 7));
	lm_graph_free(g);

	g = tg_graph(13);
	int v = tg_input(g, "x", LM_DT_FLOAT, 2, DIMS(-1, 3));
	g->values[v].dim_param[0] = strdup("batch");
	tg_node(g, "r", "Relu", LIST("x"), LIST("y"));
	CHECK(failed_with(infer(g, &e), &e, "graph input 'x' has symbolic "
			  "dim 'batch'"));
	lm_graph_free(g);
}

/* ---- graph structure ---- */

TEST(cycle_rejected)
{
	lm_graph *g = tg_graph(13);
	lm_error e = { "" };

	tg_input(g, "x", LM_DT_FLOAT, 1, DIMS(4));
	lm_graph_add_value(g, "b", LM_VAL_NODE, NULL);
	tg_node(g, "n1", "Add", LIST("x", "b"), LIST("a"));
	tg_node(g, "n2", "Relu", LIST("a"), LIST("b"));
	CHECK_EQ_I64(g->n_nodes, 2);
	CHECK(failed_with(lm_graph_sort(g, &e), &e, "cycle"));
	CHECK_EQ_I64(lm_graph_sort(g, &e), -ELOOP);
	lm_graph_free(g);
}

TEST(unknown_tensor_rejected)
{
	lm_graph *g = tg_graph(13);
	lm_error e = { "" };

	tg_input(g, "x", LM_DT_FLOAT, 1, DIMS(4));
	int rc = lm_graph_add_node(g, "n", "Add", "", LIST("x", "nope"),
				   LIST("y"), &e);
	CHECK(failed_with(rc, &e, "reads tensor 'nope'"));
	CHECK_EQ_I64(g->n_nodes, 0);
	lm_graph_free(g);
}

/* ---- folding ---- */

TEST(fold_shape_subgraph)
{
	lm_graph *g = tg_graph(13);
	lm_error e = { "" };
	int64_t zero = 0;

	/* y = x.reshape(x.shape[0], -1), as exporters write it. */
	tg_input(g, "x", LM_DT_FLOAT, 4, DIMS(2, 3, 4, 5));
	tg_init(g, "idx", LM_DT_INT64, 0, NULL, &zero);
	ints(g, "axes", I64S(0));
	ints(g, "minus1", I64S(-1));
	tg_node(g, "shape", "Shape", LIST("x"), LIST("s"));
	tg_node(g, "gather", "Gather", LIST("s", "idx"), LIST("b"));
	tg_node(g, "unsq", "Unsqueeze", LIST("b", "axes"), LIST("b1"));
	lm_node *n = tg_node(g, "cat", "Concat", LIST("b1", "minus1"),
			  LIST("shp"));
	tg_attr_i(n, "axis", 0);
	tg_node(g, "reshape", "Reshape", LIST("x", "shp"), LIST("y"));
	output(g, "y");
	CHECK_EQ_I64(lm_graph_sort(g, &e), 0);

	CHECK_EQ_I64(lm_graph_fold_constants(g, &e), 4);
	CHECK_EQ_I64(g->n_nodes, 1);
	CHECK(strcmp(g->nodes[0].op_type, "Reshape") == 0);
	lm_value *shp = lm_node_in(g, &g->nodes[0], 1);
	CHECK(shp && shp->kind == LM_VAL_CONSTANT);
	CHECK(shp->dtype == LM_DT_INT64 && shp->rank == 1);
	CHECK_EQ_I64(shp->dims[0], 2);
	CHECK_EQ_I64(((int64_t *)shp->data)[0], 2);
	CHECK_EQ_I64(((int64_t *)shp->data)[1], -1);
	/* The subgraph's initializers went with it. */
	CHECK(val(g, "idx") == NULL && val(g, "minus1") == NULL);
	CHECK_EQ_I64(lm_graph_infer_shapes(g, &e), 0);
	CHECK_SHAPE(g, "y", 2, DIMS(2, 60));
	lm_graph_free(g);
}

TEST(fold_skips_large_transpose)
{
	lm_graph *g = tg_graph(13);
	lm_error e = { "" };

	/* 128 x 256 float32 = 128 KiB: stays a node. */
	tg_input(g, "x", LM_DT_FLOAT, 2, DIMS(4, 256));
	tg_init(g, "w", LM_DT_FLOAT, 2, DIMS(128, 256), NULL);
	tg_node(g, "t", "Transpose", LIST("w"), LIST("wt"));
	tg_node(g, "mm", "MatMul", LIST("x", "wt"), LIST("y"));
	output(g, "y");
	CHECK_EQ_I64(lm_graph_sort(g, &e), 0);
	CHECK_EQ_I64(lm_graph_fold_constants(g, &e), 0);
	CHECK_EQ_I64(g->n_nodes, 2);
	CHECK(val(g, "wt")->kind == LM_VAL_NODE);
	CHECK_SHAPE(g, "wt", 2, DIMS(256, 128));
	lm_graph_free(g);
}

TEST(fold_constant_node)
{
	lm_graph *g = tg_graph(13);
	lm_error e = { "" };
	float k[4] = { 1, 2, 3, 4 };

	tg_input(g, "x", LM_DT_FLOAT, 2, DIMS(2, 2));
	lm_node *n = tg_node(g, "k", "Constant", NULL, 0, LIST("k"));
	attr_t(n, "value", LM_DT_FLOAT, 2, DIMS(2, 2), k);
	n = tg_node(g, "one", "Constant", NULL, 0, LIST("one"));
	lm_attr *a = lm_node_add_attr(n, "value_int", LM_ATTR_INT);
	a->i = 1;
	tg_node(g, "add", "Add", LIST("x", "k"), LIST("y"));
	tg_node(g, "cast", "Cast", LIST("one"), LIST("onef"));
	tg_attr_i(&g->nodes[g->n_nodes - 1], "to", LM_DT_FLOAT);
	tg_node(g, "mul", "Mul", LIST("y", "onef"), LIST("z"));
	output(g, "z");
	CHECK_EQ_I64(lm_graph_sort(g, &e), 0);
	CHECK_EQ_I64(lm_graph_fold_constants(g, &e), 3);
	CHECK_EQ_I64(g->n_nodes, 2);
	lm_value *kv = val(g, "k");
	CHECK(kv && kv->kind == LM_VAL_CONSTANT && kv->producer == -1);
	CHECK(kv->nbytes == sizeof(k) && memcmp(kv->data, k, sizeof(k)) == 0);
	lm_value *of = val(g, "onef");
	CHECK(of && of->rank == 0 && ((float *)of->data)[0] == 1.0f);
	CHECK_EQ_I64(lm_graph_infer_shapes(g, &e), 0);
	CHECK_SHAPE(g, "z", 2, DIMS(2, 2));
	lm_graph_free(g);
}

static int64_t i64_at(lm_graph *g, const char *name, int i)
{
	lm_value *v = val(g, name);
	return v && v->data ? ((int64_t *)v->data)[i] : -999;
}

TEST(fold_values)
{
	lm_graph *g = tg_graph(13);
	lm_error e = { "" };
	int64_t s0 = 0, s10 = 10, s3 = 3, seven = 7;
	int64_t tr[6] = { 0, 1, 2, 3, 4, 5 };

	ints(g, "a", I64S(7, -7, 9));
	ints(g, "b", I64S(2, 2, -4));
	ints(g, "shape", I64S(2, 3));
	tg_init(g, "start", LM_DT_INT64, 0, NULL, &s0);
	tg_init(g, "limit", LM_DT_INT64, 0, NULL, &s10);
	tg_init(g, "delta", LM_DT_INT64, 0, NULL, &s3);
	tg_init(g, "m", LM_DT_INT64, 2, DIMS(2, 3), tr);
	tg_node(g, "add", "Add", LIST("a", "b"), LIST("sum"));
	tg_node(g, "mul", "Mul", LIST("a", "b"), LIST("prod"));
	tg_node(g, "div", "Div", LIST("a", "b"), LIST("quot"));
	tg_node(g, "cast", "Cast", LIST("a"), LIST("af"));
	tg_attr_i(&g->nodes[g->n_nodes - 1], "to", LM_DT_FLOAT);
	tg_node(g, "range", "Range", LIST("start", "limit", "delta"),
	     LIST("r"));
	lm_node *n = tg_node(g, "cos7", "ConstantOfShape", LIST("shape"),
			  LIST("c7"));
	attr_t(n, "value", LM_DT_INT64, 1, DIMS(1), &seven);
	tg_node(g, "cos0", "ConstantOfShape", LIST("shape"), LIST("c0"));
	tg_node(g, "tr", "Transpose", LIST("m"), LIST("mt"));
	const char *outs[] = { "sum", "prod", "quot", "af", "r", "c7", "c0",
			       "mt" };
	for (int i = 0; i < 8; i++)
		output(g, outs[i]);
	CHECK_EQ_I64(lm_graph_sort(g, &e), 0);
	CHECK_EQ_I64(lm_graph_fold_constants(g, &e), 8);
	CHECK_EQ_I64(g->n_nodes, 0);

	CHECK_EQ_I64(i64_at(g, "sum", 0), 9);
	CHECK_EQ_I64(i64_at(g, "sum", 1), -5);
	CHECK_EQ_I64(i64_at(g, "sum", 2), 5);
	CHECK_EQ_I64(i64_at(g, "prod", 0), 14);
	CHECK_EQ_I64(i64_at(g, "prod", 1), -14);
	CHECK_EQ_I64(i64_at(g, "prod", 2), -36);
	/* Integer division truncates toward zero. */
	CHECK_EQ_I64(i64_at(g, "quot", 0), 3);
	CHECK_EQ_I64(i64_at(g, "quot", 1), -3);
	CHECK_EQ_I64(i64_at(g, "quot", 2), -2);

	lm_value *af = val(g, "af");
	CHECK(af && af->dtype == LM_DT_FLOAT && af->nbytes == 12);
	const float *afd = af->data;
	CHECK(afd[0] == 7.0f && afd[1] == -7.0f && afd[2] == 9.0f);

	CHECK_SHAPE(g, "r", 1, DIMS(4));
	for (int i = 0; i < 4; i++)
		CHECK_EQ_I64(i64_at(g, "r", i), 3 * i);

	CHECK_SHAPE(g, "c7", 2, DIMS(2, 3));
	CHECK(val(g, "c7")->dtype == LM_DT_INT64);
	for (int i = 0; i < 6; i++)
		CHECK_EQ_I64(i64_at(g, "c7", i), 7);
	lm_value *c0 = val(g, "c0");
	CHECK(c0->dtype == LM_DT_FLOAT && c0->nbytes == 24);
	CHECK(((float *)c0->data)[5] == 0.0f);

	CHECK_SHAPE(g, "mt", 2, DIMS(3, 2));
	int64_t want[6] = { 0, 3, 1, 4, 2, 5 };
	for (int i = 0; i < 6; i++)
		CHECK_EQ_I64(i64_at(g, "mt", i), want[i]);
	lm_graph_free(g);
}

TEST(fold_float_range_and_slice)
{
	lm_graph *g = tg_graph(13);
	lm_error e = { "" };
	float f0 = 1.0f, f1 = 2.0f, fd = 0.25f;

	tg_init(g, "start", LM_DT_FLOAT, 0, NULL, &f0);
	tg_init(g, "limit", LM_DT_FLOAT, 0, NULL, &f1);
	tg_init(g, "delta", LM_DT_FLOAT, 0, NULL, &fd);
	ints(g, "v", I64S(10, 11, 12, 13, 14));
	ints(g, "st", I64S(-1));
	ints(g, "en", I64S(INT64_MIN));
	ints(g, "ax", I64S(0));
	ints(g, "sp", I64S(-2));
	tg_node(g, "range", "Range", LIST("start", "limit", "delta"), LIST("r"));
	tg_node(g, "slice", "Slice", LIST("v", "st", "en", "ax", "sp"),
	     LIST("s"));
	output(g, "r");
	output(g, "s");
	CHECK_EQ_I64(lm_graph_sort(g, &e), 0);
	CHECK_EQ_I64(lm_graph_fold_constants(g, &e), 2);
	CHECK_SHAPE(g, "r", 1, DIMS(4));
	const float *r = val(g, "r")->data;
	CHECK(r[0] == 1.0f && r[1] == 1.25f && r[2] == 1.5f && r[3] == 1.75f);
	CHECK_SHAPE(g, "s", 1, DIMS(3));
	CHECK_EQ_I64(i64_at(g, "s", 0), 14);
	CHECK_EQ_I64(i64_at(g, "s", 1), 12);
	CHECK_EQ_I64(i64_at(g, "s", 2), 10);
	lm_graph_free(g);
}

TEST(fold_leaves_unsupported_types)
{
	lm_graph *g = tg_graph(13);
	lm_error e = { "" };

	/* No float16 arithmetic at fold time: the Cast stays a node. */
	ints(g, "a", I64S(1, 2, 3));
	tg_node(g, "half", "Cast", LIST("a"), LIST("h"));
	tg_attr_i(&g->nodes[g->n_nodes - 1], "to", LM_DT_FLOAT16);
	output(g, "h");
	CHECK_EQ_I64(lm_graph_sort(g, &e), 0);
	CHECK_EQ_I64(lm_graph_fold_constants(g, &e), 0);
	CHECK_EQ_I64(g->n_nodes, 1);
	lm_value *h = val(g, "h");
	CHECK(h->kind == LM_VAL_NODE && h->data == NULL);
	CHECK(h->dtype == LM_DT_FLOAT16);
	CHECK_SHAPE(g, "h", 1, DIMS(3));
	lm_graph_free(g);
}

/* ---- FLOPs ---- */

TEST(flops_conv_gemm)
{
	lm_graph *g = tg_graph(13);
	lm_error e = { "" };

	tg_input(g, "x", LM_DT_FLOAT, 4, DIMS(1, 3, 32, 32));
	tg_init(g, "w", LM_DT_FLOAT, 4, DIMS(16, 3, 3, 3), NULL);
	tg_init(g, "b", LM_DT_FLOAT, 1, DIMS(16), NULL);
	tg_input(g, "a", LM_DT_FLOAT, 2, DIMS(4, 8));
	tg_init(g, "gb", LM_DT_FLOAT, 2, DIMS(16, 8), NULL);
	tg_init(g, "gc", LM_DT_FLOAT, 1, DIMS(16), NULL);
	lm_node *n = tg_node(g, "conv", "Conv", LIST("x", "w", "b"), LIST("y"));
	tg_attr_is(n, "pads", I64S(1, 1, 1, 1));
	n = tg_node(g, "fc", "Gemm", LIST("a", "gb", "gc"), LIST("z"));
	tg_attr_i(n, "transB", 1);
	tg_node(g, "relu", "Relu", LIST("y"), LIST("yr"));
	tg_node(g, "reshape_like", "Unknown", LIST("yr"), LIST("q"));
	lm_value_set_shape(val(g, "q"), LM_DT_FLOAT, 1, DIMS(1));
	CHECK_EQ_I64(infer(g, &e), 0);

	/* 2 * N * Cout * H * W * Cin * kh * kw + N * Cout * H * W */
	double conv = 2.0 * 1 * 16 * 32 * 32 * 3 * 3 * 3 + 16 * 32 * 32;
	CHECK_EQ_I64(lm_node_flops(g, &g->nodes[0]), 901120);
	CHECK(lm_node_flops(g, &g->nodes[0]) == conv);
	/* 2 * M * N * K + M * N */
	CHECK_EQ_I64(lm_node_flops(g, &g->nodes[1]), 2 * 4 * 16 * 8 + 4 * 16);
	CHECK_EQ_I64(lm_node_flops(g, &g->nodes[2]), 16 * 32 * 32);
	CHECK_EQ_I64(lm_node_flops(g, &g->nodes[3]), 0);
	lm_graph_free(g);
}

int main(void)
{
	RUN(conv_output_shapes);
	RUN(conv_channel_mismatch);
	RUN(conv_rank_mismatch);
	RUN(conv_transpose_shapes);
	RUN(pool_ceil_mode);
	RUN(gemm_transb);
	RUN(matmul_broadcast_and_1d);
	RUN(broadcast_add);
	RUN(broadcast_mismatch);
	RUN(reshape_zero_and_minus_one);
	RUN(reshape_shape_not_constant);
	RUN(slice_negative_indices_and_steps);
	RUN(concat_negative_axis);
	RUN(split_equal_and_sized);
	RUN(squeeze_unsqueeze_opset11);
	RUN(squeeze_unsqueeze_opset13);
	RUN(gather_axis1_negative_index);
	RUN(transpose_flatten_expand);
	RUN(resize_scales_and_sizes);
	RUN(norms_and_reductions);
	RUN(hostile_attributes);
	RUN(unknown_operator_and_symbolic_input);
	RUN(cycle_rejected);
	RUN(unknown_tensor_rejected);
	RUN(fold_shape_subgraph);
	RUN(fold_skips_large_transpose);
	RUN(fold_constant_node);
	RUN(fold_values);
	RUN(fold_float_range_and_slice);
	RUN(fold_leaves_unsupported_types);
	RUN(flops_conv_gemm);
	return harness_done();
}
