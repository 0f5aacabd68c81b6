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

#endif
