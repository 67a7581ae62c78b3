/*
 * test_json.c - the JSON reader of internal/base/json.h: strict checking
 * (table of accepted and refused texts), string escapes and \u surrogate
 * pairs, nesting and its cap, members and iteration, text that breaks
 * off, integers, and asking a value for the wrong type.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/json.h"
#include "base/util.h"
#include "test.h"

static const struct prow {
	const char *text;
	int ok; /* json_parse with nothing allowed after the value */
	const char *err_has; /* !ok: substring of the reason */
} prows[] = {
    {"{}", 1, NULL},
    {" [ ] ", 1, NULL},
    {"\"\"", 1, NULL},
    {"0", 1, NULL},
    {"-0.5e+10", 1, NULL},
    {"true", 1, NULL},
    {"null", 1, NULL},
    {"{\"a\":[1,{\"b\":null}],\"c\":\"\\u00e9\"}", 1, NULL},
    {"", 0, "truncated"},
    {"   ", 0, "truncated"},
    {"{", 0, "bad member name"},
    {"{\"a\"", 0, "no ':'"},
    {"{\"a\":}", 0, "bad value"},
    {"{\"a\":1", 0, "expected ',' or '}'"},
    {"{\"a\":1,}", 0, "bad member name"},
    {"[1,]", 0, "bad value"},
    {"[1 2]", 0, "expected ',' or ']'"},
    {"01", 0, "data after the value"},
    {"1.", 0, "bad number"},
    {"-", 0, "bad number"},
    {"1e", 0, "bad number"},
    {"tru", 0, "bad value"},
    {"nul", 0, "bad value"},
    {"\"abc", 0, "unterminated string"},
    {"\"a\tb\"", 0, "control byte"},
    {"\"\\x\"", 0, "bad escape"},
    {"\"\\u12\"", 0, "bad escape"},
    {"\"\\udc00\"", 0, "bad escape"},
    {"\"\\ud800\"", 0, "bad escape"},
    {"\"\\ud800\\u0041\"", 0, "bad escape"},
    {"{} x", 0, "data after the value at byte 3"},
    {"'a'", 0, "bad value"},
};

static void
t_parse_table(void)
{
	for (size_t i = 0; i < sizeof(prows) / sizeof(prows[0]); i++) {
		const struct prow *r = &prows[i];
		struct json_val v;
		struct err err = {{0}};
		int rc = json_parse(r->text, strlen(r->text), &v, NULL, &err);

		CHECK(rc == (r->ok ? 0 : -1), "row %zu '%s': rc %d (%s)", i,
		    r->text, rc, err.msg);
		if (!r->ok && r->err_has != NULL)
			CHECK(strstr(err.msg, r->err_has) != NULL,
			    "row %zu '%s': %s", i, r->text, err.msg);
		if (r->ok)
			CHECK(v.complete == 1, "row %zu", i);
	}
}

static void
t_parse_prefix(void)
{
	const char *s = " {\"a\":1} trailing";
	struct json_val v;
	size_t end = 0;

	CHECK(json_parse(s, strlen(s), &v, &end, NULL) == 0, "prefix");
	CHECK_INT(end, 8);
	CHECK_INT(v.type, JSON_OBJECT);
	CHECK(v.p == s + 1 && v.len == 7, "view %zu", v.len);
	/* not NUL-terminated: only n bytes are read */
	CHECK(json_parse("[1]]", 3, &v, NULL, NULL) == 0, "length honoured");
}

static void
t_strings(void)
{
	static const struct {
		const char *json, *want;
		size_t want_len;
	} rows[] = {
	    {"\"plain\"", "plain", 5},
	    {"\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", "\"\\/\b\f\n\r\t", 8},
	    {"\"\\u0041\\u00e9\\u20ac\"", "A\xc3\xa9\xe2\x82\xac", 6},
	    {"\"\\ud83d\\ude00\"", "\xf0\x9f\x98\x80", 4},
	    {"\"\\uD834\\uDD1E\"", "\xf0\x9d\x84\x9e", 4},
	    {"\"a\\u0000b\"", "a\0b", 3},
	    {"\"caf\xc3\xa9\"", "caf\xc3\xa9", 5},
	};

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct json_val v;
		struct buf b;
		char small[4];

		buf_init(&b, 1024);
		CHECK(json_parse(rows[i].json, strlen(rows[i].json), &v, NULL,
		          NULL) == 0,
		    "row %zu", i);
		CHECK(json_string(&v, &b) == 0, "row %zu", i);
		CHECK(b.len == rows[i].want_len &&
		        memcmp(b.data, rows[i].want, b.len) == 0,
		    "row %zu: len %zu", i, b.len);
		CHECK(json_strcpy(&v, small, sizeof(small)) == 0, "row %zu", i);
		CHECK(strlen(small) <= 3, "row %zu", i);
		CHECK(strncmp(small, rows[i].want, strlen(small)) == 0,
		    "row %zu: '%s'", i, small);
		buf_free(&b);
	}
}

static void
t_str_eq(void)
{
	struct json_val v;
	const char *s = "\"a\\u0062c\"";

	CHECK(json_parse(s, strlen(s), &v, NULL, NULL) == 0, "parse");
	CHECK(json_str_eq(&v, "abc"), "equal after unescaping");
	CHECK(!json_str_eq(&v, "ab"), "shorter");
	CHECK(!json_str_eq(&v, "abcd"), "longer");
	CHECK(!json_str_eq(&v, ""), "empty");
	s = "\"a\\u0000\"";
	CHECK(json_parse(s, strlen(s), &v, NULL, NULL) == 0, "parse nul");
	CHECK(!json_str_eq(&v, "a"), "U+0000 is not the end");
}

static void
t_members(void)
{
	const char *s =
	    "{\"notificationType\":\"Bounce\",\"bounce\":{"
	    "\"bounceType\":\"Permanent\",\"bouncedRecipients\":["
	    "{\"emailAddress\":\"a@x.example\",\"status\":\"5.1.1\"},"
	    "{\"emailAddress\":\"b@x.example\",\"diagnosticCode\":"
	    "\"smtp; 550 no\"}]},\"n\":42,\"dup\":1,\"dup\":2}";
	struct json_val top, b, arr, el, v, k;
	size_t pos = 0;
	char out[64];
	int64_t n = 0;
	int count = 0;

	CHECK(json_parse(s, strlen(s), &top, NULL, NULL) == 0, "parse");
	CHECK(json_member(&top, "notificationType", &v) == 0, "type");
	CHECK(json_strcpy(&v, out, sizeof(out)) == 0, "strcpy");
	CHECK_STR(out, "Bounce");
	CHECK(json_member(&top, "bounce", &b) == 0 && b.type == JSON_OBJECT,
	    "bounce");
	CHECK_INT(b.depth, 1);
	CHECK(json_member(&b, "bouncedRecipients", &arr) == 0 &&
	        arr.type == JSON_ARRAY,
	    "array");
	while (json_next(&arr, &pos, &k, &el) == 1) {
		CHECK_INT(k.type, JSON_NONE);
		CHECK_INT(el.type, JSON_OBJECT);
		CHECK_INT(el.depth, 3);
		CHECK(json_member(&el, "emailAddress", &v) == 0, "addr");
		CHECK(json_strcpy(&v, out, sizeof(out)) == 0, "addr");
		CHECK_STR(out, count == 0 ? "a@x.example" : "b@x.example");
		count++;
	}
	CHECK_INT(count, 2);
	CHECK(json_next(&arr, &pos, NULL, &el) == 0, "0 again after the end");
	CHECK(json_member(&top, "absent", &v) == -1, "absent");
	CHECK(json_member(&top, "n", &v) == 0 && json_int(&v, &n) == 0, "int");
	CHECK_INT(n, 42);
	CHECK(json_member(&top, "dup", &v) == 0 && json_int(&v, &n) == 0 &&
	        n == 1,
	    "first of duplicates");
	/* object keys */
	pos = 0;
	CHECK(json_next(&top, &pos, &k, &v) == 1, "first member");
	CHECK(json_str_eq(&k, "notificationType"), "key");
}

static void
t_wrong_types(void)
{
	struct json_val v;
	struct buf b;
	char out[8] = "x";
	size_t pos = 0;
	int64_t n = 7;

	buf_init(&b, 64);
	CHECK(json_parse("12", 2, &v, NULL, NULL) == 0, "number");
	CHECK(json_string(&v, &b) == -1 && b.len == 0, "not a string");
	CHECK(json_strcpy(&v, out, sizeof(out)) == -1 && out[0] == '\0',
	    "strcpy of a number");
	CHECK(json_member(&v, "a", &v) == -1, "member of a number");
	CHECK(json_parse("[]", 2, &v, NULL, NULL) == 0, "array");
	CHECK(json_member(&v, "a", &v) == -1, "member of an array");
	CHECK(json_parse("\"5\"", 3, &v, NULL, NULL) == 0, "string");
	CHECK(json_int(&v, &n) == -1 && n == 7, "int of a string");
	CHECK(json_next(&v, &pos, NULL, &v) == -1, "next of a string");
	CHECK(!json_str_eq(&(struct json_val){0}, ""), "empty view");
	buf_free(&b);
}

static void
t_ints(void)
{
	static const struct {
		const char *s;
		int rc;
		int64_t want;
	} rows[] = {
	    {"0", 0, 0},
	    {"-0", 0, 0},
	    {"123", 0, 123},
	    {"-45", 0, -45},
	    {"9223372036854775807", 0, INT64_MAX},
	    {"99999999999999999999999", 0, INT64_MAX},
	    {"-9223372036854775808", 0, INT64_MIN},
	    {"-99999999999999999999999", 0, INT64_MIN},
	    {"1.0", -1, 0},
	    {"1e3", -1, 0},
	};

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct json_val v;
		int64_t n = 0;

		CHECK(json_parse(rows[i].s, strlen(rows[i].s), &v, NULL,
		          NULL) == 0,
		    "row %zu", i);
		CHECK_INT(json_int(&v, &n), rows[i].rc);
		if (rows[i].rc == 0)
			CHECK(n == rows[i].want, "row %zu: %lld", i,
			    (long long)n);
	}
}

/* n nested arrays around a 1 */
static char *
nested(int n)
{
	char *s = xmalloc((size_t)n * 2 + 2);
	int i;

	for (i = 0; i < n; i++)
		s[i] = '[';
	s[n] = '1';
	for (i = 0; i < n; i++)
		s[n + 1 + i] = ']';
	s[2 * n + 1] = '\0';
	return s;
}

static void
t_depth(void)
{
	char *ok = nested(JSON_MAX_DEPTH), *deep = nested(JSON_MAX_DEPTH + 1);
	char *huge = nested(100000);
	struct json_val v, el;
	struct err err = {{0}};
	size_t pos = 0;
	int levels = 0;

	CHECK(json_parse(ok, strlen(ok), &v, NULL, &err) == 0, "%s", err.msg);
	CHECK(json_parse(deep, strlen(deep), &v, NULL, &err) == -1, "deep");
	CHECK(strstr(err.msg, "nested too deep") != NULL, "%s", err.msg);
	CHECK(json_parse(huge, strlen(huge), &v, NULL, &err) == -1, "huge");
	/* lazily opened: descending stops at the cap */
	CHECK(json_open(huge, strlen(huge), &v) == 0, "open");
	for (;;) {
		pos = 0;
		if (json_next(&v, &pos, NULL, &el) != 1)
			break;
		CHECK(el.complete == 0, "level %d", levels);
		v = el;
		levels++;
	}
	CHECK_INT(levels, JSON_MAX_DEPTH);
	free(ok);
	free(deep);
	free(huge);
}

static void
t_truncated(void)
{
	/* an SES notification cut off inside its second recipient */
	const char *s = "{\"notificationType\":\"Bounce\",\"bounce\":{"
	                "\"bouncedRecipients\":[{\"emailAddress\":\"a@x\"},"
	                "{\"emailAddress\":\"b@x\",\"status\":\"5.";
	struct json_val top, b, arr, el, v;
	size_t pos = 0;
	char out[32];
	int count = 0, rc;

	CHECK(json_parse(s, strlen(s), &top, NULL, NULL) == -1, "strict");
	CHECK(json_open(s, strlen(s), &top) == 0, "open");
	CHECK(top.complete == 0 && top.type == JSON_OBJECT, "lazy");
	CHECK(json_member(&top, "notificationType", &v) == 0, "type");
	CHECK(json_member(&top, "bounce", &b) == 0 && !b.complete, "bounce");
	CHECK(json_member(&b, "bouncedRecipients", &arr) == 0, "array");
	while ((rc = json_next(&arr, &pos, NULL, &el)) == 1) {
		if (json_member(&el, "emailAddress", &v) == 0 &&
		    json_strcpy(&v, out, sizeof(out)) == 0)
			count++;
		CHECK(json_member(&el, "status", &v) == -1, "cut status");
	}
	CHECK_INT(rc, -1);
	CHECK_INT(count, 2);
	CHECK(json_next(&arr, &pos, NULL, &el) == -1, "stays broken");
	/* every prefix of a valid text: no crash, strict parse refuses */
	for (size_t n = 0; n + 1 < strlen(prows[7].text); n++) {
		struct json_val t;

		CHECK(json_parse(prows[7].text, n, &t, NULL, NULL) == -1,
		    "prefix %zu", n);
		if (json_open(prows[7].text, n, &t) == 0)
			while (json_next(&t, &pos, NULL, &el) == 1)
				;
		pos = 0;
	}
	/* a scalar must be whole even when opened lazily */
	CHECK(json_open("\"abc", 4, &v) == -1, "cut string");
	CHECK(json_open("12", 2, &v) == 0 && v.complete, "number");
	CHECK(json_open("", 0, &v) == -1, "empty");
	CHECK(json_open("x", 1, &v) == -1, "not a value");
}

static void
t_malformed_member(void)
{
	const char *s = "{\"a\":1,\"b\" 2,\"c\":3}";
	struct json_val top, v;

	CHECK(json_open(s, strlen(s), &top) == 0, "open");
	CHECK(json_member(&top, "a", &v) == 0, "before the break");
	CHECK(json_member(&top, "c", &v) == -1, "after the break");
}

int
main(void)
{
	RUN(t_parse_table);
	RUN(t_parse_prefix);
	RUN(t_strings);
	RUN(t_str_eq);
	RUN(t_members);
	RUN(t_wrong_types);
	RUN(t_ints);
	RUN(t_depth);
	RUN(t_truncated);
	RUN(t_malformed_member);
	return test_done();
}
