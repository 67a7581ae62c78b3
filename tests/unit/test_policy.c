/*
 * test_policy.c - the pass's policy step (service/policy.h): dates,
 * counting flags, the default action of a delayed report, attribution.
 */
#include <string.h>

#include "service/policy.h"
#include "test.h"

#define NOW 1800000000

static struct record_header orig[] = {
    {"Message-ID", "<m1@example.com>"},
    {"X-Campaign", "spring"},
    {"List-Id", "<news.example.com>"},
    {"x-subscriber", "42"},
};

static void
fill(struct record *rec, struct record_rcpt *rc, size_t n)
{
	memset(rec, 0, sizeof(*rec));
	memset(rc, 0, n * sizeof(*rc));
	rec->kind = RECORD_KIND_BOUNCE;
	rec->rcpts = rc;
	rec->nrcpts = n;
	rec->orig_headers = orig;
	rec->norig_headers = sizeof(orig) / sizeof(orig[0]);
}

static void
t_dates(void)
{
	struct policy pol = {0};
	struct record rec;
	struct record_rcpt rc[4];
	struct record_header kept[1];

	fill(&rec, rc, 4);
	rec.date = NOW - 100;
	rc[0].date = NOW - 50; /* its own date */
	rc[1].date = 0; /* the report's */
	rc[2].date = NOW + 2 * 86400; /* too far ahead: the report's */
	rc[3].date = -5;
	policy_apply(&pol, NOW, &rec, kept);
	CHECK_INT(rc[0].bounced_at, NOW - 50);
	CHECK_INT(rc[1].bounced_at, NOW - 100);
	CHECK_INT(rc[2].bounced_at, NOW - 100);
	CHECK_INT(rc[3].bounced_at, NOW - 100);
	rec.date = NOW + 3 * 86400; /* and the report's too: unknown */
	policy_apply(&pol, NOW, &rec, kept);
	CHECK_INT(rec.date, 0);
	CHECK_INT(rc[1].bounced_at, 0);
	CHECK_INT(rc[0].not_counted, 0);
	CHECK(rc[0].not_counted_because == NULL, "counts");
}

static void
t_counting(void)
{
	struct policy pol = {0};
	struct record rec;
	struct record_rcpt rc[2];
	struct record_header kept[1];

	fill(&rec, rc, 2);
	rc[0].date = NOW - 10 * 86400;
	rc[1].date = NOW - 86400;
	pol.max_age_s = 7 * 86400;
	policy_apply(&pol, NOW, &rec, kept);
	CHECK_INT(rc[0].not_counted, 1);
	CHECK_STR(rc[0].not_counted_because, "max_age");
	CHECK_INT(rc[1].not_counted, 0);
	/* the first pass of a mailbox counts nothing, whatever the age */
	pol.record_only = 1;
	policy_apply(&pol, NOW, &rec, kept);
	CHECK_STR(rc[0].not_counted_because, "first_pass");
	CHECK_STR(rc[1].not_counted_because, "first_pass");
	/* an unknown date is never too old */
	pol.record_only = 0;
	rc[0].date = 0;
	policy_apply(&pol, NOW, &rec, kept);
	CHECK_INT(rc[0].not_counted, 0);
}

static void
t_action(void)
{
	struct policy pol = {0};
	struct record rec;
	struct record_rcpt rc[2];
	struct record_header kept[1];

	fill(&rec, rc, 2);
	rec.kind = RECORD_KIND_DELAYED;
	rc[1].action = "relayed";
	policy_apply(&pol, NOW, &rec, kept);
	CHECK_STR(rc[0].action, "delayed");
	CHECK_STR(rc[1].action, "relayed");
	rec.kind = RECORD_KIND_BOUNCE;
	rc[0].action = NULL;
	policy_apply(&pol, NOW, &rec, kept);
	CHECK(rc[0].action == NULL, "a bounce gets no default action");
}

static void
t_attribution(void)
{
	const char *keep[] = {"x-campaign", "X-Missing", "List-Id"};
	struct policy pol = {
	    .campaign_header = "X-Campaign",
	    .list_header = "",
	    .subscriber_header = "X-Subscriber",
	    .keep = keep,
	    .nkeep = 3,
	};
	struct record rec;
	struct record_rcpt rc[1];
	struct record_header kept[3];

	fill(&rec, rc, 1);
	policy_apply(&pol, NOW, &rec, kept);
	CHECK_STR(rec.orig_message_id, "<m1@example.com>");
	CHECK_STR(rec.campaign_id, "spring");
	CHECK(rec.list_id == NULL, "no list header configured");
	CHECK_STR(rec.subscriber_id, "42");
	CHECK_INT(rec.nkept_headers, 2);
	CHECK(rec.kept_headers == kept, "kept headers in the caller's array");
	CHECK_STR(kept[0].name, "x-campaign");
	CHECK_STR(kept[0].value, "spring");
	CHECK_STR(kept[1].name, "List-Id");
	CHECK_STR(kept[1].value, "<news.example.com>");
}

int
main(void)
{
	RUN(t_dates);
	RUN(t_counting);
	RUN(t_action);
	RUN(t_attribution);
	return test_done();
}
