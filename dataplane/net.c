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
 *
 * Between two laminads on one host an edge has a memif port of its own
 * instead (LoadStage's *_memif socket paths): the consumer's laminad is
 * the memif server and reassembles from it, the producer's the client and
 * sends on it, in the same frames.  The port lives and dies with the edge;
 * the server's socket file is removed with it.  memif loses nothing: a
 * full ring only means the peer has not read yet, so a bundle is sent as
 * far as the ring takes it and resumed on the next turn of the loop
 * (lm_dp_eth_send_more), given up only when the peer read nothing for
 * 100 ms (it stopped or died; the ingress re-sends).
 */
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
#define NET_MTU_MEMIF 9000	   /* one frame per 9216-byte memif buffer */
#define NET_LOOPBACK 0x7f000001u   /* frames' IPv4 address without --port */

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

/* A receiver on port, for every deployment's remote_in edges. */
static int rx_make(struct lm_dp *dp, uint16_t port, unsigned mtu,
		   struct lm_dp_eth **out, lm_error *e)
{
	struct lm_dp_net *n = dp->net;
	lm_dp_eth_config c = {
		.port = port, .mtu = mtu, .tx_pool = n->tx_pool,
		.addr = { .src_ip = n->ip, .src_port = LM_FRAME_UDP_PORT,
			  .dst_port = LM_FRAME_UDP_PORT },
		/* a bundle's frames arrive back to back: a partial one with
		 * no news for 20 ms lost a frame, the ingress re-sends it */
		.reasm = { .max_pending = 64, .max_bundle = NET_MAX_BUNDLE,
			   .recent = 4096, .timeout_ns = 20000000 },
		.buffers = { rx_alloc, rx_release, dp },
	};
	memcpy(c.addr.src_mac, n->mac, 6);
	return lm_dp_eth_create(&c, out, e);
}

static int rx_open(struct lm_dp *dp, lm_error *e)
{
	return rx_make(dp, dp->net->port, dp->net->mtu, &dp->net->rx, e);
}

/* dp->net with its mbuf pools: one ring frame per mbuf, as large as a
 * jumbo frame. */
static int net_make(struct lm_dp *dp, const char *what, lm_error *e)
{
	if (dp->net)
		return 0;
	struct lm_dp_net *n = calloc(1, sizeof(*n));
	if (!n)
		return lm_fail(e, -ENOMEM, "out of memory");
	dp->net = n;
	unsigned room = RTE_PKTMBUF_HEADROOM + NET_FRAME_ROOM;
	n->rx_pool = rte_pktmbuf_pool_create("lm_net_rx", NET_RX_MBUFS, 256, 0,
					     (uint16_t)room, SOCKET_ID_ANY);
	n->tx_pool = rte_pktmbuf_pool_create("lm_net_tx", NET_TX_MBUFS, 256, 0,
					     (uint16_t)room, SOCKET_ID_ANY);
	if (!n->rx_pool || !n->tx_pool) {
		rte_mempool_free(n->rx_pool);
		rte_mempool_free(n->tx_pool);
		free(n);
		dp->net = NULL;
		return lm_fail(e, -ENOMEM, "%s: no memory for %u mbufs of %u "
			       "bytes (raise --memory)", what,
			       NET_RX_MBUFS + NET_TX_MBUFS, room);
	}
	return 0;
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
	char what[IF_NAMESIZE + 8];
	snprintf(what, sizeof(what), "--port %s", iface);
	if ((rc = net_make(dp, what, e)))
		return rc;
	struct lm_dp_net *n = dp->net;
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
	n->has_port = 1;
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
	if (n->has_port && !rte_eth_dev_get_port_by_name(NET_VDEV, &port)) {
		rte_eth_dev_stop(port);
		rte_eth_dev_close(port);
	}
	rte_mempool_free(n->rx_pool);
	rte_mempool_free(n->tx_pool);
	free(n);
	dp->net = NULL;
}

/* Create and start edge k's memif port (its path and role are set). */
static int memif_port(struct lm_dp *dp, struct lm_dp_deployment *d,
		      unsigned k, lm_error *e)
{
	struct lm_dp_edge *ed = &d->edges[k];
	const char *path = ed->memif_path;
	int server = ed->memif_server, rc;
	char name[64], args[256];
	snprintf(name, sizeof(name), "net_memif_lm%ue%u", d->gen, k);
	/* one 9216-byte buffer per frame, 2048 of them each way: a bundle's
	 * frames cross without waiting for the peer to free buffers */
	snprintf(args, sizeof(args), "%s,role=%s,id=0,bsize=9216,rsize=11,"
		 "socket=%s,socket-abstract=no", name,
		 server ? "server" : "client", path);
	if (server)
		unlink(path); /* a dead laminad's */
	if ((rc = rte_dev_probe(args)) ||
	    (rc = rte_eth_dev_get_port_by_name(name, &ed->mport)))
		return lm_fail(e, -EINVAL, "edge %u of %s: cannot create a "
			       "memif %s at %s (%s)", k, d->id,
			       server ? "server" : "client", path,
			       rte_strerror(-rc));
	ed->memif = 1;
	if ((rc = lm_dp_eth_port_start(ed->mport, NET_MTU_MEMIF,
				       dp->net->rx_pool, e)) ||
	    (server && (rc = rx_make(dp, ed->mport, NET_MTU_MEMIF, &ed->rx,
				     e)))) {
		lm_dp_net_edge_close(ed);
		return lm_fail_prefix(e, rc, "edge %u of %s (memif)", k,
				      d->id);
	}
	/* a client connects now (the server listens since the consumer's
	 * stage was loaded); the handshake runs on DPDK's interrupt thread */
	struct rte_eth_link link = { 0 };
	for (int i = 0; !server && i < 200; i++) {
		if (!rte_eth_link_get_nowait(ed->mport, &link) &&
		    link.link_status == RTE_ETH_LINK_UP)
			break;
		usleep(5000);
	}
	lm_dp_log("deployment %s: edge %u over memif (%s) at %s%s", d->id, k,
		  server ? "server" : "client", path,
		  server || link.link_status == RTE_ETH_LINK_UP
			  ? "" : ", not connected yet");
	return 0;
}

int lm_dp_net_edge_open(struct lm_dp *dp, struct lm_dp_deployment *d,
			unsigned k, lm_error *e)
{
	struct lm_dp_net *n = dp->net;
	struct lm_dp_edge *ed = &d->edges[k];
	int rc;
	if (ed->tx)
		return 0;
	if (ed->memif_path[0] && !ed->memif && (rc = memif_port(dp, d, k, e)))
		return rc;
	lm_dp_eth_config c = {
		.port = ed->memif ? ed->mport : n->port,
		.mtu = ed->memif ? NET_MTU_MEMIF : n->mtu,
		.tx_pool = n->tx_pool,
		.addr = { .src_ip = n->ip ? n->ip : NET_LOOPBACK,
			  .dst_ip = ed->peer_ip ? ed->peer_ip : NET_LOOPBACK,
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
	rc = lm_dp_eth_create(&c, &ed->tx, e);
	return rc ? lm_fail_prefix(e, rc, "edge %u of %s", k, d->id) : 0;
}

void lm_dp_net_edge_close(struct lm_dp_edge *ed)
{
	if (ed->pending) {
		rte_mempool_put(ed->pool, ed->pending);
		ed->pending = NULL;
	}
	lm_dp_eth_free(ed->tx);
	ed->tx = NULL;
	lm_dp_eth_free(ed->rx);
	ed->rx = NULL;
	if (!ed->memif) {
		ed->memif_path[0] = '\0';
		return;
	}
	char name[RTE_ETH_NAME_MAX_LEN];
	if (!rte_eth_dev_get_name_by_port(ed->mport, name)) {
		rte_eth_dev_stop(ed->mport);
		rte_eal_hotplug_remove("vdev", name);
	}
	if (ed->memif_server)
		unlink(ed->memif_path); /* the PMD's, if it left it */
	ed->memif = 0;
	ed->memif_path[0] = '\0';
}

int lm_dp_net_memif_open(struct lm_dp *dp, struct lm_dp_deployment *d,
			 unsigned k, const char *path, int server,
			 lm_error *e)
{
	struct lm_dp_edge *ed = &d->edges[k];
	int rc;
	if (!path || path[0] != '/' ||
	    strlen(path) >= sizeof(ed->memif_path))
		return lm_fail(e, -EINVAL, "edge %u of %s: memif socket '%.120s' "
			       "must be an absolute path shorter than %zu",
			       k, d->id, path ? path : "",
			       sizeof(ed->memif_path));
	if ((rc = net_make(dp, "memif", e)))
		return rc;
	snprintf(ed->memif_path, sizeof(ed->memif_path), "%s", path);
	ed->memif_server = server;
	/* a client's server may not listen yet (its laminad loads later):
	 * it connects at start (lm_dp_net_edge_open) */
	return server ? memif_port(dp, d, k, e) : 0;
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
	if (!dp->net->has_port)
		return;
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

/* Send what the stages put on memif edge k of d, resuming a bundle the
 * ring did not take whole.  Returns the bundles finished. */
static int memif_tx(struct lm_dp *dp, struct lm_dp_deployment *d,
		    struct lm_dp_edge *ed, unsigned k)
{
	uint32_t len = (uint32_t)(sizeof(struct lm_dp_bundle) +
				  ed->layout.bytes);
	int done = 0;
	for (;;) {
		if (!ed->pending) {
			if (rte_ring_dequeue(ed->ring, (void **)&ed->pending))
				break;
			ed->pending_since = rte_rdtsc();
		}
		int rc = lm_dp_eth_send_more(ed->tx, ed->pending, len, d->key,
					     k, ed->pending->request_id);
		if (rc != 1 &&
		    rte_rdtsc() - ed->pending_since < dp->tsc_hz / 10)
			break; /* the peer has not read yet: later */
		if (rc != 1)
			lm_dp_eth_send_abandon(ed->tx);
		rte_mempool_put(ed->pool, ed->pending);
		ed->pending = NULL;
		done++;
	}
	return done;
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
			if (ed->memif) {
				total += memif_tx(dp, d, ed, k);
				continue;
			}
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

/* Receive what arrived on rx (up to 64 bursts), handing the bundles it
 * completes to their edges' rings.  Returns the bursts with frames plus
 * the bundles completed: work, so that the loop does not back off while a
 * bundle's frames are still coming in. */
static int rx_poll(struct lm_dp *dp, struct lm_dp_eth *rx, uint64_t now)
{
	lm_reasm_bundle done[32];
	int work = 0;
	for (int burst = 0; burst < 64; burst++) {
		uint64_t before = lm_dp_eth_get_stats(rx)->rx_frames;
		int n = lm_dp_eth_poll(rx, done, 32, now);
		for (int i = 0; i < n; i++) {
			struct lm_dp_deployment *d;
			struct lm_dp_edge *ed = in_edge(dp, done[i].deployment,
							done[i].edge, &d);
			struct lm_dp_bundle *b = done[i].buf;
			if (!ed) { /* cannot happen: alloc found it */
				rx_release(NULL, b);
				continue;
			}
			b->deployment = d->gen;
			rte_ring_enqueue(ed->ring, b); /* holds the pool */
		}
		uint64_t frames = lm_dp_eth_get_stats(rx)->rx_frames - before;
		work += n + (frames > 0);
		if (frames < 32)
			break;
	}
	return work;
}

int lm_dp_net_poll(struct lm_dp *dp)
{
	if (!dp->net)
		return 0;
	uint64_t now = ns_now();
	int total = net_tx(dp);
	if (dp->net->rx)
		total += rx_poll(dp, dp->net->rx, now);
	for (int i = 0; i < LM_DP_MAX_DEPLOYMENTS; i++) {
		struct lm_dp_deployment *d = dp->dep[i];
		if (!d || !d->remote || !d->started)
			continue;
		for (unsigned k = 0; k <= d->n_stages; k++)
			if (d->edges[k].rx)
				total += rx_poll(dp, d->edges[k].rx, now);
	}
	return total;
}
