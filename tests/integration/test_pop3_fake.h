/*
 * test_pop3_fake.h - the scripted POP3 server harness shared by
 * test_pop3_fake.c and test_pop3_fake_xfer.c: starts
 * tests/helpers/fakepop3.py with a transcript (client commands -> canned
 * replies), points the client at it, reads back the commands it saw, and
 * makes the test certificates.  Included by one test program each.
 */
#ifndef BOUNCER_TEST_POP3_FAKE_H
#define BOUNCER_TEST_POP3_FAKE_H

#include <errno.h>
#include <fcntl.h>
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

static inline int
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
static inline char *
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

static inline void
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
static inline int
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
static inline struct pop3 *
connect_ok(const struct pop3_options *o, struct err *err)
{
	struct pop3 *p = pop3_new(o, err);

	CHECK(pop3_connect(p, err) == 0, "%s", err->msg);
	return p;
}

/* A plain fake server with SCRIPT and a client logged in to it (USER/PASS
 * as opts_fake sets them); -1 when the server did not start. */
static inline int
fake_login(struct fake *f, const char *script, struct pop3 **p, struct err *err)
{
	struct pop3_options o;

	if (fake_plain(f, script, &o) != 0)
		return -1;
	*p = connect_ok(&o, err);
	return 0;
}

/* Waits for the server and checks it saw exactly the scripted commands. */
static inline void
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

static inline int64_t
ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Greeting, CAPA with PIPELINING, login, the connect NOOP. */
#define LOGIN_PIPE \
	"< +OK fake ready\n> CAPA\n< +OK\n< USER\n< UIDL\n< PIPELINING\n" \
	"< .\n> USER u\n< +OK\n> PASS secret-pw\n< +OK logged in\n" \
	"> NOOP\n< +OK\n"

static inline int
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

/* Sets up the helper path, a temporary directory and the certificates.
 * 0, or 1 when the program should exit (a SKIP or FAIL line printed). */
static inline int
fake_setup(const char *name)
{
	const char *src = getenv("BOUNCER_SRC");

	signal(SIGPIPE, SIG_IGN);
	if (src == NULL || system("python3 -c 'import ssl' 2>/dev/null") != 0) {
		printf("SKIP %s: BOUNCER_SRC or python3 missing\n", name);
		return 1;
	}
	snprintf(helper, sizeof(helper), "%s/tests/helpers/fakepop3.py", src);
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/pop3fake.XXXXXX");
	if (mkdtemp(tmpdir) == NULL) {
		printf("FAIL %s: mkdtemp: %s\n", name, strerror(errno));
		test_failed_total++;
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
	return 0;
}

/* Removes the temporary directory. */
static inline void
fake_cleanup(void)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
}

#endif
