/*
 * The broker's configuration: endpoint, state directory, limits and the
 * enrolled client keys, read from an INI file (docs/OPERATIONS.md). A file is
 * parsed into a fresh struct; the running one is replaced only when the parse
 * succeeded, so a bad file never leaves the broker half configured.
 */
#ifndef WFPB_CONFIG_H
#define WFPB_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "ini.h"
#include "noise.h"

#define WFPB_PATH_MAX		512u
#define WFPB_KEYS_MAX		4096u

struct wfpb_config {
	char		endpoint[WFPB_PATH_MAX];	/* Unix socket path or pipe name */
	char		state_dir[WFPB_PATH_MAX];	/* keys, audit log */
	char		socket_group[64];		/* POSIX: group owning the socket, "" for none */
	char		backend[16];			/* sim | netfilter | wfp */
	uint32_t	handshake_timeout_ms;
	uint32_t	idle_timeout_ms;
	uint32_t	max_sessions;
	uint32_t	max_sessions_per_principal;
	uint32_t	blob_max;
	uint32_t	stash_max_per_principal;
	uint32_t	stash_ttl_ms;
	size_t		nkeys;
	uint8_t		(*keys)[WFPB_NOISE_DHLEN];	/* enrolled IK client keys */
};

/* Fills c with the DESIGN.md §4 defaults and the given platform paths. */
void wfpb_config_defaults(struct wfpb_config *c, const char *endpoint, const char *state_dir);

/*
 * Parses text on top of a copy of base (which is not modified). On success
 * *out owns its key list (free with wfpb_config_free). On failure returns
 * WFPB_E_CONFIG or WFPB_E_NOMEM with err naming the line.
 */
int WFPB_MUST_CHECK wfpb_config_parse(const char *text, size_t len, const struct wfpb_config *base,
    struct wfpb_config *out, struct wfpb_ini_error *err);

/* Reads and parses a file; WFPB_E_NOENT when it does not exist. */
int WFPB_MUST_CHECK wfpb_config_load(const char *path, const struct wfpb_config *base, struct wfpb_config *out,
    struct wfpb_ini_error *err);

/* 1 when pub is an enrolled client key. */
int wfpb_config_key_enrolled(const struct wfpb_config *c, const uint8_t pub[WFPB_NOISE_DHLEN]);

void wfpb_config_free(struct wfpb_config *c);

#endif
