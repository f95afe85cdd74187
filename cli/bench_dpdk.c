/*
 * `rill bench dpdk`: the same event datagrams through DPDK (a net_ring port pair: the
 * sender's TX ring is the ingress's RX ring, so the ingress runs its real poll-mode path)
 * and through a kernel UDP socket on loopback read with recvmmsg, in one run, each into a
 * fresh engine: first closed loop (the sender as fast as it can; events/s counted where
 * they are appended), then open loop at half that rate for the internal latency, poll
 * (or recvmmsg) time → applied, from the shards' own histograms. Prints one JSON object
 * {"dpdk": {...}, "kernel": {...}}. Main thread plus a sender and a receiver; not part of
 * the engine.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "base/assert.h"
#include "base/atomic.h"
#include "base/clock.h"
#include "base/thread.h"
#include "cli.h"
#include "io/dpdk.h"
#include "io/udp_ingress.h"
#include "io/wire.h"
#include "rill/schema.h"
#include "rill_config.h"

#if RILL_HAVE_DPDK
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#endif

#define BD_NS_PER_S  1000000000ull
#define BD_FRAMES    64u /* distinct datagrams the sender cycles through */
#define BD_BURST     32u
#define BD_BATCH_MAX 64u
#define BD_DGRAM_MAX 8192u
#define BD_FRAME_MAX 1514u /* Ethernet header + a 1500-byte MTU */
#define BD_UDP_PORT  7411u

struct bd_opts {
	uint64_t seconds, record_bytes, batch, rate, shards;
	const char *eal, *dir;
	bool busy;
	cpu_set_t cpus; /* where the process may run: the kernel path's receiver's */
};

/* One path's run: an engine, its topic, the datagrams to send. */
struct bd_run {
	const struct bd_opts *o;
	struct rill_engine *engine;
	struct rill_topic *topic;
	char dir[512];
	uint8_t frames[BD_FRAMES][BD_DGRAM_MAX]; /* Ethernet + IPv4 + UDP + PRODUCE */
	uint32_t frame_bytes;
	uint64_t rate; /* events/s; 0: as fast as it goes */
	uint64_t stop; /* atomic */
	uint64_t sent; /* datagrams */
	int rc;
};

struct bd_result {
	double events_per_s;
	uint64_t events, sent_events, half_rate;
	uint64_t half_events, half_sent_events; /* the open loop's: what it lost shows */
	uint64_t p50_ns, p99_ns, p999_ns, p9999_ns, max_ns;
	uint64_t ring_p50_ns, ring_p999_ns; /* the first stage: poll → taken by the shard */
	uint64_t preempted;                 /* the shards' involuntary context switches */
};

static const char bd_help[] =
	"usage: rill bench dpdk [--seconds S] [--record-bytes B] [--batch N] [--eal \"ARGS\"]\n"
	"                       [--shards N] [--rate R] [--dir DIR] [--poll busy|adaptive] "
	"[--json]\n"
	"\n"
	"The same event datagrams (N events of about B bytes each, default 8 x 64) through\n"
	"DPDK (a net_ring pair: the real poll-mode path, no NIC) and through a kernel UDP\n"
	"socket on loopback read with recvmmsg: S seconds (default 3) closed loop for events/s,\n"
	"then S seconds open loop at half that rate for the internal latency (poll time →\n"
	"applied; --rate R instead of half). That latency is the engine's own, from the\n"
	"datagram's poll: time a datagram waited in the device's ring or the socket before\n"
	"it (the sender's schedule) is not in it, by definition. One shard by default\n"
	"(--shards), polling the DPDK queue itself; the sender on a CPU no shard has, when\n"
	"there is one. Engines in new folders under DIR (default $TMPDIR or /tmp).\n"
	"Polling: a shard that polls a DPDK queue never sleeps, whatever --poll says. With\n"
	"--poll busy (the default) the kernel path's shard spins too: the two paths compared\n"
	"on equal terms (on a small machine its spinning takes a CPU from the kernel path's\n"
	"sender and receiver). With --poll adaptive it sleeps when idle and must be woken by\n"
	"the receiving thread, which shows in its latency: that compares poll modes as much\n"
	"as paths. The JSON says which (\"poll\"). A datagram must fit one 1500-byte MTU frame.\n"
	"Prints\n"
	"{\"dpdk\": {...}, \"kernel\": {...}} with events_per_s (applied within the run),\n"
	"events and sent_events (after the run settled), the open loop's half_rate (asked),\n"
	"half_sent_rate (the sender kept up with: below 95% of half_rate, a warning on stderr,\n"
	"for latency at less than the load asked), half_events and half_sent_events (what it\n"
	"lost shows), p50_ns, p99_ns, p999_ns, p9999_ns, max_ns, shard_preempted and\n"
	"cpu_steal_pct; and seconds, each loop's length.\n";

static const char bd_schema[] =
	"{\"type\":\"BenchEvent\",\"version\":1,\"fields\":[{\"name\":\"n\",\"type\":\"i64\"},"
	"{\"name\":\"pad\",\"type\":\"bytes\",\"max_length\":65536,\"default\":\"\"}]}";

static int bd_engine_open(struct bd_run *r, const char *tag)
{
	snprintf(r->dir, sizeof(r->dir), "%s/rill-bench-dpdk-%s-XXXXXX", r->o->dir, tag);
	if (mkdtemp(r->dir) == NULL)
		return -errno;
	struct rill_engine_config cfg;
	rill_engine_config_default(&cfg);
	cfg.data_dir = r->dir;
	cfg.poll = r->o->busy ? RILL_POLL_BUSY : RILL_POLL_ADAPTIVE;
	cfg.shards = (uint32_t)r->o->shards;
	cfg.snapshots_off = true;
	struct rill_error_text err = {{0}};
	int rc = rill_engine_open(&r->engine, &cfg, &err);
	const struct rill_schema *schema = NULL;
	if (rc == 0)
		rc = rill_schema_register(rill_engine_schemas(r->engine), bd_schema,
					  strlen(bd_schema), -1, &schema, NULL);
	struct rill_topic_config tc = {.name = "bench", .partitions = 4};
	if (rc == 0)
		rc = rill_topic_create(r->engine, &tc, &r->topic, &err);
	if (rc < 0) {
		fprintf(stderr, "rill: bench dpdk: engine in %s: %s\n", r->dir,
			err.message[0] ? err.message : rill_strerror(rc));
		return rc;
	}
	/* The datagrams: batch events each, keys rotating over the frames. */
	static uint8_t pad[BD_DGRAM_MAX];
	struct rill_payload_builder pb;
	uint32_t payload_bytes = 0, cap = rill_schema_payload_bytes_max(schema);
	uint8_t *payload = malloc(cap);
	uint64_t fixed = RILL_RECORD_HEADER_BYTES + 8 + 16;
	uint32_t pad_bytes =
		r->o->record_bytes > fixed ? (uint32_t)(r->o->record_bytes - fixed) : 0;
	rc = payload == NULL ? -ENOMEM : rill_payload_builder_init(&pb, schema, payload, cap);
	if (rc == 0)
		rc = rill_payload_set_i64(&pb, 0, 1);
	if (rc == 0)
		rc = rill_payload_set_var(&pb, 1, pad, pad_bytes);
	if (rc == 0)
		rc = rill_payload_builder_finish(&pb, &payload_bytes, NULL);
	struct rill_udp_peer to = {
		.ip = 0x7f000001, .port = BD_UDP_PORT, .local_ip = 0x7f000001, .local_port = 40000};
	static const uint8_t mac[6] = {2, 0, 0, 0, 0, 1};
	for (uint32_t f = 0; rc == 0 && f < BD_FRAMES; f++) {
		uint8_t dgram[BD_DGRAM_MAX];
		int at = rill_wire_produce_begin(dgram, sizeof(dgram), 1, 0, "bench", 5);
		for (uint64_t e = 0; at > 0 && e < r->o->batch; e++) {
			char key[16];
			snprintf(key, sizeof(key), "k%02u-%03u", f, (unsigned)e);
			struct rill_record rec = {.type_id = rill_schema_type_id(schema),
						  .schema_version = 1,
						  .key = key,
						  .key_bytes = 7,
						  .payload = payload,
						  .payload_bytes = payload_bytes};
			int n = rill_record_encode(dgram + at, sizeof(dgram) - (size_t)at, &rec);
			at = n > 0 ? at + n : -ENOSPC;
		}
		/* One Ethernet frame each: a NIC's MTU of 1500 (and net_ring's mbufs, whose
		 * data room is 2048 bytes) takes no more, and the ingress refuses chains. */
		if (at < 0 || (uint32_t)at + 42 > BD_FRAME_MAX) {
			fprintf(stderr,
				"rill: bench dpdk: %llu events of about %llu bytes make a "
				"datagram past the %u bytes of one 1500-byte MTU frame: fewer "
				"(--batch) or smaller (--record-bytes)\n",
				(unsigned long long)r->o->batch,
				(unsigned long long)r->o->record_bytes, BD_FRAME_MAX - 42);
			rc = -EMSGSIZE;
			break;
		}
		rill_wire_produce_finish(dgram, (uint32_t)at, (uint32_t)r->o->batch);
		r->frame_bytes = rill_udp_frame_build(r->frames[f], mac, &to, dgram, (uint32_t)at);
	}
	free(payload);
	return rc;
}

static void bd_engine_close(struct bd_run *r)
{
	if (r->engine != NULL)
		rill_engine_close(r->engine);
	r->engine = NULL;
	cli_remove_tree(r->dir);
}

/* Events appended so far, over every shard. */
static uint64_t bd_events(struct rill_engine *e)
{
	uint64_t n = 0;
	for (uint32_t i = 0; i < rill_engine_shards(e); i++) {
		struct rill_shard_stats st;
		if (rill_engine_shard_stats(e, i, &st) == 0)
			n += st.events;
	}
	return n;
}

/* The internal latency: each shard's applied histogram; the worst shard per percentile. */
static void bd_latency(struct rill_engine *e, struct bd_result *out)
{
	for (uint32_t i = 0; i < rill_engine_shards(e); i++) {
		struct rill_shard_stats st;
		if (rill_engine_shard_stats(e, i, &st) != 0 || st.applied.count == 0)
			continue;
		out->p50_ns = st.applied.p50_ns > out->p50_ns ? st.applied.p50_ns : out->p50_ns;
		out->p99_ns = st.applied.p99_ns > out->p99_ns ? st.applied.p99_ns : out->p99_ns;
		out->p999_ns =
			st.applied.p999_ns > out->p999_ns ? st.applied.p999_ns : out->p999_ns;
		out->p9999_ns =
			st.applied.p9999_ns > out->p9999_ns ? st.applied.p9999_ns : out->p9999_ns;
		out->max_ns = st.applied.max_ns > out->max_ns ? st.applied.max_ns : out->max_ns;
		if (st.ring.p50_ns > out->ring_p50_ns)
			out->ring_p50_ns = st.ring.p50_ns;
		if (st.ring.p999_ns > out->ring_p999_ns)
			out->ring_p999_ns = st.ring.p999_ns;
		out->preempted += st.preempted;
	}
}

/* Datagram @seq's frame (its sequence written into the PRODUCE header: bytes 8..15). */
static const uint8_t *bd_frame(struct bd_run *r, uint64_t seq)
{
	uint8_t *f = r->frames[seq % BD_FRAMES];
	uint8_t *id = f + 42 + 8; /* Ethernet 14, IPv4 20, UDP 8; request_id at 8 */
	for (int i = 0; i < 8; i++)
		id[i] = (uint8_t)(seq >> (8 * i));
	return f;
}

/*
 * How many datagrams to send now, @sent so far: closed loop, a burst; open loop, those
 * due by the schedule (at most a burst), napping 10 µs when none is: a spinning sender
 * would take the CPU the receiving side needs on a small machine. The internal latency
 * counts from the poll, so a datagram sent a little late costs nothing measured.
 */
static uint32_t bd_due(struct bd_run *r, uint64_t start, uint64_t sent)
{
	if (r->rate == 0)
		return BD_BURST;
	for (;;) {
		uint64_t now = rill_clock_now_ns();
		/* In doubles: elapsed ns times the rate passes 2^64 after some 30 min at 10 M/s. */
		uint64_t due = (uint64_t)((double)(now - start) * (double)r->rate /
					  (double)r->o->batch / (double)BD_NS_PER_S);
		if (due > sent)
			return due - sent > BD_BURST ? BD_BURST : (uint32_t)(due - sent);
		struct timespec ts = {0, 10000};
		nanosleep(&ts, NULL);
	}
}

/* ---- The kernel path: a UDP socket read with recvmmsg ------------------------------ */

struct bd_kernel {
	struct bd_run *r;
	int fd;
	struct rill_udp_ingress *ing;
};

static void *bd_kernel_rx(void *arg)
{
	struct bd_kernel *k = arg;
	struct mmsghdr msgs[BD_BURST];
	struct iovec iov[BD_BURST];
	struct sockaddr_in from[BD_BURST];
	static __thread uint8_t bufs[BD_BURST][BD_DGRAM_MAX];
	while (rill_atomic_load_acquire_u64(&k->r->stop) == 0) { /* A: pairs with R below */
		for (uint32_t i = 0; i < BD_BURST; i++) {
			iov[i] = (struct iovec){.iov_base = bufs[i], .iov_len = BD_DGRAM_MAX};
			msgs[i] = (struct mmsghdr){.msg_hdr = {.msg_iov = &iov[i],
							       .msg_iovlen = 1,
							       .msg_name = &from[i],
							       .msg_namelen = sizeof(from[i])}};
		}
		/* No timeout argument: recvmmsg checks it only after a datagram came. The
		 * socket's SO_RCVTIMEO bounds the wait, so the stop flag is seen. */
		int n = recvmmsg(k->fd, msgs, BD_BURST, MSG_WAITFORONE, NULL);
		uint64_t now = rill_clock_now_ns(); /* the receive time: latency counts from it */
		for (int i = 0; i < n; i++) {
			struct rill_udp_peer peer = {.ip = ntohl(from[i].sin_addr.s_addr),
						     .port = ntohs(from[i].sin_port)};
			(void)rill_udp_ingress_datagram(k->ing, &peer, bufs[i], msgs[i].msg_len,
							now);
		}
		rill_udp_ingress_poll(k->ing);
	}
	return NULL;
}

static uint64_t bd_kernel_send(struct bd_run *r, int fd, const struct sockaddr_in *to, uint64_t end)
{
	struct mmsghdr msgs[BD_BURST];
	struct iovec iov[BD_BURST];
	uint64_t start = rill_clock_now_ns(), seq = 1;
	while (rill_clock_now_ns() < end) {
		uint32_t n = bd_due(r, start, seq - 1);
		for (uint32_t i = 0; i < n; i++) {
			iov[i] = (struct iovec){.iov_base = (void *)(bd_frame(r, seq + i) + 42),
						.iov_len = r->frame_bytes - 42};
			msgs[i] = (struct mmsghdr){.msg_hdr = {.msg_iov = &iov[i],
							       .msg_iovlen = 1,
							       .msg_name = (void *)to,
							       .msg_namelen = sizeof(*to)}};
		}
		int sent = sendmmsg(fd, msgs, n, 0);
		if (sent > 0)
			seq += (uint64_t)sent;
	}
	return seq - 1;
}

static int bd_kernel(struct bd_run *r, struct bd_result *out)
{
	struct bd_kernel k = {.r = r, .fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)};
	int tx = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	int big = 16 << 20;
	struct sockaddr_in addr = {.sin_family = AF_INET,
				   .sin_port = htons(BD_UDP_PORT),
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct timeval tick = {0, 10000};
	setsockopt(k.fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
	setsockopt(k.fd, SOL_SOCKET, SO_RCVTIMEO, &tick, sizeof(tick));
	int rc = k.fd < 0 || tx < 0 || bind(k.fd, (struct sockaddr *)&addr, sizeof(addr)) < 0
			 ? -errno
			 : rill_udp_ingress_create(&k.ing, r->engine, false);
	if (rc < 0) {
		fprintf(stderr, "rill: bench dpdk: kernel UDP socket: %s\n", rill_strerror(rc));
		if (k.fd >= 0)
			close(k.fd);
		if (tx >= 0)
			close(tx);
		return -EIO;
	}
	pthread_t rx;
	pthread_attr_t attr; /* not pinned to the sender's CPU, as it would inherit: where the
			      * scheduler finds room among the process's CPUs */
	pthread_attr_init(&attr);
	if (CPU_COUNT(&r->o->cpus) > 0)
		pthread_attr_setaffinity_np(&attr, sizeof(r->o->cpus), &r->o->cpus);
	rc = pthread_create(&rx, &attr, bd_kernel_rx, &k);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		fprintf(stderr, "rill: bench dpdk: cannot start the receiver: %s\n", strerror(rc));
		rill_udp_ingress_destroy(k.ing);
		close(k.fd);
		close(tx);
		return -rc;
	}
	uint64_t before = bd_events(r->engine), start = rill_clock_now_ns();
	uint64_t dgrams = bd_kernel_send(r, tx, &addr, start + r->o->seconds * BD_NS_PER_S);
	uint64_t sent_end = rill_clock_now_ns();
	uint64_t in_time = bd_events(r->engine) - before; /* the rate: within the run only */
	struct timespec settle = {0, 200000000};          /* what is in flight lands */
	nanosleep(&settle, NULL);
	rill_atomic_store_release_u64(&r->stop, 1); /* R: pairs with A in bd_kernel_rx */
	pthread_join(rx, NULL);
	rill_udp_ingress_destroy(k.ing);
	close(k.fd);
	close(tx);
	out->events = bd_events(r->engine) - before;
	out->sent_events = dgrams * r->o->batch;
	out->events_per_s = (double)in_time * 1e9 / (double)(sent_end - start);
	return 0;
}

/* ---- The DPDK path: a net_ring pair ------------------------------------------------ */

#if RILL_HAVE_DPDK
struct bd_dpdk_ports {
	uint16_t in, out;
	struct rte_mempool *pool;
};

/*
 * The port pair, made once per process (the EAL cannot forget ports): @p filled. Each
 * ring stands for a NIC's RX ring, so it holds what ingress's RX queue is configured for
 * (@descs: the default [dpdk] rx_descs, 1024), and the sender's pool four times that. With
 * rings of 4096 and a pool of 16383 mbufs (35 MB of buffers cycled through, more than
 * this VM's L3), every datagram came from DRAM to the sender's copy and again to the
 * shard, where a NIC's DMA lands them in the L3 (DDIO); the DPDK path measured 4.8-5.2 M
 * events/s against 5.5-6.0 M with these sizes, four runs each, alternating.
 */
static int bd_ring_ports(struct bd_dpdk_ports *made_ports, uint32_t descs)
{
	static struct rte_ring *fwd, *back;
	static struct bd_dpdk_ports ports;
	static bool made;
	struct bd_dpdk_ports *p = &ports;
	if (!made) {
		unsigned flags = RING_F_SP_ENQ | RING_F_SC_DEQ | RING_F_EXACT_SZ; /* any size */
		fwd = rte_ring_create("rill_bd_fwd", descs, 0, flags);
		back = rte_ring_create("rill_bd_back", descs, 0, flags);
		int in = fwd && back ? rte_eth_from_rings("rill_bd_in", &fwd, 1, &back, 1, 0) : -1;
		int out = in >= 0 ? rte_eth_from_rings("rill_bd_out", &back, 1, &fwd, 1, 0) : -1;
		p->pool = rte_pktmbuf_pool_create("rill_bd_tx", 4 * descs - 1, 256, 0,
						  RTE_MBUF_DEFAULT_BUF_SIZE, 0);
		if (out < 0 || p->pool == NULL)
			return -ENODEV;
		p->in = (uint16_t)in;
		p->out = (uint16_t)out;
		struct rte_eth_conf conf;
		memset(&conf, 0, sizeof(conf));
		if (rte_eth_dev_configure(p->out, 1, 1, &conf) != 0 ||
		    rte_eth_rx_queue_setup(p->out, 0, 512, 0, NULL, p->pool) != 0 ||
		    rte_eth_tx_queue_setup(p->out, 0, 512, 0, NULL) != 0 ||
		    rte_eth_dev_start(p->out) != 0)
			return -ENODEV;
		made = true;
	}
	*made_ports = ports;
	return 0;
}

static uint64_t bd_dpdk_send(struct bd_run *r, const struct bd_dpdk_ports *p, uint64_t end)
{
	struct rte_mbuf *m[BD_BURST];
	uint64_t start = rill_clock_now_ns(), seq = 1;
	while (rill_clock_now_ns() < end) {
		uint32_t n = bd_due(r, start, seq - 1);
		if (rte_pktmbuf_alloc_bulk(p->pool, m, n) != 0)
			continue;
		for (uint32_t i = 0; i < n; i++) {
			uint8_t *d = (uint8_t *)rte_pktmbuf_append(m[i], (uint16_t)r->frame_bytes);
			RILL_ASSERT(d != NULL); /* frame_bytes <= BD_FRAME_MAX fits any mbuf */
			memcpy(d, bd_frame(r, seq + i), r->frame_bytes);
		}
		uint16_t sent = rte_eth_tx_burst(p->out, 0, m, (uint16_t)n);
		if (sent < n)
			rte_pktmbuf_free_bulk(m + sent,
					      n - sent); /* the ring is full: resend them */
		seq += sent;
		struct rte_mbuf *drain[BD_BURST]; /* nothing comes back (acks off): keep it so */
		uint16_t got = rte_eth_rx_burst(p->out, 0, drain, BD_BURST);
		if (got > 0)
			rte_pktmbuf_free_bulk(drain, got);
	}
	return seq - 1;
}

static int bd_dpdk(struct bd_run *r, struct bd_result *out)
{
	const char *why = NULL;
	int rc = rill_dpdk_eal_init(r->o->eal, &why);
	if (rc < 0) {
		fprintf(stderr, "rill: bench dpdk: EAL \"%s\": %s\n", r->o->eal, why);
		return rc;
	}
	struct rill_dpdk_config cfg;
	rill_dpdk_config_default(&cfg);
	struct bd_dpdk_ports ports = {0};
	if (bd_ring_ports(&ports, cfg.rx_descs) < 0) {
		fprintf(stderr, "rill: bench dpdk: cannot make the net_ring port pair\n");
		return -ENODEV;
	}
	cfg.port = ports.in;
	cfg.udp_port = BD_UDP_PORT;
	struct rill_dpdk *d = NULL;
	struct rill_error_text err = {{0}};
	rc = rill_dpdk_start(&d, r->engine, &cfg, &err);
	if (rc < 0) {
		fprintf(stderr, "rill: bench dpdk: %s\n", err.message);
		return rc;
	}
	uint64_t before = bd_events(r->engine), start = rill_clock_now_ns();
	uint64_t dgrams = bd_dpdk_send(r, &ports, start + r->o->seconds * BD_NS_PER_S);
	uint64_t sent_end = rill_clock_now_ns();
	uint64_t in_time = bd_events(r->engine) - before; /* as the kernel path's */
	struct timespec settle = {0, 200000000};
	nanosleep(&settle, NULL);
	rill_dpdk_stop(d);
	out->events = bd_events(r->engine) - before;
	out->sent_events = dgrams * r->o->batch;
	out->events_per_s = (double)in_time * 1e9 / (double)(sent_end - start);
	return 0;
}
#else
static int bd_dpdk(struct bd_run *r, struct bd_result *out)
{
	(void)r, (void)out;
	fprintf(stderr, "rill: bench dpdk: this rill was built without DPDK\n");
	return -ENOTSUP;
}
#endif

/* ---- Driver ------------------------------------------------------------------------ */

typedef int bd_path_fn(struct bd_run *r, struct bd_result *out);

/*
 * The sender (this thread) on a CPU no shard of @r's engine has, as bench engine's
 * publisher, until bd_sender_free: left to the scheduler it sometimes shared the shard's
 * CPU, time-sliced with it in slices of milliseconds. Placed after the engine opened,
 * since the engine pins its shards to the opening thread's CPUs in turn.
 */
static void bd_sender_place(const struct bd_run *r)
{
	static int spare[RILL_CPUS_MAX];
	unsigned n = rill_engine_spare_cpus(r->engine, spare, RILL_CPUS_MAX);
	if (n > 0 && CPU_COUNT(&r->o->cpus) > 0)
		(void)rill_thread_pin(spare[n - 1]);
}

static void bd_sender_free(const struct bd_opts *o)
{
	if (CPU_COUNT(&o->cpus) > 0) /* 0: they could not be read, nor was it pinned */
		(void)sched_setaffinity(0, sizeof(o->cpus), &o->cpus);
}

/* Closed loop on a fresh engine, then open loop at half that rate on another. */
static int bd_path(const struct bd_opts *o, const char *tag, bd_path_fn *fn, struct bd_result *out)
{
	struct bd_run *r = calloc(1, sizeof(*r));
	if (r == NULL)
		return -ENOMEM;
	r->o = o;
	int rc = bd_engine_open(r, tag);
	if (rc == 0) {
		bd_sender_place(r);
		rc = fn(r, out);
		bd_sender_free(o);
	}
	bd_engine_close(r);
	if (rc < 0) {
		free(r);
		return rc;
	}
	struct bd_result half = {0};
	*r = (struct bd_run){.o = o,
			     .rate = o->rate > 0 ? o->rate : (uint64_t)(out->events_per_s / 2)};
	rc = bd_engine_open(r, tag);
	if (rc == 0 && r->rate > 0) {
		bd_sender_place(r);
		rc = fn(r, &half);
		bd_sender_free(o);
	}
	if (rc == 0)
		bd_latency(r->engine, &half);
	bd_engine_close(r);
	out->half_rate = r->rate;
	out->half_events = half.events;
	out->half_sent_events = half.sent_events;
	out->p50_ns = half.p50_ns;
	out->p99_ns = half.p99_ns;
	out->p999_ns = half.p999_ns;
	out->p9999_ns = half.p9999_ns;
	out->max_ns = half.max_ns;
	out->ring_p50_ns = half.ring_p50_ns;
	out->ring_p999_ns = half.ring_p999_ns;
	out->preempted = half.preempted;
	free(r);
	return rc;
}

static json_t *bd_json(const struct bd_result *x, uint64_t seconds)
{
	double sent_rate = (double)x->half_sent_events / (double)seconds;
	if (x->half_rate > 0 && sent_rate < 0.95 * (double)x->half_rate)
		fprintf(stderr,
			"rill: bench dpdk: warning: the open loop sent %.0f events/s, %.0f%% of "
			"the "
			"%" PRIu64 " asked: its latency is at that lower load\n",
			sent_rate, 100.0 * sent_rate / (double)x->half_rate, x->half_rate);
	json_t *j = json_pack(
		"{s:f, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
		"events_per_s", x->events_per_s, "events", (json_int_t)x->events, "sent_events",
		(json_int_t)x->sent_events, "half_rate", (json_int_t)x->half_rate, "half_events",
		(json_int_t)x->half_events, "half_sent_events", (json_int_t)x->half_sent_events,
		"p50_ns", (json_int_t)x->p50_ns, "p99_ns", (json_int_t)x->p99_ns, "p999_ns",
		(json_int_t)x->p999_ns, "p9999_ns", (json_int_t)x->p9999_ns, "max_ns",
		(json_int_t)x->max_ns, "ring_p50_ns", (json_int_t)x->ring_p50_ns, "ring_p999_ns",
		(json_int_t)x->ring_p999_ns, "shard_preempted", (json_int_t)x->preempted);
	if (j != NULL)
		json_object_set_new(j, "half_sent_rate", json_real(sent_rate));
	return j;
}

int cli_bench_dpdk(int argc, char **argv)
{
	prctl(PR_SET_TIMERSLACK, 1UL); /* the sender's 10 µs naps: no 50 µs slack */
	static char eal[256];
	snprintf(eal, sizeof(eal),
		 "--no-huge -m 1024 --no-pci --file-prefix=rill-bench-%d --log-level=lib.eal:error",
		 (int)getpid());
	const char *tmp = getenv("TMPDIR");
	struct bd_opts o = {.seconds = 3,
			    .record_bytes = 64,
			    .batch = 8,
			    .eal = eal,
			    .shards = 1,
			    .busy = true, /* both paths' shards spin: equal terms */
			    .dir = tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp"};
	for (int i = 0; i < argc; i++) {
		const char *v = NULL;
		if (strcmp(argv[i], "--json") == 0)
			continue; /* JSON is the only output */
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			fputs(bd_help, stdout);
			return 0;
		}
		if (cli_opt(argc, argv, &i, "--eal", &o.eal) ||
		    cli_opt(argc, argv, &i, "--dir", &o.dir))
			continue;
		if (cli_opt(argc, argv, &i, "--poll", &v) &&
		    (strcmp(v, "busy") == 0 || strcmp(v, "adaptive") == 0)) {
			o.busy = v[0] == 'b';
			continue;
		}
		uint64_t *num = NULL;
		if (cli_opt(argc, argv, &i, "--seconds", &v))
			num = &o.seconds;
		else if (cli_opt(argc, argv, &i, "--record-bytes", &v))
			num = &o.record_bytes;
		else if (cli_opt(argc, argv, &i, "--batch", &v))
			num = &o.batch;
		else if (cli_opt(argc, argv, &i, "--rate", &v))
			num = &o.rate;
		else if (cli_opt(argc, argv, &i, "--shards", &v))
			num = &o.shards;
		if (num == NULL || cli_parse_u64(v, num) < 0)
			return cli_usage_error("bench dpdk", "bad argument (try --help)");
	}
	if (o.seconds == 0 || o.seconds > 3600 || o.batch == 0 || o.batch > BD_BATCH_MAX ||
	    o.record_bytes > 1024 || o.shards == 0 || o.shards > RILL_ENGINE_SHARDS_MAX)
		return cli_usage_error(
			"bench dpdk",
			"--seconds 1..3600, --batch 1..64, --record-bytes up to 1024");
	if (sched_getaffinity(0, sizeof(o.cpus), &o.cpus) != 0)
		CPU_ZERO(&o.cpus); /* unknown: nothing is pinned or restored */
	struct bd_result dpdk = {0}, kernel = {0};
	struct cli_cpu_ticks ticks[3];
	cli_cpu_ticks(&ticks[0]);
	int rc = bd_path(&o, "dpdk", bd_dpdk, &dpdk);
	cli_cpu_ticks(&ticks[1]);
	if (rc == 0)
		rc = bd_path(&o, "kernel", bd_kernel, &kernel);
	cli_cpu_ticks(&ticks[2]);
	if (rc < 0)
		return 1;
	json_t *j =
		json_pack("{s:o, s:o, s:I, s:I, s:I, s:s, s:f}", "dpdk", bd_json(&dpdk, o.seconds),
			  "kernel", bd_json(&kernel, o.seconds), "seconds", (json_int_t)o.seconds,
			  "batch", (json_int_t)o.batch, "record_bytes", (json_int_t)o.record_bytes,
			  "poll", o.busy ? "busy" : "adaptive", "dpdk_over_kernel",
			  kernel.events_per_s > 0 ? dpdk.events_per_s / kernel.events_per_s : 0.0);
	/* Each path's share of CPU time stolen while it ran. */
	for (int k = 0; j != NULL && k < 2; k++)
		json_object_set_new(json_object_get(j, k == 0 ? "dpdk" : "kernel"), "cpu_steal_pct",
				    json_real(cli_cpu_steal_pct(&ticks[k], &ticks[k + 1])));
	char *text = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
	if (text != NULL)
		puts(text);
	free(text);
	json_decref(j);
	return 0;
}
