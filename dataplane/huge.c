/*
 * huge.c: hugepage reservations, each read-modify-write of nr_hugepages
 * under an flock on that file (see huge.h).
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

/* nr_hugepages of pages of kb, opened read-write and locked; -errno. */
static int open_locked(unsigned kb, char *path, size_t len)
{
	snprintf(path, len, "/sys/kernel/mm/hugepages/hugepages-%ukB/"
		 "nr_hugepages", kb);
	int fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	while (flock(fd, LOCK_EX) != 0)
		if (errno != EINTR) {
			int rc = -errno;
			close(fd);
			return rc;
		}
	return fd;
}

static long read_count(int fd)
{
	char buf[32];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	return strtol(buf, NULL, 10);
}

static int write_count(int fd, long v)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%ld\n", v);
	return pwrite(fd, buf, (size_t)n, 0) == n ? 0 : -errno;
}

/* Add delta pages of kb (negative: give back), under the lock; *done is
 * the change the kernel made.  0 or -errno. */
static int adjust(unsigned kb, long delta, long *done, lm_error *e)
{
	char path[128];
	int fd = open_locked(kb, path, sizeof(path)), rc = 0;
	if (fd < 0)
		return lm_fail(e, fd, "hugepages: %s: %s", path, strerror(-fd));
	long cur = read_count(fd), now;
	long next = cur + delta < 0 ? 0 : cur + delta;
	if (cur < 0)
		rc = lm_fail(e, -EIO, "hugepages: cannot read %s", path);
	else if (write_count(fd, next) != 0 || (now = read_count(fd)) < 0)
		rc = lm_fail(e, -EPERM, "hugepages: cannot write %s", path);
	else
		*done = now - cur;
	close(fd); /* and unlock */
	return rc;
}

int lm_huge_reserve(unsigned want_mb, const char *mount_dir, struct lm_huge *h,
		    lm_error *e)
{
	long kb = meminfo_kb("Hugepagesize");
	memset(h, 0, sizeof(*h));
	if (geteuid() != 0 || kb <= 0)
		return lm_fail(e, -EPERM, "hugepages: only root reserves "
			       "them");
	long want = (long)want_mb * 1024 / kb, got = 0;
	int rc = adjust((unsigned)kb, want, &got, e);
	if (rc)
		return rc;
	got = got > 0 ? got : 0;
	h->page_kb = (unsigned)kb;
	h->count = (unsigned)got;
	if (got < want / 2)
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
		lm_huge_release(h, NULL);
	return rc;
}

int lm_huge_release(struct lm_huge *h, lm_error *e)
{
	if (h->mount[0]) {
		umount2(h->mount, MNT_DETACH);
		rmdir(h->mount);
		h->mount[0] = '\0';
	}
	if (!h->count || !h->page_kb)
		return 0;
	long done = 0;
	int rc = adjust(h->page_kb, -(long)h->count, &done, e);
	if (rc)
		return rc;
	/* with nr_overcommit_hugepages 0 the kernel cannot make pages still
	 * in use (mapped, or files held open) surplus: they stay in the
	 * pool, and in h->count, to give back once nothing holds them */
	long left = (long)h->count + done;
	h->count = left > 0 ? (unsigned)left : 0;
	return 0;
}
