/*
 * A core session driven in memory by a client channel: requests are
 * dispatched, bad input gets a clear status and the session goes on,
 * deadlines expire, and counters move.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "session.h"
#include "wfpbroker.pb-c.h"

/* Nothing here hands sockets over. */
static wfpb_sock no_attach;

struct fixture {
	struct wfpb_broker		b;
	struct wfpb_session		*s;
	struct wfpb_channel		c;
	struct wfpb_noise_keypair	key;
};

static int
setup(void **state)
{
	struct fixture		*f = calloc(1, sizeof(*f));
	struct wfpb_config	cfg;
	struct wfpb_identity	id = { .known = 1, .pid = 42, .uid = 1000, .gid = 1000, .user = "1000" };
	const uint8_t		*p;
	size_t			len, used;

	if (f == NULL || sodium_init() < 0)
		return -1;
	wfpb_config_defaults(&cfg, "/x", "/y");
	wfpb_noise_keypair_generate(&f->key);
	if (wfpb_broker_init(&f->b, &cfg, NULL, &f->key, 1000) != 0)
		return -1;
	f->s = wfpb_session_new(&f->b, &id, 1000);
	if (wfpb_channel_client_start(&f->c, f->key.pub, NULL) != 0)
		return -1;
	p = wfpb_channel_output(&f->c, &len);
	if (wfpb_session_input(f->s, p, len, 1001) != 0)
		return -1;
	wfpb_channel_output_done(&f->c, len);
	p = wfpb_session_output(f->s, &len, &no_attach);
	if (wfpb_channel_feed(&f->c, p, len, &used) != WFPB_CHANNEL_ESTABLISHED)
		return -1;
	wfpb_session_output_done(f->s, len);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	wfpb_channel_free(&f->c);
	wfpb_session_free(f->s);
	assert_int_equal(f->b.sessions, 0);
	wfpb_broker_fini(&f->b);
	free(f);
	return 0;
}

/* Sends raw plaintext bytes as one message; returns the decoded Response. */
static Wfpbroker__V1__Response *
roundtrip_raw(struct fixture *f, const uint8_t *msg, size_t len)
{
	const uint8_t	*p, *m;
	size_t		olen, used, mlen;

	assert_int_equal(wfpb_channel_send(&f->c, msg, len), 0);
	p = wfpb_channel_output(&f->c, &olen);
	assert_int_equal(wfpb_session_input(f->s, p, olen, 2000), 0);
	wfpb_channel_output_done(&f->c, olen);
	p = wfpb_session_output(f->s, &olen, &no_attach);
	assert_non_null(p);
	assert_int_equal(wfpb_channel_feed(&f->c, p, olen, &used), WFPB_CHANNEL_MESSAGE);
	wfpb_session_output_done(f->s, olen);
	m = wfpb_channel_message(&f->c, &mlen);
	return wfpbroker__v1__response__unpack(NULL, mlen, m);
}

static Wfpbroker__V1__Response *
roundtrip(struct fixture *f, Wfpbroker__V1__Request *rq)
{
	uint8_t				buf[4096];
	size_t				n = wfpbroker__v1__request__get_packed_size(rq);

	assert_true(n <= sizeof(buf));
	wfpbroker__v1__request__pack(rq, buf);
	return roundtrip_raw(f, buf, n);
}

static void
ping_echoes(void **state)
{
	struct fixture			*f = *state;
	Wfpbroker__V1__Request		rq = WFPBROKER__V1__REQUEST__INIT;
	Wfpbroker__V1__PingRequest	ping = WFPBROKER__V1__PING_REQUEST__INIT;
	Wfpbroker__V1__Response		*r;

	rq.request_id = 77;
	rq.op_case = WFPBROKER__V1__REQUEST__OP_PING;
	rq.ping = &ping;
	ping.payload.data = (uint8_t *)"echo";
	ping.payload.len = 4;
	r = roundtrip(f, &rq);
	assert_non_null(r);
	assert_int_equal(r->request_id, 77);
	assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__OK);
	assert_int_equal(r->result_case, WFPBROKER__V1__RESPONSE__RESULT_PING);
	assert_int_equal(r->ping->payload.len, 4);
	assert_memory_equal(r->ping->payload.data, "echo", 4);
	assert_int_equal(r->ping->protocol_version, 1);
	wfpbroker__v1__response__free_unpacked(r, NULL);
	assert_int_equal(f->b.n.requests, 1);
}

static void
garbage_message_is_bad_request_and_session_continues(void **state)
{
	struct fixture			*f = *state;
	static const uint8_t		garbage[] = { 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01 };
	Wfpbroker__V1__Response		*r;
	Wfpbroker__V1__Request		rq = WFPBROKER__V1__REQUEST__INIT;
	Wfpbroker__V1__PingRequest	ping = WFPBROKER__V1__PING_REQUEST__INIT;

	r = roundtrip_raw(f, garbage, sizeof(garbage));
	assert_non_null(r);
	assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__BAD_REQUEST);
	assert_non_null(strstr(r->status->message, "Request"));
	assert_int_equal(r->result_case, WFPBROKER__V1__RESPONSE__RESULT__NOT_SET);
	wfpbroker__v1__response__free_unpacked(r, NULL);
	assert_int_equal(f->b.n.bad_requests, 1);

	rq.request_id = 5;
	rq.op_case = WFPBROKER__V1__REQUEST__OP_PING;
	rq.ping = &ping;
	r = roundtrip(f, &rq);
	assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__OK);
	wfpbroker__v1__response__free_unpacked(r, NULL);
}

static void
empty_and_unknown_ops(void **state)
{
	struct fixture			*f = *state;
	Wfpbroker__V1__Request		rq = WFPBROKER__V1__REQUEST__INIT;
	Wfpbroker__V1__ReloadRequest	rl = WFPBROKER__V1__RELOAD_REQUEST__INIT;
	Wfpbroker__V1__Response		*r;

	rq.request_id = 9;
	r = roundtrip(f, &rq);
	assert_int_equal(r->request_id, 9);
	assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__BAD_REQUEST);
	assert_non_null(strstr(r->status->message, "no operation"));
	wfpbroker__v1__response__free_unpacked(r, NULL);

	/* An op number this broker does not know (a newer client) is answered, not run. */
	{
		/* Field 99, length-delimited, empty: valid protobuf, unknown to Request. */
		static const uint8_t unknown_op[] = { 0x08, 0x0b, 0x9a, 0x06, 0x00 };

		r = roundtrip_raw(f, unknown_op, sizeof(unknown_op));
		assert_non_null(r);
		assert_int_equal(r->request_id, 11);
		assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__BAD_REQUEST);
		assert_int_equal(r->result_case, WFPBROKER__V1__RESPONSE__RESULT__NOT_SET);
		wfpbroker__v1__response__free_unpacked(r, NULL);
	}
	(void)rl;
}

static void
oversized_ping_names_the_field(void **state)
{
	struct fixture			*f = *state;
	Wfpbroker__V1__Request		rq = WFPBROKER__V1__REQUEST__INIT;
	Wfpbroker__V1__PingRequest	ping = WFPBROKER__V1__PING_REQUEST__INIT;
	Wfpbroker__V1__Response		*r;
	static uint8_t			big[1025];

	rq.op_case = WFPBROKER__V1__REQUEST__OP_PING;
	rq.ping = &ping;
	ping.payload.data = big;
	ping.payload.len = sizeof(big);
	r = roundtrip(f, &rq);
	assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__BAD_REQUEST);
	assert_non_null(strstr(r->status->message, "ping.payload"));
	wfpbroker__v1__response__free_unpacked(r, NULL);
}

static void
deadlines(void **state)
{
	struct fixture		*f = *state;
	struct wfpb_identity	id = { .known = 1 };
	struct wfpb_session	*s2;
	const uint8_t		*p;
	size_t			len;

	/* Established: idle deadline from the last message. */
	assert_int_equal(wfpb_session_deadline(f->s), 1001 + f->b.cfg.idle_timeout_ms);
	/* Handshake: deadline from the open, and expiry queues a reject notice. */
	s2 = wfpb_session_new(&f->b, &id, 5000);
	assert_int_equal(f->b.sessions, 2);
	assert_int_equal(wfpb_session_deadline(s2), 5000 + f->b.cfg.handshake_timeout_ms);
	assert_int_equal(wfpb_session_expire(s2, 5001), WFPB_E_TIMEOUT);
	assert_true(s2->closing);
	p = wfpb_session_output(s2, &len, &no_attach);
	assert_non_null(p);
	assert_int_equal(p[2], WFPB_REJECT_DEADLINE);
	assert_int_equal(wfpb_session_input(s2, (const uint8_t *)"W", 1, 5001), WFPB_E_STATE);
	wfpb_session_free(s2);
	assert_int_equal(f->b.sessions, 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(ping_echoes, setup, teardown),
		cmocka_unit_test_setup_teardown(garbage_message_is_bad_request_and_session_continues, setup, teardown),
		cmocka_unit_test_setup_teardown(empty_and_unknown_ops, setup, teardown),
		cmocka_unit_test_setup_teardown(oversized_ping_names_the_field, setup, teardown),
		cmocka_unit_test_setup_teardown(deadlines, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
