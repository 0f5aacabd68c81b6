/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libwfpb against a broker of protocol version 1, as clients meet during an upgrade that
 * reaches them first. The broker here is a small one of the test's own (a thread on a Unix
 * socket, the project's broker-side channel): it refuses a version-2 preamble with reject
 * notice 2, as a version-1 broker does, and answers Ping on version 1. wfpb_open must then
 * open the session on version 1 by itself, and every request must work on it.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <setjmp.h>
#include <cmocka.h>

#include "channel.h"
#include "noise.h"
#include "wfpb.h"
#include "wfpbroker.pb-c.h"

struct old_broker {
	int				lfd;
	char				path[108];
	struct wfpb_noise_keypair	key;
	unsigned			speaks;		/* the one version it accepts */
	int				sessions;	/* connections served */
	unsigned			versions[4];	/* the preamble version of each */
	pthread_t			th;
};

static int
write_out(int fd, struct wfpb_channel *ch)
{
	const uint8_t	*p;
	size_t		n;

	while ((p = wfpb_channel_output(ch, &n)) != NULL && n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w <= 0)
			return -1;
		wfpb_channel_output_done(ch, (size_t)w);
	}
	return 0;
}

static void
answer_ping(struct wfpb_channel *ch, const uint8_t *msg, size_t len)
{
	Wfpbroker__V1__Request		*rq = wfpbroker__v1__request__unpack(NULL, len, msg);
	Wfpbroker__V1__Response		rs = WFPBROKER__V1__RESPONSE__INIT;
	Wfpbroker__V1__Status		st = WFPBROKER__V1__STATUS__INIT;
	Wfpbroker__V1__PingResponse	ping = WFPBROKER__V1__PING_RESPONSE__INIT;
	uint8_t				out[512];
	size_t				n;

	if (rq == NULL)
		return;
	rs.request_id = rq->request_id;
	rs.status = &st;
	if (rq->op_case == WFPBROKER__V1__REQUEST__OP_PING) {
		st.code = WFPBROKER__V1__STATUS_CODE__OK;
		ping.payload = rq->ping->payload;
		ping.protocol_version = wfpb_channel_version(ch);	/* the session's; no max_inflight */
		rs.result_case = WFPBROKER__V1__RESPONSE__RESULT_PING;
		rs.ping = &ping;
	} else {
		st.code = WFPBROKER__V1__STATUS_CODE__BAD_REQUEST;
		st.message = "not in this test";
	}
	n = wfpbroker__v1__response__get_packed_size(&rs);
	if (n <= sizeof(out)) {
		wfpbroker__v1__response__pack(&rs, out);
		if (wfpb_channel_send(ch, out, n) != 0)
			fprintf(stderr, "test broker: cannot send the answer\n");
	}
	wfpbroker__v1__request__free_unpacked(rq, NULL);
}

/* One connection: the preamble first, a byte at a time, to decide on its version. */
static void
serve_one(struct old_broker *b, int fd)
{
	struct wfpb_channel	ch;
	uint8_t			in[4096];
	ssize_t			n;
	int			decided = 0;

	wfpb_channel_server_init(&ch, &b->key, NULL, NULL);
	while ((n = recv(fd, in, sizeof(in), 0)) > 0) {
		size_t off = 0;

		while (off < (size_t)n) {
			size_t	consumed = 0, give = decided ? (size_t)n - off : 1;
			int	ev = wfpb_channel_feed(&ch, in + off, give, &consumed);

			off += consumed;
			if (!decided && wfpb_channel_version(&ch) != 0) {
				decided = 1;
				b->versions[b->sessions < 4 ? b->sessions : 3] = wfpb_channel_version(&ch);
				if (wfpb_channel_version(&ch) != b->speaks) {
					wfpb_channel_reject(&ch, WFPB_REJECT_VERSION);
					(void)write_out(fd, &ch);
					wfpb_channel_free(&ch);
					return;
				}
			}
			if (ev < 0) {
				(void)write_out(fd, &ch);
				wfpb_channel_free(&ch);
				return;
			}
			if (ev == WFPB_CHANNEL_MESSAGE) {
				const uint8_t	*m;
				size_t		mlen;

				m = wfpb_channel_message(&ch, &mlen);
				answer_ping(&ch, m, mlen);
			}
			if (consumed == 0 && ev == WFPB_CHANNEL_MORE)
				break;
		}
		if (write_out(fd, &ch) != 0)
			break;
	}
	wfpb_channel_free(&ch);
}

static void *
serve(void *arg)
{
	struct old_broker	*b = arg;
	int			fd;

	while ((fd = accept(b->lfd, NULL, NULL)) >= 0) {
		serve_one(b, fd);
		b->sessions++;
		close(fd);
	}
	return NULL;
}

static void
start(struct old_broker *b, unsigned speaks)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };

	memset(b, 0, sizeof(*b));
	b->speaks = speaks;
	wfpb_noise_keypair_generate(&b->key);
	snprintf(b->path, sizeof(b->path), "/tmp/wfpb-v1-%d.sock", (int)getpid());
	unlink(b->path);
	memcpy(a.sun_path, b->path, strlen(b->path) + 1);
	assert_true((b->lfd = socket(AF_UNIX, SOCK_STREAM, 0)) >= 0);
	assert_int_equal(bind(b->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(b->lfd, 4), 0);
	assert_int_equal(pthread_create(&b->th, NULL, serve, b), 0);
}

static void
stop(struct old_broker *b)
{
	shutdown(b->lfd, SHUT_RDWR);
	close(b->lfd);
	pthread_join(b->th, NULL);
	unlink(b->path);
}

static int
open_to(struct old_broker *b, struct wfpb_client **c, char *err, size_t cap)
{
	struct wfpb_open_opts o = WFPB_OPEN_OPTS_INIT;

	o.endpoint = b->path;
	o.server_key = b->key.pub;
	o.timeout_ms = 3000;
	return wfpb_open(&o, c, err, cap);
}

/* The client offers version 2, is refused, and opens the session on version 1 at once. */
static void
falls_back_to_version_1(void **state)
{
	struct old_broker	b;
	struct wfpb_client	*c = NULL;
	char			err[256] = "";
	uint32_t		version = 0;
	uint64_t		id1 = 0, id2 = 0;
	struct wfpb_completion	done = WFPB_COMPLETION_INIT;
	int			got = 0;

	(void)state;
	start(&b, 1);
	if (open_to(&b, &c, err, sizeof(err)) != 0)
		fail_msg("wfpb_open against a version-1 broker: %s", err);
	assert_int_equal(wfpb_ping(c, (const uint8_t *)"hi", 2, &version), 0);
	assert_int_equal(version, 1);
	/* Asynchronous requests work on version 1 too; its broker answers them in order. */
	assert_int_equal(wfpb_submit_ping(c, (const uint8_t *)"a", 1, NULL, NULL, &id1), 0);
	assert_int_equal(wfpb_submit_ping(c, (const uint8_t *)"b", 1, NULL, NULL, &id2), 0);
	while (got < 2) {
		int rc = wfpb_complete(c, &done, 1, 3000);

		assert_true(rc >= 0);
		if (rc == 1) {
			assert_int_equal(done.rc, 0);
			assert_int_equal(done.request_id, got == 0 ? id1 : id2);
			got++;
		}
	}
	wfpb_close(c);
	stop(&b);
	/* Two connections: version 2 refused, then version 1. */
	assert_int_equal(b.sessions, 2);
	assert_int_equal(b.versions[0], 2);
	assert_int_equal(b.versions[1], 1);
}

/* A broker that speaks version 2 is not asked twice. */
static void
no_fallback_when_not_refused(void **state)
{
	struct old_broker	b;
	struct wfpb_client	*c = NULL;
	char			err[256] = "";
	uint32_t		version = 0;

	(void)state;
	start(&b, 2);
	if (open_to(&b, &c, err, sizeof(err)) != 0)
		fail_msg("wfpb_open: %s", err);
	assert_int_equal(wfpb_ping(c, NULL, 0, &version), 0);
	assert_int_equal(version, 2);
	wfpb_close(c);
	stop(&b);
	assert_int_equal(b.sessions, 1);
	assert_int_equal(b.versions[0], 2);
}

/* A broker that refuses every version this library speaks: one clear error, two attempts. */
static void
refused_at_every_version(void **state)
{
	struct old_broker	b;
	struct wfpb_client	*c = NULL;
	char			err[256] = "";

	(void)state;
	start(&b, 99);
	assert_int_equal(open_to(&b, &c, err, sizeof(err)), WFPB_E_REJECTED);
	assert_null(c);
	assert_non_null(strstr(err, "version"));
	stop(&b);
	assert_int_equal(b.sessions, 2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(falls_back_to_version_1),
		cmocka_unit_test(no_fallback_when_not_refused),
		cmocka_unit_test(refused_at_every_version),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
