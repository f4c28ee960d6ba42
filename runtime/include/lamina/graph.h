/*
 * graph.h: lamina's graph IR, the data model every other part reads.
 *
 * A graph is a list of values (named tensors: graph inputs, initializers,
 * folded constants and node outputs) and a list of nodes kept in one
 * topological order.  Nodes refer to values by index.  The IR knows nothing
 * of protobuf: the ONNX reader in slicer/ builds it, and may attach a loader
 * so that large initializer data is read only when someone asks for it.
 *
 * Shapes are static: rank -1 means unknown rank, a dim of -1 an unknown dim.
 * Symbolic dim names from the source are kept in dim_param for messages.
 */
#ifndef LAMINA_GRAPH_H
#define LAMINA_GRAPH_H

#include "lamina/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum lm_value_kind {
	LM_VAL_INPUT,       /**< graph input fed at run time */
	LM_VAL_INITIALIZER, /**< constant from the model file (weights) */
	LM_VAL_CONSTANT,    /**< constant made by folding or a Constant node */
	LM_VAL_NODE,        /**< output of a node */
} lm_value_kind;

typedef struct lm_value {
	char *name;
	lm_value_kind kind;
	lm_dtype dtype;
	int rank;                       /**< -1: unknown */
	int64_t dims[LM_MAX_RANK];      /**< -1: unknown dim */
	char *dim_param[LM_MAX_RANK];   /**< symbolic dim names, or NULL */
	int producer;                   /**< node index for LM_VAL_NODE, else -1 */
	int is_output;                  /**< listed among the graph outputs */
	/* Constant contents (initializers and constants).  For initializers
	 * data may be NULL until lm_graph_value_data() loads it; nbytes is
	 * known from the start. */
	void *data;
	size_t nbytes;
	uint32_t src;                   /**< loader's handle for lazy data */
	/* Consumers, filled by lm_graph_index(). */
	int *consumers;                 /**< node indices, one per use */
	int n_consumers;
} lm_value;

/** Attribute types; the values are ONNX's AttributeProto.AttributeType. */
typedef enum lm_attr_type {
	LM_ATTR_UNDEFINED = 0,
	LM_ATTR_FLOAT = 1,
	LM_ATTR_INT = 2,
	LM_ATTR_STRING = 3,
	LM_ATTR_TENSOR = 4,
	LM_ATTR_GRAPH = 5,
	LM_ATTR_FLOATS = 6,
	LM_ATTR_INTS = 7,
	LM_ATTR_STRINGS = 8,
	LM_ATTR_TENSORS = 9,
	LM_ATTR_GRAPHS = 10,
	LM_ATTR_SPARSE_TENSOR = 11,
	LM_ATTR_SPARSE_TENSORS = 12,
	LM_ATTR_TYPE_PROTO = 13,
	LM_ATTR_TYPE_PROTOS = 14,
} lm_attr_type;

/*
 * An attribute.  Scalar kinds use f, i or s; list kinds use floats, ints
 * or strings with n entries; LM_ATTR_TENSOR uses t.  Graph and sparse kinds
 * are recorded by type only: the IR does not interpret them, and nodes are
 * written back to ONNX from their original form, so nothing is lost.
 */
typedef struct lm_attr {
	char *name;
	lm_attr_type type;
	float f;
	int64_t i;
	char *s;
	float *floats;
	int64_t *ints;
	char **strings;
	int n;
	lm_tensor *t;
} lm_attr;

typedef struct lm_node {
	char *name;
	char *op_type;
	char *domain;                   /**< "" for the default ONNX domain */
	int *inputs;                    /**< value indices; -1: omitted optional */
	int n_inputs;
	int *outputs;                   /**< value indices; -1: omitted optional */
	int n_outputs;
	lm_attr *attrs;
	int n_attrs;
	const void *src;                /**< the loader's original node, opaque */
} lm_node;

struct lm_graph;

/**
 * Loads an initializer's data on demand.  Must set v->data (malloc'd, owned
 * by the graph afterwards) and return 0, or return a negative code and fill e.
 */
typedef int (*lm_data_loader)(void *ctx, struct lm_graph *g, lm_value *v,
			      lm_error *e);

typedef struct lm_graph {
	char *name;
	lm_value *values;
	int n_values;
	int cap_values;
	lm_node *nodes;                 /**< in topological order */
	int n_nodes;
	int cap_nodes;
	int *inputs;                    /**< graph inputs (LM_VAL_INPUT values) */
	int n_inputs;
	int *outputs;
	int n_outputs;
	int64_t opset;                  /**< opset of the default domain */
	int64_t ir_version;
	lm_data_loader loader;
	void *loader_ctx;
	void *name_index;               /**< tsearch root: name -> value */
} lm_graph;

/** Create an empty graph.  Returns NULL when out of memory. */
lm_graph *lm_graph_create(const char *name);

/** Free a graph and everything it owns; safe on NULL. */
void lm_graph_free(lm_graph *g);

/**
 * Add a value with the given name and kind (shape unknown).  Returns its
 * index, -EEXIST when the name is taken, -ENOMEM.
 */
int lm_graph_add_value(lm_graph *g, const char *name, lm_value_kind kind,
		       lm_error *e);

/** Index of the value with this name, or -1. */
int lm_graph_find(const lm_graph *g, const char *name);

/**
 * Append a node.  Input and output names are resolved (an empty name is an
 * omitted optional); outputs are created as LM_VAL_NODE values.  Inputs
 * must already exist.  Returns the node index or a negative code.
 */
int lm_graph_add_node(lm_graph *g, const char *name, const char *op_type,
		      const char *domain, const char *const *inputs,
		      int n_inputs, const char *const *outputs, int n_outputs,
		      lm_error *e);

/** Add an attribute to a node; returns it (zeroed but for name), or NULL. */
lm_attr *lm_node_add_attr(lm_node *n, const char *name, lm_attr_type type);

/**
 * Move src's nodes and constants to the end of dst, joining them by tensor
 * name: a graph input of src that dst already has (made by a node, or an
 * input) reads that tensor; any other input of src becomes a graph input of
 * dst.  Constants are loaded and their data moved; attributes are moved.
 * Graph outputs are left to the caller.  src is spent: free it afterwards.
 * Both graphs must be prepared (shapes known); dst's nodes stay in
 * topological order when src's were.  This joins consecutive slices of one
 * model into one graph, so that one session (one arena, fusion across the
 * seams) runs them.
 * @return 0; -EEXIST naming a tensor both graphs make; -EINVAL naming an
 *         input whose type or shape differs from dst's; -ENOMEM.
 */
int lm_graph_absorb(lm_graph *dst, lm_graph *src, lm_error *e);

/** Mark a value as a graph input/output (appending to the lists). */
int lm_graph_add_input(lm_graph *g, int value);
int lm_graph_add_output(lm_graph *g, int value);

/**
 * Put the nodes into topological order, keeping the existing order where it
 * is already valid, and rebuild producers and consumers.
 * Returns 0, or -ELOOP naming a node on a cycle, or -EINVAL naming a node
 * input that nothing produces.
 */
int lm_graph_sort(lm_graph *g, lm_error *e);

/** Rebuild producer and consumer lists after nodes were added or removed. */
int lm_graph_index(lm_graph *g);

/**
 * Remove the nodes whose flag in `dead` is set (array of n_nodes), keep the
 * order of the rest, drop values nothing refers to any more, and reindex.
 */
int lm_graph_remove_nodes(lm_graph *g, const uint8_t *dead, lm_error *e);

/**
 * Data of a constant value (initializer or constant), loading it through
 * the graph's loader when needed.  Returns NULL and fills e on failure or
 * when the value is not constant.
 */
const void *lm_graph_value_data(lm_graph *g, lm_value *v, lm_error *e);

/** True when the value's contents are known before run time. */
static inline int lm_value_is_const(const lm_value *v)
{
	return v->kind == LM_VAL_INITIALIZER || v->kind == LM_VAL_CONSTANT;
}

/** True when rank and every dim are known. */
int lm_value_shape_known(const lm_value *v);

/** Bytes of the value's tensor when its shape and type are known, else 0. */
size_t lm_value_bytes(const lm_value *v);

/** Set a value's type and shape (clears symbolic names). */
void lm_value_set_shape(lm_value *v, lm_dtype dtype, int rank,
			const int64_t *dims);

/** Describe the value as a tensor (no data copy; data may be NULL). */
void lm_value_as_tensor(const lm_value *v, lm_tensor *t);

/* ---- attribute access (for shape functions and kernels) ---- */

/** The attribute with this name, or NULL. */
const lm_attr *lm_node_attr(const lm_node *n, const char *name);
int64_t lm_attr_int(const lm_node *n, const char *name, int64_t dflt);
float lm_attr_float(const lm_node *n, const char *name, float dflt);
/** String attribute or dflt. */
const char *lm_attr_str(const lm_node *n, const char *name, const char *dflt);
/** Int list: count in *count (0 when absent), pointer to the values. */
const int64_t *lm_attr_ints(const lm_node *n, const char *name, int *count);

/** Input/output value of a node, or NULL when omitted or out of range. */
lm_value *lm_node_in(lm_graph *g, const lm_node *n, int i);
lm_value *lm_node_out(lm_graph *g, const lm_node *n, int i);

/* ---- operators ---- */

/** Operator properties used to group nodes into layers. */
enum {
	LM_OP_COMPUTE = 1u << 0,     /**< heads a layer (Conv, Gemm, pooling) */
	LM_OP_ELEMENTWISE = 1u << 1, /**< joins the layer of its producer */
	LM_OP_RESHAPE = 1u << 2,     /**< moves no data; joins its producer */
};

/*
 * One entry of the operator table.  `infer` sets the node's output types
 * and shapes from its inputs and attributes (constant inputs may be read
 * with lm_graph_value_data); it returns 0 or a negative code with a message
 * naming the node.  `fold` computes the outputs of a node whose inputs are
 * all constant (used for shape subgraphs), allocating each output's data;
 * NULL when the op cannot be folded.  `flops` counts floating-point work
 * (a multiply-add is 2).  `prepare` readies the node for execution.
 */
struct lm_kernel;

typedef struct lm_op {
	const char *name;
	unsigned flags;
	int (*infer)(lm_graph *g, lm_node *n, lm_error *e);
	int (*fold)(lm_graph *g, lm_node *n, lm_error *e);
	double (*flops)(lm_graph *g, const lm_node *n);
	/* Choose and set up the kernel that executes the node (see
	 * runtime/ops/kernel.h); NULL when the runtime cannot run the op. */
	int (*prepare)(lm_graph *g, lm_node *n, struct lm_kernel *k,
		       lm_error *e);
} lm_op;

/** Table entry for an op in the default domain, or NULL when unknown. */
const lm_op *lm_op_find(const char *domain, const char *op_type);

/**
 * Infer the types and shapes of every node output, in order.  Outputs whose
 * shapes the file already declared keep them when the op is unknown.
 * Fails naming the first node whose output shapes cannot be known.
 */
int lm_graph_infer_shapes(lm_graph *g, lm_error *e);

/**
 * Fold constant subgraphs: Constant nodes, Shape of a known shape, and any
 * node with an evaluator whose inputs are all constant and whose outputs are
 * small (shape arithmetic), then drop what no longer feeds anything.
 * Returns the number of nodes removed, or a negative code.
 */
int lm_graph_fold_constants(lm_graph *g, lm_error *e);

/** Floating-point operations of a node (0 when the op is unknown). */
double lm_node_flops(lm_graph *g, const lm_node *n);

/**
 * Read an int64 or int32 constant input as int64 values.  Returns the
 * element count (<= max), -ENODATA when the value is not constant, -EINVAL.
 */
int lm_value_read_ints(lm_graph *g, lm_value *v, int64_t *out, int max,
		       lm_error *e);

#ifdef __cplusplus
}
#endif

#endif
