/*
 * fleet.h: the fleet key, the one secret a lamina and the laminads it
 * starts share (issue 16, "a trusted fleet").  Whoever holds it may load,
 * start, stop and tear down stages on the fleet's laminads; the control
 * channel (control/proto/ctl.h) proves it without sending it.
 *
 * The key is 32 random bytes (libsodium's randombytes_buf), kept in one
 * file, by default $XDG_CONFIG_HOME/lamina/fleet.key, else
 * $HOME/.config/lamina/fleet.key (HOME from the password database when
 * unset; as root the same rule with root's HOME).  The file holds the key
 * as 64 lowercase hex digits and a newline; it is made on first use with
 * mode 0600 in a folder made 0700, and refused when its mode lets anyone
 * but its owner read or write it.  lamina and laminad both read it with
 * this code; `lamina fleet key` prints its fingerprint, the first 16 hex
 * digits of BLAKE2b-256 of the key personalised with "lamina-fleet-fp1"
 * (a fixed context, so the fingerprint is no other use of the key), which
 * laminad also publishes (mDNS TXT `fp`, the control channel's greeting)
 * so that a lamina can tell its fleet's laminads from others.
 */
#ifndef LAMINA_FLEET_H
#define LAMINA_FLEET_H

#include <stddef.h>
#include <stdint.h>

#include "lamina/common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LM_FLEET_KEY_BYTES 32
#define LM_FLEET_FP_CHARS 16 /* hex digits of a fingerprint */
/* the key as its file holds it: 64 hex digits, a newline and a NUL */
#define LM_FLEET_KEY_LINE (2 * LM_FLEET_KEY_BYTES + 2)

typedef struct lm_fleet_key {
	uint8_t bytes[LM_FLEET_KEY_BYTES];
} lm_fleet_key;

/**
 * Start libsodium (idempotent, thread-safe); every other lm_fleet_* and
 * the control channel call it themselves.
 * @return 0; -EIO when libsodium cannot start (no randomness source).
 */
int lm_fleet_init(lm_error *e);

/**
 * The default key file, as the top of this file says.
 * @return 0; -ENOENT when neither XDG_CONFIG_HOME nor a home folder is
 *         known; -ENAMETOOLONG.
 */
int lm_fleet_key_path(char *out, size_t len, lm_error *e);

/**
 * Read the key file at path.
 * @return 0; -ENOENT when it does not exist; -EPERM when it is not a
 *         regular file or its mode lets group or others at it (the error
 *         says how to fix it); -EINVAL when it does not hold 64 hex
 *         digits; other -errno.
 */
int lm_fleet_key_load(const char *path, lm_fleet_key *key, lm_error *e);

/**
 * The key at path, made when the file does not exist: 32 random bytes
 * written to a temporary file (0600) in its folder (made 0700 with its
 * parents), then linked to path, so two processes making it at once end
 * with the same key.
 * @param created  set to 1 when this call made the file, else 0 (may be
 *                 NULL)
 * @return as lm_fleet_key_load; -errno when the folder or file cannot be
 *         made.
 */
int lm_fleet_key_ensure(const char *path, lm_fleet_key *key, int *created,
			lm_error *e);

/**
 * Read the key from a descriptor (laminad's `--fleet-key -`: its stdin, a
 * pipe from ssh when lamina starts it on another host), as the file holds
 * it; reads up to the newline and no further.
 * @param what  names the source in messages ("stdin")
 * @return 0; -EINVAL when it does not hold 64 hex digits; -errno.
 */
int lm_fleet_key_read_fd(int fd, const char *what, lm_fleet_key *key,
			 lm_error *e);

/** The key as its file holds it (64 hex digits and a newline), for
 *  lm_fleet_key_read_fd at the other end; wipe out after use. */
void lm_fleet_key_hex(const lm_fleet_key *key, char out[LM_FLEET_KEY_LINE]);

/** The key's fingerprint: LM_FLEET_FP_CHARS lowercase hex digits and a
 *  NUL. */
void lm_fleet_fingerprint(const lm_fleet_key *key,
			  char out[LM_FLEET_FP_CHARS + 1]);

/** Overwrite a key in memory (libsodium's sodium_memzero). */
void lm_fleet_key_wipe(lm_fleet_key *key);

#ifdef __cplusplus
}
#endif

#endif
