/* Platform backends on POSIX: the netfilter backend is not built yet, so none. */
#include <stddef.h>

#include "backend.h"

const struct wfpb_backend_ops *
wfpb__platform_backend(const char *name, void **ctx)
{
	(void)name;
	*ctx = NULL;
	return NULL;
}
