/*
 * dsn_text.h - recipients from the prose of a bounce (dsn_text.c): used by
 * dsn.c for a report without a delivery-status part (plain-text bounces,
 * auto-replies, provider notifications), and to complete the recipients
 * of one that has it (MTA family, diagnostics, SMTP command).
 */
#ifndef BOUNCER_DECODE_DSN_TEXT_H
#define BOUNCER_DECODE_DSN_TEXT_H

#include <stddef.h>

#include "decode/report.h"

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

/* Recipients from the human-readable text of a bounce that has no
 * delivery-status part (or an auto-reply / provider notification).
 * has_orig: the returned original was found as a MIME part. */
void dsn_text_scan(struct dsn_report *r, const struct dsn_options *opt,
    const struct dsn_top *top, const char *text, size_t len, int has_orig);
/* MTA family and missing diagnostics and commands for a parsed DSN. */
void dsn_text_enrich(struct dsn_report *r, const struct dsn_top *top,
    const char *text, size_t len);

#endif
