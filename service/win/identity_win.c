/*
 * Reads a pipe client's identity: PID from the pipe, user SID from its token
 * (impersonating at identification level, then reverting), image path from
 * the process. A failed RevertToSelf ends the process: serving on the
 * client's token would be an escalation.
 */
#include <windows.h>
#include <sddl.h>

#include <stdio.h>
#include <stdlib.h>

#include "identity_win.h"
#include "log.h"

static void
narrow(const wchar_t *w, char *out, size_t cap)
{
	if (WideCharToMultiByte(CP_UTF8, 0, w, -1, out, (int)cap, NULL, NULL) <= 0)
		out[0] = '\0';
}

static int
token_user(HANDLE pipe, char *out, size_t cap)
{
	HANDLE	tok = NULL;
	BYTE	buf[256];
	DWORD	len;
	LPWSTR	sid = NULL;
	int	ok = 0;

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
		narrow(sid, out, cap);
		LocalFree(sid);
		ok = out[0] != '\0';
	}
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

	memset(id, 0, sizeof(*id));
	id->uid = id->gid = -1;
	if (!GetNamedPipeClientProcessId(pipe, &pid)) {
		wfpb_log(WFPB_LOG_WARN, "GetNamedPipeClientProcessId: error %lu", GetLastError());
		return;
	}
	id->pid = pid;
	if (!token_user(pipe, id->user, sizeof(id->user)))
		return;
	if ((proc = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, FALSE, pid)) != NULL) {
		if (QueryFullProcessImageNameW(proc, 0, image, &n))
			narrow(image, id->image, sizeof(id->image));
		CloseHandle(proc);
	}
	id->known = 1;
}
