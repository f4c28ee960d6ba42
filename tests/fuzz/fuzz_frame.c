/*
 * fuzz_frame.c: libFuzzer target for the frame parser and the bundle
 * reassembler (dataplane/frame.c, dataplane/reasm.c).
 *
 * The input is a stream of frames, each a 2-byte little-endian length and
 * that many bytes.  Each frame is parsed and, when it parses, fed to a
 * small reassembler (4 bundles in flight, 64 KiB at most), with time
 * moving one tick per frame and expiry every 16 frames.  ASan checks every
 * byte written into the bundle buffers; the buffer count checks that
 * every buffer comes back.
 *
 * Random bytes never carry a valid CRC, which would hide the reassembler
 * from the fuzzer: when the first input byte is odd, each frame's lamina
 * checksum (and IPv4 header checksum) is recomputed before parsing, so
 * mutations of offsets, lengths and ids reach the reassembly logic.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <rte_ip.h>

#include "frame.h"
#include "reasm.h"

#define MAX_BUNDLE (64u << 10)

static int live;

static void *take(void *ctx, const lm_frame_info *f, int *why)
{
	(void)ctx;
	if (f->deployment == 0xdead) { /* an unknown deployment */
		*why = -ENOENT;
		return NULL;
	}
	if (f->total_len > MAX_BUNDLE)
		abort(); /* the reassembler let an oversize bundle through */
	live++;
	return malloc(f->total_len);
}

static void give(void *ctx, void *buf)
{
	(void)ctx;
	live--;
	free(buf);
}

/* Make the checksums of a frame right, whatever else is wrong with it. */
static void sign(uint8_t *p, size_t len)
{
	if (len < LM_FRAME_ETH_LEN + LM_FRAME_IP_LEN)
		return;
	size_t ihl = (size_t)(p[LM_FRAME_ETH_LEN] & 0x0f) * 4;
	if (ihl < LM_FRAME_IP_LEN || LM_FRAME_ETH_LEN + ihl > len)
		return;
	uint8_t *ip = p + LM_FRAME_ETH_LEN;
	ip[10] = ip[11] = 0;
	uint16_t c = (uint16_t)~rte_raw_cksum(ip, ihl);
	memcpy(ip + 10, &c, 2);
	size_t h = LM_FRAME_ETH_LEN + ihl + LM_FRAME_UDP_LEN;
	if (h + LM_FRAME_HDR_LEN > len)
		return;
	uint8_t *hdr = p + h;
	memset(hdr + 44, 0, 4);
	uint32_t crc = lm_frame_crc(hdr, hdr + LM_FRAME_HDR_LEN,
				    (uint32_t)(len - h - LM_FRAME_HDR_LEN));
	hdr[44] = (uint8_t)(crc >> 24);
	hdr[45] = (uint8_t)(crc >> 16);
	hdr[46] = (uint8_t)(crc >> 8);
	hdr[47] = (uint8_t)crc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	int resign = data[0] & 1;
	data++;
	size--;
	lm_reasm_config cfg = { .max_pending = 4, .max_bundle = MAX_BUNDLE,
				.recent = 8, .timeout_ns = 50 };
	lm_reasm_ops ops = { take, give, NULL };
	lm_reasm *r;
	if (lm_reasm_create(&cfg, &ops, &r))
		abort();
	uint8_t *frame = malloc(65536);
	uint64_t now = 0;
	while (size >= 2) {
		size_t len = (size_t)data[0] | (size_t)data[1] << 8;
		data += 2;
		size -= 2;
		if (len > size)
			len = size;
		/* a copy of exactly len bytes, so ASan sees any over-read */
		uint8_t *p = len ? memcpy(frame + 65536 - len, data, len)
				 : frame + 65536;
		data += len;
		size -= len;
		if (resign)
			sign(p, len);
		lm_frame_info f;
		lm_reasm_bundle done;
		if (lm_frame_parse(p, len, LM_FRAME_UDP_PORT, MAX_BUNDLE,
				   &f) == 0 &&
		    lm_reasm_push(r, &f, ++now, &done) == 1) {
			if (done.len > MAX_BUNDLE)
				abort();
			give(NULL, done.buf);
		}
		if (lm_reasm_pending(r) > cfg.max_pending)
			abort();
		if (now % 16 == 0)
			lm_reasm_expire(r, now);
	}
	lm_reasm_free(r);
	free(frame);
	if (live != 0)
		abort(); /* a buffer was lost or given back twice */
	return 0;
}
