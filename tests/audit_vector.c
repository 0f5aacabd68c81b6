/* SPDX-License-Identifier: Apache-2.0 */
/*
 * audit-vector FILE: the audit chain of tests/vectors/audit-chain-v1.json, for verifiers in
 * other languages to test against (docs/AUDIT.md, "The chain, exactly"), checked against this
 * implementation. The file holds a short log made from a fixed Ed25519 seed, its public key,
 * every record's framed bytes, chain hash, prev_hash and, for checkpoints, the signed bytes
 * and signature, and the verdicts on the log and on damaged copies of it. Here every hash is
 * computed again from the bytes, the signed bytes are cut out of the stored record as the
 * definition says and compared with what the writer signs, every signature is checked, and
 * wfpb_audit_verify must give each verdict. audit-vector --write FILE makes the file (only
 * ever when the format changes on purpose).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "audit.h"
#include "wfpbroker.pb-c.h"

#define RECORDS		5
#define BUF_MAX		8192

struct rec {
	uint8_t	framed[1024];
	size_t	len;
	uint8_t	hash[32], prev[32];
	uint8_t	signed_bytes[1024];
	size_t	signed_len;
	int	checkpoint;
};

static int failed;

static void
check(int ok, const char *what)
{
	printf("%s %s\n", ok ? "ok  " : "FAIL", what);
	if (!ok)
		failed = 1;
}

/*
 * The signed bytes of a checkpoint by the definition: the record as stored, without its length
 * prefix, with its signature field cut out (tag 0x5a, a one-byte length 64, the 64 bytes).
 */
static int
cut_signature(const uint8_t *rec, size_t len, uint8_t *out, size_t *olen)
{
	size_t i;

	for (i = 0; i + 66 <= len; i++) {
		/* Field 11 of wire type 2 follows field 10 (prev_hash: 0x52, 32, 32 bytes). */
		if (rec[i] == 0x5a && rec[i + 1] == 64 && i >= 34 && rec[i - 34] == 0x52 && rec[i - 33] == 32) {
			memcpy(out, rec, i);
			memcpy(out + i, rec + i + 66, len - i - 66);
			*olen = len - 66;
			return 0;
		}
	}
	return -1;
}

/* The vector's log: a service start, two requests, a signed checkpoint, one request after it. */
static void
make_log(struct rec r[RECORDS], uint8_t pk[32])
{
	Wfpbroker__V1__AuditRecord	a;
	Wfpbroker__V1__Principal	p = WFPBROKER__V1__PRINCIPAL__INIT;
	Wfpbroker__V1__Address		ad = WFPBROKER__V1__ADDRESS__INIT, *adp = &ad;
	static uint8_t			ip[4] = { 192, 0, 2, 10 };
	uint8_t				seed[32], sk[64], prev[32] = { 0 }, sig[64], *sb;
	size_t				n, sl;
	int				i;

	for (i = 0; i < 32; i++)
		seed[i] = (uint8_t)(0x40 + i);
	crypto_sign_seed_keypair(pk, sk, seed);
	p.user = "1000";
	p.pid = 4321;
	p.image = "/usr/bin/proxy";
	p.name = "proxy";
	ad.family = WFPBROKER__V1__ADDRESS_FAMILY__AF_INET;
	ad.addr.data = ip;
	ad.addr.len = 4;
	ad.port = 443;
	for (i = 0; i < RECORDS; i++) {
		wfpbroker__v1__audit_record__init(&a);
		a.seq = (uint64_t)i + 1;
		a.time_unix_ms = 1796000000000ull + (uint64_t)i * 1000u;
		a.prev_hash.data = prev;
		a.prev_hash.len = 32;
		switch (i) {
		case 0:
			a.kind = WFPBROKER__V1__AUDIT_KIND__AUDIT_SERVICE_START;
			a.message = "wfpbrokerd 0.1.0";
			break;
		case 3:
			a.kind = WFPBROKER__V1__AUDIT_KIND__AUDIT_CHECKPOINT;
			a.op = "checkpoint";
			break;
		default:
			a.kind = WFPBROKER__V1__AUDIT_KIND__AUDIT_REQUEST;
			a.principal = &p;
			a.op = "connect";
			a.n_addresses = 1;
			a.addresses = &adp;
			a.session_id = 1;
			a.request_id = (uint64_t)i;
			a.latency_us = 250;
			break;
		}
		if (a.kind == WFPBROKER__V1__AUDIT_KIND__AUDIT_CHECKPOINT) {
			if (wfpb__audit_signed_bytes(&a, &sb, &sl) != 0 || sl > sizeof(r[i].signed_bytes))
				abort();
			crypto_sign_detached(sig, NULL, sb, sl, sk);
			memcpy(r[i].signed_bytes, sb, sl);
			r[i].signed_len = sl;
			r[i].checkpoint = 1;
			free(sb);
			a.signature.data = sig;
			a.signature.len = 64;
		}
		n = wfpbroker__v1__audit_record__pack(&a, r[i].framed + 4);
		r[i].framed[0] = (uint8_t)(n >> 24);
		r[i].framed[1] = (uint8_t)(n >> 16);
		r[i].framed[2] = (uint8_t)(n >> 8);
		r[i].framed[3] = (uint8_t)n;
		r[i].len = n + 4;
		memcpy(r[i].prev, prev, 32);
		wfpb__audit_chain_hash(r[i].framed, r[i].len, r[i].hash);
		memcpy(prev, r[i].hash, 32);
	}
	sodium_memzero(sk, sizeof(sk));
}

static json_t *
hexj(const uint8_t *p, size_t n)
{
	char	*h = malloc(2 * n + 1);
	json_t	*j;

	sodium_bin2hex(h, 2 * n + 1, p, n);
	j = json_string(h);
	free(h);
	return j;
}

/* The damaged copies and what a verifier must say of each: "ok", or the first bad seq. */
struct variant {
	const char	*name;
	int		record;		/* which record is changed (-1: none) */
	int		offset;		/* which byte of it, from the end of its framed bytes */
};
static const struct variant variants[] = {
	{ "the log as written", -1, 0 },
	{ "the last byte of seq 2 changed (in its latency_us)", 1, 1 },
	{ "a byte of the signature of the checkpoint (seq 4) changed", 3, 1 },
};

static size_t
variant_log(const struct rec r[RECORDS], const struct variant *v, uint8_t *out)
{
	size_t	len = 0;
	int	i;

	for (i = 0; i < RECORDS; i++) {
		memcpy(out + len, r[i].framed, r[i].len);
		if (i == v->record)
			out[len + r[i].len - (size_t)v->offset] ^= 0x01;
		len += r[i].len;
	}
	return len;
}

static json_t *
verdict(const uint8_t *log, size_t len, const uint8_t pk[32])
{
	struct wfpb_audit_report rep;

	memset(&rep, 0, sizeof(rep));
	if (wfpb_audit_verify(log, len, pk, &rep) == 0)
		return json_string("ok");
	return json_integer((json_int_t)rep.bad_seq);
}

static int
write_vector(const char *path)
{
	struct rec	r[RECORDS];
	uint8_t		pk[32], log[BUF_MAX];
	json_t		*root = json_object(), *recs = json_array(), *vs = json_array();
	size_t		i, len;

	memset(r, 0, sizeof(r));
	make_log(r, pk);
	json_object_set_new(root, "description", json_string("wfpbroker audit chain v1 (docs/AUDIT.md, "
	    "\"The chain, exactly\"): chain_hash = BLAKE2b-256(framed), framed = u32 big-endian length || record; "
	    "prev_hash of seq 1 = 32 zero bytes; signed_bytes = the record without its signature field; "
	    "signature = Ed25519(signed_bytes) under public_key. A verdict is \"ok\" or the first seq that fails."));
	json_object_set_new(root, "public_key", hexj(pk, 32));
	for (i = 0; i < RECORDS; i++) {
		json_t *o = json_object();

		json_object_set_new(o, "seq", json_integer((json_int_t)i + 1));
		json_object_set_new(o, "framed", hexj(r[i].framed, r[i].len));
		json_object_set_new(o, "prev_hash", hexj(r[i].prev, 32));
		json_object_set_new(o, "chain_hash", hexj(r[i].hash, 32));
		if (r[i].checkpoint)
			json_object_set_new(o, "signed_bytes", hexj(r[i].signed_bytes, r[i].signed_len));
		json_array_append_new(recs, o);
	}
	json_object_set_new(root, "records", recs);
	for (i = 0; i < sizeof(variants) / sizeof(variants[0]); i++) {
		json_t *o = json_object();

		len = variant_log(r, &variants[i], log);
		json_object_set_new(o, "name", json_string(variants[i].name));
		json_object_set_new(o, "log", hexj(log, len));
		json_object_set_new(o, "verdict", verdict(log, len, pk));
		json_array_append_new(vs, o);
	}
	json_object_set_new(root, "verdicts", vs);
	return json_dump_file(root, path, JSON_INDENT(2) | JSON_PRESERVE_ORDER) == 0 ? 0 : 1;
}

/* A hex member of o into out (cap): its byte count, or 0 when absent or not hex. */
static size_t
member_hex(json_t *o, const char *key, uint8_t *out, size_t cap)
{
	const char	*h = json_string_value(json_object_get(o, key));
	size_t		n;

	if (h == NULL || sodium_hex2bin(out, cap, h, strlen(h), NULL, &n, NULL) != 0)
		return 0;
	return n;
}

int
main(int argc, char **argv)
{
	static uint8_t	framed[BUF_MAX], log[BUF_MAX], sb[BUF_MAX], cut[BUF_MAX];
	uint8_t		pk[32], prev[32] = { 0 }, hash[32], want[32];
	json_t		*root, *recs, *vs, *o;
	json_error_t	err;
	size_t		i, n, sl, cl;
	char		what[256];

	if (sodium_init() < 0)
		return 1;
	if (argc == 3 && strcmp(argv[1], "--write") == 0)
		return write_vector(argv[2]);
	if (argc != 2 || (root = json_load_file(argv[1], 0, &err)) == NULL)
		return 2;
	check(member_hex(root, "public_key", pk, sizeof(pk)) == 32, "the vector's public key");
	recs = json_object_get(root, "records");
	for (i = 0; i < json_array_size(recs); i++) {
		Wfpbroker__V1__AuditRecord *r;

		o = json_array_get(recs, i);
		n = member_hex(o, "framed", framed, sizeof(framed));
		wfpb__audit_chain_hash(framed, n, hash);
		snprintf(what, sizeof(what), "seq %zu: chain_hash is BLAKE2b-256 of its framed bytes", i + 1);
		check(n > 4 && member_hex(o, "chain_hash", want, 32) == 32 && memcmp(hash, want, 32) == 0, what);
		r = wfpbroker__v1__audit_record__unpack(NULL, n - 4, framed + 4);
		snprintf(what, sizeof(what), "seq %zu: its prev_hash is the chain hash before it (zeros for seq 1)", i + 1);
		check(r != NULL && r->seq == i + 1 && r->prev_hash.len == 32 && memcmp(r->prev_hash.data, prev, 32) == 0 &&
		    member_hex(o, "prev_hash", want, 32) == 32 && memcmp(want, prev, 32) == 0, what);
		if (r != NULL && r->kind == WFPBROKER__V1__AUDIT_KIND__AUDIT_CHECKPOINT) {
			uint8_t	*mine = NULL;
			size_t	ml = 0;

			sl = member_hex(o, "signed_bytes", sb, sizeof(sb));
			snprintf(what, sizeof(what), "seq %zu: signed_bytes are the stored record without its signature "
			    "field, as the writer signs them, and the signature verifies", i + 1);
			check(sl > 0 && cut_signature(framed + 4, n - 4, cut, &cl) == 0 && cl == sl &&
			    memcmp(cut, sb, sl) == 0 && wfpb__audit_signed_bytes(r, &mine, &ml) == 0 && ml == sl &&
			    memcmp(mine, sb, sl) == 0 && r->signature.len == 64 &&
			    crypto_sign_verify_detached(r->signature.data, sb, sl, pk) == 0, what);
			free(mine);
		}
		if (r != NULL)
			wfpbroker__v1__audit_record__free_unpacked(r, NULL);
		memcpy(prev, hash, 32);
	}
	check(json_array_size(recs) == RECORDS, "every record of the vector was checked");
	vs = json_object_get(root, "verdicts");
	for (i = 0; i < json_array_size(vs); i++) {
		json_t *got;

		o = json_array_get(vs, i);
		n = member_hex(o, "log", log, sizeof(log));
		got = verdict(log, n, pk);
		snprintf(what, sizeof(what), "verdict on %s", json_string_value(json_object_get(o, "name")));
		check(n > 0 && json_equal(got, json_object_get(o, "verdict")), what);
		json_decref(got);
	}
	check(json_array_size(vs) >= 3, "the vector's verdicts were all checked");
	json_decref(root);
	return failed;
}
