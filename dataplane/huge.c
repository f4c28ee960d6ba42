/*
 * huge.c: hugepage reservations under a lock, with an owner ledger (see
 * huge.h).
 */
#include "huge.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "lamina/fsutil.h"

#define LEDGER LM_HUGE_DIR "/hugepages.json"
#define LOCK LM_HUGE_DIR "/hugepages.lock"

static long meminfo_kb(const char *key)
{
	FILE *f = fopen("/proc/meminfo", "r");
	char line[256];
	long v = -1;
	size_t n = strlen(key);
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, key, n) && line[n] == ':') {
			v = strtol(line + n + 1, NULL, 10);
			break;
		}
	if (f)
		fclose(f);
	return v;
}

static void nr_path(unsigned kb, char *out, size_t len)
{
	snprintf(out, len, "/sys/kernel/mm/hugepages/hugepages-%ukB/"
		 "nr_hugepages", kb);
}

static long read_long(const char *path)
{
	FILE *f = fopen(path, "r");
	long v = -1;
	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

static int write_long(const char *path, long v)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return -errno;
	int rc = fprintf(f, "%ld\n", v) < 0 ? -EIO : 0;
	if (fclose(f) != 0 && !rc)
		rc = -errno;
	return rc;
}

/* The machine-wide lock, or -errno. */
static int lock_take(void)
{
	int rc = lm_mkdirs(LM_HUGE_DIR, 0755);
	if (rc)
		return rc;
	int fd = open(LOCK, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	while (flock(fd, LOCK_EX) != 0)
		if (errno != EINTR) {
			rc = -errno;
			close(fd);
			return rc;
		}
	return fd;
}

static void lock_drop(int fd)
{
	if (fd >= 0)
		close(fd); /* releases the flock */
}

/* The ledger (a new empty one when missing or damaged). */
static json_t *ledger_load(void)
{
	json_t *j = json_load_file(LEDGER, 0, NULL);
	if (!json_is_object(json_object_get(j, "owners"))) {
		json_decref(j);
		j = json_pack("{s:{}}", "owners");
	}
	return j;
}

static int ledger_save(json_t *j)
{
	char *text = json_dumps(j, JSON_INDENT(2));
	if (!text)
		return -ENOMEM;
	int rc = lm_write_atomic(LEDGER, text, strlen(text), 0644, NULL);
	free(text);
	return rc;
}

/* Pages of page_kb held by the ledger's owners other than `owner`. */
static long others_hold(json_t *j, int owner, unsigned kb)
{
	const char *key;
	json_t *v;
	long n = 0;
	char me[16];
	snprintf(me, sizeof(me), "%d", owner);
	json_object_foreach(json_object_get(j, "owners"), key, v)
		if (strcmp(key, me) && json_integer_value(json_object_get(
					      v, "page_kb")) == (json_int_t)kb)
			n += (long)json_integer_value(json_object_get(v,
								      "count"));
	return n;
}

int lm_huge_reserve(unsigned want_mb, const char *mount_dir, int owner,
		    struct lm_huge *h, lm_error *e)
{
	char nr[128], me[16];
	long kb = meminfo_kb("Hugepagesize");
	memset(h, 0, sizeof(*h));
	if (geteuid() != 0 || kb <= 0)
		return lm_fail(e, -EPERM, "hugepages: only root reserves "
			       "them");
	nr_path((unsigned)kb, nr, sizeof(nr));
	int lock = lock_take();
	if (lock < 0)
		return lm_fail(e, lock, "hugepages: %s: %s", LOCK,
			       strerror(-lock));
	long want = (long)want_mb * 1024 / kb;
	long cur = read_long(nr), got = 0;
	int rc = 0;
	if (cur < 0 || write_long(nr, cur + want) != 0) {
		rc = lm_fail(e, -EPERM, "hugepages: cannot write %s", nr);
	} else {
		got = read_long(nr) - cur;
		got = got > 0 ? got : 0;
		h->page_kb = (unsigned)kb;
		h->count = (unsigned)got;
		json_t *j = ledger_load();
		snprintf(me, sizeof(me), "%d", owner);
		json_object_set_new(json_object_get(j, "owners"), me,
				    json_pack("{s:I, s:I}", "page_kb",
					      (json_int_t)kb, "count",
					      (json_int_t)got));
		if (ledger_save(j))
			rc = lm_fail(e, -EIO, "hugepages: cannot write %s",
				     LEDGER);
		json_decref(j);
	}
	lock_drop(lock);
	if (!rc && got < want / 2)
		rc = lm_fail(e, -ENOMEM, "hugepages: asked for %ld, got %ld "
			     "(memory too fragmented)", want, got);
	if (!rc && mount_dir) {
		snprintf(h->mount, sizeof(h->mount), "%s", mount_dir);
		if ((mkdir(mount_dir, 0700) != 0 && errno != EEXIST) ||
		    mount("nodev", mount_dir, "hugetlbfs", 0, NULL) != 0) {
			rc = lm_fail(e, -errno, "hugepages: cannot mount "
				     "hugetlbfs at %s: %s", mount_dir,
				     strerror(errno));
			rmdir(mount_dir);
			h->mount[0] = '\0';
		}
	}
	if (rc)
		lm_huge_release(h, owner, NULL);
	return rc;
}

int lm_huge_release(struct lm_huge *h, int owner, lm_error *e)
{
	char nr[128], me[16];
	int rc = 0;
	if (h->mount[0]) {
		umount2(h->mount, MNT_DETACH);
		rmdir(h->mount);
		h->mount[0] = '\0';
	}
	if (geteuid() != 0)
		return 0;
	int lock = lock_take();
	if (lock < 0)
		return lm_fail(e, lock, "hugepages: %s: %s", LOCK,
			       strerror(-lock));
	json_t *j = ledger_load();
	snprintf(me, sizeof(me), "%d", owner);
	json_t *entry = json_object_get(json_object_get(j, "owners"), me);
	unsigned kb = entry ? (unsigned)json_integer_value(
				      json_object_get(entry, "page_kb"))
			    : h->page_kb;
	long count = entry ? (long)json_integer_value(json_object_get(
				     entry, "count"))
			   : (long)h->count;
	if (count > 0 && kb) {
		nr_path(kb, nr, sizeof(nr));
		long cur = read_long(nr), keep = others_hold(j, owner, kb);
		long next = cur - count;
		if (next < keep)
			next = keep; /* never below what the others hold */
		if (cur >= 0 && next < cur && write_long(nr, next) != 0)
			rc = lm_fail(e, -EIO, "hugepages: cannot give back "
				     "%ld pages: %s", count, nr);
	}
	if (!rc && entry) {
		json_object_del(json_object_get(j, "owners"), me);
		if (ledger_save(j))
			rc = lm_fail(e, -EIO, "hugepages: cannot write %s",
				     LEDGER);
	}
	json_decref(j);
	lock_drop(lock);
	if (!rc)
		h->count = 0;
	return rc;
}

unsigned lm_huge_owned(int owner)
{
	char me[16];
	int lock = lock_take();
	json_t *j = ledger_load();
	snprintf(me, sizeof(me), "%d", owner);
	json_t *entry = json_object_get(json_object_get(j, "owners"), me);
	unsigned n = entry ? (unsigned)json_integer_value(json_object_get(
				     entry, "count"))
			   : 0;
	json_decref(j);
	lock_drop(lock);
	return n;
}
