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

static int
sim_query_records(void *ctx, wfpb_sock s, struct wfpb_buf *out, int *os_err)
{
	struct sim		*sim = ctx;
	struct wfpb_addr	local;
	uint8_t			*p;
	int			i;

	if (wfpb__net_addrs(s, NULL, &local, os_err) != 0)
		return wfpb__net_status(*os_err);
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
	wfpb__hop_put(p + WFPB_SIM_HDR_LEN, &local);
	out->data = p;
	out->len = WFPB_SIM_HDR_LEN + WFPB_SIM_HOP_LEN;
	return 0;
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

const struct wfpb_backend_ops wfpb_backend_sim = {
	.name = "sim",
	.query_records = sim_query_records,
	.query_context = sim_query_context,
	.set_records = sim_set_records,
	.records_applied = sim_records_applied,
	.original_dst = sim_original_dst,
};
