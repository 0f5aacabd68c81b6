/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shared pieces of the integration test programs (broker-test, handover-test,
 * win-handover-test): the CHECK macro, opening a session that reports why it
 * could not, and the check that the broker is back to its resource baseline.
 */
#ifndef WFPB_ITEST_H
#define WFPB_ITEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _WIN32
#include <windows.h>
#else
#include <unistd.h>
#endif

#include "wfpb.h"

/*
 * After a case the broker's resident memory may exceed the baseline by this
 * much (allocator caches): 4 MiB, or WFPB_RSS_SLACK_KIB where the broker runs
 * under a tool whose own memory grows with the work (valgrind, ASan's quarantine).
 */
static inline uint64_t
itest_rss_slack(void)
{
	const char *v = getenv("WFPB_RSS_SLACK_KIB");

	return (v != NULL && atoi(v) > 0 ? (uint64_t)atoi(v) : 4096u) * 1024u;
}

/* In a case function returning int: print the failed condition and a message, return -1. */
#define CHECK(cond, ...) do {							\
	if (!(cond)) {								\
		printf("  check failed at line %d: %s: ", __LINE__, #cond);	\
		printf(__VA_ARGS__);						\
		printf("\n");							\
		return -1;							\
	}									\
} while (0)

/* Opens a session (client_key NULL: NK); on failure prints why and returns NULL. */
static inline struct wfpb_client *
itest_open(const char *endpoint, const char *server_pub, const char *client_key)
{
	struct wfpb_open_opts	o = WFPB_OPEN_OPTS_INIT;
	struct wfpb_client	*c;
	char			err[256];

	o.endpoint = endpoint;
	o.server_key_path = server_pub;
	o.client_key_path = client_key;
	o.timeout_ms = 5000;
	if (wfpb_open(&o, &c, err, sizeof(err)) != 0) {
		printf("  open: %s\n", err);
		return NULL;
	}
	return c;
}

/* 127.0.0.1:port. */
static inline struct wfpb_addr
itest_loopback(uint16_t port)
{
	struct wfpb_addr a = { .family = WFPB_AF_INET, .addr = { 127, 0, 0, 1 }, .port = port };

	return a;
}

static inline void
itest_sleep_ms(unsigned ms)
{
#ifdef _WIN32
	Sleep(ms);
#else
	usleep(ms * 1000u);
#endif
}

/* The broker's own figures, read through an admin session. */
struct itest_usage {
	uint32_t	sessions, stash, listeners, handles, inflight;
	uint64_t	rss;
};

static inline int
itest_usage_now(struct wfpb_client *admin, struct itest_usage *u)
{
	struct wfpb_status_info st = WFPB_STATUS_INFO_INIT;

	if (wfpb_server_status(admin, &st) != 0) {
		printf("  status: %s\n", wfpb_errmsg(admin));
		return -1;
	}
	u->sessions = st.sessions;
	u->stash = st.stash_entries;
	u->listeners = st.listeners;
	u->handles = st.open_handles;
	u->inflight = st.requests_in_flight;
	u->rss = st.rss_bytes;
	return 0;
}

/*
 * Takes the baseline once the admin session is the broker's only one: a
 * client that ran just before may still be closing on another worker.
 * Fails when that takes over 3 s, or when the broker does not report
 * descriptors and memory.
 */
static inline int
itest_baseline(struct wfpb_client *admin, struct itest_usage *base)
{
	int i;

	for (i = 0; i < 30; i++) {
		if (itest_usage_now(admin, base) != 0)
			return -1;
		if (base->sessions == 1)
			break;
		itest_sleep_ms(100);
	}
	if (base->sessions != 1) {
		printf("  %u sessions besides this one do not go away\n", base->sessions - 1);
		return -1;
	}
	if (base->handles == 0 || base->rss == 0) {
		printf("  the broker does not report its descriptors and memory\n");
		return -1;
	}
	printf("  baseline: %u sessions, %u open handles, %llu KiB resident\n", base->sessions, base->handles,
	    (unsigned long long)(base->rss >> 10));
	return 0;
}

/*
 * After a case: within 3 s the broker is back to the baseline's sessions, stash
 * entries, listeners and open descriptors/handles, and its resident memory is
 * within itest_rss_slack() of the baseline.
 */
static inline int
itest_back_to_baseline(struct wfpb_client *admin, const struct itest_usage *base)
{
	struct itest_usage	u = { 0 };
	int			i;

	for (i = 0; i < 30; i++) {
		if (itest_usage_now(admin, &u) != 0)
			return -1;
		if (u.sessions == base->sessions && u.stash == base->stash && u.listeners == base->listeners &&
		    u.handles == base->handles && u.inflight == base->inflight && u.rss <= base->rss + itest_rss_slack())
			return 0;
		itest_sleep_ms(100);
	}
	printf("  not back to the baseline: sessions %u (%u), stash %u (%u), listeners %u (%u), "
	    "handles %u (%u), requests in flight %u (%u), rss %llu KiB (%llu KiB + %u KiB)\n", u.sessions,
	    base->sessions, u.stash, base->stash, u.listeners, base->listeners, u.handles, base->handles, u.inflight,
	    base->inflight, (unsigned long long)(u.rss >> 10),
	    (unsigned long long)(base->rss >> 10), (unsigned)(itest_rss_slack() >> 10));
	return -1;
}

/*
 * Submits Pings of 1 KiB, reading no answer, until libwfpb keeps bytes its transport did not
 * take (the broker, its output budget full, stopped reading): 0 with how many and the slowest
 * submit (µs), or -1 when one failed or 100 000 never filled it.
 */
static inline int
itest_fill_with_pings(struct wfpb_client *c, unsigned *submitted, uint64_t *slowest)
{
	static uint8_t	payload[1024];
	uint64_t	t0, id;

	memset(payload, 'p', sizeof(payload));
	*submitted = 0;
	*slowest = 0;
	while (!wfpb_wants_write(c) && *submitted < 100000) {
		t0 = wfpb_monotonic_us();
		CHECK(wfpb_submit_ping(c, payload, sizeof(payload), NULL, NULL, &id) == 0, "submit %u: %s", *submitted,
		    wfpb_errmsg(c));
		if (wfpb_monotonic_us() - t0 > *slowest)
			*slowest = wfpb_monotonic_us() - t0;
		(*submitted)++;
	}
	CHECK(wfpb_wants_write(c), "%u submits and the transport never filled", *submitted);
	return 0;
}

/* Collects n Pings' completions, wait(c) before each wfpb_complete, within 30 s: 0, or -1. */
static inline int
itest_collect_pings(struct wfpb_client *c, unsigned n, void (*wait)(struct wfpb_client *))
{
	struct wfpb_completion	done[64];
	uint64_t		t0 = wfpb_monotonic_us();
	unsigned		completed = 0, i;
	int			got;

	while (completed < n && wfpb_monotonic_us() - t0 < 30000000) {
		wait(c);
		for (i = 0; i < 64; i++)
			done[i] = (struct wfpb_completion)WFPB_COMPLETION_INIT;
		CHECK((got = wfpb_complete(c, done, 64, 0)) >= 0, "complete: %s", wfpb_errmsg(c));
		for (i = 0; i < (unsigned)got; i++)
			CHECK(done[i].rc == 0 && done[i].op == WFPB_OP_PING, "ping %llu: %s",
			    (unsigned long long)done[i].request_id, done[i].message);
		completed += (unsigned)got;
	}
	CHECK(completed == n && !wfpb_wants_write(c), "%u of %u completed", completed, n);
	return 0;
}

#endif
