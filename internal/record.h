/*
 * record.h - one decoded email and its failed recipients, as plain data on
 * its way from the decoder to the database (the exchange record).  The
 * decoder (decode/dsn.h) fills it; the classifier adds each recipient's
 * reason, class and rule; the pass's policy step (service/policy.h) sets
 * the counting flags and the attribution; the store (store/store.h)
 * persists it and decides nothing.  No library types and no includes
 * beyond the C library, so every part may see it.  Strings are
 * NUL-terminated UTF-8 or NULL, borrowed from whoever filled the record.
 */
#ifndef BOUNCER_RECORD_H
#define BOUNCER_RECORD_H

#include <stddef.h>
#include <stdint.h>

enum record_kind {
	RECORD_KIND_UNKNOWN, /* not a bounce or report we recognise */
	RECORD_KIND_BOUNCE,
	RECORD_KIND_DELAYED,
	RECORD_KIND_DELIVERED,
	RECORD_KIND_COMPLAINT,
	RECORD_KIND_AUTOREPLY,
};

/* What a recipient's outcome says of the address: hard (the address is
 * bad), soft (everything else that failed), complaint (ARF feedback),
 * autoreply (RFC 3834), delivered (2.x.x), unknown (nothing recognised:
 * never treated as hard). */
enum record_class {
	RECORD_CLASS_UNKNOWN,
	RECORD_CLASS_HARD,
	RECORD_CLASS_SOFT,
	RECORD_CLASS_COMPLAINT,
	RECORD_CLASS_AUTOREPLY,
	RECORD_CLASS_DELIVERED,
};

/* "bounce", "delayed", ... and "hard", "soft", ...; "unknown" for
 * anything else.  Static strings. */
const char *record_kind_name(enum record_kind kind);
const char *record_class_name(enum record_class cls);

/* One recipient of a report. */
struct record_rcpt {
	/* Filled by the decoder. */
	const char *recipient; /* best address, lower-case */
	const char *recipient_source; /* verp|header:<name>|original_recipient|
					   final_recipient|body_text */
	const char *final_recipient;
	const char *original_recipient;
	const char *action; /* failed|delayed|delivered|... */
	const char *status; /* "5.1.1" or NULL */
	int reply_code; /* 550, 0 when none */
	const char *diagnostic;
	const char *diagnostic_type; /* "smtp", "x-unix", ... lower-case */
	const char *remote_mta;
	int64_t date; /* when it bounced (unix time), 0 unknown */
	const char *feedback_type; /* complaints */
	/* SMTP command the failure answered: CONN|HELO|MAIL|RCPT|DATA
	 * (DATA also for end of data), NULL when unknown */
	const char *smtp_command;

	/* Added by the classifier: the reason (Sisimai's vocabulary), the
	 * class, and the evidence it read: the deciding rule's id and phrase
	 * (NULL: none), the status, reply code and SMTP command it used
	 * ("" / 0 / NULL: none). */
	const char *reason;
	enum record_class cls;
	const char *rule;
	const char *rule_phrase;
	char rule_status[16];
	int rule_reply;
	const char *rule_command;

	/* Set by the policy step.  bounced_at: the date recorded (the
	 * recipient's, else the report's, else the time it was read; never
	 * more than a day ahead).  not_counted: stored but never counted
	 * towards suppression, because of not_counted_because ("first_pass",
	 * "max_age"). */
	int64_t bounced_at;
	int not_counted;
	const char *not_counted_because;
};

struct record_header {
	const char *name;
	const char *value;
};

/* One email. */
struct record {
	/* Filled by the decoder. */
	enum record_kind kind;
	const char *message_id; /* the report's own Message-ID, or NULL */
	const char *subject; /* its Subject, RFC 2047 decoded, or NULL */
	const char *reporting_mta;
	int64_t date; /* its Date (unix time), 0 unknown; the policy step
			* drops an implausible one */
	int truncated; /* decoded from the head of a larger message */
	const char *verp_recipient; /* from the VERP return path, or NULL */
	const char *mta; /* detected MTA or provider family, or NULL */
	struct record_rcpt *rcpts;
	size_t nrcpts;
	/* Headers of the returned original: Message-ID, From, To, Subject,
	 * List-Id and the configured names, in that order, when present. */
	struct record_header *orig_headers;
	size_t norig_headers;

	/* Set by the policy step (attribution): the returned original's
	 * Message-ID and the campaign, list and subscriber it names (NULL:
	 * none), and the configured headers kept with each bounce. */
	const char *orig_message_id;
	const char *campaign_id;
	const char *list_id;
	const char *subscriber_id;
	const struct record_header *kept_headers;
	size_t nkept_headers;
};

/* The value of the returned original's header name (ASCII case-blind), or
 * NULL. */
const char *record_orig_header(const struct record *rec, const char *name);

#endif
