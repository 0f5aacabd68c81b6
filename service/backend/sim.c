/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sim: a deterministic redirect backend for tests and demos on any platform
 * (Wine has no WFP). Records are a recognisable blob: "WFPS", version 1, a
 * hop count, a serial number, and for each hop the local address the
 * connection arrived on (the "original destination" a real redirect would
 * record). set_records parses the blob as strictly as a kernel would and
 * remembers how many it applied. The blob never leaves the broker's control
 * except to its owner, but it is parsed as hostile input all the same.
 */
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "status.h"

struct sim {
	uint64_t	serial;
	uint64_t	applied;
};

void *
wfpb_sim_new(void)
{
	return calloc(1, sizeof(struct sim));
}

void
wfpb_sim_free(void *ctx)
{
	free(ctx);
}

/* A sim record of one hop, the next serial: 0, or WFPB_ST_ENOBUFS. */
static int
sim_record(struct sim *sim, const struct wfpb_addr *hop, struct wfpb_buf *out)
{
	uint8_t	*p;
	int	i;

	if ((p = malloc(WFPB_SIM_HDR_LEN + WFPB_SIM_HOP_LEN)) == NULL)
		return WFPB_ST_ENOBUFS;
	memcpy(p, WFPB_SIM_MAGIC, 4);
	p[4] = 1;
	p[5] = 0;
	p[6] = 0;
	p[7] = 1;
	sim->serial++;
	for (i = 0; i < 8; i++)
		p[8 + i] = (uint8_t)(sim->serial >> (56 - 8 * i));
	wfpb__hop_put(p + WFPB_SIM_HDR_LEN, hop);
	out->data = p;
	out->len = WFPB_SIM_HDR_LEN + WFPB_SIM_HOP_LEN;
	return 0;
}

static int
sim_query_records(void *ctx, wfpb_sock s, struct wfpb_buf *out, int *os_err)
{
	struct wfpb_addr local;

	if (wfpb__net_addrs(s, NULL, &local, os_err) != 0)
		return wfpb__net_status(*os_err);
	return sim_record(ctx, &local, out);
}

static int
sim_query_context(void *ctx, wfpb_sock s, struct wfpb_buf *out, int *os_err)
{
	struct wfpb_addr	peer, local;
	uint8_t			*p;

	(void)ctx;
	if (wfpb__net_addrs(s, &peer, &local, os_err) != 0)
		return wfpb__net_status(*os_err);
	if ((p = malloc(2 * WFPB_SIM_HOP_LEN)) == NULL)
		return WFPB_ST_ENOBUFS;
	/* The original remote and local addresses, as a WFP callout commonly attaches them. */
	wfpb__hop_put(p, &peer);
	wfpb__hop_put(p + WFPB_SIM_HOP_LEN, &local);
	out->data = p;
	out->len = 2 * WFPB_SIM_HOP_LEN;
	return 0;
}

/* The sim context's second hop: the connection's local address, where it was going. */
static int
sim_original_dst(void *ctx, wfpb_sock s, const struct wfpb_buf *records, const struct wfpb_buf *context,
    struct wfpb_addr *out)
{
	(void)ctx;
	(void)s;
	(void)records;
	if (context->len != 2 * WFPB_SIM_HOP_LEN)
		return -1;
	return wfpb__hop_get(context->data + WFPB_SIM_HOP_LEN, out);
}

static int
sim_set_records(void *ctx, wfpb_sock s, const uint8_t *blob, size_t len, uint32_t own_mark,
    uint32_t mark_mask, int *os_err)
{
	struct sim	*sim = ctx;
	size_t		hops, i;

	(void)s;
	(void)own_mark;
	(void)mark_mask;
	*os_err = 0;
	if (len == 0)
		return 0;	/* a connection without records: nothing to apply */
	if (len < WFPB_SIM_HDR_LEN || memcmp(blob, WFPB_SIM_MAGIC, 4) != 0 || blob[4] != 1 || blob[5] != 0)
		return WFPB_ST_EINVAL;
	hops = ((size_t)blob[6] << 8) | blob[7];
	if (hops == 0 || hops > WFPB_SIM_HOPS_MAX || len != WFPB_SIM_HDR_LEN + hops * WFPB_SIM_HOP_LEN)
		return WFPB_ST_EINVAL;
	for (i = 0; i < hops; i++) {
		const uint8_t *h = blob + WFPB_SIM_HDR_LEN + i * WFPB_SIM_HOP_LEN;

		if (h[0] != WFPB_AF_INET && h[0] != WFPB_AF_INET6)
			return WFPB_ST_EINVAL;
		if (h[0] == WFPB_AF_INET && memcmp(h + 5, "\0\0\0\0\0\0\0\0\0\0\0\0", 12) != 0)
			return WFPB_ST_EINVAL;
	}
	sim->applied++;
	return 0;
}

static uint64_t
sim_records_applied(void *ctx)
{
	return ((struct sim *)ctx)->applied;
}

static int
sim_udp_listener(void *ctx, wfpb_sock s, int family, int *os_err)
{
	(void)ctx;
	(void)s;
	(void)family;
	(void)os_err;
	return 0;	/* no redirect to receive: a datagram is addressed to the listener itself */
}

/*
 * As a redirect would have it: the datagram "was going" where it arrived (the listener's own
 * address), its records a sim record of that hop, its context the sender and that hop.
 */
static int
sim_udp_receive(void *ctx, wfpb_sock s, uint8_t *buf, size_t cap, size_t *len, struct wfpb_addr *from,
    struct wfpb_addr *orig_dst, struct wfpb_buf *records, struct wfpb_buf *context, int *os_err)
{
	int rc;

	records->data = context->data = NULL;
	records->len = context->len = 0;
	if ((rc = wfpb__net_recvfrom(s, buf, cap, len, from, os_err)) != 0)
		return rc == WFPB_E_AGAIN ? rc : wfpb__net_status(*os_err);
	if (wfpb__net_addrs(s, NULL, orig_dst, os_err) != 0)
		return wfpb__net_status(*os_err);
	/* The caller frees what was made. */
	if (sim_record(ctx, orig_dst, records) != 0 || (context->data = malloc(2 * WFPB_SIM_HOP_LEN)) == NULL)
		return WFPB_ST_ENOBUFS;
	wfpb__hop_put(context->data, from);
	wfpb__hop_put(context->data + WFPB_SIM_HOP_LEN, orig_dst);
	context->len = 2 * WFPB_SIM_HOP_LEN;
	return 0;
}

/* Bound where the listener is (its address is local here), sharing it, and connected to the client. */
static int
sim_udp_reply(void *ctx, const struct wfpb_addr *orig_dst, const struct wfpb_addr *client, wfpb_sock *out,
    int *os_err)
{
	int rc;

	(void)ctx;
	if ((rc = wfpb__net_udp_socket(orig_dst->family, out, os_err)) != 0)
		return wfpb__net_status(*os_err);
	if (wfpb__net_reuseaddr(*out, os_err) != 0 || wfpb__net_bind(*out, orig_dst, os_err) != 0 ||
	    wfpb__net_connect(*out, client, os_err) != 0) {
		wfpb__net_close(*out);
		*out = WFPB_SOCK_NONE;
		return wfpb__net_status(*os_err);
	}
	return 0;
}

const struct wfpb_backend_ops wfpb_backend_sim = {
	.name = "sim",
	.query_records = sim_query_records,
	.query_context = sim_query_context,
	.set_records = sim_set_records,
	.records_applied = sim_records_applied,
	.original_dst = sim_original_dst,
	.udp_listener = sim_udp_listener,
	.udp_receive = sim_udp_receive,
	.udp_reply = sim_udp_reply,
};
