/*
 * dsn.c - decode one raw message into a bounce report with GMime 3.
 * RFC 3464 / RFC 6533 delivery-status groups, RFC 5965 feedback reports and
 * RFC 3834 auto-replies are read from their MIME parts; the plain-text
 * bounces of other MTAs are handled by dsn_text.c.  Every scan is bounded
 * (text caps, recipient cap, no backtracking).  The report owns all strings.
 */
#include "decode/dsn.h"
#include "decode/dsn_int.h"
#include "decode/eol.h"
#include "decode/hdrcap.h"

#include <gmime/gmime.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define DS_CAP (64 * 1024)
#define HDR_CAP (32 * 1024)
#define MAX_DEPTH 12
#define MAX_PARTS 256

static pthread_once_t gmime_once = PTHREAD_ONCE_INIT;

static void
gmime_setup(void)
{
	g_mime_init();
}

/* ---- report storage ---- */

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

	if (r->nrcpt >= DSN_MAX_RCPTS)
		return NULL;
	if (r->nrcpt == r->arcpt) {
		r->arcpt = r->arcpt ? r->arcpt * 2 : 4;
		r->rcpts = xrealloc(r->rcpts, r->arcpt * sizeof(*r->rcpts));
	}
	rc = &r->rcpts[r->nrcpt++];
	memset(rc, 0, sizeof(*rc));
	return rc;
}

/* Keeps the headers in the documented order: Message-ID, From, To,
 * Subject, List-Id, then the configured names (rank). */
static void
add_orig_header(struct dsn_report *r, const char *name, int rank,
    const char *value)
{
	size_t i, at;

	if (value == NULL || value[0] == '\0')
		return;
	for (i = 0; i < r->nhdr; i++)
		if (ascii_casecmp(r->hdrs[i].name, name) == 0)
			return;
	if (r->nhdr == r->ahdr) {
		r->ahdr = r->ahdr ? r->ahdr * 2 : 8;
		r->hdrs = xrealloc(r->hdrs, r->ahdr * sizeof(*r->hdrs));
	}
	for (at = r->nhdr; at > 0 && r->hdrs[at - 1].rank > rank; at--)
		r->hdrs[at] = r->hdrs[at - 1];
	r->hdrs[at].name = name;
	r->hdrs[at].value = value;
	r->hdrs[at].rank = rank;
	r->nhdr++;
}

/* ---- small scanners ---- */

static int
is_local_char(unsigned char c, int utf8)
{
	/* bytes >= 0x80: UTF-8 addresses (RFC 6531) */
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || (utf8 && c >= 0x80) ||
	    (c != 0 && strchr(".!#$%&'*+/=?^_`{|}~-", c) != NULL);
}

static int
is_domain_char(unsigned char c, int utf8)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_' ||
	    (utf8 && c >= 0x80);
}

/* Finds the next address in s[*pos..len); 1 and out filled (lower-case),
 * start/end of the match in *mstart / *pos; 0 when none.  Linear: each
 * byte is examined a bounded number of times. */
static int
next_addr(const char *s, size_t len, size_t *pos, size_t *mstart,
    char out[DSN_ADDR_MAX], int utf8)
{
	size_t i = *pos;

	while (i < len) {
		const char *at = memchr(s + i, '@', len - i);
		size_t a, l, d, dend, dots = 0;

		if (at == NULL)
			break;
		a = (size_t)(at - s);
		l = a;
		while (l > i && l > 0 && a - l < 128 &&
		    is_local_char((unsigned char)s[l - 1], utf8))
			l--;
		while (l < a && s[l] == '.')
			l++;
		d = a + 1;
		dend = d;
		while (dend < len && dend - d < 255 &&
		    is_domain_char((unsigned char)s[dend], utf8)) {
			if (s[dend] == '.')
				dots++;
			dend++;
		}
		while (dend > d && (s[dend - 1] == '.' || s[dend - 1] == '-')) {
			if (s[dend - 1] == '.')
				dots--;
			dend--;
		}
		if (l < a && dend > d && dots > 0 && s[d] != '.' &&
		    s[d] != '-' && (a - l) + 1 + (dend - d) < DSN_ADDR_MAX) {
			size_t n = 0, k;

			for (k = l; k < dend; k++) {
				char c = s[k];

				if (c >= 'A' && c <= 'Z')
					c = (char)(c - 'A' + 'a');
				out[n++] = c;
			}
			out[n] = '\0';
			*mstart = l;
			*pos = dend;
			return 1;
		}
		i = a + 1;
	}
	*pos = len;
	return 0;
}

/* ASCII addresses in free text (a UTF-8 letter before an address in
 * Japanese or Chinese prose is not part of it). */
int
dsn_next_addr(const char *s, size_t len, size_t *pos, size_t *mstart,
    char out[DSN_ADDR_MAX])
{
	return next_addr(s, len, pos, mstart, out, 0);
}

/* First address in a string, or 0. */
int
dsn_first_addr(const char *s, size_t len, char out[DSN_ADDR_MAX])
{
	size_t pos = 0, st;

	return dsn_next_addr(s, len, &pos, &st, out);
}

static int
isdig(char c)
{
	return c >= '0' && c <= '9';
}

/* Status code "X.Y.Z" at s (class 2/4/5, parts of 1-3 digits), bounded
 * by a non-digit/non-dot on both sides.  Returns its length or 0. */
static size_t
status_at(const char *s, size_t n, char out[16])
{
	size_t i = 0, p, part;

	if (n < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
		return 0;
	i = 2;
	for (part = 0; part < 2; part++) {
		p = i;
		while (i < n && isdig(s[i]) && i - p < 4)
			i++;
		if (i == p || i - p > 3)
			return 0;
		if (part == 0) {
			if (i >= n || s[i] != '.')
				return 0;
			i++;
		}
	}
	if (i < n &&
	    (isdig(s[i]) || (s[i] == '.' && i + 1 < n && isdig(s[i + 1]))))
		return 0;
	memcpy(out, s, i);
	out[i] = '\0';
	return i;
}

/* First status code of a failure class (4 or 5), else the first 2.x.x. */
int
dsn_find_status(const char *s, size_t n, char out[16])
{
	char ok[16] = "";
	size_t i;
	int have_ok = 0;

	for (i = 0; i + 5 <= n; i++) {
		if (i > 0 && (isdig(s[i - 1]) || s[i - 1] == '.'))
			continue;
		if (status_at(s + i, n - i, out)) {
			if (out[0] != '2')
				return 1;
			if (!have_ok)
				memcpy(ok, out, sizeof(ok));
			have_ok = 1;
		}
	}
	if (have_ok)
		memcpy(out, ok, sizeof(ok));
	return have_ok;
}

static inline int
reply_at(const char *s, size_t n, size_t i)
{
	char c = s[i], p, f;

	/* called for every byte of a diagnostic: the common "no" first */
	if (c != '2' && c != '4' && c != '5')
		return 0;
	p = i > 0 ? s[i - 1] : ' ';
	f = i + 3 < n ? s[i + 3] : ' ';
	if (i + 3 > n || !isdig(s[i + 1]) || !isdig(s[i + 2]) || s[i + 1] > '5')
		return 0;
	if (g_ascii_isalnum(p) || strchr(".#-/=_", p) != NULL)
		return 0;
	if (strchr(" -']):\",\"\t\r\n", f) == NULL)
		return 0;
	if (f == ':' && i + 4 < n && isdig(s[i + 4]))
		return 0; /* a time of day */
	if (f == ' ' && i + 4 < n && isdig(s[i + 4]) &&
	    !(i + 5 < n && s[i + 5] == '.'))
		return 0; /* a number followed by another number */
	return (c - '0') * 100 + (s[i + 1] - '0') * 10 + (s[i + 2] - '0');
}

/* The server's own answer in a diagnostic: a 4xx/5xx reply code directly
 * followed by a status ("550 5.7.1", "550-5.2.2", "550: 5.1.1").  Returns
 * the reply code (status in out) or 0. */
static int
reply_status_pair(const char *s, size_t n, char out[16])
{
	size_t i;

	for (i = 0; i + 3 <= n; i++) {
		int c = reply_at(s, n, i);
		size_t j = i + 3, k;

		if (c < 400)
			continue;
		for (k = 0; k < 3 && j < n && strchr(" -:'#", s[j]) != NULL;
		     k++)
			j++;
		if (j < n && status_at(s + j, n - j, out) && out[0] == s[i])
			return c;
	}
	return 0;
}

/* SMTP reply code: 3 digits [245]xx standing alone, not part of a status
 * code or a number; the first failure (4xx/5xx) wins over a 2xx. */
int
dsn_find_reply(const char *s, size_t n)
{
	size_t i;
	int ok = 0;

	for (i = 0; i + 3 <= n; i++) {
		int c = reply_at(s, n, i);

		if (c >= 400)
			return c;
		if (c != 0 && ok == 0)
			ok = c;
	}
	return ok;
}

int64_t
dsn_parse_date(const char *s)
{
	GDateTime *dt;
	int64_t t;

	if (s == NULL || s[0] == '\0')
		return 0;
	dt = g_mime_utils_header_decode_date(s);
	if (dt == NULL)
		return 0;
	t = g_date_time_to_unix(dt);
	g_date_time_unref(dt);
	return t > 0 ? t : 0;
}

/* ---- header-like field groups (RFC 3464 section 2.1, RFC 5965) ---- */

/* Calls cb for each unfolded field; name NULL marks a group boundary
 * (blank line).  Returns how many bytes were consumed: stop_at_blank
 * stops after the first blank line that follows a field. */
size_t
dsn_fields(const char *s, size_t len, int stop_at_blank,
    void (*cb)(void *ctx, const char *name, size_t nlen, const char *value,
        size_t vlen),
    void *ctx)
{
	struct buf val;
	const char *name = NULL;
	size_t nlen = 0, i = 0, seen = 0;

	buf_init(&val, 8192);
	while (i < len) {
		const char *line = s + i, *nl = memchr(line, '\n', len - i);
		size_t ll = nl ? (size_t)(nl - line) : len - i, k;

		i += ll + (nl ? 1 : 0);
		if (ll > 0 && line[ll - 1] == '\r')
			ll--;
		if ((ll > 0 && (line[0] == ' ' || line[0] == '\t')) &&
		    name != NULL) {
			buf_append(&val, " ", 1);
			buf_append(&val, line, ll);
			continue;
		}
		if (name != NULL) {
			cb(ctx, name, nlen, val.data ? val.data : "", val.len);
			name = NULL;
		}
		buf_reset(&val);
		if (ll == 0 || (ll == 1 && line[0] == ' ')) {
			cb(ctx, NULL, 0, NULL, 0);
			if (stop_at_blank && seen)
				break;
			continue;
		}
		for (k = 0; k < ll && k < 64; k++)
			if (!(g_ascii_isalnum(line[k]) || line[k] == '-' ||
			        line[k] == '_'))
				break;
		if (k == 0 || k >= ll || line[k] != ':') {
			if (stop_at_blank && seen)
				break;
			continue;
		}
		name = line;
		nlen = k;
		seen++;
		k++;
		while (k < ll && (line[k] == ' ' || line[k] == '\t'))
			k++;
		buf_append(&val, line + k, ll - k);
	}
	if (name != NULL)
		cb(ctx, name, nlen, val.data ? val.data : "", val.len);
	buf_free(&val);
	return i;
}

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
	if (!next_addr(v, vlen, &pos, &st, a, 1))
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
		if (r->reporting_mta == NULL) {
			const char *semi = memchr(v, ';', vlen);

			if (semi != NULL) {
				vlen -= (size_t)(semi + 1 - v);
				v = semi + 1;
			}
			r->reporting_mta = dsn_keep_clean(r, v, vlen);
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

/* Parses delivery-status text; returns the number of recipients added. */
size_t
dsn_parse_ds(struct dsn_report *r, const char *s, size_t len)
{
	struct ds_ctx c;
	size_t i, j, added;

	memset(&c, 0, sizeof(c));
	c.r = r;
	c.first = r->nrcpt;
	dsn_fields(s, len, 0, ds_field, &c);
	/* drop groups without any address */
	for (i = j = c.first; i < r->nrcpt; i++) {
		struct record_rcpt *rc = &r->rcpts[i];

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
			r->rcpts[j] = *rc;
		j++;
	}
	added = j - c.first;
	r->nrcpt = j;
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
		if (c->r->reporting_mta == NULL)
			c->r->reporting_mta = dsn_keep_clean(c->r, v, vlen);
	}
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
char *
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
	if (canon == NULL || dsn_orig_header(r, canon) != NULL)
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
		add_orig_header(r, canon, rank, kept);
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
	if (len > HDR_CAP)
		len = HDR_CAP;
	dsn_fields(s, len, 1, oh_field, &c);
	return c.nfields;
}

static void
orig_from_message(struct dsn_report *r, const struct dsn_options *opt,
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

	for (i = 0; i < sizeof(names) / sizeof(names[0]) && !r->verp; i++) {
		GMimeHeaderList *hl = g_mime_object_get_header_list(top);
		int j, n = hl ? g_mime_header_list_get_count(hl) : 0;

		for (j = 0; j < n && j < 512 && !r->verp; j++) {
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
			while (!r->verp && dsn_next_addr(v, vl, &pos, &st, a)) {
				if (pat != NULL)
					r->verp = verp_decode(r, pat, a);
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
			buf_add_part(&w->orighdr, obj, HDR_CAP);
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

/* Sets recipient/recipient_source, reply code, status fallback, date and
 * the classification of every recipient. */
static void
finish(struct dsn_report *r, const struct dsn_options *opt)
{
	size_t i, k;

	for (i = 0; i < r->nrcpt; i++) {
		struct record_rcpt *rc = &r->rcpts[i];
		struct classify_input in;
		struct classify_result res;
		const char *kind;
		char st[16];

		if (rc->diagnostic != NULL) {
			size_t dl = strlen(rc->diagnostic);
			int pc = reply_status_pair(rc->diagnostic, dl, st);

			/* the remote server's code is more precise than a
			 * generic Status field */
			if (pc != 0) {
				if (rc->reply_code == 0)
					rc->reply_code = pc;
				if (strcmp(st + 1, ".0.0") != 0 &&
				    (rc->status == NULL ||
				        strcmp(rc->status, st) != 0))
					rc->status = dsn_keep(r, xstrdup(st));
			}

			/* an x-unix diagnostic holds a program's exit
			 * status ("255"), never an SMTP reply */
			if (rc->reply_code == 0 &&
			    !(rc->diagnostic_type != NULL &&
			        strcmp(rc->diagnostic_type, "x-unix") == 0))
				rc->reply_code =
				    dsn_find_reply(rc->diagnostic, dl);
			if (rc->status == NULL &&
			    dsn_find_status(rc->diagnostic, dl, st))
				rc->status = dsn_keep(r, xstrdup(st));
		}
		if (rc->date == 0)
			rc->date = r->date;
		rc->recipient = NULL;
		/* a VERP address names one recipient: with several in the
		 * report it applies to the one it matches */
		if (r->verp != NULL && r->kind != RECORD_KIND_AUTOREPLY &&
		    (r->nrcpt == 1 ||
		        (rc->final_recipient != NULL &&
		            strcmp(rc->final_recipient, r->verp) == 0) ||
		        (rc->original_recipient != NULL &&
		            strcmp(rc->original_recipient, r->verp) == 0))) {
			rc->recipient = r->verp;
			rc->recipient_source = "verp";
		}
		for (k = 0;
		     rc->recipient == NULL && opt != NULL && k < opt->nheaders;
		     k++) {
			const char *v;
			char a[DSN_ADDR_MAX];

			if (opt->headers[k] == NULL)
				continue;
			v = dsn_orig_header(r, opt->headers[k]);
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
		kind = record_kind_name(r->kind);
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
		in.mta = r->mta;
		in.subject = r->subject;
		if (rc->smtp_command == NULL && rc->diagnostic != NULL)
			rc->smtp_command = dsn_find_command(rc->diagnostic,
			    strlen(rc->diagnostic));
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
		rc->rule_phrase =
		    res.phrase ? dsn_keep(r, xstrdup(res.phrase)) : NULL;
		memcpy(rc->rule_status, res.status, sizeof(rc->rule_status));
		rc->rule_reply = res.reply;
		rc->rule_command = res.command;
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

/* Moves the recipients, headers and strings of an inner report (a bounce
 * forwarded as an attachment) into r; frees the inner shell. */
static void
adopt(struct dsn_report *r, struct dsn_report *in)
{
	size_t i;

	r->kind = in->kind;
	r->mta = in->mta;
	r->reporting_mta = in->reporting_mta;
	free(r->rcpts);
	r->rcpts = in->rcpts;
	r->nrcpt = in->nrcpt;
	r->arcpt = in->arcpt;
	free(r->hdrs);
	r->hdrs = in->hdrs;
	r->nhdr = in->nhdr;
	r->ahdr = in->ahdr;
	for (i = 0; i < in->npool; i++)
		dsn_keep(r, in->pool[i]);
	free(in->pool);
	free(in);
}

static int parse_depth(const char *msg, size_t len, int truncated,
    const struct dsn_options *opt, struct dsn_report **out, struct err *err,
    int depth);

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

static int
parse_depth(const char *msg, size_t len, int truncated,
    const struct dsn_options *opt, struct dsn_report **out, struct err *err,
    int depth)
{
	struct dsn_report *r = NULL;
	GMimeStream *stream = NULL;
	GMimeParser *parser = NULL;
	GMimeMessage *m = NULL;
	GMimeObject *top;
	struct dsn_top th;
	struct walk w;
	const char *v;
	char *capped = NULL;
	int rc = -1, ds_part;
	size_t i, body_off = 0;

	memset(&w, 0, sizeof(w));
	buf_init(&w.ds, DS_CAP);
	buf_init(&w.fb, DS_CAP);
	buf_init(&w.text, DSN_TEXT_CAP);
	buf_init(&w.html, DSN_TEXT_CAP);
	buf_init(&w.orighdr, HDR_CAP);
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
	r->truncated = truncated ? 1 : 0;
	if (len == 0) {
		rc = 0;
		goto out;
	}
	/* GMime keeps every header it reads: a header folded a million
	 * times costs many times the message; it reads a copy cut to the
	 * bounds of hdrcap.h, and the report says it was cut */
	if (hdrcap(msg, len, &capped, &len) == 1) {
		msg = capped;
		r->truncated = 1;
	}
	stream = g_mime_stream_mem_new_with_buffer(msg, len);
	parser = g_mime_parser_new_with_stream(stream);
	g_mime_parser_set_format(parser, GMIME_FORMAT_MESSAGE);
	m = g_mime_parser_construct_message(parser, NULL);
	if (m == NULL) {
		rc = 0;
		goto out;
	}
	top = GMIME_OBJECT(m);
	body_off = body_offset(msg, len);
	read_top(top, &th);
	v = th.v[DH_SUBJECT];
	if (v != NULL && strstr(v, "=?") != NULL) {
		char *dec = g_mime_utils_header_decode_text(NULL, v);

		r->subject = dsn_keep_clean(r, dec, strlen(dec));
		g_free(dec);
	} else if (v != NULL)
		r->subject = dsn_keep_clean(r, v, strlen(v));
	v = th.v[DH_DATE];
	if (v != NULL)
		r->date = dsn_parse_date(v);
	find_verp(r, top, opt != NULL ? opt->verp_pattern : NULL);
	w.r = r;
	w.opt = opt;
	walk_obj(&w, g_mime_message_get_mime_part(m), 0);
	if (w.text.len == 0 && w.html.len > 0)
		html_to_text(w.html.data, w.html.len, &w.text);

	if (w.orig != NULL)
		orig_from_message(r, opt, w.orig);
	else if (w.orighdr.len > 0)
		dsn_orig_from_text(r, opt, w.orighdr.data, w.orighdr.len);

	/* Microsoft JMRP: the complained-about message alone, naming its
	 * recipient in X-HmXmrOriginalRecipient */
	if (w.fb.len == 0 && w.ds.len == 0 && w.orig != NULL) {
		v = g_mime_object_get_header(GMIME_OBJECT(w.orig),
		    "X-HmXmrOriginalRecipient");
		if (v != NULL) {
			char a[DSN_ADDR_MAX];
			struct record_rcpt *x;

			if (dsn_first_addr(v, strlen(v), a) &&
			    (x = dsn_add_rcpt(r)) != NULL) {
				x->final_recipient = dsn_keep(r, xstrdup(a));
				x->feedback_type = "abuse";
				r->kind = RECORD_KIND_COMPLAINT;
				r->mta = "jmrp";
			}
			rc = 0;
			goto classify_out;
		}
	}
	/* RFC 5965 feedback report */
	if (w.fb.len > 0 || w.report_fb) {
		struct fb_ctx fc;

		memset(&fc, 0, sizeof(fc));
		fc.r = r;
		if (w.fb.len > 0)
			dsn_fields(w.fb.data, w.fb.len, 0, fb_field, &fc);
		if (fc.n == 0) {
			const char *to = dsn_orig_header(r, "To");
			size_t pos = 0, st;
			char a[DSN_ADDR_MAX];

			while (to != NULL && fc.n < 64 &&
			    dsn_next_addr(to, strlen(to), &pos, &st, a))
				fc.rcpts[fc.n++] = dsn_keep(r, xstrdup(a));
		}
		r->kind = RECORD_KIND_COMPLAINT;
		for (i = 0; i < fc.n; i++) {
			struct record_rcpt *x = dsn_add_rcpt(r);

			if (x == NULL)
				break;
			x->original_recipient = fc.rcpts[i];
			x->final_recipient = fc.rcpts[i];
			x->feedback_type = fc.type ? fc.type : "other";
			x->date = fc.arrival;
		}
		rc = 0;
		goto classify_out;
	}
	/* a message disposition notification (read receipt) says the
	 * message arrived: not a bounce, whatever fields it carries */
	if (w.report_mdn && w.ds.len == 0) {
		rc = 0;
		goto classify_out;
	}
	ds_part = w.ds.len > 0;
	if (w.ds.len == 0)
		raw_ds(&w.ds, msg, len, body_off);
	/* no text part: the raw body is the text, unless the message has a
	 * delivery-status part of its own (an empty human-readable part then
	 * means no words, not the report's fields) */
	if (w.text.len == 0 && body_off < len && !ds_part)
		buf_append(&w.text, msg + body_off,
		    len - body_off > DSN_TEXT_CAP ? DSN_TEXT_CAP
		                                  : len - body_off);
	if (w.ds.len > 0 && dsn_parse_ds(r, w.ds.data, w.ds.len) > 0) {
		int failed = 0, delayed = 0;

		for (i = 0; i < r->nrcpt; i++) {
			const char *a = r->rcpts[i].action;

			if (a == NULL || strcmp(a, "failed") == 0)
				failed++;
			else if (strcmp(a, "delayed") == 0)
				delayed++;
		}
		r->kind = failed ? RECORD_KIND_BOUNCE
		    : delayed    ? RECORD_KIND_DELAYED
		                 : RECORD_KIND_DELIVERED;
		dsn_text_enrich(r, &th, w.text.data, w.text.len);
		rc = 0;
		goto classify_out;
	}
	dsn_text_scan(r, opt, &th, w.text.data, w.text.len,
	    w.orig != NULL || w.orighdr.len > 0);
	if (r->nrcpt == 0 && r->kind == RECORD_KIND_UNKNOWN && depth == 0 &&
	    w.orig != NULL) {
		/* a bounce forwarded as an attachment (a list manager's
		 * "uncaught bounce" notice, a user's "Fwd:") */
		char *inner =
		    g_mime_object_to_string(GMIME_OBJECT(w.orig), NULL);
		struct dsn_report *ir = NULL;

		if (inner != NULL &&
		    parse_depth(inner, strlen(inner), truncated, opt, &ir, NULL,
		        depth + 1) == 0 &&
		    (ir->kind == RECORD_KIND_BOUNCE ||
		        ir->kind == RECORD_KIND_DELAYED) &&
		    ir->nrcpt > 0) {
			adopt(r, ir);
			ir = NULL;
		}
		dsn_free(&ir);
		g_free(inner);
	}
	rc = 0;
classify_out:
	if (r->nrcpt == 0 && r->kind != RECORD_KIND_COMPLAINT)
		r->kind = r->kind == RECORD_KIND_AUTOREPLY
		    ? r->kind
		    : RECORD_KIND_UNKNOWN;
	finish(r, opt);
out:
	if (m != NULL)
		g_object_unref(m);
	if (parser != NULL)
		g_object_unref(parser);
	if (stream != NULL)
		g_object_unref(stream);
	buf_free(&w.ds);
	buf_free(&w.fb);
	buf_free(&w.text);
	buf_free(&w.html);
	buf_free(&w.orighdr);
	free(capped);
	if (rc == 0)
		*out = r;
	else
		dsn_free(&r);
	return rc;
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
	free(r->rcpts);
	free(r->hdrs);
	free(r);
	*rp = NULL;
}

enum record_kind
dsn_kind(const struct dsn_report *r)
{
	return r ? r->kind : RECORD_KIND_UNKNOWN;
}

const char *
dsn_reporting_mta(const struct dsn_report *r)
{
	return r ? r->reporting_mta : NULL;
}

const char *
dsn_subject(const struct dsn_report *r)
{
	return r ? r->subject : NULL;
}

int64_t
dsn_date(const struct dsn_report *r)
{
	return r ? r->date : 0;
}

int
dsn_truncated(const struct dsn_report *r)
{
	return r ? r->truncated : 0;
}

const char *
dsn_verp_recipient(const struct dsn_report *r)
{
	return r ? r->verp : NULL;
}

const char *
dsn_mta(const struct dsn_report *r)
{
	return r ? r->mta : NULL;
}

size_t
dsn_rcpt_count(const struct dsn_report *r)
{
	return r ? r->nrcpt : 0;
}

const struct record_rcpt *
dsn_rcpt_at(const struct dsn_report *r, size_t i)
{
	if (r == NULL || i >= r->nrcpt)
		return NULL;
	return &r->rcpts[i];
}

size_t
dsn_orig_header_count(const struct dsn_report *r)
{
	return r ? r->nhdr : 0;
}

void
dsn_orig_header_at(const struct dsn_report *r, size_t i, const char **name_out,
    const char **value_out)
{
	if (r == NULL || i >= r->nhdr) {
		*name_out = NULL;
		*value_out = NULL;
		return;
	}
	*name_out = r->hdrs[i].name;
	*value_out = r->hdrs[i].value;
}

const char *
dsn_orig_header(const struct dsn_report *r, const char *name)
{
	size_t i;

	if (r == NULL || name == NULL)
		return NULL;
	for (i = 0; i < r->nhdr; i++)
		if (ascii_casecmp(r->hdrs[i].name, name) == 0)
			return r->hdrs[i].value;
	return NULL;
}
