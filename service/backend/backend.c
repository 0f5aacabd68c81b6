/* SPDX-License-Identifier: Apache-2.0 */
/* Backend selection: by configuration only, never as a fallback. */
#include <stdlib.h>
#include <string.h>

#include "backend.h"

int
wfpb_backend_open(const char *name, struct wfpb_backend *out)
{
	out->ops = NULL;
	out->ctx = NULL;
	if (strcmp(name, "sim") == 0) {
		if ((out->ctx = wfpb_sim_new()) == NULL)
			return WFPB_E_NOMEM;
		out->ops = &wfpb_backend_sim;
		return 0;
	}
	if ((out->ops = wfpb__platform_backend(name, &out->ctx)) != NULL)
		return 0;
	return WFPB_E_UNSUPPORTED;
}

void
wfpb_backend_close(struct wfpb_backend *be)
{
	if (be->ops == &wfpb_backend_sim)
		wfpb_sim_free(be->ctx);
	else
		free(be->ctx);	/* platform backends keep plain malloc'd state */
	be->ops = NULL;
	be->ctx = NULL;
}
