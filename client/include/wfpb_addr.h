/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Public (libwfpb). A transport address as plain data, with a parser and a
 * formatter that need no OS headers. Text forms: "192.0.2.1:443",
 * "[2001:db8::1]:443" (IPv6 in brackets; no scope in the text form).
 */
#ifndef WFPB_ADDR_H
#define WFPB_ADDR_H

#include <stddef.h>
#include <stdint.h>

#include "wfpb_error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define WFPB_AF_INET	4
#define WFPB_AF_INET6	6
#define WFPB_ADDR_STRLEN	64u

struct wfpb_addr {
	int		family;		/* WFPB_AF_INET or WFPB_AF_INET6; 0 = unset */
	uint8_t		addr[16];	/* network order; IPv4 uses the first 4 bytes */
	uint16_t	port;		/* host order */
	uint32_t	scope_id;
};

/* Bytes of address for a family: 4, 16, or 0 for an unknown family. */
WFPB_API size_t wfpb_addr_len(int family);

/* Parses "HOST:PORT" (IPv6 in brackets). 0 or WFPB_E_INVAL. */
WFPB_API int WFPB_MUST_CHECK wfpb_addr_parse(const char *s, struct wfpb_addr *out);

/* Formats into out (WFPB_ADDR_STRLEN bytes). */
WFPB_API void wfpb_addr_format(const struct wfpb_addr *a, char out[WFPB_ADDR_STRLEN]);

/*
 * Redirect context layouts (docs/CALLOUTS.md gives each byte for byte). AUTO picks by exact
 * length: 256 bytes WFPSAMPLER, 38 bytes WFPB.
 */
#define WFPB_CONTEXT_AUTO	0
#define WFPB_CONTEXT_WFPSAMPLER	1	/* Microsoft's WFPSampler: two SOCKADDR_STORAGE, original remote then local */
#define WFPB_CONTEXT_WFPB	2	/* the broker's backends: two 19-byte hops, original remote then destination */

/*
 * Where a redirected connection was going, read from its redirect context (ctx, len bytes;
 * untrusted: a callout wrote it) in layout (WFPB_CONTEXT_*): 0 with *out set, or WFPB_E_INVAL
 * with a sentence in why (cap bytes; why may be NULL). For a proxy that has only the context;
 * Accept, Relay and Flow answers carry the broker's own reading as original_dst.
 */
WFPB_API int WFPB_MUST_CHECK wfpb_context_original_dst(const uint8_t *ctx, size_t len, int layout,
    struct wfpb_addr *out, char *why, size_t cap);

#ifdef __cplusplus
}
#endif

#endif
