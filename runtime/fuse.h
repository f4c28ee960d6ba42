/*
 * fuse.h: graph rewrites made before kernels are prepared (private to
 * runtime/; see fuse.c).
 */
#ifndef LAMINA_FUSE_H
#define LAMINA_FUSE_H

#include "lamina/graph.h"

/**
 * Fold BatchNormalization and zero Pad into convolutions, and residual Adds
 * and activations into the epilogue of Conv, ConvTranspose, Gemm and MatMul.
 * Returns the number of rewrites, or a negative code.
 */
int lm_fuse(lm_graph *g, lm_error *e);

#endif
