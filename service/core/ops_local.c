/* SPDX-License-Identifier: Apache-2.0 */
/* The operations that touch no socket: Ping, Stash, Fetch, Release, Status, Reload (dispatch_int.h). */
/* Handlers see their request's scope, never its session (scope.h): session.h refuses to be included. */
#define WFPB_HANDLERS_ONLY
#include "dispatch_int.h"

int
wfpb__validate_ping(const struct wfpb_limits *lim, const Request *rq, union wfpb_req *r, struct outcome *o)
{
	const Wfpbroker__V1__PingRequest *p = rq->ping;

	(void)lim;
	if (p->payload.len > PING_PAYLOAD_MAX)
		return BAD(o, "ping.payload: longer than %u bytes", PING_PAYLOAD_MAX);
	r->ping.payload = p->payload.data;
	r->ping.len = p->payload.len;
	return 0;
}

int
wfpb__validate_lifetime(Wfpbroker__V1__Lifetime l, const char *field, int *lifetime, struct outcome *o)
{
	switch (l) {
	case WFPBROKER__V1__LIFETIME__SESSION:
		*lifetime = LIFETIME_SESSION;
		return 0;
	case WFPBROKER__V1__LIFETIME__PRINCIPAL:
		*lifetime = LIFETIME_PRINCIPAL;
		return 0;
	case WFPBROKER__V1__LIFETIME__ONCE:
		*lifetime = LIFETIME_ONCE;
		return 0;
	default:
		return BAD(o, "%s: unknown lifetime %d", field, (int)l);
	}
}

int
wfpb__validate_stash(const struct wfpb_limits *lim, const Request *rq, union wfpb_req *r, struct outcome *o)
{
	const Wfpbroker__V1__StashRequest *p = rq->stash;

	if (p->blob.len == 0)
		return BAD(o, "stash.blob: empty");
	if (p->blob.len > lim->blob_max)
		return BAD(o, "stash.blob: %zu bytes, the limit is %u", p->blob.len, lim->blob_max);
	r->stash.blob = p->blob.data;
	r->stash.len = p->blob.len;
	return wfpb__validate_lifetime(p->lifetime, "stash.lifetime", &r->stash.lifetime, o);
}

int
wfpb__validate_handle(const Wfpbroker__V1__StashHandle *h, const char *field, const uint8_t **id, struct outcome *o)
{
	if (h == NULL)
		return BAD(o, "%s: missing", field);
	if (h->id.len != WFPB_STASH_ID_LEN)
		return BAD(o, "%s.id: %zu bytes, a handle is %u", field, h->id.len, WFPB_STASH_ID_LEN);
	*id = h->id.data;
	return 0;
}

int
wfpb__validate_fetch(const struct wfpb_limits *lim, const Request *rq, union wfpb_req *r, struct outcome *o)
{
	(void)lim;
	return wfpb__validate_handle(rq->fetch->handle, "fetch.handle", &r->fetch.id, o);
}

int
wfpb__validate_release(const struct wfpb_limits *lim, const Request *rq, union wfpb_req *r, struct outcome *o)
{
	const Wfpbroker__V1__ReleaseRequest *p = rq->release;

	(void)lim;
	switch (p->target_case) {
	case WFPBROKER__V1__RELEASE_REQUEST__TARGET_HANDLE:
		r->release.is_listener = 0;
		return wfpb__validate_handle(p->handle, "release.handle", &r->release.id, o);
	case WFPBROKER__V1__RELEASE_REQUEST__TARGET_LISTENER_ID:
		/* As in Accept: ids start at 1, and 0 is what a client that forgot to set one sends. */
		if (p->listener_id == 0)
			return BAD(o, "release.listener_id: missing");
		r->release.is_listener = 1;
		r->release.listener_id = p->listener_id;
		return 0;
	default:
		return BAD(o, "release: neither handle nor listener_id set");
	}
}

int
wfpb__validate_empty(const struct wfpb_limits *lim, const Request *rq, union wfpb_req *r, struct outcome *o)
{
	(void)lim;
	(void)rq;
	(void)r;
	(void)o;
	return 0;
}

void
wfpb__op_ping(struct wfpb_scope *sc, const union wfpb_req *r, struct reply *rp, struct outcome *o, uint64_t now_ms)
{
	(void)o;
	(void)now_ms;
	wfpbroker__v1__ping_response__init(&rp->ping);
	rp->ping.payload.data = (uint8_t *)(uintptr_t)r->ping.payload;
	rp->ping.payload.len = r->ping.len;
	rp->ping.protocol_version = sc->version;
	rp->ping.max_inflight = sc->max_inflight;
	rp->ping.service_version = (char *)(uintptr_t)WFPB_SERVICE_VERSION;
	rp->resp.result_case = WFPBROKER__V1__RESPONSE__RESULT_PING;
	rp->resp.ping = &rp->ping;
}

/*
 * Stashes blob under the session's principal, within its quota: Stash itself,
 * and the records Accept and QueryRecords read. Fills rp->handle and names the
 * entry's hash (computed once, by the stash) in the audit record. 0, or -1
 * with the outcome set; `what` names the operation and `full` what its
 * refusal means for the caller.
 */
int
wfpb__stash_blob(struct wfpb_scope *sc, const uint8_t *blob, size_t len, int queried, int lifetime,
    struct reply *rp, struct outcome *o, const char *what, const char *full, uint64_t now_ms)
{
	struct wfpb_usage		*u = wfpb__scope_usage(sc);
	const struct wfpb_stash_entry	*e;

	if (u == NULL) {
		wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__INTERNAL, "%s: out of memory", what);
		return -1;
	}
	if (u->stash >= sc->max_stash) {
		wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__QUOTA, "%s: principal %s holds %u entries, its limit%s",
		    what, sc->principal, u->stash, full);
		return -1;
	}
	/* Records a backend read are bounded like a client's blob: every stash entry fits blob_max. */
	if (len > sc->cfg->blob_max) {
		wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__ENOBUFS,
		    "%s: %zu bytes of records, more than blob_max (%u)",
		    what, len, sc->cfg->blob_max);
		return -1;
	}
	if (wfpb_stash_put(sc->stash, sc->principal, lifetime == LIFETIME_PRINCIPAL ? NULL : sc->stash_list, blob, len,
	    (queried ? WFPB_STASH_QUERIED : 0u) | (lifetime == LIFETIME_ONCE ? WFPB_STASH_ONCE : 0u),
	    now_ms + sc->cfg->stash_ttl_ms, rp->handle_id, &e) != 0) {
		wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__INTERNAL, "%s: out of memory", what);
		return -1;
	}
	u->stash++;
	wfpb__audit_blob(rp, blob, len, e->hash);
	wfpbroker__v1__stash_handle__init(&rp->handle);
	rp->handle.id.data = rp->handle_id;
	rp->handle.id.len = WFPB_STASH_ID_LEN;
	return 0;
}

void
wfpb__op_stash(struct wfpb_scope *sc, const union wfpb_req *r, struct reply *rp, struct outcome *o, uint64_t now_ms)
{
	if (wfpb__stash_blob(sc, r->stash.blob, r->stash.len, 0, r->stash.lifetime, rp, o, "stash", "",
	    now_ms) != 0)
		return;
	wfpbroker__v1__stash_response__init(&rp->stash);
	rp->stash.handle = &rp->handle;
	rp->resp.result_case = WFPBROKER__V1__RESPONSE__RESULT_STASH;
	rp->resp.stash = &rp->stash;
}

void
wfpb__op_fetch(struct wfpb_scope *sc, const union wfpb_req *r, struct reply *rp, struct outcome *o, uint64_t now_ms)
{
	const struct wfpb_stash_entry *e = wfpb_stash_get(sc->stash, r->fetch.id, sc->principal, now_ms);

	if (e == NULL) {
		wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__NOT_FOUND, "fetch: no such handle for principal %s",
		    sc->principal);
		return;
	}
	wfpb__audit_blob(rp, e->blob, e->len, e->hash);
	wfpbroker__v1__fetch_response__init(&rp->fetch);
	rp->fetch.blob.data = e->blob;
	rp->fetch.blob.len = e->len;
	rp->resp.result_case = WFPBROKER__V1__RESPONSE__RESULT_FETCH;
	rp->resp.fetch = &rp->fetch;
}

void
wfpb__op_release(struct wfpb_scope *sc, const union wfpb_req *r, struct reply *rp, struct outcome *o,
    uint64_t now_ms)
{
	int rc;

	rc = r->release.is_listener ? wfpb__scope_listener_release(sc, r->release.listener_id, now_ms) :
	    wfpb_stash_release(sc->stash, r->release.id, sc->principal);
	if (rc != 0) {
		wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__NOT_FOUND, "release: no such %s for principal %s",
		    r->release.is_listener ? "listener" : "handle", sc->principal);
		return;
	}
	wfpbroker__v1__release_response__init(&rp->release);
	rp->resp.result_case = WFPBROKER__V1__RESPONSE__RESULT_RELEASE;
	rp->resp.release = &rp->release;
}

void
wfpb__op_status(struct wfpb_scope *sc, const union wfpb_req *r, struct reply *rp, struct outcome *o, uint64_t now_ms)
{
	struct wfpb_broker *b = sc->admin;

	(void)r;
	(void)o;
	wfpbroker__v1__status_response__init(&rp->status);
	rp->status.sessions = b->sessions;
	rp->status.requests = b->n.requests;
	rp->status.denials = b->n.denials;
	rp->status.stash_entries = (uint32_t)b->stash.count;
	rp->status.stash_bytes = b->stash.bytes;
	rp->status.listeners = b->listeners;
	rp->status.requests_in_flight = b->inflight;
	rp->status.backend = b->cfg.backend;
	rp->status.uptime_ms = now_ms - b->start_ms;
	rp->status.records_applied = b->backend.ops->records_applied(b->backend.ctx);
	{
		int k;

		for (k = 0; k < WFPB_EVENT_MAX; k++)
			rp->status.events_reported += wfpb_events_reported[k];
	}
	wfpb__process_usage(&rp->status.rss_bytes, &rp->status.open_handles);
	rp->status.workers = b->workers;
	rp->status.pid = wfpb__process_id();
	if (b->audit_on) {
		rp->status.audit_durable_seq = b->audit.durable_seq;
		rp->status.audit_commits = b->audit.commits;
		rp->status.audit_max_batch = b->audit.max_batch;
		rp->status.audit_broken = b->audit.broken;
		rp->status.audit_lost = b->audit.dropped;
	}
	rp->resp.result_case = WFPBROKER__V1__RESPONSE__RESULT_STATUS_RESULT;
	rp->resp.status_result = &rp->status;
}

void
wfpb__op_reload(struct wfpb_scope *sc, const union wfpb_req *r, struct reply *rp, struct outcome *o, uint64_t now_ms)
{
	struct wfpb_ini_error	err;
	int			rc;

	(void)r;
	(void)now_ms;
	if ((rc = wfpb_broker_reload_file(sc->admin, &err)) != 0) {
		if (err.line > 0)
			wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__EINVAL, "reload: line %u: %s; old policy kept",
			    err.line, err.message);
		else
			wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__EINVAL, "reload: %s; old policy kept",
			    err.message);
		return;
	}
	wfpbroker__v1__reload_response__init(&rp->reload);
	rp->reload.principals = (uint32_t)sc->admin->cfg.nprincipals;
	rp->resp.result_case = WFPBROKER__V1__RESPONSE__RESULT_RELOAD;
	rp->resp.reload = &rp->reload;
}

int
wfpb__validate_cancel(const struct wfpb_limits *lim, const Request *rq, union wfpb_req *r, struct outcome *o)
{
	(void)lim;
	if (rq->cancel->request_id == 0)
		return BAD(o, "cancel.request_id: missing");
	r->cancel.request_id = rq->cancel->request_id;
	return 0;
}

/* Cancel: the session's own waiting request ends, answered CANCELLED before this is answered OK. */
void
wfpb__op_cancel(struct wfpb_scope *sc, const union wfpb_req *r, struct reply *rp, struct outcome *o, uint64_t now_ms)
{
	int rc = wfpb__scope_cancel(sc, r->cancel.request_id, now_ms);

	if (rc == WFPB_E_NOENT) {
		wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__NOT_FOUND, "cancel: no request %llu of this session waits",
		    (unsigned long long)r->cancel.request_id);
		return;
	}
	if (rc != 0) {
		wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__INTERNAL, "cancel: its answer could not be queued");
		return;
	}
	wfpbroker__v1__cancel_response__init(&rp->cancel);
	rp->resp.result_case = WFPBROKER__V1__RESPONSE__RESULT_CANCEL;
	rp->resp.cancel = &rp->cancel;
}
