/*
 * transport_eth.h: tensor bundles over a DPDK ethdev port.
 *
 * One lm_dp_eth is one end of an edge between hosts on one port and queue
 * pair: lm_dp_eth_send cuts a bundle into frames (frame.h) in mbufs and
 * transmits them; lm_dp_eth_poll receives, parses and reassembles
 * (reasm.h) into buffers the caller's allocator gives, and returns the
 * bundles completed.  Any port works: a NIC's PMD in production, af_packet
 * or af_xdp on a veth in tests.  Both calls belong to one lcore each (send
 * and poll may be on different lcores).
 */
#ifndef LAMINA_DP_TRANSPORT_ETH_H
#define LAMINA_DP_TRANSPORT_ETH_H

#include <stdint.h>

#include <rte_mempool.h>

#include "frame.h"
#include "lamina/common.h"
#include "reasm.h"

typedef struct lm_dp_eth lm_dp_eth;

typedef struct lm_dp_eth_config {
	uint16_t port;		 /**< a started port (lm_dp_eth_port_start) */
	uint16_t queue;		 /**< its RX/TX queue pair */
	unsigned mtu;		 /**< the port's IP MTU */
	lm_frame_addr addr;	 /**< our and the peer's addresses */
	struct rte_mempool *tx_pool; /**< mbufs for frames we send */
	lm_reasm_config reasm;
	lm_reasm_ops buffers;	 /**< where received bundles go */
	/** test-only fault injection on send, per million frames */
	uint32_t dup_ppm, swap_ppm;
} lm_dp_eth_config;

typedef struct lm_dp_eth_stats {
	uint64_t tx_frames, tx_bundles, tx_full; /**< tx_full: no room */
	uint64_t tx_dup, tx_swapped; /**< frames the fault injection added
					  and pairs it swapped */
	uint64_t rx_frames, rx_not_ours, rx_bad;
	uint64_t rx_bad_checksum;
} lm_dp_eth_stats;

/**
 * Configure and start port `port` with one queue pair, RX mbufs from
 * rx_pool (whose data room must hold a frame at this MTU), the MTU set
 * when the port allows it, promiscuous on.
 * @return 0; -EINVAL naming the port and the step that failed.
 */
int lm_dp_eth_port_start(uint16_t port, unsigned mtu,
			 struct rte_mempool *rx_pool, lm_error *e);

/** Create one end of an edge.  Returns 0, -EINVAL, -ENOMEM. */
int lm_dp_eth_create(const lm_dp_eth_config *cfg, lm_dp_eth **out,
		     lm_error *e);

/** Free it (pending bundles' buffers are given back); safe on NULL. */
void lm_dp_eth_free(lm_dp_eth *t);

/**
 * Send one bundle of len bytes.  It is cut into frames of at most
 * lm_frame_payload_max(mtu) bytes, all transmitted before this returns
 * (retrying a full TX queue at most `spin` times per burst).
 * @return 0; -ENOBUFS when mbufs ran out or the queue stayed full (the
 *         bundle is then lost, as on a wire); -EMSGSIZE over 4 GiB.
 */
int lm_dp_eth_send(lm_dp_eth *t, const void *bundle, uint32_t len,
		   uint32_t deployment, uint32_t edge, uint64_t request_id,
		   unsigned spin);

/**
 * Send as much of a bundle as the TX queue takes now, without waiting:
 * for a link that loses nothing (memif), where a full queue only means the
 * peer has not read yet.  The bundle stays the caller's and must not
 * change until this returns 1; call again with the same bundle to go on
 * (a different one abandons the first).  Frames built that the queue
 * refused are kept for the next call.  No fault injection.
 * @return 1 when all of it is sent; 0 when the queue is full; -ENOBUFS
 *         when mbufs ran out (both: call again later); -EMSGSIZE.
 */
int lm_dp_eth_send_more(lm_dp_eth *t, const void *bundle, uint32_t len,
			uint32_t deployment, uint32_t edge,
			uint64_t request_id);

/** Give up the bundle lm_dp_eth_send_more is sending (counted in
 *  tx_full: lost); safe when there is none. */
void lm_dp_eth_send_abandon(lm_dp_eth *t);

/**
 * Receive what has arrived (one burst of up to 32 frames) and return the
 * bundles it completed, at most max.  Expires stale partial bundles.
 */
int lm_dp_eth_poll(lm_dp_eth *t, lm_reasm_bundle *done, int max,
		   uint64_t now_ns);

const lm_dp_eth_stats *lm_dp_eth_get_stats(const lm_dp_eth *t);
const lm_reasm_stats *lm_dp_eth_reasm_stats(const lm_dp_eth *t);

#endif
