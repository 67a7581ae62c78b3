/*
 * pop3_xfer.c - messages of a POP3 session: RETR and TOP into capped
 * buffers, RETRs pipelined ahead of their turn (RFC 2449), and DELE in
 * pipelined groups, every message number checked against the session's
 * last listing first.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pop3/pop3.h"
#include "pop3/pop3_int.h"

/* Checks msgno against the last listing; returns its index or -1. */
static long
check_msgno(struct pop3 *p, uint32_t msgno, const char *cmd, struct err *err)
{
	uint32_t *hit;

	if (msgno == 0) {
		pop3_fail(p, POP3_ERR_STATE, err, cmd, "message number 0");
		return -1;
	}
	if (!p->have_listing)
		return 0;
	hit = bsearch(&msgno, p->msgnos, p->n_msgnos, sizeof(*p->msgnos),
	    pop3_cmp_u32);
	if (hit == NULL) {
		pop3_fail(p, POP3_ERR_STATE, err, cmd,
		    "message %u is not in this session's listing",
		    (unsigned)msgno);
		return -1;
	}
	if (p->dele[hit - p->msgnos]) {
		pop3_fail(p, POP3_ERR_STATE, err, cmd,
		    "message %u is already deleted", (unsigned)msgno);
		return -1;
	}
	return (long)(hit - p->msgnos);
}

static int
fetch(struct pop3 *p, const char *cmd, uint32_t msgno, struct buf *out,
    struct err *err)
{
	if (pop3_need_session(p, cmd, err) != 0 ||
	    check_msgno(p, msgno, cmd, err) < 0)
		return -1;
	buf_reset(out);
	if (out->cap == 0 || out->cap > p->max_message)
		out->cap = p->max_message;
	if (out->len > out->cap) /* cannot happen after reset */
		out->len = 0;
	return pop3_run(p, cmd, out, p->transfer_ms, POP3_ERR_SERVER, err);
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
		pop3_ahead_lost(p, a);
	else if (!a->done)
		(void)pop3_read_ahead(p, a, out);
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
		if (pop3_drain(p, err) != 0)
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
	pop3_xfer_init(&x, label, p->command_ms);
	if (pop3_send_all(p, &x, out, len, err) != 0) {
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
	if (pop3_need_session(p, label, err) != 0 ||
	    pop3_ended(p, label, err) != 0 || pop3_drain(p, err) != 0)
		return -1;
	/* Every number is checked before anything is sent. */
	sorted = xmalloc(n * sizeof(*sorted));
	memcpy(sorted, msgnos, n * sizeof(*sorted));
	twice = pop3_has_dup_u32(sorted, n, &dup);
	free(sorted);
	if (twice) {
		snprintf(label, sizeof(label), "DELE %u", (unsigned)dup);
		pop3_fail(p, POP3_ERR_STATE, err, label,
		    "message %u given twice", (unsigned)dup);
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
		pop3_xfer_init(&x, label, p->command_ms);
		x.finish = 1;
		if (pop3_send_all(p, &x, out, len, err) != 0) {
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
			if (pop3_read_status(p, &x, POP3_ERR_SERVER, &e2) !=
			    0) {
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
