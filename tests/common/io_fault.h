/*
 * A fault-injecting view of a real I/O layer (engine/io.h): every call goes to the backend
 * it wraps, and one chosen call fails instead, before it reaches the backend, with a
 * chosen error; or, armed to crash (io_fault_arm_crash), the process is killed with
 * SIGKILL there instead, as a kill -9 or a crash would stop it between two calls. For the
 * engine's own files (engine_meta_io_create), which the simulator (tests/common/io_sim.h)
 * cannot reach since the shards write theirs to a real folder. Header-only; one thread at
 * a time (the engine's control calls are serialised).
 */
#ifndef RILL_TEST_IO_FAULT_H
#define RILL_TEST_IO_FAULT_H

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "engine/io.h"

struct io_fault {
	struct rill_io io;     /* first: the view handed out */
	struct rill_io *inner; /* the backend, destroyed with the view */
	uint64_t calls;        /* calls counted since io_fault_arm */
	uint64_t fail_at;      /* the call that fails; UINT64_MAX: none */
	int error;             /* what it fails with (-errno) */
	bool crash;            /* instead: the process killed there (SIGKILL) */
	bool hit;              /* the chosen call came, and failed */
	bool *hit_also;        /* set with hit, if not NULL: it outlives the view */
};

/* Count calls from now on; call @index (0: the next one) fails with @error (-errno). */
static inline void io_fault_arm(struct io_fault *f, uint64_t index, int error)
{
	f->calls = 0;
	f->fail_at = index;
	f->error = error;
	f->crash = false;
	f->hit = false;
}

/* Count calls from now on; at call @index the process kills itself with SIGKILL, before
 * the call reaches the backend: what it wrote so far stays as a crash leaves it (the page
 * cache survives, as it does a kill -9). For a forked child. */
static inline void io_fault_arm_crash(struct io_fault *f, uint64_t index)
{
	io_fault_arm(f, index, -EIO);
	f->crash = true;
}

static inline void io_fault_disarm(struct io_fault *f)
{
	f->fail_at = UINT64_MAX;
}

/* True if this call is the one that fails (and counts it). */
static inline bool io_fault_now(struct rill_io *io)
{
	struct io_fault *f = (struct io_fault *)io;
	if (f->fail_at == UINT64_MAX || f->calls++ != f->fail_at)
		return false;
	if (f->crash)
		kill(getpid(), SIGKILL); /* does not return */
	f->hit = true;
	if (f->hit_also != NULL)
		*f->hit_also = true;
	return true;
}

#define IO_FAULT_INNER(io) (((struct io_fault *)(io))->inner)
#define IO_FAULT_ERROR(io) (((struct io_fault *)(io))->error)

static inline int io_fault_open(struct rill_io *io, const char *path, unsigned flags, int *h)
{
	return io_fault_now(io) ? IO_FAULT_ERROR(io)
				: IO_FAULT_INNER(io)->ops->open(IO_FAULT_INNER(io), path, flags, h);
}

static inline int io_fault_close(struct rill_io *io, int handle)
{
	/* Closed all the same: a failed close still releases the descriptor (close(2)). */
	int rc = IO_FAULT_INNER(io)->ops->close(IO_FAULT_INNER(io), handle);
	return io_fault_now(io) ? IO_FAULT_ERROR(io) : rc;
}

static inline int io_fault_pread(struct rill_io *io, int handle, void *buf, size_t bytes,
				 uint64_t offset, size_t *got)
{
	return io_fault_now(io) ? IO_FAULT_ERROR(io)
				: IO_FAULT_INNER(io)->ops->pread(IO_FAULT_INNER(io), handle, buf,
								 bytes, offset, got);
}

static inline int io_fault_pwrite(struct rill_io *io, int handle, const void *buf, size_t bytes,
				  uint64_t offset)
{
	return io_fault_now(io) ? IO_FAULT_ERROR(io)
				: IO_FAULT_INNER(io)->ops->pwrite(IO_FAULT_INNER(io), handle, buf,
								  bytes, offset);
}

static inline int io_fault_fsync(struct rill_io *io, int handle)
{
	return io_fault_now(io) ? IO_FAULT_ERROR(io)
				: IO_FAULT_INNER(io)->ops->fsync(IO_FAULT_INNER(io), handle);
}

static inline int io_fault_truncate(struct rill_io *io, int handle, uint64_t bytes)
{
	return io_fault_now(io)
		       ? IO_FAULT_ERROR(io)
		       : IO_FAULT_INNER(io)->ops->truncate(IO_FAULT_INNER(io), handle, bytes);
}

static inline int io_fault_lock(struct rill_io *io, const char *path, int *handle)
{
	return io_fault_now(io) ? IO_FAULT_ERROR(io)
				: IO_FAULT_INNER(io)->ops->lock(IO_FAULT_INNER(io), path, handle);
}

static inline int io_fault_size(struct rill_io *io, int handle, uint64_t *bytes)
{
	return io_fault_now(io) ? IO_FAULT_ERROR(io)
				: IO_FAULT_INNER(io)->ops->size(IO_FAULT_INNER(io), handle, bytes);
}

static inline int io_fault_rename(struct rill_io *io, const char *from, const char *to)
{
	return io_fault_now(io) ? IO_FAULT_ERROR(io)
				: IO_FAULT_INNER(io)->ops->rename(IO_FAULT_INNER(io), from, to);
}

static inline int io_fault_unlink(struct rill_io *io, const char *path)
{
	return io_fault_now(io) ? IO_FAULT_ERROR(io)
				: IO_FAULT_INNER(io)->ops->unlink(IO_FAULT_INNER(io), path);
}

static inline int io_fault_mkdir(struct rill_io *io, const char *path)
{
	return io_fault_now(io) ? IO_FAULT_ERROR(io)
				: IO_FAULT_INNER(io)->ops->mkdir(IO_FAULT_INNER(io), path);
}

static inline int io_fault_fsync_dir(struct rill_io *io, const char *path)
{
	return io_fault_now(io) ? IO_FAULT_ERROR(io)
				: IO_FAULT_INNER(io)->ops->fsync_dir(IO_FAULT_INNER(io), path);
}

static inline int io_fault_list(struct rill_io *io, const char *path, rill_io_list_fn fn, void *arg)
{
	return io_fault_now(io) ? IO_FAULT_ERROR(io)
				: IO_FAULT_INNER(io)->ops->list(IO_FAULT_INNER(io), path, fn, arg);
}

static inline int io_fault_write_sync(struct rill_io *io, int handle, const void *buf, size_t bytes,
				      uint64_t offset, uint64_t token)
{
	return io_fault_now(io) ? IO_FAULT_ERROR(io)
				: IO_FAULT_INNER(io)->ops->write_sync(IO_FAULT_INNER(io), handle,
								      buf, bytes, offset, token);
}

static inline int io_fault_poll(struct rill_io *io, struct rill_io_completion *out, unsigned count,
				uint64_t wait_ns)
{
	return IO_FAULT_INNER(io)->ops->poll(IO_FAULT_INNER(io), out, count, wait_ns);
}

static inline void io_fault_destroy(struct rill_io *io)
{
	rill_io_destroy(IO_FAULT_INNER(io));
	free(io);
}

static const struct rill_io_ops io_fault_ops = {
	.open = io_fault_open,
	.close = io_fault_close,
	.pread = io_fault_pread,
	.pwrite = io_fault_pwrite,
	.fsync = io_fault_fsync,
	.truncate = io_fault_truncate,
	.lock = io_fault_lock,
	.size = io_fault_size,
	.rename = io_fault_rename,
	.unlink = io_fault_unlink,
	.mkdir = io_fault_mkdir,
	.fsync_dir = io_fault_fsync_dir,
	.list = io_fault_list,
	.write_sync = io_fault_write_sync,
	.poll = io_fault_poll,
	.destroy = io_fault_destroy,
};

/* A view over @inner (taken: destroyed with the view), disarmed. 0 or -ENOMEM. */
static inline int io_fault_create(struct rill_io *inner, struct io_fault **out)
{
	struct io_fault *f = calloc(1, sizeof(*f));
	if (f == NULL) {
		rill_io_destroy(inner);
		return -ENOMEM;
	}
	f->io = (struct rill_io){.ops = &io_fault_ops, .name = "fault"};
	f->inner = inner;
	f->fail_at = UINT64_MAX;
	*out = f;
	return 0;
}

#endif /* RILL_TEST_IO_FAULT_H */
