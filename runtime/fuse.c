/*
 * fuse.c: graph rewrites the executor makes before preparing kernels.
 *
 *   Conv -> BatchNormalization        BN folded into the conv's weights
 *   Pad (zeros, spatial) -> Conv       the padding becomes the conv's pads
 *   P -> Add(residual)                 the add runs in P's epilogue
 *   P -> activation                    ditto (Relu, Clip, LeakyRelu,
 *                                      Sigmoid, HardSigmoid, HardSwish,
 *                                      Tanh, and x*Sigmoid(x) as SiLU)
 * where P is a Conv, ConvTranspose, Gemm or MatMul.  An epilogue is
 * recorded as private attributes ("lm.act", "lm.alpha", "lm.beta",
 * "lm.sum"; see ops/kernel.h), so the result is still a plain graph whose
 * node count and tensors shrink.  Each rewrite needs the intermediate
 * tensor to have no other reader and not to be a graph output.
 */
#include "fuse.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/kernel.h"

static int is(const lm_node *n, const char *op)
{
	return (!n->domain[0] || !strcmp(n->domain, "ai.onnx")) &&
	       !strcmp(n->op_type, op);
}

/* The only reader of v, or NULL when it has several, none, or is an
 * output of the graph. */
static lm_node *sole_reader(lm_graph *g, const lm_value *v)
{
	if (!v || v->is_output || v->n_consumers != 1)
		return NULL;
	return &g->nodes[v->consumers[0]];
}

static int has_epilogue(const lm_node *n)
{
	return lm_node_attr(n, "lm.act") || lm_node_attr(n, "lm.sum");
}

static int product_op(const lm_node *n)
{
	return is(n, "Conv") || is(n, "ConvTranspose") || is(n, "Gemm") ||
	       is(n, "MatMul");
}

static const float *const_floats(lm_graph *g, lm_value *v, int64_t count)
{
	if (!v || !lm_value_is_const(v) || v->dtype != LM_DT_FLOAT ||
	    lm_shape_numel(v->rank, v->dims) != count)
		return NULL;
	return lm_graph_value_data(g, v, NULL);
}

/* A new constant value holding a copy of data.  Returns its index. */
static int new_constant(lm_graph *g, const char *base, const char *suffix,
			const lm_value *like, const void *data)
{
	char name[512];
	snprintf(name, sizeof(name), "%s%s", base, suffix);
	for (int k = 1; lm_graph_find(g, name) >= 0; k++)
		snprintf(name, sizeof(name), "%s%s.%d", base, suffix, k);
	int v = lm_graph_add_value(g, name, LM_VAL_CONSTANT, NULL);
	if (v < 0)
		return v;
	lm_value *nv = &g->values[v];
	lm_value_set_shape(nv, like->dtype, like->rank, like->dims);
	nv->nbytes = lm_value_bytes(nv);
	nv->data = malloc(nv->nbytes ? nv->nbytes : 1);
	if (!nv->data)
		return -ENOMEM;
	memcpy(nv->data, data, nv->nbytes);
	return v;
}

static int set_input(lm_node *n, int i, int value)
{
	if (i >= n->n_inputs) {
		int *p = realloc(n->inputs, (size_t)(i + 1) * sizeof(int));
		if (!p)
			return -ENOMEM;
		for (int k = n->n_inputs; k < i; k++)
			p[k] = -1;
		n->inputs = p;
		n->n_inputs = i + 1;
	}
	n->inputs[i] = value;
	return 0;
}

/* Conv -> BatchNormalization: W'[c] = W[c] * s, b'[c] = (b[c] - mean) * s
 * + beta, with s = gamma / sqrt(var + eps). */
static int fuse_bn(lm_graph *g, int ni, uint8_t *dead)
{
	lm_node *bn = &g->nodes[ni];
	lm_value *x = lm_node_in(g, bn, 0);
	if (!is(bn, "BatchNormalization") || !x || x->producer < 0 ||
	    bn->n_outputs > 1 || sole_reader(g, x) != bn)
		return 0;
	int ci = x->producer;
	lm_node *conv = &g->nodes[ci];
	lm_value *w = lm_node_in(g, conv, 1), *b = lm_node_in(g, conv, 2);
	if (!is(conv, "Conv") || has_epilogue(conv) || !w || w->rank < 3 ||
	    !lm_value_is_const(w) || w->dtype != LM_DT_FLOAT)
		return 0;
	int64_t cout = w->dims[0];
	const float *gamma = const_floats(g, lm_node_in(g, bn, 1), cout);
	const float *beta = const_floats(g, lm_node_in(g, bn, 2), cout);
	const float *mean = const_floats(g, lm_node_in(g, bn, 3), cout);
	const float *var = const_floats(g, lm_node_in(g, bn, 4), cout);
	const float *wd = lm_graph_value_data(g, w, NULL);
	const float *bd = b ? const_floats(g, b, cout) : NULL;
	if (!gamma || !beta || !mean || !var || !wd || (b && !bd))
		return 0;
	float eps = lm_attr_float(bn, "epsilon", 1e-5f);
	size_t per = (size_t)(lm_shape_numel(w->rank, w->dims) / cout);
	float *nw = malloc(lm_value_bytes(w)), *nb = malloc((size_t)cout * 4);
	int rc = -ENOMEM;
	if (!nw || !nb)
		goto out;
	for (int64_t c = 0; c < cout; c++) {
		float s = gamma[c] / sqrtf(var[c] + eps);
		for (size_t k = 0; k < per; k++)
			nw[(size_t)c * per + k] = wd[(size_t)c * per + k] * s;
		nb[c] = ((bd ? bd[c] : 0.0f) - mean[c]) * s + beta[c];
	}
	lm_value bias_like = { 0 };
	lm_value_set_shape(&bias_like, LM_DT_FLOAT, 1, &cout);
	int wv = new_constant(g, w->name, ".bn", w, nw);
	int bv = wv < 0 ? wv : new_constant(g, w->name, ".bn_bias", &bias_like,
					    nb);
	if (wv < 0 || bv < 0) {
		rc = wv < 0 ? wv : bv;
		goto out;
	}
	/* values may have moved: take the nodes again */
	conv = &g->nodes[ci];
	bn = &g->nodes[ni];
	if ((rc = set_input(conv, 1, wv)) || (rc = set_input(conv, 2, bv)))
		goto out;
	conv->outputs[0] = bn->outputs[0];
	dead[ni] = 1;
	rc = 1;
out:
	free(nw);
	free(nb);
	return rc;
}

/* Pad with zeros on spatial dims only -> Conv: add to the conv's pads. */
static int fuse_pad(lm_graph *g, int ni, uint8_t *dead)
{
	lm_node *pad = &g->nodes[ni];
	lm_value *y = lm_node_out(g, pad, 0), *x = lm_node_in(g, pad, 0);
	lm_node *conv = sole_reader(g, y);
	int64_t pads[2 * LM_MAX_RANK];
	int np = 0;
	if (!is(pad, "Pad") || !conv || !is(conv, "Conv") || !x ||
	    x->rank < 3 || conv->inputs[0] != pad->outputs[0] ||
	    strcmp(lm_attr_str(pad, "mode", "constant"), "constant") ||
	    strcmp(lm_attr_str(conv, "auto_pad", "NOTSET"), "NOTSET"))
		return 0;
	if (g->opset < 11) {
		const int64_t *p = lm_attr_ints(pad, "pads", &np);
		if (!p || np != 2 * x->rank || lm_attr_float(pad, "value", 0))
			return 0;
		memcpy(pads, p, (size_t)np * sizeof(int64_t));
	} else {
		lm_value *pv = lm_node_in(g, pad, 1), *cv = lm_node_in(g, pad, 2);
		if (pad->n_inputs > 3 && pad->inputs[3] >= 0)
			return 0; /* axes */
		np = pv ? lm_value_read_ints(g, pv, pads, 2 * LM_MAX_RANK, NULL)
			: -1;
		if (np != 2 * x->rank)
			return 0;
		if (cv) {
			const float *c = const_floats(g, cv, 1);
			if (!c || c[0] != 0.0f)
				return 0;
		}
	}
	int sp = x->rank - 2, n_cp;
	for (int i = 0; i < np; i++)
		if (pads[i] < 0 || ((i % x->rank) < 2 && pads[i] != 0))
			return 0;
	const int64_t *cp = lm_attr_ints(conv, "pads", &n_cp);
	lm_attr *a = (lm_attr *)lm_node_attr(conv, "pads");
	if (!a) {
		a = lm_node_add_attr(conv, "pads", LM_ATTR_INTS);
		if (!a)
			return -ENOMEM;
		cp = NULL;
		n_cp = 0;
	}
	if (n_cp != 0 && n_cp != 2 * sp)
		return 0;
	int64_t *nv = calloc((size_t)(2 * sp), sizeof(int64_t));
	if (!nv)
		return -ENOMEM;
	for (int i = 0; i < sp; i++) {
		nv[i] = (cp ? cp[i] : 0) + pads[2 + i];
		nv[sp + i] = (cp ? cp[sp + i] : 0) + pads[x->rank + 2 + i];
	}
	free(a->ints);
	a->ints = nv;
	a->n = 2 * sp;
	a->type = LM_ATTR_INTS;
	conv->inputs[0] = pad->inputs[0];
	dead[ni] = 1;
	return 1;
}

static int add_int_attr(lm_node *n, const char *name, int64_t v)
{
	lm_attr *a = lm_node_add_attr(n, name, LM_ATTR_INT);
	if (!a)
		return -ENOMEM;
	a->i = v;
	return 0;
}

static int add_float_attr(lm_node *n, const char *name, float v)
{
	lm_attr *a = lm_node_add_attr(n, name, LM_ATTR_FLOAT);
	if (!a)
		return -ENOMEM;
	a->f = v;
	return 0;
}

/*
 * P -> Add(x, r): P moves to the Add's place in the order (its inputs all
 * come earlier, and only the Add read its output), takes r as an extra input
 * and adds it in its epilogue.  The node slots are swapped so that the
 * Add's slot holds P and the old slot, now dead, holds the Add.
 */
static int fuse_sum(lm_graph *g, int ni, uint8_t *dead)
{
	lm_node *add = &g->nodes[ni];
	lm_value *y = lm_node_out(g, add, 0);
	if (!is(add, "Add") || add->n_inputs != 2 || !y)
		return 0;
	int best = -1, other = -1;
	for (int k = 0; k < 2; k++) {
		lm_value *x = lm_node_in(g, add, k), *r = lm_node_in(g, add, 1 - k);
		if (!x || !r || x->producer < 0 || lm_value_is_const(r) ||
		    sole_reader(g, x) != add || dead[x->producer])
			continue;
		lm_node *p = &g->nodes[x->producer];
		if (!product_op(p) || has_epilogue(p) || x->rank != y->rank ||
		    r->rank != y->rank || r->dtype != LM_DT_FLOAT ||
		    memcmp(x->dims, y->dims, (size_t)y->rank * 8) ||
		    memcmp(r->dims, y->dims, (size_t)y->rank * 8))
			continue;
		if (x->producer > best) {
			best = x->producer;
			other = add->inputs[1 - k];
		}
	}
	if (best < 0)
		return 0;
	lm_node tmp = g->nodes[ni];
	g->nodes[ni] = g->nodes[best];
	g->nodes[best] = tmp;
	/* outputs stay with their slots' roles: the fused node writes y */
	int *outs = g->nodes[ni].outputs, n_outs = g->nodes[ni].n_outputs;
	g->nodes[ni].outputs = g->nodes[best].outputs;
	g->nodes[ni].n_outputs = g->nodes[best].n_outputs;
	g->nodes[best].outputs = outs;
	g->nodes[best].n_outputs = n_outs;
	lm_node *p = &g->nodes[ni];
	int idx = p->n_inputs;
	if (set_input(p, idx, other) || add_int_attr(p, "lm.sum", idx))
		return -ENOMEM;
	dead[best] = 1;
	return 1;
}

/* P -> activation, or P -> Sigmoid + Mul (SiLU). */
static int fuse_act(lm_graph *g, int ni, uint8_t *dead)
{
	lm_node *a = &g->nodes[ni];
	lm_value *x = lm_node_in(g, a, 0);
	float alpha = 0, beta = 0;
	enum lm_act act = LM_ACT_NONE;
	int mul = -1;
	if (!x || x->producer < 0 || dead[x->producer] || a->n_outputs != 1)
		return 0;
	lm_node *p = &g->nodes[x->producer];
	if (!product_op(p) || lm_node_attr(p, "lm.act") ||
	    x->dtype != LM_DT_FLOAT)
		return 0;
	if (is(a, "Sigmoid") && x->n_consumers == 2 && !x->is_output) {
		/* x * Sigmoid(x) */
		lm_value *s = lm_node_out(g, a, 0);
		lm_node *m = sole_reader(g, s);
		if (!m || !is(m, "Mul") || m->n_inputs != 2)
			return 0;
		int xi = (int)(x - g->values), si = (int)(s - g->values);
		if (!((m->inputs[0] == xi && m->inputs[1] == si) ||
		      (m->inputs[1] == xi && m->inputs[0] == si)))
			return 0;
		act = LM_ACT_SILU;
		mul = (int)(m - g->nodes);
	} else {
		if (sole_reader(g, x) != a)
			return 0;
		if (is(a, "Relu")) {
			act = LM_ACT_RELU;
		} else if (is(a, "LeakyRelu")) {
			act = LM_ACT_LEAKY_RELU;
			alpha = lm_attr_float(a, "alpha", 0.01f);
		} else if (is(a, "Sigmoid")) {
			act = LM_ACT_SIGMOID;
		} else if (is(a, "Tanh")) {
			act = LM_ACT_TANH;
		} else if (is(a, "HardSwish")) {
			act = LM_ACT_HARD_SWISH;
		} else if (is(a, "HardSigmoid")) {
			act = LM_ACT_HARD_SIGMOID;
			alpha = lm_attr_float(a, "alpha", 0.2f);
			beta = lm_attr_float(a, "beta", 0.5f);
		} else if (is(a, "Clip")) {
			act = LM_ACT_CLIP;
			alpha = -INFINITY;
			beta = INFINITY;
			if (g->opset < 11) {
				alpha = lm_attr_float(a, "min", alpha);
				beta = lm_attr_float(a, "max", beta);
			} else {
				for (int k = 1; k < a->n_inputs; k++) {
					lm_value *b = lm_node_in(g, a, k);
					const float *v = b ? const_floats(g, b, 1)
							   : NULL;
					if (b && !v)
						return 0;
					if (v && k == 1)
						alpha = v[0];
					if (v && k == 2)
						beta = v[0];
				}
			}
		} else {
			return 0;
		}
	}
	lm_node *last = mul >= 0 ? &g->nodes[mul] : a;
	p->outputs[0] = last->outputs[0];
	if (add_int_attr(p, "lm.act", act) ||
	    add_float_attr(p, "lm.alpha", alpha) ||
	    add_float_attr(p, "lm.beta", beta))
		return -ENOMEM;
	dead[ni] = 1;
	if (mul >= 0)
		dead[mul] = 1;
	return 1;
}

typedef int (*rewrite_fn)(lm_graph *g, int ni, uint8_t *dead);

static int run_pass(lm_graph *g, rewrite_fn fn, lm_error *e)
{
	uint8_t *dead = calloc((size_t)g->n_nodes + 1, 1);
	int changed = 0, rc = 0;
	if (!dead)
		return lm_fail(e, -ENOMEM, "out of memory");
	for (int ni = 0; ni < g->n_nodes && rc >= 0; ni++) {
		if (dead[ni])
			continue;
		rc = fn(g, ni, dead);
		changed += rc > 0;
	}
	if (rc < 0)
		rc = lm_fail(e, rc, "out of memory while fusing");
	else if (changed)
		rc = lm_graph_remove_nodes(g, dead, e);
	free(dead);
	return rc < 0 ? rc : changed;
}

int lm_fuse(lm_graph *g, lm_error *e)
{
	static const rewrite_fn passes[] = { fuse_bn, fuse_pad, fuse_sum,
					     fuse_act };
	int total = 0;
	if (lm_graph_index(g))
		return lm_fail(e, -ENOMEM, "out of memory");
	for (size_t i = 0; i < sizeof(passes) / sizeof(passes[0]); i++) {
		int rc = run_pass(g, passes[i], e);
		if (rc < 0)
			return rc;
		total += rc;
	}
	return total;
}
