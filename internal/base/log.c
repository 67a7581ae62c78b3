/*
 * log.c - one line per event on stderr.  Text: `time level msg k=v ...`
 * with values quoted when they contain spaces, quotes or control bytes;
 * JSON: one object per line.  Each line is written with a single
 * fwrite so lines from different threads do not interleave.
 */
#include "base/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/buf.h"

/* Set at start and again on a reload (SIGHUP) while other threads log:
 * atomic, and each line reads the format once. */
static _Atomic int min_level = LOG_INFO;
static _Atomic int log_fmt = LOG_TEXT;

static const char *names[] = {"debug", "info", "warn", "error"};

void
log_setup(enum log_level level, enum log_format format)
{
	atomic_store(&min_level, (int)level);
	atomic_store(&log_fmt, (int)format);
}

int
log_level_parse(const char *s, enum log_level *out)
{
	for (int i = 0; i < 4; i++)
		if (strcmp(s, names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	return -1;
}

int
log_format_parse(const char *s, enum log_format *out)
{
	if (strcmp(s, "text") == 0)
		*out = LOG_TEXT;
	else if (strcmp(s, "json") == 0)
		*out = LOG_JSON;
	else
		return -1;
	return 0;
}

const char *
log_level_name(enum log_level level)
{
	return names[level];
}

static void
put_text_val(struct buf *b, const char *s)
{
	int quote = (*s == '\0');

	for (const char *p = s; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == '"' || *p == '=' ||
		    *p == 0x7f)
			quote = 1;
	if (!quote) {
		buf_append_str(b, s);
		return;
	}
	buf_append_json_str(b, s);
}

/* Writes one field's value in the line's format. */
static void
put_value(struct buf *b, const struct log_field *f, int fmt)
{
	char num[32];
	int64_t v = f->i;

	switch (f->type) {
	case LOG_T_INT:
		snprintf(num, sizeof(num), "%lld", (long long)v);
		break;
	case LOG_T_SECS:
		snprintf(num, sizeof(num), "%s%lld.%03lld", v < 0 ? "-" : "",
		    (long long)(v < 0 ? -(v / 1000) : v / 1000),
		    (long long)(v < 0 ? -(v % 1000) : v % 1000));
		break;
	case LOG_T_STR:
	default:
		if (fmt == LOG_JSON)
			buf_append_json_str(b, f->s ? f->s : "");
		else
			put_text_val(b, f->s ? f->s : "");
		return;
	}
	buf_append_str(b, num);
}

static void
emit(enum log_level level, const char *msg, const struct log_field *f, size_t n)
{
	struct buf b;
	char ts[40];
	struct timespec now;
	struct tm tm;
	const int fmt = atomic_load(&log_fmt);

	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
	    tm.tm_sec, now.tv_nsec / 1000000);
	buf_init(&b, 16384);
	if (fmt == LOG_JSON) {
		buf_append_str(&b, "{\"time\":\"");
		buf_append_str(&b, ts);
		buf_append_str(&b, "\",\"level\":\"");
		buf_append_str(&b, names[level]);
		buf_append_str(&b, "\",\"msg\":");
		buf_append_json_str(&b, msg);
	} else {
		buf_append_str(&b, ts);
		buf_append_str(&b, " ");
		buf_append_str(&b, names[level]);
		buf_append_str(&b, " ");
		buf_append_str(&b, msg);
	}
	for (size_t i = 0; i < n; i++) {
		if (fmt == LOG_JSON) {
			buf_append_str(&b, ",");
			buf_append_json_str(&b, f[i].key);
			buf_append_str(&b, ":");
		} else {
			buf_append_str(&b, " ");
			buf_append_str(&b, f[i].key);
			buf_append_str(&b, "=");
		}
		put_value(&b, &f[i], fmt);
	}
	if (fmt == LOG_JSON)
		buf_append_str(&b, "}");
	if (b.truncated) {
		/* keep the line well-formed: cut and mark */
		b.len = b.cap > 64 ? b.cap - 64 : 0;
		b.truncated = 0;
		buf_append_str(&b, fmt == LOG_JSON ? "\"}" : " truncated=1");
	}
	buf_append(&b, "\n", 1);
	fwrite(b.data, 1, b.len, stderr);
	fflush(stderr);
	buf_free(&b);
}

/* The string pairs of log_kv() as fields; pairs past the 64th are
 * dropped. */
static void
vlog(enum log_level level, const char *msg, va_list ap)
{
	struct log_field f[64];
	size_t n = 0;
	const char *k;

	while ((k = va_arg(ap, const char *)) != NULL) {
		const char *v = va_arg(ap, const char *);

		if (n < sizeof(f) / sizeof(f[0]))
			f[n++] = LOG_STR(k, v);
	}
	emit(level, msg, f, n);
}

void
log_fields(enum log_level level, const char *msg, const struct log_field *f,
    size_t n)
{
	if ((int)level < atomic_load(&min_level))
		return;
	emit(level, msg, f, n);
}

void
log_kv(enum log_level level, const char *msg, ...)
{
	va_list ap;

	if ((int)level < atomic_load(&min_level))
		return;
	va_start(ap, msg);
	vlog(level, msg, ap);
	va_end(ap);
}

void
fatal(const char *msg, ...)
{
	va_list ap;

	va_start(ap, msg);
	vlog(LOG_ERROR, msg, ap);
	va_end(ap);
	exit(1);
}
