/*
 * What fuzz_udp and its seed generator share: the engine the datagrams go to (one shard,
 * unpinned, in a fresh directory under /tmp, no snapshots; one schema and two topics of
 * durability none whose logs keep little on disk), the sources a datagram may come from,
 * and the layout of an input:
 *
 *   byte 0, bit 0 = 1: an Ethernet frame follows (the rest of the input), as DPDK hands
 *     it over; what rill_udp_frame_ipv4 finds in it goes on to the ingress as a datagram
 *     from the source the frame names (bits 3 and 4 of byte 0 as a source byte's below).
 *   bit 0 = 0: a stream of datagrams follows, each as
 *     | source u8 (bits 0-2: one of UDP_FUZZ_SOURCES; bit 3: the ingress with ACKs on;
 *       bit 4: the records' CRCs made right first, tests/fuzz/crc_fix.h) |
 *     | length u16, little-endian | that many bytes |
 *     up to UDP_FUZZ_DATAGRAMS of them; a length past the input's end takes what is left.
 */
#ifndef RILL_TESTS_UDP_FUZZ_H
#define RILL_TESTS_UDP_FUZZ_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/udp_ingress.h"
#include "rill/rill.h"
#include "rill/schema.h"
#include "tests/common/test_dir.h"

#define UDP_FUZZ_TOPIC      "orders"
#define UDP_FUZZ_TOPIC_2    "refunds"
#define UDP_FUZZ_PORT       RILL_UDP_PORT
#define UDP_FUZZ_SOURCES    8u
#define UDP_FUZZ_DATAGRAMS  64u
#define UDP_FUZZ_FRAME_MODE 0x01u
#define UDP_FUZZ_ACKS_BIT   0x08u
#define UDP_FUZZ_FIX_CRC    0x10u

static const char udp_fuzz_schema_json[] =
	"{\"type\":\"OrderPlaced\",\"version\":1,\"fields\":[{\"name\":\"amount\",\"type\":"
	"\"i64\"},{\"name\":\"sku\",\"type\":\"string\",\"max_length\":16}]}";

struct udp_fuzz_env {
	char dir[64];
	struct rill_engine *engine;
	const struct rill_schema *schema;
};

/* Source @i of UDP_FUZZ_SOURCES: two ports on each of four hosts. */
static inline struct rill_udp_peer udp_fuzz_source(uint32_t i)
{
	struct rill_udp_peer p = {.ip = 0x0a000002u + (i % UDP_FUZZ_SOURCES) / 2,
				  .port = (uint16_t)(40000u + (i % UDP_FUZZ_SOURCES) % 2),
				  .mac = {0x02, 0, 0, 0, 0, (uint8_t)i},
				  .local_ip = 0x0a000001u,
				  .local_port = UDP_FUZZ_PORT};
	return p;
}

static inline void udp_fuzz_die(const char *what, int rc, const char *detail)
{
	fprintf(stderr, "udp fuzz setup: %s: %s%s%s\n", what, rill_strerror(rc),
		detail[0] ? ": " : "", detail);
	abort();
}

/* Open the engine, the schema and both topics; aborts on failure. */
static inline void udp_fuzz_open(struct udp_fuzz_env *e)
{
	memset(e, 0, sizeof(*e));
	int rc = test_dir_make(e->dir, sizeof(e->dir), "udp-fuzz");
	if (rc != 0)
		udp_fuzz_die("temporary directory", rc, "");
	struct rill_engine_config cfg;
	rill_engine_config_default(&cfg);
	cfg.data_dir = e->dir;
	cfg.shards = 1;
	cfg.pin = false;
	cfg.snapshots_off = true;
	struct rill_error_text err = {{0}};
	rc = rill_engine_open(&e->engine, &cfg, &err);
	if (rc != 0)
		udp_fuzz_die("engine", rc, err.message);
	struct rill_schema_error serr = {{0}};
	rc = rill_schema_register(rill_engine_schemas(e->engine), udp_fuzz_schema_json,
				  strlen(udp_fuzz_schema_json), -1, &e->schema, &serr);
	if (rc != 0)
		udp_fuzz_die("schema", rc, serr.message);
	/* A long fuzz run appends many events: small segments, and retention deletes them. */
	const char *names[] = {UDP_FUZZ_TOPIC, UDP_FUZZ_TOPIC_2};
	for (int i = 0; i < 2; i++) {
		struct rill_topic_config tc = {.name = names[i],
					       .partitions = 2,
					       .segment_bytes_max = 1u << 16,
					       .retention_bytes = 1u << 18};
		struct rill_topic *t;
		rc = rill_topic_create(e->engine, &tc, &t, &err);
		if (rc != 0)
			udp_fuzz_die("topic", rc, err.message);
	}
}

static inline void udp_fuzz_close(struct udp_fuzz_env *e)
{
	if (e->engine != NULL)
		rill_engine_close(e->engine);
	e->engine = NULL;
	if (e->dir[0] != '\0')
		test_dir_remove(e->dir);
	e->dir[0] = '\0';
}

#endif /* RILL_TESTS_UDP_FUZZ_H */
