/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Append-only file I/O for the audit log, behind one internal contract that
 * service/posix/fileio_posix.c and service/win/fileio_win.c implement. Each
 * returns 0 or WFPB_E_OS with the OS error in *os_err.
 */
#ifndef WFPB_FILEIO_H
#define WFPB_FILEIO_H

#include <stddef.h>
#include <stdint.h>

#include "wfpb_error.h"

typedef intptr_t wfpb_file;
#define WFPB_FILE_NONE	((wfpb_file)-1)

/*
 * Opens (creating, mode 0600 / SYSTEM+Administrators) for appending, as the
 * only writer (WFPB_E_ACCESS when another process holds it); *size is the
 * current length.
 */
int WFPB_MUST_CHECK wfpb__file_open_append(const char *path, wfpb_file *out, uint64_t *size, int *os_err);
/*
 * Lets the file's group read it (POSIX: mode 0640 whatever the umask; the group is the
 * directory's when it is set-group-ID). Windows: nothing (the log stays SYSTEM and
 * Administrators'). 0, or WFPB_E_OS.
 */
int WFPB_MUST_CHECK wfpb__file_share_group(wfpb_file f, int *os_err);
int WFPB_MUST_CHECK wfpb__file_write(wfpb_file f, const uint8_t *p, size_t len, int *os_err);
/* Makes everything written so far durable (fdatasync / FlushFileBuffers). */
int WFPB_MUST_CHECK wfpb__file_sync(wfpb_file f, int *os_err);
int WFPB_MUST_CHECK wfpb__file_truncate(wfpb_file f, uint64_t len, int *os_err);
void wfpb__file_close(wfpb_file f);
/*
 * Opens a file for reading and says its size; WFPB_E_NOENT when absent. A
 * reader never stands in the broker's way: the file may be appended to,
 * rotated (renamed) and pruned (deleted) while it is open. Close it with
 * wfpb__file_close.
 */
int WFPB_MUST_CHECK wfpb__file_open_read(const char *path, wfpb_file *out, uint64_t *size, int *os_err);
/* Up to want bytes of f from offset off into a new malloc'd buffer (one byte more; fewer at the end). */
int WFPB_MUST_CHECK wfpb__file_pread(wfpb_file f, uint64_t off, size_t want, uint8_t **out, size_t *len);
/* Reads a whole file (at most max bytes) into a malloc'd buffer. WFPB_E_NOENT when absent. */
int WFPB_MUST_CHECK wfpb__file_read_all(const char *path, size_t max, uint8_t **out, size_t *len, int *os_err);
/*
 * Reads at most max bytes of a file from offset off (none when off is at or past its end) into a
 * malloc'd buffer; *size is the file's size. A follower reads only what is new this way.
 */
int WFPB_MUST_CHECK wfpb__file_read_at(const char *path, uint64_t off, size_t max, uint8_t **out, size_t *len,
    uint64_t *size, int *os_err);

/*
 * What a follower waits on between reads of the log at path: on Linux a watch
 * (inotify) of its directory for writes, creations and renames of the log and
 * its rotated files, so a record is read as soon as it is written; elsewhere,
 * or when no watch can be had (NULL), a plain sleep. _wait returns when
 * something changed or ms passed; _changed says, without waiting, whether
 * anything changed since it was last asked (or waited on).
 */
struct wfpb_file_watch;
struct wfpb_file_watch *wfpb__file_watch_open(const char *path);
void wfpb__file_watch_wait(struct wfpb_file_watch *w, unsigned ms);
int wfpb__file_watch_changed(struct wfpb_file_watch *w);
void wfpb__file_watch_close(struct wfpb_file_watch *w);

/*
 * A small file replaced whole and durably (a follower's cursor): data written to tmp, synced,
 * renamed over path. 0 or -1. A crash leaves the old path or the new one, never half of either.
 */
int wfpb__file_replace(const char *tmp, const char *path, const char *data, size_t len);

/*
 * rename(from, to) made durable: on POSIX the directory is synced after it (a
 * rename lives in the directory, which fsync of the file does not cover); on
 * Windows MoveFileExW with MOVEFILE_WRITE_THROUGH. 0 or -1 with *os_err.
 * wfpb__file_durable_renames counts those that succeeded, for tests.
 */
int WFPB_MUST_CHECK wfpb__file_rename_durable(const char *from, const char *to, int *os_err);
uint64_t wfpb__file_durable_renames(void);

/* Standard output synced when it is a file (0 too when it is a pipe or a terminal); -1 on failure. */
int wfpb__file_sync_stdout(void);

/*
 * The rotated siblings of the log at path: files in its directory named
 * BASENAME.N with N all digits. Writes up to cap of the N into seqs (in no
 * order) and how many there are in *n. 0 or WFPB_E_OS.
 */
int WFPB_MUST_CHECK wfpb__file_rotated(const char *path, uint64_t *seqs, size_t cap, size_t *n, int *os_err);

/* The process's resident memory and open descriptors/handles, each 0 when the OS does not say. */
void wfpb__process_usage(uint64_t *rss_bytes, uint32_t *open_handles);

/* This process's id (getpid / GetCurrentProcessId). */
uint32_t wfpb__process_id(void);

/* Wall-clock time in milliseconds since the Unix epoch. */
uint64_t wfpb__wall_ms(void);

#endif
