/*
 * test_store_suppress.c - the suppression rules (suppression_status and
 * the suppressions view) at each boundary, the NOTIFY sent when an address
 * enters the list, and the daily statistics view, against the real
 * PostgreSQL.  Every case records its bounces through the store and
 * asserts the exact suppressions row of its address (or its absence).
 */
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "test.h"
#include "test_store_db.h"
#include "util.h"

#define DAY 86400

static char *uri;
static PGconn *db;
static struct store *st;
static int64_t mbox;
static int seq;

struct ev {
	enum bounce_class cls;
	const char *reason;
	const char *action;
	int64_t age_s; /* bounced this long before now */
	int not_counted; /* stored with counts = false */
	const char *addr; /* NULL: the case's address */
};

#define EV_END \
	{ \
		CLASS_UNKNOWN, NULL, NULL, -1, 0, NULL \
	}

/* Records each event as its own bounce email. */
static int
record_events(const char *addr, const struct ev *e)
{
	struct err err = {""};
	int64_t now = now_unix();

	for (; e->age_s >= 0; e++) {
		struct store_bounce b;
		struct store_message m;
		enum store_result r = STORE_PENDING;
		char uidl[64];

		memset(&b, 0, sizeof(b));
		memset(&m, 0, sizeof(m));
		snprintf(uidl, sizeof(uidl), "s-%d", ++seq);
		b.recipient = e->addr ? e->addr : addr;
		b.cls = e->cls;
		b.reason = e->reason;
		b.action = e->action;
		b.bounced_at = now - e->age_s;
		b.not_counted = e->not_counted;
		b.not_counted_because = e->not_counted ? "first_pass" : NULL;
		m.mailbox_id = mbox;
		m.uidl = uidl;
		m.kind = e->cls == CLASS_COMPLAINT ? DSN_KIND_COMPLAINT
		                                   : DSN_KIND_BOUNCE;
		m.size = -1;
		m.bounces = &b;
		m.nbounces = 1;
		if (store_record(st, &m, &r, &err) != 0 || r != STORE_WRITTEN) {
			test_fail_at(__FILE__, __LINE__, "record %s: %d %s",
			    uidl, (int)r, err.msg);
			return -1;
		}
	}
	return 0;
}

/* "because|reason|class|hard|complaints|soft" of addr, or "(none)". */
static char *
row_of(const char *addr)
{
	char *sql = xasprintf(
	    "SELECT suppressed_because || '|' || reason || '|' || class || "
	    "'|' || hard_bounces || '|' || complaints || '|' || "
	    "recent_soft_bounces FROM suppressions WHERE address = '%s'",
	    addr);
	char *v = tdb_value(db, sql);

	free(sql);
	return v;
}

#define H(age) \
	{ \
		CLASS_HARD, "userunknown", "failed", age, 0, NULL \
	}
#define S(age) \
	{ \
		CLASS_SOFT, "mailboxfull", "failed", age, 0, NULL \
	}

static const struct rule_case {
	const char *name;
	const char *addr;
	struct ev ev[8];
	const char *want; /* suppressions row, or "(none)" */
} cases[] = {
    {"hard_bounce_suppresses_at_once", "hard@a.example", {H(DAY), EV_END},
        "hard_bounce|userunknown|hard|1|0|0"},
    {"hard_bounce_never_expires", "oldhard@a.example", {H(400 * DAY), EV_END},
        "hard_bounce|userunknown|hard|1|0|0"},
    {"complaint_suppresses_at_once", "complaint@a.example",
        {{CLASS_COMPLAINT, "feedback", NULL, DAY, 0, NULL}, EV_END},
        "complaint|feedback|complaint|0|1|0"},
    {"complaint_wins_over_hard", "both@a.example",
        {H(2 * DAY), {CLASS_COMPLAINT, "feedback", NULL, DAY, 0, NULL}, EV_END},
        "complaint|feedback|complaint|1|1|0"},
    {"soft_threshold_minus_one", "soft2@a.example",
        {S(2 * DAY), S(DAY), EV_END}, "(none)"},
    {"soft_threshold_reached", "soft3@a.example",
        {S(3 * DAY), S(2 * DAY), S(DAY), EV_END},
        "soft_bounces|mailboxfull|soft|0|0|3"},
    {"soft_window_edge_inside", "inside@a.example",
        {S(30 * DAY - 120), S(2 * DAY), S(DAY), EV_END},
        "soft_bounces|mailboxfull|soft|0|0|3"},
    {"soft_window_edge_outside", "outside@a.example",
        {S(30 * DAY + 120), S(2 * DAY), S(DAY), EV_END}, "(none)"},
    {"soft_reason_is_the_latest", "latest@a.example",
        {S(3 * DAY), {CLASS_SOFT, "blocked", "failed", DAY, 0, NULL},
            S(2 * DAY), EV_END},
        "soft_bounces|blocked|soft|0|0|3"},
    {"delayed_never_counts", "delayed@a.example",
        {{CLASS_SOFT, "expired", "delayed", 4 * DAY, 0, NULL},
            {CLASS_SOFT, "expired", "Delayed", 3 * DAY, 0, NULL},
            {CLASS_SOFT, "expired", "delayed", 2 * DAY, 0, NULL},
            {CLASS_SOFT, "expired", "delayed", DAY, 0, NULL}, EV_END},
        "(none)"},
    {"autoreplies_never_count", "vacation@a.example",
        {{CLASS_AUTOREPLY, "vacation", NULL, 3 * DAY, 0, NULL},
            {CLASS_AUTOREPLY, "vacation", NULL, 2 * DAY, 0, NULL},
            {CLASS_AUTOREPLY, "vacation", NULL, DAY, 0, NULL}, EV_END},
        "(none)"},
    {"unknown_never_counts", "unknown@a.example",
        {{CLASS_UNKNOWN, "undefined", NULL, 3 * DAY, 0, NULL},
            {CLASS_UNKNOWN, "undefined", NULL, 2 * DAY, 0, NULL},
            {CLASS_UNKNOWN, "undefined", NULL, DAY, 0, NULL}, EV_END},
        "(none)"},
    {"delivered_never_counts", "ok@a.example",
        {{CLASS_DELIVERED, "delivered", "delivered", 3 * DAY, 0, NULL},
            {CLASS_DELIVERED, "delivered", "delivered", 2 * DAY, 0, NULL},
            {CLASS_DELIVERED, "delivered", "delivered", DAY, 0, NULL}, EV_END},
        "(none)"},
    {"delivered_after_soft_clears_them", "cleared@a.example",
        {S(3 * DAY), S(2 * DAY), S(DAY),
            {CLASS_DELIVERED, "delivered", "delivered", DAY / 2, 0, NULL},
            EV_END},
        "(none)"},
    {"delivered_between_soft_leaves_two", "between@a.example",
        {S(3 * DAY),
            {CLASS_DELIVERED, "delivered", "delivered", 5 * DAY / 2, 0, NULL},
            S(2 * DAY), S(DAY), EV_END},
        "(none)"},
    {"delivered_before_soft_changes_nothing", "before@a.example",
        {{CLASS_DELIVERED, "delivered", "delivered", 5 * DAY, 0, NULL},
            S(3 * DAY), S(2 * DAY), S(DAY), EV_END},
        "soft_bounces|mailboxfull|soft|0|0|3"},
    {"delivered_does_not_clear_hard", "hardok@a.example",
        {H(2 * DAY), {CLASS_DELIVERED, "delivered", "delivered", DAY, 0, NULL},
            EV_END},
        "hard_bounce|userunknown|hard|1|0|0"},
    {"not_counted_rows_never_count", "firstpass@a.example",
        {{CLASS_HARD, "userunknown", "failed", DAY, 1, NULL},
            {CLASS_COMPLAINT, "feedback", NULL, DAY, 1, NULL},
            {CLASS_SOFT, "mailboxfull", "failed", DAY, 1, NULL},
            {CLASS_SOFT, "mailboxfull", "failed", DAY, 1, NULL},
            {CLASS_SOFT, "mailboxfull", "failed", DAY, 1, NULL}, EV_END},
        "(none)"},
    {"address_case_is_folded", "mixed@a.example",
        {{CLASS_SOFT, "mailboxfull", "failed", 3 * DAY, 0, "Mixed@A.Example"},
            {CLASS_SOFT, "mailboxfull", "failed", 2 * DAY, 0,
                "MIXED@a.example"},
            S(DAY), EV_END},
        "soft_bounces|mailboxfull|soft|0|0|3"},
};

static void
t_rules(void)
{
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct rule_case *c = &cases[i];
		char *got;

		test_begin("rule %s", c->name);
		if (record_events(c->addr, c->ev) == 0) {
			got = row_of(c->addr);
			CHECK_STR(got, c->want);
			free(got);
		}
		test_end();
	}
}

/* The threshold and window come from settings (the config). */
static void
t_settings_move_the_boundaries(void)
{
	struct err err = {""};
	struct store_settings s2 = {.soft_threshold = 2,
	    .soft_window_s = 30 * DAY};
	struct store_settings s3 = {.soft_threshold = 3,
	    .soft_window_s = 30 * DAY};
	struct store_settings w = {.soft_threshold = 3,
	    .soft_window_s = 2 * DAY + DAY / 2};
	char *v;

	CHECK(store_apply_settings(st, &s2, &err) == 0, "%s", err.msg);
	v = row_of("soft2@a.example");
	CHECK_STR(v, "soft_bounces|mailboxfull|soft|0|0|2");
	free(v);
	/* a 2.5-day window leaves two of soft3's three bounces */
	CHECK(store_apply_settings(st, &w, &err) == 0, "%s", err.msg);
	v = row_of("soft3@a.example");
	CHECK_STR(v, "(none)");
	free(v);
	CHECK(store_apply_settings(st, &s3, &err) == 0, "%s", err.msg);
	v = row_of("soft3@a.example");
	CHECK_STR(v, "soft_bounces|mailboxfull|soft|0|0|3");
	free(v);
}

static void
t_suppressions_view_dates(void)
{
	char *v = tdb_value(db,
	    "SELECT (now() - first_bounced_at > interval '2 days 23 "
	    "hours')::text"
	    " || (now() - last_bounced_at < interval '1 day 1 hour')::text "
	    "|| domain FROM suppressions WHERE address = 'soft3@a.example'");

	CHECK_STR(v, "truetruea.example");
	free(v);
}

/* Reads the notifications that arrived on c within ms milliseconds. */
static int
drain(PGconn *c, int ms, char *last, size_t lastsz)
{
	int n = 0;
	struct pollfd p = {.fd = PQsocket(c), .events = POLLIN};
	int64_t until = now_ms() + ms;

	for (;;) {
		PGnotify *nt;
		int64_t left = until - now_ms();

		PQconsumeInput(c);
		while ((nt = PQnotifies(c)) != NULL) {
			n++;
			snprintf(last, lastsz, "%s", nt->extra);
			PQfreemem(nt);
		}
		if (left <= 0)
			break;
		poll(&p, 1, (int)left);
	}
	return n;
}

static void
t_notify_on_entry(void)
{
	PGconn *l = tdb_connect(uri);
	char last[512] = "";
	const struct ev soft[] = {S(DAY), EV_END};
	const struct ev hard[] = {H(DAY), EV_END};
	const struct ev delayed[] = {{CLASS_SOFT, "expired", "delayed", DAY, 0,
	                                 NULL},
	    EV_END};

	if (l == NULL)
		return;
	CHECK(tdb_exec(l, "LISTEN " STORE_NOTIFY_CHANNEL) == 0, "listen");
	record_events("n@b.example", soft);
	record_events("n@b.example", soft);
	CHECK_INT(drain(l, 300, last, sizeof(last)), 0);
	record_events("n@b.example", delayed);
	CHECK_INT(drain(l, 300, last, sizeof(last)), 0);
	record_events("n@b.example", soft); /* the third: enters */
	CHECK_INT(drain(l, 1000, last, sizeof(last)), 1);
	CHECK_STR(last,
	    "{\"address\" : \"n@b.example\", \"reason\" : "
	    "\"mailboxfull\", \"class\" : \"soft\", "
	    "\"suppressed_because\" : \"soft_bounces\"}");
	record_events("n@b.example", soft); /* already on the list */
	CHECK_INT(drain(l, 300, last, sizeof(last)), 0);
	/* a hard bounce of a listed address changes the reason, but the
	 * address does not enter again */
	record_events("n@b.example", hard);
	CHECK_INT(drain(l, 300, last, sizeof(last)), 0);
	record_events("h@b.example", hard);
	CHECK_INT(drain(l, 1000, last, sizeof(last)), 1);
	CHECK_STR(last,
	    "{\"address\" : \"h@b.example\", \"reason\" : "
	    "\"userunknown\", \"class\" : \"hard\", "
	    "\"suppressed_because\" : \"hard_bounce\"}");
	record_events("h@b.example", hard);
	CHECK_INT(drain(l, 300, last, sizeof(last)), 0);
	PQfinish(l);
}

/* Two hard bounces of one address in one email: one notification. */
static void
t_notify_once_per_email(void)
{
	PGconn *l = tdb_connect(uri);
	char last[512] = "";
	struct store_bounce b[2];
	struct store_message m;
	struct err err = {""};
	enum store_result r;

	if (l == NULL)
		return;
	CHECK(tdb_exec(l, "LISTEN " STORE_NOTIFY_CHANNEL) == 0, "listen");
	memset(b, 0, sizeof(b));
	memset(&m, 0, sizeof(m));
	b[0].recipient = b[1].recipient = "twice@b.example";
	b[0].cls = b[1].cls = CLASS_HARD;
	b[0].reason = b[1].reason = "userunknown";
	m.mailbox_id = mbox;
	m.uidl = "s-twice";
	m.kind = DSN_KIND_BOUNCE;
	m.bounces = b;
	m.nbounces = 2;
	CHECK(store_record(st, &m, &r, &err) == 0, "%s", err.msg);
	CHECK_INT(drain(l, 1000, last, sizeof(last)), 1);
	PQfinish(l);
}

static void
t_daily_stats(void)
{
	char *v = tdb_value(db,
	    "SELECT hard_bounces || '|' || soft_bounces || '|' || delayed || "
	    "'|' || complaints || '|' || autoreplies || '|' || delivered || "
	    "'|' || unknown || '|' || coalesce(hard_share_of_failures::text, "
	    "'-') FROM bounce_stats_daily WHERE domain = 'b.example' "
	    "AND day = (now() AT TIME ZONE 'UTC' - interval '1 day')::date");

	/* n@: 4 soft + 1 delayed + 1 hard; h@: 2 hard (all a day ago); twice@
	 * bounced now (no date): not in that day */
	CHECK_STR(v, "3|4|1|0|0|0|0|0.4286");
	free(v);
}

int
main(void)
{
	struct store_options o;
	struct err err = {""};
	struct store_settings s3 = {.soft_threshold = 3,
	    .soft_window_s = 30 * DAY};

	if (getenv("BOUNCER_TEST_PG") == NULL) {
		printf("SKIP test_store_suppress: BOUNCER_TEST_PG not set\n");
		return 0;
	}
	uri = tdb_fresh("bouncer_store_suppress");
	if (uri == NULL) {
		printf("FAIL test_store_suppress: no test database\n");
		return 1;
	}
	db = tdb_connect(uri);
	o = tdb_options(uri);
	if (db == NULL || store_open(&o, &st, &err) != 0 ||
	    store_migrate(st, NULL, &err) != 0 ||
	    store_apply_settings(st, &s3, &err) != 0 ||
	    store_mailbox_id(st, "rules", NULL, NULL, &mbox, &err) != 0) {
		printf("FAIL test_store_suppress: setup: %s\n", err.msg);
		return 1;
	}
	t_rules();
	RUN(t_settings_move_the_boundaries);
	RUN(t_suppressions_view_dates);
	RUN(t_notify_on_entry);
	RUN(t_notify_once_per_email);
	RUN(t_daily_stats);
	store_free(&st);
	PQfinish(db);
	tdb_drop("bouncer_store_suppress");
	free(uri);
	return test_done();
}
