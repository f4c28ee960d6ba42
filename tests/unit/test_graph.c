/*
 * test_graph.c: building, ordering, pruning and joining the graph IR
 * (graph.c).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "lamina/graph.h"
#include "lamina/runtime.h"
#include "testgraph.h"

static int input(lm_graph *g, const char *name)
{
	int v = lm_graph_add_value(g, name, LM_VAL_INPUT, NULL);
	int64_t dims[2] = { 1, 4 };
	if (v >= 0) {
		lm_value_set_shape(&g->values[v], LM_DT_FLOAT, 2, dims);
		lm_graph_add_input(g, v);
	}
	return v;
}

static int node(lm_graph *g, const char *name, const char *op,
		const char *in0, const char *in1, const char *out)
{
	const char *ins[2] = { in0, in1 };
	const char *outs[1] = { out };
	return lm_graph_add_node(g, name, op, "", ins, in1 ? 2 : 1, outs, 1,
				 NULL);
}

/* Pre-create outputs so nodes may be added out of order, as a file may
 * list them. */
static void declare(lm_graph *g, const char *name)
{
	lm_graph_add_value(g, name, LM_VAL_NODE, NULL);
}

TEST(sort_keeps_a_valid_order)
{
	lm_graph *g = lm_graph_create("g");
	input(g, "x");
	node(g, "a", "Relu", "x", NULL, "ya");
	node(g, "b", "Relu", "x", NULL, "yb");
	node(g, "c", "Add", "ya", "yb", "yc");
	lm_graph_add_output(g, lm_graph_find(g, "yc"));
	CHECK_EQ_I64(lm_graph_sort(g, NULL), 0);
	CHECK(!strcmp(g->nodes[0].name, "a"));
	CHECK(!strcmp(g->nodes[1].name, "b"));
	CHECK(!strcmp(g->nodes[2].name, "c"));
	CHECK_EQ_I64(g->values[lm_graph_find(g, "x")].n_consumers, 2);
	lm_graph_free(g);
}

TEST(sort_reorders_nodes_listed_out_of_order)
{
	lm_graph *g = lm_graph_create("g");
	input(g, "x");
	declare(g, "ya");
	declare(g, "yb");
	node(g, "b", "Relu", "ya", NULL, "yb");
	node(g, "c", "Relu", "yb", NULL, "yc");
	node(g, "a", "Relu", "x", NULL, "ya");
	lm_graph_add_output(g, lm_graph_find(g, "yc"));
	CHECK_EQ_I64(lm_graph_sort(g, NULL), 0);
	CHECK(!strcmp(g->nodes[0].name, "a"));
	CHECK(!strcmp(g->nodes[1].name, "b"));
	CHECK(!strcmp(g->nodes[2].name, "c"));
	CHECK_EQ_I64(g->values[lm_graph_find(g, "yb")].producer, 1);
	lm_graph_free(g);
}

TEST(sort_rejects_a_cycle_naming_a_node)
{
	lm_error e;
	lm_graph *g = lm_graph_create("g");
	input(g, "x");
	declare(g, "p");
	declare(g, "q");
	node(g, "n1", "Add", "x", "q", "p");
	node(g, "n2", "Relu", "p", NULL, "q");
	CHECK_EQ_I64(lm_graph_sort(g, &e), -ELOOP);
	CHECK(strstr(e.msg, "cycle") && strstr(e.msg, "'n1'"));
	lm_graph_free(g);
}

TEST(unknown_input_is_refused)
{
	lm_error e;
	lm_graph *g = lm_graph_create("g");
	input(g, "x");
	const char *ins[1] = { "ghost" }, *outs[1] = { "y" };
	CHECK_EQ_I64(lm_graph_add_node(g, "n", "Relu", "", ins, 1, outs, 1, &e),
		     -EINVAL);
	CHECK(strstr(e.msg, "'ghost'") != NULL);
	CHECK_EQ_I64(g->n_nodes, 0);
	lm_graph_free(g);
}

TEST(a_tensor_cannot_be_produced_twice)
{
	lm_graph *g = lm_graph_create("g");
	input(g, "x");
	CHECK(node(g, "a", "Relu", "x", NULL, "y") >= 0);
	CHECK_EQ_I64(node(g, "b", "Relu", "x", NULL, "y"), -EEXIST);
	CHECK_EQ_I64(lm_graph_add_value(g, "x", LM_VAL_INPUT, NULL), -EEXIST);
	lm_graph_free(g);
}

TEST(remove_nodes_drops_dead_values_and_reindexes)
{
	lm_graph *g = lm_graph_create("g");
	input(g, "x");
	int c = lm_graph_add_value(g, "w", LM_VAL_CONSTANT, NULL);
	g->values[c].data = calloc(1, 16);
	g->values[c].nbytes = 16;
	node(g, "a", "Mul", "x", "w", "ya");
	node(g, "b", "Relu", "x", NULL, "yb");
	lm_graph_add_output(g, lm_graph_find(g, "yb"));
	CHECK_EQ_I64(lm_graph_sort(g, NULL), 0);
	uint8_t dead[2] = { 1, 0 };
	CHECK_EQ_I64(lm_graph_remove_nodes(g, dead, NULL), 0);
	CHECK_EQ_I64(g->n_nodes, 1);
	CHECK_EQ_I64(lm_graph_find(g, "w"), -1);
	CHECK_EQ_I64(lm_graph_find(g, "ya"), -1);
	int yb = lm_graph_find(g, "yb");
	CHECK(yb >= 0 && g->values[yb].producer == 0);
	CHECK_EQ_I64(g->outputs[0], yb);
	CHECK_EQ_I64(g->nodes[0].inputs[0], lm_graph_find(g, "x"));
	lm_graph_free(g);
}

TEST(value_data_comes_from_the_loader_once)
{
	lm_graph *g = lm_graph_create("g");
	int v = lm_graph_add_value(g, "w", LM_VAL_INITIALIZER, NULL);
	int64_t dims[1] = { 3 };
	lm_value_set_shape(&g->values[v], LM_DT_INT64, 1, dims);
	g->values[v].nbytes = 24;
	CHECK(lm_graph_value_data(g, &g->values[v], NULL) == NULL);
	g->values[v].data = calloc(3, 8);
	((int64_t *)g->values[v].data)[2] = 7;
	int64_t got[3];
	CHECK_EQ_I64(lm_value_read_ints(g, &g->values[v], got, 3, NULL), 3);
	CHECK_EQ_I64(got[2], 7);
	CHECK_EQ_I64(lm_value_read_ints(g, &g->values[v], got, 2, NULL),
		     -EINVAL);
	lm_graph_free(g);
}

/* Two "slices" of y = (x + 1) * 2 + x: the second reads y and, across the
 * cut, x.  Shapes are set as lm_onnx_prepare would leave them. */
static lm_graph *slice_a(void)
{
	lm_graph *g = tg_graph(17);
	float one[4] = { 1, 1, 1, 1 };
	tg_input(g, "x", LM_DT_FLOAT, 2, (int64_t[]){ 1, 4 });
	tg_init(g, "w1", LM_DT_FLOAT, 1, (int64_t[]){ 4 }, one);
	tg_node(g, "a", "Add", (const char *[]){ "x", "w1" }, 2,
		(const char *[]){ "y" }, 1);
	lm_graph_infer_shapes(g, NULL);
	lm_graph_add_output(g, lm_graph_find(g, "y"));
	return g;
}

static lm_graph *slice_b(int64_t width)
{
	lm_graph *g = tg_graph(17);
	float two[4] = { 2, 2, 2, 2 };
	tg_input(g, "y", LM_DT_FLOAT, 2, (int64_t[]){ 1, width });
	tg_input(g, "x", LM_DT_FLOAT, 2, (int64_t[]){ 1, 4 });
	tg_init(g, "w2", LM_DT_FLOAT, 1, (int64_t[]){ 4 }, two);
	lm_node *n = tg_node(g, "b", "Mul", (const char *[]){ "y", "w2" }, 2,
			     (const char *[]){ "z" }, 1);
	tg_attr_s(n, "note", "kept");
	tg_node(g, "c", "Add", (const char *[]){ "z", "x" }, 2,
		(const char *[]){ "out" }, 1);
	lm_graph_infer_shapes(g, NULL);
	return g;
}

TEST(absorb_joins_slices_by_tensor_name)
{
	lm_graph *dst = lm_graph_create("stage"), *a = slice_a(),
		 *b = slice_b(4);
	lm_error e;
	CHECK_EQ_I64(lm_graph_absorb(dst, a, &e), 0);
	CHECK_EQ_I64(lm_graph_absorb(dst, b, &e), 0);
	/* one input: x, read by both; y joins a's output to b's input */
	CHECK_EQ_I64(dst->n_inputs, 1);
	CHECK(!strcmp(dst->values[dst->inputs[0]].name, "x"));
	CHECK_EQ_I64(dst->n_nodes, 3);
	int y = lm_graph_find(dst, "y");
	CHECK_EQ_I64(dst->values[y].producer, 0);
	CHECK_EQ_I64(dst->nodes[1].inputs[0], y);
	CHECK_EQ_I64(dst->values[y].n_consumers, 1);
	CHECK_EQ_I64(dst->values[lm_graph_find(dst, "x")].n_consumers, 2);
	/* constants and attributes moved, not copied */
	CHECK(a->values[lm_graph_find(a, "w1")].data == NULL);
	CHECK(!strcmp(lm_attr_str(&dst->nodes[1], "note", ""), "kept"));
	CHECK_EQ_I64(b->nodes[0].n_attrs, 0);
	CHECK_EQ_I64(dst->opset, 17);
	lm_graph_free(a);
	lm_graph_free(b);

	/* it runs as one session: (x + 1) * 2 + x */
	lm_graph_add_output(dst, lm_graph_find(dst, "out"));
	lm_session *s = NULL;
	float xs[4] = { 1, 2, 3, -4 }, ys[4] = { 0 };
	lm_tensor in = { 0 }, out = { 0 };
	lm_tensor_set_shape(&in, LM_DT_FLOAT, 2, (int64_t[]){ 1, 4 });
	lm_tensor_set_shape(&out, LM_DT_FLOAT, 2, (int64_t[]){ 1, 4 });
	in.data = xs;
	in.nbytes = out.nbytes = sizeof(xs);
	out.data = ys;
	CHECK_EQ_I64(lm_session_create(dst, NULL, &s, &e), 0);
	if (s) {
		CHECK_EQ_I64(lm_session_run(s, &in, 1, &out, 1, &e), 0);
		for (int i = 0; i < 4; i++)
			CHECK(ys[i] == (xs[i] + 1) * 2 + xs[i]);
	}
	lm_session_free(s);
	lm_graph_free(dst);
}

TEST(absorb_refuses_a_tensor_made_twice_or_of_another_shape)
{
	lm_graph *dst = lm_graph_create("stage"), *a = slice_a(),
		 *again = slice_a(), *wide = slice_b(5);
	lm_error e;
	CHECK_EQ_I64(lm_graph_absorb(dst, a, &e), 0);
	CHECK_EQ_I64(lm_graph_absorb(dst, again, &e), -EEXIST);
	CHECK(strstr(e.msg, "'y'") && strstr(e.msg, "already defined"));
	lm_graph *dst2 = lm_graph_create("stage"), *a2 = slice_a();
	CHECK_EQ_I64(lm_graph_absorb(dst2, a2, &e), 0);
	CHECK_EQ_I64(lm_graph_absorb(dst2, wide, &e), -EINVAL);
	CHECK(strstr(e.msg, "'y'") && strstr(e.msg, "shape"));
	lm_graph_free(a);
	lm_graph_free(again);
	lm_graph_free(wide);
	lm_graph_free(a2);
	lm_graph_free(dst);
	lm_graph_free(dst2);
}

int main(void)
{
	RUN(sort_keeps_a_valid_order);
	RUN(sort_reorders_nodes_listed_out_of_order);
	RUN(sort_rejects_a_cycle_naming_a_node);
	RUN(unknown_input_is_refused);
	RUN(a_tensor_cannot_be_produced_twice);
	RUN(remove_nodes_drops_dead_values_and_reindexes);
	RUN(value_data_comes_from_the_loader_once);
	RUN(absorb_joins_slices_by_tensor_name);
	RUN(absorb_refuses_a_tensor_made_twice_or_of_another_shape);
	return harness_done();
}
