/* SPDX-License-Identifier: Apache-2.0 */
/* Formats a log line and hands it to the platform sink. */
#include <stdarg.h>
#include <stdio.h>
#include <stdint.h>

#include "log.h"
#include "num.h"

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

int
wfpb__event_level(int event)
{
	if (event == WFPB_EVENT_BACKEND || event == WFPB_EVENT_AUDIT || event == WFPB_EVENT_STATE)
		return WFPB_LOG_ERR;
	return event == WFPB_EVENT_DENIAL ? WFPB_LOG_WARN : WFPB_LOG_INFO;
}

void
wfpb__log_prefix(char *out, size_t cap, int level, int journal, uint64_t unix_ms)
{
	const char	*name = level <= WFPB_LOG_ERR ? "error" : level == WFPB_LOG_WARN ? "warning" :
	    level == WFPB_LOG_INFO ? "info" : "debug";
	char		when[WFPB_RFC3339_LEN];

	if (journal) {
		snprintf(out, cap, "<%d>", level);
		return;
	}
	wfpb_rfc3339(unix_ms, when);
	snprintf(out, cap, "%s wfpbrokerd %s: ", when, name);
}
