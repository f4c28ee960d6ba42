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
 * Running is then one pass over the nodes calling prepared kernels; at a
 * batch above 1 the first nodes may run once per sample before the rest
 * runs on the whole batch (plan_split: the first layers of the mobile
 * networks then work from cache).
 */
#include "lamina/runtime.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lamina/batch.h"

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
	/* Sample by sample (plan_split): nodes [0, cut) run once per sample
	 * on the tensors t1, prepared at batch 1. */
	int cut;                /* 0: the whole batch at once */
	int64_t samples;
	uint8_t *mode;          /* per value: enum split_mode */
	size_t *slice;          /* per value: bytes per sample to step t1 */
	lm_tensor *t1;          /* per value: what nodes before cut see */
};

/* A value's part in a sample-by-sample prefix. */
enum split_mode {
	SPLIT_OUT,      /* not read or written before the cut */
	SPLIT_FIXED,    /* read or written before the cut, holds no batch */
	SPLIT_STEP,     /* holds the batch on axis 0, lives past the cut (or
			 * is bound): t1 steps through its samples */
	SPLIT_OWN,      /* holds the batch, lives only before the cut: one
			 * sample's worth of memory, reused by every sample */
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

/*
 * Sample by sample.  At batch N every layer's output is N times one
 * sample's, and in the first layers of the mobile networks that is more
 * than the caches hold (MobileNetV2 at batch 8: 38 MB after its first
 * expanding 1x1 conv, against 32 MB of L3), so each layer reads its input
 * back from memory; at batch 1 the same layers run from cache.  The conv
 * kernels loop over the batch anyway, so little is lost by running the
 * first nodes one sample at a time, up to the last whose output at batch
 * N is at least SPLIT_BYTES, and the rest (where small planes make the
 * batch worth having: squeeze-excite, 1x1 convs on few pixels, the
 * classifier) on the whole batch.  What is lost is reading the weights
 * of the prefix once per sample: a node only extends the prefix when its
 * output is at least SPLIT_REUSE times the weights read N times (VGG-11
 * stops after its second conv, ResNet-50 within layer1).
 *
 * Measured at batch 8, one thread (2-core EPYC, AVX-512, 32 MB L3),
 * median ms whole then split: MobileNetV2 72.7 / 63.6, MobileNetV3-Large
 * 51.3 / 46.2, MnasNet 0.5 25.1 / 24.1, SqueezeNet 1.1 48.5 / 45.9,
 * ResNet-50 571 / 535, DenseNet-169 461 / 453; ResNet-18, VGG-11,
 * RegNetX, Inception v3 within the noise.
 *
 * The prefix may only hold nodes that keep samples apart (lm_batch_find)
 * with the batch as axis 0 of every tensor that has it, so that one
 * sample of a tensor is a contiguous slice.
 */
#define SPLIT_BYTES ((size_t)4 << 20)
#define SPLIT_REUSE 4

static int split_ok(lm_session *s, const lm_batch *b, int ni)
{
	lm_graph *g = s->g;
	const lm_node *n = &g->nodes[ni];
	if (b->stop >= 0 && ni >= b->stop)
		return 0;
	for (int i = 0; i < n->n_inputs + n->n_outputs; i++) {
		int v = i < n->n_inputs ? n->inputs[i]
					: n->outputs[i - n->n_inputs];
		if (v < 0 || lm_value_is_const(&g->values[v]))
			continue;
		lm_batch_pos p = lm_batch_of(b, v);
		if (p.axis < 0)
			continue;
		if (p.axis != 0 || p.outer != 1 || p.inner != 1 ||
		    g->values[v].dims[0] != s->samples)
			return 0;
	}
	return 1;
}

static void split_mark(lm_session *s, const lm_batch *b, int v)
{
	lm_graph *g = s->g;
	lm_value *val = v >= 0 ? &g->values[v] : NULL;
	if (v < 0 || s->mode[v] != SPLIT_OUT)
		return;
	if (lm_value_is_const(val) || lm_batch_of(b, v).axis < 0) {
		s->mode[v] = SPLIT_FIXED;
		return;
	}
	int own = val->kind == LM_VAL_NODE && !val->is_output;
	for (int c = 0; own && c < val->n_consumers; c++)
		own = val->consumers[c] < s->cut;
	s->mode[v] = own ? SPLIT_OWN : SPLIT_STEP;
	s->slice[v] = lm_value_bytes(val) / (size_t)s->samples;
}

/* Decide s->cut (at most `nodes` when positive, none when negative) and
 * every value's mode; no split (cut 0) when the batch is 1 or the graph's
 * batch cannot be followed. */
static int plan_split(lm_session *s, int nodes, lm_error *e)
{
	lm_graph *g = s->g;
	lm_batch b = { .stop = -1 };
	lm_batch_pos *in = calloc((size_t)g->n_inputs + 1, sizeof(*in));
	int rc = 0;

	s->mode = calloc((size_t)g->n_values + 1, 1);
	s->slice = calloc((size_t)g->n_values + 1, sizeof(*s->slice));
	s->t1 = calloc((size_t)g->n_values + 1, sizeof(*s->t1));
	if (!in || !s->mode || !s->slice || !s->t1) {
		free(in);
		return lm_fail(e, -ENOMEM, "out of memory");
	}
	s->samples = 0;
	for (int i = 0; i < g->n_inputs; i++) {
		lm_value *v = &g->values[g->inputs[i]];
		if (v->rank < 1 || v->dims[0] < 2 ||
		    (s->samples && v->dims[0] != s->samples))
			goto out;  /* no batch, or not one along axis 0 */
		s->samples = v->dims[0];
		in[i] = (lm_batch_pos){ 0, 1, 1 };
	}
	if (!s->samples || nodes < 0)
		goto out;
	if ((rc = lm_batch_find(g, s->samples, in, &b, e))) {
		rc = rc == -ENOMEM ? rc : 0;  /* else: run the batch whole */
		goto out;
	}
	size_t weights = 0;  /* of the nodes so far */
	for (int ni = 0; ni < g->n_nodes && split_ok(s, &b, ni); ni++) {
		const lm_node *n = &g->nodes[ni];
		if (nodes > 0) {
			s->cut = ni < nodes ? ni + 1 : s->cut;
			continue;
		}
		for (int i = 0; i < n->n_inputs; i++)
			if (n->inputs[i] >= 0 &&
			    lm_value_is_const(&g->values[n->inputs[i]]))
				weights += lm_value_bytes(
					&g->values[n->inputs[i]]);
		for (int j = 0; j < n->n_outputs; j++) {
			size_t out = n->outputs[j] >= 0 ? lm_value_bytes(
				&g->values[n->outputs[j]]) : 0;
			if (out >= SPLIT_BYTES && out >= SPLIT_REUSE *
			    (size_t)s->samples * weights)
				s->cut = ni + 1;
		}
	}
	/* one node alone gains nothing: its output is written for the whole
	 * batch as before, and nothing of it is read back from cache */
	if (nodes == 0 && s->cut < 2)
		s->cut = 0;
	for (int ni = 0; ni < s->cut; ni++) {
		const lm_node *n = &g->nodes[ni];
		for (int i = 0; i < n->n_inputs; i++)
			split_mark(s, &b, n->inputs[i]);
		for (int j = 0; j < n->n_outputs; j++)
			split_mark(s, &b, n->outputs[j]);
	}
out:
	lm_batch_clear(&b);
	free(in);
	return rc;
}

/* Set dims[0] of every value that holds the batch before the cut to
 * `batch`: 1 to prepare the nodes before it, s->samples to restore. */
static void split_shapes(lm_session *s, int64_t batch)
{
	for (int v = 0; v < s->g->n_values; v++)
		if (s->mode[v] == SPLIT_STEP || s->mode[v] == SPLIT_OWN)
			s->g->values[v].dims[0] = batch;
}

static int prepare_node(lm_session *s, int ni, lm_error *e)
{
	lm_graph *g = s->g;
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
	return 0;
}

/* Every node's kernel; those before the cut at batch 1. */
static int prepare_kernels(lm_session *s, lm_error *e)
{
	lm_graph *g = s->g;
	int rc = 0;
	if (s->cut)
		split_shapes(s, 1);
	for (int ni = 0; ni < g->n_nodes && !rc; ni++) {
		if (ni == s->cut && s->cut)
			split_shapes(s, s->samples);
		rc = prepare_node(s, ni, e);
	}
	if (s->cut)  /* again, in case the loop stopped before the cut */
		split_shapes(s, s->samples);
	return rc;
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
		    lm_value_bytes(&g->values[y]) ||
		    (s->mode[x] == SPLIT_OWN) != (s->mode[y] == SPLIT_OWN))
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
		size_t bytes = s->mode[v] == SPLIT_OWN ? s->slice[v]
						       : lm_value_bytes(val);
		/* made before the cut and kept: every sample's pass writes
		 * it, from the first node on */
		if (born < s->cut && s->mode[v] != SPLIT_OWN)
			born = 0;
		if (gr->first < 0 || born < gr->first)
			gr->first = born;
		if (dies > gr->last)
			gr->last = dies;
		if (bytes > gr->size)
			gr->size = bytes;
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
	for (int v = 0; v < g->n_values; v++) {
		if (s->mode[v] == SPLIT_OUT)
			continue;
		s->t1[v] = s->t[v];
		if (s->mode[v] == SPLIT_STEP || s->mode[v] == SPLIT_OWN) {
			s->t1[v].dims[0] = 1;
			s->t1[v].nbytes = s->slice[v];
		}
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
		lm_tensor *t = ni < s->cut ? s->t1 : s->t;
		a->node = n;
		a->in = p;
		a->n_in = n->n_inputs;
		for (int i = 0; i < n->n_inputs; i++)
			*p++ = n->inputs[i] >= 0 ? &t[n->inputs[i]] : NULL;
		a->out = p;
		a->n_out = n->n_outputs;
		for (int i = 0; i < n->n_outputs; i++)
			*p++ = n->outputs[i] >= 0 ? &t[n->outputs[i]] : NULL;
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
	if ((rc = plan_split(s, o->split_nodes, e)) ||
	    (rc = prepare_kernels(s, e)) || (rc = plan_groups(s, e)) ||
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
	free(s->mode);
	free(s->slice);
	free(s->t1);
	free(s->arena);
	free(s);
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Nodes [from, to) once; count = 0 adds to the profile's time but not to
 * its runs (a prefix's second and later samples). */
static void run_nodes(lm_session *s, int from, int to, int count)
{
	for (int ni = from; ni < to; ni++) {
		if (s->skip[ni])
			continue;
		if (!s->profile) {
			s->k[ni].run(&s->args[ni]);
			continue;
		}
		double t0 = now();
		s->k[ni].run(&s->args[ni]);
		s->prof[ni].seconds += now() - t0;
		s->prof[ni].runs += count;
	}
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
	for (int64_t smp = 0; s->cut && smp < s->samples; smp++) {
		for (int v = 0; v < g->n_values; v++)
			if (s->mode[v] != SPLIT_OUT)
				s->t1[v].data = (char *)s->t[v].data +
						(s->mode[v] == SPLIT_STEP
						 ? (size_t)smp * s->slice[v] : 0);
		run_nodes(s, 0, s->cut, smp == 0);
	}
	run_nodes(s, s->cut, g->n_nodes, 1);
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
