/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Noise NK and IK over X25519, ChaCha20-Poly1305 (IETF) and BLAKE2b, following
 * the Noise Protocol Framework revision 34 section by section. The peer's
 * handshake bytes are untrusted: lengths are exact, every DH result is
 * checked, and any failure leaves the handshake unusable.
 */
#include <string.h>

#include <sodium.h>

#include "noise.h"

_Static_assert(WFPB_NOISE_DHLEN == crypto_scalarmult_BYTES, "X25519 size");
_Static_assert(WFPB_NOISE_KEYLEN == crypto_aead_chacha20poly1305_ietf_KEYBYTES, "ChaChaPoly key");
_Static_assert(WFPB_NOISE_TAGLEN == crypto_aead_chacha20poly1305_ietf_ABYTES, "ChaChaPoly tag");
_Static_assert(crypto_aead_chacha20poly1305_ietf_NPUBBYTES == 12, "ChaChaPoly nonce");
_Static_assert(WFPB_NOISE_HASHLEN == crypto_generichash_BYTES_MAX, "BLAKE2b-512");

const char *
wfpb_noise_protocol_name(int pattern)
{
	switch (pattern) {
	case WFPB_PATTERN_NK: return "Noise_NK_25519_ChaChaPoly_BLAKE2b";
	case WFPB_PATTERN_IK: return "Noise_IK_25519_ChaChaPoly_BLAKE2b";
	}
	return NULL;
}

void
wfpb_noise_keypair_generate(struct wfpb_noise_keypair *kp)
{
	randombytes_buf(kp->priv, sizeof(kp->priv));
	wfpb_noise_keypair_from_private(kp);
}

void
wfpb_noise_keypair_from_private(struct wfpb_noise_keypair *kp)
{
	crypto_scalarmult_base(kp->pub, kp->priv);
}

/* DH(): X25519, rejecting the all-zero output of a low-order point. */
static int
dh(uint8_t out[WFPB_NOISE_DHLEN], const struct wfpb_noise_keypair *kp, const uint8_t pub[WFPB_NOISE_DHLEN])
{
	if (crypto_scalarmult(out, kp->priv, pub) != 0) {
		sodium_memzero(out, WFPB_NOISE_DHLEN);
		return WFPB_E_DH;
	}
	return 0;
}

/* HASH(a || b) with BLAKE2b-512. */
static void
hash2(uint8_t out[WFPB_NOISE_HASHLEN], const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	crypto_generichash_state st;

	crypto_generichash_init(&st, NULL, 0, WFPB_NOISE_HASHLEN);
	crypto_generichash_update(&st, a, alen);
	if (blen > 0)
		crypto_generichash_update(&st, b, blen);
	crypto_generichash_final(&st, out, WFPB_NOISE_HASHLEN);
	sodium_memzero(&st, sizeof(st));
}

void
wfpb_noise_hmac(const uint8_t key[WFPB_NOISE_HASHLEN], const uint8_t *data, size_t len,
    uint8_t out[WFPB_NOISE_HASHLEN])
{
	uint8_t	pad[WFPB_NOISE_BLOCKLEN], inner[WFPB_NOISE_HASHLEN];
	size_t	i;

	/* Keys are HASHLEN bytes, shorter than BLOCKLEN: zero-padded, never hashed. */
	memset(pad, 0, sizeof(pad));
	memcpy(pad, key, WFPB_NOISE_HASHLEN);
	for (i = 0; i < sizeof(pad); i++)
		pad[i] ^= 0x36;
	hash2(inner, pad, sizeof(pad), data, len);
	for (i = 0; i < sizeof(pad); i++)
		pad[i] ^= 0x36 ^ 0x5c;
	hash2(out, pad, sizeof(pad), inner, sizeof(inner));
	sodium_memzero(pad, sizeof(pad));
	sodium_memzero(inner, sizeof(inner));
}

void
wfpb_noise_hkdf(const uint8_t ck[WFPB_NOISE_HASHLEN], const uint8_t *ikm, size_t ikm_len,
    uint8_t out1[WFPB_NOISE_HASHLEN], uint8_t out2[WFPB_NOISE_HASHLEN])
{
	uint8_t	temp_key[WFPB_NOISE_HASHLEN], buf[WFPB_NOISE_HASHLEN + 1];

	wfpb_noise_hmac(ck, ikm, ikm_len, temp_key);
	buf[0] = 0x01;
	wfpb_noise_hmac(temp_key, buf, 1, out1);
	memcpy(buf, out1, WFPB_NOISE_HASHLEN);
	buf[WFPB_NOISE_HASHLEN] = 0x02;
	wfpb_noise_hmac(temp_key, buf, sizeof(buf), out2);
	sodium_memzero(temp_key, sizeof(temp_key));
	sodium_memzero(buf, sizeof(buf));
}

/* The ChaChaPoly nonce: 32 zero bits, then n as 64-bit little-endian. */
static void
nonce_bytes(uint8_t out[12], uint64_t n)
{
	int i;

	memset(out, 0, 4);
	for (i = 0; i < 8; i++)
		out[4 + i] = (uint8_t)(n >> (8 * i));
}

static void
cipher_init_key(struct wfpb_noise_cipher *c, const uint8_t k[WFPB_NOISE_KEYLEN])
{
	memcpy(c->k, k, WFPB_NOISE_KEYLEN);
	c->n = 0;
	c->has_key = 1;
}

void
wfpb_noise_cipher_wipe(struct wfpb_noise_cipher *c)
{
	sodium_memzero(c, sizeof(*c));
}

int
wfpb_noise_cipher_encrypt(struct wfpb_noise_cipher *c, const uint8_t *ad, size_t ad_len, const uint8_t *in,
    size_t len, uint8_t *out, size_t *out_len)
{
	uint8_t			nonce[12];
	unsigned long long	clen;

	if (!c->has_key)
		return WFPB_E_STATE;
	if (c->n == UINT64_MAX)
		return WFPB_E_NONCE;
	nonce_bytes(nonce, c->n);
	crypto_aead_chacha20poly1305_ietf_encrypt(out, &clen, in, len, ad, ad_len, NULL, nonce, c->k);
	c->n++;
	*out_len = (size_t)clen;
	return 0;
}

int
wfpb_noise_cipher_decrypt(struct wfpb_noise_cipher *c, const uint8_t *ad, size_t ad_len, const uint8_t *in,
    size_t len, uint8_t *out, size_t *out_len)
{
	uint8_t			nonce[12];
	unsigned long long	plen;

	*out_len = 0;
	if (!c->has_key)
		return WFPB_E_STATE;
	if (c->n == UINT64_MAX)
		return WFPB_E_NONCE;
	if (len < WFPB_NOISE_TAGLEN)
		return WFPB_E_DECRYPT;
	nonce_bytes(nonce, c->n);
	if (crypto_aead_chacha20poly1305_ietf_decrypt(out, &plen, NULL, in, len, ad, ad_len, nonce, c->k) != 0) {
		sodium_memzero(out, len - WFPB_NOISE_TAGLEN);
		return WFPB_E_DECRYPT;
	}
	c->n++;
	*out_len = (size_t)plen;
	return 0;
}

/* SymmetricState. */

static void
mix_hash(struct wfpb_noise_handshake *hs, const uint8_t *data, size_t len)
{
	hash2(hs->h, hs->h, sizeof(hs->h), data, len);
}

static void
mix_key(struct wfpb_noise_handshake *hs, const uint8_t ikm[WFPB_NOISE_DHLEN])
{
	uint8_t temp_k[WFPB_NOISE_HASHLEN];

	wfpb_noise_hkdf(hs->ck, ikm, WFPB_NOISE_DHLEN, hs->ck, temp_k);
	/* HASHLEN is 64: temp_k is truncated to the 32-byte cipher key. */
	cipher_init_key(&hs->cs, temp_k);
	sodium_memzero(temp_k, sizeof(temp_k));
}

static int
mix_dh(struct wfpb_noise_handshake *hs, const struct wfpb_noise_keypair *kp, const uint8_t pub[WFPB_NOISE_DHLEN])
{
	uint8_t	shared[WFPB_NOISE_DHLEN];
	int	rc;

	if ((rc = dh(shared, kp, pub)) == 0)
		mix_key(hs, shared);
	sodium_memzero(shared, sizeof(shared));
	return rc;
}

/* EncryptAndHash: ciphertext (or plaintext before any key) is mixed into h. */
static int
encrypt_and_hash(struct wfpb_noise_handshake *hs, const uint8_t *in, size_t len, uint8_t *out, size_t cap,
    size_t *out_len)
{
	int rc;

	if (!hs->cs.has_key) {
		if (len > cap)
			return WFPB_E_INVAL;
		memmove(out, in, len);
		*out_len = len;
	} else {
		if (len + WFPB_NOISE_TAGLEN > cap)
			return WFPB_E_INVAL;
		if ((rc = wfpb_noise_cipher_encrypt(&hs->cs, hs->h, sizeof(hs->h), in, len, out, out_len)) != 0)
			return rc;
	}
	mix_hash(hs, out, *out_len);
	return 0;
}

static int
decrypt_and_hash(struct wfpb_noise_handshake *hs, const uint8_t *in, size_t len, uint8_t *out, size_t cap,
    size_t *out_len)
{
	uint8_t	h_before[WFPB_NOISE_HASHLEN];
	int	rc;

	memcpy(h_before, hs->h, sizeof(h_before));
	if (!hs->cs.has_key) {
		if (len > cap)
			return WFPB_E_INVAL;
		memmove(out, in, len);
		*out_len = len;
	} else {
		if (len < WFPB_NOISE_TAGLEN)
			return WFPB_E_HANDSHAKE;
		if (len - WFPB_NOISE_TAGLEN > cap)
			return WFPB_E_INVAL;
		/* Mix the ciphertext in before out may overwrite it (in-place use). */
		mix_hash(hs, in, len);
		rc = wfpb_noise_cipher_decrypt(&hs->cs, h_before, sizeof(h_before), in, len, out, out_len);
		return rc;
	}
	mix_hash(hs, in, len);
	return 0;
}

int
wfpb_noise_handshake_init(struct wfpb_noise_handshake *hs, int pattern, int initiator, const uint8_t *prologue,
    size_t prologue_len, const struct wfpb_noise_keypair *s, const uint8_t rs[WFPB_NOISE_DHLEN])
{
	const char	*name = wfpb_noise_protocol_name(pattern);
	size_t		name_len;

	memset(hs, 0, sizeof(*hs));
	if (name == NULL)
		return WFPB_E_PATTERN;
	if (initiator && rs == NULL)
		return WFPB_E_INVAL;
	if ((!initiator || pattern == WFPB_PATTERN_IK) && s == NULL)
		return WFPB_E_INVAL;
	hs->pattern = pattern;
	hs->initiator = initiator;
	name_len = strlen(name);
	/* InitializeSymmetric: the name fits HASHLEN, so it is zero-padded, not hashed. */
	memcpy(hs->h, name, name_len);
	memcpy(hs->ck, hs->h, sizeof(hs->ck));
	mix_hash(hs, prologue, prologue_len);
	if (s != NULL && (!initiator || pattern == WFPB_PATTERN_IK)) {
		hs->s = *s;
		hs->has_s = 1;
	}
	/* Pre-message "<- s": both sides hash the responder's static key. */
	if (initiator) {
		memcpy(hs->rs, rs, WFPB_NOISE_DHLEN);
		hs->has_rs = 1;
		mix_hash(hs, hs->rs, WFPB_NOISE_DHLEN);
	} else {
		mix_hash(hs, hs->s.pub, WFPB_NOISE_DHLEN);
	}
	return 0;
}

void
wfpb_noise_handshake_set_ephemeral(struct wfpb_noise_handshake *hs, const uint8_t priv[WFPB_NOISE_DHLEN])
{
	memcpy(hs->e.priv, priv, WFPB_NOISE_DHLEN);
	wfpb_noise_keypair_from_private(&hs->e);
	hs->has_e = 1;
}

/* Whether the side that writes message `step` is the initiator. */
static int
writes_step(const struct wfpb_noise_handshake *hs)
{
	return hs->initiator ? hs->step == 0 : hs->step == 1;
}

int
wfpb_noise_handshake_write(struct wfpb_noise_handshake *hs, const uint8_t *payload, size_t payload_len,
    uint8_t *out, size_t cap, size_t *out_len)
{
	size_t	pos = 0, n;
	int	rc;

	*out_len = 0;
	if (hs->step >= 2 || !writes_step(hs))
		return WFPB_E_STATE;
	if (cap < WFPB_NOISE_DHLEN)
		return WFPB_E_INVAL;
	/* Both messages of NK and IK open with "e". */
	if (!hs->has_e) {
		wfpb_noise_keypair_generate(&hs->e);
		hs->has_e = 1;
	}
	memcpy(out, hs->e.pub, WFPB_NOISE_DHLEN);
	mix_hash(hs, hs->e.pub, WFPB_NOISE_DHLEN);
	pos = WFPB_NOISE_DHLEN;
	if (hs->step == 0) {
		/* -> e, es [, s, ss] */
		if ((rc = mix_dh(hs, &hs->e, hs->rs)) != 0)
			goto fail;
		if (hs->pattern == WFPB_PATTERN_IK) {
			if ((rc = encrypt_and_hash(hs, hs->s.pub, WFPB_NOISE_DHLEN, out + pos, cap - pos, &n)) != 0)
				goto fail;
			pos += n;
			if ((rc = mix_dh(hs, &hs->s, hs->rs)) != 0)
				goto fail;
		}
	} else {
		/* <- e, ee [, se] */
		if ((rc = mix_dh(hs, &hs->e, hs->re)) != 0)
			goto fail;
		if (hs->pattern == WFPB_PATTERN_IK && (rc = mix_dh(hs, &hs->e, hs->rs)) != 0)
			goto fail;
	}
	if ((rc = encrypt_and_hash(hs, payload, payload_len, out + pos, cap - pos, &n)) != 0)
		goto fail;
	pos += n;
	hs->step++;
	*out_len = pos;
	return 0;
fail:
	hs->step = 3;	/* unusable */
	return rc;
}

int
wfpb_noise_handshake_read(struct wfpb_noise_handshake *hs, const uint8_t *msg, size_t len, uint8_t *payload,
    size_t cap, size_t *payload_len)
{
	size_t	pos, n;
	int	rc;

	*payload_len = 0;
	if (hs->step >= 2 || writes_step(hs))
		return WFPB_E_STATE;
	rc = WFPB_E_HANDSHAKE;
	if (len < WFPB_NOISE_DHLEN + WFPB_NOISE_TAGLEN)
		goto fail;
	memcpy(hs->re, msg, WFPB_NOISE_DHLEN);
	hs->has_re = 1;
	mix_hash(hs, hs->re, WFPB_NOISE_DHLEN);
	pos = WFPB_NOISE_DHLEN;
	if (hs->step == 0) {
		/* -> e, es [, s, ss]: we are the responder. */
		if ((rc = mix_dh(hs, &hs->s, hs->re)) != 0)
			goto fail;
		if (hs->pattern == WFPB_PATTERN_IK) {
			rc = WFPB_E_HANDSHAKE;
			if (len - pos < WFPB_NOISE_DHLEN + WFPB_NOISE_TAGLEN + WFPB_NOISE_TAGLEN)
				goto fail;
			if ((rc = decrypt_and_hash(hs, msg + pos, WFPB_NOISE_DHLEN + WFPB_NOISE_TAGLEN, hs->rs,
			    sizeof(hs->rs), &n)) != 0)
				goto fail;
			hs->has_rs = 1;
			pos += WFPB_NOISE_DHLEN + WFPB_NOISE_TAGLEN;
			if ((rc = mix_dh(hs, &hs->s, hs->rs)) != 0)
				goto fail;
		}
	} else {
		/* <- e, ee [, se]: we are the initiator. */
		if ((rc = mix_dh(hs, &hs->e, hs->re)) != 0)
			goto fail;
		if (hs->pattern == WFPB_PATTERN_IK && (rc = mix_dh(hs, &hs->s, hs->re)) != 0)
			goto fail;
	}
	if ((rc = decrypt_and_hash(hs, msg + pos, len - pos, payload, cap, payload_len)) != 0)
		goto fail;
	hs->step++;
	return 0;
fail:
	hs->step = 3;
	return rc;
}

int
wfpb_noise_handshake_done(const struct wfpb_noise_handshake *hs)
{
	return hs->step == 2;
}

const uint8_t *
wfpb_noise_handshake_remote_static(const struct wfpb_noise_handshake *hs)
{
	return hs->has_rs ? hs->rs : NULL;
}

int
wfpb_noise_handshake_split(struct wfpb_noise_handshake *hs, struct wfpb_noise_cipher *send,
    struct wfpb_noise_cipher *recv, uint8_t hash[WFPB_NOISE_HASHLEN])
{
	uint8_t k1[WFPB_NOISE_HASHLEN], k2[WFPB_NOISE_HASHLEN];

	if (hs->step != 2)
		return WFPB_E_STATE;
	wfpb_noise_hkdf(hs->ck, NULL, 0, k1, k2);
	memset(send, 0, sizeof(*send));
	memset(recv, 0, sizeof(*recv));
	cipher_init_key(hs->initiator ? send : recv, k1);
	cipher_init_key(hs->initiator ? recv : send, k2);
	if (hash != NULL)
		memcpy(hash, hs->h, WFPB_NOISE_HASHLEN);
	sodium_memzero(k1, sizeof(k1));
	sodium_memzero(k2, sizeof(k2));
	wfpb_noise_handshake_wipe(hs);
	return 0;
}

void
wfpb_noise_handshake_wipe(struct wfpb_noise_handshake *hs)
{
	sodium_memzero(hs, sizeof(*hs));
}
