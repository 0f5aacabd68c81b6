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
	snprintf(c->backend, sizeof(c->backend), "sim");
	c->handshake_timeout_ms = 5000;
	c->idle_timeout_ms = 5 * 60 * 1000;
	c->max_sessions = 256;
	c->max_sessions_per_principal = 64;
	c->blob_max = 16 * 1024;
	c->stash_max_per_principal = 1024;
	c->stash_ttl_ms = 120 * 1000;
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

static int
add_key(struct wfpb_config *c, const char *hex)
{
	uint8_t	(*keys)[WFPB_NOISE_DHLEN];
	uint8_t	key[WFPB_NOISE_DHLEN];

	if (wfpb_key_from_hex(hex, strlen(hex), key) != 0 || c->nkeys >= WFPB_KEYS_MAX)
		return WFPB_E_CONFIG;
	if ((keys = realloc(c->keys, (c->nkeys + 1) * sizeof(*keys))) == NULL)
		return WFPB_E_NOMEM;
	c->keys = keys;
	memcpy(c->keys[c->nkeys++], key, sizeof(key));
	return 0;
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
		if (strcmp(key, "blob_max") == 0)
			return set_u32(&c->blob_max, v, 1, 60 * 1024);
		if (strcmp(key, "stash_max_per_principal") == 0)
			return set_u32(&c->stash_max_per_principal, v, 0, 1000000);
		if (strcmp(key, "stash_ttl_ms") == 0)
			return set_u32(&c->stash_ttl_ms, v, 1, 86400000);
	} else if (strcmp(section, "clients") == 0) {
		if (strcmp(key, "key") == 0)
			return add_key(c, v);
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

	*out = *base;
	out->keys = NULL;
	out->nkeys = 0;
	if ((rc = wfpb_ini_parse(text, len, on_pair, &p, err)) != 0) {
		wfpb_config_free(out);
		return rc;
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

	for (i = 0; i < c->nkeys; i++)
		if (sodium_memcmp(c->keys[i], pub, WFPB_NOISE_DHLEN) == 0)
			return 1;
	return 0;
}

void
wfpb_config_free(struct wfpb_config *c)
{
	free(c->keys);
	c->keys = NULL;
	c->nkeys = 0;
}
