/* The wfp backend's Windows-only surface (backend/wfp.c), for the service and its tests. */
#ifndef WFPB_WFP_H
#define WFPB_WFP_H

#include <winsock2.h>

#include "backend.h"

extern const struct wfpb_backend_ops wfpb_backend_wfp;

/* The ioctl entry point, replaceable by tests with a named fake (NULL restores WSAIoctl). */
typedef int (WSAAPI *wfpb_wsaioctl_fn)(SOCKET, DWORD, LPVOID, DWORD, LPVOID, DWORD, LPDWORD, LPWSAOVERLAPPED,
    LPWSAOVERLAPPED_COMPLETION_ROUTINE);
void wfpb__wfp_set_ioctl(wfpb_wsaioctl_fn fn);

#endif
