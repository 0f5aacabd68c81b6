/* SPDX-License-Identifier: Apache-2.0 */
/*
 * netfilter: the Linux form of the redirect backend, for transparent proxies
 * behind nftables/iptables REDIRECT or DNAT rules.
 *
 *   query_records  SO_ORIGINAL_DST (IPv4) or IP6T_SO_ORIGINAL_DST (IPv6) of
 *                  the accepted socket, plus the mark its SYN carried (an
 *                  accepted socket inherits it when net.ipv4.tcp_fwmark_accept
 *                  is 1), as a "WFPN" record. A connection conntrack does not
 *                  know (ENOENT, or no conntrack at all) has no records.
 *   query_context  the original remote and original local addresses.
 *   set_records    SO_MARK = (the record's mark & the principal's mark_mask) |
 *                  the calling principal's own mark, both from policy. Needs CAP_NET_ADMIN, so an unprivileged
 *                  proxy cannot do it itself (EPERM): the Linux form of the
 *                  admin-only WFP ioctl. Marks accumulate along a chain of
 *                  proxies, and each proxy's rule skips connections bearing
 *                  its own bit — what WFP's redirect records do on Windows.
 *   UDP flows      behind TPROXY rules: the listener is IP_TRANSPARENT and asks
 *                  for each datagram's original destination (IP_RECVORIGDSTADDR)
 *                  and marks (SO_RCVMARK, Linux 5.19); a first datagram's
 *                  records are a "WFPN" record of those; the reply socket is
 *                  transparent, bound to the original destination and
 *                  connected to the client.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "backend.h"
#include "netfilter.h"
#include "status.h"

#define WFPB_SOCKLEN socklen_t
#include "sockaddr_conv.h"

#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST		80	/* linux/netfilter_ipv4.h */
#endif
#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST	80	/* linux/netfilter_ipv6/ip6_tables.h */
#endif
#ifndef SO_RCVMARK
#define SO_RCVMARK		75	/* asm-generic/socket.h, Linux 5.19 */
#endif

static wfpb_getsockopt_fn orig_getsockopt = getsockopt;

void
wfpb__nf_set_getsockopt(wfpb_getsockopt_fn fn)
{
	orig_getsockopt = fn != NULL ? fn : getsockopt;
}

struct netfilter {
	_Atomic uint64_t	applied;
};

static int
os_fail(int *os_err)
{
	*os_err = errno;
	return wfpb__net_status(errno);
}

/*
 * "Conntrack has no entry for this socket": an answer of original_dst, not
 * a status. Negative, so it can never be mistaken for one (EACCES is 1).
 */
#define NO_ENTRY	(-1)

/* The original destination: 0 found, NO_ENTRY when conntrack has none for this socket, else a status. */
static int
original_dst(int fd, struct wfpb_addr *out, int *os_err)
{
	struct wfpb_addr	local;
	socklen_t		len;

	if (wfpb__net_addrs(fd, NULL, &local, os_err) != 0)
		return wfpb__net_status(*os_err);
	memset(out, 0, sizeof(*out));
	if (local.family == WFPB_AF_INET) {
		struct sockaddr_in sin;

		len = sizeof(sin);
		if (orig_getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &sin, &len) != 0)
			goto failed;
		out->family = WFPB_AF_INET;
		memcpy(out->addr, &sin.sin_addr, 4);
		out->port = ntohs(sin.sin_port);
		return 0;
	}
	if (local.family == WFPB_AF_INET6) {
		struct sockaddr_in6 sin6;

		len = sizeof(sin6);
		if (orig_getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &sin6, &len) != 0)
			goto failed;
		out->family = WFPB_AF_INET6;
		memcpy(out->addr, &sin6.sin6_addr, 16);
		out->port = ntohs(sin6.sin6_port);
		out->scope_id = sin6.sin6_scope_id;
		return 0;
	}
	*os_err = EAFNOSUPPORT;
	return WFPB_ST_EAFNOSUPPORT;
failed:
	/* ENOENT: conntrack has no entry; ENOPROTOOPT: conntrack is not loaded. Neither is a redirect. */
	if (errno == ENOENT || errno == ENOPROTOOPT)
		return NO_ENTRY;
	return os_fail(os_err);
}

static int
nf_query_records(void *ctx, wfpb_sock s, struct wfpb_buf *out, int *os_err)
{
	struct wfpb_nf_record	r;
	uint32_t		mark = 0;
	socklen_t		len = sizeof(mark);
	int			rc;

	(void)ctx;
	*os_err = 0;
	out->data = NULL;
	out->len = 0;
	if ((rc = original_dst((int)s, &r.orig_dst, os_err)) != 0)
		return rc == NO_ENTRY ? 0 : rc;	/* not redirected: no records, not an error */
	if (getsockopt((int)s, SOL_SOCKET, SO_MARK, &mark, &len) != 0)
		return os_fail(os_err);
	r.mark = mark;
	if ((out->data = malloc(WFPB_NF_RECORD_LEN)) == NULL)
		return WFPB_ST_ENOBUFS;
	wfpb_nf_record_encode(&r, out->data);
	out->len = WFPB_NF_RECORD_LEN;
	return 0;
}

static int
nf_query_context(void *ctx, wfpb_sock s, struct wfpb_buf *out, int *os_err)
{
	struct wfpb_addr	peer, dst;
	int			rc;

	(void)ctx;
	*os_err = 0;
	if (wfpb__net_addrs((int)s, &peer, &dst, os_err) != 0)
		return wfpb__net_status(*os_err);
	if ((rc = original_dst((int)s, &dst, os_err)) != 0 && rc != NO_ENTRY)
		return rc;
	if (rc == NO_ENTRY && wfpb__net_addrs((int)s, NULL, &dst, os_err) != 0)
		return wfpb__net_status(*os_err);
	if ((out->data = malloc(2 * WFPB_CONTEXT_HOP_LEN)) == NULL)
		return WFPB_ST_ENOBUFS;
	wfpb__hop_put(out->data, &peer);
	wfpb__hop_put(out->data + WFPB_CONTEXT_HOP_LEN, &dst);
	out->len = 2 * WFPB_CONTEXT_HOP_LEN;
	return 0;
}

/* The record's original destination: SO_ORIGINAL_DST of the accepted connection. */
static int
nf_original_dst(void *ctx, wfpb_sock s, const struct wfpb_buf *records, const struct wfpb_buf *context,
    struct wfpb_addr *out)
{
	struct wfpb_nf_record r;

	(void)ctx;
	(void)s;	/* read into the record by the query, from the same SO_ORIGINAL_DST */
	(void)context;
	if (wfpb_nf_record_parse(records->data, records->len, &r) != 0)
		return -1;
	*out = r.orig_dst;
	return 0;
}

static int
nf_set_records(void *ctx, wfpb_sock s, const uint8_t *blob, size_t len, uint32_t own_mark,
    uint32_t mark_mask, int *os_err)
{
	struct netfilter	*nf = ctx;
	struct wfpb_nf_record	r = { 0 };
	uint32_t		mark;
	int			rc;

	*os_err = 0;
	if (len > 0 && (rc = wfpb_nf_record_parse(blob, len, &r)) != 0)
		return rc;
	/* The principal's mask keeps other owners' bits (fwmark routing, kill switches) out of its connections. */
	mark = (r.mark & mark_mask) | own_mark;
	if (mark != 0 && setsockopt((int)s, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) != 0)
		return os_fail(os_err);
	if (len > 0)
		atomic_fetch_add(&nf->applied, 1);
	return 0;
}

static uint64_t
nf_records_applied(void *ctx)
{
	return atomic_load(&((struct netfilter *)ctx)->applied);
}

/* A transparent socket of family: it may bind an address that is not this host's (TPROXY). */
static int
transparent(int fd, int family, int *os_err)
{
	int one = 1;

	if (family == WFPB_AF_INET6 ? setsockopt(fd, SOL_IPV6, IPV6_TRANSPARENT, &one, sizeof(one)) :
	    setsockopt(fd, SOL_IP, IP_TRANSPARENT, &one, sizeof(one)))
		return os_fail(os_err);
	return 0;
}

static int
nf_udp_listener(void *ctx, wfpb_sock s, int family, int *os_err)
{
	int one = 1;

	(void)ctx;
	*os_err = 0;
	if (transparent((int)s, family, os_err) != 0)
		return wfpb__net_status(*os_err);
	if ((family == WFPB_AF_INET6 ? setsockopt((int)s, SOL_IPV6, IPV6_RECVORIGDSTADDR, &one, sizeof(one)) :
	    setsockopt((int)s, SOL_IP, IP_RECVORIGDSTADDR, &one, sizeof(one))) != 0 ||
	    setsockopt((int)s, SOL_SOCKET, SO_RCVMARK, &one, sizeof(one)) != 0)
		return os_fail(os_err);
	return 0;
}

/* The control data of one datagram: where it was going and the mark it carried. Untrusted only in size. */
static void
udp_cmsgs(struct msghdr *mh, struct wfpb_addr *orig_dst, uint32_t *mark, int *has_dst)
{
	struct cmsghdr		*c;
	struct sockaddr_storage	ss;
	size_t			want;

	for (c = CMSG_FIRSTHDR(mh); c != NULL; c = CMSG_NXTHDR(mh, c)) {
		want = c->cmsg_level == SOL_IP && c->cmsg_type == IP_ORIGDSTADDR ? sizeof(struct sockaddr_in) :
		    c->cmsg_level == SOL_IPV6 && c->cmsg_type == IPV6_ORIGDSTADDR ? sizeof(struct sockaddr_in6) : 0;
		if (want != 0 && c->cmsg_len >= CMSG_LEN(want)) {
			memset(&ss, 0, sizeof(ss));
			memcpy(&ss, CMSG_DATA(c), want);
			from_sockaddr(&ss, orig_dst);
			*has_dst = orig_dst->family != 0;
		} else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_MARK &&
		    c->cmsg_len >= CMSG_LEN(sizeof(uint32_t))) {
			memcpy(mark, CMSG_DATA(c), sizeof(*mark));
		}
	}
}

static int
nf_udp_receive(void *ctx, wfpb_sock s, uint8_t *buf, size_t cap, size_t *len, struct wfpb_addr *from,
    struct wfpb_addr *orig_dst, struct wfpb_buf *records, struct wfpb_buf *context, int *os_err)
{
	struct sockaddr_storage	ss;
	struct iovec		iov = { buf, cap };
	union {
		struct cmsghdr	align;
		uint8_t		buf[256];
	}			control;
	struct msghdr		mh = { .msg_name = &ss, .msg_namelen = sizeof(ss), .msg_iov = &iov, .msg_iovlen = 1,
				    .msg_control = control.buf, .msg_controllen = sizeof(control.buf) };
	struct wfpb_nf_record	r;
	uint32_t		mark = 0;
	ssize_t			n;
	int			has_dst = 0;

	(void)ctx;
	*os_err = 0;
	records->data = context->data = NULL;
	records->len = context->len = 0;
	do
		n = recvmsg((int)s, &mh, MSG_TRUNC | MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? WFPB_E_AGAIN : os_fail(os_err);
	*len = (size_t)n;
	from_sockaddr(&ss, from);
	udp_cmsgs(&mh, orig_dst, &mark, &has_dst);
	if (!has_dst && wfpb__net_addrs(s, NULL, orig_dst, os_err) != 0)
		return wfpb__net_status(*os_err);	/* not redirected: sent to the listener itself */
	if ((context->data = malloc(2 * WFPB_CONTEXT_HOP_LEN)) == NULL)
		return WFPB_ST_ENOBUFS;
	wfpb__hop_put(context->data, from);
	wfpb__hop_put(context->data + WFPB_CONTEXT_HOP_LEN, orig_dst);
	context->len = 2 * WFPB_CONTEXT_HOP_LEN;
	if (!has_dst)
		return 0;	/* no records: as an Accept of a connection no rule redirected */
	r.mark = mark;
	r.orig_dst = *orig_dst;
	if ((records->data = malloc(WFPB_NF_RECORD_LEN)) == NULL)
		return WFPB_ST_ENOBUFS;
	wfpb_nf_record_encode(&r, records->data);
	records->len = WFPB_NF_RECORD_LEN;
	return 0;
}

static int
nf_udp_reply(void *ctx, const struct wfpb_addr *orig_dst, const struct wfpb_addr *client, wfpb_sock *out,
    int *os_err)
{
	(void)ctx;
	*os_err = 0;
	if (wfpb__net_udp_socket(orig_dst->family, out, os_err) != 0)
		return wfpb__net_status(*os_err);
	if (transparent((int)*out, orig_dst->family, os_err) != 0 || wfpb__net_reuseaddr(*out, os_err) != 0 ||
	    wfpb__net_bind(*out, orig_dst, os_err) != 0 || wfpb__net_connect(*out, client, os_err) != 0) {
		wfpb__net_close(*out);
		*out = WFPB_SOCK_NONE;
		return wfpb__net_status(*os_err);
	}
	return 0;
}

const struct wfpb_backend_ops wfpb_backend_netfilter = {
	.name = "netfilter",
	.query_records = nf_query_records,
	.query_context = nf_query_context,
	.set_records = nf_set_records,
	.records_applied = nf_records_applied,
	.original_dst = nf_original_dst,
	.udp_listener = nf_udp_listener,
	.udp_receive = nf_udp_receive,
	.udp_reply = nf_udp_reply,
};

const struct wfpb_backend_ops *
wfpb__platform_backend(const char *name, void **ctx)
{
	*ctx = NULL;
	if (strcmp(name, "netfilter") != 0)
		return NULL;
	if ((*ctx = calloc(1, sizeof(struct netfilter))) == NULL)
		return NULL;
	return &wfpb_backend_netfilter;
}
