/*
 * ship.c: a stage's model files into a laminad's store (see ship.h).
 */
#include "ship.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "lamina/manifest.h"

static int add(lm_ship_file **files, int *n, const char *dir,
	       const char *name, lm_error *e)
{
	lm_ship_file *f = realloc(*files, (size_t)(*n + 1) * sizeof(**files));
	if (!f)
		return lm_fail(e, -ENOMEM, "out of memory");
	*files = f;
	f += *n;
	memset(f, 0, sizeof(*f));
	if (snprintf(f->name, sizeof(f->name), "%s", name) >=
		    (int)sizeof(f->name) ||
	    snprintf(f->path, sizeof(f->path), "%s/%s", dir, name) >=
		    (int)sizeof(f->path))
		return lm_fail(e, -ENAMETOOLONG, "%s/%s: path too long", dir,
			       name);
	for (int i = 0; i < *n; i++) /* each once */
		if (!strcmp((*files)[i].name, name))
			return 0;
	++*n;
	return 0;
}

int lm_ship_stage_files(const char *dir, int first, int last,
			lm_ship_file **files, int *n, lm_error *e)
{
	lm_manifest *m = NULL;
	int rc = lm_manifest_load(dir, &m, e);
	if (rc)
		return rc;
	if (first < 0 || last >= m->n_slices || first > last)
		rc = lm_fail(e, -EINVAL, "%s: slices %d-%d of %d", dir, first,
			     last, m->n_slices);
	if (!rc)
		rc = add(files, n, dir, "manifest.json", e);
	for (int i = first; !rc && i <= last; i++)
		rc = add(files, n, dir, m->slices[i].file, e);
	lm_manifest_free(m);
	return rc;
}

static int hash_file(lm_ship_file *f, lm_error *e)
{
	crypto_hash_sha256_state h;
	uint8_t buf[1 << 16];
	struct stat st;
	int fd = open(f->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return lm_fail(e, -errno, "%s: %s", f->path, strerror(errno));
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return lm_fail(e, -EINVAL, "%s: not a regular file", f->path);
	}
	crypto_hash_sha256_init(&h);
	uint64_t size = 0;
	for (;;) {
		ssize_t r = read(fd, buf, sizeof(buf));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int rc = lm_fail(e, -errno, "%s: %s", f->path,
					 strerror(errno));
			close(fd);
			return rc;
		}
		if (r == 0)
			break;
		crypto_hash_sha256_update(&h, buf, (size_t)r);
		size += (uint64_t)r;
	}
	close(fd);
	crypto_hash_sha256_final(&h, f->sha256);
	f->size = size;
	f->hashed = 1;
	return 0;
}

/* Which files the store holds, into have[]. */
static int query(lm_ctl *c, const lm_ship_file *files, int n, int *have,
		 lm_error *e)
{
	Lamina__Request req = LAMINA__REQUEST__INIT;
	Lamina__StoreQuery q = LAMINA__STORE_QUERY__INIT;
	Lamina__Reply *rep = NULL;
	ProtobufCBinaryData *sha = calloc((size_t)n + 1, sizeof(*sha));
	if (!sha)
		return lm_fail(e, -ENOMEM, "out of memory");
	for (int i = 0; i < n; i++) {
		sha[i].data = (uint8_t *)files[i].sha256;
		sha[i].len = LM_SHIP_HASH;
	}
	q.sha256 = sha;
	q.n_sha256 = (size_t)n;
	req.body_case = LAMINA__REQUEST__BODY_STORE_QUERY;
	req.store_query = &q;
	int rc = lm_ctl_call(c, &req, &rep, e);
	free(sha);
	if (rc)
		return rc;
	if (rep->body_case != LAMINA__REPLY__BODY_STORE_QUERY ||
	    rep->store_query->n_have != (size_t)n)
		rc = lm_fail(e, -EPROTO, "laminad's store answered another "
			     "question");
	for (int i = 0; !rc && i < n; i++)
		have[i] = rep->store_query->have[i];
	lamina__reply__free_unpacked(rep, NULL);
	return rc;
}

static int push(lm_ctl *c, const lm_ship_file *f, uint64_t *pushed,
		lm_error *e)
{
	uint8_t *buf = malloc(LM_SHIP_CHUNK);
	int fd = open(f->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW), rc = 0;
	uint64_t off = 0;
	if (!buf || fd < 0) {
		rc = fd < 0 ? lm_fail(e, -errno, "%s: %s", f->path,
				      strerror(errno))
			    : lm_fail(e, -ENOMEM, "out of memory");
		goto out;
	}
	while (!rc && off < f->size) {
		size_t want = f->size - off < LM_SHIP_CHUNK
				      ? (size_t)(f->size - off) : LM_SHIP_CHUNK;
		ssize_t r = pread(fd, buf, want, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) { /* shorter than when hashed: it changed */
			rc = lm_fail(e, r < 0 ? -errno : -EIO, "%s: %s",
				     f->path, r < 0 ? strerror(errno)
						    : "changed while shipped");
			break;
		}
		Lamina__Request req = LAMINA__REQUEST__INIT;
		Lamina__PushFile p = LAMINA__PUSH_FILE__INIT;
		Lamina__Reply *rep = NULL;
		p.sha256.data = (uint8_t *)f->sha256;
		p.sha256.len = LM_SHIP_HASH;
		p.size = f->size;
		p.offset = off;
		p.data.data = buf;
		p.data.len = (size_t)r;
		req.body_case = LAMINA__REQUEST__BODY_PUSH_FILE;
		req.push_file = &p;
		if ((rc = lm_ctl_call(c, &req, &rep, e))) {
			lm_fail_prefix(e, rc, "shipping %s", f->name);
			break;
		}
		if (rep->body_case != LAMINA__REPLY__BODY_PUSH_FILE)
			rc = lm_fail(e, -EPROTO, "shipping %s: not a push "
				     "reply", f->name);
		else if (rep->push_file->have != off + (uint64_t)r)
			rc = lm_fail(e, -EPROTO, "shipping %s: laminad has %llu "
				     "bytes of it, %llu sent", f->name,
				     (unsigned long long)rep->push_file->have,
				     (unsigned long long)(off + (uint64_t)r));
		else if (off + (uint64_t)r == f->size &&
			 !rep->push_file->complete)
			rc = lm_fail(e, -EPROTO, "shipping %s: laminad did not "
				     "take the whole file", f->name);
		lamina__reply__free_unpacked(rep, NULL);
		off += (uint64_t)r;
		if (pushed)
			*pushed += (uint64_t)r;
	}
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return rc;
}

int lm_ship(lm_ctl *c, lm_ship_file *files, int n, uint64_t *pushed,
	    lm_error *e)
{
	int rc;
	if (sodium_init() < 0)
		return lm_fail(e, -EIO, "libsodium did not start");
	for (int i = 0; i < n; i++)
		if (!files[i].hashed && (rc = hash_file(&files[i], e)))
			return rc;
	int *have = calloc((size_t)n + 1, sizeof(int));
	if (!have)
		return lm_fail(e, -ENOMEM, "out of memory");
	rc = query(c, files, n, have, e);
	for (int i = 0; !rc && i < n; i++)
		if (!have[i])
			rc = push(c, &files[i], pushed, e);
	free(have);
	return rc;
}

void lm_ship_model_files(const lm_ship_file *files, int n,
			 Lamina__ModelFile *store, Lamina__ModelFile **list)
{
	for (int i = 0; i < n; i++) {
		lamina__model_file__init(&store[i]);
		store[i].name = (char *)files[i].name;
		store[i].sha256.data = (uint8_t *)files[i].sha256;
		store[i].sha256.len = LM_SHIP_HASH;
		list[i] = &store[i];
	}
}
