/*
 * test_store.c: laminad's store of shipped model files (dataplane/store.c)
 * without EAL: chunks in order, a chunk out of order answered with what
 * is there, a file whose bytes do not hash to its name dropped, links
 * under plain names only, files removed when no deployment uses them
 * (but not one just shipped and not yet taken), the store emptied when
 * opened again.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "harness.h"
#include "lamina/fsutil.h"
#include "store.h"

static char state[256];

static int exists(const char *rel)
{
	char p[512];
	struct stat st;
	snprintf(p, sizeof(p), "%s/laminad-7.store/%s", state, rel);
	return lstat(p, &st) == 0;
}

/* Entries of a folder of the store (-1: none such). */
static int count(const char *rel)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/laminad-7.store/%s", state, rel);
	DIR *d = opendir(p);
	struct dirent *de;
	int n = 0;
	if (!d)
		return -1;
	while ((de = readdir(d)))
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

TEST(chunks_links_and_forgetting)
{
	lm_store *s;
	lm_error e;
	uint8_t data[10000], sha[32], other[32];
	uint64_t have;
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 31);
	crypto_hash_sha256(sha, data, sizeof(data));
	crypto_hash_sha256(other, data, 10);
	CHECK_EQ_I64(lm_store_open(state, 7, &s, &e), 0);
	CHECK(!lm_store_has(s, sha));
	CHECK_EQ_I64(lm_store_put(s, sha, sizeof(data), 0, data, 4000, &have,
				  &e), 0);
	CHECK_EQ_I64(have, 4000);
	/* out of order: refused, told where to resume */
	CHECK_EQ_I64(lm_store_put(s, sha, sizeof(data), 8000, data + 8000,
				  2000, &have, &e), -ESPIPE);
	CHECK_EQ_I64(have, 4000);
	/* past the end, another size: refused */
	CHECK_EQ_I64(lm_store_put(s, sha, sizeof(data), 4000, data, 7000,
				  &have, &e), -EINVAL);
	CHECK_EQ_I64(lm_store_put(s, sha, 5, 4000, data, 1, &have, &e),
		     -EINVAL);
	CHECK_EQ_I64(lm_store_put(s, sha, sizeof(data), 4000, data + 4000,
				  6000, &have, &e), 1);
	CHECK_EQ_I64(have, sizeof(data));
	CHECK(lm_store_has(s, sha));
	CHECK_EQ_I64(count("part"), 0);
	/* a file that lies about its hash is dropped */
	CHECK_EQ_I64(lm_store_put(s, other, 20, 0, data, 20, &have, &e),
		     -EBADMSG);
	CHECK(!lm_store_has(s, other) && count("part") == 0);
	/* links: plain names, stored files only */
	CHECK_EQ_I64(lm_store_link(s, "d1", "slice_000.onnx", sha, &e), 0);
	CHECK_EQ_I64(lm_store_link(s, "d1", "slice_000.onnx", sha, &e), 0);
	CHECK_EQ_I64(lm_store_link(s, "d1", "../x", sha, &e), -EINVAL);
	CHECK_EQ_I64(lm_store_link(s, "../d", "x", sha, &e), -EINVAL);
	CHECK_EQ_I64(lm_store_link(s, "d1", "y", other, &e), -ENOENT);
	CHECK_EQ_I64(lm_store_link(s, "d2", "z", sha, &e), 0);
	CHECK(exists("models/d1/slice_000.onnx") && exists("models/d2/z"));
	lm_store_forget(s, "d1");
	CHECK(!exists("models/d1") && lm_store_has(s, sha)); /* d2 uses it */
	lm_store_forget(s, "d2");
	CHECK(!lm_store_has(s, sha) && count("sha256") == 0);
	/* shipped, not yet taken: another deployment's going keeps it */
	CHECK_EQ_I64(lm_store_put(s, sha, sizeof(data), 0, data,
				  sizeof(data), &have, &e), 1);
	lm_store_forget(s, "d3");
	CHECK(lm_store_has(s, sha));
	lm_store_close(s);
	/* a new laminad finds it empty */
	CHECK_EQ_I64(lm_store_open(state, 7, &s, &e), 0);
	CHECK(!lm_store_has(s, sha) && count("sha256") == 0);
	lm_store_close(s);
	lm_store_remove(state, 7);
	CHECK(!exists(""));
}

int main(void)
{
	snprintf(state, sizeof(state), "/tmp/test_store.%d", (int)getpid());
	if (sodium_init() < 0)
		return 1;
	RUN(chunks_links_and_forgetting);
	lm_remove_tree(state);
	return harness_done();
}
