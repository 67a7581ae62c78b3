/*
 * test_pop3_fake_xfer.c - the POP3 client against a scripted server
 * (harness in test_pop3_fake.h): RETRs pipelined ahead, cut and stalled
 * connections, a stop request mid-transfer, over-size messages, DELE
 * groups, body edge cases, TOP keys, STLS and implicit TLS with good and
 * bad certificates.  Needs python3 and openssl; skips otherwise.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pop3/pop3.h"
#include "test.h"
#include "test_pop3_fake.h"

/* RETRs sent ahead with PIPELINING: all three go out in one write, the
 * replies are taken in order, and a DELE in between first reads the ones
 * still on their way, which are then handed out from memory. */
static void
t_retr_ahead(void)
{
	static const char script[] =
	    "< +OK fake ready\n> CAPA\n< +OK\n< USER\n< UIDL\n< PIPELINING\n"
	    "< .\n> USER u\n< +OK\n> PASS secret-pw\n< +OK logged in\n"
	    "> NOOP\n< +OK\n> UIDL\n< +OK\n< 1 a\n< 2 b\n< 3 c\n< .\n"
	    "> LIST\n< +OK\n< 1 10\n< 2 10\n< 3 10\n< .\n"
	    "> RETR 1\n> RETR 2\n> RETR 3\n< +OK\n< one\n< .\n"
	    "< +OK\n< two\n< .\n< +OK\n< three\n< .\n"
	    "> DELE 1\n< +OK\n> QUIT\n< +OK\n";
	static const uint32_t nos[] = {1, 2, 3};
	static const int64_t sizes[] = {10, 10, 10};
	static const char *const want[] = {"one\r\n", "two\r\n", "three\r\n"};
	struct pop3 *p;
	struct pop3_entry *l = NULL;
	struct fake f;
	struct err err = {{0}};
	struct buf b;
	size_t n = 0;

	if (fake_login(&f, script, &p, &err) != 0)
		return;
	CHECK(pop3_scan(p, &l, &n, &err) == 0, "%s", err.msg);
	CHECK(pop3_retr_ahead(p, nos, sizes, 3, &err) == 0, "%s", err.msg);
	buf_init(&b, 4096);
	CHECK(pop3_retr(p, 1, &b, &err) == 0, "%s", err.msg);
	CHECK(b.len == strlen(want[0]) && memcmp(b.data, want[0], b.len) == 0,
	    "message 1: %.*s", (int)b.len, b.data);
	/* asking again for what is already on its way sends nothing */
	CHECK(pop3_retr_ahead(p, nos + 1, sizes + 1, 2, &err) == 0, "%s",
	    err.msg);
	CHECK(pop3_dele(p, 1, &err) == 0, "%s", err.msg);
	for (int i = 1; i < 3; i++) {
		CHECK(pop3_retr(p, nos[i], &b, &err) == 0, "%s", err.msg);
		CHECK(b.len == strlen(want[i]) &&
		        memcmp(b.data, want[i], b.len) == 0,
		    "message %d: %.*s", i + 1, (int)b.len, b.data);
	}
	CHECK(pop3_quit(p, &err) == 0, "%s", err.msg);
	buf_free(&b);
	free(l);
	pop3_free(&p);
	finish_no_mismatch(&f);
}

/* The connection is cut in the middle of a RETR. */
static void
t_cut_mid_retr(void)
{
	const char *script = LOGIN "> RETR 1\n< +OK 5000 octets\n"
	                           "< Subject: half\n<\n< some of the body\n"
	                           "! close\n";
	struct pop3 *p;
	struct fake f;
	struct err err = {{0}};
	struct buf b;
	char *t;

	buf_init(&b, 1 << 20);
	if (fake_login(&f, script, &p, &err) != 0)
		return;
	CHECK(pop3_retr(p, 1, &b, &err) == -1, "cut RETR succeeded");
	CHECK_INT(pop3_error_kind(p), POP3_ERR_CONNECT);
	CHECK(strstr(err.msg, "mailbox fake: RETR 1: ") != NULL, "%s", err.msg);
	/* no silent reconnect for the next command */
	CHECK(pop3_noop(p, &err) == -1, "NOOP after a cut connection");
	CHECK_INT(pop3_connections(p), 1);
	pop3_free(&p);
	t = fake_finish(&f);
	CHECK_STR(t, T_LOGIN "C: RETR 1\n");
	free(t);
	buf_free(&b);
}

/* Stalls: in the greeting (connect timeout), on a command (command
 * timeout) and mid-RETR (transfer timeout).  The client must give up
 * within its timeout, not the server's. */
static void
t_stalls(void)
{
	static const struct {
		const char *name, *script;
		int step; /* 0 connect, 1 NOOP, 2 RETR */
	} rows[] = {
	    {"greeting", "! sleep 15\n", 0},
	    {"command", LOGIN "> NOOP\n! sleep 15\n", 1},
	    {"mid-RETR", LOGIN "> RETR 1\n< +OK\n< Subject: x\n! sleep 15\n",
	        2},
	};
	size_t i;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct pop3_options o;
		struct pop3 *p;
		struct fake f;
		struct err err = {{0}};
		struct buf b;
		int64_t t0, el;
		int rc;

		test_begin("stall: %s", rows[i].name);
		if (fake_plain(&f, rows[i].script, &o) != 0) {
			test_end();
			continue;
		}
		o.connect_timeout_ms = 1000;
		o.command_timeout_ms = 1000;
		o.transfer_timeout_ms = 1500;
		buf_init(&b, 4096);
		p = pop3_new(&o, &err);
		t0 = ms_now();
		rc = pop3_connect(p, &err);
		if (rows[i].step == 0) {
			el = ms_now() - t0;
		} else {
			CHECK(rc == 0, "%s", err.msg);
			t0 = ms_now();
			rc = rows[i].step == 1 ? pop3_noop(p, &err)
			                       : pop3_retr(p, 1, &b, &err);
			el = ms_now() - t0;
		}
		CHECK(rc == -1, "stalled command succeeded");
		CHECK_INT(pop3_error_kind(p), POP3_ERR_TIMEOUT);
		/* the configured timeout, plus scheduling slack */
		CHECK(el < (rows[i].step == 2 ? 1500 : 1000) + 800,
		    "took %lld ms", (long long)el);
		printf("# stall %s: failed after %lld ms\n", rows[i].name,
		    (long long)el);
		t0 = ms_now();
		pop3_free(&p);
		el = ms_now() - t0;
		CHECK(el < 2000, "close took %lld ms", (long long)el);
		kill(f.pid, SIGTERM);
		free(fake_finish(&f));
		buf_free(&b);
		test_end();
	}
}

/* A stop request (SIGTERM) ends a stalled transfer half a second later,
 * however long its timeouts; a transfer that completes within that time
 * is kept, and DELE and QUIT still run so a committed batch's deletions
 * become final; a slow drip is cut by the low-speed rule.  Plain TCP here;
 * the TLS forms share the same waits. */
static volatile sig_atomic_t stop_flag;

static void *
set_stop_later(void *arg)
{
	(void)arg;
	usleep(300000);
	stop_flag = 1;
	return NULL;
}

static void
t_stop_and_drip(void)
{
	struct pop3_options o;
	struct pop3 *p;
	struct fake f;
	struct err err = {{0}};
	struct buf b;
	pthread_t th;
	int64_t t0, el;
	int rc;

	test_begin("stop request ends a stalled RETR half a second later");
	if (fake_plain(&f, LOGIN "> RETR 1\n< +OK\n< Subject: x\n! sleep 30\n",
	        &o) == 0) {
		o.command_timeout_ms = 20000;
		o.transfer_timeout_ms = 60000;
		o.stop = &stop_flag;
		stop_flag = 0;
		buf_init(&b, 4096);
		p = connect_ok(&o, &err);
		pthread_create(&th, NULL, set_stop_later, NULL);
		t0 = ms_now();
		rc = pop3_retr(p, 1, &b, &err);
		el = ms_now() - t0;
		pthread_join(th, NULL);
		CHECK(rc == -1, "stalled RETR succeeded");
		CHECK(strstr(err.msg, "shutting down") != NULL, "%s", err.msg);
		CHECK(el >= 700 && el < 1800, "took %lld ms", (long long)el);
		printf("# stop during RETR: ended after %lld ms\n",
		    (long long)el);
		pop3_free(&p);
		kill(f.pid, SIGTERM);
		free(fake_finish(&f));
		buf_free(&b);
	}
	test_end();

	test_begin("stop request: a finishing RETR, DELE and QUIT complete");
	if (fake_plain(&f,
	        LOGIN "> RETR 1\n< +OK\n< Subject: x\n! sleep 0.4\n<\n"
	              "< body\n< .\n> DELE 1\n! sleep 1.2\n< +OK\n"
	              "> QUIT\n< +OK bye\n",
	        &o) == 0) {
		o.command_timeout_ms = 20000;
		o.transfer_timeout_ms = 60000;
		o.stop = &stop_flag;
		stop_flag = 0;
		buf_init(&b, 4096);
		p = connect_ok(&o, &err);
		pthread_create(&th, NULL, set_stop_later, NULL);
		rc = pop3_retr(p, 1, &b, &err);
		pthread_join(th, NULL);
		CHECK(rc == 0, "RETR: %s", err.msg);
		CHECK(b.len > 0 && strstr(b.data, "body") != NULL,
		    "message not read whole");
		rc = pop3_dele(p, 1, &err);
		CHECK(rc == 0, "DELE: %s", err.msg);
		rc = pop3_quit(p, &err);
		CHECK(rc == 0, "QUIT: %s", err.msg);
		CHECK(pop3_deleted_count(p) == 1, "deleted %zu",
		    pop3_deleted_count(p));
		pop3_free(&p);
		free(fake_finish(&f));
		buf_free(&b);
	}
	test_end();

	test_begin("a slow drip is cut by the low-speed rule");
	if (fake_plain(&f,
	        LOGIN "> RETR 1\n< +OK\n< Subject: x\n! sleep 0.7\n< a\n"
	              "! sleep 0.7\n< b\n! sleep 0.7\n< c\n! sleep 0.7\n"
	              "< d\n! sleep 0.7\n< e\n! sleep 30\n",
	        &o) == 0) {
		o.command_timeout_ms = 5000;
		o.transfer_timeout_ms = 60000;
		o.low_speed_bytes = 100;
		o.low_speed_time_s = 2;
		buf_init(&b, 4096);
		p = connect_ok(&o, &err);
		t0 = ms_now();
		rc = pop3_retr(p, 1, &b, &err);
		el = ms_now() - t0;
		CHECK(rc == -1, "drip RETR succeeded");
		CHECK(strstr(err.msg, "bytes/s") != NULL, "%s", err.msg);
		CHECK(el < 3500, "took %lld ms", (long long)el);
		pop3_free(&p);
		kill(f.pid, SIGTERM);
		free(fake_finish(&f));
		buf_free(&b);
	}
	test_end();

	test_begin("no byte for the command timeout ends a listing");
	if (fake_plain(&f, LOGIN "> UIDL\n< +OK\n< 1 a\n! sleep 30\n", &o) ==
	    0) {
		struct pop3_entry *e = NULL;
		size_t n = 0;

		o.command_timeout_ms = 800;
		o.transfer_timeout_ms = 60000;
		p = connect_ok(&o, &err);
		t0 = ms_now();
		rc = pop3_uidl(p, &e, &n, &err);
		el = ms_now() - t0;
		CHECK(rc == -1, "stalled listing succeeded");
		CHECK(strstr(err.msg, "no byte for 800 ms") != NULL, "%s",
		    err.msg);
		CHECK(el < 800 + 700, "took %lld ms", (long long)el);
		free(e);
		pop3_free(&p);
		kill(f.pid, SIGTERM);
		free(fake_finish(&f));
	}
	test_end();
}

/* An over-size message: head kept, rest read and dropped, the session
 * goes on (NOOP after it on the same connection). */
static void
t_truncate(void)
{
	const char *script =
	    LOGIN "> RETR 1\n< +OK\n< Subject: big\n<\n"
	          "! repeat 20000 0123456789012345678901234567890123456789\n"
	          "< .\n> NOOP\n< +OK\n> QUIT\n< +OK\n";
	struct pop3_options o;
	struct pop3 *p;
	struct fake f;
	struct err err = {{0}};
	struct buf b;
	char *t;

	buf_init(&b, 1 << 30);
	if (fake_plain(&f, script, &o) != 0)
		return;
	o.max_message_bytes = 1000;
	p = connect_ok(&o, &err);
	CHECK(pop3_retr(p, 1, &b, &err) == 0, "%s", err.msg);
	CHECK(b.truncated, "not marked truncated");
	CHECK_INT(b.len, 1000);
	CHECK_INT(b.cap, 1000);
	CHECK(strncmp(b.data, "Subject: big\r\n\r\n0123", 20) == 0, "head");
	CHECK(b.alloc <= 1001, "allocated %zu", b.alloc);
	CHECK(pop3_noop(p, &err) == 0, "%s", err.msg);
	CHECK(pop3_quit(p, &err) == 0, "%s", err.msg);
	CHECK_INT(pop3_connections(p), 1);
	pop3_free(&p);
	t = fake_finish(&f);
	CHECK_STR(t, T_LOGIN "C: RETR 1\nC: NOOP\nC: QUIT\nEOF\n");
	free(t);
	buf_free(&b);
}

/* The server drops an idle connection between commands: the next command
 * fails on that connection, and no new session (with new message
 * numbers) is ever opened behind the caller's back. */
static void
t_no_silent_reconnect(void)
{
	const char *script = LOGIN "! close\n";
	struct pop3 *p;
	struct fake f;
	struct err err = {{0}};
	char *t;

	if (fake_login(&f, script, &p, &err) != 0)
		return;
	usleep(200000);
	CHECK(pop3_dele(p, 1, &err) == -1, "DELE on a closed connection");
	CHECK_INT(pop3_error_kind(p), POP3_ERR_CONNECT);
	CHECK(strstr(err.msg, "mailbox fake: DELE 1: ") != NULL, "%s", err.msg);
	CHECK_INT(pop3_deleted_count(p), 0);
	CHECK_INT(pop3_connections(p), 1);
	CHECK(pop3_noop(p, &err) == -1 && pop3_error_kind(p) == POP3_ERR_STATE,
	    "session still usable");
	pop3_free(&p);
	t = fake_finish(&f);
	CHECK(strstr(t, "CONNECT\nC: CAPA") == t &&
	        strstr(t + 1, "CONNECT") == NULL,
	    "%s", t);
	free(t);
}

/* DELE of many messages, pipelined and not: every reply is matched to
 * its command, a -ERR in the middle leaves the others' marks known, and
 * the session then ends (QUIT at free commits the accepted ones). */
static void
t_dele_many(void)
{
	static const struct {
		const char *name, *login;
		int refuse; /* 1-based position refused, 0 none */
	} rows[] = {
	    {"pipelined", LOGIN_PIPE, 0},
	    {"one at a time", LOGIN, 0},
	    {"pipelined, third refused", LOGIN_PIPE, 3},
	    {"one at a time, third refused", LOGIN, 3},
	};
	uint32_t nums[300];
	int ok[300];
	size_t i, k, n;

	for (k = 0; k < 300; k++)
		nums[k] = (uint32_t)(k + 1);
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct buf sc, want;
		struct pop3 *p;
		struct fake f;
		struct err err = {{0}};
		size_t acc = 0;
		char *t;
		int rc;

		test_begin("dele_many: %s", rows[i].name);
		/* several groups of pipelined commands; one when refusing */
		n = rows[i].refuse ? 100 : 300;
		buf_init(&sc, 1 << 20);
		buf_init(&want, 1 << 20);
		buf_append(&sc, rows[i].login, strlen(rows[i].login));
		buf_append(&want, T_LOGIN, strlen(T_LOGIN));
		for (k = 0; k < n; k++) {
			char line[64];
			int m;

			m = snprintf(line, sizeof(line), "> DELE %zu\n< %s\n",
			    k + 1,
			    (int)k + 1 == rows[i].refuse ? "-ERR [IN-USE] no"
			                                 : "+OK");
			buf_append(&sc, line, (size_t)m);
			m = snprintf(line, sizeof(line), "C: DELE %zu\n",
			    k + 1);
			buf_append(&want, line, (size_t)m);
			/* without pipelining the client stops at the -ERR */
			if ((int)k + 1 == rows[i].refuse &&
			    strcmp(rows[i].login, LOGIN) == 0)
				break;
		}
		buf_append(&sc, "> QUIT\n< +OK\n", 14);
		buf_append(&want, "C: QUIT\nEOF\n", 13);
		if (fake_login(&f, buf_cstr(&sc), &p, &err) != 0) {
			buf_free(&sc);
			buf_free(&want);
			test_end();
			continue;
		}
		rc = pop3_dele_many(p, nums, n, ok, &err);
		for (k = 0; k < n; k++)
			acc += ok[k] != 0;
		if (rows[i].refuse == 0) {
			CHECK(rc == 0, "%s", err.msg);
			CHECK_INT(acc, n);
			CHECK_INT(pop3_deleted_count(p), n);
		} else {
			size_t want_acc = strcmp(rows[i].login, LOGIN) == 0
			    ? (size_t)rows[i].refuse - 1
			    : n - 1;

			CHECK(rc == -1, "refusal not reported");
			CHECK_INT(pop3_error_kind(p), POP3_ERR_IN_USE);
			CHECK(strstr(err.msg, "mailbox fake: DELE 3: ") != NULL,
			    "%s", err.msg);
			CHECK(!ok[2], "refused DELE marked accepted");
			CHECK(ok[0] && ok[1], "accepted DELEs not marked");
			CHECK_INT(acc, want_acc);
			CHECK_INT(pop3_deleted_count(p), want_acc);
			CHECK(pop3_noop(p, &err) == -1, "session still usable");
		}
		pop3_free(&p);
		t = fake_finish(&f);
		CHECK_STR(t, buf_cstr(&want));
		free(t);
		buf_free(&sc);
		buf_free(&want);
		test_end();
	}
}

/* An empty message, a line of a lone dot-stuffed dot, a "." not followed
 * by CRLF, and a reply split into single bytes: the body comes out exact. */
static void
t_body_edges(void)
{
	const char *script =
	    LOGIN "> RETR 1\n< +OK\n< .\n"
	          "> RETR 2\n<r "
	          "+OK\\r\\n..\\r\\n.x\\r\\n.\\rA\\r\\nend\\r\\n.\\r\\n\n"
	          "> QUIT\n< +OK\n";
	struct pop3 *p;
	struct fake f;
	struct err err = {{0}};
	struct buf b;

	buf_init(&b, 4096);
	if (fake_login(&f, script, &p, &err) != 0)
		return;
	CHECK(pop3_retr(p, 1, &b, &err) == 0, "%s", err.msg);
	CHECK_INT(b.len, 0);
	CHECK(pop3_retr(p, 2, &b, &err) == 0, "%s", err.msg);
	CHECK_STR(buf_cstr(&b), ".\r\nx\r\n\rA\r\nend\r\n");
	CHECK(pop3_quit(p, &err) == 0, "%s", err.msg);
	pop3_free(&p);
	finish_no_mismatch(&f);
	buf_free(&b);
}

/* pop3_abort: no QUIT, so the server keeps the messages. */
static void
t_abort_sends_no_quit(void)
{
	const char *script = LOGIN "> DELE 1\n< +OK\n";
	struct pop3 *p;
	struct fake f;
	struct err err = {{0}};
	char *t;

	if (fake_login(&f, script, &p, &err) != 0)
		return;
	CHECK(pop3_dele(p, 1, &err) == 0, "%s", err.msg);
	pop3_abort(&p);
	CHECK(p == NULL, "not reset");
	t = fake_finish(&f);
	CHECK_STR(t, T_LOGIN "C: DELE 1\nEOF\n");
	free(t);
}

/* TOP n 0 and the header key for servers without UIDL. */
static void
t_top_key(void)
{
	const char *script = LOGIN "> TOP 1 0\n< +OK\n< From: a\n< To: b\n<\n"
	                           "< .\n";
	struct pop3 *p;
	struct fake f;
	struct err err = {{0}};
	char key[POP3_UIDL_MAX + 1], want[POP3_UIDL_MAX + 1];

	if (fake_login(&f, script, &p, &err) != 0)
		return;
	CHECK(pop3_top_key(p, 1, key, &err) == 0, "%s", err.msg);
	pop3_header_key("From: a\nTo: b\n\nother body", 26, want);
	CHECK_STR(key, want);
	pop3_free(&p);
	free(fake_finish(&f));
}

/* STLS required: the server does not offer it, or refuses it.  Never a
 * clear-text login. */
static void
t_stls_required(void)
{
	static const struct {
		const char *name, *script;
	} rows[] = {
	    {"not offered", "< +OK hi\n> CAPA\n< +OK\n< USER\n< .\n"},
	    {"refused",
	        "< +OK hi\n> CAPA\n< +OK\n< STLS\n< USER\n< .\n"
	        "> STLS\n< -ERR TLS not available\n"},
	    {"no CAPA", "< +OK hi\n> CAPA\n< -ERR what\n"},
	};
	size_t i;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct pop3_options o;
		struct pop3 *p;
		struct fake f;
		struct err err = {{0}};
		char *t;

		test_begin("stls_required: %s", rows[i].name);
		if (fake_plain(&f, rows[i].script, &o) != 0) {
			test_end();
			continue;
		}
		o.tls = POP3_TLS_STARTTLS;
		p = pop3_new(&o, &err);
		CHECK(pop3_connect(p, &err) == -1, "logged in without TLS");
		CHECK_INT(pop3_error_kind(p), POP3_ERR_TLS);
		CHECK(strstr(err.msg, "mailbox fake") != NULL, "%s", err.msg);
		pop3_free(&p);
		t = fake_finish(&f);
		CHECK(strstr(t, "USER") == NULL && strstr(t, "PASS") == NULL &&
		        strstr(t, "AUTH") == NULL,
		    "credentials in clear: %s", t);
		free(t);
		test_end();
	}
}

static void
t_stls_ok(void)
{
	const char *script =
	    "< +OK hi\n> CAPA\n< +OK\n< STLS\n< USER\n< .\n> STLS\n"
	    "< +OK begin TLS\n! starttls\n> CAPA\n< +OK\n< USER\n< UIDL\n< .\n"
	    "> USER u\n< +OK\n> PASS secret-pw\n< +OK\n> NOOP\n< +OK\n"
	    "> UIDL\n< +OK\n< 1 a\n< .\n";
	struct pop3_options o;
	struct pop3 *p;
	struct pop3_entry *l = NULL;
	struct fake f;
	struct err err = {{0}};
	size_t n = 0;
	char *t;

	if (!have_tls) {
		test_skip("openssl not available");
		return;
	}
	if (fake_start(&f, script, FAKE_PLAIN, cert, key) != 0) {
		CHECK(0, "fake server did not start");
		return;
	}
	opts_fake(&o, f.port);
	o.tls = POP3_TLS_STARTTLS;
	o.ca_file = cert;
	p = connect_ok(&o, &err);
	CHECK(pop3_uidl(p, &l, &n, &err) == 0, "%s", err.msg);
	CHECK_INT(n, 1);
	pop3_free(&p);
	free(l);
	t = fake_finish(&f);
	CHECK_STR(t,
	    "CONNECT\nC: CAPA\nC: STLS\nC: CAPA\nC: USER u\n"
	    "C: PASS secret-pw\nC: NOOP\nC: UIDL\nC: QUIT\nEOF\n");
	free(t);
}

/* Implicit TLS: trusted CA works; an untrusted certificate and a wrong
 * host name fail before anything is sent. */
static void
t_tls_implicit(void)
{
	static const struct {
		const char *name;
		int wrong_ca, wrong_name, ok;
	} rows[] = {
	    {"trusted", 0, 0, 1},
	    {"untrusted certificate", 1, 0, 0},
	    {"wrong host name", 0, 1, 0},
	};
	size_t i;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct pop3_options o;
		struct pop3 *p;
		struct fake f;
		struct err err = {{0}};
		char *t;
		int rc;

		test_begin("tls_implicit: %s", rows[i].name);
		if (!have_tls) {
			test_skip("openssl not available");
			test_end();
			continue;
		}
		if (fake_start(&f, LOGIN, FAKE_IMPLICIT, cert, key) != 0) {
			CHECK(0, "fake server did not start");
			test_end();
			continue;
		}
		opts_fake(&o, f.port);
		o.tls = POP3_TLS_IMPLICIT;
		o.ca_file = rows[i].wrong_ca ? wrong_cert : cert;
		if (rows[i].wrong_name) {
			o.host = "wrong.example";
			o.connect_addr = "127.0.0.1";
		}
		p = pop3_new(&o, &err);
		CHECK(p != NULL, "%s", err.msg);
		rc = pop3_connect(p, &err);
		if (rows[i].ok) {
			CHECK(rc == 0, "%s", err.msg);
		} else {
			CHECK(rc == -1, "connected");
			CHECK_INT(pop3_error_kind(p), POP3_ERR_TLS);
			CHECK(strstr(err.msg, "mailbox fake: ") != NULL, "%s",
			    err.msg);
		}
		pop3_free(&p);
		t = fake_finish(&f);
		if (rows[i].ok)
			CHECK_STR(t, T_LOGIN "C: QUIT\nEOF\n");
		else
			CHECK(strstr(t, "USER") == NULL, "sent: %s", t);
		free(t);
		test_end();
	}
}

int
main(void)
{
	if (fake_setup("pop3_fake_xfer") != 0)
		return test_done();
	RUN(t_retr_ahead);
	RUN(t_cut_mid_retr);
	t_stalls();
	t_stop_and_drip();
	RUN(t_truncate);
	RUN(t_no_silent_reconnect);
	t_dele_many();
	RUN(t_body_edges);
	RUN(t_abort_sends_no_quit);
	RUN(t_top_key);
	t_stls_required();
	RUN(t_stls_ok);
	t_tls_implicit();
	fake_cleanup();
	return test_done();
}
