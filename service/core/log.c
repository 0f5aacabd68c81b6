/* SPDX-License-Identifier: Apache-2.0 */
/* Formats a log line and hands it to the platform sink. */
#include <stdarg.h>
#include <stdio.h>

#include "log.h"

void
wfpb_log(int level, const char *fmt, ...)
{
	char	line[1024];
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	wfpb__log_sink(level, line);
}

unsigned long wfpb_events_reported[WFPB_EVENT_MAX];

void
wfpb_event(int event, const char *fmt, ...)
{
	char	line[1024];
	va_list	ap;

	if (event <= 0 || event >= WFPB_EVENT_MAX)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (wfpb__event_sink(event, line))
		wfpb_events_reported[event]++;
}
