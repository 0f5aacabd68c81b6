/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The operation table and the request path: decode, validate into a C
 * struct, check permission, run the handler, encode the Response. Handlers
 * never see raw protobuf.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "dispatch.h"
#include "pb_arena.h"
#include "log.h"
#include "net.h"
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

/* Records named by a request: a stash handle or the blob itself. */
struct req_records {
	const uint8_t	*handle;	/* WFPB_STASH_ID_LEN bytes, or NULL */
	const uint8_t	*blob;
	size_t		len;
};

struct req_listen {
	struct wfpb_addr	local;
	int			backlog;
};

struct req_accept {
	uint64_t	listener_id;
	uint32_t	timeout_ms;
	int		principal_lifetime;
};

struct req_connect {
	struct req_records	records;
	struct wfpb_addr	remote;
	struct wfpb_addr	local;	/* family 0: none */
	uint32_t		timeout_ms;
};

/* A client-owned socket: a received descriptor (POSIX) or a handle in the client's process (Windows). */
struct req_sock {
	unsigned	fd;		/* index into the session's received descriptors */
	int		by_handle;
	uint64_t	handle;
};

struct req_query {
	struct req_sock	sock;
	int		principal_lifetime;
};

struct req_apply {
	struct req_sock		sock;
	struct req_records	records;
};

struct req_prepare {
	struct req_records	records;
	int			family;		/* WFPB_AF_* */
};

union wfpb_req {
	struct req_ping		ping;
	struct req_stash	stash;
	struct req_handle	fetch;
	struct req_release	release;
	struct req_listen	listen;
	struct req_accept	accept;
	struct req_connect	connect;
	struct req_query	query;
	struct req_apply	apply;
	struct req_prepare	prepare;
};

#define BACKLOG_DEFAULT		128
#define BACKLOG_MAX		1024u
#define ACCEPT_TIMEOUT_DEFAULT	30000u
#define ACCEPT_TIMEOUT_MAX	600000u
#define CONNECT_TIMEOUT_DEFAULT	10000u
#define CONNECT_TIMEOUT_MAX	120000u

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

/* A handler that left the operation pending sets this instead of a status. */
#define OUTCOME_PENDING	((Wfpbroker__V1__StatusCode)-1)

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
	Wfpbroker__V1__ListenResponse		listen;
	Wfpbroker__V1__AcceptResponse		accept;
	Wfpbroker__V1__ConnectResponse		connect;
	Wfpbroker__V1__QueryRecordsResponse	query;
	Wfpbroker__V1__ApplyRecordsResponse	apply;
	Wfpbroker__V1__PrepareResponse		prepare;
	Wfpbroker__V1__SocketTransfer		xfer;
	Wfpbroker__V1__Address			addr[2];
	uint8_t					addr_bytes[2][16];
	struct wfpb_buf				records, context;	/* freed after packing */
	wfpb_sock				attach;			/* handed over with the response */
	uint8_t					handover[WFPB_HANDOVER_MAX];	/* WSAPROTOCOL_INFOW */
	/* What the audit record names: addresses and the blob involved (hashed, never stored). */
	struct wfpb_addr			audit_addr[2];
	unsigned				n_audit_addr;
	const uint8_t				*audit_blob;
	size_t					audit_blob_len;
	uint8_t					audit_hash[32];	/* used when audit_blob is NULL */
	int					has_audit_hash;
	int					audited;	/* its record was written before the effect */
	int					rate_limited;	/* refused by the audit rate limit */
};

static void
audit_addr(struct reply *rp, const struct wfpb_addr *a)
{
	if (rp->n_audit_addr < 2)
		rp->audit_addr[rp->n_audit_addr++] = *a;
}

typedef int (*validate_fn)(const struct wfpb_session *, const Request *, union wfpb_req *, struct outcome *);
typedef void (*handle_fn)(struct wfpb_session *, const union wfpb_req *, struct reply *, struct outcome *,
    uint64_t);

static void finish_accept(struct wfpb_session *, wfpb_sock, struct reply *, struct outcome *, uint64_t);

/* Flags of a table row. */
#define NEEDS_PRINCIPAL	0x1u	/* refused to sessions no principal matched */
#define DURABLE		0x2u	/* has an effect outside the broker: answered only once audited durably */
/* How long an ApplyRecords waits for its record to be durable before it gives up, having done nothing. */
#define APPLY_AUDIT_WAIT_MS	30000u

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

/* The blob an answer's audit record names: its hash is the stash entry's when it came from one. */
static void
audit_blob(struct reply *rp, const uint8_t *blob, size_t len, const uint8_t *hash)
{
	if (hash != NULL) {
		memcpy(rp->audit_hash, hash, sizeof(rp->audit_hash));
		rp->has_audit_hash = 1;
		return;
	}
	rp->audit_blob = blob;
	rp->audit_blob_len = len;
}

/*
 * Stashes blob under the session's principal, within its quota: Stash itself,
 * and the records Accept and QueryRecords read. Fills rp->handle and names the
 * entry's hash (computed once, by the stash) in the audit record. 0, or -1
 * with the outcome set; `what` names the operation and `full` what its
 * refusal means for the caller.
 */
static int
stash_blob(struct wfpb_session *s, const uint8_t *blob, size_t len, int queried, int principal_lifetime,
    struct reply *rp, struct outcome *o, const char *what, const char *full, uint64_t now_ms)
{
	struct wfpb_broker		*b = s->broker;
	struct wfpb_usage		*u = wfpb_broker_usage(b, s->principal);
	const struct wfpb_stash_entry	*e;

	if (u == NULL) {
		set_outcome(o, WFPBROKER__V1__STATUS_CODE__INTERNAL, "%s: out of memory", what);
		return -1;
	}
	if (u->stash >= s->max_stash) {
		set_outcome(o, WFPBROKER__V1__STATUS_CODE__QUOTA, "%s: principal %s holds %u entries, its limit%s",
		    what, s->principal, u->stash, full);
		return -1;
	}
	/* Records a backend read are bounded like a client's blob: every stash entry fits blob_max. */
	if (len > b->cfg.blob_max) {
		set_outcome(o, WFPBROKER__V1__STATUS_CODE__ENOBUFS, "%s: %zu bytes of records, more than blob_max (%u)",
		    what, len, b->cfg.blob_max);
		return -1;
	}
	if (wfpb_stash_put(&b->stash, s->principal, principal_lifetime ? NULL : &s->stash_list, blob, len, queried,
	    now_ms + b->cfg.stash_ttl_ms, rp->handle_id, &e) != 0) {
		set_outcome(o, WFPBROKER__V1__STATUS_CODE__INTERNAL, "%s: out of memory", what);
		return -1;
	}
	u->stash++;
	audit_blob(rp, blob, len, e->hash);
	wfpbroker__v1__stash_handle__init(&rp->handle);
	rp->handle.id.data = rp->handle_id;
	rp->handle.id.len = WFPB_STASH_ID_LEN;
	return 0;
}

static void
op_stash(struct wfpb_session *s, const union wfpb_req *r, struct reply *rp, struct outcome *o, uint64_t now_ms)
{
	if (stash_blob(s, r->stash.blob, r->stash.len, 0, r->stash.principal_lifetime, rp, o, "stash", "", now_ms) != 0)
		return;
	wfpbroker__v1__stash_response__init(&rp->stash);
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
	audit_blob(rp, e->blob, e->len, e->hash);
	wfpbroker__v1__fetch_response__init(&rp->fetch);
	rp->fetch.blob.data = e->blob;
	rp->fetch.blob.len = e->len;
	rp->resp.result_case = WFPBROKER__V1__RESPONSE__RESULT_FETCH;
	rp->resp.fetch = &rp->fetch;
}

static struct wfpb_listener *find_listener(struct wfpb_session *, uint64_t, struct wfpb_listener ***);

static int
release_listener(struct wfpb_session *s, uint64_t id)
{
	struct wfpb_listener **link, *l = find_listener(s, id, &link);

	if (l == NULL)
		return WFPB_E_NOENT;
	*link = l->next;
	wfpb__listener_free(s, l);
	return 0;
}

static void
op_release(struct wfpb_session *s, const union wfpb_req *r, struct reply *rp, struct outcome *o,
    uint64_t now_ms)
{
	int rc;

	(void)now_ms;
	rc = r->release.is_listener ? release_listener(s, r->release.listener_id) :
	    wfpb_stash_release(&s->broker->stash, r->release.id, s->principal);
	if (rc != 0) {
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
	rp->status.listeners = b->listeners;
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
	}
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

/* --- addresses, records and sockets ---------------------------------------- */

static int
addr_from_pb(const Wfpbroker__V1__Address *a, const char *field, int need_port, struct wfpb_addr *out,
    struct outcome *o)
{
	memset(out, 0, sizeof(*out));
	if (a == NULL)
		return BAD(o, "%s: missing", field);
	if (a->family == WFPBROKER__V1__ADDRESS_FAMILY__AF_INET)
		out->family = WFPB_AF_INET;
	else if (a->family == WFPBROKER__V1__ADDRESS_FAMILY__AF_INET6)
		out->family = WFPB_AF_INET6;
	else
		return BAD(o, "%s.family: must be AF_INET or AF_INET6", field);
	if (a->addr.len != wfpb_addr_len(out->family))
		return BAD(o, "%s.addr: %zu bytes, %s needs %zu", field, a->addr.len,
		    out->family == WFPB_AF_INET ? "AF_INET" : "AF_INET6", wfpb_addr_len(out->family));
	if (a->port > 65535 || (need_port && a->port == 0))
		return BAD(o, "%s.port: %u is not a valid port", field, a->port);
	if (a->scope_id != 0 && out->family != WFPB_AF_INET6)
		return BAD(o, "%s.scope_id: only for AF_INET6", field);
	memcpy(out->addr, a->addr.data, a->addr.len);
	out->port = (uint16_t)a->port;
	out->scope_id = a->scope_id;
	/* Every policy check and every socket call sees one spelling of an IPv4 address. */
	(void)wfpb_addr_canonical(out);
	return 0;
}

static Wfpbroker__V1__Address *
addr_to_pb(struct reply *rp, int slot, const struct wfpb_addr *a)
{
	Wfpbroker__V1__Address *pb = &rp->addr[slot];

	wfpbroker__v1__address__init(pb);
	pb->family = a->family == WFPB_AF_INET ? WFPBROKER__V1__ADDRESS_FAMILY__AF_INET :
	    WFPBROKER__V1__ADDRESS_FAMILY__AF_INET6;
	memcpy(rp->addr_bytes[slot], a->addr, 16);
	pb->addr.data = rp->addr_bytes[slot];
	pb->addr.len = wfpb_addr_len(a->family);
	pb->port = a->port;
	pb->scope_id = a->scope_id;
	return pb;
}

static int
records_from_pb(const struct wfpb_session *s, const Wfpbroker__V1__RecordSource *src, const char *field,
    struct req_records *out, struct outcome *o)
{
	memset(out, 0, sizeof(*out));
	if (src == NULL)
		return BAD(o, "%s: missing", field);
	switch (src->source_case) {
	case WFPBROKER__V1__RECORD_SOURCE__SOURCE_HANDLE:
		return validate_handle(src->handle, field, &out->handle, o);
	case WFPBROKER__V1__RECORD_SOURCE__SOURCE_BLOB:
		if (src->blob.len == 0)
			return BAD(o, "%s.blob: empty", field);
		if (src->blob.len > s->broker->cfg.blob_max)
			return BAD(o, "%s.blob: %zu bytes, the limit is %u", field, src->blob.len,
			    s->broker->cfg.blob_max);
		out->blob = src->blob.data;
		out->len = src->blob.len;
		return 0;
	default:
		return BAD(o, "%s: neither handle nor blob set", field);
	}
}

/* The principal's own mark from policy (netfilter), never from a request; 0 when it has none. */
static uint32_t
own_mark(const struct wfpb_session *s)
{
	return s->policy != NULL && s->policy->has_mark ? s->policy->mark : 0;
}

/*
 * Resolves records to bytes: a stash entry this principal owns, the inline
 * blob, or none (NULL, 0). Provenance: records the broker queried itself
 * (Accept, QueryRecords) are applied for any principal with the op's grant;
 * bytes the client supplied (inline, or a Stash of its own) could be any
 * redirect state or mark, so only for a principal granted apply_foreign.
 */
static int
records_bytes(struct wfpb_session *s, const struct req_records *r, const char *what, const uint8_t **blob,
    size_t *len, const uint8_t **hash, struct outcome *o, uint64_t now_ms)
{
	const struct wfpb_stash_entry	*e = NULL;
	int				foreign;

	*hash = NULL;
	if (r->handle == NULL) {
		*blob = r->blob;
		*len = r->len;
		foreign = r->len > 0;
	} else if ((e = wfpb_stash_get(&s->broker->stash, r->handle, s->principal, now_ms)) == NULL) {
		set_outcome(o, WFPBROKER__V1__STATUS_CODE__NOT_FOUND, "records: no such handle for principal %s",
		    s->principal);
		return -1;
	} else {
		*blob = e->blob;
		*len = e->len;
		*hash = e->hash;
		foreign = !e->queried;
	}
	if (foreign && !(s->perms & WFPB_PERM_APPLY_FOREIGN)) {
		set_outcome(o, WFPBROKER__V1__STATUS_CODE__DENIED, "%s: records %s were not queried by the broker, and "
		    "principal %s is not granted apply_foreign", what, e != NULL ? "stashed by the client" : "sent inline",
		    s->principal);
		return -1;
	}
	return 0;
}

/* The record marks a principal may carry on (netfilter; policy, never the request). */
static uint32_t
mark_mask(const struct wfpb_session *s)
{
	return s->policy != NULL ? s->policy->mark_mask : 0;
}

static int
socket_from_pb(const struct wfpb_session *s, const Wfpbroker__V1__SocketTransfer *x, const char *field,
    struct req_sock *out, struct outcome *o)
{
	memset(out, 0, sizeof(*out));
	if (x == NULL)
		return BAD(o, "%s: missing", field);
	if (x->kind_case == WFPBROKER__V1__SOCKET_TRANSFER__KIND_HANDLE) {
		if (x->handle == 0)
			return BAD(o, "%s.handle: 0", field);
		out->by_handle = 1;
		out->handle = x->handle;
		return 0;
	}
	if (x->kind_case != WFPBROKER__V1__SOCKET_TRANSFER__KIND_FD_INDEX)
		return BAD(o, "%s: neither fd_index nor handle set", field);
	if (x->fd_index >= s->n_in)
		return BAD(o, "%s.fd_index: %u, but %u descriptors came with the request", field, x->fd_index, s->n_in);
	out->fd = x->fd_index;
	return 0;
}

/* The request's socket stays with a pending operation: it is no longer closed after the request. */
static void
take_request_socket(struct wfpb_session *s, wfpb_sock sock)
{
	unsigned i;

	for (i = 0; i < s->n_in; i++)
		if (s->in_fds[i] == sock)
			s->in_fds[i] = WFPB_SOCK_NONE;
}

/*
 * The client-owned socket a request names. One pulled by handle joins the
 * request's received descriptors, so it is closed after the request as they are.
 */
static int
request_socket(struct wfpb_session *s, const struct req_sock *r, unsigned perm, const char *what, wfpb_sock *out,
    struct outcome *o)
{
	int os_err = 0, rc, family;

	if (!r->by_handle) {
		/* Whatever a client sends is checked for what it is before any ioctl or sockopt touches it. */
		if (!wfpb__net_is_tcp(s->in_fds[r->fd], &family)) {
			set_outcome(o, WFPBROKER__V1__STATUS_CODE__EINVAL,
			    "%s: descriptor %u is not a TCP socket of AF_INET or AF_INET6", what, r->fd);
			return -1;
		}
		*out = s->in_fds[r->fd];
		return 0;
	}
	/*
	 * The pull may wait on whatever the client named, so it runs without the
	 * core lock (the connection's own lock still keeps this session to this
	 * thread). Meanwhile a reload may have changed the policy: the grant is
	 * looked at again once the lock is back.
	 */
	wfpb_core_leave(s->broker);
	rc = wfpb__net_pull(s->id.process, r->handle, out, &os_err);
	wfpb_core_enter(s->broker);
	wfpb_session_resolve(s);
	if (rc == 0 && !(s->perms & perm)) {
		wfpb__net_close(*out);
		set_outcome(o, WFPBROKER__V1__STATUS_CODE__DENIED, "%s: no longer granted to principal %s", what,
		    s->principal[0] ? s->principal : "(none)");
		return -1;
	}
	if (rc == 0 && !wfpb__net_is_tcp(*out, &family)) {
		wfpb__net_close(*out);
		set_outcome(o, WFPBROKER__V1__STATUS_CODE__EINVAL,
		    "%s: handle %llu is not a TCP socket of AF_INET or AF_INET6", what, (unsigned long long)r->handle);
		return -1;
	}
	if (rc == WFPB_E_TIMEOUT) {
		set_outcome(o, WFPBROKER__V1__STATUS_CODE__EINVAL,
		    "%s: handle %llu did not answer as a socket in time (a file with I/O pending?)", what,
		    (unsigned long long)r->handle);
		return -1;
	}
	if (rc == WFPB_E_LIMIT) {
		set_outcome(o, WFPBROKER__V1__STATUS_CODE__UNAVAILABLE,
		    "%s: too many handles pulled earlier still do not answer; try later", what);
		return -1;
	}
	if (rc == WFPB_E_UNSUPPORTED) {
		set_outcome(o, WFPBROKER__V1__STATUS_CODE__EOPNOTSUPP,
		    "%s: sockets by handle are a Windows transfer; send the descriptor with SCM_RIGHTS", what);
		return -1;
	}
	if (rc == WFPB_E_INVAL) {
		set_outcome(o, WFPBROKER__V1__STATUS_CODE__EINVAL, "%s: handle %llu is not a stream socket here (%s, error %d)",
		    what, (unsigned long long)r->handle, wfpb__net_strerror(os_err), os_err);
		return -1;
	}
	if (rc != 0) {
		set_outcome(o, WFPBROKER__V1__STATUS_CODE__EINVAL,
		    "%s: cannot take handle %llu from process %u (error %d)", what, (unsigned long long)r->handle,
		    (unsigned)s->id.pid, os_err);
		return -1;
	}
	wfpb_session_add_fds(s, out, 1);
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
	set_outcome(o, (Wfpbroker__V1__StatusCode)wfpb__net_status(os_err), "%s: %s", what,
	    wfpb__net_strerror(os_err));
	o->os_error = os_err;
}

static void
backend_outcome(struct outcome *o, const char *what, int code, int os_err)
{
	const ProtobufCEnumValue *v =
	    protobuf_c_enum_descriptor_get_value(&wfpbroker__v1__status_code__descriptor, code);

	if (code == WFPBROKER__V1__STATUS_CODE__ENOBUFS)
		set_outcome(o, WFPBROKER__V1__STATUS_CODE__ENOBUFS, "%s: the redirect data is larger than %u bytes, "
		    "the limit", what, WFPB_REDIRECT_MAX);
	else
		set_outcome(o, v != NULL ? (Wfpbroker__V1__StatusCode)code : WFPBROKER__V1__STATUS_CODE__INTERNAL,
		    "%s: the backend refused (%s)", what, v != NULL ? v->name : "unknown code");
	o->os_error = os_err;
	wfpb_event(WFPB_EVENT_BACKEND, "%s (OS error %d)", o->message, os_err);
}

/*
 * Hands sock to the client: WSAPROTOCOL_INFOW bytes for the client's PID
 * (Windows), or an SCM_RIGHTS attachment (POSIX). Takes ownership of sock.
 */
static int
give_socket(struct wfpb_session *s, struct reply *rp, wfpb_sock sock, Wfpbroker__V1__SocketTransfer **field,
    struct outcome *o)
{
	size_t	len;
	int	os_err = 0, rc;

	wfpbroker__v1__socket_transfer__init(&rp->xfer);
	rc = wfpb__net_handover(sock, s->id.pid, s->id.process, rp->handover, sizeof(rp->handover), &len, &os_err);
	if (rc == 0) {
		rp->xfer.kind_case = WFPBROKER__V1__SOCKET_TRANSFER__KIND_WSA_PROTOCOL_INFO;
		rp->xfer.wsa_protocol_info.data = rp->handover;
		rp->xfer.wsa_protocol_info.len = len;
	} else if (rc == WFPB_E_UNSUPPORTED) {
		rp->xfer.kind_case = WFPBROKER__V1__SOCKET_TRANSFER__KIND_FD_INDEX;
		rp->xfer.fd_index = 0;
		rp->attach = sock;
	} else {
		os_outcome(o, "socket hand-over", os_err);
		wfpb__net_close(sock);
		return -1;
	}
	*field = &rp->xfer;
	return 0;
}

/* --- Listen, Accept, Connect, QueryRecords, ApplyRecords ------------------- */

static int
validate_listen(const struct wfpb_session *s, const Request *rq, union wfpb_req *r, struct outcome *o)
{
	(void)s;
	if (addr_from_pb(rq->listen->local, "listen.local", 0, &r->listen.local, o) != 0)
		return -1;
	if (rq->listen->backlog > BACKLOG_MAX)
		return BAD(o, "listen.backlog: %u, the limit is %u", rq->listen->backlog, BACKLOG_MAX);
	r->listen.backlog = rq->listen->backlog ? (int)rq->listen->backlog : BACKLOG_DEFAULT;
	return 0;
}

static void
op_listen(struct wfpb_session *s, const union wfpb_req *r, struct reply *rp, struct outcome *o, uint64_t now_ms)
{
	struct wfpb_listener	*l;
	char			text[WFPB_ADDR_STRLEN];
	int			os_err = 0;

	(void)now_ms;
	wfpb_addr_format(&r->listen.local, text);
	if (!in_ranges(s->policy->listen, s->policy->nlisten, &r->listen.local)) {
		set_outcome(o, WFPBROKER__V1__STATUS_CODE__DENIED, "listen: %s is outside principal %s's listen ranges",
		    text, s->principal);
		return;
	}
	if (s->nlisteners >= WFPB_LISTENERS_MAX) {
		set_outcome(o, WFPBROKER__V1__STATUS_CODE__QUOTA, "listen: this session already holds %u listeners",
		    WFPB_LISTENERS_MAX);
		return;
	}
	if ((l = calloc(1, sizeof(*l))) == NULL) {
		set_outcome(o, WFPBROKER__V1__STATUS_CODE__INTERNAL, "listen: out of memory");
		return;
	}
	if (wfpb__admit_listener_take(s, l->owner) != 0) {
		free(l);
		set_outcome(o, WFPBROKER__V1__STATUS_CODE__QUOTA, "listen: principal %s holds %u listeners, its limit",
		    s->principal, s->broker->cfg.max_listeners_per_principal);
		return;
	}
	if (wfpb__net_listen(&r->listen.local, r->listen.backlog, &l->sock, &l->local, &os_err) != 0) {
		wfpb__admit_listener_drop(s->broker, l->owner);
		free(l);
		os_outcome(o, "listen", os_err);
		return;
	}
	audit_addr(rp, &l->local);
	l->id = s->broker->next_listener_id++;
	l->next = s->listeners;
	s->listeners = l;
	s->nlisteners++;
	s->broker->listeners++;
	wfpbroker__v1__listen_response__init(&rp->listen);
	rp->listen.listener_id = l->id;
	rp->listen.local = addr_to_pb(rp, 0, &l->local);
	rp->resp.result_case = WFPBROKER__V1__RESPONSE__RESULT_LISTEN;
	rp->resp.listen = &rp->listen;
}

static struct wfpb_listener *
find_listener(struct wfpb_session *s, uint64_t id, struct wfpb_listener ***link)
{
	struct wfpb_listener **pp;

	for (pp = &s->listeners; *pp != NULL; pp = &(*pp)->next) {
		if ((*pp)->id == id) {
			if (link != NULL)
				*link = pp;
			return *pp;
		}
	}
	return NULL;
}

static int
validate_accept(const struct wfpb_session *s, const Request *rq, union wfpb_req *r, struct outcome *o)
{
	const Wfpbroker__V1__AcceptRequest *a = rq->accept;

	(void)s;
	if (a->listener_id == 0)
		return BAD(o, "accept.listener_id: missing");
	if (a->timeout_ms > ACCEPT_TIMEOUT_MAX)
		return BAD(o, "accept.timeout_ms: %u, the limit is %u", a->timeout_ms, ACCEPT_TIMEOUT_MAX);
	r->accept.listener_id = a->listener_id;
	r->accept.timeout_ms = a->timeout_ms ? a->timeout_ms : ACCEPT_TIMEOUT_DEFAULT;
	return validate_lifetime(a->lifetime, "accept.lifetime", &r->accept.principal_lifetime, o);
}

static void
op_accept(struct wfpb_session *s, const union wfpb_req *r, struct reply *rp, struct outcome *o, uint64_t now_ms)
{
	struct wfpb_listener	*l = find_listener(s, r->accept.listener_id, NULL);
	wfpb_sock		sock;
	int			os_err = 0, rc;

	if (l == NULL) {
		set_outcome(o, WFPBROKER__V1__STATUS_CODE__NOT_FOUND, "accept: no listener %llu in this session",
		    (unsigned long long)r->accept.listener_id);
		return;
	}
	rc = wfpb__net_accept(l->sock, &sock, &os_err);
	if (rc == WFPB_E_AGAIN) {
		s->pending.kind = WFPB_PENDING_ACCEPT;
		s->pending.watch = l->sock;
		s->pending.want_write = 0;
		s->pending.started_ms = now_ms;
		s->pending.deadline_ms = now_ms + r->accept.timeout_ms;
		s->pending.principal_lifetime = r->accept.principal_lifetime;
		o->code = OUTCOME_PENDING;
		return;
	}
	if (rc != 0) {
		os_outcome(o, "accept", os_err);
		return;
	}
	s->pending.principal_lifetime = r->accept.principal_lifetime;
	finish_accept(s, sock, rp, o, now_ms);
}

/* An accepted connection: query its records and context natively, stash the records, hand it over. */
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
query_redirect(struct wfpb_session *s, wfpb_sock sock, struct reply *rp, struct outcome *o, const char *what,
    int32_t *records_error, int32_t *context_error)
{
	const struct wfpb_backend	*be = &s->broker->backend;
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
		if (s->policy != NULL && s->policy->require_records) {
			set_outcome(o, WFPBROKER__V1__STATUS_CODE__NOT_FOUND, "%s: the connection carries no redirect "
			    "records (%s, error %d) and principal %s requires them; it was closed", what,
			    wfpb__net_strerror(*records_error), (int)*records_error, s->principal);
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
		set_outcome(o, WFPBROKER__V1__STATUS_CODE__OK, "%s: %s", what, why);
	return 0;
}

static void
finish_accept(struct wfpb_session *s, wfpb_sock sock, struct reply *rp, struct outcome *o, uint64_t now_ms)
{
	struct wfpb_addr	peer, local;
	int			os_err = 0;

	if (wfpb__net_addrs(sock, &peer, &local, &os_err) != 0) {
		os_outcome(o, "accept", os_err);
		goto close_sock;
	}
	wfpbroker__v1__accept_response__init(&rp->accept);
	if (query_redirect(s, sock, rp, o, "accept", &rp->accept.records_error, &rp->accept.context_error) != 0)
		goto close_sock;
	if (rp->records.len > 0) {
		if (stash_blob(s, rp->records.data, rp->records.len, 1, s->pending.principal_lifetime, rp, o, "accept",
		    "; the connection was closed", now_ms) != 0)
			goto close_sock;
		rp->accept.records = &rp->handle;
	}
	audit_addr(rp, &peer);
	audit_addr(rp, &local);
	rp->accept.peer = addr_to_pb(rp, 0, &peer);
	rp->accept.local = addr_to_pb(rp, 1, &local);
	rp->accept.context.data = rp->context.data;
	rp->accept.context.len = rp->context.len;
	if (give_socket(s, rp, sock, &rp->accept.socket, o) != 0)
		return;
	rp->resp.result_case = WFPBROKER__V1__RESPONSE__RESULT_ACCEPT;
	rp->resp.accept = &rp->accept;
	return;
close_sock:
	wfpb__net_close(sock);
}

static int
validate_connect(const struct wfpb_session *s, const Request *rq, union wfpb_req *r, struct outcome *o)
{
	const Wfpbroker__V1__ConnectRequest *c = rq->connect;

	memset(&r->connect.records, 0, sizeof(r->connect.records));
	/* Records are optional: a connection that continues none (the principal's own mark still applies). */
	if ((c->records != NULL && records_from_pb(s, c->records, "connect.records", &r->connect.records, o) != 0) ||
	    addr_from_pb(c->remote, "connect.remote", 1, &r->connect.remote, o) != 0)
		return -1;
	memset(&r->connect.local, 0, sizeof(r->connect.local));
	if (c->local != NULL && addr_from_pb(c->local, "connect.local", 0, &r->connect.local, o) != 0)
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

static void
finish_connect(struct wfpb_session *s, wfpb_sock sock, struct reply *rp, struct outcome *o)
{
	struct wfpb_addr	local;
	int			os_err = 0;

	(void)s;
	if (wfpb__net_addrs(sock, NULL, &local, &os_err) != 0) {
		os_outcome(o, "connect", os_err);
		wfpb__net_close(sock);
		return;
	}
	audit_addr(rp, &local);
	wfpbroker__v1__connect_response__init(&rp->connect);
	rp->connect.local = addr_to_pb(rp, 0, &local);
	if (give_socket(s, rp, sock, &rp->connect.socket, o) != 0)
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
socket_with_records(struct wfpb_session *s, const struct req_records *records, int family, const char *what,
    struct reply *rp, struct outcome *o, uint64_t now_ms, wfpb_sock *sock, const uint8_t **blob, size_t *len,
    const uint8_t **hash)
{
	const struct wfpb_backend	*be = &s->broker->backend;
	char				step[64];
	int				os_err = 0, code;

	if (records_bytes(s, records, what, blob, len, hash, o, now_ms) != 0)
		return -1;
	audit_blob(rp, *blob, *len, *hash);
	if (wfpb__net_socket(family, sock, &os_err) != 0) {
		snprintf(step, sizeof(step), "%s: socket", what);
		os_outcome(o, step, os_err);
		return -1;
	}
	if ((code = be->ops->set_records(be->ctx, *sock, *blob, *len, own_mark(s), mark_mask(s), &os_err)) != 0) {
		snprintf(step, sizeof(step), "%s: set records", what);
		backend_outcome(o, step, code, os_err);
		wfpb__net_close(*sock);
		*sock = WFPB_SOCK_NONE;
		return -1;
	}
	return 0;
}

static void
op_connect(struct wfpb_session *s, const union wfpb_req *r, struct reply *rp, struct outcome *o,
    uint64_t now_ms)
{
	const uint8_t	*blob, *hash;
	char		text[WFPB_ADDR_STRLEN];
	size_t		len;
	wfpb_sock	sock;
	int		os_err = 0, rc;

	wfpb_addr_format(&r->connect.remote, text);
	audit_addr(rp, &r->connect.remote);
	if (!in_ranges(s->policy->connect, s->policy->nconnect, &r->connect.remote)) {
		set_outcome(o, WFPBROKER__V1__STATUS_CODE__DENIED,
		    "connect: %s is outside principal %s's connect ranges", text, s->principal);
		return;
	}
	if (r->connect.local.family != 0 && !in_bind_ranges(s->policy, &r->connect.local)) {
		wfpb_addr_format(&r->connect.local, text);
		set_outcome(o, WFPBROKER__V1__STATUS_CODE__DENIED,
		    "connect: local %s is outside principal %s's bind ranges", text, s->principal);
		return;
	}
	if (socket_with_records(s, &r->connect.records, r->connect.remote.family, "connect", rp, o, now_ms, &sock,
	    &blob, &len, &hash) != 0)
		return;
	if (r->connect.local.family != 0 && wfpb__net_bind(sock, &r->connect.local, &os_err) != 0) {
		os_outcome(o, "connect: bind", os_err);
		wfpb__net_close(sock);
		return;
	}
	rc = wfpb__net_connect(sock, &r->connect.remote, &os_err);
	if (rc == WFPB_E_AGAIN) {
		s->pending.kind = WFPB_PENDING_CONNECT;
		s->pending.remote = r->connect.remote;
		if (hash != NULL)
			memcpy(s->pending.blob_hash, hash, sizeof(s->pending.blob_hash));
		else if (len > 0)
			crypto_generichash(s->pending.blob_hash, sizeof(s->pending.blob_hash), blob, len, NULL, 0);
		s->pending.has_blob_hash = len > 0;
		s->pending.watch = sock;
		s->pending.sock = sock;
		s->pending.want_write = 1;
		s->pending.started_ms = now_ms;
		s->pending.deadline_ms = now_ms + r->connect.timeout_ms;
		o->code = OUTCOME_PENDING;
		return;
	}
	if (rc != 0) {
		os_outcome(o, "connect", os_err);
		wfpb__net_close(sock);
		return;
	}
	finish_connect(s, sock, rp, o);
}

static int
validate_query(const struct wfpb_session *s, const Request *rq, union wfpb_req *r, struct outcome *o)
{
	if (socket_from_pb(s, rq->query_records->socket, "query_records.socket", &r->query.sock, o) != 0)
		return -1;
	return validate_lifetime(rq->query_records->lifetime, "query_records.lifetime",
	    &r->query.principal_lifetime, o);
}

static void
op_query(struct wfpb_session *s, const union wfpb_req *r, struct reply *rp, struct outcome *o, uint64_t now_ms)
{
	wfpb_sock sock;

	if (request_socket(s, &r->query.sock, WFPB_PERM_QUERY, "query_records", &sock, o) != 0)
		return;
	wfpbroker__v1__query_records_response__init(&rp->query);
	if (query_redirect(s, sock, rp, o, "query_records", &rp->query.records_error, &rp->query.context_error) != 0)
		return;
	if (rp->records.len > 0) {
		if (stash_blob(s, rp->records.data, rp->records.len, 1, r->query.principal_lifetime, rp, o,
		    "query_records", "", now_ms) != 0)
			return;
		rp->query.records = &rp->handle;
	}
	rp->query.blob.data = rp->records.data;
	rp->query.blob.len = rp->records.len;
	rp->query.context.data = rp->context.data;
	rp->query.context.len = rp->context.len;
	rp->resp.result_case = WFPBROKER__V1__RESPONSE__RESULT_QUERY_RECORDS;
	rp->resp.query_records = &rp->query;
}

static int
validate_apply(const struct wfpb_session *s, const Request *rq, union wfpb_req *r, struct outcome *o)
{
	if (socket_from_pb(s, rq->apply_records->socket, "apply_records.socket", &r->apply.sock, o) != 0)
		return -1;
	return records_from_pb(s, rq->apply_records->records, "apply_records.records", &r->apply.records, o);
}

static void
op_apply(struct wfpb_session *s, const union wfpb_req *r, struct reply *rp, struct outcome *o, uint64_t now_ms)
{
	const struct wfpb_backend	*be = &s->broker->backend;
	const uint8_t			*blob, *hash;
	wfpb_sock			sock;
	size_t				len;
	int				os_err = 0, code;

	/* The socket first: its pull may give up the core lock, and the records point into the stash. */
	if (request_socket(s, &r->apply.sock, WFPB_PERM_APPLY, "apply_records", &sock, o) != 0)
		return;
	if (records_bytes(s, &r->apply.records, "apply_records", &blob, &len, &hash, o, now_ms) != 0)
		return;
	audit_blob(rp, blob, len, hash);
	if (wfpb__net_is_bound(sock)) {
		set_outcome(o, WFPBROKER__V1__STATUS_CODE__EINVAL,
		    "apply_records: records must be set before bind and connect");
		return;
	}
	if (s->broker->audit_on) {
		/*
		 * The effect is on the client's own socket, which the broker cannot
		 * take back: the record goes first (wfpb_dispatch writes it), and the
		 * records are set once it is durable (wfpb__dispatch_resume).
		 */
		if (len > 0 && (s->pending.blob = malloc(len)) == NULL) {
			set_outcome(o, WFPBROKER__V1__STATUS_CODE__INTERNAL, "apply_records: out of memory");
			return;
		}
		if (len > 0)
			memcpy(s->pending.blob, blob, len);
		s->pending.blob_len = len;
		take_request_socket(s, sock);
		s->pending.kind = WFPB_PENDING_APPLY;
		s->pending.sock = sock;
		s->pending.watch = WFPB_SOCK_NONE;
		s->pending.started_ms = now_ms;
		s->pending.deadline_ms = now_ms + APPLY_AUDIT_WAIT_MS;
		o->code = OUTCOME_PENDING;
		return;
	}
	if ((code = be->ops->set_records(be->ctx, sock, blob, len, own_mark(s), mark_mask(s), &os_err)) != 0) {
		backend_outcome(o, "apply_records", code, os_err);
		return;
	}
	wfpbroker__v1__apply_records_response__init(&rp->apply);
	rp->resp.result_case = WFPBROKER__V1__RESPONSE__RESULT_APPLY_RECORDS;
	rp->resp.apply_records = &rp->apply;
}

static int
validate_prepare(const struct wfpb_session *s, const Request *rq, union wfpb_req *r, struct outcome *o)
{
	const Wfpbroker__V1__PrepareRequest *p = rq->prepare;

	memset(&r->prepare.records, 0, sizeof(r->prepare.records));
	if (p->records != NULL && records_from_pb(s, p->records, "prepare.records", &r->prepare.records, o) != 0)
		return -1;
	if (p->family == WFPBROKER__V1__ADDRESS_FAMILY__AF_INET)
		r->prepare.family = WFPB_AF_INET;
	else if (p->family == WFPBROKER__V1__ADDRESS_FAMILY__AF_INET6)
		r->prepare.family = WFPB_AF_INET6;
	else
		return BAD(o, "prepare.family: must be AF_INET or AF_INET6");
	return 0;
}

/*
 * Prepare: a new unconnected TCP socket with the records applied, handed
 * over for the client to set its options, bind and connect itself. The
 * destination is the client's choice: the connect ranges do not apply, so
 * `prepare` is a grant of its own. The answer waits for its audit record like
 * Connect's, and a socket not handed over is closed.
 */
static void
op_prepare(struct wfpb_session *s, const union wfpb_req *r, struct reply *rp, struct outcome *o, uint64_t now_ms)
{
	const uint8_t	*blob, *hash;
	size_t		len;
	wfpb_sock	sock;

	if (socket_with_records(s, &r->prepare.records, r->prepare.family, "prepare", rp, o, now_ms, &sock, &blob,
	    &len, &hash) != 0)
		return;
	wfpbroker__v1__prepare_response__init(&rp->prepare);
	if (give_socket(s, rp, sock, &rp->prepare.socket, o) != 0)
		return;
	rp->resp.result_case = WFPBROKER__V1__RESPONSE__RESULT_PREPARE;
	rp->resp.prepare = &rp->prepare;
}

/* Every operation the broker performs for a client. Nothing else runs. */
static const struct wfpb_op ops[] = {
	{ WFPBROKER__V1__REQUEST__OP_PING, "ping", 0, 0, validate_ping, op_ping },
	{ WFPBROKER__V1__REQUEST__OP_LISTEN, "listen", WFPB_PERM_LISTEN, NEEDS_PRINCIPAL | DURABLE, validate_listen,
	    op_listen },
	{ WFPBROKER__V1__REQUEST__OP_ACCEPT, "accept", WFPB_PERM_ACCEPT, NEEDS_PRINCIPAL | DURABLE, validate_accept,
	    op_accept },
	{ WFPBROKER__V1__REQUEST__OP_CONNECT, "connect", WFPB_PERM_CONNECT, NEEDS_PRINCIPAL | DURABLE, validate_connect,
	    op_connect },
	{ WFPBROKER__V1__REQUEST__OP_QUERY_RECORDS, "query_records", WFPB_PERM_QUERY, NEEDS_PRINCIPAL | DURABLE,
	    validate_query, op_query },
	{ WFPBROKER__V1__REQUEST__OP_APPLY_RECORDS, "apply_records", WFPB_PERM_APPLY, NEEDS_PRINCIPAL | DURABLE,
	    validate_apply, op_apply },
	{ WFPBROKER__V1__REQUEST__OP_PREPARE, "prepare", WFPB_PERM_PREPARE, NEEDS_PRINCIPAL | DURABLE, validate_prepare,
	    op_prepare },
	{ WFPBROKER__V1__REQUEST__OP_STASH, "stash", WFPB_PERM_STASH, NEEDS_PRINCIPAL, validate_stash, op_stash },
	{ WFPBROKER__V1__REQUEST__OP_FETCH, "fetch", WFPB_PERM_FETCH, NEEDS_PRINCIPAL, validate_fetch, op_fetch },
	{ WFPBROKER__V1__REQUEST__OP_RELEASE, "release", 0, NEEDS_PRINCIPAL, validate_release, op_release },
	{ WFPBROKER__V1__REQUEST__OP_STATUS, "status", WFPB_PERM_ADMIN, NEEDS_PRINCIPAL, validate_empty,
	    op_status },
	{ WFPBROKER__V1__REQUEST__OP_RELOAD, "reload", WFPB_PERM_ADMIN, NEEDS_PRINCIPAL | DURABLE, validate_empty,
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
	/* No effect without its record: with the log unwritable, refuse rather than act unaudited. */
	if ((op->flags & DURABLE) && s->broker->audit_on && s->broker->audit.broken) {
		set_outcome(o, WFPBROKER__V1__STATUS_CODE__UNAVAILABLE, "%s: the audit log cannot be written",
		    op->name);
		return -1;
	}
	return 0;
}

static void
principal_pb(const struct wfpb_session *s, Wfpbroker__V1__Principal *p, uint8_t fp[32])
{
	const uint8_t *key = wfpb_channel_peer_key(&s->ch);

	wfpbroker__v1__principal__init(p);
	p->user = (char *)(uintptr_t)s->id.user;
	p->pid = s->id.pid;
	p->image = (char *)(uintptr_t)s->id.image;
	p->name = (char *)(uintptr_t)s->principal;
	if (key != NULL) {
		crypto_generichash(fp, 32, key, WFPB_NOISE_DHLEN, NULL, 0);
		p->key_fingerprint.data = fp;
		p->key_fingerprint.len = 32;
	}
}

/*
 * Queues the audit record of one request. For an effectful op the session's
 * output then waits for the record to be durable (the response is already
 * queued behind it). Returns the record's seq, 0 when none was queued.
 */
static uint64_t
audit_request(struct wfpb_session *s, const struct wfpb_op *op, uint64_t request_id, const struct reply *rp,
    const struct outcome *o, uint64_t started_ms, uint64_t now_ms)
{
	Wfpbroker__V1__AuditRecord	r = WFPBROKER__V1__AUDIT_RECORD__INIT;
	Wfpbroker__V1__Principal	p;
	Wfpbroker__V1__Address		a[2], *ap[2];
	uint8_t				abytes[2][16], fp[32], bh[32];
	ProtobufCBinaryData		hash;
	unsigned			i;
	uint64_t			seq;

	if (!s->broker->audit_on)
		return 0;
	/* Requests without effect from a session no principal claims: counted into the summary. */
	if (wfpb_admit_summarised(s, op != NULL && (op->flags & DURABLE))) {
		s->broker->admit.summary.pings++;
		return 0;
	}
	/* Refused by the audit rate limit: counted too, or the refusals would be the flood. */
	if (o->code == WFPBROKER__V1__STATUS_CODE__QUOTA && rp->rate_limited)
		return 0;
	principal_pb(s, &p, fp);
	r.kind = WFPBROKER__V1__AUDIT_KIND__AUDIT_REQUEST;
	r.principal = &p;
	r.op = (char *)(uintptr_t)(op ? op->name : "unknown");
	for (i = 0; i < rp->n_audit_addr; i++) {
		wfpbroker__v1__address__init(&a[i]);
		a[i].family = rp->audit_addr[i].family == WFPB_AF_INET6 ? WFPBROKER__V1__ADDRESS_FAMILY__AF_INET6 :
		    WFPBROKER__V1__ADDRESS_FAMILY__AF_INET;
		memcpy(abytes[i], rp->audit_addr[i].addr, 16);
		a[i].addr.data = abytes[i];
		a[i].addr.len = wfpb_addr_len(rp->audit_addr[i].family);
		a[i].port = rp->audit_addr[i].port;
		ap[i] = &a[i];
	}
	r.n_addresses = rp->n_audit_addr;
	r.addresses = ap;
	if ((rp->audit_blob != NULL && rp->audit_blob_len > 0) || rp->has_audit_hash) {
		if (rp->has_audit_hash)
			memcpy(bh, rp->audit_hash, sizeof(bh));
		else
			crypto_generichash(bh, sizeof(bh), rp->audit_blob, rp->audit_blob_len, NULL, 0);
		hash.data = bh;
		hash.len = sizeof(bh);
		r.n_blob_hashes = 1;
		r.blob_hashes = &hash;
	}
	r.status = o->code;
	r.latency_us = (uint32_t)((now_ms - started_ms) * 1000u);
	r.request_id = request_id;
	r.session_id = s->session_id;
	r.message = (char *)(uintptr_t)o->message;
	seq = wfpb_audit_append(&s->broker->audit, &r, now_ms);
	/*
	 * A refusal because the log is unwritable did nothing and cannot wait for
	 * the log: it goes out at once, its record queued for when the log returns.
	 */
	if (o->code == WFPBROKER__V1__STATUS_CODE__UNAVAILABLE && s->broker->audit.broken)
		return seq;
	if (op != NULL && (op->flags & DURABLE)) {
		if (seq == 0) {
			/* The record could not even be queued: the answer must not go out. */
			s->audit_failed = 1;
			s->closing = 1;
		} else {
			wfpb__session_wait_audit(s, seq);
		}
	}
	return seq;
}

void
wfpb__dispatch_session_event(struct wfpb_session *s, int start)
{
	Wfpbroker__V1__AuditRecord	r = WFPBROKER__V1__AUDIT_RECORD__INIT;
	Wfpbroker__V1__Principal	p;
	uint8_t				fp[32];

	WFPB_CORE_OWNED(s->broker);
	if (!s->broker->audit_on)
		return;
	/* A session no principal claims is counted, not recorded: anyone can open one. */
	if (wfpb_admit_summarised(s, 0)) {
		if (start)
			s->broker->admit.summary.sessions++;
		return;
	}
	principal_pb(s, &p, fp);
	r.kind = start ? WFPBROKER__V1__AUDIT_KIND__AUDIT_SESSION_START : WFPBROKER__V1__AUDIT_KIND__AUDIT_SESSION_END;
	r.principal = &p;
	r.session_id = s->session_id;
	(void)wfpb_audit_append(&s->broker->audit, &r, s->last_ms);
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
		wfpb_event(WFPB_EVENT_DENIAL, "user %s pid %u (%s): %s", s->id.user, (unsigned)s->id.pid,
		    s->principal[0] ? s->principal : "no principal", o->message);
	}
	if (o->code != WFPBROKER__V1__STATUS_CODE__OK) {
		rp->resp.result_case = WFPBROKER__V1__RESPONSE__RESULT__NOT_SET;
		/* A failed operation hands nothing over. */
		wfpb__net_close(rp->attach);
		rp->attach = WFPB_SOCK_NONE;
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
		wfpb__net_close(rp->attach);
		rp->attach = WFPB_SOCK_NONE;
		set_outcome(o, WFPBROKER__V1__STATUS_CODE__ENOBUFS, "%s: the answer would be %zu bytes, more than a frame",
		    op != NULL ? op->name : "request", n);
		st.code = o->code;
		st.message = o->message;
		st.os_error = 0;
		n = wfpbroker__v1__response__get_packed_size(&rp->resp);
	}
	if ((buf = malloc(n ? n : 1)) == NULL) {
		wfpb__net_close(rp->attach);
		rc = WFPB_E_NOMEM;
	} else {
		n = wfpbroker__v1__response__pack(&rp->resp, buf);
		rc = wfpb__session_send(s, buf, n, rp->attach);
		free(buf);
	}
	if (!rp->audited)
		audit_request(s, op, request_id, rp, o, started_ms, now_ms);
	free(rp->records.data);
	free(rp->context.data);
	return rc;
}

static void
reply_init(struct reply *rp)
{
	memset(rp, 0, sizeof(*rp));
	wfpbroker__v1__response__init(&rp->resp);
	rp->attach = WFPB_SOCK_NONE;
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
	set_outcome(o, WFPBROKER__V1__STATUS_CODE__QUOTA, "%s: user %s is over its audited requests per second",
	    op->name, s->id.user);
	rp->rate_limited = 1;
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
	struct outcome		o = { WFPBROKER__V1__STATUS_CODE__OK, 0, "" };
	const struct wfpb_op	*op = NULL;
	union wfpb_req		r;
	uint64_t		request_id = 0;
	int			rc;

	WFPB_CORE_OWNED(s->broker);
	reply_init(&rp);
	s->broker->n.requests++;
	rq = wfpbroker__v1__request__unpack(alloc, len, msg);
	if (rq == NULL) {
		set_outcome(&o, WFPBROKER__V1__STATUS_CODE__BAD_REQUEST, "request: not a valid Request message");
	} else {
		request_id = rq->request_id;
		if (rq->op_case == WFPBROKER__V1__REQUEST__OP__NOT_SET)
			set_outcome(&o, WFPBROKER__V1__STATUS_CODE__BAD_REQUEST, "request: no operation set");
		else if ((op = find_op(rq->op_case)) == NULL)
			set_outcome(&o, WFPBROKER__V1__STATUS_CODE__EOPNOTSUPP,
			    "operation %d is not available in this broker", (int)rq->op_case);
		else if (!audit_budget(s, op, &rp, &o, now_ms))
			;	/* refused QUOTA: this identity's audited requests are over its rate */
		else if (authorize(s, op, &o) == 0 && op->validate(s, rq, &r, &o) == 0)
			op->handle(s, &r, &rp, &o, now_ms);
	}
	if (o.code == OUTCOME_PENDING) {
		s->pending.request_id = request_id;
		if (s->pending.kind == WFPB_PENDING_APPLY) {
			/* Recorded before the effect; the session waits for it like a durable answer. */
			struct outcome intent = { WFPBROKER__V1__STATUS_CODE__OK, 0, "" };

			set_outcome(&intent, WFPBROKER__V1__STATUS_CODE__OK,
			    "apply_records: recorded before the records are set");
			s->pending.audit_seq = audit_request(s, op, request_id, &rp, &intent, now_ms, now_ms);
		}
		rc = 0;
	} else {
		/* The reply may point into the request (Ping's echo): pack before freeing it. */
		rc = respond(s, op, request_id, &rp, &o, now_ms, now_ms);
	}
	if (rq != NULL)
		wfpbroker__v1__request__free_unpacked(rq, alloc);
	pb_arena_release(&request_arena, mark);
	return rc;
}

/* ApplyRecords, its record durable (or the wait over): set the records, or give up having done nothing. */
static int
resume_apply(struct wfpb_session *s, uint64_t now_ms, int timed_out)
{
	const struct wfpb_backend	*be = &s->broker->backend;
	struct wfpb_pending		p = s->pending;
	struct reply			rp;
	struct outcome			o = { WFPBROKER__V1__STATUS_CODE__OK, 0, "" };
	int				os_err = 0, code, rc;

	if (!timed_out && __atomic_load_n(&s->broker->audit.durable_seq, __ATOMIC_ACQUIRE) < p.audit_seq)
		return 0;	/* not yet: the commit that holds it releases the session */
	reply_init(&rp);
	audit_blob(&rp, p.blob, p.blob_len, NULL);
	wfpb_session_resolve(s);
	if (timed_out) {
		set_outcome(&o, WFPBROKER__V1__STATUS_CODE__TIMEOUT,
		    "apply_records: its audit record was not durable within %u ms; nothing applied", APPLY_AUDIT_WAIT_MS);
	} else if (s->policy == NULL || !(s->perms & WFPB_PERM_APPLY)) {
		set_outcome(&o, WFPBROKER__V1__STATUS_CODE__DENIED, "apply_records: the grant was withdrawn meanwhile");
	} else if ((code = be->ops->set_records(be->ctx, p.sock, p.blob, p.blob_len, own_mark(s), mark_mask(s),
	    &os_err)) != 0) {
		backend_outcome(&o, "apply_records", code, os_err);
	} else {
		/* Its record, written before the effect, stands for it: no second one. */
		rp.audited = 1;
		wfpbroker__v1__apply_records_response__init(&rp.apply);
		rp.resp.result_case = WFPBROKER__V1__RESPONSE__RESULT_APPLY_RECORDS;
		rp.resp.apply_records = &rp.apply;
	}
	wfpb__net_discard(p.sock);
	memset(&s->pending, 0, sizeof(s->pending));
	s->pending.watch = s->pending.sock = WFPB_SOCK_NONE;
	/* The audit record of a failure hashes the blob: it goes after the answer is built. */
	rc = respond(s, find_op(WFPBROKER__V1__REQUEST__OP_APPLY_RECORDS), p.request_id, &rp, &o, p.started_ms,
	    now_ms);
	free(p.blob);
	return rc;
}

int
wfpb__dispatch_resume(struct wfpb_session *s, uint64_t now_ms, int timed_out)
{
	struct wfpb_pending	p = s->pending;
	struct reply		rp;
	struct outcome		o = { WFPBROKER__V1__STATUS_CODE__OK, 0, "" };
	const char		*what = p.kind == WFPB_PENDING_ACCEPT ? "accept" : "connect";
	wfpb_sock		sock;
	int			os_err = 0, rc;

	WFPB_CORE_OWNED(s->broker);
	if (p.kind == WFPB_PENDING_APPLY)
		return resume_apply(s, now_ms, timed_out);
	reply_init(&rp);
	if (p.kind == WFPB_PENDING_CONNECT) {
		/* The audit record names what the request did, though the reply is built now. */
		audit_addr(&rp, &p.remote);
		memcpy(rp.audit_hash, p.blob_hash, sizeof(rp.audit_hash));
		rp.has_audit_hash = p.has_blob_hash;
	}
	if (timed_out) {
		set_outcome(&o, WFPBROKER__V1__STATUS_CODE__TIMEOUT, "%s: nothing within %llu ms", what,
		    (unsigned long long)(p.deadline_ms - p.started_ms));
		wfpb__net_close(p.sock);
	} else if (p.kind == WFPB_PENDING_ACCEPT) {
		rc = wfpb__net_accept(p.watch, &sock, &os_err);
		if (rc == WFPB_E_AGAIN)
			return 0;	/* another wake-up will come, or the deadline */
		if (rc != 0)
			os_outcome(&o, "accept", os_err);
		else
			finish_accept(s, sock, &rp, &o, now_ms);
	} else {
		if (wfpb__net_connect_result(p.sock, &os_err) != 0) {
			os_outcome(&o, "connect", os_err);
			wfpb__net_close(p.sock);
		} else {
			finish_connect(s, p.sock, &rp, &o);
		}
	}
	memset(&s->pending, 0, sizeof(s->pending));
	s->pending.watch = s->pending.sock = WFPB_SOCK_NONE;
	return respond(s, find_op(p.kind == WFPB_PENDING_ACCEPT ? WFPBROKER__V1__REQUEST__OP_ACCEPT :
	    WFPBROKER__V1__REQUEST__OP_CONNECT), p.request_id, &rp, &o, p.started_ms, now_ms);
}
