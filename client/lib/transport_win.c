/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libwfpb over a named pipe. The pipe is opened at identification level
 * (SECURITY_SQOS_PRESENT | SECURITY_IDENTIFICATION) so the broker can read
 * who we are but cannot act as us. Reads and writes are overlapped so every
 * call has a deadline.
 */
#include <winsock2.h>
#include <ws2tcpip.h>
#include <mswsock.h>
#include <windows.h>
#include <shlobj.h>
#include <knownfolders.h>

#include <stdio.h>
#include <stdlib.h>

#include "transport.h"
#include "wfp_control.h"
#include "wfpb.h"
#include "wide_win.h"

#define RD_CHUNK	16384u

/*
 * Reads go through one overlapped ReadFile kept outstanding whenever nothing
 * is buffered (wfpb__transport_arm). A submit's bytes go out through one
 * overlapped WriteFile from a copy (wr_buf) that is not waited for
 * (wfpb__transport_write_some): it shares rd_event, so rd_event (manual
 * reset) is signalled exactly while there is something to read or a write
 * has ended (settle): the handle a caller's loop waits on, which wakes it to
 * send the rest. Blocking writes use their own event and wait for themselves,
 * after any write of a submit.
 */
struct wfpb_transport {
	HANDLE		pipe;
	HANDLE		event;		/* writes */
	HANDLE		rd_event;
	OVERLAPPED	rd_ov;
	int		rd_pending;	/* a ReadFile into rd_buf is outstanding */
	int		rd_error;	/* it ended with this WFPB_E_* */
	uint8_t		rd_buf[RD_CHUNK];
	size_t		rd_off, rd_have;
	OVERLAPPED	wr_ov;		/* a submit's write, on rd_event */
	int		wr_pending;	/* it is outstanding, from wr_buf + wr_off */
	int		wr_error;	/* it failed while a read waited: the next write says so */
	uint8_t		*wr_buf;
	size_t		wr_off, wr_len;
	/* Notices (wfpb__transport_watch): a one-shot wait on rd_event, registered again after each. */
	struct wfpb__notify	*nt;
	HANDLE			wait;
	volatile LONG		fired;	/* the wait ran: register it again at the next _rearm */
};

/*
 * A client's notices: the caller's completion port and key, and a loopback TCP pair whose
 * receiving end the caller polls (tx is written by the wait's callback on a pool thread;
 * both are set before any wait is registered and never change after).
 */
struct wfpb__notify {
	HANDLE		port;
	ULONG_PTR	key;
	SOCKET		tx, rx;
};

/* The service's pipe (service/win/main_win.c): a name only administrators can create. */
#define DEFAULT_PIPE	"\\\\.\\pipe\\ProtectedPrefix\\Administrators\\wfpbroker\\broker"

const char *
wfpb__default_endpoint(void)
{
	return DEFAULT_PIPE;
}

const char *
wfpb__default_server_key(void)
{
	static char	path[MAX_PATH + 64];
	char		base[MAX_PATH];
	PWSTR		w = NULL;

	/* The shell's ProgramData, as the service computes it (its environment differs from ours). */
	if (path[0] == '\0') {
		if (SHGetKnownFolderPath(&FOLDERID_ProgramData, 0, NULL, &w) != S_OK ||
		    WideCharToMultiByte(CP_UTF8, 0, w, -1, base, sizeof(base), NULL, NULL) == 0)
			snprintf(base, sizeof(base), "C:\\ProgramData");
		CoTaskMemFree(w);
		snprintf(path, sizeof(path), "%s\\wfpbroker\\server.pub", base);
	}
	return path;
}

/*
 * On the default pipe, when the wfpbroker service is running, the pipe must
 * be served by that service's process: a squatter that got the name first is
 * refused before any byte is sent (the pinned key would refuse it anyway).
 * Returns 0, or the squatter's PID.
 */
static DWORD
squatter_pid(HANDLE pipe, const char *endpoint, DWORD *service_pid)
{
	SERVICE_STATUS_PROCESS	st;
	SC_HANDLE		scm, svc;
	ULONG			server = 0;
	DWORD			need;
	int			running = 0;

	*service_pid = 0;
	if (_stricmp(endpoint, DEFAULT_PIPE) != 0)
		return 0;
	if ((scm = OpenSCManagerW(NULL, NULL, SC_MANAGER_CONNECT)) == NULL)
		return 0;
	if ((svc = OpenServiceW(scm, L"wfpbroker", SERVICE_QUERY_STATUS)) != NULL) {
		if (QueryServiceStatusEx(svc, SC_STATUS_PROCESS_INFO, (BYTE *)&st, sizeof(st), &need) &&
		    st.dwCurrentState == SERVICE_RUNNING) {
			running = 1;
			*service_pid = st.dwProcessId;
		}
		CloseServiceHandle(svc);
	}
	CloseServiceHandle(scm);
	if (!running || !GetNamedPipeServerProcessId(pipe, &server))
		return 0;
	return server == *service_pid ? 0 : server;
}

static void
winsock_init(void)
{
	static volatile LONG	done;
	WSADATA			wsa;

	if (InterlockedExchange(&done, 1) == 0)
		(void)WSAStartup(MAKEWORD(2, 2), &wsa);
}

int
wfpb__socket_from_info(const uint8_t *info, size_t len, int nonblocking, intptr_t *out)
{
	WSAPROTOCOL_INFOW	pi;
	SOCKET			s;
	u_long			blocking = 0;

	*out = -1;
	if (len != sizeof(pi))
		return WFPB_E_PROTOCOL;
	winsock_init();
	memcpy(&pi, info, sizeof(pi));
	/* The broker's own flags: overlapped, and not inherited by processes the application starts. */
	s = WSASocketW(FROM_PROTOCOL_INFO, FROM_PROTOCOL_INFO, FROM_PROTOCOL_INFO, &pi, 0,
	    WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
	if (s == INVALID_SOCKET)
		return WFPB_E_OS;
	/* The broker worked on it non-blocking; the application gets an ordinary blocking socket, if it wants one. */
	if (!nonblocking)
		(void)ioctlsocket(s, FIONBIO, &blocking);
	*out = (intptr_t)s;
	return 0;
}

int
wfpb__transport_connect(const char *endpoint, uint32_t timeout_ms, struct wfpb_transport **out, char *err,
    size_t errlen)
{
	struct wfpb_transport	*t;
	wchar_t			*name;
	HANDLE			h;
	DWORD			e, start = GetTickCount();

	*out = NULL;
	winsock_init();
	if ((name = wfpb__widen(endpoint)) == NULL) {
		snprintf(err, errlen, "endpoint is not valid UTF-8");
		return WFPB_E_INVAL;
	}
	for (;;) {
		h = CreateFileW(name, GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING,
		    FILE_FLAG_OVERLAPPED | SECURITY_SQOS_PRESENT | SECURITY_IDENTIFICATION, NULL);
		if (h != INVALID_HANDLE_VALUE)
			break;
		e = GetLastError();
		if (e != ERROR_PIPE_BUSY || GetTickCount() - start >= timeout_ms) {
			free(name);
			snprintf(err, errlen, "cannot reach the broker at %s: Win32 error %lu", endpoint,
			    (unsigned long)e);
			return e == ERROR_FILE_NOT_FOUND ? WFPB_E_NOENT : e == ERROR_ACCESS_DENIED ? WFPB_E_ACCESS :
			    e == ERROR_PIPE_BUSY ? WFPB_E_TIMEOUT : WFPB_E_IO;
		}
		WaitNamedPipeW(name, 100);
	}
	free(name);
	{
		DWORD svc_pid, other = squatter_pid(h, endpoint, &svc_pid);

		if (other != 0) {
			CloseHandle(h);
			snprintf(err, errlen, "%s is served by process %lu, not by the wfpbroker service (process %lu)",
			    endpoint, (unsigned long)other, (unsigned long)svc_pid);
			return WFPB_E_PEER_KEY;
		}
	}
	if ((t = calloc(1, sizeof(*t))) == NULL || (t->event = CreateEventW(NULL, TRUE, FALSE, NULL)) == NULL ||
	    (t->rd_event = CreateEventW(NULL, TRUE, FALSE, NULL)) == NULL) {
		if (t != NULL && t->event != NULL)
			CloseHandle(t->event);
		free(t);
		CloseHandle(h);
		return WFPB_E_NOMEM;
	}
	t->pipe = h;
	*out = t;
	return 0;
}

/* Waits for one overlapped operation; cancels it at the deadline. */
static int
finish(struct wfpb_transport *t, OVERLAPPED *ov, BOOL started, DWORD *n, uint32_t timeout_ms)
{
	DWORD e;

	if (!started) {
		e = GetLastError();
		if (e != ERROR_IO_PENDING)
			return e == ERROR_BROKEN_PIPE || e == ERROR_NO_DATA || e == ERROR_PIPE_NOT_CONNECTED ?
			    WFPB_E_CLOSED : WFPB_E_IO;
	}
	if (WaitForSingleObject(t->event, timeout_ms) != WAIT_OBJECT_0) {
		CancelIoEx(t->pipe, ov);
		GetOverlappedResult(t->pipe, ov, n, TRUE);
		return WFPB_E_TIMEOUT;
	}
	if (!GetOverlappedResult(t->pipe, ov, n, FALSE)) {
		e = GetLastError();
		return e == ERROR_BROKEN_PIPE || e == ERROR_NO_DATA || e == ERROR_PIPE_NOT_CONNECTED ?
		    WFPB_E_CLOSED : WFPB_E_IO;
	}
	return 0;
}

static int
pipe_error(DWORD e)
{
	return e == ERROR_BROKEN_PIPE || e == ERROR_NO_DATA || e == ERROR_PIPE_NOT_CONNECTED ? WFPB_E_CLOSED :
	    WFPB_E_IO;
}

/* Whether the caller's loop has something to do: bytes to read, or a write that ended. */
static int
ready(const struct wfpb_transport *t)
{
	return (!t->rd_pending && (t->rd_have > 0 || t->rd_error != 0)) ||
	    (t->rd_pending && HasOverlappedIoCompleted(&t->rd_ov)) || (t->wr_pending && HasOverlappedIoCompleted(&t->wr_ov));
}

/*
 * rd_event to what ready says. Starting either overlapped operation resets the event they
 * share, and one may end between the test and the reset: tested again after it.
 */
static void
settle(struct wfpb_transport *t)
{
	if (!ready(t))
		ResetEvent(t->rd_event);
	if (ready(t))
		SetEvent(t->rd_event);
}

/*
 * Takes the submit's write if it ended: 0 (done, or still outstanding: *busy), or an error.
 * A write that took part of its bytes goes out again for the rest.
 */
static int
wr_reap(struct wfpb_transport *t, int *busy)
{
	DWORD n = 0;

	*busy = 0;
	while (t->wr_pending) {
		if (!GetOverlappedResult(t->pipe, &t->wr_ov, &n, FALSE)) {
			if (GetLastError() == ERROR_IO_INCOMPLETE) {
				*busy = 1;
				return 0;
			}
			t->wr_pending = 0;
			return pipe_error(GetLastError());
		}
		t->wr_off += n;
		t->wr_pending = 0;
		if (t->wr_off < t->wr_len) {
			memset(&t->wr_ov, 0, sizeof(t->wr_ov));
			t->wr_ov.hEvent = t->rd_event;
			if (!WriteFile(t->pipe, t->wr_buf + t->wr_off, (DWORD)(t->wr_len - t->wr_off), NULL, &t->wr_ov) &&
			    GetLastError() != ERROR_IO_PENDING)
				return pipe_error(GetLastError());
			t->wr_pending = 1;
		}
	}
	return 0;
}

/* A blocking write first lets a submit's write end, within timeout_ms: 0, or an error. */
static int
wr_drain(struct wfpb_transport *t, uint32_t timeout_ms)
{
	DWORD	start = GetTickCount();
	int	busy, rc;

	for (;;) {
		if ((rc = wr_reap(t, &busy)) != 0 || !busy)
			break;
		if (GetTickCount() - start >= timeout_ms) {
			rc = WFPB_E_TIMEOUT;
			break;
		}
		/* The shared event may be up for a read: then the write is polled, not spun on. */
		if (WaitForSingleObject(t->rd_event, 10) == WAIT_OBJECT_0 && !HasOverlappedIoCompleted(&t->wr_ov))
			Sleep(1);
	}
	settle(t);
	return rc;
}

int
wfpb__transport_write(struct wfpb_transport *t, const uint8_t *p, size_t len, uint32_t timeout_ms)
{
	OVERLAPPED	ov;
	DWORD		n;
	BOOL		ok;
	int		rc;

	if (t->wr_error != 0)
		return t->wr_error;
	if ((rc = wr_drain(t, timeout_ms)) != 0)
		return rc;
	while (len > 0) {
		memset(&ov, 0, sizeof(ov));
		ov.hEvent = t->event;
		ResetEvent(t->event);
		ok = WriteFile(t->pipe, p, (DWORD)len, NULL, &ov);
		if ((rc = finish(t, &ov, ok, &n, timeout_ms)) != 0)
			return rc;
		p += n;
		len -= n;
	}
	return 0;
}

/*
 * Never waits: while a submit's write is outstanding nothing more is taken (*done 0, the
 * bytes stay queued in the channel); else up to WR_CHUNK bytes are copied and written,
 * taken whether the write ends now or later (its end signals rd_event).
 */
#define WR_CHUNK	65536u

int
wfpb__transport_write_some(struct wfpb_transport *t, const uint8_t *p, size_t len, size_t *done, uint32_t timeout_ms)
{
	uint8_t	*b;
	int	busy, rc;

	(void)timeout_ms;
	*done = 0;
	if (t->wr_error != 0)
		return t->wr_error;
	if ((rc = wr_reap(t, &busy)) != 0 || busy || len == 0) {
		settle(t);
		return rc;
	}
	if (len > WR_CHUNK)
		len = WR_CHUNK;
	if (t->wr_buf == NULL) {
		if ((b = malloc(WR_CHUNK)) == NULL)
			return WFPB_E_NOMEM;
		t->wr_buf = b;
	}
	memcpy(t->wr_buf, p, len);
	t->wr_off = 0;
	t->wr_len = len;
	memset(&t->wr_ov, 0, sizeof(t->wr_ov));
	t->wr_ov.hEvent = t->rd_event;
	if (!WriteFile(t->pipe, t->wr_buf, (DWORD)len, NULL, &t->wr_ov) && GetLastError() != ERROR_IO_PENDING) {
		settle(t);
		return pipe_error(GetLastError());
	}
	t->wr_pending = 1;
	*done = len;
	/* Ended at once: taken now, so that the next submit may write again. */
	(void)wr_reap(t, &busy);
	settle(t);
	return 0;
}

/* Takes the outstanding read's result if it is done: 1 when it is (bytes or an error recorded), else 0. */
static int
rd_reap(struct wfpb_transport *t)
{
	DWORD n = 0;

	if (!t->rd_pending)
		return 1;
	if (!GetOverlappedResult(t->pipe, &t->rd_ov, &n, FALSE)) {
		if (GetLastError() == ERROR_IO_INCOMPLETE)
			return 0;
		t->rd_error = pipe_error(GetLastError());
	} else if (n == 0) {
		t->rd_error = WFPB_E_CLOSED;
	}
	t->rd_pending = 0;
	t->rd_off = 0;
	t->rd_have = n;
	return 1;
}

void
wfpb__transport_arm(struct wfpb_transport *t)
{
	if (t == NULL || t->rd_pending || t->rd_have > 0 || t->rd_error != 0)
		return;
	memset(&t->rd_ov, 0, sizeof(t->rd_ov));
	t->rd_ov.hEvent = t->rd_event;
	ResetEvent(t->rd_event);
	/* Done at once or pending, the event is set when there are bytes; a failure is kept for the next read. */
	if (!ReadFile(t->pipe, t->rd_buf, sizeof(t->rd_buf), NULL, &t->rd_ov) && GetLastError() != ERROR_IO_PENDING) {
		t->rd_error = pipe_error(GetLastError());
		SetEvent(t->rd_event);
		return;
	}
	t->rd_pending = 1;
	settle(t);	/* starting the read reset the event a submit's ended write may have set */
}

intptr_t
wfpb__transport_wait_handle(const struct wfpb_transport *t)
{
	return (intptr_t)t->rd_event;
}

int
wfpb__transport_read(struct wfpb_transport *t, uint8_t *p, size_t cap, size_t *got, uint32_t timeout_ms)
{
	DWORD	start = GetTickCount();
	size_t	n;
	int	rc;

	*got = 0;
	wfpb__transport_arm(t);
	/*
	 * Not done yet: wait for it; at the deadline it stays outstanding for the next call. The
	 * event is shared with a submit's write: one that ended is taken, and the wait goes on.
	 */
	while (!rd_reap(t)) {
		DWORD	spent = GetTickCount() - start;
		int	busy;

		if (spent >= timeout_ms || WaitForSingleObject(t->rd_event, timeout_ms - spent) != WAIT_OBJECT_0)
			return WFPB_E_TIMEOUT;
		if (!HasOverlappedIoCompleted(&t->rd_ov)) {
			if ((rc = wr_reap(t, &busy)) != 0)
				t->wr_error = rc;
			settle(t);
			if (busy && !HasOverlappedIoCompleted(&t->rd_ov))
				Sleep(1);	/* up for neither: not spun on */
		}
	}
	if (t->rd_have == 0)
		return t->rd_error ? t->rd_error : WFPB_E_IO;
	n = t->rd_have < cap ? t->rd_have : cap;
	memcpy(p, t->rd_buf + t->rd_off, n);
	t->rd_off += n;
	t->rd_have -= n;
	*got = n;
	/* Drained: the next read goes out now, so the event means "bytes" again. */
	wfpb__transport_arm(t);
	return 0;
}

int
wfpb__transport_write_sock(struct wfpb_transport *t, const uint8_t *p, size_t len, intptr_t sock,
    uint32_t timeout_ms)
{
	/* Client-owned sockets reach the broker by handle value, not through the pipe. */
	(void)t;
	(void)p;
	(void)len;
	(void)sock;
	(void)timeout_ms;
	return WFPB_E_UNSUPPORTED;
}

intptr_t
wfpb__transport_take_sock(struct wfpb_transport *t, int nonblocking)
{
	(void)t;
	(void)nonblocking;
	return -1;
}

void
wfpb__transport_drop_socks(struct wfpb_transport *t)
{
	(void)t;
}

static struct wfpb__notify *
notify_get(struct wfpb__notify **n)
{
	if (*n == NULL && (*n = calloc(1, sizeof(**n))) != NULL)
		(*n)->tx = (*n)->rx = INVALID_SOCKET;
	return *n;
}

int
wfpb__notify_port(struct wfpb__notify **n, intptr_t port, uintptr_t key)
{
	if (port == 0 || port == (intptr_t)INVALID_HANDLE_VALUE)
		return WFPB_E_INVAL;
	if (notify_get(n) == NULL)
		return WFPB_E_NOMEM;
	(*n)->port = (HANDLE)port;
	(*n)->key = (ULONG_PTR)key;
	return 0;
}

/* A connected loopback TCP pair: nothing but this process's own connect reaches rx. */
int
wfpb__notify_socket(struct wfpb__notify **n, intptr_t *rx)
{
	struct sockaddr_in	sin = { .sin_family = AF_INET };
	int			len = sizeof(sin);
	u_long			nb = 1;
	SOCKET			l;

	if (notify_get(n) == NULL)
		return WFPB_E_NOMEM;
	if ((*n)->rx != INVALID_SOCKET) {
		*rx = (intptr_t)(*n)->rx;
		return 0;
	}
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((l = WSASocketW(AF_INET, SOCK_STREAM, IPPROTO_TCP, NULL, 0, WSA_FLAG_NO_HANDLE_INHERIT)) == INVALID_SOCKET)
		return WFPB_E_OS;
	if (bind(l, (struct sockaddr *)&sin, sizeof(sin)) != 0 || listen(l, 1) != 0 ||
	    getsockname(l, (struct sockaddr *)&sin, &len) != 0 ||
	    ((*n)->tx = WSASocketW(AF_INET, SOCK_STREAM, IPPROTO_TCP, NULL, 0, WSA_FLAG_NO_HANDLE_INHERIT)) ==
	    INVALID_SOCKET || connect((*n)->tx, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
	    ((*n)->rx = accept(l, NULL, NULL)) == INVALID_SOCKET || ioctlsocket((*n)->rx, FIONBIO, &nb) != 0 ||
	    ioctlsocket((*n)->tx, FIONBIO, &nb) != 0) {	/* a full socket is readable already: the wait never blocks */
		closesocket(l);
		if ((*n)->tx != INVALID_SOCKET)
			closesocket((*n)->tx);
		if ((*n)->rx != INVALID_SOCKET)
			closesocket((*n)->rx);
		(*n)->tx = (*n)->rx = INVALID_SOCKET;
		return WFPB_E_OS;
	}
	closesocket(l);
	*rx = (intptr_t)(*n)->rx;
	return 0;
}

void
wfpb__notify_free(struct wfpb__notify *n)
{
	if (n == NULL)
		return;
	if (n->tx != INVALID_SOCKET)
		closesocket(n->tx);
	if (n->rx != INVALID_SOCKET)
		closesocket(n->rx);
	free(n);
}

/* The notice itself: what the wait's callback (a pool thread) and _rearm send. */
static void
notice(const struct wfpb__notify *n)
{
	if (n->port != NULL)
		(void)PostQueuedCompletionStatus(n->port, 0, n->key, NULL);
	if (n->tx != INVALID_SOCKET)
		(void)send(n->tx, "!", 1, 0);
}

static VOID CALLBACK
on_readable(PVOID arg, BOOLEAN timed_out)
{
	struct wfpb_transport *t = arg;

	(void)timed_out;
	InterlockedExchange(&t->fired, 1);
	notice(t->nt);
}

/* One notice when rd_event is next signalled (at once if it is now). */
static int
watch_once(struct wfpb_transport *t)
{
	t->fired = 0;
	if (!RegisterWaitForSingleObject(&t->wait, t->rd_event, on_readable, t, INFINITE,
	    WT_EXECUTEONLYONCE | WT_EXECUTEINWAITTHREAD)) {
		t->wait = NULL;
		return WFPB_E_OS;
	}
	return 0;
}

/* Waits for a callback under way to end (INVALID_HANDLE_VALUE): it reads t. */
static void
unwatch(struct wfpb_transport *t)
{
	if (t->wait != NULL)
		(void)UnregisterWaitEx(t->wait, INVALID_HANDLE_VALUE);
	t->wait = NULL;
}

int
wfpb__transport_watch(struct wfpb_transport *t, struct wfpb__notify *n)
{
	if (t == NULL || n == NULL)
		return WFPB_E_INVAL;
	unwatch(t);
	t->nt = n;
	wfpb__transport_arm(t);
	return watch_once(t);
}

void
wfpb__transport_rearm(struct wfpb_transport *t, int pending)
{
	char	buf[64];
	int	fired;

	if (t == NULL || t->nt == NULL)
		return;
	/* A wait that ran is ended first, its callback with it, so that its byte is drained below. */
	if ((fired = InterlockedCompareExchange(&t->fired, 0, 1) == 1))
		unwatch(t);
	if (t->nt->rx != INVALID_SOCKET)
		while (recv(t->nt->rx, buf, sizeof(buf), 0) > 0)
			;
	/* Collected but more is already here (queued answers, read bytes): say so now. */
	if (pending)
		notice(t->nt);
	if (fired)
		(void)watch_once(t);
}

void
wfpb__transport_close(struct wfpb_transport *t)
{
	DWORD n;

	if (t == NULL)
		return;
	unwatch(t);
	/* The outstanding read writes into t, and a write reads wr_buf: cancelled and waited for before t goes. */
	if (t->rd_pending) {
		CancelIoEx(t->pipe, &t->rd_ov);
		GetOverlappedResult(t->pipe, &t->rd_ov, &n, TRUE);
	}
	if (t->wr_pending) {
		CancelIoEx(t->pipe, &t->wr_ov);
		GetOverlappedResult(t->pipe, &t->wr_ov, &n, TRUE);
	}
	free(t->wr_buf);
	CloseHandle(t->pipe);
	CloseHandle(t->event);
	CloseHandle(t->rd_event);
	free(t);
}

uint64_t
wfpb__monotonic_us(void)
{
	LARGE_INTEGER f, c;

	QueryPerformanceFrequency(&f);
	QueryPerformanceCounter(&c);
	return (uint64_t)((c.QuadPart / f.QuadPart) * 1000000 + (c.QuadPart % f.QuadPart) * 1000000 / f.QuadPart);
}

void
wfpb__close_socket(intptr_t sock)
{
	closesocket((SOCKET)sock);
}

void
wfpb__sleep_ms(unsigned ms)
{
	Sleep(ms);
}

/* proto/wfp_control.c reads Windows' layout without Windows' headers: the two must agree. */
_Static_assert(WSA_CMSG_LEN(0) == 16, "WSACMSGHDR: data at 16");
_Static_assert(WSA_CMSG_SPACE(1) == 24, "WSACMSGHDR: 8-byte alignment");

static LPFN_WSARECVMSG
recvmsg_fn(SOCKET s)
{
	static LPFN_WSARECVMSG	fn;
	GUID			guid = WSAID_WSARECVMSG;
	LPFN_WSARECVMSG		got = NULL;
	DWORD			n = 0;

	if (fn == NULL && WSAIoctl(s, SIO_GET_EXTENSION_FUNCTION_POINTER, &guid, sizeof(guid), &got, sizeof(got), &n,
	    NULL, NULL) == 0)
		fn = got;
	return fn;
}

int
wfpb_udp_recv(wfpb_socket_t held, uint8_t *buf, size_t cap, uint8_t *ctl, size_t ctl_cap,
    struct wfpb_flow_first *out)
{
	struct wfpb_wfp_control	c;
	SOCKADDR_STORAGE	ss;
	LPFN_WSARECVMSG		fn;
	WSAMSG			msg;
	WSABUF			data;
	DWORD			got = 0;
	int			rc, e;

	if (out == NULL || out->size != sizeof(*out) || buf == NULL || cap > 0x7fffffffu || ctl_cap > 0x7fffffffu)
		return WFPB_E_INVAL;
	if ((fn = recvmsg_fn((SOCKET)held)) == NULL)
		return WFPB_E_OS;
	memset(&msg, 0, sizeof(msg));
	memset(&ss, 0, sizeof(ss));
	data.buf = (char *)buf;
	data.len = (ULONG)cap;
	msg.name = (struct sockaddr *)&ss;
	msg.namelen = sizeof(ss);
	msg.lpBuffers = &data;
	msg.dwBufferCount = 1;
	msg.Control.buf = (char *)ctl;
	msg.Control.len = ctl != NULL ? (ULONG)ctl_cap : 0;
	if (fn((SOCKET)held, &msg, &got, NULL, NULL) != 0) {
		e = WSAGetLastError();
		/* A datagram longer than buf is dropped (WSAEMSGSIZE): neither half of it reaches the broker. */
		return e == WSAEWOULDBLOCK ? WFPB_E_AGAIN : e == WSAEMSGSIZE ? WFPB_E_LIMIT : WFPB_E_OS;
	}
	if (msg.dwFlags & (MSG_TRUNC | MSG_CTRUNC))
		return WFPB_E_LIMIT;	/* records cut short are no records: never sent on */
	if ((rc = wfpb__wfp_control_parse(ctl, msg.Control.len, &c)) != 0)
		return rc;
	memset(&out->client, 0, sizeof(out->client));
	if (ss.ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)&ss;

		out->client.family = WFPB_AF_INET;
		memcpy(out->client.addr, &sin->sin_addr, 4);
		out->client.port = ntohs(sin->sin_port);
	} else if (ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&ss;

		out->client.family = WFPB_AF_INET6;
		memcpy(out->client.addr, &sin6->sin6_addr, 16);
		out->client.port = ntohs(sin6->sin6_port);
	} else {
		return WFPB_E_PROTOCOL;
	}
	out->payload = buf;
	out->payload_len = got;
	out->records = c.records;
	out->records_len = c.records_len;
	out->context = c.context;
	out->context_len = c.context_len;
	return 0;
}
