/*
 * exec.c: sessions, the executor of the CPU runtime (see runtime.h).
 *
 * Creating a session decides everything once: fusion (fuse.c), a kernel
 * per node (the op table's prepare), and where every tensor lives.  Tensors
 * that share memory form a storage group:
 *   - a reshape-like node's output joins its input's group (the node then
 *     never runs);
 *   - an in-place kernel's output joins its input's group when nothing
 *     reads the input afterwards;
 * and each group is of one class: the arena (planned by arena.c from the
 * group's lifetime), a graph input or a graph output (the caller's buffers,
 * bound at each run), or a constant.  Groups never mix two bound classes,
 * and nothing is written in place into a caller's input or a constant.
 * Running is then one pass over the nodes calling prepared kernels.
 */
#include "lamina/runtime.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "arena.h"
#include "fuse.h"
#include "kernels/kernels.h"
#include "ops/kernel.h"

enum group_class { G_ARENA, G_INPUT, G_OUTPUT, G_CONST };

struct group {
	enum group_class cls;
	int bind;        /* graph input or output index */
	int first, last; /* lifetime in node steps (arena groups) */
	size_t size;
	int block;       /* index into the arena plan, or -1 */
};

struct lm_session {
	lm_graph *g;
	int threads;
	int profile;
	lm_kernel *k;           /* per node */
	lm_kargs *args;         /* per node */
	lm_tensor **ptrs;       /* per node: inputs then outputs */
	uint8_t *skip;          /* per node: aliasing, never run */
	lm_tensor *t;           /* per value */
	int *parent;            /* per value: storage group (union-find) */
	struct group *groups;   /* per value, meaningful at roots */
	int *last_use;          /* per value: last node reading it */
	void *arena;
	size_t arena_bytes;
	size_t weight_bytes;
	lm_node_time *prof;     /* per node */
	char **labels;          /* per node */
	int copy_outputs;       /* some output is an input or a constant */
};

static int root(lm_session *s, int v)
{
	while (s->parent[v] != v)
		v = s->parent[v] = s->parent[s->parent[v]];
	return v;
}

/* May groups of classes a and b share memory?  Returns the merged class
 * or -1. */
static int merged_class(const struct group *a, const struct group *b)
{
	if (a->cls == G_ARENA)
		return b->cls;
	if (b->cls == G_ARENA)
		return a->cls;
	return -1;
}

static void merge(lm_session *s, int a, int b, int cls)
{
	int ra = root(s, a), rb = root(s, b);
	if (ra == rb)
		return;
	int bind = s->groups[ra].cls != G_ARENA ? s->groups[ra].bind
						: s->groups[rb].bind;
	s->parent[rb] = ra;
	s->groups[ra].cls = cls;
	s->groups[ra].bind = bind;
}

/* Last node that reads any member of v's group. */
static int group_last_use(lm_session *s, int v)
{
	int r = root(s, v), last = -1;
	for (int i = 0; i < s->g->n_values; i++)
		if (root(s, i) == r && s->last_use[i] > last)
			last = s->last_use[i];
	return last;
}

int lm_tensor_check(const lm_value *v, const lm_tensor *t, const char *what,
		    lm_error *e)
{
	char want[128], got[128];
	int ok = t->dtype == v->dtype && t->rank == v->rank;
	for (int i = 0; ok && i < v->rank; i++)
		ok = t->dims[i] == v->dims[i];
	if (ok && !t->data && lm_value_bytes(v))
		return lm_fail(e, -EINVAL, "%s '%s': no data", what, v->name);
	if (ok)
		return 0;
	return lm_fail(e, -EINVAL, "%s '%s': expected %s %s, got %s %s", what,
		       v->name, lm_dtype_name(v->dtype),
		       lm_shape_str(v->rank, v->dims, want, sizeof(want)),
		       lm_dtype_name(t->dtype),
		       lm_shape_str(t->rank, t->dims, got, sizeof(got)));
}

/* "Conv+Add+Relu" for a node with a fused epilogue; a private node that
 * the fusion pass made shows what it computes ("SiLU", "SqueezeExcite",
 * "LayerNormChannels"). */
static char *op_label(const lm_node *n)
{
	char buf[128];
	lm_epilogue ep;
	lm_epilogue_get(n, &ep);
	if (!strcmp(n->op_type, "lm.Act"))
		return strdup(lm_act_name(ep.act));
	if (!strncmp(n->op_type, "lm.", 3))
		return strdup(n->op_type + 3);
	snprintf(buf, sizeof(buf), "%s%s%s%s", n->op_type,
		 ep.sum_input >= 0 ? "+Add" : "", ep.act ? "+" : "",
		 lm_act_name(ep.act));
	return strdup(buf);
}

static int prepare_kernels(lm_session *s, lm_error *e)
{
	lm_graph *g = s->g;
	for (int ni = 0; ni < g->n_nodes; ni++) {
		lm_node *n = &g->nodes[ni];
		const lm_op *op = lm_op_find(n->domain, n->op_type);
		for (int i = 0; i < n->n_inputs; i++) {
			lm_value *v = lm_node_in(g, n, i);
			if (v && lm_value_is_const(v) &&
			    !lm_graph_value_data(g, v, e))
				return -EINVAL;
		}
		if (!op || !op->prepare)
			return lm_fail(e, -ENOTSUP, "node '%s' (%s%s%s): the "
				       "runtime cannot execute this operator",
				       n->name, n->domain[0] ? n->domain : "",
				       n->domain[0] ? "." : "", n->op_type);
		int rc = op->prepare(g, n, &s->k[ni], e);
		if (rc)
			return rc;
		if (!s->k[ni].run)
			return lm_fail(e, -ENOTSUP, "node '%s' (%s): no kernel",
				       n->name, n->op_type);
		s->weight_bytes += s->k[ni].state_bytes;
		s->labels[ni] = op_label(n);
		if (!s->labels[ni])
			return lm_fail(e, -ENOMEM, "out of memory");
	}
	return 0;
}

/* Decide storage groups: graph inputs and outputs, constants, aliases and
 * in-place runs. */
static int plan_groups(lm_session *s, lm_error *e)
{
	lm_graph *g = s->g;
	for (int v = 0; v < g->n_values; v++) {
		lm_value *val = &g->values[v];
		s->parent[v] = v;
		s->groups[v] = (struct group){ G_ARENA, -1, -1, -1, 0, -1 };
		if (lm_value_is_const(val))
			s->groups[v].cls = G_CONST;
		else if (val->kind == LM_VAL_INPUT)
			s->groups[v].cls = G_INPUT;
		s->last_use[v] = -1;
		for (int c = 0; c < val->n_consumers; c++)
			if (val->consumers[c] > s->last_use[v])
				s->last_use[v] = val->consumers[c];
		if (val->kind != LM_VAL_INPUT && !lm_value_is_const(val) &&
		    !lm_value_shape_known(val))
			return lm_fail(e, -EINVAL, "tensor '%s' has no known "
				       "shape", val->name);
	}
	for (int i = 0; i < g->n_inputs; i++)
		s->groups[g->inputs[i]].bind = i;
	for (int j = 0; j < g->n_outputs; j++) {
		int v = g->outputs[j];
		if (s->groups[v].cls != G_ARENA || s->groups[v].bind >= 0) {
			s->copy_outputs = 1; /* an input, constant or repeat */
			continue;
		}
		s->groups[v].cls = G_OUTPUT;
		s->groups[v].bind = j;
	}
	for (int ni = 0; ni < g->n_nodes; ni++) {
		lm_node *n = &g->nodes[ni];
		lm_kernel *k = &s->k[ni];
		if (!(k->alias || k->inplace) || n->n_inputs < 1 ||
		    n->n_outputs < 1 || n->inputs[0] < 0 || n->outputs[0] < 0)
			continue;
		int x = n->inputs[0], y = n->outputs[0];
		struct group *gx = &s->groups[root(s, x)];
		struct group *gy = &s->groups[root(s, y)];
		if (lm_value_bytes(&g->values[x]) !=
		    lm_value_bytes(&g->values[y]))
			continue;
		if (k->alias) {
			int cls = merged_class(gx, gy);
			if (cls < 0)
				continue; /* the kernel copies instead */
			merge(s, x, y, cls);
			s->skip[ni] = 1;
		} else if (gx->cls == G_ARENA && gy->cls == G_ARENA &&
			   group_last_use(s, x) == ni) {
			merge(s, x, y, G_ARENA);
		}
	}
	return 0;
}

static int plan_memory(lm_session *s, lm_error *e)
{
	lm_graph *g = s->g;
	int nb = 0;
	struct lm_block *blocks = calloc((size_t)(g->n_values + g->n_nodes) +
						 1, sizeof(*blocks));
	if (!blocks)
		return lm_fail(e, -ENOMEM, "out of memory");
	for (int v = 0; v < g->n_values; v++) {
		struct group *gr = &s->groups[root(s, v)];
		lm_value *val = &g->values[v];
		if (gr->cls != G_ARENA)
			continue;
		int born = val->producer >= 0 ? val->producer : 0;
		int dies = s->last_use[v] > born ? s->last_use[v] : born;
		if (gr->first < 0 || born < gr->first)
			gr->first = born;
		if (dies > gr->last)
			gr->last = dies;
		if (lm_value_bytes(val) > gr->size)
			gr->size = lm_value_bytes(val);
	}
	for (int v = 0; v < g->n_values; v++)
		if (root(s, v) == v && s->groups[v].cls == G_ARENA &&
		    s->groups[v].first >= 0) {
			s->groups[v].block = nb;
			blocks[nb++] = (struct lm_block){ s->groups[v].size,
							  s->groups[v].first,
							  s->groups[v].last, 0 };
		}
	int first_scratch = nb;
	for (int ni = 0; ni < g->n_nodes; ni++)
		blocks[nb++] = (struct lm_block){ s->k[ni].scratch_bytes, ni,
						  ni, 0 };
	s->arena_bytes = lm_arena_plan(blocks, nb);
	if (s->arena_bytes == (size_t)-1) {
		free(blocks);
		return lm_fail(e, -ENOMEM, "out of memory");
	}
	s->arena = lm_kalloc(s->arena_bytes);
	if (!s->arena) {
		free(blocks);
		return lm_fail(e, -ENOMEM, "cannot allocate an arena of %zu "
			       "bytes", s->arena_bytes);
	}
	for (int v = 0; v < g->n_values; v++) {
		lm_value *val = &g->values[v];
		struct group *gr = &s->groups[root(s, v)];
		lm_tensor_set_shape(&s->t[v], val->dtype,
				    val->rank > 0 ? val->rank : 0, val->dims);
		s->t[v].nbytes = lm_value_bytes(val);
		if (gr->cls == G_CONST && lm_value_is_const(val))
			s->t[v].data = val->data;
		else if (gr->cls == G_CONST) /* alias of a constant */
			s->t[v].data = g->values[root(s, v)].data;
		else if (gr->cls == G_ARENA && gr->block >= 0)
			s->t[v].data = (char *)s->arena +
				       blocks[gr->block].offset;
	}
	for (int ni = 0; ni < g->n_nodes; ni++)
		s->args[ni].scratch = s->k[ni].scratch_bytes
			? (char *)s->arena + blocks[first_scratch + ni].offset
			: NULL;
	free(blocks);
	return 0;
}

static int bind_args(lm_session *s, lm_error *e)
{
	lm_graph *g = s->g;
	size_t n_ptrs = 0;
	for (int ni = 0; ni < g->n_nodes; ni++)
		n_ptrs += (size_t)(g->nodes[ni].n_inputs +
				   g->nodes[ni].n_outputs);
	s->ptrs = calloc(n_ptrs + 1, sizeof(*s->ptrs));
	if (!s->ptrs)
		return lm_fail(e, -ENOMEM, "out of memory");
	lm_tensor **p = s->ptrs;
	for (int ni = 0; ni < g->n_nodes; ni++) {
		lm_node *n = &g->nodes[ni];
		lm_kargs *a = &s->args[ni];
		a->node = n;
		a->in = p;
		a->n_in = n->n_inputs;
		for (int i = 0; i < n->n_inputs; i++)
			*p++ = n->inputs[i] >= 0 ? &s->t[n->inputs[i]] : NULL;
		a->out = p;
		a->n_out = n->n_outputs;
		for (int i = 0; i < n->n_outputs; i++)
			*p++ = n->outputs[i] >= 0 ? &s->t[n->outputs[i]] : NULL;
		a->state = s->k[ni].state;
		a->threads = s->threads;
		s->prof[ni].name = n->name;
		s->prof[ni].op = s->labels[ni];
		s->prof[ni].kernel = s->k[ni].impl ? s->k[ni].impl : "";
		s->prof[ni].flops = lm_node_flops(g, n);
	}
	return 0;
}

int lm_session_create(lm_graph *g, const lm_session_options *o,
		      lm_session **out, lm_error *e)
{
	lm_session_options dflt = { 0 };
	int rc;
	*out = NULL;
	if (!o)
		o = &dflt;
	if (!o->no_fuse && (rc = lm_fuse(g, e)) < 0)
		return rc;
	if (lm_graph_index(g))
		return lm_fail(e, -ENOMEM, "out of memory");
	lm_session *s = calloc(1, sizeof(*s));
	if (!s)
		return lm_fail(e, -ENOMEM, "out of memory");
	size_t nn = (size_t)g->n_nodes + 1, nv = (size_t)g->n_values + 1;
	s->g = g;
	s->threads = o->threads > 1 ? o->threads : 1;
	s->profile = o->profile;
	s->k = calloc(nn, sizeof(*s->k));
	s->args = calloc(nn, sizeof(*s->args));
	s->skip = calloc(nn, 1);
	s->prof = calloc(nn, sizeof(*s->prof));
	s->labels = calloc(nn, sizeof(*s->labels));
	s->t = calloc(nv, sizeof(*s->t));
	s->parent = calloc(nv, sizeof(int));
	s->groups = calloc(nv, sizeof(*s->groups));
	s->last_use = calloc(nv, sizeof(int));
	if (!s->k || !s->args || !s->skip || !s->prof || !s->labels ||
	    !s->t || !s->parent || !s->groups || !s->last_use) {
		lm_session_free(s);
		return lm_fail(e, -ENOMEM, "out of memory");
	}
	lm_blas_threads(s->threads);
	if ((rc = prepare_kernels(s, e)) || (rc = plan_groups(s, e)) ||
	    (rc = plan_memory(s, e)) || (rc = bind_args(s, e))) {
		lm_session_free(s);
		return rc;
	}
	for (int v = 0; v < g->n_values; v++)
		if (lm_value_is_const(&g->values[v]) &&
		    g->values[v].n_consumers)
			s->weight_bytes += g->values[v].nbytes;
	*out = s;
	return 0;
}

void lm_session_free(lm_session *s)
{
	if (!s)
		return;
	for (int ni = 0; s->k && ni < s->g->n_nodes; ni++)
		if (s->k[ni].free_state)
			s->k[ni].free_state(s->k[ni].state);
	for (int ni = 0; s->labels && ni < s->g->n_nodes; ni++)
		free(s->labels[ni]);
	free(s->labels);
	free(s->k);
	free(s->args);
	free(s->ptrs);
	free(s->skip);
	free(s->prof);
	free(s->t);
	free(s->parent);
	free(s->groups);
	free(s->last_use);
	free(s->arena);
	free(s);
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int lm_session_run(lm_session *s, const lm_tensor *inputs, int n_inputs,
		   lm_tensor *outputs, int n_outputs, lm_error *e)
{
	lm_graph *g = s->g;
	int rc;
	if (n_inputs != g->n_inputs || n_outputs != g->n_outputs)
		return lm_fail(e, -EINVAL, "the model has %d input%s and %d "
			       "output%s; %d and %d given", g->n_inputs,
			       g->n_inputs == 1 ? "" : "s", g->n_outputs,
			       g->n_outputs == 1 ? "" : "s", n_inputs,
			       n_outputs);
	for (int i = 0; i < n_inputs; i++)
		if ((rc = lm_tensor_check(&g->values[g->inputs[i]], &inputs[i],
					  "input", e)))
			return rc;
	for (int j = 0; j < n_outputs; j++)
		if ((rc = lm_tensor_check(&g->values[g->outputs[j]],
					  &outputs[j], "output", e)))
			return rc;
	for (int v = 0; v < g->n_values; v++) {
		const struct group *gr = &s->groups[root(s, v)];
		if (gr->cls == G_INPUT)
			s->t[v].data = inputs[gr->bind].data;
		else if (gr->cls == G_OUTPUT)
			s->t[v].data = outputs[gr->bind].data;
	}
	lm_blas_threads(s->threads);
	for (int ni = 0; ni < g->n_nodes; ni++) {
		if (s->skip[ni])
			continue;
		if (!s->profile) {
			s->k[ni].run(&s->args[ni]);
			continue;
		}
		double t0 = now();
		s->k[ni].run(&s->args[ni]);
		s->prof[ni].seconds += now() - t0;
		s->prof[ni].runs++;
	}
	if (s->copy_outputs)
		for (int j = 0; j < n_outputs; j++) {
			int v = g->outputs[j];
			if (s->t[v].data != outputs[j].data)
				memcpy(outputs[j].data, s->t[v].data,
				       lm_value_bytes(&g->values[v]));
		}
	return 0;
}

size_t lm_session_arena_bytes(const lm_session *s)
{
	return s->arena_bytes;
}

size_t lm_session_weight_bytes(const lm_session *s)
{
	return s->weight_bytes;
}

int lm_session_profile(const lm_session *s, const lm_node_time **rows)
{
	*rows = s->prof;
	return s->g->n_nodes;
}
