/*
 * pop3.c - POP3 session over one libcurl easy handle (RFC 1939, 2449,
 * 2595, 8314): options, connect and login (libcurl's SASL, or PLAIN /
 * LOGIN / USER on the handed-over connection), secrets scrubbed from
 * error text, the capability list, NOOP, QUIT and the end of a session.
 * Commands and replies: pop3_io.c; listings: pop3_list.c.  Never logs.
 */
#include "pop3/pop3.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "pop3/pop3_int.h"

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
void
pop3_sanitize(char *dst, size_t cap, const char *s, size_t n)
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

/* The SASL PLAIN initial response (RFC 4616): base64 of NUL user NUL
 * password.  Free it with pop3_free_secret(). */
static char *
sasl_plain(const char *user, const char *secret)
{
	size_t ul = strlen(user), sl = strlen(secret);
	char *raw = xmalloc(ul + sl + 3), *enc;

	raw[0] = '\0';
	memcpy(raw + 1, user, ul + 1);
	memcpy(raw + ul + 2, secret, sl + 1);
	enc = pop3_b64((const unsigned char *)raw, ul + sl + 2);
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
		pop3_free_secret(enc);
	}
	enc = pop3_b64((const unsigned char *)secret, strlen(secret));
	scrub_one(err, enc);
	pop3_free_secret(enc);
	scrub_one(err, secret);
}

void
pop3_fail(struct pop3 *p, enum pop3_error kind, struct err *err,
    const char *cmd, const char *fmt, ...)
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
		pop3_sanitize(p->acc_capa + have, sizeof(p->acc_capa) - have, s,
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
		pop3_sanitize(p->errline, sizeof(p->errline), ptr, len);
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

/* Checks the options of pop3_new().  0, or -1 with err set. */
static int
check_options(const struct pop3_options *o, struct err *err)
{
	if (o == NULL || o->mailbox_name == NULL || *o->mailbox_name == '\0' ||
	    has_bad_chars(o->mailbox_name)) {
		err_set(err, "pop3: mailbox_name is required");
		return -1;
	}
	if (o->host == NULL || !valid_host(o->host)) {
		err_set(err, "mailbox %s: invalid host", o->mailbox_name);
		return -1;
	}
	if (o->port < 0 || o->port > 65535) {
		err_set(err, "mailbox %s: invalid port %d", o->mailbox_name,
		    o->port);
		return -1;
	}
	if (o->tls != POP3_TLS_IMPLICIT && o->tls != POP3_TLS_STARTTLS &&
	    o->tls != POP3_TLS_NONE) {
		err_set(err, "mailbox %s: invalid tls mode", o->mailbox_name);
		return -1;
	}
	if (o->username == NULL || *o->username == '\0' ||
	    has_bad_chars(o->username)) {
		err_set(err, "mailbox %s: username missing or invalid",
		    o->mailbox_name);
		return -1;
	}
	if (o->auth == POP3_AUTH_XOAUTH2) {
		if (o->bearer_token == NULL || *o->bearer_token == '\0' ||
		    has_bad_chars(o->bearer_token)) {
			err_set(err, "mailbox %s: bearer token missing",
			    o->mailbox_name);
			return -1;
		}
	} else if (o->auth == POP3_AUTH_DEFAULT || o->auth == POP3_AUTH_PLAIN ||
	    o->auth == POP3_AUTH_APOP) {
		if (o->password == NULL || has_bad_chars(o->password)) {
			err_set(err, "mailbox %s: password missing or invalid",
			    o->mailbox_name);
			return -1;
		}
	} else {
		err_set(err, "mailbox %s: invalid auth mode", o->mailbox_name);
		return -1;
	}
	if (o->connect_addr != NULL &&
	    (!valid_host(o->connect_addr) || strchr(o->host, ':') != NULL)) {
		err_set(err, "mailbox %s: invalid connect_addr",
		    o->mailbox_name);
		return -1;
	}
	return 0;
}

/* A session for o on handle c: copies, limits with their defaults, the
 * URL and the CURLOPT_RESOLVE entry of connect_addr. */
static struct pop3 *
session_alloc(const struct pop3_options *o, CURL *c)
{
	struct pop3 *p = xcalloc(1, sizeof(*p));
	const char *scheme;
	char *res = NULL;
	int port;

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
	return p;
}

/* The connection options of the handle: URL, callbacks, timeouts, TLS. */
static void
set_connection(struct pop3 *p, const struct pop3_options *o)
{
	CURL *c = p->curl;

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
}

/* The login options libcurl acts on.  POP3_AUTH_DEFAULT: no user name,
 * so libcurl stops after CAPA (and STLS) and the client logs in itself
 * (login()). */
static void
set_login(CURL *c, const struct pop3_options *o)
{
	const char *login = NULL;

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
}

struct pop3 *
pop3_new(const struct pop3_options *o, struct err *err)
{
	struct pop3 *p;
	CURL *c;

	if (check_options(o, err) != 0)
		return NULL;
	pthread_once(&curl_once, curl_init_once);
	if (curl_init_rc != 0 || (c = curl_easy_init()) == NULL) {
		err_set(err, "mailbox %s: libcurl initialisation failed",
		    o->mailbox_name);
		return NULL;
	}
	p = session_alloc(o, c);
	set_connection(p, o);
	set_login(c, o);
	return p;
}

/* Closes the live connection at the socket level: no QUIT reaches the
 * server, so it discards this session's DELE marks. */
void
pop3_drop_connection(struct pop3 *p)
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
void
pop3_end_session(struct pop3 *p, int insync)
{
	p->broken = 1;
	if (!insync)
		pop3_drop_connection(p);
}

/* Base64 (RFC 4648) of in[0..n) into a new string. */
char *
pop3_b64(const unsigned char *in, size_t n)
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
void
pop3_free_secret(char *s)
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
	pop3_xfer_init(&x, "connect", p->command_ms);
	rc = pop3_send_all(p, &x, line, strlen(line), err);
	pop3_free_secret(line);
	if (rc == 0)
		rc = pop3_read_reply(p, &x, POP3_ERR_AUTH, cont, err);
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
		enc = pop3_b64((const unsigned char *)p->username, ul);
		if (login_step(p, enc, 1, err) != 1)
			goto bad;
		pop3_free_secret(enc);
		enc = pop3_b64((const unsigned char *)p->password, pl);
		rc = login_step(p, enc, 0, err);
	} else {
		p->mech = "USER";
		cmd = xasprintf("USER %s", p->username);
		if (login_step(p, cmd, 0, err) != 0)
			goto bad;
		pop3_free_secret(cmd);
		cmd = xasprintf("PASS %s", p->password);
		rc = login_step(p, cmd, 0, err);
	}
bad:
	if (rc != 0) {
		/* not logged in: nothing to make final, no QUIT */
		pop3_drop_connection(p);
		rc = -1;
	}
	pop3_free_secret(enc);
	pop3_free_secret(cmd);
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
		pop3_fail(p, POP3_ERR_STATE, err, "connect",
		    "already connected");
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
		base = pop3_kind_from_curl(rc);
		if (p->errline[0] != '\0') {
			/* -ERR: login and TLS failures keep their kind; a
			 * response code refines it. */
			if (base != POP3_ERR_AUTH && base != POP3_ERR_TLS)
				base = POP3_ERR_SERVER;
			pop3_fail(p, pop3_kind_from_status(p->errline, base),
			    err, "connect", "server said \"%s\" (%s)",
			    p->errline, why);
		} else
			pop3_fail(p, base, err, "connect", "%s", why);
		pop3_drop_connection(p);
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
	if (pop3_run_as(p, "NOOP", "connect", NULL, p->command_ms,
	        POP3_ERR_SERVER, err) != 0)
		return -1;
	p->connected = 1;
	return 0;
}

int
pop3_need_session(struct pop3 *p, const char *cmd, struct err *err)
{
	if (!p->connected) {
		pop3_fail(p, POP3_ERR_STATE, err, cmd, "not connected");
		return -1;
	}
	return 0;
}

int
pop3_noop(struct pop3 *p, struct err *err)
{
	if (pop3_need_session(p, "NOOP", err) != 0)
		return -1;
	return pop3_run(p, "NOOP", NULL, p->command_ms, POP3_ERR_SERVER, err);
}

int
pop3_quit(struct pop3 *p, struct err *err)
{
	int rc;

	if (pop3_need_session(p, "QUIT", err) != 0)
		return -1;
	rc = pop3_run(p, "QUIT", NULL, p->command_ms, POP3_ERR_SERVER, err);
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

		(void)pop3_exchange(p, "QUIT", "QUIT", NULL, p->command_ms,
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
	pop3_drop_connection(*pp);
	pop3_free(pp);
}
