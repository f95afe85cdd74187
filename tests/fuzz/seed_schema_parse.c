/*
 * Writes a seed corpus for fuzz_schema_parse into the folder given: every definition of
 * schema_fuzz.h, and near misses: an unknown field type or key, duplicate field names, a
 * default of the wrong type, an enum default not among its symbols, a version of 0, a
 * missing max_length, a field list that is not an array.
 */
#include <stdio.h>
#include <string.h>

#include "tests/fuzz/schema_fuzz.h"

static int write_seed(const char *dir, int index, const char *json)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/seed-%02d", dir, index);
	FILE *f = fopen(path, "wb");
	size_t bytes = strlen(json);
	if (f == NULL || fwrite(json, 1, bytes, f) != bytes) {
		perror(path);
		if (f != NULL)
			fclose(f);
		return 1;
	}
	return fclose(f) != 0;
}

static const char *const near_misses[] = {
	"{\"type\": \"T\", \"version\": 1, \"fields\": [{\"name\": \"a\", \"type\": \"i32\"}]}",
	"{\"type\": \"T\", \"version\": 1, \"fields\": [{\"name\": \"a\", \"type\": \"i64\"}, "
	"{\"name\": \"a\", \"type\": \"u64\"}]}",
	"{\"type\": \"T\", \"version\": 1, \"fields\": [{\"name\": \"a\", \"type\": \"i64\", "
	"\"default\": \"5\"}]}",
	"{\"type\": \"T\", \"version\": 1, \"fields\": [{\"name\": \"e\", \"type\": \"enum\", "
	"\"symbols\": [\"A\", \"B\"], \"default\": \"C\"}]}",
	"{\"type\": \"T\", \"version\": 1, \"fields\": [{\"name\": \"e\", \"type\": \"enum\", "
	"\"symbols\": [\"A\", \"A\"]}]}",
	"{\"type\": \"T\", \"version\": 0, \"fields\": [{\"name\": \"a\", \"type\": \"bool\"}]}",
	"{\"type\": \"T\", \"version\": 65536, \"fields\": [{\"name\": \"a\", \"type\": "
	"\"bool\"}]}",
	"{\"type\": \"T\", \"version\": 1, \"fields\": [{\"name\": \"s\", \"type\": \"string\"}]}",
	"{\"type\": \"T\", \"version\": 1, \"fields\": [{\"name\": \"s\", \"type\": \"bytes\", "
	"\"max_length\": 2, \"default\": \"abcdef\"}]}",
	"{\"type\": \"T\", \"version\": 1, \"fields\": {\"name\": \"a\", \"type\": \"bool\"}}",
	"{\"type\": \"T\", \"version\": 1, \"fields\": []}",
	"{\"type\": \"\", \"version\": 1, \"fields\": [{\"name\": \"a\", \"type\": \"bool\"}]}",
	"{\"type\": \"T\", \"version\": 1, \"colour\": \"red\", \"fields\": [{\"name\": \"a\", "
	"\"type\": \"bool\"}]}",
	"{\"type\": \"T\", \"version\": 1, \"fields\": [{\"name\": \"f\", \"type\": \"f64\", "
	"\"default\": 1e400}, {\"name\": \"u\", \"type\": \"u64\", \"default\": -1}]}",
	"{\"type\": \"T\", \"version\": 1, \"fields\": [{\"name\": \"s\", \"type\": \"string\", "
	"\"max_length\": 3, \"default\": \"\\u00e9\\u00e9\"}]}",
	"{\"type\": \"T\", \"version\": 1, \"fields\": [{\"name\": \"s\", \"type\": \"string\", "
	"\"max_length\": 1048577}]}",
	"{\"type\": \"T\", \"version\": 1, \"fields\": [{\"name\": \"a\", \"type\": \"bool\"}]",
};

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: seed_schema_parse DIR\n");
		return 2;
	}
	int index = 0;
	for (size_t i = 0; i < FUZZ_SCHEMA_COUNT; i++)
		if (write_seed(argv[1], index++, fuzz_schema_defs[i]) != 0)
			return 1;
	for (size_t i = 0; i < FUZZ_EVOLVING_VERSIONS; i++)
		if (write_seed(argv[1], index++, fuzz_evolving_defs[i].json) != 0)
			return 1;
	for (size_t i = 0; i < sizeof(near_misses) / sizeof(near_misses[0]); i++)
		if (write_seed(argv[1], index++, near_misses[i]) != 0)
			return 1;
	return 0;
}
