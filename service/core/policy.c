/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Policy matching: which principal, if any, an identity the kernel reported
 * (and, for key matchers, the Noise static key the channel proved) is.
 * Default deny; the first section whose every matcher matches wins.
 */
#include <string.h>

#include <sodium.h>

#include "broker.h"

/* SID strings compare without regard to case ("s-1-5-32-544" is the same SID). */
static int
in_group_sids(const struct wfpb_identity *id, const char *sid)
{
	uint32_t	i;
	size_t		k;

	for (i = 0; i < id->ngroup_sids && i < WFPB_GROUP_SIDS_MAX; i++) {
		const char *g = id->group_sids[i];

		for (k = 0; g[k] != '\0' && sid[k] != '\0'; k++)
			if ((g[k] | 0x20) != (sid[k] | 0x20))
				break;
		if (g[k] == '\0' && sid[k] == '\0')
			return 1;
	}
	return 0;
}

static int
in_groups(const struct wfpb_identity *id, uint32_t gid)
{
	uint32_t i;

	if (id->gid >= 0 && (uint32_t)id->gid == gid)
		return 1;
	for (i = 0; i < id->ngroups && i < WFPB_GROUPS_MAX; i++)
		if (id->groups[i] == gid)
			return 1;
	return 0;
}

const struct wfpb_principal *
wfpb_policy_match(const struct wfpb_config *cfg, const struct wfpb_identity *id, const uint8_t *peer_key)
{
	const struct wfpb_principal	*p;
	size_t				i;

	if (!id->known)
		return NULL;
	for (i = 0; i < cfg->nprincipals; i++) {
		p = &cfg->principals[i];
		if (p->has_uid && (id->uid < 0 || (uint32_t)id->uid != p->uid))
			continue;
		if (p->has_gid && !in_groups(id, p->gid))
			continue;
		if (p->sid[0] != '\0' && (id->uid >= 0 || strcmp(p->sid, id->user) != 0))
			continue;
		if (p->group_sid[0] != '\0' && (id->uid >= 0 || !in_group_sids(id, p->group_sid)))
			continue;
		if (p->has_elevated && (id->uid >= 0 || id->elevated < 0 || id->elevated != p->elevated))
			continue;
		if (p->has_key && (peer_key == NULL || sodium_memcmp(p->key, peer_key, WFPB_NOISE_DHLEN) != 0))
			continue;
		return p;
	}
	return NULL;
}
