/*
 * store_int.h - private to internal/store: the connection handle, the
 * run()/retry machinery every operation goes through, the prepared
 * statement tables of each part (ledger, recording, suppression) and the
 * small helpers they share.  Nothing outside internal/store includes it.
 */
#ifndef BOUNCER_STORE_INT_H
#define BOUNCER_STORE_INT_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "base/buf.h"
#include "base/util.h"
#include "store/store.h"

#define RETRY (-2) /* an operation's "connection lost, do it again" */
#define BIG_BUF ((size_t)1 << 40)

struct store {
	PGconn *conn;
	char *conninfo;
	char *appname;
	int batch_size;
	int64_t raw_max;
	int64_t backoff_initial_ms;
	int64_t backoff_max_ms;
	int attempts; /* < 0: unlimited */
	int connect_timeout_s;
	int quarantine_after;
	const volatile sig_atomic_t *stop;
	uint64_t generation;
	int prepared;
};

/* A statement prepared on every connection: name and SQL. */
struct store_stmt {
	const char *name;
	const char *sql;
};
extern const struct store_stmt store_ledger_stmts[];
extern const size_t store_ledger_stmts_n;
extern const struct store_stmt store_record_stmts[];
extern const size_t store_record_stmts_n;
extern const struct store_stmt store_suppress_stmts[];
extern const size_t store_suppress_stmts_n;

/* One operation: 0 done, -1 failed (err set), RETRY connection lost. */
typedef int (*store_op)(struct store *s, void *arg, struct err *err);

/* Runs op, reconnecting (with backoff) and running it again as long as it
 * returns RETRY or no connection can be made, within the attempt budget.
 * 0 or -1. */
int store_run(struct store *s, store_op op, void *arg, struct err *err);
/* 1 once the caller's stop flag is set. */
int store_stopped(const struct store *s);
/* Closes the connection (the statements go with it). */
void store_drop_conn(struct store *s);
/* Result check: 0 ok, RETRY when the connection is gone, -1 otherwise
 * (err set). */
int store_check(struct store *s, PGresult *r, ExecStatusType want,
    const char *what, struct err *err);
/* Runs sql without parameters, expecting no rows: 0, -1 or RETRY. */
int store_exec_simple(struct store *s, const char *sql, struct err *err);
/* Prepares every statement of the tables above once per connection. */
int store_prepare(struct store *s, struct err *err);
/* Runs a prepared statement (all parameters text) and checks its status;
 * *out gets the result (caller clears) when out is not NULL. */
int store_exec_prep(struct store *s, const char *name, int n,
    const char *const *v, ExecStatusType want, PGresult **out, struct err *err);

/* Appends s as an element of a PostgreSQL array literal. */
void store_array_elem(struct buf *b, const char *s);
/* 1 when s can be stored as a UIDL as it is. */
int store_uidl_ok(const char *s);

#endif
