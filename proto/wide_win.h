/* SPDX-License-Identifier: Apache-2.0 */
/* UTF-8 to UTF-16 for Win32 calls (wide_win.c). Windows builds only. */
#ifndef WFPB_WIDE_WIN_H
#define WFPB_WIDE_WIN_H

#include <wchar.h>

/* A malloc'd UTF-16 copy of UTF-8 s (caller frees), or NULL if s is not valid UTF-8 or memory ran out. */
wchar_t *wfpb__widen(const char *s);

#endif
