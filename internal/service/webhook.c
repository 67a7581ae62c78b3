/*
 * webhook.c - delivery of the webhook outbox (schema/020): per endpoint, a
 * thread with its own libpq connection and libcurl handle takes the
 * pending rows in id order and POSTs them, signed per the Standard
 * Webhooks specification (HMAC-SHA256 with GLib's GHmac).  A session
 * advisory lock per endpoint lets one bouncerd process deliver it at a
 * time.  A failure blocks the endpoint's queue (order is kept) until its
 * retry time; past max_age the event is marked dead for an operator.
 */
#include "service/webhook.h"

#include <curl/curl.h>
#include <glib.h>
#include <libpq-fe.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/log.h"
#include "service/metrics.h"

#define BATCH 100
#define STATS_EVERY_MS 2000
#define PRUNE_EVERY_MS (3600 * 1000)
#define LOCK_RETRY_MS 5000

struct endpoint {
	struct webhooks *w;
	/* configuration (copied) */
	char *name, *url, *ca_file, *username, *password;
	int plain_http, listmonk;
	unsigned char *key;
	size_t keylen;
	char **events;
	size_t n_events;
	char **headers;
	size_t n_headers;
	int64_t timeout_ms, max_age_ms, backoff_min_ms, backoff_max_ms;
	int64_t degraded_after_ms;
	/* thread */
	pthread_t thread;
	int started;
	int once;
	int left_due; /* drain: events left that were due */
	/* state shown by /metrics and /healthz, under mu */
	pthread_mutex_t mu;
	int have_stats;
	int64_t queued, dead_rows;
	double oldest_created; /* unix seconds; 0: nothing pending */
	uint64_t delivered, retries, dead;
	long last_status; /* 0: no answer (yet) */
};

struct webhooks {
	char *conninfo;
	struct endpoint *eps;
	size_t n;
	atomic_int stop;
};

/* ---- signing ---- */

int
webhook_sign(const unsigned char *key, size_t keylen, const char *id,
    int64_t ts, const char *body, size_t len, char *out, size_t outsz)
{
	GHmac *h = g_hmac_new(G_CHECKSUM_SHA256, key, keylen);
	guint8 digest[32];
	gsize dlen = sizeof(digest);
	char tsbuf[32];
	gchar *b64;
	int rc = -1;

	snprintf(tsbuf, sizeof(tsbuf), "%lld", (long long)ts);
	g_hmac_update(h, (const guchar *)id, (gssize)strlen(id));
	g_hmac_update(h, (const guchar *)".", 1);
	g_hmac_update(h, (const guchar *)tsbuf, (gssize)strlen(tsbuf));
	g_hmac_update(h, (const guchar *)".", 1);
	g_hmac_update(h, (const guchar *)body, (gssize)len);
	g_hmac_get_digest(h, digest, &dlen);
	g_hmac_unref(h);
	b64 = g_base64_encode(digest, dlen);
	if (strlen(b64) + 4 <= outsz) {
		snprintf(out, outsz, "v1,%s", b64);
		rc = 0;
	}
	g_free(b64);
	return rc;
}

int
webhook_secret_decode(const char *secret, unsigned char **key_out,
    size_t *len_out)
{
	guchar *raw;
	gsize len = 0;

	*key_out = NULL;
	*len_out = 0;
	if (secret == NULL || strncmp(secret, "whsec_", 6) != 0)
		return -1;
	raw = g_base64_decode(secret + 6, &len);
	if (raw == NULL || len == 0) {
		g_free(raw);
		return -1;
	}
	*key_out = xmalloc(len);
	memcpy(*key_out, raw, len);
	*len_out = len;
	memset(raw, 0, len);
	g_free(raw);
	return 0;
}

int64_t
webhook_backoff_ms(int n, int64_t min_ms, int64_t max_ms, double r)
{
	int64_t d = min_ms;

	for (int i = 1; i < n && d < max_ms; i++)
		d *= 2;
	if (d > max_ms)
		d = max_ms;
	if (r < 0)
		r = 0;
	if (r >= 1)
		r = 0.999;
	return d / 2 + (int64_t)((double)(d - d / 2) * r);
}

/* ---- set-up ---- */

static char *
dup_or_null(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

static char **
dup_list(char *const *v, size_t n)
{
	char **out = xcalloc(n ? n : 1, sizeof(char *));

	for (size_t i = 0; i < n; i++)
		out[i] = xstrdup(v[i]);
	return out;
}

static void
free_list(char **v, size_t n)
{
	for (size_t i = 0; v != NULL && i < n; i++)
		free(v[i]);
	free(v);
}

struct webhooks *
webhook_new(const struct config *cfg, const char *conninfo)
{
	struct webhooks *w = xcalloc(1, sizeof(*w));

	w->conninfo = xstrdup(conninfo != NULL ? conninfo : "");
	w->n = cfg->n_webhooks;
	w->eps = xcalloc(w->n ? w->n : 1, sizeof(*w->eps));
	for (size_t i = 0; i < w->n; i++) {
		const struct webhook_config *c = &cfg->webhooks[i];
		struct endpoint *e = &w->eps[i];

		e->w = w;
		e->name = xstrdup(c->name);
		e->url = xstrdup(c->url);
		e->ca_file = dup_or_null(c->ca_file);
		e->username = dup_or_null(c->username);
		e->password = dup_or_null(c->password);
		e->plain_http = c->plain_http;
		e->listmonk = c->format == CONFIG_WEBHOOK_LISTMONK;
		if (c->secret != NULL)
			(void)webhook_secret_decode(c->secret, &e->key,
			    &e->keylen);
		e->events = dup_list(c->events, c->n_events);
		e->n_events = c->n_events;
		e->headers = dup_list(c->headers, c->n_headers);
		e->n_headers = c->n_headers;
		e->timeout_ms = c->timeout_ms;
		e->max_age_ms = c->max_age_ms;
		e->backoff_min_ms = c->backoff_min_ms;
		e->backoff_max_ms = c->backoff_max_ms;
		e->degraded_after_ms = c->degraded_after_ms;
		pthread_mutex_init(&e->mu, NULL);
	}
	return w;
}

void
webhook_free(struct webhooks **wp)
{
	struct webhooks *w;

	if (wp == NULL || *wp == NULL)
		return;
	w = *wp;
	webhook_request_stop(w);
	webhook_join(w);
	for (size_t i = 0; i < w->n; i++) {
		struct endpoint *e = &w->eps[i];
		free(e->name);
		free(e->url);
		free(e->ca_file);
		free(e->username);
		if (e->password != NULL)
			memset(e->password, 0, strlen(e->password));
		free(e->password);
		if (e->key != NULL)
			memset(e->key, 0, e->keylen);
		free(e->key);
		free_list(e->events, e->n_events);
		free_list(e->headers, e->n_headers);
		pthread_mutex_destroy(&e->mu);
	}
	free(w->eps);
	free(w->conninfo);
	free(w);
	*wp = NULL;
}

/* ---- database ---- */

static PGconn *
db_connect(const struct webhooks *w, const char *appname, struct err *err)
{
	const char *keys[] = {"application_name", "connect_timeout",
	    "client_encoding", "keepalives", "keepalives_idle",
	    "keepalives_interval", "keepalives_count", "dbname", NULL};
	const char *vals[] = {appname, "10", "UTF8", "1", "30", "10", "3",
	    w->conninfo, NULL};
	PGconn *c = PQconnectdbParams(keys, vals, 1);

	if (c == NULL || PQstatus(c) != CONNECTION_OK) {
		/* libpq's text names host and port, never the password */
		err_set(err, "connect: %s",
		    c != NULL ? PQerrorMessage(c) : "out of memory");
		PQfinish(c);
		return NULL;
	}
	return c;
}

/* Runs a statement without a result set; 0 or -1 with err filled. */
static int
db_exec(PGconn *c, const char *sql, int n, const char *const *params,
    struct err *err)
{
	PGresult *r = n == 0
	    ? PQexec(c, sql)
	    : PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
	int rc = 0;

	if (PQresultStatus(r) != PGRES_COMMAND_OK &&
	    PQresultStatus(r) != PGRES_TUPLES_OK) {
		err_set(err, "%s", PQerrorMessage(c));
		rc = -1;
	}
	PQclear(r);
	return rc;
}

/* A PostgreSQL text[] literal of v. */
static char *
pg_array(char *const *v, size_t n)
{
	struct buf b;
	char *out;

	buf_init(&b, 1 << 20);
	buf_append_str(&b, "{");
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			buf_append_str(&b, ",");
		buf_append_str(&b, "\"");
		for (const char *p = v[i]; *p; p++) {
			if (*p == '"' || *p == '\\')
				buf_append_str(&b, "\\");
			buf_append(&b, p, 1);
		}
		buf_append_str(&b, "\"");
	}
	buf_append_str(&b, "}");
	out = xstrdup(buf_cstr(&b));
	buf_free(&b);
	return out;
}

int
webhook_sync(struct webhooks *w, struct err *err)
{
	PGconn *c = NULL;
	char **names = xcalloc(w->n ? w->n : 1, sizeof(char *));
	char *arr = NULL;
	int rc = -1;

	if ((c = db_connect(w, "bouncerd webhooks", err)) == NULL)
		goto out;
	if (db_exec(c, "BEGIN", 0, NULL, err) != 0)
		goto out;
	for (size_t i = 0; i < w->n; i++) {
		struct endpoint *e = &w->eps[i];
		char *ev = pg_array(e->events, e->n_events);
		const char *p[2] = {e->name, ev};
		int bad = db_exec(c,
		    "INSERT INTO webhook_endpoints (name, events) "
		    "VALUES ($1, $2::text[]) ON CONFLICT (name) DO UPDATE "
		    "SET events = EXCLUDED.events, enabled = true, "
		    "updated_at = now() "
		    "WHERE (webhook_endpoints.events, "
		    "webhook_endpoints.enabled) "
		    "IS DISTINCT FROM (EXCLUDED.events, true)",
		    2, p, err);
		free(ev);
		if (bad)
			goto out;
		names[i] = e->name;
	}
	arr = pg_array(names, w->n);
	{
		const char *p[1] = {arr};
		if (db_exec(c,
		        "UPDATE webhook_endpoints SET enabled = false, "
		        "updated_at = now() "
		        "WHERE enabled AND name <> ALL ($1::text[])",
		        1, p, err) != 0)
			goto out;
	}
	if (db_exec(c, "COMMIT", 0, NULL, err) != 0)
		goto out;
	rc = 0;
out:
	if (rc != 0)
		err_prefix(err, "webhook endpoints");
	free(arr);
	free(names);
	PQfinish(c);
	return rc;
}

/* ---- one attempt ---- */

static size_t
discard(char *p, size_t size, size_t n, void *arg)
{
	(void)p;
	(void)arg;
	return size * n;
}

static int
on_progress(void *arg, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
	const struct webhooks *w = arg;

	(void)a;
	(void)b;
	(void)c;
	(void)d;
	return atomic_load(&w->stop) ? 1 : 0;
}

enum attempt {
	ATTEMPT_OK,
	ATTEMPT_FAILED,
	ATTEMPT_STOPPED, /* abandoned on stop: the row is left as it is */
};

static CURL *
curl_for(struct endpoint *e, char *errbuf)
{
	CURL *h = curl_easy_init();

	if (h == NULL)
		return NULL;
	curl_easy_setopt(h, CURLOPT_URL, e->url);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR,
	    e->plain_http ? "https,http" : "https");
#else
	curl_easy_setopt(h, CURLOPT_PROTOCOLS,
	    (long)(e->plain_http ? CURLPROTO_HTTPS | CURLPROTO_HTTP
	                         : CURLPROTO_HTTPS));
#endif
	/* a redirect is an answer, never followed (to any host) */
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)e->timeout_ms);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
	    (long)(e->timeout_ms < 10000 ? e->timeout_ms : 10000));
	curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	if (e->ca_file != NULL)
		curl_easy_setopt(h, CURLOPT_CAINFO, e->ca_file);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "bouncerd/" BOUNCERD_VERSION);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, e->w);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_POST, 1L);
	if (e->listmonk && e->username != NULL) {
		curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		curl_easy_setopt(h, CURLOPT_USERNAME, e->username);
		curl_easy_setopt(h, CURLOPT_PASSWORD,
		    e->password != NULL ? e->password : "");
	}
	return h;
}

/* POSTs body; *status_out is the HTTP status (0: none).  cause gets why
 * it failed: libcurl's text (host and port at most) or the status. */
static enum attempt
attempt(struct endpoint *e, CURL *h, char *errbuf, const char *id,
    const char *body, size_t len, long *status_out, char *cause, size_t causesz)
{
	struct curl_slist *hd = NULL;
	char line[256];
	int64_t ts = now_unix();
	CURLcode cc;
	long status = 0;
	enum attempt rc = ATTEMPT_FAILED;

	*status_out = 0;
	cause[0] = '\0';
	errbuf[0] = '\0';
	hd = curl_slist_append(hd, "Content-Type: application/json");
	/* no "Expect: 100-continue" round trip */
	hd = curl_slist_append(hd, "Expect:");
	if (e->key != NULL) {
		char sig[128];
		snprintf(line, sizeof(line), "webhook-id: %s", id);
		hd = curl_slist_append(hd, line);
		snprintf(line, sizeof(line), "webhook-timestamp: %lld",
		    (long long)ts);
		hd = curl_slist_append(hd, line);
		if (webhook_sign(e->key, e->keylen, id, ts, body, len, sig,
		        sizeof(sig)) == 0) {
			snprintf(line, sizeof(line), "webhook-signature: %s",
			    sig);
			hd = curl_slist_append(hd, line);
		}
	}
	for (size_t i = 0; i < e->n_headers; i++)
		hd = curl_slist_append(hd, e->headers[i]);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	cc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	*status_out = status;
	if (cc == CURLE_ABORTED_BY_CALLBACK && atomic_load(&e->w->stop)) {
		rc = ATTEMPT_STOPPED;
	} else if (cc != CURLE_OK) {
		snprintf(cause, causesz, "%s",
		    errbuf[0] ? errbuf : curl_easy_strerror(cc));
	} else if (status >= 200 && status < 300) {
		rc = ATTEMPT_OK;
	} else if (status >= 300 && status < 400) {
		snprintf(cause, causesz,
		    "HTTP %ld: redirect not followed (point url at the final "
		    "address)",
		    status);
	} else {
		snprintf(cause, causesz, "HTTP %ld", status);
	}
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(hd);
	return rc;
}

/* ---- the endpoint loop ---- */

static int
stopping(const struct endpoint *e)
{
	return atomic_load(&e->w->stop);
}

/* Waits up to ms for a NOTIFY on c (or for stop); c may be NULL. */
static void
wait_ms(struct endpoint *e, PGconn *c, int64_t ms)
{
	int64_t end = now_ms() + ms;

	while (!stopping(e)) {
		int64_t left = end - now_ms();
		PGnotify *n;
		int got = 0;

		if (left <= 0)
			return;
		if (left > 200)
			left = 200;
		if (c != NULL && PQsocket(c) >= 0) {
			struct pollfd pfd = {PQsocket(c), POLLIN, 0};
			if (poll(&pfd, 1, (int)left) > 0) {
				PQconsumeInput(c);
				while ((n = PQnotifies(c)) != NULL) {
					got = 1;
					PQfreemem(n);
				}
			}
		} else {
			struct timespec ts = {0, (long)left * 1000000L};
			nanosleep(&ts, NULL);
		}
		if (got)
			return;
	}
}

static void
refresh_stats(struct endpoint *e, PGconn *c)
{
	const char *p[1] = {e->name};
	PGresult *r = PQexecParams(c,
	    "SELECT count(*) FILTER (WHERE state = 'pending'), "
	    "count(*) FILTER (WHERE state = 'dead'), "
	    "coalesce(extract(epoch FROM min(created_at) "
	    "FILTER (WHERE state = 'pending')), 0) "
	    "FROM webhook_outbox WHERE endpoint = $1 "
	    "AND state IN ('pending', 'dead')",
	    1, NULL, p, NULL, NULL, 0);

	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
		pthread_mutex_lock(&e->mu);
		e->have_stats = 1;
		e->queued = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
		e->dead_rows = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
		e->oldest_created = strtod(PQgetvalue(r, 0, 2), NULL);
		pthread_mutex_unlock(&e->mu);
	}
	PQclear(r);
}

/* The body to send: the stored payload, or listmonk's bounce form (a
 * campaign id that is not a UUID is left out: listmonk refuses it). */
static const char *const fetch_sql =
    "SELECT id, event_id, "
    "CASE WHEN $2 THEN jsonb_build_object("
    "'email', payload->'data'->>'address', "
    "'campaign_uuid', CASE WHEN payload->'data'->>'campaign_id' ~* "
    "'^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' "
    "THEN payload->'data'->>'campaign_id' ELSE '' END, "
    "'source', 'bouncerd', "
    "'type', CASE payload->'data'->>'class' WHEN 'hard' THEN 'hard' "
    "WHEN 'complaint' THEN 'complaint' ELSE 'soft' END, "
    "'meta', jsonb_build_object('event_id', event_id, 'event', type, "
    "'reason', payload->'data'->'reason', "
    "'status', payload->'data'->'status', "
    "'campaign_id', payload->'data'->'campaign_id', "
    "'list_id', payload->'data'->'list_id', "
    "'mailbox', payload->'data'->'mailbox'))::text "
    "ELSE payload::text END, "
    "attempts, "
    "(extract(epoch FROM next_attempt_at - clock_timestamp()) * 1000)"
    "::bigint, "
    "(extract(epoch FROM clock_timestamp() - queued_at) * 1000)::bigint "
    "FROM webhook_outbox WHERE endpoint = $1 AND state = 'pending' "
    "ORDER BY id LIMIT 100";

static int
mark(PGconn *c, const char *sql, const char *id, long status, const char *cause,
    int64_t delay_ms, struct err *err)
{
	char st[24], dl[24];
	const char *p[4] = {id, st, cause, dl};

	snprintf(st, sizeof(st), "%ld", status);
	snprintf(dl, sizeof(dl), "%lld", (long long)delay_ms);
	return db_exec(c, sql, 4, p, err);
}

static const char *const sql_delivered =
    "UPDATE webhook_outbox SET state = 'delivered', "
    "attempts = attempts + 1, last_status = $2::int, last_error = NULL, "
    "last_attempt_at = now(), done_at = now() "
    "WHERE id = ANY (('{' || $1 || '}')::bigint[]) AND $3::text IS NULL "
    "AND $4::bigint = 0";

/* Deliveries are marked in groups of up to FLUSH_EVERY, one statement
 * each: a crash before the mark sends them again (at least once). */
#define FLUSH_EVERY 50

static int
flush_delivered(struct endpoint *e, PGconn *c, struct buf *ids, int *n,
    long status, struct err *err)
{
	int rc = 0;

	if (*n == 0)
		return 0;
	if (mark(c, sql_delivered, buf_cstr(ids), status, NULL, 0, err) != 0)
		rc = -1;
	else {
		pthread_mutex_lock(&e->mu);
		e->delivered += (uint64_t)*n;
		pthread_mutex_unlock(&e->mu);
	}
	buf_reset(ids);
	*n = 0;
	return rc;
}
static const char *const sql_retry =
    "UPDATE webhook_outbox SET attempts = attempts + 1, "
    "last_status = nullif($2::int, 0), last_error = $3, "
    "last_attempt_at = now(), "
    "next_attempt_at = clock_timestamp() + $4::bigint * interval '1 ms' "
    "WHERE id = $1::bigint";
static const char *const sql_dead =
    "UPDATE webhook_outbox SET state = 'dead', attempts = attempts + 1, "
    "last_status = nullif($2::int, 0), last_error = $3, "
    "last_attempt_at = now(), done_at = now() "
    "WHERE id = $1::bigint AND $4::bigint = 0";

/* Delivers the due head of e's queue.  Returns 1 when the queue is empty
 * (*wait_out -1) or its head is not due (a failure blocks it: *wait_out
 * says for how long), 0 when more may follow at once, -1 on a database
 * error. */
static int
deliver_batch(struct endpoint *e, PGconn *c, CURL *h, char *errbuf,
    int64_t *wait_out, struct err *err)
{
	const char *p[2] = {e->name, e->listmonk ? "true" : "false"};
	PGresult *r = PQexecParams(c, fetch_sql, 2, NULL, p, NULL, NULL, 0);
	struct buf done;
	int rc = 0, n, ndone = 0;
	long ok_status = 200;

	*wait_out = 0;
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		err_set(err, "%s", PQerrorMessage(c));
		PQclear(r);
		return -1;
	}
	n = PQntuples(r);
	buf_init(&done, 1 << 20);
	if (n == 0) {
		*wait_out = -1; /* nothing queued */
		rc = 1;
	}
	for (int i = 0; i < n && !stopping(e); i++) {
		const char *id = PQgetvalue(r, i, 0);
		const char *eid = PQgetvalue(r, i, 1);
		const char *body = PQgetvalue(r, i, 2);
		size_t len = (size_t)PQgetlength(r, i, 2);
		int attempts = (int)strtol(PQgetvalue(r, i, 3), NULL, 10);
		int64_t due_in = strtoll(PQgetvalue(r, i, 4), NULL, 10);
		int64_t age = strtoll(PQgetvalue(r, i, 5), NULL, 10);
		char cause[CURL_ERROR_SIZE + 64];
		long status = 0;
		enum attempt a;

		/* --once tries every queued event: the runs are the retry
		 * schedule */
		if (due_in > 0 && !e->once) {
			*wait_out = due_in;
			rc = 1;
			break;
		}
		a = attempt(e, h, errbuf, eid, body, len, &status, cause,
		    sizeof(cause));
		pthread_mutex_lock(&e->mu);
		e->last_status = status;
		pthread_mutex_unlock(&e->mu);
		if (a == ATTEMPT_STOPPED)
			break;
		if (a == ATTEMPT_OK) {
			if (ndone++ > 0)
				buf_append_str(&done, ",");
			buf_append_str(&done, id);
			ok_status = status;
			if (ndone >= FLUSH_EVERY &&
			    flush_delivered(e, c, &done, &ndone, ok_status,
			        err) != 0) {
				rc = -1;
				break;
			}
			continue;
		}
		if (flush_delivered(e, c, &done, &ndone, ok_status, err) != 0) {
			rc = -1;
			break;
		}
		if (age >= e->max_age_ms) {
			if (mark(c, sql_dead, id, status, cause, 0, err) != 0) {
				rc = -1;
				break;
			}
			pthread_mutex_lock(&e->mu);
			e->dead++;
			pthread_mutex_unlock(&e->mu);
			log_f(LOG_ERROR,
			    "webhook event given up after max_age: replay it "
			    "with SELECT webhook_replay()",
			    LOG_STR("endpoint", e->name), LOG_STR("event", eid),
			    LOG_INT("status", status), LOG_STR("cause", cause));
			continue;
		}
		*wait_out = webhook_backoff_ms(attempts + 1, e->backoff_min_ms,
		    e->backoff_max_ms, g_random_double());
		if (mark(c, sql_retry, id, status, cause, *wait_out, err) !=
		    0) {
			rc = -1;
			break;
		}
		pthread_mutex_lock(&e->mu);
		e->retries++;
		pthread_mutex_unlock(&e->mu);
		log_f(LOG_WARN, "webhook delivery failed",
		    LOG_STR("endpoint", e->name), LOG_STR("event", eid),
		    LOG_INT("status", status), LOG_STR("cause", cause),
		    LOG_SECS("retry_in_s", *wait_out));
		rc = 1;
		break;
	}
	if (flush_delivered(e, c, &done, &ndone, ok_status, err) != 0)
		rc = -1;
	buf_free(&done);
	PQclear(r);
	return rc;
}

static void *
endpoint_main(void *arg)
{
	struct endpoint *e = arg;
	struct err err = {{0}};
	char errbuf[CURL_ERROR_SIZE];
	char appname[96];
	PGconn *c = NULL;
	CURL *h = NULL;
	int locked = 0, failures = 0, warned_lock = 0;
	int64_t last_stats = 0, last_prune = 0, wait = 0;

	snprintf(appname, sizeof(appname), "bouncerd webhook %s", e->name);
	errbuf[0] = '\0';
	h = curl_for(e, errbuf);
	if (h == NULL) {
		log_error("webhook: cannot create a libcurl handle", "endpoint",
		    e->name, NULL);
		e->left_due = 1;
		return NULL;
	}
	while (!stopping(e)) {
		int rc;

		if (c == NULL || PQstatus(c) != CONNECTION_OK) {
			PQfinish(c);
			locked = 0;
			if ((c = db_connect(e->w, appname, &err)) == NULL ||
			    db_exec(c,
			        "SET synchronous_commit = off; "
			        "LISTEN bouncerd_webhook",
			        0, NULL, &err) != 0) {
				PQfinish(c);
				c = NULL;
				if (failures++ == 0 || e->once)
					log_error("webhook: database "
					          "unreachable",
					    "endpoint", e->name, "cause",
					    err.msg, NULL);
				if (e->once) {
					e->left_due = 1;
					break;
				}
				wait_ms(e, NULL,
				    webhook_backoff_ms(failures, 1000, 30000,
				        g_random_double()));
				continue;
			}
			if (failures > 0)
				log_info("webhook: database reachable again",
				    "endpoint", e->name, NULL);
			failures = 0;
		}
		if (!locked) {
			const char *p[1] = {e->name};
			PGresult *r = PQexecParams(c,
			    "SELECT pg_try_advisory_lock(hashtextextended("
			    "'bouncerd.webhook.endpoint:' || $1, 0))",
			    1, NULL, p, NULL, NULL, 0);
			locked = PQresultStatus(r) == PGRES_TUPLES_OK &&
			    strcmp(PQgetvalue(r, 0, 0), "t") == 0;
			PQclear(r);
			if (!locked) {
				if (!warned_lock++)
					log_info("webhook: another bouncerd "
					         "delivers this endpoint",
					    "endpoint", e->name, NULL);
				refresh_stats(e, c);
				if (e->once)
					break;
				wait_ms(e, NULL, LOCK_RETRY_MS);
				continue;
			}
		}
		if (now_ms() - last_prune > PRUNE_EVERY_MS) {
			last_prune = now_ms();
			(void)db_exec(c, "SELECT webhook_prune()", 0, NULL,
			    &err);
		}
		rc = deliver_batch(e, c, h, errbuf, &wait, &err);
		if (now_ms() - last_stats > STATS_EVERY_MS || rc != 0) {
			last_stats = now_ms();
			refresh_stats(e, c);
		}
		if (rc < 0) {
			log_error("webhook: database error", "endpoint",
			    e->name, "cause", err.msg, NULL);
			if (e->once) {
				e->left_due = 1;
				break;
			}
			PQfinish(c);
			c = NULL;
			wait_ms(e, NULL, 1000);
			continue;
		}
		if (rc == 1) {
			if (e->once) {
				/* drained, or blocked by a failure */
				e->left_due = wait >= 0;
				break;
			}
			wait_ms(e, c, wait < 0 ? 1000 : wait);
		}
	}
	if (c != NULL)
		refresh_stats(e, c);
	PQfinish(c);
	curl_easy_cleanup(h);
	return NULL;
}

int
webhook_start(struct webhooks *w, struct err *err)
{
	for (size_t i = 0; i < w->n; i++) {
		struct endpoint *e = &w->eps[i];
		e->once = 0;
		if (pthread_create(&e->thread, NULL, endpoint_main, e) != 0) {
			err_set(err, "webhook %s: cannot start a thread",
			    e->name);
			return -1;
		}
		e->started = 1;
	}
	return 0;
}

void
webhook_request_stop(struct webhooks *w)
{
	if (w != NULL)
		atomic_store(&w->stop, 1);
}

void
webhook_join(struct webhooks *w)
{
	if (w == NULL)
		return;
	for (size_t i = 0; i < w->n; i++)
		if (w->eps[i].started) {
			pthread_join(w->eps[i].thread, NULL);
			w->eps[i].started = 0;
		}
}

int
webhook_drain(struct webhooks *w)
{
	int left = 0;

	for (size_t i = 0; i < w->n; i++) {
		struct endpoint *e = &w->eps[i];
		e->once = 1;
		e->left_due = 0;
		if (pthread_create(&e->thread, NULL, endpoint_main, e) == 0)
			e->started = 1;
		else
			e->left_due = 1;
	}
	webhook_join(w);
	for (size_t i = 0; i < w->n; i++)
		left += w->eps[i].left_due;
	return left;
}

/* ---- metrics and health ---- */

static void
metric_line(struct buf *out, const char *name, const char *ep, double v)
{
	buf_append_str(out, name);
	buf_append_str(out, "{endpoint=\"");
	metrics_escape_label(out, ep);
	buf_appendf(out, "\"} %.17g\n", v);
}

void
webhook_metrics(struct webhooks *w, struct buf *out)
{
	static const struct {
		const char *name, *type, *help;
	} m[] = {
	    {"bouncerd_webhook_queued_events", "gauge",
	        "Events waiting for delivery."},
	    {"bouncerd_webhook_delivered_total", "counter",
	        "Events delivered (2xx answer)."},
	    {"bouncerd_webhook_retries_total", "counter",
	        "Failed attempts, retried later."},
	    {"bouncerd_webhook_dead_total", "counter",
	        "Events given up after max_age."},
	    {"bouncerd_webhook_dead_events", "gauge",
	        "Dead events kept for an operator (webhook_replay)."},
	    {"bouncerd_webhook_oldest_queued_age_seconds", "gauge",
	        "Age of the oldest undelivered event; 0 when none."},
	    {"bouncerd_webhook_last_status", "gauge",
	        "HTTP status of the last attempt; 0 when none came."},
	};
	double now = (double)g_get_real_time() / 1e6;

	if (w == NULL || w->n == 0)
		return;
	for (size_t k = 0; k < sizeof(m) / sizeof(m[0]); k++) {
		char hdr[256];
		snprintf(hdr, sizeof(hdr), "# HELP %s %s\n# TYPE %s %s\n",
		    m[k].name, m[k].help, m[k].name, m[k].type);
		buf_append_str(out, hdr);
		for (size_t i = 0; i < w->n; i++) {
			struct endpoint *e = &w->eps[i];
			double v = 0;
			pthread_mutex_lock(&e->mu);
			switch (k) {
			case 0:
				v = (double)e->queued;
				break;
			case 1:
				v = (double)e->delivered;
				break;
			case 2:
				v = (double)e->retries;
				break;
			case 3:
				v = (double)e->dead;
				break;
			case 4:
				v = (double)e->dead_rows;
				break;
			case 5:
				v = e->oldest_created > 0 && e->queued > 0
				    ? fmax(0, now - e->oldest_created)
				    : 0;
				break;
			default:
				v = (double)e->last_status;
				break;
			}
			pthread_mutex_unlock(&e->mu);
			metric_line(out, m[k].name, e->name, v);
		}
	}
}

int
webhook_health(struct webhooks *w, struct buf *out)
{
	double now = (double)g_get_real_time() / 1e6;
	int all_ok = 1;

	if (w == NULL)
		return 1;
	for (size_t i = 0; i < w->n; i++) {
		struct endpoint *e = &w->eps[i];
		char tmp[160];
		double age;
		int ok;
		pthread_mutex_lock(&e->mu);
		age = e->oldest_created > 0 && e->queued > 0
		    ? fmax(0, now - e->oldest_created)
		    : 0;
		ok = age * 1000 <= (double)e->degraded_after_ms;
		snprintf(tmp, sizeof(tmp),
		    ":{\"ok\":%s,\"queued\":%lld,\"oldest_age_seconds\":%.0f,"
		    "\"dead\":%lld}",
		    ok ? "true" : "false", (long long)e->queued, age,
		    (long long)e->dead_rows);
		pthread_mutex_unlock(&e->mu);
		if (i > 0)
			buf_append_str(out, ",");
		buf_append_json_str(out, e->name);
		buf_append_str(out, tmp);
		all_ok &= ok;
	}
	return all_ok;
}
