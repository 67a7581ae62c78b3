/*
 * test_config.c - table tests for the configuration loader: every key good
 * and bad with the exact error text, environment substitution, secret
 * files, YAML-level refusals (aliases, tags, documents, junk, size), the
 * masked dump and the documented key list in config/bouncerd.yaml.
 * Run from the source root (tests/run.sh does) for the fixture paths.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "test.h"
#include "base/util.h"

#define FIX "tests/fixtures/config/"
#define DB "database:\n  url: postgresql://u:pw@localhost/db\n"
#define MBX \
	"mailboxes:\n" \
	"  - name: m1\n" \
	"    host: pop.example.com\n" \
	"    username: u\n"
#define MB1 MBX "    password: pw\n"
/* Lines: DB is lines 1-2, MB1 lines 3-7. */

struct row {
	const char *name;
	const char *yaml;
	const char *want; /* all errors joined by '\n'; NULL: loads */
	const char *checks; /* "path=value\n..." on success */
};

static char *
join_errors(const struct config_errors *errs)
{
	size_t i, len = 1;
	char *out;

	for (i = 0; i < errs->count; i++)
		len += strlen(errs->items[i]) + 1;
	out = xcalloc(1, len);
	for (i = 0; i < errs->count; i++) {
		if (i > 0)
			strlcpy_b(out + strlen(out), "\n", len - strlen(out));
		strlcpy_b(out + strlen(out), errs->items[i], len - strlen(out));
	}
	return out;
}

static void
check_values(const struct config *cfg, const char *checks)
{
	char *copy = xstrdup(checks), *line = copy, *next;

	for (; line != NULL && *line != '\0'; line = next) {
		char got[1024], *eq;
		next = strchr(line, '\n');
		if (next != NULL)
			*next++ = '\0';
		eq = strchr(line, '=');
		if (eq == NULL) {
			test_fail_at(__FILE__, __LINE__, "bad check '%s'",
			    line);
			continue;
		}
		*eq = '\0';
		if (config_value(cfg, line, got, sizeof(got)) != 0) {
			test_fail_at(__FILE__, __LINE__,
			    "no key '%s' in config", line);
			continue;
		}
		if (strcmp(got, eq + 1) != 0)
			test_fail_at(__FILE__, __LINE__, "%s: got %s, want %s",
			    line, got, eq + 1);
	}
	free(copy);
}

static void
run_row(const char *file, const char *text, size_t len, const char *want,
    const char *checks)
{
	struct config *cfg = NULL;
	struct config_errors errs = {NULL, 0};
	int rc = config_from_string(file, text, len, &cfg, &errs);
	char *got = join_errors(&errs);

	if (want == NULL) {
		CHECK(rc == 0, "unexpected errors:\n%s", got);
		CHECK(cfg != NULL, "no config");
		if (cfg != NULL && checks != NULL)
			check_values(cfg, checks);
	} else {
		CHECK_INT(rc, -1);
		CHECK(cfg == NULL, "config returned with errors");
		CHECK_STR(got, want);
	}
	free(got);
	config_errors_free(&errs);
	config_free(&cfg);
}

static const struct row rows[] = {
    /* ---- valid files and defaults ---- */
    {"minimal config gets every default", DB MB1, NULL,
        "database.url=\"user='u' password='********' dbname='db' "
        "host='localhost'\"\n"
        "database.batch_size=50\ndatabase.migrate=true\n"
        "database.raw_max_bytes=256KiB\nlog.level=info\nlog.format=text\n"
        "http.listen=\"\"\nworkers=4\ndefaults.interval=5m\n"
        "defaults.jitter=30s\ndefaults.max_messages=500\n"
        "defaults.max_message_bytes=4MiB\n"
        "defaults.after_processing=delete\ndefaults.keep_days=7\n"
        "defaults.connect_timeout=30s\ndefaults.command_timeout=1m\n"
        "defaults.first_pass=count\ndefaults.max_age=30d\n"
        "extract.campaign_header=\"X-Campaign-Id\"\n"
        "extract.list_header=\"List-Id\"\n"
        "extract.subscriber_header=\"X-Subscriber-Id\"\n"
        "extract.extra_headers=[]\nextract.verp_pattern=\"\"\n"
        "suppression.soft_threshold=3\nsuppression.soft_window=30d\n"
        "mailboxes[0].name=\"m1\"\nmailboxes[0].port=995\n"
        "mailboxes[0].tls=implicit\nmailboxes[0].auth=password\n"
        "mailboxes[0].password=\"********\"\nmailboxes[0].interval=5m"},
    {"tls none defaults to port 110", DB MB1 "    tls: none\n", NULL,
        "mailboxes[0].tls=none\nmailboxes[0].port=110"},
    {"starttls with explicit port",
        DB MB1 "    tls: starttls\n    port: 1110\n", NULL,
        "mailboxes[0].tls=starttls\nmailboxes[0].port=1110"},
    {"quoted port is accepted", DB MB1 "    port: \"2995\"\n", NULL,
        "mailboxes[0].port=2995"},
    {"mailbox overrides only its own keys",
        DB MB1 "    interval: 1m\n    jitter: 0\n", NULL,
        "mailboxes[0].interval=1m\nmailboxes[0].jitter=0\n"
        "defaults.interval=5m\ndefaults.jitter=30s"},
    {"mailbox inherits defaults written after it",
        DB MB1 "defaults:\n  max_messages: 10\n  interval: 1h30m\n", NULL,
        "mailboxes[0].max_messages=10\nmailboxes[0].interval=1h30m"},
    {"every defaults key set",
        DB MB1 "defaults:\n  interval: 10s\n  jitter: 1500ms\n"
               "  max_messages: 100000\n  max_message_bytes: 64KiB\n"
               "  after_processing: keep\n  keep_days: 0\n"
               "  connect_timeout: 10m\n  command_timeout: 1h\n"
               "  first_pass: record_only\n  max_age: 0\n",
        NULL,
        "defaults.interval=10s\ndefaults.jitter=1s500ms\n"
        "defaults.max_messages=100000\ndefaults.max_message_bytes=64KiB\n"
        "defaults.after_processing=keep\ndefaults.keep_days=0\n"
        "defaults.connect_timeout=10m\ndefaults.command_timeout=1h\n"
        "defaults.first_pass=record_only\ndefaults.max_age=0\n"
        "mailboxes[0].first_pass=record_only"},
    {"duplicate section", DB MB1 "database:\n  raw_max_bytes: 0\n",
        "t.yaml:8:1: database: "
        "duplicate key (first at "
        "line 1)",
        NULL},
    {"size units",
        "database:\n  url: postgresql://u@h/d\n"
        "  raw_max_bytes: 1000000\n" MB1 "    max_message_bytes: 1GiB\n",
        NULL,
        "database.raw_max_bytes=1000000\n"
        "mailboxes[0].max_message_bytes=1GiB"},
    {"database and log keys",
        "database:\n  url: postgresql://h/d\n  batch_size: 10000\n"
        "  migrate: false\nlog:\n  level: debug\n  format: json\n"
        "workers: 64\n" MB1,
        NULL,
        "database.batch_size=10000\ndatabase.migrate=false\n"
        "log.level=debug\nlog.format=json\nworkers=64"},
    {"conninfo password is masked",
        "database:\n  url: host=localhost dbname=b password=s3cret "
        "user=x\n" MB1,
        NULL,
        "database.url=\"user='x' password='********' dbname='b' "
        "host='localhost'\""},
    {"quoted conninfo password with a space is masked whole",
        "database:\n  url: \"host=h dbname=b password='two words' "
        "user=x\"\n" MB1,
        NULL,
        "database.url=\"user='x' password='********' dbname='b' "
        "host='h'\""},
    {"conninfo password with spaces around = is masked",
        "database:\n  url: \"host=h password = plain dbname=b\"\n" MB1, NULL,
        "database.url=\"password='********' dbname='b' host='h'\""},
    {"URI password with escapes is masked",
        "database:\n  url: \"postgres://u:p%40ss%20w@h:5433/d\"\n" MB1, NULL,
        "database.url=\"user='u' password='********' dbname='d' host='h' "
        "port='5433'\""},
    {"URI query password is masked",
        "database:\n  url: "
        "postgresql://h/d?user=a&password=s3cret&sslmode=disable\n" MB1,
        NULL,
        "database.url=\"user='a' password='********' dbname='d' host='h' "
        "sslmode='disable'\""},
    {"http listen forms", DB MB1 "http:\n  listen: \":9187\"\n", NULL,
        "http.listen=\":9187\""},
    {"http listen host and IPv6", DB MB1 "http:\n  listen: \"[::1]:9187\"\n",
        NULL, "http.listen=\"[::1]:9187\""},
    {"extract keys",
        DB MB1 "extract:\n  campaign_header: X-Camp\n  list_header: \"\"\n"
               "  subscriber_header: X-Sub\n"
               "  extra_headers: [X-Mailer-Id, X-Job]\n"
               "  verp_pattern: \"bounces+{local}={domain}@example.com\"\n",
        NULL,
        "extract.campaign_header=\"X-Camp\"\nextract.list_header=\"\"\n"
        "extract.extra_headers=[\"X-Mailer-Id\", \"X-Job\"]\n"
        "extract.verp_pattern=\"bounces+{local}={domain}@example.com\""},
    {"suppression keys and overrides",
        DB MB1 "suppression:\n  soft_threshold: 1000\n  soft_window: 1h\n"
               "  overrides:\n    - reason: mailboxfull\n"
               "      action: hard_after\n      count: 5\n"
               "    - {reason: blocked, action: never}\n",
        NULL,
        "suppression.soft_threshold=1000\nsuppression.soft_window=1h\n"
        "suppression.overrides[0].reason=\"mailboxfull\"\n"
        "suppression.overrides[0].count=5\n"
        "suppression.overrides[1].action=never"},
    {"environment substitution",
        DB MB1 "extract:\n"
               "  campaign_header: "
               "X-${CFGTEST_PART}-Id\n"
               "  list_header: \"$$X-${CFGTEST_"
               "PART}\"\n",
        NULL,
        "extract.campaign_header=\"X-Camp-Id\"\n"
        "extract.list_header=\"$$X-Camp\""},
    {"environment substitution in the database url",
        "database:\n  url: ${CFGTEST_URL}\n" MB1, NULL,
        "database.url=\"user='envuser' password='********' dbname='b' "
        "host='db.example'\""},
    {"lone dollar is literal", DB MB1 "extract:\n  list_header: X$Y\n", NULL,
        "extract.list_header=\"X$$Y\""},
    {"password from file", DB MBX "    password_file: " FIX "password.txt\n",
        NULL, "mailboxes[0].password_file=\"" FIX "password.txt\""},
    {"relative file names follow the config file",
        DB MBX "    password_file: password.txt\n    ca_file: ca.pem\n", NULL,
        "mailboxes[0].password_file=\"" FIX "password.txt\"\n"
        "mailboxes[0].ca_file=\"" FIX "ca.pem\""},
    {"database url from file",
        "database:\n  url_file: " FIX "database-url.txt\n" MB1, NULL,
        "database.url_file=\"" FIX "database-url.txt\""},
    {"xoauth2 with provider fills token_url",
        DB MBX "    auth: xoauth2\n    provider: microsoft\n"
               "    client_id: abc\n    client_secret: shh\n"
               "    refresh_token: rt\n",
        NULL,
        "mailboxes[0].token_url=\"https://login.microsoftonline.com/common/"
        "oauth2/v2.0/token\"\nmailboxes[0].client_secret=\"********\"\n"
        "mailboxes[0].refresh_token=\"********\""},
    {"xoauth2 client credentials with scope and files",
        DB MBX "    auth: xoauth2\n    provider: google\n"
               "    client_id: abc\n    client_secret_file: " FIX
               "client-secret.txt\n    scope: https://mail.google.com/\n",
        NULL, "mailboxes[0].token_url=\"https://oauth2.googleapis.com/token\""},
    {"xoauth2 with own token_url and refresh token file",
        DB MBX "    auth: xoauth2\n    client_id: abc\n"
               "    client_secret: s\n    refresh_token_file: " FIX
               "refresh-token.txt\n    token_url: https://idp.example/t\n",
        NULL, "mailboxes[0].token_url=\"https://idp.example/t\""},
    {"xoauth2 with a CA for the token endpoint",
        DB MBX "    auth: xoauth2\n    client_id: abc\n"
               "    client_secret: s\n    refresh_token: r\n"
               "    token_url: https://idp.example/t\n"
               "    token_ca_file: " FIX "ca.pem\n",
        NULL, "mailboxes[0].token_ca_file=\"" FIX "ca.pem\""},
    {"token_ca_file missing",
        DB MBX "    auth: xoauth2\n    client_id: abc\n"
               "    client_secret: s\n    refresh_token: r\n"
               "    token_url: https://idp.example/t\n"
               "    token_ca_file: /nonexistent/ca.pem\n",
        "t.yaml:12:20: mailboxes[0].token_ca_file: /nonexistent/ca.pem: No "
        "such file or directory",
        NULL},
    {"xoauth2 with a token file",
        DB MBX "    auth: xoauth2\n"
               "    token_file: " FIX "token.txt\n",
        NULL, "mailboxes[0].auth=xoauth2"},
    {"two mailboxes",
        DB MB1 "  - name: m2.b_c-d\n    host: 192.0.2.1\n    username: v\n"
               "    password: q\n    tls: starttls\n",
        NULL, "mailboxes[1].name=\"m2.b_c-d\"\nmailboxes[1].port=110"},
    {"flow style and comments",
        "# comment\n{database: {url: \"postgresql://h/d\"}, mailboxes: "
        "[{name: a, host: h, username: u, password: p}]}\n",
        NULL, "mailboxes[0].host=\"h\""},

    /* ---- YAML level ---- */
    {"empty file", "", "t.yaml: the file is empty", NULL},
    {"only comments", "# nothing here\n\n", "t.yaml: the file is empty", NULL},
    {"top level sequence", "- a\n- b\n",
        "t.yaml:1:1: the top level must be a mapping, got a sequence", NULL},
    {"top level scalar", "hello\n",
        "t.yaml:1:1: the top level must be a mapping, got a scalar", NULL},
    {"syntax error", "database:\n  url: x\n bad: y\n",
        "t.yaml:3:2: did not find expected key while parsing a block "
        "mapping started at line 1",
        NULL},
    {"unclosed flow sequence", "a: [1, 2\n",
        "t.yaml:2:1: did not find expected ',' or ']' while parsing a "
        "flow sequence started at line 1",
        NULL},
    {"YAML bomb of aliases",
        "a: &a [\"lol\", \"lol\", \"lol\"]\n"
        "b: &b [*a, *a, *a]\n"
        "c: &c [*b, *b, *b]\n",
        "t.yaml:1:4: anchors and aliases are not allowed\n"
        "t.yaml:2:4: anchors and aliases are not allowed\n"
        "t.yaml:2:8: anchors and aliases are not allowed\n"
        "t.yaml:2:12: anchors and aliases are not allowed\n"
        "t.yaml:2:16: anchors and aliases are not allowed\n"
        "t.yaml:3:4: anchors and aliases are not allowed\n"
        "t.yaml:3:8: anchors and aliases are not allowed\n"
        "t.yaml:3:12: anchors and aliases are not allowed\n"
        "t.yaml:3:16: anchors and aliases are not allowed",
        NULL},
    {"merge key alias", DB MB1 "defaults: &d {interval: 1m}\nx: *d\n",
        "t.yaml:8:11: anchors and aliases are not allowed\n"
        "t.yaml:9:4: anchors and aliases are not allowed",
        NULL},
    {"tags", DB MB1 "workers: !!int 4\n", "t.yaml:8:10: tags are not allowed",
        NULL},
    {"two documents", DB MB1 "---\nworkers: 2\n",
        "t.yaml:8:1: only one YAML document is allowed", NULL},
    {"non-UTF-8 byte", DB MB1 "workers: \xff\xfe\n",
        "t.yaml:8:10: invalid leading UTF-8 octet (byte 0xff)", NULL},
    {"truncated UTF-8 sequence", "a: \xc3\n",
        "t.yaml:1:5: invalid trailing UTF-8 octet (byte 0x0a)", NULL},
    {"binary junk", "\x01\x02\x03\x7f\x80junk",
        "t.yaml:1:1: control characters are not allowed (byte 0x01)", NULL},
    {"escaped NUL in a value", DB MB1 "workers: \"4\\0\"\n",
        "t.yaml:8:10: NUL characters are not allowed", NULL},
    {"deep nesting",
        "a: [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]"
        "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]\n",
        "t.yaml:1:35: nesting deeper than 32 levels", NULL},
    {"complex key", DB MB1 "? [a, b]\n: c\n",
        "t.yaml:8:3: keys must be scalars, got a sequence", NULL},

    /* ---- structure ---- */
    {"unknown key with suggestion", DB MB1 "workerz: 4\n",
        "t.yaml:8:1: workerz: unknown key (did you mean 'workers'?)", NULL},
    {"unknown key", DB MB1 "colour: blue\n", "t.yaml:8:1: colour: unknown key",
        NULL},
    {"unknown key in a mailbox", DB MB1 "    hots: x\n",
        "t.yaml:8:5: mailboxes[0].hots: unknown key (did you mean 'host'?)",
        NULL},
    {"duplicate key", DB MB1 "workers: 2\nworkers: 3\n",
        "t.yaml:9:1: workers: duplicate key (first at line 8)", NULL},
    {"duplicate mailbox name",
        DB MB1 "  - name: m1\n    host: h\n    username: u\n    password: p\n",
        "t.yaml:8:11: mailboxes[1].name: duplicate mailbox name 'm1' (first "
        "at line 4)",
        NULL},
    {"missing database", MB1,
        "t.yaml:1:1: database.url: required key is missing (or set "
        "database.url_file)",
        NULL},
    {"missing mailboxes", DB,
        "t.yaml:1:1: mailboxes: at least one mailbox is required", NULL},
    {"empty mailbox list", DB "mailboxes: []\n",
        "t.yaml:3:12: mailboxes: at least one mailbox is required", NULL},
    {"database is a scalar", "database: postgresql://h/d\n" MB1,
        "t.yaml:1:1: database.url: required key is missing (or set "
        "database.url_file)\n"
        "t.yaml:1:11: database: expected a mapping, got a scalar",
        NULL},
    {"mailboxes is a mapping", DB "mailboxes:\n  name: m1\n",
        "t.yaml:4:3: mailboxes: expected a sequence, got a mapping", NULL},
    {"mailbox entry is a scalar", DB "mailboxes:\n  - m1\n",
        "t.yaml:4:5: mailboxes[0]: expected a mapping, got a scalar", NULL},
    {"host is a sequence", DB MBX "    password: p\n    host: [a, b]\n",
        "t.yaml:8:5: mailboxes[0].host: duplicate key (first at line 5)", NULL},
    {"scalar expected",
        DB "mailboxes:\n  - name: m1\n    host: [a, b]\n"
           "    username: u\n    password: p\n",
        "t.yaml:5:11: mailboxes[0].host: expected a scalar, got a sequence",
        NULL},

    /* ---- database ---- */
    {"database url invalid", "database:\n  url: not a uri\n" MB1,
        "t.yaml:2:8: database.url: not a valid PostgreSQL URI or key=value "
        "connection string",
        NULL},
    {"database url and url_file",
        DB "  url_file: " FIX "database-url.txt\n" MB1,
        "t.yaml:2:8: database.url: cannot be combined with url_file", NULL},
    {"database url_file missing",
        "database:\n  url_file: /nonexistent/url\n" MB1,
        "t.yaml:2:13: database.url_file: /nonexistent/url: No such file or "
        "directory",
        NULL},
    {"batch_size out of range", DB "  batch_size: 0\n" MB1,
        "t.yaml:3:15: database.batch_size: 0 is out of range (1..10000)", NULL},
    {"migrate not a bool", DB "  migrate: maybe\n" MB1,
        "t.yaml:3:12: database.migrate: 'maybe' is not true or false", NULL},
    {"raw_max_bytes not a size", DB "  raw_max_bytes: lots\n" MB1,
        "t.yaml:3:18: database.raw_max_bytes: 'lots' is not a size (use e.g. "
        "512KiB, 1MiB)",
        NULL},
    {"raw_max_bytes too large", DB "  raw_max_bytes: 2GiB\n" MB1,
        "t.yaml:3:18: database.raw_max_bytes: 2GiB is out of range (0..1GiB)",
        NULL},

    /* ---- log, http, workers ---- */
    {"log level", DB MB1 "log:\n  level: loud\n",
        "t.yaml:9:10: log.level: 'loud' is not one of debug, info, warn or "
        "error",
        NULL},
    {"log format", DB MB1 "log:\n  format: xml\n",
        "t.yaml:9:11: log.format: 'xml' is not one of text or json", NULL},
    {"http listen without port", DB MB1 "http:\n  listen: \"9187\"\n",
        "t.yaml:9:11: http.listen: '9187' is not host:port or :port", NULL},
    {"http listen port 0", DB MB1 "http:\n  listen: \"127.0.0.1:0\"\n",
        "t.yaml:9:11: http.listen: port 0 is out of range (1..65535)", NULL},
    {"http listen bad host", DB MB1 "http:\n  listen: \"a b:80\"\n",
        "t.yaml:9:11: http.listen: 'a b:80' is not host:port or :port", NULL},
    {"workers zero", DB MB1 "workers: 0\n",
        "t.yaml:8:10: workers: 0 is out of range (1..64)", NULL},
    {"workers 65", DB MB1 "workers: 65\n",
        "t.yaml:8:10: workers: 65 is out of range (1..64)", NULL},
    {"workers not a number", DB MB1 "workers: four\n",
        "t.yaml:8:10: workers: 'four' is not an integer", NULL},
    {"workers is a mapping", DB MB1 "workers: {n: 4}\n",
        "t.yaml:8:10: workers: expected a scalar, got a mapping", NULL},

    /* ---- defaults ---- */
    {"interval too short", DB MB1 "defaults:\n  interval: 5s\n",
        "t.yaml:9:13: defaults.interval: 5s is out of range (10s..1d)", NULL},
    {"interval too long", DB MB1 "defaults:\n  interval: 2d\n",
        "t.yaml:9:13: defaults.interval: 2d is out of range (10s..1d)", NULL},
    {"bad duration", DB MB1 "defaults:\n  interval: 5 minutes\n",
        "t.yaml:9:13: defaults.interval: '5 minutes' is not a duration (use "
        "e.g. 30s, 5m, 1h, 2d)",
        NULL},
    {"negative duration", DB MB1 "defaults:\n  max_age: -1d\n",
        "t.yaml:9:12: defaults.max_age: '-1d' is not a duration (use e.g. "
        "30s, 5m, 1h, 2d)",
        NULL},
    {"jitter not below interval", DB MB1 "defaults:\n  jitter: 5m\n",
        "t.yaml:9:11: defaults.jitter: 5m must be less than interval (5m)",
        NULL},
    {"mailbox interval below inherited jitter", DB MB1 "    interval: 20s\n",
        "t.yaml:8:15: mailboxes[0].jitter: 30s must be less than interval "
        "(20s)",
        NULL},
    {"max_messages zero", DB MB1 "defaults:\n  max_messages: 0\n",
        "t.yaml:9:17: defaults.max_messages: 0 is out of range (1..100000)",
        NULL},
    {"max_message_bytes too small", DB MB1 "    max_message_bytes: 1KiB\n",
        "t.yaml:8:24: mailboxes[0].max_message_bytes: 1KiB is out of range "
        "(64KiB..1GiB)",
        NULL},
    {"bad size", DB MB1 "defaults:\n  max_message_bytes: 4 MB\n",
        "t.yaml:9:22: defaults.max_message_bytes: '4 MB' is not a size (use "
        "e.g. 512KiB, 1MiB)",
        NULL},
    {"after_processing", DB MB1 "defaults:\n  after_processing: archive\n",
        "t.yaml:9:21: defaults.after_processing: 'archive' is not one of "
        "delete or keep",
        NULL},
    {"keep_days", DB MB1 "defaults:\n  keep_days: 4000\n",
        "t.yaml:9:14: defaults.keep_days: 4000 is out of range (0..3650)",
        NULL},
    {"connect_timeout zero", DB MB1 "defaults:\n  connect_timeout: 0\n",
        "t.yaml:9:20: defaults.connect_timeout: 0 is out of range (1s..10m)",
        NULL},
    {"command_timeout", DB MB1 "defaults:\n  command_timeout: 2h\n",
        "t.yaml:9:20: defaults.command_timeout: 2h is out of range (1s..1h)",
        NULL},
    {"first_pass", DB MB1 "defaults:\n  first_pass: skip\n",
        "t.yaml:9:15: defaults.first_pass: 'skip' is not one of count or "
        "record_only",
        NULL},
    {"defaults is a sequence", DB MB1 "defaults: [1]\n",
        "t.yaml:8:11: defaults: expected a mapping, got a sequence", NULL},
    {"mailbox key in defaults", DB MB1 "defaults:\n  host: x\n",
        "t.yaml:9:3: defaults.host: unknown key", NULL},

    /* ---- extract ---- */
    {"bad header name", DB MB1 "extract:\n  campaign_header: X Campaign\n",
        "t.yaml:9:20: extract.campaign_header: 'X Campaign' is not a valid "
        "header name",
        NULL},
    {"bad extra header", DB MB1 "extract:\n  extra_headers: [X-Ok, \"X:No\"]\n",
        "t.yaml:9:25: extract.extra_headers[1]: 'X:No' is not a valid header "
        "name",
        NULL},
    {"extra_headers not a list", DB MB1 "extract:\n  extra_headers: X-One\n",
        "t.yaml:9:18: extract.extra_headers: expected a sequence, got a "
        "scalar",
        NULL},
    {"verp without domain", DB MB1 "extract:\n  verp_pattern: b+{local}@x\n",
        "t.yaml:9:17: extract.verp_pattern: 'b+{local}@x' must contain "
        "{local} and {domain} once each",
        NULL},
    {"verp without at", DB MB1 "extract:\n  verp_pattern: b+{local}={domain}\n",
        "t.yaml:9:17: extract.verp_pattern: 'b+{local}={domain}' must be "
        "local@domain with both placeholders in the local part",
        NULL},

    /* ---- suppression ---- */
    {"soft_threshold", DB MB1 "suppression:\n  soft_threshold: 0\n",
        "t.yaml:9:19: suppression.soft_threshold: 0 is out of range "
        "(1..1000)",
        NULL},
    {"soft_window", DB MB1 "suppression:\n  soft_window: 10m\n",
        "t.yaml:9:16: suppression.soft_window: 10m is out of range "
        "(1h..3650d)",
        NULL},
    {"override reason unknown",
        DB MB1 "suppression:\n  overrides:\n    - {reason: sad, action: "
               "never}\n",
        "t.yaml:10:16: suppression.overrides[0].reason: 'sad' is not a "
        "known bounce reason",
        NULL},
    {"override action and count",
        DB MB1 "suppression:\n  overrides:\n"
               "    - {reason: blocked, action: later}\n"
               "    - {reason: mailboxfull, action: hard_after}\n"
               "    - {reason: spamdetected, action: never, count: 2}\n"
               "    - {reason: blocked, action: never}\n"
               "    - {count: 2}\n",
        "t.yaml:10:33: suppression.overrides[0].action: 'later' is not one "
        "of hard_after or never\n"
        "t.yaml:11:7: suppression.overrides[1].count: required key is "
        "missing (action hard_after needs it)\n"
        "t.yaml:12:52: suppression.overrides[2].count: not allowed with "
        "action never\n"
        "t.yaml:13:16: suppression.overrides[3].reason: duplicate reason "
        "'blocked' (first at line 10)\n"
        "t.yaml:14:7: suppression.overrides[4].reason: required key is "
        "missing\n"
        "t.yaml:14:7: suppression.overrides[4].action: required key is "
        "missing",
        NULL},

    /* ---- mailboxes ---- */
    {"missing host and username",
        DB "mailboxes:\n  - name: m1\n    password: p\n",
        "t.yaml:4:5: mailboxes[0].host: required key is missing\n"
        "t.yaml:4:5: mailboxes[0].username: required key is missing",
        NULL},
    {"missing name",
        DB "mailboxes:\n  - host: h\n    username: u\n"
           "    password: p\n",
        "t.yaml:4:5: mailboxes[0].name: required key is missing", NULL},
    {"empty name",
        DB "mailboxes:\n  - name: \"\"\n    host: h\n"
           "    username: u\n    password: p\n",
        "t.yaml:4:11: mailboxes[0].name: '' is not a valid mailbox name (1 to "
        "64 of A-Z a-z 0-9 . _ -)",
        NULL},
    {"null username", DB MBX "    password: p\n    username:\n",
        "t.yaml:8:5: mailboxes[0].username: duplicate key (first at line "
        "6)",
        NULL},
    {"password with a line break is refused",
        DB MBX "    password: \"pa\\r\\nss\"\n",
        "t.yaml:7:15: mailboxes[0].password: holds a line break (CR or "
        "LF); no login can send it",
        NULL},
    {"empty username",
        DB "mailboxes:\n  - name: m\n    host: h\n"
           "    username: ~\n    password: p\n",
        "t.yaml:6:15: mailboxes[0].username: is empty", NULL},
    {"bad mailbox name",
        DB "mailboxes:\n  - name: a/b\n    host: h\n"
           "    username: u\n    password: p\n",
        "t.yaml:4:11: mailboxes[0].name: 'a/b' is not a valid mailbox name (1 "
        "to 64 of A-Z a-z 0-9 . _ -)",
        NULL},
    {"mailbox name too long",
        DB "mailboxes:\n  - name: "
           "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n"
           "    host: h\n    username: u\n    password: p\n",
        "t.yaml:4:11: mailboxes[0].name: "
        "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' "
        "is not a valid mailbox name (1 to 64 of A-Z a-z 0-9 . _ -)",
        NULL},
    {"bad host",
        DB "mailboxes:\n  - name: m\n    host: \"pop example\"\n"
           "    username: u\n    password: p\n",
        "t.yaml:5:11: mailboxes[0].host: 'pop example' is not a valid host "
        "name",
        NULL},
    {"port out of range", DB MB1 "    port: 70000\n",
        "t.yaml:8:11: mailboxes[0].port: 70000 is out of range (1..65535)",
        NULL},
    {"port zero", DB MB1 "    port: 0\n",
        "t.yaml:8:11: mailboxes[0].port: 0 is out of range (1..65535)", NULL},
    {"port not a number", DB MB1 "    port: pop3s\n",
        "t.yaml:8:11: mailboxes[0].port: 'pop3s' is not an integer", NULL},
    {"tls value", DB MB1 "    tls: yes\n",
        "t.yaml:8:10: mailboxes[0].tls: 'yes' is not one of implicit, "
        "starttls or none",
        NULL},
    {"ca_file missing", DB MB1 "    ca_file: /nonexistent/ca.pem\n",
        "t.yaml:8:14: mailboxes[0].ca_file: /nonexistent/ca.pem: No such "
        "file or directory",
        NULL},
    {"no password", DB MBX,
        "t.yaml:4:5: mailboxes[0].password: required key is missing (or set "
        "password_file)",
        NULL},
    {"null password", DB MBX "    password:\n",
        "t.yaml:4:5: mailboxes[0].password: required key is missing (or set "
        "password_file)",
        NULL},
    {"null database url", "database:\n  url:\n" MB1,
        "t.yaml:2:3: database.url: required key is missing (or set "
        "database.url_file)",
        NULL},
    {"null override count",
        DB MB1 "suppression:\n  overrides:\n    - reason: blocked\n"
               "      action: hard_after\n      count:\n",
        "t.yaml:10:7: suppression.overrides[0].count: required key is "
        "missing (action hard_after needs it)",
        NULL},
    {"empty ca_file", DB MB1 "    ca_file: \"\"\n",
        "t.yaml:8:14: mailboxes[0].ca_file: is empty", NULL},
    {"null password next to password_file",
        DB MBX "    password:\n    password_file: " FIX "password.txt\n", NULL,
        "mailboxes[0].password=\"********\""},
    {"password and password_file",
        DB MB1 "    password_file: " FIX "password.txt\n",
        "t.yaml:7:15: mailboxes[0].password: cannot be combined with "
        "password_file",
        NULL},
    {"password_file missing", DB MBX "    password_file: /nonexistent/pw\n",
        "t.yaml:7:20: mailboxes[0].password_file: /nonexistent/pw: No such "
        "file or directory",
        NULL},
    {"password_file empty", DB MBX "    password_file: " FIX "empty.txt\n",
        "t.yaml:7:20: mailboxes[0].password_file: " FIX
        "empty.txt: file is empty",
        NULL},
    {"password_file is a directory", DB MBX "    password_file: /\n",
        "t.yaml:7:20: mailboxes[0].password_file: /: Is a directory", NULL},
    {"auth value", DB MB1 "    auth: plain\n",
        "t.yaml:8:11: mailboxes[0].auth: 'plain' is not one of password, "
        "xoauth2 or apop",
        NULL},
    {"oauth keys with password auth", DB MB1 "    client_id: abc\n",
        "t.yaml:8:16: mailboxes[0].client_id: only valid with auth: xoauth2",
        NULL},
    {"password with xoauth2",
        DB MB1 "    auth: xoauth2\n    token_file: " FIX "token.txt\n",
        "t.yaml:7:15: mailboxes[0].password: only valid with auth: password",
        NULL},
    {"xoauth2 without credentials", DB MBX "    auth: xoauth2\n",
        "t.yaml:4:5: mailboxes[0].client_id: required with auth: xoauth2 "
        "unless token_file is set",
        NULL},
    {"xoauth2 client_id alone", DB MBX "    auth: xoauth2\n    client_id: x\n",
        "t.yaml:4:5: mailboxes[0].client_secret: required with client_id (or "
        "set client_secret_file)\n"
        "t.yaml:4:5: mailboxes[0].refresh_token: required with client_id (or "
        "set refresh_token_file or scope)\n"
        "t.yaml:4:5: mailboxes[0].token_url: required with client_id when "
        "provider is not set",
        NULL},
    {"xoauth2 secret and secret file",
        DB MBX "    auth: xoauth2\n    provider: google\n    client_id: x\n"
               "    client_secret: s\n    client_secret_file: " FIX
               "client-secret.txt\n    refresh_token: r\n",
        "t.yaml:10:20: mailboxes[0].client_secret: cannot be combined with "
        "client_secret_file",
        NULL},
    {"token_url not https",
        DB MBX "    auth: xoauth2\n    client_id: x\n    client_secret: s\n"
               "    scope: a\n    token_url: http://idp/t\n",
        "t.yaml:11:16: mailboxes[0].token_url: 'http://idp/t' is not an "
        "https:// URL",
        NULL},
    {"provider value",
        DB MBX "    auth: xoauth2\n    provider: yahoo\n"
               "    token_file: " FIX "token.txt\n",
        "t.yaml:8:15: mailboxes[0].provider: 'yahoo' is not one of none, "
        "microsoft or google",
        NULL},

    /* ---- environment ---- */
    {"unset environment variable",
        "database:\n  url: ${CFGTEST_UNSET_VARIABLE}\n" MB1,
        "t.yaml:2:8: database.url: environment variable "
        "CFGTEST_UNSET_VARIABLE is not set",
        NULL},
    {"bad variable name", DB MB1 "extract:\n  list_header: ${1X}\n",
        "t.yaml:9:16: extract.list_header: invalid variable name in '${1X}'",
        NULL},
    {"unterminated variable", DB MB1 "extract:\n  list_header: ${ABC\n",
        "t.yaml:9:16: extract.list_header: unterminated ${ in value", NULL},
};

static void
t_rows(void)
{
	size_t i;

	setenv("CFGTEST_PART", "Camp", 1);
	setenv("CFGTEST_URL", "postgresql://envuser:envpw@db.example/b", 1);
	unsetenv("CFGTEST_UNSET_VARIABLE");
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const char *file = strstr(rows[i].yaml, "password.txt\n    ca_")
		    ? FIX "inline.yaml"
		    : "t.yaml";
		test_begin("config: %s", rows[i].name);
		run_row(file, rows[i].yaml, strlen(rows[i].yaml), rows[i].want,
		    rows[i].checks);
		test_end();
	}
}

/* Secrets read from files, without their trailing newline. */
static void
t_secret_files(void)
{
	static const char text[] =
	    "database:\n  url_file: " FIX "database-url.txt\n"
	    "mailboxes:\n"
	    "  - {name: a, host: h, username: u, password_file: " FIX
	    "password.txt}\n"
	    "  - {name: b, host: h, username: u, password_file: " FIX
	    "crlf.txt}\n"
	    "  - {name: c, host: h, username: u, auth: xoauth2, provider: "
	    "microsoft, client_id: i, client_secret_file: " FIX
	    "client-secret.txt, refresh_token_file: " FIX
	    "refresh-token.txt}\n";
	struct config *cfg = NULL;
	struct config_errors errs = {NULL, 0};
	char *got;

	test_begin("config: secrets from files");
	CHECK_INT(config_from_string("t.yaml", text, strlen(text), &cfg, &errs),
	    0);
	got = join_errors(&errs);
	CHECK_STR(got, "");
	free(got);
	if (cfg != NULL) {
		CHECK_STR(cfg->database_url,
		    "postgresql://fileuser:filepw@localhost/bouncer");
		CHECK_STR(cfg->mailboxes[0].password, "filepass");
		CHECK_STR(cfg->mailboxes[1].password, "crlfpass");
		CHECK_STR(cfg->mailboxes[2].client_secret,
		    "client-secret-from-file");
		CHECK_STR(cfg->mailboxes[2].refresh_token,
		    "refresh-token-from-file");
		CHECK(config_mailbox(cfg, "b") == &cfg->mailboxes[1],
		    "look-up");
		CHECK(config_mailbox(cfg, "zz") == NULL, "look-up of absent");
	}
	config_errors_free(&errs);
	config_free(&cfg);
	test_end();
}

static char *
dump_to_string(const struct config *cfg)
{
	char *data = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&data, &len);

	config_dump(cfg, fp);
	fclose(fp);
	return data;
}

/* The dump masks every secret and is itself a valid config that loads to
 * the same dump. */
static void
t_dump(void)
{
	static const char text[] =
	    "database:\n  url: postgresql://user:TOPSECRET1@h/d\n"
	    "suppression:\n  overrides: [{reason: blocked, action: never}]\n"
	    "extract:\n  extra_headers: [X-A, \"X-\\\"q\"]\n"
	    "mailboxes:\n"
	    "  - {name: a, host: h, username: u, password: TOPSECRET2}\n"
	    "  - {name: b, host: h, username: u, auth: xoauth2, provider: "
	    "google, client_id: i, client_secret: TOPSECRET3, refresh_token: "
	    "TOPSECRET4}\n"
	    "  - {name: c, host: h, username: u, password_file: " FIX
	    "password.txt}\n";
	struct config *cfg = NULL, *again = NULL;
	struct config_errors errs = {NULL, 0};
	char *d1 = NULL, *d2 = NULL, *got;

	test_begin("config: dump masks secrets and reloads");
	CHECK_INT(config_from_string("t.yaml", text, strlen(text), &cfg, &errs),
	    0);
	if (cfg == NULL)
		goto out;
	d1 = dump_to_string(cfg);
	CHECK(strstr(d1, "TOPSECRET") == NULL, "secret in dump:\n%s", d1);
	CHECK(strstr(d1, "filepass") == NULL, "file secret in dump");
	CHECK(strstr(d1,
	          "url: \"user='user' password='********' dbname='d' "
	          "host='h'\"") != NULL,
	    "masked url missing:\n%s", d1);
	CHECK(strstr(d1, "    password_file: \"" FIX "password.txt\"\n") !=
	        NULL,
	    "password_file path missing:\n%s", d1);
	CHECK_INT(config_from_string("dump.yaml", d1, strlen(d1), &again,
	              &errs),
	    0);
	got = join_errors(&errs);
	CHECK_STR(got, "");
	free(got);
	if (again != NULL) {
		d2 = dump_to_string(again);
		CHECK_STR(d2, d1);
	}
out:
	free(d1);
	free(d2);
	config_errors_free(&errs);
	config_free(&cfg);
	config_free(&again);
	test_end();
}

/* Values longer than any fixed buffer are dumped whole. */
static void
t_long_values(void)
{
	struct config *cfg = NULL;
	struct config_errors errs = {NULL, 0};
	char *name = xcalloc(1, 3001), *text, *d = NULL, *want;

	test_begin("config: long values are dumped whole");
	memset(name, 'd', 3000);
	text = xasprintf("database:\n  url: postgresql://u:pw@h/%s\n"
	                 "extract:\n  extra_headers: [%s, %s]\n" MB1,
	    name, name + 2924, name + 2924);
	CHECK_INT(config_from_string("t.yaml", text, strlen(text), &cfg, &errs),
	    0);
	if (cfg != NULL) {
		d = dump_to_string(cfg);
		want =
		    xasprintf("url: \"user='u' password='********' dbname='%s' "
		              "host='h'\"\n",
		        name);
		CHECK(strstr(d, want) != NULL, "long url cut");
		free(want);
		want = xasprintf("extra_headers: [\"%s\", \"%s\"]\n",
		    name + 2924, name + 2924);
		CHECK(strstr(d, want) != NULL, "header list cut");
		free(want);
	}
	free(d);
	free(text);
	free(name);
	config_errors_free(&errs);
	config_free(&cfg);
	test_end();
}

static void
t_restart_changes(void)
{
	static const char a[] = DB MB1 "workers: 2\nlog:\n  level: info\n";
	static const char b[] =
	    "database:\n  url: postgresql://u:pw2@localhost/"
	    "db\n" MB1 "workers: 3\nlog:\n  level: debug\n"
	    "defaults:\n  interval: 1m\n";
	struct config *ca = NULL, *cb = NULL;
	struct config_errors errs = {NULL, 0};
	char *got;

	test_begin("config: keys that need a restart");
	CHECK_INT(config_from_string("a.yaml", a, strlen(a), &ca, NULL), 0);
	CHECK_INT(config_from_string("b.yaml", b, strlen(b), &cb, NULL), 0);
	if (ca != NULL && cb != NULL) {
		CHECK_INT(config_restart_changes(ca, cb, &errs), 2);
		got = join_errors(&errs);
		CHECK_STR(got,
		    "database.url: restart needed to change it\n"
		    "workers: restart needed to change it");
		free(got);
		CHECK_INT(config_restart_changes(ca, ca, NULL), 0);
	}
	CHECK_INT(config_key_reloadable("defaults.interval"), 1);
	CHECK_INT(config_key_reloadable("mailboxes[].host"), 1);
	CHECK_INT(config_key_reloadable("workers"), 0);
	CHECK_INT(config_key_reloadable("no.such.key"), 0);
	config_errors_free(&errs);
	config_free(&ca);
	config_free(&cb);
	test_end();
}

static void
t_files(void)
{
	struct config *cfg = NULL;
	struct config_errors errs = {NULL, 0};
	char *big, *got, path[] = "/tmp/test_config.XXXXXX";
	size_t n = 10 * 1024 * 1024;
	FILE *fp;
	int fd;

	test_begin("config: 10 MB file is refused");
	big = xmalloc(n);
	memset(big, '#', n);
	CHECK_INT(config_from_string("t.yaml", big, n, &cfg, &errs), -1);
	got = join_errors(&errs);
	CHECK_STR(got, "t.yaml: larger than 1048576 bytes");
	free(got);
	config_errors_free(&errs);
	fd = mkstemp(path);
	CHECK(fd >= 0, "mkstemp");
	fp = fdopen(fd, "w");
	fwrite(big, 1, n, fp);
	fclose(fp);
	CHECK_INT(config_load(path, &cfg, &errs), -1);
	got = join_errors(&errs);
	char *want = xasprintf("%s: larger than 1048576 bytes", path);
	CHECK_STR(got, want);
	free(want);
	free(got);
	config_errors_free(&errs);
	unlink(path);
	free(big);
	test_end();

	test_begin("config: missing file");
	CHECK_INT(config_load("/nonexistent/bouncerd.yaml", &cfg, &errs), -1);
	got = join_errors(&errs);
	CHECK_STR(got, "/nonexistent/bouncerd.yaml: No such file or directory");
	free(got);
	config_errors_free(&errs);
	test_end();

	test_begin("config: fixture files");
	CHECK_INT(config_load(FIX "full.yaml", &cfg, &errs), 0);
	got = join_errors(&errs);
	CHECK_STR(got, "");
	free(got);
	config_errors_free(&errs);
	if (cfg != NULL) {
		CHECK_INT(cfg->n_mailboxes, 3);
		CHECK_STR(cfg->mailboxes[0].password, "p$ss\"word");
		CHECK_INT(cfg->mailboxes[0].poll.interval_ms, 30000);
		CHECK_INT(cfg->mailboxes[0].poll.max_messages, 1000);
		CHECK_INT(cfg->mailboxes[1].auth, CONFIG_AUTH_XOAUTH2);
		CHECK_INT(cfg->mailboxes[2].tls, CONFIG_TLS_NONE);
		CHECK_INT(cfg->mailboxes[2].port, 1110);
		CHECK_INT(cfg->overrides[0].count, 10);
		CHECK_INT(cfg->overrides[1].action, CONFIG_OVERRIDE_NEVER);
		CHECK_INT(cfg->log_format, LOG_JSON);
		CHECK_INT(cfg->defaults.max_message_bytes, 8 << 20);
		CHECK_INT(cfg->n_extra_headers, 2);
	}
	config_free(&cfg);
	/* 5 anchors and 36 aliases: refused, never expanded. */
	CHECK_INT(config_load(FIX "bomb.yaml", &cfg, &errs), -1);
	CHECK_INT(errs.count, 41);
	if (errs.count > 0)
		CHECK_STR(errs.items[0],
		    FIX "bomb.yaml:1:4: anchors and aliases are not allowed");
	config_errors_free(&errs);
	test_end();

	test_begin("config: too many errors are cut off");
	{
		char *text = xcalloc(1, 200 * 16 + 1);
		size_t used = 0;
		for (int i = 0; i < 150; i++)
			used += (size_t)snprintf(text + used,
			    200 * 16 + 1 - used, "junk%03d: 1\n", i);
		CHECK_INT(config_from_string("t.yaml", text, used, &cfg, &errs),
		    -1);
		CHECK_INT(errs.count, CONFIG_MAX_ERRORS + 1);
		if (errs.count == CONFIG_MAX_ERRORS + 1) {
			CHECK_STR(errs.items[0],
			    "t.yaml:1:1: junk000: unknown key");
			CHECK_STR(errs.items[CONFIG_MAX_ERRORS],
			    "t.yaml: too many errors, 52 more not shown");
		}
		config_errors_free(&errs);
		free(text);
	}
	test_end();
}

/* The key list, its defaults and the example config agree. */
static void
t_documented_keys(void)
{
	const char *const *names = config_key_names();
	char *doc = NULL, *got;
	size_t len = 0, i, j;
	struct err err = {""};
	struct config *cfg = NULL;
	struct config_errors errs = {NULL, 0};

	test_begin("config: key list");
	for (i = 0; names[i] != NULL; i++)
		for (j = 0; j < i; j++)
			CHECK(strcmp(names[i], names[j]) != 0, "dup %s",
			    names[i]);
	CHECK(i >= 50, "only %zu keys", i);
	static const char *const must[] = {"database.url", "database.url_file",
	    "log.level", "http.listen", "workers", "defaults.interval",
	    "extract.extra_headers", "suppression.overrides[].count",
	    "mailboxes[].password_file", "mailboxes[].max_age", NULL};
	for (i = 0; must[i] != NULL; i++) {
		for (j = 0; names[j] != NULL; j++)
			if (strcmp(names[j], must[i]) == 0)
				break;
		CHECK(names[j] != NULL, "%s not listed", must[i]);
	}
	CHECK_STR(config_key_default("defaults.interval"), "5m");
	CHECK_STR(config_key_default("mailboxes[].tls"), "implicit");
	CHECK_STR(config_key_default("mailboxes[].host"), "");
	CHECK(config_key_default("nope") == NULL, "unknown key default");
	test_end();

	test_begin("config: config/bouncerd.yaml documents every key");
	if (read_file("config/bouncerd.yaml", CONFIG_MAX_FILE_BYTES, &doc, &len,
	        &err) != 0) {
		test_fail_at(__FILE__, __LINE__, "%s", err.msg);
	} else {
		for (i = 0; names[i] != NULL; i++) {
			const char *leaf = strrchr(names[i], '.');
			const char *def = config_key_default(names[i]);
			char *want;
			leaf = leaf ? leaf + 1 : names[i];
			if (def != NULL && def[0] != '\0')
				want = xasprintf(" %s: %s", leaf, def);
			else
				want = xasprintf(" %s:", leaf);
			want[0] = '\n';
			if (strstr(doc, want) == NULL &&
			    (want[0] = ' ', strstr(doc, want) == NULL))
				test_fail_at(__FILE__, __LINE__,
				    "'%s' (default) not in "
				    "config/bouncerd.yaml",
				    want + 1);
			free(want);
		}
	}
	test_end();

	test_begin("config: README.md documents every key");
	free(doc);
	doc = NULL;
	if (read_file("README.md", CONFIG_MAX_FILE_BYTES, &doc, &len, &err) !=
	        0 ||
	    strstr(doc, "## Configuration") == NULL) {
		test_skip("README.md has no configuration section yet");
	} else {
		for (i = 0; names[i] != NULL; i++) {
			char *want = xasprintf("`%s`", names[i]);
			if (strstr(doc, want) == NULL)
				test_fail_at(__FILE__, __LINE__,
				    "%s not in README.md", want);
			free(want);
		}
	}
	test_end();

	test_begin("config: config/bouncerd.yaml loads");
	setenv("BOUNCERD_DATABASE_URL", "postgresql://b:pw@localhost/b", 1);
	setenv("BOUNCERD_POP3_PASSWORD", "pop3pw", 1);
	CHECK_INT(config_load("config/bouncerd.yaml", &cfg, &errs), 0);
	got = join_errors(&errs);
	CHECK_STR(got, "");
	free(got);
	if (cfg != NULL) {
		CHECK_INT(cfg->n_mailboxes, 1);
		CHECK_STR(cfg->mailboxes[0].password, "pop3pw");
		CHECK_INT(cfg->defaults.interval_ms, 300000);
		CHECK_INT(cfg->mailboxes[0].port, 995);
	}
	config_errors_free(&errs);
	config_free(&cfg);
	free(doc);
	test_end();
}

/* Random bytes and random mutations of a valid file never crash and
 * always give either a config or at least one error. */
static void
t_junk(void)
{
	static const char base[] = DB MB1 "defaults: {interval: 1m}\n"
	                                  "extract: {extra_headers: [X-A]}\n";
	uint64_t seed = 0x2545f4914f6cdd1dULL;
	char buf[sizeof(base) + 64];
	int i, bad = 0;

	test_begin("config: 3000 junk and mutated inputs");
	for (i = 0; i < 3000; i++) {
		struct config *cfg = NULL;
		struct config_errors errs = {NULL, 0};
		size_t len, k;
		int rc;

		memcpy(buf, base, sizeof(base));
		len = sizeof(base) - 1;
		for (k = 0; k < 1 + (size_t)(i % 8); k++) {
			seed ^= seed << 13;
			seed ^= seed >> 7;
			seed ^= seed << 17;
			if (i < 1000)
				buf[seed % len] = (char)(seed >> 40);
			else
				buf[(seed >> 8) % len] =
				    "{}[]&*!:-,\"'\n #$%|>"[(seed >> 32) % 19];
		}
		rc = config_from_string("t.yaml", buf, len, &cfg, &errs);
		if ((rc == 0) != (cfg != NULL) || (rc != 0 && errs.count == 0))
			bad++;
		config_errors_free(&errs);
		config_free(&cfg);
	}
	CHECK_INT(bad, 0);
	test_end();
}

int
main(void)
{
	t_rows();
	t_secret_files();
	t_dump();
	t_long_values();
	t_restart_changes();
	t_files();
	t_documented_keys();
	t_junk();
	return test_done();
}
