/*
 * fuzz_pop3.c - server replies as input.  The first byte picks the
 * target: the UIDL or LIST listing parser and the header key directly
 * (fast), or a whole session: a local TCP server thread plays the input
 * as everything the "server" says (greeting, CAPA, login replies,
 * listings, messages, DELE replies), reply by reply, then hangs up, while
 * the client logs in through libcurl and then scans, retrieves, deletes
 * (pipelined when the input's CAPA says PIPELINING) and quits over the
 * raw session.  Nothing may crash, leak, overrun or hang.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pop3/pop3.h"

static int lfd = -1, lport;

/* The input of a session is split into replies at "\xff\xfe": the first
 * is the greeting, each further one answers one client line (or goes out
 * after 5 ms of client silence); after the last the server hangs up. */
struct serve {
	const uint8_t *data;
	size_t len, off;
	int fin;
	int done; /* set by the client side when it has finished */
};

static void
send_next(struct serve *s, int c)
{
	const uint8_t *d;
	size_t end, off;
	ssize_t n;

	if (s->off >= s->len) {
		if (!s->fin)
			shutdown(c, SHUT_WR);
		s->fin = 1;
		return;
	}
	d = memmem(s->data + s->off, s->len - s->off, "\xff\xfe", 2);
	end = d ? (size_t)(d - s->data) : s->len;
	for (off = s->off; off < end; off += (size_t)n) {
		n = send(c, s->data + off, end - off, MSG_NOSIGNAL);
		if (n <= 0)
			break;
	}
	s->off = d ? end + 2 : s->len;
}

static void *
serve(void *arg)
{
	struct serve *s = arg;
	char in[4096];
	int c = -1, first = 1;

	while (!__atomic_load_n(&s->done, __ATOMIC_ACQUIRE)) {
		struct pollfd pf[2];
		int np = 1, r;

		pf[0].fd = lfd;
		pf[0].events = POLLIN;
		if (c >= 0) {
			pf[1].fd = c;
			pf[1].events = POLLIN;
			np = 2;
		}
		r = poll(pf, (nfds_t)np, 5);
		if (r == 0 && c >= 0) {
			send_next(s, c);
			continue;
		}
		if (r > 0 && (pf[0].revents & POLLIN)) {
			int nc = accept(lfd, NULL, NULL);
			if (nc >= 0 && first) {
				c = nc;
				first = 0;
				send_next(s, c);
			} else if (nc >= 0) {
				close(nc); /* a reconnect: refused */
			}
		}
		if (r > 0 && np == 2 && (pf[1].revents & (POLLIN | POLLHUP))) {
			ssize_t n = recv(c, in, sizeof(in), 0), i;
			if (n <= 0) {
				close(c);
				c = -1;
				continue;
			}
			for (i = 0; i < n; i++)
				if (in[i] == '\n')
					send_next(s, c);
		}
	}
	if (c >= 0)
		close(c);
	return NULL;
}

static void
setup(void)
{
	struct sockaddr_in a;
	socklen_t al = sizeof(a);

	signal(SIGPIPE, SIG_IGN);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    listen(lfd, 4) != 0 ||
	    getsockname(lfd, (struct sockaddr *)&a, &al) != 0)
		abort();
	lport = ntohs(a.sin_port);
}

static void
session(const uint8_t *data, size_t len)
{
	struct pop3_options o;
	struct pop3 *p;
	struct pop3_entry *l = NULL;
	struct err err;
	struct buf b;
	struct serve s = {data, len, 0, 0, 0};
	pthread_t th;
	char key[POP3_UIDL_MAX + 1];
	uint32_t nums[8];
	int ok[8];
	size_t n = 0, i;

	if (pthread_create(&th, NULL, serve, &s) != 0)
		abort();
	memset(&o, 0, sizeof(o));
	o.mailbox_name = "fuzz";
	o.host = "127.0.0.1";
	o.port = lport;
	o.tls = POP3_TLS_NONE;
	o.username = "u";
	o.password = "p";
	o.connect_timeout_ms = 1000;
	o.command_timeout_ms = 1000;
	o.transfer_timeout_ms = 1000;
	o.max_message_bytes = 4096;
	o.max_messages = 1000;
	buf_init(&b, 4096);
	p = pop3_new(&o, &err);
	if (p != NULL && pop3_connect(p, &err) == 0) {
		if (pop3_scan(p, &l, &n, &err) == 0 && n > 0) {
			if (pop3_retr(p, l[0].msgno, &b, &err) == 0 &&
			    b.len > b.cap)
				abort();
			pop3_top_key(p, l[0].msgno, key, &err);
			/* every listed message (at most 8), pipelined when
			 * the CAPA of the input said PIPELINING */
			for (i = 0; i < n && i < 8; i++)
				nums[i] = l[i].msgno;
			pop3_dele_many(p, nums, i, ok, &err);
		}
		pop3_noop(p, &err);
		pop3_quit(p, &err);
	}
	pop3_free(&p);
	__atomic_store_n(&s.done, 1, __ATOMIC_RELEASE);
	pthread_join(th, NULL);
	free(l);
	buf_free(&b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pop3_entry *l = NULL;
	struct err err;
	char key[POP3_UIDL_MAX + 1];
	size_t n = 0, i;

	if (lfd < 0)
		setup();
	if (size == 0)
		return 0;
	switch (data[0] % 4) {
	case 0:
	case 1:
		if (pop3_parse_listing((const char *)data + 1, size - 1,
		        data[0] % 4 == 0, 500, &l, &n, &err) == 0) {
			for (i = 0; i < n; i++)
				if (l[i].msgno == 0 ||
				    strlen(l[i].uidl) > POP3_UIDL_MAX)
					abort();
			free(l);
		}
		break;
	case 2:
		pop3_header_key((const char *)data + 1, size - 1, key);
		if (strlen(key) != 68)
			abort();
		break;
	default:
		session(data + 1, size - 1);
		break;
	}
	return 0;
}
