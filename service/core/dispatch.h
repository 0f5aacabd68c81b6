/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Request dispatch: one table row per operation, each with its permission,
 * its validator (protobuf in, checked C struct out) and its handler. An op
 * that is not in the table is answered, never run.
 */
#ifndef WFPB_DISPATCH_H
#define WFPB_DISPATCH_H

#include <stddef.h>
#include <stdint.h>

#include "net.h"

struct wfpb_pending;
struct wfpb_session;

/*
 * Handles one decrypted request message and queues its Response on the
 * session, or leaves the request pending (one more in s->pending) for
 * wfpb__dispatch_resume. Returns 0, or a negative WFPB_E_* when the session
 * must close. Bad input yields a BAD_REQUEST response, not an error.
 */
int WFPB_MUST_CHECK wfpb_dispatch(struct wfpb_session *s, const uint8_t *msg, size_t len, uint64_t now_ms);

/*
 * What a request's validator may know besides the request: the limits that
 * bound it. Validators are pure functions of the two (no session, no I/O).
 */
struct wfpb_limits {
	uint32_t	blob_max;	/* records and stash blobs */
	unsigned	n_fds;		/* descriptors that came with the request */
};

/*
 * Validates one request message as wfpb_dispatch would, without running it
 * (the fuzz_validate harness): the StatusCode it would be refused with (0
 * when valid), or -1 when a validator accepted something its own bounds
 * forbid, which is a bug.
 */
int wfpb__validate_message(const struct wfpb_limits *lim, const uint8_t *msg, size_t len);

/*
 * Audits a session's start (1) or end (0). The end is recorded once for every
 * start that was, whichever way the session ended, with s->end_reason.
 */
void wfpb__dispatch_session_event(struct wfpb_session *s, int start);

/*
 * Records that the socket an answer of request_id carried could not be
 * duplicated into the client (Windows, as the answer was written): the
 * request's own record said it was handed over. Core lock held.
 */
void wfpb__audit_handover_failed(struct wfpb_session *s, uint64_t request_id, int os_err);

/* Why a pending request is taken up again. */
enum wfpb_resume_why {
	WFPB_RESUME_READY,	/* its socket is ready (or, ApplyRecords, its record may be durable) */
	WFPB_RESUME_POLL,	/* its socket may be ready: check without blocking */
	WFPB_RESUME_TIMEOUT,	/* its deadline passed: answer TIMEOUT */
	WFPB_RESUME_CANCEL,	/* what it waits on is going away (a released listener) */
	WFPB_RESUME_GONE,	/* its session is ending: record what was done (CANCELLED), answer nothing */
	WFPB_RESUME_REVOKED,	/* a reload withdrew its grant, range or provenance: answer DENIED */
	WFPB_RESUME_ABORT,	/* its client cancelled it (Cancel): answer CANCELLED, nothing more done */
};

/*
 * Takes up one of the session's pending requests, under the core lock: 1 when
 * it was answered (and p freed), 0 when it waits on, or a negative WFPB_E_*
 * when the session must close.
 */
int WFPB_MUST_CHECK wfpb__dispatch_resume(struct wfpb_session *s, struct wfpb_pending *p, int why, uint64_t now_ms);

/*
 * After a reload: the session is matched against the new policy; every pending
 * request whose grant, range or provenance no longer holds is answered DENIED
 * (recorded, its socket released), then every listener the principal may no
 * longer hold is closed. Under the core lock. 1 when something was answered
 * or closed, 0 when nothing changed, or a negative WFPB_E_* (close the session).
 */
int WFPB_MUST_CHECK wfpb__dispatch_recheck(struct wfpb_session *s, uint64_t now_ms);

/* Answers CANCEL to every pending request waiting on sock (a listener about to close). */
int WFPB_MUST_CHECK wfpb__dispatch_cancel(struct wfpb_session *s, wfpb_sock sock, uint64_t now_ms);

#endif
