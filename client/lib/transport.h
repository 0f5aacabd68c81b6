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

/* Reads 1..cap bytes; WFPB_E_CLOSED at end of stream, WFPB_E_TIMEOUT, WFPB_E_IO. */
int wfpb__transport_read(struct wfpb_transport *t, uint8_t *p, size_t cap, size_t *got, uint32_t timeout_ms);

void wfpb__transport_close(struct wfpb_transport *t);

/* Platform defaults for wfpb_default_endpoint / wfpb_default_server_key. */
const char *wfpb__default_endpoint(void);
const char *wfpb__default_server_key(void);

/* A monotonic clock in microseconds. */
uint64_t wfpb__monotonic_us(void);

#endif
