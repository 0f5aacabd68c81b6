/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Address ranges for policy, and the address helpers core needs, over the
 * public struct wfpb_addr (wfpb_addr.h), so core policy and the client
 * library share one implementation. Ranges: "10.0.0.0/8:1024-65535",
 * "[::1]/128:*", "0.0.0.0/0:443".
 */
#ifndef WFPB_ADDR_INTERNAL_H
#define WFPB_ADDR_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "wfpb_addr.h"
#include "wfpb_error.h"

struct wfpb_range {
	int		family;
	uint8_t		addr[16];
	unsigned	prefix;		/* bits */
	uint16_t	port_lo, port_hi;
	int		any_port;	/* written "*" rather than with numbers */
};

/* Parses "ADDR/PREFIX:PORTS" with PORTS = "*", "N" or "N-M". 0 or WFPB_E_INVAL. */
int WFPB_MUST_CHECK wfpb_range_parse(const char *s, size_t len, struct wfpb_range *out);

/*
 * Rewrites an IPv6 address that carries an IPv4 one — IPv4-mapped
 * (::ffff:a.b.c.d) or IPv4-compatible (::a.b.c.d, but not :: or ::1) — as
 * that IPv4 address, port kept, scope dropped. Policy sees addresses only in
 * this form, so no IPv6 spelling reaches around an IPv4 range. Returns 1 when
 * it rewrote a, else 0.
 */
int wfpb_addr_canonical(struct wfpb_addr *a);

/* 1 for the unspecified address (0.0.0.0 or ::), which as a destination means this host. */
int wfpb_addr_unspecified(const struct wfpb_addr *a);

/* 1 when a and b are the same family, address and port (the scope is not compared). */
int wfpb_addr_same(const struct wfpb_addr *a, const struct wfpb_addr *b);

/*
 * 1 when a falls in r (family, prefix and port range). Ranges are kept in
 * the canonical form too: an IPv4-mapped range (prefix 96 or more) is parsed
 * as the IPv4 range it names.
 */
int wfpb_range_contains(const struct wfpb_range *r, const struct wfpb_addr *a);

/* One hex digit's value (either case), or -1. */
int wfpb__hexval(char c);

#endif
