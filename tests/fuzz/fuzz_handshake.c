/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer: the broker side of the channel (preamble, Noise NK/IK) fed untrusted bytes. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <sodium.h>

#include "channel.h"

static struct wfpb_noise_keypair server;

static int
enrolled(void *arg, const uint8_t pub[WFPB_NOISE_DHLEN])
{
	(void)arg;
	return pub[0] & 1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct wfpb_channel	ch;
	const uint8_t		*out;
	size_t			used, olen;
	int			rc;

	if (server.pub[0] == 0 && server.pub[1] == 0) {
		if (sodium_init() < 0)
			return 0;
		memset(server.priv, 0x42, sizeof(server.priv));
		wfpb_noise_keypair_from_private(&server);
	}
	wfpb_channel_server_init(&ch, &server, enrolled, NULL);
	while (size > 0) {
		rc = wfpb_channel_feed(&ch, data, size, &used);
		if (used > size)
			__builtin_trap();
		data += used;
		size -= used;
		if (rc < 0)
			break;
		if (rc == WFPB_CHANNEL_MORE && used == 0)
			break;
	}
	out = wfpb_channel_output(&ch, &olen);
	if (out != NULL && olen > 65537)
		__builtin_trap();
	wfpb_channel_free(&ch);
	return 0;
}
