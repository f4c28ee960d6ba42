/*
 * shape_ops.c: operators that rearrange, select or create data rather than
 * compute on it: Shape, Size, Gather, Unsqueeze, Squeeze, Concat, Split,
 * Slice, Flatten, Reshape, Transpose, Expand, ConstantOfShape, Range, Pad,
 * Resize, Constant, Tile.
 *
 * Many of their output shapes depend on the values of constant inputs
 * (Reshape's shape, Slice's starts...); infer reads those and fails,
 * naming the input, when one is not a constant.  Most of them also appear
 * in the shape subgraphs that exporters emit (Shape -> Gather -> Unsqueeze
 * -> Concat -> Reshape), so they can be evaluated at fold time; the data
 * movement kernels work on elements of any fixed size.
 *
 * Opset differences: Squeeze/Unsqueeze axes and Split's split become inputs
 * at 13; Split gains num_outputs at 18; Slice takes inputs from 10; Pad's
 * pads and constant_value become inputs at 11 and axes appears at 18;
 * Resize takes (X, scales) at 10, (X, roi, scales, sizes) from 11 and axes
 * and keep_aspect_ratio_policy from 18; Shape gains start/end at 15;
 * Reshape gains allowzero at 14.
 */
#include "ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void strides_of(int rank, const int64_t *dims, int64_t *st)
{
	int64_t s = 1;
	for (int i = rank - 1; i >= 0; i--) {
		st[i] = s;
		s *= dims[i];
	}
}

static int64_t clamp(int64_t v, int64_t lo, int64_t hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

/* ---- Shape, Size ---- */

/* Shape-15's [start, end) window over the dims, clamped like a slice. */
static void shape_window(const lm_node *n, int rank, int *start, int *end)
{
	int64_t s = lm_attr_int(n, "start", 0);
	int64_t t = lm_attr_int(n, "end", rank);

	if (s < 0)
		s += rank;
	if (t < 0)
		t += rank;
	s = clamp(s, 0, rank);
	t = clamp(t, s, rank);
	*start = (int)s;
	*end = (int)t;
}

static int shape_infer(lm_graph *g, lm_node *n, lm_error *e)
{
	lm_value *x;
	int s, t, rc;

	if ((rc = lm_ops_arity(g, n, 1, 1, 1, 1, e)) ||
	    (rc = lm_ops_in(g, n, 0, &x, e)))
		return rc;
	shape_window(n, x->rank, &s, &t);
	int64_t len = t - s;
	return lm_ops_out(g, n, 0, LM_DT_INT64, 1, &len, e);
}

static int shape_fold(lm_graph *g, lm_node *n, lm_error *e)
{
	lm_value *x = lm_node_in(g, n, 0);
	int s, t;

	if (!x || !lm_value_shape_known(x))
		return -EINVAL;
	shape_window(n, x->rank, &s, &t);
	int64_t *y = lm_ops_fold_out(g, n, 0, e);
	if (!y)
		return -ENOMEM;
	memcpy(y, x->dims + s, (size_t)(t - s) * sizeof(int64_t));
	return 0;
}

static int size_infer(lm_graph *g, lm_node *n, lm_error *e)
{
	lm_value *x;
	int rc;

	if ((rc = lm_ops_arity(g, n, 1, 1, 1, 1, e)) ||
	    (rc = lm_ops_in(g, n, 0, &x, e)))
		return rc;
	return lm_ops_out(g, n, 0, LM_DT_INT64, 0, NULL, e);
}

static int size_fold(lm_graph *g, lm_node *n, lm_error *e)
{
	lm_value *x = lm_node_in(g, n, 0);
	int64_t cnt = x ? lm_ops_numel(x->rank, x->dims) : -1;

	if (cnt < 0)
		return -EINVAL;
	int64_t *y = lm_ops_fold_out(g, n, 0, e);
	if (!y)
		return -ENOMEM;
	*y = cnt;
	return 0;
}

/* ---- Gather ---- */

static int gather_infer(lm_graph *g, lm_node *n, lm_error *e)
{
	lm_value *x, *idx;
	int64_t dims[2 * LM_MAX_RANK];
	int axis, r = 0, rc;

	if ((rc = lm_ops_arity(g, n, 2, 2, 1, 1, e)) ||
	    (rc = lm_ops_in(g, n, 0, &x, e)) ||
	    (rc = lm_ops_in(g, n, 1, &idx, e)) ||
	    (rc = lm_ops_axis(g, n, lm_attr_int(n, "axis", 0), x->rank,
			      "axis", &axis, e)))
		return rc;
	if (idx->dtype != LM_DT_INT64 && idx->dtype != LM_DT_INT32)
		return lm_ops_fail(e, g, n, -EINVAL, "indices '%s' are %s, "
				   "expected int32 or int64", idx->name,
				   lm_dtype_name(idx->dtype));
	/* data[:axis] + indices.shape + data[axis+1:] */
	for (int i = 0; i < axis; i++)
		dims[r++] = x->dims[i];
	for (int i = 0; i < idx->rank; i++)
		dims[r++] = idx->dims[i];
	for (int i = axis + 1; i < x->rank; i++)
		dims[r++] = x->dims[i];
	return lm_ops_out(g, n, 0, x->dtype, r, dims, e);
}

static int gather_fold(lm_graph *g, lm_node *n, lm_error *e)
{
	lm_value *x = lm_node_in(g, n, 0), *idx = lm_node_in(g, n, 1);
	int axis;

	if (!x || !idx || lm_ops_axis(g, n, lm_attr_int(n, "axis", 0), x->rank,
				      "axis", &axis, e))
		return -EINVAL;
	size_t es = lm_dtype_size(x->dtype);
	int64_t outer = lm_ops_numel(axis, x->dims), dim = x->dims[axis];
	int64_t inner = lm_ops_numel(x->rank - axis - 1, x->dims + axis + 1);
	int64_t ni = lm_ops_numel(idx->rank, idx->dims);
	const char *px = lm_ops_fold_in(g, n, 0, e);
	const void *pi = lm_ops_fold_in(g, n, 1, e);
	if (!px || !pi || es == 0 || outer < 0 || inner < 0 || ni < 0)
		return -EINVAL;
	char *py = lm_ops_fold_out(g, n, 0, e);
	if (!py)
		return -ENOMEM;
	size_t chunk = (size_t)inner * es;
	for (int64_t o = 0; o < outer; o++) {
		for (int64_t j = 0; j < ni; j++) {
			int64_t k = lm_ops_get_i(pi, idx->dtype, j);
			if (k < -dim || k >= dim)
				return lm_ops_fail(e, g, n, -EINVAL, "index "
						   "%lld is out of range for "
						   "axis %d of size %lld",
						   (long long)k, axis,
						   (long long)dim);
			if (k < 0)
				k += dim;
			memcpy(py, px + (size_t)(o * dim + k) * chunk, chunk);
			py += chunk;
		}
	}
	return 0;
}

/* ---- Unsqueeze, Squeeze ---- */

/* Axes of Squeeze/Unsqueeze: an attribute before opset 13, an input from
 * then on.  Returns the count (0: none given) or an error. */
static int squeeze_axes(lm_graph *g, lm_node *n, int64_t *axes,
			lm_error *e)
{
	if (lm_ops_opset(g) < 13)
		return lm_ops_attr_list(g, n, "axes", axes, LM_MAX_RANK, e);
	if (!lm_node_in(g, n, 1))
		return 0;
	return lm_ops_const_ints(g, n, 1, "axes", axes, LM_MAX_RANK, e);
}

static int unsqueeze_infer(lm_graph *g, lm_node *n, lm_error *e)
{
	lm_value *x;
	int64_t axes[LM_MAX_RANK], dims[LM_MAX_RANK];
	uint8_t ins[LM_MAX_RANK] = { 0 };
	int na, rc;

	if ((rc = lm_ops_arity(g, n, 1, lm_ops_opset(g) < 13 ? 1 : 2, 1, 1,
			       e)) ||
	    (rc = lm_ops_in(g, n, 0, &x, e)))
		return rc;
	if ((na = squeeze_axes(g, n, axes, e)) < 0)
		return na;
	if (na == 0)
		return lm_ops_fail(e, g, n, -EINVAL, "no axes given");
	int r = x->rank + na;
	if (r > LM_MAX_RANK)
		return lm_ops_fail(e, g, n, -EINVAL, "output rank %d exceeds "
				   "%d", r, LM_MAX_RANK);
	/* Axes index the output, so they are normalised against its rank. */
	for (int i = 0; i < na; i++) {
		int a;
		if ((rc = lm_ops_axis(g, n, axes[i], r, "axis", &a, e)))
			return rc;
		if (ins[a])
			return lm_ops_fail(e, g, n, -EINVAL, "axis %lld is "
					   "listed twice", (long long)axes[i]);
		ins[a] = 1;
	}
	for (int i = 0, j = 0; i < r; i++)
		dims[i] = ins[i] ? 1 : x->dims[j++];
	return lm_ops_out(g, n, 0, x->dtype, r, dims, e);
}

static int squeeze_infer(lm_graph *g, lm_node *n, lm_error *e)
{
	lm_value *x;
	int64_t axes[LM_MAX_RANK], dims[LM_MAX_RANK];
	uint8_t drop[LM_MAX_RANK] = { 0 };
	int na, rc, r = 0;

	if ((rc = lm_ops_arity(g, n, 1, lm_ops_opset(g) < 13 ? 1 : 2, 1, 1,
			       e)) ||
	    (rc = lm_ops_in(g, n, 0, &x, e)))
		return rc;
	if ((na = squeeze_axes(g, n, axes, e)) < 0)
		return na;
	for (int i = 0; i < na; i++) {
		int a;
		if ((rc = lm_ops_axis(g, n, axes[i], x->rank, "axis", &a, e)))
			return rc;
		if (drop[a])
			return lm_ops_fail(e, g, n, -EINVAL, "axis %lld is "
					   "listed twice", (long long)axes[i]);
		if (x->dims[a] != 1)
			return lm_ops_fail(e, g, n, -EINVAL, "cannot squeeze "
					   "axis %d of '%s', which has size "
					   "%lld", a, x->name,
					   (long long)x->dims[a]);
		drop[a] = 1;
	}
	/* Without axes every dim of size 1 goes. */
	for (int i = 0; i < x->rank; i++)
		if (!(na ? drop[i] : x->dims[i] == 1))
			dims[r++] = x->dims[i];
	return lm_ops_out(g, n, 0, x->dtype, r, dims, e);
}

/* ---- Concat, Split ---- */

static int concat_infer(lm_graph *g, lm_node *n, lm_error *e)
{
	lm_value *x0, *x;
	int64_t dims[LM_MAX_RANK];
	int axis, rc;

	if ((rc = lm_ops_arity(g, n, 1, -1, 1, 1, e)) ||
	    (rc = lm_ops_in(g, n, 0, &x0, e)))
		return rc;
	const lm_attr *a = lm_node_attr(n, "axis");
	if (!a || a->type != LM_ATTR_INT)
		return lm_ops_fail(e, g, n, -EINVAL, "axis attribute is "
				   "missing");
	if ((rc = lm_ops_axis(g, n, a->i, x0->rank, "axis", &axis, e)))
		return rc;
	memcpy(dims, x0->dims, (size_t)x0->rank * sizeof(int64_t));
	for (int i = 1; i < n->n_inputs; i++) {
		if ((rc = lm_ops_in(g, n, i, &x, e)) ||
		    (rc = lm_ops_same_type(g, n, x0, x, e)))
			return rc;
		if (x->rank != x0->rank)
			return lm_ops_fail(e, g, n, -EINVAL, "input '%s' has "
					   "rank %d, input '%s' rank %d",
					   x->name, x->rank, x0->name,
					   x0->rank);
		for (int d = 0; d < x->rank; d++) {
			if (d == axis) {
				if (ovf_add(dims[d], x->dims[d], &dims[d]))
					return lm_ops_fail(e, g, n, -EOVERFLOW,
							   "axis size "
							   "overflows");
			} else if (x->dims[d] != x0->dims[d]) {
				return lm_ops_fail(e, g, n, -EINVAL, "input "
						   "'%s' has %lld on axis %d, "
						   "input '%s' has %lld",
						   x->name,
						   (long long)x->dims[d], d,
						   x0->name,
						   (long long)x0->dims[d]);
			}
		}
	}
	return lm_ops_out(g, n, 0, x0->dtype, x0->rank, dims, e);
}

static int concat_fold(lm_graph *g, lm_node *n, lm_error *e)
{
	lm_value *y = lm_node_out(g, n, 0);
	int axis;

	if (!y || lm_ops_axis(g, n, lm_attr_int(n, "axis", 0), y->rank,
			      "axis", &axis, e))
		return -EINVAL;
	size_t es = lm_dtype_size(y->dtype);
	int64_t outer = lm_ops_numel(axis, y->dims);
	int64_t inner = lm_ops_numel(y->rank - axis - 1, y->dims + axis + 1);
	if (es == 0 || outer < 0 || inner < 0)
		return -EINVAL;
	for (int i = 0; i < n->n_inputs; i++)
		if (!lm_ops_fold_in(g, n, i, e))
			return -EINVAL;
	char *py = lm_ops_fold_out(g, n, 0, e);
	if (!py)
		return -ENOMEM;
	/* Row o of the output is row o of every input, one after another. */
	for (int64_t o = 0; o < outer; o++) {
		for (int i = 0; i < n->n_inputs; i++) {
			lm_value *x = lm_node_in(g, n, i);
			size_t chunk = (size_t)(x->dims[axis] * inner) * es;
			memcpy(py, (const char *)x->data + (size_t)o * chunk,
			       chunk);
			py += chunk;
		}
	}
	return 0;
}

/* Split sizes: the split input (opset 13+) or attribute (before), else
 * num_outputs (opset 18+), else equal parts, one per output. */
static int split_infer(lm_graph *g, lm_node *n, lm_error *e)
{
	lm_value *x;
	int64_t dims[LM_MAX_RANK];
	int axis, rc, nout = n->n_outputs, cnt = 0;
	int64_t opset = lm_ops_opset(g);

	if ((rc = lm_ops_arity(g, n, 1, opset >= 13 ? 2 : 1, 1, -1, e)) ||
	    (rc = lm_ops_in(g, n, 0, &x, e)) ||
	    (rc = lm_ops_axis(g, n, lm_attr_int(n, "axis", 0), x->rank,
			      "axis", &axis, e)))
		return rc;
	int64_t *sizes = calloc((size_t)nout + 1, sizeof(int64_t));
	if (!sizes)
		return lm_ops_fail(e, g, n, -ENOMEM, "out of memory");
	int64_t dim = x->dims[axis];

	if (opset >= 13 && lm_node_in(g, n, 1)) {
		cnt = lm_ops_const_ints(g, n, 1, "split", sizes, nout, e);
	} else if (opset < 13 && lm_node_attr(n, "split")) {
		cnt = lm_ops_attr_list(g, n, "split", sizes, nout, e);
	} else if (opset >= 18 && lm_node_attr(n, "num_outputs")) {
		int64_t k = lm_attr_int(n, "num_outputs", 0);
		if (k != nout) {
			rc = lm_ops_fail(e, g, n, -EINVAL, "num_outputs is "
					 "%lld but the node has %d outputs",
					 (long long)k, nout);
			goto out;
		}
		/* ceil(dim / k) each; the last takes what remains. */
		int64_t chunk = dim / k + (dim % k != 0);
		for (int i = 0; i < nout; i++)
			sizes[i] = i < nout - 1 ? chunk : dim - chunk * (k - 1);
		cnt = nout;
	} else {
		if (dim % nout != 0) {
			rc = lm_ops_fail(e, g, n, -EINVAL, "axis %d of size "
					 "%lld does not split into %d equal "
					 "parts", axis, (long long)dim, nout);
			goto out;
		}
		for (int i = 0; i < nout; i++)
			sizes[i] = dim / nout;
		cnt = nout;
	}
	if (cnt < 0) {
		rc = cnt;
		goto out;
	}
	if (cnt != nout) {
		rc = lm_ops_fail(e, g, n, -EINVAL, "split has %d sizes for %d "
				 "outputs", cnt, nout);
		goto out;
	}
	int64_t sum = 0;
	for (int i = 0; i < cnt; i++) {
		if (sizes[i] < 0 || ovf_add(sum, sizes[i], &sum)) {
			rc = lm_ops_fail(e, g, n, -EINVAL, "split size %lld "
					 "for output %d is not valid",
					 (long long)sizes[i], i);
			goto out;
		}
	}
	if (sum != dim) {
		rc = lm_ops_fail(e, g, n, -EINVAL, "split sizes add up to "
				 "%lld but axis %d has size %lld",
				 (long long)sum, axis, (long long)dim);
		goto out;
	}
	memcpy(dims, x->dims, (size_t)x->rank * sizeof(int64_t));
	for (int i = 0; i < nout && !rc; i++) {
		dims[axis] = sizes[i];
		rc = lm_ops_out(g, n, i, x->dtype, x->rank, dims, e);
	}
out:
	free(sizes);
	return rc;
}

/* ---- Slice ---- */

/* Per-axis start, step and resulting size; axes not sliced keep start 0,
 * step 1 and their size. */
struct slice_plan {
	int64_t start[LM_MAX_RANK];
	int64_t step[LM_MAX_RANK];
	int64_t dims[LM_MAX_RANK];
};

static int slice_plan(lm_graph *g, lm_node *n, const lm_value *x,
		      struct slice_plan *p, lm_error *e)
{
	int64_t st[LM_MAX_RANK], en[LM_MAX_RANK], ax[LM_MAX_RANK];
	int64_t sp[LM_MAX_RANK];
	uint8_t seen[LM_MAX_RANK] = { 0 };
	int ns, ne, na = 0, nsp = 0;

	if (lm_ops_opset(g) < 10) {
		if (!lm_node_attr(n, "starts") || !lm_node_attr(n, "ends"))
			return lm_ops_fail(e, g, n, -EINVAL, "starts or ends "
					   "attribute is missing");
		ns = lm_ops_attr_list(g, n, "starts", st, LM_MAX_RANK, e);
		ne = lm_ops_attr_list(g, n, "ends", en, LM_MAX_RANK, e);
		na = lm_ops_attr_list(g, n, "axes", ax, LM_MAX_RANK, e);
	} else {
		ns = lm_ops_const_ints(g, n, 1, "starts", st, LM_MAX_RANK, e);
		if (ns < 0)
			return ns;
		ne = lm_ops_const_ints(g, n, 2, "ends", en, LM_MAX_RANK, e);
		if (ne < 0)
			return ne;
		if (lm_node_in(g, n, 3))
			na = lm_ops_const_ints(g, n, 3, "axes", ax,
					       LM_MAX_RANK, e);
		if (na < 0)
			return na;
		if (lm_node_in(g, n, 4))
			nsp = lm_ops_const_ints(g, n, 4, "steps", sp,
						LM_MAX_RANK, e);
	}
	if (ns < 0 || ne < 0 || na < 0 || nsp < 0)
		return ns < 0 ? ns : ne < 0 ? ne : na < 0 ? na : nsp;
	if (ns != ne || (na && na != ns) || (nsp && nsp != ns))
		return lm_ops_fail(e, g, n, -EINVAL, "starts, ends, axes and "
				   "steps have %d, %d, %d and %d values", ns,
				   ne, na, nsp);

	for (int d = 0; d < x->rank; d++) {
		p->start[d] = 0;
		p->step[d] = 1;
		p->dims[d] = x->dims[d];
	}
	for (int i = 0; i < ns; i++) {
		int a, rc;
		if ((rc = lm_ops_axis(g, n, na ? ax[i] : i, x->rank, "axis",
				      &a, e)))
			return rc;
		if (seen[a])
			return lm_ops_fail(e, g, n, -EINVAL, "axis %d is "
					   "sliced twice", a);
		seen[a] = 1;
		int64_t step = nsp ? sp[i] : 1, d = x->dims[a];
		int64_t s = st[i], t = en[i], size;
		if (step == 0)
			return lm_ops_fail(e, g, n, -EINVAL, "step on axis %d "
					   "is 0", a);
		/* Negative positions count from the end; then clamp, to
		 * [0, d] going forward and [-1, d-1] going backward
		 * (INT64_MAX and INT64_MIN ends mean "to the end"). */
		if (s < 0)
			s += d;
		if (t < 0)
			t += d;
		if (step > 0) {
			s = clamp(s, 0, d);
			t = clamp(t, 0, d);
			size = t > s ? (t - s - 1) / step + 1 : 0;
		} else {
			int64_t back = step == INT64_MIN ? INT64_MAX : -step;
			s = clamp(s, 0, d - 1);
			t = clamp(t, -1, d - 1);
			size = d > 0 && s > t ? (s - t - 1) / back + 1 : 0;
		}
		p->start[a] = s;
		p->step[a] = step;
		p->dims[a] = size;
	}
	return 0;
}

static int slice_infer(lm_graph *g, lm_node *n, lm_error *e)
{
	lm_value *x;
	struct slice_plan p;
	int rc;

	if ((rc = lm_ops_arity(g, n, lm_ops_opset(g) < 10 ? 1 : 3,
			       lm_ops_opset(g) < 10 ? 1 : 5, 1, 1, e)) ||
	    (rc = lm_ops_in(g, n, 0, &x, e)) ||
	    (rc = slice_plan(g, n, x, &p, e)))
		return rc;
	return lm_ops_out(g, n, 0, x->dtype, x->rank, p.dims, e);
}

static int slice_fold(lm_graph *g, lm_node *n, lm_error *e)
{
	lm_value *x = lm_node_in(g, n, 0), *y = lm_node_out(g, n, 0);
	struct slice_plan p;
	int64_t ist[LM_MAX_RANK];

	if (!x || !y || slice_plan(g, n, x, &p, e))
		return -EINVAL;
	size_t es = lm_dtype_size(x->dtype);
	int64_t cnt = lm_ops_numel(x->rank, p.dims);
	const char *px = lm_ops_fold_in(g, n, 0, e);
	if (!px || es == 0 || cnt < 0)
		return -EINVAL;
	char *py = lm_ops_fold_out(g, n, 0, e);
	if (!py)
		return -ENOMEM;
	strides_of(x->rank, x->dims, ist);
	for (int64_t i = 0; i < cnt; i++) {
		int64_t rem = i, off = 0;
		for (int d = x->rank - 1; d >= 0; d--) {
			int64_t c = rem % p.dims[d];
			rem /= p.dims[d];
			off += (p.start[d] + c * p.step[d]) * ist[d];
		}
		memcpy(py + (size_t)i * es, px + (size_t)off * es, es);
	}
	return 0;
}

/* ---- Flatten, Reshape ---- */

static int flatten_infer(lm_graph *g, lm_node *n, lm_error *e)
{
	lm_value *x;
	int64_t dims[2];
	int rc;

	if ((rc = lm_ops_arity(g, n, 1, 1, 1, 1, e)) ||
	    (rc = lm_ops_in(g, n, 0, &x, e)))
		return rc;
	/* Unlike most axes, Flatten's may equal the rank: [-r, r]. */
	int64_t axis = lm_attr_int(n, "axis", 1);
	if (axis < -(int64_t)x->rank || axis > x->rank)
		return lm_ops_fail(e, g, n, -EINVAL, "axis %lld is out of "
				   "range for rank %d", (long long)axis,
				   x->rank);
	if (axis < 0)
		axis += x->rank;
	dims[0] = lm_ops_numel((int)axis, x->dims);
	dims[1] = lm_ops_numel(x->rank - (int)axis, x->dims + axis);
	return lm_ops_out(g, n, 0, x->dtype, 2, dims, e);
}

static int reshape_infer(lm_graph *g, lm_node *n, lm_error *e)
{
	lm_value *x;
	int64_t shape[LM_MAX_RANK], known = 1;
	int rc, infer_at = -1, has_zero = 0;
	char xs[128];

	if ((rc = lm_ops_arity(g, n, 2, 2, 1, 1, e)) ||
	    (rc = lm_ops_in(g, n, 0, &x, e)))
		return rc;
	int r = lm_ops_const_ints(g, n, 1, "shape", shape, LM_MAX_RANK, e);
	if (r < 0)
		return r;
	int allowzero = lm_attr_int(n, "allowzero", 0) != 0;
	int64_t total = lm_ops_numel(x->rank, x->dims);
	lm_shape_str(x->rank, x->dims, xs, sizeof(xs));

	for (int i = 0; i < r; i++) {
		if (shape[i] == 0 && !allowzero) {
			/* 0 copies the input's dim at the same position. */
			if (i >= x->rank)
				return lm_ops_fail(e, g, n, -EINVAL, "shape "
						   "entry %d is 0 but input "
						   "'%s' (%s) has no axis %d",
						   i, x->name, xs, i);
			shape[i] = x->dims[i];
		} else if (shape[i] == -1) {
			if (infer_at >= 0)
				return lm_ops_fail(e, g, n, -EINVAL, "shape "
						   "has more than one -1");
			infer_at = i;
			continue;
		} else if (shape[i] < 0) {
			return lm_ops_fail(e, g, n, -EINVAL, "shape entry %d "
					   "is %lld", i, (long long)shape[i]);
		}
		if (shape[i] == 0)
			has_zero = 1;
		if (ovf_mul(known, shape[i], &known))
			return lm_ops_fail(e, g, n, -EOVERFLOW, "shape "
					   "overflows");
	}
	if (infer_at >= 0) {
		if (allowzero && has_zero)
			return lm_ops_fail(e, g, n, -EINVAL, "shape has both "
					   "-1 and 0 with allowzero set");
		if (known == 0 || total % known != 0)
			return lm_ops_fail(e, g, n, -EINVAL, "cannot reshape "
					   "'%s' (%s, %lld elements) with a "
					   "-1 dim into blocks of %lld",
					   x->name, xs, (long long)total,
					   (long long)known);
		shape[infer_at] = total / known;
	} else if (known != total) {
		char ys[128];
		return lm_ops_fail(e, g, n, -EINVAL, "cannot reshape '%s' (%s, "
				   "%lld elements) to %s (%lld elements)",
				   x->name, xs, (long long)total,
				   lm_shape_str(r, shape, ys, sizeof(ys)),
				   (long long)known);
	}
	return lm_ops_out(g, n, 0, x->dtype, r, shape, e);
}

/* ---- Transpose ---- */

static int transpose_perm(lm_graph *g, lm_node *n, int rank, int *perm,
			  lm_error *e)
{
	int64_t p[LM_MAX_RANK];
	uint8_t seen[LM_MAX_RANK] = { 0 };
	int np = lm_ops_attr_list(g, n, "perm", p, LM_MAX_RANK, e);

	if (np < 0)
		return np;
	if (np == 0) {
		/* The default reverses the dims. */
		for (int i = 0; i < rank; i++)
			perm[i] = rank - 1 - i;
		return 0;
	}
	if (np != rank)
		return lm_ops_fail(e, g, n, -EINVAL, "perm has %d values for "
				   "rank %d", np, rank);
	for (int i = 0; i < rank; i++) {
		if (p[i] < 0 || p[i] >= rank || seen[p[i]])
			return lm_ops_fail(e, g, n, -EINVAL, "perm is not a "
					   "permutation of 0..%d", rank - 1);
		seen[p[i]] = 1;
		perm[i] = (int)p[i];
	}
	return 0;
}

static int transpose_infer(lm_graph *g, lm_node *n, lm_error *e)
{
	lm_value *x;
	int64_t dims[LM_MAX_RANK];
	int perm[LM_MAX_RANK], rc;

	if ((rc = lm_ops_arity(g, n, 1, 1, 1, 1, e)) ||
	    (rc = lm_ops_in(g, n, 0, &x, e)) ||
	    (rc = transpose_perm(g, n, x->rank, perm, e)))
		return rc;
	for (int i = 0; i < x->rank; i++)
		dims[i] = x->dims[perm[i]];
	return lm_ops_out(g, n, 0, x->dtype, x->rank, dims, e);
}

static int transpose_fold(lm_graph *g, lm_node *n, lm_error *e)
{
	lm_value *x = lm_node_in(g, n, 0), *y = lm_node_out(g, n, 0);
	int64_t ist[LM_MAX_RANK], dims[LM_MAX_RANK];
	int perm[LM_MAX_RANK];

	if (!x || !y || transpose_perm(g, n, x->rank, perm, e))
		return -EINVAL;
	size_t es = lm_dtype_size(x->dtype);
	int64_t cnt = lm_ops_numel(x->rank, x->dims);
	const char *px = lm_ops_fold_in(g, n, 0, e);
	if (!px || es == 0 || cnt < 0)
		return -EINVAL;
	char *py = lm_ops_fold_out(g, n, 0, e);
	if (!py)
		return -ENOMEM;
	strides_of(x->rank, x->dims, ist);
	for (int d = 0; d < x->rank; d++)
		dims[d] = x->dims[perm[d]];
	/* Output axis d walks input axis perm[d]. */
	for (int64_t i = 0; i < cnt; i++) {
		int64_t rem = i, off = 0;
		for (int d = x->rank - 1; d >= 0; d--) {
			off += (rem % dims[d]) * ist[perm[d]];
			rem /= dims[d];
		}
		memcpy(py + (size_t)i * es, px + (size_t)off * es, es);
	}
	return 0;
}

/* ---- Expand, Tile ---- */

static int expand_infer(lm_graph *g, lm_node *n, lm_error *e)
{
	lm_value *x;
	int64_t shape[LM_MAX_RANK], dims[LM_MAX_RANK];
	int rc, r;

	if ((rc = lm_ops_arity(g, n, 2, 2, 1, 1, e)) ||
	    (rc = lm_ops_in(g, n, 0, &x, e)))
		return rc;
	int ns = lm_ops_const_ints(g, n, 1, "shape", shape, LM_MAX_RANK, e);
	if (ns < 0)
		return ns;
	for (int i = 0; i < ns; i++)
		if (shape[i] < 0)
			return lm_ops_fail(e, g, n, -EINVAL, "shape entry %d "
					   "is %lld", i, (long long)shape[i]);
	/* Broadcast both ways: a 1 in shape keeps the input's dim. */
	if ((rc = lm_ops_broadcast(g, n, x->rank, x->dims, ns, shape, &r,
				   dims, e)))
		return rc;
	return lm_ops_out(g, n, 0, x->dtype, r, dims, e);
}

static int expand_fold(lm_graph *g, lm_node *n, lm_error *e)
{
	lm_value *x = lm_node_in(g, n, 0), *y = lm_node_out(g, n, 0);

	if (!x || !y)
		return -EINVAL;
	size_t es = lm_dtype_size(y->dtype);
	int64_t cnt = lm_ops_numel(y->rank, y->dims);
	const char *px = lm_ops_fold_in(g, n, 0, e);
	if (!px || es == 0 || cnt < 0)
		return -EINVAL;
	char *py = lm_ops_fold_out(g, n, 0, e);
	if (!py)
		return -ENOMEM;
	for (int64_t i = 0; i < cnt; i++) {
		int64_t s = lm_ops_bcast_src(y->rank, y->dims, x->rank,
					     x->dims, i);
		memcpy(py + (size_t)i * es, px + (size_t)s * es, es);
	}
	return 0;
}

static int tile_infer(lm_graph *g, lm_node *n, lm_error *e)
{
	lm_value *x;
	int64_t rep[LM_MAX_RANK], dims[LM_MAX_RANK];
	int rc;

	if ((rc = lm_ops_arity(g, n, 2, 2, 1, 1, e)) ||
	    (rc = lm_ops_in(g, n, 0, &x, e)))
		return rc;
	int nr = lm_ops_const_ints(g, n, 1, "repeats", rep, LM_MAX_RANK, e);
	if (nr < 0)
		return nr;
	if (nr != x->rank)
		return lm_ops_fail(e, g, n, -EINVAL, "repeats has %d values "
				   "for rank %d", nr, x->rank);
	for (int i = 0; i < nr; i++)
		if (rep[i] < 0 || ovf_mul(x->dims[i], rep[i], &dims[i]))
			return lm_ops_fail(e, g, n, -EINVAL, "repeat %lld on "
					   "axis %d is not valid",
					   (long long)rep[i], i);
	return lm_ops_out(g, n, 0, x->dtype, x->rank, dims, e);
}

/* ---- ConstantOfShape, Range, Constant ---- */

/* ConstantOfShape's fill value: a one-element tensor attribute, float 0
 * when absent. */
static int fill_value(lm_graph *g, lm_node *n, const lm_tensor **t,
		      lm_error *e)
{
	const lm_attr *a = lm_node_attr(n, "value");

	*t = NULL;
	if (!a)
		return 0;
	if (a->type != LM_ATTR_TENSOR || !a->t)
		return lm_ops_fail(e, g, n, -EINVAL, "attribute 'value' is not "
				   "a tensor");
	size_t es = lm_dtype_size(a->t->dtype);
	if (a->t->rank < 0 || a->t->rank > LM_MAX_RANK ||
	    lm_ops_numel(a->t->rank, a->t->dims) != 1 || es == 0 ||
	    a->t->nbytes < es || !a->t->data)
		return lm_ops_fail(e, g, n, -EINVAL, "attribute 'value' must "
				   "hold one element of a fixed-size type");
	*t = a->t;
	return 0;
}

static int const_of_shape_infer(lm_graph *g, lm_node *n, lm_error *e)
{
	int64_t shape[LM_MAX_RANK];
	const lm_tensor *t;
	int rc;

	if ((rc = lm_ops_arity(g, n, 1, 1, 1, 1, e)) ||
	    (rc = fill_value(g, n, &t, e)))
		return rc;
	int r = lm_ops_const_ints(g, n, 0, "shape", shape, LM_MAX_RANK, e);
	if (r < 0)
		return r;
	return lm_ops_out(g, n, 0, t ? t->dtype : LM_DT_FLOAT, r, shape, e);
}

static int const_of_shape_fold(lm_graph *g, lm_node *n, lm_error *e)
{
	lm_value *y = lm_node_out(g, n, 0);
	const lm_tensor *t;

	if (!y || fill_value(g, n, &t, e))
		return -EINVAL;
	int64_t cnt = lm_ops_numel(y->rank, y->dims);
	char *py = lm_ops_fold_out(g, n, 0, e);
	if (!py || cnt < 0)
		return -ENOMEM;
	if (!t)
		return 0; /* float zeros: the buffer is already cleared */
	size_t es = lm_dtype_size(t->dtype);
	for (int64_t i = 0; i < cnt; i++)
		memcpy(py + (size_t)i * es, t->data, es);
	return 0;
}

/* Range's start, limit and delta: scalars of one numeric type. */
struct range_args {
	lm_dtype dt;
	double f[3];
	int64_t i[3];
};

static int range_args(lm_graph *g, lm_node *n, struct range_args *r,
		      lm_error *e)
{
	static const char *const what[3] = { "start", "limit", "delta" };

	for (int k = 0; k < 3; k++) {
		lm_value *v;
		int rc = lm_ops_in(g, n, k, &v, e);
		if (rc)
			return rc;
		if (!lm_value_is_const(v))
			return lm_ops_fail(e, g, n, -ENODATA, "%s input '%s' "
					   "is not a constant", what[k],
					   v->name);
		if (lm_ops_numel(v->rank, v->dims) != 1)
			return lm_ops_fail(e, g, n, -EINVAL, "%s input '%s' "
					   "is not a scalar", what[k],
					   v->name);
		if (k == 0)
			r->dt = v->dtype;
		else if ((rc = lm_ops_same_type(g, n, lm_node_in(g, n, 0), v,
						e)))
			return rc;
		if (!lm_ops_numeric(v->dtype) || v->dtype == LM_DT_BOOL ||
		    v->dtype == LM_DT_UINT64)
			return lm_ops_fail(e, g, n, -EINVAL, "%s input '%s' "
					   "has unsupported type %s", what[k],
					   v->name, lm_dtype_name(v->dtype));
		const void *d = lm_ops_fold_in(g, n, k, e);
		if (!d)
			return -ENODATA;
		r->f[k] = lm_ops_get_f(d, v->dtype, 0);
		r->i[k] = lm_ops_get_i(d, v->dtype, 0);
	}
	return 0;
}

/* max(ceil((limit - start) / delta), 0) elements. */
static int range_count(lm_graph *g, lm_node *n, const struct range_args *r,
		       int64_t *count, lm_error *e)
{
	if (lm_ops_is_float(r->dt)) {
		double c = ceil((r->f[1] - r->f[0]) / r->f[2]);
		if (r->f[2] == 0 || !isfinite(c) || c > 4.6e18)
			return lm_ops_fail(e, g, n, -EINVAL, "start %g, limit "
					   "%g, delta %g give no finite "
					   "length", r->f[0], r->f[1], r->f[2]);
		*count = c > 0 ? (int64_t)c : 0;
		return 0;
	}
	int64_t diff, delta = r->i[2];
	if (delta == 0)
		return lm_ops_fail(e, g, n, -EINVAL, "delta is 0");
	if (ovf_sub(r->i[1], r->i[0], &diff) || diff == INT64_MIN)
		return lm_ops_fail(e, g, n, -EOVERFLOW, "limit - start "
				   "overflows");
	if ((diff > 0) != (delta > 0) || diff == 0) {
		*count = 0;
		return 0;
	}
	if (delta < 0) {
		diff = -diff;
		delta = delta == INT64_MIN ? INT64_MAX : -delta;
	}
	*count = diff / delta + (diff % delta != 0);
	return 0;
}

static int range_infer(lm_graph *g, lm_node *n, lm_error *e)
{
	struct range_args r;
	int64_t count;
	int rc;

	if ((rc = lm_ops_arity(g, n, 3, 3, 1, 1, e)) ||
	    (rc = range_args(g, n, &r, e)) ||
	    (rc = range_count(g, n, &r, &count, e)))
		return rc;
	return lm_ops_out(g, n, 0, r.dt, 1, &count, e);
}

static int range_fold(lm_graph *g, lm_node *n, lm_error *e)
{
	struct range_args r;
	int64_t count;
	lm_value *y = lm_node_out(g, n, 0);

	if (!y || range_args(g, n, &r, e) || range_count(g, n, &r, &count, e))
		return -EINVAL;
	if (y->rank != 1 || y->dims[0] != count)
		return -EINVAL;
	void *py = lm_ops_fold_out(g, n, 0, e);
	if (!py)
		return -ENOMEM;
	/* output[i] = start + i * delta, as the spec defines it. */
	for (int64_t i = 0; i < count; i++) {
		if (lm_ops_is_float(r.dt))
			lm_ops_put_f(py, r.dt, i, r.f[0] + (double)i * r.f[2]);
		else
			lm_ops_put_i(py, r.dt, i,
				     (int64_t)((uint64_t)r.i[0] +
					       (uint64_t)i * (uint64_t)r.i[2]));
	}
	return 0;
}

/* Constant: exactly one of value (a tensor), value_float(s), value_int(s).
 * Sparse and string values are not supported. */
static const lm_attr *constant_attr(lm_graph *g, lm_node *n, lm_error *e)
{
	static const char *const names[] = {
		"value", "value_float", "value_floats", "value_int",
		"value_ints", "value_string", "value_strings", "sparse_value",
	};
	const lm_attr *found = NULL;

	for (int i = 0; i < ARRAY_SIZE(names); i++) {
		const lm_attr *a = lm_node_attr(n, names[i]);
		if (!a)
			continue;
		if (found) {
			lm_ops_fail(e, g, n, -EINVAL, "has both '%s' and '%s'",
				    found->name, a->name);
			return NULL;
		}
		found = a;
	}
	if (!found) {
		lm_ops_fail(e, g, n, -EINVAL, "has no value attribute");
		return NULL;
	}
	if (found->type == LM_ATTR_TENSOR && found->t) {
		const lm_tensor *t = found->t;
		int64_t cnt = lm_ops_numel(t->rank, t->dims);
		size_t es = lm_dtype_size(t->dtype);
		if (cnt < 0 || es == 0 || t->nbytes < (size_t)cnt * es ||
		    (cnt > 0 && !t->data)) {
			lm_ops_fail(e, g, n, -EINVAL, "value tensor has an "
				    "unsupported type, a bad shape or too "
				    "little data");
			return NULL;
		}
		return found;
	}
	int empty = found->n == 0;
	if ((found->type == LM_ATTR_FLOAT &&
	     !strcmp(found->name, "value_float")) ||
	    (found->type == LM_ATTR_INT &&
	     !strcmp(found->name, "value_int")) ||
	    (found->type == LM_ATTR_FLOATS && (empty || found->floats)) ||
	    (found->type == LM_ATTR_INTS && (empty || found->ints)))
		return found;
	lm_ops_fail(e, g, n, -ENOTSUP, "attribute '%s' is not supported",
		    found->name);
	return NULL;
}

static int constant_infer(lm_graph *g, lm_node *n, lm_error *e)
{
	int rc;
	int64_t len;

	if ((rc = lm_ops_arity(g, n, 0, 0, 1, 1, e)))
		return rc;
	const lm_attr *a = constant_attr(g, n, e);
	if (!a)
		return -EINVAL;
	switch (a->type) {
	case LM_ATTR_TENSOR:
		return lm_ops_out(g, n, 0, a->t->dtype, a->t->rank, a->t->dims,
				  e);
	case LM_ATTR_FLOAT:
		return lm_ops_out(g, n, 0, LM_DT_FLOAT, 0, NULL, e);
	case LM_ATTR_INT:
		return lm_ops_out(g, n, 0, LM_DT_INT64, 0, NULL, e);
	case LM_ATTR_FLOATS:
		len = a->n;
		return lm_ops_out(g, n, 0, LM_DT_FLOAT, 1, &len, e);
	default:
		len = a->n;
		return lm_ops_out(g, n, 0, LM_DT_INT64, 1, &len, e);
	}
}

static int constant_fold(lm_graph *g, lm_node *n, lm_error *e)
{
	const lm_attr *a = constant_attr(g, n, e);
	lm_value *y = lm_node_out(g, n, 0);

	if (!a || !y)
		return -EINVAL;
	size_t bytes = lm_value_bytes(y);
	const void *src;
	switch (a->type) {
	case LM_ATTR_TENSOR: src = a->t->data; break;
	case LM_ATTR_FLOAT: src = &a->f; break;
	case LM_ATTR_INT: src = &a->i; break;
	case LM_ATTR_FLOATS: src = a->floats; break;
	default: src = a->ints; break;
	}
	void *py = lm_ops_fold_out(g, n, 0, e);
	if (!py)
		return -ENOMEM;
	if (bytes)
		memcpy(py, src, bytes);
	return 0;
}

/* ---- Pad ---- */

/* pads: an attribute before opset 11, an input from then on; from 18 an
 * optional axes input says which axes the pads apply to. */
static int pad_infer(lm_graph *g, lm_node *n, lm_error *e)
{
	lm_value *x;
	int64_t pads[2 * LM_MAX_RANK], axes[LM_MAX_RANK], dims[LM_MAX_RANK];
	uint8_t seen[LM_MAX_RANK] = { 0 };
	int np, na = 0, rc;
	int64_t opset = lm_ops_opset(g);

	if ((rc = lm_ops_arity(g, n, opset < 11 ? 1 : 2, opset < 11 ? 1 : 4,
			       1, 1, e)) ||
	    (rc = lm_ops_in(g, n, 0, &x, e)))
		return rc;
	if (opset < 11) {
		np = lm_ops_attr_list(g, n, "pads", pads, 2 * LM_MAX_RANK, e);
	} else {
		np = lm_ops_const_ints(g, n, 1, "pads", pads,
				       2 * LM_MAX_RANK, e);
		if (np >= 0 && lm_node_in(g, n, 3))
			na = lm_ops_const_ints(g, n, 3, "axes", axes,
					       LM_MAX_RANK, e);
	}
	if (np < 0 || na < 0)
		return np < 0 ? np : na;
	if (!na) {
		na = x->rank;
		for (int i = 0; i < na; i++)
			axes[i] = i;
	}
	if (np != 2 * na)
		return lm_ops_fail(e, g, n, -EINVAL, "pads has %d values, "
				   "expected %d", np, 2 * na);
	memcpy(dims, x->dims, (size_t)x->rank * sizeof(int64_t));
	for (int i = 0; i < na; i++) {
		int a;
		if ((rc = lm_ops_axis(g, n, axes[i], x->rank, "axis", &a, e)))
			return rc;
		if (seen[a])
			return lm_ops_fail(e, g, n, -EINVAL, "axis %d is "
					   "padded twice", a);
		seen[a] = 1;
		/* Negative pads crop; the result must not go below 0. */
		if (ovf_add(dims[a], pads[i], &dims[a]) ||
		    ovf_add(dims[a], pads[i + na], &dims[a]) || dims[a] < 0)
			return lm_ops_fail(e, g, n, -EINVAL, "pads %lld+%lld "
					   "on axis %d of size %lld are not "
					   "valid", (long long)pads[i],
					   (long long)pads[i + na], a,
					   (long long)x->dims[a]);
	}
	return lm_ops_out(g, n, 0, x->dtype, x->rank, dims, e);
}

/* ---- Resize ---- */

static int resize_infer(lm_graph *g, lm_node *n, lm_error *e)
{
	lm_value *x, *sv, *zv = NULL;
	int64_t axes[LM_MAX_RANK], sizes[LM_MAX_RANK], dims[LM_MAX_RANK];
	double scales[LM_MAX_RANK];
	uint8_t seen[LM_MAX_RANK] = { 0 };
	int rc, na;
	int64_t opset = lm_ops_opset(g);
	/* Opset 10 is (X, scales); 11 on is (X, roi, scales, sizes). */
	int si = opset < 11 ? 1 : 2;

	if ((rc = lm_ops_arity(g, n, opset < 11 ? 2 : 1, opset < 11 ? 2 : 4,
			       1, 1, e)) ||
	    (rc = lm_ops_in(g, n, 0, &x, e)) ||
	    (rc = lm_ops_opt(g, n, si, &sv, e)) ||
	    (opset >= 11 && (rc = lm_ops_opt(g, n, 3, &zv, e))))
		return rc;
	if ((na = lm_ops_attr_list(g, n, "axes", axes, LM_MAX_RANK, e)) < 0)
		return na;
	if (!na) {
		na = x->rank;
		for (int i = 0; i < na; i++)
			axes[i] = i;
	}
	int ax[LM_MAX_RANK];
	for (int i = 0; i < na; i++) {
		if ((rc = lm_ops_axis(g, n, axes[i], x->rank, "axis", &ax[i],
				      e)))
			return rc;
		if (seen[ax[i]])
			return lm_ops_fail(e, g, n, -EINVAL, "axis %d is "
					   "listed twice", ax[i]);
		seen[ax[i]] = 1;
	}
	/* An empty tensor stands for an absent input. */
	int use_scales = sv && lm_ops_numel(sv->rank, sv->dims) > 0;
	int use_sizes = zv && lm_ops_numel(zv->rank, zv->dims) > 0;
	if (use_scales == use_sizes)
		return lm_ops_fail(e, g, n, -EINVAL, "exactly one of scales "
				   "and sizes must be given");
	int cnt = use_sizes
		? lm_ops_const_ints(g, n, 3, "sizes", sizes, LM_MAX_RANK, e)
		: lm_ops_const_floats(g, n, si, "scales", scales, LM_MAX_RANK,
				      e);
	if (cnt < 0)
		return cnt;
	if (cnt != na)
		return lm_ops_fail(e, g, n, -EINVAL, "%s has %d values for %d "
				   "axes", use_sizes ? "sizes" : "scales", cnt,
				   na);

	memcpy(dims, x->dims, (size_t)x->rank * sizeof(int64_t));
	if (use_sizes) {
		const char *pol = lm_attr_str(n, "keep_aspect_ratio_policy",
					      "stretch");
		int larger = strcmp(pol, "not_smaller") == 0;
		if (!larger && strcmp(pol, "not_larger") != 0 &&
		    strcmp(pol, "stretch") != 0)
			return lm_ops_fail(e, g, n, -EINVAL, "unknown "
					   "keep_aspect_ratio_policy '%s'",
					   pol);
		if (strcmp(pol, "stretch") == 0) {
			for (int i = 0; i < na; i++)
				dims[ax[i]] = sizes[i];
			return lm_ops_out(g, n, 0, x->dtype, x->rank, dims, e);
		}
		/* One scale for all axes, the smallest (not_larger) or the
		 * largest (not_smaller) of sizes / input. */
		double s = larger ? 0 : INFINITY;
		for (int i = 0; i < na; i++) {
			if (x->dims[ax[i]] == 0 || sizes[i] < 0)
				return lm_ops_fail(e, g, n, -EINVAL, "cannot "
						   "keep the aspect ratio of "
						   "an empty axis");
			double r = (double)sizes[i] / (double)x->dims[ax[i]];
			s = larger ? fmax(s, r) : fmin(s, r);
		}
		for (int i = 0; i < na; i++) {
			double v = floor(s * (double)x->dims[ax[i]] + 0.5);
			if (v > 4.6e18)
				return lm_ops_fail(e, g, n, -EOVERFLOW,
						   "output size overflows");
			dims[ax[i]] = (int64_t)v;
		}
		return lm_ops_out(g, n, 0, x->dtype, x->rank, dims, e);
	}
	/* floor(in * scale); roi only matters for tf_crop_and_resize's
	 * sampling, not for the output size. */
	for (int i = 0; i < na; i++) {
		double v = floor((double)x->dims[ax[i]] * scales[i]);
		if (!(scales[i] > 0) || !isfinite(v) || v > 4.6e18)
			return lm_ops_fail(e, g, n, -EINVAL, "scale %g on axis "
					   "%d is not valid", scales[i], ax[i]);
		dims[ax[i]] = (int64_t)v;
	}
	return lm_ops_out(g, n, 0, x->dtype, x->rank, dims, e);
}

/* Nearest: one index computation per output element.  Linear and cubic
 * blend 2 or 4 neighbours along each resized axis, a multiply-add each. */
static double resize_flops(lm_graph *g, const lm_node *n)
{
	lm_value *x = lm_node_in(g, n, 0), *y = lm_node_out(g, n, 0);
	const char *mode = lm_attr_str(n, "mode", "nearest");
	double out = lm_ops_out_elems(g, n, 0), taps = 1;
	int per_axis = !strcmp(mode, "cubic") ? 4 : !strcmp(mode, "linear")
							  ? 2 : 0;

	if (!x || !y || x->rank != y->rank || per_axis == 0)
		return out;
	for (int i = 0; i < x->rank && i < LM_MAX_RANK; i++)
		if (x->dims[i] != y->dims[i])
			taps *= per_axis;
	return 2 * taps * out;
}

#define RS LM_OP_RESHAPE
#define CO LM_OP_COMPUTE

static const lm_op ops[] = {
	{ "Shape", 0, shape_infer, shape_fold, NULL },
	{ "Size", 0, size_infer, size_fold, NULL },
	{ "Gather", CO, gather_infer, gather_fold, NULL },
	{ "Unsqueeze", RS, unsqueeze_infer, lm_ops_fold_copy, NULL },
	{ "Squeeze", RS, squeeze_infer, lm_ops_fold_copy, NULL },
	{ "Concat", CO, concat_infer, concat_fold, NULL },
	{ "Split", CO, split_infer, NULL, NULL },
	{ "Slice", 0, slice_infer, slice_fold, NULL },
	{ "Flatten", RS, flatten_infer, lm_ops_fold_copy, NULL },
	{ "Reshape", RS, reshape_infer, lm_ops_fold_copy, NULL },
	{ "Transpose", 0, transpose_infer, transpose_fold, NULL },
	{ "Expand", 0, expand_infer, expand_fold, NULL },
	{ "ConstantOfShape", 0, const_of_shape_infer, const_of_shape_fold,
	  NULL },
	{ "Range", 0, range_infer, range_fold, NULL },
	{ "Pad", CO, pad_infer, NULL, NULL },
	{ "Resize", CO, resize_infer, NULL, resize_flops },
	{ "Constant", 0, constant_infer, constant_fold, NULL },
	{ "Tile", 0, tile_infer, NULL, NULL },
};

const struct lm_ops_family lm_ops_shape = { ops, ARRAY_SIZE(ops) };
