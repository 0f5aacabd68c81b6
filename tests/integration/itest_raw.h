/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A raw session for the integration tests (broker-test, hostile-test): the
 * transport and a client channel used directly, to send what a well-behaved
 * client would not. Reads are buffered: several frames may arrive in one read,
 * and each event is returned in turn.
 */
#ifndef WFPB_ITEST_RAW_H
#define WFPB_ITEST_RAW_H

#include <stdio.h>
#include <string.h>

#include "channel.h"
#include "transport.h"
#include "wfpbroker.pb-c.h"

struct itest_raw {
	struct wfpb_transport	*t;
	struct wfpb_channel	ch;
	int			started;	/* ch was started and must be freed */
	uint8_t			buf[65536];	/* bytes read and not yet fed */
	size_t			off, len;
};

static inline int
itest_raw_connect(struct itest_raw *r, const char *endpoint)
{
	char err[256];

	r->t = NULL;
	r->started = 0;
	r->off = r->len = 0;
	memset(&r->ch, 0, sizeof(r->ch));
	if (wfpb__transport_connect(endpoint, 5000, &r->t, err, sizeof(err)) != 0) {
		printf("  connect: %s\n", err);
		return -1;
	}
	return 0;
}

static inline void
itest_raw_close(struct itest_raw *r)
{
	wfpb__transport_close(r->t);
	r->t = NULL;
	if (r->started)
		wfpb_channel_free(&r->ch);
	r->started = 0;
}

static inline int
itest_raw_write(struct itest_raw *r, const void *p, size_t len)
{
	return wfpb__transport_write(r->t, p, len, 5000);
}

/* Writes what the channel queued; written before it is marked done, which may free the buffer. */
static inline int
itest_raw_flush(struct itest_raw *r)
{
	const uint8_t	*p;
	size_t		len;
	int		rc;

	if ((p = wfpb_channel_output(&r->ch, &len)) == NULL)
		return 0;
	rc = itest_raw_write(r, p, len);
	wfpb_channel_output_done(&r->ch, len);
	return rc;
}

/* The next channel event, or a negative code from the transport. */
static inline int
itest_raw_event(struct itest_raw *r, uint32_t timeout_ms)
{
	size_t	used;
	int	rc, ev;

	for (;;) {
		while (r->off < r->len) {
			ev = wfpb_channel_feed(&r->ch, r->buf + r->off, r->len - r->off, &used);
			r->off += used;
			if (ev != WFPB_CHANNEL_MORE)
				return ev;
		}
		r->off = r->len = 0;
		if ((rc = wfpb__transport_read(r->t, r->buf, sizeof(r->buf), &r->len, timeout_ms)) != 0)
			return rc;
	}
}

/* Connects and completes an NK handshake to the pinned key. */
static inline int
itest_raw_establish(struct itest_raw *r, const char *endpoint, const uint8_t *server_pub)
{
	if (itest_raw_connect(r, endpoint) != 0)
		return -1;
	if (wfpb_channel_client_start(&r->ch, server_pub, NULL) != 0)
		return -1;
	r->started = 1;
	if (itest_raw_flush(r) != 0)
		return -1;
	return itest_raw_event(r, 5000) == WFPB_CHANNEL_ESTABLISHED ? 0 : -1;
}

/* Packs, encrypts and writes one request. */
static inline int
itest_raw_request(struct itest_raw *r, Wfpbroker__V1__Request *rq)
{
	static uint8_t	buf[65535];
	size_t		len = wfpbroker__v1__request__get_packed_size(rq);

	if (len > sizeof(buf))
		return -1;
	wfpbroker__v1__request__pack(rq, buf);
	if (wfpb_channel_send(&r->ch, buf, len) != 0)
		return -1;
	return itest_raw_flush(r);
}

/*
 * The reader that never reads: on an established session, stashes a 16 KiB
 * blob, then writes up to max Fetch requests for it without reading a single
 * answer, and stops at the first write that cannot finish within
 * write_ms (the broker stopped reading). Returns how many were written, or -1
 * when the stash itself failed.
 */
static inline long
itest_raw_fetch_flood(struct itest_raw *r, unsigned max, uint32_t write_ms)
{
	Wfpbroker__V1__Request		rq = WFPBROKER__V1__REQUEST__INIT;
	Wfpbroker__V1__StashRequest	st = WFPBROKER__V1__STASH_REQUEST__INIT;
	Wfpbroker__V1__FetchRequest	fe = WFPBROKER__V1__FETCH_REQUEST__INIT;
	Wfpbroker__V1__StashHandle	h = WFPBROKER__V1__STASH_HANDLE__INIT;
	Wfpbroker__V1__Response		*resp;
	static uint8_t			blob[16384];
	uint8_t				buf[512], id[16];
	const uint8_t			*m, *p;
	size_t				len, mlen;
	unsigned			i;
	int				rc;

	memset(blob, 0x5a, sizeof(blob));
	st.blob.data = blob;
	st.blob.len = sizeof(blob);
	rq.request_id = 1;
	rq.op_case = WFPBROKER__V1__REQUEST__OP_STASH;
	rq.stash = &st;
	if (itest_raw_request(r, &rq) != 0 || itest_raw_event(r, 5000) != WFPB_CHANNEL_MESSAGE)
		return -1;
	m = wfpb_channel_message(&r->ch, &mlen);
	if ((resp = wfpbroker__v1__response__unpack(NULL, mlen, m)) == NULL)
		return -1;
	rc = resp->stash != NULL && resp->stash->handle != NULL && resp->stash->handle->id.len == 16;
	if (rc)
		memcpy(id, resp->stash->handle->id.data, 16);
	wfpbroker__v1__response__free_unpacked(resp, NULL);
	if (!rc)
		return -1;
	h.id.data = id;
	h.id.len = 16;
	fe.handle = &h;
	rq.op_case = WFPBROKER__V1__REQUEST__OP_FETCH;
	rq.fetch = &fe;
	for (i = 0; i < max; i++) {
		rq.request_id = 2 + i;
		len = wfpbroker__v1__request__get_packed_size(&rq);
		wfpbroker__v1__request__pack(&rq, buf);
		if (wfpb_channel_send(&r->ch, buf, len) != 0 || (p = wfpb_channel_output(&r->ch, &len)) == NULL)
			break;
		rc = wfpb__transport_write(r->t, p, len, write_ms);
		wfpb_channel_output_done(&r->ch, len);
		if (rc != 0)
			break;
	}
	return (long)i;
}

#endif
