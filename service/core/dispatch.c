/*
 * The operation table and the request path: decode, validate into a C
 * struct, check permission, run the handler, encode the Response. Handlers
 * never see raw protobuf.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dispatch.h"
#include "stash.h"
#include "wfpbroker.pb-c.h"

#define PING_PAYLOAD_MAX	1024u
#define STATUS_MESSAGE_MAX	256u

typedef Wfpbroker__V1__Request Request;
typedef Wfpbroker__V1__Response Response;

/* Validated requests, one member per op. */
struct req_ping {
	const uint8_t	*payload;
	size_t		len;
};

struct req_stash {
	const uint8_t	*blob;
	size_t		len;
	int		principal_lifetime;
};

struct req_handle {
	const uint8_t	*id;	/* WFPB_STASH_ID_LEN bytes */
};

struct req_release {
	int		is_listener;
	const uint8_t	*id;
	uint64_t	listener_id;
};

union wfpb_req {
	struct req_ping		ping;
	struct req_stash	stash;
	struct req_handle	fetch;
	struct req_release	release;
};

/* What a validator or handler reports: a status code and a message. */
struct outcome {
	Wfpbroker__V1__StatusCode	code;
	int32_t				os_error;
	char				message[STATUS_MESSAGE_MAX];
};

static void
set_outcome(struct outcome *o, Wfpbroker__V1__StatusCode code, const char *fmt, ...)
{
	va_list ap;

	o->code = code;
	va_start(ap, fmt);
	vsnprintf(o->message, sizeof(o->message), fmt, ap);
	va_end(ap);
}

#define BAD(o, ...)	(set_outcome((o), WFPBROKER__V1__STATUS_CODE__BAD_REQUEST, __VA_ARGS__), -1)

/* Response parts a handler fills; they live until the Response is packed. */
struct reply {
	Response				resp;
	Wfpbroker__V1__PingResponse		ping;
	Wfpbroker__V1__StashResponse		stash;
	Wfpbroker__V1__StashHandle		handle;
	uint8_t					handle_id[WFPB_STASH_ID_LEN];
	Wfpbroker__V1__FetchResponse		fetch;
	Wfpbroker__V1__ReleaseResponse		release;
	Wfpbroker__V1__StatusResponse		status;
	Wfpbroker__V1__ReloadResponse		reload;
};

typedef int (*validate_fn)(const struct wfpb_session *, const Request *, union wfpb_req *, struct outcome *);
typedef void (*handle_fn)(struct wfpb_session *, const union wfpb_req *, struct reply *, struct outcome *,
    uint64_t);

/* Flags of a table row. */
#define NEEDS_PRINCIPAL	0x1u	/* refused to sessions no principal matched */

struct wfpb_op {
	Wfpbroker__V1__Request__OpCase	op;
	const char			*name;
	unsigned			perm;
	unsigned			flags;
	validate_fn			validate;
	handle_fn			handle;
};

static int
validate_ping(const struct wfpb_session *s, const Request *rq, union wfpb_req *r, struct outcome *o)
{
	const Wfpbroker__V1__PingRequest *p = rq->ping;

	(void)s;
	if (p->payload.len > PING_PAYLOAD_MAX)
		return BAD(o, "ping.payload: longer than %u bytes", PING_PAYLOAD_MAX);
	r->ping.payload = p->payload.data;
	r->ping.len = p->payload.len;
	return 0;
}

static int
validate_lifetime(Wfpbroker__V1__Lifetime l, const char *field, int *principal, struct outcome *o)
{
	if (l != WFPBROKER__V1__LIFETIME__SESSION && l != WFPBROKER__V1__LIFETIME__PRINCIPAL)
		return BAD(o, "%s: unknown lifetime %d", field, (int)l);
	*principal = l == WFPBROKER__V1__LIFETIME__PRINCIPAL;
	return 0;
}

static int
validate_stash(const struct wfpb_session *s, const Request *rq, union wfpb_req *r, struct outcome *o)
{
	const Wfpbroker__V1__StashRequest *p = rq->stash;

	if (p->blob.len == 0)
		return BAD(o, "stash.blob: empty");
	if (p->blob.len > s->broker->cfg.blob_max)
		return BAD(o, "stash.blob: %zu bytes, the limit is %u", p->blob.len, s->broker->cfg.blob_max);
	r->stash.blob = p->blob.data;
	r->stash.len = p->blob.len;
	return validate_lifetime(p->lifetime, "stash.lifetime", &r->stash.principal_lifetime, o);
}

static int
validate_handle(const Wfpbroker__V1__StashHandle *h, const char *field, const uint8_t **id, struct outcome *o)
{
	if (h == NULL)
		return BAD(o, "%s: missing", field);
	if (h->id.len != WFPB_STASH_ID_LEN)
		return BAD(o, "%s.id: %zu bytes, a handle is %u", field, h->id.len, WFPB_STASH_ID_LEN);
	*id = h->id.data;
	return 0;
}

static int
validate_fetch(const struct wfpb_session *s, const Request *rq, union wfpb_req *r, struct outcome *o)
{
	(void)s;
	return validate_handle(rq->fetch->handle, "fetch.handle", &r->fetch.id, o);
}

static int
validate_release(const struct wfpb_session *s, const Request *rq, union wfpb_req *r, struct outcome *o)
{
	const Wfpbroker__V1__ReleaseRequest *p = rq->release;

	(void)s;
	switch (p->target_case) {
	case WFPBROKER__V1__RELEASE_REQUEST__TARGET_HANDLE:
		r->release.is_listener = 0;
		return validate_handle(p->handle, "release.handle", &r->release.id, o);
	case WFPBROKER__V1__RELEASE_REQUEST__TARGET_LISTENER_ID:
		r->release.is_listener = 1;
		r->release.listener_id = p->listener_id;
		return 0;
	default:
		return BAD(o, "release: neither handle nor listener_id set");
	}
}

static int
validate_empty(const struct wfpb_session *s, const Request *rq, union wfpb_req *r, struct outcome *o)
{
	(void)s;
	(void)rq;
	(void)r;
	(void)o;
	return 0;
}

static void
op_ping(struct wfpb_session *s, const union wfpb_req *r, struct reply *rp, struct outcome *o, uint64_t now_ms)
{
	(void)s;
	(void)o;
	(void)now_ms;
	wfpbroker__v1__ping_response__init(&rp->ping);
	rp->ping.payload.data = (uint8_t *)(uintptr_t)r->ping.payload;
	rp->ping.payload.len = r->ping.len;
	rp->ping.protocol_version = WFPB_PROTOCOL_VERSION;
	rp->ping.service_version = (char *)(uintptr_t)WFPB_SERVICE_VERSION;
	rp->resp.result_case = WFPBROKER__V1__RESPONSE__RESULT_PING;
	rp->resp.ping = &rp->ping;
}

static void
op_stash(struct wfpb_session *s, const union wfpb_req *r, struct reply *rp, struct outcome *o, uint64_t now_ms)
{
	struct wfpb_broker	*b = s->broker;
	struct wfpb_usage	*u = wfpb_broker_usage(b, s->principal);

	if (u == NULL) {
		set_outcome(o, WFPBROKER__V1__STATUS_CODE__INTERNAL, "stash: out of memory");
		return;
	}
	if (u->stash >= s->max_stash) {
		set_outcome(o, WFPBROKER__V1__STATUS_CODE__QUOTA, "stash: principal %s holds %u entries, its limit",
		    s->principal, u->stash);
		return;
	}
	if (wfpb_stash_put(&b->stash, s->principal, r->stash.principal_lifetime ? NULL : &s->stash_list,
	    r->stash.blob, r->stash.len, now_ms + b->cfg.stash_ttl_ms, rp->handle_id) != 0) {
		set_outcome(o, WFPBROKER__V1__STATUS_CODE__INTERNAL, "stash: out of memory");
		return;
	}
	u->stash++;
	wfpbroker__v1__stash_response__init(&rp->stash);
	wfpbroker__v1__stash_handle__init(&rp->handle);
	rp->handle.id.data = rp->handle_id;
	rp->handle.id.len = WFPB_STASH_ID_LEN;
	rp->stash.handle = &rp->handle;
	rp->resp.result_case = WFPBROKER__V1__RESPONSE__RESULT_STASH;
	rp->resp.stash = &rp->stash;
}

static void
op_fetch(struct wfpb_session *s, const union wfpb_req *r, struct reply *rp, struct outcome *o, uint64_t now_ms)
{
	const struct wfpb_stash_entry *e = wfpb_stash_get(&s->broker->stash, r->fetch.id, s->principal, now_ms);

	if (e == NULL) {
		set_outcome(o, WFPBROKER__V1__STATUS_CODE__NOT_FOUND, "fetch: no such handle for principal %s",
		    s->principal);
		return;
	}
	wfpbroker__v1__fetch_response__init(&rp->fetch);
	rp->fetch.blob.data = e->blob;
	rp->fetch.blob.len = e->len;
	rp->resp.result_case = WFPBROKER__V1__RESPONSE__RESULT_FETCH;
	rp->resp.fetch = &rp->fetch;
}

static void
op_release(struct wfpb_session *s, const union wfpb_req *r, struct reply *rp, struct outcome *o,
    uint64_t now_ms)
{
	(void)now_ms;
	if (r->release.is_listener || wfpb_stash_release(&s->broker->stash, r->release.id, s->principal) != 0) {
		set_outcome(o, WFPBROKER__V1__STATUS_CODE__NOT_FOUND, "release: no such %s for principal %s",
		    r->release.is_listener ? "listener" : "handle", s->principal);
		return;
	}
	wfpbroker__v1__release_response__init(&rp->release);
	rp->resp.result_case = WFPBROKER__V1__RESPONSE__RESULT_RELEASE;
	rp->resp.release = &rp->release;
}

static void
op_status(struct wfpb_session *s, const union wfpb_req *r, struct reply *rp, struct outcome *o, uint64_t now_ms)
{
	struct wfpb_broker *b = s->broker;

	(void)r;
	(void)o;
	wfpbroker__v1__status_response__init(&rp->status);
	rp->status.sessions = b->sessions;
	rp->status.requests = b->n.requests;
	rp->status.denials = b->n.denials;
	rp->status.stash_entries = (uint32_t)b->stash.count;
	rp->status.stash_bytes = b->stash.bytes;
	rp->status.listeners = 0;
	rp->status.backend = b->cfg.backend;
	rp->status.uptime_ms = now_ms - b->start_ms;
	rp->status.records_applied = 0;
	rp->resp.result_case = WFPBROKER__V1__RESPONSE__RESULT_STATUS_RESULT;
	rp->resp.status_result = &rp->status;
}

static void
op_reload(struct wfpb_session *s, const union wfpb_req *r, struct reply *rp, struct outcome *o, uint64_t now_ms)
{
	struct wfpb_ini_error	err;
	int			rc;

	(void)r;
	(void)now_ms;
	if ((rc = wfpb_broker_reload_file(s->broker, &err)) != 0) {
		if (err.line > 0)
			set_outcome(o, WFPBROKER__V1__STATUS_CODE__EINVAL, "reload: line %u: %s; old policy kept",
			    err.line, err.message);
		else
			set_outcome(o, WFPBROKER__V1__STATUS_CODE__EINVAL, "reload: %s; old policy kept", err.message);
		return;
	}
	wfpbroker__v1__reload_response__init(&rp->reload);
	rp->reload.principals = (uint32_t)s->broker->cfg.nprincipals;
	rp->resp.result_case = WFPBROKER__V1__RESPONSE__RESULT_RELOAD;
	rp->resp.reload = &rp->reload;
}

/* Every operation the broker performs for a client. Nothing else runs. */
static const struct wfpb_op ops[] = {
	{ WFPBROKER__V1__REQUEST__OP_PING, "ping", 0, 0, validate_ping, op_ping },
	{ WFPBROKER__V1__REQUEST__OP_STASH, "stash", WFPB_PERM_STASH, NEEDS_PRINCIPAL, validate_stash, op_stash },
	{ WFPBROKER__V1__REQUEST__OP_FETCH, "fetch", WFPB_PERM_FETCH, NEEDS_PRINCIPAL, validate_fetch, op_fetch },
	{ WFPBROKER__V1__REQUEST__OP_RELEASE, "release", 0, NEEDS_PRINCIPAL, validate_release, op_release },
	{ WFPBROKER__V1__REQUEST__OP_STATUS, "status", WFPB_PERM_ADMIN, NEEDS_PRINCIPAL, validate_empty,
	    op_status },
	{ WFPBROKER__V1__REQUEST__OP_RELOAD, "reload", WFPB_PERM_ADMIN, NEEDS_PRINCIPAL, validate_empty,
	    op_reload },
};

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
		set_outcome(o, WFPBROKER__V1__STATUS_CODE__DENIED, "%s: caller identity could not be read", op->name);
		return -1;
	}
	wfpb_session_resolve(s);
	if (s->principal[0] == '\0') {
		set_outcome(o, WFPBROKER__V1__STATUS_CODE__DENIED, "%s: no principal matches user %s", op->name,
		    s->id.user);
		return -1;
	}
	if (s->over_limit) {
		set_outcome(o, WFPBROKER__V1__STATUS_CODE__QUOTA, "%s: principal %s has reached its session limit",
		    op->name, s->principal);
		return -1;
	}
	if ((s->perms & op->perm) != op->perm) {
		set_outcome(o, WFPBROKER__V1__STATUS_CODE__DENIED, "%s: not granted to principal %s", op->name,
		    s->principal);
		return -1;
	}
	return 0;
}

int
wfpb_dispatch(struct wfpb_session *s, const uint8_t *msg, size_t len, uint8_t **out, size_t *out_len,
    uint64_t now_ms)
{
	Request				*rq;
	struct reply			rp;
	struct outcome			o = { WFPBROKER__V1__STATUS_CODE__OK, 0, "" };
	Wfpbroker__V1__Status		st;
	const struct wfpb_op		*op;
	union wfpb_req			r;
	size_t				n;

	memset(&rp, 0, sizeof(rp));
	wfpbroker__v1__response__init(&rp.resp);
	s->broker->n.requests++;

	rq = wfpbroker__v1__request__unpack(NULL, len, msg);
	if (rq == NULL) {
		set_outcome(&o, WFPBROKER__V1__STATUS_CODE__BAD_REQUEST, "request: not a valid Request message");
	} else {
		rp.resp.request_id = rq->request_id;
		if (rq->op_case == WFPBROKER__V1__REQUEST__OP__NOT_SET)
			set_outcome(&o, WFPBROKER__V1__STATUS_CODE__BAD_REQUEST, "request: no operation set");
		else if ((op = find_op(rq->op_case)) == NULL)
			set_outcome(&o, WFPBROKER__V1__STATUS_CODE__EOPNOTSUPP,
			    "operation %d is not available in this broker", (int)rq->op_case);
		else if (authorize(s, op, &o) == 0 && op->validate(s, rq, &r, &o) == 0)
			op->handle(s, &r, &rp, &o, now_ms);
	}
	if (o.code == WFPBROKER__V1__STATUS_CODE__BAD_REQUEST)
		s->broker->n.bad_requests++;
	else if (o.code == WFPBROKER__V1__STATUS_CODE__DENIED)
		s->broker->n.denials++;
	if (o.code != WFPBROKER__V1__STATUS_CODE__OK)
		rp.resp.result_case = WFPBROKER__V1__RESPONSE__RESULT__NOT_SET;

	wfpbroker__v1__status__init(&st);
	st.code = o.code;
	st.message = o.message;
	st.os_error = o.os_error;
	rp.resp.status = &st;

	n = wfpbroker__v1__response__get_packed_size(&rp.resp);
	if (n > WFPB_CHANNEL_MSG_MAX)
		abort();	/* responses are bounded by construction */
	*out = malloc(n ? n : 1);
	if (*out != NULL)
		*out_len = wfpbroker__v1__response__pack(&rp.resp, *out);
	if (rq != NULL)
		wfpbroker__v1__request__free_unpacked(rq, NULL);
	return *out == NULL ? WFPB_E_NOMEM : 0;
}
