/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Noise Protocol Framework (revision 34) for the two protocols the broker
 * speaks: Noise_NK_25519_ChaChaPoly_BLAKE2b and Noise_IK_25519_ChaChaPoly_BLAKE2b,
 * built on libsodium primitives alone. Handshake input is untrusted; every
 * failure leaves the state unusable (the caller drops the connection).
 * Secrets are wiped by wfpb_noise_handshake_wipe / wfpb_noise_cipher_wipe and
 * by split. Not thread-safe per object; distinct objects are independent.
 */
#ifndef WFPB_NOISE_H
#define WFPB_NOISE_H

#include <stddef.h>
#include <stdint.h>

#include "frame.h"
#include "wfpb_error.h"

#define WFPB_NOISE_DHLEN	32u
#define WFPB_NOISE_HASHLEN	64u
#define WFPB_NOISE_BLOCKLEN	128u
#define WFPB_NOISE_KEYLEN	32u
#define WFPB_NOISE_TAGLEN	16u
#define WFPB_NOISE_MSG_MAX	65535u	/* a Noise message fits one frame */

/* CipherState: k, n. n == UINT64_MAX is reserved, so reaching it fails closed. */
struct wfpb_noise_cipher {
	uint8_t		k[WFPB_NOISE_KEYLEN];
	uint64_t	n;
	int		has_key;
};

struct wfpb_noise_keypair {
	uint8_t		pub[WFPB_NOISE_DHLEN];
	uint8_t		priv[WFPB_NOISE_DHLEN];
};

struct wfpb_noise_handshake {
	int				pattern;	/* enum wfpb_pattern */
	int				initiator;
	int				step;		/* messages processed so far: 0, 1 or 2 */
	struct wfpb_noise_cipher	cs;
	uint8_t				ck[WFPB_NOISE_HASHLEN];
	uint8_t				h[WFPB_NOISE_HASHLEN];
	struct wfpb_noise_keypair	s;
	struct wfpb_noise_keypair	e;
	int				has_s, has_e;
	uint8_t				rs[WFPB_NOISE_DHLEN];
	uint8_t				re[WFPB_NOISE_DHLEN];
	int				has_rs, has_re;
};

/* Fills kp with a fresh X25519 key pair. */
void wfpb_noise_keypair_generate(struct wfpb_noise_keypair *kp);

/* Derives kp->pub from kp->priv. */
void wfpb_noise_keypair_from_private(struct wfpb_noise_keypair *kp);

/*
 * Starts a handshake. s is the local static key pair (required for the
 * responder, and for an IK initiator; ignored otherwise); rs is the
 * responder's static public key (required for the initiator, since both
 * patterns pre-share it). Returns 0, or WFPB_E_PATTERN / WFPB_E_INVAL.
 */
int WFPB_MUST_CHECK wfpb_noise_handshake_init(struct wfpb_noise_handshake *hs, int pattern, int initiator,
    const uint8_t *prologue, size_t prologue_len, const struct wfpb_noise_keypair *s,
    const uint8_t rs[WFPB_NOISE_DHLEN]);

/* Fixes the ephemeral key instead of generating one (test vectors only). */
void wfpb_noise_handshake_set_ephemeral(struct wfpb_noise_handshake *hs, const uint8_t priv[WFPB_NOISE_DHLEN]);

/*
 * Writes the next handshake message carrying payload into out (capacity
 * cap), setting *out_len. Returns 0, WFPB_E_STATE (not our turn, or done),
 * WFPB_E_INVAL (does not fit), WFPB_E_DH.
 */
int WFPB_MUST_CHECK wfpb_noise_handshake_write(struct wfpb_noise_handshake *hs, const uint8_t *payload,
    size_t payload_len, uint8_t *out, size_t cap, size_t *out_len);

/*
 * Reads the next handshake message, writing its payload into payload (capacity
 * cap). Returns 0, WFPB_E_STATE, WFPB_E_HANDSHAKE (wrong length), WFPB_E_DECRYPT,
 * WFPB_E_DH, WFPB_E_INVAL (payload does not fit).
 */
int WFPB_MUST_CHECK wfpb_noise_handshake_read(struct wfpb_noise_handshake *hs, const uint8_t *msg, size_t len,
    uint8_t *payload, size_t cap, size_t *payload_len);

/* 1 once both handshake messages are processed. */
int wfpb_noise_handshake_done(const struct wfpb_noise_handshake *hs);

/* The peer's static public key once known (IK responder after message 1), else NULL. */
const uint8_t *wfpb_noise_handshake_remote_static(const struct wfpb_noise_handshake *hs);

/*
 * Ends a finished handshake: fills the sending and receiving CipherStates for
 * this side, copies the handshake hash into hash (may be NULL), and wipes hs.
 * Returns 0 or WFPB_E_STATE.
 */
int WFPB_MUST_CHECK wfpb_noise_handshake_split(struct wfpb_noise_handshake *hs, struct wfpb_noise_cipher *send,
    struct wfpb_noise_cipher *recv, uint8_t hash[WFPB_NOISE_HASHLEN]);

void wfpb_noise_handshake_wipe(struct wfpb_noise_handshake *hs);

/*
 * Transport encryption with empty associated data. out must hold
 * len + WFPB_NOISE_TAGLEN bytes. Returns 0 or WFPB_E_NONCE / WFPB_E_STATE.
 */
int WFPB_MUST_CHECK wfpb_noise_cipher_encrypt(struct wfpb_noise_cipher *c, const uint8_t *ad, size_t ad_len,
    const uint8_t *in, size_t len, uint8_t *out, size_t *out_len);

/*
 * Transport decryption. On failure the output is zeroed and the nonce is not
 * advanced. Returns 0, WFPB_E_DECRYPT (includes too short), WFPB_E_NONCE, WFPB_E_STATE.
 */
int WFPB_MUST_CHECK wfpb_noise_cipher_decrypt(struct wfpb_noise_cipher *c, const uint8_t *ad, size_t ad_len,
    const uint8_t *in, size_t len, uint8_t *out, size_t *out_len);

void wfpb_noise_cipher_wipe(struct wfpb_noise_cipher *c);

/* HMAC-BLAKE2b and HKDF exactly as Noise §4.3 defines them (exposed for tests). */
void wfpb_noise_hmac(const uint8_t key[WFPB_NOISE_HASHLEN], const uint8_t *data, size_t len,
    uint8_t out[WFPB_NOISE_HASHLEN]);
void wfpb_noise_hkdf(const uint8_t ck[WFPB_NOISE_HASHLEN], const uint8_t *ikm, size_t ikm_len,
    uint8_t out1[WFPB_NOISE_HASHLEN], uint8_t out2[WFPB_NOISE_HASHLEN]);

/* The protocol name for a pattern, or NULL. */
const char *wfpb_noise_protocol_name(int pattern);

#endif
