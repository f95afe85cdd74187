/*
 * The file I/O layer under the log. Every file the log touches goes through one ops table,
 * so that tests can swap the real backend for a simulated one that injects errors and
 * power cuts (tests/common/io_sim.c) — kill -9 alone never tests fdatasync, since the page
 * cache survives it, and an LD_PRELOAD shim cannot see io_uring.
 *
 * Two kinds of call:
 *   - synchronous metadata and read calls (open, pread, truncate, rename, directory fsync,
 *     listing), used at open, recovery, roll and by readers;
 *   - the one asynchronous call on the append path, write_sync: write a buffer at an offset
 *     and fdatasync the file, as one unit whose completion is reported later by poll. The
 *     io_uring backend issues it as a linked write + fdatasync pair; the POSIX backend
 *     runs it at once and queues the completion.
 *
 * Handles are small non-negative integers chosen by the backend. All calls return 0 or
 * -errno. Threading: an rill_io belongs to one thread (a shard); calls never block except
 * where noted, and blocking calls are the synchronous ones.
 */
#ifndef RILL_ENGINE_IO_H
#define RILL_ENGINE_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rill_io;

/* Open flags. */
#define RILL_IO_CREATE 1u /* create the file if missing (mode 0644) */
#define RILL_IO_RDONLY 2u /* read only; otherwise read and write */
/*
 * Write only, straight to the device (O_DIRECT), for a second handle next to an ordinary
 * one, used by write_sync alone: every write on it must have its buffer address, length
 * and file offset multiples of RILL_IO_DIRECT_ALIGN. -EOPNOTSUPP when the file system
 * cannot promise that alignment suffices (the caller writes through the page cache).
 */
#define RILL_IO_DIRECT       4u
#define RILL_IO_DIRECT_ALIGN 512u

/* A finished write_sync: its token and result (0, or -errno from the write or the sync; a
 * write that came short is an error, and says why: -ENOSPC on a full disk, as every
 * backend reports it, not -EIO). */
struct rill_io_completion {
	uint64_t token;
	int result;
};

typedef int (*rill_io_list_fn)(void *arg, const char *name);

struct rill_io_ops {
	int (*open)(struct rill_io *io, const char *path, unsigned flags, int *handle);
	int (*close)(struct rill_io *io, int handle);
	/* Reads up to @bytes; *got is what was read (short at end of file). */
	int (*pread)(struct rill_io *io, int handle, void *buf, size_t bytes, uint64_t offset,
		     size_t *got);
	/* Synchronous full write (no sync): segment headers, index files. */
	int (*pwrite)(struct rill_io *io, int handle, const void *buf, size_t bytes,
		      uint64_t offset);
	int (*fsync)(struct rill_io *io, int handle); /* data and metadata */
	int (*truncate)(struct rill_io *io, int handle, uint64_t bytes);
	/*
	 * Take an exclusive lock on the file @path (created if missing) without waiting:
	 * -EBUSY while any other handle holds it, in this process or another. The lock lasts
	 * until @handle is closed (or the process dies).
	 */
	int (*lock)(struct rill_io *io, const char *path, int *handle);
	int (*size)(struct rill_io *io, int handle, uint64_t *bytes);
	int (*rename)(struct rill_io *io, const char *from, const char *to);
	int (*unlink)(struct rill_io *io, const char *path);
	int (*mkdir)(struct rill_io *io, const char *path); /* 0 if it exists already */
	int (*fsync_dir)(struct rill_io *io, const char *path);
	/* Calls @fn for each entry of directory @path but . and ..; stops at a non-zero return. */
	int (*list)(struct rill_io *io, const char *path, rill_io_list_fn fn, void *arg);
	/*
	 * Write @bytes at @offset then fdatasync, completing later with @token. The buffer must
	 * stay untouched until then. At most RILL_IO_INFLIGHT_MAX calls in flight.
	 */
	int (*write_sync)(struct rill_io *io, int handle, const void *buf, size_t bytes,
			  uint64_t offset, uint64_t token);
	/*
	 * Up to @count finished write_syncs into @out; returns how many (0 .. count) or -errno.
	 * @wait_ns: 0 to poll, otherwise block up to that long for at least one. With @count 0
	 * it only waits (until one has finished or the time is up) and reaps nothing.
	 */
	int (*poll)(struct rill_io *io, struct rill_io_completion *out, unsigned count,
		    uint64_t wait_ns);
	/*
	 * Optional (NULL where the backend has no use for it): pin [@base, @base + @bytes) for
	 * write_sync calls from inside it (io_uring fixed buffers: no page pinning per write).
	 * Returns 0 or -errno; callers go on unregistered after a failure.
	 */
	int (*buffer_register)(struct rill_io *io, void *base, size_t bytes);
	void (*buffer_unregister)(struct rill_io *io, void *base);
	/*
	 * Optional (NULL where write_sync completes at submission): signal the eventfd @fd
	 * each time a write_sync completes, so that a thread blocked on @fd wakes for it (a
	 * shard sleeping in adaptive mode). Returns 0 or -errno.
	 */
	int (*notify)(struct rill_io *io, int fd);
	/*
	 * Optional (NULL where the backend has no kernel workers): run the kernel's workers
	 * for the calling thread's submissions (io_uring's io-wq, which does every fdatasync)
	 * on @cpus only (@count > 0 of them, each below RILL_CPUS_MAX). Without it they run
	 * where the kernel puts them: on the project's kernel (6.18) exactly where the thread
	 * is pinned, so a shard pinned to one CPU was preempted on that very CPU by its own
	 * syncs; on others anywhere in the cpuset, that CPU included. Call on the submitting
	 * thread before it submits anything else. Returns 0 or -errno (kernels before 5.14:
	 * -EINVAL); the backend works either way.
	 */
	int (*worker_cpus)(struct rill_io *io, const int *cpus, unsigned count);
	void (*destroy)(struct rill_io *io);
};

struct rill_io {
	const struct rill_io_ops *ops;
	const char *name; /* "posix", "uring", "sim" */
};

/* write_syncs in flight on one backend: one per log, and a shard's logs share its backend
 * (through rill_io_mux), so this also bounds the partitions of one shard. */
#define RILL_IO_INFLIGHT_MAX 64u

/*
 * rill_io_posix_create - the portable backend: plain system calls, write_sync done in the
 * calling thread. Returns 0 or -ENOMEM.
 */
int rill_io_posix_create(struct rill_io **out);

/*
 * rill_io_uring_create - the io_uring backend (linked write + fdatasync). Returns 0, or
 * -errno when the kernel refuses a ring (callers fall back to POSIX and say so).
 */
int rill_io_uring_create(struct rill_io **out);

/*
 * A shard has one backend (one io_uring) and many logs, each of which assumes that the
 * completions it polls are its own. A mux shares one backend among views: each view is an
 * rill_io of its own for one log, and a completion reaped through any view is kept for the
 * view that submitted it. Same thread as the backend; the backend outlives the mux.
 */
struct rill_io_mux;

/* rill_io_mux_create - a mux over @base. Returns 0 or -ENOMEM. */
int rill_io_mux_create(struct rill_io_mux **out, struct rill_io *base);

/*
 * rill_io_mux_view - a new view: an rill_io whose write_sync and poll go through the mux
 * and whose other calls go straight to the backend. rill_io_destroy frees the view only.
 * Returns 0 or -ENOMEM.
 */
int rill_io_mux_view(struct rill_io_mux *mux, struct rill_io **out);

/* rill_io_mux_reap - reap every finished write_sync now, for its view. 0 or -errno. */
int rill_io_mux_reap(struct rill_io_mux *mux);

/* rill_io_mux_queued - completions reaped and not yet polled by their views. */
uint32_t rill_io_mux_queued(const struct rill_io_mux *mux);

/* rill_io_mux_destroy - free the mux; every view must be destroyed already. */
void rill_io_mux_destroy(struct rill_io_mux *mux);

/*
 * rill_io_replace_file - make @path (in directory @dir) hold exactly @bytes of @buf, so
 * that a crash leaves the old file or the new one, never a mix: write @tmp (same
 * directory), fsync it, rename it over @path, fsync @dir. Returns 0 or -errno. A failure
 * before the rename removes @tmp (best effort: only a crash, or a disk that fails the
 * removal too, leaves it, and callers remove leftovers at open); one after it leaves
 * @path holding @buf, its directory entry perhaps not durable. Blocks.
 */
int rill_io_replace_file(struct rill_io *io, const char *dir, const char *tmp, const char *path,
			 const void *buf, size_t bytes);

/*
 * rill_io_replace_file_unsynced - the same without any fsync, for files that can be
 * rebuilt (a log's index files): after a power cut @path may hold the old content, the
 * new, or a damaged mix, and its reader must tell. @tmp is removed on failure as above.
 * Returns 0 or -errno. Blocks.
 */
int rill_io_replace_file_unsynced(struct rill_io *io, const char *tmp, const char *path,
				  const void *buf, size_t bytes);

/*
 * rill_io_fsync_parent - fsync the directory holding @path (a folder just made, or found:
 * its entry in its parent survives a power cut once this returns 0). Returns 0 or -errno.
 * Blocks.
 */
int rill_io_fsync_parent(struct rill_io *io, const char *path);

static inline void rill_io_destroy(struct rill_io *io)
{
	if (io != NULL)
		io->ops->destroy(io);
}

#endif /* RILL_ENGINE_IO_H */
