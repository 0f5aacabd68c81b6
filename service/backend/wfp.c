/*
 * wfp: the Windows Filtering Platform connection-redirect ioctls, performed
 * with the service's privileges on sockets the broker owns.
 *
 * mingw-w64 lacks the codes, so they are defined here. A query starts with a
 * 2048-byte buffer and grows (x4, up to 64 KiB) while Winsock says it is too
 * small — which error it uses for that is one of the questions only real
 * Windows answers, so all three candidates are accepted. "No context"
 * (FWP_E_NOT_FOUND) is an empty context, not an error. The records must be
 * set before bind or connect; core guarantees the order.
 */
#include <winsock2.h>
#include <windows.h>

#include <stdlib.h>
#include <string.h>

#include "wfp.h"
#include "wfpbroker.pb-c.h"

#ifndef SIO_QUERY_WFP_CONNECTION_REDIRECT_RECORDS
#define SIO_QUERY_WFP_CONNECTION_REDIRECT_RECORDS	_WSAIOW(IOC_VENDOR, 220)
#endif
#ifndef SIO_QUERY_WFP_CONNECTION_REDIRECT_CONTEXT
#define SIO_QUERY_WFP_CONNECTION_REDIRECT_CONTEXT	_WSAIOW(IOC_VENDOR, 221)
#endif
#ifndef SIO_SET_WFP_CONNECTION_REDIRECT_RECORDS
#define SIO_SET_WFP_CONNECTION_REDIRECT_RECORDS		_WSAIOW(IOC_VENDOR, 222)
#endif

_Static_assert(SIO_QUERY_WFP_CONNECTION_REDIRECT_RECORDS == 0x980000DCu, "ioctl code");
_Static_assert(SIO_QUERY_WFP_CONNECTION_REDIRECT_CONTEXT == 0x980000DDu, "ioctl code");
_Static_assert(SIO_SET_WFP_CONNECTION_REDIRECT_RECORDS == 0x980000DEu, "ioctl code");

#define QUERY_FIRST	2048u
#define QUERY_MAX	(64u * 1024u)

static wfpb_wsaioctl_fn ioctl_fn = WSAIoctl;

void
wfpb__wfp_set_ioctl(wfpb_wsaioctl_fn fn)
{
	ioctl_fn = fn != NULL ? fn : WSAIoctl;
}

struct wfp {
	volatile LONG64 applied;
};

static int
too_small(int e)
{
	return e == WSAEFAULT || e == WSAENOBUFS || e == ERROR_INSUFFICIENT_BUFFER;
}

static int
query(wfpb_sock s, DWORD code, int context, struct wfpb_buf *out, int *os_err)
{
	uint8_t	*buf = NULL, *p;
	DWORD	cap = QUERY_FIRST, got = 0;
	int	e;

	out->data = NULL;
	out->len = 0;
	*os_err = 0;
	for (;;) {
		if ((p = realloc(buf, cap)) == NULL) {
			free(buf);
			return WFPBROKER__V1__STATUS_CODE__ENOBUFS;
		}
		buf = p;
		if (ioctl_fn((SOCKET)s, code, NULL, 0, buf, cap, &got, NULL, NULL) == 0)
			break;
		e = WSAGetLastError();
		if (too_small(e) && cap < QUERY_MAX) {
			cap *= 4;
			continue;
		}
		free(buf);
		if (context && e == (int)FWP_E_NOT_FOUND)
			return 0;	/* the callout attached no context */
		*os_err = e;
		return too_small(e) ? WFPBROKER__V1__STATUS_CODE__ENOBUFS : wfpb__net_status(e);
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
