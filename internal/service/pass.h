/*
 * pass.h - one pass over one mailbox, as the scheduler (poller.c) runs it:
 * lock -> log in -> list -> ledger filter -> RETR -> decode -> record ->
 * COMMIT -> DELE -> QUIT -> upkeep.  Nothing is deleted on the server
 * before it is committed, and the ledger says "deleted" only after QUIT
 * confirmed the DELEs (RFC 1939 section 6).  A crash at any point leaves
 * either an unrecorded message on the server (fetched again) or a
 * recorded one (DELEd without recording again next pass).
 */
#ifndef BOUNCER_PASS_H
#define BOUNCER_PASS_H

#include <signal.h>

#include "config/config.h"
#include "pop3/oauth.h"
#include "service/metrics.h"
#include "store/store.h"

/* What the scheduler lends a pass; every pointer outlives it. */
struct pass_env {
	struct metrics *m;
	struct oauth_cache *oauth; /* XOAUTH2 access tokens by mailbox */
	const char *db_url;
	/* set on a stop request: no new message is started, transfers in
	 * flight end soon */
	volatile sig_atomic_t *stop;
	/* set when the shutdown grace is over: database waits end too */
	volatile sig_atomic_t *db_stop;
	int once; /* --once: a mailbox locked elsewhere is worth a line */
};

enum pass_outcome {
	PASS_OK,
	PASS_FAILED, /* logged and counted; the scheduler backs off */
	PASS_SKIPPED, /* the mailbox is no longer configured */
	PASS_BUSY, /* another process holds the mailbox's lock */
};

/* Database connections of a pass's recording threads. */
#define PASS_COMMITTERS 2

/* A worker's database connections, kept from one pass to the next and
 * opened when first needed: the pass's own (it holds the mailbox's lock)
 * and its recording threads'.  Besides the cost of connecting, a new
 * PostgreSQL server process maps each page of the shared buffers it
 * touches into its page table (two page faults per buffer without huge
 * pages): a kept connection pays that once, not in every pass. */
struct pass_conns {
	struct store *main;
	struct store *com[PASS_COMMITTERS];
	/* the store options they were opened with: a reload that changes
	 * them closes them before the next pass */
	int batch_size;
	uint64_t raw_max_bytes;
};

/* One pass over mailbox name of cfg, on the worker's connections. */
enum pass_outcome pass_run(const struct pass_env *env, const struct config *cfg,
    const char *name, int midx, struct pass_conns *conns);

/* Closes the worker's connections. */
void pass_conns_free(struct pass_conns *conns);

/* Opens *stp (when NULL) with the service's reconnect policy. */
int pass_open_store(const struct pass_env *env, const struct config *cfg,
    struct store **stp, struct err *err);

#endif
