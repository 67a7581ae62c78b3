/*
 * config_dump.c - configuration values as text: durations, sizes, quoted
 * strings and connection strings with their secrets masked, the YAML dump
 * of --check-config, the list of documented keys with their defaults,
 * config_value() and the comparison of restart-only keys on reload.
 */
#include "config/config.h"

#include <errno.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/util.h"
#include "config/config_int.h"

/* ---- formatting ---- */

void
config_fmt_duration(int64_t ms, char *out, size_t n)
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

void
config_fmt_size(uint64_t v, char *out, size_t n)
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
		config_fmt_duration(*CFIELD(base, k->off, int64_t), out, n);
		return 0;
	case K_SIZE:
		config_fmt_size(*CFIELD(base, k->off, uint64_t), out, n);
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
	const struct key *k = config_find_key(t, name);

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
	dump_table(fp, &config_root_table, cfg, 0, NULL);
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
		config_join_path(path, sizeof(path), prefix, k->name);
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
	list_table(&config_root_table, "");
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
	const struct table *t = &config_root_table;
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
