/* SPDX-License-Identifier: Apache-2.0 */
/*
 * noise-vectors FILE...: runs both sides of every Noise test vector whose
 * protocol proto/noise.c supports (NK and IK, 25519, ChaChaPoly, BLAKE2b, no
 * PSK), checking every ciphertext, every decryption and the handshake hash.
 * Prints "N passed, M failed, K skipped"; exits non-zero when anything failed
 * or nothing passed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "noise.h"

#define BUF_MAX 65535

struct hexbuf {
	uint8_t	*p;
	size_t	len;
};

/* Decodes json string field `name` as hex into hb; 0 absent, 1 ok, -1 bad. */
static int
get_hex(json_t *obj, const char *name, struct hexbuf *hb)
{
	json_t		*v = json_object_get(obj, name);
	const char	*s;
	size_t		n;

	hb->p = NULL;
	hb->len = 0;
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return -1;
	s = json_string_value(v);
	n = strlen(s);
	if (n % 2 != 0 || (hb->p = malloc(n / 2 + 1)) == NULL)
		return -1;
	if (sodium_hex2bin(hb->p, n / 2 + 1, s, n, NULL, &hb->len, NULL) != 0 || hb->len != n / 2)
		return -1;
	return 1;
}

static int
pattern_of(const char *name)
{
	if (strcmp(name, "Noise_NK_25519_ChaChaPoly_BLAKE2b") == 0)
		return WFPB_PATTERN_NK;
	if (strcmp(name, "Noise_IK_25519_ChaChaPoly_BLAKE2b") == 0)
		return WFPB_PATTERN_IK;
	return 0;
}

static int
has_psk(json_t *v)
{
	json_t *a = json_object_get(v, "init_psks"), *b = json_object_get(v, "resp_psks");

	return (json_is_array(a) && json_array_size(a) > 0) || (json_is_array(b) && json_array_size(b) > 0);
}

/* Runs one vector; returns 1 pass, 0 fail (printing why). */
static int
run_vector(json_t *v, int pattern, const char *label)
{
	struct hexbuf			ip, rp, is, ie, irs, rs, re, hh, pl, ct;
	struct wfpb_noise_handshake	ini, res;
	struct wfpb_noise_keypair	ini_s, res_s;
	struct wfpb_noise_cipher	i_tx, i_rx, r_tx, r_rx;
	uint8_t				hash_i[WFPB_NOISE_HASHLEN], hash_r[WFPB_NOISE_HASHLEN];
	static uint8_t			out[BUF_MAX], back[BUF_MAX];
	size_t				out_len, back_len, i;
	json_t				*msgs;
	int				ok = 0, rc;

	memset(&ini_s, 0, sizeof(ini_s));
	memset(&res_s, 0, sizeof(res_s));
	if (get_hex(v, "init_prologue", &ip) < 0 || get_hex(v, "resp_prologue", &rp) < 0 ||
	    get_hex(v, "init_static", &is) < 0 || get_hex(v, "init_ephemeral", &ie) != 1 ||
	    get_hex(v, "init_remote_static", &irs) != 1 || get_hex(v, "resp_static", &rs) != 1 ||
	    get_hex(v, "resp_ephemeral", &re) != 1 || get_hex(v, "handshake_hash", &hh) < 0) {
		printf("FAIL %s: missing or malformed key fields\n", label);
		return 0;
	}
	if (ie.len != 32 || irs.len != 32 || rs.len != 32 || re.len != 32 ||
	    (pattern == WFPB_PATTERN_IK && is.len != 32)) {
		printf("FAIL %s: key of the wrong length\n", label);
		goto out;
	}
	if (is.p != NULL) {
		memcpy(ini_s.priv, is.p, 32);
		wfpb_noise_keypair_from_private(&ini_s);
	}
	memcpy(res_s.priv, rs.p, 32);
	wfpb_noise_keypair_from_private(&res_s);

	if ((rc = wfpb_noise_handshake_init(&ini, pattern, 1, ip.p, ip.len, is.p ? &ini_s : NULL, irs.p)) != 0 ||
	    (rc = wfpb_noise_handshake_init(&res, pattern, 0, rp.p, rp.len, &res_s, NULL)) != 0) {
		printf("FAIL %s: init: %s\n", label, wfpb_strerror(rc));
		goto out;
	}
	wfpb_noise_handshake_set_ephemeral(&ini, ie.p);
	wfpb_noise_handshake_set_ephemeral(&res, re.p);

	msgs = json_object_get(v, "messages");
	if (!json_is_array(msgs) || json_array_size(msgs) < 2) {
		printf("FAIL %s: fewer than two messages\n", label);
		goto out;
	}
	for (i = 0; i < json_array_size(msgs); i++) {
		json_t				*m = json_array_get(msgs, i);
		int				from_init = (i % 2) == 0;
		struct wfpb_noise_handshake	*w = from_init ? &ini : &res, *r = from_init ? &res : &ini;

		if (get_hex(m, "payload", &pl) < 0 || get_hex(m, "ciphertext", &ct) != 1) {
			printf("FAIL %s: message %zu malformed\n", label, i);
			goto out;
		}
		if (i < 2) {
			rc = wfpb_noise_handshake_write(w, pl.p, pl.len, out, sizeof(out), &out_len);
			if (rc == 0)
				rc = wfpb_noise_handshake_read(r, ct.p, ct.len, back, sizeof(back), &back_len);
		} else {
			if (i == 2 && ((rc = wfpb_noise_handshake_split(&ini, &i_tx, &i_rx, hash_i)) != 0 ||
			    (rc = wfpb_noise_handshake_split(&res, &r_tx, &r_rx, hash_r)) != 0))
				goto fail_rc;
			rc = wfpb_noise_cipher_encrypt(from_init ? &i_tx : &r_tx, NULL, 0, pl.p, pl.len, out,
			    &out_len);
			if (rc == 0)
				rc = wfpb_noise_cipher_decrypt(from_init ? &r_rx : &i_rx, NULL, 0, ct.p, ct.len, back,
				    &back_len);
		}
		if (rc != 0) {
fail_rc:
			printf("FAIL %s: message %zu: %s\n", label, i, wfpb_strerror(rc));
			free(pl.p);
			free(ct.p);
			goto out;
		}
		if (out_len != ct.len || memcmp(out, ct.p, ct.len) != 0) {
			printf("FAIL %s: message %zu: ciphertext differs\n", label, i);
			free(pl.p);
			free(ct.p);
			goto out;
		}
		if (back_len != pl.len || (pl.len && memcmp(back, pl.p, pl.len) != 0)) {
			printf("FAIL %s: message %zu: decryption differs\n", label, i);
			free(pl.p);
			free(ct.p);
			goto out;
		}
		free(pl.p);
		free(ct.p);
	}
	if (json_array_size(msgs) == 2 && ((rc = wfpb_noise_handshake_split(&ini, &i_tx, &i_rx, hash_i)) != 0 ||
	    (rc = wfpb_noise_handshake_split(&res, &r_tx, &r_rx, hash_r)) != 0)) {
		printf("FAIL %s: split: %s\n", label, wfpb_strerror(rc));
		goto out;
	}
	if (memcmp(hash_i, hash_r, sizeof(hash_i)) != 0 ||
	    (hh.p != NULL && (hh.len != sizeof(hash_i) || memcmp(hh.p, hash_i, hh.len) != 0))) {
		printf("FAIL %s: handshake hash differs\n", label);
		goto out;
	}
	ok = 1;
out:
	free(ip.p); free(rp.p); free(is.p); free(ie.p); free(irs.p);
	free(rs.p); free(re.p); free(hh.p);
	return ok;
}

int
main(int argc, char **argv)
{
	unsigned	passed = 0, failed = 0, skipped = 0;
	int		a;
	size_t		i;

	if (argc < 2) {
		fprintf(stderr, "usage: noise-vectors FILE...\n");
		return 2;
	}
	if (sodium_init() < 0)
		return 2;
	for (a = 1; a < argc; a++) {
		json_error_t	jerr;
		json_t		*root = json_load_file(argv[a], 0, &jerr), *vectors;

		if (root == NULL) {
			printf("FAIL %s: %s (line %d)\n", argv[a], jerr.text, jerr.line);
			failed++;
			continue;
		}
		vectors = json_is_array(root) ? root : json_object_get(root, "vectors");
		if (!json_is_array(vectors)) {
			printf("FAIL %s: no \"vectors\" array\n", argv[a]);
			failed++;
			json_decref(root);
			continue;
		}
		for (i = 0; i < json_array_size(vectors); i++) {
			json_t		*v = json_array_get(vectors, i);
			json_t		*name = json_object_get(v, "protocol_name");
			char		label[512];
			int		pattern;

			if (!json_is_string(name)) {
				skipped++;
				continue;
			}
			snprintf(label, sizeof(label), "%s #%zu %s", argv[a], i, json_string_value(name));
			pattern = pattern_of(json_string_value(name));
			if (pattern == 0 || has_psk(v)) {
				skipped++;
				continue;
			}
			if (run_vector(v, pattern, label)) {
				printf("ok   %s\n", label);
				passed++;
			} else {
				failed++;
			}
		}
		json_decref(root);
	}
	printf("%u passed, %u failed, %u skipped\n", passed, failed, skipped);
	return (failed > 0 || passed == 0) ? 1 : 0;
}
