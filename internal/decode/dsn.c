/*
 * dsn.c - decode one raw message into a bounce report with GMime 3: the
 * MIME walk, the report's own headers, VERP, the order in which the parts
 * speak (RFC 5965 complaints, RFC 3464 / 6533 delivery-status groups, then
 * the prose: dsn_text.c), and each recipient's attribution and class.
 * Every scan is bounded.  The report (report.c) owns all strings.
 */
#include "decode/dsn.h"
#include "decode/dsn_text.h"
#include "decode/report.h"
#include "decode/eol.h"
#include "decode/hdrcap.h"

#include <gmime/gmime.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define DS_CAP (64 * 1024)
#define MAX_DEPTH 12
#define MAX_PARTS 256

static pthread_once_t gmime_once = PTHREAD_ONCE_INIT;

static void
gmime_setup(void)
{
	g_mime_init();
}

/* ---- text of a MIME part ---- */

/* glibc loads a charset's conversion module when the first converter for
 * it opens and unloads it (dlclose, munmap) when the last one closes: a
 * charset filter per part paid a dlopen and a dlclose per message, a
 * tenth of bounce-parse's time over the corpus.  The first PIN_MAX
 * charsets seen keep one converter open for the process's lifetime, so
 * their modules stay loaded; other charsets convert as before. */
#define PIN_MAX 32
#define PIN_NAME 40

static pthread_mutex_t pin_mu = PTHREAD_MUTEX_INITIALIZER;
static char pin_names[PIN_MAX][PIN_NAME];
static iconv_t pin_cd[PIN_MAX]; /* kept, so never reported as leaked */
static size_t pin_count;

static void
charset_pin(const char *cs)
{
	size_t i, n = strlen(cs);
	iconv_t cd;

	if (n == 0 || n >= PIN_NAME)
		return;
	pthread_mutex_lock(&pin_mu);
	for (i = 0; i < pin_count; i++)
		if (ascii_casecmp(pin_names[i], cs) == 0)
			goto out;
	if (pin_count >= PIN_MAX)
		goto out;
	/* kept open on purpose: this converter is what keeps the module
	 * loaded (a charset iconv does not know is remembered too, so it is
	 * not looked up twice) */
	cd = g_mime_iconv_open("UTF-8", cs);
	pin_cd[pin_count] = cd;
	memcpy(pin_names[pin_count], cs, n + 1);
	pin_count++;
out:
	pthread_mutex_unlock(&pin_mu);
}

/* Decodes a leaf part to UTF-8 (transfer encoding and charset), reading at
 * most cap encoded bytes.  Returns xmalloc'd NUL-terminated text. */
static char *
dsn_part_text(GMimeObject *obj, size_t cap, size_t *len_out)
{
	GMimeDataWrapper *w;
	GMimeStream *src, *out = NULL, *filt = NULL;
	GMimeContentEncoding enc;
	GByteArray *ba;
	const char *cs;
	char tmp[4096], *res;
	size_t total = 0;

	*len_out = 0;
	if (!GMIME_IS_PART(obj))
		return NULL;
	w = g_mime_part_get_content(GMIME_PART(obj));
	if (w == NULL)
		return NULL;
	src = g_mime_data_wrapper_get_stream(w);
	if (src == NULL)
		return NULL;
	enc = g_mime_data_wrapper_get_encoding(w);
	cs = g_mime_object_get_content_type_parameter(obj, "charset");
	if (cs != NULL &&
	    (ascii_casecmp(cs, "utf-8") == 0 ||
	        ascii_casecmp(cs, "us-ascii") == 0 ||
	        ascii_casecmp(cs, "utf8") == 0))
		cs = NULL;
	if (cs == NULL && enc != GMIME_CONTENT_ENCODING_BASE64 &&
	    enc != GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE &&
	    enc != GMIME_CONTENT_ENCODING_UUENCODE) {
		/* nothing to convert: the bytes as they are, without the
		 * two streams a filter chain needs */
		size_t alloc = 4096;

		res = xmalloc(alloc);
		g_mime_stream_reset(src);
		while (total < cap) {
			size_t want = cap - total;
			ssize_t n;

			if (total + 1 >= alloc) {
				alloc *= 2;
				res = xrealloc(res, alloc);
			}
			if (want > alloc - 1 - total)
				want = alloc - 1 - total;
			n = g_mime_stream_read(src, res + total, want);
			if (n <= 0)
				break;
			total += (size_t)n;
		}
		res[total] = '\0';
		*len_out = total;
		return res;
	}
	out = g_mime_stream_mem_new();
	filt = g_mime_stream_filter_new(out);
	if (enc == GMIME_CONTENT_ENCODING_BASE64 ||
	    enc == GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE ||
	    enc == GMIME_CONTENT_ENCODING_UUENCODE) {
		GMimeFilter *f = g_mime_filter_basic_new(enc, FALSE);

		g_mime_stream_filter_add(GMIME_STREAM_FILTER(filt), f);
		g_object_unref(f);
	}
	if (cs != NULL) {
		GMimeFilter *f;

		charset_pin(cs);
		f = g_mime_filter_charset_new(cs, "UTF-8");

		if (f != NULL) {
			g_mime_stream_filter_add(GMIME_STREAM_FILTER(filt), f);
			g_object_unref(f);
		}
	}
	g_mime_stream_reset(src);
	while (total < cap) {
		size_t want =
		    cap - total < sizeof(tmp) ? cap - total : sizeof(tmp);
		ssize_t n = g_mime_stream_read(src, tmp, want);

		if (n <= 0)
			break;
		if (g_mime_stream_write(filt, tmp, (size_t)n) < 0)
			break;
		total += (size_t)n;
	}
	g_mime_stream_flush(filt);
	ba = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(out));
	res = xmalloc(ba->len + 1);
	if (ba->len > 0)
		memcpy(res, ba->data, ba->len);
	res[ba->len] = '\0';
	*len_out = ba->len;
	g_object_unref(filt);
	g_object_unref(out);
	return res;
}

/* ---- VERP ---- */

static const char *
verp_decode(struct dsn_report *r, const char *pat, const char *addr)
{
	const char *pl = strstr(pat, "{local}"), *pd = strstr(pat, "{domain}");
	const char *p1, *p2;
	size_t lit0, lit1, lit2, alen = strlen(addr), mlen;
	const char *mid, *m, *sep;
	char pre[256], sepbuf[64], suf[256];
	int local_first;

	if (pl == NULL || pd == NULL)
		return NULL;
	local_first = pl < pd;
	p1 = local_first ? pl : pd;
	p2 = local_first ? pd : pl;
	lit0 = (size_t)(p1 - pat);
	lit1 = (size_t)(p2 - (p1 + (local_first ? 7 : 8)));
	if (p2 < p1 + (local_first ? 7 : 8))
		return NULL;
	mid = p1 + (local_first ? 7 : 8);
	lit2 = strlen(p2 + (local_first ? 8 : 7));
	if (lit0 >= sizeof(pre) || lit1 >= sizeof(sepbuf) || lit1 == 0 ||
	    lit2 >= sizeof(suf))
		return NULL;
	memcpy(pre, pat, lit0);
	pre[lit0] = '\0';
	memcpy(sepbuf, mid, lit1);
	sepbuf[lit1] = '\0';
	memcpy(suf, p2 + (local_first ? 8 : 7), lit2);
	suf[lit2] = '\0';
	if (alen < lit0 + lit1 + lit2 + 2)
		return NULL;
	if (ascii_ncasecmp(addr, pre, lit0) != 0 ||
	    ascii_casecmp(addr + alen - lit2, suf) != 0)
		return NULL;
	m = addr + lit0;
	mlen = alen - lit0 - lit2;
	/* the domain part never holds the separator: split next to it */
	sep = NULL;
	{
		size_t k;

		for (k = 0; k + lit1 <= mlen; k++)
			if (ascii_ncasecmp(m + k, sepbuf, lit1) == 0) {
				if (local_first || sep == NULL)
					sep = m + k;
				if (!local_first)
					break;
			}
	}
	if (sep == NULL)
		return NULL;
	{
		size_t alen1 = (size_t)(sep - m), alen2 = mlen - alen1 - lit1;
		const char *s1 = m, *s2 = sep + lit1;
		char *res;

		if (alen1 == 0 || alen2 == 0)
			return NULL;
		if (local_first)
			res = xasprintf("%.*s@%.*s", (int)alen1, s1, (int)alen2,
			    s2);
		else
			res = xasprintf("%.*s@%.*s", (int)alen2, s2, (int)alen1,
			    s1);
		ascii_lower(res);
		return dsn_keep(r, res);
	}
}

/* "prefix+local=domain@host" -> "local@domain" (the form Postfix, qmail
 * and most list managers use), or NULL. */
static const char *
verp_common(struct dsn_report *r, const char *addr)
{
	const char *at = strrchr(addr, '@'), *plus = strchr(addr, '+'), *eq;
	const char *d;
	size_t i;

	if (at == NULL || plus == NULL || plus > at)
		return NULL;
	eq = NULL;
	for (d = plus + 1; d < at; d++)
		if (*d == '=')
			eq = d;
	if (eq == NULL || eq == plus + 1 || eq + 1 >= at)
		return NULL;
	/* the domain: letters, digits, '-' and '.', with a dot */
	for (i = 1, d = eq + 1; d < at; d++) {
		if (*d == '.')
			i = 0;
		else if (!g_ascii_isalnum(*d) && *d != '-')
			return NULL;
	}
	if (i != 0 || eq[1] == '.' || at[-1] == '.')
		return NULL;
	{
		char *res = xasprintf("%.*s@%.*s", (int)(eq - plus - 1),
		    plus + 1, (int)(at - eq - 1), eq + 1);

		ascii_lower(res);
		return dsn_keep(r, res);
	}
}

static void
find_verp(struct dsn_report *r, GMimeObject *top, const char *pat)
{
	static const char *const names[] = {"X-Original-To", "Delivered-To",
	    "To", "Return-Path", "Envelope-To"};
	size_t i;

	for (i = 0;
	     i < sizeof(names) / sizeof(names[0]) && !r->rec.verp_recipient;
	     i++) {
		GMimeHeaderList *hl = g_mime_object_get_header_list(top);
		int j, n = hl ? g_mime_header_list_get_count(hl) : 0;

		for (j = 0; j < n && j < 512 && !r->rec.verp_recipient; j++) {
			GMimeHeader *h =
			    g_mime_header_list_get_header_at(hl, j);
			const char *nm = g_mime_header_get_name(h);
			const char *v = g_mime_header_get_raw_value(h);
			size_t pos = 0, st, vl;
			char a[DSN_ADDR_MAX];

			if (nm == NULL || v == NULL ||
			    ascii_casecmp(nm, names[i]) != 0)
				continue;
			vl = strlen(v);
			while (!r->rec.verp_recipient &&
			    dsn_next_addr(v, vl, &pos, &st, a)) {
				if (pat != NULL)
					r->rec.verp_recipient =
					    verp_decode(r, pat, a);
				else if (r->verp_guess == NULL)
					r->verp_guess = verp_common(r, a);
			}
		}
	}
}

/* ---- MIME walk ---- */

struct walk {
	struct dsn_report *r;
	const struct dsn_options *opt;
	struct buf ds; /* delivery-status text */
	struct buf fb; /* feedback-report text */
	struct buf text; /* human-readable text */
	struct buf html;
	GMimeMessage *orig; /* borrowed from the tree */
	struct buf orighdr; /* text/rfc822-headers */
	int report_ds, report_fb, report_mdn;
	int nparts;
	int ntext;
};

static void
buf_add_part(struct buf *b, GMimeObject *obj, size_t cap)
{
	size_t n;
	char *t = dsn_part_text(obj, cap, &n);

	if (t == NULL)
		return;
	if (b->len > 0)
		buf_append(b, "\n", 1);
	buf_append(b, t, n);
	free(t);
}

static void
walk_obj(struct walk *w, GMimeObject *obj, int depth)
{
	GMimeContentType *ct;

	if (obj == NULL || depth > MAX_DEPTH || w->nparts++ > MAX_PARTS)
		return;
	ct = g_mime_object_get_content_type(obj);
	if (GMIME_IS_MULTIPART(obj)) {
		GMimeMultipart *mp = GMIME_MULTIPART(obj);
		int i, n = g_mime_multipart_get_count(mp);

		if (ct != NULL &&
		    g_mime_content_type_is_type(ct, "multipart", "report")) {
			const char *rt = g_mime_content_type_get_parameter(ct,
			    "report-type");

			if (rt != NULL &&
			    ascii_ncasecmp(rt, "feedback", 8) == 0)
				w->report_fb = 1;
			else if (rt != NULL &&
			    ascii_ncasecmp(rt, "disposition-notification",
			        24) == 0)
				w->report_mdn =
				    1; /* RFC 8098: a read receipt */
			else if (rt != NULL)
				w->report_ds = 1;
		}
		for (i = 0; i < n; i++)
			walk_obj(w, g_mime_multipart_get_part(mp, i),
			    depth + 1);
		return;
	}
	if (GMIME_IS_MESSAGE_PART(obj)) {
		GMimeMessage *m =
		    g_mime_message_part_get_message(GMIME_MESSAGE_PART(obj));

		if (w->orig == NULL && m != NULL)
			w->orig = m;
		return;
	}
	if (!GMIME_IS_PART(obj) || ct == NULL)
		return;
	if (g_mime_content_type_is_type(ct, "message", "delivery-status") ||
	    g_mime_content_type_is_type(ct, "message",
	        "global-delivery-status")) {
		buf_add_part(&w->ds, obj, DS_CAP);
		return;
	}
	if (g_mime_content_type_is_type(ct, "message", "feedback-report")) {
		buf_add_part(&w->fb, obj, DS_CAP);
		return;
	}
	if (g_mime_content_type_is_type(ct, "text", "rfc822-headers") ||
	    g_mime_content_type_is_type(ct, "text", "rfc822-header") ||
	    g_mime_content_type_is_type(ct, "message", "global-headers") ||
	    g_mime_content_type_is_type(ct, "message", "rfc822") ||
	    g_mime_content_type_is_type(ct, "message", "global")) {
		if (w->orighdr.len == 0)
			buf_add_part(&w->orighdr, obj, DSN_HDR_CAP);
		return;
	}
	if (g_mime_content_type_is_type(ct, "text", "plain")) {
		if (w->ntext < 3 && w->orig == NULL && w->orighdr.len == 0) {
			buf_add_part(&w->text, obj, DSN_TEXT_CAP);
			w->ntext++;
		}
		return;
	}
	if (g_mime_content_type_is_type(ct, "text", "html")) {
		if (w->html.len == 0)
			buf_add_part(&w->html, obj, DSN_TEXT_CAP);
		return;
	}
	if (ct != NULL && g_mime_content_type_is_type(ct, "text", "*") &&
	    w->text.len == 0 && w->ntext == 0 && depth == 0) {
		buf_add_part(&w->text, obj, DSN_TEXT_CAP);
		w->ntext++;
	}
}

/* HTML to text: tags dropped (block tags become newlines), a few entities. */
static void
html_to_text(const char *s, size_t n, struct buf *out)
{
	size_t i = 0;

	while (i < n) {
		if (s[i] == '<') {
			size_t j = i + 1;
			int block;

			while (j < n && s[j] != '>')
				j++;
			block = (j - i >= 3 &&
			    (ascii_ncasecmp(s + i + 1, "br", 2) == 0 ||
			        ascii_ncasecmp(s + i + 1, "/p", 2) == 0 ||
			        ascii_ncasecmp(s + i + 1, "p>", 2) == 0 ||
			        ascii_ncasecmp(s + i + 1, "/div", 4) == 0 ||
			        ascii_ncasecmp(s + i + 1, "/tr", 3) == 0 ||
			        ascii_ncasecmp(s + i + 1, "li", 2) == 0));
			if (block)
				buf_append(out, "\n", 1);
			else
				buf_append(out, " ", 1);
			i = j < n ? j + 1 : n;
			continue;
		}
		if (s[i] == '&') {
			static const struct {
				const char *e, *r;
			} ents[] = {{"&amp;", "&"}, {"&lt;", "<"},
			    {"&gt;", ">"}, {"&nbsp;", " "}, {"&quot;", "\""},
			    {"&#39;", "'"}};
			size_t k;
			int done = 0;

			for (k = 0; k < sizeof(ents) / sizeof(ents[0]); k++) {
				size_t el = strlen(ents[k].e);

				if (n - i >= el &&
				    ascii_ncasecmp(s + i, ents[k].e, el) == 0) {
					buf_append_str(out, ents[k].r);
					i += el;
					done = 1;
					break;
				}
			}
			if (done)
				continue;
		}
		buf_append(out, s + i, 1);
		i++;
	}
}

/* Offset of the body: after the first empty line (len if none). */
static size_t
body_offset(const char *s, size_t len)
{
	size_t i = 0;
	const char *p;

	/* from one LF to the next with memchr */
	while (i + 1 < len && (p = memchr(s + i, '\n', len - 1 - i)) != NULL) {
		i = (size_t)(p - s);
		if (s[i + 1] == '\n')
			return i + 2;
		if (s[i + 1] == '\r' && i + 2 < len && s[i + 2] == '\n')
			return i + 3;
		i++;
	}
	return len;
}

/* A delivery-status block outside any part of its own (a broken MIME
 * boundary, a forwarded bounce): the raw text from the group before the
 * first Final-Recipient/Original-Recipient line. */
static void
raw_ds(struct buf *ds, const char *msg, size_t len, size_t body)
{
	size_t scan = len - body > DSN_TEXT_CAP ? DSN_TEXT_CAP : len - body;
	size_t i = 0, st;
	const char *p, *nl;

	/* line starts only, from one LF to the next with memchr */
	while (i < scan && scan - i >= 17) {
		p = msg + body + i;
		if (ascii_ncasecmp(p, "Final-Recipient:", 16) == 0 ||
		    (scan - i >= 20 &&
		        ascii_ncasecmp(p, "Original-Recipient:", 19) == 0)) {
			st = i > 2048 ? i - 2048 : 0;
			buf_append(ds, msg + body + st,
			    scan - st > DS_CAP ? DS_CAP : scan - st);
			return;
		}
		nl = memchr(p, '\n', scan - i);
		if (nl == NULL)
			break;
		i = (size_t)(nl - (msg + body)) + 1;
	}
}

/* ---- public API ---- */

static const char *const top_names[DH_COUNT] = {
    [DH_FROM] = "From",
    [DH_TO] = "To",
    [DH_CC] = "Cc",
    [DH_SUBJECT] = "Subject",
    [DH_DATE] = "Date",
    [DH_REPLY_TO] = "Reply-To",
    [DH_RETURN_PATH] = "Return-Path",
    [DH_SENDER] = "Sender",
    [DH_X_FAILED_RECIPIENTS] = "X-Failed-Recipients",
    [DH_AUTO_SUBMITTED] = "Auto-Submitted",
    [DH_X_AUTOREPLY] = "X-Autoreply",
    [DH_X_AUTORESPOND] = "X-Autorespond",
    [DH_X_AUTORESPONDER] = "X-Autoresponder",
    [DH_PRECEDENCE] = "Precedence",
    [DH_X_APPLE_UNSUBSCRIBE] = "X-Apple-Unsubscribe",
};

/* One pass over the bounce's header list (the first of each name wins). */
static void
read_top(GMimeObject *obj, struct dsn_top *t)
{
	GMimeHeaderList *hl = g_mime_object_get_header_list(obj);
	int i, n = hl ? g_mime_header_list_get_count(hl) : 0;

	memset(t, 0, sizeof(*t));
	for (i = 0; i < n && i < 1024; i++) {
		GMimeHeader *h = g_mime_header_list_get_header_at(hl, i);
		const char *name = g_mime_header_get_name(h), *v;
		int k;

		if (name == NULL)
			continue;
		for (k = 0; k < DH_COUNT; k++) {
			if (t->v[k] != NULL ||
			    g_ascii_tolower(name[0]) !=
			        g_ascii_tolower(top_names[k][0]) ||
			    ascii_casecmp(name, top_names[k]) != 0)
				continue;
			v = g_mime_header_get_raw_value(h);
			if (v == NULL)
				break;
			while (
			    *v == ' ' || *v == '\t' || *v == '\r' || *v == '\n')
				v++;
			t->v[k] = v;
			break;
		}
	}
}

#define MID_MAX 511 /* bytes of the report's Message-ID kept */

/* The report's own Message-ID as written (angle brackets kept): the raw
 * value of the first Message-ID header, folded lines joined, runs of
 * white space as one space, CRs dropped, trimmed, at most MID_MAX bytes;
 * NULL when absent or empty. */
static const char *
read_message_id(struct dsn_report *r, GMimeObject *obj)
{
	GMimeHeaderList *hl = g_mime_object_get_header_list(obj);
	int i, n = hl ? g_mime_header_list_get_count(hl) : 0;
	const char *v = NULL;
	char *out;
	size_t o = 0;

	for (i = 0; i < n && v == NULL; i++) {
		GMimeHeader *h = g_mime_header_list_get_header_at(hl, i);
		const char *name = g_mime_header_get_name(h);

		if (name != NULL && ascii_casecmp(name, "Message-ID") == 0)
			v = g_mime_header_get_raw_value(h);
	}
	if (v == NULL)
		return NULL;
	out = xmalloc(MID_MAX + 1);
	for (; *v != '\0' && o < MID_MAX; v++) {
		char c = *v == '\t' ? ' ' : *v;

		if (c == '\r' || c == '\n')
			continue;
		if (c == ' ' && (o == 0 || out[o - 1] == ' '))
			continue;
		out[o++] = c;
	}
	while (o > 0 && out[o - 1] == ' ')
		o--;
	out[o] = '\0';
	if (o == 0) {
		free(out);
		return NULL;
	}
	return dsn_keep(r, out);
}

/* The reply code and status a recipient's diagnostic gives, where the
 * report's fields said less. */
static void
rcpt_codes(struct dsn_report *r, struct record_rcpt *rc)
{
	size_t dl = strlen(rc->diagnostic);
	char st[16];
	int pc = dsn_reply_status_pair(rc->diagnostic, dl, st);

	/* the remote server's code is more precise than a generic Status
	 * field */
	if (pc != 0) {
		if (rc->reply_code == 0)
			rc->reply_code = pc;
		if (strcmp(st + 1, ".0.0") != 0 &&
		    (rc->status == NULL || strcmp(rc->status, st) != 0))
			rc->status = dsn_keep(r, xstrdup(st));
	}
	/* an x-unix diagnostic holds a program's exit status ("255"), never
	 * an SMTP reply */
	if (rc->reply_code == 0 &&
	    !(rc->diagnostic_type != NULL &&
	        strcmp(rc->diagnostic_type, "x-unix") == 0))
		rc->reply_code = dsn_find_reply(rc->diagnostic, dl);
	if (rc->status == NULL && dsn_find_status(rc->diagnostic, dl, st))
		rc->status = dsn_keep(r, xstrdup(st));
}

/* recipient and recipient_source: the VERP address, else the first
 * configured header of the original holding an address, else the
 * original recipient (when both are given), else the final one. */
static void
rcpt_attribute(struct dsn_report *r, const struct dsn_options *opt,
    struct record_rcpt *rc)
{
	const char *verp = r->rec.verp_recipient;
	size_t k;

	rc->recipient = NULL;
	/* a VERP address names one recipient: with several in the report it
	 * applies to the one it matches */
	if (verp != NULL && r->rec.kind != RECORD_KIND_AUTOREPLY &&
	    (r->rec.nrcpts == 1 ||
	        (rc->final_recipient != NULL &&
	            strcmp(rc->final_recipient, verp) == 0) ||
	        (rc->original_recipient != NULL &&
	            strcmp(rc->original_recipient, verp) == 0))) {
		rc->recipient = verp;
		rc->recipient_source = "verp";
	}
	for (k = 0; rc->recipient == NULL && opt != NULL && k < opt->nheaders;
	     k++) {
		const char *v;
		char a[DSN_ADDR_MAX];

		if (opt->headers[k] == NULL)
			continue;
		v = record_orig_header(&r->rec, opt->headers[k]);
		if (v != NULL && strchr(v, '@') != NULL &&
		    dsn_first_addr(v, strlen(v), a)) {
			rc->recipient = dsn_keep(r, xstrdup(a));
			rc->recipient_source = dsn_keep(r,
			    xasprintf("header:%s", opt->headers[k]));
		}
	}
	if (rc->recipient == NULL && rc->original_recipient != NULL &&
	    rc->final_recipient != NULL) {
		rc->recipient = rc->original_recipient;
		rc->recipient_source = "original_recipient";
	}
	if (rc->recipient == NULL && rc->final_recipient != NULL) {
		rc->recipient = rc->final_recipient;
		rc->recipient_source = rc->recipient_source
		    ? rc->recipient_source
		    : "final_recipient";
	}
	if (rc->recipient == NULL && rc->original_recipient != NULL) {
		rc->recipient = rc->original_recipient;
		rc->recipient_source = "original_recipient";
	}
}

/* The SMTP command when the report did not say, then the classifier's
 * reason, class and evidence. */
static void
rcpt_classify(struct dsn_report *r, const struct dsn_options *opt,
    struct record_rcpt *rc)
{
	struct classify_input in;
	struct classify_result res;
	const char *kind = record_kind_name(r->rec.kind);

	if (rc->action != NULL && strcmp(rc->action, "delayed") == 0)
		kind = "delayed";
	else if (rc->action != NULL &&
	    (strcmp(rc->action, "delivered") == 0 ||
	        strcmp(rc->action, "relayed") == 0 ||
	        strcmp(rc->action, "expanded") == 0))
		kind = "delivered";
	memset(&in, 0, sizeof(in));
	in.status = rc->status;
	in.reply_code = rc->reply_code;
	in.action = rc->action;
	in.diagnostic = rc->diagnostic;
	in.kind = kind;
	in.feedback_type = rc->feedback_type;
	in.mta = r->rec.mta;
	in.subject = r->rec.subject;
	if (rc->smtp_command == NULL && rc->diagnostic != NULL)
		rc->smtp_command =
		    dsn_find_command(rc->diagnostic, strlen(rc->diagnostic));
	if (rc->smtp_command == NULL && rc->diagnostic != NULL)
		rc->smtp_command = dsn_find_command_word(rc->diagnostic,
		    strlen(rc->diagnostic));
	in.smtp_command = rc->smtp_command;
	in.diagnostic_type = rc->diagnostic_type;
	in.recipient = dsn_rcpt_address(rc);
	in.operator_rules = opt != NULL ? opt->rules : NULL;
	memset(&res, 0, sizeof(res));
	classify(&in, &res);
	rc->reason = res.reason ? res.reason : "undefined";
	rc->cls = res.cls;
	rc->rule = res.rule ? dsn_keep(r, xstrdup(res.rule)) : NULL;
	rc->rule_phrase = res.phrase ? dsn_keep(r, xstrdup(res.phrase)) : NULL;
	memcpy(rc->rule_status, res.status, sizeof(rc->rule_status));
	rc->rule_reply = res.reply;
	rc->rule_command = res.command;
}

/* Sets recipient/recipient_source, reply code, status fallback, date and
 * the classification of every recipient. */
static void
finish(struct dsn_report *r, const struct dsn_options *opt)
{
	size_t i;

	for (i = 0; i < r->rec.nrcpts; i++) {
		struct record_rcpt *rc = &r->rec.rcpts[i];

		if (rc->diagnostic != NULL)
			rcpt_codes(r, rc);
		if (rc->date == 0)
			rc->date = r->rec.date;
		rcpt_attribute(r, opt, rc);
		rcpt_classify(r, opt, rc);
	}
}

/* The recipient of a Final-Recipient-less record is the best field. */
const char *
dsn_rcpt_address(const struct record_rcpt *rc)
{
	if (rc->final_recipient != NULL)
		return rc->final_recipient;
	if (rc->original_recipient != NULL)
		return rc->original_recipient;
	return rc->recipient;
}

/* The bounce's own headers: Message-ID, Subject (RFC 2047 words
 * decoded), Date, the VERP recipient, and those the text scan reads. */
static void
read_headers(struct dsn_report *r, const struct dsn_options *opt,
    GMimeObject *top, struct dsn_top *th)
{
	const char *v;

	read_top(top, th);
	r->rec.message_id = read_message_id(r, top);
	v = th->v[DH_SUBJECT];
	if (v != NULL && strstr(v, "=?") != NULL) {
		char *dec = g_mime_utils_header_decode_text(NULL, v);

		r->rec.subject = dsn_keep_clean(r, dec, strlen(dec));
		g_free(dec);
	} else if (v != NULL)
		r->rec.subject = dsn_keep_clean(r, v, strlen(v));
	v = th->v[DH_DATE];
	if (v != NULL)
		r->rec.date = dsn_parse_date(v);
	find_verp(r, top, opt != NULL ? opt->verp_pattern : NULL);
}

/* Microsoft JMRP: the complained-about message alone, naming its
 * recipient in X-HmXmrOriginalRecipient.  1 when it is one. */
static int
jmrp(struct dsn_report *r, GMimeMessage *orig)
{
	const char *v = g_mime_object_get_header(GMIME_OBJECT(orig),
	    "X-HmXmrOriginalRecipient");
	char a[DSN_ADDR_MAX];
	struct record_rcpt *x;

	if (v == NULL)
		return 0;
	if (dsn_first_addr(v, strlen(v), a) && (x = dsn_add_rcpt(r)) != NULL) {
		x->final_recipient = dsn_keep(r, xstrdup(a));
		x->feedback_type = "abuse";
		r->rec.kind = RECORD_KIND_COMPLAINT;
		r->rec.mta = "jmrp";
	}
	return 1;
}

/* The report's machine-readable parts: a JMRP or RFC 5965 complaint, a
 * read receipt, RFC 3464 delivery-status groups (a part of their own or
 * pasted into the body).  1 when they decided the report; 0 when the
 * text must be read (w->text then holds it). */
static int
report_parts(struct dsn_report *r, struct walk *w, const struct dsn_top *th,
    const char *msg, size_t len, size_t body_off)
{
	size_t i;
	int ds_part, failed = 0, delayed = 0;

	if (w->fb.len == 0 && w->ds.len == 0 && w->orig != NULL &&
	    jmrp(r, w->orig))
		return 1;
	/* RFC 5965 feedback report */
	if (w->fb.len > 0 || w->report_fb) {
		dsn_feedback(r, w->fb.data, w->fb.len);
		return 1;
	}
	/* a message disposition notification (read receipt) says the
	 * message arrived: not a bounce, whatever fields it carries */
	if (w->report_mdn && w->ds.len == 0)
		return 1;
	ds_part = w->ds.len > 0;
	if (w->ds.len == 0)
		raw_ds(&w->ds, msg, len, body_off);
	/* no text part: the raw body is the text, unless the message has a
	 * delivery-status part of its own (an empty human-readable part then
	 * means no words, not the report's fields) */
	if (w->text.len == 0 && body_off < len && !ds_part)
		buf_append(&w->text, msg + body_off,
		    len - body_off > DSN_TEXT_CAP ? DSN_TEXT_CAP
		                                  : len - body_off);
	if (w->ds.len == 0 || dsn_parse_ds(r, w->ds.data, w->ds.len) == 0)
		return 0;
	for (i = 0; i < r->rec.nrcpts; i++) {
		const char *a = r->rec.rcpts[i].action;

		if (a == NULL || strcmp(a, "failed") == 0)
			failed++;
		else if (strcmp(a, "delayed") == 0)
			delayed++;
	}
	r->rec.kind = failed ? RECORD_KIND_BOUNCE
	    : delayed        ? RECORD_KIND_DELAYED
	                     : RECORD_KIND_DELIVERED;
	dsn_text_enrich(r, th, w->text.data, w->text.len);
	return 1;
}

static int parse_depth(const char *msg, size_t len, int truncated,
    const struct dsn_options *opt, struct dsn_report **out, struct err *err,
    int depth);

/* A bounce forwarded as an attachment (a list manager's "uncaught
 * bounce" notice, a user's "Fwd:"): the inner report, if it is a bounce
 * or a delay naming recipients, replaces r's findings. */
static void
forwarded(struct dsn_report *r, const struct dsn_options *opt,
    GMimeMessage *orig, int truncated, int depth)
{
	char *inner = g_mime_object_to_string(GMIME_OBJECT(orig), NULL);
	struct dsn_report *ir = NULL;

	if (inner != NULL &&
	    parse_depth(inner, strlen(inner), truncated, opt, &ir, NULL,
	        depth + 1) == 0 &&
	    (ir->rec.kind == RECORD_KIND_BOUNCE ||
	        ir->rec.kind == RECORD_KIND_DELAYED) &&
	    ir->rec.nrcpts > 0) {
		dsn_adopt(r, ir);
		ir = NULL;
	}
	dsn_free(&ir);
	g_free(inner);
}

/* Decodes the parsed message m (raw bytes msg[0..len)) into r. */
static void
decode_message(struct dsn_report *r, const struct dsn_options *opt,
    GMimeMessage *m, const char *msg, size_t len, int truncated, int depth)
{
	GMimeObject *top = GMIME_OBJECT(m);
	size_t body_off = body_offset(msg, len);
	struct dsn_top th;
	struct walk w;

	memset(&w, 0, sizeof(w));
	buf_init(&w.ds, DS_CAP);
	buf_init(&w.fb, DS_CAP);
	buf_init(&w.text, DSN_TEXT_CAP);
	buf_init(&w.html, DSN_TEXT_CAP);
	buf_init(&w.orighdr, DSN_HDR_CAP);
	read_headers(r, opt, top, &th);
	w.r = r;
	w.opt = opt;
	walk_obj(&w, g_mime_message_get_mime_part(m), 0);
	if (w.text.len == 0 && w.html.len > 0)
		html_to_text(w.html.data, w.html.len, &w.text);
	if (w.orig != NULL)
		dsn_orig_from_message(r, opt, w.orig);
	else if (w.orighdr.len > 0)
		dsn_orig_from_text(r, opt, w.orighdr.data, w.orighdr.len);
	if (!report_parts(r, &w, &th, msg, len, body_off)) {
		dsn_text_scan(r, opt, &th, w.text.data, w.text.len,
		    w.orig != NULL || w.orighdr.len > 0);
		if (r->rec.nrcpts == 0 && r->rec.kind == RECORD_KIND_UNKNOWN &&
		    depth == 0 && w.orig != NULL)
			forwarded(r, opt, w.orig, truncated, depth);
	}
	if (r->rec.nrcpts == 0 && r->rec.kind != RECORD_KIND_COMPLAINT)
		r->rec.kind = r->rec.kind == RECORD_KIND_AUTOREPLY
		    ? r->rec.kind
		    : RECORD_KIND_UNKNOWN;
	finish(r, opt);
	buf_free(&w.ds);
	buf_free(&w.fb);
	buf_free(&w.text);
	buf_free(&w.html);
	buf_free(&w.orighdr);
}

static int
parse_depth(const char *msg, size_t len, int truncated,
    const struct dsn_options *opt, struct dsn_report **out, struct err *err,
    int depth)
{
	struct dsn_report *r = NULL;
	GMimeStream *stream = NULL;
	GMimeParser *parser = NULL;
	GMimeMessage *m = NULL;
	char *capped = NULL;
	int rc = -1;

	if (out == NULL) {
		err_set(err, "dsn_parse: no output pointer");
		goto out;
	}
	*out = NULL;
	if (msg == NULL && len > 0) {
		err_set(err, "dsn_parse: NULL message");
		goto out;
	}
	pthread_once(&gmime_once, gmime_setup);
	r = xcalloc(1, sizeof(*r));
	r->rec.truncated = truncated ? 1 : 0;
	rc = 0;
	if (len == 0)
		goto out;
	/* GMime keeps every header it reads: a header folded a million
	 * times costs many times the message; it reads a copy cut to the
	 * bounds of hdrcap.h, and the report says it was cut */
	if (hdrcap(msg, len, &capped, &len) == 1) {
		msg = capped;
		r->rec.truncated = 1;
	}
	stream = g_mime_stream_mem_new_with_buffer(msg, len);
	parser = g_mime_parser_new_with_stream(stream);
	g_mime_parser_set_format(parser, GMIME_FORMAT_MESSAGE);
	m = g_mime_parser_construct_message(parser, NULL);
	if (m != NULL)
		decode_message(r, opt, m, msg, len, truncated, depth);
out:
	if (m != NULL)
		g_object_unref(m);
	if (parser != NULL)
		g_object_unref(parser);
	if (stream != NULL)
		g_object_unref(stream);
	free(capped);
	if (rc == 0)
		*out = r;
	else
		dsn_free(&r);
	return rc;
}

int
dsn_parse(const char *msg, size_t len, int truncated,
    const struct dsn_options *opt, struct dsn_report **out, struct err *err)
{
	char *crlf = NULL;
	int rc;

	/* CR CR LF, bare LF and bare CR are read as CRLF (eol.h) */
	if (msg != NULL && eol_normalize(msg, len, &crlf, &len) == 1)
		msg = crlf;
	rc = parse_depth(msg, len, truncated, opt, out, err, 0);
	free(crlf);
	return rc;
}

const struct record *
dsn_record(const struct dsn_report *r)
{
	return r != NULL ? &r->rec : NULL;
}
