/*
 * classify.c - one failed recipient -> reason (Sisimai's vocabulary) and
 * class, by a fixed ladder of evidence over a table of rules.
 *
 * The rules are data: classify_rules.txt, compiled into the binary as text
 * (classify_rules_gen.c) and parsed once on first use (classify_rules.c);
 * operators add their
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

#include "decode/classify_int.h"

#define SCAN_MAX 4096 /* bytes of diagnostic text examined */

/* Reasons that say the address itself is bad (notaccept: only with 5xx). */
static int
reason_is_hard(int r)
{
	return r == R_USERUNKNOWN || r == R_HOSTUNKNOWN || r == R_HASMOVED ||
	    r == R_NOTACCEPT;
}

static int
str_eq(const char *a, const char *b)
{
	return a != NULL && b != NULL && strcasecmp(a, b) == 0;
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
	out->reason = classify_reason_names[reason];
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
		if (strcasecmp(cmd, classify_cmd_names[i].name) == 0)
			return classify_cmd_names[i].bit;
	return CMD_NONE;
}

static const char *
cmd_name(unsigned bit)
{
	size_t i;

	for (i = 0; i < NCMD; i++)
		if (classify_cmd_names[i].bit == bit && bit != CMD_NONE)
			return classify_cmd_names[i].name;
	return NULL;
}

/* Reads what in says into c (text: cap bytes for the folded
 * diagnostic) and records it in out: the status, reply code and SMTP
 * command the ladder goes by. */
static void
read_evidence(const struct classify_input *in, struct ctx *c, char *text,
    size_t cap, struct classify_result *out)
{
	char tst[16] = "";

	c->n = fold_text(in->diagnostic, text, cap);
	c->text = text;
	if (in->status == NULL || classify_parse_status(in->status, c->st) != 0)
		c->st[0] = '\0';
	if (in->diagnostic != NULL)
		(void)status_in_text(in->diagnostic,
		    strnlen(in->diagnostic, SCAN_MAX), tst);
	/* A generic "5.0.0" gives way to the code the reply itself gave. */
	if (c->st[0] == '\0' ||
	    (strcmp(c->st + 1, ".0.0") == 0 && tst[0] == c->st[0]))
		memcpy(c->st, tst, sizeof(c->st));
	if (c->st[0] != '\0') {
		const char *p = c->st + 2;

		(void)num3(&p, &c->st_subj);
		p++;
		(void)num3(&p, &c->st_det);
	}
	c->reply = in->reply_code;
	if (c->reply < 200 || c->reply > 599)
		c->reply = reply_in_text(text);
	if (exit_status_only(text))
		c->reply = 0;
	c->cmd = cmd_bit(smtp_command(in, text));
	if (in->recipient != NULL && (c->domain = strrchr(in->recipient, '@')))
		c->domain = c->domain[1] != '\0' ? c->domain + 1 : NULL;
	memcpy(out->status, c->st, sizeof(out->status));
	out->reply = c->reply;
	out->command = cmd_name(c->cmd);
}

/* 3: the diagnostic text, in the table's precedence, from text rule t
 * on (code: the first status code rule that holds, or -1).  1 when it
 * decided, 0 when the codes must. */
static int
text_stage(const struct classify_rules *rs, const uint64_t *hit,
    const struct ctx *c, long t, long code, int failed,
    struct classify_result *out)
{
	const struct crule *lr;

	while (t >= 0) {
		const struct crule *r = &rs->r[t];

		if (r->reason == R_USERUNKNOWN) {
			if (code >= 0 && rs->r[code].reason == R_SUSPEND) {
				lr = ladder[L_SUSPENDCODE];
				decide(out, lr, R_SUSPEND, r->phrase, c,
				    failed);
				return 1;
			}
			if (c->cmd != CMD_RCPT &&
			    !(code >= 0 &&
			        rs->r[code].reason == R_USERUNKNOWN) &&
			    c->cmd != CMD_MAIL) {
				lr = ladder[c->cmd == CMD_DATA ? L_DATASPLIT
				                               : L_ALONE];
				decide(out, lr, R_FILTERED, r->phrase, c,
				    failed);
				return 1;
			}
			if (c->cmd == CMD_MAIL &&
			    !(code >= 0 &&
			        rs->r[code].reason == R_USERUNKNOWN)) {
				lr = ladder[L_MAILSPLIT];
				decide(out, lr, R_REJECTED, r->phrase, c,
				    failed);
				return 1;
			}
		}
		if (r->reason == R_FILTERED && c->cmd != CMD_DATA &&
		    c->cmd != CMD_NONE) {
			/* nothing refused before DATA is filtered: the next
			 * telling text, else the codes decide */
			t = first_of(rs, hit, c, ST_TEXT, (size_t)t + 1);
			while (t >= 0 && rs->r[t].reason == R_FILTERED)
				t = first_of(rs, hit, c, ST_TEXT,
				    (size_t)t + 1);
			continue;
		}
		decide(out, r, r->reason, r->phrase, c, failed);
		return 1;
	}
	return 0;
}

/* 5: the last resorts, when no rule spoke. */
static void
last_resort(const struct ctx *c, int failed, struct classify_result *out)
{
	if (str_eq(c->in->diagnostic_type, "x-unix") ||
	    exit_status_only(c->text))
		decide(out, ladder[L_XUNIX], R_MAILERERROR, NULL, c, failed);
	else if (str_eq(c->in->action, "delayed") ||
	    str_eq(c->in->kind, "delayed"))
		decide(out, ladder[L_DELAYED], R_EXPIRED, NULL, c, failed);
	else if (c->cmd == CMD_HELO || c->cmd == CMD_CONN)
		decide(out, ladder[L_HELO], R_BLOCKED, NULL, c, failed);
	else if (c->cmd == CMD_MAIL)
		decide(out, ladder[L_MAILREFUSED], R_REJECTED, NULL, c, failed);
	else if ((c->st[0] != '\0' && !(c->st_subj == 0 && c->st_det == 0)) ||
	    c->reply >= 400 || c->n > 2)
		decide(out, ladder[L_ONHOLD], R_ONHOLD, NULL, c, failed);
	else
		decide(out, ladder[L_UNDEFINED], R_UNDEFINED, NULL, c, failed);
}

void
classify(const struct classify_input *in, struct classify_result *out)
{
	const struct classify_rules *rs = classify_builtin();
	char text[SCAN_MAX + 4];
	uint64_t hit[RULES_MAX / 64];
	struct ctx c;
	long t, k, code, rep;
	int failed;
	size_t i;

	memset(out, 0, sizeof(*out));
	out->reason = classify_reason_names[R_UNDEFINED];
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

	read_evidence(in, &c, text, sizeof(text), out);

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

	if (text_stage(rs, hit, &c, t, code, failed, out))
		return;

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

	last_resort(&c, failed, out);
}
