/*
 * config_keys.c - the key table of the configuration file (type, default,
 * range, secret, restart-only) for the top-level sections and suppression
 * overrides, the string syntax checks of values, the conversion of one
 * scalar (${VAR} expansion, secret files, numbers, durations, sizes,
 * enums) and the checks that span sections.
 */
#include "config/config.h"

#include <ctype.h>
#include <errno.h>
#include <libpq-fe.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"
#include "config/config_int.h"
#include "decode/classify.h"

static const char *const action_names[] = {"hard_after", "never", NULL};
static const char *const level_names[] = {"debug", "info", "warn", "error",
    NULL};
static const char *const format_names[] = {"text", "json", NULL};

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

int
config_header_char(unsigned char ch)
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

int
config_check_name(const char *v, char *msg, size_t n)
{
	return check_token(v, 64, name_char,
	    "a valid mailbox name (1 to 64 of A-Z a-z 0-9 . _ -)", msg, n);
}

int
config_check_host(const char *v, char *msg, size_t n)
{
	return check_token(v, 253, host_char, "a valid host name", msg, n);
}

static int
check_header(const char *v, char *msg, size_t n)
{
	return check_token(v, 76, config_header_char, "a valid header name",
	    msg, n);
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

int
config_check_https(const char *v, char *msg, size_t n)
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

int
config_check_reason(const char *v, char *msg, size_t n)
{
	if (!classify_reason_valid(v)) {
		snprintf(msg, n, "'%s' is not a known bounce reason", v);
		return -1;
	}
	return 0;
}

int
config_check_nonempty(const char *v, char *msg, size_t n)
{
	if (v[0] == '\0') {
		snprintf(msg, n, "is empty");
		return -1;
	}
	return 0;
}

/* ---- tables: suppression overrides and the top-level sections ---- */

#define OV(f) offsetof(struct suppression_override, f)
static const struct key override_keys[] = {
    KEY("reason", K_STR, OV(reason), .flags = F_REQ,
        .check = config_check_reason),
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
    KEY("rules", K_LIST, CF(class_rules), .sub = &config_class_rule_table,
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
    KEY("defaults", K_MAP, CF(defaults), .sub = &config_poll_table),
    KEY("extract", K_MAP, 0, .sub = &extract_table),
    KEY("suppression", K_MAP, 0, .sub = &suppression_table),
    KEY("retention", K_MAP, 0, .sub = &retention_table),
    KEY("classify", K_MAP, 0, .sub = &classify_table),
    KEY("mailboxes", K_LIST, CF(mailboxes), .sub = &config_mailbox_table,
        .aux = CF(n_mailboxes)),
    KEY("webhooks", K_LIST, CF(webhooks), .sub = &config_webhook_table,
        .aux = CF(n_webhooks)),
};

static void root_post(struct ctx *c, const struct node *map, void *base,
    const char *path, const struct node *where);

const struct table config_root_table = {.keys = root_keys,
    .n = NELEM(root_keys),
    .post = root_post};

/* ---- conversion of one scalar ---- */

/* ${VAR} expansion; NULL with an error recorded. */
char *
config_expand(struct ctx *c, const struct node *nd, const char *path)
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
				config_err_node(c, nd, path,
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
				config_err_node(c, nd, path,
				    "invalid variable name in '%.*s'",
				    (int)(nl > 64 ? 64 : nl) + 3, s);
				goto fail;
			}
			memcpy(name, s + 2, nl);
			name[nl] = '\0';
			val = getenv(name);
			if (val == NULL) {
				config_err_node(c, nd, path,
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
			config_err_node(c, nd, path,
			    "value longer than %d bytes", MAX_VALUE_BYTES);
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
		config_err_node(c, nd, path, "%s", err.msg);
		return NULL;
	}
	if (len > 0 && data[len - 1] == '\n')
		data[--len] = '\0';
	if (len > 0 && data[len - 1] == '\r')
		data[--len] = '\0';
	if (len == 0 || strlen(data) != len) {
		config_err_node(c, nd, path, "%s: %s", file,
		    len == 0 ? "file is empty" : "file contains a NUL byte");
		free(data);
		return NULL;
	}
	if (strpbrk(data, "\r\n") != NULL) {
		config_err_node(c, nd, path,
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
	config_err_node(c, nd, path, "'%s' is not one of %s", v, list);
	return -1;
}

/* Converts text v for scalar key k into base.  nd (may be NULL for
 * defaults) locates errors. */
int
config_set_scalar(struct ctx *c, const struct key *k, const struct node *nd,
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
			config_err_node(c, nd, path, "%s", msg);
			return -1;
		}
		if ((k->flags & F_REQ) && v[0] == '\0') {
			config_err_node(c, nd, path, "is empty");
			return -1;
		}
		if ((k->flags & F_SECRET) && strpbrk(v, "\r\n") != NULL) {
			config_err_node(c, nd, path,
			    "holds a line break (CR or LF); no login can send "
			    "it");
			return -1;
		}
		free(*field);
		*field = NULL;
		if ((k->flags & (F_FILE | F_LOADS)) && v[0] == '\0') {
			config_err_node(c, nd, path, "is empty");
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
				config_err_node(c, nd, path, "%s: %s", file,
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
			config_err_node(c, nd, path, "%s", err.msg);
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
			config_err_node(c, nd, path,
			    "'%s' is not true or false", v);
			return -1;
		}
		return 0;
	case K_DUR:
		if (parse_duration_ms(v, &i64, &err) != 0) {
			config_err_node(c, nd, path, "%s", err.msg);
			return -1;
		}
		if (i64 < k->min || i64 > k->max) {
			config_fmt_duration(k->min, lo, sizeof(lo));
			config_fmt_duration(k->max, hi, sizeof(hi));
			config_err_node(c, nd, path,
			    "%s is out of range (%s..%s)", v, lo, hi);
			return -1;
		}
		*FIELD(base, k->off, int64_t) = i64;
		return 0;
	case K_SIZE:
		if (parse_size(v, &u64, &err) != 0) {
			config_err_node(c, nd, path, "%s", err.msg);
			return -1;
		}
		if (u64 < (uint64_t)k->min || u64 > (uint64_t)k->max) {
			config_fmt_size((uint64_t)k->min, lo, sizeof(lo));
			config_fmt_size((uint64_t)k->max, hi, sizeof(hi));
			config_err_node(c, nd, path,
			    "%s is out of range (%s..%s)", v, lo, hi);
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

/* ---- cross-key checks ---- */

const struct node *
config_key_node(const struct node *map, const char *key,
    const struct node *dflt)
{
	const struct node *n = config_map_get(map, key);

	return n != NULL ? n : dflt;
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
	    config_node_is_null(config_map_get(map, "count"))
	    ? NULL
	    : config_map_get(map, "count");
	char full[300];

	const struct node *act = config_map_get(map, "action");

	config_join_path(full, sizeof(full), path, "count");
	/* Nothing to add when the action itself is missing or wrong. */
	if (act == NULL || act->kind != N_SCALAR ||
	    (strcmp(act->val, "hard_after") != 0 &&
	        strcmp(act->val, "never") != 0))
		return;
	if (o->action == CONFIG_OVERRIDE_HARD_AFTER && cnt == NULL)
		config_err_node(c, where, full,
		    "required key is missing (action hard_after needs it)");
	else if (o->action == CONFIG_OVERRIDE_NEVER && cnt != NULL)
		config_err_node(c, cnt, full, "not allowed with action never");
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
		fn = config_map_get(list->kid[refs[first].idx], field);
		dn = config_map_get(list->kid[refs[i].idx], field);
		snprintf(path, sizeof(path), "%s[%zu].%s", lname, refs[i].idx,
		    field);
		config_err_node(c, dn, path,
		    "duplicate %s '%s' (first at line %d)", what, refs[i].name,
		    fn ? fn->line : 0);
	}
	free(refs);
}

static void
root_post(struct ctx *c, const struct node *map, void *base, const char *path,
    const struct node *where)
{
	struct config *cfg = base;
	const struct node *db = config_map_get(map, "database");
	const struct node *mbs = config_map_get(map, "mailboxes");
	const struct node *supp = config_map_get(map, "suppression");
	const struct node *ovs = config_map_get(supp, "overrides");

	if (!config_given(db, "url") && !config_given(db, "url_file"))
		config_err_node(c, db && db->kind == N_MAP ? db : where,
		    "database.url",
		    "required key is missing (or set database.url_file)");
	if (config_node_is_null(mbs) || (mbs->kind == N_SEQ && mbs->n == 0))
		config_err_node(c, mbs ? mbs : where, "mailboxes",
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
	if (config_map_get(map, "webhooks") != NULL &&
	    config_map_get(map, "webhooks")->kind == N_SEQ &&
	    cfg->n_webhooks > 0)
		check_unique(c, config_map_get(map, "webhooks"), "webhooks",
		    "name", &cfg->webhooks[0].name,
		    sizeof(struct webhook_config), cfg->n_webhooks,
		    "webhook name");
	config_compile_class_rules(c, cfg,
	    config_map_get(config_map_get(map, "classify"), "rules"));
}
