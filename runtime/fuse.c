/*
 * fuse.c: graph rewrites the executor makes before preparing kernels.
 *
 * First, exporters' decompositions become single nodes:
 *   ReduceMean, Sub, Pow, ReduceMean, Add, Sqrt, Div (, Mul, Add)
 *                                      LayerNormalization (last axis), or
 *                                      lm.LayerNormChannels (axis 1)
 *   x/sqrt2, Erf, +1, *x, *0.5         Gelu (and the tanh form, with its
 *                                      x + 0.044715 x^3 inner sum)
 *   x * Sigmoid(x), x * HardSigmoid(x) lm.Act (SiLU, HardSwish)
 * Then layouts and products:
 *   Transpose(0,2,3,1) -> pointwise chain -> Transpose(0,3,1,2)
 *                                      the chain in NCHW: LayerNorm over
 *                                      channels, MatMul (+ Add bias) as a
 *                                      1x1 Conv, elementwise ops as they
 *                                      are (ConvNeXt's blocks)
 *   Conv -> BatchNormalization        BN folded into the conv's weights
 *   Pad (zeros, spatial) -> Conv       the padding becomes the conv's pads
 *   Pad (zeros) -> AveragePool         ditto, counted (count_include_pad)
 *   Conv -> Mul/Add by a per-channel constant
 *                                      folded into weights and bias
 *   MatMul -> Add of a constant row    the MatMul adds it ("lm.bias")
 *   P -> Add(residual)                 the add runs in P's epilogue
 *   P -> activation                    ditto (Relu, Clip, LeakyRelu,
 *                                      Sigmoid, HardSigmoid, HardSwish,
 *                                      Tanh, SiLU, Gelu)
 * where P is a Conv, ConvTranspose, Gemm or MatMul (or, for the
 * activation, a BatchNormalization left standing).  Last,
 *   GlobalAveragePool -> 1x1 Conv (+act) -> 1x1 Conv (+act) -> Mul with
 *   the pool's input                   lm.SqueezeExcite, one kernel
 * An epilogue is recorded as private attributes ("lm.act", "lm.alpha",
 * "lm.beta", "lm.sum"; see ops/kernel.h) and the fused forms are private
 * operators ("lm." names, ops/fused.c and norm.c), so the result is
 * still a plain graph whose node count and tensors shrink.  Each rewrite
 * needs the intermediate tensors to have no other reader and not to be
 * graph outputs; a node that takes over a pattern's place is its last
 * one, so the order stays topological.
 */
#include "fuse.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/kernel.h"
#include "ops/ops.h"

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

/* The value of a one-element float or double constant, in *out. */
static int const_scalar(lm_graph *g, lm_value *v, float *out)
{
	if (!v || !lm_value_is_const(v) ||
	    (v->dtype != LM_DT_FLOAT && v->dtype != LM_DT_DOUBLE) ||
	    v->rank < 0 || lm_shape_numel(v->rank, v->dims) != 1)
		return 0;
	const void *d = lm_graph_value_data(g, v, NULL);
	if (!d)
		return 0;
	*out = (float)lm_ops_get_f(d, v->dtype, 0);
	return 1;
}

static int near(float a, float b)
{
	return fabsf(a - b) <= 1e-5f * fabsf(b);
}

/* Node ni is Op(vi, c) or Op(c, vi) with c a scalar constant equal (to
 * 1e-5) to want: returns 1.  Order matters to the caller only for Sub and
 * Div, which pass `first` (vi must be input 0). */
static int op_with_scalar(lm_graph *g, const lm_node *n, const char *op,
			  int vi, float want, int first)
{
	float c;
	if (!is(n, op) || n->n_inputs != 2 || n->n_outputs != 1)
		return 0;
	for (int k = 0; k < 2; k++)
		if (n->inputs[k] == vi && (!first || k == 0) &&
		    const_scalar(g, lm_node_in(g, n, 1 - k), &c) &&
		    near(c, want))
			return 1;
	return 0;
}

/* The input of binary node n that is not vi, or -1 when vi is neither
 * (or both). */
static int other_input(const lm_node *n, int vi)
{
	if (n->n_inputs != 2)
		return -1;
	if (n->inputs[0] == vi && n->inputs[1] != vi)
		return n->inputs[1];
	if (n->inputs[1] == vi && n->inputs[0] != vi)
		return n->inputs[0];
	return -1;
}

/* The sole reader of node ni's only output, unless dead. */
static lm_node *next_node(lm_graph *g, const lm_node *n, const uint8_t *dead)
{
	if (n->n_outputs != 1)
		return NULL;
	lm_node *r = sole_reader(g, lm_node_out(g, n, 0));
	return r && !dead[r - g->nodes] ? r : NULL;
}

static int out_of(const lm_node *n)
{
	return n->n_outputs >= 1 ? n->outputs[0] : -1;
}

/* Turn node n into op (its attributes must be none or kept on purpose):
 * the node that takes over a matched pattern's place. */
static int become(lm_node *n, const char *op)
{
	char *t = strdup(op);
	if (!t)
		return -ENOMEM;
	free(n->op_type);
	n->op_type = t;
	return 0;
}

/* The node's inputs become values[0..count). */
static int set_inputs(lm_node *n, const int *values, int count)
{
	if (count > n->n_inputs) {
		int *p = realloc(n->inputs, (size_t)count * sizeof(int));
		if (!p)
			return -ENOMEM;
		n->inputs = p;
	}
	memcpy(n->inputs, values, (size_t)count * sizeof(int));
	n->n_inputs = count;
	return 0;
}

/* A new constant value holding a copy of data, shaped like `like`.
 * Returns its index.  Adding a value may move g->values: callers take
 * value pointers again afterwards. */
static int new_constant(lm_graph *g, const char *base, const char *suffix,
			const lm_value *like, const void *data)
{
	char name[512];
	lm_dtype dt = like->dtype;
	int rank = like->rank;
	int64_t dims[LM_MAX_RANK];
	memcpy(dims, like->dims, sizeof(dims));
	snprintf(name, sizeof(name), "%s%s", base, suffix);
	for (int k = 1; lm_graph_find(g, name) >= 0; k++)
		snprintf(name, sizeof(name), "%s%s.%d", base, suffix, k);
	int v = lm_graph_add_value(g, name, LM_VAL_CONSTANT, NULL);
	if (v < 0)
		return v;
	lm_value *nv = &g->values[v];
	lm_value_set_shape(nv, dt, rank, dims);
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

static int add_int_attr(lm_node *n, const char *name, int64_t v);
static int add_float_attr(lm_node *n, const char *name, float v);

static int same_shape(const lm_value *a, const lm_value *b)
{
	return a->rank == b->rank && a->rank >= 0 &&
	       !memcmp(a->dims, b->dims, (size_t)a->rank * sizeof(int64_t));
}

/* ---- decompositions into single nodes ---- */

/* The one axis a ReduceMean (keepdims) averages over, in [0, rank), or
 * -1.  Axes come as an attribute before opset 18, as an input after. */
static int reduce_axis(lm_graph *g, const lm_node *n, int rank)
{
	int64_t axes[LM_MAX_RANK];
	int na;

	if (!is(n, "ReduceMean") || n->n_outputs != 1 ||
	    lm_attr_int(n, "keepdims", 1) != 1)
		return -1;
	const int64_t *a = lm_attr_ints(n, "axes", &na);
	if (a) {
		if (na != 1)
			return -1;
		axes[0] = a[0];
	} else {
		lm_value *av = n->n_inputs > 1 ? lm_node_in(g, n, 1) : NULL;
		if (!av || !lm_value_is_const(av) ||
		    lm_value_read_ints(g, av, axes, LM_MAX_RANK, NULL) != 1)
			return -1;
	}
	int64_t ax = axes[0] < 0 ? axes[0] + rank : axes[0];
	return ax >= 0 && ax < rank ? (int)ax : -1;
}

/* v is a float constant holding one value per index of x's axis `ax`,
 * broadcasting against x along that axis only ([C] for the last axis,
 * [C, 1, 1] or [1, C, 1, 1] for channels of NCHW). */
static int axis_const(lm_graph *g, lm_value *v, const lm_value *x, int ax)
{
	if (!v || !lm_value_is_const(v) || v->dtype != LM_DT_FLOAT ||
	    v->rank < 1 || v->rank > x->rank ||
	    !lm_graph_value_data(g, v, NULL))
		return 0;
	for (int i = 0; i < v->rank; i++) {
		int xi = x->rank - v->rank + i;
		if (v->dims[i] != (xi == ax ? x->dims[ax] : 1))
			return 0;
	}
	return 1;
}

/*
 * Layer normalisation as exporters write it out (torch before opset 17):
 *   m = ReduceMean(x, [a]); d = Sub(x, m); v = ReduceMean(Pow(d, 2), [a])
 *   y = Div(d, Sqrt(Add(v, eps)))  [Mul(y, gamma)]  [Add(y, beta)]
 * over the last axis becomes LayerNormalization, over axis 1 (a
 * channels-first LayerNorm2d) lm.LayerNormChannels.  The anchor is the
 * first ReduceMean; the last node takes the pattern's place.
 */
static int fuse_layernorm(lm_graph *g, int ni, uint8_t *dead)
{
	lm_node *m = &g->nodes[ni];
	lm_value *x = lm_node_in(g, m, 0);
	if (!is(m, "ReduceMean") || !x || x->dtype != LM_DT_FLOAT ||
	    x->rank < 2)
		return 0;
	int xi = m->inputs[0], ax = reduce_axis(g, m, x->rank);
	if (ax < 0 || (ax != x->rank - 1 && ax != 1))
		return 0;
	lm_node *sub = next_node(g, m, dead);
	if (!sub || !is(sub, "Sub") || sub->n_inputs != 2 ||
	    sub->inputs[0] != xi || sub->inputs[1] != out_of(m))
		return 0;
	int di = out_of(sub);
	lm_value *d = lm_node_out(g, sub, 0);
	/* d feeds the square (Pow(d, 2), or Mul(d, d): two uses) and the
	 * Div, nothing else */
	if (!d || d->is_output || d->n_consumers < 2 || d->n_consumers > 3)
		return 0;
	lm_node *sq = NULL, *div = NULL;
	for (int k = 0; k < d->n_consumers; k++) {
		lm_node *c = &g->nodes[d->consumers[k]];
		if (dead[d->consumers[k]])
			return 0;
		if (op_with_scalar(g, c, "Pow", di, 2.0f, 1) ||
		    (is(c, "Mul") && c->n_inputs == 2 &&
		     c->inputs[0] == di && c->inputs[1] == di))
			sq = c;
		else if (is(c, "Div") && c->n_inputs == 2 &&
			 c->inputs[0] == di && !div)
			div = c;
		else
			return 0;
	}
	if (!sq || !div ||
	    d->n_consumers != (is(sq, "Mul") ? 3 : 2))
		return 0;
	lm_node *m2 = next_node(g, sq, dead);
	if (!m2 || reduce_axis(g, m2, x->rank) != ax ||
	    m2->inputs[0] != out_of(sq))
		return 0;
	lm_node *add = next_node(g, m2, dead), *sqrt_n;
	float eps;
	int o;
	if (!add || !is(add, "Add") ||
	    (o = other_input(add, out_of(m2))) < 0 ||
	    !const_scalar(g, &g->values[o], &eps) || !(eps >= 0) ||
	    !(sqrt_n = next_node(g, add, dead)) || !is(sqrt_n, "Sqrt") ||
	    next_node(g, sqrt_n, dead) != div ||
	    div->inputs[1] != out_of(sqrt_n))
		return 0;
	lm_node *last = div, *mul = NULL, *n = next_node(g, div, dead);
	int gamma = -1, beta = -1;
	if (n && is(n, "Mul") && (o = other_input(n, out_of(last))) >= 0 &&
	    axis_const(g, &g->values[o], x, ax)) {
		gamma = o;
		mul = last = n;
		n = next_node(g, last, dead);
	}
	if (n && is(n, "Add") && (o = other_input(n, out_of(last))) >= 0 &&
	    axis_const(g, &g->values[o], x, ax)) {
		beta = o;
		last = n;
	}
	lm_value *y = lm_node_out(g, last, 0);
	if (last->n_attrs || !y || !same_shape(x, y))
		return 0;
	int64_t c = x->dims[ax];
	if (gamma < 0) {
		float *ones = malloc((size_t)c * sizeof(float));
		lm_value like = { 0 };
		if (!ones)
			return -ENOMEM;
		for (int64_t i = 0; i < c; i++)
			ones[i] = 1.0f;
		lm_value_set_shape(&like, LM_DT_FLOAT, 1, &c);
		gamma = new_constant(g, g->values[xi].name, ".ln_scale", &like,
				     ones);
		free(ones);
		if (gamma < 0)
			return gamma;
	}
	int ins[3] = { xi, gamma, beta };
	int li = (int)(last - g->nodes);
	if (become(last, ax == x->rank - 1 ? "LayerNormalization"
					   : "lm.LayerNormChannels") ||
	    set_inputs(last, ins, beta >= 0 ? 3 : 2) ||
	    add_int_attr(last, "axis", ax == x->rank - 1 ? -1 : 1) ||
	    add_float_attr(last, "epsilon", eps))
		return -ENOMEM;
	lm_node *gone[] = { m, sub, sq, m2, add, sqrt_n, div, mul };
	for (size_t k = 0; k < sizeof(gone) / sizeof(gone[0]); k++)
		if (gone[k] && gone[k] - g->nodes != li)
			dead[gone[k] - g->nodes] = 1;
	return 1;
}

/*
 * The end of GELU's x/2 (1 + f(x)), from the node a that computes 1 + f,
 * in the three orders exporters write: (x (1 + f)) 0.5, (x 0.5) (1 + f)
 * and x ((1 + f) 0.5).  Returns the node giving the result and sets *mid
 * to the one in between, or NULL.
 */
static lm_node *gelu_tail(lm_graph *g, lm_node *a, int xi,
			  const uint8_t *dead, lm_node **mid)
{
	int ai = out_of(a);
	lm_node *m1 = next_node(g, a, dead), *m2;
	*mid = NULL;
	if (!m1 || !is(m1, "Mul") || m1->n_inputs != 2)
		return NULL;
	int o = other_input(m1, ai);
	if (o == xi) {
		m2 = next_node(g, m1, dead);
		if (!m2 || !op_with_scalar(g, m2, "Mul", out_of(m1), 0.5f, 0))
			return NULL;
		*mid = m1;
		return m2;
	}
	if (o >= 0 && g->values[o].producer >= 0) {
		lm_node *h = &g->nodes[g->values[o].producer];
		if (!dead[g->values[o].producer] &&
		    op_with_scalar(g, h, "Mul", xi, 0.5f, 0) &&
		    sole_reader(g, &g->values[o]) == m1) {
			*mid = h;
			return m1;
		}
	}
	if (op_with_scalar(g, m1, "Mul", ai, 0.5f, 0)) {
		m2 = next_node(g, m1, dead);
		if (m2 && is(m2, "Mul") && other_input(m2, out_of(m1)) == xi) {
			*mid = m1;
			return m2;
		}
	}
	return NULL;
}

/* The node making v, if it is op, alive and v's only reader is `reader`. */
static lm_node *feeder(lm_graph *g, int v, const char *op,
		       const lm_node *reader, const uint8_t *dead)
{
	lm_value *val = v >= 0 ? &g->values[v] : NULL;
	if (!val || val->producer < 0 || dead[val->producer] ||
	    sole_reader(g, val) != reader)
		return NULL;
	lm_node *p = &g->nodes[val->producer];
	return is(p, op) ? p : NULL;
}

/* x^3 as Mul(x, Mul(x, x)) (either order) or Pow(x, 3) into *cube (and
 * the inner square into *sq): which x, or -1. */
static int cube_of(lm_graph *g, lm_node *c, const uint8_t *dead,
		   lm_node **sq)
{
	*sq = NULL;
	if (is(c, "Pow") && c->n_inputs == 2 &&
	    op_with_scalar(g, c, "Pow", c->inputs[0], 3.0f, 1))
		return c->inputs[0];
	if (!is(c, "Mul") || c->n_inputs != 2)
		return -1;
	for (int k = 0; k < 2; k++) {
		int xi = c->inputs[k];
		lm_node *s = feeder(g, c->inputs[1 - k], "Mul", c, dead);
		if (s && s->n_inputs == 2 && s->inputs[0] == xi &&
		    s->inputs[1] == xi) {
			*sq = s;
			return xi;
		}
	}
	return -1;
}

/*
 * GELU as torch writes it before opset 20, erf form
 *     x/2 (1 + Erf(x / sqrt 2))            (Div by sqrt 2 or Mul by 1/sqrt 2)
 * anchored on the Erf, and tanh form
 *     x/2 (1 + Tanh(sqrt(2/pi) (x + 0.044715 x^3)))
 * anchored on the Tanh, becomes one Gelu node (approximate none / tanh).
 */
static int fuse_gelu(lm_graph *g, int ni, uint8_t *dead)
{
	lm_node *f = &g->nodes[ni], *gone[8] = { 0 };
	int ng = 0, xi = -1, tanh_form = is(f, "Tanh");
	if ((!is(f, "Erf") && !tanh_form) || f->n_inputs != 1 ||
	    f->n_outputs != 1)
		return 0;
	lm_value *z = lm_node_in(g, f, 0);
	lm_node *sc = z && z->producer >= 0 && !dead[z->producer] &&
		      sole_reader(g, z) == f ? &g->nodes[z->producer] : NULL;
	if (!sc)
		return 0;
	if (!tanh_form) {
		if (op_with_scalar(g, sc, "Div", sc->inputs[0], (float)M_SQRT2,
				   1))
			xi = sc->inputs[0];
		for (int k = 0; k < 2 && xi < 0; k++)
			if (op_with_scalar(g, sc, "Mul", sc->inputs[k],
					   (float)M_SQRT1_2, 0))
				xi = sc->inputs[k];
		if (xi < 0)
			return 0;
		gone[ng++] = sc;
	} else {
		/* sc = Mul(u, sqrt(2/pi)), u = Add(x, Mul(x^3, 0.044715)) */
		lm_node *u = NULL, *q, *cube, *sq;
		for (int k = 0; k < 2 && !u; k++)
			if (op_with_scalar(g, sc, "Mul", sc->inputs[k],
					   0.797884560803f, 0))
				u = feeder(g, sc->inputs[k], "Add", sc, dead);
		if (!u || u->n_inputs != 2)
			return 0;
		for (int k = 0; k < 2 && xi < 0; k++) {
			q = feeder(g, u->inputs[1 - k], "Mul", u, dead);
			for (int j = 0; q && j < 2 && xi < 0; j++) {
				cube = feeder(g, q->inputs[j], "Mul", q, dead);
				if (!cube)
					cube = feeder(g, q->inputs[j], "Pow", q,
						      dead);
				if (cube && op_with_scalar(g, q, "Mul",
							   q->inputs[j],
							   0.044715f, 0) &&
				    cube_of(g, cube, dead, &sq) ==
					    u->inputs[k]) {
					xi = u->inputs[k];
					gone[ng++] = q;
					gone[ng++] = cube;
					gone[ng++] = sq;
				}
			}
		}
		if (xi < 0)
			return 0;
		gone[ng++] = u;
		gone[ng++] = sc;
	}
	lm_node *a = next_node(g, f, dead), *mid, *last;
	lm_value *x = &g->values[xi];
	if (!a || !op_with_scalar(g, a, "Add", out_of(f), 1.0f, 0) ||
	    !(last = gelu_tail(g, a, xi, dead, &mid)) || last->n_attrs ||
	    x->dtype != LM_DT_FLOAT || !lm_node_out(g, last, 0) ||
	    !same_shape(x, lm_node_out(g, last, 0)))
		return 0;
	gone[ng++] = f;
	gone[ng++] = a;
	gone[ng++] = mid;
	lm_attr *ap;
	if (become(last, "Gelu") || set_inputs(last, &xi, 1) ||
	    !(ap = lm_node_add_attr(last, "approximate", LM_ATTR_STRING)) ||
	    !(ap->s = strdup(tanh_form ? "tanh" : "none")))
		return -ENOMEM;
	for (int k = 0; k < ng; k++)
		if (gone[k])
			dead[gone[k] - g->nodes] = 1;
	return 1;
}

/* x * Sigmoid(x) and x * HardSigmoid(x) (torch's SiLU and, before opset
 * 14, HardSwish) become one lm.Act node, anchored on the sigmoid. */
static int fuse_swish(lm_graph *g, int ni, uint8_t *dead)
{
	lm_node *s = &g->nodes[ni];
	int hard = is(s, "HardSigmoid");
	if ((!hard && !is(s, "Sigmoid")) || s->n_inputs != 1 ||
	    s->n_outputs != 1)
		return 0;
	int xi = s->inputs[0];
	lm_value *x = lm_node_in(g, s, 0);
	lm_node *m = next_node(g, s, dead);
	if (!x || x->dtype != LM_DT_FLOAT || !m || !is(m, "Mul") ||
	    m->n_attrs || other_input(m, out_of(s)) != xi ||
	    !lm_node_out(g, m, 0) || !same_shape(x, lm_node_out(g, m, 0)))
		return 0;
	float alpha = hard ? lm_attr_float(s, "alpha", 0.2f) : 0;
	float beta = hard ? lm_attr_float(s, "beta", 0.5f) : 0;
	if (become(m, "lm.Act") || set_inputs(m, &xi, 1) ||
	    add_int_attr(m, "lm.act", hard ? LM_ACT_HARD_SWISH : LM_ACT_SILU) ||
	    add_float_attr(m, "lm.alpha", alpha) ||
	    add_float_attr(m, "lm.beta", beta))
		return -ENOMEM;
	dead[ni] = 1;
	return 1;
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
	int wi = conv->inputs[1];
	int wv = new_constant(g, w->name, ".bn", w, nw);
	int bv = wv < 0 ? wv : new_constant(g, g->values[wi].name, ".bn_bias",
					    &bias_like, nb);
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

/* Pad with zeros on spatial dims only -> Conv or AveragePool: add to the
 * consumer's pads. */
static int fuse_pad(lm_graph *g, int ni, uint8_t *dead)
{
	lm_node *pad = &g->nodes[ni];
	lm_value *y = lm_node_out(g, pad, 0), *x = lm_node_in(g, pad, 0);
	lm_node *conv = sole_reader(g, y);
	int64_t pads[2 * LM_MAX_RANK];
	int np = 0, pool = conv && is(conv, "AveragePool"), n_cp;
	if (!is(pad, "Pad") || !conv || (!is(conv, "Conv") && !pool) || !x ||
	    x->rank < 3 || conv->inputs[0] != pad->outputs[0] ||
	    strcmp(lm_attr_str(pad, "mode", "constant"), "constant") ||
	    strcmp(lm_attr_str(conv, "auto_pad", "NOTSET"), "NOTSET"))
		return 0;
	/* Zeros then an average equal the average with those pads counted
	 * (count_include_pad), when no pads of its own are left uncounted
	 * and ceil_mode adds no reach beyond them. */
	int count_pad = pool && lm_attr_int(conv, "count_include_pad", 0);
	if (pool) {
		const int64_t *own = lm_attr_ints(conv, "pads", &n_cp);
		if (lm_attr_int(conv, "ceil_mode", 0))
			return 0;
		for (int i = 0; i < n_cp && !count_pad; i++)
			if (own[i])
				return 0;
	}
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
	int sp = x->rank - 2;
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
	if (pool && !count_pad) {
		lm_attr *c = (lm_attr *)lm_node_attr(conv, "count_include_pad");
		if (!c && !(c = lm_node_add_attr(conv, "count_include_pad",
						 LM_ATTR_INT)))
			return -ENOMEM;
		c->type = LM_ATTR_INT;
		c->i = 1;
	}
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
 * MatMul -> Add of a constant over the last axis ([N], [1, N], ...): the
 * bias is added by the MatMul (input "lm.bias"), which can then take an
 * activation and a residual too (a transformer's Linear, GELU).
 */
static int fuse_matmul_bias(lm_graph *g, int ni, uint8_t *dead)
{
	lm_node *add = &g->nodes[ni];
	lm_value *y = lm_node_out(g, add, 0);
	if (!is(add, "Add") || add->n_inputs != 2 || !y || add->n_attrs)
		return 0;
	for (int k = 0; k < 2; k++) {
		lm_value *x = lm_node_in(g, add, k);
		int bi = add->inputs[1 - k];
		if (!x || x->producer < 0 || dead[x->producer] ||
		    sole_reader(g, x) != add || !same_shape(x, y) ||
		    x->rank < 1 || !axis_const(g, &g->values[bi], x,
						x->rank - 1))
			continue;
		lm_node *mm = &g->nodes[x->producer];
		if (!is(mm, "MatMul") || mm->n_inputs != 2 || has_epilogue(mm) ||
		    lm_node_attr(mm, "lm.bias"))
			continue;
		if (set_input(mm, 2, bi) || add_int_attr(mm, "lm.bias", 2))
			return -ENOMEM;
		mm->outputs[0] = add->outputs[0];
		dead[ni] = 1;
		return 1;
	}
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

/* P -> activation (lm.Act holds the SiLU and HardSwish made above); also
 * a BatchNormalization no conv took (DenseNet's BN -> Relu -> Conv). */
static int fuse_act(lm_graph *g, int ni, uint8_t *dead)
{
	lm_node *a = &g->nodes[ni];
	lm_value *x = lm_node_in(g, a, 0);
	float alpha = 0, beta = 0;
	enum lm_act act = LM_ACT_NONE;
	if (!x || x->producer < 0 || dead[x->producer] || a->n_outputs != 1)
		return 0;
	lm_node *p = &g->nodes[x->producer];
	if ((!product_op(p) && !(is(p, "BatchNormalization") &&
				 p->n_outputs == 1)) ||
	    lm_node_attr(p, "lm.act") || x->dtype != LM_DT_FLOAT ||
	    sole_reader(g, x) != a)
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
		alpha = 1.0f / 6.0f;
		beta = 0.5f;
	} else if (is(a, "HardSigmoid")) {
		act = LM_ACT_HARD_SIGMOID;
		alpha = lm_attr_float(a, "alpha", 0.2f);
		beta = lm_attr_float(a, "beta", 0.5f);
	} else if (is(a, "Gelu")) {
		const char *ap = lm_attr_str(a, "approximate", "none");
		if (strcmp(ap, "none") && strcmp(ap, "tanh"))
			return 0;
		act = strcmp(ap, "tanh") ? LM_ACT_GELU : LM_ACT_GELU_TANH;
	} else if (is(a, "lm.Act")) {
		lm_epilogue ep;
		lm_epilogue_get(a, &ep);
		if (ep.act == LM_ACT_NONE)
			return 0;
		act = ep.act;
		alpha = ep.alpha;
		beta = ep.beta;
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
	p->outputs[0] = a->outputs[0];
	if (add_int_attr(p, "lm.act", act) ||
	    add_float_attr(p, "lm.alpha", alpha) ||
	    add_float_attr(p, "lm.beta", beta))
		return -ENOMEM;
	dead[ni] = 1;
	return 1;
}

/* ---- layouts ---- */

static int perm_is(const lm_node *n, const int64_t want[4])
{
	int np;
	const int64_t *p = lm_attr_ints(n, "perm", &np);
	return p && np == 4 && !memcmp(p, want, 4 * sizeof(int64_t));
}

/* One-input, one-output elementwise ops a channels-last chain may hold
 * as they are. */
static int pointwise(const lm_node *n)
{
	static const char *const ops[] = {
		"Gelu", "lm.Act", "Relu", "LeakyRelu", "Sigmoid", "HardSigmoid",
		"HardSwish", "Tanh", "Erf", "Exp", "Sqrt", "Neg", "Abs",
	};
	if (n->n_inputs != 1 || n->n_outputs != 1)
		return 0;
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		if (is(n, ops[i]))
			return 1;
	return 0;
}

/* [N, H, W, C] -> [N, C, H, W] */
static void to_nchw(lm_value *v)
{
	int64_t d[4] = { v->dims[0], v->dims[3], v->dims[1], v->dims[2] };
	memcpy(v->dims, d, sizeof(d));
}

enum cl_kind { CL_LN, CL_MATMUL, CL_POINTWISE, CL_SCALAR, CL_VECTOR };

#define CL_MAX 32

/*
 * Transpose(x, 0,2,3,1) -> chain -> Transpose(0,3,1,2), as channels-last
 * blocks are exported (ConvNeXt's Permute, LayerNorm, Linear, GELU,
 * Linear, Permute; its LayerNorm2d): the chain runs in NCHW instead and
 * both transposes go.  Each link reads the previous one's output alone:
 *   LayerNormalization over the last axis  -> lm.LayerNormChannels
 *   MatMul by a constant [C, K] (+ Add of a constant [K])
 *                                          -> 1x1 Conv with weight [K, C]
 *   a pointwise op; Mul/Add/Sub/Div by a scalar    as it is
 *   Mul/Add/Sub/Div by a constant [C] (last axis)  the constant as [C,1,1]
 */
static int fuse_channels_last(lm_graph *g, int ni, uint8_t *dead)
{
	static const int64_t to_last[4] = { 0, 2, 3, 1 };
	static const int64_t to_first[4] = { 0, 3, 1, 2 };
	lm_node *t1 = &g->nodes[ni], *t2 = NULL, *cur = t1;
	lm_node *chain[CL_MAX], *bias_add[CL_MAX];
	int kind[CL_MAX], aux[CL_MAX], n = 0, o;
	lm_value *x = lm_node_in(g, t1, 0);
	float f;

	if (!is(t1, "Transpose") || !x || x->rank != 4 ||
	    x->dtype != LM_DT_FLOAT || t1->n_outputs != 1 ||
	    !perm_is(t1, to_last))
		return 0;
	for (;;) {
		lm_node *nx = next_node(g, cur, dead);
		int vi = out_of(cur);
		lm_value *v = vi >= 0 ? &g->values[vi] : NULL;
		if (!nx || !v || v->rank != 4 || v->dtype != LM_DT_FLOAT)
			return 0;
		if (is(nx, "Transpose")) {
			if (!perm_is(nx, to_first) || nx->n_outputs != 1)
				return 0;
			t2 = nx;
			break;
		}
		if (n == CL_MAX)
			return 0;
		bias_add[n] = NULL;
		aux[n] = -1;
		if (is(nx, "LayerNormalization")) {
			int64_t ax = lm_attr_int(nx, "axis", -1);
			for (int k = 1; k < nx->n_outputs; k++)
				if (nx->outputs[k] >= 0 &&
				    (g->values[nx->outputs[k]].n_consumers ||
				     g->values[nx->outputs[k]].is_output))
					return 0;
			if ((ax != -1 && ax != 3) || nx->inputs[0] != vi ||
			    nx->n_inputs < 2 ||
			    !axis_const(g, lm_node_in(g, nx, 1), v, 3) ||
			    (nx->n_inputs > 2 && nx->inputs[2] >= 0 &&
			     !axis_const(g, lm_node_in(g, nx, 2), v, 3)))
				return 0;
			kind[n] = CL_LN;
		} else if (is(nx, "MatMul")) {
			lm_value *w = lm_node_in(g, nx, 1);
			lm_value *mo = lm_node_out(g, nx, 0);
			if (nx->n_inputs != 2 || nx->inputs[0] != vi || !w ||
			    !lm_value_is_const(w) || w->dtype != LM_DT_FLOAT ||
			    w->rank != 2 || w->dims[0] != v->dims[3] ||
			    has_epilogue(nx) || nx->n_attrs || !mo ||
			    mo->rank != 4 || !lm_graph_value_data(g, w, NULL))
				return 0;
			lm_node *ad = next_node(g, nx, dead);
			if (ad && is(ad, "Add") && !ad->n_attrs &&
			    (o = other_input(ad, out_of(nx))) >= 0 &&
			    axis_const(g, &g->values[o], mo, 3)) {
				bias_add[n] = ad;
				aux[n] = o;
			}
			kind[n] = CL_MATMUL;
		} else if (pointwise(nx) && nx->inputs[0] == vi) {
			kind[n] = CL_POINTWISE;
		} else if ((is(nx, "Mul") || is(nx, "Add") || is(nx, "Sub") ||
			    is(nx, "Div")) &&
			   (o = other_input(nx, vi)) >= 0) {
			if (const_scalar(g, &g->values[o], &f))
				kind[n] = CL_SCALAR;
			else if (axis_const(g, &g->values[o], v, 3))
				kind[n] = CL_VECTOR;
			else
				return 0;
			aux[n] = o;
		} else {
			return 0;
		}
		chain[n] = nx;
		cur = bias_add[n] ? bias_add[n] : nx;
		n++;
	}
	if (n == 0)
		return 0;

	/* The chain reads x itself and ends in t2's output. */
	int xi = t1->inputs[0], t1o = out_of(t1);
	for (int k = 0; k < chain[0]->n_inputs; k++)
		if (chain[0]->inputs[k] == t1o)
			chain[0]->inputs[k] = xi;
	for (int i = 0; i < n; i++) {
		lm_node *nd = chain[i];
		if (kind[i] == CL_LN) {
			for (int k = 1; k < nd->n_outputs; k++)
				nd->outputs[k] = -1;
			nd->n_outputs = 1;
			if (become(nd, "lm.LayerNormChannels"))
				return -ENOMEM;
		} else if (kind[i] == CL_MATMUL) {
			lm_value *w = lm_node_in(g, nd, 1);
			int64_t c = w->dims[0], k = w->dims[1];
			int64_t wd[4] = { k, c, 1, 1 };
			const float *src = lm_graph_value_data(g, w, NULL);
			float *t = malloc((size_t)(c * k) * sizeof(float));
			if (!t)
				return -ENOMEM;
			for (int64_t r = 0; r < c; r++)
				for (int64_t j = 0; j < k; j++)
					t[j * c + r] = src[r * k + j];
			lm_value like = { 0 };
			lm_value_set_shape(&like, LM_DT_FLOAT, 4, wd);
			int wv = new_constant(g, w->name, ".conv1x1", &like, t);
			free(t);
			if (wv < 0)
				return wv;
			int ins[3] = { nd->inputs[0], wv, aux[i] };
			if (become(nd, "Conv") ||
			    set_inputs(nd, ins, aux[i] >= 0 ? 3 : 2))
				return -ENOMEM;
			if (bias_add[i]) {
				/* the bias as [K] (it may be [1, 1, 1, K]) */
				lm_value *b = &g->values[aux[i]];
				lm_value bl = { 0 };
				lm_value_set_shape(&bl, LM_DT_FLOAT, 1, &k);
				int bv = new_constant(g, b->name, ".bias", &bl,
						      lm_graph_value_data(g, b,
									  NULL));
				if (bv < 0)
					return bv;
				nd->inputs[2] = bv;
				nd->outputs[0] = out_of(bias_add[i]);
				dead[bias_add[i] - g->nodes] = 1;
			}
		} else if (kind[i] == CL_VECTOR) {
			lm_value *cv = &g->values[aux[i]];
			int64_t cd[3] = { lm_shape_numel(cv->rank, cv->dims), 1,
					  1 };
			lm_value like = { 0 };
			lm_value_set_shape(&like, LM_DT_FLOAT, 3, cd);
			int nv = new_constant(g, cv->name, ".nchw", &like,
					      lm_graph_value_data(g, cv, NULL));
			if (nv < 0)
				return nv;
			for (int k = 0; k < nd->n_inputs; k++)
				if (nd->inputs[k] == aux[i])
					nd->inputs[k] = nv;
		}
		if (i < n - 1)
			to_nchw(&g->values[out_of(nd)]);
	}
	chain[n - 1]->outputs[0] = out_of(t2);
	dead[ni] = 1;
	dead[t2 - g->nodes] = 1;
	return 1;
}

/* The weight of a plain 1x1 Conv reading cin channels (group 1, unit
 * strides and dilations, no pads, no fused sum), or NULL. */
static lm_value *conv_1x1(lm_graph *g, const lm_node *c, int64_t cin)
{
	int n;
	const int64_t *a;
	lm_value *w = lm_node_in(g, c, 1), *b = c->n_inputs > 2 ?
						   lm_node_in(g, c, 2) : NULL;
	if (!is(c, "Conv") || c->n_inputs > 3 || lm_node_attr(c, "lm.sum") ||
	    lm_attr_int(c, "group", 1) != 1 || !w || !lm_value_is_const(w) ||
	    w->dtype != LM_DT_FLOAT || w->rank != 4 || w->dims[1] != cin ||
	    w->dims[2] != 1 || w->dims[3] != 1 ||
	    strcmp(lm_attr_str(c, "auto_pad", "NOTSET"), "NOTSET") ||
	    (b && !const_floats(g, b, w->dims[0])))
		return NULL;
	const char *names[] = { "strides", "dilations", "pads" };
	for (int k = 0; k < 3; k++) {
		a = lm_attr_ints(c, names[k], &n);
		for (int i = 0; i < n; i++)
			if (a[i] != (k == 2 ? 0 : 1))
				return NULL;
	}
	return w;
}

/*
 * Squeeze-excitation: GlobalAveragePool(x) -> 1x1 Conv (+act) -> 1x1
 * Conv (+act) -> Mul with x becomes lm.SqueezeExcite(x, W1, b1, W2, b2)
 * with the activations as attributes (lm.act, lm.act2, ...): one kernel
 * instead of four tiny nodes (ops/fused.c).  Runs after fuse_act.
 */
static int fuse_se(lm_graph *g, int ni, uint8_t *dead)
{
	lm_node *gap = &g->nodes[ni], *c1, *c2, *m;
	lm_value *x = lm_node_in(g, gap, 0), *w1, *w2, *y;
	if (!is(gap, "GlobalAveragePool") || !x || x->rank != 4 ||
	    x->dtype != LM_DT_FLOAT)
		return 0;
	int xi = gap->inputs[0];
	if (!(c1 = next_node(g, gap, dead)) || c1->inputs[0] != out_of(gap) ||
	    !(w1 = conv_1x1(g, c1, x->dims[1])) ||
	    !(c2 = next_node(g, c1, dead)) || c2->inputs[0] != out_of(c1) ||
	    !(w2 = conv_1x1(g, c2, w1->dims[0])) ||
	    w2->dims[0] != x->dims[1] || !(m = next_node(g, c2, dead)) ||
	    !is(m, "Mul") || m->n_attrs || other_input(m, out_of(c2)) != xi ||
	    !(y = lm_node_out(g, m, 0)) || !same_shape(x, y))
		return 0;
	lm_epilogue e1, e2;
	lm_epilogue_get(c1, &e1);
	lm_epilogue_get(c2, &e2);
	int ins[5] = { xi, c1->inputs[1], c1->n_inputs > 2 ? c1->inputs[2] : -1,
		       c2->inputs[1], c2->n_inputs > 2 ? c2->inputs[2] : -1 };
	if (become(m, "lm.SqueezeExcite") || set_inputs(m, ins, 5) ||
	    add_int_attr(m, "lm.act", e1.act) ||
	    add_float_attr(m, "lm.alpha", e1.alpha) ||
	    add_float_attr(m, "lm.beta", e1.beta) ||
	    add_int_attr(m, "lm.act2", e2.act) ||
	    add_float_attr(m, "lm.alpha2", e2.alpha) ||
	    add_float_attr(m, "lm.beta2", e2.beta))
		return -ENOMEM;
	dead[ni] = 1;
	dead[c1 - g->nodes] = 1;
	dead[c2 - g->nodes] = 1;
	return 1;
}

/*
 * Conv -> Mul or Add by a constant that is a scalar or one value per
 * output channel ([M, 1, 1] and the like; ConvNeXt's layer scale, a
 * BatchNorm written out): folded into the weights (Mul) and the bias.
 */
static int fuse_scale(lm_graph *g, int ni, uint8_t *dead)
{
	lm_node *op = &g->nodes[ni];
	int mul = is(op, "Mul");
	if ((!mul && !is(op, "Add")) || op->n_inputs != 2 ||
	    op->n_outputs != 1)
		return 0;
	for (int k = 0; k < 2; k++) {
		lm_value *x = lm_node_in(g, op, k), *cv = lm_node_in(g, op, 1 - k);
		lm_value *y = lm_node_out(g, op, 0);
		if (!x || !cv || !y || x->producer < 0 || dead[x->producer] ||
		    sole_reader(g, x) != op || !same_shape(x, y) ||
		    x->dtype != LM_DT_FLOAT || x->rank < 3)
			continue;
		int ci = x->producer;
		lm_node *conv = &g->nodes[ci];
		lm_value *w = lm_node_in(g, conv, 1);
		lm_value *b = conv->n_inputs > 2 ? lm_node_in(g, conv, 2) : NULL;
		if (!is(conv, "Conv") || has_epilogue(conv) || !w ||
		    !lm_value_is_const(w) || w->dtype != LM_DT_FLOAT ||
		    w->dims[0] != x->dims[1])
			continue;
		int64_t cout = w->dims[0];
		float sc;
		int scalar = const_scalar(g, cv, &sc);
		const float *cd = scalar ? NULL : axis_const(g, cv, x, 1)
			? lm_graph_value_data(g, cv, NULL) : NULL;
		const float *wd = lm_graph_value_data(g, w, NULL);
		const float *bd = b ? const_floats(g, b, cout) : NULL;
		if ((!scalar && !cd) || !wd || (b && !bd))
			continue;
		size_t per = (size_t)(lm_shape_numel(w->rank, w->dims) / cout);
		float *nw = mul ? malloc(lm_value_bytes(w)) : NULL;
		float *nb = malloc((size_t)cout * sizeof(float));
		int rc = -ENOMEM, wv = -1, bv;
		if ((mul && !nw) || !nb)
			goto out;
		for (int64_t c = 0; c < cout; c++) {
			float s = scalar ? sc : cd[c];
			float b0 = bd ? bd[c] : 0.0f;
			nb[c] = mul ? b0 * s : b0 + s;
			for (size_t j = 0; mul && j < per; j++)
				nw[(size_t)c * per + j] = wd[(size_t)c * per + j] * s;
		}
		lm_value bias_like = { 0 };
		lm_value_set_shape(&bias_like, LM_DT_FLOAT, 1, &cout);
		int wi = conv->inputs[1];
		if (mul && (wv = rc = new_constant(g, w->name, ".scaled", w,
						   nw)) < 0)
			goto out;
		if ((bv = rc = new_constant(g, g->values[wi].name,
					    ".scaled_bias", &bias_like, nb)) < 0)
			goto out;
		conv = &g->nodes[ci];
		rc = -ENOMEM;
		if ((mul && set_input(conv, 1, wv)) || set_input(conv, 2, bv))
			goto out;
		conv->outputs[0] = op->outputs[0];
		dead[ni] = 1;
		rc = 1;
out:
		free(nw);
		free(nb);
		return rc;
	}
	return 0;
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
	static const rewrite_fn passes[] = {
		fuse_layernorm, fuse_gelu, fuse_swish, fuse_channels_last,
		fuse_bn, fuse_pad, fuse_scale, fuse_matmul_bias, fuse_sum,
		fuse_act, fuse_se,
	};
	int total = 0;
	if (lm_graph_index(g))
		return lm_fail(e, -ENOMEM, "out of memory");
	for (size_t i = 0; i < sizeof(passes) / sizeof(passes[0]); i++) {
		/* Again while it finds something: a rewrite can make another
		 * one possible (a Mul folded into a Conv, then an Add), which a
		 * single pass sees with stale producers and leaves.  Each
		 * rewrite removes a node, so this ends. */
		int rc;
		do {
			rc = run_pass(g, passes[i], e);
			if (rc < 0)
				return rc;
			total += rc;
		} while (rc > 0);
	}
	return total;
}
