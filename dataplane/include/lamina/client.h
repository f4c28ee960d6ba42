/*
 * lamina/client.h: the C client of laminad's inference ingress.
 *
 * One connection to the ingress port (default 7701) carries many requests
 * at once (pipelined): lm_infer_send writes one, lm_infer_recv reads the
 * next answer, and answers come back in any order, matched by request id.
 * The bytes on the wire are specified in lamina/wire.h.  The library links
 * lamina's common/ only.
 *
 * A request whose tensors do not match the deployment (count, dtype,
 * shape, bytes) is answered with status -EINVAL and a message naming what
 * is wrong; an unknown deployment -ENOENT; a length above the limit
 * -EMSGSIZE; a stopped deployment -EAGAIN; a request cancelled by a
 * teardown -ECANCELED; one whose stages are on other laminads and that
 * got no answer after several sends -ETIMEDOUT.  A connection is closed by
 * laminad only when its framing is broken (bad magic, truncated stream).
 *
 * Shapes are exact: the deployment runs at the batch size it was loaded
 * with, so a request's tensors have that leading dim.  laminad keeps at
 * most 64 requests of one connection open (in the pipeline or answered
 * but unsent) and reads no further until the client takes answers: a
 * client that pipelines reads answers as it sends.
 */
#ifndef LAMINA_CLIENT_H
#define LAMINA_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "lamina/common.h"
#include "lamina/wire.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LM_INGRESS_PORT 7701

typedef struct lm_infer lm_infer;

/**
 * Connect to a laminad ingress port.
 * @param host  numeric address or host name
 * @param timeout_ms  for the connection and for each later answer
 * @return 0; -ECONNREFUSED when nothing listens; -ETIMEDOUT; other -errno.
 */
int lm_infer_connect(const char *host, uint16_t port, int timeout_ms,
		     lm_infer **out, lm_error *e);

/** Close the connection; safe on NULL. */
void lm_infer_free(lm_infer *c);

/**
 * Send one request without waiting for its answer.
 * @param inputs  contiguous tensors, in the model's input order
 * @return 0; -EINVAL for a deployment id too long or a bad tensor;
 *         -EMSGSIZE above LM_WIRE_MAX_BYTES; -errno from the socket.
 */
int lm_infer_send(lm_infer *c, const char *deployment, uint64_t request_id,
		  const lm_tensor *inputs, int n_inputs, lm_error *e);

/**
 * Wait for the next answer on this connection.
 * @param request_id  set to the id the answer is for
 * @param outputs     filled with up to max owned tensors (free each with
 *                    lm_tensor_free)
 * @param n_outputs   set to how many
 * @return 0; the answer's negative status with its message in e when the
 *         service refused the request (request_id is still set);
 *         -EPROTO for a malformed answer; -ETIMEDOUT; -errno.
 */
int lm_infer_recv(lm_infer *c, uint64_t *request_id, lm_tensor *outputs,
		  int max, int *n_outputs, lm_error *e);

#ifdef __cplusplus
}
#endif

#endif
