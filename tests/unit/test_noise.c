/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Noise handshakes and the secure channel in memory: both patterns, and every
 * way a peer can misbehave (tamper, replay, reorder, truncate, wrong key,
 * low-order points, nonce exhaustion, bad preambles, unenrolled keys).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "channel.h"
#include "noise.h"

static struct wfpb_noise_keypair	server_kp, client_kp, other_kp;

static int
setup(void **state)
{
	(void)state;
	if (sodium_init() < 0)
		return -1;
	wfpb_noise_keypair_generate(&server_kp);
	wfpb_noise_keypair_generate(&client_kp);
	wfpb_noise_keypair_generate(&other_kp);
	return 0;
}

static int
enrolled(void *arg, const uint8_t pub[WFPB_NOISE_DHLEN])
{
	(void)arg;
	return memcmp(pub, client_kp.pub, WFPB_NOISE_DHLEN) == 0;
}

/* Moves all of a's output into b, one byte at a time when `trickle`; returns the last event. */
static int
pump(struct wfpb_channel *a, struct wfpb_channel *b, int trickle)
{
	const uint8_t	*p;
	size_t		len, used, off = 0, n;
	int		ev = WFPB_CHANNEL_MORE;

	p = wfpb_channel_output(a, &len);
	while (off < len) {
		n = trickle ? 1 : len - off;
		ev = wfpb_channel_feed(b, p + off, n, &used);
		if (ev < 0)
			break;
		off += used;
		if (ev == WFPB_CHANNEL_MESSAGE && off < len)
			fail_msg("message event before the end of the output");
	}
	wfpb_channel_output_done(a, len);
	return ev;
}

static void
establish(struct wfpb_channel *c, struct wfpb_channel *s, const struct wfpb_noise_keypair *ckey, int trickle)
{
	assert_int_equal(wfpb_channel_client_start(c, server_kp.pub, ckey), 0);
	wfpb_channel_server_init(s, &server_kp, enrolled, NULL);
	assert_int_equal(pump(c, s, trickle), WFPB_CHANNEL_ESTABLISHED);
	assert_int_equal(pump(s, c, trickle), WFPB_CHANNEL_ESTABLISHED);
	assert_true(wfpb_channel_established(c));
	assert_true(wfpb_channel_established(s));
	assert_memory_equal(c->handshake_hash, s->handshake_hash, WFPB_NOISE_HASHLEN);
}

static void
exchange(struct wfpb_channel *from, struct wfpb_channel *to, const char *text)
{
	const uint8_t	*m;
	size_t		len;

	assert_int_equal(wfpb_channel_send(from, (const uint8_t *)text, strlen(text)), 0);
	assert_int_equal(pump(from, to, 0), WFPB_CHANNEL_MESSAGE);
	m = wfpb_channel_message(to, &len);
	assert_int_equal(len, strlen(text));
	assert_memory_equal(m, text, len);
}

static void
nk_round_trip(void **state)
{
	struct wfpb_channel c, s;

	(void)state;
	establish(&c, &s, NULL, 0);
	assert_null(wfpb_channel_peer_key(&s));
	exchange(&c, &s, "request one");
	exchange(&s, &c, "response one");
	exchange(&c, &s, "request two");
	wfpb_channel_free(&c);
	wfpb_channel_free(&s);
}

static void
ik_round_trip_trickled(void **state)
{
	struct wfpb_channel c, s;

	(void)state;
	establish(&c, &s, &client_kp, 1);
	assert_non_null(wfpb_channel_peer_key(&s));
	assert_memory_equal(wfpb_channel_peer_key(&s), client_kp.pub, WFPB_NOISE_DHLEN);
	exchange(&c, &s, "hello");
	exchange(&s, &c, "world");
	wfpb_channel_free(&c);
	wfpb_channel_free(&s);
}

static void
ik_unenrolled_key_is_rejected(void **state)
{
	struct wfpb_channel c, s;

	(void)state;
	assert_int_equal(wfpb_channel_client_start(&c, server_kp.pub, &other_kp), 0);
	wfpb_channel_server_init(&s, &server_kp, enrolled, NULL);
	assert_int_equal(pump(&c, &s, 0), WFPB_E_PEER_KEY);
	assert_int_equal(pump(&s, &c, 0), WFPB_E_REJECTED);
	assert_int_equal(c.reject, WFPB_REJECT_KEY);
	wfpb_channel_free(&c);
	wfpb_channel_free(&s);
}

static void
wrong_pinned_key_fails_closed(void **state)
{
	struct wfpb_channel c, s;

	(void)state;
	/* The client pins other_kp but reaches a server holding server_kp (a squatter, or a stale pin). */
	assert_int_equal(wfpb_channel_client_start(&c, other_kp.pub, NULL), 0);
	wfpb_channel_server_init(&s, &server_kp, enrolled, NULL);
	assert_int_equal(pump(&c, &s, 0), WFPB_E_DECRYPT);
	assert_false(wfpb_channel_established(&s));
	wfpb_channel_free(&c);
	wfpb_channel_free(&s);

	/* And a squatter holding other_kp cannot answer a client that pins server_kp. */
	assert_int_equal(wfpb_channel_client_start(&c, server_kp.pub, NULL), 0);
	wfpb_channel_server_init(&s, &other_kp, enrolled, NULL);
	assert_true(pump(&c, &s, 0) < 0);
	wfpb_channel_free(&c);
	wfpb_channel_free(&s);
}

/* Sends a message from a, lets `mangle` change the bytes in flight, feeds them to b. */
static int
send_mangled(struct wfpb_channel *a, struct wfpb_channel *b, const char *text, size_t flip_at)
{
	uint8_t		buf[256];
	const uint8_t	*p;
	size_t		len, used;

	assert_int_equal(wfpb_channel_send(a, (const uint8_t *)text, strlen(text)), 0);
	p = wfpb_channel_output(a, &len);
	assert_true(len <= sizeof(buf));
	memcpy(buf, p, len);
	wfpb_channel_output_done(a, len);
	buf[flip_at % len] ^= 0x01;
	return wfpb_channel_feed(b, buf, len, &used);
}

static void
tampered_frame_fails_closed(void **state)
{
	struct wfpb_channel	c, s;
	size_t			at;

	(void)state;
	/* Every byte after the length prefix is covered by the MAC. */
	for (at = 2; at < 2 + 5 + WFPB_NOISE_TAGLEN; at++) {
		establish(&c, &s, NULL, 0);
		assert_int_equal(send_mangled(&c, &s, "abcde", at), WFPB_E_DECRYPT);
		assert_false(wfpb_channel_established(&s));
		/* The channel is dead: nothing more is accepted. */
		assert_int_equal(wfpb_channel_send(&s, (const uint8_t *)"x", 1), WFPB_E_STATE);
		wfpb_channel_free(&c);
		wfpb_channel_free(&s);
	}
}

static void
replayed_frame_fails_closed(void **state)
{
	struct wfpb_channel	c, s;
	uint8_t			copy[128];
	const uint8_t		*p;
	size_t			len, used;

	(void)state;
	establish(&c, &s, NULL, 0);
	assert_int_equal(wfpb_channel_send(&c, (const uint8_t *)"pay", 3), 0);
	p = wfpb_channel_output(&c, &len);
	memcpy(copy, p, len);
	assert_int_equal(pump(&c, &s, 0), WFPB_CHANNEL_MESSAGE);
	assert_int_equal(wfpb_channel_feed(&s, copy, len, &used), WFPB_E_DECRYPT);
	wfpb_channel_free(&c);
	wfpb_channel_free(&s);
}

static void
reordered_frames_fail_closed(void **state)
{
	struct wfpb_channel	c, s;
	uint8_t			first[128], second[128];
	const uint8_t		*p;
	size_t			l1, l2, used;

	(void)state;
	establish(&c, &s, NULL, 0);
	assert_int_equal(wfpb_channel_send(&c, (const uint8_t *)"one", 3), 0);
	p = wfpb_channel_output(&c, &l1);
	memcpy(first, p, l1);
	wfpb_channel_output_done(&c, l1);
	assert_int_equal(wfpb_channel_send(&c, (const uint8_t *)"two", 3), 0);
	p = wfpb_channel_output(&c, &l2);
	memcpy(second, p, l2);
	wfpb_channel_output_done(&c, l2);
	assert_int_equal(wfpb_channel_feed(&s, second, l2, &used), WFPB_E_DECRYPT);
	wfpb_channel_free(&c);
	wfpb_channel_free(&s);
	(void)first;
}

static void
truncated_frame_is_partial_then_short_frame_fails(void **state)
{
	struct wfpb_channel	c, s;
	uint8_t			buf[64];
	const uint8_t		*p;
	size_t			len, used;

	(void)state;
	establish(&c, &s, NULL, 0);
	assert_int_equal(wfpb_channel_send(&c, (const uint8_t *)"truncate me", 11), 0);
	p = wfpb_channel_output(&c, &len);
	memcpy(buf, p, len);
	assert_int_equal(wfpb_channel_feed(&s, buf, len - 3, &used), WFPB_CHANNEL_MORE);
	assert_true(wfpb_channel_partial(&s));
	wfpb_channel_free(&c);
	wfpb_channel_free(&s);

	/* A frame shorter than a tag can never authenticate. */
	establish(&c, &s, NULL, 0);
	buf[0] = 0;
	buf[1] = 5;
	memset(buf + 2, 0, 5);
	assert_int_equal(wfpb_channel_feed(&s, buf, 7, &used), WFPB_E_DECRYPT);
	wfpb_channel_free(&c);
	wfpb_channel_free(&s);
}

/* Feeds raw bytes to a fresh server channel and returns its verdict and reject reason. */
static int
server_verdict(const uint8_t *in, size_t len, int *reason)
{
	struct wfpb_channel	s;
	const uint8_t		*p;
	size_t			used, olen;
	int			rc;

	wfpb_channel_server_init(&s, &server_kp, enrolled, NULL);
	rc = wfpb_channel_feed(&s, in, len, &used);
	*reason = 0;
	p = wfpb_channel_output(&s, &olen);
	if (p != NULL) {
		/* The reject notice is a frame shorter than any handshake reply. */
		assert_true(olen >= 3);
		assert_true(((size_t)p[0] << 8 | p[1]) <= WFPB_REJECT_MAX);
		*reason = p[2];
	}
	wfpb_channel_free(&s);
	return rc;
}

static void
bad_preambles_get_reject_notices(void **state)
{
	uint8_t	buf[WFPB_PREAMBLE_LEN + 4];
	int	reason;

	(void)state;
	assert_int_equal(server_verdict((const uint8_t *)"GET / HTTP/1.1\r\n", 16, &reason), WFPB_E_BAD_MAGIC);
	assert_int_equal(reason, WFPB_REJECT_BAD_MAGIC);
	wfpb_preamble_encode(buf, 9, WFPB_PATTERN_NK);
	assert_int_equal(server_verdict(buf, WFPB_PREAMBLE_LEN, &reason), WFPB_E_VERSION);
	assert_int_equal(reason, WFPB_REJECT_VERSION);
	wfpb_preamble_encode(buf, WFPB_PROTOCOL_VERSION, 7);
	assert_int_equal(server_verdict(buf, WFPB_PREAMBLE_LEN, &reason), WFPB_E_PATTERN);
	assert_int_equal(reason, WFPB_REJECT_PATTERN);
	/* A good preamble followed by a handshake frame above the handshake limit. */
	wfpb_preamble_encode(buf, WFPB_PROTOCOL_VERSION, WFPB_PATTERN_NK);
	wfpb_frame_header(buf + WFPB_PREAMBLE_LEN, 60000);
	assert_int_equal(server_verdict(buf, WFPB_PREAMBLE_LEN + 2, &reason), WFPB_E_FRAME_TOO_BIG);
	assert_int_equal(reason, WFPB_REJECT_HANDSHAKE);
}

static void
low_order_ephemeral_is_refused(void **state)
{
	struct wfpb_channel	s;
	uint8_t			buf[WFPB_PREAMBLE_LEN + 2 + 48];
	size_t			used;
	int			rc;

	(void)state;
	/* An all-zero ephemeral key is a low-order point: X25519 yields zero. */
	memset(buf, 0, sizeof(buf));
	wfpb_preamble_encode(buf, WFPB_PROTOCOL_VERSION, WFPB_PATTERN_NK);
	wfpb_frame_header(buf + WFPB_PREAMBLE_LEN, 48);
	wfpb_channel_server_init(&s, &server_kp, enrolled, NULL);
	rc = wfpb_channel_feed(&s, buf, sizeof(buf), &used);
	assert_int_equal(rc, WFPB_E_DH);
	wfpb_channel_free(&s);
}

static void
nonce_exhaustion_fails_closed(void **state)
{
	struct wfpb_noise_cipher	c;
	uint8_t				out[64], back[64];
	size_t				n;

	(void)state;
	memset(&c, 0, sizeof(c));
	c.has_key = 1;
	randombytes_buf(c.k, sizeof(c.k));
	c.n = UINT64_MAX - 1;
	assert_int_equal(wfpb_noise_cipher_encrypt(&c, NULL, 0, (const uint8_t *)"x", 1, out, &n), 0);
	assert_int_equal(c.n, UINT64_MAX);
	assert_int_equal(wfpb_noise_cipher_encrypt(&c, NULL, 0, (const uint8_t *)"x", 1, out, &n), WFPB_E_NONCE);
	assert_int_equal(wfpb_noise_cipher_decrypt(&c, NULL, 0, out, 17, back, &n), WFPB_E_NONCE);
}

static void
failed_decrypt_zeroes_output(void **state)
{
	struct wfpb_noise_cipher	tx, rx;
	uint8_t				ct[64], pt[64];
	size_t				n, m;

	(void)state;
	memset(&tx, 0, sizeof(tx));
	tx.has_key = 1;
	randombytes_buf(tx.k, sizeof(tx.k));
	rx = tx;
	assert_int_equal(wfpb_noise_cipher_encrypt(&tx, NULL, 0, (const uint8_t *)"secretsecret", 12, ct, &n), 0);
	ct[3] ^= 0x80;
	memset(pt, 0x55, sizeof(pt));
	assert_int_equal(wfpb_noise_cipher_decrypt(&rx, NULL, 0, ct, n, pt, &m), WFPB_E_DECRYPT);
	for (m = 0; m < 12; m++)
		assert_int_equal(pt[m], 0);
	assert_int_equal(rx.n, 0);
}

static void
hkdf_matches_definition(void **state)
{
	uint8_t	ck[64], ikm[32], o1[64], o2[64], t[64], x[65];

	(void)state;
	randombytes_buf(ck, sizeof(ck));
	randombytes_buf(ikm, sizeof(ikm));
	wfpb_noise_hkdf(ck, ikm, sizeof(ikm), o1, o2);
	/* Recompute HKDF step by step from the Noise definition on top of HMAC. */
	wfpb_noise_hmac(ck, ikm, sizeof(ikm), t);
	x[0] = 1;
	wfpb_noise_hmac(t, x, 1, x + 1);
	assert_memory_equal(x + 1, o1, 64);
	memcpy(x, o1, 64);
	x[64] = 2;
	wfpb_noise_hmac(t, x, 65, t);
	assert_memory_equal(t, o2, 64);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(nk_round_trip),
		cmocka_unit_test(ik_round_trip_trickled),
		cmocka_unit_test(ik_unenrolled_key_is_rejected),
		cmocka_unit_test(wrong_pinned_key_fails_closed),
		cmocka_unit_test(tampered_frame_fails_closed),
		cmocka_unit_test(replayed_frame_fails_closed),
		cmocka_unit_test(reordered_frames_fail_closed),
		cmocka_unit_test(truncated_frame_is_partial_then_short_frame_fails),
		cmocka_unit_test(bad_preambles_get_reject_notices),
		cmocka_unit_test(low_order_ephemeral_is_refused),
		cmocka_unit_test(nonce_exhaustion_fails_closed),
		cmocka_unit_test(failed_decrypt_zeroes_output),
		cmocka_unit_test(hkdf_matches_definition),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
