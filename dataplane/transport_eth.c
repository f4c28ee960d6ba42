/*
 * transport_eth.c: tensor bundles over a DPDK ethdev port (see
 * transport_eth.h).  Set-up (port_start, create) fails loudly; the two
 * fast-path calls, send and poll, allocate nothing but mbufs from their
 * pools and the bundle buffers the caller's allocator hands out.
 */
#include "transport_eth.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <rte_ethdev.h>
#include <rte_mbuf.h>

#define BURST 32
#define RX_DESC 1024
#define TX_DESC 1024

struct lm_dp_eth {
	lm_dp_eth_config cfg;
	lm_reasm *reasm;
	lm_dp_eth_stats stats;
	uint32_t unit;
	uint32_t next_bundle;
	uint64_t rng;
	/* lm_dp_eth_send_more: the bundle being sent, the offset of its next
	 * frame to build, and frames built that the queue did not take yet */
	lm_frame_info pend;
	const void *pend_buf;
	struct rte_mbuf *held[BURST];
	uint16_t n_held;
};

int lm_dp_eth_port_start(uint16_t port, unsigned mtu,
			 struct rte_mempool *rx_pool, lm_error *e)
{
	struct rte_eth_conf conf;
	struct rte_eth_dev_info info;
	int rc;

	memset(&conf, 0, sizeof(conf));
	if (!rte_eth_dev_is_valid_port(port))
		return lm_fail(e, -EINVAL, "port %u does not exist", port);
	if ((rc = rte_eth_dev_info_get(port, &info)))
		return lm_fail(e, -EINVAL, "port %u: no device info (%s)",
			       port, rte_strerror(-rc));
	if (mtu > info.max_mtu)
		return lm_fail(e, -EINVAL, "port %u (%s): MTU %u is above its "
			       "maximum %u", port, info.driver_name, mtu,
			       info.max_mtu);
	/* some PMDs (af_packet, memif) state a standard frame as their largest
	 * receive length yet take a larger MTU once started */
	unsigned over = RTE_ETHER_HDR_LEN + RTE_ETHER_CRC_LEN;
	conf.rxmode.mtu = info.max_rx_pktlen > over &&
				  mtu > info.max_rx_pktlen - over
			  ? info.max_rx_pktlen - over
			  : mtu;
	if ((rc = rte_eth_dev_configure(port, 1, 1, &conf)))
		return lm_fail(e, -EINVAL, "port %u (%s): configure: %s", port,
			       info.driver_name, rte_strerror(-rc));
	uint16_t nrx = RX_DESC, ntx = TX_DESC;
	if ((rc = rte_eth_dev_adjust_nb_rx_tx_desc(port, &nrx, &ntx)))
		return lm_fail(e, -EINVAL, "port %u: descriptors: %s", port,
			       rte_strerror(-rc));
	int socket = rte_eth_dev_socket_id(port);
	if (socket < 0)
		socket = (int)rte_socket_id();
	if ((rc = rte_eth_rx_queue_setup(port, 0, nrx, (unsigned)socket, NULL,
					 rx_pool)) ||
	    (rc = rte_eth_tx_queue_setup(port, 0, ntx, (unsigned)socket,
					 NULL)))
		return lm_fail(e, -EINVAL, "port %u (%s): queue set-up: %s",
			       port, info.driver_name, rte_strerror(-rc));
	if ((rc = rte_eth_dev_start(port)))
		return lm_fail(e, -EINVAL, "port %u (%s): start: %s", port,
			       info.driver_name, rte_strerror(-rc));
	uint16_t now_mtu = 0;
	if (rte_eth_dev_get_mtu(port, &now_mtu) || now_mtu < mtu) {
		/* af_packet reports a standard frame as its limit, but what it
		 * carries is the kernel interface's MTU (set with `ip link`)
		 * up to its ring frame size: the ethdev MTU does not apply.
		 * memif has no MTU at all: a frame of any length crosses in
		 * chained shared-memory buffers and arrives in one mbuf when
		 * rx_pool's data room holds it (the caller's part) */
		rc = rte_eth_dev_set_mtu(port, (uint16_t)mtu);
		if (rc && (strstr(info.driver_name, "af_packet") ||
			   strstr(info.driver_name, "memif")))
			rc = 0;
		if (rc) {
			rte_eth_dev_stop(port);
			return lm_fail(e, -EINVAL, "port %u (%s): cannot take MTU "
				       "%u: %s", port, info.driver_name, mtu,
				       rte_strerror(-rc));
		}
	}
	rte_eth_promiscuous_enable(port);
	return 0;
}

int lm_dp_eth_create(const lm_dp_eth_config *cfg, lm_dp_eth **out,
		     lm_error *e)
{
	*out = NULL;
	uint32_t unit = lm_frame_payload_max(cfg->mtu);
	if (!unit)
		return lm_fail(e, -EINVAL, "MTU %u leaves no room for a "
			       "fragment", cfg->mtu);
	if (!cfg->tx_pool ||
	    rte_pktmbuf_data_room_size(cfg->tx_pool) <
		    RTE_PKTMBUF_HEADROOM + LM_FRAME_ETH_LEN + cfg->mtu)
		return lm_fail(e, -EINVAL, "the TX mbufs are smaller than a "
			       "frame at MTU %u", cfg->mtu);
	lm_dp_eth *t = calloc(1, sizeof(*t));
	if (!t)
		return lm_fail(e, -ENOMEM, "out of memory");
	t->cfg = *cfg;
	t->unit = unit;
	t->rng = 0x9e3779b97f4a7c15ull ^ cfg->addr.src_ip;
	int rc = lm_reasm_create(&cfg->reasm, &cfg->buffers, &t->reasm);
	if (rc) {
		free(t);
		return lm_fail(e, rc, "reassembly tables: %s",
			       rc == -EINVAL ? "bad settings"
					     : "out of memory");
	}
	*out = t;
	return 0;
}

void lm_dp_eth_free(lm_dp_eth *t)
{
	if (!t)
		return;
	lm_dp_eth_send_abandon(t);
	lm_reasm_free(t->reasm);
	free(t);
}

static uint32_t ppm_roll(lm_dp_eth *t)
{
	t->rng ^= t->rng << 13;
	t->rng ^= t->rng >> 7;
	t->rng ^= t->rng << 17;
	return (uint32_t)(t->rng % 1000000);
}

/* Transmit n mbufs, retrying a full queue; free what could not go. */
static void transmit(lm_dp_eth *t, struct rte_mbuf **m, uint16_t n,
		     unsigned spin, int *lost)
{
	uint16_t sent = 0;
	for (unsigned tries = 0; sent < n && tries <= spin; tries++)
		sent += rte_eth_tx_burst(t->cfg.port, t->cfg.queue, m + sent,
					 (uint16_t)(n - sent));
	t->stats.tx_frames += sent;
	if (sent < n) {
		t->stats.tx_full++;
		rte_pktmbuf_free_bulk(m + sent, n - sent);
		*lost = 1;
	}
}

/* One frame of the bundle in a fresh mbuf, or NULL. */
static struct rte_mbuf *frame_mbuf(lm_dp_eth *t, const lm_frame_info *f,
				   const void *bundle)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(t->cfg.tx_pool);
	if (!m)
		return NULL;
	size_t len = lm_frame_build(rte_pktmbuf_mtod(m, uint8_t *),
				    rte_pktmbuf_tailroom(m), &t->cfg.addr, f,
				    bundle);
	if (!len) {
		rte_pktmbuf_free(m);
		return NULL;
	}
	m->data_len = (uint16_t)len;
	m->pkt_len = (uint32_t)len;
	return m;
}

int lm_dp_eth_send(lm_dp_eth *t, const void *bundle, uint32_t len,
		   uint32_t deployment, uint32_t edge, uint64_t request_id,
		   unsigned spin)
{
	struct rte_mbuf *m[BURST + 1];
	lm_frame_info f = {
		.deployment = deployment, .edge = edge,
		.request_id = request_id, .bundle_id = ++t->next_bundle,
		.frag_unit = t->unit, .total_len = len,
	};
	int lost = 0;
	uint16_t n = 0;
	if (!len)
		return -EMSGSIZE;
	for (uint64_t off = 0; off < len && !lost; off += t->unit) {
		f.frag_offset = (uint32_t)off;
		f.frag_len = len - f.frag_offset < t->unit
				     ? len - f.frag_offset
				     : t->unit;
		if (!(m[n] = frame_mbuf(t, &f, bundle))) {
			lost = 1;
			break;
		}
		n++;
		if (t->cfg.dup_ppm && ppm_roll(t) < t->cfg.dup_ppm &&
		    (m[n] = frame_mbuf(t, &f, bundle))) {
			n++;
			t->stats.tx_dup++;
		}
		if (t->cfg.swap_ppm && n >= 2 &&
		    ppm_roll(t) < t->cfg.swap_ppm) {
			struct rte_mbuf *x = m[n - 1];
			m[n - 1] = m[n - 2];
			m[n - 2] = x;
			t->stats.tx_swapped++;
		}
		if (n >= BURST) {
			transmit(t, m, n, spin, &lost);
			n = 0;
		}
	}
	if (n && !lost)
		transmit(t, m, n, spin, &lost);
	else if (n)
		rte_pktmbuf_free_bulk(m, n);
	if (lost)
		return -ENOBUFS;
	t->stats.tx_bundles++;
	return 0;
}

int lm_dp_eth_send_more(lm_dp_eth *t, const void *bundle, uint32_t len,
			uint32_t deployment, uint32_t edge,
			uint64_t request_id)
{
	lm_frame_info *f = &t->pend;
	if (!len)
		return -EMSGSIZE;
	if (t->pend_buf != bundle) { /* a new bundle */
		lm_dp_eth_send_abandon(t);
		*f = (lm_frame_info){
			.deployment = deployment, .edge = edge,
			.request_id = request_id,
			.bundle_id = ++t->next_bundle,
			.frag_unit = t->unit, .total_len = len,
		};
		t->pend_buf = bundle;
	}
	for (;;) {
		while (t->n_held < BURST && f->frag_offset < len) {
			uint32_t left = len - f->frag_offset;
			f->frag_len = left < t->unit ? left : t->unit;
			struct rte_mbuf *m = frame_mbuf(t, f, bundle);
			if (!m)
				break;
			t->held[t->n_held++] = m;
			f->frag_offset += f->frag_len;
		}
		if (!t->n_held)
			break;
		uint16_t sent = rte_eth_tx_burst(t->cfg.port, t->cfg.queue,
						 t->held, t->n_held);
		t->stats.tx_frames += sent;
		memmove(t->held, t->held + sent,
			(t->n_held - sent) * sizeof(t->held[0]));
		t->n_held = (uint16_t)(t->n_held - sent);
		if (t->n_held)
			return 0; /* the queue is full: the rest later */
	}
	if (f->frag_offset < len)
		return -ENOBUFS; /* no mbufs now: the rest later */
	t->stats.tx_bundles++;
	t->pend_buf = NULL;
	return 1;
}

void lm_dp_eth_send_abandon(lm_dp_eth *t)
{
	if (!t->pend_buf)
		return;
	rte_pktmbuf_free_bulk(t->held, t->n_held);
	t->n_held = 0;
	t->pend_buf = NULL;
	t->stats.tx_full++;
}

int lm_dp_eth_poll(lm_dp_eth *t, lm_reasm_bundle *done, int max,
		   uint64_t now_ns)
{
	struct rte_mbuf *m[BURST];
	int n_done = 0;
	uint16_t n = rte_eth_rx_burst(t->cfg.port, t->cfg.queue, m,
				      (uint16_t)(max < BURST ? max : BURST));
	for (uint16_t i = 0; i < n; i++) {
		t->stats.rx_frames++;
		lm_frame_info f;
		int rc = m[i]->nb_segs == 1
				 ? lm_frame_parse(rte_pktmbuf_mtod(m[i],
								   uint8_t *),
						  m[i]->data_len,
						  t->cfg.addr.src_port,
						  t->cfg.reasm.max_bundle, &f)
				 : LM_FRAME_BAD_HEADER;
		if (rc == LM_FRAME_NOT_OURS)
			t->stats.rx_not_ours++;
		else if (rc == LM_FRAME_BAD_CHECKSUM)
			t->stats.rx_bad_checksum++;
		else if (rc)
			t->stats.rx_bad++;
		else if (lm_reasm_push(t->reasm, &f, now_ns, &done[n_done]))
			n_done++;
		rte_pktmbuf_free(m[i]);
	}
	lm_reasm_expire(t->reasm, now_ns);
	return n_done;
}

const lm_dp_eth_stats *lm_dp_eth_get_stats(const lm_dp_eth *t)
{
	return &t->stats;
}

const lm_reasm_stats *lm_dp_eth_reasm_stats(const lm_dp_eth *t)
{
	return lm_reasm_get_stats(t->reasm);
}
