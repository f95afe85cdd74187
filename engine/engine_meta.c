/*
 * The engine's metadata under the data directory (docs/FORMAT.md, "Engine metadata"):
 *
 *   DATA/lock                      flock: one engine per directory
 *   DATA/meta                      {"format": 1, "engine_id": "<16 hex digits>"}
 *   DATA/topics/NAME/topic.json    a topic's definition
 *   DATA/projections/NAME.json     a projection's definition
 *   DATA/projections/.NAME.json.pending  one being created (M4)
 *   DATA/groups/NAME.json          a consumer group's positions
 *
 * Every file is written whole to a temporary name, synced, renamed over the old one and its
 * directory synced, so a crash leaves the old definition or the new one, never a mix. JSON
 * through jansson. Host threads, under the engine's lock; not the hot path.
 *
 * M1. DATA/meta is written last by a data directory's first open, once DATA/schemas (its
 *     log's first segment), topics, projections and groups are made and synced: a crash
 *     before it leaves a directory the next open takes as new again, each step repeated.
 * M2. Once DATA/meta exists, each of those folders must be there (the registry's holding a
 *     segment): one made anew would hide a loss (type ids handed out again, topics gone,
 *     groups reading from the start), so a missing one stops the open, naming it. But for
 *     a first open that builds before M1 left unfinished (meta first, the registry last):
 *     no registry segment and every other folder missing or empty, finished instead.
 * M3. A topic folder without topic.json is a create cut short (its definition is written
 *     after its partitions' folders) only while every partition's log is empty: it is
 *     skipped. One holding events lost its definition: the open stops, naming it.
 * M4. A projection's create writes its definition whole to .NAME.json.pending and syncs
 *     it, builds the projection, and only then renames it to NAME.json and syncs the
 *     folder, before the create is answered: a NAME.json is a projection that built (and
 *     was answered, or was about to be). A pending file at open is a create cut short,
 *     never answered: removed, said on stderr, never loaded, so that a definition whose
 *     build failed (a crash between the failure and the removal) cannot stop the open.
 *     A NAME.json that does not load or build stops the open, as it was acknowledged.
 *     State of a projection in a partition's snapshot without its definition (written
 *     during a build cut short) is never restored into another: a snapshot's states are
 *     looked up by the name of a projection defined, and restored only into the same
 *     definition (partition_snapshot.c).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/clock.h"
#include "engine/engine_int.h"
#include "engine/log.h"
#include "rill/schema.h"

#define META_FORMAT    1
#define META_BYTES_MAX (64u << 10) /* one definition file */
/* A consumer group's file: an offset for every partition of every topic (at most
 * RILL_IO_INFLIGHT_MAX partitions per shard), written with JSON_INDENT(2): each topic's
 * lines under 32 bytes besides its name, each partition's under 64. Bounded by that, so
 * that no commit the engine takes writes a file it cannot read back. */
#define META_GROUP_BYTES_MAX (1u << 20)
_Static_assert(RILL_ENGINE_TOPICS_MAX *(RILL_ENGINE_NAME_BYTES_MAX + 32) +
			       RILL_ENGINE_SHARDS_MAX * RILL_IO_INFLIGHT_MAX * 64 <=
		       META_GROUP_BYTES_MAX,
	       "a group file holds every partition's offset");
#define META_PATH_BYTES 4400u

/* Write @text to DIR/NAME through a temporary file, rename and directory sync. */
static int meta_write(struct rill_engine *e, const char *dir, const char *name, const char *text)
{
	struct rill_io *io = e->io;
	/* @dir is at most META_PATH_BYTES, @name a definition's file name. */
	char tmp[META_PATH_BYTES + RILL_ENGINE_NAME_BYTES_MAX + 16];
	char path[META_PATH_BYTES + RILL_ENGINE_NAME_BYTES_MAX + 16];
	snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return rill_io_replace_file(io, dir, tmp, path, text, strlen(text));
}

/* Read DIR/NAME as JSON into @out. -ENOENT if missing, RILL_E_JSON_INVALID if not JSON. */
static int meta_read(struct rill_engine *e, const char *path, uint32_t bytes_max, json_t **out,
		     struct rill_error_text *err)
{
	struct rill_io *io = e->io;
	int handle;
	int rc = io->ops->open(io, path, RILL_IO_RDONLY, &handle);
	if (rc < 0)
		return rc;
	uint64_t size = 0;
	rc = io->ops->size(io, handle, &size);
	char *buf = NULL;
	size_t got = 0;
	if (rc == 0 && size > bytes_max)
		rc = engine_error(err, -EFBIG, "%s: larger than %u bytes", path, bytes_max);
	if (rc == 0 && (buf = malloc(size + 1)) == NULL)
		rc = -ENOMEM;
	if (rc == 0)
		rc = io->ops->pread(io, handle, buf, size, 0, &got);
	io->ops->close(io, handle);
	if (rc < 0) {
		free(buf);
		return rc;
	}
	json_error_t jerr;
	*out = json_loadb(buf, got, JSON_REJECT_DUPLICATES, &jerr);
	free(buf);
	if (*out == NULL)
		return engine_error(err, RILL_E_JSON_INVALID, "%s: line %d column %d: %s", path,
				    jerr.line, jerr.column, jerr.text);
	return 0;
}

/*
 * Leftovers of meta_write that a crash left (a failed write removes its own temporary
 * file). Best effort: a leftover costs disk space, never a definition. The engine's lock
 * is held, so no other engine is writing them.
 */
static void meta_temp_remove(struct rill_engine *e, const char *dir, const char *name)
{
	char path[META_PATH_BYTES + RILL_ENGINE_NAME_BYTES_MAX + 16];
	snprintf(path, sizeof(path), "%s/.%s.tmp", dir, name);
	(void)e->io->ops->unlink(e->io, path);
}

/* Whether @name is meta_write's temporary file for a NAME.json: ".NAME.json.tmp". No
 * definition's name starts with a dot, so no other file is named so by rill. */
static bool meta_temp_json_name(const char *name)
{
	static const char suffix[] = ".json.tmp";
	size_t n = strlen(name), suffix_bytes = sizeof(suffix) - 1;
	return n > suffix_bytes + 1 && name[0] == '.' && name[1] != '.' &&
	       strcmp(name + n - suffix_bytes, suffix) == 0;
}

struct meta_sweep {
	struct rill_engine *e;
	const char *dir;
};

static int meta_sweep_entry(void *arg, const char *name)
{
	struct meta_sweep *s = arg;
	if (!meta_temp_json_name(name))
		return 0;
	/* Removed while listing: readdir(3) may return it again or not, either is fine. */
	char path[META_PATH_BYTES + RILL_ENGINE_NAME_BYTES_MAX + 16];
	snprintf(path, sizeof(path), "%s/%s", s->dir, name);
	(void)s->e->io->ops->unlink(s->e->io, path);
	return 0;
}

/* Remove every ".NAME.json.tmp" from DATA/@sub (projections, groups), best effort. */
static void meta_sweep(struct rill_engine *e, const char *sub)
{
	char dir[META_PATH_BYTES];
	snprintf(dir, sizeof(dir), "%s/%s", e->data_dir, sub);
	struct meta_sweep s = {.e = e, .dir = dir};
	(void)e->io->ops->list(e->io, dir, meta_sweep_entry, &s);
}

static int meta_write_json(struct rill_engine *e, const char *dir, const char *name, json_t *j)
{
	if (j == NULL)
		return -ENOMEM;
	char *text = json_dumps(j, JSON_SORT_KEYS | JSON_INDENT(2));
	json_decref(j);
	if (text == NULL)
		return -ENOMEM;
	int rc = meta_write(e, dir, name, text);
	free(text);
	return rc;
}

static int meta_mkdir(struct rill_engine *e, const char *sub)
{
	char path[META_PATH_BYTES];
	snprintf(path, sizeof(path), "%s/%s", e->data_dir, sub);
	return e->io->ops->mkdir(e->io, path);
}

/* The folders of M1 and M2, and what each one's loss takes. */
static const struct meta_folder {
	const char *name;
	const char *held;
	const char *remake; /* NULL, or how to go on without it, and why that is safe */
} meta_folders[] = {
	{"schemas",
	 "the schema registry; made anew, it would give the type ids the stored events carry to "
	 "other types",
	 NULL},
	{"topics", "every topic's definition and events", NULL},
	{"projections", "the projections' definitions",
	 "or make it again, empty, and define them again: their values are rebuilt from the "
	 "events their topics hold"},
	{"groups", "the consumer groups' positions",
	 "or make it again, empty: every consumer group then starts over with no position"},
};
#define META_SCHEMAS 0 /* meta_folders[META_SCHEMAS] is the registry's */

static int meta_folders_make(struct rill_engine *e, struct rill_error_text *err);

/* A new data directory: M1. */
static int meta_first_open(struct rill_engine *e, const char *meta_path,
			   struct rill_error_text *err)
{
	/* Its own entry must survive too, or a power cut could take the folder, acknowledged
	 * events and all. A parent this user may not read (a mode of 0711) cannot be synced:
	 * said, not refused. */
	struct rill_io *io = e->io;
	int rc = rill_io_fsync_parent(io, e->data_dir);
	if (rc == -EACCES || rc == -EPERM || rc == -EINVAL)
		fprintf(stderr,
			"rill: data directory %s: cannot sync the folder holding it (%s): "
			"a power cut right after its creation could lose it\n",
			e->data_dir, rill_strerror(rc));
	else if (rc < 0)
		return engine_error(err, rc, "data directory %s: syncing its parent: %s",
				    e->data_dir, rill_strerror(rc));
	rc = meta_folders_make(e, err);
	if (rc < 0)
		return rc;
	char id[17];
	snprintf(id, sizeof(id), "%016llx",
		 (unsigned long long)(rill_clock_wall_ns() ^ rill_clock_now_ns() << 20));
	rc = meta_write_json(e, e->data_dir, "meta",
			     json_pack("{s:i, s:s}", "format", META_FORMAT, "engine_id", id));
	if (rc < 0)
		return engine_error(err, rc, "%s: %s", meta_path, rill_strerror(rc));
	return 0;
}

/* The folders of M1, each made if missing and synced, the registry's with its first
 * segment. Every step may be done again. */
static int meta_folders_make(struct rill_engine *e, struct rill_error_text *err)
{
	struct rill_io *io = e->io;
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < RILL_ARRAY_COUNT(meta_folders); i++) {
		if (i != META_SCHEMAS)
			rc = meta_mkdir(e, meta_folders[i].name);
	}
	/* Their entries made durable: a topic's or a group's own files are synced inside
	 * them, which a power cut could otherwise take with the folder. */
	if (rc == 0)
		rc = io->ops->fsync_dir(io, e->data_dir);
	if (rc < 0)
		return engine_error(err, rc, "%s: creating its folders: %s", e->data_dir,
				    rill_strerror(rc));
	/* The registry's folder and first segment, synced by its log: opened and closed, the
	 * way the engine opens it next (a crash may have left it begun: recovery takes it). */
	char path[META_PATH_BYTES];
	snprintf(path, sizeof(path), "%s/%s", e->data_dir, meta_folders[META_SCHEMAS].name);
	struct rill_schema_registry *reg;
	struct rill_schema_error serr = {{0}};
	rc = rill_schema_registry_open(&reg, e->schema_io, path, &serr);
	if (rc < 0)
		return engine_error(err, rc, "schema registry %s: %s", path, serr.message);
	rc = rill_schema_registry_close(reg);
	if (rc < 0)
		return engine_error(err, rc, "schema registry %s: %s", path, rill_strerror(rc));
	return 0;
}

static int meta_segment_counted(void *arg, const char *name)
{
	if (rill_log_segment_name_parse(name, NULL))
		(*(uint32_t *)arg)++;
	return 0;
}

static int meta_entry_counted(void *arg, const char *name)
{
	(void)name;
	(*(uint32_t *)arg)++;
	return 0;
}

/*
 * True if @e's directory is a first open that builds before M1's order left unfinished:
 * they wrote meta first, then made topics/, projections/ and groups/, then the registry's
 * folder and first segment, so a crash or a failure (a full disk) between the steps left
 * meta with the registry, and perhaps other folders, missing. Such a directory never held
 * an event (no topic could be made before the open ended), so finishing it loses nothing:
 * the registry without a segment, and every other folder missing or empty.
 */
static bool meta_first_open_unfinished(struct rill_engine *e)
{
	for (size_t i = 0; i < RILL_ARRAY_COUNT(meta_folders); i++) {
		char path[META_PATH_BYTES];
		snprintf(path, sizeof(path), "%s/%s", e->data_dir, meta_folders[i].name);
		uint32_t n = 0;
		int rc = e->io->ops->list(
			e->io, path, i == META_SCHEMAS ? meta_segment_counted : meta_entry_counted,
			&n);
		if ((rc < 0 && rc != -ENOENT) || n > 0)
			return false;
	}
	return true;
}

/* M2: every folder there, the registry's with a segment. */
static int meta_folders_check(struct rill_engine *e, struct rill_error_text *err)
{
	if (meta_first_open_unfinished(e))
		return meta_folders_make(e, err);
	for (size_t i = 0; i < RILL_ARRAY_COUNT(meta_folders); i++) {
		const struct meta_folder *m = &meta_folders[i];
		char path[META_PATH_BYTES];
		snprintf(path, sizeof(path), "%s/%s", e->data_dir, m->name);
		uint32_t segments = 0;
		int rc = e->io->ops->list(e->io, path, meta_segment_counted, &segments);
		const char *what = NULL;
		if (rc == -ENOENT)
			what = "is missing";
		else if (rc < 0)
			return engine_error(err, rc, "%s: %s", path, rill_strerror(rc));
		else if (i == META_SCHEMAS && segments == 0)
			what = "holds no segment of the registry's log";
		if (what != NULL)
			return engine_error(err, -ENOENT,
					    "%s %s: it held %s (restore it from a backup%s%s)",
					    path, what, m->held, m->remake != NULL ? "; " : "",
					    m->remake != NULL ? m->remake : "");
	}
	return 0;
}

int engine_meta_init(struct rill_engine *e, struct rill_error_text *err)
{
	struct rill_io *io = e->io;
	int rc = io->ops->mkdir(io, e->data_dir);
	if (rc < 0)
		return engine_error(err, rc, "data directory %s: %s", e->data_dir,
				    rill_strerror(rc));
	char path[META_PATH_BYTES];
	snprintf(path, sizeof(path), "%s/lock", e->data_dir);
	rc = io->ops->lock(io, path, &e->lock_handle);
	if (rc < 0) {
		e->lock_handle = -1;
		return engine_error(err, rc, "%s: %s", path,
				    rc == -EBUSY ? "another engine is using this data directory"
						 : rill_strerror(rc));
	}
	meta_temp_remove(e, e->data_dir, "meta");
	snprintf(path, sizeof(path), "%s/meta", e->data_dir);
	json_t *meta;
	rc = meta_read(e, path, META_BYTES_MAX, &meta, err);
	if (rc == -ENOENT) {
		rc = meta_first_open(e, path, err);
	} else if (rc < 0) {
		return rc == RILL_E_JSON_INVALID
			       ? rc
			       : engine_error(err, rc, "%s: %s", path, rill_strerror(rc));
	} else {
		json_int_t format = -1;
		int bad = json_unpack(meta, "{s:I}", "format", &format);
		json_decref(meta);
		if (bad || format != META_FORMAT)
			return engine_error(err, RILL_E_LOG_FORMAT,
					    "%s: data format %lld, this build reads format %d",
					    path, (long long)format, META_FORMAT);
		rc = meta_folders_check(e, err);
	}
	if (rc < 0)
		return rc;
	meta_sweep(e, "projections");
	meta_sweep(e, "groups");
	return 0;
}

int engine_meta_topic_dir(struct rill_engine *e, const char *name)
{
	char dir[META_PATH_BYTES];
	snprintf(dir, sizeof(dir), "%s/topics/%s", e->data_dir, name);
	int rc = e->io->ops->mkdir(e->io, dir);
	if (rc < 0)
		return rc;
	char parent[META_PATH_BYTES];
	snprintf(parent, sizeof(parent), "%s/topics", e->data_dir);
	return e->io->ops->fsync_dir(e->io, parent);
}

int engine_meta_topic_write(struct rill_engine *e, const struct rill_topic_config *c)
{
	char dir[META_PATH_BYTES];
	snprintf(dir, sizeof(dir), "%s/topics/%s", e->data_dir, c->name);
	json_t *j = json_pack(
		"{s:s, s:I, s:s, s:I, s:I, s:I, s:I, s:I}", "name", c->name, "partitions",
		(json_int_t)c->partitions, "durability",
		c->durability == RILL_DURABILITY_GROUP ? "group" : "none", "retention_bytes",
		(json_int_t)c->retention_bytes, "retention_age_ns", (json_int_t)c->retention_age_ns,
		"segment_bytes_max", (json_int_t)c->segment_bytes_max, "batch_bytes_max",
		(json_int_t)c->batch_bytes_max, "batch_delay_ns", (json_int_t)c->batch_delay_ns);
	return meta_write_json(e, dir, "topic.json", j);
}

void engine_meta_topic_remove(struct rill_engine *e, const char *name)
{
	char dir[META_PATH_BYTES], path[META_PATH_BYTES + 16];
	snprintf(dir, sizeof(dir), "%s/topics/%s", e->data_dir, name);
	snprintf(path, sizeof(path), "%s/topic.json", dir);
	/* Best effort: a folder without topic.json is skipped at open. */
	if (e->io->ops->unlink(e->io, path) == 0)
		(void)e->io->ops->fsync_dir(e->io, dir);
}

/* M4: a projection's definition until its create is done, and once it is. */
#define META_PENDING_SUFFIX ".json.pending"

static void meta_projection_paths(struct rill_engine *e, const char *name, char *dir,
				  size_t dir_bytes, char *pending, char *path, size_t path_bytes)
{
	snprintf(dir, dir_bytes, "%s/projections", e->data_dir);
	snprintf(pending, path_bytes, "%s/.%s" META_PENDING_SUFFIX, dir, name);
	snprintf(path, path_bytes, "%s/%s.json", dir, name);
}

void engine_meta_projection_discard(struct rill_engine *e, const char *name)
{
	char dir[META_PATH_BYTES];
	char pending[META_PATH_BYTES + RILL_ENGINE_NAME_BYTES_MAX + 24];
	char path[META_PATH_BYTES + RILL_ENGINE_NAME_BYTES_MAX + 24];
	meta_projection_paths(e, name, dir, sizeof(dir), pending, path, sizeof(path));
	/* Best effort, and no folder sync: one left, or back after a power cut, is removed at
	 * the next open (M4). */
	(void)e->io->ops->unlink(e->io, pending);
}

static const char *const meta_kinds[] = {
	[RILL_PROJECTION_COUNT] = "count",
	[RILL_PROJECTION_SUM] = "sum",
	[RILL_PROJECTION_MIN] = "min",
	[RILL_PROJECTION_MAX] = "max",
	[RILL_PROJECTION_LAST] = "last",
	[RILL_PROJECTION_AVG] = "avg",
	[RILL_PROJECTION_WINDOW_COUNT] = "window_count",
	[RILL_PROJECTION_WINDOW_SUM] = "window_sum",
};

/* @text whole into a new file @path, synced: 0, or -errno with @path removed. */
static int meta_write_synced(struct rill_engine *e, const char *path, const char *text)
{
	struct rill_io *io = e->io;
	int handle;
	int rc = io->ops->open(io, path, RILL_IO_CREATE, &handle);
	if (rc < 0)
		return rc; /* a create that fails makes no file */
	rc = io->ops->truncate(io, handle, 0);
	if (rc == 0)
		rc = io->ops->pwrite(io, handle, text, strlen(text), 0);
	if (rc == 0)
		rc = io->ops->fsync(io, handle);
	int close_rc = io->ops->close(io, handle);
	if (rc == 0)
		rc = close_rc;
	if (rc < 0)
		(void)io->ops->unlink(io, path); /* best effort: the next open removes it */
	return rc;
}

int engine_meta_projection_stage(struct rill_engine *e, const struct rill_projection_def *d)
{
	if ((unsigned)d->kind >= RILL_ARRAY_COUNT(meta_kinds) || meta_kinds[d->kind] == NULL)
		return -EINVAL;
	json_t *j = json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:I}", "name", d->name, "topic",
			      d->topic, "type", d->type, "version", (json_int_t)d->version, "kind",
			      meta_kinds[d->kind], "field", d->field != NULL ? d->field : "",
			      "window_ns", (json_int_t)d->window_ns);
	char *text = j != NULL ? json_dumps(j, JSON_SORT_KEYS | JSON_INDENT(2)) : NULL;
	json_decref(j);
	if (text == NULL)
		return -ENOMEM;
	char dir[META_PATH_BYTES];
	char pending[META_PATH_BYTES + RILL_ENGINE_NAME_BYTES_MAX + 24];
	char path[META_PATH_BYTES + RILL_ENGINE_NAME_BYTES_MAX + 24];
	meta_projection_paths(e, d->name, dir, sizeof(dir), pending, path, sizeof(path));
	int rc = meta_write_synced(e, pending, text);
	free(text);
	return rc;
}

int engine_meta_projection_commit(struct rill_engine *e, const char *name)
{
	char dir[META_PATH_BYTES];
	char pending[META_PATH_BYTES + RILL_ENGINE_NAME_BYTES_MAX + 24];
	char path[META_PATH_BYTES + RILL_ENGINE_NAME_BYTES_MAX + 24];
	meta_projection_paths(e, name, dir, sizeof(dir), pending, path, sizeof(path));
	int rc = e->io->ops->rename(e->io, pending, path);
	if (rc < 0) {
		(void)e->io->ops->unlink(e->io, pending); /* best effort, as a discard */
		return rc;
	}
	/* The folder synced: until then a power cut could take the new name back. */
	rc = e->io->ops->fsync_dir(e->io, dir);
	if (rc < 0 && e->io->ops->unlink(e->io, path) == 0) {
		/* Best effort: should the name survive all the same, it is a definition that
		 * built, which the next open loads. */
		(void)e->io->ops->fsync_dir(e->io, dir);
	}
	return rc;
}

/* Whether @name is a pending definition's: ".NAME.json.pending" (M4). */
static bool meta_pending_name(const char *name)
{
	size_t n = strlen(name), suffix_bytes = sizeof(META_PENDING_SUFFIX) - 1;
	return n > suffix_bytes + 1 && name[0] == '.' && name[1] != '.' &&
	       strcmp(name + n - suffix_bytes, META_PENDING_SUFFIX) == 0;
}

static int meta_pending_entry(void *arg, const char *name)
{
	struct meta_sweep *s = arg;
	if (!meta_pending_name(name))
		return 0;
	/* Removed while listing: readdir(3) may return it again (then -ENOENT) or not. */
	char path[META_PATH_BYTES + RILL_ENGINE_NAME_BYTES_MAX + 24];
	snprintf(path, sizeof(path), "%s/%s", s->dir, name);
	int rc = s->e->io->ops->unlink(s->e->io, path);
	if (rc == -ENOENT)
		return 0;
	size_t n = strlen(name) - (sizeof(META_PENDING_SUFFIX) - 1) - 1;
	if (rc == 0)
		fprintf(stderr,
			"rill: %s: a create of projection %.*s cut short (never answered): removed "
			"(define it again)\n",
			path, (int)n, name + 1);
	else
		fprintf(stderr,
			"rill: %s: a create of projection %.*s cut short (never answered), not "
			"loaded; removing it failed (%s): remove it by hand\n",
			path, (int)n, name + 1, rill_strerror(rc));
	return 0;
}

/* M4: every pending definition in DATA/projections removed (best effort), each said. */
static void meta_pending_sweep(struct rill_engine *e)
{
	char dir[META_PATH_BYTES];
	snprintf(dir, sizeof(dir), "%s/projections", e->data_dir);
	struct meta_sweep s = {.e = e, .dir = dir};
	(void)e->io->ops->list(e->io, dir, meta_pending_entry, &s);
}

/* Names in a directory, sorted, so that definitions load in a stable order. */
struct meta_names {
	char **names;
	size_t count, capacity;
};

static int meta_names_add(void *arg, const char *name)
{
	struct meta_names *n = arg;
	if (name[0] == '.')
		return 0; /* temporary files of an interrupted write */
	if (n->count == RILL_ENGINE_TOPICS_MAX + RILL_ENGINE_PROJECTIONS_MAX)
		return -ENOSPC;
	if (n->count == n->capacity) {
		size_t cap = n->capacity ? n->capacity * 2 : 16;
		char **grown = realloc(n->names, cap * sizeof(*grown));
		if (grown == NULL)
			return -ENOMEM;
		n->names = grown;
		n->capacity = cap;
	}
	n->names[n->count] = strdup(name);
	if (n->names[n->count] == NULL)
		return -ENOMEM;
	n->count++;
	return 0;
}

static int meta_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void meta_names_free(struct meta_names *n)
{
	for (size_t i = 0; i < n->count; i++)
		free(n->names[i]);
	free(n->names);
}

static int meta_list(struct rill_engine *e, const char *sub, struct meta_names *n,
		     struct rill_error_text *err)
{
	char dir[META_PATH_BYTES];
	snprintf(dir, sizeof(dir), "%s/%s", e->data_dir, sub);
	int rc = e->io->ops->list(e->io, dir, meta_names_add, n);
	if (rc < 0)
		return engine_error(err, rc, "%s: %s", dir, rill_strerror(rc));
	if (n->count > 0)
		qsort(n->names, n->count, sizeof(*n->names), meta_cmp);
	return 0;
}

static int meta_bad(struct rill_error_text *err, const char *path, const char *what)
{
	return engine_error(err, RILL_E_JSON_INVALID, "%s: %s", path, what);
}

/* The first partition of a topic folder found not to be empty, or not to open to say. */
struct meta_unfinished {
	struct rill_engine *e;
	const char *dir; /* DATA/topics/NAME */
	char partition[16];
	uint64_t next_offset;
	int rc; /* its log's open error, or 0 */
};

/* Whether @name is a partition folder's: decimal digits, as engine partitions are named. */
static bool meta_partition_name(const char *name)
{
	size_t n = strspn(name, "0123456789");
	return n > 0 && n < 11 && name[n] == '\0';
}

static int meta_unfinished_entry(void *arg, const char *name)
{
	struct meta_unfinished *u = arg;
	if (!meta_partition_name(name))
		return 0;
	char path[META_PATH_BYTES + 16];
	snprintf(path, sizeof(path), "%s/%s", u->dir, name);
	/* Read-only: no lock, nothing written (a segment whose creation was cut short is left
	 * for the writer that reopens the partition, if its topic is created again). */
	struct rill_log_config config;
	rill_log_config_default(&config);
	config.read_only = true;
	struct rill_log *log;
	uint64_t next = 0;
	int rc = rill_log_open(&log, u->e->io, path, &config, NULL);
	if (rc == 0) {
		next = rill_log_next_offset(log);
		(void)rill_log_close(log); /* read-only: nothing to lose */
	}
	if (rc == 0 && next == 0)
		return 0;
	snprintf(u->partition, sizeof(u->partition), "%s", name);
	u->next_offset = next;
	u->rc = rc;
	return 1; /* found: stop listing */
}

/* M3: topic folder @dir has no topic.json (@path). 0 to skip it, or why it may not be. */
static int meta_topic_unfinished(struct rill_engine *e, const char *dir, const char *path,
				 struct rill_error_text *err)
{
	struct meta_unfinished u = {.e = e, .dir = dir};
	int rc = e->io->ops->list(e->io, dir, meta_unfinished_entry, &u);
	if (rc < 0)
		return engine_error(err, rc, "%s: %s", dir, rill_strerror(rc));
	if (rc == 0) {
		fprintf(stderr,
			"rill: %s: no topic.json, its partitions empty: a topic create cut short, "
			"skipped (create the topic again, or remove the folder)\n",
			dir);
		return 0;
	}
	char what[128];
	if (u.rc == 0)
		snprintf(what, sizeof(what), "holds events (offsets below %llu)",
			 (unsigned long long)u.next_offset);
	else
		snprintf(what, sizeof(what), "does not open to show it empty (%s)",
			 rill_strerror(u.rc));
	return engine_error(err, u.rc < 0 ? u.rc : -ENOENT,
			    "%s is missing, but partition %s %s: a topic whose definition was "
			    "lost, not a create cut short (restore it from a backup; or, to drop "
			    "the topic and its events, remove %s)",
			    path, u.partition, what, dir);
}

int engine_meta_topics_load(struct rill_engine *e,
			    int (*fn)(struct rill_engine *, const struct rill_topic_config *,
				      struct rill_error_text *),
			    struct rill_error_text *err)
{
	struct meta_names names = {0};
	int rc = meta_list(e, "topics", &names, err);
	for (size_t i = 0; rc == 0 && i < names.count; i++) {
		char dir[META_PATH_BYTES], path[META_PATH_BYTES];
		snprintf(dir, sizeof(dir), "%s/topics/%s", e->data_dir, names.names[i]);
		meta_temp_remove(e, dir, "topic.json");
		snprintf(path, sizeof(path), "%s/topics/%s/topic.json", e->data_dir,
			 names.names[i]);
		json_t *j;
		rc = meta_read(e, path, META_BYTES_MAX, &j, err);
		if (rc == -ENOENT) {
			rc = meta_topic_unfinished(e, dir, path, err); /* M3 */
			continue;
		}
		if (rc < 0) {
			if (rc != RILL_E_JSON_INVALID && rc != -EFBIG)
				engine_error(err, rc, "%s: %s", path, rill_strerror(rc));
			break;
		}
		const char *name, *durability;
		json_int_t parts, rbytes, rage, seg, bbytes, bdelay;
		if (json_unpack(j, "{s:s, s:I, s:s, s:I, s:I, s:I, s:I, s:I}", "name", &name,
				"partitions", &parts, "durability", &durability, "retention_bytes",
				&rbytes, "retention_age_ns", &rage, "segment_bytes_max", &seg,
				"batch_bytes_max", &bbytes, "batch_delay_ns", &bdelay) != 0 ||
		    strcmp(name, names.names[i]) != 0 || parts <= 0 || parts > UINT32_MAX ||
		    rbytes < 0 || rage < 0 || seg < 0 || bbytes < 0 || bbytes > UINT32_MAX ||
		    bdelay < 0 ||
		    (strcmp(durability, "group") != 0 && strcmp(durability, "none") != 0)) {
			rc = meta_bad(err, path, "not a topic definition");
		} else {
			struct rill_topic_config c = {.name = name,
						      .partitions = (uint32_t)parts,
						      .durability = strcmp(durability, "group") == 0
									    ? RILL_DURABILITY_GROUP
									    : RILL_DURABILITY_NONE,
						      .retention_bytes = (uint64_t)rbytes,
						      .retention_age_ns = (uint64_t)rage,
						      .segment_bytes_max = (uint64_t)seg,
						      .batch_bytes_max = (uint32_t)bbytes,
						      .batch_delay_ns = (uint64_t)bdelay};
			rc = fn(e, &c, err);
		}
		json_decref(j);
	}
	meta_names_free(&names);
	return rc;
}

static int meta_kind(const char *text)
{
	for (size_t k = 0; k < RILL_ARRAY_COUNT(meta_kinds); k++) {
		if (meta_kinds[k] != NULL && strcmp(meta_kinds[k], text) == 0)
			return (int)k;
	}
	return -1;
}

const char *rill_projection_kind_name(enum rill_projection_kind kind)
{
	return (unsigned)kind < RILL_ARRAY_COUNT(meta_kinds) ? meta_kinds[kind] : NULL;
}

int rill_projection_kind_parse(const char *name, enum rill_projection_kind *out)
{
	int k = name != NULL ? meta_kind(name) : -1;
	if (k < 0)
		return -EINVAL;
	*out = (enum rill_projection_kind)k;
	return 0;
}

/*
 * Consumer groups: DATA/groups/GROUP.json holds {"TOPIC": {"PARTITION": NEXT_OFFSET}},
 * replaced whole on every commit (temp file, fsync, rename, directory fsync). Commits are
 * rare (a consumer commits about once a second), so a file per group is enough. Their
 * number is bounded by config.groups_max (e->group_count, counted at open): each one costs
 * a file, and a new name is all a client needs to make one.
 */
static void meta_group_path(struct rill_engine *e, const char *group, char *path, size_t bytes)
{
	snprintf(path, bytes, "%s/groups/%s.json", e->data_dir, group);
}

/* Why the positions in @root are not a group's ({"TOPIC": {"PARTITION": OFFSET}}), into
 * @why; false when they are. */
static bool meta_group_bad(json_t *root, char *why, size_t bytes)
{
	if (!json_is_object(root)) {
		snprintf(why, bytes, "not a JSON object of topics");
		return true;
	}
	const char *topic;
	json_t *parts;
	json_object_foreach(root, topic, parts)
	{
		if (!json_is_object(parts)) {
			snprintf(why, bytes, "topic \"%.128s\": not an object of partitions",
				 topic);
			return true;
		}
		const char *partition;
		json_t *offset;
		json_object_foreach(parts, partition, offset)
		{
			if (!json_is_integer(offset) || json_integer_value(offset) < 0) {
				snprintf(why, bytes,
					 "topic \"%.128s\" partition \"%.16s\": not an offset (an "
					 "integer from 0)",
					 topic, partition);
				return true;
			}
		}
	}
	return false;
}

/*
 * Group @group's positions into @out (an empty object when it has no file). @fresh
 * (optional): set when it has no file yet. A file that does not load is said in @err
 * (optional) with its path and what to do: the positions are the operator's to restore or
 * give up, never guessed (a commit over it would drop every other position it holds).
 */
static int meta_group_load(struct rill_engine *e, const char *group, json_t **out, bool *fresh,
			   struct rill_error_text *err)
{
	char path[META_PATH_BYTES + RILL_ENGINE_NAME_BYTES_MAX + 16];
	meta_group_path(e, group, path, sizeof(path));
	struct rill_error_text why = {{0}};
	int rc = meta_read(e, path, META_GROUP_BYTES_MAX, out, &why);
	if (fresh != NULL)
		*fresh = rc == -ENOENT;
	if (rc == -ENOENT) {
		*out = json_object();
		return *out != NULL ? 0 : engine_error(err, -ENOMEM, "out of memory");
	}
	char bad[256];
	if (rc == 0 && meta_group_bad(*out, bad, sizeof(bad))) {
		json_decref(*out);
		rc = engine_error(&why, RILL_E_JSON_INVALID, "%s: %s", path, bad);
	}
	if (rc == RILL_E_JSON_INVALID || rc == -EFBIG)
		return engine_error(err, rc,
				    "%s; restore it from a backup, or delete the group (rill group "
				    "delete, rill_group_delete) to start it over with no position",
				    why.message);
	if (rc < 0)
		return engine_error(err, rc, "%s: %s", path, rill_strerror(rc));
	return 0;
}

/* Whether @group has a file: after a failed write, whether the rename got through. */
static bool meta_group_exists(struct rill_engine *e, const char *group)
{
	char path[META_PATH_BYTES + RILL_ENGINE_NAME_BYTES_MAX + 16];
	meta_group_path(e, group, path, sizeof(path));
	int handle;
	if (e->io->ops->open(e->io, path, RILL_IO_RDONLY, &handle) < 0)
		return false;
	e->io->ops->close(e->io, handle);
	return true;
}

/* A group's file: GROUP.json, not starting with a dot (a write's temporary file). */
static int meta_group_counted(void *arg, const char *name)
{
	size_t n = strlen(name);
	if (name[0] != '.' && n > 5 && strcmp(name + n - 5, ".json") == 0)
		(*(uint32_t *)arg)++;
	return 0;
}

int engine_meta_groups_count(struct rill_engine *e, struct rill_error_text *err)
{
	char dir[META_PATH_BYTES];
	snprintf(dir, sizeof(dir), "%s/groups", e->data_dir);
	uint32_t count = 0;
	/* Every group on disk counts, past config.groups_max too (a limit lowered since):
	 * they stay usable, and only new ones are refused while the count is at or over it. */
	int rc = e->io->ops->list(e->io, dir, meta_group_counted, &count);
	if (rc < 0)
		return engine_error(err, rc, "%s: %s", dir, rill_strerror(rc));
	e->group_count = count;
	return 0;
}

int engine_meta_group_commit(struct rill_engine *e, const char *group, const char *topic,
			     const struct rill_group_position *positions, uint32_t count,
			     struct rill_error_text *err)
{
	json_t *root;
	bool fresh = false;
	int rc = meta_group_load(e, group, &root, &fresh, err);
	if (rc < 0)
		return rc;
	if (fresh && e->group_count >= e->config.groups_max) {
		json_decref(root);
		/* no errno: those are the disk's */
		return engine_error(err, RILL_E_GROUPS_FULL,
				    "a new group, and the engine holds %u consumer groups "
				    "(groups_max): commit to one of them, or delete one",
				    e->group_count);
	}
	json_t *t = json_object_get(root, topic);
	if (!json_is_object(t)) {
		t = json_object();
		if (t == NULL || json_object_set_new(root, topic, t) != 0)
			rc = -ENOMEM; /* set_new took t, even on failure */
	}
	/* Every position into the one document, then one write: all of them, or none. */
	for (uint32_t i = 0; rc == 0 && i < count; i++) {
		char key[16];
		snprintf(key, sizeof(key), "%u", positions[i].partition);
		if (json_object_set_new(t, key,
					json_integer((json_int_t)positions[i].next_offset)) != 0)
			rc = -ENOMEM; /* else the file were rewritten without it, the commit "done" */
	}
	if (rc < 0) {
		json_decref(root);
		return engine_error(err, rc, "out of memory");
	}
	char dir[META_PATH_BYTES], name[RILL_ENGINE_NAME_BYTES_MAX + 8];
	snprintf(dir, sizeof(dir), "%s/groups", e->data_dir);
	snprintf(name, sizeof(name), "%s.json", group);
	rc = meta_write_json(e, dir, name, root);
	/* A write that failed after its rename (the directory's sync) left the file: it
	 * counts, as the next open would count it. */
	if (fresh && (rc == 0 || meta_group_exists(e, group)))
		e->group_count++;
	if (rc < 0)
		return engine_error(err, rc, "%s/%s: writing it: %s", dir, name, rill_strerror(rc));
	return 0;
}

int engine_meta_group_delete(struct rill_engine *e, const char *group)
{
	char dir[META_PATH_BYTES], path[META_PATH_BYTES + RILL_ENGINE_NAME_BYTES_MAX + 16];
	snprintf(dir, sizeof(dir), "%s/groups", e->data_dir);
	meta_group_path(e, group, path, sizeof(path));
	int rc = e->io->ops->unlink(e->io, path);
	if (rc < 0)
		return rc;      /* -ENOENT: no such group */
	if (e->group_count > 0) /* else a file put there by hand since the open */
		e->group_count--;
	/* The name gone for good: a power cut must not bring the group back. */
	return e->io->ops->fsync_dir(e->io, dir);
}

int engine_meta_group_offset(struct rill_engine *e, const char *group, const char *topic,
			     uint32_t partition, uint64_t *offset, struct rill_error_text *err)
{
	json_t *root;
	int rc = meta_group_load(e, group, &root, NULL, err);
	if (rc < 0)
		return rc;
	char key[16];
	snprintf(key, sizeof(key), "%u", partition);
	json_t *v = json_object_get(json_object_get(root, topic), key);
	rc = json_is_integer(v) && json_integer_value(v) >= 0 ? 0 : -ENOENT;
	if (rc == 0)
		*offset = (uint64_t)json_integer_value(v);
	json_decref(root);
	return rc;
}

int engine_meta_projections_load(struct rill_engine *e,
				 int (*fn)(struct rill_engine *, const struct rill_projection_def *,
					   struct rill_error_text *),
				 struct rill_error_text *err)
{
	meta_pending_sweep(e); /* M4: never loaded (meta_names_add skips them anyway) */
	struct meta_names names = {0};
	int rc = meta_list(e, "projections", &names, err);
	for (size_t i = 0; rc == 0 && i < names.count; i++) {
		char path[META_PATH_BYTES];
		snprintf(path, sizeof(path), "%s/projections/%s", e->data_dir, names.names[i]);
		size_t n = strlen(names.names[i]);
		if (n < 6 || strcmp(names.names[i] + n - 5, ".json") != 0) {
			/* Not one of ours (an operator's copy, say "p.json.bak"): loading it too
			 * would define its projection twice. */
			fprintf(stderr, "rill: %s: not a definition (NAME.json): ignored\n", path);
			continue;
		}
		json_t *j;
		rc = meta_read(e, path, META_BYTES_MAX, &j, err);
		if (rc < 0) {
			if (rc != RILL_E_JSON_INVALID && rc != -EFBIG)
				engine_error(err, rc, "%s: %s", path, rill_strerror(rc));
			break;
		}
		const char *name, *topic, *type, *kind, *field;
		json_int_t version, window;
		int k = -1;
		if (json_unpack(j, "{s:s, s:s, s:s, s:I, s:s, s:s, s:I}", "name", &name, "topic",
				&topic, "type", &type, "version", &version, "kind", &kind, "field",
				&field, "window_ns", &window) != 0 ||
		    version <= 0 || version > UINT16_MAX || window < 0 ||
		    (k = meta_kind(kind)) < 0 || strlen(name) != n - 5 ||
		    memcmp(name, names.names[i], n - 5) != 0) {
			rc = meta_bad(err, path, "not a projection definition (or not NAME.json)");
		} else {
			struct rill_projection_def d = {.name = name,
							.topic = topic,
							.type = type,
							.version = (uint16_t)version,
							.kind = (enum rill_projection_kind)k,
							.field = field[0] != '\0' ? field : NULL,
							.window_ns = (uint64_t)window};
			rc = fn(e, &d, err);
		}
		json_decref(j);
	}
	meta_names_free(&names);
	return rc;
}
