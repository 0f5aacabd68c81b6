/*
 * The broker's shared state and the identity a platform server attaches to
 * each session. Core code is single-threaded: each platform runs every
 * session of the broker on one event loop thread, so nothing here locks.
 */
#ifndef WFPB_BROKER_H
#define WFPB_BROKER_H

#include <stdint.h>

#include "config.h"
#include "noise.h"

#define WFPB_SERVICE_VERSION	"0.1.0"

/* Who is at the other end of a session, as the kernel told the platform server. */
struct wfpb_identity {
	int		known;		/* 0: could not be read; every request is denied */
	uint32_t	pid;
	int64_t		uid, gid;	/* POSIX; -1 on Windows */
	char		user[192];	/* decimal uid or SID string */
	char		image[512];	/* executable path, "" if unknown */
};

struct wfpb_counters {
	uint64_t	requests;
	uint64_t	denials;
	uint64_t	bad_requests;
	uint64_t	sessions_opened;
	uint64_t	sessions_rejected;
};

struct wfpb_broker {
	struct wfpb_config		cfg;
	struct wfpb_noise_keypair	*key;	/* sodium_malloc'd, read-only after init */
	uint64_t			start_ms;
	uint32_t			sessions;
	struct wfpb_counters		n;
};

/*
 * Takes ownership of *cfg (its key list) and copies key into guarded memory.
 * Returns 0 or WFPB_E_NOMEM.
 */
int WFPB_MUST_CHECK wfpb_broker_init(struct wfpb_broker *b, struct wfpb_config *cfg,
    const struct wfpb_noise_keypair *key, uint64_t now_ms);

/* Replaces the configuration (taking ownership of *cfg); sessions keep running. */
void wfpb_broker_reload(struct wfpb_broker *b, struct wfpb_config *cfg);

void wfpb_broker_fini(struct wfpb_broker *b);

#endif
