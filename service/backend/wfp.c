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
#include <windows.h>

#include <stdlib.h>
#include <string.h>

#include "wfp.h"
#include "status.h"


_Static_assert(SIO_QUERY_WFP_CONNECTION_REDIRECT_RECORDS == 0x980000DCu, "ioctl code");
_Static_assert(SIO_QUERY_WFP_CONNECTION_REDIRECT_CONTEXT == 0x980000DDu, "ioctl code");
_Static_assert(SIO_SET_WFP_CONNECTION_REDIRECT_RECORDS == 0x980000DEu, "ioctl code");

#define QUERY_FIRST	2048u

static wfpb_wsaioctl_fn ioctl_fn = WSAIoctl;

void
wfpb__wfp_set_ioctl(wfpb_wsaioctl_fn fn)
{
	ioctl_fn = fn != NULL ? fn : WSAIoctl;
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

const struct wfpb_backend_ops wfpb_backend_wfp = {
	.name = "wfp",
	.query_records = wfp_query_records,
	.query_context = wfp_query_context,
	.set_records = wfp_set_records,
	.records_applied = wfp_records_applied,
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
