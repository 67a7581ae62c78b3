/*
 * test_store_first_pass.c - end to end through Dovecot POP3S, the decoder,
 * the poller and the store: a mailbox added with 200 old hard bounces
 * under defaults.first_pass: record_only is recorded in full without
 * suppressing anyone; on the next pass a new hard bounce suppresses its
 * address.  Uses the last test mailbox of BOUNCER_TEST_POP3_USERS; skips
 * without the test services.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "service/metrics.h"
#include "service/poller.h"
#include "store/store.h"
#include "test.h"
#include "test_store_db.h"
#include "base/util.h"

#define NOLD 200

static char *uri;
static PGconn *db;
static char user[64], pass[64];
static char *maildir;

/* The last user:password pair of BOUNCER_TEST_POP3_USERS. */
static int
pick_user(void)
{
	const char *all = getenv("BOUNCER_TEST_POP3_USERS");
	const char *last, *colon;

	if (all == NULL || (last = strrchr(all, ',')) == NULL)
		return -1;
	last++;
	colon = strchr(last, ':');
	if (colon == NULL || (size_t)(colon - last) >= sizeof(user))
		return -1;
	snprintf(user, sizeof(user), "%.*s", (int)(colon - last), last);
	snprintf(pass, sizeof(pass), "%s", colon + 1);
	return 0;
}

static int
clear_mailbox(void)
{
	char *cmd = xasprintf("find '%s/new' '%s/cur' '%s/tmp' -type f -delete "
	                      "&& rm -f '%s'/dovecot*",
	    maildir, maildir, maildir, maildir);
	int rc = system(cmd);

	free(cmd);
	return rc == 0 ? 0 : -1;
}

/* A DSN for <rcpt>, dated `when`, dropped into the Maildir. */
static int
drop_dsn(const char *tag, const char *rcpt, time_t when)
{
	char date[64], *tmp, *dst, *text;
	struct tm tm;
	FILE *f;
	int rc = -1;

	gmtime_r(&when, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	text = xasprintf(
	    "Return-Path: <>\r\n"
	    "From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\r\n"
	    "To: bounces@example.com\r\n"
	    "Subject: Undelivered Mail Returned to Sender\r\n"
	    "Date: %s\r\n"
	    "Message-ID: <%s@mx.example.net>\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: multipart/report; report-type=delivery-status;\r\n"
	    "\tboundary=\"B-%s\"\r\n"
	    "\r\n"
	    "--B-%s\r\n"
	    "Content-Type: text/plain; charset=us-ascii\r\n"
	    "\r\n"
	    "Your message could not be delivered.\r\n"
	    "\r\n"
	    "--B-%s\r\n"
	    "Content-Type: message/delivery-status\r\n"
	    "\r\n"
	    "Reporting-MTA: dns; mx.example.net\r\n"
	    "Arrival-Date: %s\r\n"
	    "\r\n"
	    "Final-Recipient: rfc822; %s\r\n"
	    "Action: failed\r\n"
	    "Status: 5.1.1\r\n"
	    "Remote-MTA: dns; mx.example.org\r\n"
	    "Last-Attempt-Date: %s\r\n"
	    "Diagnostic-Code: smtp; 550 5.1.1 <%s>: Recipient address\r\n"
	    "    rejected: User unknown in virtual mailbox table\r\n"
	    "\r\n"
	    "--B-%s--\r\n",
	    date, tag, tag, tag, tag, date, rcpt, date, rcpt, tag);
	tmp = xasprintf("%s/tmp/%s", maildir, tag);
	dst = xasprintf("%s/new/%s", maildir, tag);
	f = fopen(tmp, "w");
	if (f != NULL) {
		fputs(text, f);
		if (fclose(f) == 0 &&
		    chown(tmp,
		        (uid_t)strtol(getenv("BOUNCER_TEST_MAIL_UID"), NULL,
		            10),
		        (gid_t)strtol(getenv("BOUNCER_TEST_MAIL_GID"), NULL,
		            10)) == 0 &&
		    rename(tmp, dst) == 0)
			rc = 0;
	}
	free(text);
	free(tmp);
	free(dst);
	return rc;
}

/* One pass of the poller over the test mailbox: 0 when it succeeded. */
static int
one_pass(void)
{
	struct config *cfg = NULL;
	struct config_errors errs = {0};
	struct metrics *m;
	struct poller *p;
	char *text;
	int rc;

	text = xasprintf("database:\n"
	                 "  url: \"%s\"\n"
	                 "  batch_size: 50\n"
	                 "  migrate: false\n"
	                 "log:\n"
	                 "  level: warn\n"
	                 "workers: 1\n"
	                 "defaults:\n"
	                 "  interval: 1m\n"
	                 "  jitter: 0s\n"
	                 "  max_messages: 500\n"
	                 "  first_pass: record_only\n"
	                 "  max_age: 0\n"
	                 "suppression:\n"
	                 "  soft_threshold: 3\n"
	                 "  soft_window: 30d\n"
	                 "mailboxes:\n"
	                 "  - name: firstpass\n"
	                 "    host: %s\n"
	                 "    port: %s\n"
	                 "    tls: implicit\n"
	                 "    ca_file: %s\n"
	                 "    username: %s\n"
	                 "    password: \"%s\"\n"
	                 "    after_processing: delete\n",
	    uri, getenv("BOUNCER_TEST_POP3S_HOST"),
	    getenv("BOUNCER_TEST_POP3S_PORT"), getenv("BOUNCER_TEST_POP3_CA"),
	    user, pass);
	if (config_from_string("first-pass.yaml", text, strlen(text), &cfg,
	        &errs) != 0) {
		size_t i;

		for (i = 0; i < errs.count; i++)
			printf("# config: %s\n", errs.items[i]);
		config_errors_free(&errs);
		free(text);
		return -1;
	}
	free(text);
	config_errors_free(&errs);
	m = metrics_new("test");
	p = poller_new(cfg, m);
	rc = poller_run_once(p);
	poller_free(&p);
	metrics_free(&m);
	return rc;
}

static void
t_backlog_then_new_bounce(void)
{
	int i;
	time_t old = time(NULL) - 2 * 86400;

	CHECK(clear_mailbox() == 0, "cannot empty %s", maildir);
	for (i = 0; i < NOLD; i++) {
		char tag[32], rcpt[64];

		snprintf(tag, sizeof(tag), "old-%03d", i);
		snprintf(rcpt, sizeof(rcpt), "old%d@example.org", i);
		if (drop_dsn(tag, rcpt, old - i * 60) != 0) {
			test_fail_at(__FILE__, __LINE__, "seeding %s", tag);
			return;
		}
	}
	CHECK_INT(one_pass(), 0);
	CHECK_SQL(db, "SELECT count(*) FROM messages", "200");
	CHECK_SQL(db,
	    "SELECT count(*) || ' ' || count(*) FILTER (WHERE class = 'hard') "
	    "|| ' ' || count(*) FILTER (WHERE NOT counts AND "
	    "not_counted_because = 'first_pass') FROM bounces",
	    "200 200 200");
	CHECK_SQL(db, "SELECT count(*) FROM suppressions", "0");
	CHECK_SQL(db,
	    "SELECT first_pass_completed_at IS NOT NULL FROM mailboxes "
	    "WHERE name = 'firstpass'",
	    "t");
	/* delete mode: the backlog is gone from the server */
	{
		char *cmd = xasprintf("test -z \"$(find '%s/new' '%s/cur' "
		                      "-type f)\"",
		    maildir, maildir);

		CHECK(system(cmd) == 0, "messages left on the server");
		free(cmd);
	}
	/* the next pass counts: a new hard bounce for one of them */
	CHECK(drop_dsn("new-005", "old5@example.org", time(NULL) - 60) == 0,
	    "seeding");
	CHECK_INT(one_pass(), 0);
	CHECK_SQL(db,
	    "SELECT string_agg(address || ' ' || suppressed_because || ' ' || "
	    "reason || ' ' || hard_bounces, ',') FROM suppressions",
	    "old5@example.org hard_bounce userunknown 1");
	CHECK_SQL(db,
	    "SELECT string_agg(coalesce(counted_as, '-') || '/' || "
	    "coalesce(not_counted_because, '-'), ',' ORDER BY bounced_at) "
	    "FROM suppression_evidence WHERE address = 'old5@example.org'",
	    "-/first_pass,hard/-");
}

int
main(void)
{
	static const char *need[] = {"BOUNCER_TEST_PG",
	    "BOUNCER_TEST_POP3S_HOST", "BOUNCER_TEST_POP3S_PORT",
	    "BOUNCER_TEST_POP3_CA", "BOUNCER_TEST_POP3_USERS",
	    "BOUNCER_TEST_MAILDIR_ROOT", "BOUNCER_TEST_MAIL_UID",
	    "BOUNCER_TEST_MAIL_GID"};
	struct store_options o;
	struct store *s = NULL;
	struct err err = {""};
	struct store_settings set = {.soft_threshold = 3,
	    .soft_window_s = 30 * 86400};
	size_t i;

	for (i = 0; i < sizeof(need) / sizeof(need[0]); i++)
		if (getenv(need[i]) == NULL) {
			printf("SKIP test_store_first_pass: %s not set\n",
			    need[i]);
			return 0;
		}
	if (pick_user() != 0) {
		printf("SKIP test_store_first_pass: no test mailbox\n");
		return 0;
	}
	maildir = xasprintf("%s/%s/Maildir",
	    getenv("BOUNCER_TEST_MAILDIR_ROOT"), user);
	uri = tdb_fresh("bouncer_store_firstpass");
	o = tdb_options(uri ? uri : "");
	if (uri == NULL || (db = tdb_connect(uri)) == NULL ||
	    store_open(&o, &s, &err) != 0 || store_migrate(s, NULL, &err) ||
	    store_apply_settings(s, &set, &err)) {
		printf("FAIL test_store_first_pass: setup: %s\n", err.msg);
		return 1;
	}
	store_free(&s);
	RUN(t_backlog_then_new_bounce);
	clear_mailbox();
	PQfinish(db);
	tdb_drop("bouncer_store_firstpass");
	free(uri);
	free(maildir);
	return test_done();
}
