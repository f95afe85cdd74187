/*
 * The DPDK ingress (io/dpdk.h) end to end over DPDK's virtual devices, with no NIC and no
 * hugepages: one EAL per process (--no-huge, --no-pci, a file prefix of its own so that
 * runs may overlap), ports hot-plugged at run time, an engine of two shards in a temporary
 * directory (tests/common/udp_events.h: topics of 4 partitions, one schema).
 *
 *   pcap       net_pcap reads a pcap file written here: event datagrams from two sources
 *              (some behind an 802.1Q tag) between malformed packets of every class; every
 *              valid event must be in the log, every malformed packet counted in exactly
 *              its class, and nothing malformed in the log.
 *   ring       two net_ring ports facing each other over two rte_rings: the test thread
 *              sends with rte_eth_tx_burst from one, the ingress polls the other; first at
 *              most once (every event arrives), then with ACK datagrams, read back from the
 *              sender's port, that carry each source's sequence up to the last.
 *   af_packet  a veth pair, one end in a network namespace of its own with an address,
 *              the other up in ours under net_af_packet: a child process in the namespace
 *              sends the datagrams with a kernel UDP socket and reads the ACK datagrams
 *              back; skipped (cmocka's skip, with the reason) when namespaces or veth
 *              cannot be made. The namespace and the veth pair go on every path.
 *   stats      rill_dpdk_stats_get while it runs is as of the polling thread's last turn:
 *              an ACK datagram the sender has read shows in tx_acks.
 *   no port    rill_dpdk_start on a port that does not exist: -ENODEV and why.
 *
 * Exit code 77 (skipped) when the EAL cannot start here. RILL_TEST_SEED replays the event
 * counts and the garbage.
 */
#define _GNU_SOURCE
#include "tests/common/test_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <rte_bus_vdev.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include "io/dpdk.h"
#include "io/udp_ingress.h"
#include "io/wire.h"
#include "rill/rill.h"
#include "rill/server.h"
#include "tests/common/udp_events.h"

#define DT_SHARDS        2u
#define DT_FRAME_MAX     2048u
#define DT_WAIT_NS       (10ull * 1000000000u) /* every bounded wait */
#define DT_STATS_WAIT_NS (2ull * 1000000000u)  /* counters lagging the datagrams */
#define DT_PCAP_ROUNDS   60u                   /* valid datagrams per source in the pcap */
#define DT_RING_K        600u                  /* datagrams per source over the rings */
#define DT_RING_SIZE     1024u
#define DT_NS_K          40u         /* datagrams the namespace's child sends */
#define DT_EVENTS_MAX    5u          /* events per datagram: 1 .. this */
#define DT_INGRESS_IP    0x0a000001u /* 10.0.0.1 */

static struct test_rng rng;
static struct ue_env env;
static struct rill_dpdk *dpdk; /* running, for the teardown of a failed test */
static char file_prefix[32];
static int64_t expected[UE_EVENTS_MAX];
static uint32_t expected_count;
static char pcap_path[sizeof(env.dir) + 8]; /* the pcap file, removed by the teardown */

static const uint8_t ingress_mac[6] = {0x02, 0x52, 0x49, 0x4c, 0x4c, 0x01};
static const struct rill_udp_peer src_a = {.ip = 0x0a000002u,
					   .port = 40001,
					   .mac = {0x02, 0, 0, 0, 0, 0x0a},
					   .local_ip = DT_INGRESS_IP,
					   .local_port = RILL_UDP_PORT};
static const struct rill_udp_peer src_b = {.ip = 0x0a000003u,
					   .port = 40002,
					   .mac = {0x02, 0, 0, 0, 0, 0x0b},
					   .local_ip = DT_INGRESS_IP,
					   .local_port = RILL_UDP_PORT};
static const struct rill_udp_peer src_bad = {.ip = 0x0a0000eeu,
					     .port = 666,
					     .mac = {0x02, 0, 0, 0, 0, 0xee},
					     .local_ip = DT_INGRESS_IP,
					     .local_port = RILL_UDP_PORT};

static void put16be(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static uint16_t get16be(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* The frame @from sends to the ingress (to @to_mac) with @payload; its length. */
static uint32_t frame_from(uint8_t *frame, const struct rill_udp_peer *from, const uint8_t *to_mac,
			   const void *payload, uint32_t bytes)
{
	struct rill_udp_peer to = {.ip = from->local_ip,
				   .port = from->local_port,
				   .local_ip = from->ip,
				   .local_port = from->port};
	memcpy(to.mac, to_mac, 6);
	assert_true(42u + bytes <= DT_FRAME_MAX);
	return rill_udp_frame_build(frame, from->mac, &to, payload, bytes);
}

/* A valid event datagram's payload from a source: @seq, 1..DT_EVENTS_MAX events whose
 * amounts (source * 1e6 + seq * 100 + i) are added to the expected ones. Its length. */
static uint32_t event_payload(uint8_t *buf, size_t cap, const char *topic, uint32_t source,
			      uint64_t seq)
{
	uint32_t count = 1 + (uint32_t)test_rng_below(&rng, DT_EVENTS_MAX);
	int64_t first = (int64_t)source * 1000000 + (int64_t)seq * 100;
	uint32_t n = ue_datagram(&env, buf, cap, topic, seq, count, first);
	for (uint32_t i = 0; i < count; i++) {
		assert_true(expected_count < UE_EVENTS_MAX);
		expected[expected_count++] = first + i;
	}
	return n;
}

static uint32_t expected_events(void)
{
	return expected_count;
}

/* Wait (bounded) until @done says the stats are complete; the last ones into @st. */
static bool stats_wait(struct rill_dpdk *d, struct rill_dpdk_stats *st,
		       bool (*done)(const struct rill_dpdk_stats *, uint64_t), uint64_t arg,
		       uint64_t wait_ns)
{
	uint64_t deadline = rill_clock_now_ns() + wait_ns;
	for (;;) {
		rill_dpdk_stats_get(d, st);
		if (done(st, arg))
			return true;
		if (rill_clock_now_ns() >= deadline)
			return false;
		ue_sleep_ns(1000000);
	}
}

static bool packets_reached(const struct rill_dpdk_stats *st, uint64_t packets)
{
	return st->packets >= packets;
}

static bool events_reached(const struct rill_dpdk_stats *st, uint64_t events)
{
	return st->udp.events >= events;
}

static bool tx_acks_reached(const struct rill_dpdk_stats *st, uint64_t acks)
{
	return st->tx_acks >= acks && st->udp.acks >= acks;
}

static void stats_print(const char *what, const struct rill_dpdk_stats *st)
{
	print_message("%s: packets %llu not_ours %llu bad_frames %llu tx_acks %llu | datagrams "
		      "%llu events %llu malformed %llu unknown_topic %llu refused %llu dropped "
		      "%llu gaps %llu reordered %llu untracked %llu acks %llu\n",
		      what, (unsigned long long)st->packets, (unsigned long long)st->not_ours,
		      (unsigned long long)st->bad_frames, (unsigned long long)st->tx_acks,
		      (unsigned long long)st->udp.datagrams, (unsigned long long)st->udp.events,
		      (unsigned long long)st->udp.malformed,
		      (unsigned long long)st->udp.unknown_topic,
		      (unsigned long long)st->udp.refused, (unsigned long long)st->udp.dropped,
		      (unsigned long long)st->udp.gaps, (unsigned long long)st->udp.reordered,
		      (unsigned long long)st->udp.untracked, (unsigned long long)st->udp.acks);
}

/* Start the ingress on @port into the engine. */
static void ingress_start(uint16_t port, bool acks)
{
	struct rill_dpdk_config cfg;
	rill_dpdk_config_default(&cfg);
	cfg.port = port;
	cfg.acks = acks;

	cfg.mbufs = 4095;
	struct rill_error_text err = {{0}};
	int rc = rill_dpdk_start(&dpdk, env.engine, &cfg, &err);
	if (rc != 0)
		fail_msg("rill_dpdk_start on port %u: %d (%s): %s", port, rc, rill_strerror(rc),
			 err.message);
	assert_int_equal(rill_dpdk_queues(dpdk), 1);
}

static void ingress_stop(void)
{
	struct rill_dpdk *d = dpdk;
	dpdk = NULL;
	assert_int_equal(rill_dpdk_stop(d), 0);
}

/* Close and remove a hot-plugged port (a vdev by its name). */
static void port_remove(uint16_t port, const char *vdev)
{
	(void)rte_eth_dev_close(port); /* rill_dpdk_stop stopped it */
	if (vdev != NULL)
		(void)rte_vdev_uninit(vdev);
}

static int dt_setup(void **state)
{
	(void)state;
	expected_count = 0;
	ue_open(&env, "dpdk", DT_SHARDS, 0);
	return 0;
}

static void ns_cleanup(void);

static int dt_teardown(void **state)
{
	(void)state;
	if (dpdk != NULL)
		(void)rill_dpdk_stop(dpdk); /* a failed test left it running */
	dpdk = NULL;
	ns_cleanup();
	if (pcap_path[0] != '\0')
		unlink(pcap_path);
	pcap_path[0] = '\0';
	return ue_close(&env) == 0 ? 0 : -1;
}

/* ---- The ingress refuses a port that is not there --------------------------------------- */

/* Also past the EAL's table of ports (it was said as a mempool failure), and with no
 * mempool left made for a port that is not there. */
static void test_no_such_port(void **state)
{
	(void)state;
	const uint16_t ports[] = {RTE_MAX_ETHPORTS - 1, RTE_MAX_ETHPORTS, 40000};
	for (size_t i = 0; i < sizeof(ports) / sizeof(ports[0]); i++) {
		struct rill_dpdk_config cfg;
		rill_dpdk_config_default(&cfg);
		cfg.port = ports[i];
		struct rill_dpdk *d = NULL;
		struct rill_error_text err = {{0}};
		assert_int_equal(rill_dpdk_start(&d, env.engine, &cfg, &err), -ENODEV);
		assert_null(d);
		if (strstr(err.message, "no such port") == NULL)
			fail_msg("port %u: %s", ports[i], err.message);
		char name[32];
		snprintf(name, sizeof(name), "rill_rx_%u", ports[i]);
		assert_null(rte_mempool_lookup(name));
	}
}

/* ---- net_pcap --------------------------------------------------------------------------- */

struct pcap_file {
	FILE *f;
	uint32_t packets;
};

static void pcap_put32(FILE *f, uint32_t v)
{
	assert_int_equal(fwrite(&v, sizeof(v), 1, f), 1); /* the magic says the byte order */
}

static void pcap_open_write(struct pcap_file *p, const char *path)
{
	p->f = fopen(path, "wb");
	assert_non_null(p->f);
	p->packets = 0;
	pcap_put32(p->f, 0xa1b2c3d4u); /* microsecond timestamps */
	uint16_t version[2] = {2, 4};
	assert_int_equal(fwrite(version, sizeof(version), 1, p->f), 1);
	pcap_put32(p->f, 0);     /* thiszone */
	pcap_put32(p->f, 0);     /* sigfigs */
	pcap_put32(p->f, 65535); /* snaplen */
	pcap_put32(p->f, 1);     /* LINKTYPE_ETHERNET */
}

static void pcap_add(struct pcap_file *p, const uint8_t *frame, uint32_t n)
{
	pcap_put32(p->f, 1700000000u + p->packets / 1000); /* ts_sec */
	pcap_put32(p->f, p->packets % 1000 * 1000);        /* ts_usec */
	pcap_put32(p->f, n);                               /* incl_len */
	pcap_put32(p->f, n);                               /* orig_len */
	assert_int_equal(fwrite(frame, 1, n, p->f), n);
	p->packets++;
}

/* The classes of malformed packets, and the counter each must land in. */
enum bad_kind {
	BAD_CRC,        /* udp.malformed: a record's byte flipped */
	BAD_GARBAGE,    /* udp.malformed: random bytes to our port */
	BAD_TOPIC,      /* udp.unknown_topic */
	BAD_UDP_LENGTH, /* bad_frames: UDP length past the IP packet */
	BAD_IP_LENGTH,  /* bad_frames: IP total length past the frame */
	BAD_FRAGMENT,   /* bad_frames */
	BAD_IP_CKSUM,   /* bad_frames: the IPv4 header's checksum (net_pcap checks none) */
	BAD_ARP,        /* not_ours */
	BAD_TCP,        /* not_ours */
	BAD_OTHER_PORT, /* not_ours */
	BAD_IPV6,       /* not_ours */
	BAD_KINDS,
};

struct bad_counts {
	uint64_t malformed, unknown_topic, bad_frames, not_ours;
};

/* A malformed packet of @kind into @frame; its length; counted in @c. */
static uint32_t bad_frame(uint8_t *frame, enum bad_kind kind, struct bad_counts *c)
{
	static uint8_t payload[UE_DATAGRAM_BYTES];
	uint32_t n = ue_datagram(&env, payload, sizeof(payload), UE_TOPIC, 1, 2, UE_POISON);
	switch (kind) {
	case BAD_CRC:
		payload[n - 3] ^= 0x10; /* the last record's payload */
		c->malformed++;
		break;
	case BAD_GARBAGE:
		n = 1 + (uint32_t)test_rng_below(&rng, 400);
		for (uint32_t i = 0; i < n; i++)
			payload[i] = (uint8_t)test_rng_next(&rng);
		c->malformed++;
		break;
	case BAD_TOPIC:
		n = ue_datagram(&env, payload, sizeof(payload), "nosuch", 1, 2, UE_POISON);
		c->unknown_topic++;
		break;
	case BAD_UDP_LENGTH:
	case BAD_IP_LENGTH:
	case BAD_FRAGMENT:
	case BAD_IP_CKSUM:
		c->bad_frames++;
		break;
	default:
		c->not_ours++;
		break;
	}
	uint32_t len = frame_from(frame, &src_bad, ingress_mac, payload, n);
	uint8_t *ip = frame + 14;
	switch (kind) {
	case BAD_UDP_LENGTH:
		put16be(ip + 20 + 4, (uint16_t)(get16be(ip + 20 + 4) + 1));
		break;
	case BAD_IP_LENGTH:
		len -= 1; /* the frame ends before the IP packet does */
		break;
	case BAD_FRAGMENT:
		put16be(ip + 6, 0x2000); /* more fragments */
		break;
	case BAD_IP_CKSUM:
		ip[15] ^= 0x01; /* the source address: the sum no longer holds */
		break;
	case BAD_ARP:
		put16be(frame + 12, 0x0806);
		len = 42;
		break;
	case BAD_TCP:
		ip[9] = 6;
		break;
	case BAD_OTHER_PORT:
		put16be(ip + 20 + 2, RILL_UDP_PORT + 1);
		break;
	case BAD_IPV6:
		put16be(frame + 12, 0x86dd);
		break;
	default:
		break;
	}
	return len;
}

/* @frame with an 802.1Q tag put in after the addresses; the new length. */
static uint32_t frame_tag(uint8_t *frame, uint32_t n)
{
	memmove(frame + 16, frame + 12, n - 12);
	put16be(frame + 12, 0x8100);
	put16be(frame + 14, 7);
	return n + 4;
}

static void test_pcap(void **state)
{
	(void)state;
	char *path = pcap_path;
	snprintf(pcap_path, sizeof(pcap_path), "%s.pcap", env.dir);
	struct pcap_file pf;
	pcap_open_write(&pf, path);
	static uint8_t frame[DT_FRAME_MAX + 4], payload[UE_DATAGRAM_BYTES];
	struct bad_counts bad = {0};
	uint64_t valid = 0;
	for (uint64_t seq = 1; seq <= DT_PCAP_ROUNDS; seq++) {
		uint32_t n = event_payload(payload, sizeof(payload), UE_TOPIC, 1, seq);
		pcap_add(&pf, frame, frame_from(frame, &src_a, ingress_mac, payload, n));
		uint32_t kinds = (uint32_t)test_rng_below(&rng, 3); /* 0 to 2 bad ones between */
		for (uint32_t k = 0; k < kinds; k++)
			pcap_add(
				&pf, frame,
				bad_frame(frame, (enum bad_kind)((seq * 3 + k) % BAD_KINDS), &bad));
		n = event_payload(payload, sizeof(payload), UE_TOPIC, 2, seq);
		uint32_t len = frame_from(frame, &src_b, ingress_mac, payload, n);
		if (seq % 5 == 0)
			len = frame_tag(frame, len);
		pcap_add(&pf, frame, len);
		valid += 2;
	}
	for (uint32_t k = 0; k < BAD_KINDS; k++) /* each class at least once */
		pcap_add(&pf, frame, bad_frame(frame, (enum bad_kind)k, &bad));
	uint32_t packets = pf.packets;
	assert_int_equal(fclose(pf.f), 0);

	char args[sizeof(pcap_path) + 64];
	snprintf(args, sizeof(args), "rx_pcap=%s,tx_pcap=/dev/null", path);
	int rc = rte_vdev_init("net_pcap0", args);
	if (rc != 0)
		fail_msg("rte_vdev_init net_pcap0 %s: %d (%s)", args, rc, rte_strerror(-rc));
	uint16_t port = 0;
	assert_int_equal(rte_eth_dev_get_port_by_name("net_pcap0", &port), 0);
	ingress_start(port, false);
	struct rill_dpdk_stats st;
	bool all = stats_wait(dpdk, &st, packets_reached, packets, DT_WAIT_NS);
	stats_print("pcap", &st);
	if (!all)
		fail_msg("the ingress saw %llu of the %u packets in %llu s",
			 (unsigned long long)st.packets, packets,
			 (unsigned long long)(DT_WAIT_NS / 1000000000u));
	ingress_stop();
	port_remove(port, "net_pcap0");

	assert_int_equal(st.packets, packets);
	assert_int_equal(st.not_ours, bad.not_ours);
	assert_int_equal(st.bad_frames, bad.bad_frames);
	assert_int_equal(st.udp.datagrams, valid + bad.malformed + bad.unknown_topic);
	assert_int_equal(st.udp.malformed, bad.malformed);
	assert_int_equal(st.udp.unknown_topic, bad.unknown_topic);
	assert_int_equal(st.udp.events, expected_events());
	assert_int_equal(st.udp.dropped, 0);
	assert_int_equal(st.udp.gaps, 0);
	assert_int_equal(st.udp.reordered, 0);
	assert_int_equal(st.udp.refused, 0);
	assert_int_equal(st.tx_acks, 0);
	ue_events_settle(&env, expected_events());
	ue_log_check(&env, env.topic, expected, expected_count);
}

/* ---- net_ring --------------------------------------------------------------------------- */

struct ring_pair {
	struct rte_ring *to_ingress, *from_ingress;
	uint16_t port_in, port_out;
	struct rte_mempool *pool;
};

static struct ring_pair rp;

static void ring_pair_make(struct ring_pair *r)
{
	if (r->pool != NULL)
		return; /* made by an earlier test: once per process */
	char name[32];
	snprintf(name, sizeof(name), "rill_to_in");
	r->to_ingress = rte_ring_create(name, DT_RING_SIZE, SOCKET_ID_ANY, 0);
	snprintf(name, sizeof(name), "rill_from_in");
	r->from_ingress = rte_ring_create(name, DT_RING_SIZE, SOCKET_ID_ANY, 0);
	if (r->to_ingress == NULL || r->from_ingress == NULL)
		fail_msg("rte_ring_create: %s", rte_strerror(rte_errno));
	/* net_ring: a port's RX queue i dequeues from rx_queues[i], its TX queue i enqueues to
	 * tx_queues[i]. The sender's TX ring is the ingress's RX ring, and back. */
	int in = rte_eth_from_rings("rill_ring_in", &r->to_ingress, 1, &r->from_ingress, 1, 0);
	int out = rte_eth_from_rings("rill_ring_out", &r->from_ingress, 1, &r->to_ingress, 1, 0);
	if (in < 0 || out < 0)
		fail_msg("rte_eth_from_rings: %d %d (%s)", in, out, rte_strerror(rte_errno));
	r->port_in = (uint16_t)in;
	r->port_out = (uint16_t)out;
	r->pool = rte_pktmbuf_pool_create("rill_test_tx", 4095, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
					  SOCKET_ID_ANY);
	if (r->pool == NULL)
		fail_msg("rte_pktmbuf_pool_create: %s", rte_strerror(rte_errno));
	struct rte_eth_conf conf;
	memset(&conf, 0, sizeof(conf));
	assert_int_equal(rte_eth_dev_configure(r->port_out, 1, 1, &conf), 0);
	assert_int_equal(rte_eth_rx_queue_setup(r->port_out, 0, 512, 0, NULL, r->pool), 0);
	assert_int_equal(rte_eth_tx_queue_setup(r->port_out, 0, 512, 0, NULL), 0);
	assert_int_equal(rte_eth_dev_start(r->port_out), 0);
}

/* Send @n frames from the sender's port (all of them: retries while the ring is full). */
static void ring_send(struct ring_pair *r, uint8_t (*frames)[DT_FRAME_MAX], const uint32_t *lens,
		      uint32_t n)
{
	struct rte_mbuf *m[32];
	uint32_t done = 0;
	uint64_t deadline = rill_clock_now_ns() + DT_WAIT_NS;
	while (done < n) {
		uint16_t burst = (uint16_t)(n - done < 32 ? n - done : 32);
		for (uint16_t i = 0; i < burst; i++) {
			m[i] = rte_pktmbuf_alloc(r->pool);
			assert_non_null(m[i]);
			uint8_t *dst =
				(uint8_t *)rte_pktmbuf_append(m[i], (uint16_t)lens[done + i]);
			assert_non_null(dst);
			memcpy(dst, frames[done + i], lens[done + i]);
		}
		uint16_t sent = rte_eth_tx_burst(r->port_out, 0, m, burst);
		if (sent < burst)
			rte_pktmbuf_free_bulk(m + sent, burst - sent); /* sent again below */
		done += sent;
		if (sent < burst) {
			if (rill_clock_now_ns() >= deadline)
				fail_msg("the ring to the ingress stayed full: %u of %u sent", done,
					 n);
			ue_sleep_ns(100000);
		}
	}
}

/*
 * Read what came back on the sender's port: each frame must be an ACK datagram from the
 * ingress (its MAC, 10.0.0.1:7401) to one of the sources (its MAC, address and port),
 * carrying an ACK frame with no entries. @acked[0] and [1] take each source's highest.
 * Returns the ACK datagrams read.
 */
static uint32_t ring_acks_read(struct ring_pair *r, const struct rte_ether_addr *in_mac,
			       uint64_t acked[2])
{
	struct rte_mbuf *m[32];
	uint16_t n = rte_eth_rx_burst(r->port_out, 0, m, 32);
	for (uint16_t i = 0; i < n; i++) {
		const uint8_t *f = rte_pktmbuf_mtod(m[i], const uint8_t *);
		uint32_t len = rte_pktmbuf_data_len(m[i]);
		const struct rill_udp_peer *src =
			len >= 42 && get16be(f + 36) == src_a.port ? &src_a : &src_b;
		const uint8_t *payload;
		uint32_t bytes;
		struct rill_udp_peer from;
		int rc = rill_udp_frame_ipv4(f, len, src->port, &payload, &bytes, &from);
		if (rc != 0)
			fail_msg("a %u-byte frame back from the ingress that is not a UDP "
				 "datagram to a source: %d",
				 len, rc);
		assert_memory_equal(f, src->mac, 6);               /* to the source's MAC */
		assert_memory_equal(f + 6, in_mac->addr_bytes, 6); /* from the port's */
		assert_int_equal(from.ip, DT_INGRESS_IP);
		assert_int_equal(from.port, RILL_UDP_PORT);
		assert_int_equal(from.local_ip, src->ip);
		assert_int_equal(from.local_port, src->port);
		struct rill_wire_header h;
		assert_int_equal(bytes, RILL_WIRE_HEADER_BYTES + RILL_WIRE_ACK_BYTES_MIN);
		assert_int_equal(
			rill_wire_header_decode(payload, bytes, RILL_WIRE_FRAME_BYTES_MAX, &h), 0);
		assert_int_equal(h.type, RILL_WIRE_ACK);
		uint32_t count = 99;
		struct rill_wire_iter it;
		assert_int_equal(rill_wire_ack_decode(payload + RILL_WIRE_HEADER_BYTES,
						      h.body_bytes, &count, &it),
				 0);
		assert_int_equal(count, 0);
		uint64_t *a = &acked[src == &src_a ? 0 : 1];
		if (h.request_id < *a)
			fail_msg("an ACK for %llu after one for %llu",
				 (unsigned long long)h.request_id, (unsigned long long)*a);
		*a = h.request_id;
	}
	if (n > 0)
		rte_pktmbuf_free_bulk(m, n);
	return n;
}

static uint8_t ring_frames[2 * DT_RING_K][DT_FRAME_MAX];
static uint32_t ring_lens[2 * DT_RING_K];

static void test_ring(void **state)
{
	(void)state;
	ring_pair_make(&rp);
	struct rte_ether_addr in_mac;
	static uint8_t payload[UE_DATAGRAM_BYTES];

	/* At most once: every datagram sent in bursts, every event in the log. Source b sends
	 * only odd sequence numbers: a gap before each but its first. */
	for (uint32_t i = 0; i < 2 * DT_RING_K; i++) {
		const struct rill_udp_peer *src = i % 2 ? &src_b : &src_a;
		uint64_t seq = i % 2 ? 1 + 2 * (i / 2) : 1 + i / 2;
		uint32_t n = event_payload(payload, sizeof(payload), UE_TOPIC, 1 + i % 2, seq);
		ring_lens[i] = frame_from(ring_frames[i], src, ingress_mac, payload, n);
	}
	ingress_start(rp.port_in, false);
	assert_int_equal(rte_eth_macaddr_get(rp.port_in, &in_mac), 0);
	ring_send(&rp, ring_frames, ring_lens, 2 * DT_RING_K);
	struct rill_dpdk_stats st;
	bool all = stats_wait(dpdk, &st, events_reached, expected_events(), DT_WAIT_NS);
	stats_print("ring, at most once", &st);
	if (!all)
		fail_msg("%llu of %u events in %llu s", (unsigned long long)st.udp.events,
			 expected_events(), (unsigned long long)(DT_WAIT_NS / 1000000000u));
	assert_int_equal(st.packets, 2 * DT_RING_K);
	assert_int_equal(st.udp.datagrams, 2 * DT_RING_K);
	assert_int_equal(st.udp.events, expected_events());
	assert_int_equal(st.udp.dropped, 0);
	assert_int_equal(st.tx_acks, 0);
	/* The worst sources: b alone (a has neither gaps nor reordering), as of the queue's
	 * last share, which follows its last datagram (bounded wait). */
	struct rill_udp_source_report worst[RILL_UDP_WORST_MAX];
	uint32_t nw = 0;
	uint64_t worst_by = rill_clock_now_ns() + DT_STATS_WAIT_NS;
	while ((nw = rill_dpdk_worst_sources(dpdk, worst)) != 1 ||
	       worst[0].stats.datagrams != DT_RING_K) {
		if (rill_clock_now_ns() > worst_by)
			fail_msg("rill_dpdk_worst_sources: %u sources (the first with %llu "
				 "datagrams), expected source b with %u",
				 nw, nw ? (unsigned long long)worst[0].stats.datagrams : 0ull,
				 DT_RING_K);
		ue_sleep_ns(1000000);
	}
	assert_int_equal(worst[0].ip, src_b.ip);
	assert_int_equal(worst[0].port, src_b.port);
	assert_int_equal(worst[0].stats.gaps, DT_RING_K - 1);
	assert_int_equal(worst[0].stats.reordered, 0);
	assert_int_equal(worst[0].stats.highest, 2 * DT_RING_K - 1);
	/* Counters and worst list go out together: those of that last share agree. */
	rill_dpdk_stats_get(dpdk, &st);
	assert_int_equal(st.udp.events, expected_events());
	assert_int_equal(st.udp.gaps, DT_RING_K - 1);
	assert_int_equal(st.udp.reordered, 0);
	assert_int_equal(st.udp.sources, 2);
	/* ... as `rill stat` shows them. */
	char json[4096], want[256];
	assert_int_equal(rill_dpdk_stat_json(dpdk, json, sizeof(json)), 0);
	snprintf(want, sizeof(want),
		 "\"sources\":2,\"worst_sources\":[{\"source\":\"10.0.0.3:%u\",\"datagrams\":%u,"
		 "\"gaps\":%u,\"reordered\":0,\"highest\":%u,\"durable_contig\":0}]}",
		 src_b.port, DT_RING_K, DT_RING_K - 1, 2 * DT_RING_K - 1);
	if (strstr(json, want) == NULL)
		fail_msg("rill_dpdk_stat_json: %s\nexpected it to end with: %s", json, want);
	assert_int_equal(rill_dpdk_stat_json(dpdk, json, 64), -ENOSPC);
	ingress_stop();
	uint64_t first_events = expected_events();
	ue_events_settle(&env, first_events);
	ue_log_check(&env, env.topic, expected, expected_count);
	uint64_t acked[2] = {0, 0};
	assert_int_equal(ring_acks_read(&rp, &in_mac, acked), 0); /* acks off: none */

	/* With ACK datagrams, to the topic of durability group: a sender that keeps within
	 * the window (RILL_UDP_WINDOW datagrams past its last ACK) per source. The same port
	 * started again. */
	expected_count = 0;
	for (uint32_t i = 0; i < 2 * DT_RING_K; i++) {
		const struct rill_udp_peer *src = i % 2 ? &src_b : &src_a;
		uint32_t n = event_payload(payload, sizeof(payload), UE_TOPIC_DURABLE, 1 + i % 2,
					   1 + i / 2);
		ring_lens[i] = frame_from(ring_frames[i], src, ingress_mac, payload, n);
	}
	ingress_start(rp.port_in, true);
	uint32_t next = 0; /* frames sent, in pairs (a, b) */
	uint64_t deadline = rill_clock_now_ns() + DT_WAIT_NS;
	while (acked[0] < DT_RING_K || acked[1] < DT_RING_K) {
		uint32_t room = next / 2; /* both sources have sent this many */
		uint64_t low = acked[0] < acked[1] ? acked[0] : acked[1];
		uint32_t until = (uint32_t)(low + RILL_UDP_WINDOW); /* sequences allowed */
		uint32_t pairs = until > DT_RING_K ? DT_RING_K : until;
		if (pairs > room) {
			ring_send(&rp, ring_frames + next, ring_lens + next, 2 * (pairs - room));
			next = 2 * pairs;
		}
		uint32_t got = ring_acks_read(&rp, &in_mac, acked);
		if (got > 0)
			deadline = rill_clock_now_ns() + DT_WAIT_NS; /* progress */
		else if (rill_clock_now_ns() >= deadline)
			break;
		else
			ue_sleep_ns(50000);
	}
	all = stats_wait(dpdk, &st, events_reached, expected_events(), DT_WAIT_NS);
	stats_print("ring, acks", &st);
	if (acked[0] < DT_RING_K || acked[1] < DT_RING_K)
		fail_msg("ACKs reached %llu and %llu of %u (no progress for %llu s)",
			 (unsigned long long)acked[0], (unsigned long long)acked[1], DT_RING_K,
			 (unsigned long long)(DT_WAIT_NS / 1000000000u));
	assert_int_equal(next, 2 * DT_RING_K);
	assert_int_equal(st.udp.events, expected_events());
	assert_int_equal(st.udp.dropped, 0);
	assert_int_equal(st.udp.refused, 0);
	/* A sender whose last ACK was lost sends its last datagram again, to a queue with
	 * nothing else to do: it publishes nothing (durable already), and is answered. */
	uint64_t again[2] = {0, 0};
	ring_send(&rp, ring_frames + 2 * DT_RING_K - 2, ring_lens + 2 * DT_RING_K - 2, 1);
	deadline = rill_clock_now_ns() + DT_WAIT_NS;
	while (ring_acks_read(&rp, &in_mac, again) == 0) {
		if (rill_clock_now_ns() >= deadline)
			fail_msg("no ACK for a retransmission of a durable datagram in %llu s",
				 (unsigned long long)(DT_WAIT_NS / 1000000000u));
		ue_sleep_ns(50000);
	}
	assert_int_equal(again[0], DT_RING_K);
	/* Stopped with a datagram taken and its durable acknowledgement (likely) still owed:
	 * its ACK goes out before the port stops, so the sender need not send it again to a
	 * server that would no longer know it. */
	static uint8_t last_frame[1][DT_FRAME_MAX];
	uint32_t last_len;
	uint32_t n = event_payload(payload, sizeof(payload), UE_TOPIC_DURABLE, 1, DT_RING_K + 1);
	last_len = frame_from(last_frame[0], &src_a, ingress_mac, payload, n);
	ring_send(&rp, last_frame, &last_len, 1);
	assert_true(stats_wait(dpdk, &st, events_reached, expected_events(), DT_WAIT_NS));
	ingress_stop();
	uint64_t last[2] = {0, 0};
	deadline = rill_clock_now_ns() + DT_WAIT_NS;
	while (last[0] < DT_RING_K + 1 && rill_clock_now_ns() < deadline)
		if (ring_acks_read(&rp, &in_mac, last) == 0)
			ue_sleep_ns(50000);
	if (last[0] != DT_RING_K + 1)
		fail_msg("after the stop, the last ACK said %llu; %u was taken before it",
			 (unsigned long long)last[0], DT_RING_K + 1);
	ue_events_settle(&env, first_events + expected_events()); /* both topics */
	ue_log_check(&env, env.topic_durable, expected, expected_count);
}

/*
 * rill_dpdk_stats_get while it runs: "each as of its thread's last turn". One datagram
 * with acks on; once its ACK datagram is back at the sender, the polling thread has had
 * its turn, so tx_acks and udp.acks must say 1 (bounded wait: a turn is microseconds).
 */
static void test_stats_current(void **state)
{
	(void)state;
	ring_pair_make(&rp);
	struct rte_ether_addr in_mac;
	static uint8_t payload[UE_DATAGRAM_BYTES], frame[1][DT_FRAME_MAX];
	uint32_t n = event_payload(payload, sizeof(payload), UE_TOPIC_DURABLE, 1, 1);
	uint32_t len = frame_from(frame[0], &src_a, ingress_mac, payload, n);
	ingress_start(rp.port_in, true);
	assert_int_equal(rte_eth_macaddr_get(rp.port_in, &in_mac), 0);
	/* Nothing left in the ring back from an earlier ingress: those mbufs were its
	 * mempool's, freed by rill_dpdk_stop, and must not be touched. */
	assert_int_equal(rte_ring_count(rp.from_ingress), 0);
	uint64_t acked[2] = {0, 0};
	ring_send(&rp, frame, &len, 1);
	uint64_t deadline = rill_clock_now_ns() + DT_WAIT_NS;
	uint32_t got = 0;
	while (acked[0] < 1 && rill_clock_now_ns() < deadline) {
		got += ring_acks_read(&rp, &in_mac, acked);
		ue_sleep_ns(100000);
	}
	if (acked[0] != 1)
		fail_msg("no ACK for datagram 1 in %llu s",
			 (unsigned long long)(DT_WAIT_NS / 1000000000u));
	struct rill_dpdk_stats st;
	bool current = stats_wait(dpdk, &st, tx_acks_reached, got, DT_STATS_WAIT_NS);
	stats_print("after the ACK came back", &st);
	if (!current)
		fail_msg("library bug: the sender has read %u ACK datagram(s), but "
			 "rill_dpdk_stats_get says tx_acks %llu, udp.acks %llu %llu s later (the "
			 "polling thread shares its counters only after it received packets)",
			 got, (unsigned long long)st.tx_acks, (unsigned long long)st.udp.acks,
			 (unsigned long long)(DT_STATS_WAIT_NS / 1000000000u));
	assert_int_equal(st.udp.events, expected_events());
	ingress_stop();
	ue_events_settle(&env, expected_events());
	ue_log_check(&env, env.topic_durable, expected, expected_count);
}

/*
 * With promiscuous off, a frame to another MAC is not ours, whatever it carries (a NIC on
 * a shared segment: flooded unknown unicast, a mirror), and one to the port's own MAC goes
 * in. (With it on, the default, every test above sends to a MAC that is not the port's.)
 */
static void test_not_promiscuous(void **state)
{
	(void)state;
	ring_pair_make(&rp);
	struct rte_ether_addr in_mac;
	assert_int_equal(rte_eth_macaddr_get(rp.port_in, &in_mac), 0);
	static uint8_t payload[UE_DATAGRAM_BYTES], frames[2][DT_FRAME_MAX];
	uint32_t lens[2];
	uint32_t n = event_payload(payload, sizeof(payload), UE_TOPIC, 1, 1);
	lens[0] = frame_from(frames[0], &src_a, in_mac.addr_bytes, payload, n); /* ours */
	uint32_t kept = expected_count;
	n = event_payload(payload, sizeof(payload), UE_TOPIC, 2, 1);
	expected_count = kept; /* the foreign frame's events must not arrive */
	lens[1] = frame_from(frames[1], &src_b, ingress_mac, payload, n);
	struct rill_dpdk_config cfg;
	rill_dpdk_config_default(&cfg);
	cfg.port = rp.port_in;
	cfg.mbufs = 4095;
	cfg.promiscuous = false;
	struct rill_error_text err = {{0}};
	assert_int_equal(rill_dpdk_start(&dpdk, env.engine, &cfg, &err), 0);
	ring_send(&rp, frames, lens, 2);
	struct rill_dpdk_stats st;
	assert_true(stats_wait(dpdk, &st, packets_reached, 2, DT_WAIT_NS));
	stats_print("not promiscuous", &st);
	assert_int_equal(st.not_ours, 1);
	assert_int_equal(st.udp.datagrams, 1);
	ingress_stop();
	ue_events_settle(&env, expected_events());
	ue_log_check(&env, env.topic, expected, expected_count);
}

/* ---- net_af_packet over a veth pair into a network namespace ----------------------------- */

#define NS_SENDER_IP  "10.77.0.2"
#define NS_INGRESS_IP "10.77.0.1"
#define NS_PORT       40123

static struct {
	char ns[32], veth_root[16], veth_ns[16];
	bool ns_made, veth_made;
	int port; /* the af_packet port, -1 when none */
	char vdev[32];
} nsx = {.port = -1};

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	int rc = system(cmd);
	return rc == -1 ? -1 : WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

/* Undo whatever of the namespace test is there (any path, any order). */
static void ns_cleanup(void)
{
	if (nsx.port >= 0)
		port_remove((uint16_t)nsx.port, nsx.vdev);
	nsx.port = -1;
	if (nsx.veth_made)
		(void)sh("ip link del %s 2>/dev/null", nsx.veth_root);
	nsx.veth_made = false;
	if (nsx.ns_made)
		(void)sh("ip netns del %s 2>/dev/null", nsx.ns);
	nsx.ns_made = false;
}

static void ns_skip(const char *why)
{
	ns_cleanup();
	print_message("skipped: the af_packet test needs a network namespace and a veth pair: "
		      "%s\n",
		      why);
	skip();
}

/* The child, in the namespace: send @count datagrams (each @lens[i] bytes of @payloads[i])
 * to the ingress, then read ACK datagrams until one says @count. Exit status 0, or why not:
 * 2 setns, 3 socket, 4 send, 5 no ACK for @count in time, 6 a bad ACK. */
static void ns_child(uint8_t (*payloads)[UE_DATAGRAM_BYTES], const uint32_t *lens, uint32_t count)
{
	char path[64];
	snprintf(path, sizeof(path), "/var/run/netns/%s", nsx.ns);
	int nsfd = open(path, O_RDONLY | O_CLOEXEC);
	if (nsfd < 0 || setns(nsfd, CLONE_NEWNET) != 0)
		_exit(2);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in me = {.sin_family = AF_INET, .sin_port = htons(NS_PORT)};
	inet_pton(AF_INET, NS_SENDER_IP, &me.sin_addr);
	struct timeval tv = {.tv_sec = 0, .tv_usec = 200000};
	if (fd < 0 || bind(fd, (struct sockaddr *)&me, sizeof(me)) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0)
		_exit(3);
	struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(RILL_UDP_PORT)};
	inet_pton(AF_INET, NS_INGRESS_IP, &to.sin_addr);
	for (uint32_t i = 0; i < count; i++)
		if (sendto(fd, payloads[i], lens[i], 0, (struct sockaddr *)&to, sizeof(to)) !=
		    (ssize_t)lens[i])
			_exit(4);
	/* ACKs: from the ingress's address and port, up to @count; a silence of 1 s resends
	 * everything past the last one (the datagrams may have come before the port polled). */
	uint64_t acked = 0;
	for (int quiet = 0; quiet < 50 && acked < count;) {
		uint8_t buf[256];
		struct sockaddr_in from;
		socklen_t fl = sizeof(from);
		ssize_t n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl);
		if (n < 0) {
			if (++quiet % 5 == 0)
				for (uint64_t i = acked; i < count; i++)
					(void)sendto(fd, payloads[i], lens[i], 0,
						     (struct sockaddr *)&to, sizeof(to));
			continue;
		}
		struct rill_wire_header h;
		if (from.sin_port != htons(RILL_UDP_PORT) ||
		    from.sin_addr.s_addr != to.sin_addr.s_addr ||
		    n != RILL_WIRE_HEADER_BYTES + RILL_WIRE_ACK_BYTES_MIN ||
		    rill_wire_header_decode(buf, (size_t)n, RILL_WIRE_FRAME_BYTES_MAX, &h) != 0 ||
		    h.type != RILL_WIRE_ACK || h.request_id < acked || h.request_id > count)
			_exit(6);
		acked = h.request_id;
		quiet = 0;
	}
	_exit(acked == count ? 0 : 5);
}

static void test_af_packet(void **state)
{
	(void)state;
	unsigned pid = (unsigned)getpid();
	snprintf(nsx.ns, sizeof(nsx.ns), "rilltest%u", pid);
	snprintf(nsx.veth_root, sizeof(nsx.veth_root), "rlt%ua", pid % 10000000u);
	snprintf(nsx.veth_ns, sizeof(nsx.veth_ns), "rlt%ub", pid % 10000000u);
	if (sh("ip netns add %s 2>&1", nsx.ns) != 0)
		ns_skip("`ip netns add` failed");
	nsx.ns_made = true;
	if (sh("ip link add %s type veth peer name %s netns %s 2>&1", nsx.veth_root, nsx.veth_ns,
	       nsx.ns) != 0)
		ns_skip("`ip link add ... type veth` failed");
	nsx.veth_made = true;
	/* No IPv6 on either end: its neighbour and router chatter would be packets too. */
	(void)sh("sysctl -qw net.ipv6.conf.%s.disable_ipv6=1 2>/dev/null", nsx.veth_root);
	(void)sh("ip netns exec %s sysctl -qw net.ipv6.conf.all.disable_ipv6=1 2>/dev/null",
		 nsx.ns);
	char mac_path[96], mac[32] = "";
	snprintf(mac_path, sizeof(mac_path), "/sys/class/net/%s/address", nsx.veth_root);
	FILE *f = fopen(mac_path, "r");
	if (f == NULL || fgets(mac, sizeof(mac), f) == NULL)
		ns_skip("the veth end's MAC cannot be read");
	fclose(f);
	mac[strcspn(mac, "\n")] = '\0';
	/* The sender's kernel needs a neighbour for the ingress's address: a static one with
	 * the root end's MAC (nothing answers ARP there). */
	if (sh("ip link set %s up", nsx.veth_root) != 0 ||
	    sh("ip -n %s link set lo up", nsx.ns) != 0 ||
	    sh("ip -n %s addr add %s/24 dev %s", nsx.ns, NS_SENDER_IP, nsx.veth_ns) != 0 ||
	    sh("ip -n %s link set %s up", nsx.ns, nsx.veth_ns) != 0 ||
	    sh("ip -n %s neigh replace %s lladdr %s dev %s nud permanent", nsx.ns, NS_INGRESS_IP,
	       mac, nsx.veth_ns) != 0)
		ns_skip("configuring the veth pair failed");

	snprintf(nsx.vdev, sizeof(nsx.vdev), "net_af_packet0");
	char args[64];
	snprintf(args, sizeof(args), "iface=%s", nsx.veth_root);
	int rc = rte_vdev_init(nsx.vdev, args);
	if (rc != 0)
		fail_msg("rte_vdev_init %s %s: %d (%s)", nsx.vdev, args, rc, rte_strerror(-rc));
	uint16_t port = 0;
	assert_int_equal(rte_eth_dev_get_port_by_name(nsx.vdev, &port), 0);
	nsx.port = port;

	static uint8_t payloads[DT_NS_K][UE_DATAGRAM_BYTES];
	static uint32_t lens[DT_NS_K];
	for (uint32_t i = 0; i < DT_NS_K; i++)
		lens[i] =
			event_payload(payloads[i], sizeof(payloads[i]), UE_TOPIC_DURABLE, 7, i + 1);
	ingress_start(port, true);
	pid_t child = fork();
	assert_true(child >= 0);
	if (child == 0)
		ns_child(payloads, lens, DT_NS_K);
	int status = 0;
	uint64_t deadline = rill_clock_now_ns() + DT_WAIT_NS + 2000000000u;
	pid_t w;
	while ((w = waitpid(child, &status, WNOHANG)) == 0 && rill_clock_now_ns() < deadline)
		ue_sleep_ns(10000000);
	if (w == 0) {
		kill(child, SIGKILL);
		waitpid(child, &status, 0);
	}
	struct rill_dpdk_stats st;
	rill_dpdk_stats_get(dpdk, &st);
	stats_print("af_packet", &st);
	if (w == 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("the sender in the namespace: %s %d (2 setns, 3 socket, 4 send, 5 no ACK "
			 "for %u, 6 a bad ACK)",
			 w == 0 ? "killed after the wait," : "exit status",
			 WIFEXITED(status) ? WEXITSTATUS(status) : -1, DT_NS_K);
	bool all = stats_wait(dpdk, &st, events_reached, expected_events(), DT_WAIT_NS);
	if (!all)
		fail_msg("%llu of %u events", (unsigned long long)st.udp.events, expected_events());
	assert_int_equal(st.udp.malformed, 0);
	assert_int_equal(st.udp.refused, 0);
	ingress_stop();
	ns_cleanup();
	ue_events_settle(&env, expected_events());
	ue_log_check(&env, env.topic_durable, expected, expected_count);
}

/* ---- The EAL ---------------------------------------------------------------------------- */

/* Stop the EAL and remove its runtime directory (/var/run/dpdk/PREFIX: 6 MiB of memory
 * maps that DPDK leaves behind), this process's own only. */
static void eal_cleanup(void)
{
	char dir[256];
	snprintf(dir, sizeof(dir), "%s", rte_eal_get_runtime_dir());
	rte_eal_cleanup();
	const char *base = strrchr(dir, '/');
	if (base != NULL && strcmp(base + 1, file_prefix) == 0)
		(void)sh("rm -rf '%s'", dir);
}

/* ---- Producer handles: a server and DPDK on every shard ---------------------------------- */

/* A net_null port (as many queues as asked for, net_ring has 16) that receives nothing. */
static uint16_t quiet_port_make(const char *name)
{
	int rc = rte_vdev_init(name, "no-rx=1");
	if (rc != 0)
		fail_msg("rte_vdev_init %s no-rx=1: %d (%s)", name, rc, rte_strerror(-rc));
	uint16_t port;
	assert_int_equal(rte_eth_dev_get_port_by_name(name, &port), 0);
	return port;
}

/* The ingress on @port with @queues RX queues (0: one per shard) and few descriptors (a
 * small mempool for many queues), napping when idle (many shards on few CPUs). */
static int quiet_start(struct rill_dpdk **d, struct rill_engine *e, uint16_t port, uint32_t queues,
		       struct rill_error_text *err)
{
	struct rill_dpdk_config cfg;
	rill_dpdk_config_default(&cfg);
	cfg.port = port;
	cfg.queues = queues;
	cfg.rx_descs = 64;
	cfg.tx_descs = 64;
	cfg.mbufs = 4095;
	cfg.idle_nap_us = 1000;
	return rill_dpdk_start(d, e, &cfg, err);
}

/*
 * `rill serve --dpdk` on every shard of the largest engine: the server takes a producer
 * handle per shard (worker), the ingress one per RX queue (one queue per shard), and the
 * host has one of its own beside them: 2 x 64 + 1.
 *
 * WAS A BUG (include/rill/rill.h, RILL_ENGINE_PRODUCERS_MAX): 64 handles in all, so past
 * 32 shards the ingress did not start ("DPDK queue 31: No space left on device").
 */
static void test_server_and_dpdk_every_shard(void **state)
{
	(void)state;
	char dir[64];
	assert_int_equal(test_dir_make(dir, sizeof(dir), "dpdk64"), 0);
	struct rill_engine_config ec;
	rill_engine_config_default(&ec);
	ec.data_dir = dir;
	ec.shards = RILL_ENGINE_SHARDS_MAX;
	ec.pin = false;
	ec.ring_bytes = 64u << 10; /* 2 x 64 x 129 rings */
	ec.ack_ring_bytes = 64u << 10;
	struct rill_engine *e = NULL;
	struct rill_error_text err = {{0}};
	int rc = rill_engine_open(&e, &ec, &err);
	if (rc != 0)
		fail_msg("engine of %u shards: %s: %s", ec.shards, rill_strerror(rc), err.message);
	struct rill_server_config sc;
	rill_server_config_default(&sc);
	sc.listen = "127.0.0.1:0";
	sc.connections_max = 64;
	struct rill_server *srv = NULL;
	rc = rill_server_start(&srv, e, &sc, &err);
	if (rc != 0)
		fail_msg("rill_server_start: %s: %s", rill_strerror(rc), err.message);
	uint16_t port = quiet_port_make("net_null_q64");
	struct rill_dpdk *d = NULL;
	rc = quiet_start(&d, e, port, 0, &err); /* a queue per shard */
	if (rc != 0)
		fail_msg("rill_dpdk_start beside a server on %u shards: %s: %s", ec.shards,
			 rill_strerror(rc), err.message);
	assert_int_equal(rill_dpdk_queues(d), RILL_ENGINE_SHARDS_MAX);
	struct rill_producer *host = NULL;
	struct rill_producer_config pc = {0};
	assert_int_equal(rill_producer_open(e, &pc, &host), 0);
	assert_int_equal(rill_producer_close(host), 0);
	assert_int_equal(rill_dpdk_stop(d), 0);
	port_remove(port, "net_null_q64");
	assert_int_equal(rill_server_stop(srv, 1000000000u), 0);
	assert_int_equal(rill_engine_close(e), 0);
	assert_int_equal(test_dir_remove(dir), 0);
}

/*
 * With every producer handle open, the ingress does not start, and says why: no handle
 * left for queue 0, naming the limit and its value (it said "No space left on device").
 */
static void test_dpdk_no_producer_handle(void **state)
{
	(void)state;
	static struct rill_producer *p[RILL_ENGINE_PRODUCERS_MAX];
	struct rill_producer_config pc = {0};
	for (uint32_t i = 0; i < RILL_ENGINE_PRODUCERS_MAX; i++)
		assert_int_equal(rill_producer_open(env.engine, &pc, &p[i]), 0);
	uint16_t port = quiet_port_make("net_null_q1");
	struct rill_dpdk *d = NULL;
	struct rill_error_text err = {{0}};
	assert_int_equal(quiet_start(&d, env.engine, port, 1, &err), -ENOSPC);
	assert_null(d);
	char want[160];
	snprintf(want, sizeof(want),
		 "DPDK queue 0: no producer handle left: the engine has its "
		 "RILL_ENGINE_PRODUCERS_MAX (%u) open",
		 RILL_ENGINE_PRODUCERS_MAX);
	if (strstr(err.message, want) == NULL)
		fail_msg("rill_dpdk_start with every handle open said \"%s\"; expected it to "
			 "start with \"%s\"",
			 err.message, want);
	/* One handle freed: it starts. */
	assert_int_equal(rill_producer_close(p[0]), 0);
	p[0] = NULL;
	assert_int_equal(quiet_start(&d, env.engine, port, 1, &err), 0);
	assert_int_equal(rill_dpdk_stop(d), 0);
	port_remove(port, "net_null_q1");
	for (uint32_t i = 1; i < RILL_ENGINE_PRODUCERS_MAX; i++)
		assert_int_equal(rill_producer_close(p[i]), 0);
}

int main(void)
{
#if defined(__SANITIZE_THREAD__)
	/* DPDK hands mbufs between threads through rte_ring, whose acquire/release is in a
	 * library built without ThreadSanitizer: every field of a handed-over mbuf reads as
	 * a race, with the writer's stack often lost, so no suppression can single them out.
	 * The release and AddressSanitizer builds run this test; test_udp_ingress covers the
	 * ingress's own code under ThreadSanitizer. */
	printf("skipped: ThreadSanitizer cannot see DPDK's rte_ring hand-offs\n");
	return 77;
#endif
	test_rng_init(&rng, 7402);
	snprintf(file_prefix, sizeof(file_prefix), "rilltest%u", (unsigned)getpid());
	char args[256];
	snprintf(args, sizeof(args),
		 "--no-huge -m 512 --no-pci --file-prefix=%s --log-level=lib.eal:error",
		 file_prefix);
	/* The EAL pins the calling thread to its main lcore's CPU, and every thread made
	 * after inherits it: give this one back the CPUs it had, so that the shards and the
	 * polling threads spread as they would in a server. */
	cpu_set_t cpus;
	bool have_cpus = sched_getaffinity(0, sizeof(cpus), &cpus) == 0;
	const char *why = NULL;
	int rc = rill_dpdk_eal_init(args, &why);
	if (rc != 0) {
		fprintf(stderr, "skipped: DPDK's EAL does not start here (\"%s\"): %s (%d)\n", args,
			why != NULL ? why : "?", rc);
		eal_cleanup();
		return 77;
	}
	if (have_cpus)
		(void)sched_setaffinity(0, sizeof(cpus), &cpus);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_no_such_port, dt_setup, dt_teardown),
		cmocka_unit_test_setup_teardown(test_pcap, dt_setup, dt_teardown),
		cmocka_unit_test_setup_teardown(test_not_promiscuous, dt_setup, dt_teardown),
		cmocka_unit_test_setup_teardown(test_ring, dt_setup, dt_teardown),
		cmocka_unit_test_setup_teardown(test_af_packet, dt_setup, dt_teardown),
		cmocka_unit_test_setup_teardown(test_stats_current, dt_setup, dt_teardown),
		cmocka_unit_test_setup_teardown(test_server_and_dpdk_every_shard, dt_setup,
						dt_teardown),
		cmocka_unit_test_setup_teardown(test_dpdk_no_producer_handle, dt_setup,
						dt_teardown),
	};
	rc = cmocka_run_group_tests_name("dpdk", tests, NULL, NULL);
	ns_cleanup();
	eal_cleanup();
	return rc;
}
