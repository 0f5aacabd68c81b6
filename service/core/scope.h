/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What an operation's handler sees of the session it runs for: the request's
 * scope. The dispatcher builds one for every request it runs and every
 * pending request it takes up again. A handler gets who asks (principal,
 * policy, grants, as the policy sees them now), the limits and the stores it
 * works with (the stash, the backend, the audit log's progress), and the
 * session's sockets (its listeners, the descriptors that came with the
 * request). It never gets the session itself: the scope's `session` is an
 * opaque pointer to the files that run handlers (they do not include
 * session.h), and what else a handler needs of the session or the broker it
 * asks of the services below, which scope.c implements.
 */
#ifndef WFPB_SCOPE_H
#define WFPB_SCOPE_H

#include <stddef.h>
#include <stdint.h>

#include "broker.h"
#include "net.h"

#define WFPB_SESSION_FDS_MAX	4u	/* descriptors received with one request */
#define WFPB_LISTENERS_MAX	16u	/* per session */
#define WFPB_ATTACH_MAX		2u	/* sockets one answer hands over (Relay's two) */

struct wfpb_listener {
	uint64_t		id;
	wfpb_sock		sock;
	int			udp;		/* a UDP listener (Flow), not a TCP one (Accept, Relay) */
	const struct wfpb_declared *declared;	/* a session's handle on a declared listener, or NULL */
	char			owner[WFPB_NAME_MAX];	/* the principal whose budget it counts in */
	struct wfpb_addr	local;
	struct wfpb_listener	*next;
};

/* The sockets a session holds for its client, which the socket operations own. */
struct wfpb_socks {
	struct wfpb_listener	*listeners;
	unsigned		nlisteners;
	wfpb_sock		in_fds[WFPB_SESSION_FDS_MAX];	/* received with the current request */
	unsigned		n_in;
};

enum wfpb_pending_kind {
	WFPB_PENDING_NONE,
	WFPB_PENDING_ACCEPT,
	WFPB_PENDING_CONNECT,
	WFPB_PENDING_APPLY,	/* ApplyRecords: waits for its audit record to be durable, then acts */
	WFPB_PENDING_RELAY,	/* Relay: waits on its listener, then on its upstream connect */
	WFPB_PENDING_FLOW,	/* Flow: waits for a new flow's first datagram on its UDP listener */
};

/*
 * A request that waits: an Accept for a connection, a Connect for its socket,
 * an ApplyRecords for its audit record. It belongs to its request, not to the
 * session: protocol version 2 keeps up to max_inflight of them per session,
 * version 1 at most one (and the session answers nothing else meanwhile).
 */
struct wfpb_pending {
	struct wfpb_pending	*next;		/* the session's, oldest first */
	int			kind;
	uint64_t		request_id;
	uint64_t		deadline_ms;
	uint64_t		started_ms;
	wfpb_sock		watch;		/* listener (readable) or connecting socket (writable) */
	int			want_write;
	uint64_t		listener_id;	/* Accept: for the answer when its listener is released */
	int			lifetime;	/* Accept: of the records' stash entry (dispatch_int.h) */
	wfpb_sock		sock;		/* Connect: the socket being connected (owned) */
	struct wfpb_addr	remote;		/* Connect: for the audit record */
	uint8_t			blob_hash[32];	/* Connect: BLAKE2b-256 of the records applied */
	int			has_blob_hash;
	uint64_t		audit_seq;	/* Apply: the record that must be durable first */
	uint8_t			*blob;		/* Apply: the records to set (owned) */
	size_t			blob_len;
	uint8_t			handle[WFPB_STASH_ID_LEN];	/* Apply: the stash entry they came from */
	int			has_handle;
	int			foreign;	/* Connect, Apply: records the client supplied (apply_foreign) */
	uint64_t		flow_id;	/* Connect, Apply: the flow of the records applied (audit) */
	struct wfpb_addr	orig_dst;	/* and where it was going (family 0: unknown) */
	/*
	 * Relay: its accept's listener_id and lifetime fields as Accept's until `accepted` is set;
	 * then the accepted connection (owned), its addresses and what its queries answered (the
	 * context in blob), while `sock` connects to `remote`.
	 */
	wfpb_sock		accepted;
	struct wfpb_addr	peer, local, bind;	/* bind: the upstream's local address (family 0: none) */
	uint32_t		connect_timeout_ms;	/* Connect, Relay: how long the connect may take */
	int			hold_first;	/* Flow: the proxy sends the first datagram itself */
	int			without_records;	/* Flow: upstream carries none of the datagram's records */
	int32_t			records_error, context_error;
};

struct wfpb_session;

struct wfpb_scope {
	/* Who asks, as the policy sees them now (wfpb__scope_refresh after a reload may have run). */
	const char			*principal;	/* "" when no principal matched */
	const struct wfpb_principal	*policy;	/* NULL then */
	unsigned			perms;
	uint32_t			max_stash;	/* the stash entries its principal may hold */
	const struct wfpb_identity	*id;		/* the caller's OS identity and process */
	/* What the request works with. */
	const struct wfpb_config	*cfg;		/* the broker's limits */
	struct wfpb_stash		*stash;
	struct wfpb_stash_entry		**stash_list;	/* the session's own entries in it */
	const struct wfpb_backend	*backend;
	const struct wfpb_audit		*audit;		/* NULL when the log is off */
	struct wfpb_socks		*socks;
	unsigned			version;	/* the session's protocol version and in-flight cap */
	uint32_t			max_inflight;
	struct wfpb_broker		*admin;		/* the broker: only for ops that need WFPB_PERM_ADMIN */
	struct wfpb_session		*session;	/* for the services below; opaque to handlers */
};

/* The scope of a request of session s for an op needing perm (admin only with WFPB_PERM_ADMIN). */
void wfpb__scope_init(struct wfpb_scope *sc, struct wfpb_session *s, unsigned perm);

/* Matches the session against the policy again if a reload ran, and updates who asks. */
void wfpb__scope_refresh(struct wfpb_scope *sc);

/* The principal's usage (stash entries, listeners); NULL when memory ran out. */
struct wfpb_usage *wfpb__scope_usage(struct wfpb_scope *sc);

/*
 * Takes a socket out of the client's process by its handle (Windows). The
 * pull may wait on whatever the client named, so it gives the core lock up
 * for its duration and refreshes who asks afterwards. As wfpb__net_pull.
 */
int WFPB_MUST_CHECK wfpb__scope_pull(struct wfpb_scope *sc, uint64_t handle, wfpb_sock *out, int *os_err);

/* The broker's declared listener called name (whoever it is for), or NULL. */
const struct wfpb_declared *wfpb__scope_declared(const struct wfpb_scope *sc, const char *name);

/*
 * Fills len bytes (more than WFPB_HANDOVER_MARK_LEN) with the placeholder of the answer's
 * socket number index (< WFPB_ATTACH_MAX), handed over later: the broker's mark, then index.
 */
void wfpb__scope_handover_placeholder(const struct wfpb_scope *sc, uint8_t *out, size_t len, unsigned index);

/*
 * Holds a socket the request made its own with the descriptors that came with
 * it, so it is closed after the request as they are. 0, or -1 when there is
 * no room: the socket is then closed and must not be used.
 */
int WFPB_MUST_CHECK wfpb__scope_hold(struct wfpb_scope *sc, wfpb_sock sock);

/*
 * A listener counts in its principal's budget: _admit takes a place (0, or
 * WFPB_E_LIMIT) and names the principal in owner; _unadmit gives it back for
 * one that never listened; _add gives the listening one its id and makes it
 * the session's.
 */
int WFPB_MUST_CHECK wfpb__scope_listener_admit(struct wfpb_scope *sc, struct wfpb_listener *l);
void wfpb__scope_listener_unadmit(struct wfpb_scope *sc, struct wfpb_listener *l);
void wfpb__scope_listener_add(struct wfpb_scope *sc, struct wfpb_listener *l);

/*
 * Releases the session's listener id: the requests waiting on it are
 * answered first (CANCEL), then it is closed. 0, or WFPB_E_NOENT.
 */
int wfpb__scope_listener_release(struct wfpb_scope *sc, uint64_t id, uint64_t now_ms);

/*
 * Ends the session's waiting request request_id: it is answered as its resume entry answers
 * WFPB_RESUME_ABORT (CANCELLED, what it had started undone). 0, WFPB_E_NOENT when none of the
 * session's requests with that id waits, or an error queuing its answer.
 */
int wfpb__scope_cancel(struct wfpb_scope *sc, uint64_t request_id, uint64_t now_ms);

/* The session's listener id (and the link to it, when link is not NULL), or NULL. */
struct wfpb_listener *wfpb__find_listener(struct wfpb_socks *k, uint64_t id, struct wfpb_listener ***link);

/* Closes a listener (already unlinked from k) and gives its place in the budgets back. */
void wfpb__listener_free(struct wfpb_broker *b, struct wfpb_socks *k, struct wfpb_listener *l);

#endif
