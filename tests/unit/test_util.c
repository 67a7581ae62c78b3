/*
 * test_util.c - table tests for the strict parsers, the capped buffer
 * and the logger's escaping.
 */
#include <stdint.h>
#include <unistd.h>

#include "base/buf.h"
#include "test.h"
#include "base/util.h"

static void
t_parse_int(void)
{
	static const struct {
		const char *in;
		int64_t min, max;
		int rc;
		int64_t want;
		const char *err;
	} rows[] = {
	    {"0", 0, 10, 0, 0, NULL},
	    {"10", 0, 10, 0, 10, NULL},
	    {"11", 0, 10, -1, 0, "11 is out of range (0..10)"},
	    {"-1", 0, 10, -1, 0, "-1 is out of range (0..10)"},
	    {"-5", -10, 10, 0, -5, NULL},
	    {"", 0, 10, -1, 0, "empty number"},
	    {" 1", 0, 10, -1, 0, "' 1' is not an integer"},
	    {"1 ", 0, 10, -1, 0, "'1 ' is not an integer"},
	    {"1x", 0, 10, -1, 0, "'1x' is not an integer"},
	    {"9223372036854775807", INT64_MIN, INT64_MAX, 0, INT64_MAX, NULL},
	    {"9223372036854775808", INT64_MIN, INT64_MAX, -1, 0,
	        "'9223372036854775808' is out of range"},
	    {"-9223372036854775808", INT64_MIN, INT64_MAX, 0, INT64_MIN, NULL},
	    {"99999999999999999999999", 0, 10, -1, 0,
	        "'99999999999999999999999' is out of range"},
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct err err = {""};
		int64_t v = 0;
		test_begin("parse_int64 '%s'", rows[i].in);
		int rc =
		    parse_int64(rows[i].in, rows[i].min, rows[i].max, &v, &err);
		CHECK_INT(rc, rows[i].rc);
		if (rc == 0)
			CHECK_INT(v, rows[i].want);
		else
			CHECK_STR(err.msg, rows[i].err);
		test_end();
	}
}

static void
t_parse_duration(void)
{
	static const struct {
		const char *in;
		int rc;
		int64_t ms;
	} rows[] = {
	    {"30s", 0, 30000},
	    {"5m", 0, 300000},
	    {"1h", 0, 3600000},
	    {"2d", 0, 172800000},
	    {"1500ms", 0, 1500},
	    {"0", 0, 0},
	    {"1h30m", 0, 5400000},
	    {"", -1, 0},
	    {"30", -1, 0},
	    {"s", -1, 0},
	    {"5 m", -1, 0},
	    {"5x", -1, 0},
	    {"-5s", -1, 0},
	    {"99999999999999999999d", -1, 0},
	    {"5mm", -1, 0},
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct err err = {""};
		int64_t v = -1;
		test_begin("parse_duration '%s'", rows[i].in);
		CHECK_INT(parse_duration_ms(rows[i].in, &v, &err), rows[i].rc);
		if (rows[i].rc == 0)
			CHECK_INT(v, rows[i].ms);
		else
			CHECK(err.msg[0] != '\0', "error text set");
		test_end();
	}
}

static void
t_parse_size(void)
{
	static const struct {
		const char *in;
		int rc;
		uint64_t v;
	} rows[] = {
	    {"512", 0, 512},
	    {"512B", 0, 512},
	    {"512KiB", 0, 524288},
	    {"1MiB", 0, 1048576},
	    {"2GiB", 0, 2147483648ULL},
	    {"10kB", 0, 10000},
	    {"1MB", 0, 1000000},
	    {"1 MiB", -1, 0},
	    {"MiB", -1, 0},
	    {"1mib", -1, 0},
	    {"", -1, 0},
	    {"-1", -1, 0},
	    {"99999999999999999999", -1, 0},
	    {"20000000TiB", -1, 0},
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct err err = {""};
		uint64_t v = 0;
		test_begin("parse_size '%s'", rows[i].in);
		CHECK_INT(parse_size(rows[i].in, &v, &err), rows[i].rc);
		if (rows[i].rc == 0)
			CHECK_INT(v, rows[i].v);
		else
			CHECK(err.msg[0] != '\0', "error text set");
		test_end();
	}
}

static void
t_buf_cap(void)
{
	struct buf b;
	char chunk[1000];

	memset(chunk, 'x', sizeof(chunk));
	buf_init(&b, 2500);
	CHECK_INT(buf_append(&b, chunk, 1000), 1000);
	CHECK_INT(buf_append(&b, chunk, 1000), 1000);
	CHECK_INT(b.truncated, 0);
	CHECK_INT(buf_append(&b, chunk, 1000), 500);
	CHECK_INT(b.len, 2500);
	CHECK_INT(b.truncated, 1);
	CHECK(b.alloc <= 2501, "allocation %zu stays within cap+1", b.alloc);
	CHECK_INT(buf_append(&b, chunk, 10), 0);
	CHECK_INT(strlen(buf_cstr(&b)), 2500);
	buf_reset(&b);
	CHECK_INT(b.len, 0);
	CHECK_INT(b.truncated, 0);
	buf_free(&b);
	buf_free(&b);
}

static void
t_buf_zero_cap(void)
{
	struct buf b;

	buf_init(&b, 0);
	CHECK_INT(buf_append(&b, "abc", 3), 0);
	CHECK_INT(b.truncated, 1);
	CHECK_STR(buf_cstr(&b), "");
	buf_free(&b);
}

static void
t_json_str(void)
{
	static const struct {
		const char *in, *want;
	} rows[] = {
	    {NULL, "null"},
	    {"", "\"\""},
	    {"plain", "\"plain\""},
	    {"q\"b\\", "\"q\\\"b\\\\\""},
	    {"a\nb\rc\td", "\"a\\nb\\rc\\td\""},
	    {"\x01\x1f\x7f", "\"\\u0001\\u001f\\u007f\""},
	    {"caf\xc3\xa9", "\"caf\xc3\xa9\""},
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct buf b;

		test_begin("buf_append_json_str row %zu", i);
		buf_init(&b, 1024);
		buf_append_json_str(&b, rows[i].in);
		CHECK_STR(buf_cstr(&b), rows[i].want);
		buf_free(&b);
		test_end();
	}
}

static void
t_err_prefix(void)
{
	struct err err;

	err_set(&err, "connection refused");
	err_prefix(&err, "mailbox %s", "main");
	CHECK_STR(err.msg, "mailbox main: connection refused");
	err_set(NULL, "ignored");
}

static void
t_casestr(void)
{
	CHECK(ascii_casestr("Hello World", "WORLD") != NULL, "found");
	CHECK(ascii_casestr("Hello", "xyz") == NULL, "not found");
	CHECK_INT(ascii_casecmp("ABC", "abc"), 0);
	CHECK(ascii_ncasecmp("abcd", "ABCE", 3) == 0, "prefix");
}

static void
t_read_file(void)
{
	char path[] = "/tmp/bouncer-test-XXXXXX";
	int fd = mkstemp(path);
	char *data = NULL;
	size_t len = 0;
	struct err err = {""};

	CHECK(fd >= 0, "mkstemp");
	CHECK(write(fd, "hello\n", 6) == 6, "write");
	close(fd);
	CHECK_INT(read_file(path, 100, &data, &len, &err), 0);
	CHECK_INT(len, 6);
	CHECK_STR(data, "hello\n");
	free(data);
	data = NULL;
	CHECK_INT(read_file(path, 3, &data, &len, &err), -1);
	CHECK(strstr(err.msg, "larger than 3 bytes") != NULL, "%s", err.msg);
	unlink(path);
	CHECK_INT(read_file(path, 100, &data, &len, &err), -1);
	CHECK(strstr(err.msg, "No such file") != NULL, "%s", err.msg);
}

int
main(void)
{
	t_parse_int();
	t_parse_duration();
	t_parse_size();
	RUN(t_buf_cap);
	RUN(t_buf_zero_cap);
	t_json_str();
	RUN(t_err_prefix);
	RUN(t_casestr);
	RUN(t_read_file);
	return test_done();
}
