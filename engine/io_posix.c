/*
 * The POSIX backend of the I/O layer (io.h): plain system calls; write_sync runs pwrite and
 * fdatasync in the calling thread and queues the completion for the next poll. Used where
 * io_uring is not available and by the offline tools. Cold path except write_sync.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/file.h>
#include <unistd.h>

#include "base/assert.h"
#include "io_int.h"

struct io_posix {
	struct rill_io io;
	struct rill_io_completion done[RILL_IO_INFLIGHT_MAX];
	unsigned done_count;
};

/*
 * A direct handle only where the kernel confirms that RILL_IO_DIRECT_ALIGN suffices
 * (statx's DIOALIGN, Linux 6.1 on): a misaligned O_DIRECT write fails with EINVAL, which
 * would stop the log, so an unknown alignment means no direct writes.
 */
static int posix_open_direct(const char *path, int *handle)
{
#ifndef STATX_DIOALIGN /* UAPI headers before Linux 6.1: no way to ask */
	(void)path;
	(void)handle;
	return -EOPNOTSUPP;
#else
	int fd = open(path, O_WRONLY | O_DIRECT | O_CLOEXEC);
	if (fd < 0)
		return errno == EINVAL ? -EOPNOTSUPP : -errno;
	struct statx st;
	bool ok = statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &st) == 0 &&
		  (st.stx_mask & STATX_DIOALIGN) && st.stx_dio_offset_align != 0 &&
		  RILL_IO_DIRECT_ALIGN % st.stx_dio_offset_align == 0 &&
		  st.stx_dio_mem_align != 0 && RILL_IO_DIRECT_ALIGN % st.stx_dio_mem_align == 0;
	if (!ok) {
		close(fd);
		return -EOPNOTSUPP;
	}
	*handle = fd;
	return 0;
#endif
}

static int posix_open(struct rill_io *io, const char *path, unsigned flags, int *handle)
{
	(void)io;
	if (flags & RILL_IO_DIRECT)
		return posix_open_direct(path, handle);
	int oflags = O_CLOEXEC | ((flags & RILL_IO_RDONLY) ? O_RDONLY : O_RDWR);
	if (flags & RILL_IO_CREATE)
		oflags |= O_CREAT;
	int fd = open(path, oflags, 0644);
	if (fd < 0)
		return -errno;
	*handle = fd;
	return 0;
}

/* flock: per open file description, so a second open in this process conflicts too. */
static int posix_lock(struct rill_io *io, const char *path, int *handle)
{
	(void)io;
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		int rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
		close(fd);
		return rc;
	}
	*handle = fd;
	return 0;
}

static int posix_close(struct rill_io *io, int handle)
{
	(void)io;
	return close(handle) == 0 ? 0 : -errno;
}

static int posix_pread(struct rill_io *io, int handle, void *buf, size_t bytes, uint64_t offset,
		       size_t *got)
{
	(void)io;
	size_t done = 0;
	while (done < bytes) {
		ssize_t n = pread(handle, (char *)buf + done, bytes - done, (off_t)(offset + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		done += (size_t)n;
	}
	*got = done;
	return 0;
}

static int posix_pwrite(struct rill_io *io, int handle, const void *buf, size_t bytes,
			uint64_t offset)
{
	(void)io;
	size_t done = 0;
	while (done < bytes) {
		ssize_t n = pwrite(handle, (const char *)buf + done, bytes - done,
				   (off_t)(offset + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO; /* no progress on a regular file: treat as an I/O error */
		done += (size_t)n;
	}
	return 0;
}

static int posix_fsync(struct rill_io *io, int handle)
{
	(void)io;
	return fsync(handle) == 0 ? 0 : -errno;
}

static int posix_truncate(struct rill_io *io, int handle, uint64_t bytes)
{
	(void)io;
	return ftruncate(handle, (off_t)bytes) == 0 ? 0 : -errno;
}

static int posix_size(struct rill_io *io, int handle, uint64_t *bytes)
{
	(void)io;
	struct stat st;
	if (fstat(handle, &st) != 0)
		return -errno;
	*bytes = (uint64_t)st.st_size;
	return 0;
}

static int posix_rename(struct rill_io *io, const char *from, const char *to)
{
	(void)io;
	return rename(from, to) == 0 ? 0 : -errno;
}

static int posix_unlink(struct rill_io *io, const char *path)
{
	(void)io;
	return unlink(path) == 0 ? 0 : -errno;
}

static int posix_mkdir(struct rill_io *io, const char *path)
{
	(void)io;
	if (mkdir(path, 0755) == 0 || errno == EEXIST)
		return 0;
	return -errno;
}

static int posix_fsync_dir(struct rill_io *io, const char *path)
{
	(void)io;
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = fsync(fd) == 0 ? 0 : -errno;
	close(fd);
	return rc;
}

static int posix_list(struct rill_io *io, const char *path, rill_io_list_fn fn, void *arg)
{
	(void)io;
	DIR *dir = opendir(path);
	if (dir == NULL)
		return -errno;
	int rc = 0;
	for (;;) {
		errno = 0; /* readdir's NULL is the end, or an error (a failing disk): errno says */
		struct dirent *entry = readdir(dir);
		if (entry == NULL) {
			rc = errno != 0 ? -errno : 0;
			break;
		}
		if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0)
			continue;
		if ((rc = fn(arg, entry->d_name)) != 0)
			break;
	}
	closedir(dir);
	return rc;
}

static int posix_write_sync(struct rill_io *io, int handle, const void *buf, size_t bytes,
			    uint64_t offset, uint64_t token)
{
	struct io_posix *p = (struct io_posix *)io;
	if (p->done_count == RILL_IO_INFLIGHT_MAX)
		return -EBUSY;
	int rc = posix_pwrite(io, handle, buf, bytes, offset);
	if (rc == 0 && fdatasync(handle) != 0)
		rc = -errno;
	p->done[p->done_count++] = (struct rill_io_completion){.token = token, .result = rc};
	return 0;
}

static int posix_poll(struct rill_io *io, struct rill_io_completion *out, unsigned count,
		      uint64_t wait_ns)
{
	(void)wait_ns; /* everything completed at submission */
	struct io_posix *p = (struct io_posix *)io;
	unsigned n = p->done_count < count ? p->done_count : count;
	memcpy(out, p->done, n * sizeof(*out));
	memmove(p->done, p->done + n, (p->done_count - n) * sizeof(*out));
	p->done_count -= n;
	return (int)n;
}

static void posix_destroy(struct rill_io *io)
{
	free(io);
}

const struct rill_io_ops rill_io_posix_ops = {
	.lock = posix_lock,
	.open = posix_open,
	.close = posix_close,
	.pread = posix_pread,
	.pwrite = posix_pwrite,
	.fsync = posix_fsync,
	.truncate = posix_truncate,
	.size = posix_size,
	.rename = posix_rename,
	.unlink = posix_unlink,
	.mkdir = posix_mkdir,
	.fsync_dir = posix_fsync_dir,
	.list = posix_list,
	.write_sync = posix_write_sync,
	.poll = posix_poll,
	.destroy = posix_destroy,
};

int rill_io_posix_create(struct rill_io **out)
{
	struct io_posix *p = calloc(1, sizeof(*p));
	if (p == NULL)
		return -ENOMEM;
	p->io.ops = &rill_io_posix_ops;
	p->io.name = "posix";
	*out = &p->io;
	return 0;
}
