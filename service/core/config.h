/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The broker's configuration and policy: endpoint, state directory, limits,
 * and the principals — who may do what — read from one INI file
 * (docs/OPERATIONS.md). A file is parsed into a fresh struct; the running one
 * is replaced only when the parse succeeded, so a bad file never leaves the
 * broker half configured. Policy is default deny.
 */
#ifndef WFPB_CONFIG_H
#define WFPB_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "ini.h"
#include "noise.h"

#define WFPB_PATH_MAX		512u
#define WFPB_PRINCIPALS_MAX	1024u
#define WFPB_NAME_MAX		64u
#define WFPB_DECLARED_MAX	16u	/* [listener NAME] sections */

/*
 * A listener the configuration declares: the broker opens it at start and
 * keeps it whatever sessions come and go; its principal's Accepts name it.
 */
struct wfpb_listener_decl {
	char			name[WFPB_NAME_MAX];
	char			principal[WFPB_NAME_MAX];	/* the one principal that may accept on it */
	struct wfpb_addr	address;			/* port 0: the OS picks one at start */
	uint32_t		backlog;
	int			has_address;
};
#define WFPB_SID_MAX		192u
#define WFPB_RANGES_MAX		16u
#define WFPB_WORKERS_MAX	64u

/* Permissions a principal can be granted (config `ops = ...`). */
enum wfpb_perm {
	WFPB_PERM_LISTEN = 1u << 0,
	WFPB_PERM_ACCEPT = 1u << 1,
	WFPB_PERM_QUERY = 1u << 2,
	WFPB_PERM_STASH = 1u << 3,
	WFPB_PERM_FETCH = 1u << 4,
	WFPB_PERM_CONNECT = 1u << 5,
	WFPB_PERM_APPLY = 1u << 6,
	WFPB_PERM_ADMIN = 1u << 7,
	/*
	 * Connect and ApplyRecords may apply records the client supplied (an
	 * inline blob, or a Stash of its own) rather than ones the broker
	 * queried itself: trusting the principal to forge redirect state.
	 */
	WFPB_PERM_APPLY_FOREIGN = 1u << 8,
	WFPB_PERM_PREPARE = 1u << 9,	/* Prepare: a socket with records applied, connected by the client */
	WFPB_PERM_UDP_LISTEN = 1u << 10,	/* Listen for UDP (a TCP grant does not imply it) */
	WFPB_PERM_UDP_FLOW = 1u << 11,	/* Flow: a UDP flow's first datagram, its reply and upstream sockets */
};

/*
 * A [principal NAME] section. It matches a session when every matcher it
 * sets matches (uid AND gid AND sid AND group_sid AND elevated AND key); a
 * section with no identifying matcher (elevated alone does not identify) is
 * a configuration error, so nothing ever matches everyone by accident.
 */
struct wfpb_principal {
	char		name[WFPB_NAME_MAX];
	int		has_uid, has_gid, has_key;
	uint32_t	uid;			/* POSIX user */
	uint32_t	gid;			/* POSIX group: primary or supplementary */
	char		sid[WFPB_SID_MAX];	/* Windows user SID, "" when unset */
	char		group_sid[WFPB_SID_MAX];	/* Windows: a group the token holds enabled, "" when unset */
	int		has_elevated, elevated;	/* Windows: the token must (1) or must not (0) be elevated */
	uint8_t		key[WFPB_NOISE_DHLEN];	/* enrolled Noise static key (IK) */
	unsigned	perms;			/* enum wfpb_perm bits */
	uint32_t	max_sessions;		/* 0: the service default */
	uint32_t	max_stash;		/* 0: the service default */
	int		has_mark;
	uint32_t	mark;			/* netfilter backend: this principal's mark bit */
	uint32_t	mark_mask;		/* netfilter: record marks it may carry on (default all) */
	uint32_t	audit_rate;		/* audited requests/s per identity (0: the service default) */
	int		require_records;	/* Accept refuses (and closes) a connection with no records */
	struct wfpb_range listen[WFPB_RANGES_MAX];	/* where it may Listen (none: nowhere) */
	unsigned	nlisten;
	struct wfpb_range connect[WFPB_RANGES_MAX];	/* where it may Connect (none: nowhere) */
	unsigned	nconnect;
	/* Local addresses a Connect may bind (none: no explicit bind); ports < 1024 only if named. */
	struct wfpb_range bind[WFPB_RANGES_MAX];
	unsigned	nbind;
	struct wfpb_range udp_listen[WFPB_RANGES_MAX];	/* where it may Listen for UDP (none: nowhere) */
	unsigned	nudp_listen;
	struct wfpb_range udp_connect[WFPB_RANGES_MAX];	/* where a Flow may go upstream (none: nowhere) */
	unsigned	nudp_connect;
};

#define WFPB_INFLIGHT_MAX	1024u	/* the largest max_inflight the configuration may set */

struct wfpb_config {
	char		endpoint[WFPB_PATH_MAX];	/* Unix socket path or pipe name */
	char		state_dir[WFPB_PATH_MAX];	/* keys, audit log */
	char		socket_group[64];		/* POSIX: group owning the socket, "" for none */
	char		backend[16];			/* sim | netfilter | wfp */
	uint32_t	handshake_timeout_ms;
	uint32_t	idle_timeout_ms;
	uint32_t	max_sessions;
	uint32_t	max_sessions_per_principal;
	uint32_t	max_sessions_per_user;	/* per OS identity (uid, user SID), principal or not */
	uint32_t	max_listeners_per_principal;	/* its descriptor budget for listeners */
	uint32_t	max_inflight;		/* protocol 2: pending requests per session */
	uint32_t	unmatched_timeout_ms;	/* sessions of identities no principal matches */
	uint32_t	output_max;		/* bytes queued for a client before it is not read */
	uint32_t	output_stall_ms;	/* how long a session may stay over output_max */
	uint32_t	audit_rate_unmatched;	/* audited requests/s per identity with no principal */
	uint32_t	audit_summary_ms;	/* how often the summary record is written */
	uint32_t	audit_keep_files;	/* rotated audit files kept; 0: all */
	uint32_t	workers;		/* Windows completion-port threads; 0: by processor count */
	uint32_t	blob_max;
	uint32_t	stash_max_per_principal;
	uint32_t	stash_ttl_ms;
	int		audit;				/* 1: on (default) */
	char		audit_log[WFPB_PATH_MAX];	/* "" : state_dir/audit.log */
	int		audit_group_read;		/* the log's files are readable by their group (0640) */
	uint32_t	checkpoint_every;		/* records between signed checkpoints */
	uint32_t	checkpoint_ms;			/* or this long, whichever comes first */
	uint64_t	audit_max_bytes;		/* rotate the log past this size; 0: never */
	size_t			nprincipals;
	struct wfpb_principal	*principals;		/* in file order; first match wins */
	unsigned		nlisteners;
	struct wfpb_listener_decl listeners[WFPB_DECLARED_MAX];	/* opened at start; a reload keeps them */
};

/* Fills c with the DESIGN.md §4 defaults and the given platform paths. */
void wfpb_config_defaults(struct wfpb_config *c, const char *endpoint, const char *state_dir);

/*
 * Parses text on top of a copy of base (which is not modified). On success
 * *out owns its principals (free with wfpb_config_free). On failure returns
 * WFPB_E_CONFIG or WFPB_E_NOMEM with err naming the line.
 */
int WFPB_MUST_CHECK wfpb_config_parse(const char *text, size_t len, const struct wfpb_config *base,
    struct wfpb_config *out, struct wfpb_ini_error *err);

/* Reads and parses a file; WFPB_E_NOENT when it does not exist. */
int WFPB_MUST_CHECK wfpb_config_load(const char *path, const struct wfpb_config *base, struct wfpb_config *out,
    struct wfpb_ini_error *err);

/* 1 when pub is the key of some principal (the IK enrolment check). */
int wfpb_config_key_enrolled(const struct wfpb_config *c, const uint8_t pub[WFPB_NOISE_DHLEN]);

/* Permission bit for an op name ("listen" ... "admin"), or 0. */
unsigned wfpb_perm_from_name(const char *name, size_t len);

/* The name of one permission bit, or NULL. */
const char *wfpb_perm_name(unsigned perm);

void wfpb_config_free(struct wfpb_config *c);

#endif
