/*
 * The client commands that list and inspect what a running server holds, for an operator
 * finding out what a deployment is made of: `rill topic list`, `rill topic info`, `rill
 * schema list`, `rill projection list` and `rill group show`. Each asks over one
 * connection, page by page where the server answers in pages (TOPICS, PROJECTIONS,
 * SCHEMAS, TOPIC_INFO's partitions: docs/PROTOCOL.md, "Administration"), and prints JSON:
 * the lists one JSON line per item, topic info and group show one JSON object.
 * Main thread; blocking; not a hot path.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "io/wire.h"
#include "rill/client.h"
#include "rill/rill.h"
#include "rill/schema.h"

/* Pages a listing may take before the server is taken to be looping: more than any
 * server's limits allow (1,024 topics, 256 projections, 1,024 partitions; a page holds one
 * at least). */
#define INSPECT_PAGES_MAX 4096u

/* Flush stdout: 0, or 1 with the write error said (a full disk, a closed pipe). */
static int inspect_flush(const char *command)
{
	if (fflush(stdout) == 0 && !ferror(stdout))
		return 0;
	fprintf(stderr, "rill: %s: stdout: %s\n", command, strerror(errno != 0 ? errno : EIO));
	return 1;
}

static void inspect_print(json_t *j)
{
	char *line = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (line != NULL)
		puts(line);
	free(line);
}

/* One ADMIN request on @c with @body (taken): its answer, a JSON object, into *@out; 0, or
 * 1 with why not said. */
static int inspect_admin(const char *command, const char *address, struct rill_client *c,
			 uint16_t op, json_t *body, json_t **out)
{
	char *text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	if (text == NULL) {
		fprintf(stderr, "rill: %s: out of memory\n", command);
		return 1;
	}
	char *answer = NULL;
	struct rill_client_error err = {{0}};
	int rc = rill_client_admin(c, op, text, &answer, &err);
	free(text);
	if (rc != 0) {
		free(answer);
		return cli_client_fail(command, address, rc, &err);
	}
	json_error_t jerr;
	*out = json_loads(answer, 0, &jerr);
	free(answer);
	if (!json_is_object(*out)) {
		json_decref(*out);
		fprintf(stderr, "rill: %s: %s: the server's answer is not a JSON object\n", command,
			address);
		return 1;
	}
	return 0;
}

/* Parse the options every command here takes: --connect, and --name, --group, --topic
 * where @name, @group, @topic are not NULL. 0, or 2 with @usage said. */
static int inspect_opts(int argc, char **argv, const char *command, const char *usage,
			const char **address, const char **name, const char **group,
			const char **topic)
{
	*address = CLI_CONNECT_DEFAULT;
	for (int i = 0; i < argc; i++) {
		if (!cli_opt(argc, argv, &i, "--connect", address) &&
		    !(name != NULL && cli_opt(argc, argv, &i, "--name", name)) &&
		    !(group != NULL && cli_opt(argc, argv, &i, "--group", group)) &&
		    !(topic != NULL && cli_opt(argc, argv, &i, "--topic", topic)))
			return cli_usage_error(command, usage);
	}
	return 0;
}

/* ---- topic list, projection list ------------------------------------------------------ */

#define TOPIC_LIST_USAGE                                                                           \
	"usage: rill topic list [--connect HOST:PORT]\n"                                           \
	"  prints every topic as a JSON line, its settings as topic create prints them, in\n"      \
	"  name order"
#define PROJECTION_LIST_USAGE                                                                      \
	"usage: rill projection list [--connect HOST:PORT]\n"                                      \
	"  prints every projection as a JSON line, in name order: "                                \
	"{\"name\",\"topic\",\"type\",\"version\",\"kind\",\"field\",\"window_ns\"}\n"             \
	"  (a custom one, of the embedding application: kind \"custom\", the rest null)"

/*
 * Every entry of a paged listing (@op TOPICS or PROJECTIONS, the answer's array @key), one
 * JSON line each; the exit status.
 */
static int inspect_list(const char *command, const char *address, uint16_t op, const char *key)
{
	struct rill_client *c;
	if (cli_connect(command, address, 0, &c) != 0)
		return 1;
	char *after = NULL;
	int status = 0;
	bool more = true;
	for (uint32_t page = 0; status == 0 && more; page++) {
		json_t *answer = NULL;
		json_t *body = after != NULL ? json_pack("{s:s}", "after", after) : json_object();
		status = inspect_admin(command, address, c, op, body, &answer);
		if (status != 0)
			break;
		json_t *list = json_object_get(answer, key);
		more = json_is_true(json_object_get(answer, "more"));
		const char *last = json_string_value(
			json_object_get(json_array_get(list, json_array_size(list) - 1), "name"));
		const char *bad = NULL;
		if (!json_is_array(list))
			bad = "its answer has no such array";
		else if (more && last == NULL)
			bad = "more follow a page with no named last entry";
		else if (more && page + 1 == INSPECT_PAGES_MAX)
			bad = "the pages never end";
		if (bad != NULL) {
			fprintf(stderr, "rill: %s: %s: the server's \"%s\": %s\n", command, address,
				key, bad);
			status = 1;
		}
		for (size_t i = 0; status == 0 && i < json_array_size(list); i++)
			inspect_print(json_array_get(list, i));
		free(after);
		after = status == 0 && more ? strdup(last) : NULL;
		json_decref(answer);
		if (status == 0 && more && after == NULL) {
			fprintf(stderr, "rill: %s: out of memory\n", command);
			status = 1;
		}
	}
	free(after);
	rill_client_close(c);
	return status != 0 ? status : inspect_flush(command);
}

int cli_topic_list(int argc, char **argv)
{
	if (cli_help(argc, argv, TOPIC_LIST_USAGE))
		return 0;
	const char *address;
	int rc = inspect_opts(argc, argv, "topic list", TOPIC_LIST_USAGE, &address, NULL, NULL,
			      NULL);
	return rc != 0 ? rc : inspect_list("topic list", address, RILL_WIRE_ADMIN_TOPICS, "topics");
}

int cli_projection_list(int argc, char **argv)
{
	if (cli_help(argc, argv, PROJECTION_LIST_USAGE))
		return 0;
	const char *address;
	int rc = inspect_opts(argc, argv, "projection list", PROJECTION_LIST_USAGE, &address, NULL,
			      NULL, NULL);
	return rc != 0 ? rc
		       : inspect_list("projection list", address, RILL_WIRE_ADMIN_PROJECTIONS,
				      "projections");
}

/* ---- topic info ----------------------------------------------------------------------- */

#define TOPIC_INFO_USAGE                                                                           \
	"usage: rill topic info [--connect HOST:PORT] --name T\n"                                  \
	"  prints one JSON object: the topic's settings, as topic create prints them, and\n"       \
	"  \"partitions_info\": "                                                                  \
	"[{\"partition\",\"first_offset\",\"next_offset\",\"durable_offset\"}, ...]"

/*
 * Topic @name's settings and every partition's offsets (TOPIC_INFO, page by page) into
 * *@out: the first page's answer, with the later pages' partitions added to its
 * "partitions_info" and no "partitions_more". 0, or 1 with why not said.
 */
static int inspect_topic(const char *command, const char *address, struct rill_client *c,
			 const char *name, json_t **out)
{
	json_t *topic = NULL, *all = NULL;
	for (uint32_t page = 0; page < INSPECT_PAGES_MAX; page++) {
		size_t from = all != NULL ? json_array_size(all) : 0;
		json_t *answer = NULL;
		if (inspect_admin(command, address, c, RILL_WIRE_ADMIN_TOPIC_INFO,
				  json_pack("{s:s, s:I}", "name", name, "partitions_from",
					    (json_int_t)from),
				  &answer) != 0) {
			json_decref(topic);
			return 1;
		}
		json_t *list = json_object_get(answer, "partitions_info");
		bool more = json_is_true(json_object_get(answer, "partitions_more"));
		if (!json_is_array(list) || (more && json_array_size(list) == 0)) {
			fprintf(stderr,
				"rill: %s: %s: the server's answer has no partitions' offsets (a "
				"server older than this rill?)\n",
				command, address);
			json_decref(answer);
			json_decref(topic);
			return 1;
		}
		if (topic == NULL) {
			topic = answer;
			all = list;
		} else {
			json_array_extend(all, list);
			json_decref(answer);
		}
		if (!more) {
			json_object_del(topic, "partitions_more");
			*out = topic;
			return 0;
		}
	}
	fprintf(stderr, "rill: %s: %s: the server's partitions never end\n", command, address);
	json_decref(topic);
	return 1;
}

int cli_topic_info(int argc, char **argv)
{
	if (cli_help(argc, argv, TOPIC_INFO_USAGE))
		return 0;
	const char *address, *name = NULL;
	int rc = inspect_opts(argc, argv, "topic info", TOPIC_INFO_USAGE, &address, &name, NULL,
			      NULL);
	if (rc != 0)
		return rc;
	if (name == NULL)
		return cli_usage_error("topic info", "needs --name");
	struct rill_client *c;
	if (cli_connect("topic info", address, 0, &c) != 0)
		return 1;
	json_t *topic = NULL;
	int status = inspect_topic("topic info", address, c, name, &topic);
	rill_client_close(c);
	if (status != 0)
		return status;
	inspect_print(topic);
	json_decref(topic);
	return inspect_flush("topic info");
}

/* ---- schema list ---------------------------------------------------------------------- */

#define SCHEMA_LIST_USAGE                                                                          \
	"usage: rill schema list [--connect HOST:PORT]\n"                                          \
	"  prints every registered version of every event type as a JSON line,\n"                  \
	"  {\"type\",\"version\",\"type_id\",\"fields\"} in type id and version order (one too "   \
	"large\n  for the server's frames: \"too_large\":true in place of \"fields\")"

static void schema_list_one(void *arg, const char *type, uint16_t version, uint32_t type_id,
			    const struct rill_schema *schema)
{
	(void)arg;
	json_t *j = json_pack("{s:s?, s:I, s:I}", "type", type, "version", (json_int_t)version,
			      "type_id", (json_int_t)type_id);
	if (j == NULL)
		return;
	if (schema != NULL)
		json_object_set_new(j, "fields",
				    json_integer((json_int_t)rill_schema_field_count(schema)));
	else
		json_object_set_new(j, "too_large", json_true());
	inspect_print(j);
	json_decref(j);
}

int cli_schema_list(int argc, char **argv)
{
	if (cli_help(argc, argv, SCHEMA_LIST_USAGE))
		return 0;
	const char *address;
	int rc = inspect_opts(argc, argv, "schema list", SCHEMA_LIST_USAGE, &address, NULL, NULL,
			      NULL);
	if (rc != 0)
		return rc;
	struct rill_client *c;
	if (cli_connect("schema list", address, 0, &c) != 0)
		return 1;
	struct cli_schemas *s = NULL;
	rc = cli_schemas_fetch("schema list", address, c, &s);
	rill_client_close(c);
	if (rc != 0)
		return 1; /* said */
	rc = cli_schemas_each(s, schema_list_one, NULL);
	cli_schemas_free(s);
	if (rc != 0) {
		fprintf(stderr, "rill: schema list: out of memory\n");
		return 1;
	}
	return inspect_flush("schema list");
}

/* ---- group show ----------------------------------------------------------------------- */

#define GROUP_SHOW_USAGE                                                                           \
	"usage: rill group show [--connect HOST:PORT] --group G --topic T\n"                       \
	"  prints one JSON object: {\"group\",\"topic\",\"lag\",\"partitions\":[{\"partition\","   \
	"\"committed\",\n  \"first_offset\",\"next_offset\",\"lag\"}, ...]}; lag is next_offset "  \
	"less committed, or\n  less first_offset where the group never committed (committed "      \
	"null)"

/* The group's committed offset of each partition (GROUP_FETCH's "offsets") by partition
 * into @committed (INT64_MIN: none); 0, or -EPROTO for an answer that is not one. */
static int group_offsets(json_t *answer, json_int_t *committed, size_t parts)
{
	json_t *offsets = json_object_get(answer, "offsets");
	if (!json_is_array(offsets))
		return -EPROTO;
	for (size_t i = 0; i < parts; i++)
		committed[i] = INT64_MIN;
	size_t i;
	json_t *e;
	json_array_foreach(offsets, i, e)
	{
		json_t *p = json_object_get(e, "partition"), *o = json_object_get(e, "offset");
		if (!json_is_integer(p) || !json_is_integer(o) || json_integer_value(p) < 0 ||
		    (size_t)json_integer_value(p) >= parts || json_integer_value(o) < 0)
			return -EPROTO;
		committed[json_integer_value(p)] = json_integer_value(o);
	}
	return 0;
}

/* The object group show prints, from topic info @topic and @committed; NULL: no memory. */
static json_t *group_show_json(const char *group, const char *topic_name, json_t *topic,
			       const json_int_t *committed)
{
	json_t *parts = json_array();
	json_int_t total = 0;
	size_t i;
	json_t *e;
	json_array_foreach(json_object_get(topic, "partitions_info"), i, e)
	{
		json_int_t first = json_integer_value(json_object_get(e, "first_offset"));
		json_int_t next = json_integer_value(json_object_get(e, "next_offset"));
		json_int_t from = committed[i] != INT64_MIN ? committed[i] : first;
		json_int_t lag = next > from ? next - from : 0; /* a stopped log may end below */
		total += lag;
		json_array_append_new(
			parts, json_pack("{s:I, s:o, s:I, s:I, s:I}", "partition", (json_int_t)i,
					 "committed",
					 committed[i] != INT64_MIN ? json_integer(committed[i])
								   : json_null(),
					 "first_offset", first, "next_offset", next, "lag", lag));
	}
	return json_pack("{s:s, s:s, s:I, s:o}", "group", group, "topic", topic_name, "lag", total,
			 "partitions", parts);
}

int cli_group_show(int argc, char **argv)
{
	if (cli_help(argc, argv, GROUP_SHOW_USAGE))
		return 0;
	const char *address, *group = NULL, *topic_name = NULL;
	int rc = inspect_opts(argc, argv, "group show", GROUP_SHOW_USAGE, &address, NULL, &group,
			      &topic_name);
	if (rc != 0)
		return rc;
	if (group == NULL || topic_name == NULL)
		return cli_usage_error("group show", "needs --group and --topic");
	if (!rill_group_name_valid(group))
		return cli_usage_error("group show", CLI_GROUP_NAME_RULE);
	struct rill_client *c;
	if (cli_connect("group show", address, 0, &c) != 0)
		return 1;
	/* The committed offsets first: read after the partitions' ends, a commit made in
	 * between could pass an end read before it, and show a lag below 0. */
	json_t *fetched = NULL, *topic = NULL;
	int status = inspect_admin("group show", address, c, RILL_WIRE_ADMIN_GROUP_FETCH,
				   json_pack("{s:s, s:s}", "group", group, "topic", topic_name),
				   &fetched);
	if (status == 0)
		status = inspect_topic("group show", address, c, topic_name, &topic);
	rill_client_close(c);
	size_t parts = json_array_size(json_object_get(topic, "partitions_info"));
	json_int_t *committed = status == 0 ? calloc(parts + 1, sizeof(*committed)) : NULL;
	json_t *out = NULL;
	if (status == 0 && committed == NULL) {
		fprintf(stderr, "rill: group show: out of memory\n");
		status = 1;
	} else if (status == 0 && group_offsets(fetched, committed, parts) != 0) {
		fprintf(stderr,
			"rill: group show: %s: the server's GROUP_FETCH answer is not "
			"{\"offsets\":[{\"partition\",\"offset\"}, ...]} of this topic\n",
			address);
		status = 1;
	} else if (status == 0) {
		out = group_show_json(group, topic_name, topic, committed);
		if (out == NULL) {
			fprintf(stderr, "rill: group show: out of memory\n");
			status = 1;
		}
	}
	if (out != NULL)
		inspect_print(out);
	json_decref(out);
	free(committed);
	json_decref(topic);
	json_decref(fetched);
	return status != 0 ? status : inspect_flush("group show");
}
