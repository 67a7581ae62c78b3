/*
 * fuzz_http.c - libFuzzer target for the HTTP request-line parser of the
 * /healthz and /metrics listener, and for the Prometheus label escaping:
 * any bytes must give 0 or an HTTP error status, never a crash, and an
 * accepted request must yield a NUL-terminated method and origin path.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "service/http.h"
#include "service/metrics.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char method[16], path[256];
	struct buf b;
	char *s;
	int rc;

	rc = http_parse_request((const char *)data, size, method,
	    sizeof(method), path, sizeof(path));
	if (rc == 0) {
		if (strlen(method) >= sizeof(method) || path[0] != '/' ||
		    strchr(path, '?') != NULL || strchr(path, ' ') != NULL)
			abort();
	} else if (rc != 400 && rc != 405 && rc != 414 && rc != 505)
		abort();
	s = malloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';
	buf_init(&b, 4 * size + 16);
	metrics_escape_label(&b, s);
	if (b.truncated || memchr(buf_cstr(&b), '\n', b.len) != NULL)
		abort();
	buf_free(&b);
	free(s);
	return 0;
}
