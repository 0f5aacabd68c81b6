/* SPDX-License-Identifier: Apache-2.0 */
/* Strict number parsing for command lines: all digits, no sign, no trailing text, within a range. */
#ifndef WFPB_NUM_H
#define WFPB_NUM_H

#include <stdint.h>

#include "wfpb_error.h"

/* 0 with *out set, or WFPB_E_INVAL when s is not a decimal number in [min, max]. */
int WFPB_MUST_CHECK wfpb_parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out);

#endif
