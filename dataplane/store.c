/*
 * store.c: laminad's store of shipped model files (see store.h).
 */
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "lamina/fsutil.h"

struct pending {
	int used, fd;
	uint8_t sha[LM_STORE_HASH];
	uint64_t size, have;
	uint64_t t_last; /* for the one idle longest */
	crypto_hash_sha256_state h;
};

struct fresh {
	uint8_t sha[LM_STORE_HASH];
	time_t t; /* 0: free */
};

struct lm_store {
	char root[PATH_MAX - 160];
	struct pending p[LM_STORE_PENDING];
	struct fresh f[LM_STORE_FRESH]; /* shipped, not yet linked */
	uint64_t clock;
};

static void hex(const uint8_t sha[LM_STORE_HASH], char out[2 * LM_STORE_HASH + 1])
{
	sodium_bin2hex(out, 2 * LM_STORE_HASH + 1, sha, LM_STORE_HASH);
}

static int path_of(const lm_store *s, const char *kind,
		   const uint8_t sha[LM_STORE_HASH], char *buf, size_t len)
{
	char h[2 * LM_STORE_HASH + 1];
	hex(sha, h);
	return snprintf(buf, len, "%s/%s/%s", s->root, kind, h) >= (int)len
		       ? -ENAMETOOLONG : 0;
}

/* A deployment id as laminad takes it: 1 to 31 of [A-Za-z0-9._-]. */
static int dep_ok(const char *d)
{
	size_t n = d ? strlen(d) : 0;
	return n >= 1 && n < 32 &&
	       strspn(d, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			 "0123456789._-") == n &&
	       strcmp(d, ".") && strcmp(d, "..");
}

int lm_store_open(const char *state_dir, unsigned port, lm_store **out,
		  lm_error *e)
{
	char dir[PATH_MAX];
	int rc;
	*out = NULL;
	if (sodium_init() < 0)
		return lm_fail(e, -EIO, "libsodium did not start");
	lm_store *s = calloc(1, sizeof(*s));
	if (!s)
		return lm_fail(e, -ENOMEM, "out of memory");
	if (snprintf(s->root, sizeof(s->root), "%s/laminad-%u.store",
		     state_dir, port) >= (int)sizeof(s->root)) {
		free(s);
		return lm_fail(e, -ENAMETOOLONG, "%s: path too long",
			       state_dir);
	}
	static const char *const kinds[] = { "sha256", "part", "models" };
	/* no deployment outlives its laminad: what is here is of no use */
	lm_remove_tree(s->root);
	for (int i = 0; i < 3; i++) {
		snprintf(dir, sizeof(dir), "%s/%s", s->root, kinds[i]);
		if ((rc = lm_mkdirs(dir, 0700))) {
			free(s);
			return lm_fail(e, rc, "cannot make %s: %s", dir,
				       strerror(-rc));
		}
	}
	for (int i = 0; i < LM_STORE_PENDING; i++)
		s->p[i].fd = -1;
	*out = s;
	return 0;
}

static void drop(lm_store *s, struct pending *p)
{
	char path[PATH_MAX];
	if (!p->used)
		return;
	close(p->fd);
	if (!path_of(s, "part", p->sha, path, sizeof(path)))
		unlink(path);
	p->used = 0;
	p->fd = -1;
}

void lm_store_remove(const char *state_dir, unsigned port)
{
	char root[PATH_MAX];
	if (snprintf(root, sizeof(root), "%s/laminad-%u.store", state_dir,
		     port) < (int)sizeof(root))
		lm_remove_tree(root);
}

void lm_store_close(lm_store *s)
{
	if (!s)
		return;
	for (int i = 0; i < LM_STORE_PENDING; i++)
		drop(s, &s->p[i]);
	free(s);
}

int lm_store_has(lm_store *s, const uint8_t sha[LM_STORE_HASH])
{
	char path[PATH_MAX];
	struct stat st;
	return !path_of(s, "sha256", sha, path, sizeof(path)) &&
	       lstat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* The upload of sha, started (a slot, the part file) when there is none. */
static struct pending *upload(lm_store *s, const uint8_t sha[LM_STORE_HASH],
			      uint64_t size, lm_error *e, int *rc)
{
	struct pending *free_slot = NULL, *oldest = NULL;
	for (int i = 0; i < LM_STORE_PENDING; i++) {
		struct pending *p = &s->p[i];
		if (p->used && !memcmp(p->sha, sha, LM_STORE_HASH))
			return p;
		if (!p->used && !free_slot)
			free_slot = p;
		if (p->used && (!oldest || p->t_last < oldest->t_last))
			oldest = p;
	}
	if (!free_slot) {
		drop(s, oldest); /* the one idle longest starts over later */
		free_slot = oldest;
	}
	char path[PATH_MAX];
	if ((*rc = path_of(s, "part", sha, path, sizeof(path))))
		return lm_fail(e, *rc, "store path too long"), NULL;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC |
				    O_NOFOLLOW, 0600);
	if (fd < 0) {
		*rc = lm_fail(e, -errno, "%s: %s", path, strerror(errno));
		return NULL;
	}
	struct pending *p = free_slot;
	memset(p, 0, sizeof(*p));
	p->used = 1;
	p->fd = fd;
	memcpy(p->sha, sha, LM_STORE_HASH);
	p->size = size;
	crypto_hash_sha256_init(&p->h);
	return p;
}

int lm_store_put(lm_store *s, const uint8_t sha[LM_STORE_HASH],
		 uint64_t size, uint64_t offset, const void *data, size_t n,
		 uint64_t *have, lm_error *e)
{
	char h[2 * LM_STORE_HASH + 1], part[PATH_MAX], done[PATH_MAX];
	int rc = 0;
	hex(sha, h);
	*have = 0;
	if (lm_store_has(s, sha)) { /* already here: nothing to take */
		*have = size;
		return 1;
	}
	if (size == 0 || size > LM_STORE_MAX_FILE)
		return lm_fail(e, -EINVAL, "file %.16s...: size %llu (1 byte "
			       "to %llu)", h, (unsigned long long)size,
			       (unsigned long long)LM_STORE_MAX_FILE);
	struct pending *p = upload(s, sha, size, e, &rc);
	if (!p)
		return rc;
	p->t_last = ++s->clock;
	*have = p->have;
	if (size != p->size)
		return lm_fail(e, -EINVAL, "file %.16s...: size %llu, its "
			       "first chunk said %llu", h,
			       (unsigned long long)size,
			       (unsigned long long)p->size);
	if (offset != p->have)
		return lm_fail(e, -ESPIPE, "file %.16s...: a chunk at %llu, "
			       "%llu bytes are here", h,
			       (unsigned long long)offset,
			       (unsigned long long)p->have);
	if (n > size - offset)
		return lm_fail(e, -EINVAL, "file %.16s...: a chunk of %zu "
			       "bytes at %llu runs past its %llu", h, n,
			       (unsigned long long)offset,
			       (unsigned long long)size);
	for (size_t off = 0; off < n;) {
		ssize_t w = write(p->fd, (const uint8_t *)data + off, n - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			rc = lm_fail(e, w < 0 ? -errno : -EIO, "file %.16s...: "
				     "%s", h, w < 0 ? strerror(errno)
						    : "short write");
			drop(s, p);
			return rc;
		}
		off += (size_t)w;
	}
	crypto_hash_sha256_update(&p->h, data, n);
	p->have += n;
	*have = p->have;
	if (p->have < p->size)
		return 0;
	uint8_t got[LM_STORE_HASH];
	crypto_hash_sha256_final(&p->h, got);
	if (sodium_memcmp(got, sha, LM_STORE_HASH)) {
		drop(s, p);
		*have = 0;
		return lm_fail(e, -EBADMSG, "file %.16s...: its bytes do not "
			       "hash to it (dropped)", h);
	}
	if (fsync(p->fd) != 0) {
		rc = lm_fail(e, -errno, "file %.16s...: %s", h,
			     strerror(errno));
		drop(s, p);
		return rc;
	}
	close(p->fd);
	p->fd = -1;
	p->used = 0;
	if (path_of(s, "part", sha, part, sizeof(part)) ||
	    path_of(s, "sha256", sha, done, sizeof(done)) ||
	    rename(part, done) != 0) {
		rc = lm_fail(e, -errno, "file %.16s...: cannot store it: %s",
			     h, strerror(errno));
		unlink(part);
		return rc;
	}
	/* remembered until a deployment takes it (the oldest goes first) */
	struct fresh *slot = &s->f[0];
	for (int i = 0; i < LM_STORE_FRESH; i++)
		if (s->f[i].t < slot->t)
			slot = &s->f[i];
	memcpy(slot->sha, sha, LM_STORE_HASH);
	slot->t = time(NULL);
	return 1;
}

int lm_store_dir(const lm_store *s, const char *dep, char *buf, size_t len)
{
	if (!dep_ok(dep))
		return -EINVAL;
	return snprintf(buf, len, "%s/models/%s", s->root, dep) >= (int)len
		       ? -ENAMETOOLONG : 0;
}

int lm_store_link(lm_store *s, const char *dep, const char *name,
		  const uint8_t sha[LM_STORE_HASH], lm_error *e)
{
	char dir[PATH_MAX], from[PATH_MAX], to[PATH_MAX + NAME_MAX];
	struct stat a, b;
	int rc;
	if (!dep_ok(dep) || !lm_name_ok(name))
		return lm_fail(e, -EINVAL, "'%.40s' / '%.60s': a deployment "
			       "id and a plain file name are wanted",
			       dep ? dep : "", name ? name : "");
	if (!lm_store_has(s, sha)) {
		char h[2 * LM_STORE_HASH + 1];
		hex(sha, h);
		return lm_fail(e, -ENOENT, "file '%s' (%.16s...) is not in the "
			       "store: ship it first", name, h);
	}
	if ((rc = lm_store_dir(s, dep, dir, sizeof(dir))) ||
	    (rc = path_of(s, "sha256", sha, from, sizeof(from))))
		return lm_fail(e, rc, "store path too long");
	if ((rc = lm_mkdirs(dir, 0700)))
		return lm_fail(e, rc, "cannot make %s: %s", dir,
			       strerror(-rc));
	snprintf(to, sizeof(to), "%s/%s", dir, name);
	for (int i = 0; i < LM_STORE_FRESH; i++)
		if (s->f[i].t && !memcmp(s->f[i].sha, sha, LM_STORE_HASH))
			s->f[i].t = 0; /* taken */
	if (link(from, to) == 0)
		return 0;
	if (errno == EEXIST && lstat(to, &a) == 0 && stat(from, &b) == 0 &&
	    a.st_ino == b.st_ino && a.st_dev == b.st_dev)
		return 0; /* the same file under the same name */
	return lm_fail(e, -errno, "%s: %s", to,
		       errno == EEXIST ? "another file has this name"
				       : strerror(errno));
}

/* Whether the file of hex name `name` was shipped lately and not taken
 * yet (a deploy ships before it loads). */
static int fresh(const lm_store *s, const char *name, time_t now)
{
	char h[2 * LM_STORE_HASH + 1];
	for (int i = 0; i < LM_STORE_FRESH; i++) {
		if (!s->f[i].t || s->f[i].t + LM_STORE_GRACE_S < now)
			continue;
		hex(s->f[i].sha, h);
		if (!strcmp(h, name))
			return 1;
	}
	return 0;
}

void lm_store_forget(lm_store *s, const char *dep)
{
	char dir[PATH_MAX];
	if (lm_store_dir(s, dep, dir, sizeof(dir)))
		return;
	lm_remove_tree(dir);
	/* stored files no deployment links any more */
	char path[PATH_MAX + NAME_MAX];
	snprintf(dir, sizeof(dir), "%s/sha256", s->root);
	DIR *d = opendir(dir);
	struct dirent *de;
	struct stat st;
	time_t now = time(NULL);
	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		if (snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) >=
		    (int)sizeof(path))
			continue;
		if (lstat(path, &st) == 0 && S_ISREG(st.st_mode) &&
		    st.st_nlink <= 1 && !fresh(s, de->d_name, now))
			unlink(path);
	}
	if (d)
		closedir(d);
}

uint64_t lm_store_bytes(lm_store *s)
{
	char dir[PATH_MAX], path[PATH_MAX + NAME_MAX];
	uint64_t n = 0;
	struct stat st;
	snprintf(dir, sizeof(dir), "%s/sha256", s->root);
	DIR *d = opendir(dir);
	struct dirent *de;
	while (d && (de = readdir(d)))
		if (de->d_name[0] != '.' &&
		    snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) > 0 &&
		    lstat(path, &st) == 0 && S_ISREG(st.st_mode))
			n += (uint64_t)st.st_size;
	if (d)
		closedir(d);
	return n;
}
