/*
 * classify.c - one failed recipient -> reason (Sisimai's vocabulary) and
 * class, by a fixed ladder of evidence over a table of rules.
 *
 * The rules are data: classify_rules.txt, compiled into the binary as text
 * (classify_rules_gen.c) and parsed once on first use; operators add their
 * own from the configuration.  Each rule has an id, a stage, a reason and
 * what it matches: an enhanced status code pattern, a reply code range,
 * the SMTP command, the reporting MTA family, a recipient domain and a
 * phrase of the folded diagnostic text.  This file holds the ladder that
 * decides which stage speaks first; the knowledge is in the table.
 *
 * The text is lower-cased and folded once per call, scanning at most
 * SCAN_MAX bytes; the built-in phrases are found through a three-byte
 * index, so the cost is linear in the text and never backtracks.  No
 * logging; allocation only when a rule set is built.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "decode/classify.h"

#define SCAN_MAX 4096 /* bytes of diagnostic text examined */
#define RULES_MAX 4096 /* rules in one set */
#define PHRASE_MAX 200 /* bytes of one phrase */
#define FIELD_MAX 256 /* bytes of any other field */

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

static const char *const reason_names[R_COUNT + 1] = {
    [R_AUTHFAILURE] = "authfailure",
    [R_BADREPUTATION] = "badreputation",
    [R_BLOCKED] = "blocked",
    [R_CONTENTERROR] = "contenterror",
    [R_DELIVERED] = "delivered",
    [R_EXCEEDLIMIT] = "exceedlimit",
    [R_EXPIRED] = "expired",
    [R_FAILEDSTARTTLS] = "failedstarttls",
    [R_FEEDBACK] = "feedback",
    [R_FILTERED] = "filtered",
    [R_HASMOVED] = "hasmoved",
    [R_HOSTUNKNOWN] = "hostunknown",
    [R_MAILBOXFULL] = "mailboxfull",
    [R_MAILERERROR] = "mailererror",
    [R_MESGTOOBIG] = "mesgtoobig",
    [R_NETWORKERROR] = "networkerror",
    [R_NORELAYING] = "norelaying",
    [R_NOTACCEPT] = "notaccept",
    [R_NOTCOMPLIANTRFC] = "notcompliantrfc",
    [R_ONHOLD] = "onhold",
    [R_POLICYVIOLATION] = "policyviolation",
    [R_REJECTED] = "rejected",
    [R_REQUIREPTR] = "requireptr",
    [R_SECURITYERROR] = "securityerror",
    [R_SPAMDETECTED] = "spamdetected",
    [R_SPEEDING] = "speeding",
    [R_SUPPRESSED] = "suppressed",
    [R_SUSPEND] = "suspend",
    [R_SYNTAXERROR] = "syntaxerror",
    [R_SYSTEMERROR] = "systemerror",
    [R_SYSTEMFULL] = "systemfull",
    [R_TOOMANYCONN] = "toomanyconn",
    [R_UNDEFINED] = "undefined",
    [R_USERUNKNOWN] = "userunknown",
    [R_VACATION] = "vacation",
    [R_VIRUSDETECTED] = "virusdetected",
    [R_COUNT] = NULL,
};

/* Reasons that say the address itself is bad (notaccept: only with 5xx). */
static int
reason_is_hard(int r)
{
	return r == R_USERUNKNOWN || r == R_HOSTUNKNOWN || r == R_HASMOVED ||
	    r == R_NOTACCEPT;
}

static int
reason_of(const char *name)
{
	int i;

	for (i = 0; i < R_COUNT; i++)
		if (strcmp(reason_names[i], name) == 0)
			return i;
	return -1;
}

static int
str_eq(const char *a, const char *b)
{
	return a != NULL && b != NULL && strcasecmp(a, b) == 0;
}

/* ---- rules ------------------------------------------------------------ */

enum stage { ST_OPERATOR, ST_PROVIDER, ST_TEXT, ST_CODE, ST_REPLY, ST_LADDER };
static const char *const stage_names[] = {"operator", "provider", "text",
    "code", "reply", "ladder"};
#define NSTAGE (sizeof(stage_names) / sizeof(stage_names[0]))

/* SMTP commands as bits; CMD_NONE: the command is not known. */
enum {
	CMD_CONN = 1,
	CMD_HELO = 2,
	CMD_MAIL = 4,
	CMD_RCPT = 8,
	CMD_DATA = 16,
	CMD_NONE = 32
};
static const struct {
	const char *name;
	unsigned bit;
} cmd_names[] = {{"CONN", CMD_CONN}, {"HELO", CMD_HELO}, {"EHLO", CMD_HELO},
    {"MAIL", CMD_MAIL}, {"RCPT", CMD_RCPT}, {"DATA", CMD_DATA},
    {"NONE", CMD_NONE}};
#define NCMD (sizeof(cmd_names) / sizeof(cmd_names[0]))

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

static unsigned
bucket_of(unsigned char a, unsigned char b, unsigned char c)
{
	return (((unsigned)a * 131u + b) * 131u + c) & (NBUCKET - 1);
}

static void
crule_free(struct crule *r)
{
	free(r->id);
	free(r->source);
	free(r->phrase);
	free(r->mta);
	free(r->domain);
	free(r->status_s);
	free(r->reply_s);
	free(r->cmd_s);
}

void
classify_rules_free(struct classify_rules *rs)
{
	size_t i;

	if (rs == NULL)
		return;
	for (i = 0; i < rs->n; i++)
		crule_free(&rs->r[i]);
	free(rs->r);
	free(rs->bstart);
	free(rs->brule);
	free(rs->smask);
	free(rs);
}

struct classify_rules *
classify_rules_new(void)
{
	struct classify_rules *rs = calloc(1, sizeof(*rs));

	if (rs != NULL)
		rs->operator= 1;
	return rs;
}

static char *
dup_n(const char *s, size_t n)
{
	char *d = malloc(n + 1);

	if (d != NULL) {
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

/* 1-3 digits at *p into *v (advancing p), or 0. */
static int
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

/* "5.1.1", "X.7.*", "4.7.500-699", "5.*.*" -> r; 0 or -1. */
static int
parse_status_spec(const char *s, struct crule *r)
{
	const char *p = s;
	char c = s[0];

	if (c == 'x')
		c = 'X';
	if (c != '2' && c != '4' && c != '5' && c != 'X')
		return -1;
	if (s[1] != '.')
		return -1;
	p = s + 2;
	r->st_class = c;
	if (*p == '*') {
		p++;
		if (strcmp(p, ".*") != 0)
			return -1;
		r->st_subj = r->st_lo = r->st_hi = -1;
		return 0;
	}
	if (!num3(&p, &r->st_subj) || *p++ != '.')
		return -1;
	if (*p == '*' && p[1] == '\0') {
		r->st_lo = r->st_hi = -1;
		return 0;
	}
	if (!num3(&p, &r->st_lo))
		return -1;
	r->st_hi = r->st_lo;
	if (*p == '-') {
		p++;
		if (!num3(&p, &r->st_hi) || r->st_hi < r->st_lo)
			return -1;
	}
	return *p == '\0' ? 0 : -1;
}

/* "550", "5xx", "55x", "421-452" -> r; 0 or -1. */
static int
parse_reply_spec(const char *s, struct crule *r)
{
	size_t n = strlen(s), i, x = 0;
	int lo = 0, hi = 0;

	if (n == 3 && s[0] >= '2' && s[0] <= '5') {
		for (i = 0; i < 3; i++) {
			if (s[i] >= '0' && s[i] <= '9' && x == 0) {
				lo = lo * 10 + (s[i] - '0');
				hi = hi * 10 + (s[i] - '0');
			} else if ((s[i] == 'x' || s[i] == 'X') && i > 0) {
				x++;
				lo = lo * 10;
				hi = hi * 10 + 9;
			} else
				return -1;
		}
	} else if (n == 7 && s[3] == '-') {
		const char *p = s;

		if (!num3(&p, &lo) || *p++ != '-' || !num3(&p, &hi) ||
		    *p != '\0' || lo < 200 || hi > 599 || hi < lo)
			return -1;
	} else
		return -1;
	r->reply_lo = lo;
	r->reply_hi = hi;
	return 0;
}

/* "RCPT", "DATA|MAIL", ... -> bits; 0 or -1. */
static int
parse_cmd_spec(const char *s, struct crule *r)
{
	const char *p = s;

	r->cmds = 0;
	while (*p != '\0') {
		size_t n = strcspn(p, "|"), i;

		for (i = 0; i < NCMD; i++)
			if (strlen(cmd_names[i].name) == n &&
			    strncasecmp(p, cmd_names[i].name, n) == 0)
				break;
		if (i == NCMD)
			return -1;
		r->cmds |= cmd_names[i].bit;
		p += n;
		if (*p == '|')
			p++;
	}
	return r->cmds != 0 ? 0 : -1;
}

/* The phrase as the text is folded: lower case, runs of white space as one
 * space (a leading or trailing space marks a word boundary).  NULL when it
 * could never match (fewer than 3 bytes, an '@': addresses are dropped from
 * the folded text, control bytes). */
static char *
norm_phrase(const char *s)
{
	size_t n = strlen(s), i, k = 0;
	char *d;

	if (n > PHRASE_MAX || (d = malloc(n + 1)) == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '@' || c == 0x7f || (c < ' ' && c != '\t')) {
			free(d);
			return NULL;
		}
		if (c == ' ' || c == '\t') {
			if (k > 0 && d[k - 1] == ' ')
				continue;
			d[k++] = ' ';
			continue;
		}
		d[k++] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : (char)c;
	}
	d[k] = '\0';
	if (k < 3 || strspn(d, " ") == k) {
		free(d);
		return NULL;
	}
	return d;
}

static int
valid_token(const char *s, size_t max)
{
	size_t i;

	if (s[0] == '\0' || strlen(s) > max)
		return 0;
	for (i = 0; s[i] != '\0'; i++)
		if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f || s[i] == '"')
			return 0;
	return 1;
}

/* Appends a rule made of spec to rs: 0, or -1 and err. */
static int
add_rule(struct classify_rules *rs, int stage,
    const struct classify_rule_spec *sp, const char *source, int line,
    char *err, size_t errlen)
{
	struct crule r;
	char idbuf[FIELD_MAX + 8];

	memset(&r, 0, sizeof(r));
	r.stage = stage;
	r.cls = -1;
	r.line = line;
	if (rs->n >= RULES_MAX) {
		snprintf(err, errlen, "more than %d rules", RULES_MAX);
		return -1;
	}
	if (sp->name == NULL || !valid_token(sp->name, FIELD_MAX)) {
		snprintf(err, errlen,
		    "name: missing, or not one word of at most %d bytes",
		    FIELD_MAX);
		return -1;
	}
	if (sp->reason == NULL) {
		snprintf(err, errlen, "reason: missing");
		return -1;
	}
	r.reason = reason_of(sp->reason);
	if (r.reason < 0 &&
	    !(stage == ST_CODE && strcmp(sp->reason, "-") == 0)) {
		snprintf(err, errlen, "reason: unknown reason \"%.64s\"",
		    sp->reason);
		return -1;
	}
	if (sp->cls != NULL) {
		if (strcmp(sp->cls, "hard") == 0)
			r.cls = RECORD_CLASS_HARD;
		else if (strcmp(sp->cls, "soft") == 0)
			r.cls = RECORD_CLASS_SOFT;
		else {
			snprintf(err, errlen,
			    "class: \"%.32s\" is not hard or soft", sp->cls);
			return -1;
		}
		if (r.reason == R_DELIVERED || r.reason == R_FEEDBACK ||
		    r.reason == R_VACATION) {
			snprintf(err, errlen,
			    "class: %s is not a failure, it has no hard or "
			    "soft",
			    reason_names[r.reason]);
			return -1;
		}
	}
	if (sp->status != NULL && parse_status_spec(sp->status, &r) != 0) {
		snprintf(err, errlen,
		    "status: \"%.32s\" is not a status pattern (5.1.1, X.7.*, "
		    "4.7.500-699)",
		    sp->status);
		return -1;
	}
	if (sp->reply != NULL && parse_reply_spec(sp->reply, &r) != 0) {
		snprintf(err, errlen,
		    "reply: \"%.32s\" is not a reply code (550, 5xx, 421-452)",
		    sp->reply);
		return -1;
	}
	if (sp->command != NULL && parse_cmd_spec(sp->command, &r) != 0) {
		snprintf(err, errlen,
		    "command: \"%.32s\" is not CONN, HELO, EHLO, MAIL, RCPT, "
		    "DATA or NONE (several joined by |)",
		    sp->command);
		return -1;
	}
	if (sp->mta != NULL && !valid_token(sp->mta, FIELD_MAX)) {
		snprintf(err, errlen, "mta: not one word");
		return -1;
	}
	if (sp->domain != NULL &&
	    (!valid_token(sp->domain, FIELD_MAX) ||
	        strchr(sp->domain, '@') != NULL)) {
		snprintf(err, errlen, "domain: not a domain name");
		return -1;
	}
	if (sp->phrase != NULL) {
		r.phrase = norm_phrase(sp->phrase);
		if (r.phrase == NULL) {
			snprintf(err, errlen,
			    "phrase: could never match (under 3 characters, "
			    "over %d, or holding '@' or control bytes)",
			    PHRASE_MAX);
			return -1;
		}
		r.plen = strlen(r.phrase);
	}
	if (stage == ST_CODE && (r.st_class == 0 || r.phrase != NULL)) {
		snprintf(err, errlen, "a code rule matches a status, only");
		goto fail;
	}
	if (stage == ST_REPLY && (r.reply_lo == 0 || r.phrase != NULL)) {
		snprintf(err, errlen,
		    "a reply rule matches a reply code, only");
		goto fail;
	}
	if (stage == ST_TEXT && r.phrase == NULL) {
		snprintf(err, errlen, "a text rule needs a phrase");
		goto fail;
	}
	if ((stage == ST_OPERATOR || stage == ST_PROVIDER) &&
	    r.phrase == NULL && r.st_class == 0 && r.reply_lo == 0 &&
	    sp->mta == NULL && sp->domain == NULL) {
		snprintf(err, errlen,
		    "matches everything: give a status, reply, phrase, mta or "
		    "domain");
		goto fail;
	}
	if (stage == ST_OPERATOR)
		snprintf(idbuf, sizeof(idbuf), "op:%s", sp->name);
	else
		snprintf(idbuf, sizeof(idbuf), "%s", sp->name);
	r.id = dup_n(idbuf, strlen(idbuf));
	r.source = source ? dup_n(source, strlen(source)) : NULL;
	r.mta = sp->mta ? dup_n(sp->mta, strlen(sp->mta)) : NULL;
	r.domain = sp->domain ? dup_n(sp->domain, strlen(sp->domain)) : NULL;
	r.status_s = sp->status ? dup_n(sp->status, strlen(sp->status)) : NULL;
	r.reply_s = sp->reply ? dup_n(sp->reply, strlen(sp->reply)) : NULL;
	r.cmd_s = sp->command ? dup_n(sp->command, strlen(sp->command)) : NULL;
	if (r.id == NULL || (source && r.source == NULL) ||
	    (sp->mta && r.mta == NULL) || (sp->domain && r.domain == NULL) ||
	    (sp->status && r.status_s == NULL) ||
	    (sp->reply && r.reply_s == NULL) ||
	    (sp->command && r.cmd_s == NULL)) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (rs->n == rs->cap) {
		size_t cap = rs->cap ? rs->cap * 2 : 64;
		struct crule *nr = realloc(rs->r, cap * sizeof(*nr));

		if (nr == NULL) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
		rs->r = nr;
		rs->cap = cap;
	}
	rs->r[rs->n++] = r;
	free(rs->bstart); /* the index is rebuilt on demand */
	free(rs->brule);
	free(rs->smask);
	rs->bstart = rs->brule = NULL;
	rs->smask = NULL;
	return 0;
fail:
	crule_free(&r);
	return -1;
}

int
classify_rules_add(struct classify_rules *rs,
    const struct classify_rule_spec *spec, char *err, size_t errlen)
{
	size_t i;
	char id[FIELD_MAX + 8];

	if (rs == NULL || spec == NULL) {
		snprintf(err, errlen, "no rule");
		return -1;
	}
	if (spec->name != NULL) {
		snprintf(id, sizeof(id), "op:%s", spec->name);
		for (i = 0; i < rs->n; i++)
			if (strcmp(rs->r[i].id, id) == 0) {
				snprintf(err, errlen,
				    "name: \"%.64s\" is used by an earlier "
				    "rule",
				    spec->name);
				return -1;
			}
	}
	return add_rule(rs, ST_OPERATOR, spec, NULL, 0, err, errlen);
}

/* Builds the phrase index of rs (once); 0 or -1 (out of memory). */
static int
index_build(struct classify_rules *rs)
{
	uint32_t fill[NBUCKET];
	size_t i;

	if (rs->bstart != NULL)
		return 0;
	rs->nwords = (rs->n + 63) / 64;
	rs->bstart = calloc(NBUCKET + 1, sizeof(uint32_t));
	rs->brule = calloc(rs->n + 1, sizeof(uint32_t));
	rs->smask =
	    calloc(2 * (ST_LADDER + 1) * rs->nwords + 1, sizeof(uint64_t));
	if (rs->bstart == NULL || rs->brule == NULL || rs->smask == NULL) {
		free(rs->bstart);
		free(rs->brule);
		free(rs->smask);
		rs->bstart = rs->brule = NULL;
		rs->smask = NULL;
		return -1;
	}
	for (i = 0; i < rs->n; i++) {
		size_t set = (size_t)rs->r[i].stage * 2 +
		    (rs->r[i].phrase != NULL ? 1 : 0);

		rs->smask[set * rs->nwords + (i >> 6)] |= (uint64_t)1
		    << (i & 63);
	}
	for (i = 0; i < rs->n; i++) {
		const unsigned char *p = (const unsigned char *)rs->r[i].phrase;

		if (p != NULL)
			rs->bstart[bucket_of(p[0], p[1], p[2]) + 1]++;
	}
	for (i = 0; i < NBUCKET; i++)
		rs->bstart[i + 1] += rs->bstart[i];
	memcpy(fill, rs->bstart, sizeof(fill));
	for (i = 0; i < rs->n; i++) {
		const unsigned char *p = (const unsigned char *)rs->r[i].phrase;

		if (p != NULL)
			rs->brule[fill[bucket_of(p[0], p[1], p[2])]++] =
			    (uint32_t)i;
	}
	return 0;
}

static int
id_cmp(const void *a, const void *b)
{
	const struct crule *x = *(const struct crule *const *)a;
	const struct crule *y = *(const struct crule *const *)b;
	int d = strcmp(x->id, y->id);

	return d != 0 ? d : (x->line > y->line) - (x->line < y->line);
}

/* Ids are unique: sorted, a repeat sits next to its first use.  0, or -1
 * and err naming the later line. */
static int
dup_id(const struct classify_rules *rs, char *err, size_t errlen)
{
	const struct crule **v;
	size_t i;
	int rc = 0;

	if (rs->n < 2)
		return 0;
	if ((v = malloc(rs->n * sizeof(*v))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (i = 0; i < rs->n; i++)
		v[i] = &rs->r[i];
	qsort(v, rs->n, sizeof(*v), id_cmp);
	for (i = 1; i < rs->n && rc == 0; i++)
		if (strcmp(v[i]->id, v[i - 1]->id) == 0) {
			snprintf(err, errlen,
			    "%d:1: id %.64s is used on line %d", v[i]->line,
			    v[i]->id, v[i - 1]->line);
			rc = -1;
		}
	free(v);
	return rc;
}

/*
 * The table format, one rule a line:
 *   [stage]                      provider, text, code, reply or ladder
 *   ID REASON key=value ...      keys: status reply command mta domain
 *                                phrase class source; a value with
 *                                spaces is quoted "..." (no escapes)
 *   # comment, blank lines
 * Operator text has no [stage] lines; its rules are operator rules.
 */
int
classify_rules_parse(const char *text, size_t len, int operator,
    struct classify_rules ** out, char *err, size_t errlen)
{
	struct classify_rules *rs = calloc(1, sizeof(*rs));
	int stage = operator? ST_OPERATOR : - 1, line = 0;
	size_t pos = 0;
	char msg[256];

	*out = NULL;
	if (rs == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	rs->operator= operator;
	while (pos < len) {
		size_t e = pos, col;
		char buf[1024];
		char *tok[24];
		size_t ntok = 0, k;
		struct classify_rule_spec sp;
		const char *source = NULL;
		char *p;

		line++;
		while (e < len && text[e] != '\n')
			e++;
		if (e - pos >= sizeof(buf)) {
			snprintf(err, errlen,
			    "%d:1: line longer than %zu bytes", line,
			    sizeof(buf) - 1);
			goto fail;
		}
		memcpy(buf, text + pos, e - pos);
		buf[e - pos] = '\0';
		if (strlen(buf) != e - pos) {
			snprintf(err, errlen, "%d:%zu: NUL byte", line,
			    strlen(buf) + 1);
			goto fail;
		}
		pos = e + 1;
		for (k = 0; buf[k] != '\0'; k++)
			if (buf[k] == '\r' || buf[k] == '\t')
				buf[k] = ' ';
		p = buf + strspn(buf, " ");
		if (*p == '\0' || *p == '#')
			continue;
		if (*p == '[') {
			char *q = strchr(p, ']');
			size_t s;

			if (operator|| q == NULL) {
				snprintf(err, errlen, "%d:%zu: %s", line,
				    (size_t)(p - buf) + 1,
				    operator? "no stages in operator rules"
				            : "unclosed [stage]");
				goto fail;
			}
			*q = '\0';
			for (s = 0; s < NSTAGE; s++)
				if (strcmp(p + 1, stage_names[s]) == 0)
					break;
			if (s == NSTAGE || s == ST_OPERATOR) {
				snprintf(err, errlen,
				    "%d:%zu: unknown stage \"%.32s\"", line,
				    (size_t)(p - buf) + 2, p + 1);
				goto fail;
			}
			stage = (int)s;
			continue;
		}
		if (stage < 0) {
			snprintf(err, errlen, "%d:%zu: rule before any [stage]",
			    line, (size_t)(p - buf) + 1);
			goto fail;
		}
		/* tokens: word or key="quoted value" */
		while (*p != '\0') {
			char *t = p;

			if (ntok == sizeof(tok) / sizeof(tok[0])) {
				snprintf(err, errlen, "%d:%zu: too many fields",
				    line, (size_t)(p - buf) + 1);
				goto fail;
			}
			while (*p != '\0' && *p != ' ') {
				if (*p == '"') {
					char *q = strchr(p + 1, '"');

					if (q == NULL) {
						snprintf(err, errlen,
						    "%d:%zu: unclosed quote",
						    line,
						    (size_t)(p - buf) + 1);
						goto fail;
					}
					p = q;
				}
				p++;
			}
			if (*p == ' ')
				*p++ = '\0';
			tok[ntok++] = t;
			p += strspn(p, " ");
		}
		if (ntok < 2) {
			snprintf(err, errlen,
			    "%d:1: want ID REASON key=value...", line);
			goto fail;
		}
		memset(&sp, 0, sizeof(sp));
		sp.name = tok[0];
		sp.reason = tok[1];
		for (k = 2; k < ntok; k++) {
			char *eq = strchr(tok[k], '='), *v;
			const char **slot = NULL;
			size_t vl;

			col = (size_t)(tok[k] - buf) + 1;
			if (eq == NULL) {
				snprintf(err, errlen,
				    "%d:%zu: \"%.32s\" is not key=value", line,
				    col, tok[k]);
				goto fail;
			}
			*eq = '\0';
			v = eq + 1;
			vl = strlen(v);
			if (v[0] == '"') {
				if (vl < 2 || v[vl - 1] != '"') {
					snprintf(err, errlen,
					    "%d:%zu: bad quoting", line, col);
					goto fail;
				}
				v[vl - 1] = '\0';
				v++;
			} else if (strchr(v, '"') != NULL) {
				snprintf(err, errlen, "%d:%zu: bad quoting",
				    line, col);
				goto fail;
			}
			if (strcmp(tok[k], "status") == 0)
				slot = &sp.status;
			else if (strcmp(tok[k], "reply") == 0)
				slot = &sp.reply;
			else if (strcmp(tok[k], "command") == 0)
				slot = &sp.command;
			else if (strcmp(tok[k], "mta") == 0)
				slot = &sp.mta;
			else if (strcmp(tok[k], "domain") == 0)
				slot = &sp.domain;
			else if (strcmp(tok[k], "phrase") == 0)
				slot = &sp.phrase;
			else if (strcmp(tok[k], "class") == 0)
				slot = &sp.cls;
			else if (strcmp(tok[k], "source") == 0)
				slot = &source;
			if (slot == NULL) {
				snprintf(err, errlen,
				    "%d:%zu: unknown key \"%.32s\"", line, col,
				    tok[k]);
				goto fail;
			}
			if (*slot != NULL) {
				snprintf(err, errlen,
				    "%d:%zu: \"%.32s\" given twice", line, col,
				    tok[k]);
				goto fail;
			}
			*slot = v;
		}
		if (!operator&&(source == NULL || source[0] == '\0')) {
			snprintf(err, errlen, "%d:1: rule %.64s has no source",
			    line, sp.name);
			goto fail;
		}
		if (add_rule(rs, stage, &sp, source, line, msg, sizeof(msg)) !=
		    0) {
			snprintf(err, errlen, "%d:1: %s: %s", line, sp.name,
			    msg);
			goto fail;
		}
	}
	if (dup_id(rs, err, errlen) != 0)
		goto fail;
	if (index_build(rs) != 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	*out = rs;
	return 0;
fail:
	classify_rules_free(rs);
	return -1;
}

/* Ids the ladder decides by itself; each has a [ladder] line in the table,
 * which says where the step comes from. */
static const char *const ladder_ids[] = {"feedback", "vacation", "delivered",
    "x-unix", "suspend-code", "data-split", "text-alone", "mail-split",
    "delayed", "helo-refused", "mail-refused", "onhold", "undefined"};
enum {
	L_FEEDBACK,
	L_VACATION,
	L_DELIVERED,
	L_XUNIX,
	L_SUSPENDCODE,
	L_DATASPLIT,
	L_ALONE,
	L_MAILSPLIT,
	L_DELAYED,
	L_HELO,
	L_MAILREFUSED,
	L_ONHOLD,
	L_UNDEFINED,
	L_COUNT
};

static struct classify_rules *builtin;
/* The ladder's own rules, found once when the table is loaded. */
static const struct crule *ladder[L_COUNT];
static pthread_once_t builtin_once = PTHREAD_ONCE_INIT;

static void
builtin_load(void)
{
	char err[256];
	size_t i, k;

	if (classify_rules_parse(classify_rules_text, classify_rules_text_len,
	        0, &builtin, err, sizeof(err)) != 0) {
		fprintf(stderr, "classify_rules.txt:%s\n", err);
		builtin = NULL;
		return;
	}
	for (i = 0; i < L_COUNT; i++) {
		for (k = 0; k < builtin->n; k++)
			if (builtin->r[k].stage == ST_LADDER &&
			    strcmp(builtin->r[k].id, ladder_ids[i]) == 0)
				break;
		if (k < builtin->n)
			ladder[i] = &builtin->r[k];
		else {
			fprintf(stderr,
			    "classify_rules.txt: no [ladder] line for %s\n",
			    ladder_ids[i]);
			classify_rules_free(builtin);
			builtin = NULL;
			return;
		}
	}
}

const struct classify_rules *
classify_builtin(void)
{
	pthread_once(&builtin_once, builtin_load);
	return builtin;
}

size_t
classify_rules_count(const struct classify_rules *rs)
{
	return rs != NULL ? rs->n : 0;
}

int
classify_rule_get(const struct classify_rules *rs, size_t i,
    struct classify_rule_info *out)
{
	const struct crule *r;

	if (rs == NULL || i >= rs->n)
		return -1;
	r = &rs->r[i];
	memset(out, 0, sizeof(*out));
	out->id = r->id;
	out->stage = stage_names[r->stage];
	out->reason = r->reason >= 0 ? reason_names[r->reason] : "-";
	out->cls = r->cls == RECORD_CLASS_HARD ? "hard"
	    : r->cls == RECORD_CLASS_SOFT      ? "soft"
	                                       : NULL;
	out->status = r->status_s;
	out->reply = r->reply_s;
	out->command = r->cmd_s;
	out->mta = r->mta;
	out->phrase = r->phrase;
	out->domain = r->domain;
	out->source = r->source;
	out->line = r->line;
	return 0;
}

/*
 * Lower-cases and folds s into dst (cap bytes, cap >= 3): runs of white
 * space and control bytes become one space, the text is framed by single
 * spaces, and the "550-5.7.1 " prefixes of continued SMTP reply lines are
 * dropped so that phrases broken across lines still match.  Reads at most
 * SCAN_MAX bytes of s.  Returns the length written (NUL-terminated).
 */
static size_t
fold_text(const char *s, char *dst, size_t cap)
{
	const unsigned char *p = (const unsigned char *)s;
	const unsigned char *end;
	size_t n = 0, cut = 1;

	dst[n++] = ' ';
	if (s == NULL)
		goto out;
	end = p + strnlen(s, SCAN_MAX);
	while (p < end && n + 2 < cap) {
		unsigned char c = *p;

		if (c <= ' ' || c == 0x7f) {
			if (dst[n - 1] != ' ')
				dst[n++] = ' ';
			p++;
			continue;
		}
		/* "550-5.7.1 " or a repeated "550 5.7.1 " inside the text:
		 * continuation lines of one reply. */
		if (dst[n - 1] == ' ' && n > 1 && end - p >= 4 && c >= '2' &&
		    c <= '5' && p[1] >= '0' && p[1] <= '9' && p[2] >= '0' &&
		    p[2] <= '9' && (p[3] == '-' || p[3] == ' ')) {
			const unsigned char *q = p + 4;

			while (
			    q < end && ((*q >= '0' && *q <= '9') || *q == '.'))
				q++;
			if ((p[3] == '-' || q - p >= 9) &&
			    (q == end || *q <= ' ')) {
				p = q;
				continue;
			}
		}
		if (dst[n - 1] == ' ')
			cut = n;
		/* An address: drop it from its local part on, keeping what
		 * precedes it in the word ("to:<"), so that the words of a
		 * local part ("spam@", "filtered@") are never read as prose. */
		if (c == '@') {
			n = cut;
			while (p<end && * p> ' ' && *p != 0x7f)
				p++;
			continue;
		}
		dst[n++] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : (char)c;
		if (c == ':' || c == '<' || c == '(' || c == '[' || c == '"')
			cut = n;
		p++;
	}
out:
	if (dst[n - 1] != ' ')
		dst[n++] = ' ';
	dst[n] = '\0';
	return n;
}

/* Digits at s, 1-3 of them, not followed by another digit. */
static size_t
digits(const char *s)
{
	size_t n = 0;

	while (n < 4 && s[n] >= '0' && s[n] <= '9')
		n++;
	return (n >= 1 && n <= 3) ? n : 0;
}

int
classify_parse_status(const char *s, char out[16])
{
	size_t a, b;

	if (s == NULL || (s[0] != '2' && s[0] != '4' && s[0] != '5') ||
	    s[1] != '.')
		return -1;
	a = digits(s + 2);
	if (a == 0 || s[2 + a] != '.')
		return -1;
	b = digits(s + 3 + a);
	if (b == 0)
		return -1;
	/* "5.1.1.2" or "5.1.1x" is not a status code. */
	if (s[3 + a + b] == '.' && (s[4 + a + b] >= '0' && s[4 + a + b] <= '9'))
		return -1;
	memcpy(out, s, 3 + a + b);
	out[3 + a + b] = '\0';
	return 0;
}

/* The first status code in the first len bytes of t standing as a word of
 * its own; 0 and out filled, or -1. */
static int
status_in_text(const char *t, size_t len, char out[16])
{
	size_t i;

	for (i = 0; i + 5 <= len; i++) {
		const char *p = t + i;

		if ((*p != '2' && *p != '4' && *p != '5') || p[1] != '.')
			continue;
		if (i > 0 && ((p[-1] >= '0' && p[-1] <= '9') || p[-1] == '.'))
			continue;
		if (classify_parse_status(p, out) == 0)
			return 0;
	}
	return -1;
}

/* An SMTP reply code "550" at the start of the folded text or after
 * "said:"; 0 when none. */
static int
reply_in_text(const char *t)
{
	const char *p = t;

	while (*p == ' ')
		p++;
	if (p[0] >= '2' && p[0] <= '5' && p[1] >= '0' && p[1] <= '9' &&
	    p[2] >= '0' && p[2] <= '9' && (p[3] == ' ' || p[3] == '-'))
		return (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
	return 0;
}

/* Phrases naming the SMTP command a reply answered, when the decoder did
 * not say; first match wins. */
static const struct {
	const char *phrase;
	const char *command;
} command_phrases[] = {
    {"end of data", "DATA"},
    {"data command", "DATA"},
    {"final data", "DATA"},
    {"after data", "DATA"},
    {">>> data", "DATA"},
    {"rcpt to command", "RCPT"},
    {"after rcpt to:", "RCPT"},
    {">>> rcpt to:", "RCPT"},
    {"mail from command", "MAIL"},
    {"after mail from:", "MAIL"},
    {">>> mail from:", "MAIL"},
    {"after initial connection", "CONN"},
};

/* The SMTP command of the reply: in->smtp_command, else from the text;
 * NULL when unknown. */
static const char *
smtp_command(const struct classify_input *in, const char *text)
{
	size_t i;

	if (in->smtp_command != NULL)
		return in->smtp_command;
	for (i = 0; i < sizeof(command_phrases) / sizeof(command_phrases[0]);
	     i++)
		if (strstr(text, command_phrases[i].phrase) != NULL)
			return command_phrases[i].command;
	/* Yahoo's bounces quote the reply to RCPT TO for each address. */
	if (str_eq(in->mta, "yahoo"))
		return "RCPT";
	return NULL;
}

/* A diagnostic that is only a number: the exit status of a local delivery
 * program (Diagnostic-Code: X-Unix; 75). */
static int
exit_status_only(const char *text)
{
	const char *p = text;
	size_t d = 0;

	while (*p == ' ')
		p++;
	while (p[d] >= '0' && p[d] <= '9')
		d++;
	return d >= 1 && d <= 3 && (p[d] == ' ' || p[d] == '\0') &&
	    p[d + (p[d] != '\0')] == '\0';
}

/* ---- the ladder ------------------------------------------------------- */

/* What one call reads off its input, shared by the stages. */
struct ctx {
	const struct classify_input *in;
	const char *text; /* folded diagnostic */
	size_t n;
	char st[16]; /* status read, "" none */
	int st_subj, st_det;
	int reply;
	unsigned cmd; /* one CMD_ bit */
	const char *domain; /* of the recipient, or NULL */
};

/* The folded text holds the phrase of r (any rule set, no index). */
static int
phrase_in(const struct ctx *c, const struct crule *r)
{
	return r->phrase == NULL || strstr(c->text, r->phrase) != NULL;
}

/* Every other condition of r holds (the phrase is checked by the caller). */
static int
conds_hold(const struct crule *r, const struct ctx *c)
{
	if (r->st_class != 0) {
		if (c->st[0] == '\0')
			return 0;
		if (r->st_class == 'X' ? (c->st[0] != '4' && c->st[0] != '5')
		                       : c->st[0] != r->st_class)
			return 0;
		if (r->st_subj >= 0 && r->st_subj != c->st_subj)
			return 0;
		if (r->st_lo >= 0 &&
		    (c->st_det < r->st_lo || c->st_det > r->st_hi))
			return 0;
	}
	if (r->reply_lo != 0 &&
	    (c->reply < r->reply_lo || c->reply > r->reply_hi))
		return 0;
	if (r->cmds != 0 && !(r->cmds & c->cmd))
		return 0;
	if (r->mta != NULL && !str_eq(c->in->mta, r->mta))
		return 0;
	if (r->domain != NULL) {
		size_t dl, rl;

		if (c->domain == NULL)
			return 0;
		dl = strlen(c->domain);
		rl = strlen(r->domain);
		if (!(dl == rl && strcasecmp(c->domain, r->domain) == 0) &&
		    !(dl > rl && c->domain[dl - rl - 1] == '.' &&
		        strcasecmp(c->domain + dl - rl, r->domain) == 0))
			return 0;
	}
	return 1;
}

/* Sets bit i of hit for every rule i of rs whose phrase occurs in the
 * folded text (one pass over the text through the index). */
static void
phrases_hit(const struct classify_rules *rs, const struct ctx *c, uint64_t *hit)
{
	const char *t = c->text;
	size_t n = c->n, pos, k;

	for (pos = 0; pos + 2 < n; pos++) {
		unsigned h = bucket_of((unsigned char)t[pos],
		    (unsigned char)t[pos + 1], (unsigned char)t[pos + 2]);

		for (k = rs->bstart[h]; k < rs->bstart[h + 1]; k++) {
			const struct crule *r = &rs->r[rs->brule[k]];

			if (r->plen > n - pos ||
			    memcmp(t + pos, r->phrase, r->plen) != 0)
				continue;
			hit[rs->brule[k] >> 6] |= (uint64_t)1
			    << (rs->brule[k] & 63);
		}
	}
}

/* First rule of the built-in table in stage st, from index from, that
 * holds; -1 when none. */
static long
first_of(const struct classify_rules *rs, const uint64_t *hit,
    const struct ctx *c, int st, size_t from)
{
	const uint64_t *none = rs->smask + (size_t)st * 2 * rs->nwords;
	const uint64_t *some = none + rs->nwords;
	size_t w;

	/* the rules of stage st, phrase-less or with their phrase found,
	 * in table order: a word of 64 rules at a time */
	for (w = from >> 6; w < rs->nwords; w++) {
		uint64_t cand = none[w] | (some[w] & hit[w]);

		if (w == from >> 6)
			cand &= ~(uint64_t)0 << (from & 63);
		while (cand != 0) {
			size_t i = w * 64 + (size_t)__builtin_ctzll(cand);

			if (conds_hold(&rs->r[i], c))
				return (long)i;
			cand &= cand - 1;
		}
	}
	return -1;
}

/* The class of a failure with reason r: hard needs a reason that blames
 * the address; notaccept is hard with a permanent code, or with no code
 * and no word of a temporary condition. */
static enum record_class
class_of(int r, const struct ctx *c, int failed)
{
	const struct classify_input *in = c->in;

	if (r == R_FEEDBACK)
		return RECORD_CLASS_COMPLAINT;
	if (r == R_VACATION)
		return RECORD_CLASS_AUTOREPLY;
	if (r == R_DELIVERED)
		return RECORD_CLASS_DELIVERED;
	if (r == R_NOTACCEPT)
		return (c->reply >= 500 || (c->reply == 0 && c->st[0] == '5') ||
		           (c->reply == 0 && c->st[0] == '\0' &&
		               !str_eq(in->action, "delayed") &&
		               !str_eq(in->kind, "delayed") &&
		               strstr(c->text, "temporar") == NULL &&
		               strstr(c->text, "try again") == NULL))
		    ? RECORD_CLASS_HARD
		    : RECORD_CLASS_SOFT;
	if (reason_is_hard(r))
		return RECORD_CLASS_HARD;
	if ((r == R_UNDEFINED || r == R_ONHOLD) && !failed)
		return RECORD_CLASS_UNKNOWN;
	return RECORD_CLASS_SOFT;
}

static void
decide(struct classify_result *out, const struct crule *r, int reason,
    const char *phrase, const struct ctx *c, int failed)
{
	out->reason = reason_names[reason];
	out->cls = (r != NULL && r->cls >= 0) ? (enum record_class)r->cls
	                                      : class_of(reason, c, failed);
	out->rule = r != NULL ? r->id : NULL;
	out->phrase = phrase;
}

static unsigned
cmd_bit(const char *cmd)
{
	size_t i;

	if (cmd == NULL)
		return CMD_NONE;
	for (i = 0; i < NCMD; i++)
		if (strcasecmp(cmd, cmd_names[i].name) == 0)
			return cmd_names[i].bit;
	return CMD_NONE;
}

static const char *
cmd_name(unsigned bit)
{
	size_t i;

	for (i = 0; i < NCMD; i++)
		if (cmd_names[i].bit == bit && bit != CMD_NONE)
			return cmd_names[i].name;
	return NULL;
}

void
classify(const struct classify_input *in, struct classify_result *out)
{
	const struct classify_rules *rs = classify_builtin();
	char text[SCAN_MAX + 4];
	char tst[16] = "";
	uint64_t hit[RULES_MAX / 64];
	struct ctx c;
	const struct crule *lr;
	long t, k, code, rep;
	int failed;
	size_t i;

	memset(out, 0, sizeof(*out));
	out->reason = reason_names[R_UNDEFINED];
	out->cls = RECORD_CLASS_UNKNOWN;
	if (in == NULL || rs == NULL)
		return;
	memset(&c, 0, sizeof(c));
	c.in = in;

	if (str_eq(in->kind, "complaint") ||
	    (in->feedback_type != NULL && in->feedback_type[0] != '\0')) {
		c.text = " ";
		decide(out, ladder[L_FEEDBACK], R_FEEDBACK, NULL, &c, 0);
		return;
	}
	if (str_eq(in->kind, "autoreply")) {
		c.text = " ";
		decide(out, ladder[L_VACATION], R_VACATION, NULL, &c, 0);
		return;
	}

	c.n = fold_text(in->diagnostic, text, sizeof(text));
	c.text = text;
	if (in->status == NULL || classify_parse_status(in->status, c.st) != 0)
		c.st[0] = '\0';
	if (in->diagnostic != NULL)
		(void)status_in_text(in->diagnostic,
		    strnlen(in->diagnostic, SCAN_MAX), tst);
	/* A generic "5.0.0" gives way to the code the reply itself gave. */
	if (c.st[0] == '\0' ||
	    (strcmp(c.st + 1, ".0.0") == 0 && tst[0] == c.st[0]))
		memcpy(c.st, tst, sizeof(c.st));
	if (c.st[0] != '\0') {
		const char *p = c.st + 2;

		(void)num3(&p, &c.st_subj);
		p++;
		(void)num3(&p, &c.st_det);
	}
	c.reply = in->reply_code;
	if (c.reply < 200 || c.reply > 599)
		c.reply = reply_in_text(text);
	if (exit_status_only(text))
		c.reply = 0;
	c.cmd = cmd_bit(smtp_command(in, text));
	if (in->recipient != NULL && (c.domain = strrchr(in->recipient, '@')))
		c.domain = c.domain[1] != '\0' ? c.domain + 1 : NULL;
	memcpy(out->status, c.st, sizeof(out->status));
	out->reply = c.reply;
	out->command = cmd_name(c.cmd);

	/* 2: 2.x.x (or an action that says so) is a delivery. */
	if (c.st[0] == '2' || str_eq(in->action, "delivered") ||
	    str_eq(in->action, "relayed") || str_eq(in->action, "expanded") ||
	    (str_eq(in->kind, "delivered") && c.st[0] == '\0')) {
		decide(out, ladder[L_DELIVERED], R_DELIVERED, NULL, &c, 0);
		return;
	}
	failed = c.st[0] == '4' || c.st[0] == '5' || c.reply >= 400 ||
	    str_eq(in->action, "failed") || str_eq(in->action, "delayed") ||
	    str_eq(in->kind, "bounce") || str_eq(in->kind, "delayed");
	if (!failed && str_eq(in->kind, "unknown")) {
		out->status[0] = '\0';
		out->reply = 0;
		out->command = NULL;
		return; /* not a bounce we recognise: nothing to say */
	}

	/* 0: the operator's rules, in their order. */
	if (in->operator_rules != NULL)
		for (i = 0; i < in->operator_rules->n; i++) {
			const struct crule *r = &in->operator_rules->r[i];

			if (phrase_in(&c, r) && conds_hold(r, &c)) {
				decide(out, r, r->reason, r->phrase, &c,
				    failed);
				return;
			}
		}

	memset(hit, 0, sizeof(hit));
	phrases_hit(rs, &c, hit);

	/* 1: the reporting system's own codes and texts. */
	if ((k = first_of(rs, hit, &c, ST_PROVIDER, 0)) >= 0) {
		decide(out, &rs->r[k], rs->r[k].reason, rs->r[k].phrase, &c,
		    failed);
		return;
	}
	t = first_of(rs, hit, &c, ST_TEXT, 0);
	code = first_of(rs, hit, &c, ST_CODE, 0);
	rep = first_of(rs, hit, &c, ST_REPLY, 0);

	/* 1: a local delivery program's report (Diagnostic-Code: x-unix)
	 * in words says the program failed, whatever it says, unless the
	 * mailbox was full. */
	if (str_eq(in->diagnostic_type, "x-unix") && !exit_status_only(text) &&
	    c.n > 2 && !(t >= 0 && rs->r[t].reason == R_MAILBOXFULL)) {
		decide(out, ladder[L_XUNIX], R_MAILERERROR, NULL, &c, failed);
		return;
	}

	/* 3: the diagnostic text, in the table's precedence. */
	while (t >= 0) {
		const struct crule *r = &rs->r[t];

		if (r->reason == R_USERUNKNOWN) {
			if (code >= 0 && rs->r[code].reason == R_SUSPEND) {
				lr = ladder[L_SUSPENDCODE];
				decide(out, lr, R_SUSPEND, r->phrase, &c,
				    failed);
				return;
			}
			if (c.cmd != CMD_RCPT &&
			    !(code >= 0 &&
			        rs->r[code].reason == R_USERUNKNOWN) &&
			    c.cmd != CMD_MAIL) {
				lr = ladder[c.cmd == CMD_DATA ? L_DATASPLIT
				                              : L_ALONE];
				decide(out, lr, R_FILTERED, r->phrase, &c,
				    failed);
				return;
			}
			if (c.cmd == CMD_MAIL &&
			    !(code >= 0 &&
			        rs->r[code].reason == R_USERUNKNOWN)) {
				lr = ladder[L_MAILSPLIT];
				decide(out, lr, R_REJECTED, r->phrase, &c,
				    failed);
				return;
			}
		}
		if (r->reason == R_FILTERED && c.cmd != CMD_DATA &&
		    c.cmd != CMD_NONE) {
			/* nothing refused before DATA is filtered: the next
			 * telling text, else the codes decide */
			t = first_of(rs, hit, &c, ST_TEXT, (size_t)t + 1);
			while (t >= 0 && rs->r[t].reason == R_FILTERED)
				t = first_of(rs, hit, &c, ST_TEXT,
				    (size_t)t + 1);
			continue;
		}
		decide(out, r, r->reason, r->phrase, &c, failed);
		return;
	}

	/* 4: the enhanced status code's default reason, then the basic
	 * reply code's. */
	if (code >= 0 && rs->r[code].reason >= 0) {
		decide(out, &rs->r[code], rs->r[code].reason, NULL, &c, failed);
		return;
	}
	if (rep >= 0) {
		decide(out, &rs->r[rep], rs->r[rep].reason, NULL, &c, failed);
		return;
	}

	/* 5: the last resorts. */
	if (str_eq(in->diagnostic_type, "x-unix") || exit_status_only(text))
		decide(out, ladder[L_XUNIX], R_MAILERERROR, NULL, &c, failed);
	else if (str_eq(in->action, "delayed") || str_eq(in->kind, "delayed"))
		decide(out, ladder[L_DELAYED], R_EXPIRED, NULL, &c, failed);
	else if (c.cmd == CMD_HELO || c.cmd == CMD_CONN)
		decide(out, ladder[L_HELO], R_BLOCKED, NULL, &c, failed);
	else if (c.cmd == CMD_MAIL)
		decide(out, ladder[L_MAILREFUSED], R_REJECTED, NULL, &c,
		    failed);
	else if ((c.st[0] != '\0' && !(c.st_subj == 0 && c.st_det == 0)) ||
	    c.reply >= 400 || c.n > 2)
		decide(out, ladder[L_ONHOLD], R_ONHOLD, NULL, &c, failed);
	else
		decide(out, ladder[L_UNDEFINED], R_UNDEFINED, NULL, &c, failed);
}

int
classify_reason_valid(const char *name)
{
	size_t i;

	if (name == NULL)
		return 0;
	for (i = 0; i < R_COUNT; i++)
		if (strcmp(reason_names[i], name) == 0)
			return 1;
	return 0;
}

const char *const *
classify_reasons(void)
{
	return reason_names;
}
