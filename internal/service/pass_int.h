/*
 * pass_int.h - what the files of the pass share (pass.c the stages,
 * listing.c logging in and listing, batch.c decoding and recording on
 * committer threads).  Private to internal/service.
 */
#ifndef BOUNCER_PASS_INT_H
#define BOUNCER_PASS_INT_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "decode/dsn.h"
#include "pop3/pop3.h"
#include "service/pass.h"

/* Why a pass cannot go on.  Each stage sets it once; what the pass still
 * does at its end depends on it (see pass_end). */
enum pass_fault {
	FAULT_NONE,
	FAULT_POP3, /* the session broke: commit what was read, no more DELE */
	FAULT_DB, /* the database failed: nothing more is recorded */
	FAULT_LOCK, /* the mailbox lock was lost: no QUIT, no DELE made final */
};

/* A fetched message waiting for its batch to commit. */
struct pending {
	uint32_t msgno;
	char *uidl;
	int64_t size; /* from LIST, -1 unknown */
	struct buf raw;
	struct dsn_report *rep;
	/* the decoded record after the policy step: the decoder's, with the
	 * pass's own copy of the recipients and kept headers */
	struct record rec;
	struct record_rcpt *rcpts;
	struct record_header *kept;
	/* decoding failed: recorded with store_record_failure() */
	int dfail;
	char derr[300];
	int fail_rc, fail_q;
	/* an earlier attempt never finished (1: in a batch, 2: alone):
	 * decoded and stored alone */
	int suspect;
};

struct committer;

struct pass {
	const struct pass_env *env;
	const struct config *cfg;
	const struct mailbox_config *mc;
	const char *name;
	struct store *st; /* the worker's connection */
	struct pop3 *pop;
	int midx;
	int64_t mailbox_id;
	uint64_t gen; /* store_generation() when the lock was taken */
	int64_t started; /* monotonic microseconds */
	enum pass_fault fault;
	int locked;
	int del; /* after_processing: delete */
	int partial; /* the listing is the oldest part of the mailbox */
	int record_only; /* first pass with first_pass: record_only */
	char *token; /* XOAUTH2 bearer token, or NULL */
	/* the listing and its ledger states */
	struct pop3_entry *ent;
	size_t nent, total;
	const char **uidls;
	struct store_uidl_info *info;
	size_t ntodo; /* listed messages the ledger does not know */
	/* counts for the pass log line */
	size_t fetched, recorded, replayed, deleted, bounces, failed,
	    quarantined, skipped_q;
	/* UIDLs DELEd in this session: dele[] to mark deleted after QUIT;
	 * stamped[] were marked deleted with their record (delete mode), and
	 * unstamp[] were so marked but never DELEd: both are cleared unless
	 * QUIT confirms the DELEs (unstamp[] in any case) */
	char **dele, **stamped, **unstamp;
	size_t ndele, nstamped, nunstamp;
	int quit_ok; /* QUIT confirmed the DELEs */
	/* fetched messages not yet handed to a committer */
	struct pending *pend;
	size_t npend;
	size_t pend_bytes;
	int64_t pend_since; /* monotonic ms the first one was read */
	int no_dele; /* the POP3 session broke: commit only */
	struct pass_conns *conns; /* the worker's, lent for the pass */
	struct committer *com; /* started with the first batch */
	int db_failed; /* a batch could not be recorded */
	/* where the time went, microseconds (logged in ms at debug level):
	 * the start (database, lock), login, listing, the ledger filter,
	 * RETR, decoding, recording, waiting for a committer, DELE, QUIT
	 * (the server's expunge, and the ledger's deletion marks), the
	 * upkeep after it, the end (the last batches, the committer threads,
	 * the lock) */
	int64_t t_begin, t_end, t_login, t_list, t_ledger, t_retr, t_decode,
	    t_store, t_wait, t_dele, t_quit, t_upkeep;
	const char **xh; /* configured header names */
	size_t nxh;
};

/* Logs an error of the pass and counts it. */
void pass_error(struct pass *ps, enum metrics_err_kind kind, const char *what,
    const char *cause);
enum metrics_err_kind pass_pop3_kind(enum pop3_error e);
/* DELE msgnos[0..n) (pipelined when the server allows), remembering the
 * UIDL of each one the server accepted; stamped[i] (stamped may be NULL):
 * its record marked it deleted already.  -1 when one failed. */
int pass_dele(struct pass *ps, const uint32_t *msgnos, char *const *uidls,
    const int *stamped, size_t n);
/* Remembers the stamped ones of uidls[0..n) that will not be DELEd. */
void pass_unstamp(struct pass *ps, char *const *uidls, const int *stamped,
    size_t n);
void pending_clear(struct pending *pd);

/* listing.c */
/* Token (XOAUTH2), connect and log in, renewing a refused token once.
 * 0, or -1 logged and counted (ps->fault set when the session broke). */
int pass_login(struct pass *ps);
/* The oldest messages up to the listing window, keyed (UIDL, content key
 * for duplicates, header digest without UIDL).  0 or -1 logged. */
int pass_list(struct pass *ps);

/* batch.c */
/* RETRs one listed message into the pending batch, handing the batch to
 * a committer when it is full.  0, or -1 with ps->fault set. */
int pass_fetch_one(struct pass *ps, const struct pop3_entry *e);
/* Hands the pending messages to a committer, then finishes (DELE, counts)
 * whatever batches are done; with wait, all of them.  0, or -1 when the
 * database failed. */
int pass_flush(struct pass *ps, int wait);
/* Waits for every batch, then stops the committer threads. */
void pass_committers_end(struct pass *ps);

#endif
