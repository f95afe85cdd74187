/*
 * Assertions (STYLE rule 10). RILL_ASSERT stays on in release builds and aborts through one
 * handler that prints the file, line and expression; RILL_DASSERT is for per-event checks on
 * hot paths and compiles out unless RILL_DEBUG is defined (debug builds). Never assert on an
 * operating error (a full disk, a bad frame): those are handled and returned.
 */
#ifndef RILL_BASE_ASSERT_H
#define RILL_BASE_ASSERT_H

#include "compiler.h"

/* Print "file:line: function: assertion `expr' failed" to stderr and abort(). */
_Noreturn void rill_assert_fail(const char *expr, const char *file, int line, const char *func);

#define RILL_ASSERT(expr)                                                                          \
	do {                                                                                       \
		if (rill_unlikely(!(expr)))                                                        \
			rill_assert_fail(#expr, __FILE__, __LINE__, __func__);                     \
	} while (0)

#ifdef RILL_DEBUG
#define RILL_DASSERT(expr) RILL_ASSERT(expr)
#else
#define RILL_DASSERT(expr) ((void)sizeof(!(expr)))
#endif

#endif /* RILL_BASE_ASSERT_H */
