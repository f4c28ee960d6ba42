/*
 * shape.c: static shape inference over a whole graph, and FLOP counts.
 *
 * Shapes flow from the graph inputs (whose symbolic dims the caller has
 * fixed beforehand, say to a batch size) through the nodes in their
 * topological order, each node's outputs computed by its operator's infer
 * function from the table in ops/.  Operators the table does not know,
 * including every non-default domain, keep the shapes the model file
 * declares for their outputs, and are an error when it declares none.
 * Every later stage (cuts, memory plans, the executor) relies on the
 * result: after a successful run every node output has a known type and
 * fully known shape.
 */
#include "ops/ops.h"

#include <stdio.h>

/* Name the first unknown dim of v in buf: its symbolic name when the file
 * gave one, else its position. */
static const char *unknown_dim(const lm_value *v, char *buf, size_t len)
{
	if (v->rank < 0 || v->rank > LM_MAX_RANK) {
		snprintf(buf, len, "an unknown rank");
		return buf;
	}
	for (int i = 0; i < v->rank; i++) {
		if (v->dims[i] >= 0)
			continue;
		if (v->dim_param[i])
			snprintf(buf, len, "symbolic dim '%s' (axis %d)",
				 v->dim_param[i], i);
		else
			snprintf(buf, len, "an unknown dim on axis %d", i);
		return buf;
	}
	snprintf(buf, len, "a shape too large to represent");
	return buf;
}

static int check_outputs(lm_graph *g, const lm_node *n, int known_op,
			 lm_error *e)
{
	char why[128];

	for (int i = 0; i < n->n_outputs; i++) {
		lm_value *y = lm_node_out(g, n, i);
		if (!y)
			continue;
		if (lm_ops_numel(y->rank, y->dims) >= 0 &&
		    y->dtype != LM_DT_UNDEFINED)
			continue;
		if (!known_op)
			return lm_ops_fail(e, g, n, -EINVAL, "unknown operator "
					   "and the model declares no %s for "
					   "output '%s'",
					   lm_ops_numel(y->rank, y->dims) < 0
						   ? "shape" : "element type",
					   y->name);
		return lm_ops_fail(e, g, n, -EINVAL, "output '%s' has %s after "
				   "inference", y->name,
				   y->dtype == LM_DT_UNDEFINED
					   ? "no element type"
					   : unknown_dim(y, why, sizeof(why)));
	}
	return 0;
}

int lm_graph_infer_shapes(lm_graph *g, lm_error *e)
{
	char why[128];

	for (int i = 0; i < g->n_inputs; i++) {
		lm_value *v = &g->values[g->inputs[i]];
		if (lm_ops_numel(v->rank, v->dims) < 0)
			return lm_fail(e, -EINVAL, "graph input '%s' has %s; "
				       "fix its dims before inferring shapes",
				       v->name,
				       unknown_dim(v, why, sizeof(why)));
	}
	for (int ni = 0; ni < g->n_nodes; ni++) {
		lm_node *n = &g->nodes[ni];
		const lm_op *op = lm_op_find(n->domain, n->op_type);
		int rc;

		if (op && (rc = op->infer(g, n, e)))
			return rc;
		if ((rc = check_outputs(g, n, op != NULL, e)))
			return rc;
	}
	return 0;
}

double lm_node_flops(lm_graph *g, const lm_node *n)
{
	const lm_op *op = lm_op_find(n->domain, n->op_type);

	return op && op->flops ? op->flops(g, n) : 0;
}
