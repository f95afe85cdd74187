/*
 * What fuzz_server and its seed generator share: the engine and server the connections go
 * to, and the layout of an input. The engine has two shards, unpinned, in a fresh
 * directory under /tmp, with no snapshots, the smallest rings (64 KiB: a PRODUCE frame of
 * many events fills one, and the connection stalls), small projection tables, one schema
 * (OrderPlaced), two topics of durability none whose logs keep little on disk, and one
 * projection; the server listens on an ephemeral loopback port with the smallest frame
 * limit (64 KiB), one frame's worth of bytes in flight per connection, 4 subscriptions
 * per connection and a 10 ms wait for query tokens.
 *
 * Shards sleep as soon as they are idle (no spin), so that on a small machine the fuzzer's
 * own thread gets the CPUs.
 *
 * An input:
 *
 *   byte 0: flags
 *     bit 0 (SERVER_FUZZ_HELLO): a valid HELLO goes first, then the stream
 *     bit 1 (SERVER_FUZZ_FIX_CRC): each whole PRODUCE frame's records get their CRCs
 *       right first (tests/fuzz/crc_fix.h), so mutations inside them reach the engine
 *     bit 2 (SERVER_FUZZ_FRAMED): the stream is given as pieces, | length u16 le | bytes |,
 *       each a frame whose header's body_bytes is set to its length less the header (a
 *       piece shorter than a header goes as it is): bytes inserted or taken out of a body
 *       keep the stream in step
 *     bit 3 (SERVER_FUZZ_SYNC): once the stream is sent, if it ends at a frame's end, a
 *       PING, and its PONG awaited before the end of stream: subscriptions get the time to
 *       send EVENTS, which stop at the peer's end of stream
 *     bit 4 (SERVER_FUZZ_RESET): the stream sent, the connection is reset (SO_LINGER 0),
 *       not half-closed: the server's close with requests in flight
 *     bits 5-6: how the stream is cut into sends (SERVER_FUZZ_CUT_*); bit 7: unused
 *   byte 1: the size of a piece for SERVER_FUZZ_CUT_PIECES, less one
 *   bytes 2..: the stream, as a peer sends it.
 *
 * Whether the server reads a cut on its own depends on timing (no sleeps): a cut gives it
 * the chance, not the certainty, to handle a partial frame.
 */
#ifndef RILL_TESTS_SERVER_FUZZ_H
#define RILL_TESTS_SERVER_FUZZ_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/wire.h"
#include "rill/rill.h"
#include "rill/schema.h"
#include "rill/server.h"
#include "tests/common/test_dir.h"

#define SERVER_FUZZ_SHARDS        2u
#define SERVER_FUZZ_TOPIC         "orders"
#define SERVER_FUZZ_TOPIC_2       "refunds"
#define SERVER_FUZZ_PARTITIONS    2u
#define SERVER_FUZZ_PROJECTION    "orders_total"
#define SERVER_FUZZ_FRAME_BYTES   RILL_WIRE_FRAME_BYTES_MIN
#define SERVER_FUZZ_CONN_INFLIGHT (SERVER_FUZZ_FRAME_BYTES + RILL_WIRE_HEADER_BYTES)
#define SERVER_FUZZ_CONNECTIONS   64u /* far more than an input leaves open: a leak shows */
#define SERVER_FUZZ_SUBS          4u  /* partitions one connection may subscribe */
#define SERVER_FUZZ_QUERY_WAIT_NS (10ull * 1000000u)
#define SERVER_FUZZ_SEGMENT_BYTES (64u << 10)
#define SERVER_FUZZ_RETENTION     (256u << 10)

#define SERVER_FUZZ_HELLO       0x01u
#define SERVER_FUZZ_FIX_CRC     0x02u
#define SERVER_FUZZ_FRAMED      0x04u
#define SERVER_FUZZ_SYNC        0x08u
#define SERVER_FUZZ_RESET       0x10u
#define SERVER_FUZZ_CUT_SHIFT   5u
#define SERVER_FUZZ_CUT_NONE    0u /* the whole stream in one send */
#define SERVER_FUZZ_CUT_FRAMES  1u /* a send per frame */
#define SERVER_FUZZ_CUT_PIECES  2u /* sends of byte 1 + 1 bytes (at most 256 of them) */
#define SERVER_FUZZ_CUT_HEADS   3u /* a send per frame header, then one per body */
#define SERVER_FUZZ_INPUT_BYTES 2u /* the flags and the piece size */

static const char server_fuzz_schema_json[] =
	"{\"type\":\"OrderPlaced\",\"version\":1,\"fields\":[{\"name\":\"amount\",\"type\":"
	"\"i64\"},{\"name\":\"sku\",\"type\":\"string\",\"max_length\":16}]}";

struct server_fuzz_env {
	char dir[64];
	struct rill_engine *engine;
	struct rill_server *server;
	const struct rill_schema *schema;
	uint16_t port;
};

static inline void server_fuzz_die(const char *what, int rc, const char *detail)
{
	fprintf(stderr, "server fuzz setup: %s: %s%s%s\n", what, rill_strerror(rc),
		detail[0] ? ": " : "", detail);
	abort();
}

/* Open the engine, the schema, both topics and the projection; aborts on failure. */
static inline void server_fuzz_open(struct server_fuzz_env *e)
{
	memset(e, 0, sizeof(*e));
	int rc = test_dir_make(e->dir, sizeof(e->dir), "server-fuzz");
	if (rc != 0)
		server_fuzz_die("temporary directory", rc, "");
	struct rill_engine_config cfg;
	rill_engine_config_default(&cfg);
	cfg.data_dir = e->dir;
	cfg.shards = SERVER_FUZZ_SHARDS;
	cfg.pin = false;
	cfg.snapshots_off = true;
	cfg.ring_bytes = 64u << 10;
	cfg.ack_ring_bytes = 64u << 10;
	cfg.projection_keys_max = 256;
	cfg.projection_key_store_bytes = 16u << 10;
	cfg.subscriptions_per_shard = 16;
	cfg.idle_spin_ns = 0; /* idle shards sleep at once: the CPUs go to the fuzzer */
	struct rill_error_text err = {{0}};
	rc = rill_engine_open(&e->engine, &cfg, &err);
	if (rc != 0)
		server_fuzz_die("engine", rc, err.message);
	struct rill_schema_error serr = {{0}};
	rc = rill_schema_register(rill_engine_schemas(e->engine), server_fuzz_schema_json,
				  strlen(server_fuzz_schema_json), -1, &e->schema, &serr);
	if (rc != 0)
		server_fuzz_die("schema", rc, serr.message);
	/* A long fuzz run appends many events: small segments, and retention deletes them. */
	const char *names[] = {SERVER_FUZZ_TOPIC, SERVER_FUZZ_TOPIC_2};
	for (int i = 0; i < 2; i++) {
		struct rill_topic_config tc = {.name = names[i],
					       .partitions = SERVER_FUZZ_PARTITIONS,
					       .segment_bytes_max = SERVER_FUZZ_SEGMENT_BYTES,
					       .retention_bytes = SERVER_FUZZ_RETENTION};
		struct rill_topic *t;
		rc = rill_topic_create(e->engine, &tc, &t, &err);
		if (rc != 0)
			server_fuzz_die("topic", rc, err.message);
	}
	struct rill_projection_def pd = {.name = SERVER_FUZZ_PROJECTION,
					 .topic = SERVER_FUZZ_TOPIC,
					 .type = "OrderPlaced",
					 .kind = RILL_PROJECTION_SUM,
					 .field = "amount"};
	rc = rill_projection_define(e->engine, &pd, &err);
	if (rc != 0)
		server_fuzz_die("projection", rc, err.message);
}

/* Start the server in front of the engine: 0, or rill_server_start's error with @err. */
static inline int server_fuzz_serve(struct server_fuzz_env *e, struct rill_error_text *err)
{
	struct rill_server_config sc;
	rill_server_config_default(&sc);
	sc.listen = "127.0.0.1:0";
	sc.frame_bytes_max = SERVER_FUZZ_FRAME_BYTES;
	sc.conn_inflight_bytes_max = SERVER_FUZZ_CONN_INFLIGHT;
	sc.server_inflight_bytes_max = 4 * SERVER_FUZZ_CONN_INFLIGHT;
	sc.connections_max = SERVER_FUZZ_CONNECTIONS;
	sc.subscriptions_max = SERVER_FUZZ_SUBS;
	sc.query_wait_ns = SERVER_FUZZ_QUERY_WAIT_NS;
	int rc = rill_server_start(&e->server, e->engine, &sc, err);
	if (rc == 0)
		e->port = rill_server_port(e->server);
	return rc;
}

/* Stop the server (draining for up to @drain_ns): its rill_server_stop's answer, 0 with
 * none. Then close the engine and remove the directory. */
static inline int server_fuzz_close(struct server_fuzz_env *e, uint64_t drain_ns)
{
	int rc = 0;
	if (e->server != NULL)
		rc = rill_server_stop(e->server, drain_ns);
	e->server = NULL;
	if (e->engine != NULL)
		rill_engine_close(e->engine);
	e->engine = NULL;
	if (e->dir[0] != '\0')
		test_dir_remove(e->dir);
	e->dir[0] = '\0';
	return rc;
}

#endif /* RILL_TESTS_SERVER_FUZZ_H */
