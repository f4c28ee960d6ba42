/*
 * lamina/client.h: the C client library of laminad.
 *
 * Two connections, two protocols:
 *
 *  - the control port (default 7700): length-prefixed protobuf-c messages
 *    of control/proto/lamina.proto.  lm_client_call sends one Request and
 *    returns its Reply.
 *
 *  - the ingress port (default 7701): inference requests in the binary
 *    protocol below.  One connection may carry many requests at once
 *    (pipelined); answers come back in any order, matched by request id.
 *
 * Ingress protocol (all integers little-endian, no padding):
 *
 *   request  := u32 magic "LMRQ" (0x51524d4c)  u32 length (bytes after
 *               this field, at most LM_INGRESS_MAX_BYTES)
 *               u64 request_id  char deployment[32] (NUL-padded)
 *               u32 n_tensors   tensor * n_tensors
 *   tensor   := u32 dtype (ONNX TensorProto numbers)  u32 rank (<= 8)
 *               i64 dims[rank]  u64 nbytes  u8 data[nbytes]
 *   answer   := u32 magic "LMRS" (0x53524d4c)  u32 length
 *               u64 request_id  i32 status (0, or a negative errno)
 *               status == 0: u32 n_tensors  tensor * n_tensors
 *               status != 0: u32 message length  char message[]
 *
 * Tensors are the model's inputs (outputs), in the order of its manifest.
 * A request whose tensors do not match the deployment (count, dtype, shape,
 * bytes) gets an answer with status -EINVAL and a message naming what is
 * wrong; an unknown deployment -ENOENT; a length above the limit
 * -EMSGSIZE.  A connection is closed only when its framing is broken
 * (bad magic, truncated stream).
 *
 * Shapes are exact: the deployment runs at the batch size it was loaded
 * with, so a request's tensors have that leading dim.  Other statuses: a
 * stopped deployment -EAGAIN; a request cancelled by a teardown
 * -ECANCELED.  laminad keeps at most 64 requests of one connection open
 * (in the pipeline or answered but unsent) and reads no further until the
 * client takes answers: a client that pipelines reads answers as it sends.
 */
#ifndef LAMINA_CLIENT_H
#define LAMINA_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "lamina/common.h"
#include "lamina.pb-c.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LM_CONTROL_PORT 7700
#define LM_INGRESS_PORT 7701
#define LM_INGRESS_MAGIC_REQUEST 0x51524d4cu /* "LMRQ" */
#define LM_INGRESS_MAGIC_ANSWER 0x53524d4cu  /* "LMRS" */
#define LM_INGRESS_MAX_BYTES (256u << 20)
#define LM_CONTROL_MAX_BYTES (16u << 20)
#define LM_DEPLOYMENT_MAX 32 /* bytes of a deployment id, NUL included */

/* ---- control port ---- */

typedef struct lm_client lm_client;

/**
 * Connect to a laminad control port.
 * @param host  numeric address or host name
 * @param timeout_ms  for the connection and for each later reply
 * @return 0; -ECONNREFUSED when nothing listens; -ETIMEDOUT; other -errno.
 */
int lm_client_connect(const char *host, uint16_t port, int timeout_ms,
		      lm_client **out, lm_error *e);

/** Close the connection; safe on NULL. */
void lm_client_free(lm_client *c);

/**
 * Send one request (its id is filled in) and wait for the reply.
 * @param reply  set to the decoded reply on success; free it with
 *               lamina__reply__free_unpacked(reply, NULL)
 * @return 0; the reply's error code with its message in e when laminad
 *         refused the request; -EPROTO for a malformed reply; -errno.
 */
int lm_client_call(lm_client *c, Lamina__Request *req, Lamina__Reply **reply,
		   lm_error *e);

/* ---- ingress ---- */

typedef struct lm_infer lm_infer;

/** Connect to a laminad ingress port.  Same returns as lm_client_connect. */
int lm_infer_connect(const char *host, uint16_t port, int timeout_ms,
		     lm_infer **out, lm_error *e);

/** Close the connection; safe on NULL. */
void lm_infer_free(lm_infer *c);

/**
 * Send one request without waiting for its answer.
 * @param inputs  contiguous tensors, in the model's input order
 * @return 0; -EINVAL for a deployment id too long; -errno from the socket.
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
