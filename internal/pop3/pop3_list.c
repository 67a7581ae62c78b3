/*
 * pop3_list.c - listings of a POP3 session: UIDL and LIST (RFC 1939,
 * parsed strictly: CRLF lines, bounded lengths, unique message numbers),
 * STAT, their merge into one entry per message, and the first-window
 * scan that asks "UIDL n" / "LIST n" one message at a time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pop3/pop3.h"
#include "pop3/pop3_int.h"

int
pop3_cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* Whether v[0..n) holds a number twice (*dup gets it).  Sorts v. */
int
pop3_has_dup_u32(uint32_t *v, size_t n, uint32_t *dup)
{
	size_t i;

	if (n < 2)
		return 0;
	qsort(v, n, sizeof(*v), pop3_cmp_u32);
	for (i = 1; i < n; i++)
		if (v[i] == v[i - 1]) {
			*dup = v[i];
			return 1;
		}
	return 0;
}

static int
cmp_entry_msgno(const void *a, const void *b)
{
	const struct pop3_entry *x = a, *y = b;
	return x->msgno < y->msgno ? -1 : x->msgno > y->msgno;
}

/* Decimal digits only, no sign; at most maxd digits. */
static int
parse_digits(const char *s, size_t n, size_t maxd, uint64_t *out)
{
	uint64_t v = 0;
	size_t i;

	if (n == 0 || n > maxd)
		return -1;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = v;
	return 0;
}

/* Line lineno of a listing at data[*pos..len): must end in CRLF and be
 * at most LISTING_LINE_MAX long.  0 with *line_out / *ll_out (CRLF not
 * counted) and *pos past it, or -1 with err set. */
static int
listing_line(const char *data, size_t len, size_t *pos, size_t lineno,
    const char **line_out, size_t *ll_out, struct err *err)
{
	const char *line = data + *pos, *nl;
	char show[48];
	size_t ll;

	nl = memchr(line, '\n', len - *pos);
	if (nl == NULL) {
		pop3_sanitize(show, sizeof(show), line, len - *pos);
		err_set(err, "line %zu has no CRLF: \"%s\"", lineno, show);
		return -1;
	}
	ll = (size_t)(nl - line);
	if (ll == 0 || line[ll - 1] != '\r') {
		err_set(err, "line %zu ends in a bare LF", lineno);
		return -1;
	}
	ll--;
	*pos += ll + 2;
	if (ll > LISTING_LINE_MAX) {
		pop3_sanitize(show, sizeof(show), line, 40);
		err_set(err, "line %zu is %zu bytes long: \"%s...\"", lineno,
		    ll, show);
		return -1;
	}
	*line_out = line;
	*ll_out = ll;
	return 0;
}

/* The message number that starts line[0..ll) ("msg SP ...").  0 with
 * *msgno_out and *rest_out (after the space), or -1 with err set. */
static int
listing_msgno(const char *line, size_t ll, size_t lineno, uint32_t *msgno_out,
    const char **rest_out, struct err *err)
{
	const char *sp = memchr(line, ' ', ll);
	char show[48];
	uint64_t v;

	if (sp == NULL ||
	    parse_digits(line, (size_t)(sp - line), 10, &v) != 0 || v == 0 ||
	    v > UINT32_MAX) {
		pop3_sanitize(show, sizeof(show), line, ll);
		err_set(err, "line %zu: bad message number: \"%s\"", lineno,
		    show);
		return -1;
	}
	*msgno_out = (uint32_t)v;
	*rest_out = sp + 1;
	return 0;
}

/* The unique-id sp[0..rest) of a UIDL line into e.  0 or -1. */
static int
listing_uidl(const char *sp, size_t rest, size_t lineno, struct pop3_entry *e,
    struct err *err)
{
	size_t i;

	if (rest == 0 || rest > POP3_UIDL_MAX) {
		err_set(err, "line %zu: UIDL of %zu characters", lineno, rest);
		return -1;
	}
	for (i = 0; i < rest; i++) {
		unsigned char c = (unsigned char)sp[i];
		if (c < 0x21 || c > 0x7e) {
			err_set(err, "line %zu: UIDL has byte 0x%02x at %zu",
			    lineno, c, i + 1);
			return -1;
		}
	}
	memcpy(e->uidl, sp, rest);
	e->uidl[rest] = '\0';
	return 0;
}

/* The size sp[0..rest) of a LIST line (line[0..ll)) into e.  RFC 1939:
 * "msg SP size", anything after a further SP is allowed and ignored.
 * 0 or -1. */
static int
listing_size(const char *line, size_t ll, const char *sp, size_t rest,
    size_t lineno, struct pop3_entry *e, struct err *err)
{
	const char *end = memchr(sp, ' ', rest);
	size_t dl = end ? (size_t)(end - sp) : rest, i;
	char show[48];
	uint64_t v;

	if (parse_digits(sp, dl, 18, &v) != 0) {
		pop3_sanitize(show, sizeof(show), line, ll);
		err_set(err, "line %zu: bad size: \"%s\"", lineno, show);
		return -1;
	}
	for (i = dl; i < rest; i++)
		if ((unsigned char)sp[i] < 0x20 || sp[i] == 0x7f) {
			err_set(err, "line %zu: control byte in scan listing",
			    lineno);
			return -1;
		}
	e->size = (int64_t)v;
	return 0;
}

/* -1 with err set when two entries have the same message number.  A
 * UIDL listed twice is passed on: RFC 1939 forbids it, but servers that
 * derive ids from content give them, and the caller keys such messages
 * itself. */
static int
listing_unique(const struct pop3_entry *list, size_t n, struct err *err)
{
	uint32_t *nos, dup;
	size_t i;
	int rc = 0;

	if (n < 2)
		return 0;
	nos = xmalloc(n * sizeof(*nos));
	for (i = 0; i < n; i++)
		nos[i] = list[i].msgno;
	if (pop3_has_dup_u32(nos, n, &dup)) {
		err_set(err, "duplicate message number %u", (unsigned)dup);
		rc = -1;
	}
	free(nos);
	return rc;
}

static int
parse_listing(const char *data, size_t len, int uidl, size_t max_messages,
    struct pop3_entry **list_out, size_t *n_out, enum pop3_error *kind,
    struct err *err)
{
	struct pop3_entry *list = NULL;
	size_t n = 0, alloc = 0, pos = 0, lineno = 0;
	int rc = -1;

	*kind = POP3_ERR_PROTOCOL;
	/* libcurl hands over an empty listing as the lone CRLF that ended
	 * the status line. */
	if (len == 2 && data[0] == '\r' && data[1] == '\n')
		len = 0;
	while (pos < len) {
		const char *line, *sp;
		size_t ll, rest;
		uint32_t msgno;

		lineno++;
		if (listing_line(data, len, &pos, lineno, &line, &ll, err) !=
		        0 ||
		    listing_msgno(line, ll, lineno, &msgno, &sp, err) != 0)
			goto out;
		if (n == max_messages) {
			*kind = POP3_ERR_LIMIT;
			err_set(err, "listing has more than %zu messages",
			    max_messages);
			goto out;
		}
		if (n == alloc) {
			alloc = alloc ? alloc * 2 : 64;
			list = xrealloc(list, alloc * sizeof(*list));
		}
		memset(&list[n], 0, sizeof(list[n]));
		list[n].msgno = msgno;
		list[n].size = -1;
		rest = ll - (size_t)(sp - line);
		if (uidl ? listing_uidl(sp, rest, lineno, &list[n], err) != 0
		         : listing_size(line, ll, sp, rest, lineno, &list[n],
		               err) != 0)
			goto out;
		n++;
	}
	if (listing_unique(list, n, err) != 0)
		goto out;
	*list_out = list;
	*n_out = n;
	list = NULL;
	*kind = POP3_ERR_NONE;
	rc = 0;
out:
	free(list);
	return rc;
}

int
pop3_parse_listing(const char *data, size_t len, int uidl, size_t max_messages,
    struct pop3_entry **list_out, size_t *n_out, struct err *err)
{
	enum pop3_error kind;

	return parse_listing(data, len, uidl,
	    max_messages ? max_messages : DEF_MAX_MESSAGES, list_out, n_out,
	    &kind, err);
}

/* Remembers the message numbers of a listing for DELE/RETR checks. */
static void
remember(struct pop3 *p, const struct pop3_entry *list, size_t n)
{
	size_t i;

	free(p->msgnos);
	free(p->dele);
	p->msgnos = xmalloc((n ? n : 1) * sizeof(*p->msgnos));
	p->dele = xcalloc(n ? n : 1, 1);
	for (i = 0; i < n; i++)
		p->msgnos[i] = list[i].msgno;
	if (n > 0)
		qsort(p->msgnos, n, sizeof(*p->msgnos), pop3_cmp_u32);
	p->n_msgnos = n;
	p->have_listing = 1;
}

static int
listing(struct pop3 *p, int uidl, struct pop3_entry **list_out, size_t *n_out,
    struct err *err)
{
	const char *cmd = uidl ? "UIDL" : "LIST";
	struct pop3_entry *list = NULL;
	size_t n = 0, cap;
	struct buf b;
	struct err perr;
	enum pop3_error kind;
	int rc = -1;

	*list_out = NULL;
	*n_out = 0;
	if (pop3_need_session(p, cmd, err) != 0)
		return -1;
	cap = p->max_messages * LISTING_LINE_MAX;
	if (cap / LISTING_LINE_MAX != p->max_messages || cap > LISTING_CAP_MAX)
		cap = LISTING_CAP_MAX;
	buf_init(&b, cap);
	if (pop3_run(p, cmd, &b, p->transfer_ms,
	        uidl ? POP3_ERR_NO_UIDL : POP3_ERR_SERVER, err) != 0)
		goto out;
	if (b.truncated) {
		p->broken = 1;
		pop3_fail(p, POP3_ERR_LIMIT, err, cmd,
		    "listing exceeds %zu bytes", cap);
		goto out;
	}
	if (parse_listing(b.data ? b.data : "", b.len, uidl, p->max_messages,
	        &list, &n, &kind, &perr) != 0) {
		p->broken = 1;
		pop3_fail(p, kind, err, cmd, "%s", perr.msg);
		goto out;
	}
	remember(p, list, n);
	*list_out = list;
	*n_out = n;
	rc = 0;
out:
	buf_free(&b);
	return rc;
}

int
pop3_uidl(struct pop3 *p, struct pop3_entry **list_out, size_t *n_out,
    struct err *err)
{
	return listing(p, 1, list_out, n_out, err);
}

int
pop3_list(struct pop3 *p, struct pop3_entry **list_out, size_t *n_out,
    struct err *err)
{
	return listing(p, 0, list_out, n_out, err);
}

/* UIDL and LIST entries merged: both must list the same message numbers.
 * Takes u and l; 0, or -1 with the session ended. */
static int
merge_scan(struct pop3 *p, struct pop3_entry *u, size_t nu,
    struct pop3_entry *l, size_t nl, struct pop3_entry **list_out,
    size_t *n_out, struct err *err)
{
	size_t i;
	int rc = -1;

	if (nu != nl) {
		p->broken = 1;
		pop3_fail(p, POP3_ERR_PROTOCOL, err, "LIST",
		    "UIDL lists %zu messages, LIST %zu", nu, nl);
		goto out;
	}
	if (nu > 0) {
		qsort(u, nu, sizeof(*u), cmp_entry_msgno);
		qsort(l, nl, sizeof(*l), cmp_entry_msgno);
	}
	for (i = 0; i < nu; i++) {
		if (u[i].msgno != l[i].msgno) {
			p->broken = 1;
			pop3_fail(p, POP3_ERR_PROTOCOL, err, "LIST",
			    "message %u is in UIDL but not in LIST",
			    (unsigned)u[i].msgno);
			goto out;
		}
		u[i].size = l[i].size;
	}
	*list_out = u;
	*n_out = nu;
	u = NULL;
	rc = 0;
out:
	free(u);
	free(l);
	return rc;
}

int
pop3_scan(struct pop3 *p, struct pop3_entry **list_out, size_t *n_out,
    struct err *err)
{
	struct pop3_entry *u = NULL, *l = NULL;
	size_t nu = 0, nl = 0;

	*list_out = NULL;
	*n_out = 0;
	if (listing(p, 1, &u, &nu, err) != 0 ||
	    listing(p, 0, &l, &nl, err) != 0) {
		free(u);
		free(l);
		return -1;
	}
	return merge_scan(p, u, nu, l, nl, list_out, n_out, err);
}

int
pop3_stat(struct pop3 *p, size_t *count_out, struct err *err)
{
	const char *sp;
	uint64_t v;

	*count_out = 0;
	if (pop3_need_session(p, "STAT", err) != 0 ||
	    pop3_run(p, "STAT", NULL, p->command_ms, POP3_ERR_SERVER, err) != 0)
		return -1;
	sp = strchr(p->okline, ' ');
	if (sp == NULL ||
	    parse_digits(p->okline, (size_t)(sp - p->okline), 10, &v) != 0 ||
	    v > UINT32_MAX) {
		char show[48];

		p->broken = 1;
		pop3_sanitize(show, sizeof(show), p->okline, strlen(p->okline));
		pop3_fail(p, POP3_ERR_PROTOCOL, err, "STAT",
		    "bad reply: \"%s\"", show);
		return -1;
	}
	*count_out = (size_t)v;
	return 0;
}

/* "CMD k" for k = 1..n, in pipelined groups when the server allows; the
 * text after each "+OK " goes to out as one listing line.  0, or -1 with
 * the session ended. */
static int
per_message(struct pop3 *p, const char *cmd, size_t n, struct buf *out,
    enum pop3_error err_kind, struct err *err)
{
	size_t g = p->pipelining ? DELE_GROUP : 1, i, k;
	char *cmds = xmalloc(g * 32), label[32];
	int rc = 0;

	for (i = 0; i < n && rc == 0; i += g) {
		size_t m = n - i < g ? n - i : g, len = 0;
		struct xfer x;

		for (k = 0; k < m; k++)
			len += (size_t)snprintf(cmds + len, 32, "%s %zu\r\n",
			    cmd, i + k + 1);
		snprintf(label, sizeof(label), "%s %zu", cmd, i + 1);
		pop3_xfer_init(&x, label, p->command_ms);
		if (pop3_send_all(p, &x, cmds, len, err) != 0) {
			rc = -1;
			break;
		}
		for (k = 0; k < m; k++) {
			snprintf(label, sizeof(label), "%s %zu", cmd,
			    i + k + 1);
			x.label = label;
			if (pop3_read_status(p, &x, err_kind, err) != 0) {
				rc = -1;
				break;
			}
			buf_append_str(out, p->okline);
			buf_append(out, "\r\n", 2);
		}
	}
	if (rc != 0)
		p->broken = 1;
	free(cmds);
	return rc;
}

int
pop3_scan_first(struct pop3 *p, size_t limit, struct pop3_entry **list_out,
    size_t *n_out, size_t *total_out, struct err *err)
{
	struct pop3_entry *u = NULL, *l = NULL;
	size_t nu = 0, nl = 0, total;
	struct buf b;
	struct err perr;
	enum pop3_error kind;
	int uidl;

	*list_out = NULL;
	*n_out = 0;
	*total_out = 0;
	if (pop3_stat(p, &total, err) != 0)
		return -1;
	*total_out = total;
	if (total <= limit) {
		/* a server whose listing says more than STAT is refused
		 * after limit lines, not read whole */
		size_t keep = p->max_messages;
		int rc;

		if (p->max_messages > limit)
			p->max_messages = limit;
		rc = pop3_scan(p, list_out, n_out, err);
		p->max_messages = keep;
		return rc;
	}
	for (uidl = 1; uidl >= 0; uidl--) {
		const char *cmd = uidl ? "UIDL" : "LIST";
		struct pop3_entry **lp = uidl ? &u : &l;
		size_t *np = uidl ? &nu : &nl;

		int rc;

		buf_init(&b, limit * (LISTING_LINE_MAX + 2) + 64);
		rc = per_message(p, cmd, limit, &b,
		    uidl ? POP3_ERR_NO_UIDL : POP3_ERR_SERVER, err);
		if (rc == 0 &&
		    parse_listing(b.data ? b.data : "", b.len, uidl, limit, lp,
		        np, &kind, &perr) != 0) {
			p->broken = 1;
			pop3_fail(p, kind, err, cmd, "%s", perr.msg);
			rc = -1;
		}
		buf_free(&b);
		if (rc != 0) {
			free(u);
			free(l);
			return -1;
		}
	}
	if (merge_scan(p, u, nu, l, nl, list_out, n_out, err) != 0)
		return -1;
	remember(p, *list_out, *n_out);
	return 0;
}
