/* POSIX log sink: stderr always; warnings and errors also to syslog. */
#include <stdio.h>
#include <syslog.h>

#include "log.h"

void
wfpb__log_sink(int level, const char *line)
{
	static int opened;

	fprintf(stderr, "wfpbrokerd: %s\n", line);
	if (level <= WFPB_LOG_WARN) {
		if (!opened) {
			openlog("wfpbrokerd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
			opened = 1;
		}
		syslog(level == WFPB_LOG_ERR ? LOG_ERR : LOG_WARNING, "%s", line);
	}
}
