/*
 * bouncerd - command line, signals and the main loop.
 * bouncerd -c FILE --check-config validates FILE and prints the effective
 * configuration with secrets masked (exit 0) or every error (exit 1).
 * bouncerd -c FILE runs the daemon until SIGTERM/SIGINT (exit 0); --once
 * polls every mailbox once (exit 0 only if every pass succeeded, 3 when a
 * mailbox was skipped because another process holds its lock);
 * --migrate applies the database migrations and exits.  Signal handlers
 * only set flags; SIGHUP reloads the file, keeping the old configuration
 * when the new one is invalid.  Exit status 2 means a usage error.
 */
#include <curl/curl.h>
#include <getopt.h>
#include <gmime/gmime.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <yaml.h>

#include "config/config.h"
#include "service/http.h"
#include "base/log.h"
#include "service/metrics.h"
#include "service/poller.h"
#include "store/store.h"
#include "base/util.h"
#include "service/webhook.h"

#define DEFAULT_CONFIG "/etc/bouncerd/bouncerd.yaml"

enum {
	OPT_CHECK = 256,
	OPT_ONCE,
	OPT_MIGRATE,
	OPT_NO_MIGRATE,
	OPT_HELP,
	OPT_VERSION,
};

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: bouncerd [-c FILE] [--check-config | --once | --migrate]\n"
	    "                [--no-migrate]\n"
	    "\n"
	    "Polls bounce mailboxes over POP3S, decodes and classifies every\n"
	    "bounce and records it in PostgreSQL.\n"
	    "\n"
	    "  -c, --config FILE  configuration file (default %s)\n"
	    "  --check-config     validate the configuration, print it with\n"
	    "                     secrets masked and exit (1 on errors)\n"
	    "  --once             poll every mailbox once, then exit\n"
	    "  --migrate          apply pending database migrations and exit\n"
	    "  --no-migrate       do not apply migrations at start\n"
	    "  -h, --help         show this help and exit\n"
	    "  -V, --version      show the version and library versions\n",
	    DEFAULT_CONFIG);
}

static void
version(void)
{
	int pq = PQlibVersion();

	printf("bouncerd %s\n", BOUNCERD_VERSION);
	printf("libcurl: %s\n", curl_version());
	if (pq >= 100000)
		printf("libpq: %d.%d\n", pq / 10000, pq % 10000);
	else
		printf("libpq: %d.%d.%d\n", pq / 10000, pq / 100 % 100,
		    pq % 100);
	printf("libyaml: %s\n", yaml_get_version_string());
	printf("gmime: %u.%u.%u\n", gmime_major_version, gmime_minor_version,
	    gmime_micro_version);
}

static int
check_config(const char *path)
{
	struct config *cfg = NULL;
	struct config_errors errs = {NULL, 0};
	size_t i;

	if (config_load(path, &cfg, &errs) != 0) {
		for (i = 0; i < errs.count; i++)
			fprintf(stderr, "%s\n", errs.items[i]);
		fprintf(stderr, "bouncerd: %s: %zu error%s\n", path, errs.count,
		    errs.count == 1 ? "" : "s");
		config_errors_free(&errs);
		return 1;
	}
	for (i = 0; i < cfg->warnings.count; i++)
		fprintf(stderr, "warning: %s\n", cfg->warnings.items[i]);
	printf("# %s: configuration is valid\n", path);
	config_dump(cfg, stdout);
	config_free(&cfg);
	return 0;
}

/* ---- the daemon ------------------------------------------------------ */

static volatile sig_atomic_t got_term, got_hup;
static struct poller *running_poller;
static struct webhooks *running_webhooks;

static void
on_term(int sig)
{
	(void)sig;
	got_term = 1;
	if (running_poller != NULL)
		poller_request_stop(running_poller); /* sets a flag */
	webhook_request_stop(running_webhooks); /* sets a flag */
}

static void
on_hup(int sig)
{
	(void)sig;
	got_hup = 1;
}

static void
setup_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = on_hup;
	sigaction(SIGHUP, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
}

struct http_ctx {
	struct poller *p;
	struct metrics *m;
	struct webhooks *w;
};

/* /healthz: the poller's answer with "webhooks":{...} added; an endpoint
 * whose oldest undelivered event is older than its degraded_after fails
 * it (503). */
static int
health_with_webhooks(struct http_ctx *c, struct buf *body)
{
	static const char ok_head[] = "{\"status\":\"ok\",";
	struct buf wh, fixed;
	int status = poller_health(c->p, body), ok;

	buf_init(&wh, 1 << 20);
	ok = webhook_health(c->w, &wh);
	if (wh.len == 0 || body->len < 3 ||
	    strcmp(body->data + body->len - 3, "}}\n") != 0) {
		buf_free(&wh);
		return status;
	}
	buf_init(&fixed, body->cap);
	if (!ok && strncmp(body->data, ok_head, sizeof(ok_head) - 1) == 0) {
		buf_append_str(&fixed, "{\"status\":\"fail\",");
		buf_append(&fixed, body->data + sizeof(ok_head) - 1,
		    body->len - 2 - (sizeof(ok_head) - 1));
	} else {
		buf_append(&fixed, body->data, body->len - 2);
	}
	buf_append_str(&fixed, ",\"webhooks\":{");
	buf_append(&fixed, wh.data, wh.len);
	buf_append_str(&fixed, "}}\n");
	buf_reset(body);
	buf_append(body, fixed.data, fixed.len);
	buf_free(&fixed);
	buf_free(&wh);
	return ok ? status : 503;
}

static void
http_route(void *arg, const char *path, struct http_response *resp)
{
	struct http_ctx *c = arg;

	if (strcmp(path, "/healthz") == 0) {
		resp->content_type = "application/json";
		resp->status = health_with_webhooks(c, &resp->body);
	} else if (strcmp(path, "/metrics") == 0) {
		resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
		metrics_render(c->m, &resp->body);
		webhook_metrics(c->w, &resp->body);
	} else
		resp->status = 404;
}

static int
load_or_report(const char *path, struct config **out, int at_start)
{
	struct config_errors errs = {NULL, 0};

	if (config_load(path, out, &errs) == 0) {
		config_errors_free(&errs);
		return 0;
	}
	for (size_t i = 0; i < errs.count; i++) {
		if (at_start)
			fprintf(stderr, "%s\n", errs.items[i]);
		else
			log_error("reload: configuration error", "error",
			    errs.items[i], NULL);
	}
	config_errors_free(&errs);
	return -1;
}

/* Migrations and settings, on a short-lived connection.  0 or -1. */
static int
prepare_database(const struct config *cfg, const char *url, int migrate,
    int quiet_pending)
{
	struct store_options o;
	struct store *st = NULL;
	struct store_settings set;
	struct store_override *ov = NULL;
	struct err err = {{0}};
	int applied = 0, pending = 0, rc = -1;

	memset(&o, 0, sizeof(o));
	o.conninfo = url;
	o.reconnect = STORE_RECONNECT_STARTUP;
	o.stop = &got_term;
	if (store_open(&o, &st, &err) != 0) {
		log_error("database unreachable", "cause", err.msg, NULL);
		goto out;
	}
	if (migrate) {
		if (store_migrate(st, &applied, &err) != 0) {
			log_error("migration failed", "cause", err.msg, NULL);
			goto out;
		}
		log_f(LOG_INFO, "database schema up to date",
		    LOG_INT("applied", applied));
	} else {
		if (store_pending_migrations(st, &pending, &err) != 0) {
			log_error("cannot read the schema version", "cause",
			    err.msg, NULL);
			goto out;
		}
		if (pending > 0 && !quiet_pending) {
			log_f(LOG_ERROR,
			    "database schema is not up to date: run bouncerd "
			    "--migrate",
			    LOG_INT("pending", pending));
			goto out;
		}
	}
	memset(&set, 0, sizeof(set));
	set.soft_threshold = cfg->soft_threshold;
	set.soft_window_s = cfg->soft_window_ms / 1000;
	if (cfg->n_overrides > 0) {
		ov = xcalloc(cfg->n_overrides, sizeof(*ov));
		for (size_t i = 0; i < cfg->n_overrides; i++) {
			ov[i].reason = cfg->overrides[i].reason;
			ov[i].never =
			    cfg->overrides[i].action == CONFIG_OVERRIDE_NEVER;
			ov[i].hard_after = cfg->overrides[i].count;
		}
		set.overrides = ov;
		set.noverrides = cfg->n_overrides;
	}
	if (store_apply_settings(st, &set, &err) != 0) {
		log_error("cannot write suppression settings", "cause", err.msg,
		    NULL);
		goto out;
	}
	rc = 0;
out:
	free(ov);
	store_free(&st);
	return rc;
}

/* Plain POP3 is allowed only when configured; say so at every load. */
static void
warn_plaintext(const struct config *cfg)
{
	for (size_t i = 0; i < cfg->warnings.count; i++)
		log_warn("configuration", "warning", cfg->warnings.items[i],
		    NULL);
	for (size_t i = 0; i < cfg->n_mailboxes; i++)
		if (cfg->mailboxes[i].tls == CONFIG_TLS_NONE)
			log_warn("mailbox uses plaintext POP3 (tls: none): "
			         "the password and the mail cross the network "
			         "unencrypted",
			    "mailbox", cfg->mailboxes[i].name, NULL);
	for (size_t i = 0; i < cfg->n_webhooks; i++)
		if (strncmp(cfg->webhooks[i].url, "http://", 7) == 0)
			log_warn("webhook uses plain http (plain_http: true): "
			         "events and their signature cross the network "
			         "unencrypted",
			    "endpoint", cfg->webhooks[i].name, NULL);
}

static int
str_differs(const char *a, const char *b)
{
	return (a == NULL) != (b == NULL) || (a != NULL && strcmp(a, b) != 0);
}

static int
list_differs(char *const *a, size_t na, char *const *b, size_t nb)
{
	if (na != nb)
		return 1;
	for (size_t i = 0; i < na; i++)
		if (strcmp(a[i], b[i]) != 0)
			return 1;
	return 0;
}

/* 1 if the webhooks: section changed (the delivery threads keep the
 * endpoints they started with until a restart). */
static int
webhooks_differ(const struct config *a, const struct config *b)
{
	if (a->n_webhooks != b->n_webhooks)
		return 1;
	for (size_t i = 0; i < a->n_webhooks; i++) {
		const struct webhook_config *x = &a->webhooks[i];
		const struct webhook_config *y = &b->webhooks[i];
		if (str_differs(x->name, y->name) ||
		    str_differs(x->url, y->url) ||
		    str_differs(x->secret, y->secret) ||
		    str_differs(x->ca_file, y->ca_file) ||
		    str_differs(x->username, y->username) ||
		    str_differs(x->password, y->password) ||
		    list_differs(x->events, x->n_events, y->events,
		        y->n_events) ||
		    list_differs(x->headers, x->n_headers, y->headers,
		        y->n_headers) ||
		    x->plain_http != y->plain_http || x->format != y->format ||
		    x->timeout_ms != y->timeout_ms ||
		    x->max_age_ms != y->max_age_ms ||
		    x->backoff_min_ms != y->backoff_min_ms ||
		    x->backoff_max_ms != y->backoff_max_ms ||
		    x->degraded_after_ms != y->degraded_after_ms)
			return 1;
	}
	return 0;
}

static void
reload(const char *path, const char *url, struct poller *p,
    const struct config **cur)
{
	struct config *next = NULL;
	struct config_errors errs = {NULL, 0};

	if (load_or_report(path, &next, 0) != 0) {
		log_error("reload failed: keeping the old configuration",
		    "path", path, NULL);
		return;
	}
	if (config_restart_changes(*cur, next, &errs) > 0)
		for (size_t i = 0; i < errs.count; i++)
			log_warn("reload: not applied until restart", "key",
			    errs.items[i], NULL);
	config_errors_free(&errs);
	if (webhooks_differ(*cur, next))
		log_warn("reload: not applied until restart", "key",
		    "webhooks: restart needed to change it", NULL);
	warn_plaintext(next);
	if (prepare_database(next, url, 0, 1) != 0)
		log_warn("reload: suppression settings not written", NULL);
	*cur = next;
	log_setup(next->log_level, next->log_format);
	poller_reload(p, next); /* the old config is freed when unused */
	log_info("configuration reloaded", "path", path, NULL);
}

static int
run_daemon(const char *path, int once, int migrate_only, int no_migrate)
{
	struct config *cfg = NULL;
	const struct config *cur;
	struct metrics *m = NULL;
	struct poller *p = NULL;
	struct http_server *hs = NULL;
	struct webhooks *w = NULL;
	struct http_ctx hctx;
	struct err err = {{0}};
	char *url = NULL; /* database.url needs a restart: the first one */
	int rc = 1;

	if (load_or_report(path, &cfg, 1) != 0)
		return 1;
	log_setup(cfg->log_level, cfg->log_format);
	warn_plaintext(cfg);
	setup_signals();
	curl_global_init(CURL_GLOBAL_DEFAULT);
	url = xstrdup(cfg->database_url ? cfg->database_url : "");
	if (prepare_database(cfg, url,
	        migrate_only || (cfg->migrate && !no_migrate), 0) != 0)
		goto out;
	if (migrate_only) {
		rc = 0;
		goto out;
	}
	w = webhook_new(cfg, url);
	if (webhook_sync(w, &err) != 0) {
		if (cfg->n_webhooks > 0) {
			log_error("cannot write the webhook endpoints", "cause",
			    err.msg, NULL);
			goto out;
		}
		log_warn("cannot write the webhook endpoints", "cause", err.msg,
		    NULL);
	}
	running_webhooks = w;
	m = metrics_new(BOUNCERD_VERSION);
	cur = cfg;
	p = poller_new(cfg, m);
	cfg = NULL; /* owned by the poller */
	running_poller = p;
	if (cur->http_listen != NULL && *cur->http_listen) {
		hctx.p = p;
		hctx.m = m;
		hctx.w = w;
		if (http_start(cur->http_listen, http_route, &hctx, &hs,
		        &err) != 0) {
			log_error("http listener", "cause", err.msg, NULL);
			goto out;
		}
		log_info("http listening", "listen", cur->http_listen, NULL);
	}
	if (once) {
		rc = poller_run_once(p);
		if (!got_term && webhook_drain(w) > 0)
			log_warn("webhook events left queued for the next run",
			    NULL);
		if (got_term)
			log_info("stopped by signal", NULL);
		goto out;
	}
	if (poller_start(p, &err) != 0) {
		log_error("cannot start", "cause", err.msg, NULL);
		goto out;
	}
	if (webhook_start(w, &err) != 0) {
		log_error("cannot start", "cause", err.msg, NULL);
		goto out;
	}
	log_info("bouncerd started", "version", BOUNCERD_VERSION, "config",
	    path, NULL);
	while (!got_term) {
		struct timespec ts = {0, 100 * 1000 * 1000};

		nanosleep(&ts, NULL);
		if (got_hup) {
			got_hup = 0;
			reload(path, url, p, &cur);
		}
	}
	log_info("shutting down: finishing the current message", NULL);
	poller_request_stop(p);
	webhook_request_stop(w);
	poller_join(p);
	webhook_join(w);
	log_info("bouncerd stopped", NULL);
	rc = 0;
out:
	http_stop(&hs);
	running_poller = NULL;
	running_webhooks = NULL;
	webhook_free(&w);
	poller_free(&p);
	metrics_free(&m);
	config_free(&cfg);
	free(url);
	return rc;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"check-config", no_argument, NULL, OPT_CHECK},
	    {"once", no_argument, NULL, OPT_ONCE},
	    {"migrate", no_argument, NULL, OPT_MIGRATE},
	    {"no-migrate", no_argument, NULL, OPT_NO_MIGRATE},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	const char *path = DEFAULT_CONFIG;
	/* the last of --once/--migrate/--no-migrate, for the message when
	 * combined with --check-config */
	const char *action = NULL;
	int once = 0, migrate = 0, no_migrate = 0;
	int c, check = 0;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":c:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			path = optarg;
			break;
		case OPT_CHECK:
			check = 1;
			break;
		case OPT_ONCE:
			once = 1;
			action = "--once";
			break;
		case OPT_MIGRATE:
			migrate = 1;
			action = "--migrate";
			break;
		case OPT_NO_MIGRATE:
			no_migrate = 1;
			action = "--no-migrate";
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			version();
			return 0;
		case ':':
			fprintf(stderr, "bouncerd: %s needs an argument\n",
			    argv[optind - 1]);
			usage(stderr);
			return 2;
		default:
			fprintf(stderr, "bouncerd: unknown option %s\n",
			    argv[optind - 1]);
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "bouncerd: unexpected argument %s\n",
		    argv[optind]);
		usage(stderr);
		return 2;
	}
	if (check && action != NULL) {
		fprintf(stderr,
		    "bouncerd: --check-config cannot be combined with %s\n",
		    action);
		return 2;
	}
	if (check)
		return check_config(path);
	if (once && migrate) {
		fprintf(stderr,
		    "bouncerd: --once cannot be combined with "
		    "--migrate\n");
		return 2;
	}
	return run_daemon(path, once, migrate, no_migrate);
}
