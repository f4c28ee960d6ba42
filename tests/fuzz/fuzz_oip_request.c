/*
 * fuzz_oip_request.c: libFuzzer target for the inference requests
 * laminad's HTTP front decodes (dataplane/oip.c), for a model of two
 * inputs (x: FP32 Bx3, k: INT64 B) and two outputs (y: FP32 Bx2, m: BOOL
 * B) at batch B = 4.  The input's first byte says where its JSON header
 * ends (the Inference-Header-Content-Length: 0 is none, else that many
 * bytes after the first, clamped); the rest is the body.  A request that
 * decodes is answered from a made-up answer bundle, as the front would.
 * Nothing may crash, overrun or leak, whatever the body.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "oip.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define BATCH 4

static void tensor(struct lm_dp_tdesc *t, char *name, lm_dtype dtype,
		   int64_t inner, size_t offset)
{
	t->name = name;
	t->dtype = dtype;
	t->rank = inner ? 2 : 1;
	t->dims[0] = BATCH;
	t->dims[1] = inner;
	t->nbytes = lm_dtype_size(dtype) * BATCH * (size_t)(inner ? inner : 1);
	t->offset = offset;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct lm_dp_layout in, out;
	static uint8_t answer[256];
	static char x[] = "x", k[] = "k", y[] = "y", m[] = "m";
	lm_oip_request r;
	lm_error e;
	if (!in.n) {
		in.n = out.n = 2;
		tensor(&in.t[0], x, LM_DT_FLOAT, 3, 0);
		tensor(&in.t[1], k, LM_DT_INT64, 0, 64);
		tensor(&out.t[0], y, LM_DT_FLOAT, 2, 0);
		tensor(&out.t[1], m, LM_DT_BOOL, 0, 64);
		in.bytes = out.bytes = 128;
		for (size_t i = 0; i < sizeof(answer); i++)
			answer[i] = (uint8_t)(i * 7); /* some NaNs too */
	}
	if (!size)
		return 0;
	size_t header = data[0], len = size - 1;
	if (header > len)
		header = len;
	/* a copy of its own, so reads past the body are ASan's to see */
	uint8_t *body = malloc(len ? len : 1);
	if (!body)
		return 0;
	memcpy(body, data + 1, len);
	if (!lm_oip_request_decode(body, len, header, &in, &out, BATCH, &r,
				   &e)) {
		uint8_t *resp;
		size_t n, hl;
		for (unsigned row0 = 0; row0 + r.rows <= BATCH; row0 += 3)
			if (!lm_oip_response_encode("model", &r, &out, answer,
						    BATCH, row0, &resp, &n,
						    &hl))
				free(resp);
	}
	lm_oip_request_free(&r);
	free(body);
	return 0;
}
