/*
 * pass.c - one pass over one mailbox (pass.h), stage by stage:
 * pass_begin (database, mailbox row, lock, first-pass state), pass_login
 * and pass_list (listing.c), pass_filter (ledger states; DELE what was
 * recorded before), pass_fetch (RETR, RETRs sent ahead; batches go to the
 * committers of batch.c), pass_commit (every batch committed and DELEd),
 * pass_quit (QUIT makes the DELEs final; the ledger learns it),
 * pass_upkeep (pruning, retention, suppression expiry, end of the first
 * pass) and pass_end (what is left, the lock, the log line).  A stage
 * that cannot go on says why in ps->fault; the pass's outcome follows.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "service/pass_int.h"

enum metrics_err_kind
pass_pop3_kind(enum pop3_error e)
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

void
pass_error(struct pass *ps, enum metrics_err_kind kind, const char *what,
    const char *cause)
{
	metrics_add_error(ps->env->m, ps->midx, kind);
	log_error(what, "mailbox", ps->mc->name, "kind",
	    metrics_err_kind_name(kind), "cause", cause, NULL);
}

/* A database error of the pass: logged, counted, and the pass ends. */
static int
db_error(struct pass *ps, const char *what, const char *cause)
{
	metrics_set_db_up(ps->env->m, 0);
	pass_error(ps, METRICS_ERR_DATABASE, what, cause);
	ps->fault = FAULT_DB;
	return -1;
}

int
pass_open_store(const struct pass_env *env, const struct config *cfg,
    struct store **stp, struct err *err)
{
	struct store_options o;

	if (*stp != NULL)
		return 0;
	memset(&o, 0, sizeof(o));
	o.conninfo = env->db_url;
	o.batch_size = cfg->batch_size;
	o.raw_max_bytes = (int64_t)cfg->raw_max_bytes;
	o.reconnect = STORE_RECONNECT_PASS;
	o.stop = env->db_stop;
	return store_open(&o, stp, err);
}

/* Closes the worker's connections when cfg no longer has the options
 * pass_open_store gave them (a reload changed batch_size or
 * raw_max_bytes): they are opened again with the new ones. */
static void
conns_fit(struct pass_conns *conns, const struct config *cfg)
{
	if (conns->batch_size == cfg->batch_size &&
	    conns->raw_max_bytes == cfg->raw_max_bytes)
		return;
	pass_conns_free(conns);
	conns->batch_size = cfg->batch_size;
	conns->raw_max_bytes = cfg->raw_max_bytes;
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
		ps->fault = FAULT_LOCK;
		return -1;
	}
	ps->gen = store_generation(ps->st);
	return 0;
}

/* Appends a copy of uidl to the list *v of *n. */
static void
uidl_push(char ***v, size_t *n, const char *uidl)
{
	*v = xrealloc(*v, (*n + 1) * sizeof(**v));
	(*v)[(*n)++] = xstrdup(uidl);
}

void
pass_unstamp(struct pass *ps, char *const *uidls, const int *stamped, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (stamped[i])
			uidl_push(&ps->unstamp, &ps->nunstamp, uidls[i]);
}

int
pass_dele(struct pass *ps, const uint32_t *msgnos, char *const *uidls,
    const int *stamped, size_t n)
{
	struct err err = {{0}};
	int64_t t0 = now_us();
	int *ok, rc;

	if (n == 0)
		return 0;
	ok = xcalloc(n, sizeof(*ok));
	rc = pop3_dele_many(ps->pop, msgnos, n, ok, &err);
	ps->t_dele += now_us() - t0;
	for (size_t i = 0; i < n; i++) {
		int st = stamped != NULL && stamped[i];

		if (!ok[i] && st)
			uidl_push(&ps->unstamp, &ps->nunstamp, uidls[i]);
		else if (ok[i] && st)
			uidl_push(&ps->stamped, &ps->nstamped, uidls[i]);
		else if (ok[i])
			uidl_push(&ps->dele, &ps->ndele, uidls[i]);
	}
	free(ok);
	if (rc != 0) {
		pass_error(ps, pass_pop3_kind(pop3_error_kind(ps->pop)),
		    "DELE failed", err.msg);
		return -1;
	}
	return 0;
}

/* The header names of the returned original kept with each bounce: the
 * campaign, list and subscriber headers, then the extra ones. */
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

/* The database, the mailbox's row and lock, and its first-pass state.
 * 0, 1 when another process holds the lock, or -1. */
static int
pass_begin(struct pass *ps, struct store **stp)
{
	struct err err = {{0}};

	if (pass_open_store(ps->env, ps->cfg, stp, &err) != 0)
		return db_error(ps, "database unreachable", err.msg);
	ps->st = *stp;
	if (store_mailbox_id(ps->st, ps->name, ps->mc->host, ps->mc->username,
	        &ps->mailbox_id, &err) != 0 ||
	    store_mailbox_trylock(ps->st, ps->mailbox_id, &ps->locked, &err) !=
	        0)
		return db_error(ps, "database error", err.msg);
	metrics_set_db_up(ps->env->m, 1);
	if (!ps->locked) {
		/* another replica is on it: normal for several processes,
		 * worth a line for --once, whose exit status says so */
		log_kv(ps->env->once ? LOG_INFO : LOG_DEBUG,
		    "mailbox locked by another process: skipped", "mailbox",
		    ps->name, NULL);
		return 1;
	}
	ps->gen = store_generation(ps->st);
	if (ps->mc->poll.first_pass == CONFIG_FIRST_RECORD_ONLY &&
	    store_mailbox_first_pass(ps->st, ps->mailbox_id, &ps->record_only,
	        &err) != 0)
		return db_error(ps, "database error", err.msg);
	return 0;
}

/* Messages the ledger says deleted but the server still lists (the
 * process ended before a QUIT confirmed their DELE): not deleted after
 * all; they are DELEd again below.  Once the whole list is read, the
 * mailbox's listed_at says so (ledger retention waits for it). */
static int
unmark_listed(struct pass *ps)
{
	struct err err = {{0}};
	const char **v = xcalloc(ps->nent + 1, sizeof(*v));
	size_t n = 0;
	int rc;

	for (size_t i = 0; i < ps->nent; i++)
		if (ps->info[i].deleted &&
		    ps->info[i].state == STORE_UIDL_RECORDED)
			v[n++] = ps->uidls[i];
	rc = store_unmark_deleted(ps->st, ps->mailbox_id, v, n, !ps->partial,
	    &err);
	free(v);
	if (rc != 0)
		return db_error(ps, "ledger update failed", err.msg);
	return 0;
}

/* The ledger's state of each listed message; those recorded before (a
 * pass that ended before QUIT, or keep mode past keep_days) are DELEd
 * without being recorded again. */
static int
pass_filter(struct pass *ps)
{
	struct err err = {{0}};
	int64_t now = now_unix(), t0 = now_us();
	int64_t keep_s = (int64_t)ps->mc->poll.keep_days * 86400;
	uint32_t *dn;
	char **du;
	size_t nd = 0;
	int rc;

	ps->uidls = xcalloc(ps->nent + 1, sizeof(*ps->uidls));
	ps->info = xcalloc(ps->nent + 1, sizeof(*ps->info));
	for (size_t i = 0; i < ps->nent; i++)
		ps->uidls[i] = ps->ent[i].uidl;
	rc = store_uidl_states(ps->st, ps->mailbox_id, ps->uidls, ps->nent,
	    ps->info, &err);
	ps->t_ledger = now_us() - t0;
	if (rc != 0)
		return db_error(ps, "ledger lookup failed", err.msg);
	if (unmark_listed(ps) != 0)
		return -1;
	if (relock(ps) != 0)
		return -1;
	dn = xcalloc(ps->nent + 1, sizeof(*dn));
	du = xcalloc(ps->nent + 1, sizeof(*du));
	for (size_t i = 0; i < ps->nent && !*ps->env->stop; i++) {
		const struct store_uidl_info *in = &ps->info[i];

		if (in->state == STORE_UIDL_QUARANTINED)
			ps->skipped_q++;
		else if (in->state == STORE_UIDL_NEW)
			ps->ntodo++;
		else if (ps->del ||
		    (keep_s > 0 && in->fetched_at > 0 &&
		        in->fetched_at < now - keep_s)) {
			dn[nd] = ps->ent[i].msgno;
			du[nd++] = ps->ent[i].uidl;
		}
	}
	rc = pass_dele(ps, dn, du, NULL, nd);
	free(dn);
	free(du);
	if (rc != 0)
		ps->fault = FAULT_POP3;
	return rc;
}

/* RETRs the new messages, oldest first, up to max_messages and
 * pass_timeout; where the server pipelines, the next few are asked for
 * ahead of their turn. */
static int
pass_fetch(struct pass *ps)
{
	struct err err = {{0}};
	size_t ntake = 0, *take = xcalloc(ps->nent + 1, sizeof(*take));
	uint32_t *tno = xcalloc(ps->nent + 1, sizeof(*tno));
	int64_t *tsz = xcalloc(ps->nent + 1, sizeof(*tsz));
	size_t max = ps->mc->poll.max_messages > 0
	    ? (size_t)ps->mc->poll.max_messages
	    : SIZE_MAX;
	int64_t t0;
	int rc = 0;

	for (size_t i = 0; i < ps->nent && ntake < max; i++) {
		if (ps->info[i].state != STORE_UIDL_NEW)
			continue;
		take[ntake] = i;
		tno[ntake] = ps->ent[i].msgno;
		tsz[ntake++] = ps->ent[i].size;
	}
	for (size_t k = 0; k < ntake && !*ps->env->stop && rc == 0; k++) {
		if (ps->mc->poll.pass_timeout_ms > 0 &&
		    (now_us() - ps->started) / 1000 >=
		        ps->mc->poll.pass_timeout_ms) {
			log_warn("pass_timeout reached: what was fetched is "
			         "recorded, the rest waits for the next pass",
			    "mailbox", ps->name, NULL);
			break;
		}
		t0 = now_us();
		rc =
		    pop3_retr_ahead(ps->pop, tno + k, tsz + k, ntake - k, &err);
		ps->t_retr += now_us() - t0;
		if (rc != 0) {
			pass_error(ps, pass_pop3_kind(pop3_error_kind(ps->pop)),
			    "RETR failed", err.msg);
			ps->fault = FAULT_POP3;
			rc = -1;
		} else
			rc = pass_fetch_one(ps, &ps->ent[take[k]]);
	}
	free(take);
	free(tno);
	free(tsz);
	return rc;
}

/* Commits what was fetched, whatever happened to the session: every batch
 * in flight, the committed ones DELEd even if another failed. */
static int
pass_commit(struct pass *ps)
{
	ps->no_dele = ps->fault == FAULT_POP3;
	if (ps->fault != FAULT_DB && pass_flush(ps, 1) != 0)
		ps->fault = FAULT_DB;
	if (relock(ps) != 0)
		return -1;
	return ps->fault == FAULT_NONE ? 0 : -1;
}

/* QUIT makes the DELEs final; then the ledger learns it. */
static int
pass_quit(struct pass *ps)
{
	struct err err = {{0}};
	int64_t t0 = now_us();
	int rc = pop3_quit(ps->pop, &err);

	ps->t_quit = now_us() - t0;
	if (rc != 0) {
		pass_error(ps, pass_pop3_kind(pop3_error_kind(ps->pop)),
		    "QUIT not confirmed: deletions not final", err.msg);
		ps->fault = FAULT_POP3;
		return -1;
	}
	ps->quit_ok = 1;
	ps->deleted = ps->ndele + ps->nstamped;
	metrics_add_deleted(ps->env->m, ps->midx, ps->deleted);
	/* those recorded in this pass were marked with their record */
	if ((ps->ndele > 0 &&
	        store_mark_deleted(ps->st, ps->mailbox_id,
	            (const char *const *)ps->dele, ps->ndele, &err) != 0) ||
	    store_unmark_deleted(ps->st, ps->mailbox_id,
	        (const char *const *)ps->unstamp, ps->nunstamp, 0, &err) != 0) {
		/* harmless: the next pass finds them gone (store_prune) or
		 * still listed (unmark_listed) */
		pass_error(ps, METRICS_ERR_DATABASE, "marking deleted failed",
		    err.msg);
		ps->fault = FAULT_DB;
		return -1;
	}
	ps->t_quit = now_us() - t0;
	return 0;
}

/* No QUIT confirmed the DELEs: the messages marked deleted with their
 * record are still on the server.  If this fails, the next pass finds
 * them listed (unmark_listed). */
static void
unmark_unconfirmed(struct pass *ps)
{
	struct err err = {{0}};
	size_t n = ps->nstamped + ps->nunstamp;
	const char **v;

	if (ps->quit_ok || n == 0 || ps->st == NULL || ps->fault == FAULT_DB)
		return;
	v = xcalloc(n, sizeof(*v));
	for (size_t i = 0; i < ps->nstamped; i++)
		v[i] = ps->stamped[i];
	for (size_t i = 0; i < ps->nunstamp; i++)
		v[ps->nstamped + i] = ps->unstamp[i];
	if (store_unmark_deleted(ps->st, ps->mailbox_id, v, n, 0, &err) != 0)
		pass_error(ps, METRICS_ERR_DATABASE,
		    "clearing deletion marks failed", err.msg);
	free(v);
}

static void
uidls_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* Retention (raw bytes, bounce months, ledger rows past it), the expiry
 * of suppressions whose soft bounces left the window since the last pass
 * of any mailbox (an index lookup when none did), and the end of
 * first_pass: record_only once the backlog has been seen. */
static int
pass_upkeep(struct pass *ps)
{
	struct err err = {{0}};
	const struct config *cfg = ps->cfg;
	int whole = !ps->partial;

	if (store_prune(ps->st, ps->mailbox_id, whole ? ps->uidls : NULL,
	        whole ? ps->nent : 0,
	        cfg->retention_raw_ms > 0 ? cfg->retention_raw_ms / 1000 : -1,
	        NULL, &err) != 0 ||
	    store_apply_retention(ps->st, cfg->retention_bounces_ms / 1000,
	        cfg->retention_ledger_ms / 1000, NULL, &err) != 0) {
		pass_error(ps, METRICS_ERR_DATABASE, "prune failed", err.msg);
		ps->fault = FAULT_DB;
		return -1;
	}
	if (store_suppression_expire(ps->st, NULL, &err) != 0) {
		pass_error(ps, METRICS_ERR_DATABASE,
		    "suppression expiry failed", err.msg);
		ps->fault = FAULT_DB;
		return -1;
	}
	if (ps->record_only && !*ps->env->stop && whole &&
	    ps->fetched + ps->failed >= ps->ntodo &&
	    store_mailbox_first_pass_done(ps->st, ps->mailbox_id, &err) != 0) {
		pass_error(ps, METRICS_ERR_DATABASE, "database error", err.msg);
		ps->fault = FAULT_DB;
		return -1;
	}
	return 0;
}

/* A pass that got through every stage but was stopped before it fetched
 * all it should have is a failed one (the scheduler retries it). */
static enum pass_outcome
pass_outcome(const struct pass *ps)
{
	int max = ps->mc->poll.max_messages;

	if (*ps->env->stop && ps->fetched < ps->ntodo &&
	    (max <= 0 || ps->fetched < (size_t)max)) {
		log_info("pass interrupted by shutdown", "mailbox", ps->name,
		    NULL);
		return PASS_FAILED;
	}
	return PASS_OK;
}

static void
pass_log(const struct pass *ps, enum pass_outcome res)
{
	int64_t ms = (now_us() - ps->started) / 1000;

	metrics_pass(ps->env->m, ps->midx, (double)ms / 1000.0, res == PASS_OK,
	    now_unix());
	log_f(LOG_DEBUG, "pass timing", LOG_STR("mailbox", ps->name),
	    LOG_INT("begin_ms", ps->t_begin / 1000),
	    LOG_INT("login_ms", ps->t_login / 1000),
	    LOG_INT("list_ms", ps->t_list / 1000),
	    LOG_INT("ledger_ms", ps->t_ledger / 1000),
	    LOG_INT("retr_ms", ps->t_retr / 1000),
	    LOG_INT("decode_ms", ps->t_decode / 1000),
	    LOG_INT("store_ms", ps->t_store / 1000),
	    LOG_INT("wait_ms", ps->t_wait / 1000),
	    LOG_INT("dele_ms", ps->t_dele / 1000),
	    LOG_INT("quit_ms", ps->t_quit / 1000),
	    LOG_INT("upkeep_ms", ps->t_upkeep / 1000),
	    LOG_INT("end_ms", ps->t_end / 1000));
	log_f(res == PASS_OK ? LOG_INFO : LOG_WARN,
	    res == PASS_OK ? "pass done" : "pass failed",
	    LOG_STR("mailbox", ps->name), LOG_INT("listed", ps->nent),
	    LOG_INT("fetched", ps->fetched), LOG_INT("recorded", ps->recorded),
	    LOG_INT("deleted", ps->deleted), LOG_INT("bounces", ps->bounces),
	    LOG_INT("failed", ps->failed),
	    LOG_INT("quarantined", ps->quarantined),
	    LOG_INT("skipped_quarantined", ps->skipped_q),
	    LOG_INT("replayed", ps->replayed), LOG_SECS("seconds", ms));
}

/* Whatever the stages left: batches still pending are committed (unless
 * the database failed), the session ends with QUIT (only committed DELEs
 * go with it) or, without the lock, is dropped; the lock is released. */
static void
pass_end(struct pass *ps)
{
	int lock_lost = ps->fault == FAULT_LOCK;

	ps->no_dele = ps->no_dele || ps->fault == FAULT_POP3 || lock_lost;
	if (ps->npend > 0 && ps->st != NULL && ps->fault != FAULT_DB)
		pass_flush(ps, 0);
	pass_committers_end(ps);
	unmark_unconfirmed(ps);
	for (size_t i = 0; i < ps->npend; i++)
		pending_clear(&ps->pend[i]);
	if (ps->pop != NULL) {
		if (lock_lost)
			pop3_abort(&ps->pop);
		else
			pop3_free(&ps->pop);
	}
	if (ps->locked && ps->st != NULL && !lock_lost) {
		struct err e2 = {{0}};

		store_mailbox_unlock(ps->st, ps->mailbox_id, &e2);
	}
	uidls_free(ps->dele, ps->ndele);
	uidls_free(ps->stamped, ps->nstamped);
	uidls_free(ps->unstamp, ps->nunstamp);
	free(ps->pend);
	free(ps->xh);
	free(ps->uidls);
	free(ps->info);
	free(ps->ent);
	free(ps->token);
}

void
pass_conns_free(struct pass_conns *conns)
{
	store_free(&conns->main);
	for (int i = 0; i < PASS_COMMITTERS; i++)
		store_free(&conns->com[i]);
}

enum pass_outcome
pass_run(const struct pass_env *env, const struct config *cfg, const char *name,
    int midx, struct pass_conns *conns)
{
	struct pass ps;
	enum pass_outcome res = PASS_FAILED;
	int64_t t0;
	int rc;

	memset(&ps, 0, sizeof(ps));
	ps.env = env;
	ps.cfg = cfg;
	ps.name = name;
	ps.midx = midx;
	ps.started = now_us();
	if ((ps.mc = config_mailbox(cfg, name)) == NULL)
		return PASS_SKIPPED;
	ps.del = ps.mc->poll.after_processing == CONFIG_AFTER_DELETE;
	conns_fit(conns, cfg);
	ps.conns = conns;
	collect_headers(&ps);
	rc = pass_begin(&ps, &conns->main);
	ps.t_begin = now_us() - ps.started;
	if (rc == 1)
		res = PASS_BUSY;
	else if (rc == 0 && pass_login(&ps) == 0 && pass_list(&ps) == 0 &&
	    pass_filter(&ps) == 0) {
		pass_fetch(&ps);
		if (pass_commit(&ps) == 0 && pass_quit(&ps) == 0) {
			t0 = now_us();
			rc = pass_upkeep(&ps);
			ps.t_upkeep = now_us() - t0;
			if (rc == 0)
				res = pass_outcome(&ps);
		}
	}
	t0 = now_us();
	pass_end(&ps);
	ps.t_end = now_us() - t0;
	if (res != PASS_BUSY)
		pass_log(&ps, res);
	return res;
}
