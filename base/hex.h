/*
 * Hex text to bytes, for the JSON form of bytes values and the CLI's payload lines. Written
 * here because none of rill's libraries exports it (jansson has no bytes type) and it is a
 * dozen lines. Header-only; pure, any thread.
 */
#ifndef RILL_BASE_HEX_H
#define RILL_BASE_HEX_H

#include <stddef.h>
#include <stdint.h>

/* The value of hex digit @c (either case), or -1. */
static inline int rill_hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * rill_hex_decode - decode the @len (even) hex digits at @text into @out (@len / 2 bytes).
 * Returns @len, or the index of the first character that is not a hex digit.
 */
static inline size_t rill_hex_decode(const char *text, size_t len, uint8_t *out)
{
	for (size_t i = 0; i + 1 < len; i += 2) {
		int h = rill_hex_digit(text[i]), l = rill_hex_digit(text[i + 1]);
		if (h < 0)
			return i;
		if (l < 0)
			return i + 1;
		out[i / 2] = (uint8_t)(h << 4 | l);
	}
	return len;
}

#endif /* RILL_BASE_HEX_H */
