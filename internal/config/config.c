/*
 * config.c - YAML configuration: libyaml events -> a small positioned tree
 * -> struct config, walked along the key table (config_keys.c).  Anchors,
 * aliases, tags and extra documents are refused while building the tree,
 * so hostile input costs at most its own size (capped at
 * CONFIG_MAX_FILE_BYTES).  Every error carries file:line:col.
 */
#include "config/config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "base/util.h"
#include "config/config_int.h"
#include "decode/classify.h"

_Static_assert(sizeof(enum config_tls) == sizeof(int), "enum size");
_Static_assert(sizeof(enum log_level) == sizeof(int), "enum size");

/* ---- positioned YAML tree ---- */

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

int
config_node_is_null(const struct node *n)
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
const struct node *
config_map_get(const struct node *map, const char *key)
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
int
config_given(const struct node *map, const char *key)
{
	return !config_node_is_null(config_map_get(map, key));
}

/* ---- error collection ---- */

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

void
config_err_node(struct ctx *c, const struct node *n, const char *path,
    const char *fmt, ...)
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
				config_err_node(c, n, NULL,
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
			config_err_node(c, n, NULL,
			    "anchors and aliases are not allowed");
			*bad = 1;
		}
		if (tag != NULL) {
			config_err_node(c, n, NULL, "tags are not allowed");
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
					config_err_node(c, n, NULL,
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

/* ---- the walk ---- */

static void apply_table(struct ctx *c, const struct node *map,
    const struct table *t, void *base, const char *prefix,
    const struct node *where, int inherit);

void
config_join_path(char *out, size_t n, const char *prefix, const char *name)
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

const struct key *
config_find_key(const struct table *t, const char *name)
{
	size_t i;

	for (i = 0; i < t->n; i++) {
		const struct key *k = &t->keys[i];
		if (k->type == K_INLINE) {
			const struct key *s = config_find_key(k->sub, name);
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
			config_err_node(c, kn, prefix,
			    "keys must be scalars, got %s", kind_name(kn));
			continue;
		}
		config_join_path(path, sizeof(path), prefix, kn->val);
		k = config_find_key(t, kn->val);
		if (k == NULL) {
			const char *best = NULL;
			size_t dist = 3;
			if (c->nerr < CONFIG_MAX_ERRORS)
				suggest(t, kn->val, &best, &dist);
			if (best != NULL && dist < strlen(kn->val))
				config_err_node(c, kn, path,
				    "unknown key (did you mean '%s'?)", best);
			else
				config_err_node(c, kn, path, "unknown key");
			continue;
		}
		/* Duplicate detection over the known keys only. */
		for (j = 0; j < NELEM(firsts) && firsts[j] != NULL; j++)
			if (strcmp(firsts[j]->val, kn->val) == 0)
				break;
		if (j < NELEM(firsts) && firsts[j] != NULL)
			config_err_node(c, kn, path,
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

	if (config_node_is_null(val))
		return;
	if (val->kind != N_SEQ) {
		config_err_node(c, val, path, "expected a sequence, got %s",
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
				config_err_node(c, e, ipath,
				    "expected a scalar, got %s", kind_name(e));
				continue;
			}
			if ((v = config_expand(c, e, ipath)) == NULL)
				continue;
			if (k->check != NULL &&
			    k->check(v, msg, sizeof(msg)) != 0) {
				config_err_node(c, e, ipath, "%s", msg);
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
			config_err_node(c, e, ipath,
			    "expected a mapping, got %s", kind_name(e));
			continue;
		}
		if (t == &config_mailbox_table)
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
		config_join_path(path, sizeof(path), prefix, k->name);
		val = config_map_get(map, k->name);
		if (!config_node_is_null(val) && k->excl != NULL &&
		    config_given(map, k->excl))
			config_err_node(c, val, path,
			    "cannot be combined with %s", k->excl);
		switch (k->type) {
		case K_MAP:
			if (val != NULL && !config_node_is_null(val) &&
			    val->kind != N_MAP) {
				config_err_node(c, val, path,
				    "expected a mapping, got %s",
				    kind_name(val));
				val = NULL;
			}
			if (config_node_is_null(val))
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
			config_err_node(c, val, path,
			    "expected a scalar, got %s", kind_name(val));
			continue;
		}
		if (config_node_is_null(val)) {
			if (k->flags & F_REQ) {
				if (val != NULL)
					config_err_node(c, val, path,
					    "is empty");
				else
					config_err_node(c, where, path,
					    "required key is missing");
			} else if (k->def != NULL &&
			    !(inherit && val == NULL)) {
				config_set_scalar(c, k, NULL, path, k->def,
				    base);
			}
			continue;
		}
		char *v = config_expand(c, val, path);
		/* After a bad value, later cross-checks see the default. */
		if ((v == NULL ||
		        config_set_scalar(c, k, val, path, v, base) != 0) &&
		    k->def != NULL && !inherit)
			config_set_scalar(c, k, NULL, path, k->def, base);
		free(v);
	}
	if (t->post != NULL)
		t->post(c, map, base, prefix, where);
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
	free_table(&config_root_table, *cfg);
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
	if (config_node_is_null(root)) {
		err_at(&c, 0, 0, NULL, "the file is empty");
		goto out;
	}
	if (root->kind != N_MAP) {
		config_err_node(&c, root, NULL,
		    "the top level must be a mapping, got %s", kind_name(root));
		goto out;
	}
	cfg = xcalloc(1, sizeof(*cfg));
	cfg->path = xstrdup(name);
	c.cfg = cfg;
	check_keys(&c, root, &config_root_table, "");
	apply_table(&c, root, &config_root_table, cfg, "", root, 0);
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
