/*
 * batch.h: where the batch lies in every tensor of a graph.
 *
 * The batch is not always axis 0.  A sequence-first transformer takes
 * [seq, batch, d]; torch's attention moves it with Transposes and merges
 * it with the heads ([seq, batch*heads, d/heads]); a Flatten folds the
 * rest of a sample into it; weights, shapes and other constants have none.
 * lm_batch_find follows the batch from the graph inputs through every node
 * in order, each operator moving it by its own rule, and stops at the
 * first node after which samples are no longer apart: a MatMul contracting
 * the batch, a Softmax or reduction over it, a Reshape that cuts across
 * samples, a constant broadcast along it (a literal batch in the model).
 * Such a model runs at its own batch only.
 *
 * A tensor's batch is an axis and two factors: dims[axis] = outer * batch
 * * inner, in row-major order ([batch*heads, ...] has inner = heads,
 * [seq*batch, d] outer = seq; a plain batch axis has 1 and 1).  Only the
 * batch's extent changes between batch sizes; the factors do not.
 *
 * At batch 1 a Reshape may place the batch on more than one axis ([16, 64]
 * from [16, 1, 64] holds it in either): candidates are ranked (an axis of
 * its own, then the outer part of an axis, then the inner) and, when a later
 * node finds samples mixed, the latest such choice upstream is tried
 * again with its next candidate.  At batch 2 and above every placement is
 * unique.
 *
 * lm_batch_literals then rewrites each Reshape whose constant target holds
 * the batch as a literal (torch folds x.size(0) into one when a model is
 * exported at a fixed batch, and lamina's folding does the same to a
 * dynamic model) into the form ONNX infers at any batch: the target's
 * other dims as they are and -1 on the batch axis.  The graph computes the
 * same at its own batch and follows any other.
 */
#ifndef LAMINA_BATCH_H
#define LAMINA_BATCH_H

#include "lamina/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Where a tensor holds the batch: dims[axis] = outer * batch * inner. */
typedef struct lm_batch_pos {
	int axis;              /**< -1: the tensor does not hold the batch */
	int64_t outer, inner;  /**< factors of that axis around the batch */
} lm_batch_pos;

/** The batch of every value of one graph (by value index). */
typedef struct lm_batch {
	int64_t size;      /**< the batch the graph's shapes are at */
	int n;             /**< values covered: later ones hold no batch */
	lm_batch_pos *pos; /**< n entries */
	/** First node after which samples mix, n_nodes when a graph output
	 *  holds no batch, -1 when the graph follows any batch. */
	int stop;
	char why[320];     /**< when stop >= 0: "node 'x' (Op) ..." */
} lm_batch;

/** The position of no batch. */
static inline lm_batch_pos lm_batch_none(void)
{
	return (lm_batch_pos){ -1, 1, 1 };
}

/** Value v's batch (none for values the map does not cover). */
static inline lm_batch_pos lm_batch_of(const lm_batch *b, int v)
{
	return v >= 0 && v < b->n ? b->pos[v] : lm_batch_none();
}

/**
 * Follow the batch through a graph whose shapes are inferred at batch
 * `size` (>= 1), from the positions of its inputs (inputs[i] for graph
 * input i; axis -1 for an input without batch).  Fills out (clear it with
 * lm_batch_clear); a model whose samples mix is not an error: out->stop
 * names the node and out->why says what it does.
 * @return 0; -EINVAL when an input position does not fit its shape;
 *         -ENOMEM.
 */
int lm_batch_find(lm_graph *g, int64_t size, const lm_batch_pos *inputs,
		  lm_batch *out, lm_error *e);

/**
 * The batch of a graph whose inputs declare none (every dim a number):
 * the same axis of every input, the first (0, 1, ...) along which samples
 * stay apart to every graph output; axis 0 when none does (out->stop then
 * says why).  out->size is that axis's dim (1, and out->n 0, when no
 * input has a dim).
 * @return 0, -ENOMEM.
 */
int lm_batch_guess(lm_graph *g, lm_batch *out, lm_error *e);

/**
 * Rewrite the constant target of every Reshape that holds the batch as a
 * literal to the target ONNX infers at any batch: its dims at b->size and
 * -1 on the batch axis.  A target other nodes also read is copied first.
 * Nothing changes at b->size.  Returns how many were rewritten, or
 * -ENOMEM.  Call only when b->stop < 0.
 */
int lm_batch_literals(lm_graph *g, const lm_batch *b, lm_error *e);

/** Free what lm_batch_find filled; safe on a zeroed lm_batch. */
void lm_batch_clear(lm_batch *b);

/**
 * The ONNX dim_param of a batch axis with these factors: "batch",
 * "batch*4", "16*batch", "2*batch*3" (name for "batch"), into buf.
 */
const char *lm_batch_dim_name(const char *name, int64_t outer,
			      int64_t inner, char *buf, size_t len);

/**
 * Parse a dim_param written by lm_batch_dim_name: the name between any
 * numeric factors.  Returns 0 with name (into buf), outer and inner set;
 * -EINVAL when the text is not of that form.
 */
int lm_batch_dim_parse(const char *text, char *name, size_t len,
		       int64_t *outer, int64_t *inner);

#ifdef __cplusplus
}
#endif

#endif
