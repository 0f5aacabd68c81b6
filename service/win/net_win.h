/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Test hook of the Windows socket contract (net_win.c): the probe that tells
 * whether a handle pulled from a client is a stream socket. It is the one
 * step that may wait on what the client named (a synchronous file with a
 * read pending answers no query until the read completes), which Wine never
 * does; tests inject a probe that waits, named for what it is.
 */
#ifndef WFPB_NET_WIN_H
#define WFPB_NET_WIN_H

#include <stdint.h>

/* 1 when h is a stream socket, else 0 with the WSA error in *os_err. */
typedef int (*wfpb_pull_probe_fn)(intptr_t h, int *os_err);

/* Replaces the probe (NULL: the real one); returns the previous. */
wfpb_pull_probe_fn wfpb__net_set_pull_probe(wfpb_pull_probe_fn probe);

/*
 * WSAPoll as the connect check calls it. Windows 10 before version 2004 (build
 * 19041) and Server 2019 never report a failed connect through WSAPoll; a test
 * injects that behaviour (a poll that never says ready), which Wine's does not
 * have, named for what it is.
 */
typedef int (*wfpb_wsapoll_fn)(void *fds, unsigned long n, int timeout);

/* How many sockets this process has duplicated into clients (WSADuplicateSocketW that succeeded). */
uint64_t wfpb__net_handovers(void);

/* Replaces the poll (NULL: the real WSAPoll); returns the previous. */
wfpb_wsapoll_fn wfpb__net_set_wsapoll(wfpb_wsapoll_fn fn);

#endif
