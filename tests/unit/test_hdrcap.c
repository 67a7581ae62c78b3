/*
 * test_hdrcap.c - the header bounds applied before GMime: messages within
 * them are not copied; a folded header, a flood of fields, an oversized
 * header block and a flood of MIME parts are cut, in the top header and in
 * part headers, with CRLF and LF line ends; bodies are left alone.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "decode/hdrcap.h"
#include "test.h"

static size_t
count(const char *s, size_t n, const char *needle)
{
	size_t c = 0, k = strlen(needle);

	for (size_t i = 0; i + k <= n; i++)
		if (memcmp(s + i, needle, k) == 0)
			c++;
	return c;
}

static void
t_untouched(void)
{
	static const char msg[] = "From: a@example.org\r\nSubject: hi\r\n"
	                          "\t folded once\r\n\r\n"
	                          "--not a part, but fine\r\n body\r\n";
	char *out = (char *)"x";
	size_t n = 0;

	test_begin("a message within the bounds is not copied");
	CHECK_INT(hdrcap(msg, sizeof(msg) - 1, &out, &n), 0);
	CHECK(out == NULL, "copied");
	test_end();
}

/* A Subject folded into many lines, then a body with indented lines. */
static void
t_folds(const char *eol)
{
	struct buf b;
	char *out = NULL;
	size_t n = 0, i;

	test_begin("folded Subject cut (%s)", eol[0] == '\r' ? "CRLF" : "LF");
	buf_init(&b, 64u << 20);
	buf_append_str(&b, "From: a@example.org");
	buf_append_str(&b, eol);
	buf_append_str(&b, "Subject: x");
	buf_append_str(&b, eol);
	for (i = 0; i < 100000; i++) {
		buf_append_str(&b, " y");
		buf_append_str(&b, eol);
	}
	buf_append_str(&b, "To: b@example.org");
	buf_append_str(&b, eol);
	buf_append_str(&b, eol);
	for (i = 0; i < 1000; i++) {
		buf_append_str(&b, "    indented body line");
		buf_append_str(&b, eol);
	}
	CHECK_INT(hdrcap(b.data, b.len, &out, &n), 1);
	if (out != NULL) {
		CHECK_INT(count(out, n, " y"), HDRCAP_FOLDS);
		CHECK_INT(count(out, n, "To: b@example.org"), 1);
		CHECK_INT(count(out, n, "indented body line"), 1000);
		CHECK(strlen(out) == n, "NUL-terminated at n");
	}
	free(out);
	buf_free(&b);
	test_end();
}

static void
t_fields_and_bytes(void)
{
	struct buf b;
	char *out = NULL;
	size_t n = 0, i;

	test_begin("a flood of fields in a part header is cut");
	buf_init(&b, 64u << 20);
	buf_append_str(&b,
	    "From: a@example.org\r\nContent-Type: multipart/"
	    "mixed; boundary=b\r\n\r\n--b\r\n");
	for (i = 0; i < 5000; i++)
		buf_append_str(&b, "X-F: 1\r\n");
	buf_append_str(&b, "\r\nbody\r\n--b--\r\n");
	CHECK_INT(hdrcap(b.data, b.len, &out, &n), 1);
	if (out != NULL) {
		CHECK_INT(count(out, n, "X-F: 1"), HDRCAP_FIELDS);
		CHECK_INT(count(out, n, "body"), 1);
	}
	free(out);
	buf_free(&b);
	test_end();

	test_begin("an oversized header block is cut to its byte bound");
	buf_init(&b, 64u << 20);
	buf_append_str(&b, "From: a@example.org\r\nX-Long: ");
	for (i = 0; i < HDRCAP_BLOCK_BYTES; i++)
		buf_append(&b, "z", 1);
	buf_append_str(&b, "\r\nTo: b@example.org\r\n\r\nbody\r\n");
	out = NULL;
	CHECK_INT(hdrcap(b.data, b.len, &out, &n), 1);
	if (out != NULL) {
		CHECK(count(out, n, "zzzz") == 0, "long field kept");
		CHECK_INT(count(out, n, "To: b@example.org"), 1);
		CHECK_INT(count(out, n, "body"), 1);
	}
	free(out);
	buf_free(&b);
	test_end();
}

static void
t_parts(void)
{
	struct buf b;
	char *out = NULL;
	size_t n = 0, i;

	test_begin("a flood of MIME parts ends the message");
	buf_init(&b, 64u << 20);
	buf_append_str(&b, "Content-Type: multipart/mixed; boundary=b\n\n");
	for (i = 0; i < 3000; i++)
		buf_append_str(&b, "--b\nContent-Type: text/plain\n\nx\n");
	CHECK_INT(hdrcap(b.data, b.len, &out, &n), 1);
	if (out != NULL)
		CHECK_INT(count(out, n, "--b\n"), HDRCAP_PARTS);
	free(out);
	buf_free(&b);
	test_end();
}

int
main(void)
{
	t_untouched();
	t_folds("\r\n");
	t_folds("\n");
	t_fields_and_bytes();
	t_parts();
	return test_done();
}
