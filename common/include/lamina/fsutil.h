/*
 * fsutil.h: files and folders as lamina's programs make and remove them:
 * whole files replaced atomically under a name no other writer uses,
 * folders made with their parents, trees removed without following
 * symlinks, and the checks that keep a path named by a file or a message
 * inside the folder it belongs to.
 */
#ifndef LAMINA_FSUTIL_H
#define LAMINA_FSUTIL_H

#include <stddef.h>
#include <sys/types.h>

#include "lamina/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Replace path with len bytes of data: written to a temporary file beside
 * it with a name unique to this call (mkstemp), flushed, given mode, then
 * renamed over path; two writers never share a temporary file.
 * @return 0; -errno naming the file.
 */
int lm_write_atomic(const char *path, const void *data, size_t len,
		    mode_t mode, lm_error *e);

/**
 * Read a whole small file (at most max bytes) into a malloc'd,
 * NUL-terminated buffer.
 * @return 0; -errno; -EFBIG when it is longer than max.
 */
int lm_read_file(const char *path, size_t max, char **out, size_t *len,
		 lm_error *e);

/** mkdir -p with mode for every folder made.  0 or -errno. */
int lm_mkdirs(const char *path, mode_t mode);

/** Remove a folder and everything below it, not following symlinks;
 *  0 or -errno. */
int lm_remove_tree(const char *path);

/**
 * Whether name is a plain file name: not empty, no '/', not "." or "..",
 * no control characters, at most 255 bytes.  1 or 0.
 */
int lm_name_ok(const char *name);

/**
 * Whether path names an entry directly inside folder dir, spelled
 * "DIR/NAME" with lm_name_ok(NAME): a purely lexical check, made before a
 * path taken from a file is opened or removed.  1 or 0.
 */
int lm_path_in(const char *dir, const char *path);

#ifdef __cplusplus
}
#endif

#endif
