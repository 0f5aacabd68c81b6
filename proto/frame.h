/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Stream framing of the wfpbroker protocol (docs/PROTOCOL.md §1): a client
 * opens with an 8-byte preamble, then both sides exchange frames of a 2-byte
 * big-endian length followed by that many bytes. Everything here is pure
 * computation on caller buffers; bytes come from an untrusted peer.
 */
#ifndef WFPB_FRAME_H
#define WFPB_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "wfpb_error.h"

#define WFPB_FRAME_MAX		65535u	/* largest length a 2-byte prefix carries */
#define WFPB_FRAME_HDR		2u
#define WFPB_PREAMBLE_LEN	8u
/*
 * Protocol versions this code speaks (docs/PROTOCOL.md): 1 answers requests
 * in order, one at a time; 2 lets a session keep requests in flight and
 * answers them as they complete. The client names one in its preamble.
 */
#define WFPB_PROTOCOL_VERSION		2u	/* the newest, what clients send */
#define WFPB_PROTOCOL_VERSION_MIN	1u

enum wfpb_pattern {
	WFPB_PATTERN_NK = 1,	/* client anonymous at the crypto layer */
	WFPB_PATTERN_IK = 2,	/* client presents an enrolled static key */
};

struct wfpb_preamble {
	uint16_t	version;
	uint16_t	pattern;
};

/* Writes the preamble for version/pattern into out[WFPB_PREAMBLE_LEN]. */
void wfpb_preamble_encode(uint8_t out[WFPB_PREAMBLE_LEN], uint16_t version, uint16_t pattern);

/*
 * Parses a complete preamble. Returns 0 and fills *p, or WFPB_E_BAD_MAGIC,
 * WFPB_E_VERSION (outside WFPB_PROTOCOL_VERSION_MIN..WFPB_PROTOCOL_VERSION) or
 * WFPB_E_PATTERN.
 */
int WFPB_MUST_CHECK wfpb_preamble_decode(const uint8_t in[WFPB_PREAMBLE_LEN], struct wfpb_preamble *p);

/* Writes the 2-byte header for a frame of len bytes (1..WFPB_FRAME_MAX). */
void wfpb_frame_header(uint8_t out[WFPB_FRAME_HDR], size_t len);

/*
 * Incremental decoder: input may arrive split at any byte boundary. The
 * payload buffer is allocated only while a frame is in flight and only after
 * its length passed the limit, so an idle decoder costs sizeof() alone.
 */
struct wfpb_frame_decoder {
	size_t		max;		/* limit on a frame's length, <= WFPB_FRAME_MAX */
	uint8_t		hdr[WFPB_FRAME_HDR];
	size_t		hdr_have;
	size_t		len;		/* length of the frame being assembled */
	size_t		have;
	uint8_t		*buf;
	int		ready;		/* a complete frame waits in buf */
};

/* Initialises an empty decoder with a frame limit (0 means WFPB_FRAME_MAX). */
void wfpb_frame_decoder_init(struct wfpb_frame_decoder *d, size_t max);

/* Releases the buffer. Safe on an initialised or already reset decoder. */
void wfpb_frame_decoder_reset(struct wfpb_frame_decoder *d);

/*
 * Feeds up to len bytes. Sets *consumed to the bytes taken. Returns 1 when a
 * whole frame is ready (read it with wfpb_frame_decoder_frame, then call
 * wfpb_frame_decoder_next before feeding more), 0 when more input is needed,
 * or WFPB_E_FRAME_EMPTY, WFPB_E_FRAME_TOO_BIG, WFPB_E_NOMEM. After an error
 * the decoder is unusable until reset.
 */
int WFPB_MUST_CHECK wfpb_frame_decoder_feed(struct wfpb_frame_decoder *d, const uint8_t *in, size_t len,
    size_t *consumed);

/* The ready frame: valid until wfpb_frame_decoder_next or _reset. */
const uint8_t *wfpb_frame_decoder_frame(const struct wfpb_frame_decoder *d, size_t *len);

/* Drops the ready frame and frees its buffer. */
void wfpb_frame_decoder_next(struct wfpb_frame_decoder *d);

/* True when the decoder holds part of a frame (so EOF now means truncation). */
int wfpb_frame_decoder_partial(const struct wfpb_frame_decoder *d);

#endif
