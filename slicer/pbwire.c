/*
 * pbwire.c: the field walker described in pbwire.h.  Every length read from
 * the buffer is checked against what remains before it is used.
 */
#include "pbwire.h"

#include <errno.h>

static int read_varint(const uint8_t *buf, size_t len, size_t *pos,
		       uint64_t *out)
{
	uint64_t v = 0;
	for (int shift = 0; shift < 64; shift += 7) {
		if (*pos >= len)
			return -EINVAL;
		uint8_t b = buf[(*pos)++];
		v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*out = v;
			return 0;
		}
	}
	return -EINVAL;
}

int pb_next(const uint8_t *buf, size_t len, size_t *pos, struct pb_field *f)
{
	uint64_t key, n;
	if (*pos >= len)
		return 0;
	f->start = *pos;
	if (read_varint(buf, len, pos, &key))
		return -EINVAL;
	f->number = (uint32_t)(key >> 3);
	f->wire_type = (int)(key & 7);
	f->data_off = 0;
	f->data_len = 0;
	if (f->number == 0 || key >> 3 > 0x1fffffff)
		return -EINVAL;
	switch (f->wire_type) {
	case PB_VARINT:
		if (read_varint(buf, len, pos, &n))
			return -EINVAL;
		break;
	case PB_FIXED64:
		if (len - *pos < 8)
			return -EINVAL;
		*pos += 8;
		break;
	case PB_FIXED32:
		if (len - *pos < 4)
			return -EINVAL;
		*pos += 4;
		break;
	case PB_BYTES:
		if (read_varint(buf, len, pos, &n) || n > len - *pos)
			return -EINVAL;
		f->data_off = *pos;
		f->data_len = (size_t)n;
		*pos += (size_t)n;
		break;
	default:
		return -EINVAL;
	}
	f->end = *pos;
	return 1;
}
