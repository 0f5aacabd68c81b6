/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One client session: the secure channel, request dispatch, and everything
 * the session owns (listeners, its pending requests, sockets waiting to be
 * handed over, stash entries), without any I/O of its own. The platform
 * server feeds it bytes and received descriptors, writes what it produces
 * (passing a descriptor along where it says so), watches the sockets its
 * pending requests wait on (wfpb_session_watches), and closes the connection
 * when it says so or when its deadline passes. Everything a client sends is
 * untrusted.
 */
#ifndef WFPB_SESSION_H
#define WFPB_SESSION_H

#ifdef WFPB_HANDLERS_ONLY
#error "an operation's handler works on its request's scope (scope.h), not on the session"
#endif

#include <stddef.h>
#include <stdint.h>

#include "broker.h"
#include "channel.h"
#include "net.h"
#include "scope.h"

#define WFPB_SESSION_OUT_FDS_MAX 8u	/* sockets queued for hand-over beyond max_inflight, not yet written */
#define WFPB_HELD_MAX		(2u * 65537u)	/* input held while an operation is pending */

/*
 * A socket the session's pending requests wait on, once however many wait on
 * it (several Accepts on one listener). The server registers it with its
 * event loop and keeps its registration in `server`; an entry whose refs fell
 * to 0 stays until the server has unregistered it (wfpb_session_watches_synced).
 */
struct wfpb_watch {
	wfpb_sock	sock;
	int		want_write;
	unsigned	refs;		/* pending requests waiting on it; 0: the server is to forget it */
	void		*server;	/* the server's registration, NULL until it made one */
};

/* From this position in the output stream on, nothing leaves before audit record seq is durable. */
struct wfpb_gate {
	uint64_t	offset;
	uint64_t	seq;
};

struct wfpb_attach {
	uint64_t	offset;		/* position in the output stream of the frame that carries it */
	wfpb_sock	sock;
};

/*
 * An answer not yet encrypted (Windows): it hands a socket over, or follows one
 * that does. The socket is duplicated into the client only when the answer goes
 * into the channel, after its audit record is durable.
 */
struct wfpb_late {
	uint8_t		*msg;		/* the packed Response */
	size_t		len;
	size_t		mark_at[WFPB_ATTACH_MAX];	/* where each socket's WSAPROTOCOL_INFOW goes */
	wfpb_sock	sock[WFPB_ATTACH_MAX];
	unsigned	n;		/* its sockets; 0: it only keeps its place in line */
	uint64_t	request_id;	/* of the answer, for the record of a hand-over that failed */
	uint64_t	seq;		/* the audit record it waits for; 0: none */
};

enum { WFPB_WAIT_NONE, WFPB_WAIT_AUDIT, WFPB_WAIT_READY };

struct wfpb_session {
	struct wfpb_broker	*broker;
	uint64_t		session_id;
	void			*user;		/* the platform's connection, for wfpb_broker_next_ready */
	struct wfpb_channel	ch;
	struct wfpb_identity	id;
	uint64_t		opened_ms;
	uint64_t		last_ms;	/* last complete message */
	int			closing;	/* flush the output, then close */
	int			ending;		/* wfpb_session_free runs: nothing more is answered or queued */
	int			started;	/* its SESSION_START was recorded (or counted): its END is owed */
	const char		*end_reason;	/* why it ended, for SESSION_END; the first cause set wins */
	/* The policy's verdict on this session, refreshed after every reload. */
	int			resolved;
	uint64_t		policy_gen;
	uint64_t		checked_gen;	/* the policy its waiting requests and listeners were checked against */
	char			principal[WFPB_NAME_MAX];	/* "" when no principal matched */
	const struct wfpb_principal *policy;	/* into broker->cfg; valid while policy_gen matches */
	unsigned		perms;
	uint32_t		max_stash;
	int			counted;	/* counted in its principal's session usage */
	int			over_limit;	/* principal's max_sessions reached: QUOTA for everything */
	struct wfpb_stash_entry	*stash_list;	/* session-lifetime stash entries */
	struct wfpb_socks	socks;		/* listeners; descriptors received with the current request */
	unsigned		version;	/* protocol version, from the preamble */
	uint32_t		max_inflight;	/* version 2: pending requests it may hold; version 1: 1 */
	struct wfpb_pending	*pending;	/* oldest first */
	struct wfpb_pending	**pending_tail;
	unsigned		n_pending;
	struct wfpb_watch	*watches;
	unsigned		n_watches, cap_watches;
	int			watches_changed;	/* since the server last synced */
	uint8_t			*held;		/* version 1: input received while a request is pending */
	size_t			held_len;
	struct wfpb_attach	*out_fds;	/* oldest first; at most WFPB_ATTACH_MAX * max_inflight + WFPB_SESSION_OUT_FDS_MAX */
	unsigned		n_out, cap_out;
	uint64_t		out_sent;	/* bytes of output written so far */
	struct wfpb_late	*late;		/* oldest first; none on POSIX */
	unsigned		n_late, cap_late;
	/*
	 * An effectful answer leaves only once its own audit record is durable;
	 * the answers before it need not wait. audit_wait is the oldest gate's seq.
	 */
	struct wfpb_gate	*gates;		/* oldest first: offsets and seqs only grow */
	unsigned		n_gates, cap_gates;
	uint64_t		gate_at;	/* where the answer last queued starts, or the end for one to come */
	uint64_t		audit_wait;
	int			audit_failed;	/* that record could not be made durable: never send */
	int			wait_state;
	int			wait_failed;	/* a commit it waited for failed (core lock) */
	struct wfpb_session	*wait_prev, *wait_next;
	struct wfpb_user_slot	*user_slot;	/* counted against its OS identity (admit.h) */
	uint64_t		over_since_ms;	/* output over output_max since then; 0 when not */
	uint32_t		output_max;	/* the policy's output budget, read under the core lock */
};

/*
 * Parks the session's output from gate_at on until audit record seq is durable
 * (group commit); what was queued before it may leave meanwhile.
 */
void wfpb__session_wait_audit(struct wfpb_session *s, uint64_t seq);

/* Marks the end of the output queued so far as where the next gate starts (a record before its answer). */
void wfpb__session_gate_here(struct wfpb_session *s);

/* Moves the session from the audit wait list to the broker's ready list (its commit is done). */
void wfpb__session_wait_ready(struct wfpb_session *s);

/*
 * After wfpb_broker_next_ready gave the session back, its connection's thread
 * calls this before writing: if the commit it waited for failed, the session
 * is closing and its answer is never sent. An ApplyRecords that waited for
 * its record to be durable acts now and queues its answer.
 */
void wfpb_session_released(struct wfpb_session *s, uint64_t now_ms);

/* Opens a session for a connection; NULL on allocation failure. */
struct wfpb_session *wfpb_session_new(struct wfpb_broker *b, const struct wfpb_identity *id, uint64_t now_ms);

/*
 * Sets the identity once the platform could read it (a named pipe's client
 * token is readable only after the client wrote). Until then it is unknown
 * and every permission-bearing request is denied. Returns 0, or
 * WFPB_E_LIMIT when that identity already holds max_sessions_per_user: the
 * session then queues a busy notice and is closing.
 */
int wfpb_session_set_identity(struct wfpb_session *s, const struct wfpb_identity *id);

/*
 * Backpressure: 0 while the session holds more output than output_max (or
 * is closing), and the server must not read from its client; else 1.
 */
int wfpb_session_wants_input(const struct wfpb_session *s);

/*
 * After output was written: a session that stopped taking requests because
 * its output was over the budget takes the ones it held once the output is
 * back under half of it. Returns 1 when it produced output (write again), 0
 * when there was nothing to do, or a negative WFPB_E_* (close).
 */
int WFPB_MUST_CHECK wfpb_session_unthrottle(struct wfpb_session *s, uint64_t now_ms);

/*
 * Hands the session descriptors that arrived with the bytes about to be fed
 * (POSIX SCM_RIGHTS). Takes ownership. Before the handshake is complete, or
 * beyond WFPB_SESSION_FDS_MAX, they are discarded at once; otherwise they
 * belong to the next request and are discarded after it unless it took one.
 * Discarding never blocks the calling thread (wfpb__net_discard).
 */
void wfpb_session_add_fds(struct wfpb_session *s, const wfpb_sock *fds, unsigned n);

/*
 * Processes received bytes, queueing any responses. Returns 0 to keep the
 * connection, or a negative WFPB_E_* when it must close once the pending
 * output (a reject notice, say) is written.
 */
int WFPB_MUST_CHECK wfpb_session_input(struct wfpb_session *s, const uint8_t *in, size_t len, uint64_t now_ms);

/*
 * Pending output. *attach is WFPB_SOCK_NONE, or a socket to send with the
 * first byte returned (SCM_RIGHTS); the bytes returned never reach the next
 * attachment. After writing n > 0 bytes call _output_done: the session then
 * closes its copy of an attached socket.
 */
const uint8_t *wfpb_session_output(struct wfpb_session *s, size_t *len, wfpb_sock *attach);
void wfpb_session_output_done(struct wfpb_session *s, size_t n);

/*
 * The sockets pending requests wait on (readable, or writable when
 * want_write), and whether that set changed since the server last synced.
 * The server registers every entry with refs > 0 whose `server` is NULL
 * (setting it), unregisters every entry with refs 0 whose `server` is set,
 * then calls _synced, which forgets the latter. It does this before it
 * writes the session's output: a socket handed over with an answer is closed
 * by the broker once written, and must not stay registered.
 */
struct wfpb_watch *wfpb_session_watches(struct wfpb_session *s, unsigned *n);
int wfpb_session_watches_changed(const struct wfpb_session *s);
void wfpb_session_watches_synced(struct wfpb_session *s);

/*
 * A watched socket is ready: retry the requests waiting on it, oldest first.
 * WFPB_SOCK_NONE when the server cannot say which (one event for all, on
 * Windows): each request then checks its own socket without blocking.
 * Returns as _input does.
 */
int WFPB_MUST_CHECK wfpb_session_resume(struct wfpb_session *s, wfpb_sock ready, uint64_t now_ms);

/* Absolute time (ms) of the next deadline: pending operation, handshake or idle timeout. */
uint64_t wfpb_session_deadline(const struct wfpb_session *s);

/*
 * The deadline passed. Pending requests past theirs are answered TIMEOUT
 * (returns 0); otherwise the session is closing (a reject notice queued if still in the
 * handshake) and a negative code is returned: WFPB_E_LIMIT when its client
 * left output unread past output_stall_ms, and the server then closes it at
 * once without flushing.
 */
int wfpb_session_expire(struct wfpb_session *s, uint64_t now_ms);

/*
 * Matches the session against the current policy if it has not been since
 * the last reload, updating principal, perms and usage.
 */
void wfpb_session_resolve(struct wfpb_session *s);

/*
 * Queues one packed Response with the n (<= WFPB_ATTACH_MAX) sockets it hands over, in the
 * order of their fd_index (ownership taken, closed on failure).
 */
int WFPB_MUST_CHECK wfpb__session_send(struct wfpb_session *s, const uint8_t *msg, size_t len, const wfpb_sock *attach,
    unsigned n, uint64_t request_id);

/*
 * A pending request joins the session (its socket watched; WFPB_E_NOMEM when
 * it cannot be) or leaves it; _free releases what it holds.
 */
int WFPB_MUST_CHECK wfpb__session_pending_add(struct wfpb_session *s, struct wfpb_pending *p);
void wfpb__session_pending_remove(struct wfpb_session *s, struct wfpb_pending *p);
/*
 * A pending request waits on something else now (a Relay on its upstream connect): p takes
 * what next holds, keeping its place, request and start. 0, or WFPB_E_NOMEM with p unchanged.
 */
int WFPB_MUST_CHECK wfpb__session_pending_rearm(struct wfpb_session *s, struct wfpb_pending *p,
    const struct wfpb_pending *next);
void wfpb__pending_free(struct wfpb_pending *p);
void wfpb__pending_release(struct wfpb_pending *p);	/* what it holds, not the struct */

/* What a server does with a session at its periodic sweep (wfpb_session_sweep). */
enum wfpb_sweep {
	WFPB_SWEEP_KEEP,	/* no deadline passed */
	WFPB_SWEEP_FLUSH,	/* a deadline passed and was answered: write its output */
	WFPB_SWEEP_CLOSE,	/* close it now, without writing more */
};

/*
 * The sweep, decided once for both servers: after a reload, what the policy
 * no longer allows is answered DENIED (waiting requests) or closed (listeners);
 * a pending operation past its
 * deadline is answered TIMEOUT, a silent handshake or idle session gets its
 * notice and is closing; a session already closing that could not flush,
 * or whose client left its output unread past output_stall_ms, is closed.
 */
enum wfpb_sweep wfpb_session_sweep(struct wfpb_session *s, uint64_t now_ms);

/*
 * Says why the session is ending, for its SESSION_END record (a static
 * string); the first cause given wins. Without one, the client closed it.
 */
void wfpb_session_end_reason(struct wfpb_session *s, const char *why);

/*
 * Ends the session and releases everything it owns: each pending request is
 * ended by its own resume entry (WFPB_RESUME_GONE), which records what it had
 * done as CANCELLED, then the session's end is recorded. NULL is a no-op.
 */
void wfpb_session_free(struct wfpb_session *s);

#endif
