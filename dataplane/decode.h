/*
 * decode.h: LoadStage messages decoded and checked into stage specs, the
 * one place laminad turns protobuf into something it acts on (decode.c).
 * Only the control port includes this; it needs no EAL, so
 * tests/fuzz/fuzz_control.c runs it on any bytes.
 */
#ifndef LAMINA_DP_DECODE_H
#define LAMINA_DP_DECODE_H

#include "lamina.pb-c.h"
#include "lamina/common.h"
#include "spec.h"

/**
 * Decode and check a LoadStage: every field the spec holds is validated
 * here, so nothing past it sees protobuf or an unchecked value.
 * @return 0; -EINVAL naming the field and what is wrong.
 */
int lm_dp_spec_decode(const Lamina__LoadStageRequest *r,
		      struct lm_dp_stage_spec *s, lm_error *e);

#endif
