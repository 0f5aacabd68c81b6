/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Key files: one line of 64 hex digits. A private key file is created
 * readable by its owner alone (POSIX 0600; Windows DACL SYSTEM and
 * Administrators), a public key file world-readable. Files are written to a
 * temporary name, flushed, then renamed, so a reader never sees half a key.
 */
#ifndef WFPB_KEYFILE_H
#define WFPB_KEYFILE_H

#include <stddef.h>
#include <stdint.h>

#include "noise.h"
#include "wfpb_error.h"

#define WFPB_KEY_HEXLEN	(2 * WFPB_NOISE_DHLEN)

/* Reads a 32-byte key from a public key file. 0, WFPB_E_NOENT, WFPB_E_ACCESS or WFPB_E_KEYFILE. */
int WFPB_MUST_CHECK wfpb_keyfile_load_public(const char *path, uint8_t key[WFPB_NOISE_DHLEN]);

/*
 * Reads a private key file and derives the public half. On POSIX a file that
 * group or others may read is refused (WFPB_E_KEYFILE). The caller wipes kp.
 */
int WFPB_MUST_CHECK wfpb_keyfile_load_keypair(const char *path, struct wfpb_noise_keypair *kp);

/* Generates a key pair and writes both files. kp may be NULL. */
int WFPB_MUST_CHECK wfpb_keyfile_generate(const char *priv_path, const char *pub_path,
    struct wfpb_noise_keypair *kp);

/*
 * The broker's first start: loads the private key if present, else generates
 * one; (re)writes the public key file when it is missing or does not match.
 */
int WFPB_MUST_CHECK wfpb_keyfile_load_or_create(const char *priv_path, const char *pub_path,
    struct wfpb_noise_keypair *kp);

/*
 * The audit signing key: an Ed25519 seed in priv_path (same format and modes
 * as an X25519 private key) and the public key in pub_path. Loads or creates
 * both; sk receives the 64-byte libsodium secret key (caller wipes it).
 */
int WFPB_MUST_CHECK wfpb_keyfile_load_or_create_ed25519(const char *priv_path, const char *pub_path,
    unsigned char sk[64], unsigned char pk[32]);

/* Parses 64 hex digits (surrounding whitespace allowed). 0 or WFPB_E_KEYFILE. */
int WFPB_MUST_CHECK wfpb_key_from_hex(const char *hex, size_t len, uint8_t key[WFPB_NOISE_DHLEN]);

/* Formats a key as 64 lower-case hex digits and a NUL. */
void wfpb_key_to_hex(const uint8_t key[WFPB_NOISE_DHLEN], char out[WFPB_KEY_HEXLEN + 1]);

/* Platform halves (keyfile_posix.c, keyfile_win.c). */
int wfpb__keyfile_read(const char *path, char *buf, size_t cap, size_t *len, int secret);
int wfpb__keyfile_write(const char *path, const char *data, size_t len, int secret);

#endif
