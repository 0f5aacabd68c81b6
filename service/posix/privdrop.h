/* SPDX-License-Identifier: Apache-2.0 */
/* wfpbrokerd --user (privdrop_linux.c): started as root, the broker becomes its own user. */
#ifndef WFPB_PRIVDROP_H
#define WFPB_PRIVDROP_H

#include <stddef.h>
#include <sys/types.h>

/* A user name, or UID[:GID], into *uid and *gid (never uid 0): 0, or -1 with err set. */
int wfpb__user_parse(const char *spec, uid_t *uid, gid_t *gid, char *err, size_t cap);

/*
 * dir made with mode and given to uid:gid, or already a directory of uid's (one of anybody
 * else's is refused, never given away): 0, or -1 with err set.
 */
int wfpb__own_dir(const char *dir, mode_t mode, uid_t uid, gid_t gid, char *err, size_t cap);

/*
 * Becomes uid:gid with no supplementary groups, keeping CAP_NET_ADMIN and CAP_NET_BIND_SERVICE
 * alone (effective, permitted and bounding), with no_new_privs and root's special treatment off
 * and locked: what the packaged unit gives the broker. Needs root. 0, or -1 with err set.
 */
int wfpb__drop_to(uid_t uid, gid_t gid, char *err, size_t cap);

#endif
