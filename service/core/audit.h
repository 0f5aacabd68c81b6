/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The tamper-evident audit log (docs/AUDIT.md): an append-only file of
 * records, each a 4-byte big-endian length and a protobuf AuditRecord whose
 * prev_hash is the BLAKE2b-256 of the previous record's bytes (length
 * included). Every `checkpoint_every` records or `checkpoint_ms` a
 * checkpoint record is signed with the broker's Ed25519 audit key.
 *
 * Records are queued in memory and made durable in groups: one write and
 * one fdatasync/FlushFileBuffers for everything queued since the last
 * commit. A response that must wait for its record names the record's seq;
 * the platform releases it once wfpb_audit_durable() reaches that seq.
 * If the log cannot be written the writer turns `broken`: the broker then
 * refuses operations with effects (fail closed) and retries each commit.
 */
#ifndef WFPB_AUDIT_H
#define WFPB_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include "fileio.h"
#include "wfpb_error.h"

#define WFPB_AUDIT_HASH_LEN	32u
#define WFPB_AUDIT_RECORD_MAX	65536u	/* a longer length prefix is corruption */
#define WFPB_AUDIT_FILE_MAX	(1024u * 1024u * 1024u)
#define WFPB_AUDIT_PENDING_MAX	(4u * 1024u * 1024u)
/*
 * Of the queue, what only an administrator's requests may fill: while the log
 * cannot be written, Status (which says so) still answers, recorded, after a
 * principal's requests are refused. 256 KiB hold a hundred and more records.
 */
#define WFPB_AUDIT_ADMIN_RESERVE	(256u * 1024u)

struct wfpb_audit {
	char		path[512];
	wfpb_file	f;
	uint64_t	size;			/* bytes on disk (written) */
	uint64_t	next_seq;
	uint8_t		prev_hash[WFPB_AUDIT_HASH_LEN];
	uint8_t		*pending;		/* encoded records not yet written */
	size_t		pending_len, pending_cap;
	uint64_t	pending_last_seq;
	/*
	 * A batch being written and synced, by a committer thread or inline
	 * (wfpb_audit_begin / _flush_inflight / _end). While one is in flight
	 * only the flusher touches f, size and these fields.
	 */
	int		inflight;
	uint8_t		*inflight_buf;		/* with inflight 0 and a length: a failed batch to retry */
	size_t		inflight_len, inflight_cap;
	uint64_t	inflight_last_seq;
	int		inflight_truncate;	/* cut back to size first (after a failed write) */
	int		inflight_rc, inflight_os_err;
	uint64_t	durable_seq;		/* every record up to here is on stable storage */
	int		broken;			/* the last write or sync failed */
	int		os_err;
	unsigned char	*sign_sk;		/* Ed25519 secret key, sodium_malloc'd */
	uint32_t	checkpoint_every;
	uint32_t	checkpoint_ms;
	uint64_t	max_bytes;		/* rotate past this size; 0: never */
	uint32_t	keep_files;		/* rotated files kept after a rotation; 0: all */
	uint64_t	pruned;			/* rotated files removed by retention */
	/* The newest checkpoint queued (its seq and chain hash), and the newest reported as the anchor. */
	uint64_t	cp_seq;
	uint8_t		cp_hash[WFPB_AUDIT_HASH_LEN];
	uint64_t	anchored_seq;
	uint64_t	rotations;
	uint32_t	since_checkpoint;
	uint64_t	last_checkpoint_ms;
	uint64_t	last_commit_ms;
	/* Figures for Status and the benchmarks. */
	uint64_t	commits;
	uint64_t	committed_records;
	uint64_t	max_batch;
	uint64_t	dropped;		/* records lost while broken */
	uint64_t	dropped_noted;		/* of those, the ones a record written since counts (its `lost`) */
	int		group_read;		/* every file of the log is readable by its group (the follower's) */
};

/* What verification found (wfpb_audit_verify). */
struct wfpb_audit_report {
	uint64_t	records;
	uint64_t	last_seq;
	uint64_t	checkpoints;
	uint64_t	last_checkpoint_seq;	/* 0: none */
	uint64_t	first_seq;		/* 1, or where a rotated-in file continues the chain */
	uint8_t		first_prev_hash[WFPB_AUDIT_HASH_LEN];	/* the chain link to the previous file */
	size_t		valid_len;		/* bytes up to the end of the last good record */
	int		torn;			/* the file ends inside a record */
	uint64_t	bad_seq;		/* the first record that failed, or the one after the last good */
	uint64_t	lost;			/* records the broker says it could not write (their `lost`) */
	uint64_t	first_lost_seq;		/* the first record that says so; 0: none */
	char		error[192];		/* "" when the chain verified */
	uint8_t		last_hash[WFPB_AUDIT_HASH_LEN];
};

/*
 * Walks a log held in memory: framing, decoding, consecutive seq numbers,
 * the hash chain, and (if pubkey is not NULL) every checkpoint signature.
 * A file may start after seq 1 only with a signed checkpoint saying which
 * file it continues (rotation); report->first_seq and first_prev_hash then
 * let the caller check the link to that file.
 * Returns 0 when everything before a possibly torn tail verified, else
 * WFPB_E_DECODE with report->error and report->bad_seq naming the fault.
 */
int WFPB_MUST_CHECK wfpb_audit_verify(const uint8_t *buf, size_t len, const uint8_t *pubkey,
    struct wfpb_audit_report *report);

/*
 * Opens the log at path: verifies what is there, truncates a torn last
 * record, continues the chain. sk is the Ed25519 secret key (copied).
 * Returns 0, or WFPB_E_DECODE (the existing chain does not verify: the
 * broker refuses to start rather than extend a tampered log), WFPB_E_OS.
 */
int WFPB_MUST_CHECK wfpb_audit_open(struct wfpb_audit *a, const char *path, const unsigned char sk[64],
    uint32_t checkpoint_every, uint32_t checkpoint_ms, uint64_t now_ms, char *err, size_t errlen);

/* The format's two primitives, shared by the writer (audit.c) and the verifier (audit_format.c). */
void wfpb__audit_chain_hash(const uint8_t *framed, size_t len, uint8_t out[WFPB_AUDIT_HASH_LEN]);
struct Wfpbroker__V1__AuditRecord;
int wfpb__audit_signed_bytes(const struct Wfpbroker__V1__AuditRecord *r, uint8_t **out, size_t *len);

struct Wfpbroker__V1__AuditRecord;

/*
 * Queues one record; seq, time, prev_hash and signature are filled here (the
 * caller's struct is modified). A checkpoint follows it when one is due.
 * Returns the record's seq, or 0 when it could not be queued (the writer is
 * broken and its queue full: the record is counted as dropped).
 */
uint64_t wfpb_audit_append(struct wfpb_audit *a, struct Wfpbroker__V1__AuditRecord *rec, uint64_t now_ms);

/*
 * Encodes a record into out (cap bytes) exactly as protobuf-c would; returns
 * its length, or 0 when it does not fit (a stamped record, seq >= 1, is never
 * empty) (audit_encode.c).
 */
size_t wfpb__audit_encode(const struct Wfpbroker__V1__AuditRecord *r, uint8_t *out, size_t cap);

/* Queues a signed checkpoint now (at stop, at start, at rotation) with an optional note. Returns its seq or 0. */
uint64_t wfpb_audit_checkpoint(struct wfpb_audit *a, uint64_t now_ms, const char *note);

/*
 * Writes and syncs everything queued; then, past max_bytes, seals the file
 * with a checkpoint, renames it to PATH.SEQ (its last seq) and starts a new
 * PATH whose first record is a signed checkpoint naming it. Returns 1 when records became
 * durable, 0 when nothing was pending, or a negative code (now broken).
 */
int wfpb_audit_commit(struct wfpb_audit *a, uint64_t now_ms);

/*
 * The same commit in three steps, so the write and sync can run on another
 * thread while the caller goes on queueing records:
 *   wfpb_audit_begin         (owner's thread) moves the queue into the batch;
 *                            1 when there is one, 0 when nothing is queued or
 *                            a batch is already in flight
 *   wfpb_audit_flush_inflight (any one thread) writes and syncs the batch; it
 *                            touches nothing the owner uses meanwhile
 *   wfpb_audit_end           (owner's thread, after the flush) makes the
 *                            batch durable, or keeps it (turning broken) for
 *                            the next begin to write again before anything
 *                            queued since; returns as commit.
 */
int wfpb_audit_begin(struct wfpb_audit *a, uint64_t now_ms);
void wfpb_audit_flush_inflight(struct wfpb_audit *a);
int wfpb_audit_end(struct wfpb_audit *a, uint64_t now_ms);

/*
 * 1 when the queue can take one more record of any size and still keep reserve
 * bytes free; 0 when it is so full (the log cannot be written and records pile
 * up) that the next may be lost, or would eat into the reserve.
 */
int wfpb_audit_has_room(const struct wfpb_audit *a, size_t reserve);

/*
 * Makes the log readable by its group from now on: the current file and every
 * file rotation creates (audit_group_read; docs/AUDIT.md, "The follower's
 * user"). 0, or WFPB_E_OS.
 */
int WFPB_MUST_CHECK wfpb_audit_share_with_group(struct wfpb_audit *a, int *os_err);

/* 1 when a checkpoint is due (by count or time). */
int wfpb_audit_checkpoint_due(const struct wfpb_audit *a, uint64_t now_ms);

/*
 * The anchor: once the newest checkpoint is durable and not yet reported,
 * returns 1 with its seq and chain hash (what the next record's prev_hash
 * holds) and marks it reported; else 0. The broker reports it outside the
 * file (syslog, the Event Log) so a log cut back to an earlier checkpoint
 * can be told from a complete one (`audit verify --expect SEQ:HASH`).
 */
int wfpb_audit_anchor(struct wfpb_audit *a, uint64_t *seq, uint8_t hash[WFPB_AUDIT_HASH_LEN]);

/*
 * The chain hash of record seq in a log held in memory (the hash the record
 * after it carries as prev_hash). 0, or WFPB_E_NOENT when the log has no
 * such complete record.
 */
int wfpb_audit_hash_at(const uint8_t *buf, size_t len, uint64_t seq, uint8_t hash[WFPB_AUDIT_HASH_LEN]);

void wfpb_audit_close(struct wfpb_audit *a);

#endif
