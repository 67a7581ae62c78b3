/*
 * http.c - one thread, one poll() loop over the listening socket, a stop
 * pipe and at most HTTP_MAX_CONNS client sockets (non-blocking).  Each
 * client has a deadline and a capped request buffer; once the head is
 * complete the handler runs and the answer is written (with the same
 * deadline), then the socket is closed.  With every slot taken, a new
 * client evicts the oldest one still sending its request.  RFC 9112 subset: request line
 * and headers only, no bodies, no keep-alive.
 */
#include "service/http.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct conn {
	int fd; /* -1 when the slot is free */
	int64_t
	    accepted; /* when, in ms: the oldest unfinished one is evicted */
	int64_t deadline;
	struct buf in;
	struct buf out; /* response being written */
	size_t off; /* bytes of out already written */
	int writing;
	int draining; /* answer sent: read and drop until EOF, then close */
};

struct http_server {
	int lfd;
	int stop_pipe[2];
	int port;
	http_handler handler;
	void *arg;
	pthread_t thread;
	struct conn conns[HTTP_MAX_CONNS];
};

const char *
http_status_text(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 414:
		return "URI Too Long";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 503:
		return "Service Unavailable";
	case 505:
		return "HTTP Version Not Supported";
	default:
		return "Unknown";
	}
}

static int
is_tchar(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9') || strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

int
http_parse_request(const char *req, size_t len, char *method,
    size_t method_size, char *path, size_t path_size)
{
	size_t i = 0, ms, pe, ps, qs;
	char major;

	/* method */
	while (i < len && req[i] != ' ') {
		if (!is_tchar((unsigned char)req[i]) || req[i] == '\0')
			return 400;
		i++;
	}
	if (i == 0 || i >= len)
		return 400;
	ms = i;
	i++;
	/* target: origin-form only */
	ps = i;
	if (i >= len || req[i] != '/')
		return 400;
	while (i < len && req[i] != ' ') {
		unsigned char c = (unsigned char)req[i];

		if (c <= 0x20 || c >= 0x7f)
			return 400;
		i++;
	}
	if (i >= len)
		return 400;
	pe = i;
	i++;
	/* version */
	if (len - i < 10 || memcmp(req + i, "HTTP/", 5) != 0)
		return 400;
	if (!(req[i + 5] >= '0' && req[i + 5] <= '9') || req[i + 6] != '.' ||
	    !(req[i + 7] >= '0' && req[i + 7] <= '9'))
		return 400;
	major = req[i + 5];
	if (req[i + 8] == '\r')
		i += 9;
	else
		i += 8;
	if (i >= len || req[i] != '\n')
		return 400;
	if (major != '1')
		return 505;
	for (qs = ps; qs < pe && req[qs] != '?'; qs++)
		;
	if (qs - ps >= path_size)
		return 414;
	if (ms >= method_size)
		return 405;
	memcpy(method, req, ms);
	method[ms] = '\0';
	memcpy(path, req + ps, qs - ps);
	path[qs - ps] = '\0';
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		return 405;
	return 0;
}

/* Finds the end of the request head; its length or 0 if incomplete. */
static size_t
head_end(const char *p, size_t n)
{
	for (size_t i = 0; i + 1 < n; i++) {
		if (p[i] == '\n' && p[i + 1] == '\n')
			return i + 2;
		if (i + 3 < n && memcmp(p + i, "\r\n\r\n", 4) == 0)
			return i + 4;
	}
	return 0;
}

static void
conn_close(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	buf_free(&c->in);
	buf_free(&c->out);
	c->off = 0;
	c->writing = 0;
	c->draining = 0;
}

static void
conn_respond(struct http_server *s, struct conn *c, int status)
{
	struct http_response resp;
	char method[16], path[1024], head[256];
	int head_only = 0, n;

	memset(&resp, 0, sizeof(resp));
	resp.status = 200;
	resp.content_type = "text/plain; charset=utf-8";
	buf_init(&resp.body, HTTP_MAX_RESPONSE);
	if (status == 0) {
		status = http_parse_request(c->in.data, c->in.len, method,
		    sizeof(method), path, sizeof(path));
		if (status == 0) {
			head_only = strcmp(method, "HEAD") == 0;
			s->handler(s->arg, path, &resp);
			status = resp.status;
			if (resp.body.truncated) {
				status = 500;
				buf_reset(&resp.body);
			}
		}
	}
	if (status != resp.status || resp.body.len == 0) {
		if (status != resp.status) {
			buf_reset(&resp.body);
			resp.content_type = "text/plain; charset=utf-8";
		}
		if (resp.body.len == 0) {
			buf_append_str(&resp.body, http_status_text(status));
			buf_append_str(&resp.body, "\n");
		}
	}
	n = snprintf(head, sizeof(head),
	    "HTTP/1.0 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
	    "Connection: close\r\nCache-Control: no-store\r\n\r\n",
	    status, http_status_text(status), resp.content_type, resp.body.len);
	buf_init(&c->out, (size_t)n + resp.body.len + 1);
	buf_append(&c->out, head, (size_t)n);
	if (!head_only)
		buf_append(&c->out, resp.body.data ? resp.body.data : "",
		    resp.body.len);
	buf_free(&resp.body);
	c->off = 0;
	c->writing = 1;
}

static void
conn_read(struct http_server *s, struct conn *c)
{
	char tmp[2048];
	ssize_t n;

	n = read(c->fd, tmp, sizeof(tmp));
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return;
		conn_close(c);
		return;
	}
	if (n == 0) {
		/* the client gave up before finishing its request */
		conn_close(c);
		return;
	}
	buf_append(&c->in, tmp, (size_t)n);
	if (head_end(c->in.data, c->in.len) != 0)
		conn_respond(s, c, 0);
	else if (c->in.truncated || c->in.len >= HTTP_MAX_REQUEST)
		conn_respond(s, c, 431);
}

static void
conn_write(struct conn *c)
{
	ssize_t n;

	n = send(c->fd, c->out.data + c->off, c->out.len - c->off,
	    MSG_NOSIGNAL);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return;
		conn_close(c);
		return;
	}
	c->off += (size_t)n;
	if (c->off >= c->out.len) {
		/* Closing with unread input would reset the connection and
		 * could destroy the answer in flight: half-close, then drain
		 * what the client still sends for a moment. */
		shutdown(c->fd, SHUT_WR);
		c->writing = 0;
		c->draining = 1;
		c->deadline = now_ms() + 1000;
	}
}

static void
conn_drain(struct conn *c)
{
	char tmp[4096];
	ssize_t n = read(c->fd, tmp, sizeof(tmp));

	if (n == 0 ||
	    (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
	        errno != EINTR))
		conn_close(c);
}

static void
accept_one(struct http_server *s)
{
	struct conn *c = NULL;
	int fd;

	fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return;
	for (int i = 0; i < HTTP_MAX_CONNS; i++)
		if (s->conns[i].fd < 0) {
			c = &s->conns[i];
			break;
		}
	if (c == NULL) {
		/* every slot taken: the oldest client that has not finished
		 * its request yet makes room, so idle or dribbling clients
		 * cannot lock out a health check; if all are being answered,
		 * refuse rather than queue */
		static const char busy[] =
		    "HTTP/1.0 503 Service Unavailable\r\nContent-Length: "
		    "5\r\nConnection: close\r\n\r\nbusy\n";
		struct conn *old = NULL;

		for (int i = 0; i < HTTP_MAX_CONNS; i++) {
			struct conn *k = &s->conns[i];

			if (!k->writing && !k->draining &&
			    (old == NULL || k->accepted < old->accepted))
				old = k;
		}
		if (old == NULL) {
			(void)!send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL);
			close(fd);
			return;
		}
		(void)!send(old->fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL);
		conn_close(old);
		c = old;
	}
	c->fd = fd;
	c->accepted = now_ms();
	c->deadline = c->accepted + HTTP_TIMEOUT_MS;
	buf_init(&c->in, HTTP_MAX_REQUEST);
	c->writing = 0;
	c->draining = 0;
	c->off = 0;
}

static void *
serve(void *arg)
{
	struct http_server *s = arg;
	struct pollfd pfd[HTTP_MAX_CONNS + 2];
	int map[HTTP_MAX_CONNS + 2];

	for (;;) {
		int n = 0, timeout = 1000;
		int64_t now = now_ms();

		pfd[n].fd = s->stop_pipe[0];
		pfd[n].events = POLLIN;
		map[n++] = -1;
		pfd[n].fd = s->lfd;
		pfd[n].events = POLLIN;
		map[n++] = -2;
		for (int i = 0; i < HTTP_MAX_CONNS; i++) {
			struct conn *c = &s->conns[i];

			if (c->fd < 0)
				continue;
			if (now >= c->deadline) {
				if (c->draining) {
					conn_close(c);
					continue;
				}
				if (!c->writing) {
					conn_respond(s, c, 408);
					c->deadline = now + HTTP_TIMEOUT_MS;
				} else {
					conn_close(c);
					continue;
				}
			}
			if (c->deadline - now < timeout)
				timeout = (int)(c->deadline - now);
			pfd[n].fd = c->fd;
			pfd[n].events = c->writing ? POLLOUT : POLLIN;
			map[n++] = i;
		}
		if (poll(pfd, (nfds_t)n, timeout < 0 ? 0 : timeout) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[0].revents)
			break;
		for (int k = 2; k < n; k++) {
			struct conn *c = &s->conns[map[k]];

			if (pfd[k].revents == 0 || c->fd != pfd[k].fd)
				continue;
			if (c->writing)
				conn_write(c);
			else if (c->draining)
				conn_drain(c);
			else
				conn_read(s, c);
		}
		if (pfd[1].revents & POLLIN)
			accept_one(s);
	}
	return NULL;
}

static int
split_listen(const char *listen, char *host, size_t hsize, char *port,
    size_t psize, struct err *err)
{
	const char *colon;
	size_t hl;

	if (listen[0] == '[') {
		const char *rb = strchr(listen, ']');

		if (rb == NULL || rb[1] != ':')
			goto bad;
		hl = (size_t)(rb - listen - 1);
		if (hl >= hsize)
			goto bad;
		memcpy(host, listen + 1, hl);
		host[hl] = '\0';
		colon = rb + 1;
	} else {
		colon = strrchr(listen, ':');
		if (colon == NULL)
			goto bad;
		hl = (size_t)(colon - listen);
		if (hl >= hsize)
			goto bad;
		memcpy(host, listen, hl);
		host[hl] = '\0';
	}
	if (strlen(colon + 1) == 0 || strlen(colon + 1) >= psize)
		goto bad;
	strlcpy_b(port, colon + 1, psize);
	return 0;
bad:
	err_set(err, "http.listen \"%s\": expected HOST:PORT", listen);
	return -1;
}

int
http_start(const char *addr, http_handler handler, void *arg,
    struct http_server **out, struct err *err)
{
	struct http_server *s = NULL;
	struct addrinfo hints, *res = NULL, *ai;
	char host[256], port[16];
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int64_t pn;
	int rc = -1, one = 1, gai;

	*out = NULL;
	if (split_listen(addr, host, sizeof(host), port, sizeof(port), err))
		goto out;
	if (parse_int64(port, 0, 65535, &pn, err) != 0) {
		err_prefix(err, "http.listen port");
		goto out;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	gai = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
	if (gai != 0) {
		err_set(err, "http.listen %s: %s", addr, gai_strerror(gai));
		goto out;
	}
	s = xcalloc(1, sizeof(*s));
	s->lfd = -1;
	s->stop_pipe[0] = s->stop_pipe[1] = -1;
	for (int i = 0; i < HTTP_MAX_CONNS; i++)
		s->conns[i].fd = -1;
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		s->lfd = socket(ai->ai_family,
		    ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    ai->ai_protocol);
		if (s->lfd < 0)
			continue;
		setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(s->lfd, ai->ai_addr, ai->ai_addrlen) == 0 &&
		    listen(s->lfd, 64) == 0)
			break;
		close(s->lfd);
		s->lfd = -1;
	}
	if (s->lfd < 0) {
		err_set(err, "http.listen %s: %s", addr, strerror(errno));
		goto out;
	}
	if (getsockname(s->lfd, (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET)
			s->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		else if (ss.ss_family == AF_INET6)
			s->port =
			    ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	}
	if (pipe2(s->stop_pipe, O_CLOEXEC) != 0) {
		err_set(err, "pipe: %s", strerror(errno));
		goto out;
	}
	s->handler = handler;
	s->arg = arg;
	if (pthread_create(&s->thread, NULL, serve, s) != 0) {
		err_set(err, "http: cannot start thread");
		goto out;
	}
	*out = s;
	s = NULL;
	rc = 0;
out:
	if (res != NULL)
		freeaddrinfo(res);
	if (s != NULL) {
		if (s->lfd >= 0)
			close(s->lfd);
		if (s->stop_pipe[0] >= 0)
			close(s->stop_pipe[0]);
		if (s->stop_pipe[1] >= 0)
			close(s->stop_pipe[1]);
		free(s);
	}
	return rc;
}

int
http_port(const struct http_server *s)
{
	return s->port;
}

void
http_stop(struct http_server **sp)
{
	struct http_server *s;

	if (sp == NULL || *sp == NULL)
		return;
	s = *sp;
	(void)!write(s->stop_pipe[1], "x", 1);
	pthread_join(s->thread, NULL);
	for (int i = 0; i < HTTP_MAX_CONNS; i++)
		conn_close(&s->conns[i]);
	close(s->lfd);
	close(s->stop_pipe[0]);
	close(s->stop_pipe[1]);
	free(s);
	*sp = NULL;
}
