/*
 * metrics.h - thread-safe counters of the daemon, rendered in the
 * Prometheus text exposition format (version 0.0.4).  Label sets are
 * bounded: mailboxes are registered from the configuration (at most
 * METRICS_MAX_MAILBOXES), error kinds are a fixed enum, and class/reason
 * pairs are capped (further pairs are counted under reason "other").
 * Never logs.
 */
#ifndef BOUNCER_METRICS_H
#define BOUNCER_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

#define METRICS_MAX_MAILBOXES 1024
#define METRICS_MAX_REASONS 256

enum metrics_err_kind {
	METRICS_ERR_CONNECT, /* DNS, TCP, server down */
	METRICS_ERR_TLS,
	METRICS_ERR_AUTH,
	METRICS_ERR_PROTOCOL, /* -ERR, malformed answers */
	METRICS_ERR_TIMEOUT,
	METRICS_ERR_DATABASE,
	METRICS_ERR_DECODE, /* a message the decoder rejected */
	METRICS_ERR_OVERSIZE, /* a message over max_message_bytes */
	METRICS_ERR_REFUSED, /* records the database refused */
	METRICS_ERR_QUARANTINE, /* a message set aside after 3 failures */
	METRICS_ERR_DUP_UIDL, /* a message whose UIDL others share too */
	METRICS_ERR_OTHER,
	METRICS_ERR__COUNT
};

struct metrics;

/* version goes into bouncerd_build_info. */
struct metrics *metrics_new(const char *version);
void metrics_free(struct metrics **m);

/* Registers a mailbox (idempotent) and returns its index, or -1 when the
 * table is full.  Indexes stay valid for the life of the object. */
int metrics_mailbox(struct metrics *m, const char *name);

const char *metrics_err_kind_name(enum metrics_err_kind kind);

/* Counters; mb is an index from metrics_mailbox(); out-of-range is
 * ignored. */
void metrics_add_fetched(struct metrics *m, int mb, uint64_t n);
void metrics_add_recorded(struct metrics *m, int mb, uint64_t n);
void metrics_add_deleted(struct metrics *m, int mb, uint64_t n);
void metrics_add_error(struct metrics *m, int mb, enum metrics_err_kind kind);
/* One bounce record, by class name and reason name. */
void metrics_add_bounce(struct metrics *m, const char *cls, const char *reason);
/* A finished pass: duration in seconds; ok marks the success time (unix
 * seconds, now_unix()). */
void metrics_pass(struct metrics *m, int mb, double seconds, int ok,
    int64_t when);
/* Unix time of the last successful pass, 0 when none. */
int64_t metrics_last_success(struct metrics *m, int mb);
void metrics_set_db_up(struct metrics *m, int up);
/* One request to an OAuth token endpoint for mailbox mb: ok counts a
 * token obtained (bouncerd_oauth_token_refreshes_total), !ok a failed
 * request (bouncerd_oauth_token_failures_total). */
void metrics_add_token(struct metrics *m, int mb, int ok);
uint64_t metrics_get_token_refreshes(struct metrics *m, int mb);
uint64_t metrics_get_token_failures(struct metrics *m, int mb);

/* Reads a counter (tests and logs): fetched/recorded/deleted. */
uint64_t metrics_get_fetched(struct metrics *m, int mb);
uint64_t metrics_get_recorded(struct metrics *m, int mb);
uint64_t metrics_get_deleted(struct metrics *m, int mb);
uint64_t metrics_get_errors(struct metrics *m, int mb,
    enum metrics_err_kind kind);

/* Appends the exposition text to out; -1 if out's cap was reached. */
int metrics_render(struct metrics *m, struct buf *out);

/* Appends s to out escaped as a Prometheus label value (\\, \", \n). */
void metrics_escape_label(struct buf *out, const char *s);

#endif
