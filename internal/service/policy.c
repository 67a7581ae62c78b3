/*
 * policy.c - counting flags, dates, default action and attribution of a
 * decoded record (policy.h).
 */
#include "service/policy.h"

/* t as a bounce date: 0 when unknown or implausible (before 1970 or more
 * than a day ahead of now). */
static int64_t
sane_time(int64_t t, int64_t now)
{
	return t <= 0 || t > now + 86400 ? 0 : t;
}

static const char *
named(const struct record *rec, const char *name)
{
	return name != NULL && *name ? record_orig_header(rec, name) : NULL;
}

void
policy_apply(const struct policy *pol, int64_t now, struct record *rec,
    struct record_header *kept)
{
	size_t nk = 0;

	rec->orig_message_id = record_orig_header(rec, "Message-ID");
	rec->campaign_id = named(rec, pol->campaign_header);
	rec->list_id = named(rec, pol->list_header);
	rec->subscriber_id = named(rec, pol->subscriber_header);
	for (size_t i = 0; i < pol->nkeep; i++) {
		const char *v = record_orig_header(rec, pol->keep[i]);

		if (v == NULL)
			continue;
		kept[nk].name = pol->keep[i];
		kept[nk++].value = v;
	}
	rec->kept_headers = kept;
	rec->nkept_headers = nk;
	rec->date = sane_time(rec->date, now);
	for (size_t i = 0; i < rec->nrcpts; i++) {
		struct record_rcpt *rc = &rec->rcpts[i];
		int64_t when = sane_time(rc->date, now);

		if (when == 0)
			when = rec->date;
		rc->bounced_at = when;
		if (rc->action == NULL && rec->kind == RECORD_KIND_DELAYED)
			rc->action = "delayed";
		rc->not_counted = 0;
		rc->not_counted_because = NULL;
		if (pol->record_only)
			rc->not_counted_because = "first_pass";
		else if (pol->max_age_s > 0 && when != 0 &&
		    when < now - pol->max_age_s)
			rc->not_counted_because = "max_age";
		rc->not_counted = rc->not_counted_because != NULL;
	}
}
