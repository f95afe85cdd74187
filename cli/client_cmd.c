/*
 * The client commands that ask a running server one thing and print its answer: `rill
 * topic create`, `rill schema register`, `rill projection create`, `rill group delete`,
 * `rill query`, `rill stat`, `rill ping` (the listings are cli/inspect_cmd.c's, reached
 * from the command groups here); and what every client command shares: --connect, error reports, and
 * the server's schemas fetched and indexed (cli_schemas_*, for produce and consume).
 * Main thread; blocking; not a hot path.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/clock.h"
#include "base/compiler.h"
#include "cli.h"
#include "io/wire.h"
#include "rill/client.h"
#include "rill/rill.h"
#include "rill/schema.h"

#define CLI_SCHEMAS_MAX        (1u << 20) /* schema versions in one SCHEMAS answer */
#define CLI_PING_COUNT_MAX     1000000u
#define CLI_PARTITIONS_MAX     1024u /* as RILL_ENGINE_PARTITIONS_MAX */
#define CLI_WINDOW_SECONDS_MAX (366ull * 24 * 3600)

bool cli_opt(int argc, char **argv, int *i, const char *name, const char **value)
{
	if (strcmp(argv[*i], name) != 0 || *i + 1 >= argc)
		return false;
	*value = argv[++*i];
	return true;
}

bool cli_help(int argc, char **argv, const char *usage)
{
	/* Where an option's name is expected: after `--key`, "-h" is a key to look up. */
	static const char *const flags[] = {"--pretty", "--until-end"}; /* no value */
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			puts(usage);
			return true;
		}
		bool flag = false;
		for (size_t f = 0; f < sizeof(flags) / sizeof(flags[0]); f++)
			flag = flag || strcmp(argv[i], flags[f]) == 0;
		if (strncmp(argv[i], "--", 2) == 0 && !flag)
			i++; /* its value, whatever it looks like */
	}
	return false;
}

int cli_client_fail(const char *command, const char *address, int rc,
		    const struct rill_client_error *err)
{
	const char *why = err != NULL && err->message[0] != '\0' ? err->message : rill_strerror(rc);
	fprintf(stderr, "rill: %s: %s: %s\n", command, address, why);
	return 1;
}

int cli_connect(const char *command, const char *address, uint32_t inflight_max,
		struct rill_client **out)
{
	struct rill_client_config config;
	rill_client_config_default(&config);
	if (inflight_max != 0)
		config.inflight_max = inflight_max;
	struct rill_client_error err = {{0}};
	int rc = rill_client_connect(out, address, &config, &err);
	if (rc != 0) {
		/* the message names the address already */
		fprintf(stderr, "rill: %s: %s\n", command,
			err.message[0] ? err.message : rill_strerror(rc));
		return rc;
	}
	return 0;
}

int cli_client_revive(const char *command, const char *address, uint32_t inflight_max,
		      struct rill_client **c)
{
	struct rill_client_error err = {{0}};
	if (rill_client_ping(*c, &err) == 0)
		return 0;
	struct rill_client *fresh = NULL;
	int rc = cli_connect(command, address, inflight_max, &fresh);
	if (rc != 0)
		return rc; /* *c stays, closed: its calls fail */
	rill_client_close(*c);
	*c = fresh;
	return 0;
}

void cli_print_json(const char *text, bool pretty)
{
	json_error_t jerr;
	json_t *j = json_loads(text, JSON_DECODE_ANY, &jerr);
	char *line = j != NULL ? json_dumps(j, pretty ? JSON_INDENT(2) | JSON_PRESERVE_ORDER
						      : JSON_COMPACT | JSON_PRESERVE_ORDER)
			       : NULL;
	puts(line != NULL ? line : text);
	free(line);
	json_decref(j);
}

/* Connect, run one admin op with @body (taken), print the answer. The exit status. */
static int admin_once(const char *command, const char *address, uint16_t op, json_t *body,
		      bool pretty)
{
	char *text = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(body);
	if (text == NULL) {
		fprintf(stderr, "rill: %s: out of memory\n", command);
		return 1;
	}
	struct rill_client *c;
	int status = 1;
	if (cli_connect(command, address, 0, &c) == 0) {
		char *answer = NULL;
		struct rill_client_error err = {{0}};
		int rc = rill_client_admin(c, op, text, &answer, &err);
		if (rc == 0) {
			cli_print_json(answer, pretty);
			status = 0;
		} else {
			cli_client_fail(command, address, rc, &err);
		}
		free(answer);
		rill_client_close(c);
	}
	free(text);
	return status;
}

/* ---- schema register ---------------------------------------------------------------- */

#define REGISTER_USAGE                                                                             \
	"usage: rill schema register [--connect HOST:PORT] --file SCHEMA.json [--compat MODE]"

/* SCHEMA_REGISTER's body for the definition in @file: 0, or 1 with the reason printed. */
static int schema_body(const char *command, const char *file, const char *compat, json_t **out)
{
	enum rill_schema_compat mode;
	if (compat != NULL && rill_schema_compat_parse(compat, &mode) != 0)
		return cli_usage_error(command, "--compat takes NONE, BACKWARD, FORWARD, FULL or "
						"their _TRANSITIVE forms");
	json_error_t jerr;
	/* As schema check (rill_schema_parse): a string default may hold \u0000. */
	json_t *schema = json_load_file(file, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
	if (!json_is_object(schema)) {
		if (schema == NULL && jerr.line < 1)
			fprintf(stderr, "rill: %s: %s: %s\n", command, file, jerr.text);
		else if (schema == NULL)
			fprintf(stderr, "rill: %s: %s: line %d: %s\n", command, file, jerr.line,
				jerr.text);
		else
			fprintf(stderr, "rill: %s: %s: not a JSON object\n", command, file);
		json_decref(schema);
		return 1;
	}
	*out = json_object();
	json_object_set_new(*out, "schema", schema);
	if (compat != NULL)
		json_object_set_new(*out, "compat", json_string(rill_schema_compat_name(mode)));
	return 0;
}

int cli_schema_register(int argc, char **argv)
{
	if (cli_help(argc, argv, REGISTER_USAGE))
		return 0;
	const char *address = CLI_CONNECT_DEFAULT, *file = NULL, *compat = NULL;
	for (int i = 0; i < argc; i++) {
		if (!cli_opt(argc, argv, &i, "--connect", &address) &&
		    !cli_opt(argc, argv, &i, "--file", &file) &&
		    !cli_opt(argc, argv, &i, "--compat", &compat))
			return cli_usage_error("schema register", REGISTER_USAGE);
	}
	if (file == NULL)
		return cli_usage_error("schema register", "needs --file SCHEMA.json");
	json_t *body = NULL;
	int rc = schema_body("schema register", file, compat, &body);
	if (rc != 0)
		return rc;
	return admin_once("schema register", address, RILL_WIRE_ADMIN_SCHEMA_REGISTER, body, false);
}

/* ---- topic create ------------------------------------------------------------------- */

#define TOPIC_USAGE                                                                                \
	"usage: rill topic create [--connect HOST:PORT] --name T --partitions N "                  \
	"[--durability none|group] [--batch-delay-us U] [--retention-bytes N] "                    \
	"[--retention-age-s S] [--segment-bytes N] [--schema SCHEMA.json]"

#define TOPIC_GROUP_USAGE "usage: rill topic create|list|info [options]   (each takes --help)"

int cli_topic(int argc, char **argv)
{
	const char *sub = argc > 0 ? argv[0] : "";
	if (strcmp(sub, "list") == 0)
		return cli_topic_list(argc - 1, argv + 1);
	if (strcmp(sub, "info") == 0)
		return cli_topic_info(argc - 1, argv + 1);
	if (strcmp(sub, "create") != 0)
		return cli_help(argc, argv, TOPIC_GROUP_USAGE)
			       ? 0
			       : cli_usage_error("topic", TOPIC_GROUP_USAGE);
	if (cli_help(argc, argv, TOPIC_USAGE))
		return 0;
	const char *address = CLI_CONNECT_DEFAULT, *name = NULL, *parts = NULL, *dur = NULL;
	const char *delay = NULL, *schema = NULL;
	/* Passed through as numbers: the server checks their ranges and says which is wrong. */
	static const struct {
		const char *opt, *key;
	} sizes[] = {{"--retention-bytes", "retention_bytes"},
		     {"--retention-age-s", "retention_age_s"},
		     {"--segment-bytes", "segment_bytes"}};
	const char *size_vals[RILL_ARRAY_COUNT(sizes)] = {NULL};
	for (int i = 1; i < argc; i++) {
		bool known = cli_opt(argc, argv, &i, "--connect", &address) ||
			     cli_opt(argc, argv, &i, "--name", &name) ||
			     cli_opt(argc, argv, &i, "--partitions", &parts) ||
			     cli_opt(argc, argv, &i, "--durability", &dur) ||
			     cli_opt(argc, argv, &i, "--batch-delay-us", &delay) ||
			     cli_opt(argc, argv, &i, "--schema", &schema);
		for (size_t k = 0; k < RILL_ARRAY_COUNT(sizes) && !known; k++)
			known = cli_opt(argc, argv, &i, sizes[k].opt, &size_vals[k]);
		if (!known)
			return cli_usage_error("topic create", TOPIC_USAGE);
	}
	uint64_t n, delay_us = 0;
	if (name == NULL || parts == NULL)
		return cli_usage_error("topic create", "needs --name and --partitions");
	if (cli_parse_u64(parts, &n) != 0 || n == 0 || n > CLI_PARTITIONS_MAX)
		return cli_usage_error("topic create", "--partitions takes 1 to 1024");
	if (dur != NULL && strcmp(dur, "none") != 0 && strcmp(dur, "group") != 0)
		return cli_usage_error("topic create", "--durability takes none or group");
	if (delay != NULL &&
	    (cli_parse_u64(delay, &delay_us) != 0 || delay_us == 0 || delay_us > 10000000u))
		return cli_usage_error("topic create", "--batch-delay-us takes 1 to 10000000");
	json_t *body = json_pack("{s:s, s:I}", "name", name, "partitions", (json_int_t)n);
	if (delay != NULL)
		json_object_set_new(body, "batch_delay_us", json_integer((json_int_t)delay_us));
	for (size_t k = 0; k < RILL_ARRAY_COUNT(sizes); k++) {
		uint64_t v;
		if (size_vals[k] == NULL)
			continue;
		if (cli_parse_u64(size_vals[k], &v) != 0 || v > INT64_MAX) {
			json_decref(body);
			char why[64];
			snprintf(why, sizeof(why), "%s takes a whole number", sizes[k].opt);
			return cli_usage_error("topic create", why);
		}
		json_object_set_new(body, sizes[k].key, json_integer((json_int_t)v));
	}
	if (dur != NULL)
		json_object_set_new(body, "durability", json_string(dur));
	if (schema != NULL) {
		/* The event type first, as rill schema register would: its answer, then the
		 * topic's, one JSON line each. */
		json_t *sbody = NULL;
		int rc = schema_body("topic create", schema, NULL, &sbody);
		if (rc == 0)
			rc = admin_once("topic create", address, RILL_WIRE_ADMIN_SCHEMA_REGISTER,
					sbody, false);
		if (rc != 0) {
			json_decref(body);
			return rc;
		}
	}
	return admin_once("topic create", address, RILL_WIRE_ADMIN_TOPIC_CREATE, body, false);
}

/* ---- projection create -------------------------------------------------------------- */

#define PROJECTION_USAGE                                                                           \
	"usage: rill projection create [--connect HOST:PORT] --name P --topic T --type TYPE "      \
	"[--version V] --kind count|sum|min|max|last|avg|window_count|window_sum [--field F] "     \
	"[--window SECONDS]"

static const char *const projection_kinds[] = {"count", "sum", "min",          "max",
					       "last",  "avg", "window_count", "window_sum"};

static bool projection_kind_known(const char *kind)
{
	for (size_t i = 0; i < sizeof(projection_kinds) / sizeof(projection_kinds[0]); i++)
		if (strcmp(kind, projection_kinds[i]) == 0)
			return true;
	return false;
}

#define PROJECTION_GROUP_USAGE "usage: rill projection create|list [options]   (each takes --help)"

int cli_projection(int argc, char **argv)
{
	const char *sub = argc > 0 ? argv[0] : "";
	if (strcmp(sub, "list") == 0)
		return cli_projection_list(argc - 1, argv + 1);
	if (strcmp(sub, "create") != 0)
		return cli_help(argc, argv, PROJECTION_GROUP_USAGE)
			       ? 0
			       : cli_usage_error("projection", PROJECTION_GROUP_USAGE);
	if (cli_help(argc, argv, PROJECTION_USAGE))
		return 0;
	const char *address = CLI_CONNECT_DEFAULT, *name = NULL, *topic = NULL, *type = NULL;
	const char *version = NULL, *kind = NULL, *field = NULL, *window = NULL;
	for (int i = 1; i < argc; i++) {
		if (!cli_opt(argc, argv, &i, "--connect", &address) &&
		    !cli_opt(argc, argv, &i, "--name", &name) &&
		    !cli_opt(argc, argv, &i, "--topic", &topic) &&
		    !cli_opt(argc, argv, &i, "--type", &type) &&
		    !cli_opt(argc, argv, &i, "--version", &version) &&
		    !cli_opt(argc, argv, &i, "--kind", &kind) &&
		    !cli_opt(argc, argv, &i, "--field", &field) &&
		    !cli_opt(argc, argv, &i, "--window", &window))
			return cli_usage_error("projection create", PROJECTION_USAGE);
	}
	if (name == NULL || topic == NULL || type == NULL || kind == NULL)
		return cli_usage_error("projection create",
				       "needs --name, --topic, --type and --kind");
	if (!projection_kind_known(kind))
		return cli_usage_error("projection create",
				       "--kind takes count, sum, min, max, last, avg, "
				       "window_count or window_sum");
	uint64_t v = 0, seconds = 0;
	if (version != NULL && (cli_parse_u64(version, &v) != 0 || v == 0 || v > 0xffff))
		return cli_usage_error("projection create", "--version takes 1 to 65535");
	if (window != NULL && (cli_parse_u64(window, &seconds) != 0 || seconds == 0 ||
			       seconds > CLI_WINDOW_SECONDS_MAX))
		return cli_usage_error("projection create",
				       "--window takes a number of seconds (1 to a year)");
	json_t *body = json_pack("{s:s, s:s, s:s}", "name", name, "topic", topic, "type", type);
	if (version != NULL)
		json_object_set_new(body, "version", json_integer((json_int_t)v));
	json_object_set_new(body, "kind", json_string(kind));
	if (field != NULL)
		json_object_set_new(body, "field", json_string(field));
	if (window != NULL)
		json_object_set_new(body, "window_ns",
				    json_integer((json_int_t)(seconds * 1000000000ull)));
	return admin_once("projection create", address, RILL_WIRE_ADMIN_PROJECTION_CREATE, body,
			  false);
}

/* ---- group delete ------------------------------------------------------------------- */

#define GROUP_USAGE       "usage: rill group delete [--connect HOST:PORT] --group G"
#define GROUP_GROUP_USAGE "usage: rill group delete|show [options]   (each takes --help)"

int cli_group(int argc, char **argv)
{
	const char *sub = argc > 0 ? argv[0] : "";
	if (strcmp(sub, "show") == 0)
		return cli_group_show(argc - 1, argv + 1);
	if (strcmp(sub, "delete") != 0)
		return cli_help(argc, argv, GROUP_GROUP_USAGE)
			       ? 0
			       : cli_usage_error("group", GROUP_GROUP_USAGE);
	if (cli_help(argc, argv, GROUP_USAGE))
		return 0;
	const char *address = CLI_CONNECT_DEFAULT, *group = NULL;
	for (int i = 1; i < argc; i++) {
		if (!cli_opt(argc, argv, &i, "--connect", &address) &&
		    !cli_opt(argc, argv, &i, "--group", &group))
			return cli_usage_error("group delete", GROUP_USAGE);
	}
	if (group == NULL)
		return cli_usage_error("group delete", "needs --group");
	if (!rill_group_name_valid(group)) /* the server's refusal would exit 1, as a failure */
		return cli_usage_error("group delete", CLI_GROUP_NAME_RULE);
	return admin_once("group delete", address, RILL_WIRE_ADMIN_GROUP_DELETE,
			  json_pack("{s:s}", "group", group), false);
}

/* ---- stat, ping --------------------------------------------------------------------- */

#define STAT_USAGE "usage: rill stat [--connect HOST:PORT] [--pretty]"
#define PING_USAGE                                                                                 \
	"usage: rill ping [--connect HOST:PORT] [--count N]\n"                                     \
	"  prints {\"ping\":I,\"latency_us\":US} per round trip"

int cli_stat(int argc, char **argv)
{
	if (cli_help(argc, argv, STAT_USAGE))
		return 0;
	const char *address = CLI_CONNECT_DEFAULT;
	bool pretty = false;
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--pretty") == 0)
			pretty = true;
		else if (!cli_opt(argc, argv, &i, "--connect", &address))
			return cli_usage_error("stat", STAT_USAGE);
	}
	return admin_once("stat", address, RILL_WIRE_ADMIN_STAT, json_object(), pretty);
}

int cli_ping(int argc, char **argv)
{
	if (cli_help(argc, argv, PING_USAGE))
		return 0;
	const char *address = CLI_CONNECT_DEFAULT, *count_text = NULL;
	for (int i = 0; i < argc; i++) {
		if (!cli_opt(argc, argv, &i, "--connect", &address) &&
		    !cli_opt(argc, argv, &i, "--count", &count_text))
			return cli_usage_error("ping", PING_USAGE);
	}
	uint64_t count = 1;
	if (count_text != NULL &&
	    (cli_parse_u64(count_text, &count) != 0 || count == 0 || count > CLI_PING_COUNT_MAX))
		return cli_usage_error("ping", "--count takes 1 to 1000000");
	struct rill_client *c;
	if (cli_connect("ping", address, 0, &c) != 0)
		return 1;
	int status = 0;
	for (uint64_t i = 0; i < count; i++) {
		struct rill_client_error err = {{0}};
		uint64_t start = rill_clock_now_ns();
		int rc = rill_client_ping(c, &err);
		if (rc != 0) {
			status = cli_client_fail("ping", address, rc, &err);
			break;
		}
		double us = (double)(rill_clock_now_ns() - start) / 1e3;
		printf("{\"ping\":%" PRIu64 ",\"latency_us\":%.1f}\n", i + 1, us);
		fflush(stdout);
	}
	rill_client_close(c);
	return status;
}

/* ---- query -------------------------------------------------------------------------- */

#define QUERY_USAGE                                                                                \
	"usage: rill query [--connect HOST:PORT] --projection P --key K [--as-of "                 \
	"@UNIX_NS|OFFSET] "                                                                        \
	"[--after PARTITION:OFFSET]\n"                                                             \
	"  prints {\"projection\",\"key\",\"count\",\"value\",\"avg\",\"offset\"}, with "          \
	"\"window_start_ns\" for window kinds\n  (but a window starting at 0, the epoch: the "     \
	"answer does not say the kind) and\n  \"sum_overflow\":true when a sum was clamped. "      \
	"\"offset\": the last event applied for the\n  key (a window kind's late events are not: " \
	"rill stat counts them as projection_late).\n  \"value\": the f64 for an f64 field, else " \
	"the integer (u64 sums as u64); a negative\n  value of min, max or last also comes as "    \
	"\"u64\", the same bits unsigned, since the\n  answer does not say whether the field is "  \
	"i64 or u64."

/* --as-of @NS (a time) or OFFSET; --after PARTITION:OFFSET. 0 or -EINVAL. */
static int query_options(const char *as_of, const char *after, struct rill_client_query_options *q)
{
	if (as_of != NULL) {
		bool at_time = as_of[0] == '@';
		if (cli_parse_u64(as_of + (at_time ? 1 : 0), &q->as_of) != 0)
			return -EINVAL;
		q->as_of_timestamp = at_time;
		q->as_of_offset = !at_time;
	}
	if (after != NULL) {
		const char *colon = strchr(after, ':');
		char part[16];
		uint64_t p;
		if (colon == NULL || (size_t)(colon - after) >= sizeof(part))
			return -EINVAL;
		memcpy(part, after, (size_t)(colon - after));
		part[colon - after] = '\0';
		if (cli_parse_u64(part, &p) != 0 || p >= UINT32_MAX ||
		    cli_parse_u64(colon + 1, &q->token_offset) != 0)
			return -EINVAL;
		q->has_token = true;
		q->token_partition = (uint32_t)p;
	}
	return 0;
}

static void query_print(const char *name, const char *key, size_t key_bytes,
			const struct rill_projection_value *v)
{
	json_t *o = json_object();
	json_object_set_new(o, "projection", json_string(name));
	cli_json_put_key(o, key, key_bytes);
	json_object_set_new(o, "count", cli_json_u64(v->count));
	/* RESULT does not say whether the field is i64 or u64: a u64 sum fills only u64;
	 * min, max and last fill both with the same bits, so a negative i64 may be a large
	 * u64, given too. */
	if (v->is_float) {
		json_object_set_new(o, "value", cli_json_real(v->f64));
	} else if (v->i64 == 0 && v->u64 != 0) {
		json_object_set_new(o, "value", cli_json_u64(v->u64));
	} else {
		json_object_set_new(o, "value", json_integer(v->i64));
		if (v->i64 < 0 && v->u64 == (uint64_t)v->i64)
			json_object_set_new(o, "u64", cli_json_u64(v->u64));
	}
	json_object_set_new(o, "avg", cli_json_real(v->avg));
	json_object_set_new(o, "offset", cli_json_u64(v->offset));
	if (v->window_start_ns != 0) /* RESULT does not say the kind: 0 is no window's start */
		json_object_set_new(o, "window_start_ns", cli_json_u64(v->window_start_ns));
	if (v->sum_overflow)
		json_object_set_new(o, "sum_overflow", json_true());
	char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (line != NULL)
		puts(line);
	free(line);
	json_decref(o);
}

int cli_query(int argc, char **argv)
{
	if (cli_help(argc, argv, QUERY_USAGE))
		return 0;
	const char *address = CLI_CONNECT_DEFAULT, *name = NULL, *key = NULL;
	const char *as_of = NULL, *after = NULL;
	for (int i = 0; i < argc; i++) {
		if (!cli_opt(argc, argv, &i, "--connect", &address) &&
		    !cli_opt(argc, argv, &i, "--projection", &name) &&
		    !cli_opt(argc, argv, &i, "--key", &key) &&
		    !cli_opt(argc, argv, &i, "--as-of", &as_of) &&
		    !cli_opt(argc, argv, &i, "--after", &after))
			return cli_usage_error("query", QUERY_USAGE);
	}
	struct rill_client_query_options q = {0};
	if (name == NULL || key == NULL)
		return cli_usage_error("query", "needs --projection and --key");
	if (query_options(as_of, after, &q) != 0)
		return cli_usage_error("query", "--as-of takes @UNIX_NS or OFFSET, --after "
						"PARTITION:OFFSET");
	struct rill_client *c;
	if (cli_connect("query", address, 0, &c) != 0)
		return 1;
	struct rill_projection_value v;
	struct rill_client_error err = {{0}};
	int rc = rill_client_query(c, name, key, strlen(key), &q, &v, &err);
	rill_client_close(c);
	if (rc != 0) {
		fprintf(stderr, "rill: query: projection '%s', key '%s': %s\n", name, key,
			err.message[0] ? err.message : rill_strerror(rc));
		return 1;
	}
	query_print(name, key, strlen(key), &v);
	return 0;
}

/* ---- The server's schemas ------------------------------------------------------------- */

void cli_json_put_key(json_t *o, const void *key, size_t bytes)
{
	const uint8_t *k = key;
	bool printable = true;
	for (size_t i = 0; i < bytes && printable; i++)
		printable = k[i] >= 0x20 && k[i] != 0x7f;
	json_t *s = printable ? json_stringn(key, bytes) : NULL; /* NULL: not UTF-8 */
	if (s != NULL) {
		json_object_set_new(o, "key", s);
		return;
	}
	char *hex = malloc(bytes * 2 + 1);
	for (size_t i = 0; hex != NULL && i < bytes; i++)
		snprintf(hex + 2 * i, 3, "%02x", k[i]);
	json_object_set_new(o, "key_hex", hex != NULL ? json_stringn(hex, bytes * 2) : json_null());
	free(hex);
}

json_t *cli_json_real(double v)
{
	return isfinite(v) ? json_real(v) : json_null(); /* JSON has no infinity */
}

json_t *cli_json_u64(uint64_t v)
{
	if (v <= INT64_MAX)
		return json_integer((json_int_t)v);
	char text[24];
	snprintf(text, sizeof(text), "%" PRIu64, v);
	return json_string(text); /* as the schemas' JSON: beyond int64, decimal digits */
}

struct cli_schema_entry {
	uint32_t type_id;
	uint32_t order; /* its place in the answer */
	struct rill_schema *schema;
};

/* A version the server listed without its definition: too large for its frames. */
struct cli_schema_big {
	char *type; /* its type's name; NULL when the server did not give it */
	uint32_t type_id;
	uint16_t version;
};

struct cli_schemas {
	struct cli_schema_entry *entries; /* by type name, then version */
	uint32_t count;
	uint32_t *by_id; /* type id → index of its first entry; UINT32_MAX: none */
	uint32_t id_max;
	struct cli_schema_big *big; /* in the order listed */
	uint32_t big_count;
};

static int entry_by_name(const void *a, const void *b)
{
	const struct cli_schema_entry *x = a, *y = b;
	int c = strcmp(rill_schema_type_name(x->schema), rill_schema_type_name(y->schema));
	if (c != 0)
		return c;
	return (int)rill_schema_version(x->schema) - (int)rill_schema_version(y->schema);
}

/*
 * One entry of the SCHEMAS answer: a definition, a definition with a "type_id" member, or
 * {"type_id", "definition"}. The type id of a bare definition is left 0 (inferred later).
 */
static int schema_entry_parse(json_t *e, struct cli_schema_entry *out, char *why, size_t why_bytes)
{
	json_t *def = json_object_get(e, "definition");
	json_t *id = json_object_get(e, "type_id");
	json_t *copy = NULL;
	if (def == NULL && id != NULL) {
		copy = json_copy(e);
		json_object_del(copy, "type_id");
		def = copy;
	} else if (def == NULL) {
		def = e;
	}
	char *text = json_is_object(def) ? json_dumps(def, JSON_COMPACT) : NULL;
	json_decref(copy);
	if (text == NULL || (id != NULL && (!json_is_integer(id) || json_integer_value(id) <= 0 ||
					    json_integer_value(id) > RILL_SCHEMA_TYPES_MAX))) {
		free(text);
		snprintf(why, why_bytes, "not a schema definition with a valid type_id");
		return -EINVAL;
	}
	struct rill_schema_error err;
	int rc = rill_schema_parse(&out->schema, text, strlen(text), &err);
	free(text);
	if (rc != 0) {
		snprintf(why, why_bytes, "%s",
			 rc == RILL_E_SCHEMA_INVALID ? err.message : rill_strerror(rc));
		return rc;
	}
	out->type_id = id != NULL ? (uint32_t)json_integer_value(id) : 0;
	return 0;
}

/* A type's entries (contiguous once sorted by name) and where it first appeared. */
struct type_group {
	uint32_t first_order, start, end;
};

static int group_by_order(const void *a, const void *b)
{
	const struct type_group *x = a, *y = b;
	return x->first_order < y->first_order ? -1 : x->first_order > y->first_order;
}

/*
 * Type ids the answer did not give: the registry numbers types 1, 2, ... in the order they
 * were first registered (engine/schema_registry.c, G4), and SCHEMAS lists them in that
 * order, so a type's id is the rank of its first appearance. Entries are sorted by name.
 */
static int schemas_infer_ids(struct cli_schemas *s)
{
	struct type_group *groups = calloc(s->count + 1, sizeof(*groups));
	if (groups == NULL)
		return -ENOMEM;
	uint32_t n = 0;
	for (uint32_t i = 0; i < s->count; i++) {
		const char *name = rill_schema_type_name(s->entries[i].schema);
		if (i == 0 || strcmp(rill_schema_type_name(s->entries[i - 1].schema), name) != 0)
			groups[n++] = (struct type_group){.first_order = UINT32_MAX, .start = i};
		struct type_group *g = &groups[n - 1];
		g->end = i + 1;
		if (s->entries[i].order < g->first_order)
			g->first_order = s->entries[i].order;
	}
	qsort(groups, n, sizeof(*groups), group_by_order);
	for (uint32_t g = 0; g < n; g++)
		for (uint32_t k = groups[g].start; k < groups[g].end; k++)
			if (s->entries[k].type_id == 0)
				s->entries[k].type_id = g + 1;
	free(groups);
	return 0;
}

static int schemas_index(struct cli_schemas *s)
{
	qsort(s->entries, s->count, sizeof(*s->entries), entry_by_name);
	if (schemas_infer_ids(s) != 0)
		return -ENOMEM;
	for (uint32_t i = 0; i < s->count; i++)
		if (s->entries[i].type_id > s->id_max)
			s->id_max = s->entries[i].type_id;
	s->by_id = malloc(((size_t)s->id_max + 1) * sizeof(*s->by_id));
	if (s->by_id == NULL)
		return -ENOMEM;
	memset(s->by_id, 0xff, ((size_t)s->id_max + 1) * sizeof(*s->by_id));
	for (uint32_t i = s->count; i-- > 0;)
		s->by_id[s->entries[i].type_id] = i;
	return 0;
}

void cli_schemas_free(struct cli_schemas *s)
{
	if (s == NULL)
		return;
	for (uint32_t i = 0; i < s->count; i++)
		rill_schema_free(s->entries[i].schema);
	free(s->entries);
	free(s->by_id);
	for (uint32_t i = 0; i < s->big_count; i++)
		free(s->big[i].type);
	free(s->big);
	free(s);
}

static const struct cli_schema_big *schemas_big_find(const struct cli_schemas *s, uint32_t type_id,
						     uint16_t version)
{
	for (uint32_t i = 0; s != NULL && i < s->big_count; i++)
		if (s->big[i].type_id == type_id && s->big[i].version == version)
			return &s->big[i];
	return NULL;
}

static bool schemas_big_listed(const struct cli_schemas *s, uint32_t type_id, uint16_t version)
{
	return schemas_big_find(s, type_id, version) != NULL;
}

const char *cli_schemas_big_name(const struct cli_schemas *s, uint32_t type_id, uint16_t version)
{
	const struct cli_schema_big *b = schemas_big_find(s, type_id, version);
	return b != NULL ? b->type : NULL;
}

/*
 * A version the server lists without its definition, too large for its frames
 * (docs/PROTOCOL.md, SCHEMAS): left out, as its events cannot be encoded or decoded here,
 * but kept in @s->big so that its type's latest version is not taken to be the one before
 * it; said unless @known (an earlier fetch) listed it. 1 for such an entry, with its type
 * id and version in @after; 0 for another entry; -ENOMEM.
 */
static int schema_entry_too_large(const char *command, json_t *e, struct cli_schemas *s,
				  const struct cli_schemas *known, uint32_t *after_id,
				  uint16_t *after_version)
{
	if (!json_is_true(json_object_get(e, "too_large")))
		return 0;
	json_int_t id = json_integer_value(json_object_get(e, "type_id"));
	json_int_t v = json_integer_value(json_object_get(e, "version"));
	const char *type = json_string_value(json_object_get(e, "type"));
	bool valid = id > 0 && id <= UINT32_MAX && v > 0 && v <= UINT16_MAX;
	if (!valid || !schemas_big_listed(known, (uint32_t)id, (uint16_t)v))
		fprintf(stderr,
			"rill: %s: the server's schema %s v%lld (type id %lld, %lld bytes) is too "
			"large for its frames (frame_bytes_max): left out, its events cannot be "
			"encoded or decoded here\n",
			command, type != NULL ? type : "?", (long long)v, (long long)id,
			(long long)json_integer_value(json_object_get(e, "definition_bytes")));
	if (!valid)
		return 1;
	*after_id = (uint32_t)id;
	*after_version = (uint16_t)v;
	struct cli_schema_big *grown = realloc(s->big, (s->big_count + 1) * sizeof(*s->big));
	if (grown == NULL)
		return -ENOMEM;
	s->big = grown;
	s->big[s->big_count] = (struct cli_schema_big){
		.type = type != NULL ? strdup(type) : NULL,
		.type_id = (uint32_t)id,
		.version = (uint16_t)v,
	};
	if (type != NULL && s->big[s->big_count].type == NULL)
		return -ENOMEM;
	s->big_count++;
	return 1;
}

/*
 * One page of the SCHEMAS answer @text, added to @s; *@more when the server has more, and
 * the page's last version (the next page starts after it) in @after_id and @after_version.
 */
static int schemas_parse(const char *command, const char *text, struct cli_schemas *s,
			 const struct cli_schemas *known, bool *more, uint32_t *after_id,
			 uint16_t *after_version)
{
	json_error_t jerr;
	/* A definition's string default may hold \u0000 (rill_schema_parse takes it). */
	json_t *root = json_loads(text, JSON_ALLOW_NUL, &jerr);
	json_t *list = json_object_get(root, "schemas");
	int rc = 0;
	if (!json_is_array(list) || s->count + json_array_size(list) > CLI_SCHEMAS_MAX) {
		fprintf(stderr, "rill: %s: the server's SCHEMAS answer has no \"schemas\" array\n",
			command);
		rc = -EPROTO;
	}
	*more = json_is_true(json_object_get(root, "more")) && json_array_size(list) > 0;
	size_t n = rc == 0 ? json_array_size(list) : 0;
	struct cli_schema_entry *grown =
		rc == 0 ? realloc(s->entries, (s->count + n + 1) * sizeof(*s->entries)) : NULL;
	if (rc == 0 && grown == NULL)
		rc = -ENOMEM;
	if (grown != NULL)
		s->entries = grown;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		char why[RILL_SCHEMA_MESSAGE_BYTES];
		struct cli_schema_entry *e = &s->entries[s->count];
		memset(e, 0, sizeof(*e));
		rc = schema_entry_too_large(command, json_array_get(list, i), s, known, after_id,
					    after_version);
		if (rc != 0) {
			rc = rc < 0 ? rc : 0;
			continue;
		}
		rc = schema_entry_parse(json_array_get(list, i), e, why, sizeof(why));
		if (rc != 0) {
			fprintf(stderr, "rill: %s: the server's schema %u: %s\n", command, s->count,
				why);
			break;
		}
		e->order = s->count;
		s->count++;
		*after_id = e->type_id;
		*after_version = rill_schema_version(e->schema);
	}
	json_decref(root);
	return rc;
}

/* The server's schemas into @out; the too-large versions @known lists are not said again. */
static int schemas_fetch(const char *command, const char *address, struct rill_client *c,
			 const struct cli_schemas *known, struct cli_schemas **out)
{
	struct cli_schemas *s = calloc(1, sizeof(*s));
	int rc = s == NULL ? -ENOMEM : 0;
	/* In pages, each within a frame: the server says when more are left. */
	uint32_t after_id = 0;
	uint16_t after_version = 0;
	for (bool more = true; rc == 0 && more;) {
		char request[96] = "{}";
		if (after_id > 0 || after_version > 0)
			snprintf(request, sizeof(request),
				 "{\"after_type_id\":%u,\"after_version\":%u}", after_id,
				 after_version);
		char *answer = NULL;
		struct rill_client_error err = {{0}};
		rc = rill_client_admin(c, RILL_WIRE_ADMIN_SCHEMAS, request, &answer, &err);
		if (rc != 0) {
			cli_client_fail(command, address, rc, &err);
			cli_schemas_free(s);
			return rc;
		}
		rc = schemas_parse(command, answer, s, known, &more, &after_id, &after_version);
		free(answer);
	}
	if (rc == 0)
		rc = schemas_index(s);
	if (rc == -ENOMEM)
		fprintf(stderr, "rill: %s: out of memory for the schemas\n", command);
	if (rc != 0) {
		cli_schemas_free(s);
		return rc;
	}
	*out = s;
	return 0;
}

int cli_schemas_fetch(const char *command, const char *address, struct rill_client *c,
		      struct cli_schemas **out)
{
	return schemas_fetch(command, address, c, NULL, out);
}

int cli_schemas_refetch(const char *command, const char *address, struct rill_client *c,
			struct cli_schemas **s)
{
	struct cli_schemas *fresh;
	int rc = schemas_fetch(command, address, c, *s, &fresh);
	if (rc != 0)
		return rc;
	cli_schemas_free(*s);
	*s = fresh;
	return 0;
}

/* An entry of cli_schemas_each's order: a version listed, or one too large. */
struct schemas_each_item {
	uint32_t type_id;
	uint16_t version;
	const char *type;
	const struct rill_schema *schema; /* NULL: too large */
};

static int each_item_order(const void *a, const void *b)
{
	const struct schemas_each_item *x = a, *y = b;
	if (x->type_id != y->type_id)
		return x->type_id < y->type_id ? -1 : 1;
	return (int)x->version - (int)y->version;
}

int cli_schemas_each(const struct cli_schemas *s, cli_schemas_each_fn *fn, void *arg)
{
	size_t n = (size_t)s->count + s->big_count;
	struct schemas_each_item *items = calloc(n + 1, sizeof(*items));
	if (items == NULL)
		return -ENOMEM;
	for (uint32_t i = 0; i < s->count; i++)
		items[i] = (struct schemas_each_item){
			.type_id = s->entries[i].type_id,
			.version = rill_schema_version(s->entries[i].schema),
			.type = rill_schema_type_name(s->entries[i].schema),
			.schema = s->entries[i].schema,
		};
	for (uint32_t i = 0; i < s->big_count; i++)
		items[s->count + i] = (struct schemas_each_item){
			.type_id = s->big[i].type_id,
			.version = s->big[i].version,
			.type = s->big[i].type,
		};
	qsort(items, n, sizeof(*items), each_item_order);
	for (size_t i = 0; i < n; i++)
		fn(arg, items[i].type, items[i].version, items[i].type_id, items[i].schema);
	free(items);
	return 0;
}

uint16_t cli_schemas_too_large(const struct cli_schemas *s, const char *type, uint16_t version)
{
	uint16_t big = 0;
	for (uint32_t i = 0; i < s->big_count; i++)
		if (s->big[i].type != NULL && strcmp(s->big[i].type, type) == 0 &&
		    (version == 0 ? s->big[i].version > big : s->big[i].version == version))
			big = s->big[i].version;
	if (version != 0 || big == 0)
		return big;
	/* Its latest: past every version whose definition came. */
	for (uint32_t i = 0; i < s->count; i++)
		if (strcmp(rill_schema_type_name(s->entries[i].schema), type) == 0 &&
		    rill_schema_version(s->entries[i].schema) > big)
			return 0;
	return big;
}

const struct rill_schema *cli_schemas_find(const struct cli_schemas *s, const char *type,
					   uint16_t version, uint32_t *type_id)
{
	uint32_t lo = 0, hi = s->count; /* the first entry named @type or after it */
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (strcmp(rill_schema_type_name(s->entries[mid].schema), type) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	const struct cli_schema_entry *found = NULL;
	for (uint32_t i = lo; i < s->count; i++) {
		const struct cli_schema_entry *e = &s->entries[i];
		if (strcmp(rill_schema_type_name(e->schema), type) != 0)
			break;
		if (version == 0 || rill_schema_version(e->schema) == version)
			found = e; /* version 0: the last, the latest */
	}
	/* A later version listed as too large is the latest: not the one before it. */
	if (found != NULL && version == 0 && cli_schemas_too_large(s, type, 0) != 0)
		found = NULL;
	if (found != NULL && type_id != NULL)
		*type_id = found->type_id;
	return found != NULL ? found->schema : NULL;
}

const struct rill_schema *cli_schemas_by_id(const struct cli_schemas *s, uint32_t type_id,
					    uint16_t version)
{
	if (type_id > s->id_max || s->by_id[type_id] == UINT32_MAX)
		return NULL;
	for (uint32_t i = s->by_id[type_id]; i < s->count && s->entries[i].type_id == type_id; i++)
		if (rill_schema_version(s->entries[i].schema) == version)
			return s->entries[i].schema;
	return NULL;
}
