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
	uint64_t		tokens_milli;	/* audit rate limit: a token bucket, in thousandths */
	uint64_t		refill_ms;
	struct wfpb_user_slot	*next;
};

/* Default audited requests per second for an identity a principal matches (principal key audit_rate). */
#define WFPB_AUDIT_RATE_DEFAULT	20000u

/* What the periodic summary record counts instead of writing a record each. */
struct wfpb_summary {
	uint64_t	sessions;	/* sessions no principal matched */
	uint64_t	pings;		/* their Pings and other requests without effect */
	uint64_t	limited;	/* requests refused QUOTA by the audit rate limit */
	uint64_t	since_ms;	/* the previous summary */
	uint64_t	last_tick_ms;	/* the clock at the last tick (the stop has none of its own) */
};

#define WFPB_USER_BUCKETS	256u

/*
 * Events a client causes with a request (a denial, a backend's refusal) logged
 * to syslog or the Event Log: a burst, then this many a second, for the whole
 * broker; the rest are counted.
 */
#define WFPB_DENIAL_LOG_BURST	50u
#define WFPB_DENIAL_LOG_RATE	5u

struct wfpb_denial_log {
	uint64_t	tokens_milli;
	uint64_t	refill_ms;	/* 0: full */
	uint64_t	unlogged[2];	/* denials, backend refusals: since the last line that said so */
	uint64_t	unlogged_since_ms;
};

struct wfpb_admit {
	struct wfpb_user_slot	*buckets[WFPB_USER_BUCKETS];
	uint64_t		rejected_user;	/* sessions refused by the per-user cap */
	struct wfpb_summary	summary;
	struct wfpb_denial_log	denial_log;
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
int wfpb__admit_listener_take(struct wfpb_broker *b, const char *principal, char *owner);
void wfpb__admit_listener_drop(struct wfpb_broker *b, const char *owner);

/*
 * Audit budget. A session no principal matches is not worth a record per
 * request: its Pings (and anything else without an effect) and the session
 * itself only count into the summary; wfpb_admit_summarised says so. Every
 * other audited request takes a token from its identity's bucket
 * (audit_rate_unmatched, or the principal's audit_rate, per second, a
 * second's worth of burst); wfpb_admit_audit_token answers 0 when there is
 * none left, and the request is then refused QUOTA and only counted.
 */
int wfpb_admit_summarised(const struct wfpb_session *s, int effectful);
int wfpb_admit_audit_token(struct wfpb_session *s, uint64_t now_ms);

/*
 * Log budget for events a request causes (WFPB_EVENT_DENIAL, WFPB_EVENT_BACKEND):
 * a client that is refused as fast as it can ask must not turn each refusal
 * into a line in the system's logs. 1 when this one may be logged, else 0 and
 * it is counted; wfpb__admit_denials_flush (the broker's tick) logs how many
 * of each kind were not, once, when any were.
 */
int wfpb__admit_event_logged(struct wfpb_broker *b, int event, uint64_t now_ms);
void wfpb__admit_denials_flush(struct wfpb_broker *b, uint64_t now_ms);

/*
 * Writes the summary record when audit_summary_ms has passed (or force) and
 * anything was counted; called from the broker's tick and at stop.
 */
void wfpb__admit_summary_flush(struct wfpb_broker *b, uint64_t now_ms, int force);

/*
 * The busy notice a server sends a connection it refuses (the session cap,
 * an identity's cap, no descriptor left) before it closes it: the bytes
 * into out; returns their length, 0 if cap is too small.
 */
size_t wfpb_admit_busy_notice(const struct wfpb_broker *b, uint8_t *out, size_t cap);

/* Frees the identity table (broker teardown). */
void wfpb__admit_fini(struct wfpb_broker *b);

#endif
