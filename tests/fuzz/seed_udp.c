/*
 * Writes a seed corpus for fuzz_udp into the folder given (layout in udp_fuzz.h): streams
 * of valid event datagrams from several sources, in order, with a gap, reordered, repeated,
 * to both ingresses (ACKs off and on), their records' CRCs made right by the fuzzer
 * or not (they are right already: its mutations' are not); an unknown topic, a bad CRC and a short datagram;
 * and Ethernet frames carrying a datagram, plain and with an 802.1Q tag. The events are
 * valid for the schema of the fuzzer's engine, which this opens too (for the type id and
 * the payload layout), in a temporary directory removed at the end.
 */
#include <stdio.h>
#include <string.h>

#include "io/wire.h"
#include "rill/record.h"
#include "tests/fuzz/udp_fuzz.h"

#define SEED_BYTES 8192u

static struct udp_fuzz_env env;
static int seed_index;

static void write_seed(const char *dir, const uint8_t *bytes, size_t size)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/seed-%02d", dir, seed_index++);
	FILE *f = fopen(path, "wb");
	if (f == NULL || fwrite(bytes, 1, size, f) != size || fclose(f) != 0) {
		perror(path);
		exit(1);
	}
}

/* A datagram's payload into @buf: a PRODUCE frame to @topic, request_id @seq, @count
 * events. Its length. */
static uint32_t datagram(uint8_t *buf, size_t cap, const char *topic, uint64_t seq, uint32_t count)
{
	int at = rill_wire_produce_begin(buf, cap, seq, 0, topic, strlen(topic));
	if (at < 0)
		abort();
	for (uint32_t i = 0; i < count; i++) {
		uint8_t payload[128];
		uint32_t payload_bytes = 0;
		struct rill_payload_builder b;
		if (rill_payload_builder_init(&b, env.schema, payload, sizeof(payload)) != 0 ||
		    rill_payload_set_i64(&b, 0, (int64_t)(seq * 10 + i)) != 0 ||
		    rill_payload_set_var(&b, 1, "sku-1", 5) != 0 ||
		    rill_payload_builder_finish(&b, &payload_bytes, NULL) != 0)
			abort();
		char key[32];
		snprintf(key, sizeof(key), "k%u", (unsigned)(seq * 10 + i));
		struct rill_record rec = {.type_id = rill_schema_type_id(env.schema),
					  .schema_version = 1,
					  .key = key,
					  .key_bytes = (uint16_t)strlen(key),
					  .payload = payload,
					  .payload_bytes = payload_bytes};
		int n = rill_record_encode(buf + at, cap - (size_t)at, &rec);
		if (n < 0)
			abort();
		at += n;
	}
	rill_wire_produce_finish(buf, (uint32_t)at, count);
	return (uint32_t)at;
}

/* Append one datagram of a stream input: | source | length u16 le | bytes |. */
static size_t stream_add(uint8_t *in, size_t at, uint8_t source, const uint8_t *d, uint32_t n)
{
	if (at + 3 + n > SEED_BYTES)
		abort();
	in[at] = source;
	in[at + 1] = (uint8_t)n;
	in[at + 2] = (uint8_t)(n >> 8);
	memcpy(in + at + 3, d, n);
	return at + 3 + n;
}

static void streams(const char *dir)
{
	static uint8_t in[SEED_BYTES], d[2048];
	/* Each with the records' CRCs left as they are and made right: a mutation of the
	 * latter's records goes on to the write model. */
	for (uint8_t acks = 0; acks <= (UDP_FUZZ_ACKS_BIT | UDP_FUZZ_FIX_CRC);
	     acks += UDP_FUZZ_ACKS_BIT) {
		/* Three sources in order, interleaved. */
		size_t at = 1;
		in[0] = 0;
		for (uint64_t seq = 1; seq <= 3; seq++)
			for (uint8_t s = 0; s < 3; s++)
				at = stream_add(in, at, s | acks, d,
						datagram(d, sizeof(d), UDP_FUZZ_TOPIC, seq, 1 + s));
		write_seed(dir, in, at);
		/* One source: 1, 2, a gap (4 before 3), a repeat of 2, the other topic. */
		const uint64_t seqs[] = {1, 2, 4, 3, 2, 5};
		at = 1;
		for (size_t i = 0; i < sizeof(seqs) / sizeof(seqs[0]); i++)
			at = stream_add(in, at, 5 | acks, d,
					datagram(d, sizeof(d),
						 i == 5 ? UDP_FUZZ_TOPIC_2 : UDP_FUZZ_TOPIC,
						 seqs[i], 2));
		write_seed(dir, in, at);
	}
	/* Refused ones: an unknown topic, a flipped bit under a CRC, a cut datagram. */
	size_t at = 1;
	in[0] = 0;
	at = stream_add(in, at, 1, d, datagram(d, sizeof(d), "nosuch", 1, 1));
	uint32_t n = datagram(d, sizeof(d), UDP_FUZZ_TOPIC, 2, 2);
	d[n - 3] ^= 0x10;
	at = stream_add(in, at, 1, d, n);
	n = datagram(d, sizeof(d), UDP_FUZZ_TOPIC, 3, 1);
	at = stream_add(in, at, 1, d, n / 2);
	write_seed(dir, in, at);
}

static void frames(const char *dir)
{
	static uint8_t in[SEED_BYTES], d[2048];
	struct rill_udp_peer src = udp_fuzz_source(2);
	/* From the source to us: frame_build writes from its "local" side to its peer. */
	struct rill_udp_peer to = {.ip = src.local_ip,
				   .port = src.local_port,
				   .mac = {0x02, 0x52, 0x49, 0x4c, 0x4c, 0x01},
				   .local_ip = src.ip,
				   .local_port = src.port};
	for (uint8_t acks = 0; acks <= (UDP_FUZZ_ACKS_BIT | UDP_FUZZ_FIX_CRC);
	     acks += UDP_FUZZ_ACKS_BIT) {
		uint32_t n = datagram(d, sizeof(d), UDP_FUZZ_TOPIC, 1, 3);
		in[0] = UDP_FUZZ_FRAME_MODE | acks;
		uint32_t f = rill_udp_frame_build(in + 1, src.mac, &to, d, n);
		write_seed(dir, in, 1 + f);
		/* The same with an 802.1Q tag (VLAN 5) after the two MAC addresses. */
		memmove(in + 1 + 16, in + 1 + 12, f - 12);
		const uint8_t tag[4] = {0x81, 0x00, 0x00, 0x05};
		memcpy(in + 1 + 12, tag, sizeof(tag));
		write_seed(dir, in, 1 + f + 4);
	}
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: seed_udp DIR\n");
		return 2;
	}
	udp_fuzz_open(&env);
	streams(argv[1]);
	frames(argv[1]);
	udp_fuzz_close(&env);
	return 0;
}
