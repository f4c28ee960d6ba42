/*
 * test_pbwire.c: the protobuf field walker (slicer/pbwire.c) reads well-
 * formed fields and refuses every field that would run past the buffer.
 */
#include <errno.h>

#include "harness.h"
#include "pbwire.h"

TEST(walks_every_wire_type)
{
	/* field 1 varint 300, field 2 bytes "abc", field 3 fixed32,
	 * field 4 fixed64 */
	const uint8_t buf[] = { 0x08, 0xac, 0x02, 0x12, 3, 'a', 'b', 'c',
				0x1d, 1, 2, 3, 4,
				0x21, 1, 2, 3, 4, 5, 6, 7, 8 };
	size_t pos = 0;
	struct pb_field f;
	CHECK_EQ_I64(pb_next(buf, sizeof(buf), &pos, &f), 1);
	CHECK_EQ_I64(f.number, 1);
	CHECK_EQ_I64(f.wire_type, PB_VARINT);
	CHECK_EQ_I64(pb_next(buf, sizeof(buf), &pos, &f), 1);
	CHECK_EQ_I64(f.number, 2);
	CHECK_EQ_I64(f.data_off, 5);
	CHECK_EQ_I64(f.data_len, 3);
	CHECK_EQ_I64(f.start, 3);
	CHECK_EQ_I64(f.end, 8);
	CHECK_EQ_I64(pb_next(buf, sizeof(buf), &pos, &f), 1);
	CHECK_EQ_I64(f.wire_type, PB_FIXED32);
	CHECK_EQ_I64(pb_next(buf, sizeof(buf), &pos, &f), 1);
	CHECK_EQ_I64(f.wire_type, PB_FIXED64);
	CHECK_EQ_I64(pb_next(buf, sizeof(buf), &pos, &f), 0);
}

TEST(length_past_the_end_is_refused)
{
	const uint8_t buf[] = { 0x12, 10, 'a', 'b' };
	size_t pos = 0;
	struct pb_field f;
	CHECK_EQ_I64(pb_next(buf, sizeof(buf), &pos, &f), -EINVAL);
}

TEST(huge_length_does_not_wrap)
{
	/* length 2^63: must not overflow pos + len */
	const uint8_t buf[] = { 0x12, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
				0x80, 0x80, 0x80, 0x01 };
	size_t pos = 0;
	struct pb_field f;
	CHECK_EQ_I64(pb_next(buf, sizeof(buf), &pos, &f), -EINVAL);
}

TEST(truncated_varint_and_fixed_are_refused)
{
	const uint8_t v[] = { 0x08, 0x80 };
	const uint8_t f32[] = { 0x1d, 1, 2 };
	const uint8_t f64[] = { 0x21, 1, 2, 3, 4, 5, 6, 7 };
	struct pb_field f;
	size_t pos = 0;
	CHECK_EQ_I64(pb_next(v, sizeof(v), &pos, &f), -EINVAL);
	pos = 0;
	CHECK_EQ_I64(pb_next(f32, sizeof(f32), &pos, &f), -EINVAL);
	pos = 0;
	CHECK_EQ_I64(pb_next(f64, sizeof(f64), &pos, &f), -EINVAL);
}

TEST(groups_and_field_zero_are_refused)
{
	const uint8_t group[] = { 0x0b };  /* field 1, start group */
	const uint8_t zero[] = { 0x00, 1 }; /* field 0 */
	struct pb_field f;
	size_t pos = 0;
	CHECK_EQ_I64(pb_next(group, sizeof(group), &pos, &f), -EINVAL);
	pos = 0;
	CHECK_EQ_I64(pb_next(zero, sizeof(zero), &pos, &f), -EINVAL);
}

int main(void)
{
	RUN(walks_every_wire_type);
	RUN(length_past_the_end_is_refused);
	RUN(huge_length_does_not_wrap);
	RUN(truncated_varint_and_fixed_are_refused);
	RUN(groups_and_field_zero_are_refused);
	return harness_done();
}
