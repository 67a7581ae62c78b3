/*
 * buf.c - capped byte buffer.  Growth doubles up to the cap; the
 * allocation is always len+1 at least so the data can be NUL-terminated.
 */
#include "base/buf.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

void
buf_init(struct buf *b, size_t cap)
{
	memset(b, 0, sizeof(*b));
	b->cap = cap;
}

static void
grow(struct buf *b, size_t need)
{
	size_t n = b->alloc ? b->alloc : 256;

	while (n < need + 1) {
		if (n > (b->cap + 1) / 2) {
			n = b->cap + 1;
			break;
		}
		n *= 2;
	}
	if (n < need + 1)
		n = need + 1;
	b->data = xrealloc(b->data, n);
	b->alloc = n;
}

size_t
buf_append(struct buf *b, const void *p, size_t n)
{
	size_t room = b->cap - b->len;
	size_t take = n < room ? n : room;

	if (take < n)
		b->truncated = 1;
	if (take == 0)
		return 0;
	if (b->len + take + 1 > b->alloc)
		grow(b, b->len + take);
	memcpy(b->data + b->len, p, take);
	b->len += take;
	b->data[b->len] = '\0';
	return take;
}

size_t
buf_append_str(struct buf *b, const char *s)
{
	return buf_append(b, s, strlen(s));
}

int
buf_appendf(struct buf *b, const char *fmt, ...)
{
	char tmp[256], *p = tmp;
	size_t room = b->cap - b->len, want;
	va_list ap, ap2;
	int n;

	va_start(ap, fmt);
	va_copy(ap2, ap);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	want = n > 0 ? (size_t)n : 0;
	if (want >= sizeof(tmp) && room >= sizeof(tmp)) {
		/* longer than the stack copy: format again what fits under
		 * the cap (the rest is dropped, as buf_append() does) */
		size_t len = want < room ? want : room;

		p = xmalloc(len + 1);
		vsnprintf(p, len + 1, fmt, ap2);
	}
	va_end(ap2);
	if (n < 0)
		return -1;
	if (want > 0) {
		/* p holds the first min(want, room) bytes at least */
		size_t have =
		    p == tmp && want >= sizeof(tmp) ? sizeof(tmp) - 1 : want;
		size_t kept = buf_append(b, p, have < room ? have : room);

		if (kept < want)
			b->truncated = 1;
		want = kept;
	}
	if (p != tmp)
		free(p);
	return want > INT_MAX ? INT_MAX : (int)want;
}

void
buf_append_json_str(struct buf *b, const char *s)
{
	char esc[8];

	if (s == NULL) {
		buf_append_str(b, "null");
		return;
	}
	buf_append(b, "\"", 1);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			buf_append(b, esc, 2);
		} else if (c == '\n') {
			buf_append(b, "\\n", 2);
		} else if (c == '\r') {
			buf_append(b, "\\r", 2);
		} else if (c == '\t') {
			buf_append(b, "\\t", 2);
		} else if (c < 0x20 || c == 0x7f) {
			snprintf(esc, sizeof(esc), "\\u%04x", c);
			buf_append(b, esc, 6);
		} else {
			buf_append(b, s, 1);
		}
	}
	buf_append(b, "\"", 1);
}

void
buf_reset(struct buf *b)
{
	b->len = 0;
	b->truncated = 0;
	if (b->data)
		b->data[0] = '\0';
}

const char *
buf_cstr(struct buf *b)
{
	if (b->data == NULL)
		return "";
	return b->data;
}

void
buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->alloc = 0;
	b->truncated = 0;
}
