/*
 * bench_memif.c: tensor bundles between two processes on one host over a
 * DPDK memif pair (dataplane/transport_eth.c), beside memcpy bandwidth.
 *
 *   bench_memif [--sizes 65536,819200,3145728] [--count N] [options]
 *
 * Two processes, as two laminads on one host would be: the program forks
 * before either starts DPDK, and each runs its own EAL (--no-huge, its own
 * --file-prefix, one lcore on its own CPU: the sender -l 0, the receiver
 * -l 1).  One has a net_memif vdev in role=server, the other role=client,
 * on one socket in a fresh folder under /tmp; the client shares its DPDK
 * memory (zero-copy=yes) unless --copy is given.  Buffers (bsize) hold a
 * whole frame at MTU 9000, so every frame is one memif descriptor and one
 * mbuf.
 *
 * For each bundle size the sender sends --count bundles with lm_dp_eth_send
 * and at most --window bytes outstanding; the receiver reassembles each
 * into a buffer from a mempool (as an edge would), checks every byte, and
 * answers over the same memif pair with a small acknowledgement bundle
 * carrying how many it has delivered, which is what moves the sender's
 * window.  Nothing is resent: memif loses nothing, so a bundle that does
 * not arrive, or arrives corrupt, fails the run (exit 1).  A pipe between
 * the processes only starts and ends each size and carries the receiver's
 * counters back.
 *
 * Beside each size: memcpy between two buffers of that size on this
 * machine (median of several runs), the bound a same-host edge is measured
 * against.  Every loop is bounded (--max-seconds per size); both processes
 * exit and remove their socket, folder and DPDK runtime files.  A
 * benchmark, not a test: both processes busy-poll while a size runs.
 * Run as root.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <rte_cycles.h>
#include <rte_dev.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include "bench_dp.h"

#define MAX_SIZES 8
#define MAX_COUNT 100000
#define MTU 9000
/* one frame at MTU 9000 is 9014 bytes: one memif buffer and one mbuf */
#define BSIZE 9216
#define RSIZE 11 /* 2048 descriptors each way */
#define N_MBUFS 4095
#define MEMCPY_RUNS 7
#define DEPLOYMENT 1
#define EDGE_DATA 1
#define EDGE_ACK 2

static struct {
	uint32_t sizes[MAX_SIZES];
	int n_sizes;
	uint32_t count; /* 0: about 1 GiB of each size */
	uint32_t window;
	double max_seconds;
	int copy, sender_server, verify;
	int cpu_tx, cpu_rx;
} opt = {
	.sizes = { 65536, 819200, 3145728 }, .n_sizes = 3,
	.window = 8u << 20, .max_seconds = 10, .verify = 1,
	.cpu_tx = 0, .cpu_rx = 1,
};

/* What the pipes between the two processes carry. */
enum { MSG_UP, MSG_PHASE, MSG_READY, MSG_STOP, MSG_RESULT, MSG_END };

struct result {
	uint32_t delivered, corrupt, repeats, ack_fails;
	lm_dp_eth_stats rx;
	lm_reasm_stats reasm;
};

struct msg {
	int type, phase;
	uint32_t size, count;
	struct result r;
};

/* The acknowledgement bundle: cumulative counts at the receiver. */
struct ack {
	uint64_t delivered, corrupt;
};

static const char *self_name = "bench_memif";

/* What the sender (the parent) removes however the run ends. */
static struct {
	char dir[64], sock[128], prefix[2][64];
	pid_t child;
} made;

static void remove_made(void)
{
	for (int i = 0; i < 2; i++)
		bench_remove_runtime_dir(made.prefix[i]);
	if (made.sock[0])
		unlink(made.sock);
	if (made.dir[0])
		rmdir(made.dir);
}

/* SIGINT or SIGTERM to the sender: end the size running, then clean up */
static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Fail; the sender also stops the receiver and removes what was made. */
static void die(const char *fmt, ...)
{
	va_list ap;
	fflush(stdout);
	va_start(ap, fmt);
	fprintf(stderr, "%s: ", self_name);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	if (made.child > 0) {
		kill(made.child, SIGKILL);
		waitpid(made.child, NULL, 0);
		remove_made();
	}
	_exit(1);
}

static uint64_t ns_now(void)
{
	return rte_get_tsc_cycles() * 1000000000ull / rte_get_tsc_hz();
}

static uint32_t count_for(uint32_t size)
{
	if (opt.count)
		return opt.count;
	uint32_t n = (1u << 30) / size;
	return n < 100 ? 100 : n > 20000 ? 20000 : n;
}

/* ---- memcpy, the bound ---- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* GB/s of memcpy between two buffers of `size` bytes, median of runs. */
static double memcpy_gbs(uint32_t size)
{
	uint8_t *src = malloc(size), *dst = malloc(size);
	if (!src || !dst)
		die("no memory for the memcpy buffers");
	memset(src, 0x5a, size);
	memset(dst, 0, size);
	/* about 256 MB a run: long enough to time, short on a shared host */
	uint32_t reps = (256u << 20) / size ? (256u << 20) / size : 1;
	double gbs[MEMCPY_RUNS];
	for (int run = 0; run < MEMCPY_RUNS; run++) {
		double t0 = bench_now_s();
		for (uint32_t i = 0; i < reps; i++) {
			memcpy(dst, src, size);
			__asm__ volatile("" : : "r"(dst), "r"(src) : "memory");
		}
		gbs[run] = (double)size * reps / (bench_now_s() - t0) / 1e9;
	}
	if (dst[size - 1] != 0x5a)
		die("memcpy did not copy");
	free(src);
	free(dst);
	qsort(gbs, MEMCPY_RUNS, sizeof(double), cmp_double);
	return gbs[MEMCPY_RUNS / 2];
}

/* ---- the pipes ---- */

static void put_msg(int fd, const struct msg *m)
{
	if (write(fd, m, sizeof(*m)) != (ssize_t)sizeof(*m))
		die("the other process is gone (write: %s)", strerror(errno));
}

/* Wait at most `seconds` for a message of type `type`; blocking, no spin. */
static void get_msg(int fd, int type, double seconds, struct msg *m)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int rc = poll(&p, 1, (int)(seconds * 1000));
	if (rc <= 0)
		die("no word from the other process in %.0f s", seconds);
	if (read(fd, m, sizeof(*m)) != (ssize_t)sizeof(*m))
		die("the other process is gone");
	if (m->type != type)
		die("protocol: message %d where %d was due", m->type, type);
}

/* Is there a message waiting (non-blocking)? */
static int msg_waiting(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	return poll(&p, 1, 0) > 0;
}

/* ---- one process's DPDK side ---- */

struct side {
	int sender, server;
	char prefix[64];
	uint16_t port;
	struct rte_mempool *rx_pool, *tx_pool;
	lm_frame_addr addr;
	int to_peer, from_peer;
};

static void eal_start(struct side *s)
{
	char lcores[16];
	snprintf(lcores, sizeof(lcores), "%d",
		 s->sender ? opt.cpu_tx : opt.cpu_rx);
	char prefix_arg[96];
	snprintf(prefix_arg, sizeof(prefix_arg), "--file-prefix=%s",
		 s->prefix);
	char *eal[] = { (char *)self_name, "--no-huge", "-m", "256",
			"--no-pci", "--single-file-segments", prefix_arg,
			"-l", lcores, "--no-telemetry",
			"--log-level=lib.eal:error",
			"--log-level=pmd.net.memif:error" };
	if (rte_eal_init((int)(sizeof(eal) / sizeof(*eal)), eal) < 0)
		die("EAL start failed (%s)", rte_strerror(rte_errno));
}

static void port_start(struct side *s, const char *sock)
{
	char args[256];
	snprintf(args, sizeof(args), "net_memif0,role=%s,id=0,bsize=%d,"
		 "rsize=%d,socket=%s,socket-abstract=no%s",
		 s->server ? "server" : "client", BSIZE, RSIZE, sock,
		 !s->server && !opt.copy ? ",zero-copy=yes" : "");
	lm_error e;
	if (rte_dev_probe(args) ||
	    rte_eth_dev_get_port_by_name("net_memif0", &s->port))
		die("cannot create the memif port (%s)", args);
	if (lm_dp_eth_port_start(s->port, MTU, s->rx_pool, &e))
		die("%s", e.msg);
}

static void wait_link(struct side *s)
{
	double deadline = bench_now_s() + 5;
	struct rte_eth_link link;
	do {
		memset(&link, 0, sizeof(link));
		rte_eth_link_get_nowait(s->port, &link);
		if (link.link_status == RTE_ETH_LINK_UP)
			return;
		usleep(10000);
	} while (bench_now_s() < deadline);
	die("the memif %s did not connect in 5 s",
	    s->server ? "server" : "client");
}

/* Wait (at most 2 s) until the peer's going is seen, then a moment
 * more for the interrupt thread to finish tearing down. */
static void wait_link_down(struct side *s)
{
	struct rte_eth_link link;
	double end = bench_now_s() + 2;
	for (; bench_now_s() < end; usleep(10000)) {
		memset(&link, 0, sizeof(link));
		rte_eth_link_get_nowait(s->port, &link);
		if (link.link_status == RTE_ETH_LINK_DOWN)
			break;
	}
	usleep(100000);
}

static void side_stop(struct side *s)
{
	rte_eth_dev_stop(s->port);
	rte_eth_dev_close(s->port); /* the server removes its socket */
	rte_mempool_free(s->tx_pool);
	rte_mempool_free(s->rx_pool);
	rte_eal_cleanup();
	bench_remove_runtime_dir(s->prefix);
}

/* Buffers for received bundles: a mempool of one size. */
struct buffers {
	struct rte_mempool *pool;
	uint32_t size;
};

static void *take_buffer(void *ctx, const lm_frame_info *f, int *why)
{
	struct buffers *b = ctx;
	void *p = NULL;
	if (f->total_len != b->size) {
		*why = -ENOENT;
		return NULL;
	}
	if (rte_mempool_get(b->pool, &p)) {
		*why = -ENOBUFS;
		return NULL;
	}
	return p;
}

static void give_buffer(void *ctx, void *buf)
{
	struct buffers *b = ctx;
	rte_mempool_put(b->pool, buf);
}

static lm_dp_eth *edge_create(struct side *s, struct buffers *b,
			      uint32_t max_pending)
{
	lm_dp_eth_config c = {
		.port = s->port, .mtu = MTU, .addr = s->addr,
		.tx_pool = s->tx_pool,
		.reasm = { .max_pending = max_pending, .max_bundle = b->size,
			   .recent = 64, .timeout_ns = 1000000000 },
		.buffers = { take_buffer, give_buffer, b },
	};
	lm_dp_eth *t;
	lm_error e;
	if (lm_dp_eth_create(&c, &t, &e))
		die("%s", e.msg);
	return t;
}

static struct rte_mempool *buffer_pool(const char *name, uint32_t n,
				       uint32_t size)
{
	struct rte_mempool *p = rte_mempool_create(
		name, n, size, 0, 0, NULL, NULL, NULL, NULL, SOCKET_ID_ANY,
		RTE_MEMPOOL_F_NO_IOVA_CONTIG);
	if (!p)
		die("no memory for %u buffers of %u bytes", n, size);
	return p;
}

static void fill_pattern(uint8_t *b, uint32_t size)
{
	for (uint32_t i = 0; i < size; i++)
		b[i] = (uint8_t)(i * 131 + 7);
}

/* ---- the receiver ---- */

/* Receive one size's bundles until all came, the sender stops us, or the
 * time is up; acknowledge as they complete. */
static void receive_phase(struct side *s, const struct msg *m)
{
	uint32_t size = m->size, count = m->count;
	uint32_t window = opt.window / size ? opt.window / size : 1;
	char name[32];
	snprintf(name, sizeof(name), "bundles%d", m->phase);
	struct buffers b = { buffer_pool(name, window + 8, size), size };
	lm_dp_eth *t = edge_create(s, &b, window + 4);
	uint8_t *pattern = malloc(size), *delivered = calloc(count, 1);
	if (!pattern || !delivered)
		die("no memory for %u bundles of %u bytes", count, size);
	fill_pattern(pattern, size);

	struct msg out = { .type = MSG_READY, .phase = m->phase };
	put_msg(s->to_peer, &out);
	struct result *r = &out.r;
	struct ack ack = { 0, 0 };
	int ack_due = 0, stop = 0;
	lm_reasm_bundle done[32];
	double deadline = bench_now_s() + opt.max_seconds + 1;
	for (uint64_t spin = 0; !stop; spin++) {
		int n = lm_dp_eth_poll(t, done, 32, ns_now());
		for (int i = 0; i < n; i++) {
			uint64_t id = done[i].request_id, head;
			const uint8_t *p = done[i].buf;
			memcpy(&head, p, sizeof(head));
			if (id >= count || head != id ||
			    (opt.verify &&
			     memcmp(p + 8, pattern + 8, size - 8)))
				r->corrupt++;
			else if (delivered[id])
				r->repeats++;
			else {
				delivered[id] = 1;
				r->delivered++;
			}
			rte_mempool_put(b.pool, done[i].buf);
		}
		if (n)
			ack_due = 1;
		if (ack_due) {
			ack.delivered = r->delivered;
			ack.corrupt = r->corrupt;
			if (lm_dp_eth_send(t, &ack, sizeof(ack), DEPLOYMENT,
					   EDGE_ACK, r->delivered, 1000))
				r->ack_fails++; /* the next one says it */
			else
				ack_due = 0;
		}
		if (r->delivered + r->corrupt >= count && !ack_due)
			break;
		/* look up now and then: the sender may give up first */
		if (!(spin & 1023) && msg_waiting(s->from_peer)) {
			struct msg st;
			get_msg(s->from_peer, MSG_STOP, 1, &st);
			stop = 1;
		} else if (!(spin & 1023) && bench_now_s() > deadline) {
			stop = 1;
		}
	}
	r->rx = *lm_dp_eth_get_stats(t);
	r->reasm = *lm_dp_eth_reasm_stats(t);
	lm_dp_eth_free(t);
	rte_mempool_free(b.pool);
	free(pattern);
	free(delivered);
	out.type = MSG_RESULT;
	put_msg(s->to_peer, &out);
}

/* ---- the sender ---- */

struct phase_out {
	double seconds;
	uint32_t acked, send_fails;
	uint64_t acks_corrupt;
	lm_dp_eth_stats tx;
	struct result r;
};

static void send_phase(struct side *s, int phase, uint32_t size,
		       uint32_t count, struct phase_out *o)
{
	struct msg m = { .type = MSG_PHASE, .phase = phase, .size = size,
			 .count = count };
	put_msg(s->to_peer, &m);
	get_msg(s->from_peer, MSG_READY, 10, &m);

	uint32_t window = opt.window / size ? opt.window / size : 1;
	char name[32];
	snprintf(name, sizeof(name), "acks%d", phase);
	struct buffers acks = { buffer_pool(name, 63, sizeof(struct ack)),
				sizeof(struct ack) };
	lm_dp_eth *t = edge_create(s, &acks, 8);
	uint8_t *bundle = malloc(size);
	if (!bundle)
		die("no memory for a bundle of %u bytes", size);
	fill_pattern(bundle, size);

	memset(o, 0, sizeof(*o));
	uint32_t next = 0;
	lm_reasm_bundle done[8];
	double t0 = bench_now_s(), deadline = t0 + opt.max_seconds;
	while (o->acked + o->send_fails < count) {
		int n = lm_dp_eth_poll(t, done, 8, ns_now());
		for (int i = 0; i < n; i++) {
			struct ack a;
			memcpy(&a, done[i].buf, sizeof(a));
			if (a.delivered > o->acked)
				o->acked = (uint32_t)a.delivered;
			o->acks_corrupt = a.corrupt;
			rte_mempool_put(acks.pool, done[i].buf);
		}
		uint32_t in_flight = next - o->acked - o->send_fails;
		if (next < count && in_flight < window) {
			memcpy(bundle, &(uint64_t){ next }, 8);
			if (lm_dp_eth_send(t, bundle, size, DEPLOYMENT,
					   EDGE_DATA, next, 100000))
				o->send_fails++;
			next++;
		} else if (bench_now_s() > deadline || interrupted) {
			break;
		} else {
			rte_pause();
		}
		/* corrupt bundles are never acknowledged as delivered */
		if (o->acks_corrupt &&
		    o->acked + o->acks_corrupt + o->send_fails >= count)
			break;
	}
	o->seconds = bench_now_s() - t0;
	o->tx = *lm_dp_eth_get_stats(t);
	m.type = MSG_STOP; /* stop the receiver if it still waits */
	if (o->acked + o->send_fails < count)
		put_msg(s->to_peer, &m);
	get_msg(s->from_peer, MSG_RESULT, opt.max_seconds + 5, &m);
	o->r = m.r;
	lm_dp_eth_free(t);
	rte_mempool_free(acks.pool);
	free(bundle);
}

/* ---- set-up, common to both processes ---- */

static void side_init(struct side *s, const char *sock)
{
	eal_start(s);
	unsigned room = RTE_PKTMBUF_HEADROOM + BSIZE;
	s->rx_pool = rte_pktmbuf_pool_create("rx", N_MBUFS, 256, 0,
					     (uint16_t)room, SOCKET_ID_ANY);
	s->tx_pool = rte_pktmbuf_pool_create("tx", s->sender ? N_MBUFS : 1023,
					     256, 0, (uint16_t)room,
					     SOCKET_ID_ANY);
	if (!s->rx_pool || !s->tx_pool)
		die("no memory for mbufs");
	struct msg m = { .type = MSG_UP };
	if (s->server) {
		port_start(s, sock); /* listens from here on */
		put_msg(s->to_peer, &m);
	} else {
		get_msg(s->from_peer, MSG_UP, 30, &m);
		port_start(s, sock);
	}
	wait_link(s);
	struct rte_ether_addr mac;
	rte_eth_macaddr_get(s->port, &mac);
	memcpy(s->addr.src_mac, mac.addr_bytes, 6);
	memset(s->addr.dst_mac, 0xff, 6); /* memif has one peer */
	s->addr.src_ip = s->sender ? 0x0a4d0001 : 0x0a4d0002;
	s->addr.dst_ip = s->sender ? 0x0a4d0002 : 0x0a4d0001;
	s->addr.src_port = s->addr.dst_port = LM_FRAME_UDP_PORT;
}

static int receiver_main(struct side *s, const char *sock)
{
	self_name = "bench_memif (receiver)";
	side_init(s, sock);
	struct msg m;
	for (;;) {
		/* between sizes: blocked on the pipe, not polling */
		struct pollfd p = { .fd = s->from_peer, .events = POLLIN };
		if (poll(&p, 1, 60000) <= 0 ||
		    read(s->from_peer, &m, sizeof(m)) != (ssize_t)sizeof(m) ||
		    m.type == MSG_END)
			break;
		if (m.type == MSG_PHASE)
			receive_phase(s, &m);
	}
	side_stop(s);
	return 0;
}

/* ---- options ---- */

static void parse_sizes(const char *s)
{
	const char *bad;
	/* a whole bundle's frames must fit the memif ring at once */
	opt.n_sizes = bench_parse_sizes(s, opt.sizes, MAX_SIZES, 64,
					8u << 20, &bad);
	if (opt.n_sizes < 0)
		die("--sizes: each from 64 bytes to 8 MiB, not '%s'", bad);
}

static const char usage[] =
	"usage: bench_memif [--sizes 65536,819200,3145728] [--count N]\n"
	"        [--window BYTES] [--max-seconds 10] [--copy]\n"
	"        [--sender-server] [--no-verify] [--cpus TX,RX]\n"
	"  --count N        bundles of each size (default: about 1 GiB, "
	"100 to 20000)\n"
	"  --copy           no zero-copy on the memif client\n"
	"  --sender-server  the sender is the memif server (default: client)\n";

static void parse(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "sizes", 1, 0, 's' }, { "count", 1, 0, 'c' },
		{ "window", 1, 0, 'w' }, { "max-seconds", 1, 0, 'x' },
		{ "copy", 0, 0, 'C' }, { "sender-server", 0, 0, 'S' },
		{ "no-verify", 0, 0, 'n' }, { "cpus", 1, 0, 'p' },
		{ "help", 0, 0, 'h' }, { 0, 0, 0, 0 }
	};
	int c;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 's': parse_sizes(optarg); break;
		case 'c': opt.count = (uint32_t)atol(optarg); break;
		case 'w': opt.window = (uint32_t)atol(optarg); break;
		case 'x': opt.max_seconds = atof(optarg); break;
		case 'C': opt.copy = 1; break;
		case 'S': opt.sender_server = 1; break;
		case 'n': opt.verify = 0; break;
		case 'p':
			if (sscanf(optarg, "%d,%d", &opt.cpu_tx,
				   &opt.cpu_rx) != 2)
				die("--cpus: two CPU numbers, TX,RX");
			break;
		case 'h': fputs(usage, stdout); exit(0);
		default: fputs(usage, stderr); exit(2);
		}
	}
	/* the window bounds the frames in the memif ring (2048 slots) */
	if (optind < argc || opt.count > MAX_COUNT || opt.window < 65536 ||
	    opt.window > (12u << 20) || opt.max_seconds <= 0 ||
	    opt.max_seconds > 120 || opt.cpu_tx < 0 || opt.cpu_rx < 0) {
		fputs(usage, stderr);
		exit(2);
	}
}

/* Wait at most `seconds` for the receiver to exit; 0 when it did, cleanly. */
static int wait_receiver(double seconds)
{
	int status;
	double end = bench_now_s() + seconds;
	for (; bench_now_s() < end; usleep(10000))
		if (waitpid(made.child, &status, WNOHANG) == made.child) {
			made.child = 0;
			return WIFEXITED(status) && !WEXITSTATUS(status) ? 0
									 : -1;
		}
	kill(made.child, SIGKILL);
	waitpid(made.child, NULL, 0);
	made.child = 0;
	fprintf(stderr, "%s: the receiver did not exit\n", self_name);
	return -1;
}

int main(int argc, char **argv)
{
	parse(argc, argv);
	double copy_gbs[MAX_SIZES];
	for (int i = 0; i < opt.n_sizes; i++)
		copy_gbs[i] = memcpy_gbs(opt.sizes[i]);

	snprintf(made.dir, sizeof(made.dir), "/tmp/lamina-memif-XXXXXX");
	if (!mkdtemp(made.dir)) {
		made.dir[0] = 0;
		die("cannot make a folder under /tmp: %s", strerror(errno));
	}
	snprintf(made.sock, sizeof(made.sock), "%s/memif.sock", made.dir);
	/* a receiver gone shows as EPIPE, and the sender cleans up */
	signal(SIGPIPE, SIG_IGN);
	int down[2], up[2]; /* sender to receiver, receiver to sender */
	if (pipe(down) || pipe(up))
		die("pipe: %s", strerror(errno));

	/* fork before either process starts DPDK */
	pid_t parent = getpid();
	snprintf(made.prefix[0], sizeof(made.prefix[0]), "lmbm%dtx",
		 (int)parent);
	snprintf(made.prefix[1], sizeof(made.prefix[1]), "lmbm%drx",
		 (int)parent);
	struct side s = { .server = opt.sender_server };
	fflush(stdout);
	pid_t child = fork();
	if (child < 0)
		die("fork: %s", strerror(errno));
	if (child == 0) {
		/* the receiver dies with the sender */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);
		close(down[1]);
		close(up[0]);
		s.to_peer = up[1];
		s.from_peer = down[0];
		s.server = !opt.sender_server;
		snprintf(s.prefix, sizeof(s.prefix), "%s", made.prefix[1]);
		exit(receiver_main(&s, made.sock));
	}
	made.child = child;
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	close(down[0]);
	close(up[1]);
	s.sender = 1;
	s.to_peer = down[1];
	s.from_peer = up[0];
	snprintf(s.prefix, sizeof(s.prefix), "%s", made.prefix[0]);
	side_init(&s, made.sock);

	printf("memif %s, sender is the %s, window %u bytes, %s; CPUs %d "
	       "(sender) and %d (receiver)\n",
	       opt.copy ? "copying" : "zero-copy client",
	       opt.sender_server ? "server" : "client", opt.window,
	       opt.verify ? "every byte checked" : "bytes not checked",
	       opt.cpu_tx, opt.cpu_rx);
	printf("%-10s %7s %8s %8s %10s %11s %12s\n", "bundle", "count",
	       "seconds", "GB/s", "bundles/s", "memcpy GB/s",
	       "memcpy b/s");
	int failed = 0;
	for (int i = 0; i < opt.n_sizes; i++) {
		uint32_t size = opt.sizes[i], count = count_for(size);
		struct phase_out o;
		send_phase(&s, i, size, count, &o);
		uint32_t got = o.r.delivered;
		printf("%-10u %7u %8.3f %8.3f %10.0f %11.2f %12.0f\n", size,
		       got, o.seconds, (double)size * got / o.seconds / 1e9,
		       got / o.seconds, copy_gbs[i],
		       copy_gbs[i] * 1e9 / size);
		bench_print_counters(&o.tx, &o.r.rx, &o.r.reasm);
		printf("  delivered %u/%u, %u corrupt, %u repeats, %u sends "
		       "failed, %u acks failed\n", got, count, o.r.corrupt,
		       o.r.repeats, o.send_fails, o.r.ack_fails);
		fflush(stdout);
		if (got != count || o.r.corrupt || o.r.repeats)
			failed = 1;
		if (interrupted)
			die("interrupted");
	}

	/* One side at a time: the receiver closes its end first; the memif
	 * server or client here sees the peer go (its interrupt thread tears
	 * the connection down) before this thread stops the port, as the two
	 * must not free the connection's regions at once. */
	struct msg end = { .type = MSG_END };
	put_msg(s.to_peer, &end);
	if (wait_receiver(10))
		failed = 1;
	wait_link_down(&s);
	side_stop(&s);
	remove_made();
	return failed;
}
