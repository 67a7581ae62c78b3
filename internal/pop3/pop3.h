/*
 * pop3.h - one POP3 session (RFC 1939, CAPA RFC 2449, STLS RFC 2595,
 * implicit TLS RFC 8314): UIDL, LIST, RETR into a capped buffer, TOP,
 * DELE (pipelined when the server allows), NOOP, QUIT.  libcurl connects,
 * negotiates TLS and logs in; the commands then run on that one
 * connection for the whole mailbox pass.  Server output
 * (listings, status lines) is validated strictly and only ever stored in
 * capped buffers.  Never logs; failures fill struct err and set a kind.
 */
#ifndef BOUNCER_POP3_H
#define BOUNCER_POP3_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/util.h"

/* RFC 1939: a unique-id is 1 to 70 characters in 0x21..0x7E. */
#define POP3_UIDL_MAX 70

enum pop3_tls {
	POP3_TLS_IMPLICIT, /* pop3s, port 995 by default (RFC 8314) */
	POP3_TLS_STARTTLS, /* pop3 + STLS; fails if STLS is missing/refused */
	POP3_TLS_NONE, /* clear text: only when configured explicitly */
};

enum pop3_auth {
	/* A password, never APOP: SASL PLAIN when the capability list (CAPA,
	 * after STLS) offers it, else SASL LOGIN when offered, else USER /
	 * PASS.  libcurl connects, negotiates TLS and reads CAPA; the client
	 * logs in itself, since libcurl's login options cannot ask for
	 * "SASL or USER but not APOP" (AUTH=* prefers APOP to USER when the
	 * greeting has a timestamp; naming mechanisms drops USER). */
	POP3_AUTH_DEFAULT,
	POP3_AUTH_PLAIN, /* SASL PLAIN only (libcurl, AUTH=PLAIN) */
	POP3_AUTH_XOAUTH2, /* SASL XOAUTH2 with bearer_token (libcurl) */
	/* APOP only (libcurl, AUTH=+APOP): MD5 over a secret shared with
	 * the server.  Weak; only when configured. */
	POP3_AUTH_APOP,
};

/* What went wrong, so the caller can back off and count errors by kind. */
enum pop3_error {
	POP3_ERR_NONE,
	POP3_ERR_CONFIG, /* invalid options */
	POP3_ERR_CONNECT, /* DNS, refused, unreachable, lost connection */
	POP3_ERR_TLS, /* handshake, certificate, host name, STLS refused */
	POP3_ERR_AUTH, /* credentials refused (or no usable mechanism) */
	POP3_ERR_TIMEOUT, /* connect, command or low-speed timeout */
	POP3_ERR_PROTOCOL, /* server reply breaks RFC 1939 */
	POP3_ERR_SERVER, /* -ERR reply to a command */
	POP3_ERR_IN_USE, /* -ERR [IN-USE]: mailbox locked by another session */
	POP3_ERR_SYS_TEMP, /* -ERR [SYS/TEMP]: transient server problem */
	POP3_ERR_NO_UIDL, /* server does not support UIDL */
	POP3_ERR_LIMIT, /* listing larger than max_messages */
	POP3_ERR_STATE, /* session unusable after an earlier error / QUIT */
};

struct pop3_options {
	const char *mailbox_name; /* used in error text; required */
	const char *host; /* name the certificate is checked against */
	int port; /* 0: 995 (implicit) or 110 */
	enum pop3_tls tls;
	/* TLS: the peer certificate and host name are always verified.
	 * ca_file: PEM bundle to trust instead of the system store. */
	const char *ca_file;
	/* Optional: connect to this address instead of resolving host (the
	 * certificate is still checked against host). */
	const char *connect_addr;
	/* Optional: local address or interface to bind (CURLOPT_INTERFACE). */
	const char *interface;
	enum pop3_auth auth;
	const char *username, *password; /* never copied into error text */
	const char *bearer_token; /* POP3_AUTH_XOAUTH2 */
	/* Timeouts in milliseconds; 0 means the default in brackets. */
	long connect_timeout_ms; /* TCP + TLS handshake + login [15000] */
	/* whole single-line command [30000]; also the longest wait for the
	 * next byte of any reply, RETR and listings included */
	long command_timeout_ms;
	/* whole RETR / TOP / listing [command timeout + the time to read
	 * max_message_bytes at 16 KiB/s, at most 600000] */
	long transfer_timeout_ms;
	/* Abort a transfer slower than low_speed_bytes per second for
	 * low_speed_time_s seconds [1024 B/s, 30 s]. */
	long low_speed_bytes;
	long low_speed_time_s;
	/* RETR keeps at most this many bytes of a message [32 MiB]; the rest
	 * is read from the server and discarded. */
	size_t max_message_bytes;
	/* Listings with more messages are refused (POP3_ERR_LIMIT)
	 * [1,000,000]. */
	size_t max_messages;
	/* Optional: when it becomes non-zero, the current wait ends within
	 * 200 ms and the session with it (a shutdown). */
	const volatile sig_atomic_t *stop;
};

/* One line of a UIDL and/or LIST listing. */
struct pop3_entry {
	uint32_t msgno; /* valid within this session only */
	int64_t size; /* octets from LIST, -1 when not listed */
	char uidl[POP3_UIDL_MAX + 1]; /* "" when UIDL was not run */
};

struct pop3; /* opaque: one session */

/* Validates the options and prepares the handle; no network I/O.
 * Strings are copied.  Returns NULL with err set on invalid options. */
struct pop3 *pop3_new(const struct pop3_options *o, struct err *err);

/* Connects, negotiates TLS, logs in and sends NOOP.  0 or -1. */
int pop3_connect(struct pop3 *p, struct err *err);

/*
 * Listings.  On success *list_out (caller frees with free()) holds *n_out
 * entries in server order.  Each message number is a positive decimal,
 * unique; each uidl 1..70 chars in 0x21..0x7E (a UIDL listed for several
 * messages is passed on as it is: see pop3_content_key()); every line
 * ends in CRLF.  Anything else is POP3_ERR_PROTOCOL.  A server that refuses UIDL
 * gives POP3_ERR_NO_UIDL and the session ends, as after any -ERR (QUIT
 * is sent at pop3_free): reconnect and use pop3_list() + pop3_top_key().
 * pop3_scan() runs UIDL then LIST and merges them (both must list the same
 * message numbers).
 */
int pop3_uidl(struct pop3 *p, struct pop3_entry **list_out, size_t *n_out,
    struct err *err);
int pop3_list(struct pop3 *p, struct pop3_entry **list_out, size_t *n_out,
    struct err *err);
int pop3_scan(struct pop3 *p, struct pop3_entry **list_out, size_t *n_out,
    struct err *err);
/* STAT: the number of messages in the mailbox. */
int pop3_stat(struct pop3 *p, size_t *count_out, struct err *err);
/* The oldest limit messages (message numbers 1..limit), as pop3_scan()
 * gives them: the whole listing when the mailbox holds at most limit
 * messages (STAT says), else "UIDL n" and "LIST n" for each of them,
 * pipelined when the server allows, so a mailbox of a million messages
 * costs what limit of them cost.  *total_out gets STAT's count; fewer
 * entries than it means the listing is partial.  The session's listing
 * (for RETR and DELE checks) is then just these. */
int pop3_scan_first(struct pop3 *p, size_t limit, struct pop3_entry **list_out,
    size_t *n_out, size_t *total_out, struct err *err);

/*
 * RETR msgno into out (dot-stuffing undone, the terminating "." removed;
 * the CRLF of the last line stays; an empty message gives an empty
 * buffer).  out is reset first; its cap is lowered to
 * max_message_bytes if larger (or set to it if 0).  A reply cut short by
 * the server closing the connection is an error (kind connect).
 * An over-size message keeps its head and sets out->truncated; the rest is
 * read and discarded so the session goes on.  0 or -1.
 */
int pop3_retr(struct pop3 *p, uint32_t msgno, struct buf *out, struct err *err);
/*
 * With PIPELINING (RFC 2449), sends "RETR n" for the next messages a pass
 * will fetch, in this order, before their turn, so the server works while
 * the last reply is being read: msgnos[0..n) is the list from the next
 * pop3_retr() on, sizes[] their listed sizes.  At most 8 RETRs and 1 MiB
 * of listed bytes are in flight.  pop3_retr() then takes the replies in
 * order; any other command first reads what is still on its way (each
 * reply kept, capped at twice its listed size).  Without PIPELINING, or
 * asked in another order, nothing is sent ahead.  0, or -1 with the
 * session ended.
 */
int pop3_retr_ahead(struct pop3 *p, const uint32_t *msgnos,
    const int64_t *sizes, size_t n, struct err *err);

/* TOP msgno nlines into out (capped like pop3_retr).  0 or -1. */
int pop3_top(struct pop3 *p, uint32_t msgno, unsigned nlines, struct buf *out,
    struct err *err);

/* DELE msgno: marks the message; it is removed only by a successful QUIT.
 * A message number must come from the last listing of this session (when
 * one was made) and may not be deleted twice.  0 or -1. */
int pop3_dele(struct pop3 *p, uint32_t msgno, struct err *err);

/* DELE each of msgnos[0..n) (all checked as for pop3_dele first).  When
 * the server advertised PIPELINING (RFC 2449) the commands go out in
 * groups, each written at once, and the replies are read after; else one
 * command at a time.  ok[i] is set to 1 for each DELE the server accepted.
 * 0 when all were; -1 otherwise, err describing the first failure, and the
 * session ends as after any failed command. */
int pop3_dele_many(struct pop3 *p, const uint32_t *msgnos, size_t n, int *ok,
    struct err *err);

/* NOOP (keeps the session alive).  0 or -1. */
int pop3_noop(struct pop3 *p, struct err *err);

/* Sends QUIT and waits for the server's +OK: only then are the DELEs
 * final.  0 (deletions committed) or -1 (not confirmed).  The session is
 * unusable afterwards either way; pop3_free() it. */
int pop3_quit(struct pop3 *p, struct err *err);

/* Kind of the last failure on this handle (POP3_ERR_NONE if none). */
enum pop3_error pop3_error_kind(const struct pop3 *p);
/* Stable lower-case name ("auth", "tls", ...) for metrics and logs. */
const char *pop3_error_name(enum pop3_error kind);

/* How the session logged in: "USER", "SASL PLAIN", "SASL LOGIN",
 * "SASL XOAUTH2", "APOP", or "" before pop3_connect() succeeded.
 * Static string. */
const char *pop3_login_mechanism(const struct pop3 *p);
/* The server's capabilities as last listed before login (CAPA, after
 * STLS when used), space-separated, sanitised, at most 255 characters;
 * "" when it listed none.  Borrowed; valid until pop3_free(). */
const char *pop3_capabilities(const struct pop3 *p);
/* 1 when the server greeting carried an APOP timestamp. */
int pop3_greeting_apop(const struct pop3 *p);
/* 1 when the server advertised PIPELINING (DELEs then go out in
 * groups). */
int pop3_pipelining(const struct pop3 *p);

/* Number of TCP connections this handle has opened: 1 once connected (a
 * session never reconnects; a lost connection ends it). */
long pop3_connections(const struct pop3 *p);
/* Number of DELE commands the server accepted in this session. */
size_t pop3_deleted_count(const struct pop3 *p);

/* Frees the handle.  If the session is still open and in step (no
 * timeout, cut or garbled reply; a -ERR leaves it in step), QUIT is sent
 * (DELEs take effect) without reporting the outcome: call pop3_quit()
 * first to know.  NULL-safe; sets *p = NULL. */
void pop3_free(struct pop3 **p);

/* Closes the connection WITHOUT QUIT: the server discards the DELE marks
 * of this session (RFC 1939 section 6).  Then frees like pop3_free(). */
void pop3_abort(struct pop3 **p);

/*
 * Fallback key for servers without UIDL: "hdr:" + the SHA-256 (hex) of
 * the message header block (everything before the first empty line, or
 * the whole input if there is none), CRLF and LF line ends treated alike.
 * 68 characters, a valid UIDL.  key_out must hold POP3_UIDL_MAX + 1.
 */
void pop3_header_key(const char *msg, size_t len,
    char key_out[POP3_UIDL_MAX + 1]);
/*
 * Key for a message whose UIDL the server gave to others too: "dup:" +
 * the SHA-256 (hex) of the UIDL and the whole message, every line end
 * (CRLF, CR CR LF, LF) treated alike.  68 characters, a valid UIDL.
 */
void pop3_content_key(const char *uidl, const char *msg, size_t len,
    char key_out[POP3_UIDL_MAX + 1]);
/* TOP msgno 0 and pop3_header_key() of the result.  0 or -1. */
int pop3_top_key(struct pop3 *p, uint32_t msgno,
    char key_out[POP3_UIDL_MAX + 1], struct err *err);

/* Parses a UIDL (uidl != 0) or LIST (uidl == 0) listing body as handed
 * over by libcurl (status line and final "." removed).  Exposed for the
 * fuzzer and unit tests.  0 or -1 with err set. */
int pop3_parse_listing(const char *data, size_t len, int uidl,
    size_t max_messages, struct pop3_entry **list_out, size_t *n_out,
    struct err *err);

#endif
