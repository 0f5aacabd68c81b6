/* SPDX-License-Identifier: Apache-2.0 */
/* Group Policy over the configuration file (gpo.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpo.h"

const char *
wfpb_setting_source_name(int source)
{
	return source == WFPB_FROM_POLICY ? "Group Policy" : source == WFPB_FROM_FILE ? "configuration file" : "default";
}

static int
from(int differs)
{
	return differs ? WFPB_FROM_FILE : WFPB_FROM_DEFAULT;
}

/* Admin for the policy's group alone: its principal first, and the grant withdrawn from the file's. */
static int
admin_group(struct wfpb_config *cfg, const char *sid, char *err, size_t cap)
{
	struct wfpb_principal	*p;
	size_t			i;

	if ((p = calloc(cfg->nprincipals + 1, sizeof(*p))) == NULL) {
		snprintf(err, cap, "Group Policy AdminGroup: out of memory");
		return -1;
	}
	snprintf(p[0].name, sizeof(p[0].name), "group-policy-administrators");
	snprintf(p[0].group_sid, sizeof(p[0].group_sid), "%s", sid);
	p[0].perms = WFPB_PERM_ADMIN;
	for (i = 0; i < cfg->nprincipals; i++) {
		p[i + 1] = cfg->principals[i];
		p[i + 1].perms &= ~(unsigned)WFPB_PERM_ADMIN;
	}
	free(cfg->principals);
	cfg->principals = p;
	cfg->nprincipals++;
	return 0;
}

int
wfpb_config_apply_gpo(struct wfpb_config *cfg, const struct wfpb_config *base, const struct wfpb_gpo *g,
    struct wfpb_setting_sources *src, char *err, size_t cap)
{
	size_t i;

	memset(src, 0, sizeof(*src));
	src->config_file = g->config_file[0] != '\0' ? WFPB_FROM_POLICY : WFPB_FROM_DEFAULT;
	src->backend = from(strcmp(cfg->backend, base->backend) != 0);
	src->audit_log = from(strcmp(cfg->audit_log, base->audit_log) != 0);
	src->audit_keep_files = from(cfg->audit_keep_files != base->audit_keep_files);
	src->audit_max_bytes = from(cfg->audit_max_bytes != base->audit_max_bytes);
	src->admin_group = WFPB_FROM_DEFAULT;
	for (i = 0; i < cfg->nprincipals; i++)
		if (cfg->principals[i].perms & WFPB_PERM_ADMIN)
			src->admin_group = WFPB_FROM_FILE;
	if (g->backend[0] != '\0') {
		if (strcmp(g->backend, "wfp") != 0 && strcmp(g->backend, "sim") != 0 && strcmp(g->backend, "netfilter") != 0) {
			snprintf(err, cap, "Group Policy Backend \"%s\": not a backend (wfp, sim)", g->backend);
			return -1;
		}
		snprintf(cfg->backend, sizeof(cfg->backend), "%s", g->backend);
		src->backend = WFPB_FROM_POLICY;
	}
	if (g->audit_log[0] != '\0') {
		snprintf(cfg->audit_log, sizeof(cfg->audit_log), "%s", g->audit_log);
		src->audit_log = WFPB_FROM_POLICY;
	}
	if (g->has_keep_files) {
		cfg->audit_keep_files = g->audit_keep_files;
		src->audit_keep_files = WFPB_FROM_POLICY;
	}
	if (g->has_max_kib) {
		cfg->audit_max_bytes = (uint64_t)g->audit_max_kib * 1024u;
		src->audit_max_bytes = WFPB_FROM_POLICY;
	}
	if (g->admin_group[0] != '\0') {
		if (admin_group(cfg, g->admin_group, err, cap) != 0)
			return -1;
		src->admin_group = WFPB_FROM_POLICY;
	}
	return 0;
}
