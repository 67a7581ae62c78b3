/*
 * test_store_readme.c - runs every ```sql example of the README's
 * "Querying bounces" section against a real database filled through the
 * store, and checks each returns rows; also checks that every column of
 * every table and view has a comment (analysts read them with \d+).
 * Skips without BOUNCER_TEST_PG.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"
#include "test.h"
#include "test_store_db.h"
#include "base/util.h"

#define DAY 86400

static char *uri;
static PGconn *db;

struct fx {
	const char *rcpt;
	enum record_class cls;
	const char *reason;
	const char *status;
	const char *campaign;
	int64_t age_s;
};

static const struct fx fixtures[] = {
    {"Alice@Example.org", RECORD_CLASS_HARD, "userunknown", "5.1.1",
        "spring-sale", DAY},
    {"bob@example.net", RECORD_CLASS_SOFT, "mailboxfull", "4.2.2",
        "spring-sale", 2 * DAY},
    {"carol@example.org", RECORD_CLASS_COMPLAINT, "feedback", NULL,
        "spring-sale", 3 * DAY},
    {"dave@example.net", RECORD_CLASS_SOFT, "blocked", "5.7.1", "newsletter-7",
        600},
    {"dave@example.net", RECORD_CLASS_SOFT, "blocked", "5.7.1", "newsletter-7",
        1200},
    {"dave@example.net", RECORD_CLASS_SOFT, "blocked", "5.7.1", "newsletter-7",
        1800},
};

static int
fill(void)
{
	struct store_options o = tdb_options(uri);
	struct store *s = NULL;
	struct err err = {""};
	struct store_settings set = {.soft_threshold = 3,
	    .soft_window_s = 30 * DAY};
	int64_t mb = 0;
	size_t i;
	int rc = -1;

	if (store_open(&o, &s, &err) != 0 || store_migrate(s, NULL, &err) ||
	    store_apply_settings(s, &set, &err) ||
	    store_mailbox_id(s, "bounces1", "pop.example.net", "bounces1", &mb,
	        &err))
		goto out;
	for (i = 0; i < sizeof(fixtures) / sizeof(fixtures[0]); i++) {
		const struct fx *f = &fixtures[i];
		struct record_rcpt b;
		enum store_result r;
		char uidl[32];

		memset(&b, 0, sizeof(b));
		snprintf(uidl, sizeof(uidl), "readme-%zu", i);
		b.recipient = f->rcpt;
		b.recipient_source = "final_recipient";
		b.cls = f->cls;
		b.reason = f->reason;
		b.status = f->status;
		b.action = f->cls == RECORD_CLASS_COMPLAINT ? NULL : "failed";
		b.diagnostic = "550 5.1.1 user unknown";
		b.bounced_at = now_unix() - f->age_s;
		if (tdb_record_bounce(s, mb, uidl, &b, f->campaign, &r, &err) !=
		        0 ||
		    r != STORE_WRITTEN)
			goto out;
	}
	/* one quarantined email for the last example */
	{
		struct store_failure f = {.mailbox_id = mb,
		    .uidl = "readme-bad",
		    .error = "decode failed",
		    .size = 3,
		    .raw = "bad",
		    .raw_len = 3};
		int q = 0, k;

		for (k = 0; k < 3; k++)
			if (store_record_failure(s, &f, &q, &err) != 0)
				goto out;
	}
	rc = 0;
out:
	if (rc != 0)
		printf("FAIL setup: %s\n", err.msg);
	store_free(&s);
	return rc;
}

/* The README section between its markers, or NULL. */
static char *
section(void)
{
	const char *src = getenv("BOUNCER_SRC");
	char *path, *text = NULL, *a, *b, *out = NULL;
	size_t len;
	struct err err;

	path = xasprintf("%s/README.md", src ? src : ".");
	if (read_file(path, 1 << 20, &text, &len, &err) == 0) {
		a = strstr(text, "<!-- BEGIN querying -->");
		b = a ? strstr(a, "<!-- END querying -->") : NULL;
		if (a && b)
			out = xstrndup(a, (size_t)(b - a));
	}
	free(text);
	free(path);
	return out;
}

/* A one-query example can be answered through indexes: with sequential
 * scans made expensive, its plan reads no big table whole (the test data
 * is small; on a big database the planner chooses the same). */
static void
check_indexed(const char *sql)
{
	static const char *const big[] = {"Seq Scan on bounces",
	    "Seq Scan on messages", "Seq Scan on suppression_state",
	    "Seq Scan on suppression_changes"};
	char *q = xasprintf("EXPLAIN %s", sql);
	PGresult *r;
	int i;
	size_t k;

	PQclear(PQexec(db, "SET LOCAL enable_seqscan = off"));
	r = PQexec(db, q);
	CHECK(PQresultStatus(r) == PGRES_TUPLES_OK, "%s",
	    PQresultErrorMessage(r));
	for (i = 0; i < PQntuples(r); i++)
		for (k = 0; k < sizeof(big) / sizeof(big[0]); k++)
			CHECK(strstr(PQgetvalue(r, i, 0), big[k]) == NULL,
			    "full scan: %s\n%s", PQgetvalue(r, i, 0), sql);
	PQclear(r);
	free(q);
}

static void
t_readme_examples_run(void)
{
	char *sec = section(), *p;
	int n = 0;

	CHECK(sec != NULL, "README.md has no querying section");
	if (sec == NULL)
		return;
	for (p = sec; (p = strstr(p, "```sql\n")) != NULL;) {
		char *start = p + 7, *end = strstr(start, "```"), *sql;
		PGresult *r;
		int i;

		if (end == NULL)
			break;
		sql = xstrndup(start, (size_t)(end - start));
		n++;
		test_begin("readme example %d", n);
		/* every statement of the block must succeed and, for a
		 * query, return rows with the test data */
		PQclear(PQexec(db, "BEGIN"));
		r = PQexec(db, sql);
		CHECK(PQresultStatus(r) == PGRES_TUPLES_OK ||
		        PQresultStatus(r) == PGRES_COMMAND_OK,
		    "%s\n%s", PQresultErrorMessage(r), sql);
		if (PQresultStatus(r) == PGRES_TUPLES_OK)
			CHECK(PQntuples(r) > 0, "no rows:\n%s", sql);
		else if (PQresultStatus(r) == PGRES_COMMAND_OK)
			CHECK(strcmp(PQcmdTuples(r), "0") != 0 ||
			        strstr(sql, "UPDATE") == NULL,
			    "changed nothing:\n%s", sql);
		for (i = 0; i < PQntuples(r) && i < 3; i++)
			printf("#   %s\n", PQgetvalue(r, i, 0));
		PQclear(r);
		if (strncmp(sql, "SELECT", 6) == 0 &&
		    strchr(sql, ';') == strrchr(sql, ';'))
			check_indexed(sql);
		PQclear(PQexec(db, "ROLLBACK"));
		test_end();
		free(sql);
		p = end + 3;
	}
	test_begin("readme has the promised examples");
	CHECK(n >= 6, "only %d sql examples", n);
	CHECK(strstr(sec, "suppressions") && strstr(sec, "campaign_id") &&
	        strstr(sec, "bounce_stats_daily") &&
	        strstr(sec, "suppression_evidence") &&
	        strstr(sec, "LISTEN bouncerd_suppression"),
	    "an example is missing");
	test_end();
	free(sec);
}

/* The README's answers match the data. */
static void
t_readme_answers(void)
{
	char *v;

	v = tdb_value(db,
	    "SELECT string_agg(address || ':' || "
	    "suppressed_because, ',' ORDER BY address) "
	    "FROM suppressions");
	CHECK_STR(v,
	    "alice@example.org:hard_bounce,"
	    "carol@example.org:complaint,"
	    "dave@example.net:soft_bounces");
	free(v);
	v = tdb_value(db,
	    "SELECT count(*) FROM bounces "
	    "WHERE campaign_id = 'spring-sale'");
	CHECK_STR(v, "3");
	free(v);
	CHECK(tdb_exec(db, "SELECT unsuppress('carol@example.org', 'test')") ==
	        0,
	    "unsuppress");
	v = tdb_value(db,
	    "SELECT string_agg(address, ',' ORDER BY address) "
	    "FROM suppressions");
	CHECK_STR(v, "alice@example.org,dave@example.net");
	free(v);
	v = tdb_value(db,
	    "SELECT address || ' ' || note || ' ' || "
	    "was_suppressed_because FROM suppression_lifts");
	CHECK_STR(v, "carol@example.org test complaint");
	free(v);
}

static void
t_every_column_has_a_comment(void)
{
	char *v = tdb_value(db,
	    "SELECT coalesce(string_agg(c.relname || '.' || a.attname, ', '), "
	    "'none') FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
	    "JOIN pg_namespace n ON n.oid = c.relnamespace "
	    "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'v', 'p') "
	    "AND NOT c.relispartition AND a.attnum > 0 "
	    "AND NOT a.attisdropped "
	    "AND col_description(c.oid, a.attnum) IS NULL");

	CHECK_STR(v, "none");
	free(v);
	v = tdb_value(db,
	    "SELECT coalesce(string_agg(c.relname, ', '), 'none') "
	    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
	    "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'v', 'p') "
	    "AND NOT c.relispartition "
	    "AND obj_description(c.oid, 'pg_class') IS NULL");
	CHECK_STR(v, "none");
	free(v);
}

int
main(void)
{
	if (getenv("BOUNCER_TEST_PG") == NULL) {
		printf("SKIP test_store_readme: BOUNCER_TEST_PG not set\n");
		return 0;
	}
	uri = tdb_fresh("bouncer_store_readme");
	if (uri == NULL || (db = tdb_connect(uri)) == NULL || fill() != 0) {
		printf("FAIL test_store_readme: setup\n");
		return 1;
	}
	t_readme_examples_run();
	RUN(t_every_column_has_a_comment);
	RUN(t_readme_answers);
	PQfinish(db);
	tdb_drop("bouncer_store_readme");
	free(uri);
	return test_done();
}
