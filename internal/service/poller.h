/*
 * poller.h - the daemon's engine, seen from cmd/: a scheduler hands the
 * mailboxes whose time has come to a fixed pool of worker threads, each
 * with one database connection, and each runs one pass (pass.h); failing
 * mailboxes back off; a reload swaps the configuration between passes;
 * /healthz reads the state (health.c).  The service is the one part that
 * knows all others, and the one that logs.
 */
#ifndef BOUNCER_POLLER_H
#define BOUNCER_POLLER_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "config/config.h"
#include "service/metrics.h"
#include "base/util.h"

struct poller;

/*
 * Takes ownership of cfg (freed by poller_free or replaced by
 * poller_reload).  m is borrowed and must outlive the poller.
 * Creates no thread and opens no connection yet.
 */
struct poller *poller_new(struct config *cfg, struct metrics *m);
void poller_free(struct poller **p);

/* One pass over every mailbox with cfg->workers threads, then returns:
 * 0 when every pass succeeded, 1 when one failed (or when stopped early),
 * 3 when none failed but a mailbox was skipped because another process
 * holds its lock. */
int poller_run_once(struct poller *p);

/* Starts the scheduler and workers in the background: 0 or -1. */
int poller_start(struct poller *p, struct err *err);
/* Asks every worker to finish its current message, commit, QUIT and
 * return; async-signal-safe (sets a flag). */
void poller_request_stop(struct poller *p);
/* Waits for the threads started by poller_start (after a stop request). */
void poller_join(struct poller *p);

/* Swaps in a validated config (ownership taken); mailbox list changes
 * take effect at the next pass of each mailbox.  Keys that need a
 * restart keep their old values; their names are appended to errs. */
void poller_reload(struct poller *p, struct config *cfg);

/* Health for /healthz: 200 or 503, body JSON appended to out. */
int poller_health(struct poller *p, struct buf *out);

/* Backoff after `failures` failed passes in a row (>= 1): exponential
 * from min(30 s, interval), doubling, capped at max(base,
 * min(30 min, 8 x interval)). */
int64_t poller_backoff_ms(int failures, int64_t interval_ms);
/* Delay until the next regular pass: interval plus a random share of
 * jitter (rnd is any random number). */
int64_t poller_next_delay_ms(int64_t interval_ms, int64_t jitter_ms,
    uint64_t rnd);
/* 1 when a mailbox whose last success was at last_ok (unix s; 0 never)
 * is healthy at now, having started at started (unix s). */
int poller_mailbox_healthy(int64_t last_ok, int64_t started, int64_t now,
    int64_t interval_ms, int64_t jitter_ms);

#endif
