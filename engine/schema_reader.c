/*
 * Readers: every stored event of a type, whatever version it was written in, as the one
 * version the reader asks for (upcasting at read time). On the per-event path of
 * projections and replays: a read is a validation plus, unless the versions lay the
 * reader's fields out alike, one conversion per step. A reader belongs to one thread.
 *
 * A route from version F to the reader's version V is a list of steps, each a map plan
 * from one version to another plus, for a step k -> k + 1 that has one, the user's
 * upcaster:
 *
 *   F < V:  F --map--> k --map+upcaster--> k+1 --map--> ... --> V
 *           (straight maps between the steps that have upcasters, unless a straight map
 *           could fail where single steps might not: then single steps)
 *   F > V:  F --map--> V            (by name; upcasters only go up)
 *
 * A map plan copies every field of the target that the source has by name with a type it
 * can be promoted from (rule C2 of schema_compat.c); the target's other fields keep their
 * defaults (or stay unset, which fails the step unless an upcaster sets them). A value
 * the target cannot hold (an enum symbol it lacks, with no default; a string past its
 * max_length) fails a step without an upcaster; with one, the field is left for the
 * upcaster, and fails the step only if the upcaster leaves it unset.
 *
 * A straight map skips the versions between: under the non-transitive modes each version
 * was checked only against the one before, so v1 -> v3 may lack what v2 gave (v2 added a
 * field with a default, v3 kept it without one). Such a map is "partial" (plan_partial),
 * and the route crosses those versions one step at a time, each step's defaults filling in,
 * when no single step is partial itself (else the straight map stays: under FORWARD or
 * NONE the steps can fail events the straight map reads).
 *
 * Invariants:
 *   U1. A route is built at most once per upcaster generation; routes[i] is for version
 *       i + 1 and is valid while built is set.
 *   U2. Both conversion buffers hold the largest payload of every step's target version.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/assert.h"
#include "base/compiler.h"
#include "engine/schema_int.h"

enum map_kind {
	MAP_COPY8, /* the 8-byte numbers, same type or i64 <-> timestamp */
	MAP_COPY1, /* bool */
	MAP_ENUM,  /* through a symbol table */
	MAP_I2F,   /* i64 -> f64 */
	MAP_U2F,   /* u64 -> f64 */
	MAP_VAR,   /* string or bytes, with the target's max_length */
};

#define ENUM_NONE 0xffffu /* a source symbol the target lacks */

struct map_op {
	enum map_kind kind;
	uint32_t field;    /* target field index */
	uint32_t src;      /* source offset */
	uint32_t dst;      /* target offset */
	uint16_t *symbols; /* MAP_ENUM: target index by source index */
	uint32_t symbol_count;
};

struct map_plan {
	const struct rill_schema *from;
	const struct rill_schema *to;
	const struct schema_upcaster *upcaster; /* step k -> k + 1 only */
	struct map_op *ops;
	uint32_t op_count;
	/*
	 * Without an upcaster the plan writes the target directly, no builder: var_src has,
	 * per string/bytes field of the target (in order), the offset of the source's pair,
	 * or VAR_DEFAULT; unset is the first field nothing sets (no default, no source), or
	 * UINT32_MAX.
	 */
	uint32_t *var_src;
	uint32_t unset;
};

#define VAR_DEFAULT UINT32_MAX

struct route {
	bool built;
	bool in_place; /* the source lays every reader field out alike: no conversion */
	uint32_t step_count;
	struct map_plan *steps;
};

struct rill_schema_reader {
	struct rill_schema_registry *reg;
	const struct rill_schema *schema;
	uint32_t type_id;
	uint64_t generation;  /* of the registry's upcasters, when the routes were built */
	struct route *routes; /* by source version - 1 */
	uint32_t route_count;
	uint8_t *buf[2];
	uint32_t buf_bytes;
};

static void plan_free(struct map_plan *p)
{
	for (uint32_t i = 0; i < p->op_count; i++)
		free(p->ops[i].symbols);
	free(p->ops);
	free(p->var_src);
}

static void route_clear(struct route *r)
{
	for (uint32_t i = 0; i < r->step_count; i++)
		plan_free(&r->steps[i]);
	free(r->steps);
	memset(r, 0, sizeof(*r));
}

static int enum_table(struct map_op *op, const struct rill_schema_field_info *from,
		      const struct rill_schema_field_info *to)
{
	op->symbols = malloc(from->symbol_count * sizeof(*op->symbols));
	if (op->symbols == NULL)
		return -ENOMEM;
	op->symbol_count = from->symbol_count;
	for (uint32_t i = 0; i < from->symbol_count; i++) {
		op->symbols[i] = ENUM_NONE;
		for (uint32_t k = 0; k < to->symbol_count; k++)
			if (strcmp(from->symbols[i], to->symbols[k]) == 0)
				op->symbols[i] = (uint16_t)k;
	}
	return 0;
}

static int plan_op(struct map_op *op, const struct rill_schema_field_info *f,
		   const struct rill_schema_field_info *t)
{
	op->src = f->offset;
	op->dst = t->offset;
	switch (t->type) {
	case RILL_FIELD_BOOL:
		op->kind = MAP_COPY1;
		return 0;
	case RILL_FIELD_ENUM:
		op->kind = MAP_ENUM;
		return enum_table(op, f, t);
	case RILL_FIELD_STRING:
	case RILL_FIELD_BYTES:
		op->kind = MAP_VAR;
		return 0;
	case RILL_FIELD_F64:
		op->kind = f->type == RILL_FIELD_I64   ? MAP_I2F
			   : f->type == RILL_FIELD_U64 ? MAP_U2F
						       : MAP_COPY8;
		return 0;
	default:
		op->kind = MAP_COPY8;
		return 0;
	}
}

/* The direct path's tables (struct map_plan). */
static int plan_direct(struct map_plan *p)
{
	const struct rill_schema *to = p->to;
	p->var_src = calloc(to->var_count + 1, sizeof(*p->var_src));
	if (p->var_src == NULL)
		return -ENOMEM;
	uint64_t set[RILL_ARRAY_COUNT(to->default_set)];
	memcpy(set, to->default_set, sizeof(set));
	for (uint32_t i = 0; i < p->op_count; i++)
		set[p->ops[i].field / 64] |= 1ull << (p->ops[i].field % 64);
	p->unset = UINT32_MAX;
	for (uint32_t i = to->field_count; i-- > 0;)
		if (!(set[i / 64] & (1ull << (i % 64))))
			p->unset = i;
	for (uint32_t k = 0; k < to->var_count; k++) {
		p->var_src[k] = VAR_DEFAULT;
		for (uint32_t i = 0; i < p->op_count; i++)
			if (p->ops[i].field == to->var_fields[k])
				p->var_src[k] = p->ops[i].src;
	}
	return 0;
}

static int plan_build(struct map_plan *p, const struct rill_schema *from,
		      const struct rill_schema *to, const struct schema_upcaster *upcaster)
{
	memset(p, 0, sizeof(*p));
	p->from = from;
	p->to = to;
	p->upcaster = upcaster;
	p->ops = calloc(to->field_count + 1, sizeof(*p->ops));
	if (p->ops == NULL)
		return -ENOMEM;
	for (uint32_t i = 0; i < to->field_count; i++) {
		const struct rill_schema_field_info *t = &to->fields[i];
		int k = rill_schema_field_index(from, t->name);
		if (k < 0 || !schema_promotable(from->fields[k].type, t->type))
			continue; /* default, or the upcaster's to set */
		struct map_op *op = &p->ops[p->op_count++];
		op->field = i;
		int rc = plan_op(op, &from->fields[k], t);
		if (rc != 0)
			return rc;
	}
	return plan_direct(p);
}

/* Whether @to's every field sits in @from at the same place, with the same meaning. */
static bool lays_out_alike(const struct rill_schema *from, const struct rill_schema *to)
{
	for (uint32_t i = 0; i < to->field_count; i++) {
		const struct rill_schema_field_info *t = &to->fields[i];
		int k = rill_schema_field_index(from, t->name);
		if (k < 0)
			return false;
		const struct rill_schema_field_info *f = &from->fields[k];
		if (f->offset != t->offset || f->type != t->type)
			return false;
		if (schema_type_is_var(t->type) && t->max_length < f->max_length)
			return false;
		if (t->type == RILL_FIELD_ENUM) {
			if (f->symbol_count > t->symbol_count)
				return false;
			for (uint32_t s = 0; s < f->symbol_count; s++)
				if (strcmp(f->symbols[s], t->symbols[s]) != 0)
					return false;
		}
	}
	return true;
}

/*
 * Whether plan @p may leave its target without a value for some payload: a field nothing
 * sets, an enum symbol with no match and no default, a string or bytes value that may be
 * longer than the target's max_length.
 */
static bool plan_partial(const struct map_plan *p)
{
	if (p->unset != UINT32_MAX)
		return true;
	for (uint32_t i = 0; i < p->op_count; i++) {
		const struct map_op *op = &p->ops[i];
		const struct rill_schema_field_info *t = &p->to->fields[op->field];
		if (op->kind == MAP_ENUM && !t->has_default) {
			for (uint32_t k = 0; k < op->symbol_count; k++)
				if (op->symbols[k] == ENUM_NONE)
					return true;
		}
		if (op->kind == MAP_VAR) {
			int f = rill_schema_field_index(p->from, t->name);
			RILL_ASSERT(f >= 0);
			if (p->from->fields[f].max_length > t->max_length)
				return true;
		}
	}
	return false;
}

static int route_add(struct route *r, struct rill_schema_reader *rd, uint16_t from_v, uint16_t to_v,
		     const struct schema_upcaster *u)
{
	const struct rill_schema *from = rill_schema_get_id(rd->reg, rd->type_id, from_v);
	const struct rill_schema *to = rill_schema_get_id(rd->reg, rd->type_id, to_v);
	if (from == NULL || to == NULL)
		return -ENOENT; /* a step to a version not registered yet */
	if (to->payload_bytes_max > rd->buf_bytes) {
		for (int i = 0; i < 2; i++) {
			uint8_t *b = realloc(rd->buf[i], to->payload_bytes_max);
			if (b == NULL)
				return -ENOMEM;
			rd->buf[i] = b;
		}
		rd->buf_bytes = to->payload_bytes_max;
	}
	struct map_plan *steps = realloc(r->steps, (r->step_count + 1) * sizeof(*steps));
	if (steps == NULL)
		return -ENOMEM;
	r->steps = steps;
	int rc = plan_build(&r->steps[r->step_count], from, to, u);
	r->step_count++; /* counted even on failure, so that route_clear frees it */
	return rc;
}

/* Maps with no upcaster from @from_v up to @to_v: one straight map, or single steps when
 * it is partial, there are versions between, and no single step is partial (then they
 * read every event; partial steps could fail more events than the straight map). */
static int route_add_maps(struct route *r, struct rill_schema_reader *rd, uint16_t from_v,
			  uint16_t to_v)
{
	int rc = route_add(r, rd, from_v, to_v, NULL);
	if (rc != 0 || to_v - from_v < 2 || !plan_partial(&r->steps[r->step_count - 1]))
		return rc;
	uint32_t straight = r->step_count - 1;
	bool total = true;
	for (uint16_t k = from_v; k < to_v && rc == 0 && total; k++) {
		rc = route_add(r, rd, k, (uint16_t)(k + 1), NULL);
		total = rc == 0 && !plan_partial(&r->steps[r->step_count - 1]);
	}
	if (rc != 0)
		return rc;
	/* Keep one: the single steps, all total, or else the straight map. */
	uint32_t drop_from = total ? straight : straight + 1,
		 drop_to = total ? straight + 1 : r->step_count;
	for (uint32_t i = drop_from; i < drop_to; i++)
		plan_free(&r->steps[i]);
	memmove(&r->steps[drop_from], &r->steps[drop_to],
		(r->step_count - drop_to) * sizeof(r->steps[0]));
	r->step_count -= drop_to - drop_from;
	return 0;
}

static int route_build(struct rill_schema_reader *rd, struct route *r, uint16_t from)
{
	uint16_t target = rd->schema->version;
	const struct rill_schema *src = rill_schema_get_id(rd->reg, rd->type_id, from);
	bool upcasters = false;
	for (uint16_t k = from; k < target && !upcasters; k++)
		upcasters = schema_registry_upcaster(rd->reg, rd->type_id, k) != NULL;
	if (!upcasters && lays_out_alike(src, rd->schema)) {
		r->in_place = true;
		r->built = true;
		return 0;
	}
	int rc = 0;
	uint16_t cur = from;
	for (uint16_t k = from; k < target && rc == 0; k++) {
		const struct schema_upcaster *u = schema_registry_upcaster(rd->reg, rd->type_id, k);
		if (u == NULL)
			continue;
		if (cur != k)
			rc = route_add_maps(r, rd, cur, k);
		if (rc == 0)
			rc = route_add(r, rd, k, (uint16_t)(k + 1), u);
		cur = (uint16_t)(k + 1);
	}
	if (rc == 0 && cur != target)
		rc = route_add_maps(r, rd, cur, target);
	if (rc != 0) {
		route_clear(r);
		return rc;
	}
	r->built = true;
	return 0;
}

int rill_schema_reader_create(struct rill_schema_reader **out, struct rill_schema_registry *reg,
			      const char *type, uint16_t version)
{
	uint32_t type_id = schema_registry_type_id(reg, type);
	const struct rill_schema *s = rill_schema_get_id(reg, type_id, version);
	if (s == NULL || version == 0)
		return -ENOENT;
	struct rill_schema_reader *r = calloc(1, sizeof(*r));
	if (r == NULL)
		return -ENOMEM;
	r->reg = reg;
	r->schema = s;
	r->type_id = type_id;
	r->generation = schema_registry_generation(reg);
	*out = r;
	return 0;
}

const struct rill_schema *rill_schema_reader_schema(const struct rill_schema_reader *r)
{
	return r->schema;
}

void rill_schema_reader_destroy(struct rill_schema_reader *r)
{
	if (r == NULL)
		return;
	for (uint32_t i = 0; i < r->route_count; i++)
		route_clear(&r->routes[i]);
	free(r->routes);
	free(r->buf[0]);
	free(r->buf[1]);
	free(r);
}

/* The route for @from, built on first use (U1). */
static int route_get(struct rill_schema_reader *r, uint16_t from, struct route **out)
{
	uint64_t gen = schema_registry_generation(r->reg);
	if (rill_unlikely(gen != r->generation)) {
		for (uint32_t i = 0; i < r->route_count; i++)
			route_clear(&r->routes[i]);
		r->generation = gen;
	}
	if (rill_unlikely(from > r->route_count)) {
		if (rill_schema_get_id(r->reg, r->type_id, from) == NULL)
			return -ENOENT;
		struct route *routes = realloc(r->routes, from * sizeof(*routes));
		if (routes == NULL)
			return -ENOMEM;
		memset(routes + r->route_count, 0, (from - r->route_count) * sizeof(*routes));
		r->routes = routes;
		r->route_count = from;
	}
	struct route *route = &r->routes[from - 1];
	if (rill_unlikely(!route->built)) {
		int rc = route_build(r, route, from);
		if (rc != 0)
			return rc;
	}
	*out = route;
	return 0;
}

static int apply_op(const struct map_op *op, struct rill_payload_builder *b, const uint8_t *src,
		    uint32_t src_bytes, struct rill_schema_error *err)
{
	const struct rill_schema_field_info *t = &b->schema->fields[op->field];
	uint8_t *dst = b->buf + op->dst;
	switch (op->kind) {
	case MAP_COPY8:
		memcpy(dst, src + op->src, 8);
		break;
	case MAP_COPY1:
		*dst = src[op->src] != 0;
		break;
	case MAP_I2F:
	case MAP_U2F: {
		uint64_t bits;
		memcpy(&bits, src + op->src, 8);
		double d = op->kind == MAP_I2F ? (double)(int64_t)bits : (double)bits;
		memcpy(dst, &d, 8);
		break;
	}
	case MAP_ENUM: {
		uint16_t sym;
		memcpy(&sym, src + op->src, 2);
		uint16_t to = sym < op->symbol_count ? op->symbols[sym] : ENUM_NONE;
		if (to == ENUM_NONE) {
			if (t->has_default)
				return 0; /* stays at its default, already set */
			return schema_fail(err, RILL_E_SCHEMA_UPCAST,
					   "field '%s': symbol %u has no match in v%u, which has "
					   "no default",
					   t->name, sym, b->schema->version);
		}
		memcpy(dst, &to, 2);
		break;
	}
	case MAP_VAR: {
		uint32_t pair[2];
		memcpy(pair, src + op->src, sizeof(pair));
		if (pair[0] > src_bytes || pair[1] > src_bytes - pair[0])
			return schema_fail(err, RILL_E_PAYLOAD_INVALID,
					   "field '%s': value runs past the payload", t->name);
		if (pair[1] > t->max_length)
			return schema_fail(err, RILL_E_SCHEMA_UPCAST,
					   "field '%s': %u bytes, over the max_length %u of v%u",
					   t->name, pair[1], t->max_length, b->schema->version);
		memcpy(schema_builder_slot(b, op->field), src + pair[0], pair[1]);
		schema_builder_var_done(b, op->field, pair[1]);
		return 0;
	}
	}
	schema_builder_mark(b, op->field);
	return 0;
}

/*
 * A plan without an upcaster: the default block, the fixed fields mapped in place, then the
 * string and bytes values written once, straight to their final place.
 */
static int plan_apply_direct(const struct map_plan *p, const uint8_t *src, uint32_t src_bytes,
			     uint8_t *dst, uint32_t *out_bytes, struct rill_schema_error *err)
{
	const struct rill_schema *to = p->to;
	if (rill_unlikely(p->unset != UINT32_MAX))
		return schema_fail(err, RILL_E_SCHEMA_UPCAST,
				   "%s v%u read as v%u: field '%s' has no default and nothing in "
				   "v%u maps to it; give it a default or add an upcaster",
				   to->type_name, p->from->version, to->version,
				   to->fields[p->unset].name, p->from->version);
	memcpy(dst, to->block_template, to->block_bytes);
	struct rill_payload_builder b = {.schema = to, .buf = dst};
	for (uint32_t i = 0; i < p->op_count; i++) {
		if (p->ops[i].kind == MAP_VAR)
			continue;
		int rc = apply_op(&p->ops[i], &b, src, src_bytes, err);
		if (rill_unlikely(rc != 0))
			return rc;
	}
	uint32_t pos = to->block_bytes;
	for (uint32_t k = 0; k < to->var_count; k++) {
		const struct rill_schema_field_info *f = &to->fields[to->var_fields[k]];
		const void *data = f->default_value.var.data;
		uint32_t pair[2] = {pos, f->default_value.var.bytes};
		if (p->var_src[k] != VAR_DEFAULT) {
			uint32_t from[2];
			memcpy(from, src + p->var_src[k], sizeof(from));
			if (rill_unlikely(from[0] > src_bytes || from[1] > src_bytes - from[0]))
				return schema_fail(err, RILL_E_PAYLOAD_INVALID,
						   "field '%s': value runs past the payload",
						   f->name);
			if (rill_unlikely(from[1] > f->max_length))
				return schema_fail(err, RILL_E_SCHEMA_UPCAST,
						   "field '%s': %u bytes, over the max_length %u "
						   "of v%u",
						   f->name, from[1], f->max_length, to->version);
			data = src + from[0];
			pair[1] = from[1];
		}
		memcpy(dst + pos, data, pair[1]);
		memcpy(dst + f->offset, pair, sizeof(pair));
		pos += pair[1];
	}
	*out_bytes = pos;
	return 0;
}

static int plan_apply(const struct map_plan *p, const uint8_t *src, uint32_t src_bytes,
		      uint8_t *dst, uint32_t dst_bytes, uint32_t *out_bytes,
		      struct rill_schema_error *err)
{
	if (rill_unlikely(src_bytes < p->from->block_bytes)) /* even when trusted */
		return schema_fail(err, RILL_E_PAYLOAD_INVALID,
				   "%s v%u: payload of %u bytes is shorter than its block",
				   p->from->type_name, p->from->version, src_bytes);
	if (p->upcaster == NULL)
		return plan_apply_direct(p, src, src_bytes, dst, out_bytes, err);
	struct rill_payload_builder b;
	int rc = rill_payload_builder_init(&b, p->to, dst, dst_bytes);
	RILL_ASSERT(rc == 0); /* U2 */
	/* Fields whose value the target cannot hold: the upcaster's to set, or the step fails
	 * (a default does not stand in for a value that was there). */
	uint64_t left[RILL_ARRAY_COUNT(b.set)] = {0};
	uint32_t first_left = UINT32_MAX;
	struct rill_schema_error left_why, why;
	for (uint32_t i = 0; i < p->op_count; i++) {
		uint32_t field = p->ops[i].field;
		rc = apply_op(&p->ops[i], &b, src, src_bytes, &why);
		if (rc == RILL_E_SCHEMA_UPCAST) {
			left[field / 64] |= 1ull << (field % 64);
			b.set[field / 64] &= ~(1ull << (field % 64));
			if (first_left == UINT32_MAX) {
				first_left = field;
				left_why = why;
			}
		} else if (rc != 0) {
			return schema_fail(err, rc, "%s", why.message);
		}
	}
	rc = p->upcaster->fn(p->upcaster->arg, p->from, src, src_bytes, &b);
	if (rc != 0)
		return schema_fail(err, rc, "%s: the upcaster from v%u to v%u failed: %s",
				   p->to->type_name, p->from->version, p->to->version,
				   rill_strerror(rc));
	for (uint32_t w = 0; w < RILL_ARRAY_COUNT(left); w++) {
		if ((left[w] & ~b.set[w]) == 0)
			continue;
		uint32_t field = w * 64 + (uint32_t)__builtin_ctzll(left[w] & ~b.set[w]);
		if (field == first_left)
			return schema_fail(err, RILL_E_SCHEMA_UPCAST, "%s v%u read as v%u: %s",
					   p->to->type_name, p->from->version, p->to->version,
					   left_why.message);
		return schema_fail(err, RILL_E_SCHEMA_UPCAST,
				   "%s v%u read as v%u: field '%s': its value has no place in v%u, "
				   "and the upcaster did not set it",
				   p->to->type_name, p->from->version, p->to->version,
				   p->to->fields[field].name, p->to->version);
	}
	rc = rill_payload_builder_finish(&b, out_bytes, &why);
	if (rc != 0)
		return schema_fail(err, RILL_E_SCHEMA_UPCAST,
				   "%s v%u read as v%u: %s; give it a default or add an upcaster",
				   p->to->type_name, p->from->version, p->to->version, why.message);
	return 0;
}

int rill_schema_reader_read(struct rill_schema_reader *r, uint16_t from_version,
			    const void *payload, uint32_t payload_bytes, bool trusted,
			    const void **out, uint32_t *out_bytes, struct rill_schema_error *err)
{
	struct route *route = NULL;
	if (from_version == 0)
		return -ENOENT;
	if (from_version != r->schema->version) {
		int rc = route_get(r, from_version, &route);
		if (rc != 0)
			return schema_fail(err, rc, "%s: cannot read v%u as v%u: %s",
					   r->schema->type_name, from_version, r->schema->version,
					   rill_strerror(rc));
	}
	if (!trusted) {
		const struct rill_schema *src =
			route == NULL ? r->schema
				      : rill_schema_get_id(r->reg, r->type_id, from_version);
		int rc = rill_schema_validate(src, payload, payload_bytes, err);
		if (rc != 0)
			return rc;
	}
	const uint8_t *cur = payload;
	uint32_t cur_bytes = payload_bytes;
	if (route != NULL && !route->in_place) {
		for (uint32_t i = 0; i < route->step_count; i++) {
			uint8_t *dst = r->buf[i & 1];
			int rc = plan_apply(&route->steps[i], cur, cur_bytes, dst, r->buf_bytes,
					    &cur_bytes, err);
			if (rc != 0)
				return rc;
			cur = dst;
		}
	}
	*out = cur;
	*out_bytes = cur_bytes;
	return 0;
}
