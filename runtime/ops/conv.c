/*
 * conv.c: the convolution family (Conv, ConvTranspose): output shapes per
 * the ONNX spec and FLOP counts.  Both head a layer.
 *
 * Layouts: X is (N, C, D1..Dk); Conv's W is (M, C/group, k1..kk) and
 * ConvTranspose's W is (C, M/group, k1..kk); the optional bias B is (M).
 */
#include "ops.h"

#include <string.h>

/* Inputs shared by both ops, checked: X, W, optional B; the kernel from
 * W (and kernel_shape when given, which must agree); group. */
struct conv_args {
	lm_value *x, *w, *b;
	int nsp;
	int64_t kernel[LM_MAX_RANK];
	int64_t group;
};

static int conv_args(lm_graph *g, lm_node *n, struct conv_args *a,
		     lm_error *e)
{
	int64_t ks[LM_MAX_RANK];
	int rc;

	if ((rc = lm_ops_arity(g, n, 2, 3, 1, 1, e)) ||
	    (rc = lm_ops_in(g, n, 0, &a->x, e)) ||
	    (rc = lm_ops_in(g, n, 1, &a->w, e)) ||
	    (rc = lm_ops_opt(g, n, 2, &a->b, e)))
		return rc;
	if (a->x->rank < 3)
		return lm_ops_fail(e, g, n, -EINVAL, "input '%s' has rank %d, "
				   "expected at least 3 (N, C, spatial...)",
				   a->x->name, a->x->rank);
	if (a->w->rank != a->x->rank)
		return lm_ops_fail(e, g, n, -EINVAL, "weight '%s' has rank %d "
				   "but input '%s' has rank %d", a->w->name,
				   a->w->rank, a->x->name, a->x->rank);
	a->nsp = a->x->rank - 2;
	memcpy(a->kernel, a->w->dims + 2, (size_t)a->nsp * sizeof(int64_t));
	rc = lm_ops_attr_ints(g, n, "kernel_shape", ks, a->nsp, 0, e);
	if (rc < 0)
		return rc;
	for (int i = 0; rc && i < a->nsp; i++)
		if (ks[i] != a->kernel[i])
			return lm_ops_fail(e, g, n, -EINVAL, "kernel_shape "
					   "%lld on spatial axis %d disagrees "
					   "with weight '%s' (%lld)",
					   (long long)ks[i], i, a->w->name,
					   (long long)a->kernel[i]);
	a->group = lm_attr_int(n, "group", 1);
	if (a->group < 1)
		return lm_ops_fail(e, g, n, -EINVAL, "group %lld is not valid",
				   (long long)a->group);
	if (a->b && (a->b->rank != 1))
		return lm_ops_fail(e, g, n, -EINVAL, "bias '%s' has rank %d, "
				   "expected 1", a->b->name, a->b->rank);
	return 0;
}

static int conv_infer(lm_graph *g, lm_node *n, lm_error *e)
{
	struct conv_args a;
	int64_t dims[LM_MAX_RANK], cin;
	int rc = conv_args(g, n, &a, e);

	if (rc)
		return rc;
	int64_t m = a.w->dims[0], c = a.x->dims[1];
	if (ovf_mul(a.w->dims[1], a.group, &cin) || c != cin)
		return lm_ops_fail(e, g, n, -EINVAL, "input '%s' has %lld "
				   "channels but weight '%s' expects %lld x "
				   "group %lld", a.x->name, (long long)c,
				   a.w->name, (long long)a.w->dims[1],
				   (long long)a.group);
	if (m % a.group != 0)
		return lm_ops_fail(e, g, n, -EINVAL, "%lld output channels do "
				   "not divide into %lld groups", (long long)m,
				   (long long)a.group);
	if (a.b && a.b->dims[0] != m)
		return lm_ops_fail(e, g, n, -EINVAL, "bias '%s' has %lld "
				   "values for %lld output channels",
				   a.b->name, (long long)a.b->dims[0],
				   (long long)m);
	rc = lm_ops_window(g, n, a.nsp, a.x->dims + 2, a.kernel, 0, dims + 2,
			   e);
	if (rc)
		return rc;
	dims[0] = a.x->dims[0];
	dims[1] = m;
	return lm_ops_out(g, n, 0, a.x->dtype, a.x->rank, dims, e);
}

/* ConvTranspose output: output_shape when given; otherwise
 * stride * (in - 1) + output_padding + ((k - 1) * dilation + 1) - pads,
 * or in * stride under SAME_UPPER/SAME_LOWER. */
static int convt_infer(lm_graph *g, lm_node *n, lm_error *e)
{
	struct conv_args a;
	int64_t dims[LM_MAX_RANK], st[LM_MAX_RANK], dil[LM_MAX_RANK];
	int64_t opad[LM_MAX_RANK], pads[2 * LM_MAX_RANK], os[LM_MAX_RANK];
	int rc = conv_args(g, n, &a, e);

	if (rc)
		return rc;
	int nsp = a.nsp;
	int64_t c = a.x->dims[1], m;
	if (a.w->dims[0] != c)
		return lm_ops_fail(e, g, n, -EINVAL, "input '%s' has %lld "
				   "channels but weight '%s' expects %lld",
				   a.x->name, (long long)c, a.w->name,
				   (long long)a.w->dims[0]);
	if (c % a.group != 0)
		return lm_ops_fail(e, g, n, -EINVAL, "%lld input channels do "
				   "not divide into %lld groups", (long long)c,
				   (long long)a.group);
	if (ovf_mul(a.w->dims[1], a.group, &m))
		return lm_ops_fail(e, g, n, -EOVERFLOW, "output channels "
				   "overflow");
	if (a.b && a.b->dims[0] != m)
		return lm_ops_fail(e, g, n, -EINVAL, "bias '%s' has %lld "
				   "values for %lld output channels",
				   a.b->name, (long long)a.b->dims[0],
				   (long long)m);
	if ((rc = lm_ops_attr_ints(g, n, "strides", st, nsp, 1, e)) < 0 ||
	    (rc = lm_ops_attr_ints(g, n, "dilations", dil, nsp, 1, e)) < 0 ||
	    (rc = lm_ops_attr_ints(g, n, "output_padding", opad, nsp, 0,
				   e)) < 0 ||
	    (rc = lm_ops_attr_ints(g, n, "pads", pads, 2 * nsp, 0, e)) < 0)
		return rc;

	/* output_shape may list the spatial dims only or, as some
	 * exporters write it, N and C too. */
	int nos = lm_ops_attr_list(g, n, "output_shape", os, LM_MAX_RANK, e);
	if (nos < 0)
		return nos;
	if (nos && nos != nsp && nos != nsp + 2)
		return lm_ops_fail(e, g, n, -EINVAL, "output_shape has %d "
				   "values for %d spatial axes", nos, nsp);

	const char *ap = lm_attr_str(n, "auto_pad", "NOTSET");
	int same = strcmp(ap, "SAME_UPPER") == 0 ||
		   strcmp(ap, "SAME_LOWER") == 0;
	int valid = strcmp(ap, "VALID") == 0;
	if (!same && !valid && strcmp(ap, "NOTSET") != 0 && ap[0] != '\0')
		return lm_ops_fail(e, g, n, -EINVAL, "unknown auto_pad '%s'",
				   ap);

	for (int i = 0; i < nsp; i++) {
		int64_t in = a.x->dims[2 + i], ext, o;
		if (st[i] < 1 || dil[i] < 1 || a.kernel[i] < 1 || opad[i] < 0 ||
		    pads[i] < 0 || pads[i + nsp] < 0)
			return lm_ops_fail(e, g, n, -EINVAL, "stride, "
					   "dilation, kernel, output_padding "
					   "or pads on spatial axis %d is not "
					   "valid", i);
		if (nos) {
			o = os[nos - nsp + i];
		} else if (same) {
			if (ovf_mul(in, st[i], &o))
				goto overflow;
		} else {
			int64_t pb = valid ? 0 : pads[i];
			int64_t pe = valid ? 0 : pads[i + nsp];
			if (ovf_mul(a.kernel[i] - 1, dil[i], &ext) ||
			    ovf_mul(in - 1, st[i], &o) ||
			    ovf_add(o, opad[i], &o) || ovf_add(o, ext, &o) ||
			    ovf_add(o, 1, &o) ||
			    ovf_sub(o, pb, &o) || ovf_sub(o, pe, &o))
				goto overflow;
		}
		if (o < 1)
			return lm_ops_fail(e, g, n, -EINVAL, "spatial axis %d "
					   "would have size %lld", i,
					   (long long)o);
		dims[2 + i] = o;
	}
	dims[0] = a.x->dims[0];
	dims[1] = m;
	return lm_ops_out(g, n, 0, a.x->dtype, a.x->rank, dims, e);
overflow:
	return lm_ops_fail(e, g, n, -EOVERFLOW, "output size overflows");
}

static double prod(const int64_t *d, int k)
{
	double p = 1;
	for (int i = 0; i < k; i++)
		p *= (double)d[i];
	return p;
}

/* 2 * N * Cout * out_pixels * (Cin / group) * kernel_size, plus one add
 * per output element for the bias.  W[1] is Cin / group. */
static double conv_flops(lm_graph *g, const lm_node *n)
{
	lm_value *w = lm_node_in(g, n, 1);
	double out = lm_ops_out_elems(g, n, 0);

	if (!w || w->rank < 3 || w->rank > LM_MAX_RANK || out == 0)
		return 0;
	double f = 2.0 * out * (double)w->dims[1] * prod(w->dims + 2,
							 w->rank - 2);
	if (lm_node_in(g, n, 2))
		f += out;
	return f;
}

/* Every input pixel is scattered through the kernel into Cout / group
 * channels: 2 * N * Cin * in_pixels * (Cout / group) * kernel_size, where
 * W is (Cin, Cout / group, k...); plus the bias adds. */
static double convt_flops(lm_graph *g, const lm_node *n)
{
	lm_value *w = lm_node_in(g, n, 1);
	double in = lm_ops_in_elems(g, n, 0);

	if (!w || w->rank < 3 || w->rank > LM_MAX_RANK || in == 0)
		return 0;
	double f = 2.0 * in * (double)w->dims[1] * prod(w->dims + 2,
							w->rank - 2);
	if (lm_node_in(g, n, 2))
		f += lm_ops_out_elems(g, n, 0);
	return f;
}

static const lm_op ops[] = {
	{ "Conv", LM_OP_COMPUTE, conv_infer, NULL, conv_flops },
	{ "ConvTranspose", LM_OP_COMPUTE, convt_infer, NULL, convt_flops },
};

const struct lm_ops_family lm_ops_conv = { ops, ARRAY_SIZE(ops) };
