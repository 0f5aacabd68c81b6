/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Windows key file I/O. Files are created with an explicit DACL: the private
 * key for SYSTEM and Administrators alone, the public key also readable by
 * Everyone. Paths are UTF-8 and converted here.
 */
#include <windows.h>
#include <sddl.h>

#include <stdlib.h>

#include "keyfile.h"
#include "wide_win.h"

#define SDDL_SECRET	L"D:P(A;;FA;;;SY)(A;;FA;;;BA)(A;;FA;;;OW)"
#define SDDL_PUBLIC	L"D:P(A;;FA;;;SY)(A;;FA;;;BA)(A;;FA;;;OW)(A;;FR;;;WD)"

static int
from_win32(DWORD e)
{
	switch (e) {
	case ERROR_FILE_NOT_FOUND: case ERROR_PATH_NOT_FOUND: return WFPB_E_NOENT;
	case ERROR_ACCESS_DENIED: return WFPB_E_ACCESS;
	}
	return WFPB_E_IO;
}

int
wfpb__keyfile_read(const char *path, char *buf, size_t cap, size_t *len, int secret)
{
	wchar_t	*wpath = wfpb__widen(path);
	HANDLE	h;
	DWORD	n, err;
	int	rc = 0;

	(void)secret;
	if (wpath == NULL)
		return WFPB_E_INVAL;
	h = CreateFileW(wpath, GENERIC_READ, FILE_SHARE_READ, NULL, OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL, NULL);
	err = GetLastError();
	free(wpath);
	if (h == INVALID_HANDLE_VALUE)
		return from_win32(err);
	if (!ReadFile(h, buf, (DWORD)cap, &n, NULL))
		rc = from_win32(GetLastError());
	else if (n == cap)
		rc = WFPB_E_KEYFILE;
	else
		*len = n;
	CloseHandle(h);
	return rc;
}

int
wfpb__keyfile_write(const char *path, const char *data, size_t len, int secret)
{
	SECURITY_ATTRIBUTES	sa = { .nLength = sizeof(sa) };
	wchar_t			*wpath = wfpb__widen(path), *wtmp = NULL;
	size_t			n;
	HANDLE			h;
	DWORD			written, err = 0;
	int			rc = 0;

	if (wpath == NULL)
		return WFPB_E_INVAL;
	n = wcslen(wpath);
	if ((wtmp = HeapAlloc(GetProcessHeap(), 0, (n + 5) * sizeof(wchar_t))) == NULL) {
		rc = WFPB_E_NOMEM;
		goto free_path;
	}
	memcpy(wtmp, wpath, n * sizeof(wchar_t));
	memcpy(wtmp + n, L".tmp", 5 * sizeof(wchar_t));
	if (!ConvertStringSecurityDescriptorToSecurityDescriptorW(secret ? SDDL_SECRET : SDDL_PUBLIC,
	    SDDL_REVISION_1, &sa.lpSecurityDescriptor, NULL)) {
		rc = from_win32(GetLastError());
		goto free_tmp;
	}
	/*
	 * A new file, always: CREATE_ALWAYS over a planted .tmp would keep the
	 * planter's DACL (the security attributes apply only when the file is
	 * created). What stands there is removed first; if it cannot be, the
	 * write fails rather than use it.
	 */
	(void)DeleteFileW(wtmp);
	h = CreateFileW(wtmp, GENERIC_WRITE, 0, &sa, CREATE_NEW, FILE_ATTRIBUTE_NORMAL, NULL);
	err = GetLastError();
	LocalFree(sa.lpSecurityDescriptor);
	if (h == INVALID_HANDLE_VALUE) {
		rc = from_win32(err);
		goto free_tmp;
	}
	if (!WriteFile(h, data, (DWORD)len, &written, NULL) || written != len || !FlushFileBuffers(h)) {
		rc = from_win32(GetLastError());
		CloseHandle(h);
		DeleteFileW(wtmp);
		goto free_tmp;
	}
	CloseHandle(h);
	if (!MoveFileExW(wtmp, wpath, MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH)) {
		rc = from_win32(GetLastError());
		DeleteFileW(wtmp);
	}
free_tmp:
	HeapFree(GetProcessHeap(), 0, wtmp);
free_path:
	free(wpath);
	return rc;
}
