/*
 * fsutil.c: atomic file replacement, folders and path checks (see
 * lamina/fsutil.h).
 */
#include "lamina/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int lm_write_atomic(const char *path, const void *data, size_t len,
		    mode_t mode, lm_error *e)
{
	char tmp[PATH_MAX];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp-XXXXXX", path) >=
	    (int)sizeof(tmp))
		return lm_fail(e, -ENAMETOOLONG, "%s: path too long", path);
	int fd = mkstemp(tmp);
	if (fd < 0)
		return lm_fail(e, -errno, "cannot write %s: %s", path,
			       strerror(errno));
	const char *p = data;
	size_t left = len;
	int rc = 0;
	while (left && !rc) {
		ssize_t w = write(fd, p, left);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			rc = -(w < 0 ? errno : EIO);
		else {
			p += w;
			left -= (size_t)w;
		}
	}
	if (!rc && fchmod(fd, mode) != 0)
		rc = -errno;
	if (!rc && fsync(fd) != 0)
		rc = -errno;
	if (close(fd) != 0 && !rc)
		rc = -errno;
	if (!rc && rename(tmp, path) != 0)
		rc = -errno;
	if (rc) {
		unlink(tmp);
		return lm_fail(e, rc, "cannot write %s: %s", path,
			       strerror(-rc));
	}
	return 0;
}

int lm_read_file(const char *path, size_t max, char **out, size_t *len,
		 lm_error *e)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	*out = NULL;
	if (fd < 0)
		return lm_fail(e, -errno, "%s: %s", path, strerror(errno));
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		int rc = S_ISREG(st.st_mode) ? -errno : -EINVAL;
		close(fd);
		return lm_fail(e, rc, "%s: not a regular file", path);
	}
	if ((size_t)st.st_size > max) {
		close(fd);
		return lm_fail(e, -EFBIG, "%s: %lld bytes, more than the %zu "
			       "it may have", path, (long long)st.st_size, max);
	}
	char *buf = malloc((size_t)st.st_size + 1);
	size_t n = 0;
	int rc = buf ? 0 : -ENOMEM;
	while (!rc && n < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + n, (size_t)st.st_size - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			rc = -errno;
		else if (r == 0)
			break; /* shrank meanwhile: take what is there */
		else
			n += (size_t)r;
	}
	close(fd);
	if (rc) {
		free(buf);
		return lm_fail(e, rc, "%s: %s", path, strerror(-rc));
	}
	buf[n] = '\0';
	*out = buf;
	if (len)
		*len = n;
	return 0;
}

int lm_mkdirs(const char *path, mode_t mode)
{
	char p[PATH_MAX];
	if (snprintf(p, sizeof(p), "%s", path) >= (int)sizeof(p))
		return -ENAMETOOLONG;
	for (char *s = p + 1; *s; s++)
		if (*s == '/') {
			*s = '\0';
			if (mkdir(p, mode) != 0 && errno != EEXIST)
				return -errno;
			*s = '/';
		}
	return mkdir(p, mode) != 0 && errno != EEXIST ? -errno : 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag,
		    struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

int lm_remove_tree(const char *path)
{
	return nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) ? -errno : 0;
}

int lm_name_ok(const char *name)
{
	size_t n = name ? strlen(name) : 0;
	if (n == 0 || n > 255 || !strcmp(name, ".") || !strcmp(name, ".."))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (name[i] == '/' || (unsigned char)name[i] < 0x20 ||
		    name[i] == 0x7f)
			return 0;
	return 1;
}

int lm_path_in(const char *dir, const char *path)
{
	size_t n = strlen(dir);
	while (n > 1 && dir[n - 1] == '/')
		n--;
	return n && !strncmp(path, dir, n) && path[n] == '/' &&
	       lm_name_ok(path + n + 1);
}
