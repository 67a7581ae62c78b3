/*
 * dsn_int.h - internals shared by dsn.c (MIME structure, RFC 3464/5965)
 * and dsn_text.c (plain-text bounces, auto-replies, provider formats).
 * Not part of the public API: only the decoder's own files include it.
 */
#ifndef BOUNCER_DSN_INT_H
#define BOUNCER_DSN_INT_H

#include <gmime/gmime.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "decode/dsn.h"
#include "base/util.h"

#define DSN_ADDR_MAX 256
#define DSN_MAX_RCPTS 1000
#define DSN_TEXT_CAP (128 * 1024)
#define DSN_DIAG_CAP 2048

struct dsn_hdr {
	const char *name;
	const char *value;
	int rank;
};

struct dsn_report {
	enum record_kind kind;
	const char *reporting_mta;
	const char *mta; /* detected MTA/provider family */
	const char *subject; /* the report's own Subject, decoded */
	int64_t date;
	int truncated;
	const char *verp;
	/* the recipient in a bounce address of the common VERP form
	 * prefix+local=domain@host, when no pattern is configured: used
	 * only when the report names no recipient at all */
	const char *verp_guess;
	struct record_rcpt *rcpts;
	size_t nrcpt, arcpt;
	struct dsn_hdr *hdrs;
	size_t nhdr, ahdr;
	char **pool; /* every owned string */
	size_t npool, apool;
};

/* The bounce's own headers the decoder reads, found in one pass over the
 * header list (raw values, leading white space skipped; NULL if absent). */
enum dsn_top_hdr {
	DH_FROM,
	DH_TO,
	DH_CC,
	DH_SUBJECT,
	DH_DATE,
	DH_REPLY_TO,
	DH_RETURN_PATH,
	DH_SENDER,
	DH_X_FAILED_RECIPIENTS,
	DH_AUTO_SUBMITTED,
	DH_X_AUTOREPLY,
	DH_X_AUTORESPOND,
	DH_X_AUTORESPONDER,
	DH_PRECEDENCE,
	DH_X_APPLE_UNSUBSCRIBE,
	DH_COUNT
};

struct dsn_top {
	const char *v[DH_COUNT];
};

/* Takes ownership of s (xmalloc'd); returns it. */
const char *dsn_keep(struct dsn_report *r, char *s);
/* Single-line valid UTF-8 copy of s[0..n) (xmalloc'd). */
char *dsn_clean(const char *s, size_t n);
/* dsn_clean() kept by the report; NULL when empty. */
const char *dsn_keep_clean(struct dsn_report *r, const char *s, size_t n);
/* New zeroed recipient, or NULL past DSN_MAX_RCPTS. */
struct record_rcpt *dsn_add_rcpt(struct dsn_report *r);

int dsn_next_addr(const char *s, size_t len, size_t *pos, size_t *mstart,
    char out[DSN_ADDR_MAX]);
int dsn_first_addr(const char *s, size_t len, char out[DSN_ADDR_MAX]);
int dsn_find_status(const char *s, size_t n, char out[16]);
int dsn_find_reply(const char *s, size_t n);
int64_t dsn_parse_date(const char *s);
size_t dsn_fields(const char *s, size_t len, int stop_at_blank,
    void (*cb)(void *ctx, const char *name, size_t nlen, const char *value,
        size_t vlen),
    void *ctx);
size_t dsn_parse_ds(struct dsn_report *r, const char *s, size_t len);
size_t dsn_orig_from_text(struct dsn_report *r, const struct dsn_options *opt,
    const char *s, size_t len);
char *dsn_part_text(GMimeObject *obj, size_t cap, size_t *len_out);

/* dsn_text.c: recipients from the human-readable text of a bounce that has
 * no delivery-status part (or an auto-reply / provider notification).
 * has_orig: the returned original was found as a MIME part. */
void dsn_text_scan(struct dsn_report *r, const struct dsn_options *opt,
    const struct dsn_top *top, const char *text, size_t len, int has_orig);
/* dsn_text.c: the SMTP command a failure text names last, or NULL. */
const char *dsn_find_command(const char *s, size_t n);
/* Last resort: a command named in capitals as a word ("RCPT", "DATA"). */
const char *dsn_find_command_word(const char *s, size_t n);
/* dsn_text.c: MTA family and missing diagnostics for a parsed DSN. */
void dsn_text_enrich(struct dsn_report *r, const struct dsn_top *top,
    const char *text, size_t len);

#endif
