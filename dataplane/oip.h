/*
 * oip.h: the Open Inference Protocol's JSON (KServe v2, Triton's REST),
 * decoded and encoded for one model: inference requests (JSON tensors, or
 * the binary tensor data extension: a JSON header of
 * Inference-Header-Content-Length bytes, then every binary input's raw
 * little-endian bytes in input order), inference responses, model and
 * server metadata.  The specification is docs/specs/open-inference-protocol;
 * the binary extension is Triton's (binary_data_size, binary_data,
 * binary_data_output).
 *
 * Pure: no sockets, no EAL.  Everything decoded is untrusted: a request
 * that is not the model's (names, datatypes, shapes, sizes) is refused
 * with one line saying why, never a crash.
 *
 * A model is a layout at the plan's batch (bundle.h): requests carry 1 to
 * batch rows along axis 0 of every input, the same count in each; or,
 * when the model holds its batch elsewhere (exact_batch), exactly the
 * model's shapes, the plan's whole batch.
 */
#ifndef LAMINA_DP_OIP_H
#define LAMINA_DP_OIP_H

#include <stddef.h>
#include <stdint.h>

#include "bundle.h"
#include "lamina/oip_types.h"

#define LM_OIP_ID_MAX 256 /* bytes of a request id, NUL included */

/**
 * The samples a request's tensor of this shape carries for tensor t of a
 * layout (exact: the deployment takes whole batches; moved: 1 sample or
 * the whole batch), or 0 when the shape is not one it takes: the
 * model's, with 1 to batch samples along t's batch axis.
 */
int64_t lm_dp_shape_rows(const struct lm_dp_tdesc *t, int exact, int moved,
			 unsigned batch, int rank, const int64_t *dims);

/**
 * Why a request to a pipeline with input layout `in` and answer layout
 * `out` must carry exactly its batch (either has exact_batch), as a
 * clause for an error: "'x' holds the batch on axis 1, so a request
 * carries exactly the plan's batch of 8".  "" when requests may carry 1 to
 * batch rows.
 */
const char *lm_dp_layout_exact_why(const struct lm_dp_layout *in,
				   const struct lm_dp_layout *out,
				   unsigned batch, char *buf, size_t len);
/** A decoded inference request. */
typedef struct lm_oip_request {
	char id[LM_OIP_ID_MAX]; /* "" when the request has none */
	unsigned rows;		/* of every input */
	/* per model input (layout order): its rows' bytes, pointing into the
	 * body (binary) or to owned[i] (decoded from JSON) */
	const uint8_t *in[LM_DP_MAX_TENSORS];
	size_t in_bytes[LM_DP_MAX_TENSORS];
	uint8_t *owned[LM_DP_MAX_TENSORS];
	/* the outputs to return, in order: model output index, binary */
	int n_out;
	int out[LM_DP_MAX_TENSORS];
	uint8_t out_binary[LM_DP_MAX_TENSORS];
	uint64_t timeout_us; /* parameters.timeout; 0: none */
} lm_oip_request;

/**
 * Decode an inference request for model `in` (its inputs at batch
 * `batch`) with outputs `out`.  header_len is the body's
 * Inference-Header-Content-Length (0: the whole body is JSON).
 * @return 0; -EINVAL (an HTTP 400) with e saying why.  Free with
 *         lm_oip_request_free either way.
 */
int lm_oip_request_decode(const uint8_t *body, size_t len, size_t header_len,
			  const struct lm_dp_layout *in,
			  const struct lm_dp_layout *out, unsigned batch,
			  lm_oip_request *r, lm_error *e);
void lm_oip_request_free(lm_oip_request *r);

/**
 * Encode the response to r from its rows of the answer bundle's data
 * (tensor i's rows at data + t[i].offset + row0 * t[i].nbytes / batch).
 * *body is malloc'd; *header_len is the JSON's length when some output is
 * binary (the Inference-Header-Content-Length to send), else 0.
 * @return 0; -ERANGE when a JSON output holds a NaN or an infinity (JSON
 *         has no such numbers: binary outputs carry them); -ENOMEM.
 */
int lm_oip_response_encode(const char *model, const lm_oip_request *r,
			   const struct lm_dp_layout *out, const uint8_t *data,
			   unsigned batch, unsigned row0, uint8_t **body,
			   size_t *len, size_t *header_len);

/** {"error": msg}, malloc'd; NULL when out of memory. */
char *lm_oip_error(const char *msg, size_t *len);

/**
 * Model metadata ({"name", "versions", "platform", "inputs", "outputs",
 * "properties": {"max_batch_size"}}), batch dims as -1, and the ready answer ({"name", "ready"}); malloc'd
 * JSON, NULL when out of memory.
 */
char *lm_oip_model_metadata(const char *name, const struct lm_dp_layout *in,
			    const struct lm_dp_layout *out, unsigned batch,
			    size_t *len);
char *lm_oip_model_ready(const char *name, int ready, size_t *len);
/** Server metadata: {"name": "lamina", "version", "extensions"}. */
char *lm_oip_server_metadata(const char *version, size_t *len);
/** {"live": b} and {"ready": b}. */
char *lm_oip_flag(const char *key, int value, size_t *len);

#endif
