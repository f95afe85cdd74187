// The public headers from C++: every one included by a C++ program, which then calls into
// the shared library as a C++ application would (the extern "C" guards must hold for the
// link, and nothing in the headers may be C-only). No cmocka: the exit status says it.
#include <rill/client.h>
#include <rill/error.h>
#include <rill/limits.h>
#include <rill/projection.h>
#include <rill/record.h>
#include <rill/rill.h>
#include <rill/schema.h>
#include <rill/server.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

int main()
{
	rill_server_config sc;
	rill_server_config_default(&sc);
	rill_engine_config ec;
	rill_engine_config_default(&ec);
	if (sc.listen == nullptr || std::strcmp(sc.listen, RILL_SERVER_LISTEN_DEFAULT) != 0) {
		std::fprintf(stderr, "rill_server_config_default: listen is not the default\n");
		return 1;
	}
	const char *text = rill_strerror(RILL_E_WRITE_SEQUENCE_GAP);
	if (text == nullptr || std::strstr(text, "gap") == nullptr) {
		std::fprintf(stderr, "rill_strerror: \"%s\"\n", text ? text : "(null)");
		return 1;
	}
	std::printf("C++: the public headers compile and link\n");
	return 0;
}
