/*
 * fuzz_dsn.c - libFuzzer target for the bounce decoder: any byte string is
 * decoded (also as a truncated head, and with VERP and header options), and
 * every returned field is read so sanitizers see out-of-bounds or
 * unterminated strings.  Seeds: tests/fixtures/dsn/.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "decode/dsn.h"

static size_t
touch(const char *s)
{
	return s ? strlen(s) : 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const hdrs[] = {"X-Campaign-Id", "X-Subscriber-Id"};
	struct dsn_options opt;
	struct dsn_report *r = NULL;
	const struct record *rec;
	struct err err;
	size_t i, sum = 0;

	memset(&opt, 0, sizeof(opt));
	opt.headers = hdrs;
	opt.nheaders = 2;
	opt.verp_pattern = (size & 1) ? "bounces+{local}={domain}@s.example"
	                              : "{domain}={local}@v.example";
	if (dsn_parse((const char *)data, size, (int)(size & 2), &opt, &r,
	        &err) != 0)
		return 0;
	rec = dsn_record(r);
	sum += touch(record_kind_name(rec->kind));
	sum += touch(rec->reporting_mta) + touch(rec->verp_recipient);
	sum += touch(rec->mta) + touch(rec->message_id) + touch(rec->subject);
	for (i = 0; i < rec->nrcpts; i++) {
		const struct record_rcpt *rc = &rec->rcpts[i];

		sum += touch(rc->recipient) + touch(rc->recipient_source);
		sum +=
		    touch(rc->final_recipient) + touch(rc->original_recipient);
		sum += touch(rc->action) + touch(rc->status);
		sum += touch(rc->diagnostic) + touch(rc->remote_mta);
		sum += touch(rc->feedback_type) + touch(rc->reason);
		sum += touch(dsn_rcpt_address(rc)) + touch(rc->rule);
	}
	for (i = 0; i < rec->norig_headers; i++)
		sum += touch(rec->orig_headers[i].name) +
		    touch(rec->orig_headers[i].value);
	sum += touch(record_orig_header(rec, hdrs[0]));
	dsn_free(&r);
	return sum == (size_t)-1;
}
