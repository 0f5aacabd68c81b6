/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The sockets the broker owns, behind one internal contract that
 * service/posix/net_posix.c and service/win/net_win.c implement (the build
 * picks one). Core decides what to do; these functions only do it, and
 * translate OS errors in exactly one place (wfpb__net_status). Every socket
 * is non-blocking and close-on-exec/non-inheritable.
 */
#ifndef WFPB_NET_H
#define WFPB_NET_H

#include <stdint.h>

#include "addr.h"
#include "wfpb_error.h"

typedef intptr_t wfpb_sock;
#define WFPB_SOCK_NONE	((wfpb_sock)-1)

/*
 * Each returns 0, WFPB_E_AGAIN (accept: nobody waiting; connect: in
 * progress — wait for readability / writability), or WFPB_E_OS with the OS
 * error code in *os_err.
 */
int WFPB_MUST_CHECK wfpb__net_listen(const struct wfpb_addr *local, int backlog, wfpb_sock *out, struct wfpb_addr *bound,
    int *os_err);
int WFPB_MUST_CHECK wfpb__net_accept(wfpb_sock listener, wfpb_sock *out, int *os_err);
int WFPB_MUST_CHECK wfpb__net_socket(int family, wfpb_sock *out, int *os_err);
/*
 * UDP: a datagram socket of family (as wfpb__net_socket); one datagram sent on a connected
 * socket; one received, its whole length in *len even when longer than cap (the rest is
 * dropped), its sender in *from (WFPB_E_AGAIN: none waiting); SO_REUSEADDR set, so that a
 * flow's reply socket may share its address with the listener's (the connected one gets the
 * flow's datagrams).
 */
int WFPB_MUST_CHECK wfpb__net_udp_socket(int family, wfpb_sock *out, int *os_err);
int WFPB_MUST_CHECK wfpb__net_send(wfpb_sock s, const uint8_t *p, size_t len, int *os_err);
int WFPB_MUST_CHECK wfpb__net_recvfrom(wfpb_sock s, uint8_t *p, size_t cap, size_t *len, struct wfpb_addr *from,
    int *os_err);
int WFPB_MUST_CHECK wfpb__net_reuseaddr(wfpb_sock s, int *os_err);
/*
 * No other socket may share the address s binds: SO_EXCLUSIVEADDRUSE on Windows, where any
 * user's SO_REUSEADDR socket may otherwise share a SO_REUSEADDR one (Microsoft's "Sharing
 * Transport Addresses"); on POSIX a socket without SO_REUSEADDR is already that (0).
 */
int WFPB_MUST_CHECK wfpb__net_exclusive(wfpb_sock s, int *os_err);
int WFPB_MUST_CHECK wfpb__net_bind(wfpb_sock s, const struct wfpb_addr *local, int *os_err);
int WFPB_MUST_CHECK wfpb__net_connect(wfpb_sock s, const struct wfpb_addr *remote, int *os_err);
/*
 * Whether a connect wfpb__net_connect started has finished, never waiting: 0 not
 * yet, 1 connected, -1 failed with the connect's error in *os_err. Once it has
 * said 1 or -1 the caller asks no more (on Windows the answer is taken from the
 * socket's network-event record, which answers once).
 */
int WFPB_MUST_CHECK wfpb__net_connect_done(wfpb_sock s, int *os_err);
/* Peer and local address of a connected socket (either may be NULL). */
int WFPB_MUST_CHECK wfpb__net_addrs(wfpb_sock s, struct wfpb_addr *peer, struct wfpb_addr *local, int *os_err);
void wfpb__net_close(wfpb_sock s);

/* 1 when s is a socket that listens (SO_ACCEPTCONN), else 0. */
int wfpb__net_is_listening(wfpb_sock s);

/*
 * Another descriptor (handle) of the same socket, non-blocking and not
 * inherited, for another watcher of it: 0 or WFPB_E_OS with *os_err.
 */
int WFPB_MUST_CHECK wfpb__net_dup(wfpb_sock s, wfpb_sock *out, int *os_err);

/*
 * Closes a descriptor or handle a client gave the broker, without ever
 * blocking the calling thread: a client's socket may linger on close
 * (SO_LINGER with unsent data) and a client's file may sit on a FUSE mount
 * that never answers. Those that may wait (a socket set to linger for a
 * time, a file) are closed on another thread; a socket's options are never
 * changed, since the client shares them. WFPB_SOCK_NONE is a no-op.
 */
void wfpb__net_discard(wfpb_sock s);

/*
 * 1 when s is a TCP socket of AF_INET or AF_INET6 (the only kind an op
 * takes from a client), with its family in *family (WFPB_AF_*); 0 for
 * anything else (a file, a pipe, a Unix or UDP socket).
 */
int WFPB_MUST_CHECK wfpb__net_is_tcp(wfpb_sock s, int *family);

/* 1 when s is bound or connected already (records must go on before either), else 0. */
int WFPB_MUST_CHECK wfpb__net_is_bound(wfpb_sock s);

#define WFPB_HANDOVER_MAX	1024u	/* WSAPROTOCOL_INFOW is 628 bytes */

/*
 * The bytes a socket takes in the frame that hands it over: Windows, the size of
 * WSAPROTOCOL_INFOW (filled only when the frame is written); POSIX, 0 (the
 * descriptor travels beside the frame with SCM_RIGHTS).
 */
size_t wfpb__net_handover_len(void);

/*
 * Prepares s for the client process pid. Windows: WSADuplicateSocketW into
 * pid, the WSAPROTOCOL_INFOW bytes in out, and s is closed (ownership
 * taken) — returns 0 or WFPB_E_OS. process is the handle that pins pid
 * (struct wfpb_identity): without one (0) nothing is duplicated, since the
 * PID might name another process by now. POSIX: WFPB_E_UNSUPPORTED, s untouched:
 * the descriptor itself travels with SCM_RIGHTS.
 */
int WFPB_MUST_CHECK wfpb__net_handover(wfpb_sock s, uint32_t pid, intptr_t process, uint8_t *out, size_t cap, size_t *len,
    int *os_err);

/*
 * Secondary mode on Windows: takes a socket the client process owns (process:
 * the handle that pins it, struct wfpb_identity),
 * named by its handle value there, with DuplicateHandle (Winsock's own
 * WSADuplicateSocketW works only from the owner's side). The caveat is
 * Microsoft's: a socket duplicated this way is not supported when a layered
 * service provider sits over it (docs/SECURITY.md). Returns 0, WFPB_E_INVAL
 * (with the WSA error in *os_err) when Winsock does not take the handle as a
 * stream socket, WFPB_E_OS (with *os_err), or
 * WFPB_E_UNSUPPORTED on POSIX (descriptors travel with SCM_RIGHTS).
 */
int WFPB_MUST_CHECK wfpb__net_pull(intptr_t process, uint64_t handle, wfpb_sock *out, int *os_err);

/*
 * Windows: a handle that pins client process pid (while it is open the PID
 * names that process and no other), with the rights that pin it and no more;
 * 0 with *os_err when it cannot be opened. POSIX: 0 (ENOSYS).
 */
intptr_t wfpb__net_pin_process(uint32_t pid, int *os_err);

/* The protocol StatusCode (wfpbroker.v1.StatusCode value) for an OS error code. */
int WFPB_MUST_CHECK wfpb__net_status(int os_err);

/* A short description of an OS error code, for status messages. */
const char *wfpb__net_strerror(int os_err);

#endif
