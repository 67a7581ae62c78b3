/*
 * test_pop3_fake.c - the POP3 client against a scripted server
 * (tests/helpers/fakepop3.py), plain TCP and TLS.  Each case gives the
 * server a transcript (client commands -> canned replies) and checks both
 * the client's result and the exact command lines it sent: the replies
 * Dovecot never produces (-ERR everywhere, hostile listings, cut or stalled
 * connections, missing STLS).  Needs python3 and openssl; skips otherwise.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pop3/pop3.h"
#include "test.h"

static char tmpdir[64];
static char helper[512];
static char cert[128], key[128], wrong_cert[128], wrong_key[128];
static int have_tls;

enum fake_tls { FAKE_PLAIN, FAKE_IMPLICIT };

struct fake {
	pid_t pid;
	int port;
	char transcript[160];
};

static int seq;

static int
fake_start(struct fake *f, const char *script, enum fake_tls tls,
    const char *use_cert, const char *use_key)
{
	char spath[160], ppath[160], buf[32];
	FILE *fp;
	int i, fd;
	ssize_t n;

	seq++;
	snprintf(spath, sizeof(spath), "%s/s%d", tmpdir, seq);
	snprintf(ppath, sizeof(ppath), "%s/p%d", tmpdir, seq);
	snprintf(f->transcript, sizeof(f->transcript), "%s/t%d", tmpdir, seq);
	if ((fp = fopen(spath, "w")) == NULL)
		return -1;
	fputs(script, fp);
	fclose(fp);
	f->pid = fork();
	if (f->pid < 0)
		return -1;
	if (f->pid == 0) {
		const char *argv[16];
		int a = 0;

		argv[a++] = "python3";
		argv[a++] = helper;
		argv[a++] = "--script";
		argv[a++] = spath;
		argv[a++] = "--transcript";
		argv[a++] = f->transcript;
		argv[a++] = "--port-file";
		argv[a++] = ppath;
		argv[a++] = "--timeout";
		argv[a++] = "20";
		if (use_cert != NULL) {
			argv[a++] = "--cert";
			argv[a++] = use_cert;
			argv[a++] = "--key";
			argv[a++] = use_key;
		}
		if (tls == FAKE_IMPLICIT)
			argv[a++] = "--tls";
		argv[a] = NULL;
		execvp("python3", (char *const *)argv);
		_exit(127);
	}
	for (i = 0; i < 200; i++) {
		if ((fd = open(ppath, O_RDONLY)) >= 0) {
			n = read(fd, buf, sizeof(buf) - 1);
			close(fd);
			if (n > 0) {
				buf[n] = '\0';
				f->port = (int)strtol(buf, NULL, 10);
				return 0;
			}
		}
		usleep(25000);
	}
	kill(f->pid, SIGKILL);
	waitpid(f->pid, NULL, 0);
	return -1;
}

/* Waits for the server to finish (it stops when the client hangs up) and
 * returns the transcript (caller frees). */
static char *
fake_finish(struct fake *f)
{
	struct err err;
	char *text = NULL;
	size_t len;
	int i, st;

	for (i = 0; i < 400; i++) {
		if (waitpid(f->pid, &st, WNOHANG) == f->pid)
			break;
		usleep(25000);
	}
	if (i == 400) {
		kill(f->pid, SIGKILL);
		waitpid(f->pid, &st, 0);
	}
	if (read_file(f->transcript, 1 << 20, &text, &len, &err) != 0)
		return xstrdup("(no transcript)");
	return text;
}

static void
opts_fake(struct pop3_options *o, int port)
{
	memset(o, 0, sizeof(*o));
	o->mailbox_name = "fake";
	o->host = "127.0.0.1";
	o->port = port;
	o->tls = POP3_TLS_NONE;
	o->username = "u";
	o->password = "secret-pw";
	o->connect_timeout_ms = 3000;
	o->command_timeout_ms = 3000;
	o->transfer_timeout_ms = 5000;
}

/* Starts a plain-TCP fake server with SCRIPT and points O at it; records
 * the case as failed when the server does not come up. */
static int
fake_plain(struct fake *f, const char *script, struct pop3_options *o)
{
	if (fake_start(f, script, FAKE_PLAIN, NULL, NULL) != 0) {
		CHECK(0, "fake server did not start");
		return -1;
	}
	opts_fake(o, f->port);
	return 0;
}

/* pop3_new and pop3_connect for a case whose login must succeed. */
static struct pop3 *
connect_ok(const struct pop3_options *o, struct err *err)
{
	struct pop3 *p = pop3_new(o, err);

	CHECK(pop3_connect(p, err) == 0, "%s", err->msg);
	return p;
}

/* A plain fake server with SCRIPT and a client logged in to it (USER/PASS
 * as opts_fake sets them); -1 when the server did not start. */
static int
fake_login(struct fake *f, const char *script, struct pop3 **p, struct err *err)
{
	struct pop3_options o;

	if (fake_plain(f, script, &o) != 0)
		return -1;
	*p = connect_ok(&o, err);
	return 0;
}

/* Waits for the server and checks it saw exactly the scripted commands. */
static void
finish_no_mismatch(struct fake *f)
{
	char *t = fake_finish(f);

	CHECK(strstr(t, "MISMATCH") == NULL, "%s", t);
	free(t);
}

/* Greeting, CAPA without SASL (so USER/PASS), login, the connect NOOP. */
#define LOGIN \
	"< +OK fake ready\n> CAPA\n< +OK\n< USER\n< UIDL\n< TOP\n< .\n" \
	"> USER u\n< +OK\n> PASS secret-pw\n< +OK logged in\n> NOOP\n< +OK\n"
#define T_LOGIN "CONNECT\nC: CAPA\nC: USER u\nC: PASS secret-pw\nC: NOOP\n"

static int64_t
ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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

/* Greeting, CAPA with PIPELINING, login, the connect NOOP. */
#define LOGIN_PIPE \
	"< +OK fake ready\n> CAPA\n< +OK\n< USER\n< UIDL\n< PIPELINING\n" \
	"< .\n> USER u\n< +OK\n> PASS secret-pw\n< +OK logged in\n" \
	"> NOOP\n< +OK\n"

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

static int
make_cert(const char *c, const char *k, const char *cn, const char *san)
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd),
	    "openssl req -x509 -newkey ec -pkeyopt "
	    "ec_paramgen_curve:prime256v1 "
	    "-nodes -days 2 -subj /CN=%s -addext subjectAltName=%s "
	    "-keyout %s -out %s >/dev/null 2>&1",
	    cn, san, k, c);
	return system(cmd) == 0 ? 0 : -1;
}

int
main(void)
{
	const char *src = getenv("BOUNCER_SRC");
	char cmd[256];

	signal(SIGPIPE, SIG_IGN);
	if (src == NULL || system("python3 -c 'import ssl' 2>/dev/null") != 0) {
		printf("SKIP pop3_fake: BOUNCER_SRC or python3 missing\n");
		return 0;
	}
	snprintf(helper, sizeof(helper), "%s/tests/helpers/fakepop3.py", src);
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/pop3fake.XXXXXX");
	if (mkdtemp(tmpdir) == NULL) {
		printf("FAIL pop3_fake: mkdtemp: %s\n", strerror(errno));
		return 1;
	}
	snprintf(cert, sizeof(cert), "%s/cert.pem", tmpdir);
	snprintf(key, sizeof(key), "%s/key.pem", tmpdir);
	snprintf(wrong_cert, sizeof(wrong_cert), "%s/wcert.pem", tmpdir);
	snprintf(wrong_key, sizeof(wrong_key), "%s/wkey.pem", tmpdir);
	have_tls = make_cert(cert, key, "localhost",
	               "IP:127.0.0.1,DNS:localhost") == 0 &&
	    make_cert(wrong_cert, wrong_key, "other.example",
	        "DNS:other.example") == 0;

	RUN(t_session_transcript);
	RUN(t_scan_first_partial);
	RUN(t_retr_ahead);
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
	RUN(t_cut_mid_retr);
	RUN(t_listing_cut_without_crlf);
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

	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
	return test_done();
}
