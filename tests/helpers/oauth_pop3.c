/*
 * oauth_pop3.c - drives internal/oauth and internal/pop3 the way a mailbox
 * pass does: get a token, log in with XOAUTH2, and when the server refuses
 * the login, get a fresh token once and log in once more.  Then UIDL/LIST
 * and RETR of every message.  Used by tests/integration/test_oauth.sh.
 *
 * usage: oauth_pop3 STEP...   STEP: pass | expire | revoke
 * Settings from the environment: OA_HOST OA_PORT OA_CA OA_USER
 * OA_TOKEN_URL OA_CLIENT_ID OA_CLIENT_SECRET [OA_REFRESH] [OA_SCOPE]
 * OA_CONTROL (http://host:port of the test server's control endpoints).
 * Prints one line per event; tokens are never printed.
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "config/config.h"
#include "pop3/oauth.h"
#include "pop3/pop3.h"
#include "base/util.h"

static const char *
env(const char *k)
{
	const char *v = getenv(k);

	return v != NULL && *v != '\0' ? v : NULL;
}

static const char *
src_name(enum oauth_source s)
{
	return s == OAUTH_SRC_FILE ? "file"
	    : s == OAUTH_SRC_CACHE ? "cache"
	                           : "fetched";
}

static struct pop3 *
login(const struct mailbox_config *mc, const char *token, struct err *err)
{
	struct pop3_options o;
	struct pop3 *p;

	memset(&o, 0, sizeof(o));
	o.mailbox_name = mc->name;
	o.host = mc->host;
	o.port = mc->port;
	o.tls = POP3_TLS_IMPLICIT;
	o.ca_file = mc->ca_file;
	o.username = mc->username;
	o.auth = POP3_AUTH_XOAUTH2;
	o.bearer_token = token;
	if ((p = pop3_new(&o, err)) == NULL)
		return NULL;
	if (pop3_connect(p, err) != 0) {
		if (pop3_error_kind(p) != POP3_ERR_AUTH)
			err_prefix(err, "kind %s",
			    pop3_error_name(pop3_error_kind(p)));
		else
			err_prefix(err, "auth");
		pop3_abort(&p);
		return NULL;
	}
	return p;
}

static int
get_token(struct oauth_cache *c, const struct mailbox_config *mc, int force,
    char **tok)
{
	enum oauth_source src;
	struct err err = {{0}};

	if (oauth_get_token(c, mc, force, tok, &src, &err) != 0) {
		printf("token error src=%s: %s\n", src_name(src), err.msg);
		return -1;
	}
	printf("token ok src=%s\n", src_name(src));
	return 0;
}

static int
do_pass(struct oauth_cache *c, const struct mailbox_config *mc)
{
	struct err err = {{0}};
	struct pop3 *p = NULL;
	struct pop3_entry *ent = NULL;
	struct buf msg;
	char *tok = NULL;
	size_t n = 0, bytes = 0;
	int rc = -1;

	buf_init(&msg, 1 << 20);
	if (get_token(c, mc, 0, &tok) != 0)
		goto out;
	if ((p = login(mc, tok, &err)) == NULL) {
		printf("login refused: %s\n", err.msg);
		if (strncmp(err.msg, "auth", 4) != 0)
			goto out;
		free(tok);
		tok = NULL;
		/* once, with a token fetched now: no retry storm */
		if (get_token(c, mc, 1, &tok) != 0)
			goto out;
		if ((p = login(mc, tok, &err)) == NULL) {
			printf("login refused: %s\n", err.msg);
			goto out;
		}
	}
	printf("login ok\n");
	if (pop3_scan(p, &ent, &n, &err) != 0) {
		printf("scan failed: %s\n", err.msg);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if (pop3_retr(p, ent[i].msgno, &msg, &err) != 0) {
			printf("retr failed: %s\n", err.msg);
			goto out;
		}
		bytes += msg.len;
	}
	if (pop3_quit(p, &err) != 0) {
		printf("quit failed: %s\n", err.msg);
		goto out;
	}
	printf("pass ok messages=%zu bytes=%zu\n", n, bytes);
	rc = 0;
out:
	if (rc != 0)
		printf("pass failed\n");
	free(ent);
	buf_free(&msg);
	pop3_free(&p);
	free(tok);
	return rc;
}

static int
control(const char *what)
{
	char url[512];
	CURL *h = curl_easy_init();
	CURLcode cc;
	long status = 0;

	snprintf(url, sizeof(url), "%s/%s", env("OA_CONTROL"), what);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, fwrite);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, stderr);
	cc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(h);
	printf("control %s %s\n", what,
	    cc == CURLE_OK && status == 200 ? "ok" : "failed");
	return cc == CURLE_OK && status == 200 ? 0 : -1;
}

int
main(int argc, char **argv)
{
	struct mailbox_config mc;
	struct oauth_cache *c;
	int64_t port = 0;
	int failed = 0;

	if (env("OA_HOST") == NULL || env("OA_PORT") == NULL ||
	    env("OA_TOKEN_URL") == NULL || env("OA_CONTROL") == NULL ||
	    parse_int64(env("OA_PORT"), 1, 65535, &port, NULL) != 0) {
		fprintf(stderr, "oauth_pop3: OA_* settings missing\n");
		return 2;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	memset(&mc, 0, sizeof(mc));
	mc.name = "oauthbox";
	mc.host = (char *)env("OA_HOST");
	mc.port = (int)port;
	mc.ca_file = (char *)env("OA_CA");
	mc.username = (char *)env("OA_USER");
	mc.auth = CONFIG_AUTH_XOAUTH2;
	mc.token_url = (char *)env("OA_TOKEN_URL");
	mc.client_id = (char *)env("OA_CLIENT_ID");
	mc.client_secret = (char *)env("OA_CLIENT_SECRET");
	mc.refresh_token = (char *)env("OA_REFRESH");
	mc.scope = (char *)env("OA_SCOPE");
	c = oauth_cache_new();
	oauth_cache_set_ca_file(c, mc.ca_file);
	for (int i = 1; i < argc; i++) {
		printf("step %d %s\n", i, argv[i]);
		if (strcmp(argv[i], "pass") == 0)
			failed |= do_pass(c, &mc) != 0;
		else if (strcmp(argv[i], "expire") == 0 ||
		    strcmp(argv[i], "revoke") == 0)
			failed |= control(argv[i]) != 0;
		else {
			fprintf(stderr, "oauth_pop3: unknown step %s\n",
			    argv[i]);
			failed = 1;
		}
		fflush(stdout);
	}
	oauth_cache_free(&c);
	curl_global_cleanup();
	return failed ? 1 : 0;
}
