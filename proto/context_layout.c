/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The redirect context layouts the broker knows (docs/CALLOUTS.md, byte for byte), read as
 * untrusted bytes: a callout chose them. Each layout is parsed exactly, and anything else is
 * refused with a sentence that says why.
 */
#include <stdio.h>
#include <string.h>

#include "wfpb_addr.h"

#define STORAGE_LEN	128u	/* sizeof(SOCKADDR_STORAGE) */
#define WIN_AF_INET	2u
#define WIN_AF_INET6	23u	/* Windows' value; Linux's is 10 */
#define HOP_LEN		19u	/* family 1, address 16, port 2 (big-endian) */

static void
say(char *why, size_t cap, const char *fmt, size_t n, const char *which)
{
	if (why != NULL && cap > 0)
		snprintf(why, cap, fmt, which != NULL ? which : "", n);
}

static int
all_zero(const uint8_t *p, size_t n)
{
	while (n-- > 0)
		if (*p++ != 0)
			return 0;
	return 1;
}

/* One SOCKADDR_STORAGE: family (u16 little-endian), then sockaddr_in or sockaddr_in6 with the rest zero. */
static int
storage(const uint8_t *ss, struct wfpb_addr *out, const char *which, char *why, size_t cap)
{
	unsigned family = (unsigned)ss[0] | (unsigned)ss[1] << 8;

	memset(out, 0, sizeof(*out));
	out->port = (uint16_t)(ss[2] << 8 | ss[3]);
	if (family == WIN_AF_INET) {
		out->family = WFPB_AF_INET;
		memcpy(out->addr, ss + 4, 4);
		if (all_zero(ss + 8, STORAGE_LEN - 8))
			return 0;
		say(why, cap, "the %s SOCKADDR_STORAGE (AF_INET) has bytes set past its address", 0, which);
		return WFPB_E_INVAL;
	}
	if (family == WIN_AF_INET6) {
		out->family = WFPB_AF_INET6;
		memcpy(out->addr, ss + 8, 16);	/* after family, port and sin6_flowinfo */
		out->scope_id = (uint32_t)ss[24] | (uint32_t)ss[25] << 8 | (uint32_t)ss[26] << 16 |
		    (uint32_t)ss[27] << 24;
		if (all_zero(ss + 28, STORAGE_LEN - 28))
			return 0;
		say(why, cap, "the %s SOCKADDR_STORAGE (AF_INET6) has bytes set past its scope id", 0, which);
		return WFPB_E_INVAL;
	}
	if (why != NULL && cap > 0)
		snprintf(why, cap, "the %s SOCKADDR_STORAGE has address family %u, neither AF_INET (2) nor AF_INET6 "
		    "(23)", which, family);
	return WFPB_E_INVAL;
}

int
wfpb_context_original_dst(const uint8_t *ctx, size_t len, int layout, struct wfpb_addr *out, char *why, size_t cap)
{
	struct wfpb_addr	local;
	const uint8_t		*hop;
	int			rc;

	if (why != NULL && cap > 0)
		why[0] = '\0';
	if (ctx == NULL || len == 0) {
		say(why, cap, "%sthere is no redirect context", 0, NULL);
		return WFPB_E_INVAL;
	}
	if (layout == WFPB_CONTEXT_AUTO)
		layout = len == 2 * STORAGE_LEN ? WFPB_CONTEXT_WFPSAMPLER : len == 2 * HOP_LEN ? WFPB_CONTEXT_WFPB : -1;
	if (layout == WFPB_CONTEXT_WFPSAMPLER) {
		if (len != 2 * STORAGE_LEN) {
			say(why, cap, "%sa WFPSampler context is 256 bytes (two SOCKADDR_STORAGE), this one %zu", len, NULL);
			return WFPB_E_INVAL;
		}
		if ((rc = storage(ctx, out, "first", why, cap)) != 0 ||
		    (rc = storage(ctx + STORAGE_LEN, &local, "second", why, cap)) != 0)
			return rc;
	} else if (layout == WFPB_CONTEXT_WFPB) {
		if (len != 2 * HOP_LEN) {
			say(why, cap, "%sa wfpb context is 38 bytes (two hops), this one %zu", len, NULL);
			return WFPB_E_INVAL;
		}
		hop = ctx + HOP_LEN;	/* the second hop: the original destination */
		memset(out, 0, sizeof(*out));
		out->family = hop[0];
		if (wfpb_addr_len(out->family) == 0) {
			say(why, cap, "%sthe wfpb context's destination has family %zu", hop[0], NULL);
			return WFPB_E_INVAL;
		}
		if (out->family == WFPB_AF_INET && !all_zero(hop + 5, 12)) {
			say(why, cap, "%sthe wfpb context's IPv4 destination has bytes set past its address", 0, NULL);
			return WFPB_E_INVAL;
		}
		memcpy(out->addr, hop + 1, wfpb_addr_len(out->family));
		out->port = (uint16_t)(hop[17] << 8 | hop[18]);
	} else {
		say(why, cap, "%sa context of %zu bytes is no layout libwfpb knows (WFPSampler: 256, wfpb: 38)", len, NULL);
		return WFPB_E_INVAL;
	}
	if (out->port == 0) {
		say(why, cap, "%sthe original destination has port 0", 0, NULL);
		return WFPB_E_INVAL;
	}
	return 0;
}
