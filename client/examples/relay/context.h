/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wfpb-relay: where a redirected connection was going, read from the redirect
 * context Accept returned. The format belongs to the callout (or the broker's
 * backend) that attached the context; each known layout is parsed exactly
 * and anything else is refused with a reason. The context is what a callout
 * chose: it is read as untrusted bytes.
 */
#ifndef WFPB_RELAY_CONTEXT_H
#define WFPB_RELAY_CONTEXT_H

#include <stddef.h>
#include <stdint.h>

#include "wfpb.h"

enum relay_context {
	RELAY_CONTEXT_AUTO,		/* by exact length: 256 bytes WFPSampler, 38 bytes wfpb */
	RELAY_CONTEXT_WFPSAMPLER,	/* two SOCKADDR_STORAGE: original remote, then local (Microsoft's WFPSampler) */
	RELAY_CONTEXT_WFPB,		/* two 19-byte hops: original remote, then original destination (sim, netfilter) */
	RELAY_CONTEXT_NONE,		/* the context is not used: --to names the upstream */
};

/* "auto", "wfpsampler", "wfpb" or "none" into *out: 0, or -1 for any other name. */
int relay_context_kind(const char *name, enum relay_context *out);

/*
 * The original destination in ctx (len bytes) read as kind. 0 with *out
 * set, or -1 with a sentence in why.
 */
int relay_original_destination(enum relay_context kind, const uint8_t *ctx, size_t len, struct wfpb_addr *out,
    char *why, size_t cap);

#endif
