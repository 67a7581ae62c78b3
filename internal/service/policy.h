/*
 * policy.h - the pass's policy step on a decoded record (record.h): the
 * report's date (dropped when before 1970 or more than a day ahead), the
 * date each bounce is recorded under, whether it counts towards
 * suppression (first_pass: record_only, max_age), a delayed report's
 * default action, and attribution (the returned original's Message-ID,
 * campaign, list and subscriber, and the configured headers kept).  The
 * store writes what this decides.  Never logs.
 */
#ifndef BOUNCER_POLICY_H
#define BOUNCER_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "record.h"

struct policy {
	int record_only; /* the mailbox's first pass, first_pass: record_only */
	int64_t max_age_s; /* > 0: older bounces do not count */
	/* header names of the returned original (NULL or "": none) */
	const char *campaign_header;
	const char *list_header;
	const char *subscriber_header;
	/* the header names kept with each bounce, in order */
	const char *const *keep;
	size_t nkeep;
};

/* Applies pol to rec at unix time now.  kept[] (pol->nkeep entries, the
 * caller's) receives the kept headers rec then points to; rec's recipient
 * array must be the caller's to change. */
void policy_apply(const struct policy *pol, int64_t now, struct record *rec,
    struct record_header *kept);

#endif
