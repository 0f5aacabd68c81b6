/* SPDX-License-Identifier: Apache-2.0 */
/* The one UTF-8 to UTF-16 conversion the Windows code uses. */
#include <windows.h>

#include <stdlib.h>

#include "wide_win.h"

wchar_t *
wfpb__widen(const char *s)
{
	int	n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, NULL, 0);
	wchar_t	*w;

	if (n <= 0 || (w = malloc((size_t)n * sizeof(wchar_t))) == NULL)
		return NULL;
	MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, w, n);
	return w;
}
