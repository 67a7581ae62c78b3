/*
 * hdrcap.h - bounds on what a message asks the MIME parser to hold, applied
 * before GMime sees it.  GMime keeps every header it reads, and a header
 * folded into a million continuation lines, or a million header fields or
 * MIME parts, costs many times the message's size in memory.  The decoder
 * reads a copy cut to these bounds (the raw bytes kept are untouched) and
 * marks the report truncated.  Never logs.
 */
#ifndef BOUNCER_HDRCAP_H
#define BOUNCER_HDRCAP_H

#include <stddef.h>

#define HDRCAP_FOLDS 256 /* continuation lines of one header field */
#define HDRCAP_FIELDS 1000 /* fields in one header block */
#define HDRCAP_BLOCK_BYTES (256u * 1024) /* bytes of one header block */
#define HDRCAP_PARTS 1024 /* MIME delimiter lines ("--...") read */

/*
 * Header blocks are the message's own (up to the first empty line) and
 * those that follow a MIME delimiter line (a line starting "--").  In each,
 * continuation lines past HDRCAP_FOLDS for one field, fields past
 * HDRCAP_FIELDS and bytes past HDRCAP_BLOCK_BYTES are dropped; the message
 * ends before its (HDRCAP_PARTS + 1)-th delimiter line.  Line ends may be
 * CRLF or LF.  Returns 0 and leaves *out NULL when in[0..len) is within
 * every bound; else 1 with *out (caller frees, NUL-terminated) and
 * *out_len set.
 */
int hdrcap(const char *in, size_t len, char **out, size_t *out_len);

#endif
