/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The socket contract (core/net.h) on Windows: non-blocking, non-inheritable
 * Winsock sockets, exclusive address use on listeners, WSA errors translated
 * here and nowhere else. Sockets reach pipe clients through
 * WSADuplicateSocketW into the client's PID (taken from the pipe).
 */
#include <winsock2.h>
#include <ws2tcpip.h>
#include <windows.h>
#include <winternl.h>

#include <limits.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "net.h"
#include "net_win.h"

#define WFPB_SOCKLEN int
#include "sockaddr_conv.h"
#include "status.h"

static int
wsa_fail(int *os_err)
{
	*os_err = WSAGetLastError();
	return WFPB_E_OS;
}

static int
any_socket(int family, int type, int proto, wfpb_sock *out, int *os_err)
{
	SOCKET	s;
	u_long	nb = 1;

	*out = WFPB_SOCK_NONE;
	s = WSASocketW(family == WFPB_AF_INET6 ? AF_INET6 : AF_INET, type, proto, NULL, 0,
	    WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
	if (s == INVALID_SOCKET)
		return wsa_fail(os_err);
	if (ioctlsocket(s, FIONBIO, &nb) != 0) {
		*os_err = WSAGetLastError();
		closesocket(s);
		return WFPB_E_OS;
	}
	/* Windows' default already, made explicit: an IPv4-mapped remote must not pass as IPv6. */
	if (family == WFPB_AF_INET6) {
		DWORD one = 1;

		if (setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, (const char *)&one, sizeof(one)) != 0) {
			*os_err = WSAGetLastError();
			closesocket(s);
			return WFPB_E_OS;
		}
	}
	*out = (wfpb_sock)s;
	return 0;
}

int
wfpb__net_socket(int family, wfpb_sock *out, int *os_err)
{
	return any_socket(family, SOCK_STREAM, IPPROTO_TCP, out, os_err);
}

int
wfpb__net_udp_socket(int family, wfpb_sock *out, int *os_err)
{
	return any_socket(family, SOCK_DGRAM, IPPROTO_UDP, out, os_err);
}

int
wfpb__net_send(wfpb_sock s, const uint8_t *p, size_t len, int *os_err)
{
	if (len > INT_MAX || send((SOCKET)s, (const char *)p, (int)len, 0) == SOCKET_ERROR)
		return wsa_fail(os_err);
	return 0;
}

int
wfpb__net_recvfrom(wfpb_sock s, uint8_t *p, size_t cap, size_t *len, struct wfpb_addr *from, int *os_err)
{
	struct sockaddr_storage	ss;
	int			slen = sizeof(ss), n;

	n = recvfrom((SOCKET)s, (char *)p, cap > INT_MAX ? INT_MAX : (int)cap, 0, (struct sockaddr *)&ss, &slen);
	if (n == SOCKET_ERROR && WSAGetLastError() == WSAEWOULDBLOCK)
		return WFPB_E_AGAIN;
	/* Windows says a datagram was longer than the buffer: it is dropped, its length unknown. */
	if (n == SOCKET_ERROR && WSAGetLastError() == WSAEMSGSIZE) {
		*len = cap + 1;
		from_sockaddr(&ss, from);
		return 0;
	}
	if (n == SOCKET_ERROR)
		return wsa_fail(os_err);
	*len = (size_t)n;
	from_sockaddr(&ss, from);
	return 0;
}

int
wfpb__net_reuseaddr(wfpb_sock s, int *os_err)
{
	DWORD one = 1;

	return setsockopt((SOCKET)s, SOL_SOCKET, SO_REUSEADDR, (const char *)&one, sizeof(one)) == 0 ? 0 :
	    wsa_fail(os_err);
}

int
wfpb__net_exclusive(wfpb_sock s, int *os_err)
{
	DWORD one = 1;

	return setsockopt((SOCKET)s, SOL_SOCKET, SO_EXCLUSIVEADDRUSE, (const char *)&one, sizeof(one)) == 0 ? 0 :
	    wsa_fail(os_err);
}

int
wfpb__net_bind(wfpb_sock s, const struct wfpb_addr *local, int *os_err)
{
	struct sockaddr_storage	ss;
	int			len = to_sockaddr(local, &ss);

	return bind((SOCKET)s, (struct sockaddr *)&ss, len) == 0 ? 0 : wsa_fail(os_err);
}

int
wfpb__net_listen(const struct wfpb_addr *local, int backlog, wfpb_sock *out, struct wfpb_addr *bound,
    int *os_err)
{
	struct sockaddr_storage	ss;
	int			len = sizeof(ss), one = 1, rc;
	wfpb_sock		s;

	if ((rc = wfpb__net_socket(local->family, &s, os_err)) != 0)
		return rc;
	/* No other process may bind the same port and steal connections meant for a broker listener. */
	(void)setsockopt((SOCKET)s, SOL_SOCKET, SO_EXCLUSIVEADDRUSE, (const char *)&one, sizeof(one));
	if ((rc = wfpb__net_bind(s, local, os_err)) != 0 || listen((SOCKET)s, backlog) != 0 ||
	    getsockname((SOCKET)s, (struct sockaddr *)&ss, &len) != 0) {
		if (rc == 0)
			*os_err = WSAGetLastError();
		closesocket((SOCKET)s);
		return WFPB_E_OS;
	}
	from_sockaddr(&ss, bound);
	*out = s;
	return 0;
}

int
wfpb__net_accept(wfpb_sock listener, wfpb_sock *out, int *os_err)
{
	SOCKET	s;
	u_long	nb = 1;
	int	e;

	*out = WFPB_SOCK_NONE;
	s = accept((SOCKET)listener, NULL, NULL);
	if (s == INVALID_SOCKET) {
		e = WSAGetLastError();
		if (e == WSAEWOULDBLOCK || e == WSAECONNRESET)
			return WFPB_E_AGAIN;
		*os_err = e;
		return WFPB_E_OS;
	}
	/* An accepted socket inherits the listener's WSAEventSelect association: drop it. */
	WSAEventSelect(s, NULL, 0);
	(void)ioctlsocket(s, FIONBIO, &nb);
	*out = (wfpb_sock)s;
	return 0;
}

int
wfpb__net_connect(wfpb_sock s, const struct wfpb_addr *remote, int *os_err)
{
	struct sockaddr_storage	ss;
	int			len = to_sockaddr(remote, &ss), e;

	if (connect((SOCKET)s, (struct sockaddr *)&ss, len) == 0)
		return 0;
	e = WSAGetLastError();
	if (e == WSAEWOULDBLOCK || e == WSAEINPROGRESS)
		return WFPB_E_AGAIN;
	*os_err = e;
	return WFPB_E_OS;
}

static int WSAAPI
real_wsapoll(void *fds, unsigned long n, int timeout)
{
	return WSAPoll((WSAPOLLFD *)fds, n, timeout);
}

static wfpb_wsapoll_fn wsapoll = real_wsapoll;

wfpb_wsapoll_fn
wfpb__net_set_wsapoll(wfpb_wsapoll_fn fn)
{
	wfpb_wsapoll_fn old = wsapoll;

	wsapoll = fn != NULL ? fn : real_wsapoll;
	return old;
}

/*
 * The connect's end is read from FD_CONNECT, which every Windows reports with the
 * connect's error (WSAEnumNetworkEvents, for a socket the pipe server watches
 * with WSAEventSelect), and only then from WSAPoll, which on Windows 10 before
 * 2004 and Server 2019 never reports a failed connect (WSAPoll's page). Reading
 * the record clears it: the caller asks once the answer is given.
 */
int
wfpb__net_connect_done(wfpb_sock s, int *os_err)
{
	WSANETWORKEVENTS	ne;
	WSAPOLLFD		pfd = { .fd = (SOCKET)s, .events = POLLWRNORM };
	int			err = 0, len = sizeof(err);

	memset(&ne, 0, sizeof(ne));
	if (WSAEnumNetworkEvents((SOCKET)s, NULL, &ne) == 0 && (ne.lNetworkEvents & FD_CONNECT)) {
		err = ne.iErrorCode[FD_CONNECT_BIT];
	} else {
		if (wsapoll(&pfd, 1, 0) <= 0)
			return 0;
		if (getsockopt((SOCKET)s, SOL_SOCKET, SO_ERROR, (char *)&err, &len) != 0)
			err = WSAGetLastError();
	}
	WSAEventSelect((SOCKET)s, NULL, 0);	/* the wait for it is over */
	if (err != 0) {
		*os_err = err;
		return -1;
	}
	return 1;
}

int
wfpb__net_addrs(wfpb_sock s, struct wfpb_addr *peer, struct wfpb_addr *local, int *os_err)
{
	struct sockaddr_storage	ss;
	int			len;

	if (peer != NULL) {
		len = sizeof(ss);
		if (getpeername((SOCKET)s, (struct sockaddr *)&ss, &len) != 0)
			return wsa_fail(os_err);
		from_sockaddr(&ss, peer);
	}
	if (local != NULL) {
		len = sizeof(ss);
		if (getsockname((SOCKET)s, (struct sockaddr *)&ss, &len) != 0)
			return wsa_fail(os_err);
		from_sockaddr(&ss, local);
	}
	return 0;
}

static volatile LONG64 handovers;

uint64_t
wfpb__net_handovers(void)
{
	return (uint64_t)InterlockedCompareExchange64(&handovers, 0, 0);
}

size_t
wfpb__net_handover_len(void)
{
	return sizeof(WSAPROTOCOL_INFOW);
}

int
wfpb__net_handover(wfpb_sock s, uint32_t pid, intptr_t process, uint8_t *out, size_t cap, size_t *len,
    int *os_err)
{
	WSAPROTOCOL_INFOW info;

	if (cap < sizeof(info))
		return WFPB_E_INVAL;
	/* WSADuplicateSocketW names the target by PID; only a held handle to it makes that PID certain. */
	if (process == 0) {
		*os_err = ERROR_INVALID_HANDLE;
		closesocket((SOCKET)s);
		return WFPB_E_OS;
	}
	if (WSADuplicateSocketW((SOCKET)s, pid, &info) != 0)
		return wsa_fail(os_err);
	InterlockedIncrement64(&handovers);
	memcpy(out, &info, sizeof(info));
	*len = sizeof(info);
	/* The target process holds its own reference now; ours can go. */
	closesocket((SOCKET)s);
	return 0;
}

/*
 * Whatever the client named must be a stream socket Winsock accepts in this
 * process; anything else goes back unused. (Wine's Winsock refuses every
 * duplicated socket handle with WSAENOTSOCK.)
 */
static int
real_pull_probe(intptr_t h, int *os_err)
{
	int type = 0, len = sizeof(type);

	if (getsockopt((SOCKET)(uintptr_t)h, SOL_SOCKET, SO_TYPE, (char *)&type, &len) != 0 || type != SOCK_STREAM) {
		*os_err = type != 0 ? WSAESOCKTNOSUPPORT : WSAGetLastError();
		return 0;
	}
	return 1;
}

static wfpb_pull_probe_fn pull_probe = real_pull_probe;

wfpb_pull_probe_fn
wfpb__net_set_pull_probe(wfpb_pull_probe_fn probe)
{
	wfpb_pull_probe_fn old = pull_probe;

	pull_probe = probe != NULL ? probe : real_pull_probe;
	return old;
}

/*
 * The probe runs on a thread of its own and is waited for PULL_WAIT_MS: a
 * handle that does not answer by then is given up (the thread keeps it and
 * closes it when, if ever, its query returns). At most PULLS_STUCK_MAX such
 * threads may be waiting at once; past that pulls are refused up front.
 */
#define PULL_WAIT_MS	500u
#define PULLS_STUCK_MAX	8

enum { JOB_RUNNING, JOB_DONE, JOB_ABANDONED };

struct pull_job {
	HANDLE		h;		/* the pulled handle; whoever ends the job last closes it if still set */
	HANDLE		done;
	int		ok, err;
	volatile LONG	state;
	volatile LONG	refs;
};

static volatile LONG	pulls_stuck;

static void
job_release(struct pull_job *j)
{
	if (InterlockedDecrement(&j->refs) != 0)
		return;
	if (j->h != NULL)
		CloseHandle(j->h);
	CloseHandle(j->done);
	free(j);
}

static DWORD WINAPI
probe_main(LPVOID arg)
{
	struct pull_job *j = arg;

	j->ok = pull_probe((intptr_t)j->h, &j->err);
	if (InterlockedCompareExchange(&j->state, JOB_DONE, JOB_RUNNING) == JOB_ABANDONED)
		InterlockedDecrement(&pulls_stuck);	/* it answered at last; nobody wants it now */
	SetEvent(j->done);
	job_release(j);
	return 0;
}

/* Takes ownership of h: on success it becomes *out, else it is closed (now, or by the job later). */
static int
probe_in_time(HANDLE h, wfpb_sock *out, int *os_err)
{
	struct pull_job	*j;
	HANDLE		t;

	if (InterlockedCompareExchange(&pulls_stuck, 0, 0) >= PULLS_STUCK_MAX) {
		CloseHandle(h);
		return WFPB_E_LIMIT;
	}
	if ((j = calloc(1, sizeof(*j))) == NULL || (j->done = CreateEventW(NULL, TRUE, FALSE, NULL)) == NULL) {
		free(j);
		CloseHandle(h);
		*os_err = ERROR_NOT_ENOUGH_MEMORY;
		return WFPB_E_OS;
	}
	j->h = h;
	j->refs = 2;
	if ((t = CreateThread(NULL, 64 * 1024, probe_main, j, STACK_SIZE_PARAM_IS_A_RESERVATION, NULL)) == NULL) {
		*os_err = (int)GetLastError();
		j->refs = 1;
		job_release(j);
		return WFPB_E_OS;
	}
	CloseHandle(t);
	if (WaitForSingleObject(j->done, PULL_WAIT_MS) != WAIT_OBJECT_0 &&
	    InterlockedCompareExchange(&j->state, JOB_ABANDONED, JOB_RUNNING) == JOB_RUNNING) {
		InterlockedIncrement(&pulls_stuck);
		job_release(j);
		return WFPB_E_TIMEOUT;
	}
	WaitForSingleObject(j->done, INFINITE);	/* it finished as the wait ended: take its answer */
	*os_err = j->err;
	if (!j->ok) {
		job_release(j);
		return WFPB_E_INVAL;
	}
	*out = (wfpb_sock)(uintptr_t)j->h;
	j->h = NULL;
	job_release(j);
	return 0;
}

/*
 * The object's type name from its header (NtQueryObject ObjectTypeInformation),
 * which does not wait on the object: "File" for sockets, files and pipes.
 */
static int
is_file_object(HANDLE h)
{
	union {
		PUBLIC_OBJECT_TYPE_INFORMATION	info;
		uint8_t				b[512];
	} u;
	ULONG len = 0;

	if (NtQueryObject(h, ObjectTypeInformation, &u, sizeof(u), &len) != 0)
		return 0;
	return u.info.TypeName.Length == 8 && memcmp(u.info.TypeName.Buffer, L"File", 8) == 0;
}

intptr_t
wfpb__net_pin_process(uint32_t pid, int *os_err)
{
	/* Microsoft: PROCESS_DUP_HANDLE amounts to full access to the process; a pin needs none of it. */
	HANDLE proc = OpenProcess(SYNCHRONIZE | PROCESS_QUERY_LIMITED_INFORMATION, FALSE, pid);

	if (proc == NULL)
		*os_err = (int)GetLastError();
	return (intptr_t)proc;
}

int
wfpb__net_pull(intptr_t process, uint64_t handle, wfpb_sock *out, int *os_err)
{
	HANDLE	proc = (HANDLE)process, dup = NULL, puller;
	BOOL	ok;

	*out = WFPB_SOCK_NONE;
	*os_err = 0;
	/* The client process pinned when the pipe's client was identified, never a PID opened again now. */
	if (proc == NULL) {
		*os_err = ERROR_INVALID_HANDLE;
		return WFPB_E_OS;
	}
	/*
	 * The right to take its handles, for this pull only. The pin keeps the PID
	 * from naming another process meanwhile, so opening by PID is safe here.
	 */
	if ((puller = OpenProcess(PROCESS_DUP_HANDLE, FALSE, GetProcessId(proc))) == NULL) {
		*os_err = (int)GetLastError();
		return WFPB_E_OS;
	}
	ok = DuplicateHandle(puller, (HANDLE)(uintptr_t)handle, GetCurrentProcess(), &dup, 0, FALSE,
	    DUPLICATE_SAME_ACCESS);
	*os_err = ok ? 0 : (int)GetLastError();
	CloseHandle(puller);
	if (!ok)
		return WFPB_E_OS;
	/* Only a file object can be a socket: anything else (an event, a process, a mutex) goes back unused. */
	if (!is_file_object(dup)) {
		*os_err = WSAENOTSOCK;
		CloseHandle(dup);
		return WFPB_E_INVAL;
	}
	return probe_in_time(dup, out, os_err);
}

int
wfpb__net_is_listening(wfpb_sock s)
{
	BOOL	on = FALSE;
	int	len = sizeof(on);

	return getsockopt((SOCKET)s, SOL_SOCKET, SO_ACCEPTCONN, (char *)&on, &len) == 0 && on;
}

int
wfpb__net_dup(wfpb_sock s, wfpb_sock *out, int *os_err)
{
	WSAPROTOCOL_INFOW	info;
	SOCKET			d;
	u_long			nb = 1;

	if (WSADuplicateSocketW((SOCKET)s, GetCurrentProcessId(), &info) != 0)
		return wsa_fail(os_err);
	d = WSASocketW(FROM_PROTOCOL_INFO, FROM_PROTOCOL_INFO, FROM_PROTOCOL_INFO, &info, 0,
	    WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
	if (d == INVALID_SOCKET)
		return wsa_fail(os_err);
	(void)ioctlsocket(d, FIONBIO, &nb);
	*out = (wfpb_sock)d;
	return 0;
}

void
wfpb__net_close(wfpb_sock s)
{
	if (s != WFPB_SOCK_NONE)
		closesocket((SOCKET)s);
}

/*
 * A socket that lingers for a time: closed on a pool thread, where closesocket may
 * wait. A non-blocking socket's close then fails with WSAEWOULDBLOCK and leaves the
 * socket open (closesocket's page), so it is tried again until the linger time is
 * up, after which the socket would have been reset anyway.
 */
static VOID CALLBACK
close_lingering(PTP_CALLBACK_INSTANCE inst, PVOID arg)
{
	static const struct linger	off = { 0, 0 };
	SOCKET				s = (SOCKET)(uintptr_t)arg;
	struct linger			lg = { 0, 0 };
	int				len = sizeof(lg);
	ULONGLONG			until;

	CallbackMayRunLong(inst);
	(void)getsockopt(s, SOL_SOCKET, SO_LINGER, (char *)&lg, &len);
	until = GetTickCount64() + (ULONGLONG)lg.l_linger * 1000u;
	while (closesocket(s) != 0) {
		if (WSAGetLastError() != WSAEWOULDBLOCK)
			return;
		if (GetTickCount64() >= until) {
			(void)setsockopt(s, SOL_SOCKET, SO_LINGER, (const char *)&off, sizeof(off));
			closesocket(s);
			return;
		}
		Sleep(100);
	}
}

void
wfpb__net_discard(wfpb_sock s)
{
	static const struct linger	off = { 0, 0 };
	struct linger			lg;
	int				len = sizeof(lg);

	if (s == WFPB_SOCK_NONE)
		return;
	/*
	 * Linger off, or {1, 0} (an abortive close), closes at once. The option is
	 * read, never set while the client may still share the socket: options
	 * belong to the socket, not to the broker's handle.
	 */
	if (getsockopt((SOCKET)s, SOL_SOCKET, SO_LINGER, (char *)&lg, &len) != 0 || lg.l_onoff == 0 ||
	    lg.l_linger == 0) {
		closesocket((SOCKET)s);
		return;
	}
	if (TrySubmitThreadpoolCallback(close_lingering, (PVOID)(uintptr_t)s, NULL))
		return;
	/* No pool thread: closing here must not wait, so this once the linger goes. */
	(void)setsockopt((SOCKET)s, SOL_SOCKET, SO_LINGER, (const char *)&off, sizeof(off));
	closesocket((SOCKET)s);
}

int
wfpb__net_is_tcp(wfpb_sock s, int *family)
{
	WSAPROTOCOL_INFOW	pi;
	int			len = sizeof(pi);

	*family = 0;
	if (getsockopt((SOCKET)s, SOL_SOCKET, SO_PROTOCOL_INFOW, (char *)&pi, &len) != 0 ||
	    pi.iSocketType != SOCK_STREAM || pi.iProtocol != IPPROTO_TCP)
		return 0;
	if (pi.iAddressFamily == AF_INET)
		*family = WFPB_AF_INET;
	else if (pi.iAddressFamily == AF_INET6)
		*family = WFPB_AF_INET6;
	return *family != 0;
}

int
wfpb__net_is_bound(wfpb_sock s)
{
	struct sockaddr_storage	ss;
	int			len = sizeof(ss);

	/* An unbound socket has no name (WSAEINVAL); a bound or connected one has. */
	return getsockname((SOCKET)s, (struct sockaddr *)&ss, &len) == 0;
}

int
wfpb__net_status(int e)
{
	switch (e) {
	case WSAEACCES: return WFPB_ST_EACCES;
	case WSAEINVAL: return WFPB_ST_EINVAL;
	case WSAEOPNOTSUPP: case WSAENOPROTOOPT: return WFPB_ST_EOPNOTSUPP;
	case WSAEFAULT: return WFPB_ST_EFAULT;
	case WSAENOBUFS: case WSAEMFILE: return WFPB_ST_ENOBUFS;
	case WSAEADDRINUSE: return WFPB_ST_EADDRINUSE;
	case WSAEADDRNOTAVAIL: return WFPB_ST_EADDRNOTAVAIL;
	case WSAECONNREFUSED: return WFPB_ST_ECONNREFUSED;
	case WSAENETUNREACH: case WSAEHOSTUNREACH: return WFPB_ST_ENETUNREACH;
	case WSAETIMEDOUT: return WFPB_ST_ETIMEDOUT;
	case WSAECONNRESET: case WSAENOTCONN: return WFPB_ST_ECONNRESET;
	case WSAEAFNOSUPPORT: return WFPB_ST_EAFNOSUPPORT;
	}
	return WFPB_ST_INTERNAL;
}

const char *
wfpb__net_strerror(int e)
{
	static __thread char	buf[256];	/* per worker thread */
	wchar_t		w[256];

	if (FormatMessageW(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS, NULL, (DWORD)e, 0, w, 256,
	    NULL) == 0 || WideCharToMultiByte(CP_UTF8, 0, w, -1, buf, sizeof(buf), NULL, NULL) == 0) {
		snprintf(buf, sizeof(buf), "Winsock error %d", e);	/* no text for it here (Wine has few) */
		return buf;
	}
	buf[strcspn(buf, "\r\n")] = '\0';
	return buf;
}
