/*
 * testgraph.c: the graph-building helpers of testgraph.h, shared by the
 * unit tests that build graphs node by node.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "testgraph.h"

lm_graph *tg_graph(int64_t opset)
{
	lm_graph *g = lm_graph_create("test");
	if (g)
		g->opset = opset;
	return g;
}

int tg_input(lm_graph *g, const char *name, lm_dtype dt, int rank,
	     const int64_t *dims)
{
	int v = lm_graph_add_value(g, name, LM_VAL_INPUT, NULL);
	if (v < 0)
		return v;
	lm_value_set_shape(&g->values[v], dt, rank, dims);
	lm_graph_add_input(g, v);
	return v;
}

int tg_init(lm_graph *g, const char *name, lm_dtype dt, int rank,
	    const int64_t *dims, const void *vals)
{
	int v = lm_graph_add_value(g, name, LM_VAL_INITIALIZER, NULL);
	if (v < 0)
		return v;
	lm_value *x = &g->values[v];
	lm_value_set_shape(x, dt, rank, dims);
	x->nbytes = lm_value_bytes(x);
	x->data = calloc(1, x->nbytes ? x->nbytes : 1);
	if (!x->data)
		return -ENOMEM;
	if (vals)
		memcpy(x->data, vals, x->nbytes);
	return v;
}

lm_node *tg_node(lm_graph *g, const char *name, const char *op,
		 const char *const *in, int nin, const char *const *out,
		 int nout)
{
	int ni = lm_graph_add_node(g, name, op, "", in, nin, out, nout, NULL);
	return ni < 0 ? NULL : &g->nodes[ni];
}

void tg_attr_i(lm_node *n, const char *name, int64_t v)
{
	lm_attr *a = lm_node_add_attr(n, name, LM_ATTR_INT);
	if (a)
		a->i = v;
}

void tg_attr_f(lm_node *n, const char *name, float v)
{
	lm_attr *a = lm_node_add_attr(n, name, LM_ATTR_FLOAT);
	if (a)
		a->f = v;
}

void tg_attr_is(lm_node *n, const char *name, const int64_t *v, int cnt)
{
	lm_attr *a = lm_node_add_attr(n, name, LM_ATTR_INTS);
	if (!a)
		return;
	a->ints = malloc(sizeof(int64_t) * (size_t)(cnt ? cnt : 1));
	if (a->ints) {
		memcpy(a->ints, v, sizeof(int64_t) * (size_t)cnt);
		a->n = cnt;
	}
}

void tg_attr_s(lm_node *n, const char *name, const char *s)
{
	lm_attr *a = lm_node_add_attr(n, name, LM_ATTR_STRING);
	if (a)
		a->s = strdup(s);
}
