/*
 * bench_store.c - bounce records written per second by the store: 100,000
 * records (50,000 bounce emails of 2 recipients each, 600 raw bytes per
 * email) recorded in batches (batch_size 50, one transaction each) and one
 * email per transaction, next to psql \copy of the same rows as the
 * ceiling, all against the PostgreSQL of tests/services.sh in one run.
 * BENCH_STORE_MESSAGES changes the number of emails, BENCH_STORE_ONLY=
 * batched|single|copy runs one of the three.  Prints figures only.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../integration/test_store_db.h"
#include "store/store.h"
#include "base/util.h"

#define NB 2 /* bounce rows per email */

static int64_t base_time; /* bounce dates: the last n seconds */

static const char *reasons[] = {"userunknown", "mailboxfull", "blocked",
    "hostunknown", "spamdetected"};
static const enum record_class classes[] = {RECORD_CLASS_HARD,
    RECORD_CLASS_SOFT, RECORD_CLASS_SOFT, RECORD_CLASS_HARD, RECORD_CLASS_SOFT};

struct data {
	size_t n;
	char (*uidl)[32];
	char (*rcpt)[NB][64];
	struct record_rcpt (*b)[NB];
	struct record *rec;
	struct store_message *m;
	char raw[600];
};

static void
fill(struct data *d, size_t n, int64_t mailbox, const char *tag)
{
	size_t i, k;

	d->n = n;
	d->uidl = xcalloc(n, sizeof(*d->uidl));
	d->rcpt = xcalloc(n, sizeof(*d->rcpt));
	d->b = xcalloc(n, sizeof(*d->b));
	d->rec = xcalloc(n, sizeof(*d->rec));
	d->m = xcalloc(n, sizeof(*d->m));
	memset(d->raw, 'x', sizeof(d->raw));
	for (i = 0; i < n; i++) {
		snprintf(d->uidl[i], sizeof(d->uidl[i]), "%s%08zx", tag, i);
		for (k = 0; k < NB; k++) {
			struct record_rcpt *b = &d->b[i][k];
			size_t r = (i + k) % 5;

			snprintf(d->rcpt[i][k], sizeof(d->rcpt[i][k]),
			    "user%zu.%zu@domain%zu.example", i, k, i % 97);
			b->recipient = d->rcpt[i][k];
			b->recipient_source = "final_recipient";
			b->cls = classes[r];
			b->reason = reasons[r];
			b->action = "failed";
			b->status =
			    classes[r] == RECORD_CLASS_HARD ? "5.1.1" : "4.2.2";
			b->reply_code = 550;
			b->diagnostic = "550 5.1.1 <user@domain.example>: "
			                "Recipient address rejected";
			b->remote_mta = "mx.domain.example";
			b->bounced_at = base_time + (int64_t)i;
		}
		d->m[i].mailbox_id = mailbox;
		d->m[i].uidl = d->uidl[i];
		d->rec[i].kind = RECORD_KIND_BOUNCE;
		d->rec[i].message_id = "<bounce@mx.example.net>";
		d->rec[i].subject = "Undelivered Mail Returned to Sender";
		d->rec[i].reporting_mta = "mx.example.net";
		d->rec[i].date = base_time + (int64_t)i;
		d->rec[i].orig_message_id = "<campaign-42.17@sender.example>";
		d->rec[i].campaign_id = "spring-sale";
		d->rec[i].rcpts = d->b[i];
		d->rec[i].nrcpts = NB;
		d->m[i].size = (int64_t)sizeof(d->raw);
		d->m[i].raw = d->raw;
		d->m[i].raw_len = sizeof(d->raw);
		d->m[i].rec = &d->rec[i];
	}
}

static void
data_free(struct data *d)
{
	free(d->uidl);
	free(d->rcpt);
	free(d->b);
	free(d->rec);
	free(d->m);
}

/* ISO 8601 UTC text of a unix time, for CSV. */
static const char *
iso(int64_t t, char out[40])
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(out, 40, "%Y-%m-%d %H:%M:%S+00", &tm);
	return out;
}

static void
report(const char *what, size_t rows, int64_t ms)
{
	printf("%-50s %7zu records %8.2f s %9.0f records/s\n", what, rows,
	    (double)ms / 1000.0,
	    ms > 0 ? (double)rows * 1000.0 / (double)ms : 0);
	fflush(stdout);
}

static int
run_store(const char *uri, int batch, int64_t mailbox, size_t n,
    const char *tag, const char *label)
{
	struct store_options o = tdb_options(uri);
	struct store *s = NULL;
	struct err err = {""};
	struct data d;
	enum store_result *res;
	size_t i, ok = 0;
	int64_t t0, ms;

	o.batch_size = batch;
	if (store_open(&o, &s, &err) != 0) {
		printf("bench_store: %s\n", err.msg);
		return -1;
	}
	fill(&d, n, mailbox, tag);
	res = xcalloc(n, sizeof(*res));
	t0 = now_ms();
	/* handed over as a pass would: max_messages (500) at a time */
	for (i = 0; i < n; i += 500) {
		size_t cnt = n - i < 500 ? n - i : 500;

		if (store_record_batch(s, d.m + i, cnt, res + i, &err) != 0) {
			printf("bench_store: %s\n", err.msg);
			break;
		}
	}
	ms = now_ms() - t0;
	for (i = 0; i < n; i++)
		ok += res[i] == STORE_WRITTEN;
	if (ok != n)
		printf("bench_store: only %zu of %zu written\n", ok, n);
	report(label, ok * NB, ms);
	free(res);
	data_free(&d);
	store_free(&s);
	return 0;
}

/* The same rows through psql \copy: messages first, then bounces with
 * the ids the messages got (sequential in one COPY). */
static int
run_copy(const char *uri, PGconn *db, int64_t mailbox, size_t n,
    const char *tag, const char *label)
{
	char mpath[] = "/tmp/bench_store_mXXXXXX";
	char bpath[] = "/tmp/bench_store_bXXXXXX";
	FILE *f;
	size_t i, k;
	int fd, rc = -1;
	int64_t t0, ms, first;
	char *cmd = NULL, *v, hex[2 * 600 + 1], ts[40];
	struct data d;

	fill(&d, n, mailbox, tag);
	for (i = 0; i < sizeof(d.raw); i++)
		snprintf(hex + 2 * i, 3, "%02x", (unsigned char)d.raw[i]);
	fd = mkstemp(mpath);
	if (fd < 0)
		goto out;
	close(fd);
	f = fopen(mpath, "w");
	if (f == NULL)
		goto out;
	for (i = 0; i < n; i++)
		fprintf(f,
		    "%" PRId64 ",%s,recorded,bounce,<bounce@mx.example.net>,"
		    "Undelivered Mail Returned to Sender,mx.example.net,"
		    "%s,600,f,\\x%s,f,now\n",
		    mailbox, d.uidl[i], iso(base_time + (int64_t)i, ts), hex);
	fclose(f);
	t0 = now_ms();
	cmd = xasprintf("PGOPTIONS='-c timezone=UTC' psql '%s' -q "
	                "-v ON_ERROR_STOP=1 -c \"\\copy messages "
	                "(mailbox_id, uidl, outcome, kind, email_message_id, "
	                "subject, reporting_mta, reported_at, size_bytes, "
	                "truncated, raw, raw_truncated, processed_at) FROM "
	                "'%s' WITH (FORMAT csv)\"",
	    uri, mpath);
	if (system(cmd) != 0) {
		printf("bench_store: psql \\copy messages failed\n");
		goto out;
	}
	ms = now_ms() - t0;
	cmd = xasprintf("SELECT min(id) FROM messages WHERE mailbox_id = "
	                "%" PRId64,
	    mailbox);
	v = tdb_value(db, cmd);
	free(cmd);
	cmd = NULL;
	first = strtoll(v, NULL, 10);
	free(v);
	fd = mkstemp(bpath);
	if (fd < 0 || (f = fdopen(fd, "w")) == NULL)
		goto out;
	for (i = 0; i < n; i++)
		for (k = 0; k < NB; k++) {
			const struct record_rcpt *b = &d.b[i][k];

			fprintf(f,
			    "%" PRId64 ",%s,domain%zu.example,%s,%s,%s,%s,%s,"
			    "%s,%d,\"%s\",%s,mx.example.net,%s,%s,"
			    "\"{}\",t,%s\n",
			    first + (int64_t)i, b->recipient, i % 97,
			    b->recipient_source, b->recipient,
			    record_class_name(b->cls), b->reason, b->action,
			    b->status, b->reply_code, b->diagnostic,
			    b->remote_mta, d.rec[i].orig_message_id,
			    d.rec[i].campaign_id, iso(b->bounced_at, ts));
		}
	fclose(f);
	free(cmd);
	t0 = now_ms();
	cmd = xasprintf("PGOPTIONS='-c timezone=UTC' psql '%s' -q "
	                "-v ON_ERROR_STOP=1 -c \"\\copy bounces (message_id, "
	                "recipient, recipient_domain, recipient_source, "
	                "final_recipient, class, reason, action, status, "
	                "reply_code, diagnostic, remote_mta, reporting_mta, "
	                "original_message_id, campaign_id, original_headers, "
	                "counts, bounced_at) FROM '%s' WITH (FORMAT csv)\"",
	    uri, bpath);
	if (system(cmd) != 0) {
		printf("bench_store: psql \\copy bounces failed\n");
		goto out;
	}
	ms += now_ms() - t0;
	report(label, n * NB, ms);
	rc = 0;
out:
	free(cmd);
	unlink(mpath);
	unlink(bpath);
	data_free(&d);
	return rc;
}

int
main(void)
{
	struct store_options o;
	struct store *s = NULL;
	struct err err = {""};
	char *uri;
	PGconn *db;
	int64_t mb[6];
	int round;
	size_t n = 50000, n_single;
	const char *env = getenv("BENCH_STORE_MESSAGES");
	const char *only = getenv("BENCH_STORE_ONLY"); /* batched|single|copy */

	if (getenv("BOUNCER_TEST_PG") == NULL) {
		printf("bench_store: BOUNCER_TEST_PG not set, skipped\n");
		return 0;
	}
	if (env != NULL && strtoul(env, NULL, 10) > 0)
		n = strtoul(env, NULL, 10);
	/* One email per transaction runs the statement-level NOTIFY trigger
	 * (and its planning) once per email: at the default size that takes
	 * many minutes, so that mode runs on 5,000 emails unless
	 * BENCH_STORE_MESSAGES asks for more. */
	n_single = (env == NULL && n > 5000) ? 5000 : n;
	base_time = now_unix() - (int64_t)n;
	uri = tdb_fresh("bouncer_store_bench");
	if (uri == NULL)
		return 1;
	db = tdb_connect(uri);
	o = tdb_options(uri);
	if (db == NULL || store_open(&o, &s, &err) != 0 ||
	    store_migrate(s, NULL, &err) != 0) {
		printf("bench_store: setup: %s\n", err.msg);
		return 1;
	}
	for (round = 0; round < 6; round++) {
		char name[16];

		snprintf(name, sizeof(name), "bench%d", round);
		if (store_mailbox_id(s, name, NULL, NULL, &mb[round], &err)) {
			printf("bench_store: setup: %s\n", err.msg);
			return 1;
		}
	}
	store_free(&s);
	printf("bench_store: %zu bounce emails x %d recipients, 600 raw bytes "
	       "each\n",
	    n, NB);
	{
		char *f = tdb_value(db,
		    "SELECT current_setting('fsync') || '/' "
		    "|| current_setting('synchronous_commit')");

		printf("bench_store: server fsync/synchronous_commit: %s%s\n",
		    f,
		    strncmp(f, "off", 3) == 0
		        ? " (a COMMIT costs no disk flush here: with fsync "
		          "on, one email per transaction pays one per email)"
		        : "");
		free(f);
	}
	/* first with the suppression NOTIFY trigger (what bouncerd does),
	 * then the storage alone */
	for (round = 0; round < 2; round++) {
		const char *t = round ? "trigger off" : "trigger on";
		char l1[80], l2[80], l3[80], tag[3][4];
		int k;

		if (round == 1 &&
		    tdb_exec(db,
		        "ALTER TABLE bounces DISABLE TRIGGER "
		        "bounces_notify_suppression") != 0)
			break;
		for (k = 0; k < 3; k++)
			snprintf(tag[k], sizeof(tag[k]), "%c%d", "bsc"[k],
			    round);
		snprintf(l1, sizeof(l1), "store, batches of 50 emails, %s", t);
		snprintf(l2, sizeof(l2), "store, one email per transaction, %s",
		    t);
		snprintf(l3, sizeof(l3), "psql \\copy of the same rows, %s", t);
		if (only == NULL || strcmp(only, "batched") == 0)
			run_store(uri, 50, mb[3 * round], n, tag[0], l1);
		if (only == NULL || strcmp(only, "single") == 0)
			run_store(uri, 1, mb[3 * round + 1], n_single, tag[1],
			    l2);
		if (only == NULL || strcmp(only, "copy") == 0)
			run_copy(uri, db, mb[3 * round + 2], n, tag[2], l3);
	}
	printf("bench_store: rows in bounces: %lld\n",
	    tdb_count(db, "SELECT count(*) FROM bounces"));
	PQfinish(db);
	tdb_drop("bouncer_store_bench");
	free(uri);
	return 0;
}
