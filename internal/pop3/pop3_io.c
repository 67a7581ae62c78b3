/*
 * pop3_io.c - raw I/O of a logged-in POP3 session (RFC 1939, PIPELINING
 * RFC 2449): commands written with curl_easy_send(), replies read with
 * curl_easy_recv() into the session's capped input buffer, status lines
 * and dot-stuffed bodies, the deadline / low-speed / stop checks of every
 * wait, and the replies of RETRs sent ahead.
 */
#include <curl/curl.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include "pop3/pop3.h"
#include "pop3/pop3_int.h"

/* "-ERR [IN-USE] ..." -> kind from the RFC 2449 response code. */
enum pop3_error
pop3_kind_from_status(const char *status, enum pop3_error dflt)
{
	if (strncmp(status, "-ERR [IN-USE]", 13) == 0)
		return POP3_ERR_IN_USE;
	if (strncmp(status, "-ERR [SYS/TEMP]", 15) == 0)
		return POP3_ERR_SYS_TEMP;
	if (strncmp(status, "-ERR [AUTH]", 11) == 0)
		return POP3_ERR_AUTH;
	return dflt;
}

enum pop3_error
pop3_kind_from_curl(CURLcode rc)
{
	switch (rc) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_CONNECT:
	case CURLE_INTERFACE_FAILED:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
		return POP3_ERR_CONNECT;
	case CURLE_OPERATION_TIMEDOUT:
		return POP3_ERR_TIMEOUT;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_USE_SSL_FAILED:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_ENGINE_NOTFOUND:
	case CURLE_SSL_ENGINE_SETFAILED:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_SHUTDOWN_FAILED:
		return POP3_ERR_TLS;
	case CURLE_LOGIN_DENIED:
		return POP3_ERR_AUTH;
	case CURLE_OUT_OF_MEMORY:
		return POP3_ERR_LIMIT;
	default:
		return POP3_ERR_PROTOCOL;
	}
}

void
pop3_xfer_init(struct xfer *x, const char *label, long timeout_ms)
{
	int64_t now = now_ms();

	x->label = label;
	x->timeout_ms = timeout_ms;
	x->deadline = now + timeout_ms;
	x->start = now;
	x->win_start = now;
	x->win_bytes = 0;
	x->last_byte = now;
	x->finish = 0;
}

/* Waits until the socket is readable (out == 0) or writable.  0, or -1
 * with the session ended on timeout. */
static int
io_wait(struct pop3 *p, struct xfer *x, int out, struct err *err)
{
	for (;;) {
		struct pollfd pfd;
		int64_t now = now_ms(), left = x->deadline - now, win;
		int r;

		win = x->win_start + p->low_speed_s * 1000 - now;
		if (win <= 0) {
			if (x->win_bytes <
			    (size_t)(p->low_speed_bytes * p->low_speed_s)) {
				pop3_end_session(p, 0);
				pop3_fail(p, POP3_ERR_TIMEOUT, err, x->label,
				    "less than %ld bytes/s for %ld s",
				    p->low_speed_bytes, p->low_speed_s);
				return -1;
			}
			x->win_start = now;
			x->win_bytes = 0;
			win = p->low_speed_s * 1000;
		}
		if (left <= 0) {
			pop3_end_session(p, 0);
			pop3_fail(p, POP3_ERR_TIMEOUT, err, x->label,
			    "no complete reply within %ld ms", x->timeout_ms);
			return -1;
		}
		if (now - x->last_byte >= p->command_ms) {
			pop3_end_session(p, 0);
			pop3_fail(p, POP3_ERR_TIMEOUT, err, x->label,
			    "no byte for %ld ms", p->command_ms);
			return -1;
		}
		if (p->stop != NULL && *p->stop) {
			int64_t end;

			if (p->stop_at == 0)
				p->stop_at = now;
			/* DELE and QUIT: counted from their own start, so the
			 * commit before them does not eat their time */
			end = x->finish
			    ? (x->start > p->stop_at ? x->start : p->stop_at) +
			        STOP_FINISH_MS
			    : p->stop_at + STOP_XFER_MS;
			if (now >= end) {
				pop3_end_session(p, 0);
				pop3_fail(p, POP3_ERR_TIMEOUT, err, x->label,
				    "stopped: shutting down");
				return -1;
			}
			if (left > end - now)
				left = end - now;
		}
		if (win > x->last_byte + p->command_ms - now)
			win = x->last_byte + p->command_ms - now;
		if (win > STOP_POLL_MS)
			win = STOP_POLL_MS; /* a stop request is seen soon */
		pfd.fd = p->sock;
		pfd.events = out ? POLLOUT : POLLIN;
		pfd.revents = 0;
		r = poll(&pfd, 1, (int)(left < win ? left : win));
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR) {
			pop3_end_session(p, 0);
			pop3_fail(p, POP3_ERR_CONNECT, err, x->label,
			    "poll: %s", strerror(errno));
			return -1;
		}
	}
}

/* What a curl_easy_send/recv status means for the loop around it: 1 try
 * again (the socket is ready now), 0 done, -1 the session ended. */
static int
io_result(struct pop3 *p, struct xfer *x, CURLcode rc, int out, struct err *err)
{
	if (rc == CURLE_AGAIN)
		return io_wait(p, x, out, err) != 0 ? -1 : 1;
	if (rc != CURLE_OK) {
		pop3_end_session(p, 0);
		pop3_fail(p, pop3_kind_from_curl(rc), err, x->label, "%s",
		    curl_easy_strerror(rc));
		return -1;
	}
	return 0;
}

/* Writes len bytes of data.  0 or -1 (session pop3_ended). */
int
pop3_send_all(struct pop3 *p, struct xfer *x, const char *data, size_t len,
    struct err *err)
{
	while (len > 0) {
		size_t n = 0;
		int r = io_result(p, x, curl_easy_send(p->curl, data, len, &n),
		    1, err);

		if (r < 0)
			return -1;
		data += n;
		len -= n;
	}
	return 0;
}

/* Reads more bytes into p->in (the unread rest moved to the front).  0
 * or -1 (session ended: closed, timeout, TLS or socket error). */
static int
fill(struct pop3 *p, struct xfer *x, struct err *err)
{
	if (p->in_pos > 0) {
		memmove(p->in, p->in + p->in_pos, p->in_len - p->in_pos);
		p->in_len -= p->in_pos;
		p->in_pos = 0;
	}
	for (;;) {
		size_t n = 0;
		int r = io_result(p, x,
		    curl_easy_recv(p->curl, p->in + p->in_len,
		        IN_SIZE - p->in_len, &n),
		    0, err);

		if (r < 0)
			return -1;
		if (r > 0)
			continue;
		if (n == 0) {
			pop3_end_session(p, 0);
			pop3_fail(p, POP3_ERR_CONNECT, err, x->label,
			    "connection closed before the end of the reply");
			return -1;
		}
		p->in_len += n;
		x->win_bytes += n;
		x->last_byte = now_ms();
		return 0;
	}
}

/*
 * Reads one status line.  0 for "+OK"; 1 for a SASL continuation ("+"
 * or "+ ...", RFC 5034) when cont is set; -1 for "-ERR" (the kind from
 * the response code, else err_kind; the replies stay in step and the
 * caller decides whether the session goes on) and for anything else
 * (protocol error, connection cut: the session ends).
 */
int
pop3_read_reply(struct pop3 *p, struct xfer *x, enum pop3_error err_kind,
    int cont, struct err *err)
{
	char line[STATUS_MAX + 1];
	const char *nl;
	size_t len;

	while ((nl = memchr(p->in + p->in_pos, '\n', p->in_len - p->in_pos)) ==
	    NULL) {
		if (p->in_len - p->in_pos > STATUS_MAX) {
			pop3_end_session(p, 0);
			pop3_fail(p, POP3_ERR_PROTOCOL, err, x->label,
			    "status line longer than %d bytes", STATUS_MAX);
			return -1;
		}
		if (fill(p, x, err) != 0)
			return -1;
	}
	len = (size_t)(nl - (p->in + p->in_pos));
	if (len > STATUS_MAX) {
		pop3_end_session(p, 0);
		pop3_fail(p, POP3_ERR_PROTOCOL, err, x->label,
		    "status line longer than %d bytes", STATUS_MAX);
		return -1;
	}
	memcpy(line, p->in + p->in_pos, len);
	p->in_pos += len + 1;
	if (len > 0 && line[len - 1] == '\r')
		len--;
	line[len] = '\0';
	if (len >= 3 && memcmp(line, "+OK", 3) == 0 &&
	    (len == 3 || line[3] == ' ')) {
		memcpy(p->okline, len > 4 ? line + 4 : "",
		    len > 4 ? len - 3 : 1);
		return 0;
	}
	if (cont && len >= 1 && line[0] == '+' && (len == 1 || line[1] == ' '))
		return 1;
	pop3_sanitize(p->errline, sizeof(p->errline), line, len);
	if (len >= 4 && memcmp(line, "-ERR", 4) == 0 &&
	    (len == 4 || line[4] == ' ')) {
		pop3_fail(p, pop3_kind_from_status(p->errline, err_kind), err,
		    x->label, "server said \"%s\"", p->errline);
		return -1;
	}
	pop3_end_session(p, 0);
	pop3_fail(p, POP3_ERR_PROTOCOL, err, x->label,
	    "not a status line: \"%s\"", p->errline);
	return -1;
}

int
pop3_read_status(struct pop3 *p, struct xfer *x, enum pop3_error err_kind,
    struct err *err)
{
	return pop3_read_reply(p, x, err_kind, 0, err);
}

/*
 * Reads a multi-line reply body up to its terminating "." line into body
 * (dot-stuffing undone, the "." line dropped; bytes past body's cap are
 * read and discarded).  0 or -1 (session pop3_ended).
 */
int
pop3_read_body(struct pop3 *p, struct xfer *x, struct buf *body,
    struct err *err)
{
	enum { LINE_START, IN_LINE, DOT, DOT_CR } st = LINE_START;

	for (;;) {
		while (p->in_pos < p->in_len) {
			char *s = p->in + p->in_pos;
			size_t avail = p->in_len - p->in_pos;
			const char *nl;
			size_t n;

			switch (st) {
			case LINE_START:
				if (*s == '.') {
					p->in_pos++;
					st = DOT;
				} else
					st = IN_LINE;
				break;
			case DOT:
				if (*s == '\r') {
					p->in_pos++;
					st = DOT_CR;
				} else
					st = IN_LINE; /* stuffed: dot gone */
				break;
			case DOT_CR:
				if (*s == '\n') {
					p->in_pos++;
					return 0;
				}
				buf_append(body, "\r", 1);
				st = IN_LINE;
				break;
			case IN_LINE:
				nl = memchr(s, '\n', avail);
				n = nl ? (size_t)(nl - s) + 1 : avail;
				buf_append(body, s, n);
				p->in_pos += n;
				if (nl != NULL)
					st = LINE_START;
				break;
			}
		}
		if (fill(p, x, err) != 0)
			return -1;
	}
}

/* -1 (kind state) when an error or QUIT has ended the session. */
int
pop3_ended(struct pop3 *p, const char *label, struct err *err)
{
	if (!p->broken)
		return 0;
	pop3_fail(p, POP3_ERR_STATE, err, label,
	    "session already ended (earlier error or QUIT)");
	return -1;
}

/* A RETR sent ahead whose reply can no longer be read. */
void
pop3_ahead_lost(struct pop3 *p, struct ahead *a)
{
	a->done = 1;
	a->rc = -1;
	a->kind = POP3_ERR_STATE;
	err_set(&a->err, "mailbox %s: RETR %u: session ended", p->mailbox,
	    (unsigned)a->msgno);
}

/* Reads the reply of the oldest RETR sent ahead into body.  0, or -1 with
 * the error kept in the entry (the session is then over; after a -ERR it
 * is still in step). */
int
pop3_read_ahead(struct pop3 *p, struct ahead *a, struct buf *body)
{
	struct xfer x;
	char label[32];

	snprintf(label, sizeof(label), "RETR %u", (unsigned)a->msgno);
	pop3_xfer_init(&x, label, p->transfer_ms);
	a->done = 1;
	p->errline[0] = '\0';
	if (pop3_read_status(p, &x, POP3_ERR_SERVER, &a->err) != 0 ||
	    pop3_read_body(p, &x, body, &a->err) != 0) {
		a->rc = -1;
		a->kind = p->kind;
		p->broken = 1;
		return -1;
	}
	a->rc = 0;
	return 0;
}

/* Reads every reply still on its way for the RETRs sent ahead, so that
 * another command's reply can be told apart.  Each waits in its entry for
 * pop3_retr(); its cap is twice the listed size (at least 64 KiB, at most
 * max_message_bytes), so a server that lies in LIST cannot make this
 * hold much.  0, or -1 when the session ended out of step. */
int
pop3_drain(struct pop3 *p, struct err *err)
{
	for (size_t i = 0; i < p->nahead; i++) {
		struct ahead *a = &p->ahead[i];
		size_t cap;

		if (a->done)
			continue;
		if (!p->insync) {
			pop3_ahead_lost(p, a);
			continue;
		}
		cap = a->size > 0 ? (size_t)a->size * 2 : 0;
		if (cap < 64 * 1024)
			cap = 64 * 1024;
		if (cap > p->max_message)
			cap = p->max_message;
		buf_init(&a->body, cap);
		(void)pop3_read_ahead(p, a, &a->body);
	}
	if (p->nahead > 0 && !p->insync) {
		pop3_fail(p, POP3_ERR_STATE, err, "RETR", "session ended");
		return -1;
	}
	return 0;
}

/*
 * Sends one command and reads its reply.  body != NULL: multi-line reply
 * into body; NULL: single-line.  cmd is the exact command line sent;
 * label names it in errors (PASS is never among them).  Any failure ends
 * the session (in step after a -ERR).
 */
int
pop3_exchange(struct pop3 *p, const char *cmd, const char *label,
    struct buf *body, long timeout_ms, enum pop3_error err_kind,
    struct err *err)
{
	struct xfer x;
	char line[64];
	int n;

	n = snprintf(line, sizeof(line), "%s\r\n", cmd);
	if (n < 0 || (size_t)n >= sizeof(line)) {
		pop3_fail(p, POP3_ERR_STATE, err, label, "command too long");
		return -1;
	}
	if (pop3_drain(p, err) != 0)
		return -1;
	p->errline[0] = '\0';
	pop3_xfer_init(&x, label, timeout_ms);
	x.finish = strcmp(cmd, "QUIT") == 0 || strncmp(cmd, "DELE ", 5) == 0;
	if (pop3_send_all(p, &x, line, (size_t)n, err) != 0 ||
	    pop3_read_status(p, &x, err_kind, err) != 0 ||
	    (body != NULL && pop3_read_body(p, &x, body, err) != 0)) {
		p->broken = 1;
		return -1;
	}
	return 0;
}

/* pop3_exchange(), on a session no error or QUIT has ended yet. */
int
pop3_run_as(struct pop3 *p, const char *cmd, const char *label,
    struct buf *body, long timeout_ms, enum pop3_error err_kind,
    struct err *err)
{
	if (pop3_ended(p, label, err) != 0)
		return -1;
	return pop3_exchange(p, cmd, label, body, timeout_ms, err_kind, err);
}

int
pop3_run(struct pop3 *p, const char *cmd, struct buf *body, long timeout_ms,
    enum pop3_error err_kind, struct err *err)
{
	return pop3_run_as(p, cmd, cmd, body, timeout_ms, err_kind, err);
}
