/*
 * classify.h - one failed recipient -> reason and class.
 *
 * Reasons use Sisimai's vocabulary (userunknown, mailboxfull, blocked, ...).
 * Classes: hard (the address is bad: userunknown, hostunknown, hasmoved,
 * notaccept with a 5xx), soft (everything else that failed), complaint
 * (ARF feedback), autoreply (RFC 3834), delivered (2.x.x reports), unknown
 * (nothing recognised: never treated as hard).  Table-driven: the status
 * code, the SMTP reply code and phrases of the diagnostic text select the
 * reason; the class follows from the reason (and the code for notaccept).
 */
#ifndef BOUNCER_CLASSIFY_H
#define BOUNCER_CLASSIFY_H

#include <stddef.h>

enum bounce_class {
	CLASS_UNKNOWN,
	CLASS_HARD,
	CLASS_SOFT,
	CLASS_COMPLAINT,
	CLASS_AUTOREPLY,
	CLASS_DELIVERED,
};

struct classify_input {
	const char *status; /* RFC 3463 "5.1.1" or NULL */
	int reply_code; /* 550, or 0 when none */
	const char *action; /* failed|delayed|delivered|relayed|expanded|NULL */
	const char *diagnostic; /* Diagnostic-Code text or the bounce prose */
	const char *kind; /* dsn_kind_name(): bounce|delayed|... or NULL */
	const char *feedback_type; /* ARF Feedback-Type, for complaints */
	const char *mta; /* detected MTA/provider family, or NULL */
	/* Optional (NULL = absent): the bounce's Subject, a hint only. */
	const char *subject;
	/* Optional (NULL = unknown): the SMTP command the reply answered:
	 * "CONN", "HELO", "MAIL", "RCPT" or "DATA" (also for end of data). */
	const char *smtp_command;
	/* Optional (NULL = unknown): the Diagnostic-Code type, "smtp",
	 * "x-unix" (a local delivery program's report), ... any case. */
	const char *diagnostic_type;
};

struct classify_result {
	const char *reason; /* static string from the reason list */
	enum bounce_class cls;
};

/* Never fails: an unrecognised input gives reason "undefined"/"onhold"
 * and CLASS_UNKNOWN or CLASS_SOFT, never CLASS_HARD. */
void classify(const struct classify_input *in, struct classify_result *out);

const char *classify_class_name(enum bounce_class cls);
/* 1 if name is in the reason list (REASONS), else 0. */
int classify_reason_valid(const char *name);
/* NULL-terminated list of every reason name. */
const char *const *classify_reasons(void);

/* Parses "5.1.10" style codes (each part 1-3 digits, class 2, 4 or 5)
 * at the start of s; 0 and out filled ("5.1.10", NUL-terminated), or -1. */
int classify_parse_status(const char *s, char out[16]);

/* The ordered rule tables (first match wins), for tests and docs. */
enum classify_table {
	CLASSIFY_TABLE_PHRASE, /* lower-case phrase found in the text */
	CLASSIFY_TABLE_STATUS, /* "S.D" subject.detail, or "S.*" */
};
/* 0 and the i-th rule of the table (static strings), or -1 past the end.
 * key_out: the phrase or status key; reason_out: the reason it gives. */
int classify_rule_at(enum classify_table t, size_t i, const char **key_out,
    const char **reason_out);
/* Index of the first phrase rule matching text (any case, any run of
 * white space), or -1.  Used by the tests to prove the table order. */
int classify_phrase_match(const char *text);

#endif
