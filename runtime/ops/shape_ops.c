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
#include "kernel.h"
#include "../kernels/act.h"

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

/*
 * Pads per axis of x into begin and end (0 for axes not listed): an
 * attribute before opset 11, an input from then on; from 18 an optional
 * axes input says which axes the pads apply to.  Negative pads crop; the
 * result may not go below 0.
 */
static int pad_amounts(lm_graph *g, lm_node *n, const lm_value *x,
		       int64_t *begin, int64_t *end, lm_error *e)
{
	int64_t pads[2 * LM_MAX_RANK], axes[LM_MAX_RANK], d;
	uint8_t seen[LM_MAX_RANK] = { 0 };
	int np, na = 0, rc;

	if (lm_ops_opset(g) < 11) {
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
	for (int i = 0; i < x->rank; i++)
		begin[i] = end[i] = 0;
	for (int i = 0; i < na; i++) {
		int a;
		if ((rc = lm_ops_axis(g, n, axes[i], x->rank, "axis", &a, e)))
			return rc;
		if (seen[a])
			return lm_ops_fail(e, g, n, -EINVAL, "axis %d is "
					   "padded twice", a);
		seen[a] = 1;
		if (ovf_add(x->dims[a], pads[i], &d) ||
		    ovf_add(d, pads[i + na], &d) || d < 0)
			return lm_ops_fail(e, g, n, -EINVAL, "pads %lld+%lld "
					   "on axis %d of size %lld are not "
					   "valid", (long long)pads[i],
					   (long long)pads[i + na], a,
					   (long long)x->dims[a]);
		begin[a] = pads[i];
		end[a] = pads[i + na];
	}
	return 0;
}

static int pad_infer(lm_graph *g, lm_node *n, lm_error *e)
{
	lm_value *x;
	int64_t begin[LM_MAX_RANK], end[LM_MAX_RANK], dims[LM_MAX_RANK];
	int rc;
	int64_t opset = lm_ops_opset(g);

	if ((rc = lm_ops_arity(g, n, opset < 11 ? 1 : 2, opset < 11 ? 1 : 4,
			       1, 1, e)) ||
	    (rc = lm_ops_in(g, n, 0, &x, e)) ||
	    (rc = pad_amounts(g, n, x, begin, end, e)))
		return rc;
	for (int i = 0; i < x->rank; i++)
		dims[i] = x->dims[i] + begin[i] + end[i];
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

/* ---- execution ---- */

/*
 * These kernels move bytes and never look at them, so one implementation
 * serves every fixed-size element type.  Prepare turns each op into one
 * of three plans, fixed for the node's shapes:
 *  - a strided copy (Slice, Transpose, Expand): the output, contiguous,
 *    reads the input at a stride per axis (negative for a backward
 *    slice, 0 for a broadcast axis);
 *  - an index map (Pad, Tile, Resize nearest): per output axis, the input
 *    index each output index reads, or -1 for a padding value;
 *  - block copies (Concat, Split, Gather).
 * Reshape, Flatten, Squeeze and Unsqueeze are aliases the executor
 * resolves without running anything.
 */

static int unsupported(lm_graph *g, const lm_node *n, const lm_value *v,
		       const char *supported, lm_error *e)
{
	return lm_ops_fail(e, g, n, -ENOTSUP, "input '%s' has element type %s, "
			   "which is not supported (only %s)", v->name,
			   lm_dtype_name(v->dtype), supported);
}

/* Input 0 with a known shape and a fixed-size element type. */
static int data_in(lm_graph *g, lm_node *n, lm_value **x, lm_error *e)
{
	int rc = lm_ops_in(g, n, 0, x, e);

	if (rc)
		return rc;
	if (lm_dtype_size((*x)->dtype) == 0)
		return unsupported(g, n, *x, "fixed-size types", e);
	if (!lm_node_out(g, n, 0))
		return lm_ops_fail(e, g, n, -EINVAL, "output 0 is missing");
	return 0;
}

/* The padding element of an index map is held in 16 bytes. */
static int es_too_big(const lm_value *x)
{
	return lm_dtype_size(x->dtype) > 16;
}

static int copy_run(const lm_kargs *a)
{
	if (a->out[0]->data != a->in[0]->data)
		memcpy(a->out[0]->data, a->in[0]->data, a->out[0]->nbytes);
	return 0;
}

/* Reshape, Flatten, Squeeze, Unsqueeze: the same bytes, another shape. */
static int alias_prepare(lm_graph *g, lm_node *n, lm_kernel *k, lm_error *e)
{
	lm_value *x;
	int rc = data_in(g, n, &x, e);

	if (rc)
		return rc;
	k->run = copy_run;
	k->alias = 1;
	k->impl = "alias";
	return 0;
}

/* Copy n elements of size es from src, es bytes each, `stride` elements
 * apart (0: the same one), to contiguous dst. */
#define GATHER_ROW(T)                                                   \
	do {                                                            \
		T *d = dst;                                             \
		const T *s = src;                                       \
		for (size_t i = 0; i < n; i++)                          \
			d[i] = s[(ptrdiff_t)i * stride];                \
	} while (0)

static void gather_row(void *dst, const void *src, ptrdiff_t stride,
		       size_t n, size_t es)
{
	if (stride == 1) {
		memcpy(dst, src, n * es);
		return;
	}
	switch (es) {
	case 1: GATHER_ROW(uint8_t); break;
	case 2: GATHER_ROW(uint16_t); break;
	case 4: GATHER_ROW(uint32_t); break;
	case 8: GATHER_ROW(uint64_t); break;
	default:
		for (size_t i = 0; i < n; i++)
			memcpy((char *)dst + i * es,
			       (const char *)src + (ptrdiff_t)i * stride *
			       (ptrdiff_t)es, es);
		break;
	}
}

/* -- strided copy -- */

struct strided {
	int rank;
	int64_t dims[LM_MAX_RANK];
	int64_t ss[LM_MAX_RANK];        /* source stride per output axis */
	int64_t soff;                   /* source offset of element 0 */
	size_t es;
	/* The last two axes read a contiguous source block transposed
	 * (NCHW <-> NHWC, 2-D transposes): copied in cache blocks. */
	int transpose2d;
};

/*
 * Axes of size 1 drop out and an axis merges into the one before when
 * their strides line up (so a contiguous source becomes one memcpy).
 */
static void strided_plan(struct strided *p, int rank, const int64_t *dims,
			 const int64_t *ss, int64_t soff, size_t es)
{
	int r = 0;

	memset(p, 0, sizeof(*p));
	for (int d = 0; d < rank; d++) {
		if (dims[d] == 1)
			continue;
		if (r > 0 && p->ss[r - 1] == ss[d] * dims[d]) {
			p->dims[r - 1] *= dims[d];
		} else {
			p->dims[r++] = dims[d];
		}
		p->ss[r - 1] = ss[d];
	}
	if (r == 0) {
		p->dims[r] = 1;
		p->ss[r++] = 1;
	}
	p->rank = r;
	p->soff = soff;
	p->es = es;
	p->transpose2d = r >= 2 && p->ss[r - 2] == 1 &&
			 p->ss[r - 1] == p->dims[r - 2];
}

/* Next row of an odometer over the first `rank` axes; returns the
 * source offset moved by `st`. */
static int64_t odo_next(int rank, const int64_t *dims, const int64_t *st,
			int64_t *idx, int64_t off)
{
	for (int d = rank - 1; d >= 0; d--) {
		off += st[d];
		if (++idx[d] < dims[d])
			return off;
		off -= st[d] * dims[d];
		idx[d] = 0;
	}
	return off;
}

/* dst (a x b) = transpose of src (b x a), in 32 x 32 tiles. */
#define TRANSPOSE(T)                                                    \
	do {                                                            \
		T *d = dst;                                             \
		const T *s = src;                                       \
		for (int64_t i0 = 0; i0 < a; i0 += 32) {                \
			int64_t i1 = i0 + 32 < a ? i0 + 32 : a;         \
			for (int64_t j0 = 0; j0 < b; j0 += 32) {        \
				int64_t j1 = j0 + 32 < b ? j0 + 32 : b; \
				for (int64_t i = i0; i < i1; i++)       \
					for (int64_t j = j0; j < j1; j++) \
						d[i * b + j] =          \
							s[j * a + i];   \
			}                                               \
		}                                                       \
	} while (0)

static void transpose_block(void *dst, const void *src, int64_t a,
			    int64_t b, size_t es)
{
	switch (es) {
	case 1: TRANSPOSE(uint8_t); break;
	case 2: TRANSPOSE(uint16_t); break;
	case 4: TRANSPOSE(uint32_t); break;
	case 8: TRANSPOSE(uint64_t); break;
	default:
		for (int64_t i = 0; i < a; i++)
			for (int64_t j = 0; j < b; j++)
				memcpy((char *)dst + (size_t)(i * b + j) * es,
				       (const char *)src +
				       (size_t)(j * a + i) * es, es);
		break;
	}
}

static void strided_run(const struct strided *p, char *dst, const char *src)
{
	int64_t idx[LM_MAX_RANK] = { 0 }, off = p->soff;
	int outer = p->rank - (p->transpose2d ? 2 : 1);
	int64_t count = 1, len = p->dims[p->rank - 1];
	size_t es = p->es;

	for (int d = 0; d < outer; d++)
		count *= p->dims[d];
	if (p->transpose2d)
		len *= p->dims[p->rank - 2];
	for (int64_t r = 0; r < count; r++) {
		if (p->transpose2d)
			transpose_block(dst, src + off * (int64_t)es,
					p->dims[p->rank - 2],
					p->dims[p->rank - 1], es);
		else
			gather_row(dst, src + off * (int64_t)es,
				   (ptrdiff_t)p->ss[p->rank - 1], (size_t)len,
				   es);
		dst += (size_t)len * es;
		off = odo_next(outer, p->dims, p->ss, idx, off);
	}
}

static int strided_kernel(const lm_kargs *a)
{
	strided_run(a->state, a->out[0]->data, a->in[0]->data);
	return 0;
}

static int strided_prepare(lm_graph *g, lm_node *n, lm_kernel *k, int rank,
			   const int64_t *dims, const int64_t *ss,
			   int64_t soff, size_t es, lm_error *e)
{
	struct strided *p = lm_kernel_new_state(g, n, k, sizeof(*p), e);

	if (!p)
		return -ENOMEM;
	strided_plan(p, rank, dims, ss, soff, es);
	k->run = strided_kernel;
	k->impl = p->transpose2d ? "transpose-2d"
		: p->ss[p->rank - 1] == 1 ? "copy-rows" : "copy-strided";
	return 0;
}

static int slice_prepare(lm_graph *g, lm_node *n, lm_kernel *k, lm_error *e)
{
	lm_value *x;
	struct slice_plan sp;
	int64_t ist[LM_MAX_RANK], ss[LM_MAX_RANK], soff = 0;
	int rc;

	if ((rc = data_in(g, n, &x, e)) ||
	    (rc = slice_plan(g, n, x, &sp, e)))
		return rc;
	strides_of(x->rank, x->dims, ist);
	for (int d = 0; d < x->rank; d++) {
		ss[d] = sp.step[d] * ist[d];
		soff += sp.start[d] * ist[d];
	}
	/* An empty slice may start past the end; nothing is read then. */
	if (lm_ops_numel(x->rank, sp.dims) == 0)
		soff = 0;
	return strided_prepare(g, n, k, x->rank, sp.dims, ss, soff,
			       lm_dtype_size(x->dtype), e);
}

static int transpose_prepare(lm_graph *g, lm_node *n, lm_kernel *k,
			     lm_error *e)
{
	lm_value *x;
	int64_t ist[LM_MAX_RANK], ss[LM_MAX_RANK], dims[LM_MAX_RANK];
	int perm[LM_MAX_RANK], rc;

	if ((rc = data_in(g, n, &x, e)) ||
	    (rc = transpose_perm(g, n, x->rank, perm, e)))
		return rc;
	strides_of(x->rank, x->dims, ist);
	for (int d = 0; d < x->rank; d++) {
		dims[d] = x->dims[perm[d]];
		ss[d] = ist[perm[d]];
	}
	return strided_prepare(g, n, k, x->rank, dims, ss, 0,
			       lm_dtype_size(x->dtype), e);
}

static int expand_prepare(lm_graph *g, lm_node *n, lm_kernel *k,
			  lm_error *e)
{
	lm_value *x, *y = lm_node_out(g, n, 0);
	int64_t ist[LM_MAX_RANK], ss[LM_MAX_RANK];
	int rc;

	if ((rc = data_in(g, n, &x, e)))
		return rc;
	strides_of(x->rank, x->dims, ist);
	for (int d = 0; d < y->rank; d++) {
		int id = d - (y->rank - x->rank);
		ss[d] = id < 0 || x->dims[id] == 1 ? 0 : ist[id];
	}
	return strided_prepare(g, n, k, y->rank, y->dims, ss, 0,
			       lm_dtype_size(x->dtype), e);
}

/* -- index maps -- */

/* A stretch of the last output axis reading consecutive input elements
 * from m (or padding, m = -1). */
struct seg {
	int64_t j, len, m;
};

struct mapped {
	int rank;
	int64_t dims[LM_MAX_RANK];      /* output */
	int64_t ist[LM_MAX_RANK];       /* input strides */
	int64_t *map[LM_MAX_RANK];      /* per output axis, into store */
	size_t es;
	unsigned char fill[16];         /* the padding element */
	int nseg;                       /* segments of the last axis, or 0 */
	struct seg *seg;
	int64_t store[];
};

static void fill_row(char *dst, const unsigned char *v, size_t n, size_t es)
{
	for (size_t i = 0; i < n; i++)
		memcpy(dst + i * es, v, es);
}

/* One output row element by element: d[j] = padding or s[m[j]]. */
#define MAP_ROW(T)                                                      \
	do {                                                            \
		T *d = (T *)dst, f;                                     \
		const T *s = (const T *)srow;                           \
		memcpy(&f, fill, sizeof(f));                            \
		for (int64_t j = 0; j < len; j++)                       \
			d[j] = m[j] < 0 ? f : s[m[j]];                  \
	} while (0)

static void map_row(char *dst, const char *srow, const int64_t *m,
		    int64_t len, const unsigned char *fill, size_t es)
{
	switch (es) {
	case 1: MAP_ROW(uint8_t); break;
	case 2: MAP_ROW(uint16_t); break;
	case 4: MAP_ROW(uint32_t); break;
	case 8: MAP_ROW(uint64_t); break;
	default:
		for (int64_t j = 0; j < len; j++)
			memcpy(dst + (size_t)j * es, m[j] < 0 ? fill
			       : (const unsigned char *)srow +
				 (size_t)m[j] * es, es);
		break;
	}
}

static void mapped_run(const struct mapped *p, char *dst, const char *src)
{
	int64_t idx[LM_MAX_RANK] = { 0 }, rows = 1;
	int last = p->rank - 1;
	int64_t len = p->dims[last];
	size_t es = p->es;

	for (int d = 0; d < last; d++)
		rows *= p->dims[d];
	for (int64_t r = 0; r < rows; r++, dst += (size_t)len * es) {
		int64_t off = 0;
		int pad = 0;
		for (int d = 0; d < last; d++) {
			int64_t i = p->map[d][idx[d]];
			pad |= i < 0;
			off += i * p->ist[d];
		}
		odo_next(last, p->dims, p->ist, idx, 0);
		if (pad) {
			fill_row(dst, p->fill, (size_t)len, es);
			continue;
		}
		const char *srow = src + (size_t)off * es;
		if (!p->nseg) {
			map_row(dst, srow, p->map[last], len, p->fill, es);
			continue;
		}
		for (int k = 0; k < p->nseg; k++) {
			const struct seg *sg = &p->seg[k];
			char *d = dst + (size_t)sg->j * es;
			if (sg->m < 0)
				fill_row(d, p->fill, (size_t)sg->len, es);
			else
				memcpy(d, srow + (size_t)sg->m * es,
				       (size_t)sg->len * es);
		}
	}
}

static int mapped_kernel(const lm_kargs *a)
{
	mapped_run(a->state, a->out[0]->data, a->in[0]->data);
	return 0;
}

/*
 * A map plan over output dims (x's rank) with room for every axis's map;
 * the caller fills p->map[d][0 .. dims[d]) and then calls mapped_finish.
 */
static struct mapped *mapped_new(lm_graph *g, lm_node *n, lm_kernel *k,
				 const lm_value *x, const int64_t *dims,
				 lm_error *e)
{
	int64_t total = 0;
	int rank = x->rank > 0 ? x->rank : 1;

	for (int d = 0; d < x->rank; d++)
		total += dims[d];
	/* Segments: at most one per element of the last axis. */
	int64_t last = x->rank > 0 ? dims[x->rank - 1] : 1;
	size_t bytes = sizeof(struct mapped) + (size_t)(total + 1) *
		       sizeof(int64_t) + (size_t)last * sizeof(struct seg);
	struct mapped *p = lm_kernel_new_state(g, n, k, bytes, e);
	if (!p)
		return NULL;
	p->rank = rank;
	p->es = lm_dtype_size(x->dtype);
	int64_t *m = p->store;
	strides_of(x->rank, x->dims, p->ist);
	for (int d = 0; d < x->rank; d++) {
		p->dims[d] = dims[d];
		p->map[d] = m;
		m += dims[d];
	}
	if (x->rank == 0) {
		/* A scalar: one axis of one element, read as itself. */
		p->dims[0] = 1;
		p->ist[0] = 1;
		p->map[0] = m++;
		p->map[0][0] = 0;
	}
	p->seg = (struct seg *)m;
	k->run = mapped_kernel;
	return p;
}

/* Cut the last axis's map into runs of consecutive reads (or padding);
 * worth it only when the runs are long enough for memcpy to win. */
static void mapped_finish(struct mapped *p)
{
	int last = p->rank - 1;
	const int64_t *m = p->map[last];
	int64_t len = p->dims[last];
	int nseg = 0;

	for (int64_t j = 0; j < len; j++) {
		struct seg *prev = nseg ? &p->seg[nseg - 1] : NULL;
		if (prev && ((m[j] < 0 && prev->m < 0) ||
			     (m[j] >= 0 && prev->m >= 0 &&
			      m[j] == prev->m + prev->len))) {
			prev->len++;
			continue;
		}
		p->seg[nseg++] = (struct seg){ j, 1, m[j] < 0 ? -1 : m[j] };
	}
	p->nseg = nseg * 8 <= len ? nseg : 0;
}

/* Pad: constant (the value from the attribute before opset 11, the
 * optional constant input after; 0 by default), reflect, edge, wrap. */
enum pad_mode { PAD_CONSTANT, PAD_REFLECT, PAD_EDGE, PAD_WRAP };

static int64_t pad_index(enum pad_mode mode, int64_t i, int64_t len)
{
	if (i >= 0 && i < len)
		return i;
	switch (mode) {
	case PAD_EDGE:
		return i < 0 ? 0 : len - 1;
	case PAD_WRAP:
		return ((i % len) + len) % len;
	case PAD_REFLECT:
		if (len == 1)
			return 0;
		/* Mirror about the end elements (not repeating them):
		 * the pattern repeats every 2 (len - 1). */
		i = ((i % (2 * (len - 1))) + 2 * (len - 1)) % (2 * (len - 1));
		return i < len ? i : 2 * (len - 1) - i;
	default:
		return -1;
	}
}

static int pad_fill(lm_graph *g, lm_node *n, const lm_value *x,
		    unsigned char *fill, lm_error *e)
{
	size_t es = lm_dtype_size(x->dtype);

	memset(fill, 0, 16);
	if (lm_ops_opset(g) < 11) {
		double v = lm_attr_float(n, "value", 0);
		if (!lm_ops_numeric(x->dtype))
			return v == 0 ? 0 : unsupported(g, n, x, "numeric "
							"types", e);
		lm_ops_put_f(fill, x->dtype, 0, v);
		return 0;
	}
	lm_value *c = lm_node_in(g, n, 2);
	if (!c || lm_ops_numel(c->rank, c->dims) == 0)
		return 0;
	if (!lm_value_is_const(c))
		return lm_ops_fail(e, g, n, -ENOTSUP, "constant_value '%s' is "
				   "not a constant", c->name);
	if (c->dtype != x->dtype || lm_ops_numel(c->rank, c->dims) != 1)
		return lm_ops_fail(e, g, n, -EINVAL, "constant_value '%s' "
				   "must be one %s", c->name,
				   lm_dtype_name(x->dtype));
	const void *d = lm_ops_fold_in(g, n, 2, e);
	if (!d)
		return -EINVAL;
	memcpy(fill, d, es);
	return 0;
}

static int pad_prepare(lm_graph *g, lm_node *n, lm_kernel *k, lm_error *e)
{
	static const char *const modes[] = { "constant", "reflect", "edge",
					     "wrap" };
	lm_value *x, *y = lm_node_out(g, n, 0);
	int64_t begin[LM_MAX_RANK], end[LM_MAX_RANK];
	const char *ms = lm_attr_str(n, "mode", "constant");
	int rc, mode = -1;

	for (int i = 0; i < ARRAY_SIZE(modes); i++)
		if (!strcmp(ms, modes[i]))
			mode = i;
	if (mode < 0)
		return lm_ops_fail(e, g, n, -ENOTSUP, "mode '%s' is not "
				   "supported", ms);
	if ((rc = data_in(g, n, &x, e)) ||
	    (rc = pad_amounts(g, n, x, begin, end, e)))
		return rc;
	if (es_too_big(x))
		return unsupported(g, n, x, "types of at most 16 bytes", e);
	for (int d = 0; d < x->rank; d++)
		if (mode != PAD_CONSTANT && x->dims[d] == 0 && y->dims[d] > 0)
			return lm_ops_fail(e, g, n, -EINVAL, "cannot %s-pad "
					   "the empty axis %d", ms, d);
	struct mapped *p = mapped_new(g, n, k, x, y->dims, e);
	if (!p)
		return -ENOMEM;
	if ((rc = pad_fill(g, n, x, p->fill, e)))
		return rc;
	for (int d = 0; d < x->rank; d++)
		for (int64_t o = 0; o < y->dims[d]; o++)
			p->map[d][o] = pad_index((enum pad_mode)mode,
						 o - begin[d], x->dims[d]);
	mapped_finish(p);
	k->impl = "pad";
	return 0;
}

static int tile_prepare(lm_graph *g, lm_node *n, lm_kernel *k, lm_error *e)
{
	lm_value *x, *y = lm_node_out(g, n, 0);
	int rc;

	if ((rc = data_in(g, n, &x, e)))
		return rc;
	if (es_too_big(x))
		return unsupported(g, n, x, "types of at most 16 bytes", e);
	struct mapped *p = mapped_new(g, n, k, x, y->dims, e);
	if (!p)
		return -ENOMEM;
	for (int d = 0; d < x->rank; d++)
		for (int64_t o = 0; o < y->dims[d]; o++)
			p->map[d][o] = o % x->dims[d];
	mapped_finish(p);
	k->impl = "tile";
	return 0;
}

/* -- Resize -- */

enum coord_mode { CT_HALF_PIXEL, CT_HALF_PIXEL_SYMMETRIC, CT_PYTORCH,
		  CT_ALIGN_CORNERS, CT_ASYMMETRIC, CT_TF_HALF_PIXEL };

/* Where output index o of an axis samples the input, in input units
 * (ONNX Resize's coordinate_transformation_mode). */
static double resize_coord(enum coord_mode cm, int64_t o, int64_t in,
			   int64_t out, double scale)
{
	double x = (double)o;

	switch (cm) {
	case CT_HALF_PIXEL_SYMMETRIC: {
		double adj = (double)out / (scale * (double)in);
		double off = (double)in / 2 * (1 - adj);
		return off + (x + 0.5) / scale - 0.5;
	}
	case CT_PYTORCH:
		return out > 1 ? (x + 0.5) / scale - 0.5 : 0;
	case CT_ALIGN_CORNERS:
		return out == 1 ? 0 : x * (double)(in - 1) / (double)(out - 1);
	case CT_ASYMMETRIC:
		return x / scale;
	case CT_TF_HALF_PIXEL:
		return (x + 0.5) / scale;
	default:
		return (x + 0.5) / scale - 0.5;
	}
}

/*
 * The scale of every axis, as the coordinate transformations use it: the
 * scales input as given, or output / input size for sizes, or with a
 * keep_aspect_ratio_policy the one scale chosen for all listed axes.
 * Axes not listed keep scale 1.  infer has checked all of it.
 */
static int resize_scales(lm_graph *g, lm_node *n, const lm_value *x,
			 const lm_value *y, double *scale, lm_error *e)
{
	int64_t axes[LM_MAX_RANK], sizes[LM_MAX_RANK];
	double sc[LM_MAX_RANK];
	int si = lm_ops_opset(g) < 11 ? 1 : 2;
	lm_value *sv = lm_node_in(g, n, si), *zv = lm_node_in(g, n, 3);
	int na = lm_ops_attr_list(g, n, "axes", axes, LM_MAX_RANK, e);

	if (na < 0)
		return na;
	if (!na) {
		na = x->rank;
		for (int i = 0; i < na; i++)
			axes[i] = i;
	}
	for (int d = 0; d < x->rank; d++)
		scale[d] = 1;
	if (sv && lm_ops_numel(sv->rank, sv->dims) > 0) {
		int c = lm_ops_const_floats(g, n, si, "scales", sc,
					    LM_MAX_RANK, e);
		if (c < 0)
			return c;
		for (int i = 0; i < na && i < c; i++)
			scale[axes[i] < 0 ? axes[i] + x->rank : axes[i]] =
				sc[i];
		return 0;
	}
	int c = zv ? lm_ops_const_ints(g, n, 3, "sizes", sizes, LM_MAX_RANK,
				       e) : 0;
	if (c < 0)
		return c;
	const char *pol = lm_attr_str(n, "keep_aspect_ratio_policy",
				      "stretch");
	double common = !strcmp(pol, "not_smaller") ? 0 : INFINITY;
	for (int i = 0; i < na && i < c; i++) {
		int a = (int)(axes[i] < 0 ? axes[i] + x->rank : axes[i]);
		double r = x->dims[a] ? (double)sizes[i] / (double)x->dims[a]
				      : 1;
		scale[a] = r;
		common = !strcmp(pol, "not_smaller") ? fmax(common, r)
						     : fmin(common, r);
	}
	if (strcmp(pol, "stretch") != 0)
		for (int i = 0; i < na && i < c; i++)
			scale[axes[i] < 0 ? axes[i] + x->rank : axes[i]] =
				common;
	(void)y;
	return 0;
}

/* Linear: per output index of one axis, the two input indices blended
 * and the weight of the second. */
struct lerp {
	int64_t i0, i1;
	float w;
};

/*
 * Bilinear over the last two axes (H, W) of planes of (H, W); with only W
 * resized the H maps are the identity.  Each output row blends two input
 * rows, first interpolated along W into scratch (kept while the rows stay
 * the same, as they do when upsampling).
 */
struct resize_linear {
	int64_t planes, ih, iw, oh, ow;
	struct lerp *h, *w;     /* oh, then ow entries in lerps[] */
	struct lerp lerps[];
};

static void lerp_row(float *restrict dst, const float *restrict src,
		     const struct lerp *w, int64_t n)
{
	for (int64_t j = 0; j < n; j++)
		dst[j] = src[w[j].i0] + (src[w[j].i1] - src[w[j].i0]) * w[j].w;
}

static LM_CLONES void blend_rows(float *restrict y, const float *restrict a,
				 const float *restrict b, float w, size_t n)
{
	LM_VFOR(i, n, y[i] = a[i] + (b[i] - a[i]) * w);
}

static int resize_linear_run(const lm_kargs *a)
{
	const struct resize_linear *s = a->state;
	float *r0 = a->scratch, *r1 = r0 + s->ow;

	for (int64_t p = 0; p < s->planes; p++) {
		const float *x = (const float *)a->in[0]->data +
				 p * s->ih * s->iw;
		float *y = (float *)a->out[0]->data + p * s->oh * s->ow;
		int64_t have0 = -1, have1 = -1;
		for (int64_t o = 0; o < s->oh; o++, y += s->ow) {
			const struct lerp *h = &s->h[o];
			if (h->i0 != have0) {
				/* The row needed as the top one may be the
				 * one already made as the bottom one. */
				if (h->i0 == have1) {
					float *t = r0;
					r0 = r1;
					r1 = t;
					have1 = -1;
				} else {
					lerp_row(r0, x + h->i0 * s->iw, s->w,
						 s->ow);
				}
				have0 = h->i0;
			}
			if (h->i1 != have1) {
				lerp_row(r1, x + h->i1 * s->iw, s->w, s->ow);
				have1 = h->i1;
			}
			blend_rows(y, r0, r1, h->w, (size_t)s->ow);
		}
	}
	return 0;
}

static void lerp_axis(struct lerp *l, enum coord_mode cm, int64_t in,
		      int64_t out, double scale)
{
	for (int64_t o = 0; o < out; o++) {
		double c = resize_coord(cm, o, in, out, scale);
		c = c < 0 ? 0 : c > (double)(in - 1) ? (double)(in - 1) : c;
		int64_t i0 = (int64_t)c;
		l[o].i0 = i0;
		l[o].i1 = i0 + 1 < in ? i0 + 1 : in - 1;
		l[o].w = (float)(c - (double)i0);
	}
}

/* Nearest: an index map, rounding with nearest_mode and clamping. */
static int resize_nearest(lm_graph *g, lm_node *n, lm_kernel *k,
			  const lm_value *x, const lm_value *y,
			  enum coord_mode cm, const double *scale,
			  lm_error *e)
{
	static const char *const nms[] = { "round_prefer_floor",
					   "round_prefer_ceil", "floor",
					   "ceil" };
	const char *ns = lm_attr_str(n, "nearest_mode", "round_prefer_floor");
	int nm = -1;

	for (int i = 0; i < ARRAY_SIZE(nms); i++)
		if (!strcmp(ns, nms[i]))
			nm = i;
	if (nm < 0)
		return lm_ops_fail(e, g, n, -ENOTSUP, "nearest_mode '%s' is "
				   "not supported", ns);
	/* Resize-10 had no nearest_mode; ONNX's own 10 -> 11 converter
	 * makes it floor (with asymmetric coordinates, see below). */
	if (lm_ops_opset(g) < 11)
		nm = 2;
	if (es_too_big(x))
		return unsupported(g, n, x, "types of at most 16 bytes", e);
	struct mapped *p = mapped_new(g, n, k, x, y->dims, e);
	if (!p)
		return -ENOMEM;
	for (int d = 0; d < x->rank; d++) {
		int64_t in = x->dims[d];
		for (int64_t o = 0; o < y->dims[d]; o++) {
			double c = resize_coord(cm, o, in, y->dims[d],
						scale[d]);
			/* round_prefer_floor sends x.5 down, _ceil up. */
			double r = nm == 0 ? ceil(c - 0.5) : nm == 1
				 ? floor(c + 0.5) : nm == 2 ? floor(c)
				 : ceil(c);
			p->map[d][o] = r < 0 ? 0 : r > (double)(in - 1)
				     ? in - 1 : (int64_t)r;
		}
	}
	mapped_finish(p);
	k->impl = "resize-nearest";
	return 0;
}

static int resize_prepare(lm_graph *g, lm_node *n, lm_kernel *k,
			  lm_error *e)
{
	static const char *const cms[] = {
		[CT_HALF_PIXEL] = "half_pixel",
		[CT_HALF_PIXEL_SYMMETRIC] = "half_pixel_symmetric",
		[CT_PYTORCH] = "pytorch_half_pixel",
		[CT_ALIGN_CORNERS] = "align_corners",
		[CT_ASYMMETRIC] = "asymmetric",
		[CT_TF_HALF_PIXEL] = "tf_half_pixel_for_nn",
	};
	lm_value *x, *y = lm_node_out(g, n, 0);
	double scale[LM_MAX_RANK];
	const char *mode = lm_attr_str(n, "mode", "nearest");
	/* Before opset 11 there was no choice: asymmetric. */
	const char *cs = lm_attr_str(n, "coordinate_transformation_mode",
				     lm_ops_opset(g) < 11 ? "asymmetric"
							  : "half_pixel");
	int rc, cm = -1;

	if ((rc = data_in(g, n, &x, e)))
		return rc;
	for (int i = 0; i < ARRAY_SIZE(cms); i++)
		if (!strcmp(cs, cms[i]))
			cm = i;
	if (cm < 0 || (cm == CT_TF_HALF_PIXEL && strcmp(mode, "nearest")))
		return lm_ops_fail(e, g, n, -ENOTSUP, "coordinate_"
				   "transformation_mode '%s' is not "
				   "supported", cs);
	if (lm_attr_int(n, "antialias", 0))
		return lm_ops_fail(e, g, n, -ENOTSUP, "antialias is not "
				   "supported");
	if ((rc = resize_scales(g, n, x, y, scale, e)))
		return rc;
	for (int d = 0; d < x->rank; d++)
		if (x->dims[d] == 0 && y->dims[d] > 0)
			return lm_ops_fail(e, g, n, -EINVAL, "cannot resize "
					   "the empty axis %d", d);
	if (!strcmp(mode, "nearest"))
		return resize_nearest(g, n, k, x, y, (enum coord_mode)cm,
				      scale, e);
	if (strcmp(mode, "linear") != 0)
		return lm_ops_fail(e, g, n, -ENOTSUP, "mode '%s' is not "
				   "supported (only nearest, linear)", mode);
	if (x->dtype != LM_DT_FLOAT)
		return unsupported(g, n, x, "float32 for linear mode", e);
	for (int d = 0; d + 2 < x->rank; d++)
		if (x->dims[d] != y->dims[d] || scale[d] != 1)
			return lm_ops_fail(e, g, n, -ENOTSUP, "linear resize "
					   "of axis %d is not supported (only "
					   "the last two axes)", d);
	int64_t ih = x->rank >= 2 ? x->dims[x->rank - 2] : 1;
	int64_t oh = x->rank >= 2 ? y->dims[x->rank - 2] : 1;
	int64_t iw = x->rank >= 1 ? x->dims[x->rank - 1] : 1;
	int64_t ow = x->rank >= 1 ? y->dims[x->rank - 1] : 1;
	struct resize_linear *s = lm_kernel_new_state(g, n, k, sizeof(*s) + (size_t)
					    (oh + ow) * sizeof(struct lerp),
					    e);
	if (!s)
		return -ENOMEM;
	s->planes = x->rank > 2 ? lm_ops_numel(x->rank - 2, x->dims) : 1;
	s->ih = ih;
	s->iw = iw;
	s->oh = oh;
	s->ow = ow;
	s->h = s->lerps;
	s->w = s->lerps + oh;
	lerp_axis(s->h, (enum coord_mode)cm, ih, oh,
		  x->rank >= 2 ? scale[x->rank - 2] : 1);
	lerp_axis(s->w, (enum coord_mode)cm, iw, ow,
		  x->rank >= 1 ? scale[x->rank - 1] : 1);
	k->run = resize_linear_run;
	k->scratch_bytes = 2 * (size_t)ow * sizeof(float);
	k->impl = "resize-linear";
	return 0;
}

/* -- Gather -- */

/*
 * data[outer, dim, inner] indexed on the middle axis.  Indices come at
 * run time; ONNX leaves out-of-range ones undefined, so they are checked
 * there and give zeros instead of reading out of bounds.
 */
struct gather {
	int64_t outer, dim, ni;
	size_t chunk;           /* bytes per index: inner * element size */
	int idx64;
};

static int gather_run(const lm_kargs *a)
{
	const struct gather *s = a->state;
	const char *x = a->in[0]->data;
	const void *idx = a->in[1]->data;
	char *y = a->out[0]->data;
	size_t chunk = s->chunk;

	for (int64_t o = 0; o < s->outer; o++) {
		const char *base = x + (size_t)(o * s->dim) * chunk;
		for (int64_t j = 0; j < s->ni; j++, y += chunk) {
			int64_t i = s->idx64 ? ((const int64_t *)idx)[j]
					     : ((const int32_t *)idx)[j];
			if (i < 0)
				i += s->dim;
			if (i < 0 || i >= s->dim)
				memset(y, 0, chunk);
			else if (chunk == 4)
				memcpy(y, base + (size_t)i * 4, 4);
			else if (chunk == 8)
				memcpy(y, base + (size_t)i * 8, 8);
			else
				memcpy(y, base + (size_t)i * chunk, chunk);
		}
	}
	return 0;
}

static int gather_prepare(lm_graph *g, lm_node *n, lm_kernel *k,
			  lm_error *e)
{
	lm_value *x, *idx;
	int axis, rc;

	if ((rc = data_in(g, n, &x, e)) ||
	    (rc = lm_ops_in(g, n, 1, &idx, e)) ||
	    (rc = lm_ops_axis(g, n, lm_attr_int(n, "axis", 0), x->rank,
			      "axis", &axis, e)))
		return rc;
	if (idx->dtype != LM_DT_INT64 && idx->dtype != LM_DT_INT32)
		return unsupported(g, n, idx, "int32, int64", e);
	struct gather *s = lm_kernel_new_state(g, n, k, sizeof(*s), e);
	if (!s)
		return -ENOMEM;
	s->outer = lm_ops_numel(axis, x->dims);
	s->dim = x->dims[axis];
	s->ni = lm_ops_numel(idx->rank, idx->dims);
	s->chunk = (size_t)lm_ops_numel(x->rank - axis - 1,
					x->dims + axis + 1) *
		   lm_dtype_size(x->dtype);
	s->idx64 = idx->dtype == LM_DT_INT64;
	k->run = gather_run;
	k->impl = "gather";
	return 0;
}

/* -- Concat, Split -- */

/* Concat and Split see the tensors as (outer, axis * inner): row o of the
 * whole is row o of every part, one after another. */
struct blocks {
	int64_t outer;
	int n;
	size_t chunk[];         /* bytes per row of each part */
};

static int concat_run(const lm_kargs *a)
{
	const struct blocks *s = a->state;
	char *y = a->out[0]->data;

	for (int64_t o = 0; o < s->outer; o++) {
		for (int i = 0; i < s->n; i++) {
			memcpy(y, (const char *)a->in[i]->data +
			       (size_t)o * s->chunk[i], s->chunk[i]);
			y += s->chunk[i];
		}
	}
	return 0;
}

static int split_run(const lm_kargs *a)
{
	const struct blocks *s = a->state;
	const char *x = a->in[0]->data;

	for (int64_t o = 0; o < s->outer; o++) {
		for (int i = 0; i < s->n; i++) {
			if (i < a->n_out && a->out[i])
				memcpy((char *)a->out[i]->data +
				       (size_t)o * s->chunk[i], x,
				       s->chunk[i]);
			x += s->chunk[i];
		}
	}
	return 0;
}

static int blocks_prepare(lm_graph *g, lm_node *n, lm_kernel *k, int split,
			  lm_error *e)
{
	lm_value *x, *whole = split ? lm_node_in(g, n, 0)
				    : lm_node_out(g, n, 0);
	int nparts = split ? n->n_outputs : n->n_inputs, axis, rc;

	if ((rc = data_in(g, n, &x, e)) ||
	    (rc = lm_ops_axis(g, n, lm_attr_int(n, "axis", split ? 0 : 1),
			      whole->rank, "axis", &axis, e)))
		return rc;
	struct blocks *s = lm_kernel_new_state(g, n, k, sizeof(*s) + (size_t)nparts *
				     sizeof(size_t), e);
	if (!s)
		return -ENOMEM;
	size_t inner = (size_t)lm_ops_numel(whole->rank - axis - 1,
					    whole->dims + axis + 1) *
		       lm_dtype_size(whole->dtype);
	s->outer = lm_ops_numel(axis, whole->dims);
	s->n = nparts;
	for (int i = 0; i < nparts; i++) {
		lm_value *v = split ? lm_node_out(g, n, i)
				    : lm_node_in(g, n, i);
		if (!v)
			return lm_ops_fail(e, g, n, -ENOTSUP, "%s %d is "
					   "omitted", split ? "output"
							    : "input", i);
		s->chunk[i] = (size_t)v->dims[axis] * inner;
	}
	k->run = split ? split_run : concat_run;
	k->impl = split ? "split" : "concat";
	return 0;
}

static int concat_prepare(lm_graph *g, lm_node *n, lm_kernel *k,
			  lm_error *e)
{
	return blocks_prepare(g, n, k, 0, e);
}

static int split_prepare(lm_graph *g, lm_node *n, lm_kernel *k, lm_error *e)
{
	return blocks_prepare(g, n, k, 1, e);
}

/* -- Shape, Size, ConstantOfShape, Range -- */

/* Outputs known at prepare (Shape, Size of a static shape), or a fill
 * pattern: the state holds the bytes, run copies or repeats them. */
struct fixed {
	size_t bytes;           /* of the pattern */
	size_t total;           /* bytes of the output */
	unsigned char data[];
};

static int fixed_run(const lm_kargs *a)
{
	const struct fixed *s = a->state;
	char *y = a->out[0]->data;

	if (s->bytes == s->total) {
		memcpy(y, s->data, s->total);
		return 0;
	}
	for (size_t off = 0; off < s->total; off += s->bytes)
		memcpy(y + off, s->data, s->bytes);
	return 0;
}

static struct fixed *fixed_new(lm_graph *g, lm_node *n, lm_kernel *k,
			       size_t bytes, lm_error *e)
{
	lm_value *y = lm_node_out(g, n, 0);

	if (!y) {
		lm_ops_fail(e, g, n, -EINVAL, "output 0 is missing");
		return NULL;
	}
	struct fixed *s = lm_kernel_new_state(g, n, k, sizeof(*s) + bytes, e);
	if (!s)
		return NULL;
	s->bytes = bytes;
	s->total = lm_value_bytes(y);
	k->run = fixed_run;
	k->impl = "constant";
	return s;
}

static int shape_prepare(lm_graph *g, lm_node *n, lm_kernel *k, lm_error *e)
{
	lm_value *x;
	int s, t, rc = lm_ops_in(g, n, 0, &x, e);

	if (rc)
		return rc;
	shape_window(n, x->rank, &s, &t);
	struct fixed *f = fixed_new(g, n, k, (size_t)(t - s) *
				    sizeof(int64_t), e);
	if (!f)
		return -ENOMEM;
	memcpy(f->data, x->dims + s, f->bytes);
	return 0;
}

static int size_prepare(lm_graph *g, lm_node *n, lm_kernel *k, lm_error *e)
{
	lm_value *x;
	int rc = lm_ops_in(g, n, 0, &x, e);

	if (rc)
		return rc;
	struct fixed *f = fixed_new(g, n, k, sizeof(int64_t), e);
	if (!f)
		return -ENOMEM;
	int64_t cnt = lm_ops_numel(x->rank, x->dims);
	memcpy(f->data, &cnt, sizeof(cnt));
	return 0;
}

static int const_of_shape_prepare(lm_graph *g, lm_node *n, lm_kernel *k,
				  lm_error *e)
{
	lm_value *y = lm_node_out(g, n, 0);
	const lm_tensor *t;
	int rc = fill_value(g, n, &t, e);

	if (rc)
		return rc;
	size_t es = y ? lm_dtype_size(y->dtype) : 0;
	if (!es)
		return lm_ops_fail(e, g, n, -ENOTSUP, "output has no "
				   "fixed-size element type");
	struct fixed *f = fixed_new(g, n, k, es, e);
	if (!f)
		return -ENOMEM;
	if (t)
		memcpy(f->data, t->data, es);
	return 0;
}

/* Range: output[i] = start + i * delta, computed at run. */
struct range {
	lm_dtype dt;
	double f0, fd;
	int64_t i0, id;
	int64_t count;
};

static int range_run(const lm_kargs *a)
{
	const struct range *s = a->state;
	void *y = a->out[0]->data;

	for (int64_t i = 0; i < s->count; i++) {
		if (lm_ops_is_float(s->dt))
			lm_ops_put_f(y, s->dt, i, s->f0 + (double)i * s->fd);
		else
			lm_ops_put_i(y, s->dt, i,
				     (int64_t)((uint64_t)s->i0 +
					       (uint64_t)i * (uint64_t)s->id));
	}
	return 0;
}

static int range_prepare(lm_graph *g, lm_node *n, lm_kernel *k, lm_error *e)
{
	struct range_args r;
	int64_t count = 0;
	int rc;

	if ((rc = range_args(g, n, &r, e)) ||
	    (rc = range_count(g, n, &r, &count, e)))
		return rc;
	struct range *s = lm_kernel_new_state(g, n, k, sizeof(*s), e);
	if (!s)
		return -ENOMEM;
	s->dt = r.dt;
	s->f0 = r.f[0];
	s->fd = r.f[2];
	s->i0 = r.i[0];
	s->id = r.i[2];
	s->count = count;
	k->run = range_run;
	k->impl = "range";
	return 0;
}

#define RS LM_OP_RESHAPE
#define CO LM_OP_COMPUTE

static const lm_op ops[] = {
	{ "Shape", 0, shape_infer, shape_fold, NULL, shape_prepare },
	{ "Size", 0, size_infer, size_fold, NULL, size_prepare },
	{ "Gather", CO, gather_infer, gather_fold, NULL, gather_prepare },
	{ "Unsqueeze", RS, unsqueeze_infer, lm_ops_fold_copy, NULL,
	  alias_prepare },
	{ "Squeeze", RS, squeeze_infer, lm_ops_fold_copy, NULL,
	  alias_prepare },
	{ "Concat", CO, concat_infer, concat_fold, NULL, concat_prepare },
	{ "Split", CO, split_infer, NULL, NULL, split_prepare },
	{ "Slice", 0, slice_infer, slice_fold, NULL, slice_prepare },
	{ "Flatten", RS, flatten_infer, lm_ops_fold_copy, NULL,
	  alias_prepare },
	{ "Reshape", RS, reshape_infer, lm_ops_fold_copy, NULL,
	  alias_prepare },
	{ "Transpose", 0, transpose_infer, transpose_fold, NULL,
	  transpose_prepare },
	{ "Expand", 0, expand_infer, expand_fold, NULL, expand_prepare },
	{ "ConstantOfShape", 0, const_of_shape_infer, const_of_shape_fold,
	  NULL, const_of_shape_prepare },
	{ "Range", 0, range_infer, range_fold, NULL, range_prepare },
	{ "Pad", CO, pad_infer, NULL, NULL, pad_prepare },
	{ "Resize", CO, resize_infer, NULL, resize_flops, resize_prepare },
	/* Always folded: fold.c turns Constant nodes into constants. */
	{ "Constant", 0, constant_infer, constant_fold, NULL, NULL },
	{ "Tile", 0, tile_infer, NULL, NULL, tile_prepare },
};

const struct lm_ops_family lm_ops_shape = { ops, ARRAY_SIZE(ops) };
