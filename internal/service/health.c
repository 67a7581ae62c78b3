/*
 * health.c - /healthz: the database is probed on a thread of its own,
 * every 2 s, on a connection of its own, so a hung or slow database never
 * holds the HTTP thread; each mailbox is healthy while its passes
 * succeed within three intervals (poller_mailbox_healthy).
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base/log.h"
#include "service/poller_int.h"
#include "store/store.h"

/*
 * The database's health is probed on a thread of its own, every 2 s, on a
 * connection of its own; /healthz only reads the last result, so a hung
 * or slow database never holds the HTTP thread.  A probe still running
 * after HEALTH_STUCK_MS counts as a failure.  libpq's text goes to the
 * log (when the state changes), never to the HTTP answer.
 */
#define HEALTH_EVERY_MS 2000
#define HEALTH_STUCK_MS 10000

static void
probe_once(struct poller *p)
{
	struct err err = {{0}};
	int pending, ok, was;

	pthread_mutex_lock(&p->hmu);
	p->hstarted = now_ms();
	pthread_mutex_unlock(&p->hmu);
	if (p->hstore == NULL) {
		struct store_options o;

		memset(&o, 0, sizeof(o));
		o.conninfo = p->db_url;
		o.reconnect = STORE_RECONNECT_PROBE;
		o.application_name = "bouncerd-health";
		o.stop = &p->hquit;
		ok = store_open(&o, &p->hstore, &err) == 0;
	} else
		ok = 1;
	if (ok)
		ok = store_pending_migrations(p->hstore, &pending, &err) == 0;
	pthread_mutex_lock(&p->hmu);
	was = p->hdb_ok;
	p->hdb_ok = ok;
	p->hchecked = now_ms();
	p->hstarted = 0;
	pthread_mutex_unlock(&p->hmu);
	if (!ok && (was || p->hfirst))
		log_warn("health: database probe failed", "cause", err.msg,
		    NULL);
	else if (ok && !was && !p->hfirst)
		log_info("health: database probe ok again", NULL);
	p->hfirst = 0;
}

static void *
prober(void *arg)
{
	struct poller *p = arg;

	while (!p->hquit) {
		probe_once(p);
		for (int i = 0; i < HEALTH_EVERY_MS / 100 && !p->hquit; i++) {
			struct timespec ts = {0, 100 * 1000000L};

			nanosleep(&ts, NULL);
		}
	}
	return NULL;
}

void
prober_start(struct poller *p)
{
	pthread_mutex_lock(&p->hmu);
	if (!p->hrunning && pthread_create(&p->hthread, NULL, prober, p) == 0)
		p->hrunning = 1;
	pthread_mutex_unlock(&p->hmu);
}

static int
db_healthy(struct poller *p)
{
	int ok;

	prober_start(p);
	/* just started: give the first probe its connect timeout */
	for (int i = 0; i < 60; i++) {
		struct timespec ts = {0, 50 * 1000000L};
		int64_t done;

		pthread_mutex_lock(&p->hmu);
		done = p->hchecked;
		pthread_mutex_unlock(&p->hmu);
		if (done != 0)
			break;
		nanosleep(&ts, NULL);
	}
	pthread_mutex_lock(&p->hmu);
	ok = p->hchecked != 0 && p->hdb_ok &&
	    !(p->hstarted != 0 && now_ms() - p->hstarted > HEALTH_STUCK_MS);
	pthread_mutex_unlock(&p->hmu);
	return ok;
}

int
poller_health(struct poller *p, struct buf *out)
{
	struct cfgref *ref = cfg_acquire(p);
	const struct config *cfg = ref->cfg;
	int db_ok, all_ok;
	int64_t now = now_unix();
	struct buf mbj, fail;

	db_ok = db_healthy(p);
	all_ok = db_ok;
	/* one look at each mailbox feeds both "failing" and "mailboxes" */
	buf_init(&mbj, 1 << 20);
	buf_init(&fail, 1 << 20);
	for (size_t i = 0; i < cfg->n_mailboxes; i++) {
		const struct mailbox_config *mc = &cfg->mailboxes[i];
		int midx = metrics_mailbox(p->m, mc->name);
		int64_t last = metrics_last_success(p->m, midx);
		int ok = poller_mailbox_healthy(last, p->started, now,
		    mc->poll.interval_ms, mc->poll.jitter_ms);

		if (!ok) {
			all_ok = 0;
			if (fail.len > 0)
				buf_append_str(&fail, ",");
			buf_append_json_str(&fail, mc->name);
		}
		if (mbj.len > 0)
			buf_append_str(&mbj, ",");
		buf_append_json_str(&mbj, mc->name);
		buf_appendf(&mbj, ":{\"ok\":%s,\"last_success\":%lld}",
		    ok ? "true" : "false", (long long)last);
	}
	buf_append_str(out,
	    all_ok ? "{\"status\":\"ok\"," : "{\"status\":\"fail\",");
	buf_append_str(out, "\"database\":");
	buf_append_json_str(out, db_ok ? "ok" : "unreachable");
	buf_append_str(out, ",\"failing\":[");
	buf_append(out, fail.data, fail.len);
	buf_append_str(out, "],\"mailboxes\":{");
	buf_append(out, mbj.data, mbj.len);
	buf_append_str(out, "}}\n");
	buf_free(&mbj);
	buf_free(&fail);
	cfg_release(p, ref);
	return all_ok ? 200 : 503;
}
