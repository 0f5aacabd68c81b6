/* SPDX-License-Identifier: Apache-2.0 */
/* The wfp backend's Windows-only surface (backend/wfp.c), for the service and its tests. */
#ifndef WFPB_WFP_H
#define WFPB_WFP_H

#include <winsock2.h>

#include "backend.h"

/* mingw-w64 lacks the codes of the three redirect ioctls (mstcpip.h on Windows SDKs). */
#ifndef SIO_QUERY_WFP_CONNECTION_REDIRECT_RECORDS
#define SIO_QUERY_WFP_CONNECTION_REDIRECT_RECORDS	_WSAIOW(IOC_VENDOR, 220)
#endif
#ifndef SIO_QUERY_WFP_CONNECTION_REDIRECT_CONTEXT
#define SIO_QUERY_WFP_CONNECTION_REDIRECT_CONTEXT	_WSAIOW(IOC_VENDOR, 221)
#endif
#ifndef SIO_SET_WFP_CONNECTION_REDIRECT_RECORDS
#define SIO_SET_WFP_CONNECTION_REDIRECT_RECORDS		_WSAIOW(IOC_VENDOR, 222)
#endif

extern const struct wfpb_backend_ops wfpb_backend_wfp;

/* The ioctl entry point, replaceable by tests with a named fake (NULL restores WSAIoctl). */
typedef int (WSAAPI *wfpb_wsaioctl_fn)(SOCKET, DWORD, LPVOID, DWORD, LPVOID, DWORD, LPDWORD, LPWSAOVERLAPPED,
    LPWSAOVERLAPPED_COMPLETION_ROUTINE);
void wfpb__wfp_set_ioctl(wfpb_wsaioctl_fn fn);

/* getsockopt as the backend calls it for SO_ORIGINAL_DST, replaceable by tests (NULL restores it). */
typedef int (WSAAPI *wfpb_getsockopt_fn)(SOCKET, int, int, char *, int *);
void wfpb__wfp_set_getsockopt(wfpb_getsockopt_fn fn);

/* The UDP redirect options and control-data types (ws2ipdef.h; mingw-w64 lacks them), at IPPROTO_IP and IPPROTO_IPV6 alike. */
#define WFPB_IP_WFP_REDIRECT_RECORDS	60
#define WFPB_IP_WFP_REDIRECT_CONTEXT	70

/* setsockopt as the backend calls it for a UDP listener's options, replaceable by tests (NULL restores it). */
typedef int (WSAAPI *wfpb_setsockopt_fn)(SOCKET, int, int, const char *, int);
void wfpb__wfp_set_setsockopt(wfpb_setsockopt_fn fn);

/* WSASendMsg as the backend calls it for a flow's first datagram, replaceable by tests (NULL restores it). */
typedef int (WSAAPI *wfpb_wsasendmsg_fn)(SOCKET, LPWSAMSG, DWORD, LPDWORD, LPWSAOVERLAPPED,
    LPWSAOVERLAPPED_COMPLETION_ROUTINE);
void wfpb__wfp_set_sendmsg(wfpb_wsasendmsg_fn fn);

#endif
