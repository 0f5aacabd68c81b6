/* SPDX-License-Identifier: Apache-2.0 */
/* First-start configuration from the MSI's properties, and the purge at uninstall (provision_win.h). */
#include <windows.h>
#include <sddl.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpo_win.h"
#include "log.h"
#include "provision_win.h"
#include "secure_win.h"

#define PARAMS_KEY	L"SYSTEM\\CurrentControlSet\\Services\\wfpbroker\\Parameters"
#define CONFIG_MAX	(1024u * 1024u)

/* UTF-8 into a fixed UTF-16 buffer; 0 or -1 (invalid or too long). */
static int
widen(const char *s, wchar_t *out, int cap)
{
	return MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, out, cap) > 0 ? 0 : -1;
}

/* A REG_SZ value of the service's Parameters key into out (UTF-8); "" when absent or empty. */
static void
param(const wchar_t *name, char *out, size_t cap)
{
	wchar_t	w[1024];
	DWORD	cb = sizeof(w);

	out[0] = '\0';
	if (RegGetValueW(HKEY_LOCAL_MACHINE, PARAMS_KEY, name, RRF_RT_REG_SZ, NULL, w, &cb) != ERROR_SUCCESS)
		return;
	if (WideCharToMultiByte(CP_UTF8, 0, w, -1, out, (int)cap, NULL, NULL) <= 0)
		out[0] = '\0';
}

/* Removes the installer's properties from the service's Parameters key. */
static void
forget(void)
{
	HKEY	key;
	LONG	err;

	if (RegOpenKeyExW(HKEY_LOCAL_MACHINE, PARAMS_KEY, 0, KEY_SET_VALUE, &key) != ERROR_SUCCESS)
		return;
	if ((err = RegDeleteValueW(key, L"ConfigSource")) != ERROR_SUCCESS && err != ERROR_FILE_NOT_FOUND)
		wfpb_log(WFPB_LOG_WARN, "forget CONFIGFILE: error %ld", err);
	if ((err = RegDeleteValueW(key, L"AdminGroup")) != ERROR_SUCCESS && err != ERROR_FILE_NOT_FOUND)
		wfpb_log(WFPB_LOG_WARN, "forget ADMINGROUP: error %ld", err);
	RegCloseKey(key);
}

/* Creates path with exactly len bytes of data; fails if it exists. */
static int
write_new(const char *path, const void *data, size_t len)
{
	wchar_t	wpath[MAX_PATH];
	HANDLE	h;
	DWORD	done = 0;
	BOOL	ok;

	if (widen(path, wpath, MAX_PATH) != 0)
		return -1;
	h = CreateFileW(wpath, GENERIC_WRITE, 0, NULL, CREATE_NEW, FILE_ATTRIBUTE_NORMAL, NULL);
	if (h == INVALID_HANDLE_VALUE) {
		wfpb_log(WFPB_LOG_ERR, "create %s: error %lu", path, GetLastError());
		return -1;
	}
	ok = WriteFile(h, data, (DWORD)len, &done, NULL) && done == len && FlushFileBuffers(h);
	CloseHandle(h);
	if (!ok) {
		wfpb_log(WFPB_LOG_ERR, "write %s: error %lu", path, GetLastError());
		DeleteFileW(wpath);
		return -1;
	}
	return 0;
}

static int
copy_config(const char *src, const char *dst)
{
	wchar_t		wsrc[MAX_PATH];
	LARGE_INTEGER	size;
	HANDLE		h;
	DWORD		got = 0;
	char		*buf;
	int		rc = -1;

	struct wfpb_sd_facts	f;
	char			self[WFPB_SID_MAX] = "", why[256];
	unsigned long		err;

	if (widen(src, wsrc, MAX_PATH) != 0)
		return -1;
	/* Judged by the handle it is read through, a link never followed: what is judged is what is read. */
	h = CreateFileW(wsrc, GENERIC_READ | READ_CONTROL, FILE_SHARE_READ, NULL, OPEN_EXISTING,
	    FILE_FLAG_OPEN_REPARSE_POINT, NULL);
	if (h == INVALID_HANDLE_VALUE) {
		wfpb_log(WFPB_LOG_ERR, "CONFIGFILE %s: cannot open it (error %lu)", src, GetLastError());
		return -1;
	}
	if ((err = wfpb__sd_facts_of(h, &f)) != 0 || (err = wfpb__sd_self(self, sizeof(self))) != 0) {
		wfpb_log(WFPB_LOG_ERR, "CONFIGFILE %s: cannot read its owner and DACL (error %lu)", src, err);
		CloseHandle(h);
		return -1;
	}
	if (wfpb__sd_trusted(&f, self, 0, why, sizeof(why)) != WFPB_SD_OK) {
		wfpb_log(WFPB_LOG_ERR, "CONFIGFILE %s %s: not copied (it must be as safe as the state directory)", src,
		    why);
		wfpb_event(WFPB_EVENT_STATE, "CONFIGFILE %s %s: not copied", src, why);
		CloseHandle(h);
		return -1;
	}
	if (!GetFileSizeEx(h, &size) || size.QuadPart > CONFIG_MAX) {
		wfpb_log(WFPB_LOG_ERR, "CONFIGFILE %s: not a file of at most %u bytes", src, CONFIG_MAX);
		CloseHandle(h);
		return -1;
	}
	if ((buf = malloc((size_t)size.QuadPart + 1)) != NULL &&
	    ReadFile(h, buf, (DWORD)size.QuadPart, &got, NULL) && got == (DWORD)size.QuadPart)
		rc = write_new(dst, buf, got);
	else
		wfpb_log(WFPB_LOG_ERR, "CONFIGFILE %s: cannot read it (error %lu)", src, GetLastError());
	free(buf);
	CloseHandle(h);
	if (rc == 0)
		wfpb_log(WFPB_LOG_INFO, "configuration %s written from CONFIGFILE %s", dst, src);
	return rc;
}

int
wfpb_provision_config(const char *conf_path)
{
	char	source[1024], group[1024], sid[192], text[1024];
	int	n;

	param(L"ConfigSource", source, sizeof(source));
	param(L"AdminGroup", group, sizeof(group));
	/*
	 * Once: whatever happens next, the installer's properties are forgotten, so a
	 * later start that finds no configuration never copies a source someone may
	 * have changed since. Without one the service runs by the defaults (nothing
	 * granted).
	 */
	forget();
	if (source[0] != '\0')
		return copy_config(source, conf_path);
	if (group[0] == '\0')
		return 0;
	if (wfpb__group_sid(group, sid, sizeof(sid)) != 0) {
		wfpb_log(WFPB_LOG_ERR, "ADMINGROUP %s: not a SID or an account this machine knows", group);
		return -1;
	}
	n = snprintf(text, sizeof(text),
	    "; Written by wfpbrokerd at its first start from the installer's ADMINGROUP (%s).\r\n"
	    "; Default deny: only that group, in an elevated session, may administer (status, reload).\r\n"
	    "[principal administrators]\r\n"
	    "group_sid = %s\r\n"
	    "ops = admin\r\n", group, sid);
	if (n < 0 || (size_t)n >= sizeof(text) || write_new(conf_path, text, (size_t)n) != 0)
		return -1;
	wfpb_log(WFPB_LOG_INFO, "configuration %s written: admin for %s (%s)", conf_path, group, sid);
	return 0;
}

int
wfpb_purge_state(const char *state_dir)
{
	WIN32_FIND_DATAW	fd;
	wchar_t			wdir[MAX_PATH], pattern[MAX_PATH + 4], path[2 * MAX_PATH];
	HANDLE			h;
	DWORD			attr;
	int			rc = 0;

	if (widen(state_dir, wdir, MAX_PATH) != 0)
		return -1;
	attr = GetFileAttributesW(wdir);
	if (attr == INVALID_FILE_ATTRIBUTES)
		return GetLastError() == ERROR_FILE_NOT_FOUND || GetLastError() == ERROR_PATH_NOT_FOUND ? 0 : -1;
	if (!(attr & FILE_ATTRIBUTE_DIRECTORY) || (attr & FILE_ATTRIBUTE_REPARSE_POINT)) {
		wfpb_log(WFPB_LOG_ERR, "purge: %s is not a plain directory; left alone", state_dir);
		return -1;
	}
	_snwprintf(pattern, MAX_PATH + 4, L"%ls\\*", wdir);
	if ((h = FindFirstFileW(pattern, &fd)) == INVALID_HANDLE_VALUE)
		return -1;
	do {
		if (wcscmp(fd.cFileName, L".") == 0 || wcscmp(fd.cFileName, L"..") == 0)
			continue;
		_snwprintf(path, 2 * MAX_PATH, L"%ls\\%ls", wdir, fd.cFileName);
		/* A link is removed itself (RemoveDirectory on a directory junction does not follow it). */
		if (fd.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY) {
			if (!(fd.dwFileAttributes & FILE_ATTRIBUTE_REPARSE_POINT) || !RemoveDirectoryW(path))
				rc = -1;
		} else {
			SetFileAttributesW(path, FILE_ATTRIBUTE_NORMAL);
			if (!DeleteFileW(path))
				rc = -1;
		}
	} while (FindNextFileW(h, &fd));
	FindClose(h);
	if (rc != 0 || !RemoveDirectoryW(wdir)) {
		wfpb_log(WFPB_LOG_ERR, "purge: %s could not be removed entirely (error %lu)", state_dir,
		    GetLastError());
		return -1;
	}
	wfpb_log(WFPB_LOG_INFO, "purge: %s removed", state_dir);
	return 0;
}
