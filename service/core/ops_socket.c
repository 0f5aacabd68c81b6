/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The socket operations: Listen, Accept, Connect, QueryRecords, ApplyRecords,
 * Prepare, and the resume entries of those that wait (dispatch_int.h).
 */
/* Handlers see their request's scope, never its session (scope.h): session.h refuses to be included. */
#define WFPB_HANDLERS_ONLY
#include "dispatch_int.h"

static void finish_accept(struct wfpb_scope *, wfpb_sock, int, struct reply *, struct outcome *, uint64_t);

/* The principal's own mark from policy (netfilter), never from a request; 0 when it has none. */
static uint32_t
own_mark(const struct wfpb_scope *sc)
{
	return sc->policy != NULL && sc->policy->has_mark ? sc->policy->mark : 0;
}

/*
 * Resolves records to bytes: a stash entry this principal owns, the inline
 * blob, or none (NULL, 0). Provenance: records the broker queried itself
 * (Accept, QueryRecords) are applied for any principal with the op's grant;
 * bytes the client supplied (inline, or a Stash of its own) could be any
 * redirect state or mark, so only for a principal granted apply_foreign.
 */
static int
records_bytes(struct wfpb_scope *sc, const struct req_records *r, const char *what, const uint8_t **blob,
    size_t *len, const uint8_t **hash, struct reply *rp, struct outcome *o, uint64_t now_ms)
{
	const struct wfpb_stash_entry	*e = NULL;
	int				foreign;

	*hash = NULL;
	if (r->handle == NULL) {
		*blob = r->blob;
		*len = r->len;
		foreign = r->len > 0;
	} else if ((e = wfpb_stash_get(sc->stash, r->handle, sc->principal, now_ms)) == NULL) {
		wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__NOT_FOUND, "records: no such handle for principal %s",
		    sc->principal);
		return -1;
	} else if (e->taken) {
		/* Lifetime ONCE: the request that took them may still apply them; they are not for a second one. */
		wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__NOT_FOUND,
		    "records: the handle's records (Lifetime ONCE) are taken by a request still waiting");
		return -1;
	} else {
		*blob = e->blob;
		*len = e->len;
		*hash = e->hash;
		foreign = !e->queried;
		/* Records the broker queried carry their flow into this request's record. */
		rp->flow_id = e->flow_id;
		rp->orig_dst = e->orig_dst;
	}
	if (foreign && !(sc->perms & WFPB_PERM_APPLY_FOREIGN)) {
		wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__DENIED,
		    "%s: records %s were not queried by the broker, and "
		    "principal %s is not granted apply_foreign", what,
		    e != NULL ? "stashed by the client" : "sent inline",
		    sc->principal);
		return -1;
	}
	rp->records_foreign = foreign;	/* a waiting request keeps it: a reload may withdraw apply_foreign */
	return 0;
}

/*
 * Records of Lifetime ONCE go once a request has set them on a socket; until
 * then (a refusal, a backend error) they stay. Any pointer into the entry is
 * dead afterwards.
 */
static void
records_used(struct wfpb_scope *sc, const uint8_t *handle, uint64_t now_ms)
{
	const struct wfpb_stash_entry *e;

	if (handle != NULL && (e = wfpb_stash_get(sc->stash, handle, sc->principal, now_ms)) != NULL && e->once &&
	    wfpb_stash_release(sc->stash, handle, sc->principal) != 0)
		wfpb_log(WFPB_LOG_ERR, "a stash entry found a moment ago could not be released");
}

/* The record marks a principal may carry on (netfilter; policy, never the request). */
static uint32_t
mark_mask(const struct wfpb_scope *sc)
{
	return sc->policy != NULL ? sc->policy->mark_mask : 0;
}

/* The request's socket stays with a pending operation: it is no longer closed after the request. */
static void
take_request_socket(struct wfpb_scope *sc, wfpb_sock sock)
{
	unsigned i;

	for (i = 0; i < sc->socks->n_in; i++)
		if (sc->socks->in_fds[i] == sock)
			sc->socks->in_fds[i] = WFPB_SOCK_NONE;
}

/*
 * The client-owned socket a request names. One pulled by handle joins the
 * request's received descriptors, so it is closed after the request as they are.
 */
static int
request_socket(struct wfpb_scope *sc, const struct req_sock *r, unsigned perm, const char *what, wfpb_sock *out,
    struct outcome *o)
{
	int os_err = 0, rc, family;

	if (!r->by_handle) {
		/* Whatever a client sends is checked for what it is before any ioctl or sockopt touches it. */
		if (!wfpb__net_is_tcp(sc->socks->in_fds[r->fd], &family)) {
			wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__EINVAL,
			    "%s: descriptor %u is not a TCP socket of AF_INET or AF_INET6", what, r->fd);
			return -1;
		}
		*out = sc->socks->in_fds[r->fd];
		return 0;
	}
	/* The pull gives the core lock up (scope.h): a reload meanwhile may have withdrawn the grant. */
	rc = wfpb__scope_pull(sc, r->handle, out, &os_err);
	if (rc == 0 && !(sc->perms & perm)) {
		wfpb__net_close(*out);
		wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__DENIED, "%s: no longer granted to principal %s", what,
		    sc->principal[0] ? sc->principal : "(none)");
		return -1;
	}
	if (rc == 0 && !wfpb__net_is_tcp(*out, &family)) {
		wfpb__net_close(*out);
		wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__EINVAL,
		    "%s: handle %llu is not a TCP socket of AF_INET or AF_INET6", what, (unsigned long long)r->handle);
		return -1;
	}
	if (rc == WFPB_E_TIMEOUT) {
		wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__EINVAL,
		    "%s: handle %llu did not answer as a socket in time (a file with I/O pending?)", what,
		    (unsigned long long)r->handle);
		return -1;
	}
	if (rc == WFPB_E_LIMIT) {
		wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__UNAVAILABLE,
		    "%s: too many handles pulled earlier still do not answer; try later", what);
		return -1;
	}
	if (rc == WFPB_E_UNSUPPORTED) {
		wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__EOPNOTSUPP,
		    "%s: sockets by handle are a Windows transfer; send the descriptor with SCM_RIGHTS", what);
		return -1;
	}
	if (rc == WFPB_E_INVAL) {
		wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__EINVAL,
		    "%s: handle %llu is not a stream socket here (%s, error %d)",
		    what, (unsigned long long)r->handle, wfpb__net_strerror(os_err), os_err);
		return -1;
	}
	if (rc != 0) {
		wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__EINVAL,
		    "%s: cannot take handle %llu from process %u (error %d)", what, (unsigned long long)r->handle,
		    (unsigned)sc->id->pid, os_err);
		return -1;
	}
	if (wfpb__scope_hold(sc, *out) != 0) {
		wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__INTERNAL, "%s: no room to hold handle %llu", what,
		    (unsigned long long)r->handle);
		return -1;
	}
	return 0;
}

static int
in_ranges(const struct wfpb_range *r, unsigned n, const struct wfpb_addr *a)
{
	unsigned i;

	for (i = 0; i < n; i++)
		if (wfpb_range_contains(&r[i], a))
			return 1;
	return 0;
}

/*
 * A local address a Connect may bind as the broker: inside a bind range,
 * and a port below 1024 (which only a privileged process may bind) only
 * when the range names ports with numbers, not "*".
 */
static int
in_bind_ranges(const struct wfpb_principal *p, const struct wfpb_addr *a)
{
	unsigned i;

	for (i = 0; i < p->nbind; i++)
		if (wfpb_range_contains(&p->bind[i], a) && (a->port == 0 || a->port >= 1024 || !p->bind[i].any_port))
			return 1;
	return 0;
}

static void
os_outcome(struct outcome *o, const char *what, int os_err)
{
	wfpb__outcome(o, (Wfpbroker__V1__StatusCode)wfpb__net_status(os_err), "%s: %s", what,
	    wfpb__net_strerror(os_err));
	o->os_error = os_err;
}

static void
backend_outcome(struct outcome *o, const char *what, int code, int os_err)
{
	const ProtobufCEnumValue *v =
	    protobuf_c_enum_descriptor_get_value(&wfpbroker__v1__status_code__descriptor, code);

	if (code == WFPBROKER__V1__STATUS_CODE__ENOBUFS)
		wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__ENOBUFS, "%s: the redirect data is larger than %u bytes, "
		    "the limit", what, WFPB_REDIRECT_MAX);
	else
		wfpb__outcome(o, v != NULL ? (Wfpbroker__V1__StatusCode)code : WFPBROKER__V1__STATUS_CODE__INTERNAL,
		    "%s: the backend refused (%s)", what, v != NULL ? v->name : "unknown code");
	o->os_error = os_err;
	o->backend = 1;
}

/*
 * Hands sock to the client with the answer, as the answer's next socket (fd_index 0, then 1):
 * an SCM_RIGHTS attachment (POSIX), or WSAPROTOCOL_INFOW bytes for the client's pinned
 * process, filled when the frame is written (Windows). Either way the socket leaves only after
 * the answer's audit record is durable. Takes ownership of sock.
 */
static int
give_socket(struct wfpb_scope *sc, struct reply *rp, wfpb_sock sock, Wfpbroker__V1__SocketTransfer **field,
    struct outcome *o)
{
	size_t				len = wfpb__net_handover_len();
	unsigned			i = rp->n_attach;
	Wfpbroker__V1__SocketTransfer	*x = &rp->xfer[i < WFPB_ATTACH_MAX ? i : 0];

	if (i >= WFPB_ATTACH_MAX) {
		wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__INTERNAL, "socket hand-over: more than %u sockets",
		    WFPB_ATTACH_MAX);
		wfpb__net_close(sock);
		return -1;
	}
	wfpbroker__v1__socket_transfer__init(x);
	if (len == 0) {
		x->kind_case = WFPBROKER__V1__SOCKET_TRANSFER__KIND_FD_INDEX;
		x->fd_index = i;
	} else if (sc->id->process == 0 || len > sizeof(rp->handover[i]) || len <= WFPB_HANDOVER_MARK_LEN) {
		/* WSADuplicateSocketW names the target by PID; only a held handle to it makes that PID certain. */
		wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__UNAVAILABLE,
		    "socket hand-over: the broker holds no handle to the client's process");
		wfpb__net_close(sock);
		return -1;
	} else {
		/*
		 * A placeholder: the duplication into the client happens when the frame is
		 * written, after its audit record is durable (wfpb__session_send).
		 */
		wfpb__scope_handover_placeholder(sc, rp->handover[i], len, i);
		x->kind_case = WFPBROKER__V1__SOCKET_TRANSFER__KIND_WSA_PROTOCOL_INFO;
		x->wsa_protocol_info.data = rp->handover[i];
		x->wsa_protocol_info.len = len;
	}
	rp->attach[i] = sock;
	rp->n_attach = i + 1;
	*field = x;
	return 0;
}

/* A UDP listener: the backend's options (a transparent socket, its receive options), then bound. */
static int
udp_listen(struct wfpb_scope *sc, const struct wfpb_addr *local, wfpb_sock *out, struct wfpb_addr *bound,
    int *os_err)
{
	const struct wfpb_backend	*be = sc->backend;
	wfpb_sock			s;
	int				rc;

	if ((rc = wfpb__net_udp_socket(local->family, &s, os_err)) != 0)
		return rc;
	/*
	 * Shared with the flows' reply sockets where the broker makes them (sim binds them where
	 * the listener is); where a flow stays on the listener (wfp), shared with no one.
	 */
	if ((be->ops->udp_on_listener ? wfpb__net_exclusive(s, os_err) : wfpb__net_reuseaddr(s, os_err)) != 0 ||
	    be->ops->udp_listener(be->ctx, s, local->family, os_err) != 0 ||
	    wfpb__net_bind(s, local, os_err) != 0 || wfpb__net_addrs(s, NULL, bound, os_err) != 0) {
		wfpb__net_close(s);
		return WFPB_E_OS;
	}
	*out = s;
	return 0;
}

int
wfpb__validate_listen(const struct wfpb_limits *lim, const Request *rq, union wfpb_req *r, struct outcome *o)
{
	(void)lim;
	if (wfpb__addr_from_pb(rq->listen->local, "listen.local", 0, &r->listen.local, o) != 0)
		return -1;
	if (rq->listen->backlog > BACKLOG_MAX)
		return BAD(o, "listen.backlog: %u, the limit is %u", rq->listen->backlog, BACKLOG_MAX);
	r->listen.backlog = rq->listen->backlog ? (int)rq->listen->backlog : BACKLOG_DEFAULT;
	if (rq->listen->protocol != WFPBROKER__V1__PROTOCOL__TCP && rq->listen->protocol != WFPBROKER__V1__PROTOCOL__UDP)
		return BAD(o, "listen.protocol: %d is neither TCP nor UDP", (int)rq->listen->protocol);
	r->listen.udp = rq->listen->protocol == WFPBROKER__V1__PROTOCOL__UDP;
	return 0;
}

void
wfpb__op_listen(struct wfpb_scope *sc, const union wfpb_req *r, struct reply *rp, struct outcome *o, uint64_t now_ms)
{
	struct wfpb_listener	*l;
	char			text[WFPB_ADDR_STRLEN];
	wfpb_sock		dup = WFPB_SOCK_NONE;
	int			os_err = 0;

	wfpb_addr_format(&r->listen.local, text);
	/* UDP is a grant and ranges of its own: a TCP grant does not imply it, nor the reverse. */
	if (!(sc->perms & (r->listen.udp ? WFPB_PERM_UDP_LISTEN : WFPB_PERM_LISTEN))) {
		wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__DENIED, "listen: %s not granted to principal %s",
		    r->listen.udp ? "udp_listen" : "listen", sc->principal);
		return;
	}
	if (!(r->listen.udp ? in_ranges(sc->policy->udp_listen, sc->policy->nudp_listen, &r->listen.local) :
	    in_ranges(sc->policy->listen, sc->policy->nlisten, &r->listen.local))) {
		wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__DENIED,
		    "listen: %s is outside principal %s's %s ranges",
		    text, sc->principal, r->listen.udp ? "udp_listen" : "listen");
		return;
	}
	if (r->listen.udp && sc->backend->ops->udp_listener == NULL) {
		wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__EOPNOTSUPP, "listen: the %s backend has no UDP flows",
		    sc->backend->ops->name);
		return;
	}
	if (sc->socks->nlisteners >= WFPB_LISTENERS_MAX) {
		wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__QUOTA, "listen: this session already holds %u listeners",
		    WFPB_LISTENERS_MAX);
		return;
	}
	if ((l = calloc(1, sizeof(*l))) == NULL) {
		wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__INTERNAL, "listen: out of memory");
		return;
	}
	if (wfpb__scope_listener_admit(sc, l) != 0) {
		free(l);
		wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__QUOTA,
		    "listen: principal %s holds %u listeners, its limit",
		    sc->principal, sc->cfg->max_listeners_per_principal);
		return;
	}
	if ((r->listen.udp ? udp_listen(sc, &r->listen.local, &l->sock, &l->local, &os_err) :
	    wfpb__net_listen(&r->listen.local, r->listen.backlog, &l->sock, &l->local, &os_err)) != 0) {
		wfpb__scope_listener_unadmit(sc, l);
		free(l);
		os_outcome(o, "listen", os_err);
		return;
	}
	/* A flow that stays on the listener is the proxy's to read and answer: the listener goes with the answer. */
	if (r->listen.udp && sc->backend->ops->udp_on_listener && wfpb__net_dup(l->sock, &dup, &os_err) != 0) {
		wfpb__net_close(l->sock);
		wfpb__scope_listener_unadmit(sc, l);
		free(l);
		os_outcome(o, "listen: a copy of the listener for the proxy", os_err);
		return;
	}
	l->udp = r->listen.udp;
	wfpb__audit_addr(rp, &l->local);
	wfpb__scope_listener_add(sc, l);
	wfpbroker__v1__listen_response__init(&rp->listen);
	rp->listen.listener_id = l->id;
	rp->listen.local = wfpb__addr_to_pb(rp, 0, &l->local);
	if (dup != WFPB_SOCK_NONE && give_socket(sc, rp, dup, &rp->listen.socket, o) != 0) {
		(void)wfpb__scope_listener_release(sc, l->id, now_ms);
		return;
	}
	rp->resp.result_case = WFPBROKER__V1__RESPONSE__RESULT_LISTEN;
	rp->resp.listen = &rp->listen;
}

/* The listener an Accept or a Relay names, and how long it waits: req_accept without its lifetime. */
static int
validate_listener_ref(uint64_t listener_id, const char *listener, uint32_t timeout_ms, const char *what,
    struct req_accept *out, struct outcome *o)
{
	out->listener = NULL;
	if (listener != NULL && listener[0] != '\0') {
		if (listener_id != 0)
			return BAD(o, "%s: listener_id and listener are each a listener; name one", what);
		if (strlen(listener) >= WFPB_NAME_MAX)
			return BAD(o, "%s.listener: longer than %u bytes", what, WFPB_NAME_MAX - 1);
		out->listener = listener;
	} else if (listener_id == 0) {
		return BAD(o, "%s.listener_id: missing", what);
	}
	if (timeout_ms > ACCEPT_TIMEOUT_MAX && timeout_ms != WAIT_FOREVER)
		return BAD(o, "%s.timeout_ms: %u, the limit is %u (or %u: until cancelled)", what, timeout_ms,
		    ACCEPT_TIMEOUT_MAX, WAIT_FOREVER);
	out->listener_id = listener_id;
	out->timeout_ms = timeout_ms ? timeout_ms : ACCEPT_TIMEOUT_DEFAULT;
	return 0;
}

int
wfpb__validate_accept(const struct wfpb_limits *lim, const Request *rq, union wfpb_req *r, struct outcome *o)
{
	const Wfpbroker__V1__AcceptRequest *a = rq->accept;

	(void)lim;
	if (validate_listener_ref(a->listener_id, a->listener, a->timeout_ms, "accept", &r->accept, o) != 0)
		return -1;
	return wfpb__validate_lifetime(a->lifetime, "accept.lifetime", &r->accept.lifetime, o);
}

/*
 * The session's handle on the declared listener called name: made at its first
 * Accept, a descriptor of its own on the broker's socket (so that each session
 * watches its own), counted in no principal's listener budget, closed with the
 * session; the broker's socket, and the connections queued on it, stay. NULL
 * with o set.
 */
static struct wfpb_listener *
declared_listener(struct wfpb_scope *sc, const char *name, const char *what, struct outcome *o)
{
	const struct wfpb_declared	*d = wfpb__scope_declared(sc, name);
	struct wfpb_listener		*l;
	int				os_err = 0;

	if (d == NULL || strcmp(d->principal, sc->principal) != 0) {
		/* The same answer for one that does not exist and one of another principal: names are not probed. */
		wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__NOT_FOUND, "%s: no listener %s declared for principal %s",
		    what, name, sc->principal);
		return NULL;
	}
	for (l = sc->socks->listeners; l != NULL; l = l->next)
		if (l->declared == d)
			return l;
	if (sc->socks->nlisteners >= WFPB_LISTENERS_MAX) {
		wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__QUOTA, "%s: this session already holds %u listeners",
		    what, WFPB_LISTENERS_MAX);
		return NULL;
	}
	if ((l = calloc(1, sizeof(*l))) == NULL) {
		wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__INTERNAL, "%s: out of memory", what);
		return NULL;
	}
	if (wfpb__net_dup(d->sock, &l->sock, &os_err) != 0) {
		free(l);
		os_outcome(o, "a handle on the declared listener", os_err);
		return NULL;
	}
	l->declared = d;
	l->local = d->local;
	snprintf(l->owner, sizeof(l->owner), "%s", d->principal);
	wfpb__scope_listener_add(sc, l);
	return l;
}

/* The listener an Accept or a Relay names: a declared one by name, or one of the session's. NULL with o set. */
static struct wfpb_listener *
named_listener(struct wfpb_scope *sc, const struct req_accept *a, const char *what, struct outcome *o)
{
	struct wfpb_listener *l;

	if (a->listener != NULL)
		return declared_listener(sc, a->listener, what, o);
	if ((l = wfpb__find_listener(sc->socks, a->listener_id, NULL)) == NULL)
		wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__NOT_FOUND, "%s: no listener %llu in this session", what,
		    (unsigned long long)a->listener_id);
	else if (l->udp) {
		wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__EINVAL, "%s: listener %llu is a UDP listener (Flow)", what,
		    (unsigned long long)a->listener_id);
		l = NULL;
	}
	return l;
}

/*
 * Takes the listener's next connection into *sock, or, with none yet (WFPB_E_AGAIN), leaves
 * the request pending as kind on it for timeout_ms. Several may wait on one listener: each
 * takes the next connection, oldest first. 0, WFPB_E_AGAIN, or another error with *os_err.
 */
static int
accept_or_wait(const struct wfpb_listener *l, int kind, uint32_t timeout_ms, struct reply *rp, struct outcome *o,
    uint64_t now_ms, wfpb_sock *sock, int *os_err)
{
	int rc = wfpb__net_accept(l->sock, sock, os_err);

	if (rc == WFPB_E_AGAIN) {
		rp->pend.kind = kind;
		rp->pend.watch = l->sock;
		rp->pend.want_write = 0;
		rp->pend.listener_id = l->id;
		rp->pend.started_ms = now_ms;
		rp->pend.deadline_ms = timeout_ms == WAIT_FOREVER ? UINT64_MAX : now_ms + timeout_ms;
		o->code = OUTCOME_PENDING;
	}
	return rc;
}

void
wfpb__op_accept(struct wfpb_scope *sc, const union wfpb_req *r, struct reply *rp, struct outcome *o, uint64_t now_ms)
{
	struct wfpb_listener	*l;
	wfpb_sock		sock;
	int			os_err = 0, rc;

	if ((l = named_listener(sc, &r->accept, "accept", o)) == NULL)
		return;
	rc = accept_or_wait(l, WFPB_PENDING_ACCEPT, r->accept.timeout_ms, rp, o, now_ms, &sock, &os_err);
	if (rc == WFPB_E_AGAIN) {
		rp->pend.lifetime = r->accept.lifetime;
		return;
	}
	if (rc != 0) {
		os_outcome(o, "accept", os_err);
		return;
	}
	finish_accept(sc, sock, r->accept.lifetime, rp, o, now_ms);
}

/*
 * The records and the context of an accepted or client-owned socket. A
 * connection no callout redirected (a health check, a direct connection)
 * has no records, and a callout may attach no context: neither is an error.
 * The query's OS error is carried in *records_error / *context_error and
 * named in the answer's (OK) message and so in the audit record. A
 * principal with require_records is refused NOT_FOUND instead. Data past
 * WFPB_REDIRECT_MAX fails the request (ENOBUFS). 0, or -1 with o set.
 */
static int
query_redirect(struct wfpb_scope *sc, wfpb_sock sock, struct reply *rp, struct outcome *o, const char *what,
    int32_t *records_error, int32_t *context_error)
{
	const struct wfpb_backend	*be = sc->backend;
	char				why[128] = "";
	int				os_err = 0, code;

	*records_error = *context_error = 0;
	if ((code = be->ops->query_records(be->ctx, sock, &rp->records, &os_err)) != 0) {
		free(rp->records.data);
		rp->records.data = NULL;
		rp->records.len = 0;
		if (code == WFPBROKER__V1__STATUS_CODE__ENOBUFS) {
			backend_outcome(o, what, code, os_err);
			return -1;
		}
		*records_error = os_err != 0 ? os_err : code;
		if (sc->policy != NULL && sc->policy->require_records) {
			wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__NOT_FOUND,
			    "%s: the connection carries no redirect "
			    "records (%s, error %d) and principal %s requires them; it was closed", what,
			    wfpb__net_strerror(*records_error), (int)*records_error, sc->principal);
			return -1;
		}
		snprintf(why, sizeof(why), "no redirect records (error %d)", (int)*records_error);
	}
	if ((code = be->ops->query_context(be->ctx, sock, &rp->context, &os_err)) != 0) {
		free(rp->context.data);
		rp->context.data = NULL;
		rp->context.len = 0;
		if (code == WFPBROKER__V1__STATUS_CODE__ENOBUFS) {
			backend_outcome(o, what, code, os_err);
			return -1;
		}
		*context_error = os_err != 0 ? os_err : code;
		snprintf(why + strlen(why), sizeof(why) - strlen(why), "%sno context (error %d)", why[0] ? "; " : "",
		    (int)*context_error);
	}
	if (why[0] != '\0')
		wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__OK, "%s: %s", what, why);
	/* A new flow: every record of a request that applies these records names it. */
	do
		randombytes_buf(&rp->flow_id, sizeof(rp->flow_id));
	while (rp->flow_id == 0);
	if (be->ops->original_dst == NULL || be->ops->original_dst(be->ctx, sock, &rp->records, &rp->context,
	    &rp->orig_dst) != 0)
		memset(&rp->orig_dst, 0, sizeof(rp->orig_dst));
	return 0;
}

static void
finish_accept(struct wfpb_scope *sc, wfpb_sock sock, int lifetime, struct reply *rp, struct outcome *o,
    uint64_t now_ms)
{
	struct wfpb_addr	peer, local;
	int			os_err = 0;

	if (wfpb__net_addrs(sock, &peer, &local, &os_err) != 0) {
		os_outcome(o, "accept", os_err);
		goto close_sock;
	}
	wfpbroker__v1__accept_response__init(&rp->accept);
	if (query_redirect(sc, sock, rp, o, "accept", &rp->accept.records_error, &rp->accept.context_error) != 0)
		goto close_sock;
	if (rp->records.len > 0) {
		if (wfpb__stash_blob(sc, rp->records.data, rp->records.len, 1, lifetime, rp, o, "accept",
		    "; the connection was closed", now_ms) != 0)
			goto close_sock;
		wfpb_stash_note_flow(sc->stash, rp->handle_id, rp->flow_id, &rp->orig_dst);
		rp->accept.records = &rp->handle;
	}
	wfpb__audit_addr(rp, &peer);
	wfpb__audit_addr(rp, &local);
	rp->accept.peer = wfpb__addr_to_pb(rp, 0, &peer);
	rp->accept.local = wfpb__addr_to_pb(rp, 1, &local);
	rp->accept.context.data = rp->context.data;
	rp->accept.context.len = rp->context.len;
	if (rp->orig_dst.family != 0)
		rp->accept.original_destination = wfpb__addr_to_pb(rp, 2, &rp->orig_dst);
	if (give_socket(sc, rp, sock, &rp->accept.socket, o) != 0)
		return;
	rp->resp.result_case = WFPBROKER__V1__RESPONSE__RESULT_ACCEPT;
	rp->resp.accept = &rp->accept;
	return;
close_sock:
	wfpb__net_close(sock);
}

int
wfpb__validate_connect(const struct wfpb_limits *lim, const Request *rq, union wfpb_req *r, struct outcome *o)
{
	const Wfpbroker__V1__ConnectRequest *c = rq->connect;

	memset(&r->connect.records, 0, sizeof(r->connect.records));
	/* Records are optional: a connection that continues none (the principal's own mark still applies). */
	if ((c->records != NULL && wfpb__records_from_pb(lim, c->records, "connect.records", &r->connect.records,
	    o) != 0) ||
	    wfpb__addr_from_pb(c->remote, "connect.remote", 1, &r->connect.remote, o) != 0)
		return -1;
	memset(&r->connect.local, 0, sizeof(r->connect.local));
	if (c->local != NULL && wfpb__addr_from_pb(c->local, "connect.local", 0, &r->connect.local, o) != 0)
		return -1;
	if (c->local != NULL && r->connect.local.family != r->connect.remote.family)
		return BAD(o, "connect.local: family differs from connect.remote");
	/* As a destination the unspecified address means this host, whatever the ranges say. */
	if (wfpb_addr_unspecified(&r->connect.remote))
		return BAD(o, "connect.remote: the unspecified address is not a destination");
	if (c->timeout_ms > CONNECT_TIMEOUT_MAX)
		return BAD(o, "connect.timeout_ms: %u, the limit is %u", c->timeout_ms, CONNECT_TIMEOUT_MAX);
	r->connect.timeout_ms = c->timeout_ms ? c->timeout_ms : CONNECT_TIMEOUT_DEFAULT;
	return 0;
}

/*
 * Starts a connect and asks at once whether it is over: to a nearby upstream (loopback, the
 * same host) it usually is, and the request is answered without a wake-up of its own.
 * 0 connected, WFPB_E_AGAIN still under way, or an error with *os_err.
 */
static int
connect_now(wfpb_sock s, const struct wfpb_addr *remote, int *os_err)
{
	int rc = wfpb__net_connect(s, remote, os_err), done;

	if (rc != WFPB_E_AGAIN)
		return rc;
	done = wfpb__net_connect_done(s, os_err);
	return done > 0 ? 0 : done < 0 ? WFPB_E_OS : WFPB_E_AGAIN;
}

static void
finish_connect(struct wfpb_scope *sc, wfpb_sock sock, struct reply *rp, struct outcome *o)
{
	struct wfpb_addr	local;
	int			os_err = 0;

	(void)sc;
	if (wfpb__net_addrs(sock, NULL, &local, &os_err) != 0) {
		os_outcome(o, "connect", os_err);
		wfpb__net_close(sock);
		return;
	}
	wfpb__audit_addr(rp, &local);
	wfpbroker__v1__connect_response__init(&rp->connect);
	rp->connect.local = wfpb__addr_to_pb(rp, 0, &local);
	if (give_socket(sc, rp, sock, &rp->connect.socket, o) != 0)
		return;
	rp->resp.result_case = WFPBROKER__V1__RESPONSE__RESULT_CONNECT;
	rp->resp.connect = &rp->connect;
}

/*
 * A new TCP socket of family with the records applied before anything else
 * touches it (or WFP cannot correlate the connection): Connect's and
 * Prepare's first half. The records are resolved (provenance) and named in
 * the audit record. 0 with *sock owned by the caller, or -1 with o set.
 */
static int
socket_with_records(struct wfpb_scope *sc, const struct req_records *records, int family, const char *what,
    struct reply *rp, struct outcome *o, uint64_t now_ms, wfpb_sock *sock, const uint8_t **blob, size_t *len,
    const uint8_t **hash)
{
	const struct wfpb_backend	*be = sc->backend;
	char				step[64];
	int				os_err = 0, code;

	if (records_bytes(sc, records, what, blob, len, hash, rp, o, now_ms) != 0)
		return -1;
	wfpb__audit_blob(rp, *blob, *len, *hash);
	if (wfpb__net_socket(family, sock, &os_err) != 0) {
		snprintf(step, sizeof(step), "%s: socket", what);
		os_outcome(o, step, os_err);
		return -1;
	}
	if ((code = be->ops->set_records(be->ctx, *sock, *blob, *len, own_mark(sc), mark_mask(sc), &os_err)) != 0) {
		snprintf(step, sizeof(step), "%s: set records", what);
		backend_outcome(o, step, code, os_err);
		wfpb__net_close(*sock);
		*sock = WFPB_SOCK_NONE;
		return -1;
	}
	return 0;
}

void
wfpb__op_connect(struct wfpb_scope *sc, const union wfpb_req *r, struct reply *rp, struct outcome *o,
    uint64_t now_ms)
{
	const uint8_t	*blob, *hash;
	uint8_t		bh[32];
	char		text[WFPB_ADDR_STRLEN];
	size_t		len;
	wfpb_sock	sock;
	int		os_err = 0, rc;

	wfpb_addr_format(&r->connect.remote, text);
	wfpb__audit_addr(rp, &r->connect.remote);
	if (!in_ranges(sc->policy->connect, sc->policy->nconnect, &r->connect.remote)) {
		wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__DENIED,
		    "connect: %s is outside principal %s's connect ranges", text, sc->principal);
		return;
	}
	if (r->connect.local.family != 0 && !in_bind_ranges(sc->policy, &r->connect.local)) {
		wfpb_addr_format(&r->connect.local, text);
		wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__DENIED,
		    "connect: local %s is outside principal %s's bind ranges", text, sc->principal);
		return;
	}
	if (socket_with_records(sc, &r->connect.records, r->connect.remote.family, "connect", rp, o, now_ms, &sock,
	    &blob, &len, &hash) != 0)
		return;
	if (hash != NULL) {
		memcpy(bh, hash, sizeof(bh));
		hash = bh;	/* the entry itself may go now */
	}
	records_used(sc, r->connect.records.handle, now_ms);
	if (r->connect.local.family != 0 && wfpb__net_bind(sock, &r->connect.local, &os_err) != 0) {
		os_outcome(o, "connect: bind", os_err);
		wfpb__net_close(sock);
		return;
	}
	rc = connect_now(sock, &r->connect.remote, &os_err);
	if (rc == WFPB_E_AGAIN) {
		rp->pend.kind = WFPB_PENDING_CONNECT;
		rp->pend.remote = r->connect.remote;
		rp->pend.foreign = rp->records_foreign;
		rp->pend.flow_id = rp->flow_id;
		rp->pend.orig_dst = rp->orig_dst;
		if (hash != NULL)
			memcpy(rp->pend.blob_hash, hash, sizeof(rp->pend.blob_hash));
		else if (len > 0)
			crypto_generichash(rp->pend.blob_hash, sizeof(rp->pend.blob_hash), blob, len, NULL, 0);
		rp->pend.has_blob_hash = len > 0;
		rp->pend.watch = sock;
		rp->pend.sock = sock;
		rp->pend.want_write = 1;
		rp->pend.started_ms = now_ms;
		rp->pend.deadline_ms = now_ms + r->connect.timeout_ms;
		rp->pend.connect_timeout_ms = r->connect.timeout_ms;
		o->code = OUTCOME_PENDING;
		return;
	}
	if (rc != 0) {
		os_outcome(o, "connect", os_err);
		wfpb__net_close(sock);
		return;
	}
	finish_connect(sc, sock, rp, o);
}

int
wfpb__validate_query(const struct wfpb_limits *lim, const Request *rq, union wfpb_req *r, struct outcome *o)
{
	if (wfpb__socket_from_pb(lim, rq->query_records->socket, "query_records.socket", &r->query.sock, o) != 0)
		return -1;
	return wfpb__validate_lifetime(rq->query_records->lifetime, "query_records.lifetime",
	    &r->query.lifetime, o);
}

void
wfpb__op_query(struct wfpb_scope *sc, const union wfpb_req *r, struct reply *rp, struct outcome *o, uint64_t now_ms)
{
	wfpb_sock sock;

	if (request_socket(sc, &r->query.sock, WFPB_PERM_QUERY, "query_records", &sock, o) != 0)
		return;
	wfpbroker__v1__query_records_response__init(&rp->query);
	if (query_redirect(sc, sock, rp, o, "query_records", &rp->query.records_error, &rp->query.context_error) != 0)
		return;
	if (rp->records.len > 0) {
		if (wfpb__stash_blob(sc, rp->records.data, rp->records.len, 1, r->query.lifetime, rp, o,
		    "query_records", "", now_ms) != 0)
			return;
		wfpb_stash_note_flow(sc->stash, rp->handle_id, rp->flow_id, &rp->orig_dst);
		rp->query.records = &rp->handle;
	}
	rp->query.blob.data = rp->records.data;
	rp->query.blob.len = rp->records.len;
	rp->query.context.data = rp->context.data;
	rp->query.context.len = rp->context.len;
	rp->resp.result_case = WFPBROKER__V1__RESPONSE__RESULT_QUERY_RECORDS;
	rp->resp.query_records = &rp->query;
}

int
wfpb__validate_apply(const struct wfpb_limits *lim, const Request *rq, union wfpb_req *r, struct outcome *o)
{
	if (wfpb__socket_from_pb(lim, rq->apply_records->socket, "apply_records.socket", &r->apply.sock, o) != 0)
		return -1;
	return wfpb__records_from_pb(lim, rq->apply_records->records, "apply_records.records", &r->apply.records, o);
}

void
wfpb__op_apply(struct wfpb_scope *sc, const union wfpb_req *r, struct reply *rp, struct outcome *o, uint64_t now_ms)
{
	const struct wfpb_backend	*be = sc->backend;
	const uint8_t			*blob, *hash;
	wfpb_sock			sock;
	size_t				len;
	int				os_err = 0, code;

	/* The socket first: its pull may give up the core lock, and the records point into the stash. */
	if (request_socket(sc, &r->apply.sock, WFPB_PERM_APPLY, "apply_records", &sock, o) != 0)
		return;
	if (records_bytes(sc, &r->apply.records, "apply_records", &blob, &len, &hash, rp, o, now_ms) != 0)
		return;
	wfpb__audit_blob(rp, blob, len, hash);
	if (wfpb__net_is_bound(sock)) {
		wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__EINVAL,
		    "apply_records: records must be set before bind and connect");
		return;
	}
	if (sc->audit != NULL) {
		/*
		 * The effect is on the client's own socket, which the broker cannot
		 * take back: the record goes first (wfpb_dispatch writes it), and the
		 * records are set once it is durable (wfpb__dispatch_resume).
		 */
		if (len > 0 && (rp->pend.blob = malloc(len)) == NULL) {
			wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__INTERNAL, "apply_records: out of memory");
			return;
		}
		if (len > 0)
			memcpy(rp->pend.blob, blob, len);
		rp->pend.blob_len = len;
		/*
		 * An entry of Lifetime ONCE goes when the records are set, not now: they may never
		 * be. It is taken once the request waits (wfpb_dispatch), so no other applies it.
		 */
		if ((rp->pend.has_handle = r->apply.records.handle != NULL))
			memcpy(rp->pend.handle, r->apply.records.handle, sizeof(rp->pend.handle));
		take_request_socket(sc, sock);
		rp->pend.kind = WFPB_PENDING_APPLY;
		rp->pend.foreign = rp->records_foreign;
		rp->pend.flow_id = rp->flow_id;
		rp->pend.orig_dst = rp->orig_dst;
		rp->pend.sock = sock;
		rp->pend.watch = WFPB_SOCK_NONE;
		rp->pend.started_ms = now_ms;
		rp->pend.deadline_ms = now_ms + APPLY_AUDIT_WAIT_MS;
		o->code = OUTCOME_PENDING;
		return;
	}
	if ((code = be->ops->set_records(be->ctx, sock, blob, len, own_mark(sc), mark_mask(sc), &os_err)) != 0) {
		backend_outcome(o, "apply_records", code, os_err);
		return;
	}
	records_used(sc, r->apply.records.handle, now_ms);
	wfpbroker__v1__apply_records_response__init(&rp->apply);
	rp->resp.result_case = WFPBROKER__V1__RESPONSE__RESULT_APPLY_RECORDS;
	rp->resp.apply_records = &rp->apply;
}

int
wfpb__validate_prepare(const struct wfpb_limits *lim, const Request *rq, union wfpb_req *r, struct outcome *o)
{
	const Wfpbroker__V1__PrepareRequest *p = rq->prepare;

	memset(&r->prepare.records, 0, sizeof(r->prepare.records));
	if (p->records != NULL && wfpb__records_from_pb(lim, p->records, "prepare.records", &r->prepare.records, o) != 0)
		return -1;
	if (p->family == WFPBROKER__V1__ADDRESS_FAMILY__AF_INET)
		r->prepare.family = WFPB_AF_INET;
	else if (p->family == WFPBROKER__V1__ADDRESS_FAMILY__AF_INET6)
		r->prepare.family = WFPB_AF_INET6;
	else
		return BAD(o, "prepare.family: must be AF_INET or AF_INET6");
	memset(&r->prepare.local, 0, sizeof(r->prepare.local));
	if (p->local != NULL && wfpb__addr_from_pb(p->local, "prepare.local", 0, &r->prepare.local, o) != 0)
		return -1;
	if (p->local != NULL && r->prepare.local.family != r->prepare.family)
		return BAD(o, "prepare.local: family differs from prepare.family");
	return 0;
}

/*
 * Prepare: a new unconnected TCP socket with the records applied, handed
 * over for the client to set its options and connect itself. The
 * destination is the client's choice: the connect ranges do not apply, so
 * `prepare` is a grant of its own. The socket goes bound: to the request's
 * local address (inside the bind ranges), or to the unspecified address and
 * an ephemeral port, so that a client cannot make it a listener, which the
 * OS takes for the broker's, on an address and port of its choosing
 * (docs/SECURITY.md). The answer waits for its audit record like Connect's,
 * and a socket not handed over is closed.
 */
void
wfpb__op_prepare(struct wfpb_scope *sc, const union wfpb_req *r, struct reply *rp, struct outcome *o, uint64_t now_ms)
{
	struct wfpb_addr	local = r->prepare.local;
	const uint8_t		*blob, *hash;
	char			text[WFPB_ADDR_STRLEN];
	size_t			len;
	wfpb_sock		sock;
	int			os_err = 0;

	if (local.family != 0 && !in_bind_ranges(sc->policy, &local)) {
		wfpb_addr_format(&local, text);
		wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__DENIED,
		    "prepare: local %s is outside principal %s's bind ranges", text, sc->principal);
		return;
	}
	if (local.family == 0)
		local.family = r->prepare.family;	/* the unspecified address, port 0: the kernel's choice */
	if (socket_with_records(sc, &r->prepare.records, r->prepare.family, "prepare", rp, o, now_ms, &sock, &blob,
	    &len, &hash) != 0)
		return;
	if (wfpb__net_bind(sock, &local, &os_err) != 0) {
		os_outcome(o, "prepare: bind", os_err);
		wfpb__net_close(sock);
		return;
	}
	records_used(sc, r->prepare.records.handle, now_ms);
	wfpbroker__v1__prepare_response__init(&rp->prepare);
	if (give_socket(sc, rp, sock, &rp->prepare.socket, o) != 0)
		return;
	rp->resp.result_case = WFPBROKER__V1__RESPONSE__RESULT_PREPARE;
	rp->resp.prepare = &rp->prepare;
}

int
wfpb__listener_holds(const struct wfpb_scope *sc, const struct wfpb_listener *l)
{
	/* A declared listener's handle: held while its principal is this session's and may accept. */
	if (l->declared != NULL)
		return sc->policy != NULL && (sc->perms & WFPB_PERM_ACCEPT) && strcmp(l->declared->principal, sc->principal) == 0;
	if (l->udp)
		return sc->policy != NULL && (sc->perms & WFPB_PERM_UDP_LISTEN) && strcmp(l->owner, sc->principal) == 0 &&
		    in_ranges(sc->policy->udp_listen, sc->policy->nudp_listen, &l->local);
	return sc->policy != NULL && (sc->perms & WFPB_PERM_LISTEN) && strcmp(l->owner, sc->principal) == 0 &&
	    in_ranges(sc->policy->listen, sc->policy->nlisten, &l->local);
}

int
wfpb__pending_holds(struct wfpb_scope *sc, const struct wfpb_pending *p, char *why, size_t cap)
{
	const struct wfpb_listener	*l;
	const char			*what = NULL;
	char				text[WFPB_ADDR_STRLEN];

	wfpb__scope_refresh(sc);
	if (sc->policy == NULL) {
		what = "no principal matches the caller any more";
	} else if (p->kind == WFPB_PENDING_ACCEPT) {
		if (!(sc->perms & WFPB_PERM_ACCEPT))
			what = "accept is no longer granted";
		else if ((l = wfpb__find_listener(sc->socks, p->listener_id, NULL)) != NULL &&
		    !wfpb__listener_holds(sc, l))
			what = "its listener is no longer the principal's to hold (listen grant or ranges)";
	} else if (p->kind == WFPB_PENDING_CONNECT) {
		if (!(sc->perms & WFPB_PERM_CONNECT))
			what = "connect is no longer granted";
		else if (!in_ranges(sc->policy->connect, sc->policy->nconnect, &p->remote))
			what = "its destination is outside the principal's connect ranges now";
		else if (p->foreign && !(sc->perms & WFPB_PERM_APPLY_FOREIGN))
			what = "its records came from the client, and apply_foreign is no longer granted";
	} else if (p->kind == WFPB_PENDING_RELAY) {
		if ((sc->perms & (WFPB_PERM_ACCEPT | WFPB_PERM_CONNECT)) != (WFPB_PERM_ACCEPT | WFPB_PERM_CONNECT))
			what = "accept or connect is no longer granted";
		else if (p->accepted == WFPB_SOCK_NONE && (l = wfpb__find_listener(sc->socks, p->listener_id, NULL)) !=
		    NULL && !wfpb__listener_holds(sc, l))
			what = "its listener is no longer the principal's to hold (listen grant or ranges)";
		else if (p->remote.family != 0 && !in_ranges(sc->policy->connect, sc->policy->nconnect, &p->remote))
			what = "its destination is outside the principal's connect ranges now";
		else if (p->bind.family != 0 && !in_bind_ranges(sc->policy, &p->bind))
			what = "its local address is outside the principal's bind ranges now";
	} else if (p->kind == WFPB_PENDING_FLOW) {
		if (!(sc->perms & WFPB_PERM_UDP_FLOW))
			what = "udp_flow is no longer granted";
		else if ((l = wfpb__find_listener(sc->socks, p->listener_id, NULL)) != NULL && !wfpb__listener_holds(sc, l))
			what = "its listener is no longer the principal's to hold (udp_listen grant or ranges)";
		else if (p->remote.family != 0 && !in_ranges(sc->policy->udp_connect, sc->policy->nudp_connect, &p->remote))
			what = "its destination is outside the principal's udp_connect ranges now";
	} else if (p->kind == WFPB_PENDING_APPLY) {
		if (!(sc->perms & WFPB_PERM_APPLY))
			what = "apply is no longer granted";
		else if (p->foreign && !(sc->perms & WFPB_PERM_APPLY_FOREIGN))
			what = "its records came from the client, and apply_foreign is no longer granted";
	}
	if (what == NULL)
		return 1;
	if (why != NULL) {
		if ((p->kind == WFPB_PENDING_CONNECT || p->kind == WFPB_PENDING_RELAY) && p->remote.family != 0) {
			wfpb_addr_format(&p->remote, text);
			snprintf(why, cap, "%s (%s, principal \"%s\")", what, text, sc->principal);
		} else {
			snprintf(why, cap, "%s (principal \"%s\")", what, sc->principal);
		}
	}
	return 0;
}

/*
 * A pending Accept or Relay waiting for a connection: 1 when it ends here (o says how), 0
 * to wait on, 2 with the connection accepted in *sock.
 */
/*
 * A request waiting on a listener (Accept, Relay, Flow) that ends without what it waited
 * for: 1 with o saying how (what: the op; nothing: what it did not get), or 0 when why is a
 * wake-up to look.
 */
static int
listener_wait_ended(struct wfpb_scope *sc, const struct wfpb_pending *p, struct outcome *o, int why, const char *what,
    const char *nothing)
{
	char reason[192];

	if (why == WFPB_RESUME_TIMEOUT) {
		wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__TIMEOUT, "%s: %s within %llu ms", what, nothing,
		    (unsigned long long)(p->deadline_ms - p->started_ms));
	} else if (why == WFPB_RESUME_CANCEL) {
		wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__NOT_FOUND, "%s: listener %llu was released", what,
		    (unsigned long long)p->listener_id);
	} else if (why == WFPB_RESUME_REVOKED) {
		(void)wfpb__pending_holds(sc, p, reason, sizeof(reason));
		wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__DENIED, "%s: %s; %s", what, reason, nothing);
	} else if (why == WFPB_RESUME_GONE) {
		/* What the listener queued stays there: nothing was taken for this request. */
		wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__CANCELLED,
		    "%s: the session ended while it waited on listener %llu; %s", what,
		    (unsigned long long)p->listener_id, nothing);
	} else if (why == WFPB_RESUME_ABORT) {
		wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__CANCELLED, "%s: cancelled by its client; %s", what,
		    nothing);
	} else {
		return 0;
	}
	return 1;
}

/*
 * A pending Accept or Relay waiting for a connection: 1 when it ends here (o says how), 0
 * to wait on, 2 with the connection accepted in *sock.
 */
static int
accept_wait(struct wfpb_scope *sc, const struct wfpb_pending *p, struct outcome *o, int why, const char *what,
    wfpb_sock *sock)
{
	int os_err = 0, rc;

	if (listener_wait_ended(sc, p, o, why, what, "nothing accepted"))
		return 1;
	rc = wfpb__net_accept(p->watch, sock, &os_err);
	if (rc == WFPB_E_AGAIN)
		return 0;	/* another wake-up will come, or the deadline */
	if (rc != 0) {
		os_outcome(o, what, os_err);
		return 1;
	}
	return 2;
}

/* Accept: the listener is readable (or the deadline passed, or the listener is being released). */
int
wfpb__resume_accept(struct wfpb_scope *sc, const struct wfpb_pending *p, struct reply *rp, struct outcome *o,
    uint64_t now_ms, int why)
{
	wfpb_sock	sock;
	int		rc = accept_wait(sc, p, o, why, "accept", &sock);

	if (rc == 2)
		finish_accept(sc, sock, p->lifetime, rp, o, now_ms);
	return rc != 0;
}

/*
 * A pending upstream connect (Connect's, Relay's) that ends here without its socket
 * handed over: o says how (what: the op; prefix: what came before the connect; closed: what
 * the broker closed). done and os_err are wfpb__net_connect_done's.
 */
static void
connect_ended(struct wfpb_scope *sc, const struct wfpb_pending *p, struct outcome *o, int why, int done, int os_err,
    const char *what, const char *prefix, const char *closed)
{
	char reason[192];

	if (why == WFPB_RESUME_REVOKED) {
		(void)wfpb__pending_holds(sc, p, reason, sizeof(reason));
		wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__DENIED, "%s: %s; %s, never handed over", what, reason,
		    closed);
	} else if (why == WFPB_RESUME_GONE || why == WFPB_RESUME_ABORT) {
		/* The connection was started, and the remote may have seen it: the record says how far it got. */
		wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__CANCELLED, "%s: %s%s; %s before it was handed over, "
		    "and %s", what, prefix, done == 0 ? "started, not yet connected" : done > 0 ? "connected" :
		    "started, and failed", why == WFPB_RESUME_GONE ? "the session ended" : "its client cancelled it",
		    closed);
	} else if (why == WFPB_RESUME_TIMEOUT || why == WFPB_RESUME_CANCEL) {
		wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__TIMEOUT, "%s: %snot connected within %u ms; %s", what,
		    prefix, p->connect_timeout_ms, closed);
	} else {
		os_outcome(o, what, os_err);
	}
}

/*
 * A pending upstream connect (Connect's, Relay's) is woken: 0 while it goes on; else 1 with
 * *done (1 connected, -1 failed with *os_err, 0 not yet) and what its record names of the
 * flow and its records in rp.
 */
static int
connect_woken(const struct wfpb_pending *p, struct reply *rp, int why, int *done, int *os_err)
{
	*done = 0;
	/* Asked once: on Windows the answer comes from a record that answers once. */
	if (why == WFPB_RESUME_POLL || why == WFPB_RESUME_READY || why == WFPB_RESUME_GONE || why == WFPB_RESUME_ABORT)
		*done = wfpb__net_connect_done(p->sock, os_err);
	if ((why == WFPB_RESUME_POLL || why == WFPB_RESUME_READY) && *done == 0)
		return 0;
	rp->flow_id = p->flow_id;
	rp->orig_dst = p->orig_dst;
	memcpy(rp->audit_hash, p->blob_hash, sizeof(rp->audit_hash));
	rp->has_audit_hash = p->has_blob_hash;
	return 1;
}

/* Connect: the connecting socket is writable (or the deadline passed). */
int
wfpb__resume_connect(struct wfpb_scope *sc, const struct wfpb_pending *p, struct reply *rp, struct outcome *o,
    uint64_t now_ms, int why)
{
	int os_err = 0, done = 0;

	(void)now_ms;
	if (!connect_woken(p, rp, why, &done, &os_err))
		return 0;	/* another wake-up will come, or the deadline */
	/* The audit record names what the request did, though the reply is built now. */
	wfpb__audit_addr(rp, &p->remote);
	if ((why == WFPB_RESUME_POLL || why == WFPB_RESUME_READY) && done > 0) {
		finish_connect(sc, p->sock, rp, o);
		return 1;
	}
	connect_ended(sc, p, o, why, done, os_err, "connect", "", "the broker closed it");
	wfpb__net_close(p->sock);
	return 1;
}

/* ApplyRecords: its audit record is durable (or did not become so in time); only now does it act. */
int
wfpb__resume_apply(struct wfpb_scope *sc, const struct wfpb_pending *p, struct reply *rp, struct outcome *o,
    uint64_t now_ms, int why)
{
	const struct wfpb_backend	*be = sc->backend;
	int				os_err = 0, code, timed_out = why == WFPB_RESUME_TIMEOUT || why == WFPB_RESUME_CANCEL ||
					    why == WFPB_RESUME_GONE || why == WFPB_RESUME_REVOKED || why == WFPB_RESUME_ABORT;

	if (!timed_out && sc->audit != NULL &&
	    __atomic_load_n(&sc->audit->durable_seq, __ATOMIC_ACQUIRE) < p->audit_seq)
		return 0;	/* not yet: the commit that holds it releases the session */
	wfpb__audit_blob(rp, p->blob, p->blob_len, NULL);
	rp->flow_id = p->flow_id;
	rp->orig_dst = p->orig_dst;
	wfpb__scope_refresh(sc);
	if (why == WFPB_RESUME_REVOKED) {
		char reason[192];

		(void)wfpb__pending_holds(sc, p, reason, sizeof(reason));
		wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__DENIED, "apply_records: %s; nothing applied", reason);
	} else if (why == WFPB_RESUME_GONE || why == WFPB_RESUME_ABORT) {
		wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__CANCELLED, "apply_records: %s before its record was "
		    "durable; nothing applied", why == WFPB_RESUME_GONE ? "the session ended" : "its client cancelled it");
	} else if (timed_out) {
		wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__TIMEOUT,
		    "apply_records: its audit record was not durable within %u ms; nothing applied",
		    APPLY_AUDIT_WAIT_MS);
	} else if (sc->policy == NULL || !(sc->perms & WFPB_PERM_APPLY)) {
		wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__DENIED,
		    "apply_records: the grant was withdrawn meanwhile");
	} else if ((code = be->ops->set_records(be->ctx, p->sock, p->blob, p->blob_len, own_mark(sc), mark_mask(sc),
	    &os_err)) != 0) {
		backend_outcome(o, "apply_records", code, os_err);
	} else {
		/* Its record, written before the effect, stands for it: no second one. */
		rp->audited = 1;
		records_used(sc, p->has_handle ? p->handle : NULL, now_ms);
		wfpbroker__v1__apply_records_response__init(&rp->apply);
		rp->resp.result_case = WFPBROKER__V1__RESPONSE__RESULT_APPLY_RECORDS;
		rp->resp.apply_records = &rp->apply;
	}
	/* Not applied: records of Lifetime ONCE are there for another request again. */
	if (o->code != WFPBROKER__V1__STATUS_CODE__OK && p->has_handle)
		(void)wfpb_stash_take(sc->stash, p->handle, sc->principal, 0);
	wfpb__net_discard(p->sock);
	return 1;
}

int
wfpb__validate_relay(const struct wfpb_limits *lim, const Request *rq, union wfpb_req *r, struct outcome *o)
{
	const Wfpbroker__V1__RelayRequest	*q = rq->relay;
	struct req_relay			*rr = &r->relay;

	(void)lim;
	memset(rr, 0, sizeof(*rr));
	if (validate_listener_ref(q->listener_id, q->listener, q->timeout_ms, "relay", &rr->accept, o) != 0)
		return -1;
	rr->accept.lifetime = LIFETIME_SESSION;	/* nothing is stashed */
	if (q->remote != NULL && wfpb__addr_from_pb(q->remote, "relay.remote", 1, &rr->remote, o) != 0)
		return -1;
	if (q->remote != NULL && wfpb_addr_unspecified(&rr->remote))
		return BAD(o, "relay.remote: the unspecified address is not a destination");
	if (q->local != NULL && wfpb__addr_from_pb(q->local, "relay.local", 0, &rr->local, o) != 0)
		return -1;
	if (q->local != NULL && q->remote != NULL && rr->local.family != rr->remote.family)
		return BAD(o, "relay.local: family differs from relay.remote");
	if (q->connect_timeout_ms > CONNECT_TIMEOUT_MAX)
		return BAD(o, "relay.connect_timeout_ms: %u, the limit is %u", q->connect_timeout_ms,
		    CONNECT_TIMEOUT_MAX);
	rr->connect_timeout_ms = q->connect_timeout_ms ? q->connect_timeout_ms : CONNECT_TIMEOUT_DEFAULT;
	return 0;
}

/* Where a Relay's upstream goes: the request's, carried by its pending state. */
struct relay_to {
	struct wfpb_addr	remote;		/* family 0: the connection's original destination */
	struct wfpb_addr	bind;		/* family 0: none */
	uint32_t		connect_timeout_ms;
};

/* Connect's checks on a Relay's destination and local address: 0, or -1 with o set DENIED. */
static int
relay_allowed(struct wfpb_scope *sc, const struct wfpb_addr *remote, const struct wfpb_addr *bind, struct outcome *o)
{
	char text[WFPB_ADDR_STRLEN];

	if (remote->family != 0 && !in_ranges(sc->policy->connect, sc->policy->nconnect, remote)) {
		wfpb_addr_format(remote, text);
		wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__DENIED, "relay: %s is outside principal %s's connect ranges",
		    text, sc->principal);
		return -1;
	}
	if (bind->family != 0 && !in_bind_ranges(sc->policy, bind)) {
		wfpb_addr_format(bind, text);
		wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__DENIED,
		    "relay: local %s is outside principal %s's bind ranges", text, sc->principal);
		return -1;
	}
	return 0;
}

/*
 * Both connections of a Relay, the upstream one connected: one answer hands both over.
 * context is the accepted connection's (borrowed until the answer is packed).
 */
static void
finish_relay(struct wfpb_scope *sc, wfpb_sock acc, wfpb_sock up, const struct wfpb_addr *peer,
    const struct wfpb_addr *local, const struct wfpb_addr *remote, const uint8_t *context, size_t context_len,
    int32_t records_error, int32_t context_error, struct reply *rp, struct outcome *o)
{
	struct wfpb_addr	up_local;
	int			os_err = 0;

	if (wfpb__net_addrs(up, NULL, &up_local, &os_err) != 0) {
		os_outcome(o, "relay: the upstream connection", os_err);
		wfpb__net_close(up);
		wfpb__net_close(acc);
		return;
	}
	wfpb__audit_addr(rp, &up_local);
	wfpbroker__v1__relay_response__init(&rp->relay);
	rp->relay.peer = wfpb__addr_to_pb(rp, 0, peer);
	rp->relay.local = wfpb__addr_to_pb(rp, 1, local);
	rp->relay.remote = wfpb__addr_to_pb(rp, 2, remote);
	rp->relay.upstream_local = wfpb__addr_to_pb(rp, 3, &up_local);
	if (rp->orig_dst.family != 0)
		rp->relay.original_destination = wfpb__addr_to_pb(rp, 4, &rp->orig_dst);
	rp->relay.context.data = (uint8_t *)(uintptr_t)context;
	rp->relay.context.len = context_len;
	rp->relay.records_error = records_error;
	rp->relay.context_error = context_error;
	if (give_socket(sc, rp, acc, &rp->relay.accepted, o) != 0) {
		wfpb__net_close(up);
		return;
	}
	if (give_socket(sc, rp, up, &rp->relay.upstream, o) != 0)
		return;	/* the accepted one is closed with the failed answer */
	rp->resp.result_case = WFPBROKER__V1__RESPONSE__RESULT_RELAY;
	rp->resp.relay = &rp->relay;
}

/*
 * A Relay's connection is accepted: its records and context are queried, and the upstream
 * socket is made with those records and connected. 0 when rp and o hold the answer (both
 * sockets handed over or closed), or 1 when the connect goes on: rp->pend then holds both
 * sockets, what the answer will say and what it waits on (the upstream, writable).
 */
static int
relay_accepted(struct wfpb_scope *sc, const struct relay_to *to, wfpb_sock acc, struct reply *rp,
    struct outcome *o, uint64_t now_ms)
{
	const struct wfpb_backend	*be = sc->backend;
	struct wfpb_addr		peer, local, remote;
	int32_t				records_error, context_error;
	uint8_t				hash[32];
	wfpb_sock			up = WFPB_SOCK_NONE;
	int				os_err = 0, code, rc;

	if (wfpb__net_addrs(acc, &peer, &local, &os_err) != 0) {
		os_outcome(o, "relay: accept", os_err);
		goto close;
	}
	wfpb__audit_addr(rp, &peer);
	wfpb__audit_addr(rp, &local);
	if (query_redirect(sc, acc, rp, o, "relay", &records_error, &context_error) != 0)
		goto close;
	remote = to->remote.family != 0 ? to->remote : rp->orig_dst;
	if (remote.family == 0) {
		wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__NOT_FOUND, "relay: the %s backend does not know where "
		    "this connection was going; name relay.remote. The connection was closed", be->ops->name);
		goto close;
	}
	wfpb__audit_addr(rp, &remote);
	if (wfpb_addr_same(&remote, &local)) {
		/* Each connection to it would be relayed to it again. */
		wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__EINVAL, "relay: the destination is the listener itself "
		    "(a connection no callout redirected?); the connection was closed");
		goto close;
	}
	if (relay_allowed(sc, &remote, &to->bind, o) != 0)
		goto close;
	if (to->bind.family != 0 && to->bind.family != remote.family) {
		wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__EAFNOSUPPORT,
		    "relay: relay.local's family differs from the destination's; the connection was closed");
		goto close;
	}
	/* The records the broker queried itself: applied for a principal granted accept and connect. */
	wfpb__audit_blob(rp, rp->records.data, rp->records.len, NULL);
	if (wfpb__net_socket(remote.family, &up, &os_err) != 0) {
		os_outcome(o, "relay: socket", os_err);
		goto close;
	}
	if ((code = be->ops->set_records(be->ctx, up, rp->records.data, rp->records.len, own_mark(sc), mark_mask(sc),
	    &os_err)) != 0) {
		backend_outcome(o, "relay: set records", code, os_err);
		goto close;
	}
	if (to->bind.family != 0 && wfpb__net_bind(up, &to->bind, &os_err) != 0) {
		os_outcome(o, "relay: bind", os_err);
		goto close;
	}
	rc = connect_now(up, &remote, &os_err);
	if (rc == WFPB_E_AGAIN) {
		if (rp->records.len > 0) {
			crypto_generichash(hash, sizeof(hash), rp->records.data, rp->records.len, NULL, 0);
			memcpy(rp->pend.blob_hash, hash, sizeof(hash));
			rp->pend.has_blob_hash = 1;
		}
		free(rp->records.data);
		rp->records.data = NULL;
		rp->records.len = 0;
		rp->audit_blob = NULL;
		rp->audit_blob_len = 0;
		rp->pend.kind = WFPB_PENDING_RELAY;
		rp->pend.accepted = acc;
		rp->pend.peer = peer;
		rp->pend.local = local;
		rp->pend.remote = remote;
		rp->pend.bind = to->bind;
		rp->pend.connect_timeout_ms = to->connect_timeout_ms;
		rp->pend.records_error = records_error;
		rp->pend.context_error = context_error;
		rp->pend.blob = rp->context.data;	/* the context, for the answer */
		rp->pend.blob_len = rp->context.len;
		rp->context.data = NULL;
		rp->context.len = 0;
		rp->pend.flow_id = rp->flow_id;
		rp->pend.orig_dst = rp->orig_dst;
		rp->pend.sock = up;
		rp->pend.watch = up;
		rp->pend.want_write = 1;
		rp->pend.deadline_ms = now_ms + to->connect_timeout_ms;
		return 1;
	}
	if (rc != 0) {
		os_outcome(o, "relay: connect", os_err);
		goto close;
	}
	finish_relay(sc, acc, up, &peer, &local, &remote, rp->context.data, rp->context.len, records_error,
	    context_error, rp, o);
	return 0;
close:
	wfpb__net_close(up);
	wfpb__net_close(acc);
	return 0;
}

/*
 * Relay: Accept and Connect in one request. A destination the request names is checked
 * before any connection is taken; the original destination once one is.
 */
void
wfpb__op_relay(struct wfpb_scope *sc, const union wfpb_req *r, struct reply *rp, struct outcome *o, uint64_t now_ms)
{
	const struct req_relay	*rr = &r->relay;
	struct relay_to		to = { rr->remote, rr->local, rr->connect_timeout_ms };
	struct wfpb_listener	*l;
	wfpb_sock		sock;
	int			os_err = 0, rc;

	if (relay_allowed(sc, &rr->remote, &rr->local, o) != 0)
		return;
	if ((l = named_listener(sc, &rr->accept, "relay", o)) == NULL)
		return;
	rc = accept_or_wait(l, WFPB_PENDING_RELAY, rr->accept.timeout_ms, rp, o, now_ms, &sock, &os_err);
	if (rc == WFPB_E_AGAIN) {
		rp->pend.remote = to.remote;
		rp->pend.bind = to.bind;
		rp->pend.connect_timeout_ms = to.connect_timeout_ms;
		return;
	}
	if (rc != 0) {
		os_outcome(o, "relay: accept", os_err);
		return;
	}
	if (relay_accepted(sc, &to, sock, rp, o, now_ms) == 1)
		o->code = OUTCOME_PENDING;
}

/* Relay: its listener is readable, then its upstream socket writable (or the deadline passed, ...). */
int
wfpb__resume_relay(struct wfpb_scope *sc, const struct wfpb_pending *p, struct reply *rp, struct outcome *o,
    uint64_t now_ms, int why)
{
	struct relay_to	to = { p->remote, p->bind, p->connect_timeout_ms };
	wfpb_sock	sock;
	int		os_err = 0, rc, done = 0;

	if (p->accepted == WFPB_SOCK_NONE) {
		/* Waiting for a connection: as Accept. */
		if ((rc = accept_wait(sc, p, o, why, "relay", &sock)) != 2)
			return rc;
		rp->pend.started_ms = p->started_ms;
		return relay_accepted(sc, &to, sock, rp, o, now_ms) == 1 ? WFPB_RESUME_REARMED : 1;
	}
	/* Connecting upstream: as Connect, and the accepted connection goes with it. */
	if (!connect_woken(p, rp, why, &done, &os_err))
		return 0;
	wfpb__audit_addr(rp, &p->peer);
	wfpb__audit_addr(rp, &p->local);
	wfpb__audit_addr(rp, &p->remote);
	if ((why == WFPB_RESUME_POLL || why == WFPB_RESUME_READY) && done > 0) {
		finish_relay(sc, p->accepted, p->sock, &p->peer, &p->local, &p->remote, p->blob, p->blob_len,
		    p->records_error, p->context_error, rp, o);
		return 1;
	}
	connect_ended(sc, p, o, why, done, os_err, "relay", "accepted, and upstream ", "the broker closed both "
	    "connections");
	wfpb__net_close(p->sock);
	wfpb__net_close(p->accepted);
	return 1;
}

int
wfpb__validate_flow(const struct wfpb_limits *lim, const Request *rq, union wfpb_req *r, struct outcome *o)
{
	const Wfpbroker__V1__FlowRequest	*q = rq->flow;
	struct req_flow				*f = &r->flow;

	(void)lim;
	memset(f, 0, sizeof(*f));
	if (q->listener_id == 0)
		return BAD(o, "flow.listener_id: missing");
	if (q->timeout_ms > ACCEPT_TIMEOUT_MAX && q->timeout_ms != WAIT_FOREVER)
		return BAD(o, "flow.timeout_ms: %u, the limit is %u (or %u: until cancelled)", q->timeout_ms,
		    ACCEPT_TIMEOUT_MAX, WAIT_FOREVER);
	if (q->remote != NULL && wfpb__addr_from_pb(q->remote, "flow.remote", 1, &f->remote, o) != 0)
		return -1;
	if (q->remote != NULL && wfpb_addr_unspecified(&f->remote))
		return BAD(o, "flow.remote: the unspecified address is not a destination");
	f->listener_id = q->listener_id;
	f->timeout_ms = q->timeout_ms ? q->timeout_ms : ACCEPT_TIMEOUT_DEFAULT;
	f->hold_first = q->hold_first;
	f->without_records = q->without_records;
	if (q->first == NULL)
		return 0;
	if (wfpb__addr_from_pb(q->first->client, "flow.first.client", 1, &f->client, o) != 0)
		return -1;
	if (q->first->payload.len > FLOW_PAYLOAD_MAX)
		return BAD(o, "flow.first.payload: %zu bytes, the limit is %u", q->first->payload.len, FLOW_PAYLOAD_MAX);
	if (q->first->records.len > WFPB_REDIRECT_MAX || q->first->context.len > WFPB_REDIRECT_MAX)
		return BAD(o, "flow.first: records of %zu bytes and a context of %zu, the limit is %u each",
		    q->first->records.len, q->first->context.len, WFPB_REDIRECT_MAX);
	f->has_first = 1;
	f->payload = q->first->payload.data;
	f->payload_len = q->first->payload.len;
	f->records.blob = q->first->records.data;
	f->records.len = q->first->records.len;
	f->context = q->first->context.data;
	f->context_len = q->first->context.len;
	return 0;
}

/*
 * Where a flow may go upstream: not the listener itself (it would loop), and inside the
 * principal's udp_connect ranges. 0, or -1 with o set (after: what became of the datagram).
 */
static int
flow_destination_ok(struct wfpb_scope *sc, const struct wfpb_addr *remote, const struct wfpb_addr *listener,
    const char *why_self, const char *after, struct outcome *o)
{
	char text[WFPB_ADDR_STRLEN];

	if (wfpb_addr_same(remote, listener)) {
		wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__EINVAL, "flow: the destination is the listener itself%s%s",
		    why_self, after);
		return -1;
	}
	if (!in_ranges(sc->policy->udp_connect, sc->policy->nudp_connect, remote)) {
		wfpb_addr_format(remote, text);
		wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__DENIED, "flow: %s is outside principal %s's udp_connect "
		    "ranges%s", text, sc->principal, after);
		return -1;
	}
	return 0;
}

/*
 * A flow's upstream socket connected to remote, its local address in the record; where the
 * backend carries records on the socket (netfilter's marks), blob is set on it first. 0, or -1
 * with o set and nothing left open.
 */
static int
flow_upstream(struct wfpb_scope *sc, const struct wfpb_addr *remote, int set_records, const uint8_t *blob,
    size_t len, wfpb_sock *out, struct reply *rp, struct outcome *o)
{
	const struct wfpb_backend	*be = sc->backend;
	struct wfpb_addr		up_local;
	wfpb_sock			up;
	int				os_err = 0, rc;

	if (wfpb__net_udp_socket(remote->family, &up, &os_err) != 0) {
		os_outcome(o, "flow: socket", os_err);
		return -1;
	}
	if (set_records && (rc = be->ops->set_records(be->ctx, up, blob, len, own_mark(sc), mark_mask(sc),
	    &os_err)) != 0) {
		backend_outcome(o, "flow: set records", rc, os_err);
		wfpb__net_close(up);
		return -1;
	}
	if (wfpb__net_connect(up, remote, &os_err) != 0 || wfpb__net_addrs(up, NULL, &up_local, &os_err) != 0) {
		os_outcome(o, "flow: connect", os_err);
		wfpb__net_close(up);
		return -1;
	}
	wfpb__audit_addr(rp, &up_local);
	*out = up;
	return 0;
}

/*
 * A flow that stays on its listener (wfp): the proxy read the first datagram and gives it
 * here. Its records are the proxy's word (apply_foreign); the original destination is read
 * from its context where the backend knows the layout. The broker opens upstream, sends the
 * datagram with the records unless hold_first (then without records only: they travel on
 * that datagram alone), and hands upstream over. One record, as a Flow's.
 */
static void
flow_given(struct wfpb_scope *sc, const struct wfpb_listener *l, const struct req_flow *f, struct reply *rp,
    struct outcome *o, uint64_t now_ms)
{
	const struct wfpb_backend	*be = sc->backend;
	const struct wfpb_buf		records = { (uint8_t *)(uintptr_t)f->records.blob, f->records.len };
	const struct wfpb_buf		context = { (uint8_t *)(uintptr_t)f->context, f->context_len };
	struct wfpb_addr		orig, unknown, remote;
	const uint8_t			*blob = NULL, *hash;
	size_t				len = 0;
	wfpb_sock			up = WFPB_SOCK_NONE;
	int				os_err = 0, rc;

	memset(&orig, 0, sizeof(orig));
	if (be->ops->original_dst == NULL || be->ops->original_dst(be->ctx, WFPB_SOCK_NONE, &records, &context, &orig) != 0)
		memset(&orig, 0, sizeof(orig));
	memset(&unknown, 0, sizeof(unknown));
	unknown.family = f->client.family;	/* the record's second address, unspecified: the context said nothing */
	wfpb__audit_addr(rp, &f->client);
	wfpb__audit_addr(rp, orig.family != 0 ? &orig : &unknown);
	if (!f->without_records) {
		if (records_bytes(sc, &f->records, "flow", &blob, &len, &hash, rp, o, now_ms) != 0)
			return;
		wfpb__audit_blob(rp, blob, len, NULL);
	}
	rp->orig_dst = orig;
	do
		randombytes_buf(&rp->flow_id, sizeof(rp->flow_id));
	while (rp->flow_id == 0);
	if (f->hold_first && len > 0) {
		wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__EOPNOTSUPP, "flow: on the %s backend the records travel "
		    "on the first datagram, which the broker sends; hold_first goes only without records", be->ops->name);
		return;
	}
	if (f->remote.family == 0 && orig.family == 0) {
		wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__EINVAL, "flow: the original destination is not in a "
		    "context layout the broker reads (docs/CALLOUTS.md); name remote");
		return;
	}
	remote = f->remote.family != 0 ? f->remote : orig;
	wfpb__audit_addr(rp, &remote);
	/* The records go with the first datagram (udp_send_first), not on the socket. */
	if (flow_destination_ok(sc, &remote, &l->local, "", "", o) != 0 ||
	    flow_upstream(sc, &remote, 0, NULL, 0, &up, rp, o) != 0)
		return;
	wfpbroker__v1__flow_response__init(&rp->flow);
	if (!f->hold_first) {
		if ((rc = be->ops->udp_send_first(be->ctx, up, f->payload, f->payload_len, blob, len, &os_err)) != 0) {
			backend_outcome(o, "flow: the first datagram", rc, os_err);
			wfpb__net_close(up);
			return;
		}
		rp->flow.forwarded = 1;
	}
	rp->flow.client = wfpb__addr_to_pb(rp, 0, &f->client);
	if (orig.family != 0)
		rp->flow.original_destination = wfpb__addr_to_pb(rp, 1, &orig);
	rp->flow.remote = wfpb__addr_to_pb(rp, 2, &remote);
	if (give_socket(sc, rp, up, &rp->flow.upstream, o) != 0)
		return;
	rp->resp.result_case = WFPBROKER__V1__RESPONSE__RESULT_FLOW;
	rp->resp.flow = &rp->flow;
}

/*
 * A new flow's first datagram on UDP listener lsock: read with its records, context and
 * original destination; the reply socket and the upstream one (records applied, connected,
 * the first datagram sent unless hold_first) made; both handed over. WFPB_E_AGAIN when no
 * datagram waits; else 0 with rp and o the answer.
 */
static int
flow_received(struct wfpb_scope *sc, wfpb_sock lsock, const struct wfpb_addr *want_remote, int hold_first,
    int without_records, struct reply *rp, struct outcome *o)
{
	const struct wfpb_backend	*be = sc->backend;
	struct wfpb_addr		from, orig, remote, local;
	wfpb_sock			reply = WFPB_SOCK_NONE, up = WFPB_SOCK_NONE;
	size_t				len = 0;
	int				os_err = 0, rc;

	if ((rp->payload.data = malloc(FLOW_PAYLOAD_MAX)) == NULL) {
		wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__INTERNAL, "flow: out of memory");
		return 0;
	}
	rc = be->ops->udp_receive(be->ctx, lsock, rp->payload.data, FLOW_PAYLOAD_MAX, &len, &from, &orig,
	    &rp->records, &rp->context, &os_err);
	if (rc == WFPB_E_AGAIN)
		return rc;
	if (rc != 0) {
		backend_outcome(o, "flow: receive", rc, os_err);
		return 0;
	}
	wfpb__audit_addr(rp, &from);
	wfpb__audit_addr(rp, &orig);
	wfpb__audit_blob(rp, rp->records.data, rp->records.len, NULL);
	rp->orig_dst = orig;
	do
		randombytes_buf(&rp->flow_id, sizeof(rp->flow_id));
	while (rp->flow_id == 0);
	if (len > FLOW_PAYLOAD_MAX) {
		wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__ENOBUFS, "flow: the first datagram is %zu bytes, more "
		    "than %u; it was dropped", len, FLOW_PAYLOAD_MAX);
		return 0;
	}
	rp->payload.len = len;
	if (rp->records.len == 0 && sc->policy->require_records) {
		wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__NOT_FOUND, "flow: the datagram carries no redirect records "
		    "and principal %s requires them; it was dropped", sc->principal);
		return 0;
	}
	remote = want_remote->family != 0 ? *want_remote : orig;
	wfpb__audit_addr(rp, &remote);
	if (wfpb__net_addrs(lsock, NULL, &local, &os_err) != 0)
		memset(&local, 0, sizeof(local));	/* unknown: no address is the same */
	if (flow_destination_ok(sc, &remote, &local, " (a datagram no rule redirected?)", "; it was dropped", o) != 0)
		return 0;
	if ((rc = be->ops->udp_reply(be->ctx, &orig, &from, &reply, &os_err)) != 0) {
		backend_outcome(o, "flow: the reply socket", rc, os_err);
		return 0;
	}
	if (flow_upstream(sc, &remote, 1, without_records ? NULL : rp->records.data, without_records ? 0 :
	    rp->records.len, &up, rp, o) != 0)
		goto close;
	wfpbroker__v1__flow_response__init(&rp->flow);
	if (!hold_first) {
		if (wfpb__net_send(up, rp->payload.data, len, &os_err) != 0) {
			os_outcome(o, "flow: the first datagram", os_err);
			goto close;
		}
		rp->flow.forwarded = 1;
	}
	rp->flow.client = wfpb__addr_to_pb(rp, 0, &from);
	rp->flow.original_destination = wfpb__addr_to_pb(rp, 1, &orig);
	rp->flow.remote = wfpb__addr_to_pb(rp, 2, &remote);
	rp->flow.payload.data = rp->payload.data;
	rp->flow.payload.len = len;
	rp->flow.context.data = rp->context.data;
	rp->flow.context.len = rp->context.len;
	if (give_socket(sc, rp, reply, &rp->flow.reply, o) != 0) {
		wfpb__net_close(up);
		return 0;
	}
	if (give_socket(sc, rp, up, &rp->flow.upstream, o) != 0)
		return 0;
	rp->resp.result_case = WFPBROKER__V1__RESPONSE__RESULT_FLOW;
	rp->resp.flow = &rp->flow;
	return 0;
close:
	wfpb__net_close(up);
	wfpb__net_close(reply);
	return 0;
}

void
wfpb__op_flow(struct wfpb_scope *sc, const union wfpb_req *r, struct reply *rp, struct outcome *o, uint64_t now_ms)
{
	const struct req_flow	*f = &r->flow;
	struct wfpb_listener	*l;
	char			text[WFPB_ADDR_STRLEN];

	if (f->remote.family != 0 && !in_ranges(sc->policy->udp_connect, sc->policy->nudp_connect, &f->remote)) {
		wfpb_addr_format(&f->remote, text);
		wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__DENIED, "flow: %s is outside principal %s's udp_connect "
		    "ranges", text, sc->principal);
		return;
	}
	if ((l = wfpb__find_listener(sc->socks, f->listener_id, NULL)) == NULL || !l->udp) {
		wfpb__outcome(o, l == NULL ? WFPBROKER__V1__STATUS_CODE__NOT_FOUND : WFPBROKER__V1__STATUS_CODE__EINVAL,
		    "flow: %s %llu in this session", l == NULL ? "no listener" : "a TCP listener, not a UDP one:",
		    (unsigned long long)f->listener_id);
		return;
	}
	if (f->has_first != sc->backend->ops->udp_on_listener) {
		wfpb__outcome(o, WFPBROKER__V1__STATUS_CODE__EOPNOTSUPP, f->has_first ?
		    "flow: the %s backend reads a flow's first datagram itself; send Flow without first" :
		    "flow: on the %s backend a flow stays on the listener the proxy holds; send its first datagram "
		    "in Flow.first", sc->backend->ops->name);
		return;
	}
	if (f->has_first) {
		flow_given(sc, l, f, rp, o, now_ms);
		return;
	}
	if (flow_received(sc, l->sock, &f->remote, f->hold_first, f->without_records, rp, o) != WFPB_E_AGAIN)
		return;
	/* No datagram yet: the request waits on the listener, and takes the next new flow. */
	free(rp->payload.data);
	rp->payload.data = NULL;
	rp->pend.kind = WFPB_PENDING_FLOW;
	rp->pend.watch = l->sock;
	rp->pend.want_write = 0;
	rp->pend.listener_id = l->id;
	rp->pend.started_ms = now_ms;
	rp->pend.deadline_ms = f->timeout_ms == WAIT_FOREVER ? UINT64_MAX : now_ms + f->timeout_ms;
	rp->pend.remote = f->remote;
	rp->pend.hold_first = f->hold_first;
	rp->pend.without_records = f->without_records;
	o->code = OUTCOME_PENDING;
}

/* Flow: its UDP listener is readable (or the deadline passed, or the listener is being released). */
int
wfpb__resume_flow(struct wfpb_scope *sc, const struct wfpb_pending *p, struct reply *rp, struct outcome *o,
    uint64_t now_ms, int why)
{
	int rc;

	(void)now_ms;
	if (listener_wait_ended(sc, p, o, why, "flow", "nothing received"))
		return 1;
	rc = flow_received(sc, p->watch, &p->remote, p->hold_first, p->without_records, rp, o);
	if (rc == WFPB_E_AGAIN) {
		free(rp->payload.data);
		rp->payload.data = NULL;
		return 0;
	}
	return 1;
}
