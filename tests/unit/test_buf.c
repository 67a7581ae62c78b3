/*
 * test_buf.c - unit tests of the capped buffer's formatted append:
 * short and long expansions, the cap (head kept, truncated set) and
 * appending to what is already there.
 */
#include <string.h>

#include "base/buf.h"
#include "test.h"

static void
t_appendf_short(void)
{
	struct buf b;

	buf_init(&b, 1024);
	CHECK_INT(buf_appendf(&b, "%s=%d", "n", 42), 4);
	CHECK_INT(buf_appendf(&b, ",%s", "x"), 2);
	CHECK_STR(buf_cstr(&b), "n=42,x");
	CHECK_INT(b.len, 6);
	CHECK(!b.truncated, "not truncated");
	CHECK_INT(buf_appendf(&b, "%s", ""), 0);
	CHECK_INT(b.len, 6);
	buf_free(&b);
}

static void
t_appendf_long(void)
{
	char big[5001];
	struct buf b;

	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	buf_init(&b, 1 << 20);
	buf_append_str(&b, "<");
	/* longer than any stack copy: all of it is kept */
	CHECK_INT(buf_appendf(&b, "%s>%d", big, 7), 5002);
	CHECK_INT(b.len, 5003);
	CHECK(b.data[0] == '<' && b.data[5000] == 'a', "head and body");
	CHECK_STR(buf_cstr(&b) + 5001, ">7");
	CHECK(!b.truncated, "not truncated");
	buf_free(&b);
}

static void
t_appendf_cap(void)
{
	char big[1001];
	struct buf b;

	memset(big, 'b', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	buf_init(&b, 10);
	CHECK_INT(buf_appendf(&b, "%d", 12345), 5);
	CHECK_INT(buf_appendf(&b, "%s", "abcdefgh"), 5);
	CHECK_STR(buf_cstr(&b), "12345abcde");
	CHECK(b.truncated, "truncated at the cap");
	CHECK_INT(buf_appendf(&b, "%s", "z"), 0);
	CHECK_INT(b.len, 10);
	buf_reset(&b);
	CHECK_INT(buf_appendf(&b, "%s", big), 10);
	CHECK_STR(buf_cstr(&b), "bbbbbbbbbb");
	CHECK(b.truncated, "truncated long expansion");
	buf_free(&b);
	/* a long expansion under a cap larger than the stack copy */
	buf_init(&b, 600);
	CHECK_INT(buf_appendf(&b, "<%s", big), 600);
	CHECK_INT(b.len, 600);
	CHECK(b.data[0] == '<' && b.data[599] == 'b', "head kept");
	CHECK(b.truncated, "truncated at 600");
	buf_reset(&b);
	CHECK_INT(buf_appendf(&b, "%.300s", big), 300);
	CHECK_INT(buf_appendf(&b, "%s", big), 300);
	CHECK_INT(b.len, 600);
	CHECK(b.truncated, "second append truncated");
	buf_free(&b);
}

int
main(void)
{
	RUN(t_appendf_short);
	RUN(t_appendf_long);
	RUN(t_appendf_cap);
	return test_done();
}
