/*
 * sock.h: blocking TCP client sockets with every wait bounded, for the
 * clients of laminad's ports (the control channel, the ingress).
 */
#ifndef LAMINA_SOCK_H
#define LAMINA_SOCK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "lamina/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Connect to host (a name or a numeric address) and port within
 * timeout_ms; the socket is blocking, TCP_NODELAY, with a send timeout of
 * timeout_ms.
 * @return 0 with *fd set; -ECONNREFUSED; -ETIMEDOUT; -EHOSTUNREACH when
 *         the name does not resolve; other -errno, named in e.
 */
int lm_sock_connect(const char *host, uint16_t port, int timeout_ms, int *fd,
		    lm_error *e);

/**
 * Read exactly n bytes, each wait at most timeout_ms.  `peer` names the
 * other end in messages ("laminad").
 * @return 0; -ETIMEDOUT; -ECONNRESET when the peer closed; -errno.
 */
int lm_sock_read(int fd, void *buf, size_t n, int timeout_ms,
		 const char *peer, lm_error *e);

/**
 * Write every byte of n iovecs (modified as they are consumed).
 * @return 0; -ETIMEDOUT when the send timeout expired; -errno.
 */
int lm_sock_writev(int fd, struct iovec *iov, int n, const char *peer,
		   lm_error *e);

/**
 * Accept one connection on non-blocking listening socket lfd (the new
 * socket non-blocking, close-on-exec).  When the process is out of file
 * descriptors the connection is accepted on a descriptor kept spare for
 * it and closed at once, so that a full table never leaves the listening
 * socket readable forever (a busy loop).
 * @return the new fd; -EAGAIN when none is pending; -EMFILE when one was
 *         refused for lack of descriptors; other -errno.
 */
int lm_sock_accept(int lfd);

/** Raise this process's open-file limit to its hard limit. */
void lm_sock_raise_nofile(void);

#ifdef __cplusplus
}
#endif

#endif
