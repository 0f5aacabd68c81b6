/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The secure channel: preamble, Noise handshake and transport messages over
 * frames, as a state machine that never touches a socket. The caller moves
 * bytes: it feeds what it read with wfpb_channel_feed and writes what
 * wfpb_channel_output returns. The same code runs in the broker (responder)
 * and in libwfpb (initiator), on every platform. Input is untrusted; any
 * failure leaves the channel in a dead state and the caller closes the
 * connection after flushing the output (which may hold a reject notice).
 */
#ifndef WFPB_CHANNEL_H
#define WFPB_CHANNEL_H

#include <stddef.h>
#include <stdint.h>

#include "frame.h"
#include "noise.h"
#include "wfpb_error.h"

/* Largest protobuf message one transport frame carries. */
#define WFPB_CHANNEL_MSG_MAX	(WFPB_FRAME_MAX - WFPB_NOISE_TAGLEN)
/* Handshake messages carry empty payloads; a longer one is refused unread. */
#define WFPB_HANDSHAKE_MSG_MAX	256u
/* A reject notice is a frame shorter than the smallest handshake reply. */
#define WFPB_REJECT_MAX		(WFPB_NOISE_DHLEN + WFPB_NOISE_TAGLEN - 1)

/* Why the broker refused a session before or during the handshake. */
enum wfpb_reject {
	WFPB_REJECT_BAD_MAGIC = 1,
	WFPB_REJECT_VERSION = 2,
	WFPB_REJECT_PATTERN = 3,
	WFPB_REJECT_HANDSHAKE = 4,
	WFPB_REJECT_KEY = 5,		/* IK static key not enrolled */
	WFPB_REJECT_BUSY = 6,		/* session limit reached */
	WFPB_REJECT_DEADLINE = 7,	/* handshake deadline passed */
};

enum wfpb_channel_event {
	WFPB_CHANNEL_MORE = 0,		/* all input consumed, nothing to report */
	WFPB_CHANNEL_ESTABLISHED = 1,	/* the handshake just completed */
	WFPB_CHANNEL_MESSAGE = 2,	/* a plaintext message is ready */
};

/* Decides whether an IK client's static key is enrolled: 1 yes, 0 no. */
typedef int (*wfpb_key_check_fn)(void *arg, const uint8_t pub[WFPB_NOISE_DHLEN]);

struct wfpb_channel {
	int				initiator;
	int				state;
	uint16_t			pattern;
	uint16_t			version;	/* the preamble's: sent (client) or accepted (broker) */
	uint8_t				preamble[WFPB_PREAMBLE_LEN];
	size_t				preamble_have;
	struct wfpb_noise_handshake	hs;
	struct wfpb_noise_cipher	tx, rx;
	struct wfpb_frame_decoder	dec;
	uint8_t				*out;
	size_t				out_off, out_len, out_cap;
	uint8_t				*msg;		/* plaintext of the ready message, in dec's buffer */
	size_t				msg_len;
	int				reject;		/* client: reason from a reject notice */
	uint8_t				peer_static[WFPB_NOISE_DHLEN];
	int				has_peer_static;
	uint8_t				handshake_hash[WFPB_NOISE_HASHLEN];
	const struct wfpb_noise_keypair	*server_key;	/* responder only, borrowed */
	wfpb_key_check_fn		key_check;
	void				*key_check_arg;
	uint8_t				fixed_e[WFPB_NOISE_DHLEN];	/* test vectors only */
	int				has_fixed_e;
};

/*
 * Starts a client channel: queues the preamble and handshake message 1.
 * server_pub is the pinned broker key; client (may be NULL) selects IK.
 * Speaks WFPB_PROTOCOL_VERSION; _version names another one (a version-1
 * client, in tests). Returns 0, WFPB_E_NOMEM, WFPB_E_DH, or WFPB_E_VERSION
 * for a version this code does not speak.
 */
int WFPB_MUST_CHECK wfpb_channel_client_start(struct wfpb_channel *ch, const uint8_t server_pub[WFPB_NOISE_DHLEN],
    const struct wfpb_noise_keypair *client);
int WFPB_MUST_CHECK wfpb_channel_client_start_version(struct wfpb_channel *ch, uint16_t version,
    const uint8_t server_pub[WFPB_NOISE_DHLEN], const struct wfpb_noise_keypair *client);

/*
 * For test vectors only (tests/vectors/transcript-v1.json): the same with a
 * fixed ephemeral private key (NULL: a random one, as always in service), and
 * for a broker-side channel, after wfpb_channel_server_init. A fixed
 * ephemeral key outside a test gives away every session that used it.
 */
int WFPB_MUST_CHECK wfpb_channel_client_start_fixed(struct wfpb_channel *ch, uint16_t version,
    const uint8_t server_pub[WFPB_NOISE_DHLEN], const struct wfpb_noise_keypair *client, const uint8_t *e_priv);
void wfpb_channel_server_fix_ephemeral(struct wfpb_channel *ch, const uint8_t e_priv[WFPB_NOISE_DHLEN]);

/*
 * Prepares a broker-side channel. server_key is borrowed and must outlive the
 * channel; key_check may be NULL, and then IK sessions are refused.
 */
void wfpb_channel_server_init(struct wfpb_channel *ch, const struct wfpb_noise_keypair *server_key,
    wfpb_key_check_fn key_check, void *key_check_arg);

/*
 * Feeds received bytes; *consumed tells how many were taken. Call again with
 * the rest after handling an event. Returns an enum wfpb_channel_event or a
 * negative WFPB_E_* (then the channel is dead; flush the output and close).
 * A client that received a reject notice gets WFPB_E_REJECTED and the reason
 * in ch->reject.
 */
int WFPB_MUST_CHECK wfpb_channel_feed(struct wfpb_channel *ch, const uint8_t *in, size_t len, size_t *consumed);

/* The ready message after WFPB_CHANNEL_MESSAGE; valid until the next feed. */
const uint8_t *wfpb_channel_message(const struct wfpb_channel *ch, size_t *len);

/* Encrypts and queues one message of at most WFPB_CHANNEL_MSG_MAX bytes. */
int WFPB_MUST_CHECK wfpb_channel_send(struct wfpb_channel *ch, const uint8_t *msg, size_t len);

/* Bytes waiting to be written, and marking n of them written. */
const uint8_t *wfpb_channel_output(const struct wfpb_channel *ch, size_t *len);
void wfpb_channel_output_done(struct wfpb_channel *ch, size_t n);

/* Broker side: queues a reject notice and kills the channel. */
void wfpb_channel_reject(struct wfpb_channel *ch, enum wfpb_reject reason);

int wfpb_channel_established(const struct wfpb_channel *ch);

/* The protocol version of the session: known once the preamble is complete, else 0. */
unsigned wfpb_channel_version(const struct wfpb_channel *ch);

/* Truthy when EOF now would cut a frame or the handshake short. */
int wfpb_channel_partial(const struct wfpb_channel *ch);

/* The IK client's static key once the handshake is done, else NULL. */
const uint8_t *wfpb_channel_peer_key(const struct wfpb_channel *ch);

/* A short text for a reject reason. */
const char *wfpb_reject_str(int reason);

/* Wipes keys and frees buffers; the struct may be reused after _init/_start. */
void wfpb_channel_free(struct wfpb_channel *ch);

#endif
