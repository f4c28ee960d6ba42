/*
 * test_batch.c: following the batch through hand-built graphs (batch.c):
 * Transposes moving it, Reshapes keeping, merging and splitting it, tensors
 * without it, Concat along it, nodes that mix samples, the choice a batch
 * of 1 leaves open, rewriting literal batches, guessing the batch
 * axis of a model whose shapes are all numbers, and the sum fusion adds
 * to a Conv (which exec.c's sample-by-sample runs need followed).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "lamina/batch.h"
#include "testgraph.h"

#include "fuse.h"

#define I64(...) ((const int64_t[]){ __VA_ARGS__ })
#define NAMES(...) ((const char *const[]){ __VA_ARGS__ })

static lm_graph *graph(void)
{
	return tg_graph(13);
}

static void node(lm_graph *g, const char *op, const char *const *in,
		 int nin, const char *out)
{
	tg_node(g, out, op, in, nin, NAMES(out), 1);
}

static void reshape(lm_graph *g, const char *x, const char *out, int rank,
		    const int64_t *target)
{
	char name[64];
	snprintf(name, sizeof(name), "%s_shape", out);
	tg_init(g, name, LM_DT_INT64, 1, I64(rank), target);
	node(g, "Reshape", NAMES(x, name), 2, out);
}

static void transpose(lm_graph *g, const char *x, const char *out, int rank,
		      const int64_t *perm)
{
	lm_node *n = tg_node(g, out, "Transpose", NAMES(x), 1, NAMES(out), 1);
	if (n)
		tg_attr_is(n, "perm", perm, rank);
}

static int ready(lm_graph *g, lm_error *e)
{
	int rc = lm_graph_sort(g, e);
	return rc ? rc : lm_graph_infer_shapes(g, e);
}

static lm_batch_pos pos_of(const lm_graph *g, const lm_batch *b,
			   const char *name)
{
	return lm_batch_of(b, lm_graph_find(g, name));
}

#define CHECK_POS(g, b, name, ax, o, i)                                 \
	do {                                                            \
		lm_batch_pos p_ = pos_of(g, b, name);                   \
		CHECK_EQ_I64(p_.axis, ax);                              \
		if ((ax) >= 0) {                                        \
			CHECK_EQ_I64(p_.outer, o);                      \
			CHECK_EQ_I64(p_.inner, i);                      \
		}                                                       \
	} while (0)

static const lm_batch_pos AXIS0 = { 0, 1, 1 };

/* [seq, batch, d] -> [batch, seq, d] -> back */
TEST(transpose_moves_the_batch)
{
	lm_graph *g = graph();
	lm_batch b;
	lm_error e;
	lm_batch_pos in = { 1, 1, 1 };
	tg_input(g, "x", LM_DT_FLOAT, 3, I64(5, 2, 4));
	transpose(g, "x", "t", 3, I64(1, 0, 2));
	node(g, "Relu", NAMES("t"), 1, "r");
	transpose(g, "r", "y", 3, I64(2, 1, 0));
	lm_graph_add_output(g, lm_graph_find(g, "y"));
	CHECK_EQ_I64(ready(g, &e), 0);
	CHECK_EQ_I64(lm_batch_find(g, 2, &in, &b, &e), 0);
	CHECK_EQ_I64(b.stop, -1);
	CHECK_POS(g, &b, "t", 0, 1, 1);
	CHECK_POS(g, &b, "r", 0, 1, 1);
	CHECK_POS(g, &b, "y", 2, 1, 1);
	lm_batch_clear(&b);
	lm_graph_free(g);
}

/* The heads of attention: [b, s, h*d] -> [b, s, h, d] -> [b, h, s, d] ->
 * [b*h, s, d] (merged, heads inside) -> back to [b, s, h*d]; and a
 * Flatten folding a sample into the batch axis. */
TEST(reshape_keeps_merges_and_splits_the_batch)
{
	lm_graph *g = graph();
	lm_batch b;
	lm_error e;
	tg_input(g, "x", LM_DT_FLOAT, 3, I64(2, 3, 8));
	reshape(g, "x", "heads", 4, I64(2, 3, 2, 4));
	transpose(g, "heads", "bhsd", 4, I64(0, 2, 1, 3));
	reshape(g, "bhsd", "merged", 3, I64(4, 3, 4));
	reshape(g, "merged", "split", 4, I64(2, 2, 3, 4));
	transpose(g, "split", "bshd", 4, I64(0, 2, 1, 3));
	reshape(g, "bshd", "y", 3, I64(2, 3, 8));
	tg_node(g, "flat", "Flatten", NAMES("heads"), 1, NAMES("flat"), 1);
	lm_graph_add_output(g, lm_graph_find(g, "y"));
	lm_graph_add_output(g, lm_graph_find(g, "flat"));
	CHECK_EQ_I64(ready(g, &e), 0);
	CHECK_EQ_I64(lm_batch_find(g, 2, &AXIS0, &b, &e), 0);
	CHECK_EQ_I64(b.stop, -1);
	CHECK_POS(g, &b, "heads", 0, 1, 1);
	CHECK_POS(g, &b, "bhsd", 0, 1, 1);
	CHECK_POS(g, &b, "merged", 0, 1, 2); /* [batch*heads, s, d] */
	CHECK_POS(g, &b, "split", 0, 1, 1);
	CHECK_POS(g, &b, "y", 0, 1, 1);
	CHECK_POS(g, &b, "flat", 0, 1, 1);
	lm_batch_clear(&b);
	lm_graph_free(g);
}

/* [2, 6] -> [3, 4]: rows of the output hold parts of two samples. */
TEST(reshape_across_samples_stops)
{
	lm_graph *g = graph();
	lm_batch b;
	lm_error e;
	tg_input(g, "x", LM_DT_FLOAT, 2, I64(2, 6));
	reshape(g, "x", "y", 2, I64(3, 4));
	lm_graph_add_output(g, lm_graph_find(g, "y"));
	CHECK_EQ_I64(ready(g, &e), 0);
	CHECK_EQ_I64(lm_batch_find(g, 2, &AXIS0, &b, &e), 0);
	CHECK_EQ_I64(b.stop, 0);
	CHECK(strstr(b.why, "node 'y' (Reshape)") != NULL);
	CHECK(strstr(b.why, "across samples") != NULL);
	CHECK_POS(g, &b, "y", -1, 0, 0);
	lm_batch_clear(&b);
	lm_graph_free(g);
}

/* Weights, shapes and a broadcast bias hold no batch; a constant as long
 * as the batch along its axis is a batch written into the model. */
TEST(tensors_without_the_batch)
{
	lm_graph *g = graph();
	lm_batch b;
	lm_error e;
	tg_input(g, "x", LM_DT_FLOAT, 3, I64(2, 3, 4));
	tg_init(g, "w", LM_DT_FLOAT, 2, I64(4, 5), NULL);
	tg_init(g, "bias", LM_DT_FLOAT, 2, I64(1, 5), NULL);
	tg_init(g, "per_sample", LM_DT_FLOAT, 3, I64(2, 1, 5), NULL);
	node(g, "MatMul", NAMES("x", "w"), 2, "mm");
	node(g, "Add", NAMES("mm", "bias"), 2, "biased");
	node(g, "Shape", NAMES("x"), 1, "shape");
	node(g, "Add", NAMES("biased", "per_sample"), 2, "y");
	lm_graph_add_output(g, lm_graph_find(g, "y"));
	lm_graph_add_output(g, lm_graph_find(g, "shape"));
	CHECK_EQ_I64(ready(g, &e), 0);
	CHECK_EQ_I64(lm_batch_find(g, 2, &AXIS0, &b, &e), 0);
	CHECK_POS(g, &b, "w", -1, 0, 0);
	CHECK_POS(g, &b, "shape", -1, 0, 0);
	CHECK_POS(g, &b, "mm", 0, 1, 1);
	CHECK_POS(g, &b, "biased", 0, 1, 1);
	CHECK_POS(g, &b, "y", -1, 0, 0);
	CHECK_EQ_I64(b.stop, 3);
	CHECK(strstr(b.why, "'per_sample'") != NULL);
	lm_batch_clear(&b);
	lm_graph_free(g);
}

/* Conv + Add + Relu fused into one Conv that adds its third input: the
 * sum holds the batch as the output does, and the weights do not. */
TEST(fused_conv_sum_keeps_the_batch)
{
	lm_graph *g = graph();
	lm_batch b;
	lm_error e;
	tg_input(g, "x", LM_DT_FLOAT, 4, I64(2, 4, 5, 5));
	tg_init(g, "w", LM_DT_FLOAT, 4, I64(4, 4, 1, 1), NULL);
	node(g, "Conv", NAMES("x", "w"), 2, "conv");
	node(g, "Add", NAMES("conv", "x"), 2, "sum");
	node(g, "Relu", NAMES("sum"), 1, "y");
	lm_graph_add_output(g, lm_graph_find(g, "y"));
	CHECK_EQ_I64(ready(g, &e), 0);
	CHECK(lm_fuse(g, &e) == 2);
	CHECK_EQ_I64(g->n_nodes, 1);
	CHECK_EQ_I64(g->nodes[0].n_inputs, 3);
	CHECK_EQ_I64(lm_batch_find(g, 2, &AXIS0, &b, &e), 0);
	CHECK_EQ_I64(b.stop, -1);
	CHECK_POS(g, &b, "y", 0, 1, 1);
	lm_batch_clear(&b);
	lm_graph_free(g);
}

/* Concat of two batches along the batch axis: [x0; x1] then [y0; y1] is
 * every sample twice, the batch inside; along another axis it stays. */
TEST(concat_along_the_batch)
{
	lm_graph *g = graph();
	lm_batch b;
	lm_error e;
	lm_batch_pos in[2] = { { 0, 1, 1 }, { 0, 1, 1 } };
	tg_input(g, "x", LM_DT_FLOAT, 2, I64(3, 4));
	tg_input(g, "y", LM_DT_FLOAT, 2, I64(3, 4));
	tg_init(g, "c", LM_DT_FLOAT, 2, I64(1, 4), NULL);
	lm_node *n = tg_node(g, "both", "Concat", NAMES("x", "y"), 2,
			     NAMES("both"), 1);
	tg_attr_i(n, "axis", 0);
	n = tg_node(g, "wide", "Concat", NAMES("x", "y"), 2, NAMES("wide"), 1);
	tg_attr_i(n, "axis", 1);
	n = tg_node(g, "more", "Concat", NAMES("x", "c"), 2, NAMES("more"), 1);
	tg_attr_i(n, "axis", 0);
	lm_graph_add_output(g, lm_graph_find(g, "both"));
	lm_graph_add_output(g, lm_graph_find(g, "wide"));
	lm_graph_add_output(g, lm_graph_find(g, "more"));
	CHECK_EQ_I64(ready(g, &e), 0);
	CHECK_EQ_I64(lm_batch_find(g, 3, in, &b, &e), 0);
	CHECK_POS(g, &b, "both", 0, 2, 1);
	CHECK_POS(g, &b, "wide", 0, 1, 1);
	CHECK_POS(g, &b, "more", -1, 0, 0);
	CHECK_EQ_I64(b.stop, 2);
	CHECK(strstr(b.why, "without the batch") != NULL);
	lm_batch_clear(&b);
	lm_graph_free(g);
}

/* Attention over what is taken as the batch mixes it: a sequence-first
 * input read as if its batch were axis 0. */
TEST(matmul_over_the_batch_mixes_samples)
{
	lm_graph *g = graph();
	lm_batch b;
	lm_error e;
	tg_input(g, "x", LM_DT_FLOAT, 3, I64(5, 1, 4));
	transpose(g, "x", "q", 3, I64(1, 0, 2));   /* [1, 5, 4] */
	transpose(g, "q", "kt", 3, I64(0, 2, 1));  /* [1, 4, 5] */
	node(g, "MatMul", NAMES("q", "kt"), 2, "scores");
	lm_graph_add_output(g, lm_graph_find(g, "scores"));
	CHECK_EQ_I64(ready(g, &e), 0);
	CHECK_EQ_I64(lm_batch_find(g, 5, &AXIS0, &b, &e), 0);
	CHECK_EQ_I64(b.stop, 2);
	CHECK(strstr(b.why, "mixes samples") != NULL);
	lm_batch_clear(&b);
	/* its real batch, axis 1, stays apart: the guess finds it */
	CHECK_EQ_I64(lm_batch_guess(g, &b, &e), 0);
	CHECK_EQ_I64(b.stop, -1);
	CHECK_EQ_I64(b.size, 1);
	CHECK_POS(g, &b, "x", 1, 1, 1);
	CHECK_POS(g, &b, "scores", 0, 1, 1);
	lm_batch_clear(&b);
	lm_graph_free(g);
}

/* At batch 1, [4, 1, 8] -> [4, 8] holds the batch inside axis 0 (after
 * the 4) or outside axis 1 (before the 8): the MatMul over axis 1 that
 * follows settles it on axis 0, and the Reshape back puts it on axis 1. */
TEST(a_batch_of_one_is_placed_by_what_follows)
{
	lm_graph *g = graph();
	lm_batch b;
	lm_error e;
	lm_batch_pos in = { 1, 1, 1 };
	tg_input(g, "x", LM_DT_FLOAT, 3, I64(4, 1, 8));
	tg_init(g, "w", LM_DT_FLOAT, 2, I64(8, 8), NULL);
	reshape(g, "x", "rows", 2, I64(4, 8));
	node(g, "MatMul", NAMES("rows", "w"), 2, "mm");
	reshape(g, "mm", "y", 3, I64(4, 1, 8));
	lm_graph_add_output(g, lm_graph_find(g, "y"));
	CHECK_EQ_I64(ready(g, &e), 0);
	CHECK_EQ_I64(lm_batch_find(g, 1, &in, &b, &e), 0);
	CHECK_EQ_I64(b.stop, -1);
	CHECK_POS(g, &b, "rows", 0, 4, 1);
	CHECK_POS(g, &b, "mm", 0, 4, 1);
	CHECK_POS(g, &b, "y", 1, 1, 1);
	lm_batch_clear(&b);
	lm_graph_free(g);
}

/* A Reshape to [1, -1] exported at batch 1 holds the batch as a literal:
 * rewritten, the graph follows batch 4; a target two Reshapes read is
 * copied, not changed under the other. */
TEST(literal_batches_are_rewritten)
{
	lm_graph *g = graph();
	lm_batch b;
	lm_error e;
	int64_t t[4];
	tg_input(g, "x", LM_DT_FLOAT, 4, I64(1, 3, 2, 2));
	tg_init(g, "target", LM_DT_INT64, 1, I64(2), I64(1, -1));
	node(g, "Reshape", NAMES("x", "target"), 2, "y");
	tg_init(g, "w", LM_DT_FLOAT, 2, I64(12, 1), NULL);
	node(g, "Reshape", NAMES("w", "target"), 2, "wflat");
	lm_graph_add_output(g, lm_graph_find(g, "y"));
	lm_graph_add_output(g, lm_graph_find(g, "wflat"));
	CHECK_EQ_I64(ready(g, &e), 0);
	CHECK_EQ_I64(lm_batch_find(g, 1, &AXIS0, &b, &e), 0);
	CHECK_POS(g, &b, "y", 0, 1, 1);
	CHECK_POS(g, &b, "wflat", -1, 0, 0);
	CHECK_EQ_I64(b.stop, g->n_nodes); /* wflat holds no batch */
	CHECK_EQ_I64(lm_batch_literals(g, &b, &e), 1);
	lm_node *n = &g->nodes[0];
	CHECK(strcmp(g->values[n->inputs[1]].name, "target:batch") == 0);
	CHECK_EQ_I64(lm_value_read_ints(g, &g->values[n->inputs[1]], t, 4,
					&e), 2);
	CHECK_EQ_I64(t[0], -1);
	CHECK_EQ_I64(t[1], 12);
	CHECK_EQ_I64(lm_value_read_ints(g, &g->values[lm_graph_find(
						   g, "target")], t, 4, &e), 2);
	CHECK_EQ_I64(t[0], 1); /* the other reader's is as it was */
	g->values[lm_graph_find(g, "x")].dims[0] = 4;
	CHECK_EQ_I64(lm_graph_infer_shapes(g, &e), 0);
	lm_value *y = &g->values[lm_graph_find(g, "y")];
	CHECK_EQ_I64(y->dims[0], 4);
	CHECK_EQ_I64(y->dims[1], 12);
	lm_batch_clear(&b);
	lm_graph_free(g);
}

TEST(batch_dim_names)
{
	char buf[64], name[16];
	int64_t o, i;
	CHECK(!strcmp(lm_batch_dim_name("batch", 1, 1, buf, sizeof(buf)),
		      "batch"));
	CHECK(!strcmp(lm_batch_dim_name("N", 16, 4, buf, sizeof(buf)),
		      "16*N*4"));
	CHECK_EQ_I64(lm_batch_dim_parse("batch*4", name, sizeof(name), &o,
					&i), 0);
	CHECK(!strcmp(name, "batch") && o == 1 && i == 4);
	CHECK_EQ_I64(lm_batch_dim_parse("16*batch", name, sizeof(name), &o,
					&i), 0);
	CHECK(o == 16 && i == 1);
	CHECK_EQ_I64(lm_batch_dim_parse("2*b*3", name, sizeof(name), &o, &i),
		     0);
	CHECK(!strcmp(name, "b") && o == 2 && i == 3);
	const char *bad[] = { "", "4", "a*b", "batch*", "*batch", "batch*0",
			      "batch**2", "a_very_long_symbol_name" };
	for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++)
		CHECK_EQ_I64(lm_batch_dim_parse(bad[k], name, sizeof(name), &o,
						&i), -EINVAL);
}

int main(void)
{
	RUN(transpose_moves_the_batch);
	RUN(reshape_keeps_merges_and_splits_the_batch);
	RUN(reshape_across_samples_stops);
	RUN(tensors_without_the_batch);
	RUN(concat_along_the_batch);
	RUN(matmul_over_the_batch_mixes_samples);
	RUN(a_batch_of_one_is_placed_by_what_follows);
	RUN(literal_batches_are_rewritten);
	RUN(batch_dim_names);
	RUN(fused_conv_sum_keeps_the_batch);
	return harness_done();
}
