/*
 * frame.c: building and parsing the fragments that carry tensor bundles
 * between hosts (the format is in frame.h).
 *
 * DPDK gives the header layouts (rte_ether.h, rte_ip.h, rte_udp.h) and
 * the IPv4 checksum; zlib the CRC-32 (DPDK's rte_hash_crc loads misaligned
 * words, which frames at any offset in a packet would give it).  The lamina
 * header is read and written field by field in network order so
 * nothing depends on struct layout or alignment of the received bytes.
 */
#include "frame.h"

#include <ctype.h>
#include <string.h>

#include <rte_byteorder.h>
#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_udp.h>
#include <zlib.h>


static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)(v >> 32));
	put32(p + 4, (uint32_t)v);
}

static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) << 32 | get32(p + 4);
}

uint32_t lm_frame_payload_max(unsigned mtu)
{
	unsigned over = LM_FRAME_IP_LEN + LM_FRAME_UDP_LEN + LM_FRAME_HDR_LEN;
	if (mtu > 65535)
		mtu = 65535;
	return mtu > over + LM_FRAME_MIN_UNIT ? mtu - over : 0;
}

uint32_t lm_frame_deployment_key(const char *deployment)
{
	uint32_t key = 0;
	int digits = 0;
	for (const char *c = deployment; c && *c; c++) {
		if (!isxdigit((unsigned char)*c))
			continue;
		int v = isdigit((unsigned char)*c)
				? *c - '0'
				: tolower((unsigned char)*c) - 'a' + 10;
		key = key << 4 | (uint32_t)v;
		digits++;
	}
	return digits ? key : 0;
}

int lm_frame_fits(const lm_frame_info *f, uint32_t total, uint32_t unit)
{
	if (!total || unit < LM_FRAME_MIN_UNIT || f->frag_offset % unit ||
	    f->frag_offset >= total)
		return 0;
	uint32_t left = total - f->frag_offset;
	return f->frag_len == (left < unit ? left : unit);
}

static int range_ok(const lm_frame_info *f, uint32_t max_total)
{
	return f->total_len <= max_total &&
	       lm_frame_fits(f, f->total_len, f->frag_unit);
}

uint32_t lm_frame_crc(const uint8_t *hdr, const uint8_t *payload,
		      uint32_t len)
{
	uLong crc = crc32(0L, Z_NULL, 0);
	crc = crc32(crc, hdr, LM_FRAME_HDR_LEN);
	return (uint32_t)crc32(crc, payload, len);
}

/* The lamina header; checksum over it (with a zero field) and payload. */
static void put_header(uint8_t *h, const lm_frame_info *f,
		       const uint8_t *payload)
{
	put32(h, LM_FRAME_MAGIC);
	h[4] = LM_FRAME_VERSION;
	h[5] = 0;
	h[6] = 0;
	h[7] = LM_FRAME_HDR_LEN;
	put32(h + 8, f->deployment);
	put32(h + 12, f->edge);
	put64(h + 16, f->request_id);
	put32(h + 24, f->bundle_id);
	put32(h + 28, f->frag_offset);
	put32(h + 32, f->frag_len);
	put32(h + 36, f->frag_unit);
	put32(h + 40, f->total_len);
	put32(h + 44, 0);
	put32(h + 44, lm_frame_crc(h, payload, f->frag_len));
}

size_t lm_frame_build(uint8_t *buf, size_t cap, const lm_frame_addr *a,
		      const lm_frame_info *info, const void *bundle)
{
	if (!range_ok(info, UINT32_MAX))
		return 0;
	size_t len = LM_FRAME_OVERHEAD + (size_t)info->frag_len;
	if (len > cap || len - LM_FRAME_ETH_LEN > 65535)
		return 0;
	const uint8_t *payload = (const uint8_t *)bundle + info->frag_offset;

	struct rte_ether_hdr eth;
	memcpy(eth.dst_addr.addr_bytes, a->dst_mac, 6);
	memcpy(eth.src_addr.addr_bytes, a->src_mac, 6);
	eth.ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
	memcpy(buf, &eth, sizeof(eth));

	struct rte_ipv4_hdr ip;
	memset(&ip, 0, sizeof(ip));
	ip.version_ihl = RTE_IPV4_VHL_DEF;
	ip.total_length = rte_cpu_to_be_16(
		(uint16_t)(len - LM_FRAME_ETH_LEN));
	ip.fragment_offset = rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG);
	ip.time_to_live = 64;
	ip.next_proto_id = IPPROTO_UDP;
	ip.src_addr = rte_cpu_to_be_32(a->src_ip);
	ip.dst_addr = rte_cpu_to_be_32(a->dst_ip);
	ip.hdr_checksum = rte_ipv4_cksum(&ip);
	memcpy(buf + LM_FRAME_ETH_LEN, &ip, sizeof(ip));

	struct rte_udp_hdr udp;
	udp.src_port = rte_cpu_to_be_16(a->src_port);
	udp.dst_port = rte_cpu_to_be_16(a->dst_port);
	udp.dgram_len = rte_cpu_to_be_16(
		(uint16_t)(len - LM_FRAME_ETH_LEN - LM_FRAME_IP_LEN));
	udp.dgram_cksum = 0; /* optional over IPv4; the lamina CRC covers it */
	memcpy(buf + LM_FRAME_ETH_LEN + LM_FRAME_IP_LEN, &udp, sizeof(udp));

	uint8_t *h = buf + LM_FRAME_OVERHEAD - LM_FRAME_HDR_LEN;
	memcpy(h + LM_FRAME_HDR_LEN, payload, info->frag_len);
	put_header(h, info, payload);
	return len;
}

int lm_frame_parse(const uint8_t *pkt, size_t len, uint16_t port,
		   uint32_t max_total, lm_frame_info *out)
{
	struct rte_ether_hdr eth;
	struct rte_ipv4_hdr ip;
	struct rte_udp_hdr udp;

	if (len < LM_FRAME_ETH_LEN + LM_FRAME_IP_LEN)
		return LM_FRAME_NOT_OURS;
	memcpy(&eth, pkt, sizeof(eth));
	if (eth.ether_type != rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4))
		return LM_FRAME_NOT_OURS;
	memcpy(&ip, pkt + LM_FRAME_ETH_LEN, sizeof(ip));
	size_t ihl = (size_t)(ip.version_ihl & 0x0f) * 4;
	if ((ip.version_ihl >> 4) != 4 || ip.next_proto_id != IPPROTO_UDP)
		return LM_FRAME_NOT_OURS;
	if (ihl < LM_FRAME_IP_LEN)
		return LM_FRAME_BAD_HEADER;
	/* a padded frame may be longer than its IP packet, never shorter */
	size_t ip_len = rte_be_to_cpu_16(ip.total_length);
	if (ip_len > len - LM_FRAME_ETH_LEN)
		return LM_FRAME_TRUNCATED;
	if (ip_len < ihl + LM_FRAME_UDP_LEN)
		return LM_FRAME_BAD_HEADER;
	/* a header whose checksum holds sums to 0xffff (af_packet ports do
	 * not check it for us as a NIC would) */
	if (rte_raw_cksum(pkt + LM_FRAME_ETH_LEN, ihl) != 0xffff)
		return LM_FRAME_BAD_CHECKSUM;
	/* IP fragments (MF set or an offset) are not ours to reassemble */
	if (rte_be_to_cpu_16(ip.fragment_offset) &
	    (RTE_IPV4_HDR_MF_FLAG | RTE_IPV4_HDR_OFFSET_MASK))
		return LM_FRAME_NOT_OURS;
	const uint8_t *u = pkt + LM_FRAME_ETH_LEN + ihl;
	memcpy(&udp, u, sizeof(udp));
	if (rte_be_to_cpu_16(udp.dst_port) != port)
		return LM_FRAME_NOT_OURS;
	size_t udp_len = rte_be_to_cpu_16(udp.dgram_len);
	if (udp_len > ip_len - ihl || udp_len < LM_FRAME_UDP_LEN)
		return LM_FRAME_BAD_HEADER;
	size_t body = udp_len - LM_FRAME_UDP_LEN;
	const uint8_t *h = u + LM_FRAME_UDP_LEN;
	if (body < LM_FRAME_HDR_LEN)
		return LM_FRAME_TRUNCATED;
	if (get32(h) != LM_FRAME_MAGIC || h[4] != LM_FRAME_VERSION ||
	    (h[6] << 8 | h[7]) != LM_FRAME_HDR_LEN)
		return LM_FRAME_BAD_HEADER;

	lm_frame_info f;
	f.deployment = get32(h + 8);
	f.edge = get32(h + 12);
	f.request_id = get64(h + 16);
	f.bundle_id = get32(h + 24);
	f.frag_offset = get32(h + 28);
	f.frag_len = get32(h + 32);
	f.frag_unit = get32(h + 36);
	f.total_len = get32(h + 40);
	if (f.frag_len != body - LM_FRAME_HDR_LEN)
		return f.frag_len > body - LM_FRAME_HDR_LEN
			       ? LM_FRAME_TRUNCATED
			       : LM_FRAME_BAD_HEADER;
	if (!range_ok(&f, max_total))
		return LM_FRAME_BAD_RANGE;
	f.payload = h + LM_FRAME_HDR_LEN;

	uint8_t copy[LM_FRAME_HDR_LEN];
	memcpy(copy, h, sizeof(copy));
	memset(copy + 44, 0, 4);
	if (lm_frame_crc(copy, f.payload, f.frag_len) != get32(h + 44))
		return LM_FRAME_BAD_CHECKSUM;
	f.src_ip = rte_be_to_cpu_32(ip.src_addr);
	f.src_port = rte_be_to_cpu_16(udp.src_port);
	*out = f;
	return 0;
}
