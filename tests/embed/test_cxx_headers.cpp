// The public headers from C++: every one included by a C++ program, which then calls into
// the shared library as a C++ application would (the extern "C" guards must hold for the
// link, and nothing in the headers may be C-only). No cmocka: the exit status says it.
// Built with -Wshadow: a struct and a function of one name (rill_client_query and
// rill_schema_field were both) hide each other in C++, which then needed `struct` before
// the type and failed to include the headers at all under -Wshadow -Werror.
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
	// The types by their plain names, as C++ writes them.
	rill_client_query_options query_options{};
	query_options.timeout_ms = 1;
	const char json[] = "{\"type\":\"T\",\"version\":1,\"fields\":"
			    "[{\"name\":\"amount\",\"type\":\"i64\"}]}";
	rill_schema *schema = nullptr;
	rill_schema_error schema_err;
	if (rill_schema_parse(&schema, json, sizeof(json) - 1, &schema_err) != 0) {
		std::fprintf(stderr, "rill_schema_parse: %s\n", schema_err.message);
		return 1;
	}
	const rill_schema_field_info *field = rill_schema_field(schema, 0);
	bool field_ok = field != nullptr && std::strcmp(field->name, "amount") == 0 &&
			field->type == RILL_FIELD_I64;
	rill_schema_free(schema);
	if (!field_ok || query_options.timeout_ms != 1) {
		std::fprintf(stderr, "rill_schema_field: not the field \"amount\" of type i64\n");
		return 1;
	}
	std::printf("C++: the public headers compile and link\n");
	return 0;
}
