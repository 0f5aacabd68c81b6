/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wfpb-relay's reading of a redirect context (client/examples/relay/
 * context.c). The format belongs to the callout: WFPSampler attaches two
 * SOCKADDR_STORAGE (the original remote, then the local), 128 bytes each,
 * family little-endian, port in network order, AF_INET6 being 23 on
 * Windows; the broker's own backends (sim, netfilter) attach two 19-byte
 * hops. Each layout is parsed exactly and anything else refused with a reason.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "context.h"
#include "wfp_control.h"
#include "wfpb_error.h"

/* One SOCKADDR_STORAGE as a Windows callout leaves it. */
static void
storage_v4(uint8_t ss[128], const uint8_t addr[4], uint16_t port)
{
	memset(ss, 0, 128);
	ss[0] = 2;	/* AF_INET, little-endian u16 */
	ss[2] = (uint8_t)(port >> 8);
	ss[3] = (uint8_t)port;
	memcpy(ss + 4, addr, 4);
}

static void
storage_v6(uint8_t ss[128], const uint8_t addr[16], uint16_t port, uint32_t scope)
{
	memset(ss, 0, 128);
	ss[0] = 23;	/* AF_INET6 on Windows */
	ss[2] = (uint8_t)(port >> 8);
	ss[3] = (uint8_t)port;
	memcpy(ss + 8, addr, 16);
	ss[24] = (uint8_t)scope;
	ss[25] = (uint8_t)(scope >> 8);
}

static void
wfpsampler_ipv4(void **state)
{
	static const uint8_t	remote[4] = { 93, 184, 216, 34 }, local[4] = { 10, 0, 0, 5 };
	uint8_t			ctx[256];
	struct wfpb_addr	a;
	char			why[128];
	enum relay_context	k;

	(void)state;
	storage_v4(ctx, remote, 443);
	storage_v4(ctx + 128, local, 50123);
	assert_int_equal(relay_context_kind("wfpsampler", &k), 0);
	assert_int_equal(relay_original_destination(k, ctx, sizeof(ctx), &a, why, sizeof(why)), 0);
	assert_int_equal(a.family, WFPB_AF_INET);
	assert_memory_equal(a.addr, remote, 4);
	assert_int_equal(a.port, 443);
	/* auto picks the layout by its exact length */
	assert_int_equal(relay_context_kind("auto", &k), 0);
	assert_int_equal(relay_original_destination(k, ctx, sizeof(ctx), &a, why, sizeof(why)), 0);
	assert_int_equal(a.port, 443);
}

static void
wfpsampler_ipv6(void **state)
{
	static const uint8_t	remote[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 7 }, local[16] = { [15] = 1 };
	uint8_t			ctx[256];
	struct wfpb_addr	a;
	char			why[128];

	(void)state;
	storage_v6(ctx, remote, 8443, 3);
	storage_v6(ctx + 128, local, 40000, 0);
	assert_int_equal(relay_original_destination(RELAY_CONTEXT_WFPSAMPLER, ctx, sizeof(ctx), &a, why,
	    sizeof(why)), 0);
	assert_int_equal(a.family, WFPB_AF_INET6);
	assert_memory_equal(a.addr, remote, 16);
	assert_int_equal(a.port, 8443);
	assert_int_equal(a.scope_id, 3);
}

static void
wfpsampler_refuses_what_it_is_not(void **state)
{
	static const uint8_t	v4[4] = { 1, 2, 3, 4 };
	uint8_t			ctx[256];
	struct wfpb_addr	a;
	char			why[128];

	(void)state;
	storage_v4(ctx, v4, 80);
	storage_v4(ctx + 128, v4, 81);
	/* A length that is not two SOCKADDR_STORAGE. */
	assert_int_equal(relay_original_destination(RELAY_CONTEXT_WFPSAMPLER, ctx, 255, &a, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "256"));
	/* A family that is neither AF_INET nor AF_INET6 (10 is Linux's AF_INET6, not Windows'). */
	ctx[0] = 10;
	assert_int_equal(relay_original_destination(RELAY_CONTEXT_WFPSAMPLER, ctx, 256, &a, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "family"));
	/* A high byte in the family: not a small little-endian number. */
	ctx[0] = 2;
	ctx[1] = 1;
	assert_int_equal(relay_original_destination(RELAY_CONTEXT_WFPSAMPLER, ctx, 256, &a, why, sizeof(why)), -1);
	ctx[1] = 0;
	/* sin_zero must be zero in an AF_INET storage. */
	ctx[8] = 9;
	assert_int_equal(relay_original_destination(RELAY_CONTEXT_WFPSAMPLER, ctx, 256, &a, why, sizeof(why)), -1);
	ctx[8] = 0;
	/* The second storage is checked too. */
	ctx[128] = 99;
	assert_int_equal(relay_original_destination(RELAY_CONTEXT_WFPSAMPLER, ctx, 256, &a, why, sizeof(why)), -1);
	/* Port 0 is nowhere to connect to. */
	ctx[128] = 2;
	ctx[2] = ctx[3] = 0;
	assert_int_equal(relay_original_destination(RELAY_CONTEXT_WFPSAMPLER, ctx, 256, &a, why, sizeof(why)), -1);
}

static void
wfpb_hops(void **state)
{
	uint8_t			ctx[38] = { 0 };
	struct wfpb_addr	a;
	char			why[128];
	enum relay_context	k;

	(void)state;
	ctx[0] = WFPB_AF_INET;			/* hop 1: the original remote */
	ctx[1] = 192; ctx[2] = 0; ctx[3] = 2; ctx[4] = 1;
	ctx[17] = 0x9c; ctx[18] = 0x40;
	ctx[19] = WFPB_AF_INET;			/* hop 2: the original destination */
	ctx[20] = 127; ctx[23] = 1;
	ctx[36] = 0x1f; ctx[37] = 0x90;		/* 8080 */
	assert_int_equal(relay_original_destination(RELAY_CONTEXT_WFPB, ctx, sizeof(ctx), &a, why, sizeof(why)), 0);
	assert_int_equal(a.family, WFPB_AF_INET);
	assert_int_equal(a.addr[0], 127);
	assert_int_equal(a.port, 8080);
	assert_int_equal(relay_context_kind("auto", &k), 0);
	assert_int_equal(relay_original_destination(k, ctx, sizeof(ctx), &a, why, sizeof(why)), 0);
	assert_int_equal(a.port, 8080);
	ctx[19] = 5;
	assert_int_equal(relay_original_destination(RELAY_CONTEXT_WFPB, ctx, sizeof(ctx), &a, why, sizeof(why)), -1);
	assert_int_equal(relay_original_destination(RELAY_CONTEXT_WFPB, ctx, 37, &a, why, sizeof(why)), -1);
	/* auto refuses a length that is no known layout, and none never finds a destination. */
	assert_int_equal(relay_original_destination(k, ctx, 100, &a, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "100 bytes"));
	assert_int_equal(relay_context_kind("none", &k), 0);
	assert_int_equal(relay_original_destination(k, ctx, sizeof(ctx), &a, why, sizeof(why)), -1);
	assert_int_equal(relay_context_kind("ebpf", &k), -1);
	assert_int_equal(relay_original_destination(RELAY_CONTEXT_AUTO, NULL, 0, &a, why, sizeof(why)), -1);
}

/* Appends one WSACMSGHDR (64-bit layout) with len bytes of fill; returns the new end. */
static size_t
cmsg(uint8_t *buf, size_t at, uint64_t cmsg_len, int32_t level, int32_t type, size_t len, uint8_t fill)
{
	memcpy(buf + at, &cmsg_len, 8);
	memcpy(buf + at + 8, &level, 4);
	memcpy(buf + at + 12, &type, 4);
	memset(buf + at + 16, fill, len);
	return at + ((16 + len + 7) & ~(size_t)7);
}

/*
 * A flow's first datagram's control data, as WSARecvMsg lays it out: the records and the
 * context found at either level, other types stepped over; a header or data past the buffer,
 * a length shorter than its header, a type twice, or more than 16 KiB refused.
 */
static void
wfp_control_parsed_strictly(void **state)
{
	static uint8_t			buf[40000];
	struct wfpb_wfp_control		c;
	size_t				n;

	(void)state;
	n = cmsg(buf, 0, 16 + 4, 0, 19, 4, 0x11);		/* IP_PKTINFO-like: stepped over */
	n = cmsg(buf, n, 16 + 7, 0, 60, 7, 0x5a);		/* records, 7 bytes, padded to 8 */
	n = cmsg(buf, n, 16 + 256, 0, 70, 256, 0xc3);		/* context */
	assert_int_equal(wfpb__wfp_control_parse(buf, n, &c), 0);
	assert_int_equal(c.records_len, 7);
	assert_int_equal(c.records[0], 0x5a);
	assert_int_equal(c.records[6], 0x5a);
	assert_int_equal(c.context_len, 256);
	assert_int_equal(c.context[255], 0xc3);
	/* The IPv6 level; none at all; trailing padding shorter than a header. */
	n = cmsg(buf, 0, 16 + 3, 41, 60, 3, 1);
	assert_int_equal(wfpb__wfp_control_parse(buf, n + 5, &c), 0);
	assert_int_equal(c.records_len, 3);
	assert_null(c.context);
	assert_int_equal(wfpb__wfp_control_parse(buf, 0, &c), 0);
	assert_null(c.records);
	/* Hostile lengths: past the buffer, shorter than the header, the largest SIZE_T. */
	n = cmsg(buf, 0, 16 + 64, 0, 60, 8, 1);
	assert_int_equal(wfpb__wfp_control_parse(buf, 16 + 8, &c), WFPB_E_PROTOCOL);
	cmsg(buf, 0, 8, 0, 60, 0, 0);
	assert_int_equal(wfpb__wfp_control_parse(buf, 32, &c), WFPB_E_PROTOCOL);
	cmsg(buf, 0, UINT64_MAX, 0, 70, 0, 0);
	assert_int_equal(wfpb__wfp_control_parse(buf, 64, &c), WFPB_E_PROTOCOL);
	/* The same type twice: refused, whichever came first. */
	n = cmsg(buf, 0, 16 + 4, 0, 60, 4, 1);
	n = cmsg(buf, n, 16 + 4, 41, 60, 4, 2);
	assert_int_equal(wfpb__wfp_control_parse(buf, n, &c), WFPB_E_PROTOCOL);
	/* Past the limit: records of 16 KiB + 1. */
	n = cmsg(buf, 0, 16 + 16385, 0, 60, 16385, 1);
	assert_int_equal(wfpb__wfp_control_parse(buf, n, &c), WFPB_E_LIMIT);
	n = cmsg(buf, 0, 16 + 16384, 0, 60, 16384, 1);
	assert_int_equal(wfpb__wfp_control_parse(buf, n, &c), 0);
	assert_int_equal(c.records_len, 16384);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(wfpsampler_ipv4),
		cmocka_unit_test(wfpsampler_ipv6),
		cmocka_unit_test(wfpsampler_refuses_what_it_is_not),
		cmocka_unit_test(wfpb_hops),
		cmocka_unit_test(wfp_control_parsed_strictly),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
