/*
 * A simulated file system behind rill's I/O layer (engine/io.h), for tests of durable
 * paths. It keeps, per file, what a process sees (the page cache) and what a disk holds for
 * sure (what the last fsync covered), and can:
 *   - cut the power: every 4 KiB page written since its file's last sync is independently
 *     kept, dropped, or torn at a 512-byte boundary with garbage behind the tear (as
 *     FoundationDB's simulator does); names created, renamed or removed since their
 *     directory's last fsync independently happen or not; every handle becomes invalid;
 *   - inject an error (EIO, ENOSPC, ...) at the Nth operation, once or from then on; a
 *     failed write_sync leaves its data in the page cache but not durable, as Linux does
 *     after a failed fdatasync.
 * Single-threaded, deterministic for a given seed.
 */
#ifndef RILL_TEST_IO_SIM_H
#define RILL_TEST_IO_SIM_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/io.h"

struct io_sim;

int io_sim_create(struct io_sim **out, uint64_t seed);
struct rill_io *io_sim_io(struct io_sim *sim);
void io_sim_destroy(struct io_sim *sim);

/* Operations counted so far: every call through the ops table counts one, but poll,
 * which counts the fdatasync of each write it completes. */
uint64_t io_sim_ops(const struct io_sim *sim);

/* Fail the operation with index @index (0-based, as io_sim_ops counts) with -@error; with
 * @always, every operation from then on too. @index UINT64_MAX: no fault. */
void io_sim_fail_at(struct io_sim *sim, uint64_t index, int error, bool always);

/* With @refuse, opening a RILL_IO_DIRECT handle fails with -EOPNOTSUPP, as on a file
 * system without O_DIRECT; otherwise such handles work and check their alignment. */
void io_sim_refuse_direct(struct io_sim *sim, bool refuse);
/* write_syncs made through direct handles so far (all of them aligned). */
uint64_t io_sim_direct_writes(const struct io_sim *sim);

/* With @slow, a write in flight completes only at a poll that may wait (wait_ns > 0), as
 * on a slow disk; a poll with no wait finds it still in flight. */
void io_sim_slow_writes(struct io_sim *sim, bool slow);

/* Cut the power (see above). Completions still pending are lost. */
void io_sim_power_cut(struct io_sim *sim);

/*
 * The process dies (kill -9): from now on every operation fails with EIO and writes in
 * flight complete with EIO without being synced, so code that drains on its way out does
 * not make anything durable. The page cache keeps what was written.
 */
void io_sim_crash(struct io_sim *sim);

/* A new process after io_sim_crash, same boot: handles gone, the page cache as it was. */
void io_sim_restart(struct io_sim *sim);

/* Bytes of @path as the page cache holds them (for corrupting files in tests). */
uint8_t *io_sim_file_data(struct io_sim *sim, const char *path, uint64_t *size);
/* Make the current content of every file durable (as after a clean shutdown and sync). */
void io_sim_sync_all(struct io_sim *sim);

#endif /* RILL_TEST_IO_SIM_H */
