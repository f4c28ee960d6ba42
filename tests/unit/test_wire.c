/*
 * test_wire.c: the ingress wire format (dataplane/wire.c): bytes exactly
 * as lamina/wire.h specifies them (little-endian whatever the host), and
 * every malformed head refused with the status the ingress acts on.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "harness.h"
#include "lamina/wire.h"

TEST(request_head_bytes)
{
	uint8_t p[LM_WIRE_REQ_HEAD];
	lm_wire_req_head h;
	CHECK_EQ_I64(lm_wire_req_head_put(p, 1000, 0x0102030405060708ull,
					  "d-1a2b3c4d", 3), 0);
	static const uint8_t want[16] = { 'L', 'M', 'R', 'Q', 0xe8, 0x03, 0, 0,
					  8, 7, 6, 5, 4, 3, 2, 1 };
	CHECK(!memcmp(p, want, sizeof(want)));
	CHECK(!memcmp(p + 16, "d-1a2b3c4d", 11));
	CHECK(p[48] == 3 && p[49] == 0 && p[50] == 0 && p[51] == 0);
	CHECK_EQ_I64(lm_wire_req_head_get(p, &h), 0);
	CHECK_EQ_I64(h.length, 1000);
	CHECK(h.request_id == 0x0102030405060708ull);
	CHECK(!strcmp(h.deployment, "d-1a2b3c4d"));
	CHECK_EQ_I64(h.n_tensors, 3);
	/* names that do not fit are refused at the sender */
	CHECK_EQ_I64(lm_wire_req_head_put(p, 44, 1, "", 0), -EINVAL);
	CHECK_EQ_I64(lm_wire_req_head_put(p, 44, 1,
					  "0123456789012345678901234567890123",
					  0), -EINVAL);
}

TEST(request_head_refusals)
{
	uint8_t p[LM_WIRE_REQ_HEAD];
	lm_wire_req_head h;
	lm_wire_req_head_put(p, 44, 9, "x", 0);
	p[0] = 'X';
	CHECK_EQ_I64(lm_wire_req_head_get(p, &h), -EPROTO);
	lm_wire_req_head_put(p, 43, 9, "x", 0);
	CHECK_EQ_I64(lm_wire_req_head_get(p, &h), -EPROTO);
	lm_wire_req_head_put(p, LM_WIRE_MAX_BYTES + 1, 9, "x", 0);
	CHECK_EQ_I64(lm_wire_req_head_get(p, &h), -EMSGSIZE);
	CHECK(h.request_id == 9); /* known: the refusal can name it */
	lm_wire_req_head_put(p, 44, 9, "x", 0);
	memset(p + 16, 'a', LM_WIRE_ID_LEN); /* no NUL */
	CHECK_EQ_I64(lm_wire_req_head_get(p, &h), -ENOENT);
}

TEST(tensor_heads)
{
	uint8_t p[LM_WIRE_TENSOR_HEAD(LM_MAX_RANK)];
	int64_t dims[4] = { 1, 3, 224, 224 };
	lm_wire_tensor t;
	uint32_t rank;
	CHECK_EQ_I64(lm_wire_tensor_put(p, 1, 4, dims, 602112), 48);
	CHECK(p[0] == 1 && p[4] == 4 && p[8] == 1 && p[16] == 3);
	CHECK(p[24] == 224 && p[25] == 0);
	CHECK_EQ_I64(lm_wire_tensor_rank(p, &rank), 0);
	CHECK_EQ_I64(rank, 4);
	lm_wire_tensor_get(p, &t);
	CHECK_EQ_I64(t.dtype, 1);
	CHECK_EQ_I64(t.dims[3], 224);
	CHECK_EQ_I64(t.nbytes, 602112);
	lm_wire_put32(p + 4, LM_MAX_RANK + 1);
	CHECK_EQ_I64(lm_wire_tensor_rank(p, &rank), -EPROTO);
}

TEST(answer_heads)
{
	uint8_t p[LM_WIRE_ANS_HEAD];
	lm_wire_ans_head a;
	uint32_t len;
	lm_wire_ans_head_put(p, 16 + 5, 77, -EINVAL, 5);
	CHECK(!memcmp(p, "LMRS", 4));
	CHECK_EQ_I64(lm_wire_ans_length(p, &len), 0);
	CHECK_EQ_I64(len, 21);
	lm_wire_ans_head_get(p, &a);
	CHECK(a.request_id == 77 && a.status == -EINVAL && a.n == 5);
	lm_wire_put32(p + 4, 15);
	CHECK_EQ_I64(lm_wire_ans_length(p, &len), -EPROTO);
	lm_wire_put32(p, LM_WIRE_MAGIC_REQUEST);
	lm_wire_put32(p + 4, 16);
	CHECK_EQ_I64(lm_wire_ans_length(p, &len), -EPROTO);
}

int main(void)
{
	RUN(request_head_bytes);
	RUN(request_head_refusals);
	RUN(tensor_heads);
	RUN(answer_heads);
	return harness_done();
}
