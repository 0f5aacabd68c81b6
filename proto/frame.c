/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Frame and preamble codec. Input is untrusted: lengths are checked against
 * the limit before anything is allocated.
 */
#include <stdlib.h>
#include <string.h>

#include "frame.h"

static const uint8_t magic[4] = { 'W', 'F', 'P', 'B' };

void
wfpb_preamble_encode(uint8_t out[WFPB_PREAMBLE_LEN], uint16_t version, uint16_t pattern)
{
	memcpy(out, magic, sizeof(magic));
	out[4] = (uint8_t)(version >> 8);
	out[5] = (uint8_t)version;
	out[6] = (uint8_t)(pattern >> 8);
	out[7] = (uint8_t)pattern;
}

int
wfpb_preamble_decode(const uint8_t in[WFPB_PREAMBLE_LEN], struct wfpb_preamble *p)
{
	if (memcmp(in, magic, sizeof(magic)) != 0)
		return WFPB_E_BAD_MAGIC;
	p->version = (uint16_t)((in[4] << 8) | in[5]);
	p->pattern = (uint16_t)((in[6] << 8) | in[7]);
	if (p->version < WFPB_PROTOCOL_VERSION_MIN || p->version > WFPB_PROTOCOL_VERSION)
		return WFPB_E_VERSION;
	if (p->pattern != WFPB_PATTERN_NK && p->pattern != WFPB_PATTERN_IK)
		return WFPB_E_PATTERN;
	return 0;
}

void
wfpb_frame_header(uint8_t out[WFPB_FRAME_HDR], size_t len)
{
	out[0] = (uint8_t)(len >> 8);
	out[1] = (uint8_t)len;
}

void
wfpb_frame_decoder_init(struct wfpb_frame_decoder *d, size_t max)
{
	memset(d, 0, sizeof(*d));
	d->max = (max == 0 || max > WFPB_FRAME_MAX) ? WFPB_FRAME_MAX : max;
}

void
wfpb_frame_decoder_reset(struct wfpb_frame_decoder *d)
{
	size_t max = d->max;

	free(d->buf);
	wfpb_frame_decoder_init(d, max);
}

int
wfpb_frame_decoder_feed(struct wfpb_frame_decoder *d, const uint8_t *in, size_t len, size_t *consumed)
{
	size_t	used = 0, n;

	*consumed = 0;
	if (d->ready)
		return 1;
	while (d->hdr_have < WFPB_FRAME_HDR && used < len)
		d->hdr[d->hdr_have++] = in[used++];
	if (d->hdr_have < WFPB_FRAME_HDR) {
		*consumed = used;
		return 0;
	}
	if (d->buf == NULL) {
		d->len = ((size_t)d->hdr[0] << 8) | d->hdr[1];
		*consumed = used;
		if (d->len == 0)
			return WFPB_E_FRAME_EMPTY;
		if (d->len > d->max)
			return WFPB_E_FRAME_TOO_BIG;
		if ((d->buf = malloc(d->len)) == NULL)
			return WFPB_E_NOMEM;
		d->have = 0;
	}
	n = d->len - d->have;
	if (n > len - used)
		n = len - used;
	memcpy(d->buf + d->have, in + used, n);
	d->have += n;
	used += n;
	*consumed = used;
	if (d->have < d->len)
		return 0;
	d->ready = 1;
	return 1;
}

const uint8_t *
wfpb_frame_decoder_frame(const struct wfpb_frame_decoder *d, size_t *len)
{
	if (!d->ready) {
		*len = 0;
		return NULL;
	}
	*len = d->len;
	return d->buf;
}

void
wfpb_frame_decoder_next(struct wfpb_frame_decoder *d)
{
	free(d->buf);
	d->buf = NULL;
	d->hdr_have = 0;
	d->len = 0;
	d->have = 0;
	d->ready = 0;
}

int
wfpb_frame_decoder_partial(const struct wfpb_frame_decoder *d)
{
	return d->hdr_have > 0 && !d->ready;
}
