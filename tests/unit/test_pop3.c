/*
 * test_pop3.c - the pure parts of the POP3 client: the strict UIDL/LIST
 * listing parser (RFC 1939 sections 5 and 7) and the header-digest key for
 * servers without UIDL.  Network behaviour is covered by
 * tests/integration/test_pop3_fake.c and test_pop3_dovecot.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pop3/pop3.h"
#include "test.h"

static const struct row {
	const char *name;
	const char *in;
	int uidl;
	int ok; /* 1: parses; 0: rejected */
	size_t n; /* entries when ok */
	const char *why; /* substring of the error when rejected */
} rows[] = {
    {"uidl basic", "1 abc\r\n2 def\r\n", 1, 1, 2, NULL},
    {"uidl empty", "", 1, 1, 0, NULL},
    {"uidl empty as curl hands it over", "\r\n", 1, 1, 0, NULL},
    {"uidl 70 chars",
        "1 "
        "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghi"
        "j\r\n",
        1, 1, 1, NULL},
    {"uidl 71 chars",
        "1 "
        "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghi"
        "jk\r\n",
        1, 0, 0, "71 characters"},
    {"uidl all printable", "7 !~\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}\r\n", 1, 1, 1,
        NULL},
    {"uidl empty uid", "1 \r\n", 1, 0, 0, "0 characters"},
    {"uidl space inside", "1 ab cd\r\n", 1, 0, 0, "0x20"},
    {"uidl control byte",
        "1 ab\x01"
        "cd\r\n",
        1, 0, 0, "0x01"},
    {"uidl 8-bit byte", "1 ab\xc3\xa9\r\n", 1, 0, 0, "0xc3"},
    {"uidl NUL byte", "1 ab\0cd\r\n", 1, 0, 0, "0x00"},
    {"uidl trailing tab", "1 abc\t\r\n", 1, 0, 0, "0x09"},
    {"uidl duplicate uid passed on", "1 abc\r\n2 abc\r\n", 1, 1, 2, NULL},
    {"uidl duplicate msgno", "1 abc\r\n1 def\r\n", 1, 0, 0,
        "duplicate message number 1"},
    {"uidl bare LF", "1 abc\n2 def\r\n", 1, 0, 0, "bare LF"},
    {"uidl no line end", "1 abc\r\n2 def", 1, 0, 0, "no CRLF"},
    {"uidl CR only", "1 abc\r", 1, 0, 0, "no CRLF"},
    {"uidl msgno zero", "0 abc\r\n", 1, 0, 0, "bad message number"},
    {"uidl msgno negative", "-1 abc\r\n", 1, 0, 0, "bad message number"},
    {"uidl msgno plus", "+1 abc\r\n", 1, 0, 0, "bad message number"},
    {"uidl msgno too big", "4294967296 abc\r\n", 1, 0, 0, "bad message number"},
    {"uidl msgno max", "4294967295 abc\r\n", 1, 1, 1, NULL},
    {"uidl msgno 11 digits", "00000000001 abc\r\n", 1, 0, 0,
        "bad message number"},
    {"uidl no space", "1abc\r\n", 1, 0, 0, "bad message number"},
    {"uidl two spaces", "1  abc\r\n", 1, 0, 0, "0x20"},
    {"uidl leading space", " 1 abc\r\n", 1, 0, 0, "bad message number"},
    {"uidl lone dot line", ".\r\n", 1, 0, 0, "bad message number"},
    {"list basic", "1 120\r\n2 5000\r\n", 0, 1, 2, NULL},
    {"list extra info", "1 120 extra words\r\n", 0, 1, 1, NULL},
    {"list size missing", "1 \r\n", 0, 0, 0, "bad size"},
    {"list size not digits", "1 12a\r\n", 0, 0, 0, "bad size"},
    {"list size negative", "1 -5\r\n", 0, 0, 0, "bad size"},
    {"list size 19 digits", "1 1234567890123456789\r\n", 0, 0, 0, "bad size"},
    {"list control after size", "1 120 x\x02y\r\n", 0, 0, 0, "control"},
    {"list duplicate msgno", "3 1\r\n3 2\r\n", 0, 0, 0, "duplicate"},
};

static void
t_listing_table(void)
{
	size_t i;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const struct row *r = &rows[i];
		struct pop3_entry *list = NULL;
		size_t n = 99, len = strlen(r->in);
		struct err err = {{0}};
		int rc;

		/* the NUL row needs its real length */
		if (strcmp(r->name, "uidl NUL byte") == 0)
			len = 9;
		test_begin("listing: %s", r->name);
		rc =
		    pop3_parse_listing(r->in, len, r->uidl, 0, &list, &n, &err);
		if (r->ok) {
			CHECK(rc == 0, "%s", err.msg);
			if (rc == 0)
				CHECK_INT(n, r->n);
		} else {
			CHECK(rc == -1, "accepted");
			CHECK(strstr(err.msg, r->why) != NULL,
			    "error \"%s\" lacks \"%s\"", err.msg, r->why);
		}
		free(list);
		test_end();
	}
}

static void
t_listing_values(void)
{
	struct pop3_entry *l = NULL;
	size_t n = 0;
	struct err err = {{0}};
	const char *in = "3 zz\r\n1 aa\r\n2 yy\r\n";

	CHECK(pop3_parse_listing(in, strlen(in), 1, 0, &l, &n, &err) == 0, "%s",
	    err.msg);
	CHECK_INT(n, 3);
	if (n == 3) {
		/* server order is kept */
		CHECK_INT(l[0].msgno, 3);
		CHECK_STR(l[0].uidl, "zz");
		CHECK_INT(l[0].size, -1);
		CHECK_INT(l[1].msgno, 1);
		CHECK_STR(l[2].uidl, "yy");
	}
	free(l);
	l = NULL;
	in = "1 120\r\n2 4294967296000\r\n";
	CHECK(pop3_parse_listing(in, strlen(in), 0, 0, &l, &n, &err) == 0, "%s",
	    err.msg);
	CHECK_INT(n, 2);
	if (n == 2) {
		CHECK_INT(l[0].size, 120);
		CHECK_INT(l[1].size, 4294967296000LL);
		CHECK_STR(l[1].uidl, "");
	}
	free(l);
}

static void
t_listing_limit(void)
{
	struct pop3_entry *l = NULL;
	size_t n = 0;
	struct err err = {{0}};
	const char *in = "1 a\r\n2 b\r\n3 c\r\n";

	CHECK(pop3_parse_listing(in, strlen(in), 1, 2, &l, &n, &err) == -1,
	    "3 entries accepted with a limit of 2");
	CHECK(strstr(err.msg, "more than 2") != NULL, "%s", err.msg);
	CHECK(pop3_parse_listing(in, strlen(in), 1, 3, &l, &n, &err) == 0, "%s",
	    err.msg);
	free(l);
}

/* A 10,000-character UIDL line (fetchmail SA-2005-01) and a long run of
 * lines: rejected or parsed, never overrun. */
static void
t_listing_hostile(void)
{
	size_t big = 10000, i, n = 0;
	char *in = xmalloc(big + 8);
	struct pop3_entry *l = NULL;
	struct err err = {{0}};

	memcpy(in, "1 ", 2);
	memset(in + 2, 'A', big);
	memcpy(in + 2 + big, "\r\n", 2);
	CHECK(pop3_parse_listing(in, big + 4, 1, 0, &l, &n, &err) == -1,
	    "10,000-char UIDL accepted");
	CHECK(strstr(err.msg, "10002 bytes") != NULL, "%s", err.msg);
	free(in);

	/* 100,000 valid lines */
	{
		struct buf b;
		char line[64];

		buf_init(&b, 8 << 20);
		for (i = 1; i <= 100000; i++) {
			int k = snprintf(line, sizeof(line), "%zu uid-%zu\r\n",
			    i, i * 7919);
			buf_append(&b, line, (size_t)k);
		}
		CHECK(pop3_parse_listing(b.data, b.len, 1, 0, &l, &n, &err) ==
		        0,
		    "%s", err.msg);
		CHECK_INT(n, 100000);
		free(l);
		buf_free(&b);
	}
}

static void
t_header_key(void)
{
	char a[POP3_UIDL_MAX + 1], b[POP3_UIDL_MAX + 1];
	const char *crlf = "From: a\r\nTo: b\r\n\r\nbody one\r\n";
	const char *lf = "From: a\nTo: b\n\nbody two\n";
	const char *other = "From: a\r\nTo: c\r\n\r\nbody one\r\n";
	size_t i;

	/* SHA-256("abc\n"), the header "abc" with no body */
	pop3_header_key("abc", 3, a);
	CHECK_STR(a,
	    "hdr:edeaaff3f1774ad2888673770c6d64097e391bc362d7d6fb34982ddf0efd"
	    "18cb");
	pop3_header_key(crlf, strlen(crlf), a);
	CHECK_STR(a,
	    "hdr:b643d98598a0415f5652bfb9a35f9bf512b3b830f3dc807ea24a8efe3610"
	    "4086");
	pop3_header_key(lf, strlen(lf), b);
	CHECK_STR(a, b); /* line ends and body do not matter */
	pop3_header_key(other, strlen(other), b);
	CHECK(strcmp(a, b) != 0, "different headers, same key");
	CHECK_INT(strlen(a), 68);
	for (i = 0; a[i]; i++)
		CHECK(a[i] >= 0x21 && a[i] <= 0x7e, "byte %zu", i);
	/* a 200 KB header block goes through the multi-block path */
	{
		size_t n = 200000;
		char *m = xmalloc(n);
		memset(m, 'x', n);
		pop3_header_key(m, n, a);
		CHECK_INT(strlen(a), 68);
		free(m);
	}
}

static void
t_options(void)
{
	struct pop3_options o;
	struct err err = {{0}};
	struct pop3 *p;

	memset(&o, 0, sizeof(o));
	o.mailbox_name = "mb";
	o.host = "pop.example.org";
	o.username = "u";
	o.password = "pw";
	p = pop3_new(&o, &err);
	CHECK(p != NULL, "%s", err.msg);
	pop3_free(&p);
	CHECK(p == NULL, "not reset");
	pop3_free(&p); /* NULL-safe */

	o.host = "pop.example.org/x?y";
	CHECK(pop3_new(&o, &err) == NULL, "URL characters in host accepted");
	o.host = "pop.example.org";
	o.username = "u\r\nDELE 1";
	CHECK(pop3_new(&o, &err) == NULL, "CRLF in username accepted");
	o.username = "u";
	o.password = "pw\r\nDELE 1";
	CHECK(pop3_new(&o, &err) == NULL, "CRLF in password accepted");
	CHECK(strstr(err.msg, "pw") == NULL || strstr(err.msg, "password"),
	    "%s", err.msg);
	o.password = "pw";
	o.port = 70000;
	CHECK(pop3_new(&o, &err) == NULL, "port 70000 accepted");
	o.port = 0;
	o.auth = POP3_AUTH_XOAUTH2;
	CHECK(pop3_new(&o, &err) == NULL, "XOAUTH2 without token accepted");
	o.auth = POP3_AUTH_DEFAULT;
	o.mailbox_name = NULL;
	CHECK(pop3_new(&o, &err) == NULL, "no mailbox name accepted");

	/* commands before connect are refused without network I/O */
	o.mailbox_name = "mb";
	p = pop3_new(&o, &err);
	CHECK(p != NULL, "%s", err.msg);
	if (p != NULL) {
		CHECK(pop3_noop(p, &err) == -1, "NOOP before connect");
		CHECK_INT(pop3_error_kind(p), POP3_ERR_STATE);
		CHECK(strstr(err.msg, "mailbox mb: NOOP") != NULL, "%s",
		    err.msg);
		pop3_free(&p);
	}
	CHECK_STR(pop3_error_name(POP3_ERR_IN_USE), "in_use");
	CHECK_STR(pop3_error_name(POP3_ERR_NO_UIDL), "no_uidl");
}

int
main(void)
{
	t_listing_table();
	RUN(t_listing_values);
	RUN(t_listing_limit);
	RUN(t_listing_hostile);
	RUN(t_header_key);
	RUN(t_options);
	return test_done();
}
