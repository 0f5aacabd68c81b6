/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Inside the dispatcher, shared by its files: the validated request types, a
 * handler's outcome and reply, the operation table's row, and the functions
 * one file gives another.
 *
 *   dispatch.c      the op table, authorisation, respond, the request path, resume
 *   scope.c         what a handler sees of its session (scope.h), and the services it asks of it
 *   ops_local.c     Ping, Stash, Fetch, Release, Status, Reload
 *   ops_socket.c    Listen, Accept, Connect, QueryRecords, ApplyRecords, Prepare, with their
 *                   pending states and resume entries
 *   convert.c       protobuf <-> C: addresses, records, sockets
 *   audit_record.c  what an audit record names, and building it
 */
#ifndef WFPB_DISPATCH_INT_H
#define WFPB_DISPATCH_INT_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "broker.h"
#include "dispatch.h"
#include "pb_arena.h"
#include "log.h"
#include "net.h"
#include "scope.h"
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

/* A stash entry's lifetime, from the request's Lifetime. */
enum wfpb_lifetime { LIFETIME_SESSION, LIFETIME_PRINCIPAL, LIFETIME_ONCE };

struct req_stash {
	const uint8_t	*blob;
	size_t		len;
	int		lifetime;	/* LIFETIME_* */
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
	int			udp;
};

/* Cancel: a waiting request of the session, by its id. */
struct req_cancel {
	uint64_t	request_id;
};

/* Flow: a UDP listener of the session, the wait, where upstream goes (family 0: the original destination). */
struct req_flow {
	uint64_t		listener_id;
	uint32_t		timeout_ms;
	struct wfpb_addr	remote;
	int			hold_first;
	int			without_records;
	/* FlowFirst (a flow that stays on the listener): the datagram as the proxy read it, pointing into the request. */
	int			has_first;
	struct wfpb_addr	client;
	const uint8_t		*payload, *context;
	size_t			payload_len, context_len;
	struct req_records	records;
};

struct req_accept {
	uint64_t	listener_id;
	const char	*listener;	/* a declared listener's name, or NULL */
	uint32_t	timeout_ms;
	int		lifetime;	/* of the records' stash entry */
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
	int		lifetime;
};

struct req_apply {
	struct req_sock		sock;
	struct req_records	records;
};

struct req_prepare {
	struct req_records	records;
	int			family;		/* WFPB_AF_* */
	struct wfpb_addr	local;		/* family 0: the unspecified address, an ephemeral port */
};

/* Relay: Accept's listener and wait, then Connect's destination (family 0: the original one). */
struct req_relay {
	struct req_accept	accept;
	struct wfpb_addr	remote;
	struct wfpb_addr	local;		/* family 0: none */
	uint32_t		connect_timeout_ms;
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
	struct req_relay	relay;
	struct req_flow		flow;
	struct req_cancel	cancel;
};

#define BACKLOG_DEFAULT		128
#define BACKLOG_MAX		1024u
#define ACCEPT_TIMEOUT_DEFAULT	30000u
#define ACCEPT_TIMEOUT_MAX	600000u
#define WAIT_FOREVER		0xffffffffu	/* an Accept, Relay or Flow that waits until cancelled */
#define CONNECT_TIMEOUT_DEFAULT	10000u
#define CONNECT_TIMEOUT_MAX	120000u
#define WFPB_AUDIT_ADDRS_MAX	4u	/* a Relay's: peer, local, remote, upstream local */
#define FLOW_PAYLOAD_MAX	16384u	/* a Flow's first datagram, carried in its answer */

/* What a validator or handler reports: a status code and a message. */
struct outcome {
	Wfpbroker__V1__StatusCode	code;
	int32_t				os_error;
	char				message[STATUS_MESSAGE_MAX];
	int				backend;	/* the backend refused: an event, which respond logs */
};
#define OUTCOME_OK	{ WFPBROKER__V1__STATUS_CODE__OK, 0, "", 0 }

void wfpb__outcome(struct outcome *o, Wfpbroker__V1__StatusCode code, const char *fmt, ...)
#if defined(__MINGW32__)
    __attribute__((format(gnu_printf, 3, 4)));
#else
    __attribute__((format(printf, 3, 4)));
#endif

#define BAD(o, ...)	(wfpb__outcome((o), WFPBROKER__V1__STATUS_CODE__BAD_REQUEST, __VA_ARGS__), -1)

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
	Wfpbroker__V1__RelayResponse		relay;
	Wfpbroker__V1__FlowResponse		flow;
	Wfpbroker__V1__CancelResponse		cancel;
	struct wfpb_buf				payload;	/* a Flow's first datagram; freed after packing */
	Wfpbroker__V1__SocketTransfer		xfer[WFPB_ATTACH_MAX];
	Wfpbroker__V1__Address			addr[5];
	uint8_t					addr_bytes[5][16];
	struct wfpb_buf				records, context;	/* freed after packing */
	wfpb_sock				attach[WFPB_ATTACH_MAX];	/* handed over with the response */
	unsigned				n_attach;
	uint8_t					handover[WFPB_ATTACH_MAX][WFPB_HANDOVER_MAX];	/* WSAPROTOCOL_INFOW */
	/* What the audit record names: addresses and the blob involved (hashed, never stored). */
	struct wfpb_addr			audit_addr[WFPB_AUDIT_ADDRS_MAX];
	unsigned				n_audit_addr;
	const uint8_t				*audit_blob;
	size_t					audit_blob_len;
	uint8_t					audit_hash[32];	/* used when audit_blob is NULL */
	int					has_audit_hash;
	int					audited;	/* its record was written before the effect */
	int					rate_limited;	/* refused by the audit rate limit */
	int					records_foreign;	/* the records applied came from the client */
	uint64_t				flow_id;	/* the flow its records belong to (audit), or 0 */
	struct wfpb_addr			orig_dst;	/* where that flow was going; family 0: unknown */
	/* A handler that leaves its request pending (OUTCOME_PENDING) says here what it waits for. */
	struct wfpb_pending			pend;
};


/* The table's validators, handlers and resume entries, and the table's row. */
typedef int validate_t(const struct wfpb_limits *lim, const Request *rq, union wfpb_req *r, struct outcome *o);
typedef void handler_t(struct wfpb_scope *sc, const union wfpb_req *r, struct reply *rp, struct outcome *o,
    uint64_t now_ms);
/*
 * A request left pending (scope.h) is taken up again when its socket is ready, its audit
 * record durable, its deadline past or what it waits on going away (why: enum
 * wfpb_resume_why): 1 when rp and o now hold the answer (and the resumer has closed or
 * handed over p->sock), 0 to wait on, or WFPB_RESUME_REARMED to wait on what rp->pend now
 * says (a Relay whose connection is accepted waits on its upstream connect).
 */
#define WFPB_RESUME_REARMED	2
typedef int resumer_t(struct wfpb_scope *sc, const struct wfpb_pending *p, struct reply *rp, struct outcome *o,
    uint64_t now_ms, int why);

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
	validate_t			*validate;
	handler_t			*handle;
	int				pending;	/* the WFPB_PENDING_* kind it may leave, or 0 */
	resumer_t			*resume;	/* with pending: takes it up again */
};

/* Given by one file of the dispatcher to another: the table's entries, */
validate_t wfpb__validate_ping, wfpb__validate_stash, wfpb__validate_fetch, wfpb__validate_release,
    wfpb__validate_empty, wfpb__validate_listen, wfpb__validate_accept, wfpb__validate_connect, wfpb__validate_query,
    wfpb__validate_apply, wfpb__validate_prepare, wfpb__validate_relay, wfpb__validate_flow, wfpb__validate_cancel;
handler_t wfpb__op_ping, wfpb__op_stash, wfpb__op_fetch, wfpb__op_release, wfpb__op_status, wfpb__op_reload,
    wfpb__op_listen, wfpb__op_accept, wfpb__op_connect, wfpb__op_query, wfpb__op_apply, wfpb__op_prepare,
    wfpb__op_relay, wfpb__op_flow, wfpb__op_cancel;
resumer_t wfpb__resume_accept, wfpb__resume_connect, wfpb__resume_apply, wfpb__resume_relay, wfpb__resume_flow;
/*
 * Whether a pending request may still complete under the policy as it is now (a reload may
 * have withdrawn its grant, narrowed its ranges or withdrawn apply_foreign): 1, or 0 with the
 * reason in why (cap bytes; why may be NULL). Whether a listener may still be held: 1 or 0.
 */
int wfpb__pending_holds(struct wfpb_scope *sc, const struct wfpb_pending *p, char *why, size_t cap);
int wfpb__listener_holds(const struct wfpb_scope *sc, const struct wfpb_listener *l);
/* and the helpers they share. */
void wfpb__outcome(struct outcome *o, Wfpbroker__V1__StatusCode code, const char *fmt, ...);
void wfpb__audit_addr(struct reply *rp, const struct wfpb_addr *a);
int wfpb__validate_lifetime(Wfpbroker__V1__Lifetime l, const char *field, int *lifetime, struct outcome *o);
int wfpb__validate_handle(const Wfpbroker__V1__StashHandle *h, const char *field, const uint8_t **id,
    struct outcome *o);
void wfpb__audit_blob(struct reply *rp, const uint8_t *blob, size_t len, const uint8_t *hash);
int wfpb__stash_blob(struct wfpb_scope *sc, const uint8_t *blob, size_t len, int queried, int lifetime,
    struct reply *rp, struct outcome *o, const char *what, const char *full, uint64_t now_ms);
int wfpb__addr_from_pb(const Wfpbroker__V1__Address *a, const char *field, int need_port, struct wfpb_addr *out,
    struct outcome *o);
Wfpbroker__V1__Address * wfpb__addr_to_pb(struct reply *rp, int slot, const struct wfpb_addr *a);
int wfpb__records_from_pb(const struct wfpb_limits *lim, const Wfpbroker__V1__RecordSource *src, const char *field,
    struct req_records *out, struct outcome *o);
int wfpb__socket_from_pb(const struct wfpb_limits *lim, const Wfpbroker__V1__SocketTransfer *x, const char *field,
    struct req_sock *out, struct outcome *o);
uint64_t wfpb__audit_request(struct wfpb_session *s, const struct wfpb_op *op, uint64_t request_id,
    const struct reply *rp,
    const struct outcome *o, uint64_t started_ms, uint64_t now_ms);

#endif
