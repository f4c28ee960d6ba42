/*
 * batch.c: following the batch through a graph (see lamina/batch.h).
 *
 * One walk over the nodes in their order.  Each operator family has a rule
 * that maps its inputs' batch positions to its outputs' and says when
 * samples mix; every output position is then checked against the shape
 * inference made (dims[axis] = outer * batch * inner), so a rule can never
 * claim a batch the shapes do not show.  Operators without a rule keep the
 * batch where an output has the input's shape along it, and stop the walk
 * otherwise: lamina then runs the model at its own batch only, which is
 * safe.
 */
#include "lamina/batch.h"
#include "ops/kernel.h"
#include "ops/ops.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Walks over a graph at batch 1 before the choices of ambiguous Reshapes
 * are settled (each walk is linear in the nodes). */
#define MAX_WALKS 256
/* Candidate placements of the batch by one Reshape: one per output axis. */
#define MAX_CANDS LM_MAX_RANK

struct cand {
	lm_batch_pos p;
	int rank; /* lower is preferred */
};

struct walk {
	lm_graph *g;
	int64_t b;
	lm_batch_pos *pos; /* per value */
	int *amb;	   /* per value: latest ambiguous Reshape upstream */
	int *choice;	   /* per node: candidate taken by an ambiguous one */
	int *ncand;	   /* per node: its candidates in this walk */
	int *prev;	   /* per node: the ambiguous Reshape upstream of it */
	int stop, stop_amb;
	char why[320];
};

static int same_pos(lm_batch_pos a, lm_batch_pos b)
{
	return a.axis == b.axis && a.outer == b.outer && a.inner == b.inner;
}

static lm_batch_pos in_pos(const struct walk *w, const lm_node *n, int i)
{
	if (i >= n->n_inputs || n->inputs[i] < 0)
		return lm_batch_none();
	return w->pos[n->inputs[i]];
}

/* Latest ambiguous choice upstream of any input holding the batch. */
static int in_amb(const struct walk *w, const lm_node *n)
{
	int a = -1;
	for (int i = 0; i < n->n_inputs; i++)
		if (n->inputs[i] >= 0 && w->pos[n->inputs[i]].axis >= 0 &&
		    w->amb[n->inputs[i]] > a)
			a = w->amb[n->inputs[i]];
	return a;
}

static void outputs_none(struct walk *w, const lm_node *n)
{
	for (int k = 0; k < n->n_outputs; k++)
		if (n->outputs[k] >= 0) {
			w->pos[n->outputs[k]] = lm_batch_none();
			w->amb[n->outputs[k]] = -1;
		}
}

/* Samples mix at node n (or its outputs lose the batch): the walk goes on
 * with its outputs holding none, and the first such node is kept. */
static void lose(struct walk *w, const lm_node *n, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void lose(struct walk *w, const lm_node *n, const char *fmt, ...)
{
	if (w->stop < 0) {
		char what[240];
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(what, sizeof(what), fmt, ap);
		va_end(ap);
		const char *name = n->name && n->name[0] ? n->name
				   : n->n_outputs && n->outputs[0] >= 0
					   ? w->g->values[n->outputs[0]].name
					   : "?";
		w->stop = (int)(n - w->g->nodes);
		w->stop_amb = in_amb(w, n);
		snprintf(w->why, sizeof(w->why), "node '%s' (%s) %s", name,
			 n->op_type, what);
	}
	outputs_none(w, n);
}

/* Give output k position p, if the inferred shape shows it there. */
static void set_out(struct walk *w, const lm_node *n, int k, lm_batch_pos p,
		    int amb)
{
	if (k >= n->n_outputs || n->outputs[k] < 0)
		return;
	const lm_value *y = &w->g->values[n->outputs[k]];
	int64_t extent;
	if (p.axis < 0) {
		w->pos[n->outputs[k]] = p;
		w->amb[n->outputs[k]] = -1;
		return;
	}
	if (p.axis >= y->rank || ovf_mul(p.outer, w->b, &extent) ||
	    ovf_mul(extent, p.inner, &extent) || y->dims[p.axis] != extent)
		return lose(w, n, "makes '%s' %lld long on axis %d where its "
			    "batch should be %lld x %lld x %lld", y->name,
			    p.axis < y->rank ? (long long)y->dims[p.axis] : -1LL,
			    p.axis, (long long)p.outer, (long long)w->b,
			    (long long)p.inner);
	w->pos[n->outputs[k]] = p;
	w->amb[n->outputs[k]] = amb;
}

static void all_out(struct walk *w, const lm_node *n, lm_batch_pos p, int amb)
{
	for (int k = 0; k < n->n_outputs && w->stop != (int)(n - w->g->nodes);
	     k++)
		set_out(w, n, k, p, amb);
}

static int any_batch(const struct walk *w, const lm_node *n, int from)
{
	for (int i = from; i < n->n_inputs; i++)
		if (in_pos(w, n, i).axis >= 0)
			return 1;
	return 0;
}

static const char *shape_of(const lm_value *v, char *buf, size_t len)
{
	return lm_shape_str(v->rank, v->dims, buf, len);
}

/* ---- rules ---- */

/* Inputs broadcast against each other (elementwise ops): every input that
 * holds the batch must hold it on the same output axis, and the others
 * must have 1 there (a larger dim is a batch written into a constant). */
static void rule_broadcast(struct walk *w, const lm_node *n, int n_data)
{
	const lm_value *y = lm_node_out(w->g, n, 0);
	lm_batch_pos t = lm_batch_none();
	if (!y)
		return;
	for (int i = 0; i < n_data && i < n->n_inputs; i++) {
		lm_batch_pos p = in_pos(w, n, i);
		const lm_value *x = lm_node_in(w->g, n, i);
		if (p.axis < 0 || !x)
			continue;
		p.axis += y->rank - x->rank;
		if (t.axis < 0)
			t = p;
		else if (!same_pos(t, p))
			return lose(w, n, "mixes samples: its inputs hold the "
				    "batch on different axes");
	}
	if (t.axis < 0)
		return outputs_none(w, n);
	for (int i = 0; i < n_data && i < n->n_inputs; i++) {
		const lm_value *x = lm_node_in(w->g, n, i);
		if (!x || in_pos(w, n, i).axis >= 0)
			continue;
		int d = x->rank - y->rank + t.axis;
		if (d >= 0 && x->dims[d] != 1)
			return lose(w, n, "broadcasts '%s', which holds no "
				    "batch, along the batch axis (%lld long: "
				    "a batch written into the model)",
				    x->name, (long long)x->dims[d]);
	}
	all_out(w, n, t, in_amb(w, n));
}

/* Ops that take [N, C, ...] (Conv, pooling, InstanceNormalization): the
 * batch must be axis 0 of input 0 and nowhere in the others but the sum
 * that fusion adds to a Conv's output (fuse.c), which holds it where the
 * output does. */
static void rule_nchw(struct walk *w, const lm_node *n)
{
	lm_batch_pos p = in_pos(w, n, 0);
	lm_epilogue ep;
	lm_epilogue_get(n, &ep);
	for (int i = 1; i < n->n_inputs; i++) {
		if (i == ep.sum_input) {
			if (!same_pos(in_pos(w, n, i), p))
				return lose(w, n, "adds a sum that holds the "
					    "batch elsewhere");
		} else if (in_pos(w, n, i).axis >= 0) {
			return lose(w, n, "reads the batch in its weights");
		}
	}
	if (p.axis < 0)
		return outputs_none(w, n);
	if (p.axis != 0)
		return lose(w, n, "takes the batch on axis 0 and finds it on "
			    "axis %d", p.axis);
	all_out(w, n, p, in_amb(w, n));
}

static void rule_batchnorm(struct walk *w, const lm_node *n)
{
	lm_batch_pos p = in_pos(w, n, 0);
	if (any_batch(w, n, 1))
		return lose(w, n, "reads the batch in its parameters");
	if (p.axis < 0)
		return outputs_none(w, n);
	if (p.axis == 1)
		return lose(w, n, "normalises per channel, axis 1, which "
			    "holds the batch");
	set_out(w, n, 0, p, in_amb(w, n));
	for (int k = 1; k < n->n_outputs; k++)
		set_out(w, n, k, lm_batch_none(), -1);
}

/* Normalising or reducing over the axes where reduced[] is set. */
static void rule_over(struct walk *w, const lm_node *n, const uint8_t *over,
		      const char *what)
{
	lm_batch_pos p = in_pos(w, n, 0);
	if (any_batch(w, n, 1))
		return lose(w, n, "reads the batch in its parameters");
	if (p.axis < 0)
		return outputs_none(w, n);
	if (over[p.axis])
		return lose(w, n, "%s over the batch axis %d", what, p.axis);
	all_out(w, n, p, in_amb(w, n));
}

static void rule_layernorm(struct walk *w, const lm_node *n)
{
	const lm_value *x = lm_node_in(w->g, n, 0);
	uint8_t over[LM_MAX_RANK] = { 0 };
	int axis;
	if (!x || lm_ops_axis(w->g, n, lm_attr_int(n, "axis", -1), x->rank,
			      "axis", &axis, NULL))
		return lose(w, n, "has no axis lamina can read");
	for (int d = axis; d < x->rank; d++)
		over[d] = 1;
	rule_over(w, n, over, "normalises");
}

static void rule_softmax(struct walk *w, const lm_node *n)
{
	const lm_value *x = lm_node_in(w->g, n, 0);
	uint8_t over[LM_MAX_RANK] = { 0 };
	int axis, old = lm_ops_opset(w->g) < 13;
	if (!x || lm_ops_axis(w->g, n, lm_attr_int(n, "axis", old ? 1 : -1),
			      x->rank, "axis", &axis, NULL))
		return lose(w, n, "has no axis lamina can read");
	/* before opset 13 the input is flattened to 2-D at the axis */
	for (int d = axis; d < (old ? x->rank : axis + 1); d++)
		over[d] = 1;
	rule_over(w, n, over, "normalises");
}

static void rule_reduce(struct walk *w, const lm_node *n)
{
	const lm_value *x = lm_node_in(w->g, n, 0);
	int64_t axes[LM_MAX_RANK];
	uint8_t over[LM_MAX_RANK] = { 0 };
	int na, by_input = lm_ops_opset(w->g) >=
			   (strcmp(n->op_type, "ReduceSum") == 0 ? 13 : 18);
	lm_batch_pos p = in_pos(w, n, 0);
	if (!x)
		return outputs_none(w, n);
	if (by_input && lm_node_in(w->g, n, 1))
		na = lm_ops_const_ints(w->g, n, 1, "axes", axes, LM_MAX_RANK,
				       NULL);
	else
		na = lm_ops_attr_list(w->g, n, "axes", axes, LM_MAX_RANK,
				      NULL);
	if (na < 0)
		return lose(w, n, "has axes lamina cannot read");
	if (na == 0 && lm_attr_int(n, "noop_with_empty_axes", 0))
		return rule_over(w, n, over, "reduces");
	for (int i = 0; i < na; i++) {
		int a;
		if (lm_ops_axis(w->g, n, axes[i], x->rank, "axis", &a, NULL))
			return lose(w, n, "has an axis out of range");
		over[a] = 1;
	}
	for (int d = 0; na == 0 && d < x->rank; d++)
		over[d] = 1;
	if (p.axis < 0 || over[p.axis] || lm_attr_int(n, "keepdims", 1))
		return rule_over(w, n, over, "reduces");
	for (int d = 0, a = p.axis; d < a; d++)
		p.axis -= over[d];
	set_out(w, n, 0, p, in_amb(w, n));
}

static void rule_gemm(struct walk *w, const lm_node *n)
{
	lm_batch_pos a = in_pos(w, n, 0), c = in_pos(w, n, 2);
	const lm_value *cv = lm_node_in(w->g, n, 2);
	int ta = lm_attr_int(n, "transA", 0) != 0;
	if (in_pos(w, n, 1).axis >= 0)
		return lose(w, n, "reads the batch in its weights");
	if (a.axis < 0 && c.axis < 0)
		return outputs_none(w, n);
	if (a.axis < 0)
		return lose(w, n, "adds a bias that holds the batch to rows "
			    "that do not");
	if (a.axis != (ta ? 1 : 0))
		return lose(w, n, "mixes samples: the batch is on the axis it "
			    "sums over");
	if (cv && c.axis >= 0) {
		c.axis += 2 - cv->rank;
		if (!same_pos(a, c))
			return lose(w, n, "mixes samples: its bias holds the "
				    "batch elsewhere");
	} else if (cv && cv->rank == 2 && cv->dims[0] != 1) {
		return lose(w, n, "adds a bias of %lld rows (a batch written "
			    "into the model)", (long long)cv->dims[0]);
	}
	all_out(w, n, a, in_amb(w, n));
}

/* MatMul with numpy's rules: the batch may be in the broadcast (leading)
 * dims of either operand, in A's rows or in B's columns, never in the
 * contracted dim; both operands holding it must agree on a leading dim. */
static void rule_matmul(struct walk *w, const lm_node *n)
{
	const lm_value *a = lm_node_in(w->g, n, 0), *b = lm_node_in(w->g, n, 1);
	const lm_value *y = lm_node_out(w->g, n, 0);
	lm_batch_pos pa = in_pos(w, n, 0), pb = in_pos(w, n, 1);
	lm_batch_pos ta = lm_batch_none(), tb = lm_batch_none();
	if (!a || !b || !y)
		return outputs_none(w, n);
	int ra = a->rank, rb = b->rank, r = y->rank;
	if (pa.axis >= 0) {
		ta = pa;
		if (pa.axis == ra - 1)
			return lose(w, n, "mixes samples: the batch of '%s' is "
				    "on the axis it sums over", a->name);
		/* rows: second to last of the output (last when B is 1-D) */
		ta.axis = pa.axis == ra - 2 ? (rb == 1 ? r - 1 : r - 2)
					    : r - (rb == 1 ? 1 : 2) -
						      (ra - 2) + pa.axis;
	}
	if (pb.axis >= 0) {
		tb = pb;
		if (rb == 1 || pb.axis == rb - 2)
			return lose(w, n, "mixes samples: the batch of '%s' is "
				    "on the axis it sums over", b->name);
		tb.axis = pb.axis == rb - 1 ? r - 1
					    : r - (ra == 1 ? 1 : 2) -
						      (rb - 2) + pb.axis;
	}
	if (ta.axis >= 0 && tb.axis >= 0 && !same_pos(ta, tb))
		return lose(w, n, "mixes samples: '%s' and '%s' hold the batch "
			    "on different axes", a->name, b->name);
	lm_batch_pos t = ta.axis >= 0 ? ta : tb;
	if (t.axis < 0)
		return outputs_none(w, n);
	/* the operand without the batch must broadcast along it: among the
	 * output's leading dims, its own (aligned from the right) must be 1 */
	const lm_value *o = ta.axis >= 0 ? b : a;
	if (ta.axis < 0 || tb.axis < 0) {
		int lead = r - (ra >= 2 && rb >= 2 ? 2 : 1);
		int olead = o->rank >= 2 ? o->rank - 2 : 0;
		int d = t.axis - (lead - olead);
		if (t.axis < lead && d >= 0 && d < olead && o->dims[d] != 1)
			return lose(w, n, "broadcasts '%s', which holds no "
				    "batch, along the batch axis", o->name);
	}
	set_out(w, n, 0, t, in_amb(w, n));
}

static void rule_transpose(struct walk *w, const lm_node *n)
{
	const lm_value *x = lm_node_in(w->g, n, 0);
	lm_batch_pos p = in_pos(w, n, 0);
	int64_t perm[LM_MAX_RANK];
	if (!x || p.axis < 0)
		return outputs_none(w, n);
	int np = lm_ops_attr_list(w->g, n, "perm", perm, LM_MAX_RANK, NULL);
	if (np < 0 || (np && np != x->rank))
		return lose(w, n, "has a perm lamina cannot read");
	for (int j = 0; j < x->rank; j++)
		if ((np ? perm[j] : x->rank - 1 - j) == p.axis) {
			p.axis = j;
			return set_out(w, n, 0, p, in_amb(w, n));
		}
	lose(w, n, "has a perm without axis %d", p.axis);
}

static void rule_flatten(struct walk *w, const lm_node *n)
{
	const lm_value *x = lm_node_in(w->g, n, 0);
	lm_batch_pos p = in_pos(w, n, 0);
	int k;
	if (!x || p.axis < 0)
		return outputs_none(w, n);
	if (lm_ops_axis(w->g, n, lm_attr_int(n, "axis", 1), x->rank + 1,
			"axis", &k, NULL))
		return lose(w, n, "has an axis out of range");
	/* [prod(dims[:k]), prod(dims[k:])]: the batch stays in its group */
	int first = p.axis < k ? 0 : k, last = p.axis < k ? k : x->rank;
	int64_t above = lm_ops_numel(p.axis - first, x->dims + first);
	int64_t below = lm_ops_numel(last - p.axis - 1, x->dims + p.axis + 1);
	if (above < 0 || below < 0 || ovf_mul(p.outer, above, &p.outer) ||
	    ovf_mul(p.inner, below, &p.inner))
		return lose(w, n, "has a shape too large");
	p.axis = p.axis < k ? 0 : 1;
	set_out(w, n, 0, p, in_amb(w, n));
}

/* Where a Reshape may put the batch: the output axes whose span of the
 * row-major order holds the input's batch (its stride s and extent b),
 * best first. */
static int reshape_cands(const struct walk *w, const lm_value *x,
			 const lm_value *y, lm_batch_pos p, struct cand *c)
{
	int64_t s = lm_ops_numel(x->rank - p.axis - 1, x->dims + p.axis + 1);
	int64_t before = lm_ops_numel(p.axis, x->dims), n = 0;
	if (s <= 0 || before < 0 || ovf_mul(s, p.inner, &s) ||
	    ovf_mul(before, p.outer, &before))
		return 0;
	for (int j = 0; j < y->rank; j++) {
		int64_t t = lm_ops_numel(y->rank - j - 1, y->dims + j + 1);
		int64_t in, on, span, pre = lm_ops_numel(j, y->dims);
		if (t <= 0 || s % t || pre < 0)
			continue;
		in = s / t;
		if (ovf_mul(in, w->b, &span) || y->dims[j] % span)
			continue;
		on = y->dims[j] / span;
		if (on < 1 || ovf_mul(pre, on, &pre) || pre != before)
			continue;
		int rank = on == 1 && in == 1 ? 0 : on == 1 ? 1 : in == 1 ? 2
									   : 3;
		c[n].p = (lm_batch_pos){ j, on, in };
		c[n].rank = rank * 16 + abs(j - p.axis);
		n++;
	}
	/* insertion sort: at most LM_MAX_RANK candidates */
	for (int i = 1; i < n; i++)
		for (int k = i; k > 0 && c[k].rank < c[k - 1].rank; k--) {
			struct cand t = c[k];
			c[k] = c[k - 1];
			c[k - 1] = t;
		}
	return (int)n;
}

static void rule_reshape(struct walk *w, const lm_node *n)
{
	const lm_value *x = lm_node_in(w->g, n, 0), *y = lm_node_out(w->g, n, 0);
	lm_batch_pos p = in_pos(w, n, 0);
	struct cand c[MAX_CANDS];
	char a[96], b[96];
	int ni = (int)(n - w->g->nodes);
	if (in_pos(w, n, 1).axis >= 0)
		return lose(w, n, "takes its target shape from the batch");
	if (!x || !y || p.axis < 0)
		return outputs_none(w, n);
	int nc = reshape_cands(w, x, y, p, c);
	if (nc == 0)
		return lose(w, n, "reshapes %s to %s across samples",
			    shape_of(x, a, sizeof(a)), shape_of(y, b, sizeof(b)));
	int amb = in_amb(w, n);
	if (nc > 1) {
		w->ncand[ni] = nc;
		w->prev[ni] = amb;
		amb = ni;
	}
	set_out(w, n, 0, c[nc > 1 ? w->choice[ni] % nc : 0].p, amb);
}

/* Squeeze and Unsqueeze: axes from an attribute before opset 13, an
 * input since. */
static int squeeze_axes(const struct walk *w, const lm_node *n,
			int64_t *axes)
{
	if (lm_ops_opset(w->g) < 13)
		return lm_ops_attr_list(w->g, n, "axes", axes, LM_MAX_RANK,
					NULL);
	if (!lm_node_in(w->g, n, 1))
		return 0;
	return lm_ops_const_ints(w->g, n, 1, "axes", axes, LM_MAX_RANK, NULL);
}

static void rule_squeeze(struct walk *w, const lm_node *n, int unsqueeze)
{
	const lm_value *x = lm_node_in(w->g, n, 0), *y = lm_node_out(w->g, n, 0);
	lm_batch_pos p = in_pos(w, n, 0);
	int64_t axes[LM_MAX_RANK];
	uint8_t mark[LM_MAX_RANK] = { 0 };
	if (!x || !y || p.axis < 0)
		return outputs_none(w, n);
	int na = squeeze_axes(w, n, axes);
	if (na < 0)
		return lose(w, n, "has axes lamina cannot read");
	for (int i = 0; i < na; i++) {
		int a;
		if (lm_ops_axis(w->g, n, axes[i], unsqueeze ? y->rank : x->rank,
				"axis", &a, NULL))
			return lose(w, n, "has an axis out of range");
		mark[a] = 1;
	}
	if (unsqueeze) {
		/* the p.axis-th axis of the output not inserted */
		for (int j = 0, k = 0; j < y->rank; j++) {
			if (mark[j])
				continue;
			if (k++ == p.axis) {
				p.axis = j;
				return set_out(w, n, 0, p, in_amb(w, n));
			}
		}
		return lose(w, n, "has more axes than its output");
	}
	for (int d = 0; na == 0 && d < x->rank; d++)
		mark[d] = x->dims[d] == 1;
	if (mark[p.axis])
		return lose(w, n, "squeezes away the batch axis %d", p.axis);
	for (int d = 0, a = p.axis; d < a; d++)
		p.axis -= mark[d];
	set_out(w, n, 0, p, in_amb(w, n));
}

static void rule_concat(struct walk *w, const lm_node *n)
{
	const lm_value *y = lm_node_out(w->g, n, 0);
	lm_batch_pos t = lm_batch_none();
	int k, with = 0, without = 0;
	if (!y || !any_batch(w, n, 0))
		return outputs_none(w, n);
	if (lm_ops_axis(w->g, n, lm_attr_int(n, "axis", 0), y->rank, "axis",
			&k, NULL))
		return lose(w, n, "has an axis out of range");
	int64_t outer = 0;
	for (int i = 0; i < n->n_inputs; i++) {
		lm_batch_pos p = in_pos(w, n, i);
		if (p.axis < 0) {
			without++;
			continue;
		}
		with++;
		if (t.axis < 0)
			t = p;
		if (p.axis != t.axis || p.inner != t.inner ||
		    (p.axis != k && p.outer != t.outer))
			return lose(w, n, "mixes samples: its inputs hold the "
				    "batch on different axes");
		outer += p.outer;
	}
	if (without)
		return lose(w, n, "joins a tensor without the batch to %d "
			    "with it", with);
	/* along the batch axis: [x; y] holds every sample's rows of x,
	 * then of y, so the batch becomes the inner part of the sum */
	if (t.axis == k)
		t.outer = outer;
	set_out(w, n, 0, t, in_amb(w, n));
}

static void rule_split(struct walk *w, const lm_node *n)
{
	const lm_value *x = lm_node_in(w->g, n, 0);
	lm_batch_pos p = in_pos(w, n, 0);
	int k;
	if (!x || p.axis < 0)
		return outputs_none(w, n);
	if (lm_ops_axis(w->g, n, lm_attr_int(n, "axis", 0), x->rank, "axis",
			&k, NULL))
		return lose(w, n, "has an axis out of range");
	if (k == p.axis)
		return lose(w, n, "splits along the batch axis %d", k);
	all_out(w, n, p, in_amb(w, n));
}

/* A Slice may only take all of the batch axis, in order. */
static void rule_slice(struct walk *w, const lm_node *n)
{
	const lm_value *x = lm_node_in(w->g, n, 0);
	lm_batch_pos p = in_pos(w, n, 0);
	int64_t st[LM_MAX_RANK], en[LM_MAX_RANK], ax[LM_MAX_RANK], sp[LM_MAX_RANK];
	int ns, ne, na = 0, nsp = 0;
	if (any_batch(w, n, 1))
		return lose(w, n, "takes its bounds from the batch");
	if (!x || p.axis < 0)
		return outputs_none(w, n);
	if (lm_ops_opset(w->g) < 10) {
		ns = lm_ops_attr_list(w->g, n, "starts", st, LM_MAX_RANK, NULL);
		ne = lm_ops_attr_list(w->g, n, "ends", en, LM_MAX_RANK, NULL);
		na = lm_ops_attr_list(w->g, n, "axes", ax, LM_MAX_RANK, NULL);
	} else {
		ns = lm_ops_const_ints(w->g, n, 1, "starts", st, LM_MAX_RANK,
				       NULL);
		ne = lm_ops_const_ints(w->g, n, 2, "ends", en, LM_MAX_RANK,
				       NULL);
		if (lm_node_in(w->g, n, 3))
			na = lm_ops_const_ints(w->g, n, 3, "axes", ax,
					       LM_MAX_RANK, NULL);
		if (lm_node_in(w->g, n, 4))
			nsp = lm_ops_const_ints(w->g, n, 4, "steps", sp,
						LM_MAX_RANK, NULL);
	}
	if (ns < 0 || ne < 0 || na < 0 || nsp < 0 || ne != ns)
		return lose(w, n, "has bounds lamina cannot read");
	for (int i = 0; i < ns; i++) {
		int a;
		if (lm_ops_axis(w->g, n, na ? ax[i] : i, x->rank, "axis", &a,
				NULL))
			return lose(w, n, "has an axis out of range");
		/* all of it: from 0 (or before) to the end at any batch */
		if (a == p.axis &&
		    ((nsp && sp[i] != 1) || (st[i] != 0 && st[i] > -x->dims[a]) ||
		     en[i] < (int64_t)1 << 31))
			return lose(w, n, "slices the batch axis %d", a);
	}
	set_out(w, n, 0, p, in_amb(w, n));
}

static void rule_gather(struct walk *w, const lm_node *n)
{
	const lm_value *x = lm_node_in(w->g, n, 0), *idx = lm_node_in(w->g, n, 1);
	lm_batch_pos p = in_pos(w, n, 0), q = in_pos(w, n, 1);
	int k;
	if (!x || !idx || (p.axis < 0 && q.axis < 0))
		return outputs_none(w, n);
	if (lm_ops_axis(w->g, n, lm_attr_int(n, "axis", 0), x->rank, "axis",
			&k, NULL))
		return lose(w, n, "has an axis out of range");
	if (p.axis >= 0 && q.axis >= 0)
		return lose(w, n, "indexes a batch with a batch of indices");
	if (p.axis == k)
		return lose(w, n, "picks along the batch axis %d", k);
	/* data[:k] + indices.shape + data[k+1:] */
	if (p.axis >= 0)
		p.axis = p.axis < k ? p.axis : p.axis + idx->rank - 1;
	else
		p = (lm_batch_pos){ k + q.axis, q.outer, q.inner };
	set_out(w, n, 0, p, in_amb(w, n));
}

/* Ops that keep input 0's layout along the batch (Pad, Resize, Tile,
 * Expand, Dropout, ops lamina has no rule for): the output must be as
 * long as the input on the batch axis, aligned from the right. */
static void rule_keep(struct walk *w, const lm_node *n, int known)
{
	const lm_value *x = NULL;
	lm_batch_pos p = lm_batch_none();
	int from = 0;
	for (; from < n->n_inputs && p.axis < 0; from++) {
		p = in_pos(w, n, from);
		x = lm_node_in(w->g, n, from);
	}
	if (p.axis < 0 || !x)
		return outputs_none(w, n);
	if (known && any_batch(w, n, from))
		return lose(w, n, "takes a parameter from the batch");
	for (int k = 0; k < n->n_outputs; k++) {
		const lm_value *y = lm_node_out(w->g, n, k);
		if (!y)
			continue;
		lm_batch_pos q = p;
		q.axis += y->rank - x->rank;
		if (q.axis < 0 || y->dims[q.axis] != x->dims[p.axis])
			return lose(w, n, known ? "changes the length of the "
				    "batch axis %d" : "(an operator lamina has "
				    "no batch rule for) changes axis %d",
				    p.axis);
		set_out(w, n, k, q, in_amb(w, n));
	}
}

static int is(const lm_node *n, const char *const *names)
{
	for (int i = 0; names[i]; i++)
		if (!strcmp(n->op_type, names[i]))
			return 1;
	return 0;
}

static const char *const nchw_ops[] = {
	"Conv", "ConvTranspose", "MaxPool", "AveragePool", "LpPool",
	"GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool",
	"InstanceNormalization", "LRN", "MaxRoiPool", NULL,
};
static const char *const elementwise_ops[] = {
	"Relu", "LeakyRelu", "PRelu", "Elu", "Selu", "Celu", "Clip", "Sigmoid",
	"HardSigmoid", "HardSwish", "Tanh", "Erf", "Gelu", "Exp", "Log",
	"Sqrt", "Neg", "Abs", "Reciprocal", "Identity", "Cast", "CastLike",
	"Not", "Add", "Sub", "Mul", "Div", "Pow", "Mod", "Equal", "Less",
	"LessOrEqual", "Greater", "GreaterOrEqual", "Where", "And", "Or",
	"Xor", "Max", "Min", "Sum", "Mean", "Softplus", "Softsign", "Sign",
	"Floor", "Ceil", "Round", "Sin", "Cos", "Mish", "IsNaN", "IsInf",
	"ThresholdedRelu", NULL,
};
static const char *const reduce_ops[] = {
	"ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd",
	"ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp",
	"ReduceSumSquare", NULL,
};
static const char *const no_batch_ops[] = {
	"Shape", "Size", "ConstantOfShape", "Range", "Constant", NULL,
};

static void step(struct walk *w, const lm_node *n)
{
	int dflt = !n->domain[0] || !strcmp(n->domain, "ai.onnx");
	if (dflt && is(n, no_batch_ops))
		return outputs_none(w, n);
	if (!any_batch(w, n, 0))
		return outputs_none(w, n);
	if (!dflt)
		return rule_keep(w, n, 0);
	if (is(n, elementwise_ops))
		return rule_broadcast(w, n, n->n_inputs);
	if (is(n, nchw_ops))
		return rule_nchw(w, n);
	if (is(n, reduce_ops))
		return rule_reduce(w, n);
	const char *op = n->op_type;
	if (!strcmp(op, "BatchNormalization"))
		return rule_batchnorm(w, n);
	if (!strcmp(op, "LayerNormalization"))
		return rule_layernorm(w, n);
	if (!strcmp(op, "Softmax") || !strcmp(op, "LogSoftmax") ||
	    !strcmp(op, "Hardmax"))
		return rule_softmax(w, n);
	if (!strcmp(op, "Gemm"))
		return rule_gemm(w, n);
	if (!strcmp(op, "MatMul"))
		return rule_matmul(w, n);
	if (!strcmp(op, "Transpose"))
		return rule_transpose(w, n);
	if (!strcmp(op, "Flatten"))
		return rule_flatten(w, n);
	if (!strcmp(op, "Reshape"))
		return rule_reshape(w, n);
	if (!strcmp(op, "Squeeze") || !strcmp(op, "Unsqueeze"))
		return rule_squeeze(w, n, op[0] == 'U');
	if (!strcmp(op, "Concat"))
		return rule_concat(w, n);
	if (!strcmp(op, "Split"))
		return rule_split(w, n);
	if (!strcmp(op, "Slice"))
		return rule_slice(w, n);
	if (!strcmp(op, "Gather"))
		return rule_gather(w, n);
	if (!strcmp(op, "Dropout"))
		return rule_broadcast(w, n, 1);
	return rule_keep(w, n, !strcmp(op, "Pad") || !strcmp(op, "Resize") ||
				       !strcmp(op, "Tile") ||
				       !strcmp(op, "Expand"));
}

static int walk_once(struct walk *w, const lm_batch_pos *inputs,
		     lm_error *e)
{
	lm_graph *g = w->g;
	w->stop = w->stop_amb = -1;
	w->why[0] = '\0';
	for (int v = 0; v < g->n_values; v++) {
		w->pos[v] = lm_batch_none();
		w->amb[v] = -1;
	}
	for (int i = 0; i < g->n_inputs; i++) {
		const lm_value *x = &g->values[g->inputs[i]];
		lm_batch_pos p = inputs ? inputs[i] : lm_batch_none();
		int64_t extent;
		if (p.axis >= 0 &&
		    (p.axis >= x->rank || p.outer < 1 || p.inner < 1 ||
		     ovf_mul(p.outer, w->b, &extent) ||
		     ovf_mul(extent, p.inner, &extent) ||
		     x->dims[p.axis] != extent))
			return lm_fail(e, -EINVAL, "input '%s': no batch of %lld "
				       "on axis %d of its shape", x->name,
				       (long long)w->b, p.axis);
		w->pos[g->inputs[i]] = p;
	}
	for (int ni = 0; ni < g->n_nodes; ni++) {
		w->ncand[ni] = 0;
		w->prev[ni] = -1;
		step(w, &g->nodes[ni]);
	}
	return 0;
}

/* The next set of choices after a walk that stopped: the latest
 * ambiguous Reshape upstream of the stop takes its next candidate (those
 * after it start again); one out of candidates passes the turn to the one
 * upstream of it.  0 when every combination on that chain was tried. */
static int next_choice(struct walk *w)
{
	int n = w->g->n_nodes;
	for (int r = w->stop_amb; r >= 0; r = w->prev[r]) {
		for (int k = r + 1; k < n; k++)
			w->choice[k] = 0;
		if (w->choice[r] + 1 < w->ncand[r]) {
			w->choice[r]++;
			return 1;
		}
		w->choice[r] = 0;
	}
	return 0;
}

void lm_batch_clear(lm_batch *b)
{
	free(b->pos);
	memset(b, 0, sizeof(*b));
	b->stop = -1;
}

int lm_batch_find(lm_graph *g, int64_t size, const lm_batch_pos *inputs,
		  lm_batch *out, lm_error *e)
{
	struct walk w = { .g = g, .b = size };
	size_t nv = (size_t)g->n_values + 1, nn = (size_t)g->n_nodes + 1;
	int rc = 0;
	memset(out, 0, sizeof(*out));
	out->stop = -1;
	w.pos = calloc(nv, sizeof(*w.pos));
	w.amb = calloc(nv, sizeof(int));
	w.choice = calloc(nn, sizeof(int));
	w.ncand = calloc(nn, sizeof(int));
	w.prev = calloc(nn, sizeof(int));
	if (!w.pos || !w.amb || !w.choice || !w.ncand || !w.prev) {
		rc = lm_fail(e, -ENOMEM, "out of memory");
		goto out;
	}
	if (size < 1) {
		rc = lm_fail(e, -EINVAL, "batch %lld", (long long)size);
		goto out;
	}
	for (int k = 0; k < MAX_WALKS; k++) {
		if ((rc = walk_once(&w, inputs, e)) || w.stop < 0)
			break;
		if (!next_choice(&w)) {
			/* nothing makes the samples stay apart: report the
			 * walk of the first choices */
			memset(w.choice, 0, nn * sizeof(int));
			rc = walk_once(&w, inputs, e);
			break;
		}
	}
	if (rc)
		goto out;
	for (int j = 0; j < g->n_outputs && w.stop < 0; j++)
		if (w.pos[g->outputs[j]].axis < 0) {
			w.stop = g->n_nodes;
			snprintf(w.why, sizeof(w.why), "output '%s' holds no "
				 "batch", g->values[g->outputs[j]].name);
		}
	out->size = size;
	out->n = g->n_values;
	out->pos = w.pos;
	w.pos = NULL;
	out->stop = w.stop;
	snprintf(out->why, sizeof(out->why), "%s", w.why);
out:
	free(w.pos);
	free(w.amb);
	free(w.choice);
	free(w.ncand);
	free(w.prev);
	return rc;
}

int lm_batch_guess(lm_graph *g, lm_batch *out, lm_error *e)
{
	lm_batch_pos *in = calloc((size_t)g->n_inputs + 1, sizeof(*in));
	lm_batch first = { .stop = -1 };
	int max_rank = 0, rc = 0;
	memset(out, 0, sizeof(*out));
	out->stop = -1;
	out->size = 1;
	if (!in)
		return lm_fail(e, -ENOMEM, "out of memory");
	for (int i = 0; i < g->n_inputs; i++)
		if (g->values[g->inputs[i]].rank > max_rank)
			max_rank = g->values[g->inputs[i]].rank;
	for (int k = 0; k < max_rank; k++) {
		int64_t size = -1;
		int same = 1;
		lm_batch b;
		for (int i = 0; i < g->n_inputs; i++) {
			const lm_value *x = &g->values[g->inputs[i]];
			in[i] = lm_batch_none();
			if (x->rank <= k)
				continue;
			in[i] = (lm_batch_pos){ k, 1, 1 };
			if (size < 0)
				size = x->dims[k];
			same &= x->dims[k] == size;
		}
		if (!same || size < 1)
			continue;
		if ((rc = lm_batch_find(g, size, in, &b, e)))
			break;
		if (b.stop < 0) {
			lm_batch_clear(&first);
			*out = b;
			free(in);
			return 0;
		}
		if (!first.pos)
			first = b;
		else
			lm_batch_clear(&b);
	}
	free(in);
	if (rc) {
		lm_batch_clear(&first);
		return rc;
	}
	if (first.pos)
		*out = first;
	return 0;
}

int lm_batch_literals(lm_graph *g, const lm_batch *b, lm_error *e)
{
	int done = 0, n_values = g->n_values;
	for (int ni = 0; ni < g->n_nodes; ni++) {
		lm_node *n = &g->nodes[ni];
		if (strcmp(n->op_type, "Reshape") || n->n_inputs < 2 ||
		    n->n_outputs < 1 || n->outputs[0] < 0 || n->inputs[1] < 0 ||
		    n->inputs[0] < 0)
			continue;
		lm_batch_pos p = lm_batch_of(b, n->outputs[0]);
		lm_batch_pos q = lm_batch_of(b, n->inputs[0]);
		lm_value *y = &g->values[n->outputs[0]];
		lm_value *s = &g->values[n->inputs[1]];
		int64_t t[LM_MAX_RANK];
		if (p.axis < 0 || !lm_value_is_const(s) ||
		    lm_value_read_ints(g, s, t, LM_MAX_RANK, NULL) != y->rank)
			continue;
		if (t[p.axis] == -1 ||
		    (t[p.axis] == 0 && !lm_attr_int(n, "allowzero", 0) &&
		     same_pos(p, q)) ||
		    lm_shape_numel(y->rank, y->dims) <= 0)
			continue;
		int64_t *data = malloc(sizeof(int64_t) * (size_t)y->rank);
		if (!data)
			return lm_fail(e, -ENOMEM, "out of memory");
		int64_t dims[1] = { y->rank };
		for (int d = 0; d < y->rank; d++)
			data[d] = d == p.axis ? -1 : y->dims[d];
		int v = n->inputs[1];
		if (s->n_consumers != 1) {
			/* another node reads this target: this one gets its
			 * own, "<name>:batch" (or :batch2, ...) */
			char name[512];
			snprintf(name, sizeof(name), "%s:batch", s->name);
			for (int k = 2; lm_graph_find(g, name) >= 0; k++)
				snprintf(name, sizeof(name), "%s:batch%d",
					 s->name, k);
			v = lm_graph_add_value(g, name, LM_VAL_CONSTANT, e);
			if (v < 0) {
				free(data);
				return v;
			}
			g->nodes[ni].inputs[1] = v;
		}
		lm_value *c = &g->values[v];
		lm_value_set_shape(c, LM_DT_INT64, 1, dims);
		free(c->data);
		c->data = data;
		c->nbytes = sizeof(int64_t) * (size_t)dims[0];
		done++;
	}
	if (g->n_values != n_values && lm_graph_index(g))
		return lm_fail(e, -ENOMEM, "out of memory");
	return done;
}

const char *lm_batch_dim_name(const char *name, int64_t outer,
			      int64_t inner, char *buf, size_t len)
{
	char o[24] = "", i[24] = "";
	if (outer > 1)
		snprintf(o, sizeof(o), "%lld*", (long long)outer);
	if (inner > 1)
		snprintf(i, sizeof(i), "*%lld", (long long)inner);
	snprintf(buf, len, "%s%s%s", o, name, i);
	return buf;
}

int lm_batch_dim_parse(const char *text, char *name, size_t len,
		       int64_t *outer, int64_t *inner)
{
	int64_t f[2] = { 1, 1 };
	int named = 0;
	const char *p = text;
	if (!text || !text[0])
		return -EINVAL;
	while (*p) {
		size_t n = strcspn(p, "*");
		size_t digits = strspn(p, "0123456789");
		if (n == 0)
			return -EINVAL;
		if (digits == n) {
			char num[24];
			if (n >= sizeof(num))
				return -EINVAL;
			memcpy(num, p, n);
			num[n] = '\0';
			long long v = strtoll(num, NULL, 10);
			if (v < 1 || ovf_mul(f[named], v, &f[named]))
				return -EINVAL;
		} else {
			if (named || n >= len)
				return -EINVAL;
			memcpy(name, p, n);
			name[n] = '\0';
			named = 1;
		}
		p += n;
		if (*p == '*' && !*++p)
			return -EINVAL;
	}
	if (!named)
		return -EINVAL;
	*outer = f[0];
	*inner = f[1];
	return 0;
}
