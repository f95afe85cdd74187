/*
 * The io_uring backend of the I/O layer (io.h). write_sync is one linked pair of SQEs, a
 * write then an fdatasync (IOSQE_IO_LINK: the sync starts only after the write completed in
 * full, and is cancelled if the write failed or was short), submitted in one syscall. Both
 * CQEs are gathered before the call is reported complete; a short write is a failure, whose
 * cause the rest written again tells (uring_short_write_cause). Everything else is the POSIX
 * backend's. Runs on the owning shard's thread; poll may block up to its wait.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include <liburing.h>

#include "base/assert.h"
#include "io_int.h"

#define URING_ENTRIES 256u /* two SQEs per write_sync, RILL_IO_INFLIGHT_MAX of them, and room */
_Static_assert(URING_ENTRIES >= 2 * RILL_IO_INFLIGHT_MAX, "a ring holds every pair in flight");
_Static_assert(RILL_IO_INFLIGHT_MAX <= 0x100u, "a slot index fits the low byte of user_data");

/* user_data: the slot index in the low bits, which half of the pair in bit 8. */
#define URING_TAG_SYNC 0x100u
#define URING_TAG_NOP  0x200u /* uring_worker_cpus's, reaped there */

struct uring_pending {
	bool used;
	bool write_done, sync_done;
	int write_res, sync_res;
	uint32_t bytes;
	uint64_t token;
	/* The write itself, for the rest of a short one (uring_short_write_cause). */
	int handle;
	const uint8_t *buf;
	uint64_t offset; /* in the file, bytes */
};

#define URING_BUFFERS_MAX 64u /* registered regions: a shard's partitions' batch buffers */

struct uring_buffer {
	uint8_t *base; /* NULL: free slot */
	size_t bytes;
};

/* io_uring_submit, or a test's stand-in (rill_io_uring_submit_hook). */
static int (*uring_submit)(struct io_uring *ring) = io_uring_submit;

void rill_io_uring_submit_hook(int (*fn)(struct io_uring *ring))
{
	uring_submit = fn != NULL ? fn : io_uring_submit;
}

struct io_uring_backend {
	struct rill_io io;
	struct rill_io_ops ops;
	bool buffers_ok; /* the sparse buffer table was registered */
	struct uring_buffer buffers[URING_BUFFERS_MAX];
	int broken; /* a submission failed half-way: every later call returns this */
	struct io_uring ring;
	struct uring_pending pending[RILL_IO_INFLIGHT_MAX];
};

/* The registered buffer holding [buf, buf + bytes), or -1. */
static int uring_buffer_find(const struct io_uring_backend *u, const void *buf, size_t bytes)
{
	const uint8_t *p = buf;
	for (unsigned i = 0; i < URING_BUFFERS_MAX; i++) {
		const struct uring_buffer *b = &u->buffers[i];
		if (b->base != NULL && p >= b->base && p + bytes <= b->base + b->bytes)
			return (int)i;
	}
	return -1;
}

static int uring_buffer_register(struct rill_io *io, void *base, size_t bytes)
{
	struct io_uring_backend *u = (struct io_uring_backend *)io;
	if (!u->buffers_ok)
		return -ENOTSUP;
	for (unsigned i = 0; i < URING_BUFFERS_MAX; i++) {
		if (u->buffers[i].base != NULL)
			continue;
		struct iovec iov = {.iov_base = base, .iov_len = bytes};
		int rc = io_uring_register_buffers_update_tag(&u->ring, i, &iov, NULL, 1);
		if (rc < 0)
			return rc;
		u->buffers[i] = (struct uring_buffer){.base = base, .bytes = bytes};
		return 0;
	}
	return -ENOSPC;
}

static void uring_buffer_unregister(struct rill_io *io, void *base)
{
	struct io_uring_backend *u = (struct io_uring_backend *)io;
	for (unsigned i = 0; i < URING_BUFFERS_MAX; i++) {
		if (u->buffers[i].base != base)
			continue;
		struct iovec empty = {.iov_base = NULL, .iov_len = 0};
		(void)io_uring_register_buffers_update_tag(&u->ring, i, &empty, NULL, 1);
		u->buffers[i] = (struct uring_buffer){0};
	}
}

static int uring_write_sync(struct rill_io *io, int handle, const void *buf, size_t bytes,
			    uint64_t offset, uint64_t token)
{
	struct io_uring_backend *u = (struct io_uring_backend *)io;
	if (u->broken)
		return u->broken;
	if (bytes > UINT32_MAX)
		return -EINVAL;
	unsigned slot = 0;
	while (slot < RILL_IO_INFLIGHT_MAX && u->pending[slot].used)
		slot++;
	if (slot == RILL_IO_INFLIGHT_MAX)
		return -EBUSY;
	struct io_uring_sqe *w = io_uring_get_sqe(&u->ring);
	struct io_uring_sqe *s = w != NULL ? io_uring_get_sqe(&u->ring) : NULL;
	RILL_ASSERT(w != NULL && s != NULL); /* URING_ENTRIES covers every pair in flight */
	int fixed = uring_buffer_find(u, buf, bytes);
	if (fixed >= 0)
		io_uring_prep_write_fixed(w, handle, buf, (unsigned)bytes, offset, fixed);
	else
		io_uring_prep_write(w, handle, buf, (unsigned)bytes, offset);
	w->flags |= IOSQE_IO_LINK;
	io_uring_sqe_set_data64(w, slot);
	io_uring_prep_fsync(s, handle, IORING_FSYNC_DATASYNC);
	io_uring_sqe_set_data64(s, slot | URING_TAG_SYNC);
	u->pending[slot] = (struct uring_pending){.used = true,
						  .bytes = (uint32_t)bytes,
						  .token = token,
						  .handle = handle,
						  .buf = buf,
						  .offset = offset};
	/*
	 * Both SQEs must reach the kernel in one submission: a link does not cross
	 * submissions (io_uring_sqe_set_flags(3)), so a sync that went out after its write
	 * had gone alone could complete first, and call a write durable that was still in
	 * the device's cache. Retry a submission that took nothing, when the reason is
	 * transient, a bounded number of times; one that took only the write, or anything
	 * else, leaves the pair in an unknown state, so the backend stops for good and the
	 * log above fail-stops.
	 */
	/* Judged by what is left in the queue, not by the count taken: a NOP that
	 * uring_worker_cpus could not submit may go first, and SQEs are taken in order. */
	for (int tries = 0;; tries++) {
		int rc = uring_submit(&u->ring);
		unsigned left = io_uring_sq_ready(&u->ring);
		if (left == 0)
			return 0;
		bool transient = rc >= 0 || rc == -EAGAIN || rc == -EINTR || rc == -EBUSY;
		if (left >= 2 && transient && tries < 1000)
			continue; /* the write not taken yet: nothing of the pair went */
		u->broken = rc < 0 ? rc : -EIO; /* the sync alone left, or no end to it */
		return u->broken;
	}
}

#define URING_REST_TRIES 4 /* writes of a short write's rest, each of which may come short */

/*
 * Why a write came short. The kernel completes a write of which only a part fit (the disk
 * or a quota filling up, the file size limit) with the count written, not the error (its
 * own second try of the rest failed), and the linked fdatasync is cancelled. So the rest is
 * written again here, as the POSIX backend's loop does, and its error is the cause:
 * ENOSPC, EDQUOT, EFBIG. Taken as EIO it went to producers, stderr and the stats as an
 * "Input/output error" on a full disk. The rest starts at the last RILL_IO_DIRECT_ALIGN
 * boundary of what was written (the bytes before it rewritten with what they hold), so a
 * direct handle's alignment holds. A rest that fits now (space freed meanwhile) is still a
 * failure of unknown cause, EIO: nothing synced it, and the log stops all the same. Its
 * bytes are then in the file unsynced, as after a whole write whose fdatasync failed.
 * Blocks; only on this error path.
 */
static int uring_short_write_cause(const struct uring_pending *p)
{
	uint64_t done = (uint32_t)p->write_res;
	bool stuck = false; /* the last try ended where the one before did */
	for (int tries = 0; tries < URING_REST_TRIES && done < p->bytes; tries++) {
		/* From the boundary; once that gets no further (the limit is not on one), from
		 * where it stopped: a buffered handle then says why, a direct one EINVAL. */
		uint64_t from = stuck ? done : done & ~(uint64_t)(RILL_IO_DIRECT_ALIGN - 1);
		ssize_t n = pwrite(p->handle, p->buf + from, p->bytes - from,
				   (off_t)(p->offset + from));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return stuck && errno == EINVAL ? -EIO : -errno;
		if (n == 0)
			break; /* no progress, no error: the POSIX backend's EIO too */
		stuck = from + (uint64_t)n <= done;
		if (!stuck)
			done = from + (uint64_t)n;
	}
	return -EIO;
}

/* The pair's result: the write's error first, a short write's cause, then the sync's. */
static int uring_pair_result(const struct uring_pending *p)
{
	if (p->write_res < 0)
		return p->write_res;
	if ((uint32_t)p->write_res != p->bytes)
		return uring_short_write_cause(p);
	return p->sync_res < 0 ? p->sync_res : 0;
}

static struct __kernel_timespec uring_timespec(uint64_t ns)
{
	return (struct __kernel_timespec){.tv_sec = (long long)(ns / 1000000000u),
					  .tv_nsec = (long long)(ns % 1000000000u)};
}

static int uring_poll(struct rill_io *io, struct rill_io_completion *out, unsigned count,
		      uint64_t wait_ns)
{
	struct io_uring_backend *u = (struct io_uring_backend *)io;
	if (u->broken)
		return u->broken;
	unsigned n = 0;
	bool may_wait = wait_ns > 0;
	if (count == 0) {
		/* Wait only: the CQE stays in the ring for the next poll to reap. */
		struct io_uring_cqe *cqe;
		struct __kernel_timespec ts = uring_timespec(wait_ns);
		int rc = io_uring_wait_cqe_timeout(&u->ring, &cqe, &ts);
		return rc == 0 || rc == -ETIME || rc == -EINTR ? 0 : rc;
	}
	while (n < count) {
		struct io_uring_cqe *cqe;
		int rc;
		if (may_wait && n == 0) {
			struct __kernel_timespec ts = uring_timespec(wait_ns);
			rc = io_uring_wait_cqe_timeout(&u->ring, &cqe, &ts);
		} else {
			rc = io_uring_peek_cqe(&u->ring, &cqe);
		}
		if (rc == -EAGAIN || rc == -ETIME || rc == -EINTR)
			break;
		if (rc < 0)
			return rc;
		uint64_t data = io_uring_cqe_get_data64(cqe);
		if (data == URING_TAG_NOP) { /* uring_worker_cpus's, left by a failed call */
			io_uring_cqe_seen(&u->ring, cqe);
			continue;
		}
		unsigned slot = (unsigned)(data & 0xffu);
		RILL_ASSERT(slot < RILL_IO_INFLIGHT_MAX && u->pending[slot].used);
		struct uring_pending *p = &u->pending[slot];
		if (data & URING_TAG_SYNC) {
			p->sync_done = true;
			p->sync_res = cqe->res;
		} else {
			p->write_done = true;
			p->write_res = cqe->res;
		}
		io_uring_cqe_seen(&u->ring, cqe);
		if (p->write_done && p->sync_done) {
			out[n++] = (struct rill_io_completion){.token = p->token,
							       .result = uring_pair_result(p)};
			p->used = false;
		}
	}
	return (int)n;
}

static int uring_notify(struct rill_io *io, int fd)
{
	struct io_uring_backend *u = (struct io_uring_backend *)io;
	return io_uring_register_eventfd(&u->ring, fd);
}

static int uring_worker_cpus(struct rill_io *io, const int *cpus, unsigned count)
{
	struct io_uring_backend *u = (struct io_uring_backend *)io;
	if (count == 0)
		return -EINVAL; /* no CPU at all: the kernel would take it, and no worker could run */
	for (unsigned i = 0; i < RILL_IO_INFLIGHT_MAX; i++)
		RILL_ASSERT(!u->pending[i].used); /* before anything else: no CQE to mix up */
	cpu_set_t set;
	CPU_ZERO(&set);
	for (unsigned i = 0; i < count; i++) {
		RILL_ASSERT(cpus[i] >= 0 && cpus[i] < CPU_SETSIZE);
		CPU_SET(cpus[i], &set);
	}
	/* The kernel keeps io-wq per submitting thread and makes it at the thread's first
	 * submission; registering before then is refused (-EINVAL). A NOP makes it without
	 * making a worker (a NOP completes inline). Should this fail half-way, uring_poll
	 * skips the NOP's completion whenever it comes. */
	struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
	if (sqe == NULL)
		return -EBUSY;
	io_uring_prep_nop(sqe);
	io_uring_sqe_set_data64(sqe, URING_TAG_NOP);
	int rc = uring_submit(&u->ring);
	if (rc <= 0)
		return rc < 0 ? rc : -EAGAIN; /* not taken: it goes with the next submission */
	struct io_uring_cqe *cqe = NULL;
	rc = io_uring_wait_cqe(&u->ring, &cqe);
	if (rc < 0)
		return rc;
	RILL_ASSERT(io_uring_cqe_get_data64(cqe) == URING_TAG_NOP); /* nothing else in flight */
	io_uring_cqe_seen(&u->ring, cqe);
	return io_uring_register_iowq_aff(&u->ring, sizeof(set), &set);
}

static void uring_destroy(struct rill_io *io)
{
	struct io_uring_backend *u = (struct io_uring_backend *)io;
	io_uring_queue_exit(&u->ring);
	free(u);
}

int rill_io_uring_create(struct rill_io **out)
{
	struct io_uring_backend *u = calloc(1, sizeof(*u));
	if (u == NULL)
		return -ENOMEM;
	int rc = io_uring_queue_init(URING_ENTRIES, &u->ring, 0);
	if (rc < 0) {
		free(u);
		return rc;
	}
	/* A sparse table of fixed buffers, filled by the logs that use this backend. Kernels
	 * before 5.19 refuse it: writes then go without fixed buffers. */
	u->buffers_ok = io_uring_register_buffers_sparse(&u->ring, URING_BUFFERS_MAX) == 0;
	u->ops = rill_io_posix_ops;
	u->ops.buffer_register = uring_buffer_register;
	u->ops.buffer_unregister = uring_buffer_unregister;
	u->ops.write_sync = uring_write_sync;
	u->ops.poll = uring_poll;
	u->ops.notify = uring_notify;
	u->ops.worker_cpus = uring_worker_cpus;
	u->ops.destroy = uring_destroy;
	u->io.ops = &u->ops;
	u->io.name = "uring";
	*out = &u->io;
	return 0;
}
