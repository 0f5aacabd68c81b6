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

#endif
