/*
 * rill: an event stream engine to embed. This is the one header an embedding application
 * includes. For now it brings the pieces that exist: error codes, limits, the event
 * record codec and event schemas; the engine API (open, topics, publish, subscribe, query) lands here next.
 */
#ifndef RILL_RILL_H
#define RILL_RILL_H

#include "rill/error.h"
#include "rill/limits.h"
#include "rill/record.h"
#include "rill/schema.h"

#ifdef __cplusplus
extern "C" {
#endif

/* rill_version - the library's version, "MAJOR.MINOR.PATCH". Any thread. */
const char *rill_version(void);

#ifdef __cplusplus
}
#endif
#endif /* RILL_RILL_H */
