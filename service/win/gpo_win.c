/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Group Policy's settings for the broker, read from HKLM\SOFTWARE\Policies\wfpbroker, where
 * Group Policy and Intune (the ADMX in installer/windows) write them. The key is writable by
 * administrators only (its parent's default DACL), so what it says is an administrator's.
 */
#include <windows.h>
#include <sddl.h>

#include <stdio.h>
#include <string.h>

#include "gpo.h"
#include "gpo_win.h"

#define POLICY_KEY	L"SOFTWARE\\Policies\\wfpbroker"

int
wfpb__group_sid(const char *group, char *sid_out, size_t cap)
{
	wchar_t		wname[256], domain[256], *text = NULL;
	BYTE		buf[SECURITY_MAX_SID_SIZE];
	PSID		sid = buf, parsed = NULL;
	DWORD		cb = sizeof(buf), dcb = 256;
	SID_NAME_USE	use;
	int		rc = -1;

	if (MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, group, -1, wname, 256) <= 0)
		return -1;
	if (strncmp(group, "S-1-", 4) == 0) {
		if (!ConvertStringSidToSidW(wname, &parsed))
			return -1;
		sid = parsed;
	} else if (!LookupAccountNameW(NULL, wname, sid, &cb, domain, &dcb, &use)) {
		return -1;
	}
	if (ConvertSidToStringSidW(sid, &text) &&
	    WideCharToMultiByte(CP_UTF8, 0, text, -1, sid_out, (int)cap, NULL, NULL) > 0)
		rc = 0;
	LocalFree(text);
	LocalFree(parsed);
	return rc;
}

/* A REG_SZ value into out (UTF-8): 1 set, 0 absent, -1 of another type or too long. */
static int
string_value(HKEY k, const wchar_t *name, char *out, size_t cap)
{
	wchar_t	w[1024];
	DWORD	type = 0, cb = sizeof(w) - sizeof(w[0]);
	LONG	err;

	out[0] = '\0';
	memset(w, 0, sizeof(w));
	if ((err = RegQueryValueExW(k, name, NULL, &type, (BYTE *)w, &cb)) == ERROR_FILE_NOT_FOUND)
		return 0;
	if (err != ERROR_SUCCESS || type != REG_SZ)
		return -1;
	w[cb / sizeof(w[0])] = L'\0';
	if (WideCharToMultiByte(CP_UTF8, 0, w, -1, out, (int)cap, NULL, NULL) <= 0)
		return -1;
	return out[0] != '\0';
}

/* A REG_DWORD value: 1 set, 0 absent, -1 of another type. */
static int
dword_value(HKEY k, const wchar_t *name, uint32_t *out)
{
	DWORD	type = 0, v = 0, cb = sizeof(v);
	LONG	err;

	if ((err = RegQueryValueExW(k, name, NULL, &type, (BYTE *)&v, &cb)) == ERROR_FILE_NOT_FOUND)
		return 0;
	if (err != ERROR_SUCCESS || type != REG_DWORD || cb != sizeof(v))
		return -1;
	*out = v;
	return 1;
}

int
wfpb__gpo_read(struct wfpb_gpo *out, char *err, size_t cap)
{
	char		group[256];
	const char	*bad = NULL;
	HKEY		k;
	LONG		e;

	memset(out, 0, sizeof(*out));
	if ((e = RegOpenKeyExW(HKEY_LOCAL_MACHINE, POLICY_KEY, 0, KEY_READ | KEY_WOW64_64KEY, &k)) == ERROR_FILE_NOT_FOUND)
		return 0;
	if (e != ERROR_SUCCESS) {
		snprintf(err, cap, "HKLM\\SOFTWARE\\Policies\\wfpbroker: cannot be read (error %ld)", e);
		return -1;
	}
	if (string_value(k, L"ConfigFile", out->config_file, sizeof(out->config_file)) < 0)
		bad = "ConfigFile";
	else if (string_value(k, L"Backend", out->backend, sizeof(out->backend)) < 0)
		bad = "Backend";
	else if (string_value(k, L"AuditLog", out->audit_log, sizeof(out->audit_log)) < 0)
		bad = "AuditLog";
	else if ((out->has_keep_files = dword_value(k, L"AuditKeepFiles", &out->audit_keep_files)) < 0)
		bad = "AuditKeepFiles (a REG_DWORD)";
	else if ((out->has_max_kib = dword_value(k, L"AuditMaxKiB", &out->audit_max_kib)) < 0)
		bad = "AuditMaxKiB (a REG_DWORD)";
	else if (string_value(k, L"AdminGroup", group, sizeof(group)) < 0)
		bad = "AdminGroup";
	RegCloseKey(k);
	if (bad != NULL) {
		snprintf(err, cap, "Group Policy %s: not a value of its type, or too long", bad);
		return -1;
	}
	if (group[0] != '\0' && wfpb__group_sid(group, out->admin_group, sizeof(out->admin_group)) != 0) {
		snprintf(err, cap, "Group Policy AdminGroup %s: not a SID or an account this machine knows", group);
		return -1;
	}
	return 0;
}
