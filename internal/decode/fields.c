/*
 * fields.c - the field groups of a report: RFC 3464 / RFC 6533
 * delivery-status groups (one recipient each), RFC 5965 feedback-report
 * fields, and the headers of the returned original message (Message-ID,
 * From, To, Subject, List-Id and the configured names), read from a
 * message/rfc822 part or from text.  Strings are kept by the report.
 */
#include "decode/report.h"

#include <gmime/gmime.h>
#include <stdlib.h>
#include <string.h>

static int
fname_is(const char *name, size_t nlen, const char *want)
{
	return strlen(want) == nlen && ascii_ncasecmp(name, want, nlen) == 0;
}

/* "rfc822; user@example.org" -> the address. */
static const char *
keep_addr_field(struct dsn_report *r, const char *v, size_t vlen)
{
	char a[DSN_ADDR_MAX];
	const char *semi = memchr(v, ';', vlen);

	if (semi != NULL) {
		vlen -= (size_t)(semi + 1 - v);
		v = semi + 1;
	}
	size_t pos = 0, st;

	/* typed address fields may hold UTF-8 addresses (RFC 6533) */
	if (!dsn_next_addr_utf8(v, vlen, &pos, &st, a))
		return NULL;
	return dsn_keep(r, dsn_clean(a, strlen(a)));
}

struct ds_ctx {
	struct dsn_report *r;
	struct record_rcpt *cur;
	size_t first; /* index of the first recipient from this part */
	int64_t arrival;
	const char *status_comment; /* diagnostic taken from Status (...) */
};

/* A field of the current recipient's group (c->cur set). */
static void
ds_rcpt_field(struct ds_ctx *c, const char *name, size_t nlen, const char *v,
    size_t vlen)
{
	struct dsn_report *r = c->r;

	if (fname_is(name, nlen, "Action")) {
		char *a = dsn_clean(v, vlen);
		size_t k;

		for (k = 0; a[k] != '\0' && a[k] != ' ' && a[k] != '('; k++)
			;
		a[k] = '\0';
		ascii_lower(a);
		if (c->cur->action == NULL && a[0] != '\0')
			c->cur->action = dsn_keep(r, a);
		else
			free(a);
	} else if (fname_is(name, nlen, "Status")) {
		char st[16];

		const char *lp = memchr(v, '(', vlen);

		if (c->cur->status == NULL && dsn_find_status(v, vlen, st))
			c->cur->status = dsn_keep(r, xstrdup(st));
		/* "Status: 4.0.0 (host name lookup failure)": the comment
		 * stands in for a missing Diagnostic-Code */
		if (lp != NULL && c->cur->diagnostic == NULL) {
			const char *rp =
			    memchr(lp, ')', vlen - (size_t)(lp - v));
			size_t cl = rp ? (size_t)(rp - lp - 1)
			               : vlen - (size_t)(lp + 1 - v);

			c->cur->diagnostic = dsn_keep_clean(r, lp + 1, cl);
			c->status_comment = c->cur->diagnostic;
		}
	} else if (fname_is(name, nlen, "Diagnostic-Code")) {
		const char *semi = memchr(v, ';', vlen);

		if (semi != NULL && semi - v < 16 &&
		    memchr(v, ' ', (size_t)(semi - v)) == NULL) {
			if (c->cur->diagnostic_type == NULL && semi > v) {
				char *t = dsn_clean(v, (size_t)(semi - v));

				ascii_lower(t);
				c->cur->diagnostic_type = dsn_keep(r, t);
			}
			vlen -= (size_t)(semi + 1 - v);
			v = semi + 1;
		}
		if (c->cur->diagnostic == NULL ||
		    c->cur->diagnostic == c->status_comment)
			c->cur->diagnostic = dsn_keep_clean(r, v,
			    vlen > DSN_DIAG_CAP ? DSN_DIAG_CAP : vlen);
	} else if (fname_is(name, nlen, "Remote-MTA")) {
		const char *semi = memchr(v, ';', vlen);

		if (semi != NULL) {
			vlen -= (size_t)(semi + 1 - v);
			v = semi + 1;
		}
		if (c->cur->remote_mta == NULL)
			c->cur->remote_mta = dsn_keep_clean(r, v, vlen);
	} else if (fname_is(name, nlen, "Last-Attempt-Date")) {
		char *d = xstrndup(v, vlen);

		c->cur->date = dsn_parse_date(d);
		free(d);
	} else if (fname_is(name, nlen, "X-Actual-Recipient")) {
		if (c->cur->final_recipient == NULL ||
		    c->cur->final_recipient[0] == '\0') {
			const char *a = keep_addr_field(r, v, vlen);

			if (a != NULL)
				c->cur->final_recipient = a;
		}
	}
}

static void
ds_field(void *vctx, const char *name, size_t nlen, const char *v, size_t vlen)
{
	struct ds_ctx *c = vctx;
	struct dsn_report *r = c->r;
	int addr_final, addr_orig;

	if (name == NULL) {
		c->cur = NULL;
		c->status_comment = NULL;
		return;
	}
	if (fname_is(name, nlen, "Reporting-MTA")) {
		if (r->rec.reporting_mta == NULL) {
			const char *semi = memchr(v, ';', vlen);

			if (semi != NULL) {
				vlen -= (size_t)(semi + 1 - v);
				v = semi + 1;
			}
			r->rec.reporting_mta = dsn_keep_clean(r, v, vlen);
		}
		return;
	}
	if (fname_is(name, nlen, "Arrival-Date")) {
		char *d = xstrndup(v, vlen);

		c->arrival = dsn_parse_date(d);
		free(d);
		return;
	}
	addr_final = fname_is(name, nlen, "Final-Recipient");
	addr_orig = fname_is(name, nlen, "Original-Recipient");
	if (addr_final || addr_orig) {
		const char *a = keep_addr_field(r, v, vlen);

		if (c->cur != NULL &&
		    ((addr_final && c->cur->final_recipient != NULL) ||
		        (addr_orig && c->cur->original_recipient != NULL)))
			c->cur = NULL;
		if (c->cur == NULL)
			c->cur = dsn_add_rcpt(r);
		if (c->cur == NULL)
			return;
		if (addr_final)
			c->cur->final_recipient = a ? a : "";
		else
			c->cur->original_recipient = a ? a : "";
		return;
	}
	if (!(fname_is(name, nlen, "Action") ||
	        fname_is(name, nlen, "Status") ||
	        fname_is(name, nlen, "Diagnostic-Code") ||
	        fname_is(name, nlen, "Remote-MTA") ||
	        fname_is(name, nlen, "Last-Attempt-Date") ||
	        fname_is(name, nlen, "X-Actual-Recipient")))
		return;
	if (c->cur == NULL)
		c->cur = dsn_add_rcpt(r);
	if (c->cur == NULL)
		return;
	ds_rcpt_field(c, name, nlen, v, vlen);
}

/* Parses delivery-status text; returns the number of recipients added. */
size_t
dsn_parse_ds(struct dsn_report *r, const char *s, size_t len)
{
	struct ds_ctx c;
	size_t i, j, added;

	memset(&c, 0, sizeof(c));
	c.r = r;
	c.first = r->rec.nrcpts;
	dsn_fields(s, len, 0, ds_field, &c);
	/* drop groups without any address */
	for (i = j = c.first; i < r->rec.nrcpts; i++) {
		struct record_rcpt *rc = &r->rec.rcpts[i];

		if ((rc->final_recipient == NULL ||
		        rc->final_recipient[0] == '\0') &&
		    (rc->original_recipient == NULL ||
		        rc->original_recipient[0] == '\0'))
			continue;
		if (rc->final_recipient != NULL &&
		    rc->final_recipient[0] == '\0')
			rc->final_recipient = NULL;
		if (rc->original_recipient != NULL &&
		    rc->original_recipient[0] == '\0')
			rc->original_recipient = NULL;
		if (rc->date == 0)
			rc->date = c.arrival;
		if (i != j)
			r->rec.rcpts[j] = *rc;
		j++;
	}
	added = j - c.first;
	r->rec.nrcpts = j;
	return added;
}

/* ---- feedback reports (RFC 5965) ---- */

struct fb_ctx {
	struct dsn_report *r;
	const char *type;
	const char *rcpts[64];
	size_t n;
	int64_t arrival;
};

static void
fb_field(void *vctx, const char *name, size_t nlen, const char *v, size_t vlen)
{
	struct fb_ctx *c = vctx;

	if (name == NULL)
		return;
	if (fname_is(name, nlen, "Feedback-Type")) {
		if (c->type == NULL) {
			char *t = dsn_clean(v, vlen);

			ascii_lower(t);
			c->type = dsn_keep(c->r, t);
		}
	} else if (fname_is(name, nlen, "Original-Rcpt-To") ||
	    fname_is(name, nlen, "Removal-Recipient")) {
		const char *a = keep_addr_field(c->r, v, vlen);

		if (a != NULL && c->n < sizeof(c->rcpts) / sizeof(c->rcpts[0]))
			c->rcpts[c->n++] = a;
	} else if (fname_is(name, nlen, "Arrival-Date") ||
	    fname_is(name, nlen, "Received-Date")) {
		char *d = xstrndup(v, vlen);

		if (c->arrival == 0)
			c->arrival = dsn_parse_date(d);
		free(d);
	} else if (fname_is(name, nlen, "Reporting-MTA")) {
		if (c->r->rec.reporting_mta == NULL)
			c->r->rec.reporting_mta = dsn_keep_clean(c->r, v, vlen);
	}
}

void
dsn_feedback(struct dsn_report *r, const char *fb, size_t len)
{
	struct fb_ctx fc;
	size_t i;

	memset(&fc, 0, sizeof(fc));
	fc.r = r;
	if (len > 0)
		dsn_fields(fb, len, 0, fb_field, &fc);
	if (fc.n == 0) {
		const char *to = record_orig_header(&r->rec, "To");
		size_t pos = 0, st;
		char a[DSN_ADDR_MAX];

		while (to != NULL && fc.n < 64 &&
		    dsn_next_addr(to, strlen(to), &pos, &st, a))
			fc.rcpts[fc.n++] = dsn_keep(r, xstrdup(a));
	}
	r->rec.kind = RECORD_KIND_COMPLAINT;
	for (i = 0; i < fc.n; i++) {
		struct record_rcpt *x = dsn_add_rcpt(r);

		if (x == NULL)
			break;
		x->original_recipient = fc.rcpts[i];
		x->final_recipient = fc.rcpts[i];
		x->feedback_type = fc.type ? fc.type : "other";
		x->date = fc.arrival;
	}
}

/* ---- original message headers ---- */

static const char *const orig_names[] = {"Message-ID", "From", "To", "Subject",
    "List-Id"};

struct oh_ctx {
	struct dsn_report *r;
	const struct dsn_options *opt;
	size_t nfields;
};

static void
orig_set(struct dsn_report *r, const struct dsn_options *opt, const char *name,
    size_t nlen, const char *v, size_t vlen)
{
	size_t i, nstd = sizeof(orig_names) / sizeof(orig_names[0]);
	const char *canon = NULL;
	int rank = 0;

	for (i = 0; i < nstd && canon == NULL; i++)
		if (fname_is(name, nlen, orig_names[i])) {
			canon = orig_names[i];
			rank = (int)i;
		}
	for (i = 0; canon == NULL && opt != NULL && i < opt->nheaders; i++)
		if (opt->headers[i] != NULL &&
		    fname_is(name, nlen, opt->headers[i])) {
			canon = opt->headers[i];
			rank = (int)(nstd + i);
		}
	if (canon == NULL || record_orig_header(&r->rec, canon) != NULL)
		return;
	{
		size_t cap = vlen > 4096 ? 4096 : vlen;
		const char *kept;

		if (memmem(v, cap, "=?", 2) != NULL) {
			/* RFC 2047 encoded words */
			char *raw = xstrndup(v, cap);
			char *dec = g_mime_utils_header_decode_text(NULL, raw);

			kept = dsn_keep_clean(r, dec, strlen(dec));
			g_free(dec);
			free(raw);
		} else
			kept = dsn_keep_clean(r, v, cap);
		if (kept == NULL)
			return;
		if ((size_t)rank >= nstd)
			canon = dsn_keep(r, xstrdup(canon));
		dsn_add_orig_header(r, canon, rank, kept);
	}
}

static void
oh_field(void *vctx, const char *name, size_t nlen, const char *v, size_t vlen)
{
	struct oh_ctx *c = vctx;

	if (name == NULL)
		return;
	c->nfields++;
	orig_set(c->r, c->opt, name, nlen, v, vlen);
}

/* Reads a header block from text; returns the count of fields seen. */
size_t
dsn_orig_from_text(struct dsn_report *r, const struct dsn_options *opt,
    const char *s, size_t len)
{
	struct oh_ctx c;

	memset(&c, 0, sizeof(c));
	c.r = r;
	c.opt = opt;
	if (len > DSN_HDR_CAP)
		len = DSN_HDR_CAP;
	dsn_fields(s, len, 1, oh_field, &c);
	return c.nfields;
}

void
dsn_orig_from_message(struct dsn_report *r, const struct dsn_options *opt,
    GMimeMessage *m)
{
	GMimeHeaderList *hl = g_mime_object_get_header_list(GMIME_OBJECT(m));
	int i, n = hl ? g_mime_header_list_get_count(hl) : 0;

	for (i = 0; i < n && i < 512; i++) {
		GMimeHeader *h = g_mime_header_list_get_header_at(hl, i);
		const char *name = g_mime_header_get_name(h);
		const char *raw = g_mime_header_get_raw_value(h);

		if (name == NULL || raw == NULL)
			continue;
		orig_set(r, opt, name, strlen(name), raw, strlen(raw));
	}
}
