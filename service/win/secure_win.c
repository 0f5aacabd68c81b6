/* SPDX-License-Identifier: Apache-2.0 */
/* Owner and DACL facts of the service's state, and the rule that judges them (secure_win.h). */
#include <windows.h>
#include <aclapi.h>
#include <sddl.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "secure_win.h"
#include "wide_win.h"

/* Rights that let a holder change the object, its DACL or owner, or what a directory contains. */
#define MODIFY_RIGHTS	(FILE_WRITE_DATA | FILE_APPEND_DATA | FILE_WRITE_EA | FILE_DELETE_CHILD |	\
			 FILE_WRITE_ATTRIBUTES | DELETE | WRITE_DAC | WRITE_OWNER | GENERIC_WRITE |	\
			 GENERIC_ALL | MAXIMUM_ALLOWED)
#define READ_RIGHTS	(FILE_READ_DATA | GENERIC_READ | GENERIC_ALL | MAXIMUM_ALLOWED)

static const char *const trusted_sids[] = {
	"S-1-5-18",		/* LocalSystem */
	"S-1-5-32-544",		/* BUILTIN\Administrators */
	"S-1-5-80-956008885-3418522649-1831038044-1853292631-2271478464",	/* TrustedInstaller */
};

static int
trusted(const char *sid, const char *self)
{
	size_t i;

	for (i = 0; i < sizeof(trusted_sids) / sizeof(trusted_sids[0]); i++)
		if (strcmp(sid, trusted_sids[i]) == 0)
			return 1;
	return self != NULL && self[0] != '\0' && strcmp(sid, self) == 0;
}

int
wfpb__sd_trusted(const struct wfpb_sd_facts *f, const char *self, int secret, char *why, size_t cap)
{
	unsigned i;

	/* Judged first: its owner (the user who made it) may point it elsewhere after any check. */
	if (f->reparse) {
		snprintf(why, cap, "is a reparse point (a junction or link), which the service never follows");
		return WFPB_SD_REPARSE;
	}
	if (!trusted(f->owner, self)) {
		snprintf(why, cap, "owned by %s, not SYSTEM or Administrators", f->owner);
		return WFPB_SD_OWNER;
	}
	if (!f->has_dacl || f->truncated) {
		snprintf(why, cap, "%s", !f->has_dacl ? "has no DACL: everyone may change it" :
		    "has more ACEs than the service judges");
		return WFPB_SD_WRITERS;
	}
	for (i = 0; i < f->naces; i++) {
		const struct wfpb_sd_ace *a = &f->aces[i];

		/* A deny ACE only ever takes away; OWNER RIGHTS stands for the (trusted) owner. */
		if (!a->allow || trusted(a->sid, self) || strcmp(a->sid, "S-1-3-4") == 0)
			continue;
		if (a->mask & MODIFY_RIGHTS) {
			snprintf(why, cap, "lets %s modify it (access mask 0x%lx)", a->sid, (unsigned long)a->mask);
			return WFPB_SD_WRITERS;
		}
		if (secret && (a->mask & READ_RIGHTS)) {
			snprintf(why, cap, "lets %s read a private key (access mask 0x%lx)", a->sid,
			    (unsigned long)a->mask);
			return WFPB_SD_READERS;
		}
	}
	why[0] = '\0';
	return WFPB_SD_OK;
}

static void
sid_text(PSID sid, char *out, size_t cap)
{
	LPSTR s = NULL;

	if (sid != NULL && ConvertSidToStringSidA(sid, &s)) {
		snprintf(out, cap, "%s", s);
		LocalFree(s);
	} else {
		snprintf(out, cap, "?");
	}
}

unsigned long
wfpb__sd_facts_of(void *handle, struct wfpb_sd_facts *out)
{
	PSECURITY_DESCRIPTOR	sd = NULL;
	ACL_SIZE_INFORMATION	info;
	PSID			owner = NULL;
	PACL			dacl = NULL;
	DWORD			i, err;
	void			*ace;
	BY_HANDLE_FILE_INFORMATION bhfi;

	memset(out, 0, sizeof(*out));
	if (!GetFileInformationByHandle(handle, &bhfi))
		return GetLastError();
	out->reparse = (bhfi.dwFileAttributes & FILE_ATTRIBUTE_REPARSE_POINT) != 0;
	err = GetSecurityInfo(handle, SE_FILE_OBJECT, OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION,
	    &owner, NULL, &dacl, NULL, &sd);
	if (err != ERROR_SUCCESS)
		return err;
	sid_text(owner, out->owner, sizeof(out->owner));
	out->has_dacl = dacl != NULL;
	if (dacl != NULL && GetAclInformation(dacl, &info, sizeof(info), AclSizeInformation)) {
		for (i = 0; i < info.AceCount; i++) {
			ACE_HEADER		*h;
			struct wfpb_sd_ace	*a;

			if (!GetAce(dacl, i, &ace))
				continue;
			h = ace;
			if (h->AceFlags & INHERIT_ONLY_ACE)
				continue;	/* applies to children, not to this object */
			if (out->naces == WFPB_SD_ACES_MAX) {
				out->truncated = 1;
				break;
			}
			a = &out->aces[out->naces++];
			if (h->AceType == ACCESS_ALLOWED_ACE_TYPE || h->AceType == ACCESS_DENIED_ACE_TYPE) {
				ACCESS_ALLOWED_ACE *x = ace;	/* the deny ACE has the same layout */

				a->allow = h->AceType == ACCESS_ALLOWED_ACE_TYPE;
				a->mask = x->Mask;
				sid_text(&x->SidStart, a->sid, sizeof(a->sid));
			} else {
				/* Object, callback or audit kinds: judged as an unknown party allowed everything. */
				a->allow = 1;
				a->mask = GENERIC_ALL;
				snprintf(a->sid, sizeof(a->sid), "?");
			}
		}
	}
	LocalFree(sd);
	return ERROR_SUCCESS;
}

unsigned long
wfpb__sd_facts_read(const char *path, struct wfpb_sd_facts *out)
{
	wchar_t		*w = wfpb__widen(path);
	HANDLE		fh;
	unsigned long	err;

	memset(out, 0, sizeof(*out));
	if (w == NULL)
		return ERROR_INVALID_PARAMETER;
	/*
	 * The path itself, not what a junction or link there leads to: opened with
	 * FILE_FLAG_OPEN_REPARSE_POINT and judged by that handle, so the facts are
	 * those of the object the service would use under that name.
	 */
	fh = CreateFileW(w, READ_CONTROL | FILE_READ_ATTRIBUTES, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
	    NULL, OPEN_EXISTING, FILE_FLAG_BACKUP_SEMANTICS | FILE_FLAG_OPEN_REPARSE_POINT, NULL);
	free(w);
	if (fh == INVALID_HANDLE_VALUE)
		return GetLastError();
	err = wfpb__sd_facts_of(fh, out);
	CloseHandle(fh);
	return err;
}

unsigned long
wfpb__sd_self(char *out, size_t cap)
{
	union {
		TOKEN_USER	tu;
		uint8_t		b[256];
	} u;
	HANDLE	tok;
	DWORD	len, err = ERROR_SUCCESS;

	if (!OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &tok))
		return GetLastError();
	if (!GetTokenInformation(tok, TokenUser, &u, sizeof(u), &len))
		err = GetLastError();
	else
		sid_text(u.tu.User.Sid, out, cap);
	CloseHandle(tok);
	return err;
}

unsigned long
wfpb__sd_reset(const char *path, const wchar_t *sddl)
{
	PSECURITY_DESCRIPTOR	sd = NULL;
	PACL			dacl = NULL;
	BOOL			present = FALSE, defaulted = FALSE;
	wchar_t			*w = wfpb__widen(path);
	DWORD			err;

	if (w == NULL)
		return ERROR_INVALID_PARAMETER;
	if (!ConvertStringSecurityDescriptorToSecurityDescriptorW(sddl, SDDL_REVISION_1, &sd, NULL)) {
		err = GetLastError();
		free(w);
		return err;
	}
	if (!GetSecurityDescriptorDacl(sd, &present, &dacl, &defaulted) || !present)
		err = ERROR_INVALID_SECURITY_DESCR;
	else
		err = SetNamedSecurityInfoW(w, SE_FILE_OBJECT, DACL_SECURITY_INFORMATION |
		    PROTECTED_DACL_SECURITY_INFORMATION, NULL, NULL, dacl, NULL);
	LocalFree(sd);
	free(w);
	return err;
}

static int
named_in(const wchar_t *list, const wchar_t *name)
{
	for (; *list != L'\0'; list += wcslen(list) + 1)
		if (_wcsicmp(list, name) == 0)
			return 1;
	return 0;
}

unsigned long
wfpb__token_keep_only(void *token, const wchar_t *keep, unsigned *removed)
{
	TOKEN_PRIVILEGES	*have, *drop;
	DWORD			len = 0, i, err = 0;
	wchar_t			name[64];
	DWORD			nlen;

	*removed = 0;
	(void)GetTokenInformation(token, TokenPrivileges, NULL, 0, &len);
	if (len == 0)
		return GetLastError();
	if ((have = malloc(len)) == NULL || (drop = malloc(len)) == NULL) {
		free(have);
		return ERROR_NOT_ENOUGH_MEMORY;
	}
	if (!GetTokenInformation(token, TokenPrivileges, have, len, &len)) {
		err = GetLastError();
		goto out;
	}
	drop->PrivilegeCount = 0;
	for (i = 0; i < have->PrivilegeCount; i++) {
		nlen = sizeof(name) / sizeof(name[0]);
		/* A privilege without a name this system knows is not one the service uses: it goes too. */
		if (LookupPrivilegeNameW(NULL, &have->Privileges[i].Luid, name, &nlen) && named_in(keep, name))
			continue;
		drop->Privileges[drop->PrivilegeCount].Luid = have->Privileges[i].Luid;
		drop->Privileges[drop->PrivilegeCount].Attributes = SE_PRIVILEGE_REMOVED;
		drop->PrivilegeCount++;
	}
	/* AdjustTokenPrivileges succeeds with ERROR_NOT_ALL_ASSIGNED when some were not changed: a failure here. */
	if (drop->PrivilegeCount > 0 &&
	    (!AdjustTokenPrivileges(token, FALSE, drop, 0, NULL, NULL) || GetLastError() != ERROR_SUCCESS))
		err = GetLastError();
	else
		*removed = drop->PrivilegeCount;
out:
	free(have);
	free(drop);
	return err;
}
