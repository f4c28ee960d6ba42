/*
 * fold.c: constant folding of the small subgraphs exporters emit to compute
 * shapes at run time (Shape -> Gather -> Unsqueeze -> Concat -> Reshape and
 * the like), so that the slicer sees plain layers with constant shapes.
 *
 * One walk in topological order.  Every node of a known operator gets its
 * shapes inferred on the way, so that a Shape reading the output of, say, a
 * Conv can be folded.  A node is folded when its operator can evaluate it,
 * its inputs are constants (for Shape and Size: its input's shape is
 * known) and every result is small; its outputs then become constants and
 * the node goes.  Constant nodes are always folded, whatever their size:
 * they are data already.  Larger results, such as a transposed weight, stay
 * as nodes so the model does not grow.
 */
#include "ops/ops.h"

#include <stdlib.h>
#include <string.h>

static int is_op(const lm_op *op, const char *name)
{
	return strcmp(op->name, name) == 0;
}

/* May this node be evaluated now (before the size check)? */
static int foldable(lm_graph *g, const lm_node *n, const lm_op *op)
{
	int present = 0, all_const = 1;

	if (!op->fold)
		return 0;
	for (int i = 0; i < n->n_inputs; i++) {
		lm_value *v = lm_node_in(g, n, i);
		if (!v)
			continue;
		present++;
		if (!lm_value_is_const(v))
			all_const = 0;
	}
	if (is_op(op, "Shape") || is_op(op, "Size")) {
		lm_value *x = lm_node_in(g, n, 0);
		return x && lm_value_shape_known(x);
	}
	/* A node without inputs is a source (random numbers, say) unless it
	 * is one of these. */
	if (present == 0)
		return is_op(op, "Constant") || is_op(op, "ConstantOfShape") ||
		       is_op(op, "Range");
	return all_const;
}

static int small_outputs(lm_graph *g, const lm_node *n)
{
	for (int i = 0; i < n->n_outputs; i++) {
		lm_value *y = lm_node_out(g, n, i);
		if (y && (!lm_value_shape_known(y) ||
			  lm_value_bytes(y) > LM_OPS_FOLD_MAX_BYTES))
			return 0;
	}
	return 1;
}

/*
 * Identity (and inference-time Dropout) of a constant: point its readers at
 * the constant itself instead of copying it.  Exporters share identical
 * weights this way (torch names a deep-copied layer's weights by Identity
 * nodes); a copy would store them twice.
 */
static int alias_constant(lm_graph *g, const lm_node *n, const lm_op *op)
{
	lm_value *x = lm_node_in(g, n, 0), *y = lm_node_out(g, n, 0);
	if (!(is_op(op, "Identity") || is_op(op, "Dropout")) || !x || !y ||
	    !lm_value_is_const(x) || y->is_output)
		return 0;
	for (int i = 1; i < n->n_outputs; i++)
		if (lm_node_out(g, n, i))
			return 0; /* a Dropout mask is wanted: fold it */
	int xi = (int)(x - g->values), yi = (int)(y - g->values);
	for (int c = 0; c < y->n_consumers; c++) {
		lm_node *r = &g->nodes[y->consumers[c]];
		for (int k = 0; k < r->n_inputs; k++)
			if (r->inputs[k] == yi)
				r->inputs[k] = xi;
	}
	return 1;
}

/* Undo a fold that gave up half-way, so the node runs normally. */
static void unfold(lm_graph *g, const lm_node *n, int ni)
{
	for (int i = 0; i < n->n_outputs; i++) {
		lm_value *y = lm_node_out(g, n, i);
		if (!y || y->kind != LM_VAL_CONSTANT)
			continue;
		free(y->data);
		y->data = NULL;
		y->nbytes = 0;
		y->kind = LM_VAL_NODE;
		y->producer = ni;
	}
}

int lm_graph_fold_constants(lm_graph *g, lm_error *e)
{
	uint8_t *dead = calloc((size_t)g->n_nodes + 1, 1);
	int removed = 0, rc = 0;

	if (!dead)
		return lm_fail(e, -ENOMEM, "out of memory");
	for (int ni = 0; ni < g->n_nodes; ni++) {
		lm_node *n = &g->nodes[ni];
		const lm_op *op = lm_op_find(n->domain, n->op_type);
		lm_error ignored;

		if (!op)
			continue;
		int cand = foldable(g, n, op);
		/* Always (re)infer: a fold writes exactly as many bytes as
		 * the inferred shape holds, never what the file claimed.  A
		 * node that will not be folded may fail here (a dim the
		 * caller has yet to fix); lm_graph_infer_shapes reports
		 * that later. */
		rc = op->infer(g, n, cand ? e : &ignored);
		if (rc) {
			if (cand)
				goto out;
			rc = 0;
			continue;
		}
		if (cand && alias_constant(g, n, op)) {
			dead[ni] = 1;
			removed++;
			continue;
		}
		if (!cand || (!is_op(op, "Constant") && !small_outputs(g, n)))
			continue;
		rc = op->fold(g, n, e);
		if (rc == -EOPNOTSUPP) {
			unfold(g, n, ni);
			rc = 0;
			continue;
		}
		if (rc)
			goto out;
		for (int i = 0; i < n->n_outputs; i++) {
			lm_value *y = lm_node_out(g, n, i);
			if (y && y->kind != LM_VAL_CONSTANT) {
				rc = lm_ops_fail(e, g, n, -EINVAL, "fold left "
						 "output '%s' uncomputed",
						 y->name);
				goto out;
			}
		}
		dead[ni] = 1;
		removed++;
	}
	if (removed)
		rc = lm_graph_remove_nodes(g, dead, e);
out:
	free(dead);
	return rc ? rc : removed;
}
