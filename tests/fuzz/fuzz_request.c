/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer: requests through an established session, pipelined. The first
 * byte picks a session speaking protocol version 1 or 2; the rest is a list
 * of messages, each a 2-byte big-endian length and that many bytes, sent
 * through the channel back to back (the broker decrypts, unpacks, validates
 * and dispatches them, holding or answering as its version says). Between
 * inputs time moves on: pending Accepts time out, stash entries expire. The
 * policy grants listening on loopback and Accept (so requests wait), never a
 * connection out. Bad input must get a status, never end the session.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "dispatch.h"
#include "session.h"

static struct wfpb_broker	b;
static struct wfpb_session	*sessions[2];
static struct wfpb_channel	chans[2];

static void
open_one(struct wfpb_noise_keypair *key, unsigned version, struct wfpb_session **s, struct wfpb_channel *c)
{
	struct wfpb_identity	id = { .known = 1, .pid = 1, .uid = 1000, .gid = 1000, .user = "1000" };
	const uint8_t		*p;
	wfpb_sock		att;
	size_t			len, used;

	*s = wfpb_session_new(&b, &id, 1);
	if (*s == NULL || wfpb_channel_client_start_version(c, (uint16_t)version, key->pub, NULL) != 0)
		abort();
	p = wfpb_channel_output(c, &len);
	if (wfpb_session_input(*s, p, len, 2) != 0)
		abort();
	wfpb_channel_output_done(c, len);
	p = wfpb_session_output(*s, &len, &att);
	if (wfpb_channel_feed(c, p, len, &used) != WFPB_CHANNEL_ESTABLISHED)
		abort();
	wfpb_session_output_done(*s, len);
}

static void
setup(void)
{
	static const char		text[] = "[service]\nbackend = sim\nblob_max = 4096\nstash_max_per_principal = 64\n"
					    "max_listeners_per_principal = 4\nmax_inflight = 8\n"
					    "[principal fuzz]\nuid = 1000\nops = stash fetch admin listen accept\n"
					    "listen = 127.0.0.1/32:*\n";
	struct wfpb_config		base, cfg;
	struct wfpb_ini_error		err;
	static struct wfpb_noise_keypair key;

	if (sodium_init() < 0)
		abort();
	wfpb_config_defaults(&base, "/x", "/y");
	base.audit = 0;
	if (wfpb_config_parse(text, sizeof(text) - 1, &base, &cfg, &err) != 0)
		abort();
	wfpb_noise_keypair_generate(&key);
	if (wfpb_broker_init(&b, &cfg, NULL, &key, 1) != 0)
		abort();
	open_one(&key, 1, &sessions[0], &chans[0]);
	open_one(&key, 2, &sessions[1], &chans[1]);
}

/* Reads every answer the session has, as its client would (answers are decrypted, sockets closed). */
static void
drain(struct wfpb_session *s, struct wfpb_channel *c)
{
	const uint8_t	*p;
	wfpb_sock	att;
	size_t		len, used;
	int		ev;

	while ((p = wfpb_session_output(s, &len, &att)) != NULL) {
		if ((ev = wfpb_channel_feed(c, p, len, &used)) < 0)
			__builtin_trap();	/* the broker wrote something its own channel cannot read */
		wfpb_session_output_done(s, used);
		if (ev == WFPB_CHANNEL_MORE && used == 0)
			__builtin_trap();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint64_t		now = 10;
	struct wfpb_session	*s;
	struct wfpb_channel	*c;
	const uint8_t		*p;
	size_t			off = 1, n, len;

	if (sessions[0] == NULL)
		setup();
	if (size < 1)
		return 0;
	s = sessions[data[0] & 1];
	c = &chans[data[0] & 1];
	while (off + 2 <= size) {
		n = (size_t)data[off] << 8 | data[off + 1];
		off += 2;
		if (n == 0 || n > size - off || n > WFPB_CHANNEL_MSG_MAX)
			break;
		if (wfpb_channel_send(c, data + off, n) != 0)
			abort();
		off += n;
	}
	p = wfpb_channel_output(c, &len);
	if (p != NULL) {
		if (wfpb_session_input(s, p, len, now) != 0)
			__builtin_trap();	/* bad input must get a status, never end the session */
		wfpb_channel_output_done(c, len);
	}
	drain(s, c);
	/* Time moves on: waiting requests past their deadlines are answered; the session stays. */
	now += 700;
	if (wfpb_session_resume(s, WFPB_SOCK_NONE, now) != 0 || wfpb_session_sweep(s, now) == WFPB_SWEEP_CLOSE)
		__builtin_trap();
	wfpb_broker_tick(&b, now);
	drain(s, c);
	return 0;
}
