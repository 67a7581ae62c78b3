/*
 * http.h - a tiny HTTP/1.0-style server on its own thread, for /healthz
 * and /metrics.  Requests are read into a capped buffer (HTTP_MAX_REQUEST
 * bytes, else 431) within HTTP_TIMEOUT_MS (else 408); GET and HEAD only
 * (else 405); every answer closes the connection.  Up to HTTP_MAX_CONNS
 * clients are served at once, so a slow client cannot stall the others;
 * when all are taken, a new client evicts the oldest one that has not
 * finished its request (it gets 503), so idle connections cannot lock
 * out a health check.
 * The routing is the caller's handler.  Never logs.
 */
#ifndef BOUNCER_HTTP_H
#define BOUNCER_HTTP_H

#include <stddef.h>

#include "base/buf.h"
#include "base/util.h"

#define HTTP_MAX_REQUEST 8192
#define HTTP_TIMEOUT_MS 5000
#define HTTP_MAX_CONNS 32
#define HTTP_MAX_RESPONSE (16u << 20)

struct http_response {
	int status; /* 200 by default */
	const char *content_type; /* static string; "text/plain" by default */
	struct buf body; /* capped at HTTP_MAX_RESPONSE */
};

/* Called on the server thread for every well-formed GET/HEAD request;
 * path excludes the query string.  Fill resp->status and resp->body. */
typedef void (
    *http_handler)(void *arg, const char *path, struct http_response *resp);

struct http_server;

/* listen: "HOST:PORT", "[V6]:PORT" or ":PORT" (all interfaces); port 0
 * picks a free one (see http_port).  0 and *out set, or -1 with err. */
int http_start(const char *listen, http_handler handler, void *arg,
    struct http_server **out, struct err *err);
/* The bound TCP port. */
int http_port(const struct http_server *s);
/* Stops the thread, closes every socket; NULL-safe, sets *s = NULL. */
void http_stop(struct http_server **s);

/*
 * Parses the request line of a complete request head (exposed for tests).
 * Returns 0 with method and path (query stripped) copied, or the HTTP
 * status to answer: 400 malformed, 405 method, 414 path too long, 505
 * version.
 */
int http_parse_request(const char *req, size_t len, char *method,
    size_t method_size, char *path, size_t path_size);

/* Reason phrase of a status code ("Not Found"). */
const char *http_status_text(int status);

#endif
