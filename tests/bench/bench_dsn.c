/*
 * bench_dsn.c - decoder throughput and memory.  Reads every corpus .eml
 * into memory first, then on one thread times (a) a bare GMime parse of
 * each message (construct it, walk its parts: the ceiling) and (b)
 * dsn_parse() with classification, in alternating rounds (so both see the
 * same load) for at least 2 x BENCH_SECONDS (3) in total.
 * Then, as whole processes over the same files (the corpus BENCH_CLI_REPEAT
 * (17) times over on one command line, output to /dev/null), times
 * `bounce-parse --format tsv` against gmime_walk (read, bare GMime
 * parse+walk, one line per file) in alternating runs, BENCH_CLI_ROUNDS
 * (5) of each.  Also decodes a generated 50 MB bounce returning a large
 * attachment, capped to the default maximum message size (4 MiB head), and
 * reports peak RSS.  Prints figures only; thresholds are read by people.
 */
#include <dirent.h>
#include <fcntl.h>
#include <gmime/gmime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"
#include "decode/dsn.h"
#include "base/util.h"

#define DEFAULT_MAX (4u * 1024 * 1024)

struct msg {
	char *data;
	size_t len;
};

static void
walk(GMimeObject *o, int *n)
{
	(*n)++;
	if (GMIME_IS_MULTIPART(o)) {
		int i, c = g_mime_multipart_get_count(GMIME_MULTIPART(o));

		for (i = 0; i < c; i++)
			walk(g_mime_multipart_get_part(GMIME_MULTIPART(o), i),
			    n);
	} else if (GMIME_IS_MESSAGE_PART(o)) {
		GMimeMessage *m =
		    g_mime_message_part_get_message(GMIME_MESSAGE_PART(o));

		if (m != NULL)
			walk(g_mime_message_get_mime_part(m), n);
	}
}

static int
bare_parse(const struct msg *m)
{
	GMimeStream *s = g_mime_stream_mem_new_with_buffer(m->data, m->len);
	GMimeParser *p = g_mime_parser_new_with_stream(s);
	GMimeMessage *msg = g_mime_parser_construct_message(p, NULL);
	int n = 0;

	if (msg != NULL) {
		GMimeObject *top = g_mime_message_get_mime_part(msg);

		if (top != NULL)
			walk(top, &n);
		g_object_unref(msg);
	}
	g_object_unref(p);
	g_object_unref(s);
	return n;
}

/* Runs argv with stdout and stdin on /dev/null; wall seconds and CPU
 * seconds (user + system) of the child, or -1. */
static int
run_timed(char **argv, double *wall_out, double *cpu_out)
{
	struct timespec a, b;
	struct rusage ru;
	int st = 0;
	pid_t pid;

	clock_gettime(CLOCK_MONOTONIC, &a);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int fd = open("/dev/null", O_RDWR);

		if (fd >= 0) {
			dup2(fd, 0);
			dup2(fd, 1);
		}
		execv(argv[0], argv);
		_exit(127);
	}
	if (wait4(pid, &st, 0, &ru) != pid)
		return -1;
	clock_gettime(CLOCK_MONOTONIC, &b);
	*wall_out = (double)(b.tv_sec - a.tv_sec) +
	    (double)(b.tv_nsec - a.tv_nsec) / 1e9;
	*cpu_out = (double)ru.ru_utime.tv_sec +
	    (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	    (double)ru.ru_stime.tv_usec / 1e6;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

#define CLI_MAX_ROUNDS 50

/* bounce-parse as a whole process against the bare GMime parse+walk
 * program, over the same file list, in alternating runs. */
static void
cli_bench(char **paths, size_t n)
{
	const char *rep_env = getenv("BENCH_CLI_REPEAT");
	const char *rounds_env = getenv("BENCH_CLI_ROUNDS");
	long rep = rep_env ? strtol(rep_env, NULL, 10) : 17;
	long rounds = rounds_env ? strtol(rounds_env, NULL, 10) : 5;
	char exe[4096], *dir, *cli, *walkp, **argv;
	double w[2][CLI_MAX_ROUNDS], c[2][CLI_MAX_ROUNDS];
	size_t nfiles, i, k;
	ssize_t el;
	long r;
	int p, failed = 0;

	if (rep < 1)
		rep = 1;
	if (rounds < 1)
		rounds = 1;
	if (rounds > CLI_MAX_ROUNDS)
		rounds = CLI_MAX_ROUNDS;
	el = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (el <= 0) {
		printf("bench_dsn: whole process: /proc/self/exe unreadable\n");
		return;
	}
	exe[el] = '\0';
	dir = strrchr(exe, '/');
	if (dir != NULL)
		*dir = '\0';
	/* this program is BUILD/tests/bench/bench_dsn */
	cli = xasprintf("%s/../../bin/bounce-parse", exe);
	walkp = xasprintf("%s/gmime_walk", exe);
	if (access(cli, X_OK) != 0 || access(walkp, X_OK) != 0) {
		printf("bench_dsn: whole process: %s or %s missing\n", cli,
		    walkp);
		goto out;
	}
	nfiles = n * (size_t)rep;
	argv = xcalloc(nfiles + 4, sizeof(*argv));
	for (p = 0; p < 2; p++) {
		char **a = argv;

		if (p == 0)
			*a++ = walkp;
		else {
			*a++ = cli;
			*a++ = "--format";
			*a++ = "tsv";
		}
		for (k = 0; k < (size_t)rep; k++)
			for (i = 0; i < n; i++)
				*a++ = paths[i];
		*a = NULL;
		/* one untimed run each: the page cache and the loader */
		if (run_timed(argv, &w[p][0], &c[p][0]) != 0)
			failed = 1;
	}
	for (r = 0; r < rounds && !failed; r++)
		for (k = 0; k < 2; k++) {
			/* the order alternates from round to round */
			char **a = argv;

			p = (int)((k + (size_t)r) % 2);
			if (p == 0)
				*a++ = walkp;
			else {
				*a++ = cli;
				*a++ = "--format";
				*a++ = "tsv";
			}
			for (i = 0; i < nfiles; i++)
				*a++ = paths[i % n];
			*a = NULL;
			if (run_timed(argv, &w[p][r], &c[p][r]) != 0)
				failed = 1;
		}
	free(argv);
	if (failed) {
		printf("bench_dsn: whole process: a run failed\n");
		goto out;
	}
	for (p = 0; p < 2; p++) {
		qsort(w[p], (size_t)rounds, sizeof(double), cmp_double);
		qsort(c[p], (size_t)rounds, sizeof(double), cmp_double);
	}
	printf("bench_dsn: whole process, %zu files (the corpus %ld times), "
	       "%ld alternating runs each, best / median wall:\n",
	    nfiles, rep, rounds);
	printf("bench_dsn:   gmime_walk (read + bare parse+walk) %6.3f / "
	       "%6.3f s = %7.0f / %7.0f msg/s, CPU %.3f s\n",
	    w[0][0], w[0][rounds / 2], nfiles / w[0][0],
	    nfiles / w[0][rounds / 2], c[0][0]);
	printf("bench_dsn:   bounce-parse --format tsv         %6.3f / "
	       "%6.3f s = %7.0f / %7.0f msg/s, CPU %.3f s\n",
	    w[1][0], w[1][rounds / 2], nfiles / w[1][0],
	    nfiles / w[1][rounds / 2], c[1][0]);
	printf("bench_dsn:   bounce-parse / bare GMime: %.2f (best), %.2f "
	       "(median), %.2f (CPU) (target >= 0.7)\n",
	    w[0][0] / w[1][0], w[0][rounds / 2] / w[1][rounds / 2],
	    c[0][0] / c[1][0]);
out:
	free(cli);
	free(walkp);
}

static long
rss_kb(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss;
}

/* A bounce whose returned message carries a base64 attachment of about
 * total bytes. */
static void
big_bounce(struct buf *b, size_t total)
{
	static const char b64[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char line[78];
	size_t i;

	buf_append_str(b,
	    "From: MAILER-DAEMON@mx.example\nTo: news@sender.example\n"
	    "Subject: Undelivered Mail Returned to Sender\nMIME-Version: 1.0\n"
	    "Content-Type: multipart/report; report-type=delivery-status; "
	    "boundary=\"B\"\n\n--B\nContent-Type: text/plain\n\nMessage too "
	    "large for the mailbox.\n\n--B\nContent-Type: "
	    "message/delivery-status\n\nReporting-MTA: dns; mx.example\n\n"
	    "Final-Recipient: rfc822; big@example.org\nAction: failed\n"
	    "Status: 5.2.3\nDiagnostic-Code: smtp; 552 5.2.3 message size "
	    "exceeds mailbox limit\n\n--B\nContent-Type: message/rfc822\n\n"
	    "From: news@sender.example\nTo: big@example.org\nSubject: Report\n"
	    "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"I\""
	    "\n\n--I\nContent-Type: text/plain\n\nSee attached.\n\n--I\n"
	    "Content-Type: application/octet-stream\n"
	    "Content-Transfer-Encoding: base64\n\n");
	size_t made = b->len;

	for (i = 0; i < 76; i++)
		line[i] = b64[(i * 7) % 64];
	line[76] = '\n';
	/* streamed like a RETR into a capped buffer: past the cap the
	 * bytes are counted and dropped */
	while (made + 77 < total) {
		buf_append(b, line, 77);
		made += 77;
	}
	buf_append_str(b, "\n--I--\n\n--B--\n");
}

/* Peak RSS on a 50 MB bounce, capped to the default max size. */
static void
big_rss(void)
{
	struct buf head;
	struct dsn_report *r = NULL;
	struct err err = {{0}};
	int64_t t0, el;
	long before;

	g_mime_init();
	/* what the poller keeps of a 50 MB message: its head */
	buf_init(&head, DEFAULT_MAX);
	big_bounce(&head, 50u * 1024 * 1024);
	before = rss_kb();
	t0 = now_ms();
	if (dsn_parse(head.data, head.len, head.truncated, NULL, &r, &err) != 0)
		printf("bench_dsn: big bounce: %s\n", err.msg);
	el = now_ms() - t0;
	printf("bench_dsn: 50 MB bounce capped to %zu bytes: %zu "
	       "recipient(s), %lld ms; peak RSS %.1f MB (%.1f MB "
	       "before decoding; target <= 32 MB)\n",
	    head.len, r != NULL ? dsn_record(r)->nrcpts : 0, (long long)el,
	    rss_kb() / 1024.0, before / 1024.0);
	dsn_free(&r);
	buf_free(&head);
}

int
main(void)
{
	const char *shared = getenv("BOUNCER_SHARED");
	const char *secs_env = getenv("BENCH_SECONDS");
	double secs = secs_env ? strtod(secs_env, NULL) : 3.0;
	char *dir = xasprintf("%s/corpus/eml", shared ? shared : "../shared");
	struct msg *msgs = NULL;
	char **paths = NULL;
	size_t n = 0, i, bytes = 0;
	long long count;
	int64_t t0, el;
	double bare_rate, dsn_rate;
	DIR *d;
	struct dirent *de;

	big_rss();

	d = opendir(dir);
	if (d == NULL) {
		printf(
		    "bench_dsn: corpus not found at %s (set BOUNCER_SHARED)\n",
		    dir);
		free(dir);
		return 0;
	}
	while ((de = readdir(d)) != NULL) {
		size_t l = strlen(de->d_name);
		struct err err = {{0}};
		char *path, *data;
		size_t len;

		if (l < 5 || strcmp(de->d_name + l - 4, ".eml") != 0)
			continue;
		path = xasprintf("%s/%s", dir, de->d_name);
		if (read_file(path, DEFAULT_MAX, &data, &len, &err) == 0) {
			msgs = xrealloc(msgs, (n + 1) * sizeof(*msgs));
			msgs[n].data = data;
			msgs[n].len = len;
			paths = xrealloc(paths, (n + 1) * sizeof(*paths));
			paths[n] = path;
			path = NULL;
			bytes += len;
			n++;
		}
		free(path);
	}
	closedir(d);
	free(dir);
	if (n == 0) {
		printf("bench_dsn: no messages\n");
		return 0;
	}
	printf("bench_dsn: %zu corpus messages, %zu bytes in memory, %.1f s "
	       "per measurement, one thread\n",
	    n, bytes, secs);

	/* (a) the ceiling, a bare GMime parse + part walk, and (b) decode +
	 * classify, measured in alternating rounds so that both see the same
	 * machine load */
	{
		int64_t t_bare = 0, t_dsn = 0, t1;
		long long rounds = 0;

		while (t_bare + t_dsn < (int64_t)(2 * secs * 1000)) {
			t1 = now_ms();
			for (i = 0; i < n; i++)
				bare_parse(&msgs[i]);
			t_bare += now_ms() - t1;
			t1 = now_ms();
			for (i = 0; i < n; i++) {
				struct dsn_report *r = NULL;
				struct err err = {{0}};

				if (dsn_parse(msgs[i].data, msgs[i].len, 0,
				        NULL, &r, &err) == 0)
					dsn_free(&r);
			}
			t_dsn += now_ms() - t1;
			rounds++;
		}
		count = rounds * (long long)n;
		bare_rate =
		    (double)count * 1000.0 / (double)(t_bare > 0 ? t_bare : 1);
		dsn_rate =
		    (double)count * 1000.0 / (double)(t_dsn > 0 ? t_dsn : 1);
		(void)t0;
		(void)el;
	}

	printf("bench_dsn: bare GMime parse+walk  %10.0f msg/s (ceiling)\n",
	    bare_rate);
	printf("bench_dsn: dsn_parse+classify     %10.0f msg/s\n", dsn_rate);
	printf("bench_dsn: ratio                  %10.1f %% of the ceiling "
	       "(target >= 60 %%)\n",
	    100.0 * dsn_rate / bare_rate);

	cli_bench(paths, n);

	for (i = 0; i < n; i++) {
		free(msgs[i].data);
		free(paths[i]);
	}
	free(msgs);
	free(paths);

	return 0;
}
