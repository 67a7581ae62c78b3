/*
 * store.h - PostgreSQL (libpq) storage: schema migrations, the UIDL ledger,
 * per-recipient bounce records, suppression settings and per-mailbox
 * advisory locks.  Every value goes as a parameter of a prepared statement;
 * a lost connection is re-opened with capped exponential backoff and the
 * interrupted transaction is retried whole (recording is idempotent).
 * Text from the wire is repaired per field before sending (invalid UTF-8
 * becomes U+FFFD, NUL bytes are dropped, over-long fields are cut at a
 * character boundary); the raw email is stored byte for byte.  Never logs.
 */
#ifndef BOUNCER_STORE_H
#define BOUNCER_STORE_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "record.h"
#include "base/util.h"

/* Channel of the NOTIFY sent for each change of the suppression list, at
 * COMMIT; payload: {"id": <suppression_changes.id>, "change": "added"|
 * "lifted"|"expired"|"reason_changed", "address": ..., "reason": ...,
 * "class": "hard"|"soft"|"complaint", "suppressed_because": "hard_bounce"|
 * "complaint"|"reason_override"|"soft_bounces"}. */
#define STORE_NOTIFY_CHANNEL "bouncerd_suppression"

/* Longest text stored per field, in bytes (longer text is cut at a UTF-8
 * character boundary and the field is listed in messages.repaired_fields).
 */
#define STORE_TEXT_MAX 1024
#define STORE_DIAGNOSTIC_MAX 8192
/* Longest UIDL accepted (RFC 1939 allows 70 characters). */
#define STORE_UIDL_MAX 512

/* How hard a connection tries to reach the database: the first wait
 * after a failure, the cap of the doubling wait, the attempts per
 * operation before it fails with -1, and libpq's connect_timeout.
 *
 *   profile                  first wait  cap     attempts  connect
 *   STORE_RECONNECT_DEFAULT  200 ms      30 s    10        10 s
 *   STORE_RECONNECT_STARTUP  200 ms      30 s    5         10 s
 *   STORE_RECONNECT_PASS     200 ms      5 s     8         5 s
 *   STORE_RECONNECT_PROBE    50 ms       100 ms  1         2 s
 *
 * STARTUP: migrations and settings before the service starts; PASS: the
 * connection of a worker polling mailboxes; PROBE: the health check,
 * which must answer quickly. */
enum store_reconnect {
	STORE_RECONNECT_DEFAULT,
	STORE_RECONNECT_STARTUP,
	STORE_RECONNECT_PASS,
	STORE_RECONNECT_PROBE,
};

struct store_options {
	const char *conninfo; /* libpq URI or key=value string */
	int batch_size; /* messages per transaction; <= 0: 50 */
	int64_t raw_max_bytes; /* raw bytes kept per email; < 0: 1 MiB,
				  0: none */
	enum store_reconnect reconnect; /* the policy (0: DEFAULT) */
	/* Overrides of single values of the profile (tests); 0 keeps the
	 * profile's value. */
	int64_t backoff_initial_ms; /* first reconnect wait; <= 0: profile */
	int64_t backoff_max_ms; /* cap of the doubling wait; <= 0: profile */
	/* reconnect attempts per operation before giving up with -1;
	 * 0: profile, < 0: until *stop is set */
	int reconnect_attempts;
	int connect_timeout_s; /* <= 0: profile */
	int quarantine_after; /* failures in a row; <= 0: 3 */
	const char *application_name; /* NULL: "bouncerd" */
	/* Optional: when it becomes non-zero, backoff waits end and the
	 * operation returns -1 ("interrupted"). */
	const volatile sig_atomic_t *stop;
};

struct store;

/* Connects (with the reconnect policy above) and returns a handle owned
 * by the caller.  0 and *out set, or -1 with err filled.  Does not
 * migrate: call store_migrate(). */
int store_open(const struct store_options *opt, struct store **out,
    struct err *err);
/* Closes the connection; NULL-safe, sets *s to NULL. */
void store_free(struct store **s);

/* Applies the pending migrations (embedded copies of schema/NNN_*.sql), in
 * order, each in its own transaction, recorded in schema_migrations, under
 * a database-wide advisory lock so that processes starting together apply
 * each migration once.  A migration already applied whose text has changed
 * is an error.  *applied_out (may be NULL) gets the number applied. */
int store_migrate(struct store *s, int *applied_out, struct err *err);
/* Number of embedded migrations not yet applied (0 when up to date);
 * takes no lock and creates nothing (safe for health checks). */
int store_pending_migrations(struct store *s, int *pending_out,
    struct err *err);
/* Highest embedded migration version. */
int store_schema_version(void);

/* A per-reason exception to the suppression rules (suppression.overrides
 * of the config): never (bounces with this reason never count) or
 * hard_after (they suppress once the address has hard_after of them since
 * its latest delivery report, and no longer count as soft bounces). */
struct store_override {
	const char *reason;
	int never; /* 1: never counts */
	int hard_after; /* >= 1 when !never */
};

struct store_settings {
	int soft_threshold; /* >= 1 */
	int64_t soft_window_s; /* > 0, seconds */
	const struct store_override *overrides;
	size_t noverrides;
};
/* Writes the settings row and the overrides the suppression rules read,
 * in one transaction (the previous overrides are replaced). */
int store_apply_settings(struct store *s, const struct store_settings *st,
    struct err *err);

/* Returns the id of the mailbox named name, creating the row if needed
 * (host and username are updated when given). */
int store_mailbox_id(struct store *s, const char *name, const char *host,
    const char *username, int64_t *id_out, struct err *err);

/* First pass (first_pass: record_only): *pending_out is 1 until
 * store_mailbox_first_pass_done() was called for the mailbox.  (The pass
 * marks the recipients it records meanwhile not_counted, "first_pass".) */
int store_mailbox_first_pass(struct store *s, int64_t mailbox_id,
    int *pending_out, struct err *err);
int store_mailbox_first_pass_done(struct store *s, int64_t mailbox_id,
    struct err *err);

/* Session advisory lock on one mailbox, so that two bouncerd processes
 * never poll it at once.  *locked_out is 1 when taken, 0 when another
 * session holds it.  The lock is lost with the connection: after a
 * reconnect (store_generation() changed) the caller must take it again. */
int store_mailbox_trylock(struct store *s, int64_t mailbox_id, int *locked_out,
    struct err *err);
int store_mailbox_unlock(struct store *s, int64_t mailbox_id, struct err *err);
/* Incremented on every (re)connect. */
uint64_t store_generation(const struct store *s);

enum store_uidl_state {
	STORE_UIDL_NEW, /* not in the ledger, or failed before: fetch it */
	STORE_UIDL_RECORDED, /* stored: DELE it in delete mode, don't fetch */
	STORE_UIDL_QUARANTINED, /* failed too often: leave it, skip it */
};

struct store_uidl_info {
	enum store_uidl_state state;
	int64_t fetched_at; /* unix time of the first fetch; 0 when NEW */
	int deleted; /* ledger says deleted (a DELE was not made final) */
	int failures; /* failures in a row so far */
};

/* One query: the ledger state of each UIDL of a mailbox, in input order
 * (info_out has n entries).  A UIDL the ledger cannot hold (empty, longer
 * than STORE_UIDL_MAX or not UTF-8) is reported QUARANTINED: never
 * fetched, never deleted. */
int store_uidl_states(struct store *s, int64_t mailbox_id,
    const char *const *uidls, size_t n, struct store_uidl_info *info_out,
    struct err *err);

/* One fetched email and its decoded record.  The store persists what the
 * record says and decides nothing: per message its kind, Message-ID,
 * Subject, reporting MTA, Date (reported_at; 0: unknown)
 * and truncated flag; per recipient (rec->rcpts) the addresses, class,
 * reason (NULL: "undefined"), rule, action (lower-cased), status, reply
 * code, diagnostic, remote MTA, feedback type, bounced_at (0: the time it
 * is written), and counts = !not_counted with not_counted_because (NULL
 * when not_counted: "not_counted"); the message-level orig_message_id,
 * campaign_id, list_id, subscriber_id and kept_headers (as JSON
 * {name: value}) go with each recipient.  Strings may be NULL; they are
 * repaired and capped as described at the top; the recipient is
 * lower-cased (ASCII) and its domain derived.  rec NULL: a message that
 * is not a bounce (kind unknown, no recipients). */
struct store_message {
	int64_t mailbox_id;
	const char *uidl; /* required, valid UTF-8, <= STORE_UIDL_MAX */
	int64_t size; /* size on the server; < 0 unknown */
	const void *raw; /* may be NULL; kept up to raw_max_bytes (a message
			    of kind unknown is kept whole) */
	size_t raw_len;
	const struct record *rec; /* valid until the call returns */
	int deleting; /* delete mode: deleted_at is set with the record, as
			 the DELE follows its COMMIT (store_unmark_deleted
			 clears it when no QUIT confirms the DELE) */
};

enum store_result {
	STORE_PENDING, /* not written (the call failed before it) */
	STORE_WRITTEN, /* ledger row and bounce rows committed */
	STORE_REPLAYED, /* (mailbox, uidl) was already recorded: nothing
			   written */
	STORE_REFUSED, /* the database refused this message: record it
			  with store_record_failure() */
};

/* Records msgs[0..n) in transactions of batch_size messages each: per
 * message, the ledger row and all its bounce rows, atomically; a message
 * whose (mailbox, uidl) is already recorded writes nothing and gets
 * STORE_REPLAYED.  If the database refuses a batch, its messages are
 * retried one per transaction so that only the culprit is STORE_REFUSED.
 * A lost connection is re-opened and the uncommitted batch retried.
 * results_out[i] is set for every message.  0 when every message is
 * WRITTEN, REPLAYED or REFUSED (err holds the last refusal), -1 when the
 * database stayed unreachable (later messages stay PENDING). */
int store_record_batch(struct store *s, const struct store_message *msgs,
    size_t n, enum store_result *results_out, struct err *err);
/* The same for one message. */
int store_record(struct store *s, const struct store_message *m,
    enum store_result *result_out, struct err *err);

/* An email that could not be decoded or stored.  The ledger row keeps the
 * raw bytes and the error; outcome "failed" (fetched again next pass)
 * until quarantine_after failures in a row make it "quarantined".  A row
 * already recorded is left alone.  *quarantined_out (may be NULL) is 1
 * when the message is now quarantined. */
struct store_failure {
	int64_t mailbox_id;
	const char *uidl;
	const char *error;
	int64_t size;
	int truncated;
	const void *raw;
	size_t raw_len;
};
int store_record_failure(struct store *s, const struct store_failure *f,
    int *quarantined_out, struct err *err);

/* Crash recognition.  Before a batch is decoded, store_mark_trying()
 * marks each of its messages in the ledger (one statement, committed):
 * a new UIDL gets a "failed" row whose error says it was interrupted; only
 * a finished attempt (store_record*, store_record_failure) replaces the
 * mark.  suspect[i] is set for a message still carrying the mark of an
 * earlier attempt: the process ended while it was being decoded or stored
 * (1: in a batch, 2: alone).  Such a message is tried alone, those with
 * 1 first: store_mark_alone() counts an earlier attempt alone that never
 * finished as a failure, and quarantines the message (*quarantined_out =
 * 1; do not decode it) once quarantine_after such failures are reached. */
int store_mark_trying(struct store *s, int64_t mailbox_id,
    const char *const *uidls, size_t n, int *suspect, struct err *err);
int store_mark_alone(struct store *s, int64_t mailbox_id, const char *uidl,
    int *quarantined_out, struct err *err);

/* Sets deleted_at on the ledger rows of these UIDLs (after QUIT). */
int store_mark_deleted(struct store *s, int64_t mailbox_id,
    const char *const *uidls, size_t n, struct err *err);
/* Clears deleted_at on the ledger rows of these UIDLs: messages recorded
 * in delete mode whose DELE no QUIT confirmed, or that the server still
 * lists.  With listed_whole (uidls are the marked ones among the server's
 * whole list, read in this pass), also sets the mailbox's listed_at: the
 * rows still marked deleted before then are known to be gone. */
int store_unmark_deleted(struct store *s, int64_t mailbox_id,
    const char *const *uidls, size_t n, int listed_whole, struct err *err);

/* Keep mode: marks deleted (gone) the ledger rows of the mailbox whose
 * UIDL is no longer on the server (present[] is the server's whole UIDL
 * list) and drops the raw bytes of recorded rows fetched more than
 * raw_keep_s seconds ago (< 0: keep them; failed and quarantined rows
 * keep theirs).  present == NULL: the server's list is partial, only the
 * raw bytes are dropped.  Reads only the rows still on the server and the
 * rows whose raw bytes it drops.  Bounce rows are never removed.
 * *pruned_out (may be NULL) gets the number of rows changed. */
int store_prune(struct store *s, int64_t mailbox_id, const char *const *present,
    size_t n, int64_t raw_keep_s, int64_t *pruned_out, struct err *err);

/* Upkeep of the history after each pass: creates the next month's
 * partition of the bounce history; sums what can still count in the
 * bounce rows older than soft_window's month into suppression_carried
 * (the rules read those sums instead of the rows, so that recording costs
 * the same however long the history); then retention: removes the bounce
 * rows dated more than bounces_keep_s seconds ago (whole months, never
 * less than soft_window; their sums stay, so the suppression list does
 * not change) and the ledger rows of recorded bounces deleted from the
 * server more than ledger_keep_s seconds ago (such a UIDL, listed again,
 * would be processed again).  <= 0: keep.  A few index lookups when
 * nothing is due.  *out (may be NULL) gets what was done. */
struct store_retention_result {
	int64_t partitions; /* partitions created */
	int64_t bounces; /* bounce rows removed */
	int64_t ledger; /* ledger rows removed */
};
int store_apply_retention(struct store *s, int64_t bounces_keep_s,
    int64_t ledger_keep_s, struct store_retention_result *out, struct err *err);

/* Evaluates again the suppression state of every address whose oldest
 * counted soft bounce has left soft_window since it was last evaluated
 * (the address leaves the list when too few remain; each change goes to
 * the change feed and is announced).  Call it on a timer; it costs an
 * index lookup when nothing is due.  *evaluated_out (may be NULL) gets
 * the number of addresses evaluated. */
int store_suppression_expire(struct store *s, int64_t *evaluated_out,
    struct err *err);

/* Repairs len bytes of wire text into a new NUL-terminated string (caller
 * frees): invalid UTF-8 sequences become U+FFFD, NUL bytes are dropped,
 * the result is cut to at most max bytes at a character boundary.
 * *repaired_out (may be NULL) is 1 when anything changed. */
char *store_text_clean(const char *p, size_t len, size_t max,
    int *repaired_out);

#endif
