/*
 * smtpcmd.c - the SMTP command a failure answered (CONN, HELO, MAIL, RCPT,
 * DATA), read from the words MTAs use to name it in a diagnostic or a
 * session transcript: Postfix's "in reply to RCPT TO", Exim's "after
 * RCPT TO", Sendmail's ">>> DATA", qmail's "does not like recipient".
 * One pass over the text through a first-byte index.
 */
#include "decode/report.h"

#include <pthread.h>
#include <string.h>

#define CMD(n, c) \
	{ \
		n, c \
	}
static const struct cmd_marker {
	const char *needle; /* lower-case; a space matches any white space */
	const char *cmd;
} cmd_markers[] = {
    /* Postfix */
    CMD("in reply to rcpt to", "RCPT"),
    CMD("in reply to end of data", "DATA"),
    CMD("in reply to data", "DATA"),
    CMD("in reply to mail from", "MAIL"),
    CMD("in reply to helo", "HELO"),
    CMD("in reply to ehlo", "HELO"),
    CMD("refused to talk to me", "CONN"),
    /* Sendmail, Courier, Lotus Domino, ... transcripts */
    CMD(">>> data", "DATA"),
    CMD(">>> rcpt to", "RCPT"),
    CMD(">>> mail from", "MAIL"),
    CMD(">>> ehlo", "HELO"),
    CMD(">>> helo", "HELO"),
    /* Exim, Courier, Yahoo, ... */
    CMD("after rcpt to", "RCPT"),
    CMD("after rcpt command", "RCPT"),
    CMD("after end of data", "DATA"),
    CMD("after pipelined data", "DATA"),
    CMD("after data", "DATA"),
    CMD("after mail from", "MAIL"),
    CMD("after initial connection", "CONN"),
    CMD("after helo", "HELO"),
    CMD("after ehlo", "HELO"),
    /* DragonFly, OpenSMTPD */
    CMD("did not like our rcpt to", "RCPT"),
    CMD("did not like our final data", "DATA"),
    CMD("did not like our data", "DATA"),
    CMD("did not like our mail from", "MAIL"),
    /* qmail and its offspring */
    CMD("does not like recipient", "RCPT"),
    CMD("sender was rejected", "MAIL"),
    CMD("my name was rejected", "HELO"),
    CMD("greeting failed", "CONN"),
    CMD("failed after i sent the message", "DATA"),
    /* Amazon SES / WorkMail, Exchange, Verizon, Notes: a bare command */
    /* Gmail says so only of an address refused at RCPT TO */
    CMD("because the address couldn't be found", "RCPT"),
    CMD("rcpt to response", "RCPT"),
    CMD("[rcpt_to]", "RCPT"),
    CMD("[end_of_data]", "DATA"),
    CMD("rcpt to:", "RCPT"),
    CMD("rcpt to <", "RCPT"),
    CMD("mail from:", "MAIL"),
    {NULL, NULL},
};
#undef CMD

/* ASCII lower case, inline: g_ascii_tolower() is a call per byte, and
 * dsn_find_command() reads every byte of every diagnostic. */
static inline char
lc(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c + ('a' - 'A')) : c;
}

/* 1 if needle (lower-case; a space matches one or more white-space bytes,
 * "\r\n" included) starts s[0..n). */
static int
cmd_match(const char *s, size_t n, const char *needle)
{
	size_t i = 0;

	for (; *needle != '\0'; needle++) {
		if (*needle == ' ') {
			if (i >= n || !g_ascii_isspace(s[i]))
				return 0;
			while (i < n && g_ascii_isspace(s[i]))
				i++;
			continue;
		}
		if (i >= n || lc(s[i]) != *needle)
			return 0;
		i++;
	}
	return 1;
}

#define NMARKERS (sizeof(cmd_markers) / sizeof(cmd_markers[0]) - 1)

/* The markers by first byte (either case), in table order: cmd_first[c]
 * is 1 + the index of the first marker starting with c (0: none),
 * cmd_next[k] 1 + the index of the next one after marker k with the same
 * first byte. */
static pthread_once_t cmd_once = PTHREAD_ONCE_INIT;
static unsigned char cmd_first[256];
static unsigned char cmd_next[NMARKERS];

static void
cmd_index(void)
{
	size_t k = NMARKERS;

	while (k-- > 0) {
		unsigned char c = (unsigned char)cmd_markers[k].needle[0];

		cmd_next[k] = cmd_first[c];
		cmd_first[c] = (unsigned char)(k + 1);
	}
	/* the upper-case first bytes lead to the same markers */
	for (k = 'a'; k <= 'z'; k++)
		cmd_first[k - 'a' + 'A'] = cmd_first[k];
}

/* The command named last in s[0..n) (a transcript's last command is the
 * one the error answered), or NULL.  Only positions whose byte starts some
 * marker are compared. */
const char *
dsn_find_command(const char *s, size_t n)
{
	const char *best = NULL;
	size_t i, k;

	if (s == NULL)
		return NULL;
	pthread_once(&cmd_once, cmd_index);
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (cmd_first[c] == 0)
			continue;
		/* the words start a word */
		if (c != '>' && c != '[' && i > 0 && g_ascii_isalnum(s[i - 1]))
			continue;
		for (k = cmd_first[c]; k != 0; k = cmd_next[k - 1]) {
			const struct cmd_marker *m = &cmd_markers[k - 1];

			if (cmd_match(s + i, n - i, m->needle)) {
				best = m->cmd;
				break;
			}
		}
	}
	return best;
}

/* An SMTP command named in capitals as a word of its own ("... RCPT TO
 * ...", "... after DATA"), the way a server or relay quotes the command it
 * answered; the latest stage named wins.  NULL when none. */
const char *
dsn_find_command_word(const char *s, size_t n)
{
	static const struct {
		const char *w;
		size_t len;
		const char *cmd;
	} words[] = {
	    {"HELO", 4, "HELO"},
	    {"EHLO", 4, "HELO"},
	    {"MAIL FROM", 9, "MAIL"},
	    {"RCPT", 4, "RCPT"},
	    {"DATA", 4, "DATA"},
	};
	int best = -1;
	size_t i, k;

	if (s == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		if (s[i] != 'H' && s[i] != 'E' && s[i] != 'M' && s[i] != 'R' &&
		    s[i] != 'D')
			continue;
		if (i > 0 && s[i - 1] != ' ' && s[i - 1] != '\t' &&
		    s[i - 1] != '\n' && s[i - 1] != '(' && s[i - 1] != '"' &&
		    s[i - 1] != '\'')
			continue;
		for (k = 0; k < sizeof(words) / sizeof(words[0]); k++) {
			size_t e = i + words[k].len;

			if (e > n ||
			    memcmp(s + i, words[k].w, words[k].len) != 0)
				continue;
			if (e < n && (g_ascii_isalnum(s[e]) || s[e] == '_'))
				continue;
			if ((int)k > best)
				best = (int)k;
		}
	}
	return best < 0 ? NULL : words[best].cmd;
}
