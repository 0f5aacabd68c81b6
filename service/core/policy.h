/* SPDX-License-Identifier: Apache-2.0 */
/* Policy matching (policy.c): an identity and a proven key to the principal they are, or none. */
#ifndef WFPB_POLICY_H
#define WFPB_POLICY_H

#include <stdint.h>

struct wfpb_config;
struct wfpb_identity;
struct wfpb_principal;

/*
 * The first principal whose matchers all match this identity and (for key
 * matchers) the session's Noise static key, or NULL (default deny). An
 * unknown identity matches nothing: the crypto layer adds to the kernel's
 * identity, never replaces it.
 */
const struct wfpb_principal *wfpb_policy_match(const struct wfpb_config *cfg, const struct wfpb_identity *id,
    const uint8_t *peer_key);

#endif
