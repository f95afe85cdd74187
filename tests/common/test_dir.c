/*
 * Temporary directories for the tests (tests/common/test_dir.h). nftw needs the X/Open
 * interfaces, which this file asks for before any system header.
 */
#define _GNU_SOURCE
#include "tests/common/test_dir.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

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

static int test_file_put(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	size_t n = strlen(text);
	int rc = write(fd, text, n) == (ssize_t)n ? 0 : -EIO;
	close(fd);
	return rc;
}

int test_tmpfs_private(const char *dir, unsigned kib)
{
	uid_t uid = getuid();
	gid_t gid = getgid();
	if (unshare(CLONE_NEWNS) != 0) {
		if (unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0)
			return -errno;
		char map[64];
		snprintf(map, sizeof(map), "0 %u 1", (unsigned)uid);
		int ok = test_file_put("/proc/self/setgroups", "deny") == 0 &&
			 test_file_put("/proc/self/uid_map", map) == 0;
		snprintf(map, sizeof(map), "0 %u 1", (unsigned)gid);
		if (!ok || test_file_put("/proc/self/gid_map", map) != 0)
			return -EPERM;
	}
	/* Private: the tmpfs must not show in the parent's namespace. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
		return -errno;
	char options[32];
	snprintf(options, sizeof(options), "size=%uk", kib);
	return mount("rill-test", dir, "tmpfs", 0, options) == 0 ? 0 : -errno;
}
