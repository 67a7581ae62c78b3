/*
 * store_suppress.c - the suppression settings (threshold, window and
 * per-reason overrides) written for the database's rules, and the timed
 * evaluation of addresses whose soft bounces left the window.  The rules
 * themselves live in the schema (schema/NNN_*.sql files).
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "store/store_int.h"

/* This part's statements, prepared on every connection (store.c). */
const struct store_stmt store_suppress_stmts[] = {
    {"settings",
        "UPDATE settings SET soft_threshold = $1::integer,"
        " soft_window = justify_hours(make_interval(secs => $2::bigint)),"
        " updated_at = now() WHERE id"},
    {"override",
        "INSERT INTO reason_overrides (reason, action, count)"
        " VALUES ($1, $2, $3::integer) ON CONFLICT (reason) DO UPDATE SET"
        " action = EXCLUDED.action, count = EXCLUDED.count"},
};
const size_t store_suppress_stmts_n =
    sizeof(store_suppress_stmts) / sizeof(store_suppress_stmts[0]);

/* ---- settings ---- */

static int
op_settings(struct store *s, void *argp, struct err *err)
{
	const struct store_settings *st = argp;
	char a[24], b[24];
	const char *v[2] = {a, b};
	size_t i;
	int rc;

	snprintf(a, sizeof(a), "%d", st->soft_threshold);
	snprintf(b, sizeof(b), "%" PRId64, st->soft_window_s);
	rc = store_prepare(s, err);
	if (rc == 0)
		rc = store_exec_simple(s, "BEGIN", err);
	if (rc == 0)
		rc = store_exec_prep(s, "settings", 2, v, PGRES_COMMAND_OK,
		    NULL, err);
	if (rc == 0)
		rc = store_exec_simple(s, "DELETE FROM reason_overrides", err);
	for (i = 0; rc == 0 && i < st->noverrides; i++) {
		const struct store_override *o = &st->overrides[i];
		char cnt[24];
		const char *ov[3] = {o->reason,
		    o->never ? "never" : "hard_after", o->never ? NULL : cnt};

		snprintf(cnt, sizeof(cnt), "%d", o->hard_after);
		rc = store_exec_prep(s, "override", 3, ov, PGRES_COMMAND_OK,
		    NULL, err);
	}
	/* new rules: every stored suppression state is evaluated again
	 * (nothing is done when they did not change) */
	if (rc == 0)
		rc = store_exec_simple(s,
		    "DO $$BEGIN PERFORM suppression_rules_sync(); END$$", err);
	if (rc == 0)
		rc = store_exec_simple(s, "COMMIT", err);
	if (rc == -1) {
		struct err ignore;

		store_exec_simple(s, "ROLLBACK", &ignore);
	}
	return rc;
}

int
store_apply_settings(struct store *s, const struct store_settings *st,
    struct err *err)
{
	size_t i;

	if (st->soft_threshold < 1 || st->soft_window_s <= 0) {
		err_set(err,
		    "suppression settings: threshold must be >= 1 "
		    "and window > 0");
		return -1;
	}
	for (i = 0; i < st->noverrides; i++) {
		const struct store_override *o = &st->overrides[i];

		if (o->reason == NULL || !store_uidl_ok(o->reason) ||
		    (!o->never && o->hard_after < 1)) {
			err_set(err,
			    "suppression override %zu: needs a reason and "
			    "never or hard_after >= 1",
			    i + 1);
			return -1;
		}
	}
	return store_run(s, op_settings, (void *)st, err);
}

/* ---- expiry ---- */

struct expire_arg {
	int64_t evaluated;
};

static int
op_expire(struct store *s, void *argp, struct err *err)
{
	struct expire_arg *a = argp;
	PGresult *r = NULL;
	int64_t n = 0;
	int rc;

	/* one transaction per chunk: the addresses' locks and the feed's
	 * counter are held only briefly against concurrent recording */
	do {
		r = PQexec(s->conn, "SELECT suppression_state_expire(1000)");
		rc = store_check(s, r, PGRES_TUPLES_OK,
		    "suppression_state_expire", err);
		n = 0;
		if (rc == 0)
			parse_int64(PQgetvalue(r, 0, 0), 0, INT64_MAX, &n,
			    NULL);
		PQclear(r);
		a->evaluated += n;
	} while (rc == 0 && n >= 1000);
	return rc;
}

int
store_suppression_expire(struct store *s, int64_t *evaluated_out,
    struct err *err)
{
	struct expire_arg a = {0};
	int rc = store_run(s, op_expire, &a, err);

	if (evaluated_out)
		*evaluated_out = a.evaluated;
	return rc;
}
