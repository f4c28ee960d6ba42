/*
 * npy.h: NumPy .npy files, the tensor format of lamina's command line
 * (format 1.0-3.0 read, 1.0 written; little-endian, C order, fixed-size
 * element types).  Only npy.c reads or writes them.
 */
#ifndef LAMINA_NPY_H
#define LAMINA_NPY_H

#include "lamina/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Read an .npy file into a newly allocated tensor (free with
 * lm_tensor_free).  Every header field and the file size are checked
 * before use.
 * @return 0; -ENOENT/-EACCES; -EINVAL naming what is wrong (not .npy, a
 *         type or order lamina does not read, a shape whose bytes do not
 *         fit memory, data shorter or longer than the shape); -ENOMEM.
 */
int lm_npy_read(const char *path, lm_tensor *t, lm_error *e);

/** Write a contiguous tensor as .npy (format 1.0).  0, -EINVAL, -EIO. */
int lm_npy_write(const char *path, const lm_tensor *t, lm_error *e);

#ifdef __cplusplus
}
#endif

#endif
