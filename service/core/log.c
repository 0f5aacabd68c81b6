/* SPDX-License-Identifier: Apache-2.0 */
/* Formats a log line and hands it to the platform sink. */
#include <stdarg.h>
#include <stdio.h>
#include <stdint.h>

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

int
wfpb__event_level(int event)
{
	if (event == WFPB_EVENT_BACKEND || event == WFPB_EVENT_AUDIT || event == WFPB_EVENT_STATE)
		return WFPB_LOG_ERR;
	return event == WFPB_EVENT_DENIAL ? WFPB_LOG_WARN : WFPB_LOG_INFO;
}

/* The civil date of a day count since 1970-01-01 (H. Hinnant's days_from_civil, inverted). */
static void
civil(long long days, int *y, unsigned *m, unsigned *d)
{
	long long	z = days + 719468, era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned	doe = (unsigned)(z - era * 146097);
	unsigned	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned	doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;

	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int)(yoe + era * 400 + (*m <= 2));
}

void
wfpb__log_prefix(char *out, size_t cap, int level, int journal, uint64_t unix_ms)
{
	const char	*name = level <= WFPB_LOG_ERR ? "error" : level == WFPB_LOG_WARN ? "warning" :
	    level == WFPB_LOG_INFO ? "info" : "debug";
	uint64_t	secs = unix_ms / 1000u, sod = secs % 86400u;
	unsigned	m, d;
	int		y;

	if (journal) {
		snprintf(out, cap, "<%d>", level);
		return;
	}
	civil((long long)(secs / 86400u), &y, &m, &d);
	snprintf(out, cap, "%04d-%02u-%02uT%02u:%02u:%02u.%03uZ wfpbrokerd %s: ", y, m, d, (unsigned)(sod / 3600u),
	    (unsigned)(sod / 60u % 60u), (unsigned)(sod % 60u), (unsigned)(unix_ms % 1000u), name);
}
