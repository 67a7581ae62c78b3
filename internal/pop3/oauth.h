/*
 * oauth.h - OAuth 2.0 access tokens for SASL XOAUTH2 logins (RFC 6749
 * sections 4.4, 5.1, 5.2 and 6): read from a token_file, or fetched from a
 * token endpoint over HTTPS with the refresh-token or client-credentials
 * grant and cached per mailbox until shortly before expires_in.  Responses
 * go into a capped buffer and through a strict JSON scanner.  Tokens and
 * secrets never appear in error text.  Never logs.
 */
#ifndef BOUNCER_OAUTH_H
#define BOUNCER_OAUTH_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "base/util.h"

/* Largest token endpoint response read; a larger one is an error. */
#define OAUTH_MAX_RESPONSE_BYTES (64 * 1024)
/* Largest access token (also the cap for token_file). */
#define OAUTH_MAX_TOKEN_BYTES 16384
/* A cached token is renewed this many seconds before it expires (half of
 * its lifetime when that is shorter). */
#define OAUTH_EXPIRY_MARGIN_S 60
/* Lifetime assumed when the response has no expires_in (RFC 6749 makes it
 * optional); longer lifetimes are capped at OAUTH_MAX_LIFETIME_S. */
#define OAUTH_DEFAULT_LIFETIME_S 300
#define OAUTH_MAX_LIFETIME_S 86400

/* One parsed token endpoint response (all strings owned). */
struct oauth_token {
	char *access_token;
	char *token_type; /* NULL when absent */
	char *refresh_token; /* a rotated refresh token, NULL when absent */
	char *scope; /* NULL when absent */
	int64_t expires_in; /* seconds as sent, -1 when absent */
	int64_t lifetime_s; /* what the cache uses: defaulted and capped */
};

/*
 * Parses a token endpoint response: http_status and body (len bytes, need
 * not be NUL-terminated).  0 and *out filled (release with
 * oauth_token_clear), or -1 with err set: "HTTP 400: invalid_grant:
 * <error_description>" for an error response (description sanitised and
 * shortened), "not JSON ..." / "no access_token" / ... otherwise.  The
 * token text never goes into err.  Exposed for unit tests and fuzzing.
 */
int oauth_parse_token_response(long http_status, const char *body, size_t len,
    struct oauth_token *out, struct err *err);
/* Frees the strings and zeroes *t; NULL-safe. */
void oauth_token_clear(struct oauth_token *t);

struct oauth_cache; /* opaque; thread-safe, keyed by mailbox name */

struct oauth_cache *oauth_cache_new(void);
void oauth_cache_free(struct oauth_cache **c); /* NULL-safe; sets NULL */

/* Trusts this PEM bundle instead of the system store for every token
 * endpoint (NULL: system store).  Copied. */
void oauth_cache_set_ca_file(struct oauth_cache *c, const char *ca_file);
/* Timeouts of one token request in milliseconds (0: 15000 / 30000). */
void oauth_cache_set_timeouts(struct oauth_cache *c, long connect_ms,
    long total_ms);

/* What oauth_get_token() did, for metrics and logs. */
enum oauth_source {
	OAUTH_SRC_FILE, /* read token_file */
	OAUTH_SRC_CACHE, /* a cached token still fresh */
	OAUTH_SRC_FETCHED, /* one request to the token endpoint */
};

/*
 * An access token for mailbox mc (auth: xoauth2).  token_file: read fresh
 * on every call.  Otherwise the cached token unless it is within
 * OAUTH_EXPIRY_MARGIN_S of expiry or force_refresh is set (after the
 * server refused it); then exactly one request to mc->token_url, with the
 * refresh_token grant when a refresh token is configured, else the
 * client_credentials grant with mc->scope.  A refresh token rotated by the
 * endpoint is kept in memory for the next request.  A failed request
 * drops the cached token and is not retried here.
 * 0 and *token_out (caller frees) or -1 with err set ("token endpoint
 * <url>: HTTP 400: invalid_grant: ..."); *src_out (may be NULL) tells
 * whether a request was made (also on failure).
 */
int oauth_get_token(struct oauth_cache *c, const struct mailbox_config *mc,
    int force_refresh, char **token_out, enum oauth_source *src_out,
    struct err *err);

/* Forgets the cached token of a mailbox (e.g. config reload). */
void oauth_forget(struct oauth_cache *c, const char *mailbox);

#endif
