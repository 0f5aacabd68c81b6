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
 * Handles one decrypted request message and writes the packed Response into
 * *out (malloc'd, caller frees). Returns 0, or WFPB_E_NOMEM (the session
 * closes). Bad input yields a BAD_REQUEST response, not an error.
 */
int WFPB_MUST_CHECK wfpb_dispatch(struct wfpb_session *s, const uint8_t *msg, size_t len, uint8_t **out,
    size_t *out_len, uint64_t now_ms);

#endif
