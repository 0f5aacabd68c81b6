/* SPDX-License-Identifier: Apache-2.0 */
/*
 * POSIX log sink. Every line goes to stderr once, with its level: under
 * journald (JOURNAL_STREAM names our stderr) as "<N>text", the journal
 * keeping time and priority; otherwise with a UTC timestamp and the level
 * in words. Outside journald, warnings, errors and events also go to
 * syslog (daemon facility); under it they would arrive twice.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>

#include "log.h"

static int opened;

/* 1 when stderr is the journal (systemd.exec(5): JOURNAL_STREAM is "DEVICE:INODE" of it). */
static int
under_journal(void)
{
	static int	known = -1;
	const char	*v;
	unsigned long long dev, ino;
	struct stat	st;

	if (known >= 0)
		return known;
	v = getenv("JOURNAL_STREAM");
	known = v != NULL && sscanf(v, "%llu:%llu", &dev, &ino) == 2 && fstat(2, &st) == 0 &&
	    (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
	return known;
}

static void
to_stderr(int level, const char *line)
{
	struct timespec	ts;
	char		prefix[64];

	clock_gettime(CLOCK_REALTIME, &ts);
	wfpb__log_prefix(prefix, sizeof(prefix), level, under_journal(),
	    (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u);
	fprintf(stderr, "%s%s\n", prefix, line);
}

static void
to_syslog(int prio, const char *line)
{
	if (!opened) {
		openlog("wfpbrokerd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
		opened = 1;
	}
	syslog(prio, "%s", line);
}

void
wfpb__log_sink(int level, const char *line)
{
	to_stderr(level, line);
	if (level <= WFPB_LOG_WARN && !under_journal())
		to_syslog(level == WFPB_LOG_ERR ? LOG_ERR : LOG_WARNING, line);
}

int
wfpb__event_sink(int event, const char *text)
{
	int level = wfpb__event_level(event);

	to_stderr(level, text);
	if (!under_journal())
		to_syslog(level == WFPB_LOG_INFO ? LOG_NOTICE : level, text);
	return 1;
}
