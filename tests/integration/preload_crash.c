/*
 * preload_crash.c - LD_PRELOAD library for the crash-recognition test:
 * wraps GMime's message parser and kills the process (SIGKILL, as the
 * kernel's OOM killer would) when the parsed message has a header
 * "X-Bouncerd-Test-Crash".  Every other message is parsed as usual.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <gmime/gmime.h>
#include <signal.h>
#include <unistd.h>

GMimeMessage *
g_mime_parser_construct_message(GMimeParser *parser,
    GMimeParserOptions *options)
{
	static GMimeMessage *(*real)(GMimeParser *, GMimeParserOptions *);
	GMimeMessage *m;

	if (real == NULL)
		*(void **)&real =
		    dlsym(RTLD_NEXT, "g_mime_parser_construct_message");
	m = real(parser, options);
	if (m != NULL &&
	    g_mime_object_get_header(GMIME_OBJECT(m),
	        "X-Bouncerd-Test-Crash") != NULL)
		kill(getpid(), SIGKILL);
	return m;
}
