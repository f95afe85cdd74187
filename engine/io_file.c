/*
 * Whole-file replacement through the I/O layer (io.h, rill_io_replace_file): what every
 * small durable file of rill (engine metadata, snapshots) needs, written once; and the
 * directory sync that makes a folder just made survive. Any thread that owns @io;
 * blocking; not the hot path.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "engine/io.h"

int rill_io_replace_file(struct rill_io *io, const char *dir, const char *tmp, const char *path,
			 const void *buf, size_t bytes)
{
	int handle = -1;
	int rc = io->ops->open(io, tmp, RILL_IO_CREATE, &handle);
	if (rc == 0)
		rc = io->ops->truncate(io, handle, 0);
	if (rc == 0)
		rc = io->ops->pwrite(io, handle, buf, bytes, 0);
	if (rc == 0)
		rc = io->ops->fsync(io, handle);
	if (handle >= 0) {
		int close_rc = io->ops->close(io, handle);
		if (rc == 0)
			rc = close_rc;
	}
	if (rc == 0)
		rc = io->ops->rename(io, tmp, path);
	if (rc == 0)
		rc = io->ops->fsync_dir(io, dir);
	return rc;
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
