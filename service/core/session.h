/*
 * One client session: the secure channel plus request dispatch, without any
 * I/O. The platform server feeds it the bytes it read, writes the bytes it
 * produces, and closes the connection when it says so or when its deadline
 * passes. Everything a client sends is untrusted.
 */
#ifndef WFPB_SESSION_H
#define WFPB_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "broker.h"
#include "channel.h"

struct wfpb_session {
	struct wfpb_broker	*broker;
	struct wfpb_channel	ch;
	struct wfpb_identity	id;
	uint64_t		opened_ms;
	uint64_t		last_ms;	/* last complete message */
	int			closing;	/* flush the output, then close */
	/* The policy's verdict on this session, refreshed after every reload. */
	int			resolved;
	uint64_t		policy_gen;
	char			principal[WFPB_NAME_MAX];	/* "" when no principal matched */
	unsigned		perms;
	uint32_t		max_stash;
	int			counted;	/* counted in its principal's session usage */
	int			over_limit;	/* principal's max_sessions reached: QUOTA for everything */
	struct wfpb_stash_entry	*stash_list;	/* session-lifetime stash entries */
};

/* Opens a session for a connection; NULL on allocation failure. */
struct wfpb_session *wfpb_session_new(struct wfpb_broker *b, const struct wfpb_identity *id, uint64_t now_ms);

/*
 * Sets the identity once the platform could read it (a named pipe's client
 * token is readable only after the client wrote). Until then it is unknown
 * and every permission-bearing request is denied.
 */
void wfpb_session_set_identity(struct wfpb_session *s, const struct wfpb_identity *id);

/*
 * Processes received bytes, queueing any responses. Returns 0 to keep the
 * connection, or a negative WFPB_E_* when it must close once the pending
 * output (a reject notice, say) is written.
 */
int WFPB_MUST_CHECK wfpb_session_input(struct wfpb_session *s, const uint8_t *in, size_t len, uint64_t now_ms);

/* Pending output, and marking n bytes of it written. */
const uint8_t *wfpb_session_output(const struct wfpb_session *s, size_t *len);
void wfpb_session_output_done(struct wfpb_session *s, size_t n);

/* Absolute time (ms) at which the session expires: handshake deadline or idle timeout. */
uint64_t wfpb_session_deadline(const struct wfpb_session *s);

/* The deadline passed: queues a reject notice if still in the handshake. */
void wfpb_session_expire(struct wfpb_session *s);

/*
 * Matches the session against the current policy if it has not been since
 * the last reload, updating principal, perms and usage.
 */
void wfpb_session_resolve(struct wfpb_session *s);

/* Releases everything the session owns. NULL is a no-op. */
void wfpb_session_free(struct wfpb_session *s);

#endif
