/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Service log. Core code reports through wfpb_log; each platform supplies the
 * sink (stderr and syslog on POSIX; stderr and the Event Log on Windows).
 * Messages never contain key material or record blobs.
 */
#ifndef WFPB_LOG_H
#define WFPB_LOG_H

#include <stddef.h>
#include <stdint.h>

enum wfpb_log_level {
	WFPB_LOG_ERR = 3,
	WFPB_LOG_WARN = 4,
	WFPB_LOG_INFO = 6,
	WFPB_LOG_DEBUG = 7,
};

#if defined(__MINGW32__)
__attribute__((format(gnu_printf, 2, 3)))	/* C99 stdio: __USE_MINGW_ANSI_STDIO */
#elif defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
void wfpb_log(int level, const char *fmt, ...);

/* Platform sink: one formatted line without a trailing newline. */
void wfpb__log_sink(int level, const char *line);

/* The level an event is logged at: errors for backend, audit and state, warnings for denials. */
int wfpb__event_level(int event);

/*
 * The prefix of a stderr line: "2026-12-01T23:40:00.123Z wfpbrokerd warning: ", or under
 * journald (journal != 0) the priority prefix "<4>" alone, the journal keeping the time.
 */
void wfpb__log_prefix(char *out, size_t cap, int level, int journal, uint64_t unix_ms);

/*
 * Events an operator's tooling watches for: a log line that also carries an
 * ID, its Event Log ID on Windows (service/win/messages.mc) and a syslog
 * message on POSIX. The sink writes the line once to stderr like any other
 * (so core never logs an event's fact a second time with wfpb_log) and
 * reports it to the OS channel, except under journald, which already has
 * stderr.
 */
enum wfpb_event {
	WFPB_EVENT_START = 1,
	WFPB_EVENT_STOP = 2,
	WFPB_EVENT_DENIAL = 3,
	WFPB_EVENT_BACKEND = 4,
	WFPB_EVENT_RELOAD = 5,
	WFPB_EVENT_AUDIT = 6,
	WFPB_EVENT_ANCHOR = 7,	/* the audit chain's durable seq and checkpoint hash, kept outside the file */
	WFPB_EVENT_STATE = 8,	/* the state directory or a key file is not the service's alone: not started */
	WFPB_EVENT_MAX = 9,
};

#if defined(__MINGW32__)
__attribute__((format(gnu_printf, 2, 3)))
#elif defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
void wfpb_event(int event, const char *fmt, ...);

/* Platform sink for events; returns 1 when the OS accepted the report. */
int wfpb__event_sink(int event, const char *text);

/* Events reported so far, per kind (tests and Status). */
extern unsigned long wfpb_events_reported[WFPB_EVENT_MAX];

#endif
