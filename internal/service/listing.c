/*
 * listing.c - the start of a pass: the XOAUTH2 token, connecting and
 * logging in (a refused token is renewed once), and the listing: the
 * oldest messages up to a window, keyed by UIDL, by UIDL and content for
 * messages a server listed under one UIDL, or by a digest of the header
 * block on a server without UIDL.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "service/pass_int.h"

static int
get_token(struct pass *ps, int force, char **token_out, struct err *err)
{
	enum oauth_source src = OAUTH_SRC_CACHE;
	int rc;

	rc = oauth_get_token(ps->env->oauth, ps->mc, force, token_out, &src,
	    err);
	if (src == OAUTH_SRC_FETCHED) {
		metrics_add_token(ps->env->m, ps->midx, rc == 0);
		if (rc == 0)
			log_debug("oauth token obtained", "mailbox",
			    ps->mc->name, NULL);
	}
	return rc;
}

/* token: the XOAUTH2 bearer token (NULL for password mailboxes). */
static struct pop3 *
open_pop3(struct pass *ps, const char *token, struct err *err)
{
	const struct mailbox_config *mc = ps->mc;
	struct pop3_options o;

	memset(&o, 0, sizeof(o));
	o.mailbox_name = mc->name;
	o.host = mc->host;
	o.port = mc->port;
	o.tls = mc->tls == CONFIG_TLS_STARTTLS ? POP3_TLS_STARTTLS
	    : mc->tls == CONFIG_TLS_NONE       ? POP3_TLS_NONE
	                                       : POP3_TLS_IMPLICIT;
	o.ca_file = mc->ca_file;
	o.username = mc->username;
	if (mc->auth == CONFIG_AUTH_XOAUTH2) {
		o.auth = POP3_AUTH_XOAUTH2;
		o.bearer_token = token;
	} else {
		o.auth = mc->auth == CONFIG_AUTH_APOP ? POP3_AUTH_APOP
		                                      : POP3_AUTH_DEFAULT;
		o.password = mc->password;
	}
	o.connect_timeout_ms = (long)mc->poll.connect_timeout_ms;
	o.command_timeout_ms = (long)mc->poll.command_timeout_ms;
	o.stop = ps->env->stop; /* SIGTERM ends a stalled transfer at once */
	o.max_message_bytes = (size_t)mc->poll.max_message_bytes;
	return pop3_new(&o, err);
}

static int
cmp_entry_key(const void *a, const void *b)
{
	const struct pop3_entry *x = *(const struct pop3_entry *const *)a;
	const struct pop3_entry *y = *(const struct pop3_entry *const *)b;
	int c = strcmp(x->uidl, y->uidl);

	return c != 0 ? c : (x->msgno > y->msgno) - (x->msgno < y->msgno);
}

/*
 * Keys listed more than once in ent[0..*n) (message-number order within
 * each run): the 2nd ... 9th of a run get "-2" ... "-9" appended; any
 * further copies, and keys too long to take a suffix, are left out of the
 * listing, to wait for a later pass.  Returns how many were left out.
 */
static size_t
suffix_same_keys(struct pop3_entry *ent, size_t *n)
{
	struct pop3_entry **ix;
	size_t i, j, out;

	ix = xcalloc(*n + 1, sizeof(*ix));
	for (i = 0; i < *n; i++)
		ix[i] = &ent[i];
	qsort(ix, *n, sizeof(*ix), cmp_entry_key);
	for (i = 0; i < *n; i = j) {
		for (j = i + 1; j < *n && strcmp(ix[j]->uidl, ix[i]->uidl) == 0;
		     j++) {
			size_t k = j - i + 1, len = strlen(ix[j]->uidl);

			if (k <= 9 && len + 2 <= POP3_UIDL_MAX)
				snprintf(ix[j]->uidl + len, 3, "-%zu", k);
			else
				ix[j]->uidl[0] = '\0'; /* a later pass */
		}
	}
	free(ix);
	for (i = 0, out = 0; i < *n; i++)
		if (ent[i].uidl[0] != '\0')
			ent[out++] = ent[i];
	i = *n - out;
	*n = out;
	return i;
}

/*
 * Messages the server gave the same UIDL (RFC 1939 forbids it; servers
 * that derive ids from content do it): each is retrieved and keyed by
 * pop3_content_key() (its UIDL and its content), copies alike in both
 * numbered by suffix_same_keys().  Logged once per pass at warn and
 * counted (errors, kind duplicate_uidl); the rest of the mailbox goes
 * on as usual.  0, or -1 with err set (the session broke).
 */
static int
rekey_duplicates(struct pass *ps, struct pop3_entry *ent, size_t *n,
    struct err *err)
{
	struct pop3_entry **ix;
	struct buf b;
	size_t i, j, ndup = 0, late;
	char first[POP3_UIDL_MAX + 1] = "";
	int rc = 0;

	if (*n < 2)
		return 0;
	ix = xcalloc(*n + 1, sizeof(*ix));
	for (i = 0; i < *n; i++)
		ix[i] = &ent[i];
	qsort(ix, *n, sizeof(*ix), cmp_entry_key);
	buf_init(&b,
	    ps->mc->poll.max_message_bytes > 0
	        ? (size_t)ps->mc->poll.max_message_bytes
	        : (size_t)32 << 20);
	for (i = 0; i < *n && rc == 0; i = j) {
		for (j = i + 1; j < *n && strcmp(ix[j]->uidl, ix[i]->uidl) == 0;
		     j++)
			;
		if (j - i < 2)
			continue;
		if (first[0] == '\0')
			memcpy(first, ix[i]->uidl, sizeof(first));
		for (size_t k = i; k < j && rc == 0; k++) {
			char uidl[POP3_UIDL_MAX + 1];

			if (*ps->env->stop) {
				err_set(err, "interrupted");
				rc = -1;
				break;
			}
			if (pop3_retr(ps->pop, ix[k]->msgno, &b, err) != 0) {
				rc = -1;
				break;
			}
			memcpy(uidl, ix[k]->uidl, sizeof(uidl));
			pop3_content_key(uidl, b.data ? b.data : "", b.len,
			    ix[k]->uidl);
			ndup++;
		}
	}
	buf_free(&b);
	free(ix);
	if (ndup == 0 || rc != 0)
		return rc;
	late = suffix_same_keys(ent, n);
	for (i = 0; i < ndup; i++)
		metrics_add_error(ps->env->m, ps->midx, METRICS_ERR_DUP_UIDL);
	log_f(LOG_WARN,
	    "server gave several messages the same UIDL: keyed by UIDL and "
	    "content",
	    LOG_STR("mailbox", ps->mc->name), LOG_STR("host", ps->mc->host),
	    LOG_INT("messages", ndup), LOG_STR("uidl", first));
	if (late > 0)
		log_warn("more than 9 identical messages share a UIDL: the "
		         "rest wait for a later pass",
		    "mailbox", ps->mc->name, "host", ps->mc->host, NULL);
	return 0;
}

/*
 * For a server without UIDL: a new session, LIST, and each message keyed
 * by a digest of its header block (TOP n 0).  Messages whose header blocks
 * are identical get "-2" ... "-9" appended, in message-number order; any
 * further copies wait for a later pass (left out of the listing).  0, or
 * -1 with err set (the session is then unusable).
 */
static int
scan_by_header(struct pass *ps, const char *token, size_t window,
    struct pop3_entry **ent, size_t *nent, size_t *total, struct err *err)
{
	size_t n = 0, i;

	pop3_free(&ps->pop); /* QUIT: nothing was DELEd */
	if ((ps->pop = open_pop3(ps, token, err)) == NULL ||
	    pop3_connect(ps->pop, err) != 0 ||
	    pop3_list(ps->pop, ent, &n, err) != 0)
		return -1;
	*total = n;
	if (n > window)
		n = window; /* the listing's first, oldest, ones */
	for (i = 0; i < n && !*ps->env->stop; i++)
		if (pop3_top_key(ps->pop, (*ent)[i].msgno, (*ent)[i].uidl,
		        err) != 0)
			return -1;
	if (i < n) {
		err_set(err, "interrupted");
		return -1;
	}
	if (suffix_same_keys(*ent, &n) > 0)
		log_warn("more than 9 messages with the same header block: "
		         "the rest wait for a later pass",
		    "mailbox", ps->mc->name, NULL);
	*nent = n;
	return 0;
}

/*
 * How many of the oldest messages a pass lists.  In delete mode a pass
 * takes max_messages new ones; the window leaves room for those the
 * ledger says are recorded (DELEd without fetching), failed or
 * quarantined, so a mailbox of a million messages is listed a few
 * thousand at a time and worked off oldest first over several passes.
 * Keep mode lists everything: the whole list tells which messages are
 * new and which are gone.
 */
static size_t
listing_window(const struct mailbox_config *mc)
{
	size_t m =
	    mc->poll.max_messages > 0 ? (size_t)mc->poll.max_messages : 500;

	if (mc->poll.after_processing != CONFIG_AFTER_DELETE)
		return SIZE_MAX;
	return m * 4 > 2000 ? m * 4 : 2000;
}

/* Token (when XOAUTH2), a new session, and the login, renewing a token
 * the server refused once (expired or revoked early), never in a loop. */
int
pass_login(struct pass *ps)
{
	struct err err = {{0}};
	int64_t t0 = now_us();
	int rc;

	if (ps->mc->auth == CONFIG_AUTH_XOAUTH2 &&
	    get_token(ps, 0, &ps->token, &err) != 0) {
		pass_error(ps, METRICS_ERR_AUTH, "oauth token request failed",
		    err.msg);
		return -1;
	}
	if ((ps->pop = open_pop3(ps, ps->token, &err)) == NULL) {
		pass_error(ps, METRICS_ERR_OTHER, "mailbox settings", err.msg);
		return -1;
	}
	rc = pop3_connect(ps->pop, &err);
	if (rc != 0 && ps->mc->auth == CONFIG_AUTH_XOAUTH2 &&
	    pop3_error_kind(ps->pop) == POP3_ERR_AUTH) {
		log_warn("xoauth2 login refused; renewing the token once",
		    "mailbox", ps->name, "cause", err.msg, NULL);
		pop3_abort(&ps->pop);
		free(ps->token);
		ps->token = NULL;
		if (get_token(ps, 1, &ps->token, &err) != 0) {
			pass_error(ps, METRICS_ERR_AUTH,
			    "oauth token request failed", err.msg);
			return -1;
		}
		if ((ps->pop = open_pop3(ps, ps->token, &err)) == NULL) {
			pass_error(ps, METRICS_ERR_OTHER, "mailbox settings",
			    err.msg);
			return -1;
		}
		rc = pop3_connect(ps->pop, &err);
	}
	ps->t_login = now_us() - t0;
	if (rc != 0) {
		pass_error(ps, pass_pop3_kind(pop3_error_kind(ps->pop)),
		    "POP3 session failed", err.msg);
		ps->fault = FAULT_POP3;
		return -1;
	}
	log_debug("logged in", "mailbox", ps->name, "mechanism",
	    pop3_login_mechanism(ps->pop), "capa", pop3_capabilities(ps->pop),
	    "apop_greeting", pop3_greeting_apop(ps->pop) ? "yes" : "no", "dele",
	    pop3_pipelining(ps->pop) ? "pipelined" : "one at a time", NULL);
	return 0;
}

int
pass_list(struct pass *ps)
{
	struct err err = {{0}};
	size_t window = listing_window(ps->mc);
	int64_t t0 = now_us();
	int rc;

	rc = pop3_scan_first(ps->pop, window, &ps->ent, &ps->nent, &ps->total,
	    &err);
	if (rc != 0 && pop3_error_kind(ps->pop) == POP3_ERR_NO_UIDL) {
		log_info("server has no UIDL: keying messages by their header "
		         "block (TOP n 0)",
		    "mailbox", ps->name, "cause", err.msg, NULL);
		free(ps->ent);
		ps->ent = NULL;
		ps->nent = 0;
		rc = scan_by_header(ps, ps->token, window, &ps->ent, &ps->nent,
		    &ps->total, &err);
	} else if (rc == 0)
		rc = rekey_duplicates(ps, ps->ent, &ps->nent, &err);
	ps->t_list = now_us() - t0;
	if (rc != 0) {
		pass_error(ps,
		    ps->pop ? pass_pop3_kind(pop3_error_kind(ps->pop))
		            : METRICS_ERR_OTHER,
		    "POP3 session failed", err.msg);
		ps->fault = FAULT_POP3;
		return -1;
	}
	ps->partial = ps->nent < ps->total;
	if (ps->partial)
		log_f(LOG_INFO,
		    "mailbox holds more messages than a pass takes: the oldest "
		    "listed, the rest on later passes",
		    LOG_STR("mailbox", ps->name),
		    LOG_INT("messages", ps->total),
		    LOG_INT("listed", ps->nent));
	return 0;
}
