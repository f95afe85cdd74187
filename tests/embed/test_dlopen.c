/*
 * librill.so loaded at run time, as Python's ctypes or a plugin host loads it: dlopen,
 * dlsym, a call. tests/embed/test_dlopen.sh runs it under the conditions the README gives.
 * usage: test_dlopen LIBRILL_SO
 * Exit 0 when loaded and answering, 1 with dlerror()'s message on stdout otherwise.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: test_dlopen LIBRILL_SO\n");
		return 2;
	}
	void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
	if (lib == NULL) {
		printf("%s\n", dlerror());
		return 1;
	}
	const char *(*strerror_fn)(int) = NULL;
	*(void **)&strerror_fn = dlsym(lib, "rill_strerror"); /* ISO C: no cast to it */
	if (strerror_fn == NULL || strcmp(strerror_fn(0), "success") != 0) {
		printf("rill_strerror: missing or wrong\n");
		return 1;
	}
	dlclose(lib);
	return 0;
}
