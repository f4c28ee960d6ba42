/*
 * fuzz_npy.c: libFuzzer target for the .npy reader (common/npy.c).  The
 * input is a whole file, given to lm_npy_read through a memfd; whatever
 * it holds, the reader either refuses it with a message or returns a
 * tensor whose bytes its shape accounts for exactly.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lamina/npy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int fd = -1;
	static char path[64];
	lm_tensor t;
	lm_error e;
	size_t nbytes;
	if (fd < 0) {
		fd = memfd_create("fuzz_npy", 0);
		if (fd < 0)
			abort();
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	}
	if (ftruncate(fd, 0) || pwrite(fd, data, size, 0) != (ssize_t)size)
		abort();
	if (lm_npy_read(path, &t, &e) == 0) {
		if (lm_shape_bytes(t.dtype, t.rank, t.dims, &nbytes) ||
		    nbytes != t.nbytes)
			abort(); /* a tensor its shape does not account for */
		if (nbytes)
			((volatile uint8_t *)t.data)[nbytes - 1];
		lm_tensor_free(&t);
	} else if (!e.msg[0]) {
		abort(); /* a refusal must say why */
	}
	return 0;
}
