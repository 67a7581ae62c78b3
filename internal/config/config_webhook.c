/*
 * config_webhook.c - the keys of a webhook endpoint (webhooks:): URL,
 * Standard Webhooks secret (whsec_ + base64), events, extra headers, the
 * listmonk format and its basic-auth user, retry timing.  Every key needs
 * a restart; the delivery worker copies them at start.
 */
#include "config/config.h"

#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "config/config_int.h"

/* webhooks: one entry per endpoint (internal/webhook.c delivers). */
static const char *const webhook_format_names[] = {"standard", "listmonk",
    NULL};
static const char *const webhook_event_names[] = {"suppression.added",
    "suppression.lifted", "suppression.expired", "bounce.recorded",
    "complaint.recorded", NULL};
/* set by bouncerd itself, or by libcurl from the body */
static const char *const webhook_reserved_headers[] = {"content-type",
    "content-length", "host", "transfer-encoding", "connection", "expect",
    "webhook-id", "webhook-timestamp", "webhook-signature", NULL};

static int
check_webhook_url(const char *v, char *msg, size_t n)
{
	const char *host;
	size_t i;

	if (strncmp(v, "https://", 8) == 0)
		host = v + 8;
	else if (strncmp(v, "http://", 7) == 0)
		host = v + 7;
	else
		host = NULL;
	if (host == NULL || *host == '\0' || *host == '/' || *host == ':' ||
	    strlen(v) > 2048)
		goto bad;
	for (i = 0; v[i] != '\0'; i++)
		if ((unsigned char)v[i] <= ' ' || v[i] == 0x7f)
			goto bad;
	return 0;
bad:
	snprintf(msg, n, "'%s' is not an https:// (or http://) URL", v);
	return -1;
}

static int
check_webhook_event(const char *v, char *msg, size_t n)
{
	size_t i;

	for (i = 0; webhook_event_names[i] != NULL; i++)
		if (strcmp(v, webhook_event_names[i]) == 0)
			return 0;
	snprintf(msg, n,
	    "'%s' is not one of suppression.added, suppression.lifted, "
	    "suppression.expired, bounce.recorded or complaint.recorded",
	    v);
	return -1;
}

static int
check_webhook_header(const char *v, char *msg, size_t n)
{
	const char *colon = strchr(v, ':');
	char name[80];
	size_t len, i;

	if (colon == NULL || colon == v || (size_t)(colon - v) >= sizeof(name))
		goto bad;
	len = (size_t)(colon - v);
	for (i = 0; i < len; i++) {
		if (!config_header_char((unsigned char)v[i]))
			goto bad;
		name[i] = (char)tolower((unsigned char)v[i]);
	}
	name[len] = '\0';
	for (i = 0; colon[1 + i] != '\0'; i++)
		if ((unsigned char)colon[1 + i] < ' ' && colon[1 + i] != '\t')
			goto bad;
	for (i = 0; webhook_reserved_headers[i] != NULL; i++)
		if (strcmp(name, webhook_reserved_headers[i]) == 0) {
			snprintf(msg, n, "header %.*s is set by bouncerd",
			    (int)len, v);
			return -1;
		}
	return 0;
bad:
	/* the value may be a token: name only the header's name, if any */
	if (colon == NULL)
		snprintf(msg, n,
		    "is not \"Name: value\" (a header name, a colon, a "
		    "value)");
	else
		snprintf(msg, n,
		    "'%.*s' is not \"Name: value\" (a header name, a colon, "
		    "a value without control characters)",
		    (int)(colon - v), v);
	return -1;
}

/* "whsec_" + strict base64 of 24..64 bytes (Standard Webhooks). */
static int
check_webhook_secret(const char *v, char *msg, size_t n)
{
	static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnop"
	                          "qrstuvwxyz0123456789+/";
	const char *p = v + 6;
	size_t len, pad = 0, i, bytes;

	if (strncmp(v, "whsec_", 6) != 0) {
		snprintf(msg, n, "must start with whsec_ (Standard Webhooks)");
		return -1;
	}
	len = strlen(p);
	while (pad < 2 && len > pad && p[len - 1 - pad] == '=')
		pad++;
	for (i = 0; i < len - pad; i++)
		if (strchr(b64, p[i]) == NULL || p[i] == '\0')
			break;
	bytes = len / 4 * 3 - pad;
	if (len == 0 || len % 4 != 0 || i < len - pad) {
		snprintf(msg, n, "is not whsec_ followed by base64");
		return -1;
	}
	if (bytes < 24 || bytes > 64) {
		snprintf(msg, n,
		    "holds %zu bytes; Standard Webhooks secrets are 24 to 64 "
		    "random bytes (whsec_ + base64)",
		    bytes);
		return -1;
	}
	return 0;
}

#define WH(f) offsetof(struct webhook_config, f)
static const struct key webhook_keys[] = {
    KEY("name", K_STR, WH(name), .flags = F_REQ | F_RESTART,
        .check = config_check_name),
    KEY("url", K_STR, WH(url), .flags = F_REQ | F_RESTART,
        .check = check_webhook_url),
    KEY("plain_http", K_BOOL, WH(plain_http), .def = "false",
        .flags = F_RESTART),
    KEY("format", K_ENUM, WH(format), .def = "standard",
        .choices = webhook_format_names, .flags = F_RESTART),
    KEY("secret", K_STR, WH(secret), .flags = F_SECRET | F_RESTART,
        .excl = "secret_file"),
    KEY("secret_file", K_STR, WH(secret_file), .flags = F_LOADS | F_RESTART,
        .aux = WH(secret)),
    KEY("events", K_STRLIST, WH(events), .aux = WH(n_events),
        .flags = F_RESTART, .check = check_webhook_event),
    KEY("timeout", K_DUR, WH(timeout_ms), .def = "10s", .min = SEC,
        .max = 5 * MIN, .flags = F_RESTART),
    KEY("ca_file", K_STR, WH(ca_file), .flags = F_FILE | F_RESTART),
    KEY("headers", K_STRLIST, WH(headers), .aux = WH(n_headers),
        .flags = F_SECRET | F_RESTART, .check = check_webhook_header),
    KEY("username", K_STR, WH(username), .flags = F_RESTART,
        .check = config_check_nonempty),
    KEY("password", K_STR, WH(password), .flags = F_SECRET | F_RESTART,
        .excl = "password_file"),
    KEY("password_file", K_STR, WH(password_file), .flags = F_LOADS | F_RESTART,
        .aux = WH(password)),
    KEY("max_age", K_DUR, WH(max_age_ms), .def = "3d", .min = MIN,
        .max = 30 * DAY, .flags = F_RESTART),
    KEY("backoff_min", K_DUR, WH(backoff_min_ms), .def = "1s", .min = 100,
        .max = HOUR, .flags = F_RESTART),
    KEY("backoff_max", K_DUR, WH(backoff_max_ms), .def = "10m", .min = 100,
        .max = DAY, .flags = F_RESTART),
    KEY("degraded_after", K_DUR, WH(degraded_after_ms), .def = "15m",
        .min = SEC, .max = 30 * DAY, .flags = F_RESTART),
};

static void webhook_post(struct ctx *c, const struct node *map, void *base,
    const char *path, const struct node *where);

const struct table config_webhook_table = {.keys = webhook_keys,
    .n = NELEM(webhook_keys),
    .elem_size = sizeof(struct webhook_config),
    .post = webhook_post};

/* The keys of one format, the secret's form, http:// only when asked
 * for, the default events. */
static void
webhook_post(struct ctx *c, const struct node *map, void *base,
    const char *path, const struct node *where)
{
	static const char *const std_events[] = {"suppression.added",
	    "suppression.lifted", "suppression.expired", "bounce.recorded",
	    "complaint.recorded", NULL};
	static const char *const lm_events[] = {"bounce.recorded",
	    "complaint.recorded", NULL};
	struct webhook_config *w = base;
	const char *const *def;
	const struct node *n;
	char full[300], msg[300];
	size_t i;

	w->line = where != NULL ? where->line : 0;
	if (w->url != NULL && strncmp(w->url, "http://", 7) == 0 &&
	    !w->plain_http) {
		config_join_path(full, sizeof(full), path, "url");
		config_err_node(c, config_key_node(map, "url", where), full,
		    "plain http:// sends events unencrypted; use https:// or "
		    "set plain_http: true");
	}
	if (w->secret != NULL &&
	    check_webhook_secret(w->secret, msg, sizeof(msg)) != 0) {
		const char *k =
		    config_given(map, "secret_file") ? "secret_file" : "secret";
		config_join_path(full, sizeof(full), path, k);
		config_err_node(c, config_key_node(map, k, where), full, "%s",
		    msg);
	}
	if (w->format == CONFIG_WEBHOOK_STANDARD) {
		if (w->secret == NULL && !config_given(map, "secret_file")) {
			config_join_path(full, sizeof(full), path, "secret");
			config_err_node(c, where, full,
			    "required key is missing (or set secret_file)");
		}
		for (i = 0; i < 3; i++) {
			static const char *const lm_keys[] = {"username",
			    "password", "password_file"};
			if ((n = config_map_get(map, lm_keys[i])) == NULL)
				continue;
			config_join_path(full, sizeof(full), path, lm_keys[i]);
			config_err_node(c, n, full,
			    "only valid with format: listmonk");
		}
	} else {
		if (!config_given(map, "username")) {
			config_join_path(full, sizeof(full), path, "username");
			config_err_node(c, where, full,
			    "required with format: listmonk (an API user)");
		}
		if (!config_given(map, "password") &&
		    !config_given(map, "password_file")) {
			config_join_path(full, sizeof(full), path, "password");
			config_err_node(c, where, full,
			    "required with format: listmonk (or set "
			    "password_file)");
		}
	}
	if (w->backoff_min_ms > w->backoff_max_ms) {
		config_join_path(full, sizeof(full), path, "backoff_min");
		config_err_node(c, config_key_node(map, "backoff_min", where),
		    full, "must not exceed backoff_max");
	}
	n = config_map_get(map, "events");
	if (n != NULL && !config_node_is_null(n)) {
		if (n->kind == N_SEQ && n->n == 0) {
			config_join_path(full, sizeof(full), path, "events");
			config_err_node(c, n, full, "lists no event");
		}
		return;
	}
	def = w->format == CONFIG_WEBHOOK_LISTMONK ? lm_events : std_events;
	for (i = 0; def[i] != NULL; i++)
		;
	w->events = xcalloc(i, sizeof(char *));
	for (w->n_events = 0; def[w->n_events] != NULL; w->n_events++)
		w->events[w->n_events] = xstrdup(def[w->n_events]);
}
