/*
 * test_pop3_fake.c - the POP3 client against a scripted server
 * (tests/helpers/fakepop3.py, harness in test_pop3_fake.h): logins (USER,
 * SASL PLAIN / LOGIN, APOP, XOAUTH2), -ERR on every command, hostile and
 * inconsistent listings, the first-window scan.  Each case checks both the
 * client's result and the exact command lines it sent.  Needs python3.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pop3/pop3.h"
#include "test.h"
#include "test_pop3_fake.h"

/* Full session: scan, RETR with dot-stuffing, DELE, QUIT; one connection. */
static void
t_session_transcript(void)
{
	const char *script =
	    LOGIN "> UIDL\n< +OK\n< 1 uid-one\n< 2 uid-two\n"
	          "< 3 uid-three\n< .\n"
	          "> LIST\n< +OK 3 messages\n< 1 100\n< 2 "
	          "200\n< 3 300\n< .\n"
	          "> RETR 2\n< +OK 200 octets\n< Subject: x\n<\n"
	          "< ..leading dot\n< ...\n< body\n< .\n"
	          "> DELE 2\n< +OK marked\n"
	          "> QUIT\n< +OK bye\n";
	struct pop3_options o;
	struct pop3 *p = NULL;
	struct pop3_entry *l = NULL;
	struct fake f;
	struct err err = {{0}};
	struct buf b;
	size_t n = 0;
	uint32_t twice[3] = {3, 1, 3};
	int ok[3] = {1, 1, 1};
	char *t;

	buf_init(&b, 1 << 20);
	if (fake_plain(&f, script, &o) != 0)
		return;
	p = pop3_new(&o, &err);
	CHECK(p != NULL, "%s", err.msg);
	CHECK(pop3_connect(p, &err) == 0, "%s", err.msg);
	CHECK(pop3_scan(p, &l, &n, &err) == 0, "%s", err.msg);
	CHECK_INT(n, 3);
	if (n == 3) {
		CHECK_INT(l[1].msgno, 2);
		CHECK_STR(l[1].uidl, "uid-two");
		CHECK_INT(l[1].size, 200);
		CHECK_STR(l[2].uidl, "uid-three");
		CHECK_INT(l[2].size, 300);
	}
	CHECK(pop3_retr(p, 2, &b, &err) == 0, "%s", err.msg);
	CHECK_STR(buf_cstr(&b),
	    "Subject: x\r\n\r\n.leading dot\r\n..\r\nbody\r\n");
	CHECK(!b.truncated, "truncated");
	CHECK(pop3_dele(p, 2, &err) == 0, "%s", err.msg);
	CHECK_INT(pop3_deleted_count(p), 1);
	CHECK(pop3_dele(p, 2, &err) == -1, "second DELE of 2 accepted");
	CHECK(strstr(err.msg, "already deleted") != NULL, "%s", err.msg);
	CHECK(pop3_dele(p, 9, &err) == -1, "DELE of unlisted 9 accepted");
	CHECK(strstr(err.msg, "not in this session") != NULL, "%s", err.msg);
	CHECK(pop3_dele_many(p, twice, 3, ok, &err) == -1,
	    "DELE of 3, 1, 3 accepted");
	CHECK(strstr(err.msg, "DELE 3: message 3 given twice") != NULL, "%s",
	    err.msg);
	CHECK(!ok[0] && !ok[1] && !ok[2], "marked accepted");
	CHECK(pop3_quit(p, &err) == 0, "%s", err.msg);
	CHECK_INT(pop3_connections(p), 1);
	CHECK(pop3_noop(p, &err) == -1, "NOOP after QUIT");
	pop3_free(&p);
	t = fake_finish(&f);
	CHECK_STR(t,
	    T_LOGIN "C: UIDL\nC: LIST\nC: RETR 2\nC: DELE 2\n"
	            "C: QUIT\nEOF\n");
	free(t);
	free(l);
	buf_free(&b);
}

static void
t_sasl_plain(void)
{
	const char *script =
	    "< +OK hi\n> CAPA\n< +OK\n< SASL PLAIN\n< USER\n< .\n"
	    "> AUTH PLAIN AHUAc2VjcmV0LXB3\n< +OK in\n> NOOP\n< +OK\n";
	struct pop3_options o;
	struct pop3 *p;
	struct fake f;
	struct err err = {{0}};
	char *t;

	if (fake_plain(&f, script, &o) != 0)
		return;
	o.auth = POP3_AUTH_PLAIN;
	p = connect_ok(&o, &err);
	pop3_free(&p);
	t = fake_finish(&f);
	/* base64("\0u\0secret-pw"); then QUIT from libcurl's cleanup */
	CHECK_STR(t,
	    "CONNECT\nC: CAPA\nC: AUTH PLAIN AHUAc2VjcmV0LXB3\n"
	    "C: NOOP\nC: QUIT\nEOF\n");
	free(t);
}

/* A password login never uses APOP: a greeting with an APOP timestamp
 * and a CAPA without SASL (GNU Mailutils) logs in with USER/PASS. */
static void
t_apop_greeting_user_pass(void)
{
	const char *script =
	    "< +OK POP3 ready <12345.1700000000@mail.example.org>\n"
	    "> CAPA\n< +OK\n< TOP\n< UIDL\n< PIPELINING\n< USER\n"
	    "< STLS\n< .\n"
	    "> USER u\n< +OK\n> PASS secret-pw\n< +OK logged in\n"
	    "> NOOP\n< +OK\n";
	struct pop3_options o;
	struct pop3 *p;
	struct fake f;
	struct err err = {{0}};
	char *t;

	if (fake_plain(&f, script, &o) != 0)
		return;
	p = connect_ok(&o, &err);
	CHECK_STR(pop3_login_mechanism(p), "USER");
	CHECK(pop3_greeting_apop(p), "APOP stamp not seen");
	CHECK(pop3_pipelining(p), "PIPELINING not seen");
	CHECK_STR(pop3_capabilities(p), "TOP UIDL PIPELINING USER STLS");
	pop3_free(&p);
	t = fake_finish(&f);
	CHECK_STR(t,
	    "CONNECT\nC: CAPA\nC: USER u\nC: PASS secret-pw\n"
	    "C: NOOP\nC: QUIT\nEOF\n");
	CHECK(strstr(t, "APOP") == NULL, "APOP sent: %s", t);
	free(t);
}

/* The same with no CAPA at all (popa3d): USER/PASS. */
static void
t_no_capa_user_pass(void)
{
	const char *script =
	    "< +OK <1.2@host>\n> CAPA\n< -ERR unknown command\n"
	    "> USER u\n< +OK\n> PASS secret-pw\n< +OK\n> NOOP\n< +OK\n";
	struct pop3_options o;
	struct pop3 *p;
	struct fake f;
	struct err err = {{0}};

	if (fake_plain(&f, script, &o) != 0)
		return;
	p = connect_ok(&o, &err);
	CHECK_STR(pop3_login_mechanism(p), "USER");
	CHECK(!pop3_pipelining(p), "PIPELINING without CAPA");
	CHECK_STR(pop3_capabilities(p), "");
	pop3_free(&p);
	finish_no_mismatch(&f);
}

/* A password login prefers SASL PLAIN (initial response) when offered,
 * also when the greeting has an APOP timestamp. */
static void
t_default_sasl_plain(void)
{
	const char *script =
	    "< +OK hi <9.9@host>\n> CAPA\n< +OK\n"
	    "< SASL SCRAM-SHA-1 CRAM-MD5 PLAIN LOGIN\n< USER\n< .\n"
	    "> AUTH PLAIN AHUAc2VjcmV0LXB3\n< +OK in\n> NOOP\n< +OK\n";
	struct pop3_options o;
	struct pop3 *p;
	struct fake f;
	struct err err = {{0}};

	if (fake_plain(&f, script, &o) != 0)
		return;
	p = connect_ok(&o, &err);
	CHECK_STR(pop3_login_mechanism(p), "SASL PLAIN");
	pop3_free(&p);
	finish_no_mismatch(&f);
}

/* SASL LOGIN when it is the only usable mechanism offered. */
static void
t_default_sasl_login(void)
{
	const char *script =
	    "< +OK hi\n> CAPA\n< +OK\n< SASL CRAM-MD5 LOGIN\n< .\n"
	    "> AUTH LOGIN\n< + VXNlcm5hbWU6\n> dQ==\n< + UGFzc3dvcmQ6\n"
	    "> c2VjcmV0LXB3\n< +OK in\n> NOOP\n< +OK\n";
	struct pop3_options o;
	struct pop3 *p;
	struct fake f;
	struct err err = {{0}};

	if (fake_plain(&f, script, &o) != 0)
		return;
	p = connect_ok(&o, &err);
	CHECK_STR(pop3_login_mechanism(p), "SASL LOGIN");
	pop3_free(&p);
	finish_no_mismatch(&f);
}

/* A refused SASL LOGIN password: auth error, no secret in the text. */
static void
t_default_sasl_login_refused(void)
{
	const char *script =
	    "< +OK hi\n> CAPA\n< +OK\n< SASL LOGIN\n< .\n"
	    "> AUTH LOGIN\n< + VXNlcm5hbWU6\n> dQ==\n< + UGFzc3dvcmQ6\n"
	    "> c2VjcmV0LXB3\n< -ERR [AUTH] no\n";
	struct pop3_options o;
	struct pop3 *p;
	struct fake f;
	struct err err = {{0}};

	if (fake_plain(&f, script, &o) != 0)
		return;
	p = pop3_new(&o, &err);
	CHECK(pop3_connect(p, &err) == -1, "refused login succeeded");
	CHECK_INT(pop3_error_kind(p), POP3_ERR_AUTH);
	CHECK(strstr(err.msg, "connect: server said \"-ERR [AUTH] no\"") !=
	        NULL,
	    "%s", err.msg);
	CHECK(strstr(err.msg, "c2VjcmV0LXB3") == NULL, "%s", err.msg);
	CHECK_STR(pop3_login_mechanism(p), "");
	pop3_free(&p);
	finish_no_mismatch(&f);
}

/* auth: apop asks for APOP explicitly (libcurl, AUTH=+APOP). */
static void
t_apop_explicit(void)
{
	/* MD5("<1.2@host>secret-pw") */
	const char *script = "< +OK <1.2@host>\n> CAPA\n< +OK\n< USER\n< .\n"
	                     ">~ APOP u [0-9a-f]{32}\n< +OK\n> NOOP\n< +OK\n";
	struct pop3_options o;
	struct pop3 *p;
	struct fake f;
	struct err err = {{0}};

	if (fake_plain(&f, script, &o) != 0)
		return;
	o.auth = POP3_AUTH_APOP;
	p = connect_ok(&o, &err);
	CHECK_STR(pop3_login_mechanism(p), "APOP");
	pop3_free(&p);
	finish_no_mismatch(&f);
}

/* Plain SASL PLAIN required but the server only offers USER: refused, and
 * nothing secret is sent. */
static void
t_sasl_plain_missing(void)
{
	const char *script = "< +OK hi\n> CAPA\n< +OK\n< USER\n< .\n";
	struct pop3_options o;
	struct pop3 *p;
	struct fake f;
	struct err err = {{0}};
	char *t;

	if (fake_plain(&f, script, &o) != 0)
		return;
	o.auth = POP3_AUTH_PLAIN;
	p = pop3_new(&o, &err);
	CHECK(pop3_connect(p, &err) == -1, "login without PLAIN succeeded");
	CHECK_INT(pop3_error_kind(p), POP3_ERR_AUTH);
	CHECK(strstr(err.msg, "mailbox fake") != NULL, "%s", err.msg);
	pop3_free(&p);
	t = fake_finish(&f);
	CHECK(strstr(t, "secret") == NULL && strstr(t, "PASS") == NULL,
	    "credentials sent: %s", t);
	free(t);
}

static void
t_xoauth2(void)
{
	const char *script =
	    "< +OK hi\n> CAPA\n< +OK\n< SASL XOAUTH2\n< .\n"
	    "> AUTH XOAUTH2 dXNlcj11AWF1dGg9QmVhcmVyIHRvay0xMjMBAQ==\n"
	    "< +OK in\n"
	    "> NOOP\n< +OK\n";
	struct pop3_options o;
	struct pop3 *p;
	struct fake f;
	struct err err = {{0}};

	if (fake_plain(&f, script, &o) != 0)
		return;
	o.auth = POP3_AUTH_XOAUTH2;
	o.password = NULL;
	o.bearer_token = "tok-123";
	p = pop3_new(&o, &err);
	CHECK(p != NULL, "%s", err.msg);
	CHECK(pop3_connect(p, &err) == 0, "%s", err.msg);
	pop3_free(&p);
	finish_no_mismatch(&f);
}

/* -ERR on each command: the error names the mailbox, the command and the
 * server's text, never the password; the kind follows the response code. */
static const struct err_row {
	const char *name;
	const char *script; /* after the greeting */
	int step; /* 0 connect fails, 1 UIDL, 2 LIST, 3 RETR, 4 TOP,
		     5 DELE, 6 NOOP, 7 QUIT */
	enum pop3_error kind;
	const char *cmd, *text;
} err_rows[] = {
    {"greeting", "", 0, POP3_ERR_SYS_TEMP, "connect",
        "-ERR [SYS/TEMP] go away"},
    {"USER", "> CAPA\n< +OK\n< USER\n< .\n> USER u\n< -ERR no such user\n", 0,
        POP3_ERR_AUTH, "connect", NULL},
    {"PASS",
        "> CAPA\n< +OK\n< USER\n< .\n> USER u\n< +OK\n> PASS secret-pw\n"
        "< -ERR [AUTH] secret-pw is wrong\n",
        0, POP3_ERR_AUTH, "connect", "-ERR [AUTH] *** is wrong"},
    {"PASS echoed in capitals",
        "> CAPA\n< +OK\n< USER\n< .\n> USER u\n< +OK\n> PASS secret-pw\n"
        "< -ERR [AUTH] SECRET-PW is wrong\n",
        0, POP3_ERR_AUTH, "connect", "-ERR [AUTH] *** is wrong"},
    {"AUTH PLAIN echoed",
        "> CAPA\n< +OK\n< SASL PLAIN\n< .\n> AUTH PLAIN AHUAc2VjcmV0LXB3\n"
        "< -ERR [AUTH] bad token AHUAc2VjcmV0LXB3\n",
        0, POP3_ERR_AUTH, "connect", "-ERR [AUTH] bad token ***"},
    {"PASS in use",
        "> CAPA\n< +OK\n< USER\n< .\n> USER u\n< +OK\n> PASS secret-pw\n"
        "< -ERR [IN-USE] mailbox locked\n",
        0, POP3_ERR_IN_USE, "connect", NULL},
    {"AUTH PLAIN",
        "> CAPA\n< +OK\n< SASL PLAIN\n< .\n> AUTH PLAIN AHUAc2VjcmV0LXB3\n"
        "< -ERR [AUTH] Authentication failed.\n",
        0, POP3_ERR_AUTH, "connect", "-ERR [AUTH] Authentication failed."},
    {"NOOP at login",
        "> CAPA\n< +OK\n< USER\n< .\n> USER u\n< +OK\n> PASS secret-pw\n"
        "< +OK\n> NOOP\n< -ERR [SYS/TEMP] try later\n",
        0, POP3_ERR_SYS_TEMP, "connect", "-ERR [SYS/TEMP] try later"},
    {"UIDL", "LOGIN> UIDL\n< -ERR unknown command\n", 1, POP3_ERR_NO_UIDL,
        "UIDL", "-ERR unknown command"},
    {"LIST", "LOGIN> LIST\n< -ERR list broke\n", 2, POP3_ERR_SERVER, "LIST",
        "-ERR list broke"},
    {"RETR", "LOGIN> RETR 1\n< -ERR no such message\n", 3, POP3_ERR_SERVER,
        "RETR 1", "-ERR no such message"},
    {"TOP", "LOGIN> TOP 1 0\n< -ERR no TOP here\n", 4, POP3_ERR_SERVER,
        "TOP 1 0", "-ERR no TOP here"},
    {"DELE", "LOGIN> DELE 1\n< -ERR [IN-USE] cannot delete\n", 5,
        POP3_ERR_IN_USE, "DELE 1", "-ERR [IN-USE] cannot delete"},
    {"NOOP", "LOGIN> NOOP\n< -ERR noop refused\n", 6, POP3_ERR_SERVER, "NOOP",
        "-ERR noop refused"},
    {"QUIT", "LOGIN> QUIT\n< -ERR [SYS/TEMP] could not delete\n", 7,
        POP3_ERR_SYS_TEMP, "QUIT", "-ERR [SYS/TEMP] could not delete"},
};

static void
t_err_each_command(void)
{
	size_t i;

	for (i = 0; i < sizeof(err_rows) / sizeof(err_rows[0]); i++) {
		const struct err_row *r = &err_rows[i];
		struct pop3_options o;
		struct pop3 *p;
		struct pop3_entry *l = NULL;
		struct fake f;
		struct err err = {{0}};
		struct buf b;
		size_t n;
		char script[2048], want[128], key[POP3_UIDL_MAX + 1];
		const char *body = r->script;
		int rc;

		test_begin("err_each_command: -ERR on %s", r->name);
		if (strncmp(body, "LOGIN", 5) == 0)
			snprintf(script, sizeof(script), "%s%s> QUIT\n< +OK\n",
			    LOGIN, body + 5);
		else if (strcmp(r->name, "greeting") == 0)
			snprintf(script, sizeof(script),
			    "< -ERR [SYS/TEMP] go away\n");
		else
			snprintf(script, sizeof(script),
			    "< +OK hi\n%s> QUIT\n< +OK\n", body);
		if (fake_plain(&f, script, &o) != 0) {
			test_end();
			continue;
		}
		if (strncmp(r->name, "AUTH PLAIN", 10) == 0)
			o.auth = POP3_AUTH_PLAIN;
		buf_init(&b, 4096);
		p = pop3_new(&o, &err);
		rc = pop3_connect(p, &err);
		if (r->step > 0) {
			CHECK(rc == 0, "%s", err.msg);
			switch (r->step) {
			case 1:
				rc = pop3_uidl(p, &l, &n, &err);
				break;
			case 2:
				rc = pop3_list(p, &l, &n, &err);
				break;
			case 3:
				rc = pop3_retr(p, 1, &b, &err);
				break;
			case 4:
				rc = pop3_top_key(p, 1, key, &err);
				break;
			case 5:
				rc = pop3_dele(p, 1, &err);
				break;
			case 6:
				rc = pop3_noop(p, &err);
				break;
			case 7:
				rc = pop3_quit(p, &err);
				break;
			}
		}
		CHECK(rc == -1, "command succeeded");
		CHECK_STR(pop3_error_name(pop3_error_kind(p)),
		    pop3_error_name(r->kind));
		CHECK(strncmp(err.msg, "mailbox fake: ", 14) == 0, "%s",
		    err.msg);
		snprintf(want, sizeof(want), ": %s: ", r->cmd);
		CHECK(strstr(err.msg, want) != NULL, "no \"%s\" in \"%s\"",
		    want, err.msg);
		if (r->text != NULL)
			CHECK(strstr(err.msg, r->text) != NULL,
			    "no \"%s\" in \"%s\"", r->text, err.msg);
		CHECK(strcasestr(err.msg, "secret-pw") == NULL &&
		        strstr(err.msg, "c2VjcmV0LXB3") == NULL,
		    "password in %s", err.msg);
		/* the session is over: no command reaches the server */
		if (r->step > 0)
			CHECK(pop3_noop(p, &err) == -1 &&
			        pop3_error_kind(p) == POP3_ERR_STATE,
			    "session still usable");
		pop3_free(&p);
		free(l);
		buf_free(&b);
		finish_no_mismatch(&f);
		test_end();
	}
}

/* Listings Dovecot never sends: each is a protocol error for the pass. */
static const struct bad_row {
	const char *name;
	const char *listing; /* server lines after "+OK" */
	int uidl;
	const char *why;
} bad_rows[] = {
    {"duplicate msgno", "< 1 a\n< 1 b\n< .\n", 1, "duplicate message number"},
    {"non-printable UIDL", "<r 1 ab\\x01cd\\r\\n\n< .\n", 1, "byte 0x01"},
    {"8-bit UIDL", "<r 1 ab\\xffcd\\r\\n\n< .\n", 1, "byte 0xff"},
    {"UIDL with space", "< 1 ab cd\n< .\n", 1, "byte 0x20"},
    {"line without CRLF", "<r 1 abc\\n\n< 2 def\n< .\n", 1, "bare LF"},
    {"msgno zero", "< 0 abc\n< .\n", 1, "bad message number"},
    {"msgno garbage", "< one abc\n< .\n", 1, "bad message number"},
    {"LIST size garbage", "< 1 12kb\n< .\n", 0, "bad size"},
};

static void
t_bad_listings(void)
{
	size_t i;

	for (i = 0; i < sizeof(bad_rows) / sizeof(bad_rows[0]); i++) {
		const struct bad_row *r = &bad_rows[i];
		struct pop3 *p;
		struct pop3_entry *l = NULL;
		struct fake f;
		struct err err = {{0}};
		size_t n = 0;
		char script[1024];
		int rc;

		test_begin("bad_listing: %s", r->name);
		snprintf(script, sizeof(script), "%s> %s\n< +OK\n%s", LOGIN,
		    r->uidl ? "UIDL" : "LIST", r->listing);
		if (fake_login(&f, script, &p, &err) != 0) {
			test_end();
			continue;
		}
		rc = r->uidl ? pop3_uidl(p, &l, &n, &err)
		             : pop3_list(p, &l, &n, &err);
		CHECK(rc == -1, "accepted");
		CHECK(l == NULL && n == 0, "entries returned");
		CHECK_INT(pop3_error_kind(p), POP3_ERR_PROTOCOL);
		CHECK(strstr(err.msg, r->why) != NULL, "no \"%s\" in \"%s\"",
		    r->why, err.msg);
		CHECK(strstr(err.msg, "mailbox fake: ") != NULL, "%s", err.msg);
		pop3_free(&p);
		finish_no_mismatch(&f);
		test_end();
	}
}

/* A UIDL line of 10,000 characters (fetchmail SA-2005-01). */
static void
t_uidl_10000(void)
{
	size_t len = 10000;
	char *script = xmalloc(len + 1024), *uid = xmalloc(len + 1), *t;
	struct pop3 *p;
	struct pop3_entry *l = NULL;
	struct fake f;
	struct err err = {{0}};
	size_t n = 0;

	memset(uid, 'U', len);
	uid[len] = '\0';
	snprintf(script, len + 1024, "%s> UIDL\n< +OK\n< 1 ok\n< 2 %s\n< .\n",
	    LOGIN, uid);
	if (fake_login(&f, script, &p, &err) != 0)
		goto out;
	CHECK(pop3_uidl(p, &l, &n, &err) == -1, "accepted");
	CHECK_INT(pop3_error_kind(p), POP3_ERR_PROTOCOL);
	CHECK(strstr(err.msg, "line 2 is 10002 bytes long") != NULL, "%s",
	    err.msg);
	pop3_free(&p);
	t = fake_finish(&f);
	free(t);
out:
	free(script);
	free(uid);
}

/* Empty mailbox: "+OK" then "." */
static void
t_empty_listing(void)
{
	const char *script = LOGIN "> UIDL\n< +OK\n< .\n> LIST\n< +OK 0\n< .\n";
	struct pop3 *p;
	struct pop3_entry *l = NULL;
	struct fake f;
	struct err err = {{0}};
	size_t n = 7;

	if (fake_login(&f, script, &p, &err) != 0)
		return;
	CHECK(pop3_scan(p, &l, &n, &err) == 0, "%s", err.msg);
	CHECK_INT(n, 0);
	free(l);
	pop3_free(&p);
	free(fake_finish(&f));
}

/* UIDL and LIST disagree on the message set. */
static void
t_scan_mismatch(void)
{
	const char *script = LOGIN "> UIDL\n< +OK\n< 1 a\n< 2 b\n< .\n"
	                           "> LIST\n< +OK\n< 1 10\n< 3 30\n< .\n";
	struct pop3 *p;
	struct pop3_entry *l = NULL;
	struct fake f;
	struct err err = {{0}};
	size_t n;

	if (fake_login(&f, script, &p, &err) != 0)
		return;
	CHECK(pop3_scan(p, &l, &n, &err) == -1, "accepted");
	CHECK(strstr(err.msg, "message 2 is in UIDL but not in LIST") != NULL,
	    "%s", err.msg);
	pop3_free(&p);
	free(fake_finish(&f));
}

/* A mailbox larger than the window: STAT, then "UIDL n"/"LIST n" for
 * the oldest ones only (no PIPELINING here: one at a time), and only
 * those may be fetched. */
static void
t_scan_first_partial(void)
{
	const char *script =
	    LOGIN "> STAT\n< +OK 1000000 99999999\n"
	          "> UIDL 1\n< +OK 1 first\n> UIDL 2\n< +OK 2 second\n"
	          "> LIST 1\n< +OK 1 120\n> LIST 2\n< +OK 2 340\n";
	struct pop3 *p;
	struct pop3_entry *l = NULL;
	struct fake f;
	struct err err = {{0}};
	struct buf b;
	size_t n = 0, total = 0;

	if (fake_login(&f, script, &p, &err) != 0)
		return;
	CHECK(pop3_scan_first(p, 2, &l, &n, &total, &err) == 0, "%s", err.msg);
	CHECK_INT(total, 1000000);
	CHECK_INT(n, 2);
	if (n == 2) {
		CHECK(strcmp(l[0].uidl, "first") == 0 && l[0].size == 120,
		    "%s %lld", l[0].uidl, (long long)l[0].size);
		CHECK(strcmp(l[1].uidl, "second") == 0 && l[1].size == 340,
		    "%s %lld", l[1].uidl, (long long)l[1].size);
	}
	buf_init(&b, 1024);
	CHECK(pop3_retr(p, 3, &b, &err) == -1, "message 3 fetched");
	CHECK(strstr(err.msg, "not in this session's listing") != NULL, "%s",
	    err.msg);
	buf_free(&b);
	free(l);
	pop3_free(&p);
	free(fake_finish(&f));
}

/* A listing longer than STAT said is refused after the window, not read
 * whole. */
static void
t_scan_first_lying_stat(void)
{
	const char *script = LOGIN "> STAT\n< +OK 2 200\n> UIDL\n< +OK\n"
	                           "! repeat 100000 9 same\n< .\n";
	struct pop3 *p;
	struct pop3_entry *l = NULL;
	struct fake f;
	struct err err = {{0}};
	size_t n = 0, total = 0;

	if (fake_login(&f, script, &p, &err) != 0)
		return;
	CHECK(pop3_scan_first(p, 10, &l, &n, &total, &err) == -1, "accepted");
	CHECK(pop3_error_kind(p) == POP3_ERR_LIMIT, "kind %d",
	    (int)pop3_error_kind(p));
	free(l);
	pop3_free(&p);
	free(fake_finish(&f));
}

/* A line without CRLF before the server closes, in a listing. */
static void
t_listing_cut_without_crlf(void)
{
	const char *script = LOGIN "> UIDL\n< +OK\n< 1 a\n<r 2 b\n! close\n";
	struct pop3 *p;
	struct pop3_entry *l = NULL;
	struct fake f;
	struct err err = {{0}};
	size_t n;

	if (fake_login(&f, script, &p, &err) != 0)
		return;
	CHECK(pop3_uidl(p, &l, &n, &err) == -1, "accepted");
	CHECK_INT(pop3_error_kind(p), POP3_ERR_CONNECT);
	pop3_free(&p);
	free(fake_finish(&f));
}

int
main(void)
{
	if (fake_setup("pop3_fake") != 0)
		return test_done();
	RUN(t_session_transcript);
	RUN(t_scan_first_partial);
	RUN(t_scan_first_lying_stat);
	RUN(t_sasl_plain);
	RUN(t_sasl_plain_missing);
	RUN(t_apop_greeting_user_pass);
	RUN(t_no_capa_user_pass);
	RUN(t_default_sasl_plain);
	RUN(t_default_sasl_login);
	RUN(t_default_sasl_login_refused);
	RUN(t_apop_explicit);
	RUN(t_xoauth2);
	t_err_each_command();
	t_bad_listings();
	RUN(t_uidl_10000);
	RUN(t_empty_listing);
	RUN(t_scan_mismatch);
	RUN(t_listing_cut_without_crlf);
	fake_cleanup();
	return test_done();
}
