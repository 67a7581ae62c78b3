/*
 * scan.c - small bounded scanners over the text of a bounce: addresses
 * (ASCII in prose, UTF-8 in typed fields, RFC 6533), RFC 3463 status
 * codes, SMTP reply codes, RFC 5322 dates, and the header-like field
 * groups of RFC 3464 / RFC 5965.  Each is linear in its input and never
 * backtracks; none allocates beyond a capped buffer.
 */
#include "decode/report.h"

#include <string.h>

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

/* Addresses in a typed field (RFC 6533): UTF-8 allowed. */
int
dsn_next_addr_utf8(const char *s, size_t len, size_t *pos, size_t *mstart,
    char out[DSN_ADDR_MAX])
{
	return next_addr(s, len, pos, mstart, out, 1);
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
int
dsn_reply_status_pair(const char *s, size_t n, char out[16])
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
