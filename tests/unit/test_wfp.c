/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The wfp backend (Windows build). Real WSAIoctl on a real socket: whatever
 * the platform answers (Wine: WSAEOPNOTSUPP; Windows without a redirect:
 * WSAEACCES or WSAEINVAL) surfaces as its Status with the WSA code kept.
 * Buffer growth, "no context" and error mapping are driven by named fakes of
 * WSAIoctl, since no platform here produces redirect records.
 */
#include <winsock2.h>
#include <ws2tcpip.h>
#include <mswsock.h>
#include <windows.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "wfp.h"
#include "wfpbroker.pb-c.h"

static DWORD	fake_size;		/* bytes the fake "records" have */
static int	fake_error;		/* WSA error the fake reports */
static DWORD	largest_buffer;		/* the largest output buffer the backend offered */

static int WSAAPI
fake_records_of_size(SOCKET s, DWORD code, LPVOID in, DWORD inlen, LPVOID out, DWORD outlen, LPDWORD ret,
    LPWSAOVERLAPPED ov, LPWSAOVERLAPPED_COMPLETION_ROUTINE cr)
{
	(void)s; (void)code; (void)in; (void)inlen; (void)ov; (void)cr;
	if (outlen > largest_buffer)
		largest_buffer = outlen;
	if (outlen < fake_size) {
		WSASetLastError(fake_error);
		return SOCKET_ERROR;
	}
	memset(out, 0x5a, fake_size);
	*ret = fake_size;
	return 0;
}

/* Answers every query "too small" with the size it needs in *ret, as Microsoft documents: a callout chose it. */
static DWORD	fake_needed;

static int WSAAPI
fake_needs(SOCKET s, DWORD code, LPVOID in, DWORD inlen, LPVOID out, DWORD outlen, LPDWORD ret,
    LPWSAOVERLAPPED ov, LPWSAOVERLAPPED_COMPLETION_ROUTINE cr)
{
	(void)s; (void)code; (void)in; (void)inlen; (void)ov; (void)cr;
	if (outlen > largest_buffer)
		largest_buffer = outlen;
	if (outlen < fake_needed) {
		*ret = fake_needed;
		WSASetLastError(fake_error);
		return SOCKET_ERROR;
	}
	memset(out, 0x5a, fake_needed);
	*ret = fake_needed;
	return 0;
}

/* Claims to have written more than the buffer it was given. */
static int WSAAPI
fake_overstates(SOCKET s, DWORD code, LPVOID in, DWORD inlen, LPVOID out, DWORD outlen, LPDWORD ret,
    LPWSAOVERLAPPED ov, LPWSAOVERLAPPED_COMPLETION_ROUTINE cr)
{
	(void)s; (void)code; (void)in; (void)inlen; (void)out; (void)ov; (void)cr;
	*ret = outlen + 100;
	return 0;
}

static int WSAAPI
fake_fails_with(SOCKET s, DWORD code, LPVOID in, DWORD inlen, LPVOID out, DWORD outlen, LPDWORD ret,
    LPWSAOVERLAPPED ov, LPWSAOVERLAPPED_COMPLETION_ROUTINE cr)
{
	(void)s; (void)code; (void)in; (void)inlen; (void)out; (void)outlen; (void)ret; (void)ov; (void)cr;
	WSASetLastError(fake_error);
	return SOCKET_ERROR;
}

static int
setup(void **state)
{
	WSADATA wsa;

	(void)state;
	return WSAStartup(MAKEWORD(2, 2), &wsa) == 0 ? 0 : -1;
}

static void
real_ioctl_errors_surface_as_statuses(void **state)
{
	struct wfpb_buf	out = { 0 };
	SOCKET		s = socket(AF_INET, SOCK_STREAM, 0);
	int		os_err = 0, code;

	(void)state;
	assert_true(s != INVALID_SOCKET);
	wfpb__wfp_set_ioctl(NULL);
	code = wfpb_backend_wfp.query_records(NULL, (wfpb_sock)s, &out, &os_err);
	/* An unconnected, unredirected socket has no records: every platform refuses. */
	assert_int_not_equal(code, 0);
	assert_int_not_equal(os_err, 0);
	assert_int_equal(code, wfpb__net_status(os_err));
	assert_null(out.data);
	print_message("query_records on this platform: WSA error %d -> status %d\n", os_err, code);
	closesocket(s);
}

static void
query_grows_the_buffer(void **state)
{
	static const int	errors[] = { WSAEFAULT, WSAENOBUFS, ERROR_INSUFFICIENT_BUFFER };
	struct wfpb_buf		out;
	int			os_err, i;

	(void)state;
	wfpb__wfp_set_ioctl(fake_records_of_size);
	for (i = 0; i < 3; i++) {
		fake_size = 5000;
		fake_error = errors[i];
		largest_buffer = 0;
		assert_int_equal(wfpb_backend_wfp.query_records(NULL, 1, &out, &os_err), 0);
		assert_int_equal(out.len, 5000);
		assert_int_equal(out.data[4999], 0x5a);
		/* 2048, then x4 (ERROR_INSUFFICIENT_BUFFER here names no size: the fake leaves *ret alone) */
		assert_int_equal(largest_buffer, 8192);
		free(out.data);
	}
	/* Records larger than the cap: ENOBUFS, never an unbounded allocation. */
	fake_size = 1u << 20;
	fake_error = WSAEFAULT;
	largest_buffer = 0;
	assert_int_equal(wfpb_backend_wfp.query_records(NULL, 1, &out, &os_err),
	    WFPBROKER__V1__STATUS_CODE__ENOBUFS);
	assert_true(largest_buffer <= WFPB_REDIRECT_MAX);
	assert_null(out.data);
	wfpb__wfp_set_ioctl(NULL);
}

/*
 * The sizes a callout and the kernel choose are bounded, and none reaches an
 * allocation past the cap or an abort: a 1 MiB context is ENOBUFS at once,
 * a size returned with ERROR_INSUFFICIENT_BUFFER is used rather than guessed,
 * WSAEINVAL (Microsoft's other too-small answer) grows the buffer too, and a
 * returned length past the buffer is refused.
 */
static void
sizes_are_bounded_and_taken_from_the_answer(void **state)
{
	struct wfpb_buf	out;
	int		os_err;

	(void)state;
	wfpb__wfp_set_ioctl(fake_needs);
	fake_error = ERROR_INSUFFICIENT_BUFFER;
	fake_needed = 1u << 20;
	largest_buffer = 0;
	assert_int_equal(wfpb_backend_wfp.query_context(NULL, 1, &out, &os_err), WFPBROKER__V1__STATUS_CODE__ENOBUFS);
	assert_null(out.data);
	assert_true(largest_buffer <= WFPB_REDIRECT_MAX);
	/* The needed size is used directly: 2048, then 3000, not 8192. */
	fake_needed = 3000;
	largest_buffer = 0;
	assert_int_equal(wfpb_backend_wfp.query_records(NULL, 1, &out, &os_err), 0);
	assert_int_equal(out.len, 3000);
	assert_int_equal(largest_buffer, 3000);
	free(out.data);
	/* WSAEINVAL: grows too, to the cap at most. */
	fake_error = WSAEINVAL;
	fake_needed = 10000;
	largest_buffer = 0;
	assert_int_equal(wfpb_backend_wfp.query_records(NULL, 1, &out, &os_err), 0);
	assert_int_equal(out.len, 10000);
	free(out.data);
	fake_needed = WFPB_REDIRECT_MAX + 1;
	assert_int_equal(wfpb_backend_wfp.query_records(NULL, 1, &out, &os_err), WFPBROKER__V1__STATUS_CODE__EINVAL);
	assert_null(out.data);
	/* An answer that claims more than the buffer holds is not read past its end. */
	wfpb__wfp_set_ioctl(fake_overstates);
	assert_int_equal(wfpb_backend_wfp.query_records(NULL, 1, &out, &os_err), WFPBROKER__V1__STATUS_CODE__ENOBUFS);
	assert_null(out.data);
	wfpb__wfp_set_ioctl(NULL);
}

static void
no_context_is_not_an_error(void **state)
{
	struct wfpb_buf	out;
	int		os_err;

	(void)state;
	wfpb__wfp_set_ioctl(fake_fails_with);
	fake_error = (int)FWP_E_NOT_FOUND;
	assert_int_equal(wfpb_backend_wfp.query_context(NULL, 1, &out, &os_err), 0);
	assert_int_equal(out.len, 0);
	/* For records, the same answer is an error. */
	assert_int_not_equal(wfpb_backend_wfp.query_records(NULL, 1, &out, &os_err), 0);
	wfpb__wfp_set_ioctl(NULL);
}

static void
set_maps_errors_and_counts(void **state)
{
	struct wfpb_backend	be;
	int			os_err;

	(void)state;
	assert_int_equal(wfpb_backend_open("wfp", &be), 0);
	wfpb__wfp_set_ioctl(fake_fails_with);
	fake_error = WSAEACCES;
	assert_int_equal(be.ops->set_records(be.ctx, 1, (const uint8_t *)"r", 1, 0, 0xffffffffu, &os_err),
	    WFPBROKER__V1__STATUS_CODE__EACCES);
	assert_int_equal(os_err, WSAEACCES);
	fake_error = WSAEINVAL;
	assert_int_equal(be.ops->set_records(be.ctx, 1, (const uint8_t *)"r", 1, 0, 0xffffffffu, &os_err),
	    WFPBROKER__V1__STATUS_CODE__EINVAL);
	assert_int_equal(be.ops->records_applied(be.ctx), 0);
	wfpb__wfp_set_ioctl(fake_records_of_size);
	fake_size = 0;
	assert_int_equal(be.ops->set_records(be.ctx, 1, (const uint8_t *)"r", 1, 0, 0xffffffffu, &os_err), 0);
	assert_int_equal(be.ops->records_applied(be.ctx), 1);
	wfpb__wfp_set_ioctl(NULL);
	wfpb_backend_close(&be);
}

/* Windows Server 2022 and later: SO_ORIGINAL_DST on a connection the host networking service redirected. */
static int WSAAPI
fake_original_dst(SOCKET s, int level, int name, char *val, int *len)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(443) };

	(void)s;
	if (level != SOL_SOCKET || name != 0x300F || *len < (int)sizeof(sin)) {
		WSASetLastError(WSAENOPROTOOPT);
		return SOCKET_ERROR;
	}
	sin.sin_addr.s_addr = htonl(0xCB007107);	/* 203.0.113.7 */
	memcpy(val, &sin, sizeof(sin));
	*len = sizeof(sin);
	return 0;
}

/* A Windows that does not know the option. */
static int WSAAPI
no_original_dst(SOCKET s, int level, int name, char *val, int *len)
{
	(void)s;
	(void)level;
	(void)name;
	(void)val;
	(void)len;
	WSASetLastError(WSAENOPROTOOPT);
	return SOCKET_ERROR;
}

/*
 * The original destination where Windows itself knows it (SO_ORIGINAL_DST), and
 * otherwise from a context of Microsoft's WFPSampler layout; from neither, none.
 */
static void
original_destination_from_the_os_then_the_context(void **state)
{
	struct wfpb_buf		none = { NULL, 0 }, ctx;
	uint8_t			sampler[256];
	struct wfpb_addr	out;
	SOCKET			s = socket(AF_INET, SOCK_STREAM, 0);

	(void)state;
	assert_non_null(wfpb_backend_wfp.original_dst);
	wfpb__wfp_set_getsockopt(fake_original_dst);
	memset(&out, 0, sizeof(out));
	assert_int_equal(wfpb_backend_wfp.original_dst(NULL, (wfpb_sock)s, &none, &none, &out), 0);
	assert_int_equal(out.family, WFPB_AF_INET);
	assert_int_equal(out.port, 443);
	assert_memory_equal(out.addr, "\xcb\x00\x71\x07", 4);
	/* Not answered: a WFPSampler context (two SOCKADDR_STORAGE, the original remote first). */
	wfpb__wfp_set_getsockopt(no_original_dst);
	memset(sampler, 0, sizeof(sampler));
	sampler[0] = 23;			/* AF_INET6, little-endian */
	sampler[2] = 0x1f;			/* port 8080, network order */
	sampler[3] = 0x90;
	sampler[8] = 0x20;			/* 2001:db8::5 */
	sampler[9] = 0x01;
	sampler[10] = 0x0d;
	sampler[11] = 0xb8;
	sampler[23] = 0x05;
	sampler[128] = 23;			/* the local side: [::1]:50000 */
	sampler[130] = 0xc3;
	sampler[131] = 0x50;
	sampler[128 + 23] = 0x01;
	ctx.data = sampler;
	ctx.len = sizeof(sampler);
	memset(&out, 0, sizeof(out));
	assert_int_equal(wfpb_backend_wfp.original_dst(NULL, (wfpb_sock)s, &none, &ctx, &out), 0);
	assert_int_equal(out.family, WFPB_AF_INET6);
	assert_int_equal(out.port, 8080);
	assert_int_equal(out.addr[0], 0x20);
	assert_int_equal(out.addr[15], 0x05);
	/* A family it does not know, a length that is not the layout's, no context: none. */
	sampler[0] = 99;
	assert_int_equal(wfpb_backend_wfp.original_dst(NULL, (wfpb_sock)s, &none, &ctx, &out), -1);
	ctx.len = 255;
	assert_int_equal(wfpb_backend_wfp.original_dst(NULL, (wfpb_sock)s, &none, &ctx, &out), -1);
	assert_int_equal(wfpb_backend_wfp.original_dst(NULL, (wfpb_sock)s, &none, &none, &out), -1);
	wfpb__wfp_set_getsockopt(NULL);
	closesocket(s);
}

/* The levels the IPv6 forms go to: each redirect option, and the control message's. */
static int	v6_levels[3], v6_nlevels;

static int WSAAPI
level_setsockopt(SOCKET s, int level, int name, const char *val, int len)
{
	(void)s; (void)name; (void)val; (void)len;
	if (v6_nlevels < 3)
		v6_levels[v6_nlevels++] = level;
	return 0;
}

static int WSAAPI
level_sendmsg(SOCKET s, LPWSAMSG msg, DWORD flags, LPDWORD sent, LPWSAOVERLAPPED ov,
    LPWSAOVERLAPPED_COMPLETION_ROUTINE cr)
{
	(void)s; (void)flags; (void)ov; (void)cr;
	if (v6_nlevels < 3 && msg->Control.len >= WSA_CMSG_LEN(0))
		v6_levels[v6_nlevels++] = WSA_CMSG_FIRSTHDR(msg)->cmsg_level;
	*sent = msg->lpBuffers[0].len;
	return 0;
}

/*
 * An IPv6 UDP listener enables the options at IPPROTO_IPV6 (the IPV6_ forms), and an IPv6
 * upstream's records go at IPPROTO_IPV6 too; a flow's first datagram without records
 * carries no control data, and one past the limit is refused before Winsock.
 */
static void
udp_ipv6_forms_and_bounds(void **state)
{
	struct sockaddr_in6	sin6 = { .sin6_family = AF_INET6 };
	static uint8_t		big[WFPB_REDIRECT_MAX + 1];
	void			*ctx = NULL;
	SOCKET			s = socket(AF_INET6, SOCK_DGRAM, IPPROTO_UDP);
	int			os_err = 0;

	(void)state;
	assert_true(s != INVALID_SOCKET);
	sin6.sin6_addr = in6addr_loopback;
	assert_int_equal(bind(s, (struct sockaddr *)&sin6, sizeof(sin6)), 0);
	assert_non_null(wfpb__platform_backend("wfp", &ctx));
	wfpb__wfp_set_setsockopt(level_setsockopt);
	wfpb__wfp_set_sendmsg(level_sendmsg);
	assert_int_equal(wfpb_backend_wfp.udp_listener(ctx, (wfpb_sock)s, WFPB_AF_INET6, &os_err), 0);
	assert_int_equal(wfpb_backend_wfp.udp_send_first(ctx, (wfpb_sock)s, (const uint8_t *)"q", 1,
	    (const uint8_t *)"records", 7, &os_err), 0);
	assert_int_equal(v6_nlevels, 3);
	assert_int_equal(v6_levels[0], IPPROTO_IPV6);
	assert_int_equal(v6_levels[1], IPPROTO_IPV6);
	assert_int_equal(v6_levels[2], IPPROTO_IPV6);
	assert_int_equal(wfpb_backend_wfp.records_applied(ctx), 1);
	/* Without records: no control message at all, and nothing counted as applied. */
	assert_int_equal(wfpb_backend_wfp.udp_send_first(ctx, (wfpb_sock)s, (const uint8_t *)"q", 1, NULL, 0, &os_err),
	    0);
	assert_int_equal(v6_nlevels, 3);
	assert_int_equal(wfpb_backend_wfp.records_applied(ctx), 1);
	assert_int_equal(wfpb_backend_wfp.udp_send_first(ctx, (wfpb_sock)s, (const uint8_t *)"q", 1, big, sizeof(big),
	    &os_err), WFPBROKER__V1__STATUS_CODE__EINVAL);
	wfpb__wfp_set_setsockopt(NULL);
	wfpb__wfp_set_sendmsg(NULL);
	free(ctx);
	closesocket(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(real_ioctl_errors_surface_as_statuses),
		cmocka_unit_test(query_grows_the_buffer),
		cmocka_unit_test(sizes_are_bounded_and_taken_from_the_answer),
		cmocka_unit_test(no_context_is_not_an_error),
		cmocka_unit_test(set_maps_errors_and_counts),
		cmocka_unit_test(original_destination_from_the_os_then_the_context),
		cmocka_unit_test(udp_ipv6_forms_and_bounds),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
