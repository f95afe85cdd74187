/*
 * Event schemas: what the fields of an event type are, how its payload is laid out, and how
 * a type evolves. docs/SCHEMAS.md is the user's guide; docs/FORMAT.md gives the payload
 * layout byte by byte.
 *
 * A schema is one version of one event type, defined in JSON:
 *
 *   {"type": "OrderPlaced", "version": 2, "doc": "...", "fields": [
 *     {"name": "amount", "type": "i64"},
 *     {"name": "fee", "type": "i64", "default": 5},
 *     {"name": "sku", "type": "string", "max_length": 16},
 *     {"name": "side", "type": "enum", "symbols": ["BUY", "SELL"], "default": "BUY"}]}
 *
 * Field types: i64, u64, f64 (finite), bool, timestamp (i64 ns since the Unix epoch),
 * string (UTF-8) and bytes (both with a max_length), enum (with its symbols).
 *
 * The flat payload layout of a version (little-endian):
 *
 *   0       4  block_bytes   size of the fixed block, this header included; multiple of 8
 *   4       4  reserved      0
 *   8       .  fixed fields, in declared order, each at its natural alignment:
 *                i64 u64 f64 timestamp  8 bytes
 *                bool                   1 byte, 0 or 1
 *                enum                   2 bytes, index into the symbols
 *                string bytes           8 bytes: u32 offset from the payload start, u32 length
 *   block_bytes .  tail area: the string and bytes values, in field order, back to back,
 *                  ending at the payload's end
 *
 * Padding is zero. A field's place is fixed by its schema version, so a field is resolved
 * once by name to a struct rill_field_ref (offset and type) and read afterwards with one
 * load (rill_field_i64 and friends). A version that only appends fields keeps every older
 * field where it was, and the block length lets a reader of the older version find the
 * tail: such payloads are read in place even by older readers.
 *
 * The registry holds every version of every type, each type with its compatibility mode
 * (Confluent's: BACKWARD, FORWARD, FULL, their _TRANSITIVE forms, NONE), and refuses a new
 * version that breaks it, naming the field and the rule. It is stored in its own small log
 * under the data directory and reloaded on open. Readers ask for one version of a type and
 * get every stored event as that version (rill_schema_reader_read): fields by name, defaults
 * for fields the event lacks, upcaster functions for what names cannot express.
 *
 * Threading: a registry may be read (get, lookups, readers, validation) from any number of
 * threads while one thread at a time registers; registering locks, reading never does and
 * never blocks. Schemas live as long as their registry. A reader and a builder belong to
 * one thread.
 */
#ifndef RILL_SCHEMA_H
#define RILL_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "rill/error.h"
#include "rill/limits.h"

#ifdef __cplusplus
extern "C" {
#endif

struct rill_io;
struct rill_schema;
struct rill_schema_registry;
struct rill_schema_reader;

enum rill_field_type {
	RILL_FIELD_I64 = 1,
	RILL_FIELD_U64 = 2,
	RILL_FIELD_F64 = 3,
	RILL_FIELD_BOOL = 4,
	RILL_FIELD_TIMESTAMP = 5,
	RILL_FIELD_STRING = 6,
	RILL_FIELD_BYTES = 7,
	RILL_FIELD_ENUM = 8,
};

/* A field's default value, when it has one. */
union rill_field_value {
	int64_t i64; /* i64 and timestamp */
	uint64_t u64;
	double f64;
	bool boolean;
	uint16_t symbol; /* enum: index into symbols */
	struct {
		const void *data; /* string (not NUL-terminated) or bytes */
		uint32_t bytes;
	} var;
};

/* One field of a schema, as parsed and laid out. Read-only; lives as long as the schema.
 * Not named after rill_schema_field: in C++ a struct and a function of one name hide each
 * other. */
struct rill_schema_field_info {
	const char *name;
	const char *doc; /* NULL when none */
	enum rill_field_type type;
	uint32_t offset;       /* in the payload: the value, or the (offset, length) pair */
	uint32_t max_length;   /* string and bytes: bytes; 0 for the others */
	uint32_t symbol_count; /* enum */
	const char **symbols;  /* enum: symbol_count names */
	bool has_default;
	union rill_field_value default_value;
};

/* A field resolved once by name: reading it is then one load. */
struct rill_field_ref {
	uint32_t offset;
	enum rill_field_type type;
};

/*
 * Error details: a message naming what was wrong and where (the field, the rule, the file
 * position). Every function that takes one fills it on failure and leaves it untouched on
 * success; NULL is allowed everywhere.
 */
#define RILL_SCHEMA_MESSAGE_BYTES 512u
struct rill_schema_error {
	char message[RILL_SCHEMA_MESSAGE_BYTES];
};

/* ---- Schemas -------------------------------------------------------------------------- */

/*
 * rill_schema_parse - parse and lay out one schema definition (the JSON above), outside any
 * registry: for tools and tests. Free with rill_schema_free.
 * Returns 0, RILL_E_SCHEMA_INVALID (@err names the key or field and what is wrong) or
 * -ENOMEM.
 */
int rill_schema_parse(struct rill_schema **out, const char *json, size_t json_bytes,
		      struct rill_schema_error *err);

/* rill_schema_free - free a schema from rill_schema_parse; never one from a registry. */
void rill_schema_free(struct rill_schema *schema);

const char *rill_schema_type_name(const struct rill_schema *schema);
uint16_t rill_schema_version(const struct rill_schema *schema);
/* rill_schema_definition - the definition as canonical JSON text (NUL-terminated), valid
 * as long as the schema is. */
const char *rill_schema_definition(const struct rill_schema *schema);
/* The type's registry id (the record's type_id); 0 for a schema outside a registry. */
uint32_t rill_schema_type_id(const struct rill_schema *schema);
uint32_t rill_schema_field_count(const struct rill_schema *schema);
/* rill_schema_field - field @index (0-based, declared order), or NULL past the last. */
const struct rill_schema_field_info *rill_schema_field(const struct rill_schema *schema,
						       uint32_t index);
/* rill_schema_field_index - the index of the field named @name, or -ENOENT. */
int rill_schema_field_index(const struct rill_schema *schema, const char *name);
/* Size of the fixed block, and the largest payload the version allows. */
uint32_t rill_schema_block_bytes(const struct rill_schema *schema);
uint32_t rill_schema_payload_bytes_max(const struct rill_schema *schema);

/*
 * rill_schema_to_json - the canonical JSON definition of @schema (compact, keys in a fixed
 * order), as a NUL-terminated string to free with free(). NULL on -ENOMEM.
 */
char *rill_schema_to_json(const struct rill_schema *schema);

/*
 * rill_schema_field_ref - resolve the field named @name of @schema, once.
 * Returns 0 or -ENOENT.
 */
int rill_schema_field_ref(const struct rill_schema *schema, const char *name,
			  struct rill_field_ref *ref);

/*
 * Field reads: one load from a payload that follows @ref's schema version and has been
 * validated (rill_schema_validate) or produced by a builder or a reader. The type must
 * match the ref's; nothing is checked here, this is the per-event path.
 */
static inline int64_t rill_field_i64(const void *payload, struct rill_field_ref ref)
{
	int64_t v;
	memcpy(&v, (const uint8_t *)payload + ref.offset, sizeof(v));
	return v;
}

static inline uint64_t rill_field_u64(const void *payload, struct rill_field_ref ref)
{
	uint64_t v;
	memcpy(&v, (const uint8_t *)payload + ref.offset, sizeof(v));
	return v;
}

static inline double rill_field_f64(const void *payload, struct rill_field_ref ref)
{
	double v;
	memcpy(&v, (const uint8_t *)payload + ref.offset, sizeof(v));
	return v;
}

static inline bool rill_field_bool(const void *payload, struct rill_field_ref ref)
{
	return ((const uint8_t *)payload)[ref.offset] != 0;
}

/* The symbol's index into the field's symbols. */
static inline uint16_t rill_field_enum(const void *payload, struct rill_field_ref ref)
{
	uint16_t v;
	memcpy(&v, (const uint8_t *)payload + ref.offset, sizeof(v));
	return v;
}

/* A string or bytes value: returns its start and sets @bytes; a string is not NUL-ended. */
static inline const void *rill_field_var(const void *payload, struct rill_field_ref ref,
					 uint32_t *bytes)
{
	uint32_t pair[2];
	memcpy(pair, (const uint8_t *)payload + ref.offset, sizeof(pair));
	*bytes = pair[1];
	return (const uint8_t *)payload + pair[0];
}

/*
 * rill_schema_validate - check that @payload is a well-formed payload of @schema: block
 * length, zero padding, bool 0 or 1, enum index in range, finite f64, string and bytes
 * within their max_length, back to back in the tail, strings valid UTF-8, nothing after.
 * Returns 0 or RILL_E_PAYLOAD_INVALID (@err names the field and the fault). Any thread.
 */
int rill_schema_validate(const struct rill_schema *schema, const void *payload,
			 uint32_t payload_bytes, struct rill_schema_error *err);

/* ---- Building payloads ---------------------------------------------------------------- */

/*
 * A payload under construction, for one schema version, in a caller's buffer of at least
 * rill_schema_payload_bytes_max(schema) bytes. Init fills every field that has a default
 * with it; setters may come in any order and may overwrite; finish checks that every field
 * without a default was set and lays the tail out. On the caller's stack; one thread.
 */
struct rill_payload_builder {
	const struct rill_schema *schema;
	uint8_t *buf;
	uint64_t set[(RILL_SCHEMA_FIELDS_MAX + 63) / 64]; /* bit per field: has a value */
};

/* rill_payload_builder_init - start a payload of @schema in @buf. 0 or -ENOSPC. */
int rill_payload_builder_init(struct rill_payload_builder *b, const struct rill_schema *schema,
			      void *buf, uint32_t buf_bytes);

/*
 * Setters, by field index. Each returns 0, -EINVAL when the field does not exist or has
 * another type (timestamp fields take set_i64), -EMSGSIZE for a string or bytes value
 * longer than max_length, or -EDOM for a non-finite f64, an enum index out of range or
 * a string that is not valid UTF-8.
 */
int rill_payload_set_i64(struct rill_payload_builder *b, uint32_t field, int64_t value);
int rill_payload_set_u64(struct rill_payload_builder *b, uint32_t field, uint64_t value);
int rill_payload_set_f64(struct rill_payload_builder *b, uint32_t field, double value);
int rill_payload_set_bool(struct rill_payload_builder *b, uint32_t field, bool value);
int rill_payload_set_enum(struct rill_payload_builder *b, uint32_t field, uint16_t symbol);
int rill_payload_set_var(struct rill_payload_builder *b, uint32_t field, const void *data,
			 uint32_t bytes);

/*
 * rill_payload_builder_finish - complete the payload; @payload_bytes gets its size. Call
 * it once; the builder is spent afterwards.
 * Returns 0 or RILL_E_PAYLOAD_INVALID when a field without a default was never set
 * (@err names it).
 */
int rill_payload_builder_finish(struct rill_payload_builder *b, uint32_t *payload_bytes,
				struct rill_schema_error *err);

/* ---- JSON ----------------------------------------------------------------------------- */

/*
 * rill_schema_json_encode - encode the JSON object @json (its keys: field names) as a
 * payload of @schema into @buf (at least rill_schema_payload_bytes_max bytes). Fields left
 * out take their defaults. Numbers: i64 and timestamp take JSON integers; u64 takes an
 * integer or, above 2^63 - 1, a string of decimal digits; f64 takes any number. bytes take
 * a string of hex digits, enums a symbol's name.
 * Returns 0, or RILL_E_JSON_INVALID for text that is not a JSON object, a missing required
 * field, an unknown field, a wrong type, a number out of range or an over-long value (@err
 * names the field), or -ENOSPC when @buf is too small.
 */
int rill_schema_json_encode(const struct rill_schema *schema, const char *json, size_t json_bytes,
			    void *buf, uint32_t buf_bytes, uint32_t *payload_bytes,
			    struct rill_schema_error *err);

/*
 * rill_schema_json_decode - the payload as a compact JSON object, fields in declared order,
 * in the encodings above. The payload is validated first. Writes at most @text_bytes bytes
 * with a final NUL; @json_bytes gets the length without it.
 * Returns 0, RILL_E_PAYLOAD_INVALID, -ENOSPC when @text is too small (@json_bytes then
 * gets the length needed, without the NUL), or -ENOMEM.
 */
int rill_schema_json_decode(const struct rill_schema *schema, const void *payload,
			    uint32_t payload_bytes, char *text, size_t text_bytes,
			    size_t *json_bytes, struct rill_schema_error *err);

/* ---- The registry --------------------------------------------------------------------- */

enum rill_schema_compat {
	RILL_COMPAT_NONE = 0,
	RILL_COMPAT_BACKWARD = 1,            /* the new version reads data of the latest */
	RILL_COMPAT_BACKWARD_TRANSITIVE = 2, /* ... of every earlier version */
	RILL_COMPAT_FORWARD = 3,             /* the latest version reads data of the new one */
	RILL_COMPAT_FORWARD_TRANSITIVE = 4,  /* every earlier version reads the new one's */
	RILL_COMPAT_FULL = 5,                /* both BACKWARD and FORWARD */
	RILL_COMPAT_FULL_TRANSITIVE = 6,
};
#define RILL_COMPAT_DEFAULT RILL_COMPAT_BACKWARD /* as Confluent's registry */

/* "NONE", "BACKWARD", ... */
const char *rill_schema_compat_name(enum rill_schema_compat compat);
/* rill_schema_compat_parse - the mode named @name (upper or lower case). 0 or -EINVAL. */
int rill_schema_compat_parse(const char *name, enum rill_schema_compat *compat);

/*
 * rill_schema_compatible - whether a reader of schema @reader can read payloads written
 * with @writer (two versions of one type), under the rules of docs/SCHEMAS.md: a field the
 * reader has and the writer lacks needs a default in the reader; a field in both keeps its
 * type or is promoted (i64 or u64 to f64, i64 to and from timestamp, string to bytes), never
 * shrinks its max_length, and an enum reader knows every writer symbol or has a default.
 * Returns true or false; when false and @err is not NULL, it names the field and the rule.
 */
bool rill_schema_compatible(const struct rill_schema *reader, const struct rill_schema *writer,
			    struct rill_schema_error *err);

/*
 * rill_schema_registry_open - the registry stored in directory @dir through @io (created if
 * missing), reloaded from its log; or, with @io and @dir both NULL, a registry in memory
 * only. @io is the caller's and must outlive the registry. The I/O layer is internal
 * (engine/io.h): an application gets a stored registry from its engine
 * (rill_engine_schemas, DATA/schemas) and opens standalone ones in memory only.
 * Returns 0, -EINVAL, -ENOMEM, RILL_E_SCHEMA_INVALID when the stored registry holds an
 * entry that does not load (@err says which), a log error (RILL_E_LOG_*) or -errno.
 * Blocks (reads the log).
 */
int rill_schema_registry_open(struct rill_schema_registry **out, struct rill_io *io,
			      const char *dir, struct rill_schema_error *err);

/* rill_schema_registry_close - close and free; every schema of it dies. 0 or -errno. */
int rill_schema_registry_close(struct rill_schema_registry *reg);

/*
 * rill_schema_register - add the version defined by @json. Its version must be the type's
 * latest + 1 (1 for a new type, which gets the next type id); registering the very same
 * definition again returns the existing schema. @compat is the mode to check under, stored
 * as the type's mode once the version is in; -1 keeps the type's mode (RILL_COMPAT_DEFAULT
 * for a new type). A refused version changes nothing, mode included. Durable before it
 * returns. Returns 0 with @out (may be NULL) set, RILL_E_SCHEMA_INVALID,
 * RILL_E_SCHEMA_INCOMPATIBLE, RILL_E_SCHEMA_CONFLICT (this version exists with another
 * definition, or the version is not latest + 1), -EINVAL for an unknown @compat, -ENOSPC
 * past the registry's limits (RILL_SCHEMA_TYPES_MAX, RILL_SCHEMA_VERSIONS_MAX, and
 * RILL_SCHEMA_REGISTRY_BYTES_MAX over all it ever stored: every definition and every
 * change of a mode, each at least a 512-byte sector; the same definition again with the
 * type's own mode stores nothing and is always taken), or a storage error, after which
 * the registry refuses every change and whether this one was stored is unknown until the
 * next open (like any write whose sync failed). Blocks; serialised.
 */
int rill_schema_register(struct rill_schema_registry *reg, const char *json, size_t json_bytes,
			 int compat, const struct rill_schema **out, struct rill_schema_error *err);

/*
 * rill_schema_check - what rill_schema_register would say about @json under the type's
 * mode (or @compat unless it is -1), without registering. 0 or the same errors.
 */
int rill_schema_check(struct rill_schema_registry *reg, const char *json, size_t json_bytes,
		      int compat, struct rill_schema_error *err);

/*
 * rill_schema_set_compat - set the compatibility mode of the type named @type (which must
 * exist). Durable before it returns; the mode the type has already stores nothing. 0,
 * -ENOENT, -EINVAL for an unknown @compat, -ENOSPC when the change would take the registry
 * past RILL_SCHEMA_REGISTRY_BYTES_MAX (each change is a record of its log, a sector at
 * least), or a storage error. Blocks.
 */
int rill_schema_set_compat(struct rill_schema_registry *reg, const char *type,
			   enum rill_schema_compat compat);

/* rill_schema_get - version @version of @type (0: the latest), or NULL. Never blocks. */
const struct rill_schema *rill_schema_get(struct rill_schema_registry *reg, const char *type,
					  uint16_t version);

/* rill_schema_get_id - the same by type id: two array loads, for the per-event path. */
const struct rill_schema *rill_schema_get_id(struct rill_schema_registry *reg, uint32_t type_id,
					     uint16_t version);

/* One registered type, as listed. */
struct rill_schema_type_info {
	const char *name;
	uint32_t type_id;
	uint16_t latest_version;
	enum rill_schema_compat compat;
};

typedef int rill_schema_list_fn(void *arg, const struct rill_schema_type_info *info);

/*
 * rill_schema_list - call @fn for every type in id order; a non-zero return stops the walk
 * and is returned. Returns 0 otherwise.
 */
int rill_schema_list(struct rill_schema_registry *reg, rill_schema_list_fn *fn, void *arg);

/* ---- Upcasting ------------------------------------------------------------------------ */

/*
 * An upcaster turns a payload of version V of a type into version V + 1 where names and
 * defaults cannot: renames, splits, type changes. When it runs, @to already holds what the
 * default mapping gives (every field the two versions share by name and type copied, the
 * others at their defaults); it sets what it must through the builder setters, reading
 * @payload (a valid payload of @from) with the rill_field_* loads. Returns 0 or a negative
 * code, which fails the read.
 */
typedef int rill_schema_upcast_fn(void *arg, const struct rill_schema *from, const void *payload,
				  uint32_t payload_bytes, struct rill_payload_builder *to);

/*
 * rill_schema_upcaster_add - run @fn for every payload of @type going from version
 * @from_version to @from_version + 1 (which need not exist yet). Upcasters are code, kept
 * in memory: add them after every open, before the readers that need them read (for an
 * engine's registry: from rill_engine_config.on_schemas, since the engine's open rebuilds
 * projections). One per step. Returns 0, -EEXIST for a step that has one, -ENOENT for an
 * unknown type, -EINVAL.
 */
int rill_schema_upcaster_add(struct rill_schema_registry *reg, const char *type,
			     uint16_t from_version, rill_schema_upcast_fn *fn, void *arg);

/*
 * rill_schema_reader_create - a reader of the type named @type as version @version.
 * Returns 0, -ENOENT (no such type or version) or -ENOMEM. Control path: allocates.
 */
int rill_schema_reader_create(struct rill_schema_reader **out, struct rill_schema_registry *reg,
			      const char *type, uint16_t version);

/* The schema the reader reads as. */
const struct rill_schema *rill_schema_reader_schema(const struct rill_schema_reader *r);

/*
 * rill_schema_reader_read - @payload (an event of the reader's type written as version
 * @from_version) as the reader's version.
 * @out: when every field of the reader's version sits at the same place with the same
 * meaning in @from_version (the same version, or one that only appended fields), @payload
 * itself: read it with the reader's field refs, but it stays a payload of @from_version
 * (validate or decode it as such). Otherwise a new payload of the reader's version in the
 * reader's buffer, valid until the next call.
 * Older events go up one version at a time through the upcasters registered for the steps,
 * with direct maps between steps that have none; newer events are read by name (fields the
 * reader lacks are skipped, fields the event lacks take their defaults).
 * The payload is validated against @from_version first unless @trusted (bytes the caller
 * has validated already, such as the log's).
 * Returns 0, -ENOENT for an unknown version, RILL_E_PAYLOAD_INVALID, RILL_E_SCHEMA_UPCAST
 * when the versions cannot be mapped (a field without a default and no upcaster; @err
 * names it), or an upcaster's error. Never blocks; allocates only the first time it meets
 * a version, and again after an upcaster is added.
 */
int rill_schema_reader_read(struct rill_schema_reader *r, uint16_t from_version,
			    const void *payload, uint32_t payload_bytes, bool trusted,
			    const void **out, uint32_t *out_bytes, struct rill_schema_error *err);

void rill_schema_reader_destroy(struct rill_schema_reader *r);

#ifdef __cplusplus
}
#endif
#endif /* RILL_SCHEMA_H */
