/*
 * bounce-parse - decode .eml files with the bounce decoder and print one
 * line per recipient: TSV (header line first; columns readable by the
 * corpus scorer) or JSON lines with every field.  Exit 0 when every file
 * was read (a file that is not a bounce prints nothing), 1 when a file
 * could not be read, 2 on usage errors.
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/buf.h"
#include "decode/classify.h"
#include "config/config.h"
#include "decode/dsn.h"
#include "base/util.h"

#define DEFAULT_MAX (4u * 1024 * 1024)

enum format { FMT_TSV, FMT_JSON, FMT_EXPLAIN };

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: bounce-parse [--format tsv|json] [--explain] "
	    "[--max-size BYTES]\n"
	    "                    [--header NAME]... [--verp PATTERN] "
	    "[-c CONFIG] FILE...\n"
	    "       bounce-parse --rules [-c CONFIG]\n");
}

/* The head of a file: one allocation reused from file to file. */
struct head {
	char *data; /* NUL-terminated */
	size_t len;
	size_t alloc;
};

static void
head_room(struct head *h, size_t need)
{
	if (need + 1 > h->alloc) {
		h->alloc = need + 1;
		h->data = xrealloc(h->data, h->alloc);
	}
}

/* Reads at most max bytes of path into h; *truncated when the file is
 * longer.  A regular file is read with one read() into a buffer of its
 * size (stdio and a doubling buffer cost a tenth of the decoding). */
static int
read_head(const char *path, size_t max, struct head *h, int *truncated,
    struct err *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	size_t size = (size_t)-1; /* a regular file's, else unknown */
	ssize_t n;
	char extra;

	*truncated = 0;
	h->len = 0;
	if (fd < 0) {
		err_set(err, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
		size = (size_t)st.st_size;
		head_room(h, size < max ? size : max);
	}
	for (;;) {
		if (h->len == size && size < max)
			break; /* all of it, no read() to see EOF */
		if (h->len == max) {
			/* one byte more says whether the file goes on */
			do
				n = read(fd, &extra, 1);
			while (n < 0 && errno == EINTR);
			if (n > 0)
				*truncated = 1;
			break;
		}
		if (h->len + 1 >= h->alloc) {
			/* not a regular file, or one that grew */
			size_t want =
			    h->alloc * 2 > 65536 ? h->alloc * 2 : 65536;

			head_room(h, want < max ? want : max);
		}
		/* the room left, never past max (h->alloc <= max + 1) */
		do
			n = read(fd, h->data + h->len, h->alloc - 1 - h->len);
		while (n < 0 && errno == EINTR);
		if (n == 0)
			break;
		if (n < 0) {
			err_set(err, "%s: %s", path, strerror(errno));
			close(fd);
			return -1;
		}
		h->len += (size_t)n;
	}
	close(fd);
	head_room(h, h->len);
	h->data[h->len] = '\0';
	return 0;
}

/* One TSV column (tabs and line breaks blanked) and the separator END
 * that follows it. */
static void
tsv_field(const char *s, char end)
{
	while (s != NULL && *s != '\0') {
		size_t k = strcspn(s, "\t\n\r");

		fwrite_unlocked(s, 1, k, stdout);
		s += k;
		if (*s != '\0') {
			putchar_unlocked(' ');
			s++;
		}
	}
	putchar_unlocked(end);
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
hard_or_soft(const struct record *rec, const struct record_rcpt *rc)
{
	switch (rc->cls) {
	case RECORD_CLASS_HARD:
		return "hard";
	case RECORD_CLASS_SOFT:
		return "soft";
	case RECORD_CLASS_COMPLAINT:
	case RECORD_CLASS_AUTOREPLY:
	case RECORD_CLASS_DELIVERED:
		return "none";
	case RECORD_CLASS_UNKNOWN:
		break;
	}
	return rec->kind == RECORD_KIND_BOUNCE ||
	        rec->kind == RECORD_KIND_DELAYED
	    ? "soft"
	    : "none";
}

static void
print_tsv(const char *base, const struct record *rec)
{
	size_t i;

	for (i = 0; i < rec->nrcpts; i++) {
		const struct record_rcpt *rc = &rec->rcpts[i];

		tsv_field(base, '\t');
		tsv_field(dsn_rcpt_address(rc), '\t');
		tsv_field(rc->reason, '\t');
		tsv_field(hard_or_soft(rec, rc), '\t');
		tsv_field(rc->status, '\t');
		if (rc->reply_code > 0)
			printf("%d", rc->reply_code);
		putchar('\t');
		tsv_field(rc->action, '\t');
		tsv_field(rc->diagnostic, '\t');
		tsv_field(record_kind_name(rec->kind), '\t');
		tsv_field(rc->recipient, '\t');
		tsv_field(rc->recipient_source, '\t');
		tsv_field(rc->feedback_type, '\t');
		tsv_field(rec->mta, '\t');
		tsv_field(rc->smtp_command, '\t');
		tsv_field(rc->rule, '\n');
	}
}

/* The rule with id id in rs, or -1. */
static long
rule_index(const struct classify_rules *rs, const char *id)
{
	struct classify_rule_info ri;
	size_t i;

	for (i = 0; id != NULL && classify_rule_get(rs, i, &ri) == 0; i++)
		if (strcmp(ri.id, id) == 0)
			return (long)i;
	return -1;
}

static void
print_rule(const struct classify_rule_info *ri)
{
	printf("%s\t%s\t%s", ri->id, ri->stage, ri->reason);
	if (ri->cls != NULL)
		printf("\tclass=%s", ri->cls);
	if (ri->status != NULL)
		printf("\tstatus=%s", ri->status);
	if (ri->reply != NULL)
		printf("\treply=%s", ri->reply);
	if (ri->command != NULL)
		printf("\tcommand=%s", ri->command);
	if (ri->mta != NULL)
		printf("\tmta=%s", ri->mta);
	if (ri->domain != NULL)
		printf("\tdomain=%s", ri->domain);
	if (ri->phrase != NULL)
		printf("\tphrase=\"%s\"", ri->phrase);
	if (ri->source != NULL)
		printf("\tsource=\"%s\"", ri->source);
	putchar('\n');
}

/* Per recipient: the evidence the classifier read and the rule that
 * decided, with the rule's table line. */
static void
print_explain(const char *base, const struct record *rec,
    const struct classify_rules *oper)
{
	size_t i;

	if (rec->nrcpts == 0)
		printf("%s: kind %s, no recipient\n", base,
		    record_kind_name(rec->kind));
	for (i = 0; i < rec->nrcpts; i++) {
		const struct record_rcpt *rc = &rec->rcpts[i];
		struct classify_rule_info ri;
		const struct classify_rules *rs = classify_builtin();
		long k = rule_index(rs, rc->rule);

		if (k < 0 && oper != NULL &&
		    (k = rule_index(oper, rc->rule)) >= 0)
			rs = oper;
		printf("%s: %s\n", base,
		    dsn_rcpt_address(rc) ? dsn_rcpt_address(rc) : "-");
		printf("  kind        %s\n", record_kind_name(rec->kind));
		printf("  recipient   %s (%s)\n",
		    rc->recipient ? rc->recipient : "-",
		    rc->recipient_source ? rc->recipient_source : "-");
		printf("  action      %s\n", rc->action ? rc->action : "-");
		printf("  status      %s\n",
		    rc->rule_status[0] ? rc->rule_status : "-");
		if (rc->rule_reply > 0)
			printf("  reply       %d\n", rc->rule_reply);
		else
			printf("  reply       -\n");
		printf("  command     %s\n",
		    rc->rule_command ? rc->rule_command : "-");
		printf("  mta         %s\n", rec->mta ? rec->mta : "-");
		printf("  diagnostic  %s\n",
		    rc->diagnostic ? rc->diagnostic : "-");
		printf("  matched     %s\n",
		    rc->rule_phrase ? rc->rule_phrase : "-");
		printf("  reason      %s (%s)\n", rc->reason,
		    record_class_name(rc->cls));
		printf("  rule        ");
		if (k >= 0 && classify_rule_get(rs, (size_t)k, &ri) == 0)
			print_rule(&ri);
		else
			printf("-\n");
	}
}

static void
print_json(const char *base, const struct record *rec)
{
	size_t i, k;

	for (i = 0; i < rec->nrcpts; i++) {
		const struct record_rcpt *rc = &rec->rcpts[i];

		fputs("{\"file\":", stdout);
		json_str(base);
		json_field("kind", record_kind_name(rec->kind));
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
		json_field("class", record_class_name(rc->cls));
		json_field("rule", rc->rule);
		json_field("hard_or_soft", hard_or_soft(rec, rc));
		json_field("reporting_mta", rec->reporting_mta);
		json_field("mta", rec->mta);
		printf(",\"report_date\":%lld", (long long)rec->date);
		printf(",\"truncated\":%s", rec->truncated ? "true" : "false");
		json_field("verp_recipient", rec->verp_recipient);
		fputs(",\"original_headers\":{", stdout);
		for (k = 0; k < rec->norig_headers; k++) {
			if (k > 0)
				putchar(',');
			json_str(rec->orig_headers[k].name);
			putchar(':');
			json_str(rec->orig_headers[k].value);
		}
		fputs("}}\n", stdout);
	}
}

/* What the command line asks for. */
struct args {
	enum format fmt;
	const char *headers[32];
	struct dsn_options opt;
	uint64_t max;
	int list_rules;
	struct config *cfg; /* -c: the operator's rules and VERP pattern */
};

/* Loads the configuration at path into a (replacing one loaded before):
 * 0, or -1 with the errors printed. */
static int
load_config(struct args *a, const char *path)
{
	struct config_errors errs = {0};
	size_t k;

	config_free(&a->cfg);
	if (config_load(path, &a->cfg, &errs) != 0) {
		for (k = 0; k < errs.count; k++)
			fprintf(stderr, "%s\n", errs.items[k]);
		config_errors_free(&errs);
		return -1;
	}
	/* the operator's rules and VERP pattern, as the daemon applies them */
	a->opt.rules = a->cfg->classify_rules;
	if (a->cfg->verp_pattern != NULL && *a->cfg->verp_pattern)
		a->opt.verp_pattern = a->cfg->verp_pattern;
	return 0;
}

/* Reads the options into a; *first_out: the first file argument.  -1 to
 * go on, else the exit status (usage errors, --help). */
static int
parse_args(int argc, char **argv, struct args *a, int *first_out)
{
	int i;

	for (i = 1; i < argc; i++) {
		struct err err = {{0}};

		if (strcmp(argv[i], "--format") == 0 && i + 1 < argc) {
			i++;
			if (strcmp(argv[i], "tsv") == 0)
				a->fmt = FMT_TSV;
			else if (strcmp(argv[i], "json") == 0)
				a->fmt = FMT_JSON;
			else {
				fprintf(stderr,
				    "bounce-parse: unknown format '%s'\n",
				    argv[i]);
				return 2;
			}
		} else if (strcmp(argv[i], "--max-size") == 0 && i + 1 < argc) {
			if (parse_size(argv[++i], &a->max, &err) != 0 ||
			    a->max == 0) {
				fprintf(stderr,
				    "bounce-parse: --max-size: %s\n", err.msg);
				return 2;
			}
		} else if (strcmp(argv[i], "--header") == 0 && i + 1 < argc) {
			if (a->opt.nheaders >=
			    sizeof(a->headers) / sizeof(a->headers[0])) {
				fprintf(stderr,
				    "bounce-parse: too many --header\n");
				return 2;
			}
			a->headers[a->opt.nheaders++] = argv[++i];
		} else if ((strcmp(argv[i], "-c") == 0 ||
		               strcmp(argv[i], "--config") == 0) &&
		    i + 1 < argc) {
			if (load_config(a, argv[++i]) != 0)
				return 2;
		} else if (strcmp(argv[i], "--explain") == 0) {
			a->fmt = FMT_EXPLAIN;
		} else if (strcmp(argv[i], "--rules") == 0) {
			a->list_rules = 1;
		} else if (strcmp(argv[i], "--verp") == 0 && i + 1 < argc) {
			a->opt.verp_pattern = argv[++i];
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
	*first_out = i;
	return -1;
}

/* --rules: the operator's rules, then the built-in table. */
static void
list_rules(const struct args *a)
{
	const struct classify_rules *sets[2] = {a->opt.rules,
	    classify_builtin()};
	struct classify_rule_info ri;
	size_t k, s;

	for (s = 0; s < 2; s++)
		for (k = 0; classify_rule_get(sets[s], k, &ri) == 0; k++)
			print_rule(&ri);
}

/* Decodes and prints each file; 0, or 1 when a file could not be read. */
static int
decode_files(char **files, int n, const struct args *a)
{
	struct head h = {NULL, 0, 0};
	int i, rc = 0;

	/* one write per 64 KiB of output rather than per 4 KiB */
	setvbuf(stdout, NULL, _IOFBF, 65536);
	if (a->fmt == FMT_TSV)
		fputs("file\trecipient\treason\thard_or_soft\tstatus\t"
		      "reply_code\taction\tdiagnostic\tkind\tbest_recipient\t"
		      "recipient_source\tfeedback_type\tmta\tsmtp_command\t"
		      "rule\n",
		    stdout);
	for (i = 0; i < n; i++) {
		struct err err = {{0}};
		struct dsn_report *r = NULL;
		const char *base = strrchr(files[i], '/');
		int trunc = 0;

		base = base ? base + 1 : files[i];
		if (read_head(files[i], (size_t)a->max, &h, &trunc, &err) !=
		    0) {
			fprintf(stderr, "bounce-parse: %s\n", err.msg);
			rc = 1;
			continue;
		}
		if (dsn_parse(h.data, h.len, trunc, &a->opt, &r, &err) != 0) {
			fprintf(stderr, "bounce-parse: %s: %s\n", files[i],
			    err.msg);
			rc = 1;
		} else if (a->fmt == FMT_TSV)
			print_tsv(base, dsn_record(r));
		else if (a->fmt == FMT_EXPLAIN)
			print_explain(base, dsn_record(r), a->opt.rules);
		else
			print_json(base, dsn_record(r));
		dsn_free(&r);
	}
	free(h.data);
	fflush(stdout);
	return rc;
}

int
main(int argc, char **argv)
{
	struct args a;
	int first = argc, rc;

	/* Each message's objects are freed before the next is read: left to
	 * its defaults, malloc gave the top of the heap back to the kernel
	 * after most messages and took it again (brk, fresh zeroed pages) for
	 * the next.  A few MiB kept is cheaper for a run over many files. */
	mallopt(M_TRIM_THRESHOLD, 16 << 20);
	mallopt(M_TOP_PAD, 1 << 20);
	memset(&a, 0, sizeof(a));
	a.fmt = FMT_TSV;
	a.max = DEFAULT_MAX;
	a.opt.headers = a.headers;
	rc = parse_args(argc, argv, &a, &first);
	if (rc >= 0)
		return rc;
	if (classify_builtin() == NULL) {
		fprintf(stderr,
		    "bounce-parse: the built-in rule table does "
		    "not parse\n");
		return 1;
	}
	if (a.list_rules) {
		list_rules(&a);
		config_free(&a.cfg);
		return 0;
	}
	if (first >= argc) {
		usage(stderr);
		config_free(&a.cfg);
		return 2;
	}
	rc = decode_files(argv + first, argc - first, &a);
	config_free(&a.cfg);
	return rc;
}
