/* bounce-parse - entry point (replaced as the modules land). */
#include <stdio.h>
int
main(void)
{
	fprintf(stderr, "bounce-parse: not built yet\n");
	return 1;
}
