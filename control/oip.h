/*
 * oip.h: the bodies of the Open Inference Protocol's HTTP/REST API
 * (KServe v2, Triton; docs/specs/open-inference-protocol/) as `lamina
 * infer --url` writes and reads them, with Triton's binary tensor data
 * extension.  Only oip.c touches these bodies; oip_http.c carries them
 * over HTTP (libcurl).
 *
 * Inference request (POST /v2/models/NAME/infer):
 *   {"id": "1", "parameters": {...},
 *    "inputs": [{"name": N, "shape": [..], "datatype": "FP32",
 *                "data": [..flat..]}                      JSON form
 *               | {..., "parameters": {"binary_data_size": B}}],  binary
 *    "outputs": [{"name": N, "parameters": {"binary_data": true}}]}
 * In binary form the JSON is followed by each input's raw little-endian
 * bytes, in order, and the header Inference-Header-Content-Length gives
 * the JSON's length; without "outputs" the request parameter
 * "binary_data_output": true asks for every output in binary.
 *
 * Answer: {"model_name", "id", "outputs": [{"name", "shape", "datatype",
 * "data" | "parameters": {"binary_data_size": B}}]} followed by the binary
 * outputs' bytes in order (Inference-Header-Content-Length present when
 * any output is binary).  Errors: {"error": "text"} with an HTTP status.
 *
 * Datatypes: BOOL, UINT8..UINT64, INT8..INT64, FP16, FP32, FP64 (BYTES
 * and BF16 have no .npy form here and are refused).  Every field of an
 * answer is untrusted: each length, shape and value is checked before use.
 */
#ifndef LAMINA_OIP_H
#define LAMINA_OIP_H

#include <stddef.h>

#include "lamina/common.h"

/** "/v2/models/NAME" followed by suffix ("/infer", "" ...), NAME
 *  percent-encoded; malloc'd, NULL when out of memory. */
char *oip_model_path(const char *name, const char *suffix);

/** A request parameter from the command line: KEY=VALUE, VALUE a JSON
 *  number, true or false, else sent as a string. */
typedef struct oip_param {
	const char *key, *value;
} oip_param;

/** What one inference request sends. */
typedef struct oip_request {
	const char *id;                 /**< "id", or NULL */
	const oip_param *params;        /**< request parameters */
	int n_params;
	const char *const *in_names;    /**< input names, n_in of them */
	const lm_tensor *in;            /**< contiguous input tensors */
	int n_in;
	const char *const *out_names;   /**< outputs asked for; n_out 0: all */
	int n_out;
	int binary;                     /**< binary extension, else JSON */
} oip_request;

/**
 * Write the body of request q into *body (malloc'd, *len bytes; free
 * it); *json_len is the length of its JSON part (== *len in JSON form).
 * @return 0; -EINVAL naming the input whose datatype has no OIP name or
 *         whose values JSON cannot carry (NaN, infinity); -ENOMEM.
 */
int oip_request_write(const oip_request *q, char **body, size_t *len,
		      size_t *json_len, lm_error *e);

/** The tensors of an answer: names and tensors, both owned. */
typedef struct oip_answer {
	int n;
	char **names;
	lm_tensor *t;
} oip_answer;

/**
 * Read the answer to an inference request: body (len bytes) whose JSON
 * part is json_len bytes long (-1: the header was absent, all JSON).  id,
 * when not NULL, must match the answer's "id" if it has one.  Every
 * requested output name must be present.  Fills *a (free with
 * oip_answer_free, also after a failure).
 * @return 0; -EPROTO naming what is wrong (not JSON, a length, shape,
 *         datatype or value that does not fit); -ENOMEM.
 */
int oip_answer_read(const char *body, size_t len, long long json_len,
		    const char *id, const char *const *want, int n_want,
		    oip_answer *a, lm_error *e);

void oip_answer_free(oip_answer *a);

/** A model's input and output names (GET /v2/models/NAME), owned. */
typedef struct oip_model {
	int n_in, n_out;
	char **in, **out;
} oip_model;

/** Read a model metadata answer.  0, -EPROTO, -ENOMEM; free with
 *  oip_model_free (also after a failure). */
int oip_model_read(const char *body, size_t len, oip_model *m, lm_error *e);

void oip_model_free(oip_model *m);

/**
 * The text of an error answer, one line, into buf: its {"error"} string
 * when the body is such JSON, else the body's first bytes (spaces for
 * line breaks and control characters), else "(no error text)".
 */
const char *oip_error_text(const char *body, size_t len, char *buf,
			   size_t n);

#endif
