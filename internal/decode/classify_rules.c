/*
 * classify_rules.c - rule sets for the classifier: the table format of
 * classify_rules.txt (one rule a line, [stage] sections) and operator
 * rules given field by field, their checks (every field, unique ids, what
 * a stage requires), and the phrase index and per-stage bit sets the
 * ladder reads.  Allocates only while a set is built.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "decode/classify_int.h"

#define PHRASE_MAX 200 /* bytes of one phrase */
#define FIELD_MAX 256 /* bytes of any other field */

const char *const classify_reason_names[R_COUNT + 1] = {
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

static int
reason_of(const char *name)
{
	int i;

	for (i = 0; i < R_COUNT; i++)
		if (strcmp(classify_reason_names[i], name) == 0)
			return i;
	return -1;
}

static const char *const stage_names[] = {"operator", "provider", "text",
    "code", "reply", "ladder"};
#define NSTAGE (sizeof(stage_names) / sizeof(stage_names[0]))

const struct classify_cmd classify_cmd_names[NCMD] = {{"CONN", CMD_CONN},
    {"HELO", CMD_HELO}, {"EHLO", CMD_HELO}, {"MAIL", CMD_MAIL},
    {"RCPT", CMD_RCPT}, {"DATA", CMD_DATA}, {"NONE", CMD_NONE}};

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
			if (strlen(classify_cmd_names[i].name) == n &&
			    strncasecmp(p, classify_cmd_names[i].name, n) == 0)
				break;
		if (i == NCMD)
			return -1;
		r->cmds |= classify_cmd_names[i].bit;
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

/* Checks the fields of sp and fills r from them (the phrase folded):
 * 0, or -1 and err. */
static int
rule_fields(struct crule *r, int stage, const struct classify_rule_spec *sp,
    char *err, size_t errlen)
{
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
	r->reason = reason_of(sp->reason);
	if (r->reason < 0 &&
	    !(stage == ST_CODE && strcmp(sp->reason, "-") == 0)) {
		snprintf(err, errlen, "reason: unknown reason \"%.64s\"",
		    sp->reason);
		return -1;
	}
	if (sp->cls != NULL) {
		if (strcmp(sp->cls, "hard") == 0)
			r->cls = RECORD_CLASS_HARD;
		else if (strcmp(sp->cls, "soft") == 0)
			r->cls = RECORD_CLASS_SOFT;
		else {
			snprintf(err, errlen,
			    "class: \"%.32s\" is not hard or soft", sp->cls);
			return -1;
		}
		if (r->reason == R_DELIVERED || r->reason == R_FEEDBACK ||
		    r->reason == R_VACATION) {
			snprintf(err, errlen,
			    "class: %s is not a failure, it has no hard or "
			    "soft",
			    classify_reason_names[r->reason]);
			return -1;
		}
	}
	if (sp->status != NULL && parse_status_spec(sp->status, r) != 0) {
		snprintf(err, errlen,
		    "status: \"%.32s\" is not a status pattern (5.1.1, X.7.*, "
		    "4.7.500-699)",
		    sp->status);
		return -1;
	}
	if (sp->reply != NULL && parse_reply_spec(sp->reply, r) != 0) {
		snprintf(err, errlen,
		    "reply: \"%.32s\" is not a reply code (550, 5xx, 421-452)",
		    sp->reply);
		return -1;
	}
	if (sp->command != NULL && parse_cmd_spec(sp->command, r) != 0) {
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
		r->phrase = norm_phrase(sp->phrase);
		if (r->phrase == NULL) {
			snprintf(err, errlen,
			    "phrase: could never match (under 3 characters, "
			    "over %d, or holding '@' or control bytes)",
			    PHRASE_MAX);
			return -1;
		}
		r->plen = strlen(r->phrase);
	}
	return 0;
}

/* What each stage requires of a rule: 0, or -1 and err. */
static int
rule_stage_ok(const struct crule *r, int stage,
    const struct classify_rule_spec *sp, char *err, size_t errlen)
{
	if (stage == ST_CODE && (r->st_class == 0 || r->phrase != NULL)) {
		snprintf(err, errlen, "a code rule matches a status, only");
		return -1;
	}
	if (stage == ST_REPLY && (r->reply_lo == 0 || r->phrase != NULL)) {
		snprintf(err, errlen,
		    "a reply rule matches a reply code, only");
		return -1;
	}
	if (stage == ST_TEXT && r->phrase == NULL) {
		snprintf(err, errlen, "a text rule needs a phrase");
		return -1;
	}
	if ((stage == ST_OPERATOR || stage == ST_PROVIDER) &&
	    r->phrase == NULL && r->st_class == 0 && r->reply_lo == 0 &&
	    sp->mta == NULL && sp->domain == NULL) {
		snprintf(err, errlen,
		    "matches everything: give a status, reply, phrase, mta or "
		    "domain");
		return -1;
	}
	return 0;
}

/* The id ("op:NAME" for an operator's rule) and the fields as written,
 * copied into r: 0, or -1 and err. */
static int
rule_strings(struct crule *r, int stage, const struct classify_rule_spec *sp,
    const char *source, char *err, size_t errlen)
{
	char idbuf[FIELD_MAX + 8];

	if (stage == ST_OPERATOR)
		snprintf(idbuf, sizeof(idbuf), "op:%s", sp->name);
	else
		snprintf(idbuf, sizeof(idbuf), "%s", sp->name);
	r->id = dup_n(idbuf, strlen(idbuf));
	r->source = source ? dup_n(source, strlen(source)) : NULL;
	r->mta = sp->mta ? dup_n(sp->mta, strlen(sp->mta)) : NULL;
	r->domain = sp->domain ? dup_n(sp->domain, strlen(sp->domain)) : NULL;
	r->status_s = sp->status ? dup_n(sp->status, strlen(sp->status)) : NULL;
	r->reply_s = sp->reply ? dup_n(sp->reply, strlen(sp->reply)) : NULL;
	r->cmd_s = sp->command ? dup_n(sp->command, strlen(sp->command)) : NULL;
	if (r->id == NULL || (source && r->source == NULL) ||
	    (sp->mta && r->mta == NULL) || (sp->domain && r->domain == NULL) ||
	    (sp->status && r->status_s == NULL) ||
	    (sp->reply && r->reply_s == NULL) ||
	    (sp->command && r->cmd_s == NULL)) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

/* Appends a rule made of spec to rs: 0, or -1 and err. */
static int
add_rule(struct classify_rules *rs, int stage,
    const struct classify_rule_spec *sp, const char *source, int line,
    char *err, size_t errlen)
{
	struct crule r;

	memset(&r, 0, sizeof(r));
	r.stage = stage;
	r.cls = -1;
	r.line = line;
	if (rs->n >= RULES_MAX) {
		snprintf(err, errlen, "more than %d rules", RULES_MAX);
		return -1;
	}
	if (rule_fields(&r, stage, sp, err, errlen) != 0 ||
	    rule_stage_ok(&r, stage, sp, err, errlen) != 0 ||
	    rule_strings(&r, stage, sp, source, err, errlen) != 0)
		goto fail;
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
#define TOK_MAX 24 /* fields on one line */

/* A "[stage]" line at p (in buf, for the column): sets *stage.  0, or -1
 * and err. */
static int
parse_stage(char *buf, char *p, int line, int operator, int * stage, char *err,
    size_t errlen)
{
	char *q = strchr(p, ']');
	size_t s;

	if (operator|| q == NULL) {
		snprintf(err, errlen, "%d:%zu: %s", line,
		    (size_t)(p - buf) + 1,
		    operator? "no stages in operator rules"
		            : "unclosed [stage]");
		return -1;
	}
	*q = '\0';
	for (s = 0; s < NSTAGE; s++)
		if (strcmp(p + 1, stage_names[s]) == 0)
			break;
	if (s == NSTAGE || s == ST_OPERATOR) {
		snprintf(err, errlen, "%d:%zu: unknown stage \"%.32s\"", line,
		    (size_t)(p - buf) + 2, p + 1);
		return -1;
	}
	*stage = (int)s;
	return 0;
}

/* Splits the rule at p (in buf) into words and key="quoted value"s,
 * NUL-terminating each.  0, or -1 and err. */
static int
split_tokens(char *buf, char *p, int line, char *tok[TOK_MAX], size_t *ntok,
    char *err, size_t errlen)
{
	*ntok = 0;
	/* tokens: word or key="quoted value" */
	while (*p != '\0') {
		char *t = p;

		if (*ntok == TOK_MAX) {
			snprintf(err, errlen, "%d:%zu: too many fields", line,
			    (size_t)(p - buf) + 1);
			return -1;
		}
		while (*p != '\0' && *p != ' ') {
			if (*p == '"') {
				char *q = strchr(p + 1, '"');

				if (q == NULL) {
					snprintf(err, errlen,
					    "%d:%zu: unclosed quote", line,
					    (size_t)(p - buf) + 1);
					return -1;
				}
				p = q;
			}
			p++;
		}
		if (*p == ' ')
			*p++ = '\0';
		tok[(*ntok)++] = t;
		p += strspn(p, " ");
	}
	return 0;
}

/* The key=value fields tok[2..ntok) into sp (and the source).  0, or -1
 * and err. */
static int
fill_spec(char *buf, char *tok[TOK_MAX], size_t ntok, int line,
    struct classify_rule_spec *sp, const char **source, char *err,
    size_t errlen)
{
	size_t k, col;

	for (k = 2; k < ntok; k++) {
		char *eq = strchr(tok[k], '='), *v;
		const char **slot = NULL;
		size_t vl;

		col = (size_t)(tok[k] - buf) + 1;
		if (eq == NULL) {
			snprintf(err, errlen,
			    "%d:%zu: \"%.32s\" is not key=value", line, col,
			    tok[k]);
			return -1;
		}
		*eq = '\0';
		v = eq + 1;
		vl = strlen(v);
		if (v[0] == '"') {
			if (vl < 2 || v[vl - 1] != '"') {
				snprintf(err, errlen, "%d:%zu: bad quoting",
				    line, col);
				return -1;
			}
			v[vl - 1] = '\0';
			v++;
		} else if (strchr(v, '"') != NULL) {
			snprintf(err, errlen, "%d:%zu: bad quoting", line, col);
			return -1;
		}
		if (strcmp(tok[k], "status") == 0)
			slot = &sp->status;
		else if (strcmp(tok[k], "reply") == 0)
			slot = &sp->reply;
		else if (strcmp(tok[k], "command") == 0)
			slot = &sp->command;
		else if (strcmp(tok[k], "mta") == 0)
			slot = &sp->mta;
		else if (strcmp(tok[k], "domain") == 0)
			slot = &sp->domain;
		else if (strcmp(tok[k], "phrase") == 0)
			slot = &sp->phrase;
		else if (strcmp(tok[k], "class") == 0)
			slot = &sp->cls;
		else if (strcmp(tok[k], "source") == 0)
			slot = source;
		if (slot == NULL) {
			snprintf(err, errlen, "%d:%zu: unknown key \"%.32s\"",
			    line, col, tok[k]);
			return -1;
		}
		if (*slot != NULL) {
			snprintf(err, errlen, "%d:%zu: \"%.32s\" given twice",
			    line, col, tok[k]);
			return -1;
		}
		*slot = v;
	}
	return 0;
}

/* One line of the table (CR and tabs already blanked): a comment, a
 * [stage], or a rule added to rs.  0, or -1 and err. */
static int
parse_line(struct classify_rules *rs, char *buf, int line, int operator,
    int * stage, char *err, size_t errlen)
{
	char *tok[TOK_MAX];
	size_t ntok;
	struct classify_rule_spec sp;
	const char *source = NULL;
	char msg[256];
	char *p = buf + strspn(buf, " ");

	if (*p == '\0' || *p == '#')
		return 0;
	if (*p == '[')
		return parse_stage(buf, p, line, operator, stage, err, errlen);
	if (*stage < 0) {
		snprintf(err, errlen, "%d:%zu: rule before any [stage]", line,
		    (size_t)(p - buf) + 1);
		return -1;
	}
	if (split_tokens(buf, p, line, tok, &ntok, err, errlen) != 0)
		return -1;
	if (ntok < 2) {
		snprintf(err, errlen, "%d:1: want ID REASON key=value...",
		    line);
		return -1;
	}
	memset(&sp, 0, sizeof(sp));
	sp.name = tok[0];
	sp.reason = tok[1];
	if (fill_spec(buf, tok, ntok, line, &sp, &source, err, errlen) != 0)
		return -1;
	if (!operator&&(source == NULL || source[0] == '\0')) {
		snprintf(err, errlen, "%d:1: rule %.64s has no source", line,
		    sp.name);
		return -1;
	}
	if (add_rule(rs, *stage, &sp, source, line, msg, sizeof(msg)) != 0) {
		snprintf(err, errlen, "%d:1: %s: %s", line, sp.name, msg);
		return -1;
	}
	return 0;
}

int
classify_rules_parse(const char *text, size_t len, int operator,
    struct classify_rules ** out, char *err, size_t errlen)
{
	struct classify_rules *rs = calloc(1, sizeof(*rs));
	int stage = operator? ST_OPERATOR : - 1, line = 0;
	size_t pos = 0;

	*out = NULL;
	if (rs == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	rs->operator= operator;
	while (pos < len) {
		size_t e = pos, k;
		char buf[1024];

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
		if (parse_line(rs, buf, line, operator, & stage, err, errlen) !=
		    0)
			goto fail;
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
	out->reason = r->reason >= 0 ? classify_reason_names[r->reason] : "-";
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

int
classify_reason_valid(const char *name)
{
	size_t i;

	if (name == NULL)
		return 0;
	for (i = 0; i < R_COUNT; i++)
		if (strcmp(classify_reason_names[i], name) == 0)
			return 1;
	return 0;
}

const char *const *
classify_reasons(void)
{
	return classify_reason_names;
}
