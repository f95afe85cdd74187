/*
 * Whole-file replacement through the I/O layer (io.h, rill_io_replace_file): what every
 * small file of rill (engine metadata, snapshots, a log's checkpoint and index files)
 * needs, written once; and the directory sync that makes a folder just made survive. Any
 * thread that owns @io; blocking; not the hot path.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "engine/io.h"

/*
 * Write @tmp whole (and fsync it when @sync) and rename it over @path. On any failure
 * after the open @tmp is closed and removed, through @io like everything else (so a
 * simulated disk sees it too): left behind, a write cut short by a full disk kept the very
 * space whose lack failed it, and the log beside it could append nothing more until a
 * restart removed it.
 */
static int io_file_swap(struct rill_io *io, const char *tmp, const char *path, const void *buf,
			size_t bytes, bool sync)
{
	int handle = -1;
	int rc = io->ops->open(io, tmp, RILL_IO_CREATE, &handle);
	if (rc < 0)
		return rc; /* nothing made (a create that fails makes no file) */
	rc = io->ops->truncate(io, handle, 0);
	if (rc == 0)
		rc = io->ops->pwrite(io, handle, buf, bytes, 0);
	if (rc == 0 && sync)
		rc = io->ops->fsync(io, handle);
	int close_rc = io->ops->close(io, handle);
	if (rc == 0)
		rc = close_rc;
	if (rc == 0)
		rc = io->ops->rename(io, tmp, path);
	if (rc < 0)
		(void)io->ops->unlink(io, tmp); /* best effort: open removes what stays */
	return rc;
}

int rill_io_replace_file(struct rill_io *io, const char *dir, const char *tmp, const char *path,
			 const void *buf, size_t bytes)
{
	int rc = io_file_swap(io, tmp, path, buf, bytes, true);
	/* A failed directory sync leaves no @tmp: it is @path now. */
	return rc == 0 ? io->ops->fsync_dir(io, dir) : rc;
}

int rill_io_replace_file_unsynced(struct rill_io *io, const char *tmp, const char *path,
				  const void *buf, size_t bytes)
{
	return io_file_swap(io, tmp, path, buf, bytes, false);
}

int rill_io_fsync_parent(struct rill_io *io, const char *path)
{
	char parent[4096];
	if (snprintf(parent, sizeof(parent), "%s", path) >= (int)sizeof(parent))
		return -ENAMETOOLONG;
	size_t len = strlen(parent);
	while (len > 1 && parent[len - 1] == '/')
		parent[--len] = '\0'; /* "data/" names the folder "data" */
	char *slash = strrchr(parent, '/');
	if (slash == NULL)
		snprintf(parent, sizeof(parent), ".");
	else if (slash == parent)
		parent[1] = '\0';
	else
		*slash = '\0';
	return io->ops->fsync_dir(io, parent);
}
