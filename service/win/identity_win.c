/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Reads a pipe client's identity: PID from the pipe; user SID, enabled group
 * SIDs, elevation and session id from its token (impersonating at
 * identification level, then reverting); image path from the process. A failed RevertToSelf ends the process: serving on the
 * client's token would be an escalation.
 */
#include <windows.h>
#include <sddl.h>

#include <stdio.h>
#include <stdlib.h>

#include "identity_win.h"
#include "log.h"
#include "net.h"

static void
narrow(const wchar_t *w, char *out, size_t cap)
{
	if (WideCharToMultiByte(CP_UTF8, 0, w, -1, out, (int)cap, NULL, NULL) <= 0)
		out[0] = '\0';
}

/* The token's enabled groups, without the deny-only ones (they never grant). */
static void
token_groups(HANDLE tok, struct wfpb_identity *id)
{
	TOKEN_GROUPS	*g;
	DWORD		len = 0, i;
	LPWSTR		sid;

	(void)GetTokenInformation(tok, TokenGroups, NULL, 0, &len);
	if (len == 0 || (g = malloc(len)) == NULL)
		return;
	if (GetTokenInformation(tok, TokenGroups, g, len, &len)) {
		for (i = 0; i < g->GroupCount && id->ngroup_sids < WFPB_GROUP_SIDS_MAX; i++) {
			DWORD attr = g->Groups[i].Attributes;

			if (!(attr & SE_GROUP_ENABLED) || (attr & SE_GROUP_USE_FOR_DENY_ONLY))
				continue;
			if (!ConvertSidToStringSidW(g->Groups[i].Sid, &sid))
				continue;
			/* A SID too long to keep is left out: it could only have granted. */
			if (wcslen(sid) < WFPB_GROUP_SID_LEN) {
				narrow(sid, id->group_sids[id->ngroup_sids], WFPB_GROUP_SID_LEN);
				if (id->group_sids[id->ngroup_sids][0] != '\0')
					id->ngroup_sids++;
			}
			LocalFree(sid);
		}
		if (i < g->GroupCount)
			wfpb_log(WFPB_LOG_WARN, "pid %u: token has %lu groups, %u kept", (unsigned)id->pid,
			    (unsigned long)g->GroupCount, WFPB_GROUP_SIDS_MAX);
	}
	free(g);
}

/* 1 when the process's token user is the SID string user. */
static int
process_user_is(HANDLE proc, const char *user)
{
	BYTE	buf[256];
	HANDLE	tok;
	DWORD	len;
	LPWSTR	sid = NULL;
	char	text[WFPB_SID_MAX] = "";

	if (!OpenProcessToken(proc, TOKEN_QUERY, &tok))
		return 0;
	if (GetTokenInformation(tok, TokenUser, buf, sizeof(buf), &len) &&
	    ConvertSidToStringSidW(((TOKEN_USER *)buf)->User.Sid, &sid)) {
		narrow(sid, text, sizeof(text));
		LocalFree(sid);
	}
	CloseHandle(tok);
	return text[0] != '\0' && strcmp(text, user) == 0;
}

/*
 * The client's token, read while impersonating it at identification level:
 * user SID (required), groups, elevation and session. 1 when the user SID
 * was read.
 */
static int
read_token(HANDLE pipe, struct wfpb_identity *id)
{
	TOKEN_ELEVATION	elev;
	HANDLE		tok = NULL;
	BYTE		buf[256];
	DWORD		len, session;
	LPWSTR		sid = NULL;
	int		ok = 0;

	if (!ImpersonateNamedPipeClient(pipe)) {
		wfpb_log(WFPB_LOG_WARN, "ImpersonateNamedPipeClient: error %lu", GetLastError());
		return 0;
	}
	if (!OpenThreadToken(GetCurrentThread(), TOKEN_QUERY, TRUE, &tok))
		tok = NULL;
	if (!RevertToSelf()) {
		wfpb_log(WFPB_LOG_ERR, "RevertToSelf failed (error %lu): stopping", GetLastError());
		abort();
	}
	if (tok == NULL)
		return 0;
	if (GetTokenInformation(tok, TokenUser, buf, sizeof(buf), &len) &&
	    ConvertSidToStringSidW(((TOKEN_USER *)buf)->User.Sid, &sid)) {
		narrow(sid, id->user, sizeof(id->user));
		LocalFree(sid);
		ok = id->user[0] != '\0';
	}
	token_groups(tok, id);
	if (GetTokenInformation(tok, TokenElevation, &elev, sizeof(elev), &len))
		id->elevated = elev.TokenIsElevated != 0;
	if (GetTokenInformation(tok, TokenSessionId, &session, sizeof(session), &len))
		id->logon_session = session;
	CloseHandle(tok);
	return ok;
}

void
wfpb__identify_pipe_client(HANDLE pipe, struct wfpb_identity *id)
{
	wchar_t	image[MAX_PATH];
	DWORD	n = MAX_PATH;
	ULONG	pid = 0;
	HANDLE	proc;
	int	os_err = 0;

	memset(id, 0, sizeof(*id));
	id->uid = id->gid = -1;
	id->elevated = -1;
	if (!GetNamedPipeClientProcessId(pipe, &pid)) {
		wfpb_log(WFPB_LOG_WARN, "GetNamedPipeClientProcessId: error %lu", GetLastError());
		return;
	}
	id->pid = pid;
	if (!read_token(pipe, id))
		return;
	/*
	 * Pin the PID: while this handle is open the process object exists and its
	 * PID cannot be given to another. It must run as the pipe's client, or the
	 * PID already names someone else (the client exited and was replaced).
	 */
	if ((proc = (HANDLE)wfpb__net_pin_process(pid, &os_err)) == NULL) {
		wfpb_log(WFPB_LOG_WARN, "pipe client pid %lu: cannot open it (error %d): session denied", pid, os_err);
		return;
	}
	if (!process_user_is(proc, id->user)) {
		wfpb_log(WFPB_LOG_WARN, "pipe client pid %lu does not run as the pipe's client %s: session denied",
		    pid, id->user);
		CloseHandle(proc);
		return;
	}
	if (QueryFullProcessImageNameW(proc, 0, image, &n))
		narrow(image, id->image, sizeof(id->image));
	id->process = (intptr_t)proc;
	id->known = 1;
}
