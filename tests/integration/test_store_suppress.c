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

#include "store/store.h"
#include "test.h"
#include "test_store_db.h"
#include "base/util.h"

#define DAY 86400

static char *uri;
static PGconn *db;
static struct store *st;
static int64_t mbox;
static int seq;

struct ev {
	enum record_class cls;
	const char *reason;
	const char *action;
	int64_t age_s; /* bounced this long before now */
	int not_counted; /* stored with counts = false */
	const char *addr; /* NULL: the case's address */
};

#define EV_END \
	{ \
		RECORD_CLASS_UNKNOWN, NULL, NULL, -1, 0, NULL \
	}

/* Records each event as its own bounce email. */
static int
record_events(const char *addr, const struct ev *e)
{
	struct err err = {""};
	int64_t now = now_unix();

	for (; e->age_s >= 0; e++) {
		struct record_rcpt b;
		enum store_result r = STORE_PENDING;
		char uidl[64];

		memset(&b, 0, sizeof(b));
		snprintf(uidl, sizeof(uidl), "s-%d", ++seq);
		b.recipient = e->addr ? e->addr : addr;
		b.cls = e->cls;
		b.reason = e->reason;
		b.action = e->action;
		b.bounced_at = now - e->age_s;
		b.not_counted = e->not_counted;
		b.not_counted_because = e->not_counted ? "first_pass" : NULL;
		if (tdb_record_bounce(st, mbox, uidl, &b, NULL, &r, &err) !=
		        0 ||
		    r != STORE_WRITTEN) {
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
		RECORD_CLASS_HARD, "userunknown", "failed", age, 0, NULL \
	}
#define S(age) \
	{ \
		RECORD_CLASS_SOFT, "mailboxfull", "failed", age, 0, NULL \
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
        {{RECORD_CLASS_COMPLAINT, "feedback", NULL, DAY, 0, NULL}, EV_END},
        "complaint|feedback|complaint|0|1|0"},
    {"complaint_wins_over_hard", "both@a.example",
        {H(2 * DAY), {RECORD_CLASS_COMPLAINT, "feedback", NULL, DAY, 0, NULL},
            EV_END},
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
        {S(3 * DAY), {RECORD_CLASS_SOFT, "blocked", "failed", DAY, 0, NULL},
            S(2 * DAY), EV_END},
        "soft_bounces|blocked|soft|0|0|3"},
    {"delayed_never_counts", "delayed@a.example",
        {{RECORD_CLASS_SOFT, "expired", "delayed", 4 * DAY, 0, NULL},
            {RECORD_CLASS_SOFT, "expired", "Delayed", 3 * DAY, 0, NULL},
            {RECORD_CLASS_SOFT, "expired", "delayed", 2 * DAY, 0, NULL},
            {RECORD_CLASS_SOFT, "expired", "delayed", DAY, 0, NULL}, EV_END},
        "(none)"},
    {"autoreplies_never_count", "vacation@a.example",
        {{RECORD_CLASS_AUTOREPLY, "vacation", NULL, 3 * DAY, 0, NULL},
            {RECORD_CLASS_AUTOREPLY, "vacation", NULL, 2 * DAY, 0, NULL},
            {RECORD_CLASS_AUTOREPLY, "vacation", NULL, DAY, 0, NULL}, EV_END},
        "(none)"},
    {"unknown_never_counts", "unknown@a.example",
        {{RECORD_CLASS_UNKNOWN, "undefined", NULL, 3 * DAY, 0, NULL},
            {RECORD_CLASS_UNKNOWN, "undefined", NULL, 2 * DAY, 0, NULL},
            {RECORD_CLASS_UNKNOWN, "undefined", NULL, DAY, 0, NULL}, EV_END},
        "(none)"},
    {"delivered_never_counts", "ok@a.example",
        {{RECORD_CLASS_DELIVERED, "delivered", "delivered", 3 * DAY, 0, NULL},
            {RECORD_CLASS_DELIVERED, "delivered", "delivered", 2 * DAY, 0,
                NULL},
            {RECORD_CLASS_DELIVERED, "delivered", "delivered", DAY, 0, NULL},
            EV_END},
        "(none)"},
    {"delivered_after_soft_clears_them", "cleared@a.example",
        {S(3 * DAY), S(2 * DAY), S(DAY),
            {RECORD_CLASS_DELIVERED, "delivered", "delivered", DAY / 2, 0,
                NULL},
            EV_END},
        "(none)"},
    {"delivered_between_soft_leaves_two", "between@a.example",
        {S(3 * DAY),
            {RECORD_CLASS_DELIVERED, "delivered", "delivered", 5 * DAY / 2, 0,
                NULL},
            S(2 * DAY), S(DAY), EV_END},
        "(none)"},
    {"delivered_before_soft_changes_nothing", "before@a.example",
        {{RECORD_CLASS_DELIVERED, "delivered", "delivered", 5 * DAY, 0, NULL},
            S(3 * DAY), S(2 * DAY), S(DAY), EV_END},
        "soft_bounces|mailboxfull|soft|0|0|3"},
    {"delivered_does_not_clear_hard", "hardok@a.example",
        {H(2 * DAY),
            {RECORD_CLASS_DELIVERED, "delivered", "delivered", DAY, 0, NULL},
            EV_END},
        "hard_bounce|userunknown|hard|1|0|0"},
    {"not_counted_rows_never_count", "firstpass@a.example",
        {{RECORD_CLASS_HARD, "userunknown", "failed", DAY, 1, NULL},
            {RECORD_CLASS_COMPLAINT, "feedback", NULL, DAY, 1, NULL},
            {RECORD_CLASS_SOFT, "mailboxfull", "failed", DAY, 1, NULL},
            {RECORD_CLASS_SOFT, "mailboxfull", "failed", DAY, 1, NULL},
            {RECORD_CLASS_SOFT, "mailboxfull", "failed", DAY, 1, NULL}, EV_END},
        "(none)"},
    {"address_case_is_folded", "mixed@a.example",
        {{RECORD_CLASS_SOFT, "mailboxfull", "failed", 3 * DAY, 0,
             "Mixed@A.Example"},
            {RECORD_CLASS_SOFT, "mailboxfull", "failed", 2 * DAY, 0,
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
	const struct ev delayed[] = {{RECORD_CLASS_SOFT, "expired", "delayed",
	                                 DAY, 0, NULL},
	    EV_END};
	long long id;
	char *want;

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
	id = tdb_count(db, "SELECT max(id) FROM suppression_changes");
	want = xasprintf("{\"id\" : %lld, \"change\" : \"added\", "
	                 "\"address\" : \"n@b.example\", \"reason\" : "
	                 "\"mailboxfull\", \"class\" : \"soft\", "
	                 "\"suppressed_because\" : \"soft_bounces\"}",
	    id);
	CHECK_STR(last, want);
	free(want);
	record_events("n@b.example", soft); /* already on the list */
	CHECK_INT(drain(l, 300, last, sizeof(last)), 0);
	/* a hard bounce of a listed address changes the reason: announced
	 * as such, the address does not enter again */
	record_events("n@b.example", hard);
	CHECK_INT(drain(l, 1000, last, sizeof(last)), 1);
	CHECK(strstr(last, "\"change\" : \"reason_changed\"") != NULL, "%s",
	    last);
	CHECK(strstr(last, "\"suppressed_because\" : \"hard_bounce\"") != NULL,
	    "%s", last);
	record_events("h@b.example", hard);
	CHECK_INT(drain(l, 1000, last, sizeof(last)), 1);
	id = tdb_count(db, "SELECT max(id) FROM suppression_changes");
	want = xasprintf("{\"id\" : %lld, \"change\" : \"added\", "
	                 "\"address\" : \"h@b.example\", \"reason\" : "
	                 "\"userunknown\", \"class\" : \"hard\", "
	                 "\"suppressed_because\" : \"hard_bounce\"}",
	    id);
	CHECK_STR(last, want);
	free(want);
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
	struct record_rcpt b[2];
	struct record rec;
	struct store_message m;
	struct err err = {""};
	enum store_result r;

	if (l == NULL)
		return;
	CHECK(tdb_exec(l, "LISTEN " STORE_NOTIFY_CHANNEL) == 0, "listen");
	memset(b, 0, sizeof(b));
	memset(&rec, 0, sizeof(rec));
	memset(&m, 0, sizeof(m));
	b[0].recipient = b[1].recipient = "twice@b.example";
	b[0].cls = b[1].cls = RECORD_CLASS_HARD;
	b[0].reason = b[1].reason = "userunknown";
	m.mailbox_id = mbox;
	m.uidl = "s-twice";
	m.rec = &rec;
	rec.kind = RECORD_KIND_BOUNCE;
	rec.rcpts = b;
	rec.nrcpts = 2;
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

/* Records one bounce of addr, age_s before now, with the counting flags
 * the pass's policy step sets under the given policy (first_pass:
 * record_only, max_age). */
static void
rec1(const char *addr, enum record_class cls, const char *reason, int64_t age_s,
    int record_only, int64_t max_age_s)
{
	struct record_rcpt b;
	struct record rec;
	struct store_message m;
	struct err err = {""};
	enum store_result r = STORE_PENDING;
	char uidl[64];

	memset(&b, 0, sizeof(b));
	memset(&rec, 0, sizeof(rec));
	memset(&m, 0, sizeof(m));
	snprintf(uidl, sizeof(uidl), "p-%d", ++seq);
	b.recipient = addr;
	b.cls = cls;
	b.reason = reason;
	b.action = cls == RECORD_CLASS_DELIVERED ? "delivered" : "failed";
	/* age 0: no date in the report, the time it is stored */
	b.bounced_at = age_s ? now_unix() - age_s : 0;
	if (record_only) {
		b.not_counted = 1;
		b.not_counted_because = "first_pass";
	} else if (max_age_s > 0 && b.bounced_at != 0 &&
	    b.bounced_at < now_unix() - max_age_s) {
		b.not_counted = 1;
		b.not_counted_because = "max_age";
	}
	rec.kind = RECORD_KIND_BOUNCE;
	rec.rcpts = &b;
	rec.nrcpts = 1;
	m.mailbox_id = mbox;
	m.uidl = uidl;
	m.size = -1;
	m.rec = &rec;
	if (store_record(st, &m, &r, &err) != 0 || r != STORE_WRITTEN)
		test_fail_at(__FILE__, __LINE__, "record: %s", err.msg);
}

static char *
why_not(const char *addr)
{
	char *sql = xasprintf("SELECT string_agg(coalesce(counted_as, '-') || "
	                      "'/' || coalesce(not_counted_because, '-'), ',' "
	                      "ORDER BY bounced_at) FROM suppression_evidence "
	                      "WHERE address = '%s'",
	    addr);
	char *v = tdb_value(db, sql);

	free(sql);
	return v;
}

#define CHECK_ROW(addr, want) \
	do { \
		char *v_ = row_of(addr); \
		CHECK_STR(v_, want); \
		free(v_); \
	} while (0)
#define CHECK_WHY(addr, want) \
	do { \
		char *v_ = why_not(addr); \
		CHECK_STR(v_, want); \
		free(v_); \
	} while (0)

static const struct store_override overrides[] = {
    {.reason = "blocked", .never = 1},
    {.reason = "mailboxfull", .hard_after = 2},
};

static void
policy_begin(const char *name)
{
	struct err err = {""};
	struct store_settings set = {.soft_threshold = 3,
	    .soft_window_s = 30 * DAY,
	    .overrides = overrides,
	    .noverrides = 2};

	test_begin("policy %s", name);
	if (store_apply_settings(st, &set, &err) != 0)
		test_fail_at(__FILE__, __LINE__, "%s", err.msg);
}

static void
t_policy(void)
{
	struct err err = {""};
	struct store_settings plain = {.soft_threshold = 3,
	    .soft_window_s = 30 * DAY};
	struct store_override bad = {.reason = "mailboxfull"};
	struct store_settings badset = {.soft_threshold = 3,
	    .soft_window_s = DAY,
	    .overrides = &bad,
	    .noverrides = 1};

	policy_begin("override_never");
	rec1("ov1@c.example", RECORD_CLASS_SOFT, "blocked", 4 * DAY, 0, 0);
	rec1("ov1@c.example", RECORD_CLASS_SOFT, "blocked", 3 * DAY, 0, 0);
	rec1("ov1@c.example", RECORD_CLASS_SOFT, "blocked", 2 * DAY, 0, 0);
	rec1("ov1@c.example", RECORD_CLASS_HARD, "blocked", DAY, 0, 0);
	CHECK_ROW("ov1@c.example", "(none)");
	CHECK_WHY("ov1@c.example",
	    "-/reason_never_counts,-/reason_never_counts,"
	    "-/reason_never_counts,-/reason_never_counts");
	test_end();

	policy_begin("override_hard_after_minus_one");
	rec1("ov2@c.example", RECORD_CLASS_SOFT, "mailboxfull", DAY, 0, 0);
	CHECK_ROW("ov2@c.example", "(none)");
	test_end();

	policy_begin("override_hard_after_reached");
	rec1("ov3@c.example", RECORD_CLASS_SOFT, "mailboxfull", 2 * DAY, 0, 0);
	rec1("ov3@c.example", RECORD_CLASS_SOFT, "mailboxfull", DAY, 0, 0);
	CHECK_ROW("ov3@c.example", "reason_override|mailboxfull|soft|0|0|0");
	CHECK_WHY("ov3@c.example", "override/-,override/-");
	test_end();

	policy_begin("override_reason_is_not_an_ordinary_soft_bounce");
	rec1("ov4@c.example", RECORD_CLASS_SOFT, "mailboxfull", 3 * DAY, 0, 0);
	rec1("ov4@c.example", RECORD_CLASS_SOFT, "spamdetected", 2 * DAY, 0, 0);
	rec1("ov4@c.example", RECORD_CLASS_SOFT, "expired", DAY, 0, 0);
	CHECK_ROW("ov4@c.example", "(none)");
	test_end();

	policy_begin("override_hard_after_is_not_windowed");
	rec1("ov5@c.example", RECORD_CLASS_SOFT, "mailboxfull", 100 * DAY, 0,
	    0);
	rec1("ov5@c.example", RECORD_CLASS_SOFT, "mailboxfull", 90 * DAY, 0, 0);
	CHECK_ROW("ov5@c.example", "reason_override|mailboxfull|soft|0|0|0");
	test_end();

	policy_begin("override_cleared_by_delivery");
	rec1("ov6@c.example", RECORD_CLASS_SOFT, "mailboxfull", 3 * DAY, 0, 0);
	rec1("ov6@c.example", RECORD_CLASS_DELIVERED, "delivered", 2 * DAY, 0,
	    0);
	rec1("ov6@c.example", RECORD_CLASS_SOFT, "mailboxfull", DAY, 0, 0);
	CHECK_ROW("ov6@c.example", "(none)");
	CHECK_WHY("ov6@c.example",
	    "-/before_delivery_report,-/not_a_failure,override/-");
	test_end();

	policy_begin("override_validated");
	CHECK(store_apply_settings(st, &badset, &err) == -1,
	    "hard_after 0 accepted");
	test_end();

	policy_begin("max_age_edge");
	rec1("old@c.example", RECORD_CLASS_HARD, "userunknown", 7 * DAY + 60, 0,
	    7 * DAY);
	CHECK_ROW("old@c.example", "(none)");
	CHECK_WHY("old@c.example", "-/max_age");
	rec1("old2@c.example", RECORD_CLASS_HARD, "userunknown", 7 * DAY - 60,
	    0, 7 * DAY);
	CHECK_ROW("old2@c.example", "hard_bounce|userunknown|hard|1|0|0");
	test_end();

	policy_begin("record_only_first_pass");
	rec1("first@c.example", RECORD_CLASS_HARD, "userunknown", DAY, 1, 0);
	rec1("first@c.example", RECORD_CLASS_COMPLAINT, "feedback", DAY, 1, 0);
	CHECK_ROW("first@c.example", "(none)");
	CHECK_WHY("first@c.example", "-/first_pass,-/first_pass");
	CHECK_INT(tdb_count(db,
	              "SELECT count(*) FROM bounces WHERE recipient "
	              "= 'first@c.example' AND NOT counts"),
	    2);
	test_end();

	policy_begin("unsuppress_then_new_bounce");
	rec1("lift@c.example", RECORD_CLASS_HARD, "userunknown", DAY, 0, 0);
	CHECK_ROW("lift@c.example", "hard_bounce|userunknown|hard|1|0|0");
	CHECK_SQL(db,
	    "SELECT unsuppress('Lift@C.example', "
	    "'confirmed by phone', 'ops-jane')",
	    "t");
	CHECK_ROW("lift@c.example", "(none)");
	CHECK_SQL(db, "SELECT unsuppress('lift@c.example', 'again')", "f");
	CHECK_SQL(db,
	    "SELECT count(*) || ' ' || min(lifted_by) || "
	    "' ' || min(was_suppressed_because) || ' ' || "
	    "min(was_reason) FROM suppression_lifts "
	    "WHERE address = 'lift@c.example'",
	    "1 ops-jane hard_bounce userunknown");
	CHECK(tdb_exec(db, "SELECT unsuppress('lift@c.example', '')") == -1,
	    "a lift without a note was taken");
	/* a late report of a bounce from before the lift does not count */
	rec1("lift@c.example", RECORD_CLASS_HARD, "userunknown", DAY / 2, 0, 0);
	CHECK_ROW("lift@c.example", "(none)");
	/* a new bounce after the lift does */
	rec1("lift@c.example", RECORD_CLASS_SOFT, "mailboxfull", 0, 0, 0);
	CHECK_ROW("lift@c.example", "(none)");
	rec1("lift@c.example", RECORD_CLASS_HARD, "hostunknown", 0, 0, 0);
	CHECK_ROW("lift@c.example", "hard_bounce|hostunknown|hard|1|0|0");
	CHECK_WHY("lift@c.example",
	    "-/before_unsuppress,-/before_unsuppress,override/-,hard/-");
	test_end();

	test_begin("policy overrides removed by new settings");
	CHECK(store_apply_settings(st, &plain, &err) == 0, "%s", err.msg);
	CHECK_INT(tdb_count(db, "SELECT count(*) FROM reason_overrides"), 0);
	CHECK_ROW("ov4@c.example", "soft_bounces|expired|soft|0|0|3");
	test_end();
}

/* A mailbox added with 200 old bounces under first_pass: record_only:
 * nothing is suppressed; once the first pass is done a new hard bounce
 * suppresses its address. */
static void
t_first_pass_backlog(void)
{
	struct err err = {""};
	struct store_message *m;
	struct record *rec;
	struct record_rcpt *b;
	enum store_result *res;
	char(*u)[32], (*a)[64];
	int64_t mb2 = 0;
	int pending = -1, i, ok = 0;

	CHECK(store_mailbox_id(st, "backlog", NULL, NULL, &mb2, &err) == 0,
	    "%s", err.msg);
	CHECK(store_mailbox_first_pass(st, mb2, &pending, &err) == 0, "%s",
	    err.msg);
	CHECK_INT(pending, 1);
	m = xcalloc(200, sizeof(*m));
	rec = xcalloc(200, sizeof(*rec));
	b = xcalloc(200, sizeof(*b));
	res = xcalloc(200, sizeof(*res));
	u = xcalloc(200, sizeof(*u));
	a = xcalloc(200, sizeof(*a));
	for (i = 0; i < 200; i++) {
		snprintf(u[i], sizeof(u[i]), "old-%d", i);
		snprintf(a[i], sizeof(a[i]), "backlog%d@d.example", i % 150);
		b[i].recipient = a[i];
		b[i].cls = i % 2 ? RECORD_CLASS_HARD : RECORD_CLASS_COMPLAINT;
		b[i].reason = i % 2 ? "userunknown" : "feedback";
		b[i].bounced_at = now_unix() - (int64_t)(i + 1) * 3600;
		/* the pass marks what it records during the first pass */
		b[i].not_counted = pending;
		b[i].not_counted_because = pending ? "first_pass" : NULL;
		rec[i].kind = RECORD_KIND_BOUNCE;
		rec[i].rcpts = &b[i];
		rec[i].nrcpts = 1;
		m[i].mailbox_id = mb2;
		m[i].uidl = u[i];
		m[i].size = -1;
		m[i].rec = &rec[i];
	}
	CHECK(store_record_batch(st, m, 200, res, &err) == 0, "%s", err.msg);
	for (i = 0; i < 200; i++)
		ok += res[i] == STORE_WRITTEN;
	CHECK_INT(ok, 200);
	CHECK(store_mailbox_first_pass_done(st, mb2, &err) == 0, "%s", err.msg);
	CHECK(store_mailbox_first_pass(st, mb2, &pending, &err) == 0, "%s",
	    err.msg);
	CHECK_INT(pending, 0);
	CHECK_INT(tdb_count(db,
	              "SELECT count(*) FROM suppressions WHERE "
	              "domain = 'd.example'"),
	    0);
	CHECK_INT(tdb_count(db,
	              "SELECT count(*) FROM bounces WHERE "
	              "recipient_domain = 'd.example' AND NOT counts "
	              "AND not_counted_because = 'first_pass'"),
	    200);
	/* the next pass counts */
	snprintf(u[0], sizeof(u[0]), "new-0");
	b[0].cls = RECORD_CLASS_HARD;
	b[0].reason = "userunknown";
	b[0].bounced_at = 0;
	b[0].not_counted = pending;
	b[0].not_counted_because = pending ? "first_pass" : NULL;
	CHECK(store_record(st, &m[0], &res[0], &err) == 0, "%s", err.msg);
	CHECK_INT(res[0], STORE_WRITTEN);
	CHECK_ROW("backlog0@d.example", "hard_bounce|userunknown|hard|1|0|0");
	CHECK_INT(tdb_count(db,
	              "SELECT count(*) FROM suppressions WHERE "
	              "domain = 'd.example'"),
	    1);
	free(m);
	free(rec);
	free(b);
	free(res);
	free(u);
	free(a);
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
	t_policy();
	RUN(t_first_pass_backlog);
	store_free(&st);
	PQfinish(db);
	tdb_drop("bouncer_store_suppress");
	free(uri);
	return test_done();
}
