/* SPDX-License-Identifier: Apache-2.0 */
/* Session: channel events in, dispatched responses out, and what the session owns. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dispatch.h"
#include "log.h"
#include "net.h"
#include "session.h"

static int
key_enrolled(void *arg, const uint8_t pub[WFPB_NOISE_DHLEN])
{
	struct wfpb_broker	*b = arg;
	int			yes;

	/* Runs inside the handshake, outside the core lock; the policy may be reloaded meanwhile. */
	wfpb_core_enter(b);
	yes = wfpb_config_key_enrolled(&b->cfg, pub);
	wfpb_core_leave(b);
	return yes;
}

struct wfpb_session *
wfpb_session_new(struct wfpb_broker *b, const struct wfpb_identity *id, uint64_t now_ms)
{
	struct wfpb_session *s;

	WFPB_CORE_OWNED(b);
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->broker = b;
	s->session_id = ++b->next_session_id;
	s->id = *id;
	s->opened_ms = s->last_ms = now_ms;
	s->pending_tail = &s->pending;
	s->max_inflight = 1;
	s->checked_gen = b->policy_gen;
	s->output_max = b->cfg.output_max;
	if (wfpb__admit_user_take(b, id, &s->user_slot) != 0) {
		free(s);
		return NULL;
	}
	wfpb_channel_server_init(&s->ch, b->key, key_enrolled, b);
	b->sessions++;
	b->n.sessions_opened++;
	return s;
}

static void
uncount(struct wfpb_session *s)
{
	struct wfpb_usage *u;

	if (s->counted && (u = wfpb_broker_usage(s->broker, s->principal)) != NULL && u->sessions > 0)
		u->sessions--;
	s->counted = 0;
}

void
wfpb_session_resolve(struct wfpb_session *s)
{
	struct wfpb_broker		*b = s->broker;
	const struct wfpb_principal	*p;
	struct wfpb_usage		*u;
	uint32_t			limit;

	WFPB_CORE_OWNED(b);
	if (s->resolved && s->policy_gen == b->policy_gen)
		return;
	p = wfpb_policy_match(&b->cfg, &s->id, wfpb_channel_peer_key(&s->ch));
	if (!s->resolved || strcmp(s->principal, p ? p->name : "") != 0) {
		uncount(s);
		s->over_limit = 0;
		snprintf(s->principal, sizeof(s->principal), "%s", p ? p->name : "");
		if (p != NULL) {
			limit = p->max_sessions ? p->max_sessions : b->cfg.max_sessions_per_principal;
			if ((u = wfpb_broker_usage(b, p->name)) == NULL || u->sessions >= limit) {
				s->over_limit = 1;
			} else {
				u->sessions++;
				s->counted = 1;
			}
		}
	}
	s->policy = p;
	s->output_max = b->cfg.output_max;
	s->max_inflight = s->version >= 2 ? b->cfg.max_inflight : 1;
	s->perms = p ? p->perms : 0;
	s->max_stash = p && p->max_stash ? p->max_stash : b->cfg.stash_max_per_principal;
	s->policy_gen = b->policy_gen;
	s->resolved = 1;
}

int
wfpb_session_set_identity(struct wfpb_session *s, const struct wfpb_identity *id)
{
	struct wfpb_broker	*b = s->broker;
	int			rc;

	wfpb_core_enter(b);
	wfpb__admit_user_drop(b, &s->user_slot);
	s->id = *id;
	rc = wfpb__admit_user_take(b, id, &s->user_slot);
	wfpb_core_leave(b);
	if (rc != 0) {
		/* The identity holds its share already (or memory ran out): this one is refused as busy. */
		wfpb_channel_reject(&s->ch, WFPB_REJECT_BUSY);
		s->closing = 1;
	}
	return rc;
}

void
wfpb_session_add_fds(struct wfpb_session *s, const wfpb_sock *fds, unsigned n)
{
	unsigned i;

	/* Descriptors are taken only from an authenticated peer, for the request they came with. */
	for (i = 0; i < n; i++) {
		if (s->socks.n_in < WFPB_SESSION_FDS_MAX && !s->closing && wfpb_channel_established(&s->ch))
			s->socks.in_fds[s->socks.n_in++] = fds[i];
		else
			wfpb__net_discard(fds[i]);
	}
}

void
wfpb_session_end_reason(struct wfpb_session *s, const char *why)
{
	if (s->end_reason == NULL)
		s->end_reason = why;
}

/* The session closes for cause: its end record says why. */
static int
end_for(struct wfpb_session *s, const char *why, int rc)
{
	wfpb_session_end_reason(s, why);
	s->closing = 1;
	return rc;
}

static void
close_in_fds(struct wfpb_session *s)
{
	while (s->socks.n_in > 0)
		wfpb__net_discard(s->socks.in_fds[--s->socks.n_in]);
}

/* The output budget is spent: hold further requests until the client reads (backpressure). */
static int
over_budget(struct wfpb_session *s, uint64_t now_ms)
{
	if (!wfpb_admit_output_over(s))
		return 0;
	if (s->over_since_ms == 0)
		s->over_since_ms = now_ms ? now_ms : 1;
	return 1;
}

/* Keeps bytes that arrive while an operation is pending; a client that floods them is cut off. */
static int
hold(struct wfpb_session *s, const uint8_t *in, size_t len)
{
	uint8_t *p;

	if (s->held_len + len > WFPB_HELD_MAX)
		return WFPB_E_LIMIT;
	if ((p = realloc(s->held, s->held_len + len)) == NULL)
		return WFPB_E_NOMEM;
	memcpy(p + s->held_len, in, len);
	s->held = p;
	s->held_len += len;
	return 0;
}

int
wfpb_session_input(struct wfpb_session *s, const uint8_t *in, size_t len, uint64_t now_ms)
{
	const uint8_t	*msg;
	size_t		used, mlen;
	int		ev, rc;

	if (s->closing)
		return WFPB_E_STATE;
	while (len > 0) {
		/* Version 1 answers in order: a pending request holds the ones after it. */
		if ((s->version < 2 && s->n_pending > 0) || over_budget(s, now_ms)) {
			if ((rc = hold(s, in, len)) != 0)
				return end_for(s, "it sent more than the broker holds while a request was pending", rc);
			return 0;
		}
		ev = wfpb_channel_feed(&s->ch, in, len, &used);
		in += used;
		len -= used;
		if (ev < 0)
			return end_for(s, s->started ?
			    "a frame failed authentication or was malformed (tampered, replayed, reordered or empty)" :
			    "the handshake failed", ev);
		if (ev == WFPB_CHANNEL_ESTABLISHED) {
			s->last_ms = now_ms;
			s->version = wfpb_channel_version(&s->ch);
			wfpb_core_enter(s->broker);
			wfpb_session_resolve(s);
			wfpb__dispatch_session_event(s, 1);
			wfpb_core_leave(s->broker);
		} else if (ev == WFPB_CHANNEL_MESSAGE) {
			s->last_ms = now_ms;
			msg = wfpb_channel_message(&s->ch, &mlen);
			wfpb_core_enter(s->broker);
			rc = wfpb_dispatch(s, msg, mlen, now_ms);
			wfpb_core_leave(s->broker);
			/* Descriptors belong to the request they came with. */
			close_in_fds(s);
			if (rc != 0)
				return end_for(s, "the broker could not queue its answer", rc);
		}
	}
	return 0;
}

/* Feeds input held while a version-1 request was pending, now that it has completed. */
static int
drain_held(struct wfpb_session *s, uint64_t now_ms)
{
	uint8_t	*held = s->held;
	size_t	len = s->held_len;
	int	rc;

	if (held == NULL || (s->version < 2 && s->n_pending > 0))
		return 0;
	s->held = NULL;
	s->held_len = 0;
	rc = wfpb_session_input(s, held, len, now_ms);
	free(held);
	return rc;
}

/* Which pending requests resume_some takes up. */
enum { PICK_WATCHING, PICK_EXPIRED, PICK_APPLY };

/*
 * Takes up, oldest first, the pending requests picked: those waiting on
 * `ready` (every one when it is WFPB_SOCK_NONE, each then checking its own
 * socket), those past their deadline, or the ApplyRecords waiting for their
 * records. One still waiting on a socket says that socket is not ready: the
 * others waiting on it are not tried (64 Accepts on one listener cost one
 * accept call, not 64). Then, the session's held input. Under no lock.
 */
static int
resume_some(struct wfpb_session *s, int pick, wfpb_sock ready, uint64_t now_ms)
{
	struct wfpb_pending	*p, *next;
	wfpb_sock		idle[8];
	unsigned		nidle = 0, i;
	int			why, rc = 0;

	if (s->n_pending == 0 || s->closing)
		return 0;
	wfpb_core_enter(s->broker);
	for (p = s->pending; p != NULL && rc >= 0; p = next) {
		next = p->next;
		if (pick == PICK_EXPIRED) {
			if (now_ms < p->deadline_ms)
				continue;
			why = WFPB_RESUME_TIMEOUT;
		} else if (pick == PICK_APPLY) {
			if (p->kind != WFPB_PENDING_APPLY)
				continue;
			why = WFPB_RESUME_READY;
		} else {
			if (p->watch == WFPB_SOCK_NONE || (ready != WFPB_SOCK_NONE && p->watch != ready))
				continue;
			for (i = 0; i < nidle && idle[i] != p->watch; i++)
				;
			if (i < nidle)
				continue;
			why = ready == WFPB_SOCK_NONE ? WFPB_RESUME_POLL : WFPB_RESUME_READY;
		}
		rc = wfpb__dispatch_resume(s, p, why, now_ms);
		if (rc == 0 && pick == PICK_WATCHING && nidle < sizeof(idle) / sizeof(idle[0]))
			idle[nidle++] = p->watch;	/* still waiting: p is alive */
		else if (rc > 0)
			rc = 0;
	}
	wfpb_core_leave(s->broker);
	if (rc < 0)
		return end_for(s, "the broker could not queue its answer", rc);
	s->last_ms = now_ms;
	return drain_held(s, now_ms);
}

int
wfpb_session_resume(struct wfpb_session *s, wfpb_sock ready, uint64_t now_ms)
{
	return resume_some(s, PICK_WATCHING, ready, now_ms);
}

int
wfpb_session_wants_input(const struct wfpb_session *s)
{
	return !s->closing && s->over_since_ms == 0;
}

int
wfpb_session_unthrottle(struct wfpb_session *s, uint64_t now_ms)
{
	size_t	len = 0;
	int	rc;

	if (s->over_since_ms == 0 || s->closing)
		return 0;
	(void)wfpb_channel_output(&s->ch, &len);
	if (len > s->output_max / 2)
		return 0;
	s->over_since_ms = 0;
	if (s->held == NULL)
		return 0;
	if ((rc = drain_held(s, now_ms)) < 0)
		return rc;
	return 1;
}

struct wfpb_watch *
wfpb_session_watches(struct wfpb_session *s, unsigned *n)
{
	*n = s->n_watches;
	return s->watches;
}

int
wfpb_session_watches_changed(const struct wfpb_session *s)
{
	return s->watches_changed;
}

void
wfpb_session_watches_synced(struct wfpb_session *s)
{
	unsigned i = 0;

	while (i < s->n_watches) {
		if (s->watches[i].refs == 0)
			s->watches[i] = s->watches[--s->n_watches];
		else
			i++;
	}
	s->watches_changed = 0;
}

/* One more pending request waits on sock. 0, or WFPB_E_NOMEM. */
static int
watch_ref(struct wfpb_session *s, wfpb_sock sock, int want_write)
{
	struct wfpb_watch	*w;
	unsigned		i, cap;

	if (sock == WFPB_SOCK_NONE)
		return 0;
	/* An entry with no refs left is an old socket the server still has to forget, even if the number is the same. */
	for (i = 0; i < s->n_watches; i++) {
		if (s->watches[i].refs > 0 && s->watches[i].sock == sock && s->watches[i].want_write == want_write) {
			s->watches[i].refs++;
			return 0;
		}
	}
	if (s->n_watches == s->cap_watches) {
		cap = s->cap_watches ? 2 * s->cap_watches : 4;
		if ((w = realloc(s->watches, cap * sizeof(*w))) == NULL)
			return WFPB_E_NOMEM;
		s->watches = w;
		s->cap_watches = cap;
	}
	w = &s->watches[s->n_watches++];
	w->sock = sock;
	w->want_write = want_write;
	w->refs = 1;
	w->server = NULL;
	s->watches_changed = 1;
	return 0;
}

static void
watch_unref(struct wfpb_session *s, wfpb_sock sock, int want_write)
{
	unsigned i;

	for (i = 0; i < s->n_watches; i++) {
		if (s->watches[i].refs == 0 || s->watches[i].sock != sock || s->watches[i].want_write != want_write)
			continue;
		if (--s->watches[i].refs == 0) {
			/* Never registered: nothing for the server to undo. */
			if (s->watches[i].server == NULL)
				s->watches[i] = s->watches[--s->n_watches];
			s->watches_changed = 1;
		}
		return;
	}
}

int
wfpb__session_pending_add(struct wfpb_session *s, struct wfpb_pending *p)
{
	if (watch_ref(s, p->watch, p->want_write) != 0)
		return WFPB_E_NOMEM;
	p->next = NULL;
	*s->pending_tail = p;
	s->pending_tail = &p->next;
	s->n_pending++;
	s->broker->inflight++;
	return 0;
}

void
wfpb__session_pending_remove(struct wfpb_session *s, struct wfpb_pending *p)
{
	struct wfpb_pending **pp;

	for (pp = &s->pending; *pp != NULL && *pp != p; pp = &(*pp)->next)
		;
	if (*pp == NULL)
		return;
	*pp = p->next;
	if (s->pending_tail == &p->next)
		s->pending_tail = pp;
	p->next = NULL;
	s->n_pending--;
	s->broker->inflight--;
	watch_unref(s, p->watch, p->want_write);
}

int
wfpb__session_pending_rearm(struct wfpb_session *s, struct wfpb_pending *p, const struct wfpb_pending *next)
{
	struct wfpb_pending	*link = p->next;
	uint64_t		request_id = p->request_id, started_ms = p->started_ms;

	if (watch_ref(s, next->watch, next->want_write) != 0)
		return WFPB_E_NOMEM;
	watch_unref(s, p->watch, p->want_write);
	free(p->blob);
	*p = *next;
	p->next = link;
	p->request_id = request_id;
	p->started_ms = started_ms;
	return 0;
}

void
wfpb__pending_release(struct wfpb_pending *p)
{
	/* An ApplyRecords holds the client's own socket, untouched: it goes back without blocking. */
	if (p->kind == WFPB_PENDING_APPLY)
		wfpb__net_discard(p->sock);
	else
		wfpb__net_close(p->sock);
	p->sock = WFPB_SOCK_NONE;
	wfpb__net_close(p->accepted);
	p->accepted = WFPB_SOCK_NONE;
	free(p->blob);
	p->blob = NULL;
}

void
wfpb__pending_free(struct wfpb_pending *p)
{
	if (p == NULL)
		return;
	wfpb__pending_release(p);
	free(p);
}

/*
 * Keeps an answer back, unencrypted, in line behind those already kept: the
 * socket it hands over is duplicated into the client only when it goes out
 * (release_late), after its audit record is durable. 0, or an error with the
 * socket closed.
 */
static int
hold_late(struct wfpb_session *s, const uint8_t *msg, size_t len, const wfpb_sock *attach, unsigned n,
    uint64_t request_id)
{
	struct wfpb_broker	*b = s->broker;
	struct wfpb_late	*l;
	size_t			hl = wfpb__net_handover_len(), i = 0;
	size_t			end = 0;
	unsigned		k;

	if (s->n_late == s->cap_late) {
		unsigned	cap = s->cap_late ? 2 * s->cap_late : 4;

		if ((l = realloc(s->late, cap * sizeof(*l))) == NULL)
			goto fail;
		s->late = l;
		s->cap_late = cap;
	}
	l = &s->late[s->n_late];
	memset(l, 0, sizeof(*l));
	if ((l->msg = malloc(len ? len : 1)) == NULL)
		goto fail;
	memcpy(l->msg, msg, len);
	l->len = len;
	l->request_id = request_id;
	/*
	 * Each placeholder starts with the broker's random mark, then its socket's number: no
	 * field the client chose can carry it, and the sockets cannot be taken for each other.
	 */
	for (k = 0; k < n; k++) {
		for (; i + hl <= len && (memcmp(msg + i, b->handover_mark, WFPB_HANDOVER_MARK_LEN) != 0 ||
		    msg[i + WFPB_HANDOVER_MARK_LEN] != k); i++)
			;
		if (hl <= WFPB_HANDOVER_MARK_LEN || i + hl > len) {
			free(l->msg);
			goto fail;	/* the frame lost a placeholder: never hand it over */
		}
		l->mark_at[k] = i;
		l->sock[k] = attach[k];
		i += hl;
	}
	l->n = n;
	/* Whatever was recorded before it (a request recorded as it started) must be durable too. */
	if (b->audit_on)
		l->seq = __atomic_load_n(&b->audit.pending_last_seq, __ATOMIC_RELAXED);
	s->n_late++;
	(void)wfpb_channel_output(&s->ch, &end);
	s->gate_at = s->out_sent + end;	/* its record gates what follows what is already queued */
	if (l->n > 0 && l->seq > __atomic_load_n(&b->audit.durable_seq, __ATOMIC_ACQUIRE))
		wfpb__session_wait_audit(s, l->seq);
	return 0;
fail:
	for (k = 0; k < n; k++)
		wfpb__net_close(attach[k]);
	return l == NULL || s->n_late == s->cap_late ? WFPB_E_NOMEM : WFPB_E_STATE;
}

/*
 * Sends the answers kept back whose records are durable, oldest first: each
 * socket is duplicated into the client's pinned process now, and its
 * WSAPROTOCOL_INFOW written over the placeholder. One that cannot be goes out
 * with zeros there (the client's WSASocketW then fails) and is logged.
 */
static void
release_late(struct wfpb_session *s)
{
	struct wfpb_broker	*b = s->broker;
	uint8_t			info[WFPB_HANDOVER_MAX];
	size_t			n = 0, hl = wfpb__net_handover_len();
	uint64_t		durable;
	int			rc, os_err = 0;

	if (s->n_late == 0 || s->audit_failed || s->ending)
		return;
	durable = b->audit_on ? __atomic_load_n(&b->audit.durable_seq, __ATOMIC_ACQUIRE) : UINT64_MAX;
	while (s->n_late > 0) {
		struct wfpb_late	*l = &s->late[0];
		unsigned		k;

		if (l->n > 0 && l->seq > durable)
			return;
		for (k = 0; k < l->n; k++) {
			rc = wfpb__net_handover(l->sock[k], s->id.pid, s->id.process, info, sizeof(info), &n, &os_err);
			if (rc == 0 && n == hl) {
				memcpy(l->msg + l->mark_at[k], info, n);
			} else {
				wfpb_log(WFPB_LOG_WARN, "session %llu: a socket could not be duplicated into pid %u "
				    "(error %d); its answer goes without it", (unsigned long long)s->session_id,
				    (unsigned)s->id.pid, os_err);
				memset(l->msg + l->mark_at[k], 0, hl);
				if (rc != 0)
					wfpb__net_close(l->sock[k]);
				/* The request's record said it was handed over: a second one says it was not. */
				wfpb_core_enter(b);
				wfpb__audit_handover_failed(s, l->request_id, os_err);
				wfpb_core_leave(b);
			}
			l->sock[k] = WFPB_SOCK_NONE;
		}
		l->n = 0;
		rc = wfpb_channel_send(&s->ch, l->msg, l->len);
		free(l->msg);
		memmove(&s->late[0], &s->late[1], (s->n_late - 1) * sizeof(s->late[0]));
		s->n_late--;
		if (rc != 0) {
			(void)end_for(s, "the broker could not queue its answer", rc);
			return;
		}
	}
}

int
wfpb__session_send(struct wfpb_session *s, const uint8_t *msg, size_t len, const wfpb_sock *attach, unsigned n,
    uint64_t request_id)
{
	size_t		before;
	unsigned	k;
	int		rc;

	/* Windows: a socket goes into the client only with its frame, after its record (hold_late). */
	if ((n > 0 && wfpb__net_handover_len() > 0) || s->n_late > 0)
		return hold_late(s, msg, len, attach, n, request_id);

	(void)wfpb_channel_output(&s->ch, &before);
	/*
	 * Every request in flight may complete before its client reads a byte, each with its
	 * sockets; past that, the client is not reading its sockets and gets no more.
	 */
	rc = n > WFPB_ATTACH_MAX || (n > 0 && s->n_out + n > WFPB_ATTACH_MAX * s->max_inflight +
	    WFPB_SESSION_OUT_FDS_MAX) ? WFPB_E_LIMIT : 0;
	if (rc == 0 && n > 0 && s->n_out + n > s->cap_out) {
		unsigned		cap = s->cap_out ? 2 * s->cap_out : 4;
		struct wfpb_attach	*p;

		while (cap < s->n_out + n)
			cap *= 2;
		if ((p = realloc(s->out_fds, cap * sizeof(*p))) == NULL)
			rc = WFPB_E_NOMEM;
		else {
			s->out_fds = p;
			s->cap_out = cap;
		}
	}
	if (rc == 0)
		rc = wfpb_channel_send(&s->ch, msg, len);
	if (rc != 0) {
		for (k = 0; k < n; k++)
			wfpb__net_close(attach[k]);
		return rc;
	}
	s->gate_at = s->out_sent + before;	/* its audit record, written next, gates it */
	/*
	 * Each socket rides a byte of its own: the first with the frame's first byte, the
	 * second with the next (a frame is never shorter than its header), so the client
	 * receives them in their fd_index order.
	 */
	for (k = 0; k < n; k++) {
		s->out_fds[s->n_out].offset = s->out_sent + before + k;
		s->out_fds[s->n_out].sock = attach[k];
		s->n_out++;
	}
	return 0;
}

static void
wait_unlink(struct wfpb_session *s)
{
	struct wfpb_broker *b = s->broker;

	if (s->wait_state == WFPB_WAIT_NONE)
		return;
	if (s->wait_prev)
		s->wait_prev->wait_next = s->wait_next;
	else if (s->wait_state == WFPB_WAIT_AUDIT)
		b->waiting = s->wait_next;
	else
		b->ready = s->wait_next;
	if (s->wait_next)
		s->wait_next->wait_prev = s->wait_prev;
	s->wait_prev = s->wait_next = NULL;
	s->wait_state = WFPB_WAIT_NONE;
}

/* Moves the session to the head of the broker's waiting or ready list. */
static void
wait_push(struct wfpb_session *s, int state, struct wfpb_session **head)
{
	wait_unlink(s);
	s->wait_state = state;
	s->wait_next = *head;
	if (*head)
		(*head)->wait_prev = s;
	*head = s;
}

void
wfpb__session_gate_here(struct wfpb_session *s)
{
	size_t len = 0;

	(void)wfpb_channel_output(&s->ch, &len);
	s->gate_at = s->out_sent + len;
}

void
wfpb__session_wait_audit(struct wfpb_session *s, uint64_t seq)
{
	struct wfpb_gate	*g;
	unsigned		cap;

	/* An answer kept back for its socket waits for this record too. */
	if (s->n_late > 0 && s->late[s->n_late - 1].n > 0 && s->late[s->n_late - 1].seq < seq)
		s->late[s->n_late - 1].seq = seq;

	if (s->n_gates == s->cap_gates) {
		cap = s->cap_gates ? 2 * s->cap_gates : 4;
		if ((g = realloc(s->gates, cap * sizeof(*g))) == NULL) {
			/* Nowhere to note the wait: the answer must not go out unaudited, so the session ends. */
			s->audit_failed = 1;
			(void)end_for(s, "the broker ran out of memory holding an answer for its record", 0);
			return;
		}
		s->gates = g;
		s->cap_gates = cap;
	}
	s->gates[s->n_gates].offset = s->gate_at;
	s->gates[s->n_gates].seq = seq;
	if (s->n_gates++ == 0)
		s->audit_wait = seq;
	if (s->wait_state != WFPB_WAIT_AUDIT)
		wait_push(s, WFPB_WAIT_AUDIT, &s->broker->waiting);
}

/* Forgets the gates whose records are durable; the session waits again (core lock) if any is left. */
static void
gates_pass(struct wfpb_session *s, uint64_t durable, int requeue)
{
	unsigned i = 0;

	while (i < s->n_gates && s->gates[i].seq <= durable)
		i++;
	if (i > 0) {
		memmove(s->gates, s->gates + i, (s->n_gates - i) * sizeof(s->gates[0]));
		s->n_gates -= i;
	}
	if (s->n_gates > 0) {
		s->audit_wait = s->gates[0].seq;
		if (requeue && s->wait_state == WFPB_WAIT_NONE)
			wait_push(s, WFPB_WAIT_AUDIT, &s->broker->waiting);
	}
}

void
wfpb__session_wait_ready(struct wfpb_session *s)
{
	wait_push(s, WFPB_WAIT_READY, &s->broker->ready);
}

void
wfpb_session_released(struct wfpb_session *s, uint64_t now_ms)
{
	int failed, rc = 0;

	wfpb_core_enter(s->broker);
	failed = s->wait_failed;
	s->wait_failed = 0;
	/* The oldest record it waited for is durable; a later one may not be yet, and is waited for again. */
	if (!failed)
		gates_pass(s, __atomic_load_n(&s->broker->audit.durable_seq, __ATOMIC_ACQUIRE), 1);
	wfpb_core_leave(s->broker);
	if (failed) {
		s->audit_failed = 1;
		(void)end_for(s, "an audit record it waited for could not be made durable", 0);
		return;
	}
	/* The records of ApplyRecords whose audit records are durable now: only now may their effect happen. */
	if ((rc = resume_some(s, PICK_APPLY, WFPB_SOCK_NONE, now_ms)) == 0)
		rc = drain_held(s, now_ms);
	if (rc < 0)
		(void)end_for(s, "the broker could not queue its answer", rc);
}

const uint8_t *
wfpb_session_output(struct wfpb_session *s, size_t *len, wfpb_sock *attach)
{
	const uint8_t	*p;
	uint64_t	next, durable;
	unsigned	i;

	*attach = WFPB_SOCK_NONE;
	/*
	 * An effectful answer leaves only once its audit record is durable; if it
	 * cannot be, never. durable_seq only grows and is written under the core
	 * lock; a stale read here only defers the write to the commit's own release.
	 */
	*len = 0;
	if (s->audit_failed)
		return NULL;
	release_late(s);
	p = wfpb_channel_output(&s->ch, len);
	if (p != NULL && s->broker->audit_on && s->n_gates > 0) {
		durable = __atomic_load_n(&s->broker->audit.durable_seq, __ATOMIC_ACQUIRE);
		for (i = 0; i < s->n_gates && s->gates[i].seq <= durable; i++)
			;
		if (i < s->n_gates && s->gates[i].offset - s->out_sent < *len)
			*len = (size_t)(s->gates[i].offset - s->out_sent);
		if (*len == 0)
			return NULL;
	}
	if (p == NULL || s->n_out == 0)
		return p;
	if (s->out_fds[0].offset == s->out_sent) {
		*attach = s->out_fds[0].sock;
		next = s->n_out > 1 ? s->out_fds[1].offset : UINT64_MAX;
	} else {
		next = s->out_fds[0].offset;
	}
	if (next - s->out_sent < *len)
		*len = (size_t)(next - s->out_sent);
	return p;
}

void
wfpb_session_output_done(struct wfpb_session *s, size_t n)
{
	if (n == 0)
		return;
	if (s->n_out > 0 && s->out_fds[0].offset == s->out_sent) {
		/* The kernel holds the client's reference now; ours goes. */
		wfpb__net_close(s->out_fds[0].sock);
		memmove(&s->out_fds[0], &s->out_fds[1], (s->n_out - 1) * sizeof(s->out_fds[0]));
		s->n_out--;
	}
	s->out_sent += n;
	wfpb_channel_output_done(&s->ch, n);
}

/* The first deadline of the session's pending requests (UINT64_MAX: none). */
static uint64_t
pending_deadline(const struct wfpb_session *s)
{
	const struct wfpb_pending	*p;
	uint64_t			at = UINT64_MAX;

	for (p = s->pending; p != NULL; p = p->next)
		if (p->deadline_ms < at)
			at = p->deadline_ms;
	return at;
}

uint64_t
wfpb_session_deadline(const struct wfpb_session *s)
{
	struct wfpb_broker	*b = s->broker;
	uint64_t		at = UINT64_MAX, stall = UINT64_MAX;

	/* A session with requests in flight is not idle: the first of their deadlines counts. */
	if (s->n_pending > 0 && !s->closing)
		at = pending_deadline(s);
	/* The timeouts are policy, which a reload on another worker may be replacing. */
	wfpb_core_enter(b);
	if (s->n_pending == 0 || s->closing)
		at = !wfpb_channel_established(&s->ch) ? s->opened_ms + b->cfg.handshake_timeout_ms :
		    s->last_ms + wfpb_admit_idle_ms(s);
	if (s->over_since_ms != 0)
		stall = s->over_since_ms + b->cfg.output_stall_ms;
	wfpb_core_leave(b);
	return at < stall ? at : stall;
}

int
wfpb_session_expire(struct wfpb_session *s, uint64_t now_ms)
{
	if (s->n_pending > 0 && !s->closing && now_ms >= pending_deadline(s))
		return resume_some(s, PICK_EXPIRED, WFPB_SOCK_NONE, now_ms);
	if (s->over_since_ms != 0 && !s->closing)
		/* Its client left the output unread past output_stall_ms: it gets none of it. */
		return end_for(s, "its client left the answers unread past output_stall_ms", WFPB_E_LIMIT);
	if (s->n_pending > 0 && !s->closing)
		return 0;	/* woken early: its requests wait on */
	if (!wfpb_channel_established(&s->ch) && !s->closing)
		wfpb_channel_reject(&s->ch, WFPB_REJECT_DEADLINE);
	return end_for(s, "idle past its timeout", WFPB_E_TIMEOUT);
}

/*
 * A reload since the session's requests and listeners were last checked: what
 * the policy no longer allows is answered DENIED or closed now, not when it
 * completes. 1 when something was answered, 0 when not, or a negative code.
 */
static int
recheck(struct wfpb_session *s, uint64_t now_ms)
{
	struct wfpb_broker	*b = s->broker;
	int			rc = 0;

	/* Nothing waits and nothing listens: nothing a reload could withdraw (no lock every tick). */
	if (s->closing || !wfpb_channel_established(&s->ch) || (s->n_pending == 0 && s->socks.nlisteners == 0))
		return 0;
	wfpb_core_enter(b);
	if (s->checked_gen != b->policy_gen) {
		s->checked_gen = b->policy_gen;
		rc = wfpb__dispatch_recheck(s, now_ms);
	}
	wfpb_core_leave(b);
	if (rc < 0)
		return end_for(s, "the broker could not queue its answer", rc);
	return rc;
}

enum wfpb_sweep
wfpb_session_sweep(struct wfpb_session *s, uint64_t now_ms)
{
	int rc = recheck(s, now_ms);

	if (rc < 0)
		return WFPB_SWEEP_CLOSE;
	if (now_ms < wfpb_session_deadline(s))
		return rc > 0 ? WFPB_SWEEP_FLUSH : WFPB_SWEEP_KEEP;
	/* Already closing and still not flushed by its deadline: it gets no more time. */
	if (s->closing || wfpb_session_expire(s, now_ms) == WFPB_E_LIMIT)
		return WFPB_SWEEP_CLOSE;
	return WFPB_SWEEP_FLUSH;
}

void
wfpb_session_free(struct wfpb_session *s)
{
	struct wfpb_listener	*l;
	struct wfpb_pending	*p;

	if (s == NULL)
		return;
	WFPB_CORE_OWNED(s->broker);
	wait_unlink(s);
	s->ending = 1;
	if (s->broker->stopping)
		wfpb_session_end_reason(s, "the broker stopped");
	/*
	 * Undo on disconnect: everything the session owned goes with it. A pending
	 * request ends where every one ends, which records what it had done.
	 */
	while ((p = s->pending) != NULL)
		if (wfpb__dispatch_resume(s, p, WFPB_RESUME_GONE, s->last_ms) == 0)
			abort();	/* every resume entry ends its request when the session goes */
	if (s->started)
		wfpb__dispatch_session_event(s, 0);
	free(s->watches);
	while ((l = s->socks.listeners) != NULL) {
		s->socks.listeners = l->next;
		wfpb__listener_free(s->broker, &s->socks, l);
	}
	close_in_fds(s);
	while (s->n_out > 0)
		wfpb__net_close(s->out_fds[--s->n_out].sock);
	free(s->out_fds);
	/* Answers never sent: their sockets never reached the client, and go now. */
	while (s->n_late > 0) {
		unsigned k;

		s->n_late--;
		for (k = 0; k < s->late[s->n_late].n; k++)
			wfpb__net_close(s->late[s->n_late].sock[k]);
		free(s->late[s->n_late].msg);
	}
	free(s->late);
	free(s->gates);
	wfpb_stash_release_session(&s->broker->stash, &s->stash_list);
	uncount(s);
	wfpb__admit_user_drop(s->broker, &s->user_slot);
	free(s->held);
	wfpb_channel_free(&s->ch);
	s->broker->sessions--;
	free(s);
}
