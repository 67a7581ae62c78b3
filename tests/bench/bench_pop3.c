/*
 * bench_pop3.c - messages per second retrieving 1,000 messages of 5 KB
 * from the local Dovecot over one POP3S session: bouncerd's client
 * (UIDL + LIST + RETR of every message) next to the curl command-line tool
 * (RETR of every message, one connection, URL globbing), in the same run.
 * Prints figures only; needs the services of tests/services.sh.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "pop3/pop3.h"

#define USER "bounces3"
#define PASS "secret3"
#define NMSG 1000
#define MSG_SIZE 5000
#define ROUNDS 3

static const char *host, *ca, *maildir;
static int port;

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
seed_all(int uid, int gid)
{
	char tmp[512], dst[512], *m = xmalloc(MSG_SIZE);
	size_t pos, hl;
	int i, rc = -1;

	for (i = 0; i < NMSG; i++) {
		FILE *f;
		int k = snprintf(m, MSG_SIZE,
		    "From: bench@example.org\r\nTo: bounces@example.net\r\n"
		    "Subject: bench %d\r\nMessage-ID: "
		    "<b%d@example.org>\r\n\r\n",
		    i, i);

		hl = (size_t)k;
		for (pos = hl; pos + 72 <= MSG_SIZE; pos += 72) {
			memset(m + pos, 'a' + (char)(pos % 26), 70);
			memcpy(m + pos + 70, "\r\n", 2);
		}
		snprintf(tmp, sizeof(tmp), "%s/%s/Maildir/tmp/%d.M%dP1.bench",
		    maildir, USER, 100000 + i, i);
		snprintf(dst, sizeof(dst), "%s/%s/Maildir/new/%d.M%dP1.bench",
		    maildir, USER, 100000 + i, i);
		if ((f = fopen(tmp, "wb")) == NULL)
			goto out;
		fwrite(m, 1, pos, f);
		if (fclose(f) != 0 || chown(tmp, (uid_t)uid, (gid_t)gid) != 0 ||
		    rename(tmp, dst) != 0)
			goto out;
	}
	rc = 0;
out:
	free(m);
	return rc;
}

static void
clear_all(void)
{
	static const char *const sub[] = {"new", "cur"};
	char path[512], f[800];
	struct dirent *de;
	size_t i;

	for (i = 0; i < 2; i++) {
		DIR *d;

		snprintf(path, sizeof(path), "%s/%s/Maildir/%s", maildir, USER,
		    sub[i]);
		if ((d = opendir(path)) == NULL)
			continue;
		while ((de = readdir(d)) != NULL) {
			if (strstr(de->d_name, ".bench") == NULL)
				continue;
			snprintf(f, sizeof(f), "%s/%s", path, de->d_name);
			unlink(f);
		}
		closedir(d);
	}
}

/* One session: connect, UIDL + LIST, RETR all.  Returns seconds, or -1. */
static double
run_client(size_t *bytes_out, long *conns_out)
{
	struct pop3_options o;
	struct pop3 *p = NULL;
	struct pop3_entry *l = NULL;
	struct err err = {{0}};
	struct buf b;
	size_t n = 0, i, bytes = 0;
	double t0 = now_s(), t = -1;

	memset(&o, 0, sizeof(o));
	o.mailbox_name = "bench";
	o.host = host;
	o.port = port;
	o.ca_file = ca;
	o.username = USER;
	o.password = PASS;
	buf_init(&b, 1 << 20);
	if ((p = pop3_new(&o, &err)) == NULL || pop3_connect(p, &err) != 0 ||
	    pop3_scan(p, &l, &n, &err) != 0)
		goto out;
	for (i = 0; i < n; i++) {
		if (pop3_retr(p, l[i].msgno, &b, &err) != 0)
			goto out;
		bytes += b.len;
	}
	if (pop3_quit(p, &err) != 0)
		goto out;
	t = now_s() - t0;
	*bytes_out = bytes;
	*conns_out = pop3_connections(p);
	if (n != NMSG) {
		fprintf(stderr, "bench_pop3: listed %zu messages\n", n);
		t = -1;
	}
out:
	if (t < 0)
		fprintf(stderr, "bench_pop3: %s\n", err.msg);
	pop3_free(&p);
	free(l);
	buf_free(&b);
	return t;
}

static double
run_curl(void)
{
	char cmd[1024];
	double t0;

	snprintf(cmd, sizeof(cmd),
	    "curl -sS --fail --cacert '%s' -u '%s:%s' "
	    "'pop3s://%s:%d/[1-%d]' >/dev/null",
	    ca, USER, PASS, host, port, NMSG);
	t0 = now_s();
	if (system(cmd) != 0)
		return -1;
	return now_s() - t0;
}

/* The same curl command once more, untimed, counting what it got. */
static long long
curl_bytes(void)
{
	char cmd[1024], line[64];
	long long n = -1;
	FILE *f;

	snprintf(cmd, sizeof(cmd),
	    "curl -sS --fail --cacert '%s' -u '%s:%s' "
	    "'pop3s://%s:%d/[1-%d]' | wc -c",
	    ca, USER, PASS, host, port, NMSG);
	if ((f = popen(cmd, "r")) == NULL)
		return -1;
	if (fgets(line, sizeof(line), f) != NULL)
		n = strtoll(line, NULL, 10);
	pclose(f);
	return n;
}

int
main(void)
{
	double best_c = 1e9, best_k = 1e9, t;
	size_t bytes = 0;
	long conns = 0;
	int r, uid, gid;

	host = getenv("BOUNCER_TEST_POP3S_HOST");
	ca = getenv("BOUNCER_TEST_POP3_CA");
	maildir = getenv("BOUNCER_TEST_MAILDIR_ROOT");
	port = getenv("BOUNCER_TEST_POP3S_PORT")
	    ? (int)strtol(getenv("BOUNCER_TEST_POP3S_PORT"), NULL, 10)
	    : 0;
	uid = getenv("BOUNCER_TEST_MAIL_UID")
	    ? (int)strtol(getenv("BOUNCER_TEST_MAIL_UID"), NULL, 10)
	    : 0;
	gid = getenv("BOUNCER_TEST_MAIL_GID")
	    ? (int)strtol(getenv("BOUNCER_TEST_MAIL_GID"), NULL, 10)
	    : 0;
	if (host == NULL || ca == NULL || maildir == NULL || port == 0) {
		printf("bench_pop3: skipped (services not set up)\n");
		return 0;
	}
	clear_all();
	if (seed_all(uid, gid) != 0) {
		printf("bench_pop3: seeding failed\n");
		return 1;
	}
	/* warm-up: Dovecot builds its index on the first session */
	if (run_client(&bytes, &conns) < 0)
		return 1;
	for (r = 0; r < ROUNDS; r++) {
		t = run_client(&bytes, &conns);
		if (t < 0)
			return 1;
		if (t < best_c)
			best_c = t;
		t = run_curl();
		if (t < 0) {
			printf("bench_pop3: curl command failed\n");
			return 1;
		}
		if (t < best_k)
			best_k = t;
	}
	printf("bench_pop3: %d messages x %d bytes over one POP3S session, "
	       "best of %d\n",
	    NMSG, MSG_SIZE, ROUNDS);
	printf("bench_pop3: bouncerd pop3 (UIDL+LIST+RETR): %.0f messages/s "
	       "(%.3f s, %zu bytes, %ld connection)\n",
	    NMSG / best_c, best_c, bytes, conns);
	printf("bench_pop3: curl CLI (RETR, one connection): %.0f messages/s "
	       "(%.3f s)\n",
	    NMSG / best_k, best_k);
	printf("bench_pop3: ratio bouncerd/curl: %.2f\n", best_k / best_c);
	printf("bench_pop3: curl CLI retrieved %lld bytes (untimed check)\n",
	    curl_bytes());
	clear_all();
	return 0;
}
