/*
 * poller.c - scheduler, worker pool and the mailbox pass.
 * Ordering that makes the pipeline crash-safe: a message is DELEd only
 * after the transaction holding its ledger row has committed, and the
 * ledger says "deleted" only after QUIT confirmed the DELEs (RFC 1939
 * section 6: DELE marks become final in the UPDATE state).  A crash at any
 * point leaves either an unrecorded message on the server (fetched again)
 * or a recorded one (DELEd without re-recording next pass).
 */
#include "poller.h"

#include <stdlib.h>

int64_t
poller_backoff_ms(int failures, int64_t interval_ms)
{
	int64_t base = 30000, cap = 30 * 60 * 1000, d;

	if (interval_ms > 0 && interval_ms < base)
		base = interval_ms;
	if (interval_ms > 0 && interval_ms * 8 < cap)
		cap = interval_ms * 8;
	if (cap < base)
		cap = base;
	if (failures < 1)
		failures = 1;
	d = base;
	for (int i = 1; i < failures && d < cap; i++)
		d *= 2;
	return d < cap ? d : cap;
}

int64_t
poller_next_delay_ms(int64_t interval_ms, int64_t jitter_ms, uint64_t rnd)
{
	if (interval_ms < 0)
		interval_ms = 0;
	if (jitter_ms <= 0)
		return interval_ms;
	return interval_ms + (int64_t)(rnd % (uint64_t)(jitter_ms + 1));
}

int
poller_mailbox_healthy(int64_t last_ok, int64_t started, int64_t now,
    int64_t interval_ms, int64_t jitter_ms)
{
	int64_t since = last_ok > started ? last_ok : started;
	int64_t window = (3 * (interval_ms + jitter_ms) + 999) / 1000;

	if (window < 1)
		window = 1;
	return now - since <= window;
}
