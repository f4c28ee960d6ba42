/*
 * testgraph.h: building small graphs by hand in unit tests.
 *
 *	lm_graph *g = tg_graph(17);
 *	tg_input(g, "x", LM_DT_FLOAT, 4, (int64_t[]){ 1, 3, 8, 8 });
 *	tg_init(g, "w", LM_DT_FLOAT, 4, wdims, weights);
 *	lm_node *n = tg_node(g, "conv", "Conv", ins, 2, outs, 1);
 *	tg_attr_is(n, "pads", pads, 4);
 *
 * Each returns the new value's index (negative on failure) or NULL; a test
 * checks the graph as a whole afterwards, so helpers do not stop on error.
 */
#ifndef LAMINA_TESTGRAPH_H
#define LAMINA_TESTGRAPH_H

#include <stdint.h>

#include "lamina/graph.h"

/** An empty graph at the given opset. */
lm_graph *tg_graph(int64_t opset);

/** A graph input of the given type and shape. */
int tg_input(lm_graph *g, const char *name, lm_dtype dt, int rank,
	     const int64_t *dims);

/** An initializer holding a copy of vals (zeros when vals is NULL). */
int tg_init(lm_graph *g, const char *name, lm_dtype dt, int rank,
	    const int64_t *dims, const void *vals);

/** A node reading in[0..nin) and writing out[0..nout). */
lm_node *tg_node(lm_graph *g, const char *name, const char *op,
		 const char *const *in, int nin, const char *const *out,
		 int nout);

void tg_attr_i(lm_node *n, const char *name, int64_t v);
void tg_attr_f(lm_node *n, const char *name, float v);
void tg_attr_is(lm_node *n, const char *name, const int64_t *v, int cnt);
void tg_attr_s(lm_node *n, const char *name, const char *s);

#endif
