/*
 * bounce-parse - decode .eml files with the bounce decoder and print one
 * line per recipient: TSV (header line first; columns readable by the
 * corpus scorer) or JSON lines with every field.  Exit 0 when every file
 * was read (a file that is not a bounce prints nothing), 1 when a file
 * could not be read, 2 on usage errors.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "classify.h"
#include "dsn.h"
#include "util.h"

#define DEFAULT_MAX (4u * 1024 * 1024)

enum format { FMT_TSV, FMT_JSON };

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: bounce-parse [--format tsv|json] [--max-size BYTES]\n"
	    "                    [--header NAME]... [--verp PATTERN] "
	    "FILE...\n");
}

/* Reads at most max bytes of path; *truncated when the file is longer. */
static int
read_head(const char *path, size_t max, struct buf *b, int *truncated,
    struct err *err)
{
	FILE *f = fopen(path, "rb");
	char tmp[65536];
	size_t n;

	*truncated = 0;
	if (f == NULL) {
		err_set(err, "%s: %s", path, strerror(errno));
		return -1;
	}
	while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0) {
		buf_append(b, tmp, n);
		if (b->truncated) {
			*truncated = 1;
			break;
		}
	}
	if (ferror(f)) {
		err_set(err, "%s: read error", path);
		fclose(f);
		return -1;
	}
	fclose(f);
	return 0;
}

/* One TSV column (tabs and line breaks blanked) and the separator END
 * that follows it. */
static void
tsv_field(const char *s, char end)
{
	for (; s != NULL && *s != '\0'; s++)
		putchar(*s == '\t' || *s == '\n' || *s == '\r' ? ' ' : *s);
	putchar(end);
}

static void
json_str(const char *s)
{
	struct buf b;

	buf_init(&b, s != NULL ? strlen(s) * 6 + 3 : 5);
	buf_append_json_str(&b, s);
	fwrite(b.data, 1, b.len, stdout);
	buf_free(&b);
}

/* ,"KEY":"VALUE" (VALUE NULL prints null). */
static void
json_field(const char *key, const char *value)
{
	printf(",\"%s\":", key);
	json_str(value);
}

static const char *
hard_or_soft(const struct dsn_report *r, const struct dsn_rcpt *rc)
{
	switch (rc->cls) {
	case CLASS_HARD:
		return "hard";
	case CLASS_SOFT:
		return "soft";
	case CLASS_COMPLAINT:
	case CLASS_AUTOREPLY:
	case CLASS_DELIVERED:
		return "none";
	case CLASS_UNKNOWN:
		break;
	}
	return dsn_kind(r) == DSN_KIND_BOUNCE || dsn_kind(r) == DSN_KIND_DELAYED
	    ? "soft"
	    : "none";
}

static void
print_tsv(const char *base, const struct dsn_report *r)
{
	size_t i;

	for (i = 0; i < dsn_rcpt_count(r); i++) {
		const struct dsn_rcpt *rc = dsn_rcpt_at(r, i);

		tsv_field(base, '\t');
		tsv_field(dsn_rcpt_address(rc), '\t');
		tsv_field(rc->reason, '\t');
		tsv_field(hard_or_soft(r, rc), '\t');
		tsv_field(rc->status, '\t');
		if (rc->reply_code > 0)
			printf("%d", rc->reply_code);
		putchar('\t');
		tsv_field(rc->action, '\t');
		tsv_field(rc->diagnostic, '\t');
		tsv_field(dsn_kind_name(dsn_kind(r)), '\t');
		tsv_field(rc->recipient, '\t');
		tsv_field(rc->recipient_source, '\t');
		tsv_field(rc->feedback_type, '\t');
		tsv_field(dsn_mta(r), '\t');
		tsv_field(rc->smtp_command, '\n');
	}
}

static void
print_json(const char *base, const struct dsn_report *r)
{
	size_t i, k;

	for (i = 0; i < dsn_rcpt_count(r); i++) {
		const struct dsn_rcpt *rc = dsn_rcpt_at(r, i);

		fputs("{\"file\":", stdout);
		json_str(base);
		json_field("kind", dsn_kind_name(dsn_kind(r)));
		json_field("recipient", rc->recipient);
		json_field("recipient_source", rc->recipient_source);
		json_field("final_recipient", rc->final_recipient);
		json_field("original_recipient", rc->original_recipient);
		json_field("action", rc->action);
		json_field("status", rc->status);
		printf(",\"reply_code\":%d", rc->reply_code);
		json_field("diagnostic", rc->diagnostic);
		json_field("remote_mta", rc->remote_mta);
		printf(",\"date\":%lld", (long long)rc->date);
		json_field("feedback_type", rc->feedback_type);
		json_field("smtp_command", rc->smtp_command);
		json_field("diagnostic_type", rc->diagnostic_type);
		json_field("reason", rc->reason);
		json_field("class", classify_class_name(rc->cls));
		json_field("hard_or_soft", hard_or_soft(r, rc));
		json_field("reporting_mta", dsn_reporting_mta(r));
		json_field("mta", dsn_mta(r));
		printf(",\"report_date\":%lld", (long long)dsn_date(r));
		printf(",\"truncated\":%s",
		    dsn_truncated(r) ? "true" : "false");
		json_field("verp_recipient", dsn_verp_recipient(r));
		fputs(",\"original_headers\":{", stdout);
		for (k = 0; k < dsn_orig_header_count(r); k++) {
			const char *n, *v;

			dsn_orig_header_at(r, k, &n, &v);
			if (k > 0)
				putchar(',');
			json_str(n);
			putchar(':');
			json_str(v);
		}
		fputs("}}\n", stdout);
	}
}

int
main(int argc, char **argv)
{
	enum format fmt = FMT_TSV;
	const char *headers[32];
	struct dsn_options opt;
	uint64_t max = DEFAULT_MAX;
	int i, rc = 0, nfiles = 0;

	memset(&opt, 0, sizeof(opt));
	opt.headers = headers;
	for (i = 1; i < argc; i++) {
		struct err err = {{0}};

		if (strcmp(argv[i], "--format") == 0 && i + 1 < argc) {
			i++;
			if (strcmp(argv[i], "tsv") == 0)
				fmt = FMT_TSV;
			else if (strcmp(argv[i], "json") == 0)
				fmt = FMT_JSON;
			else {
				fprintf(stderr,
				    "bounce-parse: unknown format '%s'\n",
				    argv[i]);
				return 2;
			}
		} else if (strcmp(argv[i], "--max-size") == 0 && i + 1 < argc) {
			if (parse_size(argv[++i], &max, &err) != 0 ||
			    max == 0) {
				fprintf(stderr,
				    "bounce-parse: --max-size: %s\n", err.msg);
				return 2;
			}
		} else if (strcmp(argv[i], "--header") == 0 && i + 1 < argc) {
			if (opt.nheaders >=
			    sizeof(headers) / sizeof(headers[0])) {
				fprintf(stderr,
				    "bounce-parse: too many --header\n");
				return 2;
			}
			headers[opt.nheaders++] = argv[++i];
		} else if (strcmp(argv[i], "--verp") == 0 && i + 1 < argc) {
			opt.verp_pattern = argv[++i];
		} else if (strcmp(argv[i], "-h") == 0 ||
		    strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(argv[i], "--") == 0) {
			i++;
			break;
		} else if (argv[i][0] == '-' && argv[i][1] != '\0') {
			fprintf(stderr, "bounce-parse: unknown option '%s'\n",
			    argv[i]);
			usage(stderr);
			return 2;
		} else
			break;
	}
	if (i >= argc) {
		usage(stderr);
		return 2;
	}
	if (fmt == FMT_TSV)
		fputs("file\trecipient\treason\thard_or_soft\tstatus\t"
		      "reply_code\taction\tdiagnostic\tkind\tbest_recipient\t"
		      "recipient_source\tfeedback_type\tmta\tsmtp_command\n",
		    stdout);
	for (; i < argc; i++) {
		struct err err = {{0}};
		struct dsn_report *r = NULL;
		const char *base = strrchr(argv[i], '/');
		struct buf b;
		int trunc = 0;

		base = base ? base + 1 : argv[i];
		nfiles++;
		buf_init(&b, (size_t)max);
		if (read_head(argv[i], (size_t)max, &b, &trunc, &err) != 0) {
			fprintf(stderr, "bounce-parse: %s\n", err.msg);
			rc = 1;
			buf_free(&b);
			continue;
		}
		if (dsn_parse(b.data, b.len, trunc, &opt, &r, &err) != 0) {
			fprintf(stderr, "bounce-parse: %s: %s\n", argv[i],
			    err.msg);
			rc = 1;
		} else if (fmt == FMT_TSV)
			print_tsv(base, r);
		else
			print_json(base, r);
		dsn_free(&r);
		buf_free(&b);
	}
	fflush(stdout);
	return rc;
}
