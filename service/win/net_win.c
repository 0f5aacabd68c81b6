/*
 * The socket contract (core/net.h) on Windows. Socket hand-over to pipe
 * clients (WSADuplicateSocketW into the client's PID) and readiness waits on
 * the completion port are not built yet, so every operation that would
 * create a socket for a client answers WSAEOPNOTSUPP, which the client sees
 * as EOPNOTSUPP with a sentence saying so. The WSA error translation below is
 * the one the finished implementation uses.
 */
#include <winsock2.h>
#include <windows.h>

#include "net.h"
#include "wfpbroker.pb-c.h"

static int
unsupported(int *os_err)
{
	*os_err = WSAEOPNOTSUPP;
	return WFPB_E_OS;
}

int
wfpb__net_listen(const struct wfpb_addr *local, int backlog, wfpb_sock *out, struct wfpb_addr *bound,
    int *os_err)
{
	(void)local;
	(void)backlog;
	(void)bound;
	*out = WFPB_SOCK_NONE;
	return unsupported(os_err);
}

int
wfpb__net_accept(wfpb_sock listener, wfpb_sock *out, int *os_err)
{
	(void)listener;
	*out = WFPB_SOCK_NONE;
	return unsupported(os_err);
}

int
wfpb__net_socket(int family, wfpb_sock *out, int *os_err)
{
	(void)family;
	*out = WFPB_SOCK_NONE;
	return unsupported(os_err);
}

int
wfpb__net_bind(wfpb_sock s, const struct wfpb_addr *local, int *os_err)
{
	(void)s;
	(void)local;
	return unsupported(os_err);
}

int
wfpb__net_connect(wfpb_sock s, const struct wfpb_addr *remote, int *os_err)
{
	(void)s;
	(void)remote;
	return unsupported(os_err);
}

int
wfpb__net_connect_result(wfpb_sock s, int *os_err)
{
	(void)s;
	return unsupported(os_err);
}

int
wfpb__net_addrs(wfpb_sock s, struct wfpb_addr *peer, struct wfpb_addr *local, int *os_err)
{
	(void)s;
	(void)peer;
	(void)local;
	return unsupported(os_err);
}

void
wfpb__net_close(wfpb_sock s)
{
	if (s != WFPB_SOCK_NONE)
		closesocket((SOCKET)s);
}

int
wfpb__net_status(int e)
{
	switch (e) {
	case WSAEACCES: return WFPBROKER__V1__STATUS_CODE__EACCES;
	case WSAEINVAL: return WFPBROKER__V1__STATUS_CODE__EINVAL;
	case WSAEOPNOTSUPP: return WFPBROKER__V1__STATUS_CODE__EOPNOTSUPP;
	case WSAEFAULT: return WFPBROKER__V1__STATUS_CODE__EFAULT;
	case WSAENOBUFS: case WSAEMFILE: return WFPBROKER__V1__STATUS_CODE__ENOBUFS;
	case WSAEADDRINUSE: return WFPBROKER__V1__STATUS_CODE__EADDRINUSE;
	case WSAEADDRNOTAVAIL: return WFPBROKER__V1__STATUS_CODE__EADDRNOTAVAIL;
	case WSAECONNREFUSED: return WFPBROKER__V1__STATUS_CODE__ECONNREFUSED;
	case WSAENETUNREACH: case WSAEHOSTUNREACH: return WFPBROKER__V1__STATUS_CODE__ENETUNREACH;
	case WSAETIMEDOUT: return WFPBROKER__V1__STATUS_CODE__ETIMEDOUT;
	case WSAECONNRESET: case WSAENOTCONN: return WFPBROKER__V1__STATUS_CODE__ECONNRESET;
	case WSAEAFNOSUPPORT: return WFPBROKER__V1__STATUS_CODE__EAFNOSUPPORT;
	}
	return WFPBROKER__V1__STATUS_CODE__INTERNAL;
}

const char *
wfpb__net_strerror(int e)
{
	if (e == WSAEOPNOTSUPP)
		return "socket hand-over to pipe clients is not built for Windows yet";
	return "Winsock error";
}
