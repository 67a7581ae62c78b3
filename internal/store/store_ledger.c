/*
 * store_ledger.c - the UIDL ledger and the mailboxes: mailbox rows, the
 * first-pass mark and per-mailbox advisory locks; the state of each UIDL
 * listed, the crash marks of an attempt in progress, deletion marks,
 * pruning in keep mode, and the retention of the bounce history and the
 * ledger.  Every operation runs through store_run() (store.c).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_int.h"

/* Advisory lock keys: (class, mailbox id) for mailbox passes; 'boun' in
 * ASCII. */
#define MAILBOX_LOCK_CLASS 0x626f756e

/* This part's statements, prepared on every connection (store.c). */
const struct store_stmt store_ledger_stmts[] = {
    {"uidl_states",
        /* one index scan for the whole (sorted, distinct) list: the
         * index walks the array itself, instead of a join that runs
         * the index scan once per UIDL (ten times slower at 100,000);
         * the rows found are matched to the list by UIDL */
        "SELECT m.uidl, m.outcome, "
        "coalesce(extract(epoch FROM m.fetched_at)::bigint, 0), "
        "m.deleted_at IS NOT NULL, coalesce(m.failures, 0) "
        "FROM messages m WHERE m.mailbox_id = $1::bigint "
        "AND m.uidl = ANY ($2::text[])"},
    {"mark_deleted",
        "UPDATE messages SET deleted_at = now()"
        " WHERE mailbox_id = $1::bigint AND uidl = ANY ($2::text[])"
        " AND deleted_at IS NULL"},
    {"unmark_deleted",
        "WITH u AS (UPDATE messages SET deleted_at = NULL"
        "  WHERE mailbox_id = $1::bigint AND uidl = ANY ($2::text[])"
        "  AND deleted_at IS NOT NULL)"
        " UPDATE mailboxes SET listed_at = now()"
        " WHERE id = $1::bigint AND $3::boolean"},
    /* before decoding: each message of a batch carries a mark that only
     * a finished attempt (recorded, or a failure report) replaces; the
     * ones still carrying a mark from an earlier attempt are returned */
    {"mark_trying",
        "WITH b AS (SELECT DISTINCT u AS uidl FROM unnest($2::text[]) u),"
        " old AS (SELECT m.uidl, m.error = $4 AS alone"
        "  FROM messages m JOIN b USING (uidl)"
        "  WHERE m.mailbox_id = $1::bigint AND m.outcome = 'failed'"
        "  AND m.error IN ($3, $4)),"
        " up AS (INSERT INTO messages AS t (mailbox_id, uidl, outcome, error)"
        "  SELECT $1::bigint, uidl, 'failed', $3 FROM b"
        "  ON CONFLICT (mailbox_id, uidl) DO UPDATE SET error = $3"
        "  WHERE t.outcome = 'failed' AND t.error IS DISTINCT FROM $4)"
        " SELECT uidl, alone FROM old"},
    /* a suspect, tried alone: an attempt alone that never finished counts
     * as a failure, and enough of them quarantine it */
    {"mark_alone",
        "UPDATE messages SET"
        "  failures = failures + (error IS NOT DISTINCT FROM $4)::int,"
        "  outcome = CASE WHEN failures"
        "   + (error IS NOT DISTINCT FROM $4)::int >= $5::int"
        "   THEN 'quarantined' ELSE 'failed' END,"
        "  error = CASE WHEN failures"
        "   + (error IS NOT DISTINCT FROM $4)::int >= $5::int"
        "   THEN $3 ELSE $4 END"
        " WHERE mailbox_id = $1::bigint AND uidl = $2 AND outcome = 'failed'"
        " RETURNING outcome"},
    {"prune_gone",
        /* reads the rows still on the server (messages_on_server_idx)
         * and the server's list once, as a hash anti-join */
        "UPDATE messages m SET deleted_at = now()"
        " WHERE m.mailbox_id = $1::bigint AND m.deleted_at IS NULL"
        " AND NOT EXISTS (SELECT 1 FROM unnest($2::text[]) AS u(uidl)"
        "  WHERE u.uidl = m.uidl)"},
    {"prune_raw",
        /* retention.raw, through messages_raw_idx; failures and
         * messages that are not bounces keep theirs */
        "UPDATE messages SET raw = NULL"
        " WHERE mailbox_id = $1::bigint AND raw IS NOT NULL"
        " AND fetched_at < now() - make_interval(secs => $2::bigint)"
        " AND outcome = 'recorded' AND kind <> 'unknown'"},
    {"mailbox",
        "INSERT INTO mailboxes AS t (name, host, username)"
        " VALUES ($1, $2, $3) ON CONFLICT (name) DO UPDATE SET"
        "  host = coalesce(EXCLUDED.host, t.host),"
        "  username = coalesce(EXCLUDED.username, t.username)"
        " RETURNING id"},
    {"first_pass",
        "SELECT first_pass_completed_at IS NULL FROM mailboxes"
        " WHERE id = $1::bigint"},
    {"first_pass_done",
        "UPDATE mailboxes SET first_pass_completed_at = now()"
        " WHERE id = $1::bigint AND first_pass_completed_at IS NULL"},
    {"trylock", "SELECT pg_try_advisory_lock($1::integer, $2::integer)"},
    {"unlock", "SELECT pg_advisory_unlock($1::integer, $2::integer)"},
};
const size_t store_ledger_stmts_n =
    sizeof(store_ledger_stmts) / sizeof(store_ledger_stmts[0]);

/* ---- mailboxes, first pass, locks ---- */

struct mailbox_arg {
	const char *v[3];
	int64_t id;
};

static int
op_mailbox(struct store *s, void *argp, struct err *err)
{
	struct mailbox_arg *a = argp;
	PGresult *r = NULL;
	int rc;

	rc = store_exec_prep(s, "mailbox", 3, a->v, PGRES_TUPLES_OK, &r, err);
	if (rc == 0) {
		struct err e2;

		if (parse_int64(PQgetvalue(r, 0, 0), 1, INT64_MAX, &a->id, &e2))
			rc = -1;
	}
	PQclear(r);
	return rc;
}

int
store_mailbox_id(struct store *s, const char *name, const char *host,
    const char *username, int64_t *id_out, struct err *err)
{
	struct mailbox_arg a;
	char *c[3] = {NULL, NULL, NULL};
	const char *in[3] = {name, host, username};
	int i, rc;

	if (name == NULL || *name == '\0') {
		err_set(err, "mailbox: empty name");
		return -1;
	}
	for (i = 0; i < 3; i++) {
		c[i] = in[i] ? store_text_clean(in[i], strlen(in[i]),
		                   STORE_TEXT_MAX, NULL)
		             : NULL;
		a.v[i] = c[i];
	}
	a.id = 0;
	rc = store_run(s, op_mailbox, &a, err);
	*id_out = a.id;
	for (i = 0; i < 3; i++)
		free(c[i]);
	return rc;
}

struct first_pass_arg {
	int64_t mailbox_id;
	int done; /* 1: mark done */
	int pending;
};

static int
op_first_pass(struct store *s, void *argp, struct err *err)
{
	struct first_pass_arg *a = argp;
	char mb[24];
	const char *v[1] = {mb};
	PGresult *r = NULL;
	int rc;

	snprintf(mb, sizeof(mb), "%" PRId64, a->mailbox_id);
	if (a->done)
		return store_exec_prep(s, "first_pass_done", 1, v,
		    PGRES_COMMAND_OK, NULL, err);
	rc = store_exec_prep(s, "first_pass", 1, v, PGRES_TUPLES_OK, &r, err);
	if (rc == 0 && PQntuples(r) == 0) {
		err_set(err, "first pass: no mailbox %" PRId64, a->mailbox_id);
		rc = -1;
	}
	if (rc == 0)
		a->pending = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
	PQclear(r);
	return rc;
}

int
store_mailbox_first_pass(struct store *s, int64_t mailbox_id, int *pending_out,
    struct err *err)
{
	struct first_pass_arg a = {mailbox_id, 0, 0};
	int rc = store_run(s, op_first_pass, &a, err);

	*pending_out = rc == 0 && a.pending;
	return rc;
}

int
store_mailbox_first_pass_done(struct store *s, int64_t mailbox_id,
    struct err *err)
{
	struct first_pass_arg a = {mailbox_id, 1, 0};

	return store_run(s, op_first_pass, &a, err);
}

struct lock_arg {
	const char *fn;
	int64_t mailbox_id;
	int result;
};

static int
op_lock(struct store *s, void *argp, struct err *err)
{
	struct lock_arg *a = argp;
	char cls[16], obj[24];
	const char *v[2] = {cls, obj};
	PGresult *r = NULL;
	int rc;

	snprintf(cls, sizeof(cls), "%d", MAILBOX_LOCK_CLASS);
	/* the two-key form takes int4: fold larger ids */
	snprintf(obj, sizeof(obj), "%" PRId32,
	    (int32_t)(uint32_t)(a->mailbox_id ^ (a->mailbox_id >> 32)));
	rc = store_exec_prep(s, a->fn, 2, v, PGRES_TUPLES_OK, &r, err);
	if (rc == 0)
		a->result = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
	PQclear(r);
	return rc;
}

int
store_mailbox_trylock(struct store *s, int64_t mailbox_id, int *locked_out,
    struct err *err)
{
	struct lock_arg a = {"trylock", mailbox_id, 0};
	int rc = store_run(s, op_lock, &a, err);

	*locked_out = rc == 0 && a.result;
	return rc;
}

int
store_mailbox_unlock(struct store *s, int64_t mailbox_id, struct err *err)
{
	struct lock_arg a = {"unlock", mailbox_id, 0};

	/* A lost connection released the lock already: nothing to retry. */
	if (s->conn == NULL || PQstatus(s->conn) != CONNECTION_OK)
		return 0;
	if (op_lock(s, &a, err) == RETRY) {
		store_drop_conn(s);
		return 0;
	}
	return 0;
}

/* ---- ledger queries ---- */

struct uidl_ent {
	const char *uidl;
	size_t i; /* input index */
};

struct uidl_arg {
	int64_t mailbox_id;
	const char *array;
	const struct uidl_ent *ents; /* sorted by UIDL (bytes), then i */
	size_t nents;
	struct store_uidl_info *info;
};

static int
uidl_ent_cmp(const void *a, const void *b)
{
	const struct uidl_ent *x = a, *y = b;
	int c = strcmp(x->uidl, y->uidl);

	if (c != 0)
		return c;
	return (x->i > y->i) - (x->i < y->i);
}

/* Index of the first entry whose UIDL is u, or nents when none. */
static size_t
uidl_ent_find(const struct uidl_ent *e, size_t nents, const char *u)
{
	size_t lo = 0, hi = nents;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (strcmp(e[mid].uidl, u) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < nents && strcmp(e[lo].uidl, u) == 0 ? lo : nents;
}

static int
op_uidl_states(struct store *s, void *argp, struct err *err)
{
	struct uidl_arg *a = argp;
	char mb[24];
	const char *v[2] = {mb, a->array};
	PGresult *r = NULL;
	int rc, i, n;

	snprintf(mb, sizeof(mb), "%" PRId64, a->mailbox_id);
	rc = store_exec_prep(s, "uidl_states", 2, v, PGRES_TUPLES_OK, &r, err);
	if (rc != 0)
		return rc;
	n = PQntuples(r);
	for (i = 0; i < n; i++) {
		struct store_uidl_info in;
		int64_t t = 0, f = 0;
		const char *outcome;
		size_t j;

		memset(&in, 0, sizeof(in));
		parse_int64(PQgetvalue(r, i, 2), INT64_MIN, INT64_MAX, &t,
		    NULL);
		parse_int64(PQgetvalue(r, i, 4), 0, INT32_MAX, &f, NULL);
		in.fetched_at = t;
		in.deleted = strcmp(PQgetvalue(r, i, 3), "t") == 0;
		in.failures = (int)f;
		outcome = PQgetisnull(r, i, 1) ? "" : PQgetvalue(r, i, 1);
		if (strcmp(outcome, "recorded") == 0)
			in.state = STORE_UIDL_RECORDED;
		else if (strcmp(outcome, "quarantined") == 0)
			in.state = STORE_UIDL_QUARANTINED;
		else
			in.state = STORE_UIDL_NEW;
		/* every position of this UIDL in the list (a server may
		 * list one twice) */
		for (j = uidl_ent_find(a->ents, a->nents, PQgetvalue(r, i, 0));
		     j < a->nents &&
		     strcmp(a->ents[j].uidl, PQgetvalue(r, i, 0)) == 0;
		     j++)
			a->info[a->ents[j].i] = in;
	}
	PQclear(r);
	return 0;
}

int
store_uidl_states(struct store *s, int64_t mailbox_id, const char *const *uidls,
    size_t n, struct store_uidl_info *info_out, struct err *err)
{
	struct uidl_arg a;
	struct uidl_ent *ents;
	struct buf arr;
	size_t i, k = 0;
	int rc;

	ents = xcalloc(n ? n : 1, sizeof(*ents));
	for (i = 0; i < n; i++) {
		memset(&info_out[i], 0, sizeof(info_out[i]));
		/* a UIDL the ledger cannot hold is never fetched */
		if (!store_uidl_ok(uidls[i])) {
			info_out[i].state = STORE_UIDL_QUARANTINED;
			continue;
		}
		info_out[i].state = STORE_UIDL_NEW;
		ents[k].uidl = uidls[i];
		ents[k].i = i;
		k++;
	}
	qsort(ents, k, sizeof(*ents), uidl_ent_cmp);
	buf_init(&arr, BIG_BUF);
	buf_append(&arr, "{", 1);
	for (i = 0; i < k; i++)
		if (i == 0 || strcmp(ents[i].uidl, ents[i - 1].uidl) != 0)
			store_array_elem(&arr, ents[i].uidl);
	buf_append(&arr, "}", 1);
	a.mailbox_id = mailbox_id;
	a.array = buf_cstr(&arr);
	a.ents = ents;
	a.nents = k;
	a.info = info_out;
	rc = k == 0 ? 0 : store_run(s, op_uidl_states, &a, err);
	free(ents);
	buf_free(&arr);
	return rc;
}

struct list_arg {
	const char *stmt;
	int64_t mailbox_id;
	const char *array;
	int64_t raw_keep_s;
	int64_t changed;
	int listed_whole;
};

static int
op_mark_deleted(struct store *s, void *argp, struct err *err)
{
	struct list_arg *a = argp;
	char mb[24];
	const char *v[2] = {mb, a->array};
	PGresult *r = NULL;
	int rc;

	snprintf(mb, sizeof(mb), "%" PRId64, a->mailbox_id);
	rc =
	    store_exec_prep(s, "mark_deleted", 2, v, PGRES_COMMAND_OK, &r, err);
	if (rc == 0)
		parse_int64(PQcmdTuples(r), 0, INT64_MAX, &a->changed, NULL);
	PQclear(r);
	return rc;
}

/* Builds an array literal of the valid UIDLs. */
static void
uidl_array(struct buf *b, const char *const *uidls, size_t n)
{
	size_t i;

	buf_init(b, BIG_BUF);
	buf_append(b, "{", 1);
	for (i = 0; i < n; i++)
		if (store_uidl_ok(uidls[i]))
			store_array_elem(b, uidls[i]);
	buf_append(b, "}", 1);
}

int
store_mark_deleted(struct store *s, int64_t mailbox_id,
    const char *const *uidls, size_t n, struct err *err)
{
	struct list_arg a = {"mark_deleted", mailbox_id, NULL, 0, 0, 0};
	struct buf arr;
	int rc;

	if (n == 0)
		return 0;
	uidl_array(&arr, uidls, n);
	a.array = buf_cstr(&arr);
	rc = store_run(s, op_mark_deleted, &a, err);
	buf_free(&arr);
	return rc;
}

static int
op_unmark_deleted(struct store *s, void *argp, struct err *err)
{
	struct list_arg *a = argp;
	char mb[24];
	const char *v[3] = {mb, a->array, a->listed_whole ? "true" : "false"};
	PGresult *r = NULL;
	int rc;

	snprintf(mb, sizeof(mb), "%" PRId64, a->mailbox_id);
	rc = store_exec_prep(s, "unmark_deleted", 3, v, PGRES_COMMAND_OK, &r,
	    err);
	PQclear(r);
	return rc;
}

int
store_unmark_deleted(struct store *s, int64_t mailbox_id,
    const char *const *uidls, size_t n, int listed_whole, struct err *err)
{
	struct list_arg a = {"unmark_deleted", mailbox_id, NULL, 0, 0,
	    listed_whole};
	struct buf arr;
	int rc;

	if (n == 0 && !listed_whole)
		return 0;
	uidl_array(&arr, uidls, n);
	a.array = buf_cstr(&arr);
	rc = store_run(s, op_unmark_deleted, &a, err);
	buf_free(&arr);
	return rc;
}

/* The marks of an attempt in progress (messages.error while it runs). */
#define MARK_BATCH "interrupted while being decoded or stored"
#define MARK_ALONE "interrupted while being decoded or stored alone"
#define MARK_QUARANTINED \
	"quarantined: the process ended while decoding or storing it, on " \
	"several passes"

struct trying_arg {
	int64_t mailbox_id;
	const char *array;
	const char *const *uidls;
	size_t n;
	int *suspect;
};

static int
op_mark_trying(struct store *s, void *argp, struct err *err)
{
	struct trying_arg *a = argp;
	char mb[24];
	const char *v[4] = {mb, a->array, MARK_BATCH, MARK_ALONE};
	PGresult *r = NULL;
	int rc;

	snprintf(mb, sizeof(mb), "%" PRId64, a->mailbox_id);
	rc = store_exec_prep(s, "mark_trying", 4, v, PGRES_TUPLES_OK, &r, err);
	for (size_t i = 0; i < a->n; i++)
		a->suspect[i] = 0;
	for (int row = 0; rc == 0 && row < PQntuples(r); row++) {
		const char *u = PQgetvalue(r, row, 0);

		for (size_t i = 0; i < a->n; i++)
			if (strcmp(a->uidls[i], u) == 0)
				a->suspect[i] =
				    PQgetvalue(r, row, 1)[0] == 't' ? 2 : 1;
	}
	PQclear(r);
	return rc;
}

int
store_mark_trying(struct store *s, int64_t mailbox_id, const char *const *uidls,
    size_t n, int *suspect, struct err *err)
{
	struct trying_arg a = {mailbox_id, NULL, uidls, n, suspect};
	struct buf arr;
	int rc;

	if (n == 0)
		return 0;
	uidl_array(&arr, uidls, n);
	a.array = buf_cstr(&arr);
	rc = store_run(s, op_mark_trying, &a, err);
	buf_free(&arr);
	return rc;
}

struct alone_arg {
	const char *v[5];
	int quarantined;
};

static int
op_mark_alone(struct store *s, void *argp, struct err *err)
{
	struct alone_arg *a = argp;
	PGresult *r = NULL;
	int rc;

	rc =
	    store_exec_prep(s, "mark_alone", 5, a->v, PGRES_TUPLES_OK, &r, err);
	a->quarantined = rc == 0 && PQntuples(r) > 0 &&
	    strcmp(PQgetvalue(r, 0, 0), "quarantined") == 0;
	PQclear(r);
	return rc;
}

int
store_mark_alone(struct store *s, int64_t mailbox_id, const char *uidl,
    int *quarantined_out, struct err *err)
{
	struct alone_arg a = {{0}, 0};
	char mb[24], q[16];
	int rc;

	*quarantined_out = 0;
	if (!store_uidl_ok(uidl)) {
		err_set(err,
		    "mark_alone: UIDL is empty, too long or not UTF-8");
		return -1;
	}
	snprintf(mb, sizeof(mb), "%" PRId64, mailbox_id);
	snprintf(q, sizeof(q), "%d", s->quarantine_after);
	a.v[0] = mb;
	a.v[1] = uidl;
	a.v[2] = MARK_QUARANTINED;
	a.v[3] = MARK_ALONE;
	a.v[4] = q;
	rc = store_run(s, op_mark_alone, &a, err);
	if (rc == 0)
		*quarantined_out = a.quarantined;
	return rc;
}

static int
op_prune(struct store *s, void *argp, struct err *err)
{
	struct list_arg *a = argp;
	char mb[24], keep[24];
	const char *v[2] = {mb, a->array};
	const char *v2[2] = {mb, keep};
	PGresult *r = NULL;
	int64_t n1 = 0, n2 = 0;
	int rc;

	snprintf(mb, sizeof(mb), "%" PRId64, a->mailbox_id);
	snprintf(keep, sizeof(keep), "%" PRId64, a->raw_keep_s);
	rc = store_prepare(s, err);
	if (rc == 0)
		rc = store_exec_simple(s, "BEGIN", err);
	if (rc == 0 && a->array != NULL)
		rc = store_exec_prep(s, "prune_gone", 2, v, PGRES_COMMAND_OK,
		    &r, err);
	if (rc == 0) {
		if (r != NULL)
			parse_int64(PQcmdTuples(r), 0, INT64_MAX, &n1, NULL);
		PQclear(r);
		r = NULL;
		if (a->raw_keep_s >= 0) {
			rc = store_exec_prep(s, "prune_raw", 2, v2,
			    PGRES_COMMAND_OK, &r, err);
			if (rc == 0)
				parse_int64(PQcmdTuples(r), 0, INT64_MAX, &n2,
				    NULL);
			PQclear(r);
		}
	}
	if (rc == 0)
		rc = store_exec_simple(s, "COMMIT", err);
	if (rc == -1) {
		struct err ignore;

		store_exec_simple(s, "ROLLBACK", &ignore);
	}
	a->changed = n1 + n2;
	return rc;
}

int
store_prune(struct store *s, int64_t mailbox_id, const char *const *present,
    size_t n, int64_t raw_keep_s, int64_t *pruned_out, struct err *err)
{
	struct list_arg a = {"prune", mailbox_id, NULL, raw_keep_s, 0, 0};
	struct buf arr;
	int rc;

	uidl_array(&arr, present, n);
	a.array = present != NULL ? buf_cstr(&arr) : NULL;
	rc = store_run(s, op_prune, &a, err);
	if (pruned_out)
		*pruned_out = rc == 0 ? a.changed : 0;
	buf_free(&arr);
	return rc;
}

/* ---- retention ---- */

struct retention_arg {
	int64_t bounces_keep_s;
	int64_t ledger_keep_s;
	struct store_retention_result res;
};

/* Runs a one-value query (one optional text parameter); *out gets the
 * value. */
static int
query_int(struct store *s, const char *what, const char *sql, const char *param,
    int64_t *out, struct err *err)
{
	const char *v[1] = {param};
	PGresult *r =
	    PQexecParams(s->conn, sql, param ? 1 : 0, NULL, v, NULL, NULL, 0);
	int rc = store_check(s, r, PGRES_TUPLES_OK, what, err);

	*out = 0;
	if (rc == 0 && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0))
		parse_int64(PQgetvalue(r, 0, 0), INT64_MIN, INT64_MAX, out,
		    NULL);
	PQclear(r);
	return rc;
}

static int
op_retention(struct store *s, void *argp, struct err *err)
{
	struct retention_arg *a = argp;
	char keep[24];
	int64_t n = 0;
	int rc;

	/* each statement is its own transaction, and each can be run
	 * again after a lost connection: what was done is not redone */
	rc = query_int(s, "bounce_partitions_ensure",
	    "SELECT bounce_partitions_ensure(1)", NULL, &n, err);
	if (rc != 0)
		return rc;
	a->res.partitions += n;
	/* the rules read what is older than soft_window's month as sums:
	 * moved on a month when due */
	rc = query_int(s, "suppression_fold_history",
	    "SELECT suppression_fold_history()", NULL, &n, err);
	if (rc != 0)
		return rc;
	if (a->bounces_keep_s > 0) {
		snprintf(keep, sizeof(keep), "%" PRId64, a->bounces_keep_s);
		rc = query_int(s, "bounce_history_expire",
		    "SELECT bounce_history_expire("
		    "make_interval(secs => $1::bigint))",
		    keep, &n, err);
		if (rc != 0)
			return rc;
		a->res.bounces += n;
	}
	if (a->ledger_keep_s > 0) {
		snprintf(keep, sizeof(keep), "%" PRId64, a->ledger_keep_s);
		/* in chunks, so that no transaction holds many row locks */
		do {
			rc = query_int(s, "ledger_expire",
			    "SELECT ledger_expire("
			    "make_interval(secs => $1::bigint), 10000)",
			    keep, &n, err);
			if (rc != 0)
				return rc;
			a->res.ledger += n;
		} while (n >= 10000 && !store_stopped(s));
	}
	return 0;
}

int
store_apply_retention(struct store *s, int64_t bounces_keep_s,
    int64_t ledger_keep_s, struct store_retention_result *out, struct err *err)
{
	struct retention_arg a;
	int rc;

	memset(&a, 0, sizeof(a));
	a.bounces_keep_s = bounces_keep_s;
	a.ledger_keep_s = ledger_keep_s;
	rc = store_run(s, op_retention, &a, err);
	if (out)
		*out = a.res;
	return rc;
}
