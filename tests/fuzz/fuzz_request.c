/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer: request unpack, validation and dispatch against the sim backend
 * with a fixed policy, on an established session (the decrypted message is
 * the input). The policy grants no socket ops, so inputs cannot open sockets.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "dispatch.h"
#include "session.h"

static struct wfpb_broker	b;
static struct wfpb_session	*s;
static struct wfpb_channel	c;

static void
setup(void)
{
	static const char		text[] = "[service]\nblob_max = 4096\nstash_max_per_principal = 64\n"
					    "[principal fuzz]\nuid = 1000\nops = stash fetch admin\n";
	struct wfpb_config		base, cfg;
	struct wfpb_ini_error		err;
	struct wfpb_noise_keypair	key;
	struct wfpb_identity		id = { .known = 1, .pid = 1, .uid = 1000, .gid = 1000, .user = "1000" };
	const uint8_t			*p;
	wfpb_sock			att;
	size_t				len, used;

	if (sodium_init() < 0)
		abort();
	wfpb_config_defaults(&base, "/x", "/y");
	base.audit = 0;
	if (wfpb_config_parse(text, sizeof(text) - 1, &base, &cfg, &err) != 0)
		abort();
	wfpb_noise_keypair_generate(&key);
	if (wfpb_broker_init(&b, &cfg, NULL, &key, 1) != 0)
		abort();
	s = wfpb_session_new(&b, &id, 1);
	if (wfpb_channel_client_start(&c, key.pub, NULL) != 0)
		abort();
	p = wfpb_channel_output(&c, &len);
	if (wfpb_session_input(s, p, len, 2) != 0)
		abort();
	p = wfpb_session_output(s, &len, &att);
	if (wfpb_channel_feed(&c, p, len, &used) != WFPB_CHANNEL_ESTABLISHED)
		abort();
	wfpb_session_output_done(s, len);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint64_t	now = 10;
	const uint8_t	*p;
	wfpb_sock	att;
	size_t		len;

	if (s == NULL)
		setup();
	if (size > WFPB_CHANNEL_MSG_MAX)
		return 0;
	now += 1000;	/* stash entries expire as the run goes on */
	if (wfpb_dispatch(s, data, size, now) != 0)
		__builtin_trap();	/* bad input must get a status, never end the session */
	wfpb_broker_tick(&b, now);
	while ((p = wfpb_session_output(s, &len, &att)) != NULL) {
		if (att != WFPB_SOCK_NONE)
			__builtin_trap();
		wfpb_session_output_done(s, len);
	}
	return 0;
}
