/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Test hook of the netfilter backend (netfilter_linux.c): the getsockopt it
 * reads SO_ORIGINAL_DST with, so that a test can make conntrack answer what
 * the kernel here will not on demand (EACCES, EPERM), named for what it is.
 */
#ifndef WFPB_NETFILTER_H
#define WFPB_NETFILTER_H

#include <sys/socket.h>

typedef int (*wfpb_getsockopt_fn)(int fd, int level, int name, void *val, socklen_t *len);

/* Replaces the getsockopt used for SO_ORIGINAL_DST (NULL: the real one). */
void wfpb__nf_set_getsockopt(wfpb_getsockopt_fn fn);

#endif
