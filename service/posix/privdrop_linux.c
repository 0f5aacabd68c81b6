/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wfpbrokerd --user: what the packaged systemd unit does for the broker (User=, Group=,
 * RuntimeDirectory=, StateDirectory=, CapabilityBoundingSet=, AmbientCapabilities=,
 * NoNewPrivileges=, SecureBits=noroot-locked), done by the broker itself when it is started
 * as root by another init: its directories made and given to its user, then that user with
 * CAP_NET_ADMIN and CAP_NET_BIND_SERVICE only.
 */
#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/securebits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log.h"
#include "privdrop.h"

/* The capabilities the broker keeps: SO_MARK and SO_ORIGINAL_DST's peers, and low ports a policy names. */
#define KEPT	((1u << CAP_NET_ADMIN) | (1u << CAP_NET_BIND_SERVICE))

int
wfpb__user_parse(const char *spec, uid_t *uid, gid_t *gid, char *err, size_t cap)
{
	const struct passwd	*pw;
	unsigned long		u, g;
	char			*end;

	if ((pw = getpwnam(spec)) != NULL) {
		*uid = pw->pw_uid;
		*gid = pw->pw_gid;
	} else if ((u = strtoul(spec, &end, 10)), end != spec && (*end == '\0' || *end == ':')) {
		g = u;
		if (*end == ':' && ((g = strtoul(end + 1, &end, 10)), *end != '\0'))
			goto bad;
		*uid = (uid_t)u;
		*gid = (gid_t)g;
	} else {
		goto bad;
	}
	if (*uid == 0) {
		snprintf(err, cap, "--user %s: the broker does not run as root (uid 0)", spec);
		return -1;
	}
	return 0;
bad:
	snprintf(err, cap, "--user %s: no such user (a name, or UID[:GID])", spec);
	return -1;
}

int
wfpb__own_dir(const char *dir, mode_t mode, uid_t uid, gid_t gid, char *err, size_t cap)
{
	struct stat st;

	if (mkdir(dir, mode) == 0) {
		if (chown(dir, uid, gid) != 0 || chmod(dir, mode) != 0) {
			snprintf(err, cap, "%s: cannot give it to uid %u: %s", dir, (unsigned)uid, strerror(errno));
			return -1;
		}
		return 0;
	}
	if (errno != EEXIST) {
		snprintf(err, cap, "mkdir %s: %s", dir, strerror(errno));
		return -1;
	}
	/* One that exists is taken only as the user's already: never a directory of someone else's given away. */
	if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != uid) {
		snprintf(err, cap, "%s exists and is not a directory of uid %u: create it for that user, or remove it",
		    dir, (unsigned)uid);
		return -1;
	}
	return 0;
}

int
wfpb__drop_to(uid_t uid, gid_t gid, char *err, size_t cap)
{
	struct __user_cap_header_struct	hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct	data[2];
	int				c;

	/* The bounding set first, while CAP_SETPCAP is still ours: no later exec can gain the rest. */
	for (c = 0; c <= 63; c++)
		if (!(c < 32 && (KEPT & (1u << c))) && prctl(PR_CAPBSET_DROP, c, 0, 0, 0) != 0 && errno != EINVAL) {
			snprintf(err, cap, "dropping capability %d from the bounding set: %s", c, strerror(errno));
			return -1;
		}
	/* Root is no longer special for this process, and the capabilities survive the change of uid. */
	if (prctl(PR_SET_SECUREBITS, SECBIT_KEEP_CAPS | SECBIT_NOROOT | SECBIT_NOROOT_LOCKED, 0, 0, 0) != 0 ||
	    setgroups(0, NULL) != 0 || setgid(gid) != 0 || setuid(uid) != 0) {
		snprintf(err, cap, "becoming uid %u gid %u: %s", (unsigned)uid, (unsigned)gid, strerror(errno));
		return -1;
	}
	memset(data, 0, sizeof(data));
	data[0].effective = data[0].permitted = KEPT;
	if (syscall(SYS_capset, &hdr, data) != 0 || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
		snprintf(err, cap, "keeping CAP_NET_ADMIN and CAP_NET_BIND_SERVICE alone: %s", strerror(errno));
		return -1;
	}
	/* Checked, not assumed: a uid that could be set back to 0 would be no drop at all. */
	if (setuid(0) == 0 || getuid() != uid || geteuid() != uid) {
		snprintf(err, cap, "the change to uid %u did not hold", (unsigned)uid);
		return -1;
	}
	return 0;
}
