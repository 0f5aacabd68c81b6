/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Descriptors over a Unix stream socket (SCM_RIGHTS), for the broker and
 * libwfpb alike (fdpass_posix.c). POSIX builds only.
 */
#ifndef WFPB_FDPASS_POSIX_H
#define WFPB_FDPASS_POSIX_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* sendmsg() of len bytes, with fd (>= 0) attached to the first byte. Returns what sendmsg returns. */
ssize_t wfpb__send_fd(int sock, const uint8_t *p, size_t len, int fd, int flags);

/*
 * recvmsg() into buf, collecting up to max received descriptors into fds
 * (*n of them, close-on-exec); any beyond max are closed at once.
 * Returns what recvmsg returns.
 */
ssize_t wfpb__recv_fds(int sock, uint8_t *buf, size_t cap, int *fds, unsigned max, unsigned *n, int flags);

#endif
