/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wfpbrokerd.exe selftest: answers, on the machine it runs on, the questions
 * about the redirect ioctls that only real Windows can (DESIGN.md §11), on
 * loopback and without touching the service's state: what the two queries
 * say on a connection no callout redirected, what SET says to an empty and
 * to a garbage blob, which error a too-small query buffer gets and whether
 * the needed size comes back, whether Winsock in this process takes a socket
 * pulled from a child with DuplicateHandle, and whether the queries need
 * elevation (a child with a filtered token); whether the redirect ioctls
 * still work once the service has dropped its privileges; whether the UDP
 * redirect options can be enabled, and by whom; whether a datagram may
 * carry records as control data (WSASendMsg), and by whom, and what
 * WSARecvMsg then delivers; whether SO_ORIGINAL_DST
 * answers; and whether a standard user can create a name in the service's
 * pipe namespace. Each call and its result is printed and written as JSON
 * for a bug report. Nothing here is trusted input: the children are this
 * same program.
 */
#include <winsock2.h>
#include <ws2tcpip.h>
#include <mswsock.h>
#include <windows.h>
#include <winternl.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "selftest_win.h"
#include "wfp.h"


#define PROBES_MAX	32

/* Not in mingw-w64's headers (ws2ipdef.h of recent SDKs). */
#define IP_WFP_REDIRECT_RECORDS_OPT	60
#define IP_WFP_REDIRECT_CONTEXT_OPT	70
#define SO_ORIGINAL_DST_OPT		0x300F
#define PROTECTED_PIPE_DIR		L"\\\\.\\pipe\\ProtectedPrefix\\Administrators\\wfpbroker\\"

struct probe {
	char	name[64];
	char	call[96];
	int	rc;		/* the call's return value */
	int	err;		/* WSAGetLastError / GetLastError after it, 0 on success */
	DWORD	bytes;		/* lpcbBytesReturned, where there is one */
	char	note[160];
};

static struct probe	probes[PROBES_MAX];
static int		nprobes;

static struct probe *
record(const char *name, const char *call, int rc, int err, DWORD bytes, const char *note)
{
	struct probe *p;

	if (nprobes == PROBES_MAX)
		return NULL;
	p = &probes[nprobes++];
	snprintf(p->name, sizeof(p->name), "%s", name);
	snprintf(p->call, sizeof(p->call), "%s", call);
	p->rc = rc;
	p->err = err;
	p->bytes = bytes;
	snprintf(p->note, sizeof(p->note), "%s", note ? note : "");
	printf("%-34s %-44s rc %d, error %d, %lu bytes%s%s\n", name, call, rc, err, (unsigned long)bytes,
	    p->note[0] ? ": " : "", p->note);
	return p;
}

/* A loopback TCP pair: *acc accepted from a listener, *cl its client end. 0 or -1. */
static int
loopback_pair(SOCKET *acc, SOCKET *cl)
{
	struct sockaddr_in	sin = { .sin_family = AF_INET };
	int			len = sizeof(sin);
	SOCKET			l;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	*acc = *cl = INVALID_SOCKET;
	if ((l = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP)) == INVALID_SOCKET)
		return -1;
	if (bind(l, (struct sockaddr *)&sin, sizeof(sin)) != 0 || listen(l, 1) != 0 ||
	    getsockname(l, (struct sockaddr *)&sin, &len) != 0 ||
	    (*cl = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP)) == INVALID_SOCKET ||
	    connect(*cl, (struct sockaddr *)&sin, sizeof(sin)) != 0 || (*acc = accept(l, NULL, NULL)) == INVALID_SOCKET) {
		closesocket(l);
		return -1;
	}
	closesocket(l);
	return 0;
}

static void
query(const char *name, SOCKET s, DWORD code, DWORD cap)
{
	char	call[96], *buf = calloc(1, cap ? cap : 1);
	DWORD	got = 0;
	int	rc;

	snprintf(call, sizeof(call), "WSAIoctl(%s, out %lu B)", code == SIO_QUERY_WFP_CONNECTION_REDIRECT_RECORDS ?
	    "QUERY_RECORDS" : "QUERY_CONTEXT", (unsigned long)cap);
	rc = WSAIoctl(s, code, NULL, 0, buf, cap, &got, NULL, NULL);
	(void)record(name, call, rc, rc == 0 ? 0 : WSAGetLastError(), got,
	    rc != 0 && got > cap ? "the needed size came back in lpcbBytesReturned" : NULL);
	free(buf);
}

static void
set_records(const char *name, const void *blob, DWORD len)
{
	SOCKET	s = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
	DWORD	got = 0;
	char	call[96];
	int	rc;

	snprintf(call, sizeof(call), "WSAIoctl(SET_RECORDS, in %lu B)", (unsigned long)len);
	rc = WSAIoctl(s, SIO_SET_WFP_CONNECTION_REDIRECT_RECORDS, (void *)(uintptr_t)blob, len, NULL, 0, &got, NULL,
	    NULL);
	(void)record(name, call, rc, rc == 0 ? 0 : WSAGetLastError(), got, NULL);
	closesocket(s);
}

/* Runs this program as `selftest-child MODE` (with token, if not NULL); its first stdout line into out. */
static int
run_child(const char *mode, HANDLE token, char *out, size_t cap, PROCESS_INFORMATION *pi_out, HANDLE *to_child)
{
	SECURITY_ATTRIBUTES	sa = { .nLength = sizeof(sa), .bInheritHandle = TRUE };
	STARTUPINFOW		si = { .cb = sizeof(si) };
	PROCESS_INFORMATION	pi;
	wchar_t			exe[MAX_PATH], cmd[MAX_PATH + 64];
	HANDLE			rd, wr, in_rd = NULL, in_wr = NULL;
	DWORD			n = 0, got;
	BOOL			ok;

	out[0] = '\0';
	if (GetModuleFileNameW(NULL, exe, MAX_PATH) == 0 || !CreatePipe(&rd, &wr, &sa, 0))
		return -1;
	SetHandleInformation(rd, HANDLE_FLAG_INHERIT, 0);
	if (to_child != NULL) {
		if (!CreatePipe(&in_rd, &in_wr, &sa, 0))
			return -1;
		SetHandleInformation(in_wr, HANDLE_FLAG_INHERIT, 0);
	}
	_snwprintf(cmd, sizeof(cmd) / sizeof(cmd[0]), L"\"%ls\" selftest-child %hs", exe, mode);
	si.dwFlags = STARTF_USESTDHANDLES;
	si.hStdOutput = wr;
	si.hStdError = GetStdHandle(STD_ERROR_HANDLE);
	si.hStdInput = in_rd != NULL ? in_rd : GetStdHandle(STD_INPUT_HANDLE);
	if (token != NULL)
		ok = CreateProcessAsUserW(token, exe, cmd, NULL, NULL, TRUE, 0, NULL, NULL, &si, &pi);
	else
		ok = CreateProcessW(exe, cmd, NULL, NULL, TRUE, 0, NULL, NULL, &si, &pi);
	CloseHandle(wr);
	if (in_rd != NULL)
		CloseHandle(in_rd);
	if (!ok) {
		n = GetLastError();
		CloseHandle(rd);
		if (in_wr != NULL)
			CloseHandle(in_wr);
		snprintf(out, cap, "cannot start the child (error %lu)", (unsigned long)n);
		return (int)n;
	}
	/* One line, read byte by byte so that nothing past it is consumed. */
	for (n = 0; n + 1 < cap && ReadFile(rd, out + n, 1, &got, NULL) && got == 1 && out[n] != '\n'; n++)
		;
	out[n] = '\0';
	CloseHandle(rd);
	if (pi_out != NULL) {
		*pi_out = pi;
	} else {
		WaitForSingleObject(pi.hProcess, 10000);
		CloseHandle(pi.hProcess);
		CloseHandle(pi.hThread);
	}
	if (to_child != NULL)
		*to_child = in_wr;
	return 0;
}

/* Whether Winsock here takes a socket handle pulled from a child with DuplicateHandle. */
static void
pulled_socket(void)
{
	PROCESS_INFORMATION	pi;
	unsigned long long	h = 0;
	unsigned long		pid = 0;
	HANDLE			proc, dup = NULL, to_child = NULL;
	char			line[128], note[160];
	int			type = 0, len = sizeof(type), rc;

	if ((rc = run_child("socket", NULL, line, sizeof(line), &pi, &to_child)) != 0 ||
	    sscanf(line, "%lu %llu", &pid, &h) != 2) {
		(void)record("pulled socket: DuplicateHandle", "child: socket()", -1, rc, 0, line);
		return;
	}
	if ((proc = OpenProcess(PROCESS_DUP_HANDLE, FALSE, (DWORD)pid)) == NULL ||
	    !DuplicateHandle(proc, (HANDLE)(uintptr_t)h, GetCurrentProcess(), &dup, 0, FALSE, DUPLICATE_SAME_ACCESS)) {
		(void)record("pulled socket: DuplicateHandle", "OpenProcess + DuplicateHandle", -1, (int)GetLastError(), 0,
		    NULL);
	} else {
		rc = getsockopt((SOCKET)(uintptr_t)dup, SOL_SOCKET, SO_TYPE, (char *)&type, &len);
		snprintf(note, sizeof(note), "%s", rc == 0 && type == SOCK_STREAM ?
		    "Winsock takes the pulled handle as a stream socket" : "Winsock does not take the pulled handle");
		(void)record("pulled socket: DuplicateHandle", "getsockopt(SO_TYPE) on the copy", rc,
		    rc == 0 ? 0 : WSAGetLastError(), 0, note);
		CloseHandle(dup);
	}
	if (proc != NULL)
		CloseHandle(proc);
	CloseHandle(to_child);	/* the child reads EOF and exits */
	WaitForSingleObject(pi.hProcess, 10000);
	CloseHandle(pi.hProcess);
	CloseHandle(pi.hThread);
}

/* Enables IP_WFP_REDIRECT_RECORDS and IP_WFP_REDIRECT_CONTEXT on a UDP socket; "rc error" of each into out. */
static void
udp_options(char *out, size_t cap, int results[4])
{
	SOCKET	u = socket(AF_INET, SOCK_DGRAM, IPPROTO_UDP);
	DWORD	one = 1;

	results[0] = setsockopt(u, IPPROTO_IP, IP_WFP_REDIRECT_RECORDS_OPT, (const char *)&one, sizeof(one));
	results[1] = results[0] == 0 ? 0 : WSAGetLastError();
	results[2] = setsockopt(u, IPPROTO_IP, IP_WFP_REDIRECT_CONTEXT_OPT, (const char *)&one, sizeof(one));
	results[3] = results[2] == 0 ? 0 : WSAGetLastError();
	closesocket(u);
	snprintf(out, cap, "IP_WFP_REDIRECT_RECORDS rc %d error %d; IP_WFP_REDIRECT_CONTEXT rc %d error %d", results[0],
	    results[1], results[2], results[3]);
}

/*
 * Sends a loopback datagram with 16 bytes of IP_WFP_REDIRECT_RECORDS as control data
 * (WSASendMsg), as a UDP proxy's upstream must on the flow's first datagram, and reads it
 * with WSARecvMsg on a socket with both options enabled: what each said, and which control
 * types arrived. No callout made these records: the answer says whether the call itself is
 * open to this token, not what WFP does with real ones.
 */
static void
udp_send_records(char *out, size_t cap)
{
	struct sockaddr_in	sin = { .sin_family = AF_INET };
	GUID			guid = WSAID_WSARECVMSG;
	LPFN_WSARECVMSG		recvmsg_fn = NULL;
	SOCKET			rx, tx;
	WSAMSG			msg;
	WSABUF			data;
	WSACMSGHDR		*c;
	DWORD			one = 1, got = 0, sent = 0;
	char			payload[8] = "wfpb", ctl[256], types[64] = "";
	int			len = sizeof(sin), rs, es, rr = -1, er = 0, at = 0;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	rx = socket(AF_INET, SOCK_DGRAM, IPPROTO_UDP);
	tx = socket(AF_INET, SOCK_DGRAM, IPPROTO_UDP);
	(void)setsockopt(rx, IPPROTO_IP, IP_WFP_REDIRECT_RECORDS_OPT, (const char *)&one, sizeof(one));
	(void)setsockopt(rx, IPPROTO_IP, IP_WFP_REDIRECT_CONTEXT_OPT, (const char *)&one, sizeof(one));
	if (rx == INVALID_SOCKET || tx == INVALID_SOCKET || bind(rx, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
	    getsockname(rx, (struct sockaddr *)&sin, &len) != 0) {
		snprintf(out, cap, "no loopback UDP socket (error %d)", WSAGetLastError());
		goto done;
	}
	memset(&msg, 0, sizeof(msg));
	memset(ctl, 0, sizeof(ctl));
	data.buf = payload;
	data.len = 4;
	msg.name = (struct sockaddr *)&sin;
	msg.namelen = sizeof(sin);
	msg.lpBuffers = &data;
	msg.dwBufferCount = 1;
	msg.Control.buf = ctl;
	msg.Control.len = (ULONG)WSA_CMSG_SPACE(16);
	c = WSA_CMSG_FIRSTHDR(&msg);
	c->cmsg_level = IPPROTO_IP;
	c->cmsg_type = IP_WFP_REDIRECT_RECORDS_OPT;
	c->cmsg_len = WSA_CMSG_LEN(16);
	memset(WSA_CMSG_DATA(c), 0x5a, 16);
	rs = WSASendMsg(tx, &msg, 0, &sent, NULL, NULL);
	es = rs == 0 ? 0 : WSAGetLastError();
	if (rs != 0)	/* then the plain datagram, so that the receive side still answers */
		(void)sendto(tx, payload, 4, 0, (struct sockaddr *)&sin, sizeof(sin));
	if (WSAIoctl(rx, SIO_GET_EXTENSION_FUNCTION_POINTER, &guid, sizeof(guid), &recvmsg_fn, sizeof(recvmsg_fn), &got,
	    NULL, NULL) == 0 && recvmsg_fn != NULL) {
		memset(&msg, 0, sizeof(msg));
		memset(ctl, 0, sizeof(ctl));
		data.len = sizeof(payload);
		msg.lpBuffers = &data;
		msg.dwBufferCount = 1;
		msg.Control.buf = ctl;
		msg.Control.len = sizeof(ctl);
		rr = recvmsg_fn(rx, &msg, &got, NULL, NULL);
		er = rr == 0 ? 0 : WSAGetLastError();
		for (c = rr == 0 ? WSA_CMSG_FIRSTHDR(&msg) : NULL; c != NULL && at < (int)sizeof(types) - 12;
		    c = WSA_CMSG_NXTHDR(&msg, c))
			at += snprintf(types + at, sizeof(types) - (size_t)at, "%s%d/%d", at ? "," : "", c->cmsg_level,
			    c->cmsg_type);
	}
	snprintf(out, cap, "WSASendMsg(records) rc %d error %d; WSARecvMsg rc %d error %d, control %s", rs, es, rr, er,
	    types[0] ? types : "none");
done:
	closesocket(rx);
	closesocket(tx);
}

/* Creates a pipe name under the service's protected prefix; 0 or the Win32 error. */
static DWORD
protected_pipe(void)
{
	wchar_t	name[160];
	HANDLE	h;
	DWORD	err;

	_snwprintf(name, sizeof(name) / sizeof(name[0]), PROTECTED_PIPE_DIR L"selftest-%lu",
	    (unsigned long)GetCurrentProcessId());
	name[sizeof(name) / sizeof(name[0]) - 1] = L'\0';
	h = CreateNamedPipeW(name, PIPE_ACCESS_DUPLEX | FILE_FLAG_FIRST_PIPE_INSTANCE, PIPE_TYPE_BYTE | PIPE_REJECT_REMOTE_CLIENTS,
	    1, 512, 512, 0, NULL);
	if (h == INVALID_HANDLE_VALUE)
		return GetLastError();
	err = 0;
	CloseHandle(h);
	return err;
}

/* A child of this program with token (NULL: this one) in mode; its line recorded under name. */
static void
child_probe(const char *name, const char *call, const char *mode, HANDLE token)
{
	char	line[200];
	int	rc = run_child(mode, token, line, sizeof(line), NULL, NULL);

	(void)record(name, call, rc == 0 ? 0 : -1, rc, 0, line);
}

/*
 * The probes of what the service relies on and only a real machine answers:
 * the UDP options (here and from a filtered token), SO_ORIGINAL_DST on an
 * accepted connection, the protected pipe namespace (here and from a filtered
 * token), and the redirect ioctls from a token holding no privilege but
 * SeChangeNotifyPrivilege, as the service runs once it dropped the rest.
 */
static void
more_probes(void)
{
	SOCKADDR_STORAGE	ss;
	SOCKET			acc, cl;
	HANDLE			tok = NULL, lua = NULL, bare = NULL;
	char			line[200];
	int			r[4], len = sizeof(ss), rc;
	DWORD			err;

	udp_options(line, sizeof(line), r);
	(void)record("UDP redirect options, this token", "setsockopt(IPPROTO_IP, 60 and 70)", r[0] == 0 && r[2] == 0 ? 0 : -1,
	    r[0] != 0 ? r[1] : r[3], 0, line);
	udp_send_records(line, sizeof(line));
	(void)record("UDP records as control data, this token", "WSASendMsg(IP_WFP_REDIRECT_RECORDS), WSARecvMsg",
	    strstr(line, "WSASendMsg(records) rc 0 ") != NULL ? 0 : -1, 0, 0, line);
	if (loopback_pair(&acc, &cl) == 0) {
		rc = getsockopt(acc, SOL_SOCKET, SO_ORIGINAL_DST_OPT, (char *)&ss, &len);
		(void)record("accepted, not redirected", "getsockopt(SO_ORIGINAL_DST)", rc, rc == 0 ? 0 : WSAGetLastError(),
		    rc == 0 ? (DWORD)len : 0, NULL);
		closesocket(acc);
		closesocket(cl);
	}
	err = protected_pipe();
	(void)record("protected pipe name, this token", "CreateNamedPipeW(ProtectedPrefix\\Administrators\\...)",
	    err == 0 ? 0 : -1, (int)err, 0, NULL);
	if (!OpenProcessToken(GetCurrentProcess(), TOKEN_DUPLICATE | TOKEN_QUERY | TOKEN_ASSIGN_PRIMARY, &tok))
		return;
	if (CreateRestrictedToken(tok, LUA_TOKEN | DISABLE_MAX_PRIVILEGE, 0, NULL, 0, NULL, 0, NULL, &lua)) {
		child_probe("UDP redirect options, filtered token", "child: setsockopt(60 and 70), not elevated", "udp", lua);
		child_probe("UDP records as control data, filtered token", "child: WSASendMsg(60), not elevated", "udpsend",
		    lua);
		child_probe("protected pipe name, filtered token", "child: CreateNamedPipeW, not elevated", "pipe", lua);
		CloseHandle(lua);
	}
	/* Elevated still, every privilege but SeChangeNotifyPrivilege gone: the service's own token after the drop. */
	if (CreateRestrictedToken(tok, DISABLE_MAX_PRIVILEGE, 0, NULL, 0, NULL, 0, NULL, &bare)) {
		child_probe("ioctls without privileges", "child: both queries and SET, elevated, no privileges", "ioctls",
		    bare);
		CloseHandle(bare);
	}
	CloseHandle(tok);
}

/* Whether the queries need elevation: the same two queries in a child with a filtered (LUA) token. */
static void
filtered_token_queries(void)
{
	HANDLE	tok = NULL, lua = NULL;
	char	line[200];
	int	rc;

	if (!OpenProcessToken(GetCurrentProcess(), TOKEN_DUPLICATE | TOKEN_QUERY | TOKEN_ASSIGN_PRIMARY, &tok) ||
	    !CreateRestrictedToken(tok, LUA_TOKEN | DISABLE_MAX_PRIVILEGE, 0, NULL, 0, NULL, 0, NULL, &lua)) {
		(void)record("queries with a filtered token", "CreateRestrictedToken(LUA_TOKEN)", -1, (int)GetLastError(), 0,
		    NULL);
		if (tok != NULL)
			CloseHandle(tok);
		return;
	}
	rc = run_child("query", lua, line, sizeof(line), NULL, NULL);
	(void)record("queries with a filtered token", "child: both queries, not elevated", rc == 0 ? 0 : -1, rc, 0,
	    line);
	CloseHandle(lua);
	CloseHandle(tok);
}

static void
os_build(char *out, size_t cap)
{
	RTL_OSVERSIONINFOW	v = { .dwOSVersionInfoSize = sizeof(v) };
	LONG (WINAPI *get)(RTL_OSVERSIONINFOW *) = NULL;
	HMODULE			nt = GetModuleHandleW(L"ntdll.dll");
	const char *(CDECL *wine)(void) = NULL;

	if (nt != NULL) {
		get = (LONG (WINAPI *)(RTL_OSVERSIONINFOW *))(void (*)(void))GetProcAddress(nt, "RtlGetVersion");
		wine = (const char *(CDECL *)(void))(void (*)(void))GetProcAddress(nt, "wine_get_version");
	}
	if (get == NULL || get(&v) != 0)
		snprintf(out, cap, "unknown");
	else
		snprintf(out, cap, "Windows %lu.%lu build %lu%s%s", (unsigned long)v.dwMajorVersion,
		    (unsigned long)v.dwMinorVersion, (unsigned long)v.dwBuildNumber, wine ? ", Wine " : "",
		    wine ? wine() : "");
}

int
wfpb_selftest_child(const char *mode)
{
	SOCKET	acc, cl;
	char	buf[2048];
	DWORD	got = 0;
	int	r1, e1, r2, e2;

	if (strcmp(mode, "socket") == 0) {
		SOCKET s = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);

		printf("%lu %llu\n", (unsigned long)GetCurrentProcessId(), (unsigned long long)(uintptr_t)s);
		fflush(stdout);
		(void)getchar();	/* until the parent closes our stdin */
		closesocket(s);
		return 0;
	}
	if (strcmp(mode, "udp") == 0) {
		int r[4];

		udp_options(buf, sizeof(buf), r);
		printf("%s\n", buf);
		return 0;
	}
	if (strcmp(mode, "udpsend") == 0) {
		udp_send_records(buf, sizeof(buf));
		printf("%s\n", buf);
		return 0;
	}
	if (strcmp(mode, "pipe") == 0) {
		printf("CreateNamedPipeW under ProtectedPrefix\\Administrators: error %lu\n", (unsigned long)protected_pipe());
		return 0;
	}
	if (strcmp(mode, "query") == 0 || strcmp(mode, "ioctls") == 0) {
		int	with_set = strcmp(mode, "ioctls") == 0, r3 = 0, e3 = 0;
		SOCKET	s;

		if (loopback_pair(&acc, &cl) != 0) {
			printf("no loopback connection (error %d)\n", WSAGetLastError());
			return 1;
		}
		r1 = WSAIoctl(acc, SIO_QUERY_WFP_CONNECTION_REDIRECT_RECORDS, NULL, 0, buf, sizeof(buf), &got, NULL, NULL);
		e1 = r1 == 0 ? 0 : WSAGetLastError();
		r2 = WSAIoctl(acc, SIO_QUERY_WFP_CONNECTION_REDIRECT_CONTEXT, NULL, 0, buf, sizeof(buf), &got, NULL, NULL);
		e2 = r2 == 0 ? 0 : WSAGetLastError();
		printf("QUERY_RECORDS rc %d error %d; QUERY_CONTEXT rc %d error %d", r1, e1, r2, e2);
		if (with_set) {
			s = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
			r3 = WSAIoctl(s, SIO_SET_WFP_CONNECTION_REDIRECT_RECORDS, NULL, 0, NULL, 0, &got, NULL, NULL);
			e3 = r3 == 0 ? 0 : WSAGetLastError();
			printf("; SET rc %d error %d", r3, e3);
			closesocket(s);
		}
		printf("\n");
		closesocket(acc);
		closesocket(cl);
		return 0;
	}
	return 2;
}

int
wfpb_selftest(const char *json_path)
{
	static const char	garbage[] = "wfpbroker selftest: not a redirect record";
	HANDLE			tok;
	TOKEN_ELEVATION		elev = { 0 };
	DWORD			len;
	SOCKET			acc, cl;
	char			build[128];
	FILE			*f;
	struct wfpb_json	j;
	int			i;

	nprobes = 0;
	os_build(build, sizeof(build));
	if (OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &tok)) {
		(void)GetTokenInformation(tok, TokenElevation, &elev, sizeof(elev), &len);
		CloseHandle(tok);
	}
	printf("wfpbrokerd selftest on %s, %s\n", build, elev.TokenIsElevated ? "elevated" : "not elevated");
	if (loopback_pair(&acc, &cl) != 0) {
		fprintf(stderr, "wfpbrokerd: selftest: no loopback connection (error %d)\n", WSAGetLastError());
		return 1;
	}
	query("accepted, not redirected", acc, SIO_QUERY_WFP_CONNECTION_REDIRECT_RECORDS, 2048);
	query("accepted, not redirected", acc, SIO_QUERY_WFP_CONNECTION_REDIRECT_CONTEXT, 2048);
	query("too-small buffer", acc, SIO_QUERY_WFP_CONNECTION_REDIRECT_RECORDS, 1);
	query("too-small buffer", acc, SIO_QUERY_WFP_CONNECTION_REDIRECT_CONTEXT, 1);
	closesocket(acc);
	closesocket(cl);
	set_records("SET, empty blob, new socket", NULL, 0);
	set_records("SET, garbage blob, new socket", garbage, sizeof(garbage));
	pulled_socket();
	filtered_token_queries();
	more_probes();
	if (json_path != NULL) {
		if ((f = fopen(json_path, "w")) == NULL) {
			fprintf(stderr, "wfpbrokerd: selftest: cannot write %s\n", json_path);
			return 1;
		}
		wfpb_json_init(&j, f);
		wfpb_json_obj_begin(&j, NULL);
		wfpb_json_str(&j, "os", build);
		wfpb_json_bool(&j, "elevated", elev.TokenIsElevated != 0);
		wfpb_json_arr_begin(&j, "probes");
		for (i = 0; i < nprobes; i++) {
			wfpb_json_obj_begin(&j, NULL);
			wfpb_json_str(&j, "name", probes[i].name);
			wfpb_json_str(&j, "call", probes[i].call);
			wfpb_json_i64(&j, "rc", probes[i].rc);
			wfpb_json_i64(&j, "error", probes[i].err);
			wfpb_json_u64(&j, "bytes", probes[i].bytes);
			wfpb_json_str(&j, "note", probes[i].note);
			wfpb_json_obj_end(&j);
		}
		wfpb_json_arr_end(&j);
		wfpb_json_obj_end(&j);
		(void)wfpb_json_end(&j);
		fclose(f);
		printf("written to %s\n", json_path);
	}
	return 0;
}
