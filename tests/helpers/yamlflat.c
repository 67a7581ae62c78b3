/*
 * yamlflat FILE - prints every scalar of a YAML file as one line
 * "path=value", with mapping keys joined by '.' and sequence items as
 * [N] (services.bouncerd.ports[0]=127.0.0.1:9187:9187).  Used by shell
 * tests to check docker/compose.yml and the example configuration.
 */
#include <stdio.h>
#include <string.h>
#include <yaml.h>

static void
walk(yaml_document_t *doc, yaml_node_t *node, char *path, size_t len,
    size_t cap)
{
	if (node == NULL)
		return;
	switch (node->type) {
	case YAML_SCALAR_NODE:
		printf("%s=%.*s\n", path, (int)node->data.scalar.length,
		    (const char *)node->data.scalar.value);
		break;
	case YAML_SEQUENCE_NODE: {
		int i = 0;
		for (yaml_node_item_t *it = node->data.sequence.items.start;
		     it < node->data.sequence.items.top; it++, i++) {
			snprintf(path + len, cap - len, "[%d]", i);
			walk(doc, yaml_document_get_node(doc, *it), path,
			    strlen(path), cap);
			path[len] = '\0';
		}
		break;
	}
	case YAML_MAPPING_NODE:
		for (yaml_node_pair_t *p = node->data.mapping.pairs.start;
		     p < node->data.mapping.pairs.top; p++) {
			yaml_node_t *k = yaml_document_get_node(doc, p->key);
			if (k == NULL || k->type != YAML_SCALAR_NODE)
				continue;
			snprintf(path + len, cap - len, "%s%.*s",
			    len ? "." : "", (int)k->data.scalar.length,
			    (const char *)k->data.scalar.value);
			walk(doc, yaml_document_get_node(doc, p->value), path,
			    strlen(path), cap);
			path[len] = '\0';
		}
		break;
	default:
		break;
	}
}

int
main(int argc, char **argv)
{
	yaml_parser_t parser;
	yaml_document_t doc;
	char path[4096] = "";
	FILE *f;

	if (argc != 2) {
		fprintf(stderr, "usage: yamlflat FILE\n");
		return 2;
	}
	f = fopen(argv[1], "rb");
	if (f == NULL) {
		perror(argv[1]);
		return 1;
	}
	yaml_parser_initialize(&parser);
	yaml_parser_set_input_file(&parser, f);
	if (!yaml_parser_load(&parser, &doc)) {
		fprintf(stderr, "%s:%zu:%zu: %s\n", argv[1],
		    parser.problem_mark.line + 1,
		    parser.problem_mark.column + 1,
		    parser.problem ? parser.problem : "parse error");
		yaml_parser_delete(&parser);
		fclose(f);
		return 1;
	}
	walk(&doc, yaml_document_get_root_node(&doc), path, 0, sizeof(path));
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	fclose(f);
	return 0;
}
