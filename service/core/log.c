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
