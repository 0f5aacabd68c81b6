/* SPDX-License-Identifier: Apache-2.0 */
/*
 * struct wfpb_addr <-> sockaddr, shared by net_posix.c, net_win.c and the
 * netfilter backend: both platforms name the fields alike. Include after the
 * platform's socket headers; WFPB_SOCKLEN is socklen_t or int.
 */
#ifndef WFPB_SOCKADDR_CONV_H
#define WFPB_SOCKADDR_CONV_H

#include <string.h>

#include "addr.h"

static inline WFPB_SOCKLEN
to_sockaddr(const struct wfpb_addr *a, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (a->family == WFPB_AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(a->port);
		memcpy(&sin->sin_addr, a->addr, 4);
		return sizeof(*sin);
	}
	if (a->family == WFPB_AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(a->port);
		sin6->sin6_scope_id = a->scope_id;
		memcpy(&sin6->sin6_addr, a->addr, 16);
		return sizeof(*sin6);
	}
	return 0;
}

static inline void
from_sockaddr(const struct sockaddr_storage *ss, struct wfpb_addr *a)
{
	memset(a, 0, sizeof(*a));
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;

		a->family = WFPB_AF_INET;
		a->port = ntohs(sin->sin_port);
		memcpy(a->addr, &sin->sin_addr, 4);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;

		a->family = WFPB_AF_INET6;
		a->port = ntohs(sin6->sin6_port);
		a->scope_id = sin6->sin6_scope_id;
		memcpy(a->addr, &sin6->sin6_addr, 16);
	}
}

#endif
