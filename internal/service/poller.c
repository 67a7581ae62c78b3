/*
 * poller.c - the scheduler (poller.h): a fixed pool of worker threads
 * takes the mailboxes whose time has come and runs one pass each
 * (pass.h); per-mailbox state (next run, failures in a row, backoff), the
 * configuration each pass holds a reference to, --once, reloads and
 * shutdown.  Health (/healthz) is in health.c.
 */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "service/poller_int.h"

int64_t
poller_backoff_ms(int failures, int64_t interval_ms)
{
	int64_t base = 30000, cap = 30 * 60 * 1000, d;

	if (interval_ms > 0 && interval_ms < base)
		base = interval_ms;
	if (interval_ms > 0 && interval_ms * 8 < cap)
		cap = interval_ms * 8;
	if (cap < base)
		cap = base;
	if (failures < 1)
		failures = 1;
	d = base;
	for (int i = 1; i < failures && d < cap; i++)
		d *= 2;
	return d < cap ? d : cap;
}

int64_t
poller_next_delay_ms(int64_t interval_ms, int64_t jitter_ms, uint64_t rnd)
{
	if (interval_ms < 0)
		interval_ms = 0;
	if (jitter_ms <= 0)
		return interval_ms;
	return interval_ms + (int64_t)(rnd % (uint64_t)(jitter_ms + 1));
}

int
poller_mailbox_healthy(int64_t last_ok, int64_t started, int64_t now,
    int64_t interval_ms, int64_t jitter_ms)
{
	int64_t since = last_ok > started ? last_ok : started;
	int64_t window = (3 * (interval_ms + jitter_ms) + 999) / 1000;

	if (window < 1)
		window = 1;
	return now - since <= window;
}

struct cfgref *
cfg_acquire(struct poller *p)
{
	struct cfgref *r;

	pthread_mutex_lock(&p->mu);
	r = p->cur;
	r->refs++;
	pthread_mutex_unlock(&p->mu);
	return r;
}

/* Caller holds p->mu. */
static void
cfg_release_locked(struct cfgref *r)
{
	if (--r->refs == 0) {
		config_free(&r->cfg);
		free(r);
	}
}

void
cfg_release(struct poller *p, struct cfgref *r)
{
	pthread_mutex_lock(&p->mu);
	cfg_release_locked(r);
	pthread_mutex_unlock(&p->mu);
}

/* Caller holds p->mu: brings the mailbox table in line with cfg. */
static void
sync_mailboxes(struct poller *p, const struct config *cfg)
{
	for (size_t i = 0; i < p->nmb; i++)
		p->mb[i].present = 0;
	for (size_t k = 0; k < cfg->n_mailboxes; k++) {
		const char *name = cfg->mailboxes[k].name;
		struct mbstate *s = NULL;

		for (size_t i = 0; i < p->nmb; i++)
			if (strcmp(p->mb[i].name, name) == 0)
				s = &p->mb[i];
		if (s == NULL) {
			p->mb = xrealloc(p->mb, (p->nmb + 1) * sizeof(*p->mb));
			s = &p->mb[p->nmb++];
			memset(s, 0, sizeof(*s));
			s->name = xstrdup(name);
			s->next_run = 0;
			s->midx = metrics_mailbox(p->m, name);
		}
		s->present = 1;
	}
}

struct poller *
poller_new(struct config *cfg, struct metrics *m)
{
	struct poller *p = xcalloc(1, sizeof(*p));

	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	pthread_mutex_init(&p->hmu, NULL);
	p->hfirst = 1;
	p->cur = xcalloc(1, sizeof(*p->cur));
	p->cur->cfg = cfg;
	p->cur->refs = 1;
	p->db_url = xstrdup(cfg->database_url ? cfg->database_url : "");
	p->m = m;
	p->oauth = oauth_cache_new();
	p->env.m = m;
	p->env.oauth = p->oauth;
	p->env.db_url = p->db_url;
	p->env.stop = &p->stop;
	p->env.db_stop = &p->db_stop;
	p->started = now_unix();
	p->rnd = (unsigned)now_ms() ^ (unsigned)getpid();
	sync_mailboxes(p, cfg);
	return p;
}

void
poller_free(struct poller **pp)
{
	struct poller *p;

	if (pp == NULL || *pp == NULL)
		return;
	p = *pp;
	for (size_t i = 0; i < p->nmb; i++)
		free(p->mb[i].name);
	free(p->mb);
	free(p->threads);
	free(p->db_url);
	oauth_cache_free(&p->oauth);
	cfg_release_locked(p->cur);
	if (p->hrunning) {
		p->hquit = 1;
		pthread_join(p->hthread, NULL);
	}
	store_free(&p->hstore);
	pthread_mutex_destroy(&p->hmu);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	free(p);
	*pp = NULL;
}

void
poller_request_stop(struct poller *p)
{
	p->stop = 1;
}

static void *
worker(void *arg)
{
	struct poller *p = arg;
	struct pass_conns conns;

	memset(&conns, 0, sizeof(conns));

	pthread_mutex_lock(&p->mu);
	while (!p->stop) {
		int64_t now = now_ms(), wake = now + 1000;
		struct mbstate *pick = NULL;
		size_t idx = 0;
		int pending = 0;
		enum pass_outcome res;
		struct cfgref *ref;
		char *name;
		int midx;

		for (size_t i = 0; i < p->nmb; i++) {
			struct mbstate *s = &p->mb[i];

			if (!s->present || (p->env.once && s->done))
				continue;
			pending++;
			if (s->running)
				continue;
			if (s->next_run <= now) {
				pick = s;
				idx = i;
				break;
			}
			if (s->next_run < wake)
				wake = s->next_run;
		}
		if (pick == NULL) {
			struct timespec ts;
			int64_t ms;

			if (p->env.once && pending == 0)
				break;
			/* wake at least every second to see the stop flag,
			 * which a signal handler sets without signalling */
			clock_gettime(CLOCK_REALTIME, &ts);
			ms = wake - now;
			if (ms > 1000)
				ms = 1000;
			if (ms < 1)
				ms = 1;
			ts.tv_sec += ms / 1000;
			ts.tv_nsec += (ms % 1000) * 1000000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&p->cv, &p->mu, &ts);
			continue;
		}
		pick->running = 1;
		name = xstrdup(pick->name);
		midx = pick->midx;
		ref = p->cur;
		ref->refs++;
		pthread_mutex_unlock(&p->mu);

		res = pass_run(&p->env, ref->cfg, name, midx, &conns);

		pthread_mutex_lock(&p->mu);
		{
			struct mbstate *s = &p->mb[idx];
			const struct mailbox_config *mc =
			    config_mailbox(p->cur->cfg, name);
			int64_t iv = mc ? mc->poll.interval_ms : 60000;
			int64_t jit = mc ? mc->poll.jitter_ms : 0;

			s->running = 0;
			s->done = 1;
			s->ok = res != PASS_FAILED;
			s->busy = res == PASS_BUSY;
			if (res == PASS_FAILED && ref != p->cur) {
				/* the config changed meanwhile: try it now */
				s->next_run = now_ms();
			} else if (res == PASS_FAILED) {
				s->failures++;
				s->next_run = now_ms() +
				    poller_backoff_ms(s->failures, iv);
			} else {
				s->failures = 0;
				s->next_run = now_ms() +
				    poller_next_delay_ms(iv, jit,
				        (uint64_t)rand_r(&p->rnd) << 16 ^
				            (uint64_t)rand_r(&p->rnd));
			}
		}
		cfg_release_locked(ref);
		free(name);
		pthread_cond_broadcast(&p->cv);
	}
	p->live--;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	pass_conns_free(&conns);
	return NULL;
}

static int
start_threads(struct poller *p, struct err *err)
{
	int n = p->cur->cfg->workers > 0 ? p->cur->cfg->workers : 1;

	if ((size_t)n > p->nmb && p->nmb > 0)
		n = (int)p->nmb;
	prober_start(p);
	p->threads = xcalloc((size_t)n, sizeof(*p->threads));
	for (int i = 0; i < n; i++) {
		pthread_mutex_lock(&p->mu);
		p->live++;
		pthread_mutex_unlock(&p->mu);
		if (pthread_create(&p->threads[i], NULL, worker, p) != 0) {
			pthread_mutex_lock(&p->mu);
			p->live--;
			pthread_mutex_unlock(&p->mu);
			err_set(err, "cannot start worker thread");
			p->stop = 1;
			return -1;
		}
		p->nthreads++;
	}
	return 0;
}

/* Grace for workers to commit and QUIT after a stop request before
 * database waits are cut short. */
#define STOP_GRACE_MS 3000

void
poller_join(struct poller *p)
{
	int64_t deadline = now_ms() + STOP_GRACE_MS;

	pthread_mutex_lock(&p->mu);
	while (p->live > 0) {
		struct timespec ts;

		if (!p->stop)
			deadline = now_ms() + STOP_GRACE_MS;
		else if (now_ms() >= deadline) {
			p->db_stop = 1;
			break;
		}
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 100 * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&p->cv, &p->mu, &ts);
	}
	pthread_mutex_unlock(&p->mu);
	for (int i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	p->nthreads = 0;
	free(p->threads);
	p->threads = NULL;
}

int
poller_start(struct poller *p, struct err *err)
{
	p->env.once = 0;
	if (start_threads(p, err) != 0) {
		poller_join(p);
		return -1;
	}
	return 0;
}

int
poller_run_once(struct poller *p)
{
	struct err err = {{0}};
	int rc = 0;

	p->env.once = 1;
	pthread_mutex_lock(&p->mu);
	for (size_t i = 0; i < p->nmb; i++) {
		p->mb[i].done = 0;
		p->mb[i].ok = 0;
		p->mb[i].busy = 0;
		p->mb[i].next_run = 0;
	}
	pthread_mutex_unlock(&p->mu);
	if (start_threads(p, &err) != 0) {
		log_error("cannot start workers", "cause", err.msg, NULL);
		rc = 1;
	}
	poller_join(p);
	for (size_t i = 0; i < p->nmb; i++)
		if (p->mb[i].present && !p->mb[i].ok)
			rc = 1;
	for (size_t i = 0; rc == 0 && i < p->nmb; i++)
		if (p->mb[i].present && p->mb[i].busy)
			rc = 3;
	return rc;
}

void
poller_reload(struct poller *p, struct config *cfg)
{
	struct cfgref *r = xcalloc(1, sizeof(*r));

	r->cfg = cfg;
	r->refs = 1;
	pthread_mutex_lock(&p->mu);
	cfg_release_locked(p->cur);
	p->cur = r;
	sync_mailboxes(p, cfg);
	/* failing mailboxes get a fresh try with the new settings */
	for (size_t i = 0; i < p->nmb; i++)
		if (p->mb[i].failures > 0)
			p->mb[i].next_run = 0;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
}
