/*
 * Temporary directories for the tests (tests/common/test_dir.h). nftw needs the X/Open
 * interfaces, which this file asks for before any system header.
 */
#define _GNU_SOURCE
#include "tests/common/test_dir.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

int test_dir_make(char *dir, size_t size, const char *name)
{
	int n = snprintf(dir, size, "/tmp/rill-%s-XXXXXX", name);
	if (n < 0 || (size_t)n >= size)
		return -ENAMETOOLONG;
	return mkdtemp(dir) != NULL ? 0 : -errno;
}

static int test_dir_remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

int test_dir_remove(const char *dir)
{
	if (nftw(dir, test_dir_remove_entry, 16, FTW_DEPTH | FTW_PHYS) == 0)
		return 0;
	return errno == ENOENT ? 0 : -errno;
}
