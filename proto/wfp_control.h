/* SPDX-License-Identifier: Apache-2.0 */
/* The control data of a WFP-redirected UDP flow's first datagram (proto/wfp_control.c). */
#ifndef WFPB_WFP_CONTROL_H
#define WFPB_WFP_CONTROL_H

#include <stddef.h>
#include <stdint.h>

/* IPPROTO_IP and IPPROTO_IPV6, and IP(V6)_WFP_REDIRECT_RECORDS / _CONTEXT (ws2ipdef.h). */
#define WFPB_WFP_LEVEL_IP		0
#define WFPB_WFP_LEVEL_IPV6		41
#define WFPB_WFP_CMSG_RECORDS		60
#define WFPB_WFP_CMSG_CONTEXT		70
/* The most records, or context, a flow may carry: the broker's WFPB_REDIRECT_MAX. */
#define WFPB_WFP_CONTROL_DATA_MAX	(16u * 1024u)

/* What a datagram's control data held: pointers into it, NULL and 0 when absent. */
struct wfpb_wfp_control {
	const uint8_t	*records, *context;
	size_t		records_len, context_len;
};

/*
 * Walks len bytes of control data (64-bit Windows WSACMSGHDR layout) for the records and the
 * context: 0 with *out set; WFPB_E_PROTOCOL when a header or its data runs past the buffer,
 * a length is shorter than its header, or either type comes twice; WFPB_E_LIMIT when either
 * is longer than WFPB_WFP_CONTROL_DATA_MAX. Other types are stepped over.
 */
int wfpb__wfp_control_parse(const uint8_t *ctl, size_t len, struct wfpb_wfp_control *out);

#endif
