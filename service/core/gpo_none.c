/* SPDX-License-Identifier: Apache-2.0 */
/* Group Policy where there is none (gpo.h): every setting unset. */
#include <string.h>

#include "gpo.h"

int
wfpb__gpo_read(struct wfpb_gpo *out, char *err, size_t cap)
{
	(void)err;
	(void)cap;
	memset(out, 0, sizeof(*out));
	return 0;
}
