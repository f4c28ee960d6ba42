/*
 * oip_types.h: the Open Inference Protocol's datatypes and tensor
 * elements in JSON, one definition for both of lamina's ends of it: the
 * client (`lamina infer --url`, control/oip.c) and laminad's HTTP front
 * (dataplane/oip.c).
 *
 * Datatypes: BOOL, UINT8..UINT64, INT8..INT64, FP16, FP32, FP64 and BF16,
 * the ONNX types of the same names.  In JSON, BOOL elements are true or
 * false (0 and 1 are taken too), integer elements integers in their
 * type's range (UINT64 up to INT64_MAX, jansson's), floating-point ones
 * numbers; NaN and infinities have no JSON form.  Floating-point elements
 * are written with enough digits to read back exactly (JSON_REAL_PRECISION
 * lm_oip_precision(t) when dumping).
 */
#ifndef LAMINA_OIP_TYPES_H
#define LAMINA_OIP_TYPES_H

#include <stddef.h>

#include <jansson.h>

#include "lamina/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The OIP datatype of t ("FP32"); NULL when it has none. */
const char *lm_oip_datatype(lm_dtype t);

/** The dtype of an OIP datatype name; LM_DT_UNDEFINED when unknown. */
lm_dtype lm_oip_dtype(const char *datatype);

/**
 * Store JSON value v as element k of an array of dtype t at data.
 * @return 0; -EINVAL when v is not of t's kind or out of its range.
 */
int lm_oip_elem_from_json(lm_dtype t, void *data, size_t k, const json_t *v);

/** Element k of an array of dtype t as a new JSON value; NULL for a NaN or
 *  an infinity (or t without a JSON form, or out of memory). */
json_t *lm_oip_elem_to_json(lm_dtype t, const void *data, size_t k);

/** The JSON_REAL_PRECISION that writes t's values back exactly: 17 for
 *  FP64, 9 for the others. */
int lm_oip_precision(lm_dtype t);

#ifdef __cplusplus
}
#endif

#endif
