/*
 * util.c - error buffer, aborting allocators and strict number, duration
 * and size parsers.  Parsers accept only the documented syntax: no
 * leading spaces, no trailing junk, explicit overflow checks.
 */
#include "base/util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void
err_set(struct err *err, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
}

void
err_prefix(struct err *err, const char *fmt, ...)
{
	char pre[sizeof(err->msg)], old[sizeof(err->msg)];
	va_list ap;

	if (err == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(pre, sizeof(pre), fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof(old));
	old[sizeof(old) - 1] = '\0';
	snprintf(err->msg, sizeof(err->msg), "%s: %s", pre, old);
}

static void
oom(size_t n)
{
	fprintf(stderr, "fatal: out of memory allocating %zu bytes\n", n);
	abort();
}

void *
xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (p == NULL)
		oom(n);
	return p;
}

void *
xcalloc(size_t nmemb, size_t size)
{
	void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);

	if (p == NULL)
		oom(nmemb * size);
	return p;
}

void *
xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (q == NULL)
		oom(n);
	return q;
}

char *
xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

char *
xstrndup(const char *s, size_t n)
{
	size_t len = strnlen(s, n);
	char *p = xmalloc(len + 1);

	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

char *
xasprintf(const char *fmt, ...)
{
	va_list ap, ap2;
	char *p;
	int n;

	va_start(ap, fmt);
	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		va_end(ap2);
		fprintf(stderr, "fatal: bad format in xasprintf\n");
		abort();
	}
	p = xmalloc((size_t)n + 1);
	vsnprintf(p, (size_t)n + 1, fmt, ap2);
	va_end(ap2);
	return p;
}

size_t
strlcpy_b(char *dst, const char *src, size_t size)
{
	size_t len = strlen(src);

	if (size > 0) {
		size_t n = len < size - 1 ? len : size - 1;
		memcpy(dst, src, n);
		dst[n] = '\0';
	}
	return len;
}

int
parse_int64(const char *s, int64_t min, int64_t max, int64_t *out,
    struct err *err)
{
	const char *p = s;
	int neg = 0;
	uint64_t v = 0, lim;

	if (s == NULL || *s == '\0') {
		err_set(err, "empty number");
		return -1;
	}
	if (*p == '-' || *p == '+') {
		neg = (*p == '-');
		p++;
	}
	if (!isdigit((unsigned char)*p)) {
		err_set(err, "'%s' is not an integer", s);
		return -1;
	}
	lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	for (; isdigit((unsigned char)*p); p++) {
		unsigned d = (unsigned)(*p - '0');
		if (v > (lim - d) / 10) {
			err_set(err, "'%s' is out of range", s);
			return -1;
		}
		v = v * 10 + d;
	}
	if (*p != '\0') {
		err_set(err, "'%s' is not an integer", s);
		return -1;
	}
	int64_t r = neg
	    ? (v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v)
	    : (int64_t)v;
	if (r < min || r > max) {
		err_set(err, "%s is out of range (%lld..%lld)", s,
		    (long long)min, (long long)max);
		return -1;
	}
	*out = r;
	return 0;
}

int
parse_duration_ms(const char *s, int64_t *out, struct err *err)
{
	static const struct unit {
		const char *name;
		int64_t ms;
	} units[] = {
	    {"ms", 1},
	    {"s", 1000},
	    {"m", 60000},
	    {"h", 3600000},
	    {"d", 86400000},
	};
	const char *p = s;
	int64_t total = 0;

	if (s == NULL || *s == '\0') {
		err_set(err, "empty duration");
		return -1;
	}
	if (strcmp(s, "0") == 0) {
		*out = 0;
		return 0;
	}
	while (*p != '\0') {
		uint64_t v = 0;
		const char *start = p;
		size_t i, ulen;

		if (!isdigit((unsigned char)*p))
			goto bad;
		for (; isdigit((unsigned char)*p); p++) {
			if (v > 1000000000000ULL)
				goto range;
			v = v * 10 + (uint64_t)(*p - '0');
		}
		(void)start;
		ulen = 0;
		while (isalpha((unsigned char)p[ulen]))
			ulen++;
		if (ulen == 0)
			goto bad;
		for (i = 0; i < sizeof(units) / sizeof(units[0]); i++)
			if (strlen(units[i].name) == ulen &&
			    memcmp(units[i].name, p, ulen) == 0)
				break;
		if (i == sizeof(units) / sizeof(units[0]))
			goto bad;
		if (v >
		    (uint64_t)(INT64_MAX / 2 - total) / (uint64_t)units[i].ms)
			goto range;
		total += (int64_t)v * units[i].ms;
		p += ulen;
	}
	*out = total;
	return 0;
bad:
	err_set(err, "'%s' is not a duration (use e.g. 30s, 5m, 1h, 2d)", s);
	return -1;
range:
	err_set(err, "duration '%s' is too large", s);
	return -1;
}

int
parse_size(const char *s, uint64_t *out, struct err *err)
{
	static const struct unit {
		const char *name;
		uint64_t mult;
	} units[] = {
	    {"", 1},
	    {"B", 1},
	    {"KiB", 1ULL << 10},
	    {"MiB", 1ULL << 20},
	    {"GiB", 1ULL << 30},
	    {"TiB", 1ULL << 40},
	    {"kB", 1000ULL},
	    {"KB", 1000ULL},
	    {"MB", 1000000ULL},
	    {"GB", 1000000000ULL},
	    {"TB", 1000000000000ULL},
	};
	const char *p = s;
	uint64_t v = 0;
	size_t i;

	if (s == NULL || !isdigit((unsigned char)*s)) {
		err_set(err, "'%s' is not a size (use e.g. 512KiB, 1MiB)",
		    s ? s : "");
		return -1;
	}
	for (; isdigit((unsigned char)*p); p++) {
		if (v > (UINT64_MAX - 9) / 10) {
			err_set(err, "size '%s' is too large", s);
			return -1;
		}
		v = v * 10 + (uint64_t)(*p - '0');
	}
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (strcmp(p, units[i].name) == 0)
			break;
	if (i == sizeof(units) / sizeof(units[0])) {
		err_set(err, "'%s' is not a size (use e.g. 512KiB, 1MiB)", s);
		return -1;
	}
	if (v != 0 && units[i].mult > UINT64_MAX / v) {
		err_set(err, "size '%s' is too large", s);
		return -1;
	}
	*out = v * units[i].mult;
	return 0;
}

int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t
now_unix(void)
{
	return (int64_t)time(NULL);
}

static int
lc(int c)
{
	return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

int
ascii_casecmp(const char *a, const char *b)
{
	for (; *a && lc((unsigned char)*a) == lc((unsigned char)*b); a++, b++)
		;
	return lc((unsigned char)*a) - lc((unsigned char)*b);
}

int
ascii_ncasecmp(const char *a, const char *b, size_t n)
{
	for (; n > 0; a++, b++, n--) {
		int d = lc((unsigned char)*a) - lc((unsigned char)*b);
		if (d != 0 || *a == '\0')
			return d;
	}
	return 0;
}

const char *
ascii_casestr(const char *hay, const char *needle)
{
	size_t n = strlen(needle);

	if (n == 0)
		return hay;
	for (; *hay; hay++)
		if (lc((unsigned char)*hay) == lc((unsigned char)*needle) &&
		    ascii_ncasecmp(hay, needle, n) == 0)
			return hay;
	return NULL;
}

void
ascii_lower(char *s)
{
	for (; *s; s++)
		*s = (char)lc((unsigned char)*s);
}

int
read_file(const char *path, size_t max, char **out, size_t *len_out,
    struct err *err)
{
	char *data = NULL;
	size_t len = 0, cap = 0;
	int fd, rc = -1;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		err_set(err, "%s: %s", path, strerror(errno));
		return -1;
	}
	for (;;) {
		ssize_t n;
		if (len + 1 >= cap) {
			if (cap > max + 1) {
				err_set(err, "%s: larger than %zu bytes", path,
				    max);
				goto out;
			}
			cap = cap ? cap * 2 : 8192;
			data = xrealloc(data, cap);
		}
		n = read(fd, data + len, cap - len - 1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			err_set(err, "%s: %s", path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > max) {
			err_set(err, "%s: larger than %zu bytes", path, max);
			goto out;
		}
	}
	if (data == NULL)
		data = xmalloc(1);
	data[len] = '\0';
	*out = data;
	data = NULL;
	if (len_out)
		*len_out = len;
	rc = 0;
out:
	free(data);
	close(fd);
	return rc;
}
