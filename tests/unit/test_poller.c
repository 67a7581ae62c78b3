/*
 * test_poller.c - the scheduling arithmetic of the poller: backoff,
 * jitter and the health window (the pass itself is tested end to end in
 * tests/integration/).
 */
#include "service/poller.h"
#include "test.h"

static const struct {
	int failures;
	int64_t interval, want;
} backoff_rows[] = {
    {1, 300000, 30000}, {2, 300000, 60000}, {3, 300000, 120000},
    {6, 300000, 960000}, {7, 300000, 1800000}, /* capped at 30 min */
    {50, 300000, 1800000}, {1, 60000, 30000}, {3, 60000, 120000},
    {5, 60000, 480000}, /* cap: 8 x interval */
    {9, 60000, 480000},
    {1, 1000, 1000}, /* short intervals back off from the interval */
    {2, 1000, 2000}, {4, 1000, 8000}, {10, 1000, 8000}, {0, 1000, 1000},
    {1, 7200000, 30000}, {30, 7200000, 1800000},
    {1000000, 300000, 1800000}, /* no overflow */
};

static void
t_backoff(void)
{
	for (size_t i = 0; i < sizeof(backoff_rows) / sizeof(backoff_rows[0]);
	     i++) {
		test_begin("backoff[%zu] %d x %lld", i,
		    backoff_rows[i].failures,
		    (long long)backoff_rows[i].interval);
		CHECK_INT(poller_backoff_ms(backoff_rows[i].failures,
		              backoff_rows[i].interval),
		    backoff_rows[i].want);
		test_end();
	}
}

static void
t_backoff_monotonic(void)
{
	int64_t prev = 0;

	for (int f = 1; f < 40; f++) {
		int64_t d = poller_backoff_ms(f, 120000);
		CHECK(d >= prev, "failures %d: %lld < %lld", f, (long long)d,
		    (long long)prev);
		prev = d;
	}
}

static void
t_jitter(void)
{
	int64_t lo = INT64_MAX, hi = 0;

	CHECK_INT(poller_next_delay_ms(60000, 0, 12345), 60000);
	for (uint64_t r = 0; r < 100000; r += 7) {
		int64_t d = poller_next_delay_ms(60000, 10000, r * 2654435761u);
		if (d < lo)
			lo = d;
		if (d > hi)
			hi = d;
	}
	CHECK(lo >= 60000 && lo < 60500, "lo %lld", (long long)lo);
	CHECK(hi <= 70000 && hi > 69500, "hi %lld", (long long)hi);
	CHECK_INT(poller_next_delay_ms(-5, 0, 1), 0);
}

static void
t_health(void)
{
	/* interval 60 s: healthy within 180 s of the last success */
	CHECK(poller_mailbox_healthy(1000, 900, 1100, 60000, 0), "recent");
	CHECK(poller_mailbox_healthy(1000, 900, 1180, 60000, 0), "edge");
	CHECK(!poller_mailbox_healthy(1000, 900, 1181, 60000, 0), "stale");
	/* never succeeded: grace from start */
	CHECK(poller_mailbox_healthy(0, 1000, 1100, 60000, 0), "grace");
	CHECK(!poller_mailbox_healthy(0, 1000, 1200, 60000, 0), "no success");
	/* jitter widens the window */
	CHECK(poller_mailbox_healthy(1000, 900, 1200, 60000, 10000), "jitter");
}

int
main(void)
{
	t_backoff();
	RUN(t_backoff_monotonic);
	RUN(t_jitter);
	RUN(t_health);
	return test_done();
}
