/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The control data WSARecvMsg returns with a redirected flow's first datagram: a run of
 * WSACMSGHDR (SIZE_T cmsg_len, INT cmsg_level, INT cmsg_type, the data at the next 8-byte
 * boundary), each at the 8-byte boundary after the last, in the 64-bit Windows layout. Read as
 * untrusted bytes (a callout chose the records and context), exactly: a header or data that
 * runs past the buffer, a length shorter than its header, or a type seen twice is refused.
 * Portable, so that the Linux suite tests it too (with its sanitizers).
 */
#include <string.h>

#include "wfp_control.h"
#include "wfpb_error.h"

#define ALIGN		8u	/* TYPE_ALIGNMENT(WSACMSGHDR) on x64 */
#define HDR_LEN		16u	/* SIZE_T, INT, INT */
#define DATA_AT		16u	/* WSA_CMSGDATA_ALIGN(sizeof(WSACMSGHDR)) */

static size_t
align_up(size_t n)
{
	return (n + (ALIGN - 1)) & ~(size_t)(ALIGN - 1);
}

int
wfpb__wfp_control_parse(const uint8_t *ctl, size_t len, struct wfpb_wfp_control *out)
{
	size_t		off = 0, clen, dlen;
	uint64_t	raw;
	int32_t		level, type;

	memset(out, 0, sizeof(*out));
	while (len - off >= HDR_LEN) {
		memcpy(&raw, ctl + off, sizeof(raw));	/* little-endian SIZE_T, as on Windows */
		memcpy(&level, ctl + off + 8, sizeof(level));
		memcpy(&type, ctl + off + 12, sizeof(type));
		if (raw < DATA_AT || raw > len - off)
			return WFPB_E_PROTOCOL;
		clen = (size_t)raw;
		dlen = clen - DATA_AT;
		if ((level == WFPB_WFP_LEVEL_IP || level == WFPB_WFP_LEVEL_IPV6) &&
		    (type == WFPB_WFP_CMSG_RECORDS || type == WFPB_WFP_CMSG_CONTEXT)) {
			const uint8_t	**p = type == WFPB_WFP_CMSG_RECORDS ? &out->records : &out->context;
			size_t		*n = type == WFPB_WFP_CMSG_RECORDS ? &out->records_len : &out->context_len;

			if (*p != NULL)
				return WFPB_E_PROTOCOL;	/* twice: which one would WFP have meant? */
			if (dlen > WFPB_WFP_CONTROL_DATA_MAX)
				return WFPB_E_LIMIT;
			*p = ctl + off + DATA_AT;
			*n = dlen;
		}
		/* Anything else (IP_PKTINFO, a type added later) is stepped over. */
		if (align_up(clen) >= len - off)
			break;
		off += align_up(clen);
	}
	return 0;
}
