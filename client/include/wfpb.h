/*
 * libwfpb: the client side of the wfpbroker protocol.
 *
 * A struct wfpb_client is one authenticated session with the broker. Calls
 * block until the broker answers or the timeout passes. A client object is
 * not thread-safe; open one per thread. Every function returns 0 on success
 * or a negative WFPB_E_* code (see wfpb_error.h); when the broker answered
 * with a non-OK status the code is WFPB_E_STATUS and wfpb_status() holds it.
 * wfpb_errmsg() describes the last failure in a sentence.
 */
#ifndef WFPB_H
#define WFPB_H

#include <stddef.h>
#include <stdint.h>

#include "wfpb_error.h"

#ifdef __cplusplus
extern "C" {
#endif

struct wfpb_client;

struct wfpb_open_opts {
	const char	*endpoint;		/* NULL: the platform default */
	const char	*server_key_path;	/* pinned broker key file; NULL: default location */
	const uint8_t	*server_key;		/* or the 32-byte key itself (overrides the path) */
	const char	*client_key_path;	/* private key file for IK, NULL for NK */
	uint32_t	timeout_ms;		/* per call; 0 means 10 s */
};

/* The default endpoint and pinned-key path of this platform. */
const char *wfpb_default_endpoint(void);
const char *wfpb_default_server_key(void);

/*
 * Connects and completes the handshake. On success *out owns the session
 * (close with wfpb_close). On failure *out is NULL and, if errbuf is not
 * NULL, errbuf holds a sentence naming the cause (e.g. a squatted endpoint
 * fails as WFPB_E_DECRYPT "... not the pinned key?").
 */
int WFPB_MUST_CHECK wfpb_open(const struct wfpb_open_opts *opts, struct wfpb_client **out, char *errbuf,
    size_t errlen);

/* Closes the session and wipes its keys. NULL is a no-op. */
void wfpb_close(struct wfpb_client *c);

/*
 * Pings the broker with an echo payload of len bytes (<= 1024). On success
 * *protocol_version (may be NULL) is the broker's protocol version.
 */
int WFPB_MUST_CHECK wfpb_ping(struct wfpb_client *c, const uint8_t *payload, size_t len,
    uint32_t *protocol_version);

/* A monotonic clock in microseconds, for callers that time calls. */
uint64_t wfpb_monotonic_us(void);

/* The status code of the last WFPB_E_STATUS failure (the .proto's StatusCode), else 0. */
int wfpb_status(const struct wfpb_client *c);

/* A sentence about the last failure on this client; "" after success. */
const char *wfpb_errmsg(const struct wfpb_client *c);

#ifdef __cplusplus
}
#endif

#endif
