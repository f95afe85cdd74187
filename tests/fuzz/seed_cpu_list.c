/*
 * Writes a seed corpus for fuzz_cpu_list: CPU lists valid and not, one file each, into the
 * folder given.
 */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: seed_cpu_list DIR\n");
		return 2;
	}
	const char *seeds[] = {"0", "2-5,8", "3,1,7-7", "0-63", "1-", "5-3", "1,,2", "99999"};
	for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
		char path[4096];
		snprintf(path, sizeof(path), "%s/seed-%02zu", argv[1], i);
		FILE *f = fopen(path, "wb");
		if (f == NULL || fwrite(seeds[i], 1, strlen(seeds[i]), f) != strlen(seeds[i])) {
			perror(path);
			return 1;
		}
		if (fclose(f) != 0)
			return 1;
	}
	return 0;
}
