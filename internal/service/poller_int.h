/*
 * poller_int.h - the scheduler's state, shared by poller.c (worker pool,
 * per-mailbox state, configuration references) and health.c (the
 * database prober and /healthz).  Private to internal/service.
 */
#ifndef BOUNCER_POLLER_INT_H
#define BOUNCER_POLLER_INT_H

#include <pthread.h>
#include <signal.h>
#include <stdint.h>

#include "service/pass.h"
#include "service/poller.h"

/* A configuration and the passes still using it: a reload swaps in a new
 * one; the old one is freed when its last pass ends. */
struct cfgref {
	struct config *cfg;
	int refs;
};

struct mbstate {
	char *name;
	int present; /* in the current config */
	int running;
	int done; /* --once: pass finished */
	int ok; /* --once: last pass succeeded */
	int busy; /* --once: skipped, another process holds the lock */
	int failures; /* failed passes in a row */
	int64_t next_run; /* monotonic ms */
	int midx; /* metrics index */
};

struct poller {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct cfgref *cur;
	/* database.url needs a restart: every connection uses the first */
	char *db_url;
	struct metrics *m;
	struct oauth_cache *oauth; /* XOAUTH2 access tokens by mailbox */
	struct pass_env env; /* what each pass borrows of the above */
	struct mbstate *mb;
	size_t nmb;
	volatile sig_atomic_t stop;
	/* the store's own stop flag: set only when workers overrun the
	 * shutdown grace, so the current message can still be committed */
	volatile sig_atomic_t db_stop;
	int live; /* worker threads running */
	int64_t started; /* unix */
	pthread_t *threads;
	int nthreads;
	/* health probe */
	pthread_mutex_t hmu;
	pthread_t hthread; /* the database prober (see probe_once) */
	int hrunning;
	volatile sig_atomic_t hquit;
	int hfirst; /* no probe has finished yet */
	struct store *hstore; /* the prober's own */
	int64_t hchecked; /* monotonic ms a probe last finished */
	int64_t hstarted; /* monotonic ms the running probe began, 0 none */
	int hdb_ok;
	unsigned rnd;
};

struct cfgref *cfg_acquire(struct poller *p);
void cfg_release(struct poller *p, struct cfgref *r);
/* Starts the database prober once, whatever the mode; poller_free stops
 * it. */
void prober_start(struct poller *p);

#endif
