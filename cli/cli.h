/* The `rill` command's pieces: one function per command group, shared argument helpers. */
#ifndef RILL_CLI_H
#define RILL_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

struct rill_client;
struct rill_client_error;
struct rill_schema;

/* rill log verify|dump ...; returns the process exit status. */
int cli_log(int argc, char **argv);

/* rill schema check|encode|decode ...; returns the process exit status. */
int cli_schema(int argc, char **argv);

/* rill bench log ...; returns the process exit status. */
int cli_bench_log(int argc, char **argv);

/* rill bench engine ...; returns the process exit status. */
int cli_bench_engine(int argc, char **argv);

/* rill bench dpdk ...; returns the process exit status. */
int cli_bench_dpdk(int argc, char **argv);

/*
 * The machine's CPU time so far, from /proc/stat's first line: every tick, and the ticks
 * the hypervisor gave to other guests while this one wanted to run (steal). The benches
 * print the stolen share of their run: on a shared VM it moves their tails by milliseconds.
 */
struct cli_cpu_ticks {
	uint64_t total, steal;
};

/* cli_cpu_ticks - the counters now; zeros where /proc/stat cannot be read. */
void cli_cpu_ticks(struct cli_cpu_ticks *out);

/* cli_cpu_steal_pct - percent of all CPU time stolen from @a to @b (0 within one tick);
 * -1 when /proc/stat could not be read. */
double cli_cpu_steal_pct(const struct cli_cpu_ticks *a, const struct cli_cpu_ticks *b);

/* rill bench produce ...; returns the process exit status. */
int cli_bench_produce(int argc, char **argv);

/* rill serve ...; returns the process exit status. */
int cli_serve(int argc, char **argv);

/* Remove the directory tree @dir (a benchmark's scratch folder). 0 or -errno. */
int cli_remove_tree(const char *dir);

/* ---- Client commands (cli/client_cmd.c, inspect_cmd.c, produce_cmd.c, consume_cmd.c) ---- */

#define CLI_CONNECT_DEFAULT "127.0.0.1:7400"

/* rill topic create ...; rill schema register ...; rill projection create ...;
 * rill group delete ... */
int cli_topic(int argc, char **argv);
int cli_schema_register(int argc, char **argv);
int cli_projection(int argc, char **argv);
int cli_group(int argc, char **argv);
/* rill topic list|info, rill schema list, rill projection list, rill group show
 * (cli/inspect_cmd.c) ...; each returns the process exit status. */
int cli_topic_list(int argc, char **argv);
int cli_topic_info(int argc, char **argv);
int cli_schema_list(int argc, char **argv);
int cli_projection_list(int argc, char **argv);
int cli_group_show(int argc, char **argv);
/* rill produce|consume|query|stat|ping ...; each returns the process exit status. */
int cli_produce(int argc, char **argv);
int cli_consume(int argc, char **argv);
int cli_query(int argc, char **argv);
int cli_stat(int argc, char **argv);
int cli_ping(int argc, char **argv);

/* If --help or -h is among the options (not the value of one: `--key -h` looks "-h" up):
 * print @usage on stdout and return true. */
bool cli_help(int argc, char **argv, const char *usage);

/* If argv[*i] is @name and a value follows it: the value into @value, *i past it, true. */
bool cli_opt(int argc, char **argv, int *i, const char *name, const char **value);

/* Connect to @address (@inflight_max 0: the default); prints why not. 0 or the error. */
int cli_connect(const char *command, const char *address, uint32_t inflight_max,
		struct rill_client **out);

/* How long a connection may sit with nothing in flight before it is pinged ahead of its
 * next request: the server's idle timeout (idle_timeout_s) may have closed it meanwhile. */
#define CLI_IDLE_PING_NS (1000ull * 1000000u)

/*
 * cli_client_revive - ping *@c; if it does not answer (the server's idle timeout closed
 * it), connect again and close it. Only for a connection with nothing in flight and no
 * subscription. 0 (*@c answers, maybe a new one), or the error of the new connection,
 * said on stderr (*@c stays, and its calls fail).
 */
int cli_client_revive(const char *command, const char *address, uint32_t inflight_max,
		      struct rill_client **c);

/* Print "rill: COMMAND: ADDRESS: why" for a client call's failure; returns 1. */
int cli_client_fail(const char *command, const char *address, int rc,
		    const struct rill_client_error *err);

/* Print a JSON text on one line (or indented with @pretty). */
void cli_print_json(const char *text, bool pretty);

/* A u64 as JSON: an integer up to INT64_MAX, decimal digits in a string beyond. */
json_t *cli_json_u64(uint64_t v);
/* A double, or null where JSON has no number for it (an infinite f64 sum). */
json_t *cli_json_real(double v);
/* @key into @o as "key" when it is printable UTF-8, else as "key_hex". */
void cli_json_put_key(json_t *o, const void *key, size_t bytes);

/* The server's schemas (ADMIN SCHEMAS), parsed and indexed by name and by type id. */
struct cli_schemas;
int cli_schemas_fetch(const char *command, const char *address, struct rill_client *c,
		      struct cli_schemas **out);
void cli_schemas_free(struct cli_schemas *s);
/*
 * The server's schemas again into *@s, replacing them (the old are freed); only the
 * versions too large for the server's frames that *@s did not list are said. 0, or an
 * error said on stderr (*@s stays).
 */
int cli_schemas_refetch(const char *command, const char *address, struct rill_client *c,
			struct cli_schemas **s);
/*
 * Version @version of @type (0: the latest) and its type id, or NULL; NULL too for version
 * 0 when the latest is one the server listed as too large for its frames.
 */
const struct rill_schema *cli_schemas_find(const struct cli_schemas *s, const char *type,
					   uint16_t version, uint32_t *type_id);
/*
 * Version @version of @type (0: its latest) when the server listed it as too large for its
 * frames, so that it could not be fetched; else 0.
 */
uint16_t cli_schemas_too_large(const struct cli_schemas *s, const char *type, uint16_t version);
/* The name of type @type_id when the server listed its version @version as too large for
 * its frames; else NULL. */
const char *cli_schemas_big_name(const struct cli_schemas *s, uint32_t type_id, uint16_t version);
/* A version of a type: its definition @schema, or NULL when the server listed it as too
 * large for its frames (@type NULL when it did not name the type either). */
typedef void cli_schemas_each_fn(void *arg, const char *type, uint16_t version, uint32_t type_id,
				 const struct rill_schema *schema);
/* Call @fn for every version in @s, in (type id, version) order. 0 or -ENOMEM. */
int cli_schemas_each(const struct cli_schemas *s, cli_schemas_each_fn *fn, void *arg);
/* Version @version of type @type_id, or NULL. */
const struct rill_schema *cli_schemas_by_id(const struct cli_schemas *s, uint32_t type_id,
					    uint16_t version);

/* A whole decimal unsigned number; 0 or -EINVAL. */
int cli_parse_u64(const char *text, uint64_t *out);

/* What a consumer group's name may be (rill_group_name_valid), for usage errors. */
#define CLI_GROUP_NAME_RULE                                                                        \
	"--group takes a name of 1 to 128 bytes of A-Z a-z 0-9 _ . -, not starting with a dot"

/* Print "rill: COMMAND: MESSAGE" and return exit status 2 (bad usage). */
int cli_usage_error(const char *command, const char *message);

#endif /* RILL_CLI_H */
