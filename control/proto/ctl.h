/*
 * ctl.h: the control channel between `lamina` and laminad (internal to
 * lamina: it exposes the protobuf-c types of lamina.proto).
 *
 * On a TCP connection to laminad's control port every message is a 4-byte
 * big-endian length followed by that many bytes of one encoded
 * lamina.Request (to laminad) or lamina.Reply (back); a Reply carries the
 * id of the Request it answers.  Lengths above LM_CONTROL_MAX_BYTES are
 * refused.  ctl.c is the one framing code of both ends: lm_ctl_* is the
 * client, lm_ctl_frame_* what laminad's control port uses.
 */
#ifndef LAMINA_CTL_H
#define LAMINA_CTL_H

#include <stddef.h>
#include <stdint.h>

#include "lamina/common.h"
#include "lamina.pb-c.h"

#define LM_CONTROL_PORT 7700
#define LM_CONTROL_MAX_BYTES (16u << 20)
#define LM_CTL_FRAME_HEAD 4

typedef struct lm_ctl lm_ctl;

/**
 * Connect to a laminad control port.
 * @param host  numeric address or host name
 * @param timeout_ms  for the connection and for each later reply
 * @return 0; -ECONNREFUSED when nothing listens; -ETIMEDOUT; other -errno.
 */
int lm_ctl_connect(const char *host, uint16_t port, int timeout_ms,
		   lm_ctl **out, lm_error *e);

/** Close the connection; safe on NULL. */
void lm_ctl_free(lm_ctl *c);

/**
 * Send one request (its id is filled in) and wait for the reply.
 * @param reply  set to the decoded reply on success; free it with
 *               lamina__reply__free_unpacked(reply, NULL)
 * @return 0; the reply's error code with its message in e when laminad
 *         refused the request; -EPROTO for a malformed reply; -errno.
 */
int lm_ctl_call(lm_ctl *c, Lamina__Request *req, Lamina__Reply **reply,
		lm_error *e);

/** The length a frame head announces. */
static inline uint32_t lm_ctl_frame_len(const uint8_t p[LM_CTL_FRAME_HEAD])
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

/** Write a frame head announcing n bytes. */
static inline void lm_ctl_frame_put(uint8_t p[LM_CTL_FRAME_HEAD], uint32_t n)
{
	p[0] = (uint8_t)(n >> 24);
	p[1] = (uint8_t)(n >> 16);
	p[2] = (uint8_t)(n >> 8);
	p[3] = (uint8_t)n;
}

#endif
