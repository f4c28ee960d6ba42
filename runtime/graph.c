/*
 * graph.c: building, indexing and ordering the graph IR (see graph.h).
 *
 * Values are looked up by name through a POSIX binary search tree owned by
 * the graph (tsearch), so no global state is involved.  The node array is
 * the topological order: lm_graph_sort() establishes it and every later pass
 * keeps it.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* tdestroy(), when built outside meson */
#endif
#include "lamina/graph.h"

#include <errno.h>
#include <search.h>
#include <stdlib.h>
#include <string.h>

struct name_ent {
	const char *name; /* points at the value's own name string */
	int idx;
};

static int name_cmp(const void *a, const void *b)
{
	return strcmp(((const struct name_ent *)a)->name,
		      ((const struct name_ent *)b)->name);
}

static int grow(void **arr, int *cap, int need, size_t elem)
{
	if (need <= *cap)
		return 0;
	int ncap = *cap ? *cap * 2 : 16;
	while (ncap < need)
		ncap *= 2;
	void *p = realloc(*arr, (size_t)ncap * elem);
	if (!p)
		return -ENOMEM;
	memset((char *)p + (size_t)*cap * elem, 0,
	       (size_t)(ncap - *cap) * elem);
	*arr = p;
	*cap = ncap;
	return 0;
}

lm_graph *lm_graph_create(const char *name)
{
	lm_graph *g = calloc(1, sizeof(*g));
	if (!g)
		return NULL;
	g->name = strdup(name ? name : "graph");
	if (!g->name) {
		free(g);
		return NULL;
	}
	return g;
}

static void attr_clear(lm_attr *a)
{
	free(a->name);
	free(a->s);
	free(a->floats);
	free(a->ints);
	for (int i = 0; a->strings && i < a->n; i++)
		free(a->strings[i]);
	free(a->strings);
	if (a->t) {
		lm_tensor_free(a->t);
		free(a->t);
	}
}

static void node_clear(lm_node *n)
{
	free(n->name);
	free(n->op_type);
	free(n->domain);
	free(n->inputs);
	free(n->outputs);
	for (int i = 0; i < n->n_attrs; i++)
		attr_clear(&n->attrs[i]);
	free(n->attrs);
}

static void value_clear(lm_value *v)
{
	free(v->name);
	for (int i = 0; i < LM_MAX_RANK; i++)
		free(v->dim_param[i]);
	free(v->data);
	free(v->consumers);
}

void lm_graph_free(lm_graph *g)
{
	if (!g)
		return;
	tdestroy(g->name_index, free);
	for (int i = 0; i < g->n_values; i++)
		value_clear(&g->values[i]);
	for (int i = 0; i < g->n_nodes; i++)
		node_clear(&g->nodes[i]);
	free(g->values);
	free(g->nodes);
	free(g->inputs);
	free(g->outputs);
	free(g->name);
	free(g);
}

static int index_name(lm_graph *g, int idx)
{
	struct name_ent *ent = malloc(sizeof(*ent));
	if (!ent)
		return -ENOMEM;
	ent->name = g->values[idx].name;
	ent->idx = idx;
	struct name_ent **slot = tsearch(ent, &g->name_index, name_cmp);
	if (!slot) {
		free(ent);
		return -ENOMEM;
	}
	if (*slot != ent) {
		free(ent);
		return -EEXIST;
	}
	return 0;
}

int lm_graph_find(const lm_graph *g, const char *name)
{
	struct name_ent key = { name, -1 };
	struct name_ent **slot = tfind(&key, &g->name_index, name_cmp);
	return slot ? (*slot)->idx : -1;
}

int lm_graph_add_value(lm_graph *g, const char *name, lm_value_kind kind,
		       lm_error *e)
{
	if (lm_graph_find(g, name) >= 0)
		return lm_fail(e, -EEXIST, "tensor '%s' is defined twice",
			       name);
	if (grow((void **)&g->values, &g->cap_values, g->n_values + 1,
		 sizeof(lm_value)))
		return lm_fail(e, -ENOMEM, "out of memory");
	lm_value *v = &g->values[g->n_values];
	memset(v, 0, sizeof(*v));
	v->name = strdup(name);
	if (!v->name)
		return lm_fail(e, -ENOMEM, "out of memory");
	v->kind = kind;
	v->rank = -1;
	v->producer = -1;
	int rc = index_name(g, g->n_values);
	if (rc) {
		free(v->name);
		return lm_fail(e, rc, "out of memory");
	}
	return g->n_values++;
}

int lm_graph_add_node(lm_graph *g, const char *name, const char *op_type,
		      const char *domain, const char *const *inputs,
		      int n_inputs, const char *const *outputs, int n_outputs,
		      lm_error *e)
{
	if (grow((void **)&g->nodes, &g->cap_nodes, g->n_nodes + 1,
		 sizeof(lm_node)))
		return lm_fail(e, -ENOMEM, "out of memory");
	int ni = g->n_nodes;
	lm_node *n = &g->nodes[ni];
	memset(n, 0, sizeof(*n));
	n->name = strdup(name ? name : "");
	n->op_type = strdup(op_type);
	n->domain = strdup(domain ? domain : "");
	n->inputs = calloc((size_t)n_inputs + 1, sizeof(int));
	n->outputs = calloc((size_t)n_outputs + 1, sizeof(int));
	if (!n->name || !n->op_type || !n->domain || !n->inputs ||
	    !n->outputs) {
		node_clear(n);
		return lm_fail(e, -ENOMEM, "out of memory");
	}
	n->n_inputs = n_inputs;
	n->n_outputs = n_outputs;
	int rc = 0, claimed = 0;
	for (int i = 0; i < n_inputs && !rc; i++) {
		if (!inputs[i] || !inputs[i][0]) {
			n->inputs[i] = -1;
			continue;
		}
		n->inputs[i] = lm_graph_find(g, inputs[i]);
		if (n->inputs[i] < 0)
			rc = lm_fail(e, -EINVAL,
				     "node '%s' (%s) reads tensor '%s', which "
				     "no node, graph input or initializer "
				     "provides", n->name, op_type, inputs[i]);
	}
	for (int i = 0; i < n_outputs && !rc; i++) {
		if (!outputs[i] || !outputs[i][0]) {
			n->outputs[i] = -1;
			continue;
		}
		int v = lm_graph_find(g, outputs[i]);
		if (v >= 0 && (g->values[v].kind != LM_VAL_NODE ||
			       g->values[v].producer >= 0)) {
			rc = lm_fail(e, -EEXIST,
				     "node '%s' (%s) writes tensor '%s', "
				     "which is already defined", n->name,
				     op_type, outputs[i]);
			break;
		}
		if (v < 0) {
			v = lm_graph_add_value(g, outputs[i], LM_VAL_NODE, e);
			if (v < 0) {
				rc = v;
				break;
			}
			n = &g->nodes[ni];
		}
		g->values[v].producer = ni;
		n->outputs[i] = v;
		claimed = i + 1;
	}
	if (rc) {
		/* Release the outputs this node claimed, or the next node
		 * added at index ni would appear to produce them. */
		for (int i = 0; i < claimed; i++)
			if (n->outputs[i] >= 0)
				g->values[n->outputs[i]].producer = -1;
		node_clear(n);
		return rc;
	}
	g->n_nodes++;
	return ni;
}

lm_attr *lm_node_add_attr(lm_node *n, const char *name, lm_attr_type type)
{
	lm_attr *a = realloc(n->attrs, (size_t)(n->n_attrs + 1) * sizeof(*a));
	if (!a)
		return NULL;
	n->attrs = a;
	a = &n->attrs[n->n_attrs];
	memset(a, 0, sizeof(*a));
	a->name = strdup(name);
	if (!a->name)
		return NULL;
	a->type = type;
	n->n_attrs++;
	return a;
}

static int append_int(int **arr, int *n, int v)
{
	int *p = realloc(*arr, (size_t)(*n + 1) * sizeof(int));
	if (!p)
		return -ENOMEM;
	p[(*n)++] = v;
	*arr = p;
	return 0;
}

int lm_graph_add_input(lm_graph *g, int value)
{
	return append_int(&g->inputs, &g->n_inputs, value);
}

int lm_graph_add_output(lm_graph *g, int value)
{
	g->values[value].is_output = 1;
	return append_int(&g->outputs, &g->n_outputs, value);
}

int lm_graph_index(lm_graph *g)
{
	for (int i = 0; i < g->n_values; i++) {
		lm_value *v = &g->values[i];
		free(v->consumers);
		v->consumers = NULL;
		v->n_consumers = 0;
		if (v->kind == LM_VAL_NODE)
			v->producer = -1;
	}
	for (int ni = 0; ni < g->n_nodes; ni++) {
		lm_node *n = &g->nodes[ni];
		for (int i = 0; i < n->n_outputs; i++)
			if (n->outputs[i] >= 0)
				g->values[n->outputs[i]].producer = ni;
		for (int i = 0; i < n->n_inputs; i++) {
			if (n->inputs[i] < 0)
				continue;
			lm_value *v = &g->values[n->inputs[i]];
			if (append_int(&v->consumers, &v->n_consumers, ni))
				return -ENOMEM;
		}
	}
	return 0;
}

/* Min-heap of node indices, so Kahn's algorithm keeps the source order
 * wherever the dependencies allow it. */
struct heap {
	int *a;
	int n;
};

static void heap_push(struct heap *h, int v)
{
	int i = h->n++;
	h->a[i] = v;
	while (i > 0 && h->a[(i - 1) / 2] > h->a[i]) {
		int p = (i - 1) / 2, t = h->a[p];
		h->a[p] = h->a[i];
		h->a[i] = t;
		i = p;
	}
}

static int heap_pop(struct heap *h)
{
	int top = h->a[0];
	h->a[0] = h->a[--h->n];
	for (int i = 0;;) {
		int l = 2 * i + 1, r = l + 1, m = i;
		if (l < h->n && h->a[l] < h->a[m])
			m = l;
		if (r < h->n && h->a[r] < h->a[m])
			m = r;
		if (m == i)
			break;
		int t = h->a[m];
		h->a[m] = h->a[i];
		h->a[i] = t;
		i = m;
	}
	return top;
}

int lm_graph_sort(lm_graph *g, lm_error *e)
{
	int rc = lm_graph_index(g);
	if (rc)
		return lm_fail(e, rc, "out of memory");
	for (int ni = 0; ni < g->n_nodes; ni++) {
		lm_node *n = &g->nodes[ni];
		for (int i = 0; i < n->n_inputs; i++) {
			if (n->inputs[i] < 0)
				continue;
			lm_value *v = &g->values[n->inputs[i]];
			if (v->kind == LM_VAL_NODE && v->producer < 0)
				return lm_fail(e, -EINVAL,
					       "node '%s' (%s) reads tensor "
					       "'%s', which no node, graph "
					       "input or initializer provides",
					       n->name, n->op_type, v->name);
		}
	}

	int *pending = calloc((size_t)g->n_nodes + 1, sizeof(int));
	int *order = calloc((size_t)g->n_nodes + 1, sizeof(int));
	struct heap h = { calloc((size_t)g->n_nodes + 1, sizeof(int)), 0 };
	lm_node *sorted = calloc((size_t)g->n_nodes + 1, sizeof(lm_node));
	int *pos = calloc((size_t)g->n_nodes + 1, sizeof(int));
	if (!pending || !order || !h.a || !sorted || !pos) {
		rc = lm_fail(e, -ENOMEM, "out of memory");
		goto out;
	}
	for (int ni = 0; ni < g->n_nodes; ni++) {
		lm_node *n = &g->nodes[ni];
		for (int i = 0; i < n->n_inputs; i++)
			if (n->inputs[i] >= 0 &&
			    g->values[n->inputs[i]].kind == LM_VAL_NODE)
				pending[ni]++;
		if (pending[ni] == 0)
			heap_push(&h, ni);
	}
	int done = 0;
	while (h.n > 0) {
		int ni = heap_pop(&h);
		order[done++] = ni;
		lm_node *n = &g->nodes[ni];
		for (int o = 0; o < n->n_outputs; o++) {
			if (n->outputs[o] < 0)
				continue;
			lm_value *v = &g->values[n->outputs[o]];
			for (int c = 0; c < v->n_consumers; c++)
				if (--pending[v->consumers[c]] == 0)
					heap_push(&h, v->consumers[c]);
		}
	}
	if (done < g->n_nodes) {
		for (int ni = 0; ni < g->n_nodes; ni++)
			if (pending[ni] > 0) {
				rc = lm_fail(e, -ELOOP,
					     "graph has a cycle through node "
					     "'%s' (%s)", g->nodes[ni].name,
					     g->nodes[ni].op_type);
				goto out;
			}
	}
	for (int i = 0; i < g->n_nodes; i++) {
		sorted[i] = g->nodes[order[i]];
		pos[order[i]] = i;
	}
	if (g->n_nodes) /* nodes and sorted are NULL in an empty graph */
		memcpy(g->nodes, sorted, (size_t)g->n_nodes * sizeof(lm_node));
	rc = lm_graph_index(g);
	if (rc)
		rc = lm_fail(e, rc, "out of memory");
out:
	free(pending);
	free(order);
	free(h.a);
	free(sorted);
	free(pos);
	return rc;
}

static int rebuild_names(lm_graph *g)
{
	tdestroy(g->name_index, free);
	g->name_index = NULL;
	for (int i = 0; i < g->n_values; i++)
		if (index_name(g, i))
			return -ENOMEM;
	return 0;
}

int lm_graph_remove_nodes(lm_graph *g, const uint8_t *dead, lm_error *e)
{
	int kept = 0;
	for (int ni = 0; ni < g->n_nodes; ni++) {
		if (dead[ni]) {
			node_clear(&g->nodes[ni]);
			continue;
		}
		g->nodes[kept++] = g->nodes[ni];
	}
	g->n_nodes = kept;
	if (lm_graph_index(g))
		return lm_fail(e, -ENOMEM, "out of memory");

	/* Drop values nothing uses any more: outputs of removed nodes and
	 * constants without consumers.  Graph inputs and outputs stay. */
	int *remap = malloc(((size_t)g->n_values + 1) * sizeof(int));
	if (!remap)
		return lm_fail(e, -ENOMEM, "out of memory");
	int nv = 0;
	for (int i = 0; i < g->n_values; i++) {
		lm_value *v = &g->values[i];
		int keep = v->is_output || v->kind == LM_VAL_INPUT ||
			   v->n_consumers > 0 ||
			   (v->kind == LM_VAL_NODE && v->producer >= 0);
		if (!keep) {
			value_clear(v);
			remap[i] = -1;
			continue;
		}
		remap[i] = nv;
		g->values[nv++] = *v;
	}
	g->n_values = nv;
	for (int ni = 0; ni < g->n_nodes; ni++) {
		lm_node *n = &g->nodes[ni];
		for (int i = 0; i < n->n_inputs; i++)
			if (n->inputs[i] >= 0)
				n->inputs[i] = remap[n->inputs[i]];
		for (int i = 0; i < n->n_outputs; i++)
			if (n->outputs[i] >= 0)
				n->outputs[i] = remap[n->outputs[i]];
	}
	for (int i = 0; i < g->n_inputs; i++)
		g->inputs[i] = remap[g->inputs[i]];
	for (int i = 0; i < g->n_outputs; i++)
		g->outputs[i] = remap[g->outputs[i]];
	free(remap);
	if (rebuild_names(g) || lm_graph_index(g))
		return lm_fail(e, -ENOMEM, "out of memory");
	return 0;
}

const void *lm_graph_value_data(lm_graph *g, lm_value *v, lm_error *e)
{
	if (!lm_value_is_const(v)) {
		lm_fail(e, -ENODATA, "tensor '%s' is not a constant", v->name);
		return NULL;
	}
	if (v->data)
		return v->data;
	if (v->nbytes == 0 && (v->kind == LM_VAL_CONSTANT ||
			       lm_shape_numel(v->rank, v->dims) == 0)) {
		/* An empty constant or initializer (Resize's unused roi,
		 * an empty shape): give it a valid, empty buffer. */
		v->data = malloc(1);
		return v->data;
	}
	if (!g->loader) {
		lm_fail(e, -ENODATA, "initializer '%s' has no data", v->name);
		return NULL;
	}
	if (g->loader(g->loader_ctx, g, v, e))
		return NULL;
	return v->data;
}

int lm_value_shape_known(const lm_value *v)
{
	return lm_shape_numel(v->rank, v->dims) >= 0;
}

size_t lm_value_bytes(const lm_value *v)
{
	int64_t n = lm_shape_numel(v->rank, v->dims);
	if (n < 0)
		return 0;
	return (size_t)n * lm_dtype_size(v->dtype);
}

void lm_value_set_shape(lm_value *v, lm_dtype dtype, int rank,
			const int64_t *dims)
{
	v->dtype = dtype;
	v->rank = rank;
	for (int i = 0; i < LM_MAX_RANK; i++) {
		free(v->dim_param[i]);
		v->dim_param[i] = NULL;
		v->dims[i] = (rank > 0 && i < rank) ? dims[i] : 0;
	}
}

void lm_value_as_tensor(const lm_value *v, lm_tensor *t)
{
	memset(t, 0, sizeof(*t));
	lm_tensor_set_shape(t, v->dtype, v->rank > 0 ? v->rank : 0, v->dims);
	t->data = v->data;
	t->nbytes = lm_value_bytes(v);
}

const lm_attr *lm_node_attr(const lm_node *n, const char *name)
{
	for (int i = 0; i < n->n_attrs; i++)
		if (strcmp(n->attrs[i].name, name) == 0)
			return &n->attrs[i];
	return NULL;
}

int64_t lm_attr_int(const lm_node *n, const char *name, int64_t dflt)
{
	const lm_attr *a = lm_node_attr(n, name);
	return a && a->type == LM_ATTR_INT ? a->i : dflt;
}

float lm_attr_float(const lm_node *n, const char *name, float dflt)
{
	const lm_attr *a = lm_node_attr(n, name);
	return a && a->type == LM_ATTR_FLOAT ? a->f : dflt;
}

const char *lm_attr_str(const lm_node *n, const char *name, const char *dflt)
{
	const lm_attr *a = lm_node_attr(n, name);
	return a && a->type == LM_ATTR_STRING && a->s ? a->s : dflt;
}

const int64_t *lm_attr_ints(const lm_node *n, const char *name, int *count)
{
	const lm_attr *a = lm_node_attr(n, name);
	if (!a || a->type != LM_ATTR_INTS) {
		*count = 0;
		return NULL;
	}
	*count = a->n;
	return a->ints;
}

lm_value *lm_node_in(lm_graph *g, const lm_node *n, int i)
{
	if (i < 0 || i >= n->n_inputs || n->inputs[i] < 0)
		return NULL;
	return &g->values[n->inputs[i]];
}

lm_value *lm_node_out(lm_graph *g, const lm_node *n, int i)
{
	if (i < 0 || i >= n->n_outputs || n->outputs[i] < 0)
		return NULL;
	return &g->values[n->outputs[i]];
}

int lm_value_read_ints(lm_graph *g, lm_value *v, int64_t *out, int max,
		       lm_error *e)
{
	if (!lm_value_is_const(v))
		return lm_fail(e, -ENODATA, "tensor '%s' is not a constant",
			       v->name);
	if (v->dtype != LM_DT_INT64 && v->dtype != LM_DT_INT32)
		return lm_fail(e, -EINVAL, "tensor '%s' is %s, not an integer "
			       "tensor", v->name, lm_dtype_name(v->dtype));
	if (v->rank < 0 || v->rank > LM_MAX_RANK)
		return lm_fail(e, -EINVAL, "tensor '%s' has no usable shape",
			       v->name);
	int64_t n = lm_shape_numel(v->rank, v->dims);
	if (n < 0 || n > max)
		return lm_fail(e, -EINVAL, "tensor '%s' has %lld values, "
			       "expected at most %d", v->name, (long long)n,
			       max);
	const void *d = lm_graph_value_data(g, v, e);
	if (!d)
		return -ENODATA;
	/* Shape and data length come from the file separately. */
	if (v->nbytes < (size_t)n * lm_dtype_size(v->dtype))
		return lm_fail(e, -EINVAL, "tensor '%s' holds %zu bytes, its "
			       "shape needs %zu", v->name, v->nbytes,
			       (size_t)n * lm_dtype_size(v->dtype));
	for (int64_t i = 0; i < n; i++)
		out[i] = v->dtype == LM_DT_INT64 ? ((const int64_t *)d)[i]
						 : ((const int32_t *)d)[i];
	return (int)n;
}

/* ---- joining graphs ---- */

static int same_type(const lm_value *a, const lm_value *b)
{
	return a->dtype == b->dtype && a->rank == b->rank &&
	       !memcmp(a->dims, b->dims, sizeof(a->dims[0]) *
					 (size_t)(a->rank > 0 ? a->rank : 0));
}

/* dst's index for src value v: an existing tensor for inputs (and for a
 * constant both slices carry, such as a shape), else a new value. */
static int absorb_value(lm_graph *dst, lm_graph *src, lm_value *v,
			lm_error *e)
{
	int k = lm_graph_find(dst, v->name);
	if (k >= 0) {
		lm_value *d = &dst->values[k];
		int joins = v->kind == LM_VAL_INPUT ||
			    (lm_value_is_const(v) && lm_value_is_const(d));
		if (!joins)
			return lm_fail(e, -EEXIST, "tensor '%s' is already "
				       "defined in the graph it joins",
				       v->name);
		if (!same_type(v, d))
			return lm_fail(e, -EINVAL, "tensor '%s' has another "
				       "type or shape in the graph it joins",
				       v->name);
		return k;
	}
	if (lm_value_is_const(v) && !lm_graph_value_data(src, v, e))
		return -ENODATA;
	k = lm_graph_add_value(dst, v->name, v->kind, e);
	if (k < 0)
		return k;
	lm_value *d = &dst->values[k];
	lm_value_set_shape(d, v->dtype, v->rank, v->dims);
	d->data = v->data;
	d->nbytes = v->nbytes;
	v->data = NULL;
	if (v->kind == LM_VAL_INPUT && lm_graph_add_input(dst, k))
		return lm_fail(e, -ENOMEM, "out of memory");
	return k;
}

int lm_graph_absorb(lm_graph *dst, lm_graph *src, lm_error *e)
{
	int *map = calloc((size_t)src->n_values + 1, sizeof(int));
	int rc = 0, most = 1;
	for (int ni = 0; ni < src->n_nodes; ni++) {
		most = src->nodes[ni].n_inputs > most ? src->nodes[ni].n_inputs
						      : most;
		most = src->nodes[ni].n_outputs > most
			       ? src->nodes[ni].n_outputs : most;
	}
	const char **in = calloc((size_t)most, sizeof(*in));
	const char **out = calloc((size_t)most, sizeof(*out));
	if (!map || !in || !out) {
		free(map);
		free(in);
		free(out);
		return lm_fail(e, -ENOMEM, "out of memory");
	}
	for (int i = 0; i < src->n_values && rc >= 0; i++)
		if (src->values[i].kind != LM_VAL_NODE)
			rc = map[i] = absorb_value(dst, src, &src->values[i], e);
	for (int ni = 0; ni < src->n_nodes && rc >= 0; ni++) {
		lm_node *n = &src->nodes[ni];
		for (int i = 0; i < n->n_inputs; i++)
			in[i] = n->inputs[i] < 0 ? ""
				: dst->values[map[n->inputs[i]]].name;
		for (int i = 0; i < n->n_outputs; i++)
			out[i] = n->outputs[i] < 0 ? ""
				 : src->values[n->outputs[i]].name;
		rc = lm_graph_add_node(dst, n->name, n->op_type, n->domain, in,
				       n->n_inputs, out, n->n_outputs, e);
		if (rc < 0)
			break;
		lm_node *d = &dst->nodes[rc];
		d->attrs = n->attrs;
		d->n_attrs = n->n_attrs;
		n->attrs = NULL;
		n->n_attrs = 0;
		for (int i = 0; i < n->n_outputs; i++) {
			if (n->outputs[i] < 0)
				continue;
			lm_value *v = &src->values[n->outputs[i]];
			map[n->outputs[i]] = d->outputs[i];
			lm_value_set_shape(&dst->values[d->outputs[i]],
					   v->dtype, v->rank, v->dims);
		}
	}
	free(map);
	free(in);
	free(out);
	if (rc < 0)
		return rc;
	if (!dst->opset)
		dst->opset = src->opset;
	if (!dst->ir_version)
		dst->ir_version = src->ir_version;
	return lm_graph_index(dst) ? lm_fail(e, -ENOMEM, "out of memory") : 0;
}
