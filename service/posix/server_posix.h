/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The POSIX front end: a Unix-socket listener and one epoll loop that moves
 * bytes between sockets and core sessions. Identity comes from SO_PEERCRED.
 */
#ifndef WFPB_SERVER_POSIX_H
#define WFPB_SERVER_POSIX_H

#include "broker.h"

struct wfpb_server_opts {
	int		notify;		/* send READY=1 to $NOTIFY_SOCKET once listening */
};

/*
 * Creates the socket (directory root-owned, socket 0660, group from config),
 * serves until SIGTERM or SIGINT (SIGHUP reloads the configuration file the
 * broker was given), then closes every session. Returns 0 after
 * a clean stop or a negative WFPB_E_* when the endpoint cannot be set up.
 */
int WFPB_MUST_CHECK wfpb_server_run(struct wfpb_broker *b, const struct wfpb_server_opts *opts);

#endif
