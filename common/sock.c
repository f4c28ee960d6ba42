/*
 * sock.c: bounded blocking TCP client sockets (see lamina/sock.h).
 */
#include "lamina/sock.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

static int wait_fd(int fd, short what, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = what };
	for (;;) {
		int r = poll(&p, 1, timeout_ms);
		if (r > 0)
			return 0;
		if (r == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

int lm_sock_connect(const char *host, uint16_t port, int timeout_ms, int *out,
		    lm_error *e)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICSERV }, *res, *ai;
	char ps[8];
	int rc = -ECONNREFUSED;
	snprintf(ps, sizeof(ps), "%u", port);
	int g = getaddrinfo(host, ps, &hints, &res);
	if (g)
		return lm_fail(e, -EHOSTUNREACH, "%s: %s", host,
			       gai_strerror(g));
	for (ai = res; ai; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK |
				SOCK_CLOEXEC, 0), err = 0, one = 1;
		socklen_t len = sizeof(err);
		if (fd < 0) {
			rc = -errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
			rc = errno == EINPROGRESS
				     ? wait_fd(fd, POLLOUT, timeout_ms) : -errno;
			if (!rc && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err,
					      &len) == 0 && err)
				rc = -err;
		} else {
			rc = 0;
		}
		if (rc) {
			close(fd);
			continue;
		}
		/* blocking from here on; every wait goes through poll */
		fcntl(fd, F_SETFL, 0);
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		struct timeval tv = { timeout_ms / 1000,
				      (timeout_ms % 1000) * 1000 };
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		*out = fd;
		break;
	}
	freeaddrinfo(res);
	if (rc)
		return lm_fail(e, rc, "cannot connect to %s port %u: %s", host,
			       port, rc == -ETIMEDOUT ? "timed out"
						     : strerror(-rc));
	return 0;
}

int lm_sock_accept(int lfd)
{
	static int spare = -2;
	if (spare == -2)
		spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
	int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd >= 0)
		return fd;
	if (errno == EWOULDBLOCK)
		return -EAGAIN;
	if ((errno == EMFILE || errno == ENFILE) && spare >= 0) {
		close(spare);
		fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd >= 0)
			close(fd);
		spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
		return -EMFILE;
	}
	return -errno;
}

void lm_sock_raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int lm_sock_read(int fd, void *buf, size_t n, int timeout_ms,
		 const char *peer, lm_error *e)
{
	uint8_t *p = buf;
	while (n) {
		int rc = wait_fd(fd, POLLIN, timeout_ms);
		if (rc)
			return lm_fail(e, rc, "no answer from %s: %s", peer,
				       rc == -ETIMEDOUT ? "timed out"
							: strerror(-rc));
		ssize_t r = recv(fd, p, n, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return lm_fail(e, r ? -errno : -ECONNRESET, "%s closed "
				       "the connection", peer);
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

int lm_sock_writev(int fd, struct iovec *iov, int n, const char *peer,
		   lm_error *e)
{
	while (n > 0) {
		struct msghdr mh = { .msg_iov = iov,
				     .msg_iovlen = (size_t)(n > 512 ? 512 : n) };
		ssize_t w = sendmsg(fd, &mh, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return lm_fail(e, errno == EAGAIN ? -ETIMEDOUT : -errno,
				       "cannot send to %s: %s", peer,
				       errno == EAGAIN ? "timed out"
						       : strerror(errno));
		size_t left = (size_t)w;
		while (n > 0 && left >= iov->iov_len) {
			left -= iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + left;
			iov->iov_len -= left;
		}
	}
	return 0;
}
