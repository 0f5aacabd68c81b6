/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer: the configuration/policy parser (INI reader, values, principals, ranges). */
#include <stddef.h>
#include <stdint.h>

#include "config.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct wfpb_config	base, cfg;
	struct wfpb_ini_error	err;

	wfpb_config_defaults(&base, "/x", "/y");
	if (wfpb_config_parse((const char *)data, size, &base, &cfg, &err) == 0)
		wfpb_config_free(&cfg);
	else if (err.message[0] == '\0')
		__builtin_trap();	/* every rejection says why */
	return 0;
}
