/* SPDX-License-Identifier: Apache-2.0 */
/* POSIX log sink: stderr always; warnings and errors also to syslog. */
#include <stdio.h>
#include <syslog.h>

#include "log.h"

static int opened;

void
wfpb__log_sink(int level, const char *line)
{
	fprintf(stderr, "wfpbrokerd: %s\n", line);
	if (level <= WFPB_LOG_WARN) {
		if (!opened) {
			openlog("wfpbrokerd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
			opened = 1;
		}
		syslog(level == WFPB_LOG_ERR ? LOG_ERR : LOG_WARNING, "%s", line);
	}
}

int
wfpb__event_sink(int event, const char *text)
{
	static const char *names[WFPB_EVENT_MAX] = { "", "start", "stop", "denial", "backend error", "policy reload",
	    "audit", "audit anchor", "state" };
	int prio = event == WFPB_EVENT_BACKEND || event == WFPB_EVENT_AUDIT || event == WFPB_EVENT_STATE ? LOG_ERR :
	    event == WFPB_EVENT_DENIAL ? LOG_WARNING : LOG_NOTICE;

	if (!opened) {
		openlog("wfpbrokerd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
		opened = 1;
	}
	syslog(prio, "%s: %s", names[event], text);
	return 1;
}
