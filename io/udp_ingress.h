/*
 * UDP ingress, whatever carries the datagrams (DPDK's poll-mode drivers in io/dpdk.c, or a
 * kernel socket read with recvmmsg for comparison): a datagram's payload is one PRODUCE
 * frame of the native protocol (io/wire.h: header and body, several events), whose
 * request_id is the sender's datagram sequence number, 1, 2, 3, ... per source (IPv4
 * address and UDP port). The frame is checked whole (every record's CRC) before any of
 * its events is published; a malformed datagram is counted and dropped.
 *
 * Semantics: at most once by default. The ingress counts, per source, the sequence gaps
 * (datagrams lost or not yet come) and the reordered ones (an older sequence after a newer
 * one). With acknowledgements on, the events are published asking for durable
 * acknowledgements, and the ingress tracks per source the highest sequence up to which
 * every datagram is durably appended; it offers an ACK datagram (an ACK frame with no
 * entries whose request_id is that sequence) whenever it advances, so that a sender can
 * retransmit what is missing: at least once, exactly once with an idempotent producer id
 * in the records.
 *
 * One ingress per receiving thread (it owns a producer handle); not thread-safe.
 */
#ifndef RILL_IO_UDP_INGRESS_H
#define RILL_IO_UDP_INGRESS_H

#include <stdbool.h>
#include <stdint.h>

#include "rill/rill.h"

#define RILL_UDP_SOURCES_MAX 4096u /* sources tracked per ingress; more are not tracked */
/* A full table forgets sources silent this long with nothing in flight, to make room. */
#define RILL_UDP_SOURCE_IDLE_NS (60ull * 1000 * 1000 * 1000)
/* ... and those whose window holds durable datagrams past a hole (acks on) when silent
 * this long: a sender still retransmitting the hole has had ten minutes; one that left
 * would otherwise keep its slot for the server's life. */
#define RILL_UDP_SOURCE_HOLE_IDLE_NS (10 * RILL_UDP_SOURCE_IDLE_NS)
#define RILL_UDP_WINDOW              64u /* acks on: datagrams of one source awaiting durability */
#define RILL_UDP_WORST_MAX           8u  /* sources rill_udp_ingress_worst lists */
#define RILL_UDP_PORT                7401u /* the default UDP port */

struct rill_udp_ingress;

/* Where a datagram came from, and what an answer to it needs (kept per source). */
struct rill_udp_peer {
	uint32_t ip;       /* the source's IPv4 address, host order */
	uint16_t port;     /* its UDP port */
	uint8_t mac[6];    /* its Ethernet address (DPDK; zeros for a kernel socket) */
	uint32_t local_ip; /* the address it sent to, host order */
	uint16_t local_port;
	bool vlan;         /* it came with an 802.1Q tag: answers carry the same */
	uint16_t vlan_tci; /* that tag's priority and VLAN id (0 without one) */
};

struct rill_udp_stats {
	uint64_t datagrams; /* taken in */
	uint64_t events;    /* published */
	uint64_t malformed; /* datagrams dropped: not one whole, valid PRODUCE frame */
	uint64_t unknown_topic;
	uint64_t refused;   /* events the write model refused (acks on only: seen) */
	uint64_t dropped;   /* datagrams dropped for back-pressure (rings or window full) */
	uint64_t gaps;      /* sequence numbers skipped, over every source */
	uint64_t reordered; /* datagrams older than one already seen */
	uint64_t untracked; /* datagrams from sources past RILL_UDP_SOURCES_MAX */
	uint64_t evicted;   /* idle sources forgotten to make room for new ones */
	uint64_t acks;      /* ACK datagrams offered */
	uint64_t sources;   /* sources tracked now (at most RILL_UDP_SOURCES_MAX) */
	uint64_t lost;      /* events their partition's failed log could not take; with
			     * acks on their datagrams are never acknowledged */
};

/* Per source, as rill_udp_ingress_source reports it. */
struct rill_udp_source_stats {
	uint64_t datagrams, gaps, reordered;
	uint64_t highest;        /* the highest sequence seen */
	uint64_t durable_contig; /* acks on: every sequence up to this one is durable */
};

/* A source and its figures, as rill_udp_ingress_worst lists it. */
struct rill_udp_source_report {
	uint32_t ip; /* host order */
	uint16_t port;
	struct rill_udp_source_stats stats;
};

/*
 * rill_udp_ingress_create - an ingress publishing into @engine, with durable
 * acknowledgements tracked when @acks. It opens a producer handle of its own. Returns 0,
 * -ENOMEM, or rill_producer_open's error (-ENOSPC: RILL_ENGINE_PRODUCERS_MAX are open).
 */
int rill_udp_ingress_create(struct rill_udp_ingress **out, struct rill_engine *engine, bool acks);

/* rill_udp_ingress_destroy - flush the producer handle (waits for the shards) and free. */
void rill_udp_ingress_destroy(struct rill_udp_ingress *ing);

/*
 * rill_udp_ingress_datagram - take one datagram's payload from @from, received at
 * @ingress_ns (monotonic; the events' latency counts from it).
 * Returns the events published, or a negative code: a RILL_E_WIRE_* or RILL_E_RECORD_*
 * code for a malformed datagram, -ENOENT for an unknown topic, -EAGAIN when back-pressure
 * dropped it. Every outcome is counted. Never blocks.
 */
int rill_udp_ingress_datagram(struct rill_udp_ingress *ing, const struct rill_udp_peer *from,
			      const void *payload, uint32_t bytes, uint64_t ingress_ns);

/* rill_udp_ingress_poll - take the shards' acknowledgements. Returns how many. */
int rill_udp_ingress_poll(struct rill_udp_ingress *ing);

/* rill_udp_ingress_flush - wait up to @timeout_ns for every acknowledgement owed (then
 * the ACK datagrams they make are due). 0 or -ETIMEDOUT. Blocks. */
int rill_udp_ingress_flush(struct rill_udp_ingress *ing, uint64_t timeout_ns);

/* rill_udp_ingress_acks_due - ACK datagrams due (acks on): rill_udp_ingress_next_ack has
 * that many to give. Due also without any acknowledgement from the shards: the answer to
 * a retransmission of what is durable already. */
uint32_t rill_udp_ingress_acks_due(const struct rill_udp_ingress *ing);

/*
 * rill_udp_ingress_next_ack - an ACK datagram due (acks on): its destination (the source,
 * as it last sent) and payload
 * (an ACK frame, RILL_WIRE_HEADER_BYTES + 8 bytes, into @frame). Returns 1 with one, 0
 * when none is due.
 */
int rill_udp_ingress_next_ack(struct rill_udp_ingress *ing, struct rill_udp_peer *to,
			      uint8_t *frame, uint32_t *frame_bytes);

void rill_udp_ingress_stats(const struct rill_udp_ingress *ing, struct rill_udp_stats *out);

/* rill_udp_ingress_source - a source's figures: 0, or -ENOENT when it is not tracked. */
int rill_udp_ingress_source(const struct rill_udp_ingress *ing, uint32_t ip, uint16_t port,
			    struct rill_udp_source_stats *out);

/*
 * rill_udp_ingress_worst - the sources with the most gaps plus reordered datagrams
 * (rill_udp_trouble), most first, at most RILL_UDP_WORST_MAX of them, into @out; returns
 * how many. A source with neither is never listed. The list is kept as the counts change,
 * so this reads a few slots, never the whole table. Same thread as
 * rill_udp_ingress_datagram; does not block.
 */
uint32_t rill_udp_ingress_worst(const struct rill_udp_ingress *ing,
				struct rill_udp_source_report out[RILL_UDP_WORST_MAX]);

/* rill_udp_trouble - how the worst sources rank: gaps plus reordered datagrams, saturating
 * (a sender's sequence numbers can make gaps as large as it likes). */
static inline uint64_t rill_udp_trouble(uint64_t gaps, uint64_t reordered)
{
	return gaps + reordered < gaps ? UINT64_MAX : gaps + reordered;
}

/*
 * rill_udp_worst_insert - insert @r into @list (@count entries, most trouble first) after
 * the entries with as much trouble as it, keeping at most RILL_UDP_WORST_MAX: @r goes
 * nowhere when the list is full of worse or equal ones, and the last entry drops out to
 * make room otherwise. Returns the new count. For merging several ingresses' lists. Pure.
 */
uint32_t rill_udp_worst_insert(struct rill_udp_source_report list[RILL_UDP_WORST_MAX],
			       uint32_t count, const struct rill_udp_source_report *r);

/* rill_udp_ingress_producer - its producer handle (for an event loop's wake fd). */
struct rill_producer *rill_udp_ingress_producer(struct rill_udp_ingress *ing);

/*
 * rill_udp_frame_ipv4 - find the UDP payload in an Ethernet frame (an optional 802.1Q tag,
 * IPv4 without fragments, UDP to @udp_port). Returns 0 with @payload, @bytes, @src_ip and
 * @src_port set, -ENOENT for a frame that is not for us (another protocol or port), or
 * -EINVAL for one that breaks its own lengths. @from gets the source, the local address
 * and port it was sent to, and its 802.1Q tag. Pure: for DPDK's mbufs and for tests.
 */
int rill_udp_frame_ipv4(const uint8_t *frame, uint32_t frame_bytes, uint16_t udp_port,
			const uint8_t **payload, uint32_t *bytes, struct rill_udp_peer *from);

/* rill_udp_frame_headers - the bytes rill_udp_frame_build puts before the payload for
 * @to: 42 (Ethernet, IPv4, UDP), 46 with an 802.1Q tag. */
uint32_t rill_udp_frame_headers(const struct rill_udp_peer *to);

/*
 * rill_udp_frame_build - an Ethernet + IPv4 + UDP frame carrying @payload into @frame (room
 * for rill_udp_frame_headers(@to) + @bytes), from @from (its local side: our MAC @src_mac,
 * local_ip, local_port) to the peer (mac, ip, port, and its 802.1Q tag if it came with
 * one). Returns the frame's length. For ACK datagrams and test senders.
 */
uint32_t rill_udp_frame_build(uint8_t *frame, const uint8_t src_mac[6],
			      const struct rill_udp_peer *to, const void *payload, uint32_t bytes);

#endif /* RILL_IO_UDP_INGRESS_H */
