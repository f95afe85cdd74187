/*
 * ADMIN requests: JSON in, JSON out (the ops and their fields are listed in io/wire.h and
 * docs/PROTOCOL.md), parsed with jansson. Each op calls the engine's control API, which
 * blocks (files are written and synced), so admin work runs one request at a time. Runs
 * on a worker thread; not on the hot path.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/assert.h"
#include "base/compiler.h"
#include "io/server_int.h"
#include "rill/schema.h"

#define ADMIN_NAME_MAX 128u

static int admin_fail(char *msg, size_t msg_bytes, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int admin_fail(char *msg, size_t msg_bytes, int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, msg_bytes, fmt, ap);
	va_end(ap);
	return rc;
}

/* @key of @in as a string (NULL when absent and @optional), or an error in @msg. */
static int admin_str(json_t *in, const char *key, bool optional, const char **out, char *msg,
		     size_t msg_bytes)
{
	json_t *v = json_object_get(in, key);
	if (v == NULL && optional) {
		*out = NULL;
		return 0;
	}
	if (!json_is_string(v) || json_string_length(v) == 0 ||
	    json_string_length(v) > ADMIN_NAME_MAX)
		return admin_fail(msg, msg_bytes, -EINVAL,
				  "\"%s\": expected a string of 1 to %u bytes", key,
				  ADMIN_NAME_MAX);
	/* Requests are read with \u0000 allowed (a schema's string default may hold one): a
	 * name must not, or what follows it would be cut off unseen. */
	if (strlen(json_string_value(v)) != json_string_length(v))
		return admin_fail(msg, msg_bytes, -EINVAL, "\"%s\": a \\u0000 in it", key);
	*out = json_string_value(v);
	return 0;
}

/* @key of @in as an unsigned integer up to @max (@dflt when absent). */
#define ADMIN_BYTES_MAX (1ull << 60)               /* retention and segment sizes */
#define ADMIN_AGE_S_MAX (100ull * 365 * 24 * 3600) /* retention age: a century */

static int admin_uint(json_t *in, const char *key, uint64_t dflt, uint64_t max, uint64_t *out,
		      char *msg, size_t msg_bytes)
{
	json_t *v = json_object_get(in, key);
	if (v == NULL) {
		*out = dflt;
		return 0;
	}
	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    (uint64_t)json_integer_value(v) > max)
		return admin_fail(msg, msg_bytes, -EINVAL,
				  "\"%s\": expected an integer from 0 to %llu", key,
				  (unsigned long long)max);
	*out = (uint64_t)json_integer_value(v);
	return 0;
}

static struct rill_topic *admin_topic(struct rill_server *s, json_t *in, const char *key, char *msg,
				      size_t msg_bytes)
{
	const char *name = NULL;
	if (admin_str(in, key, false, &name, msg, msg_bytes) < 0)
		return NULL;
	struct rill_topic *t = rill_topic_find(s->engine, name);
	if (t == NULL)
		admin_fail(msg, msg_bytes, -ENOENT, "no topic '%s'", name);
	return t;
}

static json_t *admin_topic_json(const struct rill_topic *t)
{
	const struct rill_topic_config *c = rill_topic_config_get(t);
	return json_pack("{s:s, s:I, s:s, s:I, s:I, s:I, s:I}", "name", c->name, "partitions",
			 (json_int_t)c->partitions, "durability",
			 c->durability == RILL_DURABILITY_GROUP ? "group" : "none",
			 "batch_delay_us", (json_int_t)(c->batch_delay_ns / 1000u),
			 "retention_bytes", (json_int_t)c->retention_bytes, "retention_age_s",
			 (json_int_t)(c->retention_age_ns / 1000000000u), "segment_bytes",
			 (json_int_t)c->segment_bytes_max);
}

static int admin_topic_create(struct rill_server *s, json_t *in, json_t **out, char *msg,
			      size_t msg_bytes)
{
	struct rill_topic_config c = {0};
	const char *durability = NULL;
	uint64_t parts = 0, delay_us = 0, retention_s = 0;
	int rc = admin_str(in, "name", false, &c.name, msg, msg_bytes);
	if (rc == 0)
		rc = admin_uint(in, "partitions", 1, RILL_ENGINE_PARTITIONS_MAX, &parts, msg,
				msg_bytes);
	if (rc == 0)
		rc = admin_uint(in, "batch_delay_us", 0, 10000000u, &delay_us, msg, msg_bytes);
	/* Retention and segment size (0: keep all, the log's default); the engine checks the
	 * segment size against the log's limits. */
	if (rc == 0)
		rc = admin_uint(in, "retention_bytes", 0, ADMIN_BYTES_MAX, &c.retention_bytes, msg,
				msg_bytes);
	if (rc == 0)
		rc = admin_uint(in, "retention_age_s", 0, ADMIN_AGE_S_MAX, &retention_s, msg,
				msg_bytes);
	if (rc == 0)
		rc = admin_uint(in, "segment_bytes", 0, ADMIN_BYTES_MAX, &c.segment_bytes_max, msg,
				msg_bytes);
	if (rc == 0)
		rc = admin_str(in, "durability", true, &durability, msg, msg_bytes);
	if (rc < 0)
		return rc;
	c.partitions = (uint32_t)parts;
	c.batch_delay_ns = delay_us * 1000u;
	c.retention_age_ns = retention_s * 1000000000u;
	if (durability == NULL || strcmp(durability, "none") == 0)
		c.durability = RILL_DURABILITY_NONE;
	else if (strcmp(durability, "group") == 0)
		c.durability = RILL_DURABILITY_GROUP;
	else
		return admin_fail(msg, msg_bytes, -EINVAL,
				  "\"durability\": \"%s\": expected none or group", durability);
	struct rill_topic *t = NULL;
	struct rill_error_text err = {{0}};
	/* A new topic's partitions hold their files for good: checked against the open-file
	 * budget (rill_server_fds_budget), checked and made under its lock so that the
	 * budget is never counted half way through. A topic that exists makes nothing: the
	 * engine answers it (the same one, or -EEXIST). */
	pthread_mutex_lock(&s->fds_lock);
	if (rill_topic_find(s->engine, c.name) == NULL)
		rc = srv_fds_topic_check(s, c.name, c.partitions, msg, msg_bytes);
	bool refused = rc < 0; /* msg says why */
	if (!refused)
		rc = rill_topic_create(s->engine, &c, &t, &err);
	pthread_mutex_unlock(&s->fds_lock);
	if (refused)
		return rc;
	if (rc < 0)
		return admin_fail(msg, msg_bytes, rc, "topic '%s': %s", c.name,
				  err.message[0] != '\0' ? err.message : rill_strerror(rc));
	*out = admin_topic_json(t);
	return 0;
}

/*
 * A SCHEMAS answer of one entry: its definition (its canonical text: the answer's JSON
 * dumps it again as it was stored) within ADMIN_SCHEMAS_WRAP, with room to spare, and the
 * ADMIN_OK frame's fixed part.
 */
#define ADMIN_SCHEMAS_WRAP       "{\"schemas\":[{\"type_id\":4294967295,\"definition\":}],\"more\":false}"
#define ADMIN_SCHEMAS_WRAP_BYTES 128u
_Static_assert(sizeof(ADMIN_SCHEMAS_WRAP) - 1 <= ADMIN_SCHEMAS_WRAP_BYTES,
	       "a one-entry SCHEMAS answer's wrapping fits its allowance");

/* Whether a definition of @def_bytes goes into a SCHEMAS answer within a frame of @s's. */
static bool admin_schema_fits(const struct rill_server *s, size_t def_bytes)
{
	return def_bytes + ADMIN_SCHEMAS_WRAP_BYTES + RILL_WIRE_ADMIN_OK_BYTES_MIN <=
	       s->config.frame_bytes_max;
}

/*
 * A definition this server could never answer in SCHEMAS would break SCHEMAS, and with it
 * every client's produce and consume, for good (definitions are not deleted): refused
 * here, before anything is stored. -EMSGSIZE, or 0.
 */
static int admin_schema_size_check(struct rill_server *s, const char *text, char *msg,
				   size_t msg_bytes)
{
	struct rill_schema *parsed = NULL;
	if (rill_schema_parse(&parsed, text, strlen(text), NULL) != 0)
		return 0; /* the registry says what is wrong with it */
	size_t bytes = strlen(rill_schema_definition(parsed));
	int rc = 0;
	if (!admin_schema_fits(s, bytes))
		rc = admin_fail(msg, msg_bytes, -EMSGSIZE,
				"schema: %s v%u: its definition takes %zu bytes as stored, and a "
				"SCHEMAS answer holding it would not fit this server's frames "
				"(frame_bytes_max %u: at most %u bytes of definition); shorten it "
				"(its docs), or raise frame_bytes_max",
				rill_schema_type_name(parsed), rill_schema_version(parsed), bytes,
				s->config.frame_bytes_max,
				s->config.frame_bytes_max - ADMIN_SCHEMAS_WRAP_BYTES -
					RILL_WIRE_ADMIN_OK_BYTES_MIN);
	rill_schema_free(parsed);
	return rc;
}

static int admin_schema_register(struct rill_server *s, json_t *in, json_t **out, char *msg,
				 size_t msg_bytes)
{
	json_t *def = json_object_get(in, "schema");
	const char *compat_name = NULL;
	if (!json_is_object(def))
		return admin_fail(msg, msg_bytes, -EINVAL, "\"schema\": expected an object");
	int rc = admin_str(in, "compat", true, &compat_name, msg, msg_bytes);
	enum rill_schema_compat compat;
	if (rc == 0 && compat_name != NULL && rill_schema_compat_parse(compat_name, &compat) < 0)
		rc = admin_fail(msg, msg_bytes, -EINVAL, "\"compat\": unknown mode '%s'",
				compat_name);
	if (rc < 0)
		return rc;
	char *text = json_dumps(def, JSON_COMPACT);
	if (text == NULL)
		return admin_fail(msg, msg_bytes, -ENOMEM, "out of memory");
	rc = admin_schema_size_check(s, text, msg, msg_bytes);
	if (rc < 0) {
		free(text);
		return rc;
	}
	const struct rill_schema *schema = NULL;
	struct rill_schema_error err = {{0}};
	rc = rill_schema_register(rill_engine_schemas(s->engine), text, strlen(text),
				  compat_name != NULL ? (int)compat : -1, &schema, &err);
	free(text);
	if (rc < 0)
		return admin_fail(msg, msg_bytes, rc, "schema: %s",
				  err.message[0] != '\0' ? err.message : rill_strerror(rc));
	*out = json_pack("{s:s, s:I, s:I}", "type", rill_schema_type_name(schema), "version",
			 (json_int_t)rill_schema_version(schema), "type_id",
			 (json_int_t)rill_schema_type_id(schema));
	return 0;
}

static int admin_projection_create(struct rill_server *s, json_t *in, json_t **out, char *msg,
				   size_t msg_bytes)
{
	struct rill_projection_def d = {0};
	const char *kind = NULL;
	uint64_t version = 0, window = 0;
	int rc = admin_str(in, "name", false, &d.name, msg, msg_bytes);
	if (rc == 0)
		rc = admin_str(in, "topic", false, &d.topic, msg, msg_bytes);
	if (rc == 0)
		rc = admin_str(in, "type", false, &d.type, msg, msg_bytes);
	if (rc == 0)
		rc = admin_str(in, "kind", false, &kind, msg, msg_bytes);
	if (rc == 0)
		rc = admin_str(in, "field", true, &d.field, msg, msg_bytes);
	if (rc == 0)
		rc = admin_uint(in, "version", 0, UINT16_MAX, &version, msg, msg_bytes);
	if (rc == 0)
		rc = admin_uint(in, "window_ns", 0, UINT64_MAX >> 1, &window, msg, msg_bytes);
	if (rc == 0 && rill_projection_kind_parse(kind, &d.kind) < 0)
		rc = admin_fail(msg, msg_bytes, -EINVAL, "\"kind\": unknown kind '%s'", kind);
	if (rc < 0)
		return rc;
	d.version = (uint16_t)version;
	d.window_ns = window;
	struct rill_error_text err = {{0}};
	rc = rill_projection_define(s->engine, &d, &err);
	if (rc < 0)
		return admin_fail(msg, msg_bytes, rc, "projection '%s': %s", d.name,
				  err.message[0] != '\0' ? err.message : rill_strerror(rc));
	*out = json_pack("{s:s}", "name", d.name);
	return 0;
}

static json_t *admin_latency(const struct rill_latency *l)
{
	return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "count", (json_int_t)l->count, "p50_ns",
			 (json_int_t)l->p50_ns, "p99_ns", (json_int_t)l->p99_ns, "p999_ns",
			 (json_int_t)l->p999_ns, "p9999_ns", (json_int_t)l->p9999_ns, "max_ns",
			 (json_int_t)l->max_ns);
}

static json_t *admin_shard_json(uint32_t i, const struct rill_shard_stats *st)
{
	json_t *j = json_pack(
		"{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "shard", (json_int_t)i,
		"partitions", (json_int_t)st->partitions, "events", (json_int_t)st->events,
		"duplicates", (json_int_t)st->duplicates, "refused", (json_int_t)st->refused,
		"stalls", (json_int_t)st->stalls, "local", (json_int_t)st->local, "sleeps",
		(json_int_t)st->sleeps, "snapshots", (json_int_t)st->snapshots, "snapshot_errors",
		(json_int_t)st->snapshot_errors, "preempted", (json_int_t)st->preempted);
	if (j != NULL)
		json_object_set_new(j, "projection_errors",
				    json_integer((json_int_t)st->projection_errors));
	if (j != NULL)
		json_object_set_new(j, "partitions_stopped",
				    json_integer((json_int_t)st->partitions_stopped));
	if (j != NULL)
		json_object_set_new(j, "lost", json_integer((json_int_t)st->lost));
	if (j != NULL)
		json_object_set_new(j, "projection_late",
				    json_integer((json_int_t)st->projection_late));
	if (j != NULL)
		json_object_set_new(j, "snapshots_skipped",
				    json_integer((json_int_t)st->snapshots_skipped));
	if (j != NULL)
		json_object_set_new(
			j, "latency",
			json_pack("{s:o, s:o, s:o, s:o, s:o}", "ring", admin_latency(&st->ring),
				  "apply", admin_latency(&st->apply), "applied",
				  admin_latency(&st->applied), "durable",
				  admin_latency(&st->durable), "sync", admin_latency(&st->sync)));
	return j;
}

static int admin_stat(struct rill_server *s, json_t **out, char *msg, size_t msg_bytes)
{
	json_t *shards = json_array();
	for (uint32_t i = 0; shards != NULL && i < rill_engine_shards(s->engine); i++) {
		struct rill_shard_stats st;
		int rc = rill_engine_shard_stats(s->engine, i, &st);
		if (rc < 0) {
			json_decref(shards);
			return admin_fail(msg, msg_bytes, rc, "shard %u: %s", i, rill_strerror(rc));
		}
		json_array_append_new(shards, admin_shard_json(i, &st));
	}
	struct rill_server_stats ss;
	rill_server_stats_get(s, &ss);
	json_t *server = json_pack(
		"{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
		"connections", (json_int_t)ss.connections, "accepted", (json_int_t)ss.accepted,
		"refused", (json_int_t)ss.refused, "frames", (json_int_t)ss.frames, "bad_frames",
		(json_int_t)ss.bad_frames, "events", (json_int_t)ss.events, "acks",
		(json_int_t)ss.acks, "backpressure", (json_int_t)ss.backpressure, "cut_off",
		(json_int_t)ss.cut_off, "bytes_in", (json_int_t)ss.bytes_in, "bytes_out",
		(json_int_t)ss.bytes_out, "inflight_bytes", (json_int_t)ss.inflight_bytes,
		"inflight_bytes_peak", (json_int_t)ss.inflight_bytes_peak, "input_bytes",
		(json_int_t)ss.input_bytes, "input_bytes_peak", (json_int_t)ss.input_bytes_peak);
	if (server != NULL) /* the control thread's own, as this STAT is */
		json_object_set_new(server, "group_commits",
				    json_integer((json_int_t)s->group_commits));
	*out = json_pack("{s:o, s:o, s:I}", "shards", shards, "server", server,
			 "engine_backpressure", (json_int_t)rill_engine_backpressure(s->engine));
	pthread_mutex_lock(&s->stat_lock);
	if (*out != NULL && s->stat_fn != NULL) {
		char text[4096];
		int rc = s->stat_fn(s->stat_arg, text, sizeof(text));
		json_error_t jerr;
		json_t *extra = rc == 0 ? json_loads(text, 0, &jerr) : NULL;
		if (!json_is_object(extra)) {
			json_decref(extra);
			extra = json_pack("{s:s}", "error",
					  rc < 0 ? rill_strerror(rc) : "not a JSON object");
		}
		json_object_set_new(*out, s->stat_name, extra);
	}
	pthread_mutex_unlock(&s->stat_lock);
	return 0;
}

/*
 * A page of SCHEMAS: the versions after (after_type_id, after_version), in that order, as
 * many as fit in an answer of @budget bytes (at least one); "more" when some are left. A
 * version whose definition cannot fit a frame of this server's (stored in process, or
 * under a larger frame_bytes_max before a restart) is listed without it, as
 * {"type_id","type","version","too_large":true,"definition_bytes"}: one such version must
 * not make SCHEMAS fail for every client.
 */
struct admin_schemas {
	const struct rill_server *server;
	struct rill_schema_registry *reg;
	json_t *list;
	uint64_t after_id, after_version;
	size_t used, budget;
	bool more;
};

static int admin_schemas_one(void *arg, const struct rill_schema_type_info *info)
{
	struct admin_schemas *a = arg;
	for (uint16_t v = 1; v <= info->latest_version; v++) {
		if (info->type_id < a->after_id ||
		    (info->type_id == a->after_id && v <= a->after_version))
			continue;
		const struct rill_schema *schema = rill_schema_get(a->reg, info->name, v);
		if (schema == NULL)
			continue;
		size_t def_bytes = strlen(rill_schema_definition(schema));
		bool fits = admin_schema_fits(a->server, def_bytes);
		size_t bytes = (fits ? def_bytes : strlen(info->name)) + 96; /* the entry's keys */
		if (a->used + bytes > a->budget && json_array_size(a->list) > 0) {
			a->more = true;
			return 1; /* the page is full: the walk stops */
		}
		a->used += bytes;
		json_t *def =
			fits ? json_loads(rill_schema_definition(schema), JSON_ALLOW_NUL, NULL)
			     : NULL;
		json_t *entry = NULL;
		if (def != NULL)
			entry = json_pack("{s:I, s:o}", "type_id", (json_int_t)info->type_id,
					  "definition", def);
		else if (!fits)
			entry = json_pack("{s:I, s:s, s:I, s:b, s:I}", "type_id",
					  (json_int_t)info->type_id, "type", info->name, "version",
					  (json_int_t)v, "too_large", true, "definition_bytes",
					  (json_int_t)def_bytes);
		if (entry == NULL)
			return -ENOMEM;
		json_array_append_new(a->list, entry);
	}
	return 0;
}

static int admin_schemas(struct rill_server *s, json_t *in, json_t **out, char *msg,
			 size_t msg_bytes)
{
	struct admin_schemas a = {.server = s,
				  .reg = rill_engine_schemas(s->engine),
				  .list = json_array(),
				  .budget =
					  s->config.frame_bytes_max / 2}; /* room for JSON's own */
	int rc = admin_uint(in, "after_type_id", 0, UINT32_MAX, &a.after_id, msg, msg_bytes);
	if (rc == 0)
		rc = admin_uint(in, "after_version", 0, UINT16_MAX, &a.after_version, msg,
				msg_bytes);
	if (rc < 0) {
		json_decref(a.list);
		return rc;
	}
	rc = a.list != NULL ? rill_schema_list(a.reg, admin_schemas_one, &a) : -ENOMEM;
	if (rc < 0) {
		json_decref(a.list);
		return admin_fail(msg, msg_bytes, rc, "schemas: %s", rill_strerror(rc));
	}
	*out = json_pack("{s:o, s:b}", "schemas", a.list, "more", a.more);
	return 0;
}

/*
 * A group op's failure, from the engine's @err. One the client did not cause (a damaged
 * group file, an I/O error) is the operator's to mend: said on the server's stderr too,
 * once per failed request, since the client's answer may never reach them.
 */
static int admin_group_fail(char *msg, size_t msg_bytes, int rc, const char *group,
			    const struct rill_error_text *err)
{
	const char *why = err->message[0] != '\0' ? err->message : rill_strerror(rc);
	if (rc != -EINVAL && rc != -ERANGE && rc != -ESHUTDOWN)
		fprintf(stderr, "rill: serve: group '%s': %s\n", group, why);
	return admin_fail(msg, msg_bytes, rc, "group '%s': %s", group, why);
}

/* "offsets" key @key as a partition of a topic of @parts: its decimal digits, no sign and
 * no leading zero (so that "01" and "1" cannot both name partition 1). */
_Static_assert(RILL_ENGINE_PARTITIONS_MAX <= 10000, "a partition's key: 4 digits at most");
static bool admin_partition_key(const char *key, uint32_t parts, uint32_t *out)
{
	size_t n = strlen(key);
	if (n == 0 || n > 4 || (key[0] == '0' && n > 1))
		return false;
	uint32_t v = 0;
	for (size_t i = 0; i < n; i++) {
		if (key[i] < '0' || key[i] > '9')
			return false;
		v = v * 10 + (uint32_t)(key[i] - '0');
	}
	*out = v;
	return v < parts;
}

/*
 * GROUP_COMMIT's positions, in one of two forms, exactly one: "partition" and "offset"
 * (one partition), or "offsets": {"PARTITION": OFFSET, ...} (1 to @parts partitions, each
 * once: the request is read with JSON_REJECT_DUPLICATES). Into @pos (room for @parts),
 * their number into @count; or -EINVAL saying what is wrong.
 */
static int admin_group_positions(json_t *in, uint32_t parts, struct rill_group_position *pos,
				 uint32_t *count, char *msg, size_t msg_bytes)
{
	json_t *many = json_object_get(in, "offsets");
	bool one =
		json_object_get(in, "partition") != NULL || json_object_get(in, "offset") != NULL;
	if (many != NULL && one)
		return admin_fail(
			msg, msg_bytes, -EINVAL,
			"\"offsets\", or \"partition\" and \"offset\": one form, not both");
	if (many == NULL) {
		uint64_t p = UINT64_MAX, offset = UINT64_MAX;
		int rc = admin_uint(in, "partition", UINT64_MAX, parts - 1, &p, msg, msg_bytes);
		if (rc == 0)
			rc = admin_uint(in, "offset", UINT64_MAX, INT64_MAX, &offset, msg,
					msg_bytes);
		if (rc == 0 && (p == UINT64_MAX || offset == UINT64_MAX))
			rc = admin_fail(msg, msg_bytes, -EINVAL,
					"\"partition\" and \"offset\" needed (or \"offsets\")");
		pos[0] = (struct rill_group_position){(uint32_t)p, offset};
		*count = 1;
		return rc;
	}
	if (!json_is_object(many) || json_object_size(many) == 0 || json_object_size(many) > parts)
		return admin_fail(msg, msg_bytes, -EINVAL,
				  "\"offsets\": expected an object of 1 to %u \"PARTITION\": "
				  "OFFSET (the topic's partitions, each once)",
				  parts);
	const char *key;
	json_t *v;
	uint32_t n = 0;
	json_object_foreach(many, key, v)
	{
		uint32_t p;
		if (!admin_partition_key(key, parts, &p))
			return admin_fail(msg, msg_bytes, -EINVAL,
					  "\"offsets\": \"%.16s\": not a partition (0 to %u, in "
					  "decimal)",
					  key, parts - 1);
		if (!json_is_integer(v) || json_integer_value(v) < 0)
			return admin_fail(msg, msg_bytes, -EINVAL,
					  "\"offsets\": \"%s\": expected an integer from 0 to %lld",
					  key, (long long)INT64_MAX);
		pos[n++] = (struct rill_group_position){p, (uint64_t)json_integer_value(v)};
	}
	*count = n;
	return 0;
}

/* GROUP_COMMIT: every position given, in one write of the group's file. */
static int admin_group_commit(struct rill_server *s, const char *group, struct rill_topic *t,
			      json_t *in, json_t **out, char *msg, size_t msg_bytes)
{
	uint32_t parts = rill_topic_partitions(t), count = 0;
	struct rill_group_position *pos = calloc(parts, sizeof(*pos)); /* 16 KiB at most */
	if (pos == NULL)
		return admin_fail(msg, msg_bytes, -ENOMEM, "out of memory");
	int rc = admin_group_positions(in, parts, pos, &count, msg, msg_bytes);
	if (rc < 0) {
		free(pos);
		return rc;
	}
	struct rill_error_text err = {{0}};
	rc = rill_group_commit_many(s->engine, group, t, pos, count, &err);
	free(pos);
	if (rc == 0) {
		*out = json_object();
		return 0;
	}
	if (rc == RILL_E_GROUPS_FULL)
		return admin_fail(msg, msg_bytes, rc,
				  "group '%s': a new group, and the engine holds %u "
				  "consumer groups ([engine] groups_max): commit to an "
				  "existing group, delete one (GROUP_DELETE), or raise "
				  "groups_max",
				  group, rill_group_count(s->engine));
	return admin_group_fail(msg, msg_bytes, rc, group, &err);
}

static int admin_group(struct rill_server *s, uint16_t op, json_t *in, json_t **out, char *msg,
		       size_t msg_bytes)
{
	const char *group = NULL;
	int rc = admin_str(in, "group", false, &group, msg, msg_bytes);
	struct rill_topic *t = rc == 0 ? admin_topic(s, in, "topic", msg, msg_bytes) : NULL;
	if (t == NULL)
		return rc < 0 ? rc : -ENOENT;
	if (op == RILL_WIRE_ADMIN_GROUP_COMMIT)
		return admin_group_commit(s, group, t, in, out, msg, msg_bytes);
	uint32_t parts = rill_topic_partitions(t);
	json_t *offsets = json_array();
	for (uint32_t p = 0; offsets != NULL && p < parts; p++) {
		uint64_t offset;
		struct rill_error_text err = {{0}};
		rc = rill_group_offset(s->engine, group, t, p, &offset, &err);
		if (rc == -ENOENT)
			continue;
		if (rc < 0) {
			json_decref(offsets);
			return admin_group_fail(msg, msg_bytes, rc, group, &err);
		}
		json_array_append_new(offsets, json_pack("{s:I, s:I}", "partition", (json_int_t)p,
							 "offset", (json_int_t)offset));
	}
	*out = json_pack("{s:o}", "offsets", offsets);
	return 0;
}

static int admin_group_delete(struct rill_server *s, json_t *in, json_t **out, char *msg,
			      size_t msg_bytes)
{
	const char *group = NULL;
	int rc = admin_str(in, "group", false, &group, msg, msg_bytes);
	if (rc < 0)
		return rc;
	rc = rill_group_delete(s->engine, group);
	if (rc < 0)
		return admin_fail(msg, msg_bytes, rc, "group '%s': %s", group,
				  rc == -ENOENT ? "no such group" : rill_strerror(rc));
	*out = json_object();
	return 0;
}

/* ---- Listing and inspecting: TOPICS, PROJECTIONS, TOPIC_INFO's partitions ----------- */

/*
 * Keys of @in that @op does not take: -EINVAL naming the first, so that a misspelt cursor
 * ("afer") is an error rather than the first page again. The ops that came before these
 * ignore keys they do not know, and keep doing so (their clients may send more).
 */
static int admin_keys_known(json_t *in, const char *op, const char *const *keys, size_t count,
			    char *msg, size_t msg_bytes)
{
	const char *key;
	json_t *v;
	json_object_foreach(in, key, v)
	{
		bool known = false;
		for (size_t k = 0; k < count && !known; k++)
			known = strcmp(key, keys[k]) == 0;
		if (!known)
			return admin_fail(msg, msg_bytes, -EINVAL,
					  "\"%.64s\": %s takes no such key", key, op);
	}
	return 0;
}

/*
 * How much a listing answer can take is worked out from the limits, not measured: every
 * name in it (topic, projection, type, field) is at most 128 bytes of [A-Za-z0-9_.-], which
 * JSON writes as they are, and every integer at most 20 characters ("-9223372036854775808",
 * json_int_t's widest). A topic's entry is then at most
 *   sizeof(ADMIN_TOPIC_KEYS) - 1 (115) + 128 + 5 ("group") + 6 × 20 = 368 bytes,
 * and 1,024 topics (RILL_ENGINE_TOPICS_MAX) 376,832 bytes: more than the least frame a
 * server may be set to (64 KiB), so TOPICS answers a page. A projection's entry is at most
 *   sizeof(ADMIN_PROJECTION_KEYS) - 1 (78) + 4 × 128 + 12 ("window_count") + 2 × 20 = 642
 * bytes, and 256 projections (RILL_ENGINE_PROJECTIONS_MAX) 164,352: PROJECTIONS pages
 * too. A page holds as many entries as the server's frame takes at the worst: with the
 * default 1 MiB frame, every topic (2,849 would fit) and every projection (1,633) in one
 * page; with 64 KiB, 177 and 102. ADMIN_LIST_WRAP is the longer answer's wrapping.
 */
#define ADMIN_INT_CHARS_MAX 20u
#define ADMIN_TOPIC_KEYS                                                                           \
	"{\"name\":\"\",\"partitions\":,\"durability\":\"\",\"batch_delay_us\":,"                  \
	"\"retention_bytes\":,\"retention_age_s\":,\"segment_bytes\":},"
#define ADMIN_TOPIC_ENTRY_BYTES_MAX                                                                \
	(sizeof(ADMIN_TOPIC_KEYS) - 1 + RILL_ENGINE_NAME_BYTES_MAX + 5 + 6 * ADMIN_INT_CHARS_MAX)
#define ADMIN_PROJECTION_KEYS                                                                      \
	"{\"name\":\"\",\"topic\":\"\",\"type\":\"\",\"version\":,\"kind\":\"\",\"field\":\"\","   \
	"\"window_ns\":},"
#define ADMIN_PROJECTION_ENTRY_BYTES_MAX                                                           \
	(sizeof(ADMIN_PROJECTION_KEYS) - 1 + 2 * RILL_ENGINE_NAME_BYTES_MAX +                      \
	 2 * RILL_SCHEMA_NAME_BYTES_MAX + 12 + 2 * ADMIN_INT_CHARS_MAX)
#define ADMIN_LIST_WRAP       "{\"projections\":[],\"more\":false}"
#define ADMIN_LIST_WRAP_BYTES (sizeof(ADMIN_LIST_WRAP) - 1)
_Static_assert(ADMIN_TOPIC_ENTRY_BYTES_MAX == 368 && ADMIN_PROJECTION_ENTRY_BYTES_MAX == 642,
	       "the arithmetic above is the code's");
_Static_assert(RILL_ENGINE_NAME_BYTES_MAX == 128 && RILL_SCHEMA_NAME_BYTES_MAX == 128,
	       "names as the comment above counts them");
_Static_assert((RILL_WIRE_FRAME_BYTES_MIN - RILL_WIRE_ADMIN_OK_BYTES_MIN - ADMIN_LIST_WRAP_BYTES) /
			       ADMIN_PROJECTION_ENTRY_BYTES_MAX >=
		       1,
	       "a page holds an entry in the least frame");

/* Entries of @entry_bytes_max that a listing answer of @s's takes (at least one). */
static uint32_t admin_page_count(const struct rill_server *s, size_t entry_bytes_max)
{
	return (uint32_t)((s->config.frame_bytes_max - RILL_WIRE_ADMIN_OK_BYTES_MIN -
			   ADMIN_LIST_WRAP_BYTES) /
			  entry_bytes_max);
}

/*
 * TOPICS and PROJECTIONS list in name order (byte order, strcmp): an order that a restart
 * keeps, which the engine's does not (a reopen loads the definitions in name order, so
 * what was made zeta then alpha walks alpha then zeta after it), so that a client paging
 * with "after" across a restart neither skips nor repeats an entry. The server sorts what
 * the engine walks: at most RILL_ENGINE_TOPICS_MAX (1,024) topics or
 * RILL_ENGINE_PROJECTIONS_MAX (256) projections, a page at a time.
 */
struct admin_item {
	const char *name;
	const void *entry; /* struct rill_topic, or const struct rill_projection_def */
};

struct admin_items {
	struct admin_item *items;
	uint32_t count, count_max;
};

static int admin_items_add(struct admin_items *a, const char *name, const void *entry)
{
	if (a->count == a->count_max)
		return -ENOSPC; /* past the engine's own limit: not an engine's walk */
	a->items[a->count++] = (struct admin_item){.name = name, .entry = entry};
	return 0;
}

static int admin_topic_item(void *arg, struct rill_topic *t)
{
	return admin_items_add(arg, rill_topic_config_get(t)->name, t);
}

static int admin_projection_item(void *arg, const struct rill_projection_def *d)
{
	return admin_items_add(arg, d->name, d);
}

static int admin_item_cmp(const void *a, const void *b)
{
	return strcmp(((const struct admin_item *)a)->name, ((const struct admin_item *)b)->name);
}

static json_t *admin_projection_json(const struct rill_projection_def *d)
{
	if (d->type == NULL) /* custom: the engine has its name and topic only */
		return json_pack("{s:s, s:s, s:n, s:n, s:s, s:n, s:n}", "name", d->name, "topic",
				 d->topic, "type", "version", "kind", "custom", "field",
				 "window_ns");
	const char *kind = rill_projection_kind_name(d->kind);
	return json_pack("{s:s, s:s, s:s, s:I, s:s, s:s?, s:I}", "name", d->name, "topic", d->topic,
			 "type", d->type, "version", (json_int_t)d->version, "kind",
			 kind != NULL ? kind : "unknown", "field", d->field, "window_ns",
			 (json_int_t)d->window_ns);
}

/*
 * Into @list, the entries of @a (sorted) whose names sort after @after (NULL: from the
 * first), at most @count_max; *@more when some are left. 0 or -ENOMEM.
 */
static int admin_page_fill(const struct admin_items *a, bool topics, const char *after,
			   uint32_t count_max, json_t *list, bool *more)
{
	*more = false;
	for (uint32_t i = 0; i < a->count; i++) {
		if (after != NULL && strcmp(a->items[i].name, after) <= 0)
			continue;
		if (json_array_size(list) == count_max) {
			*more = true;
			break;
		}
		json_t *entry = topics ? admin_topic_json(a->items[i].entry)
				       : admin_projection_json(a->items[i].entry);
		if (entry == NULL || json_array_append_new(list, entry) != 0)
			return -ENOMEM;
	}
	return 0;
}

/*
 * TOPICS and PROJECTIONS: {"after"?} → {"topics"|"projections":[...], "more"}; the entries
 * in name order whose names sort after "after" (which need not name one: a custom
 * projection an application has not defined again since a restart is a good cursor
 * still), as many as a frame takes. With "more", ask again after the last.
 */
static int admin_list(struct rill_server *s, uint16_t op, json_t *in, json_t **out, char *msg,
		      size_t msg_bytes)
{
	bool topics = op == RILL_WIRE_ADMIN_TOPICS;
	const char *what = topics ? "topics" : "projections";
	static const char *const keys[] = {"after"};
	const char *after = NULL;
	int rc = admin_keys_known(in, topics ? "TOPICS" : "PROJECTIONS", keys,
				  RILL_ARRAY_COUNT(keys), msg, msg_bytes);
	if (rc == 0)
		rc = admin_str(in, "after", true, &after, msg, msg_bytes);
	if (rc < 0)
		return rc;
	uint32_t count_max = admin_page_count(s, topics ? ADMIN_TOPIC_ENTRY_BYTES_MAX
							: ADMIN_PROJECTION_ENTRY_BYTES_MAX);
	RILL_ASSERT(count_max >= 1);
	struct admin_items a = {.count_max = topics ? RILL_ENGINE_TOPICS_MAX
						    : RILL_ENGINE_PROJECTIONS_MAX};
	a.items = calloc(a.count_max, sizeof(*a.items));
	json_t *list = json_array();
	if (a.items == NULL || list == NULL) {
		free(a.items);
		json_decref(list);
		return admin_fail(msg, msg_bytes, -ENOMEM, "out of memory");
	}
	rc = topics ? rill_topic_each(s->engine, admin_topic_item, &a)
		    : rill_projection_each(s->engine, admin_projection_item, &a);
	bool more = false;
	if (rc == 0) {
		qsort(a.items, a.count, sizeof(*a.items), admin_item_cmp);
		rc = admin_page_fill(&a, topics, after, count_max, list, &more);
	}
	free(a.items);
	if (rc < 0) {
		json_decref(list);
		return admin_fail(msg, msg_bytes, rc, "%s: %s", what, rill_strerror(rc));
	}
	*out = json_pack("{s:o, s:b}", what, list, "more", more);
	return 0;
}

/*
 * TOPIC_INFO's partitions ("partitions_from": P): each asks the partition's owner shard
 * (rill_partition_info_get blocks on it), on the control thread that answers every
 * connection's queries and subscriptions, so one answer asks at most ADMIN_PARTITIONS_PAGE
 * of them (1,024 partitions: four requests). An entry is at most
 *   sizeof(ADMIN_PARTITION_KEYS) - 1 (64) + 4 × 20 = 144 bytes,
 * a page 36,864, and with the topic (368) and its keys well within the least frame, so a
 * real server's page is always ADMIN_PARTITIONS_PAGE. It is still worked out from the
 * frame, as TOPICS's is, so that a test can see pages turn with a few partitions and a
 * smaller frame_bytes_max than a server takes, rather than the 257 a page needs (five
 * shards' worth).
 */
#define ADMIN_PARTITIONS_PAGE 256u
#define ADMIN_PARTITION_KEYS                                                                       \
	"{\"partition\":,\"first_offset\":,\"next_offset\":,\"durable_offset\":},"
#define ADMIN_PARTITION_ENTRY_BYTES_MAX (sizeof(ADMIN_PARTITION_KEYS) - 1 + 4 * ADMIN_INT_CHARS_MAX)
#define ADMIN_PARTITIONS_WRAP           ",\"partitions_info\":[],\"partitions_more\":false"
_Static_assert(ADMIN_PARTITION_ENTRY_BYTES_MAX == 144, "the arithmetic above is the code's");
_Static_assert(RILL_WIRE_ADMIN_OK_BYTES_MIN + ADMIN_TOPIC_ENTRY_BYTES_MAX +
			       sizeof(ADMIN_PARTITIONS_WRAP) - 1 +
			       ADMIN_PARTITIONS_PAGE * ADMIN_PARTITION_ENTRY_BYTES_MAX <=
		       RILL_WIRE_FRAME_BYTES_MIN,
	       "a TOPIC_INFO page fits the least frame");

static int admin_partitions_info(struct rill_server *s, struct rill_topic *t, uint32_t from,
				 json_t *out, char *msg, size_t msg_bytes)
{
	uint32_t parts = rill_topic_partitions(t);
	size_t fit = (s->config.frame_bytes_max - RILL_WIRE_ADMIN_OK_BYTES_MIN -
		      ADMIN_TOPIC_ENTRY_BYTES_MAX - (sizeof(ADMIN_PARTITIONS_WRAP) - 1)) /
		     ADMIN_PARTITION_ENTRY_BYTES_MAX;
	uint32_t page = fit < ADMIN_PARTITIONS_PAGE ? (uint32_t)fit : ADMIN_PARTITIONS_PAGE;
	RILL_ASSERT(page >= 1);
	uint32_t end = parts - from > page ? from + page : parts;
	json_t *list = json_array();
	for (uint32_t p = from; list != NULL && p < end; p++) {
		struct rill_partition_info info;
		int rc = rill_partition_info_get(s->engine, t, p, UINT64_MAX, &info, NULL);
		if (rc < 0) {
			json_decref(list);
			return admin_fail(msg, msg_bytes, rc, "topic '%s', partition %u: %s",
					  rill_topic_config_get(t)->name, p, rill_strerror(rc));
		}
		json_t *e = json_pack("{s:I, s:I, s:I, s:I}", "partition", (json_int_t)p,
				      "first_offset", (json_int_t)info.first_offset, "next_offset",
				      (json_int_t)info.next_offset, "durable_offset",
				      (json_int_t)info.durable_offset);
		if (e == NULL || json_array_append_new(list, e) != 0) {
			json_decref(list);
			list = NULL;
		}
	}
	if (list == NULL || json_object_set_new(out, "partitions_info", list) != 0 ||
	    json_object_set_new(out, "partitions_more", json_boolean(end < parts)) != 0)
		return admin_fail(msg, msg_bytes, -ENOMEM, "out of memory");
	return 0;
}

/* TOPIC_INFO: {"name","partitions_from"?} → the topic (as TOPIC_CREATE answers), and with
 * "partitions_from" a page of its partitions' offsets. */
static int admin_topic_info(struct rill_server *s, json_t *in, json_t **out, char *msg,
			    size_t msg_bytes)
{
	const char *name = NULL;
	int rc = admin_str(in, "name", false, &name, msg, msg_bytes);
	if (rc < 0)
		return rc;
	struct rill_topic *t = rill_topic_find(s->engine, name);
	if (t == NULL)
		return admin_fail(msg, msg_bytes, -ENOENT, "no topic '%s'", name);
	uint64_t from = UINT64_MAX;
	rc = admin_uint(in, "partitions_from", UINT64_MAX, rill_topic_partitions(t) - 1, &from, msg,
			msg_bytes);
	if (rc < 0)
		return rc;
	*out = admin_topic_json(t);
	if (*out == NULL || from == UINT64_MAX)
		return 0;
	rc = admin_partitions_info(s, t, (uint32_t)from, *out, msg, msg_bytes);
	if (rc < 0) {
		json_decref(*out);
		*out = NULL;
	}
	return rc;
}

static int admin_op(struct rill_server *s, uint16_t op, json_t *in, json_t **out, char *msg,
		    size_t msg_bytes)
{
	switch (op) {
	case RILL_WIRE_ADMIN_TOPIC_CREATE:
		return admin_topic_create(s, in, out, msg, msg_bytes);
	case RILL_WIRE_ADMIN_SCHEMA_REGISTER:
		return admin_schema_register(s, in, out, msg, msg_bytes);
	case RILL_WIRE_ADMIN_PROJECTION_CREATE:
		return admin_projection_create(s, in, out, msg, msg_bytes);
	case RILL_WIRE_ADMIN_STAT:
		return admin_stat(s, out, msg, msg_bytes);
	case RILL_WIRE_ADMIN_SCHEMAS:
		return admin_schemas(s, in, out, msg, msg_bytes);
	case RILL_WIRE_ADMIN_TOPIC_INFO:
		return admin_topic_info(s, in, out, msg, msg_bytes);
	case RILL_WIRE_ADMIN_GROUP_COMMIT:
	case RILL_WIRE_ADMIN_GROUP_FETCH:
		return admin_group(s, op, in, out, msg, msg_bytes);
	case RILL_WIRE_ADMIN_GROUP_DELETE:
		return admin_group_delete(s, in, out, msg, msg_bytes);
	case RILL_WIRE_ADMIN_TOPICS:
	case RILL_WIRE_ADMIN_PROJECTIONS:
		return admin_list(s, op, in, out, msg, msg_bytes);
	default:
		return admin_fail(msg, msg_bytes, -EINVAL, "unknown admin op %u", op);
	}
}

int srv_admin(struct rill_server *s, uint16_t op, const char *json, uint32_t json_bytes,
	      char **answer, char *msg, size_t msg_bytes)
{
	/* Every GROUP_COMMIT, taken or not (STAT's group_commits): the control thread's alone
	 * (admin requests run there one at a time), and STAT reads it there too. */
	s->group_commits += op == RILL_WIRE_ADMIN_GROUP_COMMIT;
	json_error_t jerr;
	json_t *in = json_loadb(json, json_bytes, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
	if (!json_is_object(in)) {
		json_decref(in);
		/* Not "not a JSON object" when it was one that did not parse (a key given twice,
		 * an integer past int64): jansson's text says what. */
		if (in == NULL)
			return admin_fail(msg, msg_bytes, RILL_E_JSON_INVALID,
					  "admin request: invalid JSON at line %d, column %d: %s",
					  jerr.line, jerr.column, jerr.text);
		return admin_fail(msg, msg_bytes, RILL_E_JSON_INVALID,
				  "admin request: not a JSON object (another JSON value)");
	}
	json_t *out = NULL;
	int rc = admin_op(s, op, in, &out, msg, msg_bytes); /* one at a time: the control
							      * thread's */
	json_decref(in);
	if (rc == 0 && out == NULL)
		rc = admin_fail(msg, msg_bytes, -ENOMEM, "out of memory");
	if (rc == 0) {
		*answer = json_dumps(out, JSON_COMPACT);
		if (*answer == NULL)
			rc = admin_fail(msg, msg_bytes, -ENOMEM, "out of memory");
	}
	json_decref(out);
	return rc;
}
