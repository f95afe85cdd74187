/*
 * `rill schema check|encode|decode`: offline tools over schema definition files. check
 * parses and lays out definitions; encode turns JSON lines into payloads (hex, one per
 * line) and decode turns them back, so that payloads can be made and read by hand and by
 * scripts. `rill schema register` (cli/client_cmd.c) sends a definition to a running
 * server. Main thread; blocking.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/hex.h"
#include "cli.h"
#include "rill/schema.h"

/* A line of input longer than this is refused: a payload in hex, with room to spare. */
#define SCHEMA_LINE_BYTES_MAX (4u * RILL_PAYLOAD_BYTES_MAX)

static int read_file(const char *path, char **out, size_t *bytes)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return -errno;
	char *buf = malloc(RILL_SCHEMA_JSON_BYTES_MAX + 1);
	if (buf == NULL) {
		fclose(f);
		return -ENOMEM;
	}
	size_t n = fread(buf, 1, RILL_SCHEMA_JSON_BYTES_MAX + 1, f);
	int rc = ferror(f) ? -EIO : 0;
	fclose(f);
	if (rc == 0 && n > RILL_SCHEMA_JSON_BYTES_MAX)
		rc = -EFBIG;
	if (rc != 0) {
		free(buf);
		return rc;
	}
	*out = buf;
	*bytes = n;
	return 0;
}

/* Parse the definition in @path; prints why not (and returns NULL) on failure. */
static struct rill_schema *load_schema(const char *command, const char *path)
{
	char *text = NULL;
	size_t bytes = 0;
	int rc = read_file(path, &text, &bytes);
	if (rc != 0) {
		fprintf(stderr, "rill: schema %s: %s: %s\n", command, path,
			rc == -EFBIG ? "larger than a definition may be" : rill_strerror(rc));
		return NULL;
	}
	struct rill_schema *s = NULL;
	struct rill_schema_error err;
	rc = rill_schema_parse(&s, text, bytes, &err);
	free(text);
	if (rc != 0) {
		fprintf(stderr, "rill: schema %s: %s: %s\n", command, path,
			rc == RILL_E_SCHEMA_INVALID ? err.message : rill_strerror(rc));
		return NULL;
	}
	return s;
}

static const char *const type_names[] = {"?",         "i64",    "u64",   "f64", "bool",
					 "timestamp", "string", "bytes", "enum"};

/* One JSON line: the definition's layout. */
static void print_layout(const char *path, const struct rill_schema *s)
{
	json_t *o = json_object();
	json_object_set_new(o, "file", json_string(path));
	json_object_set_new(o, "type", json_string(rill_schema_type_name(s)));
	json_object_set_new(o, "version", json_integer(rill_schema_version(s)));
	json_object_set_new(o, "block_bytes", json_integer(rill_schema_block_bytes(s)));
	json_object_set_new(o, "payload_bytes_max", json_integer(rill_schema_payload_bytes_max(s)));
	json_t *fields = json_array();
	for (uint32_t i = 0; i < rill_schema_field_count(s); i++) {
		const struct rill_schema_field_info *f = rill_schema_field(s, i);
		json_t *jf = json_object();
		json_object_set_new(jf, "name", json_string(f->name));
		json_object_set_new(jf, "type", json_string(type_names[f->type]));
		json_object_set_new(jf, "offset", json_integer(f->offset));
		json_array_append_new(fields, jf);
	}
	json_object_set_new(o, "fields", fields);
	char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (line != NULL)
		puts(line);
	free(line);
	json_decref(o);
}

/* Their --help (cli_help puts them, adding the last newline). */
static const char schema_check_help[] =
	"usage: rill schema check FILE...\n"
	"\n"
	"Parse each schema definition (docs/SCHEMAS.md) and print its layout as a JSON line:\n"
	"file, type, version, block_bytes, payload_bytes_max, each field's name, type and\n"
	"offset. Exit 1 naming the file, the field and the fault for a bad one.";

static const char schema_encode_help[] =
	"usage: rill schema encode --file SCHEMA.json\n"
	"\n"
	"JSON objects on stdin, one a line, to payloads of that version in hex, one a line. A\n"
	"bad line stops it with exit 1, naming its line number and the field at fault.";

static const char schema_decode_help[] =
	"usage: rill schema decode --file SCHEMA.json\n"
	"\n"
	"Payloads in hex on stdin, one a line, to JSON lines; each is validated first. A bad\n"
	"line stops it with exit 1, naming its line number and why.";

static int schema_check(int argc, char **argv)
{
	if (cli_help(argc, argv, schema_check_help))
		return 0;
	if (argc < 1)
		return cli_usage_error("schema check", "needs at least one FILE");
	int status = 0;
	for (int i = 0; i < argc; i++) {
		struct rill_schema *s = load_schema("check", argv[i]);
		if (s == NULL) {
			status = 1;
			continue;
		}
		print_layout(argv[i], s);
		rill_schema_free(s);
	}
	return status;
}

/* Hex text (no separators) to bytes; -1 when it is not hex or too long. */
static long hex_decode(const char *text, size_t len, uint8_t *out, size_t out_bytes)
{
	if (len % 2 != 0 || len / 2 > out_bytes)
		return -1;
	if (rill_hex_decode(text, len, out) != len)
		return -1;
	return (long)(len / 2);
}

/* One hex line to a JSON line on stdout; *text grows when a payload's JSON needs it. */
static int decode_line(const struct rill_schema *s, const char *line, size_t len, uint8_t *payload,
		       char **text, size_t *text_cap, struct rill_schema_error *err)
{
	uint32_t cap = rill_schema_payload_bytes_max(s);
	long n = hex_decode(line, len, payload, cap);
	if (n < 0) {
		snprintf(err->message, sizeof(err->message),
			 "not a payload in hex (at most %u bytes)", cap);
		return -EINVAL;
	}
	size_t json_bytes;
	int rc = rill_schema_json_decode(s, payload, (uint32_t)n, *text, *text_cap, &json_bytes,
					 err);
	if (rc == -ENOSPC) { /* long field names: grow to what it needs, once */
		char *grown = realloc(*text, json_bytes + 1);
		if (grown == NULL)
			return -ENOMEM;
		*text = grown;
		*text_cap = json_bytes + 1;
		rc = rill_schema_json_decode(s, payload, (uint32_t)n, *text, *text_cap, &json_bytes,
					     err);
	}
	if (rc == 0)
		puts(*text);
	return rc;
}

/* Encode (JSON lines to hex) or decode (hex lines to JSON) stdin to stdout. */
static int transcode(const char *command, const struct rill_schema *s, bool encode)
{
	uint32_t cap = rill_schema_payload_bytes_max(s);
	uint8_t *payload = malloc(cap);
	size_t text_cap = (size_t)cap * 8 + 4096; /* JSON of most payloads; grown on demand */
	char *text = malloc(text_cap);
	char *line = NULL;
	size_t line_cap = 0;
	ssize_t len;
	int status = 0;
	unsigned long number = 0;
	while (status == 0 && payload != NULL && text != NULL &&
	       (len = getline(&line, &line_cap, stdin)) >= 0) {
		number++;
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		if (len == 0)
			continue;
		struct rill_schema_error err = {{0}};
		int rc;
		if ((size_t)len > SCHEMA_LINE_BYTES_MAX) {
			rc = -EMSGSIZE;
			snprintf(err.message, sizeof(err.message), "line longer than %u bytes",
				 SCHEMA_LINE_BYTES_MAX);
		} else if (encode) {
			uint32_t n;
			rc = rill_schema_json_encode(s, line, (size_t)len, payload, cap, &n, &err);
			for (uint32_t i = 0; rc == 0 && i < n; i++)
				printf("%02x", payload[i]);
			if (rc == 0)
				putchar('\n');
		} else {
			rc = decode_line(s, line, (size_t)len, payload, &text, &text_cap, &err);
		}
		if (rc != 0) {
			fprintf(stderr, "rill: schema %s: line %lu: %s\n", command, number,
				err.message[0] ? err.message : rill_strerror(rc));
			status = 1;
		}
	}
	if (payload == NULL || text == NULL) {
		fprintf(stderr, "rill: schema %s: out of memory\n", command);
		status = 1;
	}
	free(line);
	free(text);
	free(payload);
	return status;
}

static int schema_transcode(int argc, char **argv, bool encode)
{
	const char *command = encode ? "encode" : "decode";
	const char *file = NULL;
	if (cli_help(argc, argv, encode ? schema_encode_help : schema_decode_help))
		return 0;
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--file") == 0 && i + 1 < argc)
			file = argv[++i];
		else
			return cli_usage_error(
				encode ? "schema encode" : "schema decode",
				"usage: --file SCHEMA.json (lines on stdin; try --help)");
	}
	if (file == NULL)
		return cli_usage_error(encode ? "schema encode" : "schema decode",
				       "needs --file SCHEMA.json");
	struct rill_schema *s = load_schema(command, file);
	if (s == NULL)
		return 1;
	int status = transcode(command, s, encode);
	rill_schema_free(s);
	return status;
}

int cli_schema(int argc, char **argv)
{
	if (argc >= 1 && (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0)) {
		puts("usage: rill schema check FILE...\n"
		     "       rill schema encode --file SCHEMA.json\n"
		     "       rill schema decode --file SCHEMA.json\n"
		     "       rill schema register [--connect HOST:PORT] --file SCHEMA.json "
		     "[--compat MODE]\n"
		     "       rill schema list [--connect HOST:PORT]\n"
		     "(each takes --help)");
		return 0;
	}
	if (argc < 1)
		return cli_usage_error(
			"schema", "needs a subcommand: check, encode, decode, register or list");
	if (strcmp(argv[0], "check") == 0)
		return schema_check(argc - 1, argv + 1);
	if (strcmp(argv[0], "encode") == 0)
		return schema_transcode(argc - 1, argv + 1, true);
	if (strcmp(argv[0], "decode") == 0)
		return schema_transcode(argc - 1, argv + 1, false);
	if (strcmp(argv[0], "register") == 0)
		return cli_schema_register(argc - 1, argv + 1);
	if (strcmp(argv[0], "list") == 0)
		return cli_schema_list(argc - 1, argv + 1);
	return cli_usage_error("schema",
			       "unknown subcommand (check, encode, decode, register or list)");
}
