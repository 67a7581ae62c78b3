/*
 * pop3.c - POP3 session over one libcurl easy handle (RFC 1939, 2449,
 * 2595, 8314).  Every command is a custom request on the same handle, so
 * libcurl keeps one connection; a silent reconnect (new message numbers)
 * is detected and refused.  Status lines arrive in the header callback,
 * bodies in the write callback, always into capped buffers.  Listings are
 * parsed here, strictly.  Never logs.
 */
#include "pop3/pop3.h"

#include <curl/curl.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define DEF_CONNECT_MS 15000L
#define STOP_POLL_MS 200 /* longest wait between two looks at the stop flag */
/* After a stop request (SIGTERM) a transfer in flight may still finish
 * for this long, so a healthy server's last message is not thrown away; a
 * stalled one is cut then.  DELE and QUIT, which make a committed batch's
 * deletions final, may each run for longer, from their own start. */
#define STOP_XFER_MS 500
#define STOP_FINISH_MS 2500
#define DEF_COMMAND_MS 30000L
#define DEF_TRANSFER_MS 600000L
#define DEF_LOW_SPEED_BYTES 1024L
/* the default transfer deadline reads a message of max_message_bytes at
 * this rate, plus one command timeout */
#define DEF_DEADLINE_RATE (16L * 1024)
#define DEF_LOW_SPEED_S 30L
#define DEF_MAX_MESSAGE ((size_t)32 << 20)
#define DEF_MAX_MESSAGES ((size_t)1000000)
/* "4294967295 " + 70-char uid + CRLF, rounded up. */
#define LISTING_LINE_MAX 96
#define LISTING_CAP_MAX ((size_t)256 << 20)
/* Read buffer of the raw session; a status line may not be longer than
 * STATUS_MAX (RFC 2449 allows 512 octets with CRLF). */
#define IN_SIZE ((size_t)64 << 10)
#define STATUS_MAX 1024
/* DELE commands written together when the server pipelines. */
#define DELE_GROUP 128
/* RETRs sent ahead of their turn, at most, and listed bytes in flight */
#define AHEAD_MAX 8
#define AHEAD_BYTES ((int64_t)1 << 20)

struct pop3 {
	CURL *curl;
	struct curl_slist *resolve;
	char *mailbox, *host, *password, *url;
	enum pop3_tls tls;
	long command_ms, transfer_ms;
	size_t max_message, max_messages;
	int connected; /* pop3_connect() succeeded */
	int broken; /* an error or QUIT ended the session */
	long connects;
	long low_speed_bytes, low_speed_s;
	const volatile sig_atomic_t *stop; /* set: end the current wait */
	int64_t stop_at; /* when the stop was first seen */
	enum pop3_error kind;
	/* the logged-in connection, driven with curl_easy_send/recv */
	curl_socket_t sock;
	int insync; /* replies in step: QUIT may be sent at pop3_free */
	int pipelining; /* the server advertised PIPELINING (RFC 2449) */
	/* what the login phase showed: CAPA as it is being listed (acc_*)
	 * and as last listed in full (cap_*), the greeting's APOP stamp */
	unsigned acc_caps, caps;
	char acc_capa[256], capa[256];
	int greeted, apop_stamp;
	enum pop3_auth auth;
	char *username;
	const char *mech; /* how the session logged in */
	char *in; /* IN_SIZE bytes read from the server */
	size_t in_pos, in_len;
	size_t deleted;
	/* message numbers of the last listing, sorted, with DELE marks */
	uint32_t *msgnos;
	unsigned char *dele;
	size_t n_msgnos;
	int have_listing;
	/* RETRs sent ahead (PIPELINING), replies not yet handed out, oldest
	 * first; a reply read early (drained) waits in its body */
	struct ahead {
		uint32_t msgno;
		int64_t size; /* as listed */
		int done, rc;
		enum pop3_error kind;
		struct err err;
		struct buf body;
	} ahead[AHEAD_MAX];
	size_t nahead;
	/* per command */
	char errline[200]; /* first "-ERR" line of the command, sanitised */
	char okline[STATUS_MAX + 1]; /* text after the last "+OK " */
	char errbuf[CURL_ERROR_SIZE];
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static int curl_init_rc;

static void
curl_init_once(void)
{
	curl_init_rc =
	    curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

/* Copies at most cap-1 bytes of s, replacing anything outside 0x20..0x7E
 * with '?'.  Server text never reaches error messages raw. */
static void
sanitize(char *dst, size_t cap, const char *s, size_t n)
{
	size_t i, o = 0;

	for (i = 0; i < n && o + 1 < cap; i++) {
		unsigned char c = (unsigned char)s[i];
		dst[o++] = (c >= 0x20 && c <= 0x7e) ? (char)c : '?';
	}
	dst[o] = '\0';
}

const char *
pop3_error_name(enum pop3_error kind)
{
	switch (kind) {
	case POP3_ERR_NONE:
		return "none";
	case POP3_ERR_CONFIG:
		return "config";
	case POP3_ERR_CONNECT:
		return "connect";
	case POP3_ERR_TLS:
		return "tls";
	case POP3_ERR_AUTH:
		return "auth";
	case POP3_ERR_TIMEOUT:
		return "timeout";
	case POP3_ERR_PROTOCOL:
		return "protocol";
	case POP3_ERR_SERVER:
		return "server";
	case POP3_ERR_IN_USE:
		return "in_use";
	case POP3_ERR_SYS_TEMP:
		return "sys_temp";
	case POP3_ERR_NO_UIDL:
		return "no_uidl";
	case POP3_ERR_LIMIT:
		return "limit";
	case POP3_ERR_STATE:
		return "state";
	}
	return "unknown";
}

/* Replaces every occurrence of secret in the error text, in any letter
 * case, with "***", and a copy cut short by the end of the text too. */
static void
scrub_one(struct err *err, const char *secret)
{
	size_t sl, len, k;
	char *at;

	if (secret == NULL || (sl = strlen(secret)) < 3)
		return;
	while ((at = strcasestr(err->msg, secret)) != NULL) {
		memset(at, '*', 3);
		memmove(at + 3, at + sl, strlen(at + sl) + 1);
	}
	len = strlen(err->msg);
	for (k = sl - 1; k >= 4; k--)
		if (k <= len &&
		    strncasecmp(err->msg + len - k, secret, k) == 0) {
			memcpy(err->msg + len - k, "***", 4);
			break;
		}
}

static char *b64(const unsigned char *in, size_t n);
static void free_secret(char *s);

/* The SASL PLAIN initial response (RFC 4616): base64 of NUL user NUL
 * password.  Free it with free_secret(). */
static char *
sasl_plain(const char *user, const char *secret)
{
	size_t ul = strlen(user), sl = strlen(secret);
	char *raw = xmalloc(ul + sl + 3), *enc;

	raw[0] = '\0';
	memcpy(raw + 1, user, ul + 1);
	memcpy(raw + ul + 2, secret, sl + 1);
	enc = b64((const unsigned char *)raw, ul + sl + 2);
	explicit_bzero(raw, ul + sl + 3);
	free(raw);
	return enc;
}

/* Removes the password from the error text: as typed, and in the base64
 * forms a SASL login sent (a server may echo what it refused). */
static void
scrub(struct err *err, const char *user, const char *secret)
{
	char *enc;

	if (err == NULL || secret == NULL)
		return;
	if (user != NULL) { /* the longest form first */
		enc = sasl_plain(user, secret);
		scrub_one(err, enc);
		free_secret(enc);
	}
	enc = b64((const unsigned char *)secret, strlen(secret));
	scrub_one(err, enc);
	free_secret(enc);
	scrub_one(err, secret);
}

__attribute__((format(printf, 5, 6))) static void
fail(struct pop3 *p, enum pop3_error kind, struct err *err, const char *cmd,
    const char *fmt, ...)
{
	char text[sizeof(err->msg)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	p->kind = kind;
	err_set(err, "mailbox %s: %s: %s", p->mailbox, cmd, text);
	scrub(err, p->username, p->password);
}

static int
has_bad_chars(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 1;
	return 0;
}

static int
valid_host(const char *h)
{
	const char *s;

	if (*h == '\0' || strlen(h) > 253)
		return 0;
	for (s = h; *s; s++) {
		char c = *s;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		        (c >= '0' && c <= '9') || c == '.' || c == '-' ||
		        c == ':' || c == '_'))
			return 0;
	}
	return 1;
}

/* Capabilities the client acts on (RFC 2449, RFC 5034). */
#define CAP_PIPELINING 0x01u
#define CAP_SASL_PLAIN 0x02u
#define CAP_SASL_LOGIN 0x04u
#define CAP_USER 0x08u

/* Whether the space-separated list s[0..len) holds word (any case). */
static int
has_word(const char *s, size_t len, const char *word)
{
	size_t wl = strlen(word), i = 0;

	while (i < len) {
		size_t j = i;

		while (j < len && s[j] != ' ')
			j++;
		if (j - i == wl && ascii_ncasecmp(s + i, word, wl) == 0)
			return 1;
		i = j + 1;
	}
	return 0;
}

/* One line of a capability list. */
static void
note_capa(struct pop3 *p, const char *s, size_t len)
{
	size_t have = strlen(p->acc_capa);

	if (len == 10 && ascii_ncasecmp(s, "PIPELINING", 10) == 0)
		p->acc_caps |= CAP_PIPELINING;
	else if (len == 4 && ascii_ncasecmp(s, "USER", 4) == 0)
		p->acc_caps |= CAP_USER;
	else if (len > 5 && ascii_ncasecmp(s, "SASL ", 5) == 0) {
		if (has_word(s + 5, len - 5, "PLAIN"))
			p->acc_caps |= CAP_SASL_PLAIN;
		if (has_word(s + 5, len - 5, "LOGIN"))
			p->acc_caps |= CAP_SASL_LOGIN;
	}
	if (have + 2 < sizeof(p->acc_capa)) {
		if (have > 0)
			p->acc_capa[have++] = ' ';
		sanitize(p->acc_capa + have, sizeof(p->acc_capa) - have, s,
		    len);
	}
}

/* Server lines of the login phase (libcurl's): the greeting (APOP
 * stamp), the first -ERR, and the capability list: a status line starts
 * a new list, its "." line makes it the one in force. */
static size_t
on_header(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct pop3 *p = ud;
	size_t n = size * nmemb, len = n;

	while (len > 0 && (ptr[len - 1] == '\n' || ptr[len - 1] == '\r'))
		len--;
	/* The first -ERR counts: libcurl may send QUIT after it and log the
	 * "+OK" of that here too. */
	if (p->errline[0] == '\0' && len >= 4 && memcmp(ptr, "-ERR", 4) == 0)
		sanitize(p->errline, sizeof(p->errline), ptr, len);
	if ((len >= 3 && memcmp(ptr, "+OK", 3) == 0) ||
	    (len >= 4 && memcmp(ptr, "-ERR", 4) == 0)) {
		if (!p->greeted) {
			const char *lt = memchr(ptr, '<', len);

			p->greeted = 1;
			p->apop_stamp = lt != NULL &&
			    memchr(lt, '>', len - (size_t)(lt - ptr)) != NULL;
		}
		p->acc_caps = 0;
		p->acc_capa[0] = '\0';
	} else if (len == 1 && ptr[0] == '.') {
		p->caps = p->acc_caps;
		p->pipelining = (p->caps & CAP_PIPELINING) != 0;
		memcpy(p->capa, p->acc_capa, sizeof(p->capa));
	} else
		note_capa(p, ptr, len);
	return n;
}

/* Nothing is transferred by libcurl itself (CONNECT_ONLY). */
static size_t
on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
	(void)ptr;
	(void)ud;
	return size * nmemb;
}

struct pop3 *
pop3_new(const struct pop3_options *o, struct err *err)
{
	struct pop3 *p = NULL;
	const char *scheme;
	const char *login = NULL;
	char *res = NULL;
	int port;
	CURL *c;

	if (o == NULL || o->mailbox_name == NULL || *o->mailbox_name == '\0' ||
	    has_bad_chars(o->mailbox_name)) {
		err_set(err, "pop3: mailbox_name is required");
		return NULL;
	}
	if (o->host == NULL || !valid_host(o->host)) {
		err_set(err, "mailbox %s: invalid host", o->mailbox_name);
		return NULL;
	}
	if (o->port < 0 || o->port > 65535) {
		err_set(err, "mailbox %s: invalid port %d", o->mailbox_name,
		    o->port);
		return NULL;
	}
	if (o->tls != POP3_TLS_IMPLICIT && o->tls != POP3_TLS_STARTTLS &&
	    o->tls != POP3_TLS_NONE) {
		err_set(err, "mailbox %s: invalid tls mode", o->mailbox_name);
		return NULL;
	}
	if (o->username == NULL || *o->username == '\0' ||
	    has_bad_chars(o->username)) {
		err_set(err, "mailbox %s: username missing or invalid",
		    o->mailbox_name);
		return NULL;
	}
	if (o->auth == POP3_AUTH_XOAUTH2) {
		if (o->bearer_token == NULL || *o->bearer_token == '\0' ||
		    has_bad_chars(o->bearer_token)) {
			err_set(err, "mailbox %s: bearer token missing",
			    o->mailbox_name);
			return NULL;
		}
	} else if (o->auth == POP3_AUTH_DEFAULT || o->auth == POP3_AUTH_PLAIN ||
	    o->auth == POP3_AUTH_APOP) {
		if (o->password == NULL || has_bad_chars(o->password)) {
			err_set(err, "mailbox %s: password missing or invalid",
			    o->mailbox_name);
			return NULL;
		}
	} else {
		err_set(err, "mailbox %s: invalid auth mode", o->mailbox_name);
		return NULL;
	}
	if (o->connect_addr != NULL &&
	    (!valid_host(o->connect_addr) || strchr(o->host, ':') != NULL)) {
		err_set(err, "mailbox %s: invalid connect_addr",
		    o->mailbox_name);
		return NULL;
	}
	pthread_once(&curl_once, curl_init_once);
	if (curl_init_rc != 0 || (c = curl_easy_init()) == NULL) {
		err_set(err, "mailbox %s: libcurl initialisation failed",
		    o->mailbox_name);
		return NULL;
	}

	p = xcalloc(1, sizeof(*p));
	p->curl = c;
	p->mailbox = xstrdup(o->mailbox_name);
	p->host = xstrdup(o->host);
	p->password = o->password ? xstrdup(o->password) : NULL;
	p->username = xstrdup(o->username);
	p->auth = o->auth;
	p->mech = "";
	p->tls = o->tls;
	p->command_ms =
	    o->command_timeout_ms > 0 ? o->command_timeout_ms : DEF_COMMAND_MS;
	p->max_message =
	    o->max_message_bytes > 0 ? o->max_message_bytes : DEF_MAX_MESSAGE;
	p->transfer_ms = o->transfer_timeout_ms > 0 ? o->transfer_timeout_ms
	                                            : p->command_ms +
	        (long)(p->max_message / DEF_DEADLINE_RATE) * 1000L;
	if (o->transfer_timeout_ms <= 0 && p->transfer_ms > DEF_TRANSFER_MS)
		p->transfer_ms = DEF_TRANSFER_MS;
	p->stop = o->stop;
	p->max_messages =
	    o->max_messages > 0 ? o->max_messages : DEF_MAX_MESSAGES;
	p->low_speed_bytes =
	    o->low_speed_bytes > 0 ? o->low_speed_bytes : DEF_LOW_SPEED_BYTES;
	p->low_speed_s =
	    o->low_speed_time_s > 0 ? o->low_speed_time_s : DEF_LOW_SPEED_S;
	p->sock = CURL_SOCKET_BAD;
	p->in = xmalloc(IN_SIZE);
	port = o->port ? o->port : (o->tls == POP3_TLS_IMPLICIT ? 995 : 110);
	scheme = o->tls == POP3_TLS_IMPLICIT ? "pop3s" : "pop3";
	if (strchr(o->host, ':') != NULL)
		p->url = xasprintf("%s://[%s]:%d/", scheme, o->host, port);
	else
		p->url = xasprintf("%s://%s:%d/", scheme, o->host, port);
	if (o->connect_addr != NULL) {
		if (strchr(o->connect_addr, ':') != NULL)
			res = xasprintf("%s:%d:[%s]", o->host, port,
			    o->connect_addr);
		else
			res = xasprintf("%s:%d:%s", o->host, port,
			    o->connect_addr);
		p->resolve = curl_slist_append(NULL, res);
		free(res);
	}

	curl_easy_setopt(c, CURLOPT_URL, p->url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "pop3,pop3s");
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_MAXCONNECTS, 1L);
	curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, p->errbuf);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, p);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, p);
	curl_easy_setopt(c, CURLOPT_CONNECT_ONLY, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
	    o->connect_timeout_ms > 0 ? o->connect_timeout_ms : DEF_CONNECT_MS);
	/* Bounds each reply of the login phase. */
	curl_easy_setopt(c, CURLOPT_SERVER_RESPONSE_TIMEOUT,
	    (p->command_ms + 999) / 1000);
	if (p->resolve != NULL)
		curl_easy_setopt(c, CURLOPT_RESOLVE, p->resolve);
	if (o->interface != NULL && *o->interface != '\0')
		curl_easy_setopt(c, CURLOPT_INTERFACE, o->interface);

	/* TLS: verification always on, TLS 1.2 minimum. */
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(c, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	if (o->ca_file != NULL && *o->ca_file != '\0')
		curl_easy_setopt(c, CURLOPT_CAINFO, o->ca_file);
	if (o->tls == POP3_TLS_STARTTLS)
		curl_easy_setopt(c, CURLOPT_USE_SSL, (long)CURLUSESSL_ALL);
	else if (o->tls == POP3_TLS_NONE)
		curl_easy_setopt(c, CURLOPT_USE_SSL, (long)CURLUSESSL_NONE);

	/* POP3_AUTH_DEFAULT: no user name, so libcurl stops after CAPA
	 * (and STLS) and the client logs in itself (login()). */
	switch (o->auth) {
	case POP3_AUTH_DEFAULT:
		break;
	case POP3_AUTH_APOP:
		login = "AUTH=+APOP";
		curl_easy_setopt(c, CURLOPT_USERNAME, o->username);
		curl_easy_setopt(c, CURLOPT_PASSWORD, o->password);
		break;
	case POP3_AUTH_PLAIN:
		curl_easy_setopt(c, CURLOPT_USERNAME, o->username);
		login = "AUTH=PLAIN";
		curl_easy_setopt(c, CURLOPT_PASSWORD, o->password);
		curl_easy_setopt(c, CURLOPT_SASL_IR, 1L);
		break;
	case POP3_AUTH_XOAUTH2:
		curl_easy_setopt(c, CURLOPT_USERNAME, o->username);
		login = "AUTH=XOAUTH2";
		curl_easy_setopt(c, CURLOPT_XOAUTH2_BEARER, o->bearer_token);
		curl_easy_setopt(c, CURLOPT_SASL_IR, 1L);
		break;
	}
	if (login != NULL)
		curl_easy_setopt(c, CURLOPT_LOGIN_OPTIONS, login);
	return p;
}

/* "-ERR [IN-USE] ..." -> kind from the RFC 2449 response code. */
static enum pop3_error
kind_from_status(const char *status, enum pop3_error dflt)
{
	if (strncmp(status, "-ERR [IN-USE]", 13) == 0)
		return POP3_ERR_IN_USE;
	if (strncmp(status, "-ERR [SYS/TEMP]", 15) == 0)
		return POP3_ERR_SYS_TEMP;
	if (strncmp(status, "-ERR [AUTH]", 11) == 0)
		return POP3_ERR_AUTH;
	return dflt;
}

static enum pop3_error
kind_from_curl(CURLcode rc)
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

/* Closes the live connection at the socket level: no QUIT reaches the
 * server, so it discards this session's DELE marks. */
static void
drop_connection(struct pop3 *p)
{
	curl_socket_t s = CURL_SOCKET_BAD;

	if (curl_easy_getinfo(p->curl, CURLINFO_ACTIVESOCKET, &s) == CURLE_OK &&
	    s != CURL_SOCKET_BAD)
		shutdown(s, SHUT_RDWR);
	p->insync = 0;
}

/* Ends the session after a failure.  insync: the reply stream is still in
 * step (a -ERR, a listing the parser refused), so QUIT may still be sent
 * at pop3_free(); otherwise the connection is cut without QUIT. */
static void
end_session(struct pop3 *p, int insync)
{
	p->broken = 1;
	if (!insync)
		drop_connection(p);
}

/*
 * Raw I/O on the logged-in connection.  libcurl connects, negotiates TLS
 * and logs in (CURLOPT_CONNECT_ONLY); every later command is written with
 * curl_easy_send() and its reply read with curl_easy_recv() into p->in,
 * so that several commands can be in flight (RFC 2449 PIPELINING) and a
 * command costs one write and the reads its reply needs.
 */
struct xfer {
	const char *label;
	long timeout_ms;
	int64_t deadline; /* whole command or transfer */
	/* low-speed check: at least low_speed_bytes per second over every
	 * window of low_speed_s seconds */
	int64_t start;
	int64_t win_start;
	size_t win_bytes;
	int64_t last_byte; /* a stall: no byte for command_ms */
	int finish; /* DELE, QUIT: completed (briefly) despite a stop */
};

static void
xfer_init(struct xfer *x, const char *label, long timeout_ms)
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
				end_session(p, 0);
				fail(p, POP3_ERR_TIMEOUT, err, x->label,
				    "less than %ld bytes/s for %ld s",
				    p->low_speed_bytes, p->low_speed_s);
				return -1;
			}
			x->win_start = now;
			x->win_bytes = 0;
			win = p->low_speed_s * 1000;
		}
		if (left <= 0) {
			end_session(p, 0);
			fail(p, POP3_ERR_TIMEOUT, err, x->label,
			    "no complete reply within %ld ms", x->timeout_ms);
			return -1;
		}
		if (now - x->last_byte >= p->command_ms) {
			end_session(p, 0);
			fail(p, POP3_ERR_TIMEOUT, err, x->label,
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
				end_session(p, 0);
				fail(p, POP3_ERR_TIMEOUT, err, x->label,
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
			end_session(p, 0);
			fail(p, POP3_ERR_CONNECT, err, x->label, "poll: %s",
			    strerror(errno));
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
		end_session(p, 0);
		fail(p, kind_from_curl(rc), err, x->label, "%s",
		    curl_easy_strerror(rc));
		return -1;
	}
	return 0;
}

/* Writes len bytes of data.  0 or -1 (session ended). */
static int
send_all(struct pop3 *p, struct xfer *x, const char *data, size_t len,
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
			end_session(p, 0);
			fail(p, POP3_ERR_CONNECT, err, x->label,
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
static int
read_reply(struct pop3 *p, struct xfer *x, enum pop3_error err_kind, int cont,
    struct err *err)
{
	char line[STATUS_MAX + 1];
	const char *nl;
	size_t len;

	while ((nl = memchr(p->in + p->in_pos, '\n', p->in_len - p->in_pos)) ==
	    NULL) {
		if (p->in_len - p->in_pos > STATUS_MAX) {
			end_session(p, 0);
			fail(p, POP3_ERR_PROTOCOL, err, x->label,
			    "status line longer than %d bytes", STATUS_MAX);
			return -1;
		}
		if (fill(p, x, err) != 0)
			return -1;
	}
	len = (size_t)(nl - (p->in + p->in_pos));
	if (len > STATUS_MAX) {
		end_session(p, 0);
		fail(p, POP3_ERR_PROTOCOL, err, x->label,
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
	sanitize(p->errline, sizeof(p->errline), line, len);
	if (len >= 4 && memcmp(line, "-ERR", 4) == 0 &&
	    (len == 4 || line[4] == ' ')) {
		fail(p, kind_from_status(p->errline, err_kind), err, x->label,
		    "server said \"%s\"", p->errline);
		return -1;
	}
	end_session(p, 0);
	fail(p, POP3_ERR_PROTOCOL, err, x->label, "not a status line: \"%s\"",
	    p->errline);
	return -1;
}

static int
read_status(struct pop3 *p, struct xfer *x, enum pop3_error err_kind,
    struct err *err)
{
	return read_reply(p, x, err_kind, 0, err);
}

/*
 * Reads a multi-line reply body up to its terminating "." line into body
 * (dot-stuffing undone, the "." line dropped; bytes past body's cap are
 * read and discarded).  0 or -1 (session ended).
 */
static int
read_body(struct pop3 *p, struct xfer *x, struct buf *body, struct err *err)
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
static int
ended(struct pop3 *p, const char *label, struct err *err)
{
	if (!p->broken)
		return 0;
	fail(p, POP3_ERR_STATE, err, label,
	    "session already ended (earlier error or QUIT)");
	return -1;
}

/* A RETR sent ahead whose reply can no longer be read. */
static void
ahead_lost(struct pop3 *p, struct ahead *a)
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
static int
read_ahead(struct pop3 *p, struct ahead *a, struct buf *body)
{
	struct xfer x;
	char label[32];

	snprintf(label, sizeof(label), "RETR %u", (unsigned)a->msgno);
	xfer_init(&x, label, p->transfer_ms);
	a->done = 1;
	p->errline[0] = '\0';
	if (read_status(p, &x, POP3_ERR_SERVER, &a->err) != 0 ||
	    read_body(p, &x, body, &a->err) != 0) {
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
static int
drain(struct pop3 *p, struct err *err)
{
	for (size_t i = 0; i < p->nahead; i++) {
		struct ahead *a = &p->ahead[i];
		size_t cap;

		if (a->done)
			continue;
		if (!p->insync) {
			ahead_lost(p, a);
			continue;
		}
		cap = a->size > 0 ? (size_t)a->size * 2 : 0;
		if (cap < 64 * 1024)
			cap = 64 * 1024;
		if (cap > p->max_message)
			cap = p->max_message;
		buf_init(&a->body, cap);
		(void)read_ahead(p, a, &a->body);
	}
	if (p->nahead > 0 && !p->insync) {
		fail(p, POP3_ERR_STATE, err, "RETR", "session ended");
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
static int
exchange(struct pop3 *p, const char *cmd, const char *label, struct buf *body,
    long timeout_ms, enum pop3_error err_kind, struct err *err)
{
	struct xfer x;
	char line[64];
	int n;

	n = snprintf(line, sizeof(line), "%s\r\n", cmd);
	if (n < 0 || (size_t)n >= sizeof(line)) {
		fail(p, POP3_ERR_STATE, err, label, "command too long");
		return -1;
	}
	if (drain(p, err) != 0)
		return -1;
	p->errline[0] = '\0';
	xfer_init(&x, label, timeout_ms);
	x.finish = strcmp(cmd, "QUIT") == 0 || strncmp(cmd, "DELE ", 5) == 0;
	if (send_all(p, &x, line, (size_t)n, err) != 0 ||
	    read_status(p, &x, err_kind, err) != 0 ||
	    (body != NULL && read_body(p, &x, body, err) != 0)) {
		p->broken = 1;
		return -1;
	}
	return 0;
}

/* exchange(), on a session no error or QUIT has ended yet. */
static int
run_as(struct pop3 *p, const char *cmd, const char *label, struct buf *body,
    long timeout_ms, enum pop3_error err_kind, struct err *err)
{
	if (ended(p, label, err) != 0)
		return -1;
	return exchange(p, cmd, label, body, timeout_ms, err_kind, err);
}

static int
run(struct pop3 *p, const char *cmd, struct buf *body, long timeout_ms,
    enum pop3_error err_kind, struct err *err)
{
	return run_as(p, cmd, cmd, body, timeout_ms, err_kind, err);
}

/* Base64 (RFC 4648) of in[0..n) into a new string. */
static char *
b64(const unsigned char *in, size_t n)
{
	static const char tab[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char *out = xmalloc((n + 2) / 3 * 4 + 1), *o = out;
	size_t i;

	for (i = 0; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 |
		    in[i + 2];
		*o++ = tab[v >> 18];
		*o++ = tab[(v >> 12) & 63];
		*o++ = tab[(v >> 6) & 63];
		*o++ = tab[v & 63];
	}
	if (i < n) {
		uint32_t v = (uint32_t)in[i] << 16 |
		    (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0);
		*o++ = tab[v >> 18];
		*o++ = tab[(v >> 12) & 63];
		*o++ = i + 1 < n ? tab[(v >> 6) & 63] : '=';
		*o++ = '=';
	}
	*o = '\0';
	return out;
}

/* Frees a string that held a secret, wiping it first. */
static void
free_secret(char *s)
{
	if (s != NULL) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

/*
 * One step of the login: sends "text CRLF" (which may hold a secret; the
 * label in errors is "connect") and reads the reply: 0 for +OK, 1 for a
 * SASL continuation when cont is set, -1 with the session ended (a -ERR
 * is kind auth unless its response code says otherwise).
 */
static int
login_step(struct pop3 *p, const char *text, int cont, struct err *err)
{
	struct xfer x;
	char *line = xasprintf("%s\r\n", text);
	int rc;

	p->errline[0] = '\0';
	xfer_init(&x, "connect", p->command_ms);
	rc = send_all(p, &x, line, strlen(line), err);
	free_secret(line);
	if (rc == 0)
		rc = read_reply(p, &x, POP3_ERR_AUTH, cont, err);
	if (rc < 0 || (rc == 1 && !cont)) {
		p->broken = 1;
		return -1;
	}
	return rc;
}

/*
 * Password login on the connection libcurl handed over, by what the
 * capability list offers: SASL PLAIN (with an initial response), else
 * SASL LOGIN, else USER / PASS.  APOP is never used here.  0 or -1.
 */
static int
login(struct pop3 *p, struct err *err)
{
	size_t ul = strlen(p->username), pl = strlen(p->password);
	char *enc = NULL, *cmd = NULL;
	int rc = -1;

	if (p->caps & CAP_SASL_PLAIN) {
		p->mech = "SASL PLAIN";
		enc = sasl_plain(p->username, p->password);
		cmd = xasprintf("AUTH PLAIN %s", enc);
		rc = login_step(p, cmd, 0, err);
	} else if (p->caps & CAP_SASL_LOGIN) {
		p->mech = "SASL LOGIN";
		if (login_step(p, "AUTH LOGIN", 1, err) != 1)
			goto bad;
		enc = b64((const unsigned char *)p->username, ul);
		if (login_step(p, enc, 1, err) != 1)
			goto bad;
		free_secret(enc);
		enc = b64((const unsigned char *)p->password, pl);
		rc = login_step(p, enc, 0, err);
	} else {
		p->mech = "USER";
		cmd = xasprintf("USER %s", p->username);
		if (login_step(p, cmd, 0, err) != 0)
			goto bad;
		free_secret(cmd);
		cmd = xasprintf("PASS %s", p->password);
		rc = login_step(p, cmd, 0, err);
	}
bad:
	if (rc != 0) {
		/* not logged in: nothing to make final, no QUIT */
		drop_connection(p);
		rc = -1;
	}
	free_secret(enc);
	free_secret(cmd);
	return rc;
}

int
pop3_connect(struct pop3 *p, struct err *err)
{
	CURLcode rc;
	curl_socket_t s = CURL_SOCKET_BAD;
	const char *why;
	enum pop3_error base;

	if (p->connected || p->broken) {
		fail(p, POP3_ERR_STATE, err, "connect", "already connected");
		return -1;
	}
	/* libcurl connects, negotiates TLS and logs in, then hands over the
	 * connection (CURLOPT_CONNECT_ONLY). */
	p->errline[0] = '\0';
	p->errbuf[0] = '\0';
	p->pipelining = 0;
	curl_easy_setopt(p->curl, CURLOPT_TIMEOUT_MS, p->command_ms);
	rc = curl_easy_perform(p->curl);
	p->connects++;
	if (rc == CURLE_OK &&
	    (curl_easy_getinfo(p->curl, CURLINFO_ACTIVESOCKET, &s) !=
	            CURLE_OK ||
	        s == CURL_SOCKET_BAD))
		rc = CURLE_COULDNT_CONNECT;
	if (rc != CURLE_OK) {
		p->broken = 1;
		why = p->errbuf[0] ? p->errbuf : curl_easy_strerror(rc);
		base = kind_from_curl(rc);
		if (p->errline[0] != '\0') {
			/* -ERR: login and TLS failures keep their kind; a
			 * response code refines it. */
			if (base != POP3_ERR_AUTH && base != POP3_ERR_TLS)
				base = POP3_ERR_SERVER;
			fail(p, kind_from_status(p->errline, base), err,
			    "connect", "server said \"%s\" (%s)", p->errline,
			    why);
		} else
			fail(p, base, err, "connect", "%s", why);
		drop_connection(p);
		return -1;
	}
	p->sock = s;
	p->insync = 1;
	if (p->auth == POP3_AUTH_DEFAULT) {
		if (login(p, err) != 0)
			return -1;
	} else
		p->mech = p->auth == POP3_AUTH_APOP ? "APOP"
		    : p->auth == POP3_AUTH_PLAIN    ? "SASL PLAIN"
		                                    : "SASL XOAUTH2";
	/* The first raw command after login proves the session usable. */
	if (run_as(p, "NOOP", "connect", NULL, p->command_ms, POP3_ERR_SERVER,
	        err) != 0)
		return -1;
	p->connected = 1;
	return 0;
}

static int
need_session(struct pop3 *p, const char *cmd, struct err *err)
{
	if (!p->connected) {
		fail(p, POP3_ERR_STATE, err, cmd, "not connected");
		return -1;
	}
	return 0;
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* Whether v[0..n) holds a number twice (*dup gets it).  Sorts v. */
static int
has_dup_u32(uint32_t *v, size_t n, uint32_t *dup)
{
	size_t i;

	if (n < 2)
		return 0;
	qsort(v, n, sizeof(*v), cmp_u32);
	for (i = 1; i < n; i++)
		if (v[i] == v[i - 1]) {
			*dup = v[i];
			return 1;
		}
	return 0;
}

static int
cmp_entry_msgno(const void *a, const void *b)
{
	const struct pop3_entry *x = a, *y = b;
	return x->msgno < y->msgno ? -1 : x->msgno > y->msgno;
}

/* Decimal digits only, no sign; at most maxd digits. */
static int
parse_digits(const char *s, size_t n, size_t maxd, uint64_t *out)
{
	uint64_t v = 0;
	size_t i;

	if (n == 0 || n > maxd)
		return -1;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = v;
	return 0;
}

static int
parse_listing(const char *data, size_t len, int uidl, size_t max_messages,
    struct pop3_entry **list_out, size_t *n_out, enum pop3_error *kind,
    struct err *err)
{
	struct pop3_entry *list = NULL;
	uint32_t *nos = NULL;
	size_t n = 0, alloc = 0, pos = 0, lineno = 0, i;
	char show[48];
	int rc = -1;

	*kind = POP3_ERR_PROTOCOL;
	/* libcurl hands over an empty listing as the lone CRLF that ended
	 * the status line. */
	if (len == 2 && data[0] == '\r' && data[1] == '\n')
		len = 0;
	while (pos < len) {
		const char *line = data + pos, *nl, *sp;
		size_t ll, rest;
		uint64_t v;

		lineno++;
		nl = memchr(line, '\n', len - pos);
		if (nl == NULL) {
			sanitize(show, sizeof(show), line, len - pos);
			err_set(err, "line %zu has no CRLF: \"%s\"", lineno,
			    show);
			goto out;
		}
		ll = (size_t)(nl - line);
		if (ll == 0 || line[ll - 1] != '\r') {
			err_set(err, "line %zu ends in a bare LF", lineno);
			goto out;
		}
		ll--;
		pos += ll + 2;
		if (ll > LISTING_LINE_MAX) {
			sanitize(show, sizeof(show), line, 40);
			err_set(err, "line %zu is %zu bytes long: \"%s...\"",
			    lineno, ll, show);
			goto out;
		}
		sp = memchr(line, ' ', ll);
		if (sp == NULL ||
		    parse_digits(line, (size_t)(sp - line), 10, &v) != 0 ||
		    v == 0 || v > UINT32_MAX) {
			sanitize(show, sizeof(show), line, ll);
			err_set(err, "line %zu: bad message number: \"%s\"",
			    lineno, show);
			goto out;
		}
		if (n == max_messages) {
			*kind = POP3_ERR_LIMIT;
			err_set(err, "listing has more than %zu messages",
			    max_messages);
			goto out;
		}
		if (n == alloc) {
			alloc = alloc ? alloc * 2 : 64;
			list = xrealloc(list, alloc * sizeof(*list));
		}
		memset(&list[n], 0, sizeof(list[n]));
		list[n].msgno = (uint32_t)v;
		list[n].size = -1;
		sp++;
		rest = ll - (size_t)(sp - line);
		if (uidl) {
			if (rest == 0 || rest > POP3_UIDL_MAX) {
				err_set(err, "line %zu: UIDL of %zu characters",
				    lineno, rest);
				goto out;
			}
			for (i = 0; i < rest; i++) {
				unsigned char c = (unsigned char)sp[i];
				if (c < 0x21 || c > 0x7e) {
					err_set(err,
					    "line %zu: UIDL has byte 0x%02x "
					    "at %zu",
					    lineno, c, i + 1);
					goto out;
				}
			}
			memcpy(list[n].uidl, sp, rest);
			list[n].uidl[rest] = '\0';
		} else {
			/* RFC 1939: "msg SP size", anything after a further
			 * SP is allowed and ignored. */
			const char *e = memchr(sp, ' ', rest);
			size_t dl = e ? (size_t)(e - sp) : rest;

			if (parse_digits(sp, dl, 18, &v) != 0) {
				sanitize(show, sizeof(show), line, ll);
				err_set(err, "line %zu: bad size: \"%s\"",
				    lineno, show);
				goto out;
			}
			for (i = dl; i < rest; i++)
				if ((unsigned char)sp[i] < 0x20 ||
				    sp[i] == 0x7f) {
					err_set(err,
					    "line %zu: control byte in "
					    "scan listing",
					    lineno);
					goto out;
				}
			list[n].size = (int64_t)v;
		}
		n++;
	}

	/* Uniqueness: message numbers, then uids. */
	if (n > 1) {
		uint32_t dup;

		nos = xmalloc(n * sizeof(*nos));
		for (i = 0; i < n; i++)
			nos[i] = list[i].msgno;
		if (has_dup_u32(nos, n, &dup)) {
			err_set(err, "duplicate message number %u",
			    (unsigned)dup);
			goto out;
		}
		/* A UIDL listed twice is passed on: RFC 1939 forbids it,
		 * but servers that derive ids from content give them, and
		 * the caller keys such messages itself. */
	}
	*list_out = list;
	*n_out = n;
	list = NULL;
	*kind = POP3_ERR_NONE;
	rc = 0;
out:
	free(list);
	free(nos);
	return rc;
}

int
pop3_parse_listing(const char *data, size_t len, int uidl, size_t max_messages,
    struct pop3_entry **list_out, size_t *n_out, struct err *err)
{
	enum pop3_error kind;

	return parse_listing(data, len, uidl,
	    max_messages ? max_messages : DEF_MAX_MESSAGES, list_out, n_out,
	    &kind, err);
}

/* Remembers the message numbers of a listing for DELE/RETR checks. */
static void
remember(struct pop3 *p, const struct pop3_entry *list, size_t n)
{
	size_t i;

	free(p->msgnos);
	free(p->dele);
	p->msgnos = xmalloc((n ? n : 1) * sizeof(*p->msgnos));
	p->dele = xcalloc(n ? n : 1, 1);
	for (i = 0; i < n; i++)
		p->msgnos[i] = list[i].msgno;
	if (n > 0)
		qsort(p->msgnos, n, sizeof(*p->msgnos), cmp_u32);
	p->n_msgnos = n;
	p->have_listing = 1;
}

static int
listing(struct pop3 *p, int uidl, struct pop3_entry **list_out, size_t *n_out,
    struct err *err)
{
	const char *cmd = uidl ? "UIDL" : "LIST";
	struct pop3_entry *list = NULL;
	size_t n = 0, cap;
	struct buf b;
	struct err perr;
	enum pop3_error kind;
	int rc = -1;

	*list_out = NULL;
	*n_out = 0;
	if (need_session(p, cmd, err) != 0)
		return -1;
	cap = p->max_messages * LISTING_LINE_MAX;
	if (cap / LISTING_LINE_MAX != p->max_messages || cap > LISTING_CAP_MAX)
		cap = LISTING_CAP_MAX;
	buf_init(&b, cap);
	if (run(p, cmd, &b, p->transfer_ms,
	        uidl ? POP3_ERR_NO_UIDL : POP3_ERR_SERVER, err) != 0)
		goto out;
	if (b.truncated) {
		p->broken = 1;
		fail(p, POP3_ERR_LIMIT, err, cmd, "listing exceeds %zu bytes",
		    cap);
		goto out;
	}
	if (parse_listing(b.data ? b.data : "", b.len, uidl, p->max_messages,
	        &list, &n, &kind, &perr) != 0) {
		p->broken = 1;
		fail(p, kind, err, cmd, "%s", perr.msg);
		goto out;
	}
	remember(p, list, n);
	*list_out = list;
	*n_out = n;
	rc = 0;
out:
	buf_free(&b);
	return rc;
}

int
pop3_uidl(struct pop3 *p, struct pop3_entry **list_out, size_t *n_out,
    struct err *err)
{
	return listing(p, 1, list_out, n_out, err);
}

int
pop3_list(struct pop3 *p, struct pop3_entry **list_out, size_t *n_out,
    struct err *err)
{
	return listing(p, 0, list_out, n_out, err);
}

static int merge_scan(struct pop3 *p, struct pop3_entry *u, size_t nu,
    struct pop3_entry *l, size_t nl, struct pop3_entry **list_out,
    size_t *n_out, struct err *err);

int
pop3_scan(struct pop3 *p, struct pop3_entry **list_out, size_t *n_out,
    struct err *err)
{
	struct pop3_entry *u = NULL, *l = NULL;
	size_t nu = 0, nl = 0;

	*list_out = NULL;
	*n_out = 0;
	if (listing(p, 1, &u, &nu, err) != 0 ||
	    listing(p, 0, &l, &nl, err) != 0) {
		free(u);
		free(l);
		return -1;
	}
	return merge_scan(p, u, nu, l, nl, list_out, n_out, err);
}

int
pop3_stat(struct pop3 *p, size_t *count_out, struct err *err)
{
	const char *sp;
	uint64_t v;

	*count_out = 0;
	if (need_session(p, "STAT", err) != 0 ||
	    run(p, "STAT", NULL, p->command_ms, POP3_ERR_SERVER, err) != 0)
		return -1;
	sp = strchr(p->okline, ' ');
	if (sp == NULL ||
	    parse_digits(p->okline, (size_t)(sp - p->okline), 10, &v) != 0 ||
	    v > UINT32_MAX) {
		char show[48];

		p->broken = 1;
		sanitize(show, sizeof(show), p->okline, strlen(p->okline));
		fail(p, POP3_ERR_PROTOCOL, err, "STAT", "bad reply: \"%s\"",
		    show);
		return -1;
	}
	*count_out = (size_t)v;
	return 0;
}

/* "CMD k" for k = 1..n, in pipelined groups when the server allows; the
 * text after each "+OK " goes to out as one listing line.  0, or -1 with
 * the session ended. */
static int
per_message(struct pop3 *p, const char *cmd, size_t n, struct buf *out,
    enum pop3_error err_kind, struct err *err)
{
	size_t g = p->pipelining ? DELE_GROUP : 1, i, k;
	char *cmds = xmalloc(g * 32), label[32];
	int rc = 0;

	for (i = 0; i < n && rc == 0; i += g) {
		size_t m = n - i < g ? n - i : g, len = 0;
		struct xfer x;

		for (k = 0; k < m; k++)
			len += (size_t)snprintf(cmds + len, 32, "%s %zu\r\n",
			    cmd, i + k + 1);
		snprintf(label, sizeof(label), "%s %zu", cmd, i + 1);
		xfer_init(&x, label, p->command_ms);
		if (send_all(p, &x, cmds, len, err) != 0) {
			rc = -1;
			break;
		}
		for (k = 0; k < m; k++) {
			snprintf(label, sizeof(label), "%s %zu", cmd,
			    i + k + 1);
			x.label = label;
			if (read_status(p, &x, err_kind, err) != 0) {
				rc = -1;
				break;
			}
			buf_append_str(out, p->okline);
			buf_append(out, "\r\n", 2);
		}
	}
	if (rc != 0)
		p->broken = 1;
	free(cmds);
	return rc;
}

/* UIDL and LIST entries merged: both must list the same message numbers.
 * Takes u and l; 0, or -1 with the session ended. */
static int
merge_scan(struct pop3 *p, struct pop3_entry *u, size_t nu,
    struct pop3_entry *l, size_t nl, struct pop3_entry **list_out,
    size_t *n_out, struct err *err)
{
	size_t i;
	int rc = -1;

	if (nu != nl) {
		p->broken = 1;
		fail(p, POP3_ERR_PROTOCOL, err, "LIST",
		    "UIDL lists %zu messages, LIST %zu", nu, nl);
		goto out;
	}
	if (nu > 0) {
		qsort(u, nu, sizeof(*u), cmp_entry_msgno);
		qsort(l, nl, sizeof(*l), cmp_entry_msgno);
	}
	for (i = 0; i < nu; i++) {
		if (u[i].msgno != l[i].msgno) {
			p->broken = 1;
			fail(p, POP3_ERR_PROTOCOL, err, "LIST",
			    "message %u is in UIDL but not in LIST",
			    (unsigned)u[i].msgno);
			goto out;
		}
		u[i].size = l[i].size;
	}
	*list_out = u;
	*n_out = nu;
	u = NULL;
	rc = 0;
out:
	free(u);
	free(l);
	return rc;
}

int
pop3_scan_first(struct pop3 *p, size_t limit, struct pop3_entry **list_out,
    size_t *n_out, size_t *total_out, struct err *err)
{
	struct pop3_entry *u = NULL, *l = NULL;
	size_t nu = 0, nl = 0, total;
	struct buf b;
	struct err perr;
	enum pop3_error kind;
	int uidl;

	*list_out = NULL;
	*n_out = 0;
	*total_out = 0;
	if (pop3_stat(p, &total, err) != 0)
		return -1;
	*total_out = total;
	if (total <= limit) {
		/* a server whose listing says more than STAT is refused
		 * after limit lines, not read whole */
		size_t keep = p->max_messages;
		int rc;

		if (p->max_messages > limit)
			p->max_messages = limit;
		rc = pop3_scan(p, list_out, n_out, err);
		p->max_messages = keep;
		return rc;
	}
	for (uidl = 1; uidl >= 0; uidl--) {
		const char *cmd = uidl ? "UIDL" : "LIST";
		struct pop3_entry **lp = uidl ? &u : &l;
		size_t *np = uidl ? &nu : &nl;

		int rc;

		buf_init(&b, limit * (LISTING_LINE_MAX + 2) + 64);
		rc = per_message(p, cmd, limit, &b,
		    uidl ? POP3_ERR_NO_UIDL : POP3_ERR_SERVER, err);
		if (rc == 0 &&
		    parse_listing(b.data ? b.data : "", b.len, uidl, limit, lp,
		        np, &kind, &perr) != 0) {
			p->broken = 1;
			fail(p, kind, err, cmd, "%s", perr.msg);
			rc = -1;
		}
		buf_free(&b);
		if (rc != 0) {
			free(u);
			free(l);
			return -1;
		}
	}
	if (merge_scan(p, u, nu, l, nl, list_out, n_out, err) != 0)
		return -1;
	remember(p, *list_out, *n_out);
	return 0;
}

/* Checks msgno against the last listing; returns its index or -1. */
static long
check_msgno(struct pop3 *p, uint32_t msgno, const char *cmd, struct err *err)
{
	uint32_t *hit;

	if (msgno == 0) {
		fail(p, POP3_ERR_STATE, err, cmd, "message number 0");
		return -1;
	}
	if (!p->have_listing)
		return 0;
	hit = bsearch(&msgno, p->msgnos, p->n_msgnos, sizeof(*p->msgnos),
	    cmp_u32);
	if (hit == NULL) {
		fail(p, POP3_ERR_STATE, err, cmd,
		    "message %u is not in this session's listing",
		    (unsigned)msgno);
		return -1;
	}
	if (p->dele[hit - p->msgnos]) {
		fail(p, POP3_ERR_STATE, err, cmd,
		    "message %u is already deleted", (unsigned)msgno);
		return -1;
	}
	return (long)(hit - p->msgnos);
}

static int
fetch(struct pop3 *p, const char *cmd, uint32_t msgno, struct buf *out,
    struct err *err)
{
	if (need_session(p, cmd, err) != 0 ||
	    check_msgno(p, msgno, cmd, err) < 0)
		return -1;
	buf_reset(out);
	if (out->cap == 0 || out->cap > p->max_message)
		out->cap = p->max_message;
	if (out->len > out->cap) /* cannot happen after reset */
		out->len = 0;
	return run(p, cmd, out, p->transfer_ms, POP3_ERR_SERVER, err);
}

/* Hands out entry i of the RETRs sent ahead (read into out now if its
 * reply is still on its way) and drops it from the queue. */
static int
take_ahead(struct pop3 *p, size_t i, struct buf *out, struct err *err)
{
	struct ahead *a = &p->ahead[i];
	int rc;

	buf_reset(out);
	if (out->cap == 0 || out->cap > p->max_message)
		out->cap = p->max_message;
	if (!a->done && !p->insync)
		ahead_lost(p, a);
	else if (!a->done)
		(void)read_ahead(p, a, out);
	else if (a->rc == 0) {
		buf_append(out, a->body.data ? a->body.data : "", a->body.len);
		out->truncated = a->body.truncated;
	}
	rc = a->rc;
	if (rc != 0) {
		*err = a->err;
		p->kind = a->kind;
	}
	buf_free(&a->body);
	memmove(a, a + 1, (p->nahead - i - 1) * sizeof(*a));
	p->nahead--;
	return rc;
}

int
pop3_retr(struct pop3 *p, uint32_t msgno, struct buf *out, struct err *err)
{
	char cmd[32];

	if (p->nahead > 0 && p->ahead[0].msgno == msgno)
		return take_ahead(p, 0, out, err);
	if (p->nahead > 0) {
		/* asked out of order: read what is on its way, then look */
		if (drain(p, err) != 0)
			return -1;
		for (size_t i = 0; i < p->nahead; i++)
			if (p->ahead[i].msgno == msgno)
				return take_ahead(p, i, out, err);
	}
	snprintf(cmd, sizeof(cmd), "RETR %u", (unsigned)msgno);
	return fetch(p, cmd, msgno, out, err);
}

int
pop3_retr_ahead(struct pop3 *p, const uint32_t *msgnos, const int64_t *sizes,
    size_t n, struct err *err)
{
	char out[AHEAD_MAX * 24], label[32];
	size_t i, k, len = 0, first;
	int64_t bytes = 0;
	struct xfer x;

	if (!p->pipelining || !p->connected || p->broken || n == 0)
		return 0;
	/* the queue holds a prefix of msgnos: skip it, count its bytes */
	for (i = 0; i < p->nahead; i++)
		bytes += p->ahead[i].size > 0 ? p->ahead[i].size : 0;
	for (k = 0; k < n && k < p->nahead; k++)
		if (p->ahead[k].msgno != msgnos[k])
			return 0; /* another order: nothing more ahead */
	first = p->nahead;
	for (; k < n && p->nahead < AHEAD_MAX; k++) {
		int64_t sz = sizes[k] > 0 ? sizes[k] : 0;
		struct ahead *a;

		if (p->nahead > 0 && bytes + sz > AHEAD_BYTES)
			break;
		snprintf(label, sizeof(label), "RETR %u", (unsigned)msgnos[k]);
		if (check_msgno(p, msgnos[k], label, err) < 0)
			return -1;
		a = &p->ahead[p->nahead++];
		memset(a, 0, sizeof(*a));
		a->msgno = msgnos[k];
		a->size = sz;
		bytes += sz;
		len += (size_t)snprintf(out + len, sizeof(out) - len,
		    "RETR %u\r\n", (unsigned)msgnos[k]);
	}
	if (len == 0)
		return 0;
	snprintf(label, sizeof(label), "RETR %u",
	    (unsigned)p->ahead[first].msgno);
	xfer_init(&x, label, p->command_ms);
	if (send_all(p, &x, out, len, err) != 0) {
		p->broken = 1;
		return -1;
	}
	return 0;
}

int
pop3_top(struct pop3 *p, uint32_t msgno, unsigned nlines, struct buf *out,
    struct err *err)
{
	char cmd[48];

	snprintf(cmd, sizeof(cmd), "TOP %u %u", (unsigned)msgno, nlines);
	return fetch(p, cmd, msgno, out, err);
}

int
pop3_dele(struct pop3 *p, uint32_t msgno, struct err *err)
{
	int ok = 0;

	return pop3_dele_many(p, &msgno, 1, &ok, err);
}

int
pop3_dele_many(struct pop3 *p, const uint32_t *msgnos, size_t n, int *ok,
    struct err *err)
{
	char cmd[32], label[32], *out;
	long *idx;
	size_t i, g, k, len;
	uint32_t dup, *sorted;
	int rc = 0, failed = 0, twice;
	enum pop3_error first = POP3_ERR_NONE;

	for (i = 0; i < n; i++)
		ok[i] = 0;
	if (n == 0)
		return 0;
	snprintf(label, sizeof(label), "DELE %u", (unsigned)msgnos[0]);
	if (need_session(p, label, err) != 0 || ended(p, label, err) != 0 ||
	    drain(p, err) != 0)
		return -1;
	/* Every number is checked before anything is sent. */
	sorted = xmalloc(n * sizeof(*sorted));
	memcpy(sorted, msgnos, n * sizeof(*sorted));
	twice = has_dup_u32(sorted, n, &dup);
	free(sorted);
	if (twice) {
		snprintf(label, sizeof(label), "DELE %u", (unsigned)dup);
		fail(p, POP3_ERR_STATE, err, label, "message %u given twice",
		    (unsigned)dup);
		return -1;
	}
	idx = xmalloc(n * sizeof(*idx));
	for (i = 0; i < n; i++) {
		snprintf(label, sizeof(label), "DELE %u", (unsigned)msgnos[i]);
		if ((idx[i] = check_msgno(p, msgnos[i], label, err)) < 0) {
			free(idx);
			return -1;
		}
	}
	/* With PIPELINING the commands of a group go out in one write and
	 * the replies are read afterwards; without it, one at a time. */
	g = p->pipelining ? DELE_GROUP : 1;
	out = xmalloc(g * sizeof(cmd));
	for (i = 0; i < n && rc == 0; i += g) {
		size_t m = n - i < g ? n - i : g;
		struct xfer x;

		len = 0;
		for (k = 0; k < m; k++)
			len += (size_t)snprintf(out + len, sizeof(cmd),
			    "DELE %u\r\n", (unsigned)msgnos[i + k]);
		snprintf(label, sizeof(label), "DELE %u", (unsigned)msgnos[i]);
		xfer_init(&x, label, p->command_ms);
		x.finish = 1;
		if (send_all(p, &x, out, len, err) != 0) {
			rc = -1;
			break;
		}
		for (k = 0; k < m; k++) {
			struct err e2 = {{0}};
			size_t j = i + k;

			snprintf(label, sizeof(label), "DELE %u",
			    (unsigned)msgnos[j]);
			x.label = label;
			/* after a -ERR the replies already on their way are
			 * still read, so the marks they confirm are known */
			if (read_status(p, &x, POP3_ERR_SERVER, &e2) != 0) {
				if (!failed) {
					*err = e2;
					first = p->kind;
				}
				failed = 1;
				if (!p->insync) {
					rc = -1;
					break;
				}
				continue;
			}
			ok[j] = 1;
			if (p->have_listing)
				p->dele[idx[j]] = 1;
			p->deleted++;
		}
		if (failed) {
			p->broken = 1;
			p->kind = first;
			rc = -1;
		}
	}
	free(out);
	free(idx);
	return rc;
}

int
pop3_noop(struct pop3 *p, struct err *err)
{
	if (need_session(p, "NOOP", err) != 0)
		return -1;
	return run(p, "NOOP", NULL, p->command_ms, POP3_ERR_SERVER, err);
}

int
pop3_quit(struct pop3 *p, struct err *err)
{
	int rc;

	if (need_session(p, "QUIT", err) != 0)
		return -1;
	rc = run(p, "QUIT", NULL, p->command_ms, POP3_ERR_SERVER, err);
	p->broken = 1;
	p->insync = 0;
	return rc;
}

enum pop3_error
pop3_error_kind(const struct pop3 *p)
{
	return p ? p->kind : POP3_ERR_NONE;
}

const char *
pop3_login_mechanism(const struct pop3 *p)
{
	return p != NULL && p->connected ? p->mech : "";
}

const char *
pop3_capabilities(const struct pop3 *p)
{
	return p != NULL ? p->capa : "";
}

int
pop3_greeting_apop(const struct pop3 *p)
{
	return p != NULL && p->apop_stamp;
}

int
pop3_pipelining(const struct pop3 *p)
{
	return p != NULL && p->pipelining;
}

long
pop3_connections(const struct pop3 *p)
{
	return p ? p->connects : 0;
}

size_t
pop3_deleted_count(const struct pop3 *p)
{
	return p ? p->deleted : 0;
}

void
pop3_free(struct pop3 **pp)
{
	struct pop3 *p;

	if (pp == NULL || (p = *pp) == NULL)
		return;
	if (p->connected && p->insync) {
		/* The DELE marks of a session still in step take effect,
		 * also after a -ERR ended it. */
		struct err e2 = {{0}};

		(void)exchange(p, "QUIT", "QUIT", NULL, p->command_ms,
		    POP3_ERR_SERVER, &e2);
	}
	for (size_t i = 0; i < p->nahead; i++)
		buf_free(&p->ahead[i].body);
	curl_easy_cleanup(p->curl);
	curl_slist_free_all(p->resolve);
	free(p->mailbox);
	free(p->host);
	free(p->username);
	if (p->password != NULL) {
		explicit_bzero(p->password, strlen(p->password));
		free(p->password);
	}
	free(p->url);
	free(p->msgnos);
	free(p->dele);
	free(p->in);
	free(p);
	*pp = NULL;
}

void
pop3_abort(struct pop3 **pp)
{
	if (pp == NULL || *pp == NULL)
		return;
	drop_connection(*pp);
	pop3_free(pp);
}

/* ---- header key (SHA-256, FIPS 180-4) ---- */

struct sha256 {
	uint32_t h[8];
	uint64_t len;
	unsigned char blk[64];
	size_t n;
};

static const uint32_t K256[64] = {0x428a2f98, 0x71374491, 0xb5c0fbcf,
    0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
    0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7,
    0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
    0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85,
    0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e,
    0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
    0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c,
    0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3, 0x748f82ee,
    0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void
sha256_block(struct sha256 *s, const unsigned char *b)
{
	uint32_t w[64], a, bb, c, d, e, f, g, h, t1, t2;
	int i;

	for (i = 0; i < 16; i++)
		w[i] = (uint32_t)b[i * 4] << 24 | (uint32_t)b[i * 4 + 1] << 16 |
		    (uint32_t)b[i * 4 + 2] << 8 | (uint32_t)b[i * 4 + 3];
	for (i = 16; i < 64; i++)
		w[i] =
		    (ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10)) +
		    w[i - 7] +
		    (ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^
		        (w[i - 15] >> 3)) +
		    w[i - 16];
	a = s->h[0], bb = s->h[1], c = s->h[2], d = s->h[3];
	e = s->h[4], f = s->h[5], g = s->h[6], h = s->h[7];
	for (i = 0; i < 64; i++) {
		t1 = h + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) +
		    ((e & f) ^ (~e & g)) + K256[i] + w[i];
		t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) +
		    ((a & bb) ^ (a & c) ^ (bb & c));
		h = g, g = f, f = e, e = d + t1;
		d = c, c = bb, bb = a, a = t1 + t2;
	}
	s->h[0] += a, s->h[1] += bb, s->h[2] += c, s->h[3] += d;
	s->h[4] += e, s->h[5] += f, s->h[6] += g, s->h[7] += h;
}

static void
sha256_init(struct sha256 *s)
{
	static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372,
	    0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

	memset(s, 0, sizeof(*s));
	memcpy(s->h, iv, sizeof(iv));
}

static void
sha256_update(struct sha256 *s, const void *data, size_t n)
{
	const unsigned char *d = data;

	s->len += n;
	while (n > 0) {
		size_t take = 64 - s->n < n ? 64 - s->n : n;
		memcpy(s->blk + s->n, d, take);
		s->n += take, d += take, n -= take;
		if (s->n == 64) {
			sha256_block(s, s->blk);
			s->n = 0;
		}
	}
}

static void
sha256_final(struct sha256 *s, unsigned char out[32])
{
	uint64_t bits = s->len * 8;
	unsigned char pad = 0x80, z = 0, lb[8];
	int i;

	sha256_update(s, &pad, 1);
	while (s->n != 56)
		sha256_update(s, &z, 1);
	for (i = 0; i < 8; i++)
		lb[i] = (unsigned char)(bits >> (56 - 8 * i));
	sha256_update(s, lb, 8);
	for (i = 0; i < 8; i++) {
		out[i * 4] = (unsigned char)(s->h[i] >> 24);
		out[i * 4 + 1] = (unsigned char)(s->h[i] >> 16);
		out[i * 4 + 2] = (unsigned char)(s->h[i] >> 8);
		out[i * 4 + 3] = (unsigned char)s->h[i];
	}
}

void
pop3_header_key(const char *msg, size_t len, char key_out[POP3_UIDL_MAX + 1])
{
	static const char hex[] = "0123456789abcdef";
	struct sha256 s;
	unsigned char d[32];
	size_t i = 0, start;
	int i2;

	/* Hash each header line with a canonical "\n" end, up to the first
	 * empty line. */
	sha256_init(&s);
	while (i < len) {
		size_t e;

		start = i;
		while (i < len && msg[i] != '\n')
			i++;
		e = i;
		if (e > start && msg[e - 1] == '\r')
			e--;
		if (e == start && i < len)
			break; /* empty line: end of the header */
		sha256_update(&s, msg + start, e - start);
		sha256_update(&s, "\n", 1);
		if (i < len)
			i++;
	}
	sha256_final(&s, d);
	memcpy(key_out, "hdr:", 4);
	for (i2 = 0; i2 < 32; i2++) {
		key_out[4 + i2 * 2] = hex[d[i2] >> 4];
		key_out[5 + i2 * 2] = hex[d[i2] & 15];
	}
	key_out[68] = '\0';
}

void
pop3_content_key(const char *uidl, const char *msg, size_t len,
    char key_out[POP3_UIDL_MAX + 1])
{
	static const char hex[] = "0123456789abcdef";
	struct sha256 s;
	unsigned char d[32];
	size_t i = 0;
	int i2;

	sha256_init(&s);
	sha256_update(&s, uidl, strlen(uidl));
	sha256_update(&s, "\n", 1);
	/* every line with a canonical "\n" end: CR LF, CR CR LF and LF
	 * read alike */
	while (i < len) {
		size_t start = i, e;

		while (i < len && msg[i] != '\n')
			i++;
		e = i;
		while (e > start && msg[e - 1] == '\r')
			e--;
		sha256_update(&s, msg + start, e - start);
		if (i < len) {
			sha256_update(&s, "\n", 1);
			i++;
		}
	}
	sha256_final(&s, d);
	memcpy(key_out, "dup:", 4);
	for (i2 = 0; i2 < 32; i2++) {
		key_out[4 + i2 * 2] = hex[d[i2] >> 4];
		key_out[5 + i2 * 2] = hex[d[i2] & 15];
	}
	key_out[68] = '\0';
}

int
pop3_top_key(struct pop3 *p, uint32_t msgno, char key_out[POP3_UIDL_MAX + 1],
    struct err *err)
{
	struct buf b;
	int rc;

	buf_init(&b, (size_t)1 << 20);
	rc = pop3_top(p, msgno, 0, &b, err);
	if (rc == 0)
		pop3_header_key(b.data ? b.data : "", b.len, key_out);
	buf_free(&b);
	return rc;
}
