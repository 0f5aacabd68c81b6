/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Windows Group Policy for the broker: what an enterprise sets through Group Policy or Intune
 * under HKLM\SOFTWARE\Policies\wfpbroker (installer/windows/wfpbroker.admx), which takes
 * precedence over the configuration file. gpo.c applies it to a loaded configuration and says
 * where each setting came from; the registry is read by the platform (win/gpo_win.c; elsewhere
 * there is none).
 */
#ifndef WFPB_GPO_H
#define WFPB_GPO_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* The policy's settings as read; "" and has_* 0 where it sets none. */
struct wfpb_gpo {
	char		config_file[WFPB_PATH_MAX];	/* ConfigFile: the configuration's path */
	char		admin_group[WFPB_SID_MAX];	/* AdminGroup, as a SID: the one group that may administer */
	char		backend[16];			/* Backend */
	char		audit_log[WFPB_PATH_MAX];	/* AuditLog: the audit log's path */
	int		has_keep_files;
	uint32_t	audit_keep_files;		/* AuditKeepFiles */
	int		has_max_kib;
	uint32_t	audit_max_kib;			/* AuditMaxKiB */
};

/* Where an effective setting came from. */
enum wfpb_setting_source { WFPB_FROM_DEFAULT, WFPB_FROM_FILE, WFPB_FROM_POLICY };

struct wfpb_setting_sources {
	int	config_file, admin_group, backend, audit_log, audit_keep_files, audit_max_bytes;
};

/*
 * Reads HKLM\SOFTWARE\Policies\wfpbroker into *out (all unset where there is no such key or
 * platform). AdminGroup may be a SID or an account name; it is resolved to a SID here. 0, or
 * -1 with err set (a value of the wrong type or size, a group no one knows: a policy that
 * cannot be applied as written is not ignored).
 */
int wfpb__gpo_read(struct wfpb_gpo *out, char *err, size_t cap);

/*
 * Applies g to cfg (loaded from the file, or defaults: base), recording in *src where each
 * setting came from. The policy's admin group is then the only holder of admin: a principal
 * "group-policy-administrators" first, and admin withdrawn from every principal of the file.
 * 0, or -1 with err set (out of memory, a backend name that is not one).
 */
int wfpb_config_apply_gpo(struct wfpb_config *cfg, const struct wfpb_config *base, const struct wfpb_gpo *g,
    struct wfpb_setting_sources *src, char *err, size_t cap);

/* "default", "configuration file" or "Group Policy". */
const char *wfpb_setting_source_name(int source);

#endif
