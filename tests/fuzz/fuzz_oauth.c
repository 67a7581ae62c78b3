/*
 * fuzz_oauth.c - libFuzzer target for the token endpoint response parser
 * (internal/oauth): any bytes, under any HTTP status, must give either a
 * token that obeys the documented limits or an error, never a crash.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pop3/oauth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct oauth_token t;
	struct err err = {{0}};
	long status = 200;

	/* The first byte picks the status: 200 most of the time. */
	if (size > 0 && data[0] == '!') {
		status = 400;
		data++;
		size--;
	}
	if (oauth_parse_token_response(status, (const char *)data, size, &t,
	        &err) == 0) {
		size_t n = strlen(t.access_token);

		if (n == 0 || n > OAUTH_MAX_TOKEN_BYTES || t.lifetime_s < 0 ||
		    t.lifetime_s > OAUTH_MAX_LIFETIME_S)
			abort();
		for (size_t i = 0; i < n; i++)
			if ((unsigned char)t.access_token[i] < 0x21 ||
			    (unsigned char)t.access_token[i] > 0x7E)
				abort();
	} else if (memchr(err.msg, '\0', sizeof(err.msg)) == NULL)
		abort();
	oauth_token_clear(&t);
	return 0;
}
