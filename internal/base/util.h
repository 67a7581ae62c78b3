/*
 * util.h - small helpers shared by every module: the caller-owned error
 * buffer, allocation that aborts on exhaustion, and strict parsers for the
 * integers, durations and sizes found in configuration files.
 * Nothing here logs; failures are reported through struct err.
 */
#ifndef BOUNCER_UTIL_H
#define BOUNCER_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Caller-owned error text; large enough for curl's CURL_ERROR_SIZE. */
struct err {
	char msg[256];
};

/* Formats into err->msg (truncating); NULL err is allowed and ignored. */
void err_set(struct err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Prefixes the existing message with "prefix: ". */
void err_prefix(struct err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Allocation: abort with a message on exhaustion, never return NULL. */
void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* Allocates and formats, like asprintf. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Copies at most size-1 bytes and NUL-terminates; returns strlen(src). */
size_t strlcpy_b(char *dst, const char *src, size_t size);

/*
 * Strict parsers: the whole string must be consumed, no sign unless
 * allowed, no leading/trailing space.  0 on success, -1 with err set.
 */
int parse_int64(const char *s, int64_t min, int64_t max, int64_t *out,
    struct err *err);
/* "30s", "5m", "1h", "2d", "1500ms", "0"; also combined "1h30m".
 * Result in milliseconds. */
int parse_duration_ms(const char *s, int64_t *out, struct err *err);
/* "512", "512B", "64KiB", "1MiB", "2GiB", "10kB", "1MB" (SI: 1000). */
int parse_size(const char *s, uint64_t *out, struct err *err);

/* Monotonic clock in milliseconds. */
int64_t now_ms(void);
/* Monotonic microseconds (for timing short steps). */
int64_t now_us(void);
/* Wall clock, seconds since the epoch. */
int64_t now_unix(void);

/* ASCII-only case-insensitive helpers, locale-independent. */
int ascii_casecmp(const char *a, const char *b);
int ascii_ncasecmp(const char *a, const char *b, size_t n);
const char *ascii_casestr(const char *hay, const char *needle);
/* In-place lower-casing of ASCII letters. */
void ascii_lower(char *s);

/* Reads a whole file (at most max bytes; -1 if larger), NUL-terminated.
 * *out is owned by the caller. */
int read_file(const char *path, size_t max, char **out, size_t *len_out,
    struct err *err);

#endif
