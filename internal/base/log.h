/*
 * log.h - leveled logging to stderr, as key=value text or JSON lines.
 * Only cmd/ and the poller log; leaf modules return errors instead.
 * Usage: log_info("pass done", "mailbox", name, "fetched", "12", NULL);
 * Arguments after the message are key/value string pairs ending in NULL.
 */
#ifndef BOUNCER_LOG_H
#define BOUNCER_LOG_H

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

/* Logs at error level and exits 1: startup failures only. */
void fatal(const char *msg, ...) __attribute__((sentinel, noreturn));

#endif
