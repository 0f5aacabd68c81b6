/* SPDX-License-Identifier: Apache-2.0 */
/* Configuration parsing. Values are range-checked; unknown keys are errors. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "config.h"
#include "keyfile.h"

#define FILE_MAX	(1024u * 1024u)

void
wfpb_config_defaults(struct wfpb_config *c, const char *endpoint, const char *state_dir)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->endpoint, sizeof(c->endpoint), "%s", endpoint);
	snprintf(c->state_dir, sizeof(c->state_dir), "%s", state_dir);
	/* The platform's real backend; sim only when a configuration names it (DESIGN.md §3). */
	snprintf(c->backend, sizeof(c->backend), "%s", WFPB_BACKEND_DEFAULT);
	c->handshake_timeout_ms = 5000;
	c->idle_timeout_ms = 5 * 60 * 1000;
	c->max_sessions = 256;
	c->max_sessions_per_principal = 64;
	c->max_sessions_per_user = 64;
	c->max_listeners_per_principal = 64;
	c->max_inflight = 64;
	c->unmatched_timeout_ms = 10000;
	c->output_max = 256u * 1024u;
	c->output_stall_ms = 10000;
	c->audit_rate_unmatched = 20;
	c->audit_summary_ms = 60000;
	c->audit_keep_files = 16;
	c->blob_max = 16 * 1024;
	c->stash_max_per_principal = 1024;
	c->stash_ttl_ms = 120 * 1000;
	c->audit = 1;
	c->checkpoint_every = 1000;
	c->checkpoint_ms = 10000;
	c->audit_max_bytes = 64u * 1024u * 1024u;
}

struct parse_ctx {
	struct wfpb_config	*c;
	struct wfpb_ini_error	*err;
};

static int
set_u32(uint32_t *dst, const char *v, uint32_t min, uint32_t max)
{
	char			*end;
	unsigned long long	n;

	if (*v < '0' || *v > '9')
		return WFPB_E_CONFIG;
	errno = 0;
	n = strtoull(v, &end, 10);
	if (errno != 0 || *end != '\0' || n < min || n > max)
		return WFPB_E_CONFIG;
	*dst = (uint32_t)n;
	return 0;
}

static int
set_str(char *dst, size_t cap, const char *v)
{
	size_t n = strlen(v);

	if (n >= cap)
		return WFPB_E_CONFIG;
	memcpy(dst, v, n + 1);
	return 0;
}

static const struct {
	const char	*name;
	unsigned	perm;
} perms[] = {
	{ "listen", WFPB_PERM_LISTEN }, { "accept", WFPB_PERM_ACCEPT }, { "query", WFPB_PERM_QUERY },
	{ "stash", WFPB_PERM_STASH }, { "fetch", WFPB_PERM_FETCH }, { "connect", WFPB_PERM_CONNECT },
	{ "apply", WFPB_PERM_APPLY }, { "admin", WFPB_PERM_ADMIN },
	{ "apply_foreign", WFPB_PERM_APPLY_FOREIGN }, { "prepare", WFPB_PERM_PREPARE },
	{ "udp_listen", WFPB_PERM_UDP_LISTEN }, { "udp_flow", WFPB_PERM_UDP_FLOW },
};

const char *
wfpb_perm_name(unsigned perm)
{
	size_t i;

	for (i = 0; i < sizeof(perms) / sizeof(perms[0]); i++)
		if (perms[i].perm == perm)
			return perms[i].name;
	return NULL;
}

unsigned
wfpb_perm_from_name(const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < sizeof(perms) / sizeof(perms[0]); i++)
		if (strlen(perms[i].name) == len && memcmp(perms[i].name, name, len) == 0)
			return perms[i].perm;
	return 0;
}

/* "listen accept, stash": names separated by spaces or commas. */
static int
set_perms(unsigned *dst, const char *v)
{
	size_t		n;
	unsigned	p;

	*dst = 0;
	while (*v != '\0') {
		while (*v == ' ' || *v == ',' || *v == '\t')
			v++;
		n = strcspn(v, " ,\t");
		if (n == 0)
			break;
		if ((p = wfpb_perm_from_name(v, n)) == 0)
			return WFPB_E_CONFIG;
		*dst |= p;
		v += n;
	}
	return 0;
}

static int
set_hex32(uint32_t *dst, const char *v)
{
	char			*end;
	unsigned long long	n;

	errno = 0;
	n = strtoull(v, &end, 0);
	if (errno != 0 || *end != '\0' || end == v || n > UINT32_MAX)
		return WFPB_E_CONFIG;
	*dst = (uint32_t)n;
	return 0;
}

/* A SID string: "S-1-" then digits and dashes only. */
static int
set_sid(char *dst, const char *v)
{
	size_t i, n = strlen(v);

	if (n < 5 || n >= WFPB_SID_MAX || strncmp(v, "S-1-", 4) != 0)
		return WFPB_E_CONFIG;
	for (i = 4; i < n; i++)
		if (!((v[i] >= '0' && v[i] <= '9') || v[i] == '-'))
			return WFPB_E_CONFIG;
	memcpy(dst, v, n + 1);
	return 0;
}

/* "10.0.0.0/8:*, [::1]/128:8000-8999": appended to what earlier lines gave. */
static int
add_ranges(struct wfpb_range *r, unsigned *n, const char *v)
{
	size_t len;

	while (*v != '\0') {
		while (*v == ' ' || *v == ',' || *v == '\t')
			v++;
		len = strcspn(v, " ,\t");
		if (len == 0)
			break;
		if (*n >= WFPB_RANGES_MAX || wfpb_range_parse(v, len, &r[*n]) != 0)
			return WFPB_E_CONFIG;
		(*n)++;
		v += len;
	}
	return 0;
}

static int
principal_key(struct wfpb_principal *p, const char *key, const char *v)
{
	int rc;

	if (strcmp(key, "uid") == 0) {
		p->has_uid = 1;
		return set_u32(&p->uid, v, 0, UINT32_MAX - 1);
	}
	if (strcmp(key, "gid") == 0) {
		p->has_gid = 1;
		return set_u32(&p->gid, v, 0, UINT32_MAX - 1);
	}
	if (strcmp(key, "sid") == 0)
		return set_sid(p->sid, v);
	if (strcmp(key, "group_sid") == 0)
		return set_sid(p->group_sid, v);
	if (strcmp(key, "elevated") == 0) {
		if (strcmp(v, "yes") != 0 && strcmp(v, "no") != 0)
			return WFPB_E_CONFIG;
		p->has_elevated = 1;
		p->elevated = strcmp(v, "yes") == 0;
		return 0;
	}
	if (strcmp(key, "key") == 0) {
		if ((rc = wfpb_key_from_hex(v, strlen(v), p->key)) != 0)
			return WFPB_E_CONFIG;
		p->has_key = 1;
		return 0;
	}
	if (strcmp(key, "ops") == 0)
		return set_perms(&p->perms, v);
	if (strcmp(key, "max_sessions") == 0)
		return set_u32(&p->max_sessions, v, 1, 1000000);
	if (strcmp(key, "max_stash") == 0)
		return set_u32(&p->max_stash, v, 1, 1000000);
	if (strcmp(key, "mark") == 0) {
		p->has_mark = 1;
		return set_hex32(&p->mark, v);
	}
	if (strcmp(key, "mark_mask") == 0)
		return set_hex32(&p->mark_mask, v);
	if (strcmp(key, "audit_rate") == 0)
		return set_u32(&p->audit_rate, v, 1, 10000000);
	if (strcmp(key, "require_records") == 0) {
		if (strcmp(v, "yes") != 0 && strcmp(v, "no") != 0)
			return WFPB_E_CONFIG;
		p->require_records = strcmp(v, "yes") == 0;
		return 0;
	}
	if (strcmp(key, "listen") == 0)
		return add_ranges(p->listen, &p->nlisten, v);
	if (strcmp(key, "connect") == 0)
		return add_ranges(p->connect, &p->nconnect, v);
	if (strcmp(key, "bind") == 0)
		return add_ranges(p->bind, &p->nbind, v);
	if (strcmp(key, "udp_listen") == 0)
		return add_ranges(p->udp_listen, &p->nudp_listen, v);
	if (strcmp(key, "udp_connect") == 0)
		return add_ranges(p->udp_connect, &p->nudp_connect, v);
	return WFPB_E_CONFIG;
}

/* The NAME of a "KIND NAME" section, or NULL when it is not one: letters, digits, '-', '_', '.'. */
static const char *
section_name(const char *section, const char *kind)
{
	const char	*name = section + strlen(kind);
	size_t		n, i;

	if (*name != ' ' && *name != '\t')
		return NULL;
	while (*name == ' ' || *name == '\t')
		name++;
	n = strlen(name);
	if (n == 0 || n >= WFPB_NAME_MAX)
		return NULL;
	for (i = 0; i < n; i++)
		if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= 'A' && name[i] <= 'Z') ||
		    (name[i] >= '0' && name[i] <= '9') || name[i] == '-' || name[i] == '_' || name[i] == '.'))
			return NULL;
	return name;
}

/* Returns the principal for a "principal NAME" section, adding it at its first key. */
static struct wfpb_principal *
principal_for(struct wfpb_config *c, const char *section, int *rc)
{
	struct wfpb_principal	*p;
	const char		*name = section_name(section, "principal");
	size_t			n, i;

	*rc = WFPB_E_CONFIG;
	if (name == NULL)
		return NULL;
	n = strlen(name);
	if (c->nprincipals > 0 && strcmp(c->principals[c->nprincipals - 1].name, name) == 0)
		return &c->principals[c->nprincipals - 1];
	for (i = 0; i < c->nprincipals; i++)
		if (strcmp(c->principals[i].name, name) == 0)
			return NULL;	/* a section may not be split or repeated */
	if (c->nprincipals >= WFPB_PRINCIPALS_MAX)
		return NULL;
	if ((p = realloc(c->principals, (c->nprincipals + 1) * sizeof(*p))) == NULL) {
		*rc = WFPB_E_NOMEM;
		return NULL;
	}
	c->principals = p;
	p = &c->principals[c->nprincipals++];
	memset(p, 0, sizeof(*p));
	memcpy(p->name, name, n + 1);
	p->mark_mask = UINT32_MAX;
	return p;
}

/* The declared listener of a "listener NAME" section, added at its first key; NULL when bad or repeated. */
static struct wfpb_listener_decl *
listener_for(struct wfpb_config *c, const char *section)
{
	const char	*name = section_name(section, "listener");
	unsigned	i;

	if (name == NULL)
		return NULL;
	if (c->nlisteners > 0 && strcmp(c->listeners[c->nlisteners - 1].name, name) == 0)
		return &c->listeners[c->nlisteners - 1];
	for (i = 0; i < c->nlisteners; i++)
		if (strcmp(c->listeners[i].name, name) == 0)
			return NULL;	/* a section may not be split or repeated */
	if (c->nlisteners >= WFPB_DECLARED_MAX)
		return NULL;
	memset(&c->listeners[c->nlisteners], 0, sizeof(c->listeners[0]));
	snprintf(c->listeners[c->nlisteners].name, WFPB_NAME_MAX, "%s", name);
	c->listeners[c->nlisteners].backlog = 128;
	return &c->listeners[c->nlisteners++];
}

static int
listener_key(struct wfpb_listener_decl *l, const char *key, const char *v)
{
	if (strcmp(key, "address") == 0) {
		if (wfpb_addr_parse(v, &l->address) != 0)
			return WFPB_E_CONFIG;
		(void)wfpb_addr_canonical(&l->address);
		l->has_address = 1;
		return 0;
	}
	if (strcmp(key, "backlog") == 0)
		return set_u32(&l->backlog, v, 1, 1024);
	if (strcmp(key, "principal") == 0) {
		if (strlen(v) == 0 || strlen(v) >= WFPB_NAME_MAX)
			return WFPB_E_CONFIG;
		snprintf(l->principal, sizeof(l->principal), "%s", v);
		return 0;
	}
	return WFPB_E_CONFIG;
}

static int
on_pair(void *arg, const char *section, const char *key, const char *v)
{
	struct parse_ctx	*p = arg;
	struct wfpb_config	*c = p->c;

	if (strcmp(section, "service") == 0) {
		if (strcmp(key, "endpoint") == 0)
			return set_str(c->endpoint, sizeof(c->endpoint), v);
		if (strcmp(key, "state_dir") == 0)
			return set_str(c->state_dir, sizeof(c->state_dir), v);
		if (strcmp(key, "socket_group") == 0)
			return set_str(c->socket_group, sizeof(c->socket_group), v);
		if (strcmp(key, "backend") == 0) {
			if (strcmp(v, "sim") != 0 && strcmp(v, "netfilter") != 0 && strcmp(v, "wfp") != 0)
				return WFPB_E_CONFIG;
			return set_str(c->backend, sizeof(c->backend), v);
		}
		if (strcmp(key, "handshake_timeout_ms") == 0)
			return set_u32(&c->handshake_timeout_ms, v, 10, 600000);
		if (strcmp(key, "idle_timeout_ms") == 0)
			return set_u32(&c->idle_timeout_ms, v, 10, 86400000);
		if (strcmp(key, "max_sessions") == 0)
			return set_u32(&c->max_sessions, v, 1, 1000000);
		if (strcmp(key, "max_sessions_per_principal") == 0)
			return set_u32(&c->max_sessions_per_principal, v, 1, 1000000);
		if (strcmp(key, "max_sessions_per_user") == 0)
			return set_u32(&c->max_sessions_per_user, v, 1, 1000000);
		if (strcmp(key, "max_listeners_per_principal") == 0)
			return set_u32(&c->max_listeners_per_principal, v, 1, 1000000);
		if (strcmp(key, "max_inflight") == 0)
			return set_u32(&c->max_inflight, v, 1, WFPB_INFLIGHT_MAX);
		if (strcmp(key, "unmatched_timeout_ms") == 0)
			return set_u32(&c->unmatched_timeout_ms, v, 10, 86400000);
		if (strcmp(key, "output_max_kib") == 0) {
			uint32_t kib = 0;
			int rc = set_u32(&kib, v, 64, 64u * 1024u);

			c->output_max = kib * 1024u;
			return rc;
		}
		if (strcmp(key, "output_stall_ms") == 0)
			return set_u32(&c->output_stall_ms, v, 100, 600000);
		if (strcmp(key, "audit_rate_unmatched") == 0)
			return set_u32(&c->audit_rate_unmatched, v, 1, 1000000);
		if (strcmp(key, "audit_summary_ms") == 0)
			return set_u32(&c->audit_summary_ms, v, 100, 86400000);
		if (strcmp(key, "audit_keep_files") == 0)
			return set_u32(&c->audit_keep_files, v, 0, 1000000);
		if (strcmp(key, "workers") == 0)
			return set_u32(&c->workers, v, 0, WFPB_WORKERS_MAX);
		if (strcmp(key, "blob_max") == 0)
			return set_u32(&c->blob_max, v, 1, 60 * 1024);
		if (strcmp(key, "stash_max_per_principal") == 0)
			return set_u32(&c->stash_max_per_principal, v, 0, 1000000);
		if (strcmp(key, "stash_ttl_ms") == 0)
			return set_u32(&c->stash_ttl_ms, v, 1, 86400000);
		if (strcmp(key, "audit") == 0) {
			if (strcmp(v, "on") != 0 && strcmp(v, "off") != 0)
				return WFPB_E_CONFIG;
			c->audit = strcmp(v, "on") == 0;
			return 0;
		}
		if (strcmp(key, "audit_log") == 0)
			return set_str(c->audit_log, sizeof(c->audit_log), v);
		if (strcmp(key, "audit_group_read") == 0) {
			if (strcmp(v, "yes") != 0 && strcmp(v, "no") != 0)
				return WFPB_E_CONFIG;
			c->audit_group_read = strcmp(v, "yes") == 0;
			return 0;
		}
		if (strcmp(key, "checkpoint_every") == 0)
			return set_u32(&c->checkpoint_every, v, 1, 1000000);
		if (strcmp(key, "checkpoint_ms") == 0)
			return set_u32(&c->checkpoint_ms, v, 10, 86400000);
		if (strcmp(key, "audit_max_kib") == 0) {
			uint32_t kib = 0;
			int rc = set_u32(&kib, v, 0, 1024u * 1024u);

			c->audit_max_bytes = (uint64_t)kib * 1024u;
			return rc;
		}
	} else if (strncmp(section, "listener", 8) == 0) {
		struct wfpb_listener_decl	*l;
		int				rc;

		if ((l = listener_for(c, section)) == NULL) {
			snprintf(p->err->message, sizeof(p->err->message),
			    "[%s]: bad, repeated or too many (%u) listener sections", section, WFPB_DECLARED_MAX);
			return WFPB_E_CONFIG;
		}
		if ((rc = listener_key(l, key, v)) != 0)
			snprintf(p->err->message, sizeof(p->err->message), "[%s]: invalid %s '%s'", section,
			    key, v);
		return rc;
	} else if (strncmp(section, "principal", 9) == 0) {
		struct wfpb_principal	*pr;
		int			rc;

		if ((pr = principal_for(c, section, &rc)) == NULL) {
			snprintf(p->err->message, sizeof(p->err->message),
			    "[%s]: bad, repeated or too many principal sections", section);
			return rc;
		}
		if ((rc = principal_key(pr, key, v)) != 0)
			snprintf(p->err->message, sizeof(p->err->message), "[%s]: invalid %s '%s'", section,
			    key, v);
		return rc;
	}
	snprintf(p->err->message, sizeof(p->err->message), "unknown key '%s' in [%s]", key, section);
	return WFPB_E_CONFIG;
}

int
wfpb_config_parse(const char *text, size_t len, const struct wfpb_config *base, struct wfpb_config *out,
    struct wfpb_ini_error *err)
{
	struct parse_ctx	p = { out, err };
	int			rc;

	size_t			i;

	*out = *base;
	out->principals = NULL;
	out->nprincipals = 0;
	out->nlisteners = 0;
	if ((rc = wfpb_ini_parse(text, len, on_pair, &p, err)) != 0) {
		wfpb_config_free(out);
		return rc;
	}
	for (i = 0; i < out->nlisteners; i++) {
		const struct wfpb_listener_decl	*l = &out->listeners[i];
		size_t				j;

		for (j = 0; j < out->nprincipals && strcmp(out->principals[j].name, l->principal) != 0; j++)
			;
		if (!l->has_address || j == out->nprincipals) {
			err->line = 0;
			snprintf(err->message, sizeof(err->message), "[listener %s] needs %s", l->name,
			    !l->has_address ? "address = ADDR:PORT" : "principal = the name of a [principal] section");
			wfpb_config_free(out);
			return WFPB_E_CONFIG;
		}
	}
	for (i = 0; i < out->nprincipals; i++) {
		const struct wfpb_principal *pr = &out->principals[i];

		if (!pr->has_uid && !pr->has_gid && !pr->has_key && pr->sid[0] == '\0' && pr->group_sid[0] == '\0') {
			err->line = 0;
			snprintf(err->message, sizeof(err->message),
			    "[principal %s] matches nobody: set uid, gid, sid, group_sid or key", pr->name);
			wfpb_config_free(out);
			return WFPB_E_CONFIG;
		}
		/* Under netfilter a proxy without its own mark would be redirected back to itself: refuse. */
		if (strcmp(out->backend, "netfilter") == 0 && (pr->perms & (WFPB_PERM_CONNECT | WFPB_PERM_APPLY | WFPB_PERM_PREPARE)) &&
		    (!pr->has_mark || pr->mark == 0)) {
			err->line = 0;
			snprintf(err->message, sizeof(err->message),
			    "[principal %s] may connect or apply records under backend netfilter but has no mark = 0x...",
			    pr->name);
			wfpb_config_free(out);
			return WFPB_E_CONFIG;
		}
	}
	return 0;
}

int
wfpb_config_load(const char *path, const struct wfpb_config *base, struct wfpb_config *out,
    struct wfpb_ini_error *err)
{
	FILE	*f;
	char	*buf;
	size_t	n;
	int	rc;

	err->line = 0;
	if ((f = fopen(path, "rb")) == NULL) {
		snprintf(err->message, sizeof(err->message), "cannot open: %s", strerror(errno));
		return errno == ENOENT ? WFPB_E_NOENT : WFPB_E_CONFIG;
	}
	if ((buf = malloc(FILE_MAX)) == NULL) {
		fclose(f);
		return WFPB_E_NOMEM;
	}
	n = fread(buf, 1, FILE_MAX, f);
	if (ferror(f) || n == FILE_MAX) {
		snprintf(err->message, sizeof(err->message), "%s", n == FILE_MAX ? "file too large" : "read error");
		rc = WFPB_E_CONFIG;
	} else {
		rc = wfpb_config_parse(buf, n, base, out, err);
	}
	free(buf);
	fclose(f);
	return rc;
}

int
wfpb_config_key_enrolled(const struct wfpb_config *c, const uint8_t pub[WFPB_NOISE_DHLEN])
{
	size_t i;

	for (i = 0; i < c->nprincipals; i++)
		if (c->principals[i].has_key && sodium_memcmp(c->principals[i].key, pub, WFPB_NOISE_DHLEN) == 0)
			return 1;
	return 0;
}

void
wfpb_config_free(struct wfpb_config *c)
{
	free(c->principals);
	c->principals = NULL;
	c->nprincipals = 0;
}
