/*
 * fuzz_config.c - libFuzzer entry for the configuration loader.  Any input
 * must give either a config or at least one error, never a crash or leak;
 * a config that loads must dump to text that loads to the same dump.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"

static char *
dump(const struct config *cfg, size_t *len)
{
	char *data = NULL;
	FILE *fp = open_memstream(&data, len);

	if (fp == NULL)
		abort();
	config_dump(cfg, fp);
	fclose(fp);
	return data;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config *cfg = NULL, *again = NULL;
	struct config_errors errs = {NULL, 0};
	char *d1 = NULL, *d2 = NULL;
	size_t l1 = 0, l2 = 0;
	int rc;

	rc = config_from_string("fuzz.yaml", (const char *)data, size, &cfg,
	    &errs);
	if ((rc == 0) != (cfg != NULL) || (rc != 0 && errs.count == 0))
		abort();
	config_errors_free(&errs);
	if (cfg == NULL)
		return 0;
	d1 = dump(cfg, &l1);
	if (config_from_string("fuzz.yaml", d1, l1, &again, &errs) != 0) {
		for (size_t i = 0; i < errs.count; i++)
			fprintf(stderr, "%s\n", errs.items[i]);
		fprintf(stderr, "dump does not load:\n%s", d1);
		abort();
	}
	d2 = dump(again, &l2);
	if (l1 != l2 || memcmp(d1, d2, l1) != 0) {
		fprintf(stderr, "dump changed:\n%s\n----\n%s", d1, d2);
		abort();
	}
	free(d1);
	free(d2);
	config_errors_free(&errs);
	config_free(&cfg);
	config_free(&again);
	return 0;
}
