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

#include "session.h"

/*
 * Handles one decrypted request message and queues its Response on the
 * session, or leaves the operation pending (s->pending) for
 * wfpb__dispatch_resume. Returns 0, or a negative WFPB_E_* when the session
 * must close. Bad input yields a BAD_REQUEST response, not an error.
 */
int WFPB_MUST_CHECK wfpb_dispatch(struct wfpb_session *s, const uint8_t *msg, size_t len, uint64_t now_ms);

/* Audits a session's start (1) or end (0). */
void wfpb__dispatch_session_event(struct wfpb_session *s, int start);

/* Retries (or, when timed_out, ends with TIMEOUT) the session's pending operation. */
int WFPB_MUST_CHECK wfpb__dispatch_resume(struct wfpb_session *s, uint64_t now_ms, int timed_out);

#endif
