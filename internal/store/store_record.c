/*
 * store_record.c - recording fetched emails: each message of a batch and
 * its recipients go to the database as one JSON document (one statement,
 * one transaction per batch), text repaired and capped per field; a batch
 * the database refuses is retried one message at a time.  Also the ledger
 * row of an email that could not be decoded or stored.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/store_int.h"

/* This part's statements, prepared on every connection (store.c). */
const struct store_stmt store_record_stmts[] = {
    {"record_batch",
        /* $1: the messages as a JSON array ("i" numbers them from 1);
         * $2: their raw bytes, raw[i] (binary bytea[]).  One statement
         * for the whole batch, so the bounces go in with one INSERT (and
         * one run of its statement-level trigger).  Returns the "i" of
         * every message written; the others were recorded before. */
        "WITH j AS MATERIALIZED ("
        " SELECT * FROM jsonb_to_recordset($1::jsonb) AS j(i integer,"
        "  mailbox_id bigint, uidl text, kind text, email_message_id text,"
        "  subject text, reporting_mta text, reported_at double precision,"
        "  size_bytes bigint, truncated boolean, raw_truncated boolean,"
        "  repaired text, deleting boolean, bounces jsonb)"
        "), m AS ("
        " INSERT INTO messages AS t (mailbox_id, uidl, outcome, kind,"
        "  email_message_id, subject, reporting_mta, reported_at,"
        "  size_bytes, truncated, raw, raw_truncated, repaired_fields,"
        "  processed_at, deleted_at)"
        " SELECT j.mailbox_id, j.uidl, 'recorded', j.kind,"
        "  j.email_message_id, j.subject, j.reporting_mta,"
        "  to_timestamp(j.reported_at), j.size_bytes, j.truncated,"
        "  ($2::bytea[])[j.i], j.raw_truncated, j.repaired::text[], now(),"
        "  CASE WHEN j.deleting THEN now() END"
        " FROM j ORDER BY j.i"
        " ON CONFLICT (mailbox_id, uidl) DO UPDATE SET"
        "  outcome = 'recorded', kind = EXCLUDED.kind,"
        "  email_message_id = EXCLUDED.email_message_id,"
        "  subject = EXCLUDED.subject,"
        "  reporting_mta = EXCLUDED.reporting_mta,"
        "  reported_at = EXCLUDED.reported_at,"
        "  size_bytes = EXCLUDED.size_bytes,"
        "  truncated = EXCLUDED.truncated, raw = EXCLUDED.raw,"
        "  raw_truncated = EXCLUDED.raw_truncated,"
        "  repaired_fields = EXCLUDED.repaired_fields,"
        "  error = NULL, failures = 0, processed_at = now(),"
        "  deleted_at = EXCLUDED.deleted_at"
        " WHERE t.outcome = 'failed'"
        " RETURNING id, mailbox_id, uidl"
        "), w AS MATERIALIZED ("
        " SELECT j.i, m.id, j.bounces FROM m"
        " JOIN j ON j.mailbox_id = m.mailbox_id AND j.uidl = m.uidl"
        "), b AS ("
        " INSERT INTO bounces (message_id, recipient, recipient_domain,"
        "  recipient_source, final_recipient, original_recipient, class,"
        "  reason, action, status, reply_code, diagnostic, remote_mta,"
        "  reporting_mta, feedback_type, original_message_id,"
        "  campaign_id, list_id, subscriber_id, original_headers, counts,"
        "  not_counted_because, bounced_at, rule)"
        " SELECT w.id, x.recipient, x.recipient_domain,"
        "  x.recipient_source, x.final_recipient, x.original_recipient,"
        "  x.class, x.reason, x.action, x.status, x.reply_code,"
        "  x.diagnostic, x.remote_mta, x.reporting_mta, x.feedback_type,"
        "  x.original_message_id, x.campaign_id, x.list_id,"
        "  x.subscriber_id, coalesce(x.original_headers, '{}'),"
        "  x.counts, x.not_counted_because,"
        "  coalesce(to_timestamp(x.bounced_at), now()), x.rule"
        " FROM w CROSS JOIN LATERAL jsonb_array_elements(w.bounces)"
        "  WITH ORDINALITY AS e(v, ord)"
        " CROSS JOIN LATERAL jsonb_to_record(e.v) AS x("
        "  recipient text, recipient_domain text, recipient_source text,"
        "  final_recipient text, original_recipient text, class text,"
        "  reason text, action text, status text, reply_code integer,"
        "  diagnostic text, remote_mta text, reporting_mta text,"
        "  feedback_type text, original_message_id text,"
        "  campaign_id text, list_id text, subscriber_id text,"
        "  original_headers jsonb, counts boolean,"
        "  not_counted_because text, bounced_at double precision,"
        "  rule text)"
        " ORDER BY w.i, e.ord"
        ") SELECT w.i FROM w"},
    {"record_failure",
        /* $9: this report's token; a retry of the same report (its
         * COMMIT reply was lost) finds it and counts nothing */
        "INSERT INTO messages AS t (mailbox_id, uidl, outcome, error,"
        " failures, size_bytes, truncated, raw, raw_truncated,"
        " failure_attempt)"
        " VALUES ($1::bigint, $2, CASE WHEN $7::integer <= 1"
        "  THEN 'quarantined' ELSE 'failed' END, $3, 1, $4::bigint,"
        "  $5::boolean, $6::bytea, $8::boolean, $9)"
        " ON CONFLICT (mailbox_id, uidl) DO UPDATE SET"
        "  failures = t.failures + 1,"
        "  outcome = CASE WHEN t.failures + 1 >= $7::integer"
        "   THEN 'quarantined' ELSE 'failed' END,"
        "  error = EXCLUDED.error, size_bytes = EXCLUDED.size_bytes,"
        "  truncated = EXCLUDED.truncated, raw = EXCLUDED.raw,"
        "  raw_truncated = EXCLUDED.raw_truncated,"
        "  failure_attempt = EXCLUDED.failure_attempt"
        " WHERE t.outcome = 'failed'"
        "  AND t.failure_attempt IS DISTINCT FROM EXCLUDED.failure_attempt"
        " RETURNING outcome"},
    {"outcome",
        "SELECT outcome FROM messages WHERE mailbox_id = $1::bigint"
        " AND uidl = $2"},
};
const size_t store_record_stmts_n =
    sizeof(store_record_stmts) / sizeof(store_record_stmts[0]);

/* Appends s (valid UTF-8, no NUL) as a JSON string, or null. */
static void
json_str(struct buf *b, const char *s)
{
	buf_append_json_str(b, s);
}

/* ---- recording ---- */

enum {
	P_MAILBOX,
	P_UIDL,
	P_KIND,
	P_MSGID,
	P_SUBJECT,
	P_RMTA,
	P_REPORTED,
	P_SIZE,
	P_TRUNC,
	P_RAW,
	P_RAWTRUNC,
	P_REPAIRED,
	P_BOUNCES,
	P_DELETING,
	NPARAM
};

struct rec {
	char *val[NPARAM]; /* owned, except val[P_RAW] (borrowed) */
	int len[NPARAM];
	int fmt[NPARAM];
	int invalid; /* cannot be sent at all */
	char why[128];
};

struct repaired {
	const char *names[32];
	size_t n;
};

static void
note_repair(struct repaired *rp, const char *name)
{
	size_t i;

	for (i = 0; i < rp->n; i++)
		if (strcmp(rp->names[i], name) == 0)
			return;
	if (rp->n < sizeof(rp->names) / sizeof(rp->names[0]))
		rp->names[rp->n++] = name;
}

/* Cleans a text field; NULL stays NULL, "" becomes NULL. */
static char *
field(const char *s, size_t max, const char *name, struct repaired *rp)
{
	char *c;
	int rep = 0;

	if (s == NULL || *s == '\0')
		return NULL;
	c = store_text_clean(s, strlen(s), max, &rep);
	if (rep)
		note_repair(rp, name);
	if (*c == '\0') {
		free(c);
		return NULL;
	}
	return c;
}

static void
json_field(struct buf *b, const char *key, const char *s, size_t max,
    struct repaired *rp)
{
	char *c = field(s, max, key, rp);

	buf_appendf(b, ",\"%s\":", key);
	json_str(b, c);
	free(c);
}

static void
ascii_lower_s(char *s)
{
	if (s != NULL)
		ascii_lower(s);
}

/* The headers of the returned original kept with each bounce, as a JSON
 * object {name: value}; a header without a usable name is left out. */
static void
headers_json(struct buf *b, const struct record *rec, struct repaired *rp)
{
	size_t i;

	buf_append_str(b, ",\"original_headers\":{");
	for (i = 0; i < rec->nkept_headers; i++) {
		const struct record_header *h = &rec->kept_headers[i];
		char *k =
		    field(h->name, STORE_TEXT_MAX, "original_headers", rp);
		char *v =
		    field(h->value, STORE_TEXT_MAX, "original_headers", rp);

		if (k != NULL) {
			if (b->data[b->len - 1] != '{')
				buf_append(b, ",", 1);
			json_str(b, k);
			buf_append(b, ":", 1);
			json_str(b, v ? v : "");
		}
		free(k);
		free(v);
	}
	buf_append_str(b, "}");
}

/* One recipient as the JSON object the record_batch statement reads:
 * what the record says, repaired and capped per field. */
static void
bounce_json(struct buf *b, const struct record *rec,
    const struct record_rcpt *x, struct repaired *rp)
{
	char *rcpt, *action, *domain = NULL, *at;
	const char *why = NULL;

	rcpt = field(x->recipient, STORE_TEXT_MAX, "recipient", rp);
	ascii_lower_s(rcpt);
	if (rcpt != NULL && (at = strrchr(rcpt, '@')) != NULL && at[1] != '\0')
		domain = at + 1;
	buf_append_str(b, "{\"recipient\":");
	json_str(b, rcpt);
	buf_append_str(b, ",\"recipient_domain\":");
	json_str(b, domain);
	free(rcpt);
	json_field(b, "recipient_source", x->recipient_source, STORE_TEXT_MAX,
	    rp);
	json_field(b, "final_recipient", x->final_recipient, STORE_TEXT_MAX,
	    rp);
	json_field(b, "original_recipient", x->original_recipient,
	    STORE_TEXT_MAX, rp);
	buf_append_str(b, ",\"class\":");
	json_str(b, record_class_name(x->cls));
	json_field(b, "reason", x->reason ? x->reason : "undefined",
	    STORE_TEXT_MAX, rp);
	action = field(x->action, STORE_TEXT_MAX, "action", rp);
	ascii_lower_s(action);
	buf_append_str(b, ",\"action\":");
	json_str(b, action);
	free(action);
	json_field(b, "status", x->status, STORE_TEXT_MAX, rp);
	if (x->reply_code > 0 && x->reply_code < 1000)
		buf_appendf(b, ",\"reply_code\":%d", x->reply_code);
	json_field(b, "diagnostic", x->diagnostic, STORE_DIAGNOSTIC_MAX, rp);
	json_field(b, "remote_mta", x->remote_mta, STORE_TEXT_MAX, rp);
	json_field(b, "reporting_mta", rec->reporting_mta, STORE_TEXT_MAX, rp);
	json_field(b, "feedback_type", x->feedback_type, STORE_TEXT_MAX, rp);
	json_field(b, "original_message_id", rec->orig_message_id,
	    STORE_TEXT_MAX, rp);
	json_field(b, "campaign_id", rec->campaign_id, STORE_TEXT_MAX, rp);
	json_field(b, "list_id", rec->list_id, STORE_TEXT_MAX, rp);
	json_field(b, "subscriber_id", rec->subscriber_id, STORE_TEXT_MAX, rp);
	headers_json(b, rec, rp);
	if (x->not_counted)
		why = x->not_counted_because ? x->not_counted_because
		                             : "not_counted";
	buf_appendf(b, ",\"counts\":%s", why ? "false" : "true");
	json_field(b, "not_counted_because", why, STORE_TEXT_MAX, rp);
	json_field(b, "rule", x->rule, STORE_TEXT_MAX, rp);
	/* 0: unknown, the row gets the time it is written */
	if (x->bounced_at > 0)
		buf_appendf(b, ",\"bounced_at\":%" PRId64, x->bounced_at);
	buf_append_str(b, "}");
}

static char *
int_str(int64_t v)
{
	return xasprintf("%" PRId64, v);
}

static void
rec_build(struct store *s, const struct store_message *m, struct rec *r)
{
	static const struct record none; /* no record: not a bounce */
	const struct record *rec = m->rec != NULL ? m->rec : &none;
	struct repaired rp = {.n = 0};
	struct buf js, arr;
	size_t i;

	memset(r, 0, sizeof(*r));
	if (!store_uidl_ok(m->uidl)) {
		r->invalid = 1;
		snprintf(r->why, sizeof(r->why),
		    "UIDL is empty, too long or not UTF-8");
		return;
	}
	r->val[P_MAILBOX] = int_str(m->mailbox_id);
	r->val[P_UIDL] = xstrdup(m->uidl);
	r->val[P_KIND] = xstrdup(record_kind_name(rec->kind));
	r->val[P_MSGID] =
	    field(rec->message_id, STORE_TEXT_MAX, "email_message_id", &rp);
	r->val[P_SUBJECT] = field(rec->subject, STORE_TEXT_MAX, "subject", &rp);
	r->val[P_RMTA] =
	    field(rec->reporting_mta, STORE_TEXT_MAX, "reporting_mta", &rp);
	r->val[P_REPORTED] = rec->date > 0 ? int_str(rec->date) : NULL;
	r->val[P_SIZE] = m->size >= 0 ? int_str(m->size) : NULL;
	r->val[P_TRUNC] = xstrdup(rec->truncated ? "t" : "f");
	r->val[P_DELETING] = xstrdup(m->deleting ? "t" : "f");
	/* a message that is not a bounce is kept whole (as fetched, up to
	 * max_message_bytes): deleting it from the server must lose nothing;
	 * database.raw_max_bytes caps the raw bytes of reports only */
	if (m->raw != NULL &&
	    (s->raw_max > 0 || rec->kind == RECORD_KIND_UNKNOWN)) {
		size_t keep = m->raw_len;

		if (rec->kind != RECORD_KIND_UNKNOWN &&
		    (int64_t)keep > s->raw_max)
			keep = (size_t)s->raw_max;
		if (keep > INT32_MAX)
			keep = INT32_MAX;
		r->val[P_RAW] = (char *)m->raw;
		r->len[P_RAW] = (int)keep;
		r->fmt[P_RAW] = 1;
		r->val[P_RAWTRUNC] = xstrdup(keep < m->raw_len ? "t" : "f");
	} else
		r->val[P_RAWTRUNC] = xstrdup("f");
	buf_init(&js, BIG_BUF);
	buf_append(&js, "[", 1);
	for (i = 0; i < rec->nrcpts; i++) {
		if (i > 0)
			buf_append(&js, ",", 1);
		bounce_json(&js, rec, &rec->rcpts[i], &rp);
	}
	buf_append(&js, "]", 1);
	r->val[P_BOUNCES] = xstrdup(buf_cstr(&js));
	buf_free(&js);
	if (rp.n > 0) {
		buf_init(&arr, BIG_BUF);
		buf_append(&arr, "{", 1);
		for (i = 0; i < rp.n; i++)
			store_array_elem(&arr, rp.names[i]);
		buf_append(&arr, "}", 1);
		r->val[P_REPAIRED] = xstrdup(buf_cstr(&arr));
		buf_free(&arr);
	}
}

static void
rec_free(struct rec *r)
{
	int i;

	for (i = 0; i < NPARAM; i++)
		if (i != P_RAW)
			free(r->val[i]);
	memset(r, 0, sizeof(*r));
}

struct batch_arg {
	const struct store_message *msgs;
	struct rec *recs;
	size_t n;
	enum store_result *results;
	int refused;
};

static void
set_result(enum store_result *slot, enum store_result v)
{
	/* a retry after an unconfirmed COMMIT sees its own rows again */
	if (*slot == STORE_WRITTEN && v == STORE_REPLAYED)
		return;
	*slot = v;
}

/* Appends a JSON value: a number written by int_str(), or null. */
static void
json_num(struct buf *b, const char *key, const char *v)
{
	buf_appendf(b, ",\"%s\":", key);
	buf_append_str(b, v != NULL ? v : "null");
}

static void
put_be32(struct buf *b, uint32_t v)
{
	unsigned char c[4] = {(unsigned char)(v >> 24),
	    (unsigned char)(v >> 16), (unsigned char)(v >> 8),
	    (unsigned char)v};

	buf_append(b, c, 4);
}

/* The parameters of record_batch for recs idx[0..k): the messages as one
 * JSON array into js, their raw bytes as a bytea[] in PostgreSQL's binary
 * array format into raw. */
static void
batch_params(const struct batch_arg *a, const size_t *idx, size_t k,
    struct buf *js, struct buf *raw)
{
	size_t i;
	int nulls = 0;

	for (i = 0; i < k; i++)
		if (a->recs[idx[i]].val[P_RAW] == NULL)
			nulls = 1;
	put_be32(raw, 1); /* dimensions */
	put_be32(raw, (uint32_t)nulls);
	put_be32(raw, 17); /* element type: bytea */
	put_be32(raw, (uint32_t)k);
	put_be32(raw, 1); /* lower bound */
	buf_append(js, "[", 1);
	for (i = 0; i < k; i++) {
		const struct rec *r = &a->recs[idx[i]];

		if (r->val[P_RAW] == NULL)
			put_be32(raw, UINT32_MAX); /* -1: NULL */
		else {
			put_be32(raw, (uint32_t)r->len[P_RAW]);
			buf_append(raw, r->val[P_RAW], (size_t)r->len[P_RAW]);
		}
		buf_appendf(js, "%s{\"i\":%zu", i > 0 ? "," : "", i + 1);
		json_num(js, "mailbox_id", r->val[P_MAILBOX]);
		buf_append_str(js, ",\"uidl\":");
		json_str(js, r->val[P_UIDL]);
		buf_append_str(js, ",\"kind\":");
		json_str(js, r->val[P_KIND]);
		buf_append_str(js, ",\"email_message_id\":");
		json_str(js, r->val[P_MSGID]);
		buf_append_str(js, ",\"subject\":");
		json_str(js, r->val[P_SUBJECT]);
		buf_append_str(js, ",\"reporting_mta\":");
		json_str(js, r->val[P_RMTA]);
		json_num(js, "reported_at", r->val[P_REPORTED]);
		json_num(js, "size_bytes", r->val[P_SIZE]);
		buf_appendf(js, ",\"truncated\":%s,\"raw_truncated\":%s",
		    r->val[P_TRUNC][0] == 't' ? "true" : "false",
		    r->val[P_RAWTRUNC][0] == 't' ? "true" : "false");
		buf_append_str(js, ",\"repaired\":");
		json_str(js, r->val[P_REPAIRED]);
		buf_appendf(js, ",\"deleting\":%s",
		    r->val[P_DELETING][0] == 't' ? "true" : "false");
		buf_append_str(js, ",\"bounces\":");
		buf_append_str(js, r->val[P_BOUNCES]);
		buf_append(js, "}", 1);
	}
	buf_append(js, "]", 1);
}

/* Records idx[0..k) with one statement (one transaction).  0: all results
 * set; -1: the database refused something (nothing written, err set);
 * RETRY: connection lost. */
static int
send_batch(struct store *s, struct batch_arg *a, const size_t *idx, size_t k,
    struct err *err)
{
	struct buf js, raw;
	const char *v[2];
	int len[2], fmt[2] = {0, 1};
	PGresult *r = NULL;
	unsigned char *written = NULL;
	size_t i;
	int rc;

	buf_init(&js, BIG_BUF);
	buf_init(&raw, BIG_BUF);
	batch_params(a, idx, k, &js, &raw);
	v[0] = buf_cstr(&js);
	len[0] = 0;
	v[1] = raw.data;
	len[1] = raw.len > INT32_MAX ? INT32_MAX : (int)raw.len;
	r = PQexecPrepared(s->conn, "record_batch", 2, v, len, fmt, 0);
	rc = store_check(s, r, PGRES_TUPLES_OK, "record", err);
	if (rc != 0)
		goto out;
	written = xcalloc(k, 1);
	for (int t = 0; t < PQntuples(r); t++) {
		long n = strtol(PQgetvalue(r, t, 0), NULL, 10);

		if (n >= 1 && (size_t)n <= k)
			written[n - 1] = 1;
	}
	for (i = 0; i < k; i++)
		set_result(&a->results[idx[i]],
		    written[i] ? STORE_WRITTEN : STORE_REPLAYED);
out:
	free(written);
	PQclear(r);
	buf_free(&js);
	buf_free(&raw);
	return rc;
}

static int
op_record_batch(struct store *s, void *argp, struct err *err)
{
	struct batch_arg *a = argp;
	size_t *idx, i, k = 0;
	int rc;

	rc = store_prepare(s, err);
	if (rc != 0)
		return rc;
	idx = xcalloc(a->n ? a->n : 1, sizeof(*idx));
	for (i = 0; i < a->n; i++)
		if (a->results[i] == STORE_PENDING)
			idx[k++] = i;
	rc = k ? send_batch(s, a, idx, k, err) : 0;
	if (rc == -1) {
		/* refused: find the culprit, one message per transaction */
		struct err e1;

		rc = 0;
		for (i = 0; i < k && rc == 0; i++) {
			int r1;

			if (a->results[idx[i]] != STORE_PENDING)
				continue;
			r1 = send_batch(s, a, &idx[i], 1, &e1);
			if (r1 == -1) {
				a->results[idx[i]] = STORE_REFUSED;
				a->refused++;
				*err = e1;
			} else
				rc = r1;
		}
	}
	free(idx);
	return rc;
}

int
store_record_batch(struct store *s, const struct store_message *msgs, size_t n,
    enum store_result *results_out, struct err *err)
{
	struct batch_arg a;
	size_t start, i;
	int rc = 0;

	for (i = 0; i < n; i++)
		results_out[i] = STORE_PENDING;
	for (start = 0; start < n && rc == 0; start += (size_t)s->batch_size) {
		size_t cnt = n - start;

		if (cnt > (size_t)s->batch_size)
			cnt = (size_t)s->batch_size;
		a.msgs = msgs + start;
		a.n = cnt;
		a.results = results_out + start;
		a.refused = 0;
		a.recs = xcalloc(cnt, sizeof(*a.recs));
		for (i = 0; i < cnt; i++) {
			rec_build(s, &a.msgs[i], &a.recs[i]);
			if (a.recs[i].invalid) {
				a.results[i] = STORE_REFUSED;
				err_set(err, "%s", a.recs[i].why);
			}
		}
		rc = store_run(s, op_record_batch, &a, err);
		for (i = 0; i < cnt; i++)
			rec_free(&a.recs[i]);
		free(a.recs);
	}
	return rc;
}

int
store_record(struct store *s, const struct store_message *m,
    enum store_result *result_out, struct err *err)
{
	return store_record_batch(s, m, 1, result_out, err);
}

struct failure_arg {
	const char *v[9];
	int lens[9];
	int fmts[9];
	int quarantined;
};

static int
op_failure(struct store *s, void *argp, struct err *err)
{
	struct failure_arg *a = argp;
	PGresult *r;
	int rc;

	rc = store_prepare(s, err);
	if (rc != 0)
		return rc;
	r = PQexecPrepared(s->conn, "record_failure", 9, a->v, a->lens, a->fmts,
	    0);
	rc = store_check(s, r, PGRES_TUPLES_OK, "record_failure", err);
	if (rc == 0 && PQntuples(r) > 0)
		a->quarantined =
		    strcmp(PQgetvalue(r, 0, 0), "quarantined") == 0;
	PQclear(r);
	if (rc == 0 && a->quarantined == -1) {
		/* already recorded or quarantined: say which */
		rc = store_exec_prep(s, "outcome", 2, a->v, PGRES_TUPLES_OK, &r,
		    err);
		if (rc == 0) {
			a->quarantined = PQntuples(r) > 0 &&
			    strcmp(PQgetvalue(r, 0, 0), "quarantined") == 0;
			PQclear(r);
		}
	}
	return rc;
}

int
store_record_failure(struct store *s, const struct store_failure *f,
    int *quarantined_out, struct err *err)
{
	struct failure_arg a;
	static uint64_t failure_reports;
	char *mb = NULL, *size = NULL, *q = NULL, *error = NULL;
	char *attempt = NULL;
	size_t keep = 0;
	int rc;

	if (quarantined_out)
		*quarantined_out = 0;
	if (!store_uidl_ok(f->uidl)) {
		err_set(err,
		    "record_failure: UIDL is empty, too long or not "
		    "UTF-8");
		return -1;
	}
	memset(&a, 0, sizeof(a));
	mb = int_str(f->mailbox_id);
	size = f->size >= 0 ? int_str(f->size) : NULL;
	q = xasprintf("%d", s->quarantine_after);
	error = f->error ? store_text_clean(f->error, strlen(f->error),
	                       STORE_DIAGNOSTIC_MAX, NULL)
	                 : xstrdup("failed");
	a.v[0] = mb;
	a.v[1] = f->uidl;
	a.v[2] = error;
	a.v[3] = size;
	a.v[4] = f->truncated ? "t" : "f";
	if (f->raw != NULL && s->raw_max > 0) {
		keep = f->raw_len;
		if ((int64_t)keep > s->raw_max)
			keep = (size_t)s->raw_max;
		if (keep > INT32_MAX)
			keep = INT32_MAX;
		a.v[5] = f->raw;
		a.lens[5] = (int)keep;
		a.fmts[5] = 1;
	}
	a.v[6] = q;
	a.v[7] = f->raw != NULL && keep < f->raw_len ? "t" : "f";
	/* unique per report: the same report retried is recognised */
	attempt = xasprintf("%d.%" PRId64 ".%" PRIu64, (int)getpid(), now_ms(),
	    __atomic_add_fetch(&failure_reports, 1, __ATOMIC_RELAXED));
	a.v[8] = attempt;
	a.quarantined = -1;
	rc = store_run(s, op_failure, &a, err);
	if (rc == 0 && quarantined_out)
		*quarantined_out = a.quarantined == 1;
	free(mb);
	free(size);
	free(q);
	free(error);
	free(attempt);
	return rc;
}
