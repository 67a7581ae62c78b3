/*
 * test_http.c - the request-line parser (table) and the server over a
 * real loopback socket: routing, HEAD, 404/405/400/431/408, a slow client
 * that must not stall others, binary junk and a burst of connections.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "service/http.h"
#include "test.h"
#include "base/util.h"

static const struct {
	const char *req;
	int want;
	const char *method, *path;
} rows[] = {
    {"GET /healthz HTTP/1.1\r\n\r\n", 0, "GET", "/healthz"},
    {"GET /metrics?x=1 HTTP/1.0\n\n", 0, "GET", "/metrics"},
    {"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", 0, "HEAD", "/"},
    {"POST /metrics HTTP/1.1\r\n\r\n", 405, NULL, NULL},
    {"DELETEEVERYTHINGNOW / HTTP/1.1\r\n\r\n", 405, NULL, NULL},
    {"GET /x HTTP/2.0\r\n\r\n", 505, NULL, NULL},
    {"GET http://a/ HTTP/1.1\r\n\r\n", 400, NULL, NULL},
    {"GET /a b HTTP/1.1\r\n\r\n", 400, NULL, NULL},
    {"GET  /a HTTP/1.1\r\n\r\n", 400, NULL, NULL},
    {"GET /a\x01 HTTP/1.1\r\n\r\n", 400, NULL, NULL},
    {"GET /a HTTP/1.1", 400, NULL, NULL},
    {"GET /a HTTX/1.1\r\n\r\n", 400, NULL, NULL},
    {"G(T /a HTTP/1.1\r\n\r\n", 400, NULL, NULL},
    {"\r\n\r\n", 400, NULL, NULL},
    {"", 400, NULL, NULL},
    {"GET", 400, NULL, NULL},
    {"GET /", 400, NULL, NULL},
};

static void
t_parse_table(void)
{
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char m[16], p[64];
		int rc;

		test_begin("parse[%zu]", i);
		rc = http_parse_request(rows[i].req, strlen(rows[i].req), m,
		    sizeof(m), p, sizeof(p));
		CHECK_INT(rc, rows[i].want);
		if (rc == 0 && rows[i].want == 0) {
			CHECK_STR(m, rows[i].method);
			CHECK_STR(p, rows[i].path);
		}
		test_end();
	}
	test_begin("parse long path");
	{
		char req[300], m[16], p[64];

		snprintf(req, sizeof(req), "GET /%0200d HTTP/1.1\r\n\r\n", 0);
		CHECK_INT(http_parse_request(req, strlen(req), m, sizeof(m), p,
		              sizeof(p)),
		    414);
	}
	test_end();
}

static int calls;

static void
handler(void *arg, const char *path, struct http_response *resp)
{
	calls++;
	if (strcmp(path, "/hello") == 0) {
		resp->content_type = "text/plain";
		buf_append_str(&resp->body, "hello world\n");
	} else if (strcmp(path, "/down") == 0) {
		resp->status = 503;
		resp->content_type = "application/json";
		buf_append_str(&resp->body, "{\"status\":\"fail\"}\n");
	} else
		resp->status = 404;
}

static int
dial(int port)
{
	struct sockaddr_in sa;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Reads until EOF (or 10 s); returns a malloc'd string. */
static char *
slurp(int fd)
{
	size_t len = 0, cap = 4096;
	char *s = malloc(cap);
	int64_t end = now_ms() + 10000;

	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t n;

		if (now_ms() > end || poll(&p, 1, 1000) < 0)
			break;
		if (!(p.revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		if (len + 1024 > cap)
			s = realloc(s, cap *= 2);
		n = read(fd, s + len, cap - len - 1);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	s[len] = '\0';
	return s;
}

static char *
request(int port, const char *data, size_t n)
{
	int fd = dial(port);
	char *r;

	if (fd < 0)
		return strdup("");
	(void)!write(fd, data, n);
	r = slurp(fd);
	close(fd);
	return r;
}

static struct http_server *srv;
static int port;

static void
t_start(void)
{
	struct err err = {{0}};
	struct http_server *bad = NULL;

	CHECK(http_start("127.0.0.1:0", handler, NULL, &srv, &err) == 0, "%s",
	    err.msg);
	port = srv ? http_port(srv) : 0;
	CHECK(port > 0, "port %d", port);
	CHECK(http_start("nonsense", handler, NULL, &bad, &err) == -1, "bad");
	CHECK(strstr(err.msg, "HOST:PORT") != NULL, "%s", err.msg);
	CHECK(http_start("127.0.0.1:99999", handler, NULL, &bad, &err) == -1,
	    "port range");
	CHECK(bad == NULL, "no server");
}

#define REQ(s) request(port, s, sizeof(s) - 1)

static void
t_routes(void)
{
	char *r;

	r = REQ("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
	CHECK(strncmp(r, "HTTP/1.0 200 OK\r\n", 17) == 0, "%s", r);
	CHECK(strstr(r, "Content-Length: 12\r\n") != NULL, "%s", r);
	CHECK(strstr(r, "\r\n\r\nhello world\n") != NULL, "%s", r);
	free(r);
	r = REQ("HEAD /hello HTTP/1.0\r\n\r\n");
	CHECK(strncmp(r, "HTTP/1.0 200 OK\r\n", 17) == 0, "%s", r);
	CHECK(strstr(r, "hello world") == NULL, "HEAD has no body: %s", r);
	free(r);
	r = REQ("GET /down HTTP/1.1\r\n\r\n");
	CHECK(strncmp(r, "HTTP/1.0 503 ", 13) == 0, "%s", r);
	CHECK(strstr(r, "application/json") != NULL, "%s", r);
	free(r);
	r = REQ("GET /nope HTTP/1.1\r\n\r\n");
	CHECK(strncmp(r, "HTTP/1.0 404 ", 13) == 0, "%s", r);
	free(r);
	r = REQ("POST /hello HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc");
	CHECK(strncmp(r, "HTTP/1.0 405 ", 13) == 0, "%s", r);
	free(r);
	r = REQ("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n");
	CHECK(strncmp(r, "HTTP/1.0 400 ", 13) == 0, "%s", r);
	free(r);
}

static void
t_oversize(void)
{
	char *big = malloc(HTTP_MAX_REQUEST * 2);
	char *r;

	memset(big, 'A', HTTP_MAX_REQUEST * 2);
	memcpy(big, "GET /hello HTTP/1.1\r\nX: ", 24);
	r = request(port, big, HTTP_MAX_REQUEST * 2);
	CHECK(strncmp(r, "HTTP/1.0 431 ", 13) == 0, "%.40s", r);
	free(r);
	free(big);
}

static void
t_slow_client(void)
{
	int slow = dial(port);
	int64_t t0;
	char *r;

	CHECK(slow >= 0, "dial");
	(void)!write(slow, "GET /hel", 8);
	/* another client is served while the slow one dawdles */
	t0 = now_ms();
	r = REQ("GET /hello HTTP/1.1\r\n\r\n");
	CHECK(strstr(r, "hello world") != NULL, "%s", r);
	CHECK(now_ms() - t0 < 1000, "not stalled: %lld ms",
	    (long long)(now_ms() - t0));
	free(r);
	/* the slow one gets 408 after the timeout */
	t0 = now_ms();
	r = slurp(slow);
	CHECK(strncmp(r, "HTTP/1.0 408 ", 13) == 0, "%s", r);
	CHECK(now_ms() - t0 < HTTP_TIMEOUT_MS + 2000, "timely");
	free(r);
	close(slow);
}

static void
t_burst(void)
{
	int fds[HTTP_MAX_CONNS + 8];
	int ok = 0, busy = 0;
	char *r;

	for (int i = 0; i < HTTP_MAX_CONNS + 8; i++)
		fds[i] = dial(port);
	usleep(200000);
	for (int i = 0; i < HTTP_MAX_CONNS + 8; i++) {
		if (fds[i] < 0)
			continue;
		(void)!write(fds[i], "GET /hello HTTP/1.0\r\n\r\n", 23);
		r = slurp(fds[i]);
		if (strstr(r, "hello world"))
			ok++;
		else if (strstr(r, " 503 "))
			busy++;
		free(r);
		close(fds[i]);
	}
	CHECK(ok >= HTTP_MAX_CONNS - 1, "served %d", ok);
	CHECK_INT(ok + busy, HTTP_MAX_CONNS + 8);
	/* and the server still works afterwards */
	r = REQ("GET /hello HTTP/1.1\r\n\r\n");
	CHECK(strstr(r, "hello world") != NULL, "%s", r);
	free(r);
	/* a client that connects and closes without a word */
	close(dial(port));
	r = REQ("GET /hello HTTP/1.1\r\n\r\n");
	CHECK(strstr(r, "hello world") != NULL, "%s", r);
	free(r);
}

/* Idle clients holding every slot do not lock out a real request: the
 * oldest idle one makes room. */
static void
t_idle_flood(void)
{
	int fds[HTTP_MAX_CONNS + 4];
	int served = 0;
	char *r;

	for (int i = 0; i < HTTP_MAX_CONNS + 4; i++)
		fds[i] = dial(port);
	usleep(200000);
	for (int round = 0; round < 3; round++) {
		r = REQ("GET /hello HTTP/1.1\r\n\r\n");
		if (strstr(r, "hello world") != NULL)
			served++;
		free(r);
	}
	CHECK_INT(served, 3);
	for (int i = 0; i < HTTP_MAX_CONNS + 4; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

static void
t_stop(void)
{
	http_stop(&srv);
	CHECK(srv == NULL, "NULL after stop");
	http_stop(&srv);
	CHECK(dial(port) < 0, "closed");
}

int
main(void)
{
	t_parse_table();
	RUN(t_start);
	if (srv == NULL)
		return test_done();
	RUN(t_routes);
	RUN(t_oversize);
	RUN(t_slow_client);
	RUN(t_burst);
	RUN(t_idle_flood);
	RUN(t_stop);
	return test_done();
}
