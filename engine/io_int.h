/*
 * Internals shared by the I/O backends: the POSIX ops table, whose synchronous calls the
 * io_uring backend reuses (metadata and reads stay plain system calls: they are off the
 * append path).
 */
#ifndef RILL_ENGINE_IO_INT_H
#define RILL_ENGINE_IO_INT_H

#include "io.h"

extern const struct rill_io_ops rill_io_posix_ops;

#endif /* RILL_ENGINE_IO_INT_H */
