/*
 * wire.h: the binary inference protocol of laminad's ingress port, which
 * lm_client (lamina/client.h) speaks.  wire.c is its one encoder and
 * decoder, used by the client and by laminad.
 *
 * All integers are little-endian whatever the host, no padding:
 *
 *   request  := u32 magic "LMRQ" (0x51524d4c)
 *               u32 length      bytes after this field, at most
 *                               LM_WIRE_MAX_BYTES
 *               u64 request_id  chosen by the client, echoed in the answer
 *               char deployment[32]   the deployment's id or name,
 *                               NUL-padded (at most 31 bytes)
 *               u32 n_tensors   then n_tensors times:
 *   tensor   := u32 dtype       ONNX TensorProto numbers (1: float32)
 *               u32 rank        at most LM_MAX_RANK
 *               i64 dims[rank]
 *               u64 nbytes      the element bytes of that shape
 *               u8  data[nbytes]
 *   answer   := u32 magic "LMRS" (0x53524d4c)
 *               u32 length      bytes after this field
 *               u64 request_id
 *               i32 status      0, or a negative errno
 *               u32 n           status 0: n_tensors, then the tensors;
 *                               otherwise the message's length, then
 *                               char message[n] (one line, no NUL)
 *
 * Tensors are the model's inputs (outputs) in manifest order.  What the
 * statuses mean is in lamina/client.h.  Every field read is untrusted:
 * decoders check magic, lengths against what remains and ranks.
 */
#ifndef LAMINA_WIRE_H
#define LAMINA_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "lamina/common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LM_WIRE_MAGIC_REQUEST 0x51524d4cu /* "LMRQ" */
#define LM_WIRE_MAGIC_ANSWER 0x53524d4cu  /* "LMRS" */
#define LM_WIRE_MAX_BYTES (256u << 20)
#define LM_WIRE_ID_LEN 32 /* the deployment field, NUL padding included */

/** Bytes of a request's fixed head (magic to n_tensors). */
#define LM_WIRE_REQ_HEAD 52
/** Of those, the bytes its length field counts. */
#define LM_WIRE_REQ_COUNTED 44
/** Bytes of an answer's head (magic to n). */
#define LM_WIRE_ANS_HEAD 24
/** Bytes of a tensor head that say its size: dtype and rank. */
#define LM_WIRE_TENSOR_PRE 8
/** Bytes of a tensor head of rank r (dtype, rank, dims, nbytes). */
#define LM_WIRE_TENSOR_HEAD(r) (16u + 8u * (unsigned)(r))

/* Little-endian loads and stores, whatever the host's order. */
static inline void lm_wire_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static inline void lm_wire_put64(uint8_t *p, uint64_t v)
{
	lm_wire_put32(p, (uint32_t)v);
	lm_wire_put32(p + 4, (uint32_t)(v >> 32));
}

static inline uint32_t lm_wire_get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static inline uint64_t lm_wire_get64(const uint8_t *p)
{
	return (uint64_t)lm_wire_get32(p) | (uint64_t)lm_wire_get32(p + 4)
						    << 32;
}

/** A request's fixed head, decoded. */
typedef struct lm_wire_req_head {
	uint32_t length;     /**< bytes after the length field */
	uint64_t request_id;
	char deployment[LM_WIRE_ID_LEN + 1]; /**< NUL-terminated */
	uint32_t n_tensors;
} lm_wire_req_head;

/** A tensor's head, decoded. */
typedef struct lm_wire_tensor {
	uint32_t dtype;
	uint32_t rank;
	int64_t dims[LM_MAX_RANK];
	uint64_t nbytes;
} lm_wire_tensor;

/**
 * Write a request head.  `length` is the bytes after the length field:
 * LM_WIRE_REQ_COUNTED plus every tensor's head and data.
 * @return 0; -EINVAL when deployment is empty or longer than 31 bytes.
 */
int lm_wire_req_head_put(uint8_t p[LM_WIRE_REQ_HEAD], uint32_t length,
			 uint64_t request_id, const char *deployment,
			 uint32_t n_tensors);

/**
 * Read a request head.
 * @return 0; -EPROTO for a wrong magic or a length shorter than the head
 *         (the stream cannot be followed: close it); -EMSGSIZE for a
 *         length above LM_WIRE_MAX_BYTES and -ENOENT for a deployment
 *         field without a NUL (h is filled: the request can be skipped).
 */
int lm_wire_req_head_get(const uint8_t p[LM_WIRE_REQ_HEAD],
			 lm_wire_req_head *h);

/**
 * Write a tensor head; returns its size, LM_WIRE_TENSOR_HEAD(rank).
 * rank must be 0..LM_MAX_RANK.
 */
size_t lm_wire_tensor_put(uint8_t *p, uint32_t dtype, int rank,
			  const int64_t *dims, uint64_t nbytes);

/**
 * The rank of a tensor head from its first LM_WIRE_TENSOR_PRE bytes.
 * @return 0 with *rank set; -EPROTO when it is above LM_MAX_RANK.
 */
int lm_wire_tensor_rank(const uint8_t p[LM_WIRE_TENSOR_PRE],
			uint32_t *rank);

/** Read a whole tensor head (LM_WIRE_TENSOR_HEAD(rank) bytes, the rank
 *  already checked by lm_wire_tensor_rank). */
void lm_wire_tensor_get(const uint8_t *p, lm_wire_tensor *t);

/**
 * Write an answer head.  For status 0, n is the tensor count and length
 * 16 plus the tensors' heads and data; otherwise n is the message length
 * and length 16 + n.
 */
void lm_wire_ans_head_put(uint8_t p[LM_WIRE_ANS_HEAD], uint32_t length,
			  uint64_t request_id, int32_t status, uint32_t n);

/** An answer's head, decoded. */
typedef struct lm_wire_ans_head {
	uint32_t length;
	uint64_t request_id;
	int32_t status;
	uint32_t n;
} lm_wire_ans_head;

/**
 * Read the first 8 bytes of an answer: magic and length.
 * @return 0; -EPROTO for a wrong magic or a length below 16 or above
 *         LM_WIRE_MAX_BYTES + 4096.
 */
int lm_wire_ans_length(const uint8_t p[8], uint32_t *length);

/** Read an answer head (its first LM_WIRE_ANS_HEAD bytes, the length
 *  already checked). */
void lm_wire_ans_head_get(const uint8_t p[LM_WIRE_ANS_HEAD],
			  lm_wire_ans_head *h);

#ifdef __cplusplus
}
#endif

#endif
