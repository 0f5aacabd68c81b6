/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fleet-gen DIR HOSTS RECORDS: a fleet's audit logs for bench/verify_collected.sh, made
 * without brokers. For each host i: DIR/h<i>/audit.log (RECORDS records chained as the broker
 * chains them, a signed checkpoint every 1000 and as the last), its Ed25519 key
 * (DIR/h<i>/audit.key, audit.pub); DIR/keys is made for the script to gather the public keys.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sodium.h>

#include "audit.h"
#include "keyfile.h"
#include "wfpbroker.pb-c.h"

#define CHECKPOINT_EVERY	1000u

static int
host_log(const char *dir, unsigned host, unsigned long records)
{
	Wfpbroker__V1__AuditRecord	r;
	Wfpbroker__V1__Principal	p = WFPBROKER__V1__PRINCIPAL__INIT;
	Wfpbroker__V1__Address		a = WFPBROKER__V1__ADDRESS__INIT, *ap = &a;
	uint8_t				addr[4] = { 10, 0, 0, 0 }, prev[32] = { 0 }, framed[4096], *sb;
	unsigned char			sk[64], pk[32];
	char				path[4096], key[4096], pub[4096];
	unsigned long			seq;
	size_t				n, sl;
	FILE				*f;

	snprintf(path, sizeof(path), "%s/h%u", dir, host);
	if (mkdir(path, 0700) != 0 && errno != EEXIST)
		return -1;
	snprintf(key, sizeof(key), "%s/h%u/audit.key", dir, host);
	snprintf(pub, sizeof(pub), "%s/h%u/audit.pub", dir, host);
	if (wfpb_keyfile_load_or_create_ed25519(key, pub, sk, pk) != 0)
		return -1;
	snprintf(path, sizeof(path), "%s/h%u/audit.log", dir, host);
	if ((f = fopen(path, "wb")) == NULL)
		return -1;
	p.user = "1000";
	p.name = "proxy";
	p.image = "/usr/lib/proxy/proxyd";
	a.family = WFPBROKER__V1__ADDRESS_FAMILY__AF_INET;
	a.addr.data = addr;
	a.addr.len = 4;
	for (seq = 1; seq <= records; seq++) {
		wfpbroker__v1__audit_record__init(&r);
		r.seq = seq;
		r.time_unix_ms = 1796000000000ull + seq * 10u;
		r.prev_hash.data = prev;
		r.prev_hash.len = sizeof(prev);
		if (seq % CHECKPOINT_EVERY == 0 || seq == records) {
			r.kind = WFPBROKER__V1__AUDIT_KIND__AUDIT_CHECKPOINT;
			r.op = "checkpoint";
			if (wfpb__audit_signed_bytes(&r, &sb, &sl) != 0)
				return -1;
			r.signature.data = framed + 2048;
			r.signature.len = crypto_sign_BYTES;
			crypto_sign_detached(framed + 2048, NULL, sb, sl, sk);
			free(sb);
		} else {
			r.kind = WFPBROKER__V1__AUDIT_KIND__AUDIT_REQUEST;
			r.op = "connect";
			r.principal = &p;
			p.pid = 1000 + host;
			addr[2] = (uint8_t)(seq >> 8);
			addr[3] = (uint8_t)seq;
			a.port = 443;
			r.n_addresses = 1;
			r.addresses = &ap;
			r.session_id = 1 + seq / 64;
			r.request_id = seq;
			r.latency_us = 120;
		}
		n = wfpbroker__v1__audit_record__get_packed_size(&r);
		if (n > 2000)
			return -1;
		wfpbroker__v1__audit_record__pack(&r, framed + 4);
		framed[0] = (uint8_t)(n >> 24);
		framed[1] = (uint8_t)(n >> 16);
		framed[2] = (uint8_t)(n >> 8);
		framed[3] = (uint8_t)n;
		if (fwrite(framed, 1, n + 4, f) != n + 4)
			return -1;
		wfpb__audit_chain_hash(framed, n + 4, prev);
	}
	sodium_memzero(sk, sizeof(sk));
	return fclose(f) == 0 ? 0 : -1;
}

int
main(int argc, char **argv)
{
	unsigned	hosts, i;
	unsigned long	records;
	char		path[4096];

	if (argc != 4 || sodium_init() < 0)
		return 2;
	hosts = (unsigned)strtoul(argv[2], NULL, 10);
	records = strtoul(argv[3], NULL, 10);
	snprintf(path, sizeof(path), "%s/keys", argv[1]);
	if ((mkdir(argv[1], 0700) != 0 && errno != EEXIST) || (mkdir(path, 0700) != 0 && errno != EEXIST))
		return 1;
	for (i = 0; i < hosts; i++)
		if (host_log(argv[1], i, records) != 0) {
			fprintf(stderr, "fleet-gen: host %u: %s\n", i, strerror(errno));
			return 1;
		}
	return 0;
}
