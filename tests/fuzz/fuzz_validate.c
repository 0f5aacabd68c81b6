/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer: the request validators alone, as pure functions of a request
 * and the limits. The first 5 bytes choose the limits (blob_max, descriptors
 * received); the rest is the request message. A validator that accepts what
 * its own bounds forbid, or refuses without a status, traps.
 */
#include <stddef.h>
#include <stdint.h>

#include "dispatch.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct wfpb_limits lim;

	if (size < 5)
		return 0;
	lim.blob_max = ((uint32_t)data[0] << 16 | (uint32_t)data[1] << 8 | data[2]) + 1u;
	lim.n_fds = data[3] % 5u;	/* WFPB_SESSION_FDS_MAX is 4 */
	(void)data[4];
	if (wfpb__validate_message(&lim, data + 5, size - 5) < 0)
		__builtin_trap();
	return 0;
}
