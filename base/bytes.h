/*
 * Unaligned little-endian loads and stores, for the formats rill reads in place: event
 * records, wire frames. memcpy of a fixed size, which compilers turn into one move; the
 * host is little-endian (base/compiler.h asserts it), so no byte swap. Any thread.
 */
#ifndef RILL_BASE_BYTES_H
#define RILL_BASE_BYTES_H

#include <stdint.h>
#include <string.h>

#include "base/compiler.h"

static inline uint16_t rill_ld16(const uint8_t *p)
{
	uint16_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

static inline uint32_t rill_ld32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

static inline uint64_t rill_ld64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

static inline double rill_ldf64(const uint8_t *p)
{
	double v;
	memcpy(&v, p, sizeof(v));
	return v;
}

static inline void rill_st16(uint8_t *p, uint16_t v)
{
	memcpy(p, &v, sizeof(v));
}

static inline void rill_st32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, sizeof(v));
}

static inline void rill_st64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, sizeof(v));
}

static inline void rill_stf64(uint8_t *p, double v)
{
	memcpy(p, &v, sizeof(v));
}

#endif /* RILL_BASE_BYTES_H */
