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

/* One pass over mailbox name of cfg.  *stp is the worker's database
 * connection, opened here when NULL and kept for the next pass. */
enum pass_outcome pass_run(const struct pass_env *env, const struct config *cfg,
    const char *name, int midx, struct store **stp);

/* Opens *stp (when NULL) with the service's reconnect policy. */
int pass_open_store(const struct pass_env *env, const struct config *cfg,
    struct store **stp, struct err *err);

#endif
