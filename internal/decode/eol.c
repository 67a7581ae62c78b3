/*
 * eol.c - line-end normalisation for the decoder (see eol.h).  One scan
 * decides whether anything needs rewriting, so a message that already
 * ends its lines in CRLF (the common case) is not copied.
 */
#include "decode/eol.h"

#include <stdlib.h>
#include <string.h>

#include "base/util.h"

/* 1 when in[0..len) has a line end other than exactly CRLF. */
static int
needs_work(const char *in, size_t len)
{
	const char *p = in, *end = in + len;

	while ((p = memchr(p, '\r', (size_t)(end - p))) != NULL) {
		if (p + 1 >= end || p[1] != '\n')
			return 1; /* lone CR, or CR CR */
		p += 2;
	}
	/* every CR is followed by LF: is every LF preceded by CR? */
	for (p = in; (p = memchr(p, '\n', (size_t)(end - p))) != NULL; p++)
		if (p == in || p[-1] != '\r')
			return 1;
	return 0;
}

int
eol_normalize(const char *in, size_t len, char **out_data, size_t *out_len)
{
	size_t i = 0, o = 0, n, nlf = 0, ncr = 0;
	char *out;

	*out_data = NULL;
	*out_len = len;
	if (in == NULL || len == 0 || !needs_work(in, len))
		return 0;
	/* at most two bytes out for each byte in (a lone LF or CR) */
	if (len > ((size_t)-1 - 1) / 2)
		return 0;
	out = xmalloc(len * 2 + 1);
	while (i < len) {
		char c = in[i];

		if (c == '\r') {
			for (n = i; n < len && in[n] == '\r'; n++)
				;
			if (n < len && in[n] == '\n') {
				/* CR ... CR LF: one line end */
				out[o++] = '\r';
				out[o++] = '\n';
				i = n + 1;
			} else {
				/* lone CRs: a line end each */
				for (; i < n; i++) {
					out[o++] = '\r';
					out[o++] = '\n';
				}
			}
		} else if (c == '\n') {
			out[o++] = '\r';
			out[o++] = '\n';
			i++;
		} else {
			/* the run up to the next line end, from the next CR
			 * and LF found with memchr and kept until passed (a
			 * byte-by-byte scan cost a tenth of GMime's own
			 * parse; a fresh search per run would be quadratic
			 * on lines of one kind only) */
			size_t k;

			if (nlf <= i) {
				const char *p = memchr(in + i, '\n', len - i);

				nlf = p != NULL ? (size_t)(p - in) : len;
			}
			if (ncr <= i) {
				const char *p = memchr(in + i, '\r', len - i);

				ncr = p != NULL ? (size_t)(p - in) : len;
			}
			k = (nlf < ncr ? nlf : ncr) - i;
			memcpy(out + o, in + i, k);
			o += k;
			i += k;
		}
	}
	out[o] = '\0';
	*out_data = out;
	*out_len = o;
	return 1;
}
