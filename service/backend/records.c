/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Record and context encodings shared by the backends, as plain bytes with no
 * OS headers so tests and fuzzers use the same code on every platform.
 *
 * A hop (context entries, sim records): family 1, address 16, port 2 (BE).
 * A netfilter record: "WFPN", version 1, family 1, reserved 2 (zero), the
 * accumulated mark 4 (BE), the original destination's address 16 and port
 * 2 (BE); WFPB_NF_RECORD_LEN bytes exactly.
 */
#include <string.h>

#include "backend.h"
#include "status.h"

void
wfpb__hop_put(uint8_t *p, const struct wfpb_addr *a)
{
	p[0] = (uint8_t)a->family;
	memcpy(p + 1, a->addr, 16);
	p[17] = (uint8_t)(a->port >> 8);
	p[18] = (uint8_t)a->port;
}

int
wfpb__hop_get(const uint8_t *p, struct wfpb_addr *a)
{
	static const uint8_t zero[12];

	if ((p[0] != WFPB_AF_INET && p[0] != WFPB_AF_INET6) || (p[0] == WFPB_AF_INET && memcmp(p + 5, zero, 12) != 0))
		return -1;
	memset(a, 0, sizeof(*a));
	a->family = p[0];
	memcpy(a->addr, p + 1, 16);
	a->port = (uint16_t)(p[17] << 8 | p[18]);
	return 0;
}

void
wfpb_nf_record_encode(const struct wfpb_nf_record *r, uint8_t out[WFPB_NF_RECORD_LEN])
{
	memcpy(out, WFPB_NF_MAGIC, 4);
	out[4] = 1;
	out[5] = (uint8_t)r->orig_dst.family;
	out[6] = 0;
	out[7] = 0;
	out[8] = (uint8_t)(r->mark >> 24);
	out[9] = (uint8_t)(r->mark >> 16);
	out[10] = (uint8_t)(r->mark >> 8);
	out[11] = (uint8_t)r->mark;
	memcpy(out + 12, r->orig_dst.addr, 16);
	out[28] = (uint8_t)(r->orig_dst.port >> 8);
	out[29] = (uint8_t)r->orig_dst.port;
}

int
wfpb_nf_record_parse(const uint8_t *blob, size_t len, struct wfpb_nf_record *out)
{
	static const uint8_t zero[12];

	memset(out, 0, sizeof(*out));
	if (blob == NULL || len != WFPB_NF_RECORD_LEN || memcmp(blob, WFPB_NF_MAGIC, 4) != 0 || blob[4] != 1 ||
	    blob[6] != 0 || blob[7] != 0)
		return WFPB_ST_EINVAL;
	if (blob[5] != WFPB_AF_INET && blob[5] != WFPB_AF_INET6)
		return WFPB_ST_EINVAL;
	if (blob[5] == WFPB_AF_INET && memcmp(blob + 16, zero, 12) != 0)
		return WFPB_ST_EINVAL;
	out->orig_dst.family = blob[5];
	out->mark = ((uint32_t)blob[8] << 24) | ((uint32_t)blob[9] << 16) | ((uint32_t)blob[10] << 8) | blob[11];
	memcpy(out->orig_dst.addr, blob + 12, 16);
	out->orig_dst.port = (uint16_t)((blob[28] << 8) | blob[29]);
	return 0;
}
