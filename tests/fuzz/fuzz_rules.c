/*
 * fuzz_rules.c - libFuzzer entry for the classifier's rule-table parser.
 * The first byte chooses the table format (built-in stages) or operator
 * rules; the rest is the text.  Any input must parse or give an error
 * naming a line, never crash or leak; a set that parses is used, as
 * operator rules, to classify a few refusals, and every rule it lists must
 * read back.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "decode/classify.h"

static const char *const diags[] = {
    "550 5.1.1 <a@example.org>: Recipient address rejected: User unknown",
    "452 4.2.2 Mailbox full (in reply to RCPT TO command)",
    "554 5.7.1 Service unavailable; Client host blocked using zen.example",
    "",
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct classify_rules *rs = NULL;
	struct classify_rule_info ri;
	char err[256];
	size_t i;
	int rc, op;

	if (size < 1)
		return 0;
	op = data[0] & 1;
	err[0] = '\0';
	rc = classify_rules_parse((const char *)data + 1, size - 1, op, &rs,
	    err, sizeof(err));
	if ((rc == 0) != (rs != NULL) || (rc != 0 && err[0] == '\0'))
		abort();
	if (rs == NULL)
		return 0;
	for (i = 0; i < classify_rules_count(rs); i++)
		if (classify_rule_get(rs, i, &ri) != 0 || ri.id == NULL ||
		    ri.stage == NULL || ri.reason == NULL)
			abort();
	for (i = 0; op && i < sizeof(diags) / sizeof(diags[0]); i++) {
		struct classify_input in;
		struct classify_result out;

		memset(&in, 0, sizeof(in));
		in.action = "failed";
		in.kind = "bounce";
		in.status = i == 1 ? "4.2.2" : "5.1.1";
		in.diagnostic = diags[i];
		in.recipient = "a@mail.example.org";
		in.operator_rules = rs;
		classify(&in, &out);
		if (out.reason == NULL || !classify_reason_valid(out.reason))
			abort();
	}
	classify_rules_free(rs);
	return 0;
}
