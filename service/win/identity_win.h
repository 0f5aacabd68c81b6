/* SPDX-License-Identifier: Apache-2.0 */
/* Pipe client identity (identity_win.c). */
#ifndef WFPB_IDENTITY_WIN_H
#define WFPB_IDENTITY_WIN_H

#include <windows.h>

#include "broker.h"

/*
 * Fills id for the client of a connected pipe that has already sent data.
 * id->known stays 0 when any part the policy needs could not be read, or
 * when the process the pipe names cannot be opened or runs as another user
 * than the pipe's client token. On success id->process is a handle that pins
 * that process (wfpb__net_pin_process: SYNCHRONIZE and
 * PROCESS_QUERY_LIMITED_INFORMATION only), which the caller closes when the
 * connection ends.
 */
void wfpb__identify_pipe_client(HANDLE pipe, struct wfpb_identity *id);

#endif
