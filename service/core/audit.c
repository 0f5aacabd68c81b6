/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Audit log writer: group commit, checkpoints, rotation, retention. Reading
 * and verifying a log is audit_format.c, which wfpbctl links without the rest
 * of the core.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "audit.h"
#include "wfpbroker.pb-c.h"

typedef Wfpbroker__V1__AuditRecord AuditRecord;

int
wfpb_audit_open(struct wfpb_audit *a, const char *path, const unsigned char sk[64], uint32_t checkpoint_every,
    uint32_t checkpoint_ms, uint64_t now_ms, char *err, size_t errlen)
{
	struct wfpb_audit_report	rep;
	uint8_t				*buf = NULL, pk[crypto_sign_PUBLICKEYBYTES];
	size_t				len = 0;
	int				os_err = 0, rc;

	memset(a, 0, sizeof(*a));
	a->f = WFPB_FILE_NONE;
	snprintf(a->path, sizeof(a->path), "%s", path);
	a->checkpoint_every = checkpoint_every;
	a->checkpoint_ms = checkpoint_ms;
	a->last_checkpoint_ms = now_ms;
	if ((a->sign_sk = sodium_malloc(64)) == NULL)
		return WFPB_E_NOMEM;
	memcpy(a->sign_sk, sk, 64);
	sodium_mprotect_readonly(a->sign_sk);
	crypto_sign_ed25519_sk_to_pk(pk, sk);

	{
		char		next[sizeof(a->path) + 8];
		uint8_t		*probe;
		size_t		plen;
		int		e2;

		/* An interrupted rotation: finish it (PATH gone) or drop its half-made file (PATH intact). */
		snprintf(next, sizeof(next), "%s.next", path);
		probe = NULL;
		if (wfpb__file_read_all(path, 1, &probe, &plen, &e2) == WFPB_E_NOENT) {
			/* No next either is a first start; a next that cannot take PATH's place stops it. */
			if (wfpb__file_rename_durable(next, path, &e2) != 0 && e2 != ENOENT) {	/* ERROR_FILE_NOT_FOUND is 2 too */
				snprintf(err, errlen, "cannot finish the interrupted rotation of %s (error %d)", path, e2);
				return WFPB_E_OS;
			}
		} else {
			(void)remove(next);
		}
		free(probe);
	}
	rc = wfpb__file_read_all(path, WFPB_AUDIT_FILE_MAX, &buf, &len, &os_err);
	if (rc != 0 && rc != WFPB_E_NOENT) {
		snprintf(err, errlen, "cannot read %s (error %d)", path, os_err);
		return rc;
	}
	if (wfpb_audit_verify(buf, len, pk, &rep) != 0) {
		snprintf(err, errlen, "%s does not verify at seq %llu: %s; refusing to extend it", path,
		    (unsigned long long)rep.bad_seq, rep.error);
		free(buf);
		return WFPB_E_DECODE;
	}
	free(buf);
	if ((rc = wfpb__file_open_append(path, &a->f, &a->size, &os_err)) != 0) {
		snprintf(err, errlen, rc == WFPB_E_ACCESS ? "%s is held by another broker" :
		    "cannot open %s for appending", path);
		return rc;
	}
	if (rep.torn) {
		/* A crash cut the last record short: it was never acknowledged, so it goes. */
		if ((rc = wfpb__file_truncate(a->f, rep.valid_len, &os_err)) != 0 ||
		    (rc = wfpb__file_sync(a->f, &os_err)) != 0) {
			snprintf(err, errlen, "cannot truncate the torn tail of %s (error %d)", path, os_err);
			return rc;
		}
		a->size = rep.valid_len;
	}
	a->next_seq = rep.last_seq + 1;
	a->durable_seq = rep.last_seq;
	a->pending_last_seq = rep.last_seq;
	memcpy(a->prev_hash, rep.last_hash, sizeof(a->prev_hash));
	return 0;
}

/* Encodes r onto the pending queue and advances the chain. stamp: fill seq, time and prev_hash. */
static int
queue(struct wfpb_audit *a, AuditRecord *r, int stamp)
{
	uint8_t	*p;
	size_t	body, need, room;

	if (stamp) {
		/* What could not be written before it is counted in the next record that is. */
		r->lost = a->dropped - a->dropped_noted;
		r->seq = a->next_seq;
		r->time_unix_ms = wfpb__wall_ms();
		r->prev_hash.data = a->prev_hash;
		r->prev_hash.len = sizeof(a->prev_hash);
	}
	/* Room for the largest record, or what the queue has left; the encoder says how much it took. */
	if (a->pending_len + 4 >= WFPB_AUDIT_PENDING_MAX) {
		a->dropped++;
		return -1;
	}
	room = WFPB_AUDIT_PENDING_MAX - a->pending_len - 4;
	if (room > WFPB_AUDIT_RECORD_MAX)
		room = WFPB_AUDIT_RECORD_MAX;
	need = a->pending_len + 4 + room;
	if (need > a->pending_cap) {
		size_t cap = a->pending_cap ? a->pending_cap : 4096;

		while (cap < need)
			cap *= 2;
		if ((p = realloc(a->pending, cap)) == NULL) {
			a->dropped++;
			return -1;
		}
		a->pending = p;
		a->pending_cap = cap;
	}
	p = a->pending + a->pending_len;
	if ((body = wfpb__audit_encode(r, p + 4, room)) == 0) {
		if (room == WFPB_AUDIT_RECORD_MAX)
			abort();	/* records are bounded by construction */
		a->dropped++;		/* the queue is full */
		return -1;
	}
	p[0] = (uint8_t)(body >> 24);
	p[1] = (uint8_t)(body >> 16);
	p[2] = (uint8_t)(body >> 8);
	p[3] = (uint8_t)body;
	wfpb__audit_chain_hash(p, body + 4, a->prev_hash);
	a->pending_len += 4 + body;
	a->pending_last_seq = a->next_seq++;
	if (stamp)
		a->dropped_noted += r->lost;
	return 0;
}

uint64_t
wfpb_audit_checkpoint(struct wfpb_audit *a, uint64_t now_ms, const char *note)
{
	AuditRecord	r = WFPBROKER__V1__AUDIT_RECORD__INIT;
	uint8_t		sig[crypto_sign_BYTES], *sb;
	size_t		sl;
	uint8_t		prev[WFPB_AUDIT_HASH_LEN];

	r.kind = WFPBROKER__V1__AUDIT_KIND__AUDIT_CHECKPOINT;
	r.op = (char *)(uintptr_t)"checkpoint";
	if (note != NULL)
		r.message = (char *)(uintptr_t)note;
	/* Sign exactly what queue() will encode: seq, time and prev_hash fixed first. */
	memcpy(prev, a->prev_hash, sizeof(prev));
	r.seq = a->next_seq;
	r.time_unix_ms = wfpb__wall_ms();
	r.prev_hash.data = prev;
	r.prev_hash.len = sizeof(prev);
	if (wfpb__audit_signed_bytes(&r, &sb, &sl) != 0)
		return 0;
	crypto_sign_detached(sig, NULL, sb, sl, a->sign_sk);
	free(sb);
	r.signature.data = sig;
	r.signature.len = sizeof(sig);
	if (queue(a, &r, 0) != 0)
		return 0;
	a->cp_seq = a->pending_last_seq;
	memcpy(a->cp_hash, a->prev_hash, sizeof(a->cp_hash));
	a->since_checkpoint = 0;
	a->last_checkpoint_ms = now_ms;
	return a->pending_last_seq;
}

int
wfpb_audit_anchor(struct wfpb_audit *a, uint64_t *seq, uint8_t hash[WFPB_AUDIT_HASH_LEN])
{
	if (a->cp_seq == 0 || a->cp_seq <= a->anchored_seq || a->durable_seq < a->cp_seq)
		return 0;
	a->anchored_seq = a->cp_seq;
	*seq = a->cp_seq;
	memcpy(hash, a->cp_hash, WFPB_AUDIT_HASH_LEN);
	return 1;
}


int
wfpb_audit_checkpoint_due(const struct wfpb_audit *a, uint64_t now_ms)
{
	if (a->since_checkpoint == 0)
		return 0;
	if (a->since_checkpoint >= a->checkpoint_every)
		return 1;
	/* A caller without a clock passes 0: that never makes a checkpoint due by time. */
	return now_ms >= a->last_checkpoint_ms && now_ms - a->last_checkpoint_ms >= a->checkpoint_ms;
}

int
wfpb_audit_share_with_group(struct wfpb_audit *a, int *os_err)
{
	a->group_read = 1;
	return wfpb__file_share_group(a->f, os_err);
}

int
wfpb_audit_has_room(const struct wfpb_audit *a, size_t reserve)
{
	return a->pending_len + 4 + WFPB_AUDIT_RECORD_MAX + reserve <= WFPB_AUDIT_PENDING_MAX;
}

uint64_t
wfpb_audit_append(struct wfpb_audit *a, AuditRecord *rec, uint64_t now_ms)
{
	uint64_t seq;

	if (queue(a, rec, 1) != 0)
		return 0;
	seq = a->pending_last_seq;
	a->since_checkpoint++;
	if (wfpb_audit_checkpoint_due(a, now_ms))
		(void)wfpb_audit_checkpoint(a, now_ms, NULL);
	return seq;
}

/* Writes and syncs the queue; 0 or WFPB_E_OS (the writer turns broken). */
static int
flush_queue(struct wfpb_audit *a)
{
	int os_err = 0, rc;

	if (a->pending_len == 0)
		return 0;
	if ((rc = wfpb__file_write(a->f, a->pending, a->pending_len, &os_err)) != 0 ||
	    (rc = wfpb__file_sync(a->f, &os_err)) != 0) {
		a->broken = 1;
		a->os_err = os_err;
		return WFPB_E_OS;
	}
	a->size += a->pending_len;
	a->pending_len = 0;
	__atomic_store_n(&a->durable_seq, a->pending_last_seq, __ATOMIC_RELEASE);	/* read outside the core lock */
	return 0;
}

static int
cmp_u64(const void *x, const void *y)
{
	uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;

	return a < b ? -1 : a > b;
}

#define PRUNE_LIST_MAX	4096u	/* rotated files looked at per rotation; older ones go at the next */

/*
 * Retention: only the keep_files newest rotated files stay. Each new file
 * names the one it continues, and `audit verify` checks a set that starts
 * at a continuation, so what remains still verifies; a follower or shipper
 * must have taken the older ones (docs/AUDIT.md).
 */
static void
prune(struct wfpb_audit *a)
{
	uint64_t	*seqs;
	size_t		n = 0, i, listed;
	char		name[sizeof(a->path) + 24];
	int		os_err;

	if (a->keep_files == 0 || (seqs = malloc(PRUNE_LIST_MAX * sizeof(*seqs))) == NULL)
		return;
	if (wfpb__file_rotated(a->path, seqs, PRUNE_LIST_MAX, &n, &os_err) == 0) {
		listed = n < PRUNE_LIST_MAX ? n : PRUNE_LIST_MAX;
		qsort(seqs, listed, sizeof(*seqs), cmp_u64);
		for (i = 0; listed > a->keep_files && i < listed - a->keep_files; i++) {
			snprintf(name, sizeof(name), "%s.%llu", a->path, (unsigned long long)seqs[i]);
			if (remove(name) == 0)
				a->pruned++;
		}
	}
	free(seqs);
}

/*
 * Seals the current file with a checkpoint, moves it to PATH.LASTSEQ and
 * continues the chain in a new PATH. On any failure the writer stays on the
 * old file (still valid) and tries again at the next commit past the limit.
 */
static void
rotate(struct wfpb_audit *a, uint64_t now_ms)
{
	char		old[sizeof(a->path) + 32], next[sizeof(a->path) + 8], note[sizeof(a->path) + 48];
	const char	*base;
	uint64_t	size;
	wfpb_file	nf;
	int		os_err;

	if (wfpb_audit_checkpoint(a, now_ms, "sealed for rotation") == 0 || flush_queue(a) != 0)
		return;
	snprintf(old, sizeof(old), "%s.%llu", a->path, (unsigned long long)a->durable_seq);
	snprintf(next, sizeof(next), "%s.next", a->path);
	base = strrchr(old, '/');
	if (base == NULL)
		base = strrchr(old, '\\');
	snprintf(note, sizeof(note), "continues %s", base ? base + 1 : old);
	/*
	 * The new file is complete (its continuation checkpoint durable) before
	 * either rename, so a crash leaves one of: PATH + a stale PATH.next
	 * (discarded at open), or PATH.SEQ + PATH.next (renamed into place at
	 * open). The chain never restarts.
	 */
	(void)remove(next);
	if (wfpb__file_open_append(next, &nf, &size, &os_err) != 0)
		return;
	if (a->group_read && wfpb__file_share_group(nf, &os_err) != 0) {
		wfpb__file_close(nf);
		(void)remove(next);
		return;
	}
	{
		wfpb_file cur = a->f;
		uint64_t cur_size = a->size;

		a->f = nf;
		a->size = 0;
		if (wfpb_audit_checkpoint(a, now_ms, note) == 0 || flush_queue(a) != 0) {
			/* The queue still holds the checkpoint's chain step: undo by staying broken. */
			wfpb__file_close(nf);
			(void)remove(next);
			a->f = cur;
			a->size = cur_size;
			a->broken = 1;
			return;
		}
		wfpb__file_close(cur);
	}
	wfpb__file_close(a->f);
	a->f = WFPB_FILE_NONE;
	/* Durable renames: a power loss must not bring back a PATH that drops the records written since. */
	if (wfpb__file_rename_durable(a->path, old, &os_err) != 0 || wfpb__file_rename_durable(next, a->path, &os_err) != 0 ||
	    wfpb__file_open_append(a->path, &a->f, &a->size, &os_err) != 0) {
		a->broken = 1;
		return;
	}
	a->rotations++;
	prune(a);
}

int
wfpb_audit_begin(struct wfpb_audit *a, uint64_t now_ms)
{
	uint8_t	*buf;
	size_t	cap;

	if (a->inflight)
		return 0;
	if (a->inflight_len > 0) {
		/* A batch that failed is written again first, whole and alone, after a cut back. */
		a->inflight_truncate = 1;
		a->inflight = 1;
		return 1;
	}
	if (wfpb_audit_checkpoint_due(a, now_ms) && a->pending_len == 0)
		(void)wfpb_audit_checkpoint(a, now_ms, NULL);
	if (a->pending_len == 0)
		return 0;
	/* The queue becomes the batch; the batch's old buffer becomes the (empty) queue. */
	buf = a->inflight_buf;
	cap = a->inflight_cap;
	a->inflight_buf = a->pending;
	a->inflight_cap = a->pending_cap;
	a->inflight_len = a->pending_len;
	a->pending = buf;
	a->pending_cap = cap;
	a->pending_len = 0;
	a->inflight_last_seq = a->pending_last_seq;
	a->inflight_truncate = a->broken;
	a->inflight_rc = 0;
	a->inflight_os_err = 0;
	a->inflight = 1;
	return 1;
}

void
wfpb_audit_flush_inflight(struct wfpb_audit *a)
{
	int os_err = 0, rc = WFPB_E_OS;

	/*
	 * A failed write may have left part of a batch in the file: cut back to
	 * the last durable byte before writing again, so the chain stays whole.
	 */
	if (a->f != WFPB_FILE_NONE && (!a->inflight_truncate || (rc = wfpb__file_truncate(a->f, a->size, &os_err)) == 0) &&
	    (rc = wfpb__file_write(a->f, a->inflight_buf, a->inflight_len, &os_err)) == 0)
		rc = wfpb__file_sync(a->f, &os_err);
	a->inflight_rc = rc;
	a->inflight_os_err = os_err;
}

int
wfpb_audit_end(struct wfpb_audit *a, uint64_t now_ms)
{
	uint64_t batch;

	if (!a->inflight)
		return 0;
	a->inflight = 0;
	if (a->inflight_rc != 0) {
		/*
		 * The batch stays as it is, ahead of whatever was queued since: the
		 * next begin writes it again before anything newer, so no record is
		 * lost or reordered and nothing is copied.
		 */
		a->broken = 1;
		a->os_err = a->inflight_os_err;
		return a->inflight_rc < 0 ? a->inflight_rc : WFPB_E_OS;
	}
	batch = a->inflight_last_seq - a->durable_seq;
	a->size += a->inflight_len;
	a->inflight_len = 0;
	__atomic_store_n(&a->durable_seq, a->inflight_last_seq, __ATOMIC_RELEASE);	/* read outside the core lock */
	a->commits++;
	a->committed_records += batch;
	if (batch > a->max_batch)
		a->max_batch = batch;
	a->broken = 0;
	a->os_err = 0;
	if (a->max_bytes != 0 && a->size >= a->max_bytes)
		rotate(a, now_ms);
	return 1;
}

int
wfpb_audit_commit(struct wfpb_audit *a, uint64_t now_ms)
{
	int rc = 0;

	if (a->inflight)
		return WFPB_E_STATE;	/* the owner finishes the batch in flight first */
	/* A batch that failed before goes first, then the queue: two rounds at most. */
	while (wfpb_audit_begin(a, now_ms) == 1) {
		wfpb_audit_flush_inflight(a);
		if ((rc = wfpb_audit_end(a, now_ms)) < 0)
			return rc;
	}
	return rc;
}

void
wfpb_audit_close(struct wfpb_audit *a)
{
	wfpb__file_close(a->f);
	a->f = WFPB_FILE_NONE;
	free(a->pending);
	a->pending = NULL;
	a->pending_len = a->pending_cap = 0;
	free(a->inflight_buf);
	a->inflight_buf = NULL;
	a->inflight_len = a->inflight_cap = 0;
	a->inflight = 0;
	sodium_free(a->sign_sk);
	a->sign_sk = NULL;
}
