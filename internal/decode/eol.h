/*
 * eol.h - line ends as the decoder expects them (RFC 5322: CRLF).  Some
 * POP3 servers (Courier, GNU Mailutils) serve a message stored with CRLF
 * as CR CR LF; others store or send bare LF or bare CR.  The decoder reads
 * a normalised copy; the raw bytes kept are the ones received.  Never
 * logs.
 */
#ifndef BOUNCER_EOL_H
#define BOUNCER_EOL_H

#include <stddef.h>

/*
 * Rewrites every line end of in[0..len) as CRLF: a run of CRs followed by
 * LF (CR CR LF), a lone LF and each lone CR (one not followed, after any
 * further CRs, by LF) become one CRLF.  Returns 0 and leaves *out_data NULL when in already
 * has CRLF line ends only (nothing to do); else 1 with *out_data (caller
 * frees with free(), NUL-terminated) and *out_len set.
 */
int eol_normalize(const char *in, size_t len, char **out_data, size_t *out_len);

#endif
