/* SPDX-License-Identifier: Apache-2.0 */
/*
 * transcript-vector FILE: the session transcripts of tests/vectors/transcript-v1.json, for
 * other implementations of the protocol to test against, checked against this one. For NK and
 * IK, from fixed static and ephemeral keys: the server.pub file, the preamble, both handshake
 * frames, the handshake hash, and one Ping request and its response as plaintext protobuf and
 * as transport frames. Both sides run through proto/channel.c, the code the broker and libwfpb
 * use, and every byte must match the file; the broker side must decode the request to the Ping
 * it names and the client side decrypt the response. transcript-vector --write FILE writes the
 * file (only ever when the protocol changes on purpose).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "channel.h"
#include "frame.h"
#include "wfpbroker.pb-c.h"

#define PING_PAYLOAD	"ping"
#define SERVICE_VERSION	"0.1.0"	/* what the vector's broker answers; part of the vector, not the build */

struct transcript {
	const char	*pattern;
	uint8_t		*out[16];
	size_t		len[16];
	const char	*name[16];
	int		n;
	int		failed;
};

static void
fixed_key(uint8_t k[32], uint8_t base)
{
	int i;

	for (i = 0; i < 32; i++)
		k[i] = (uint8_t)(base + i);
}

static void
put(struct transcript *t, const char *name, const uint8_t *p, size_t len)
{
	t->name[t->n] = name;
	t->out[t->n] = malloc(len ? len : 1);
	memcpy(t->out[t->n], p, len);
	t->len[t->n++] = len;
}

static void
fail(struct transcript *t, const char *what)
{
	printf("FAIL %s: %s\n", t->pattern, what);
	t->failed = 1;
}

/* Moves everything ch has queued into buf; returns its length. */
static size_t
drain(struct wfpb_channel *ch, uint8_t *buf, size_t cap)
{
	const uint8_t	*p;
	size_t		len;

	p = wfpb_channel_output(ch, &len);
	if (len > cap)
		len = cap;
	memcpy(buf, p, len);
	wfpb_channel_output_done(ch, len);
	return len;
}

static int
enrolled(void *arg, const uint8_t pub[WFPB_NOISE_DHLEN])
{
	return memcmp(arg, pub, WFPB_NOISE_DHLEN) == 0;
}

/* Feeds all of in to ch; returns the last event, or a negative error. */
static int
feed(struct wfpb_channel *ch, const uint8_t *in, size_t len)
{
	size_t	used;
	int	ev = WFPB_CHANNEL_MORE;

	while (len > 0) {
		if ((ev = wfpb_channel_feed(ch, in, len, &used)) < 0)
			return ev;
		in += used;
		len -= used;
		if (ev != WFPB_CHANNEL_MORE)
			break;
	}
	return ev;
}

static void
run(struct transcript *t, int ik)
{
	struct wfpb_noise_keypair	server, client;
	struct wfpb_channel		cc, sc;
	Wfpbroker__V1__Request		rq = WFPBROKER__V1__REQUEST__INIT, *got;
	Wfpbroker__V1__PingRequest	ping = WFPBROKER__V1__PING_REQUEST__INIT;
	Wfpbroker__V1__Response		rp = WFPBROKER__V1__RESPONSE__INIT;
	Wfpbroker__V1__Status		st = WFPBROKER__V1__STATUS__INIT;
	Wfpbroker__V1__PingResponse	pong = WFPBROKER__V1__PING_RESPONSE__INIT;
	uint8_t				ce[32], se[32], buf[4096], plain[1024];
	char				pubfile[66];
	const uint8_t			*msg;
	size_t				n, plen, mlen;

	t->pattern = ik ? "IK" : "NK";
	fixed_key(server.priv, 0x01);
	wfpb_noise_keypair_from_private(&server);
	fixed_key(client.priv, 0x21);
	wfpb_noise_keypair_from_private(&client);
	fixed_key(ce, 0x41);
	fixed_key(se, 0x61);
	put(t, "server_static_private", server.priv, 32);
	put(t, "server_static_public", server.pub, 32);
	if (ik) {
		put(t, "client_static_private", client.priv, 32);
		put(t, "client_static_public", client.pub, 32);
	}
	put(t, "client_ephemeral_private", ce, 32);
	put(t, "server_ephemeral_private", se, 32);
	sodium_bin2hex(pubfile, 65, server.pub, 32);
	pubfile[64] = '\n';
	put(t, "server_pub_file", (const uint8_t *)pubfile, 65);

	if (wfpb_channel_client_start_fixed(&cc, 1, server.pub, ik ? &client : NULL, ce) != 0)
		return fail(t, "client start");
	wfpb_channel_server_init(&sc, &server, enrolled, client.pub);
	wfpb_channel_server_fix_ephemeral(&sc, se);
	n = drain(&cc, buf, sizeof(buf));
	put(t, "preamble", buf, WFPB_PREAMBLE_LEN);
	put(t, "client_handshake_frame", buf + WFPB_PREAMBLE_LEN, n - WFPB_PREAMBLE_LEN);
	if (feed(&sc, buf, n) != WFPB_CHANNEL_ESTABLISHED)
		return fail(t, "the broker side did not complete the handshake");
	n = drain(&sc, buf, sizeof(buf));
	put(t, "server_handshake_frame", buf, n);
	if (feed(&cc, buf, n) != WFPB_CHANNEL_ESTABLISHED)
		return fail(t, "the client side did not complete the handshake");
	if (memcmp(cc.handshake_hash, sc.handshake_hash, WFPB_NOISE_HASHLEN) != 0)
		return fail(t, "the two sides' handshake hashes differ");
	put(t, "handshake_hash", cc.handshake_hash, WFPB_NOISE_HASHLEN);

	ping.payload.data = (uint8_t *)PING_PAYLOAD;
	ping.payload.len = strlen(PING_PAYLOAD);
	rq.request_id = 1;
	rq.op_case = WFPBROKER__V1__REQUEST__OP_PING;
	rq.ping = &ping;
	plen = wfpbroker__v1__request__pack(&rq, plain);
	put(t, "request_plaintext", plain, plen);
	if (wfpb_channel_send(&cc, plain, plen) != 0)
		return fail(t, "client send");
	n = drain(&cc, buf, sizeof(buf));
	put(t, "request_frame", buf, n);
	if (feed(&sc, buf, n) != WFPB_CHANNEL_MESSAGE || (msg = wfpb_channel_message(&sc, &mlen)) == NULL)
		return fail(t, "the broker side did not decrypt the request");
	if ((got = wfpbroker__v1__request__unpack(NULL, mlen, msg)) == NULL || got->request_id != 1 ||
	    got->op_case != WFPBROKER__V1__REQUEST__OP_PING || got->ping->payload.len != strlen(PING_PAYLOAD) ||
	    memcmp(got->ping->payload.data, PING_PAYLOAD, strlen(PING_PAYLOAD)) != 0)
		fail(t, "the request does not decode to Ping(\"" PING_PAYLOAD "\") with request_id 1");
	if (got != NULL)
		wfpbroker__v1__request__free_unpacked(got, NULL);

	rp.request_id = 1;
	st.code = WFPBROKER__V1__STATUS_CODE__OK;
	rp.status = &st;
	pong.payload = ping.payload;
	pong.protocol_version = 1;	/* the vector is of a version-1 session */
	pong.service_version = (char *)SERVICE_VERSION;
	rp.result_case = WFPBROKER__V1__RESPONSE__RESULT_PING;
	rp.ping = &pong;
	plen = wfpbroker__v1__response__pack(&rp, plain);
	put(t, "response_plaintext", plain, plen);
	if (wfpb_channel_send(&sc, plain, plen) != 0)
		return fail(t, "broker send");
	n = drain(&sc, buf, sizeof(buf));
	put(t, "response_frame", buf, n);
	if (feed(&cc, buf, n) != WFPB_CHANNEL_MESSAGE || (msg = wfpb_channel_message(&cc, &mlen)) == NULL ||
	    mlen != plen || memcmp(msg, plain, plen) != 0)
		fail(t, "the client side did not decrypt the response to its plaintext");
	wfpb_channel_free(&cc);
	wfpb_channel_free(&sc);
}

static void
transcript_free(struct transcript *t)
{
	int i;

	for (i = 0; i < t->n; i++)
		free(t->out[i]);
	t->n = 0;
}

static json_t *
to_json(const struct transcript *t)
{
	json_t	*o = json_object();
	char	*hex;
	int	i;

	json_object_set_new(o, "pattern", json_string(t->pattern));
	for (i = 0; i < t->n; i++) {
		if (strcmp(t->name[i], "server_pub_file") == 0) {
			json_object_set_new(o, t->name[i], json_stringn((const char *)t->out[i], t->len[i]));
			continue;
		}
		hex = malloc(2 * t->len[i] + 1);
		sodium_bin2hex(hex, 2 * t->len[i] + 1, t->out[i], t->len[i]);
		json_object_set_new(o, t->name[i], json_string(hex));
		free(hex);
	}
	return o;
}

int
main(int argc, char **argv)
{
	struct transcript	t[2];
	json_error_t		err;
	json_t			*file, *want, *have;
	const char		*key;
	json_t			*v;
	int			i, write = argc == 3 && strcmp(argv[1], "--write") == 0, bad = 0;

	if (argc != 2 && !write) {
		fprintf(stderr, "usage: transcript-vector [--write] FILE\n");
		return 2;
	}
	if (sodium_init() < 0)
		return 1;
	memset(t, 0, sizeof(t));
	run(&t[0], 0);
	run(&t[1], 1);
	if (t[0].failed || t[1].failed) {
		bad = 1;
		goto out;
	}
	if (write) {
		file = json_object();
		json_object_set_new(file, "description", json_string(
		    "wfpbroker protocol 1 session transcripts (docs/PROTOCOL.md, section 7). Byte strings are hex; "
		    "server_pub_file is the text of server.pub. Keys are fixed for the vector: never use them."));
		json_object_set_new(file, "transcripts", json_pack("[oo]", to_json(&t[0]), to_json(&t[1])));
		bad = json_dump_file(file, argv[2], JSON_INDENT(2) | JSON_PRESERVE_ORDER) == 0 ? 0 : 1;
		json_decref(file);
		goto out;
	}
	if ((file = json_load_file(argv[1], 0, &err)) == NULL) {
		printf("FAIL %s: %s\n", argv[1], err.text);
		bad = 1;
		goto out;
	}
	for (i = 0; i < 2; i++) {
		want = json_array_get(json_object_get(file, "transcripts"), (size_t)i);
		have = to_json(&t[i]);
		if (want == NULL || json_object_size(want) != json_object_size(have)) {
			printf("FAIL %s: the vector does not have the fields this implementation produces\n",
			    t[i].pattern);
			bad = 1;
		}
		json_object_foreach(have, key, v) {
			if (!json_equal(v, json_object_get(want, key))) {
				printf("FAIL %s %s: this implementation produces %s\n", t[i].pattern, key,
				    json_string_value(v));
				bad = 1;
			}
		}
		if (!bad)
			printf("ok   %s transcript: %zu fields, byte for byte\n", t[i].pattern, json_object_size(have));
		json_decref(have);
	}
	json_decref(file);
out:
	transcript_free(&t[0]);
	transcript_free(&t[1]);
	return bad;
}
