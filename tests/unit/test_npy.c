/*
 * test_npy.c: NumPy .npy reading and writing (common/npy.c): round trips,
 * and one-line refusals of what lamina does not read.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "lamina/npy.h"
#include "lamina/runtime.h"

static const char *tmp_path(const char *name)
{
	static char buf[256];
	snprintf(buf, sizeof(buf), "/tmp/lamina_test_npy_%d_%s", (int)getpid(),
		 name);
	return buf;
}

static void write_raw(const char *path, const char *hdr, const void *data,
		      size_t n)
{
	FILE *f = fopen(path, "wb");
	unsigned char pre[10] = { 0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0,
				  (unsigned char)strlen(hdr), 0 };
	fwrite(pre, 1, 10, f);
	fwrite(hdr, 1, strlen(hdr), f);
	fwrite(data, 1, n, f);
	fclose(f);
}

TEST(round_trip_keeps_type_shape_and_data)
{
	lm_tensor t, r;
	int64_t dims[3] = { 2, 3, 4 };
	lm_error e;
	CHECK_EQ_I64(lm_tensor_alloc(&t, LM_DT_FLOAT, 3, dims), 0);
	for (int i = 0; i < 24; i++)
		((float *)t.data)[i] = (float)i * 0.5f;
	const char *p = tmp_path("rt.npy");
	CHECK_EQ_I64(lm_npy_write(p, &t, &e), 0);
	CHECK_EQ_I64(lm_npy_read(p, &r, &e), 0);
	CHECK_EQ_I64(r.dtype, LM_DT_FLOAT);
	CHECK_EQ_I64(r.rank, 3);
	CHECK_EQ_I64(r.dims[2], 4);
	CHECK_EQ_I64(r.strides[0], 12);
	CHECK(memcmp(r.data, t.data, t.nbytes) == 0);
	lm_tensor_free(&r);
	/* a 1-D int64 and a scalar */
	int64_t one = 5;
	lm_tensor_free(&t);
	CHECK_EQ_I64(lm_tensor_alloc(&t, LM_DT_INT64, 1, &one), 0);
	((int64_t *)t.data)[4] = -7;
	CHECK_EQ_I64(lm_npy_write(p, &t, &e), 0);
	CHECK_EQ_I64(lm_npy_read(p, &r, &e), 0);
	CHECK_EQ_I64(r.rank, 1);
	CHECK_EQ_I64(((int64_t *)r.data)[4], -7);
	lm_tensor_free(&r);
	lm_tensor_free(&t);
	CHECK_EQ_I64(lm_tensor_alloc(&t, LM_DT_DOUBLE, 0, NULL), 0);
	CHECK_EQ_I64(lm_npy_write(p, &t, &e), 0);
	CHECK_EQ_I64(lm_npy_read(p, &r, &e), 0);
	CHECK_EQ_I64(r.rank, 0);
	CHECK_EQ_I64(r.nbytes, 8);
	lm_tensor_free(&r);
	lm_tensor_free(&t);
	remove(p);
}

TEST(reads_what_numpy_writes)
{
	lm_tensor r;
	float d[6] = { 1, 2, 3, 4, 5, 6 };
	const char *p = tmp_path("np.npy");
	write_raw(p, "{'descr': '<f4', 'fortran_order': False, "
		     "'shape': (2, 3), }          \n", d, sizeof(d));
	CHECK_EQ_I64(lm_npy_read(p, &r, NULL), 0);
	CHECK_EQ_I64(r.dims[0], 2);
	CHECK(((float *)r.data)[5] == 6.0f);
	lm_tensor_free(&r);
	remove(p);
}

TEST(refuses_what_it_cannot_read)
{
	lm_tensor r;
	lm_error e;
	float d[6] = { 0 };
	const char *p = tmp_path("bad.npy");
	write_raw(p, "{'descr': '>f4', 'fortran_order': False, "
		     "'shape': (2, 3), }\n", d, sizeof(d));
	CHECK(lm_npy_read(p, &r, &e) < 0 && strstr(e.msg, ">f4"));
	write_raw(p, "{'descr': '<f4', 'fortran_order': True, "
		     "'shape': (2, 3), }\n", d, sizeof(d));
	CHECK(lm_npy_read(p, &r, &e) < 0 && strstr(e.msg, "Fortran"));
	write_raw(p, "{'descr': '<f4', 'fortran_order': False, "
		     "'shape': (2, 4), }\n", d, sizeof(d));
	CHECK(lm_npy_read(p, &r, &e) < 0 && strstr(e.msg, "needs 32"));
	write_raw(p, "{'descr': '<f4', 'fortran_order': False, "
		     "'shape': (1,2,3,4,5,6,7,8,9), }\n", d, sizeof(d));
	CHECK(lm_npy_read(p, &r, &e) < 0);
	FILE *f = fopen(p, "wb");
	fputs("hello", f);
	fclose(f);
	CHECK(lm_npy_read(p, &r, &e) < 0 && strstr(e.msg, "not a .npy"));
	CHECK(lm_npy_read("/nonexistent/x.npy", &r, &e) < 0);
	remove(p);
}

/* Issue 13, defect 2: a shape whose element count fits an int64 but whose
 * bytes (x 4) wrap a size_t to 4 was accepted with 4 data bytes, and a
 * model with a symbolic dim then ran past the buffer. */
TEST(refuses_a_shape_whose_bytes_overflow)
{
	lm_tensor r;
	lm_error e;
	float d[1] = { 1 };
	const char *p = tmp_path("huge.npy");
	write_raw(p, "{'descr': '<f4', 'fortran_order': False, "
		     "'shape': (4611686018427387905,), }\n", d, sizeof(d));
	CHECK(lm_npy_read(p, &r, &e) == -EINVAL && strstr(e.msg, "too large"));
	CHECK(r.data == NULL);
	write_raw(p, "{'descr': '<f8', 'fortran_order': False, "
		     "'shape': (4294967296, 4294967296), }\n", d, sizeof(d));
	CHECK(lm_npy_read(p, &r, &e) == -EINVAL);
	remove(p);
}

TEST(shape_bytes_is_checked)
{
	size_t n = 0;
	int64_t ok[2] = { 3, 5 }, neg[2] = { 3, -1 };
	int64_t big[2] = { INT64_MAX, 3 };
	CHECK_EQ_I64(lm_shape_bytes(LM_DT_FLOAT, 2, ok, &n), 0);
	CHECK_EQ_I64(n, 60);
	CHECK_EQ_I64(lm_shape_bytes(LM_DT_FLOAT, 2, neg, &n), -EINVAL);
	CHECK_EQ_I64(lm_shape_bytes(LM_DT_INT8, 2, big, &n), -EOVERFLOW);
	CHECK_EQ_I64(lm_shape_bytes(LM_DT_STRING, 2, ok, &n), -EINVAL);
	CHECK_EQ_I64(lm_shape_bytes(LM_DT_FLOAT, 0, NULL, &n), 0);
	CHECK_EQ_I64(n, 4);
}

int main(void)
{
	RUN(round_trip_keeps_type_shape_and_data);
	RUN(reads_what_numpy_writes);
	RUN(refuses_what_it_cannot_read);
	RUN(refuses_a_shape_whose_bytes_overflow);
	RUN(shape_bytes_is_checked);
	return harness_done();
}
