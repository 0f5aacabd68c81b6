/* SPDX-License-Identifier: Apache-2.0 */
/* Frame and preamble codec: split points, limits and malformed streams. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "frame.h"

/* Encodes frames of the given lengths (payload byte i of frame f = f*31+i) into out. */
static size_t
encode_stream(uint8_t *out, const size_t *lens, size_t n)
{
	size_t pos = 0, f, i;

	for (f = 0; f < n; f++) {
		wfpb_frame_header(out + pos, lens[f]);
		pos += WFPB_FRAME_HDR;
		for (i = 0; i < lens[f]; i++)
			out[pos++] = (uint8_t)(f * 31 + i);
	}
	return pos;
}

/* Feeds stream in two pieces split at `split`; checks every frame arrives intact. */
static void
feed_split(const uint8_t *stream, size_t len, size_t split, const size_t *lens, size_t nframes)
{
	struct wfpb_frame_decoder	d;
	const uint8_t			*pieces[2] = { stream, stream + split };
	size_t				plen[2] = { split, len - split }, got = 0, used, flen, k, i;
	int				rc;

	wfpb_frame_decoder_init(&d, 0);
	for (k = 0; k < 2; k++) {
		const uint8_t *p = pieces[k];
		size_t left = plen[k];

		while (left > 0) {
			rc = wfpb_frame_decoder_feed(&d, p, left, &used);
			assert_true(rc >= 0);
			p += used;
			left -= used;
			if (rc == 1) {
				const uint8_t *f = wfpb_frame_decoder_frame(&d, &flen);

				assert_true(got < nframes);
				assert_int_equal(flen, lens[got]);
				for (i = 0; i < flen; i++)
					assert_int_equal(f[i], (uint8_t)(got * 31 + i));
				wfpb_frame_decoder_next(&d);
				got++;
			} else {
				assert_int_equal(left, 0);
			}
		}
	}
	assert_int_equal(got, nframes);
	assert_false(wfpb_frame_decoder_partial(&d));
	wfpb_frame_decoder_reset(&d);
}

static void
every_split_point(void **state)
{
	static const size_t	lens[] = { 1, 7, 300, 2, 65 };
	uint8_t			stream[1024];
	size_t			len = encode_stream(stream, lens, 5), split;

	(void)state;
	for (split = 0; split <= len; split++)
		feed_split(stream, len, split, lens, 5);
}

static void
byte_at_a_time(void **state)
{
	static const size_t		lens[] = { 3, 1, 40 };
	uint8_t				stream[128];
	size_t				len = encode_stream(stream, lens, 3), i, used, flen, got = 0;
	struct wfpb_frame_decoder	d;
	int				rc;

	(void)state;
	wfpb_frame_decoder_init(&d, 0);
	for (i = 0; i < len; i++) {
		rc = wfpb_frame_decoder_feed(&d, stream + i, 1, &used);
		assert_int_equal(used, 1);
		if (rc == 1) {
			(void)wfpb_frame_decoder_frame(&d, &flen);
			assert_int_equal(flen, lens[got]);
			got++;
			wfpb_frame_decoder_next(&d);
		} else {
			assert_int_equal(rc, 0);
		}
	}
	assert_int_equal(got, 3);
	wfpb_frame_decoder_reset(&d);
}

static void
zero_length_is_an_error(void **state)
{
	struct wfpb_frame_decoder	d;
	uint8_t				hdr[2] = { 0, 0 };
	size_t				used;

	(void)state;
	wfpb_frame_decoder_init(&d, 0);
	assert_int_equal(wfpb_frame_decoder_feed(&d, hdr, 2, &used), WFPB_E_FRAME_EMPTY);
	wfpb_frame_decoder_reset(&d);
}

static void
max_length_frame(void **state)
{
	struct wfpb_frame_decoder	d;
	uint8_t				*stream = malloc(WFPB_FRAME_MAX + WFPB_FRAME_HDR);
	size_t				used, flen;
	const uint8_t			*f;

	(void)state;
	assert_non_null(stream);
	wfpb_frame_header(stream, WFPB_FRAME_MAX);
	assert_int_equal(stream[0], 0xff);
	assert_int_equal(stream[1], 0xff);
	memset(stream + 2, 0xab, WFPB_FRAME_MAX);
	wfpb_frame_decoder_init(&d, 0);
	assert_int_equal(wfpb_frame_decoder_feed(&d, stream, WFPB_FRAME_MAX + 2, &used), 1);
	assert_int_equal(used, WFPB_FRAME_MAX + 2);
	f = wfpb_frame_decoder_frame(&d, &flen);
	assert_int_equal(flen, WFPB_FRAME_MAX);
	assert_int_equal(f[WFPB_FRAME_MAX - 1], 0xab);
	wfpb_frame_decoder_reset(&d);
	free(stream);
}

static void
oversize_is_refused_before_allocation(void **state)
{
	struct wfpb_frame_decoder	d;
	uint8_t				hdr[2];
	size_t				used;

	(void)state;
	wfpb_frame_decoder_init(&d, 256);
	wfpb_frame_header(hdr, 257);
	assert_int_equal(wfpb_frame_decoder_feed(&d, hdr, 2, &used), WFPB_E_FRAME_TOO_BIG);
	assert_null(d.buf);
	wfpb_frame_decoder_reset(&d);
	/* Exactly the limit is fine. */
	wfpb_frame_decoder_init(&d, 256);
	wfpb_frame_header(hdr, 256);
	assert_int_equal(wfpb_frame_decoder_feed(&d, hdr, 2, &used), 0);
	wfpb_frame_decoder_reset(&d);
}

static void
truncated_stream_is_partial(void **state)
{
	struct wfpb_frame_decoder	d;
	uint8_t				stream[16];
	size_t				used;

	(void)state;
	wfpb_frame_decoder_init(&d, 0);
	assert_false(wfpb_frame_decoder_partial(&d));
	wfpb_frame_header(stream, 10);
	memset(stream + 2, 1, 5);
	/* Header alone. */
	assert_int_equal(wfpb_frame_decoder_feed(&d, stream, 1, &used), 0);
	assert_true(wfpb_frame_decoder_partial(&d));
	/* Header and half the body: still partial, so EOF here is truncation. */
	assert_int_equal(wfpb_frame_decoder_feed(&d, stream + 1, 6, &used), 0);
	assert_true(wfpb_frame_decoder_partial(&d));
	wfpb_frame_decoder_reset(&d);
}

static void
preamble_round_trip(void **state)
{
	uint8_t			p[WFPB_PREAMBLE_LEN];
	struct wfpb_preamble	pr;

	(void)state;
	wfpb_preamble_encode(p, WFPB_PROTOCOL_VERSION, WFPB_PATTERN_IK);
	assert_memory_equal(p, "WFPB\x00\x02\x00\x02", 8);
	assert_int_equal(wfpb_preamble_decode(p, &pr), 0);
	assert_int_equal(pr.version, 2);
	assert_int_equal(pr.pattern, WFPB_PATTERN_IK);
	/* Version 1 is still spoken. */
	wfpb_preamble_encode(p, 1, WFPB_PATTERN_NK);
	assert_int_equal(wfpb_preamble_decode(p, &pr), 0);
	assert_int_equal(pr.version, 1);
}

static void
preamble_errors(void **state)
{
	uint8_t			p[WFPB_PREAMBLE_LEN];
	struct wfpb_preamble	pr;

	(void)state;
	memcpy(p, "WFPX\x00\x01\x00\x01", 8);
	assert_int_equal(wfpb_preamble_decode(p, &pr), WFPB_E_BAD_MAGIC);
	wfpb_preamble_encode(p, 3, WFPB_PATTERN_NK);
	assert_int_equal(wfpb_preamble_decode(p, &pr), WFPB_E_VERSION);
	wfpb_preamble_encode(p, 0, WFPB_PATTERN_NK);
	assert_int_equal(wfpb_preamble_decode(p, &pr), WFPB_E_VERSION);
	wfpb_preamble_encode(p, WFPB_PROTOCOL_VERSION, 3);
	assert_int_equal(wfpb_preamble_decode(p, &pr), WFPB_E_PATTERN);
	wfpb_preamble_encode(p, WFPB_PROTOCOL_VERSION, 0);
	assert_int_equal(wfpb_preamble_decode(p, &pr), WFPB_E_PATTERN);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(every_split_point),
		cmocka_unit_test(byte_at_a_time),
		cmocka_unit_test(zero_length_is_an_error),
		cmocka_unit_test(max_length_frame),
		cmocka_unit_test(oversize_is_refused_before_allocation),
		cmocka_unit_test(truncated_stream_is_partial),
		cmocka_unit_test(preamble_round_trip),
		cmocka_unit_test(preamble_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
