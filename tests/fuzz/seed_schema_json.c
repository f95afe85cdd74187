/*
 * Writes a seed corpus for fuzz_schema_json into the folder given: for each schema of
 * schema_fuzz.h (the first byte picks it) valid JSON objects, and near misses: a missing
 * or unknown field, a wrong type, numbers at and past their range, an over-long string,
 * bad hex, an unknown symbol, text that is not an object.
 */
#include <stdio.h>
#include <string.h>

#include "tests/fuzz/schema_fuzz.h"

static int write_seed(const char *dir, int index, uint8_t schema, const char *json)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/seed-%02d", dir, index);
	FILE *f = fopen(path, "wb");
	size_t bytes = strlen(json);
	if (f == NULL || fwrite(&schema, 1, 1, f) != 1 || fwrite(json, 1, bytes, f) != bytes) {
		perror(path);
		if (f != NULL)
			fclose(f);
		return 1;
	}
	return fclose(f) != 0;
}

static const struct {
	uint8_t schema;
	const char *json;
} seeds[] = {
	{0, "{\"a\": 1, \"b\": 2, \"c\": 3.5, \"d\": true, \"e\": 1700000000000000000, "
	    "\"s\": \"sku-1\", \"y\": \"00ff\", \"k\": \"Y\"}"},
	{0, "{\"k\": \"Z\", \"y\": \"\", \"s\": \"\", \"e\": -1, \"d\": false, \"c\": -0.0, "
	    "\"b\": \"18446744073709551615\", \"a\": -9223372036854775808}"},
	{0, "{\"a\": 9223372036854775807, \"b\": 9223372036854775807, \"c\": 1e308, "
	    "\"d\": true, \"e\": 0, \"s\": \"\\u00e9\\ud83d\\ude00\\n\\\"\", "
	    "\"y\": \"0123456789abcdef\", \"k\": \"X\"}"},
	{0, "{\"a\": 1, \"b\": 2, \"c\": 3.5, \"d\": true, \"e\": 1, \"s\": \"x\", \"y\": \"00\"}"},
	{0, "{\"a\": 1, \"b\": -2, \"c\": 3.5, \"d\": true, \"e\": 1, \"s\": \"x\", \"y\": \"0\", "
	    "\"k\": \"W\"}"},
	{0, "{\"a\": 9223372036854775808, \"b\": \"18446744073709551616\", \"c\": 1, \"d\": 1, "
	    "\"e\": 1.5, \"s\": \"01234567890123456\", \"y\": \"0g\", \"k\": 1}"},
	{1, "{}"},
	{1, "{\"a\": 5, \"c\": 2.5e-310, \"s\": \"h\\u00e9llo w\\u00f6rld\", \"y\": \"\"}"},
	{1, "{\"b\": \"9223372036854775808\", \"k\": \"X\", \"d\": false, \"zzz\": 1}"},
	{1, "{\"a\": 5, \"a\": 6}"},
	{2, "{\"on\": true, \"k\": \"ONE\", \"s\": \"a\", \"u\": 0}"},
	{2, "{\"on\": false, \"n\": -1, \"k\": \"ONE\", \"off\": true, \"s\": \"\", \"y\": \"7f\", "
	    "\"u\": \"18446744073709551615\"}"},
	{2, "{\"on\": true, \"k\": \"ONE\", \"s\": \"\\u00e9\", \"u\": 0}"},
	{3, "{\"text\": \"lorem ipsum dolor sit amet, consectetur adipiscing elit\", "
	    "\"blob\": \"deadbeefcafebabe\", \"x\": 0.1}"},
	{3, "{\"text\": \"\", \"blob\": \"\", \"x\": -1.7976931348623157e308, \"t\": \"abcde\"}"},
	{3, "{\"text\": \"\\u0000\", \"blob\": \"00\", \"x\": 5e-324}"},
	{3, "[1, 2, 3]"},
	{3, "{\"text\": \"x\", \"blob\": \"AB\", \"x\": 1}  trailing"},
	{0, ""},
};

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: seed_schema_json DIR\n");
		return 2;
	}
	int index = 0;
	for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++)
		if (write_seed(argv[1], index++, seeds[i].schema, seeds[i].json) != 0)
			return 1;
	return 0;
}
