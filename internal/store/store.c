/*
 * store.c - PostgreSQL storage through libpq.  Owns one connection; every
 * operation runs through run(), which (re)connects with capped exponential
 * backoff and retries the whole operation when the connection was lost, so
 * an interrupted transaction leaves nothing behind and is simply done again
 * (recording is idempotent: INSERT ... ON CONFLICT on (mailbox_id, uidl)).
 * A batch of messages is recorded by one statement (one transaction).
 */
#include "store/store.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "base/buf.h"
#include "store/schema_sql.h"

/* Advisory lock keys: one bigint for migrations, (class, mailbox id) for
 * mailbox passes.  'boun' 'cerd' in ASCII. */
#define MIGRATE_LOCK_KEY INT64_C(0x626f756e63657264)
#define MAILBOX_LOCK_CLASS 0x626f756e

#define RETRY (-2) /* an operation's "connection lost, do it again" */
#define BIG_BUF ((size_t)1 << 40)

struct store {
	PGconn *conn;
	char *conninfo;
	char *appname;
	int batch_size;
	int64_t raw_max;
	int64_t backoff_initial_ms;
	int64_t backoff_max_ms;
	int attempts; /* < 0: unlimited */
	int connect_timeout_s;
	int quarantine_after;
	const volatile sig_atomic_t *stop;
	uint64_t generation;
	int prepared;
};

/* ---- names ---- */

/* ---- text repair ---- */

/* Length of the valid UTF-8 sequence at p (1-4), or 0 if invalid. */
static size_t
utf8_seq(const unsigned char *p, size_t avail)
{
	unsigned char c = p[0];
	size_t n, i;
	uint32_t cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		cp = c & 0x07;
	} else
		return 0;
	if (avail < n)
		return 0;
	for (i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

char *
store_text_clean(const char *p, size_t len, size_t max, int *repaired_out)
{
	static const char fffd[] = "\xef\xbf\xbd";
	const unsigned char *u = (const unsigned char *)p;
	char *out;
	size_t i = 0, o = 0, n, cap;
	int repaired = 0;

	/* worst case: every byte becomes 3 */
	cap = len * 3 < max ? len * 3 : max;
	out = xmalloc(cap + 1);
	while (i < len) {
		const char *src;

		if (u[i] == 0) {
			repaired = 1;
			i++;
			continue;
		}
		n = utf8_seq(u + i, len - i);
		if (n == 0) {
			src = fffd;
			n = 3;
			repaired = 1;
			i++;
		} else {
			src = p + i;
			i += n;
		}
		if (o + n > max) {
			repaired = 1;
			break;
		}
		memcpy(out + o, src, n);
		o += n;
	}
	out[o] = '\0';
	if (repaired_out)
		*repaired_out = repaired;
	return out;
}

/* ---- small builders ---- */

static void buf_printf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void
buf_printf(struct buf *b, const char *fmt, ...)
{
	char tmp[128];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n > 0)
		buf_append(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : 0);
}

/* Appends s (valid UTF-8, no NUL) as a JSON string, or null. */
static void
json_str(struct buf *b, const char *s)
{
	buf_append_json_str(b, s);
}

/* Appends s as an element of a PostgreSQL array literal. */
static void
array_elem(struct buf *b, const char *s)
{
	if (b->len > 1)
		buf_append(b, ",", 1);
	buf_append(b, "\"", 1);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			buf_append(b, "\\", 1);
		buf_append(b, s, 1);
	}
	buf_append(b, "\"", 1);
}

/* 1 when s can be stored as a UIDL as it is. */
static int
uidl_ok(const char *s)
{
	size_t len;
	char *c;
	int rep = 0;

	if (s == NULL)
		return 0;
	len = strlen(s);
	if (len == 0 || len > STORE_UIDL_MAX)
		return 0;
	c = store_text_clean(s, len, STORE_UIDL_MAX, &rep);
	free(c);
	return !rep;
}

/* ---- connection ---- */

static int
stopped(const struct store *s)
{
	return s->stop != NULL && *s->stop;
}

static void
sleep_ms(const struct store *s, int64_t ms)
{
	while (ms > 0 && !stopped(s)) {
		int64_t step = ms < 50 ? ms : 50;
		struct timespec ts = {.tv_sec = 0,
		    .tv_nsec = (long)(step * 1000000)};

		while (
		    nanosleep(&ts, &ts) == -1 && errno == EINTR && !stopped(s))
			;
		ms -= step;
	}
}

static void
set_pqerr(struct err *err, const char *what, PGconn *c, const PGresult *r)
{
	const char *m = NULL;
	char msg[200];
	size_t n;

	if (r != NULL)
		m = PQresultErrorMessage(r);
	if (m == NULL || *m == '\0')
		m = c ? PQerrorMessage(c) : "no connection";
	strlcpy_b(msg, m, sizeof(msg));
	n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
		msg[--n] = '\0';
	err_set(err, "%s: %s", what, msg);
}

/* 1 when a failure means the connection is gone (worth reconnecting). */
static int
conn_lost(PGconn *c, const PGresult *r)
{
	const char *st;

	if (c == NULL || PQstatus(c) != CONNECTION_OK)
		return 1;
	if (r == NULL)
		return 1;
	st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
	if (st == NULL)
		return PQresultStatus(r) == PGRES_FATAL_ERROR &&
		    PQstatus(c) != CONNECTION_OK;
	return strncmp(st, "08", 2) == 0 || strcmp(st, "57P01") == 0 ||
	    strcmp(st, "57P02") == 0 || strcmp(st, "57P03") == 0 ||
	    strcmp(st, "40001") == 0 || strcmp(st, "40P01") == 0;
}

static void
drop_conn(struct store *s)
{
	if (s->conn != NULL)
		PQfinish(s->conn);
	s->conn = NULL;
	s->prepared = 0;
}

static int
connect_once(struct store *s, struct err *err)
{
	const char *keys[10], *vals[10];
	char timeout[16];
	int k = 0;

	drop_conn(s);
	snprintf(timeout, sizeof(timeout), "%d", s->connect_timeout_s);
	/* defaults first: the caller's conninfo (expanded last) wins */
	keys[k] = "application_name";
	vals[k++] = s->appname;
	keys[k] = "connect_timeout";
	vals[k++] = timeout;
	keys[k] = "client_encoding";
	vals[k++] = "UTF8";
	/* a server that vanishes without a reset is noticed in ~1 min */
	keys[k] = "keepalives";
	vals[k++] = "1";
	keys[k] = "keepalives_idle";
	vals[k++] = "30";
	keys[k] = "keepalives_interval";
	vals[k++] = "10";
	keys[k] = "keepalives_count";
	vals[k++] = "3";
	keys[k] = "dbname";
	vals[k++] = s->conninfo;
	keys[k] = NULL;
	vals[k] = NULL;
	s->conn = PQconnectdbParams(keys, vals, 1);
	if (s->conn == NULL || PQstatus(s->conn) != CONNECTION_OK) {
		set_pqerr(err, "connect", s->conn, NULL);
		drop_conn(s);
		return -1;
	}
	s->generation++;
	return 0;
}

typedef int (*store_op)(struct store *s, void *arg, struct err *err);

/* Runs op, reconnecting (with backoff) and running it again as long as it
 * returns RETRY or no connection can be made, within the attempt budget. */
static int
run(struct store *s, store_op op, void *arg, struct err *err)
{
	int64_t wait = s->backoff_initial_ms;
	int attempt = 0, rc;

	for (;;) {
		if (stopped(s)) {
			err_set(err, "interrupted");
			return -1;
		}
		rc = RETRY;
		if (s->conn != NULL && PQstatus(s->conn) == CONNECTION_OK)
			rc = 0;
		else if (connect_once(s, err) == 0)
			rc = 0;
		if (rc == 0) {
			rc = op(s, arg, err);
			if (rc != RETRY)
				return rc;
			drop_conn(s);
		}
		attempt++;
		if (s->attempts >= 0 && attempt >= s->attempts) {
			err_prefix(err, "database unreachable (%d attempts)",
			    attempt);
			return -1;
		}
		sleep_ms(s, wait);
		wait =
		    wait * 2 > s->backoff_max_ms ? s->backoff_max_ms : wait * 2;
	}
}

/* Result check: 0 ok, RETRY when the connection is gone, -1 otherwise. */
static int
check(struct store *s, PGresult *r, ExecStatusType want, const char *what,
    struct err *err)
{
	if (r != NULL && PQresultStatus(r) == want)
		return 0;
	set_pqerr(err, what, s->conn, r);
	return conn_lost(s->conn, r) ? RETRY : -1;
}

static int
exec_simple(struct store *s, const char *sql, struct err *err)
{
	PGresult *r = PQexec(s->conn, sql);
	int rc = check(s, r, PGRES_COMMAND_OK, sql, err);

	PQclear(r);
	return rc;
}

/* ---- prepared statements ---- */

static const struct stmt {
	const char *name;
	const char *sql;
} stmts[] = {
    {"uidl_states",
        /* one index scan for the whole (sorted, distinct) list: the
         * index walks the array itself, instead of a join that runs
         * the index scan once per UIDL (ten times slower at 100,000);
         * the rows found are matched to the list by UIDL */
        "SELECT m.uidl, m.outcome, "
        "coalesce(extract(epoch FROM m.fetched_at)::bigint, 0), "
        "m.deleted_at IS NOT NULL, coalesce(m.failures, 0) "
        "FROM messages m WHERE m.mailbox_id = $1::bigint "
        "AND m.uidl = ANY ($2::text[])"},
    {"record_batch",
        /* $1: the messages as a JSON array ("i" numbers them from 1);
         * $2: their raw bytes, raw[i] (binary bytea[]).  One statement
         * for the whole batch, so the bounces go in with one INSERT (and
         * one run of its statement-level trigger).  Returns the "i" of
         * every message written; the others were recorded before. */
        "WITH j AS MATERIALIZED ("
        " SELECT * FROM jsonb_to_recordset($1::jsonb) AS j(i integer,"
        "  mailbox_id bigint, uidl text, kind text, email_message_id text,"
        "  subject text, reporting_mta text, reported_at double precision,"
        "  size_bytes bigint, truncated boolean, raw_truncated boolean,"
        "  repaired text, bounces jsonb)"
        "), m AS ("
        " INSERT INTO messages AS t (mailbox_id, uidl, outcome, kind,"
        "  email_message_id, subject, reporting_mta, reported_at,"
        "  size_bytes, truncated, raw, raw_truncated, repaired_fields,"
        "  processed_at)"
        " SELECT j.mailbox_id, j.uidl, 'recorded', j.kind,"
        "  j.email_message_id, j.subject, j.reporting_mta,"
        "  to_timestamp(j.reported_at), j.size_bytes, j.truncated,"
        "  ($2::bytea[])[j.i], j.raw_truncated, j.repaired::text[], now()"
        " FROM j ORDER BY j.i"
        " ON CONFLICT (mailbox_id, uidl) DO UPDATE SET"
        "  outcome = 'recorded', kind = EXCLUDED.kind,"
        "  email_message_id = EXCLUDED.email_message_id,"
        "  subject = EXCLUDED.subject,"
        "  reporting_mta = EXCLUDED.reporting_mta,"
        "  reported_at = EXCLUDED.reported_at,"
        "  size_bytes = EXCLUDED.size_bytes,"
        "  truncated = EXCLUDED.truncated, raw = EXCLUDED.raw,"
        "  raw_truncated = EXCLUDED.raw_truncated,"
        "  repaired_fields = EXCLUDED.repaired_fields,"
        "  error = NULL, failures = 0, processed_at = now()"
        " WHERE t.outcome = 'failed'"
        " RETURNING id, mailbox_id, uidl"
        "), w AS MATERIALIZED ("
        " SELECT j.i, m.id, j.bounces FROM m"
        " JOIN j ON j.mailbox_id = m.mailbox_id AND j.uidl = m.uidl"
        "), b AS ("
        " INSERT INTO bounces (message_id, recipient, recipient_domain,"
        "  recipient_source, final_recipient, original_recipient, class,"
        "  reason, action, status, reply_code, diagnostic, remote_mta,"
        "  reporting_mta, feedback_type, original_message_id,"
        "  campaign_id, list_id, subscriber_id, original_headers, counts,"
        "  not_counted_because, bounced_at, rule)"
        " SELECT w.id, x.recipient, x.recipient_domain,"
        "  x.recipient_source, x.final_recipient, x.original_recipient,"
        "  x.class, x.reason, x.action, x.status, x.reply_code,"
        "  x.diagnostic, x.remote_mta, x.reporting_mta, x.feedback_type,"
        "  x.original_message_id, x.campaign_id, x.list_id,"
        "  x.subscriber_id, coalesce(x.original_headers, '{}'),"
        "  x.counts, x.not_counted_because,"
        "  coalesce(to_timestamp(x.bounced_at), now()), x.rule"
        " FROM w CROSS JOIN LATERAL jsonb_array_elements(w.bounces)"
        "  WITH ORDINALITY AS e(v, ord)"
        " CROSS JOIN LATERAL jsonb_to_record(e.v) AS x("
        "  recipient text, recipient_domain text, recipient_source text,"
        "  final_recipient text, original_recipient text, class text,"
        "  reason text, action text, status text, reply_code integer,"
        "  diagnostic text, remote_mta text, reporting_mta text,"
        "  feedback_type text, original_message_id text,"
        "  campaign_id text, list_id text, subscriber_id text,"
        "  original_headers jsonb, counts boolean,"
        "  not_counted_because text, bounced_at double precision,"
        "  rule text)"
        " ORDER BY w.i, e.ord"
        ") SELECT w.i FROM w"},
    {"record_failure",
        /* $9: this report's token; a retry of the same report (its
         * COMMIT reply was lost) finds it and counts nothing */
        "INSERT INTO messages AS t (mailbox_id, uidl, outcome, error,"
        " failures, size_bytes, truncated, raw, raw_truncated,"
        " failure_attempt)"
        " VALUES ($1::bigint, $2, CASE WHEN $7::integer <= 1"
        "  THEN 'quarantined' ELSE 'failed' END, $3, 1, $4::bigint,"
        "  $5::boolean, $6::bytea, $8::boolean, $9)"
        " ON CONFLICT (mailbox_id, uidl) DO UPDATE SET"
        "  failures = t.failures + 1,"
        "  outcome = CASE WHEN t.failures + 1 >= $7::integer"
        "   THEN 'quarantined' ELSE 'failed' END,"
        "  error = EXCLUDED.error, size_bytes = EXCLUDED.size_bytes,"
        "  truncated = EXCLUDED.truncated, raw = EXCLUDED.raw,"
        "  raw_truncated = EXCLUDED.raw_truncated,"
        "  failure_attempt = EXCLUDED.failure_attempt"
        " WHERE t.outcome = 'failed'"
        "  AND t.failure_attempt IS DISTINCT FROM EXCLUDED.failure_attempt"
        " RETURNING outcome"},
    {"outcome",
        "SELECT outcome FROM messages WHERE mailbox_id = $1::bigint"
        " AND uidl = $2"},
    {"mark_deleted",
        "UPDATE messages SET deleted_at = now()"
        " WHERE mailbox_id = $1::bigint AND uidl = ANY ($2::text[])"
        " AND deleted_at IS NULL"},
    /* before decoding: each message of a batch carries a mark that only
     * a finished attempt (recorded, or a failure report) replaces; the
     * ones still carrying a mark from an earlier attempt are returned */
    {"mark_trying",
        "WITH b AS (SELECT DISTINCT u AS uidl FROM unnest($2::text[]) u),"
        " old AS (SELECT m.uidl, m.error = $4 AS alone"
        "  FROM messages m JOIN b USING (uidl)"
        "  WHERE m.mailbox_id = $1::bigint AND m.outcome = 'failed'"
        "  AND m.error IN ($3, $4)),"
        " up AS (INSERT INTO messages AS t (mailbox_id, uidl, outcome, error)"
        "  SELECT $1::bigint, uidl, 'failed', $3 FROM b"
        "  ON CONFLICT (mailbox_id, uidl) DO UPDATE SET error = $3"
        "  WHERE t.outcome = 'failed' AND t.error IS DISTINCT FROM $4)"
        " SELECT uidl, alone FROM old"},
    /* a suspect, tried alone: an attempt alone that never finished counts
     * as a failure, and enough of them quarantine it */
    {"mark_alone",
        "UPDATE messages SET"
        "  failures = failures + (error IS NOT DISTINCT FROM $4)::int,"
        "  outcome = CASE WHEN failures"
        "   + (error IS NOT DISTINCT FROM $4)::int >= $5::int"
        "   THEN 'quarantined' ELSE 'failed' END,"
        "  error = CASE WHEN failures"
        "   + (error IS NOT DISTINCT FROM $4)::int >= $5::int"
        "   THEN $3 ELSE $4 END"
        " WHERE mailbox_id = $1::bigint AND uidl = $2 AND outcome = 'failed'"
        " RETURNING outcome"},
    {"prune_gone",
        /* reads the rows still on the server (messages_on_server_idx)
         * and the server's list once, as a hash anti-join */
        "UPDATE messages m SET deleted_at = now()"
        " WHERE m.mailbox_id = $1::bigint AND m.deleted_at IS NULL"
        " AND NOT EXISTS (SELECT 1 FROM unnest($2::text[]) AS u(uidl)"
        "  WHERE u.uidl = m.uidl)"},
    {"prune_raw",
        /* retention.raw, through messages_raw_idx; failures and
         * messages that are not bounces keep theirs */
        "UPDATE messages SET raw = NULL"
        " WHERE mailbox_id = $1::bigint AND raw IS NOT NULL"
        " AND fetched_at < now() - make_interval(secs => $2::bigint)"
        " AND outcome = 'recorded' AND kind <> 'unknown'"},
    {"mailbox",
        "INSERT INTO mailboxes AS t (name, host, username)"
        " VALUES ($1, $2, $3) ON CONFLICT (name) DO UPDATE SET"
        "  host = coalesce(EXCLUDED.host, t.host),"
        "  username = coalesce(EXCLUDED.username, t.username)"
        " RETURNING id"},
    {"settings",
        "UPDATE settings SET soft_threshold = $1::integer,"
        " soft_window = justify_hours(make_interval(secs => $2::bigint)),"
        " updated_at = now() WHERE id"},
    {"override",
        "INSERT INTO reason_overrides (reason, action, count)"
        " VALUES ($1, $2, $3::integer) ON CONFLICT (reason) DO UPDATE SET"
        " action = EXCLUDED.action, count = EXCLUDED.count"},
    {"first_pass",
        "SELECT first_pass_completed_at IS NULL FROM mailboxes"
        " WHERE id = $1::bigint"},
    {"first_pass_done",
        "UPDATE mailboxes SET first_pass_completed_at = now()"
        " WHERE id = $1::bigint AND first_pass_completed_at IS NULL"},
    {"trylock", "SELECT pg_try_advisory_lock($1::integer, $2::integer)"},
    {"unlock", "SELECT pg_advisory_unlock($1::integer, $2::integer)"},
};

static int
prepare_all(struct store *s, struct err *err)
{
	size_t i;
	int rc;

	if (s->prepared)
		return 0;
	/* Plan each statement once per connection.  Left to choose, the
	 * server re-plans record_batch (one large statement) on every
	 * execution, and that planning cost more CPU than the writing; the
	 * statements all look rows up by key, so one plan fits every
	 * parameter value. */
	if ((rc = exec_simple(s, "SET plan_cache_mode = force_generic_plan",
	         err)) != 0)
		return rc;
	for (i = 0; i < sizeof(stmts) / sizeof(stmts[0]); i++) {
		PGresult *r =
		    PQprepare(s->conn, stmts[i].name, stmts[i].sql, 0, NULL);

		rc = check(s, r, PGRES_COMMAND_OK, stmts[i].name, err);
		PQclear(r);
		if (rc != 0) {
			if (rc == -1)
				err_prefix(err,
				    "preparing statements "
				    "(schema not migrated?)");
			return rc;
		}
	}
	s->prepared = 1;
	return 0;
}

/* Runs a prepared statement (all parameters text) and checks its status;
 * *out gets the result (caller clears) when out is not NULL. */
static int
exec_prep(struct store *s, const char *name, int n, const char *const *v,
    ExecStatusType want, PGresult **out, struct err *err)
{
	PGresult *r;
	int rc;

	rc = prepare_all(s, err);
	if (rc != 0)
		return rc;
	r = PQexecPrepared(s->conn, name, n, v, NULL, NULL, 0);
	rc = check(s, r, want, name, err);
	if (rc == 0 && out != NULL)
		*out = r;
	else
		PQclear(r);
	return rc;
}

/* ---- open / free ---- */

static int
op_noop(struct store *s, void *arg, struct err *err)
{
	return 0;
}

int
store_open(const struct store_options *opt, struct store **out, struct err *err)
{
	struct store *s;

	*out = NULL;
	if (opt == NULL || opt->conninfo == NULL) {
		err_set(err, "store: no database URL");
		return -1;
	}
	s = xcalloc(1, sizeof(*s));
	s->conninfo = xstrdup(opt->conninfo);
	s->appname =
	    xstrdup(opt->application_name ? opt->application_name : "bouncerd");
	s->batch_size = opt->batch_size > 0 ? opt->batch_size : 50;
	s->raw_max = opt->raw_max_bytes < 0 ? 1024 * 1024 : opt->raw_max_bytes;
	s->backoff_initial_ms =
	    opt->backoff_initial_ms > 0 ? opt->backoff_initial_ms : 200;
	s->backoff_max_ms =
	    opt->backoff_max_ms > 0 ? opt->backoff_max_ms : 30000;
	if (s->backoff_max_ms < s->backoff_initial_ms)
		s->backoff_max_ms = s->backoff_initial_ms;
	s->attempts =
	    opt->reconnect_attempts == 0 ? 10 : opt->reconnect_attempts;
	s->connect_timeout_s =
	    opt->connect_timeout_s > 0 ? opt->connect_timeout_s : 10;
	s->quarantine_after =
	    opt->quarantine_after > 0 ? opt->quarantine_after : 3;
	s->stop = opt->stop;
	if (run(s, op_noop, NULL, err) != 0) {
		store_free(&s);
		return -1;
	}
	*out = s;
	return 0;
}

void
store_free(struct store **sp)
{
	struct store *s;

	if (sp == NULL || *sp == NULL)
		return;
	s = *sp;
	drop_conn(s);
	free(s->conninfo);
	free(s->appname);
	free(s);
	*sp = NULL;
}

uint64_t
store_generation(const struct store *s)
{
	return s->generation;
}

/* ---- migrations ---- */

int
store_schema_version(void)
{
	int v = 0;
	size_t i;

	for (i = 0; i < store_migration_nsrcs; i++)
		if (store_migration_srcs[i].version > v)
			v = store_migration_srcs[i].version;
	return v;
}

struct migrate_arg {
	int applied;
	int pending;
	int dry; /* count pending only */
};

/* 1 when version is applied, 0 when not, -1/RETRY on error; a changed
 * checksum is an error. */
static int
migration_applied(struct store *s, const struct store_migration_src *m,
    struct err *err)
{
	char ver[16];
	const char *v[2];
	PGresult *r;
	int rc;

	snprintf(ver, sizeof(ver), "%d", m->version);
	v[0] = ver;
	v[1] = m->sql;
	r = PQexecParams(s->conn,
	    "SELECT checksum = md5($2) FROM schema_migrations"
	    " WHERE version = $1::integer",
	    2, NULL, v, NULL, NULL, 0);
	rc = check(s, r, PGRES_TUPLES_OK, "schema_migrations", err);
	if (rc == 0) {
		if (PQntuples(r) == 0)
			rc = 0;
		else if (strcmp(PQgetvalue(r, 0, 0), "t") == 0)
			rc = 1;
		else {
			err_set(err,
			    "migration %s was changed after it was applied",
			    m->name);
			rc = -1;
		}
	}
	PQclear(r);
	return rc;
}

static int
apply_migration(struct store *s, const struct store_migration_src *m,
    struct err *err)
{
	char ver[16];
	const char *v[3];
	PGresult *r = NULL;
	int rc;

	rc = exec_simple(s, "BEGIN", err);
	if (rc != 0)
		return rc;
	r = PQexec(s->conn, m->sql);
	rc = check(s, r, PGRES_COMMAND_OK, m->name, err);
	PQclear(r);
	if (rc == 0) {
		snprintf(ver, sizeof(ver), "%d", m->version);
		v[0] = ver;
		v[1] = m->name;
		v[2] = m->sql;
		r = PQexecParams(s->conn,
		    "INSERT INTO schema_migrations (version, name, checksum)"
		    " VALUES ($1::integer, $2, md5($3))",
		    3, NULL, v, NULL, NULL, 0);
		rc = check(s, r, PGRES_COMMAND_OK, "schema_migrations", err);
		PQclear(r);
	}
	if (rc == 0)
		rc = exec_simple(s, "COMMIT", err);
	if (rc != 0 && rc != RETRY) {
		struct err ignore;

		exec_simple(s, "ROLLBACK", &ignore);
	}
	return rc;
}

/* Counts the pending migrations without locking or creating anything. */
static int
count_pending(struct store *s, struct migrate_arg *a, struct err *err)
{
	PGresult *r;
	size_t i;
	int rc;

	r = PQexec(s->conn, "SELECT to_regclass('schema_migrations') IS NULL");
	rc = check(s, r, PGRES_TUPLES_OK, "schema_migrations", err);
	if (rc == 0 && strcmp(PQgetvalue(r, 0, 0), "t") == 0) {
		a->pending = (int)store_migration_nsrcs;
		PQclear(r);
		return 0;
	}
	PQclear(r);
	for (i = 0; rc == 0 && i < store_migration_nsrcs; i++) {
		rc = migration_applied(s, &store_migration_srcs[i], err);
		if (rc == 0)
			a->pending++;
		else if (rc == 1)
			rc = 0;
	}
	return rc;
}

static int
op_migrate(struct store *s, void *argp, struct err *err)
{
	struct migrate_arg *a = argp;
	char sql[128];
	size_t i;
	int rc;

	a->applied = 0;
	a->pending = 0;
	if (a->dry)
		return count_pending(s, a, err);
	s->prepared = 0; /* statements may refer to tables created here */
	PQclear(PQexec(s->conn, "DEALLOCATE ALL"));
	snprintf(sql, sizeof(sql), "SELECT pg_advisory_lock(%" PRId64 ")",
	    MIGRATE_LOCK_KEY);
	{
		PGresult *r = PQexec(s->conn, sql);

		rc = check(s, r, PGRES_TUPLES_OK, "migration lock", err);
		PQclear(r);
	}
	if (rc != 0)
		return rc;
	rc = exec_simple(s,
	    "CREATE TABLE IF NOT EXISTS schema_migrations ("
	    " version integer PRIMARY KEY, name text NOT NULL,"
	    " checksum text NOT NULL,"
	    " applied_at timestamptz NOT NULL DEFAULT now())",
	    err);
	if (rc == 0)
		rc = exec_simple(s,
		    "COMMENT ON TABLE schema_migrations IS 'Schema migrations "
		    "applied by bouncerd: version and name of each "
		    "schema/NNN_name.sql file, md5 of its text, and when it "
		    "was applied.'; "
		    "COMMENT ON COLUMN schema_migrations.version IS "
		    "'NNN of the file name.'; "
		    "COMMENT ON COLUMN schema_migrations.name IS "
		    "'The file name.'; "
		    "COMMENT ON COLUMN schema_migrations.checksum IS "
		    "'md5 of the file''s text: an applied file must not "
		    "change.'; "
		    "COMMENT ON COLUMN schema_migrations.applied_at IS "
		    "'When it was applied.'",
		    err);
	for (i = 0; rc == 0 && i < store_migration_nsrcs; i++) {
		const struct store_migration_src *m = &store_migration_srcs[i];

		rc = migration_applied(s, m, err);
		if (rc == 1) {
			rc = 0;
			continue;
		}
		if (rc != 0)
			break;
		a->pending++;
		rc = apply_migration(s, m, err);
		if (rc == 0)
			a->applied++;
	}
	if (rc != RETRY) {
		snprintf(sql, sizeof(sql),
		    "SELECT pg_advisory_unlock(%" PRId64 ")", MIGRATE_LOCK_KEY);
		PQclear(PQexec(s->conn, sql));
	}
	return rc;
}

int
store_migrate(struct store *s, int *applied_out, struct err *err)
{
	struct migrate_arg a = {0, 0, 0};
	int rc = run(s, op_migrate, &a, err);

	if (applied_out)
		*applied_out = a.applied;
	return rc;
}

int
store_pending_migrations(struct store *s, int *pending_out, struct err *err)
{
	struct migrate_arg a = {0, 0, 1};
	int rc = run(s, op_migrate, &a, err);

	*pending_out = a.pending;
	return rc;
}

/* ---- settings, mailboxes, locks ---- */

static int
op_settings(struct store *s, void *argp, struct err *err)
{
	const struct store_settings *st = argp;
	char a[24], b[24];
	const char *v[2] = {a, b};
	size_t i;
	int rc;

	snprintf(a, sizeof(a), "%d", st->soft_threshold);
	snprintf(b, sizeof(b), "%" PRId64, st->soft_window_s);
	rc = prepare_all(s, err);
	if (rc == 0)
		rc = exec_simple(s, "BEGIN", err);
	if (rc == 0)
		rc =
		    exec_prep(s, "settings", 2, v, PGRES_COMMAND_OK, NULL, err);
	if (rc == 0)
		rc = exec_simple(s, "DELETE FROM reason_overrides", err);
	for (i = 0; rc == 0 && i < st->noverrides; i++) {
		const struct store_override *o = &st->overrides[i];
		char cnt[24];
		const char *ov[3] = {o->reason,
		    o->never ? "never" : "hard_after", o->never ? NULL : cnt};

		snprintf(cnt, sizeof(cnt), "%d", o->hard_after);
		rc = exec_prep(s, "override", 3, ov, PGRES_COMMAND_OK, NULL,
		    err);
	}
	/* new rules: every stored suppression state is evaluated again
	 * (nothing is done when they did not change) */
	if (rc == 0)
		rc = exec_simple(s,
		    "DO $$BEGIN PERFORM suppression_rules_sync(); END$$", err);
	if (rc == 0)
		rc = exec_simple(s, "COMMIT", err);
	if (rc == -1) {
		struct err ignore;

		exec_simple(s, "ROLLBACK", &ignore);
	}
	return rc;
}

int
store_apply_settings(struct store *s, const struct store_settings *st,
    struct err *err)
{
	size_t i;

	if (st->soft_threshold < 1 || st->soft_window_s <= 0) {
		err_set(err,
		    "suppression settings: threshold must be >= 1 "
		    "and window > 0");
		return -1;
	}
	for (i = 0; i < st->noverrides; i++) {
		const struct store_override *o = &st->overrides[i];

		if (o->reason == NULL || !uidl_ok(o->reason) ||
		    (!o->never && o->hard_after < 1)) {
			err_set(err,
			    "suppression override %zu: needs a reason and "
			    "never or hard_after >= 1",
			    i + 1);
			return -1;
		}
	}
	return run(s, op_settings, (void *)st, err);
}

struct mailbox_arg {
	const char *v[3];
	int64_t id;
};

static int
op_mailbox(struct store *s, void *argp, struct err *err)
{
	struct mailbox_arg *a = argp;
	PGresult *r = NULL;
	int rc;

	rc = exec_prep(s, "mailbox", 3, a->v, PGRES_TUPLES_OK, &r, err);
	if (rc == 0) {
		struct err e2;

		if (parse_int64(PQgetvalue(r, 0, 0), 1, INT64_MAX, &a->id, &e2))
			rc = -1;
	}
	PQclear(r);
	return rc;
}

int
store_mailbox_id(struct store *s, const char *name, const char *host,
    const char *username, int64_t *id_out, struct err *err)
{
	struct mailbox_arg a;
	char *c[3] = {NULL, NULL, NULL};
	const char *in[3] = {name, host, username};
	int i, rc;

	if (name == NULL || *name == '\0') {
		err_set(err, "mailbox: empty name");
		return -1;
	}
	for (i = 0; i < 3; i++) {
		c[i] = in[i] ? store_text_clean(in[i], strlen(in[i]),
		                   STORE_TEXT_MAX, NULL)
		             : NULL;
		a.v[i] = c[i];
	}
	a.id = 0;
	rc = run(s, op_mailbox, &a, err);
	*id_out = a.id;
	for (i = 0; i < 3; i++)
		free(c[i]);
	return rc;
}

struct first_pass_arg {
	int64_t mailbox_id;
	int done; /* 1: mark done */
	int pending;
};

static int
op_first_pass(struct store *s, void *argp, struct err *err)
{
	struct first_pass_arg *a = argp;
	char mb[24];
	const char *v[1] = {mb};
	PGresult *r = NULL;
	int rc;

	snprintf(mb, sizeof(mb), "%" PRId64, a->mailbox_id);
	if (a->done)
		return exec_prep(s, "first_pass_done", 1, v, PGRES_COMMAND_OK,
		    NULL, err);
	rc = exec_prep(s, "first_pass", 1, v, PGRES_TUPLES_OK, &r, err);
	if (rc == 0 && PQntuples(r) == 0) {
		err_set(err, "first pass: no mailbox %" PRId64, a->mailbox_id);
		rc = -1;
	}
	if (rc == 0)
		a->pending = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
	PQclear(r);
	return rc;
}

int
store_mailbox_first_pass(struct store *s, int64_t mailbox_id, int *pending_out,
    struct err *err)
{
	struct first_pass_arg a = {mailbox_id, 0, 0};
	int rc = run(s, op_first_pass, &a, err);

	*pending_out = rc == 0 && a.pending;
	return rc;
}

int
store_mailbox_first_pass_done(struct store *s, int64_t mailbox_id,
    struct err *err)
{
	struct first_pass_arg a = {mailbox_id, 1, 0};

	return run(s, op_first_pass, &a, err);
}

struct lock_arg {
	const char *fn;
	int64_t mailbox_id;
	int result;
};

static int
op_lock(struct store *s, void *argp, struct err *err)
{
	struct lock_arg *a = argp;
	char cls[16], obj[24];
	const char *v[2] = {cls, obj};
	PGresult *r = NULL;
	int rc;

	snprintf(cls, sizeof(cls), "%d", MAILBOX_LOCK_CLASS);
	/* the two-key form takes int4: fold larger ids */
	snprintf(obj, sizeof(obj), "%" PRId32,
	    (int32_t)(uint32_t)(a->mailbox_id ^ (a->mailbox_id >> 32)));
	rc = exec_prep(s, a->fn, 2, v, PGRES_TUPLES_OK, &r, err);
	if (rc == 0)
		a->result = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
	PQclear(r);
	return rc;
}

int
store_mailbox_trylock(struct store *s, int64_t mailbox_id, int *locked_out,
    struct err *err)
{
	struct lock_arg a = {"trylock", mailbox_id, 0};
	int rc = run(s, op_lock, &a, err);

	*locked_out = rc == 0 && a.result;
	return rc;
}

int
store_mailbox_unlock(struct store *s, int64_t mailbox_id, struct err *err)
{
	struct lock_arg a = {"unlock", mailbox_id, 0};

	/* A lost connection released the lock already: nothing to retry. */
	if (s->conn == NULL || PQstatus(s->conn) != CONNECTION_OK)
		return 0;
	if (op_lock(s, &a, err) == RETRY) {
		drop_conn(s);
		return 0;
	}
	return 0;
}

/* ---- ledger queries ---- */

struct uidl_ent {
	const char *uidl;
	size_t i; /* input index */
};

struct uidl_arg {
	int64_t mailbox_id;
	const char *array;
	const struct uidl_ent *ents; /* sorted by UIDL (bytes), then i */
	size_t nents;
	struct store_uidl_info *info;
};

static int
uidl_ent_cmp(const void *a, const void *b)
{
	const struct uidl_ent *x = a, *y = b;
	int c = strcmp(x->uidl, y->uidl);

	if (c != 0)
		return c;
	return (x->i > y->i) - (x->i < y->i);
}

/* Index of the first entry whose UIDL is u, or nents when none. */
static size_t
uidl_ent_find(const struct uidl_ent *e, size_t nents, const char *u)
{
	size_t lo = 0, hi = nents;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (strcmp(e[mid].uidl, u) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < nents && strcmp(e[lo].uidl, u) == 0 ? lo : nents;
}

static int
op_uidl_states(struct store *s, void *argp, struct err *err)
{
	struct uidl_arg *a = argp;
	char mb[24];
	const char *v[2] = {mb, a->array};
	PGresult *r = NULL;
	int rc, i, n;

	snprintf(mb, sizeof(mb), "%" PRId64, a->mailbox_id);
	rc = exec_prep(s, "uidl_states", 2, v, PGRES_TUPLES_OK, &r, err);
	if (rc != 0)
		return rc;
	n = PQntuples(r);
	for (i = 0; i < n; i++) {
		struct store_uidl_info in;
		int64_t t = 0, f = 0;
		const char *outcome;
		size_t j;

		memset(&in, 0, sizeof(in));
		parse_int64(PQgetvalue(r, i, 2), INT64_MIN, INT64_MAX, &t,
		    NULL);
		parse_int64(PQgetvalue(r, i, 4), 0, INT32_MAX, &f, NULL);
		in.fetched_at = t;
		in.deleted = strcmp(PQgetvalue(r, i, 3), "t") == 0;
		in.failures = (int)f;
		outcome = PQgetisnull(r, i, 1) ? "" : PQgetvalue(r, i, 1);
		if (strcmp(outcome, "recorded") == 0)
			in.state = STORE_UIDL_RECORDED;
		else if (strcmp(outcome, "quarantined") == 0)
			in.state = STORE_UIDL_QUARANTINED;
		else
			in.state = STORE_UIDL_NEW;
		/* every position of this UIDL in the list (a server may
		 * list one twice) */
		for (j = uidl_ent_find(a->ents, a->nents, PQgetvalue(r, i, 0));
		     j < a->nents &&
		     strcmp(a->ents[j].uidl, PQgetvalue(r, i, 0)) == 0;
		     j++)
			a->info[a->ents[j].i] = in;
	}
	PQclear(r);
	return 0;
}

int
store_uidl_states(struct store *s, int64_t mailbox_id, const char *const *uidls,
    size_t n, struct store_uidl_info *info_out, struct err *err)
{
	struct uidl_arg a;
	struct uidl_ent *ents;
	struct buf arr;
	size_t i, k = 0;
	int rc;

	ents = xcalloc(n ? n : 1, sizeof(*ents));
	for (i = 0; i < n; i++) {
		memset(&info_out[i], 0, sizeof(info_out[i]));
		/* a UIDL the ledger cannot hold is never fetched */
		if (!uidl_ok(uidls[i])) {
			info_out[i].state = STORE_UIDL_QUARANTINED;
			continue;
		}
		info_out[i].state = STORE_UIDL_NEW;
		ents[k].uidl = uidls[i];
		ents[k].i = i;
		k++;
	}
	qsort(ents, k, sizeof(*ents), uidl_ent_cmp);
	buf_init(&arr, BIG_BUF);
	buf_append(&arr, "{", 1);
	for (i = 0; i < k; i++)
		if (i == 0 || strcmp(ents[i].uidl, ents[i - 1].uidl) != 0)
			array_elem(&arr, ents[i].uidl);
	buf_append(&arr, "}", 1);
	a.mailbox_id = mailbox_id;
	a.array = buf_cstr(&arr);
	a.ents = ents;
	a.nents = k;
	a.info = info_out;
	rc = k == 0 ? 0 : run(s, op_uidl_states, &a, err);
	free(ents);
	buf_free(&arr);
	return rc;
}

/* ---- recording ---- */

enum {
	P_MAILBOX,
	P_UIDL,
	P_KIND,
	P_MSGID,
	P_SUBJECT,
	P_RMTA,
	P_REPORTED,
	P_SIZE,
	P_TRUNC,
	P_RAW,
	P_RAWTRUNC,
	P_REPAIRED,
	P_BOUNCES,
	NPARAM
};

struct rec {
	char *val[NPARAM]; /* owned, except val[P_RAW] (borrowed) */
	int len[NPARAM];
	int fmt[NPARAM];
	int invalid; /* cannot be sent at all */
	char why[128];
};

struct repaired {
	const char *names[32];
	size_t n;
};

static void
note_repair(struct repaired *rp, const char *name)
{
	size_t i;

	for (i = 0; i < rp->n; i++)
		if (strcmp(rp->names[i], name) == 0)
			return;
	if (rp->n < sizeof(rp->names) / sizeof(rp->names[0]))
		rp->names[rp->n++] = name;
}

/* Cleans a text field; NULL stays NULL, "" becomes NULL. */
static char *
field(const char *s, size_t max, const char *name, struct repaired *rp)
{
	char *c;
	int rep = 0;

	if (s == NULL || *s == '\0')
		return NULL;
	c = store_text_clean(s, strlen(s), max, &rep);
	if (rep)
		note_repair(rp, name);
	if (*c == '\0') {
		free(c);
		return NULL;
	}
	return c;
}

static void
json_field(struct buf *b, const char *key, const char *s, size_t max,
    struct repaired *rp)
{
	char *c = field(s, max, key, rp);

	buf_printf(b, ",\"%s\":", key);
	json_str(b, c);
	free(c);
}

static void
ascii_lower_s(char *s)
{
	if (s != NULL)
		ascii_lower(s);
}

/* A unix time usable as a bounce date: 0 when unknown or implausible
 * (before 1970 or more than a day ahead). */
static int64_t
sane_time(int64_t t)
{
	int64_t now = now_unix();

	if (t <= 0 || t > now + 86400)
		return 0;
	return t;
}

static void
bounce_json(struct buf *b, const struct store_message *m,
    const struct store_bounce *x, struct repaired *rp)
{
	char *rcpt, *action, *domain = NULL, *at;
	const char *why = NULL;
	int64_t when;
	size_t i;

	rcpt = field(x->recipient, STORE_TEXT_MAX, "recipient", rp);
	ascii_lower_s(rcpt);
	if (rcpt != NULL && (at = strrchr(rcpt, '@')) != NULL && at[1] != '\0')
		domain = at + 1;
	buf_append_str(b, "{\"recipient\":");
	json_str(b, rcpt);
	buf_append_str(b, ",\"recipient_domain\":");
	json_str(b, domain);
	free(rcpt);
	json_field(b, "recipient_source", x->recipient_source, STORE_TEXT_MAX,
	    rp);
	json_field(b, "final_recipient", x->final_recipient, STORE_TEXT_MAX,
	    rp);
	json_field(b, "original_recipient", x->original_recipient,
	    STORE_TEXT_MAX, rp);
	buf_append_str(b, ",\"class\":");
	json_str(b, record_class_name(x->cls));
	json_field(b, "reason", x->reason ? x->reason : "undefined",
	    STORE_TEXT_MAX, rp);
	action = field(x->action, STORE_TEXT_MAX, "action", rp);
	if (action == NULL && m->kind == RECORD_KIND_DELAYED)
		action = xstrdup("delayed");
	ascii_lower_s(action);
	buf_append_str(b, ",\"action\":");
	json_str(b, action);
	free(action);
	json_field(b, "status", x->status, STORE_TEXT_MAX, rp);
	if (x->reply_code > 0 && x->reply_code < 1000)
		buf_printf(b, ",\"reply_code\":%d", x->reply_code);
	json_field(b, "diagnostic", x->diagnostic, STORE_DIAGNOSTIC_MAX, rp);
	json_field(b, "remote_mta", x->remote_mta, STORE_TEXT_MAX, rp);
	json_field(b, "reporting_mta", m->reporting_mta, STORE_TEXT_MAX, rp);
	json_field(b, "feedback_type", x->feedback_type, STORE_TEXT_MAX, rp);
	json_field(b, "original_message_id", x->original_message_id,
	    STORE_TEXT_MAX, rp);
	json_field(b, "campaign_id", x->campaign_id, STORE_TEXT_MAX, rp);
	json_field(b, "list_id", x->list_id, STORE_TEXT_MAX, rp);
	json_field(b, "subscriber_id", x->subscriber_id, STORE_TEXT_MAX, rp);
	buf_append_str(b, ",\"original_headers\":{");
	for (i = 0; i < x->nheaders; i++) {
		char *k = field(x->header_names[i], STORE_TEXT_MAX,
		    "original_headers", rp);
		char *v = field(x->header_values ? x->header_values[i] : NULL,
		    STORE_TEXT_MAX, "original_headers", rp);

		if (k != NULL) {
			if (b->data[b->len - 1] != '{')
				buf_append(b, ",", 1);
			json_str(b, k);
			buf_append(b, ":", 1);
			json_str(b, v ? v : "");
		}
		free(k);
		free(v);
	}
	buf_append_str(b, "}");
	when = sane_time(x->bounced_at);
	if (when == 0)
		when = sane_time(m->reported_at);
	if (x->not_counted)
		why = x->not_counted_because ? x->not_counted_because
		                             : "not_counted";
	else if (m->record_only)
		why = "first_pass";
	else if (m->max_age_s > 0 && when != 0 &&
	    when < now_unix() - m->max_age_s)
		why = "max_age";
	buf_printf(b, ",\"counts\":%s", why ? "false" : "true");
	json_field(b, "not_counted_because", why, STORE_TEXT_MAX, rp);
	json_field(b, "rule", x->rule, STORE_TEXT_MAX, rp);
	if (when != 0)
		buf_printf(b, ",\"bounced_at\":%" PRId64, when);
	buf_append_str(b, "}");
}

static char *
int_str(int64_t v)
{
	return xasprintf("%" PRId64, v);
}

static void
rec_build(struct store *s, const struct store_message *m, struct rec *r)
{
	struct repaired rp = {.n = 0};
	struct buf js, arr;
	size_t i;
	int64_t rep;

	memset(r, 0, sizeof(*r));
	if (!uidl_ok(m->uidl)) {
		r->invalid = 1;
		snprintf(r->why, sizeof(r->why),
		    "UIDL is empty, too long or not UTF-8");
		return;
	}
	r->val[P_MAILBOX] = int_str(m->mailbox_id);
	r->val[P_UIDL] = xstrdup(m->uidl);
	r->val[P_KIND] = xstrdup(record_kind_name(m->kind));
	r->val[P_MSGID] =
	    field(m->email_message_id, STORE_TEXT_MAX, "email_message_id", &rp);
	r->val[P_SUBJECT] = field(m->subject, STORE_TEXT_MAX, "subject", &rp);
	r->val[P_RMTA] =
	    field(m->reporting_mta, STORE_TEXT_MAX, "reporting_mta", &rp);
	rep = sane_time(m->reported_at);
	r->val[P_REPORTED] = rep ? int_str(rep) : NULL;
	r->val[P_SIZE] = m->size >= 0 ? int_str(m->size) : NULL;
	r->val[P_TRUNC] = xstrdup(m->truncated ? "t" : "f");
	/* a message that is not a bounce is kept whole (as fetched, up to
	 * max_message_bytes): deleting it from the server must lose nothing;
	 * database.raw_max_bytes caps the raw bytes of reports only */
	if (m->raw != NULL &&
	    (s->raw_max > 0 || m->kind == RECORD_KIND_UNKNOWN)) {
		size_t keep = m->raw_len;

		if (m->kind != RECORD_KIND_UNKNOWN &&
		    (int64_t)keep > s->raw_max)
			keep = (size_t)s->raw_max;
		if (keep > INT32_MAX)
			keep = INT32_MAX;
		r->val[P_RAW] = (char *)m->raw;
		r->len[P_RAW] = (int)keep;
		r->fmt[P_RAW] = 1;
		r->val[P_RAWTRUNC] = xstrdup(keep < m->raw_len ? "t" : "f");
	} else
		r->val[P_RAWTRUNC] = xstrdup("f");
	buf_init(&js, BIG_BUF);
	buf_append(&js, "[", 1);
	for (i = 0; i < m->nbounces; i++) {
		if (i > 0)
			buf_append(&js, ",", 1);
		bounce_json(&js, m, &m->bounces[i], &rp);
	}
	buf_append(&js, "]", 1);
	r->val[P_BOUNCES] = xstrdup(buf_cstr(&js));
	buf_free(&js);
	if (rp.n > 0) {
		buf_init(&arr, BIG_BUF);
		buf_append(&arr, "{", 1);
		for (i = 0; i < rp.n; i++)
			array_elem(&arr, rp.names[i]);
		buf_append(&arr, "}", 1);
		r->val[P_REPAIRED] = xstrdup(buf_cstr(&arr));
		buf_free(&arr);
	}
}

static void
rec_free(struct rec *r)
{
	int i;

	for (i = 0; i < NPARAM; i++)
		if (i != P_RAW)
			free(r->val[i]);
	memset(r, 0, sizeof(*r));
}

struct batch_arg {
	const struct store_message *msgs;
	struct rec *recs;
	size_t n;
	enum store_result *results;
	int refused;
};

static void
set_result(enum store_result *slot, enum store_result v)
{
	/* a retry after an unconfirmed COMMIT sees its own rows again */
	if (*slot == STORE_WRITTEN && v == STORE_REPLAYED)
		return;
	*slot = v;
}

/* Appends a JSON value: a number written by int_str(), or null. */
static void
json_num(struct buf *b, const char *key, const char *v)
{
	buf_printf(b, ",\"%s\":", key);
	buf_append_str(b, v != NULL ? v : "null");
}

static void
put_be32(struct buf *b, uint32_t v)
{
	unsigned char c[4] = {(unsigned char)(v >> 24),
	    (unsigned char)(v >> 16), (unsigned char)(v >> 8),
	    (unsigned char)v};

	buf_append(b, c, 4);
}

/* The parameters of record_batch for recs idx[0..k): the messages as one
 * JSON array into js, their raw bytes as a bytea[] in PostgreSQL's binary
 * array format into raw. */
static void
batch_params(const struct batch_arg *a, const size_t *idx, size_t k,
    struct buf *js, struct buf *raw)
{
	size_t i;
	int nulls = 0;

	for (i = 0; i < k; i++)
		if (a->recs[idx[i]].val[P_RAW] == NULL)
			nulls = 1;
	put_be32(raw, 1); /* dimensions */
	put_be32(raw, (uint32_t)nulls);
	put_be32(raw, 17); /* element type: bytea */
	put_be32(raw, (uint32_t)k);
	put_be32(raw, 1); /* lower bound */
	buf_append(js, "[", 1);
	for (i = 0; i < k; i++) {
		const struct rec *r = &a->recs[idx[i]];

		if (r->val[P_RAW] == NULL)
			put_be32(raw, UINT32_MAX); /* -1: NULL */
		else {
			put_be32(raw, (uint32_t)r->len[P_RAW]);
			buf_append(raw, r->val[P_RAW], (size_t)r->len[P_RAW]);
		}
		buf_printf(js, "%s{\"i\":%zu", i > 0 ? "," : "", i + 1);
		json_num(js, "mailbox_id", r->val[P_MAILBOX]);
		buf_append_str(js, ",\"uidl\":");
		json_str(js, r->val[P_UIDL]);
		buf_append_str(js, ",\"kind\":");
		json_str(js, r->val[P_KIND]);
		buf_append_str(js, ",\"email_message_id\":");
		json_str(js, r->val[P_MSGID]);
		buf_append_str(js, ",\"subject\":");
		json_str(js, r->val[P_SUBJECT]);
		buf_append_str(js, ",\"reporting_mta\":");
		json_str(js, r->val[P_RMTA]);
		json_num(js, "reported_at", r->val[P_REPORTED]);
		json_num(js, "size_bytes", r->val[P_SIZE]);
		buf_printf(js, ",\"truncated\":%s,\"raw_truncated\":%s",
		    r->val[P_TRUNC][0] == 't' ? "true" : "false",
		    r->val[P_RAWTRUNC][0] == 't' ? "true" : "false");
		buf_append_str(js, ",\"repaired\":");
		json_str(js, r->val[P_REPAIRED]);
		buf_append_str(js, ",\"bounces\":");
		buf_append_str(js, r->val[P_BOUNCES]);
		buf_append(js, "}", 1);
	}
	buf_append(js, "]", 1);
}

/* Records idx[0..k) with one statement (one transaction).  0: all results
 * set; -1: the database refused something (nothing written, err set);
 * RETRY: connection lost. */
static int
send_batch(struct store *s, struct batch_arg *a, const size_t *idx, size_t k,
    struct err *err)
{
	struct buf js, raw;
	const char *v[2];
	int len[2], fmt[2] = {0, 1};
	PGresult *r = NULL;
	unsigned char *written = NULL;
	size_t i;
	int rc;

	buf_init(&js, BIG_BUF);
	buf_init(&raw, BIG_BUF);
	batch_params(a, idx, k, &js, &raw);
	v[0] = buf_cstr(&js);
	len[0] = 0;
	v[1] = raw.data;
	len[1] = raw.len > INT32_MAX ? INT32_MAX : (int)raw.len;
	r = PQexecPrepared(s->conn, "record_batch", 2, v, len, fmt, 0);
	rc = check(s, r, PGRES_TUPLES_OK, "record", err);
	if (rc != 0)
		goto out;
	written = xcalloc(k, 1);
	for (int t = 0; t < PQntuples(r); t++) {
		long n = strtol(PQgetvalue(r, t, 0), NULL, 10);

		if (n >= 1 && (size_t)n <= k)
			written[n - 1] = 1;
	}
	for (i = 0; i < k; i++)
		set_result(&a->results[idx[i]],
		    written[i] ? STORE_WRITTEN : STORE_REPLAYED);
out:
	free(written);
	PQclear(r);
	buf_free(&js);
	buf_free(&raw);
	return rc;
}

static int
op_record_batch(struct store *s, void *argp, struct err *err)
{
	struct batch_arg *a = argp;
	size_t *idx, i, k = 0;
	int rc;

	rc = prepare_all(s, err);
	if (rc != 0)
		return rc;
	idx = xcalloc(a->n ? a->n : 1, sizeof(*idx));
	for (i = 0; i < a->n; i++)
		if (a->results[i] == STORE_PENDING)
			idx[k++] = i;
	rc = k ? send_batch(s, a, idx, k, err) : 0;
	if (rc == -1) {
		/* refused: find the culprit, one message per transaction */
		struct err e1;

		rc = 0;
		for (i = 0; i < k && rc == 0; i++) {
			int r1;

			if (a->results[idx[i]] != STORE_PENDING)
				continue;
			r1 = send_batch(s, a, &idx[i], 1, &e1);
			if (r1 == -1) {
				a->results[idx[i]] = STORE_REFUSED;
				a->refused++;
				*err = e1;
			} else
				rc = r1;
		}
	}
	free(idx);
	return rc;
}

int
store_record_batch(struct store *s, const struct store_message *msgs, size_t n,
    enum store_result *results_out, struct err *err)
{
	struct batch_arg a;
	size_t start, i;
	int rc = 0;

	for (i = 0; i < n; i++)
		results_out[i] = STORE_PENDING;
	for (start = 0; start < n && rc == 0; start += (size_t)s->batch_size) {
		size_t cnt = n - start;

		if (cnt > (size_t)s->batch_size)
			cnt = (size_t)s->batch_size;
		a.msgs = msgs + start;
		a.n = cnt;
		a.results = results_out + start;
		a.refused = 0;
		a.recs = xcalloc(cnt, sizeof(*a.recs));
		for (i = 0; i < cnt; i++) {
			rec_build(s, &a.msgs[i], &a.recs[i]);
			if (a.recs[i].invalid) {
				a.results[i] = STORE_REFUSED;
				err_set(err, "%s", a.recs[i].why);
			}
		}
		rc = run(s, op_record_batch, &a, err);
		for (i = 0; i < cnt; i++)
			rec_free(&a.recs[i]);
		free(a.recs);
	}
	return rc;
}

int
store_record(struct store *s, const struct store_message *m,
    enum store_result *result_out, struct err *err)
{
	return store_record_batch(s, m, 1, result_out, err);
}

struct failure_arg {
	const char *v[9];
	int lens[9];
	int fmts[9];
	int quarantined;
};

static int
op_failure(struct store *s, void *argp, struct err *err)
{
	struct failure_arg *a = argp;
	PGresult *r;
	int rc;

	rc = prepare_all(s, err);
	if (rc != 0)
		return rc;
	r = PQexecPrepared(s->conn, "record_failure", 9, a->v, a->lens, a->fmts,
	    0);
	rc = check(s, r, PGRES_TUPLES_OK, "record_failure", err);
	if (rc == 0 && PQntuples(r) > 0)
		a->quarantined =
		    strcmp(PQgetvalue(r, 0, 0), "quarantined") == 0;
	PQclear(r);
	if (rc == 0 && a->quarantined == -1) {
		/* already recorded or quarantined: say which */
		rc = exec_prep(s, "outcome", 2, a->v, PGRES_TUPLES_OK, &r, err);
		if (rc == 0) {
			a->quarantined = PQntuples(r) > 0 &&
			    strcmp(PQgetvalue(r, 0, 0), "quarantined") == 0;
			PQclear(r);
		}
	}
	return rc;
}

int
store_record_failure(struct store *s, const struct store_failure *f,
    int *quarantined_out, struct err *err)
{
	struct failure_arg a;
	static uint64_t failure_reports;
	char *mb = NULL, *size = NULL, *q = NULL, *error = NULL;
	char *attempt = NULL;
	size_t keep = 0;
	int rc;

	if (quarantined_out)
		*quarantined_out = 0;
	if (!uidl_ok(f->uidl)) {
		err_set(err,
		    "record_failure: UIDL is empty, too long or not "
		    "UTF-8");
		return -1;
	}
	memset(&a, 0, sizeof(a));
	mb = int_str(f->mailbox_id);
	size = f->size >= 0 ? int_str(f->size) : NULL;
	q = xasprintf("%d", s->quarantine_after);
	error = f->error ? store_text_clean(f->error, strlen(f->error),
	                       STORE_DIAGNOSTIC_MAX, NULL)
	                 : xstrdup("failed");
	a.v[0] = mb;
	a.v[1] = f->uidl;
	a.v[2] = error;
	a.v[3] = size;
	a.v[4] = f->truncated ? "t" : "f";
	if (f->raw != NULL && s->raw_max > 0) {
		keep = f->raw_len;
		if ((int64_t)keep > s->raw_max)
			keep = (size_t)s->raw_max;
		if (keep > INT32_MAX)
			keep = INT32_MAX;
		a.v[5] = f->raw;
		a.lens[5] = (int)keep;
		a.fmts[5] = 1;
	}
	a.v[6] = q;
	a.v[7] = f->raw != NULL && keep < f->raw_len ? "t" : "f";
	/* unique per report: the same report retried is recognised */
	attempt = xasprintf("%d.%" PRId64 ".%" PRIu64, (int)getpid(), now_ms(),
	    __atomic_add_fetch(&failure_reports, 1, __ATOMIC_RELAXED));
	a.v[8] = attempt;
	a.quarantined = -1;
	rc = run(s, op_failure, &a, err);
	if (rc == 0 && quarantined_out)
		*quarantined_out = a.quarantined == 1;
	free(mb);
	free(size);
	free(q);
	free(error);
	free(attempt);
	return rc;
}

struct list_arg {
	const char *stmt;
	int64_t mailbox_id;
	const char *array;
	int64_t raw_keep_s;
	int64_t changed;
};

static int
op_mark_deleted(struct store *s, void *argp, struct err *err)
{
	struct list_arg *a = argp;
	char mb[24];
	const char *v[2] = {mb, a->array};
	PGresult *r = NULL;
	int rc;

	snprintf(mb, sizeof(mb), "%" PRId64, a->mailbox_id);
	rc = exec_prep(s, "mark_deleted", 2, v, PGRES_COMMAND_OK, &r, err);
	if (rc == 0)
		parse_int64(PQcmdTuples(r), 0, INT64_MAX, &a->changed, NULL);
	PQclear(r);
	return rc;
}

/* Builds an array literal of the valid UIDLs. */
static void
uidl_array(struct buf *b, const char *const *uidls, size_t n)
{
	size_t i;

	buf_init(b, BIG_BUF);
	buf_append(b, "{", 1);
	for (i = 0; i < n; i++)
		if (uidl_ok(uidls[i]))
			array_elem(b, uidls[i]);
	buf_append(b, "}", 1);
}

int
store_mark_deleted(struct store *s, int64_t mailbox_id,
    const char *const *uidls, size_t n, struct err *err)
{
	struct list_arg a = {"mark_deleted", mailbox_id, NULL, 0, 0};
	struct buf arr;
	int rc;

	if (n == 0)
		return 0;
	uidl_array(&arr, uidls, n);
	a.array = buf_cstr(&arr);
	rc = run(s, op_mark_deleted, &a, err);
	buf_free(&arr);
	return rc;
}

/* The marks of an attempt in progress (messages.error while it runs). */
#define MARK_BATCH "interrupted while being decoded or stored"
#define MARK_ALONE "interrupted while being decoded or stored alone"
#define MARK_QUARANTINED \
	"quarantined: the process ended while decoding or storing it, on " \
	"several passes"

struct trying_arg {
	int64_t mailbox_id;
	const char *array;
	const char *const *uidls;
	size_t n;
	int *suspect;
};

static int
op_mark_trying(struct store *s, void *argp, struct err *err)
{
	struct trying_arg *a = argp;
	char mb[24];
	const char *v[4] = {mb, a->array, MARK_BATCH, MARK_ALONE};
	PGresult *r = NULL;
	int rc;

	snprintf(mb, sizeof(mb), "%" PRId64, a->mailbox_id);
	rc = exec_prep(s, "mark_trying", 4, v, PGRES_TUPLES_OK, &r, err);
	for (size_t i = 0; i < a->n; i++)
		a->suspect[i] = 0;
	for (int row = 0; rc == 0 && row < PQntuples(r); row++) {
		const char *u = PQgetvalue(r, row, 0);

		for (size_t i = 0; i < a->n; i++)
			if (strcmp(a->uidls[i], u) == 0)
				a->suspect[i] =
				    PQgetvalue(r, row, 1)[0] == 't' ? 2 : 1;
	}
	PQclear(r);
	return rc;
}

int
store_mark_trying(struct store *s, int64_t mailbox_id, const char *const *uidls,
    size_t n, int *suspect, struct err *err)
{
	struct trying_arg a = {mailbox_id, NULL, uidls, n, suspect};
	struct buf arr;
	int rc;

	if (n == 0)
		return 0;
	uidl_array(&arr, uidls, n);
	a.array = buf_cstr(&arr);
	rc = run(s, op_mark_trying, &a, err);
	buf_free(&arr);
	return rc;
}

struct alone_arg {
	const char *v[5];
	int quarantined;
};

static int
op_mark_alone(struct store *s, void *argp, struct err *err)
{
	struct alone_arg *a = argp;
	PGresult *r = NULL;
	int rc;

	rc = exec_prep(s, "mark_alone", 5, a->v, PGRES_TUPLES_OK, &r, err);
	a->quarantined = rc == 0 && PQntuples(r) > 0 &&
	    strcmp(PQgetvalue(r, 0, 0), "quarantined") == 0;
	PQclear(r);
	return rc;
}

int
store_mark_alone(struct store *s, int64_t mailbox_id, const char *uidl,
    int *quarantined_out, struct err *err)
{
	struct alone_arg a = {{0}, 0};
	char mb[24], q[16];
	int rc;

	*quarantined_out = 0;
	if (!uidl_ok(uidl)) {
		err_set(err,
		    "mark_alone: UIDL is empty, too long or not UTF-8");
		return -1;
	}
	snprintf(mb, sizeof(mb), "%" PRId64, mailbox_id);
	snprintf(q, sizeof(q), "%d", s->quarantine_after);
	a.v[0] = mb;
	a.v[1] = uidl;
	a.v[2] = MARK_QUARANTINED;
	a.v[3] = MARK_ALONE;
	a.v[4] = q;
	rc = run(s, op_mark_alone, &a, err);
	if (rc == 0)
		*quarantined_out = a.quarantined;
	return rc;
}

static int
op_prune(struct store *s, void *argp, struct err *err)
{
	struct list_arg *a = argp;
	char mb[24], keep[24];
	const char *v[2] = {mb, a->array};
	const char *v2[2] = {mb, keep};
	PGresult *r = NULL;
	int64_t n1 = 0, n2 = 0;
	int rc;

	snprintf(mb, sizeof(mb), "%" PRId64, a->mailbox_id);
	snprintf(keep, sizeof(keep), "%" PRId64, a->raw_keep_s);
	rc = prepare_all(s, err);
	if (rc == 0)
		rc = exec_simple(s, "BEGIN", err);
	if (rc == 0 && a->array != NULL)
		rc =
		    exec_prep(s, "prune_gone", 2, v, PGRES_COMMAND_OK, &r, err);
	if (rc == 0) {
		if (r != NULL)
			parse_int64(PQcmdTuples(r), 0, INT64_MAX, &n1, NULL);
		PQclear(r);
		r = NULL;
		if (a->raw_keep_s >= 0) {
			rc = exec_prep(s, "prune_raw", 2, v2, PGRES_COMMAND_OK,
			    &r, err);
			if (rc == 0)
				parse_int64(PQcmdTuples(r), 0, INT64_MAX, &n2,
				    NULL);
			PQclear(r);
		}
	}
	if (rc == 0)
		rc = exec_simple(s, "COMMIT", err);
	if (rc == -1) {
		struct err ignore;

		exec_simple(s, "ROLLBACK", &ignore);
	}
	a->changed = n1 + n2;
	return rc;
}

int
store_prune(struct store *s, int64_t mailbox_id, const char *const *present,
    size_t n, int64_t raw_keep_s, int64_t *pruned_out, struct err *err)
{
	struct list_arg a = {"prune", mailbox_id, NULL, raw_keep_s, 0};
	struct buf arr;
	int rc;

	uidl_array(&arr, present, n);
	a.array = present != NULL ? buf_cstr(&arr) : NULL;
	rc = run(s, op_prune, &a, err);
	if (pruned_out)
		*pruned_out = rc == 0 ? a.changed : 0;
	buf_free(&arr);
	return rc;
}

/* ---- retention ---- */

struct retention_arg {
	int64_t bounces_keep_s;
	int64_t ledger_keep_s;
	struct store_retention_result res;
};

/* Runs a one-value query (one optional text parameter); *out gets the
 * value. */
static int
query_int(struct store *s, const char *what, const char *sql, const char *param,
    int64_t *out, struct err *err)
{
	const char *v[1] = {param};
	PGresult *r =
	    PQexecParams(s->conn, sql, param ? 1 : 0, NULL, v, NULL, NULL, 0);
	int rc = check(s, r, PGRES_TUPLES_OK, what, err);

	*out = 0;
	if (rc == 0 && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0))
		parse_int64(PQgetvalue(r, 0, 0), INT64_MIN, INT64_MAX, out,
		    NULL);
	PQclear(r);
	return rc;
}

static int
op_retention(struct store *s, void *argp, struct err *err)
{
	struct retention_arg *a = argp;
	char keep[24];
	int64_t n = 0;
	int rc;

	/* each statement is its own transaction, and each can be run
	 * again after a lost connection: what was done is not redone */
	rc = query_int(s, "bounce_partitions_ensure",
	    "SELECT bounce_partitions_ensure(1)", NULL, &n, err);
	if (rc != 0)
		return rc;
	a->res.partitions += n;
	/* the rules read what is older than soft_window's month as sums:
	 * moved on a month when due */
	rc = query_int(s, "suppression_fold_history",
	    "SELECT suppression_fold_history()", NULL, &n, err);
	if (rc != 0)
		return rc;
	if (a->bounces_keep_s > 0) {
		snprintf(keep, sizeof(keep), "%" PRId64, a->bounces_keep_s);
		rc = query_int(s, "bounce_history_expire",
		    "SELECT bounce_history_expire("
		    "make_interval(secs => $1::bigint))",
		    keep, &n, err);
		if (rc != 0)
			return rc;
		a->res.bounces += n;
	}
	if (a->ledger_keep_s > 0) {
		snprintf(keep, sizeof(keep), "%" PRId64, a->ledger_keep_s);
		/* in chunks, so that no transaction holds many row locks */
		do {
			rc = query_int(s, "ledger_expire",
			    "SELECT ledger_expire("
			    "make_interval(secs => $1::bigint), 10000)",
			    keep, &n, err);
			if (rc != 0)
				return rc;
			a->res.ledger += n;
		} while (n >= 10000 && !stopped(s));
	}
	return 0;
}

int
store_apply_retention(struct store *s, int64_t bounces_keep_s,
    int64_t ledger_keep_s, struct store_retention_result *out, struct err *err)
{
	struct retention_arg a;
	int rc;

	memset(&a, 0, sizeof(a));
	a.bounces_keep_s = bounces_keep_s;
	a.ledger_keep_s = ledger_keep_s;
	rc = run(s, op_retention, &a, err);
	if (out)
		*out = a.res;
	return rc;
}

struct expire_arg {
	int64_t evaluated;
};

static int
op_expire(struct store *s, void *argp, struct err *err)
{
	struct expire_arg *a = argp;
	PGresult *r = NULL;
	int64_t n = 0;
	int rc;

	/* one transaction per chunk: the row locks and the feed's counter
	 * are held only briefly against concurrent recording */
	do {
		r = PQexec(s->conn, "SELECT suppression_state_expire(1000)");
		rc = check(s, r, PGRES_TUPLES_OK, "suppression_state_expire",
		    err);
		n = 0;
		if (rc == 0)
			parse_int64(PQgetvalue(r, 0, 0), 0, INT64_MAX, &n,
			    NULL);
		PQclear(r);
		a->evaluated += n;
	} while (rc == 0 && n >= 1000);
	return rc;
}

int
store_suppression_expire(struct store *s, int64_t *evaluated_out,
    struct err *err)
{
	struct expire_arg a = {0};
	int rc = run(s, op_expire, &a, err);

	if (evaluated_out)
		*evaluated_out = a.evaluated;
	return rc;
}
