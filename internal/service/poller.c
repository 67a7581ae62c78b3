/*
 * poller.c - scheduler, worker pool and the mailbox pass.
 * Ordering that makes the pipeline crash-safe: a message is DELEd only
 * after the transaction holding its ledger row has committed, and the
 * ledger says "deleted" only after QUIT confirmed the DELEs (RFC 1939
 * section 6: DELE marks become final in the UPDATE state).  A crash at any
 * point leaves either an unrecorded message on the server (fetched again)
 * or a recorded one (DELEd without re-recording next pass).
 */
#include "service/poller.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "decode/dsn.h"
#include "base/log.h"
#include "pop3/oauth.h"
#include "pop3/pop3.h"
#include "store/store.h"

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

/* ---- state ------------------------------------------------------------ */

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
	struct mbstate *mb;
	size_t nmb;
	volatile sig_atomic_t stop;
	/* the store's own stop flag: set only when workers overrun the
	 * shutdown grace, so the current message can still be committed */
	volatile sig_atomic_t db_stop;
	int live; /* worker threads running */
	int once;
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

static struct cfgref *
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

static void
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

/* ---- one pass ----------------------------------------------------------- */

/* PASS_BUSY: another process holds the mailbox's lock (nothing done) */
static void prober_start(struct poller *p);

enum pass_result { PASS_OK, PASS_FAILED, PASS_SKIPPED, PASS_BUSY };

/* A fetched message waiting for its batch to commit. */
struct pending {
	uint32_t msgno;
	char *uidl;
	int64_t size; /* from LIST, -1 unknown */
	struct buf raw;
	struct dsn_report *rep;
	struct store_bounce *b;
	const char **hn, **hv;
	/* decoding failed: recorded with store_record_failure() */
	int dfail;
	char derr[300];
	int fail_rc, fail_q;
	/* an earlier attempt never finished (1: in a batch, 2: alone):
	 * decoded and stored alone */
	int suspect;
};

struct pass {
	struct poller *p;
	const struct config *cfg;
	const struct mailbox_config *mc;
	struct store *st; /* the worker's connection */
	struct pop3 *pop;
	int midx;
	int64_t mailbox_id;
	uint64_t gen;
	/* counts for the pass log line */
	size_t fetched, recorded, replayed, deleted, bounces, failed,
	    quarantined, skipped_q;
	/* UIDLs DELEd in this session, marked deleted after QUIT */
	char **dele;
	size_t ndele;
	struct pending *pend;
	size_t npend;
	size_t pend_bytes;
	int no_dele; /* the POP3 session broke: commit only */
	int record_only; /* first pass with first_pass: record_only */
	struct committer *com; /* started with the first batch */
	int db_failed; /* a batch could not be recorded */
	/* where the time went, ms (logged at debug level) */
	int64_t t_retr, t_decode, t_store, t_dele;
	/* login, listing, waiting for a committer, QUIT (the server's
	 * expunge) */
	int64_t t_login, t_list, t_wait, t_quit;
	const char **xh; /* configured header names */
	size_t nxh;
};

static enum metrics_err_kind
pop3_kind(enum pop3_error e)
{
	switch (e) {
	case POP3_ERR_CONNECT:
		return METRICS_ERR_CONNECT;
	case POP3_ERR_TLS:
		return METRICS_ERR_TLS;
	case POP3_ERR_AUTH:
		return METRICS_ERR_AUTH;
	case POP3_ERR_TIMEOUT:
		return METRICS_ERR_TIMEOUT;
	case POP3_ERR_CONFIG:
	case POP3_ERR_NONE:
		return METRICS_ERR_OTHER;
	default:
		return METRICS_ERR_PROTOCOL;
	}
}

static void
set_db(struct poller *p, int ok)
{
	metrics_set_db_up(p->m, ok);
}

static void
pass_error(struct pass *ps, enum metrics_err_kind kind, const char *what,
    const char *cause)
{
	metrics_add_error(ps->p->m, ps->midx, kind);
	log_error(what, "mailbox", ps->mc->name, "kind",
	    metrics_err_kind_name(kind), "cause", cause, NULL);
}

static void
pending_clear(struct pending *pd)
{
	free(pd->uidl);
	buf_free(&pd->raw);
	dsn_free(&pd->rep);
	free(pd->b);
	free(pd->hn);
	free(pd->hv);
	memset(pd, 0, sizeof(*pd));
}

/* The lock is lost with the connection: take it again after a reconnect.
 * -1 when it cannot be held any more (the pass must end without QUIT). */
static int
relock(struct pass *ps)
{
	struct err err = {{0}};
	int locked = 0;

	if (store_generation(ps->st) == ps->gen)
		return 0;
	if (store_mailbox_trylock(ps->st, ps->mailbox_id, &locked, &err) != 0 ||
	    !locked) {
		pass_error(ps, METRICS_ERR_DATABASE, "mailbox lock lost",
		    locked ? err.msg : "taken by another process");
		return -1;
	}
	ps->gen = store_generation(ps->st);
	return 0;
}

static void
dele_add(struct pass *ps, const char *uidl)
{
	ps->dele = xrealloc(ps->dele, (ps->ndele + 1) * sizeof(*ps->dele));
	ps->dele[ps->ndele++] = xstrdup(uidl);
}

/* DELE msgnos[0..n) (pipelined when the server allows), remembering the
 * UIDL of each one the server accepted; -1 when one failed. */
static int
do_dele(struct pass *ps, const uint32_t *msgnos, char *const *uidls, size_t n)
{
	struct err err = {{0}};
	int *ok, rc;

	if (n == 0)
		return 0;
	ok = xcalloc(n, sizeof(*ok));
	int64_t t = now_ms();
	rc = pop3_dele_many(ps->pop, msgnos, n, ok, &err);
	ps->t_dele += now_ms() - t;
	for (size_t i = 0; i < n; i++)
		if (ok[i])
			dele_add(ps, uidls[i]);
	free(ok);
	if (rc != 0) {
		pass_error(ps, pop3_kind(pop3_error_kind(ps->pop)),
		    "DELE failed", err.msg);
		return -1;
	}
	return 0;
}

static void
fill_bounces(const struct pass *ps, struct pending *pd)
{
	const struct dsn_report *r = pd->rep;
	size_t n = dsn_rcpt_count(r), nh = 0;
	const char *mid = dsn_orig_header(r, "Message-ID");
	const char *camp = NULL, *list = NULL, *sub = NULL;

	pd->hn = xcalloc(ps->nxh + 1, sizeof(*pd->hn));
	pd->hv = xcalloc(ps->nxh + 1, sizeof(*pd->hv));
	for (size_t i = 0; i < ps->nxh; i++) {
		const char *v = dsn_orig_header(r, ps->xh[i]);

		if (v == NULL)
			continue;
		pd->hn[nh] = ps->xh[i];
		pd->hv[nh++] = v;
	}
	if (ps->cfg->campaign_header && *ps->cfg->campaign_header)
		camp = dsn_orig_header(r, ps->cfg->campaign_header);
	if (ps->cfg->list_header && *ps->cfg->list_header)
		list = dsn_orig_header(r, ps->cfg->list_header);
	if (ps->cfg->subscriber_header && *ps->cfg->subscriber_header)
		sub = dsn_orig_header(r, ps->cfg->subscriber_header);
	pd->b = xcalloc(n + 1, sizeof(*pd->b));
	for (size_t i = 0; i < n; i++) {
		const struct record_rcpt *rc = dsn_rcpt_at(r, i);
		struct store_bounce *b = &pd->b[i];

		b->recipient = rc->recipient;
		b->recipient_source = rc->recipient_source;
		b->final_recipient = rc->final_recipient;
		b->original_recipient = rc->original_recipient;
		b->cls = rc->cls;
		b->reason = rc->reason;
		b->rule = rc->rule;
		b->action = rc->action;
		b->status = rc->status;
		b->reply_code = rc->reply_code;
		b->diagnostic = rc->diagnostic;
		b->remote_mta = rc->remote_mta;
		b->feedback_type = rc->feedback_type;
		b->original_message_id = mid;
		b->campaign_id = camp;
		b->list_id = list;
		b->subscriber_id = sub;
		b->header_names = pd->hn;
		b->header_values = pd->hv;
		b->nheaders = nh;
		b->bounced_at = rc->date;
	}
}

/* Copies the value of header `name` of the message head (before the
 * first empty line, at most the first 64 KiB) into out, folded lines
 * joined; "" when absent.  The store repairs the bytes. */
static void
head_field(const char *raw, size_t len, const char *name, char *out,
    size_t size)
{
	size_t nl = strlen(name), i = 0, o = 0;

	out[0] = '\0';
	if (len > 65536)
		len = 65536;
	while (i < len) {
		size_t eol = i, cr = i;

		while (eol < len && raw[eol] != '\n')
			eol++;
		while (cr < eol && raw[cr] == '\r')
			cr++;
		if (cr == eol)
			return; /* end of the head (CR CR LF too) */
		if (eol - i > nl && raw[i + nl] == ':' &&
		    ascii_ncasecmp(raw + i, name, nl) == 0) {
			size_t j = i + nl + 1;

			for (;;) {
				for (; j < eol && o + 1 < size; j++) {
					if (raw[j] == '\r')
						continue;
					if ((raw[j] == ' ' || raw[j] == '\t') &&
					    (o == 0 || out[o - 1] == ' '))
						continue;
					out[o++] =
					    raw[j] == '\t' ? ' ' : raw[j];
				}
				/* a folded continuation line */
				if (eol + 1 < len &&
				    (raw[eol + 1] == ' ' ||
				        raw[eol + 1] == '\t')) {
					j = eol + 1;
					for (eol = j;
					     eol < len && raw[eol] != '\n';
					     eol++)
						;
					continue;
				}
				break;
			}
			while (o > 0 && out[o - 1] == ' ')
				o--;
			out[o] = '\0';
			return;
		}
		i = eol + 1;
	}
}

/* A batch of decoded messages on its way to the database.  Built on the
 * pass thread, committed by a committer thread, finished (DELE, failures,
 * metrics) back on the pass thread, which alone talks POP3. */
struct batch {
	struct pending *pend;
	size_t n;
	struct store_message *msgs;
	enum store_result *res;
	struct {
		char mid[512];
	} * ids;
	int rc;
	struct err err;
	int64_t ms, dms; /* time spent in the store, in decoding */
	struct batch *next;
};

static void
batch_free(struct batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		pending_clear(&b->pend[i]);
	free(b->pend);
	free(b->msgs);
	free(b->res);
	free(b->ids);
	free(b);
}

/* Committer threads: COMMITTERS store connections per pass, so that
 * recording overlaps retrieval and decoding, and several transactions run
 * at once.  At most 2 x COMMITTERS batches are in flight. */
#define COMMITTERS 2

struct committer {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct batch *todo, *todo_tail, *done;
	int inflight;
	int quit;
	int nthreads;
	pthread_t th[COMMITTERS];
	struct store *st[COMMITTERS];
	struct poller *p;
	const struct config *cfg;
	const struct pass *ps; /* read-only fields only */
};

struct committer_arg {
	struct committer *c;
	int slot;
};

static int open_store(struct poller *p, const struct config *cfg,
    struct store **stp, struct err *err);

/*
 * Why a message that decoded to no recipient looks like a bounce all the
 * same (NULL when it does not): a sender such as MAILER-DAEMON or
 * postmaster, a report content type, or a bounce subject.
 */
static const char *
bounce_look(const char *raw, size_t len)
{
	static const char *const subjects[] = {"undeliver", "returned mail",
	    "delivery status notification", "failure notice",
	    "delivery failure", "mail delivery failed", "non-delivery",
	    "could not be delivered", "delivery has failed", NULL};
	char v[512];

	head_field(raw, len, "From", v, sizeof(v));
	if (ascii_casestr(v, "mailer-daemon") != NULL ||
	    ascii_casestr(v, "postmaster") != NULL)
		return "from a mailer daemon";
	head_field(raw, len, "Content-Type", v, sizeof(v));
	if (ascii_casestr(v, "multipart/report") != NULL ||
	    ascii_casestr(v, "delivery-status") != NULL)
		return "report content type";
	head_field(raw, len, "Subject", v, sizeof(v));
	for (size_t i = 0; subjects[i] != NULL; i++)
		if (ascii_casestr(v, subjects[i]) != NULL)
			return "bounce subject";
	return NULL;
}

/* Decodes every message of a batch (committer thread). */
static void
batch_decode(const struct pass *ps, struct batch *b)
{
	struct dsn_options opt;

	memset(&opt, 0, sizeof(opt));
	opt.headers = ps->xh;
	opt.nheaders = ps->nxh;
	opt.rules = ps->cfg->classify_rules;
	opt.verp_pattern = ps->cfg->verp_pattern && *ps->cfg->verp_pattern
	    ? ps->cfg->verp_pattern
	    : NULL;
	for (size_t i = 0; i < b->n; i++) {
		struct pending *pd = &b->pend[i];
		struct err err = {{0}};

		if (pd->suspect)
			continue;
		if (dsn_parse(pd->raw.data ? pd->raw.data : "", pd->raw.len,
		        pd->raw.truncated, &opt, &pd->rep, &err) != 0) {
			pd->dfail = 1;
			snprintf(pd->derr, sizeof(pd->derr), "decode: %s",
			    err.msg);
			continue;
		}
		if (dsn_kind(pd->rep) == RECORD_KIND_UNKNOWN &&
		    dsn_rcpt_count(pd->rep) == 0) {
			const char *why =
			    bounce_look(pd->raw.data ? pd->raw.data : "",
			        pd->raw.len);

			if (why != NULL)
				log_info(
				    "looks like a bounce, but no recipient "
				    "was decoded: stored as unknown",
				    "mailbox", ps->mc->name, "uidl", pd->uidl,
				    "why", why, NULL);
		}
		fill_bounces(ps, pd);
	}
}

/* Records a decoded batch (committer thread): the decoded messages in
 * batch transactions, the undecodable ones as failures.  0 or -1 (the
 * database stayed unreachable). */
static int
batch_record(const struct pass *ps, struct store *st, struct batch *b)
{
	size_t *map = xcalloc(b->n + 1, sizeof(*map));
	enum store_result *res = xcalloc(b->n + 1, sizeof(*res));
	size_t k = 0;
	int rc = 0;

	b->msgs = xcalloc(b->n + 1, sizeof(*b->msgs));
	b->ids = xcalloc(b->n + 1, sizeof(*b->ids));
	b->res = xcalloc(b->n + 1, sizeof(*b->res));
	for (size_t i = 0; i < b->n; i++) {
		struct pending *pd = &b->pend[i];
		struct store_message *sm = &b->msgs[k];
		const struct dsn_report *r = pd->rep;
		const char *raw = pd->raw.data ? pd->raw.data : "";

		b->res[i] = STORE_PENDING;
		if (pd->dfail || pd->suspect)
			continue;
		sm->mailbox_id = ps->mailbox_id;
		sm->uidl = pd->uidl;
		sm->kind = dsn_kind(r);
		head_field(raw, pd->raw.len, "Message-ID", b->ids[k].mid,
		    sizeof(b->ids[k].mid));
		sm->email_message_id = b->ids[k].mid[0] ? b->ids[k].mid : NULL;
		/* the decoder's, RFC 2047 words decoded */
		sm->subject = dsn_subject(r);
		sm->reporting_mta = dsn_reporting_mta(r);
		sm->reported_at = dsn_date(r);
		sm->size = pd->size >= 0 ? pd->size : (int64_t)pd->raw.len;
		sm->truncated = pd->raw.truncated;
		sm->raw = pd->raw.data;
		sm->raw_len = pd->raw.len;
		sm->bounces = pd->b;
		sm->nbounces = dsn_rcpt_count(r);
		sm->record_only = ps->record_only;
		sm->max_age_s = ps->mc->poll.max_age_ms / 1000;
		res[k] = STORE_PENDING;
		map[k++] = i;
	}
	if (k > 0) {
		rc = store_record_batch(st, b->msgs, k, res, &b->err);
		for (size_t j = 0; j < k; j++)
			b->res[map[j]] = res[j];
	}
	for (size_t i = 0; i < b->n && rc == 0; i++) {
		struct pending *pd = &b->pend[i];
		struct store_failure f = {
		    .mailbox_id = ps->mailbox_id,
		    .uidl = pd->uidl,
		    .error = pd->derr,
		    .size = pd->size >= 0 ? pd->size : (int64_t)pd->raw.len,
		    .truncated = pd->raw.truncated,
		    .raw = pd->raw.data,
		    .raw_len = pd->raw.len,
		};
		struct err e2 = {{0}};

		if (!pd->dfail || pd->suspect)
			continue;
		pd->fail_rc = store_record_failure(st, &f, &pd->fail_q, &e2);
		if (pd->fail_rc != 0) {
			b->err = e2;
			rc = -1;
		}
	}
	free(map);
	free(res);
	return rc;
}

/* Marks the batch's messages in the ledger before anything decodes them
 * (committer thread), so that a message on which the process dies is
 * recognised next time: such suspects are set aside for batch_alone(). */
static int
batch_mark(const struct pass *ps, struct store *st, struct batch *b)
{
	const char **uidls = xcalloc(b->n + 1, sizeof(*uidls));
	int *suspect = xcalloc(b->n + 1, sizeof(*suspect));
	int rc;

	for (size_t i = 0; i < b->n; i++)
		uidls[i] = b->pend[i].uidl;
	rc = store_mark_trying(st, ps->mailbox_id, uidls, b->n, suspect,
	    &b->err);
	for (size_t i = 0; rc == 0 && i < b->n; i++)
		b->pend[i].suspect = suspect[i];
	free(uidls);
	free(suspect);
	return rc;
}

/* Decodes and records each suspect of a batch on its own (committer
 * thread), after the rest is committed: if it takes the process down
 * again, nothing else is held back, and the attempt is counted against
 * it alone.  One that has done so too often is quarantined undecoded. */
static int
batch_alone(const struct pass *ps, struct store *st, struct batch *b)
{
	/* those never tried alone first: a message that keeps killing the
	 * process must not hold back the ones that were beside it */
	for (size_t k = 0; k < 2 * b->n; k++) {
		size_t i = k % b->n;
		struct pending *pd = &b->pend[i];
		struct batch one;
		int q = 0, rc;

		if (pd->suspect != (k < b->n ? 1 : 2))
			continue;
		log_warn("an earlier attempt on this message never finished: "
		         "decoding it alone",
		    "mailbox", ps->mc->name, "uidl", pd->uidl, NULL);
		if (store_mark_alone(st, ps->mailbox_id, pd->uidl, &q,
		        &b->err) != 0)
			return -1;
		pd->suspect = 0;
		if (q) {
			pd->dfail = 1;
			pd->fail_q = 1;
			snprintf(pd->derr, sizeof(pd->derr),
			    "the process ended while decoding or storing it, "
			    "on several passes: quarantined");
			continue;
		}
		memset(&one, 0, sizeof(one));
		one.pend = pd;
		one.n = 1;
		batch_decode(ps, &one);
		rc = batch_record(ps, st, &one);
		b->res[i] = one.res[0];
		if (rc != 0)
			b->err = one.err;
		else if (one.res[0] == STORE_REFUSED)
			b->err = one.err; /* batch_finish reports it */
		free(one.msgs);
		free(one.res);
		free(one.ids);
		if (rc != 0)
			return -1;
	}
	return 0;
}

static void *
committer_main(void *argp)
{
	struct committer_arg *a = argp;
	struct committer *c = a->c;
	struct store **st = &c->st[a->slot];

	free(a);
	pthread_mutex_lock(&c->mu);
	for (;;) {
		struct batch *b;
		int64_t t0;

		while (c->todo == NULL && !c->quit)
			pthread_cond_wait(&c->cv, &c->mu);
		if (c->todo == NULL)
			break;
		b = c->todo;
		c->todo = b->next;
		if (c->todo == NULL)
			c->todo_tail = NULL;
		pthread_mutex_unlock(&c->mu);

		t0 = now_ms();
		b->rc = open_store(c->p, c->cfg, st, &b->err);
		if (b->rc == 0)
			b->rc = batch_mark(c->ps, *st, b);
		b->ms = now_ms() - t0;
		if (b->rc == 0) {
			t0 = now_ms();
			batch_decode(c->ps, b);
			b->dms = now_ms() - t0;
			t0 = now_ms();
			b->rc = batch_record(c->ps, *st, b);
			if (b->rc == 0)
				b->rc = batch_alone(c->ps, *st, b);
			b->ms += now_ms() - t0;
		}

		pthread_mutex_lock(&c->mu);
		b->next = c->done;
		c->done = b;
		c->inflight--;
		pthread_cond_broadcast(&c->cv);
	}
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

static struct committer *
committer_new(const struct pass *ps)
{
	struct committer *c = xcalloc(1, sizeof(*c));

	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	c->p = ps->p;
	c->cfg = ps->cfg;
	c->ps = ps;
	for (int i = 0; i < COMMITTERS; i++) {
		struct committer_arg *a = xcalloc(1, sizeof(*a));

		a->c = c;
		a->slot = i;
		if (pthread_create(&c->th[i], NULL, committer_main, a) != 0) {
			free(a);
			break;
		}
		c->nthreads++;
	}
	return c;
}

/* Waits for the threads (every batch must have been reaped). */
static void
committer_free(struct committer **cp)
{
	struct committer *c = *cp;

	if (c == NULL)
		return;
	pthread_mutex_lock(&c->mu);
	c->quit = 1;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
	for (int i = 0; i < c->nthreads; i++)
		pthread_join(c->th[i], NULL);
	for (int i = 0; i < COMMITTERS; i++)
		store_free(&c->st[i]);
	while (c->done != NULL) {
		struct batch *b = c->done;

		c->done = b->next;
		batch_free(b);
	}
	pthread_cond_destroy(&c->cv);
	pthread_mutex_destroy(&c->mu);
	free(c);
	*cp = NULL;
}

/* DELE what is committed (delete mode), record refusals, count.  -1 when
 * the database stayed unreachable. */
static int
batch_finish(struct pass *ps, struct batch *b)
{
	int del = ps->mc->poll.after_processing == CONFIG_AFTER_DELETE;
	uint64_t nrec = 0;
	int rc = -1;
	/* committed messages to DELE, in one pipelined run per batch */
	uint32_t *dn = xcalloc(b->n + 1, sizeof(*dn));
	char **du = xcalloc(b->n + 1, sizeof(*du));
	size_t nd = 0;

	ps->t_store += b->ms;
	ps->t_decode += b->dms;
	if (b->rc != 0) {
		set_db(ps->p, 0);
		pass_error(ps, METRICS_ERR_DATABASE, "recording failed",
		    b->err.msg);
		goto out;
	}
	set_db(ps->p, 1);
	for (size_t i = 0; i < b->n; i++) {
		struct pending *pd = &b->pend[i];

		if (pd->dfail) {
			pass_error(ps, METRICS_ERR_DECODE,
			    "cannot decode message", pd->derr);
			ps->failed++;
			if (pd->fail_q) {
				ps->quarantined++;
				metrics_add_error(ps->p->m, ps->midx,
				    METRICS_ERR_QUARANTINE);
			}
			continue;
		}

		if (b->res[i] == STORE_WRITTEN || b->res[i] == STORE_REPLAYED) {
			if (b->res[i] == STORE_WRITTEN) {
				size_t nb = dsn_rcpt_count(pd->rep);

				ps->recorded++;
				nrec++;
				ps->bounces += nb;
				for (size_t k = 0; k < nb; k++)
					metrics_add_bounce(ps->p->m,
					    record_class_name(pd->b[k].cls),
					    pd->b[k].reason ? pd->b[k].reason
					                    : "undefined");
			} else
				ps->replayed++;
			if (del) {
				dn[nd] = pd->msgno;
				du[nd++] = pd->uidl;
			}
		} else if (b->res[i] == STORE_REFUSED) {
			struct store_failure f = {
			    .mailbox_id = ps->mailbox_id,
			    .uidl = pd->uidl,
			    .error = b->err.msg,
			    .size = (int64_t)pd->raw.len,
			    .truncated = pd->raw.truncated,
			    .raw = pd->raw.data,
			    .raw_len = pd->raw.len,
			};
			int q = 0;
			struct err e2 = {{0}};

			pass_error(ps, METRICS_ERR_REFUSED,
			    "database refused message", b->err.msg);
			if (store_record_failure(ps->st, &f, &q, &e2) != 0) {
				pass_error(ps, METRICS_ERR_DATABASE,
				    "recording failure failed", e2.msg);
				goto out;
			}
			ps->failed++;
			if (q) {
				ps->quarantined++;
				metrics_add_error(ps->p->m, ps->midx,
				    METRICS_ERR_QUARANTINE);
			}
		}
	}
	rc = 0;
out:
	/* whatever happened later in the batch, the committed ones go */
	if (nd > 0 && !ps->no_dele && do_dele(ps, dn, du, nd) != 0)
		ps->no_dele = 1; /* the next pass DELEs them */
	free(dn);
	free(du);
	metrics_add_recorded(ps->p->m, ps->midx, nrec);
	batch_free(b);
	return rc;
}

/* Finishes the batches the committers are done with; with wait, all of
 * them.  -1 when one failed (the pass must not go on). */
static int
reap(struct pass *ps, int wait)
{
	struct committer *c = ps->com;
	struct batch *done;
	int64_t tw;
	int rc = 0;

	if (c == NULL)
		return 0;
	tw = now_ms();
	pthread_mutex_lock(&c->mu);
	while (wait && c->inflight > 0)
		pthread_cond_wait(&c->cv, &c->mu);
	ps->t_wait += now_ms() - tw;
	done = c->done;
	c->done = NULL;
	pthread_mutex_unlock(&c->mu);
	while (done != NULL) {
		struct batch *b = done;

		done = b->next;
		if (batch_finish(ps, b) != 0)
			rc = -1;
	}
	if (rc != 0)
		ps->db_failed = 1;
	return ps->db_failed ? -1 : 0;
}

/* Hands the pending messages to the committers as one batch (waiting
 * while too many are in flight), then finishes whatever is done.  -1 when
 * the database failed. */
static int
flush(struct pass *ps)
{
	struct batch *b;
	int64_t tw;

	if (ps->npend == 0)
		return reap(ps, 0);
	if (ps->com == NULL)
		ps->com = committer_new(ps);
	b = xcalloc(1, sizeof(*b));
	b->pend = ps->pend;
	b->n = ps->npend;
	ps->pend = NULL;
	ps->npend = 0;
	ps->pend_bytes = 0;
	tw = now_ms();
	pthread_mutex_lock(&ps->com->mu);
	while (ps->com->inflight >= 2 * COMMITTERS)
		pthread_cond_wait(&ps->com->cv, &ps->com->mu);
	ps->t_wait += now_ms() - tw;
	if (ps->com->todo_tail != NULL)
		ps->com->todo_tail->next = b;
	else
		ps->com->todo = b;
	ps->com->todo_tail = b;
	ps->com->inflight++;
	pthread_cond_broadcast(&ps->com->cv);
	pthread_mutex_unlock(&ps->com->mu);
	return reap(ps, 0);
}

/* Raw bytes of all pending messages above which the batch is committed
 * early, so memory stays bounded whatever batch_size says. */
#define PEND_BYTES_MAX (4u << 20)

/* RETR, decode, queue for recording.  -1 when the POP3 session broke. */
static int
process_one(struct pass *ps, const struct pop3_entry *e)
{
	struct err err = {{0}};
	struct pending pd;

	memset(&pd, 0, sizeof(pd));
	buf_init(&pd.raw,
	    ps->mc->poll.max_message_bytes > 0
	        ? (size_t)ps->mc->poll.max_message_bytes
	        : (size_t)32 << 20);
	int64_t t0 = now_ms();
	int rrc = pop3_retr(ps->pop, e->msgno, &pd.raw, &err);

	ps->t_retr += now_ms() - t0;
	if (rrc != 0) {
		pass_error(ps, pop3_kind(pop3_error_kind(ps->pop)),
		    "RETR failed", err.msg);
		buf_free(&pd.raw);
		return -1;
	}
	ps->fetched++;
	metrics_add_fetched(ps->p->m, ps->midx, 1);
	if (pd.raw.truncated) {
		metrics_add_error(ps->p->m, ps->midx, METRICS_ERR_OVERSIZE);
		log_warn("message over max_message_bytes: decoding its head",
		    "mailbox", ps->mc->name, "uidl", e->uidl, NULL);
	}
	pd.msgno = e->msgno;
	pd.uidl = xstrdup(e->uidl);
	pd.size = e->size;
	ps->pend = xrealloc(ps->pend, (ps->npend + 1) * sizeof(*ps->pend));
	ps->pend[ps->npend++] = pd;
	ps->pend_bytes += pd.raw.len;
	if (ps->npend >=
	        (size_t)(ps->cfg->batch_size > 0 ? ps->cfg->batch_size : 50) ||
	    ps->pend_bytes >= PEND_BYTES_MAX)
		return flush(ps) == 0 ? 0 : -2;
	return 0;
}

static int
open_store(struct poller *p, const struct config *cfg, struct store **stp,
    struct err *err)
{
	struct store_options o;

	if (*stp != NULL)
		return 0;
	memset(&o, 0, sizeof(o));
	o.conninfo = p->db_url;
	o.batch_size = cfg->batch_size;
	o.raw_max_bytes = (int64_t)cfg->raw_max_bytes;
	o.backoff_initial_ms = 200;
	o.backoff_max_ms = 5000;
	o.reconnect_attempts = 8;
	o.connect_timeout_s = 5;
	o.stop = &p->db_stop;
	if (store_open(&o, stp, err) != 0)
		return -1;
	return 0;
}

static void
collect_headers(struct pass *ps)
{
	const struct config *c = ps->cfg;
	const char *cand[3] = {c->campaign_header, c->list_header,
	    c->subscriber_header};

	ps->xh = xcalloc(3 + c->n_extra_headers + 1, sizeof(*ps->xh));
	for (int i = 0; i < 3; i++)
		if (cand[i] != NULL && *cand[i])
			ps->xh[ps->nxh++] = cand[i];
	for (size_t i = 0; i < c->n_extra_headers; i++)
		ps->xh[ps->nxh++] = c->extra_headers[i];
}

static int
get_token(struct pass *ps, int force, char **token_out, struct err *err)
{
	enum oauth_source src = OAUTH_SRC_CACHE;
	int rc;

	rc = oauth_get_token(ps->p->oauth, ps->mc, force, token_out, &src, err);
	if (src == OAUTH_SRC_FETCHED) {
		metrics_add_token(ps->p->m, ps->midx, rc == 0);
		if (rc == 0)
			log_debug("oauth token obtained", "mailbox",
			    ps->mc->name, NULL);
	}
	return rc;
}

/* token: the XOAUTH2 bearer token (NULL for password mailboxes). */
static struct pop3 *
open_pop3(struct pass *ps, const char *token, struct err *err)
{
	const struct mailbox_config *mc = ps->mc;
	struct pop3_options o;

	memset(&o, 0, sizeof(o));
	o.mailbox_name = mc->name;
	o.host = mc->host;
	o.port = mc->port;
	o.tls = mc->tls == CONFIG_TLS_STARTTLS ? POP3_TLS_STARTTLS
	    : mc->tls == CONFIG_TLS_NONE       ? POP3_TLS_NONE
	                                       : POP3_TLS_IMPLICIT;
	o.ca_file = mc->ca_file;
	o.username = mc->username;
	if (mc->auth == CONFIG_AUTH_XOAUTH2) {
		o.auth = POP3_AUTH_XOAUTH2;
		o.bearer_token = token;
	} else {
		o.auth = mc->auth == CONFIG_AUTH_APOP ? POP3_AUTH_APOP
		                                      : POP3_AUTH_DEFAULT;
		o.password = mc->password;
	}
	o.connect_timeout_ms = (long)mc->poll.connect_timeout_ms;
	o.command_timeout_ms = (long)mc->poll.command_timeout_ms;
	o.stop = &ps->p->stop; /* SIGTERM ends a stalled transfer at once */
	o.max_message_bytes = (size_t)mc->poll.max_message_bytes;
	return pop3_new(&o, err);
}

static int
cmp_entry_key(const void *a, const void *b)
{
	const struct pop3_entry *x = *(const struct pop3_entry *const *)a;
	const struct pop3_entry *y = *(const struct pop3_entry *const *)b;
	int c = strcmp(x->uidl, y->uidl);

	return c != 0 ? c : (x->msgno > y->msgno) - (x->msgno < y->msgno);
}

/*
 * Keys listed more than once in ent[0..*n) (message-number order within
 * each run): the 2nd ... 9th of a run get "-2" ... "-9" appended; any
 * further copies, and keys too long to take a suffix, are left out of the
 * listing, to wait for a later pass.  Returns how many were left out.
 */
static size_t
suffix_same_keys(struct pop3_entry *ent, size_t *n)
{
	struct pop3_entry **ix;
	size_t i, j, out;

	ix = xcalloc(*n + 1, sizeof(*ix));
	for (i = 0; i < *n; i++)
		ix[i] = &ent[i];
	qsort(ix, *n, sizeof(*ix), cmp_entry_key);
	for (i = 0; i < *n; i = j) {
		for (j = i + 1; j < *n && strcmp(ix[j]->uidl, ix[i]->uidl) == 0;
		     j++) {
			size_t k = j - i + 1, len = strlen(ix[j]->uidl);

			if (k <= 9 && len + 2 <= POP3_UIDL_MAX)
				snprintf(ix[j]->uidl + len, 3, "-%zu", k);
			else
				ix[j]->uidl[0] = '\0'; /* a later pass */
		}
	}
	free(ix);
	for (i = 0, out = 0; i < *n; i++)
		if (ent[i].uidl[0] != '\0')
			ent[out++] = ent[i];
	i = *n - out;
	*n = out;
	return i;
}

/*
 * Messages the server gave the same UIDL (RFC 1939 forbids it; servers
 * that derive ids from content do it): each is retrieved and keyed by
 * pop3_content_key() (its UIDL and its content), copies alike in both
 * numbered by suffix_same_keys().  Logged once per pass at warn and
 * counted (errors, kind duplicate_uidl); the rest of the mailbox goes
 * on as usual.  0, or -1 with err set (the session broke).
 */
static int
rekey_duplicates(struct pass *ps, struct pop3_entry *ent, size_t *n,
    struct err *err)
{
	struct pop3_entry **ix;
	struct buf b;
	size_t i, j, ndup = 0, late;
	char first[POP3_UIDL_MAX + 1] = "", num[24];
	int rc = 0;

	if (*n < 2)
		return 0;
	ix = xcalloc(*n + 1, sizeof(*ix));
	for (i = 0; i < *n; i++)
		ix[i] = &ent[i];
	qsort(ix, *n, sizeof(*ix), cmp_entry_key);
	buf_init(&b,
	    ps->mc->poll.max_message_bytes > 0
	        ? (size_t)ps->mc->poll.max_message_bytes
	        : (size_t)32 << 20);
	for (i = 0; i < *n && rc == 0; i = j) {
		for (j = i + 1; j < *n && strcmp(ix[j]->uidl, ix[i]->uidl) == 0;
		     j++)
			;
		if (j - i < 2)
			continue;
		if (first[0] == '\0')
			memcpy(first, ix[i]->uidl, sizeof(first));
		for (size_t k = i; k < j && rc == 0; k++) {
			char uidl[POP3_UIDL_MAX + 1];

			if (ps->p->stop) {
				err_set(err, "interrupted");
				rc = -1;
				break;
			}
			if (pop3_retr(ps->pop, ix[k]->msgno, &b, err) != 0) {
				rc = -1;
				break;
			}
			memcpy(uidl, ix[k]->uidl, sizeof(uidl));
			pop3_content_key(uidl, b.data ? b.data : "", b.len,
			    ix[k]->uidl);
			ndup++;
		}
	}
	buf_free(&b);
	free(ix);
	if (ndup == 0 || rc != 0)
		return rc;
	late = suffix_same_keys(ent, n);
	for (i = 0; i < ndup; i++)
		metrics_add_error(ps->p->m, ps->midx, METRICS_ERR_DUP_UIDL);
	snprintf(num, sizeof(num), "%zu", ndup);
	log_warn("server gave several messages the same UIDL: keyed by "
	         "UIDL and content",
	    "mailbox", ps->mc->name, "host", ps->mc->host, "messages", num,
	    "uidl", first, NULL);
	if (late > 0)
		log_warn("more than 9 identical messages share a UIDL: the "
		         "rest wait for a later pass",
		    "mailbox", ps->mc->name, "host", ps->mc->host, NULL);
	return 0;
}

/*
 * For a server without UIDL: a new session, LIST, and each message keyed
 * by a digest of its header block (TOP n 0).  Messages whose header blocks
 * are identical get "-2" ... "-9" appended, in message-number order; any
 * further copies wait for a later pass (left out of the listing).  0, or
 * -1 with err set (the session is then unusable).
 */
static int
scan_by_header(struct pass *ps, const char *token, size_t window,
    struct pop3_entry **ent, size_t *nent, size_t *total, struct err *err)
{
	size_t n = 0, i;

	pop3_free(&ps->pop); /* QUIT: nothing was DELEd */
	if ((ps->pop = open_pop3(ps, token, err)) == NULL ||
	    pop3_connect(ps->pop, err) != 0 ||
	    pop3_list(ps->pop, ent, &n, err) != 0)
		return -1;
	*total = n;
	if (n > window)
		n = window; /* the listing's first, oldest, ones */
	for (i = 0; i < n && !ps->p->stop; i++)
		if (pop3_top_key(ps->pop, (*ent)[i].msgno, (*ent)[i].uidl,
		        err) != 0)
			return -1;
	if (i < n) {
		err_set(err, "interrupted");
		return -1;
	}
	if (suffix_same_keys(*ent, &n) > 0)
		log_warn("more than 9 messages with the same header block: "
		         "the rest wait for a later pass",
		    "mailbox", ps->mc->name, NULL);
	*nent = n;
	return 0;
}

/*
 * How many of the oldest messages a pass lists.  In delete mode a pass
 * takes max_messages new ones; the window leaves room for those the
 * ledger says are recorded (DELEd without fetching), failed or
 * quarantined, so a mailbox of a million messages is listed a few
 * thousand at a time and worked off oldest first over several passes.
 * Keep mode lists everything: the whole list tells which messages are
 * new and which are gone.
 */
static size_t
listing_window(const struct mailbox_config *mc)
{
	size_t m =
	    mc->poll.max_messages > 0 ? (size_t)mc->poll.max_messages : 500;

	if (mc->poll.after_processing != CONFIG_AFTER_DELETE)
		return SIZE_MAX;
	return m * 4 > 2000 ? m * 4 : 2000;
}

static enum pass_result
run_pass(struct poller *p, const struct config *cfg, const char *name, int midx,
    struct store **stp)
{
	struct pass ps;
	struct err err = {{0}};
	struct pop3_entry *ent = NULL;
	size_t nent = 0, ntodo = 0, nd = 0;
	uint32_t *dn = NULL; /* recorded before: to DELE */
	char **du = NULL;
	const char **uidls = NULL;
	struct store_uidl_info *info = NULL;
	char *token = NULL;
	enum pass_result res = PASS_FAILED;
	int locked = 0, pop_broken = 0, db_broken = 0, lock_lost = 0, rc;
	int64_t t0 = now_ms(), now = now_unix();
	int64_t tl;
	int del, partial = 0;
	size_t total = 0, window, ntake, *take = NULL;
	uint32_t *tno = NULL;
	int64_t *tsz = NULL;
	char nums[10][24];

	memset(&ps, 0, sizeof(ps));
	ps.p = p;
	ps.cfg = cfg;
	ps.midx = midx;
	ps.mc = config_mailbox(cfg, name);
	if (ps.mc == NULL)
		return PASS_SKIPPED;
	del = ps.mc->poll.after_processing == CONFIG_AFTER_DELETE;
	window = listing_window(ps.mc);
	collect_headers(&ps);
	if (open_store(p, cfg, stp, &err) != 0) {
		set_db(p, 0);
		pass_error(&ps, METRICS_ERR_DATABASE, "database unreachable",
		    err.msg);
		goto out;
	}
	ps.st = *stp;
	if (store_mailbox_id(ps.st, name, ps.mc->host, ps.mc->username,
	        &ps.mailbox_id, &err) != 0 ||
	    store_mailbox_trylock(ps.st, ps.mailbox_id, &locked, &err) != 0) {
		set_db(p, 0);
		pass_error(&ps, METRICS_ERR_DATABASE, "database error",
		    err.msg);
		goto out;
	}
	set_db(p, 1);
	if (!locked) {
		/* another replica is on it: normal for several processes,
		 * worth a line for --once, whose exit status says so */
		if (p->once)
			log_info("mailbox locked by another process: skipped",
			    "mailbox", name, NULL);
		else
			log_debug("mailbox locked by another process: skipped",
			    "mailbox", name, NULL);
		res = PASS_BUSY;
		goto out;
	}
	ps.gen = store_generation(ps.st);
	if (ps.mc->poll.first_pass == CONFIG_FIRST_RECORD_ONLY &&
	    store_mailbox_first_pass(ps.st, ps.mailbox_id, &ps.record_only,
	        &err) != 0) {
		pass_error(&ps, METRICS_ERR_DATABASE, "database error",
		    err.msg);
		goto out;
	}
	if (ps.mc->auth == CONFIG_AUTH_XOAUTH2 &&
	    get_token(&ps, 0, &token, &err) != 0) {
		pass_error(&ps, METRICS_ERR_AUTH, "oauth token request failed",
		    err.msg);
		goto out;
	}
	if ((ps.pop = open_pop3(&ps, token, &err)) == NULL) {
		pass_error(&ps, METRICS_ERR_OTHER, "mailbox settings", err.msg);
		goto out;
	}
	tl = now_ms();
	rc = pop3_connect(ps.pop, &err);
	if (rc != 0 && ps.mc->auth == CONFIG_AUTH_XOAUTH2 &&
	    pop3_error_kind(ps.pop) == POP3_ERR_AUTH) {
		/* The server refused the token (expired or revoked early):
		 * renew it once and log in once more, never in a loop. */
		log_warn("xoauth2 login refused; renewing the token once",
		    "mailbox", name, "cause", err.msg, NULL);
		pop3_abort(&ps.pop);
		free(token);
		token = NULL;
		if (get_token(&ps, 1, &token, &err) != 0) {
			pass_error(&ps, METRICS_ERR_AUTH,
			    "oauth token request failed", err.msg);
			goto out;
		}
		if ((ps.pop = open_pop3(&ps, token, &err)) == NULL) {
			pass_error(&ps, METRICS_ERR_OTHER, "mailbox settings",
			    err.msg);
			goto out;
		}
		rc = pop3_connect(ps.pop, &err);
	}
	if (rc == 0)
		log_debug("logged in", "mailbox", name, "mechanism",
		    pop3_login_mechanism(ps.pop), "capa",
		    pop3_capabilities(ps.pop), "apop_greeting",
		    pop3_greeting_apop(ps.pop) ? "yes" : "no", "dele",
		    pop3_pipelining(ps.pop) ? "pipelined" : "one at a time",
		    NULL);
	ps.t_login = now_ms() - tl;
	tl = now_ms();
	if (rc == 0 &&
	    pop3_scan_first(ps.pop, window, &ent, &nent, &total, &err) != 0) {
		rc = -1;
		if (pop3_error_kind(ps.pop) == POP3_ERR_NO_UIDL) {
			log_info("server has no UIDL: keying messages by "
			         "their header block (TOP n 0)",
			    "mailbox", name, "cause", err.msg, NULL);
			free(ent);
			ent = NULL;
			nent = 0;
			rc = scan_by_header(&ps, token, window, &ent, &nent,
			    &total, &err);
		}
	} else if (rc == 0)
		rc = rekey_duplicates(&ps, ent, &nent, &err);
	ps.t_list = now_ms() - tl;
	partial = rc == 0 && nent < total;
	if (partial) {
		char nt[24], nw[24];

		snprintf(nt, sizeof(nt), "%zu", total);
		snprintf(nw, sizeof(nw), "%zu", nent);
		log_info("mailbox holds more messages than a pass takes: "
		         "the oldest listed, the rest on later passes",
		    "mailbox", name, "messages", nt, "listed", nw, NULL);
	}
	if (rc != 0) {
		pass_error(&ps,
		    ps.pop ? pop3_kind(pop3_error_kind(ps.pop))
		           : METRICS_ERR_OTHER,
		    "POP3 session failed", err.msg);
		pop_broken = 1;
		goto out;
	}
	uidls = xcalloc(nent + 1, sizeof(*uidls));
	info = xcalloc(nent + 1, sizeof(*info));
	for (size_t i = 0; i < nent; i++)
		uidls[i] = ent[i].uidl;
	if (store_uidl_states(ps.st, ps.mailbox_id, uidls, nent, info, &err) !=
	        0 ||
	    relock(&ps) != 0) {
		set_db(p, 0);
		pass_error(&ps, METRICS_ERR_DATABASE, "ledger lookup failed",
		    err.msg);
		db_broken = 1;
		goto out;
	}
	/* Recorded before (a pass that ended before QUIT, or keep mode):
	 * DELE without recording again. */
	dn = xcalloc(nent + 1, sizeof(*dn));
	du = xcalloc(nent + 1, sizeof(*du));
	for (size_t i = 0; i < nent && !p->stop; i++) {
		if (info[i].state == STORE_UIDL_QUARANTINED) {
			ps.skipped_q++;
			continue;
		}
		if (info[i].state == STORE_UIDL_NEW) {
			ntodo++;
			continue;
		}
		if (del ||
		    (ps.mc->poll.keep_days > 0 && info[i].fetched_at > 0 &&
		        info[i].fetched_at <
		            now - (int64_t)ps.mc->poll.keep_days * 86400)) {
			dn[nd] = ent[i].msgno;
			du[nd++] = ent[i].uidl;
		}
	}
	if (do_dele(&ps, dn, du, nd) != 0) {
		pop_broken = 1;
		goto out;
	}
	/* the messages this pass fetches, in order: the next few are asked
	 * for ahead of their turn where the server pipelines */
	ntake = 0;
	take = xcalloc(nent + 1, sizeof(*take));
	tno = xcalloc(nent + 1, sizeof(*tno));
	tsz = xcalloc(nent + 1, sizeof(*tsz));
	for (size_t i = 0; i < nent; i++) {
		if (info[i].state != STORE_UIDL_NEW)
			continue;
		if (ps.mc->poll.max_messages > 0 &&
		    ntake >= (size_t)ps.mc->poll.max_messages)
			break;
		take[ntake] = i;
		tno[ntake] = ent[i].msgno;
		tsz[ntake++] = ent[i].size;
	}
	for (size_t k = 0; k < ntake && !p->stop; k++) {
		int r;

		if (ps.mc->poll.pass_timeout_ms > 0 &&
		    now_ms() - t0 >= ps.mc->poll.pass_timeout_ms) {
			log_warn("pass_timeout reached: what was fetched is "
			         "recorded, the rest waits for the next pass",
			    "mailbox", name, NULL);
			break;
		}
		if (pop3_retr_ahead(ps.pop, tno + k, tsz + k, ntake - k,
		        &err) != 0) {
			pass_error(&ps, pop3_kind(pop3_error_kind(ps.pop)),
			    "RETR failed", err.msg);
			pop_broken = 1;
			break;
		}
		r = process_one(&ps, &ent[take[k]]);
		if (r == -1) {
			pop_broken = 1;
			break;
		}
		if (r == -2) {
			db_broken = 1;
			break;
		}
	}
	/* Commit what was fetched, whatever happened to the session. */
	ps.no_dele = pop_broken;
	if (!db_broken && flush(&ps) != 0)
		db_broken = 1;
	/* every batch in flight: committed ones are DELEd even if another
	 * failed */
	if (reap(&ps, 1) != 0)
		db_broken = 1;
	if (store_generation(ps.st) != ps.gen && relock(&ps) != 0)
		lock_lost = 1;
	if (pop_broken || db_broken || lock_lost)
		goto out;
	tl = now_ms();
	rc = pop3_quit(ps.pop, &err);
	ps.t_quit = now_ms() - tl;
	if (rc != 0) {
		pass_error(&ps, pop3_kind(pop3_error_kind(ps.pop)),
		    "QUIT not confirmed: deletions not final", err.msg);
		pop_broken = 1;
		goto out;
	}
	ps.deleted = ps.ndele;
	metrics_add_deleted(p->m, midx, ps.ndele);
	if (ps.ndele > 0 &&
	    store_mark_deleted(ps.st, ps.mailbox_id,
	        (const char *const *)ps.dele, ps.ndele, &err) != 0) {
		/* harmless: the next pass finds them gone (store_prune) */
		pass_error(&ps, METRICS_ERR_DATABASE, "marking deleted failed",
		    err.msg);
		db_broken = 1;
		goto out;
	}
	/* retention: raw bytes, bounce months and ledger rows past it */
	if (store_prune(ps.st, ps.mailbox_id, partial ? NULL : uidls,
	        partial ? 0 : nent,
	        cfg->retention_raw_ms > 0 ? cfg->retention_raw_ms / 1000 : -1,
	        NULL, &err) != 0 ||
	    store_apply_retention(ps.st, cfg->retention_bounces_ms / 1000,
	        cfg->retention_ledger_ms / 1000, NULL, &err) != 0) {
		pass_error(&ps, METRICS_ERR_DATABASE, "prune failed", err.msg);
		db_broken = 1;
		goto out;
	}
	/* suppressions whose soft bounces left the window since the last
	 * pass of any mailbox (an index lookup when none did) */
	if (store_suppression_expire(ps.st, NULL, &err) != 0) {
		pass_error(&ps, METRICS_ERR_DATABASE,
		    "suppression expiry failed", err.msg);
		db_broken = 1;
		goto out;
	}
	/* first_pass: record_only ends once the backlog has been seen */
	if (ps.record_only && !p->stop && !partial &&
	    ps.fetched + ps.failed >= ntodo &&
	    store_mailbox_first_pass_done(ps.st, ps.mailbox_id, &err) != 0) {
		pass_error(&ps, METRICS_ERR_DATABASE, "database error",
		    err.msg);
		db_broken = 1;
		goto out;
	}
	res = p->stop && ps.fetched < ntodo &&
	        (ps.mc->poll.max_messages <= 0 ||
	            ps.fetched < (size_t)ps.mc->poll.max_messages)
	    ? PASS_FAILED
	    : PASS_OK;
	if (p->stop && res == PASS_FAILED)
		log_info("pass interrupted by shutdown", "mailbox", name, NULL);
out:
	ps.no_dele = ps.no_dele || pop_broken || lock_lost;
	if (ps.npend > 0 && ps.st != NULL && !db_broken)
		flush(&ps);
	reap(&ps, 1);
	committer_free(&ps.com);
	for (size_t i = 0; i < ps.npend; i++)
		pending_clear(&ps.pend[i]);
	if (ps.pop != NULL) {
		if (lock_lost)
			pop3_abort(&ps.pop);
		else
			pop3_free(&ps.pop); /* QUIT: only committed DELEs */
	}
	if (locked && ps.st != NULL && !lock_lost) {
		struct err e2 = {{0}};

		store_mailbox_unlock(ps.st, ps.mailbox_id, &e2);
	}
	if (res != PASS_SKIPPED && res != PASS_BUSY) {
		double secs = (double)(now_ms() - t0) / 1000.0;

		metrics_pass(p->m, midx, secs, res == PASS_OK, now_unix());
		snprintf(nums[0], sizeof(nums[0]), "%zu", ps.fetched);
		snprintf(nums[1], sizeof(nums[1]), "%zu", ps.recorded);
		snprintf(nums[2], sizeof(nums[2]), "%zu", ps.deleted);
		snprintf(nums[3], sizeof(nums[3]), "%zu", ps.bounces);
		snprintf(nums[4], sizeof(nums[4]), "%zu", ps.failed);
		snprintf(nums[5], sizeof(nums[5]), "%.3f", secs);
		snprintf(nums[6], sizeof(nums[6]), "%zu", ps.skipped_q);
		snprintf(nums[7], sizeof(nums[7]), "%zu", nent);
		snprintf(nums[8], sizeof(nums[8]), "%zu", ps.quarantined);
		snprintf(nums[9], sizeof(nums[9]), "%zu", ps.replayed);
		{
			const int64_t v[8] = {ps.t_login, ps.t_list, ps.t_retr,
			    ps.t_decode, ps.t_store, ps.t_wait, ps.t_dele,
			    ps.t_quit};
			char tm[8][24];

			for (int i = 0; i < 8; i++)
				snprintf(tm[i], sizeof(tm[i]), "%lld",
				    (long long)v[i]);
			log_debug("pass timing", "mailbox", name, "login_ms",
			    tm[0], "list_ms", tm[1], "retr_ms", tm[2],
			    "decode_ms", tm[3], "store_ms", tm[4], "wait_ms",
			    tm[5], "dele_ms", tm[6], "quit_ms", tm[7], NULL);
		}
		log_kv(res == PASS_OK ? LOG_INFO : LOG_WARN,
		    res == PASS_OK ? "pass done" : "pass failed", "mailbox",
		    name, "listed", nums[7], "fetched", nums[0], "recorded",
		    nums[1], "deleted", nums[2], "bounces", nums[3], "failed",
		    nums[4], "quarantined", nums[8], "skipped_quarantined",
		    nums[6], "replayed", nums[9], "seconds", nums[5], NULL);
	}
	for (size_t i = 0; i < ps.ndele; i++)
		free(ps.dele[i]);
	free(ps.dele);
	free(ps.pend);
	free(ps.xh);
	free(uidls);
	free(dn);
	free(du);
	free(take);
	free(tno);
	free(tsz);
	free(info);
	free(ent);
	free(token);
	return res;
}

/* ---- scheduler and workers ------------------------------------------- */

static void *
worker(void *arg)
{
	struct poller *p = arg;
	struct store *st = NULL;

	pthread_mutex_lock(&p->mu);
	while (!p->stop) {
		int64_t now = now_ms(), wake = now + 1000;
		struct mbstate *pick = NULL;
		size_t idx = 0;
		int pending = 0;
		enum pass_result res;
		struct cfgref *ref;
		char *name;
		int midx;

		for (size_t i = 0; i < p->nmb; i++) {
			struct mbstate *s = &p->mb[i];

			if (!s->present || (p->once && s->done))
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

			if (p->once && pending == 0)
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

		res = run_pass(p, ref->cfg, name, midx, &st);

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
	store_free(&st);
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
	p->once = 0;
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

	p->once = 1;
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

/* ---- health ---------------------------------------------------------- */

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
		o.reconnect_attempts = 1;
		o.backoff_initial_ms = 50;
		o.backoff_max_ms = 100;
		o.connect_timeout_s = 2;
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

/* Starts the prober once, whatever the mode; poller_free stops it. */
static void
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
	char tmp[64];
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
		snprintf(tmp, sizeof(tmp), ":{\"ok\":%s,\"last_success\":%lld}",
		    ok ? "true" : "false", (long long)last);
		buf_append_str(&mbj, tmp);
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
