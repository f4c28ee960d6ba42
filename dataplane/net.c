/*
 * net.c: the port between laminads (laminad --port IFACE), on the main
 * lcore.
 *
 * A pipeline may cross laminads: an edge whose producer is here and
 * consumer elsewhere is remote_out here and remote_in there.  Workers do
 * not know: a stage writes its output into a bundle of its output edge's
 * pool and enqueues it, as in one process.  The main lcore then drains the
 * rings of remote_out edges, sends each bundle whole (header and tensors:
 * the request id, connection and ingress time travel with the data) with
 * lm_dp_eth_send, and gives it back; and it polls the port, reassembling
 * each arriving bundle straight into a buffer of its remote_in edge's pool
 * (the edge named by the frame's deployment key and edge number) and
 * enqueueing the pointer, where the next stage or the egress finds it.
 *
 * One receiver serves every deployment; one sender per remote_out edge
 * (each knows its peer's addresses), all on the port's one queue pair.  A
 * bundle lost on the way is re-sent by the ingress (ingress.c), never here.
 */
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include <rte_dev.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>

#include "dp.h"
#include "transport_eth.h"

#define NET_VDEV "net_af_packet_lm"
#define NET_FRAME_ROOM 10240	   /* af_packet framesz: one frame per mbuf */
#define NET_RX_MBUFS 4095
#define NET_TX_MBUFS 2047
#define NET_MAX_BUNDLE (64u << 20) /* larger bundles are dropped, counted */
#define NET_SPIN 1000		   /* tries of a full TX queue per burst */

static uint64_t ns_now(void)
{
	return rte_get_tsc_cycles() * 1000000000ull / rte_get_tsc_hz();
}

/* The remote_in edge a frame or bundle is for, or NULL. */
static struct lm_dp_edge *in_edge(struct lm_dp *dp, uint32_t key,
				  uint32_t edge, struct lm_dp_deployment **dd)
{
	for (int i = 0; i < LM_DP_MAX_DEPLOYMENTS; i++) {
		struct lm_dp_deployment *d = dp->dep[i];
		if (!d || !d->remote || !d->started || d->key != key ||
		    edge > d->n_stages)
			continue;
		struct lm_dp_edge *ed = &d->edges[edge];
		if (!ed->remote_in || !ed->ring)
			return NULL;
		*dd = d;
		return ed;
	}
	return NULL;
}

static void *rx_alloc(void *ctx, const lm_frame_info *f, int *why)
{
	struct lm_dp_deployment *d;
	struct lm_dp_edge *ed = in_edge(ctx, f->deployment, f->edge, &d);
	void *b;
	if (!ed || f->total_len != sizeof(struct lm_dp_bundle) +
					   ed->layout.bytes) {
		*why = -ENOENT;
		return NULL;
	}
	if (rte_mempool_get(ed->pool, &b)) {
		*why = -ENOBUFS;
		return NULL;
	}
	return b;
}

static void rx_release(void *ctx, void *buf)
{
	(void)ctx;
	rte_mempool_put(rte_mempool_from_obj(buf), buf);
}

/* A sender only: it never receives, so it needs no buffers. */
static void *no_alloc(void *ctx, const lm_frame_info *f, int *why)
{
	(void)ctx;
	(void)f;
	*why = -ENOENT;
	return NULL;
}

static void no_release(void *ctx, void *buf)
{
	(void)ctx;
	(void)buf;
}

static int rx_open(struct lm_dp *dp, lm_error *e)
{
	struct lm_dp_net *n = dp->net;
	lm_dp_eth_config c = {
		.port = n->port, .mtu = n->mtu, .tx_pool = n->tx_pool,
		.addr = { .src_ip = n->ip, .src_port = LM_FRAME_UDP_PORT,
			  .dst_port = LM_FRAME_UDP_PORT },
		/* a bundle's frames arrive back to back: a partial one with
		 * no news for 20 ms lost a frame, the ingress re-sends it */
		.reasm = { .max_pending = 64, .max_bundle = NET_MAX_BUNDLE,
			   .recent = 4096, .timeout_ns = 20000000 },
		.buffers = { rx_alloc, rx_release, dp },
	};
	memcpy(c.addr.src_mac, n->mac, 6);
	return lm_dp_eth_create(&c, &n->rx, e);
}

/* The first IPv4 address of iface, host order; 0 if none. */
static uint32_t iface_ip(const char *iface)
{
	struct ifaddrs *ifa, *p;
	uint32_t ip = 0;
	if (getifaddrs(&ifa))
		return 0;
	for (p = ifa; p && !ip; p = p->ifa_next)
		if (p->ifa_addr && p->ifa_addr->sa_family == AF_INET &&
		    !strcmp(p->ifa_name, iface))
			ip = ntohl(((struct sockaddr_in *)p->ifa_addr)
					   ->sin_addr.s_addr);
	freeifaddrs(ifa);
	return ip;
}

int lm_dp_net_open(struct lm_dp *dp, lm_error *e)
{
	const char *iface = dp->cfg.port_iface;
	char args[256];
	struct rte_ether_addr mac;
	struct in_addr a;
	int rc;
	if (strlen(iface) >= IF_NAMESIZE || !if_nametoindex(iface))
		return lm_fail(e, -EINVAL, "--port %s: no such interface in "
			       "this network namespace", iface);
	struct lm_dp_net *n = calloc(1, sizeof(*n));
	if (!n)
		return lm_fail(e, -ENOMEM, "out of memory");
	dp->net = n;
	n->mtu = dp->cfg.mtu;
	if (dp->cfg.port_ip) {
		if (inet_pton(AF_INET, dp->cfg.port_ip, &a) != 1)
			return lm_fail(e, -EINVAL, "--port-ip '%s' is not an "
				       "IPv4 address", dp->cfg.port_ip);
		n->ip = ntohl(a.s_addr);
	} else if (!(n->ip = iface_ip(iface))) {
		return lm_fail(e, -EINVAL, "--port %s: the interface has no "
			       "IPv4 address (give one with --port-ip)", iface);
	}
	/* one ring frame per mbuf, as large as a jumbo frame */
	unsigned room = RTE_PKTMBUF_HEADROOM + NET_FRAME_ROOM;
	n->rx_pool = rte_pktmbuf_pool_create("lm_net_rx", NET_RX_MBUFS, 256, 0,
					     (uint16_t)room, SOCKET_ID_ANY);
	n->tx_pool = rte_pktmbuf_pool_create("lm_net_tx", NET_TX_MBUFS, 256, 0,
					     (uint16_t)room, SOCKET_ID_ANY);
	if (!n->rx_pool || !n->tx_pool)
		return lm_fail(e, -ENOMEM, "--port %s: no memory for %u mbufs "
			       "of %u bytes (raise --memory)", iface,
			       NET_RX_MBUFS + NET_TX_MBUFS, room);
	/* as tools/bench_transport: the PMD opens its socket on iface in
	 * laminad's network namespace */
	snprintf(args, sizeof(args), "%s,iface=%s,blocksz=20480,framesz=%u,"
		 "framecnt=2048,qdisc_bypass=0", NET_VDEV, iface,
		 NET_FRAME_ROOM);
	if ((rc = rte_dev_probe(args)) ||
	    (rc = rte_eth_dev_get_port_by_name(NET_VDEV, &n->port)))
		return lm_fail(e, -EINVAL, "--port %s: cannot create an "
			       "af_packet port on it (%s)", iface,
			       rte_strerror(-rc));
	if ((rc = lm_dp_eth_port_start(n->port, n->mtu, n->rx_pool, e)))
		return lm_fail_prefix(e, -EINVAL, "--port %s", iface);
	if ((rc = rte_eth_macaddr_get(n->port, &mac)))
		return lm_fail(e, -EINVAL, "--port %s: no MAC address", iface);
	memcpy(n->mac, mac.addr_bytes, 6);
	rte_ether_format_addr(n->mac_str, sizeof(n->mac_str), &mac);
	if ((rc = rx_open(dp, e)))
		return rc;
	a.s_addr = htonl(n->ip);
	lm_dp_log("port %s: %s %s, MTU %u", iface, n->mac_str, inet_ntoa(a),
		  n->mtu);
	if (dp->cfg.fault_dup_ppm || dp->cfg.fault_swap_ppm)
		lm_dp_log("port %s: fault injection (tests only): %u ppm of "
			  "sent frames duplicated, %u ppm swapped", iface,
			  dp->cfg.fault_dup_ppm, dp->cfg.fault_swap_ppm);
	return 0;
}

void lm_dp_net_close(struct lm_dp *dp)
{
	struct lm_dp_net *n = dp->net;
	if (!n)
		return;
	lm_dp_eth_free(n->rx);
	uint16_t port;
	if (!rte_eth_dev_get_port_by_name(NET_VDEV, &port)) {
		rte_eth_dev_stop(port);
		rte_eth_dev_close(port);
	}
	rte_mempool_free(n->rx_pool);
	rte_mempool_free(n->tx_pool);
	free(n);
	dp->net = NULL;
}

int lm_dp_net_edge_open(struct lm_dp *dp, struct lm_dp_deployment *d,
			unsigned k, lm_error *e)
{
	struct lm_dp_net *n = dp->net;
	struct lm_dp_edge *ed = &d->edges[k];
	if (ed->tx)
		return 0;
	lm_dp_eth_config c = {
		.port = n->port, .mtu = n->mtu, .tx_pool = n->tx_pool,
		.addr = { .src_ip = n->ip, .dst_ip = ed->peer_ip,
			  .src_port = LM_FRAME_UDP_PORT,
			  .dst_port = LM_FRAME_UDP_PORT },
		.reasm = { .max_pending = 1, .max_bundle = NET_MAX_BUNDLE,
			   .recent = 1, .timeout_ns = 1000000000 },
		.buffers = { no_alloc, no_release, NULL },
		.dup_ppm = dp->cfg.fault_dup_ppm,
		.swap_ppm = dp->cfg.fault_swap_ppm,
	};
	memcpy(c.addr.src_mac, n->mac, 6);
	memcpy(c.addr.dst_mac, ed->peer_mac, 6);
	int rc = lm_dp_eth_create(&c, &ed->tx, e);
	return rc ? lm_fail_prefix(e, rc, "edge %u of %s", k, d->id) : 0;
}

void lm_dp_net_edge_close(struct lm_dp_edge *ed)
{
	lm_dp_eth_free(ed->tx);
	ed->tx = NULL;
}

void lm_dp_net_forget(struct lm_dp *dp, struct lm_dp_deployment *d)
{
	lm_error e;
	if (!dp->net || !d->remote)
		return;
	/* what crossed, for the log (and the tests that read it); the
	 * receiver counts since it was last opened, at the previous
	 * teardown of a deployment across laminads */
	for (unsigned k = 0; k <= d->n_stages; k++) {
		const struct lm_dp_edge *ed = &d->edges[k];
		if (!ed->tx)
			continue;
		const lm_dp_eth_stats *t = lm_dp_eth_get_stats(ed->tx);
		lm_dp_log("deployment %s: edge %u sent %llu bundle(s) in %llu "
			  "frame(s), %llu lost to a full queue; fault "
			  "injection: %llu duplicated, %llu swapped", d->id, k,
			  (unsigned long long)t->tx_bundles,
			  (unsigned long long)t->tx_frames,
			  (unsigned long long)t->tx_full,
			  (unsigned long long)t->tx_dup,
			  (unsigned long long)t->tx_swapped);
	}
	if (dp->net->rx) {
		const lm_dp_eth_stats *t = lm_dp_eth_get_stats(dp->net->rx);
		const lm_reasm_stats *r = lm_dp_eth_reasm_stats(dp->net->rx);
		lm_dp_log("deployment %s: port received %llu frame(s), %llu "
			  "bundle(s); dropped %llu duplicate, %llu stale, %llu "
			  "malformed, %llu unknown, %llu without buffer, %llu "
			  "bad; %llu bundle(s) timed out, %llu evicted",
			  d->id, (unsigned long long)t->rx_frames,
			  (unsigned long long)r->completed,
			  (unsigned long long)r->duplicate,
			  (unsigned long long)r->stale,
			  (unsigned long long)r->malformed,
			  (unsigned long long)r->unknown,
			  (unsigned long long)r->no_buffer,
			  (unsigned long long)(t->rx_bad + t->rx_bad_checksum),
			  (unsigned long long)r->timed_out,
			  (unsigned long long)r->evicted);
	}
	/* reassembly may hold buffers of d's pools: a fresh receiver gives
	 * them back (and forgets other deployments' half bundles, which
	 * their ingress re-sends) */
	lm_dp_eth_free(dp->net->rx);
	dp->net->rx = NULL;
	if (rx_open(dp, &e))
		lm_dp_log("port: cannot reopen the receiver: %s", e.msg);
}

int lm_dp_net_active(const struct lm_dp *dp)
{
	if (!dp->net)
		return 0;
	for (int i = 0; i < LM_DP_MAX_DEPLOYMENTS; i++)
		if (dp->dep[i] && dp->dep[i]->remote && dp->dep[i]->started)
			return 1;
	return 0;
}

/* Send what the stages put on remote_out edges. */
static int net_tx(struct lm_dp *dp)
{
	struct lm_dp_bundle *b[LM_DP_BURST];
	int total = 0;
	for (int i = 0; i < LM_DP_MAX_DEPLOYMENTS; i++) {
		struct lm_dp_deployment *d = dp->dep[i];
		if (!d || !d->remote || !d->started)
			continue;
		for (unsigned k = 0; k <= d->n_stages; k++) {
			struct lm_dp_edge *ed = &d->edges[k];
			if (!ed->remote_out || !ed->ring || !ed->tx)
				continue;
			unsigned n = rte_ring_dequeue_burst(
				ed->ring, (void **)b, LM_DP_BURST, NULL);
			uint32_t len = (uint32_t)(sizeof(*b[0]) +
						  ed->layout.bytes);
			for (unsigned j = 0; j < n; j++) {
				/* a failure is a loss, as on a wire: the
				 * ingress re-sends the request */
				lm_dp_eth_send(ed->tx, b[j], len, d->key, k,
					       b[j]->request_id, NET_SPIN);
				rte_mempool_put(ed->pool, b[j]);
			}
			total += (int)n;
		}
	}
	return total;
}

int lm_dp_net_poll(struct lm_dp *dp)
{
	lm_reasm_bundle done[32];
	if (!dp->net || !dp->net->rx)
		return 0;
	int total = net_tx(dp);
	int n = lm_dp_eth_poll(dp->net->rx, done, 32, ns_now());
	for (int i = 0; i < n; i++) {
		struct lm_dp_deployment *d;
		struct lm_dp_edge *ed = in_edge(dp, done[i].deployment,
						done[i].edge, &d);
		struct lm_dp_bundle *b = done[i].buf;
		if (!ed) { /* cannot happen: alloc found it this burst */
			rx_release(NULL, b);
			continue;
		}
		b->deployment = d->gen;
		rte_ring_enqueue(ed->ring, b); /* holds the whole pool */
	}
	return total + n;
}
