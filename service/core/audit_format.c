/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The audit log's format: the hash chain, the signed bytes of a checkpoint,
 * and the verifier. The verifier treats the file as hostile (it may have been
 * edited): lengths are capped before use, every record is decoded, and the
 * first inconsistency is reported with its seq. Portable C: wfpbctl links it
 * without the service core.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "audit.h"
#include "wfpbroker.pb-c.h"

typedef Wfpbroker__V1__AuditRecord AuditRecord;

void
wfpb__audit_chain_hash(const uint8_t *framed, size_t len, uint8_t out[WFPB_AUDIT_HASH_LEN])
{
	crypto_generichash(out, WFPB_AUDIT_HASH_LEN, framed, len, NULL, 0);
}

/* Ed25519 over the record encoded with an empty signature field. */
int
wfpb__audit_signed_bytes(const AuditRecord *r, uint8_t **out, size_t *len)
{
	AuditRecord copy = *r;

	copy.signature.data = NULL;
	copy.signature.len = 0;
	*len = wfpbroker__v1__audit_record__get_packed_size(&copy);
	if ((*out = malloc(*len ? *len : 1)) == NULL)
		return WFPB_E_NOMEM;
	wfpbroker__v1__audit_record__pack(&copy, *out);
	return 0;
}

static int
fail_report(struct wfpb_audit_report *rep, uint64_t seq, const char *fmt, const char *detail)
{
	rep->bad_seq = seq;
	snprintf(rep->error, sizeof(rep->error), fmt, detail);
	return WFPB_E_DECODE;
}

int
wfpb_audit_verify(const uint8_t *buf, size_t len, const uint8_t *pubkey, struct wfpb_audit_report *rep)
{
	uint8_t		prev[WFPB_AUDIT_HASH_LEN] = { 0 };
	size_t		off = 0, rlen;
	AuditRecord	*r;
	uint64_t	expect = 1;
	int		rc = 0;

	memset(rep, 0, sizeof(*rep));
	while (off < len) {
		if (len - off < 4) {
			rep->torn = 1;
			break;
		}
		rlen = ((size_t)buf[off] << 24) | ((size_t)buf[off + 1] << 16) | ((size_t)buf[off + 2] << 8) |
		    buf[off + 3];
		if (rlen == 0 || rlen > WFPB_AUDIT_RECORD_MAX)
			return fail_report(rep, expect, "record %s: impossible length", "after the last good one");
		if (len - off - 4 < rlen) {
			rep->torn = 1;
			break;
		}
		if ((r = wfpbroker__v1__audit_record__unpack(NULL, rlen, buf + off + 4)) == NULL)
			return fail_report(rep, expect, "record %s does not decode", "after the last good one");
		if (rep->records == 0 && r->seq != 1) {
			/* A rotated-in file: it must open with a signed checkpoint naming what it continues. */
			if (r->kind != WFPBROKER__V1__AUDIT_KIND__AUDIT_CHECKPOINT || r->message == NULL ||
			    strncmp(r->message, "continues ", 10) != 0 || r->prev_hash.len != WFPB_AUDIT_HASH_LEN) {
				wfpbroker__v1__audit_record__free_unpacked(r, NULL);
				return fail_report(rep, 1, "the file starts %s",
				    "after seq 1 without a continuation checkpoint (records were removed)");
			}
			expect = r->seq;
			memcpy(prev, r->prev_hash.data, sizeof(prev));
		}
		if (rep->records == 0) {
			rep->first_seq = r->seq;
			memcpy(rep->first_prev_hash, prev, sizeof(prev));
		}
		if (r->seq != expect) {
			char s[64];

			snprintf(s, sizeof(s), "%llu, expected %llu", (unsigned long long)r->seq,
			    (unsigned long long)expect);
			wfpbroker__v1__audit_record__free_unpacked(r, NULL);
			return fail_report(rep, expect, "sequence number %s (a record was removed or moved)", s);
		}
		if (r->prev_hash.len != WFPB_AUDIT_HASH_LEN || sodium_memcmp(r->prev_hash.data, prev, sizeof(prev)) != 0) {
			wfpbroker__v1__audit_record__free_unpacked(r, NULL);
			return fail_report(rep, expect, "hash chain broken at this record%s", " (an earlier record changed)");
		}
		if (r->kind == WFPBROKER__V1__AUDIT_KIND__AUDIT_CHECKPOINT) {
			uint8_t	*sb;
			size_t	sl;

			if (r->signature.len != crypto_sign_BYTES || wfpb__audit_signed_bytes(r, &sb, &sl) != 0) {
				wfpbroker__v1__audit_record__free_unpacked(r, NULL);
				return fail_report(rep, expect, "checkpoint %s", "has no valid signature field");
			}
			if (pubkey != NULL && crypto_sign_verify_detached(r->signature.data, sb, sl, pubkey) != 0)
				rc = fail_report(rep, expect, "checkpoint signature %s",
				    "does not verify with this public key");
			free(sb);
			if (rc != 0) {
				wfpbroker__v1__audit_record__free_unpacked(r, NULL);
				return rc;
			}
			rep->checkpoints++;
			rep->last_checkpoint_seq = r->seq;
		}
		if (r->lost > 0 && rep->first_lost_seq == 0)
			rep->first_lost_seq = r->seq;
		rep->lost += r->lost;
		wfpbroker__v1__audit_record__free_unpacked(r, NULL);
		wfpb__audit_chain_hash(buf + off, rlen + 4, prev);
		off += rlen + 4;
		rep->records++;
		rep->last_seq = expect++;
		rep->valid_len = off;
	}
	rep->bad_seq = expect;
	memcpy(rep->last_hash, prev, sizeof(prev));
	return 0;
}

int
wfpb_audit_hash_at(const uint8_t *buf, size_t len, uint64_t seq, uint8_t hash[WFPB_AUDIT_HASH_LEN])
{
	AuditRecord	*r;
	size_t		off = 0, rlen;
	uint64_t	s;

	while (len - off >= 4) {
		rlen = ((size_t)buf[off] << 24) | ((size_t)buf[off + 1] << 16) | ((size_t)buf[off + 2] << 8) |
		    buf[off + 3];
		if (rlen == 0 || rlen > WFPB_AUDIT_RECORD_MAX || len - off - 4 < rlen ||
		    (r = wfpbroker__v1__audit_record__unpack(NULL, rlen, buf + off + 4)) == NULL)
			break;
		s = r->seq;
		wfpbroker__v1__audit_record__free_unpacked(r, NULL);
		if (s == seq) {
			wfpb__audit_chain_hash(buf + off, rlen + 4, hash);
			return 0;
		}
		off += rlen + 4;
	}
	return WFPB_E_NOENT;
}
