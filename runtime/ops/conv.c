/*
 * conv.c: the convolution family (Conv, ConvTranspose): output shapes per
 * the ONNX spec, FLOP counts, and prepare, which checks what the kernels
 * need, resolves auto_pad into explicit pads and picks the kernel
 * (runtime/kernels/).  Both head a layer.
 *
 * Layouts: X is (N, C, D1..Dk); Conv's W is (M, C/group, k1..kk) and
 * ConvTranspose's W is (C, M/group, k1..kk); the optional bias B is (M).
 * The kernels run one and two spatial axes (1-D as 2-D with H = 1).
 */
#include "ops.h"
#include "../kernels/kernels.h"
#include "../kernels/prep.h"

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

/* ---- prepare ---- */

/* Everything prepare needs of either op: conv_args on the node without
 * its fused sum input, the types, the attributes as 2-D values. */
struct conv_prep {
	struct conv_args a;
	lm_value *y;
	lm_epilogue ep;
	int64_t in[2], out[2], kernel[2], strides[2], dil[2], pads[4];
};

static int conv_prep(lm_graph *g, lm_node *n, struct conv_prep *p,
		     lm_error *e)
{
	int nm, rc;

	if ((rc = lm_prep_epilogue(g, n, &p->ep, &nm, e)))
		return rc;
	lm_node own = *n;
	own.n_inputs = nm;
	if ((rc = conv_args(g, &own, &p->a, e)))
		return rc;
	p->y = lm_node_out(g, n, 0);
	if (!p->y)
		return lm_ops_fail(e, g, n, -EINVAL, "output is missing");
	if ((rc = lm_prep_float(g, n, p->a.x, e)) ||
	    (rc = lm_prep_float(g, n, p->a.w, e)) ||
	    (rc = lm_prep_float(g, n, p->a.b, e)) ||
	    (rc = lm_prep_float(g, n, p->y, e)))
		return rc;
	int nsp = p->a.nsp;
	if (nsp > 2)
		return lm_ops_fail(e, g, n, -ENOTSUP, "%d-D convolution is "
				   "not supported (1-D and 2-D are)", nsp);
	int64_t st[2], dl[2], pd[4];
	if ((rc = lm_ops_attr_ints(g, n, "strides", st, nsp, 1, e)) < 0 ||
	    (rc = lm_ops_attr_ints(g, n, "dilations", dl, nsp, 1, e)) < 0)
		return rc;
	if ((rc = lm_prep_pads(g, n, nsp, p->a.x->dims + 2, p->a.kernel, st,
			       dl, p->y->dims + 2, pd, e)))
		return rc;
	/* 1-D: a 2-D problem with one row. */
	int o = 2 - nsp;
	for (int i = 0; i < 2; i++) {
		p->in[i] = i < o ? 1 : p->a.x->dims[2 + i - o];
		p->out[i] = i < o ? 1 : p->y->dims[2 + i - o];
		p->kernel[i] = i < o ? 1 : p->a.kernel[i - o];
		p->strides[i] = i < o ? 1 : st[i - o];
		p->dil[i] = i < o ? 1 : dl[i - o];
		p->pads[i] = i < o ? 0 : pd[i - o];
		p->pads[i + 2] = i < o ? 0 : pd[nsp + i - o];
	}
	return 0;
}

/* The constant weight's data, NULL when W is computed at run time. */
static const float *const_weight(lm_graph *g, lm_node *n, lm_error *e,
				 int *rc)
{
	lm_value *w = lm_node_in(g, n, 1);
	const float *d;

	*rc = 0;
	if (!lm_value_is_const(w))
		return NULL;
	d = lm_ops_fold_in(g, n, 1, e);
	if (!d)
		*rc = -EINVAL;
	return d;
}

/* The depthwise variant named after "depthwise" in a pin, or -1. */
static int dw_variant(const char *v)
{
	if (!v[0])
		return LM_DW_AUTO;
	if (!strcmp(v, "-rows"))
		return LM_DW_ROWS;
	if (!strcmp(v, "-blocked"))
		return LM_DW_BLOCKED;
	if (!strcmp(v, "-generic"))
		return LM_DW_GENERIC;
	return -1;
}

/*
 * Pick the kernel: depthwise convs run direct; with a constant weight,
 * grouped convs of 16 to 64 channels a group and stems of as many
 * grouped.c's on AVX-512, other stems and grouped convs the direct
 * kernel (any instruction set); 1x1
 * convs on one pixel a matrix-vector product; with AVX-512 and a constant
 * weight, Winograd where lm_winograd_choose says it pays, the
 * transposed GEMM for 1x1 convs on few pixels and the packed GEMM
 * elsewhere; OpenBLAS otherwise.  "lm.impl" (openblas, sgemm, sgemm-t,
 * winograd2, winograd4, direct, grouped, depthwise, depthwise-rows,
 * depthwise-blocked, depthwise-generic) pins one, failing when it cannot
 * run this conv.
 */
static int conv_prepare(lm_graph *g, lm_node *n, lm_kernel *k, lm_error *e)
{
	struct conv_prep p;
	int rc;

	if ((rc = conv_prep(g, n, &p, e)))
		return rc;
	const float *w = const_weight(g, n, e, &rc);
	if (rc)
		return rc;
	struct lm_conv_desc d = {
		.n = p.a.x->dims[0], .c = p.a.x->dims[1],
		.h = p.in[0], .w = p.in[1],
		.m = p.y->dims[1], .oh = p.out[0], .ow = p.out[1],
		.kh = p.kernel[0], .kw = p.kernel[1],
		.sh = p.strides[0], .sw = p.strides[1],
		.dh = p.dil[0], .dw = p.dil[1],
		.pt = p.pads[0], .pl = p.pads[1],
		.pb = p.pads[2], .pr = p.pads[3],
		.group = p.a.group, .has_bias = p.a.b != NULL, .ep = p.ep,
	};
	int fast = w && lm_have_avx512();
	const char *pin = lm_prep_impl(n);
	enum lm_conv_impl impl;
	int tile = 0, dw = LM_DW_AUTO;

	if (!pin[0]) {
		if (lm_depthwise_fits(&d))
			impl = LM_CONV_DEPTHWISE;
		else if (w && lm_grouped_wins(&d))
			impl = LM_CONV_GROUPED;
		else if (w && lm_direct_wins(&d))
			impl = LM_CONV_DIRECT;
		else if (lm_conv_gemv_wins(&d))
			impl = LM_CONV_OPENBLAS;
		else if (fast && (tile = lm_winograd_choose(&d)))
			impl = tile == 4 ? LM_CONV_WINO4 : LM_CONV_WINO2;
		else if (fast && lm_conv_gemm_t_wins(&d))
			impl = LM_CONV_SGEMM_T;
		else
			impl = fast ? LM_CONV_SGEMM : LM_CONV_OPENBLAS;
	} else if (!strcmp(pin, "openblas")) {
		impl = LM_CONV_OPENBLAS;
	} else if (!strcmp(pin, "sgemm") && fast) {
		impl = LM_CONV_SGEMM;
	} else if (!strcmp(pin, "sgemm-t") && fast &&
		   lm_conv_gemm_t_fits(&d)) {
		impl = LM_CONV_SGEMM_T;
	} else if (!strncmp(pin, "winograd", 8) && fast &&
		   lm_winograd_fits(&d) &&
		   (!strcmp(pin + 8, "2") || !strcmp(pin + 8, "4"))) {
		impl = pin[8] == '4' ? LM_CONV_WINO4 : LM_CONV_WINO2;
	} else if (!strcmp(pin, "direct") && w && lm_direct_fits(&d)) {
		impl = LM_CONV_DIRECT;
	} else if (!strcmp(pin, "grouped") && w && lm_grouped_fits(&d)) {
		impl = LM_CONV_GROUPED;
	} else if (!strncmp(pin, "depthwise", 9) && lm_depthwise_fits(&d) &&
		   (dw = dw_variant(pin + 9)) >= 0) {
		impl = LM_CONV_DEPTHWISE;
	} else {
		return lm_ops_fail(e, g, n, -ENOTSUP, "implementation '%s' "
				   "cannot run this convolution", pin);
	}

	switch (impl) {
	case LM_CONV_DEPTHWISE:
		rc = lm_depthwise_prepare(&d, w, (enum lm_dw_variant)dw, k);
		if (rc == -ENOTSUP)
			return lm_ops_fail(e, g, n, rc, "implementation '%s' "
					   "cannot run this convolution", pin);
		break;
	case LM_CONV_DIRECT:
		rc = lm_direct_prepare(&d, w, k);
		break;
	case LM_CONV_GROUPED:
		rc = lm_grouped_prepare(&d, w, k);
		break;
	case LM_CONV_WINO2:
	case LM_CONV_WINO4:
		rc = lm_winograd_prepare(&d, w, impl == LM_CONV_WINO4 ? 4 : 2,
					 k);
		break;
	default:
		rc = lm_conv_gemm_prepare(&d, w, impl, k);
		break;
	}
	if (rc)
		return lm_ops_fail(e, g, n, rc, "out of memory for the "
				   "kernel's packed weights");
	return 0;
}

/*
 * ConvTranspose's begin pads: given, or generated when output_shape or
 * SAME_* fixes the output size.  Per the ONNX spec, total padding is
 * stride * (in - 1) + output_padding + ((k - 1) * dilation + 1) - out;
 * SAME_UPPER puts the smaller half first, anything else the larger.
 */
static int convt_prepare(lm_graph *g, lm_node *n, lm_kernel *k, lm_error *e)
{
	struct conv_args a;
	lm_epilogue ep;
	int64_t st[2], dl[2], opad[2], pads[4];
	int nm, rc;

	if ((rc = lm_prep_epilogue(g, n, &ep, &nm, e)))
		return rc;
	lm_node own = *n;
	own.n_inputs = nm;
	if ((rc = conv_args(g, &own, &a, e)))
		return rc;
	lm_value *y = lm_node_out(g, n, 0);
	if (!y)
		return lm_ops_fail(e, g, n, -EINVAL, "output is missing");
	if ((rc = lm_prep_float(g, n, a.x, e)) ||
	    (rc = lm_prep_float(g, n, a.w, e)) ||
	    (rc = lm_prep_float(g, n, a.b, e)) ||
	    (rc = lm_prep_float(g, n, y, e)))
		return rc;
	int nsp = a.nsp;
	if (nsp > 2)
		return lm_ops_fail(e, g, n, -ENOTSUP, "%d-D ConvTranspose is "
				   "not supported (1-D and 2-D are)", nsp);
	if ((rc = lm_ops_attr_ints(g, n, "strides", st, nsp, 1, e)) < 0 ||
	    (rc = lm_ops_attr_ints(g, n, "dilations", dl, nsp, 1, e)) < 0 ||
	    (rc = lm_ops_attr_ints(g, n, "output_padding", opad, nsp, 0,
				   e)) < 0 ||
	    (rc = lm_ops_attr_ints(g, n, "pads", pads, 2 * nsp, 0, e)) < 0)
		return rc;
	const char *ap = lm_attr_str(n, "auto_pad", "NOTSET");
	int same = !strcmp(ap, "SAME_UPPER") || !strcmp(ap, "SAME_LOWER");
	int have_os = lm_node_attr(n, "output_shape") != NULL;
	for (int i = 0; i < nsp; i++) {
		if (!strcmp(ap, "VALID")) {
			pads[i] = 0;
		} else if (same || have_os) {
			int64_t total = st[i] * (a.x->dims[2 + i] - 1) +
					opad[i] + (a.kernel[i] - 1) * dl[i] +
					1 - y->dims[2 + i];
			pads[i] = !strcmp(ap, "SAME_UPPER") ? total / 2
				  : total - total / 2;
		}
	}
	int o = 2 - nsp;
	struct lm_convt_desc d = {
		.n = a.x->dims[0], .c = a.x->dims[1],
		.h = o ? 1 : a.x->dims[2], .w = a.x->dims[3 - o],
		.m = y->dims[1], .oh = o ? 1 : y->dims[2],
		.ow = y->dims[3 - o],
		.kh = o ? 1 : a.kernel[0], .kw = a.kernel[1 - o],
		.sh = o ? 1 : st[0], .sw = st[1 - o],
		.dh = o ? 1 : dl[0], .dw = dl[1 - o],
		.pt = o ? 0 : pads[0], .pl = pads[1 - o],
		.group = a.group, .has_bias = a.b != NULL, .ep = ep,
	};
	if ((rc = lm_convt_prepare(&d, k)))
		return lm_ops_fail(e, g, n, rc, "out of memory");
	return 0;
}

static const lm_op ops[] = {
	{ "Conv", LM_OP_COMPUTE, conv_infer, NULL, conv_flops, conv_prepare },
	{ "ConvTranspose", LM_OP_COMPUTE, convt_infer, NULL, convt_flops,
	  convt_prepare },
};

const struct lm_ops_family lm_ops_conv = { ops, ARRAY_SIZE(ops) };
