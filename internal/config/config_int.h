/*
 * config_int.h - internals shared by the files of the configuration
 * loader: the positioned YAML tree, the error collector, the key table
 * types and the tables themselves, and the helpers each file calls in
 * another.  Not part of the public API: only internal/config includes it.
 */
#ifndef BOUNCER_CONFIG_INT_H
#define BOUNCER_CONFIG_INT_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

#define MAX_DEPTH 32
#define MAX_SECRET_FILE (64 * 1024)
#define MAX_VALUE_BYTES (64 * 1024)
#define MASK "********"

/* ---- positioned YAML tree (config.c) ---- */

enum nkind { N_SCALAR, N_MAP, N_SEQ };

struct node {
	enum nkind kind;
	int plain; /* plain scalar: may be null */
	char *val; /* scalar text, NUL-terminated */
	int line, col; /* 1-based */
	struct node **kid; /* map: key, value, key, value ... */
	size_t n, alloc;
};

/* ---- error collection (config.c) ---- */

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

#define SEC 1000LL
#define MIN (60 * SEC)
#define HOUR (60 * MIN)
#define DAY (24 * HOUR)
#define KIB 1024LL
#define MIB (1024 * KIB)
#define GIB (1024 * MIB)

#define KEY(n, t, o, ...) \
	{ \
		.name = n, .type = t, .off = o, __VA_ARGS__ \
	}

/* The tables: root (config_keys.c), mailbox and poll (config_mailbox.c),
 * webhook (config_webhook.c), classify rule (config_classify.c). */
extern const struct table config_root_table;
extern const struct table config_poll_table;
extern const struct table config_mailbox_table;
extern const struct table config_webhook_table;
extern const struct table config_class_rule_table;

/* ---- config.c ---- */

/* 1 for an absent node or a plain null scalar ("", ~, null). */
int config_node_is_null(const struct node *n);
/* Value node of key in a mapping; NULL if absent. */
const struct node *config_map_get(const struct node *map, const char *key);
/* 1 if key is present with a value (a null value counts as absent). */
int config_given(const struct node *map, const char *key);
/* Records "file:line:col: path: message" at node n (NULL: no position). */
void config_err_node(struct ctx *c, const struct node *n, const char *path,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* prefix.name into out (name alone when prefix is ""). */
void config_join_path(char *out, size_t n, const char *prefix,
    const char *name);
/* Key name of table t, looking into inline sub-tables; NULL if none. */
const struct key *config_find_key(const struct table *t, const char *name);

/* ---- config_keys.c ---- */

/* Value checks of check_fn form: 0, or -1 with the reason in msg. */
int config_check_name(const char *v, char *msg, size_t n);
int config_check_host(const char *v, char *msg, size_t n);
int config_check_https(const char *v, char *msg, size_t n);
int config_check_nonempty(const char *v, char *msg, size_t n);
int config_check_reason(const char *v, char *msg, size_t n);
/* A byte allowed in a header name (RFC 5322 ftext). */
int config_header_char(unsigned char ch);
/* ${VAR} expansion of scalar nd; NULL with an error recorded. */
char *config_expand(struct ctx *c, const struct node *nd, const char *path);
/* Converts text v for scalar key k into base.  nd (may be NULL for
 * defaults) locates errors.  0 or -1. */
int config_set_scalar(struct ctx *c, const struct key *k, const struct node *nd,
    const char *path, const char *v, void *base);
/* The node of key in map, else dflt: where to report a cross-key error. */
const struct node *config_key_node(const struct node *map, const char *key,
    const struct node *dflt);

/* ---- config_classify.c ---- */

/* Builds cfg->classify_rules from classify.rules (list). */
void config_compile_class_rules(struct ctx *c, struct config *cfg,
    const struct node *list);

/* ---- config_dump.c ---- */

/* "1h30m", "0"; "4MiB", "512": as the parsers read them back. */
void config_fmt_duration(int64_t ms, char *out, size_t n);
void config_fmt_size(uint64_t v, char *out, size_t n);

#endif
