/*
 * ops.h: private header of the operator table.  Shared by the op families
 * (conv.c, gemm.c, pool.c, elementwise.c, norm.c, shape_ops.c), table.c,
 * shape.c and fold.c; nothing outside runtime/ includes it.
 *
 * Every family exports one lm_ops_family listing its table entries; table.c
 * strings the families together for lm_op_find().  The helpers below (all
 * defined in table.c) do the checking every shape function needs, so that
 * each one reads as the ONNX rule it implements: count inputs, fetch them
 * with known shapes, read and bounds-check attributes and constant inputs,
 * broadcast, and set outputs.  Any of them that fails has already written
 * the one-line message "node 'n' (Op): problem" and returns a negative code
 * that the caller passes straight up.
 *
 * Graphs come from untrusted files: no helper trusts a count, an axis, a
 * length or a product of dims it has not checked.
 */
#ifndef LAMINA_OPS_H
#define LAMINA_OPS_H

#include "lamina/graph.h"

#include <errno.h>
#include <stdint.h>

#define ARRAY_SIZE(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* Newest default-domain opset whose semantics the table follows; a graph
 * that declares no opset (g->opset 0, as built by hand) gets these. */
#define LM_OPS_OPSET_MAX 21

/* Outputs up to this size are computed at fold time; larger ones (a
 * transposed weight, say) stay as nodes so the model does not grow. */
#define LM_OPS_FOLD_MAX_BYTES (64 * 1024)

/* One family's entries of the operator table. */
struct lm_ops_family {
	const lm_op *ops;
	int n;
};

extern const struct lm_ops_family lm_ops_conv;        /* conv.c */
extern const struct lm_ops_family lm_ops_gemm;        /* gemm.c */
extern const struct lm_ops_family lm_ops_pool;        /* pool.c */
extern const struct lm_ops_family lm_ops_elementwise; /* elementwise.c */
extern const struct lm_ops_family lm_ops_norm;        /* norm.c */
extern const struct lm_ops_family lm_ops_shape;       /* shape_ops.c */
extern const struct lm_ops_family lm_ops_fused;       /* fused.c */

static inline int64_t lm_ops_opset(const lm_graph *g)
{
	return g->opset > 0 ? g->opset : LM_OPS_OPSET_MAX;
}

/*
 * A fold function returns -EOPNOTSUPP when it cannot evaluate this node
 * (an element type it has no arithmetic for, say): fold.c then leaves the
 * node in the graph.  Any other negative code is an error in the model.
 */

/* ---- messages ---- */

/** Fill e with "node 'name' (Op): <fmt>" and return rc.  Unnamed nodes
 * are named by their first output. */
int lm_ops_fail(lm_error *e, const lm_graph *g, const lm_node *n, int rc,
		const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* ---- inputs, outputs and attributes (for infer) ---- */

/** Check the number of inputs and outputs (max -1: no limit). */
int lm_ops_arity(lm_graph *g, const lm_node *n, int min_in, int max_in,
		 int min_out, int max_out, lm_error *e);

/** Required input i, whose type and shape must be known. */
int lm_ops_in(lm_graph *g, const lm_node *n, int i, lm_value **v,
	      lm_error *e);

/** Optional input i: *v is NULL when omitted, else as lm_ops_in. */
int lm_ops_opt(lm_graph *g, const lm_node *n, int i, lm_value **v,
	       lm_error *e);

/** Set output i (nothing when omitted), checking rank, dims and size. */
int lm_ops_out(lm_graph *g, const lm_node *n, int i, lm_dtype dt, int rank,
	       const int64_t *dims, lm_error *e);

/** Give output i the type and shape of value v. */
int lm_ops_out_like(lm_graph *g, const lm_node *n, int i, const lm_value *v,
		    lm_error *e);

/**
 * Int-list attribute with exactly `want` values into out, or `want` copies
 * of dflt when absent.  Returns 1 when present, 0 when defaulted, or an
 * error (wrong length or type).
 */
int lm_ops_attr_ints(lm_graph *g, const lm_node *n, const char *name,
		     int64_t *out, int want, int64_t dflt, lm_error *e);

/**
 * Int-list attribute of at most `max` values into out.  Returns the count
 * (0 when absent) or an error.
 */
int lm_ops_attr_list(lm_graph *g, const lm_node *n, const char *name,
		     int64_t *out, int max, lm_error *e);

/** Normalise an axis in [-rank, rank-1] into *out; `what` names it. */
int lm_ops_axis(lm_graph *g, const lm_node *n, int64_t axis, int rank,
		const char *what, int *out, lm_error *e);

/**
 * Read constant integer input i (`what` names its role: "shape", "axes")
 * into out, at most max values.  Returns the count, or fails saying the
 * input is not a constant.
 */
int lm_ops_const_ints(lm_graph *g, const lm_node *n, int i, const char *what,
		      int64_t *out, int max, lm_error *e);

/** As lm_ops_const_ints for a float or double input (Resize scales). */
int lm_ops_const_floats(lm_graph *g, const lm_node *n, int i,
			const char *what, double *out, int max, lm_error *e);

/**
 * NumPy broadcast of shapes a and b into (rank, dims); fails naming both
 * shapes when they are incompatible.
 */
int lm_ops_broadcast(lm_graph *g, const lm_node *n, int ra, const int64_t *a,
		     int rb, const int64_t *b, int *rank, int64_t *dims,
		     lm_error *e);

/** Fail unless the inputs a and b have the same element type. */
int lm_ops_same_type(lm_graph *g, const lm_node *n, const lm_value *a,
		     const lm_value *b, lm_error *e);

/* Overflow-checked arithmetic on dims and attribute values: nonzero when
 * the result does not fit. */
static inline int ovf_add(int64_t a, int64_t b, int64_t *r)
{
	return __builtin_add_overflow(a, b, r);
}

static inline int ovf_sub(int64_t a, int64_t b, int64_t *r)
{
	return __builtin_sub_overflow(a, b, r);
}

static inline int ovf_mul(int64_t a, int64_t b, int64_t *r)
{
	return __builtin_mul_overflow(a, b, r);
}

/** Product of dims, or -1 when one is unknown or the product overflows. */
int64_t lm_ops_numel(int rank, const int64_t *dims);

/** Output i's element count as a double for FLOP formulas (0: unknown). */
double lm_ops_out_elems(lm_graph *g, const lm_node *n, int i);

/** Input i's element count as a double (0: omitted or unknown). */
double lm_ops_in_elems(lm_graph *g, const lm_node *n, int i);

/* ---- constant evaluation (for fold) ---- */

/**
 * Data of constant input i, checked to hold as many bytes as its shape
 * says.  Returns NULL with e filled.
 */
const void *lm_ops_fold_in(lm_graph *g, const lm_node *n, int i,
			   lm_error *e);

/**
 * Allocate output i's data (zeroed, sized from its inferred shape), hand it
 * to the value and make the value a constant.  Returns the buffer or NULL
 * with e filled.
 */
void *lm_ops_fold_out(lm_graph *g, const lm_node *n, int i, lm_error *e);

/** Fold output 0 as a byte copy of input 0 (Reshape, Identity, ...). */
int lm_ops_fold_copy(lm_graph *g, lm_node *n, lm_error *e);

/** True for the element types lm_ops_get_* and lm_ops_put_* handle. */
int lm_ops_numeric(lm_dtype t);
int lm_ops_is_float(lm_dtype t);

/* Element i of an array of type t, as double or as int64; and the
 * converse stores (float to int saturates, NaN becomes 0). */
double lm_ops_get_f(const void *p, lm_dtype t, int64_t i);
int64_t lm_ops_get_i(const void *p, lm_dtype t, int64_t i);
void lm_ops_put_f(void *p, lm_dtype t, int64_t i, double v);
void lm_ops_put_i(void *p, lm_dtype t, int64_t i, int64_t v);

/**
 * Element offset in an input of shape (irank, idims) broadcast to the
 * output shape (orank, odims), for output element idx.
 */
int64_t lm_ops_bcast_src(int orank, const int64_t *odims, int irank,
			 const int64_t *idims, int64_t idx);

/* ---- sliding windows (conv.c and pool.c) ---- */

/**
 * Spatial output size of a Conv or pooling node over nsp spatial axes:
 * reads strides, dilations, pads and auto_pad, checks them, and applies
 * ceil_mode when set.  kernel holds the kernel extent per spatial axis.
 */
int lm_ops_window(lm_graph *g, const lm_node *n, int nsp, const int64_t *in,
		  const int64_t *kernel, int ceil_mode, int64_t *out,
		  lm_error *e);

#endif
