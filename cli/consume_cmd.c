/*
 * `rill consume`: a topic's events from a server as JSON lines, their payloads decoded with
 * the server's schemas. With --group, each partition starts where the group left off and
 * the group's offsets are committed as events are printed (every second, and at exit,
 * SIGINT and SIGTERM included) over a second connection, since a subscribed connection
 * only reads events. Main thread; blocking.
 *
 * A commit pass is one GROUP_COMMIT for every partition printed from ("offsets"), one
 * write of the group's file on the server, whose control thread queries share.
 *
 * The feed is not read while a commit waits for the server. A server whose host vanished
 * answers nothing, and each call waits out its deadline; so a commit pass stops at the
 * first failure of the connection (what it did not commit stays to commit), waits the
 * keepalive's verdict before the next pass, and the commit at exit after a signal or a
 * lost feed is one short try: consume ends about when the keepalive promises it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/clock.h"
#include "cli.h"
#include "io/wire.h"
#include "rill/client.h"
#include "rill/rill.h"
#include "rill/schema.h"

#define CONSUME_POLL_NS           (200ull * 1000000u) /* how soon a signal is noticed */
#define CONSUME_COMMIT_NS         (1000ull * 1000000u)
#define CONSUME_TEXT_BYTES_MIN    (64u << 10)
#define CONSUME_TEXT_BYTES_MAX    (64u << 20) /* one payload's JSON */
#define CONSUME_SCHEMA_REFETCH_NS (1000ull * 1000000u)
#define CONSUME_KEEPALIVE_S_MAX   32767u /* the client's (Linux's TCP_KEEPIDLE) */
#define CONSUME_KEEPALIVE_COUNT   3u
/* After a signal or a lost feed: the final commit's connect and each of its calls, and no
 * call starts past it, so that it takes at most twice this. */
#define CONSUME_FINAL_COMMIT_NS (2000ull * 1000000u)

#define CONSUME_USAGE                                                                              \
	"usage: rill consume [--connect HOST:PORT] --topic T [--partition P] "                     \
	"[--from earliest|latest|OFFSET|@UNIX_NS] [--until-end] [--group G] [--limit N] "          \
	"[--keepalive S]\n"                                                                        \
	"  prints {\"partition\",\"offset\",\"key\",\"type\",\"version\",\"timestamp_ns\","        \
	"\"correlation_id\",\"causation_id\",\"data\"}\n  per event (\"key_hex\" for a key "       \
	"that is not printable UTF-8; \"payload_hex\" and an error\n  on stderr when the "         \
	"payload cannot be decoded). --from defaults to earliest. --until-end:\n  stop at the "    \
	"end each partition had when subscribed. --group G: without --from, start\n  where the "   \
	"group left off; commit what was printed every second and at exit.\n  --keepalive S: "     \
	"probe a silent server every S seconds; 3 probes unanswered end consume\n  with status "   \
	"1 (default: after 10 s, then every 5 s). SIGINT, SIGTERM: commit and exit 0."

struct part_state {
	bool open;           /* subscribed */
	bool done;           /* --until-end: reached the end it had when subscribing */
	bool dirty;          /* written out past what the group has committed */
	uint64_t end_offset; /* its next offset when subscribed */
	uint64_t next;       /* the next offset to read */
	uint64_t written;    /* next, as of the last flush of stdout: what may be committed */
};

struct consumer {
	const char *address, *topic, *group;
	uint32_t partition; /* UINT32_MAX: every one */
	enum rill_client_from from;
	uint64_t from_value;
	bool from_given, until_end;
	uint64_t limit, printed;
	uint64_t keepalive_s; /* --keepalive: 0 for the client's default */
	uint64_t silence_ns;  /* the silence after which the feed's keepalive gives up */
	struct rill_client *feed, *admin;
	uint64_t admin_used_ns;    /* its last request: pinged first when idle for a while */
	uint64_t admin_timeout_ns; /* its calls' deadline (consume_configure) */
	struct cli_schemas *schemas;
	/* A type and version the server's schemas lacked even when fetched again (at most
	 * once a second for it): the fetch that missed it, and which it was. */
	uint64_t schema_missed_ns;
	uint32_t schema_missed_type;
	uint16_t schema_missed_version;
	bool out_failed;    /* writing stdout failed: nothing past what it wrote is committed */
	bool group_refused; /* a commit refused for good (bad name, groups_max): the end */
	struct part_state parts[RILL_CLIENT_PARTITIONS_MAX];
	uint32_t open_count, done_count;
	char *text;
	size_t text_cap;
	uint64_t committed_ns;    /* the last commit pass's start */
	uint64_t commit_retry_ns; /* no pass before then: the last one lost the connection */
	int status;
};

/* Set by SIGINT and SIGTERM. volatile sig_atomic_t is what C allows a signal handler to
 * write; no thread reads it, so no atomic helper is needed. */
static volatile sig_atomic_t consume_stop;

static void on_signal(int sig)
{
	(void)sig;
	consume_stop = 1;
}

/* ---- Arguments ------------------------------------------------------------------------ */

static int parse_from(const char *text, struct consumer *c)
{
	c->from_given = true;
	if (strcmp(text, "earliest") == 0)
		c->from = RILL_CLIENT_FROM_EARLIEST;
	else if (strcmp(text, "latest") == 0)
		c->from = RILL_CLIENT_FROM_LATEST;
	else if (text[0] == '@' && cli_parse_u64(text + 1, &c->from_value) == 0)
		c->from = RILL_CLIENT_FROM_TIMESTAMP;
	else if (cli_parse_u64(text, &c->from_value) == 0)
		c->from = RILL_CLIENT_FROM_OFFSET;
	else
		return -EINVAL;
	return 0;
}

static int parse_args(int argc, char **argv, struct consumer *c)
{
	const char *partition = NULL, *from = NULL, *limit = NULL, *keepalive = NULL;
	c->address = CLI_CONNECT_DEFAULT;
	if (cli_help(argc, argv, CONSUME_USAGE))
		return -1;
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--until-end") == 0)
			c->until_end = true;
		else if (!cli_opt(argc, argv, &i, "--connect", &c->address) &&
			 !cli_opt(argc, argv, &i, "--topic", &c->topic) &&
			 !cli_opt(argc, argv, &i, "--partition", &partition) &&
			 !cli_opt(argc, argv, &i, "--from", &from) &&
			 !cli_opt(argc, argv, &i, "--group", &c->group) &&
			 !cli_opt(argc, argv, &i, "--limit", &limit) &&
			 !cli_opt(argc, argv, &i, "--keepalive", &keepalive))
			return cli_usage_error("consume", CONSUME_USAGE);
	}
	if (c->topic == NULL)
		return cli_usage_error("consume", "needs --topic");
	/* Before subscribing: with --from, no GROUP_FETCH asks the server first, and a name
	 * it refuses would only show at the first commit, after events were printed. */
	if (c->group != NULL && !rill_group_name_valid(c->group))
		return cli_usage_error("consume", CLI_GROUP_NAME_RULE);
	uint64_t p = UINT32_MAX;
	if (partition != NULL &&
	    (cli_parse_u64(partition, &p) != 0 || p >= RILL_CLIENT_PARTITIONS_MAX))
		return cli_usage_error("consume", "--partition takes 0 to 1023");
	c->partition = (uint32_t)p;
	c->from = RILL_CLIENT_FROM_EARLIEST;
	if (from != NULL && parse_from(from, c) != 0)
		return cli_usage_error("consume",
				       "--from takes earliest, latest, an offset or @UNIX_NS");
	c->limit = UINT64_MAX;
	if (limit != NULL && (cli_parse_u64(limit, &c->limit) != 0 || c->limit == 0))
		return cli_usage_error("consume", "--limit takes a count of at least 1");
	if (keepalive != NULL && (cli_parse_u64(keepalive, &c->keepalive_s) != 0 ||
				  c->keepalive_s == 0 || c->keepalive_s > CONSUME_KEEPALIVE_S_MAX))
		return cli_usage_error("consume", "--keepalive takes 1 to 32767 seconds");
	return 0;
}

/* ---- Connections --------------------------------------------------------------------- */

/* The settings of consume's connections: --keepalive's probes, and calls that wait at most
 * @timeout_ns (0: the client's default). */
static void consume_config(const struct consumer *c, uint64_t timeout_ns,
			   struct rill_client_config *config)
{
	rill_client_config_default(config);
	if (c->keepalive_s != 0) {
		config->keepalive_idle_ns = c->keepalive_s * 1000000000u;
		config->keepalive_interval_ns = c->keepalive_s * 1000000000u;
		config->keepalive_count = CONSUME_KEEPALIVE_COUNT;
	}
	if (timeout_ns != 0)
		config->timeout_ns = timeout_ns;
}

/*
 * The silence the feed's keepalive ends consume after, and the admin connection's
 * deadline: the client's default (10 s), or half that silence when shorter (--keepalive 1
 * or 2). A commit pass may wait out two deadlines (a ping of the idle admin connection
 * unanswered, then a new connection) while the feed is not read: they fit in the silence,
 * so the verdict on a vanished host comes no later than promised.
 */
static void consume_configure(struct consumer *c)
{
	struct rill_client_config config;
	consume_config(c, 0, &config);
	c->silence_ns =
		config.keepalive_idle_ns + config.keepalive_interval_ns * config.keepalive_count;
	c->admin_timeout_ns = config.timeout_ns;
	if (c->admin_timeout_ns > c->silence_ns / 2)
		c->admin_timeout_ns = c->silence_ns / 2;
}

/* Connect to the server with calls of @timeout_ns (0: the client's default). 0 or the
 * error, in @err (its message names the address). */
static int consume_connect(const struct consumer *c, uint64_t timeout_ns, struct rill_client **out,
			   struct rill_client_error *err)
{
	struct rill_client_config config;
	consume_config(c, timeout_ns, &config);
	return rill_client_connect(out, c->address, &config, err);
}

/* "rill: consume: ADDRESS: @what: why", the address said once: a connection's error
 * message starts with it. */
static void consume_fail(const struct consumer *c, const char *what, int rc,
			 const struct rill_client_error *err)
{
	const char *why = err->message[0] != '\0' ? err->message : rill_strerror(rc);
	size_t n = strlen(c->address);
	if (strncmp(why, c->address, n) == 0 && strncmp(why + n, ": ", 2) == 0)
		why += n + 2;
	fprintf(stderr, "rill: consume: %s: %s%s%s\n", c->address, what, what[0] ? ": " : "", why);
}

/*
 * The admin connection, ready for a request: when it sat idle for a while the server's
 * idle timeout may have closed it (it carries a commit a second at most, and nothing when
 * no event comes), so it is pinged, and connected again if need be; not after a signal,
 * when the final commit connects on its own. 0, or the error (@err).
 */
static int admin_ready(struct consumer *c, struct rill_client_error *err)
{
	uint64_t now = rill_clock_now_ns();
	int rc = 0;
	if (now - c->admin_used_ns >= CLI_IDLE_PING_NS) {
		rc = rill_client_ping(c->admin, err);
		struct rill_client *fresh;
		if (rc != 0 && !consume_stop &&
		    (rc = consume_connect(c, c->admin_timeout_ns, &fresh, err)) == 0) {
			rill_client_close(c->admin);
			c->admin = fresh;
		}
	}
	if (rc == 0)
		c->admin_used_ns = now;
	return rc;
}

/* ADMIN @op with @body (taken) on the admin connection; the answer parsed, or NULL. */
static json_t *admin_json(struct consumer *c, uint16_t op, json_t *body)
{
	char *text = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	char *answer = NULL;
	struct rill_client_error err = {{0}};
	int rc = text == NULL ? -ENOMEM : admin_ready(c, &err);
	if (rc == 0)
		rc = rill_client_admin(c->admin, op, text, &answer, &err);
	free(text);
	if (rc != 0) {
		consume_fail(c, "", rc, &err);
		return NULL;
	}
	json_error_t jerr;
	json_t *j = json_loads(answer, 0, &jerr);
	if (j == NULL)
		fprintf(stderr, "rill: consume: %s: the server's answer is not JSON: %s\n",
			c->address, jerr.text);
	free(answer);
	return j;
}

/* ---- Committing ----------------------------------------------------------------------- */

/*
 * Flush stdout: whether everything printed so far was written. A write error (a full
 * disk, a closed pipe) is said once and ends the run with status 1: what could not be
 * written must not be committed, or the group would skip it for good. What a flush wrote
 * whole becomes what the partitions may commit (part_state.written).
 */
static bool out_flush(struct consumer *c)
{
	if (!c->out_failed && (fflush(stdout) != 0 || ferror(stdout))) {
		fprintf(stderr,
			"rill: consume: writing the events out failed: %s; nothing more "
			"is committed\n",
			strerror(errno));
		c->out_failed = true;
		c->status = 1;
	}
	if (c->out_failed)
		return false;
	for (uint32_t p = 0; p < RILL_CLIENT_PARTITIONS_MAX; p++) {
		struct part_state *s = &c->parts[p];
		if (s->written != s->next) {
			s->written = s->next;
			s->dirty = true;
		}
	}
	return true;
}

/*
 * A GROUP_COMMIT of every partition in one request: its body holds the group, the topic
 * and "offsets", a key of at most 4 digits and an offset of at most 19 for each (with
 * quotes, colon and comma, 29 bytes), well within the smallest frame a server may have.
 */
#define CONSUME_COMMIT_BODY_BYTES_MAX                                                              \
	(RILL_CLIENT_PARTITIONS_MAX * 29u + 2u * RILL_ENGINE_NAME_BYTES_MAX + 64u)
_Static_assert(CONSUME_COMMIT_BODY_BYTES_MAX + 8u <= RILL_WIRE_FRAME_BYTES_MIN,
	       "a commit of every partition fits the smallest frame");

/* {"PARTITION": OFFSET, ...} of every dirty partition's written offset, or NULL (out of
 * memory). */
static json_t *commit_offsets(const struct consumer *c)
{
	json_t *offsets = json_object();
	for (uint32_t p = 0; offsets != NULL && p < RILL_CLIENT_PARTITIONS_MAX; p++) {
		char key[8];
		snprintf(key, sizeof(key), "%u", p);
		if (c->parts[p].dirty &&
		    json_object_set_new(offsets, key,
					json_integer((json_int_t)c->parts[p].written)) != 0) {
			json_decref(offsets);
			offsets = NULL;
		}
	}
	return offsets;
}

/*
 * GROUP_COMMIT over @admin of partition @p's written offset ("partition" and "offset",
 * which every server takes), or with @p UINT32_MAX of every dirty partition's in one
 * request ("offsets": all of them or none). Those committed are no longer dirty. 0, or
 * the error (@err).
 */
static int commit_send(struct consumer *c, struct rill_client *admin, uint32_t p,
		       struct rill_client_error *err)
{
	json_t *body = p != UINT32_MAX ? json_pack("{s:s, s:s, s:I, s:I}", "group", c->group,
						   "topic", c->topic, "partition", (json_int_t)p,
						   "offset", (json_int_t)c->parts[p].written)
				       : json_pack("{s:s, s:s, s:o}", "group", c->group, "topic",
						   c->topic, "offsets", commit_offsets(c));
	char *text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	int rc = text != NULL
			 ? rill_client_admin(admin, RILL_WIRE_ADMIN_GROUP_COMMIT, text, NULL, err)
			 : -ENOMEM;
	free(text);
	for (uint32_t q = 0; rc == 0 && q < RILL_CLIENT_PARTITIONS_MAX; q++) {
		if (p == UINT32_MAX || q == p)
			c->parts[q].dirty = false;
	}
	return rc;
}

/* The dirty partitions as "0-3, 5" into @out, cut short with "..." past @bytes: what a
 * failed commit of them all names. */
static void commit_what(const struct consumer *c, char *out, size_t bytes)
{
	size_t n = 0;
	uint32_t first = UINT32_MAX;
	out[0] = '\0';
	for (uint32_t p = 0; p <= RILL_CLIENT_PARTITIONS_MAX && n < bytes; p++) {
		bool dirty = p < RILL_CLIENT_PARTITIONS_MAX && c->parts[p].dirty;
		if (dirty && first == UINT32_MAX)
			first = p;
		if (dirty || first == UINT32_MAX)
			continue;
		const char *sep = n == 0 ? "" : ", ";
		int k = first == p - 1 ? snprintf(out + n, bytes - n, "%s%u", sep, first)
				       : snprintf(out + n, bytes - n, "%s%u-%u", sep, first, p - 1);
		n += (size_t)k;
		first = UINT32_MAX;
	}
	if (n >= bytes && bytes > 4)
		memcpy(out + bytes - 4, "...", 4);
}

/*
 * The commit of partition @p failed with @rc, or with @p UINT32_MAX that of all @left
 * dirty partitions in one request: say so, naming the group and the partitions. Returns
 * whether the pass must stop: the connection was @lost, when each commit after it would
 * wait out a deadline of its own (the next pass comes after the keepalive's verdict: if
 * the server's host is gone, the feed says so first); or the server refused what no later
 * commit gets past (a bad name, groups_max), which ends the run. A refusal of this one
 * offset (-ERANGE, say) leaves it to commit.
 */
static bool commit_failed(struct consumer *c, bool lost, uint32_t p, int rc,
			  const struct rill_client_error *err, bool final, uint32_t left)
{
	char parts[160], what[RILL_ENGINE_NAME_BYTES_MAX + 256];
	const char *how = final ? "the final commit" : "the commit";
	if (p != UINT32_MAX) {
		snprintf(what, sizeof(what),
			 "group '%s' partition %u: %s of offset %" PRIu64 " failed", c->group, p,
			 how, c->parts[p].written);
	} else {
		commit_what(c, parts, sizeof(parts));
		snprintf(what, sizeof(what), "group '%s' partitions %s: %s of %u offsets failed",
			 c->group, parts, how, left);
	}
	consume_fail(c, what, rc, err);
	c->status = 1;
	if (lost) {
		if (final)
			fprintf(stderr,
				"rill: consume: group '%s': %u partition%s left uncommitted: "
				"the group will print their last events again\n",
				c->group, left, left == 1 ? "" : "s");
		else
			fprintf(stderr,
				"rill: consume: group '%s': %u partition%s left uncommitted for "
				"now; the next try in %llu s\n",
				c->group, left, left == 1 ? "" : "s",
				(unsigned long long)(c->silence_ns / 1000000000u));
		c->commit_retry_ns = rill_clock_now_ns() + c->silence_ns;
		return true;
	}
	if (rc == -EINVAL || rc == RILL_E_GROUPS_FULL) {
		fprintf(stderr, "rill: consume: group '%s' can never be committed: stopping\n",
			c->group);
		c->group_refused = true;
		return true;
	}
	return false;
}

/* The final commit's time ran out with @left partitions to commit: said, status 1. */
static void commit_out_of_time(struct consumer *c, uint32_t left)
{
	fprintf(stderr,
		"rill: consume: group '%s': the final commit ran out of its %llu s: %u partition%s "
		"left uncommitted\n",
		c->group, (unsigned long long)(CONSUME_FINAL_COMMIT_NS / 1000000000u), left,
		left == 1 ? "" : "s");
	c->status = 1;
}

/*
 * GROUP_COMMIT of partition @p alone (UINT32_MAX: every dirty one at once) on @final (the
 * final commit's own connection) or on the admin connection, readied first (a revival at
 * most: once it answers, it counts as used). 0, or the error (@err), with @lost set when
 * the connection, not the server, failed it.
 */
static int commit_try(struct consumer *c, struct rill_client *final, uint32_t p, bool *lost,
		      struct rill_client_error *err)
{
	struct rill_client *admin = final;
	int rc = admin == NULL ? admin_ready(c, err) : 0;
	*lost = rc != 0; /* no answer to a ping, and no new connection */
	if (rc != 0)
		return rc;
	if (admin == NULL)
		admin = c->admin;
	rc = commit_send(c, admin, p, err);
	/* Its deadline passed, or it is closed (rill_client_fd): not the server's refusal,
	 * which leaves it open. */
	*lost = rc == -ETIMEDOUT || rill_client_fd(admin) < 0;
	if (!*lost && final == NULL) /* answered: not idle, no ping before the next */
		c->admin_used_ns = rill_clock_now_ns();
	return rc;
}

/*
 * Partition by partition, after the server refused them all at once (see commit_pass), on
 * @final or the admin connection as commit_try. Stops where commit_failed says, on a
 * signal unless final (the final commit takes them over), and past @deadline_ns when
 * final.
 */
static void commit_each(struct consumer *c, struct rill_client *final, uint64_t deadline_ns,
			uint32_t left)
{
	for (uint32_t p = 0; p < RILL_CLIENT_PARTITIONS_MAX && left > 0; p++) {
		if (!c->parts[p].dirty)
			continue;
		if (final == NULL && consume_stop)
			return;
		if (final != NULL && rill_clock_now_ns() >= deadline_ns) {
			commit_out_of_time(c, left);
			return;
		}
		struct rill_client_error err = {{0}};
		bool lost;
		int rc = commit_try(c, final, p, &lost, &err);
		if (rc != 0 && commit_failed(c, lost, p, rc, &err, final != NULL, left))
			return;
		left--;
	}
}

/*
 * One commit pass over the partitions written out past the group's commit, on @final (the
 * final commit's own connection, with its deadline at @deadline_ns) or on the admin
 * connection. They all go in one request: one write of the group's file on the server,
 * where a request each held the server's control thread, which queries share, for a
 * write and two syncs per partition (80 ms a pass over 128 partitions). A connection lost
 * ends the pass (commit_failed). The server's refusal, of all of them, is tried again
 * partition by partition (commit_each), once: a refusal of one offset (-ERANGE) must not
 * hold back the others, a refusal for good (a bad name, groups_max) is then said as for
 * one partition, and a server that takes no "offsets" still gets every commit. No pass on
 * a signal unless final (the final commit takes them over), nor past @deadline_ns when
 * final.
 */
static void commit_pass(struct consumer *c, struct rill_client *final, uint64_t deadline_ns)
{
	uint32_t left = 0, last = 0;
	for (uint32_t p = 0; p < RILL_CLIENT_PARTITIONS_MAX; p++) {
		left += c->parts[p].dirty;
		last = c->parts[p].dirty ? p : last;
	}
	if (left == 0 || (final == NULL && consume_stop))
		return;
	if (final != NULL && rill_clock_now_ns() >= deadline_ns) {
		commit_out_of_time(c, left);
		return;
	}
	struct rill_client_error err = {{0}};
	bool lost;
	uint32_t p = left == 1 ? last : UINT32_MAX;
	int rc = commit_try(c, final, p, &lost, &err);
	if (rc == 0)
		return;
	if (lost || left == 1)
		(void)commit_failed(c, lost, p, rc, &err, final != NULL, left);
	else
		commit_each(c, final, deadline_ns, left);
}

/* Flush stdout and commit what it took (every second, and at an ordinary end). */
static void commit(struct consumer *c, bool at_exit)
{
	c->committed_ns = rill_clock_now_ns();
	out_flush(c);
	if (c->group != NULL && !c->group_refused &&
	    (at_exit || c->committed_ns >= c->commit_retry_ns))
		commit_pass(c, NULL, 0);
}

/*
 * The commit at exit. After a signal, or once the feed ended with an error (the server
 * gone, or its host), one short try on a connection of its own, whose every wait
 * (connect, each commit) is CONSUME_FINAL_COMMIT_NS: the admin connection's calls may
 * each wait 10 s, and a signal asks for an end, not for a wait.
 */
static void commit_final(struct consumer *c, bool feed_failed)
{
	if (!feed_failed && !consume_stop) {
		commit(c, true);
		return;
	}
	out_flush(c);
	uint32_t left = 0;
	for (uint32_t p = 0; p < RILL_CLIENT_PARTITIONS_MAX; p++)
		left += c->parts[p].dirty;
	if (c->group == NULL || c->group_refused || left == 0)
		return;
	uint64_t deadline_ns = rill_clock_now_ns() + CONSUME_FINAL_COMMIT_NS;
	struct rill_client *admin = NULL;
	struct rill_client_error err = {{0}};
	int rc = consume_connect(c, CONSUME_FINAL_COMMIT_NS, &admin, &err);
	if (rc != 0) {
		char what[RILL_ENGINE_NAME_BYTES_MAX + 128];
		snprintf(what, sizeof(what),
			 "group '%s': the final commit failed (%u partition%s left uncommitted: "
			 "the group will print their last events again)",
			 c->group, left, left == 1 ? "" : "s");
		consume_fail(c, what, rc, &err);
		c->status = 1;
		return;
	}
	commit_pass(c, admin, deadline_ns);
	rill_client_close(admin);
}

/* ---- Subscribing ---------------------------------------------------------------------- */

/*
 * The feed's connection, with --keepalive's probes when given. It only reads: a server
 * whose host vanished (no FIN or RST) is found by the client's keepalive alone, which ends
 * the wait with -ECONNABORTED. The admin connection's calls have deadlines of their own.
 */
static int feed_connect(struct consumer *c)
{
	struct rill_client_error err = {{0}};
	int rc = consume_connect(c, 0, &c->feed, &err);
	if (rc != 0) /* the message names the address already */
		fprintf(stderr, "rill: consume: %s\n",
			err.message[0] ? err.message : rill_strerror(rc));
	return rc;
}

static int subscribe(struct consumer *c, uint32_t partition, enum rill_client_from from,
		     uint64_t value)
{
	static struct rill_client_partition opened[RILL_CLIENT_PARTITIONS_MAX];
	uint32_t count = 0;
	struct rill_client_error err = {{0}};
	int rc = rill_client_subscribe(c->feed, c->topic, partition, from, value, opened, &count,
				       &err);
	if (rc != 0) {
		cli_client_fail("consume", c->address, rc, &err);
		return rc;
	}
	for (uint32_t i = 0; i < count; i++) {
		uint32_t p = opened[i].partition;
		if (p >= RILL_CLIENT_PARTITIONS_MAX || c->parts[p].open) {
			fprintf(stderr,
				"rill: consume: %s: the server opened partition %u twice "
				"or past %u\n",
				c->address, p, RILL_CLIENT_PARTITIONS_MAX);
			return -EPROTO;
		}
		struct part_state *s = &c->parts[p];
		if (from == RILL_CLIENT_FROM_OFFSET && opened[i].first_offset > value)
			/* The server starts at the first offset retention kept: a consumer that
			 * counts on every event (a group resuming) must hear what it missed. */
			fprintf(stderr,
				"rill: consume: topic %s partition %u: offset %llu is gone "
				"(retention); starting at %llu, %llu event%s skipped\n",
				c->topic, p, (unsigned long long)value,
				(unsigned long long)opened[i].first_offset,
				(unsigned long long)(opened[i].first_offset - value),
				opened[i].first_offset - value == 1 ? "" : "s");
		s->open = true;
		s->end_offset = opened[i].end_offset;
		s->next = opened[i].first_offset;
		s->written = s->next;
		s->done = opened[i].first_offset >= opened[i].end_offset;
		c->open_count++;
		c->done_count += s->done;
	}
	return 0;
}

/* Where the group left each partition (absent: not committed). Fills @next; -1 for none. */
static int group_offsets(struct consumer *c, int64_t *next, uint32_t *partitions)
{
	json_t *info =
		admin_json(c, RILL_WIRE_ADMIN_TOPIC_INFO, json_pack("{s:s}", "name", c->topic));
	json_int_t n = json_integer_value(json_object_get(info, "partitions"));
	json_decref(info);
	if (info == NULL)
		return -EPROTO;
	if (n < 1 || n > RILL_CLIENT_PARTITIONS_MAX) {
		fprintf(stderr, "rill: consume: %s: topic '%s' has %lld partitions?\n", c->address,
			c->topic, (long long)n);
		return -EPROTO;
	}
	*partitions = (uint32_t)n;
	for (uint32_t p = 0; p < RILL_CLIENT_PARTITIONS_MAX; p++)
		next[p] = -1;
	json_t *answer = admin_json(c, RILL_WIRE_ADMIN_GROUP_FETCH,
				    json_pack("{s:s, s:s}", "group", c->group, "topic", c->topic));
	if (answer == NULL)
		return -EPROTO;
	size_t i;
	json_t *e;
	json_array_foreach(json_object_get(answer, "offsets"), i, e)
	{
		json_int_t p = json_integer_value(json_object_get(e, "partition"));
		json_int_t o = json_integer_value(json_object_get(e, "offset"));
		if (p >= 0 && p < RILL_CLIENT_PARTITIONS_MAX && o >= 0)
			next[p] = o;
	}
	json_decref(answer);
	return 0;
}

/* Subscribe as the options say: one subscription, or one per partition for a group. */
static int subscribe_all(struct consumer *c)
{
	if (c->group == NULL || c->from_given)
		return subscribe(c, c->partition, c->from, c->from_value);
	static int64_t next[RILL_CLIENT_PARTITIONS_MAX];
	uint32_t partitions;
	int rc = group_offsets(c, next, &partitions);
	if (rc == 0 && c->partition != UINT32_MAX && c->partition >= partitions) {
		fprintf(stderr,
			"rill: consume: %s: topic '%s' has %u partitions: no partition %u\n",
			c->address, c->topic, partitions, c->partition);
		return -EINVAL;
	}
	for (uint32_t p = 0; rc == 0 && p < partitions; p++) {
		if (c->partition != UINT32_MAX && p != c->partition)
			continue;
		rc = next[p] < 0 ? subscribe(c, p, RILL_CLIENT_FROM_EARLIEST, 0)
				 : subscribe(c, p, RILL_CLIENT_FROM_OFFSET, (uint64_t)next[p]);
	}
	return rc;
}

/* ---- Printing ------------------------------------------------------------------------- */

/*
 * The event's schema. One the schemas fetched lack was registered since (the server
 * refuses events of types it does not know): they are fetched again. Only a type and
 * version still missing after that waits a second before the next try, so that a run of
 * such events does not fetch for each.
 */
static const struct rill_schema *event_schema(struct consumer *c, const struct rill_record *r)
{
	const struct rill_schema *s = cli_schemas_by_id(c->schemas, r->type_id, r->schema_version);
	uint64_t now = rill_clock_now_ns();
	if (s != NULL ||
	    (r->type_id == c->schema_missed_type && r->schema_version == c->schema_missed_version &&
	     now - c->schema_missed_ns < CONSUME_SCHEMA_REFETCH_NS))
		return s;
	struct rill_client_error err = {{0}};
	int rc = admin_ready(c, &err);
	if (rc != 0)
		consume_fail(c, "fetching the schemas again", rc, &err);
	/* Against the list it has: versions too large for the frames are said once. */
	if (rc == 0 && cli_schemas_refetch("consume", c->address, c->admin, &c->schemas) == 0)
		s = cli_schemas_by_id(c->schemas, r->type_id, r->schema_version);
	if (s == NULL) { /* still missing, or the fetch failed: a second before the next */
		c->schema_missed_ns = now;
		c->schema_missed_type = r->type_id;
		c->schema_missed_version = r->schema_version;
	}
	return s;
}

/* The payload as JSON in c->text, or an error (the payload is then printed in hex). */
static int decode_data(struct consumer *c, const struct rill_schema *s, const struct rill_record *r,
		       struct rill_schema_error *err)
{
	size_t need = 0;
	int rc = rill_schema_json_decode(s, r->payload, r->payload_bytes, c->text, c->text_cap,
					 &need, err);
	if (rc == -ENOSPC && need < CONSUME_TEXT_BYTES_MAX) {
		char *grown = realloc(c->text, need + 1);
		if (grown == NULL)
			return -ENOMEM;
		c->text = grown;
		c->text_cap = need + 1;
		rc = rill_schema_json_decode(s, r->payload, r->payload_bytes, c->text, c->text_cap,
					     &need, err);
	}
	return rc;
}

/* Print the event as a JSON line. 0, or -ENOMEM when it cannot be formatted (said). */
static int print_event(struct consumer *c, const struct rill_client_event *ev)
{
	const struct rill_record *r = &ev->record;
	const struct rill_schema *s = event_schema(c, r);
	json_t *o = json_object();
	json_object_set_new(o, "partition", json_integer(ev->partition));
	json_object_set_new(o, "offset", cli_json_u64(ev->offset));
	cli_json_put_key(o, r->key, r->key_bytes);
	json_object_set_new(o, "type",
			    s != NULL ? json_string(rill_schema_type_name(s)) : json_null());
	json_object_set_new(o, "version", json_integer(r->schema_version));
	json_object_set_new(o, "timestamp_ns", cli_json_u64(r->timestamp_ns));
	json_object_set_new(o, "correlation_id", cli_json_u64(r->correlation_id));
	json_object_set_new(o, "causation_id", cli_json_u64(r->causation_id));
	struct rill_schema_error err = {{0}};
	int rc = s != NULL ? decode_data(c, s, r, &err) : -ENOENT;
	const char *big =
		s == NULL ? cli_schemas_big_name(c->schemas, r->type_id, r->schema_version) : NULL;
	if (big != NULL) {
		/* The server has it, but could not send it: not "no schema". */
		fprintf(stderr,
			"rill: consume: partition %u offset %" PRIu64 ": its schema, %s v%u, is "
			"too large for this server's frames (frame_bytes_max): printed as "
			"payload_hex\n",
			ev->partition, ev->offset, big, (unsigned)r->schema_version);
		c->status = 1;
	} else if (rc != 0) {
		fprintf(stderr, "rill: consume: partition %u offset %" PRIu64 ": %s\n",
			ev->partition, ev->offset,
			s == NULL        ? "the server has no schema for its type and version"
			: err.message[0] ? err.message
					 : rill_strerror(rc));
		c->status = 1;
	}
	char *head = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	if (head == NULL) { /* json_object() or json_dumps() out of memory */
		fprintf(stderr,
			"rill: consume: partition %u offset %" PRIu64 ": the event cannot be "
			"formatted (out of memory); stopping before it\n",
			ev->partition, ev->offset);
		c->status = 1;
		return -ENOMEM;
	}
	head[strlen(head) - 1] = '\0'; /* the closing brace: data goes last */
	if (rc == 0) {
		printf("%s,\"data\":%s}\n", head, c->text);
	} else {
		printf("%s,\"payload_hex\":\"", head);
		for (uint32_t i = 0; i < r->payload_bytes; i++)
			printf("%02x", ((const uint8_t *)r->payload)[i]);
		printf("\"}\n");
	}
	free(head);
	return 0;
}

/* ---- The loop ------------------------------------------------------------------------- */

/* Account for an event printed (committed once a flush wrote it out); true when consuming
 * is over (--limit, --until-end). */
static bool advance(struct consumer *c, const struct rill_client_event *ev)
{
	c->printed++;
	if (ev->partition < RILL_CLIENT_PARTITIONS_MAX) {
		struct part_state *s = &c->parts[ev->partition];
		s->next = ev->offset + 1;
		if (!s->done && s->next >= s->end_offset) {
			s->done = true;
			c->done_count++;
		}
	}
	return c->printed >= c->limit || (c->until_end && c->done_count == c->open_count);
}

static void consume_loop(struct consumer *c)
{
	bool over = c->until_end && c->done_count == c->open_count;
	bool feed_failed = false;
	while (!over && !consume_stop) {
		struct rill_client_event ev;
		struct rill_client_error err = {{0}};
		int rc = rill_client_next(c->feed, &ev, CONSUME_POLL_NS, &err);
		if (rc < 0) {
			c->status = cli_client_fail("consume", c->address, rc, &err);
			feed_failed = true;
			break;
		}
		/* With --until-end, a partition at the end it had when subscribed is done: what
		 * it gets since, while others catch up, is past the end promised. */
		if (rc == 1 && c->until_end && ev.partition < RILL_CLIENT_PARTITIONS_MAX &&
		    c->parts[ev.partition].done)
			continue;
		/* An event not printed, or printed into a stream that failed (a closed pipe, at
		 * once rather than at the next flush), is not accounted for: nothing from it on
		 * is committed. */
		if (rc == 1 && (print_event(c, &ev) != 0 || (ferror(stdout) && !out_flush(c))))
			break;
		if (rc == 1)
			over = advance(c, &ev);
		if (rill_clock_now_ns() - c->committed_ns >= CONSUME_COMMIT_NS) {
			commit(c, false);
			if (c->out_failed || c->group_refused)
				break;
		}
	}
	commit_final(c, feed_failed);
}

int cli_consume(int argc, char **argv)
{
	static struct consumer c; /* the partition table is large for a stack */
	memset(&c, 0, sizeof(c));
	int status = parse_args(argc, argv, &c);
	if (status != 0)
		return status < 0 ? 0 : status;          /* -1: --help */
	struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART: waits wake up */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	/* A closed pipe on stdout (`| head`) is a write error out_flush says, ending with
	 * status 1 and the final commit of what was written, not a death by SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);
	consume_configure(&c);
	c.text_cap = CONSUME_TEXT_BYTES_MIN;
	c.text = malloc(c.text_cap);
	int rc = c.text == NULL ? -ENOMEM : 0;
	struct rill_client_error err = {{0}};
	if (rc == 0 && (rc = consume_connect(&c, c.admin_timeout_ns, &c.admin, &err)) != 0)
		fprintf(stderr, "rill: consume: %s\n",
			err.message[0] ? err.message : rill_strerror(rc));
	if (rc == 0)
		rc = cli_schemas_fetch("consume", c.address, c.admin, &c.schemas);
	if (rc == 0)
		rc = feed_connect(&c);
	if (rc == 0)
		rc = subscribe_all(&c);
	if (rc == 0) {
		c.committed_ns = rill_clock_now_ns();
		c.admin_used_ns = c.committed_ns;
		consume_loop(&c);
	}
	rill_client_close(c.feed);
	rill_client_close(c.admin);
	cli_schemas_free(c.schemas);
	free(c.text);
	return rc != 0 ? 1 : c.status;
}
