/*
 * store.h: laminad's store of the model files lamina ships it, the only
 * place laminad opens model files from.  Pure file handling: no EAL.
 *
 * Files are stored once each, named by their SHA-256, and given to a
 * deployment as hard links under the names its manifest uses:
 *
 *   STORE/sha256/<64 hex>            a file, complete and checked
 *   STORE/part/<64 hex>              one being received
 *   STORE/models/<deployment>/<name> links into sha256/
 *
 * STORE is STATE/laminad-<control port>.store: each laminad its own (two
 * laminads of one host may share a state folder).
 *
 * A file arrives in chunks in order (offset = what is there already); the
 * last chunk completes it, its SHA-256 is checked while it comes, and only
 * then is it moved into sha256/.  A deployment's folder is made when its
 * stages are loaded; when it goes, its folder is removed, and with it
 * every stored file no other deployment links (a stored file's link count
 * says how many deployments use it), unless it was shipped in the last
 * LM_STORE_GRACE_S seconds and no deployment took it yet (a deploy ships
 * before it loads).  The store lives and dies with its laminad: opening
 * it empties it (no deployment survives a laminad), and lm_store_remove
 * deletes it (a clean exit, `laminad --cleanup`).  At most LM_STORE_PENDING files are
 * received at once; a new one beyond that drops the one idle longest.
 *
 * Everything named from outside is checked: hashes are 32 bytes, names
 * plain file names (lamina/fsutil.h lm_name_ok), deployments plain ids.
 */
#ifndef LAMINA_DP_STORE_H
#define LAMINA_DP_STORE_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "lamina/common.h"

#define LM_STORE_HASH 32
#define LM_STORE_PENDING 8
#define LM_STORE_FRESH 64 /* files shipped and not yet taken, remembered */
#define LM_STORE_MAX_FILE (16ull << 30) /* one model file, at most */
#define LM_STORE_GRACE_S 600 /* a file no deployment links, kept so long */

typedef struct lm_store lm_store;

/** Open (making its folders, 0700) the store of the laminad of this
 *  control port under state_dir, removing parts a previous laminad left.
 *  0 or -errno. */
int lm_store_open(const char *state_dir, unsigned port, lm_store **out,
		  lm_error *e);
void lm_store_close(lm_store *s);

/** Delete the store of the laminad of this port under state_dir. */
void lm_store_remove(const char *state_dir, unsigned port);

/** Whether the file of this hash is stored, complete. */
int lm_store_has(lm_store *s, const uint8_t sha[LM_STORE_HASH]);

/**
 * Take a chunk of the file of hash sha, `size` bytes in all: data[0..n)
 * at `offset`, which must be what was received so far.  *have is then
 * the bytes received (size once complete and checked, or what is there
 * when the chunk is refused for its offset, so the sender can resume).
 * @return 1 when the file is complete and stored; 0 when more is wanted;
 *         -EINVAL (size 0 or over LM_STORE_MAX_FILE, a size that differs
 *         from the first chunk's, a chunk past the size); -ESPIPE (not the
 *         next offset: *have says which is); -EBADMSG (the whole file's
 *         SHA-256 is not sha: it is dropped); -errno of the file system.
 */
int lm_store_put(lm_store *s, const uint8_t sha[LM_STORE_HASH],
		 uint64_t size, uint64_t offset, const void *data, size_t n,
		 uint64_t *have, lm_error *e);

/**
 * Give deployment `dep` the stored file sha under `name` (a hard link in
 * its folder, made if needed); the same name again for the same file is
 * fine, for another file -EEXIST.
 * @return 0; -ENOENT when the file is not stored; -EINVAL for a name or
 *         deployment that is not plain; -errno.
 */
int lm_store_link(lm_store *s, const char *dep, const char *name,
		  const uint8_t sha[LM_STORE_HASH], lm_error *e);

/** The folder of deployment dep's files ("STORE/models/DEP"). */
int lm_store_dir(const lm_store *s, const char *dep, char *buf, size_t len);

/** Deployment dep goes: remove its folder and every stored file no other
 *  deployment links.  Safe when it has none. */
void lm_store_forget(lm_store *s, const char *dep);

/** Bytes of complete stored files (for Describe and the logs). */
uint64_t lm_store_bytes(lm_store *s);

#endif
