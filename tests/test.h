/*
 * test.h - the project's minimal test harness, shared by unit and
 * integration tests.  A test binary prints one line per case:
 *   PASS name | FAIL name: why | SKIP name: why
 * and exits 1 if any case failed.  tests/run.sh adds up the lines and
 * prints the closing "N passed, N failed, N skipped".
 *
 * Usage:
 *	static void t_foo(void) { CHECK(1 + 1 == 2, "math: %d", 2); }
 *	int main(void) { RUN(t_foo); return test_done(); }
 * Table-driven tests call test_begin(name) per row and test_end().
 */
#ifndef BOUNCER_TEST_H
#define BOUNCER_TEST_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_failed_total, test_passed_total, test_skipped_total;
static int test_case_failed, test_case_skipped;
static char test_case_name[256];

static inline void
test_begin(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(test_case_name, sizeof(test_case_name), fmt, ap);
	va_end(ap);
	test_case_failed = 0;
	test_case_skipped = 0;
}

static inline void
test_end(void)
{
	if (test_case_failed)
		test_failed_total++;
	else if (test_case_skipped)
		test_skipped_total++;
	else {
		test_passed_total++;
		printf("PASS %s\n", test_case_name);
	}
	fflush(stdout);
}

static inline void
test_fail_at(const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	printf("FAIL %s: %s:%d: ", test_case_name, file, line);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	test_case_failed = 1;
}

static inline void
test_skip(const char *fmt, ...)
{
	va_list ap;

	printf("SKIP %s: ", test_case_name);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	test_case_skipped = 1;
}

/* CHECK(cond, fmt, ...): records a failure (and goes on) when !cond. */
#define CHECK(cond, ...) \
	do { \
		if (!(cond)) \
			test_fail_at(__FILE__, __LINE__, \
			    "CHECK(" #cond ") " __VA_ARGS__); \
	} while (0)

/* CHECK_STR(got, want): string equality, NULL-aware, printing both. */
#define CHECK_STR(got, want) \
	do { \
		const char *g_ = (got), *w_ = (want); \
		if (!((g_ == NULL && w_ == NULL) || \
		        (g_ != NULL && w_ != NULL && strcmp(g_, w_) == 0))) \
			test_fail_at(__FILE__, __LINE__, \
			    "%s: got \"%s\", want \"%s\"", #got, \
			    g_ ? g_ : "(null)", w_ ? w_ : "(null)"); \
	} while (0)

#define CHECK_INT(got, want) \
	do { \
		long long g_ = (long long)(got), w_ = (long long)(want); \
		if (g_ != w_) \
			test_fail_at(__FILE__, __LINE__, \
			    "%s: got %lld, want %lld", #got, g_, w_); \
	} while (0)

/* RUN(fn): runs a test function as one case named after it. */
#define RUN(fn) \
	do { \
		test_begin("%s", #fn); \
		fn(); \
		test_end(); \
	} while (0)

static inline int
test_done(void)
{
	return test_failed_total ? 1 : 0;
}

#endif
