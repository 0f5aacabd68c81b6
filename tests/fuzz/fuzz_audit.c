/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer: the audit log reader/verifier on arbitrary (edited) files. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "audit.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t		pk[32] = { 1 };
	struct wfpb_audit_report	rep;

	if (wfpb_audit_verify(data, size, pk, &rep) == 0) {
		if (rep.valid_len > size)
			__builtin_trap();
	} else if (rep.error[0] == '\0') {
		__builtin_trap();	/* a failure always names its cause */
	}
	return 0;
}
