/*
 * config.h - the YAML configuration file (libyaml) -> struct config.
 * One key table drives parsing, defaults, range checks, the masked dump of
 * --check-config and the list of documented keys.  Every error names
 * file:line:column and the key path.  Config is plain data: unlike other
 * modules, struct config and struct mailbox_config are public and read
 * directly by the rest of the program.  The loader never logs.
 */
#ifndef BOUNCER_CONFIG_H
#define BOUNCER_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "base/log.h"

/* Largest configuration file accepted. */
#define CONFIG_MAX_FILE_BYTES (1024 * 1024)
/* Errors collected before loading stops reporting more. */
#define CONFIG_MAX_ERRORS 100

enum config_tls {
	CONFIG_TLS_IMPLICIT, /* POP3S, port 995 */
	CONFIG_TLS_STARTTLS, /* POP3 + STLS, port 110 */
	CONFIG_TLS_NONE, /* plaintext, must be asked for */
};

enum config_after {
	CONFIG_AFTER_DELETE, /* DELE once the message is committed */
	CONFIG_AFTER_KEEP, /* leave it; delete after keep_days (0: never) */
};

enum config_first_pass {
	CONFIG_FIRST_COUNT, /* first pass counts bounces like any other */
	CONFIG_FIRST_RECORD_ONLY, /* first pass records mail as seen only */
};

enum config_auth {
	CONFIG_AUTH_PASSWORD,
	CONFIG_AUTH_XOAUTH2,
	CONFIG_AUTH_APOP, /* APOP only: weak (MD5), only when asked for */
};

enum config_provider {
	CONFIG_PROVIDER_NONE,
	CONFIG_PROVIDER_MICROSOFT,
	CONFIG_PROVIDER_GOOGLE,
};

enum config_override_action {
	CONFIG_OVERRIDE_HARD_AFTER, /* suppress after count soft bounces */
	CONFIG_OVERRIDE_NEVER, /* this reason never suppresses */
};

/* Per-pass settings: "defaults:" and the same keys inside a mailbox. */
struct poll_config {
	int64_t interval_ms;
	int64_t jitter_ms; /* random extra delay, < interval */
	int max_messages; /* per pass */
	uint64_t max_message_bytes; /* RETR cap; the head is kept */
	enum config_after after_processing;
	int keep_days;
	int64_t connect_timeout_ms;
	int64_t command_timeout_ms;
	enum config_first_pass first_pass;
	int64_t max_age_ms; /* older bounces are stored, not counted; 0 off */
	/* a pass takes no new message after this long; what is fetched is
	 * committed and DELEd, the rest waits for the next pass */
	int64_t pass_timeout_ms;
};

struct mailbox_config {
	char *name; /* unique, [A-Za-z0-9._-]{1,64} */
	char *host;
	int port; /* effective: 995 (implicit) or 110 unless set */
	enum config_tls tls;
	char *ca_file; /* NULL: system CA store */
	char *username;
	enum config_auth auth;
	char *password; /* secret; also filled from password_file */
	char *password_file;
	enum config_provider provider;
	char *token_file; /* xoauth2: access token kept fresh elsewhere */
	char *token_url; /* xoauth2: set from provider when not given */
	char *token_ca_file; /* xoauth2: CA for token_url; NULL: system CAs */
	char *client_id;
	char *client_secret; /* secret; also from client_secret_file */
	char *client_secret_file;
	char *refresh_token; /* secret; also from refresh_token_file */
	char *refresh_token_file;
	char *scope;
	struct poll_config poll; /* defaults overridden per mailbox */
	int line; /* where the mailbox is defined (1-based) */
};

struct suppression_override {
	char *reason; /* classify_reason_valid() */
	enum config_override_action action;
	int count; /* hard_after: soft bounces before suppressing */
};

enum config_webhook_format {
	CONFIG_WEBHOOK_STANDARD, /* Standard Webhooks JSON, signed */
	CONFIG_WEBHOOK_LISTMONK, /* listmonk's POST /webhooks/bounce */
};

/* One webhook endpoint (webhooks:).  Read by the delivery worker, which
 * copies it at start: changes need a restart. */
struct webhook_config {
	char *name; /* unique, [A-Za-z0-9._-]{1,64}: metrics, outbox rows */
	char *url; /* https://, or http:// with plain_http */
	int plain_http; /* bool: allow http:// */
	char *secret; /* secret: "whsec_" + base64 of 24..64 bytes */
	char *secret_file;
	char **events; /* suppression.added ... complaint.recorded */
	size_t n_events;
	int64_t timeout_ms; /* one delivery attempt */
	char *ca_file; /* NULL: system CA store */
	char **headers; /* "Name: value"; values masked in dumps */
	size_t n_headers;
	enum config_webhook_format format;
	char *username; /* listmonk: API user (basic auth) */
	char *password; /* secret; also from password_file */
	char *password_file;
	int64_t max_age_ms; /* retried this long, then dead */
	int64_t backoff_min_ms; /* first retry delay */
	int64_t backoff_max_ms; /* retry delay cap */
	int64_t degraded_after_ms; /* /healthz fails past this backlog age */
	int line; /* where the endpoint is defined (1-based) */
};

/* Every error found, in file order: "file:line:col: key.path: message". */
struct config_errors {
	char **items;
	size_t count;
};

/* One operator classification rule (classify.rules), as written. */
struct classify_rule_config {
	char *name;
	char *reason;
	char *cls; /* "hard", "soft" or NULL */
	char *status, *reply, *command, *mta, *phrase, *domain;
};

struct config {
	char *path; /* file name as given */
	/* database */
	char *database_url; /* secret parts masked in dumps */
	char *database_url_file;
	int batch_size;
	int migrate; /* bool */
	uint64_t raw_max_bytes;
	/* log */
	enum log_level log_level;
	enum log_format log_format;
	/* http */
	char *http_listen; /* "" = off, "host:port" or ":port" */
	int workers;
	struct poll_config defaults;
	/* extract */
	char *campaign_header; /* "" = off */
	char *list_header;
	char *subscriber_header;
	char **extra_headers;
	size_t n_extra_headers;
	char *verp_pattern; /* "" = none; has {local} and {domain} */
	/* suppression */
	int soft_threshold;
	int64_t soft_window_ms;
	struct suppression_override *overrides;
	size_t n_overrides;
	/* retention: raw bytes of recorded emails are dropped this long
	 * after they were fetched; 0 keeps them */
	int64_t retention_raw_ms;
	/* retention: bounce rows dated longer ago than this are removed
	 * (whole months, at least soft_window), ledger rows of bounces
	 * deleted from the server longer ago than this are removed; 0 keeps
	 * them */
	int64_t retention_bounces_ms;
	int64_t retention_ledger_ms;
	struct mailbox_config *mailboxes;
	size_t n_mailboxes;
	/* classify: operator rules, tried before the built-in table */
	struct classify_rule_config *class_rules;
	size_t n_class_rules;
	struct classify_rules *classify_rules; /* compiled; NULL when none */
	/* webhooks: endpoints told about suppressions and bounces */
	struct webhook_config *webhooks;
	size_t n_webhooks;
	/* Not errors, but worth an operator's eye ("file:line:col: key:
	 * message"), e.g. a secret file others can read. */
	struct config_errors warnings;
};

/*
 * Loads and validates path (at most CONFIG_MAX_FILE_BYTES).  0 and *out
 * set (caller frees with config_free), or -1 with every error appended to
 * errs (caller frees with config_errors_free).  Relative file names in the
 * config (password_file, ca_file, ...) are taken relative to the directory
 * of path.  ${VAR} in scalars is replaced from the environment.
 */
int config_load(const char *path, struct config **out,
    struct config_errors *errs);
/* The same for text already in memory; name is used in error messages
 * and to resolve relative file names. */
int config_from_string(const char *name, const char *text, size_t len,
    struct config **out, struct config_errors *errs);
void config_free(struct config **cfg); /* NULL-safe; sets *cfg = NULL */
void config_errors_free(struct config_errors *errs); /* empties it */

/* Writes the effective configuration as YAML, secrets as "********". */
void config_dump(const struct config *cfg, FILE *fp);

/*
 * The effective value of one key, formatted as in config_dump (secrets
 * masked), e.g. "mailboxes[0].port" -> "995", "defaults.interval" -> "5m".
 * 0 on success, -1 if the path names no key.
 */
int config_value(const struct config *cfg, const char *path, char *buf,
    size_t size);

/*
 * NULL-terminated list of every key as a dotted path: "database.url",
 * "defaults.interval", "mailboxes[].host", "suppression.overrides[].reason".
 * Static; valid for the life of the program.
 */
const char *const *config_key_names(void);
/* 1 if the key (a path from config_key_names()) may change on SIGHUP. */
int config_key_reloadable(const char *key);
/* The documented default of a key as config text ("5m", "995"), "" when
 * the key has none; NULL if the key is unknown. */
const char *config_key_default(const char *key);

/*
 * Compares the keys that need a restart (config_key_reloadable() == 0).
 * Returns the number of differing keys and appends "key: restart needed
 * to change it" for each to errs (errs may be NULL).
 */
size_t config_restart_changes(const struct config *old,
    const struct config *new_cfg, struct config_errors *errs);

/* Look-up by name; NULL if absent.  Valid until config_free(). */
const struct mailbox_config *config_mailbox(const struct config *cfg,
    const char *name);

#endif
