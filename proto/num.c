/* SPDX-License-Identifier: Apache-2.0 */
/* Strict number parsing (num.h). */
#include <stddef.h>

#include "num.h"

int
wfpb_parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
	uint64_t v = 0;

	if (s == NULL || *s == '\0')
		return WFPB_E_INVAL;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return WFPB_E_INVAL;
		v = v * 10 + (uint64_t)(*s - '0');
		if (v > max)
			return WFPB_E_INVAL;
	}
	if (v < min)
		return WFPB_E_INVAL;
	*out = (uint32_t)v;
	return 0;
}
