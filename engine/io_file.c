/*
 * Whole-file replacement through the I/O layer (io.h, rill_io_replace_file): what every
 * small durable file of rill (engine metadata, snapshots) needs, written once. Any thread
 * that owns @io; blocking; not the hot path.
 */
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
