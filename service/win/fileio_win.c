/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The audit file contract (core/fileio.h) on Windows: the log is created
 * with a DACL for SYSTEM and Administrators only, written at its end, and
 * made durable with FlushFileBuffers.
 */
#include <windows.h>
#include <psapi.h>
#include <winternl.h>
#include <sddl.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "wide_win.h"

#define SDDL_LOG	L"D:P(A;;FA;;;SY)(A;;FA;;;BA)"

static int
os_fail(int *os_err)
{
	DWORD e = GetLastError();

	*os_err = (int)e;
	return e == ERROR_FILE_NOT_FOUND || e == ERROR_PATH_NOT_FOUND ? WFPB_E_NOENT : WFPB_E_OS;
}

int
wfpb__file_share_group(wfpb_file f, int *os_err)
{
	(void)f;
	*os_err = 0;
	return 0;
}

int
wfpb__file_open_append(const char *path, wfpb_file *out, uint64_t *size, int *os_err)
{
	SECURITY_ATTRIBUTES	sa = { .nLength = sizeof(sa) };
	wchar_t			*w = wfpb__widen(path);
	LARGE_INTEGER		sz;
	HANDLE			h;
	int			rc;

	*out = WFPB_FILE_NONE;
	if (w == NULL)
		return WFPB_E_INVAL;
	if (!ConvertStringSecurityDescriptorToSecurityDescriptorW(SDDL_LOG, SDDL_REVISION_1,
	    &sa.lpSecurityDescriptor, NULL)) {
		free(w);
		return os_fail(os_err);
	}
	/* FILE_SHARE_READ only: a second writer (another broker) cannot open it. */
	h = CreateFileW(w, GENERIC_READ | GENERIC_WRITE, FILE_SHARE_READ, &sa, OPEN_ALWAYS, FILE_ATTRIBUTE_NORMAL,
	    NULL);
	rc = h == INVALID_HANDLE_VALUE ? os_fail(os_err) : 0;
	LocalFree(sa.lpSecurityDescriptor);
	free(w);
	if (rc != 0)
		return rc;
	if (!GetFileSizeEx(h, &sz)) {
		rc = os_fail(os_err);
		CloseHandle(h);
		return rc;
	}
	*size = (uint64_t)sz.QuadPart;
	*out = (wfpb_file)h;
	return 0;
}

int
wfpb__file_write(wfpb_file f, const uint8_t *p, size_t len, int *os_err)
{
	LARGE_INTEGER	zero = { 0 };
	DWORD		n;

	if (!SetFilePointerEx((HANDLE)f, zero, NULL, FILE_END))
		return os_fail(os_err);
	while (len > 0) {
		if (!WriteFile((HANDLE)f, p, (DWORD)len, &n, NULL))
			return os_fail(os_err);
		p += n;
		len -= n;
	}
	return 0;
}

int
wfpb__file_sync(wfpb_file f, int *os_err)
{
	return FlushFileBuffers((HANDLE)f) ? 0 : os_fail(os_err);
}

int
wfpb__file_truncate(wfpb_file f, uint64_t len, int *os_err)
{
	LARGE_INTEGER at;

	at.QuadPart = (LONGLONG)len;
	if (!SetFilePointerEx((HANDLE)f, at, NULL, FILE_BEGIN) || !SetEndOfFile((HANDLE)f))
		return os_fail(os_err);
	return 0;
}

void
wfpb__file_close(wfpb_file f)
{
	if (f != WFPB_FILE_NONE)
		CloseHandle((HANDLE)f);
}

int
wfpb__file_rotated(const char *path, uint64_t *seqs, size_t cap, size_t *n, int *os_err)
{
	WIN32_FIND_DATAW	fd;
	char			pattern[1024];
	const wchar_t		*p;
	wchar_t			*w;
	HANDLE			h;
	uint64_t		v;

	*n = 0;
	if ((size_t)snprintf(pattern, sizeof(pattern), "%s.*", path) >= sizeof(pattern) ||
	    (w = wfpb__widen(pattern)) == NULL)
		return WFPB_E_INVAL;
	h = FindFirstFileW(w, &fd);
	free(w);
	if (h == INVALID_HANDLE_VALUE) {
		if (GetLastError() == ERROR_FILE_NOT_FOUND)
			return 0;
		return os_fail(os_err);
	}
	do {
		/* The pattern matched BASENAME. and anything after it: keep only all-digit suffixes. */
		if ((p = wcsrchr(fd.cFileName, L'.')) == NULL || p[1] == L'\0')
			continue;
		for (v = 0, p++; *p >= L'0' && *p <= L'9' && v <= UINT64_MAX / 10; p++)
			v = v * 10 + (uint64_t)(*p - L'0');
		if (*p != L'\0' || v == 0)
			continue;
		if (*n < cap)
			seqs[*n] = v;
		(*n)++;
	} while (FindNextFileW(h, &fd));
	FindClose(h);
	return 0;
}

int
wfpb__file_open_read(const char *path, wfpb_file *out, uint64_t *size, int *os_err)
{
	wchar_t		*w = wfpb__widen(path);
	LARGE_INTEGER	sz;
	HANDLE		h;
	int		rc;

	*out = WFPB_FILE_NONE;
	*size = 0;
	if (w == NULL)
		return WFPB_E_INVAL;
	/* Without FILE_SHARE_DELETE an open reader makes the broker's rename at rotation fail. */
	h = CreateFileW(w, GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL, OPEN_EXISTING,
	    FILE_ATTRIBUTE_NORMAL, NULL);
	free(w);
	if (h == INVALID_HANDLE_VALUE)
		return os_fail(os_err);
	if (!GetFileSizeEx(h, &sz)) {
		rc = os_fail(os_err);
		CloseHandle(h);
		return rc;
	}
	*out = (wfpb_file)h;
	*size = (uint64_t)sz.QuadPart;
	return 0;
}

int
wfpb__file_pread(wfpb_file f, uint64_t off, size_t want, uint8_t **out, size_t *len)
{
	LARGE_INTEGER	at = { .QuadPart = (LONGLONG)off };
	HANDLE		h = (HANDLE)f;
	uint8_t		*buf;
	DWORD		n;
	size_t		done = 0;

	if ((buf = malloc(want + 1)) == NULL)
		return WFPB_E_NOMEM;
	if (want > 0 && SetFilePointerEx(h, at, NULL, FILE_BEGIN))
		while (done < want && ReadFile(h, buf + done, (DWORD)(want - done > 0x40000000u ? 0x40000000u :
		    want - done), &n, NULL) && n > 0)
			done += n;
	*out = buf;
	*len = done;
	return 0;
}

uint64_t
wfpb__wall_ms(void)
{
	FILETIME	ft;
	ULARGE_INTEGER	u;

	GetSystemTimeAsFileTime(&ft);
	u.LowPart = ft.dwLowDateTime;
	u.HighPart = ft.dwHighDateTime;
	/* 100 ns ticks since 1601 to ms since 1970. */
	return (u.QuadPart - 116444736000000000ULL) / 10000u;
}

/* SystemHandleInformation's entries (the legacy class: 16-bit process ids). */
struct handle_entry {
	USHORT	pid;
	USHORT	backtrace;
	UCHAR	type;
	UCHAR	attributes;
	USHORT	value;
	PVOID	object;
	ULONG	access;
};

struct handle_table {
	ULONG			n;
	struct handle_entry	h[1];
};

/* Counts this process's entries in the system handle table; 0 when it cannot be read. */
static uint32_t
handles_from_system_table(void)
{
	struct handle_table	*t = NULL, *bigger;
	ULONG			size = 1u << 16, got = 0, i;
	uint32_t		n = 0;
	NTSTATUS		st;

	for (;;) {
		if (size > (16u << 20) || (bigger = realloc(t, size)) == NULL)
			goto out;
		t = bigger;
		st = NtQuerySystemInformation((SYSTEM_INFORMATION_CLASS)16, t, size, &got);
		if (st != (NTSTATUS)0xC0000004L)	/* STATUS_INFO_LENGTH_MISMATCH */
			break;
		size *= 2;
	}
	if (st == 0)
		for (i = 0; i < t->n; i++)
			if (t->h[i].pid == (USHORT)GetCurrentProcessId())
				n++;
out:
	free(t);
	return n;
}

uint32_t
wfpb__process_id(void)
{
	return (uint32_t)GetCurrentProcessId();
}

void
wfpb__process_usage(uint64_t *rss_bytes, uint32_t *open_handles)
{
	PROCESS_MEMORY_COUNTERS	pmc;
	DWORD			n = 0;

	*rss_bytes = 0;
	*open_handles = 0;
	if (K32GetProcessMemoryInfo(GetCurrentProcess(), &pmc, sizeof(pmc)))
		*rss_bytes = pmc.WorkingSetSize;
	if (GetProcessHandleCount(GetCurrentProcess(), &n) && n > 0)
		*open_handles = n;
	else	/* Wine answers 0 here; its system handle table is right */
		*open_handles = handles_from_system_table();
}

static volatile LONG64 durable_renames;

uint64_t
wfpb__file_durable_renames(void)
{
	return (uint64_t)InterlockedCompareExchange64(&durable_renames, 0, 0);
}

int
wfpb__file_rename_durable(const char *from, const char *to, int *os_err)
{
	wchar_t	*wf = wfpb__widen(from), *wt = wfpb__widen(to);
	int	rc = -1;

	if (wf != NULL && wt != NULL && MoveFileExW(wf, wt, MOVEFILE_WRITE_THROUGH))
		rc = 0;
	else
		*os_err = wf != NULL && wt != NULL ? (int)GetLastError() : ERROR_NOT_ENOUGH_MEMORY;
	free(wf);
	free(wt);
	if (rc == 0)
		InterlockedIncrement64(&durable_renames);
	return rc;
}

int
wfpb__file_replace(const char *tmp, const char *path, const char *data, size_t len)
{
	wchar_t	*wt = wfpb__widen(tmp), *wp = wfpb__widen(path);
	HANDLE	h = INVALID_HANDLE_VALUE;
	DWORD	n = 0;
	int	rc = -1;

	if (wt != NULL && wp != NULL &&
	    (h = CreateFileW(wt, GENERIC_WRITE, 0, NULL, CREATE_ALWAYS, FILE_ATTRIBUTE_NORMAL,
	    NULL)) != INVALID_HANDLE_VALUE) {
		if (WriteFile(h, data, (DWORD)len, &n, NULL) && n == len && FlushFileBuffers(h)) {
			CloseHandle(h);
			h = INVALID_HANDLE_VALUE;
			rc = MoveFileExW(wt, wp, MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH) ? 0 : -1;
		}
		if (h != INVALID_HANDLE_VALUE)
			CloseHandle(h);
	}
	free(wt);
	free(wp);
	return rc;
}

int
wfpb__file_sync_stdout(void)
{
	HANDLE h = GetStdHandle(STD_OUTPUT_HANDLE);

	if (h == NULL || h == INVALID_HANDLE_VALUE || GetFileType(h) != FILE_TYPE_DISK)
		return 0;
	return FlushFileBuffers(h) ? 0 : -1;
}

/* No watch on Windows yet: a follower sleeps its poll (fileio.h). */
struct wfpb_file_watch {
	int	unused;
};

struct wfpb_file_watch *
wfpb__file_watch_open(const char *path)
{
	(void)path;
	return calloc(1, sizeof(struct wfpb_file_watch));
}

void
wfpb__file_watch_wait(struct wfpb_file_watch *w, unsigned ms)
{
	(void)w;
	Sleep(ms);
}

int
wfpb__file_watch_changed(struct wfpb_file_watch *w)
{
	(void)w;
	return 0;
}

void
wfpb__file_watch_close(struct wfpb_file_watch *w)
{
	free(w);
}
