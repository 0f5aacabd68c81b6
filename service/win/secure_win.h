/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Who controls the service's state: the owner and DACL of the state
 * directory and of each key file in it, read from the OS as plain facts
 * (wfpb__sd_facts_read) and judged by a pure function (wfpb__sd_trusted), so
 * that the judgement is unit-tested with injected facts where Wine cannot
 * show them (Wine synthesises owners and DACLs from Unix modes).
 */
#ifndef WFPB_SECURE_WIN_H
#define WFPB_SECURE_WIN_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define WFPB_SD_ACES_MAX	32u

struct wfpb_sd_ace {
	int		allow;			/* 1 allow, 0 deny */
	uint32_t	mask;			/* access mask, generic rights not mapped */
	char		sid[WFPB_SID_MAX];	/* "S-1-..."; "?" for an ACE kind not understood */
};

struct wfpb_sd_facts {
	char			owner[WFPB_SID_MAX];
	int			has_dacl;	/* 0: a NULL DACL, which grants everyone everything */
	unsigned		naces;
	int			truncated;	/* more ACEs than kept (judged untrusted) */
	int			reparse;	/* the path itself is a reparse point (a junction, a symbolic link) */
	struct wfpb_sd_ace	aces[WFPB_SD_ACES_MAX];
};

/*
 * The owner and the DACL's ACEs that apply to the object itself (inherit-only
 * ones left out), read from a handle opened on the path itself: a reparse point
 * is opened, never followed, and said so in reparse. 0 or a Win32 error.
 */
unsigned long wfpb__sd_facts_read(const char *path, struct wfpb_sd_facts *out);

/* The same facts of an open file or directory handle (READ_CONTROL | FILE_READ_ATTRIBUTES). */
unsigned long wfpb__sd_facts_of(void *handle, struct wfpb_sd_facts *out);

/* The user SID of this process's token ("S-1-5-18" for LocalSystem) into out; 0 or a Win32 error. */
unsigned long wfpb__sd_self(char *out, size_t cap);

enum {
	WFPB_SD_OK = 0,
	WFPB_SD_OWNER = 1,	/* owned by someone the service does not trust */
	WFPB_SD_WRITERS = 2,	/* someone else may write, delete, or change its DACL or owner */
	WFPB_SD_READERS = 3,	/* a secret someone else may read */
	WFPB_SD_REPARSE = 4,	/* a junction or link: whoever made it may point it elsewhere later */
};

/*
 * Judges facts: the owner must be SYSTEM, Administrators, TrustedInstaller
 * or self (the service's own user); only those (and OWNER RIGHTS) may hold
 * any right to modify; with secret, only those may read either. Returns
 * WFPB_SD_OK or the first fault, with a sentence in why.
 */
int wfpb__sd_trusted(const struct wfpb_sd_facts *f, const char *self, int secret, char *why, size_t cap);

/* Puts the protected DACL of sddl on an existing path (after it was judged not planted). 0 or a Win32 error. */
unsigned long wfpb__sd_reset(const char *path, const wchar_t *sddl);

/*
 * The privileges the service uses, as the SCM's required-privileges list wants
 * them (names, each ended by L'\0', the list by another): reading paths it may
 * not list (bypass traverse checking). Nothing else: the redirect ioctls and
 * the ProtectedPrefix pipe rest on the Administrators group, not on a
 * privilege, and identification-level impersonation needs none.
 */
#define WFPB_PRIVILEGES_KEPT	L"SeChangeNotifyPrivilege\0"

/*
 * Removes from token (opened with TOKEN_QUERY | TOKEN_ADJUST_PRIVILEGES) every
 * privilege not named in keep (a list as above), with SE_PRIVILEGE_REMOVED: gone
 * for the life of the token, not merely disabled. *removed counts them. 0 or a
 * Win32 error.
 */
unsigned long wfpb__token_keep_only(void *token, const wchar_t *keep, unsigned *removed);

#endif
