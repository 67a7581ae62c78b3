/* bouncerd - entry point (replaced as the modules land). */
#include <stdio.h>
int
main(void)
{
	fprintf(stderr, "bouncerd: not built yet\n");
	return 1;
}
