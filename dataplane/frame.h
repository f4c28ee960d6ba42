/*
 * frame.h: the dataplane's wire format between hosts.
 *
 * A tensor bundle crossing hosts is cut into fragments, each sent in one
 * Ethernet frame as IPv4/UDP (so tcpdump and tshark read it) carrying this
 * header, all fields big-endian:
 *
 *	off  size  field
 *	  0     4  magic          "LMF1"
 *	  4     1  version        1
 *	  5     1  flags          0 (reserved)
 *	  6     2  header length  48
 *	  8     4  deployment     the deployment's key (lm_frame_deployment_key)
 *	 12     4  edge           which stage boundary of the deployment
 *	 16     8  request id     the client request the bundle belongs to
 *	 24     4  bundle id      per sender, new for every (re)sent bundle
 *	 28     4  fragment offset  bytes into the bundle
 *	 32     4  fragment length  payload bytes in this frame
 *	 36     4  fragment unit  the sender's fragment size: every fragment
 *	                          but the last is this long, offsets are
 *	                          multiples of it
 *	 40     4  total length   bytes of the whole bundle
 *	 44     4  checksum       CRC-32 (zlib's) of the header, this field
 *	                          zero, and the payload
 *
 * Everything read from a frame is untrusted: lm_frame_parse bounds every
 * length by what the frame holds before anything else looks at it.
 */
#ifndef LAMINA_DP_FRAME_H
#define LAMINA_DP_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define LM_FRAME_MAGIC 0x4c4d4631u /* "LMF1" */
#define LM_FRAME_VERSION 1
#define LM_FRAME_HDR_LEN 48
#define LM_FRAME_ETH_LEN 14
#define LM_FRAME_IP_LEN 20
#define LM_FRAME_UDP_LEN 8
/** Bytes before the payload: Ethernet, IPv4, UDP and lamina headers. */
#define LM_FRAME_OVERHEAD                                                  \
	(LM_FRAME_ETH_LEN + LM_FRAME_IP_LEN + LM_FRAME_UDP_LEN +           \
	 LM_FRAME_HDR_LEN)
#define LM_FRAME_UDP_PORT 7702
/** Smallest fragment unit accepted: bounds the fragments of a bundle. */
#define LM_FRAME_MIN_UNIT 256u

/** Where a frame goes: addresses in host byte order. */
typedef struct lm_frame_addr {
	uint8_t src_mac[6], dst_mac[6];
	uint32_t src_ip, dst_ip;
	uint16_t src_port, dst_port;
} lm_frame_addr;

/** One fragment's header, as built or as parsed. */
typedef struct lm_frame_info {
	uint32_t deployment;
	uint32_t edge;
	uint64_t request_id;
	uint32_t bundle_id;
	uint32_t frag_offset;
	uint32_t frag_len;
	uint32_t frag_unit;
	uint32_t total_len;
	uint32_t src_ip;	/**< parse: the sender (host order) */
	uint16_t src_port;	/**< parse: the sender's UDP port */
	const uint8_t *payload; /**< parse: frag_len bytes inside the frame */
} lm_frame_info;

/** Why lm_frame_parse refused a frame (negative return values). */
enum lm_frame_err {
	LM_FRAME_NOT_OURS = -1,	  /**< not IPv4/UDP to our port: not counted */
	LM_FRAME_TRUNCATED = -2,  /**< shorter than its headers say */
	LM_FRAME_BAD_HEADER = -3, /**< IPv4/UDP/lamina header inconsistent */
	LM_FRAME_BAD_RANGE = -4,  /**< offset/length/unit/total do not fit */
	LM_FRAME_BAD_CHECKSUM = -5,
};

/** The payload bytes one frame carries at this MTU (IP MTU, not frame). */
uint32_t lm_frame_payload_max(unsigned mtu);

/**
 * Is f a fragment of a bundle of `total` bytes cut in units of `unit`: the
 * offset a multiple of the unit inside the bundle, the length a whole unit
 * or what is left?  1 or 0.
 */
int lm_frame_fits(const lm_frame_info *f, uint32_t total, uint32_t unit);

/** The checksum of a header (its checksum field zero) and payload. */
uint32_t lm_frame_crc(const uint8_t *hdr, const uint8_t *payload,
		      uint32_t len);

/** The deployment key of an id "d-1a2b3c4d": its hex digits; 0 if none. */
uint32_t lm_frame_deployment_key(const char *deployment);

/**
 * Write one fragment: Ethernet, IPv4 (checksummed), UDP, header, and
 * info->frag_len bytes of the bundle starting at info->frag_offset.
 * @param bundle  the whole bundle (info->total_len bytes)
 * @return the frame's length, or 0 when it does not fit in cap or info is
 *         inconsistent.
 */
size_t lm_frame_build(uint8_t *buf, size_t cap, const lm_frame_addr *a,
		      const lm_frame_info *info, const void *bundle);

/**
 * Parse and check one received frame addressed to UDP port `port`.
 * @param max_total  largest bundle accepted
 * @return 0 with out filled (out->payload points into pkt), or an
 *         lm_frame_err.
 */
int lm_frame_parse(const uint8_t *pkt, size_t len, uint16_t port,
		   uint32_t max_total, lm_frame_info *out);

#endif
