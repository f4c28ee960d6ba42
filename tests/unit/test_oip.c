/*
 * test_oip.c: the Open Inference Protocol's bodies as laminad's HTTP
 * front decodes and encodes them (dataplane/oip.c), and the datatypes and
 * elements both ends share (lamina/oip_types.h): a model of two inputs
 * (x: FP32 Bx3, k: INT64 B) and two outputs (y: FP32 Bx2, m: BOOL B) at
 * batch 4; requests of 1 to 4 rows in JSON (flat and nested) and in the
 * binary extension; every way a request can fail to be the model's; the
 * response in JSON and binary with its header length; FP16/BF16 rounding;
 * a batch on axis 1 (1 sample or the whole batch) and a tensor without
 * a batch (whole batches only).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "harness.h"
#include "oip.h"

#define BATCH 4

static struct lm_dp_layout in, out;

static void tensor(struct lm_dp_tdesc *t, const char *name, lm_dtype dtype,
		   int64_t inner, size_t offset)
{
	t->name = (char *)name;
	t->dtype = dtype;
	t->rank = inner ? 2 : 1;
	t->dims[0] = BATCH;
	t->dims[1] = inner;
	t->nbytes = lm_dtype_size(dtype) * BATCH * (size_t)(inner ? inner : 1);
	t->offset = offset;
}

static void model(void)
{
	in.n = out.n = 2;
	tensor(&in.t[0], "x", LM_DT_FLOAT, 3, 0);
	tensor(&in.t[1], "k", LM_DT_INT64, 0, 64);
	tensor(&out.t[0], "y", LM_DT_FLOAT, 2, 0);
	tensor(&out.t[1], "m", LM_DT_BOOL, 0, 64);
	in.bytes = out.bytes = 128;
}

/* Decode a JSON body for a model of layouts i and o; returns the status,
 * r filled. */
static int decode_for(const char *body, const struct lm_dp_layout *i,
		      const struct lm_dp_layout *o, lm_oip_request *r,
		      lm_error *e)
{
	return lm_oip_request_decode((const uint8_t *)body, strlen(body), 0,
				     i, o, BATCH, r, e);
}

/* Decode a JSON body for the model above. */
static int decode(const char *body, lm_oip_request *r, lm_error *e)
{
	return decode_for(body, &in, &out, r, e);
}

/* The error message of a JSON body that must be refused. */
static const char *refused(const char *body)
{
	static lm_error e;
	lm_oip_request r;
	int rc = decode(body, &r, &e);
	lm_oip_request_free(&r);
	if (rc != -EINVAL) {
		printf("    not refused (%d): %s\n", rc, body);
		return "";
	}
	return e.msg;
}

#define REFUSED(body, words) CHECK(strstr(refused(body), words) != NULL)

TEST(json_flat_and_nested)
{
	lm_oip_request r;
	lm_error e;
	int rc = decode("{\"id\":\"7\",\"inputs\":["
			"{\"name\":\"k\",\"shape\":[2],\"datatype\":\"INT64\","
			"\"data\":[-5,9007199254740993]},"
			"{\"name\":\"x\",\"shape\":[2,3],\"datatype\":\"FP32\","
			"\"data\":[[1.5,-0.0,3],[4,5e-3,6]]}],"
			"\"parameters\":{\"timeout\":2500}}", &r, &e);
	CHECK_EQ_I64(rc, 0);
	CHECK(!strcmp(r.id, "7"));
	CHECK_EQ_I64(r.rows, 2);
	CHECK_EQ_I64(r.timeout_us, 2500);
	CHECK_EQ_I64(r.in_bytes[0], 24);
	CHECK_EQ_I64(r.in_bytes[1], 16);
	const float *x = (const float *)r.in[0];
	const int64_t *k = (const int64_t *)r.in[1];
	CHECK(x[0] == 1.5f && x[1] == 0 && signbit(x[1]) && x[4] == 5e-3f);
	CHECK(k[0] == -5 && k[1] == 9007199254740993LL); /* exact: integer */
	/* every output, JSON by default */
	CHECK_EQ_I64(r.n_out, 2);
	CHECK(r.out[0] == 0 && r.out[1] == 1 && !r.out_binary[0]);
	lm_oip_request_free(&r);
}

TEST(binary_inputs_and_outputs)
{
	char head[512];
	int n = snprintf(head, sizeof(head),
			 "{\"inputs\":[{\"name\":\"x\",\"shape\":[1,3],"
			 "\"datatype\":\"FP32\",\"parameters\":"
			 "{\"binary_data_size\":12}},{\"name\":\"k\",\"shape\":"
			 "[1],\"datatype\":\"INT64\",\"parameters\":"
			 "{\"binary_data_size\":8}}],\"outputs\":[{\"name\":"
			 "\"m\"},{\"name\":\"y\",\"parameters\":{"
			 "\"binary_data\":true}}]}");
	uint8_t body[600];
	float x[3] = { 1, NAN, -2 };
	int64_t k = 1LL << 40;
	memcpy(body, head, (size_t)n);
	memcpy(body + n, x, 12);
	memcpy(body + n + 12, &k, 8);
	lm_oip_request r;
	lm_error e;
	CHECK_EQ_I64(lm_oip_request_decode(body, (size_t)n + 20, (size_t)n, &in,
					   &out, BATCH, &r, &e), 0);
	CHECK_EQ_I64(r.rows, 1);
	CHECK(r.in[0] == body + n && r.in[1] == body + n + 12); /* no copy */
	CHECK(r.n_out == 2 && r.out[0] == 1 && r.out[1] == 0);
	CHECK(!r.out_binary[0] && r.out_binary[1]);
	/* the response: m as JSON, y binary after the header; rows 2..2 of a
	 * batch of 4 */
	uint8_t answer[128] = { 0 };
	float y[BATCH][2] = { { 0 }, { 0 }, { 0.1f, -0.0f }, { 0 } };
	memcpy(answer, y, sizeof(y));
	answer[64 + 2] = 1;
	uint8_t *resp;
	size_t len, hl;
	CHECK_EQ_I64(lm_oip_response_encode("mod", &r, &out, answer, BATCH, 2,
					    &resp, &len, &hl), 0);
	CHECK(hl > 0 && len == hl + 8);
	json_t *j = json_loadb((const char *)resp, hl, 0, NULL);
	CHECK(j != NULL);
	json_t *o0 = json_array_get(json_object_get(j, "outputs"), 0);
	json_t *o1 = json_array_get(json_object_get(j, "outputs"), 1);
	CHECK(!strcmp(json_string_value(json_object_get(j, "model_name")),
		      "mod"));
	CHECK(!json_object_get(j, "id")); /* none given, none returned */
	CHECK(!strcmp(json_string_value(json_object_get(o0, "name")), "m"));
	CHECK(json_is_true(json_array_get(json_object_get(o0, "data"), 0)));
	CHECK_EQ_I64(json_integer_value(json_array_get(
			     json_object_get(o0, "shape"), 0)), 1);
	CHECK_EQ_I64(json_integer_value(json_object_get(
			     json_object_get(o1, "parameters"),
			     "binary_data_size")), 8);
	CHECK(!json_object_get(o1, "data"));
	CHECK(!memcmp(resp + hl, y[2], 8)); /* -0.0 kept, bit for bit */
	json_decref(j);
	free(resp);
	lm_oip_request_free(&r);
}

TEST(json_answers_read_back_exactly)
{
	lm_oip_request r;
	lm_error e;
	int rc = decode("{\"id\":\"q\",\"inputs\":[{\"name\":\"x\","
			"\"shape\":[4,3],\"datatype\":\"FP32\",\"data\":"
			"[0,0,0,0,0,0,0,0,0,0,0,0]},{\"name\":\"k\","
			"\"shape\":[4],\"datatype\":\"INT64\",\"data\":"
			"[0,0,0,0]}],\"outputs\":[{\"name\":\"y\"}]}", &r, &e);
	CHECK_EQ_I64(rc, 0);
	float y[BATCH * 2];
	uint8_t answer[128] = { 0 };
	for (int i = 0; i < BATCH * 2; i++)
		y[i] = (float)(1.0 / (i + 3)) * (i & 1 ? -1e-30f : 1e20f);
	memcpy(answer, y, sizeof(y));
	uint8_t *resp;
	size_t len, hl;
	CHECK_EQ_I64(lm_oip_response_encode("mod", &r, &out, answer, BATCH, 0,
					    &resp, &len, &hl), 0);
	CHECK_EQ_I64(hl, 0);
	json_t *j = json_loadb((const char *)resp, len, 0, NULL);
	json_t *d = json_object_get(json_array_get(json_object_get(j,
								   "outputs"),
						   0), "data");
	CHECK(!strcmp(json_string_value(json_object_get(j, "id")), "q"));
	CHECK_EQ_I64(json_array_size(d), BATCH * 2);
	for (int i = 0; i < BATCH * 2; i++)
		CHECK((float)json_real_value(json_array_get(d, (size_t)i)) ==
		      y[i]);
	json_decref(j);
	free(resp);
	/* NaN has no JSON form */
	y[3] = NAN;
	memcpy(answer, y, sizeof(y));
	CHECK_EQ_I64(lm_oip_response_encode("mod", &r, &out, answer, BATCH, 0,
					    &resp, &len, &hl), -ERANGE);
	lm_oip_request_free(&r);
}

TEST(requests_that_are_not_the_models)
{
	const char *k1 = "{\"name\":\"k\",\"shape\":[1],\"datatype\":"
			 "\"INT64\",\"data\":[1]}";
	char b[1024];
	REFUSED("not json", "not JSON");
	REFUSED("[1,2]", "JSON object");
	REFUSED("{}", "\"inputs\"");
	REFUSED("{\"inputs\":[]}", "missing");
#define WITH_K(x) (snprintf(b, sizeof(b), "{\"inputs\":[%s,%s]}", x, k1), b)
	REFUSED(WITH_K("{\"name\":\"z\",\"shape\":[1,3],\"datatype\":"
		       "\"FP32\",\"data\":[1,2,3]}"), "unknown input 'z'");
	REFUSED(WITH_K("{\"name\":\"x\",\"shape\":[1,3],\"datatype\":"
		       "\"FP64\",\"data\":[1,2,3]}"), "model takes FP32");
	REFUSED(WITH_K("{\"name\":\"x\",\"shape\":[1,4],\"datatype\":"
		       "\"FP32\",\"data\":[1,2,3,4]}"), "shape must be");
	REFUSED(WITH_K("{\"name\":\"x\",\"shape\":[5,3],\"datatype\":"
		       "\"FP32\",\"data\":[]}"), "1 to 4 rows");
	REFUSED(WITH_K("{\"name\":\"x\",\"shape\":[0,3],\"datatype\":"
		       "\"FP32\",\"data\":[]}"), "1 to 4 rows");
	REFUSED(WITH_K("{\"name\":\"x\",\"shape\":[2,3],\"datatype\":"
		       "\"FP32\",\"data\":[1,2,3,4,5,6]}"), "same rows");
	REFUSED(WITH_K("{\"name\":\"x\",\"shape\":[1,3],\"datatype\":"
		       "\"FP32\",\"data\":[1,2]}"), "data has 2");
	REFUSED(WITH_K("{\"name\":\"x\",\"shape\":[1,3],\"datatype\":"
		       "\"FP32\",\"data\":[1,2,3,4]}"), "more than 3");
	REFUSED(WITH_K("{\"name\":\"x\",\"shape\":[1,3],\"datatype\":"
		       "\"FP32\",\"data\":[1,\"2\",3]}"), "element 1");
	REFUSED(WITH_K("{\"name\":\"x\",\"shape\":[1,3],\"datatype\":"
		       "\"FP32\",\"data\":[[[[[[[[[[1]]]]]]]]]]}"), "nested");
	REFUSED(WITH_K("{\"name\":\"x\",\"shape\":[1,3],\"datatype\":"
		       "\"FP32\",\"parameters\":{\"binary_data_size\":12}}"),
		"Inference-Header-Content-Length");
	REFUSED(WITH_K("{\"name\":\"x\",\"shape\":[1,3],\"datatype\":"
		       "\"FP32\"}"), "no \"data\"");
	REFUSED(WITH_K("{\"name\":\"k\",\"shape\":[1],\"datatype\":"
		       "\"INT64\",\"data\":[1]}"), "twice");
	REFUSED("{\"inputs\":[{\"name\":\"x\",\"shape\":[1,3],\"datatype\":"
		"\"FP32\",\"data\":[1,2,3]},{\"name\":\"k\",\"shape\":[1],"
		"\"datatype\":\"INT64\",\"data\":[1.5]}]}", "an integer");
	REFUSED("{\"id\":5,\"inputs\":[]}", "\"id\"");
	REFUSED("{\"parameters\":{\"timeout\":-1},\"inputs\":[]}",
		"microseconds");
	REFUSED("{\"inputs\":[{\"name\":\"x\",\"shape\":[1,3],\"datatype\":"
		"\"FP32\",\"data\":[1,2,3]},{\"name\":\"k\",\"shape\":[1],"
		"\"datatype\":\"INT64\",\"data\":[1]}],\"outputs\":[{\"name\":"
		"\"q\"}]}", "unknown output 'q'");
	/* binary: sizes that do not add up */
	const char *h = "{\"inputs\":[{\"name\":\"x\",\"shape\":[1,3],"
			"\"datatype\":\"FP32\",\"parameters\":"
			"{\"binary_data_size\":12}},{\"name\":\"k\",\"shape\":"
			"[1],\"datatype\":\"INT64\",\"parameters\":"
			"{\"binary_data_size\":8}}]}";
	uint8_t body[512] = { 0 };
	size_t n = strlen(h);
	memcpy(body, h, n);
	lm_oip_request r;
	lm_error e;
	CHECK_EQ_I64(lm_oip_request_decode(body, n + 19, n, &in, &out, BATCH,
					   &r, &e), -EINVAL);
	CHECK(strstr(e.msg, "past the end") != NULL);
	lm_oip_request_free(&r);
	CHECK_EQ_I64(lm_oip_request_decode(body, n + 21, n, &in, &out, BATCH,
					   &r, &e), -EINVAL);
	CHECK(strstr(e.msg, "after the last") != NULL);
	lm_oip_request_free(&r);
	CHECK_EQ_I64(lm_oip_request_decode(body, n, n + 1, &in, &out, BATCH,
					   &r, &e), -EINVAL);
	lm_oip_request_free(&r);
}

TEST(half_precision_rounds_to_nearest_even)
{
	/* 1 + 2^-11 is halfway between 1 and the next half: even is 1 */
	CHECK_EQ_I64(lm_float_to_half(1.0f + 0x1p-11f), 0x3c00);
	CHECK_EQ_I64(lm_float_to_half(1.0f + 0x1p-11f + 0x1p-20f), 0x3c01);
	CHECK_EQ_I64(lm_float_to_half(65520.0f), 0x7c00); /* overflow */
	CHECK_EQ_I64(lm_float_to_half(0x1p-24f), 0x0001); /* subnormal */
	CHECK(lm_half_to_float(0x0001) == 0x1p-24f);
	CHECK(lm_half_to_float(0xc000) == -2.0f);
	CHECK(isnan(lm_half_to_float(lm_float_to_half(NAN))));
	for (uint32_t h = 0; h < 0x7c00; h++) /* every finite half back */
		if (lm_float_to_half(lm_half_to_float((uint16_t)h)) != h) {
			CHECK(0);
			break;
		}
	CHECK_EQ_I64(lm_float_to_bf16(1.0f), 0x3f80);
	CHECK_EQ_I64(lm_float_to_bf16(1.0f + 0x1p-8f), 0x3f80); /* tie: even */
	CHECK_EQ_I64(lm_float_to_bf16(1.0f + 0x1p-8f + 0x1p-16f), 0x3f81);
	CHECK(isnan(lm_bf16_to_float(lm_float_to_bf16(NAN))));
	CHECK(!strcmp(lm_oip_datatype(LM_DT_BFLOAT16), "BF16"));
	CHECK_EQ_I64(lm_oip_dtype("BYTES"), LM_DT_UNDEFINED);
}

/* A model whose batch is on axis 1 of its input and output ([3, batch],
 * a sequence-first layout): requests carry 1 sample or the whole batch
 * on that axis, anything between is refused saying so, the metadata
 * shows -1 there and an answer of one sample has 1 there. */
TEST(moved_batch_on_axis_1)
{
	struct lm_dp_layout xin = { 0 }, xout = { 0 };
	lm_oip_request r;
	lm_error e;
	xin.n = xout.n = 1;
	xin.t[0] = (struct lm_dp_tdesc){ .name = "s", .dtype = LM_DT_FLOAT,
					 .rank = 2, .dims = { 3, BATCH },
					 .nbytes = 4 * 3 * BATCH,
					 .batch_axis = 1 };
	xout.t[0] = xin.t[0];
	xout.t[0].name = "t";
	xin.bytes = xout.bytes = 64;
	xin.moved_batch = xout.moved_batch = 1;
	const char *one = "{\"inputs\":[{\"name\":\"s\",\"shape\":[3,1],"
			  "\"datatype\":\"FP32\",\"data\":[1,2,3]}]}";
	int rc = decode_for(one, &xin, &xout, &r, &e);
	CHECK_EQ_I64(rc, 0);
	CHECK_EQ_I64(r.rows, 1);
	uint8_t data[64] = { 0 }, *body = NULL;
	size_t len = 0, hl = 0;
	CHECK_EQ_I64(lm_oip_response_encode("m", &r, &xout, data, BATCH, 0,
					    &body, &len, &hl),
		     0);
	CHECK(body && strstr((char *)body, "\"shape\":[3,1]"));
	free(body);
	lm_oip_request_free(&r);
	const char *two = "{\"inputs\":[{\"name\":\"s\",\"shape\":[3,2],"
			  "\"datatype\":\"FP32\",\"data\":[1,2,3,4,5,6]}]}";
	rc = decode_for(two, &xin, &xout, &r, &e);
	lm_oip_request_free(&r);
	CHECK_EQ_I64(rc, -EINVAL);
	CHECK(strstr(e.msg, "1 sample or the whole batch of 4 on axis 1"));
	const char *all = "{\"inputs\":[{\"name\":\"s\",\"shape\":[3,4],"
			  "\"datatype\":\"FP32\",\"data\":[1,2,3,4,5,6,7,8,"
			  "9,10,11,12]}]}";
	rc = decode_for(all, &xin, &xout, &r, &e);
	CHECK_EQ_I64(rc, 0);
	CHECK_EQ_I64(r.rows, BATCH);
	lm_oip_request_free(&r);
	char *meta = lm_oip_model_metadata("m", &xin, &xout, BATCH, &len);
	CHECK(meta && strstr(meta, "[3,-1]"));
	free(meta);
}

/* A model with an input that holds no batch: requests carry exactly the
 * plan's batch, a smaller one is refused saying which tensor is why, and
 * the metadata shows whole shapes, no -1. */
TEST(exact_batch_when_a_tensor_holds_none)
{
	struct lm_dp_layout xin = { 0 }, xout = { 0 };
	lm_oip_request r;
	lm_error e;
	xin.n = 2;
	xout.n = 1;
	xin.t[0] = (struct lm_dp_tdesc){ .name = "x", .dtype = LM_DT_FLOAT,
					 .rank = 2, .dims = { BATCH, 3 },
					 .nbytes = 4 * 3 * BATCH };
	xin.t[1] = (struct lm_dp_tdesc){ .name = "table",
					 .dtype = LM_DT_FLOAT, .rank = 1,
					 .dims = { 2 }, .nbytes = 8,
					 .offset = 64, .batch_axis = -1 };
	xout.t[0] = xin.t[0];
	xout.t[0].name = "y";
	xin.bytes = 128;
	xout.bytes = 64;
	xin.exact_batch = 1;
	const char *one = "{\"inputs\":[{\"name\":\"x\",\"shape\":[1,3],"
			  "\"datatype\":\"FP32\",\"data\":[1,2,3]},"
			  "{\"name\":\"table\",\"shape\":[2],"
			  "\"datatype\":\"FP32\",\"data\":[1,2]}]}";
	int rc = decode_for(one, &xin, &xout, &r, &e);
	lm_oip_request_free(&r);
	CHECK_EQ_I64(rc, -EINVAL);
	CHECK(strstr(e.msg, "'table' holds no batch") != NULL);
	CHECK(strstr(e.msg, "exactly the plan's batch of 4") != NULL);
	const char *all = "{\"inputs\":[{\"name\":\"x\",\"shape\":[4,3],"
			  "\"datatype\":\"FP32\",\"data\":[1,2,3,4,5,6,7,8,"
			  "9,10,11,12]},{\"name\":\"table\",\"shape\":[2],"
			  "\"datatype\":\"FP32\",\"data\":[1,2]}]}";
	rc = decode_for(all, &xin, &xout, &r, &e);
	CHECK_EQ_I64(rc, 0);
	CHECK_EQ_I64(r.rows, BATCH);
	lm_oip_request_free(&r);
	size_t len;
	char *meta = lm_oip_model_metadata("m", &xin, &xout, BATCH, &len);
	CHECK(meta && strstr(meta, "[4,3]") && !strstr(meta, "-1"));
	free(meta);
}

int main(void)
{
	model();
	RUN(json_flat_and_nested);
	RUN(binary_inputs_and_outputs);
	RUN(json_answers_read_back_exactly);
	RUN(requests_that_are_not_the_models);
	RUN(half_precision_rounds_to_nearest_even);
	RUN(moved_batch_on_axis_1);
	RUN(exact_batch_when_a_tensor_holds_none);
	return harness_done();
}
