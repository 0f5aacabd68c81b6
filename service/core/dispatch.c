/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The operation table and the request path: decode, validate into a C
 * struct, check permission, run the handler, encode the Response. Handlers
 * never see raw protobuf.
 */
#include "dispatch_int.h"
#include "session.h"

void
wfpb__outcome(struct outcome *o, Wfpbroker__V1__StatusCode code, const char *fmt, ...)
{
	va_list ap;

	o->code = code;
	va_start(ap, fmt);
	vsnprintf(o->message, sizeof(o->message), fmt, ap);
	va_end(ap);
}

/*
 * One row per operation: what it needs, how its request is validated, what
 * does it and, for one that may wait, what takes it up again.
 */
#define R(op)	WFPBROKER__V1__REQUEST__OP_##op
static const struct wfpb_op ops[] = {
	/*
	 * An op with a pending kind may wait; the session holds at most max_inflight of those, and
	 * one more is QUOTA. The others are answered at once and are never refused for it.
	 */
	{ R(PING), "ping", 0, 0, wfpb__validate_ping, wfpb__op_ping, 0, NULL },
	/* TCP needs listen, UDP udp_listen: the handler checks the one its protocol needs. */
	{ R(LISTEN), "listen", 0, NEEDS_PRINCIPAL | DURABLE, wfpb__validate_listen, wfpb__op_listen, 0, NULL },
	{ R(ACCEPT), "accept", WFPB_PERM_ACCEPT, NEEDS_PRINCIPAL | DURABLE, wfpb__validate_accept, wfpb__op_accept,
	    WFPB_PENDING_ACCEPT, wfpb__resume_accept },
	{ R(CONNECT), "connect", WFPB_PERM_CONNECT, NEEDS_PRINCIPAL | DURABLE, wfpb__validate_connect, wfpb__op_connect,
	    WFPB_PENDING_CONNECT, wfpb__resume_connect },
	{ R(QUERY_RECORDS), "query_records", WFPB_PERM_QUERY, NEEDS_PRINCIPAL | DURABLE, wfpb__validate_query,
	    wfpb__op_query, 0, NULL },
	{ R(APPLY_RECORDS), "apply_records", WFPB_PERM_APPLY, NEEDS_PRINCIPAL | DURABLE, wfpb__validate_apply,
	    wfpb__op_apply, WFPB_PENDING_APPLY, wfpb__resume_apply },
	{ R(PREPARE), "prepare", WFPB_PERM_PREPARE, NEEDS_PRINCIPAL | DURABLE, wfpb__validate_prepare, wfpb__op_prepare,
	    0, NULL },
	/* Accept and Connect in one: both grants. */
	{ R(RELAY), "relay", WFPB_PERM_ACCEPT | WFPB_PERM_CONNECT, NEEDS_PRINCIPAL | DURABLE, wfpb__validate_relay,
	    wfpb__op_relay, WFPB_PENDING_RELAY, wfpb__resume_relay },
	{ R(FLOW), "flow", WFPB_PERM_UDP_FLOW, NEEDS_PRINCIPAL | DURABLE, wfpb__validate_flow, wfpb__op_flow,
	    WFPB_PENDING_FLOW, wfpb__resume_flow },
	/* A session may always cancel its own waiting requests: what it asks of no one else needs no grant. */
	{ R(CANCEL), "cancel", 0, 0, wfpb__validate_cancel, wfpb__op_cancel, 0, NULL },
	{ R(STASH), "stash", WFPB_PERM_STASH, NEEDS_PRINCIPAL, wfpb__validate_stash, wfpb__op_stash, 0, NULL },
	{ R(FETCH), "fetch", WFPB_PERM_FETCH, NEEDS_PRINCIPAL, wfpb__validate_fetch, wfpb__op_fetch, 0, NULL },
	{ R(RELEASE), "release", 0, NEEDS_PRINCIPAL, wfpb__validate_release, wfpb__op_release, 0, NULL },
	{ R(STATUS), "status", WFPB_PERM_ADMIN, NEEDS_PRINCIPAL, wfpb__validate_empty, wfpb__op_status, 0, NULL },
	{ R(RELOAD), "reload", WFPB_PERM_ADMIN, NEEDS_PRINCIPAL | DURABLE, wfpb__validate_empty, wfpb__op_reload, 0,
	    NULL },
};
#undef R

static const struct wfpb_op *
find_op(Wfpbroker__V1__Request__OpCase op)
{
	size_t i;

	for (i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		if (ops[i].op == op)
			return &ops[i];
	return NULL;
}

/* Policy gate: 0 when the session may run op, else fills o (fail closed). */
static int
authorize(struct wfpb_session *s, const struct wfpb_op *op, struct outcome *o)
{
	if (op->perm == 0 && !(op->flags & NEEDS_PRINCIPAL))
		return 0;
	if (!s->id.known) {
		wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__DENIED, "%s: caller identity could not be read", op->name);
		return -1;
	}
	wfpb_session_resolve(s);
	if (s->principal[0] == '\0') {
		wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__DENIED, "%s: no principal matches user %s", op->name,
		    s->id.user);
		return -1;
	}
	if (s->over_limit) {
		wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__QUOTA, "%s: principal %s has reached its session limit",
		    op->name, s->principal);
		return -1;
	}
	if ((s->perms & op->perm) != op->perm) {
		wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__DENIED, "%s: not granted to principal %s", op->name,
		    s->principal);
		return -1;
	}
	/* No effect without its record: with the log unwritable, refuse rather than act unaudited. */
	if ((op->flags & DURABLE) && s->broker->audit_on && s->broker->audit.broken) {
		wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__UNAVAILABLE, "%s: the audit log cannot be written",
		    op->name);
		return -1;
	}
	return 0;
}

/* Closes the sockets an answer would have handed over. */
static void
close_attached(struct reply *rp)
{
	unsigned i;

	for (i = 0; i < rp->n_attach; i++)
		wfpb__net_close(rp->attach[i]);
	rp->n_attach = 0;
}

/* Packs and queues the Response for request_id; audits it; frees what the reply borrowed. */
static int
respond(struct wfpb_session *s, const struct wfpb_op *op, uint64_t request_id, struct reply *rp,
    struct outcome *o, uint64_t started_ms, uint64_t now_ms)
{
	Wfpbroker__V1__Status	st;
	uint8_t			*buf;
	size_t			n;
	int			rc;

	rp->resp.request_id = request_id;
	if (o->code == WFPBROKER__V1__STATUS_CODE__BAD_REQUEST)
		s->broker->n.bad_requests++;
	else if (o->code == WFPBROKER__V1__STATUS_CODE__DENIED) {
		s->broker->n.denials++;
		if (wfpb__admit_event_logged(s->broker, WFPB_EVENT_DENIAL, now_ms))
			wfpb_event(WFPB_EVENT_DENIAL, "user %s pid %u (%s): %s", s->id.user, (unsigned)s->id.pid,
			    s->principal[0] ? s->principal : "no principal", o->message);
	}
	if (o->backend && wfpb__admit_event_logged(s->broker, WFPB_EVENT_BACKEND, now_ms))
		wfpb_event(WFPB_EVENT_BACKEND, "%s (OS error %d)", o->message, (int)o->os_error);
	if (o->code != WFPBROKER__V1__STATUS_CODE__OK) {
		rp->resp.result_case = WFPBROKER__V1__RESPONSE__RESULT__NOT_SET;
		/* A failed operation hands nothing over. */
		close_attached(rp);
	}
	wfpbroker__v1__status__init(&st);
	st.code = o->code;
	st.message = o->message;
	st.os_error = o->os_error;
	rp->resp.status = &st;

	n = wfpbroker__v1__response__get_packed_size(&rp->resp);
	if (n > WFPB_CHANNEL_MSG_MAX) {
		/*
		 * Responses are bounded by construction (WFPB_REDIRECT_MAX); if one is
		 * not, the client gets a status, not a dead service, and nothing handed over.
		 */
		rp->resp.result_case = WFPBROKER__V1__RESPONSE__RESULT__NOT_SET;
		close_attached(rp);
		wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__ENOBUFS,
		    "%s: the answer would be %zu bytes, more than a frame",
		    op != NULL ? op->name : "request", n);
		st.code = o->code;
		st.message = o->message;
		st.os_error = 0;
		n = wfpbroker__v1__response__get_packed_size(&rp->resp);
	}
	if (s->ending) {
		/* The session is going: nothing is answered, and what would have been handed over is closed. */
		close_attached(rp);
		rc = 0;
	} else if ((buf = malloc(n ? n : 1)) == NULL) {
		close_attached(rp);
		rc = WFPB_E_NOMEM;
	} else {
		n = wfpbroker__v1__response__pack(&rp->resp, buf);
		rc = wfpb__session_send(s, buf, n, rp->attach, rp->n_attach, request_id);
		free(buf);
	}
	if (!rp->audited)
		wfpb__audit_request(s, op, request_id, rp, o, started_ms, now_ms);
	free(rp->records.data);
	free(rp->context.data);
	free(rp->payload.data);
	return rc;
}

static void
reply_init(struct reply *rp)
{
	memset(rp, 0, sizeof(*rp));
	wfpbroker__v1__response__init(&rp->resp);
	rp->pend.watch = rp->pend.sock = rp->pend.accepted = WFPB_SOCK_NONE;
}

/*
 * Every request that will be a record of its own takes a token of its
 * identity's audit budget (admit.h); 0 with o set to QUOTA when there is none.
 */
static int
audit_budget(struct wfpb_session *s, const struct wfpb_op *op, struct reply *rp, struct outcome *o, uint64_t now_ms)
{
	if (!s->broker->audit_on)
		return 1;
	if (!s->resolved && s->id.known && wfpb_channel_established(&s->ch))
		wfpb_session_resolve(s);
	if (wfpb_admit_summarised(s, (op->flags & DURABLE) != 0) || wfpb_admit_audit_token(s, now_ms))
		return 1;
	wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__QUOTA, "%s: user %s is over its audited requests per second",
	    op->name, s->id.user);
	rp->rate_limited = 1;
	return 0;
}

#define OP_FIELD_FIRST	10u	/* Request's op oneof starts here; fields below are the request's own */

/*
 * The field number of an op a newer protocol added, which this broker's Request
 * does not know (protobuf-c keeps it among the unknown fields): the first
 * unknown field at OP_FIELD_FIRST or above, or 0.
 */
static unsigned
unknown_op(const Wfpbroker__V1__Request *rq)
{
	unsigned i;

	for (i = 0; i < rq->base.n_unknown_fields; i++)
		if (rq->base.unknown_fields[i].tag >= OP_FIELD_FIRST)
			return rq->base.unknown_fields[i].tag;
	return 0;
}

/*
 * A request that will be a record of its own is refused while the log's queue
 * cannot take one more (it cannot be written and records pile up): no request
 * of a principal is answered OK unrecorded. 1 to go on, 0 with o UNAVAILABLE.
 */
static int
audit_room(struct wfpb_session *s, const struct wfpb_op *op, struct outcome *o)
{
	struct wfpb_broker	*b = s->broker;
	/* The last of the queue is an administrator's: Status still says what is wrong. */
	size_t			reserve = op->perm == WFPB_PERM_ADMIN ? 0 : WFPB_AUDIT_ADMIN_RESERVE;

	if (!b->audit_on || wfpb_admit_summarised(s, (op->flags & DURABLE) != 0) || wfpb_audit_has_room(&b->audit, reserve))
		return 1;
	wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__UNAVAILABLE,
	    "%s: the audit log cannot be written and holds all the records it can; nothing done", op->name);
	return 0;
}

/*
 * The handler left its request pending: it joins the session's, its socket
 * watched. An ApplyRecords is recorded now, before its effect, and waits for
 * the record like a durable answer. 0, or WFPB_E_NOMEM with what the request
 * held released (its answer is then INTERNAL).
 */
static int
pend(struct wfpb_session *s, const struct wfpb_op *op, uint64_t request_id, struct reply *rp, uint64_t now_ms)
{
	struct outcome		intent = OUTCOME_OK;
	struct wfpb_pending	*p;

	if ((p = malloc(sizeof(*p))) == NULL) {
		wfpb__pending_release(&rp->pend);
		return WFPB_E_NOMEM;
	}
	*p = rp->pend;
	p->request_id = request_id;
	if (wfpb__session_pending_add(s, p) != 0) {
		wfpb__pending_free(p);
		return WFPB_E_NOMEM;
	}
	if (p->kind == WFPB_PENDING_APPLY) {
		/* Records of Lifetime ONCE are this request's until it applies them or fails. */
		if (p->has_handle)
			(void)wfpb_stash_take(&s->broker->stash, p->handle, s->principal, 1);
		wfpb__session_gate_here(s);	/* its answer comes later; what is queued now need not wait */
		wfpb__outcome(&intent, WFPBROKER__V1__STATUS_CODE__OK, "apply_records: recorded before the records are set");
		p->audit_seq = wfpb__audit_request(s, op, request_id, rp, &intent, now_ms, now_ms);
	}
	return 0;
}

/*
 * Requests are unpacked, handled and freed within wfpb_dispatch, one arena
 * per thread: a pull of a client's handle gives the core lock up for its
 * wait, and another worker may dispatch meanwhile.
 */
static _Thread_local struct pb_arena	request_arena;

int
wfpb_dispatch(struct wfpb_session *s, const uint8_t *msg, size_t len, uint64_t now_ms)
{
	ProtobufCAllocator	*alloc = pb_arena_allocator(&request_arena);
	size_t			mark = pb_arena_mark(&request_arena);
	Request			*rq;
	struct reply		rp;
	struct outcome		o = OUTCOME_OK;
	const struct wfpb_op	*op = NULL;
	union wfpb_req		r;
	uint64_t		request_id = 0;
	struct wfpb_limits	lim = { s->broker->cfg.blob_max, s->socks.n_in };
	struct wfpb_scope	sc;
	unsigned		unknown;
	int			rc;

	WFPB_CORE_OWNED(s->broker);
	reply_init(&rp);
	s->broker->n.requests++;
	rq = wfpbroker__v1__request__unpack(alloc, len, msg);
	if (rq == NULL) {
		wfpb__outcome(&o, WFPBROKER__V1__STATUS_CODE__BAD_REQUEST, "request: not a valid Request message");
	} else {
		request_id = rq->request_id;
		if (rq->op_case == WFPBROKER__V1__REQUEST__OP__NOT_SET && (unknown = unknown_op(rq)) != 0)
			wfpb__outcome(&o, WFPBROKER__V1__STATUS_CODE__EOPNOTSUPP, "request: operation field %u is not "
			    "one this broker implements", unknown);
		else if (rq->op_case == WFPBROKER__V1__REQUEST__OP__NOT_SET)
			wfpb__outcome(&o, WFPBROKER__V1__STATUS_CODE__BAD_REQUEST, "request: no operation set");
		else if ((op = find_op(rq->op_case)) == NULL)
			wfpb__outcome(&o, WFPBROKER__V1__STATUS_CODE__EOPNOTSUPP,
			    "operation %d is not available in this broker", (int)rq->op_case);
		else if (op->pending != 0 && s->n_pending >= s->max_inflight)
			wfpb__outcome(&o, WFPBROKER__V1__STATUS_CODE__QUOTA,
			    "%s: %u requests of this session are in flight, the most it may have (max_inflight)",
			    op->name, s->n_pending);
		else if (!audit_budget(s, op, &rp, &o, now_ms))
			;	/* refused QUOTA: this identity's audited requests are over its rate */
		else if (!audit_room(s, op, &o))
			;	/* refused UNAVAILABLE: its record could not be kept */
		else if (authorize(s, op, &o) == 0 && op->validate(&lim, rq, &r, &o) == 0) {
			wfpb__scope_init(&sc, s, op->perm);
			op->handle(&sc, &r, &rp, &o, now_ms);
		}
	}
	if (o.code == OUTCOME_PENDING && (rc = pend(s, op, request_id, &rp, now_ms)) == 0) {
		;	/* answered when it completes */
	} else {
		if (o.code == OUTCOME_PENDING)
			wfpb__outcome(&o, WFPBROKER__V1__STATUS_CODE__INTERNAL, "%s: out of memory", op->name);
		/* The reply may point into the request (Ping's echo): pack before freeing it. */
		rc = respond(s, op, request_id, &rp, &o, now_ms, now_ms);
	}
	if (rq != NULL)
		wfpbroker__v1__request__free_unpacked(rq, alloc);
	pb_arena_release(&request_arena, mark);
	return rc;
}

/* Records named by a valid request: a handle, or a blob within the limit. */
static int
records_bounded(const struct wfpb_limits *lim, const struct req_records *rr)
{
	return rr->handle != NULL ? rr->blob == NULL : rr->len <= lim->blob_max;
}

static int
sock_bounded(const struct wfpb_limits *lim, const struct req_sock *rs)
{
	return rs->by_handle || rs->fd < lim->n_fds;
}

static int
lifetime_bounded(int l)
{
	return l == LIFETIME_SESSION || l == LIFETIME_PRINCIPAL || l == LIFETIME_ONCE;
}

/* What each validator promises about what it accepted. */
static int
bounded(const struct wfpb_limits *lim, Wfpbroker__V1__Request__OpCase op, const union wfpb_req *r)
{
	switch (op) {
	case WFPBROKER__V1__REQUEST__OP_PING:
		return r->ping.len <= PING_PAYLOAD_MAX;
	case WFPBROKER__V1__REQUEST__OP_STASH:
		return r->stash.len >= 1 && r->stash.len <= lim->blob_max && lifetime_bounded(r->stash.lifetime);
	case WFPBROKER__V1__REQUEST__OP_FETCH:
		return r->fetch.id != NULL;
	case WFPBROKER__V1__REQUEST__OP_RELEASE:
		return r->release.is_listener ? r->release.listener_id != 0 : r->release.id != NULL;
	case WFPBROKER__V1__REQUEST__OP_LISTEN:
		return r->listen.backlog >= 1 && (unsigned)r->listen.backlog <= BACKLOG_MAX &&
		    (r->listen.local.family == WFPB_AF_INET || r->listen.local.family == WFPB_AF_INET6);
	case WFPBROKER__V1__REQUEST__OP_ACCEPT:
		/* One listener: the session's by id, or a declared one by a name that fits. */
		return (r->accept.listener != NULL ? r->accept.listener_id == 0 &&
		    strlen(r->accept.listener) < WFPB_NAME_MAX : r->accept.listener_id != 0) && r->accept.timeout_ms >= 1 &&
		    (r->accept.timeout_ms <= ACCEPT_TIMEOUT_MAX || r->accept.timeout_ms == WAIT_FOREVER) &&
		    lifetime_bounded(r->accept.lifetime);
	case WFPBROKER__V1__REQUEST__OP_CONNECT:
		return records_bounded(lim, &r->connect.records) && !wfpb_addr_unspecified(&r->connect.remote) &&
		    (r->connect.local.family == 0 || r->connect.local.family == r->connect.remote.family) &&
		    r->connect.timeout_ms >= 1 && r->connect.timeout_ms <= CONNECT_TIMEOUT_MAX;
	case WFPBROKER__V1__REQUEST__OP_QUERY_RECORDS:
		return sock_bounded(lim, &r->query.sock) && lifetime_bounded(r->query.lifetime);
	case WFPBROKER__V1__REQUEST__OP_APPLY_RECORDS:
		return sock_bounded(lim, &r->apply.sock) && records_bounded(lim, &r->apply.records);
	case WFPBROKER__V1__REQUEST__OP_RELAY:
		return (r->relay.accept.listener != NULL ? r->relay.accept.listener_id == 0 &&
		    strlen(r->relay.accept.listener) < WFPB_NAME_MAX : r->relay.accept.listener_id != 0) &&
		    r->relay.accept.timeout_ms >= 1 && (r->relay.accept.timeout_ms <= ACCEPT_TIMEOUT_MAX ||
		    r->relay.accept.timeout_ms == WAIT_FOREVER) &&
		    (r->relay.remote.family == 0 || !wfpb_addr_unspecified(&r->relay.remote)) &&
		    (r->relay.local.family == 0 || r->relay.remote.family == 0 ||
		    r->relay.local.family == r->relay.remote.family) &&
		    r->relay.connect_timeout_ms >= 1 && r->relay.connect_timeout_ms <= CONNECT_TIMEOUT_MAX;
	case WFPBROKER__V1__REQUEST__OP_CANCEL:
		return r->cancel.request_id != 0;
	case WFPBROKER__V1__REQUEST__OP_FLOW:
		return r->flow.listener_id != 0 && r->flow.timeout_ms >= 1 && (r->flow.timeout_ms <= ACCEPT_TIMEOUT_MAX ||
		    r->flow.timeout_ms == WAIT_FOREVER) &&
		    (r->flow.remote.family == 0 || !wfpb_addr_unspecified(&r->flow.remote));
	case WFPBROKER__V1__REQUEST__OP_PREPARE:
		return records_bounded(lim, &r->prepare.records) &&
		    (r->prepare.family == WFPB_AF_INET || r->prepare.family == WFPB_AF_INET6) &&
		    (r->prepare.local.family == 0 || r->prepare.local.family == r->prepare.family);
	default:
		return 1;
	}
}

int
wfpb__validate_message(const struct wfpb_limits *lim, const uint8_t *msg, size_t len)
{
	ProtobufCAllocator	*alloc = pb_arena_allocator(&request_arena);
	size_t			mark = pb_arena_mark(&request_arena);
	struct outcome		o = OUTCOME_OK;
	const struct wfpb_op	*op;
	union wfpb_req		r;
	Request			*rq;
	int			code;

	if ((rq = wfpbroker__v1__request__unpack(alloc, len, msg)) == NULL)
		code = WFPBROKER__V1__STATUS_CODE__BAD_REQUEST;
	else if ((op = find_op(rq->op_case)) == NULL)
		code = rq->op_case == WFPBROKER__V1__REQUEST__OP__NOT_SET ? WFPBROKER__V1__STATUS_CODE__BAD_REQUEST :
		    WFPBROKER__V1__STATUS_CODE__EOPNOTSUPP;
	else if (op->validate(lim, rq, &r, &o) != 0)
		code = o.code == WFPBROKER__V1__STATUS_CODE__OK ? -1 : (int)o.code;	/* refused without a status */
	else
		code = bounded(lim, rq->op_case, &r) ? 0 : -1;
	if (rq != NULL)
		wfpbroker__v1__request__free_unpacked(rq, alloc);
	pb_arena_release(&request_arena, mark);
	return code;
}

/* The pending request's own resume entry (the op table's), then its answer. */
int
wfpb__dispatch_resume(struct wfpb_session *s, struct wfpb_pending *p, int why, uint64_t now_ms)
{
	const struct wfpb_op	*op = NULL;
	struct reply		rp;
	struct outcome		o = OUTCOME_OK;
	struct wfpb_scope	sc;
	size_t			i;
	int			rc;

	WFPB_CORE_OWNED(s->broker);
	for (i = 0; i < sizeof(ops) / sizeof(ops[0]) && op == NULL; i++)
		if (ops[i].pending == p->kind && ops[i].resume != NULL)
			op = &ops[i];
	if (op == NULL)
		return WFPB_E_STATE;
	reply_init(&rp);
	wfpb__scope_init(&sc, s, op->perm);
	/*
	 * About to complete after a reload the sweep has not yet checked it against: only if the
	 * policy still allows it (without a reload since, the check would find what it found).
	 */
	if ((why == WFPB_RESUME_READY || why == WFPB_RESUME_POLL) && s->checked_gen != s->broker->policy_gen &&
	    !wfpb__pending_holds(&sc, p, NULL, 0))
		why = WFPB_RESUME_REVOKED;
	if ((rc = op->resume(&sc, p, &rp, &o, now_ms, why)) == 0)
		return 0;
	if (rc == WFPB_RESUME_REARMED) {
		/* It waits on something else now; without room to watch it, it fails and lets go of it. */
		if (wfpb__session_pending_rearm(s, p, &rp.pend) == 0)
			return 0;
		wfpb__pending_release(&rp.pend);
		wfpb__outcome(&o, WFPBROKER__V1__STATUS_CODE__INTERNAL, "%s: out of memory", op->name);
	}
	if (why == WFPB_RESUME_GONE && o.code == WFPBROKER__V1__STATUS_CODE__OK)
		abort();	/* a resume entry must not report success to a session that is gone */
	wfpb__session_pending_remove(s, p);
	/* The audit record of a failure may hash what the pending state held: it goes after the answer is built. */
	rc = respond(s, op, p->request_id, &rp, &o, p->started_ms, now_ms);
	/* Its socket went with the answer or was closed by the resume entry. */
	free(p->blob);
	free(p);
	return rc < 0 ? rc : 1;
}

int
wfpb__dispatch_recheck(struct wfpb_session *s, uint64_t now_ms)
{
	struct wfpb_pending	*p, *next;
	struct wfpb_listener	*l;
	struct wfpb_scope	sc;
	uint64_t		ids[WFPB_LISTENERS_MAX];
	unsigned		n = 0, i;
	int			rc = 0, changed = 0;

	WFPB_CORE_OWNED(s->broker);
	wfpb__scope_init(&sc, s, 0);
	for (p = s->pending; p != NULL && rc >= 0; p = next) {
		next = p->next;
		if (wfpb__pending_holds(&sc, p, NULL, 0))
			continue;
		rc = wfpb__dispatch_resume(s, p, WFPB_RESUME_REVOKED, now_ms);
		changed = 1;
	}
	if (rc < 0)
		return rc;
	/* Then the listeners the principal may no longer hold (nothing waits on them now). */
	wfpb__scope_refresh(&sc);
	for (l = s->socks.listeners; l != NULL && n < WFPB_LISTENERS_MAX; l = l->next)
		if (!wfpb__listener_holds(&sc, l))
			ids[n++] = l->id;
	for (i = 0; i < n; i++)
		(void)wfpb__scope_listener_release(&sc, ids[i], now_ms);
	return changed || n > 0;
}

int
wfpb__dispatch_cancel(struct wfpb_session *s, wfpb_sock sock, uint64_t now_ms)
{
	struct wfpb_pending	*p, *next;
	int			rc = 0;

	for (p = s->pending; p != NULL && rc >= 0; p = next) {
		next = p->next;
		if (p->watch == sock)
			rc = wfpb__dispatch_resume(s, p, WFPB_RESUME_CANCEL, now_ms);
	}
	return rc < 0 ? rc : 0;
}
