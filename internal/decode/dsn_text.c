/*
 * dsn_text.c - bounces without a delivery-status part: the prose of Exim,
 * qmail, Postfix, Sendmail, Courier, Exchange/Office 365, Gmail, Yahoo,
 * Domino/Notes, GMX, mail.ru and others; Amazon SES JSON notifications;
 * RFC 3834 auto-replies.  Recipients are the addresses that head a line of
 * the error section (before the returned message); the text up to the next
 * recipient is the diagnostic.  Every scan is linear and capped.
 */
#include "decode/dsn_int.h"

#include <pthread.h>
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

	if (r->mta != NULL)
		return;
	/* Outlook.com (Hotmail) writes its own DSN wording */
	if (strstr(low_from, "@hotmail.") != NULL) {
		r->mta = "outlook";
		return;
	}
	for (i = 0; mta_markers[i].needle != NULL; i++)
		if (strstr(low_text, mta_markers[i].needle) != NULL) {
			r->mta = mta_markers[i].mta;
			return;
		}
	if (strstr(low_from, "googlemail.com") ||
	    strstr(low_from, "google.com"))
		r->mta = "gmail";
	else if (strstr(low_from, "yahoo"))
		r->mta = "yahoo";
	else if (strstr(low_from, "outlook.com") ||
	    strstr(low_from, "microsoft.com"))
		r->mta = "office365";
}

/* ---- Amazon SES notifications (JSON) ---- */

/* Reads the JSON string value of "key" inside s[0..n); 1 on success. */
static int
json_str(const char *s, size_t n, const char *key, char *out, size_t outsz)
{
	size_t kl = strlen(key), i, o;

	for (i = 0; i + kl + 2 < n; i++) {
		size_t j;

		if (s[i] != '"' || memcmp(s + i + 1, key, kl) != 0 ||
		    s[i + 1 + kl] != '"')
			continue;
		j = i + kl + 2;
		while (j < n && (s[j] == ' ' || s[j] == '\n' || s[j] == '\r'))
			j++;
		if (j >= n || s[j] != ':')
			continue;
		j++;
		while (j < n && (s[j] == ' ' || s[j] == '\n' || s[j] == '\r'))
			j++;
		if (j >= n || s[j] != '"')
			continue;
		j++;
		for (o = 0; j < n && s[j] != '"' && o + 1 < outsz; j++) {
			if (s[j] == '\\' && j + 1 < n) {
				j++;
				if (s[j] == 'n' || s[j] == 't' || s[j] == 'r')
					out[o++] = ' ';
				else if (s[j] == 'u') {
					out[o++] = '?';
					j += (j + 4 < n) ? 4 : 0;
				} else
					out[o++] = s[j];
				continue;
			}
			if (s[j] == '\n' || s[j] == '\r')
				continue;
			out[o++] = s[j];
		}
		out[o] = '\0';
		return 1;
	}
	return 0;
}

/* End of the JSON value (array/object) that opens at s[i]. */
static size_t
json_end(const char *s, size_t n, size_t i)
{
	int depth = 0, instr = 0;

	for (; i < n; i++) {
		char c = s[i];

		if (instr) {
			if (c == '\\')
				i++;
			else if (c == '"')
				instr = 0;
			continue;
		}
		if (c == '"')
			instr = 1;
		else if (c == '[' || c == '{')
			depth++;
		else if (c == ']' || c == '}') {
			if (--depth == 0)
				return i + 1;
		}
	}
	return n;
}

static const char *
memfind(const char *s, size_t n, const char *needle)
{
	size_t nl = strlen(needle), i;

	if (nl == 0 || n < nl)
		return NULL;
	for (i = 0; i + nl <= n; i++)
		if (s[i] == needle[0] && memcmp(s + i, needle, nl) == 0)
			return s + i;
	return NULL;
}

/* With no diagnosticCode, SES's own classification is the diagnostic:
 * "bounceType/bounceSubType" (or the delayType), as its notifications
 * write them ("Permanent/OnAccountSuppressionList"). */
static void
ses_type(struct dsn_report *r, struct record_rcpt *rc, const char *s, size_t n)
{
	char t[64], st[64];

	if (json_str(s, n, "bounceType", t, sizeof(t))) {
		if (!json_str(s, n, "bounceSubType", st, sizeof(st)))
			st[0] = '\0';
		rc->diagnostic = dsn_keep(r,
		    xasprintf("%s%s%s", t, st[0] != '\0' ? "/" : "", st));
	} else if (json_str(s, n, "delayType", t, sizeof(t)))
		rc->diagnostic = dsn_keep(r, xasprintf("%s", t));
}

static int
ses_json(struct dsn_report *r, const char *s, size_t n)
{
	char type[32], v[DSN_DIAG_CAP];
	const char *arr, *key;
	size_t i, end;

	if (!json_str(s, n, "notificationType", type, sizeof(type)) &&
	    !json_str(s, n, "eventType", type, sizeof(type)))
		return 0;
	r->mta = "amazonses";
	if (strcmp(type, "Bounce") == 0) {
		key = "\"bouncedRecipients\"";
		r->kind = RECORD_KIND_BOUNCE;
	} else if (strcmp(type, "Complaint") == 0) {
		key = "\"complainedRecipients\"";
		r->kind = RECORD_KIND_COMPLAINT;
	} else if (strcmp(type, "Delivery") == 0) {
		key = "\"recipients\"";
		r->kind = RECORD_KIND_DELIVERED;
	} else
		return 0;
	arr = memfind(s, n, key);
	if (arr == NULL)
		return 0;
	i = (size_t)(arr - s) + strlen(key);
	while (i < n && s[i] != '[')
		i++;
	if (i >= n)
		return 0;
	end = json_end(s, n, i);
	i++;
	while (i < end) {
		struct record_rcpt *rc;
		char a[DSN_ADDR_MAX];
		size_t oend;

		while (i < end && s[i] != '{' && s[i] != '"')
			i++;
		if (i >= end)
			break;
		if (s[i] == '"') {
			/* "recipients":["a@b", ...] */
			size_t j = i + 1;

			while (j < end && s[j] != '"')
				j++;
			if (dsn_first_addr(s + i + 1, j - i - 1, a) &&
			    (rc = dsn_add_rcpt(r)) != NULL) {
				rc->final_recipient = dsn_keep(r, xstrdup(a));
				rc->action = "delivered";
				if (json_str(s, n, "smtpResponse", v,
				        sizeof(v)))
					rc->diagnostic =
					    dsn_keep_clean(r, v, strlen(v));
				if (json_str(s, n, "remoteMtaIp", v, sizeof(v)))
					rc->remote_mta =
					    dsn_keep_clean(r, v, strlen(v));
			}
			i = j + 1;
			continue;
		}
		oend = json_end(s, end, i);
		if (json_str(s + i, oend - i, "emailAddress", v, sizeof(v)) &&
		    dsn_first_addr(v, strlen(v), a) &&
		    (rc = dsn_add_rcpt(r)) != NULL) {
			rc->final_recipient = dsn_keep(r, xstrdup(a));
			if (r->kind == RECORD_KIND_COMPLAINT) {
				if (json_str(s, n, "complaintFeedbackType", v,
				        sizeof(v)))
					rc->feedback_type =
					    dsn_keep_clean(r, v, strlen(v));
				else
					rc->feedback_type = "abuse";
			} else {
				char st[16];

				if (json_str(s + i, oend - i, "action", v,
				        sizeof(v)))
					rc->action =
					    dsn_keep_clean(r, v, strlen(v));
				if (json_str(s + i, oend - i, "status", v,
				        sizeof(v)) &&
				    dsn_find_status(v, strlen(v), st))
					rc->status = dsn_keep(r, xstrdup(st));
				if (json_str(s + i, oend - i, "diagnosticCode",
				        v, sizeof(v)))
					rc->diagnostic =
					    dsn_keep_clean(r, v, strlen(v));
				else
					ses_type(r, rc, s, n);
				if (rc->action == NULL)
					rc->action = "failed";
			}
		}
		i = oend;
	}
	if (json_str(s, n, "reportingMTA", v, sizeof(v)) &&
	    r->reporting_mta == NULL) {
		const char *semi = strchr(v, ';');

		r->reporting_mta = dsn_keep_clean(r, semi ? semi + 1 : v,
		    strlen(semi ? semi + 1 : v));
	}
	if (json_str(s, n, "timestamp", v, sizeof(v))) {
		GDateTime *dt = g_date_time_new_from_iso8601(v, NULL);

		if (dt != NULL) {
			size_t k;

			for (k = 0; k < r->nrcpt; k++)
				r->rcpts[k].date = g_date_time_to_unix(dt);
			g_date_time_unref(dt);
		}
	}
	return r->nrcpt > 0;
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

	for (i = 0; i < r->nrcpt; i++)
		if (r->rcpts[i].final_recipient != NULL &&
		    strcmp(r->rcpts[i].final_recipient, a) == 0)
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

void
dsn_text_scan(struct dsn_report *r, const struct dsn_options *opt,
    const struct dsn_top *top, const char *text, size_t len, int has_orig)
{
	struct scan sc;
	const char *from = top->v[DH_FROM], *subj = top->v[DH_SUBJECT];
	char *low_from = lower_dup(from ? from : "", from ? strlen(from) : 0);
	char *low_subj = NULL, *low_text = NULL;
	const char *dsubj = NULL;
	size_t scan_len = len > SCAN_CAP ? SCAN_CAP : len, sec_len, hdr_at, i;
	int bounce, daemon, xfailed;
	const char *action = "failed";

	memset(&sc, 0, sizeof(sc));
	sc.r = r;
	sc.first_hit = (size_t)-1;
	if (text == NULL) {
		text = "";
		len = scan_len = 0;
	}
	(void)subj;
	dsubj = r->subject; /* decoded by dsn_parse */
	low_subj = lower_dup(dsubj ? dsubj : "", dsubj ? strlen(dsubj) : 0);
	/* the markers of bounce prose sit near the top of the text */
	low_text = lower_dup(text, scan_len > HEAD_CAP ? HEAD_CAP : scan_len);
	detect_mta(r, low_from, low_text);

	/* Amazon SES / SNS notification */
	if (scan_len > 0 && memfind(text, scan_len, "\"notificationType\"") &&
	    ses_json(r, text, scan_len))
		goto out;

	daemon = from_daemon(low_from);
	xfailed = top->v[DH_X_FAILED_RECIPIENTS] != NULL;
	{
		const char *rp = top->v[DH_RETURN_PATH];
		int null_rp = rp != NULL && strstr(rp, "<>") != NULL;
		int body = has_any(low_text, bounce_body);

		bounce = daemon || xfailed ||
		    has_any(low_subj, bounce_subjects) ||
		    (body &&
		        (null_rp || has_orig ||
		            has_any(low_subj, weak_subjects)));
	}
	/* a report that returns the original under a bounce subject is a
	 * bounce, even when marked auto-replied */
	if (!bounce ||
	    (!daemon && !xfailed && is_autoreply(top, low_subj) &&
	        !has_any(low_text, bounce_body) &&
	        !(has_orig && has_any(low_subj, bounce_subjects))))
		goto autoreply;
	if (is_temporary(low_subj, low_text))
		action = "delayed";

	sec_len = returned_start(text, scan_len, &hdr_at);
	if (!has_orig && hdr_at < scan_len)
		dsn_orig_from_text(r, opt, text + hdr_at, scan_len - hdr_at);

	/* a delivery-status block pasted into the text */
	if (dsn_parse_ds(r, text, sec_len) > 0) {
		for (i = 0; i < r->nrcpt; i++)
			if (r->rcpts[i].diagnostic == NULL)
				r->rcpts[i].diagnostic = dsn_keep_clean(r, text,
				    sec_len > 512 ? 512 : sec_len);
		r->kind = RECORD_KIND_BOUNCE;
		goto out;
	}

	add_excl_from(&sc, from);
	add_excl_from(&sc, top->v[DH_TO]);
	add_excl_from(&sc, top->v[DH_CC]);
	add_excl_from(&sc, top->v[DH_REPLY_TO]);
	add_excl_from(&sc, top->v[DH_RETURN_PATH]);
	add_excl_from(&sc, top->v[DH_SENDER]);
	add_excl_from(&sc, dsn_orig_header(r, "From"));

	if (xfailed) {
		/* Exim names the failed addresses in a header */
		const char *v = top->v[DH_X_FAILED_RECIPIENTS];
		size_t pos = 0, st, vl = strlen(v);
		char a[DSN_ADDR_MAX];

		scan_section(&sc, text, sec_len, 1);
		if (sc.nc == 0)
			scan_section(&sc, text, sec_len, 0);
		while (dsn_next_addr(v, vl, &pos, &st, a)) {
			struct cand *c = NULL;
			size_t k;

			for (k = 0; k < sc.nc; k++)
				if (strcmp(sc.c[k].addr, a) == 0)
					c = &sc.c[k];
			add_recipient(r, a, c ? c->diag.data : text,
			    c ? c->diag.len : sec_len, action);
		}
	}
	if (r->nrcpt == 0) {
		scan_section(&sc, text, sec_len, 1);
		if (sc.nc == 0)
			scan_section(&sc, text, sec_len, 0);
		for (i = 0; i < sc.nc; i++) {
			struct cand *c = &sc.c[i];
			size_t k;

			if ((k = list_reason(&sc, i)) < sc.nc) {
				add_recipient(r, c->addr, sc.c[k].diag.data,
				    sc.c[k].diag.len, action);
				continue;
			}
			if (c->diag.len == 0 ||
			    weak_diag(c->diag.data, c->diag.len, c->addr) ||
			    !has_code(c->diag.data, c->diag.len)) {
				/* the reason may be in the lead-in text
				 * before the first recipient */
				struct buf b;
				size_t lead = sc.first_hit < sec_len
				    ? sc.first_hit
				    : sec_len;
				size_t from =
				    lead > BLOCK_CAP ? lead - BLOCK_CAP : 0;

				buf_init(&b, DSN_DIAG_CAP);
				buf_append(&b, text + from, lead - from);
				if (b.len > 0)
					buf_append(&b, "\n", 1);
				buf_append(&b, c->diag.data ? c->diag.data : "",
				    c->diag.len);
				add_recipient(r, c->addr, b.data, b.len,
				    action);
				buf_free(&b);
			} else
				add_recipient(r, c->addr, c->diag.data,
				    c->diag.len, action);
		}
	}
	if (r->nrcpt == 0 &&
	    (daemon || xfailed || dsn_orig_header(r, "To") != NULL)) {
		/* nothing in the prose: the returned message's recipients
		 * (To, then Cc), said so in recipient_source */
		static const char *const fields[] = {"To", "Cc"};
		size_t f;

		for (f = 0; f < 2; f++) {
			const char *to = dsn_orig_header(r, fields[f]);
			size_t pos = 0, st, n0 = r->nrcpt;
			char a[DSN_ADDR_MAX];

			while (to != NULL && r->nrcpt < 16 &&
			    dsn_next_addr(to, strlen(to), &pos, &st, a))
				if (!excluded(&sc, a) &&
				    strncmp(a, "postmaster@", 11) != 0)
					add_recipient(r, a, text, sec_len,
					    action);
			for (; n0 < r->nrcpt; n0++)
				r->rcpts[n0].recipient_source =
				    "returned_headers";
		}
	}
	if (r->nrcpt == 0 && r->verp_guess != NULL) {
		/* nothing names the recipient but the bounce address itself,
		 * in the common VERP form (prefix+local=domain@host) */
		add_recipient(r, r->verp_guess, text, sec_len, action);
		r->verp = r->verp_guess;
	}
	if (r->nrcpt > 0) {
		r->kind = strcmp(action, "delayed") == 0 ? RECORD_KIND_DELAYED
		                                         : RECORD_KIND_BOUNCE;
		goto out;
	}
autoreply:
	/* Apple Mail's one-click unsubscribe: a message from the subscriber
	 * asking to be removed, an opt-out complaint (not an auto-reply,
	 * although it is marked auto-replied) */
	if (!daemon && top->v[DH_X_APPLE_UNSUBSCRIBE] != NULL &&
	    ascii_ncasecmp(top->v[DH_X_APPLE_UNSUBSCRIBE], "true", 4) == 0) {
		struct record_rcpt *rc = add_sender(r, from);

		if (rc != NULL) {
			rc->feedback_type = "opt-out";
			r->kind = RECORD_KIND_COMPLAINT;
			r->mta = "apple-unsubscribe";
		}
		goto out;
	}
	if (!daemon && is_autoreply(top, low_subj)) {
		struct record_rcpt *rc = add_sender(r, from);

		if (rc != NULL) {
			rc->diagnostic = dsubj; /* owned by the report */
			r->kind = RECORD_KIND_AUTOREPLY;
			r->mta = "rfc3834";
		}
	}
out:
	for (i = 0; i < sc.nc; i++)
		buf_free(&sc.c[i].diag);
	free(sc.c);
	free(low_from);
	free(low_subj);
	free(low_text);
}

/* ---- the SMTP command a failure answered ---- */

#define CMD(n, c) \
	{ \
		n, c \
	}
static const struct cmd_marker {
	const char *needle; /* lower-case; a space matches any white space */
	const char *cmd;
} cmd_markers[] = {
    /* Postfix */
    CMD("in reply to rcpt to", "RCPT"),
    CMD("in reply to end of data", "DATA"),
    CMD("in reply to data", "DATA"),
    CMD("in reply to mail from", "MAIL"),
    CMD("in reply to helo", "HELO"),
    CMD("in reply to ehlo", "HELO"),
    CMD("refused to talk to me", "CONN"),
    /* Sendmail, Courier, Lotus Domino, ... transcripts */
    CMD(">>> data", "DATA"),
    CMD(">>> rcpt to", "RCPT"),
    CMD(">>> mail from", "MAIL"),
    CMD(">>> ehlo", "HELO"),
    CMD(">>> helo", "HELO"),
    /* Exim, Courier, Yahoo, ... */
    CMD("after rcpt to", "RCPT"),
    CMD("after rcpt command", "RCPT"),
    CMD("after end of data", "DATA"),
    CMD("after pipelined data", "DATA"),
    CMD("after data", "DATA"),
    CMD("after mail from", "MAIL"),
    CMD("after initial connection", "CONN"),
    CMD("after helo", "HELO"),
    CMD("after ehlo", "HELO"),
    /* DragonFly, OpenSMTPD */
    CMD("did not like our rcpt to", "RCPT"),
    CMD("did not like our final data", "DATA"),
    CMD("did not like our data", "DATA"),
    CMD("did not like our mail from", "MAIL"),
    /* qmail and its offspring */
    CMD("does not like recipient", "RCPT"),
    CMD("sender was rejected", "MAIL"),
    CMD("my name was rejected", "HELO"),
    CMD("greeting failed", "CONN"),
    CMD("failed after i sent the message", "DATA"),
    /* Amazon SES / WorkMail, Exchange, Verizon, Notes: a bare command */
    /* Gmail says so only of an address refused at RCPT TO */
    CMD("because the address couldn't be found", "RCPT"),
    CMD("rcpt to response", "RCPT"),
    CMD("[rcpt_to]", "RCPT"),
    CMD("[end_of_data]", "DATA"),
    CMD("rcpt to:", "RCPT"),
    CMD("rcpt to <", "RCPT"),
    CMD("mail from:", "MAIL"),
    {NULL, NULL},
};
#undef CMD

/* ASCII lower case, inline: g_ascii_tolower() is a call per byte, and
 * dsn_find_command() reads every byte of every diagnostic. */
static inline char
lc(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c + ('a' - 'A')) : c;
}

/* 1 if needle (lower-case; a space matches one or more white-space bytes,
 * "\r\n" included) starts s[0..n). */
static int
cmd_match(const char *s, size_t n, const char *needle)
{
	size_t i = 0;

	for (; *needle != '\0'; needle++) {
		if (*needle == ' ') {
			if (i >= n || !g_ascii_isspace(s[i]))
				return 0;
			while (i < n && g_ascii_isspace(s[i]))
				i++;
			continue;
		}
		if (i >= n || lc(s[i]) != *needle)
			return 0;
		i++;
	}
	return 1;
}

#define NMARKERS (sizeof(cmd_markers) / sizeof(cmd_markers[0]) - 1)

/* The markers by first byte (either case), in table order: cmd_first[c]
 * is 1 + the index of the first marker starting with c (0: none),
 * cmd_next[k] 1 + the index of the next one after marker k with the same
 * first byte. */
static pthread_once_t cmd_once = PTHREAD_ONCE_INIT;
static unsigned char cmd_first[256];
static unsigned char cmd_next[NMARKERS];

static void
cmd_index(void)
{
	size_t k = NMARKERS;

	while (k-- > 0) {
		unsigned char c = (unsigned char)cmd_markers[k].needle[0];

		cmd_next[k] = cmd_first[c];
		cmd_first[c] = (unsigned char)(k + 1);
	}
	/* the upper-case first bytes lead to the same markers */
	for (k = 'a'; k <= 'z'; k++)
		cmd_first[k - 'a' + 'A'] = cmd_first[k];
}

/* The command named last in s[0..n) (a transcript's last command is the
 * one the error answered), or NULL.  Only positions whose byte starts some
 * marker are compared. */
const char *
dsn_find_command(const char *s, size_t n)
{
	const char *best = NULL;
	size_t i, k;

	if (s == NULL)
		return NULL;
	pthread_once(&cmd_once, cmd_index);
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (cmd_first[c] == 0)
			continue;
		/* the words start a word */
		if (c != '>' && c != '[' && i > 0 && g_ascii_isalnum(s[i - 1]))
			continue;
		for (k = cmd_first[c]; k != 0; k = cmd_next[k - 1]) {
			const struct cmd_marker *m = &cmd_markers[k - 1];

			if (cmd_match(s + i, n - i, m->needle)) {
				best = m->cmd;
				break;
			}
		}
	}
	return best;
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

/* An SMTP command named in capitals as a word of its own ("... RCPT TO
 * ...", "... after DATA"), the way a server or relay quotes the command it
 * answered; the latest stage named wins.  NULL when none. */
const char *
dsn_find_command_word(const char *s, size_t n)
{
	static const struct {
		const char *w;
		size_t len;
		const char *cmd;
	} words[] = {
	    {"HELO", 4, "HELO"},
	    {"EHLO", 4, "HELO"},
	    {"MAIL FROM", 9, "MAIL"},
	    {"RCPT", 4, "RCPT"},
	    {"DATA", 4, "DATA"},
	};
	int best = -1;
	size_t i, k;

	if (s == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		if (s[i] != 'H' && s[i] != 'E' && s[i] != 'M' && s[i] != 'R' &&
		    s[i] != 'D')
			continue;
		if (i > 0 && s[i - 1] != ' ' && s[i - 1] != '\t' &&
		    s[i - 1] != '\n' && s[i - 1] != '(' && s[i - 1] != '"' &&
		    s[i - 1] != '\'')
			continue;
		for (k = 0; k < sizeof(words) / sizeof(words[0]); k++) {
			size_t e = i + words[k].len;

			if (e > n ||
			    memcmp(s + i, words[k].w, words[k].len) != 0)
				continue;
			if (e < n && (g_ascii_isalnum(s[e]) || s[e] == '_'))
				continue;
			if ((int)k > best)
				best = (int)k;
		}
	}
	return best < 0 ? NULL : words[best].cmd;
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
	for (i = 0; text != NULL && i < r->nrcpt; i++) {
		struct record_rcpt *rc = &r->rcpts[i];
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
		if (rc->smtp_command == NULL && r->nrcpt == 1 &&
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
