/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Admission and budgets: who may hold a session at all, how much output the
 * broker queues for one client, and how long a session no principal claims
 * may live. These are policy, decided here once; both platform servers only
 * ask (a local user must not be able to freeze or exhaust the broker through
 * either of them). Every function runs with the core lock held.
 */
#ifndef WFPB_ADMIT_H
#define WFPB_ADMIT_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

struct wfpb_broker;
struct wfpb_identity;
struct wfpb_session;

/* Sessions held by one OS identity (uid or user SID), whatever principal it matches. */
struct wfpb_user_slot {
	char			user[WFPB_SID_MAX];
	uint32_t		sessions;
	struct wfpb_user_slot	*next;
};

#define WFPB_USER_BUCKETS	256u

struct wfpb_admit {
	struct wfpb_user_slot	*buckets[WFPB_USER_BUCKETS];
	uint64_t		rejected_user;	/* sessions refused by the per-user cap */
};

/*
 * May a new connection from id (NULL: not yet known, as on a named pipe
 * before the client wrote) become a session? 0, or WFPB_E_LIMIT when the
 * broker's max_sessions or this identity's max_sessions_per_user is
 * reached. A refusal is counted; the server sends the busy notice and closes.
 */
int WFPB_MUST_CHECK wfpb_admit_session(struct wfpb_broker *b, const struct wfpb_identity *id);

/*
 * Counts a session against its identity (a known identity only): 0, or
 * WFPB_E_LIMIT past max_sessions_per_user, or WFPB_E_NOMEM. *slot is set on
 * success and given back with wfpb__admit_user_drop.
 */
int wfpb__admit_user_take(struct wfpb_broker *b, const struct wfpb_identity *id, struct wfpb_user_slot **slot);
void wfpb__admit_user_drop(struct wfpb_broker *b, struct wfpb_user_slot **slot);

/* Sessions id holds now (for tests and Status). */
uint32_t wfpb_admit_user_sessions(const struct wfpb_broker *b, const char *user);

/*
 * Output budget: 1 when the session has more output queued than
 * output_max, so the server must stop feeding it requests (backpressure).
 */
int wfpb_admit_output_over(const struct wfpb_session *s);

/*
 * The idle timeout that applies to an established session: the service's,
 * or the shorter unmatched_timeout_ms when no principal matched it.
 */
uint32_t wfpb_admit_idle_ms(const struct wfpb_session *s);

/*
 * Descriptor budget: a listener counts against its principal's
 * max_listeners_per_principal (sessions and their pending sockets are bounded
 * by the session caps). _take copies the principal's name into owner
 * (WFPB_NAME_MAX bytes) for the matching _drop; 0 or WFPB_E_LIMIT.
 */
int wfpb__admit_listener_take(struct wfpb_session *s, char *owner);
void wfpb__admit_listener_drop(struct wfpb_broker *b, const char *owner);

/* Frees the identity table (broker teardown). */
void wfpb__admit_fini(struct wfpb_broker *b);

#endif
