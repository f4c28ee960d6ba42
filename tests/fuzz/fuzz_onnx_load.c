/*
 * fuzz_onnx_load.c: libFuzzer target for everything a hostile .onnx file
 * reaches: the protobuf field walker, the ONNX reader, shape inference,
 * constant folding, the slicer and the slice writer.
 */
#include <stdint.h>
#include <stdio.h>

#include "lamina/slicer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	lm_onnx_model *m;
	lm_slicing *s = NULL;
	lm_error e;
	lm_slice_options opt = { LM_GRAN_LAYER, 0 };
	if (lm_onnx_load_memory(data, size, "fuzz.onnx", &m, &e))
		return 0;
	if (lm_onnx_prepare(m, NULL, 0, NULL, &e) == 0 &&
	    lm_slice_plan(lm_onnx_graph(m), &opt, &s, &e) == 0 && s->n > 0)
		lm_onnx_write_range(m, &s->slices[0], "/dev/null", &e);
	lm_slicing_free(s);
	lm_onnx_free(m);
	return 0;
}
