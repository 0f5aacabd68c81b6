/* SPDX-License-Identifier: Apache-2.0 */
/*
 * audit-forge LOG N AGE_S: the attacker of issue 25's item 7, as a tool. Appends N made-up
 * records to the audit log LOG, each chained to the one before exactly as the broker chains
 * them (seq, prev_hash), none signed: root connecting to 10.66.66.66:22, stamped AGE_S
 * seconds ago. Anyone who can write a log or a collected stream can do this without any key;
 * only a checkpoint's signature can tell these records from the broker's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "audit.h"
#include "fileio.h"
#include "wfpbroker.pb-c.h"

int
main(int argc, char **argv)
{
	Wfpbroker__V1__AuditRecord	*last, r = WFPBROKER__V1__AUDIT_RECORD__INIT;
	Wfpbroker__V1__Principal	p = WFPBROKER__V1__PRINCIPAL__INIT;
	Wfpbroker__V1__Address		a = WFPBROKER__V1__ADDRESS__INIT, *ap = &a;
	static uint8_t			addr[4] = { 10, 66, 66, 66 };
	uint8_t				*buf, prev[32], framed[4096];
	size_t				len, off = 0, at = 0, n;
	uint64_t			seq;
	unsigned			i, count;
	int				os_err;
	FILE				*f;

	if (argc != 4 || sodium_init() < 0)
		return 2;
	count = (unsigned)strtoul(argv[2], NULL, 10);
	if (wfpb__file_read_all(argv[1], WFPB_AUDIT_FILE_MAX, &buf, &len, &os_err) != 0 || len < 4)
		return 1;
	/* The last record: the chain continues from its hash. */
	while (off + 4 <= len) {
		n = (size_t)buf[off] << 24 | (size_t)buf[off + 1] << 16 | (size_t)buf[off + 2] << 8 | buf[off + 3];
		if (off + 4 + n > len)
			break;
		at = off;
		off += 4 + n;
	}
	n = off - at - 4;
	if ((last = wfpbroker__v1__audit_record__unpack(NULL, n, buf + at + 4)) == NULL)
		return 1;
	seq = last->seq;
	wfpbroker__v1__audit_record__free_unpacked(last, NULL);
	wfpb__audit_chain_hash(buf + at, n + 4, prev);
	free(buf);
	if ((f = fopen(argv[1], "ab")) == NULL)
		return 1;
	p.user = "0";
	p.name = "root";
	p.image = "/usr/bin/ssh";
	p.pid = 4242;
	a.family = WFPBROKER__V1__ADDRESS_FAMILY__AF_INET;
	a.addr.data = addr;
	a.addr.len = 4;
	a.port = 22;
	r.kind = WFPBROKER__V1__AUDIT_KIND__AUDIT_REQUEST;
	r.principal = &p;
	r.op = "connect";
	r.n_addresses = 1;
	r.addresses = &ap;
	r.status = WFPBROKER__V1__STATUS_CODE__OK;
	r.message = "";
	r.time_unix_ms = ((uint64_t)time(NULL) - strtoull(argv[3], NULL, 10)) * 1000u;
	for (i = 0; i < count; i++) {
		r.seq = ++seq;
		r.request_id = 1 + i;
		r.session_id = 999;
		r.prev_hash.data = prev;
		r.prev_hash.len = sizeof(prev);
		n = wfpbroker__v1__audit_record__pack(&r, framed + 4);
		framed[0] = (uint8_t)(n >> 24);
		framed[1] = (uint8_t)(n >> 16);
		framed[2] = (uint8_t)(n >> 8);
		framed[3] = (uint8_t)n;
		if (fwrite(framed, 1, n + 4, f) != n + 4)
			return 1;
		wfpb__audit_chain_hash(framed, n + 4, prev);
	}
	return fclose(f) == 0 ? 0 : 1;
}
