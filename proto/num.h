/* SPDX-License-Identifier: Apache-2.0 */
/* Strict number parsing for command lines (all digits, no sign, no trailing text, within a range), and UTC time stamps. */
#ifndef WFPB_NUM_H
#define WFPB_NUM_H

#include <stdint.h>

#include "wfpb_error.h"

/* 0 with *out set, or WFPB_E_INVAL when s is not a decimal number in [min, max]. */
int WFPB_MUST_CHECK wfpb_parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out);

/*
 * Room for an RFC 3339 UTC time with milliseconds, "2026-12-01T23:40:00.123Z"
 * (24 characters for any year to 9999) and its NUL, with the margin the
 * compiler's truncation check asks for.
 */
#define WFPB_RFC3339_LEN	48u

/* Milliseconds since 1970 as that text, computed without the C library's gmtime (mingw's C11 lacks gmtime_r). */
void wfpb_rfc3339(uint64_t unix_ms, char out[WFPB_RFC3339_LEN]);

#endif
