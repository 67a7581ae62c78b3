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
#include "base/util.h"

enum dsn_kind {
	DSN_KIND_UNKNOWN, /* not a bounce or report we recognise */
	DSN_KIND_BOUNCE,
	DSN_KIND_DELAYED,
	DSN_KIND_DELIVERED,
	DSN_KIND_COMPLAINT,
	DSN_KIND_AUTOREPLY,
};

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

/* Every string is NUL-terminated valid UTF-8 or NULL; borrowed, valid
 * until dsn_free(). */
struct dsn_rcpt {
	const char *recipient; /* best address, lower-case */
	const char *recipient_source; /* verp|header:<name>|original_recipient|
					   final_recipient|body_text */
	const char *final_recipient;
	const char *original_recipient;
	const char *action; /* failed|delayed|delivered|... */
	const char *status; /* "5.1.1" or NULL */
	int reply_code; /* 550, 0 when none */
	const char *diagnostic;
	const char *remote_mta;
	int64_t date; /* when it bounced (unix time), 0 unknown */
	const char *feedback_type; /* complaints */
	/* SMTP command the failure answered: CONN|HELO|MAIL|RCPT|DATA
	 * (DATA also for end of data), NULL when unknown */
	const char *smtp_command;
	const char *reason; /* from classify() */
	enum bounce_class cls;
	/* The evidence classify() read (struct classify_result): the id of
	 * the deciding rule and its phrase (NULL: none), the status, reply
	 * code and SMTP command it used ("" / 0 / NULL: none). */
	const char *rule;
	const char *rule_phrase;
	char rule_status[16];
	int rule_reply;
	const char *rule_command;
	/* Diagnostic-Code type, lower-case ("smtp", "x-unix", ...), or NULL */
	const char *diagnostic_type;
};

struct dsn_report;

/* 0 and *out set (caller frees with dsn_free), or -1 with err filled.
 * A message that is not a bounce is not an error: kind UNKNOWN, no
 * recipients.  truncated: the input is the head of a larger message. */
int dsn_parse(const char *msg, size_t len, int truncated,
    const struct dsn_options *opt, struct dsn_report **out, struct err *err);
void dsn_free(struct dsn_report **r);

enum dsn_kind dsn_kind(const struct dsn_report *r);
const char *dsn_kind_name(enum dsn_kind kind);
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
const struct dsn_rcpt *dsn_rcpt_at(const struct dsn_report *r, size_t i);
/* The failed address as the report states it: final recipient, else the
 * original recipient, else rc->recipient.  Borrowed like rc. */
const char *dsn_rcpt_address(const struct dsn_rcpt *rc);

/* Headers of the returned original: Message-ID, From, To, Subject,
 * List-Id and the configured names, in that order, when present. */
size_t dsn_orig_header_count(const struct dsn_report *r);
void dsn_orig_header_at(const struct dsn_report *r, size_t i,
    const char **name_out, const char **value_out);
/* Case-insensitive lookup; NULL when absent. */
const char *dsn_orig_header(const struct dsn_report *r, const char *name);

#endif
