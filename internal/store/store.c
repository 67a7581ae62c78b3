/*
 * store.c - PostgreSQL storage through libpq: the connection and the
 * reconnect policy, text repair, and migrations.  Every operation (here and
 * in store_ledger.c, store_record.c, store_suppress.c) runs through
 * store_run(), which (re)connects with capped exponential backoff and runs
 * the whole operation again when the connection was lost, so an
 * interrupted transaction leaves nothing behind and is simply done again.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "base/buf.h"
#include "store/schema_sql.h"
#include "store/store_int.h"

/* Advisory lock key of migrations: 'boun' 'cerd' in ASCII. */
#define MIGRATE_LOCK_KEY INT64_C(0x626f756e63657264)

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

/* Appends s as an element of a PostgreSQL array literal. */
void
store_array_elem(struct buf *b, const char *s)
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
int
store_uidl_ok(const char *s)
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

int
store_stopped(const struct store *s)
{
	return s->stop != NULL && *s->stop;
}

static void
sleep_ms(const struct store *s, int64_t ms)
{
	while (ms > 0 && !store_stopped(s)) {
		int64_t step = ms < 50 ? ms : 50;
		struct timespec ts = {.tv_sec = 0,
		    .tv_nsec = (long)(step * 1000000)};

		while (nanosleep(&ts, &ts) == -1 && errno == EINTR &&
		    !store_stopped(s))
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
	if (*m == '\0' && r != NULL) /* no error: an unexpected kind of reply */
		m = PQresStatus(PQresultStatus(r));
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

void
store_drop_conn(struct store *s)
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

	store_drop_conn(s);
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
		store_drop_conn(s);
		return -1;
	}
	/* No statement of the store gains from being compiled to machine
	 * code.  A generic plan is costed for an average parameter (a
	 * mailbox's share of the whole ledger, say), which at millions of
	 * rows passes jit_above_cost: the server would then compile each
	 * execution, 5 to 15 ms for a statement that runs in 3. */
	if (store_exec_simple(s, "SET jit = off", err) != 0) {
		err_prefix(err, "connect");
		store_drop_conn(s);
		return -1;
	}
	s->generation++;
	return 0;
}

/* Runs op, reconnecting (with backoff) and running it again as long as it
 * returns RETRY or no connection can be made, within the attempt budget. */
int
store_run(struct store *s, store_op op, void *arg, struct err *err)
{
	int64_t wait = s->backoff_initial_ms;
	int attempt = 0, rc;

	for (;;) {
		if (store_stopped(s)) {
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
			store_drop_conn(s);
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
int
store_check(struct store *s, PGresult *r, ExecStatusType want, const char *what,
    struct err *err)
{
	if (r != NULL && PQresultStatus(r) == want)
		return 0;
	set_pqerr(err, what, s->conn, r);
	return conn_lost(s->conn, r) ? RETRY : -1;
}

int
store_exec_simple(struct store *s, const char *sql, struct err *err)
{
	PGresult *r = PQexec(s->conn, sql);
	int rc = store_check(s, r, PGRES_COMMAND_OK, sql, err);

	PQclear(r);
	return rc;
}

/* ---- prepared statements ---- */

int
store_prepare(struct store *s, struct err *err)
{
	static const struct {
		const struct store_stmt *stmts;
		const size_t *n;
	} tables[] = {
	    {store_ledger_stmts, &store_ledger_stmts_n},
	    {store_record_stmts, &store_record_stmts_n},
	    {store_suppress_stmts, &store_suppress_stmts_n},
	};
	size_t t, i;
	int rc;

	if (s->prepared)
		return 0;
	/* Plan each statement once per connection.  Left to choose, the
	 * server re-plans record_batch (one large statement) on every
	 * execution, and that planning cost more CPU than the writing; the
	 * statements all look rows up by key, so one plan fits every
	 * parameter value. */
	if ((rc = store_exec_simple(s,
	         "SET plan_cache_mode = force_generic_plan", err)) != 0)
		return rc;
	for (t = 0; t < sizeof(tables) / sizeof(tables[0]); t++)
		for (i = 0; i < *tables[t].n; i++) {
			const struct store_stmt *st = &tables[t].stmts[i];
			PGresult *r =
			    PQprepare(s->conn, st->name, st->sql, 0, NULL);

			rc = store_check(s, r, PGRES_COMMAND_OK, st->name, err);
			PQclear(r);
			if (rc == -1)
				err_prefix(err,
				    "preparing statements "
				    "(schema not migrated?)");
			if (rc != 0)
				return rc;
		}
	s->prepared = 1;
	return 0;
}

/* Runs a prepared statement (all parameters text) and checks its status;
 * *out gets the result (caller clears) when out is not NULL. */
int
store_exec_prep(struct store *s, const char *name, int n, const char *const *v,
    ExecStatusType want, PGresult **out, struct err *err)
{
	PGresult *r;
	int rc;

	rc = store_prepare(s, err);
	if (rc != 0)
		return rc;
	r = PQexecPrepared(s->conn, name, n, v, NULL, NULL, 0);
	rc = store_check(s, r, want, name, err);
	if (rc == 0 && out != NULL)
		*out = r;
	else
		PQclear(r);
	return rc;
}

/* ---- open / free ---- */

/* The reconnect profiles of store.h, in enum order. */
static const struct reconnect_profile {
	int64_t backoff_initial_ms;
	int64_t backoff_max_ms;
	int attempts;
	int connect_timeout_s;
} profiles[] = {
    [STORE_RECONNECT_DEFAULT] = {200, 30000, 10, 10},
    [STORE_RECONNECT_STARTUP] = {200, 30000, 5, 10},
    [STORE_RECONNECT_PASS] = {200, 5000, 8, 5},
    [STORE_RECONNECT_PROBE] = {50, 100, 1, 2},
};

/* The one place that turns store_options into the handle's settings and
 * reconnect policy: the profile's values, then the fields that override
 * them, then the defaults documented in store.h. */
static void
apply_options(struct store *s, const struct store_options *opt)
{
	const struct reconnect_profile *p = &profiles[STORE_RECONNECT_DEFAULT];

	if ((size_t)opt->reconnect < sizeof(profiles) / sizeof(profiles[0]))
		p = &profiles[opt->reconnect];
	s->conninfo = xstrdup(opt->conninfo);
	s->appname =
	    xstrdup(opt->application_name ? opt->application_name : "bouncerd");
	s->batch_size = opt->batch_size > 0 ? opt->batch_size : 50;
	s->raw_max = opt->raw_max_bytes < 0 ? 1024 * 1024 : opt->raw_max_bytes;
	s->backoff_initial_ms = opt->backoff_initial_ms > 0
	    ? opt->backoff_initial_ms
	    : p->backoff_initial_ms;
	s->backoff_max_ms =
	    opt->backoff_max_ms > 0 ? opt->backoff_max_ms : p->backoff_max_ms;
	if (s->backoff_max_ms < s->backoff_initial_ms)
		s->backoff_max_ms = s->backoff_initial_ms;
	s->attempts = opt->reconnect_attempts == 0 ? p->attempts
	                                           : opt->reconnect_attempts;
	s->connect_timeout_s = opt->connect_timeout_s > 0
	    ? opt->connect_timeout_s
	    : p->connect_timeout_s;
	s->quarantine_after =
	    opt->quarantine_after > 0 ? opt->quarantine_after : 3;
	s->stop = opt->stop;
}

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
	apply_options(s, opt);
	if (store_run(s, op_noop, NULL, err) != 0) {
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
	store_drop_conn(s);
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
	rc = store_check(s, r, PGRES_TUPLES_OK, "schema_migrations", err);
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

	rc = store_exec_simple(s, "BEGIN", err);
	if (rc != 0)
		return rc;
	r = PQexec(s->conn, m->sql);
	rc = store_check(s, r, PGRES_COMMAND_OK, m->name, err);
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
		rc = store_check(s, r, PGRES_COMMAND_OK, "schema_migrations",
		    err);
		PQclear(r);
	}
	if (rc == 0)
		rc = store_exec_simple(s, "COMMIT", err);
	if (rc != 0 && rc != RETRY) {
		struct err ignore;

		store_exec_simple(s, "ROLLBACK", &ignore);
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
	rc = store_check(s, r, PGRES_TUPLES_OK, "schema_migrations", err);
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

		rc = store_check(s, r, PGRES_TUPLES_OK, "migration lock", err);
		PQclear(r);
	}
	if (rc != 0)
		return rc;
	rc = store_exec_simple(s,
	    "CREATE TABLE IF NOT EXISTS schema_migrations ("
	    " version integer PRIMARY KEY, name text NOT NULL,"
	    " checksum text NOT NULL,"
	    " applied_at timestamptz NOT NULL DEFAULT now())",
	    err);
	if (rc == 0)
		rc = store_exec_simple(s,
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
	int rc = store_run(s, op_migrate, &a, err);

	if (applied_out)
		*applied_out = a.applied;
	return rc;
}

int
store_pending_migrations(struct store *s, int *pending_out, struct err *err)
{
	struct migrate_arg a = {0, 0, 1};
	int rc = store_run(s, op_migrate, &a, err);

	*pending_out = a.pending;
	return rc;
}
