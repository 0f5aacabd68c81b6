/* libFuzzer: the sim backend's record-blob parser (set_records), which must refuse garbage with EINVAL. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "backend.h"
#include "wfpbroker.pb-c.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static void	*sim;
	int		os_err, rc;

	if (sim == NULL && (sim = wfpb_sim_new()) == NULL)
		abort();
	rc = wfpb_backend_sim.set_records(sim, WFPB_SOCK_NONE, data, size, &os_err);
	if (rc != 0 && rc != WFPBROKER__V1__STATUS_CODE__EINVAL)
		__builtin_trap();
	return 0;
}
