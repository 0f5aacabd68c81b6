/* SPDX-License-Identifier: Apache-2.0 */
/*
 * broker-test: drives a running wfpbrokerd over its real endpoint (Unix socket
 * or named pipe) with good and hostile clients, and after every hostile case
 * proves the broker still serves. The broker must run with the limits in
 * tests/integration/broker_e2e.sh: handshake_timeout_ms=500,
 * idle_timeout_ms=3000, max_sessions=8.
 *
 *   broker-test ENDPOINT SERVER_PUB ENROLLED_KEY UNENROLLED_KEY
 */
#include <stdarg.h>
#include <stdio.h>
#ifdef _WIN32
#include <windows.h>
#else
#include <poll.h>
#include <pthread.h>
#endif
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "channel.h"
#include "keyfile.h"
#include "transport.h"
#include "itest.h"
#include "itest_raw.h"
#include "wfpb.h"
#include "wfpbroker.pb-c.h"

#define MAX_SESSIONS		8
#define HANDSHAKE_MS		500
#define IDLE_MS			3000
#define RANDOM_BYTES		(1024u * 1024u)
#define FLOOD_PINGS		2000
/* The round trip a legitimate client keeps while others flood the endpoint (docs/SECURITY.md). */
#define FLOOD_P99_BOUND_US	50000u

static const char	*endpoint, *server_pub_path, *enrolled_path, *unenrolled_path;
static uint8_t		server_pub[WFPB_NOISE_DHLEN];
static struct wfpb_client *witness;
static int		passed, failed;

static int
open_client(const char *client_key, struct wfpb_client **c, char *err, size_t errlen)
{
	struct wfpb_open_opts o = WFPB_OPEN_OPTS_INIT;

	o.endpoint = endpoint;
	o.server_key_path = server_pub_path;
	o.client_key_path = client_key;
	o.timeout_ms = 5000;
	return wfpb_open(&o, c, err, errlen);
}

static int
ping_once(const char *client_key)
{
	struct wfpb_client	*c;
	char			err[256];
	uint32_t		v = 0;
	int			rc;

	if ((rc = open_client(client_key, &c, err, sizeof(err))) != 0) {
		printf("  open: %s\n", err);
		return rc;
	}
	rc = wfpb_ping(c, (const uint8_t *)"witness", 7, &v);
	if (rc != 0)
		printf("  ping: %s\n", wfpb_errmsg(c));
	wfpb_close(c);
	return rc == 0 && v == WFPB_PROTOCOL_VERSION ? 0 : -1;
}

/* Reads until the broker closes; returns the reject reason seen (0 none) or -1 on timeout. */
static int
raw_expect_close(struct itest_raw *r, uint32_t timeout_ms, int *reject)
{
	uint8_t	buf[512];
	size_t	got, have = 0;
	int	rc;

	*reject = 0;
	for (;;) {
		rc = wfpb__transport_read(r->t, buf + have, sizeof(buf) - have, &got, timeout_ms);
		if (rc == WFPB_E_CLOSED)
			break;
		if (rc != 0)
			return -1;
		have += got;
		if (have == sizeof(buf))
			return -1;
	}
	/* A reject notice: 2-byte length <= WFPB_REJECT_MAX, then the reason byte. */
	if (have >= 3 && (size_t)((buf[0] << 8) | buf[1]) == have - 2 && have - 2 <= WFPB_REJECT_MAX)
		*reject = buf[2];
	else if (have != 0)
		*reject = -1;
	return 0;
}

/* Packs a request for the raw clients. */
static int
pack_request(Wfpbroker__V1__Request *rq, uint8_t *buf, size_t cap, size_t *len)
{
	*len = wfpbroker__v1__request__get_packed_size(rq);
	if (*len > cap)
		return -1;
	wfpbroker__v1__request__pack(rq, buf);
	return 0;
}

static int
make_ping_request(uint8_t *buf, size_t cap, size_t *len, uint64_t id)
{
	Wfpbroker__V1__Request		rq = WFPBROKER__V1__REQUEST__INIT;
	Wfpbroker__V1__PingRequest	ping = WFPBROKER__V1__PING_REQUEST__INIT;

	rq.request_id = id;
	rq.op_case = WFPBROKER__V1__REQUEST__OP_PING;
	rq.ping = &ping;
	return pack_request(&rq, buf, cap, len);
}

static int
make_stash_request(uint8_t *buf, size_t cap, size_t *len, uint64_t id)
{
	Wfpbroker__V1__Request		rq = WFPBROKER__V1__REQUEST__INIT;
	Wfpbroker__V1__StashRequest	st = WFPBROKER__V1__STASH_REQUEST__INIT;

	st.blob.data = (uint8_t *)"records of a client about to vanish";
	st.blob.len = 35;
	rq.request_id = id;
	rq.op_case = WFPBROKER__V1__REQUEST__OP_STASH;
	rq.stash = &st;
	return pack_request(&rq, buf, cap, len);
}

/* One thread beside the main one, on either platform. */
#ifdef _WIN32
typedef HANDLE thread_t;
static DWORD WINAPI thread_tramp(LPVOID arg) { ((void (*)(void))arg)(); return 0; }
static int thread_start(thread_t *t, void (*fn)(void))
{
	return (*t = CreateThread(NULL, 0, thread_tramp, (LPVOID)fn, 0, NULL)) != NULL ? 0 : -1;
}
static void thread_join(thread_t t) { WaitForSingleObject(t, INFINITE); CloseHandle(t); }
#else
typedef pthread_t thread_t;
static void *thread_tramp(void *arg) { ((void (*)(void))arg)(); return NULL; }
static int thread_start(thread_t *t, void (*fn)(void)) { return pthread_create(t, NULL, thread_tramp, (void *)fn); }
static void thread_join(thread_t t) { pthread_join(t, NULL); }
#endif

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* --- cases ---------------------------------------------------------------- */

static int
case_nk_ping(void)
{
	CHECK(ping_once(NULL) == 0, "NK ping failed");
	return 0;
}

static int
case_ik_ping(void)
{
	CHECK(ping_once(enrolled_path) == 0, "IK ping with the enrolled key failed");
	return 0;
}

static int
case_ik_unenrolled(void)
{
	struct wfpb_client	*c = NULL;
	char			err[256] = "";
	int			rc = open_client(unenrolled_path, &c, err, sizeof(err));

	CHECK(rc == WFPB_E_REJECTED, "rc %d (%s)", rc, err);
	CHECK(strstr(err, "not enrolled") != NULL, "message: %s", err);
	CHECK(c == NULL, "client handle returned on failure");
	return 0;
}

static int
case_wrong_pinned_key(void)
{
	struct wfpb_open_opts	o = WFPB_OPEN_OPTS_INIT;
	struct wfpb_client	*c = NULL;
	uint8_t			bogus[WFPB_NOISE_DHLEN];
	char			err[256] = "";
	int			rc;

	memcpy(bogus, server_pub, sizeof(bogus));
	bogus[7] ^= 0x40;
	o.endpoint = endpoint;
	o.server_key = bogus;
	o.timeout_ms = 5000;
	rc = wfpb_open(&o, &c, err, sizeof(err));
	CHECK(rc != 0 && c == NULL, "handshake with a wrong pinned key succeeded");
	CHECK(strlen(err) > 0, "no message");
	return 0;
}

static int
expect_reject(const void *bytes, size_t len, int want)
{
	struct itest_raw	r;
	int		reason;

	CHECK(itest_raw_connect(&r, endpoint) == 0, "connect");
	CHECK(itest_raw_write(&r, bytes, len) == 0, "write");
	CHECK(raw_expect_close(&r, 5000, &reason) == 0, "broker did not close the session");
	itest_raw_close(&r);
	CHECK(reason == want, "reject reason %d, want %d (%s)", reason, want, wfpb_reject_str(want));
	return 0;
}

static int
case_garbage_bytes(void)
{
	uint8_t junk[1024];

	randombytes_buf(junk, sizeof(junk));
	junk[0] = 'G';	/* never a valid first magic byte */
	return expect_reject(junk, sizeof(junk), WFPB_REJECT_BAD_MAGIC);
}

static int
case_bad_version(void)
{
	uint8_t p[WFPB_PREAMBLE_LEN];

	wfpb_preamble_encode(p, WFPB_PROTOCOL_VERSION + 1, WFPB_PATTERN_NK);
	return expect_reject(p, sizeof(p), WFPB_REJECT_VERSION);
}

static int
case_bad_pattern(void)
{
	uint8_t p[WFPB_PREAMBLE_LEN];

	wfpb_preamble_encode(p, WFPB_PROTOCOL_VERSION, 9);
	return expect_reject(p, sizeof(p), WFPB_REJECT_PATTERN);
}

static int
case_oversize_frame(void)
{
	uint8_t p[WFPB_PREAMBLE_LEN + 2];

	wfpb_preamble_encode(p, WFPB_PROTOCOL_VERSION, WFPB_PATTERN_NK);
	p[WFPB_PREAMBLE_LEN] = 0xff;
	p[WFPB_PREAMBLE_LEN + 1] = 0xff;
	return expect_reject(p, sizeof(p), WFPB_REJECT_HANDSHAKE);
}

/* Establishes a session, sends one valid ping frame mangled by `how`, expects the broker to hang up. */
enum { TAMPER, REPLAY, REORDER, TRUNCATE };

static int
transport_attack(int how)
{
	struct itest_raw	r;
	uint8_t		msg[64], f1[128], f2[128], both[256];
	const uint8_t	*p;
	size_t		mlen, l1, l2;
	int		reason, ev;

	CHECK(itest_raw_establish(&r, endpoint, server_pub) == 0, "establish");
	CHECK(make_ping_request(msg, sizeof(msg), &mlen, 1) == 0, "pack");
	CHECK(wfpb_channel_send(&r.ch, msg, mlen) == 0, "send 1");
	p = wfpb_channel_output(&r.ch, &l1);
	memcpy(f1, p, l1);
	wfpb_channel_output_done(&r.ch, l1);
	CHECK(make_ping_request(msg, sizeof(msg), &mlen, 2) == 0, "pack");
	CHECK(wfpb_channel_send(&r.ch, msg, mlen) == 0, "send 2");
	p = wfpb_channel_output(&r.ch, &l2);
	memcpy(f2, p, l2);
	wfpb_channel_output_done(&r.ch, l2);

	switch (how) {
	case TAMPER:
		f1[l1 - 1] ^= 0x20;
		CHECK(itest_raw_write(&r, f1, l1) == 0, "write");
		break;
	case REPLAY:
		CHECK(itest_raw_write(&r, f1, l1) == 0, "write");
		ev = itest_raw_event(&r, 5000);
		CHECK(ev == WFPB_CHANNEL_MESSAGE, "first copy not answered (%d)", ev);
		CHECK(itest_raw_write(&r, f1, l1) == 0, "write replay");
		break;
	case REORDER:
		/* One write: the broker may hang up after the first frame, before a second write. */
		memcpy(both, f2, l2);
		memcpy(both + l2, f1, l1);
		CHECK(itest_raw_write(&r, both, l1 + l2) == 0, "write");
		break;
	case TRUNCATE:
		/* Half a frame, then a new frame header: the broker reads them as one frame that fails its MAC. */
		memcpy(both, f1, l1 / 2);
		memcpy(both + l1 / 2, f2, l2);
		CHECK(itest_raw_write(&r, both, l1 / 2 + l2) == 0, "write");
		break;
	}
	CHECK(raw_expect_close(&r, 5000, &reason) == 0, "broker kept the session open");
	CHECK(reason == 0, "unexpected bytes after the attack (%d)", reason);
	itest_raw_close(&r);
	return 0;
}

static int case_tampered_frame(void) { return transport_attack(TAMPER); }
static int case_replayed_frame(void) { return transport_attack(REPLAY); }
static int case_reordered_frames(void) { return transport_attack(REORDER); }
static int case_truncated_frame(void) { return transport_attack(TRUNCATE); }

static int
case_valid_mac_invalid_protobuf(void)
{
	struct itest_raw				r;
	static const uint8_t			bad[] = { 0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f };
	const uint8_t				*m;
	uint8_t					msg[64];
	size_t					mlen;
	Wfpbroker__V1__Response			*resp;
	int					ev;

	CHECK(itest_raw_establish(&r, endpoint, server_pub) == 0, "establish");
	CHECK(wfpb_channel_send(&r.ch, bad, sizeof(bad)) == 0 && itest_raw_flush(&r) == 0, "send");
	ev = itest_raw_event(&r, 5000);
	CHECK(ev == WFPB_CHANNEL_MESSAGE, "no response (%d)", ev);
	m = wfpb_channel_message(&r.ch, &mlen);
	resp = wfpbroker__v1__response__unpack(NULL, mlen, m);
	CHECK(resp != NULL && resp->status != NULL, "response did not decode");
	CHECK(resp->status->code == WFPBROKER__V1__STATUS_CODE__BAD_REQUEST, "code %d", resp->status->code);
	printf("  broker said: %s\n", resp->status->message);
	wfpbroker__v1__response__free_unpacked(resp, NULL);
	/* The same session still works. */
	CHECK(make_ping_request(msg, sizeof(msg), &mlen, 3) == 0, "pack");
	CHECK(wfpb_channel_send(&r.ch, msg, mlen) == 0 && itest_raw_flush(&r) == 0, "send");
	CHECK(itest_raw_event(&r, 5000) == WFPB_CHANNEL_MESSAGE, "session died after a bad request");
	m = wfpb_channel_message(&r.ch, &mlen);
	resp = wfpbroker__v1__response__unpack(NULL, mlen, m);
	CHECK(resp != NULL && resp->request_id == 3 && resp->status->code == 0, "ping after bad request");
	wfpbroker__v1__response__free_unpacked(resp, NULL);
	itest_raw_close(&r);
	return 0;
}

static int
case_handshake_deadline(void)
{
	struct itest_raw	r;
	uint8_t		p[WFPB_PREAMBLE_LEN];
	uint64_t	t0, dt;
	int		reason;

	/* A slow-loris: the preamble, then nothing. */
	CHECK(itest_raw_connect(&r, endpoint) == 0, "connect");
	wfpb_preamble_encode(p, WFPB_PROTOCOL_VERSION, WFPB_PATTERN_NK);
	CHECK(itest_raw_write(&r, p, sizeof(p)) == 0, "write");
	t0 = wfpb_monotonic_us();
	CHECK(raw_expect_close(&r, 5000, &reason) == 0, "not dropped");
	dt = (wfpb_monotonic_us() - t0) / 1000;
	itest_raw_close(&r);
	CHECK(reason == WFPB_REJECT_DEADLINE, "reason %d", reason);
	CHECK(dt + 50 >= HANDSHAKE_MS && dt < HANDSHAKE_MS + 2000, "dropped after %llu ms",
	    (unsigned long long)dt);
	return 0;
}

static int
case_session_cap(void)
{
	struct wfpb_client	*c[MAX_SESSIONS];
	struct itest_raw		r;
	char			err[256];
	int			i, n = 0, reason, rc = 0;

	/* The witness holds one session already. */
	for (i = 0; i < MAX_SESSIONS - 1; i++) {
		if (open_client(NULL, &c[n], err, sizeof(err)) != 0) {
			printf("  session %d: %s\n", i, err);
			rc = -1;
			break;
		}
		n++;
	}
	if (rc == 0) {
		if (itest_raw_connect(&r, endpoint) == 0) {
			if (raw_expect_close(&r, 5000, &reason) != 0 || reason != WFPB_REJECT_BUSY) {
				printf("  session past the cap not refused as busy (%d)\n", reason);
				rc = -1;
			}
			itest_raw_close(&r);
		} else {
			rc = -1;
		}
	}
	while (n > 0)
		wfpb_close(c[--n]);
	CHECK(rc == 0, "session cap");
	return 0;
}

/* 1 MiB of random bytes: before the handshake (not our preamble), or after it (frames that fail their MAC). */
static int
random_megabyte(int after_handshake)
{
	struct itest_raw	r;
	uint8_t		*junk = malloc(RANDOM_BYTES);
	int		rc, reason;

	CHECK(junk != NULL, "malloc");
	randombytes_buf(junk, RANDOM_BYTES);
	junk[0] = 0;	/* never "WFPB" by chance */
	if (after_handshake) {
		if (itest_raw_establish(&r, endpoint, server_pub) != 0) {
			free(junk);
			CHECK(0, "establish");
		}
	} else if (itest_raw_connect(&r, endpoint) != 0) {
		free(junk);
		CHECK(0, "connect");
	}
	/* The broker hangs up part way: the write then fails with "closed", which is the point. */
	rc = itest_raw_write(&r, junk, RANDOM_BYTES);
	free(junk);
	CHECK(rc == 0 || rc == WFPB_E_CLOSED, "write failed otherwise (%d)", rc);
	CHECK(raw_expect_close(&r, 5000, &reason) == 0, "the broker kept the connection open");
	itest_raw_close(&r);
	if (after_handshake)
		CHECK(reason == 0, "bytes after the garbage (%d)", reason);
	else
		CHECK(reason == WFPB_REJECT_BAD_MAGIC || reason == 0, "reason %d", reason);
	printf("  %s: write %s, connection closed\n", after_handshake ? "after the handshake" : "before it",
	    rc == 0 ? "completed" : "cut short");
	return 0;
}

static int case_random_megabyte(void) { return random_megabyte(0); }
static int case_random_megabyte_established(void) { return random_megabyte(1); }

/* The flood: connections hammered at a full broker, each of which must be refused as busy. */
static volatile int	flood_stop;
static unsigned long	flood_refused, flood_other;

static void
flood(void)
{
	struct itest_raw	r;
	int		reason;

	while (!flood_stop) {
		if (itest_raw_connect(&r, endpoint) != 0) {
			flood_other++;
			continue;
		}
		if (raw_expect_close(&r, 5000, &reason) == 0 && reason == WFPB_REJECT_BUSY)
			flood_refused++;
		else
			flood_other++;
		itest_raw_close(&r);
	}
}

static int
case_flood_keeps_round_trip(void)
{
	struct wfpb_client	*c[MAX_SESSIONS];
	static uint64_t		rtt[FLOOD_PINGS];
	char			err[256];
	thread_t		t;
	int			i, n = 0, rc = 0;

	/* The witness holds one session; fill the rest, so every flood connection is past the cap. */
	for (i = 0; i < MAX_SESSIONS - 1 && rc == 0; i++) {
		if (open_client(NULL, &c[n], err, sizeof(err)) != 0) {
			printf("  session %d: %s\n", i, err);
			rc = -1;
		} else {
			n++;
		}
	}
	flood_stop = 0;
	flood_refused = flood_other = 0;
	if (rc == 0 && thread_start(&t, flood) != 0)
		rc = -1;
	for (i = 0; rc == 0 && i < FLOOD_PINGS; i++) {
		uint64_t t0;
		int j;

		/*
		 * The sessions that fill the cap must outlive the flood: on a slow run it can last past
		 * idle_timeout_ms, and a slot freed by the idle sweep would let one flood connection in.
		 */
		for (j = 0; i % 200 == 0 && j < n; j++)
			if (wfpb_ping(c[j], (const uint8_t *)"k", 1, NULL) != 0)
				rc = -1;
		t0 = wfpb_monotonic_us();

		if (wfpb_ping(witness, (const uint8_t *)"f", 1, NULL) != 0) {
			printf("  ping %d: %s\n", i, wfpb_errmsg(witness));
			rc = -1;
		}
		rtt[i] = wfpb_monotonic_us() - t0;
	}
	if (n == MAX_SESSIONS - 1) {
		flood_stop = 1;
		thread_join(t);
	}
	while (n > 0)
		wfpb_close(c[--n]);
	CHECK(rc == 0, "the legitimate client failed during the flood");
	qsort(rtt, FLOOD_PINGS, sizeof(rtt[0]), cmp_u64);
	printf("  %d pings during %lu refused connections: p50 %llu us, p99 %llu us (bound %u us)\n", FLOOD_PINGS,
	    flood_refused, (unsigned long long)rtt[FLOOD_PINGS / 2], (unsigned long long)rtt[FLOOD_PINGS * 99 / 100],
	    FLOOD_P99_BOUND_US);
	CHECK(flood_other == 0, "%lu flood connections were not refused as busy", flood_other);
	CHECK(flood_refused >= 100, "only %lu flood connections made", flood_refused);
	CHECK(rtt[FLOOD_PINGS * 99 / 100] < FLOOD_P99_BOUND_US, "p99 above the bound");
	return 0;
}

/*
 * Clients at once, each opening sessions in turn (every fourth one IK) and
 * stashing, fetching back and releasing a blob of its own. On Windows they
 * are served by the completion-port workers side by side; the broker's
 * shared figures must come out exact and no client may see another's blob.
 */
#define PAR_THREADS	4
#define PAR_ROUNDS	25

static volatile long	par_requests, par_failures;
static volatile long	par_next_id;

/* Both compilers (gcc, mingw-w64 gcc) have the __atomic builtins: no per-platform calls. */
static long
par_add(volatile long *v, long n)
{
	return __atomic_add_fetch(v, n, __ATOMIC_SEQ_CST);
}

static void
par_fail(const char *what, struct wfpb_client *c)
{
	printf("  %s: %s\n", what, c ? wfpb_errmsg(c) : "cannot open");
	par_add(&par_failures, 1);
}

static void
parallel_client(void)
{
	struct wfpb_client	*c;
	char			err[256], blob[64];
	uint8_t			handle[WFPB_HANDLE_LEN], *back;
	size_t			len;
	long			me;
	int			round;

	me = par_add(&par_next_id, 1);
	for (round = 0; round < PAR_ROUNDS; round++) {
		int ik = round % 4 == 3, rc, tries = 0;

		/*
		 * A session this client just closed may not be gone from the broker yet (a loaded
		 * machine): its busy notice is the cap working, so the open is asked again.
		 */
		while ((rc = open_client(ik ? enrolled_path : NULL, &c, err, sizeof(err))) == WFPB_E_REJECTED &&
		    strstr(err, "too many sessions") != NULL && ++tries < 40)
			itest_sleep_ms(50);
		if (rc != 0) {
			printf("  client %ld round %d: %s\n", me, round, err);
			par_fail("open", NULL);
			continue;
		}
		if (ik) {
			if (wfpb_ping(c, (const uint8_t *)"p", 1, NULL) != 0)
				par_fail("IK ping", c);
			par_add(&par_requests, 1);
			wfpb_close(c);
			continue;
		}
		len = (size_t)snprintf(blob, sizeof(blob), "client %ld round %d", me, round);
		if (wfpb_stash(c, (const uint8_t *)blob, len, 0, handle) != 0) {
			par_fail("stash", c);
		} else if (wfpb_fetch(c, handle, &back, &len) != 0) {
			par_fail("fetch", c);
		} else {
			if (len != strlen(blob) || memcmp(back, blob, len) != 0)
				par_fail("fetch returned another blob", c);
			wfpb_free(back);
			if (wfpb_release(c, handle) != 0)
				par_fail("release", c);
		}
		if (wfpb_ping(c, (const uint8_t *)"p", 1, NULL) != 0)
			par_fail("ping", c);
		par_add(&par_requests, 4);
		wfpb_close(c);
	}
}

static int
case_parallel_clients(void)
{
	struct wfpb_status_info	before = WFPB_STATUS_INFO_INIT, after = WFPB_STATUS_INFO_INIT;
	struct itest_usage	base;
	thread_t		t[PAR_THREADS];
	long			expected;
	int			i, n = 0;

	par_requests = par_failures = par_next_id = 0;
	/* The previous case's sessions may still be closing (a loaded machine): they would count against the cap. */
	CHECK(itest_baseline(witness, &base) == 0, "baseline");
	CHECK(wfpb_server_status(witness, &before) == 0, "status: %s", wfpb_errmsg(witness));
	for (i = 0; i < PAR_THREADS; i++)
		if (thread_start(&t[n], parallel_client) == 0)
			n++;
	while (n > 0)
		thread_join(t[--n]);
	CHECK(wfpb_server_status(witness, &after) == 0, "status: %s", wfpb_errmsg(witness));
	printf("  %d clients, %ld requests; the broker serves with %u workers\n", PAR_THREADS, par_requests,
	    after.workers);
	CHECK(par_failures == 0, "%ld failures", par_failures);
	for (i = 0, expected = 0; i < PAR_ROUNDS; i++)
		expected += i % 4 == 3 ? 1 : 4;
	expected *= PAR_THREADS;
	CHECK(par_requests == expected, "%ld requests made, %ld planned", par_requests, expected);
	/* Status counts itself: the second one is in its own figure. */
	CHECK(after.requests - before.requests == (uint64_t)par_requests + 1,
	    "the broker counted %llu requests, the clients made %ld",
	    (unsigned long long)(after.requests - before.requests - 1), par_requests);
	CHECK(after.workers >= 1, "Status reports no workers");
	return 0;
}

/* A client that stashed records, then vanished half way through sending a request. */
static int
case_client_vanishes_mid_request(void)
{
	struct itest_raw				r;
	struct wfpb_status_info			st = WFPB_STATUS_INFO_INIT;
	uint8_t					msg[128];
	const uint8_t				*p, *m;
	size_t					mlen, len;
	Wfpbroker__V1__Response			*resp;
	int					i;

	CHECK(itest_raw_establish(&r, endpoint, server_pub) == 0, "establish");
	for (i = 1; i <= 3; i++) {
		CHECK(make_stash_request(msg, sizeof(msg), &mlen, (uint64_t)i) == 0, "pack");
		CHECK(wfpb_channel_send(&r.ch, msg, mlen) == 0 && itest_raw_flush(&r) == 0, "send");
		CHECK(itest_raw_event(&r, 5000) == WFPB_CHANNEL_MESSAGE, "no answer");
		m = wfpb_channel_message(&r.ch, &mlen);
		resp = wfpbroker__v1__response__unpack(NULL, mlen, m);
		CHECK(resp != NULL && resp->status != NULL && resp->status->code == 0, "stash refused");
		wfpbroker__v1__response__free_unpacked(resp, NULL);
	}
	CHECK(wfpb_server_status(witness, &st) == 0, "status: %s", wfpb_errmsg(witness));
	CHECK(st.stash_entries >= 3, "the stash holds %u entries", st.stash_entries);
	/* Half of the next request's frame, then gone. */
	CHECK(make_ping_request(msg, sizeof(msg), &mlen, 4) == 0, "pack");
	CHECK(wfpb_channel_send(&r.ch, msg, mlen) == 0, "send");
	p = wfpb_channel_output(&r.ch, &len);
	CHECK(itest_raw_write(&r, p, len / 2) == 0, "write");
	wfpb_channel_output_done(&r.ch, len);
	itest_raw_close(&r);
	/* The resource check after every case proves the entries, the session and its handle went. */
	return 0;
}

static int
case_idle_timeout(void)
{
	struct itest_raw	r;
	uint64_t	t0, dt;
	int		reason;

	CHECK(itest_raw_establish(&r, endpoint, server_pub) == 0, "establish");
	t0 = wfpb_monotonic_us();
	CHECK(raw_expect_close(&r, IDLE_MS + 3000, &reason) == 0, "idle session not reaped");
	dt = (wfpb_monotonic_us() - t0) / 1000;
	itest_raw_close(&r);
	CHECK(dt + 50 >= IDLE_MS, "reaped after only %llu ms", (unsigned long long)dt);
	return 0;
}

/*
 * A client that writes Fetch after Fetch of a 16 KiB blob and never reads:
 * the broker stops reading it once its answers pass the output budget, its
 * memory stays bounded, and it closes the session once the client has left
 * them unread past output_stall_ms (broker_e2e.sh: 1000 ms) — on the Unix
 * socket and on the named pipe alike.
 */
#define FLOOD_RSS_BOUND	(24u * 1024u * 1024u)
#define OUTPUT_STALL_MS	1000u

static int
case_reader_that_never_reads(void)
{
	struct itest_usage	base, u;
	struct itest_raw	r;
	uint64_t		peak = 0, t0;
	long			sent;
	int			gone = 0;

	/* The previous case's sessions may still be closing on another worker: wait for them to go. */
	CHECK(itest_baseline(witness, &base) == 0, "baseline");
	CHECK(itest_raw_establish(&r, endpoint, server_pub) == 0, "establish");
	/* Write until the broker stops taking requests (a write that cannot finish in 1.5 s). */
	CHECK((sent = itest_raw_fetch_flood(&r, 20000, 1500)) >= 0, "the 16 KiB stash was refused");
	printf("  wrote %ld Fetch requests before the broker stopped reading\n", sent);
	/* Hold the connection without reading: the broker must end the session by itself. */
	for (t0 = wfpb_monotonic_us(); wfpb_monotonic_us() - t0 < (OUTPUT_STALL_MS + 4000u) * 1000u;) {
		CHECK(itest_usage_now(witness, &u) == 0, "status");
		if (u.rss > peak)
			peak = u.rss;
		if (u.sessions == base.sessions) {
			gone = 1;
			break;
		}
		itest_sleep_ms(100);
	}
	itest_raw_close(&r);
	printf("  broker RSS %llu KiB at the start, %llu KiB at most under the flood\n",
	    (unsigned long long)(base.rss >> 10), (unsigned long long)(peak >> 10));
	CHECK(sent < 20000, "the broker read all 20 000 requests of a client that reads nothing");
	CHECK(peak <= base.rss + FLOOD_RSS_BOUND, "RSS grew %llu KiB, the bound is %u KiB",
	    (unsigned long long)((peak - base.rss) >> 10), FLOOD_RSS_BOUND >> 10);
	CHECK(gone, "the session of a client that never reads was still open %u ms after the stall deadline "
	    "(sessions %u, baseline %u)", 4000u, u.sessions, base.sessions);
	return 0;
}

struct tcase {
	const char	*name;
	int		(*fn)(void);
};

/* CHECK, but through the function's out: label, which releases what it holds. */
#define OUT_CHECK(cond, ...) do {						\
	if (!(cond)) {								\
		printf("  check failed at line %d: %s: ", __LINE__, #cond);	\
		printf(__VA_ARGS__);						\
		printf("\n");							\
		goto out;							\
	}									\
} while (0)

/* Waits for the client's handle to be ready, as a caller's own loop would. */
static int
wait_ready(struct wfpb_client *c, int ms)
{
#ifdef _WIN32
	return WaitForSingleObject((HANDLE)wfpb_wait_handle(c), (DWORD)ms) == WAIT_OBJECT_0 ? 0 : -1;
#else
	struct pollfd pfd = { .fd = (int)wfpb_wait_handle(c), .events = POLLIN };

	return poll(&pfd, 1, ms) == 1 ? 0 : -1;
#endif
}

/*
 * The asynchronous interface: 32 Fetches in flight on one session, collected
 * through the wait handle, each with its own result and user pointer; a
 * blocking call among them leaves the others' completions queued.
 */
#define ASYNC_N 32
static int
case_async_fetches_in_flight(void)
{
	struct wfpb_client	*c;
	struct wfpb_completion	done[8];
	uint8_t			handle[WFPB_HANDLE_LEN], *blob[ASYNC_N] = { 0 };
	size_t			len[ASYNC_N], got = 0;
	uint64_t		ids[ASYNC_N];
	char			err[256], seen[ASYNC_N] = { 0 };
	int			i, n, rc = -1, spins;

	for (i = 0; i < 8; i++)
		done[i] = (struct wfpb_completion)WFPB_COMPLETION_INIT;
	if (open_client(NULL, &c, err, sizeof(err)) != 0) {
		printf("  open: %s\n", err);
		return -1;
	}
	OUT_CHECK(wfpb_stash(c, (const uint8_t *)"in-flight", 9, 0, handle) == 0, "stash: %s", wfpb_errmsg(c));
	for (i = 0; i < ASYNC_N; i++)
		OUT_CHECK(wfpb_submit_fetch(c, handle, &blob[i], &len[i], &seen[i], &ids[i]) == 0, "submit %d: %s", i,
		    wfpb_errmsg(c));
	OUT_CHECK(wfpb_in_flight(c) == ASYNC_N, "%u in flight, want %d", wfpb_in_flight(c), ASYNC_N);
	/* A blocking call now reads past answers that are not its own: they wait in the queue. */
	OUT_CHECK(wfpb_ping(c, (const uint8_t *)"x", 1, NULL) == 0, "ping among fetches: %s", wfpb_errmsg(c));
	for (spins = 0; got < ASYNC_N && spins < 1000; spins++) {
		if (wfpb_completions_queued(c) == 0 && wait_ready(c, 5000) != 0)
			break;
		OUT_CHECK((n = wfpb_complete(c, done, 8, 0)) >= 0, "complete: %s", wfpb_errmsg(c));
		for (i = 0; i < n; i++) {
			char *mark = done[i].user;

			OUT_CHECK(done[i].rc == 0, "fetch %llu: %s", (unsigned long long)done[i].request_id, done[i].message);
			OUT_CHECK(mark >= seen && mark < seen + ASYNC_N && !*mark, "a completion with a wrong user pointer");
			OUT_CHECK(ids[mark - seen] == done[i].request_id, "user pointer and request id disagree");
			OUT_CHECK(len[mark - seen] == 9 && memcmp(blob[mark - seen], "in-flight", 9) == 0, "fetch %d: wrong blob",
			    (int)(mark - seen));
			*mark = 1;
			got++;
		}
	}
	OUT_CHECK(got == ASYNC_N, "%zu of %d fetches completed", got, ASYNC_N);
	OUT_CHECK(wfpb_in_flight(c) == 0 && wfpb_completions_queued(c) == 0, "requests left over");
	OUT_CHECK(wfpb_complete(c, done, 8, 0) == 0, "a completion from nowhere");
	rc = 0;
out:
	for (i = 0; i < ASYNC_N; i++)
		wfpb_free(blob[i]);
	wfpb_close(c);
	return rc;
}

/* A client that leaves with many requests in flight: its session and everything it held go (the baseline check). */
static int
case_async_client_leaves_in_flight(void)
{
	struct wfpb_client	*c;
	uint8_t			handle[WFPB_HANDLE_LEN], *blob[ASYNC_N] = { 0 };
	size_t			len[ASYNC_N];
	char			err[256];
	int			i, rc = -1;

	if (open_client(NULL, &c, err, sizeof(err)) != 0) {
		printf("  open: %s\n", err);
		return -1;
	}
	OUT_CHECK(wfpb_stash(c, (const uint8_t *)"gone", 4, 0, handle) == 0, "stash: %s", wfpb_errmsg(c));
	for (i = 0; i < ASYNC_N; i++)
		OUT_CHECK(wfpb_submit_fetch(c, handle, &blob[i], &len[i], NULL, NULL) == 0, "submit: %s", wfpb_errmsg(c));
	rc = 0;
out:
	wfpb_close(c);	/* nothing read: the broker's answers go nowhere */
	for (i = 0; i < ASYNC_N; i++)
		wfpb_free(blob[i]);
	return rc;
}

static const struct tcase cases[] = {
	{ "nk_ping", case_nk_ping },
	{ "ik_ping_enrolled", case_ik_ping },
	{ "ik_unenrolled_key_refused", case_ik_unenrolled },
	{ "wrong_pinned_key_fails_closed", case_wrong_pinned_key },
	{ "garbage_bytes_rejected", case_garbage_bytes },
	{ "unknown_version_rejected", case_bad_version },
	{ "unknown_pattern_rejected", case_bad_pattern },
	{ "oversize_handshake_frame_rejected", case_oversize_frame },
	{ "tampered_frame_drops_session", case_tampered_frame },
	{ "replayed_frame_drops_session", case_replayed_frame },
	{ "reordered_frames_drop_session", case_reordered_frames },
	{ "truncated_frame_drops_session", case_truncated_frame },
	{ "valid_mac_invalid_protobuf_bad_request", case_valid_mac_invalid_protobuf },
	{ "handshake_deadline_drops_slow_client", case_handshake_deadline },
	{ "session_cap_refuses_busy", case_session_cap },
	{ "random_megabyte_before_handshake_dropped", case_random_megabyte },
	{ "random_megabyte_after_handshake_dropped", case_random_megabyte_established },
	{ "flood_past_cap_refused_while_client_keeps_p99", case_flood_keeps_round_trip },
	{ "client_vanishes_mid_request_releases_everything", case_client_vanishes_mid_request },
	{ "parallel_clients_counted_exactly", case_parallel_clients },
	{ "client_that_never_reads_is_bounded_and_cut_off", case_reader_that_never_reads },
	{ "async_fetches_in_flight_complete_each_once", case_async_fetches_in_flight },
	{ "async_client_leaving_with_requests_in_flight_releases_everything", case_async_client_leaves_in_flight },
};

int
main(int argc, char **argv)
{
	struct itest_usage base = { 0 };
	char		err[256];
	size_t		i;
	int		rc;

	if (argc != 5) {
		fprintf(stderr, "usage: broker-test ENDPOINT SERVER_PUB ENROLLED_KEY UNENROLLED_KEY\n");
		return 2;
	}
	endpoint = argv[1];
	server_pub_path = argv[2];
	enrolled_path = argv[3];
	unenrolled_path = argv[4];
	setvbuf(stdout, NULL, _IONBF, 0);
	if (sodium_init() < 0 || wfpb_keyfile_load_public(server_pub_path, server_pub) != 0) {
		fprintf(stderr, "broker-test: cannot read %s\n", server_pub_path);
		return 2;
	}
	/* A session that lives through every case and must keep working. */
	if ((rc = open_client(NULL, &witness, err, sizeof(err))) != 0) {
		fprintf(stderr, "broker-test: broker not reachable: %s\n", err);
		return 1;
	}
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		rc = cases[i].fn();
		/* The baseline is taken after the first case, once the broker's lazy set-up is done. */
		if (rc == 0 && i == 0)
			rc = itest_baseline(witness, &base);
		if (rc == 0 && i > 0)
			rc = itest_back_to_baseline(witness, &base);
		if (rc == 0 && wfpb_ping(witness, (const uint8_t *)"w", 1, NULL) != 0) {
			printf("  the witness session failed after this case: %s\n", wfpb_errmsg(witness));
			rc = -1;
		}
		if (rc == 0 && ping_once(NULL) != 0) {
			printf("  a new session failed after this case\n");
			rc = -1;
		}
		printf("%s %s\n", rc == 0 ? "ok  " : "FAIL", cases[i].name);
		rc == 0 ? passed++ : failed++;
	}
	wfpb_close(witness);
	/* Last, as it outlives the idle timeout. */
	rc = case_idle_timeout();
	if (rc == 0 && ping_once(NULL) != 0)
		rc = -1;
	printf("%s %s\n", rc == 0 ? "ok  " : "FAIL", "idle_session_reaped");
	rc == 0 ? passed++ : failed++;
	printf("%d passed, %d failed\n", passed, failed);
	return failed == 0 ? 0 : 1;
}
