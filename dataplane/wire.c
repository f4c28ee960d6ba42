/*
 * wire.c: the ingress protocol's encoder and decoder (lamina/wire.h).
 */
#include "lamina/wire.h"

#include <errno.h>
#include <string.h>

int lm_wire_req_head_put(uint8_t p[LM_WIRE_REQ_HEAD], uint32_t length,
			 uint64_t request_id, const char *deployment,
			 uint32_t n_tensors)
{
	size_t dl = deployment ? strlen(deployment) : 0;
	if (dl == 0 || dl >= LM_WIRE_ID_LEN)
		return -EINVAL;
	memset(p, 0, LM_WIRE_REQ_HEAD);
	lm_wire_put32(p, LM_WIRE_MAGIC_REQUEST);
	lm_wire_put32(p + 4, length);
	lm_wire_put64(p + 8, request_id);
	memcpy(p + 16, deployment, dl);
	lm_wire_put32(p + 16 + LM_WIRE_ID_LEN, n_tensors);
	return 0;
}

int lm_wire_req_head_get(const uint8_t p[LM_WIRE_REQ_HEAD],
			 lm_wire_req_head *h)
{
	memset(h, 0, sizeof(*h));
	if (lm_wire_get32(p) != LM_WIRE_MAGIC_REQUEST)
		return -EPROTO;
	h->length = lm_wire_get32(p + 4);
	if (h->length < LM_WIRE_REQ_COUNTED)
		return -EPROTO;
	h->request_id = lm_wire_get64(p + 8);
	memcpy(h->deployment, p + 16, LM_WIRE_ID_LEN);
	h->deployment[LM_WIRE_ID_LEN] = '\0';
	h->n_tensors = lm_wire_get32(p + 16 + LM_WIRE_ID_LEN);
	if (h->length > LM_WIRE_MAX_BYTES)
		return -EMSGSIZE;
	if (strlen(h->deployment) >= LM_WIRE_ID_LEN)
		return -ENOENT;
	return 0;
}

size_t lm_wire_tensor_put(uint8_t *p, uint32_t dtype, int rank,
			  const int64_t *dims, uint64_t nbytes)
{
	lm_wire_put32(p, dtype);
	lm_wire_put32(p + 4, (uint32_t)rank);
	for (int k = 0; k < rank; k++)
		lm_wire_put64(p + 8 + 8 * (size_t)k, (uint64_t)dims[k]);
	lm_wire_put64(p + 8 + 8 * (size_t)rank, nbytes);
	return LM_WIRE_TENSOR_HEAD(rank);
}

int lm_wire_tensor_rank(const uint8_t p[LM_WIRE_TENSOR_PRE], uint32_t *rank)
{
	*rank = lm_wire_get32(p + 4);
	return *rank > LM_MAX_RANK ? -EPROTO : 0;
}

void lm_wire_tensor_get(const uint8_t *p, lm_wire_tensor *t)
{
	memset(t, 0, sizeof(*t));
	t->dtype = lm_wire_get32(p);
	t->rank = lm_wire_get32(p + 4);
	for (uint32_t k = 0; k < t->rank && k < LM_MAX_RANK; k++)
		t->dims[k] = (int64_t)lm_wire_get64(p + 8 + 8 * (size_t)k);
	t->nbytes = lm_wire_get64(p + 8 + 8 * (size_t)t->rank);
}

void lm_wire_ans_head_put(uint8_t p[LM_WIRE_ANS_HEAD], uint32_t length,
			  uint64_t request_id, int32_t status, uint32_t n)
{
	lm_wire_put32(p, LM_WIRE_MAGIC_ANSWER);
	lm_wire_put32(p + 4, length);
	lm_wire_put64(p + 8, request_id);
	lm_wire_put32(p + 16, (uint32_t)status);
	lm_wire_put32(p + 20, n);
}

int lm_wire_ans_length(const uint8_t p[8], uint32_t *length)
{
	*length = lm_wire_get32(p + 4);
	if (lm_wire_get32(p) != LM_WIRE_MAGIC_ANSWER || *length < 16 ||
	    *length > LM_WIRE_MAX_BYTES + 4096u)
		return -EPROTO;
	return 0;
}

void lm_wire_ans_head_get(const uint8_t p[LM_WIRE_ANS_HEAD],
			  lm_wire_ans_head *h)
{
	h->length = lm_wire_get32(p + 4);
	h->request_id = lm_wire_get64(p + 8);
	h->status = (int32_t)lm_wire_get32(p + 16);
	h->n = lm_wire_get32(p + 20);
}
