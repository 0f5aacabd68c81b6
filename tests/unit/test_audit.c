/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The audit log on disk: a writer's output verifies; every kind of tampering
 * is caught and named; a torn tail is cut on reopen and the chain goes on; a
 * tampered log is never extended. Runs on both targets (the Windows writer
 * under Wine).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "audit.h"
#include "fileio.h"
#include "wfpbroker.pb-c.h"

#define LOG	"test-audit.log"

static unsigned char	sk[64], pk[32], other_sk[64], other_pk[32];

static int
setup(void **state)
{
	(void)state;
	if (sodium_init() < 0)
		return -1;
	crypto_sign_keypair(pk, sk);
	crypto_sign_keypair(other_pk, other_sk);
	return 0;
}

/* Writes a fresh log of n request records with a checkpoint every `every`, closed with a checkpoint. */
static void
write_log(unsigned n, unsigned every)
{
	struct wfpb_audit	a;
	char			err[256];
	unsigned		i;

	remove(LOG);
	assert_int_equal(wfpb_audit_open(&a, LOG, sk, every, 3600000, 1, err, sizeof(err)), 0);
	for (i = 0; i < n; i++) {
		Wfpbroker__V1__AuditRecord r = WFPBROKER__V1__AUDIT_RECORD__INIT;

		r.kind = WFPBROKER__V1__AUDIT_KIND__AUDIT_REQUEST;
		r.op = (char *)"stash";
		r.request_id = i + 1;
		assert_true(wfpb_audit_append(&a, &r, 2) != 0);
		if (i % 3 == 0)
			assert_int_equal(wfpb_audit_commit(&a, 2), 1);
	}
	assert_true(wfpb_audit_checkpoint(&a, 3, NULL) != 0);
	assert_int_equal(wfpb_audit_commit(&a, 3), 1);
	assert_int_equal(a.durable_seq, a.next_seq - 1);
	wfpb_audit_close(&a);
}

static uint8_t *
slurp(size_t *len)
{
	FILE	*f = fopen(LOG, "rb");
	uint8_t	*buf = malloc(1 << 20);

	assert_non_null(f);
	*len = fread(buf, 1, 1 << 20, f);
	fclose(f);
	return buf;
}

static void
spill(const uint8_t *buf, size_t len)
{
	FILE *f = fopen(LOG, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(buf, 1, len, f), len);
	fclose(f);
}

/* Byte offsets of each record in buf. */
static size_t
offsets(const uint8_t *buf, size_t len, size_t *off, size_t max)
{
	size_t n = 0, o = 0;

	while (o + 4 <= len && n < max) {
		off[n++] = o;
		o += 4 + (((size_t)buf[o] << 24) | ((size_t)buf[o + 1] << 16) | ((size_t)buf[o + 2] << 8) | buf[o + 3]);
	}
	return n;
}

static void
clean_log_verifies(void **state)
{
	struct wfpb_audit_report	rep;
	uint8_t				*buf;
	size_t				len;

	(void)state;
	write_log(10, 4);
	buf = slurp(&len);
	assert_int_equal(wfpb_audit_verify(buf, len, pk, &rep), 0);
	assert_int_equal(rep.records, 13);	/* 10 requests, 2 periodic checkpoints, 1 final */
	assert_int_equal(rep.checkpoints, 3);
	assert_int_equal(rep.last_checkpoint_seq, rep.last_seq);
	assert_false(rep.torn);
	free(buf);
}

static void
expect_bad(const uint8_t *buf, size_t len, const unsigned char *key, uint64_t seq, const char *words)
{
	struct wfpb_audit_report rep;

	assert_int_equal(wfpb_audit_verify(buf, len, key, &rep), WFPB_E_DECODE);
	assert_int_equal(rep.bad_seq, seq);
	if (strstr(rep.error, words) == NULL)
		fail_msg("error '%s' lacks '%s'", rep.error, words);
}

static void
tampering_is_named(void **state)
{
	uint8_t	*buf, *copy;
	size_t	len, off[64], n;

	(void)state;
	write_log(10, 4);
	buf = slurp(&len);
	n = offsets(buf, len, off, 64);
	assert_int_equal(n, 13);
	copy = malloc(len);

	/* A flipped byte inside record 5 breaks the hash chain at record 6. */
	memcpy(copy, buf, len);
	copy[off[4] + 10] ^= 0x01;
	{
		struct wfpb_audit_report rep;

		assert_int_equal(wfpb_audit_verify(copy, len, pk, &rep), WFPB_E_DECODE);
		assert_true(rep.bad_seq == 5 || rep.bad_seq == 6);
	}
	/* A deleted record: the next seq is wrong. */
	memcpy(copy, buf, off[3]);
	memcpy(copy + off[3], buf + off[4], len - off[4]);
	expect_bad(copy, len - (off[4] - off[3]), pk, 4, "sequence number 5, expected 4");
	/* Two records swapped. */
	memcpy(copy, buf, len);
	memcpy(copy + off[2], buf + off[3], off[4] - off[3]);
	memcpy(copy + off[2] + (off[4] - off[3]), buf + off[2], off[3] - off[2]);
	expect_bad(copy, len, pk, 3, "sequence number 4, expected 3");
	/* Verified with a different key: the first checkpoint's signature fails. */
	expect_bad(buf, len, other_pk, 5, "signature");
	free(copy);
	free(buf);
}

static void
cut_and_dropped_checkpoint_are_visible(void **state)
{
	struct wfpb_audit_report	rep;
	uint8_t				*buf;
	size_t				len, off[64], n;

	(void)state;
	write_log(10, 4);
	buf = slurp(&len);
	n = offsets(buf, len, off, 64);
	/* Cut in the middle of the last record: the rest verifies, the tail is torn. */
	assert_int_equal(wfpb_audit_verify(buf, off[n - 1] + 7, pk, &rep), 0);
	assert_true(rep.torn);
	assert_int_equal(rep.bad_seq, n);
	/* The final checkpoint removed: the chain holds but its tail is not signed. */
	assert_int_equal(wfpb_audit_verify(buf, off[n - 1], pk, &rep), 0);
	assert_false(rep.torn);
	assert_int_equal(rep.last_seq, n - 1);
	assert_true(rep.last_checkpoint_seq < rep.last_seq);
	free(buf);
}

static void
reopen_truncates_a_torn_tail_and_continues(void **state)
{
	struct wfpb_audit		a;
	struct wfpb_audit_report	rep;
	uint8_t				*buf;
	size_t				len, off[64], n;
	char				err[256];
	Wfpbroker__V1__AuditRecord	r = WFPBROKER__V1__AUDIT_RECORD__INIT;

	(void)state;
	write_log(5, 100);
	buf = slurp(&len);
	n = offsets(buf, len, off, 64);
	spill(buf, off[n - 1] + 5);	/* a crash in the middle of the last write */
	free(buf);
	assert_int_equal(wfpb_audit_open(&a, LOG, sk, 100, 3600000, 1, err, sizeof(err)), 0);
	assert_int_equal(a.next_seq, n);	/* the torn record's seq is reused */
	r.kind = WFPBROKER__V1__AUDIT_KIND__AUDIT_SERVICE_START;
	assert_int_equal(wfpb_audit_append(&a, &r, 5), n);
	assert_true(wfpb_audit_checkpoint(&a, 5, NULL) != 0);
	assert_int_equal(wfpb_audit_commit(&a, 5), 1);
	wfpb_audit_close(&a);
	buf = slurp(&len);
	assert_int_equal(wfpb_audit_verify(buf, len, pk, &rep), 0);
	assert_false(rep.torn);
	assert_int_equal(rep.last_seq, n + 1);
	free(buf);
}

static void
tampered_log_is_never_extended(void **state)
{
	struct wfpb_audit	a;
	uint8_t			*buf;
	size_t			len, off[64], before;
	char			err[256];

	(void)state;
	write_log(6, 100);
	buf = slurp(&len);
	before = len;
	(void)offsets(buf, len, off, 64);
	buf[off[2] + 12] ^= 0x40;
	spill(buf, len);
	free(buf);
	assert_int_equal(wfpb_audit_open(&a, LOG, sk, 100, 3600000, 1, err, sizeof(err)), WFPB_E_DECODE);
	assert_non_null(strstr(err, "refusing to extend"));
	wfpb_audit_close(&a);
	buf = slurp(&len);
	assert_int_equal(len, before);	/* nothing appended, nothing cut */
	free(buf);
	remove(LOG);
}

static uint8_t *
slurp_path(const char *path, size_t *len)
{
	FILE	*f = fopen(path, "rb");
	uint8_t	*buf = malloc(1 << 20);

	assert_non_null(f);
	*len = fread(buf, 1, 1 << 20, f);
	fclose(f);
	return buf;
}

static void
rotation_carries_the_chain_across_files(void **state)
{
	struct wfpb_audit		a;
	struct wfpb_audit_report	cur, prev;
	uint8_t				*buf, *pbuf;
	size_t				len, plen, off[8];
	char				err[256], name[64];
	unsigned			i;
	uint64_t			first, renames = wfpb__file_durable_renames();

	(void)state;
	remove(LOG);
	assert_int_equal(wfpb_audit_open(&a, LOG, sk, 1000, 3600000, 1, err, sizeof(err)), 0);
	a.max_bytes = 1500;
	for (i = 0; i < 60; i++) {
		Wfpbroker__V1__AuditRecord r = WFPBROKER__V1__AUDIT_RECORD__INIT;

		r.kind = WFPBROKER__V1__AUDIT_KIND__AUDIT_REQUEST;
		r.op = (char *)"listen";
		assert_true(wfpb_audit_append(&a, &r, 2) != 0);
		assert_int_equal(wfpb_audit_commit(&a, 2), 1);
	}
	assert_true(a.rotations >= 2);
	/* Each rotation's two renames are durable (the directory synced after them). */
	assert_int_equal(wfpb__file_durable_renames() - renames, 2 * a.rotations);
	wfpb_audit_close(&a);

	/* The current file opens with a signed continuation checkpoint and verifies on its own. */
	buf = slurp(&len);
	assert_int_equal(wfpb_audit_verify(buf, len, pk, &cur), 0);
	assert_true(cur.first_seq > 1);
	/* Its link: the previous file ends exactly where it begins. */
	snprintf(name, sizeof(name), "%s.%llu", LOG, (unsigned long long)(cur.first_seq - 1));
	pbuf = slurp_path(name, &plen);
	assert_int_equal(wfpb_audit_verify(pbuf, plen, pk, &prev), 0);
	assert_int_equal(prev.last_seq, cur.first_seq - 1);
	assert_int_equal(prev.last_checkpoint_seq, prev.last_seq);	/* sealed */
	assert_memory_equal(prev.last_hash, cur.first_prev_hash, WFPB_AUDIT_HASH_LEN);
	/* Without its continuation checkpoint the file is refused. */
	(void)offsets(buf, len, off, 8);
	expect_bad(buf + off[1], len - off[1], pk, 1, "without a continuation checkpoint");
	free(pbuf);
	free(buf);
	/* Clean up every rotated file, walking the chain back. */
	first = cur.first_seq;
	remove(LOG);
	while (first > 1) {
		snprintf(name, sizeof(name), "%s.%llu", LOG, (unsigned long long)(first - 1));
		pbuf = slurp_path(name, &plen);
		assert_int_equal(wfpb_audit_verify(pbuf, plen, pk, &prev), 0);
		free(pbuf);
		remove(name);
		first = prev.first_seq;
	}
}

/*
 * A reader holding the log open (wfpbctl audit verify, a follower) does not
 * stop its rotation: on Windows the rename fails unless every reader shares
 * delete access, and the log would be broken until the reader let go.
 */
static void
rotation_goes_on_while_a_reader_holds_the_log(void **state)
{
	struct wfpb_audit	a;
	wfpb_file		rf;
	uint64_t		size, first;
	char			err[256], name[64];
	unsigned		i;
	int			os_err = 0;

	(void)state;
	remove(LOG);
	assert_int_equal(wfpb_audit_open(&a, LOG, sk, 1000, 3600000, 1, err, sizeof(err)), 0);
	a.max_bytes = 1500;
	assert_int_equal(wfpb__file_open_read(LOG, &rf, &size, &os_err), 0);
	for (i = 0; i < 200 && a.rotations == 0; i++) {
		Wfpbroker__V1__AuditRecord r = WFPBROKER__V1__AUDIT_RECORD__INIT;

		r.kind = WFPBROKER__V1__AUDIT_KIND__AUDIT_REQUEST;
		assert_true(wfpb_audit_append(&a, &r, 2) != 0);
		(void)wfpb_audit_commit(&a, 2);
		assert_false(a.broken);
	}
	assert_int_equal(a.rotations, 1);
	first = a.durable_seq;
	wfpb__file_close(rf);
	wfpb_audit_close(&a);
	assert_int_equal(wfpb__file_open_read(LOG ".missing", &rf, &size, &os_err), WFPB_E_NOENT);
	remove(LOG);
	for (; first > 0; first--) {
		snprintf(name, sizeof(name), "%s.%llu", LOG, (unsigned long long)first);
		(void)remove(name);
	}
}

static void
interrupted_rotation_is_completed_or_discarded(void **state)
{
	struct wfpb_audit		a;
	struct wfpb_audit_report	rep;
	uint8_t				*buf;
	size_t				len;
	char				err[256], name[64];
	unsigned			i;
	uint64_t			first;
	FILE				*f;

	(void)state;
	remove(LOG);
	assert_int_equal(wfpb_audit_open(&a, LOG, sk, 1000, 3600000, 1, err, sizeof(err)), 0);
	a.max_bytes = 1500;
	for (i = 0; i < 200 && a.rotations == 0; i++) {
		Wfpbroker__V1__AuditRecord r = WFPBROKER__V1__AUDIT_RECORD__INIT;

		r.kind = WFPBROKER__V1__AUDIT_KIND__AUDIT_REQUEST;
		assert_true(wfpb_audit_append(&a, &r, 2) != 0);
		assert_int_equal(wfpb_audit_commit(&a, 2), 1);
	}
	assert_int_equal(a.rotations, 1);
	wfpb_audit_close(&a);
	/* A crash between the two renames: the sealed file moved, the new one still PATH.next. */
	assert_int_equal(rename(LOG, LOG ".next"), 0);
	assert_int_equal(wfpb_audit_open(&a, LOG, sk, 1000, 3600000, 1, err, sizeof(err)), 0);
	wfpb_audit_close(&a);
	buf = slurp(&len);
	assert_int_equal(wfpb_audit_verify(buf, len, pk, &rep), 0);
	assert_true(rep.first_seq > 1);	/* the chain went on, it did not restart */
	free(buf);
	/* A crash before either rename: PATH intact, a half-made PATH.next is dropped. */
	f = fopen(LOG ".next", "wb");
	assert_non_null(f);
	fputs("half-made", f);
	fclose(f);
	assert_int_equal(wfpb_audit_open(&a, LOG, sk, 1000, 3600000, 1, err, sizeof(err)), 0);
	wfpb_audit_close(&a);
	assert_null(fopen(LOG ".next", "rb"));
	first = rep.first_seq;
	remove(LOG);
	snprintf(name, sizeof(name), "%s.%llu", LOG, (unsigned long long)(first - 1));
	remove(name);
}

static uint64_t
append_request(struct wfpb_audit *a, uint64_t id)
{
	Wfpbroker__V1__AuditRecord r = WFPBROKER__V1__AUDIT_RECORD__INIT;

	r.kind = WFPBROKER__V1__AUDIT_KIND__AUDIT_REQUEST;
	r.op = (char *)"listen";
	r.request_id = id;
	return wfpb_audit_append(a, &r, 2);
}

/*
 * The committer's three steps: records queued while a batch is in flight
 * form the next batch; a failed batch is written again before them, and
 * the retry makes all of them durable in one verifying chain.
 */
static void
commit_in_three_steps_keeps_order_through_a_failure(void **state)
{
	struct wfpb_audit		a;
	struct wfpb_audit_report	rep;
	char				err[256];
	uint64_t			first, last_in_flight, last;
	uint8_t				*buf;
	size_t				len;
	wfpb_file			f;
	int				i;

	(void)state;
	remove(LOG);
	assert_int_equal(wfpb_audit_open(&a, LOG, sk, 1000, 3600000, 1, err, sizeof(err)), 0);
	first = append_request(&a, 1);
	for (i = 2; i <= 3; i++)
		last_in_flight = append_request(&a, (uint64_t)i);
	assert_int_equal(wfpb_audit_begin(&a, 2), 1);
	assert_int_equal(wfpb_audit_begin(&a, 2), 0);		/* one batch at a time */
	assert_int_equal(wfpb_audit_commit(&a, 2), WFPB_E_STATE);	/* nor inline meanwhile */
	for (i = 4; i <= 5; i++)
		last = append_request(&a, (uint64_t)i);		/* queued during the flight */
	/* The flush fails (no file); the batch is kept to go again before the newer records. */
	f = a.f;
	a.f = WFPB_FILE_NONE;
	wfpb_audit_flush_inflight(&a);
	a.f = f;
	assert_true(wfpb_audit_end(&a, 2) < 0);
	assert_true(a.broken);
	assert_true(a.durable_seq < first);
	/* The retry writes the failed batch whole, then the newer records; the chain verifies. */
	assert_int_equal(wfpb_audit_begin(&a, 2), 1);
	assert_int_equal(a.inflight_last_seq, last_in_flight);
	wfpb_audit_flush_inflight(&a);
	assert_int_equal(wfpb_audit_end(&a, 2), 1);
	assert_false(a.broken);
	assert_int_equal(a.durable_seq, last_in_flight);
	assert_int_equal(wfpb_audit_commit(&a, 2), 1);
	assert_int_equal(a.durable_seq, last);
	assert_true(last_in_flight < last);
	/* Success with records queued during the flight: only the batch becomes durable. */
	assert_true(append_request(&a, 6) != 0);
	assert_int_equal(wfpb_audit_begin(&a, 2), 1);
	last_in_flight = a.inflight_last_seq;
	last = append_request(&a, 7);
	wfpb_audit_flush_inflight(&a);
	assert_int_equal(wfpb_audit_end(&a, 2), 1);
	assert_int_equal(a.durable_seq, last_in_flight);
	assert_int_equal(wfpb_audit_commit(&a, 2), 1);
	assert_int_equal(a.durable_seq, last);
	assert_true(wfpb_audit_checkpoint(&a, 3, NULL) != 0);
	assert_int_equal(wfpb_audit_commit(&a, 3), 1);
	wfpb_audit_close(&a);
	buf = slurp(&len);
	assert_int_equal(wfpb_audit_verify(buf, len, pk, &rep), 0);
	assert_string_equal(rep.error, "");
	assert_int_equal(rep.last_seq, last + 1);
	free(buf);
}

/* Random text of random length, or NULL, or "": every case proto3 treats differently. */
static char *
rand_string(char *buf, size_t cap)
{
	uint32_t	k = randombytes_uniform(4), n, i;

	if (k == 0)
		return NULL;
	if (k == 1)
		return (char *)"";
	n = randombytes_uniform((uint32_t)cap - 1) + 1;
	for (i = 0; i < n; i++)
		buf[i] = (char)(' ' + randombytes_uniform(95));
	buf[n] = '\0';
	return buf;
}

static uint64_t
rand_u64(void)
{
	uint64_t v;

	/* Zero a quarter of the time (omitted), else any width of varint. */
	if (randombytes_uniform(4) == 0)
		return 0;
	randombytes_buf(&v, sizeof(v));
	return v >> randombytes_uniform(64);
}

static void
rand_bytes(ProtobufCBinaryData *b, uint8_t *buf, size_t cap)
{
	b->len = randombytes_uniform((uint32_t)cap + 1);
	if (randombytes_uniform(3) == 0)
		b->len = 0;
	randombytes_buf(buf, b->len);
	b->data = buf;
}

/* The hand-written encoder writes exactly what protobuf-c writes, for every field combination. */
static void
encoder_matches_protobuf_c(void **state)
{
	static uint8_t	mine[WFPB_AUDIT_RECORD_MAX], theirs[WFPB_AUDIT_RECORD_MAX];
	int		iter;

	(void)state;
	for (iter = 0; iter < 20000; iter++) {
		Wfpbroker__V1__AuditRecord	r = WFPBROKER__V1__AUDIT_RECORD__INIT;
		Wfpbroker__V1__Principal	pr = WFPBROKER__V1__PRINCIPAL__INIT;
		Wfpbroker__V1__Address		a[4], *ap[4];
		ProtobufCBinaryData		hashes[3];
		uint8_t				hbuf[3][40], abuf[4][16], kbuf[32], sbuf[64], pbuf[32];
		char				user[64], image[4096], name[64], op[32], msg[300];
		size_t				i, n, m;

		r.seq = rand_u64();
		r.time_unix_ms = rand_u64();
		r.kind = (Wfpbroker__V1__AuditKind)randombytes_uniform(7);
		if (randombytes_uniform(4) != 0) {
			pr.user = rand_string(user, sizeof(user));
			pr.pid = (uint32_t)rand_u64();
			pr.image = rand_string(image, randombytes_uniform(8) == 0 ? sizeof(image) : 100);
			rand_bytes(&pr.key_fingerprint, kbuf, sizeof(kbuf));
			pr.name = rand_string(name, sizeof(name));
			r.principal = &pr;
		}
		r.op = rand_string(op, sizeof(op));
		r.n_addresses = randombytes_uniform(5);
		for (i = 0; i < r.n_addresses; i++) {
			wfpbroker__v1__address__init(&a[i]);
			a[i].family = (Wfpbroker__V1__AddressFamily)randombytes_uniform(3);
			rand_bytes(&a[i].addr, abuf[i], sizeof(abuf[i]));
			a[i].port = (uint32_t)rand_u64();
			a[i].scope_id = (uint32_t)rand_u64();
			ap[i] = &a[i];
		}
		r.addresses = ap;
		r.n_blob_hashes = randombytes_uniform(4);
		for (i = 0; i < r.n_blob_hashes; i++)
			rand_bytes(&hashes[i], hbuf[i], sizeof(hbuf[i]));	/* an empty element is still written */
		r.blob_hashes = hashes;
		r.status = (Wfpbroker__V1__StatusCode)(randombytes_uniform(8) == 0 ? -1 : (int)randombytes_uniform(39));
		r.latency_us = (uint32_t)rand_u64();
		rand_bytes(&r.prev_hash, pbuf, sizeof(pbuf));
		rand_bytes(&r.signature, sbuf, sizeof(sbuf));
		r.request_id = rand_u64();
		r.session_id = rand_u64();
		r.message = rand_string(msg, sizeof(msg));

		m = wfpbroker__v1__audit_record__pack(&r, theirs);
		n = wfpb__audit_encode(&r, mine, sizeof(mine));
		assert_int_equal(n, m);
		assert_memory_equal(mine, theirs, m);
		/* Too little room is refused, never overrun; exactly enough is fine. */
		if (r.seq != 0)	/* a stamped record is never empty, so 0 can mean "does not fit" */
			assert_int_equal(wfpb__audit_encode(&r, mine, m - 1), 0);
		assert_int_equal(wfpb__audit_encode(&r, mine, m), m);
	}
}

/*
 * Every field the .proto gives AuditRecord, Principal and Address, set through protobuf-c's
 * descriptors rather than by name: a field added to the contract and not to the hand-written
 * encoder shows here as a difference from protobuf-c, instead of silently staying out of the
 * signed chain.
 */
struct filler {
	uint8_t	pool[16384];
	size_t	used;
	unsigned seed;
};

static void *
fill_alloc(struct filler *f, size_t n)
{
	void *p;

	n = (n + 15u) & ~(size_t)15u;
	assert_true(f->used + n <= sizeof(f->pool));
	p = f->pool + f->used;
	f->used += n;
	memset(p, 0, n);
	return p;
}

static void fill_message(struct filler *f, const ProtobufCMessageDescriptor *d, ProtobufCMessage *m, unsigned depth);

/* One non-default value of field fd's type at p. */
static void
fill_value(struct filler *f, const ProtobufCFieldDescriptor *fd, void *p, unsigned depth)
{
	const ProtobufCEnumDescriptor	*ed;
	ProtobufCBinaryData		*b;
	char				*s;

	f->seed++;
	switch (fd->type) {
	case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_FIXED32: case PROTOBUF_C_TYPE_SFIXED32:
		*(uint32_t *)p = 1000u + f->seed;
		break;
	case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_FIXED64: case PROTOBUF_C_TYPE_SFIXED64:
		*(uint64_t *)p = 0x123456789ull + f->seed;
		break;
	case PROTOBUF_C_TYPE_BOOL:
		*(protobuf_c_boolean *)p = 1;
		break;
	case PROTOBUF_C_TYPE_ENUM:
		ed = fd->descriptor;
		*(int *)p = ed->values[ed->n_values - 1].value;	/* the last value, never the zero default */
		break;
	case PROTOBUF_C_TYPE_STRING:
		s = fill_alloc(f, 32);
		snprintf(s, 32, "%s-%u", fd->name, f->seed);
		*(char **)p = s;
		break;
	case PROTOBUF_C_TYPE_BYTES:
		b = p;
		b->len = 3 + f->seed % 5;
		b->data = fill_alloc(f, b->len);
		memset(b->data, (int)f->seed, b->len);
		break;
	case PROTOBUF_C_TYPE_MESSAGE: {
		const ProtobufCMessageDescriptor	*md = fd->descriptor;
		ProtobufCMessage			*sub = fill_alloc(f, md->sizeof_message);

		md->message_init(sub);
		fill_message(f, md, sub, depth + 1);
		*(ProtobufCMessage **)p = sub;
		break;
	}
	default:
		fail_msg("field %s: a type this test does not fill yet (%d)", fd->name, (int)fd->type);
	}
}

static size_t
value_size(const ProtobufCFieldDescriptor *fd)
{
	switch (fd->type) {
	case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_FIXED64: case PROTOBUF_C_TYPE_SFIXED64:
		return sizeof(uint64_t);
	case PROTOBUF_C_TYPE_STRING: case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(void *);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	default:
		return sizeof(uint32_t);
	}
}

static void
fill_message(struct filler *f, const ProtobufCMessageDescriptor *d, ProtobufCMessage *m, unsigned depth)
{
	unsigned i, k;

	assert_true(depth < 4);
	for (i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor	*fd = &d->fields[i];
		uint8_t				*at = (uint8_t *)m + fd->offset;

		if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t	n = 2, sz = value_size(fd);
			uint8_t	*arr = fill_alloc(f, n * sz);

			for (k = 0; k < n; k++)
				fill_value(f, fd, arr + k * sz, depth);
			*(size_t *)((uint8_t *)m + fd->quantifier_offset) = n;
			*(void **)at = arr;
			continue;
		}
		if (fd->label == PROTOBUF_C_LABEL_OPTIONAL && fd->quantifier_offset != 0 &&
		    fd->type != PROTOBUF_C_TYPE_MESSAGE && fd->type != PROTOBUF_C_TYPE_STRING)
			*(protobuf_c_boolean *)((uint8_t *)m + fd->quantifier_offset) = 1;
		fill_value(f, fd, at, depth);
	}
}

static void
encoder_covers_every_field_of_the_contract(void **state)
{
	static struct filler	f;
	static uint8_t		mine[WFPB_AUDIT_RECORD_MAX], theirs[WFPB_AUDIT_RECORD_MAX];
	Wfpbroker__V1__AuditRecord r = WFPBROKER__V1__AUDIT_RECORD__INIT;
	size_t			m, n;

	(void)state;
	memset(&f, 0, sizeof(f));
	fill_message(&f, &wfpbroker__v1__audit_record__descriptor, &r.base, 0);
	/* Each of the three messages has every field set, so each must appear in protobuf-c's bytes. */
	assert_non_null(r.principal);
	assert_int_equal(r.n_addresses, 2);
	m = wfpbroker__v1__audit_record__pack(&r, theirs);
	n = wfpb__audit_encode(&r, mine, sizeof(mine));
	if (n != m || memcmp(mine, theirs, m) != 0)
		fail_msg("the hand-written audit encoder (service/core/audit_encode.c) does not write what protobuf-c "
		    "writes for a record with every field of the .proto set (%zu bytes against %zu): a field was added "
		    "to AuditRecord, Principal or Address without the encoder", n, m);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(encoder_matches_protobuf_c),
		cmocka_unit_test(encoder_covers_every_field_of_the_contract),
		cmocka_unit_test(commit_in_three_steps_keeps_order_through_a_failure),
		cmocka_unit_test(clean_log_verifies),
		cmocka_unit_test(tampering_is_named),
		cmocka_unit_test(cut_and_dropped_checkpoint_are_visible),
		cmocka_unit_test(reopen_truncates_a_torn_tail_and_continues),
		cmocka_unit_test(tampered_log_is_never_extended),
		cmocka_unit_test(rotation_carries_the_chain_across_files),
		cmocka_unit_test(rotation_goes_on_while_a_reader_holds_the_log),
		cmocka_unit_test(interrupted_rotation_is_completed_or_discarded),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
