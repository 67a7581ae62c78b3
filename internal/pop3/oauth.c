/*
 * oauth.c - access tokens for XOAUTH2: token_file, or the token endpoint
 * (RFC 6749 4.4 client credentials, 6 refresh) over HTTPS with libcurl.
 * The response is read into a capped buffer and scanned by a small strict
 * JSON reader (RFC 8259) that keeps only the fields of RFC 6749 5.1/5.2.
 * One cache entry per mailbox, each with its own lock, so a slow endpoint
 * delays only its own mailbox.  Secrets stay out of every error text.
 */
#include "pop3/oauth.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"

/* Nesting allowed inside the response object (arrays, objects). */
#define JSON_MAX_DEPTH 32
/* Longest error / error_description quoted in an error message. */
#define ERR_TEXT_MAX 120

/* ---- strict JSON scanning ---- */

struct js {
	const char *p, *end;
};

static void
js_ws(struct js *j)
{
	while (j->p < j->end &&
	    (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
		j->p++;
}

static int
hex4(const char *p, unsigned *out)
{
	unsigned v = 0;

	for (int i = 0; i < 4; i++) {
		char ch = p[i];

		v <<= 4;
		if (ch >= '0' && ch <= '9')
			v |= (unsigned)(ch - '0');
		else if (ch >= 'a' && ch <= 'f')
			v |= (unsigned)(ch - 'a' + 10);
		else if (ch >= 'A' && ch <= 'F')
			v |= (unsigned)(ch - 'A' + 10);
		else
			return -1;
	}
	*out = v;
	return 0;
}

static void
put_utf8(struct buf *b, unsigned cp)
{
	char u[4];
	size_t n;

	if (cp < 0x80) {
		u[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (char)(0xC0 | (cp >> 6));
		u[1] = (char)(0x80 | (cp & 0x3F));
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = (char)(0xE0 | (cp >> 12));
		u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		u[2] = (char)(0x80 | (cp & 0x3F));
		n = 3;
	} else {
		u[0] = (char)(0xF0 | (cp >> 18));
		u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
		u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
		u[3] = (char)(0x80 | (cp & 0x3F));
		n = 4;
	}
	buf_append(b, u, n);
}

/* A string at j->p (the opening quote); decoded into out when out is not
 * NULL.  *nul_out is set when it contains U+0000.  0 or -1. */
static int
js_string(struct js *j, struct buf *out, int *nul_out)
{
	if (j->p >= j->end || *j->p != '"')
		return -1;
	j->p++;
	while (j->p < j->end) {
		unsigned char ch = (unsigned char)*j->p;
		unsigned cp, lo;

		if (ch == '"') {
			j->p++;
			return 0;
		}
		if (ch < 0x20)
			return -1;
		if (ch != '\\') {
			if (out != NULL)
				buf_append(out, j->p, 1);
			j->p++;
			continue;
		}
		if (j->end - j->p < 2)
			return -1;
		ch = (unsigned char)j->p[1];
		j->p += 2;
		switch (ch) {
		case '"':
		case '\\':
		case '/':
			cp = ch;
			break;
		case 'b':
			cp = '\b';
			break;
		case 'f':
			cp = '\f';
			break;
		case 'n':
			cp = '\n';
			break;
		case 'r':
			cp = '\r';
			break;
		case 't':
			cp = '\t';
			break;
		case 'u':
			if (j->end - j->p < 4 || hex4(j->p, &cp) != 0)
				return -1;
			j->p += 4;
			if (cp >= 0xDC00 && cp <= 0xDFFF)
				return -1; /* lone low surrogate */
			if (cp >= 0xD800 && cp <= 0xDBFF) {
				if (j->end - j->p < 6 || j->p[0] != '\\' ||
				    j->p[1] != 'u' ||
				    hex4(j->p + 2, &lo) != 0 || lo < 0xDC00 ||
				    lo > 0xDFFF)
					return -1;
				j->p += 6;
				cp = 0x10000 + ((cp - 0xD800) << 10) +
				    (lo - 0xDC00);
			}
			break;
		default:
			return -1;
		}
		if (cp == 0 && nul_out != NULL)
			*nul_out = 1;
		if (out != NULL)
			put_utf8(out, cp);
	}
	return -1;
}

/* A number; *int_out gets its value when it is a non-negative integer
 * (saturated at INT64_MAX), else -1.  0 or -1 (not a number). */
static int
js_number(struct js *j, int64_t *int_out)
{
	int neg = 0, integral = 1;
	int64_t v = 0;

	if (j->p < j->end && *j->p == '-') {
		neg = 1;
		j->p++;
	}
	if (j->p >= j->end || *j->p < '0' || *j->p > '9')
		return -1;
	if (*j->p == '0')
		j->p++;
	else
		while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
			int d = *j->p - '0';

			v = v > (INT64_MAX - d) / 10 ? INT64_MAX : v * 10 + d;
			j->p++;
		}
	if (j->p < j->end && *j->p == '.') {
		integral = 0;
		j->p++;
		if (j->p >= j->end || *j->p < '0' || *j->p > '9')
			return -1;
		while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
			j->p++;
	}
	if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
		integral = 0;
		j->p++;
		if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
			j->p++;
		if (j->p >= j->end || *j->p < '0' || *j->p > '9')
			return -1;
		while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
			j->p++;
	}
	if (int_out != NULL)
		*int_out = (neg || !integral) ? -1 : v;
	return 0;
}

static int
js_lit(struct js *j, const char *lit)
{
	size_t n = strlen(lit);

	if ((size_t)(j->end - j->p) < n || memcmp(j->p, lit, n) != 0)
		return -1;
	j->p += n;
	return 0;
}

/* Skips any value.  0 or -1. */
static int
js_skip(struct js *j, int depth)
{
	char close;

	js_ws(j);
	if (j->p >= j->end)
		return -1;
	switch (*j->p) {
	case '"':
		return js_string(j, NULL, NULL);
	case 't':
		return js_lit(j, "true");
	case 'f':
		return js_lit(j, "false");
	case 'n':
		return js_lit(j, "null");
	case '{':
	case '[':
		break;
	default:
		return js_number(j, NULL);
	}
	if (depth >= JSON_MAX_DEPTH)
		return -1;
	close = *j->p == '{' ? '}' : ']';
	j->p++;
	js_ws(j);
	if (j->p < j->end && *j->p == close) {
		j->p++;
		return 0;
	}
	for (;;) {
		if (close == '}') {
			js_ws(j);
			if (js_string(j, NULL, NULL) != 0)
				return -1;
			js_ws(j);
			if (j->p >= j->end || *j->p != ':')
				return -1;
			j->p++;
		}
		if (js_skip(j, depth + 1) != 0)
			return -1;
		js_ws(j);
		if (j->p >= j->end)
			return -1;
		if (*j->p == close) {
			j->p++;
			return 0;
		}
		if (*j->p != ',')
			return -1;
		j->p++;
	}
}

/* ---- token response ---- */

enum field {
	F_ACCESS_TOKEN,
	F_TOKEN_TYPE,
	F_REFRESH_TOKEN,
	F_SCOPE,
	F_ERROR,
	F_ERROR_DESC,
	F_EXPIRES_IN,
	F__COUNT
};

static const char *const field_names[F__COUNT] = {"access_token", "token_type",
    "refresh_token", "scope", "error", "error_description", "expires_in"};

/* Copies s for an error message: printable ASCII only, shortened. */
static void
sanitize(char *dst, size_t size, const char *s)
{
	size_t i, n = 0;

	for (i = 0; s != NULL && s[i] != '\0' && n + 4 < size; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (n >= ERR_TEXT_MAX) {
			memcpy(dst + n, "...", 3);
			n += 3;
			break;
		}
		dst[n++] = (ch >= 0x20 && ch < 0x7F) ? (char)ch : '?';
	}
	dst[n] = '\0';
}

/* 1 if every byte is in 0x21..0x7E (RFC 6750 b64token and more). */
static int
token_chars_ok(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x21 || (unsigned char)*s > 0x7E)
			return 0;
	return 1;
}

void
oauth_token_clear(struct oauth_token *t)
{
	if (t == NULL)
		return;
	free(t->access_token);
	free(t->token_type);
	free(t->refresh_token);
	free(t->scope);
	memset(t, 0, sizeof(*t));
}

/* Parses the top-level object into strs[] / *expires_out.  0, or -1 with
 * a reason in err (never quoting values). */
static int
scan_object(const char *body, size_t len, char *strs[F__COUNT],
    int64_t *expires_out, struct err *err)
{
	struct js j = {body, body + len};
	struct buf key, val;
	int seen[F__COUNT] = {0};
	int rc = -1;

	buf_init(&key, 256);
	buf_init(&val, OAUTH_MAX_RESPONSE_BYTES);
	*expires_out = -1;
	js_ws(&j);
	if (j.p >= j.end || *j.p != '{') {
		err_set(err, "not a JSON object");
		goto out;
	}
	j.p++;
	js_ws(&j);
	if (j.p < j.end && *j.p == '}') {
		j.p++;
		goto done;
	}
	for (;;) {
		int f, nul = 0;

		js_ws(&j);
		buf_reset(&key);
		if (js_string(&j, &key, NULL) != 0) {
			err_set(err, "not JSON (bad member name at byte %zu)",
			    (size_t)(j.p - body));
			goto out;
		}
		js_ws(&j);
		if (j.p >= j.end || *j.p != ':') {
			err_set(err, "not JSON (no ':' at byte %zu)",
			    (size_t)(j.p - body));
			goto out;
		}
		j.p++;
		js_ws(&j);
		for (f = 0; f < F__COUNT; f++)
			if (key.len == strlen(field_names[f]) &&
			    memcmp(buf_cstr(&key), field_names[f], key.len) ==
			        0)
				break;
		if (f < F__COUNT && seen[f]) {
			err_set(err, "duplicate member %s", field_names[f]);
			goto out;
		}
		if (f < F__COUNT)
			seen[f] = 1;
		if (f == F_EXPIRES_IN) {
			int64_t v = -1;

			/* A number, or a string of digits (some endpoints
			 * quote it). */
			if (j.p < j.end && *j.p == '"') {
				buf_reset(&val);
				if (js_string(&j, &val, NULL) != 0) {
					err_set(err, "not JSON (bad string)");
					goto out;
				}
				if (val.len == 0 || val.len > 30 ||
				    js_number(&(struct js){buf_cstr(&val),
				                  buf_cstr(&val) + val.len},
				        &v) != 0 ||
				    strspn(buf_cstr(&val), "0123456789") !=
				        val.len)
					v = -2;
			} else if (js_number(&j, &v) != 0) {
				err_set(err, "expires_in is not a number");
				goto out;
			}
			if (v < 0) {
				err_set(err,
				    "expires_in is not a non-negative integer");
				goto out;
			}
			*expires_out = v;
		} else if (f < F__COUNT) {
			if (j.p < j.end && *j.p == 'n' &&
			    js_lit(&j, "null") == 0) {
				/* null: as if absent */
			} else {
				if (j.p >= j.end || *j.p != '"') {
					err_set(err, "%s is not a string",
					    field_names[f]);
					goto out;
				}
				buf_reset(&val);
				if (js_string(&j, &val, &nul) != 0) {
					err_set(err,
					    "not JSON (bad string in "
					    "%s)",
					    field_names[f]);
					goto out;
				}
				if (nul) {
					err_set(err, "%s contains U+0000",
					    field_names[f]);
					goto out;
				}
				strs[f] = xstrndup(buf_cstr(&val), val.len);
			}
		} else if (js_skip(&j, 1) != 0) {
			err_set(err, "not JSON (bad value at byte %zu)",
			    (size_t)(j.p - body));
			goto out;
		}
		js_ws(&j);
		if (j.p < j.end && *j.p == ',') {
			j.p++;
			continue;
		}
		if (j.p < j.end && *j.p == '}') {
			j.p++;
			break;
		}
		err_set(err, "not JSON (expected ',' or '}' at byte %zu)",
		    (size_t)(j.p - body));
		goto out;
	}
done:
	js_ws(&j);
	if (j.p != j.end) {
		err_set(err, "not JSON (data after the object)");
		goto out;
	}
	rc = 0;
out:
	buf_free(&key);
	buf_free(&val);
	return rc;
}

int
oauth_parse_token_response(long http_status, const char *body, size_t len,
    struct oauth_token *out, struct err *err)
{
	char *strs[F__COUNT] = {0};
	char e1[ERR_TEXT_MAX + 8], e2[ERR_TEXT_MAX + 8];
	struct err jerr = {{0}};
	int64_t expires = -1;
	int ok_status = http_status >= 200 && http_status < 300;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (len > OAUTH_MAX_RESPONSE_BYTES) {
		err_set(err, "HTTP %ld: response larger than %d bytes",
		    http_status, OAUTH_MAX_RESPONSE_BYTES);
		goto out;
	}
	if (scan_object(body, len, strs, &expires, &jerr) != 0) {
		if (ok_status)
			err_set(err, "HTTP %ld: response %s", http_status,
			    jerr.msg);
		else
			err_set(err,
			    "HTTP %ld (response is not an OAuth "
			    "error object: %s)",
			    http_status, jerr.msg);
		goto out;
	}
	if (!ok_status || strs[F_ERROR] != NULL) {
		sanitize(e1, sizeof(e1),
		    strs[F_ERROR] ? strs[F_ERROR] : "no error code");
		sanitize(e2, sizeof(e2), strs[F_ERROR_DESC]);
		err_set(err, "HTTP %ld: %s%s%s", http_status, e1,
		    e2[0] ? ": " : "", e2);
		goto out;
	}
	if (strs[F_ACCESS_TOKEN] == NULL || strs[F_ACCESS_TOKEN][0] == '\0') {
		err_set(err, "HTTP %ld: no access_token in the response",
		    http_status);
		goto out;
	}
	if (strlen(strs[F_ACCESS_TOKEN]) > OAUTH_MAX_TOKEN_BYTES ||
	    !token_chars_ok(strs[F_ACCESS_TOKEN])) {
		err_set(err,
		    "HTTP %ld: access_token is longer than %d bytes or has "
		    "characters outside 0x21..0x7E",
		    http_status, OAUTH_MAX_TOKEN_BYTES);
		goto out;
	}
	if (strs[F_TOKEN_TYPE] != NULL &&
	    ascii_casecmp(strs[F_TOKEN_TYPE], "bearer") != 0) {
		sanitize(e1, sizeof(e1), strs[F_TOKEN_TYPE]);
		err_set(err, "HTTP %ld: token_type '%s' is not Bearer",
		    http_status, e1);
		goto out;
	}
	if (strs[F_REFRESH_TOKEN] != NULL &&
	    (strs[F_REFRESH_TOKEN][0] == '\0' ||
	        strlen(strs[F_REFRESH_TOKEN]) > OAUTH_MAX_TOKEN_BYTES)) {
		free(strs[F_REFRESH_TOKEN]);
		strs[F_REFRESH_TOKEN] = NULL;
	}
	out->access_token = strs[F_ACCESS_TOKEN];
	out->token_type = strs[F_TOKEN_TYPE];
	out->refresh_token = strs[F_REFRESH_TOKEN];
	out->scope = strs[F_SCOPE];
	strs[F_ACCESS_TOKEN] = strs[F_TOKEN_TYPE] = NULL;
	strs[F_REFRESH_TOKEN] = strs[F_SCOPE] = NULL;
	out->expires_in = expires;
	out->lifetime_s = expires < 0        ? OAUTH_DEFAULT_LIFETIME_S
	    : expires > OAUTH_MAX_LIFETIME_S ? OAUTH_MAX_LIFETIME_S
	                                     : expires;
	rc = 0;
out:
	for (int f = 0; f < F__COUNT; f++)
		free(strs[f]);
	return rc;
}

/* ---- cache and token endpoint ---- */

struct entry {
	struct entry *next;
	char *name;
	pthread_mutex_t mu; /* held across a fetch for this mailbox */
	char *ident; /* endpoint, client and grant it was fetched with */
	char *token; /* NULL when none cached */
	int64_t renew_ms; /* now_ms() from which it must be renewed */
	char *rotated; /* refresh token handed out by the endpoint */
};

struct oauth_cache {
	pthread_mutex_t mu; /* guards the list and the settings */
	struct entry *head;
	char *ca_file;
	long connect_ms, total_ms;
};

struct oauth_cache *
oauth_cache_new(void)
{
	struct oauth_cache *c = xcalloc(1, sizeof(*c));

	pthread_mutex_init(&c->mu, NULL);
	return c;
}

static void
wipe_free(char *s)
{
	if (s == NULL)
		return;
	/* volatile: keep the wipe of secrets from being optimised away */
	for (volatile char *p = s; *p != '\0'; p++)
		*p = '\0';
	free(s);
}

static void
entry_reset(struct entry *e)
{
	wipe_free(e->ident);
	wipe_free(e->token);
	wipe_free(e->rotated);
	e->ident = e->token = e->rotated = NULL;
	e->renew_ms = 0;
}

void
oauth_cache_free(struct oauth_cache **cp)
{
	struct oauth_cache *c;
	struct entry *e, *next;

	if (cp == NULL || *cp == NULL)
		return;
	c = *cp;
	for (e = c->head; e != NULL; e = next) {
		next = e->next;
		entry_reset(e);
		free(e->name);
		pthread_mutex_destroy(&e->mu);
		free(e);
	}
	free(c->ca_file);
	pthread_mutex_destroy(&c->mu);
	free(c);
	*cp = NULL;
}

void
oauth_cache_set_ca_file(struct oauth_cache *c, const char *ca_file)
{
	pthread_mutex_lock(&c->mu);
	free(c->ca_file);
	c->ca_file = ca_file != NULL ? xstrdup(ca_file) : NULL;
	pthread_mutex_unlock(&c->mu);
}

void
oauth_cache_set_timeouts(struct oauth_cache *c, long connect_ms, long total_ms)
{
	pthread_mutex_lock(&c->mu);
	c->connect_ms = connect_ms;
	c->total_ms = total_ms;
	pthread_mutex_unlock(&c->mu);
}

static struct entry *
entry_get(struct oauth_cache *c, const char *name)
{
	struct entry *e;

	pthread_mutex_lock(&c->mu);
	for (e = c->head; e != NULL; e = e->next)
		if (strcmp(e->name, name) == 0)
			goto out;
	e = xcalloc(1, sizeof(*e));
	e->name = xstrdup(name);
	pthread_mutex_init(&e->mu, NULL);
	e->next = c->head;
	c->head = e;
out:
	pthread_mutex_unlock(&c->mu);
	return e;
}

void
oauth_forget(struct oauth_cache *c, const char *mailbox)
{
	struct entry *e = entry_get(c, mailbox);

	pthread_mutex_lock(&e->mu);
	entry_reset(e);
	pthread_mutex_unlock(&e->mu);
}

static size_t
on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct buf *b = ud;
	size_t n = size * nmemb;

	if (buf_append(b, ptr, n) < n)
		return 0; /* over the cap: abort the transfer */
	return n;
}

/* Appends "&name=value" (value form-encoded) to the request body. */
static int
add_param(CURL *h, struct buf *body, const char *name, const char *value)
{
	char *enc = curl_easy_escape(h, value, 0);
	int rc = 0;

	if (enc == NULL)
		return -1;
	if (body->len > 0)
		buf_append_str(body, "&");
	buf_append_str(body, name);
	buf_append_str(body, "=");
	buf_append_str(body, enc);
	if (body->truncated)
		rc = -1;
	/* the encoded value may be a secret */
	for (volatile char *p = enc; *p != '\0'; p++)
		*p = '\0';
	curl_free(enc);
	return rc;
}

/* One POST to the token endpoint.  0 and *tok, or -1 with err. */
static int
fetch(struct oauth_cache *c, const struct mailbox_config *mc,
    const char *refresh, struct oauth_token *tok, struct err *err)
{
	CURL *h = NULL;
	struct curl_slist *hdr = NULL;
	struct buf body, resp;
	char cerr[CURL_ERROR_SIZE] = "";
	char *ca = NULL;
	long connect_ms, total_ms, status = 0;
	CURLcode cc;
	int rc = -1;

	buf_init(&body, 4 * OAUTH_MAX_TOKEN_BYTES);
	buf_init(&resp, OAUTH_MAX_RESPONSE_BYTES);
	pthread_mutex_lock(&c->mu);
	ca = mc->token_ca_file ? xstrdup(mc->token_ca_file)
	    : c->ca_file       ? xstrdup(c->ca_file)
	                       : NULL;
	connect_ms = c->connect_ms > 0 ? c->connect_ms : 15000;
	total_ms = c->total_ms > 0 ? c->total_ms : 30000;
	pthread_mutex_unlock(&c->mu);
	if ((h = curl_easy_init()) == NULL) {
		err_set(err, "curl_easy_init failed");
		goto out;
	}
	if (refresh != NULL) {
		if (add_param(h, &body, "grant_type", "refresh_token") != 0 ||
		    add_param(h, &body, "refresh_token", refresh) != 0)
			goto toolong;
	} else if (add_param(h, &body, "grant_type", "client_credentials") != 0)
		goto toolong;
	if (add_param(h, &body, "client_id", mc->client_id) != 0 ||
	    (mc->client_secret != NULL &&
	        add_param(h, &body, "client_secret", mc->client_secret) != 0) ||
	    (mc->scope != NULL && add_param(h, &body, "scope", mc->scope) != 0))
		goto toolong;
	hdr = curl_slist_append(hdr, "Accept: application/json");
	hdr = curl_slist_append(hdr,
	    "Content-Type: application/x-www-form-urlencoded");
	curl_easy_setopt(h, CURLOPT_URL, mc->token_url);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
#else
	curl_easy_setopt(h, CURLOPT_PROTOCOLS, (long)CURLPROTO_HTTPS);
#endif
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, buf_cstr(&body));
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)body.len);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "bouncerd");
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, total_ms);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	if (ca != NULL)
		curl_easy_setopt(h, CURLOPT_CAINFO, ca);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &resp);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr);
	cc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	if (cc == CURLE_WRITE_ERROR && resp.truncated) {
		err_set(err, "HTTP %ld: response larger than %d bytes", status,
		    OAUTH_MAX_RESPONSE_BYTES);
		goto out;
	}
	if (cc != CURLE_OK) {
		err_set(err, "%s", cerr[0] ? cerr : curl_easy_strerror(cc));
		goto out;
	}
	if (oauth_parse_token_response(status, resp.data ? resp.data : "",
	        resp.len, tok, err) != 0)
		goto out;
	rc = 0;
	goto out;
toolong:
	err_set(err, "request parameters too long");
out:
	if (body.data != NULL)
		for (volatile char *p = body.data; p < body.data + body.len;
		     p++)
			*p = '\0';
	buf_free(&body);
	buf_free(&resp);
	curl_slist_free_all(hdr);
	if (h != NULL)
		curl_easy_cleanup(h);
	free(ca);
	return rc;
}

/* token_file: read fresh, trailing white space removed. */
static int
read_token_file(const char *path, char **token_out, struct err *err)
{
	char *t = NULL;
	size_t len = 0;

	if (read_file(path, OAUTH_MAX_TOKEN_BYTES, &t, &len, err) != 0) {
		err_prefix(err, "token_file");
		return -1;
	}
	while (len > 0 &&
	    (t[len - 1] == '\n' || t[len - 1] == '\r' || t[len - 1] == ' ' ||
	        t[len - 1] == '\t'))
		t[--len] = '\0';
	if (len == 0 || strlen(t) != len || !token_chars_ok(t)) {
		err_set(err, "token_file %s: %s", path,
		    len == 0 ? "empty" : "has characters outside 0x21..0x7E");
		wipe_free(t);
		return -1;
	}
	*token_out = t;
	return 0;
}

int
oauth_get_token(struct oauth_cache *c, const struct mailbox_config *mc,
    int force_refresh, char **token_out, enum oauth_source *src_out,
    struct err *err)
{
	struct oauth_token tok = {0};
	struct entry *e;
	char *ident = NULL;
	const char *refresh;
	int64_t now, margin;
	int rc = -1;

	*token_out = NULL;
	if (src_out != NULL)
		*src_out = OAUTH_SRC_CACHE;
	if (mc->token_file != NULL) {
		if (src_out != NULL)
			*src_out = OAUTH_SRC_FILE;
		return read_token_file(mc->token_file, token_out, err);
	}
	if (mc->token_url == NULL || mc->client_id == NULL) {
		err_set(err,
		    "xoauth2 needs token_file or token_url and "
		    "client_id");
		return -1;
	}
	if (mc->refresh_token == NULL && mc->scope == NULL) {
		err_set(err, "xoauth2 needs refresh_token or scope");
		return -1;
	}
	ident = xasprintf("%s\n%s\n%s\n%s\n%s", mc->token_url, mc->client_id,
	    mc->client_secret ? mc->client_secret : "",
	    mc->refresh_token ? mc->refresh_token : "",
	    mc->scope ? mc->scope : "");
	e = entry_get(c, mc->name);
	pthread_mutex_lock(&e->mu);
	if (e->ident == NULL || strcmp(e->ident, ident) != 0) {
		entry_reset(e);
		e->ident = ident;
		ident = NULL;
	}
	now = now_ms();
	if (e->token != NULL && !force_refresh && now < e->renew_ms) {
		*token_out = xstrdup(e->token);
		rc = 0;
		goto out;
	}
	wipe_free(e->token);
	e->token = NULL;
	if (src_out != NULL)
		*src_out = OAUTH_SRC_FETCHED;
	refresh = e->rotated != NULL ? e->rotated : mc->refresh_token;
	if (fetch(c, mc, refresh, &tok, err) != 0) {
		err_prefix(err, "token endpoint %s", mc->token_url);
		goto out;
	}
	margin = tok.lifetime_s / 2 < OAUTH_EXPIRY_MARGIN_S
	    ? tok.lifetime_s / 2
	    : OAUTH_EXPIRY_MARGIN_S;
	e->token = xstrdup(tok.access_token);
	e->renew_ms = now + (tok.lifetime_s - margin) * 1000;
	if (refresh != NULL && tok.refresh_token != NULL) {
		wipe_free(e->rotated);
		e->rotated = xstrdup(tok.refresh_token);
	}
	*token_out = xstrdup(e->token);
	rc = 0;
out:
	pthread_mutex_unlock(&e->mu);
	wipe_free(ident);
	if (tok.access_token != NULL)
		memset(tok.access_token, 0, strlen(tok.access_token));
	if (tok.refresh_token != NULL)
		memset(tok.refresh_token, 0, strlen(tok.refresh_token));
	oauth_token_clear(&tok);
	return rc;
}
