/* SPDX-License-Identifier: Apache-2.0 */
/* Windows accounts for Group Policy and the installer (gpo_win.c). */
#ifndef WFPB_GPO_WIN_H
#define WFPB_GPO_WIN_H

#include <stddef.h>

/* "S-1-..." as given (checked), or an account name looked up; into sid_out as a string. 0 or -1. */
int wfpb__group_sid(const char *group, char *sid_out, size_t cap);

#endif
