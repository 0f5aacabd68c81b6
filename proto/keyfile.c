/* SPDX-License-Identifier: Apache-2.0 */
/* Key file format and the load/generate logic shared by both platforms. */
#include <string.h>

#include <sodium.h>

#include "keyfile.h"

static int
load(const char *path, uint8_t key[WFPB_NOISE_DHLEN], int secret)
{
	char	buf[WFPB_KEY_HEXLEN + 8];
	size_t	len;
	int	rc;

	if ((rc = wfpb__keyfile_read(path, buf, sizeof(buf), &len, secret)) == 0)
		rc = wfpb_key_from_hex(buf, len, key);
	sodium_memzero(buf, sizeof(buf));
	return rc;
}

static int
store(const char *path, const uint8_t key[WFPB_NOISE_DHLEN], int secret)
{
	char	buf[WFPB_KEY_HEXLEN + 2];
	int	rc;

	wfpb_key_to_hex(key, buf);
	buf[WFPB_KEY_HEXLEN] = '\n';
	rc = wfpb__keyfile_write(path, buf, WFPB_KEY_HEXLEN + 1, secret);
	sodium_memzero(buf, sizeof(buf));
	return rc;
}

int
wfpb_keyfile_load_public(const char *path, uint8_t key[WFPB_NOISE_DHLEN])
{
	return load(path, key, 0);
}

int
wfpb_keyfile_load_keypair(const char *path, struct wfpb_noise_keypair *kp)
{
	int rc;

	if ((rc = load(path, kp->priv, 1)) != 0) {
		sodium_memzero(kp, sizeof(*kp));
		return rc;
	}
	wfpb_noise_keypair_from_private(kp);
	return 0;
}

int
wfpb_keyfile_generate(const char *priv_path, const char *pub_path, struct wfpb_noise_keypair *out)
{
	struct wfpb_noise_keypair	kp;
	int				rc;

	wfpb_noise_keypair_generate(&kp);
	if ((rc = store(priv_path, kp.priv, 1)) == 0)
		rc = store(pub_path, kp.pub, 0);
	if (rc == 0 && out != NULL)
		*out = kp;
	sodium_memzero(&kp, sizeof(kp));
	return rc;
}

int
wfpb_keyfile_load_or_create(const char *priv_path, const char *pub_path, struct wfpb_noise_keypair *kp)
{
	uint8_t	pub[WFPB_NOISE_DHLEN];
	int	rc;

	rc = wfpb_keyfile_load_keypair(priv_path, kp);
	if (rc == WFPB_E_NOENT)
		return wfpb_keyfile_generate(priv_path, pub_path, kp);
	if (rc != 0)
		return rc;
	if (wfpb_keyfile_load_public(pub_path, pub) != 0 || sodium_memcmp(pub, kp->pub, sizeof(pub)) != 0)
		rc = store(pub_path, kp->pub, 0);
	return rc;
}

int
wfpb_keyfile_load_or_create_ed25519(const char *priv_path, const char *pub_path, unsigned char sk[64],
    unsigned char pk[32])
{
	uint8_t	seed[32], on_disk[32];
	int	rc;

	rc = load(priv_path, seed, 1);
	if (rc == WFPB_E_NOENT) {
		randombytes_buf(seed, sizeof(seed));
		rc = store(priv_path, seed, 1);
	}
	if (rc == 0) {
		crypto_sign_seed_keypair(pk, sk, seed);
		if (wfpb_keyfile_load_public(pub_path, on_disk) != 0 || sodium_memcmp(on_disk, pk, 32) != 0)
			rc = store(pub_path, pk, 0);
	}
	sodium_memzero(seed, sizeof(seed));
	return rc;
}
