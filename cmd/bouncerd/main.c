/*
 * bouncerd - command line: options, configuration check, version.
 * bouncerd -c FILE --check-config validates FILE and prints the effective
 * configuration with secrets masked (exit 0) or every error (exit 1).
 * Exit status 2 means a usage error.
 */
#include <curl/curl.h>
#include <getopt.h>
#include <gmime/gmime.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "config.h"

#define DEFAULT_CONFIG "/etc/bouncerd/bouncerd.yaml"

enum {
	OPT_CHECK = 256,
	OPT_ONCE,
	OPT_MIGRATE,
	OPT_NO_MIGRATE,
	OPT_HELP,
	OPT_VERSION,
};

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: bouncerd [-c FILE] [--check-config | --once | --migrate]\n"
	    "                [--no-migrate]\n"
	    "\n"
	    "Polls bounce mailboxes over POP3S, decodes and classifies every\n"
	    "bounce and records it in PostgreSQL.\n"
	    "\n"
	    "  -c, --config FILE  configuration file (default %s)\n"
	    "  --check-config     validate the configuration, print it with\n"
	    "                     secrets masked and exit (1 on errors)\n"
	    "  --once             poll every mailbox once, then exit\n"
	    "  --migrate          apply pending database migrations and exit\n"
	    "  --no-migrate       do not apply migrations at start\n"
	    "  -h, --help         show this help and exit\n"
	    "  -V, --version      show the version and library versions\n",
	    DEFAULT_CONFIG);
}

static void
version(void)
{
	int pq = PQlibVersion();

	printf("bouncerd %s\n", BOUNCERD_VERSION);
	printf("libcurl: %s\n", curl_version());
	if (pq >= 100000)
		printf("libpq: %d.%d\n", pq / 10000, pq % 10000);
	else
		printf("libpq: %d.%d.%d\n", pq / 10000, pq / 100 % 100,
		    pq % 100);
	printf("libyaml: %s\n", yaml_get_version_string());
	printf("gmime: %u.%u.%u\n", gmime_major_version, gmime_minor_version,
	    gmime_micro_version);
}

static int
check_config(const char *path)
{
	struct config *cfg = NULL;
	struct config_errors errs = {NULL, 0};
	size_t i;

	if (config_load(path, &cfg, &errs) != 0) {
		for (i = 0; i < errs.count; i++)
			fprintf(stderr, "%s\n", errs.items[i]);
		fprintf(stderr, "bouncerd: %s: %zu error%s\n", path, errs.count,
		    errs.count == 1 ? "" : "s");
		config_errors_free(&errs);
		return 1;
	}
	printf("# %s: configuration is valid\n", path);
	config_dump(cfg, stdout);
	config_free(&cfg);
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"check-config", no_argument, NULL, OPT_CHECK},
	    {"once", no_argument, NULL, OPT_ONCE},
	    {"migrate", no_argument, NULL, OPT_MIGRATE},
	    {"no-migrate", no_argument, NULL, OPT_NO_MIGRATE},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	const char *path = DEFAULT_CONFIG;
	const char *unavailable = NULL;
	int c, check = 0;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":c:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			path = optarg;
			break;
		case OPT_CHECK:
			check = 1;
			break;
		case OPT_ONCE:
			unavailable = "--once";
			break;
		case OPT_MIGRATE:
			unavailable = "--migrate";
			break;
		case OPT_NO_MIGRATE:
			unavailable = "--no-migrate";
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			version();
			return 0;
		case ':':
			fprintf(stderr, "bouncerd: %s needs an argument\n",
			    argv[optind - 1]);
			usage(stderr);
			return 2;
		default:
			fprintf(stderr, "bouncerd: unknown option %s\n",
			    argv[optind - 1]);
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "bouncerd: unexpected argument %s\n",
		    argv[optind]);
		usage(stderr);
		return 2;
	}
	if (check && unavailable != NULL) {
		fprintf(stderr,
		    "bouncerd: --check-config cannot be combined with %s\n",
		    unavailable);
		return 2;
	}
	if (check)
		return check_config(path);
	if (unavailable == NULL)
		unavailable = "running the daemon";
	fprintf(stderr, "bouncerd: %s: not available in this build\n",
	    unavailable);
	return 2;
}
