/*
 * batch.c - the middle of a pass: messages read by RETR wait in a batch;
 * committer threads (each with its own database connection) mark the
 * batch in the ledger, decode it, apply the policy step and record it in
 * one transaction, while the pass goes on reading; the pass then DELEs
 * what is committed.  Decoding and recording run on the committer
 * threads, never on the pass's.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "service/pass_int.h"
#include "service/policy.h"

/* Committer threads: COMMITTERS store connections (the worker's, kept
 * from pass to pass), so that recording overlaps retrieval and decoding,
 * and several transactions run at once.  At most 2 x COMMITTERS batches
 * are in flight. */
#define COMMITTERS PASS_COMMITTERS

/* A batch goes to a committer at batch_size messages, or earlier: at
 * PEND_BYTES_MAX raw bytes, so memory stays bounded whatever batch_size
 * says, and PEND_MS_MAX after its first message was read, so that on a
 * slow server what was read is committed (and DELEd) as the pass goes. */
#define PEND_BYTES_MAX (4u << 20)
#define PEND_MS_MAX 2000

struct batch {
	struct pending *pend;
	size_t n;
	struct store_message *msgs;
	enum store_result *res;
	int rc;
	struct err err;
	int64_t ms, dms; /* time spent in the store, in decoding (us) */
	struct batch *next;
};

struct committer {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct batch *todo, *todo_tail, *done;
	int inflight;
	int quit;
	int nthreads;
	pthread_t th[COMMITTERS];
	struct store *st[COMMITTERS];
	const struct pass *ps; /* read-only fields only */
};

struct committer_arg {
	struct committer *c;
	int slot;
};

void
pending_clear(struct pending *pd)
{
	free(pd->uidl);
	buf_free(&pd->raw);
	dsn_free(&pd->rep);
	free(pd->rcpts);
	free(pd->kept);
	memset(pd, 0, sizeof(*pd));
}

static void
batch_free(struct batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		pending_clear(&b->pend[i]);
	free(b->pend);
	free(b->msgs);
	free(b->res);
	free(b);
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

/* The decoded record, with the pass's own copy of its recipients, after
 * the policy step. */
static void
apply_policy(const struct pass *ps, struct pending *pd, int64_t now)
{
	const struct record *r = dsn_record(pd->rep);
	struct policy pol = {
	    .record_only = ps->record_only,
	    .max_age_s = ps->mc->poll.max_age_ms / 1000,
	    .campaign_header = ps->cfg->campaign_header,
	    .list_header = ps->cfg->list_header,
	    .subscriber_header = ps->cfg->subscriber_header,
	    .keep = ps->xh,
	    .nkeep = ps->nxh,
	};

	pd->rec = *r;
	pd->rcpts = xcalloc(r->nrcpts + 1, sizeof(*pd->rcpts));
	if (r->nrcpts > 0)
		memcpy(pd->rcpts, r->rcpts, r->nrcpts * sizeof(*pd->rcpts));
	pd->rec.rcpts = pd->rcpts;
	pd->kept = xcalloc(ps->nxh + 1, sizeof(*pd->kept));
	policy_apply(&pol, now, &pd->rec, pd->kept);
}

/* Decodes every message of a batch (committer thread). */
static void
batch_decode(const struct pass *ps, struct batch *b)
{
	struct dsn_options opt;
	int64_t now = now_unix();

	memset(&opt, 0, sizeof(opt));
	opt.headers = ps->xh;
	opt.nheaders = ps->nxh;
	opt.rules = ps->cfg->classify_rules;
	opt.verp_pattern = ps->cfg->verp_pattern && *ps->cfg->verp_pattern
	    ? ps->cfg->verp_pattern
	    : NULL;
	for (size_t i = 0; i < b->n; i++) {
		struct pending *pd = &b->pend[i];
		const char *raw = pd->raw.data ? pd->raw.data : "";
		struct err err = {{0}};
		const char *why;

		if (pd->suspect)
			continue;
		if (dsn_parse(raw, pd->raw.len, pd->raw.truncated, &opt,
		        &pd->rep, &err) != 0) {
			pd->dfail = 1;
			snprintf(pd->derr, sizeof(pd->derr), "decode: %s",
			    err.msg);
			continue;
		}
		apply_policy(ps, pd, now);
		if (pd->rec.kind == RECORD_KIND_UNKNOWN &&
		    pd->rec.nrcpts == 0 &&
		    (why = bounce_look(raw, pd->raw.len)) != NULL)
			log_info("looks like a bounce, but no recipient was "
			         "decoded: stored as unknown",
			    "mailbox", ps->mc->name, "uidl", pd->uidl, "why",
			    why, NULL);
	}
}

/* Records the undecodable messages of a batch as failures.  0 or -1. */
static int
batch_failures(const struct pass *ps, struct store *st, struct batch *b)
{
	for (size_t i = 0; i < b->n; i++) {
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
			return -1;
		}
	}
	return 0;
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
	b->res = xcalloc(b->n + 1, sizeof(*b->res));
	for (size_t i = 0; i < b->n; i++) {
		struct pending *pd = &b->pend[i];
		struct store_message *sm = &b->msgs[k];

		b->res[i] = STORE_PENDING;
		if (pd->dfail || pd->suspect)
			continue;
		sm->mailbox_id = ps->mailbox_id;
		sm->uidl = pd->uidl;
		sm->size = pd->size >= 0 ? pd->size : (int64_t)pd->raw.len;
		sm->raw = pd->raw.data;
		sm->raw_len = pd->raw.len;
		sm->rec = &pd->rec;
		sm->deleting = ps->del;
		res[k] = STORE_PENDING;
		map[k++] = i;
	}
	if (k > 0) {
		rc = store_record_batch(st, b->msgs, k, res, &b->err);
		for (size_t j = 0; j < k; j++)
			b->res[map[j]] = res[j];
	}
	if (rc == 0)
		rc = batch_failures(ps, st, b);
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

		t0 = now_us();
		b->rc = pass_open_store(c->ps->env, c->ps->cfg, st, &b->err);
		if (b->rc == 0)
			b->rc = batch_mark(c->ps, *st, b);
		b->ms = now_us() - t0;
		if (b->rc == 0) {
			t0 = now_us();
			batch_decode(c->ps, b);
			b->dms = now_us() - t0;
			t0 = now_us();
			b->rc = batch_record(c->ps, *st, b);
			if (b->rc == 0)
				b->rc = batch_alone(c->ps, *st, b);
			b->ms += now_us() - t0;
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
	c->ps = ps;
	/* the worker's connections, given back by committer_free */
	for (int i = 0; i < COMMITTERS; i++) {
		c->st[i] = ps->conns->com[i];
		ps->conns->com[i] = NULL;
	}
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
	for (int i = 0; i < COMMITTERS; i++) {
		c->ps->conns->com[i] = c->st[i];
		c->st[i] = NULL;
	}
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
	int *ds = xcalloc(b->n + 1, sizeof(*ds)); /* marked by the record */
	size_t nd = 0;

	ps->t_store += b->ms;
	ps->t_decode += b->dms;
	if (b->rc != 0) {
		metrics_set_db_up(ps->env->m, 0);
		pass_error(ps, METRICS_ERR_DATABASE, "recording failed",
		    b->err.msg);
		goto out;
	}
	metrics_set_db_up(ps->env->m, 1);
	for (size_t i = 0; i < b->n; i++) {
		struct pending *pd = &b->pend[i];

		if (pd->dfail) {
			pass_error(ps, METRICS_ERR_DECODE,
			    "cannot decode message", pd->derr);
			ps->failed++;
			if (pd->fail_q) {
				ps->quarantined++;
				metrics_add_error(ps->env->m, ps->midx,
				    METRICS_ERR_QUARANTINE);
			}
			continue;
		}

		if (b->res[i] == STORE_WRITTEN || b->res[i] == STORE_REPLAYED) {
			if (b->res[i] == STORE_WRITTEN) {
				size_t nb = pd->rec.nrcpts;

				ps->recorded++;
				nrec++;
				ps->bounces += nb;
				for (size_t k = 0; k < nb; k++)
					metrics_add_bounce(ps->env->m,
					    record_class_name(pd->rcpts[k].cls),
					    pd->rcpts[k].reason
					        ? pd->rcpts[k].reason
					        : "undefined");
			} else
				ps->replayed++;
			if (del) {
				dn[nd] = pd->msgno;
				ds[nd] = b->res[i] == STORE_WRITTEN;
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
				metrics_add_error(ps->env->m, ps->midx,
				    METRICS_ERR_QUARANTINE);
			}
		}
	}
	rc = 0;
out:
	/* whatever happened later in the batch, the committed ones go */
	if (nd > 0 && ps->no_dele)
		pass_unstamp(ps, du, ds, nd);
	else if (nd > 0 && pass_dele(ps, dn, du, ds, nd) != 0)
		ps->no_dele = 1; /* the next pass DELEs them */
	free(dn);
	free(du);
	free(ds);
	metrics_add_recorded(ps->env->m, ps->midx, nrec);
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
	tw = now_us();
	pthread_mutex_lock(&c->mu);
	while (wait && c->inflight > 0)
		pthread_cond_wait(&c->cv, &c->mu);
	ps->t_wait += now_us() - tw;
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

int
pass_flush(struct pass *ps, int wait)
{
	struct batch *b;
	int64_t tw;

	if (ps->npend == 0)
		return reap(ps, wait);
	if (ps->com == NULL)
		ps->com = committer_new(ps);
	b = xcalloc(1, sizeof(*b));
	b->pend = ps->pend;
	b->n = ps->npend;
	ps->pend = NULL;
	ps->npend = 0;
	ps->pend_bytes = 0;
	tw = now_us();
	pthread_mutex_lock(&ps->com->mu);
	while (ps->com->inflight >= 2 * COMMITTERS)
		pthread_cond_wait(&ps->com->cv, &ps->com->mu);
	ps->t_wait += now_us() - tw;
	if (ps->com->todo_tail != NULL)
		ps->com->todo_tail->next = b;
	else
		ps->com->todo = b;
	ps->com->todo_tail = b;
	ps->com->inflight++;
	pthread_cond_broadcast(&ps->com->cv);
	pthread_mutex_unlock(&ps->com->mu);
	return reap(ps, wait);
}

int
pass_fetch_one(struct pass *ps, const struct pop3_entry *e)
{
	struct err err = {{0}};
	struct pending pd;

	memset(&pd, 0, sizeof(pd));
	buf_init(&pd.raw,
	    ps->mc->poll.max_message_bytes > 0
	        ? (size_t)ps->mc->poll.max_message_bytes
	        : (size_t)32 << 20);
	int64_t t0 = now_us();
	int rrc = pop3_retr(ps->pop, e->msgno, &pd.raw, &err);

	ps->t_retr += now_us() - t0;
	if (rrc != 0) {
		pass_error(ps, pass_pop3_kind(pop3_error_kind(ps->pop)),
		    "RETR failed", err.msg);
		buf_free(&pd.raw);
		ps->fault = FAULT_POP3;
		return -1;
	}
	ps->fetched++;
	metrics_add_fetched(ps->env->m, ps->midx, 1);
	if (pd.raw.truncated) {
		metrics_add_error(ps->env->m, ps->midx, METRICS_ERR_OVERSIZE);
		log_warn("message over max_message_bytes: decoding its head",
		    "mailbox", ps->mc->name, "uidl", e->uidl, NULL);
	}
	pd.msgno = e->msgno;
	pd.uidl = xstrdup(e->uidl);
	pd.size = e->size;
	ps->pend = xrealloc(ps->pend, (ps->npend + 1) * sizeof(*ps->pend));
	ps->pend[ps->npend++] = pd;
	ps->pend_bytes += pd.raw.len;
	if (ps->npend == 1)
		ps->pend_since = now_ms();
	if (now_ms() - ps->pend_since >= PEND_MS_MAX ||
	    ps->npend >= (size_t)ps->cfg->batch_size ||
	    ps->pend_bytes >= PEND_BYTES_MAX) {
		if (pass_flush(ps, 0) != 0) {
			ps->fault = FAULT_DB;
			return -1;
		}
	} else if (reap(ps, 0) != 0) {
		/* a batch committed meanwhile is DELEd now */
		ps->fault = FAULT_DB;
		return -1;
	}
	return 0;
}

void
pass_committers_end(struct pass *ps)
{
	reap(ps, 1);
	committer_free(&ps->com);
}
