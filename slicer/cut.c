/*
 * cut.c: where a graph may be cut, and what crosses each cut.
 *
 * The node order is fixed (graph.c).  A layer is a run of that order: a node
 * that heads a layer, then the elementwise and reshape nodes after it that
 * read what the layer made and whose inputs from the layer are read nowhere
 * else (so joining them adds nothing to the cut).  Slices are runs of layers.
 * A cut after position k carries every non-constant tensor made at or before
 * k that is read after k or is a model output; a residual block's cut
 * carries two.  Nor does a layer end inside what the runtime fuses into
 * one node (lm_slice_options.fused): a stage ending there would round
 * differently from the whole model.
 */
#include "lamina/slicer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lamina/runtime.h"

struct span {
	int first, last;
};

static int joins_layer(lm_graph *g, int ni, int layer_first, int run_last)
{
	const lm_node *n = &g->nodes[ni];
	const lm_op *op = lm_op_find(n->domain, n->op_type);
	int reads_layer = 0;
	if (!op || !(op->flags & (LM_OP_ELEMENTWISE | LM_OP_RESHAPE)))
		return 0;
	for (int i = 0; i < n->n_inputs; i++) {
		lm_value *v = lm_node_in(g, n, i);
		if (!v || v->kind != LM_VAL_NODE || v->producer < layer_first)
			continue;
		reads_layer = 1;
		if (v->is_output)
			return 0;
		for (int c = 0; c < v->n_consumers; c++)
			if (v->consumers[c] < layer_first ||
			    v->consumers[c] > run_last)
				return 0;
	}
	return reads_layer;
}

/* Per node, the last node of the run of elementwise/reshape nodes that
 * starts at it (ni - 1 when ni is not one): one pass from the end, so
 * grouping is linear in the nodes however long the runs. */
static int *follower_runs(lm_graph *g)
{
	int *end = malloc(((size_t)g->n_nodes + 1) * sizeof(int));
	if (!end)
		return NULL;
	for (int ni = g->n_nodes - 1; ni >= 0; ni--) {
		const lm_node *n = &g->nodes[ni];
		const lm_op *op = lm_op_find(n->domain, n->op_type);
		int follows = op &&
			      (op->flags & (LM_OP_ELEMENTWISE | LM_OP_RESHAPE));
		end[ni] = !follows ? ni - 1
			  : ni + 1 < g->n_nodes && end[ni + 1] > ni ? end[ni + 1]
								      : ni;
	}
	return end;
}

/* Per position k, whether a cut after node k would carry a tensor fusion
 * makes internal (fused[v]): each such tensor marks the positions from
 * its producer to its last reader, summed in one pass (linear). */
static uint8_t *fusion_splits(lm_graph *g, const uint8_t *fused)
{
	int *d = calloc((size_t)g->n_nodes + 1, sizeof(int));
	uint8_t *split = calloc((size_t)g->n_nodes + 1, 1);
	if (!d || !split) {
		free(d);
		free(split);
		return NULL;
	}
	for (int vi = 0; vi < g->n_values; vi++) {
		const lm_value *v = &g->values[vi];
		if (!fused[vi] || v->kind != LM_VAL_NODE || v->producer < 0)
			continue;
		int last = v->producer;
		for (int c = 0; c < v->n_consumers; c++)
			last = v->consumers[c] > last ? v->consumers[c] : last;
		d[v->producer]++;
		d[last]--;
	}
	for (int k = 0, run = 0; k < g->n_nodes; k++) {
		run += d[k];
		split[k] = run > 0;
	}
	free(d);
	return split;
}

static int group_layers(lm_graph *g, lm_granularity gran,
			const uint8_t *fused, struct span *out)
{
	int n = 0, *end = follower_runs(g);
	uint8_t *split = gran == LM_GRAN_LAYER && fused
				 ? fusion_splits(g, fused)
				 : NULL;
	if (!end || (gran == LM_GRAN_LAYER && fused && !split)) {
		free(end);
		free(split);
		return -ENOMEM;
	}
	for (int ni = 0; ni < g->n_nodes; ni++) {
		if (gran == LM_GRAN_LAYER && n > 0 &&
		    ((split && split[ni - 1]) ||
		     joins_layer(g, ni, out[n - 1].first, end[ni]))) {
			out[n - 1].last = ni;
			continue;
		}
		out[n].first = out[n].last = ni;
		n++;
	}
	free(end);
	free(split);
	return n;
}

/*
 * Group layers into at most k runs minimising the largest run's FLOPs: the
 * smallest bottleneck B for which greedy packing needs at most k runs,
 * found by bisection over B.
 */
static int pack_greedy(const double *w, int n, double limit, struct span *out)
{
	int runs = 0;
	double sum = 0;
	for (int i = 0; i < n; i++) {
		if (runs == 0 || sum + w[i] > limit) {
			if (out) {
				if (runs)
					out[runs - 1].last = i - 1;
				out[runs].first = i;
			}
			runs++;
			sum = 0;
		}
		sum += w[i];
	}
	if (out && runs)
		out[runs - 1].last = n - 1;
	return runs;
}

static int balance(const double *w, int n, int k, struct span *out)
{
	double lo = 0, hi = 0;
	for (int i = 0; i < n; i++) {
		hi += w[i];
		if (w[i] > lo)
			lo = w[i];
	}
	if (pack_greedy(w, n, lo, NULL) <= k)
		hi = lo;
	for (int it = 0; it < 100 && hi - lo > 1e-9 * hi; it++) {
		double mid = (lo + hi) / 2;
		if (pack_greedy(w, n, mid, NULL) <= k)
			hi = mid;
		else
			lo = mid;
	}
	return pack_greedy(w, n, hi, out);
}

static int push(int **arr, int *n, int v)
{
	for (int i = 0; i < *n; i++)
		if ((*arr)[i] == v)
			return 0;
	int *p = realloc(*arr, (size_t)(*n + 1) * sizeof(int));
	if (!p)
		return -ENOMEM;
	p[(*n)++] = v;
	*arr = p;
	return 0;
}

static int describe_slice(lm_graph *g, lm_slice *s)
{
	char label[256] = "";
	size_t off = 0;
	int rc = 0;
	for (int ni = s->first_node; ni <= s->last_node && !rc; ni++) {
		const lm_node *n = &g->nodes[ni];
		s->flops += lm_node_flops(g, n);
		if (off < sizeof(label) - 1)
			off += (size_t)snprintf(label + off,
						sizeof(label) - off, "%s%s",
						off ? "+" : "", n->op_type);
		for (int i = 0; i < n->n_inputs && !rc; i++) {
			lm_value *v = lm_node_in(g, n, i);
			if (!v)
				continue;
			int idx = (int)(v - g->values);
			if (lm_value_is_const(v))
				rc = push(&s->consts, &s->n_consts, idx);
			else if (v->kind == LM_VAL_INPUT ||
				 v->producer < s->first_node)
				rc = push(&s->inputs, &s->n_inputs, idx);
		}
		for (int o = 0; o < n->n_outputs && !rc; o++) {
			lm_value *v = lm_node_out(g, n, o);
			if (!v)
				continue;
			int later = v->is_output;
			for (int c = 0; c < v->n_consumers; c++)
				later |= v->consumers[c] > s->last_node;
			if (later)
				rc = push(&s->outputs, &s->n_outputs,
					  (int)(v - g->values));
		}
	}
	if (off >= sizeof(label) - 1)
		snprintf(label + sizeof(label) - 4, 4, "...");
	for (int i = 0; i < s->n_consts; i++)
		s->param_bytes += g->values[s->consts[i]].nbytes;
	for (int i = 0; i < s->n_outputs; i++)
		s->output_bytes += lm_value_bytes(&g->values[s->outputs[i]]);
	s->label = strdup(label);
	return rc ? rc : (s->label ? 0 : -ENOMEM);
}

/* Bytes of the non-constant tensors made at or before `last` (graph inputs
 * count as made before the first node) still needed after it. */
static size_t cut_bytes(lm_graph *g, int last)
{
	size_t total = 0;
	if (last >= g->n_nodes - 1)
		return 0;
	for (int i = 0; i < g->n_values; i++) {
		lm_value *v = &g->values[i];
		int needed = 0;
		if (lm_value_is_const(v) ||
		    (v->kind == LM_VAL_NODE && v->producer > last))
			continue;
		needed = v->is_output && v->kind == LM_VAL_NODE;
		for (int c = 0; c < v->n_consumers; c++)
			needed |= v->consumers[c] > last;
		if (needed)
			total += lm_value_bytes(v);
	}
	return total;
}

void lm_slicing_free(lm_slicing *s)
{
	if (!s)
		return;
	for (int i = 0; i < s->n; i++) {
		free(s->slices[i].inputs);
		free(s->slices[i].outputs);
		free(s->slices[i].consts);
		free(s->slices[i].label);
	}
	free(s->slices);
	free(s);
}

int lm_slice_plan(lm_graph *g, const lm_slice_options *o, lm_slicing **out,
		  lm_error *e)
{
	*out = NULL;
	if (g->n_nodes == 0)
		return lm_fail(e, -EINVAL, "the graph has no nodes to slice");
	if (lm_graph_index(g))
		return lm_fail(e, -ENOMEM, "out of memory");

	struct span *layers = calloc((size_t)g->n_nodes, sizeof(*layers));
	struct span *groups = calloc((size_t)g->n_nodes, sizeof(*groups));
	double *w = calloc((size_t)g->n_nodes, sizeof(*w));
	lm_slicing *s = calloc(1, sizeof(*s));
	int rc = 0;
	if (!layers || !groups || !w || !s) {
		rc = lm_fail(e, -ENOMEM, "out of memory");
		goto out;
	}
	int nl = group_layers(g, o->granularity, o->fused, layers);
	int ns = nl;
	if (nl < 0) {
		rc = lm_fail(e, -ENOMEM, "out of memory");
		goto out;
	}
	if (o->max_slices > 0 && o->max_slices < nl) {
		for (int l = 0; l < nl; l++)
			for (int ni = layers[l].first; ni <= layers[l].last;
			     ni++)
				w[l] += lm_node_flops(g, &g->nodes[ni]);
		ns = balance(w, nl, o->max_slices, groups);
		for (int i = 0; i < ns; i++)
			groups[i] = (struct span){ layers[groups[i].first].first,
						   layers[groups[i].last].last };
	} else {
		memcpy(groups, layers, (size_t)nl * sizeof(*groups));
	}
	s->slices = calloc((size_t)ns, sizeof(lm_slice));
	if (!s->slices) {
		rc = lm_fail(e, -ENOMEM, "out of memory");
		goto out;
	}
	s->n = ns;
	s->granularity = o->granularity;
	for (int i = 0; i < ns && !rc; i++) {
		lm_slice *sl = &s->slices[i];
		sl->first_node = groups[i].first;
		sl->last_node = groups[i].last;
		if (describe_slice(g, sl))
			rc = lm_fail(e, -ENOMEM, "out of memory");
		sl->cut_bytes = cut_bytes(g, sl->last_node);
	}
out:
	free(layers);
	free(groups);
	free(w);
	if (rc)
		lm_slicing_free(s);
	else
		*out = s;
	return rc;
}

int lm_onnx_fused_values(lm_onnx_model *m, const lm_input_shape *shapes,
			 int n_shapes, uint8_t **out, lm_error *e)
{
	lm_graph *g = lm_onnx_graph(m);
	lm_onnx_model *copy = NULL;
	int rc;
	*out = NULL;
	if (!lm_onnx_path(m) || !*lm_onnx_path(m))
		return lm_fail(e, -ENOTSUP, "a model from memory cannot be "
			       "loaded again");
	if ((rc = lm_onnx_load(lm_onnx_path(m), &copy, e)) ||
	    (rc = lm_onnx_prepare(copy, shapes, n_shapes, NULL, e)) ||
	    (rc = lm_fuse(lm_onnx_graph(copy), e)) < 0 ||
	    (rc = lm_graph_index(lm_onnx_graph(copy)))) {
		lm_onnx_free(copy);
		return rc < 0 ? rc : lm_fail(e, -ENOMEM, "out of memory");
	}
	lm_graph *f = lm_onnx_graph(copy);
	uint8_t *fused = calloc((size_t)g->n_values + 1, 1);
	if (!fused) {
		lm_onnx_free(copy);
		return lm_fail(e, -ENOMEM, "out of memory");
	}
	for (int vi = 0; vi < g->n_values; vi++) {
		const lm_value *v = &g->values[vi];
		if (v->kind != LM_VAL_NODE)
			continue;
		int fi = lm_graph_find(f, v->name);
		const lm_value *w = fi >= 0 ? &f->values[fi] : NULL;
		fused[vi] = !w || w->kind != LM_VAL_NODE || w->producer < 0 ||
			    w->rank != v->rank ||
			    memcmp(w->dims, v->dims,
				   (size_t)(v->rank > 0 ? v->rank : 0) *
					   sizeof(v->dims[0]));
	}
	lm_onnx_free(copy);
	*out = fused;
	return 0;
}
