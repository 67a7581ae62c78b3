/*
 * config_mailbox.c - the keys of a mailbox (host, TLS, login, OAuth 2.0
 * endpoint and client) and of the per-pass settings in "defaults:" that a
 * mailbox inherits, with the checks between them: which login keys go
 * with which auth, the token endpoint of a provider, jitter < interval.
 */
#include "config/config.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "config/config_int.h"

static const char *const tls_names[] = {"implicit", "starttls", "none", NULL};
static const char *const after_names[] = {"delete", "keep", NULL};
static const char *const first_names[] = {"count", "record_only", NULL};
static const char *const auth_names[] = {"password", "xoauth2", "apop", NULL};
static const char *const provider_names[] = {"none", "microsoft", "google",
    NULL};

#define POLL(f) offsetof(struct poll_config, f)
static const struct key poll_keys[] = {
    KEY("interval", K_DUR, POLL(interval_ms), .def = "5m", .min = 10 * SEC,
        .max = DAY),
    KEY("jitter", K_DUR, POLL(jitter_ms), .def = "30s", .max = DAY),
    KEY("max_messages", K_INT, POLL(max_messages), .def = "500", .min = 1,
        .max = 100000),
    KEY("max_message_bytes", K_SIZE, POLL(max_message_bytes), .def = "4MiB",
        .min = 64 * KIB, .max = GIB),
    KEY("after_processing", K_ENUM, POLL(after_processing), .def = "delete",
        .choices = after_names),
    KEY("keep_days", K_INT, POLL(keep_days), .def = "7", .max = 3650),
    KEY("connect_timeout", K_DUR, POLL(connect_timeout_ms), .def = "30s",
        .min = SEC, .max = 10 * MIN),
    KEY("command_timeout", K_DUR, POLL(command_timeout_ms), .def = "60s",
        .min = SEC, .max = HOUR),
    KEY("first_pass", K_ENUM, POLL(first_pass), .def = "count",
        .choices = first_names),
    KEY("max_age", K_DUR, POLL(max_age_ms), .def = "30d", .max = 3650 * DAY),
    KEY("pass_timeout", K_DUR, POLL(pass_timeout_ms), .def = "15m",
        .min = 10 * SEC, .max = DAY),
};

static void poll_post(struct ctx *c, const struct node *map, void *base,
    const char *path, const struct node *where);

const struct table config_poll_table = {.keys = poll_keys,
    .n = NELEM(poll_keys),
    .post = poll_post};

#define MB(f) offsetof(struct mailbox_config, f)
static const struct key mailbox_keys[] = {
    KEY("name", K_STR, MB(name), .flags = F_REQ, .check = config_check_name),
    KEY("host", K_STR, MB(host), .flags = F_REQ, .check = config_check_host),
    KEY("port", K_INT, MB(port), .min = 1, .max = 65535),
    KEY("tls", K_ENUM, MB(tls), .def = "implicit", .choices = tls_names),
    KEY("ca_file", K_STR, MB(ca_file), .flags = F_FILE),
    KEY("username", K_STR, MB(username), .flags = F_REQ),
    KEY("auth", K_ENUM, MB(auth), .def = "password", .choices = auth_names),
    KEY("password", K_STR, MB(password), .flags = F_SECRET,
        .excl = "password_file"),
    KEY("password_file", K_STR, MB(password_file), .flags = F_LOADS,
        .aux = MB(password)),
    KEY("provider", K_ENUM, MB(provider), .def = "none",
        .choices = provider_names),
    KEY("token_file", K_STR, MB(token_file), .flags = F_FILE),
    KEY("token_url", K_STR, MB(token_url), .check = config_check_https),
    KEY("token_ca_file", K_STR, MB(token_ca_file), .flags = F_FILE),
    KEY("client_id", K_STR, MB(client_id), .check = config_check_nonempty),
    KEY("client_secret", K_STR, MB(client_secret), .flags = F_SECRET,
        .excl = "client_secret_file"),
    KEY("client_secret_file", K_STR, MB(client_secret_file), .flags = F_LOADS,
        .aux = MB(client_secret)),
    KEY("refresh_token", K_STR, MB(refresh_token), .flags = F_SECRET,
        .excl = "refresh_token_file"),
    KEY("refresh_token_file", K_STR, MB(refresh_token_file), .flags = F_LOADS,
        .aux = MB(refresh_token)),
    KEY("scope", K_STR, MB(scope), .check = config_check_nonempty),
    KEY("", K_INLINE, MB(poll), .sub = &config_poll_table),
};

static void mailbox_init(struct ctx *c, void *elem);
static void mailbox_post(struct ctx *c, const struct node *map, void *base,
    const char *path, const struct node *where);

static int mailbox_hide(const void *base, const char *key);

const struct table config_mailbox_table = {.keys = mailbox_keys,
    .n = NELEM(mailbox_keys),
    .elem_size = sizeof(struct mailbox_config),
    .init = mailbox_init,
    .post = mailbox_post,
    .hide = mailbox_hide};

static void
poll_post(struct ctx *c, const struct node *map, void *base, const char *path,
    const struct node *where)
{
	const struct poll_config *p = base;
	char full[300], j[32], iv[32];

	/* A mailbox that changes neither key inherits a checked pair. */
	if (p->jitter_ms < p->interval_ms ||
	    (strcmp(path, "defaults") != 0 &&
	        config_map_get(map, "jitter") == NULL &&
	        config_map_get(map, "interval") == NULL))
		return;
	config_join_path(full, sizeof(full), path, "jitter");
	config_fmt_duration(p->jitter_ms, j, sizeof(j));
	config_fmt_duration(p->interval_ms, iv, sizeof(iv));
	config_err_node(c,
	    config_key_node(map, "jitter",
	        config_key_node(map, "interval", where)),
	    full, "%s must be less than interval (%s)", j, iv);
}

static void
mailbox_init(struct ctx *c, void *elem)
{
	struct mailbox_config *mb = elem;

	mb->poll = c->cfg->defaults;
}

static const char *
token_url_for(enum config_provider p)
{
	switch (p) {
	case CONFIG_PROVIDER_MICROSOFT:
		return "https://login.microsoftonline.com/common/oauth2/v2.0/"
		       "token";
	case CONFIG_PROVIDER_GOOGLE:
		return "https://oauth2.googleapis.com/token";
	default:
		return NULL;
	}
}

static int
mailbox_hide(const void *base, const char *key)
{
	const struct mailbox_config *mb = base;

	return mb->auth != CONFIG_AUTH_XOAUTH2 && strcmp(key, "provider") == 0;
}

static void
mailbox_post(struct ctx *c, const struct node *map, void *base,
    const char *path, const struct node *where)
{
	static const char *const oauth_keys[] = {"provider", "token_file",
	    "token_url", "token_ca_file", "client_id", "client_secret",
	    "client_secret_file", "refresh_token", "refresh_token_file",
	    "scope", NULL};
	static const char *const pw_keys[] = {"password", "password_file",
	    NULL};
	struct mailbox_config *mb = base;
	const char *const *other;
	char full[300];
	size_t i;

	if (mb->port == 0)
		mb->port = mb->tls == CONFIG_TLS_IMPLICIT ? 995 : 110;
	other = mb->auth != CONFIG_AUTH_XOAUTH2 ? oauth_keys : pw_keys;
	for (i = 0; other[i] != NULL; i++) {
		const struct node *n = config_map_get(map, other[i]);
		/* "provider: none" is the default, harmless anywhere. */
		if (n == NULL ||
		    (n->kind == N_SCALAR && strcmp(n->val, "none") == 0 &&
		        strcmp(other[i], "provider") == 0))
			continue;
		config_join_path(full, sizeof(full), path, other[i]);
		config_err_node(c, n, full, "only valid with auth: %s",
		    mb->auth != CONFIG_AUTH_XOAUTH2 ? "xoauth2" : "password");
	}
	if (mb->auth != CONFIG_AUTH_XOAUTH2) {
		if (!config_given(map, "password") &&
		    !config_given(map, "password_file")) {
			config_join_path(full, sizeof(full), path, "password");
			config_err_node(c, where, full,
			    "required key is missing (or set password_file)");
		}
		return;
	}
	if (mb->token_url == NULL && token_url_for(mb->provider) != NULL)
		mb->token_url = xstrdup(token_url_for(mb->provider));
	if (config_given(map, "token_file"))
		return;
	if (!config_given(map, "client_id")) {
		config_join_path(full, sizeof(full), path, "client_id");
		config_err_node(c, where, full,
		    "required with auth: xoauth2 unless token_file is set");
		return;
	}
	if (!config_given(map, "client_secret") &&
	    !config_given(map, "client_secret_file")) {
		config_join_path(full, sizeof(full), path, "client_secret");
		config_err_node(c, where, full,
		    "required with client_id (or set client_secret_file)");
	}
	if (!config_given(map, "refresh_token") &&
	    !config_given(map, "refresh_token_file") &&
	    !config_given(map, "scope")) {
		config_join_path(full, sizeof(full), path, "refresh_token");
		config_err_node(c, where, full,
		    "required with client_id (or set refresh_token_file or "
		    "scope)");
	}
	if (mb->token_url == NULL && !config_given(map, "token_url")) {
		config_join_path(full, sizeof(full), path, "token_url");
		config_err_node(c, where, full,
		    "required with client_id when provider is not set");
	}
}
