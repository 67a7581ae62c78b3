/*
 * test_metrics.c - counters, bounded label sets, escaping and the
 * Prometheus text rendering of internal/metrics.
 */
#include <pthread.h>
#include <stdint.h>

#include "base/buf.h"
#include "service/metrics.h"
#include "test.h"

static char *
render(struct metrics *m)
{
	struct buf b;
	char *s;

	buf_init(&b, 16 << 20);
	CHECK(metrics_render(m, &b) == 0, "render fits");
	s = strdup(buf_cstr(&b));
	buf_free(&b);
	return s;
}

static void
t_counters(void)
{
	struct metrics *m = metrics_new("1.2.3");
	int a = metrics_mailbox(m, "alpha");
	int b = metrics_mailbox(m, "beta");
	char *txt;

	CHECK_INT(a, 0);
	CHECK_INT(b, 1);
	CHECK_INT(metrics_mailbox(m, "alpha"), 0);
	metrics_add_fetched(m, a, 3);
	metrics_add_fetched(m, a, 2);
	metrics_add_recorded(m, a, 4);
	metrics_add_deleted(m, b, 7);
	metrics_add_error(m, b, METRICS_ERR_AUTH);
	metrics_add_error(m, b, METRICS_ERR_AUTH);
	metrics_add_fetched(m, 99, 1); /* out of range: ignored */
	metrics_add_bounce(m, "hard", "userunknown");
	metrics_add_bounce(m, "hard", "userunknown");
	metrics_add_bounce(m, "soft", "mailboxfull");
	metrics_pass(m, a, 0.3, 1, 1700000000);
	metrics_pass(m, a, 42, 0, 1700000100);
	metrics_set_db_up(m, 1);
	CHECK_INT(metrics_get_fetched(m, a), 5);
	CHECK_INT(metrics_get_recorded(m, a), 4);
	CHECK_INT(metrics_get_deleted(m, b), 7);
	CHECK_INT(metrics_get_errors(m, b, METRICS_ERR_AUTH), 2);
	CHECK_INT(metrics_last_success(m, a), 1700000000);
	CHECK_INT(metrics_last_success(m, b), 0);
	txt = render(m);
	CHECK(strstr(txt, "bouncerd_build_info{version=\"1.2.3\"} 1\n"), "%s",
	    txt);
	CHECK(strstr(txt,
	          "bouncerd_messages_fetched_total{mailbox=\"alpha\"} "
	          "5\n"),
	    "fetched");
	CHECK(strstr(txt,
	          "bouncerd_messages_deleted_total{mailbox=\"beta\"} "
	          "7\n"),
	    "deleted");
	CHECK(strstr(txt,
	          "bouncerd_errors_total{mailbox=\"beta\",kind="
	          "\"auth\"} 2\n"),
	    "errors");
	CHECK(strstr(txt,
	          "bouncerd_bounces_total{class=\"hard\",reason="
	          "\"userunknown\"} 2\n"),
	    "bounces");
	CHECK(strstr(txt,
	          "bouncerd_pass_duration_seconds_bucket{mailbox="
	          "\"alpha\",le=\"0.5\"} 1\n"),
	    "bucket 0.5");
	CHECK(strstr(txt,
	          "bouncerd_pass_duration_seconds_bucket{mailbox="
	          "\"alpha\",le=\"60\"} 2\n"),
	    "bucket 60 cumulative");
	CHECK(strstr(txt,
	          "bouncerd_pass_duration_seconds_count{mailbox="
	          "\"alpha\"} 2\n"),
	    "count");
	CHECK(strstr(txt,
	          "bouncerd_last_success_timestamp_seconds{mailbox="
	          "\"alpha\"} 1700000000\n"),
	    "last success");
	CHECK(strstr(txt, "bouncerd_database_up 1\n"), "db up");
	CHECK(strstr(txt, "# TYPE bouncerd_bounces_total counter\n"), "type");
	free(txt);
	metrics_free(&m);
	CHECK(m == NULL, "free sets NULL");
	metrics_free(&m);
}

static void
t_escape(void)
{
	struct metrics *m = metrics_new("v\"1\\\n");
	char *txt;

	metrics_mailbox(m, "we\"ird\\box\nx");
	txt = render(m);
	CHECK(strstr(txt, "version=\"v\\\"1\\\\\\n\"") != NULL, "%s", txt);
	CHECK(strstr(txt, "{mailbox=\"we\\\"ird\\\\box\\nx\"}") != NULL, "%s",
	    txt);
	/* no raw newline inside any label set */
	for (char *p = txt; (p = strchr(p, '{')) != NULL; p++)
		CHECK(strchr(p, '\n') > strchr(p, '}'), "newline in labels");
	free(txt);
	metrics_free(&m);
}

static void
t_bounded(void)
{
	struct metrics *m = metrics_new("x");
	char name[64];
	int full = 0, ok = 1;
	char *txt;

	for (int i = 0; i < METRICS_MAX_MAILBOXES + 10; i++) {
		snprintf(name, sizeof(name), "mb%d", i);
		int idx = metrics_mailbox(m, name);
		if (idx < 0)
			full++;
		else if (idx != i)
			ok = 0;
	}
	CHECK(ok, "indexes in order");
	CHECK_INT(full, 10);
	for (int i = 0; i < 1000; i++) {
		snprintf(name, sizeof(name), "r%d", i);
		metrics_add_bounce(m, "soft", name);
	}
	metrics_add_bounce(m, "soft", "bad\x01label");
	metrics_add_bounce(m, NULL, "");
	txt = render(m);
	int lines = 0;
	for (char *p = txt; (p = strstr(p, "bouncerd_bounces_total{")) != NULL;
	     p++)
		lines++;
	CHECK(lines <= METRICS_MAX_REASONS, "bounded reasons: %d", lines);
	CHECK(strstr(txt, "reason=\"other\"") != NULL, "other bucket");
	CHECK(strstr(txt, "\x01") == NULL, "control byte dropped");
	free(txt);
	metrics_free(&m);
}

static struct metrics *shared;

static void *
worker(void *arg)
{
	int mb = *(int *)arg;

	for (int i = 0; i < 10000; i++) {
		metrics_add_fetched(shared, mb, 1);
		metrics_add_bounce(shared, "hard", "userunknown");
	}
	return NULL;
}

static void
t_threads(void)
{
	pthread_t th[4];
	int mb;

	shared = metrics_new("x");
	mb = metrics_mailbox(shared, "a");
	for (int i = 0; i < 4; i++)
		pthread_create(&th[i], NULL, worker, &mb);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	CHECK_INT(metrics_get_fetched(shared, mb), 40000);
	char *txt = render(shared);
	CHECK(strstr(txt, "reason=\"userunknown\"} 40000\n") != NULL, "%s",
	    txt);
	free(txt);
	metrics_free(&shared);
}

static void
t_capped_output(void)
{
	struct metrics *m = metrics_new("x");
	struct buf b;

	metrics_mailbox(m, "a");
	buf_init(&b, 64);
	CHECK_INT(metrics_render(m, &b), -1);
	CHECK(b.len <= 64, "cap kept");
	buf_free(&b);
	metrics_free(&m);
}

int
main(void)
{
	RUN(t_counters);
	RUN(t_escape);
	RUN(t_bounded);
	RUN(t_threads);
	RUN(t_capped_output);
	return test_done();
}
