/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Windows log sink: stderr with time and level (visible with --console),
 * and events there too and to the
 * Application Event Log under the source "wfpbroker", whose message table
 * (messages.mc) is compiled into wfpbrokerd.exe and registered by install.
 */
#include <windows.h>

#include <stdio.h>

#include "log.h"
#include "messages.h"

static const struct {
	DWORD	id;
	WORD	type;
} events[WFPB_EVENT_MAX] = {
	[WFPB_EVENT_START] = { WFPB_MSG_START, EVENTLOG_INFORMATION_TYPE },
	[WFPB_EVENT_STOP] = { WFPB_MSG_STOP, EVENTLOG_INFORMATION_TYPE },
	[WFPB_EVENT_DENIAL] = { WFPB_MSG_DENIAL, EVENTLOG_WARNING_TYPE },
	[WFPB_EVENT_BACKEND] = { WFPB_MSG_BACKEND, EVENTLOG_ERROR_TYPE },
	[WFPB_EVENT_RELOAD] = { WFPB_MSG_RELOAD, EVENTLOG_INFORMATION_TYPE },
	[WFPB_EVENT_AUDIT] = { WFPB_MSG_AUDIT, EVENTLOG_ERROR_TYPE },
	[WFPB_EVENT_ANCHOR] = { WFPB_MSG_ANCHOR, EVENTLOG_INFORMATION_TYPE },
	[WFPB_EVENT_STATE] = { WFPB_MSG_STATE, EVENTLOG_ERROR_TYPE },
};

void
wfpb__log_sink(int level, const char *line)
{
	FILETIME	ft;
	ULARGE_INTEGER	t;
	char		prefix[64];

	/* 100 ns ticks since 1601 to milliseconds since 1970. */
	GetSystemTimeAsFileTime(&ft);
	t.LowPart = ft.dwLowDateTime;
	t.HighPart = ft.dwHighDateTime;
	wfpb__log_prefix(prefix, sizeof(prefix), level, 0, (t.QuadPart - 116444736000000000ull) / 10000u);
	fprintf(stderr, "%s%s\n", prefix, line);
	fflush(stderr);
}

int
wfpb__event_sink(int event, const char *text)
{
	static HANDLE	source;
	HANDLE		h;
	wchar_t		w[1024];
	LPCWSTR		strings[1] = { w };

	wfpb__log_sink(wfpb__event_level(event), text);
	/* Workers may report at once: one registration wins, the others' go. */
	if (source == NULL) {
		if ((h = RegisterEventSourceW(NULL, L"wfpbroker")) == NULL)
			return 0;
		if (InterlockedCompareExchangePointer(&source, h, NULL) != NULL)
			DeregisterEventSource(h);
	}
	if (MultiByteToWideChar(CP_UTF8, 0, text, -1, w, 1024) == 0)
		w[0] = L'\0';
	return ReportEventW(source, events[event].type, 0, events[event].id, NULL, 1, 0, strings, NULL) ? 1 : 0;
}
