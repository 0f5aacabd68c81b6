/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Windows front end: named-pipe instances on overlapped I/O and one I/O
 * completion port, served by a pool of workers ([service] workers; by
 * default one per processor, 2 to 8). A connection is served by one worker
 * at a time; what sessions share is under the broker's core lock, which
 * this server installs (broker.h). Identity comes from the pipe: the client
 * PID and its token, read at identification level.
 */
#ifndef WFPB_PIPE_SERVER_H
#define WFPB_PIPE_SERVER_H

#include <windows.h>

#include "broker.h"

/*
 * The pipe's DACL: SYSTEM and Administrators full control; Authenticated
 * Users read and write but not FILE_CREATE_PIPE_INSTANCE (0x4), so no
 * ordinary user can add an instance and squat the name; NETWORK and
 * Anonymous denied outright. Everyone else gets nothing (docs/SECURITY.md
 * explains why there is no deny-Everyone ACE).
 */
#define WFPB_PIPE_SDDL L"D:P(D;;GA;;;NU)(D;;GA;;;AN)(A;;GA;;;SY)(A;;GA;;;BA)(A;;0x12019b;;;AU)"

struct wfpb_pipe_server;

/*
 * Creates the first pipe instance (FILE_FLAG_FIRST_PIPE_INSTANCE) and the
 * completion port. Returns 0 or a negative WFPB_E_*; on success the name is
 * owned and clients can connect before wfpb_pipe_server_run is called.
 */
int WFPB_MUST_CHECK wfpb_pipe_server_new(struct wfpb_broker *b, struct wfpb_pipe_server **out);

/* Serves until wfpb_pipe_server_stop; then cancels I/O and closes sessions. */
int wfpb_pipe_server_run(struct wfpb_pipe_server *sv);

/* Asks the loop to stop. Safe from any thread (console or SCM handler). */
void wfpb_pipe_server_stop(struct wfpb_pipe_server *sv);

/* Has a worker re-read the configuration file, as SIGHUP does on POSIX (any thread may call it). */
void wfpb_pipe_server_reload(struct wfpb_pipe_server *sv);

void wfpb_pipe_server_free(struct wfpb_pipe_server *sv);

#endif
