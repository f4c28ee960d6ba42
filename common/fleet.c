/*
 * fleet.c: the fleet key's file and fingerprint (see lamina/fleet.h).
 * The only file of common/ that links libsodium: it is a library of its
 * own (lm_fleet_dep), so what needs no key needs no libsodium.
 */
#include "lamina/fleet.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "lamina/fsutil.h"

#define KEY_HEX (2 * LM_FLEET_KEY_BYTES)
/* BLAKE2b's personalisation of the fingerprint: 16 bytes, fixed */
static const uint8_t fp_personal[crypto_generichash_blake2b_PERSONALBYTES] =
	"lamina-fleet-fp1";

int lm_fleet_init(lm_error *e)
{
	if (sodium_init() < 0)
		return lm_fail(e, -EIO, "libsodium does not start (no source "
			       "of randomness?)");
	return 0;
}

int lm_fleet_key_path(char *out, size_t len, lm_error *e)
{
	const char *x = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
	int n;
	if (x && *x == '/') {
		n = snprintf(out, len, "%s/lamina/fleet.key", x);
	} else {
		if (!home || !*home) {
			const struct passwd *pw = getpwuid(geteuid());
			home = pw ? pw->pw_dir : NULL;
		}
		if (!home || !*home)
			return lm_fail(e, -ENOENT, "no home folder to keep the "
				       "fleet key in (set HOME or "
				       "XDG_CONFIG_HOME)");
		n = snprintf(out, len, "%s/.config/lamina/fleet.key", home);
	}
	if (n < 0 || (size_t)n >= len)
		return lm_fail(e, -ENAMETOOLONG, "the fleet key's path is too "
			       "long");
	return 0;
}

/* The key in the got bytes of buf: 64 hex digits, then at most a
 * newline; what names where they came from. */
static int parse_hex(const char *buf, size_t got, const char *what,
		     lm_fleet_key *key, lm_error *e)
{
	size_t bin = 0;
	while (got > 0 && (buf[got - 1] == '\n' || buf[got - 1] == '\r'))
		got--;
	if (got != KEY_HEX ||
	    sodium_hex2bin(key->bytes, sizeof(key->bytes), buf, got, NULL,
			   &bin, NULL) != 0 ||
	    bin != LM_FLEET_KEY_BYTES) {
		lm_fleet_key_wipe(key);
		return lm_fail(e, -EINVAL, "fleet key %s does not hold %d hex "
			       "digits", what, KEY_HEX);
	}
	return 0;
}

int lm_fleet_key_load(const char *path, lm_fleet_key *key, lm_error *e)
{
	char buf[KEY_HEX + 8];
	struct stat sb;
	ssize_t n;
	size_t got = 0;
	int rc = lm_fleet_init(e);
	if (rc)
		return rc;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return lm_fail(e, -errno, "fleet key %s: %s", path,
			       strerror(errno));
	if (fstat(fd, &sb) != 0) {
		rc = lm_fail(e, -errno, "fleet key %s: %s", path,
			     strerror(errno));
		goto out;
	}
	if (!S_ISREG(sb.st_mode)) {
		rc = lm_fail(e, -EPERM, "fleet key %s is not a regular file",
			     path);
		goto out;
	}
	if (sb.st_mode & 077) {
		rc = lm_fail(e, -EPERM, "fleet key %s has mode %04o: others "
			     "may read it (chmod 600 %s, and make a new key if "
			     "someone did)", path,
			     (unsigned)(sb.st_mode & 07777), path);
		goto out;
	}
	while (got < sizeof(buf) &&
	       (n = read(fd, buf + got, sizeof(buf) - got)) > 0)
		got += (size_t)n;
	rc = parse_hex(buf, got, path, key, e);
out:
	sodium_memzero(buf, sizeof(buf));
	close(fd);
	return rc;
}

int lm_fleet_key_read_fd(int fd, const char *what, lm_fleet_key *key,
			 lm_error *e)
{
	char buf[KEY_HEX + 8];
	size_t got = 0;
	int rc = lm_fleet_init(e);
	if (rc)
		return rc;
	/* a byte at a time up to the newline: what follows is not ours */
	while (got < sizeof(buf)) {
		ssize_t n = read(fd, buf + got, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = lm_fail(e, -errno, "fleet key from %s: %s", what,
				     strerror(errno));
			goto out;
		}
		if (n == 0 || buf[got++] == '\n')
			break;
	}
	rc = parse_hex(buf, got, what, key, e);
out:
	sodium_memzero(buf, sizeof(buf));
	return rc;
}

void lm_fleet_key_hex(const lm_fleet_key *key, char out[LM_FLEET_KEY_LINE])
{
	sodium_bin2hex(out, KEY_HEX + 1, key->bytes, sizeof(key->bytes));
	out[KEY_HEX] = '\n';
	out[KEY_HEX + 1] = '\0';
}

/* Make the key file: a fresh key in a temporary file beside it, linked to
 * path (link fails when another process made it first: that one wins). */
static int create(const char *path, lm_error *e)
{
	char dir[4096], tmp[4096 + 32], hex[KEY_HEX + 2];
	lm_fleet_key key;
	const char *slash = strrchr(path, '/');
	int rc = 0;
	if (slash && slash != path) {
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
		if ((rc = lm_mkdirs(dir, 0700)))
			return lm_fail(e, rc, "cannot make the folder of the "
				       "fleet key %s: %s", dir, strerror(-rc));
	}
	if (snprintf(tmp, sizeof(tmp), "%s.tmp-XXXXXX", path) >=
	    (int)sizeof(tmp))
		return lm_fail(e, -ENAMETOOLONG, "%s: path too long", path);
	int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return lm_fail(e, -errno, "cannot make the fleet key %s: %s",
			       path, strerror(errno));
	randombytes_buf(key.bytes, sizeof(key.bytes));
	sodium_bin2hex(hex, sizeof(hex), key.bytes, sizeof(key.bytes));
	hex[KEY_HEX] = '\n';
	if (fchmod(fd, 0600) != 0 || write(fd, hex, KEY_HEX + 1) !=
				    KEY_HEX + 1 || fsync(fd) != 0)
		rc = lm_fail(e, errno ? -errno : -EIO, "cannot write the fleet "
			     "key %s: %s", tmp, strerror(errno ? errno : EIO));
	close(fd);
	if (!rc && link(tmp, path) != 0 && errno != EEXIST)
		rc = lm_fail(e, -errno, "cannot make the fleet key %s: %s",
			     path, strerror(errno));
	unlink(tmp);
	sodium_memzero(hex, sizeof(hex));
	lm_fleet_key_wipe(&key);
	return rc;
}

int lm_fleet_key_ensure(const char *path, lm_fleet_key *key, int *created,
			lm_error *e)
{
	int rc = lm_fleet_key_load(path, key, e);
	if (created)
		*created = 0;
	if (rc != -ENOENT)
		return rc;
	if ((rc = create(path, e)))
		return rc;
	if (created)
		*created = 1; /* or a process beside made it just now */
	return lm_fleet_key_load(path, key, e);
}

void lm_fleet_fingerprint(const lm_fleet_key *key,
			  char out[LM_FLEET_FP_CHARS + 1])
{
	uint8_t h[crypto_generichash_blake2b_BYTES];
	if (lm_fleet_init(NULL)) {
		snprintf(out, LM_FLEET_FP_CHARS + 1, "%s", "?");
		return;
	}
	crypto_generichash_blake2b_salt_personal(h, sizeof(h), key->bytes,
						 sizeof(key->bytes), NULL, 0,
						 NULL, fp_personal);
	sodium_bin2hex(out, LM_FLEET_FP_CHARS + 1, h, LM_FLEET_FP_CHARS / 2);
}

void lm_fleet_key_wipe(lm_fleet_key *key)
{
	sodium_memzero(key, sizeof(*key));
}
