/*
 * Kernel-bypass ingress through DPDK: UDP datagrams of events (io/udp_ingress.h) read
 * from a poll-mode driver's RX queues, one per shard by default (config.queues; RSS over
 * the UDP 4-tuple on NICs that have it), each polled by its shard in its own loop (a shard
 * with a queue never sleeps, but for idle_nap_us), parsed in place from the mbufs and
 * published like TCP events. Optional ACK datagrams go back through TX bursts. Built when libdpdk is found (RILL_HAVE_DPDK); without it every call returns
 * -ENOTSUP and says so.
 */
#ifndef RILL_IO_DPDK_H
#define RILL_IO_DPDK_H

#include <stdbool.h>
#include <stdint.h>

#include "io/udp_ingress.h"
#include "rill/rill.h"

#define RILL_DPDK_QUEUES_MAX      64u
#define RILL_DPDK_IDLE_NAP_US_MAX 100000u /* 100 ms: an RX ring fills long before */

struct rill_dpdk;

struct rill_dpdk_config {
	uint16_t port;     /* the ethdev port (default 0) */
	uint16_t queues;   /* RX queues, polled by shards 0 .. queues - 1 (0: one per shard) */
	uint16_t udp_port; /* datagrams to this UDP port are events (default 7401) */
	uint32_t mbufs;    /* the RX mempool's mbufs (default 8191), raised to what the queues'
			    * descriptors, bursts and caches can hold at once */
	uint16_t rx_descs; /* per queue (default 1024) */
	uint16_t tx_descs; /* (default 512) */
	bool acks;         /* ACK datagrams (at least once); default off: at most once */
	/* Take event datagrams whatever their destination MAC (default true: virtual
	 * devices such as net_pcap have MACs of their own, and replays and mirrors carry
	 * frames to other hosts). false: the port leaves promiscuous mode and frames to
	 * another MAC are dropped (not_ours), so a NIC on a shared segment (a flooded
	 * unknown unicast, a mirror) never takes, nor answers, another server's events. */
	bool promiscuous;
	/* Adaptive polling, idle: the shard sleeps up to this long between polls (default 0:
	 * it never sleeps, for a core of its own; at most RILL_DPDK_IDLE_NAP_US_MAX). */
	uint32_t idle_nap_us;
};

void rill_dpdk_config_default(struct rill_dpdk_config *config);

/*
 * rill_dpdk_eal_init - start DPDK's environment (EAL) with @args (split on blanks, e.g.
 * "--no-huge -m 512 --vdev=net_pcap0,rx_pcap=f.pcap"). Once per process: later calls
 * return 0 and do nothing. Returns 0, or -errno with @err (a static text) saying why.
 */
int rill_dpdk_eal_init(const char *args, const char **err);

/*
 * rill_dpdk_start - configure config->port with config->queues RX queues (default one per
 * shard; fewer if the port has fewer) and start polling it into @engine. Each queue opens
 * a producer handle of its own (of the engine's RILL_ENGINE_PRODUCERS_MAX, which a server
 * beside it takes one per shard of). The EAL must be up. Returns 0, or -errno (-ENODEV:
 * no such port; -EINVAL: more queues than shards; -ENOSPC: no producer handle left for a
 * queue) with @err.
 */
int rill_dpdk_start(struct rill_dpdk **out, struct rill_engine *engine,
		    const struct rill_dpdk_config *config, struct rill_error_text *err);

/* Counters over every queue, read while it runs (each as of its shard's last turn with
 * something to count). */
struct rill_dpdk_stats {
	uint64_t packets;    /* frames received */
	uint64_t not_ours;   /* not IPv4/UDP to our port */
	uint64_t bad_frames; /* broken Ethernet/IPv4/UDP lengths, or chained mbufs */
	uint64_t tx_acks;    /* ACK datagrams sent */
	struct rill_udp_stats udp;
};

/* rill_dpdk_stats_get - the counters, summed over the queues, each queue's all of a
 * piece. Any thread; holds each queue's lock for a copy (its shard never waits for it). */
void rill_dpdk_stats_get(struct rill_dpdk *dpdk, struct rill_dpdk_stats *out);

/*
 * rill_dpdk_worst_sources - the UDP sources with the most gaps plus reordered datagrams
 * over every queue, most first, at most RILL_UDP_WORST_MAX, into @out; returns how many.
 * As of each queue's last turn with something to count, like rill_dpdk_stats_get. Any
 * thread; holds each queue's lock for a copy (its shard never waits for it).
 */
uint32_t rill_dpdk_worst_sources(struct rill_dpdk *dpdk,
				 struct rill_udp_source_report out[RILL_UDP_WORST_MAX]);

/*
 * rill_dpdk_stat_json - the counters and the worst sources as one JSON object into @json
 * (@bytes; 4 KiB is room for all), NUL-terminated: `rill stat`'s "dpdk". Returns 0, or
 * -ENOSPC when it did not fit. Any thread, as the two calls above.
 */
int rill_dpdk_stat_json(struct rill_dpdk *dpdk, char *json, size_t bytes);

/* rill_dpdk_queues - RX queues polled. */
uint32_t rill_dpdk_queues(const struct rill_dpdk *dpdk);

/* rill_dpdk_stop - stop polling; wait (up to 10 s) for the acknowledgements owed and send
 * the ACK datagrams they make; stop the port; free. Datagrams still in the device's ring
 * are dropped (their senders send them again). */
int rill_dpdk_stop(struct rill_dpdk *dpdk);

#endif /* RILL_IO_DPDK_H */
