/*
 * hdrcap.c - see hdrcap.h.  One pass decides whether anything must go (the
 * usual case: nothing, and no copy); a second pass copies what stays.
 * Linear in the message.
 */
#include "decode/hdrcap.h"

#include <stdlib.h>
#include <string.h>

#include "base/util.h"

/* Walks in[0..len) line by line; with dst != NULL, copies the lines that
 * stay.  Returns 1 when some line was dropped (or the message cut). */
static int
walk(const char *in, size_t len, char *dst, size_t *dlen)
{
	size_t pos = 0, block = 0, fields = 0, folds = 0, parts = 0, o = 0;
	int in_head = 1, dropped = 0;

	while (pos < len) {
		const char *l = in + pos, *nl = memchr(l, '\n', len - pos);
		size_t ll = nl ? (size_t)(nl - l) + 1 : len - pos;
		size_t body = ll - (nl ? 1 : 0);
		int keep = 1;

		if (body > 0 && l[body - 1] == '\r')
			body--;
		if (ll >= 2 && l[0] == '-' && l[1] == '-') {
			if (++parts > HDRCAP_PARTS) {
				dropped = 1;
				break; /* the rest of the message goes */
			}
			in_head = 1; /* a delimiter: part headers follow */
			block = fields = folds = 0;
		} else if (in_head && body == 0) {
			in_head = 0; /* the empty line ends the header block */
		} else if (in_head) {
			if (l[0] == ' ' || l[0] == '\t')
				keep = ++folds <= HDRCAP_FOLDS;
			else {
				folds = 0;
				keep = ++fields <= HDRCAP_FIELDS;
			}
			if (keep && block + ll > HDRCAP_BLOCK_BYTES)
				keep = 0;
			if (keep)
				block += ll;
		}
		if (!keep)
			dropped = 1;
		else if (dst != NULL) {
			memcpy(dst + o, l, ll);
			o += ll;
		}
		pos += ll;
	}
	if (dlen != NULL)
		*dlen = o;
	return dropped;
}

int
hdrcap(const char *in, size_t len, char **out, size_t *out_len)
{
	char *d;

	*out = NULL;
	if (in == NULL || !walk(in, len, NULL, NULL))
		return 0;
	d = xmalloc(len + 1);
	walk(in, len, d, out_len);
	d[*out_len] = '\0';
	*out = d;
	return 1;
}
