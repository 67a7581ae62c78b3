/*
 * json.h - a small strict JSON reader (RFC 8259) for text from the
 * network: OAuth token endpoint responses and Amazon SES notifications.
 * It never allocates: a value is a view into the caller's text, checked
 * byte by byte, with nesting capped at JSON_MAX_DEPTH.  Text that breaks
 * off (a capped mail body) can still be read up to the break.
 */
#ifndef BOUNCER_JSON_H
#define BOUNCER_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/util.h"

/* Containers nested this deep (the outermost value has depth 0) are
 * refused. */
#define JSON_MAX_DEPTH 32

enum json_type {
	JSON_NONE, /* no value (the key of an array element) */
	JSON_NULL,
	JSON_FALSE,
	JSON_TRUE,
	JSON_NUMBER,
	JSON_STRING,
	JSON_ARRAY,
	JSON_OBJECT,
};

/*
 * A value: a view into the caller's text, valid as long as that text is.
 * p..p+len is the value as written (a string includes its quotes).
 * complete: the whole value was checked.  Only a container can be
 * incomplete: one opened by json_open(), or an element that breaks off
 * (truncated or malformed); len then runs to the end of the text and
 * json_next() reads its elements up to the break.
 */
struct json_val {
	const char *p;
	size_t len;
	enum json_type type;
	int depth; /* 0 for the outermost value */
	int complete;
};

/*
 * Checks the one value that starts after optional white space in s[0..n).
 * With end_out NULL only white space may follow it; otherwise *end_out is
 * the offset just after the value.  0 and *out (complete), or -1 with err
 * set to the reason and the byte offset ("no ':' at byte 12").
 */
int json_parse(const char *s, size_t n, struct json_val *out, size_t *end_out,
    struct err *err);

/*
 * Opens the value that starts after optional white space in s[0..n)
 * without checking a container to its end (for text that may be cut
 * off): a container's view runs to the end of s and is read with
 * json_next().  A scalar must be whole.  0 and *out, or -1.
 */
int json_open(const char *s, size_t n, struct json_val *out);

/*
 * Iterates over an array or object c.  Start with *pos = 0 and pass it
 * back unchanged.  1 ("more") with the next element in *val_out and, for
 * an object, its name (a JSON_STRING) in *key_out (JSON_NONE for an
 * array; key_out may be NULL); 0 at the closing bracket (and on any call
 * after it); -1 when c is not a container, is nested too deep, or its
 * text breaks off or is malformed here.  An element container that breaks
 * off is still returned (complete = 0) so that its first members can be
 * read; the call after it returns -1.
 */
int json_next(const struct json_val *c, size_t *pos, struct json_val *key_out,
    struct json_val *val_out);

/* The first member of object obj named key (compared after unescaping).
 * 0 and *out, or -1 (not an object, absent, or the text breaks off or is
 * malformed before it). */
int json_member(const struct json_val *obj, const char *key,
    struct json_val *out);

/* 1 if v is a string whose unescaped text equals s, else 0. */
int json_str_eq(const struct json_val *v, const char *s);

/* Appends the unescaped UTF-8 text of string v to out (U+0000 becomes a
 * NUL byte; the buffer's cap applies).  0, or -1 if v is not a string. */
int json_string(const struct json_val *v, struct buf *out);

/* Copies the unescaped text of string v into dst, cut at size - 1 bytes
 * and NUL-terminated (text after a U+0000 is lost).  0, or -1 if v is not
 * a string (dst is then ""). */
int json_strcpy(const struct json_val *v, char *dst, size_t size);

/* The value of number v when it is an integer (no fraction, no exponent),
 * saturated at INT64_MIN / INT64_MAX.  0 and *out, or -1. */
int json_int(const struct json_val *v, int64_t *out);

#endif
