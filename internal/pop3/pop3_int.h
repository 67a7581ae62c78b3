/*
 * pop3_int.h - internals shared by the files of the POP3 client: the
 * session structure, the limits and defaults, and the helpers that
 * pop3.c (session, login), pop3_io.c (commands and replies),
 * pop3_list.c (listings) and pop3_xfer.c (RETR, DELE) call in each other.
 * Not part of the public API: only internal/pop3 includes it.
 */
#ifndef BOUNCER_POP3_INT_H
#define BOUNCER_POP3_INT_H

#include <curl/curl.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/util.h"
#include "pop3/pop3.h"

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

/* Capabilities the client acts on (RFC 2449, RFC 5034). */
#define CAP_PIPELINING 0x01u
#define CAP_SASL_PLAIN 0x02u
#define CAP_SASL_LOGIN 0x04u
#define CAP_USER 0x08u

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

/* ---- pop3.c ---- */

/* Copies at most cap-1 bytes of s, replacing anything outside 0x20..0x7E
 * with '?'.  Server text never reaches error messages raw. */
void pop3_sanitize(char *dst, size_t cap, const char *s, size_t n);
/* Sets p->kind and err to "mailbox M: cmd: text", the password and its
 * base64 forms scrubbed. */
void pop3_fail(struct pop3 *p, enum pop3_error kind, struct err *err,
    const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Closes the live connection at the socket level: no QUIT reaches the
 * server, so it discards this session's DELE marks. */
void pop3_drop_connection(struct pop3 *p);
/* Ends the session after a failure; insync: QUIT may still be sent at
 * pop3_free(), otherwise the connection is cut. */
void pop3_end_session(struct pop3 *p, int insync);
/* Base64 (RFC 4648) of in[0..n) into a new string. */
char *pop3_b64(const unsigned char *in, size_t n);
/* Frees a string that held a secret, wiping it first; NULL-safe. */
void pop3_free_secret(char *s);
/* -1 (kind state) unless pop3_connect() succeeded. */
int pop3_need_session(struct pop3 *p, const char *cmd, struct err *err);

/* ---- pop3_io.c ---- */

/* "-ERR [IN-USE] ..." -> kind from the RFC 2449 response code, else dflt. */
enum pop3_error pop3_kind_from_status(const char *status, enum pop3_error dflt);
enum pop3_error pop3_kind_from_curl(CURLcode rc);
void pop3_xfer_init(struct xfer *x, const char *label, long timeout_ms);
/* Writes len bytes of data.  0 or -1 (session ended). */
int pop3_send_all(struct pop3 *p, struct xfer *x, const char *data, size_t len,
    struct err *err);
/* One status line: 0 "+OK", 1 a SASL continuation when cont is set, -1
 * "-ERR" (still in step) or anything else (session ended). */
int pop3_read_reply(struct pop3 *p, struct xfer *x, enum pop3_error err_kind,
    int cont, struct err *err);
int pop3_read_status(struct pop3 *p, struct xfer *x, enum pop3_error err_kind,
    struct err *err);
/* A multi-line body up to its "." line, dot-stuffing undone. */
int pop3_read_body(struct pop3 *p, struct xfer *x, struct buf *body,
    struct err *err);
/* -1 (kind state) when an error or QUIT has ended the session. */
int pop3_ended(struct pop3 *p, const char *label, struct err *err);
/* A RETR sent ahead whose reply can no longer be read. */
void pop3_ahead_lost(struct pop3 *p, struct ahead *a);
/* Reads the reply of the oldest RETR sent ahead into body.  0 or -1 (the
 * error kept in the entry). */
int pop3_read_ahead(struct pop3 *p, struct ahead *a, struct buf *body);
/* Reads every reply still on its way for the RETRs sent ahead.  0, or -1
 * when the session ended out of step. */
int pop3_drain(struct pop3 *p, struct err *err);
/* Sends one command and reads its reply (multi-line into body when not
 * NULL); label names it in errors.  Any failure ends the session. */
int pop3_exchange(struct pop3 *p, const char *cmd, const char *label,
    struct buf *body, long timeout_ms, enum pop3_error err_kind,
    struct err *err);
/* pop3_exchange(), on a session no error or QUIT has ended yet. */
int pop3_run_as(struct pop3 *p, const char *cmd, const char *label,
    struct buf *body, long timeout_ms, enum pop3_error err_kind,
    struct err *err);
int pop3_run(struct pop3 *p, const char *cmd, struct buf *body, long timeout_ms,
    enum pop3_error err_kind, struct err *err);

/* ---- pop3_list.c ---- */

/* qsort / bsearch order of uint32_t. */
int pop3_cmp_u32(const void *a, const void *b);
/* Whether v[0..n) holds a number twice (*dup gets it).  Sorts v. */
int pop3_has_dup_u32(uint32_t *v, size_t n, uint32_t *dup);

#endif
