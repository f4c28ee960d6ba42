/*
 * oip_types.c: the Open Inference Protocol's datatypes and tensor
 * elements in JSON (see lamina/oip_types.h).
 */
#include "lamina/oip_types.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

static const struct {
	lm_dtype t;
	const char *name;
} datatypes[] = {
	{ LM_DT_BOOL, "BOOL" },	    { LM_DT_UINT8, "UINT8" },
	{ LM_DT_UINT16, "UINT16" }, { LM_DT_UINT32, "UINT32" },
	{ LM_DT_UINT64, "UINT64" }, { LM_DT_INT8, "INT8" },
	{ LM_DT_INT16, "INT16" },   { LM_DT_INT32, "INT32" },
	{ LM_DT_INT64, "INT64" },   { LM_DT_FLOAT16, "FP16" },
	{ LM_DT_FLOAT, "FP32" },    { LM_DT_DOUBLE, "FP64" },
	{ LM_DT_BFLOAT16, "BF16" },
};

#define N_TYPES (sizeof(datatypes) / sizeof(datatypes[0]))

const char *lm_oip_datatype(lm_dtype t)
{
	for (size_t i = 0; i < N_TYPES; i++)
		if (datatypes[i].t == t)
			return datatypes[i].name;
	return NULL;
}

lm_dtype lm_oip_dtype(const char *name)
{
	for (size_t i = 0; name && i < N_TYPES; i++)
		if (!strcmp(datatypes[i].name, name))
			return datatypes[i].t;
	return LM_DT_UNDEFINED;
}

int lm_oip_precision(lm_dtype t)
{
	return t == LM_DT_DOUBLE ? 17 : 9;
}

int lm_oip_elem_from_json(lm_dtype t, void *data, size_t k, const json_t *v)
{
	uint8_t *p = data;
	if (t == LM_DT_FLOAT || t == LM_DT_DOUBLE || t == LM_DT_FLOAT16 ||
	    t == LM_DT_BFLOAT16) {
		if (!json_is_number(v))
			return -EINVAL;
		double x = json_number_value(v);
		float f = (float)x;
		uint16_t h;
		switch (t) {
		case LM_DT_FLOAT: memcpy(p + 4 * k, &f, 4); break;
		case LM_DT_DOUBLE: memcpy(p + 8 * k, &x, 8); break;
		case LM_DT_FLOAT16:
			h = lm_float_to_half(f);
			memcpy(p + 2 * k, &h, 2);
			break;
		default:
			h = lm_float_to_bf16(f);
			memcpy(p + 2 * k, &h, 2);
		}
		return 0;
	}
	json_int_t x;
	if (json_is_integer(v))
		x = json_integer_value(v);
	else if (t == LM_DT_BOOL && json_is_boolean(v))
		x = json_is_true(v);
	else
		return -EINVAL;
	switch (t) {
#define INT(T, lo, hi)                                                     \
	do {                                                               \
		if (x < (lo) || x > (hi))                                  \
			return -EINVAL;                                    \
		T y_ = (T)x;                                               \
		memcpy(p + sizeof(T) * k, &y_, sizeof(T));                 \
	} while (0)
	case LM_DT_BOOL: INT(uint8_t, 0, 1); break;
	case LM_DT_UINT8: INT(uint8_t, 0, UINT8_MAX); break;
	case LM_DT_INT8: INT(int8_t, INT8_MIN, INT8_MAX); break;
	case LM_DT_UINT16: INT(uint16_t, 0, UINT16_MAX); break;
	case LM_DT_INT16: INT(int16_t, INT16_MIN, INT16_MAX); break;
	case LM_DT_UINT32: INT(uint32_t, 0, UINT32_MAX); break;
	case LM_DT_INT32: INT(int32_t, INT32_MIN, INT32_MAX); break;
	case LM_DT_INT64: INT(int64_t, INT64_MIN, INT64_MAX); break;
	case LM_DT_UINT64: INT(uint64_t, 0, INT64_MAX); break;
#undef INT
	default:
		return -EINVAL;
	}
	return 0;
}

json_t *lm_oip_elem_to_json(lm_dtype t, const void *data, size_t k)
{
	const uint8_t *p = data;
	double d;
	switch (t) {
#define GET(T, make)                                                       \
	do {                                                               \
		T v_;                                                      \
		memcpy(&v_, p + sizeof(T) * k, sizeof(T));                 \
		return make;                                               \
	} while (0)
	case LM_DT_BOOL: return json_boolean(p[k]);
	case LM_DT_UINT8: GET(uint8_t, json_integer(v_));
	case LM_DT_INT8: GET(int8_t, json_integer(v_));
	case LM_DT_UINT16: GET(uint16_t, json_integer(v_));
	case LM_DT_INT16: GET(int16_t, json_integer(v_));
	case LM_DT_UINT32: GET(uint32_t, json_integer(v_));
	case LM_DT_INT32: GET(int32_t, json_integer(v_));
	case LM_DT_INT64: GET(int64_t, json_integer(v_));
	case LM_DT_UINT64: /* above INT64_MAX: no exact JSON integer here */
		GET(uint64_t, v_ <= INT64_MAX ? json_integer((json_int_t)v_)
					      : NULL);
#undef GET
	case LM_DT_FLOAT: {
		float f;
		memcpy(&f, p + 4 * k, 4);
		d = f;
		break;
	}
	case LM_DT_DOUBLE: memcpy(&d, p + 8 * k, 8); break;
	case LM_DT_FLOAT16:
	case LM_DT_BFLOAT16: {
		uint16_t h;
		memcpy(&h, p + 2 * k, 2);
		d = t == LM_DT_FLOAT16 ? lm_half_to_float(h)
				       : lm_bf16_to_float(h);
		break;
	}
	default:
		return NULL;
	}
	return json_real(d); /* NULL for NaN and infinities */
}
