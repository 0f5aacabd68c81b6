/* SPDX-License-Identifier: Apache-2.0 */
/* Protobuf <-> C for the request path: addresses, records, sockets (dispatch_int.h). Validators call these. */
#include "dispatch_int.h"

int
wfpb__addr_from_pb(const Wfpbroker__V1__Address *a, const char *field, int need_port, struct wfpb_addr *out,
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

Wfpbroker__V1__Address *
wfpb__addr_to_pb(struct reply *rp, int slot, const struct wfpb_addr *a)
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

int
wfpb__records_from_pb(const struct wfpb_limits *lim, const Wfpbroker__V1__RecordSource *src, const char *field,
    struct req_records *out, struct outcome *o)
{
	memset(out, 0, sizeof(*out));
	if (src == NULL)
		return BAD(o, "%s: missing", field);
	switch (src->source_case) {
	case WFPBROKER__V1__RECORD_SOURCE__SOURCE_HANDLE:
		return wfpb__validate_handle(src->handle, field, &out->handle, o);
	case WFPBROKER__V1__RECORD_SOURCE__SOURCE_BLOB:
		if (src->blob.len == 0)
			return BAD(o, "%s.blob: empty", field);
		if (src->blob.len > lim->blob_max)
			return BAD(o, "%s.blob: %zu bytes, the limit is %u", field, src->blob.len,
			    lim->blob_max);
		out->blob = src->blob.data;
		out->len = src->blob.len;
		return 0;
	default:
		return BAD(o, "%s: neither handle nor blob set", field);
	}
}

int
wfpb__socket_from_pb(const struct wfpb_limits *lim, const Wfpbroker__V1__SocketTransfer *x, const char *field,
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
	if (x->fd_index >= lim->n_fds)
		return BAD(o, "%s.fd_index: %u, but %u descriptors came with the request", field, x->fd_index, lim->n_fds);
	out->fd = x->fd_index;
	return 0;
}
