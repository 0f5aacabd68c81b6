/* Log sink for unit tests: keeps the last line so tests can assert on it. */
#include <stdio.h>

#include "log.h"

char wfpb_test_last_log[1024];

void
wfpb__log_sink(int level, const char *line)
{
	(void)level;
	snprintf(wfpb_test_last_log, sizeof(wfpb_test_last_log), "%s", line);
}
