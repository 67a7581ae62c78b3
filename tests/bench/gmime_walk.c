/*
 * gmime_walk.c - the ceiling for a bounce decoder as a whole process:
 * reads each FILE named on the command line (or, given "-", each file
 * named on a line of standard input), whole, into memory, parses it with
 * GMime from a memory stream, walks its parts (into attached messages) and
 * prints one line per file with the number of parts.  bench_dsn runs it
 * against bounce-parse, bench_e2e against bouncerd, over the same files.
 */
#include <errno.h>
#include <fcntl.h>
#include <gmime/gmime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void
walk(GMimeObject *o, int *n)
{
	(*n)++;
	if (GMIME_IS_MULTIPART(o)) {
		int i, c = g_mime_multipart_get_count(GMIME_MULTIPART(o));

		for (i = 0; i < c; i++)
			walk(g_mime_multipart_get_part(GMIME_MULTIPART(o), i),
			    n);
	} else if (GMIME_IS_MESSAGE_PART(o)) {
		GMimeMessage *m =
		    g_mime_message_part_get_message(GMIME_MESSAGE_PART(o));

		if (m != NULL)
			walk(g_mime_message_get_mime_part(m), n);
	}
}

/* The whole of path in a malloc'd buffer, or NULL. */
static char *
slurp(const char *path, size_t *len_out)
{
	int fd = open(path, O_RDONLY);
	struct stat st;
	char *data = NULL;
	size_t len = 0;
	ssize_t r;

	if (fd < 0 || fstat(fd, &st) != 0)
		goto fail;
	data = malloc((size_t)st.st_size + 1);
	if (data == NULL)
		goto fail;
	while (len < (size_t)st.st_size &&
	    (r = read(fd, data + len, (size_t)st.st_size - len)) > 0)
		len += (size_t)r;
	close(fd);
	*len_out = len;
	return data;
fail:
	fprintf(stderr, "gmime_walk: %s: %s\n", path, strerror(errno));
	if (fd >= 0)
		close(fd);
	free(data);
	return NULL;
}

/* Parses and walks one file, printing its line; 0, or -1 if unreadable. */
static int
walk_file(const char *path)
{
	size_t len = 0;
	char *data = slurp(path, &len);
	GMimeStream *s;
	GMimeParser *p;
	GMimeMessage *msg;
	int n = 0;

	if (data == NULL)
		return -1;
	s = g_mime_stream_mem_new_with_buffer(data, len);
	p = g_mime_parser_new_with_stream(s);
	msg = g_mime_parser_construct_message(p, NULL);
	if (msg != NULL) {
		GMimeObject *top = g_mime_message_get_mime_part(msg);

		if (top != NULL)
			walk(top, &n);
		g_object_unref(msg);
	}
	g_object_unref(p);
	g_object_unref(s);
	free(data);
	printf("%s\t%d\n", path, n);
	return 0;
}

/* Every file named on a line of standard input; 0, or 1 if one failed. */
static int
walk_stdin(void)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t l;
	int rc = 0;

	while ((l = getline(&line, &cap, stdin)) > 0) {
		if (line[l - 1] == '\n')
			line[--l] = '\0';
		if (l > 0 && walk_file(line) != 0)
			rc = 1;
	}
	free(line);
	return rc;
}

int
main(int argc, char **argv)
{
	int i, rc = 0;

	g_mime_init();
	if (argc == 2 && strcmp(argv[1], "-") == 0)
		rc = walk_stdin();
	else
		for (i = 1; i < argc; i++)
			if (walk_file(argv[i]) != 0)
				rc = 1;
	fflush(stdout);
	return rc;
}
