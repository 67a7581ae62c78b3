/*
 * test_dsn.c - golden-file tests of the bounce decoder: every
 * tests/fixtures/dsn/NAME.eml is decoded and its report, printed one field
 * per line, must equal NAME.expect exactly (see dump() for the format).
 * Options for a fixture are "opt-..." lines at the top of its .expect.
 * Plus table-free cases: hostile input, caps, API edge cases.
 * DSN_FIXTURE_WRITE=1 rewrites the .expect files (for review in a diff).
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "decode/dsn.h"
#include "test.h"
#include "base/util.h"

#define FIXDIR "tests/fixtures/dsn"

static void
put(struct buf *b, const char *s)
{
	buf_append_str(b, s ? s : "-");
}

/* A field ("-" for NULL) and the separator SEP after it. */
static void
put_sep(struct buf *b, const char *s, const char *sep)
{
	put(b, s);
	buf_append_str(b, sep);
}

static void
putf(struct buf *b, const char *k, const char *v)
{
	buf_append_str(b, k);
	buf_append_str(b, "\t");
	put(b, v);
	buf_append_str(b, "\n");
}

static void
putn(struct buf *b, const char *k, long long v)
{
	char tmp[64];

	snprintf(tmp, sizeof(tmp), "%s\t%lld\n", k, v);
	buf_append_str(b, tmp);
}

/* The decoder's fields (not the classifier's) in a stable text form. */
static void
dump(const struct dsn_report *r, struct buf *b)
{
	size_t i;

	putf(b, "kind", record_kind_name(dsn_kind(r)));
	putf(b, "reporting_mta", dsn_reporting_mta(r));
	putn(b, "date", (long long)dsn_date(r));
	putn(b, "truncated", dsn_truncated(r));
	putf(b, "verp", dsn_verp_recipient(r));
	putf(b, "mta", dsn_mta(r));
	putn(b, "nrcpt", (long long)dsn_rcpt_count(r));
	for (i = 0; i < dsn_rcpt_count(r); i++) {
		const struct record_rcpt *rc = dsn_rcpt_at(r, i);
		char tmp[64];

		buf_append_str(b, "rcpt\t");
		put_sep(b, rc->recipient, "\t");
		put_sep(b, rc->recipient_source, "\t");
		put_sep(b, rc->final_recipient, "\t");
		put_sep(b, rc->original_recipient, "\t");
		put_sep(b, rc->action, "\t");
		put(b, rc->status);
		snprintf(tmp, sizeof(tmp), "\t%d\t", rc->reply_code);
		buf_append_str(b, tmp);
		put(b, rc->remote_mta);
		snprintf(tmp, sizeof(tmp), "\t%lld\t", (long long)rc->date);
		buf_append_str(b, tmp);
		put_sep(b, rc->feedback_type, "\t");
		put_sep(b, rc->smtp_command, "\n");
		putf(b, "diag", rc->diagnostic);
	}
	for (i = 0; i < dsn_orig_header_count(r); i++) {
		const char *n, *v;

		dsn_orig_header_at(r, i, &n, &v);
		buf_append_str(b, "header\t");
		put_sep(b, n, "\t");
		put_sep(b, v, "\n");
	}
}

struct opts {
	const char *headers[8];
	char store[8][128];
	char verp[256];
	struct dsn_options o;
	int truncated;
	struct buf opt_lines; /* kept when the file is rewritten */
};

/* Reads the opt- lines of an .expect file; returns the rest. */
static const char *
read_opts(const char *exp, struct opts *op)
{
	const char *p = exp;

	memset(&op->o, 0, sizeof(op->o));
	op->o.headers = op->headers;
	op->truncated = 0;
	op->verp[0] = '\0';
	while (strncmp(p, "opt-", 4) == 0) {
		const char *nl = strchr(p, '\n');
		size_t ll = nl ? (size_t)(nl - p) : strlen(p);
		const char *tab = memchr(p, '\t', ll);

		buf_append(&op->opt_lines, p, ll + (nl ? 1 : 0));
		if (tab != NULL) {
			size_t vl = ll - (size_t)(tab + 1 - p);

			if (strncmp(p, "opt-header\t", 11) == 0 &&
			    op->o.nheaders < 8 && vl < 128) {
				memcpy(op->store[op->o.nheaders], tab + 1, vl);
				op->store[op->o.nheaders][vl] = '\0';
				op->headers[op->o.nheaders] =
				    op->store[op->o.nheaders];
				op->o.nheaders++;
			} else if (strncmp(p, "opt-verp\t", 9) == 0 &&
			    vl < sizeof(op->verp)) {
				memcpy(op->verp, tab + 1, vl);
				op->verp[vl] = '\0';
				op->o.verp_pattern = op->verp;
			} else if (strncmp(p, "opt-truncated\t", 14) == 0)
				op->truncated = tab[1] == '1';
		}
		if (nl == NULL)
			return p + ll;
		p = nl + 1;
	}
	return p;
}

static int
cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* First differing line, for a readable failure. */
static void
report_diff(const char *got, const char *want)
{
	int line = 1;

	while (*got != '\0' && *got == *want) {
		if (*got == '\n')
			line++;
		got++;
		want++;
	}
	{
		const char *ge = strchr(got, '\n'), *we = strchr(want, '\n');
		int gl = ge ? (int)(ge - got) : (int)strlen(got);
		int wl = we ? (int)(we - want) : (int)strlen(want);

		CHECK(0, "line %d: got \"%.*s\", want \"%.*s\"", line, gl, got,
		    wl, want);
	}
}

static void
t_fixtures(void)
{
	DIR *d = opendir(FIXDIR);
	struct dirent *de;
	char **names = NULL;
	size_t n = 0, i, checked = 0;
	int write = getenv("DSN_FIXTURE_WRITE") != NULL;

	test_begin("dsn_fixture_dir");
	CHECK(d != NULL, "cannot open %s", FIXDIR);
	test_end();
	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		size_t l = strlen(de->d_name);

		if (l > 4 && strcmp(de->d_name + l - 4, ".eml") == 0) {
			names = xrealloc(names, (n + 1) * sizeof(*names));
			names[n++] = xstrndup(de->d_name, l - 4);
		}
	}
	closedir(d);
	qsort(names, n, sizeof(*names), cmp_names);
	for (i = 0; i < n; i++) {
		char *eml = xasprintf("%s/%s.eml", FIXDIR, names[i]);
		char *exp = xasprintf("%s/%s.expect", FIXDIR, names[i]);
		char *msg = NULL, *want = NULL;
		size_t mlen = 0, wlen = 0;
		struct err err = {{0}};
		struct dsn_report *r = NULL;
		struct opts op;
		struct buf got;
		const char *body = "";

		test_begin("dsn_fixture_%s", names[i]);
		buf_init(&got, 1 << 20);
		buf_init(&op.opt_lines, 4096);
		memset(&op.o, 0, sizeof(op.o));
		op.truncated = 0;
		if (read_file(exp, 1 << 20, &want, &wlen, &err) == 0)
			body = read_opts(want, &op);
		else if (!write)
			CHECK(0, "missing %s", exp);
		CHECK(read_file(eml, 64 << 20, &msg, &mlen, &err) == 0, "%s",
		    err.msg);
		if (msg != NULL) {
			CHECK(dsn_parse(msg, mlen, op.truncated, &op.o, &r,
			          &err) == 0,
			    "%s", err.msg);
		}
		if (r != NULL) {
			dump(r, &got);
			if (write) {
				FILE *f = fopen(exp, "w");

				if (f != NULL) {
					fwrite(op.opt_lines.data
					        ? op.opt_lines.data
					        : "",
					    1, op.opt_lines.len, f);
					fwrite(got.data ? got.data : "", 1,
					    got.len, f);
					fclose(f);
				}
			} else if (strcmp(got.data ? got.data : "", body) != 0)
				report_diff(got.data ? got.data : "", body);
			checked++;
		}
		dsn_free(&r);
		buf_free(&got);
		buf_free(&op.opt_lines);
		free(msg);
		free(want);
		free(eml);
		free(exp);
		free(names[i]);
		test_end();
	}
	free(names);
	test_begin("dsn_fixture_count");
	CHECK(checked >= 60, "only %zu fixtures", checked);
	test_end();
}

/* ---- hostile and edge input ---- */

static struct dsn_report *
parse_str(const char *s, size_t n, const struct dsn_options *o)
{
	struct dsn_report *r = NULL;
	struct err err = {{0}};

	if (dsn_parse(s, n, 0, o, &r, &err) != 0)
		return NULL;
	return r;
}

static void
t_null_and_free(void)
{
	struct dsn_report *r = NULL;
	struct err err = {{0}};

	dsn_free(&r);
	dsn_free(NULL);
	CHECK(dsn_parse(NULL, 5, 0, NULL, &r, &err) == -1, "NULL message");
	CHECK(err.msg[0] != '\0', "error text");
	CHECK(dsn_parse("x", 1, 0, NULL, NULL, &err) == -1, "NULL out");
	CHECK(dsn_parse(NULL, 0, 1, NULL, &r, &err) == 0, "empty ok");
	CHECK_INT(dsn_kind(r), RECORD_KIND_UNKNOWN);
	CHECK_INT(dsn_rcpt_count(r), 0);
	CHECK_INT(dsn_truncated(r), 1);
	CHECK(dsn_rcpt_at(r, 0) == NULL, "out of range");
	CHECK(dsn_orig_header(r, "Message-ID") == NULL, "no headers");
	dsn_free(&r);
	CHECK(r == NULL, "free sets NULL");
	CHECK_STR(record_kind_name(RECORD_KIND_COMPLAINT), "complaint");
	CHECK_STR(record_kind_name((enum record_kind)99), "unknown");
}

/* More recipients than the cap: the report keeps the first 1000. */
static void
t_recipient_cap(void)
{
	struct buf b;
	struct dsn_report *r;
	int i;

	buf_init(&b, 1 << 22);
	buf_append_str(&b,
	    "From: MAILER-DAEMON@mx.example\nSubject: Undelivered Mail\n"
	    "MIME-Version: 1.0\nContent-Type: multipart/report; "
	    "report-type=delivery-status; boundary=\"X\"\n\n--X\n"
	    "Content-Type: message/delivery-status\n\nReporting-MTA: dns; "
	    "mx.example\n\n");
	for (i = 0; i < 1500; i++) {
		char g[160];

		snprintf(g, sizeof(g),
		    "Final-Recipient: rfc822; u%d@example.org\nAction: "
		    "failed\nStatus: 5.1.1\n\n",
		    i);
		buf_append_str(&b, g);
	}
	buf_append_str(&b, "--X--\n");
	r = parse_str(b.data, b.len, NULL);
	CHECK(r != NULL, "parse");
	/* the delivery-status part is read up to its own cap (64 KiB) */
	CHECK(dsn_rcpt_count(r) > 500 && dsn_rcpt_count(r) <= 1000, "count %zu",
	    dsn_rcpt_count(r));
	CHECK_STR(dsn_rcpt_at(r, 0)->final_recipient, "u0@example.org");
	dsn_free(&r);
	buf_free(&b);
}

/* Pathological bodies: every scan is linear, nothing crashes. */
static void
t_hostile(void)
{
	static const char *const fills[] = {"@", "a@", "@a.", "a@b.", "<",
	    "5.5.5.", "550 ", ":\n ", "\n\n", "Final-Recipient: ;\n",
	    "=?utf-8?q?", "--X\n"};
	size_t k;

	for (k = 0; k < sizeof(fills) / sizeof(fills[0]); k++) {
		struct buf b;
		struct dsn_report *r;
		int64_t t0;
		size_t fl = strlen(fills[k]);

		buf_init(&b, 1 << 22);
		buf_append_str(&b,
		    "From: MAILER-DAEMON@mx.example\nX-Failed-Recipients: "
		    "a@b.example\nSubject: failure notice\n"
		    "Content-Type: multipart/report; boundary=\"X\"\n\n--X\n"
		    "Content-Type: text/plain\n\n");
		while (b.len + fl < (size_t)(2 << 20))
			buf_append(&b, fills[k], fl);
		t0 = now_ms();
		r = parse_str(b.data, b.len, NULL);
		CHECK(r != NULL, "fill %zu", k);
		CHECK(now_ms() - t0 < 5000, "fill %zu took %lld ms", k,
		    (long long)(now_ms() - t0));
		dsn_free(&r);
		buf_free(&b);
	}
}

/* The scanners' building blocks through the public result. */
static void
t_status_forms(void)
{
	static const struct {
		const char *diag, *status;
		int reply;
	} rows[] = {
	    {"550 5.1.10 RESOLVER.ADR.RecipientNotFound", "5.1.10", 550},
	    {"451 4.7.650 rate limited", "4.7.650", 451},
	    {"550-5.7.26 DMARC", "5.7.26", 550},
	    {"Out: 250 2.1.5 Ok Out: 451 4.3.0 Error", "4.3.0", 451},
	    {"at 12:34:56 552: 5.2.2 full", "5.2.2", 552},
	    {"version 1.5.10.2 failed", NULL, 0},
	    {"error code 5550 25.1.1", NULL, 0},
	};
	size_t i;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char *m = xasprintf(
		    "From: MAILER-DAEMON@mx.example\nSubject: Undelivered\n"
		    "MIME-Version: 1.0\nContent-Type: multipart/report; "
		    "report-type=delivery-status; boundary=\"X\"\n\n--X\n"
		    "Content-Type: message/delivery-status\n\n"
		    "Final-Recipient: rfc822; a@example.org\nAction: failed\n"
		    "Diagnostic-Code: smtp; %s\n\n--X--\n",
		    rows[i].diag);
		struct dsn_report *r = parse_str(m, strlen(m), NULL);

		test_begin("dsn_status_%zu", i);
		CHECK(r != NULL && dsn_rcpt_count(r) == 1, "parse");
		if (r != NULL && dsn_rcpt_count(r) == 1) {
			CHECK_STR(dsn_rcpt_at(r, 0)->status, rows[i].status);
			CHECK_INT(dsn_rcpt_at(r, 0)->reply_code, rows[i].reply);
		}
		test_end();
		dsn_free(&r);
		free(m);
	}
}

/* The recipient attribution order: VERP, configured header, original
 * recipient, final recipient. */
static void
t_attribution(void)
{
	static const char msg[] =
	    "From: MAILER-DAEMON@mx.example\nTo: b+al=ex.org@s.example\n"
	    "Subject: Undelivered\nMIME-Version: 1.0\nContent-Type: "
	    "multipart/report; report-type=delivery-status; boundary=\"X\"\n\n"
	    "--X\nContent-Type: message/delivery-status\n\n"
	    "Final-Recipient: rfc822; f@example.org\nOriginal-Recipient: "
	    "rfc822; o@example.org\nAction: failed\nStatus: 5.1.1\n\n--X\n"
	    "Content-Type: text/rfc822-headers\n\nX-Sub: Hdr <h@example.org>\n"
	    "X-Id: 42\n\n--X--\n";
	const char *hdrs[] = {"X-Id", "X-Sub"};
	struct dsn_options o;
	struct dsn_report *r;

	memset(&o, 0, sizeof(o));
	o.verp_pattern = "b+{local}={domain}@s.example";
	o.headers = hdrs;
	o.nheaders = 2;
	r = parse_str(msg, sizeof(msg) - 1, &o);
	CHECK(r != NULL && dsn_rcpt_count(r) == 1, "parse");
	if (r == NULL || dsn_rcpt_count(r) != 1)
		goto out;
	CHECK_STR(dsn_verp_recipient(r), "al@ex.org");
	CHECK_STR(dsn_rcpt_at(r, 0)->recipient, "al@ex.org");
	CHECK_STR(dsn_rcpt_at(r, 0)->recipient_source, "verp");
	CHECK_STR(dsn_rcpt_address(dsn_rcpt_at(r, 0)), "f@example.org");
	CHECK_STR(dsn_orig_header(r, "x-id"), "42");
	dsn_free(&r);

	o.verp_pattern = "{domain}-{local}@other.example";
	r = parse_str(msg, sizeof(msg) - 1, &o);
	CHECK(dsn_verp_recipient(r) == NULL, "pattern does not match");
	/* X-Id is not an address: the next configured header is used */
	CHECK_STR(dsn_rcpt_at(r, 0)->recipient, "h@example.org");
	CHECK_STR(dsn_rcpt_at(r, 0)->recipient_source, "header:X-Sub");
	dsn_free(&r);

	o.nheaders = 0;
	r = parse_str(msg, sizeof(msg) - 1, &o);
	CHECK_STR(dsn_rcpt_at(r, 0)->recipient, "o@example.org");
	CHECK_STR(dsn_rcpt_at(r, 0)->recipient_source, "original_recipient");
	dsn_free(&r);

	/* two recipients: the VERP address names the one it matches */
	{
		static const char m3[] =
		    "From: MAILER-DAEMON@mx.example\nTo: "
		    "b+al=ex.org@s.example\n"
		    "Subject: Undelivered\nMIME-Version: 1.0\nContent-Type: "
		    "multipart/report; report-type=delivery-status; "
		    "boundary=\"X\"\n\n--X\nContent-Type: "
		    "message/delivery-status\n\nFinal-Recipient: rfc822; "
		    "other@ex.org\nAction: failed\n\nFinal-Recipient: rfc822; "
		    "al@ex.org\nAction: failed\n\n--X--\n";

		o.verp_pattern = "b+{local}={domain}@s.example";
		r = parse_str(m3, sizeof(m3) - 1, &o);
		CHECK_INT(dsn_rcpt_count(r), 2);
		if (dsn_rcpt_count(r) == 2) {
			CHECK_STR(dsn_rcpt_at(r, 0)->recipient, "other@ex.org");
			CHECK_STR(dsn_rcpt_at(r, 0)->recipient_source,
			    "final_recipient");
			CHECK_STR(dsn_rcpt_at(r, 1)->recipient, "al@ex.org");
			CHECK_STR(dsn_rcpt_at(r, 1)->recipient_source, "verp");
		}
		dsn_free(&r);
	}

	o.verp_pattern = "bounces-{domain}={local}@s.example";
	{
		static const char m2[] =
		    "From: MAILER-DAEMON@mx.example\nTo: "
		    "bounces-ex.org=al.x@s.example\nSubject: failure notice\n\n"
		    "<f@example.org>:\nSorry, no mailbox here by that name.\n";

		r = parse_str(m2, sizeof(m2) - 1, &o);
		CHECK_STR(dsn_verp_recipient(r), "al.x@ex.org");
		CHECK_INT(dsn_rcpt_count(r), 1);
		if (dsn_rcpt_count(r) == 1)
			CHECK_STR(dsn_rcpt_at(r, 0)->recipient_source, "verp");
	}
out:
	dsn_free(&r);
}

int
main(void)
{
	t_fixtures();
	RUN(t_null_and_free);
	RUN(t_recipient_cap);
	RUN(t_hostile);
	t_status_forms();
	RUN(t_attribution);
	return test_done();
}
