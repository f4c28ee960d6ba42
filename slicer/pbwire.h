/*
 * pbwire.h: walk the top-level fields of a serialized protobuf message
 * without decoding them.
 *
 * protobuf-c decodes whole messages and copies every bytes field.  For a
 * model of hundreds of megabytes that doubles the memory needed just to look
 * at it, so the ONNX reader uses this walker to find where each initializer
 * lies in the mapped file and hands each one to protobuf-c alone, when it is
 * needed.  Everything else is decoded by protobuf-c.
 */
#ifndef LAMINA_PBWIRE_H
#define LAMINA_PBWIRE_H

#include <stddef.h>
#include <stdint.h>

enum { PB_VARINT = 0, PB_FIXED64 = 1, PB_BYTES = 2, PB_FIXED32 = 5 };

struct pb_field {
	uint32_t number;
	int wire_type;
	size_t start;    /* offset of the tag */
	size_t end;      /* offset just past the field */
	size_t data_off; /* PB_BYTES: offset of the payload */
	size_t data_len; /* PB_BYTES: payload length */
};

/**
 * Read the field at *pos of buf[0, len) and advance *pos past it.
 * @return 1 when a field was read, 0 at the end of the buffer, -EINVAL when
 *         the bytes are not a well-formed field (bad tag, length past the
 *         end, groups, which ONNX never uses).
 */
int pb_next(const uint8_t *buf, size_t len, size_t *pos, struct pb_field *f);

#endif
