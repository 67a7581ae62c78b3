/*
 * json.c - the strict JSON reader of json.h (RFC 8259): a tokenizer over
 * a [p, end) window that checks strings (escapes, \u surrogate pairs, no
 * raw control bytes), numbers and literals, and skips containers with a
 * depth cap.  Values are views into the caller's text; decoding a string
 * writes into a capped buffer or a fixed array.  Nothing is allocated.
 */
#include "base/json.h"

#include <string.h>

/* Cursor states of json_next() after the closing bracket / a break. */
#define POS_END SIZE_MAX
#define POS_BROKEN (SIZE_MAX - 1)

struct js {
	const char *base; /* offsets in messages count from here */
	const char *p, *end;
	const char *why; /* reason of the first failure */
};

/* Where decoded string bytes go: a buffer, a fixed array, or a
 * comparison against a C string. */
struct sink {
	struct buf *b;
	char *dst;
	size_t size;
	const char *cmp;
	size_t n; /* bytes produced so far */
	int diff; /* cmp: a byte differed or cmp ended */
};

static int
fail(struct js *j, const char *why)
{
	if (j->why == NULL)
		j->why = why;
	return -1;
}

static void
js_ws(struct js *j)
{
	while (j->p < j->end &&
	    (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
		j->p++;
}

static enum json_type
type_of(char ch)
{
	switch (ch) {
	case '"':
		return JSON_STRING;
	case '{':
		return JSON_OBJECT;
	case '[':
		return JSON_ARRAY;
	case 't':
		return JSON_TRUE;
	case 'f':
		return JSON_FALSE;
	case 'n':
		return JSON_NULL;
	default:
		return (ch == '-' || (ch >= '0' && ch <= '9')) ? JSON_NUMBER
		                                               : JSON_NONE;
	}
}

static void
sink_put(struct sink *k, const char *p, size_t n)
{
	if (k == NULL)
		return;
	if (k->b != NULL)
		buf_append(k->b, p, n);
	if (k->dst != NULL && k->n + 1 < k->size) {
		size_t room = k->size - 1 - k->n;
		size_t c = n < room ? n : room;

		memcpy(k->dst + k->n, p, c);
		k->dst[k->n + c] = '\0';
	}
	if (k->cmp != NULL)
		for (size_t i = 0; i < n && !k->diff; i++)
			if (k->cmp[k->n + i] == '\0' ||
			    k->cmp[k->n + i] != p[i])
				k->diff = 1;
	k->n += n;
}

static int
hex4(const char *p, unsigned *out)
{
	unsigned v = 0;

	for (int i = 0; i < 4; i++) {
		char ch = p[i];

		v <<= 4;
		if (ch >= '0' && ch <= '9')
			v |= (unsigned)(ch - '0');
		else if (ch >= 'a' && ch <= 'f')
			v |= (unsigned)(ch - 'a' + 10);
		else if (ch >= 'A' && ch <= 'F')
			v |= (unsigned)(ch - 'A' + 10);
		else
			return -1;
	}
	*out = v;
	return 0;
}

static void
put_utf8(struct sink *k, unsigned cp)
{
	char u[4];
	size_t n;

	if (cp < 0x80) {
		u[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (char)(0xC0 | (cp >> 6));
		u[1] = (char)(0x80 | (cp & 0x3F));
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = (char)(0xE0 | (cp >> 12));
		u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		u[2] = (char)(0x80 | (cp & 0x3F));
		n = 3;
	} else {
		u[0] = (char)(0xF0 | (cp >> 18));
		u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
		u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
		u[3] = (char)(0x80 | (cp & 0x3F));
		n = 4;
	}
	sink_put(k, u, n);
}

/* The code point of the \u escape at j->p (just after "\u"), joining a
 * surrogate pair.  0 or -1. */
static int
js_unicode(struct js *j, unsigned *cp_out)
{
	unsigned cp, lo;

	if (j->end - j->p < 4 || hex4(j->p, &cp) != 0)
		return -1;
	j->p += 4;
	if (cp >= 0xDC00 && cp <= 0xDFFF)
		return -1; /* lone low surrogate */
	if (cp >= 0xD800 && cp <= 0xDBFF) {
		if (j->end - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u' ||
		    hex4(j->p + 2, &lo) != 0 || lo < 0xDC00 || lo > 0xDFFF)
			return -1;
		j->p += 6;
		cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
	}
	*cp_out = cp;
	return 0;
}

/* The code point of the escape after a backslash at j->p.  0 or -1. */
static int
js_escape(struct js *j, unsigned *cp_out)
{
	static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
	const char *hit;
	char ch;

	if (j->end - j->p < 2)
		return -1;
	ch = j->p[1];
	j->p += 2;
	if (ch == 'u')
		return js_unicode(j, cp_out);
	if (ch == '\0' || (hit = strchr(from, ch)) == NULL)
		return -1;
	*cp_out = (unsigned char)to[hit - from];
	return 0;
}

/* A string at j->p (the opening quote), decoded into k when k is not
 * NULL.  0 or -1. */
static int
js_string(struct js *j, struct sink *k)
{
	if (j->p >= j->end || *j->p != '"')
		return fail(j, "bad string");
	j->p++;
	while (j->p < j->end) {
		const char *run = j->p;
		unsigned cp;

		while (j->p < j->end && *j->p != '"' && *j->p != '\\' &&
		    (unsigned char)*j->p >= 0x20)
			j->p++;
		sink_put(k, run, (size_t)(j->p - run));
		if (j->p >= j->end)
			break;
		if (*j->p == '"') {
			j->p++;
			return 0;
		}
		if (*j->p != '\\')
			return fail(j, "control byte in a string");
		if (js_escape(j, &cp) != 0)
			return fail(j, "bad escape in a string");
		put_utf8(k, cp);
	}
	return fail(j, "unterminated string");
}

static int
is_digit(const struct js *j)
{
	return j->p < j->end && *j->p >= '0' && *j->p <= '9';
}

/* A number: -? int frac? exp?  0 or -1. */
static int
js_number(struct js *j)
{
	if (j->p < j->end && *j->p == '-')
		j->p++;
	if (!is_digit(j))
		return fail(j, "bad number");
	if (*j->p == '0')
		j->p++;
	else
		while (is_digit(j))
			j->p++;
	if (j->p < j->end && *j->p == '.') {
		j->p++;
		if (!is_digit(j))
			return fail(j, "bad number");
		while (is_digit(j))
			j->p++;
	}
	if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
		j->p++;
		if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
			j->p++;
		if (!is_digit(j))
			return fail(j, "bad number");
		while (is_digit(j))
			j->p++;
	}
	return 0;
}

static int
js_lit(struct js *j, const char *lit)
{
	size_t n = strlen(lit);

	if ((size_t)(j->end - j->p) < n || memcmp(j->p, lit, n) != 0)
		return fail(j, "bad value");
	j->p += n;
	return 0;
}

static int js_skip(struct js *j, int depth);

/* The members or elements of the container opening at j->p.  0 or -1. */
static int
js_container(struct js *j, int depth)
{
	char close = *j->p == '{' ? '}' : ']';

	if (depth >= JSON_MAX_DEPTH)
		return fail(j, "nested too deep");
	j->p++;
	js_ws(j);
	if (j->p < j->end && *j->p == close) {
		j->p++;
		return 0;
	}
	for (;;) {
		if (close == '}') {
			js_ws(j);
			if (js_string(j, NULL) != 0) {
				j->why = "bad member name";
				return -1;
			}
			js_ws(j);
			if (j->p >= j->end || *j->p != ':')
				return fail(j, "no ':'");
			j->p++;
		}
		if (js_skip(j, depth + 1) != 0)
			return -1;
		js_ws(j);
		if (j->p < j->end && *j->p == close) {
			j->p++;
			return 0;
		}
		if (j->p >= j->end || *j->p != ',')
			return fail(j,
			    close == '}' ? "expected ',' or '}'"
			                 : "expected ',' or ']'");
		j->p++;
	}
}

/* Checks and skips any value at nesting depth.  0 or -1. */
static int
js_skip(struct js *j, int depth)
{
	js_ws(j);
	if (j->p >= j->end)
		return fail(j, "truncated");
	switch (type_of(*j->p)) {
	case JSON_STRING:
		return js_string(j, NULL);
	case JSON_TRUE:
		return js_lit(j, "true");
	case JSON_FALSE:
		return js_lit(j, "false");
	case JSON_NULL:
		return js_lit(j, "null");
	case JSON_NUMBER:
		return js_number(j);
	case JSON_OBJECT:
	case JSON_ARRAY:
		return js_container(j, depth);
	default:
		return fail(j, "bad value");
	}
}

int
json_parse(const char *s, size_t n, struct json_val *out, size_t *end_out,
    struct err *err)
{
	struct js j = {s, s, s + n, NULL};
	const char *start;

	memset(out, 0, sizeof(*out));
	js_ws(&j);
	start = j.p;
	if (js_skip(&j, 0) != 0) {
		err_set(err, "%s at byte %zu", j.why ? j.why : "bad value",
		    (size_t)(j.p - s));
		return -1;
	}
	if (end_out != NULL)
		*end_out = (size_t)(j.p - s);
	else {
		js_ws(&j);
		if (j.p != j.end) {
			err_set(err, "data after the value at byte %zu",
			    (size_t)(j.p - s));
			return -1;
		}
	}
	out->p = start;
	out->len = (size_t)(j.p - start);
	out->type = type_of(*start);
	out->complete = 1;
	return 0;
}

int
json_open(const char *s, size_t n, struct json_val *out)
{
	struct js j = {s, s, s + n, NULL};
	const char *start;

	memset(out, 0, sizeof(*out));
	js_ws(&j);
	if (j.p >= j.end || type_of(*j.p) == JSON_NONE)
		return -1;
	start = j.p;
	out->p = start;
	out->type = type_of(*start);
	if (out->type == JSON_OBJECT || out->type == JSON_ARRAY) {
		out->len = (size_t)(j.end - start);
		return 0;
	}
	if (js_skip(&j, 0) != 0) {
		memset(out, 0, sizeof(*out));
		return -1;
	}
	out->len = (size_t)(j.p - start);
	out->complete = 1;
	return 0;
}

/* Moves j to the next element of c (after '[' / ',', or at the end).
 * 1 at an element, 0 at the closing bracket (consumed), -1 broken. */
static int
next_start(const struct json_val *c, struct js *j, int first)
{
	char close = c->type == JSON_OBJECT ? '}' : ']';

	if (first) {
		if (j->p >= j->end || *j->p != (close == '}' ? '{' : '['))
			return -1;
		j->p++;
	}
	js_ws(j);
	if (j->p < j->end && *j->p == close) {
		j->p++;
		return 0;
	}
	if (first)
		return 1;
	if (j->p >= j->end || *j->p != ',')
		return -1;
	j->p++;
	return 1;
}

/* The member name and ':' at j->p into *key_out.  0 or -1. */
static int
next_key(const struct json_val *c, struct js *j, struct json_val *key_out)
{
	const char *start;

	js_ws(j);
	start = j->p;
	if (js_string(j, NULL) != 0)
		return -1;
	if (key_out != NULL) {
		key_out->p = start;
		key_out->len = (size_t)(j->p - start);
		key_out->type = JSON_STRING;
		key_out->depth = c->depth + 1;
		key_out->complete = 1;
	}
	js_ws(j);
	if (j->p >= j->end || *j->p != ':')
		return -1;
	j->p++;
	return 0;
}

int
json_next(const struct json_val *c, size_t *pos, struct json_val *key_out,
    struct json_val *val_out)
{
	struct js j;
	const char *start;
	int rc;

	memset(val_out, 0, sizeof(*val_out));
	if (key_out != NULL)
		memset(key_out, 0, sizeof(*key_out));
	if ((c->type != JSON_OBJECT && c->type != JSON_ARRAY) ||
	    c->depth >= JSON_MAX_DEPTH || *pos == POS_BROKEN)
		return -1;
	if (*pos == POS_END)
		return 0;
	if (*pos > c->len)
		return -1;
	j = (struct js){c->p, c->p + *pos, c->p + c->len, NULL};
	rc = next_start(c, &j, *pos == 0);
	if (rc == 0) {
		*pos = POS_END;
		return 0;
	}
	if (rc < 0 || (c->type == JSON_OBJECT && next_key(c, &j, key_out) != 0))
		goto broken;
	js_ws(&j);
	start = j.p;
	if (start >= j.end || type_of(*start) == JSON_NONE)
		goto broken;
	val_out->p = start;
	val_out->type = type_of(*start);
	val_out->depth = c->depth + 1;
	if (js_skip(&j, c->depth + 1) == 0) {
		val_out->len = (size_t)(j.p - start);
		val_out->complete = 1;
		*pos = (size_t)(j.p - c->p);
		return 1;
	}
	if (val_out->type == JSON_OBJECT || val_out->type == JSON_ARRAY) {
		/* breaks off inside: readable up to the break */
		val_out->len = (size_t)(j.end - start);
		*pos = POS_BROKEN;
		return 1;
	}
broken:
	memset(val_out, 0, sizeof(*val_out));
	if (key_out != NULL)
		memset(key_out, 0, sizeof(*key_out));
	*pos = POS_BROKEN;
	return -1;
}

int
json_member(const struct json_val *obj, const char *key, struct json_val *out)
{
	struct json_val k;
	size_t pos = 0;

	if (obj->type != JSON_OBJECT)
		return -1;
	while (json_next(obj, &pos, &k, out) == 1)
		if (json_str_eq(&k, key))
			return 0;
	memset(out, 0, sizeof(*out));
	return -1;
}

/* Decodes string v into k.  0 or -1 (not a string). */
static int
decode(const struct json_val *v, struct sink *k)
{
	struct js j;

	if (v->type != JSON_STRING)
		return -1;
	j = (struct js){v->p, v->p, v->p + v->len, NULL};
	return js_string(&j, k);
}

int
json_str_eq(const struct json_val *v, const char *s)
{
	struct sink k = {.cmp = s};

	if (decode(v, &k) != 0)
		return 0;
	return !k.diff && s[k.n] == '\0';
}

int
json_string(const struct json_val *v, struct buf *out)
{
	struct sink k = {.b = out};

	return decode(v, &k);
}

int
json_strcpy(const struct json_val *v, char *dst, size_t size)
{
	struct sink k = {.dst = dst, .size = size};

	if (size > 0)
		dst[0] = '\0';
	if (decode(v, &k) != 0) {
		if (size > 0)
			dst[0] = '\0';
		return -1;
	}
	return 0;
}

int
json_int(const struct json_val *v, int64_t *out)
{
	const char *p = v->p, *end = v->p + v->len;
	int neg = 0;
	int64_t x = 0;

	if (v->type != JSON_NUMBER || p >= end)
		return -1;
	if (*p == '-') {
		neg = 1;
		p++;
	}
	for (; p < end && *p >= '0' && *p <= '9'; p++) {
		int d = *p - '0';

		if (neg)
			x = x < (INT64_MIN + d) / 10 ? INT64_MIN : x * 10 - d;
		else
			x = x > (INT64_MAX - d) / 10 ? INT64_MAX : x * 10 + d;
	}
	if (p != end)
		return -1; /* a fraction or an exponent */
	*out = x;
	return 0;
}
