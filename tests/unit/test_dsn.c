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
	const struct record *rec = dsn_record(r);
	size_t i;

	putf(b, "kind", record_kind_name(rec->kind));
	putf(b, "reporting_mta", rec->reporting_mta);
	putn(b, "date", (long long)rec->date);
	putn(b, "truncated", rec->truncated);
	putf(b, "verp", rec->verp_recipient);
	putf(b, "mta", rec->mta);
	putn(b, "nrcpt", (long long)rec->nrcpts);
	for (i = 0; i < rec->nrcpts; i++) {
		const struct record_rcpt *rc = &rec->rcpts[i];
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
	for (i = 0; i < rec->norig_headers; i++) {
		buf_append_str(b, "header\t");
		put_sep(b, rec->orig_headers[i].name, "\t");
		put_sep(b, rec->orig_headers[i].value, "\n");
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
	CHECK(dsn_record(NULL) == NULL, "no report, no record");
	CHECK_INT(dsn_record(r)->kind, RECORD_KIND_UNKNOWN);
	CHECK_INT(dsn_record(r)->nrcpts, 0);
	CHECK_INT(dsn_record(r)->truncated, 1);
	CHECK(dsn_record(r)->rcpts == NULL, "no recipients");
	CHECK(dsn_record(r)->message_id == NULL, "no Message-ID");
	CHECK(record_orig_header(dsn_record(r), "Message-ID") == NULL,
	    "no headers");
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
	CHECK(dsn_record(r)->nrcpts > 500 && dsn_record(r)->nrcpts <= 1000,
	    "count %zu", dsn_record(r)->nrcpts);
	CHECK_STR(dsn_record(r)->rcpts[0].final_recipient, "u0@example.org");
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
		CHECK(r != NULL && dsn_record(r)->nrcpts == 1, "parse");
		if (r != NULL && dsn_record(r)->nrcpts == 1) {
			CHECK_STR(dsn_record(r)->rcpts[0].status,
			    rows[i].status);
			CHECK_INT(dsn_record(r)->rcpts[0].reply_code,
			    rows[i].reply);
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
	CHECK(r != NULL && dsn_record(r)->nrcpts == 1, "parse");
	if (r == NULL || dsn_record(r)->nrcpts != 1)
		goto out;
	CHECK_STR(dsn_record(r)->verp_recipient, "al@ex.org");
	CHECK_STR(dsn_record(r)->rcpts[0].recipient, "al@ex.org");
	CHECK_STR(dsn_record(r)->rcpts[0].recipient_source, "verp");
	CHECK_STR(dsn_rcpt_address(&dsn_record(r)->rcpts[0]), "f@example.org");
	CHECK_STR(record_orig_header(dsn_record(r), "x-id"), "42");
	dsn_free(&r);

	o.verp_pattern = "{domain}-{local}@other.example";
	r = parse_str(msg, sizeof(msg) - 1, &o);
	CHECK(dsn_record(r)->verp_recipient == NULL, "pattern does not match");
	/* X-Id is not an address: the next configured header is used */
	CHECK_STR(dsn_record(r)->rcpts[0].recipient, "h@example.org");
	CHECK_STR(dsn_record(r)->rcpts[0].recipient_source, "header:X-Sub");
	dsn_free(&r);

	o.nheaders = 0;
	r = parse_str(msg, sizeof(msg) - 1, &o);
	CHECK_STR(dsn_record(r)->rcpts[0].recipient, "o@example.org");
	CHECK_STR(dsn_record(r)->rcpts[0].recipient_source,
	    "original_recipient");
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
		CHECK_INT(dsn_record(r)->nrcpts, 2);
		if (dsn_record(r)->nrcpts == 2) {
			CHECK_STR(dsn_record(r)->rcpts[0].recipient,
			    "other@ex.org");
			CHECK_STR(dsn_record(r)->rcpts[0].recipient_source,
			    "final_recipient");
			CHECK_STR(dsn_record(r)->rcpts[1].recipient,
			    "al@ex.org");
			CHECK_STR(dsn_record(r)->rcpts[1].recipient_source,
			    "verp");
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
		CHECK_STR(dsn_record(r)->verp_recipient, "al.x@ex.org");
		CHECK_INT(dsn_record(r)->nrcpts, 1);
		if (dsn_record(r)->nrcpts == 1)
			CHECK_STR(dsn_record(r)->rcpts[0].recipient_source,
			    "verp");
	}
out:
	dsn_free(&r);
}

/* The record: the report's own Message-ID as written (folded lines joined,
 * angle brackets kept), its Subject decoded, its Date; the policy fields
 * left zero. */
static void
t_record(void)
{
	static const char msg[] =
	    "From: MAILER-DAEMON@mx.example\r\nTo: b@s.example\r\n"
	    "Message-ID:\r\n  <x1.Y2@mx.example>  \r\n"
	    "Message-ID: <second@mx.example>\r\n"
	    "Subject: =?UTF-8?Q?Unzustellbar=3A_caf=C3=A9?=\r\n"
	    "Date: Sat, 12 Sep 2026 15:51:39 +0000\r\nMIME-Version: 1.0\r\n"
	    "Content-Type: multipart/report; report-type=delivery-status; "
	    "boundary=\"X\"\r\n\r\n--X\r\nContent-Type: "
	    "message/delivery-status\r\n\r\nFinal-Recipient: rfc822; "
	    "f@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
	    "--X--\r\n";
	static const char bare[] = "Message-ID: \t \nSubject: hi\n\nhello\n";
	struct dsn_report *r = parse_str(msg, sizeof(msg) - 1, NULL);
	const struct record *rec = dsn_record(r);

	CHECK(rec != NULL && rec->nrcpts == 1, "parse");
	if (rec == NULL || rec->nrcpts != 1)
		goto out;
	CHECK_STR(rec->message_id, "<x1.Y2@mx.example>");
	CHECK_STR(rec->subject, "Unzustellbar: caf\xc3\xa9");
	CHECK(rec->date == 1789228299, "date %lld", (long long)rec->date);
	CHECK_INT(rec->kind, RECORD_KIND_BOUNCE);
	CHECK_INT(rec->rcpts[0].cls, RECORD_CLASS_HARD);
	CHECK(rec->rcpts[0].bounced_at == 0 && !rec->rcpts[0].not_counted &&
	        rec->rcpts[0].not_counted_because == NULL,
	    "policy fields of the recipient left zero");
	CHECK(rec->orig_message_id == NULL && rec->campaign_id == NULL &&
	        rec->list_id == NULL && rec->subscriber_id == NULL &&
	        rec->kept_headers == NULL && rec->nkept_headers == 0,
	    "policy fields left zero");
	dsn_free(&r);
	/* an empty Message-ID is none */
	r = parse_str(bare, sizeof(bare) - 1, NULL);
	CHECK(r != NULL && dsn_record(r)->message_id == NULL, "empty");
	CHECK(r != NULL && dsn_record(r)->nrcpts == 0, "not a bounce");
out:
	dsn_free(&r);
}

/* Amazon SES notifications read with the JSON reader: after a preamble
 * holding a brace, with tabs and \u escapes, and cut short (a cut string
 * is not read as a value). */
static void
t_ses(void)
{
	static const char head[] =
	    "From: AWS <no-reply@sns.amazonaws.example>\nTo: b@s.example\n"
	    "Subject: AWS Notification Message\nContent-Type: text/plain\n\n";
	static const struct {
		const char *body;
		size_t nrcpts;
		const char *addr, *diag;
	} rows[] = {
	    {"note {see below}\n{\"notificationType\":\"Bounce\",\"bounce\":{"
	     "\"bounceType\":\"Permanent\",\"bouncedRecipients\":[{"
	     "\"emailAddress\":\"a@example.org\",\"status\":\"5.1.1\"}]}}\n",
	        1, "a@example.org", "Permanent"},
	    {"{\t\"notificationType\":\t\"Bounce\", \"bounce\": {"
	     "\"bouncedRecipients\": [{\"emailAddress\": \"b@example.org\","
	     "\t\"diagnosticCode\": \"smtp; 550 caf\\u00e9\"}]}}",
	        1, "b@example.org", "smtp; 550 caf\xc3\xa9"},
	    {"{\"notificationType\":\"Bounce\",\"bounce\":{"
	     "\"bouncedRecipients\":"
	     "[{\"emailAddress\":\"c@example.org\",\"diagnosticCode\":\"smtp; "
	     "5",
	        1, "c@example.org", NULL},
	    {"{\"notificationType\":\"Bounce\",\"bounce\":{"
	     "\"bouncedRecipients\":"
	     "[{\"emailAddress\":\"d@example.o",
	        0, NULL, NULL},
	};
	size_t i;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char *m = xasprintf("%s%s", head, rows[i].body);
		struct dsn_report *r = parse_str(m, strlen(m), NULL);
		const struct record *rec = dsn_record(r);

		test_begin("dsn_ses_%zu", i);
		CHECK(rec != NULL && rec->nrcpts == rows[i].nrcpts, "count");
		if (rec != NULL && rec->nrcpts == 1 && rows[i].nrcpts == 1) {
			CHECK_STR(rec->mta, "amazonses");
			CHECK_STR(rec->rcpts[0].final_recipient, rows[i].addr);
			if (rows[i].diag != NULL)
				CHECK_STR(rec->rcpts[0].diagnostic,
				    rows[i].diag);
			else
				CHECK(rec->rcpts[0].diagnostic == NULL,
				    "no diagnostic");
			CHECK_STR(rec->rcpts[0].action, "failed");
		}
		test_end();
		dsn_free(&r);
		free(m);
	}
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
	RUN(t_record);
	t_ses();
	return test_done();
}
