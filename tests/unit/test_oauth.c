/*
 * test_oauth.c - the token endpoint response parser of internal/oauth
 * (RFC 6749 5.1 success, 5.2 error), token_file reading, and the token
 * counters of internal/metrics.  Network fetches are covered by
 * tests/integration/test_oauth.sh against a real HTTPS endpoint.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/buf.h"
#include "config/config.h"
#include "service/metrics.h"
#include "pop3/oauth.h"
#include "test.h"
#include "base/util.h"

static const struct row {
	const char *name;
	long status;
	const char *body;
	int ok;
	const char *token; /* ok: access token */
	long long expires_in; /* ok: as parsed */
	long long lifetime; /* ok: as used */
	const char *refresh; /* ok: rotated refresh token or NULL */
	const char *err_has; /* !ok: substring of the error */
} rows[] = {
    {"valid google", 200,
        "{\"access_token\":\"ya29.a0AfH6\",\"expires_in\":3599,"
        "\"scope\":\"https://mail.google.com/\",\"token_type\":\"Bearer\"}",
        1, "ya29.a0AfH6", 3599, 3599, NULL, NULL},
    {"valid microsoft with rotation", 200,
        "{\"token_type\":\"Bearer\",\"scope\":\"https://outlook.office.com/"
        "POP.AccessAsUser.All\",\"expires_in\":4443,\"ext_expires_in\":"
        "4443,\"access_token\":\"eyJ0eXAi.eyJhdWQi.sig\",\"refresh_token\":"
        "\"0.AXEA-new\",\"id_token\":null,\"nested\":{\"a\":[1,2.5e3,true,"
        "false,null,{\"b\":\"\\u00e9\"}]}}",
        1, "eyJ0eXAi.eyJhdWQi.sig", 4443, 4443, "0.AXEA-new", NULL},
    {"whitespace everywhere", 201,
        " \r\n{ \"access_token\" : \"t1\" ,\n\t\"expires_in\" : 60 } \n", 1,
        "t1", 60, 60, NULL, NULL},
    {"expires_in quoted", 200,
        "{\"access_token\":\"t\",\"expires_in\":\"3599\"}", 1, "t", 3599, 3599,
        NULL, NULL},
    {"expires_in absent", 200, "{\"access_token\":\"t\"}", 1, "t", -1,
        OAUTH_DEFAULT_LIFETIME_S, NULL, NULL},
    {"expires_in huge", 200,
        "{\"access_token\":\"t\",\"expires_in\":99999999999999999999999}", 1,
        "t", INT64_MAX, OAUTH_MAX_LIFETIME_S, NULL, NULL},
    {"expires_in zero", 200, "{\"access_token\":\"t\",\"expires_in\":0}", 1,
        "t", 0, 0, NULL, NULL},
    {"escapes in token", 200,
        "{\"access_token\":\"a\\/b\\u0041\\u002b\",\"token_type\":"
        "\"bearer\"}",
        1, "a/bA+", -1, OAUTH_DEFAULT_LIFETIME_S, NULL, NULL},
    {"surrogate pair elsewhere", 200,
        "{\"x\":\"\\ud83d\\ude00\",\"access_token\":\"t\"}", 1, "t", -1,
        OAUTH_DEFAULT_LIFETIME_S, NULL, NULL},
    {"expires_in negative", 200, "{\"access_token\":\"t\",\"expires_in\":-5}",
        0, NULL, 0, 0, NULL, "non-negative"},
    {"expires_in fractional", 200,
        "{\"access_token\":\"t\",\"expires_in\":1.5}", 0, NULL, 0, 0, NULL,
        "non-negative"},
    {"expires_in bad string", 200,
        "{\"access_token\":\"t\",\"expires_in\":\"soon\"}", 0, NULL, 0, 0, NULL,
        "non-negative"},
    {"expires_in object", 200, "{\"access_token\":\"t\",\"expires_in\":{}}", 0,
        NULL, 0, 0, NULL, "not a number"},
    {"missing access_token", 200, "{\"token_type\":\"Bearer\"}", 0, NULL, 0, 0,
        NULL, "HTTP 200: no access_token"},
    {"empty access_token", 200, "{\"access_token\":\"\"}", 0, NULL, 0, 0, NULL,
        "no access_token"},
    {"null access_token", 200, "{\"access_token\":null}", 0, NULL, 0, 0, NULL,
        "no access_token"},
    {"access_token not a string", 200, "{\"access_token\":12}", 0, NULL, 0, 0,
        NULL, "access_token is not a string"},
    {"access_token with space", 200, "{\"access_token\":\"a b\"}", 0, NULL, 0,
        0, NULL, "0x21..0x7E"},
    {"access_token with NUL", 200, "{\"access_token\":\"a\\u0000b\"}", 0, NULL,
        0, 0, NULL, "U+0000"},
    {"token_type mac", 200, "{\"access_token\":\"t\",\"token_type\":\"mac\"}",
        0, NULL, 0, 0, NULL, "token_type 'mac' is not Bearer"},
    {"duplicate access_token", 200,
        "{\"access_token\":\"a\",\"access_token\":\"b\"}", 0, NULL, 0, 0, NULL,
        "duplicate member access_token"},
    {"empty object", 200, "{}", 0, NULL, 0, 0, NULL, "no access_token"},
    {"empty body", 200, "", 0, NULL, 0, 0, NULL, "not a JSON object"},
    {"html", 200, "<html><body>Sign in</body></html>", 0, NULL, 0, 0, NULL,
        "not a JSON object"},
    {"array", 200, "[\"access_token\"]", 0, NULL, 0, 0, NULL,
        "not a JSON object"},
    {"unterminated", 200, "{\"access_token\":\"t\"", 0, NULL, 0, 0, NULL,
        "not JSON"},
    {"unterminated string", 200, "{\"access_token\":\"t", 0, NULL, 0, 0, NULL,
        "not JSON"},
    {"trailing garbage", 200, "{\"access_token\":\"t\"} x", 0, NULL, 0, 0, NULL,
        "data after the object"},
    {"trailing comma", 200, "{\"access_token\":\"t\",}", 0, NULL, 0, 0, NULL,
        "not JSON"},
    {"single quotes", 200, "{'access_token':'t'}", 0, NULL, 0, 0, NULL,
        "not JSON"},
    {"raw control char", 200, "{\"access_token\":\"a\tb\"}", 0, NULL, 0, 0,
        NULL, "not JSON"},
    {"bad escape", 200, "{\"access_token\":\"a\\qb\"}", 0, NULL, 0, 0, NULL,
        "not JSON"},
    {"lone surrogate", 200, "{\"x\":\"\\ud83d\",\"access_token\":\"t\"}", 0,
        NULL, 0, 0, NULL, "not JSON"},
    {"bad literal", 200, "{\"x\":tru,\"access_token\":\"t\"}", 0, NULL, 0, 0,
        NULL, "not JSON"},
    {"leading zero", 200, "{\"x\":012,\"access_token\":\"t\"}", 0, NULL, 0, 0,
        NULL, "not JSON"},
    {"invalid_grant", 400,
        "{\"error\":\"invalid_grant\",\"error_description\":\"Token has "
        "been expired or revoked.\"}",
        0, NULL, 0, 0, NULL,
        "HTTP 400: invalid_grant: Token has been expired or revoked."},
    {"invalid_client no description", 401, "{\"error\":\"invalid_client\"}", 0,
        NULL, 0, 0, NULL, "HTTP 401: invalid_client"},
    {"error with 200", 200,
        "{\"error\":\"invalid_scope\",\"access_token\":\"t\"}", 0, NULL, 0, 0,
        NULL, "HTTP 200: invalid_scope"},
    {"error description escaped", 400,
        "{\"error\":\"invalid_request\",\"error_description\":\"AADSTS9002313:"
        "\\r\\nTrace ID: \\u00e9\"}",
        0, NULL, 0, 0, NULL,
        "HTTP 400: invalid_request: AADSTS9002313:??Trace ID: ??"},
    {"server error not json", 502, "Bad Gateway", 0, NULL, 0, 0, NULL,
        "HTTP 502 (response is not an OAuth error object"},
    {"non-2xx without error", 500, "{\"access_token\":\"t\"}", 0, NULL, 0, 0,
        NULL, "HTTP 500: no error code"},
};

static void
t_table(void)
{
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const struct row *r = &rows[i];
		struct oauth_token t;
		struct err err = {{0}};
		int rc;

		test_begin("parse %s", r->name);
		rc = oauth_parse_token_response(r->status, r->body,
		    strlen(r->body), &t, &err);
		CHECK_INT(rc, r->ok ? 0 : -1);
		if (r->ok && rc == 0) {
			CHECK_STR(t.access_token, r->token);
			CHECK_INT(t.expires_in, r->expires_in);
			CHECK_INT(t.lifetime_s, r->lifetime);
			CHECK_STR(t.refresh_token, r->refresh);
		} else if (!r->ok) {
			CHECK(strstr(err.msg, r->err_has) != NULL,
			    "error \"%s\" lacks \"%s\"", err.msg, r->err_has);
			CHECK(t.access_token == NULL, "no token on error");
		}
		oauth_token_clear(&t);
		test_end();
	}
}

/* The access token never appears in an error message. */
static void
t_no_secret_in_errors(void)
{
	const char *bodies[] = {
	    "{\"access_token\":\"SECRETTOKEN\",\"token_type\":\"mac\"}",
	    "{\"access_token\":\"SECRETTOKEN\" x}",
	    "{\"access_token\":\"SECRET TOKEN\"}",
	    "{\"access_token\":\"SECRETTOKEN\",\"access_token\":"
	    "\"SECRETTOKEN\"}",
	};

	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		struct oauth_token t;
		struct err err = {{0}};

		CHECK(oauth_parse_token_response(200, bodies[i],
		          strlen(bodies[i]), &t, &err) == -1,
		    "row %zu fails", i);
		CHECK(strstr(err.msg, "SECRET") == NULL, "row %zu: %s", i,
		    err.msg);
		oauth_token_clear(&t);
	}
}

/* A body over the cap is refused before it is scanned. */
static void
t_oversized(void)
{
	size_t n = OAUTH_MAX_RESPONSE_BYTES + 10;
	char *big = xmalloc(n + 1);
	struct oauth_token t;
	struct err err = {{0}};
	int len;

	len = snprintf(big, n + 1, "{\"access_token\":\"t\",\"pad\":\"");
	memset(big + len, 'x', n - (size_t)len - 2);
	memcpy(big + n - 2, "\"}", 2);
	big[n] = '\0';
	CHECK(oauth_parse_token_response(200, big, n, &t, &err) == -1,
	    "oversized accepted");
	CHECK(strstr(err.msg, "larger than") != NULL, "%s", err.msg);
	/* The same shape just under the cap parses. */
	memcpy(big + OAUTH_MAX_RESPONSE_BYTES - 2, "\"}", 2);
	CHECK(oauth_parse_token_response(200, big, OAUTH_MAX_RESPONSE_BYTES, &t,
	          &err) == 0,
	    "%s", err.msg);
	CHECK_STR(t.access_token, "t");
	oauth_token_clear(&t);
	free(big);
}

/* Deep nesting is bounded, not recursed without end. */
static void
t_deep_nesting(void)
{
	char body[4096];
	struct oauth_token t;
	struct err err = {{0}};
	size_t n = 0;

	n += (size_t)snprintf(body, sizeof(body), "{\"x\":");
	for (int i = 0; i < 1000; i++)
		body[n++] = '[';
	body[n] = '\0';
	CHECK(oauth_parse_token_response(200, body, n, &t, &err) == -1,
	    "deep nesting accepted");
	oauth_token_clear(&t);
}

/* token_file: read fresh each call, trailing newline stripped. */
static void
t_token_file(void)
{
	char path[] = "/tmp/test_oauth_tokXXXXXX";
	struct mailbox_config mc;
	struct oauth_cache *c = oauth_cache_new();
	enum oauth_source src;
	struct err err = {{0}};
	char *tok = NULL;
	FILE *fp;
	int fd = mkstemp(path);

	CHECK(fd >= 0, "mkstemp");
	if (fd < 0)
		goto out;
	close(fd);
	memset(&mc, 0, sizeof(mc));
	mc.name = "mb";
	mc.auth = CONFIG_AUTH_XOAUTH2;
	mc.token_file = path;
	fp = fopen(path, "w");
	fputs("first-token\n", fp);
	fclose(fp);
	CHECK(oauth_get_token(c, &mc, 0, &tok, &src, &err) == 0, "%s", err.msg);
	CHECK_STR(tok, "first-token");
	CHECK_INT(src, OAUTH_SRC_FILE);
	free(tok);
	tok = NULL;
	fp = fopen(path, "w");
	fputs("second-token\r\n", fp);
	fclose(fp);
	CHECK(oauth_get_token(c, &mc, 0, &tok, &src, &err) == 0, "%s", err.msg);
	CHECK_STR(tok, "second-token");
	free(tok);
	tok = NULL;
	fp = fopen(path, "w");
	fputs("\n", fp);
	fclose(fp);
	CHECK(oauth_get_token(c, &mc, 0, &tok, &src, &err) == -1, "empty");
	CHECK(strstr(err.msg, "empty") != NULL, "%s", err.msg);
	unlink(path);
	CHECK(oauth_get_token(c, &mc, 0, &tok, &src, &err) == -1, "missing");
	CHECK(strstr(err.msg, "token_file") != NULL, "%s", err.msg);
out:
	free(tok);
	oauth_cache_free(&c);
	CHECK(c == NULL, "free sets NULL");
	oauth_cache_free(&c);
}

/* An unreachable endpoint is one failed request, reported with the URL. */
static void
t_unreachable_endpoint(void)
{
	struct mailbox_config mc;
	struct oauth_cache *c = oauth_cache_new();
	enum oauth_source src;
	struct err err = {{0}};
	char *tok = NULL;

	memset(&mc, 0, sizeof(mc));
	mc.name = "mb";
	mc.auth = CONFIG_AUTH_XOAUTH2;
	mc.token_url = "https://127.0.0.1:1/token";
	mc.client_id = "cid";
	mc.client_secret = "SECRETVALUE";
	mc.refresh_token = "SECRETREFRESH";
	oauth_cache_set_timeouts(c, 2000, 3000);
	CHECK(oauth_get_token(c, &mc, 0, &tok, &src, &err) == -1, "no server");
	CHECK_INT(src, OAUTH_SRC_FETCHED);
	CHECK(strstr(err.msg, "token endpoint https://127.0.0.1:1/token") !=
	        NULL,
	    "%s", err.msg);
	CHECK(strstr(err.msg, "SECRET") == NULL, "%s", err.msg);
	CHECK(tok == NULL, "no token");
	/* http:// is refused by the protocol allow-list. */
	mc.token_url = "http://127.0.0.1:1/token";
	CHECK(oauth_get_token(c, &mc, 0, &tok, &src, &err) == -1, "http");
	CHECK(strstr(err.msg, "SECRET") == NULL, "%s", err.msg);
	mc.token_url = NULL;
	CHECK(oauth_get_token(c, &mc, 0, &tok, &src, &err) == -1, "no url");
	oauth_cache_free(&c);
}

static void
t_metrics_counters(void)
{
	struct metrics *m = metrics_new("1");
	struct buf b;
	int mb = metrics_mailbox(m, "m365");

	buf_init(&b, 1 << 20);
	metrics_add_token(m, mb, 1);
	metrics_add_token(m, mb, 1);
	metrics_add_token(m, mb, 0);
	metrics_add_token(m, 99, 0); /* out of range: ignored */
	CHECK_INT(metrics_get_token_refreshes(m, mb), 2);
	CHECK_INT(metrics_get_token_failures(m, mb), 1);
	CHECK(metrics_render(m, &b) == 0, "render");
	CHECK(
	    strstr(buf_cstr(&b),
	        "bouncerd_oauth_token_refreshes_total{mailbox=\"m365\"} 2\n") !=
	        NULL,
	    "%s", buf_cstr(&b));
	CHECK(
	    strstr(buf_cstr(&b),
	        "bouncerd_oauth_token_failures_total{mailbox=\"m365\"} 1\n") !=
	        NULL,
	    "failures");
	buf_free(&b);
	metrics_free(&m);
}

int
main(void)
{
	t_table();
	RUN(t_no_secret_in_errors);
	RUN(t_oversized);
	RUN(t_deep_nesting);
	RUN(t_token_file);
	RUN(t_unreachable_endpoint);
	RUN(t_metrics_counters);
	return test_done();
}
