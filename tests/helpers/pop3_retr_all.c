/*
 * pop3_retr_all.c - retrieves every message of a POP3S mailbox with the
 * project's pop3 module (one session: UIDL, RETR each, QUIT, no DELE) and
 * prints "messages bytes seconds rate": the raw retrieval baseline that
 * the end-to-end benchmark compares the whole pipeline with.
 * usage: pop3_retr_all HOST PORT USER PASSWORD CA_FILE
 */
#include <stdio.h>
#include <stdlib.h>

#include "base/buf.h"
#include "pop3/pop3.h"
#include "base/util.h"

int
main(int argc, char **argv)
{
	struct pop3_options o = {0};
	struct pop3 *p = NULL;
	struct pop3_entry *ent = NULL;
	struct err err = {{0}};
	struct buf b;
	size_t n = 0, bytes = 0;
	int64_t port = 0, t0, t1;
	double secs;

	if (argc != 6) {
		fprintf(stderr, "usage: %s HOST PORT USER PASSWORD CA_FILE\n",
		    argv[0]);
		return 2;
	}
	if (parse_int64(argv[2], 1, 65535, &port, &err) != 0) {
		fprintf(stderr, "port: %s\n", err.msg);
		return 2;
	}
	o.mailbox_name = "bench";
	o.host = argv[1];
	o.port = (int)port;
	o.tls = POP3_TLS_IMPLICIT;
	o.username = argv[3];
	o.password = argv[4];
	o.ca_file = argv[5];
	t0 = now_ms();
	if ((p = pop3_new(&o, &err)) == NULL || pop3_connect(p, &err) != 0 ||
	    pop3_uidl(p, &ent, &n, &err) != 0) {
		fprintf(stderr, "pop3: %s\n", err.msg);
		return 1;
	}
	buf_init(&b, 4u << 20);
	for (size_t i = 0; i < n; i++) {
		if (pop3_retr(p, ent[i].msgno, &b, &err) != 0) {
			fprintf(stderr, "RETR %zu: %s\n", i, err.msg);
			return 1;
		}
		bytes += b.len;
	}
	if (pop3_quit(p, &err) != 0) {
		fprintf(stderr, "QUIT: %s\n", err.msg);
		return 1;
	}
	t1 = now_ms();
	secs = (double)(t1 - t0) / 1000.0;
	printf("%zu %zu %.3f %.1f\n", n, bytes, secs,
	    secs > 0 ? (double)n / secs : 0.0);
	buf_free(&b);
	free(ent);
	pop3_free(&p);
	return 0;
}
