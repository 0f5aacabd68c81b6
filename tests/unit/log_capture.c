/* SPDX-License-Identifier: Apache-2.0 */
/* Log and event sinks for unit tests: keep the last line and count events, so tests can assert on them. */
#include <stdio.h>

#include "log.h"

char wfpb_test_last_log[1024];
char wfpb_test_last_event[1024];

void
wfpb__log_sink(int level, const char *line)
{
	(void)level;
	snprintf(wfpb_test_last_log, sizeof(wfpb_test_last_log), "%s", line);
}

int
wfpb__event_sink(int event, const char *text)
{
	(void)event;
	snprintf(wfpb_test_last_event, sizeof(wfpb_test_last_event), "%s", text);
	return 1;
}
