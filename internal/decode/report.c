/*
 * report.c - the report under construction: the exchange record the
 * decoder fills (record.h), the store that owns every string it points
 * to, recipients and returned headers added in their documented order,
 * and the report's release.  The lowest layer of the decoder: it calls
 * nothing of dsn.c or dsn_text.c.
 */
#include "decode/report.h"

#include <stdlib.h>
#include <string.h>

const char *
dsn_keep(struct dsn_report *r, char *s)
{
	if (s == NULL)
		return NULL;
	if (r->npool == r->apool) {
		r->apool = r->apool ? r->apool * 2 : 32;
		r->pool = xrealloc(r->pool, r->apool * sizeof(*r->pool));
	}
	r->pool[r->npool++] = s;
	return s;
}

/* Copies n bytes as valid, single-line UTF-8: control characters and runs
 * of white space become one space, the ends are trimmed. */
char *
dsn_clean(const char *s, size_t n)
{
	const char *end;
	char *out, *o;
	int sp = 0;

	if (s == NULL)
		return NULL;
	out = xmalloc(n * 3 + 1);
	o = out;
	while (n > 0) {
		gunichar c;
		size_t l;

		if ((unsigned char)*s > ' ' && (unsigned char)*s < 0x7f) {
			/* a run of printable ASCII, copied as it is */
			for (l = 1; l < n && (unsigned char)s[l] > ' ' &&
			     (unsigned char)s[l] < 0x7f;
			     l++)
				;
			memcpy(o, s, l);
			o += l;
			sp = 0;
			s += l;
			n -= l;
			continue;
		}
		c = g_utf8_get_char_validated(s, (gssize)n);

		if (c == (gunichar)-1 || c == (gunichar)-2) {
			/* not UTF-8: the byte is read as ISO-8859-1, the
			 * usual charset of unlabelled 8-bit text */
			unsigned char b = (unsigned char)*s;

			if (b < 0x80) {
				*o++ = '?';
			} else {
				*o++ = (char)(0xc0 | (b >> 6));
				*o++ = (char)(0x80 | (b & 0x3f));
			}
			sp = 0;
			s++;
			n--;
			continue;
		}
		end = g_utf8_next_char(s);
		l = (size_t)(end - s);
		if (l > n)
			l = n;
		if (c < 0x20 || c == 0x7f || c == ' ' || c == 0xa0) {
			if (!sp && o > out)
				*o++ = ' ';
			sp = 1;
		} else {
			memcpy(o, s, l);
			o += l;
			sp = 0;
		}
		s += l;
		n -= l;
	}
	while (o > out && o[-1] == ' ')
		o--;
	*o = '\0';
	return out;
}

const char *
dsn_keep_clean(struct dsn_report *r, const char *s, size_t n)
{
	char *c = dsn_clean(s, n);

	if (c[0] == '\0') {
		free(c);
		return NULL;
	}
	return dsn_keep(r, c);
}

struct record_rcpt *
dsn_add_rcpt(struct dsn_report *r)
{
	struct record_rcpt *rc;

	if (r->rec.nrcpts >= DSN_MAX_RCPTS)
		return NULL;
	if (r->rec.nrcpts == r->arcpt) {
		r->arcpt = r->arcpt ? r->arcpt * 2 : 4;
		r->rec.rcpts =
		    xrealloc(r->rec.rcpts, r->arcpt * sizeof(*r->rec.rcpts));
	}
	rc = &r->rec.rcpts[r->rec.nrcpts++];
	memset(rc, 0, sizeof(*rc));
	return rc;
}

/* Keeps the headers in the documented order: Message-ID, From, To,
 * Subject, List-Id, then the configured names (rank). */
void
dsn_add_orig_header(struct dsn_report *r, const char *name, int rank,
    const char *value)
{
	size_t i, at;

	if (value == NULL || value[0] == '\0')
		return;
	for (i = 0; i < r->rec.norig_headers; i++)
		if (ascii_casecmp(r->rec.orig_headers[i].name, name) == 0)
			return;
	if (r->rec.norig_headers == r->ahdr) {
		r->ahdr = r->ahdr ? r->ahdr * 2 : 8;
		r->rec.orig_headers = xrealloc(r->rec.orig_headers,
		    r->ahdr * sizeof(*r->rec.orig_headers));
		r->hrank = xrealloc(r->hrank, r->ahdr * sizeof(*r->hrank));
	}
	for (at = r->rec.norig_headers; at > 0 && r->hrank[at - 1] > rank;
	     at--) {
		r->rec.orig_headers[at] = r->rec.orig_headers[at - 1];
		r->hrank[at] = r->hrank[at - 1];
	}
	r->rec.orig_headers[at].name = name;
	r->rec.orig_headers[at].value = value;
	r->hrank[at] = rank;
	r->rec.norig_headers++;
}

/* Moves the recipients, headers and strings of an inner report (a bounce
 * forwarded as an attachment) into r; frees the inner shell. */
void
dsn_adopt(struct dsn_report *r, struct dsn_report *in)
{
	size_t i;

	r->rec.kind = in->rec.kind;
	r->rec.mta = in->rec.mta;
	r->rec.reporting_mta = in->rec.reporting_mta;
	free(r->rec.rcpts);
	r->rec.rcpts = in->rec.rcpts;
	r->rec.nrcpts = in->rec.nrcpts;
	r->arcpt = in->arcpt;
	free(r->rec.orig_headers);
	r->rec.orig_headers = in->rec.orig_headers;
	r->rec.norig_headers = in->rec.norig_headers;
	free(r->hrank);
	r->hrank = in->hrank;
	r->ahdr = in->ahdr;
	for (i = 0; i < in->npool; i++)
		dsn_keep(r, in->pool[i]);
	free(in->pool);
	free(in);
}

void
dsn_free(struct dsn_report **rp)
{
	struct dsn_report *r;
	size_t i;

	if (rp == NULL || *rp == NULL)
		return;
	r = *rp;
	for (i = 0; i < r->npool; i++)
		free(r->pool[i]);
	free(r->pool);
	free(r->rec.rcpts);
	free(r->rec.orig_headers);
	free(r->hrank);
	free(r);
	*rp = NULL;
}
