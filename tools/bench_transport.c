/*
 * bench_transport.c: tensor bundles between two hosts over DPDK ports
 * (dataplane/transport_eth.c), beside kernel TCP over the same link.
 *
 *   bench_transport --ns-a A --if-a VA --ns-b B --if-b VB [options]
 *
 * A and B are network namespaces joined by a veth pair (VA in A, VB in B):
 * two hosts on one machine.  The sender, on the main lcore, has an
 * af_packet port on VA; the receiver, on a worker lcore, one on VB.  Both
 * ports are created from inside their namespace (setns before probing the
 * vdev), so frames really cross the pair.  For each bundle size it sends
 * --count bundles with at most --window bytes outstanding; the receiver
 * reassembles each into a buffer from a mempool (as an edge would), checks
 * its bytes with --verify, and delivers each request id once.  Bundles
 * lost to dropped frames are sent again after --retry-ms, as laminad's
 * ingress does, so every bundle arrives exactly once: the run fails (exit
 * 1) if one does not, or arrives corrupt.
 *
 * With --tcp-b ADDR (VB's kernel address), the same sizes first go over a
 * plain TCP socket from A to B (a forked server in B), for comparison.
 *
 * A benchmark and the engine of tests/integration/test_transport.py (which
 * adds frame loss with nftables and duplicates/reordering with --dup and
 * --swap).  Run as root.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include <rte_cycles.h>
#include <rte_dev.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include "bench_dp.h"

#define MAX_SIZES 8
#define MAX_COUNT 1000000
#define TCP_PORT 7703

static struct {
	const char *ns_a, *if_a, *ns_b, *if_b, *tcp_b;
	unsigned mtu;
	uint32_t sizes[MAX_SIZES];
	int n_sizes;
	uint32_t count;
	uint32_t window;
	double retry_ms, max_seconds;
	int verify, qdisc_bypass;
	uint32_t dup_ppm, swap_ppm;
} opt = {
	.mtu = 9000, .sizes = { 65536, 819200, 3145728 }, .n_sizes = 3,
	.count = 200, .window = 4u << 20, .retry_ms = 50, .max_seconds = 60,
};

static void die(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "bench_transport: ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static int enter_ns(const char *ns)
{
	char path[256];
	snprintf(path, sizeof(path), "/var/run/netns/%s", ns);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = setns(fd, CLONE_NEWNET) ? -errno : 0;
	close(fd);
	return rc;
}

/* ---- kernel TCP, the comparison ---- */

static void tcp_server(uint32_t size, uint32_t count)
{
	if (enter_ns(opt.ns_b))
		_exit(2);
	int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons(TCP_PORT) };
	inet_pton(AF_INET, opt.tcp_b, &a.sin_addr);
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(s, (struct sockaddr *)&a, sizeof(a)) || listen(s, 1))
		_exit(3);
	alarm((unsigned)opt.max_seconds + 5);
	int c = accept(s, NULL, NULL);
	char *buf = malloc(1 << 20);
	uint64_t want = (uint64_t)size * count, got = 0;
	while (c >= 0 && buf && got < want) {
		ssize_t n = read(c, buf, 1 << 20);
		if (n <= 0)
			_exit(4);
		got += (uint64_t)n;
	}
	char ack = 1;
	if (write(c, &ack, 1) != 1)
		_exit(5);
	_exit(0);
}

static double tcp_run(uint32_t size, uint32_t count)
{
	pid_t pid = fork();
	if (pid == 0)
		tcp_server(size, count);
	int self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (enter_ns(opt.ns_a))
		die("cannot enter namespace %s", opt.ns_a);
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons(TCP_PORT) };
	inet_pton(AF_INET, opt.tcp_b, &a.sin_addr);
	int s = -1;
	for (int tries = 0; tries < 200; tries++) {
		s = socket(AF_INET, SOCK_STREAM, 0);
		if (!connect(s, (struct sockaddr *)&a, sizeof(a)))
			break;
		close(s);
		s = -1;
		usleep(10000);
	}
	setns(self, CLONE_NEWNET);
	close(self);
	if (s < 0)
		die("cannot connect to the TCP server in %s", opt.ns_b);
	uint8_t *buf = calloc(1, size);
	double t0 = bench_now_s();
	for (uint32_t i = 0; i < count; i++)
		for (uint32_t off = 0; off < size;) {
			ssize_t n = write(s, buf + off, size - off);
			if (n <= 0)
				die("TCP write failed");
			off += (uint32_t)n;
		}
	char ack;
	if (read(s, &ack, 1) != 1)
		die("no TCP acknowledgement");
	double t = bench_now_s() - t0;
	close(s);
	free(buf);
	int st;
	waitpid(pid, &st, 0);
	return t;
}

/* ---- the DPDK transport ---- */

struct receiver {
	lm_dp_eth *t;
	struct rte_mempool *bundles;
	const uint8_t *pattern; /* what every bundle holds past its id */
	uint32_t size, count;
	uint8_t *delivered;	 /* per request id */
	volatile uint32_t n_delivered;
	volatile uint64_t corrupt, repeats;
	volatile int stop;
};

static void *take_bundle(void *ctx, const lm_frame_info *f, int *why)
{
	struct receiver *r = ctx;
	void *b = NULL;
	if (f->total_len != r->size) {
		*why = -ENOENT;
		return NULL;
	}
	if (rte_mempool_get(r->bundles, &b)) {
		*why = -ENOBUFS;
		return NULL;
	}
	return b;
}

static void give_bundle(void *ctx, void *buf)
{
	struct receiver *r = ctx;
	rte_mempool_put(r->bundles, buf);
}

static uint64_t ns_now(void)
{
	return rte_get_tsc_cycles() * 1000000000ull / rte_get_tsc_hz();
}

static int receive_loop(void *arg)
{
	struct receiver *r = arg;
	lm_reasm_bundle done[32];
	while (!r->stop) {
		int n = lm_dp_eth_poll(r->t, done, 32, ns_now());
		for (int i = 0; i < n; i++) {
			uint64_t id = done[i].request_id;
			const uint8_t *b = done[i].buf;
			uint64_t head;
			memcpy(&head, b, sizeof(head));
			if (id >= r->count || head != id ||
			    (opt.verify &&
			     memcmp(b + 8, r->pattern + 8, r->size - 8))) {
				r->corrupt++;
			} else if (r->delivered[id]) {
				r->repeats++; /* a resend whose first copy came */
			} else {
				r->delivered[id] = 1;
				__atomic_add_fetch(&r->n_delivered, 1,
						   __ATOMIC_RELEASE);
			}
			rte_mempool_put(r->bundles, done[i].buf);
		}
	}
	return 0;
}

/*
 * Create and start an af_packet port on iface inside namespace ns: the PMD
 * opens its socket and sets the interface up, MTU and promiscuous mode by
 * name, in whatever namespace the thread is in at that moment.
 */
static uint16_t port_in(const char *ns, const char *iface, int k,
			struct rte_mempool *rx_pool)
{
	char args[256], name[32];
	snprintf(name, sizeof(name), "net_af_packet%d", k);
	snprintf(args, sizeof(args), "%s,iface=%s,blocksz=20480,"
		 "framesz=10240,framecnt=2048,qdisc_bypass=%d", name, iface,
		 opt.qdisc_bypass);
	int self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (enter_ns(ns))
		die("cannot enter namespace %s (run as root)", ns);
	uint16_t port;
	lm_error e;
	if (rte_dev_probe(args) || rte_eth_dev_get_port_by_name(name, &port))
		die("cannot create the af_packet port on %s", iface);
	if (lm_dp_eth_port_start(port, opt.mtu, rx_pool, &e))
		die("%s: %s", iface, e.msg);
	setns(self, CLONE_NEWNET);
	close(self);
	return port;
}

static void parse_sizes(const char *s)
{
	const char *bad;
	opt.n_sizes = bench_parse_sizes(s, opt.sizes, MAX_SIZES, 8,
					64u << 20, &bad);
	if (opt.n_sizes < 0)
		die("--sizes: each from 8 bytes to 64 MiB, not '%s'", bad);
}

static const char usage[] =
	"usage: bench_transport --ns-a A --if-a VA --ns-b B --if-b VB\n"
	"        [--mtu 9000] [--sizes 65536,819200,3145728] [--count 200]\n"
	"        [--window BYTES] [--retry-ms 50] [--max-seconds 60]\n"
	"        [--verify] [--dup PPM] [--swap PPM] [--qdisc-bypass]\n"
	"        [--tcp-b ADDR]\n";

static void parse(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "ns-a", 1, 0, 'a' }, { "if-a", 1, 0, 'A' },
		{ "ns-b", 1, 0, 'b' }, { "if-b", 1, 0, 'B' },
		{ "mtu", 1, 0, 'm' }, { "sizes", 1, 0, 's' },
		{ "count", 1, 0, 'c' }, { "window", 1, 0, 'w' },
		{ "retry-ms", 1, 0, 'r' }, { "max-seconds", 1, 0, 'x' },
		{ "verify", 0, 0, 'v' }, { "dup", 1, 0, 'd' },
		{ "swap", 1, 0, 'S' }, { "tcp-b", 1, 0, 't' },
		{ "qdisc-bypass", 0, 0, 'q' }, { "help", 0, 0, 'h' },
		{ 0, 0, 0, 0 }
	};
	int c;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 'a': opt.ns_a = optarg; break;
		case 'A': opt.if_a = optarg; break;
		case 'b': opt.ns_b = optarg; break;
		case 'B': opt.if_b = optarg; break;
		case 'm': opt.mtu = (unsigned)atoi(optarg); break;
		case 's': parse_sizes(optarg); break;
		case 'c': opt.count = (uint32_t)atol(optarg); break;
		case 'w': opt.window = (uint32_t)atol(optarg); break;
		case 'r': opt.retry_ms = atof(optarg); break;
		case 'x': opt.max_seconds = atof(optarg); break;
		case 'v': opt.verify = 1; break;
		case 'd': opt.dup_ppm = (uint32_t)atol(optarg); break;
		case 'S': opt.swap_ppm = (uint32_t)atol(optarg); break;
		case 't': opt.tcp_b = optarg; break;
		case 'q': opt.qdisc_bypass = 1; break;
		case 'h': fputs(usage, stdout); exit(0);
		default: fputs(usage, stderr); exit(2);
		}
	}
	if (!opt.ns_a || !opt.if_a || !opt.ns_b || !opt.if_b ||
	    opt.count < 1 || opt.count > MAX_COUNT || opt.mtu < 576 ||
	    opt.mtu > 9600 || opt.retry_ms <= 0 || opt.max_seconds <= 0) {
		fputs(usage, stderr);
		exit(2);
	}
}

/* Send every bundle until each was delivered once; 0 when all were. */
static int dpdk_run(lm_dp_eth *tx, struct receiver *r, uint8_t *bundle,
		    double *seconds, uint64_t *resends)
{
	uint32_t size = r->size, count = r->count;
	uint32_t window = opt.window / size ? opt.window / size : 1;
	double *sent_at = calloc(count, sizeof(double));
	uint32_t next = 0, oldest = 0;
	double t0 = bench_now_s(), deadline = t0 + opt.max_seconds;
	*resends = 0;
	while (r->n_delivered < count && bench_now_s() < deadline) {
		while (oldest < next && r->delivered[oldest])
			oldest++;
		/* resend what has waited too long, oldest first */
		double now = bench_now_s();
		for (uint32_t i = oldest; i < next; i++)
			if (!r->delivered[i] &&
			    now - sent_at[i] > opt.retry_ms * 1e-3) {
				memcpy(bundle, &(uint64_t){ i }, 8);
				lm_dp_eth_send(tx, bundle, size, 1, 1, i, 1000);
				sent_at[i] = bench_now_s();
				(*resends)++;
			}
		uint32_t in_flight = next - __atomic_load_n(&r->n_delivered,
							    __ATOMIC_ACQUIRE);
		if (next < count && in_flight < window) {
			memcpy(bundle, &(uint64_t){ next }, 8);
			lm_dp_eth_send(tx, bundle, size, 1, 1, next, 1000);
			sent_at[next++] = bench_now_s();
		} else {
			rte_pause();
		}
	}
	*seconds = bench_now_s() - t0;
	free(sent_at);
	return r->n_delivered == count ? 0 : -1;
}

int main(int argc, char **argv)
{
	parse(argc, argv);
	/* TCP first: fork before DPDK starts */
	double tcp_s[MAX_SIZES] = { 0 };
	if (opt.tcp_b)
		for (int i = 0; i < opt.n_sizes; i++)
			tcp_s[i] = tcp_run(opt.sizes[i], opt.count);

	char prefix[64], run_name[32];
	snprintf(run_name, sizeof(run_name), "lmbt%d", getpid());
	snprintf(prefix, sizeof(prefix), "--file-prefix=%s", run_name);
	char *eal[] = { argv[0], "--no-huge", "-m", "1024", "--no-pci",
			"--no-shconf", prefix, "-l", "0-1", "--no-telemetry",
			"--log-level=lib.eal:error" };
	if (rte_eal_init((int)(sizeof(eal) / sizeof(*eal)), eal) < 0)
		die("EAL start failed");
	if (rte_lcore_count() < 2)
		die("needs two lcores");
	/* af_packet copies a whole ring frame (framesz) into one mbuf */
	unsigned room = RTE_PKTMBUF_HEADROOM + 10240;
	struct rte_mempool *mb_a = rte_pktmbuf_pool_create(
		"rx_a", 4095, 256, 0, (uint16_t)room, SOCKET_ID_ANY);
	struct rte_mempool *mb_b = rte_pktmbuf_pool_create(
		"rx_b", 8191, 256, 0, (uint16_t)room, SOCKET_ID_ANY);
	struct rte_mempool *mb_tx = rte_pktmbuf_pool_create(
		"tx", 4095, 256, 0, (uint16_t)room, SOCKET_ID_ANY);
	if (!mb_a || !mb_b || !mb_tx)
		die("no memory for mbufs");
	uint16_t pa = port_in(opt.ns_a, opt.if_a, 0, mb_a);
	uint16_t pb = port_in(opt.ns_b, opt.if_b, 1, mb_b);
	lm_error e;

	printf("%-10s %8s %9s %10s %9s %8s %10s %10s\n", "bundle", "count",
	       "seconds", "GB/s", "bundle/s", "resends", "tcp GB/s",
	       "tcp b/s");
	int failed = 0;
	for (int si = 0; si < opt.n_sizes; si++) {
		uint32_t size = opt.sizes[si];
		struct receiver r = { .size = size, .count = opt.count };
		char name[32];
		snprintf(name, sizeof(name), "bundles%d", si);
		uint32_t n_bufs = opt.window / size + 8;
		r.bundles = rte_mempool_create(name, n_bufs, size, 0, 0, NULL,
					       NULL, NULL, NULL, SOCKET_ID_ANY,
					       RTE_MEMPOOL_F_NO_IOVA_CONTIG);
		r.delivered = calloc(opt.count, 1);
		uint8_t *bundle = malloc(size);
		if (!r.bundles || !r.delivered || !bundle)
			die("no memory for bundles");
		for (uint32_t i = 0; i < size; i++)
			bundle[i] = (uint8_t)(i * 131 + 7);
		uint8_t *pattern = malloc(size);
		memcpy(pattern, bundle, size);
		r.pattern = pattern;

		lm_frame_addr to_b = {
			.src_ip = 0x0a4e0001, .dst_ip = 0x0a4e0002,
			.src_port = LM_FRAME_UDP_PORT,
			.dst_port = LM_FRAME_UDP_PORT,
		}, to_a = to_b;
		struct rte_ether_addr ma, mbb;
		rte_eth_macaddr_get(pa, &ma);
		rte_eth_macaddr_get(pb, &mbb);
		memcpy(to_b.src_mac, ma.addr_bytes, 6);
		memcpy(to_b.dst_mac, mbb.addr_bytes, 6);
		to_a.src_ip = to_b.dst_ip;
		to_a.dst_ip = to_b.src_ip;
		lm_dp_eth_config ca = {
			.port = pa, .mtu = opt.mtu, .addr = to_b,
			.tx_pool = mb_tx,
			.reasm = { .max_pending = 8, .max_bundle = size,
				   .recent = 64, .timeout_ns = 1000000000 },
			.buffers = { take_bundle, give_bundle, &r },
			.dup_ppm = opt.dup_ppm, .swap_ppm = opt.swap_ppm,
		}, cb = ca;
		cb.port = pb;
		cb.addr = to_a;
		cb.dup_ppm = cb.swap_ppm = 0;
		/* partial bundles are given up a little before a resend */
		cb.reasm.timeout_ns = (uint64_t)(opt.retry_ms * 0.8e6);
		cb.reasm.max_pending = opt.window / size + 4;
		lm_dp_eth *ta, *tb;
		if (lm_dp_eth_create(&ca, &ta, &e) ||
		    lm_dp_eth_create(&cb, &tb, &e))
			die("%s", e.msg);
		r.t = tb;
		rte_eal_remote_launch(receive_loop, &r,
				      rte_get_next_lcore(-1, 1, 0));
		double secs;
		uint64_t resends;
		int rc = dpdk_run(ta, &r, bundle, &secs, &resends);
		r.stop = 1;
		rte_eal_mp_wait_lcore();
		double gbs = (double)size * r.n_delivered / secs / 1e9;
		printf("%-10u %8u %9.3f %10.3f %9.0f %8llu", size,
		       r.n_delivered, secs, gbs, r.n_delivered / secs,
		       (unsigned long long)resends);
		if (opt.tcp_b)
			printf(" %10.3f %10.0f",
			       (double)size * opt.count / tcp_s[si] / 1e9,
			       opt.count / tcp_s[si]);
		printf("\n");
		bench_print_counters(lm_dp_eth_get_stats(ta),
				     lm_dp_eth_get_stats(tb),
				     lm_dp_eth_reasm_stats(tb));
		printf("  delivered %u/%u exactly once, %llu corrupt, %llu "
		       "repeats suppressed\n", r.n_delivered, opt.count,
		       (unsigned long long)r.corrupt,
		       (unsigned long long)r.repeats);
		if (rc || r.corrupt)
			failed = 1;
		lm_dp_eth_free(ta);
		lm_dp_eth_free(tb);
		rte_mempool_free(r.bundles);
		free(r.delivered);
		free(bundle);
		free(pattern);
	}
	/* stopping the ports would name interfaces of other namespaces;
	 * closing the sockets at exit is enough */
	rte_eal_cleanup();
	bench_remove_runtime_dir(run_name);
	return failed;
}
