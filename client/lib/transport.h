/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The byte pipe under libwfpb: a Unix socket (transport_posix.c) or a named
 * pipe (transport_win.c). Both implement this contract; CMake picks one.
 */
#ifndef WFPB_TRANSPORT_H
#define WFPB_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#include "wfpb_error.h"

struct wfpb_transport;

/* Connects to endpoint. On failure writes a sentence into err. */
int wfpb__transport_connect(const char *endpoint, uint32_t timeout_ms, struct wfpb_transport **out, char *err,
    size_t errlen);

/* Writes all len bytes or fails (WFPB_E_IO, WFPB_E_CLOSED, WFPB_E_TIMEOUT). */
int wfpb__transport_write(struct wfpb_transport *t, const uint8_t *p, size_t len, uint32_t timeout_ms);
/*
 * Writes what the transport takes now, never waiting (POSIX; on Windows the pipe's write is
 * the blocking one, within timeout_ms): *done bytes of len. 0, or an error as _write's.
 */
int wfpb__transport_write_some(struct wfpb_transport *t, const uint8_t *p, size_t len, size_t *done,
    uint32_t timeout_ms);

/*
 * As _write, passing the socket sock with the first byte (POSIX SCM_RIGHTS;
 * WFPB_E_UNSUPPORTED where the platform cannot). The caller keeps sock.
 */
int wfpb__transport_write_sock(struct wfpb_transport *t, const uint8_t *p, size_t len, intptr_t sock,
    uint32_t timeout_ms);

/* The oldest socket received with the bytes read so far (ownership passes; blocking unless nonblocking), or -1. */
intptr_t wfpb__transport_take_sock(struct wfpb_transport *t, int nonblocking);

/* Closes every received socket nobody took. */
void wfpb__transport_drop_socks(struct wfpb_transport *t);

/* Reads 1..cap bytes; WFPB_E_CLOSED at end of stream, WFPB_E_TIMEOUT, WFPB_E_IO. */
int wfpb__transport_read(struct wfpb_transport *t, uint8_t *p, size_t cap, size_t *got, uint32_t timeout_ms);

/*
 * What a caller's loop waits on: ready while bytes wait to be read (the
 * socket on POSIX; on Windows the event of a read kept outstanding, which
 * _arm starts when nothing is buffered).
 */
intptr_t wfpb__transport_wait_handle(const struct wfpb_transport *t);
void wfpb__transport_arm(struct wfpb_transport *t);

void wfpb__transport_close(struct wfpb_transport *t);

/*
 * Windows loops that cannot wait on an event: a notice, kept by the client across sessions,
 * is one packet on a completion port (key, 0 bytes, no OVERLAPPED) and/or one byte on a
 * loopback socket the library owns, sent when the transport has bytes to read. _port and
 * _socket add a kind to *n (made on first use): 0, WFPB_E_*, or WFPB_E_UNSUPPORTED (POSIX,
 * where the wait handle is a descriptor any loop takes). _watch makes transport t send n's
 * notices (after each session opens); _rearm, once the caller has collected, drains the
 * socket and arms the next notice, or sends one now when work is already waiting (pending).
 */
struct wfpb__notify;
int wfpb__notify_port(struct wfpb__notify **n, intptr_t port, uintptr_t key);
int wfpb__notify_socket(struct wfpb__notify **n, intptr_t *rx);
void wfpb__notify_free(struct wfpb__notify *n);
int wfpb__transport_watch(struct wfpb_transport *t, struct wfpb__notify *n);
void wfpb__transport_rearm(struct wfpb_transport *t, int pending);

/* Platform defaults for wfpb_default_endpoint / wfpb_default_server_key. */
const char *wfpb__default_endpoint(void);
const char *wfpb__default_server_key(void);

/*
 * Rebuilds a socket from the WSAPROTOCOL_INFOW bytes the broker produced for
 * this process (Windows). Returns 0, WFPB_E_OS, or WFPB_E_UNSUPPORTED (POSIX).
 */
int wfpb__socket_from_info(const uint8_t *info, size_t len, int nonblocking, intptr_t *out);

/* Closes a socket the broker handed over. */
void wfpb__close_socket(intptr_t sock);

/* Sleeps ms milliseconds. */
void wfpb__sleep_ms(unsigned ms);

/* A monotonic clock in microseconds. */
uint64_t wfpb__monotonic_us(void);

#endif
