/*
 * dsn.h - decode one raw email (possibly truncated) into a bounce report:
 * its kind, and per failed recipient the addresses, action, status, reply
 * code, diagnostic, remote MTA and date, plus the headers of the returned
 * original message.  RFC 3464 / 6533 DSNs, RFC 5965 ARF complaints,
 * RFC 3834 auto-replies and the plain-text bounces of common MTAs.
 * Uses GMime 3; never logs.  Each recipient is classified (classify.h).
 */
#ifndef BOUNCER_DSN_H
#define BOUNCER_DSN_H

#include <stddef.h>
#include <stdint.h>

#include "decode/classify.h"
#include "record.h"
#include "base/util.h"

struct dsn_options {
	/* extra header names to pull from the returned original
	 * (campaign, list, subscriber ids); may be NULL/0 */
	const char *const *headers;
	size_t nheaders;
	/* VERP return-path pattern, e.g. "bounces+{local}={domain}@example.com";
	 * NULL for none */
	const char *verp_pattern;
	/* operator classification rules, tried first; NULL for none */
	const struct classify_rules *rules;
};

/* Recipients are struct record_rcpt (record.h): every string NUL-terminated
 * valid UTF-8 or NULL; borrowed, valid until dsn_free(). */
struct dsn_report;

/* 0 and *out set (caller frees with dsn_free), or -1 with err filled.
 * A message that is not a bounce is not an error: kind UNKNOWN, no
 * recipients.  truncated: the input is the head of a larger message. */
int dsn_parse(const char *msg, size_t len, int truncated,
    const struct dsn_options *opt, struct dsn_report **out, struct err *err);
void dsn_free(struct dsn_report **r);

/* The decoded message: kind, the report's own Message-ID (its raw value
 * as written: angle brackets kept, folded lines joined, runs of white
 * space as one, trimmed, at most 511 bytes), Subject, Reporting-MTA, Date, truncated, the VERP
 * recipient, the MTA family, the recipients (classified) and the
 * returned original's headers.  The policy fields are left zero.
 * Borrowed; valid until dsn_free(). */
const struct record *dsn_record(const struct dsn_report *r);

/* The failed address as the report states it: final recipient, else the
 * original recipient, else rc->recipient.  Borrowed like rc. */
const char *dsn_rcpt_address(const struct record_rcpt *rc);

#endif
