/*
 * test_eol.c - line-end normalisation (internal/eol): a table of inputs
 * and the CRLF text the decoder gets, and a CR CR LF bounce that decodes
 * to the same records as its CRLF form.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decode/dsn.h"
#include "decode/eol.h"
#include "pop3/pop3.h"
#include "test.h"

static const struct row {
	const char *name;
	const char *in;
	const char *want; /* NULL: already CRLF, left alone */
} rows[] = {
    {"empty", "", NULL},
    {"no line end", "abc", NULL},
    {"CRLF only", "a\r\nb\r\n\r\nc", NULL},
    {"CR CR LF", "a\r\r\nb\r\r\n\r\r\nc", "a\r\nb\r\n\r\nc"},
    {"CR CR CR LF", "a\r\r\r\nb", "a\r\nb"},
    {"bare LF", "a\nb\n\nc\n", "a\r\nb\r\n\r\nc\r\n"},
    {"bare CR", "a\rb\r\rc\r", "a\r\nb\r\n\r\nc\r\n"},
    {"mixed", "a\r\nb\nc\r\r\nd\re", "a\r\nb\r\nc\r\nd\r\ne"},
    {"leading LF", "\nx", "\r\nx"},
    {"trailing CR CR", "x\r\r", "x\r\n\r\n"},
};

static void
t_table(void)
{
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const struct row *r = &rows[i];
		char *out = NULL;
		size_t n = 12345;
		int rc = eol_normalize(r->in, strlen(r->in), &out, &n);

		if (r->want == NULL) {
			CHECK(rc == 0 && out == NULL, "%s: rewritten", r->name);
			CHECK(n == strlen(r->in), "%s: length %zu", r->name, n);
		} else {
			CHECK(rc == 1 && out != NULL, "%s: not rewritten",
			    r->name);
			if (out != NULL) {
				CHECK(n == strlen(r->want) &&
				        memcmp(out, r->want, n) == 0,
				    "%s: got %zu bytes", r->name, n);
				CHECK(out[n] == '\0', "%s: not terminated",
				    r->name);
			}
		}
		free(out);
	}
}

/* Many lone CRs: linear, one line end each. */
static void
t_many_cr(void)
{
	size_t n = 1 << 20, on = 0;
	char *in = malloc(n), *out = NULL;

	memset(in, '\r', n);
	CHECK(eol_normalize(in, n, &out, &on) == 1, "not rewritten");
	CHECK(on == 2 * n, "length %zu", on);
	free(out);
	free(in);
}

static char *
slurp(const char *path, size_t *len)
{
	struct err err;
	char *d = NULL;

	if (read_file(path, 1 << 22, &d, len, &err) != 0)
		return NULL;
	return d;
}

/* The records of a decoded message as one string (caller frees). */
static char *
records(const char *msg, size_t len)
{
	struct dsn_report *r = NULL;
	const struct record *rec;
	struct err err = {{0}};
	char *s;
	size_t i;

	if (dsn_parse(msg, len, 0, NULL, &r, &err) != 0)
		return xasprintf("error: %s", err.msg);
	rec = dsn_record(r);
	s = xasprintf("kind=%d n=%zu", (int)rec->kind, rec->nrcpts);
	for (i = 0; i < rec->nrcpts; i++) {
		const struct record_rcpt *rc = &rec->rcpts[i];
		char *t = xasprintf("%s|%s|%s|%s|%s", s,
		    rc->recipient ? rc->recipient : "",
		    rc->status ? rc->status : "", rc->action ? rc->action : "",
		    rc->reason ? rc->reason : "");
		free(s);
		s = t;
	}
	dsn_free(&r);
	return s;
}

/* Each CRLF fixture, served as CR CR LF (Courier, GNU Mailutils) and as
 * bare LF, decodes to the same records as its CRLF form. */
static void
t_fixtures(void)
{
	static const char *const names[] = {"dsn-hard", "dsn-multi", "arf",
	    "autoreply"};
	const char *src = getenv("BOUNCER_SRC");
	char path[512];

	if (src == NULL) {
		printf("SKIP eol fixtures: BOUNCER_SRC not set\n");
		return;
	}
	for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
		size_t len = 0, i, o = 0, lo = 0;
		char *raw, *crlf, *crcrlf, *lf, *a, *b, *c;

		snprintf(path, sizeof(path), "%s/tests/fixtures/poller/%s.eml",
		    src, names[k]);
		raw = slurp(path, &len);
		CHECK(raw != NULL, "%s unreadable", path);
		if (raw == NULL)
			continue;
		/* @ID@ -> 7, in place (never longer) */
		for (i = 0, o = 0; i < len; i++) {
			if (i + 4 <= len && memcmp(raw + i, "@ID@", 4) == 0) {
				raw[o++] = '7';
				i += 3;
			} else
				raw[o++] = raw[i];
		}
		len = o;
		o = 0;
		/* the fixture in CRLF, CR CR LF and LF forms */
		crlf = malloc(len * 2 + 1);
		crcrlf = malloc(len * 3 + 1);
		lf = malloc(len + 1);
		for (i = 0; i < len; i++) {
			if (raw[i] == '\r')
				continue;
			if (raw[i] == '\n') {
				crlf[o++] = '\r';
				lf[lo++] = '\n';
			} else
				lf[lo++] = raw[i];
			crlf[o++] = raw[i];
		}
		for (i = 0, len = 0; i < o; i++) {
			if (crlf[i] == '\r')
				crcrlf[len++] = '\r';
			crcrlf[len++] = crlf[i];
		}
		a = records(crlf, o);
		b = records(crcrlf, len);
		c = records(lf, lo);
		CHECK(strstr(a, "n=0") == NULL || k == 3, "%s: %s", names[k],
		    a);
		CHECK(strcmp(a, b) == 0, "%s CR CR LF: %s vs %s", names[k], b,
		    a);
		CHECK(strcmp(a, c) == 0, "%s LF: %s vs %s", names[k], c, a);
		free(a);
		free(b);
		free(c);
		free(raw);
		free(crlf);
		free(crcrlf);
		free(lf);
	}
}

/* The duplicate-UIDL key reads CR CR LF, CRLF and LF alike, and tells
 * messages and UIDLs apart. */
static void
t_content_key(void)
{
	char k1[POP3_UIDL_MAX + 1], k2[POP3_UIDL_MAX + 1],
	    k3[POP3_UIDL_MAX + 1], k4[POP3_UIDL_MAX + 1], k5[POP3_UIDL_MAX + 1];
	const char *m1 = "Subject: a\r\n\r\nbody 1\r\n";
	const char *m2 = "Subject: a\r\r\n\r\r\nbody 1\r\r\n";
	const char *m3 = "Subject: a\n\nbody 1\n";
	const char *m4 = "Subject: a\r\n\r\nbody 2\r\n";

	pop3_content_key("u1", m1, strlen(m1), k1);
	pop3_content_key("u1", m2, strlen(m2), k2);
	pop3_content_key("u1", m3, strlen(m3), k3);
	pop3_content_key("u1", m4, strlen(m4), k4);
	pop3_content_key("u2", m1, strlen(m1), k5);
	CHECK(strlen(k1) == 68 && strncmp(k1, "dup:", 4) == 0, "%s", k1);
	CHECK_STR(k1, k2);
	CHECK_STR(k1, k3);
	CHECK(strcmp(k1, k4) != 0, "bodies not told apart");
	CHECK(strcmp(k1, k5) != 0, "UIDLs not told apart");
}

int
main(void)
{
	RUN(t_table);
	RUN(t_many_cr);
	RUN(t_fixtures);
	RUN(t_content_key);
	return test_done();
}
