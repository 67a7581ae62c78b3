/*
 * buf.h - growable byte buffer with a hard size cap, for every byte that
 * comes from the network.  Appending past the cap keeps the head (up to
 * the cap), drops the rest and sets the truncated flag; memory never grows
 * past the cap (plus one byte for a terminating NUL).
 */
#ifndef BOUNCER_BUF_H
#define BOUNCER_BUF_H

#include <stddef.h>

struct buf {
	char *data; /* NUL-terminated when len > 0 or after buf_cstr() */
	size_t len;
	size_t alloc;
	size_t cap; /* hard limit on len */
	int truncated; /* set once input beyond the cap was dropped */
};

/* Initialises an empty buffer that will never hold more than cap bytes. */
void buf_init(struct buf *b, size_t cap);
/* Appends; returns the number of bytes kept (< n when truncated). */
size_t buf_append(struct buf *b, const void *p, size_t n);
size_t buf_append_str(struct buf *b, const char *s);
/* Appends printf-style formatted text, of any length; past the cap it
 * keeps the head and sets truncated, as buf_append() does (the text is
 * never expanded beyond the room left).  Returns the number of bytes kept
 * (less than the formatted length when truncated), or -1 when the format
 * cannot be expanded (nothing appended). */
int buf_appendf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Appends s as a JSON string literal: quoted, with '"', '\\' and control
 * bytes escaped (\n \r \t or \u00XX); other bytes are copied as they are
 * (callers pass UTF-8).  NULL appends null. */
void buf_append_json_str(struct buf *b, const char *s);
/* Empties the buffer (keeps the allocation, clears truncated). */
void buf_reset(struct buf *b);
/* Returns a NUL-terminated view; valid until the next append or free. */
const char *buf_cstr(struct buf *b);
/* Frees the data; the buffer may be reused after buf_init(). */
void buf_free(struct buf *b);

#endif
