/*
 * Temporary directories for the tests that write real files: made under /tmp from a name
 * (mkdtemp), and removed with everything below them (nftw, depth first, links not
 * followed, no shell). Built into every test (tests/meson.build). Any thread; blocks on
 * the file system.
 */
#ifndef RILL_TEST_DIR_H
#define RILL_TEST_DIR_H

#include <stddef.h>

/* Make a fresh directory /tmp/rill-@name-XXXXXX, its path into @dir (@size bytes): 0, or
 * -errno (-ENAMETOOLONG: @dir is too small). */
int test_dir_make(char *dir, size_t size, const char *name);

/* Remove @dir and everything below it: 0 (also when @dir is not there), or -errno of the
 * first entry that could not be removed. */
int test_dir_remove(const char *dir);

/* In a forked child only: a private mount namespace (in a user namespace of its own where
 * the user may not make one) with a tmpfs of @kib KiB on @dir, for a full disk on demand.
 * 0, or -errno where this system allows none (the test then skips). */
int test_tmpfs_private(const char *dir, unsigned kib);

#endif /* RILL_TEST_DIR_H */
