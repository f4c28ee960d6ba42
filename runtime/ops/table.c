/*
 * table.c: the operator table, lm_op_find(), and the checking helpers every
 * operator family shares (declared in ops.h).
 *
 * Each family file exports its own entries; the table below is the list of
 * families, so adding an operator touches its family file and nothing else.
 * Lookup is a linear scan: about a hundred names, once per node, and no
 * lazily built index means no global mutable state.
 */
#include "ops.h"
#include "kernel.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct lm_ops_family *const families[] = {
	&lm_ops_conv, &lm_ops_gemm, &lm_ops_pool,
	&lm_ops_elementwise, &lm_ops_norm, &lm_ops_shape, &lm_ops_fused,
};

const lm_op *lm_op_find(const char *domain, const char *op_type)
{
	if (!op_type)
		return NULL;
	if (domain && domain[0] && strcmp(domain, "ai.onnx") != 0)
		return NULL;
	for (int f = 0; f < ARRAY_SIZE(families); f++)
		for (int i = 0; i < families[f]->n; i++)
			if (strcmp(families[f]->ops[i].name, op_type) == 0)
				return &families[f]->ops[i];
	return NULL;
}

/* ---- messages ---- */

int lm_ops_fail(lm_error *e, const lm_graph *g, const lm_node *n, int rc,
		const char *fmt, ...)
{
	char what[400];
	va_list ap;

	if (!e)
		return rc;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (n->name && n->name[0])
		return lm_fail(e, rc, "node '%s' (%s): %s", n->name,
			       n->op_type, what);
	/* ONNX allows unnamed nodes; the first output names them uniquely. */
	for (int i = 0; i < n->n_outputs; i++)
		if (n->outputs[i] >= 0)
			return lm_fail(e, rc, "node writing '%s' (%s): %s",
				       g->values[n->outputs[i]].name,
				       n->op_type, what);
	return lm_fail(e, rc, "unnamed node (%s): %s", n->op_type, what);
}

/* ---- inputs, outputs and attributes ---- */

/* "2", "2 to 3" or "at least 2" */
static const char *count_range(int lo, int hi, char *buf, size_t len)
{
	if (hi < 0)
		snprintf(buf, len, "at least %d", lo);
	else if (lo == hi)
		snprintf(buf, len, "%d", lo);
	else
		snprintf(buf, len, "%d to %d", lo, hi);
	return buf;
}

int lm_ops_arity(lm_graph *g, const lm_node *n, int min_in, int max_in,
		 int min_out, int max_out, lm_error *e)
{
	char want[32];

	if (n->n_inputs < min_in || (max_in >= 0 && n->n_inputs > max_in))
		return lm_ops_fail(e, g, n, -EINVAL, "has %d inputs, expects "
				   "%s", n->n_inputs,
				   count_range(min_in, max_in, want,
					       sizeof(want)));
	if (n->n_outputs < min_out || (max_out >= 0 && n->n_outputs > max_out))
		return lm_ops_fail(e, g, n, -EINVAL, "has %d outputs, expects "
				   "%s", n->n_outputs,
				   count_range(min_out, max_out, want,
					       sizeof(want)));
	return 0;
}

int lm_ops_opt(lm_graph *g, const lm_node *n, int i, lm_value **v,
	       lm_error *e)
{
	char buf[128];
	lm_value *x = lm_node_in(g, n, i);

	*v = x;
	if (!x)
		return 0;
	if (x->rank < 0 || x->rank > LM_MAX_RANK)
		return lm_ops_fail(e, g, n, -EINVAL, "input '%s' has %s rank",
				   x->name, x->rank < 0 ? "an unknown"
							: "an unsupported");
	if (lm_ops_numel(x->rank, x->dims) < 0)
		return lm_ops_fail(e, g, n, -EINVAL, "input '%s' has shape %s, "
				   "which is not fully known", x->name,
				   lm_shape_str(x->rank, x->dims, buf,
						sizeof(buf)));
	if (x->dtype == LM_DT_UNDEFINED)
		return lm_ops_fail(e, g, n, -EINVAL, "input '%s' has no "
				   "element type", x->name);
	return 0;
}

int lm_ops_in(lm_graph *g, const lm_node *n, int i, lm_value **v,
	      lm_error *e)
{
	int rc = lm_ops_opt(g, n, i, v, e);
	if (rc)
		return rc;
	if (!*v)
		return lm_ops_fail(e, g, n, -EINVAL, "required input %d is "
				   "missing", i);
	return 0;
}

int lm_ops_out(lm_graph *g, const lm_node *n, int i, lm_dtype dt, int rank,
	       const int64_t *dims, lm_error *e)
{
	lm_value *y = lm_node_out(g, n, i);

	if (!y)
		return 0;
	if (rank < 0 || rank > LM_MAX_RANK)
		return lm_ops_fail(e, g, n, -EINVAL, "output '%s' would have "
				   "rank %d; at most %d is supported", y->name,
				   rank, LM_MAX_RANK);
	for (int d = 0; d < rank; d++)
		if (dims[d] < 0)
			return lm_ops_fail(e, g, n, -EINVAL, "output '%s' "
					   "would have a negative dim (%lld) "
					   "on axis %d", y->name,
					   (long long)dims[d], d);
	/* Keep byte counts representable too, so lm_value_bytes and every
	 * allocation derived from it cannot wrap. */
	int64_t ne = lm_ops_numel(rank, dims);
	int64_t es = (int64_t)lm_dtype_size(dt);
	int64_t bytes;
	if (ne < 0 || ovf_mul(ne, es ? es : 1, &bytes))
		return lm_ops_fail(e, g, n, -EOVERFLOW, "output '%s' would be "
				   "too large to represent", y->name);
	lm_value_set_shape(y, dt, rank, dims);
	return 0;
}

int lm_ops_out_like(lm_graph *g, const lm_node *n, int i, const lm_value *v,
		    lm_error *e)
{
	return lm_ops_out(g, n, i, v->dtype, v->rank, v->dims, e);
}

int lm_ops_attr_ints(lm_graph *g, const lm_node *n, const char *name,
		     int64_t *out, int want, int64_t dflt, lm_error *e)
{
	const lm_attr *a = lm_node_attr(n, name);

	if (!a) {
		for (int i = 0; i < want; i++)
			out[i] = dflt;
		return 0;
	}
	if (a->type != LM_ATTR_INTS)
		return lm_ops_fail(e, g, n, -EINVAL, "attribute '%s' is not a "
				   "list of ints", name);
	if (a->n != want || (a->n > 0 && !a->ints))
		return lm_ops_fail(e, g, n, -EINVAL, "attribute '%s' has %d "
				   "values, expected %d", name, a->n, want);
	memcpy(out, a->ints, (size_t)want * sizeof(int64_t));
	return 1;
}

int lm_ops_attr_list(lm_graph *g, const lm_node *n, const char *name,
		     int64_t *out, int max, lm_error *e)
{
	const lm_attr *a = lm_node_attr(n, name);

	if (!a)
		return 0;
	if (a->type != LM_ATTR_INTS)
		return lm_ops_fail(e, g, n, -EINVAL, "attribute '%s' is not a "
				   "list of ints", name);
	if (a->n < 0 || a->n > max || (a->n > 0 && !a->ints))
		return lm_ops_fail(e, g, n, -EINVAL, "attribute '%s' has %d "
				   "values, at most %d are supported", name,
				   a->n, max);
	memcpy(out, a->ints, (size_t)a->n * sizeof(int64_t));
	return a->n;
}

int lm_ops_axis(lm_graph *g, const lm_node *n, int64_t axis, int rank,
		const char *what, int *out, lm_error *e)
{
	if (axis < -(int64_t)rank || axis >= rank)
		return lm_ops_fail(e, g, n, -EINVAL, "%s %lld is out of range "
				   "for rank %d", what, (long long)axis, rank);
	*out = (int)(axis < 0 ? axis + rank : axis);
	return 0;
}

int lm_ops_const_ints(lm_graph *g, const lm_node *n, int i, const char *what,
		      int64_t *out, int max, lm_error *e)
{
	lm_value *v = lm_node_in(g, n, i);

	if (!v)
		return lm_ops_fail(e, g, n, -EINVAL, "%s input is missing",
				   what);
	if (!lm_value_is_const(v))
		return lm_ops_fail(e, g, n, -ENODATA, "%s input '%s' is not a "
				   "constant", what, v->name);
	if (v->rank < 0 || v->rank > LM_MAX_RANK)
		return lm_ops_fail(e, g, n, -EINVAL, "%s input '%s' has no "
				   "usable shape", what, v->name);
	int rc = lm_value_read_ints(g, v, out, max, e);
	if (rc < 0) {
		char why[sizeof(e->msg)];
		snprintf(why, sizeof(why), "%s", e ? e->msg : "");
		return lm_ops_fail(e, g, n, rc, "%s input: %s", what, why);
	}
	return rc;
}

int lm_ops_const_floats(lm_graph *g, const lm_node *n, int i,
			const char *what, double *out, int max, lm_error *e)
{
	lm_value *v = lm_node_in(g, n, i);

	if (!v)
		return lm_ops_fail(e, g, n, -EINVAL, "%s input is missing",
				   what);
	if (!lm_value_is_const(v))
		return lm_ops_fail(e, g, n, -ENODATA, "%s input '%s' is not a "
				   "constant", what, v->name);
	if (v->dtype != LM_DT_FLOAT && v->dtype != LM_DT_DOUBLE)
		return lm_ops_fail(e, g, n, -EINVAL, "%s input '%s' is %s, "
				   "expected float32", what, v->name,
				   lm_dtype_name(v->dtype));
	int64_t cnt = lm_ops_numel(v->rank, v->dims);
	if (cnt < 0 || cnt > max)
		return lm_ops_fail(e, g, n, -EINVAL, "%s input '%s' holds "
				   "%lld values, expected at most %d", what,
				   v->name, (long long)cnt, max);
	const void *d = lm_ops_fold_in(g, n, i, e);
	if (!d)
		return -ENODATA;
	for (int64_t k = 0; k < cnt; k++)
		out[k] = lm_ops_get_f(d, v->dtype, k);
	return (int)cnt;
}

int lm_ops_broadcast(lm_graph *g, const lm_node *n, int ra, const int64_t *a,
		     int rb, const int64_t *b, int *rank, int64_t *dims,
		     lm_error *e)
{
	int r = ra > rb ? ra : rb;
	int64_t out[LM_MAX_RANK];

	if (r > LM_MAX_RANK)
		return lm_ops_fail(e, g, n, -EINVAL, "broadcast rank %d "
				   "exceeds %d", r, LM_MAX_RANK);
	/* Align from the right; missing leading dims act as 1. */
	for (int i = 0; i < r; i++) {
		int ia = i - (r - ra), ib = i - (r - rb);
		int64_t da = ia >= 0 ? a[ia] : 1, db = ib >= 0 ? b[ib] : 1;
		if (da == db || db == 1) {
			out[i] = da;
		} else if (da == 1) {
			out[i] = db;
		} else {
			char sa[128], sb[128];
			return lm_ops_fail(e, g, n, -EINVAL, "shapes %s and %s "
					   "cannot be broadcast together",
					   lm_shape_str(ra, a, sa, sizeof(sa)),
					   lm_shape_str(rb, b, sb, sizeof(sb)));
		}
	}
	memcpy(dims, out, (size_t)r * sizeof(int64_t));
	*rank = r;
	return 0;
}

int lm_ops_same_type(lm_graph *g, const lm_node *n, const lm_value *a,
		     const lm_value *b, lm_error *e)
{
	if (a->dtype != b->dtype)
		return lm_ops_fail(e, g, n, -EINVAL, "inputs '%s' (%s) and "
				   "'%s' (%s) have different element types",
				   a->name, lm_dtype_name(a->dtype), b->name,
				   lm_dtype_name(b->dtype));
	return 0;
}

int64_t lm_ops_numel(int rank, const int64_t *dims)
{
	int64_t p = 1;

	if (rank < 0 || rank > LM_MAX_RANK)
		return -1;
	for (int i = 0; i < rank; i++)
		if (dims[i] < 0 || ovf_mul(p, dims[i], &p))
			return -1;
	return p;
}

double lm_ops_out_elems(lm_graph *g, const lm_node *n, int i)
{
	lm_value *v = lm_node_out(g, n, i);
	int64_t ne = v ? lm_ops_numel(v->rank, v->dims) : -1;
	return ne < 0 ? 0.0 : (double)ne;
}

double lm_ops_in_elems(lm_graph *g, const lm_node *n, int i)
{
	lm_value *v = lm_node_in(g, n, i);
	int64_t ne = v ? lm_ops_numel(v->rank, v->dims) : -1;
	return ne < 0 ? 0.0 : (double)ne;
}

/* ---- constant evaluation ---- */

const void *lm_ops_fold_in(lm_graph *g, const lm_node *n, int i, lm_error *e)
{
	lm_value *v = lm_node_in(g, n, i);
	int64_t ne;

	if (!v) {
		lm_ops_fail(e, g, n, -EINVAL, "input %d is missing", i);
		return NULL;
	}
	ne = lm_ops_numel(v->rank, v->dims);
	if (ne < 0 || lm_dtype_size(v->dtype) == 0) {
		lm_ops_fail(e, g, n, -EINVAL, "constant '%s' has no known "
			    "shape or type", v->name);
		return NULL;
	}
	const void *d = lm_graph_value_data(g, v, e);
	if (!d)
		return NULL;
	/* The file's shape and its data length are separate claims. */
	if (v->nbytes < (size_t)ne * lm_dtype_size(v->dtype)) {
		lm_ops_fail(e, g, n, -EINVAL, "constant '%s' holds %zu bytes, "
			    "its shape needs %zu", v->name, v->nbytes,
			    (size_t)ne * lm_dtype_size(v->dtype));
		return NULL;
	}
	return d;
}

void *lm_ops_fold_out(lm_graph *g, const lm_node *n, int i, lm_error *e)
{
	lm_value *y = lm_node_out(g, n, i);

	if (!y) {
		lm_ops_fail(e, g, n, -EINVAL, "output %d is missing", i);
		return NULL;
	}
	int64_t ne = lm_ops_numel(y->rank, y->dims);
	size_t es = lm_dtype_size(y->dtype);
	if (ne < 0 || es == 0) {
		lm_ops_fail(e, g, n, -EINVAL, "output '%s' has no known shape "
			    "or type", y->name);
		return NULL;
	}
	size_t bytes = (size_t)ne * es;
	void *p = calloc(1, bytes ? bytes : 1);
	if (!p) {
		lm_ops_fail(e, g, n, -ENOMEM, "out of memory");
		return NULL;
	}
	free(y->data);
	y->data = p;
	y->nbytes = bytes;
	y->kind = LM_VAL_CONSTANT;
	y->producer = -1;
	return p;
}

int lm_ops_fold_copy(lm_graph *g, lm_node *n, lm_error *e)
{
	lm_value *x = lm_node_in(g, n, 0), *y = lm_node_out(g, n, 0);
	const void *src = lm_ops_fold_in(g, n, 0, e);

	if (!src || !y)
		return -EINVAL;
	if (lm_value_bytes(x) != lm_value_bytes(y))
		return lm_ops_fail(e, g, n, -EINVAL, "output '%s' size differs "
				   "from input '%s'", y->name, x->name);
	void *dst = lm_ops_fold_out(g, n, 0, e);
	if (!dst)
		return -ENOMEM;
	memcpy(dst, src, lm_value_bytes(y));
	return 0;
}

int lm_ops_numeric(lm_dtype t)
{
	switch (t) {
	case LM_DT_FLOAT: case LM_DT_DOUBLE:
	case LM_DT_INT8: case LM_DT_INT16: case LM_DT_INT32: case LM_DT_INT64:
	case LM_DT_UINT8: case LM_DT_UINT16: case LM_DT_UINT32:
	case LM_DT_UINT64: case LM_DT_BOOL:
		return 1;
	default:
		return 0;
	}
}

int lm_ops_is_float(lm_dtype t)
{
	return t == LM_DT_FLOAT || t == LM_DT_DOUBLE;
}

double lm_ops_get_f(const void *p, lm_dtype t, int64_t i)
{
	switch (t) {
	case LM_DT_FLOAT: return ((const float *)p)[i];
	case LM_DT_DOUBLE: return ((const double *)p)[i];
	case LM_DT_UINT64: return (double)((const uint64_t *)p)[i];
	default: return (double)lm_ops_get_i(p, t, i);
	}
}

int64_t lm_ops_get_i(const void *p, lm_dtype t, int64_t i)
{
	switch (t) {
	case LM_DT_FLOAT: case LM_DT_DOUBLE: {
		/* Truncate toward zero like a C cast, but saturate instead of
		 * invoking undefined behaviour on NaN or huge values. */
		double v = t == LM_DT_FLOAT ? ((const float *)p)[i]
					    : ((const double *)p)[i];
		if (isnan(v))
			return 0;
		if (v >= 9223372036854775807.0)
			return INT64_MAX;
		if (v <= -9223372036854775808.0)
			return INT64_MIN;
		return (int64_t)v;
	}
	case LM_DT_INT8: return ((const int8_t *)p)[i];
	case LM_DT_INT16: return ((const int16_t *)p)[i];
	case LM_DT_INT32: return ((const int32_t *)p)[i];
	case LM_DT_INT64: return ((const int64_t *)p)[i];
	case LM_DT_UINT8: return ((const uint8_t *)p)[i];
	case LM_DT_UINT16: return ((const uint16_t *)p)[i];
	case LM_DT_UINT32: return ((const uint32_t *)p)[i];
	case LM_DT_UINT64: return (int64_t)((const uint64_t *)p)[i];
	case LM_DT_BOOL: return ((const uint8_t *)p)[i] != 0;
	default: return 0;
	}
}

void lm_ops_put_f(void *p, lm_dtype t, int64_t i, double v)
{
	switch (t) {
	case LM_DT_FLOAT: ((float *)p)[i] = (float)v; break;
	case LM_DT_DOUBLE: ((double *)p)[i] = v; break;
	case LM_DT_BOOL: ((uint8_t *)p)[i] = v != 0; break;
	case LM_DT_UINT64:
		((uint64_t *)p)[i] = isnan(v) || v <= 0 ? 0
				   : v >= 18446744073709551615.0 ? UINT64_MAX
				   : (uint64_t)v;
		break;
	default:
		lm_ops_put_i(p, t, i, lm_ops_get_i(&v, LM_DT_DOUBLE, 0));
		break;
	}
}

void lm_ops_put_i(void *p, lm_dtype t, int64_t i, int64_t v)
{
	/* Narrowing wraps modulo 2^n, as a C cast does on our compilers. */
	switch (t) {
	case LM_DT_FLOAT: ((float *)p)[i] = (float)v; break;
	case LM_DT_DOUBLE: ((double *)p)[i] = (double)v; break;
	case LM_DT_INT8: ((int8_t *)p)[i] = (int8_t)v; break;
	case LM_DT_INT16: ((int16_t *)p)[i] = (int16_t)v; break;
	case LM_DT_INT32: ((int32_t *)p)[i] = (int32_t)v; break;
	case LM_DT_INT64: ((int64_t *)p)[i] = v; break;
	case LM_DT_UINT8: ((uint8_t *)p)[i] = (uint8_t)v; break;
	case LM_DT_UINT16: ((uint16_t *)p)[i] = (uint16_t)v; break;
	case LM_DT_UINT32: ((uint32_t *)p)[i] = (uint32_t)v; break;
	case LM_DT_UINT64: ((uint64_t *)p)[i] = (uint64_t)v; break;
	case LM_DT_BOOL: ((uint8_t *)p)[i] = v != 0; break;
	default: break;
	}
}

int64_t lm_ops_bcast_src(int orank, const int64_t *odims, int irank,
			 const int64_t *idims, int64_t idx)
{
	int64_t off = 0, stride = 1;

	/* Walk axes from the innermost; a broadcast axis (dim 1) or a
	 * missing leading axis contributes nothing to the offset. */
	for (int d = orank - 1; d >= 0; d--) {
		int64_t c = idx % odims[d];
		int id = d - (orank - irank);
		idx /= odims[d];
		if (id < 0)
			continue;
		if (idims[id] != 1)
			off += c * stride;
		stride *= idims[id];
	}
	return off;
}

/* ---- sliding windows ---- */

int lm_ops_window(lm_graph *g, const lm_node *n, int nsp, const int64_t *in,
		  const int64_t *kernel, int ceil_mode, int64_t *out,
		  lm_error *e)
{
	int64_t strides[LM_MAX_RANK], dil[LM_MAX_RANK];
	int64_t pads[2 * LM_MAX_RANK];
	const char *ap = lm_attr_str(n, "auto_pad", "NOTSET");
	int rc;

	if (nsp < 1 || nsp > LM_MAX_RANK - 2)
		return lm_ops_fail(e, g, n, -EINVAL, "%d spatial axes are not "
				   "supported", nsp);
	if ((rc = lm_ops_attr_ints(g, n, "strides", strides, nsp, 1, e)) < 0 ||
	    (rc = lm_ops_attr_ints(g, n, "dilations", dil, nsp, 1, e)) < 0 ||
	    (rc = lm_ops_attr_ints(g, n, "pads", pads, 2 * nsp, 0, e)) < 0)
		return rc;
	int same = strcmp(ap, "SAME_UPPER") == 0 ||
		   strcmp(ap, "SAME_LOWER") == 0;
	int valid = strcmp(ap, "VALID") == 0;
	if (!same && !valid && strcmp(ap, "NOTSET") != 0 && ap[0] != '\0')
		return lm_ops_fail(e, g, n, -EINVAL, "unknown auto_pad '%s'",
				   ap);

	for (int i = 0; i < nsp; i++) {
		int64_t ext, num, o;
		if (kernel[i] < 1 || strides[i] < 1 || dil[i] < 1 ||
		    pads[i] < 0 || pads[i + nsp] < 0)
			return lm_ops_fail(e, g, n, -EINVAL, "kernel %lld, "
					   "stride %lld, dilation %lld, pads "
					   "%lld+%lld on spatial axis %d are "
					   "not valid",
					   (long long)kernel[i],
					   (long long)strides[i],
					   (long long)dil[i],
					   (long long)pads[i],
					   (long long)pads[i + nsp], i);
		/* Extent of the dilated kernel: (k - 1) * d + 1. */
		if (ovf_mul(kernel[i] - 1, dil[i], &ext) ||
		    ovf_add(ext, 1, &ext))
			goto overflow;
		if (same) {
			/* SAME_*: ceil(in / stride), padding as needed. */
			out[i] = in[i] / strides[i] +
				 (in[i] % strides[i] != 0);
			continue;
		}
		int64_t pb = valid ? 0 : pads[i];
		int64_t pe = valid ? 0 : pads[i + nsp];
		if (ovf_add(in[i], pb, &num) || ovf_add(num, pe, &num) ||
		    ovf_sub(num, ext, &num))
			goto overflow;
		if (num < 0)
			return lm_ops_fail(e, g, n, -EINVAL, "kernel extent "
					   "%lld does not fit spatial axis %d "
					   "of size %lld with pads %lld+%lld",
					   (long long)ext, i, (long long)in[i],
					   (long long)pb, (long long)pe);
		o = num / strides[i] + 1;
		if (ceil_mode && num % strides[i] != 0) {
			o++;
			/* A window may not start in the end padding: such a
			 * window would see no input at all. */
			int64_t start;
			if (ovf_mul(o - 1, strides[i], &start) ||
			    start >= in[i] + pb)
				o--;
		}
		out[i] = o;
	}
	return 0;
overflow:
	return lm_ops_fail(e, g, n, -EOVERFLOW, "window attributes overflow");
}

void *lm_kernel_new_state(lm_graph *g, const lm_node *n, lm_kernel *k,
			  size_t bytes, lm_error *e)
{
	void *s = calloc(1, bytes);

	if (!s) {
		lm_ops_fail(e, g, n, -ENOMEM, "out of memory");
		return NULL;
	}
	k->state = s;
	k->free_state = free;
	k->state_bytes = bytes;
	return s;
}
