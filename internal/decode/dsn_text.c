/*
 * dsn_text.c - bounces without a delivery-status part: the prose of Exim,
 * qmail, Postfix, Sendmail, Courier, Exchange/Office 365, Gmail, Yahoo,
 * Domino/Notes, GMX, mail.ru and others; Amazon SES JSON notifications
 * (ses.c); RFC 3834 auto-replies.  Recipients are the addresses that head a line of
 * the error section (before the returned message); the text up to the next
 * recipient is the diagnostic.  Every scan is linear and capped.
 */
#include "decode/dsn_text.h"
#include "decode/report.h"
#include "decode/ses.h"

#include <stdlib.h>
#include <string.h>

#define SCAN_CAP (64 * 1024)
#define HEAD_CAP (8 * 1024) /* where bounce prose markers are looked for */
#define BLOCK_CAP 1024
#define MAX_CAND 256

static int has_code(const char *s, size_t n);

static char *
lower_dup(const char *s, size_t n)
{
	char *d = xmalloc(n + 1);
	size_t i;

	for (i = 0; i < n; i++) {
		char c = s[i];

		d[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
	}
	d[n] = '\0';
	return d;
}

static int
has_any(const char *low, const char *const *needles)
{
	size_t i;

	for (i = 0; needles[i] != NULL; i++)
		if (strstr(low, needles[i]) != NULL)
			return 1;
	return 0;
}

/* ---- MTA family ---- */

static const struct mta_marker {
	const char *needle;
	const char *mta;
} mta_markers[] = {
    {"groups.google.com", "googlegroups"},
    {"qmail-send program", "qmail"},
    {"this is the qmail", "qmail"},
    {"created automatically by mail delivery software", "exim"},
    {"this is the mail system at host", "postfix"},
    {"this is the postfix program", "postfix"},
    {"----- transcript of session follows -----", "sendmail"},
    {"the original message was received at", "sendmail"},
    {"delivery has failed to these recipients", "office365"},
    {"diagnostic information for administrators", "office365"},
    {"did not reach the following recipient", "exchange"},
    {"google tried to deliver", "gmail"},
    {"delivery to the following recipient", "gmail"},
    {"dragonfly mail agent", "dragonfly"},
    {"sorry, we were unable to deliver your message", "yahoo"},
    {"lotus domino", "domino"},
    {"------- failure reasons", "notes"},
    {"courier mail server", "courier"},
    {"this is the courier", "courier"},
    {"opensmtpd", "opensmtpd"},
    {"mail.ru", "mailru"},
    {"gmx", "gmx"},
    {"zimbra", "zimbra"},
    {"messaging server", "messagingserver"},
    {NULL, NULL},
};

static void
detect_mta(struct dsn_report *r, const char *low_from, const char *low_text)
{
	size_t i;

	if (r->rec.mta != NULL)
		return;
	/* Outlook.com (Hotmail) writes its own DSN wording */
	if (strstr(low_from, "@hotmail.") != NULL) {
		r->rec.mta = "outlook";
		return;
	}
	for (i = 0; mta_markers[i].needle != NULL; i++)
		if (strstr(low_text, mta_markers[i].needle) != NULL) {
			r->rec.mta = mta_markers[i].mta;
			return;
		}
	if (strstr(low_from, "googlemail.com") ||
	    strstr(low_from, "google.com"))
		r->rec.mta = "gmail";
	else if (strstr(low_from, "yahoo"))
		r->rec.mta = "yahoo";
	else if (strstr(low_from, "outlook.com") ||
	    strstr(low_from, "microsoft.com"))
		r->rec.mta = "office365";
}

/* ---- where the returned message starts ---- */

static const char *const ret_markers[] = {"copy of the message",
    "original message", "returned message", "message headers follow",
    "header of the original", "headers of the original", "below this line",
    "unsent message", "original headers", "message text follows",
    "returned mail follows", "message follows", "original mail",
    "headers of your message", "original message header", "returned content",
    "first part of the message", NULL};

static int
line_is_header(const char *l, size_t n)
{
	static const char *const names[] = {"received:", "return-path:",
	    "message-id:", "x-original-to:", "delivered-to:", NULL};
	size_t i;

	for (i = 0; names[i] != NULL; i++) {
		size_t k = strlen(names[i]);

		if (n > k && ascii_ncasecmp(l, names[i], k) == 0)
			return 1;
	}
	return 0;
}

/* A field line "Name: value" at column 0. */
static int
field_line(const char *l, size_t n)
{
	size_t k = 0;

	while (k < n && k < 64 &&
	    (g_ascii_isalnum(l[k]) || l[k] == '-' || l[k] == '_'))
		k++;
	return k > 0 && k < n && l[k] == ':';
}

/* A header block of the original: a common message header at column 0
 * followed by two more field lines (folded lines allowed between). */
static int
header_block_at(const char *s, size_t len, size_t i)
{
	static const char *const names[] = {"from:", "to:", "subject:", "date:",
	    "dkim-signature:", "reply-to:", "x-mailer:", NULL};
	size_t k, fields = 0, lines = 0;
	int known = 0;

	for (k = 0; names[k] != NULL; k++)
		if (len - i > strlen(names[k]) &&
		    ascii_ncasecmp(s + i, names[k], strlen(names[k])) == 0)
			known = 1;
	if (!known)
		return 0;
	while (i < len && lines++ < 12 && fields < 3) {
		const char *l = s + i, *nl = memchr(l, '\n', len - i);
		size_t ll = nl ? (size_t)(nl - l) : len - i;

		if (ll > 0 && (l[0] == ' ' || l[0] == '\t'))
			;
		else if (field_line(l, ll))
			fields++;
		else
			return 0;
		i += ll + (nl ? 1 : 0);
	}
	return fields >= 3;
}

/* Offset of the first line of the returned message (len if none); *hdr_at
 * gets where its header block begins. */
static size_t
returned_start(const char *s, size_t len, size_t *hdr_at)
{
	size_t i = 0;

	*hdr_at = len;
	while (i < len) {
		const char *l = s + i, *nl = memchr(l, '\n', len - i);
		size_t ll = nl ? (size_t)(nl - l) : len - i;
		size_t next = i + ll + (nl ? 1 : 0);

		if (line_is_header(l, ll) || header_block_at(s, len, i)) {
			*hdr_at = i;
			return i;
		}
		if (ll > 0 && ll < 120) {
			char *low = lower_dup(l, ll);
			int punct = strchr("-=*_[<#>", l[0]) != NULL;
			int mark = has_any(low, ret_markers) &&
			    (punct || ll < 48) &&
			    strstr(low, "was received at") == NULL;

			free(low);
			if (mark) {
				size_t j = next;

				/* the header block follows, after blank lines */
				while (
				    j < len && (s[j] == '\n' || s[j] == '\r'))
					j++;
				*hdr_at = j;
				return i;
			}
		}
		i = next;
	}
	return len;
}

/* ---- candidate recipients ---- */

struct cand {
	char addr[DSN_ADDR_MAX];
	struct buf diag;
};

struct scan {
	struct dsn_report *r;
	char excl[16][DSN_ADDR_MAX];
	size_t nexcl;
	struct cand *c;
	size_t nc;
	size_t first_hit; /* offset of the first recipient line */
};

static void
add_excl_from(struct scan *sc, const char *v)
{
	size_t pos = 0, st, n;
	char a[DSN_ADDR_MAX];

	if (v == NULL)
		return;
	n = strlen(v);
	while (sc->nexcl < 16 && dsn_next_addr(v, n, &pos, &st, a))
		strlcpy_b(sc->excl[sc->nexcl++], a, DSN_ADDR_MAX);
}

static int
excluded(const struct scan *sc, const char *a)
{
	size_t i;

	if (strncmp(a, "mailer-daemon@", 14) == 0)
		return 1;
	for (i = 0; i < sc->nexcl; i++)
		if (strcmp(sc->excl[i], a) == 0)
			return 1;
	return 0;
}

/* Context before the address on its line says it is not a recipient. */
static int
bad_context(const char *line, size_t off)
{
	static const char *const bad[] = {"from:", "from <", "from:<", "sender",
	    "mail from", "envelope-from", "return-path", "message-id", "msgid",
	    "reply-to", "contact", "support", "assistance", "please write",
	    "webmaster", "id <", "id=", "endpoint=", NULL};
	size_t st = off > 40 ? off - 40 : 0;
	char *low = lower_dup(line + st, off - st);
	int r = has_any(low, bad);

	free(low);
	if (!r && off > 0 &&
	    (line[off - 1] == '=' || line[off - 1] == '/' ||
	        line[off - 1] == '?'))
		r = 1;
	return r;
}

/* The address heads the line: only punctuation (or a short lead-in ending
 * in ':') before it, and nothing but punctuation or a short tail after. */
static int
heads_line(const char *line, size_t ll, size_t ms, size_t me)
{
	size_t i;
	int words = 0;

	for (i = 0; i < ms; i++) {
		char c = line[i];

		if (c == ' ' || c == '\t' || c == '<' || c == '"' ||
		    c == '\'' || c == '(' || c == '*' || c == '[' || c == '-' ||
		    c == '>')
			continue;
		words = 1;
		break;
	}
	if (words) {
		/* "Could not be delivered to: <a>", "Recipient: a" */
		size_t k = ms;

		while (k > 0 &&
		    (line[k - 1] == ' ' || line[k - 1] == '<' ||
		        line[k - 1] == '"' || line[k - 1] == '\t'))
			k--;
		if (k == 0 || line[k - 1] != ':' || ms > 60)
			return 0;
		/* a quoted header ("To: a, b") names the original's
		 * recipients, not the failed ones */
		for (i = 0; i < k && (line[i] == ' ' || line[i] == '\t'); i++)
			;
		if ((k - i == 3 && ascii_ncasecmp(line + i, "to:", 3) == 0) ||
		    (k - i == 3 && ascii_ncasecmp(line + i, "cc:", 3) == 0) ||
		    (k - i == 4 && ascii_ncasecmp(line + i, "bcc:", 4) == 0))
			return 0;
	}
	i = me;
	while (i < ll &&
	    (line[i] == '>' || line[i] == '"' || line[i] == '\'' ||
	        line[i] == ')' || line[i] == ']' || line[i] == ' ' ||
	        line[i] == '\t' || line[i] == '\r'))
		i++;
	if (i >= ll || ll - i < 3)
		return 1;
	if (strchr(":;,.(<[", line[i]) != NULL)
		return 1;
	if (ll - i > 3 &&
	    (ascii_ncasecmp(line + i, "on ", 3) == 0 ||
	        ascii_ncasecmp(line + i, "for ", 4) == 0))
		return 1;
	return 0;
}

static struct cand *
cand_get(struct scan *sc, const char *a)
{
	size_t i;

	for (i = 0; i < sc->nc; i++)
		if (strcmp(sc->c[i].addr, a) == 0)
			return &sc->c[i];
	if (sc->nc >= MAX_CAND)
		return NULL;
	sc->c = xrealloc(sc->c, (sc->nc + 1) * sizeof(*sc->c));
	memset(&sc->c[sc->nc], 0, sizeof(sc->c[sc->nc]));
	strlcpy_b(sc->c[sc->nc].addr, a, DSN_ADDR_MAX);
	buf_init(&sc->c[sc->nc].diag, DSN_DIAG_CAP);
	return &sc->c[sc->nc++];
}

struct hit {
	size_t line_start, line_end; /* of the line holding the address */
	size_t c; /* index in scan.c (the array moves as it grows) */
};

/* Does the line mention a candidate other than c? */
static int
other_cand(const struct scan *sc, size_t c, const char *l, size_t ll)
{
	size_t pos = 0, ms, k;
	char a[DSN_ADDR_MAX];

	while (dsn_next_addr(l, ll, &pos, &ms, a))
		for (k = 0; k < sc->nc; k++)
			if (k != c && strcmp(sc->c[k].addr, a) == 0)
				return 1;
	return 0;
}

static int
line_has_addr(const char *l, size_t ll, const char *addr)
{
	size_t pos = 0, ms;
	char a[DSN_ADDR_MAX];

	while (dsn_next_addr(l, ll, &pos, &ms, a))
		if (strcmp(a, addr) == 0)
			return 1;
	return 0;
}

/* Appends the lines of s[st..en) to candidate c's diagnostic, leaving out
 * lines about other candidates; mentions: only lines that name c and hold
 * a failure code. */
static void
append_lines(struct scan *sc, size_t c, const char *s, size_t st, size_t en,
    int mentions)
{
	struct buf *d = &sc->c[c].diag;
	size_t i = st;

	while (i < en) {
		const char *l = s + i, *nl = memchr(l, '\n', en - i);
		size_t ll = nl ? (size_t)(nl - l) : en - i;

		if (mentions ? (line_has_addr(l, ll, sc->c[c].addr) &&
		                   has_code(l, ll))
		             : (i == st || !other_cand(sc, c, l, ll))) {
			if (d->len > 0)
				buf_append(d, "\n", 1);
			buf_append(d, l, ll);
		}
		i += ll + (nl ? 1 : 0);
	}
}

/* A recipient's block ends at the first blank line after a line that
 * holds a failure code: what follows is boilerplate. */
static size_t
block_end(const char *s, size_t st, size_t en)
{
	size_t i = st;
	int code = 0;

	while (i < en) {
		const char *nl = memchr(s + i, '\n', en - i);
		size_t ll = nl ? (size_t)(nl - (s + i)) : en - i;
		size_t k = 0;

		while (k < ll &&
		    (s[i + k] == ' ' || s[i + k] == '\t' || s[i + k] == '\r'))
			k++;
		if (k == ll && code && i > st)
			return i;
		if (!code) {
			char stt[16];
			int rc = dsn_find_reply(s + i, ll);

			code = rc >= 400 ||
			    (dsn_find_status(s + i, ll, stt) && stt[0] != '2');
		}
		i += ll + (nl ? 1 : 0);
	}
	return en;
}

/* Finds recipient lines in sec[0..len); heads_only: the address must head
 * its line.  Fills the diagnostics.  Returns the number of candidates. */
static size_t
scan_section(struct scan *sc, const char *sec, size_t len, int heads_only)
{
	struct hit hits[MAX_CAND];
	size_t nh = 0, i = 0, k, ci;

	while (i < len && nh < MAX_CAND) {
		const char *l = sec + i, *nl = memchr(l, '\n', len - i);
		size_t ll = nl ? (size_t)(nl - l) : len - i, pos = 0, ms;
		char a[DSN_ADDR_MAX];

		while (pos < ll && nh < MAX_CAND &&
		    dsn_next_addr(l, ll, &pos, &ms, a)) {
			struct cand *c;

			if (excluded(sc, a) || bad_context(l, ms))
				continue;
			if (heads_only && !heads_line(l, ll, ms, pos))
				continue;
			c = cand_get(sc, a);
			if (c == NULL)
				break;
			ci = (size_t)(c - sc->c);
			if (i < sc->first_hit)
				sc->first_hit = i;
			if (nh == 0 || hits[nh - 1].line_start != i ||
			    hits[nh - 1].c != ci) {
				hits[nh].line_start = i;
				hits[nh].line_end = i + ll;
				hits[nh].c = ci;
				nh++;
			}
			break; /* one recipient per line */
		}
		i += ll + (nl ? 1 : 0);
	}
	for (k = 0; k < nh; k++) {
		size_t st = hits[k].line_start;
		size_t en = k + 1 < nh ? hits[k + 1].line_start : len;
		struct buf *d = &sc->c[hits[k].c].diag;

		en = block_end(sec, st, en);
		if (en - st > BLOCK_CAP)
			en = st + BLOCK_CAP;
		if (d->len > 0)
			buf_append(d, " ", 1);
		append_lines(sc, hits[k].c, sec, st, en, 0);
		if (!has_code(d->data, d->len)) {
			/* "<a>" alone: the transcript lines naming it */
			append_lines(sc, hits[k].c, sec, en, len, 1);
		}
	}
	return sc->nc;
}

static const char *const bounce_subjects[] = {"undeliver",
    "delivery status notification", "delivery failure", "delivery fail",
    "returned mail", "failure notice", "mail delivery failed", "undelivered",
    "non-delivery", "nondeliver", "non delivery", "delivery problem",
    "could not be delivered", "mail system error", "returned to sender",
    "delivery notification", "not delivered", "delivery report", "mail failure",
    "mail error", "delivery failed", "failed delivery", "message not delivered",
    "unable to deliver", "unzustellbar", "nicht zustellbar", "non remis",
    "non distribuable", "no se puede entregar", "onbestelbaar",
    "non recapitabile", "olevererbart", "kan ikke leveres", "niedostarczalna",
    NULL};

/* Words that make a subject a bounce only with bounce prose in the body. */
static const char *const weak_subjects[] = {"error", "bounce", "rejected",
    "failed", "failure", "returned", "delivery", "notice", "undeliv", "status",
    NULL};

static const char *const bounce_body[] = {"could not be delivered",
    "couldn't be delivered", "was not delivered", "wasn't delivered",
    "delivery has failed", "delivery to the following recipient",
    "permanent error", "unable to deliver", "undeliverable",
    "qmail-send program", "mail delivery software", "delivery failed",
    "following address", "following recipient", "not be delivered",
    "could not deliver", "error delivering", "did not reach",
    "delivery problem", "rejected by", "does not exist", "user unknown",
    "mailbox is full", "temporary failure", "invalid user", "no such user",
    "unknown user", NULL};

static const char *const daemon_locals[] = {"mailer-daemon", "postmaster",
    "mail-daemon", "maildaemon", "mailerdaemon", "mail.daemon", "mdaemon",
    "post_master", NULL};

static int
from_daemon(const char *low_from)
{
	size_t i;

	for (i = 0; daemon_locals[i] != NULL; i++) {
		const char *p = strstr(low_from, daemon_locals[i]);

		if (p != NULL)
			return 1;
	}
	return strstr(low_from, "mail delivery") != NULL;
}

/* Subjects that mark an auto-reply on their own: they must start the
 * subject (after "Re:"/"AW:"), so "Vacation photos" from a person is not
 * taken for one. */
static const char *const auto_prefixes[] = {"out of office",
    "out of the office", "automatic reply", "auto reply", "autoreply",
    "auto-reply", "auto:", "auto response", "autoresponse", "abwesenheitsnotiz",
    "automatische antwort", "réponse automatique", "respuesta automática",
    "risposta automatica", "automatisch antwoord", "automatisk svar",
    "autosvar", "on vacation", "away from the office", NULL};

static int
auto_subject(const char *low_subj)
{
	const char *p = low_subj;
	size_t i;

	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (strncmp(p, "re:", 3) == 0 || strncmp(p, "aw:", 3) == 0 ||
		    strncmp(p, "fw:", 3) == 0)
			p += 3;
		else
			break;
	}
	for (i = 0; auto_prefixes[i] != NULL; i++)
		if (strncmp(p, auto_prefixes[i], strlen(auto_prefixes[i])) == 0)
			return 1;
	return 0;
}

/* The sender of an auto-reply or an unsubscribe request as the report's
 * recipient: the first address of FROM, or NULL when it has none. */
static struct record_rcpt *
add_sender(struct dsn_report *r, const char *from)
{
	char a[DSN_ADDR_MAX];
	struct record_rcpt *rc;

	if (from == NULL || !dsn_first_addr(from, strlen(from), a) ||
	    (rc = dsn_add_rcpt(r)) == NULL)
		return NULL;
	rc->final_recipient = dsn_keep(r, xstrdup(a));
	rc->recipient_source = "body_text";
	return rc;
}

static int
is_autoreply(const struct dsn_top *top, const char *low_subj)
{
	const char *v;

	v = top->v[DH_AUTO_SUBMITTED];
	if (v != NULL && ascii_ncasecmp(v, "auto-replied", 12) == 0)
		return 1;
	if (top->v[DH_X_AUTOREPLY] != NULL ||
	    top->v[DH_X_AUTORESPOND] != NULL ||
	    top->v[DH_X_AUTORESPONDER] != NULL)
		return 1;
	v = top->v[DH_PRECEDENCE];
	if (v != NULL && ascii_casestr(v, "auto_reply") != NULL)
		return 1;
	return auto_subject(low_subj);
}

static int
is_temporary(const char *low_subj, const char *low_text)
{
	return strstr(low_subj, "delay") != NULL ||
	    strstr(low_subj, "warning") != NULL ||
	    strstr(low_text, "will retry") != NULL ||
	    strstr(low_text, "will keep trying") != NULL ||
	    strstr(low_text, "still trying") != NULL;
}

static void
add_recipient(struct dsn_report *r, const char *a, const char *diag,
    size_t dlen, const char *action)
{
	struct record_rcpt *rc;
	size_t i;

	for (i = 0; i < r->rec.nrcpts; i++)
		if (r->rec.rcpts[i].final_recipient != NULL &&
		    strcmp(r->rec.rcpts[i].final_recipient, a) == 0)
			return;
	rc = dsn_add_rcpt(r);
	if (rc == NULL)
		return;
	rc->final_recipient = dsn_keep(r, xstrdup(a));
	rc->recipient_source = "body_text";
	rc->action = action;
	if (diag != NULL && dlen > 0)
		rc->diagnostic = dsn_keep_clean(r, diag,
		    dlen > DSN_DIAG_CAP ? DSN_DIAG_CAP : dlen);
}

/* A failure status or reply code somewhere in s[0..n). */
static int
has_code(const char *s, size_t n)
{
	char st[16];
	int rc = dsn_find_reply(s, n);

	if (rc >= 400)
		return 1;
	return dsn_find_status(s, n, st) && st[0] != '2';
}

/* Letters in a diagnostic other than its address. */
static size_t
diag_letters(const char *d, size_t n, const char *addr)
{
	size_t i, letters = 0, al = strlen(addr);

	for (i = 0; d != NULL && i < n; i++) {
		if (n - i >= al && ascii_ncasecmp(d + i, addr, al) == 0) {
			i += al - 1;
			continue;
		}
		if (g_ascii_isalpha(d[i]) || (unsigned char)d[i] >= 0x80)
			letters++;
	}
	return letters;
}

/* Addresses listed one under the other share the reason that follows
 * the list: for candidate i with nothing but its address, the first later
 * one, past only such bare ones, whose text holds a failure code; sc->nc
 * when there is none. */
static size_t
list_reason(const struct scan *sc, size_t i)
{
	size_t k;

	if (diag_letters(sc->c[i].diag.data, sc->c[i].diag.len,
	        sc->c[i].addr) != 0)
		return sc->nc;
	for (k = i + 1; k < sc->nc; k++) {
		const struct cand *c = &sc->c[k];

		if (has_code(c->diag.data, c->diag.len))
			return k;
		if (diag_letters(c->diag.data, c->diag.len, c->addr) != 0)
			break;
	}
	return sc->nc;
}

/* Is a diagnostic informative beyond its address? */
static int
weak_diag(const char *d, size_t n, const char *addr)
{
	return diag_letters(d, n, addr) < 12;
}

/* Exim names the failed addresses in X-Failed-Recipients (v): each with
 * its block of the text, else the whole error section. */
static void
xfailed_rcpts(struct scan *sc, const char *v, const char *text, size_t sec_len,
    const char *action)
{
	size_t pos = 0, st, vl = strlen(v);
	char a[DSN_ADDR_MAX];

	scan_section(sc, text, sec_len, 1);
	if (sc->nc == 0)
		scan_section(sc, text, sec_len, 0);
	while (dsn_next_addr(v, vl, &pos, &st, a)) {
		struct cand *c = NULL;
		size_t k;

		for (k = 0; k < sc->nc; k++)
			if (strcmp(sc->c[k].addr, a) == 0)
				c = &sc->c[k];
		add_recipient(sc->r, a, c ? c->diag.data : text,
		    c ? c->diag.len : sec_len, action);
	}
}

/* The addresses heading lines of the error section, each with its
 * diagnostic (a shared reason below a list, or the lead-in text when its
 * own block says too little). */
static void
prose_rcpts(struct scan *sc, const char *text, size_t sec_len,
    const char *action)
{
	struct dsn_report *r = sc->r;
	size_t i, k;

	scan_section(sc, text, sec_len, 1);
	if (sc->nc == 0)
		scan_section(sc, text, sec_len, 0);
	for (i = 0; i < sc->nc; i++) {
		struct cand *c = &sc->c[i];

		if ((k = list_reason(sc, i)) < sc->nc) {
			add_recipient(r, c->addr, sc->c[k].diag.data,
			    sc->c[k].diag.len, action);
			continue;
		}
		if (c->diag.len == 0 ||
		    weak_diag(c->diag.data, c->diag.len, c->addr) ||
		    !has_code(c->diag.data, c->diag.len)) {
			/* the reason may be in the lead-in text before the
			 * first recipient */
			struct buf b;
			size_t lead =
			    sc->first_hit < sec_len ? sc->first_hit : sec_len;
			size_t from = lead > BLOCK_CAP ? lead - BLOCK_CAP : 0;

			buf_init(&b, DSN_DIAG_CAP);
			buf_append(&b, text + from, lead - from);
			if (b.len > 0)
				buf_append(&b, "\n", 1);
			buf_append(&b, c->diag.data ? c->diag.data : "",
			    c->diag.len);
			add_recipient(r, c->addr, b.data, b.len, action);
			buf_free(&b);
		} else
			add_recipient(r, c->addr, c->diag.data, c->diag.len,
			    action);
	}
}

/* Nothing in the prose: the returned message's recipients (To, then Cc),
 * said so in recipient_source. */
static void
returned_rcpts(struct scan *sc, const char *text, size_t sec_len,
    const char *action)
{
	static const char *const fields[] = {"To", "Cc"};
	struct dsn_report *r = sc->r;
	size_t f;

	for (f = 0; f < 2; f++) {
		const char *to = record_orig_header(&r->rec, fields[f]);
		size_t pos = 0, st, n0 = r->rec.nrcpts;
		char a[DSN_ADDR_MAX];

		while (to != NULL && r->rec.nrcpts < 16 &&
		    dsn_next_addr(to, strlen(to), &pos, &st, a))
			if (!excluded(sc, a) &&
			    strncmp(a, "postmaster@", 11) != 0)
				add_recipient(r, a, text, sec_len, action);
		for (; n0 < r->rec.nrcpts; n0++)
			r->rec.rcpts[n0].recipient_source = "returned_headers";
	}
}

/* The recipients of a bounce told in prose (scan_len bytes of text, the
 * daemon and xfailed findings of the caller): the returned headers, a
 * pasted delivery-status block, X-Failed-Recipients, the error section,
 * the returned To/Cc, a VERP bounce address.  1 when the report is
 * decided, 0 when nothing named a recipient. */
static int
bounce_rcpts(struct scan *sc, const struct dsn_options *opt,
    const struct dsn_top *top, const char *text, size_t scan_len, int has_orig,
    int daemon, const char *action)
{
	struct dsn_report *r = sc->r;
	size_t hdr_at, i, sec_len = returned_start(text, scan_len, &hdr_at);
	int xfailed = top->v[DH_X_FAILED_RECIPIENTS] != NULL;

	if (!has_orig && hdr_at < scan_len)
		dsn_orig_from_text(r, opt, text + hdr_at, scan_len - hdr_at);
	/* a delivery-status block pasted into the text */
	if (dsn_parse_ds(r, text, sec_len) > 0) {
		for (i = 0; i < r->rec.nrcpts; i++)
			if (r->rec.rcpts[i].diagnostic == NULL)
				r->rec.rcpts[i].diagnostic = dsn_keep_clean(r,
				    text, sec_len > 512 ? 512 : sec_len);
		r->rec.kind = RECORD_KIND_BOUNCE;
		return 1;
	}
	add_excl_from(sc, top->v[DH_FROM]);
	add_excl_from(sc, top->v[DH_TO]);
	add_excl_from(sc, top->v[DH_CC]);
	add_excl_from(sc, top->v[DH_REPLY_TO]);
	add_excl_from(sc, top->v[DH_RETURN_PATH]);
	add_excl_from(sc, top->v[DH_SENDER]);
	add_excl_from(sc, record_orig_header(&r->rec, "From"));
	if (xfailed)
		xfailed_rcpts(sc, top->v[DH_X_FAILED_RECIPIENTS], text, sec_len,
		    action);
	if (r->rec.nrcpts == 0)
		prose_rcpts(sc, text, sec_len, action);
	if (r->rec.nrcpts == 0 &&
	    (daemon || xfailed || record_orig_header(&r->rec, "To") != NULL))
		returned_rcpts(sc, text, sec_len, action);
	if (r->rec.nrcpts == 0 && r->verp_guess != NULL) {
		/* nothing names the recipient but the bounce address itself,
		 * in the common VERP form (prefix+local=domain@host) */
		add_recipient(r, r->verp_guess, text, sec_len, action);
		r->rec.verp_recipient = r->verp_guess;
	}
	if (r->rec.nrcpts == 0)
		return 0;
	r->rec.kind = strcmp(action, "delayed") == 0 ? RECORD_KIND_DELAYED
	                                             : RECORD_KIND_BOUNCE;
	return 1;
}

/* Not a bounce: Apple Mail's one-click unsubscribe (a message from the
 * subscriber asking to be removed, an opt-out complaint, not an
 * auto-reply although it is marked auto-replied), or an RFC 3834
 * auto-reply; the sender is the recipient. */
static void
not_a_bounce(struct dsn_report *r, const struct dsn_top *top, int daemon,
    const char *low_subj)
{
	const char *from = top->v[DH_FROM];
	struct record_rcpt *rc;

	if (daemon)
		return;
	if (top->v[DH_X_APPLE_UNSUBSCRIBE] != NULL &&
	    ascii_ncasecmp(top->v[DH_X_APPLE_UNSUBSCRIBE], "true", 4) == 0) {
		if ((rc = add_sender(r, from)) != NULL) {
			rc->feedback_type = "opt-out";
			r->rec.kind = RECORD_KIND_COMPLAINT;
			r->rec.mta = "apple-unsubscribe";
		}
		return;
	}
	if (is_autoreply(top, low_subj) && (rc = add_sender(r, from)) != NULL) {
		/* the Subject, decoded and owned by the report */
		rc->diagnostic = r->rec.subject;
		r->rec.kind = RECORD_KIND_AUTOREPLY;
		r->rec.mta = "rfc3834";
	}
}

void
dsn_text_scan(struct dsn_report *r, const struct dsn_options *opt,
    const struct dsn_top *top, const char *text, size_t len, int has_orig)
{
	struct scan sc;
	const char *from = top->v[DH_FROM], *rp = top->v[DH_RETURN_PATH];
	const char *dsubj = r->rec.subject; /* decoded by dsn_parse */
	char *low_from = lower_dup(from ? from : "", from ? strlen(from) : 0);
	char *low_subj, *low_text;
	size_t scan_len = len > SCAN_CAP ? SCAN_CAP : len, i;
	int bounce, daemon, xfailed, body;
	const char *action = "failed";

	memset(&sc, 0, sizeof(sc));
	sc.r = r;
	sc.first_hit = (size_t)-1;
	if (text == NULL) {
		text = "";
		scan_len = 0;
	}
	low_subj = lower_dup(dsubj ? dsubj : "", dsubj ? strlen(dsubj) : 0);
	/* the markers of bounce prose sit near the top of the text */
	low_text = lower_dup(text, scan_len > HEAD_CAP ? HEAD_CAP : scan_len);
	detect_mta(r, low_from, low_text);

	/* Amazon SES / SNS notification */
	if (scan_len > 0 &&
	    memmem(text, scan_len, "\"notificationType\"", 18) != NULL &&
	    dsn_ses_json(r, text, scan_len))
		goto out;

	daemon = from_daemon(low_from);
	xfailed = top->v[DH_X_FAILED_RECIPIENTS] != NULL;
	body = has_any(low_text, bounce_body);
	bounce = daemon || xfailed || has_any(low_subj, bounce_subjects) ||
	    (body &&
	        ((rp != NULL && strstr(rp, "<>") != NULL) || has_orig ||
	            has_any(low_subj, weak_subjects)));
	/* a report that returns the original under a bounce subject is a
	 * bounce, even when marked auto-replied */
	if (bounce &&
	    !(!daemon && !xfailed && is_autoreply(top, low_subj) && !body &&
	        !(has_orig && has_any(low_subj, bounce_subjects)))) {
		if (is_temporary(low_subj, low_text))
			action = "delayed";
		if (bounce_rcpts(&sc, opt, top, text, scan_len, has_orig,
		        daemon, action))
			goto out;
	}
	not_a_bounce(r, top, daemon, low_subj);
out:
	for (i = 0; i < sc.nc; i++)
		buf_free(&sc.c[i].diag);
	free(sc.c);
	free(low_from);
	free(low_subj);
	free(low_text);
}

/* The start of the lines that lead up to the line at st in its paragraph
 * (a transcript's "mail.local: unknown user: x" above the reply naming
 * the address): at most 3 lines, none naming an address, so that one
 * recipient's block never takes another's text. */
static size_t
lines_before(const char *text, size_t st)
{
	size_t k, ls, best = st;
	int n;

	for (n = 0; n < 3 && best > 1 && text[best - 1] == '\n'; n++) {
		k = best - 1; /* the '\n' ending the previous line */
		if (k > 0 && text[k - 1] == '\r')
			k--;
		ls = k;
		while (ls > 0 && text[ls - 1] != '\n')
			ls--;
		if (ls == k || memchr(text + ls, '@', k - ls) != NULL ||
		    (k - ls == 1 && text[ls] == '\r'))
			break; /* a blank line or another address */
		best = ls;
	}
	return best;
}

void
dsn_text_enrich(struct dsn_report *r, const struct dsn_top *top,
    const char *text, size_t len)
{
	const char *from = top->v[DH_FROM];
	char *low_from = lower_dup(from ? from : "", from ? strlen(from) : 0);
	size_t scan_len = len > SCAN_CAP ? SCAN_CAP : len;
	char *low_text = lower_dup(text ? text : "", text ? scan_len : 0);
	char saved;
	size_t i, par_s = (size_t)-1, par_e = 0;
	const char *par_cmd = NULL;

	/* the family markers sit near the top of the text */
	saved = low_text[scan_len > HEAD_CAP ? HEAD_CAP : scan_len];
	low_text[scan_len > HEAD_CAP ? HEAD_CAP : scan_len] = '\0';
	detect_mta(r, low_from, low_text);
	low_text[scan_len > HEAD_CAP ? HEAD_CAP : scan_len] = saved;
	/* a recipient without Diagnostic-Code: the text around its address */
	for (i = 0; text != NULL && i < r->rec.nrcpts; i++) {
		struct record_rcpt *rc = &r->rec.rcpts[i];
		const char *a = rc->final_recipient ? rc->final_recipient
		                                    : rc->original_recipient;
		const char *p;
		size_t st, en;

		if (a == NULL)
			continue;
		if (rc->smtp_command == NULL)
			rc->smtp_command = dsn_find_command(rc->diagnostic,
			    rc->diagnostic ? strlen(rc->diagnostic) : 0);
		p = strstr(low_text, a);
		if (rc->smtp_command == NULL && p != NULL) {
			/* the paragraph of the text that names it */
			size_t ps = (size_t)(p - low_text), pe = ps;

			while (ps > 0 &&
			    !(low_text[ps - 1] == '\n' && ps > 1 &&
			        low_text[ps - 2] == '\n'))
				ps--;
			while (pe < scan_len &&
			    !(low_text[pe] == '\n' && pe + 1 < scan_len &&
			        low_text[pe + 1] == '\n'))
				pe++;
			/* recipients named in one paragraph share its
			 * command: read it once */
			if (ps != par_s || pe != par_e) {
				par_s = ps;
				par_e = pe;
				par_cmd = dsn_find_command(text + ps, pe - ps);
			}
			rc->smtp_command = par_cmd;
		}
		/* the head of the text, unless it lies within the paragraph
		 * just read without a command (a marker found in the head
		 * would have been found there) */
		if (rc->smtp_command == NULL && r->rec.nrcpts == 1 &&
		    !(par_s == 0 &&
		        par_e >= (scan_len > HEAD_CAP ? HEAD_CAP : scan_len)))
			rc->smtp_command = dsn_find_command(text,
			    scan_len > HEAD_CAP ? HEAD_CAP : scan_len);
		if (rc->diagnostic != NULL)
			continue;
		if (p == NULL) {
			rc->diagnostic = dsn_keep_clean(r, text,
			    scan_len > 512 ? 512 : scan_len);
			continue;
		}
		/* every paragraph of the text that names the address */
		{
			struct buf d;
			size_t last_end = 0, hits = 0;

			buf_init(&d, DSN_DIAG_CAP);
			while (p != NULL && hits++ < 8 && !d.truncated) {
				st = (size_t)(p - low_text);
				while (st > 0 && text[st - 1] != '\n')
					st--;
				st = lines_before(text, st);
				en = st;
				while (en < scan_len && en - st < 512) {
					if (text[en] == '\n' &&
					    en + 1 < scan_len &&
					    (text[en + 1] == '\n' ||
					        (text[en + 1] == '\r' &&
					            en + 2 < scan_len &&
					            text[en + 2] == '\n')))
						break;
					en++;
				}
				if (st >= last_end) {
					if (d.len > 0)
						buf_append(&d, "\n", 1);
					buf_append(&d, text + st, en - st);
					last_end = en;
				}
				p = strstr(low_text + (en > st ? en : st + 1),
				    a);
			}
			rc->diagnostic =
			    dsn_keep_clean(r, d.data ? d.data : "", d.len);
			buf_free(&d);
		}
	}
	free(low_from);
	free(low_text);
}
