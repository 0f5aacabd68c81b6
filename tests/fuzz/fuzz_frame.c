/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer: the frame decoder, fed untrusted bytes split at input-chosen points. */
#include <stddef.h>
#include <stdint.h>

#include "frame.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct wfpb_frame_decoder	d;
	struct wfpb_preamble		p;
	size_t				off = 1, used, chunk, flen;
	int				rc;

	if (size >= WFPB_PREAMBLE_LEN)
		(void)wfpb_preamble_decode(data, &p);
	if (size < 1)
		return 0;
	/* The first byte picks the chunk size, so every split pattern is reachable. */
	chunk = (size_t)data[0] % 17 + 1;
	wfpb_frame_decoder_init(&d, (size_t)data[0] * 257);
	while (off < size) {
		size_t n = size - off < chunk ? size - off : chunk;

		rc = wfpb_frame_decoder_feed(&d, data + off, n, &used);
		if (rc < 0)
			break;
		off += used;
		if (rc == 1) {
			const uint8_t *f = wfpb_frame_decoder_frame(&d, &flen);

			if (f == NULL || flen == 0 || flen > d.max)
				__builtin_trap();
			wfpb_frame_decoder_next(&d);
		} else if (used != n) {
			__builtin_trap();	/* a decoder that needs more must take all it was given */
		}
	}
	wfpb_frame_decoder_reset(&d);
	return 0;
}
