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

union wfpb_req {
	struct req_ping	ping;
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

/* Response parts a handler fills; they live until the Response is packed. */
struct reply {
	Response			resp;
	Wfpbroker__V1__PingResponse	ping;
};

typedef int (*validate_fn)(const Request *, union wfpb_req *, struct outcome *);
typedef void (*handle_fn)(struct wfpb_session *, const union wfpb_req *, struct reply *, struct outcome *);

struct wfpb_op {
	Wfpbroker__V1__Request__OpCase	op;
	const char			*name;
	unsigned			perm;
	validate_fn			validate;
	handle_fn			handle;
};

static int
validate_ping(const Request *rq, union wfpb_req *r, struct outcome *o)
{
	const Wfpbroker__V1__PingRequest *p = rq->ping;

	if (p->payload.len > PING_PAYLOAD_MAX) {
		set_outcome(o, WFPBROKER__V1__STATUS_CODE__BAD_REQUEST, "ping.payload: longer than %u bytes",
		    PING_PAYLOAD_MAX);
		return -1;
	}
	r->ping.payload = p->payload.data;
	r->ping.len = p->payload.len;
	return 0;
}

static void
op_ping(struct wfpb_session *s, const union wfpb_req *r, struct reply *rp, struct outcome *o)
{
	(void)s;
	(void)o;
	wfpbroker__v1__ping_response__init(&rp->ping);
	rp->ping.payload.data = (uint8_t *)(uintptr_t)r->ping.payload;
	rp->ping.payload.len = r->ping.len;
	rp->ping.protocol_version = WFPB_PROTOCOL_VERSION;
	rp->ping.service_version = (char *)(uintptr_t)WFPB_SERVICE_VERSION;
	rp->resp.result_case = WFPBROKER__V1__RESPONSE__RESULT_PING;
	rp->resp.ping = &rp->ping;
}

/* Every operation the broker performs for a client. Nothing else runs. */
static const struct wfpb_op ops[] = {
	{ WFPBROKER__V1__REQUEST__OP_PING, "ping", 0, validate_ping, op_ping },
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

	(void)now_ms;
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
		else if (!s->id.known && op->perm != 0)
			set_outcome(&o, WFPBROKER__V1__STATUS_CODE__DENIED, "%s: caller identity unknown",
			    op->name);
		else if (op->validate(rq, &r, &o) == 0)
			op->handle(s, &r, &rp, &o);
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
