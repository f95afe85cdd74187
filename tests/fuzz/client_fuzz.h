/*
 * What fuzz_client and its seed generator share: the layout of an input and its ops.
 *
 *   | config u8 | ops: CLIENT_FUZZ_OPS bytes | chunk | chunk | ... |
 *   chunk: | length u16, little-endian | that many bytes the server sends |
 *
 * config: bits 0-2 are inflight_max - 1; bit 3 asks for 64 KiB frames (frame_bytes_max)
 * rather than the server's limit. A chunk's length past the input's end takes what is left.
 * The first chunk goes out before the handshake (the HELLO_OK, or whatever the server says
 * instead), each later one at a CLIENT_FUZZ_RELEASE op.
 *
 * An op byte holds its opcode in the low nibble and an argument (0-15) in the high one.
 */
#ifndef RILL_TESTS_CLIENT_FUZZ_H
#define RILL_TESTS_CLIENT_FUZZ_H

#include <stdint.h>

#define CLIENT_FUZZ_OPS                 16u
#define CLIENT_FUZZ_HEAD_BYTES          (1u + CLIENT_FUZZ_OPS)
#define CLIENT_FUZZ_CONFIG_INFLIGHT     0x07u /* inflight_max - 1 */
#define CLIENT_FUZZ_CONFIG_SMALL_FRAMES 0x08u
#define CLIENT_FUZZ_NEXT_MANY           15u   /* next's argument for "past the credit top-up" */
#define CLIENT_FUZZ_NEXT_MANY_COUNT     1100u /* events: past RILL_CLIENT_CREDIT_EVENTS / 2 */
#define CLIENT_FUZZ_LARGE_STEP_BYTES    (8u << 10) /* a large event's payload, per arg + 1 */

/* The request ids a script's seeds can count on: the HELLO's is 0, and every request the
 * application makes (ping, admin, query, produce, subscribe) takes the next one from 1. */
enum client_fuzz_op {
	CLIENT_FUZZ_PING = 0,
	CLIENT_FUZZ_ADMIN = 1, /* op 1 + (arg & 7) */
	CLIENT_FUZZ_QUERY = 2,
	CLIENT_FUZZ_PRODUCE = 3,        /* 1 + (arg & 3) events, acks (arg >> 2) % 3 */
	CLIENT_FUZZ_PRODUCE_SEND = 4,   /* as PRODUCE */
	CLIENT_FUZZ_PRODUCE_WAIT = 5,   /* room for arg & 7 acks; arg & 8: no wait */
	CLIENT_FUZZ_SUBSCRIBE = 6,      /* arg & 1: partition 0, else all; from (arg >> 1) & 3 */
	CLIENT_FUZZ_NEXT = 7,           /* up to arg + 1 events (CLIENT_FUZZ_NEXT_MANY: more) */
	CLIENT_FUZZ_CORK = 8,           /* rill_client_cork */
	CLIENT_FUZZ_UNCORK = 9,         /* rill_client_uncork */
	CLIENT_FUZZ_BUFFERED = 10,      /* rill_client_buffered, _inflight and _fd */
	CLIENT_FUZZ_PRODUCE_LARGE = 11, /* produce_send of one (arg + 1) * 8 KiB event */
	CLIENT_FUZZ_BLOCK_SEND = 12,    /* the client's next send finds the socket full */
	CLIENT_FUZZ_RELEASE = 13,       /* the server sends its next chunk */
	CLIENT_FUZZ_HANG_UP = 14,       /* the server closes its end */
	CLIENT_FUZZ_NOP = 15,
};

static inline uint8_t client_fuzz_op(enum client_fuzz_op op, unsigned arg)
{
	return (uint8_t)((unsigned)op | (arg & 15u) << 4);
}

#endif /* RILL_TESTS_CLIENT_FUZZ_H */
