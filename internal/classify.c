/*
 * classify.c - one failed recipient -> reason (Sisimai's vocabulary) and
 * class.  Two ordered tables, first match wins: phrases of the diagnostic
 * text and RFC 3463 enhanced status codes (subject.detail).  The text is
 * lower-cased and folded once per call, scanning at most SCAN_MAX bytes;
 * phrases are found through a three-byte index, so the cost is linear in the
 * text and never backtracks.  Leaf module: no logging, no allocation.
 */
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "classify.h"

#define SCAN_MAX 4096 /* bytes of diagnostic text examined */

enum reason {
	R_AUTHFAILURE,
	R_BADREPUTATION,
	R_BLOCKED,
	R_CONTENTERROR,
	R_DELIVERED,
	R_EXCEEDLIMIT,
	R_EXPIRED,
	R_FAILEDSTARTTLS,
	R_FEEDBACK,
	R_FILTERED,
	R_HASMOVED,
	R_HOSTUNKNOWN,
	R_MAILBOXFULL,
	R_MAILERERROR,
	R_MESGTOOBIG,
	R_NETWORKERROR,
	R_NORELAYING,
	R_NOTACCEPT,
	R_NOTCOMPLIANTRFC,
	R_ONHOLD,
	R_POLICYVIOLATION,
	R_REJECTED,
	R_REQUIREPTR,
	R_SECURITYERROR,
	R_SPAMDETECTED,
	R_SPEEDING,
	R_SUPPRESSED,
	R_SUSPEND,
	R_SYNTAXERROR,
	R_SYSTEMERROR,
	R_SYSTEMFULL,
	R_TOOMANYCONN,
	R_UNDEFINED,
	R_USERUNKNOWN,
	R_VACATION,
	R_VIRUSDETECTED,
	R_COUNT
};

static const char *const reason_names[R_COUNT + 1] = {
    [R_AUTHFAILURE] = "authfailure",
    [R_BADREPUTATION] = "badreputation",
    [R_BLOCKED] = "blocked",
    [R_CONTENTERROR] = "contenterror",
    [R_DELIVERED] = "delivered",
    [R_EXCEEDLIMIT] = "exceedlimit",
    [R_EXPIRED] = "expired",
    [R_FAILEDSTARTTLS] = "failedstarttls",
    [R_FEEDBACK] = "feedback",
    [R_FILTERED] = "filtered",
    [R_HASMOVED] = "hasmoved",
    [R_HOSTUNKNOWN] = "hostunknown",
    [R_MAILBOXFULL] = "mailboxfull",
    [R_MAILERERROR] = "mailererror",
    [R_MESGTOOBIG] = "mesgtoobig",
    [R_NETWORKERROR] = "networkerror",
    [R_NORELAYING] = "norelaying",
    [R_NOTACCEPT] = "notaccept",
    [R_NOTCOMPLIANTRFC] = "notcompliantrfc",
    [R_ONHOLD] = "onhold",
    [R_POLICYVIOLATION] = "policyviolation",
    [R_REJECTED] = "rejected",
    [R_REQUIREPTR] = "requireptr",
    [R_SECURITYERROR] = "securityerror",
    [R_SPAMDETECTED] = "spamdetected",
    [R_SPEEDING] = "speeding",
    [R_SUPPRESSED] = "suppressed",
    [R_SUSPEND] = "suspend",
    [R_SYNTAXERROR] = "syntaxerror",
    [R_SYSTEMERROR] = "systemerror",
    [R_SYSTEMFULL] = "systemfull",
    [R_TOOMANYCONN] = "toomanyconn",
    [R_UNDEFINED] = "undefined",
    [R_USERUNKNOWN] = "userunknown",
    [R_VACATION] = "vacation",
    [R_VIRUSDETECTED] = "virusdetected",
    [R_COUNT] = NULL,
};

/* Reasons that say the address itself is bad (notaccept: only with 5xx). */
static int
reason_is_hard(enum reason r)
{
	return r == R_USERUNKNOWN || r == R_HOSTUNKNOWN || r == R_HASMOVED ||
	    r == R_NOTACCEPT;
}

/*
 * Phrases, lower-case, single spaces (the text is folded the same way and
 * framed by one space on each side, so a leading or trailing space marks a
 * word boundary).  First match in table order wins: the narrow, telling
 * reasons come first, the broad address-level ones last.  A phrase must not
 * contain an earlier phrase (it could never match); test_classify checks.
 */
static const struct phrase_rule {
	const char *phrase;
	enum reason reason;
} phrase_rules[] = {
    /* Not delivered because of the sender's own suppression list. */
    {"address is on the suppression list", R_SUPPRESSED},
    {"on the account-level suppression list", R_SUPPRESSED},

    /* The destination does not take mail at all. */
    {"does not accept mail", R_NOTACCEPT},
    {"accepts no mail", R_NOTACCEPT},
    {"null mx", R_NOTACCEPT},
    {"not accepting mail", R_NOTACCEPT},
    {"doesn't receive email", R_NOTACCEPT},
    {"does not receive email", R_NOTACCEPT},
    {"no smtp service", R_NOTACCEPT},
    {"no mx record found", R_NOTACCEPT},
    {"no mx found", R_NOTACCEPT},
    {"couldn't find a mail exchanger", R_NOTACCEPT},

    /* au (EZweb): its receiving filter refused the message. */
    {"recipients was rejected by a remote mail server", R_FILTERED},

    /* cPanel Exim's text for an unrouteable address (it goes on to
     * mention blacklists as a possible cause). */
    {"the account or domain may not exist", R_HOSTUNKNOWN},

    /* Spam verdicts that go on to explain SPF or DNS set-up. */
    {"spam classification", R_SPAMDETECTED},

    /* Resolver failures that name the domain (temporary). */
    {"dns error", R_NETWORKERROR},
    {"dns query failed", R_NETWORKERROR},
    {"name service error", R_NETWORKERROR},

    /* Provider error codes that name the block (Cox "AUP#..."). */
    {"aup#cxbl", R_BLOCKED},
    {"aup#cdrbl", R_BLOCKED},
    {"aup#ipbl", R_BLOCKED},
    {"aup#rrbl", R_BLOCKED},
    {"aup#cxdns", R_REQUIREPTR},

    /* A blocked sender address (before the IP blocklists below). */
    {"sending to/from", R_REJECTED},

    /* SPF / DKIM / DMARC. */
    {"dmarc policy", R_AUTHFAILURE},
    {"dmarc check", R_AUTHFAILURE},
    {"dmarc verification", R_AUTHFAILURE},
    {"dmarc validation", R_AUTHFAILURE},
    {"dmarc fail", R_AUTHFAILURE},
    {"dmarc reject", R_AUTHFAILURE},
    {"fails dmarc", R_AUTHFAILURE},
    {"failed dmarc", R_AUTHFAILURE},
    {"spf record", R_AUTHFAILURE},
    {"spf check", R_AUTHFAILURE},
    {"spf fail", R_AUTHFAILURE},
    {"spf validation", R_AUTHFAILURE},
    {"spf policy", R_AUTHFAILURE},
    {"spf verification", R_AUTHFAILURE},
    {"spf authentication", R_AUTHFAILURE},
    {"spf softfail", R_AUTHFAILURE},
    {"spf hardfail", R_AUTHFAILURE},
    {"bad spf", R_AUTHFAILURE},
    {"pass spf", R_AUTHFAILURE},
    {"sender policy framework", R_AUTHFAILURE},
    {"dkim signature", R_AUTHFAILURE},
    {"dkim check", R_AUTHFAILURE},
    {"dkim verification", R_AUTHFAILURE},
    {"dkim validation", R_AUTHFAILURE},
    {"dkim fail", R_AUTHFAILURE},
    {"dkim policy", R_AUTHFAILURE},
    {"unauthenticated email", R_AUTHFAILURE},
    {"does not have authentication information", R_AUTHFAILURE},
    {"not pass authentication checks", R_AUTHFAILURE},
    {"authentication checks failed", R_AUTHFAILURE},

    /* Message format against the RFCs. */
    {"duplicate header", R_NOTCOMPLIANTRFC},
    {"multiple addresses in from", R_NOTCOMPLIANTRFC},
    {"rfc 5322", R_NOTCOMPLIANTRFC},
    {"rfc5322", R_NOTCOMPLIANTRFC},
    {"rfc 2822", R_NOTCOMPLIANTRFC},
    {"rfc2822", R_NOTCOMPLIANTRFC},
    {"rfc 822", R_NOTCOMPLIANTRFC},
    {"rfc822 compliant", R_NOTCOMPLIANTRFC},
    {"not rfc compliant", R_NOTCOMPLIANTRFC},
    {"bare lf", R_NOTCOMPLIANTRFC},

    /* Reverse DNS. */
    {"reverse dns", R_REQUIREPTR},
    {"reverse lookup", R_REQUIREPTR},
    {"ptr record", R_REQUIREPTR},
    {"ptr resource record", R_REQUIREPTR},
    {"ptr-record", R_REQUIREPTR},
    {" no ptr ", R_REQUIREPTR},
    {" rdns", R_REQUIREPTR},
    {"ip name lookup failed", R_REQUIREPTR},
    {"cannot find your hostname", R_REQUIREPTR},
    {"cannot find your reverse hostname", R_REQUIREPTR},
    {"mismatches client ip", R_REQUIREPTR},
    {"unresolvable relay host name", R_REQUIREPTR},
    {"no reverse", R_REQUIREPTR},
    {"without a valid sender domain", R_REQUIREPTR},
    {"hostname does not resolve", R_REQUIREPTR},
    {"client host name", R_REQUIREPTR},
    {"does not resolve to your ip", R_REQUIREPTR},
    {"generic dns", R_REQUIREPTR},

    /* TLS. */
    {"starttls", R_FAILEDSTARTTLS},
    {"tls handshake", R_FAILEDSTARTTLS},
    {"tls negotiation", R_FAILEDSTARTTLS},
    {"tls is required", R_FAILEDSTARTTLS},
    {"tls required", R_FAILEDSTARTTLS},
    {"not support tls", R_FAILEDSTARTTLS},

    /* Malware. */
    {"virus", R_VIRUSDETECTED},
    {"malware", R_VIRUSDETECTED},
    {"infected", R_VIRUSDETECTED},
    {"trojan", R_VIRUSDETECTED},
    {"malicious", R_VIRUSDETECTED},

    /* Reputation and rate. */
    {"reputation", R_BADREPUTATION},
    {"user complaints", R_BADREPUTATION},
    {"too many connections", R_TOOMANYCONN},
    {"too many simultaneous connections", R_TOOMANYCONN},
    {"too many concurrent", R_TOOMANYCONN},
    {"too many smtp sessions", R_TOOMANYCONN},
    {"too many sessions", R_TOOMANYCONN},
    {"connection frequency limited", R_TOOMANYCONN},
    {"connection limit", R_TOOMANYCONN},
    {"connection rate limit", R_TOOMANYCONN},
    {"rate limit", R_SPEEDING},
    {"ratelimit", R_SPEEDING},
    {"rate-limit", R_SPEEDING},
    {"sending too fast", R_SPEEDING},
    {"too many messages", R_SPEEDING},
    {"too many emails", R_SPEEDING},
    {"too many mails", R_SPEEDING},
    {"throttl", R_SPEEDING},
    {"exceeded the rate", R_SPEEDING},
    {"sending limit", R_SPEEDING},
    {"receiving mail at a rate", R_SPEEDING},

    /* Size. */
    {"message length exceeds limit", R_EXCEEDLIMIT},
    {"limit set by recipient", R_EXCEEDLIMIT},
    {"message too large", R_MESGTOOBIG},
    {"message is too large", R_MESGTOOBIG},
    {"message too big", R_MESGTOOBIG},
    {"message is too big", R_MESGTOOBIG},
    {"message size exceeds", R_MESGTOOBIG},
    {"message exceeds", R_MESGTOOBIG},
    {"maximum message size", R_MESGTOOBIG},
    {"max message size", R_MESGTOOBIG},
    {"message size limit", R_MESGTOOBIG},
    {"exceeds size limit", R_MESGTOOBIG},
    {"size exceeds", R_MESGTOOBIG},
    {"mail size limit", R_MESGTOOBIG},
    {"email is too large", R_MESGTOOBIG},
    {"message was too large", R_MESGTOOBIG},
    {"file too big", R_MESGTOOBIG},
    {"exceeds the maximum size", R_MESGTOOBIG},
    {"sizelimit", R_MESGTOOBIG},

    /* Mailbox over quota. */
    {"mailbox full", R_MAILBOXFULL},
    {"mailbox is full", R_MAILBOXFULL},
    {"mail box full", R_MAILBOXFULL},
    {"mailbox has exceeded", R_MAILBOXFULL},
    {"mailbox exceeded", R_MAILBOXFULL},
    {"mailbox size limit", R_MAILBOXFULL},
    {"mailbox is over", R_MAILBOXFULL},
    {"mailfolder is full", R_MAILBOXFULL},
    {"inbox is full", R_MAILBOXFULL},
    {"account is full", R_MAILBOXFULL},
    {"full mailbox", R_MAILBOXFULL},
    {"over quota", R_MAILBOXFULL},
    {"overquota", R_MAILBOXFULL},
    {"over the quota", R_MAILBOXFULL},
    {"quota exceeded", R_MAILBOXFULL},
    {"quota exceed", R_MAILBOXFULL},
    {"exceeded quota", R_MAILBOXFULL},
    {"exceeds quota", R_MAILBOXFULL},
    {"exceed the quota", R_MAILBOXFULL},
    {"exceeded its quota", R_MAILBOXFULL},
    {"exceeded their quota", R_MAILBOXFULL},
    {"disk quota", R_MAILBOXFULL},
    {"mailbox quota", R_MAILBOXFULL},
    {"storage quota", R_MAILBOXFULL},
    {"exceeded storage", R_MAILBOXFULL},
    {"out of storage", R_MAILBOXFULL},
    {"not enough storage space", R_MAILBOXFULL},
    {"user is over", R_MAILBOXFULL},
    {"is over its", R_MAILBOXFULL},
    {"would exceed", R_MAILBOXFULL},
    {"mailbox exceeds", R_MAILBOXFULL},
    {"too much mail", R_MAILBOXFULL},
    {"no space left", R_MAILBOXFULL},
    {"quota full", R_MAILBOXFULL},
    {"allowed quota", R_MAILBOXFULL},

    /* Receiving system. */
    {"insufficient system storage", R_SYSTEMFULL},
    {"system storage", R_SYSTEMFULL},
    {"mail system full", R_SYSTEMFULL},
    {"disk full", R_SYSTEMFULL},
    {"out of disk", R_SYSTEMFULL},
    {"spool full", R_SYSTEMFULL},
    {"queue full", R_SYSTEMFULL},

    /* Moved. */
    {"has moved", R_HASMOVED},
    {"has been moved", R_HASMOVED},
    {"address has changed", R_HASMOVED},
    {"no longer available at", R_HASMOVED},

    /* Relaying. */
    {"relay access denied", R_NORELAYING},
    {"relaying denied", R_NORELAYING},
    {"relay denied", R_NORELAYING},
    {"relay not permitted", R_NORELAYING},
    {"relay not allowed", R_NORELAYING},
    {"relaying not allowed", R_NORELAYING},
    {"relaying not permitted", R_NORELAYING},
    {"not permitted to relay", R_NORELAYING},
    {"unable to relay", R_NORELAYING},
    {"we do not relay", R_NORELAYING},
    {"does not relay", R_NORELAYING},
    {"no relaying", R_NORELAYING},
    {"relay prohibited", R_NORELAYING},
    {"relaying mail to", R_NORELAYING},
    {"relay attempt", R_NORELAYING},
    {"not a gateway", R_NORELAYING},
    {"identities failed the check", R_NORELAYING},
    {"allowed rcpthosts", R_NORELAYING},
    {"open relay", R_NORELAYING},

    /* The client's IP address, host name or HELO. */
    {"blocked using", R_BLOCKED},
    {"spamhaus", R_BLOCKED},
    {"spamcop", R_BLOCKED},
    {"sorbs", R_BLOCKED},
    {"barracudacentral", R_BLOCKED},
    {"blacklist", R_BLOCKED},
    {"(bl)", R_BLOCKED}, /* Cloudmark: "A problem occurred. ... (BL)" */
    {"black list", R_BLOCKED},
    {"blocklist", R_BLOCKED},
    {"block list", R_BLOCKED},
    {"denylist", R_BLOCKED},
    {" dnsbl", R_BLOCKED},
    {" rbl", R_BLOCKED},
    {"is listed in", R_BLOCKED},
    {"are listed in", R_BLOCKED},
    {"ip listed", R_BLOCKED},
    {"listed on", R_BLOCKED},
    {"banned sending ip", R_BLOCKED},
    {"client host rejected", R_BLOCKED},
    {"client host blocked", R_BLOCKED},
    {"client ip", R_BLOCKED},
    {"ip address rejected", R_BLOCKED},
    {"ip address blocked", R_BLOCKED},
    {"ip blocked", R_BLOCKED},
    {"ip is blocked", R_BLOCKED},
    {"ip has been blocked", R_BLOCKED},
    {"your ip", R_BLOCKED},
    {"ip source", R_BLOCKED},
    {"invalid ip for sending", R_BLOCKED},
    {"not allowed to send mail from", R_BLOCKED},
    {"not currently accepting mail from your", R_BLOCKED},
    {"not accepting connections", R_BLOCKED},
    {"connection refused by", R_BLOCKED},
    {"access from ip", R_BLOCKED},
    {"dynamic ip", R_BLOCKED},
    {"dynamic/zombied", R_BLOCKED},
    {"helo command rejected", R_BLOCKED},
    {"open proxy", R_BLOCKED},
    {"smtp server of your isp", R_BLOCKED},
    {"looks suspiciously like spammer", R_BLOCKED},
    {"currently sending spam", R_BLOCKED},
    {"you are sending spam", R_BLOCKED},
    {"too many spams from", R_BLOCKED},
    {"unwanted messages", R_BLOCKED},
    {"spamming", R_BLOCKED},
    {"host network not allowed", R_BLOCKED},
    {"you are not allowed to connect", R_BLOCKED},
    {"service refuse", R_BLOCKED},
    {"blocked by the recipient", R_FILTERED},
    {"blocked by", R_BLOCKED},
    {"go away", R_BLOCKED},
    {"not accepted from this ip", R_BLOCKED},
    {"permanently deferred", R_BLOCKED},
    {"refused to talk to me", R_BLOCKED},
    {"abuseat", R_BLOCKED},
    {"uceprotect", R_BLOCKED},

    /* The message as spam. */
    {"spam", R_SPAMDETECTED},
    {"message content rejected", R_SPAMDETECTED},
    {" ube", R_SPAMDETECTED},
    {"junk mail", R_SPAMDETECTED},
    {"unsolicited", R_SPAMDETECTED},
    {"bulk mail", R_SPAMDETECTED},

    /* Message format. */
    {"8-bit data", R_CONTENTERROR},
    {"8bit data", R_CONTENTERROR},
    {"headers too large", R_CONTENTERROR},
    {"header too large", R_CONTENTERROR},
    {"header too long", R_CONTENTERROR},
    {"header is too long", R_CONTENTERROR},
    {"illegal character", R_CONTENTERROR},
    {"invalid character", R_CONTENTERROR},
    {"malformed", R_CONTENTERROR},
    {"invalid mime", R_CONTENTERROR},
    {"mime error", R_CONTENTERROR},
    {"content error", R_CONTENTERROR},
    {"media error", R_CONTENTERROR},

    /* Policy. */
    {"policy violation", R_POLICYVIOLATION},
    {"policy reasons", R_POLICYVIOLATION},
    {"violates our", R_POLICYVIOLATION},
    {"violation of our", R_POLICYVIOLATION},
    {"content presents a potential", R_POLICYVIOLATION},
    {"prohibited attachment", R_POLICYVIOLATION},
    {"attachment not allowed", R_POLICYVIOLATION},
    {"too many recipients", R_POLICYVIOLATION},
    {"protocol violation", R_POLICYVIOLATION},
    {"denied by policy", R_POLICYVIOLATION},

    /* Account exists but is not usable. */
    {"account disabled", R_SUSPEND},
    {"account is disabled", R_SUSPEND},
    {"account has been disabled", R_SUSPEND},
    {"account that you tried to reach is disabled", R_SUSPEND},
    {"mailbox disabled", R_SUSPEND},
    {"mailbox is disabled", R_SUSPEND},
    {"disabled recipient", R_SUSPEND},
    {"user disabled", R_SUSPEND},
    {"account suspended", R_SUSPEND},
    {"account is suspended", R_SUSPEND},
    {"account has been suspended", R_SUSPEND},
    {"mailbox suspended", R_SUSPEND},
    {"mailbox is suspended", R_SUSPEND},
    {"mailbox has been suspended", R_SUSPEND},
    {"user suspended", R_SUSPEND},
    {"suspended account", R_SUSPEND},
    {"suspended mailbox", R_SUSPEND},
    {"recipient suspended", R_SUSPEND},
    {"account is inactive", R_SUSPEND},
    {"inactive account", R_SUSPEND},
    {"inactive user", R_SUSPEND},
    {"mailbox is inactive", R_SUSPEND},
    {"mailbox is frozen", R_SUSPEND},
    {"account is locked", R_SUSPEND},
    {"account has been locked", R_SUSPEND},
    {"deactivated", R_SUSPEND},
    {"discontinued", R_SUSPEND},
    {"account closed", R_SUSPEND},
    {"account expired", R_SUSPEND},
    {"account has expired", R_SUSPEND},
    {"not an active", R_SUSPEND},
    {"mailbox not active", R_SUSPEND},

    /* The sender (MAIL FROM). */
    {"sender address rejected", R_REJECTED},
    {"sender rejected", R_REJECTED},
    {"domain of sender address", R_REJECTED},
    {"sender verify failed", R_REJECTED},
    {"sender verification", R_REJECTED},
    {"invalid sender", R_REJECTED},
    {"sender domain", R_REJECTED},
    {"sender is not allowed", R_REJECTED},
    {"sender not allowed", R_REJECTED},
    {"envelope sender", R_REJECTED},
    {"purported responsible address", R_REJECTED},
    {"return path", R_REJECTED},
    {"mail from address", R_REJECTED},
    {"unroutable sender", R_REJECTED},
    {"unrouteable sender", R_REJECTED},
    {"permission to post", R_REJECTED},
    {"groups.google.com/support", R_REJECTED},
    {"sender was rejected", R_REJECTED},

    /* Security requirements of the receiving side. */
    {"authentication required", R_SECURITYERROR},
    {"authentication is required", R_SECURITYERROR},
    {"must authenticate", R_SECURITYERROR},
    {"unauthenticated senders", R_SECURITYERROR},
    {"not authenticated", R_SECURITYERROR},
    {"smtp auth", R_SECURITYERROR},
    {"forged", R_SECURITYERROR},
    {"encryption required", R_SECURITYERROR},

    /* Per-recipient filters. */
    {"filtered", R_FILTERED},
    {"content filter", R_FILTERED},
    {"refused due to recipient preferences", R_FILTERED},
    {"only accepting mail from", R_FILTERED},
    {"not accepting any mail", R_FILTERED},
    {"user reject", R_FILTERED},
    {"rst.notauthorized", R_FILTERED},

    /* Domain. */
    {"host unknown", R_HOSTUNKNOWN},
    {"unknown host", R_HOSTUNKNOWN},
    {"host not found", R_HOSTUNKNOWN},
    {"domain not found", R_HOSTUNKNOWN},
    {"domain does not exist", R_HOSTUNKNOWN},
    {"domain doesn't exist", R_HOSTUNKNOWN},
    {"no such domain", R_HOSTUNKNOWN},
    {"unknown domain", R_HOSTUNKNOWN},
    {"invalid domain", R_HOSTUNKNOWN},
    {"domain name not found", R_HOSTUNKNOWN},
    {"unrouteable address", R_HOSTUNKNOWN},
    {"unroutable address", R_HOSTUNKNOWN},
    {"name or service not known", R_HOSTUNKNOWN},
    {"no mx", R_HOSTUNKNOWN},
    {"non-existent host", R_HOSTUNKNOWN},
    {"couldn't find any host", R_HOSTUNKNOWN},
    {"illegal host/domain", R_HOSTUNKNOWN},
    {"domain must exist", R_HOSTUNKNOWN},
    {"host or domain name", R_HOSTUNKNOWN},
    {"nxdomain", R_HOSTUNKNOWN},
    {"no such host", R_HOSTUNKNOWN},
    {"domain name does not exist", R_HOSTUNKNOWN},
    {"unrouteable mail domain", R_HOSTUNKNOWN},
    {"domain is not reachable", R_HOSTUNKNOWN},

    /* Mailbox. */
    {"user unknown", R_USERUNKNOWN},
    {"unknown user", R_USERUNKNOWN},
    {"no such user", R_USERUNKNOWN},
    {"no such mailbox", R_USERUNKNOWN},
    {"no such recipient", R_USERUNKNOWN},
    {"no such account", R_USERUNKNOWN},
    {"no such address", R_USERUNKNOWN},
    {"no such person", R_USERUNKNOWN},
    {"mailbox unavailable", R_USERUNKNOWN},
    {"mailbox is unavailable", R_USERUNKNOWN},
    {"mailbox not found", R_USERUNKNOWN},
    {"mailbox does not exist", R_USERUNKNOWN},
    {"does not exist", R_USERUNKNOWN},
    {"doesn't exist", R_USERUNKNOWN},
    {"invalid recipient", R_USERUNKNOWN},
    {"invalid mailbox", R_USERUNKNOWN},
    {"invalid address", R_USERUNKNOWN},
    {"recipient unknown", R_USERUNKNOWN},
    {"unknown recipient", R_USERUNKNOWN},
    {"unknown address", R_USERUNKNOWN},
    {"address unknown", R_USERUNKNOWN},
    {"addressee unknown", R_USERUNKNOWN},
    {"unknown mailbox", R_USERUNKNOWN},
    {"unknown local part", R_USERUNKNOWN},
    {"unknown or illegal alias", R_USERUNKNOWN},
    {"user not found", R_USERUNKNOWN},
    {"recipient not found", R_USERUNKNOWN},
    {"address not found", R_USERUNKNOWN},
    {"not a valid mailbox", R_USERUNKNOWN},
    {"no mailbox", R_USERUNKNOWN},
    {"bad destination mailbox", R_USERUNKNOWN},
    {"no valid recipients", R_USERUNKNOWN},
    {"not our customer", R_USERUNKNOWN},
    {"user invalid", R_USERUNKNOWN},
    {"invalid user", R_USERUNKNOWN},
    {"no account by that name", R_USERUNKNOWN},
    {"no one with that email", R_USERUNKNOWN},
    {"not a known user", R_USERUNKNOWN},
    {"user account is unavailable", R_USERUNKNOWN},
    {"unknown local-part", R_USERUNKNOWN},
    {"not a valid recipient", R_USERUNKNOWN},
    {"user not exist", R_USERUNKNOWN},
    {"no such local user", R_USERUNKNOWN},
    {"mailbox invalid", R_USERUNKNOWN},
    {"unknown account", R_USERUNKNOWN},
    {"account unknown", R_USERUNKNOWN},
    {"unknown email address", R_USERUNKNOWN},
    {"user doesn't have a", R_USERUNKNOWN},
    {"user does not have a", R_USERUNKNOWN},
    {"invalid final delivery userid", R_USERUNKNOWN},
    {"user not listed", R_USERUNKNOWN},
    {"not listed in domino directory", R_USERUNKNOWN},
    {"address couldn't be found", R_USERUNKNOWN},
    {"recipient name is not recognized", R_USERUNKNOWN},

    /* Gave up after retrying. */
    {"retry timeout exceeded", R_EXPIRED},
    {"could not deliver for the last", R_EXPIRED},
    {"did not accept our requests to connect", R_EXPIRED},
    {"message expired", R_EXPIRED},
    {"delivery time expired", R_EXPIRED},
    {"queue time expired", R_EXPIRED},
    {"too long in queue", R_EXPIRED},
    {"has been delayed", R_EXPIRED},
    {"not been delivered within", R_EXPIRED},
    {"message timed out", R_EXPIRED},
    {"retry time exceeded", R_EXPIRED},
    {"was not delivered within", R_EXPIRED},
    {"giving up", R_EXPIRED},
    {"queue too long", R_EXPIRED},
    {"failing for a long time", R_EXPIRED},
    {"could not be delivered for", R_EXPIRED},
    {"could not send message for", R_EXPIRED},
    {"cannot send message for", R_EXPIRED},
    {"after a long failure period", R_EXPIRED},
    {"was aborted after", R_EXPIRED},
    {"host not reachable", R_EXPIRED},
    {"expired", R_EXPIRED},

    /* Network and routing. */
    {"mail loop", R_NETWORKERROR},
    {"message is looping", R_NETWORKERROR},
    {"loops back to myself", R_NETWORKERROR},
    {"routing loop", R_NETWORKERROR},
    {"too many hops", R_NETWORKERROR},
    {"hop count exceeded", R_NETWORKERROR},
    {"network error", R_NETWORKERROR},
    {"network is unreachable", R_NETWORKERROR},
    {"no route to host", R_NETWORKERROR},
    {"connection timed out", R_EXPIRED},
    {"connection refused", R_NETWORKERROR},
    {"connection reset", R_NETWORKERROR},
    {"lost connection", R_NETWORKERROR},
    {"temporary lookup failure", R_NETWORKERROR},
    {"host name lookup failure", R_NETWORKERROR},
    {"dns lookup", R_NETWORKERROR},
    {"name server", R_NETWORKERROR},
    {"could not connect", R_NETWORKERROR},
    {"unable to connect", R_NETWORKERROR},

    /* Local delivery program. */
    {"mailer error", R_MAILERERROR},
    {"command failed", R_MAILERERROR},
    {"command died", R_MAILERERROR},
    {"exit code", R_MAILERERROR},
    {"procmail", R_MAILERERROR},
    {"pipe to", R_MAILERERROR},
    {"unknown mailer", R_MAILERERROR},

    /* Receiving host trouble. */
    {"system error", R_SYSTEMERROR},
    {"internal error", R_SYSTEMERROR},
    {"server error", R_SYSTEMERROR},
    {"local error", R_SYSTEMERROR},
    {"i/o error", R_SYSTEMERROR},
    {"write error", R_SYSTEMERROR},
    {"service currently unavailable", R_SYSTEMERROR},
    {"temporary failure", R_SYSTEMERROR},
    {"could not load", R_SYSTEMERROR},
    {"ldap", R_SYSTEMERROR},
    {"configuration error", R_SYSTEMERROR},

    /* SMTP protocol. */
    {"syntax error", R_SYNTAXERROR},
    {"command not recognized", R_SYNTAXERROR},
    {"unrecognized command", R_SYNTAXERROR},
    {"sequence of commands", R_SYNTAXERROR},
    {"command not implemented", R_SYNTAXERROR},
    {"command parameter not implemented", R_SYNTAXERROR},
    {"invalid command", R_SYNTAXERROR},

    /* Last resort: a rejected recipient with no better word. */
    {"recipient address rejected", R_USERUNKNOWN},
    {"address rejected", R_USERUNKNOWN},
};

#define NPHRASE (sizeof(phrase_rules) / sizeof(phrase_rules[0]))

/*
 * Status codes by subject.detail ("S.*": any detail), first match wins.
 * decides: the code alone names the reason, whatever the text says;
 * otherwise the code is a fallback for text that matched no phrase.
 */
static const struct status_rule {
	const char *key;
	enum reason reason;
	int decides;
} status_rules[] = {
    {"1.1", R_USERUNKNOWN, 0}, /* bad destination mailbox */
    {"1.2", R_HOSTUNKNOWN, 0}, /* bad destination system */
    {"1.3", R_USERUNKNOWN, 0}, /* bad mailbox syntax */
    {"1.6", R_HASMOVED, 1}, /* mailbox has moved */
    {"1.7", R_REJECTED, 0}, /* bad sender mailbox syntax */
    {"1.8", R_REJECTED, 1}, /* bad sender system address */
    {"1.10", R_NOTACCEPT, 0}, /* null MX (RFC 7505) */
    {"2.1", R_SUSPEND, 0}, /* mailbox disabled */
    {"2.2", R_MAILBOXFULL, 1}, /* mailbox full */
    {"2.3", R_EXCEEDLIMIT, 1}, /* message length exceeds limit */
    {"2.4", R_SYSTEMERROR, 0}, /* list expansion problem */
    {"3.0", R_SYSTEMERROR, 0}, /* other mail system status */
    {"3.1", R_SYSTEMFULL, 0}, /* mail system full */
    {"3.4", R_MESGTOOBIG, 1}, /* message too big for system */
    {"3.5", R_SYSTEMERROR, 0}, /* system incorrectly configured */
    {"4.1", R_EXPIRED, 0}, /* no answer from host */
    {"4.2", R_NETWORKERROR, 0}, /* bad connection */
    {"4.3", R_NETWORKERROR, 0}, /* directory server failure */
    {"4.4", R_HOSTUNKNOWN, 0}, /* unable to route */
    {"4.5", R_SYSTEMFULL, 0}, /* mail system congestion */
    {"4.6", R_NETWORKERROR, 0}, /* routing loop */
    {"4.7", R_EXPIRED, 0}, /* delivery time expired */
    {"5.1", R_SYNTAXERROR, 0}, /* invalid command */
    {"5.2", R_SYNTAXERROR, 0}, /* syntax error */
    {"5.3", R_POLICYVIOLATION, 0}, /* too many recipients */
    {"5.4", R_SYNTAXERROR, 0}, /* invalid command arguments */
    {"5.5", R_SYNTAXERROR, 0}, /* wrong protocol version */
    {"6.*", R_CONTENTERROR, 0}, /* media / conversion */
    {"7.13", R_SUSPEND, 1}, /* user account disabled */
    {"7.20", R_AUTHFAILURE, 0}, /* no passing DKIM signature */
    {"7.21", R_AUTHFAILURE, 0}, /* no acceptable DKIM signature */
    {"7.22", R_AUTHFAILURE, 0}, /* no aligned DKIM signature */
    {"7.23", R_AUTHFAILURE, 0}, /* SPF validation failed */
    {"7.24", R_AUTHFAILURE, 0}, /* SPF validation error */
    {"7.25", R_REQUIREPTR, 1}, /* reverse DNS validation failed */
    {"7.26", R_AUTHFAILURE, 1}, /* multiple authentication checks */
    {"7.27", R_REJECTED, 0}, /* sender address has null MX */
    {"7.*", R_SECURITYERROR, 0}, /* security or policy status */
};

#define NSTATUS (sizeof(status_rules) / sizeof(status_rules[0]))

/* Three-byte index over phrase_rules: bucket -> ascending rule numbers. */
#define NBUCKET 4096
static uint16_t bucket_start[NBUCKET + 1];
static uint16_t bucket_rule[NPHRASE];
static uint16_t phrase_len[NPHRASE];
static pthread_once_t index_once = PTHREAD_ONCE_INIT;

static unsigned
bucket_of(unsigned char a, unsigned char b, unsigned char c)
{
	return (((unsigned)a * 131u + b) * 131u + c) & (NBUCKET - 1);
}

static void
index_build(void)
{
	uint16_t fill[NBUCKET];
	size_t i;

	memset(bucket_start, 0, sizeof(bucket_start));
	for (i = 0; i < NPHRASE; i++) {
		const unsigned char *p =
		    (const unsigned char *)phrase_rules[i].phrase;
		phrase_len[i] = (uint16_t)strlen(phrase_rules[i].phrase);
		bucket_start[bucket_of(p[0], p[1], p[2]) + 1]++;
	}
	for (i = 0; i < NBUCKET; i++)
		bucket_start[i + 1] += bucket_start[i];
	memcpy(fill, bucket_start, sizeof(fill));
	for (i = 0; i < NPHRASE; i++) {
		const unsigned char *p =
		    (const unsigned char *)phrase_rules[i].phrase;
		bucket_rule[fill[bucket_of(p[0], p[1], p[2])]++] = (uint16_t)i;
	}
}

/*
 * Lower-cases and folds s into dst (cap bytes, cap >= 3): runs of white
 * space and control bytes become one space, the text is framed by single
 * spaces, and the "550-5.7.1 " prefixes of continued SMTP reply lines are
 * dropped so that phrases broken across lines still match.  Reads at most
 * SCAN_MAX bytes of s.  Returns the length written (NUL-terminated).
 */
static size_t
fold_text(const char *s, char *dst, size_t cap)
{
	const unsigned char *p = (const unsigned char *)s;
	const unsigned char *end;
	size_t n = 0, cut = 1;

	dst[n++] = ' ';
	if (s == NULL)
		goto out;
	end = p + strnlen(s, SCAN_MAX);
	while (p < end && n + 2 < cap) {
		unsigned char c = *p;

		if (c <= ' ' || c == 0x7f) {
			if (dst[n - 1] != ' ')
				dst[n++] = ' ';
			p++;
			continue;
		}
		/* "550-5.7.1 " or a repeated "550 5.7.1 " inside the text:
		 * continuation lines of one reply. */
		if (dst[n - 1] == ' ' && n > 1 && end - p >= 4 && c >= '2' &&
		    c <= '5' && p[1] >= '0' && p[1] <= '9' && p[2] >= '0' &&
		    p[2] <= '9' && (p[3] == '-' || p[3] == ' ')) {
			const unsigned char *q = p + 4;

			while (
			    q < end && ((*q >= '0' && *q <= '9') || *q == '.'))
				q++;
			if ((p[3] == '-' || q - p >= 9) &&
			    (q == end || *q <= ' ')) {
				p = q;
				continue;
			}
		}
		if (dst[n - 1] == ' ')
			cut = n;
		/* An address: drop it from its local part on, keeping what
		 * precedes it in the word ("to:<"), so that the words of a
		 * local part ("spam@", "filtered@") are never read as prose. */
		if (c == '@') {
			n = cut;
			while (p<end && * p> ' ' && *p != 0x7f)
				p++;
			continue;
		}
		dst[n++] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : (char)c;
		if (c == ':' || c == '<' || c == '(' || c == '[' || c == '"')
			cut = n;
		p++;
	}
out:
	if (dst[n - 1] != ' ')
		dst[n++] = ' ';
	dst[n] = '\0';
	return n;
}

/* First phrase rule found in the folded text t (n bytes), or -1.
 * seen_out (may be NULL): bit r set for every reason r some phrase of
 * which occurs anywhere in the text. */
static int
phrase_find(const char *t, size_t n, uint64_t *seen_out)
{
	size_t best = NPHRASE, pos, k;
	uint64_t seen = 0;

	for (pos = 0; pos + 2 < n; pos++) {
		unsigned h = bucket_of((unsigned char)t[pos],
		    (unsigned char)t[pos + 1], (unsigned char)t[pos + 2]);

		for (k = bucket_start[h]; k < bucket_start[h + 1]; k++) {
			size_t r = bucket_rule[k];

			const char *ph = phrase_rules[r].phrase;

			if (phrase_len[r] > n - pos || t[pos] != ph[0] ||
			    t[pos + 1] != ph[1] || t[pos + 2] != ph[2] ||
			    memcmp(t + pos + 3, ph + 3, phrase_len[r] - 3u) !=
			        0)
				continue;
			seen |= (uint64_t)1 << phrase_rules[r].reason;
			if (r < best)
				best = r;
		}
	}
	if (seen_out != NULL)
		*seen_out = seen;
	return best == NPHRASE ? -1 : (int)best;
}

int
classify_phrase_match(const char *text)
{
	char buf[SCAN_MAX + 4];
	size_t n;

	pthread_once(&index_once, index_build);
	n = fold_text(text, buf, sizeof(buf));
	return phrase_find(buf, n, NULL);
}

/* Digits at s, 1-3 of them, not followed by another digit. */
static size_t
digits(const char *s)
{
	size_t n = 0;

	while (n < 4 && s[n] >= '0' && s[n] <= '9')
		n++;
	return (n >= 1 && n <= 3) ? n : 0;
}

int
classify_parse_status(const char *s, char out[16])
{
	size_t a, b;

	if (s == NULL || (s[0] != '2' && s[0] != '4' && s[0] != '5') ||
	    s[1] != '.')
		return -1;
	a = digits(s + 2);
	if (a == 0 || s[2 + a] != '.')
		return -1;
	b = digits(s + 3 + a);
	if (b == 0)
		return -1;
	/* "5.1.1.2" or "5.1.1x" is not a status code. */
	if (s[3 + a + b] == '.' && (s[4 + a + b] >= '0' && s[4 + a + b] <= '9'))
		return -1;
	memcpy(out, s, 3 + a + b);
	out[3 + a + b] = '\0';
	return 0;
}

/* The first status code in the first len bytes of t standing as a word of
 * its own; 0 and out filled, or -1. */
static int
status_in_text(const char *t, size_t len, char out[16])
{
	size_t i;

	for (i = 0; i + 5 <= len; i++) {
		const char *p = t + i;

		if ((*p != '2' && *p != '4' && *p != '5') || p[1] != '.')
			continue;
		if (i > 0 && ((p[-1] >= '0' && p[-1] <= '9') || p[-1] == '.'))
			continue;
		if (classify_parse_status(p, out) == 0)
			return 0;
	}
	return -1;
}

/* An SMTP reply code "550" at the start of the folded text or after
 * "said:"; 0 when none. */
static int
reply_in_text(const char *t)
{
	const char *p = t;

	while (*p == ' ')
		p++;
	if (p[0] >= '2' && p[0] <= '5' && p[1] >= '0' && p[1] <= '9' &&
	    p[2] >= '0' && p[2] <= '9' && (p[3] == ' ' || p[3] == '-'))
		return (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
	return 0;
}

/* The status rule for "C.S.D", or -1.  subject_out: S as a number. */
static int
status_find(const char *st, int *subject_out)
{
	const char *sd = st + 2; /* "S.D" */
	const char *dot = strchr(sd, '.');
	size_t slen = (size_t)(dot - sd);
	size_t i;

	*subject_out = (int)(sd[0] - '0');
	if (slen == 2)
		*subject_out = *subject_out * 10 + (sd[1] - '0');
	else if (slen == 3)
		*subject_out =
		    *subject_out * 100 + (sd[1] - '0') * 10 + (sd[2] - '0');
	for (i = 0; i < NSTATUS; i++) {
		const char *k = status_rules[i].key;
		size_t klen = strlen(k);

		if (k[klen - 1] == '*') {
			if (klen - 1 == slen + 1 &&
			    strncmp(k, sd, slen + 1) == 0)
				return (int)i;
		} else if (strcmp(k, sd) == 0)
			return (int)i;
	}
	return -1;
}

static int
str_eq(const char *a, const char *b)
{
	return a != NULL && strcasecmp(a, b) == 0;
}

/* Reasons whose phrases are vague enough that a status code naming a
 * reason of its own is trusted more ("connection refused" after 4.4.7). */
static int
reason_is_weak(enum reason r)
{
	return r == R_NETWORKERROR || r == R_SYSTEMERROR || r == R_SYNTAXERROR;
}

/* Phrases naming the SMTP command a reply answered, when the decoder did
 * not say; first match wins. */
static const struct {
	const char *phrase;
	const char *command;
} command_phrases[] = {
    {"end of data", "DATA"},
    {"data command", "DATA"},
    {"final data", "DATA"},
    {"after data", "DATA"},
    {">>> data", "DATA"},
    {"rcpt to command", "RCPT"},
    {"after rcpt to:", "RCPT"},
    {">>> rcpt to:", "RCPT"},
    {"mail from command", "MAIL"},
    {"after mail from:", "MAIL"},
    {">>> mail from:", "MAIL"},
    {"after initial connection", "CONN"},
};

/* The SMTP command of the reply: in->smtp_command, else from the text;
 * NULL when unknown. */
static const char *
smtp_command(const struct classify_input *in, const char *text)
{
	size_t i;

	if (in->smtp_command != NULL)
		return in->smtp_command;
	for (i = 0; i < sizeof(command_phrases) / sizeof(command_phrases[0]);
	     i++)
		if (strstr(text, command_phrases[i].phrase) != NULL)
			return command_phrases[i].command;
	/* Yahoo's bounces quote the reply to RCPT TO for each address. */
	if (str_eq(in->mta, "yahoo"))
		return "RCPT";
	return NULL;
}

/* Replies that state that the account does not exist, which stand even
 * when the SMTP stage is unknown or was DATA: a server's own wording for
 * "no such account" rather than a filter's generic "user unknown".  mta:
 * only for bounces of that family (NULL: any). */
static const struct {
	const char *mta;
	const char *phrase;
} no_account_phrases[] = {
    {NULL, "user doesn't have a"}, {NULL, "user does not have a"},
    {NULL, "invalid recipient"},
    {NULL, "recipient name is not recognized"}, /* Exchange 5.5 / 2003 */
    {NULL, "(000c05a6)"}, /* Exchange: Unknown Recipient */
    {NULL, "invalid final delivery userid"}, /* IMail */
    {NULL, "mail.local: unknown user"}, /* Sendmail's local mailer */
    {NULL, "not listed in public name & address book"}, /* Domino */
    {NULL, "not listed in domino directory"},
    {NULL, "recipientnotfound"}, /* Exchange Online resolver */
    {NULL, "recipient not found by smtp address lookup"},
    {NULL, "address couldn't be found"}, /* Gmail */
    {"outlook", "mailbox unavailable"}, /* Outlook.com / Hotmail */
};

static int
explicit_no_account(const struct classify_input *in, const char *text)
{
	size_t i;

	for (i = 0;
	     i < sizeof(no_account_phrases) / sizeof(no_account_phrases[0]);
	     i++)
		if ((no_account_phrases[i].mta == NULL ||
		        str_eq(in->mta, no_account_phrases[i].mta)) &&
		    strstr(text, no_account_phrases[i].phrase) != NULL)
			return 1;
	return 0;
}

/* A diagnostic that is only a number: the exit status of a local delivery
 * program (Diagnostic-Code: X-Unix; 75). */
static int
exit_status_only(const char *text)
{
	const char *p = text;
	size_t d = 0;

	while (*p == ' ')
		p++;
	while (p[d] >= '0' && p[d] <= '9')
		d++;
	return d >= 1 && d <= 3 && (p[d] == ' ' || p[d] == '\0') &&
	    p[d + (p[d] != '\0')] == '\0';
}

/* The text is the complaint of a local delivery program ("procmail:
 * Couldn't create ...", "maildrop: ..."): whatever it says about the user,
 * the program failed. */
static const char *const local_agents[] = {
    " procmail:",
    " maildrop:",
};

static int
local_agent_text(const char *text)
{
	size_t i;

	for (i = 0; i < sizeof(local_agents) / sizeof(local_agents[0]); i++)
		if (strncmp(text, local_agents[i], strlen(local_agents[i])) ==
		    0)
			return 1;
	return 0;
}

/* Network faults that explain a message's expiry better than the expiry
 * itself (a refused or timed-out connection does not: it is the usual
 * story of any expired message). */
static const char *const network_faults[] = {
    "host name lookup failure",
    "name server",
    "no route to host",
    "host is unreachable",
    "network is unreachable",
    "hop count exceeded",
    "too many hops",
    "unrouteable",
    "routing loop",
};

static int
names_network_fault(const char *text)
{
	size_t i;

	for (i = 0; i < sizeof(network_faults) / sizeof(network_faults[0]); i++)
		if (strstr(text, network_faults[i]) != NULL)
			return 1;
	return 0;
}

/* The first phrase rule matching the bounce's Subject, or -1. */
static int
subject_phrase(const char *subject)
{
	char buf[512];
	size_t n;

	if (subject == NULL)
		return -1;
	n = fold_text(subject, buf, sizeof(buf));
	return phrase_find(buf, n, NULL);
}

void
classify(const struct classify_input *in, struct classify_result *out)
{
	char text[SCAN_MAX + 4];
	char st[16] = "", tst[16] = "";
	size_t n;
	int reply, pr, ps, sr = -1, subj = 0, no_hard, failed;
	const char *cmd = NULL;
	uint64_t seen = 0;
	enum reason r;

	pthread_once(&index_once, index_build);
	out->reason = reason_names[R_UNDEFINED];
	out->cls = CLASS_UNKNOWN;
	if (in == NULL)
		return;

	if (str_eq(in->kind, "complaint") ||
	    (in->feedback_type != NULL && in->feedback_type[0] != '\0')) {
		out->reason = reason_names[R_FEEDBACK];
		out->cls = CLASS_COMPLAINT;
		return;
	}
	if (str_eq(in->kind, "autoreply")) {
		out->reason = reason_names[R_VACATION];
		out->cls = CLASS_AUTOREPLY;
		return;
	}

	n = fold_text(in->diagnostic, text, sizeof(text));
	if (in->status == NULL || classify_parse_status(in->status, st) != 0)
		st[0] = '\0';
	if (in->diagnostic != NULL)
		(void)status_in_text(in->diagnostic,
		    strnlen(in->diagnostic, SCAN_MAX), tst);
	/* A generic "5.0.0" gives way to the code the reply itself gave. */
	if (st[0] == '\0' || (strcmp(st + 1, ".0.0") == 0 && tst[0] == st[0]))
		memcpy(st, tst, sizeof(st));
	reply = in->reply_code;
	if (reply < 200 || reply > 599)
		reply = reply_in_text(text);
	if (exit_status_only(text))
		reply = 0;

	if (st[0] == '2' || str_eq(in->action, "delivered") ||
	    str_eq(in->action, "relayed") || str_eq(in->action, "expanded") ||
	    (str_eq(in->kind, "delivered") && st[0] == '\0')) {
		out->reason = reason_names[R_DELIVERED];
		out->cls = CLASS_DELIVERED;
		return;
	}

	failed = st[0] == '4' || st[0] == '5' || reply >= 400 ||
	    str_eq(in->action, "failed") || str_eq(in->action, "delayed") ||
	    str_eq(in->kind, "bounce") || str_eq(in->kind, "delayed");
	if (!failed && str_eq(in->kind, "unknown"))
		return; /* not a bounce we recognise: nothing to say */

	if (st[0] != '\0')
		sr = status_find(st, &subj);
	/* A policy status (x.7.x) never blames the address. */
	no_hard =
	    subj == 7 || (tst[0] != '\0' && tst[2] == '7' && tst[3] == '.');
	pr = phrase_find(text, n, &seen);

	if (sr >= 0 && status_rules[sr].decides)
		r = status_rules[sr].reason;
	else if (local_agent_text(text))
		r = R_MAILERERROR;
	else if (sr >= 0 && (seen >> status_rules[sr].reason & 1))
		r = status_rules[sr].reason; /* the text confirms the code */
	else if (pr >= 0 &&
	    !(sr >= 0 && reason_is_weak(phrase_rules[pr].reason)))
		r = phrase_rules[pr].reason;
	else if (sr >= 0)
		r = status_rules[sr].reason;
	else if (pr >= 0)
		r = phrase_rules[pr].reason;
	else if (exit_status_only(text))
		r = R_MAILERERROR;
	else if ((ps = subject_phrase(in->subject)) >= 0 &&
	    !reason_is_hard(phrase_rules[ps].reason))
		r = phrase_rules[ps].reason; /* a hint, never enough for hard */
	else if ((cmd = smtp_command(in, text)) != NULL &&
	    (str_eq(cmd, "CONN") || str_eq(cmd, "HELO") || str_eq(cmd, "EHLO")))
		r = R_BLOCKED; /* refused before any address was given */
	else if (str_eq(cmd, "MAIL"))
		r = R_REJECTED; /* the sender was refused */
	else if (str_eq(in->action, "delayed") || str_eq(in->kind, "delayed"))
		r = R_EXPIRED;
	else if (st[0] != '\0' || reply >= 400)
		r = R_ONHOLD;
	else if (str_eq(in->mta, "notes") && n > 2)
		r = R_ONHOLD; /* Notes gave a failure reason we cannot read */
	else
		r = R_UNDEFINED;

	/* A local delivery program's report (Diagnostic-Code: x-unix) with
	 * words: the program failed, whatever it says, unless the mailbox
	 * was full. */
	if (str_eq(in->diagnostic_type, "x-unix") && !exit_status_only(text) &&
	    r != R_MAILBOXFULL)
		r = R_MAILERERROR;

	/* A status that only says the queue time ran out gives way to the
	 * cause the text names: a refused connection or a network failure
	 * (Sisimai tries blocked and networkerror before expired). */
	if (r == R_EXPIRED && sr >= 0 && status_rules[sr].reason == R_EXPIRED) {
		if (seen >> R_BLOCKED & 1)
			r = R_BLOCKED;
		else if (names_network_fault(text))
			r = R_NETWORKERROR;
	}

	/* A missing-mailbox phrase proves a missing mailbox only when the
	 * status code says so (x.1.1) or when the reply answered RCPT TO;
	 * the same words from a filtering gateway at any other stage (or at
	 * an unknown one) are the filter's verdict on the message. */
	if (r == R_USERUNKNOWN &&
	    !(sr >= 0 && status_rules[sr].reason == R_USERUNKNOWN)) {
		cmd = smtp_command(in, text);
		if (explicit_no_account(in, text))
			; /* the server's own words: no such account */
		else if (str_eq(cmd, "MAIL"))
			r = R_REJECTED;
		else if (!str_eq(cmd, "RCPT"))
			r = R_FILTERED;
	}

	/* "User unknown" in answer to the message data is a filter's verdict
	 * on the content, not proof that the mailbox is missing, unless the
	 * reply says in so many words that there is no such account. */
	if (r == R_USERUNKNOWN &&
	    !(sr >= 0 && status_rules[sr].reason == R_USERUNKNOWN) &&
	    str_eq(smtp_command(in, text), "DATA") &&
	    !explicit_no_account(in, text))
		r = R_FILTERED;

	/* Under a policy code the recipient was refused by a filter, not
	 * found missing. */
	if (no_hard &&
	    (r == R_USERUNKNOWN || r == R_HOSTUNKNOWN || r == R_HASMOVED))
		r = r == R_USERUNKNOWN ? R_FILTERED
		    : sr >= 0          ? status_rules[sr].reason
		                       : R_SECURITYERROR;

	out->reason = reason_names[r];
	if (r == R_NOTACCEPT)
		out->cls = !no_hard &&
		        (reply >= 500 || (reply == 0 && st[0] == '5') ||
		            (reply == 0 && st[0] == '\0' &&
		                !str_eq(in->action, "delayed") &&
		                !str_eq(in->kind, "delayed") &&
		                strstr(text, "temporar") == NULL &&
		                strstr(text, "try again") == NULL))
		    ? CLASS_HARD
		    : CLASS_SOFT;
	else if (reason_is_hard(r) && !no_hard)
		out->cls = CLASS_HARD;
	else if ((r == R_UNDEFINED || r == R_ONHOLD) && !failed)
		out->cls = CLASS_UNKNOWN;
	else
		out->cls = CLASS_SOFT;
}

const char *
classify_class_name(enum bounce_class cls)
{
	switch (cls) {
	case CLASS_HARD:
		return "hard";
	case CLASS_SOFT:
		return "soft";
	case CLASS_COMPLAINT:
		return "complaint";
	case CLASS_AUTOREPLY:
		return "autoreply";
	case CLASS_DELIVERED:
		return "delivered";
	case CLASS_UNKNOWN:
		break;
	}
	return "unknown";
}

int
classify_reason_valid(const char *name)
{
	size_t i;

	if (name == NULL)
		return 0;
	for (i = 0; i < R_COUNT; i++)
		if (strcmp(reason_names[i], name) == 0)
			return 1;
	return 0;
}

const char *const *
classify_reasons(void)
{
	return reason_names;
}

int
classify_rule_at(enum classify_table t, size_t i, const char **key_out,
    const char **reason_out)
{
	if (t == CLASSIFY_TABLE_PHRASE && i < NPHRASE) {
		*key_out = phrase_rules[i].phrase;
		*reason_out = reason_names[phrase_rules[i].reason];
		return 0;
	}
	if (t == CLASSIFY_TABLE_STATUS && i < NSTATUS) {
		*key_out = status_rules[i].key;
		*reason_out = reason_names[status_rules[i].reason];
		return 0;
	}
	return -1;
}
