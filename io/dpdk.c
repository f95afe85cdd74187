/*
 * DPDK ingress (io/dpdk.h): the EAL, one port, one RX queue per shard (or config.queues),
 * each polled by its own shard in its loop (a shard hook: rill_engine_shard_hook_add), so
 * an event for a partition of that shard goes from the mbuf to the log without leaving the
 * thread. Each queue owns a UDP ingress (io/udp_ingress.c) with its own producer handle,
 * used on its shard's thread only: events of other shards' partitions reach them over SPSC
 * rings as TCP events do. Hot path: dpdk_queue_poll: rx burst, parse in place, publish,
 * free.
 *
 * The mbufs are freed in one bulk call once their events are published: rill_publish
 * either copies an event into the ring to its shard or, for this shard's own partitions,
 * has it appended before it returns (shard_take_local), so nothing points into an mbuf
 * afterwards.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "base/thread.h"
#include "io/dpdk.h"
#include "io/wire.h"
#include "rill_config.h"

void rill_dpdk_config_default(struct rill_dpdk_config *c)
{
	*c = (struct rill_dpdk_config){.port = 0,
				       .udp_port = RILL_UDP_PORT,
				       .mbufs = 8191,
				       .rx_descs = 1024,
				       .tx_descs = 512,
				       .promiscuous = true};
}

#if !RILL_HAVE_DPDK

int rill_dpdk_eal_init(const char *args, const char **err)
{
	(void)args;
	*err = "this rill was built without DPDK (libdpdk-dev was not found)";
	return -ENOTSUP;
}

int rill_dpdk_start(struct rill_dpdk **out, struct rill_engine *engine,
		    const struct rill_dpdk_config *config, struct rill_error_text *err)
{
	(void)out, (void)engine, (void)config;
	snprintf(err->message, sizeof(err->message),
		 "this rill was built without DPDK (libdpdk-dev was not found)");
	return -ENOTSUP;
}

void rill_dpdk_stats_get(struct rill_dpdk *dpdk, struct rill_dpdk_stats *out)
{
	(void)dpdk;
	memset(out, 0, sizeof(*out));
}

uint32_t rill_dpdk_worst_sources(struct rill_dpdk *dpdk,
				 struct rill_udp_source_report out[RILL_UDP_WORST_MAX])
{
	(void)dpdk, (void)out;
	return 0;
}

uint32_t rill_dpdk_queues(const struct rill_dpdk *dpdk)
{
	(void)dpdk;
	return 0;
}

int rill_dpdk_stop(struct rill_dpdk *dpdk)
{
	(void)dpdk;
	return -ENOTSUP;
}

#else

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_ip.h>
#include <rte_mbuf.h>

#define DPDK_BURST          32u
#define DPDK_POOL_CACHE     256u /* mbufs each lcore keeps of the pool */
/* Events published per turn, at most (whole datagrams, so a little over): about what the
 * shard takes from one ring per turn (ENGINE_BURST_MAX), so that its own ring never fills
 * and nothing is dropped that the shard could have taken. */
#define DPDK_EVENTS_TURN    64u
#define DPDK_ARGS_MAX       64
#define DPDK_ARGS_BYTES     4096u
#define DPDK_STATS_EVERY    1024u                 /* packets between two copies of the counters */
#define DPDK_PREFETCH_BYTES 2048u                 /* of the next datagram, while one is parsed */
#define DPDK_STOP_FLUSH_NS  (10ull * 1000000000u) /* acknowledgements owed, at stop */

struct dpdk_queue {
	struct rill_dpdk *dpdk;
	uint16_t index;
	bool tx;                           /* it has a TX queue of its own (for ACKs) */
	bool hooked;                       /* its shard polls it */
	struct rte_mbuf *held[DPDK_BURST]; /* received, [held_at, held_count) not yet taken */
	uint16_t held_at, held_count;
	uint64_t held_ns; /* when they were polled */
	struct rill_udp_ingress *ing;
	uint64_t since_share;       /* packets and acknowledgements since the last copy */
	struct rill_dpdk_stats own; /* written by the shard's thread */
	/* For readers, under shared_lock: copies of own and of the ingress's worst sources
	 * (dpdk_stats_share). */
	pthread_mutex_t shared_lock;
	struct rill_dpdk_stats shared;
	struct rill_udp_source_report worst[RILL_UDP_WORST_MAX];
	uint32_t worst_count;
};

struct rill_dpdk {
	struct rill_engine *engine;
	struct rill_dpdk_config config;
	struct rte_mempool *pool;
	struct rte_ether_addr mac;
	uint32_t queue_count;
	struct dpdk_queue queues[RILL_DPDK_QUEUES_MAX];
};

/* One mempool per port, made at its first start and kept: an mbuf of it may sit in a
 * device's queue after the port stops, and a later start of the same port reuses it. */
static struct rte_mempool *dpdk_pools[RTE_MAX_ETHPORTS];

static bool dpdk_eal_up;
static pthread_mutex_t dpdk_eal_lock = PTHREAD_MUTEX_INITIALIZER;

int rill_dpdk_eal_init(const char *args, const char **err)
{
	pthread_mutex_lock(&dpdk_eal_lock);
	int rc = 0;
	if (!dpdk_eal_up) {
		static char buf[DPDK_ARGS_BYTES];
		char *argv[DPDK_ARGS_MAX + 2];
		int argc = 0;
		argv[argc++] = "rill";
		if (args != NULL && strlen(args) >= sizeof(buf)) {
			*err = "the EAL arguments are longer than 4 KiB";
			rc = -E2BIG;
		} else {
			snprintf(buf, sizeof(buf), "%s", args != NULL ? args : "");
			char *save = NULL;
			char *t = strtok_r(buf, " \t", &save);
			for (; t != NULL && argc <= DPDK_ARGS_MAX; t = strtok_r(NULL, " \t", &save))
				argv[argc++] = t; /* the EAL keeps pointers into buf: static */
			argv[argc] = NULL;
			/* The EAL pins the calling thread to its main lcore; threads made after
			 * would inherit that: the caller keeps the CPUs it had. */
			cpu_set_t cpus;
			bool saved =
				pthread_getaffinity_np(pthread_self(), sizeof(cpus), &cpus) == 0;
			if (t != NULL) {
				*err = "more than 64 EAL arguments";
				rc = -E2BIG;
			} else if (rte_eal_init(argc, argv) < 0) {
				*err = rte_strerror(rte_errno);
				rc = rte_errno > 0 ? -rte_errno : -EINVAL;
			} else {
				dpdk_eal_up = true;
			}
			if (saved)
				pthread_setaffinity_np(pthread_self(), sizeof(cpus), &cpus);
		}
	}
	pthread_mutex_unlock(&dpdk_eal_lock);
	return rc;
}

/* Publish the queue's counters and worst sources for readers, all of a piece. The shard
 * only tries the lock (@wait false: it never waits for a reader, whose hold is a copy of
 * a few hundred bytes) and shares at a later turn when it is held. Returns false then. */
static bool dpdk_stats_share(struct dpdk_queue *q, bool wait)
{
	if (wait)
		pthread_mutex_lock(&q->shared_lock);
	else if (pthread_mutex_trylock(&q->shared_lock) != 0)
		return false;
	rill_udp_ingress_stats(q->ing, &q->own.udp);
	q->shared = q->own;
	q->worst_count = rill_udp_ingress_worst(q->ing, q->worst);
	pthread_mutex_unlock(&q->shared_lock);
	return true;
}

/*
 * The IPv4 header's checksum, where the device did not check it (net_ring, net_pcap, a NIC
 * without the offload): the addresses say which source a datagram counts for and where its
 * ACK goes. The UDP checksum (over the PRODUCE header too) stays the device's: a sender's
 * kernel leaves it to the hardware on a veth or bridge (CHECKSUM_PARTIAL), so what
 * net_af_packet reads there holds a partial sum that software would take for a bad one.
 */
static bool dpdk_ip_checksum_ok(const struct rte_mbuf *m, const uint8_t *frame,
				const struct rill_udp_peer *from)
{
	const struct rte_ipv4_hdr *ip =
		(const struct rte_ipv4_hdr *)(frame + 14 + (from->vlan ? 4 : 0));
	return (m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK) != RTE_MBUF_F_RX_IP_CKSUM_UNKNOWN ||
	       rte_ipv4_cksum(ip) == 0;
}

/* One mbuf: its frame to the ingress. Returns the events published. */
static unsigned dpdk_packet(struct dpdk_queue *q, struct rte_mbuf *m, uint64_t now)
{
	q->own.packets++;
	if (m->nb_segs != 1 ||
	    (m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK) == RTE_MBUF_F_RX_L4_CKSUM_BAD ||
	    (m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK) == RTE_MBUF_F_RX_IP_CKSUM_BAD) {
		/* Chained (an event datagram fits one segment), or the device found a bad
		 * checksum. Devices that do not check leave it to the records' CRCs. */
		q->own.bad_frames++;
		return 0;
	}
	const uint8_t *frame = rte_pktmbuf_mtod(m, const uint8_t *);
	if (!q->dpdk->config.promiscuous &&
	    (rte_pktmbuf_data_len(m) < 6 || memcmp(frame, q->dpdk->mac.addr_bytes, 6) != 0)) {
		q->own.not_ours++; /* to another host: a NIC may pass some in any mode */
		return 0;
	}
	const uint8_t *payload;
	uint32_t bytes;
	struct rill_udp_peer from;
	int rc = rill_udp_frame_ipv4(frame, rte_pktmbuf_data_len(m), q->dpdk->config.udp_port,
				     &payload, &bytes, &from);
	if (rc == -ENOENT) {
		q->own.not_ours++;
		return 0;
	}
	if (rc < 0) {
		q->own.bad_frames++;
		return 0;
	}
	if (!dpdk_ip_checksum_ok(m, frame, &from)) {
		q->own.bad_frames++;
		return 0;
	}
	rc = rill_udp_ingress_datagram(q->ing, &from, payload, bytes, now); /* counted */
	return rc > 0 ? (unsigned)rc : 0;
}

/* Send the ACK datagrams due, in one TX burst. */
static void dpdk_acks(struct dpdk_queue *q)
{
	struct rte_mbuf *out[DPDK_BURST];
	uint16_t n = 0;
	struct rill_udp_peer to;
	uint8_t frame[RILL_WIRE_HEADER_BYTES + RILL_WIRE_ACK_BYTES_MIN];
	uint32_t bytes;
	while (n < DPDK_BURST && rill_udp_ingress_next_ack(q->ing, &to, frame, &bytes) == 1) {
		struct rte_mbuf *m = q->tx ? rte_pktmbuf_alloc(q->dpdk->pool) : NULL;
		if (m == NULL)
			continue; /* no TX queue or no mbuf: the sender's timer retries */
		uint8_t *dst = (uint8_t *)rte_pktmbuf_append(
			m, (uint16_t)(rill_udp_frame_headers(&to) + bytes));
		if (dst == NULL) {
			rte_pktmbuf_free(m);
			continue;
		}
		rill_udp_frame_build(dst, q->dpdk->mac.addr_bytes, &to, frame, bytes);
		out[n++] = m;
	}
	uint16_t sent = n > 0 ? rte_eth_tx_burst(q->dpdk->config.port, q->index, out, n) : 0;
	q->own.tx_acks += sent;
	if (sent < n)
		rte_pktmbuf_free_bulk(out + sent, n - sent);
}

/*
 * Start loading the next datagram while this one is parsed: its bytes were written by
 * another core (or a NIC's DMA) and are cold here, and parsing reads every one of them
 * (the records' CRCs), so its cache misses would otherwise come one after another. At
 * most DPDK_PREFETCH_BYTES of it: a jumbo frame is not worth more.
 */
static inline void dpdk_prefetch(struct rte_mbuf *m)
{
	const char *p = rte_pktmbuf_mtod(m, const char *);
	uint32_t bytes = rte_pktmbuf_data_len(m);
	if (bytes > DPDK_PREFETCH_BYTES)
		bytes = DPDK_PREFETCH_BYTES;
	for (uint32_t at = 0; at < bytes; at += RTE_CACHE_LINE_SIZE)
		rte_prefetch0(p + at);
}

/* The shard's poll hook: one burst. Returns the work done (0: nothing came). */
static unsigned dpdk_queue_poll(void *arg)
{
	struct dpdk_queue *q = arg;
	struct rill_dpdk *d = q->dpdk;
	if (q->held_at == q->held_count) {
		q->held_at = 0;
		q->held_count = rte_eth_rx_burst(d->config.port, q->index, q->held, DPDK_BURST);
		q->held_ns = rill_clock_now_ns(); /* the poll time: latency counts from it */
	}
	uint16_t first = q->held_at, n = 0;
	unsigned events = 0;
	while (q->held_at < q->held_count && events < DPDK_EVENTS_TURN) {
		if (q->held_at + 1 < q->held_count)
			dpdk_prefetch(q->held[q->held_at + 1]);
		events += dpdk_packet(q, q->held[q->held_at++], q->held_ns);
	}
	n = (uint16_t)(q->held_at - first);
	if (n > 0)
		rte_pktmbuf_free_bulk(q->held + first, n); /* their events are in the rings */
	int acks = rill_udp_ingress_poll(q->ing);
	/* ACKs go whenever due, not only after the shards' acknowledgements: a sender that
	 * lost one retransmits what is durable already, which publishes nothing. */
	if (d->config.acks && rill_udp_ingress_acks_due(q->ing) > 0)
		dpdk_acks(q);
	q->since_share += n + (acks > 0 ? (unsigned)acks : 0);
	if ((q->since_share >= DPDK_STATS_EVERY || (n == 0 && acks == 0 && q->since_share > 0)) &&
	    dpdk_stats_share(q, false))
		q->since_share = 0;
	return n + (acks > 0 ? (unsigned)acks : 0);
}

static int dpdk_no_port(uint16_t port, struct rill_error_text *err)
{
	snprintf(err->message, sizeof(err->message),
		 "DPDK port %u: no such port (%u ports; check the EAL's --vdev or PCI allow "
		 "list)",
		 port, rte_eth_dev_count_avail());
	return -ENODEV;
}

/* Configure the port: queues, descriptors, RSS where the device has it; then start it. */
static int dpdk_port_setup(struct rill_dpdk *d, struct rill_error_text *err)
{
	uint16_t port = d->config.port;
	struct rte_eth_dev_info info;
	if (!rte_eth_dev_is_valid_port(port) || rte_eth_dev_info_get(port, &info) != 0)
		return dpdk_no_port(port, err);
	uint32_t want = d->config.queues != 0 ? d->config.queues : rill_engine_shards(d->engine);
	uint32_t rxq = want < info.max_rx_queues ? want : info.max_rx_queues;
	if (rxq > RILL_DPDK_QUEUES_MAX)
		rxq = RILL_DPDK_QUEUES_MAX;
	uint32_t txq = rxq < info.max_tx_queues ? rxq : info.max_tx_queues;
	struct rte_eth_conf conf;
	memset(&conf, 0, sizeof(conf));
	/* The device checks the checksums where it can (dpdk_ip_checksum_ok: the rest). */
	conf.rxmode.offloads = info.rx_offload_capa &
			       (RTE_ETH_RX_OFFLOAD_IPV4_CKSUM | RTE_ETH_RX_OFFLOAD_UDP_CKSUM);
	if (rxq > 1 && (info.flow_type_rss_offloads & RTE_ETH_RSS_UDP) != 0) {
		conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS; /* the 4-tuple spreads the sources */
		conf.rx_adv_conf.rss_conf.rss_hf = info.flow_type_rss_offloads & RTE_ETH_RSS_UDP;
	} else if (rxq > 1) {
		rxq = 1; /* no RSS: one queue, or the others would stay empty */
		txq = txq > 0 ? 1 : 0;
	}
	int rc = rte_eth_dev_configure(port, (uint16_t)rxq, (uint16_t)txq, &conf);
	int socket = rte_eth_dev_socket_id(port);
	for (uint32_t i = 0; rc == 0 && i < rxq; i++)
		rc = rte_eth_rx_queue_setup(port, (uint16_t)i, d->config.rx_descs,
					    (unsigned)(socket < 0 ? 0 : socket), NULL, d->pool);
	for (uint32_t i = 0; rc == 0 && i < txq; i++)
		rc = rte_eth_tx_queue_setup(port, (uint16_t)i, d->config.tx_descs,
					    (unsigned)(socket < 0 ? 0 : socket), NULL);
	if (rc == 0)
		rc = rte_eth_macaddr_get(port, &d->mac); /* before the start: nothing to undo */
	if (rc == 0)
		rc = rte_eth_dev_start(port);
	/* Refused by some ports: harmless either way (off, the software filter stands in). */
	if (rc == 0 && d->config.promiscuous)
		(void)rte_eth_promiscuous_enable(port);
	else if (rc == 0)
		(void)rte_eth_promiscuous_disable(port);
	if (rc != 0) {
		snprintf(err->message, sizeof(err->message), "DPDK port %u: setting it up: %s",
			 port, rte_strerror(rc < 0 ? -rc : rc));
		return rc < 0 ? rc : -rc;
	}
	if (d->config.acks && txq < rxq) {
		(void)rte_eth_dev_stop(port);
		snprintf(err->message, sizeof(err->message),
			 "DPDK port %u: acks need a TX queue for each of its %u RX queues; it "
			 "has %u",
			 port, rxq, txq);
		return -EINVAL;
	}
	d->queue_count = rxq;
	for (uint32_t i = 0; i < rxq; i++)
		d->queues[i].tx = i < txq;
	return 0;
}

static void dpdk_free(struct rill_dpdk *d)
{
	for (uint32_t i = 0; i < RILL_DPDK_QUEUES_MAX; i++) {
		rill_udp_ingress_destroy(d->queues[i].ing); /* flushes: back on this thread */
		pthread_mutex_destroy(&d->queues[i].shared_lock);
	}
	free(d); /* the mempool stays with its port (dpdk_pools) */
}

/* Take the queues off their shards: once this returns no shard touches them. */
static void dpdk_unhook(struct rill_dpdk *d)
{
	for (uint32_t i = 0; i < d->queue_count; i++) {
		if (d->queues[i].hooked)
			(void)rill_engine_shard_hook_remove(d->engine, i, &d->queues[i]);
		d->queues[i].hooked = false;
		/* A burst past one turn's events keeps its rest for the next turn: none comes. */
		struct dpdk_queue *q = &d->queues[i];
		if (q->held_at < q->held_count)
			rte_pktmbuf_free_bulk(q->held + q->held_at, q->held_count - q->held_at);
		q->held_at = q->held_count = 0;
		if (q->ing == NULL)
			continue;
		(void)dpdk_stats_share(q, true); /* the last figures */
	}
}

int rill_dpdk_start(struct rill_dpdk **out, struct rill_engine *engine,
		    const struct rill_dpdk_config *config, struct rill_error_text *err)
{
	if (!dpdk_eal_up) {
		snprintf(err->message, sizeof(err->message), "DPDK: the EAL is not started");
		return -EINVAL;
	}
	if (config->queues > rill_engine_shards(engine)) {
		snprintf(err->message, sizeof(err->message),
			 "DPDK: queues: %u for %u shard(s): each queue needs a shard to poll it",
			 config->queues, rill_engine_shards(engine));
		return -EINVAL;
	}
	/* Before a mempool is made for it (kept for the process's life): a port number past
	 * the EAL's table, or of no device, was said as a mempool failure. */
	if (!rte_eth_dev_is_valid_port(config->port))
		return dpdk_no_port(config->port, err);
	struct rill_dpdk *d = calloc(1, sizeof(*d));
	if (d == NULL)
		return -ENOMEM;
	d->engine = engine;
	d->config = *config;
	for (uint32_t i = 0; i < RILL_DPDK_QUEUES_MAX; i++)
		pthread_mutex_init(&d->queues[i].shared_lock, NULL);
	char name[32];
	snprintf(name, sizeof(name), "rill_rx_%u", config->port);
	/* At least what the queues can hold at once: every RX and TX descriptor filled, a
	 * burst held by each poller, and each lcore's mempool cache. Below that a PMD that
	 * fills its RX rings at start fails it (8 queues of 1,024 descriptors pass 8,191). */
	uint32_t queues = config->queues != 0 ? config->queues : rill_engine_shards(engine);
	uint64_t need = (uint64_t)queues * (config->rx_descs + config->tx_descs + 2u * DPDK_BURST) +
			(uint64_t)DPDK_POOL_CACHE * (rte_lcore_count() + 1u);
	uint32_t mbufs = need > config->mbufs ? (uint32_t)need : config->mbufs;
	if (config->port < RTE_MAX_ETHPORTS && dpdk_pools[config->port] == NULL)
		dpdk_pools[config->port] =
			rte_pktmbuf_pool_create(name, mbufs, DPDK_POOL_CACHE, 0,
						RTE_MBUF_DEFAULT_BUF_SIZE, (int)rte_socket_id());
	d->pool = config->port < RTE_MAX_ETHPORTS ? dpdk_pools[config->port] : NULL;
	int rc = 0;
	if (d->pool == NULL) {
		snprintf(err->message, sizeof(err->message), "DPDK: mempool of %u mbufs: %s", mbufs,
			 rte_strerror(rte_errno));
		rc = -ENOMEM;
	}
	if (rc == 0)
		rc = dpdk_port_setup(d, err);
	for (uint32_t i = 0; rc == 0 && i < d->queue_count; i++) {
		struct dpdk_queue *q = &d->queues[i];
		q->dpdk = d;
		q->index = (uint16_t)i;
		rc = rill_udp_ingress_create(&q->ing, engine, config->acks);
		/* -ENOSPC is rill_producer_open's: an operator must know whose to count. */
		if (rc == -ENOSPC)
			snprintf(err->message, sizeof(err->message),
				 "DPDK queue %u: no producer handle left: the engine has its "
				 "RILL_ENGINE_PRODUCERS_MAX (%u) open (the ingress takes one per "
				 "RX queue, the server one per shard, the host the others)",
				 i, RILL_ENGINE_PRODUCERS_MAX);
		else if (rc < 0)
			snprintf(err->message, sizeof(err->message), "DPDK queue %u: %s", i,
				 rill_strerror(rc));
	}
	for (uint32_t i = 0; rc == 0 && i < d->queue_count; i++) {
		struct rill_shard_hook hook = {.poll = dpdk_queue_poll,
					       .arg = &d->queues[i],
					       .nap_ns = (uint64_t)config->idle_nap_us * 1000u};
		rc = rill_engine_shard_hook_add(engine, i, &hook);
		d->queues[i].hooked = rc == 0;
		if (rc < 0)
			snprintf(err->message, sizeof(err->message),
				 "DPDK queue %u: shard %u: no room for another hook", i, i);
	}
	if (rc < 0) {
		dpdk_unhook(d);
		if (d->queue_count > 0)
			(void)rte_eth_dev_stop(config->port);
		dpdk_free(d);
		return rc;
	}
	*out = d;
	return 0;
}

void rill_dpdk_stats_get(struct rill_dpdk *d, struct rill_dpdk_stats *out)
{
	memset(out, 0, sizeof(*out));
	uint64_t *dst = (uint64_t *)out; /* every field a uint64_t: summed word by word */
	for (uint32_t q = 0; q < d->queue_count; q++) {
		struct dpdk_queue *dq = &d->queues[q];
		pthread_mutex_lock(&dq->shared_lock);
		const uint64_t *src = (const uint64_t *)&dq->shared;
		for (size_t i = 0; i < sizeof(*out) / sizeof(uint64_t); i++)
			dst[i] += src[i];
		pthread_mutex_unlock(&dq->shared_lock);
	}
}

uint32_t rill_dpdk_worst_sources(struct rill_dpdk *d,
				 struct rill_udp_source_report out[RILL_UDP_WORST_MAX])
{
	uint32_t n = 0;
	for (uint32_t q = 0; q < d->queue_count; q++) {
		struct dpdk_queue *dq = &d->queues[q];
		pthread_mutex_lock(&dq->shared_lock); /* the shard rewrites them (stats_share) */
		for (uint32_t i = 0; i < dq->worst_count; i++)
			n = rill_udp_worst_insert(out, n, &dq->worst[i]);
		pthread_mutex_unlock(&dq->shared_lock);
	}
	return n;
}

uint32_t rill_dpdk_queues(const struct rill_dpdk *d)
{
	return d->queue_count;
}

int rill_dpdk_stop(struct rill_dpdk *d)
{
	if (d == NULL)
		return 0;
	dpdk_unhook(d);
	/* The acknowledgements still owed (a sync in flight), and the ACK datagrams they
	 * make, before the port stops: a sender told nothing sends again to a server that,
	 * restarted, no longer knows it (its window starts at 1 again). No shard touches a
	 * queue after the unhook, so this thread may send on its TX queue. */
	for (uint32_t i = 0; i < d->queue_count; i++) {
		struct dpdk_queue *q = &d->queues[i];
		if (q->ing == NULL)
			continue;
		(void)rill_udp_ingress_flush(q->ing, DPDK_STOP_FLUSH_NS);
		/* One ACK per source at most: enough bursts for every source a queue tracks. */
		for (uint32_t bursts = 0; bursts < 2 * RILL_UDP_SOURCES_MAX / DPDK_BURST &&
					  rill_udp_ingress_acks_due(q->ing) > 0;
		     bursts++)
			dpdk_acks(q);
		(void)dpdk_stats_share(q, true);
		/* A NIC sends what its TX ring holds after tx_burst returns: give it the time
		 * before the stop resets the ring (bounded; PMDs without the call get a pause). */
		for (int tries = 0; q->tx && tries < 10; tries++) {
			int freed = rte_eth_tx_done_cleanup(d->config.port, q->index, 0);
			if (freed == 0)
				break;
			struct timespec pause = {0, 1000000};
			nanosleep(&pause, NULL);
		}
	}
	int rc = rte_eth_dev_stop(d->config.port);
	dpdk_free(d);
	return rc < 0 ? rc : 0;
}

#endif /* RILL_HAVE_DPDK */

/* Built either way: it uses only the calls above. */
int rill_dpdk_stat_json(struct rill_dpdk *d, char *json, size_t bytes)
{
	struct rill_dpdk_stats st;
	rill_dpdk_stats_get(d, &st);
	int n = snprintf(json, bytes,
			 "{\"queues\":%u,\"packets\":%" PRIu64 ",\"not_ours\":%" PRIu64
			 ",\"bad_frames\":%" PRIu64 ",\"tx_acks\":%" PRIu64
			 ",\"datagrams\":%" PRIu64 ",\"events\":%" PRIu64 ",\"malformed\":%" PRIu64
			 ",\"unknown_topic\":%" PRIu64 ",\"refused\":%" PRIu64 ",\"lost\":%" PRIu64
			 ",\"dropped\":%" PRIu64 ",\"gaps\":%" PRIu64 ",\"reordered\":%" PRIu64
			 ",\"untracked\":%" PRIu64 ",\"evicted\":%" PRIu64 ",\"sources\":%" PRIu64
			 ",\"worst_sources\":[",
			 rill_dpdk_queues(d), st.packets, st.not_ours, st.bad_frames, st.tx_acks,
			 st.udp.datagrams, st.udp.events, st.udp.malformed, st.udp.unknown_topic,
			 st.udp.refused, st.udp.lost, st.udp.dropped, st.udp.gaps, st.udp.reordered,
			 st.udp.untracked, st.udp.evicted, st.udp.sources);
	/* The sources with the most gaps and reordering: which sender or path loses. */
	struct rill_udp_source_report worst[RILL_UDP_WORST_MAX];
	uint32_t count = rill_dpdk_worst_sources(d, worst);
	for (uint32_t i = 0; i < count && n > 0 && (size_t)n < bytes; i++) {
		const struct rill_udp_source_report *w = &worst[i];
		n += snprintf(json + n, bytes - (size_t)n,
			      "%s{\"source\":\"%u.%u.%u.%u:%u\",\"datagrams\":%" PRIu64
			      ",\"gaps\":%" PRIu64 ",\"reordered\":%" PRIu64 ",\"highest\":%" PRIu64
			      ",\"durable_contig\":%" PRIu64 "}",
			      i ? "," : "", w->ip >> 24, w->ip >> 16 & 0xffu, w->ip >> 8 & 0xffu,
			      w->ip & 0xffu, w->port, w->stats.datagrams, w->stats.gaps,
			      w->stats.reordered, w->stats.highest, w->stats.durable_contig);
	}
	if (n > 0 && (size_t)n < bytes)
		n += snprintf(json + n, bytes - (size_t)n, "]}");
	return n > 0 && (size_t)n < bytes ? 0 : -ENOSPC;
}
