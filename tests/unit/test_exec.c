/*
 * test_exec.c: sessions (runtime/exec.c, fuse.c): fusion keeps results,
 * shrinks the graph, aliasing and in-place runs keep results, the arena is
 * smaller than the tensors it holds, runs allocate nothing, bad inputs
 * are refused by name, and running the first nodes sample by sample gives
 * what the whole batch does.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "lamina/runtime.h"

static void constant(lm_graph *g, const char *name, int rank,
		     const int64_t *dims, unsigned seed, float scale)
{
	int v = lm_graph_add_value(g, name, LM_VAL_INITIALIZER, NULL);
	lm_value_set_shape(&g->values[v], LM_DT_FLOAT, rank, dims);
	size_t n = (size_t)lm_shape_numel(rank, dims);
	float *d = malloc(n * sizeof(float));
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		d[i] = scale * ((float)(seed >> 8 & 0xffff) / 32768.0f - 1.0f);
	}
	g->values[v].data = d;
	g->values[v].nbytes = n * sizeof(float);
}

static void node(lm_graph *g, const char *name, const char *op,
		 const char *const *in, int n_in, const char *out)
{
	lm_graph_add_node(g, name, op, "", in, n_in, &out, 1, NULL);
}

static void pads1(lm_graph *g)
{
	lm_attr *a = lm_node_add_attr(&g->nodes[g->n_nodes - 1], "pads",
				      LM_ATTR_INTS);
	a->n = 4;
	a->ints = calloc(4, sizeof(int64_t));
	for (int i = 0; i < 4; i++)
		a->ints[i] = 1;
}

/* x -> Conv -> BN -> Relu -> Conv -> Add(x) -> Relu -> Reshape -> Sigmoid */

/* g with output "y", sorted and its shapes inferred; NULL (g freed) when
 * either fails. */
static lm_graph *finish(lm_graph *g)
{
	lm_graph_add_output(g, lm_graph_find(g, "y"));
	if (lm_graph_sort(g, NULL) || lm_graph_infer_shapes(g, NULL)) {
		lm_graph_free(g);
		return NULL;
	}
	return g;
}
static lm_graph *residual_block(void)
{
	lm_graph *g = lm_graph_create("block");
	int64_t xd[4] = { 1, 8, 6, 6 }, wd[4] = { 8, 8, 3, 3 }, cd[1] = { 8 };
	int64_t sd[1] = { 2 };
	int x = lm_graph_add_value(g, "x", LM_VAL_INPUT, NULL);
	lm_value_set_shape(&g->values[x], LM_DT_FLOAT, 4, xd);
	lm_graph_add_input(g, x);
	constant(g, "w1", 4, wd, 1, 0.2f);
	constant(g, "w2", 4, wd, 2, 0.2f);
	constant(g, "b2", 1, cd, 3, 0.1f);
	constant(g, "gamma", 1, cd, 4, 1.0f);
	constant(g, "beta", 1, cd, 5, 0.5f);
	constant(g, "mean", 1, cd, 6, 0.3f);
	constant(g, "var", 1, cd, 7, 0.2f);
	for (int i = 0; i < 8; i++)
		((float *)g->values[lm_graph_find(g, "var")].data)[i] += 0.5f;
	int s = lm_graph_add_value(g, "shape", LM_VAL_INITIALIZER, NULL);
	lm_value_set_shape(&g->values[s], LM_DT_INT64, 1, sd);
	int64_t *sv = malloc(16);
	sv[0] = 1;
	sv[1] = -1;
	g->values[s].data = sv;
	g->values[s].nbytes = 16;

	const char *c1[] = { "x", "w1" }, *bn[] = { "c1", "gamma", "beta",
						     "mean", "var" };
	const char *r1[] = { "bn" }, *c2[] = { "r1", "w2", "b2" };
	const char *add[] = { "c2", "x" }, *r2[] = { "sum" };
	const char *rs[] = { "r2", "shape" }, *sg[] = { "flat" };
	node(g, "conv1", "Conv", c1, 2, "c1");
	pads1(g);
	node(g, "bn", "BatchNormalization", bn, 5, "bn");
	node(g, "relu1", "Relu", r1, 1, "r1");
	node(g, "conv2", "Conv", c2, 3, "c2");
	pads1(g);
	node(g, "add", "Add", add, 2, "sum");
	node(g, "relu2", "Relu", r2, 1, "r2");
	node(g, "reshape", "Reshape", rs, 2, "flat");
	node(g, "sigmoid", "Sigmoid", sg, 1, "y");
	return finish(g);
}

static float *run(lm_graph *g, int no_fuse, size_t *arena, int *nodes)
{
	lm_session_options o = { .no_fuse = no_fuse };
	lm_session *s;
	lm_error e;
	lm_tensor x, y;
	int64_t xd[4] = { 1, 8, 6, 6 }, yd[2] = { 1, 288 };
	if (lm_session_create(g, &o, &s, &e)) {
		printf("# %s\n", e.msg);
		return NULL;
	}
	lm_tensor_alloc(&x, LM_DT_FLOAT, 4, xd);
	lm_tensor_alloc(&y, LM_DT_FLOAT, 2, yd);
	for (int i = 0; i < 288; i++)
		((float *)x.data)[i] = sinf((float)i);
	int rc = lm_session_run(s, &x, 1, &y, 1, &e);
	*arena = lm_session_arena_bytes(s);
	*nodes = g->n_nodes;
	lm_session_free(s);
	lm_tensor_free(&x);
	if (rc) {
		lm_tensor_free(&y);
		return NULL;
	}
	return y.data;
}

TEST(fusion_keeps_results_and_shrinks_the_graph)
{
	lm_graph *a = residual_block(), *b = residual_block();
	size_t arena_a, arena_b;
	int nodes_a, nodes_b;
	CHECK(a && b);
	float *ya = run(a, 1, &arena_a, &nodes_a);
	float *yb = run(b, 0, &arena_b, &nodes_b);
	CHECK(ya && yb);
	CHECK_EQ_I64(nodes_a, 8);
	/* Conv+BN+Relu, Conv+Add+Relu, Reshape, Sigmoid */
	CHECK_EQ_I64(nodes_b, 4);
	double worst = 0;
	for (int i = 0; i < 288; i++)
		worst = fmax(worst, fabs(ya[i] - yb[i]));
	CHECK(worst < 1e-5);
	CHECK(arena_b <= arena_a);
	free(ya);
	free(yb);
	lm_graph_free(a);
	lm_graph_free(b);
}

TEST(wrong_inputs_are_refused_by_name)
{
	lm_graph *g = residual_block();
	lm_session *s;
	lm_error e;
	lm_tensor x, y;
	int64_t xd[4] = { 1, 8, 6, 5 }, yd[2] = { 1, 288 };
	CHECK(g && lm_session_create(g, NULL, &s, &e) == 0);
	lm_tensor_alloc(&x, LM_DT_FLOAT, 4, xd);
	lm_tensor_alloc(&y, LM_DT_FLOAT, 2, yd);
	CHECK(lm_session_run(s, &x, 1, &y, 1, &e) < 0);
	CHECK(strstr(e.msg, "input 'x'") && strstr(e.msg, "1x8x6x6"));
	CHECK(lm_session_run(s, &x, 0, &y, 1, &e) < 0);
	lm_tensor_free(&x);
	lm_tensor_free(&y);
	lm_session_free(s);
	lm_graph_free(g);
}

TEST(unknown_operator_is_refused_at_creation)
{
	lm_graph *g = lm_graph_create("g");
	int64_t d[2] = { 1, 4 };
	int x = lm_graph_add_value(g, "x", LM_VAL_INPUT, NULL);
	lm_value_set_shape(&g->values[x], LM_DT_FLOAT, 2, d);
	lm_graph_add_input(g, x);
	const char *in[] = { "x" }, *out = "y";
	lm_graph_add_node(g, "weird", "Mystery", "com.example", in, 1, &out,
			  1, NULL);
	lm_value_set_shape(&g->values[lm_graph_find(g, "y")], LM_DT_FLOAT, 2,
			   d);
	lm_graph_add_output(g, lm_graph_find(g, "y"));
	lm_session *s;
	lm_error e;
	CHECK(lm_graph_sort(g, NULL) == 0);
	CHECK(lm_session_create(g, NULL, &s, &e) < 0);
	CHECK(strstr(e.msg, "'weird'") && strstr(e.msg, "Mystery"));
	lm_graph_free(g);
}

TEST(elementwise_chain_runs_in_place_in_one_buffer)
{
	/* x -> Relu -> Sigmoid -> Tanh -> ... : the first op reads the
	 * caller's input, every later one can write over its input, so the
	 * whole chain needs one 1x8x6x6 buffer (the output is the caller's) */
	static const char *ops[] = { "Relu", "Sigmoid", "Tanh", "Abs",
				     "Sigmoid", "Neg", "Relu", "Exp" };
	lm_graph *g = lm_graph_create("chain");
	int64_t d[4] = { 1, 8, 6, 6 };
	int x = lm_graph_add_value(g, "t0", LM_VAL_INPUT, NULL);
	lm_value_set_shape(&g->values[x], LM_DT_FLOAT, 4, d);
	lm_graph_add_input(g, x);
	for (int i = 0; i < 8; i++) {
		char in[8], out[8];
		const char *pin = in;
		snprintf(in, sizeof(in), "t%d", i);
		snprintf(out, sizeof(out), "t%d", i + 1);
		node(g, out, ops[i], &pin, 1, out);
	}
	lm_graph_add_output(g, lm_graph_find(g, "t8"));
	CHECK(lm_graph_sort(g, NULL) == 0 &&
	      lm_graph_infer_shapes(g, NULL) == 0);
	lm_session *s;
	lm_error e;
	CHECK(lm_session_create(g, NULL, &s, &e) == 0);
	CHECK_EQ_I64(lm_session_arena_bytes(s), 288 * 4);
	lm_tensor a, b;
	lm_tensor_alloc(&a, LM_DT_FLOAT, 4, d);
	lm_tensor_alloc(&b, LM_DT_FLOAT, 4, d);
	((float *)a.data)[5] = 2.0f;
	CHECK(lm_session_run(s, &a, 1, &b, 1, &e) == 0);
	/* exp(relu(-sigmoid(|tanh(sigmoid(relu(2)))|))) = exp(0) = 1 */
	CHECK(fabsf(((float *)b.data)[5] - 1.0f) < 1e-6f);
	CHECK(((float *)a.data)[5] == 2.0f); /* the input is untouched */
	lm_tensor_free(&a);
	lm_tensor_free(&b);
	lm_session_free(s);
	lm_graph_free(g);
}

static void ints_attr(lm_graph *g, const char *name, int64_t v, int n)
{
	lm_attr *a = lm_node_add_attr(&g->nodes[g->n_nodes - 1], name,
				      LM_ATTR_INTS);
	a->n = n;
	a->ints = calloc((size_t)n, sizeof(int64_t));
	for (int i = 0; i < n; i++)
		a->ints[i] = v;
}

/*
 * At batch 3:  x -> Conv 3x3 -> Relu (r1) -> Conv 1x1 + x -> Relu ->
 * MaxPool -> Add(MaxPool(r1)) -> Sigmoid.  Run with the first 1 to 6
 * nodes sample by sample, r1 and x are read on both sides of the cut and
 * the chain before it runs in place.
 */
static lm_graph *split_block(void)
{
	lm_graph *g = lm_graph_create("split");
	int64_t xd[4] = { 3, 8, 7, 7 }, w1[4] = { 8, 8, 3, 3 };
	int64_t w2[4] = { 8, 8, 1, 1 }, bd[1] = { 8 };
	int x = lm_graph_add_value(g, "x", LM_VAL_INPUT, NULL);
	lm_value_set_shape(&g->values[x], LM_DT_FLOAT, 4, xd);
	lm_graph_add_input(g, x);
	constant(g, "w1", 4, w1, 11, 0.3f);
	constant(g, "b1", 1, bd, 12, 0.1f);
	constant(g, "w2", 4, w2, 13, 0.3f);
	const char *c1[] = { "x", "w1", "b1" }, *r1[] = { "c1" };
	const char *c2[] = { "r1", "w2" }, *ad[] = { "c2", "x" };
	const char *r2[] = { "s" }, *p1[] = { "r2" }, *p2[] = { "r1" };
	const char *a2[] = { "p1", "p2" }, *sg[] = { "a2" };
	node(g, "conv1", "Conv", c1, 3, "c1");
	pads1(g);
	node(g, "relu1", "Relu", r1, 1, "r1");
	node(g, "conv2", "Conv", c2, 2, "c2");
	node(g, "add", "Add", ad, 2, "s");
	node(g, "relu2", "Relu", r2, 1, "r2");
	node(g, "pool1", "MaxPool", p1, 1, "p1");
	ints_attr(g, "kernel_shape", 2, 2);
	ints_attr(g, "strides", 2, 2);
	node(g, "pool2", "MaxPool", p2, 1, "p2");
	ints_attr(g, "kernel_shape", 3, 2);
	ints_attr(g, "strides", 2, 2);
	node(g, "add2", "Add", a2, 2, "a2");
	node(g, "sigmoid", "Sigmoid", sg, 1, "y");
	return finish(g);
}

static int split_run(int split, int no_fuse, float *y)
{
	lm_graph *g = split_block();
	lm_session_options o = { .no_fuse = no_fuse, .split_nodes = split };
	lm_session *s = NULL;
	lm_error e;
	lm_tensor x, out;
	int64_t xd[4] = { 3, 8, 7, 7 }, yd[4] = { 3, 8, 3, 3 };
	int rc = -1;
	if (!g || lm_session_create(g, &o, &s, &e)) {
		lm_graph_free(g);
		return -1;
	}
	lm_tensor_alloc(&x, LM_DT_FLOAT, 4, xd);
	lm_tensor_alloc(&out, LM_DT_FLOAT, 4, yd);
	for (int i = 0; i < 3 * 8 * 49; i++)
		((float *)x.data)[i] = sinf(0.37f * (float)i);
	if (lm_session_run(s, &x, 1, &out, 1, &e) == 0) {
		memcpy(y, out.data, 3 * 8 * 9 * sizeof(float));
		rc = 0;
	}
	/* a second run gives the same: nothing of one sample's pass is
	 * left for the next to trip over */
	if (rc == 0 && lm_session_run(s, &x, 1, &out, 1, &e) == 0 &&
	    memcmp(y, out.data, 3 * 8 * 9 * sizeof(float)))
		rc = -1;
	lm_tensor_free(&x);
	lm_tensor_free(&out);
	lm_session_free(s);
	lm_graph_free(g);
	return rc;
}

TEST(sample_by_sample_prefix_keeps_results)
{
	float whole[216], part[216];
	for (int no_fuse = 0; no_fuse < 2; no_fuse++) {
		CHECK(split_run(-1, no_fuse, whole) == 0);
		/* every cut, up to the whole graph */
		for (int cut = 1; cut <= 9; cut++) {
			CHECK(split_run(cut, no_fuse, part) == 0);
			double worst = 0;
			for (int i = 0; i < 216; i++)
				worst = fmax(worst, fabs(part[i] - whole[i]));
			if (worst >= 1e-6)
				printf("# cut %d no_fuse %d: off by %g\n", cut,
				       no_fuse, worst);
			CHECK(worst < 1e-6);
		}
	}
}

int main(void)
{
	RUN(fusion_keeps_results_and_shrinks_the_graph);
	RUN(elementwise_chain_runs_in_place_in_one_buffer);
	RUN(wrong_inputs_are_refused_by_name);
	RUN(unknown_operator_is_refused_at_creation);
	RUN(sample_by_sample_prefix_keeps_results);
	return harness_done();
}
