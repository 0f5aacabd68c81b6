/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wfp: the Windows Filtering Platform connection-redirect ioctls, performed
 * with the service's privileges on sockets the broker owns.
 *
 * mingw-w64 lacks the codes, so they are defined here. A query starts with a
 * 2048-byte buffer and grows while Winsock says it is too small, to
 * WFPB_REDIRECT_MAX at most: the size comes from a callout, and a callout
 * must not make the LocalSystem service allocate or answer without bound.
 * Microsoft documents ERROR_INSUFFICIENT_BUFFER with the needed size in
 * lpcbBytesReturned, and WSAEINVAL; both are handled (and WSAEFAULT and
 * WSAENOBUFS, in case), the returned size used when it says more than the
 * buffer. "No context" (FWP_E_NOT_FOUND) is an empty context, not an error.
 * The records must be set before bind or connect; core guarantees the order.
 */
#include <winsock2.h>
#include <ws2tcpip.h>
#include <mswsock.h>
#include <windows.h>

#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "wfp.h"
#include "status.h"


_Static_assert(SIO_QUERY_WFP_CONNECTION_REDIRECT_RECORDS == 0x980000DCu, "ioctl code");
_Static_assert(SIO_QUERY_WFP_CONNECTION_REDIRECT_CONTEXT == 0x980000DDu, "ioctl code");
_Static_assert(SIO_SET_WFP_CONNECTION_REDIRECT_RECORDS == 0x980000DEu, "ioctl code");

#define QUERY_FIRST	2048u

static wfpb_wsaioctl_fn ioctl_fn = WSAIoctl;
static wfpb_getsockopt_fn getsockopt_fn = getsockopt;
static wfpb_setsockopt_fn setsockopt_fn = setsockopt;
static wfpb_wsasendmsg_fn sendmsg_fn = WSASendMsg;

void
wfpb__wfp_set_setsockopt(wfpb_setsockopt_fn fn)
{
	setsockopt_fn = fn != NULL ? fn : setsockopt;
}

void
wfpb__wfp_set_sendmsg(wfpb_wsasendmsg_fn fn)
{
	sendmsg_fn = fn != NULL ? fn : WSASendMsg;
}

void
wfpb__wfp_set_ioctl(wfpb_wsaioctl_fn fn)
{
	ioctl_fn = fn != NULL ? fn : WSAIoctl;
}

void
wfpb__wfp_set_getsockopt(wfpb_getsockopt_fn fn)
{
	getsockopt_fn = fn != NULL ? fn : getsockopt;
}

struct wfp {
	volatile LONG64 applied;
};

/* Errors that mean "the buffer is too small" (WSAEINVAL only while the buffer can still grow). */
static int
too_small(int e)
{
	return e == WSAEFAULT || e == WSAENOBUFS || e == ERROR_INSUFFICIENT_BUFFER;
}

/*
 * The next buffer size after a too-small answer: the size the answer named
 * when it names a larger one, else four times the last; never past the cap.
 * 0 when the answer named more than the cap (a callout's oversized data).
 */
static DWORD
next_cap(DWORD cap, DWORD named)
{
	if (named > WFPB_REDIRECT_MAX)
		return 0;
	if (named > cap)
		return named;
	return cap >= WFPB_REDIRECT_MAX / 4 ? WFPB_REDIRECT_MAX : cap * 4;
}

static int
query(wfpb_sock s, DWORD code, int context, struct wfpb_buf *out, int *os_err)
{
	uint8_t	*buf = NULL, *p;
	DWORD	cap = QUERY_FIRST, got;
	int	e;

	out->data = NULL;
	out->len = 0;
	*os_err = 0;
	for (;;) {
		if ((p = realloc(buf, cap)) == NULL) {
			free(buf);
			return WFPB_ST_ENOBUFS;
		}
		buf = p;
		got = 0;
		if (ioctl_fn((SOCKET)s, code, NULL, 0, buf, cap, &got, NULL, NULL) == 0)
			break;
		e = WSAGetLastError();
		if ((too_small(e) || e == WSAEINVAL) && cap < WFPB_REDIRECT_MAX) {
			if ((cap = next_cap(cap, e == ERROR_INSUFFICIENT_BUFFER ? got : 0)) == 0) {
				free(buf);
				*os_err = e;
				return WFPB_ST_ENOBUFS;	/* the data named is past the cap */
			}
			continue;
		}
		free(buf);
		if (context && e == (int)FWP_E_NOT_FOUND)
			return 0;	/* the callout attached no context */
		*os_err = e;
		return too_small(e) ? WFPB_ST_ENOBUFS : wfpb__net_status(e);
	}
	if (got > cap) {
		free(buf);	/* it claims more than it could have written: not read past the buffer */
		return WFPB_ST_ENOBUFS;
	}
	if (got == 0) {
		free(buf);
		return 0;
	}
	out->data = buf;
	out->len = got;
	return 0;
}

static int
wfp_query_records(void *ctx, wfpb_sock s, struct wfpb_buf *out, int *os_err)
{
	(void)ctx;
	return query(s, SIO_QUERY_WFP_CONNECTION_REDIRECT_RECORDS, 0, out, os_err);
}

static int
wfp_query_context(void *ctx, wfpb_sock s, struct wfpb_buf *out, int *os_err)
{
	(void)ctx;
	return query(s, SIO_QUERY_WFP_CONNECTION_REDIRECT_CONTEXT, 1, out, os_err);
}

static int
wfp_set_records(void *ctx, wfpb_sock s, const uint8_t *blob, size_t len, uint32_t own_mark,
    uint32_t mark_mask, int *os_err)
{
	struct wfp	*w = ctx;
	DWORD		got = 0;

	(void)own_mark;
	(void)mark_mask;
	*os_err = 0;
	if (len == 0)
		return 0;	/* a connection without records: WFP has nothing to correlate */
	if (ioctl_fn((SOCKET)s, SIO_SET_WFP_CONNECTION_REDIRECT_RECORDS, (void *)(uintptr_t)blob, (DWORD)len, NULL,
	    0, &got, NULL, NULL) != 0) {
		*os_err = WSAGetLastError();
		return wfpb__net_status(*os_err);
	}
	InterlockedIncrement64(&w->applied);
	return 0;
}

static uint64_t
wfp_records_applied(void *ctx)
{
	return (uint64_t)((struct wfp *)ctx)->applied;
}

#define SO_ORIGINAL_DST_WIN	0x300F	/* ws2ipdef.h of recent SDKs; mingw-w64 lacks it */

/*
 * A SOCKADDR_STORAGE's address in Windows' layout, read as untrusted bytes (a callout
 * wrote them): family little-endian (AF_INET 2, AF_INET6 23), port in network order.
 */
static int
storage_addr(const uint8_t *p, size_t len, struct wfpb_addr *out)
{
	unsigned family;

	if (len < 8)
		return -1;
	family = (unsigned)p[0] | (unsigned)p[1] << 8;
	memset(out, 0, sizeof(*out));
	out->port = (uint16_t)(p[2] << 8 | p[3]);
	if (family == 2) {
		out->family = WFPB_AF_INET;
		memcpy(out->addr, p + 4, 4);
	} else if (family == 23 && len >= 24) {
		out->family = WFPB_AF_INET6;
		memcpy(out->addr, p + 8, 16);
	} else {
		return -1;
	}
	(void)wfpb_addr_canonical(out);
	return 0;
}

/*
 * Where the connection was going: SO_ORIGINAL_DST, which Windows Server 2022
 * and later answer on a connection the host networking service redirected;
 * else the first address of a context in Microsoft's WFPSampler layout
 * (docs/CALLOUTS.md). Another callout's layout is its own: none.
 */
static int
wfp_original_dst(void *ctx, wfpb_sock s, const struct wfpb_buf *records, const struct wfpb_buf *context,
    struct wfpb_addr *out)
{
	SOCKADDR_STORAGE	ss;
	int			len = sizeof(ss);

	(void)ctx;
	(void)records;
	memset(&ss, 0, sizeof(ss));
	if (s != WFPB_SOCK_NONE && getsockopt_fn((SOCKET)s, SOL_SOCKET, SO_ORIGINAL_DST_WIN, (char *)&ss, &len) == 0 &&
	    len > 0 && len <= (int)sizeof(ss) && storage_addr((const uint8_t *)&ss, (size_t)len, out) == 0)
		return 0;
	/* The layout is read as libwfpb reads it for a proxy, exactly (docs/CALLOUTS.md). */
	if (wfpb_context_original_dst(context->data, context->len, WFPB_CONTEXT_WFPSAMPLER, out, NULL, 0) != 0)
		return -1;
	(void)wfpb_addr_canonical(out);
	return 0;
}

/*
 * A UDP listener: IP_WFP_REDIRECT_RECORDS and IP_WFP_REDIRECT_CONTEXT enabled (at IPPROTO_IP,
 * or IPPROTO_IPV6 for an IPv6 socket), so that WSARecvMsg delivers a redirected flow's records
 * and context as control data of its first datagram. Both or the listener is refused: a proxy
 * that cannot see the records would carry every flow without them.
 */
static int
wfp_udp_listener(void *ctx, wfpb_sock s, int family, int *os_err)
{
	const int	level = family == WFPB_AF_INET6 ? IPPROTO_IPV6 : IPPROTO_IP;
	const DWORD	one = 1;

	(void)ctx;
	*os_err = 0;
	if (setsockopt_fn((SOCKET)s, level, WFPB_IP_WFP_REDIRECT_RECORDS, (const char *)&one, sizeof(one)) != 0 ||
	    setsockopt_fn((SOCKET)s, level, WFPB_IP_WFP_REDIRECT_CONTEXT, (const char *)&one, sizeof(one)) != 0) {
		*os_err = WSAGetLastError();
		return wfpb__net_status(*os_err);
	}
	return 0;
}

/*
 * A flow's first datagram on connected upstream s, its records (if any) as one control message
 * of type IP_WFP_REDIRECT_RECORDS at the socket's level: WFP relates the flow to the one it
 * redirected only through that datagram. The control buffer is sized for the records exactly
 * (WSA_CMSG_SPACE), never past WFPB_REDIRECT_MAX, which core enforces before.
 */
static int
wfp_udp_send_first(void *ctx, wfpb_sock s, const uint8_t *payload, size_t len, const uint8_t *records,
    size_t records_len, int *os_err)
{
	struct wfp		*w = ctx;
	SOCKADDR_STORAGE	ss;
	WSAMSG			msg;
	WSABUF			data;
	WSACMSGHDR		*c;
	char			*ctl = NULL;
	DWORD			sent = 0;
	int			sslen = sizeof(ss);

	*os_err = 0;
	if (len > WFPB_REDIRECT_MAX || records_len > WFPB_REDIRECT_MAX)
		return WFPB_ST_EINVAL;
	memset(&msg, 0, sizeof(msg));
	data.buf = (char *)(uintptr_t)payload;
	data.len = (ULONG)len;
	msg.lpBuffers = &data;
	msg.dwBufferCount = 1;
	if (records_len > 0) {
		if (getsockname((SOCKET)s, (struct sockaddr *)&ss, &sslen) != 0) {
			*os_err = WSAGetLastError();
			return wfpb__net_status(*os_err);
		}
		if ((ctl = calloc(1, WSA_CMSG_SPACE(records_len))) == NULL)
			return WFPB_ST_ENOBUFS;
		msg.Control.buf = ctl;
		msg.Control.len = (ULONG)WSA_CMSG_SPACE(records_len);
		c = WSA_CMSG_FIRSTHDR(&msg);
		c->cmsg_level = ss.ss_family == AF_INET6 ? IPPROTO_IPV6 : IPPROTO_IP;
		c->cmsg_type = WFPB_IP_WFP_REDIRECT_RECORDS;
		c->cmsg_len = WSA_CMSG_LEN(records_len);
		memcpy(WSA_CMSG_DATA(c), records, records_len);
	}
	if (sendmsg_fn((SOCKET)s, &msg, 0, &sent, NULL, NULL) != 0) {
		*os_err = WSAGetLastError();
		free(ctl);
		return wfpb__net_status(*os_err);
	}
	free(ctl);
	if (records_len > 0)
		InterlockedIncrement64(&w->applied);
	return 0;
}

const struct wfpb_backend_ops wfpb_backend_wfp = {
	.name = "wfp",
	.query_records = wfp_query_records,
	.query_context = wfp_query_context,
	.set_records = wfp_set_records,
	.records_applied = wfp_records_applied,
	.original_dst = wfp_original_dst,
	.udp_listener = wfp_udp_listener,
	.udp_on_listener = 1,
	.udp_send_first = wfp_udp_send_first,
};

const struct wfpb_backend_ops *
wfpb__platform_backend(const char *name, void **ctx)
{
	if (strcmp(name, "wfp") != 0)
		return NULL;
	if ((*ctx = calloc(1, sizeof(struct wfp))) == NULL)
		return NULL;
	return &wfpb_backend_wfp;
}
