/*
 * classify_int.h - what the classifier's two halves share: the reason
 * list, the stages and SMTP command bits of a rule, and the rule set with
 * its phrase index.  classify_rules.c builds rule sets (the table format,
 * operator rules); classify.c runs the ladder over them.  Not part of the
 * public API: only those two files include it.
 */
#ifndef BOUNCER_DECODE_CLASSIFY_INT_H
#define BOUNCER_DECODE_CLASSIFY_INT_H

#include <stddef.h>
#include <stdint.h>

#include "decode/classify.h"

#define RULES_MAX 4096 /* rules in one set */

enum reason {
	R_AUTHFAILURE,
	R_BADREPUTATION,
	R_BLOCKED,
	R_CONTENTERROR,
	R_DELIVERED,
	R_EXCEEDLIMIT,
	R_EXPIRED,
	R_FAILEDSTARTTLS,
	R_FEEDBACK,
	R_FILTERED,
	R_HASMOVED,
	R_HOSTUNKNOWN,
	R_MAILBOXFULL,
	R_MAILERERROR,
	R_MESGTOOBIG,
	R_NETWORKERROR,
	R_NORELAYING,
	R_NOTACCEPT,
	R_NOTCOMPLIANTRFC,
	R_ONHOLD,
	R_POLICYVIOLATION,
	R_REJECTED,
	R_REQUIREPTR,
	R_SECURITYERROR,
	R_SPAMDETECTED,
	R_SPEEDING,
	R_SUPPRESSED,
	R_SUSPEND,
	R_SYNTAXERROR,
	R_SYSTEMERROR,
	R_SYSTEMFULL,
	R_TOOMANYCONN,
	R_UNDEFINED,
	R_USERUNKNOWN,
	R_VACATION,
	R_VIRUSDETECTED,
	R_COUNT
};

/* Indexed by enum reason; NULL-terminated. */
extern const char *const classify_reason_names[R_COUNT + 1];

enum stage { ST_OPERATOR, ST_PROVIDER, ST_TEXT, ST_CODE, ST_REPLY, ST_LADDER };

/* SMTP commands as bits; CMD_NONE: the command is not known. */
enum {
	CMD_CONN = 1,
	CMD_HELO = 2,
	CMD_MAIL = 4,
	CMD_RCPT = 8,
	CMD_DATA = 16,
	CMD_NONE = 32
};

#define NCMD 7
/* The command names a rule may give ("EHLO" is HELO), and NONE. */
extern const struct classify_cmd {
	const char *name;
	unsigned bit;
} classify_cmd_names[NCMD];

struct crule {
	char *id, *source, *phrase, *mta, *domain;
	char *status_s, *reply_s, *cmd_s; /* as written */
	int stage;
	int reason; /* -1: a code with no default reason */
	int cls; /* -1: from the reason; else RECORD_CLASS_HARD or RECORD_CLASS_SOFT */
	char st_class; /* 0: no status condition; 'X': 4 or 5; '2' '4' '5' */
	int st_subj; /* -1: any */
	int st_lo, st_hi; /* detail range; -1: any */
	int reply_lo, reply_hi; /* 0: no reply condition */
	unsigned cmds; /* 0: any */
	size_t plen;
	int line;
};

#define NBUCKET 4096
struct classify_rules {
	struct crule *r;
	size_t n, cap;
	int operator;
	/* three-byte index over the phrases: bucket -> rule numbers */
	uint32_t *bstart; /* NBUCKET + 1 */
	uint32_t *brule;
	/* per stage, bit sets over the rules (nwords words each): those
	 * of the stage without a phrase, then those with one */
	uint64_t *smask;
	size_t nwords;
};

static inline unsigned
bucket_of(unsigned char a, unsigned char b, unsigned char c)
{
	return (((unsigned)a * 131u + b) * 131u + c) & (NBUCKET - 1);
}

/* 1-3 digits at *p into *v (advancing p), or 0. */
static inline int
num3(const char **p, int *v)
{
	int n = 0, x = 0;

	while (n < 3 && (*p)[0] >= '0' && (*p)[0] <= '9') {
		x = x * 10 + ((*p)[0] - '0');
		(*p)++;
		n++;
	}
	if (n == 0 || ((*p)[0] >= '0' && (*p)[0] <= '9'))
		return 0;
	*v = x;
	return 1;
}

#endif
