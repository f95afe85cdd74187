/*
 * The simulated file system for durability tests (see io_sim.h). Written for clarity over
 * speed: files are flat byte arrays, a dirty bit per 4 KiB page.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/assert.h"
#include "io_sim.h"

#define SIM_FILES_MAX    256u
#define SIM_HANDLES_MAX  64u
#define SIM_PAGE_BYTES   4096u
#define SIM_SECTOR_BYTES 512u
#define SIM_PATH_BYTES   512u

struct sim_file {
	char path[SIM_PATH_BYTES];
	bool live;         /* the name exists for the process */
	bool durable_name; /* the name survives a power cut for sure */
	uint8_t *data;     /* page cache view */
	uint64_t size;
	uint64_t capacity;
	uint8_t *durable; /* content as of the last sync */
	uint64_t durable_size;
	uint8_t *dirty;       /* per page: 0 clean, 1 written since the last sync, 2 lost (a
	                       * sync failed: Linux marked it clean without writing it) */
	uint64_t dirty_pages; /* length of dirty */
};

struct sim_pending {
	uint64_t token;
	int result;
	int file;
};

struct io_sim {
	struct rill_io io;
	struct rill_io_ops ops;
	struct sim_file files[SIM_FILES_MAX];
	int handles[SIM_HANDLES_MAX]; /* file index, or -1 */
	bool locked[SIM_HANDLES_MAX]; /* the handle holds its file's lock (ops->lock) */
	bool direct[SIM_HANDLES_MAX]; /* opened RILL_IO_DIRECT: write_sync only, aligned */
	bool direct_refused;          /* io_sim_refuse_direct */
	bool slow_writes;             /* io_sim_slow_writes */
	uint64_t direct_writes;       /* aligned write_syncs through direct handles */
	struct sim_pending pending[RILL_IO_INFLIGHT_MAX];
	unsigned pending_count;
	uint64_t ops_count;
	bool crashed; /* io_sim_crash: everything fails until io_sim_restart */
	uint64_t fail_index;
	int fail_error;
	bool fail_always;
	uint64_t rng;
};

static uint64_t sim_rand(struct io_sim *sim)
{
	sim->rng ^= sim->rng >> 12;
	sim->rng ^= sim->rng << 25;
	sim->rng ^= sim->rng >> 27;
	return sim->rng * 0x2545F4914F6CDD1Dull;
}

/* Count an operation; returns the injected error for it, or 0. */
static int sim_op(struct io_sim *sim)
{
	uint64_t index = sim->ops_count++;
	if (sim->crashed)
		return -EIO;
	if (index == sim->fail_index || (sim->fail_always && index > sim->fail_index))
		return -sim->fail_error;
	return 0;
}

static struct sim_file *sim_lookup(struct io_sim *sim, const char *path)
{
	for (unsigned i = 0; i < SIM_FILES_MAX; i++)
		if (sim->files[i].live && strcmp(sim->files[i].path, path) == 0)
			return &sim->files[i];
	return NULL;
}

static struct sim_file *sim_handle_file(struct io_sim *sim, int handle)
{
	if (handle < 0 || handle >= (int)SIM_HANDLES_MAX || sim->handles[handle] < 0)
		return NULL;
	return &sim->files[sim->handles[handle]];
}

static int sim_reserve(struct sim_file *f, uint64_t size)
{
	if (size <= f->capacity)
		return 0;
	uint64_t capacity = f->capacity ? f->capacity : SIM_PAGE_BYTES;
	while (capacity < size)
		capacity *= 2;
	uint8_t *data = realloc(f->data, capacity);
	uint64_t pages = capacity / SIM_PAGE_BYTES;
	uint8_t *dirty = realloc(f->dirty, pages);
	if (data == NULL || dirty == NULL) {
		f->data = data ? data : f->data;
		f->dirty = dirty ? dirty : f->dirty;
		return -ENOMEM;
	}
	memset(data + f->capacity, 0, capacity - f->capacity);
	memset(dirty + f->dirty_pages, 0, pages - f->dirty_pages);
	f->data = data;
	f->dirty = dirty;
	f->capacity = capacity;
	f->dirty_pages = pages;
	return 0;
}

static void sim_mark_dirty(struct sim_file *f, uint64_t from, uint64_t to)
{
	for (uint64_t page = from / SIM_PAGE_BYTES; page * SIM_PAGE_BYTES < to; page++)
		f->dirty[page] = 1;
}

static int sim_write(struct sim_file *f, const void *buf, size_t bytes, uint64_t offset)
{
	int rc = sim_reserve(f, offset + bytes);
	if (rc < 0)
		return rc;
	if (offset > f->size)
		sim_mark_dirty(f, f->size, offset);
	if (bytes > 0)
		memcpy(f->data + offset, buf, bytes);
	sim_mark_dirty(f, offset, offset + bytes);
	if (offset + bytes > f->size)
		f->size = offset + bytes;
	return 0;
}

#define SIM_PAGE_LOST 2

static void sim_sync_file(struct sim_file *f)
{
	uint8_t *durable = malloc(f->size ? f->size : 1);
	RILL_ASSERT(durable != NULL);
	if (f->size > 0)
		memcpy(durable, f->data, f->size);
	for (uint64_t page = 0; page < f->dirty_pages; page++) {
		uint64_t from = page * SIM_PAGE_BYTES;
		if (f->dirty[page] != SIM_PAGE_LOST || from >= f->size)
			continue;
		/* A lost page keeps what the disk had: the old bytes, or zeros past the old end. */
		uint64_t to = from + SIM_PAGE_BYTES < f->size ? from + SIM_PAGE_BYTES : f->size;
		for (uint64_t b = from; b < to; b++)
			durable[b] = b < f->durable_size ? f->durable[b] : 0;
	}
	free(f->durable);
	f->durable = durable;
	f->durable_size = f->size;
	for (uint64_t page = 0; page < f->dirty_pages; page++)
		if (f->dirty[page] == 1)
			f->dirty[page] = 0;
}

/* A failed sync: what was dirty is marked clean but never reaches the disk. */
static void sim_sync_failed(struct sim_file *f)
{
	for (uint64_t page = 0; page < f->dirty_pages; page++)
		if (f->dirty[page] == 1)
			f->dirty[page] = SIM_PAGE_LOST;
}

static int sim_open(struct rill_io *io, const char *path, unsigned flags, int *handle)
{
	struct io_sim *sim = (struct io_sim *)io;
	int rc = sim_op(sim);
	if (rc < 0)
		return rc;
	struct sim_file *f = sim_lookup(sim, path);
	if ((flags & RILL_IO_DIRECT) && (sim->direct_refused || f == NULL))
		return sim->direct_refused ? -EOPNOTSUPP : -ENOENT;
	if (f == NULL) {
		if (!(flags & RILL_IO_CREATE))
			return -ENOENT;
		for (unsigned i = 0; i < SIM_FILES_MAX && f == NULL; i++)
			if (!sim->files[i].live && !sim->files[i].durable_name)
				f = &sim->files[i];
		if (f == NULL || strlen(path) >= SIM_PATH_BYTES)
			return -ENOSPC;
		free(f->data);
		free(f->durable);
		free(f->dirty);
		memset(f, 0, sizeof(*f));
		snprintf(f->path, sizeof(f->path), "%s", path);
		f->live = true;
	}
	for (int h = 0; h < (int)SIM_HANDLES_MAX; h++) {
		if (sim->handles[h] < 0) {
			sim->handles[h] = (int)(f - sim->files);
			sim->direct[h] = (flags & RILL_IO_DIRECT) != 0;
			*handle = h;
			return 0;
		}
	}
	return -EMFILE;
}

static int sim_close(struct rill_io *io, int handle)
{
	struct io_sim *sim = (struct io_sim *)io;
	if (sim_handle_file(sim, handle) == NULL)
		return -EBADF;
	sim->handles[handle] = -1;
	sim->locked[handle] = false;
	return sim_op(sim);
}

/* Locks live with handles: a crash, restart or power cut, which drop every handle, drop
 * them too, as the kernel does for a dead process. */
static int sim_lock(struct rill_io *io, const char *path, int *handle)
{
	struct io_sim *sim = (struct io_sim *)io;
	int rc = sim_open(io, path, RILL_IO_CREATE, handle);
	if (rc < 0)
		return rc;
	int file = sim->handles[*handle];
	for (unsigned h = 0; h < SIM_HANDLES_MAX; h++) {
		if (sim->locked[h] && sim->handles[h] == file) {
			sim->handles[*handle] = -1;
			return -EBUSY;
		}
	}
	sim->locked[*handle] = true;
	return 0;
}

/*
 * Count an operation on an open file: *f is the file (or NULL for a bad handle, also
 * when an error is injected); returns the injected error, -EBADF, or 0.
 */
static int sim_file_op(struct rill_io *io, int handle, struct sim_file **f)
{
	struct io_sim *sim = (struct io_sim *)io;
	int rc = sim_op(sim);
	*f = sim_handle_file(sim, handle);
	if (rc < 0)
		return rc;
	/* A direct handle is for write_sync alone (io.h): anything else on it is a bug. */
	return *f == NULL || sim->direct[handle] ? -EBADF : 0;
}

static int sim_pread(struct rill_io *io, int handle, void *buf, size_t bytes, uint64_t offset,
		     size_t *got)
{
	struct sim_file *f;
	int rc = sim_file_op(io, handle, &f);
	if (rc < 0)
		return rc;
	size_t n = offset >= f->size
			   ? 0
			   : (size_t)(f->size - offset < bytes ? f->size - offset : bytes);
	if (n > 0)
		memcpy(buf, f->data + offset, n);
	*got = n;
	return 0;
}

static int sim_pwrite(struct rill_io *io, int handle, const void *buf, size_t bytes,
		      uint64_t offset)
{
	struct sim_file *f;
	int rc = sim_file_op(io, handle, &f);
	return rc < 0 ? rc : sim_write(f, buf, bytes, offset);
}

static int sim_fsync(struct rill_io *io, int handle)
{
	struct sim_file *f;
	int rc = sim_file_op(io, handle, &f);
	if (rc < 0) {
		if (f != NULL)
			sim_sync_failed(f); /* like Linux: pages marked clean, not on disk */
		return rc;
	}
	sim_sync_file(f);
	return 0;
}

static int sim_truncate(struct rill_io *io, int handle, uint64_t bytes)
{
	struct sim_file *f;
	int rc = sim_file_op(io, handle, &f);
	if (rc < 0)
		return rc;
	rc = sim_reserve(f, bytes);
	if (rc < 0)
		return rc;
	if (bytes < f->size)
		memset(f->data + bytes, 0, f->size - bytes);
	sim_mark_dirty(f, bytes < f->size ? bytes : f->size, bytes > f->size ? bytes : f->size);
	f->size = bytes;
	return 0;
}

static int sim_size(struct rill_io *io, int handle, uint64_t *bytes)
{
	struct sim_file *f;
	int rc = sim_file_op(io, handle, &f);
	if (rc < 0)
		return rc;
	*bytes = f->size;
	return 0;
}

static int sim_rename(struct rill_io *io, const char *from, const char *to)
{
	struct io_sim *sim = (struct io_sim *)io;
	int rc = sim_op(sim);
	if (rc < 0)
		return rc;
	struct sim_file *f = sim_lookup(sim, from);
	if (f == NULL)
		return -ENOENT;
	struct sim_file *old = sim_lookup(sim, to);
	if (old != NULL)
		old->live = false;
	/* Simplification: a rename moves the file at once; its durability follows the dir. */
	snprintf(f->path, sizeof(f->path), "%s", to);
	f->durable_name = false;
	return 0;
}

static int sim_unlink(struct rill_io *io, const char *path)
{
	struct io_sim *sim = (struct io_sim *)io;
	int rc = sim_op(sim);
	if (rc < 0)
		return rc;
	struct sim_file *f = sim_lookup(sim, path);
	if (f == NULL)
		return -ENOENT;
	f->live = false;
	return 0;
}

static int sim_mkdir(struct rill_io *io, const char *path)
{
	(void)path; /* directories are implicit in the paths */
	return sim_op((struct io_sim *)io);
}

static bool sim_in_dir(const char *path, const char *dir)
{
	size_t len = strlen(dir);
	return strncmp(path, dir, len) == 0 && path[len] == '/' &&
	       strchr(path + len + 1, '/') == NULL;
}

static int sim_fsync_dir(struct rill_io *io, const char *path)
{
	struct io_sim *sim = (struct io_sim *)io;
	int rc = sim_op(sim);
	if (rc < 0)
		return rc;
	for (unsigned i = 0; i < SIM_FILES_MAX; i++) {
		struct sim_file *f = &sim->files[i];
		if ((f->live || f->durable_name) && sim_in_dir(f->path, path))
			f->durable_name = f->live;
	}
	return 0;
}

static int sim_list(struct rill_io *io, const char *path, rill_io_list_fn fn, void *arg)
{
	struct io_sim *sim = (struct io_sim *)io;
	int rc = sim_op(sim);
	if (rc < 0)
		return rc;
	for (unsigned i = 0; i < SIM_FILES_MAX && rc == 0; i++) {
		const struct sim_file *f = &sim->files[i];
		if (f->live && sim_in_dir(f->path, path))
			rc = fn(arg, f->path + strlen(path) + 1);
	}
	return rc < 0 ? rc : 0;
}

static int sim_write_sync(struct rill_io *io, int handle, const void *buf, size_t bytes,
			  uint64_t offset, uint64_t token)
{
	struct io_sim *sim = (struct io_sim *)io;
	struct sim_file *f = sim_handle_file(sim, handle);
	if (f == NULL)
		return -EBADF;
	if (sim->pending_count == RILL_IO_INFLIGHT_MAX)
		return -EBUSY;
	/* The write lands in the page cache now; the sync happens when poll reaps it. */
	int result = sim_op(sim);
	bool misaligned = sim->direct[handle] &&
			  ((uintptr_t)buf % RILL_IO_DIRECT_ALIGN || bytes % RILL_IO_DIRECT_ALIGN ||
			   offset % RILL_IO_DIRECT_ALIGN);
	if (result == 0 && misaligned) {
		/* What O_DIRECT refuses, writing nothing, reported in the completion as the
		 * real backends do: anything not aligned in memory, length and file offset. */
		result = -EINVAL;
	} else if (result == 0) {
		result = sim_write(f, buf, bytes, offset);
		sim->direct_writes += sim->direct[handle];
	} else if (sim_rand(sim) & 1) {
		(void)sim_write(f, buf, bytes / 2, offset); /* a failed write may leave a part */
	}
	sim->pending[sim->pending_count++] = (struct sim_pending){
		.token = token, .result = result, .file = (int)(f - sim->files)};
	return 0;
}

static int sim_poll(struct rill_io *io, struct rill_io_completion *out, unsigned count,
		    uint64_t wait_ns)
{
	struct io_sim *sim = (struct io_sim *)io;
	if (sim->slow_writes && wait_ns == 0)
		return 0; /* still in flight */
	unsigned n = 0;
	while (n < count && sim->pending_count > 0) {
		struct sim_pending p = sim->pending[0];
		memmove(sim->pending, sim->pending + 1, --sim->pending_count * sizeof(p));
		if (p.result == 0) {
			p.result = sim_op(sim); /* the fdatasync */
			if (p.result == 0)
				sim_sync_file(&sim->files[p.file]);
			else
				sim_sync_failed(&sim->files[p.file]);
		}
		out[n++] = (struct rill_io_completion){.token = p.token, .result = p.result};
	}
	return (int)n;
}

static void sim_destroy_io(struct rill_io *io)
{
	io_sim_destroy((struct io_sim *)io);
}

int io_sim_create(struct io_sim **out, uint64_t seed)
{
	struct io_sim *sim = calloc(1, sizeof(*sim));
	if (sim == NULL)
		return -ENOMEM;
	sim->ops = (struct rill_io_ops){
		.open = sim_open,
		.close = sim_close,
		.lock = sim_lock,
		.pread = sim_pread,
		.pwrite = sim_pwrite,
		.fsync = sim_fsync,
		.truncate = sim_truncate,
		.size = sim_size,
		.rename = sim_rename,
		.unlink = sim_unlink,
		.mkdir = sim_mkdir,
		.fsync_dir = sim_fsync_dir,
		.list = sim_list,
		.write_sync = sim_write_sync,
		.poll = sim_poll,
		.destroy = sim_destroy_io,
	};
	sim->io.ops = &sim->ops;
	sim->io.name = "sim";
	for (unsigned h = 0; h < SIM_HANDLES_MAX; h++) {
		sim->handles[h] = -1;
		sim->locked[h] = false;
	}
	sim->fail_index = UINT64_MAX;
	sim->rng = seed * 0x9E3779B97F4A7C15ull + 1;
	*out = sim;
	return 0;
}

struct rill_io *io_sim_io(struct io_sim *sim)
{
	return &sim->io;
}

void io_sim_destroy(struct io_sim *sim)
{
	if (sim == NULL)
		return;
	for (unsigned i = 0; i < SIM_FILES_MAX; i++) {
		free(sim->files[i].data);
		free(sim->files[i].durable);
		free(sim->files[i].dirty);
	}
	free(sim);
}

uint64_t io_sim_ops(const struct io_sim *sim)
{
	return sim->ops_count;
}

void io_sim_fail_at(struct io_sim *sim, uint64_t index, int error, bool always)
{
	sim->fail_index = index;
	sim->fail_error = error;
	sim->fail_always = always;
}

void io_sim_refuse_direct(struct io_sim *sim, bool refuse)
{
	sim->direct_refused = refuse;
}

void io_sim_slow_writes(struct io_sim *sim, bool slow)
{
	sim->slow_writes = slow;
}

uint64_t io_sim_direct_writes(const struct io_sim *sim)
{
	return sim->direct_writes;
}

/* One file's content after the cut: durable bytes, plus each dirty page kept, dropped or torn. */
static void sim_cut_file(struct io_sim *sim, struct sim_file *f)
{
	uint64_t size = f->durable_size;
	uint8_t *after = calloc(1, f->capacity > size ? f->capacity : size + 1);
	RILL_ASSERT(after != NULL);
	if (f->durable != NULL) /* NULL: never synced (memcpy may not see NULL, even for 0) */
		memcpy(after, f->durable, f->durable_size < f->size ? f->durable_size : f->size);
	if (f->durable_size > f->size)
		memcpy(after + f->size, f->durable + f->size, f->durable_size - f->size);
	for (uint64_t page = 0; page < f->dirty_pages; page++) {
		if (!f->dirty[page])
			continue;
		uint64_t from = page * SIM_PAGE_BYTES;
		uint64_t to = from + SIM_PAGE_BYTES < f->size ? from + SIM_PAGE_BYTES : f->size;
		if (from >= to)
			continue; /* the page lies past a truncation: nothing new there */
		uint64_t fate = f->dirty[page] == SIM_PAGE_LOST ? 1 : sim_rand(sim) % 3;
		if (fate == 1)
			continue; /* dropped: the durable bytes (or a hole of zeros) stay */
		uint64_t keep_to = to;
		if (fate == 2) /* torn at a sector boundary: new before, garbage after */
			keep_to = from + SIM_SECTOR_BYTES * (sim_rand(sim) %
							     (SIM_PAGE_BYTES / SIM_SECTOR_BYTES));
		if (keep_to > to)
			keep_to = to;
		memcpy(after + from, f->data + from, keep_to - from);
		/* Behind the tear, garbage; but a sector rewritten with the bytes it held is the
		 * same whether the write reached it or not, so durable bytes left as they were
		 * stay. Only bytes the write changed (or added) can be garbage. */
		for (uint64_t b = keep_to; b < to; b++) {
			bool unchanged = b < f->durable_size && f->durable[b] == f->data[b];
			if (!unchanged)
				after[b] = (uint8_t)sim_rand(sim);
		}
		if (to > size)
			size = to;
	}
	/* A truncation not yet synced may or may not have reached the disk. */
	if (f->size < f->durable_size && (sim_rand(sim) & 1))
		size = f->size;
	int rc = sim_reserve(f, size);
	RILL_ASSERT(rc == 0);
	if (size > 0)
		memcpy(f->data, after, size);
	if (f->capacity > size)
		memset(f->data + size, 0, f->capacity - size);
	f->size = size;
	free(after);
	if (f->dirty_pages > 0) /* after the cut, the disk is all there is */
		memset(f->dirty, 0, f->dirty_pages);
	sim_sync_file(f);
}

void io_sim_power_cut(struct io_sim *sim)
{
	for (unsigned i = 0; i < SIM_FILES_MAX; i++) {
		struct sim_file *f = &sim->files[i];
		if (f->live != f->durable_name && (sim_rand(sim) & 1))
			f->live = f->durable_name; /* the directory change did not reach the disk */
		f->durable_name = f->live;
		if (f->live)
			sim_cut_file(sim, f);
	}
	io_sim_restart(sim);
}

void io_sim_crash(struct io_sim *sim)
{
	sim->crashed = true;
	for (unsigned i = 0; i < sim->pending_count; i++)
		sim->pending[i].result = -EIO; /* the syncs never ran */
}

void io_sim_restart(struct io_sim *sim)
{
	for (unsigned h = 0; h < SIM_HANDLES_MAX; h++) {
		sim->handles[h] = -1;
		sim->locked[h] = false;
	}
	sim->pending_count = 0;
	sim->fail_index = UINT64_MAX;
	sim->fail_always = false;
	sim->crashed = false;
}

uint8_t *io_sim_file_data(struct io_sim *sim, const char *path, uint64_t *size)
{
	struct sim_file *f = sim_lookup(sim, path);
	if (f == NULL)
		return NULL;
	*size = f->size;
	return f->data;
}

void io_sim_sync_all(struct io_sim *sim)
{
	for (unsigned i = 0; i < SIM_FILES_MAX; i++) {
		struct sim_file *f = &sim->files[i];
		f->durable_name = f->live;
		if (f->live)
			sim_sync_file(f);
	}
}
