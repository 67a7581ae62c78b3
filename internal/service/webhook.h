/*
 * webhook.h - delivers the events of the webhook_outbox table (schema/020)
 * to the configured endpoints, signed per the Standard Webhooks
 * specification (webhook-id, webhook-timestamp, webhook-signature: v1, +
 * base64 HMAC-SHA256 of "id.timestamp.body", GLib's GHmac), or as
 * listmonk's bounce webhook.  One thread and one libpq connection per
 * endpoint; events go out in id order per endpoint, at least once, retried
 * with capped exponential backoff and jitter for max_age, then marked dead.
 * Redirects are never followed.  Logs (endpoint name, event id, status and
 * cause), never the URL, the secret or a header value.
 */
#ifndef BOUNCER_WEBHOOK_H
#define BOUNCER_WEBHOOK_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "config/config.h"
#include "base/util.h"

struct webhooks; /* opaque */

/* Copies the endpoints of cfg (a configuration change needs a restart).
 * conninfo: the database URL.  Never NULL; with no endpoint configured
 * every call below does nothing but webhook_sync(). */
struct webhooks *webhook_new(const struct config *cfg, const char *conninfo);
void webhook_free(struct webhooks **w); /* NULL-safe; sets *w = NULL */

/* Writes webhook_endpoints: the configured endpoints enabled with their
 * events, any other one disabled (no new events are queued for it).
 * 0, or -1 with err filled. */
int webhook_sync(struct webhooks *w, struct err *err);

/* Starts one delivery thread per endpoint.  0, or -1 with err filled. */
int webhook_start(struct webhooks *w, struct err *err);
/* Asks the threads to stop: a request in flight is abandoned (its event
 * stays pending and is sent again, with the same id).  Only sets a flag:
 * safe in a signal handler. */
void webhook_request_stop(struct webhooks *w);
void webhook_join(struct webhooks *w);

/* --once: delivers every event that is due, one endpoint per thread,
 * until none is left or the endpoint fails (the event stays queued, for
 * its retry time).  Returns the number of endpoints left with due events
 * (failed, or database unreachable); 0 when drained. */
int webhook_drain(struct webhooks *w);

/* Appends the bouncerd_webhook_* metrics (Prometheus text). */
void webhook_metrics(struct webhooks *w, struct buf *out);
/* 1 when no endpoint's oldest undelivered event is older than its
 * degraded_after; appends "name":{...} entries (comma-separated, JSON)
 * describing every endpoint to out. */
int webhook_health(struct webhooks *w, struct buf *out);

/*
 * The Standard Webhooks signature "v1,<base64>" of id.ts.body with key,
 * into out (at least 64 bytes).  0, or -1 if out is too small.
 */
int webhook_sign(const unsigned char *key, size_t keylen, const char *id,
    int64_t ts, const char *body, size_t len, char *out, size_t outsz);
/* Decodes "whsec_<base64>" into *key_out (caller frees).  0 or -1. */
int webhook_secret_decode(const char *secret, unsigned char **key_out,
    size_t *len_out);
/* Retry delay after the n-th failed attempt (n >= 1): min * 2^(n-1),
 * capped at max, then a random point in its upper half (r in [0,1)). */
int64_t webhook_backoff_ms(int n, int64_t min_ms, int64_t max_ms, double r);

#endif
