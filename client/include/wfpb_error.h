/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Public (libwfpb). The one error type of wfpbroker: an int that is 0 on success or a negative
 * WFPB_E_* code. OS errors (errno, Win32, WSA) are translated into these at
 * the OS boundary only; the original value travels separately for messages.
 */
#ifndef WFPB_ERROR_H
#define WFPB_ERROR_H

#include "wfpb_api.h"

enum wfpb_error {
	WFPB_OK = 0,
	WFPB_E_NOMEM = -1,          /* allocation failed */
	WFPB_E_INVAL = -2,          /* bad argument from the caller */
	WFPB_E_FRAME_EMPTY = -3,    /* a zero-length frame */
	WFPB_E_FRAME_TOO_BIG = -4,  /* frame length above the limit */
	WFPB_E_TRUNCATED = -5,      /* stream ended inside a frame or preamble */
	WFPB_E_BAD_MAGIC = -6,      /* preamble does not start with "WFPB" */
	WFPB_E_VERSION = -7,        /* unknown protocol version */
	WFPB_E_PATTERN = -8,        /* unknown handshake pattern */
	WFPB_E_HANDSHAKE = -9,      /* malformed handshake message */
	WFPB_E_DECRYPT = -10,       /* authentication failed: tampered, replayed or reordered */
	WFPB_E_NONCE = -11,         /* nonce space exhausted */
	WFPB_E_DH = -12,            /* X25519 produced the all-zero secret */
	WFPB_E_PEER_KEY = -13,      /* the peer's static key is not the pinned/enrolled one */
	WFPB_E_DECODE = -14,        /* a protobuf message did not decode */
	WFPB_E_STATE = -15,         /* call made in the wrong channel state */
	WFPB_E_CLOSED = -16,        /* the peer closed the connection */
	WFPB_E_TIMEOUT = -17,       /* a deadline passed */
	WFPB_E_IO = -18,            /* an OS I/O call failed */
	WFPB_E_NOENT = -19,         /* no such file, endpoint or object */
	WFPB_E_ACCESS = -20,        /* the OS denied access */
	WFPB_E_REJECTED = -21,      /* the broker refused the session before the handshake */
	WFPB_E_CONFIG = -22,        /* configuration file is invalid */
	WFPB_E_KEYFILE = -23,       /* a key file is missing, malformed or too open */
	WFPB_E_STATUS = -24,        /* the broker answered with a non-OK status */
	WFPB_E_PROTOCOL = -25,      /* the peer broke the protocol (e.g. wrong request_id) */
	WFPB_E_LIMIT = -26,         /* a configured limit was reached */
	WFPB_E_AGAIN = -27,         /* would block / in progress: wait for readiness */
	WFPB_E_OS = -28,            /* an OS call failed; the OS code travels beside it */
	WFPB_E_UNSUPPORTED = -29,   /* not available on this platform or build */
	WFPB_E_RESTARTED = -30,     /* the broker ended the session (it restarted or stopped) first */
};

/* Returns a static, human-readable description of a WFPB_E_* code. */
WFPB_API const char *wfpb_strerror(int err);

#endif
