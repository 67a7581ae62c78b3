/*
 * config_classify.c - operator classification rules (classify.rules): the
 * keys of one rule as written, and their compilation into the
 * classifier's rule set (decode/classify.h), each refusal reported at the
 * field it names.
 */
#include "config/config.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "config/config_int.h"
#include "decode/classify.h"

static int
check_rule_class(const char *v, char *msg, size_t n)
{
	if (strcmp(v, "hard") != 0 && strcmp(v, "soft") != 0) {
		snprintf(msg, n, "'%s' is not hard or soft", v);
		return -1;
	}
	return 0;
}

#define CR(f) offsetof(struct classify_rule_config, f)
static const struct key class_rule_keys[] = {
    KEY("name", K_STR, CR(name), .flags = F_REQ),
    KEY("reason", K_STR, CR(reason), .flags = F_REQ,
        .check = config_check_reason),
    KEY("class", K_STR, CR(cls), .check = check_rule_class),
    KEY("status", K_STR, CR(status)),
    KEY("reply", K_STR, CR(reply)),
    KEY("command", K_STR, CR(command)),
    KEY("mta", K_STR, CR(mta)),
    KEY("phrase", K_STR, CR(phrase)),
    KEY("domain", K_STR, CR(domain)),
};
const struct table config_class_rule_table = {.keys = class_rule_keys,
    .n = NELEM(class_rule_keys),
    .elem_size = sizeof(struct classify_rule_config)};

/* Builds cfg->classify_rules from classify.rules, reporting each rule the
 * classifier refuses at the field it names. */
void
config_compile_class_rules(struct ctx *c, struct config *cfg,
    const struct node *list)
{
	size_t i;

	if (list == NULL || list->kind != N_SEQ || cfg->n_class_rules == 0)
		return;
	cfg->classify_rules = classify_rules_new();
	if (cfg->classify_rules == NULL)
		abort(); /* like every other allocation here */
	for (i = 0; i < cfg->n_class_rules && i < list->n; i++) {
		const struct classify_rule_config *rc = &cfg->class_rules[i];
		struct classify_rule_spec sp = {rc->name, rc->reason, rc->cls,
		    rc->status, rc->reply, rc->command, rc->mta, rc->phrase,
		    rc->domain};
		char msg[256], path[300], field[32];
		const struct node *at;
		size_t fl;

		if (rc->name == NULL || rc->reason == NULL)
			continue; /* reported as missing already */
		if (classify_rules_add(cfg->classify_rules, &sp, msg,
		        sizeof(msg)) == 0)
			continue;
		fl = strcspn(msg, ":");
		snprintf(field, sizeof(field), "%.*s", (int)(fl < 31 ? fl : 0),
		    msg);
		at = field[0] != '\0' ? config_map_get(list->kid[i], field)
		                      : NULL;
		snprintf(path, sizeof(path), "classify.rules[%zu]%s%s", i,
		    at != NULL ? "." : "", at != NULL ? field : "");
		config_err_node(c, at != NULL ? at : list->kid[i], path, "%s",
		    at != NULL && msg[fl] == ':' ? msg + fl + 2 : msg);
	}
}
