/*
 * report.h - the decoder's lower layer, used by dsn.c and dsn_text.c and
 * calling neither: the report under construction and its string store
 * (report.c), bounded text scanners (scan.c), the SMTP command a failure
 * answered (smtpcmd.c), a report's field groups and the returned
 * original's headers (fields.c).  Not part of the public API.
 */
#ifndef BOUNCER_DECODE_REPORT_H
#define BOUNCER_DECODE_REPORT_H

#include <gmime/gmime.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/util.h"
#include "decode/dsn.h"
#include "record.h"

#define DSN_ADDR_MAX 256
#define DSN_MAX_RCPTS 1000
#define DSN_TEXT_CAP (128 * 1024)
#define DSN_DIAG_CAP 2048
#define DSN_HDR_CAP (32 * 1024) /* bytes of a returned header block */

struct dsn_report {
	/* what the decoder filled; every string is in pool */
	struct record rec;
	/* the recipient in a bounce address of the common VERP form
	 * prefix+local=domain@host, when no pattern is configured: used
	 * only when the report names no recipient at all */
	const char *verp_guess;
	size_t arcpt; /* room in rec.rcpts */
	int *hrank; /* rank of each of rec.orig_headers (the order kept) */
	size_t ahdr; /* room in rec.orig_headers and hrank */
	char **pool; /* every owned string */
	size_t npool, apool;
};

/* ---- report.c: storage ---- */

/* Takes ownership of s (xmalloc'd); returns it. */
const char *dsn_keep(struct dsn_report *r, char *s);
/* Single-line valid UTF-8 copy of s[0..n) (xmalloc'd). */
char *dsn_clean(const char *s, size_t n);
/* dsn_clean() kept by the report; NULL when empty. */
const char *dsn_keep_clean(struct dsn_report *r, const char *s, size_t n);
/* New zeroed recipient, or NULL past DSN_MAX_RCPTS.  Valid until the
 * next one is added. */
struct record_rcpt *dsn_add_rcpt(struct dsn_report *r);
/* Adds a returned header (name and value borrowed: static or kept),
 * ordered by rank; the first of a name wins, empty values are dropped. */
void dsn_add_orig_header(struct dsn_report *r, const char *name, int rank,
    const char *value);
/* Moves the recipients, headers and strings of an inner report (a bounce
 * forwarded as an attachment) into r; frees the inner shell. */
void dsn_adopt(struct dsn_report *r, struct dsn_report *in);

/* ---- scan.c: bounded scanners ---- */

/* The next address in s[*pos..len): 1 and out filled (lower-case), its
 * start in *mstart, *pos past it; 0 when none.  _utf8: a typed field,
 * where addresses may hold UTF-8 (RFC 6533). */
int dsn_next_addr(const char *s, size_t len, size_t *pos, size_t *mstart,
    char out[DSN_ADDR_MAX]);
int dsn_next_addr_utf8(const char *s, size_t len, size_t *pos, size_t *mstart,
    char out[DSN_ADDR_MAX]);
int dsn_first_addr(const char *s, size_t len, char out[DSN_ADDR_MAX]);
/* First status code of a failure class (4 or 5), else the first 2.x.x;
 * 1 and out filled, or 0. */
int dsn_find_status(const char *s, size_t n, char out[16]);
/* SMTP reply code standing alone; a failure wins over a 2xx; 0 none. */
int dsn_find_reply(const char *s, size_t n);
/* A failure reply directly followed by its status ("550 5.7.1"): the
 * reply code with the status in out, or 0. */
int dsn_reply_status_pair(const char *s, size_t n, char out[16]);
/* RFC 5322 date -> unix time; 0 when unreadable. */
int64_t dsn_parse_date(const char *s);
/* Calls cb for each unfolded field of s[0..len); name NULL marks a blank
 * line.  stop_at_blank: stop after the first blank line that follows a
 * field.  Returns the bytes consumed. */
size_t dsn_fields(const char *s, size_t len, int stop_at_blank,
    void (*cb)(void *ctx, const char *name, size_t nlen, const char *value,
        size_t vlen),
    void *ctx);

/* ---- smtpcmd.c: the SMTP command a failure answered ---- */

/* The command a failure text names last, or NULL. */
const char *dsn_find_command(const char *s, size_t n);
/* Last resort: a command named in capitals as a word ("RCPT", "DATA"). */
const char *dsn_find_command_word(const char *s, size_t n);

/* ---- fields.c: field groups and returned headers ---- */

/* Delivery-status groups in s[0..len): one recipient per group that
 * names an address; returns the number added. */
size_t dsn_parse_ds(struct dsn_report *r, const char *s, size_t len);
/* An RFC 5965 feedback report (fields in fb[0..len), may be empty): the
 * complained-about recipients, else the returned original's To; sets
 * the kind to complaint. */
void dsn_feedback(struct dsn_report *r, const char *fb, size_t len);
/* The returned original's headers from a header block in text; returns
 * the count of fields seen. */
size_t dsn_orig_from_text(struct dsn_report *r, const struct dsn_options *opt,
    const char *s, size_t len);
/* The returned original's headers from a message/rfc822 part. */
void dsn_orig_from_message(struct dsn_report *r, const struct dsn_options *opt,
    GMimeMessage *m);

#endif
