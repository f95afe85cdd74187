/*
 * The I/O multiplexer (io.h, rill_io_mux): one backend, one io_uring, shared by the logs of
 * a shard. Each log gets a view, an rill_io of its own. A view's write_sync takes a slot of
 * the mux's in-flight table and passes the slot index to the backend as the token; any
 * poll, through any view, reaps every finished call from the backend and files each under
 * the view that owns its slot, with the view's own token, where that view's next poll
 * finds it. The other calls forward to the backend unchanged.
 *
 * Invariants:
 *   1. A slot is used from its write_sync until its completion is reaped from the backend;
 *      a view's calls in flight plus its completions not yet polled stay within
 *      RILL_IO_INFLIGHT_MAX (write_sync refuses beyond), so its queue never overflows.
 *   2. A completion reaches exactly one view, once, in the order the backend gave it.
 *
 * Runs on the shard's thread only, like the backend; not on the per-event path (one call
 * per batch).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/assert.h"
#include "engine/io.h"

struct mux_view;

struct mux_slot {
	struct mux_view *view; /* NULL: free */
	uint64_t token;        /* the view's token */
};

/* The owner of a slot whose view was destroyed with the call in flight (a crash
 * simulation): the slot stays taken until the backend reports the call, then is dropped. */
static struct mux_view *const mux_orphan = (struct mux_view *)&mux_orphan;

struct rill_io_mux {
	struct rill_io *base;
	uint32_t views;  /* live views */
	uint32_t used;   /* slots in use */
	uint32_t queued; /* completions reaped, waiting in views' queues */
	int reap_error;  /* the backend's poll failed: every view sees it */
	struct mux_slot slots[RILL_IO_INFLIGHT_MAX];
};

struct mux_view {
	struct rill_io io;
	struct rill_io_mux *mux;
	uint32_t inflight;   /* its calls not yet reported by the backend */
	uint32_t done_count; /* reported, not yet polled by the view */
	struct rill_io_completion done[RILL_IO_INFLIGHT_MAX];
};

static struct rill_io *mux_base(struct rill_io *io)
{
	return ((struct mux_view *)io)->mux->base;
}

static int mux_open(struct rill_io *io, const char *path, unsigned flags, int *handle)
{
	struct rill_io *b = mux_base(io);
	return b->ops->open(b, path, flags, handle);
}

static int mux_close(struct rill_io *io, int handle)
{
	struct rill_io *b = mux_base(io);
	return b->ops->close(b, handle);
}

static int mux_pread(struct rill_io *io, int handle, void *buf, size_t bytes, uint64_t offset,
		     size_t *got)
{
	struct rill_io *b = mux_base(io);
	return b->ops->pread(b, handle, buf, bytes, offset, got);
}

static int mux_pwrite(struct rill_io *io, int handle, const void *buf, size_t bytes,
		      uint64_t offset)
{
	struct rill_io *b = mux_base(io);
	return b->ops->pwrite(b, handle, buf, bytes, offset);
}

static int mux_fsync(struct rill_io *io, int handle)
{
	struct rill_io *b = mux_base(io);
	return b->ops->fsync(b, handle);
}

static int mux_truncate(struct rill_io *io, int handle, uint64_t bytes)
{
	struct rill_io *b = mux_base(io);
	return b->ops->truncate(b, handle, bytes);
}

static int mux_lock(struct rill_io *io, const char *path, int *handle)
{
	struct rill_io *b = mux_base(io);
	return b->ops->lock(b, path, handle);
}

static int mux_size(struct rill_io *io, int handle, uint64_t *bytes)
{
	struct rill_io *b = mux_base(io);
	return b->ops->size(b, handle, bytes);
}

static int mux_rename(struct rill_io *io, const char *from, const char *to)
{
	struct rill_io *b = mux_base(io);
	return b->ops->rename(b, from, to);
}

static int mux_unlink(struct rill_io *io, const char *path)
{
	struct rill_io *b = mux_base(io);
	return b->ops->unlink(b, path);
}

static int mux_mkdir(struct rill_io *io, const char *path)
{
	struct rill_io *b = mux_base(io);
	return b->ops->mkdir(b, path);
}

static int mux_fsync_dir(struct rill_io *io, const char *path)
{
	struct rill_io *b = mux_base(io);
	return b->ops->fsync_dir(b, path);
}

static int mux_list(struct rill_io *io, const char *path, rill_io_list_fn fn, void *arg)
{
	struct rill_io *b = mux_base(io);
	return b->ops->list(b, path, fn, arg);
}

static int mux_buffer_register(struct rill_io *io, void *base, size_t bytes)
{
	struct rill_io *b = mux_base(io);
	return b->ops->buffer_register != NULL ? b->ops->buffer_register(b, base, bytes) : -ENOTSUP;
}

static void mux_buffer_unregister(struct rill_io *io, void *base)
{
	struct rill_io *b = mux_base(io);
	if (b->ops->buffer_unregister != NULL)
		b->ops->buffer_unregister(b, base);
}

static int mux_notify(struct rill_io *io, int fd)
{
	struct rill_io *b = mux_base(io);
	return b->ops->notify != NULL ? b->ops->notify(b, fd) : 0;
}

static int mux_write_sync(struct rill_io *io, int handle, const void *buf, size_t bytes,
			  uint64_t offset, uint64_t token)
{
	struct mux_view *v = (struct mux_view *)io;
	struct rill_io_mux *mux = v->mux;
	/* Invariant 1: a view's calls, in flight or reported and not yet polled, never exceed
	 * what its queue holds. */
	if (mux->used == RILL_IO_INFLIGHT_MAX ||
	    v->inflight + v->done_count == RILL_IO_INFLIGHT_MAX)
		return -EBUSY;
	unsigned slot = 0;
	while (mux->slots[slot].view != NULL)
		slot++; /* invariant 1: a free slot exists below the maximum */
	int rc = mux->base->ops->write_sync(mux->base, handle, buf, bytes, offset, slot);
	if (rc < 0)
		return rc;
	mux->slots[slot] = (struct mux_slot){.view = v, .token = token};
	mux->used++;
	v->inflight++;
	return 0;
}

/* Reap what the backend has finished (waiting up to @wait_ns for the first) into views. */
static int mux_reap(struct rill_io_mux *mux, uint64_t wait_ns)
{
	if (mux->reap_error)
		return mux->reap_error;
	if (mux->used == 0)
		return 0;
	struct rill_io_completion done[RILL_IO_INFLIGHT_MAX];
	int n = mux->base->ops->poll(mux->base, done, RILL_IO_INFLIGHT_MAX, wait_ns);
	if (n < 0) {
		mux->reap_error = n; /* which calls finished is unknown now: all views stop */
		return n;
	}
	for (int i = 0; i < n; i++) {
		RILL_ASSERT(done[i].token < RILL_IO_INFLIGHT_MAX);
		struct mux_slot *s = &mux->slots[done[i].token];
		RILL_ASSERT(s->view != NULL); /* invariant 2: reaped once */
		struct mux_view *v = s->view;
		uint64_t token = s->token;
		*s = (struct mux_slot){0};
		mux->used--;
		if (v == mux_orphan)
			continue;
		v->inflight--;
		RILL_ASSERT(v->done_count < RILL_IO_INFLIGHT_MAX); /* invariant 1 */
		v->done[v->done_count++] =
			(struct rill_io_completion){.token = token, .result = done[i].result};
		mux->queued++;
	}
	return 0;
}

static int mux_poll(struct rill_io *io, struct rill_io_completion *out, unsigned count,
		    uint64_t wait_ns)
{
	struct mux_view *v = (struct mux_view *)io;
	if (v->done_count == 0) {
		int rc = mux_reap(v->mux, wait_ns);
		if (rc < 0)
			return rc;
	}
	unsigned n = v->done_count < count ? v->done_count : count;
	memcpy(out, v->done, n * sizeof(*out));
	memmove(v->done, v->done + n, (v->done_count - n) * sizeof(*out));
	v->done_count -= n;
	v->mux->queued -= n;
	return (int)n;
}

static void mux_view_destroy(struct rill_io *io)
{
	struct mux_view *v = (struct mux_view *)io;
	struct rill_io_mux *mux = v->mux;
	for (unsigned i = 0; i < RILL_IO_INFLIGHT_MAX; i++) {
		if (mux->slots[i].view == v)
			mux->slots[i].view = mux_orphan;
	}
	mux->queued -= v->done_count;
	mux->views--;
	free(v);
}

static const struct rill_io_ops mux_ops = {
	.open = mux_open,
	.close = mux_close,
	.pread = mux_pread,
	.pwrite = mux_pwrite,
	.fsync = mux_fsync,
	.truncate = mux_truncate,
	.lock = mux_lock,
	.size = mux_size,
	.rename = mux_rename,
	.unlink = mux_unlink,
	.mkdir = mux_mkdir,
	.fsync_dir = mux_fsync_dir,
	.list = mux_list,
	.write_sync = mux_write_sync,
	.poll = mux_poll,
	.buffer_register = mux_buffer_register,
	.buffer_unregister = mux_buffer_unregister,
	.notify = mux_notify,
	.destroy = mux_view_destroy,
};

int rill_io_mux_create(struct rill_io_mux **out, struct rill_io *base)
{
	RILL_ASSERT(base != NULL);
	struct rill_io_mux *mux = calloc(1, sizeof(*mux));
	if (mux == NULL)
		return -ENOMEM;
	mux->base = base;
	*out = mux;
	return 0;
}

int rill_io_mux_view(struct rill_io_mux *mux, struct rill_io **out)
{
	struct mux_view *v = calloc(1, sizeof(*v));
	if (v == NULL)
		return -ENOMEM;
	v->io.ops = &mux_ops;
	v->io.name = mux->base->name;
	v->mux = mux;
	mux->views++;
	*out = &v->io;
	return 0;
}

int rill_io_mux_reap(struct rill_io_mux *mux)
{
	return mux_reap(mux, 0);
}

uint32_t rill_io_mux_queued(const struct rill_io_mux *mux)
{
	return mux->queued;
}

void rill_io_mux_destroy(struct rill_io_mux *mux)
{
	if (mux == NULL)
		return;
	RILL_ASSERT(mux->views == 0);
	free(mux);
}
