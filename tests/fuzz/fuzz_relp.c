/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer: the audit follower's RELP client reading a collector's answers. The first byte
 * picks how many messages wait (1..64) and the split of the input into reads; the rest is what
 * the "collector" sends. Whatever it sends, the client acknowledges at most the messages that
 * wait, in order, and once the session is broken it acknowledges nothing more.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "relp.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct wfpb_relp	*c;
	unsigned		waiting, i;
	size_t			off = 1, chunk, acked, total = 0;
	char			err[256];

	if (size < 1)
		return 0;
	waiting = (unsigned)(data[0] & 63) + 1;
	chunk = (size_t)(data[0] >> 6) * 7 + 1;
	if ((c = wfpb__relp_detached(64)) == NULL)
		abort();
	for (i = 0; i < waiting; i++)
		if (wfpb_relp_send(c, "m", 1, err, sizeof(err)) != 0)
			abort();
	while (off < size) {
		size_t n = size - off < chunk ? size - off : chunk;
		int rc = wfpb__relp_take(c, (const char *)data + off, n, &acked, err, sizeof(err));

		total += acked;
		if (total > waiting || wfpb_relp_unacked(c) != waiting - total)
			abort();	/* acknowledged more than was sent, or lost count */
		if (rc != 0)
			break;
		off += n;
	}
	wfpb_relp_close(c, 0);
	return 0;
}
