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

enum record_kind dsn_kind(const struct dsn_report *r);
const char *dsn_reporting_mta(const struct dsn_report *r);
int64_t dsn_date(const struct dsn_report *r); /* the report's Date */
/* The report's own Subject, RFC 2047 words decoded, valid UTF-8; NULL
 * when it has none. */
const char *dsn_subject(const struct dsn_report *r);
int dsn_truncated(const struct dsn_report *r);
const char *dsn_verp_recipient(const struct dsn_report *r);
/* Detected MTA/provider family ("exim", "qmail", "amazonses", ...) or NULL;
 * the same hint classify() receives. */
const char *dsn_mta(const struct dsn_report *r);

size_t dsn_rcpt_count(const struct dsn_report *r);
const struct record_rcpt *dsn_rcpt_at(const struct dsn_report *r, size_t i);
/* The failed address as the report states it: final recipient, else the
 * original recipient, else rc->recipient.  Borrowed like rc. */
const char *dsn_rcpt_address(const struct record_rcpt *rc);

/* Headers of the returned original: Message-ID, From, To, Subject,
 * List-Id and the configured names, in that order, when present. */
size_t dsn_orig_header_count(const struct dsn_report *r);
void dsn_orig_header_at(const struct dsn_report *r, size_t i,
    const char **name_out, const char **value_out);
/* Case-insensitive lookup; NULL when absent. */
const char *dsn_orig_header(const struct dsn_report *r, const char *name);

#endif
