/*
 * ses.h - Amazon SES notifications (ses.c): read by dsn_text.c when a
 * text body holds one, with the strict JSON reader of base/json.h.
 * Internal to the decoder.
 */
#ifndef BOUNCER_DECODE_SES_H
#define BOUNCER_DECODE_SES_H

#include <stddef.h>

#include "decode/report.h"

/* Reads the notification in s[0..n) (from its first byte; may be cut
 * short): sets the kind, the MTA family "amazonses" and the recipients.
 * 1 when it named a recipient, else 0 (r may be partly filled). */
int dsn_ses_json(struct dsn_report *r, const char *s, size_t n);

#endif
