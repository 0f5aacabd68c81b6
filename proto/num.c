/* SPDX-License-Identifier: Apache-2.0 */
/* Strict number parsing and UTC time stamps (num.h). */
#include <stddef.h>
#include <stdio.h>

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

/* The civil date of a day count since 1970-01-01 (H. Hinnant's days_from_civil, inverted). */
static void
civil(long long days, int *y, unsigned *m, unsigned *d)
{
	long long	z = days + 719468, era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned	doe = (unsigned)(z - era * 146097);
	unsigned	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned	doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;

	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int)(yoe + era * 400 + (*m <= 2));
}

void
wfpb_rfc3339(uint64_t unix_ms, char out[WFPB_RFC3339_LEN])
{
	uint64_t	secs = unix_ms / 1000u, sod = secs % 86400u;
	unsigned	m, d;
	int		y;

	civil((long long)(secs / 86400u), &y, &m, &d);
	snprintf(out, WFPB_RFC3339_LEN, "%04d-%02u-%02uT%02u:%02u:%02u.%03uZ", y, m, d, (unsigned)(sod / 3600u),
	    (unsigned)(sod / 60u % 60u), (unsigned)(sod % 60u), (unsigned)(unix_ms % 1000u));
}
