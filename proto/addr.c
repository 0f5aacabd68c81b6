/* SPDX-License-Identifier: Apache-2.0 */
/* Address text <-> struct, written out so core needs no inet_pton. Input may be hostile. */
#include <stdio.h>
#include <string.h>

#include "addr.h"

size_t
wfpb_addr_len(int family)
{
	return family == WFPB_AF_INET ? 4 : family == WFPB_AF_INET6 ? 16 : 0;
}

static int
parse_v4(const char *s, size_t n, uint8_t out[4])
{
	size_t		i = 0;
	unsigned	part, k;

	for (k = 0; k < 4; k++) {
		size_t digits = 0;

		part = 0;
		while (i < n && s[i] >= '0' && s[i] <= '9') {
			part = part * 10 + (unsigned)(s[i] - '0');
			if (++digits > 3 || part > 255)
				return -1;
			i++;
		}
		if (digits == 0 || (digits > 1 && s[i - digits] == '0'))
			return -1;
		out[k] = (uint8_t)part;
		if (k < 3) {
			if (i >= n || s[i] != '.')
				return -1;
			i++;
		}
	}
	return i == n ? 0 : -1;
}

int
wfpb__hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int
parse_v6(const char *s, size_t n, uint8_t out[16])
{
	uint16_t	groups[8];
	int		ngroups = 0, gap = -1, h;
	size_t		i = 0, digits;
	unsigned	v;

	if (n >= 2 && s[0] == ':' && s[1] == ':') {
		gap = 0;
		i = 2;
	} else if (n >= 1 && s[0] == ':') {
		return -1;
	}
	while (i < n) {
		if (ngroups >= 8)
			return -1;
		v = 0;
		digits = 0;
		while (i < n && (h = wfpb__hexval(s[i])) >= 0) {
			v = v * 16 + (unsigned)h;
			if (++digits > 4)
				return -1;
			i++;
		}
		if (digits == 0)
			return -1;
		groups[ngroups++] = (uint16_t)v;
		if (i == n)
			break;
		if (s[i] != ':')
			return -1;
		i++;
		if (i < n && s[i] == ':') {
			if (gap >= 0)
				return -1;
			gap = ngroups;
			i++;
		} else if (i == n) {
			return -1;	/* trailing single ':' */
		}
	}
	if ((gap < 0 && ngroups != 8) || (gap >= 0 && ngroups > 7))
		return -1;
	memset(out, 0, 16);
	if (gap < 0)
		gap = ngroups;
	for (h = 0; h < gap; h++) {
		out[2 * h] = (uint8_t)(groups[h] >> 8);
		out[2 * h + 1] = (uint8_t)groups[h];
	}
	for (h = gap; h < ngroups; h++) {
		int at = 8 - (ngroups - h);

		out[2 * at] = (uint8_t)(groups[h] >> 8);
		out[2 * at + 1] = (uint8_t)groups[h];
	}
	return 0;
}

/* Parses an address without port: IPv4, or IPv6 (no brackets). */
static int
parse_host(const char *s, size_t n, int *family, uint8_t out[16])
{
	if (memchr(s, ':', n) != NULL) {
		*family = WFPB_AF_INET6;
		return parse_v6(s, n, out);
	}
	*family = WFPB_AF_INET;
	memset(out, 0, 16);
	return parse_v4(s, n, out);
}

static int
parse_u16(const char *s, size_t n, uint16_t *out)
{
	unsigned long	v = 0;
	size_t		i;

	if (n == 0 || n > 5)
		return -1;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v > 65535)
		return -1;
	*out = (uint16_t)v;
	return 0;
}

/* Splits "HOST:REST" / "[HOST]REST-after-colon"; host and rest point into s. */
static int
split_host(const char *s, size_t n, const char **host, size_t *hlen, const char **rest, size_t *rlen)
{
	const char *close, *colon;

	if (n > 0 && s[0] == '[') {
		if ((close = memchr(s, ']', n)) == NULL)
			return -1;
		*host = s + 1;
		*hlen = (size_t)(close - s - 1);
		*rest = close + 1;
		*rlen = n - (size_t)(close + 1 - s);
		return 0;
	}
	/* Unbracketed: IPv4 (one ':' before the port) or a CIDR whose '/' precedes the port. */
	for (colon = s + n; colon > s && colon[-1] != ':'; colon--)
		;
	if (colon == s)
		return -1;
	*host = s;
	*hlen = (size_t)(colon - 1 - s);
	*rest = colon - 1;
	*rlen = n - *hlen;
	return 0;
}

int
wfpb_addr_parse(const char *s, struct wfpb_addr *out)
{
	const char	*host, *rest;
	size_t		hlen, rlen, n = strlen(s);

	memset(out, 0, sizeof(*out));
	if (split_host(s, n, &host, &hlen, &rest, &rlen) != 0 || rlen < 2 || rest[0] != ':')
		return WFPB_E_INVAL;
	if (s[0] != '[' && memchr(host, ':', hlen) != NULL)
		return WFPB_E_INVAL;	/* IPv6 needs brackets when a port follows */
	if (parse_host(host, hlen, &out->family, out->addr) != 0 || parse_u16(rest + 1, rlen - 1, &out->port) != 0) {
		memset(out, 0, sizeof(*out));
		return WFPB_E_INVAL;
	}
	return 0;
}

void
wfpb_addr_format(const struct wfpb_addr *a, char out[WFPB_ADDR_STRLEN])
{
	int	i, best = -1, bestlen = 0, run, pos = 0;
	char	*p = out;

	if (a->family == WFPB_AF_INET) {
		snprintf(out, WFPB_ADDR_STRLEN, "%u.%u.%u.%u:%u", a->addr[0], a->addr[1], a->addr[2], a->addr[3],
		    a->port);
		return;
	}
	if (a->family != WFPB_AF_INET6) {
		snprintf(out, WFPB_ADDR_STRLEN, "(unset)");
		return;
	}
	/* RFC 5952: compress the longest run of two or more zero groups. */
	for (i = 0; i < 8; i += run ? run : 1) {
		for (run = 0; i + run < 8 && a->addr[2 * (i + run)] == 0 && a->addr[2 * (i + run) + 1] == 0; run++)
			;
		if (run > bestlen && run >= 2) {
			best = i;
			bestlen = run;
		}
	}
	pos += snprintf(p + pos, WFPB_ADDR_STRLEN - (size_t)pos, "[");
	for (i = 0; i < 8; i++) {
		if (i == best) {
			pos += snprintf(p + pos, WFPB_ADDR_STRLEN - (size_t)pos, "::");
			i += bestlen - 1;
			continue;
		}
		if (i > 0 && i != best + bestlen)
			pos += snprintf(p + pos, WFPB_ADDR_STRLEN - (size_t)pos, ":");
		pos += snprintf(p + pos, WFPB_ADDR_STRLEN - (size_t)pos, "%x",
		    (unsigned)((a->addr[2 * i] << 8) | a->addr[2 * i + 1]));
	}
	snprintf(p + pos, WFPB_ADDR_STRLEN - (size_t)pos, "]:%u", a->port);
}

static const uint8_t zero12[12];

static int
is_mapped(const uint8_t a[16])
{
	return memcmp(a, zero12, 10) == 0 && a[10] == 0xff && a[11] == 0xff;
}

int
wfpb_addr_canonical(struct wfpb_addr *a)
{
	int compat;

	if (a->family != WFPB_AF_INET6)
		return 0;
	compat = memcmp(a->addr, zero12, 12) == 0 &&
	    !(a->addr[12] == 0 && a->addr[13] == 0 && a->addr[14] == 0 && a->addr[15] <= 1);
	if (!compat && !is_mapped(a->addr))
		return 0;
	memmove(a->addr, a->addr + 12, 4);
	memset(a->addr + 4, 0, 12);
	a->family = WFPB_AF_INET;
	a->scope_id = 0;
	return 1;
}

int
wfpb_addr_unspecified(const struct wfpb_addr *a)
{
	static const uint8_t zero[16];

	return memcmp(a->addr, zero, wfpb_addr_len(a->family)) == 0;
}

int
wfpb_addr_same(const struct wfpb_addr *a, const struct wfpb_addr *b)
{
	return a->family == b->family && a->port == b->port && memcmp(a->addr, b->addr, wfpb_addr_len(a->family)) == 0;
}

int
wfpb_range_parse(const char *s, size_t n, struct wfpb_range *out)
{
	const char	*colon, *slash, *dash, *host, *ports;
	size_t		hlen, plen, i;
	unsigned	prefix = 0;

	memset(out, 0, sizeof(*out));
	/* The ports follow the last ':'; before it is ADDR/PREFIX, the address optionally in brackets. */
	for (colon = s + n; colon > s && colon[-1] != ':'; colon--)
		;
	if (colon == s)
		return WFPB_E_INVAL;
	ports = colon;
	plen = n - (size_t)(colon - s);
	if ((slash = memchr(s, '/', (size_t)(colon - 1 - s))) == NULL)
		return WFPB_E_INVAL;
	host = s;
	hlen = (size_t)(slash - s);
	if (hlen >= 2 && host[0] == '[' && host[hlen - 1] == ']') {
		host++;
		hlen -= 2;
	}
	if ((size_t)(colon - 1 - slash) < 2 || (size_t)(colon - 1 - slash) > 4)
		return WFPB_E_INVAL;
	for (i = 1; slash + i < colon - 1; i++) {
		if (slash[i] < '0' || slash[i] > '9')
			return WFPB_E_INVAL;
		prefix = prefix * 10 + (unsigned)(slash[i] - '0');
	}
	if (parse_host(host, hlen, &out->family, out->addr) != 0 || prefix > 8 * wfpb_addr_len(out->family))
		return WFPB_E_INVAL;
	out->prefix = prefix;
	if (out->family == WFPB_AF_INET6 && prefix >= 96 && is_mapped(out->addr)) {
		memmove(out->addr, out->addr + 12, 4);
		memset(out->addr + 4, 0, 12);
		out->family = WFPB_AF_INET;
		out->prefix = prefix - 96;
	}
	if (plen == 1 && ports[0] == '*') {
		out->port_lo = 0;
		out->port_hi = 65535;
		out->any_port = 1;
	} else if ((dash = memchr(ports, '-', plen)) != NULL) {
		if (parse_u16(ports, (size_t)(dash - ports), &out->port_lo) != 0 ||
		    parse_u16(dash + 1, plen - (size_t)(dash - ports) - 1, &out->port_hi) != 0 ||
		    out->port_lo > out->port_hi)
			return WFPB_E_INVAL;
	} else {
		if (parse_u16(ports, plen, &out->port_lo) != 0)
			return WFPB_E_INVAL;
		out->port_hi = out->port_lo;
	}
	return 0;
}

int
wfpb_range_contains(const struct wfpb_range *r, const struct wfpb_addr *a)
{
	unsigned	full, bits;

	if (a->family != r->family || a->port < r->port_lo || a->port > r->port_hi)
		return 0;
	full = r->prefix / 8;
	bits = r->prefix % 8;
	if (memcmp(a->addr, r->addr, full) != 0)
		return 0;
	if (bits != 0 && ((a->addr[full] ^ r->addr[full]) & (uint8_t)(0xff << (8 - bits))) != 0)
		return 0;
	return 1;
}
