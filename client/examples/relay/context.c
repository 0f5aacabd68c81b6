/* SPDX-License-Identifier: Apache-2.0 */
/* Redirect context layouts (context.h). */
#include <stdio.h>
#include <string.h>

#include "context.h"

#define STORAGE_LEN	128u	/* sizeof(SOCKADDR_STORAGE) */
#define WIN_AF_INET	2u
#define WIN_AF_INET6	23u	/* Windows' value; Linux's is 10 */
#define HOP_LEN		19u	/* family 1, address 16, port 2 (big-endian) */

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
		snprintf(why, cap, "the %s SOCKADDR_STORAGE (AF_INET) has bytes set past its address", which);
		return -1;
	}
	if (family == WIN_AF_INET6) {
		out->family = WFPB_AF_INET6;
		memcpy(out->addr, ss + 8, 16);	/* after family, port and sin6_flowinfo */
		out->scope_id = (uint32_t)ss[24] | (uint32_t)ss[25] << 8 | (uint32_t)ss[26] << 16 |
		    (uint32_t)ss[27] << 24;
		if (all_zero(ss + 28, STORAGE_LEN - 28))
			return 0;
		snprintf(why, cap, "the %s SOCKADDR_STORAGE (AF_INET6) has bytes set past its scope id", which);
		return -1;
	}
	snprintf(why, cap, "the %s SOCKADDR_STORAGE has address family %u, neither AF_INET (2) nor AF_INET6 (23)",
	    which, family);
	return -1;
}

static int
wfpsampler(const uint8_t *ctx, size_t len, struct wfpb_addr *out, char *why, size_t cap)
{
	struct wfpb_addr local;

	if (len != 2 * STORAGE_LEN) {
		snprintf(why, cap, "a WFPSampler context is 256 bytes (two SOCKADDR_STORAGE), this one %zu", len);
		return -1;
	}
	if (storage(ctx, out, "first", why, cap) != 0 || storage(ctx + STORAGE_LEN, &local, "second", why, cap) != 0)
		return -1;
	return 0;
}

static int
wfpb_hops(const uint8_t *ctx, size_t len, struct wfpb_addr *out, char *why, size_t cap)
{
	const uint8_t *hop = ctx + HOP_LEN;	/* the second hop: the original destination */

	if (len != 2 * HOP_LEN) {
		snprintf(why, cap, "a wfpb context is 38 bytes (two hops), this one %zu", len);
		return -1;
	}
	memset(out, 0, sizeof(*out));
	out->family = hop[0];
	if (wfpb_addr_len(out->family) == 0) {
		snprintf(why, cap, "the wfpb context's destination has family %u", hop[0]);
		return -1;
	}
	memcpy(out->addr, hop + 1, wfpb_addr_len(out->family));
	out->port = (uint16_t)(hop[17] << 8 | hop[18]);
	return 0;
}

int
relay_original_destination(enum relay_context kind, const uint8_t *ctx, size_t len, struct wfpb_addr *out,
    char *why, size_t cap)
{
	int rc;

	why[0] = '\0';
	if (kind == RELAY_CONTEXT_NONE) {
		snprintf(why, cap, "--context none: the context is not read (give --to)");
		return -1;
	}
	if (ctx == NULL || len == 0) {
		snprintf(why, cap, "the connection carries no redirect context");
		return -1;
	}
	if (kind == RELAY_CONTEXT_AUTO) {
		if (len == 2 * STORAGE_LEN)
			kind = RELAY_CONTEXT_WFPSAMPLER;
		else if (len == 2 * HOP_LEN)
			kind = RELAY_CONTEXT_WFPB;
		else {
			snprintf(why, cap, "a %zu bytes context is no layout this relay knows (--context)", len);
			return -1;
		}
	}
	rc = kind == RELAY_CONTEXT_WFPSAMPLER ? wfpsampler(ctx, len, out, why, cap) : wfpb_hops(ctx, len, out, why, cap);
	if (rc == 0 && out->port == 0) {
		snprintf(why, cap, "the original destination has port 0");
		return -1;
	}
	return rc;
}
