/*
 * oauth.c - access tokens for XOAUTH2: token_file, or the token endpoint
 * (RFC 6749 4.4 client credentials, 6 refresh) over HTTPS with libcurl.
 * The response is read into a capped buffer and checked by the strict
 * JSON reader of base/json.h; only the fields of RFC 6749 5.1/5.2 are kept.
 * One cache entry per mailbox, each with its own lock, so a slow endpoint
 * delays only its own mailbox.  Secrets stay out of every error text.
 */
#include "pop3/oauth.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/json.h"

/* Longest error / error_description quoted in an error message. */
#define ERR_TEXT_MAX 120

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

/* The field a member name stands for, F__COUNT for any other. */
static int
field_of(const struct json_val *key)
{
	int f;

	for (f = 0; f < F__COUNT; f++)
		if (json_str_eq(key, field_names[f]))
			break;
	return f;
}

/* expires_in: a number, or a string of digits (some endpoints quote it).
 * 0 and *out, or -1 with err set. */
static int
read_expires(const struct json_val *v, struct buf *val, int64_t *out,
    struct err *err)
{
	struct json_val num;
	size_t end;
	int64_t x = -1;

	if (v->type == JSON_STRING) {
		buf_reset(val);
		json_string(v, val);
		if (val->len == 0 || val->len > 30 ||
		    strspn(buf_cstr(val), "0123456789") != val->len ||
		    json_parse(buf_cstr(val), val->len, &num, &end, NULL) !=
		        0 ||
		    json_int(&num, &x) != 0)
			x = -2;
	} else if (v->type != JSON_NUMBER) {
		err_set(err, "expires_in is not a number");
		return -1;
	} else if (v->p[0] == '-' || json_int(v, &x) != 0)
		x = -1;
	if (x < 0) {
		err_set(err, "expires_in is not a non-negative integer");
		return -1;
	}
	*out = x;
	return 0;
}

/* A string field into *str_out (owned); null leaves it NULL.  0, or -1
 * with err set (never quoting the value). */
static int
read_string(const struct json_val *v, int f, struct buf *val, char **str_out,
    struct err *err)
{
	if (v->type == JSON_NULL)
		return 0; /* as if absent */
	if (v->type != JSON_STRING) {
		err_set(err, "%s is not a string", field_names[f]);
		return -1;
	}
	buf_reset(val);
	json_string(v, val);
	if (memchr(buf_cstr(val), '\0', val->len) != NULL) {
		err_set(err, "%s contains U+0000", field_names[f]);
		return -1;
	}
	*str_out = xstrndup(buf_cstr(val), val->len);
	return 0;
}

/* Parses the top-level object into strs[] / *expires_out.  0, or -1 with
 * a reason in err (never quoting values). */
static int
scan_object(const char *body, size_t len, char *strs[F__COUNT],
    int64_t *expires_out, struct err *err)
{
	struct json_val obj, key, v;
	struct err jerr = {{0}};
	struct buf val;
	size_t pos = 0, end = 0;
	int seen[F__COUNT] = {0};
	int rc = -1;

	buf_init(&val, OAUTH_MAX_RESPONSE_BYTES);
	*expires_out = -1;
	if (json_open(body, len, &obj) != 0 || obj.type != JSON_OBJECT) {
		err_set(err, "not a JSON object");
		goto out;
	}
	if (json_parse(body, len, &obj, &end, &jerr) != 0) {
		err_set(err, "not JSON (%s)", jerr.msg);
		goto out;
	}
	while (end < len &&
	    (body[end] == ' ' || body[end] == '\t' || body[end] == '\n' ||
	        body[end] == '\r'))
		end++;
	if (end != len) {
		err_set(err, "not JSON (data after the object)");
		goto out;
	}
	while (json_next(&obj, &pos, &key, &v) == 1) {
		int f = field_of(&key);

		if (f < F__COUNT && seen[f]) {
			err_set(err, "duplicate member %s", field_names[f]);
			goto out;
		}
		if (f < F__COUNT)
			seen[f] = 1;
		if (f == F_EXPIRES_IN) {
			if (read_expires(&v, &val, expires_out, err) != 0)
				goto out;
		} else if (f < F__COUNT &&
		    read_string(&v, f, &val, &strs[f], err) != 0)
			goto out;
	}
	rc = 0;
out:
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
