/* SPDX-License-Identifier: Apache-2.0 */
/* Human-readable descriptions of the WFPB_E_* codes. */
#include "wfpb_error.h"

const char *
wfpb_strerror(int err)
{
	switch (err) {
	case WFPB_OK: return "success";
	case WFPB_E_NOMEM: return "out of memory";
	case WFPB_E_INVAL: return "invalid argument";
	case WFPB_E_FRAME_EMPTY: return "zero-length frame";
	case WFPB_E_FRAME_TOO_BIG: return "frame longer than the limit";
	case WFPB_E_TRUNCATED: return "stream ended inside a frame";
	case WFPB_E_BAD_MAGIC: return "not a wfpbroker preamble";
	case WFPB_E_VERSION: return "unsupported protocol version";
	case WFPB_E_PATTERN: return "unsupported handshake pattern";
	case WFPB_E_HANDSHAKE: return "malformed handshake message";
	case WFPB_E_DECRYPT: return "message failed authentication (tampered, replayed or reordered)";
	case WFPB_E_NONCE: return "nonce space exhausted";
	case WFPB_E_DH: return "invalid public key (all-zero shared secret)";
	case WFPB_E_PEER_KEY: return "peer key is not the pinned or enrolled key";
	case WFPB_E_DECODE: return "message did not decode";
	case WFPB_E_STATE: return "operation not valid in this state";
	case WFPB_E_CLOSED: return "connection closed by peer";
	case WFPB_E_TIMEOUT: return "timed out";
	case WFPB_E_IO: return "I/O error";
	case WFPB_E_NOENT: return "not found";
	case WFPB_E_ACCESS: return "access denied";
	case WFPB_E_REJECTED: return "broker rejected the session";
	case WFPB_E_CONFIG: return "invalid configuration";
	case WFPB_E_KEYFILE: return "key file malformed, readable by others or owned by another user";
	case WFPB_E_STATUS: return "broker returned an error status";
	case WFPB_E_PROTOCOL: return "protocol violation";
	case WFPB_E_LIMIT: return "limit reached";
	case WFPB_E_AGAIN: return "operation would block";
	case WFPB_E_OS: return "operating system error";
	case WFPB_E_UNSUPPORTED: return "not supported on this platform";
	case WFPB_E_RESTARTED: return "the broker ended the session (it restarted or stopped) before the answer";
	}
	return "unknown error";
}
