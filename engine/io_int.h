/*
 * Internals shared by the I/O backends: the POSIX ops table, whose synchronous calls the
 * io_uring backend reuses (metadata and reads stay plain system calls: they are off the
 * append path).
 */
#ifndef RILL_ENGINE_IO_INT_H
#define RILL_ENGINE_IO_INT_H

#include "io.h"

extern const struct rill_io_ops rill_io_posix_ops;

struct io_uring;
/* For tests only: the io_uring backend submits through @fn (NULL: io_uring_submit again),
 * in every thread; set it with no backend in use. */
void rill_io_uring_submit_hook(int (*fn)(struct io_uring *ring));

#endif /* RILL_ENGINE_IO_INT_H */
