/*
 * fuzz_oip.c: libFuzzer target for the Open Inference Protocol answers
 * `lamina infer --url` reads (control/oip.c).  The input's first three
 * bytes choose the Inference-Header-Content-Length (absent, or a length
 * that may point anywhere, past the body too) and whether an id and an
 * output are asked for; the rest is the body.  Whatever it holds, the
 * reader either refuses it with a message or returns tensors whose bytes
 * their shapes account for exactly.  The model metadata and error-text
 * readers get the same body.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "oip.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const want[] = { "y" };
	oip_answer a;
	oip_model m;
	lm_error e;
	char text[200];
	size_t nbytes;
	if (size < 3)
		return 0;
	long long json_len = data[0] & 1 ? -1 : (data[1] | data[2] << 8);
	const char *body = (const char *)data + 3;
	size_t len = size - 3;
	int rc = oip_answer_read(body, len, json_len,
				 data[0] & 2 ? "1" : NULL, want,
				 data[0] & 4 ? 1 : 0, &a, &e);
	if (rc == 0)
		for (int i = 0; i < a.n; i++) {
			if (!a.names[i] ||
			    lm_shape_bytes(a.t[i].dtype, a.t[i].rank,
					   a.t[i].dims, &nbytes) ||
			    nbytes != a.t[i].nbytes || !a.t[i].data)
				abort(); /* bytes the shape does not account for */
			if (nbytes)
				((volatile uint8_t *)a.t[i].data)[nbytes - 1];
		}
	else if (!memchr(e.msg, 0, sizeof(e.msg)) || strchr(e.msg, '\n'))
		abort(); /* messages are one line */
	oip_answer_free(&a);
	if (oip_model_read(body, len, &m, &e) == 0)
		for (int i = 0; i < m.n_in; i++)
			if (!m.in[i])
				abort();
	oip_model_free(&m);
	oip_error_text(body, len, text, sizeof(text));
	if (strchr(text, '\n') || strlen(text) >= sizeof(text))
		abort();
	return 0;
}
