/*
 * fuse.h: graph rewrites made before kernels are prepared (private to
 * runtime/; see fuse.c).  lm_fuse itself is public (lamina/runtime.h):
 * the slicer asks it which tensors fusion makes internal.
 */
#ifndef LAMINA_FUSE_H
#define LAMINA_FUSE_H

#include "lamina/graph.h"
#include "lamina/runtime.h"

#endif
