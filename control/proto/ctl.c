/*
 * ctl.c: the client end of the control channel (see ctl.h).  Blocking
 * sockets; every wait is bounded by the connection's timeout.
 */
#include "ctl.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/uio.h>
#include <unistd.h>

#include "lamina/sock.h"

struct lm_ctl {
	int fd, timeout_ms;
	uint64_t next_id;
};

int lm_ctl_connect(const char *host, uint16_t port, int timeout_ms,
		   lm_ctl **out, lm_error *e)
{
	lm_ctl *c = calloc(1, sizeof(*c));
	int rc;
	if (!c)
		return lm_fail(e, -ENOMEM, "out of memory");
	c->timeout_ms = timeout_ms;
	if ((rc = lm_sock_connect(host, port, timeout_ms, &c->fd, e))) {
		free(c);
		return rc;
	}
	*out = c;
	return 0;
}

void lm_ctl_free(lm_ctl *c)
{
	if (!c)
		return;
	close(c->fd);
	free(c);
}

int lm_ctl_call(lm_ctl *c, Lamina__Request *req, Lamina__Reply **reply,
		lm_error *e)
{
	uint8_t len[LM_CTL_FRAME_HEAD];
	int rc;
	*reply = NULL;
	req->id = ++c->next_id;
	size_t n = lamina__request__get_packed_size(req);
	if (n > LM_CONTROL_MAX_BYTES)
		return lm_fail(e, -EMSGSIZE, "control request of %zu bytes "
			       "(limit %u)", n, LM_CONTROL_MAX_BYTES);
	uint8_t *buf = malloc(n + LM_CTL_FRAME_HEAD);
	if (!buf)
		return lm_fail(e, -ENOMEM, "out of memory");
	lm_ctl_frame_put(buf, (uint32_t)n);
	lamina__request__pack(req, buf + LM_CTL_FRAME_HEAD);
	struct iovec iov = { buf, n + LM_CTL_FRAME_HEAD };
	rc = lm_sock_writev(c->fd, &iov, 1, "laminad", e);
	free(buf);
	if (rc || (rc = lm_sock_read(c->fd, len, sizeof(len), c->timeout_ms,
				     "laminad", e)))
		return rc;
	uint32_t m = lm_ctl_frame_len(len);
	if (m > LM_CONTROL_MAX_BYTES)
		return lm_fail(e, -EPROTO, "laminad sent a reply of %u bytes",
			       m);
	if (!(buf = malloc(m ? m : 1)))
		return lm_fail(e, -ENOMEM, "out of memory");
	if ((rc = lm_sock_read(c->fd, buf, m, c->timeout_ms, "laminad", e))) {
		free(buf);
		return rc;
	}
	Lamina__Reply *r = lamina__reply__unpack(NULL, m, buf);
	free(buf);
	if (!r)
		return lm_fail(e, -EPROTO, "laminad sent a reply that does not "
			       "decode");
	if (r->id != req->id && !(r->id == 0 && r->error)) {
		unsigned long long got = (unsigned long long)r->id;
		lamina__reply__free_unpacked(r, NULL);
		return lm_fail(e, -EPROTO, "reply to request %llu while waiting "
			       "for %llu", got, (unsigned long long)req->id);
	}
	if (r->error) {
		rc = r->error->code < 0 ? r->error->code : -EIO;
		lm_fail(e, rc, "%s", r->error->message ? r->error->message
						       : "refused");
		lamina__reply__free_unpacked(r, NULL);
		return rc;
	}
	*reply = r;
	return 0;
}
