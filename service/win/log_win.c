/* Windows log sink: stderr (visible with --console). */
#include <stdio.h>

#include "log.h"

void
wfpb__log_sink(int level, const char *line)
{
	(void)level;
	fprintf(stderr, "wfpbrokerd: %s\n", line);
	fflush(stderr);
}
