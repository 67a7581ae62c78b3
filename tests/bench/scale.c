/*
 * scale.c - `make bench-scale`: the suppression list, the change feed and
 * the ledger at ROWS ledger rows and ROWS bounce rows (default 10,000,000),
 * loaded into the real schema on the PostgreSQL of tests/services.sh
 * (BOUNCER_TEST_PG): about ROWS/5 addresses over 50,000 domains, 70/25/5
 * soft/hard/complaint, dates over six months, ten mailboxes of which one
 * still holds 5,000 messages on the server.  Prints one line:
 *   scale: rows=N addresses=A suppressed=S export_s=... changes_1k_ms=...
 *     lookup_ms=... ledger_filter_100k_ms=... prune_ms=... record_per_s=...
 *     record_per_s_empty=...
 * record_per_s and record_per_s_empty are medians of eleven runs each of
 * 4,000 messages (one bounce each, batches of 50), in turns, each side on
 * one connection kept from run to run as a worker keeps its own, after a
 * run of 1,000 that is not counted; no two runs record for the same
 * address.
 * Before measuring, the buffers the load changed are written out
 * (CHECKPOINT); before recording, the tables recording writes at random
 * are read into the server's buffers, as on a server that has run
 * bouncerd for a while (BENCH_SCALE_PREWARM=0: not read).
 * Progress goes to stderr.  BENCH_SCALE_KEEP=1 reuses a loaded database
 * (migrating it first when its schema is older, and saying how long that
 * took).  The load fills six months of partitions and ends as bouncerd's
 * first pass would: the history before soft_window's month is folded
 * into suppression_carried.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "store/store.h"
#include "../integration/test_store_db.h"
#include "base/util.h"

#define ON_SERVER 5000 /* messages still on the server in mailbox 1 */
#define DOMAINS 50000
#define RECORD_N 4000 /* messages recorded for the recording rate */
#define RECORD_RUNS 11

static void
say(const char *fmt, const char *arg)
{
	fprintf(stderr, "scale: ");
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
}

static int
exec_or_die(PGconn *c, const char *sql)
{
	if (tdb_exec(c, sql) != 0) {
		fprintf(stderr, "scale: failed: %s\n", sql);
		exit(1);
	}
	return 0;
}

static int
cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double
median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_d);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Loads rows ledger rows and bounce rows, in chunks of a million. */
static void
load(PGconn *c, long long rows)
{
	long long lo, addrs = rows / 5 > 1 ? rows / 5 : 1;
	char *sql, num[32];
	double t0;

	exec_or_die(c, "SET synchronous_commit = off");
	exec_or_die(c,
	    "INSERT INTO mailboxes (name) SELECT 'scale-' || g "
	    "FROM generate_series(1, 10) g ON CONFLICT DO NOTHING");
	/* bulk load: the state is evaluated once at the end, from all the
	 * rows (nothing folded yet), into the months' partitions */
	exec_or_die(c,
	    "ALTER TABLE bounces DISABLE TRIGGER "
	    "bounces_notify_suppression");
	exec_or_die(c, "UPDATE suppression_feed SET folded_before = NULL");
	exec_or_die(c,
	    "SELECT bounce_partitions_cover(now() - interval '183 days', "
	    "now())");
	for (lo = 1; lo <= rows; lo += 1000000) {
		long long hi = lo + 999999 < rows ? lo + 999999 : rows;
		long long base = tdb_count(c,
		    "SELECT coalesce(max(id), 0) "
		    "FROM messages");
		char a[32], b[32];

		snprintf(a, sizeof(a), "%lld", lo);
		say("loading rows from %s", a);
		snprintf(b, sizeof(b), "%lld", hi);
		sql = xasprintf(
		    "WITH g AS (SELECT g, now() - interval '182 days' "
		    " + (g::float8 / %lld) * interval '182 days'"
		    " - (abs(hashint8(g * 7)) %% 3600) * interval '1 second'"
		    " AS ts FROM generate_series(%s, %s) g) "
		    "INSERT INTO messages (mailbox_id, uidl, kind, size_bytes,"
		    " fetched_at, processed_at, deleted_at, reported_at) "
		    "SELECT (SELECT id FROM mailboxes WHERE name = 'scale-' ||"
		    " (1 + g %% 10)), 'u' || g, 'bounce', 4000, ts, ts,"
		    " CASE WHEN g %% 10 = 0 AND g > %lld THEN NULL"
		    " ELSE ts + interval '5 minutes' END, ts FROM g",
		    rows, a, b, rows - 10LL * ON_SERVER);
		exec_or_die(c, sql);
		free(sql);
		sql = xasprintf(
		    "WITH m AS (SELECT m.id, substr(m.uidl, 2)::bigint AS g,"
		    " m.reported_at AS ts FROM messages m"
		    " WHERE m.id > %lld), "
		    "x AS (SELECT m.*, abs(hashint8(m.g)) %% %lld AS a,"
		    " abs(hashint8(m.g + 1000000007)) %% 100 AS k FROM m) "
		    "INSERT INTO bounces (message_id, recipient,"
		    " recipient_domain, recipient_source, class, reason,"
		    " action, status, reply_code, diagnostic, bounced_at,"
		    " created_at) "
		    "SELECT x.id, 'user' || x.a || '@d' || (x.a %% %d) ||"
		    " '.example', 'd' || (x.a %% %d) || '.example',"
		    " 'final_recipient',"
		    " CASE WHEN x.k < 70 THEN 'soft' WHEN x.k < 95 THEN 'hard'"
		    "  ELSE 'complaint' END,"
		    " CASE WHEN x.k < 40 THEN 'mailboxfull'"
		    "  WHEN x.k < 60 THEN 'blocked' WHEN x.k < 70 THEN "
		    "'expired'"
		    "  WHEN x.k < 95 THEN 'userunknown' ELSE 'feedback' END,"
		    " CASE WHEN x.k < 95 THEN 'failed' END,"
		    " CASE WHEN x.k < 70 THEN '4.2.2' WHEN x.k < 95"
		    "  THEN '5.1.1' END,"
		    " CASE WHEN x.k < 70 THEN 452 WHEN x.k < 95 THEN 550 END,"
		    " CASE WHEN x.k < 70 THEN '452 4.2.2 Mailbox full'"
		    "  WHEN x.k < 95 THEN '550 5.1.1 User unknown' END,"
		    " x.ts, x.ts FROM x",
		    base, addrs, DOMAINS, DOMAINS);
		exec_or_die(c, sql);
		free(sql);
	}
	say("%s", "evaluating the suppression state of every address");
	exec_or_die(c,
	    "ALTER TABLE bounces ENABLE TRIGGER "
	    "bounces_notify_suppression");
	exec_or_die(c, "VACUUM ANALYZE messages");
	exec_or_die(c, "VACUUM ANALYZE bounces");
	exec_or_die(c, "UPDATE suppression_feed SET rules = NULL");
	exec_or_die(c, "SELECT suppression_rules_sync()");
	/* a feed with history: one change per suppressed address */
	exec_or_die(c,
	    "INSERT INTO suppression_changes (id, address, change,"
	    " suppressed_because, reason, class, changed_at) "
	    "SELECT (SELECT last_change_id FROM suppression_feed) +"
	    " row_number() OVER (ORDER BY suppressed_since, address),"
	    " address, 'added', suppressed_because, reason, class,"
	    " last_bounced_at FROM suppression_state WHERE suppressed");
	exec_or_die(c,
	    "UPDATE suppression_feed SET last_change_id ="
	    " (SELECT coalesce(max(id), 0) FROM suppression_changes)");
	/* what bouncerd does after its first pass: the history older than
	 * soft_window's month is read as sums from then on */
	say("%s", "folding the history before soft_window's month");
	t0 = now_s();
	exec_or_die(c, "SELECT suppression_fold_history()");
	snprintf(num, sizeof(num), "%.1f", now_s() - t0);
	say("folded in %s s", num);
	exec_or_die(c, "VACUUM ANALYZE suppression_state");
	exec_or_die(c, "VACUUM ANALYZE suppression_changes");
	exec_or_die(c, "VACUUM ANALYZE suppression_carried");
}

/* A recording connection kept from run to run, as a worker keeps its
 * connections from pass to pass. */
static struct store *
record_store(const char *uri)
{
	struct store_options o = tdb_options(uri);
	struct store *s = NULL;
	struct err err = {""};

	o.batch_size = 50;
	if (store_open(&o, &s, &err) != 0 || store_migrate(s, NULL, &err)) {
		fprintf(stderr, "scale: %s\n", err.msg);
		exit(1);
	}
	return s;
}

/* Records n messages of one bounce each (batches of 50, 500 per call as a
 * pass hands them over) on s; returns records per second.  The addresses
 * are those of the loaded pool from number first on, spread over it by a
 * step prime to its size, so that no two runs of one invocation record
 * for the same address. */
static double
record_rate(struct store *s, size_t n, long long pool, unsigned long long first,
    const char *tag)
{
	struct err err = {""};
	struct store_message *m = xcalloc(n, sizeof(*m));
	struct record *rec = xcalloc(n, sizeof(*rec));
	struct record_rcpt *b = xcalloc(n, sizeof(*b));
	enum store_result *res = xcalloc(n, sizeof(*res));
	char **strs = xcalloc(2 * n, sizeof(*strs));
	int64_t mb = 0;
	double t0, secs;
	size_t i;
	double rate = 0;
	unsigned long long up = (unsigned long long)pool;
	/* a prime that does not divide the pool's size */
	unsigned long long step = up % 7919 ? 7919 : 7907;

	if (store_mailbox_id(s, "scale-record", NULL, NULL, &mb, &err) != 0) {
		fprintf(stderr, "scale: %s\n", err.msg);
		exit(1);
	}
	for (i = 0; i < n; i++) {
		unsigned long long a = ((first + i) * step) % up;
		int k = (int)((i * 37) % 100);

		strs[2 * i] =
		    xasprintf("%s-%lld-%zu", tag, (long long)now_ms(), i);
		strs[2 * i + 1] =
		    xasprintf("user%llu@d%llu.example", a, a % DOMAINS);
		b[i].recipient = strs[2 * i + 1];
		b[i].cls = k < 70
		    ? RECORD_CLASS_SOFT
		    : (k < 95 ? RECORD_CLASS_HARD : RECORD_CLASS_COMPLAINT);
		b[i].reason = k < 70 ? "mailboxfull"
		                     : (k < 95 ? "userunknown" : "feedback");
		b[i].action = k < 95 ? "failed" : NULL;
		b[i].status = k < 70 ? "4.2.2" : "5.1.1";
		b[i].diagnostic = "550 5.1.1 User unknown";
		m[i].mailbox_id = mb;
		m[i].uidl = strs[2 * i];
		rec[i].kind =
		    k < 95 ? RECORD_KIND_BOUNCE : RECORD_KIND_COMPLAINT;
		rec[i].rcpts = &b[i];
		rec[i].nrcpts = 1;
		m[i].size = 4000;
		m[i].rec = &rec[i];
	}
	t0 = now_s();
	for (i = 0; i < n; i += 500)
		if (store_record_batch(s, m + i, n - i < 500 ? n - i : 500,
		        res + i, &err) != 0) {
			fprintf(stderr, "scale: record: %s\n", err.msg);
			exit(1);
		}
	secs = now_s() - t0;
	rate = secs > 0 ? (double)n / secs : 0;
	for (i = 0; i < 2 * n; i++)
		free(strs[i]);
	free(strs);
	free(res);
	free(b);
	free(rec);
	free(m);
	return rate;
}

/* An admin connection to the loaded database (BOUNCER_TEST_PG_ADMIN), or
 * NULL, saying what is not done without it. */
static PGconn *
admin_conn(const char *without)
{
	const char *admin = getenv("BOUNCER_TEST_PG_ADMIN");
	char *u;
	PGconn *a;

	if (admin == NULL) {
		say("no BOUNCER_TEST_PG_ADMIN: %s", without);
		return NULL;
	}
	u = tdb_uri(admin, "bouncer_scale");
	a = tdb_connect(u);
	free(u);
	if (a == NULL)
		exit(1);
	return a;
}

/* Writes out the buffers the load changed (CHECKPOINT) before anything is
 * measured: the load's WAL keeps triggering checkpoints after it ends,
 * and without this one wrote 147,000 buffers during the first recording
 * runs, work that a server which has run bouncerd for a while does not
 * have pending. */
static void
checkpoint_load(void)
{
	PGconn *a = admin_conn("the load's changes not written out first");
	double t0;
	char *v;

	if (a == NULL)
		return;
	t0 = now_s();
	exec_or_die(a, "CHECKPOINT");
	v = xasprintf("%.1f", now_s() - t0);
	say("wrote out the load's changes (CHECKPOINT) in %s s", v);
	free(v);
	PQfinish(a);
}

/* Reads the tables recording writes at random (suppression_state and its
 * indexes, the change feed's address index, the indexes of the current
 * month's bounces) into the server's shared buffers, as weeks of
 * recording leave them on a server that runs bouncerd: the load ends with
 * the fold, which fills most of the buffers with suppression_carried, and
 * the first runs read the current month's index pages one at a time.
 * Needs BOUNCER_TEST_PG_ADMIN (the pg_prewarm extension);
 * BENCH_SCALE_PREWARM=0 measures without it. */
static void
prewarm(void)
{
	const char *off = getenv("BENCH_SCALE_PREWARM");
	char *v;
	PGconn *a;

	if (off != NULL && strcmp(off, "0") == 0) {
		say("%s", "recording's tables left as the load left them");
		return;
	}
	a = admin_conn("recording's tables not read into the buffers first");
	if (a == NULL)
		return;
	exec_or_die(a, "CREATE EXTENSION IF NOT EXISTS pg_prewarm");
	v = tdb_value(a,
	    "SELECT pg_size_pretty(8192 * sum(pg_prewarm(x.r))) FROM ("
	    " SELECT 'suppression_state'::regclass AS r"
	    " UNION ALL SELECT i.indexrelid FROM pg_index i"
	    "  WHERE i.indrelid = 'suppression_state'::regclass"
	    " UNION ALL SELECT 'suppression_changes_address_idx'::regclass"
	    " UNION ALL SELECT i.indexrelid FROM pg_index i"
	    "  WHERE i.indrelid = to_regclass(to_char(now() AT TIME ZONE"
	    "   'UTC', '\"bounces_\"YYYY_MM'))"
	    ") x");
	say("read %s of recording's tables into the buffers", v ? v : "?");
	free(v);
	PQfinish(a);
}

int
main(void)
{
	const char *rows_env = getenv("ROWS");
	long long rows = rows_env ? strtoll(rows_env, NULL, 10) : 10000000LL;
	long long pool, addresses, suppressed, maxid;
	char *uri, *uri_empty, *sql, *v;
	PGconn *c;
	struct store_options o;
	struct store *s = NULL, *se = NULL, *sf = NULL;
	struct err err = {""};
	unsigned long long first;
	double t0, export_s, lookups[101], chg[21], prunes[11];
	double filter_ms, rec, rec_empty, recs[RECORD_RUNS],
	    recs_empty[RECORD_RUNS];
	int64_t mb1 = 0;
	int applied = 0;
	const char **uidls;
	struct store_uidl_info *info;
	int i;

	if (getenv("BOUNCER_TEST_PG") == NULL || rows < 100000) {
		printf("scale: needs BOUNCER_TEST_PG and ROWS >= 100000\n");
		return 1;
	}
	pool = rows / 5;
	uri_empty = tdb_fresh("bouncer_scale_empty");
	if (uri_empty == NULL) {
		say("%s", "could not make the database bouncer_scale_empty");
		return 1;
	}

	if (getenv("BENCH_SCALE_KEEP") != NULL)
		uri = tdb_uri(getenv("BOUNCER_TEST_PG"), "bouncer_scale");
	else
		uri = tdb_fresh("bouncer_scale");
	if (uri == NULL) {
		say("%s", "could not make the database bouncer_scale");
		return 1;
	}
	o = tdb_options(uri);
	t0 = now_s();
	if (store_open(&o, &s, &err) != 0 || store_migrate(s, &applied, &err)) {
		fprintf(stderr, "scale: %s\n", err.msg);
		return 1;
	}
	if (applied > 0) { /* a kept database of an older schema */
		char num[64];

		snprintf(num, sizeof(num), "%d migrations in %.1f s", applied,
		    now_s() - t0);
		say("applied %s", num);
	}
	c = tdb_connect(uri);
	if (c == NULL)
		return 1;
	if (applied > 0) /* as autovacuum would, before measuring */
		exec_or_die(c,
		    "VACUUM ANALYZE bounces, messages, suppression_state, "
		    "suppression_carried, suppression_changes");
	if (tdb_count(c, "SELECT count(*) FROM bounces") < rows)
		load(c, rows);
	checkpoint_load();
	addresses = tdb_count(c, "SELECT count(*) FROM suppression_state");
	suppressed = tdb_count(c, "SELECT count(*) FROM suppressions");

	/* export of the whole list */
	say("%s", "measuring");
	t0 = now_s();
	{
		PGresult *r = PQexec(c,
		    "COPY (SELECT * FROM suppressions) "
		    "TO STDOUT");
		char *line;

		PQclear(r);
		while (PQgetCopyData(c, &line, 0) > 0)
			PQfreemem(line);
		PQclear(PQgetResult(c));
	}
	export_s = now_s() - t0;

	/* 1,000 changes since a cursor */
	maxid = tdb_count(c, "SELECT max(id) FROM suppression_changes");
	sql = xasprintf("SELECT id, change, address, suppressed_because, "
	                "reason FROM suppression_changes WHERE id > %lld "
	                "ORDER BY id",
	    maxid - 1000);
	for (i = 0; i < 21; i++) {
		PGresult *r;

		t0 = now_s();
		r = PQexec(c, sql);
		chg[i] = (now_s() - t0) * 1000;
		PQclear(r);
	}
	free(sql);

	/* one address, planned each time as an ad-hoc query is */
	for (i = 0; i < 101; i++) {
		PGresult *r;

		sql = xasprintf("SELECT * FROM suppressions WHERE address = "
		                "'user%lld@d%lld.example'",
		    (i * 104729LL) % pool, ((i * 104729LL) % pool) % DOMAINS);
		t0 = now_s();
		r = PQexec(c, sql);
		lookups[i] = (now_s() - t0) * 1000;
		PQclear(r);
		free(sql);
	}

	/* the ledger filter of a pass: 100,000 UIDLs, half known */
	uidls = xcalloc(100000, sizeof(*uidls));
	info = xcalloc(100000, sizeof(*info));
	store_mailbox_id(s, "scale-1", NULL, NULL, &mb1, &err);
	for (i = 0; i < 100000; i++)
		uidls[i] = i % 2 ? xasprintf("u%lld", rows - 10LL * i)
		                 : xasprintf("new-%d", i);
	t0 = now_s();
	if (store_uidl_states(s, mb1, uidls, 100000, info, &err) != 0)
		fprintf(stderr, "scale: uidl_states: %s\n", err.msg);
	filter_ms = (now_s() - t0) * 1000;
	for (i = 0; i < 100000; i++)
		free((char *)uidls[i]);

	/* prune after a pass: the server holds its 5,000 messages */
	for (i = 0; i < ON_SERVER; i++)
		uidls[i] = xasprintf("u%lld", rows - 10LL * i);
	for (i = 0; i < 11; i++) {
		t0 = now_s();
		if (store_prune(s, mb1, uidls, ON_SERVER, 30 * 86400, NULL,
		        &err) != 0)
			fprintf(stderr, "scale: prune: %s\n", err.msg);
		prunes[i] = (now_s() - t0) * 1000;
	}
	for (i = 0; i < ON_SERVER; i++)
		free((char *)uidls[i]);
	free(uidls);
	free(info);
	store_free(&s);

	/* recording rates, into the empty and into the loaded database in
	 * turns (the machine's load changes; the medians are compared) */
	/* each side on one connection kept from run to run, after a first
	 * run that is not counted (a worker's connection is past its first
	 * pass); every run on new addresses, from a point of the pool that
	 * changes between invocations */
	prewarm();
	se = record_store(uri_empty);
	sf = record_store(uri);
	first = (unsigned long long)now_ms() % (unsigned long long)pool;
	record_rate(se, RECORD_N / 4, pool, first, "empty");
	record_rate(sf, RECORD_N / 4, pool, first, "full");
	first += RECORD_N / 4;
	for (i = 0; i < RECORD_RUNS; i++, first += RECORD_N) {
		recs_empty[i] = record_rate(se, RECORD_N, pool, first, "empty");
		recs[i] = record_rate(sf, RECORD_N, pool, first, "full");
		fprintf(stderr, "scale: run %d: %.0f/s, empty %.0f/s\n", i + 1,
		    recs[i], recs_empty[i]);
	}
	store_free(&se);
	store_free(&sf);
	rec_empty = median(recs_empty, RECORD_RUNS);
	rec = median(recs, RECORD_RUNS);
	tdb_drop("bouncer_scale_empty");
	v = tdb_value(c,
	    "SELECT pg_size_pretty(pg_database_size("
	    "current_database()))");
	say("database size %s", v);
	free(v);
	printf("scale: rows=%lld addresses=%lld suppressed=%lld "
	       "export_s=%.2f changes_1k_ms=%.2f lookup_ms=%.2f "
	       "ledger_filter_100k_ms=%.0f prune_ms=%.1f record_per_s=%.0f "
	       "record_per_s_empty=%.0f\n",
	    rows, addresses, suppressed, export_s, median(chg, 21),
	    median(lookups, 101), filter_ms, median(prunes, 11), rec,
	    rec_empty);
	PQfinish(c);
	free(uri);
	free(uri_empty);
	return 0;
}
