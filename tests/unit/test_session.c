/* SPDX-License-Identifier: Apache-2.0 */
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
#ifdef _WIN32
#include <winsock2.h>
#include <ws2tcpip.h>
#include <mswsock.h>
#include <windows.h>
#include <winternl.h>

#include "net_win.h"
#include "wfp.h"
#else
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>
#endif
#include <sodium.h>

#include "backend.h"
#include "fileio.h"
#include "log.h"
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
	snprintf(cfg.backend, sizeof(cfg.backend), "sim");	/* the test double, named */
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
	static uint8_t			buf[65536];	/* a frame's largest */
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
	assert_int_equal(r->ping->protocol_version, 2);
	assert_int_equal(r->ping->max_inflight, f->b.cfg.max_inflight);
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

static void set_policy(struct fixture *f, const char *text);

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

	/*
	 * An op this broker does not know (a newer client's) is EOPNOTSUPP, not BAD_REQUEST, so
	 * the client can tell an older broker from a malformed request (PROTOCOL.md §3).
	 */
	{
		/* Field 99, length-delimited, empty: valid protobuf, unknown to Request. */
		static const uint8_t unknown_op[] = { 0x08, 0x0b, 0x9a, 0x06, 0x00 };

		r = roundtrip_raw(f, unknown_op, sizeof(unknown_op));
		assert_non_null(r);
		assert_int_equal(r->request_id, 11);
		assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__EOPNOTSUPP);
		assert_non_null(strstr(r->status->message, "99"));
		assert_int_equal(r->result_case, WFPBROKER__V1__RESPONSE__RESULT__NOT_SET);
		wfpbroker__v1__response__free_unpacked(r, NULL);
	}
	/* A backlog past the limit is refused, naming the field (PROTOCOL.md §3), not capped. */
	{
		Wfpbroker__V1__ListenRequest	l = WFPBROKER__V1__LISTEN_REQUEST__INIT;
		Wfpbroker__V1__Address		a = WFPBROKER__V1__ADDRESS__INIT;
		static uint8_t			lo[4] = { 127, 0, 0, 1 };

		set_policy(f, "[principal p]\nuid = 1000\nops = listen\nlisten = 127.0.0.1/32:*\n");
		a.family = WFPBROKER__V1__ADDRESS_FAMILY__AF_INET;
		a.addr.data = lo;
		a.addr.len = 4;
		l.local = &a;
		l.backlog = 2000;
		rq.request_id = 13;
		rq.op_case = WFPBROKER__V1__REQUEST__OP_LISTEN;
		rq.listen = &l;
		r = roundtrip(f, &rq);
		assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__BAD_REQUEST);
		assert_non_null(strstr(r->status->message, "listen.backlog: 2000"));
		wfpbroker__v1__response__free_unpacked(r, NULL);
	}
	/* A field below the ops' range (10) that it does not know, and no op: still no operation. */
	{
		/* Field 5, varint 1. */
		static const uint8_t unknown_meta[] = { 0x08, 0x0c, 0x28, 0x01 };

		r = roundtrip_raw(f, unknown_meta, sizeof(unknown_meta));
		assert_non_null(r);
		assert_int_equal(r->request_id, 12);
		assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__BAD_REQUEST);
		assert_non_null(strstr(r->status->message, "no operation"));
		wfpbroker__v1__response__free_unpacked(r, NULL);
	}
	(void)rl;
}

extern char wfpb_test_last_event[1024];

/*
 * A flood of denied requests is not a flood of log lines (syslog, the Event
 * Log): a burst is logged, then a few a second, and the rest are counted and
 * said in one line at the next tick. Every one is still counted (Status) and,
 * with the audit log on, recorded there.
 */
static void
denials_do_not_flood_the_log(void **state)
{
	struct fixture			*f = *state;
	Wfpbroker__V1__Request		rq = WFPBROKER__V1__REQUEST__INIT;
	Wfpbroker__V1__StatusRequest	st = WFPBROKER__V1__STATUS_REQUEST__INIT;
	Wfpbroker__V1__Response		*r;
	unsigned long			before = wfpb_events_reported[WFPB_EVENT_DENIAL], logged;
	char				expect[64];
	unsigned			i;

	rq.op_case = WFPBROKER__V1__REQUEST__OP_STATUS;
	rq.status = &st;
	for (i = 0; i < 1000; i++) {
		rq.request_id = i + 1;
		r = roundtrip(f, &rq);
		assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__DENIED);
		wfpbroker__v1__response__free_unpacked(r, NULL);
	}
	assert_int_equal(f->b.n.denials, 1000);
	logged = wfpb_events_reported[WFPB_EVENT_DENIAL] - before;
	assert_int_equal(logged, WFPB_DENIAL_LOG_BURST);	/* the clock stood still: no refill */
	/* The next tick says how many were not logged, once. */
	wfpb_broker_tick(&f->b, 4000);
	assert_int_equal(wfpb_events_reported[WFPB_EVENT_DENIAL] - before, logged + 1);
	snprintf(expect, sizeof(expect), "%lu denials not logged", 1000 - logged);
	assert_non_null(strstr(wfpb_test_last_event, expect));
	wfpb_broker_tick(&f->b, 9000);
	assert_int_equal(wfpb_events_reported[WFPB_EVENT_DENIAL] - before, logged + 1);
	/* The budget comes back with time: a denial much later is logged again. */
	rq.request_id = 5000;
	{
		const uint8_t	*p, *m;
		uint8_t		buf[64];
		size_t		n = wfpbroker__v1__request__get_packed_size(&rq), olen, used, mlen;

		wfpbroker__v1__request__pack(&rq, buf);
		assert_int_equal(wfpb_channel_send(&f->c, buf, n), 0);
		p = wfpb_channel_output(&f->c, &olen);
		assert_int_equal(wfpb_session_input(f->s, p, olen, 60000), 0);
		wfpb_channel_output_done(&f->c, olen);
		p = wfpb_session_output(f->s, &olen, &no_attach);
		assert_int_equal(wfpb_channel_feed(&f->c, p, olen, &used), WFPB_CHANNEL_MESSAGE);
		wfpb_session_output_done(f->s, olen);
		m = wfpb_channel_message(&f->c, &mlen);
		(void)m;
	}
	assert_int_equal(wfpb_events_reported[WFPB_EVENT_DENIAL] - before, logged + 2);
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

	/* Established, and no principal matches uid 1000: the short unmatched timeout from the last message. */
	assert_int_equal(wfpb_session_deadline(f->s), 1001 + f->b.cfg.unmatched_timeout_ms);
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

/* Replaces the fixture's broker policy (the session re-resolves at its next request). */
static void
set_policy(struct fixture *f, const char *text)
{
	struct wfpb_config	cfg;
	struct wfpb_ini_error	err;

	assert_int_equal(wfpb_config_parse(text, strlen(text), &f->b.cfg, &cfg, &err), 0);
	wfpb_broker_reload(&f->b, &cfg);
}

/* Refusals by the backend are events too (errors), and a client can cause one per request: same budget. */
static void
backend_refusals_do_not_flood_the_log(void **state)
{
	struct fixture			*f = *state;
	Wfpbroker__V1__Request		rq = WFPBROKER__V1__REQUEST__INIT;
	Wfpbroker__V1__PrepareRequest	pr = WFPBROKER__V1__PREPARE_REQUEST__INIT;
	Wfpbroker__V1__RecordSource	src = WFPBROKER__V1__RECORD_SOURCE__INIT;
	Wfpbroker__V1__Response		*r;
	unsigned long			before = wfpb_events_reported[WFPB_EVENT_BACKEND], logged;
	unsigned			i;

	set_policy(f, "[principal p]\nuid = 1000\nops = prepare apply_foreign\n");
	src.source_case = WFPBROKER__V1__RECORD_SOURCE__SOURCE_BLOB;
	src.blob.data = (uint8_t *)"junk";
	src.blob.len = 4;
	pr.records = &src;
	pr.family = WFPBROKER__V1__ADDRESS_FAMILY__AF_INET;
	rq.op_case = WFPBROKER__V1__REQUEST__OP_PREPARE;
	rq.prepare = &pr;
	for (i = 0; i < 500; i++) {
		rq.request_id = i + 1;
		r = roundtrip(f, &rq);
		assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__EINVAL);
		wfpbroker__v1__response__free_unpacked(r, NULL);
	}
	logged = wfpb_events_reported[WFPB_EVENT_BACKEND] - before;
	assert_int_equal(logged, WFPB_DENIAL_LOG_BURST);
	wfpb_broker_tick(&f->b, 4000);
	assert_int_equal(wfpb_events_reported[WFPB_EVENT_BACKEND] - before, logged + 1);
	assert_non_null(strstr(wfpb_test_last_event, "450 backend refusals not logged"));
}

/* 127.0.0.1:port as a wire address. */
static void
loopback_pb(Wfpbroker__V1__Address *a, uint16_t port)
{
	static uint8_t lo[4] = { 127, 0, 0, 1 };

	wfpbroker__v1__address__init(a);
	a->family = WFPBROKER__V1__ADDRESS_FAMILY__AF_INET;
	a->addr.data = lo;
	a->addr.len = 4;
	a->port = port;
}

/* A Listen (request id) on 127.0.0.1, port 0, in rq with its parts. */
static void
make_listen_loopback(Wfpbroker__V1__Request *rq, Wfpbroker__V1__ListenRequest *l, Wfpbroker__V1__Address *a,
    uint64_t id)
{
	wfpbroker__v1__request__init(rq);
	wfpbroker__v1__listen_request__init(l);
	loopback_pb(a, 0);
	l->local = a;
	rq->request_id = id;
	rq->op_case = WFPBROKER__V1__REQUEST__OP_LISTEN;
	rq->listen = l;
}

/* A Relay of listener lid to 127.0.0.1:port (no remote when port is 0). */
static void
make_relay(Wfpbroker__V1__Request *rq, Wfpbroker__V1__RelayRequest *re, Wfpbroker__V1__Address *a, uint64_t id,
    uint64_t lid, uint16_t port)
{
	wfpbroker__v1__request__init(rq);
	wfpbroker__v1__relay_request__init(re);
	loopback_pb(a, port);
	re->listener_id = lid;
	re->timeout_ms = 5000;
	re->remote = port != 0 ? a : NULL;
	rq->request_id = id;
	rq->op_case = WFPBROKER__V1__REQUEST__OP_RELAY;
	rq->relay = re;
}

/* A Listen on 127.0.0.1 through the session, of protocol (TCP or UDP): its answer. */
static Wfpbroker__V1__Response *
listen_loopback_as(struct fixture *f, uint64_t id, Wfpbroker__V1__Protocol protocol)
{
	Wfpbroker__V1__Request		rq;
	Wfpbroker__V1__ListenRequest	l;
	Wfpbroker__V1__Address		a;

	make_listen_loopback(&rq, &l, &a, id);
	l.protocol = protocol;
	return roundtrip(f, &rq);
}

static Wfpbroker__V1__Response *
listen_loopback(struct fixture *f, uint64_t id)
{
	return listen_loopback_as(f, id, WFPBROKER__V1__PROTOCOL__TCP);
}

/*
 * Listeners are descriptors: a principal holds at most
 * max_listeners_per_principal across its sessions, and a released one
 * counts no more.
 */
static void
listener_budget(void **state)
{
	struct fixture			*f = *state;
	Wfpbroker__V1__Request		rq = WFPBROKER__V1__REQUEST__INIT;
	Wfpbroker__V1__ReleaseRequest	rel = WFPBROKER__V1__RELEASE_REQUEST__INIT;
	Wfpbroker__V1__Response		*r;
	uint64_t			first;

	set_policy(f, "[service]\nmax_listeners_per_principal = 2\n"
	    "[principal p]\nuid = 1000\nops = listen\nlisten = 127.0.0.1/32:*\n");
	assert_non_null(r = listen_loopback(f, 1));
	assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__OK);
	first = r->listen->listener_id;
	wfpbroker__v1__response__free_unpacked(r, NULL);
	assert_non_null(r = listen_loopback(f, 2));
	assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__OK);
	wfpbroker__v1__response__free_unpacked(r, NULL);
	assert_non_null(r = listen_loopback(f, 3));
	assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__QUOTA);
	assert_non_null(strstr(r->status->message, "holds 2 listeners"));
	wfpbroker__v1__response__free_unpacked(r, NULL);
	rel.target_case = WFPBROKER__V1__RELEASE_REQUEST__TARGET_LISTENER_ID;
	rel.listener_id = first;
	rq.request_id = 4;
	rq.op_case = WFPBROKER__V1__REQUEST__OP_RELEASE;
	rq.release = &rel;
	assert_non_null(r = roundtrip(f, &rq));
	assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__OK);
	wfpbroker__v1__response__free_unpacked(r, NULL);
	assert_non_null(r = listen_loopback(f, 5));
	assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__OK);
	wfpbroker__v1__response__free_unpacked(r, NULL);
	assert_int_equal(wfpb_broker_usage(&f->b, "p")->listeners, 2);
}

/*
 * A backend test double, named for what it is: its queries fail with the
 * OS errors the test chooses, as the wfp ioctls do on a connection no
 * callout redirected (a health check, a direct connection to the proxy).
 */
static int	double_records_err, double_context_err;

static int
double_query_records(void *ctx, wfpb_sock s, struct wfpb_buf *out, int *os_err)
{
	(void)ctx;
	(void)s;
	out->data = NULL;
	out->len = 0;
	*os_err = double_records_err;
	return double_records_err ? WFPBROKER__V1__STATUS_CODE__EINVAL : 0;
}

static int
double_query_context(void *ctx, wfpb_sock s, struct wfpb_buf *out, int *os_err)
{
	(void)ctx;
	(void)s;
	out->data = NULL;
	out->len = 0;
	*os_err = double_context_err;
	return double_context_err ? WFPBROKER__V1__STATUS_CODE__EACCES : 0;
}

/* The listener a Listen answered (r, freed here) and a connection to it in *client: its id. */
static uint64_t
client_of(Wfpbroker__V1__Response *r, wfpb_sock *client)
{
	struct wfpb_addr	to = { .family = WFPB_AF_INET, .addr = { 127, 0, 0, 1 } };
	uint64_t		lid;
	int			os_err = 0, rc;

	assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__OK);
	lid = r->listen->listener_id;
	to.port = (uint16_t)r->listen->local->port;
	wfpbroker__v1__response__free_unpacked(r, NULL);
	assert_int_equal(wfpb__net_socket(WFPB_AF_INET, client, &os_err), 0);
	rc = wfpb__net_connect(*client, &to, &os_err);
	assert_true(rc == 0 || rc == WFPB_E_AGAIN);
	return lid;
}

/* A loopback listener of the session and a connection to it (*client): the listener's id. */
static uint64_t
listen_and_connect(struct fixture *f, wfpb_sock *client)
{
	Wfpbroker__V1__Response *r;

	assert_non_null(r = listen_loopback(f, 1));
	return client_of(r, client);
}

static Wfpbroker__V1__Response *
accept_one(struct fixture *f, wfpb_sock *client)
{
	Wfpbroker__V1__Request		rq = WFPBROKER__V1__REQUEST__INIT;
	Wfpbroker__V1__AcceptRequest	ac = WFPBROKER__V1__ACCEPT_REQUEST__INIT;

	/* The connection is in the listener's queue: the Accept completes at once. */
	ac.listener_id = listen_and_connect(f, client);
	rq.request_id = 2;
	rq.op_case = WFPBROKER__V1__REQUEST__OP_ACCEPT;
	rq.accept = &ac;
	return roundtrip(f, &rq);
}

static void
accept_without_redirect(void **state)
{
	static const struct wfpb_backend_ops double_ops = {
		.name = "double", .query_records = double_query_records, .query_context = double_query_context,
	};
	struct fixture			*f = *state;
	const struct wfpb_backend_ops	*real = f->b.backend.ops;
	Wfpbroker__V1__Response		*r;
	wfpb_sock			client, attach;
	size_t				len;

#ifdef _WIN32
	f->s->id.pid = GetCurrentProcessId();
	f->s->id.process = (intptr_t)GetCurrentProcess();
#endif
	set_policy(f, "[principal p]\nuid = 1000\nops = listen accept\nlisten = 127.0.0.1/32:*\n");
	f->b.backend.ops = &double_ops;
	/* Not redirected, no context: the Accept succeeds with neither, and says why. */
	double_records_err = 10022;
	double_context_err = 5;
	assert_non_null(r = accept_one(f, &client));
	assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__OK);
	assert_int_equal(r->result_case, WFPBROKER__V1__RESPONSE__RESULT_ACCEPT);
	assert_null(r->accept->records);
	assert_int_equal(r->accept->context.len, 0);
	assert_int_equal(r->accept->records_error, 10022);
	assert_int_equal(r->accept->context_error, 5);
	assert_non_null(strstr(r->status->message, "no redirect records"));
	wfpbroker__v1__response__free_unpacked(r, NULL);
	(void)wfpb_session_output(f->s, &len, &attach);
	wfpb__net_close(attach);
	wfpb__net_close(client);
	/* A principal that requires records gets a clear refusal, and the connection is closed. */
	set_policy(f, "[principal p]\nuid = 1000\nops = listen accept\nlisten = 127.0.0.1/32:*\nrequire_records = yes\n");
	assert_non_null(r = accept_one(f, &client));
	assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__NOT_FOUND);
	assert_non_null(strstr(r->status->message, "requires them"));
	assert_int_equal(r->result_case, WFPBROKER__V1__RESPONSE__RESULT__NOT_SET);
	wfpbroker__v1__response__free_unpacked(r, NULL);
	wfpb__net_close(client);
	f->b.backend.ops = real;
	double_records_err = double_context_err = 0;
}

/* One OS identity holds at most max_sessions_per_user sessions; others are not affected. */
static void
per_user_cap(void **state)
{
	struct fixture		*f = *state;
	struct wfpb_identity	same = { .known = 1, .uid = 1000, .user = "1000" };
	struct wfpb_identity	other = { .known = 1, .uid = 1001, .user = "1001" };
	struct wfpb_identity	unknown = { .known = 0 };
	struct wfpb_session	*s2, *s3, *s4;

	f->b.cfg.max_sessions_per_user = 2;
	assert_int_equal(wfpb_admit_user_sessions(&f->b, "1000"), 1);
	assert_int_equal(wfpb_admit_session(&f->b, &same), 0);
	assert_non_null(s2 = wfpb_session_new(&f->b, &same, 2000));
	assert_int_equal(wfpb_admit_session(&f->b, &same), WFPB_E_LIMIT);
	assert_int_equal(f->b.admit.rejected_user, 1);
	assert_int_equal(wfpb_admit_session(&f->b, &other), 0);
	/* A pipe session is opened unknown and learns its identity later: the cap applies then. */
	assert_non_null(s3 = wfpb_session_new(&f->b, &unknown, 2000));
	assert_int_equal(wfpb_session_set_identity(s3, &other), 0);
	assert_non_null(s4 = wfpb_session_new(&f->b, &unknown, 2000));
	assert_int_equal(wfpb_session_set_identity(s4, &same), WFPB_E_LIMIT);
	assert_true(s4->closing);
	wfpb_session_free(s4);
	wfpb_session_free(s3);
	assert_int_equal(wfpb_admit_user_sessions(&f->b, "1001"), 0);
	wfpb_session_free(s2);
	assert_int_equal(wfpb_admit_session(&f->b, &same), 0);
	f->b.cfg.max_sessions = 1;
	assert_int_equal(wfpb_admit_session(&f->b, &other), WFPB_E_LIMIT);
}

/*
 * A client that sends requests and reads no answers: past output_max the
 * session holds the rest (the server stops reading it), answers them once
 * the output is read, and is cut off if it stays over past output_stall_ms.
 */
static void
output_budget(void **state)
{
	struct fixture			*f = *state;
	Wfpbroker__V1__Request		rq = WFPBROKER__V1__REQUEST__INIT;
	Wfpbroker__V1__PingRequest	ping = WFPBROKER__V1__PING_REQUEST__INIT;
	static uint8_t			payload[1000], buf[2048];
	const uint8_t			*p;
	size_t				n, len, used, off;
	unsigned			i, answers = 0;
	int				rc;

	f->s->output_max = 4096;
	rq.op_case = WFPBROKER__V1__REQUEST__OP_PING;
	rq.ping = &ping;
	ping.payload.data = payload;
	ping.payload.len = sizeof(payload);
	for (i = 0; i < 20; i++) {
		rq.request_id = i + 1;
		n = wfpbroker__v1__request__get_packed_size(&rq);
		wfpbroker__v1__request__pack(&rq, buf);
		assert_int_equal(wfpb_channel_send(&f->c, buf, n), 0);
	}
	p = wfpb_channel_output(&f->c, &len);
	assert_int_equal(wfpb_session_input(f->s, p, len, 3000), 0);
	wfpb_channel_output_done(&f->c, len);
	assert_false(wfpb_session_wants_input(f->s));
	assert_non_null(wfpb_session_output(f->s, &len, &no_attach));
	assert_true(len <= 4096 + 1100);
	assert_int_equal(wfpb_session_deadline(f->s), 3000 + f->b.cfg.output_stall_ms);
	/* Reading the answers lets the held requests run, in order, until all twenty are answered. */
	for (;;) {
		while ((p = wfpb_session_output(f->s, &len, &no_attach)) != NULL) {
			for (off = 0; off < len; off += used) {
				if (wfpb_channel_feed(&f->c, p + off, len - off, &used) == WFPB_CHANNEL_MESSAGE)
					answers++;
			}
			wfpb_session_output_done(f->s, len);
		}
		if ((rc = wfpb_session_unthrottle(f->s, 3100)) == 0)
			break;
		assert_int_equal(rc, 1);
	}
	assert_int_equal(answers, 20);
	assert_true(wfpb_session_wants_input(f->s));
	/* Over again, and never read: past the stall deadline the session is cut off. */
	for (i = 0; i < 20; i++) {
		rq.request_id = 100 + i;
		n = wfpbroker__v1__request__get_packed_size(&rq);
		wfpbroker__v1__request__pack(&rq, buf);
		assert_int_equal(wfpb_channel_send(&f->c, buf, n), 0);
	}
	p = wfpb_channel_output(&f->c, &len);
	assert_int_equal(wfpb_session_input(f->s, p, len, 4000), 0);
	wfpb_channel_output_done(&f->c, len);
	assert_int_equal(wfpb_session_expire(f->s, 4000 + f->b.cfg.output_stall_ms), WFPB_E_LIMIT);
	assert_true(f->s->closing);
}

/* Runs the handshake of session s with a new client channel c speaking protocol version `version`. */
static void
handshake(struct wfpb_session *s, struct wfpb_channel *c, const uint8_t pub[WFPB_NOISE_DHLEN], unsigned version)
{
	const uint8_t	*p;
	size_t		len, used;

	assert_non_null(s);
	assert_int_equal(wfpb_channel_client_start_version(c, (uint16_t)version, pub, NULL), 0);
	p = wfpb_channel_output(c, &len);
	assert_int_equal(wfpb_session_input(s, p, len, 1001), 0);
	wfpb_channel_output_done(c, len);
	p = wfpb_session_output(s, &len, &no_attach);
	assert_int_equal(wfpb_channel_feed(c, p, len, &used), WFPB_CHANNEL_ESTABLISHED);
	wfpb_session_output_done(s, len);
}

#ifndef _WIN32
/* Descriptors sent before the handshake is complete are never kept. */
static void
descriptors_before_handshake_are_discarded(void **state)
{
	struct fixture		*f = *state;
	struct wfpb_identity	id = { .known = 1, .uid = 1000, .user = "1000" };
	struct wfpb_session	*s2 = wfpb_session_new(&f->b, &id, 5000);
	wfpb_sock		fds[2];
	int			p[2];

	assert_non_null(s2);
	assert_int_equal(pipe(p), 0);
	fds[0] = p[0];
	fds[1] = p[1];
	wfpb_session_add_fds(s2, fds, 2);
	assert_int_equal(s2->socks.n_in, 0);
	/* Closed (on the reaper thread: a pipe is not a socket); wait for it. */
	for (int i = 0; i < 100 && fcntl(p[1], F_GETFD) != -1; i++)
		usleep(10000);
	assert_int_equal(fcntl(p[1], F_GETFD), -1);
	/* After the handshake they are held for the next request. */
	assert_int_equal(pipe(p), 0);
	fds[0] = p[0];
	wfpb_session_add_fds(f->s, fds, 1);
	assert_int_equal(f->s->socks.n_in, 1);
	close(p[1]);
	wfpb_session_free(s2);
}

/*
 * A socket the client owns leaves the broker with the options it came with:
 * socket options belong to the socket, not to a descriptor, so a broker that
 * cleared SO_LINGER on its copy would take a proxy's abortive close ({1, 0},
 * how proxies pass a reset on) or its linger time away from it.
 */
static void
client_sockets_keep_their_options(void **state)
{
	struct fixture			*f = *state;
	Wfpbroker__V1__Request		rq = WFPBROKER__V1__REQUEST__INIT;
	Wfpbroker__V1__QueryRecordsRequest qr = WFPBROKER__V1__QUERY_RECORDS_REQUEST__INIT;
	Wfpbroker__V1__SocketTransfer	x = WFPBROKER__V1__SOCKET_TRANSFER__INIT;
	Wfpbroker__V1__Response		*r;
	const struct linger		want[2] = { { 1, 0 }, { 1, 7 } };
	struct linger			got;
	socklen_t			glen;
	wfpb_sock			copy;
	int				fd, i;

	set_policy(f, "[principal p]\nuid = 1000\nops = query\n");
	for (i = 0; i < 2; i++) {
		assert_true((fd = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
		assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_LINGER, &want[i], sizeof(want[i])), 0);
		copy = dup(fd);		/* what SCM_RIGHTS gives the broker: another descriptor, the same socket */
		wfpb_session_add_fds(f->s, &copy, 1);
		x.kind_case = WFPBROKER__V1__SOCKET_TRANSFER__KIND_FD_INDEX;
		qr.socket = &x;
		rq.request_id = 20 + (uint64_t)i;
		rq.op_case = WFPBROKER__V1__REQUEST__OP_QUERY_RECORDS;
		rq.query_records = &qr;
		assert_non_null(r = roundtrip(f, &rq));
		wfpbroker__v1__response__free_unpacked(r, NULL);
		/* The broker's copy is gone (closed, or on its way on the reaper thread)... */
		for (int w = 0; w < 100 && fcntl(copy, F_GETFD) != -1; w++)
			usleep(10000);
		assert_int_equal(fcntl(copy, F_GETFD), -1);
		/* ...and the client's socket still lingers as it asked. */
		glen = sizeof(got);
		assert_int_equal(getsockopt(fd, SOL_SOCKET, SO_LINGER, &got, &glen), 0);
		assert_int_equal(got.l_onoff != 0, 1);
		assert_int_equal(got.l_linger, want[i].l_linger);
		close(fd);
	}
}

#endif

#define TEMP_DIR_LEN	(MAX_TEMP + 64)
#ifdef _WIN32
#define MAX_TEMP	MAX_PATH
#else
#define MAX_TEMP	16
#endif

/* A new, empty directory for a test's broker: /tmp/wfpb-NAME-?????? (or under %TEMP%). */
static void
temp_dir(const char *name, char dir[TEMP_DIR_LEN])
{
#ifdef _WIN32
	char	base[MAX_PATH + 1];
	int	n;

	assert_true(GetTempPathA(sizeof(base), base) > 0);
	n = snprintf(dir, TEMP_DIR_LEN, "%swfpb-%s-%lu-%llu", base, name, (unsigned long)GetCurrentProcessId(),
	    (unsigned long long)GetTickCount64());
	assert_true(n > 0 && n < TEMP_DIR_LEN);
	assert_true(CreateDirectoryA(dir, NULL));
#else
	int n = snprintf(dir, TEMP_DIR_LEN, "/tmp/wfpb-%s-", name);

	/* mkdtemp's template: it replaces the six 'X' at the end. */
	assert_true(n > 0 && n + 7 <= TEMP_DIR_LEN);
	memset(dir + n, 'X', 6);
	dir[n + 6] = '\0';
	assert_non_null(mkdtemp(dir));
#endif
}

/*
 * A broker with policy and its audit log open in a new directory (temp_dir; its path in dir,
 * for remove_dir), signed with sk.
 */
static void
audited_broker(struct wfpb_broker *b, const char *policy, const char *name, char dir[TEMP_DIR_LEN],
    const struct wfpb_noise_keypair *key, unsigned char sk[64])
{
	struct wfpb_config	base, cfg;
	struct wfpb_ini_error	err;
	unsigned char		pk[32];
	char			msg[256];

	temp_dir(name, dir);
	wfpb_config_defaults(&base, "/x", dir);
	snprintf(base.backend, sizeof(base.backend), "sim");	/* unless the policy names another */
	assert_int_equal(wfpb_config_parse(policy, strlen(policy), &base, &cfg, &err), 0);
	assert_int_equal(wfpb_broker_init(b, &cfg, NULL, key, 1000), 0);
	crypto_sign_keypair(pk, sk);
	assert_int_equal(wfpb_broker_open_audit(b, sk, 1000, msg, sizeof(msg)), 0);
	assert_int_equal(wfpb_broker_commit(b, 1000), 0);
}

static void
remove_dir(const char *dir)
{
	char cmd[TEMP_DIR_LEN + 32];

#ifdef _WIN32
	snprintf(cmd, sizeof(cmd), "rmdir /s /q \"%s\"", dir);
	(void)system(cmd);
#else
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
#endif
}

/* Ends what audited_broker began: the broker, its signing key, its directory. */
static void
audited_broker_end(struct wfpb_broker *b, unsigned char sk[64], const char *dir)
{
	wfpb_broker_fini(b);
	sodium_memzero(sk, 64);
	remove_dir(dir);
}

/*
 * What the audit log in dir holds: records of kind (and op, when not NULL) with status,
 * counted; the first of them in *first when first is not NULL (free it; NULL when none).
 */
static unsigned
log_scan(const char *dir, int kind, const char *op, int status, Wfpbroker__V1__AuditRecord **first)
{
	char				path[TEMP_DIR_LEN + 16];
	static uint8_t			buf[1u << 20];
	Wfpbroker__V1__AuditRecord	*r;
	size_t				len = 0, off = 0, n;
	unsigned			count = 0;
	FILE				*fp;

	if (first != NULL)
		*first = NULL;
	snprintf(path, sizeof(path), "%s/audit.log", dir);
	assert_non_null(fp = fopen(path, "rb"));
	while ((n = fread(buf + len, 1, sizeof(buf) - len, fp)) > 0)
		len += n;
	fclose(fp);
	while (off + 4 <= len) {
		n = (size_t)buf[off] << 24 | (size_t)buf[off + 1] << 16 | (size_t)buf[off + 2] << 8 | buf[off + 3];
		assert_true(off + 4 + n <= len);
		assert_non_null(r = wfpbroker__v1__audit_record__unpack(NULL, n, buf + off + 4));
		if ((int)r->kind == kind && (op == NULL || strcmp(r->op, op) == 0) && (int)r->status == status &&
		    count++ == 0 && first != NULL)
			*first = r;
		else
			wfpbroker__v1__audit_record__free_unpacked(r, NULL);
		off += 4 + n;
	}
	return count;
}

static unsigned
log_count(const char *dir, int kind, const char *op, int status)
{
	return log_scan(dir, kind, op, status, NULL);
}

#ifndef _WIN32
/* An ApplyRecords of one inline sim record, on a new TCP socket handed to s with it (descriptor 0). */
struct inline_apply {
	Wfpbroker__V1__Request			rq;
	Wfpbroker__V1__ApplyRecordsRequest	ap;
	Wfpbroker__V1__SocketTransfer		x;
	Wfpbroker__V1__RecordSource		src;
	uint8_t					rec[WFPB_SIM_HDR_LEN + WFPB_SIM_HOP_LEN];
};

static Wfpbroker__V1__Request *
inline_apply(struct inline_apply *a, struct wfpb_session *s, uint64_t id)
{
	wfpb_sock fd = socket(AF_INET, SOCK_STREAM, 0);

	wfpbroker__v1__request__init(&a->rq);
	wfpbroker__v1__apply_records_request__init(&a->ap);
	wfpbroker__v1__socket_transfer__init(&a->x);
	wfpbroker__v1__record_source__init(&a->src);
	memset(a->rec, 0, sizeof(a->rec));
	memcpy(a->rec, "WFPS\x01\x00\x00\x01", 8);
	a->rec[WFPB_SIM_HDR_LEN] = WFPB_AF_INET;
	wfpb_session_add_fds(s, &fd, 1);
	a->x.kind_case = WFPBROKER__V1__SOCKET_TRANSFER__KIND_FD_INDEX;
	a->src.source_case = WFPBROKER__V1__RECORD_SOURCE__SOURCE_BLOB;
	a->src.blob.data = a->rec;
	a->src.blob.len = sizeof(a->rec);
	a->ap.socket = &a->x;
	a->ap.records = &a->src;
	a->rq.request_id = id;
	a->rq.op_case = WFPBROKER__V1__REQUEST__OP_APPLY_RECORDS;
	a->rq.apply_records = &a->ap;
	return &a->rq;
}

/*
 * ApplyRecords acts on the client's own socket, which the broker cannot take
 * back: its audit record is durable before the records are set, and when the
 * record cannot be made durable they never are.
 */
static void
apply_records_waits_for_its_record(void **state)
{
	static const char		policy[] = "[principal p]\nuid = 1000\nops = apply apply_foreign\n";
	struct wfpb_noise_keypair	*key = &((struct fixture *)*state)->key;
	struct wfpb_identity		id = { .known = 1, .pid = 42, .uid = 1000, .gid = 1000, .user = "1000" };
	struct wfpb_broker		b;
	struct wfpb_session		*s;
	struct wfpb_channel		c;
	struct inline_apply		a;
	Wfpbroker__V1__Request		*rq;
	Wfpbroker__V1__Response		*r;
	unsigned char			sk[64];
	char				dir[TEMP_DIR_LEN];
	uint8_t				buf[512];
	const uint8_t			*p, *m;
	size_t				n, len, used, mlen;

	audited_broker(&b, policy, "apply", dir, key, sk);
	s = wfpb_session_new(&b, &id, 1000);
	handshake(s, &c, key->pub, WFPB_PROTOCOL_VERSION);

	rq = inline_apply(&a, s, 9);
	n = wfpbroker__v1__request__get_packed_size(rq);
	wfpbroker__v1__request__pack(rq, buf);
	assert_int_equal(wfpb_channel_send(&c, buf, n), 0);
	p = wfpb_channel_output(&c, &len);
	assert_int_equal(wfpb_session_input(s, p, len, 1002), 0);
	wfpb_channel_output_done(&c, len);
	/* Recorded, not yet durable: nothing is applied and nothing answered. */
	assert_int_equal(b.backend.ops->records_applied(b.backend.ctx), 0);
	assert_null(wfpb_session_output(s, &len, &no_attach));
	assert_int_equal(wfpb_broker_commit(&b, 1003), 1);
	assert_ptr_equal(wfpb_broker_next_ready(&b), s);
	wfpb_session_released(s, 1003);
	assert_int_equal(b.backend.ops->records_applied(b.backend.ctx), 1);
	assert_non_null(p = wfpb_session_output(s, &len, &no_attach));
	assert_int_equal(wfpb_channel_feed(&c, p, len, &used), WFPB_CHANNEL_MESSAGE);
	wfpb_session_output_done(s, len);
	m = wfpb_channel_message(&c, &mlen);
	assert_non_null(r = wfpbroker__v1__response__unpack(NULL, mlen, m));
	assert_int_equal(r->request_id, 9);
	assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__OK);
	assert_int_equal(r->result_case, WFPBROKER__V1__RESPONSE__RESULT_APPLY_RECORDS);
	wfpbroker__v1__response__free_unpacked(r, NULL);

	/* The log cannot take the next record: the commit fails and the records are never set. */
	rq = inline_apply(&a, s, 10);
	n = wfpbroker__v1__request__get_packed_size(rq);
	wfpbroker__v1__request__pack(rq, buf);
	assert_int_equal(wfpb_channel_send(&c, buf, n), 0);
	p = wfpb_channel_output(&c, &len);
	assert_int_equal(wfpb_session_input(s, p, len, 1004), 0);
	wfpb_channel_output_done(&c, len);
	wfpb__file_close(b.audit.f);
	b.audit.f = WFPB_FILE_NONE;
	(void)wfpb_broker_commit(&b, 1005);
	while (wfpb_broker_next_ready(&b) != NULL)
		;
	wfpb_session_released(s, 1005);
	assert_true(s->closing);
	assert_int_equal(b.backend.ops->records_applied(b.backend.ctx), 1);
	assert_null(wfpb_session_output(s, &len, &no_attach));
	wfpb_session_free(s);
	wfpb_channel_free(&c);
	audited_broker_end(&b, sk, dir);
}

/*
 * Prepare under the netfilter backend: the socket handed over carries the
 * accepted connection's marks (inside the principal's mark_mask) and the
 * principal's own bit, set by the broker with CAP_NET_ADMIN; the client
 * could not have set them itself.
 */
static void
prepare_carries_the_marks(void **state)
{
	static const char		policy[] = "[service]\nbackend = netfilter\n[principal p]\nuid = 1000\n"
					    "ops = prepare apply_foreign\nmark = 0x10\nmark_mask = 0xff\n";
	struct wfpb_noise_keypair	*key = &((struct fixture *)*state)->key;
	struct wfpb_identity		id = { .known = 1, .pid = 42, .uid = 1000, .gid = 1000, .user = "1000" };
	struct wfpb_config		base, cfg;
	struct wfpb_ini_error		err;
	struct wfpb_nf_record		rec;
	struct wfpb_broker		b;
	struct fixture			g;
	Wfpbroker__V1__Request		rq = WFPBROKER__V1__REQUEST__INIT;
	Wfpbroker__V1__PrepareRequest	pr = WFPBROKER__V1__PREPARE_REQUEST__INIT;
	Wfpbroker__V1__RecordSource	src = WFPBROKER__V1__RECORD_SOURCE__INIT;
	Wfpbroker__V1__Response		*r;
	uint8_t				blob[WFPB_NF_RECORD_LEN];
	const uint8_t			*p;
	wfpb_sock			attach;
	size_t				len, used;
	uint32_t			mark = 0;
	socklen_t			mlen = sizeof(mark);

	if (geteuid() != 0) {
		print_message("not root: SO_MARK cannot be set here, nothing to check\n");
		return;
	}
	wfpb_config_defaults(&base, "/x", "/y");
	assert_int_equal(wfpb_config_parse(policy, sizeof(policy) - 1, &base, &cfg, &err), 0);
	assert_int_equal(wfpb_broker_init(&b, &cfg, NULL, key, 1000), 0);
	memset(&g, 0, sizeof(g));
	g.s = wfpb_session_new(&b, &id, 1000);
	assert_int_equal(wfpb_channel_client_start(&g.c, key->pub, NULL), 0);
	p = wfpb_channel_output(&g.c, &len);
	assert_int_equal(wfpb_session_input(g.s, p, len, 1001), 0);
	wfpb_channel_output_done(&g.c, len);
	p = wfpb_session_output(g.s, &len, &no_attach);
	assert_int_equal(wfpb_channel_feed(&g.c, p, len, &used), WFPB_CHANNEL_ESTABLISHED);
	wfpb_session_output_done(g.s, len);
	/* Records as a first proxy left them: its bit 0x1, and a routing mark outside the mask. */
	memset(&rec, 0, sizeof(rec));
	rec.orig_dst.family = WFPB_AF_INET;
	rec.orig_dst.addr[0] = 127;
	rec.orig_dst.addr[3] = 1;
	rec.orig_dst.port = 80;
	rec.mark = 0xca01;
	wfpb_nf_record_encode(&rec, blob);
	src.source_case = WFPBROKER__V1__RECORD_SOURCE__SOURCE_BLOB;
	src.blob.data = blob;
	src.blob.len = sizeof(blob);
	pr.records = &src;
	pr.family = WFPBROKER__V1__ADDRESS_FAMILY__AF_INET;
	rq.request_id = 4;
	rq.op_case = WFPBROKER__V1__REQUEST__OP_PREPARE;
	rq.prepare = &pr;
	{
		uint8_t	buf[256];
		size_t	n = wfpbroker__v1__request__get_packed_size(&rq);
		const uint8_t *m;

		wfpbroker__v1__request__pack(&rq, buf);
		assert_int_equal(wfpb_channel_send(&g.c, buf, n), 0);
		p = wfpb_channel_output(&g.c, &len);
		assert_int_equal(wfpb_session_input(g.s, p, len, 1002), 0);
		wfpb_channel_output_done(&g.c, len);
		assert_non_null(p = wfpb_session_output(g.s, &len, &attach));
		assert_true(attach != WFPB_SOCK_NONE);
		assert_int_equal(wfpb_channel_feed(&g.c, p, len, &used), WFPB_CHANNEL_MESSAGE);
		m = wfpb_channel_message(&g.c, &n);
		assert_non_null(r = wfpbroker__v1__response__unpack(NULL, n, m));
	}
	assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__OK);
	assert_int_equal(r->result_case, WFPBROKER__V1__RESPONSE__RESULT_PREPARE);
	wfpbroker__v1__response__free_unpacked(r, NULL);
	assert_int_equal(getsockopt((int)attach, SOL_SOCKET, SO_MARK, &mark, &mlen), 0);
	assert_int_equal(mark, 0x11);	/* (0xca01 & 0xff) | 0x10 */
	wfpb_session_output_done(g.s, len);	/* closes the broker's copy of the attachment */
	wfpb_session_free(g.s);
	wfpb_channel_free(&g.c);
	wfpb_broker_fini(&b);
}
#endif

#ifdef _WIN32
/*
 * A handle pulled from a client (secondary mode) may be a synchronous file
 * with a read pending, which answers no query until the read completes: the
 * probe that tells it from a socket then waits. Wine never waits, so the wait
 * is injected. It must not run under the core lock (every other session
 * would stop), and it must give up in bounded time with a clear status.
 */
static int	core_held;
static int	probe_saw_core_held = -1;

static void test_lock(void *arg) { (void)arg; core_held = 1; }
static void test_unlock(void *arg) { (void)arg; core_held = 0; }
static int test_owned(void *arg) { (void)arg; return core_held; }

static int
hanging_probe(intptr_t h, int *os_err)
{
	(void)h;
	probe_saw_core_held = core_held;
	Sleep(3000);	/* a read that completes late, if ever */
	*os_err = 0;
	return 1;
}

/*
 * A callout chooses the context's size. One that names 1 MiB (the injected
 * WSAIoctl answers ERROR_INSUFFICIENT_BUFFER with that size) makes the
 * Accept ENOBUFS — the connection is closed, nothing is allocated for it —
 * and the session, and so the LocalSystem service, serves on.
 */
static int WSAAPI
callout_huge_context(SOCKET s, DWORD code, LPVOID in, DWORD inlen, LPVOID out, DWORD outlen, LPDWORD ret,
    LPWSAOVERLAPPED ov, LPWSAOVERLAPPED_COMPLETION_ROUTINE cr)
{
	(void)s; (void)in; (void)inlen; (void)ov; (void)cr;
	if (code == SIO_QUERY_WFP_CONNECTION_REDIRECT_CONTEXT) {
		*ret = 1u << 20;
		WSASetLastError(ERROR_INSUFFICIENT_BUFFER);
		return SOCKET_ERROR;
	}
	memset(out, 0x5a, outlen < 64 ? outlen : 64);	/* QUERY_RECORDS: 64 bytes of records */
	*ret = outlen < 64 ? outlen : 64;
	return 0;
}

static void
callout_sized_context_is_enobufs_and_the_service_serves_on(void **state)
{
	struct fixture			*f = *state;
	Wfpbroker__V1__Request		rq = WFPBROKER__V1__REQUEST__INIT;
	Wfpbroker__V1__PingRequest	ping = WFPBROKER__V1__PING_REQUEST__INIT;
	const struct wfpb_backend	real = f->b.backend;
	Wfpbroker__V1__Response		*r;
	wfpb_sock			client;

	f->s->id.pid = GetCurrentProcessId();
	f->s->id.process = (intptr_t)GetCurrentProcess();
	set_policy(f, "[principal p]\nuid = 1000\nops = listen accept\nlisten = 127.0.0.1/32:*\n");
	assert_int_equal(wfpb_backend_open("wfp", &f->b.backend), 0);
	wfpb__wfp_set_ioctl(callout_huge_context);
	assert_non_null(r = accept_one(f, &client));
	assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__ENOBUFS);
	assert_non_null(strstr(r->status->message, "16384"));
	assert_int_equal(r->result_case, WFPBROKER__V1__RESPONSE__RESULT__NOT_SET);
	wfpbroker__v1__response__free_unpacked(r, NULL);
	wfpb__wfp_set_ioctl(NULL);
	wfpb__net_close(client);
	rq.request_id = 9;
	rq.op_case = WFPBROKER__V1__REQUEST__OP_PING;
	rq.ping = &ping;
	assert_non_null(r = roundtrip(f, &rq));
	assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__OK);
	wfpbroker__v1__response__free_unpacked(r, NULL);
	wfpb_backend_close(&f->b.backend);
	f->b.backend = real;
}

/*
 * The handle that pins a client holds no right to its handles: Microsoft says
 * PROCESS_DUP_HANDLE amounts to full access to the process. The right is
 * opened for the pull that needs it and dropped after; the pull still works.
 */
static void
pinned_client_holds_no_dup_right(void **state)
{
	struct fixture			*f = *state;
	PUBLIC_OBJECT_BASIC_INFORMATION	bi;
	ULONG				len = 0;
	HANDLE				pin, file, orig;
	char				path[MAX_PATH + 32];
	wfpb_sock			got;
	int				os_err = 0;

	(void)f;
	assert_true((pin = (HANDLE)wfpb__net_pin_process(GetCurrentProcessId(), &os_err)) != NULL);
	assert_int_equal(NtQueryObject(pin, ObjectBasicInformation, &bi, sizeof(bi), &len), 0);
	assert_int_equal(bi.GrantedAccess & PROCESS_DUP_HANDLE, 0);
	assert_int_equal(bi.GrantedAccess & ~(DWORD)(SYNCHRONIZE | PROCESS_QUERY_LIMITED_INFORMATION), 0);
	/* A pull through it reaches DuplicateHandle: a file comes back "not a socket", not "access denied". */
	GetTempPathA(MAX_PATH, path);
	strcat(path, "wfpb-pin-test");
	file = CreateFileA(path, GENERIC_READ | GENERIC_WRITE, 0, NULL, CREATE_ALWAYS,
	    FILE_ATTRIBUTE_TEMPORARY | FILE_FLAG_DELETE_ON_CLOSE, NULL);
	assert_true(file != INVALID_HANDLE_VALUE);
	orig = file;
	(void)wfpb__net_set_pull_probe(NULL);
	assert_int_not_equal(wfpb__net_pull((intptr_t)pin, (uint64_t)(uintptr_t)orig, &got, &os_err), WFPB_E_OS);
	wfpb__net_close(got);
	CloseHandle(file);
	CloseHandle(pin);
}

/* WSAPoll as Windows 10 before 2004 answers for a connect that failed: nothing, ever. */
static int
old_wsapoll(void *fds, unsigned long n, int timeout)
{
	(void)fds;
	(void)n;
	(void)timeout;
	return 0;
}

/*
 * A refused connect is seen as refused on every Windows: with a WSAPoll that
 * never reports the failure (the old behaviour, injected), the connect check
 * still answers ECONNREFUSED from FD_CONNECT, once the connect has failed.
 */
static void
refused_connect_is_seen_without_wsapoll(void **state)
{
	struct wfpb_addr	to = { .family = WFPB_AF_INET, .addr = { 127, 0, 0, 1 } };
	struct sockaddr_in	sin = { .sin_family = AF_INET };
	WSAEVENT		ev = WSACreateEvent();
	wfpb_wsapoll_fn		old;
	wfpb_sock		s, l;
	int			os_err = 0, done = 0, len = sizeof(sin), i;

	(void)state;
	/* A port nobody listens on: bind one, read its number, close it. */
	assert_int_equal(wfpb__net_socket(WFPB_AF_INET, &l, &os_err), 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind((SOCKET)l, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname((SOCKET)l, (struct sockaddr *)&sin, &len), 0);
	to.port = ntohs(sin.sin_port);
	wfpb__net_close(l);
	assert_int_equal(wfpb__net_socket(WFPB_AF_INET, &s, &os_err), 0);
	/* As the pipe server watches a pending connect. */
	assert_int_equal(WSAEventSelect((SOCKET)s, ev, FD_CONNECT), 0);
	old = wfpb__net_set_wsapoll(old_wsapoll);
	assert_int_equal(wfpb__net_connect(s, &to, &os_err), WFPB_E_AGAIN);
	for (i = 0; i < 50 && (done = wfpb__net_connect_done(s, &os_err)) == 0; i++)
		(void)WSAWaitForMultipleEvents(1, &ev, FALSE, 100, FALSE);
	(void)wfpb__net_set_wsapoll(old);
	assert_int_equal(done, -1);
	assert_int_equal(os_err, WSAECONNREFUSED);
	wfpb__net_close(s);
	WSACloseEvent(ev);
}

static void
pull_waits_off_the_core_lock_and_gives_up(void **state)
{
	struct fixture			*f = *state;
	Wfpbroker__V1__Request		rq = WFPBROKER__V1__REQUEST__INIT;
	Wfpbroker__V1__QueryRecordsRequest qr = WFPBROKER__V1__QUERY_RECORDS_REQUEST__INIT;
	Wfpbroker__V1__SocketTransfer	x = WFPBROKER__V1__SOCKET_TRANSFER__INIT;
	Wfpbroker__V1__Response		*r;
	char				path[MAX_PATH + 32];
	HANDLE				file;
	ULONGLONG			t0, dt;

	set_policy(f, "[principal p]\nuid = 1000\nops = query\n");
	GetTempPathA(MAX_PATH, path);
	strcat(path, "wfpb-pull-test");
	file = CreateFileA(path, GENERIC_READ | GENERIC_WRITE, 0, NULL, CREATE_ALWAYS,
	    FILE_ATTRIBUTE_TEMPORARY | FILE_FLAG_DELETE_ON_CLOSE, NULL);
	assert_true(file != INVALID_HANDLE_VALUE);
	/* The client is this process, pinned as the pipe server would (a pseudo-handle will do). */
	f->s->id.process = (intptr_t)GetCurrentProcess();
	f->b.lock = test_lock;
	f->b.unlock = test_unlock;
	f->b.owned = test_owned;
	(void)wfpb__net_set_pull_probe(hanging_probe);
	x.kind_case = WFPBROKER__V1__SOCKET_TRANSFER__KIND_HANDLE;
	x.handle = (uint64_t)(uintptr_t)file;
	qr.socket = &x;
	rq.request_id = 3;
	rq.op_case = WFPBROKER__V1__REQUEST__OP_QUERY_RECORDS;
	rq.query_records = &qr;
	t0 = GetTickCount64();
	r = roundtrip(f, &rq);
	dt = GetTickCount64() - t0;
	(void)wfpb__net_set_pull_probe(NULL);
	f->b.lock = f->b.unlock = NULL;
	f->b.owned = NULL;
	assert_non_null(r);
	assert_int_equal(probe_saw_core_held, 0);
	assert_true(dt < 1500);
	assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__EINVAL);
	assert_non_null(strstr(r->status->message, "did not answer"));
	wfpbroker__v1__response__free_unpacked(r, NULL);
	CloseHandle(file);
}
#endif

/*
 * Protocol version 2: many requests in flight per session, answered as they
 * complete. The helpers send without waiting and read whatever came.
 */
static void
send_request(struct wfpb_session *s, struct wfpb_channel *c, Wfpbroker__V1__Request *rq, uint64_t now_ms)
{
	uint8_t		buf[4096];
	const uint8_t	*p;
	size_t		n = wfpbroker__v1__request__get_packed_size(rq), len;

	assert_true(n <= sizeof(buf));
	wfpbroker__v1__request__pack(rq, buf);
	assert_int_equal(wfpb_channel_send(c, buf, n), 0);
	p = wfpb_channel_output(c, &len);
	assert_int_equal(wfpb_session_input(s, p, len, now_ms), 0);
	wfpb_channel_output_done(c, len);
}

/*
 * The next answer the session queued, or NULL when there is none. The sockets it hands over
 * are copied into socks (counted in *n) when socks is not NULL; the session closes its own.
 */
static Wfpbroker__V1__Response *
output_with_socks(struct wfpb_session *s, struct wfpb_channel *c, wfpb_sock socks[2], unsigned *n)
{
	const uint8_t	*p, *m;
	size_t		len, used, mlen;
	wfpb_sock	attach;
	int		ev;

	while ((p = wfpb_session_output(s, &len, &attach)) != NULL) {
#ifndef _WIN32
		/* Windows hands sockets over inside the answer's bytes: none is attached there. */
		if (attach != WFPB_SOCK_NONE && socks != NULL) {
			assert_true(*n < 2);
			socks[(*n)++] = dup(attach);
		}
#else
		(void)socks;
		(void)n;
#endif
		ev = wfpb_channel_feed(c, p, len, &used);
		assert_true(ev >= 0);
		wfpb_session_output_done(s, used);
		if (ev == WFPB_CHANNEL_MESSAGE) {
			m = wfpb_channel_message(c, &mlen);
			return wfpbroker__v1__response__unpack(NULL, mlen, m);
		}
	}
	return NULL;
}

/* The next answer the session queued, or NULL when there is none (a socket it hands over is closed). */
static Wfpbroker__V1__Response *
next_response(struct wfpb_session *s, struct wfpb_channel *c)
{
	return output_with_socks(s, c, NULL, NULL);
}

static void
make_accept(Wfpbroker__V1__Request *rq, Wfpbroker__V1__AcceptRequest *ac, uint64_t id, uint64_t listener)
{
	wfpbroker__v1__request__init(rq);
	wfpbroker__v1__accept_request__init(ac);
	ac->listener_id = listener;
	ac->timeout_ms = 5000;
	rq->request_id = id;
	rq->op_case = WFPBROKER__V1__REQUEST__OP_ACCEPT;
	rq->accept = ac;
}

static void
make_ping(Wfpbroker__V1__Request *rq, Wfpbroker__V1__PingRequest *pg, uint64_t id)
{
	wfpbroker__v1__request__init(rq);
	wfpbroker__v1__ping_request__init(pg);
	rq->request_id = id;
	rq->op_case = WFPBROKER__V1__REQUEST__OP_PING;
	rq->ping = pg;
}

/* An Accept on the declared listener called name, through the fixture's session. */
static Wfpbroker__V1__Response *
accept_declared(struct fixture *f, uint64_t id, const char *name)
{
	Wfpbroker__V1__Request		rq = WFPBROKER__V1__REQUEST__INIT;
	Wfpbroker__V1__AcceptRequest	ac = WFPBROKER__V1__ACCEPT_REQUEST__INIT;

	ac.listener = (char *)(uintptr_t)name;
	ac.timeout_ms = 5000;
	rq.request_id = id;
	rq.op_case = WFPBROKER__V1__REQUEST__OP_ACCEPT;
	rq.accept = &ac;
	return roundtrip(f, &rq);
}

/* A client connection to 127.0.0.1:port, left for the listener's queue. */
static wfpb_sock
connect_queued(uint16_t port)
{
	struct wfpb_addr	to = { .family = WFPB_AF_INET, .addr = { 127, 0, 0, 1 }, .port = port };
	wfpb_sock		c;
	int			os_err = 0, rc;

	assert_int_equal(wfpb__net_socket(WFPB_AF_INET, &c, &os_err), 0);
	rc = wfpb__net_connect(c, &to, &os_err);
	assert_true(rc == 0 || rc == WFPB_E_AGAIN);
#ifdef _WIN32
	Sleep(50);
#else
	usleep(50000);
#endif
	return c;
}

/*
 * A declared listener is the broker's, not a session's: its principal's
 * sessions accept on it by name, other principals cannot, and a connection
 * made while no session exists waits in its queue for the next session.
 */
static void
declared_listener_outlives_its_sessions(void **state)
{
	struct fixture		*f = *state;
	struct wfpb_identity	id = { .known = 1, .pid = 42, .uid = 1000, .gid = 1000, .user = "1000" };
	Wfpbroker__V1__Response	*r;
	char			err[256];
	uint16_t		port;
	wfpb_sock		c1, c2;

	set_policy(f, "[principal p]\nuid = 1000\nops = accept\n[principal other]\nuid = 1001\nops = accept\n"
	    "[listener web]\naddress = 127.0.0.1:0\nprincipal = p\n"
	    "[listener theirs]\naddress = 127.0.0.1:0\nprincipal = other\n");
	assert_int_equal(wfpb_broker_open_listeners(&f->b, NULL, err, sizeof(err)), 0);
	assert_int_equal(f->b.ndeclared, 2);
	port = f->b.declared[0].local.port;
	assert_true(port != 0);
#ifdef _WIN32
	f->s->id.pid = GetCurrentProcessId();
	f->s->id.process = (intptr_t)GetCurrentProcess();
#endif
	c1 = connect_queued(port);
	assert_non_null(r = accept_declared(f, 2, "web"));
	assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__OK);
	assert_non_null(r->accept->socket);
	wfpbroker__v1__response__free_unpacked(r, NULL);
	/* Another principal's, and one that does not exist: the same NOT_FOUND. */
	assert_non_null(r = accept_declared(f, 3, "theirs"));
	assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__NOT_FOUND);
	wfpbroker__v1__response__free_unpacked(r, NULL);
	assert_non_null(r = accept_declared(f, 4, "nope"));
	assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__NOT_FOUND);
	wfpbroker__v1__response__free_unpacked(r, NULL);
	/* The session ends; a client connects meanwhile; the next session accepts it. */
	wfpb_session_free(f->s);
	wfpb_channel_free(&f->c);
	c2 = connect_queued(port);
	f->s = wfpb_session_new(&f->b, &id, 3000);
#ifdef _WIN32
	f->s->id.pid = GetCurrentProcessId();
	f->s->id.process = (intptr_t)GetCurrentProcess();
#endif
	handshake(f->s, &f->c, f->key.pub, WFPB_PROTOCOL_VERSION);
	assert_non_null(r = accept_declared(f, 5, "web"));
	assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__OK);
	wfpbroker__v1__response__free_unpacked(r, NULL);
	wfpb__net_close(c1);
	wfpb__net_close(c2);
}

#ifdef _WIN32
/*
 * A socket enters the client's process only when the answer that carries it is
 * written, never while the answer is built: an answer that is held (its record
 * not yet durable) or never delivered leaves nothing there. The net layer counts
 * the sockets it duplicated into a client.
 */
static void
socket_enters_the_client_only_with_its_answer(void **state)
{
	struct fixture			*f = *state;
	Wfpbroker__V1__Request		rq = WFPBROKER__V1__REQUEST__INIT;
	Wfpbroker__V1__AcceptRequest	ac = WFPBROKER__V1__ACCEPT_REQUEST__INIT;
	Wfpbroker__V1__Response		*r;
	uint64_t			before;
	wfpb_sock			client;

	f->s->id.pid = GetCurrentProcessId();
	f->s->id.process = (intptr_t)GetCurrentProcess();
	set_policy(f, "[principal p]\nuid = 1000\nops = listen accept\nlisten = 127.0.0.1/32:*\n");
	ac.listener_id = listen_and_connect(f, &client);
	Sleep(50);	/* the connection reaches the listener's queue */
	before = wfpb__net_handovers();
	rq.request_id = 2;
	rq.op_case = WFPBROKER__V1__REQUEST__OP_ACCEPT;
	rq.accept = &ac;
	send_request(f->s, &f->c, &rq, 2000);
	/* Answered and queued, not yet written: nothing was duplicated into the client. */
	assert_int_equal(wfpb__net_handovers(), before);
	assert_non_null(r = next_response(f->s, &f->c));
	assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__OK);
	assert_non_null(r->accept->socket);
	assert_int_equal(r->accept->socket->kind_case, WFPBROKER__V1__SOCKET_TRANSFER__KIND_WSA_PROTOCOL_INFO);
	assert_int_equal(r->accept->socket->wsa_protocol_info.len, sizeof(WSAPROTOCOL_INFOW));
	/* Written: duplicated now, and what the frame carries is a socket the client can open. */
	assert_int_equal(wfpb__net_handovers(), before + 1);
	{
		SOCKET got = WSASocketW(FROM_PROTOCOL_INFO, FROM_PROTOCOL_INFO, FROM_PROTOCOL_INFO,
		    (WSAPROTOCOL_INFOW *)r->accept->socket->wsa_protocol_info.data, 0, WSA_FLAG_OVERLAPPED);

		assert_true(got != INVALID_SOCKET);
		closesocket(got);
	}
	wfpbroker__v1__response__free_unpacked(r, NULL);
	wfpb__net_close(client);
}
#endif

#ifdef _WIN32
/*
 * A Relay's two sockets enter the client's process only with the answer that carries them,
 * each into its own WSAPROTOCOL_INFOW (the placeholders carry their index): the first the
 * accepted connection, the second the upstream one.
 */
static void
relay_sockets_enter_the_client_with_their_answer(void **state)
{
	struct fixture			*f = *state;
	Wfpbroker__V1__Request		rq;
	Wfpbroker__V1__RelayRequest	re;
	Wfpbroker__V1__Address		a;
	Wfpbroker__V1__Response		*r = NULL;
	struct wfpb_addr		lo = { .family = WFPB_AF_INET, .addr = { 127, 0, 0, 1 } }, bound, mine;
	struct sockaddr_in		sin;
	uint64_t			before;
	wfpb_sock			client, up;
	SOCKET				got[2];
	int				os_err = 0, slen, i;

	f->s->id.pid = GetCurrentProcessId();
	f->s->id.process = (intptr_t)GetCurrentProcess();
	set_policy(f, "[principal p]\nuid = 1000\nops = listen accept connect\nlisten = 127.0.0.1/32:*\n"
	    "connect = 127.0.0.1/32:*\n");
	assert_int_equal(wfpb__net_listen(&lo, 8, &up, &bound, &os_err), 0);
	make_relay(&rq, &re, &a, 2, listen_and_connect(f, &client), bound.port);
	Sleep(50);	/* the connection reaches the listener's queue */
	before = wfpb__net_handovers();
	send_request(f->s, &f->c, &rq, 2000);
	assert_int_equal(wfpb__net_handovers(), before);
	for (i = 0; i < 200 && (r = next_response(f->s, &f->c)) == NULL; i++) {
		Sleep(5);
		assert_true(wfpb_session_resume(f->s, WFPB_SOCK_NONE, 2000) >= 0);
	}
	assert_non_null(r);
	assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__OK);
	assert_int_equal(wfpb__net_handovers(), before + 2);
	assert_int_equal(r->relay->accepted->kind_case, WFPBROKER__V1__SOCKET_TRANSFER__KIND_WSA_PROTOCOL_INFO);
	assert_int_equal(r->relay->upstream->kind_case, WFPBROKER__V1__SOCKET_TRANSFER__KIND_WSA_PROTOCOL_INFO);
	got[0] = WSASocketW(FROM_PROTOCOL_INFO, FROM_PROTOCOL_INFO, FROM_PROTOCOL_INFO,
	    (WSAPROTOCOL_INFOW *)r->relay->accepted->wsa_protocol_info.data, 0, WSA_FLAG_OVERLAPPED);
	got[1] = WSASocketW(FROM_PROTOCOL_INFO, FROM_PROTOCOL_INFO, FROM_PROTOCOL_INFO,
	    (WSAPROTOCOL_INFOW *)r->relay->upstream->wsa_protocol_info.data, 0, WSA_FLAG_OVERLAPPED);
	assert_true(got[0] != INVALID_SOCKET && got[1] != INVALID_SOCKET);
	/* Each is what its field says: the client's connection, and the one to the upstream. */
	assert_int_equal(wfpb__net_addrs(client, NULL, &mine, &os_err), 0);
	slen = sizeof(sin);
	assert_int_equal(getpeername(got[0], (struct sockaddr *)&sin, &slen), 0);
	assert_int_equal(ntohs(sin.sin_port), mine.port);
	slen = sizeof(sin);
	assert_int_equal(getpeername(got[1], (struct sockaddr *)&sin, &slen), 0);
	assert_int_equal(ntohs(sin.sin_port), bound.port);
	closesocket(got[0]);
	closesocket(got[1]);
	wfpbroker__v1__response__free_unpacked(r, NULL);
	wfpb__net_close(client);
	wfpb__net_close(up);
}
#endif

#ifdef _WIN32
/* What the wfp backend asked of Winsock for a UDP listener and a flow's first datagram (named fakes). */
static struct {
	int	opts[4][3];		/* level, name, value of each redirect option enabled */
	int	nopts;
	int	send_fails;		/* the fake WSASendMsg refuses with this error */
	int	level, type;		/* the control message sent */
	size_t	ctl_len;
	uint8_t	ctl[64];
	int	nctl;			/* control messages in the last WSASendMsg */
} winsock_seen;

static int WSAAPI
fake_setsockopt(SOCKET s, int level, int name, const char *val, int len)
{
	if ((name == 60 || name == 70) && (level == IPPROTO_IP || level == IPPROTO_IPV6)) {
		if (winsock_seen.nopts < 4) {
			winsock_seen.opts[winsock_seen.nopts][0] = level;
			winsock_seen.opts[winsock_seen.nopts][1] = name;
			winsock_seen.opts[winsock_seen.nopts][2] = len == sizeof(DWORD) ? (int)*(const DWORD *)val : -1;
			winsock_seen.nopts++;
		}
		return 0;	/* as a Windows that knows the options would */
	}
	return setsockopt(s, level, name, val, len);
}

/* Records the control data, then sends the datagram as WSASendMsg would (Wine ignores the records). */
static int WSAAPI
fake_sendmsg(SOCKET s, LPWSAMSG msg, DWORD flags, LPDWORD sent, LPWSAOVERLAPPED ov,
    LPWSAOVERLAPPED_COMPLETION_ROUTINE cr)
{
	WSACMSGHDR *c;

	(void)flags; (void)ov; (void)cr;
	if (winsock_seen.send_fails != 0) {
		WSASetLastError(winsock_seen.send_fails);
		return SOCKET_ERROR;
	}
	winsock_seen.nctl = 0;
	for (c = msg->Control.len ? WSA_CMSG_FIRSTHDR(msg) : NULL; c != NULL; c = WSA_CMSG_NXTHDR(msg, c)) {
		winsock_seen.nctl++;
		winsock_seen.level = c->cmsg_level;
		winsock_seen.type = c->cmsg_type;
		winsock_seen.ctl_len = c->cmsg_len - WSA_CMSG_LEN(0);
		memcpy(winsock_seen.ctl, WSA_CMSG_DATA(c), winsock_seen.ctl_len < 64 ? winsock_seen.ctl_len : 64);
	}
	*sent = msg->lpBuffers[0].len;
	return send(s, msg->lpBuffers[0].buf, (int)msg->lpBuffers[0].len, 0) == (int)msg->lpBuffers[0].len ? 0 :
	    SOCKET_ERROR;
}

/* A Windows answer once its late hand-over ran: resumed until it is there. */
static Wfpbroker__V1__Response *
answer_of(struct fixture *f, Wfpbroker__V1__Request *rq)
{
	Wfpbroker__V1__Response	*r = NULL;
	int			i;

	send_request(f->s, &f->c, rq, 2000);
	for (i = 0; i < 200 && (r = next_response(f->s, &f->c)) == NULL; i++) {
		Sleep(5);
		assert_true(wfpb_session_resume(f->s, WFPB_SOCK_NONE, 2000) >= 0);
	}
	assert_non_null(r);
	return r;
}

/* A Flow on listener lid with the first datagram as the proxy read it: from port cport, records 16 x 0x5a. */
static void
make_flow_first(Wfpbroker__V1__Request *rq, Wfpbroker__V1__FlowRequest *fl, Wfpbroker__V1__FlowFirst *first,
    Wfpbroker__V1__Address *client, uint64_t id, uint64_t lid, uint16_t cport, uint8_t *context, size_t context_len)
{
	static uint8_t records[16];

	memset(records, 0x5a, sizeof(records));
	wfpbroker__v1__request__init(rq);
	wfpbroker__v1__flow_request__init(fl);
	wfpbroker__v1__flow_first__init(first);
	loopback_pb(client, cport);
	first->client = client;
	first->payload.data = (uint8_t *)"query";
	first->payload.len = 5;
	first->records.data = records;
	first->records.len = sizeof(records);
	first->context.data = context;
	first->context.len = context_len;
	fl->listener_id = lid;
	fl->first = first;
	rq->request_id = id;
	rq->op_case = WFPBROKER__V1__REQUEST__OP_FLOW;
	rq->flow = fl;
}

/*
 * UDP on the wfp backend, as Microsoft documents it (docs/DECISIONS.md): the listener enables
 * IP_WFP_REDIRECT_RECORDS and _CONTEXT and goes, exclusive, to the proxy with the Listen's
 * answer, since every datagram of a redirected flow reaches the listener's port and replies
 * must leave from it. The proxy gives the broker the first datagram it read; the broker sends
 * it upstream with the records as one IP_WFP_REDIRECT_RECORDS control message (WSASendMsg),
 * to the original destination read from the context, and hands upstream over. Refused: a Flow
 * without the datagram, records without apply_foreign, hold_first with records, a WSASendMsg
 * that fails (nothing handed over). Winsock's two calls are named fakes (Wine has neither
 * option); then the real setsockopt, whose answer under Wine is the Listen's.
 */
static void
udp_flow_stays_on_the_listener_wfp(void **state)
{
	struct fixture			*f = *state;
	const struct wfpb_backend	real = f->b.backend;
	Wfpbroker__V1__Request		rq;
	Wfpbroker__V1__FlowRequest	fl;
	Wfpbroker__V1__FlowFirst	first;
	Wfpbroker__V1__Address		client;
	Wfpbroker__V1__Response		*r;
	struct sockaddr_in		sin = { .sin_family = AF_INET };
	uint8_t				context[256];
	uint64_t			lid, applied;
	uint16_t			uport, lport;
	SOCKET				up, held, upstream;
	char				buf[32];
	int				slen = sizeof(sin), n;

	f->s->id.pid = GetCurrentProcessId();
	f->s->id.process = (intptr_t)GetCurrentProcess();
	set_policy(f, "[principal p]\nuid = 1000\nops = udp_listen udp_flow apply_foreign\n"
	    "udp_listen = 127.0.0.1/32:*\nudp_connect = 127.0.0.1/32:*\n");
	assert_int_equal(wfpb_backend_open("wfp", &f->b.backend), 0);
	memset(&winsock_seen, 0, sizeof(winsock_seen));
	wfpb__wfp_set_setsockopt(fake_setsockopt);
	wfpb__wfp_set_sendmsg(fake_sendmsg);
	applied = f->b.backend.ops->records_applied(f->b.backend.ctx);

	assert_non_null(r = listen_loopback_as(f, 1, WFPBROKER__V1__PROTOCOL__UDP));
	assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__OK);
	assert_int_equal(winsock_seen.nopts, 2);
	assert_int_equal(winsock_seen.opts[0][0], IPPROTO_IP);
	assert_int_equal(winsock_seen.opts[0][1], 60);
	assert_int_equal(winsock_seen.opts[0][2], 1);
	assert_int_equal(winsock_seen.opts[1][1], 70);
	assert_int_equal(winsock_seen.opts[1][2], 1);
	assert_non_null(r->listen->socket);
	assert_int_equal(r->listen->socket->kind_case, WFPBROKER__V1__SOCKET_TRANSFER__KIND_WSA_PROTOCOL_INFO);
	held = WSASocketW(FROM_PROTOCOL_INFO, FROM_PROTOCOL_INFO, FROM_PROTOCOL_INFO,
	    (WSAPROTOCOL_INFOW *)r->listen->socket->wsa_protocol_info.data, 0, WSA_FLAG_OVERLAPPED);
	assert_true(held != INVALID_SOCKET);
	assert_int_equal(getsockname(held, (struct sockaddr *)&sin, &slen), 0);
	lid = r->listen->listener_id;
	lport = (uint16_t)r->listen->local->port;
	assert_int_equal(ntohs(sin.sin_port), lport);
	wfpbroker__v1__response__free_unpacked(r, NULL);

	/* The upstream "origin", named by the context as a WFPSampler callout writes it. */
	up = socket(AF_INET, SOCK_DGRAM, IPPROTO_UDP);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = 0;
	assert_int_equal(bind(up, (struct sockaddr *)&sin, sizeof(sin)), 0);
	slen = sizeof(sin);
	assert_int_equal(getsockname(up, (struct sockaddr *)&sin, &slen), 0);
	uport = ntohs(sin.sin_port);
	memset(context, 0, sizeof(context));
	memcpy(context, &sin, sizeof(sin));	/* two SOCKADDR_STORAGE: where it was going, and the proxy */
	sin.sin_port = htons(lport);
	memcpy(context + 128, &sin, sizeof(sin));
	sin.sin_port = htons(uport);

	make_flow_first(&rq, &fl, &first, &client, 2, lid, 5555, context, sizeof(context));
	assert_non_null(r = answer_of(f, &rq));
	if (r->status->code != WFPBROKER__V1__STATUS_CODE__OK)
		print_message("flow: %s\n", r->status->message);
	assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__OK);
	assert_null(r->flow->reply);
	assert_non_null(r->flow->upstream);
	assert_true(r->flow->forwarded);
	assert_int_equal(r->flow->original_destination->port, uport);
	assert_int_equal(r->flow->remote->port, uport);
	assert_int_equal(r->flow->client->port, 5555);
	upstream = WSASocketW(FROM_PROTOCOL_INFO, FROM_PROTOCOL_INFO, FROM_PROTOCOL_INFO,
	    (WSAPROTOCOL_INFOW *)r->flow->upstream->wsa_protocol_info.data, 0, WSA_FLAG_OVERLAPPED);
	assert_true(upstream != INVALID_SOCKET);
	wfpbroker__v1__response__free_unpacked(r, NULL);
	/* One control message: the records, at the socket's level, exactly. */
	assert_int_equal(winsock_seen.nctl, 1);
	assert_int_equal(winsock_seen.level, IPPROTO_IP);
	assert_int_equal(winsock_seen.type, 60);
	assert_int_equal(winsock_seen.ctl_len, 16);
	assert_int_equal(winsock_seen.ctl[0], 0x5a);
	assert_int_equal(winsock_seen.ctl[15], 0x5a);
	assert_int_equal(f->b.backend.ops->records_applied(f->b.backend.ctx), applied + 1);
	/* The datagram reached the origin from the socket handed over, which takes its answer. */
	slen = sizeof(sin);
	n = recvfrom(up, buf, sizeof(buf), 0, (struct sockaddr *)&sin, &slen);
	assert_int_equal(n, 5);
	assert_memory_equal(buf, "query", 5);
	assert_int_equal(sendto(up, "answer", 6, 0, (struct sockaddr *)&sin, slen), 6);
	assert_int_equal(recv(upstream, buf, sizeof(buf), 0), 6);
	closesocket(upstream);

	/* A context in no layout the broker reads: remote must be named, and the answer says nothing of it. */
	{
		Wfpbroker__V1__Address ra;

		make_flow_first(&rq, &fl, &first, &client, 8, lid, 5555, NULL, 0);
		assert_non_null(r = roundtrip(f, &rq));
		assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__EINVAL);
		assert_non_null(strstr(r->status->message, "name remote"));
		wfpbroker__v1__response__free_unpacked(r, NULL);
		make_flow_first(&rq, &fl, &first, &client, 9, lid, 5555, NULL, 0);
		loopback_pb(&ra, uport);
		fl.remote = &ra;
		assert_non_null(r = answer_of(f, &rq));
		assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__OK);
		assert_null(r->flow->original_destination);
		assert_int_equal(r->flow->remote->port, uport);
		upstream = WSASocketW(FROM_PROTOCOL_INFO, FROM_PROTOCOL_INFO, FROM_PROTOCOL_INFO,
		    (WSAPROTOCOL_INFOW *)r->flow->upstream->wsa_protocol_info.data, 0, WSA_FLAG_OVERLAPPED);
		assert_true(upstream != INVALID_SOCKET);
		closesocket(upstream);
		wfpbroker__v1__response__free_unpacked(r, NULL);
		slen = sizeof(sin);
		assert_int_equal(recvfrom(up, buf, sizeof(buf), 0, (struct sockaddr *)&sin, &slen), 5);
		applied++;
	}
	/* Refused: a Flow the broker would read itself; hold_first with records; a failed send. */
	make_flow_first(&rq, &fl, &first, &client, 3, lid, 5555, context, sizeof(context));
	fl.first = NULL;
	assert_non_null(r = roundtrip(f, &rq));
	assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__EOPNOTSUPP);
	assert_non_null(strstr(r->status->message, "Flow.first"));
	wfpbroker__v1__response__free_unpacked(r, NULL);
	make_flow_first(&rq, &fl, &first, &client, 4, lid, 5555, context, sizeof(context));
	fl.hold_first = 1;
	assert_non_null(r = roundtrip(f, &rq));
	assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__EOPNOTSUPP);
	wfpbroker__v1__response__free_unpacked(r, NULL);
	winsock_seen.send_fails = WSAEACCES;
	make_flow_first(&rq, &fl, &first, &client, 5, lid, 5555, context, sizeof(context));
	assert_non_null(r = roundtrip(f, &rq));
	assert_int_not_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__OK);
	assert_null(r->flow);
	assert_int_equal(r->result_case, WFPBROKER__V1__RESPONSE__RESULT__NOT_SET);
	wfpbroker__v1__response__free_unpacked(r, NULL);
	winsock_seen.send_fails = 0;
	/* The records are the proxy's word: without apply_foreign they are not sent. */
	set_policy(f, "[principal p]\nuid = 1000\nops = udp_listen udp_flow\n"
	    "udp_listen = 127.0.0.1/32:*\nudp_connect = 127.0.0.1/32:*\n");
	make_flow_first(&rq, &fl, &first, &client, 6, lid, 5555, context, sizeof(context));
	assert_non_null(r = roundtrip(f, &rq));
	assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__DENIED);
	assert_non_null(strstr(r->status->message, "apply_foreign"));
	wfpbroker__v1__response__free_unpacked(r, NULL);
	assert_int_equal(f->b.backend.ops->records_applied(f->b.backend.ctx), applied + 1);

	/* Winsock as it is here: Wine has neither option, and the Listen says so. */
	wfpb__wfp_set_setsockopt(NULL);
	wfpb__wfp_set_sendmsg(NULL);
	assert_non_null(r = listen_loopback_as(f, 7, WFPBROKER__V1__PROTOCOL__UDP));
	print_message("UDP Listen, real setsockopt: %s\n", r->status->message);
	assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__EOPNOTSUPP);
	assert_int_equal(r->status->os_error, WSAENOPROTOOPT);
	wfpbroker__v1__response__free_unpacked(r, NULL);
	closesocket(held);
	closesocket(up);
	assert_false(f->s->closing);
	wfpb_backend_close(&f->b.backend);
	f->b.backend = real;
}
#endif

#ifdef _WIN32
/*
 * For the audited Windows hand-over tests: a session (client pid as given, the
 * test's own process pinned) whose Listen is answered and durable, a client
 * connected to it (*client), and an Accept (request 2) sent and answered, its
 * record queued but not yet committed (now 1003).
 */
/* The principal of the audited hand-over tests. */
#define HANDOVER_POLICY	"[principal p]\nuid = 1000\nops = listen accept\nlisten = 127.0.0.1/32:*\n"

static struct wfpb_session *
audited_accept_sent(struct wfpb_broker *b, struct wfpb_channel *c, const struct wfpb_noise_keypair *key, uint32_t pid,
    wfpb_sock *client)
{
	struct wfpb_identity		id = { .known = 1, .uid = 1000, .gid = 1000, .user = "1000" };
	struct wfpb_session		*s;
	Wfpbroker__V1__Request		rq = WFPBROKER__V1__REQUEST__INIT;
	Wfpbroker__V1__ListenRequest	ls = WFPBROKER__V1__LISTEN_REQUEST__INIT;
	Wfpbroker__V1__AcceptRequest	ac = WFPBROKER__V1__ACCEPT_REQUEST__INIT;
	Wfpbroker__V1__Address		local = WFPBROKER__V1__ADDRESS__INIT;
	Wfpbroker__V1__Response		*r;
	uint8_t				lo[4] = { 127, 0, 0, 1 };

	id.pid = pid;
	s = wfpb_session_new(b, &id, 1000);
	s->id.process = (intptr_t)GetCurrentProcess();
	handshake(s, c, key->pub, WFPB_PROTOCOL_VERSION);
	local.family = WFPBROKER__V1__ADDRESS_FAMILY__AF_INET;
	local.addr.data = lo;
	local.addr.len = 4;
	ls.local = &local;
	rq.request_id = 1;
	rq.op_case = WFPBROKER__V1__REQUEST__OP_LISTEN;
	rq.listen = &ls;
	send_request(s, c, &rq, 1001);
	assert_int_equal(wfpb_broker_commit(b, 1002), 1);
	while (wfpb_broker_next_ready(b) != NULL)
		;
	wfpb_session_released(s, 1002);
	assert_non_null(r = next_response(s, c));
	assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__OK);
	ac.listener_id = r->listen->listener_id;
	*client = connect_queued((uint16_t)r->listen->local->port);
	wfpbroker__v1__response__free_unpacked(r, NULL);
	ac.timeout_ms = 5000;
	rq.request_id = 2;
	rq.op_case = WFPBROKER__V1__REQUEST__OP_ACCEPT;
	rq.accept = &ac;
	send_request(s, c, &rq, 1003);
	return s;
}
#endif

#ifdef _WIN32
/*
 * An answer that never goes out leaves nothing in the client: the Accept is
 * answered while its record is not yet durable, the commit then fails, and
 * the socket is never duplicated into the client; the session's end closes it.
 */
static void
undelivered_answer_leaves_nothing_in_the_client(void **state)
{
	struct wfpb_noise_keypair	*key = &((struct fixture *)*state)->key;
	struct wfpb_broker		b;
	struct wfpb_session		*s;
	struct wfpb_channel		c;
	unsigned char			sk[64];
	char				dir[TEMP_DIR_LEN];
	uint64_t			before = wfpb__net_handovers();
	wfpb_sock			client;
	size_t				len;

	audited_broker(&b, HANDOVER_POLICY, "undelivered", dir, key, sk);
	s = audited_accept_sent(&b, &c, key, GetCurrentProcessId(), &client);
	/* Answered, its record queued, not durable: the answer waits, and its socket with it. */
	assert_null(wfpb_session_output(s, &len, &no_attach));
	assert_int_equal(wfpb__net_handovers(), before);
	/* The log cannot take it: the commit fails, and the answer never goes. */
	wfpb__file_close(b.audit.f);
	b.audit.f = WFPB_FILE_NONE;
	(void)wfpb_broker_commit(&b, 1004);
	while (wfpb_broker_next_ready(&b) != NULL)
		;
	wfpb_session_released(s, 1004);
	assert_null(wfpb_session_output(s, &len, &no_attach));
	assert_int_equal(wfpb__net_handovers(), before);
	wfpb_session_free(s);
	assert_int_equal(wfpb__net_handovers(), before);
	wfpb_channel_free(&c);
	wfpb__net_close(client);
	audited_broker_end(&b, sk, dir);
}
#endif

/*
 * Version 1 (PROTOCOL.md §3): more than 128 KiB of requests behind a waiting
 * Accept closes the session at once, the Accept unanswered (its end recorded).
 */
static void
v1_flood_behind_a_waiting_accept_ends_the_session(void **state)
{
	struct fixture			*f = *state;
	struct wfpb_identity		id = { .known = 1, .pid = 42, .uid = 1000, .gid = 1000, .user = "1000" };
	Wfpbroker__V1__Request		rq;
	Wfpbroker__V1__AcceptRequest	ac;
	Wfpbroker__V1__PingRequest	pg;
	Wfpbroker__V1__Response		*r;
	struct wfpb_session		*s, *keep = f->s;
	struct wfpb_channel		c, keep_c;
	uint8_t				payload[1024], buf[2048];
	const uint8_t			*p;
	size_t				len, n;
	unsigned			i;
	int				rc = 0;

	set_policy(f, "[principal p]\nuid = 1000\nops = listen accept\nlisten = 127.0.0.1/32:*\n");
	s = wfpb_session_new(&f->b, &id, 1000);
	handshake(s, &c, f->key.pub, 1);
	/* listen_loopback speaks through the fixture's session: this one, for the test. */
	keep_c = f->c;
	f->s = s;
	f->c = c;
	assert_non_null(r = listen_loopback(f, 1));
	c = f->c;
	f->s = keep;
	f->c = keep_c;
	assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__OK);
	make_accept(&rq, &ac, 2, r->listen->listener_id);
	wfpbroker__v1__response__free_unpacked(r, NULL);
	send_request(s, &c, &rq, 1002);
	assert_null(next_response(s, &c));	/* waiting: nothing has connected */
	memset(payload, 'x', sizeof(payload));
	for (i = 0; i < 200 && rc == 0; i++) {
		make_ping(&rq, &pg, 3 + i);
		pg.payload.data = payload;
		pg.payload.len = sizeof(payload);
		n = wfpbroker__v1__request__get_packed_size(&rq);
		wfpbroker__v1__request__pack(&rq, buf);
		assert_int_equal(wfpb_channel_send(&c, buf, n), 0);
		p = wfpb_channel_output(&c, &len);
		rc = wfpb_session_input(s, p, len, 1003);
		wfpb_channel_output_done(&c, len);
	}
	/* Cut off past 128 KiB (about 125 Pings of 1 KiB), not after all 200; nothing answered. */
	assert_true(rc != 0);
	assert_true(i > 100 && i < 200);
	assert_true(s->closing);
	assert_null(next_response(s, &c));
	wfpb_session_free(s);
	wfpb_channel_free(&c);
}

#ifdef _WIN32
/*
 * A socket that cannot be duplicated into the client when its answer is
 * written (the process is gone, a PID that names no process) is said in the
 * audit log: the request's record said it was handed over, a second record
 * says it was not. The answer goes with zeros where the socket would be.
 */
static void
failed_handover_is_recorded(void **state)
{
	struct wfpb_noise_keypair	*key = &((struct fixture *)*state)->key;
	struct wfpb_broker		b;
	struct wfpb_session		*s;
	struct wfpb_channel		c;
	Wfpbroker__V1__Response		*r;
	static const uint8_t		zeros[sizeof(WSAPROTOCOL_INFOW)];
	unsigned char			sk[64];
	char				dir[TEMP_DIR_LEN];
	wfpb_sock			client;

	audited_broker(&b, HANDOVER_POLICY, "handover", dir, key, sk);
	/* A PID that names no process: WSADuplicateSocketW fails when the answer is written. */
	s = audited_accept_sent(&b, &c, key, 0xFFFFFFF0u, &client);
	assert_int_equal(wfpb_broker_commit(&b, 1004), 1);
	while (wfpb_broker_next_ready(&b) != NULL)
		;
	wfpb_session_released(s, 1004);
	/* Written now: the answer goes with zeros where the socket would be... */
	assert_non_null(r = next_response(s, &c));
	assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__OK);
	assert_int_equal(r->accept->socket->wsa_protocol_info.len, sizeof(zeros));
	assert_memory_equal(r->accept->socket->wsa_protocol_info.data, zeros, sizeof(zeros));
	wfpbroker__v1__response__free_unpacked(r, NULL);
	/* ...and the log says so, in a record of its own. */
	(void)wfpb_broker_commit(&b, 100000);	/* lazy: nobody waits for it */
	assert_int_equal(log_count(dir, WFPBROKER__V1__AUDIT_KIND__AUDIT_REQUEST, "handover",
	    WFPBROKER__V1__STATUS_CODE__INTERNAL), 1);
	wfpb_session_free(s);
	wfpb_channel_free(&c);
	wfpb__net_close(client);
	audited_broker_end(&b, sk, dir);
}
#endif

/* Listens on loopback; the listener's id and a socket connecting to it come back through the arguments. */
static uint64_t
v2_listener(struct fixture *f, uint16_t *port)
{
	Wfpbroker__V1__Response	*r;
	uint64_t		lid;

	assert_non_null(r = listen_loopback(f, 1));
	assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__OK);
	lid = r->listen->listener_id;
	*port = (uint16_t)r->listen->local->port;
	wfpbroker__v1__response__free_unpacked(r, NULL);
	return lid;
}

/* The policy, a loopback listener and n Accepts waiting on it (ids from first_id): the listener's id. */
static uint64_t
accepts_waiting(struct fixture *f, const char *policy, unsigned n, uint64_t first_id, uint16_t *port)
{
	Wfpbroker__V1__Request		rq;
	Wfpbroker__V1__AcceptRequest	ac;
	uint64_t			lid;
	unsigned			i;

#ifdef _WIN32
	f->s->id.pid = GetCurrentProcessId();
	f->s->id.process = (intptr_t)GetCurrentProcess();
#endif
	set_policy(f, policy);
	lid = v2_listener(f, port);
	for (i = 0; i < n; i++) {
		make_accept(&rq, &ac, first_id + i, lid);
		send_request(f->s, &f->c, &rq, 2000);
	}
	return lid;
}

static wfpb_sock
connect_to(uint16_t port)
{
	struct wfpb_addr	to = { .family = WFPB_AF_INET, .addr = { 127, 0, 0, 1 } };
	wfpb_sock		sock;
	int			os_err = 0, rc;

	to.port = port;
	assert_int_equal(wfpb__net_socket(WFPB_AF_INET, &sock, &os_err), 0);
	rc = wfpb__net_connect(sock, &to, &os_err);
	assert_true(rc == 0 || rc == WFPB_E_AGAIN);
	return sock;
}

/* Waits (briefly) for a queued connection to reach the listener, then resumes the session. */
static void
resume_until_answered(struct fixture *f, wfpb_sock ready)
{
	int i;

	for (i = 0; i < 200 && wfpb_session_output(f->s, &(size_t){ 0 }, &(wfpb_sock){ 0 }) == NULL; i++) {
		assert_int_equal(wfpb_session_resume(f->s, ready, 3000), 0);
		if (wfpb_session_output(f->s, &(size_t){ 0 }, &(wfpb_sock){ 0 }) == NULL)
#ifdef _WIN32
			Sleep(5);
#else
			usleep(5000);
#endif
	}
}

/*
 * Three Accepts wait on one listener (one watched socket) while a Stash and
 * a Fetch are answered at once; each connection then completes the oldest
 * Accept still waiting, and the answers name their requests.
 */
static void
v2_answers_out_of_order(void **state)
{
	struct fixture			*f = *state;
	Wfpbroker__V1__Request		rq;
	Wfpbroker__V1__StashRequest	st = WFPBROKER__V1__STASH_REQUEST__INIT;
	Wfpbroker__V1__FetchRequest	fe = WFPBROKER__V1__FETCH_REQUEST__INIT;
	Wfpbroker__V1__StashHandle	h = WFPBROKER__V1__STASH_HANDLE__INIT;
	Wfpbroker__V1__Response		*r;
	struct wfpb_watch		*w;
	wfpb_sock			peers[3];
	uint8_t				id[16];
	unsigned			n, i;
	uint16_t			port;

	(void)accepts_waiting(f, "[principal p]\nuid = 1000\nops = listen accept stash fetch\nlisten = 127.0.0.1/32:*\n",
	    3, 10, &port);
	assert_null(next_response(f->s, &f->c));
	assert_int_equal(f->s->n_pending, 3);
	assert_int_equal(f->b.inflight, 3);
	w = wfpb_session_watches(f->s, &n);
	assert_int_equal(n, 1);
	assert_int_equal(w[0].refs, 3);
	assert_true(wfpb_session_watches_changed(f->s));
	w[0].server = f;	/* as a server registers it */

	/* Later requests are answered while the Accepts wait. */
	wfpbroker__v1__request__init(&rq);
	rq.request_id = 20;
	rq.op_case = WFPBROKER__V1__REQUEST__OP_STASH;
	rq.stash = &st;
	st.blob.data = (uint8_t *)"records";
	st.blob.len = 7;
	send_request(f->s, &f->c, &rq, 2000);
	assert_non_null(r = next_response(f->s, &f->c));
	assert_int_equal(r->request_id, 20);
	assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__OK);
	memcpy(id, r->stash->handle->id.data, sizeof(id));
	wfpbroker__v1__response__free_unpacked(r, NULL);
	wfpbroker__v1__request__init(&rq);
	rq.request_id = 21;
	rq.op_case = WFPBROKER__V1__REQUEST__OP_FETCH;
	rq.fetch = &fe;
	fe.handle = &h;
	h.id.data = id;
	h.id.len = sizeof(id);
	send_request(f->s, &f->c, &rq, 2000);
	assert_non_null(r = next_response(f->s, &f->c));
	assert_int_equal(r->request_id, 21);
	assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__OK);
	assert_int_equal(r->fetch->blob.len, 7);
	wfpbroker__v1__response__free_unpacked(r, NULL);

	/* Each connection takes the oldest Accept; the first with the socket named, the rest by polling. */
	for (i = 0; i < 3; i++) {
		peers[i] = connect_to(port);
		resume_until_answered(f, i == 0 ? w[0].sock : WFPB_SOCK_NONE);
		assert_non_null(r = next_response(f->s, &f->c));
		assert_int_equal(r->request_id, 10 + i);
		assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__OK);
		assert_int_equal(r->result_case, WFPBROKER__V1__RESPONSE__RESULT_ACCEPT);
		wfpbroker__v1__response__free_unpacked(r, NULL);
		assert_null(next_response(f->s, &f->c));
	}
	assert_int_equal(f->s->n_pending, 0);
	assert_int_equal(f->b.inflight, 0);
	/* The watch is left for the server to forget, then gone. */
	w = wfpb_session_watches(f->s, &n);
	assert_int_equal(n, 1);
	assert_int_equal(w[0].refs, 0);
	wfpb_session_watches_synced(f->s);
	(void)wfpb_session_watches(f->s, &n);
	assert_int_equal(n, 0);
	for (i = 0; i < 3; i++)
		wfpb__net_close(peers[i]);
}

/*
 * max_inflight requests waiting, then one more that may wait is QUOTA; one
 * answered at once is served. Releasing the listener answers the
 * Accepts waiting on it; an Accept past its deadline is answered TIMEOUT.
 */
static void
v2_inflight_cap(void **state)
{
	struct fixture			*f = *state;
	Wfpbroker__V1__Request		rq;
	Wfpbroker__V1__AcceptRequest	ac;
	Wfpbroker__V1__PingRequest	pg;
	Wfpbroker__V1__ReleaseRequest	rel = WFPBROKER__V1__RELEASE_REQUEST__INIT;
	Wfpbroker__V1__Response		*r;
	uint16_t			port;
	uint64_t			lid, lid2;
	unsigned			i;

	lid = accepts_waiting(f, "[service]\nmax_inflight = 2\n"
	    "[principal p]\nuid = 1000\nops = listen accept\nlisten = 127.0.0.1/32:*\n", 2, 10, &port);
	assert_null(next_response(f->s, &f->c));
	make_accept(&rq, &ac, 12, lid);
	send_request(f->s, &f->c, &rq, 2000);
	make_ping(&rq, &pg, 13);
	send_request(f->s, &f->c, &rq, 2000);
	assert_non_null(r = next_response(f->s, &f->c));
	assert_int_equal(r->request_id, 12);
	assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__QUOTA);
	assert_non_null(strstr(r->status->message, "max_inflight"));
	wfpbroker__v1__response__free_unpacked(r, NULL);
	assert_non_null(r = next_response(f->s, &f->c));
	assert_int_equal(r->request_id, 13);
	assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__OK);
	wfpbroker__v1__response__free_unpacked(r, NULL);
	assert_int_equal(f->s->n_pending, 2);

	/* Released: both Accepts answered NOT_FOUND, oldest first, then the Release itself. */
	wfpbroker__v1__request__init(&rq);
	rq.request_id = 14;
	rq.op_case = WFPBROKER__V1__REQUEST__OP_RELEASE;
	rq.release = &rel;
	rel.target_case = WFPBROKER__V1__RELEASE_REQUEST__TARGET_LISTENER_ID;
	rel.listener_id = lid;
	send_request(f->s, &f->c, &rq, 2000);
	for (i = 0; i < 3; i++) {
		assert_non_null(r = next_response(f->s, &f->c));
		assert_int_equal(r->request_id, 10 + (i < 2 ? i : 4));
		assert_int_equal(r->status->code, i < 2 ? WFPBROKER__V1__STATUS_CODE__NOT_FOUND :
		    WFPBROKER__V1__STATUS_CODE__OK);
		if (i < 2)
			assert_non_null(strstr(r->status->message, "was released"));
		wfpbroker__v1__response__free_unpacked(r, NULL);
	}
	assert_int_equal(f->s->n_pending, 0);
	assert_int_equal(f->b.listeners, 0);

	/* Room again; an Accept nobody connects to times out alone at its own deadline. */
	lid2 = v2_listener(f, &port);
	make_accept(&rq, &ac, 15, lid2);
	ac.timeout_ms = 100;
	send_request(f->s, &f->c, &rq, 2000);
	make_ping(&rq, &pg, 16);
	send_request(f->s, &f->c, &rq, 2000);
	assert_non_null(r = next_response(f->s, &f->c));
	assert_int_equal(r->request_id, 16);
	assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__OK);
	wfpbroker__v1__response__free_unpacked(r, NULL);
	assert_int_equal(wfpb_session_deadline(f->s), 2100);
	assert_int_equal(wfpb_session_sweep(f->s, 2099), WFPB_SWEEP_KEEP);
	assert_int_equal(wfpb_session_sweep(f->s, 2100), WFPB_SWEEP_FLUSH);
	assert_non_null(r = next_response(f->s, &f->c));
	assert_int_equal(r->request_id, 15);
	assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__TIMEOUT);
	wfpbroker__v1__response__free_unpacked(r, NULL);
	assert_false(f->s->closing);
}

/*
 * Twelve Accepts complete before their client reads a byte: twelve sockets
 * wait to be handed over with their answers, more than one request at a
 * time ever queued, and the session serves them all.
 */
static void
v2_many_sockets_wait_for_their_answers(void **state)
{
	struct fixture			*f = *state;
	Wfpbroker__V1__Response		*r;
	wfpb_sock			peers[12];
	unsigned			i, spins;
	uint16_t			port;

	(void)accepts_waiting(f, "[principal p]\nuid = 1000\nops = listen accept\nlisten = 127.0.0.1/32:*\n", 12, 10,
	    &port);
	for (i = 0; i < 12; i++)
		peers[i] = connect_to(port);
	for (spins = 0; f->s->n_pending > 0 && spins < 200; spins++) {
		assert_int_equal(wfpb_session_resume(f->s, WFPB_SOCK_NONE, 3000), 0);
#ifdef _WIN32
		Sleep(5);
#else
		usleep(5000);
#endif
	}
	assert_int_equal(f->s->n_pending, 0);
	assert_false(f->s->closing);
	for (i = 0; i < 12; i++) {
		assert_non_null(r = next_response(f->s, &f->c));
		assert_int_equal(r->request_id, 10 + i);
		assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__OK);
		wfpbroker__v1__response__free_unpacked(r, NULL);
	}
	for (i = 0; i < 12; i++)
		wfpb__net_close(peers[i]);
}

#ifndef _WIN32
/*
 * With requests in flight the records keep coming: an answer leaves once
 * its own record is durable, not once the newest record of the session is
 * (which, under steady load, would be never). A Listen is recorded and a
 * commit starts; a second Listen's record arrives during that commit; when
 * the commit ends the first answer goes out and the second waits for the
 * next one.
 */
static void
v2_answer_leaves_when_its_own_record_is_durable(void **state)
{
	static const char		policy[] = "[principal p]\nuid = 1000\nops = listen\nlisten = 127.0.0.1/32:*\n";
	struct fixture			*f = *state;
	struct wfpb_identity		id = { .known = 1, .pid = 42, .uid = 1000, .gid = 1000, .user = "1000" };
	struct wfpb_broker		b;
	struct wfpb_session		*s;
	struct wfpb_channel		c;
	Wfpbroker__V1__Request		rq = WFPBROKER__V1__REQUEST__INIT;
	Wfpbroker__V1__ListenRequest	l = WFPBROKER__V1__LISTEN_REQUEST__INIT;
	Wfpbroker__V1__Address		a = WFPBROKER__V1__ADDRESS__INIT;
	Wfpbroker__V1__Response		*r;
	static uint8_t			lo[4] = { 127, 0, 0, 1 };
	unsigned char			sk[64];
	char				dir[TEMP_DIR_LEN];

	audited_broker(&b, policy, "gate", dir, &f->key, sk);
	s = wfpb_session_new(&b, &id, 1000);
	handshake(s, &c, f->key.pub, WFPB_PROTOCOL_VERSION);
	(void)wfpb_broker_commit(&b, 1001);
	while (wfpb_broker_next_ready(&b) != NULL)
		;

	a.family = WFPBROKER__V1__ADDRESS_FAMILY__AF_INET;
	a.addr.data = lo;
	a.addr.len = 4;
	l.local = &a;
	rq.op_case = WFPBROKER__V1__REQUEST__OP_LISTEN;
	rq.listen = &l;
	rq.request_id = 1;
	send_request(s, &c, &rq, 1002);
	assert_null(next_response(s, &c));
	/* The commit takes the first record; the second arrives while it is written. */
	assert_int_equal(wfpb_broker_commit_start(&b, 1003), 1);
	rq.request_id = 2;
	send_request(s, &c, &rq, 1003);
	wfpb_audit_flush_inflight(&b.audit);
	(void)wfpb_broker_commit_finish(&b, 1004);
	assert_ptr_equal(wfpb_broker_next_ready(&b), s);
	wfpb_session_released(s, 1004);
	assert_non_null(r = next_response(s, &c));
	assert_int_equal(r->request_id, 1);
	assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__OK);
	wfpbroker__v1__response__free_unpacked(r, NULL);
	/* The second is not durable yet: it waits, and the session waits for the next commit. */
	assert_null(next_response(s, &c));
	assert_int_equal(wfpb_broker_commit(&b, 100000), 1);	/* lazy: nobody waits for it */
	assert_ptr_equal(wfpb_broker_next_ready(&b), s);
	wfpb_session_released(s, 1005);
	assert_non_null(r = next_response(s, &c));
	assert_int_equal(r->request_id, 2);
	wfpbroker__v1__response__free_unpacked(r, NULL);
	wfpb_session_free(s);
	wfpb_channel_free(&c);
	audited_broker_end(&b, sk, dir);
}
#endif

#ifndef _WIN32
/*
 * A Connect (request id, timeout_ms) to a loopback listener that never accepts, its queue
 * filled by connections of our own: the Connect neither completes nor fails. Returns the
 * listener; *fill holds the filling sockets (close both when done).
 */
/* A loopback listener that never accepts, its queue filled by *fill: a connect to it neither completes nor fails. */
static int
blocked_listener(uint16_t *port, int fill[4])
{
	struct sockaddr_in		sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t			slen = sizeof(sin);
	int				l, i;

	assert_true((l = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
	assert_int_equal(bind(l, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(l, 0), 0);
	assert_int_equal(getsockname(l, (struct sockaddr *)&sin, &slen), 0);
	for (i = 0; i < 4; i++) {
		fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		(void)connect(fill[i], (struct sockaddr *)&sin, sizeof(sin));
	}
	usleep(100000);
	*port = ntohs(sin.sin_port);
	return l;
}

static int
blocked_connect(struct fixture *f, uint64_t id, uint32_t timeout_ms, int fill[4])
{
	Wfpbroker__V1__Request		rq;
	Wfpbroker__V1__ConnectRequest	cr = WFPBROKER__V1__CONNECT_REQUEST__INIT;
	Wfpbroker__V1__Address		a = WFPBROKER__V1__ADDRESS__INIT;
	static uint8_t			lo[4] = { 127, 0, 0, 1 };
	uint16_t			port;
	int				l = blocked_listener(&port, fill);

	wfpbroker__v1__request__init(&rq);
	a.family = WFPBROKER__V1__ADDRESS_FAMILY__AF_INET;
	a.addr.data = lo;
	a.addr.len = 4;
	a.port = port;
	cr.remote = &a;
	cr.timeout_ms = timeout_ms;
	rq.request_id = id;
	rq.op_case = WFPBROKER__V1__REQUEST__OP_CONNECT;
	rq.connect = &cr;
	send_request(f->s, &f->c, &rq, 2000);
	return l;
}

/*
 * A dead upstream times out alone: a Connect to a listener whose queue is
 * full (the kernel drops the SYN, so the connect neither completes nor
 * fails) waits while a Ping is answered, and is answered TIMEOUT at its own
 * deadline with the session going on.
 */
static void
v2_dead_upstream_times_out_alone(void **state)
{
	struct fixture			*f = *state;
	Wfpbroker__V1__Request		rq;
	Wfpbroker__V1__PingRequest	pg;
	Wfpbroker__V1__Response		*r;
	int				l, fill[4], i;

	set_policy(f, "[principal p]\nuid = 1000\nops = connect\nconnect = 127.0.0.1/32:*\n");
	l = blocked_connect(f, 40, 300, fill);
	make_ping(&rq, &pg, 41);
	send_request(f->s, &f->c, &rq, 2000);
	assert_non_null(r = next_response(f->s, &f->c));
	assert_int_equal(r->request_id, 41);
	wfpbroker__v1__response__free_unpacked(r, NULL);
	assert_int_equal(f->s->n_pending, 1);
	/* Polled before its deadline it is not ready; at the deadline it is answered, alone. */
	assert_int_equal(wfpb_session_resume(f->s, WFPB_SOCK_NONE, 2100), 0);
	assert_null(next_response(f->s, &f->c));
	assert_int_equal(wfpb_session_sweep(f->s, 2300), WFPB_SWEEP_FLUSH);
	assert_non_null(r = next_response(f->s, &f->c));
	assert_int_equal(r->request_id, 40);
	assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__TIMEOUT);
	wfpbroker__v1__response__free_unpacked(r, NULL);
	assert_int_equal(f->s->n_pending, 0);
	assert_false(f->s->closing);
	for (i = 0; i < 4; i++)
		close(fill[i]);
	close(l);
}

/* A listener on loopback that accepts nothing until asked (the remote of a Connect); its port in *port. */
static int
remote_listener(uint16_t *port)
{
	struct sockaddr_in	sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t		slen = sizeof(sin);
	int			l;

	assert_true((l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0)) >= 0);
	assert_int_equal(bind(l, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(l, 128), 0);
	assert_int_equal(getsockname(l, (struct sockaddr *)&sin, &slen), 0);
	*port = ntohs(sin.sin_port);
	return l;
}

/* The connections the remote saw, waiting up to a second for the last of n. */
static unsigned
remote_saw(int l, unsigned n)
{
	unsigned	seen = 0;
	int		fd, i;

	for (i = 0; i < 200 && seen < n; i++) {
		while ((fd = accept(l, NULL, NULL)) >= 0) {
			close(fd);
			seen++;
		}
		if (seen < n)
			usleep(5000);
	}
	return seen;
}

/*
 * The attack: a principal with `connect` sends one Connect and vanishes, twenty
 * times. Every connection the remote saw has its record (CANCELLED, what was
 * done), and every session its end, whatever happened to the session.
 */
static void
abandoned_connect_is_recorded(void **state)
{
	static const char		policy[] = "[principal p]\nuid = 1000\nops = connect\nconnect = 127.0.0.1/32:*\n";
	struct wfpb_noise_keypair	*key = &((struct fixture *)*state)->key;
	struct wfpb_identity		id = { .known = 1, .pid = 42, .uid = 1000, .gid = 1000, .user = "1000" };
	struct wfpb_broker		b;
	struct wfpb_session		*s;
	struct wfpb_channel		c;
	Wfpbroker__V1__Request		rq = WFPBROKER__V1__REQUEST__INIT;
	Wfpbroker__V1__ConnectRequest	cr = WFPBROKER__V1__CONNECT_REQUEST__INIT;
	Wfpbroker__V1__Address		a = WFPBROKER__V1__ADDRESS__INIT;
	static uint8_t			lo[4] = { 127, 0, 0, 1 };
	unsigned char			sk[64];
	char				dir[TEMP_DIR_LEN];
	uint16_t			port;
	unsigned			i, ok, cancelled;
	int				l;

	audited_broker(&b, policy, "abandon", dir, key, sk);
	l = remote_listener(&port);
	a.family = WFPBROKER__V1__ADDRESS_FAMILY__AF_INET;
	a.addr.data = lo;
	a.addr.len = 4;
	a.port = port;
	cr.remote = &a;
	cr.timeout_ms = 5000;
	rq.op_case = WFPBROKER__V1__REQUEST__OP_CONNECT;
	rq.connect = &cr;
	for (i = 0; i < 20; i++) {
		s = wfpb_session_new(&b, &id, 1000);
		handshake(s, &c, key->pub, WFPB_PROTOCOL_VERSION);
		rq.request_id = 100 + i;
		send_request(s, &c, &rq, 1002);
		/* The client is gone before any answer. */
		wfpb_session_free(s);
		wfpb_channel_free(&c);
	}
	/* Nobody waits for these records: the commit that takes them is the lazy one, later. */
	assert_int_equal(wfpb_broker_commit(&b, 100000), 0);
	while (wfpb_broker_next_ready(&b) != NULL)
		;
	assert_int_equal(remote_saw(l, 20), 20);
	ok = log_count(dir, WFPBROKER__V1__AUDIT_KIND__AUDIT_REQUEST, "connect", WFPBROKER__V1__STATUS_CODE__OK);
	cancelled = log_count(dir, WFPBROKER__V1__AUDIT_KIND__AUDIT_REQUEST, "connect",
	    WFPBROKER__V1__STATUS_CODE__CANCELLED);
	assert_int_equal(ok + cancelled, 20);
	assert_int_equal(log_count(dir, WFPBROKER__V1__AUDIT_KIND__AUDIT_SESSION_START, NULL, 0), 20);
	assert_int_equal(log_count(dir, WFPBROKER__V1__AUDIT_KIND__AUDIT_SESSION_END, NULL, 0), 20);
	close(l);
	audited_broker_end(&b, sk, dir);
}

/*
 * A session ended for a bad frame after the handshake (tampered, replayed,
 * empty) has its SESSION_END like any other: those are the sessions a
 * security team wants to see.
 */
static void
bad_frame_sessions_have_their_end(void **state)
{
	static const char		policy[] = "[principal p]\nuid = 1000\nops = stash\n";
	struct wfpb_noise_keypair	*key = &((struct fixture *)*state)->key;
	struct wfpb_identity		id = { .known = 1, .pid = 42, .uid = 1000, .gid = 1000, .user = "1000" };
	struct wfpb_broker		b;
	struct wfpb_session		*s;
	struct wfpb_channel		c;
	Wfpbroker__V1__Request		rq;
	Wfpbroker__V1__PingRequest	pg;
	unsigned char			sk[64];
	char				dir[TEMP_DIR_LEN];
	uint8_t				frame[512], empty[2] = { 0, 0 };
	const uint8_t			*p;
	size_t				len;
	int				how;

	audited_broker(&b, policy, "badframe", dir, key, sk);
	for (how = 0; how < 3; how++) {
		s = wfpb_session_new(&b, &id, 1000);
		handshake(s, &c, key->pub, WFPB_PROTOCOL_VERSION);
		make_ping(&rq, &pg, 1);
		send_request(s, &c, &rq, 1002);
		wfpbroker__v1__response__free_unpacked(next_response(s, &c), NULL);
		/* The next frame the client sends, then spoilt: tampered, sent twice, or empty. */
		make_ping(&rq, &pg, 2);
		len = wfpbroker__v1__request__get_packed_size(&rq);
		wfpbroker__v1__request__pack(&rq, frame);
		assert_int_equal(wfpb_channel_send(&c, frame, len), 0);
		p = wfpb_channel_output(&c, &len);
		assert_true(len <= sizeof(frame));
		memcpy(frame, p, len);
		wfpb_channel_output_done(&c, len);
		if (how == 0) {
			frame[len - 1] ^= 1;
			assert_true(wfpb_session_input(s, frame, len, 1003) < 0);
		} else if (how == 1) {
			assert_int_equal(wfpb_session_input(s, frame, len, 1003), 0);
			assert_true(wfpb_session_input(s, frame, len, 1003) < 0);
		} else {
			assert_true(wfpb_session_input(s, empty, sizeof(empty), 1003) < 0);
		}
		assert_true(s->closing);
		wfpb_session_free(s);
		wfpb_channel_free(&c);
	}
	assert_int_equal(wfpb_broker_commit(&b, 100000), 0);
	assert_int_equal(log_count(dir, WFPBROKER__V1__AUDIT_KIND__AUDIT_SESSION_START, NULL, 0), 3);
	assert_int_equal(log_count(dir, WFPBROKER__V1__AUDIT_KIND__AUDIT_SESSION_END, NULL, 0), 3);
	audited_broker_end(&b, sk, dir);
}

/* Sends an ApplyRecords of the handle on a new socket of ours, as request id. */
static void
apply_handle(struct wfpb_session *s, struct wfpb_channel *c, const ProtobufCBinaryData *handle, uint64_t id)
{
	Wfpbroker__V1__Request			rq = WFPBROKER__V1__REQUEST__INIT;
	Wfpbroker__V1__ApplyRecordsRequest	ap = WFPBROKER__V1__APPLY_RECORDS_REQUEST__INIT;
	Wfpbroker__V1__SocketTransfer		x = WFPBROKER__V1__SOCKET_TRANSFER__INIT;
	Wfpbroker__V1__RecordSource		src = WFPBROKER__V1__RECORD_SOURCE__INIT;
	Wfpbroker__V1__StashHandle		h = WFPBROKER__V1__STASH_HANDLE__INIT;
	wfpb_sock				fd = socket(AF_INET, SOCK_STREAM, 0);

	wfpb_session_add_fds(s, &fd, 1);
	x.kind_case = WFPBROKER__V1__SOCKET_TRANSFER__KIND_FD_INDEX;
	h.id = *handle;
	src.source_case = WFPBROKER__V1__RECORD_SOURCE__SOURCE_HANDLE;
	src.handle = &h;
	ap.socket = &x;
	ap.records = &src;
	rq.request_id = id;
	rq.op_case = WFPBROKER__V1__REQUEST__OP_APPLY_RECORDS;
	rq.apply_records = &ap;
	send_request(s, c, &rq, 1002);
}

/*
 * Records of Lifetime ONCE are applied once: a second ApplyRecords sent
 * while the first waits for its record does not take them too. When the
 * first fails instead, they are there again.
 */
static void
once_records_are_applied_once(void **state)
{
	static const char		policy[] = "[principal p]\nuid = 1000\nops = stash apply apply_foreign\n";
	struct wfpb_noise_keypair	*key = &((struct fixture *)*state)->key;
	struct wfpb_identity		id = { .known = 1, .pid = 42, .uid = 1000, .gid = 1000, .user = "1000" };
	struct wfpb_broker		b;
	struct wfpb_session		*s;
	struct wfpb_channel		c;
	Wfpbroker__V1__Request		rq = WFPBROKER__V1__REQUEST__INIT;
	Wfpbroker__V1__StashRequest	st = WFPBROKER__V1__STASH_REQUEST__INIT;
	Wfpbroker__V1__Response		*r, *second;
	uint8_t				rec[WFPB_SIM_HDR_LEN + WFPB_SIM_HOP_LEN] = "WFPS\x01\x00\x00\x01";
	unsigned char			sk[64];
	char				dir[TEMP_DIR_LEN];

	audited_broker(&b, policy, "once", dir, key, sk);
	s = wfpb_session_new(&b, &id, 1000);
	handshake(s, &c, key->pub, WFPB_PROTOCOL_VERSION);
	rec[WFPB_SIM_HDR_LEN] = WFPB_AF_INET;
	st.blob.data = rec;
	st.blob.len = sizeof(rec);
	st.lifetime = WFPBROKER__V1__LIFETIME__ONCE;
	rq.request_id = 1;
	rq.op_case = WFPBROKER__V1__REQUEST__OP_STASH;
	rq.stash = &st;
	send_request(s, &c, &rq, 1001);
	assert_non_null(r = next_response(s, &c));
	assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__OK);
	/* Back to back, before the first one's record is durable. */
	apply_handle(s, &c, &r->stash->handle->id, 2);
	apply_handle(s, &c, &r->stash->handle->id, 3);
	assert_int_equal(wfpb_broker_commit(&b, 1003), 1);
	while (wfpb_broker_next_ready(&b) != NULL)
		;
	wfpb_session_released(s, 1003);
	assert_int_equal(b.backend.ops->records_applied(b.backend.ctx), 1);
	assert_non_null(second = next_response(s, &c));
	assert_int_equal(second->request_id, 3);
	assert_int_equal(second->status->code, WFPBROKER__V1__STATUS_CODE__NOT_FOUND);
	wfpbroker__v1__response__free_unpacked(second, NULL);
	assert_non_null(second = next_response(s, &c));
	assert_int_equal(second->request_id, 2);
	assert_int_equal(second->status->code, WFPBROKER__V1__STATUS_CODE__OK);
	wfpbroker__v1__response__free_unpacked(second, NULL);
	/* Applied once, the entry is gone. */
	apply_handle(s, &c, &r->stash->handle->id, 4);
	assert_int_equal(wfpb_broker_commit(&b, 1004), 1);
	while (wfpb_broker_next_ready(&b) != NULL)
		;
	wfpb_session_released(s, 1004);
	assert_non_null(second = next_response(s, &c));
	assert_int_equal(second->status->code, WFPBROKER__V1__STATUS_CODE__NOT_FOUND);
	wfpbroker__v1__response__free_unpacked(second, NULL);
	wfpbroker__v1__response__free_unpacked(r, NULL);
	/* An ApplyRecords whose session leaves before its record is durable: recorded CANCELLED, nothing applied. */
	rq.request_id = 5;
	send_request(s, &c, &rq, 1004);
	assert_non_null(r = next_response(s, &c));
	apply_handle(s, &c, &r->stash->handle->id, 6);
	wfpbroker__v1__response__free_unpacked(r, NULL);
	wfpb_session_free(s);
	wfpb_channel_free(&c);
	assert_int_equal(wfpb_broker_commit(&b, 100000), 0);
	assert_int_equal(b.backend.ops->records_applied(b.backend.ctx), 1);
	assert_int_equal(log_count(dir, WFPBROKER__V1__AUDIT_KIND__AUDIT_REQUEST, "apply_records",
	    WFPBROKER__V1__STATUS_CODE__CANCELLED), 1);
	audited_broker_end(&b, sk, dir);
}

/*
 * An ApplyRecords of records the client supplied waits for its record while a
 * reload withdraws apply_foreign: it is DENIED (and recorded so), nothing is
 * applied.
 */
static void
reload_revokes_apply_foreign(void **state)
{
	static const char		policy[] = "[principal p]\nuid = 1000\nops = apply apply_foreign\n";
	static const char		narrowed[] = "[principal p]\nuid = 1000\nops = apply\n";
	struct wfpb_noise_keypair	*key = &((struct fixture *)*state)->key;
	struct wfpb_identity		id = { .known = 1, .pid = 42, .uid = 1000, .gid = 1000, .user = "1000" };
	struct wfpb_broker		b;
	struct wfpb_session		*s;
	struct wfpb_channel		c;
	struct wfpb_config		cfg;
	struct wfpb_ini_error		err;
	struct inline_apply		a;
	Wfpbroker__V1__Response		*r;
	unsigned char			sk[64];
	char				dir[TEMP_DIR_LEN];

	audited_broker(&b, policy, "revoke", dir, key, sk);
	s = wfpb_session_new(&b, &id, 1000);
	handshake(s, &c, key->pub, WFPB_PROTOCOL_VERSION);
	send_request(s, &c, inline_apply(&a, s, 70), 1002);
	assert_int_equal(s->n_pending, 1);
	assert_int_equal(wfpb_config_parse(narrowed, strlen(narrowed), &b.cfg, &cfg, &err), 0);
	wfpb_broker_reload(&b, &cfg);
	assert_int_equal(wfpb_session_sweep(s, 1003), WFPB_SWEEP_FLUSH);
	assert_int_equal(wfpb_broker_commit(&b, 1004), 1);
	while (wfpb_broker_next_ready(&b) != NULL)
		;
	wfpb_session_released(s, 1004);
	assert_non_null(r = next_response(s, &c));
	assert_int_equal(r->request_id, 70);
	assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__DENIED);
	assert_non_null(strstr(r->status->message, "apply_foreign"));
	wfpbroker__v1__response__free_unpacked(r, NULL);
	assert_int_equal(b.backend.ops->records_applied(b.backend.ctx), 0);
	wfpb_session_free(s);
	wfpb_channel_free(&c);
	assert_int_equal(wfpb_broker_commit(&b, 100000), 0);
	assert_int_equal(log_count(dir, WFPBROKER__V1__AUDIT_KIND__AUDIT_REQUEST, "apply_records",
	    WFPBROKER__V1__STATUS_CODE__DENIED), 1);
	audited_broker_end(&b, sk, dir);
}

/*
 * The next answer, polling the session's pending requests until one comes (up to a
 * second), with the sockets that came with it in socks (*n of them, at most 2).
 */
static Wfpbroker__V1__Response *
answer_with_socks(struct wfpb_session *s, struct wfpb_channel *c, wfpb_sock socks[2], unsigned *n)
{
	Wfpbroker__V1__Response	*r;
	int			i;

	*n = 0;
	for (i = 0; i < 200; i++) {
		if ((r = output_with_socks(s, c, socks, n)) != NULL)
			return r;
		usleep(5000);
		assert_true(wfpb_session_resume(s, WFPB_SOCK_NONE, 2000) >= 0);
	}
	return NULL;
}

static uint16_t
sock_port(int fd, int peer)
{
	struct sockaddr_in	sin;
	socklen_t		slen = sizeof(sin);

	assert_int_equal(peer ? getpeername(fd, (struct sockaddr *)&sin, &slen) :
	    getsockname(fd, (struct sockaddr *)&sin, &slen), 0);
	return ntohs(sin.sin_port);
}

/*
 * Relay: one request accepts the redirected connection, connects upstream with its records
 * applied, and hands both over in one answer: the accepted one as fd_index 0, the upstream
 * one as 1, each what it says it is.
 */
static void
relay_hands_over_both_connections(void **state)
{
	struct fixture			*f = *state;
	Wfpbroker__V1__Request		rq;
	Wfpbroker__V1__RelayRequest	re;
	Wfpbroker__V1__Address		a;
	Wfpbroker__V1__Response		*r;
	wfpb_sock			client, socks[2];
	uint64_t			applied = f->b.backend.ops->records_applied(f->b.backend.ctx);
	uint16_t			port;
	unsigned			n;
	char				byte = 0;
	int				l, up = -1;

	set_policy(f, "[principal p]\nuid = 1000\nops = listen accept connect\nlisten = 127.0.0.1/32:*\n"
	    "connect = 127.0.0.1/32:*\n");
	l = remote_listener(&port);
	make_relay(&rq, &re, &a, 2, listen_and_connect(f, &client), port);
	send_request(f->s, &f->c, &rq, 2000);
	assert_non_null(r = answer_with_socks(f->s, &f->c, socks, &n));
	assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__OK);
	assert_int_equal(r->result_case, WFPBROKER__V1__RESPONSE__RESULT_RELAY);
	assert_int_equal(n, 2);
	assert_int_equal(r->relay->accepted->kind_case, WFPBROKER__V1__SOCKET_TRANSFER__KIND_FD_INDEX);
	assert_int_equal(r->relay->accepted->fd_index, 0);
	assert_int_equal(r->relay->upstream->fd_index, 1);
	/* The first is the client's connection, the second reaches the upstream. */
	assert_int_equal(sock_port(socks[0], 1), sock_port(client, 0));
	assert_int_equal(r->relay->peer->port, sock_port(client, 0));
	assert_int_equal(sock_port(socks[1], 1), port);
	assert_int_equal(r->relay->remote->port, port);
	assert_int_equal(r->relay->upstream_local->port, sock_port(socks[1], 0));
	assert_int_equal(write(client, "x", 1), 1);
	assert_int_equal(read(socks[0], &byte, 1), 1);
	assert_int_equal(byte, 'x');
	for (n = 0; n < 200 && (up = accept(l, NULL, NULL)) < 0; n++)
		usleep(5000);
	assert_true(up >= 0);
	assert_int_equal(sock_port(up, 1), sock_port(socks[1], 0));
	/* The sim records were queried, applied to the upstream, and the destination they name is given. */
	assert_int_equal(f->b.backend.ops->records_applied(f->b.backend.ctx), applied + 1);
	assert_non_null(r->relay->original_destination);
	assert_int_equal(r->relay->original_destination->port, r->relay->local->port);
	assert_int_equal(r->relay->context.len, 2 * WFPB_SIM_HOP_LEN);
	wfpbroker__v1__response__free_unpacked(r, NULL);
	close(up);
	close(socks[0]);
	close(socks[1]);
	wfpb__net_close(client);
	close(l);
	assert_int_equal(f->s->n_pending, 0);
}

/* A closed connection reads EOF or a reset within a second. */
static int
closed_by_peer(wfpb_sock fd)
{
	char	c;
	int	i;

	(void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	for (i = 0; i < 200; i++) {
		ssize_t got = read(fd, &c, 1);

		if (got == 0 || (got < 0 && errno != EAGAIN))
			return 1;
		usleep(5000);
	}
	return 0;
}

static int
double_no_original_dst(void *ctx, wfpb_sock s, const struct wfpb_buf *records, const struct wfpb_buf *context,
    struct wfpb_addr *out)
{
	(void)ctx;
	(void)s;
	(void)records;
	(void)context;
	(void)out;
	return -1;
}

/*
 * A Relay (request id, to 127.0.0.1:port, or to no named destination with 0) of a new
 * connection, answered code with text in its message, nothing handed over, and the client's
 * connection closed by the broker.
 */
static void
relay_fails_and_closes(struct fixture *f, uint64_t id, uint16_t port, int code, const char *text)
{
	Wfpbroker__V1__Request		rq;
	Wfpbroker__V1__RelayRequest	re;
	Wfpbroker__V1__Address		a;
	Wfpbroker__V1__Response		*r;
	wfpb_sock			client, socks[2];
	unsigned			n;

	make_relay(&rq, &re, &a, id, listen_and_connect(f, &client), port);
	send_request(f->s, &f->c, &rq, 2000);
	assert_non_null(r = answer_with_socks(f->s, &f->c, socks, &n));
	assert_int_equal(r->status->code, code);
	assert_non_null(strstr(r->status->message, text));
	assert_int_equal(n, 0);
	wfpbroker__v1__response__free_unpacked(r, NULL);
	assert_true(closed_by_peer(client));
	wfpb__net_close(client);
}

/*
 * What a Relay may not do, each answered with its status while the session serves on: a
 * destination outside the connect ranges (refused before any connection is taken), a
 * principal without connect, a malformed request, an upstream that refuses (the accepted
 * connection is closed), and no destination at all where the backend cannot tell one.
 */
static void
relay_refusals(void **state)
{
	struct fixture			*f = *state;
	struct wfpb_backend_ops		no_dst = *f->b.backend.ops;
	const struct wfpb_backend_ops	*real = f->b.backend.ops;
	Wfpbroker__V1__Request		rq;
	Wfpbroker__V1__RelayRequest	re;
	Wfpbroker__V1__AcceptRequest	ac;
	Wfpbroker__V1__Address		a, zero;
	Wfpbroker__V1__Response		*r;
	static uint8_t			nowhere[4] = { 0, 0, 0, 0 };
	wfpb_sock			client, socks[2];
	uint64_t			lid;
	uint16_t			port;
	unsigned			n;
	int				l;

	set_policy(f, "[principal p]\nuid = 1000\nops = listen accept connect\nlisten = 127.0.0.1/32:*\n"
	    "connect = 127.0.0.2/32:*\n");
	l = remote_listener(&port);
	lid = listen_and_connect(f, &client);
	make_relay(&rq, &re, &a, 2, lid, port);
	assert_non_null(r = roundtrip(f, &rq));
	assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__DENIED);
	assert_non_null(strstr(r->status->message, "connect ranges"));
	wfpbroker__v1__response__free_unpacked(r, NULL);
	/* Nothing was accepted: the connection is still there for an Accept. */
	make_accept(&rq, &ac, 3, lid);
	send_request(f->s, &f->c, &rq, 2000);
	assert_non_null(r = answer_with_socks(f->s, &f->c, socks, &n));
	assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__OK);
	assert_int_equal(n, 1);
	assert_int_equal(sock_port(socks[0], 1), sock_port(client, 0));
	wfpbroker__v1__response__free_unpacked(r, NULL);
	close(socks[0]);
	wfpb__net_close(client);

	/* Accept and listen, no connect: not granted. */
	set_policy(f, "[principal p]\nuid = 1000\nops = listen accept\nlisten = 127.0.0.1/32:*\n"
	    "connect = 127.0.0.1/32:*\n");
	make_relay(&rq, &re, &a, 4, lid, port);
	assert_non_null(r = roundtrip(f, &rq));
	assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__DENIED);
	assert_non_null(strstr(r->status->message, "not granted"));
	wfpbroker__v1__response__free_unpacked(r, NULL);

	/* Malformed: two listeners named, the unspecified address as destination, a wait past the limit. */
	set_policy(f, "[principal p]\nuid = 1000\nops = listen accept connect\nlisten = 127.0.0.1/32:*\n"
	    "connect = 127.0.0.1/32:*\n");
	make_relay(&rq, &re, &a, 5, lid, port);
	re.listener = "web";
	assert_non_null(r = roundtrip(f, &rq));
	assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__BAD_REQUEST);
	wfpbroker__v1__response__free_unpacked(r, NULL);
	make_relay(&rq, &re, &a, 6, lid, port);
	zero = a;
	zero.addr.data = nowhere;
	re.remote = &zero;
	assert_non_null(r = roundtrip(f, &rq));
	assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__BAD_REQUEST);
	assert_non_null(strstr(r->status->message, "relay.remote"));
	wfpbroker__v1__response__free_unpacked(r, NULL);
	make_relay(&rq, &re, &a, 7, lid, port);
	re.connect_timeout_ms = 120001;
	assert_non_null(r = roundtrip(f, &rq));
	assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__BAD_REQUEST);
	assert_non_null(strstr(r->status->message, "connect_timeout_ms"));
	wfpbroker__v1__response__free_unpacked(r, NULL);

	/* The upstream refuses: the answer says so, and the client's connection is closed. */
	close(l);
	relay_fails_and_closes(f, 8, port, WFPBROKER__V1__STATUS_CODE__ECONNREFUSED, "relay: ");
	/* No destination named, and the original one (sim: where it arrived) is the listener: never a loop. */
	relay_fails_and_closes(f, 9, 0, WFPBROKER__V1__STATUS_CODE__EINVAL, "the listener itself");
	/* No destination named, and a backend that cannot tell the original one. */
	no_dst.original_dst = double_no_original_dst;
	f->b.backend.ops = &no_dst;
	relay_fails_and_closes(f, 10, 0, WFPBROKER__V1__STATUS_CODE__NOT_FOUND, "name relay.remote");
	f->b.backend.ops = real;
	assert_int_equal(f->s->n_pending, 0);
	assert_false(f->s->closing);
}

/* listen_and_connect for a session of an audited broker b, whose Listen answers once its record is durable. */
static uint64_t
audited_listen(struct fixture *f, struct wfpb_broker *b, wfpb_sock *client)
{
	Wfpbroker__V1__Request		rq;
	Wfpbroker__V1__ListenRequest	li;
	Wfpbroker__V1__Address		a;
	Wfpbroker__V1__Response		*r;

	make_listen_loopback(&rq, &li, &a, 1);
	send_request(f->s, &f->c, &rq, 1001);
	(void)wfpb_broker_commit(b, 100000);
	assert_non_null(r = next_response(f->s, &f->c));
	return client_of(r, client);
}

/*
 * A prepared socket comes bound (the attack it stops: a listener, which the OS takes for the
 * broker's, on an address and port of the client's choosing): without a local address to an
 * ephemeral port on the unspecified address, with one only inside the bind ranges, and then
 * there.
 */
static void
prepare_comes_bound(void **state)
{
	struct fixture			*f = *state;
	Wfpbroker__V1__Request		rq = WFPBROKER__V1__REQUEST__INIT;
	Wfpbroker__V1__PrepareRequest	pr = WFPBROKER__V1__PREPARE_REQUEST__INIT;
	Wfpbroker__V1__Address		a;
	Wfpbroker__V1__Response		*r;
	struct sockaddr_in		sin;
	socklen_t			slen = sizeof(sin);
	static uint8_t			two[4] = { 127, 0, 0, 2 };
	wfpb_sock			socks[2];
	uint16_t			port;
	unsigned			n;
	int				l = remote_listener(&port);

	close(l);	/* a port that was free a moment ago */
	set_policy(f, "[principal p]\nuid = 1000\nops = prepare\nbind = 127.0.0.2/32:*\n");
	pr.family = WFPBROKER__V1__ADDRESS_FAMILY__AF_INET;
	rq.request_id = 2;
	rq.op_case = WFPBROKER__V1__REQUEST__OP_PREPARE;
	rq.prepare = &pr;
	send_request(f->s, &f->c, &rq, 2000);
	assert_non_null(r = answer_with_socks(f->s, &f->c, socks, &n));
	assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__OK);
	assert_int_equal(n, 1);
	assert_int_equal(getsockname(socks[0], (struct sockaddr *)&sin, &slen), 0);
	assert_true(sin.sin_port != 0 && sin.sin_addr.s_addr == htonl(INADDR_ANY));
	sin.sin_port = htons(port);
	assert_int_not_equal(bind(socks[0], (struct sockaddr *)&sin, sizeof(sin)), 0);
	close(socks[0]);
	wfpbroker__v1__response__free_unpacked(r, NULL);
	/* A local address outside the bind ranges: refused, nothing made. */
	loopback_pb(&a, port);
	pr.local = &a;
	rq.request_id = 3;
	send_request(f->s, &f->c, &rq, 2000);
	assert_non_null(r = answer_with_socks(f->s, &f->c, socks, &n));
	assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__DENIED);
	assert_non_null(strstr(r->status->message, "bind ranges"));
	assert_int_equal(n, 0);
	wfpbroker__v1__response__free_unpacked(r, NULL);
	/* Inside them: bound there. */
	a.addr.data = two;
	rq.request_id = 4;
	send_request(f->s, &f->c, &rq, 2000);
	assert_non_null(r = answer_with_socks(f->s, &f->c, socks, &n));
	assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__OK);
	assert_int_equal(n, 1);
	slen = sizeof(sin);
	assert_int_equal(getsockname(socks[0], (struct sockaddr *)&sin, &slen), 0);
	assert_int_equal(ntohs(sin.sin_port), port);
	assert_int_equal(sin.sin_addr.s_addr, htonl(0x7f000002));
	close(socks[0]);
	wfpbroker__v1__response__free_unpacked(r, NULL);
}

/* A UDP socket on 127.0.0.1, an ephemeral port (in *port). */
static int
udp_loopback(uint16_t *port)
{
	struct sockaddr_in	sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t		slen = sizeof(sin);
	int			fd;

	assert_true((fd = socket(AF_INET, SOCK_DGRAM, 0)) >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &slen), 0);
	*port = ntohs(sin.sin_port);
	return fd;
}

static void
udp_send_to(int fd, uint16_t port, const char *text)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };

	sin.sin_port = htons(port);
	assert_int_equal(sendto(fd, text, strlen(text), 0, (struct sockaddr *)&sin, sizeof(sin)), (ssize_t)strlen(text));
}

/* The next datagram on fd within a second, as a string (and who sent it, in *from_port when not NULL). */
static const char *
udp_recv(int fd, uint16_t *from_port)
{
	static char		buf[256];
	struct sockaddr_in	sin;
	socklen_t		slen = sizeof(sin);
	struct pollfd		pfd = { .fd = fd, .events = POLLIN };
	ssize_t			n;

	if (poll(&pfd, 1, 1000) != 1)
		return "";
	n = recvfrom(fd, buf, sizeof(buf) - 1, 0, (struct sockaddr *)&sin, &slen);
	buf[n > 0 ? n : 0] = '\0';
	if (from_port != NULL)
		*from_port = ntohs(sin.sin_port);
	return buf;
}

/* A Flow (request id) on UDP listener lid, upstream to 127.0.0.1:port. */
static void
make_flow(Wfpbroker__V1__Request *rq, Wfpbroker__V1__FlowRequest *fl, Wfpbroker__V1__Address *a, uint64_t id,
    uint64_t lid, uint16_t port)
{
	wfpbroker__v1__request__init(rq);
	wfpbroker__v1__flow_request__init(fl);
	loopback_pb(a, port);
	fl->listener_id = lid;
	fl->timeout_ms = 5000;
	fl->remote = a;
	rq->request_id = id;
	rq->op_case = WFPBROKER__V1__REQUEST__OP_FLOW;
	rq->flow = fl;
}

/* A UDP Listen on 127.0.0.1 through the session: its answer. */
static Wfpbroker__V1__Response *
listen_udp(struct fixture *f, uint64_t id)
{
	return listen_loopback_as(f, id, WFPBROKER__V1__PROTOCOL__UDP);
}

/*
 * A UDP flow, one request: the broker reads the first datagram itself (its records, context
 * and original destination), forwards it upstream with the records applied, and hands over a
 * reply socket bound to where the client sent it and connected to the client, so the flow's
 * later datagrams reach it and not the listener, and the upstream socket.
 */
static void
flow_hands_over_reply_and_upstream(void **state)
{
	struct fixture			*f = *state;
	Wfpbroker__V1__Request		rq;
	Wfpbroker__V1__FlowRequest	fl;
	Wfpbroker__V1__Address		a;
	Wfpbroker__V1__Response		*r;
	uint64_t			applied = f->b.backend.ops->records_applied(f->b.backend.ctx), lid;
	uint16_t			lport, uport, cport, from = 0;
	wfpb_sock			socks[2];
	unsigned			n;
	int				up, client;

	set_policy(f, "[principal p]\nuid = 1000\nops = udp_listen udp_flow\nudp_listen = 127.0.0.1/32:*\n"
	    "udp_connect = 127.0.0.1/32:*\n");
	assert_non_null(r = listen_udp(f, 1));
	assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__OK);
	lid = r->listen->listener_id;
	lport = (uint16_t)r->listen->local->port;
	wfpbroker__v1__response__free_unpacked(r, NULL);
	up = udp_loopback(&uport);
	client = udp_loopback(&cport);
	make_flow(&rq, &fl, &a, 2, lid, uport);
	send_request(f->s, &f->c, &rq, 2000);
	udp_send_to(client, lport, "query");
	assert_non_null(r = answer_with_socks(f->s, &f->c, socks, &n));
	assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__OK);
	assert_int_equal(r->result_case, WFPBROKER__V1__RESPONSE__RESULT_FLOW);
	assert_int_equal(n, 2);
	assert_int_equal(r->flow->payload.len, 5);
	assert_memory_equal(r->flow->payload.data, "query", 5);
	assert_true(r->flow->forwarded);
	assert_int_equal(r->flow->client->port, cport);
	assert_int_equal(r->flow->original_destination->port, lport);
	assert_int_equal(r->flow->remote->port, uport);
	assert_int_equal(f->b.backend.ops->records_applied(f->b.backend.ctx), applied + 1);
	wfpbroker__v1__response__free_unpacked(r, NULL);
	/* The broker sent the first datagram upstream, from the upstream socket it handed over. */
	assert_string_equal(udp_recv(up, &from), "query");
	assert_int_equal(from, sock_port(socks[1], 0));
	/* The upstream answers; the proxy relays it back on the reply socket: it comes from where the client sent. */
	udp_send_to(up, from, "answer");
	assert_string_equal(udp_recv(socks[1], NULL), "answer");
	assert_int_equal(send(socks[0], "answer", 6, 0), 6);
	assert_string_equal(udp_recv(client, &from), "answer");
	assert_int_equal(from, lport);
	/* The flow's next datagram reaches its reply socket, not the listener: no new flow. */
	udp_send_to(client, lport, "again");
	assert_string_equal(udp_recv(socks[0], NULL), "again");
	close(socks[0]);
	close(socks[1]);
	close(up);
	close(client);
	assert_int_equal(f->s->n_pending, 0);
}

/*
 * What a Flow may not do, each answered with its status while the session serves on: UDP
 * without its grant (a TCP grant is not one), an upstream outside udp_connect, a Flow on a TCP
 * listener, a first datagram past 16 KiB (dropped); and hold_first leaves the first datagram
 * to the proxy.
 */
static void
flow_refusals(void **state)
{
	struct fixture			*f = *state;
	Wfpbroker__V1__Request		rq;
	Wfpbroker__V1__FlowRequest	fl;
	Wfpbroker__V1__Address		a;
	Wfpbroker__V1__Response		*r;
	static char			big[20000];
	uint64_t			lid;
	uint16_t			lport, uport, cport;
	wfpb_sock			socks[2], tcp_client;
	unsigned			n;
	int				up, client;

	set_policy(f, "[principal p]\nuid = 1000\nops = listen udp_flow\nlisten = 127.0.0.1/32:*\n"
	    "udp_listen = 127.0.0.1/32:*\nudp_connect = 127.0.0.1/32:*\n");
	assert_non_null(r = listen_udp(f, 1));
	assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__DENIED);
	assert_non_null(strstr(r->status->message, "udp_listen not granted"));
	wfpbroker__v1__response__free_unpacked(r, NULL);
	/* A Flow on a TCP listener. */
	make_flow(&rq, &fl, &a, 2, listen_and_connect(f, &tcp_client), 9);
	assert_non_null(r = roundtrip(f, &rq));
	assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__EINVAL);
	assert_non_null(strstr(r->status->message, "not a UDP one"));
	wfpbroker__v1__response__free_unpacked(r, NULL);
	wfpb__net_close(tcp_client);

	set_policy(f, "[principal p]\nuid = 1000\nops = udp_listen udp_flow\nudp_listen = 127.0.0.1/32:*\n"
	    "udp_connect = 127.0.0.2/32:*\n");
	assert_non_null(r = listen_udp(f, 3));
	assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__OK);
	lid = r->listen->listener_id;
	lport = (uint16_t)r->listen->local->port;
	wfpbroker__v1__response__free_unpacked(r, NULL);
	up = udp_loopback(&uport);
	client = udp_loopback(&cport);
	make_flow(&rq, &fl, &a, 4, lid, uport);
	assert_non_null(r = roundtrip(f, &rq));
	assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__DENIED);
	assert_non_null(strstr(r->status->message, "udp_connect"));
	wfpbroker__v1__response__free_unpacked(r, NULL);

	set_policy(f, "[principal p]\nuid = 1000\nops = udp_listen udp_flow\nudp_listen = 127.0.0.1/32:*\n"
	    "udp_connect = 127.0.0.1/32:*\n");
	/* Too big to carry: refused, dropped, and the next flow is served. */
	memset(big, 'x', sizeof(big) - 1);
	udp_send_to(client, lport, big);
	make_flow(&rq, &fl, &a, 5, lid, uport);
	send_request(f->s, &f->c, &rq, 2000);
	assert_non_null(r = answer_with_socks(f->s, &f->c, socks, &n));
	assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__ENOBUFS);
	assert_int_equal(n, 0);
	wfpbroker__v1__response__free_unpacked(r, NULL);
	/* Here the broker reads the first datagram: one the proxy brings (Flow.first, for wfp) is refused. */
	{
		Wfpbroker__V1__FlowFirst	first = WFPBROKER__V1__FLOW_FIRST__INIT;
		Wfpbroker__V1__Address		ca;

		loopback_pb(&ca, cport);
		first.client = &ca;
		make_flow(&rq, &fl, &a, 7, lid, uport);
		fl.first = &first;
		assert_non_null(r = roundtrip(f, &rq));
		assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__EOPNOTSUPP);
		assert_non_null(strstr(r->status->message, "reads a flow's first datagram itself"));
		wfpbroker__v1__response__free_unpacked(r, NULL);
		/* Whatever the backend, a first datagram past its bounds, or from no one, is a bad request. */
		first.payload.data = (uint8_t *)big;
		first.payload.len = 16385;
		assert_non_null(r = roundtrip(f, &rq));
		assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__BAD_REQUEST);
		assert_non_null(strstr(r->status->message, "flow.first.payload"));
		wfpbroker__v1__response__free_unpacked(r, NULL);
		first.payload.len = 5;
		first.records.data = (uint8_t *)big;
		first.records.len = 16385;
		assert_non_null(r = roundtrip(f, &rq));
		assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__BAD_REQUEST);
		wfpbroker__v1__response__free_unpacked(r, NULL);
		first.records.len = 0;
		first.client = NULL;
		assert_non_null(r = roundtrip(f, &rq));
		assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__BAD_REQUEST);
		assert_non_null(strstr(r->status->message, "flow.first.client"));
		wfpbroker__v1__response__free_unpacked(r, NULL);
	}
	/* hold_first: the proxy has the first datagram, and nothing went upstream. */
	udp_send_to(client, lport, "held");
	make_flow(&rq, &fl, &a, 6, lid, uport);
	fl.hold_first = 1;
	send_request(f->s, &f->c, &rq, 2000);
	assert_non_null(r = answer_with_socks(f->s, &f->c, socks, &n));
	assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__OK);
	assert_false(r->flow->forwarded);
	assert_int_equal(n, 2);
	assert_string_equal(udp_recv(up, NULL), "");
	wfpbroker__v1__response__free_unpacked(r, NULL);
	close(socks[0]);
	close(socks[1]);
	close(up);
	close(client);
	assert_false(f->s->closing);
}

/*
 * A Relay is one audit record (its four addresses, the flow, the records' hash), and one whose
 * client vanishes while the upstream connect is under way is recorded CANCELLED with both
 * connections closed.
 */
static void
relay_is_one_record_even_when_abandoned(void **state)
{
	static const char		policy[] = "[principal p]\nuid = 1000\nops = listen accept connect\n"
	    "listen = 127.0.0.1/32:*\nconnect = 127.0.0.1/32:*\n";
	struct fixture			*f = *state;
	struct wfpb_identity		id = { .known = 1, .pid = 42, .uid = 1000, .gid = 1000, .user = "1000" };
	struct wfpb_broker		b;
	struct wfpb_session		*saved = f->s;
	struct wfpb_channel		saved_c = f->c;
	Wfpbroker__V1__Request		rq;
	Wfpbroker__V1__RelayRequest	re;
	Wfpbroker__V1__Address		a;
	Wfpbroker__V1__Response		*r;
	Wfpbroker__V1__AuditRecord	*rec;
	unsigned char			sk[64];
	char				dir[TEMP_DIR_LEN];
	wfpb_sock			client, socks[2];
	uint16_t			port, first_port;
	unsigned			n;
	int				l, fill[4], i;

	audited_broker(&b, policy, "relay", dir, &f->key, sk);
	/* The helpers work on f: lend them a session of this broker. */
	f->s = wfpb_session_new(&b, &id, 1000);
	handshake(f->s, &f->c, f->key.pub, WFPB_PROTOCOL_VERSION);
	l = remote_listener(&port);
	first_port = port;
	make_relay(&rq, &re, &a, 2, audited_listen(f, &b, &client), port);
	send_request(f->s, &f->c, &rq, 1002);
	for (i = 0; i < 200 && f->s->n_pending > 0; i++) {
		usleep(5000);
		assert_true(wfpb_session_resume(f->s, WFPB_SOCK_NONE, 1003) >= 0);
	}
	/* Its answer waits for its record. */
	assert_int_equal(wfpb_broker_commit(&b, 100000), 1);
	assert_non_null(r = answer_with_socks(f->s, &f->c, socks, &n));
	assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__OK);
	assert_int_equal(n, 2);
	wfpbroker__v1__response__free_unpacked(r, NULL);
	close(socks[0]);
	close(socks[1]);
	wfpb__net_close(client);
	close(l);

	/* An upstream whose queue is full: the connect stays under way while the client goes. */
	l = blocked_listener(&port, fill);
	make_relay(&rq, &re, &a, 3, audited_listen(f, &b, &client), port);
	send_request(f->s, &f->c, &rq, 1004);
	for (i = 0; i < 20; i++)
		assert_int_equal(wfpb_session_resume(f->s, WFPB_SOCK_NONE, 1005), 0);
	assert_int_equal(f->s->n_pending, 1);
	wfpb_session_free(f->s);
	wfpb_channel_free(&f->c);
	f->s = saved;
	f->c = saved_c;
	assert_true(closed_by_peer(client));
	wfpb__net_close(client);
	/* Nobody waits for these records: the commit that takes them is the lazy one, later. */
	assert_int_equal(wfpb_broker_commit(&b, 1000000), 0);
	assert_int_equal(log_scan(dir, WFPBROKER__V1__AUDIT_KIND__AUDIT_REQUEST, "relay",
	    WFPBROKER__V1__STATUS_CODE__OK, &rec), 1);
	assert_int_equal(rec->n_addresses, 4);
	assert_int_equal(rec->addresses[2]->port, first_port);
	assert_true(rec->flow_id != 0);
	assert_int_equal(rec->n_blob_hashes, 1);
	assert_non_null(rec->original_destination);
	wfpbroker__v1__audit_record__free_unpacked(rec, NULL);
	assert_int_equal(log_scan(dir, WFPBROKER__V1__AUDIT_KIND__AUDIT_REQUEST, "relay",
	    WFPBROKER__V1__STATUS_CODE__CANCELLED, &rec), 1);
	assert_non_null(strstr(rec->message, "accepted, and upstream started"));
	assert_int_equal(rec->addresses[2]->port, port);
	wfpbroker__v1__audit_record__free_unpacked(rec, NULL);
	for (i = 0; i < 4; i++)
		close(fill[i]);
	close(l);
	audited_broker_end(&b, sk, dir);
}
#endif

#ifndef _WIN32
/*
 * A revoked grant reaches the requests already waiting: a principal removed
 * by a reload has two Accepts waiting; a connection then arrives, and the
 * Accept it wakes is DENIED, not handed the socket; at the next sweep the
 * other is DENIED too and the listener, which the principal may no longer
 * hold, is closed.
 */
static void
reload_revokes_waiting_accepts(void **state)
{
	struct fixture		*f = *state;
	Wfpbroker__V1__Response	*r;
	wfpb_sock		peer;
	uint16_t		port;
	int			i;

	(void)accepts_waiting(f, "[principal p]\nuid = 1000\nops = listen accept\nlisten = 127.0.0.1/32:*\n", 2, 50,
	    &port);
	assert_int_equal(f->s->n_pending, 2);
	assert_int_equal(f->b.listeners, 1);
	set_policy(f, "[principal other]\nuid = 4242\nops = listen accept\nlisten = 127.0.0.1/32:*\n");
	peer = connect_to(port);
	resume_until_answered(f, WFPB_SOCK_NONE);
	assert_non_null(r = next_response(f->s, &f->c));
	assert_int_equal(r->request_id, 50);
	assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__DENIED);
	assert_int_equal(r->result_case, WFPBROKER__V1__RESPONSE__RESULT__NOT_SET);
	wfpbroker__v1__response__free_unpacked(r, NULL);
	assert_int_equal(wfpb_session_sweep(f->s, 2100), WFPB_SWEEP_FLUSH);
	assert_non_null(r = next_response(f->s, &f->c));
	assert_int_equal(r->request_id, 51);
	assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__DENIED);
	wfpbroker__v1__response__free_unpacked(r, NULL);
	assert_int_equal(f->s->n_pending, 0);
	assert_int_equal(f->b.listeners, 0);
	for (i = 0; i < 2; i++)
		assert_int_equal(wfpb_session_sweep(f->s, 2200), WFPB_SWEEP_KEEP);
	wfpb__net_close(peer);
}

/* A narrowed connect range reaches a Connect still waiting for its connection: DENIED, closed. */
static void
reload_revokes_a_waiting_connect(void **state)
{
	struct fixture			*f = *state;
	Wfpbroker__V1__Response		*r;
	int				l, fill[4], i;

	set_policy(f, "[principal p]\nuid = 1000\nops = connect\nconnect = 127.0.0.1/32:*\n");
	l = blocked_connect(f, 60, 5000, fill);
	assert_int_equal(f->s->n_pending, 1);
	assert_int_equal(wfpb_session_sweep(f->s, 2050), WFPB_SWEEP_KEEP);
	set_policy(f, "[principal p]\nuid = 1000\nops = connect\nconnect = 10.0.0.0/8:*\n");
	assert_int_equal(wfpb_session_sweep(f->s, 2100), WFPB_SWEEP_FLUSH);
	assert_non_null(r = next_response(f->s, &f->c));
	assert_int_equal(r->request_id, 60);
	assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__DENIED);
	assert_non_null(strstr(r->status->message, "connect ranges"));
	wfpbroker__v1__response__free_unpacked(r, NULL);
	assert_int_equal(f->s->n_pending, 0);
	for (i = 0; i < 4; i++)
		close(fill[i]);
	close(l);
}
#endif

/* Opens a second session in the fixture's broker speaking protocol version `version`. */
static struct wfpb_session *
open_session(struct fixture *f, unsigned version, struct wfpb_channel *c)
{
	struct wfpb_identity	id = { .known = 1, .pid = 42, .uid = 1000, .gid = 1000, .user = "1000" };
	struct wfpb_session	*s;

#ifdef _WIN32
	id.pid = GetCurrentProcessId();
	id.process = (intptr_t)GetCurrentProcess();
#endif
	s = wfpb_session_new(&f->b, &id, 1000);
	handshake(s, c, f->key.pub, version);
	return s;
}

/* The fixture's own session, set aside while a test drives a second one in its place. */
struct first_session {
	struct wfpb_session	*s;
	struct wfpb_channel	c;
};

static struct wfpb_session *
use_second_session(struct fixture *f, unsigned version, struct first_session *first)
{
	first->s = f->s;
	first->c = f->c;
	return f->s = open_session(f, version, &f->c);
}

static void
back_to_first_session(struct fixture *f, struct first_session *first)
{
	wfpb_channel_free(&f->c);
	wfpb_session_free(f->s);
	f->s = first->s;
	f->c = first->c;
}

/* A Cancel (request id) of the session's request cancel_id. */
static void
make_cancel(Wfpbroker__V1__Request *rq, Wfpbroker__V1__CancelRequest *c, uint64_t id, uint64_t cancel_id)
{
	wfpbroker__v1__request__init(rq);
	wfpbroker__v1__cancel_request__init(c);
	c->request_id = cancel_id;
	rq->request_id = id;
	rq->op_case = WFPBROKER__V1__REQUEST__OP_CANCEL;
	rq->cancel = c;
}

/*
 * An Accept may wait until cancelled, and a client may cancel a request of its own that waits:
 * it is answered CANCELLED first, then the Cancel OK; a Cancel of nothing waiting is NOT_FOUND.
 */
static void
cancel_ends_a_waiting_accept(void **state)
{
	struct fixture			*f = *state;
	Wfpbroker__V1__Request		rq;
	Wfpbroker__V1__AcceptRequest	ac;
	Wfpbroker__V1__CancelRequest	cr;
	Wfpbroker__V1__Response		*r;
	uint64_t			lid;

	set_policy(f, "[principal p]\nuid = 1000\nops = listen accept\nlisten = 127.0.0.1/32:*\n");
	assert_non_null(r = listen_loopback(f, 1));
	lid = r->listen->listener_id;
	wfpbroker__v1__response__free_unpacked(r, NULL);
	make_accept(&rq, &ac, 5, lid);
	ac.timeout_ms = 0xffffffffu;	/* until cancelled */
	send_request(f->s, &f->c, &rq, 2000);
	assert_null(next_response(f->s, &f->c));
	/* A day on, it still waits: no deadline, and no re-arm to record. */
	(void)wfpb_session_sweep(f->s, 2000 + 86400000u);
	assert_null(next_response(f->s, &f->c));
	assert_int_equal(f->s->n_pending, 1);
	make_cancel(&rq, &cr, 6, 5);
	send_request(f->s, &f->c, &rq, 2001);
	assert_non_null(r = next_response(f->s, &f->c));
	assert_int_equal(r->request_id, 5);
	assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__CANCELLED);
	assert_non_null(strstr(r->status->message, "cancelled by its client"));
	wfpbroker__v1__response__free_unpacked(r, NULL);
	assert_non_null(r = next_response(f->s, &f->c));
	assert_int_equal(r->request_id, 6);
	assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__OK);
	assert_int_equal(r->result_case, WFPBROKER__V1__RESPONSE__RESULT_CANCEL);
	wfpbroker__v1__response__free_unpacked(r, NULL);
	assert_int_equal(f->s->n_pending, 0);
	/* Nothing waits now; and an id of 0 names nothing. */
	make_cancel(&rq, &cr, 7, 5);
	assert_non_null(r = roundtrip(f, &rq));
	assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__NOT_FOUND);
	wfpbroker__v1__response__free_unpacked(r, NULL);
	make_cancel(&rq, &cr, 8, 0);
	assert_non_null(r = roundtrip(f, &rq));
	assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__BAD_REQUEST);
	wfpbroker__v1__response__free_unpacked(r, NULL);
	/* A wait past the limit that is not "until cancelled" is still refused. */
	make_accept(&rq, &ac, 9, lid);
	ac.timeout_ms = 600001;
	assert_non_null(r = roundtrip(f, &rq));
	assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__BAD_REQUEST);
	wfpbroker__v1__response__free_unpacked(r, NULL);
}

/* A version-1 client is answered in order, one request at a time, as before. */
static void
v1_answers_in_order(void **state)
{
	struct fixture			*f = *state;
	struct first_session		first;
	struct wfpb_session		*s;
	Wfpbroker__V1__Request		rq;
	Wfpbroker__V1__AcceptRequest	ac;
	Wfpbroker__V1__PingRequest	pg;
	Wfpbroker__V1__Response		*r;
	wfpb_sock			peer;
	uint16_t			port;
	uint64_t			lid;
	int				i;

	set_policy(f, "[principal p]\nuid = 1000\nops = listen accept\nlisten = 127.0.0.1/32:*\n");
	s = use_second_session(f, 1, &first);
	lid = v2_listener(f, &port);
	make_ping(&rq, &pg, 2);
	send_request(s, &f->c, &rq, 2000);
	assert_non_null(r = next_response(s, &f->c));
	assert_int_equal(r->ping->protocol_version, 1);
	assert_int_equal(r->ping->max_inflight, 1);
	wfpbroker__v1__response__free_unpacked(r, NULL);
	make_accept(&rq, &ac, 3, lid);
	send_request(s, &f->c, &rq, 2000);
	make_ping(&rq, &pg, 4);
	send_request(s, &f->c, &rq, 2000);
	/* The Ping waits behind the Accept. */
	assert_null(next_response(s, &f->c));
	assert_int_equal(s->n_pending, 1);
	peer = connect_to(port);
	resume_until_answered(f, WFPB_SOCK_NONE);
	for (i = 0; i < 2; i++) {
		assert_non_null(r = next_response(s, &f->c));
		assert_int_equal(r->request_id, 3 + i);
		assert_int_equal(r->status->code, WFPBROKER__V1__STATUS_CODE__OK);
		wfpbroker__v1__response__free_unpacked(r, NULL);
	}
	wfpb__net_close(peer);
	back_to_first_session(f, &first);
}

#ifndef _WIN32
static unsigned
open_fds(void)
{
	unsigned	n = 0;
	int		fd;

	for (fd = 0; fd < 1024; fd++)
		if (fcntl(fd, F_GETFD) != -1)
			n++;
	return n;
}

/* A client gone with many requests in flight leaves nothing behind: listeners, sockets, stash, counts. */
static void
v2_session_gone_with_requests_in_flight(void **state)
{
	struct fixture			*f = *state;
	struct first_session		first;
	struct wfpb_session		*s;
	Wfpbroker__V1__Request		rq;
	Wfpbroker__V1__AcceptRequest	ac;
	Wfpbroker__V1__StashRequest	st = WFPBROKER__V1__STASH_REQUEST__INIT;
	unsigned			fds, i;
	uint16_t			port;
	uint64_t			lid;

	set_policy(f, "[principal p]\nuid = 1000\nops = listen accept stash\nlisten = 127.0.0.1/32:*\n");
	fds = open_fds();
	s = use_second_session(f, 2, &first);
	for (i = 0; i < 4; i++) {
		lid = v2_listener(f, &port);
		make_accept(&rq, &ac, 10 + i, lid);
		send_request(s, &f->c, &rq, 2000);
		make_accept(&rq, &ac, 20 + i, lid);
		send_request(s, &f->c, &rq, 2000);
	}
	wfpbroker__v1__request__init(&rq);
	rq.request_id = 30;
	rq.op_case = WFPBROKER__V1__REQUEST__OP_STASH;
	rq.stash = &st;
	st.blob.data = (uint8_t *)"records";
	st.blob.len = 7;
	send_request(s, &f->c, &rq, 2000);
	assert_int_equal(s->n_pending, 8);
	assert_int_equal(f->b.inflight, 8);
	assert_int_equal(f->b.listeners, 4);
	assert_int_equal(f->b.stash.count, 1);
	assert_true(open_fds() >= fds + 4);
	back_to_first_session(f, &first);
	assert_int_equal(f->b.inflight, 0);
	assert_int_equal(f->b.listeners, 0);
	assert_int_equal(f->b.stash.count, 0);
	assert_int_equal(open_fds(), fds);
}
#endif

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(ping_echoes, setup, teardown),
		cmocka_unit_test_setup_teardown(garbage_message_is_bad_request_and_session_continues, setup, teardown),
		cmocka_unit_test_setup_teardown(empty_and_unknown_ops, setup, teardown),
		cmocka_unit_test_setup_teardown(v1_flood_behind_a_waiting_accept_ends_the_session, setup, teardown),
		cmocka_unit_test_setup_teardown(declared_listener_outlives_its_sessions, setup, teardown),
		cmocka_unit_test_setup_teardown(oversized_ping_names_the_field, setup, teardown),
		cmocka_unit_test_setup_teardown(denials_do_not_flood_the_log, setup, teardown),
		cmocka_unit_test_setup_teardown(backend_refusals_do_not_flood_the_log, setup, teardown),
		cmocka_unit_test_setup_teardown(deadlines, setup, teardown),
		cmocka_unit_test_setup_teardown(per_user_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(listener_budget, setup, teardown),
		cmocka_unit_test_setup_teardown(accept_without_redirect, setup, teardown),
		cmocka_unit_test_setup_teardown(output_budget, setup, teardown),
		cmocka_unit_test_setup_teardown(v2_answers_out_of_order, setup, teardown),
		cmocka_unit_test_setup_teardown(v2_inflight_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(v2_many_sockets_wait_for_their_answers, setup, teardown),
		cmocka_unit_test_setup_teardown(v1_answers_in_order, setup, teardown),
		cmocka_unit_test_setup_teardown(cancel_ends_a_waiting_accept, setup, teardown),
#ifndef _WIN32
		cmocka_unit_test_setup_teardown(v2_session_gone_with_requests_in_flight, setup, teardown),
		cmocka_unit_test_setup_teardown(v2_answer_leaves_when_its_own_record_is_durable, setup, teardown),
		cmocka_unit_test_setup_teardown(v2_dead_upstream_times_out_alone, setup, teardown),
		cmocka_unit_test_setup_teardown(descriptors_before_handshake_are_discarded, setup, teardown),
		cmocka_unit_test_setup_teardown(client_sockets_keep_their_options, setup, teardown),
		cmocka_unit_test_setup_teardown(apply_records_waits_for_its_record, setup, teardown),
		cmocka_unit_test_setup_teardown(prepare_carries_the_marks, setup, teardown),
		cmocka_unit_test_setup_teardown(abandoned_connect_is_recorded, setup, teardown),
		cmocka_unit_test_setup_teardown(bad_frame_sessions_have_their_end, setup, teardown),
		cmocka_unit_test_setup_teardown(once_records_are_applied_once, setup, teardown),
		cmocka_unit_test_setup_teardown(reload_revokes_waiting_accepts, setup, teardown),
		cmocka_unit_test_setup_teardown(reload_revokes_a_waiting_connect, setup, teardown),
		cmocka_unit_test_setup_teardown(reload_revokes_apply_foreign, setup, teardown),
		cmocka_unit_test_setup_teardown(relay_hands_over_both_connections, setup, teardown),
		cmocka_unit_test_setup_teardown(relay_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(prepare_comes_bound, setup, teardown),
		cmocka_unit_test_setup_teardown(flow_hands_over_reply_and_upstream, setup, teardown),
		cmocka_unit_test_setup_teardown(flow_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(relay_is_one_record_even_when_abandoned, setup, teardown),
#else
		cmocka_unit_test_setup_teardown(pull_waits_off_the_core_lock_and_gives_up, setup, teardown),
		cmocka_unit_test_setup_teardown(pinned_client_holds_no_dup_right, setup, teardown),
		cmocka_unit_test(refused_connect_is_seen_without_wsapoll),
		cmocka_unit_test_setup_teardown(socket_enters_the_client_only_with_its_answer, setup, teardown),
		cmocka_unit_test_setup_teardown(relay_sockets_enter_the_client_with_their_answer, setup, teardown),
		cmocka_unit_test_setup_teardown(udp_flow_stays_on_the_listener_wfp, setup, teardown),
		cmocka_unit_test_setup_teardown(undelivered_answer_leaves_nothing_in_the_client, setup, teardown),
		cmocka_unit_test_setup_teardown(failed_handover_is_recorded, setup, teardown),
		cmocka_unit_test_setup_teardown(callout_sized_context_is_enobufs_and_the_service_serves_on, setup,
		    teardown),
#endif
	};

#ifdef _WIN32
	WSADATA wsa;

	if (WSAStartup(MAKEWORD(2, 2), &wsa) != 0)
		return 1;
#endif
	return cmocka_run_group_tests(tests, NULL, NULL);
}
