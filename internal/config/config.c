/*
 * config.c - YAML configuration: libyaml events -> a small positioned tree
 * -> struct config, driven by one key table (type, default, range, secret,
 * restart-only).  Anchors, aliases, tags and extra documents are refused
 * while building the tree, so hostile input costs at most its own size
 * (capped at CONFIG_MAX_FILE_BYTES).  Every error carries file:line:col.
 */
#include "config/config.h"

#include <ctype.h>
#include <errno.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "base/buf.h"
#include "decode/classify.h"
#include "base/util.h"

#define MAX_DEPTH 32
#define MAX_SECRET_FILE (64 * 1024)
#define MAX_VALUE_BYTES (64 * 1024)
#define MASK "********"

_Static_assert(sizeof(enum config_tls) == sizeof(int), "enum size");
_Static_assert(sizeof(enum log_level) == sizeof(int), "enum size");

/* ---- positioned YAML tree ---- */

enum nkind { N_SCALAR, N_MAP, N_SEQ };

struct node {
	enum nkind kind;
	int plain; /* plain scalar: may be null */
	char *val; /* scalar text, NUL-terminated */
	int line, col; /* 1-based */
	struct node **kid; /* map: key, value, key, value ... */
	size_t n, alloc;
};

static void
node_free(struct node *n)
{
	size_t i;

	if (n == NULL)
		return;
	for (i = 0; i < n->n; i++)
		node_free(n->kid[i]);
	free(n->kid);
	free(n->val);
	free(n);
}

static void
node_add(struct node *parent, struct node *kid)
{
	if (parent->n == parent->alloc) {
		parent->alloc = parent->alloc ? parent->alloc * 2 : 8;
		parent->kid =
		    xrealloc(parent->kid, parent->alloc * sizeof(*parent->kid));
	}
	parent->kid[parent->n++] = kid;
}

static int
node_is_null(const struct node *n)
{
	return n == NULL ||
	    (n->kind == N_SCALAR && n->plain &&
	        (n->val[0] == '\0' || strcmp(n->val, "~") == 0 ||
	            strcmp(n->val, "null") == 0 ||
	            strcmp(n->val, "Null") == 0 ||
	            strcmp(n->val, "NULL") == 0));
}

static const char *
kind_name(const struct node *n)
{
	switch (n->kind) {
	case N_MAP:
		return "a mapping";
	case N_SEQ:
		return "a sequence";
	default:
		return "a scalar";
	}
}

/* Value node of key in a mapping; NULL if absent. */
static const struct node *
map_get(const struct node *map, const char *key)
{
	size_t i;

	if (map == NULL || map->kind != N_MAP)
		return NULL;
	for (i = 0; i + 1 < map->n; i += 2)
		if (map->kid[i]->kind == N_SCALAR &&
		    strcmp(map->kid[i]->val, key) == 0)
			return map->kid[i + 1];
	return NULL;
}

/* 1 if key is present with a value (a null value counts as absent). */
static int
given(const struct node *map, const char *key)
{
	return !node_is_null(map_get(map, key));
}

/* ---- error collection ---- */

struct erec {
	int line, col;
	size_t seq;
	char *msg;
};

struct ctx {
	const char *name; /* file name for messages */
	char *dir; /* for relative file names; NULL: as given */
	struct config *cfg;
	struct erec *errs;
	size_t nerr, aerr, dropped;
	const char *text;
	size_t len;
};

static void
verr_at(struct ctx *c, int line, int col, const char *path, const char *fmt,
    va_list ap)
{
	char msg[512], head[600];
	struct erec *e;

	if (c->nerr >= CONFIG_MAX_ERRORS) {
		c->dropped++;
		return;
	}
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (line > 0)
		snprintf(head, sizeof(head), "%s:%d:%d: ", c->name, line, col);
	else
		snprintf(head, sizeof(head), "%s: ", c->name);
	if (c->nerr == c->aerr) {
		c->aerr = c->aerr ? c->aerr * 2 : 8;
		c->errs = xrealloc(c->errs, c->aerr * sizeof(*c->errs));
	}
	e = &c->errs[c->nerr];
	e->line = line;
	e->col = col;
	e->seq = c->nerr;
	if (path != NULL && path[0] != '\0')
		e->msg = xasprintf("%s%s: %s", head, path, msg);
	else
		e->msg = xasprintf("%s%s", head, msg);
	c->nerr++;
}

static void __attribute__((format(printf, 5, 6)))
err_at(struct ctx *c, int line, int col, const char *path, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	verr_at(c, line, col, path, fmt, ap);
	va_end(ap);
}

static void __attribute__((format(printf, 4, 5))) err_node(struct ctx *c,
    const struct node *n, const char *path, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	verr_at(c, n ? n->line : 0, n ? n->col : 0, path, fmt, ap);
	va_end(ap);
}

static int
erec_cmp(const void *a, const void *b)
{
	const struct erec *x = a, *y = b;

	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	if (x->col != y->col)
		return x->col < y->col ? -1 : 1;
	return x->seq < y->seq ? -1 : (x->seq > y->seq);
}

/* Moves the collected errors, in file order, into errs. */
static void
flush_errors(struct ctx *c, struct config_errors *errs)
{
	size_t i, extra = c->dropped ? 1 : 0;

	if (c->nerr > 0)
		qsort(c->errs, c->nerr, sizeof(*c->errs), erec_cmp);
	if (errs == NULL) {
		for (i = 0; i < c->nerr; i++)
			free(c->errs[i].msg);
	} else {
		errs->items = xrealloc(errs->items,
		    (errs->count + c->nerr + extra) * sizeof(*errs->items));
		for (i = 0; i < c->nerr; i++)
			errs->items[errs->count++] = c->errs[i].msg;
		if (extra)
			errs->items[errs->count++] =
			    xasprintf("%s: too many errors, %zu more not shown",
			        c->name, c->dropped);
	}
	free(c->errs);
	c->errs = NULL;
	c->nerr = c->aerr = c->dropped = 0;
}

void
config_errors_free(struct config_errors *errs)
{
	size_t i;

	if (errs == NULL)
		return;
	for (i = 0; i < errs->count; i++)
		free(errs->items[i]);
	free(errs->items);
	errs->items = NULL;
	errs->count = 0;
}

/* ---- libyaml events -> tree ---- */

static void
parser_error(struct ctx *c, yaml_parser_t *p)
{
	const char *problem = p->problem ? p->problem : "syntax error";

	if (p->error == YAML_MEMORY_ERROR) {
		err_at(c, 0, 0, NULL, "out of memory while parsing");
	} else if (p->error == YAML_READER_ERROR) {
		size_t off = p->problem_offset, i;
		int line = 1, col = 1;

		for (i = 0; i < off && i < c->len; i++) {
			if (c->text[i] == '\n') {
				line++;
				col = 1;
			} else {
				col++;
			}
		}
		if (p->problem_value >= 0)
			err_at(c, line, col, NULL, "%s (byte 0x%02x)", problem,
			    (unsigned)p->problem_value & 0xff);
		else
			err_at(c, line, col, NULL, "%s", problem);
	} else if (p->context != NULL) {
		err_at(c, (int)p->problem_mark.line + 1,
		    (int)p->problem_mark.column + 1, NULL,
		    "%s %s started at line %d", problem, p->context,
		    (int)p->context_mark.line + 1);
	} else {
		err_at(c, (int)p->problem_mark.line + 1,
		    (int)p->problem_mark.column + 1, NULL, "%s", problem);
	}
}

static struct node *
node_new(enum nkind kind, const yaml_event_t *ev)
{
	struct node *n = xcalloc(1, sizeof(*n));

	n->kind = kind;
	n->line = (int)ev->start_mark.line + 1;
	n->col = (int)ev->start_mark.column + 1;
	return n;
}

/* Builds the tree; NULL with errors recorded (or for an empty stream). */
static struct node *
build_tree(struct ctx *c, int *bad)
{
	yaml_parser_t p;
	yaml_event_t ev;
	struct node *stack[MAX_DEPTH + 1], *root = NULL, *n;
	int depth = 0, docs = 0, done = 0;
	const yaml_char_t *anchor, *tag;

	*bad = 0;
	if (!yaml_parser_initialize(&p)) {
		err_at(c, 0, 0, NULL, "out of memory");
		*bad = 1;
		return NULL;
	}
	yaml_parser_set_input_string(&p, (const unsigned char *)c->text,
	    c->len);
	while (!done) {
		if (!yaml_parser_parse(&p, &ev)) {
			parser_error(c, &p);
			*bad = 1;
			break;
		}
		n = NULL;
		anchor = tag = NULL;
		switch (ev.type) {
		case YAML_STREAM_END_EVENT:
			done = 1;
			break;
		case YAML_DOCUMENT_START_EVENT:
			if (++docs > 1) {
				err_at(c, (int)ev.start_mark.line + 1,
				    (int)ev.start_mark.column + 1, NULL,
				    "only one YAML document is allowed");
				*bad = 1;
				done = 1;
			}
			break;
		case YAML_ALIAS_EVENT:
			err_at(c, (int)ev.start_mark.line + 1,
			    (int)ev.start_mark.column + 1, NULL,
			    "anchors and aliases are not allowed");
			*bad = 1;
			n = node_new(N_SCALAR, &ev);
			n->plain = 1;
			n->val = xstrdup("");
			break;
		case YAML_SCALAR_EVENT:
			anchor = ev.data.scalar.anchor;
			tag = ev.data.scalar.tag;
			n = node_new(N_SCALAR, &ev);
			n->plain =
			    ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
			n->val = xstrndup((const char *)ev.data.scalar.value,
			    ev.data.scalar.length);
			if (strlen(n->val) != ev.data.scalar.length) {
				err_node(c, n, NULL,
				    "NUL characters are not allowed");
				*bad = 1;
			}
			break;
		case YAML_SEQUENCE_START_EVENT:
		case YAML_MAPPING_START_EVENT:
			if (ev.type == YAML_SEQUENCE_START_EVENT) {
				anchor = ev.data.sequence_start.anchor;
				tag = ev.data.sequence_start.tag;
				n = node_new(N_SEQ, &ev);
			} else {
				anchor = ev.data.mapping_start.anchor;
				tag = ev.data.mapping_start.tag;
				n = node_new(N_MAP, &ev);
			}
			break;
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT:
			if (depth > 0)
				depth--;
			break;
		default:
			break;
		}
		if (anchor != NULL) {
			err_node(c, n, NULL,
			    "anchors and aliases are not allowed");
			*bad = 1;
		}
		if (tag != NULL) {
			err_node(c, n, NULL, "tags are not allowed");
			*bad = 1;
		}
		if (n != NULL) {
			if (depth > 0)
				node_add(stack[depth - 1], n);
			else if (root == NULL)
				root = n;
			else {
				node_free(n); /* cannot happen: one document */
				n = NULL;
			}
			if (n != NULL && n->kind != N_SCALAR) {
				if (depth == MAX_DEPTH) {
					err_node(c, n, NULL,
					    "nesting deeper than %d levels",
					    MAX_DEPTH);
					*bad = 1;
					done = 1;
				} else {
					stack[depth++] = n;
				}
			}
		}
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&p);
	return root;
}

/* ---- key table ---- */

enum ktype {
	K_STR,
	K_INT,
	K_BOOL,
	K_DUR,
	K_SIZE,
	K_ENUM,
	K_STRLIST,
	K_MAP, /* nested mapping, fields at base + off */
	K_INLINE, /* keys of sub accepted at this level */
	K_LIST, /* sequence of mappings of sub */
};

#define F_REQ 0x01 /* must be present and non-empty */
#define F_SECRET 0x02 /* masked in dumps */
#define F_RESTART 0x04 /* cannot change on reload */
#define F_FILE 0x08 /* a file name that must be readable */
#define F_LOADS 0x10 /* file whose content goes into aux */
#define F_URL 0x20 /* libpq URL: mask only the password */

struct table;

typedef int (*check_fn)(const char *v, char *msg, size_t n);

struct key {
	const char *name;
	enum ktype type;
	size_t off;
	const char *def; /* default as config text; NULL: none */
	int64_t min, max; /* K_INT, K_DUR (ms), K_SIZE (bytes) */
	const char *const *choices; /* K_ENUM */
	unsigned flags;
	const struct table *sub; /* K_MAP, K_INLINE, K_LIST */
	size_t aux; /* K_STRLIST/K_LIST: count; F_LOADS: target */
	const char *excl; /* sibling key that must not be set too */
	check_fn check;
};

struct table {
	const struct key *keys;
	size_t n;
	size_t elem_size; /* K_LIST element */
	void (*init)(struct ctx *c, void *elem);
	void (*post)(struct ctx *c, const struct node *map, void *base,
	    const char *path, const struct node *where);
	/* 1 if key k does not apply to this element (left out of dumps). */
	int (*hide)(const void *base, const char *key);
};

#define FIELD(base, off, type) ((type *)(void *)((char *)(base) + (off)))
#define CFIELD(base, off, type) \
	((const type *)(const void *)((const char *)(base) + (off)))
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static const char *const tls_names[] = {"implicit", "starttls", "none", NULL};
static const char *const after_names[] = {"delete", "keep", NULL};
static const char *const first_names[] = {"count", "record_only", NULL};
static const char *const auth_names[] = {"password", "xoauth2", "apop", NULL};
static const char *const provider_names[] = {"none", "microsoft", "google",
    NULL};
static const char *const action_names[] = {"hard_after", "never", NULL};
static const char *const level_names[] = {"debug", "info", "warn", "error",
    NULL};
static const char *const format_names[] = {"text", "json", NULL};

#define SEC 1000LL
#define MIN (60 * SEC)
#define HOUR (60 * MIN)
#define DAY (24 * HOUR)
#define KIB 1024LL
#define MIB (1024 * KIB)
#define GIB (1024 * MIB)

/* ---- value checks (string syntax) ---- */

static int
name_char(unsigned char ch)
{
	return isalnum(ch) || ch == '.' || ch == '_' || ch == '-';
}

static int
host_char(unsigned char ch)
{
	return isalnum(ch) || (ch != '\0' && strchr(".-_:[]", ch) != NULL);
}

static int
header_char(unsigned char ch)
{
	return ch >= 33 && ch <= 126 && ch != ':';
}

/* 0 if v has 1..max bytes, each accepted by ok; else -1 and msg says
 * "'v' is not WHAT". */
static int
check_token(const char *v, size_t max, int (*ok)(unsigned char),
    const char *what, char *msg, size_t n)
{
	size_t len = strlen(v), i;

	for (i = 0; i < len && ok((unsigned char)v[i]); i++)
		;
	if (len == 0 || len > max || i < len) {
		snprintf(msg, n, "'%s' is not %s", v, what);
		return -1;
	}
	return 0;
}

static int
check_name(const char *v, char *msg, size_t n)
{
	return check_token(v, 64, name_char,
	    "a valid mailbox name (1 to 64 of A-Z a-z 0-9 . _ -)", msg, n);
}

static int
check_host(const char *v, char *msg, size_t n)
{
	return check_token(v, 253, host_char, "a valid host name", msg, n);
}

static int
check_header(const char *v, char *msg, size_t n)
{
	return check_token(v, 76, header_char, "a valid header name", msg, n);
}

static int
check_header_opt(const char *v, char *msg, size_t n)
{
	return v[0] == '\0' ? 0 : check_header(v, msg, n);
}

static int
check_port(const char *s, char *msg, size_t n)
{
	struct err err = {""};
	int64_t port;

	if (parse_int64(s, 1, 65535, &port, &err) != 0) {
		snprintf(msg, n, "port %s", err.msg);
		return -1;
	}
	return 0;
}

static int
check_listen(const char *v, char *msg, size_t n)
{
	const char *colon = strrchr(v, ':');
	size_t hlen, i;

	if (v[0] == '\0')
		return 0;
	if (colon == NULL)
		goto bad;
	hlen = (size_t)(colon - v);
	if (hlen > 0 && v[0] == '[') {
		if (v[hlen - 1] != ']' || hlen < 3)
			goto bad;
		for (i = 1; i + 1 < hlen; i++)
			if (!isxdigit((unsigned char)v[i]) && v[i] != ':' &&
			    v[i] != '.')
				goto bad;
	} else {
		for (i = 0; i < hlen; i++)
			if (!isalnum((unsigned char)v[i]) && v[i] != '.' &&
			    v[i] != '-')
				goto bad;
	}
	return check_port(colon + 1, msg, n);
bad:
	snprintf(msg, n, "'%s' is not host:port or :port", v);
	return -1;
}

static size_t
count_str(const char *hay, const char *needle)
{
	size_t k = 0;
	const char *p;

	for (p = strstr(hay, needle); p != NULL; p = strstr(p + 1, needle))
		k++;
	return k;
}

static int
check_verp(const char *v, char *msg, size_t n)
{
	const char *at = strrchr(v, '@'), *p;
	size_t braces = 0;

	if (v[0] == '\0')
		return 0;
	for (p = v; *p; p++)
		braces += (*p == '{' || *p == '}');
	if (count_str(v, "{local}") != 1 || count_str(v, "{domain}") != 1 ||
	    braces != 4) {
		snprintf(msg, n,
		    "'%s' must contain {local} and {domain} once each", v);
		return -1;
	}
	if (at == NULL || at[1] == '\0' || strchr(at, '{') != NULL ||
	    strchr(v, '@') != at) {
		snprintf(msg, n,
		    "'%s' must be local@domain with both placeholders in the "
		    "local part",
		    v);
		return -1;
	}
	return 0;
}

static int
check_https(const char *v, char *msg, size_t n)
{
	if (strncmp(v, "https://", 8) != 0 || v[8] == '\0') {
		snprintf(msg, n, "'%s' is not an https:// URL", v);
		return -1;
	}
	return 0;
}

static int
check_dburl(const char *v, char *msg, size_t n)
{
	PQconninfoOption *opts;
	char *pqerr = NULL;

	if (v[0] == '\0') {
		snprintf(msg, n, "is empty");
		return -1;
	}
	opts = PQconninfoParse(v, &pqerr);
	if (opts == NULL) {
		/* libpq's text may quote the secret: do not repeat it. */
		PQfreemem(pqerr);
		snprintf(msg, n,
		    "not a valid PostgreSQL URI or key=value connection "
		    "string");
		return -1;
	}
	PQconninfoFree(opts);
	return 0;
}

static int
check_rule_class(const char *v, char *msg, size_t n)
{
	if (strcmp(v, "hard") != 0 && strcmp(v, "soft") != 0) {
		snprintf(msg, n, "'%s' is not hard or soft", v);
		return -1;
	}
	return 0;
}

static int
check_reason(const char *v, char *msg, size_t n)
{
	if (!classify_reason_valid(v)) {
		snprintf(msg, n, "'%s' is not a known bounce reason", v);
		return -1;
	}
	return 0;
}

static int
check_nonempty(const char *v, char *msg, size_t n)
{
	if (v[0] == '\0') {
		snprintf(msg, n, "is empty");
		return -1;
	}
	return 0;
}

/* ---- tables ---- */

#define KEY(n, t, o, ...) \
	{ \
		.name = n, .type = t, .off = o, __VA_ARGS__ \
	}

#define POLL(f) offsetof(struct poll_config, f)
static const struct key poll_keys[] = {
    KEY("interval", K_DUR, POLL(interval_ms), .def = "5m", .min = 10 * SEC,
        .max = DAY),
    KEY("jitter", K_DUR, POLL(jitter_ms), .def = "30s", .max = DAY),
    KEY("max_messages", K_INT, POLL(max_messages), .def = "500", .min = 1,
        .max = 100000),
    KEY("max_message_bytes", K_SIZE, POLL(max_message_bytes), .def = "4MiB",
        .min = 64 * KIB, .max = GIB),
    KEY("after_processing", K_ENUM, POLL(after_processing), .def = "delete",
        .choices = after_names),
    KEY("keep_days", K_INT, POLL(keep_days), .def = "7", .max = 3650),
    KEY("connect_timeout", K_DUR, POLL(connect_timeout_ms), .def = "30s",
        .min = SEC, .max = 10 * MIN),
    KEY("command_timeout", K_DUR, POLL(command_timeout_ms), .def = "60s",
        .min = SEC, .max = HOUR),
    KEY("first_pass", K_ENUM, POLL(first_pass), .def = "count",
        .choices = first_names),
    KEY("max_age", K_DUR, POLL(max_age_ms), .def = "30d", .max = 3650 * DAY),
    KEY("pass_timeout", K_DUR, POLL(pass_timeout_ms), .def = "15m",
        .min = 10 * SEC, .max = DAY),
};

static void poll_post(struct ctx *c, const struct node *map, void *base,
    const char *path, const struct node *where);

static const struct table poll_table = {.keys = poll_keys,
    .n = NELEM(poll_keys),
    .post = poll_post};

#define MB(f) offsetof(struct mailbox_config, f)
static const struct key mailbox_keys[] = {
    KEY("name", K_STR, MB(name), .flags = F_REQ, .check = check_name),
    KEY("host", K_STR, MB(host), .flags = F_REQ, .check = check_host),
    KEY("port", K_INT, MB(port), .min = 1, .max = 65535),
    KEY("tls", K_ENUM, MB(tls), .def = "implicit", .choices = tls_names),
    KEY("ca_file", K_STR, MB(ca_file), .flags = F_FILE),
    KEY("username", K_STR, MB(username), .flags = F_REQ),
    KEY("auth", K_ENUM, MB(auth), .def = "password", .choices = auth_names),
    KEY("password", K_STR, MB(password), .flags = F_SECRET,
        .excl = "password_file"),
    KEY("password_file", K_STR, MB(password_file), .flags = F_LOADS,
        .aux = MB(password)),
    KEY("provider", K_ENUM, MB(provider), .def = "none",
        .choices = provider_names),
    KEY("token_file", K_STR, MB(token_file), .flags = F_FILE),
    KEY("token_url", K_STR, MB(token_url), .check = check_https),
    KEY("token_ca_file", K_STR, MB(token_ca_file), .flags = F_FILE),
    KEY("client_id", K_STR, MB(client_id), .check = check_nonempty),
    KEY("client_secret", K_STR, MB(client_secret), .flags = F_SECRET,
        .excl = "client_secret_file"),
    KEY("client_secret_file", K_STR, MB(client_secret_file), .flags = F_LOADS,
        .aux = MB(client_secret)),
    KEY("refresh_token", K_STR, MB(refresh_token), .flags = F_SECRET,
        .excl = "refresh_token_file"),
    KEY("refresh_token_file", K_STR, MB(refresh_token_file), .flags = F_LOADS,
        .aux = MB(refresh_token)),
    KEY("scope", K_STR, MB(scope), .check = check_nonempty),
    KEY("", K_INLINE, MB(poll), .sub = &poll_table),
};

static void mailbox_init(struct ctx *c, void *elem);
static void mailbox_post(struct ctx *c, const struct node *map, void *base,
    const char *path, const struct node *where);

static int mailbox_hide(const void *base, const char *key);

static const struct table mailbox_table = {.keys = mailbox_keys,
    .n = NELEM(mailbox_keys),
    .elem_size = sizeof(struct mailbox_config),
    .init = mailbox_init,
    .post = mailbox_post,
    .hide = mailbox_hide};

#define OV(f) offsetof(struct suppression_override, f)
static const struct key override_keys[] = {
    KEY("reason", K_STR, OV(reason), .flags = F_REQ, .check = check_reason),
    KEY("action", K_ENUM, OV(action), .flags = F_REQ, .choices = action_names),
    KEY("count", K_INT, OV(count), .min = 1, .max = 1000),
};

static void override_post(struct ctx *c, const struct node *map, void *base,
    const char *path, const struct node *where);

static int override_hide(const void *base, const char *key);

static const struct table override_table = {.keys = override_keys,
    .n = NELEM(override_keys),
    .elem_size = sizeof(struct suppression_override),
    .post = override_post,
    .hide = override_hide};

#define CR(f) offsetof(struct classify_rule_config, f)
static const struct key class_rule_keys[] = {
    KEY("name", K_STR, CR(name), .flags = F_REQ),
    KEY("reason", K_STR, CR(reason), .flags = F_REQ, .check = check_reason),
    KEY("class", K_STR, CR(cls), .check = check_rule_class),
    KEY("status", K_STR, CR(status)),
    KEY("reply", K_STR, CR(reply)),
    KEY("command", K_STR, CR(command)),
    KEY("mta", K_STR, CR(mta)),
    KEY("phrase", K_STR, CR(phrase)),
    KEY("domain", K_STR, CR(domain)),
};
static const struct table class_rule_table = {.keys = class_rule_keys,
    .n = NELEM(class_rule_keys),
    .elem_size = sizeof(struct classify_rule_config)};

/* webhooks: one entry per endpoint (internal/webhook.c delivers). */
static const char *const webhook_format_names[] = {"standard", "listmonk",
    NULL};
static const char *const webhook_event_names[] = {"suppression.added",
    "suppression.lifted", "suppression.expired", "bounce.recorded",
    "complaint.recorded", NULL};
/* set by bouncerd itself, or by libcurl from the body */
static const char *const webhook_reserved_headers[] = {"content-type",
    "content-length", "host", "transfer-encoding", "connection", "expect",
    "webhook-id", "webhook-timestamp", "webhook-signature", NULL};

static int
check_webhook_url(const char *v, char *msg, size_t n)
{
	const char *host;
	size_t i;

	if (strncmp(v, "https://", 8) == 0)
		host = v + 8;
	else if (strncmp(v, "http://", 7) == 0)
		host = v + 7;
	else
		host = NULL;
	if (host == NULL || *host == '\0' || *host == '/' || *host == ':' ||
	    strlen(v) > 2048)
		goto bad;
	for (i = 0; v[i] != '\0'; i++)
		if ((unsigned char)v[i] <= ' ' || v[i] == 0x7f)
			goto bad;
	return 0;
bad:
	snprintf(msg, n, "'%s' is not an https:// (or http://) URL", v);
	return -1;
}

static int
check_webhook_event(const char *v, char *msg, size_t n)
{
	size_t i;

	for (i = 0; webhook_event_names[i] != NULL; i++)
		if (strcmp(v, webhook_event_names[i]) == 0)
			return 0;
	snprintf(msg, n,
	    "'%s' is not one of suppression.added, suppression.lifted, "
	    "suppression.expired, bounce.recorded or complaint.recorded",
	    v);
	return -1;
}

static int
check_webhook_header(const char *v, char *msg, size_t n)
{
	const char *colon = strchr(v, ':');
	char name[80];
	size_t len, i;

	if (colon == NULL || colon == v || (size_t)(colon - v) >= sizeof(name))
		goto bad;
	len = (size_t)(colon - v);
	for (i = 0; i < len; i++) {
		if (!header_char((unsigned char)v[i]))
			goto bad;
		name[i] = (char)tolower((unsigned char)v[i]);
	}
	name[len] = '\0';
	for (i = 0; colon[1 + i] != '\0'; i++)
		if ((unsigned char)colon[1 + i] < ' ' && colon[1 + i] != '\t')
			goto bad;
	for (i = 0; webhook_reserved_headers[i] != NULL; i++)
		if (strcmp(name, webhook_reserved_headers[i]) == 0) {
			snprintf(msg, n, "header %.*s is set by bouncerd",
			    (int)len, v);
			return -1;
		}
	return 0;
bad:
	/* the value may be a token: name only the header's name, if any */
	if (colon == NULL)
		snprintf(msg, n,
		    "is not \"Name: value\" (a header name, a colon, a "
		    "value)");
	else
		snprintf(msg, n,
		    "'%.*s' is not \"Name: value\" (a header name, a colon, "
		    "a value without control characters)",
		    (int)(colon - v), v);
	return -1;
}

/* "whsec_" + strict base64 of 24..64 bytes (Standard Webhooks). */
static int
check_webhook_secret(const char *v, char *msg, size_t n)
{
	static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnop"
	                          "qrstuvwxyz0123456789+/";
	const char *p = v + 6;
	size_t len, pad = 0, i, bytes;

	if (strncmp(v, "whsec_", 6) != 0) {
		snprintf(msg, n, "must start with whsec_ (Standard Webhooks)");
		return -1;
	}
	len = strlen(p);
	while (pad < 2 && len > pad && p[len - 1 - pad] == '=')
		pad++;
	for (i = 0; i < len - pad; i++)
		if (strchr(b64, p[i]) == NULL || p[i] == '\0')
			break;
	bytes = len / 4 * 3 - pad;
	if (len == 0 || len % 4 != 0 || i < len - pad) {
		snprintf(msg, n, "is not whsec_ followed by base64");
		return -1;
	}
	if (bytes < 24 || bytes > 64) {
		snprintf(msg, n,
		    "holds %zu bytes; Standard Webhooks secrets are 24 to 64 "
		    "random bytes (whsec_ + base64)",
		    bytes);
		return -1;
	}
	return 0;
}

#define WH(f) offsetof(struct webhook_config, f)
static const struct key webhook_keys[] = {
    KEY("name", K_STR, WH(name), .flags = F_REQ | F_RESTART,
        .check = check_name),
    KEY("url", K_STR, WH(url), .flags = F_REQ | F_RESTART,
        .check = check_webhook_url),
    KEY("plain_http", K_BOOL, WH(plain_http), .def = "false",
        .flags = F_RESTART),
    KEY("format", K_ENUM, WH(format), .def = "standard",
        .choices = webhook_format_names, .flags = F_RESTART),
    KEY("secret", K_STR, WH(secret), .flags = F_SECRET | F_RESTART,
        .excl = "secret_file"),
    KEY("secret_file", K_STR, WH(secret_file), .flags = F_LOADS | F_RESTART,
        .aux = WH(secret)),
    KEY("events", K_STRLIST, WH(events), .aux = WH(n_events),
        .flags = F_RESTART, .check = check_webhook_event),
    KEY("timeout", K_DUR, WH(timeout_ms), .def = "10s", .min = SEC,
        .max = 5 * MIN, .flags = F_RESTART),
    KEY("ca_file", K_STR, WH(ca_file), .flags = F_FILE | F_RESTART),
    KEY("headers", K_STRLIST, WH(headers), .aux = WH(n_headers),
        .flags = F_SECRET | F_RESTART, .check = check_webhook_header),
    KEY("username", K_STR, WH(username), .flags = F_RESTART,
        .check = check_nonempty),
    KEY("password", K_STR, WH(password), .flags = F_SECRET | F_RESTART,
        .excl = "password_file"),
    KEY("password_file", K_STR, WH(password_file), .flags = F_LOADS | F_RESTART,
        .aux = WH(password)),
    KEY("max_age", K_DUR, WH(max_age_ms), .def = "3d", .min = MIN,
        .max = 30 * DAY, .flags = F_RESTART),
    KEY("backoff_min", K_DUR, WH(backoff_min_ms), .def = "1s", .min = 100,
        .max = HOUR, .flags = F_RESTART),
    KEY("backoff_max", K_DUR, WH(backoff_max_ms), .def = "10m", .min = 100,
        .max = DAY, .flags = F_RESTART),
    KEY("degraded_after", K_DUR, WH(degraded_after_ms), .def = "15m",
        .min = SEC, .max = 30 * DAY, .flags = F_RESTART),
};

static void webhook_post(struct ctx *c, const struct node *map, void *base,
    const char *path, const struct node *where);

static const struct table webhook_table = {.keys = webhook_keys,
    .n = NELEM(webhook_keys),
    .elem_size = sizeof(struct webhook_config),
    .post = webhook_post};

#define CF(f) offsetof(struct config, f)
static const struct key database_keys[] = {
    KEY("url", K_STR, CF(database_url), .flags = F_SECRET | F_URL | F_RESTART,
        .excl = "url_file", .check = check_dburl),
    KEY("url_file", K_STR, CF(database_url_file), .flags = F_LOADS | F_RESTART,
        .aux = CF(database_url)),
    KEY("batch_size", K_INT, CF(batch_size), .def = "50", .min = 1,
        .max = 10000, .flags = F_RESTART),
    KEY("migrate", K_BOOL, CF(migrate), .def = "true", .flags = F_RESTART),
    KEY("raw_max_bytes", K_SIZE, CF(raw_max_bytes), .def = "256KiB",
        .max = GIB),
};
static const struct table database_table = {.keys = database_keys,
    .n = NELEM(database_keys)};

static const struct key log_keys[] = {
    KEY("level", K_ENUM, CF(log_level), .def = "info", .choices = level_names),
    KEY("format", K_ENUM, CF(log_format), .def = "text",
        .choices = format_names),
};
static const struct table log_table = {.keys = log_keys, .n = NELEM(log_keys)};

static const struct key http_keys[] = {
    KEY("listen", K_STR, CF(http_listen), .def = "", .flags = F_RESTART,
        .check = check_listen),
};
static const struct table http_table = {.keys = http_keys,
    .n = NELEM(http_keys)};

static const struct key extract_keys[] = {
    KEY("campaign_header", K_STR, CF(campaign_header), .def = "X-Campaign-Id",
        .check = check_header_opt),
    KEY("list_header", K_STR, CF(list_header), .def = "List-Id",
        .check = check_header_opt),
    KEY("subscriber_header", K_STR, CF(subscriber_header),
        .def = "X-Subscriber-Id", .check = check_header_opt),
    KEY("extra_headers", K_STRLIST, CF(extra_headers),
        .aux = CF(n_extra_headers), .check = check_header),
    KEY("verp_pattern", K_STR, CF(verp_pattern), .def = "",
        .check = check_verp),
};
static const struct table extract_table = {.keys = extract_keys,
    .n = NELEM(extract_keys)};

static const struct key suppression_keys[] = {
    KEY("soft_threshold", K_INT, CF(soft_threshold), .def = "3", .min = 1,
        .max = 1000),
    KEY("soft_window", K_DUR, CF(soft_window_ms), .def = "30d", .min = HOUR,
        .max = 3650 * DAY),
    KEY("overrides", K_LIST, CF(overrides), .sub = &override_table,
        .aux = CF(n_overrides)),
};
static const struct table suppression_table = {.keys = suppression_keys,
    .n = NELEM(suppression_keys)};

static const struct key retention_keys[] = {
    KEY("raw", K_DUR, CF(retention_raw_ms), .def = "30d", .max = 3650 * DAY),
    KEY("bounces", K_DUR, CF(retention_bounces_ms), .def = "0",
        .max = 36500 * DAY),
    KEY("ledger", K_DUR, CF(retention_ledger_ms), .def = "0",
        .max = 36500 * DAY),
};
static const struct table retention_table = {.keys = retention_keys,
    .n = NELEM(retention_keys)};

static const struct key classify_keys[] = {
    KEY("rules", K_LIST, CF(class_rules), .sub = &class_rule_table,
        .aux = CF(n_class_rules)),
};
static const struct table classify_table = {.keys = classify_keys,
    .n = NELEM(classify_keys)};

static const struct key root_keys[] = {
    KEY("database", K_MAP, 0, .sub = &database_table),
    KEY("log", K_MAP, 0, .sub = &log_table),
    KEY("http", K_MAP, 0, .sub = &http_table),
    KEY("workers", K_INT, CF(workers), .def = "4", .min = 1, .max = 64,
        .flags = F_RESTART),
    KEY("defaults", K_MAP, CF(defaults), .sub = &poll_table),
    KEY("extract", K_MAP, 0, .sub = &extract_table),
    KEY("suppression", K_MAP, 0, .sub = &suppression_table),
    KEY("retention", K_MAP, 0, .sub = &retention_table),
    KEY("classify", K_MAP, 0, .sub = &classify_table),
    KEY("mailboxes", K_LIST, CF(mailboxes), .sub = &mailbox_table,
        .aux = CF(n_mailboxes)),
    KEY("webhooks", K_LIST, CF(webhooks), .sub = &webhook_table,
        .aux = CF(n_webhooks)),
};

static void root_post(struct ctx *c, const struct node *map, void *base,
    const char *path, const struct node *where);

static const struct table root_table = {.keys = root_keys,
    .n = NELEM(root_keys),
    .post = root_post};

/* ---- formatting ---- */

static void
fmt_duration(int64_t ms, char *out, size_t n)
{
	static const struct {
		const char *u;
		int64_t ms;
	} units[] = {{"d", DAY}, {"h", HOUR}, {"m", MIN}, {"s", SEC},
	    {"ms", 1}};
	size_t i, used = 0;

	if (ms <= 0) {
		snprintf(out, n, "0");
		return;
	}
	out[0] = '\0';
	for (i = 0; i < NELEM(units) && used < n; i++) {
		if (ms >= units[i].ms) {
			int w = snprintf(out + used, n - used, "%lld%s",
			    (long long)(ms / units[i].ms), units[i].u);
			if (w < 0)
				break;
			used += (size_t)w;
			ms %= units[i].ms;
		}
	}
}

static void
fmt_size(uint64_t v, char *out, size_t n)
{
	if (v != 0 && v % GIB == 0)
		snprintf(out, n, "%lluGiB", (unsigned long long)(v / GIB));
	else if (v != 0 && v % MIB == 0)
		snprintf(out, n, "%lluMiB", (unsigned long long)(v / MIB));
	else if (v != 0 && v % KIB == 0)
		snprintf(out, n, "%lluKiB", (unsigned long long)(v / KIB));
	else
		snprintf(out, n, "%llu", (unsigned long long)v);
}

/* Writes v as a YAML double-quoted string that loads back as v. */
static void
fmt_quoted(const char *v, char *out, size_t n)
{
	size_t used = 0;
	const unsigned char *p;

	if (n < 3) {
		if (n > 0)
			out[0] = '\0';
		return;
	}
	out[used++] = '"';
	for (p = (const unsigned char *)v; *p && used + 6 < n; p++) {
		if (*p == '"' || *p == '\\') {
			out[used++] = '\\';
			out[used++] = (char)*p;
		} else if (*p == '$') {
			/* Reads back as "$", not as the start of ${VAR}. */
			out[used++] = '$';
			out[used++] = '$';
		} else if (*p < 0x20 || *p == 0x7f) {
			used += (size_t)snprintf(out + used, n - used,
			    "\\x%02x", *p);
		} else {
			out[used++] = (char)*p;
		}
	}
	out[used++] = '"';
	out[used] = '\0';
}

/* The connection string as libpq reads it (PQconninfoParse, so every
 * form is covered: URI, key=value, quoted values, spaces around '='),
 * rebuilt as key='value' with every secret option (password, and any
 * other libpq marks for hiding) replaced by the mask; returns a new
 * string.  A string libpq cannot read is masked whole. */
static char *
mask_url(const char *url)
{
	PQconninfoOption *opts = PQconninfoParse(url, NULL), *o;
	struct buf b;
	char *out;

	if (opts == NULL)
		return xstrdup(MASK);
	buf_init(&b, 4 * strlen(url) + 256);
	for (o = opts; o->keyword != NULL; o++) {
		const char *v;

		if (o->val == NULL)
			continue;
		if (b.len > 0)
			buf_append(&b, " ", 1);
		buf_append_str(&b, o->keyword);
		buf_append(&b, "='", 2);
		if (o->dispchar != NULL && o->dispchar[0] == '*')
			buf_append_str(&b, MASK);
		else
			for (v = o->val; *v != '\0'; v++) {
				if (*v == '\'' || *v == '\\')
					buf_append(&b, "\\", 1);
				buf_append(&b, v, 1);
			}
		buf_append(&b, "'", 1);
	}
	PQconninfoFree(opts);
	out = xstrdup(buf_cstr(&b));
	buf_free(&b);
	return out;
}

/* Formats one scalar key of base; 0, or -1 when the value is unset. */
static int
fmt_value(const struct key *k, const void *base, int mask, char *out, size_t n)
{
	switch (k->type) {
	case K_STR: {
		const char *v = *CFIELD(base, k->off, char *);
		if (v == NULL)
			return -1;
		if (mask && (k->flags & F_URL)) {
			char *m = mask_url(v);
			fmt_quoted(m, out, n);
			free(m);
		} else if (mask && (k->flags & F_SECRET) && v[0] != '\0') {
			fmt_quoted(MASK, out, n);
		} else {
			fmt_quoted(v, out, n);
		}
		return 0;
	}
	case K_INT:
		snprintf(out, n, "%d", *CFIELD(base, k->off, int));
		return 0;
	case K_BOOL:
		snprintf(out, n, "%s",
		    *CFIELD(base, k->off, int) ? "true" : "false");
		return 0;
	case K_DUR:
		fmt_duration(*CFIELD(base, k->off, int64_t), out, n);
		return 0;
	case K_SIZE:
		fmt_size(*CFIELD(base, k->off, uint64_t), out, n);
		return 0;
	case K_ENUM:
		snprintf(out, n, "%s", k->choices[*CFIELD(base, k->off, int)]);
		return 0;
	case K_STRLIST: {
		char *const *v = *(
		    char **const *)(const void *)((const char *)base + k->off);
		size_t cnt = *CFIELD(base, k->aux, size_t), i, used;
		snprintf(out, n, "[");
		for (i = 0; i < cnt; i++) {
			used = strlen(out);
			if (i > 0 && used + 2 < n)
				snprintf(out + used, n - used, ", ");
			used = strlen(out);
			if (mask && (k->flags & F_SECRET)) {
				/* "Name: value": the value may be a token */
				char *h = xasprintf("%.*s: %s",
				    (int)strcspn(v[i], ":"), v[i], MASK);
				fmt_quoted(h, out + used, n - used);
				free(h);
				continue;
			}
			fmt_quoted(v[i], out + used, n - used);
		}
		used = strlen(out);
		snprintf(out + used, n - used, "]");
		return 0;
	}
	default:
		return -1;
	}
}

/* ---- conversion of one scalar ---- */

/* ${VAR} expansion; NULL with an error recorded. */
static char *
expand(struct ctx *c, const struct node *nd, const char *path)
{
	const char *s = nd->val;
	size_t cap = strlen(s) + 1, len = 0;
	char *out = xmalloc(cap);

	while (*s) {
		const char *add = s;
		size_t alen = 1;

		if (s[0] == '$' && s[1] == '$') {
			s += 2;
		} else if (s[0] == '$' && s[1] == '{') {
			const char *end = strchr(s + 2, '}'), *val;
			size_t nl, i;
			char name[128];

			if (end == NULL) {
				err_node(c, nd, path,
				    "unterminated ${ in value");
				goto fail;
			}
			nl = (size_t)(end - s - 2);
			for (i = 0; i < nl; i++)
				if (!(isalpha((unsigned char)s[2 + i]) ||
				        s[2 + i] == '_' ||
				        (i > 0 &&
				            isdigit((unsigned char)s[2 + i]))))
					break;
			if (nl == 0 || i < nl || nl >= sizeof(name)) {
				err_node(c, nd, path,
				    "invalid variable name in '%.*s'",
				    (int)(nl > 64 ? 64 : nl) + 3, s);
				goto fail;
			}
			memcpy(name, s + 2, nl);
			name[nl] = '\0';
			val = getenv(name);
			if (val == NULL) {
				err_node(c, nd, path,
				    "environment variable %s is not set", name);
				goto fail;
			}
			add = val;
			alen = strlen(val);
			s = end + 1;
		} else {
			s++;
		}
		if (len + alen + 1 > MAX_VALUE_BYTES) {
			err_node(c, nd, path, "value longer than %d bytes",
			    MAX_VALUE_BYTES);
			goto fail;
		}
		if (len + alen + 1 > cap) {
			cap = (len + alen + 1) * 2;
			out = xrealloc(out, cap);
		}
		memcpy(out + len, add, alen);
		len += alen;
	}
	out[len] = '\0';
	return out;
fail:
	free(out);
	return NULL;
}

static char *
resolve_path(struct ctx *c, const char *v)
{
	if (v[0] == '/' || c->dir == NULL)
		return xstrdup(v);
	return xasprintf("%s/%s", c->dir, v);
}

/* A secret file that group or others may read: worth a warning (not an
 * error: container secrets are often mounted world-readable). */
static void
warn_readable(struct ctx *c, const struct node *nd, const char *path,
    const char *file)
{
	struct stat st;
	char msg[700];

	if (stat(file, &st) != 0 || (st.st_mode & 077) == 0)
		return;
	snprintf(msg, sizeof(msg),
	    "%s:%d:%d: %s: %s is readable by %s (mode %04o); chmod 600 it",
	    c->name, nd ? nd->line : 0, nd ? nd->col : 0, path, file,
	    (st.st_mode & 070) && (st.st_mode & 07) ? "group and others"
	        : (st.st_mode & 070)                ? "its group"
	                                            : "others",
	    (unsigned)(st.st_mode & 07777));
	c->cfg->warnings.items = xrealloc(c->cfg->warnings.items,
	    (c->cfg->warnings.count + 1) * sizeof(char *));
	c->cfg->warnings.items[c->cfg->warnings.count++] = xstrdup(msg);
}

/* Reads a secret file, without its trailing newline. */
static char *
load_secret(struct ctx *c, const struct node *nd, const char *path,
    const char *file)
{
	struct err err = {""};
	char *data = NULL;
	size_t len = 0;

	if (read_file(file, MAX_SECRET_FILE, &data, &len, &err) != 0) {
		err_node(c, nd, path, "%s", err.msg);
		return NULL;
	}
	if (len > 0 && data[len - 1] == '\n')
		data[--len] = '\0';
	if (len > 0 && data[len - 1] == '\r')
		data[--len] = '\0';
	if (len == 0 || strlen(data) != len) {
		err_node(c, nd, path, "%s: %s", file,
		    len == 0 ? "file is empty" : "file contains a NUL byte");
		free(data);
		return NULL;
	}
	if (strpbrk(data, "\r\n") != NULL) {
		err_node(c, nd, path,
		    "%s: the secret holds a line break (CR or LF) other than "
		    "a final newline; no login can send it",
		    file);
		free(data);
		return NULL;
	}
	warn_readable(c, nd, path, file);
	return data;
}

static int
set_enum(struct ctx *c, const struct key *k, const struct node *nd,
    const char *path, const char *v, void *base)
{
	char list[128] = "";
	size_t i, used;

	for (i = 0; k->choices[i] != NULL; i++) {
		if (strcmp(v, k->choices[i]) == 0) {
			*FIELD(base, k->off, int) = (int)i;
			return 0;
		}
		used = strlen(list);
		snprintf(list + used, sizeof(list) - used, "%s%s",
		    i == 0 ? "" : (k->choices[i + 1] ? ", " : " or "),
		    k->choices[i]);
	}
	err_node(c, nd, path, "'%s' is not one of %s", v, list);
	return -1;
}

/* Converts text v for scalar key k into base.  nd (may be NULL for
 * defaults) locates errors. */
static int
set_scalar(struct ctx *c, const struct key *k, const struct node *nd,
    const char *path, const char *v, void *base)
{
	struct err err = {""};
	char msg[300], lo[32], hi[32];
	int64_t i64;
	uint64_t u64;

	switch (k->type) {
	case K_STR: {
		char **field = FIELD(base, k->off, char *);
		if (k->check != NULL && k->check(v, msg, sizeof(msg)) != 0) {
			err_node(c, nd, path, "%s", msg);
			return -1;
		}
		if ((k->flags & F_REQ) && v[0] == '\0') {
			err_node(c, nd, path, "is empty");
			return -1;
		}
		if ((k->flags & F_SECRET) && strpbrk(v, "\r\n") != NULL) {
			err_node(c, nd, path,
			    "holds a line break (CR or LF); no login can send "
			    "it");
			return -1;
		}
		free(*field);
		*field = NULL;
		if ((k->flags & (F_FILE | F_LOADS)) && v[0] == '\0') {
			err_node(c, nd, path, "is empty");
			return -1;
		}
		if (k->flags & (F_FILE | F_LOADS)) {
			char *file = resolve_path(c, v);
			if (k->flags & F_LOADS) {
				char **target = FIELD(base, k->aux, char *);
				char *data = load_secret(c, nd, path, file);
				if (data == NULL) {
					free(file);
					return -1;
				}
				free(*target);
				*target = data;
			} else if (access(file, R_OK) != 0) {
				err_node(c, nd, path, "%s: %s", file,
				    strerror(errno));
				free(file);
				return -1;
			}
			*field = file;
		} else {
			*field = xstrdup(v);
		}
		return 0;
	}
	case K_INT:
		if (parse_int64(v, k->min, k->max, &i64, &err) != 0) {
			err_node(c, nd, path, "%s", err.msg);
			return -1;
		}
		*FIELD(base, k->off, int) = (int)i64;
		return 0;
	case K_BOOL:
		if (strcmp(v, "true") == 0 || strcmp(v, "True") == 0 ||
		    strcmp(v, "TRUE") == 0)
			*FIELD(base, k->off, int) = 1;
		else if (strcmp(v, "false") == 0 || strcmp(v, "False") == 0 ||
		    strcmp(v, "FALSE") == 0)
			*FIELD(base, k->off, int) = 0;
		else {
			err_node(c, nd, path, "'%s' is not true or false", v);
			return -1;
		}
		return 0;
	case K_DUR:
		if (parse_duration_ms(v, &i64, &err) != 0) {
			err_node(c, nd, path, "%s", err.msg);
			return -1;
		}
		if (i64 < k->min || i64 > k->max) {
			fmt_duration(k->min, lo, sizeof(lo));
			fmt_duration(k->max, hi, sizeof(hi));
			err_node(c, nd, path, "%s is out of range (%s..%s)", v,
			    lo, hi);
			return -1;
		}
		*FIELD(base, k->off, int64_t) = i64;
		return 0;
	case K_SIZE:
		if (parse_size(v, &u64, &err) != 0) {
			err_node(c, nd, path, "%s", err.msg);
			return -1;
		}
		if (u64 < (uint64_t)k->min || u64 > (uint64_t)k->max) {
			fmt_size((uint64_t)k->min, lo, sizeof(lo));
			fmt_size((uint64_t)k->max, hi, sizeof(hi));
			err_node(c, nd, path, "%s is out of range (%s..%s)", v,
			    lo, hi);
			return -1;
		}
		*FIELD(base, k->off, uint64_t) = u64;
		return 0;
	case K_ENUM:
		return set_enum(c, k, nd, path, v, base);
	default:
		return -1;
	}
}

/* ---- the walk ---- */

static void apply_table(struct ctx *c, const struct node *map,
    const struct table *t, void *base, const char *prefix,
    const struct node *where, int inherit);

static void
join_path(char *out, size_t n, const char *prefix, const char *name)
{
	size_t lp = strlen(prefix), ln = strlen(name), o = 0;

	/* Plain copies: this runs for every key of every list entry. */
	if (lp + ln + 2 > n) {
		snprintf(out, n, "%s.%s", prefix, name);
		return;
	}
	memcpy(out, prefix, lp);
	o = lp;
	if (lp > 0)
		out[o++] = '.';
	memcpy(out + o, name, ln + 1);
}

static const struct key *
find_key(const struct table *t, const char *name)
{
	size_t i;

	for (i = 0; i < t->n; i++) {
		const struct key *k = &t->keys[i];
		if (k->type == K_INLINE) {
			const struct key *s = find_key(k->sub, name);
			if (s != NULL)
				return s;
		} else if (strcmp(k->name, name) == 0) {
			return k;
		}
	}
	return NULL;
}

static size_t
edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), i, j;
	size_t row[65];

	if (la > 64 || lb > 64)
		return 99;
	for (j = 0; j <= lb; j++)
		row[j] = j;
	for (i = 1; i <= la; i++) {
		size_t diag = row[0];
		row[0] = i;
		for (j = 1; j <= lb; j++) {
			size_t up = row[j],
			       best = diag + (a[i - 1] != b[j - 1]);
			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

static void
suggest(const struct table *t, const char *name, const char **best,
    size_t *dist)
{
	size_t i, d;

	for (i = 0; i < t->n; i++) {
		const struct key *k = &t->keys[i];
		if (k->type == K_INLINE) {
			suggest(k->sub, name, best, dist);
			continue;
		}
		d = edit_distance(name, k->name);
		if (d < *dist) {
			*dist = d;
			*best = k->name;
		}
	}
}

/* Unknown keys, non-scalar keys and duplicates of known keys. */
static void
check_keys(struct ctx *c, const struct node *map, const struct table *t,
    const char *prefix)
{
	const struct node *firsts[64] = {NULL};
	char path[300];
	size_t i, j;

	for (i = 0; i + 1 < map->n; i += 2) {
		const struct node *kn = map->kid[i];
		const struct key *k;

		if (kn->kind != N_SCALAR) {
			err_node(c, kn, prefix, "keys must be scalars, got %s",
			    kind_name(kn));
			continue;
		}
		join_path(path, sizeof(path), prefix, kn->val);
		k = find_key(t, kn->val);
		if (k == NULL) {
			const char *best = NULL;
			size_t dist = 3;
			if (c->nerr < CONFIG_MAX_ERRORS)
				suggest(t, kn->val, &best, &dist);
			if (best != NULL && dist < strlen(kn->val))
				err_node(c, kn, path,
				    "unknown key (did you mean '%s'?)", best);
			else
				err_node(c, kn, path, "unknown key");
			continue;
		}
		/* Duplicate detection over the known keys only. */
		for (j = 0; j < NELEM(firsts) && firsts[j] != NULL; j++)
			if (strcmp(firsts[j]->val, kn->val) == 0)
				break;
		if (j < NELEM(firsts) && firsts[j] != NULL)
			err_node(c, kn, path,
			    "duplicate key (first at line %d)",
			    firsts[j]->line);
		else if (j < NELEM(firsts))
			firsts[j] = kn;
	}
}

static void
apply_list(struct ctx *c, const struct key *k, const struct node *val,
    void *base, const char *path)
{
	size_t *count = FIELD(base, k->aux, size_t), i;
	char ipath[320];

	if (node_is_null(val))
		return;
	if (val->kind != N_SEQ) {
		err_node(c, val, path, "expected a sequence, got %s",
		    kind_name(val));
		return;
	}
	if (k->type == K_STRLIST) {
		char ***items = FIELD(base, k->off, char **);
		char msg[300];
		*items = xcalloc(val->n, sizeof(char *));
		for (i = 0; i < val->n; i++) {
			const struct node *e = val->kid[i];
			char *v;
			snprintf(ipath, sizeof(ipath), "%s[%zu]", path, i);
			if (e->kind != N_SCALAR) {
				err_node(c, e, ipath,
				    "expected a scalar, got %s", kind_name(e));
				continue;
			}
			if ((v = expand(c, e, ipath)) == NULL)
				continue;
			if (k->check != NULL &&
			    k->check(v, msg, sizeof(msg)) != 0) {
				err_node(c, e, ipath, "%s", msg);
				free(v);
				continue;
			}
			(*items)[(*count)++] = v;
		}
		return;
	}
	char **arr = FIELD(base, k->off, char *);
	const struct table *t = k->sub;
	*arr = xcalloc(val->n, t->elem_size);
	for (i = 0; i < val->n; i++) {
		const struct node *e = val->kid[i];
		void *elem = *arr + i * t->elem_size;

		snprintf(ipath, sizeof(ipath), "%s[%zu]", path, i);
		(*count)++;
		if (t->init != NULL)
			t->init(c, elem);
		if (e->kind != N_MAP) {
			err_node(c, e, ipath, "expected a mapping, got %s",
			    kind_name(e));
			continue;
		}
		if (t == &mailbox_table)
			((struct mailbox_config *)elem)->line = e->line;
		check_keys(c, e, t, ipath);
		apply_table(c, e, t, elem, ipath, e, 0);
	}
}

/*
 * Sets every key of t from map (NULL: section absent), applying defaults
 * (unless inherit: values already copied from "defaults:").  where locates
 * errors about missing keys.
 */
static void
apply_table(struct ctx *c, const struct node *map, const struct table *t,
    void *base, const char *prefix, const struct node *where, int inherit)
{
	char path[300];
	size_t i;

	for (i = 0; i < t->n; i++) {
		const struct key *k = &t->keys[i];
		const struct node *val;

		if (k->type == K_INLINE) {
			apply_table(c, map, k->sub, FIELD(base, k->off, char),
			    prefix, where, 1);
			continue;
		}
		join_path(path, sizeof(path), prefix, k->name);
		val = map_get(map, k->name);
		if (!node_is_null(val) && k->excl != NULL &&
		    given(map, k->excl))
			err_node(c, val, path, "cannot be combined with %s",
			    k->excl);
		switch (k->type) {
		case K_MAP:
			if (val != NULL && !node_is_null(val) &&
			    val->kind != N_MAP) {
				err_node(c, val, path,
				    "expected a mapping, got %s",
				    kind_name(val));
				val = NULL;
			}
			if (node_is_null(val))
				val = NULL;
			if (val != NULL)
				check_keys(c, val, k->sub, path);
			apply_table(c, val, k->sub, FIELD(base, k->off, char),
			    path, val ? val : where, 0);
			continue;
		case K_LIST:
		case K_STRLIST:
			apply_list(c, k, val, base, path);
			continue;
		default:
			break;
		}
		if (val != NULL && val->kind != N_SCALAR) {
			err_node(c, val, path, "expected a scalar, got %s",
			    kind_name(val));
			continue;
		}
		if (node_is_null(val)) {
			if (k->flags & F_REQ) {
				if (val != NULL)
					err_node(c, val, path, "is empty");
				else
					err_node(c, where, path,
					    "required key is missing");
			} else if (k->def != NULL &&
			    !(inherit && val == NULL)) {
				set_scalar(c, k, NULL, path, k->def, base);
			}
			continue;
		}
		char *v = expand(c, val, path);
		/* After a bad value, later cross-checks see the default. */
		if ((v == NULL || set_scalar(c, k, val, path, v, base) != 0) &&
		    k->def != NULL && !inherit)
			set_scalar(c, k, NULL, path, k->def, base);
		free(v);
	}
	if (t->post != NULL)
		t->post(c, map, base, prefix, where);
}

/* ---- cross-key checks ---- */

static const struct node *
key_node(const struct node *map, const char *key, const struct node *dflt)
{
	const struct node *n = map_get(map, key);

	return n != NULL ? n : dflt;
}

static void
poll_post(struct ctx *c, const struct node *map, void *base, const char *path,
    const struct node *where)
{
	const struct poll_config *p = base;
	char full[300], j[32], iv[32];

	/* A mailbox that changes neither key inherits a checked pair. */
	if (p->jitter_ms < p->interval_ms ||
	    (strcmp(path, "defaults") != 0 && map_get(map, "jitter") == NULL &&
	        map_get(map, "interval") == NULL))
		return;
	join_path(full, sizeof(full), path, "jitter");
	fmt_duration(p->jitter_ms, j, sizeof(j));
	fmt_duration(p->interval_ms, iv, sizeof(iv));
	err_node(c, key_node(map, "jitter", key_node(map, "interval", where)),
	    full, "%s must be less than interval (%s)", j, iv);
}

static void
mailbox_init(struct ctx *c, void *elem)
{
	struct mailbox_config *mb = elem;

	mb->poll = c->cfg->defaults;
}

static const char *
token_url_for(enum config_provider p)
{
	switch (p) {
	case CONFIG_PROVIDER_MICROSOFT:
		return "https://login.microsoftonline.com/common/oauth2/v2.0/"
		       "token";
	case CONFIG_PROVIDER_GOOGLE:
		return "https://oauth2.googleapis.com/token";
	default:
		return NULL;
	}
}

static int
mailbox_hide(const void *base, const char *key)
{
	const struct mailbox_config *mb = base;

	return mb->auth != CONFIG_AUTH_XOAUTH2 && strcmp(key, "provider") == 0;
}

static void
mailbox_post(struct ctx *c, const struct node *map, void *base,
    const char *path, const struct node *where)
{
	static const char *const oauth_keys[] = {"provider", "token_file",
	    "token_url", "token_ca_file", "client_id", "client_secret",
	    "client_secret_file", "refresh_token", "refresh_token_file",
	    "scope", NULL};
	static const char *const pw_keys[] = {"password", "password_file",
	    NULL};
	struct mailbox_config *mb = base;
	const char *const *other;
	char full[300];
	size_t i;

	if (mb->port == 0)
		mb->port = mb->tls == CONFIG_TLS_IMPLICIT ? 995 : 110;
	other = mb->auth != CONFIG_AUTH_XOAUTH2 ? oauth_keys : pw_keys;
	for (i = 0; other[i] != NULL; i++) {
		const struct node *n = map_get(map, other[i]);
		/* "provider: none" is the default, harmless anywhere. */
		if (n == NULL ||
		    (n->kind == N_SCALAR && strcmp(n->val, "none") == 0 &&
		        strcmp(other[i], "provider") == 0))
			continue;
		join_path(full, sizeof(full), path, other[i]);
		err_node(c, n, full, "only valid with auth: %s",
		    mb->auth != CONFIG_AUTH_XOAUTH2 ? "xoauth2" : "password");
	}
	if (mb->auth != CONFIG_AUTH_XOAUTH2) {
		if (!given(map, "password") && !given(map, "password_file")) {
			join_path(full, sizeof(full), path, "password");
			err_node(c, where, full,
			    "required key is missing (or set password_file)");
		}
		return;
	}
	if (mb->token_url == NULL && token_url_for(mb->provider) != NULL)
		mb->token_url = xstrdup(token_url_for(mb->provider));
	if (given(map, "token_file"))
		return;
	if (!given(map, "client_id")) {
		join_path(full, sizeof(full), path, "client_id");
		err_node(c, where, full,
		    "required with auth: xoauth2 unless token_file is set");
		return;
	}
	if (!given(map, "client_secret") && !given(map, "client_secret_file")) {
		join_path(full, sizeof(full), path, "client_secret");
		err_node(c, where, full,
		    "required with client_id (or set client_secret_file)");
	}
	if (!given(map, "refresh_token") && !given(map, "refresh_token_file") &&
	    !given(map, "scope")) {
		join_path(full, sizeof(full), path, "refresh_token");
		err_node(c, where, full,
		    "required with client_id (or set refresh_token_file or "
		    "scope)");
	}
	if (mb->token_url == NULL && !given(map, "token_url")) {
		join_path(full, sizeof(full), path, "token_url");
		err_node(c, where, full,
		    "required with client_id when provider is not set");
	}
}

static int
override_hide(const void *base, const char *key)
{
	const struct suppression_override *o = base;

	return o->action == CONFIG_OVERRIDE_NEVER && strcmp(key, "count") == 0;
}

static void
override_post(struct ctx *c, const struct node *map, void *base,
    const char *path, const struct node *where)
{
	const struct suppression_override *o = base;
	const struct node *cnt =
	    node_is_null(map_get(map, "count")) ? NULL : map_get(map, "count");
	char full[300];

	const struct node *act = map_get(map, "action");

	join_path(full, sizeof(full), path, "count");
	/* Nothing to add when the action itself is missing or wrong. */
	if (act == NULL || act->kind != N_SCALAR ||
	    (strcmp(act->val, "hard_after") != 0 &&
	        strcmp(act->val, "never") != 0))
		return;
	if (o->action == CONFIG_OVERRIDE_HARD_AFTER && cnt == NULL)
		err_node(c, where, full,
		    "required key is missing (action hard_after needs it)");
	else if (o->action == CONFIG_OVERRIDE_NEVER && cnt != NULL)
		err_node(c, cnt, full, "not allowed with action never");
}

struct name_ref {
	const char *name;
	size_t idx;
};

static int
name_ref_cmp(const void *a, const void *b)
{
	const struct name_ref *x = a, *y = b;
	int d = strcmp(x->name, y->name);

	if (d != 0)
		return d;
	return x->idx < y->idx ? -1 : (x->idx > y->idx);
}

/* Reports repeated names of list entries (mailbox names, reasons). */
static void
check_unique(struct ctx *c, const struct node *list, const char *lname,
    const char *field, char *const *names, size_t stride, size_t n,
    const char *what)
{
	struct name_ref *refs = xcalloc(n ? n : 1, sizeof(*refs));
	size_t i, k = 0, first;
	char path[300];

	for (i = 0; i < n; i++) {
		const char *nm =
		    *(char *const *)(const void *)((const char *)names +
		        i * stride);
		if (nm != NULL)
			refs[k++] = (struct name_ref){nm, i};
	}
	qsort(refs, k, sizeof(*refs), name_ref_cmp);
	for (i = 1, first = 0; i < k; i++) {
		const struct node *fn, *dn;
		if (strcmp(refs[i].name, refs[first].name) != 0) {
			first = i; /* start of a run of equal names */
			continue;
		}
		fn = map_get(list->kid[refs[first].idx], field);
		dn = map_get(list->kid[refs[i].idx], field);
		snprintf(path, sizeof(path), "%s[%zu].%s", lname, refs[i].idx,
		    field);
		err_node(c, dn, path, "duplicate %s '%s' (first at line %d)",
		    what, refs[i].name, fn ? fn->line : 0);
	}
	free(refs);
}

/* Builds cfg->classify_rules from classify.rules, reporting each rule the
 * classifier refuses at the field it names. */
static void
compile_class_rules(struct ctx *c, struct config *cfg, const struct node *list)
{
	size_t i;

	if (list == NULL || list->kind != N_SEQ || cfg->n_class_rules == 0)
		return;
	cfg->classify_rules = classify_rules_new();
	if (cfg->classify_rules == NULL)
		abort(); /* like every other allocation here */
	for (i = 0; i < cfg->n_class_rules && i < list->n; i++) {
		const struct classify_rule_config *rc = &cfg->class_rules[i];
		struct classify_rule_spec sp = {rc->name, rc->reason, rc->cls,
		    rc->status, rc->reply, rc->command, rc->mta, rc->phrase,
		    rc->domain};
		char msg[256], path[300], field[32];
		const struct node *at;
		size_t fl;

		if (rc->name == NULL || rc->reason == NULL)
			continue; /* reported as missing already */
		if (classify_rules_add(cfg->classify_rules, &sp, msg,
		        sizeof(msg)) == 0)
			continue;
		fl = strcspn(msg, ":");
		snprintf(field, sizeof(field), "%.*s", (int)(fl < 31 ? fl : 0),
		    msg);
		at = field[0] != '\0' ? map_get(list->kid[i], field) : NULL;
		snprintf(path, sizeof(path), "classify.rules[%zu]%s%s", i,
		    at != NULL ? "." : "", at != NULL ? field : "");
		err_node(c, at != NULL ? at : list->kid[i], path, "%s",
		    at != NULL && msg[fl] == ':' ? msg + fl + 2 : msg);
	}
}

/* The keys of one format, the secret's form, http:// only when asked
 * for, the default events. */
static void
webhook_post(struct ctx *c, const struct node *map, void *base,
    const char *path, const struct node *where)
{
	static const char *const std_events[] = {"suppression.added",
	    "suppression.lifted", "suppression.expired", "bounce.recorded",
	    "complaint.recorded", NULL};
	static const char *const lm_events[] = {"bounce.recorded",
	    "complaint.recorded", NULL};
	struct webhook_config *w = base;
	const char *const *def;
	const struct node *n;
	char full[300], msg[300];
	size_t i;

	w->line = where != NULL ? where->line : 0;
	if (w->url != NULL && strncmp(w->url, "http://", 7) == 0 &&
	    !w->plain_http) {
		join_path(full, sizeof(full), path, "url");
		err_node(c, key_node(map, "url", where), full,
		    "plain http:// sends events unencrypted; use https:// or "
		    "set plain_http: true");
	}
	if (w->secret != NULL &&
	    check_webhook_secret(w->secret, msg, sizeof(msg)) != 0) {
		const char *k =
		    given(map, "secret_file") ? "secret_file" : "secret";
		join_path(full, sizeof(full), path, k);
		err_node(c, key_node(map, k, where), full, "%s", msg);
	}
	if (w->format == CONFIG_WEBHOOK_STANDARD) {
		if (w->secret == NULL && !given(map, "secret_file")) {
			join_path(full, sizeof(full), path, "secret");
			err_node(c, where, full,
			    "required key is missing (or set secret_file)");
		}
		for (i = 0; i < 3; i++) {
			static const char *const lm_keys[] = {"username",
			    "password", "password_file"};
			if ((n = map_get(map, lm_keys[i])) == NULL)
				continue;
			join_path(full, sizeof(full), path, lm_keys[i]);
			err_node(c, n, full,
			    "only valid with format: listmonk");
		}
	} else {
		if (!given(map, "username")) {
			join_path(full, sizeof(full), path, "username");
			err_node(c, where, full,
			    "required with format: listmonk (an API user)");
		}
		if (!given(map, "password") && !given(map, "password_file")) {
			join_path(full, sizeof(full), path, "password");
			err_node(c, where, full,
			    "required with format: listmonk (or set "
			    "password_file)");
		}
	}
	if (w->backoff_min_ms > w->backoff_max_ms) {
		join_path(full, sizeof(full), path, "backoff_min");
		err_node(c, key_node(map, "backoff_min", where), full,
		    "must not exceed backoff_max");
	}
	n = map_get(map, "events");
	if (n != NULL && !node_is_null(n)) {
		if (n->kind == N_SEQ && n->n == 0) {
			join_path(full, sizeof(full), path, "events");
			err_node(c, n, full, "lists no event");
		}
		return;
	}
	def = w->format == CONFIG_WEBHOOK_LISTMONK ? lm_events : std_events;
	for (i = 0; def[i] != NULL; i++)
		;
	w->events = xcalloc(i, sizeof(char *));
	for (w->n_events = 0; def[w->n_events] != NULL; w->n_events++)
		w->events[w->n_events] = xstrdup(def[w->n_events]);
}

static void
root_post(struct ctx *c, const struct node *map, void *base, const char *path,
    const struct node *where)
{
	struct config *cfg = base;
	const struct node *db = map_get(map, "database");
	const struct node *mbs = map_get(map, "mailboxes");
	const struct node *supp = map_get(map, "suppression");
	const struct node *ovs = map_get(supp, "overrides");

	if (!given(db, "url") && !given(db, "url_file"))
		err_node(c, db && db->kind == N_MAP ? db : where,
		    "database.url",
		    "required key is missing (or set database.url_file)");
	if (node_is_null(mbs) || (mbs->kind == N_SEQ && mbs->n == 0))
		err_node(c, mbs ? mbs : where, "mailboxes",
		    "at least one mailbox is required");
	if (mbs != NULL && mbs->kind == N_SEQ && cfg->n_mailboxes > 0)
		check_unique(c, mbs, "mailboxes", "name",
		    &cfg->mailboxes[0].name, sizeof(struct mailbox_config),
		    cfg->n_mailboxes, "mailbox name");
	if (ovs != NULL && ovs->kind == N_SEQ && cfg->n_overrides > 0)
		check_unique(c, ovs, "suppression.overrides", "reason",
		    &cfg->overrides[0].reason,
		    sizeof(struct suppression_override), cfg->n_overrides,
		    "reason");
	if (map_get(map, "webhooks") != NULL &&
	    map_get(map, "webhooks")->kind == N_SEQ && cfg->n_webhooks > 0)
		check_unique(c, map_get(map, "webhooks"), "webhooks", "name",
		    &cfg->webhooks[0].name, sizeof(struct webhook_config),
		    cfg->n_webhooks, "webhook name");
	compile_class_rules(c, cfg, map_get(map_get(map, "classify"), "rules"));
}

/* ---- freeing ---- */

static void
free_table(const struct table *t, void *base)
{
	size_t i, j;

	for (i = 0; i < t->n; i++) {
		const struct key *k = &t->keys[i];
		switch (k->type) {
		case K_STR:
			free(*FIELD(base, k->off, char *));
			break;
		case K_STRLIST: {
			char **v = *FIELD(base, k->off, char **);
			for (j = 0; j < *FIELD(base, k->aux, size_t); j++)
				free(v[j]);
			free(v);
			break;
		}
		case K_MAP:
		case K_INLINE:
			free_table(k->sub, FIELD(base, k->off, char));
			break;
		case K_LIST: {
			char *arr = *FIELD(base, k->off, char *);
			for (j = 0; j < *FIELD(base, k->aux, size_t); j++)
				free_table(k->sub, arr + j * k->sub->elem_size);
			free(arr);
			break;
		}
		default:
			break;
		}
	}
}

void
config_free(struct config **cfg)
{
	if (cfg == NULL || *cfg == NULL)
		return;
	free_table(&root_table, *cfg);
	classify_rules_free((*cfg)->classify_rules);
	config_errors_free(&(*cfg)->warnings);
	free((*cfg)->path);
	free(*cfg);
	*cfg = NULL;
}

/* ---- loading ---- */

int
config_from_string(const char *name, const char *text, size_t len,
    struct config **out, struct config_errors *errs)
{
	struct ctx c;
	struct node *root = NULL;
	struct config *cfg = NULL;
	const char *slash = strrchr(name, '/');
	int bad = 0, rc = -1;

	memset(&c, 0, sizeof(c));
	c.name = name;
	c.text = text;
	c.len = len;
	if (slash != NULL)
		c.dir =
		    xstrndup(name, slash == name ? 1 : (size_t)(slash - name));
	*out = NULL;
	if (len > CONFIG_MAX_FILE_BYTES) {
		err_at(&c, 0, 0, NULL, "larger than %d bytes",
		    CONFIG_MAX_FILE_BYTES);
		goto out;
	}
	root = build_tree(&c, &bad);
	if (bad)
		goto out;
	if (node_is_null(root)) {
		err_at(&c, 0, 0, NULL, "the file is empty");
		goto out;
	}
	if (root->kind != N_MAP) {
		err_node(&c, root, NULL,
		    "the top level must be a mapping, got %s", kind_name(root));
		goto out;
	}
	cfg = xcalloc(1, sizeof(*cfg));
	cfg->path = xstrdup(name);
	c.cfg = cfg;
	check_keys(&c, root, &root_table, "");
	apply_table(&c, root, &root_table, cfg, "", root, 0);
	if (c.nerr > 0 || c.dropped > 0)
		goto out;
	*out = cfg;
	cfg = NULL;
	rc = 0;
out:
	flush_errors(&c, errs);
	config_free(&cfg);
	node_free(root);
	free(c.dir);
	return rc;
}

int
config_load(const char *path, struct config **out, struct config_errors *errs)
{
	struct err err = {""};
	char *text = NULL;
	size_t len = 0;
	int rc;

	*out = NULL;
	if (read_file(path, CONFIG_MAX_FILE_BYTES, &text, &len, &err) != 0) {
		if (errs != NULL) {
			errs->items = xrealloc(errs->items,
			    (errs->count + 1) * sizeof(*errs->items));
			errs->items[errs->count++] = xstrdup(err.msg);
		}
		return -1;
	}
	rc = config_from_string(path, text, len, out, errs);
	free(text);
	return rc;
}

/* ---- dump ---- */

/* Bytes fmt_value() needs for k: a masked URL, rebuilt as key='value',
 * may grow to about three times its length, and every byte may become a
 * 4-byte escape. */
static size_t
value_size(const struct key *k, const void *base)
{
	size_t size = 64 + sizeof(MASK) * 8, i;

	if (k->type == K_STR && *CFIELD(base, k->off, char *) != NULL)
		size += 16 * strlen(*CFIELD(base, k->off, char *));
	if (k->type == K_STRLIST) {
		char *const *v = *(
		    char **const *)(const void *)((const char *)base + k->off);
		for (i = 0; i < *CFIELD(base, k->aux, size_t); i++)
			size += 4 * strlen(v[i]) + 4;
	}
	return size;
}

static int
file_sibling_set(const struct table *t, const void *base, const char *name)
{
	const struct key *k = find_key(t, name);

	return k != NULL && *CFIELD(base, k->off, char *) != NULL;
}

static void
dump_table(FILE *fp, const struct table *t, const void *base, int indent,
    const char *first)
{
	size_t i, j;

	for (i = 0; i < t->n; i++) {
		const struct key *k = &t->keys[i];
		const char *lead = first != NULL ? first : "";
		int pad = first != NULL ? 0 : indent;

		if (k->type == K_INLINE) {
			dump_table(fp, k->sub, CFIELD(base, k->off, char),
			    indent, first);
			if (k->sub->n > 0)
				first = NULL;
			continue;
		}
		if (k->type == K_STR && k->excl != NULL &&
		    file_sibling_set(t, base, k->excl))
			continue;
		if (t->hide != NULL && t->hide(base, k->name))
			continue;
		if (k->type == K_MAP) {
			fprintf(fp, "%s%*s%s:\n", lead, pad, "", k->name);
			dump_table(fp, k->sub, CFIELD(base, k->off, char),
			    indent + 2, NULL);
		} else if (k->type == K_LIST) {
			const char *arr = *CFIELD(base, k->off, char *);
			size_t n = *CFIELD(base, k->aux, size_t);
			fprintf(fp, "%s%*s%s:%s\n", lead, pad, "", k->name,
			    n == 0 ? " []" : "");
			for (j = 0; j < n; j++) {
				char dash[64];
				snprintf(dash, sizeof(dash), "%*s- ",
				    indent + 2, "");
				dump_table(fp, k->sub,
				    arr + j * k->sub->elem_size, indent + 4,
				    dash);
			}
		} else {
			size_t size = value_size(k, base);
			char *val = xmalloc(size);
			int rc = fmt_value(k, base, 1, val, size);
			if (rc == 0)
				fprintf(fp, "%s%*s%s: %s\n", lead, pad, "",
				    k->name, val);
			free(val);
			if (rc != 0)
				continue;
		}
		first = NULL;
	}
}

void
config_dump(const struct config *cfg, FILE *fp)
{
	dump_table(fp, &root_table, cfg, 0, NULL);
}

/* ---- key list and look-ups ---- */

#define MAX_KEYS 128

static struct {
	pthread_once_t once;
	const char *names[MAX_KEYS + 1];
	const struct key *keys[MAX_KEYS];
	char store[MAX_KEYS][64];
	size_t n;
} keylist = {PTHREAD_ONCE_INIT};

static void
list_table(const struct table *t, const char *prefix)
{
	char path[64];
	size_t i;

	for (i = 0; i < t->n; i++) {
		const struct key *k = &t->keys[i];
		if (k->type == K_INLINE) {
			list_table(k->sub, prefix);
			continue;
		}
		join_path(path, sizeof(path), prefix, k->name);
		if (k->type == K_MAP) {
			list_table(k->sub, path);
		} else if (k->type == K_LIST) {
			size_t used = strlen(path);
			snprintf(path + used, sizeof(path) - used, "[]");
			list_table(k->sub, path);
		} else if (keylist.n < MAX_KEYS) {
			snprintf(keylist.store[keylist.n],
			    sizeof(keylist.store[0]), "%s", path);
			keylist.names[keylist.n] = keylist.store[keylist.n];
			keylist.keys[keylist.n] = k;
			keylist.n++;
		}
	}
}

static void
keylist_init(void)
{
	list_table(&root_table, "");
	keylist.names[keylist.n] = NULL;
}

const char *const *
config_key_names(void)
{
	pthread_once(&keylist.once, keylist_init);
	return keylist.names;
}

static const struct key *
key_by_name(const char *name)
{
	size_t i;

	pthread_once(&keylist.once, keylist_init);
	for (i = 0; i < keylist.n; i++)
		if (strcmp(keylist.names[i], name) == 0)
			return keylist.keys[i];
	return NULL;
}

int
config_key_reloadable(const char *key)
{
	const struct key *k = key_by_name(key);

	return k != NULL && !(k->flags & F_RESTART);
}

const char *
config_key_default(const char *key)
{
	const struct key *k = key_by_name(key);

	if (k == NULL)
		return NULL;
	if (k->def != NULL)
		return k->def;
	if (strcmp(key, "mailboxes[].port") == 0)
		return "995";
	return "";
}

/* Resolves a path like "mailboxes[1].port" to its key and base. */
static const struct key *
resolve(const struct config *cfg, const char *path, const void **base_out)
{
	const struct table *t = &root_table;
	const void *base = cfg;
	const char *p = path;

	for (;;) {
		char seg[64];
		size_t len = strcspn(p, ".["), idx = 0;
		const struct key *k;
		int has_idx = 0;

		if (len == 0 || len >= sizeof(seg))
			return NULL;
		memcpy(seg, p, len);
		seg[len] = '\0';
		p += len;
		if (*p == '[') {
			char *end;
			errno = 0;
			unsigned long long v = strtoull(p + 1, &end, 10);
			if (end == p + 1 || *end != ']' || errno != 0)
				return NULL;
			idx = (size_t)v;
			has_idx = 1;
			p = end + 1;
		}
		/* Inline keys live in a nested struct. */
		k = NULL;
		for (size_t i = 0; i < t->n && k == NULL; i++) {
			const struct key *e = &t->keys[i];
			if (e->type == K_INLINE) {
				for (size_t j = 0; j < e->sub->n; j++)
					if (strcmp(e->sub->keys[j].name, seg) ==
					    0) {
						k = &e->sub->keys[j];
						base =
						    CFIELD(base, e->off, char);
						break;
					}
			} else if (strcmp(e->name, seg) == 0) {
				k = e;
			}
		}
		if (k == NULL)
			return NULL;
		if (k->type == K_LIST) {
			if (!has_idx || idx >= *CFIELD(base, k->aux, size_t) ||
			    *p != '.')
				return NULL;
			base = *CFIELD(base, k->off, char *) +
			    idx * k->sub->elem_size;
			t = k->sub;
			p++;
			continue;
		}
		if (has_idx)
			return NULL;
		if (k->type == K_MAP) {
			if (*p != '.')
				return NULL;
			base = CFIELD(base, k->off, char);
			t = k->sub;
			p++;
			continue;
		}
		if (*p != '\0')
			return NULL;
		*base_out = base;
		return k;
	}
}

int
config_value(const struct config *cfg, const char *path, char *buf, size_t size)
{
	const void *base = NULL;
	const struct key *k = resolve(cfg, path, &base);

	if (k == NULL)
		return -1;
	if (fmt_value(k, base, 1, buf, size) != 0)
		snprintf(buf, size, "%s", "");
	return 0;
}

size_t
config_restart_changes(const struct config *old, const struct config *new_cfg,
    struct config_errors *errs)
{
	const char *const *names = config_key_names();
	char a[1024], b[1024];
	size_t i, changed = 0;

	for (i = 0; names[i] != NULL; i++) {
		const void *ba = NULL, *bb = NULL;
		const struct key *k;

		if (config_key_reloadable(names[i]) || strchr(names[i], '['))
			continue;
		k = resolve(old, names[i], &ba);
		if (k == NULL || resolve(new_cfg, names[i], &bb) == NULL)
			continue;
		if (fmt_value(k, ba, 0, a, sizeof(a)) != 0)
			a[0] = '\0';
		if (fmt_value(k, bb, 0, b, sizeof(b)) != 0)
			b[0] = '\0';
		if (strcmp(a, b) == 0)
			continue;
		changed++;
		if (errs != NULL) {
			errs->items = xrealloc(errs->items,
			    (errs->count + 1) * sizeof(*errs->items));
			errs->items[errs->count++] =
			    xasprintf("%s: restart needed to change it",
			        names[i]);
		}
	}
	return changed;
}

const struct mailbox_config *
config_mailbox(const struct config *cfg, const char *name)
{
	size_t i;

	for (i = 0; i < cfg->n_mailboxes; i++)
		if (strcmp(cfg->mailboxes[i].name, name) == 0)
			return &cfg->mailboxes[i];
	return NULL;
}
