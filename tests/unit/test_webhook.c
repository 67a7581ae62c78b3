/*
 * test_webhook.c - the Standard Webhooks signature against the
 * specification's published example, the secret's decoding, the retry
 * delays, and the webhooks: keys of the configuration (errors with
 * file:line, defaults, masking).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "test.h"
#include "service/webhook.h"

/* The example of the Standard Webhooks specification and its libraries'
 * tests. */
static void
t_sign_vector(void)
{
	unsigned char *key = NULL;
	size_t len = 0;
	char sig[128];
	const char *body = "{\"test\": 2432232314}";

	CHECK_INT(webhook_secret_decode(
	              "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", &key, &len),
	    0);
	CHECK_INT(len, 24);
	CHECK_INT(webhook_sign(key, len, "msg_p5jXN8AQM9LWM0D4loKWxJek",
	              1614265330, body, strlen(body), sig, sizeof(sig)),
	    0);
	CHECK_STR(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
	/* a different timestamp, id or body gives another signature */
	CHECK_INT(webhook_sign(key, len, "msg_p5jXN8AQM9LWM0D4loKWxJek",
	              1614265331, body, strlen(body), sig, sizeof(sig)),
	    0);
	CHECK(strcmp(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=") !=
	        0,
	    "timestamp not signed");
	CHECK_INT(webhook_sign(key, len, "x", 1, body, strlen(body), sig, 10),
	    -1);
	free(key);
	CHECK_INT(webhook_secret_decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
	              &key, &len),
	    -1);
	CHECK(key == NULL, "no key without whsec_");
}

static void
t_backoff(void)
{
	/* min * 2^(n-1), capped, then a point in the upper half */
	CHECK_INT(webhook_backoff_ms(1, 1000, 600000, 0.0), 500);
	CHECK_INT(webhook_backoff_ms(1, 1000, 600000, 0.999), 999);
	CHECK_INT(webhook_backoff_ms(4, 1000, 600000, 0.0), 4000);
	CHECK_INT(webhook_backoff_ms(4, 1000, 600000, 0.5), 6000);
	CHECK_INT(webhook_backoff_ms(30, 1000, 600000, 0.0), 300000);
	CHECK(webhook_backoff_ms(1000, 1000, 600000, 0.999) < 600000, "capped");
	CHECK(webhook_backoff_ms(1000, 1000, 600000, 0.999) >= 599000,
	    "capped near max");
}

static const char base_cfg[] = "database:\n"
                               "  url: postgresql://u@localhost/db\n"
                               "mailboxes:\n"
                               "  - name: m1\n"
                               "    host: pop.example.com\n"
                               "    username: u\n"
                               "    password: p\n"
                               "webhooks:\n";

/* Loads base_cfg + tail; returns the errors joined by '\n' (caller
 * frees) or NULL when it loads, with *out set. */
static char *
load(const char *tail, struct config **out)
{
	struct config_errors errs = {NULL, 0};
	char *text = NULL, *joined = NULL;
	size_t len = 0;

	*out = NULL;
	text = malloc(strlen(base_cfg) + strlen(tail) + 1);
	memcpy(text, base_cfg, strlen(base_cfg));
	memcpy(text + strlen(base_cfg), tail, strlen(tail) + 1);
	if (config_from_string("/tmp/wh.yaml", text, strlen(text), out,
	        &errs) != 0) {
		for (size_t i = 0; i < errs.count; i++) {
			size_t add = strlen(errs.items[i]) + 2;
			joined = realloc(joined, len + add);
			memcpy(joined + len, errs.items[i], add - 2);
			len += add - 2;
			joined[len++] = '\n';
			joined[len] = '\0';
		}
	}
	config_errors_free(&errs);
	free(text);
	return joined;
}

#define SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

static void
t_config_ok(void)
{
	struct config *cfg = NULL;
	char *e = load("  - name: crm\n"
	               "    url: https://crm.example.com/h\n"
	               "    secret: " SECRET "\n"
	               "    headers: [\"Authorization: Bearer tok123\"]\n",
	    &cfg);
	char buf[512];

	CHECK(e == NULL, "%s", e ? e : "");
	free(e);
	if (cfg == NULL)
		return;
	CHECK_INT(cfg->n_webhooks, 1);
	CHECK_INT(cfg->webhooks[0].n_events, 5);
	CHECK_STR(cfg->webhooks[0].events[0], "suppression.added");
	CHECK_INT(cfg->webhooks[0].timeout_ms, 10000);
	CHECK_INT(cfg->webhooks[0].max_age_ms, 3LL * 24 * 3600 * 1000);
	CHECK_INT(cfg->webhooks[0].line, 9);
	CHECK_INT(config_value(cfg, "webhooks[0].secret", buf, sizeof(buf)), 0);
	CHECK_STR(buf, "\"********\"");
	CHECK_INT(config_value(cfg, "webhooks[0].headers", buf, sizeof(buf)),
	    0);
	CHECK_STR(buf, "[\"Authorization: ********\"]");
	config_free(&cfg);

	e = load("  - name: lm\n"
	         "    format: listmonk\n"
	         "    url: https://listmonk.example.com/webhooks/bounce\n"
	         "    username: api\n"
	         "    password: tok\n",
	    &cfg);
	CHECK(e == NULL, "%s", e ? e : "");
	free(e);
	if (cfg == NULL)
		return;
	CHECK_INT(cfg->webhooks[0].n_events, 2);
	CHECK_STR(cfg->webhooks[0].events[0], "bounce.recorded");
	CHECK_STR(cfg->webhooks[0].events[1], "complaint.recorded");
	config_free(&cfg);
}

static void
t_config_errors(void)
{
	static const struct {
		const char *tail, *want;
	} rows[] = {
	    {"  - name: a\n    url: http://x.example/h\n    secret: " SECRET
	     "\n",
	        "/tmp/wh.yaml:10:10: webhooks[0].url: plain http:// sends "
	        "events unencrypted; use https:// or set plain_http: true"},
	    {"  - name: a\n    url: ftp://x.example/h\n    secret: " SECRET
	     "\n",
	        "webhooks[0].url: 'ftp://x.example/h' is not an https:// (or "
	        "http://) URL"},
	    {"  - name: a\n    url: https://x.example/h\n",
	        "/tmp/wh.yaml:9:5: webhooks[0].secret: required key is "
	        "missing (or set secret_file)"},
	    {"  - name: a\n    url: https://x.example/h\n    secret: abc\n",
	        "webhooks[0].secret: must start with whsec_"},
	    {"  - name: a\n    url: https://x.example/h\n    secret: "
	     "whsec_c2hvcnQ=\n",
	        "webhooks[0].secret: holds 5 bytes; Standard Webhooks "
	        "secrets are 24 to 64 random bytes"},
	    {"  - name: a\n    url: https://x.example/h\n    secret: "
	     "whsec_not*base64\n",
	        "webhooks[0].secret: is not whsec_ followed by base64"},
	    {"  - name: a\n    url: https://x.example/h\n    secret: " SECRET
	     "\n    events: [bounce.recorded, bounce.deleted]\n",
	        "webhooks[0].events[1]: 'bounce.deleted' is not one of"},
	    {"  - name: a\n    url: https://x.example/h\n    secret: " SECRET
	     "\n    events: []\n",
	        "webhooks[0].events: lists no event"},
	    {"  - name: a\n    url: https://x.example/h\n    secret: " SECRET
	     "\n    headers: [\"Content-Type: text/plain\"]\n",
	        "webhooks[0].headers[0]: header Content-Type is set by "
	        "bouncerd"},
	    {"  - name: a\n    url: https://x.example/h\n    secret: " SECRET
	     "\n    headers: [\"no colon secret-token\"]\n",
	        "webhooks[0].headers[0]: is not \"Name: value\""},
	    {"  - name: a\n    url: https://x.example/h\n    secret: " SECRET
	     "\n    username: u\n",
	        "webhooks[0].username: only valid with format: listmonk"},
	    {"  - name: a\n    format: listmonk\n    url: "
	     "https://x.example/h\n",
	        "webhooks[0].username: required with format: listmonk"},
	    {"  - name: a\n    url: https://x.example/h\n    secret: " SECRET
	     "\n  - name: a\n    url: https://y.example/h\n    secret: " SECRET
	     "\n",
	        "webhooks[1].name: duplicate webhook name 'a' (first at line "
	        "9)"},
	    {"  - name: a\n    url: https://x.example/h\n    secret: " SECRET
	     "\n    backoff_min: 1h\n    backoff_max: 1m\n",
	        "webhooks[0].backoff_min: must not exceed backoff_max"},
	    {"  - name: a\n    url: https://x.example/h\n    secret: " SECRET
	     "\n    timout: 5s\n",
	        "webhooks[0].timout: unknown key (did you mean 'timeout'?)"},
	};

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct config *cfg = NULL;
		char *e = load(rows[i].tail, &cfg);
		CHECK(e != NULL && strstr(e, rows[i].want) != NULL,
		    "row %zu: want \"%s\" in \"%s\"", i, rows[i].want,
		    e ? e : "(loaded)");
		/* a header's value is never echoed */
		CHECK(e == NULL || strstr(e, "secret-token") == NULL,
		    "row %zu echoes a header value", i);
		free(e);
		config_free(&cfg);
	}
}

int
main(void)
{
	RUN(t_sign_vector);
	RUN(t_backoff);
	RUN(t_config_ok);
	RUN(t_config_errors);
	return test_done();
}
