/* SPDX-License-Identifier: Apache-2.0 */
/* A request's scope, built from its session, and the services handlers ask of the session (scope.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "dispatch.h"
#include "scope.h"
#include "session.h"

static void
who(struct wfpb_scope *sc, const struct wfpb_session *s)
{
	sc->principal = s->principal;
	sc->policy = s->policy;
	sc->perms = s->perms;
	sc->max_stash = s->max_stash;
	sc->max_inflight = s->max_inflight;
}

void
wfpb__scope_init(struct wfpb_scope *sc, struct wfpb_session *s, unsigned perm)
{
	struct wfpb_broker *b = s->broker;

	who(sc, s);
	sc->id = &s->id;
	sc->cfg = &b->cfg;
	sc->stash = &b->stash;
	sc->stash_list = &s->stash_list;
	sc->backend = &b->backend;
	sc->audit = b->audit_on ? &b->audit : NULL;
	sc->socks = &s->socks;
	sc->version = s->version;
	sc->admin = (perm & WFPB_PERM_ADMIN) ? b : NULL;
	sc->session = s;
}

void
wfpb__scope_refresh(struct wfpb_scope *sc)
{
	wfpb_session_resolve(sc->session);
	who(sc, sc->session);
}

struct wfpb_usage *
wfpb__scope_usage(struct wfpb_scope *sc)
{
	return wfpb_broker_usage(sc->session->broker, sc->principal);
}

int
wfpb__scope_pull(struct wfpb_scope *sc, uint64_t handle, wfpb_sock *out, int *os_err)
{
	struct wfpb_session	*s = sc->session;
	int			rc;

	/* The connection's own lock still keeps this session to this thread meanwhile. */
	wfpb_core_leave(s->broker);
	rc = wfpb__net_pull(s->id.process, handle, out, os_err);
	wfpb_core_enter(s->broker);
	wfpb__scope_refresh(sc);
	return rc;
}

const struct wfpb_declared *
wfpb__scope_declared(const struct wfpb_scope *sc, const char *name)
{
	return wfpb_broker_declared(sc->session->broker, name);
}

void
wfpb__scope_handover_placeholder(const struct wfpb_scope *sc, uint8_t *out, size_t len, unsigned index)
{
	memset(out, 0, len);
	memcpy(out, sc->session->broker->handover_mark, WFPB_HANDOVER_MARK_LEN);
	out[WFPB_HANDOVER_MARK_LEN] = (uint8_t)index;
}

int
wfpb__scope_hold(struct wfpb_scope *sc, wfpb_sock sock)
{
	struct wfpb_session *s = sc->session;

	if (s->socks.n_in >= WFPB_SESSION_FDS_MAX || s->closing) {
		wfpb__net_discard(sock);
		return -1;
	}
	s->socks.in_fds[s->socks.n_in++] = sock;
	return 0;
}

int
wfpb__scope_listener_admit(struct wfpb_scope *sc, struct wfpb_listener *l)
{
	return wfpb__admit_listener_take(sc->session->broker, sc->principal, l->owner);
}

void
wfpb__scope_listener_unadmit(struct wfpb_scope *sc, struct wfpb_listener *l)
{
	wfpb__admit_listener_drop(sc->session->broker, l->owner);
}

void
wfpb__scope_listener_add(struct wfpb_scope *sc, struct wfpb_listener *l)
{
	struct wfpb_broker *b = sc->session->broker;

	l->id = b->next_listener_id++;
	l->next = sc->socks->listeners;
	sc->socks->listeners = l;
	sc->socks->nlisteners++;
	b->listeners++;
}

int
wfpb__scope_listener_release(struct wfpb_scope *sc, uint64_t id, uint64_t now_ms)
{
	struct wfpb_session	*s = sc->session;
	struct wfpb_listener	**link, *l = wfpb__find_listener(&s->socks, id, &link);

	if (l == NULL)
		return WFPB_E_NOENT;
	/* Accepts waiting on it are answered first; a session that cannot queue their answers closes. */
	if (wfpb__dispatch_cancel(s, l->sock, now_ms) < 0) {
		s->closing = 1;
		wfpb_session_end_reason(s, "the broker could not queue its answer");
	}
	*link = l->next;
	wfpb__listener_free(s->broker, &s->socks, l);
	return 0;
}

int
wfpb__scope_cancel(struct wfpb_scope *sc, uint64_t request_id, uint64_t now_ms)
{
	struct wfpb_session	*s = sc->session;
	struct wfpb_pending	*p;
	int			rc;

	for (p = s->pending; p != NULL && p->request_id != request_id; p = p->next)
		;
	if (p == NULL)
		return WFPB_E_NOENT;
	rc = wfpb__dispatch_resume(s, p, WFPB_RESUME_ABORT, now_ms);
	return rc < 0 ? rc : 0;
}

struct wfpb_listener *
wfpb__find_listener(struct wfpb_socks *k, uint64_t id, struct wfpb_listener ***link)
{
	struct wfpb_listener **pp;

	for (pp = &k->listeners; *pp != NULL; pp = &(*pp)->next) {
		if ((*pp)->id == id) {
			if (link != NULL)
				*link = pp;
			return *pp;
		}
	}
	return NULL;
}

void
wfpb__listener_free(struct wfpb_broker *b, struct wfpb_socks *k, struct wfpb_listener *l)
{
	wfpb__net_close(l->sock);
	if (l->declared == NULL)	/* a declared listener's handle is in no principal's budget */
		wfpb__admit_listener_drop(b, l->owner);
	k->nlisteners--;
	b->listeners--;
	free(l);
}
