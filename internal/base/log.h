/*
 * log.h - leveled logging to stderr, as key=value text or JSON lines.
 * Only cmd/ and the service log; leaf modules return errors instead.
 * Two forms: log_info("pass done", "mailbox", name, NULL) takes key/value
 * string pairs ending in NULL; log_f(LOG_INFO, "pass done",
 * LOG_STR("mailbox", name), LOG_INT("fetched", n), LOG_SECS("seconds", ms))
 * takes typed fields, so numbers are not formatted by hand (JSON lines
 * write them as numbers).
 */
#ifndef BOUNCER_LOG_H
#define BOUNCER_LOG_H

#include <stddef.h>
#include <stdint.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };
enum log_format { LOG_TEXT, LOG_JSON };

void log_setup(enum log_level level, enum log_format format);
/* Parses "debug", "info", "warn", "error"; -1 if unknown. */
int log_level_parse(const char *s, enum log_level *out);
int log_format_parse(const char *s, enum log_format *out);
const char *log_level_name(enum log_level level);

void log_kv(enum log_level level, const char *msg, ...)
    __attribute__((sentinel));
#define log_debug(...) log_kv(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_kv(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_kv(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_kv(LOG_ERROR, __VA_ARGS__)

enum log_type {
	LOG_T_STR, /* s; NULL is written as "" */
	LOG_T_INT, /* i */
	LOG_T_SECS, /* i milliseconds, written as seconds: 1.250 */
};

struct log_field {
	const char *key;
	enum log_type type;
	const char *s;
	int64_t i;
};

#define LOG_STR(k, v) ((struct log_field){(k), LOG_T_STR, (v), 0})
#define LOG_INT(k, v) ((struct log_field){(k), LOG_T_INT, NULL, (int64_t)(v)})
#define LOG_SECS(k, ms) \
	((struct log_field){(k), LOG_T_SECS, NULL, (int64_t)(ms)})

void log_fields(enum log_level level, const char *msg,
    const struct log_field *f, size_t n);
#define log_f(level, msg, ...) \
	log_fields((level), (msg), (const struct log_field[]){__VA_ARGS__}, \
	    sizeof((const struct log_field[]){__VA_ARGS__}) / \
	        sizeof(struct log_field))

/* Logs at error level and exits 1: startup failures only. */
void fatal(const char *msg, ...) __attribute__((sentinel, noreturn));

#endif
