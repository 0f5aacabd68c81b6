/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer: the record-blob parsers that take client bytes — the sim
 * backend's (set_records) and the netfilter record (wfpb_nf_record_parse).
 * Both must refuse garbage with EINVAL, and a netfilter record that parses
 * must encode back to the same bytes.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "wfpbroker.pb-c.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static void		*sim;
	struct wfpb_nf_record	r;
	uint8_t			again[WFPB_NF_RECORD_LEN];
	int			os_err, rc;

	if (sim == NULL && (sim = wfpb_sim_new()) == NULL)
		abort();
	rc = wfpb_backend_sim.set_records(sim, WFPB_SOCK_NONE, data, size, 0, 0xffffffffu, &os_err);
	if (rc != 0 && rc != WFPBROKER__V1__STATUS_CODE__EINVAL)
		__builtin_trap();
	rc = wfpb_nf_record_parse(data, size, &r);
	if (rc != 0 && rc != WFPBROKER__V1__STATUS_CODE__EINVAL)
		__builtin_trap();
	if (rc == 0) {
		wfpb_nf_record_encode(&r, again);
		if (size != sizeof(again) || memcmp(again, data, size) != 0)
			__builtin_trap();
	}
	return 0;
}
