/*
 * test_classify.c - the classifier's tables and decisions: status code
 * parsing, one row per reason of the Sisimai vocabulary, the class rules
 * (policy blocks and unknowns never hard), hostile text, and the proof that
 * no rule of the ordered tables is shadowed by an earlier one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decode/classify.h"
#include "test.h"

static const char *const all_reasons[] = {"authfailure", "badreputation",
    "blocked", "contenterror", "delivered", "exceedlimit", "expired",
    "failedstarttls", "feedback", "filtered", "hasmoved", "hostunknown",
    "mailboxfull", "mailererror", "mesgtoobig", "networkerror", "norelaying",
    "notaccept", "notcompliantrfc", "onhold", "policyviolation", "rejected",
    "requireptr", "securityerror", "spamdetected", "speeding", "suppressed",
    "suspend", "syntaxerror", "systemerror", "systemfull", "toomanyconn",
    "undefined", "userunknown", "vacation", "virusdetected"};
#define NREASONS (sizeof(all_reasons) / sizeof(all_reasons[0]))

static const struct row {
	const char *name;
	const char *status;
	int reply;
	const char *action;
	const char *kind;
	const char *cmd;
	const char *diag;
	const char *reason;
	enum record_class cls;
} rows[] = {
    /* One or more rows per reason. */
    {"authfailure dmarc", "5.7.1", 550, "failed", "bounce", NULL,
        "550 5.7.1 Email rejected per DMARC policy for example.org",
        "authfailure", RECORD_CLASS_SOFT},
    {"authfailure spf continued lines", "5.7.26", 550, "failed", "bounce", NULL,
        "550-5.7.26 The MAIL FROM domain [example.jp] has an SPF record "
        "with a\n550-5.7.26 hard fail policy",
        "authfailure", RECORD_CLASS_SOFT},
    {"authfailure by status 5.7.26", "5.7.26", 550, "failed", "bounce", NULL,
        "550 5.7.26 message rejected", "authfailure", RECORD_CLASS_SOFT},
    {"badreputation", "4.7.650", 451, "failed", "bounce", NULL,
        "451 4.7.650 The mail server [192.0.2.25] has been temporarily "
        "rate limited due to IP reputation.",
        "badreputation", RECORD_CLASS_SOFT},
    {"blocked spamhaus", "5.7.1", 554, "failed", "bounce", NULL,
        "554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked "
        "using zen.spamhaus.org",
        "blocked", RECORD_CLASS_SOFT},
    {"blocked blacklisted under 5.1.1", "5.1.1", 550, "failed", "bounce", NULL,
        "550 5.7.1 IP address blacklisted by recipient", "blocked",
        RECORD_CLASS_SOFT},
    {"blocked at connection", NULL, 550, "failed", "bounce", NULL,
        "SMTP error from remote mail server after initial connection: "
        "550 Access denied",
        "blocked", RECORD_CLASS_SOFT},
    {"contenterror", "5.6.9", 550, "failed", "bounce", NULL,
        "550 5.6.9 improper use of 8-bit data in message header",
        "contenterror", RECORD_CLASS_SOFT},
    {"delivered by status", "2.0.0", 250, "delivered", "delivered", NULL,
        "250 2.0.0 OK", "delivered", RECORD_CLASS_DELIVERED},
    {"delivered by action", NULL, 0, "relayed", "bounce", NULL, NULL,
        "delivered", RECORD_CLASS_DELIVERED},
    {"exceedlimit", "5.2.3", 552, "failed", "bounce", NULL,
        "552 5.2.3 Message length exceeds limit set by recipient",
        "exceedlimit", RECORD_CLASS_SOFT},
    {"expired", "4.4.7", 0, "failed", "bounce", NULL, "retry timeout exceeded",
        "expired", RECORD_CLASS_SOFT},
    {"expired by 4.4.7 over a vague phrase", "4.4.7", 0, "failed", "bounce",
        NULL, "Connection refused", "expired", RECORD_CLASS_SOFT},
    {"expiry explained by a lookup failure", "4.4.7", 0, "failed", "bounce",
        NULL,
        "Deferred: Name server: example.jp.: host name lookup failure "
        "Message could not be delivered for 5 days",
        "networkerror", RECORD_CLASS_SOFT},
    {"expiry explained by a refused connection", "4.4.7", 0, "failed", "bounce",
        NULL,
        "Deferred: Connection refused by mx.example.jp. Message could not be "
        "delivered for 5 days",
        "blocked", RECORD_CLASS_SOFT},
    {"connection timed out is an expiry", NULL, 421, "failed", "bounce", NULL,
        "421 example.com (smtp)... Deferred: Connection timed out during user "
        "open with example.com",
        "expired", RECORD_CLASS_SOFT},
    {"local delivery program failed", "5.1.1", 0, "failed", "bounce", NULL,
        "procmail: Couldn't create \"/var/spool/mail/u\" id: u: No such user",
        "mailererror", RECORD_CLASS_SOFT},
    {"cpanel exim unrouteable address", NULL, 0, "failed", "bounce", NULL,
        "The mail server could not deliver mail to u@example.net. The "
        "account or domain may not exist, they may be blacklisted, or "
        "missing the proper dns entries.",
        "blocked", RECORD_CLASS_SOFT}, /* a hedge is never hard */
    {"ezweb receiving filter", NULL, 0, "failed", "bounce", NULL,
        "<u@example.jp> Each of the following recipients was rejected by a "
        "remote mail server.",
        "onhold", RECORD_CLASS_SOFT}, /* no documented text: soft */
    {"cloudmark blocklist tag", "5.5.0", 554, "failed", "bounce", NULL,
        "554 IP=192.0.2.1 - A problem occurred. (Ask your postmaster for "
        "help or to contact abuse@example.net to clarify.) (BL)",
        "onhold", RECORD_CLASS_SOFT},
    {"expired delayed without text", NULL, 0, "delayed", "delayed", NULL, NULL,
        "expired", RECORD_CLASS_SOFT},
    {"failedstarttls", "5.7.10", 530, "failed", "bounce", NULL,
        "451 4.7.0 TLS is required, but host mx.example.org refused to start "
        "TLS: 502 5.5.1 command not implemented",
        "failedstarttls", RECORD_CLASS_SOFT},
    {"feedback by kind", NULL, 0, NULL, "complaint", NULL, NULL, "feedback",
        RECORD_CLASS_COMPLAINT},
    {"filtered", "5.0.0", 550, "failed", "bounce", NULL,
        "550 Message filtered by recipient", "filtered", RECORD_CLASS_SOFT},
    {"filtered: user unknown after DATA", "5.0.0", 550, "failed", "bounce",
        "DATA", "550 Unknown user kijitora@example.jp", "filtered",
        RECORD_CLASS_SOFT},
    {"filtered: user unknown, end of DATA in text", NULL, 550, "failed",
        "bounce", NULL,
        "550 Unknown user x@example.net (in reply to end of DATA command)",
        "filtered", RECORD_CLASS_SOFT},
    {"no such account stated after DATA stays userunknown", "5.0.0", 554,
        "failed", "bounce", "DATA",
        "554 delivery error: dd This user doesn't have a example.com account",
        "userunknown", RECORD_CLASS_HARD},
    {"hasmoved", "5.1.6", 551, "failed", "bounce", NULL,
        "551 5.1.6 User has moved; please try <new@example.org>", "hasmoved",
        RECORD_CLASS_HARD},
    {"hostunknown", "5.1.2", 550, "failed", "bounce", NULL,
        "Host or domain name not found. Name service error for "
        "name=example.invalid type=A: Host not found",
        "hostunknown", RECORD_CLASS_HARD},
    {"hostunknown by status", "5.1.2", 0, "failed", "bounce", NULL, NULL,
        "hostunknown", RECORD_CLASS_HARD},
    {"mailboxfull", "5.2.2", 552, "failed", "bounce", NULL,
        "552 5.2.2 Mailbox full", "mailboxfull", RECORD_CLASS_SOFT},
    {"mailboxfull 4.2.2", "4.2.2", 452, "delayed", "delayed", NULL,
        "452 4.2.2 Over quota", "mailboxfull", RECORD_CLASS_SOFT},
    {"mailboxfull text over 5.0.0", "5.0.0", 550, "failed", "bounce", NULL,
        "550 Sorry, this account is over quota", "mailboxfull",
        RECORD_CLASS_SOFT},
    {"mailererror", "5.3.0", 0, "failed", "bounce", NULL,
        "procmail: command died with status 1", "mailererror",
        RECORD_CLASS_SOFT},
    {"mailererror exit status only", "5.0.0", 0, "failed", "bounce", NULL, "75",
        "mailererror", RECORD_CLASS_SOFT},
    {"mesgtoobig", "5.3.4", 552, "failed", "bounce", NULL,
        "552 5.3.4 Message size exceeds fixed limit", "mesgtoobig",
        RECORD_CLASS_SOFT},
    {"networkerror", "4.4.0", 0, "delayed", "delayed", NULL,
        "mail for example.com loops back to myself", "networkerror",
        RECORD_CLASS_SOFT},
    {"networkerror dns", "4.0.0", 0, "failed", "bounce", NULL,
        "DNS Error: DNS type 'mx' lookup of example.jp responded with code "
        "NXDOMAIN Domain name not found: example.jp",
        "networkerror", RECORD_CLASS_SOFT},
    {"norelaying", "5.7.1", 554, "failed", "bounce", NULL,
        "554 5.7.1 <x@example.org>: Relay access denied", "norelaying",
        RECORD_CLASS_SOFT},
    {"notaccept null mx 5xx hard", "5.1.10", 556, "failed", "bounce", NULL,
        "556 5.1.10 Recipient address has null MX", "notaccept",
        RECORD_CLASS_HARD},
    {"notaccept 4xx soft", "4.0.0", 0, "failed", "bounce", NULL,
        "The domain example.org doesn't receive email according to the "
        "administrator: returned Null MX",
        "notaccept", RECORD_CLASS_SOFT},
    {"notcompliantrfc", "5.7.1", 550, "failed", "bounce", NULL,
        "550-5.7.1 This message is not RFC 5322 compliant. There are "
        "multiple Subject\n550-5.7.1 headers. To reduce the amount of "
        "spam sent to Gmail",
        "notcompliantrfc", RECORD_CLASS_SOFT},
    {"onhold: a code, no words", "5.0.0", 550, "failed", "bounce", NULL,
        "550 see https://example.org/e/1", "onhold", RECORD_CLASS_SOFT},
    {"policyviolation", "5.7.9", 554, "failed", "bounce", NULL,
        "554 5.7.9 Message not accepted for policy reasons.", "policyviolation",
        RECORD_CLASS_SOFT},
    {"rejected", "5.1.8", 553, "failed", "bounce", NULL,
        "553 5.1.8 <a@b.example>... Domain of sender address a@b.example "
        "does not exist",
        "rejected", RECORD_CLASS_SOFT},
    {"rejected after MAIL", NULL, 550, "failed", "bounce", "MAIL",
        "550 go fish", "rejected", RECORD_CLASS_SOFT},
    {"requireptr", "5.7.25", 550, "failed", "bounce", NULL,
        "550 5.7.25 The IP address sending this message does not have a "
        "PTR record setup",
        "requireptr", RECORD_CLASS_SOFT},
    {"securityerror", "5.0.0", 550, "failed", "bounce", NULL,
        "535 5.7.8 Incorrect authentication data", "securityerror",
        RECORD_CLASS_SOFT},
    {"securityerror by 5.7.x status", "5.7.7", 554, "failed", "bounce", NULL,
        NULL, "securityerror", RECORD_CLASS_SOFT},
    {"spamdetected", "5.7.1", 550, "failed", "bounce", NULL,
        "550 5.7.1 Message content rejected, UBE, id=1", "spamdetected",
        RECORD_CLASS_SOFT},
    {"speeding", "4.7.0", 421, "delayed", "delayed", NULL,
        "421 4.7.0 Too many messages, rate limit exceeded", "speeding",
        RECORD_CLASS_SOFT},
    {"suppressed", "5.1.1", 550, "failed", "bounce", NULL,
        "Amazon SES has suppressed sending to this address because it has a "
        "recent history of bouncing as an invalid address.",
        "suppressed", RECORD_CLASS_SOFT},
    {"suspend", "5.2.1", 550, "failed", "bounce", NULL,
        "550 5.2.1 The email account that you tried to reach is disabled.",
        "suspend", RECORD_CLASS_SOFT},
    {"suspend 5.7.13", "5.7.13", 525, "failed", "bounce", NULL,
        "525 5.7.13 Disabled recipient address", "suspend", RECORD_CLASS_SOFT},
    {"syntaxerror", "5.5.0", 503, "failed", "bounce", NULL,
        "503 Improper sequence of commands", "syntaxerror", RECORD_CLASS_SOFT},
    {"systemerror", "4.3.0", 451, "failed", "bounce", NULL,
        "451 4.3.0 Internal error, please try later", "systemerror",
        RECORD_CLASS_SOFT},
    {"systemfull", "4.3.1", 452, "delayed", "delayed", NULL,
        "452 4.3.1 Insufficient system storage", "systemfull",
        RECORD_CLASS_SOFT},
    {"toomanyconn", "4.7.0", 421, "failed", "bounce", NULL,
        "421 4.7.0 Too many connections from your host", "toomanyconn",
        RECORD_CLASS_SOFT},
    {"undefined: a bounce with nothing", NULL, 0, "failed", "bounce", NULL, "",
        "undefined", RECORD_CLASS_SOFT},
    {"userunknown", "5.1.1", 550, "failed", "bounce", NULL,
        "550 5.1.1 <nobody@example.com>... User unknown", "userunknown",
        RECORD_CLASS_HARD},
    {"userunknown by text only", NULL, 0, "failed", "bounce", NULL,
        "<nobody@example.net>: host mx.example.net said: 550 No such user "
        "here (in reply to RCPT TO command)",
        "userunknown", RECORD_CLASS_HARD},
    {"userunknown by the decoder's command", NULL, 550, "failed", "bounce",
        "RCPT", "550 No such user here", "userunknown", RECORD_CLASS_HARD},
    {"no such user from a gateway at an unknown stage", NULL, 550, "failed",
        "bounce", NULL, "550 kijitora@example.com... No such user", "filtered",
        RECORD_CLASS_SOFT},
    {"unknown user at an unknown stage, generic code", "5.0.0", 550, "failed",
        "bounce", NULL, "550 Unknown user", "filtered", RECORD_CLASS_SOFT},
    {"user unknown after MAIL FROM is the sender's", NULL, 550, "failed",
        "bounce", "MAIL", "550 User unknown", "rejected", RECORD_CLASS_SOFT},
    {"user unknown under 5.1.1 needs no command", "5.1.1", 550, "failed",
        "bounce", NULL, "550 User unknown", "userunknown", RECORD_CLASS_HARD},
    {"exchange: recipient name not recognized", NULL, 0, "failed", "bounce",
        NULL, "The recipient name is not recognized", "userunknown",
        RECORD_CLASS_HARD},
    {"userunknown 4.1.1 still hard", "4.1.1", 450, "delayed", "delayed", NULL,
        "450 4.1.1 <x@example.org>: Recipient address rejected", "userunknown",
        RECORD_CLASS_HARD},
    {"userunknown 5.1.10 not found", "5.1.10", 550, "failed", "bounce", NULL,
        "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found "
        "by SMTP address lookup",
        "userunknown", RECORD_CLASS_HARD},
    {"vacation", NULL, 0, NULL, "autoreply", NULL,
        "I am out of the office until Monday.", "vacation",
        RECORD_CLASS_AUTOREPLY},
    {"virusdetected", "5.7.0", 550, "failed", "bounce", NULL,
        "550 5.7.0 Virus found in the message", "virusdetected",
        RECORD_CLASS_SOFT},

    /* Wording of common MTAs and providers. */
    {"gmail: account does not exist", "5.1.1", 550, "failed", "bounce", "RCPT",
        "550-5.1.1 The email account that you tried to reach does not "
        "exist. Please try\n550-5.1.1 double-checking the recipient's email "
        "address",
        "userunknown", RECORD_CLASS_HARD},
    {"gmail: over quota", "5.2.2", 552, "failed", "bounce", NULL,
        "552-5.2.2 The email account that you tried to reach is over quota.",
        "mailboxfull", RECORD_CLASS_SOFT},
    {"gmail: unsolicited mail from your IP", "5.7.1", 550, "failed", "bounce",
        NULL,
        "550-5.7.1 Our system has detected an unusual rate of unsolicited "
        "mail originating from your IP address.",
        "spamdetected", RECORD_CLASS_SOFT},
    {"outlook: recipient not found", "5.1.10", 550, "failed", "bounce", NULL,
        "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by "
        "SMTP address lookup",
        "userunknown", RECORD_CLASS_HARD},
    {"outlook: banned sending IP", "5.7.606", 550, "failed", "bounce", NULL,
        "550 5.7.606 Access denied, banned sending IP [192.0.2.1].", "blocked",
        RECORD_CLASS_SOFT},
    {"outlook: traffic not accepted", "5.7.708", 550, "failed", "bounce", NULL,
        "550 5.7.708 Service unavailable. Access denied, traffic not "
        "accepted from this IP.",
        "badreputation", RECORD_CLASS_SOFT}, /* 5.7.708: low-reputation IP */
    {"yahoo: no account", "5.0.0", 554, "failed", "bounce", NULL,
        "554 delivery error: dd This user doesn't have a yahoo.com account "
        "(x@yahoo.com) [0]",
        "userunknown", RECORD_CLASS_HARD},
    {"yahoo: permanently deferred", "5.7.2", 553, "failed", "bounce", NULL,
        "553 5.7.2 [TSS09] All messages from 192.0.2.1 will be permanently "
        "deferred; Retrying will NOT succeed.",
        "blocked", RECORD_CLASS_SOFT},
    {"postfix: delivery temporarily suspended is not an account", "4.4.1", 0,
        "delayed", "delayed", NULL,
        "delivery temporarily suspended: connect to mx.example.com: server "
        "refused to talk to me: 421 Service not available",
        "blocked", RECORD_CLASS_SOFT},
    {"postfix: name service error, try again", NULL, 0, "delayed", "delayed",
        NULL,
        "Name service error for domain example.com: Host not found, try "
        "again",
        "networkerror", RECORD_CLASS_SOFT},
    {"postfix: sender domain not found", "5.1.8", 450, "failed", "bounce", NULL,
        "450 4.1.8 <a@b.example>: Sender address rejected: Domain not "
        "found",
        "rejected", RECORD_CLASS_SOFT},
    {"sendmail: could not be delivered for days", "4.4.7", 0, "failed",
        "bounce", NULL, "Message could not be delivered for 5 days", "expired",
        RECORD_CLASS_SOFT},
    {"qmail: no mailbox here", "5.1.1", 0, "failed", "bounce", NULL,
        "Sorry, no mailbox here by that name. (#5.1.1)", "userunknown",
        RECORD_CLASS_HARD},
    {"qmail: looping", NULL, 0, "failed", "bounce", NULL,
        "This message is looping: it already has my Delivered-To line. "
        "(#5.4.6)",
        "networkerror", RECORD_CLASS_SOFT},
    {"exim: unrouteable address", NULL, 550, "failed", "bounce", NULL,
        "550 Unrouteable address", "userunknown", RECORD_CLASS_HARD},
    {"domino: not listed", NULL, 0, "failed", "bounce", NULL,
        "User kijitora@example.com not listed in Domino Directory",
        "userunknown", RECORD_CLASS_HARD},
    {"ses: suppression list", "5.1.1", 550, "failed", "bounce", NULL,
        "Amazon SES has suppressed sending to this address because it has a "
        "recent history of bouncing: address is on the suppression list",
        "suppressed", RECORD_CLASS_SOFT},

    /* Class rules and edges. */
    {"5.7.1 with user unknown: filtered, never hard", "5.7.1", 550, "failed",
        "bounce", NULL,
        "550 5.7.1 <x@example.fr>: Recipient address rejected: User "
        "unknown",
        "filtered", RECORD_CLASS_SOFT},
    {"5.7.1 in text only: filtered, never hard", NULL, 550, "failed", "bounce",
        NULL, "550 5.7.1 No such user (policy)", "filtered", RECORD_CLASS_SOFT},
    {"the text's reason over a 5.7.1 policy code", "5.7.1", 550, "failed",
        "bounce", NULL, "550 5.7.1 Domain does not exist", "hostunknown",
        RECORD_CLASS_HARD},
    {"local part of an address is not prose", "5.0.0", 550, "failed", "bounce",
        "RCPT", "550 <spam-filtered@example.com>: User unknown", "userunknown",
        RECORD_CLASS_HARD},
    {"text confirming the code wins over an earlier phrase", "5.1.1", 550,
        "failed", "bounce", NULL,
        "550 5.1.1 User unknown. X-Virus-Scanned: clean", "userunknown",
        RECORD_CLASS_HARD},
    {"notaccept without any code: hard", NULL, 0, "failed", "bounce", NULL,
        "The domain example.org does not accept mail (null MX)", "notaccept",
        RECORD_CLASS_HARD},
    {"notaccept without code, temporary: soft", NULL, 0, "failed", "bounce",
        NULL, "No MX found for domain; temporary failure", "notaccept",
        RECORD_CLASS_SOFT},
    {"multi-digit 4.7.650 parses", "4.7.650", 451, "delayed", "delayed", NULL,
        "451 4.7.650 temporarily deferred", "badreputation", RECORD_CLASS_SOFT},
    {"status with a comment", "5.2.2 (mailbox full)", 0, "failed", "bounce",
        NULL, NULL, "mailboxfull", RECORD_CLASS_SOFT},
    {"5.0.0 gives way to the code in the reply", "5.0.0", 550, "failed",
        "bounce", NULL, "550 5.1.1 <x@example.org>... Gone", "userunknown",
        RECORD_CLASS_HARD},
    {"not a bounce: unknown, never hard", NULL, 0, NULL, "unknown", NULL,
        "Hello, user unknown to me, how are you?", "undefined",
        RECORD_CLASS_UNKNOWN},
    {"nothing at all", NULL, 0, NULL, NULL, NULL, NULL, "undefined",
        RECORD_CLASS_UNKNOWN},
    {"junk status: text no rule reads, no failure", "9.9.9", 0, NULL, NULL,
        NULL, "\x01\x02\xff\xfe", "onhold", RECORD_CLASS_UNKNOWN},
    {"upper case and folded lines", "5.0.0", 550, "failed", "bounce", NULL,
        "550 MAILBOX\r\n\t FULL", "mailboxfull", RECORD_CLASS_SOFT},
};

/* Classifies IN and checks the reason and the class it gets. */
static void
check_classified(const struct classify_input *in, const char *reason,
    enum record_class cls)
{
	struct classify_result out;

	classify(in, &out);
	CHECK_STR(out.reason, reason);
	CHECK(out.cls == cls, "class %s, want %s", record_class_name(out.cls),
	    record_class_name(cls));
}

static void
t_rows(void)
{
	size_t i;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const struct row *w = &rows[i];
		struct classify_input in;

		test_begin("classify %s", w->name);
		memset(&in, 0, sizeof(in));
		in.status = w->status;
		in.reply_code = w->reply;
		in.action = w->action;
		in.kind = w->kind;
		in.smtp_command = w->cmd;
		in.diagnostic = w->diag;
		check_classified(&in, w->reason, w->cls);
		test_end();
	}
}

/* Every reason of the vocabulary has a row above. */
static void
t_every_reason_tested(void)
{
	size_t i, k;

	for (i = 0; i < NREASONS; i++) {
		int found = 0;

		test_begin("row for reason %s", all_reasons[i]);
		for (k = 0; k < sizeof(rows) / sizeof(rows[0]); k++)
			if (strcmp(rows[k].reason, all_reasons[i]) == 0)
				found = 1;
		CHECK(found, "no table row gives %s", all_reasons[i]);
		test_end();
	}
}

static void
t_reason_list(void)
{
	const char *const *list = classify_reasons();
	size_t i, n = 0;

	test_begin("reason list is the vocabulary");
	while (list[n] != NULL)
		n++;
	CHECK_INT((long)n, (long)NREASONS);
	for (i = 0; i < NREASONS; i++)
		CHECK(classify_reason_valid(all_reasons[i]), "%s not valid",
		    all_reasons[i]);
	CHECK(!classify_reason_valid("hardbounce"), "bogus name valid");
	CHECK(!classify_reason_valid(NULL), "NULL valid");
	CHECK(!classify_reason_valid(""), "empty valid");
	test_end();
}

/* REASONS.md, when the shared corpus is present: each reason named in
 * its table is one we know. */
static void
t_reasons_md(void)
{
	const char *shared = getenv("BOUNCER_SHARED");
	char path[512], line[1024];
	FILE *f;
	int seen = 0;

	test_begin("REASONS.md names are all known");
	if (shared == NULL) {
		test_skip("BOUNCER_SHARED not set");
		test_end();
		return;
	}
	snprintf(path, sizeof(path), "%s/corpus/REASONS.md", shared);
	f = fopen(path, "r");
	if (f == NULL) {
		test_skip("%s: cannot open", path);
		test_end();
		return;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		char *a, *b;

		if (strncmp(line, "| `", 3) != 0)
			continue;
		a = line + 3;
		b = strchr(a, '`');
		if (b == NULL)
			continue;
		*b = '\0';
		CHECK(classify_reason_valid(a), "unknown reason %s", a);
		seen++;
	}
	fclose(f);
	CHECK(seen >= 30, "only %d reasons read", seen);
	test_end();
}

static const struct status_row {
	const char *in;
	int rc;
	const char *out;
} status_rows[] = {
    {"5.1.1", 0, "5.1.1"},
    {"5.1.10", 0, "5.1.10"},
    {"4.7.650", 0, "4.7.650"},
    {"2.0.0", 0, "2.0.0"},
    {"5.7.26 (policy)", 0, "5.7.26"},
    {"5.1.1.", 0, "5.1.1"},
    {"5.123.456", 0, "5.123.456"},
    {"5.1", -1, NULL},
    {"6.1.1", -1, NULL},
    {"3.1.1", -1, NULL},
    {"5.1234.1", -1, NULL},
    {"5.1.1234", -1, NULL},
    {"5.1.1.1", -1, NULL},
    {"5..1", -1, NULL},
    {".5.1.1", -1, NULL},
    {"5.x.1", -1, NULL},
    {"", -1, NULL},
    {NULL, -1, NULL},
};

static void
t_parse_status(void)
{
	size_t i;

	for (i = 0; i < sizeof(status_rows) / sizeof(status_rows[0]); i++) {
		char out[16];
		int rc;

		test_begin("parse_status %s",
		    status_rows[i].in ? status_rows[i].in : "NULL");
		rc = classify_parse_status(status_rows[i].in, out);
		CHECK_INT(rc, status_rows[i].rc);
		if (rc == 0 && status_rows[i].out != NULL)
			CHECK_STR(out, status_rows[i].out);
		test_end();
	}
}

/*
 * The built-in rule table: every rule names a source and a known reason,
 * ids are unique, and inside a stage no phrase rule is dead behind an
 * earlier one (first match wins, so an earlier phrase contained in a later
 * one, with no other condition, makes the later one unreachable).  Each
 * text rule's phrase, given as the text of a refusal at RCPT, selects that
 * rule; each code rule selects itself for a status it matches.
 */
static void
t_rule_table(void)
{
	const struct classify_rules *rs = classify_builtin();
	struct classify_rule_info ri, rj;
	size_t i, j, n = classify_rules_count(rs), ntext = 0;

	test_begin("built-in table parses and is not empty");
	CHECK(rs != NULL, "classify_rules.txt does not parse");
	CHECK(n > 200, "only %zu rules", n);
	test_end();
	for (i = 0; i < n; i++) {
		classify_rule_get(rs, i, &ri);
		test_begin("rule %s (line %d)", ri.id, ri.line);
		CHECK(ri.source != NULL && strlen(ri.source) > 5, "no source");
		CHECK(classify_reason_valid(ri.reason) ||
		        (strcmp(ri.reason, "-") == 0 &&
		            strcmp(ri.stage, "code") == 0),
		    "bad reason %s", ri.reason);
		for (j = 0; j < i; j++) {
			classify_rule_get(rs, j, &rj);
			CHECK(strcmp(ri.id, rj.id) != 0, "repeats rule %s",
			    rj.id);
			if (ri.phrase == NULL || rj.phrase == NULL ||
			    strcmp(ri.stage, rj.stage) != 0 ||
			    rj.status != NULL || rj.reply != NULL ||
			    rj.command != NULL || rj.mta != NULL)
				continue;
			CHECK(strstr(ri.phrase, rj.phrase) == NULL,
			    "shadowed by earlier rule %s \"%s\"", rj.id,
			    rj.phrase);
		}
		if (strcmp(ri.stage, "text") == 0) {
			struct classify_input in;
			struct classify_result out;

			ntext++;
			memset(&in, 0, sizeof(in));
			in.action = "failed";
			in.kind = "bounce";
			/* filtered is the verdict on a message that was
			 * refused after DATA */
			in.smtp_command = strcmp(ri.reason, "filtered") == 0
			    ? "DATA"
			    : "RCPT";
			in.diagnostic = ri.phrase;
			classify(&in, &out);
			/* itself, or an earlier rule that says the same
			 * (a provider's rule for its own wording, or a
			 * shorter phrase of the same reason) */
			CHECK(out.rule != NULL &&
			        (strcmp(out.rule, ri.id) == 0 ||
			            strcmp(out.reason, ri.reason) == 0),
			    "\"%s\" decided by %s (%s)", ri.phrase,
			    out.rule ? out.rule : "nothing", out.reason);
		}
		if (strcmp(ri.stage, "code") == 0) {
			struct classify_input in;
			struct classify_result out;
			char code[32], cls = ri.status[0];
			const char *p = ri.status + 2;
			int subj = (int)strtol(p, NULL, 10), det = 0;

			p = strchr(p, '.');
			if (p != NULL && p[1] != '*')
				det = (int)strtol(p + 1, NULL, 10);
			else
				det =
				    999; /* any detail: one no other rule names */
			snprintf(code, sizeof(code), "%c.%d.%d",
			    cls == 'X' ? '5' : cls, subj, det);
			memset(&in, 0, sizeof(in));
			in.action = "failed";
			in.kind = "bounce";
			in.status = code;
			classify(&in, &out);
			if (strcmp(ri.reason, "-") != 0)
				CHECK(out.rule != NULL &&
				        strcmp(out.rule, ri.id) == 0,
				    "%s decided by %s", code,
				    out.rule ? out.rule : "nothing");
			else /* x.0.0 says nothing at all: undefined */
				CHECK(out.rule != NULL &&
				        strcmp(out.rule,
				            subj == 0 && det == 0
				                ? "undefined"
				                : "onhold") == 0,
				    "%s (no default) decided by %s", code,
				    out.rule ? out.rule : "nothing");
		}
		test_end();
	}
	test_begin("text stage is not empty");
	CHECK(ntext > 100, "only %zu text rules", ntext);
	test_end();
}

/* The table's own parser refuses what it must, naming line and column. */
static void
t_rules_parse(void)
{
	static const struct {
		const char *text;
		const char *err; /* NULL: parses */
	} cases[] = {
	    {"[text]\nt.a mailboxfull phrase=\"over quota\" source=\"x y\"\n",
	        NULL},
	    {"t.a mailboxfull phrase=\"over quota\" source=x\n",
	        "1:1: rule before any [stage]"},
	    {"[text]\nt.a mailboxfull phrase=\"over quota\"\n",
	        "has no source"},
	    {"[text]\nt.a nosuch phrase=abc source=x\n", "unknown reason"},
	    {"[text]\nt.a mailboxfull phrase=ab source=x\n",
	        "could never match"},
	    {"[text]\nt.a mailboxfull phrase=\"a@b.c\" source=x\n",
	        "could never match"},
	    {"[text]\nt.a mailboxfull source=x\n", "needs a phrase"},
	    {"[code]\nc.a mailboxfull status=5.2.2 phrase=abc source=x\n",
	        "matches a status, only"},
	    {"[code]\nc.a mailboxfull status=5.2 source=x\n",
	        "not a status pattern"},
	    {"[code]\nc.a mailboxfull status=5.2.9-3 source=x\n",
	        "not a status pattern"},
	    {"[reply]\nr.a notaccept reply=5x1 source=x\n", "not a reply code"},
	    {"[provider]\np.a blocked command=CONN source=x\n",
	        "matches everything"},
	    {"[provider]\np.a blocked phrase=abc command=QUIT source=x\n",
	        "is not CONN"},
	    {"[text]\nt.a mailboxfull phrase=\"over quota source=x\n",
	        "unclosed quote"},
	    {"[text]\nt.a mailboxfull phrase=abc color=red source=x\n",
	        "unknown key"},
	    {"[text]\nt.a mailboxfull phrase=abc source=x\n"
	     "t.a blocked phrase=def source=x\n",
	        "3:1: id t.a is used on line 2"},
	    {"[nosuch]\n", "unknown stage"},
	    {"[text]\nt.a delivered phrase=abc class=hard source=x\n",
	        "not a failure"},
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct classify_rules *rs = NULL;
		char err[256] = "";
		int rc;

		test_begin("rules parse case %zu", i);
		rc = classify_rules_parse(cases[i].text, strlen(cases[i].text),
		    0, &rs, err, sizeof(err));
		if (cases[i].err == NULL)
			CHECK(rc == 0 && rs != NULL, "refused: %s", err);
		else
			CHECK(rc == -1 && rs == NULL &&
			        strstr(err, cases[i].err) != NULL,
			    "got rc %d \"%s\", want \"%s\"", rc, err,
			    cases[i].err);
		classify_rules_free(rs);
		test_end();
	}
}

/* Operator rules come first, match on every field, and may set the class. */
static void
t_operator_rules(void)
{
	struct classify_rules *rs = classify_rules_new();
	struct classify_rule_spec a = {.name = "corp",
	    .reason = "filtered",
	    .phrase = "Quarantined  by CORP"};
	struct classify_rule_spec b = {.name = "partner",
	    .reason = "blocked",
	    .cls = "soft",
	    .status = "5.1.1",
	    .domain = "partner.example"};
	struct classify_rule_spec bad = {.name = "x",
	    .reason = "blocked",
	    .reply = "55"};
	struct classify_input in;
	struct classify_result out;
	char err[256];

	test_begin("operator rules");
	CHECK(classify_rules_add(rs, &a, err, sizeof(err)) == 0, "%s", err);
	CHECK(classify_rules_add(rs, &b, err, sizeof(err)) == 0, "%s", err);
	CHECK(classify_rules_add(rs, &a, err, sizeof(err)) == -1 &&
	        strstr(err, "earlier rule") != NULL,
	    "repeated name accepted: %s", err);
	CHECK(classify_rules_add(rs, &bad, err, sizeof(err)) == -1 &&
	        strncmp(err, "reply:", 6) == 0,
	    "bad reply accepted: %s", err);
	memset(&in, 0, sizeof(in));
	in.action = "failed";
	in.kind = "bounce";
	in.status = "5.1.1";
	in.smtp_command = "RCPT";
	in.diagnostic = "550 5.1.1 quarantined by corp: user unknown";
	in.operator_rules = rs;
	classify(&in, &out);
	CHECK(strcmp(out.reason, "filtered") == 0 && out.rule != NULL &&
	        strcmp(out.rule, "op:corp") == 0,
	    "phrase rule: %s by %s", out.reason, out.rule);
	in.diagnostic = "550 5.1.1 user unknown";
	in.recipient = "Bob@Mail.Partner.Example";
	classify(&in, &out);
	CHECK(strcmp(out.reason, "blocked") == 0 &&
	        out.cls == RECORD_CLASS_SOFT &&
	        strcmp(out.rule, "op:partner") == 0,
	    "domain rule: %s by %s", out.reason, out.rule);
	in.recipient = "bob@otherpartner.example";
	classify(&in, &out);
	CHECK(strcmp(out.reason, "userunknown") == 0 &&
	        out.cls == RECORD_CLASS_HARD,
	    "other domain: %s by %s", out.reason, out.rule);
	test_end();
	classify_rules_free(rs);
}

/* No text at all can make a non-bounce hard. */
static void
t_never_hard(void)
{
	const struct classify_rules *rs = classify_builtin();
	struct classify_rule_info ri;
	size_t i;

	test_begin("no phrase is hard without a bounce");
	for (i = 0; classify_rule_get(rs, i, &ri) == 0; i++) {
		struct classify_input in;
		struct classify_result out;

		/* a phrase quoting a status code makes the text that holds
		 * it a failure report of that class */
		if (ri.phrase == NULL || strpbrk(ri.phrase, "0123456789"))
			continue;
		memset(&in, 0, sizeof(in));
		in.kind = "unknown";
		in.diagnostic = ri.phrase;
		classify(&in, &out);
		CHECK(out.cls == RECORD_CLASS_UNKNOWN,
		    "\"%s\" in a non-bounce: %s", ri.phrase,
		    record_class_name(out.cls));
	}
	test_end();
}

/* Hostile and oversized text: bounded, no crash, sane answers. */
static void
t_hostile(void)
{
	struct classify_input in;
	struct classify_result out;
	size_t big = 10 * 1024;
	char *s = malloc(big + 64);
	size_t i;

	test_begin("10 KiB diagnostic: phrase inside the scanned part");
	memset(s, 'a', big);
	memcpy(s + 100, " mailbox full ", 14);
	s[big] = '\0';
	memset(&in, 0, sizeof(in));
	in.kind = "bounce";
	in.diagnostic = s;
	classify(&in, &out);
	CHECK_STR(out.reason, "mailboxfull");
	test_end();

	test_begin("10 KiB diagnostic: phrase past the scanned part ignored");
	memset(s, 'a', big);
	memcpy(s + big - 20, " user unknown ", 14);
	classify(&in, &out);
	CHECK_STR(out.reason, "onhold");
	CHECK(out.cls != RECORD_CLASS_HARD, "hard from unscanned text");
	test_end();

	test_begin("binary junk diagnostic");
	for (i = 0; i < big; i++)
		s[i] = (char)((i * 7919u + 13u) % 255u + 1u);
	s[big] = '\0';
	in.status = "5.9.9";
	classify(&in, &out);
	CHECK(classify_reason_valid(out.reason), "reason %s", out.reason);
	CHECK(out.cls != RECORD_CLASS_HARD, "hard from junk");
	test_end();

	test_begin("many continuation markers");
	for (i = 0; i + 10 < big; i += 10)
		memcpy(s + i, "550-5.7.1 ", 10);
	s[i] = '\0';
	in.status = NULL;
	classify(&in, &out);
	CHECK(out.cls != RECORD_CLASS_HARD, "hard from markers");
	test_end();

	test_begin("NULL input");
	classify(NULL, &out);
	CHECK_STR(out.reason, "undefined");
	CHECK(out.cls == RECORD_CLASS_UNKNOWN, "class");
	test_end();
	free(s);
}

/* The Subject is not evidence: a report's own title says nothing about
 * which recipient failed how. */
static void
t_subject(void)
{
	struct classify_input in;
	struct classify_result out;

	test_begin("subject is not evidence");
	memset(&in, 0, sizeof(in));
	in.action = "failed";
	in.kind = "bounce";
	in.diagnostic = "see the attached report";
	in.subject = "Undeliverable: Mailbox full";
	classify(&in, &out);
	CHECK_STR(out.reason, "onhold");
	CHECK(out.cls == RECORD_CLASS_SOFT, "class %s",
	    record_class_name(out.cls));
	test_end();

	test_begin("subject alone never makes a hard bounce");
	in.diagnostic = "see the attached report";
	in.subject = "Returned mail: User unknown";
	classify(&in, &out);
	CHECK(out.cls != RECORD_CLASS_HARD, "hard from the subject (%s)",
	    out.reason);
	test_end();

	test_begin("subject ignored when the text speaks");
	in.status = "5.0.0";
	in.diagnostic = "550 Relay access denied";
	in.subject = "Returned mail: User unknown";
	classify(&in, &out);
	CHECK_STR(out.reason, "norelaying");
	test_end();
}

static void
t_class_names(void)
{
	test_begin("class names");
	CHECK_STR(record_class_name(RECORD_CLASS_HARD), "hard");
	CHECK_STR(record_class_name(RECORD_CLASS_SOFT), "soft");
	CHECK_STR(record_class_name(RECORD_CLASS_COMPLAINT), "complaint");
	CHECK_STR(record_class_name(RECORD_CLASS_AUTOREPLY), "autoreply");
	CHECK_STR(record_class_name(RECORD_CLASS_DELIVERED), "delivered");
	CHECK_STR(record_class_name(RECORD_CLASS_UNKNOWN), "unknown");
	CHECK_STR(record_class_name((enum record_class)99), "unknown");
	test_end();
}

/* Rules that depend on the MTA family the decoder detected. */
static const struct mta_row {
	const char *name;
	const char *mta;
	const char *status;
	int reply;
	const char *diag;
	const char *reason;
	enum record_class cls;
} mta_rows[] = {
    {"outlook.com: mailbox unavailable is no such account", "outlook", "5.5.0",
        550, "550 Requested action not taken: mailbox unavailable",
        "userunknown", RECORD_CLASS_HARD},
    /* 5.5.0 with this text is Outlook.com's own unknown mailbox
     * (PROVIDERS.md section 5), whoever relays the report */
    {"elsewhere 5.5.0 mailbox unavailable is still Outlook.com's", NULL,
        "5.5.0", 550, "550 Requested action not taken: mailbox unavailable",
        "userunknown", RECORD_CLASS_HARD},
    {"elsewhere a bare 550 mailbox unavailable is not proof", NULL, NULL, 550,
        "550 Requested action not taken: mailbox unavailable", "onhold",
        RECORD_CLASS_SOFT},
    {"yahoo quotes the reply to RCPT TO", "yahoo", NULL, 550,
        "550: <u@example.jp>: User unknown", "userunknown", RECORD_CLASS_HARD},
    {"notes: an unreadable failure reason is onhold", "notes", NULL, 0,
        "------- Failure Reasons -------- Fehler beim Zustellen", "onhold",
        RECORD_CLASS_SOFT},
    {"without a family an unreadable text is onhold", NULL, NULL, 0,
        "Fehler beim Zustellen", "onhold", RECORD_CLASS_SOFT},

};

static void
t_mta_rows(void)
{
	size_t i;

	for (i = 0; i < sizeof(mta_rows) / sizeof(mta_rows[0]); i++) {
		const struct mta_row *w = &mta_rows[i];
		struct classify_input in;

		test_begin("classify family %s", w->name);
		memset(&in, 0, sizeof(in));
		in.status = w->status;
		in.reply_code = w->reply;
		in.action = "failed";
		in.kind = "bounce";
		in.mta = w->mta;
		in.diagnostic = w->diag;
		check_classified(&in, w->reason, w->cls);
		test_end();
	}
}

/* Diagnostic-Code: x-unix is a local delivery program's report. */
static void
t_diagnostic_type(void)
{
	static const struct {
		const char *type, *status, *diag, *reason;
	} t[] = {
	    {"x-unix", "4.3.0", "temporary failure", "mailererror"},
	    {"X-Unix", "5.1.1", "maildrop: no such user", "mailererror"},
	    {"x-unix", "4.3.0", "Quota exceeded message delivery failed",
	        "mailboxfull"},
	    {"x-unix", "5.3.0", "77", "systemerror"},
	    {"smtp", "4.3.0", "temporary failure", "systemerror"},
	};
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct classify_input in;

		test_begin("classify diagnostic type %s: %s", t[i].type,
		    t[i].diag);
		memset(&in, 0, sizeof(in));
		in.status = t[i].status;
		in.action = "failed";
		in.kind = "bounce";
		in.diagnostic_type = t[i].type;
		in.diagnostic = t[i].diag;
		check_classified(&in, t[i].reason, RECORD_CLASS_SOFT);
		test_end();
	}
}

int
main(void)
{
	t_rows();
	t_mta_rows();
	t_diagnostic_type();
	t_every_reason_tested();
	t_reason_list();
	t_reasons_md();
	t_parse_status();
	t_rule_table();
	t_rules_parse();
	t_operator_rules();
	t_never_hard();
	t_hostile();
	t_subject();
	t_class_names();
	return test_done();
}
