/*
 * classify.h - one failed recipient -> reason and class.
 *
 * Reasons use Sisimai's vocabulary (userunknown, mailboxfull, blocked, ...).
 * Classes: hard (the address is bad: userunknown, hostunknown, hasmoved,
 * notaccept with a 5xx), soft (everything else that failed), complaint
 * (ARF feedback), autoreply (RFC 3834), delivered (2.x.x reports), unknown
 * (nothing recognised: never treated as hard).
 *
 * The decision is a fixed ladder of evidence (README, "Classification"):
 * operator rules, then the reporting system's own codes and texts, then
 * 2.x.x, then the diagnostic text in a fixed precedence, then the enhanced
 * status code's default reason, then the basic reply code, then the last
 * resorts.  The knowledge lives in a rule table (classify_rules.txt,
 * compiled into the binary); the ladder lives in classify.c.  Every result
 * names the rule that decided it.
 */
#ifndef BOUNCER_CLASSIFY_H
#define BOUNCER_CLASSIFY_H

#include <stddef.h>

#include "record.h"

/* A set of rules: the built-in table, or an operator's. */
struct classify_rules;

struct classify_input {
	const char *status; /* RFC 3463 "5.1.1" or NULL */
	int reply_code; /* 550, or 0 when none */
	const char *action; /* failed|delayed|delivered|relayed|expanded|NULL */
	const char *diagnostic; /* Diagnostic-Code text or the bounce prose */
	const char *kind; /* record_kind_name(): bounce|delayed|... or NULL */
	const char *feedback_type; /* ARF Feedback-Type, for complaints */
	const char *mta; /* detected MTA/provider family, or NULL */
	/* Optional (NULL = absent): the bounce's Subject.  Unused by the
	 * ladder; kept for callers. */
	const char *subject;
	/* Optional (NULL = unknown): the SMTP command the reply answered:
	 * "CONN", "HELO", "MAIL", "RCPT" or "DATA" (also for end of data). */
	const char *smtp_command;
	/* Optional (NULL = unknown): the Diagnostic-Code type, "smtp",
	 * "x-unix" (a local delivery program's report), ... any case. */
	const char *diagnostic_type;
	/* Optional: the failed address (operator rules match its domain). */
	const char *recipient;
	/* Optional: operator rules, tried before the built-in table. */
	const struct classify_rules *operator_rules;
};

struct classify_result {
	const char *reason; /* static string from the reason list */
	enum record_class cls;
	/* The evidence, for --explain and the bounces.rule column.  Strings
	 * are static or belong to the rule set used (valid while it is). */
	const char *rule; /* id of the deciding rule, NULL: nothing to say */
	const char *phrase; /* the rule's phrase that matched, or NULL */
	char status[16]; /* the status code the ladder read, "" none */
	int reply; /* the reply code it read, 0 none */
	const char *command; /* the SMTP command it read, or NULL */
};

/* Never fails: an unrecognised input gives reason "undefined"/"onhold"
 * and RECORD_CLASS_UNKNOWN or RECORD_CLASS_SOFT, never RECORD_CLASS_HARD. */
void classify(const struct classify_input *in, struct classify_result *out);

/* 1 if name is in the reason list (REASONS), else 0. */
int classify_reason_valid(const char *name);
/* NULL-terminated list of every reason name. */
const char *const *classify_reasons(void);

/* Parses "5.1.10" style codes (each part 1-3 digits, class 2, 4 or 5)
 * at the start of s; 0 and out filled ("5.1.10", NUL-terminated), or -1. */
int classify_parse_status(const char *s, char out[16]);

/*
 * Rule sets.  The built-in table is parsed once, on first use, from the
 * text compiled into the binary.  classify_rules_parse() reads the same
 * format (one rule a line; see classify_rules.txt): 0 and *out, or -1 with
 * "LINE:COL: message" in err.  operator: the rules are an operator's (each
 * needs a name, no stage sections, ids become "op:NAME").
 */
int classify_rules_parse(const char *text, size_t len, int operator,
    struct classify_rules ** out, char *err, size_t errlen);
void classify_rules_free(struct classify_rules *rs);
/* The built-in table; NULL only if it failed to parse (a build error the
 * unit tests catch). */
const struct classify_rules *classify_builtin(void);

/* One operator rule given field by field (from YAML): name, reason and
 * the optional fields; NULL for absent.  class: "hard", "soft" or NULL.
 * 0, or -1 with a message in err naming the field at fault. */
struct classify_rule_spec {
	const char *name;
	const char *reason;
	const char *cls;
	const char *status; /* "5.1.1", "X.7.*", "4.7.500-699" */
	const char *reply; /* "550", "5xx", "421-452" */
	const char *command; /* "RCPT", "DATA|MAIL", ... */
	const char *mta;
	const char *phrase;
	const char *domain; /* recipient domain (and its subdomains) */
};
struct classify_rules *classify_rules_new(void);
int classify_rules_add(struct classify_rules *rs,
    const struct classify_rule_spec *spec, char *err, size_t errlen);

/* Read-only view of rule i (0..count-1), for --rules, --explain and the
 * tests; strings belong to the set. */
struct classify_rule_info {
	const char *id;
	const char *stage; /* operator|provider|text|code|reply|ladder */
	const char *reason; /* "-" for a code with no default reason */
	const char *cls; /* "hard", "soft" or NULL (from the reason) */
	const char *status, *reply, *command, *mta, *phrase, *domain;
	const char *source;
	int line;
};
size_t classify_rules_count(const struct classify_rules *rs);
int classify_rule_get(const struct classify_rules *rs, size_t i,
    struct classify_rule_info *out);

/* The built-in table's text as compiled in (classify_rules_gen.c). */
extern const char classify_rules_text[];
extern const unsigned long classify_rules_text_len;

#endif
