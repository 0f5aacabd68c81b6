/* SPDX-License-Identifier: Apache-2.0 */
/* Redirect context layouts (context.h). */
#include <stdio.h>
#include <string.h>

#include "context.h"

int
relay_context_kind(const char *name, enum relay_context *out)
{
	static const struct {
		const char		*name;
		enum relay_context	kind;
	} kinds[] = { { "auto", RELAY_CONTEXT_AUTO }, { "wfpsampler", RELAY_CONTEXT_WFPSAMPLER },
	    { "wfpb", RELAY_CONTEXT_WFPB }, { "none", RELAY_CONTEXT_NONE } };
	size_t i;

	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		if (strcmp(name, kinds[i].name) == 0) {
			*out = kinds[i].kind;
			return 0;
		}
	}
	return -1;
}

int
relay_original_destination(enum relay_context kind, const uint8_t *ctx, size_t len, struct wfpb_addr *out,
    char *why, size_t cap)
{
	if (kind == RELAY_CONTEXT_NONE) {
		snprintf(why, cap, "--context none: the context is not read (give --to)");
		return -1;
	}
	/* The layouts are libwfpb's to read (docs/CALLOUTS.md). */
	return wfpb_context_original_dst(ctx, len, kind == RELAY_CONTEXT_WFPSAMPLER ? WFPB_CONTEXT_WFPSAMPLER :
	    kind == RELAY_CONTEXT_WFPB ? WFPB_CONTEXT_WFPB : WFPB_CONTEXT_AUTO, out, why, cap) == 0 ? 0 : -1;
}
