/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The broker's shared state: configuration and policy, the static key, the
 * stash, per-principal usage and counters; and the identity a platform server
 * attaches to each session.
 *
 * Threads. The Windows server runs a pool of completion-port workers; each
 * connection is served by one worker at a time (under that connection's
 * lock), and everything shared between sessions (this struct, the stash,
 * the audit queue, the audit wait lists, policy) is guarded by the core lock
 * below. session.c takes the core lock itself in wfpb_session_input,
 * _resume, _expire, _deadline and _released, around the parts that touch
 * shared state, so the channel's handshake and decryption run outside it;
 * every other core call (wfpb_session_new, _free, wfpb_broker_*) is made
 * with it held, and asserts so (WFPB_CORE_OWNED). The POSIX server runs one
 * thread but installs the lock too, as an error-checking mutex, so every
 * Linux test checks the same discipline. With no lock installed (unit tests,
 * fuzzers) the hooks cost one test of a NULL pointer.
 */
#ifndef WFPB_BROKER_H
#define WFPB_BROKER_H

#include <stdint.h>

#include "admit.h"
#include "audit.h"
#include "backend.h"
#include "config.h"
#include "noise.h"
#include "policy.h"
#include "stash.h"
#include "wfpb_version.h"

#define WFPB_SERVICE_VERSION	WFPB_VERSION_STRING
#define WFPB_GROUPS_MAX		32u

/* Who is at the other end of a session, as the kernel told the platform server. */
/* Windows token groups kept per session; a token with more has the rest ignored (they only ever grant). */
#ifdef _WIN32
#define WFPB_GROUP_SIDS_MAX	128u
#else
#define WFPB_GROUP_SIDS_MAX	1u
#endif
#define WFPB_GROUP_SID_LEN	72u	/* "S-1-5-21-" and four 32-bit sub-authorities, with room */

struct wfpb_identity {
	int		known;		/* 0: could not be read; every request but Ping is denied */
	uint32_t	pid;
	int64_t		uid, gid;	/* POSIX; -1 on Windows */
	uint32_t	groups[WFPB_GROUPS_MAX];	/* POSIX supplementary groups */
	uint32_t	ngroups;
	char		user[WFPB_SID_MAX];	/* decimal uid or SID string */
	char		image[512];	/* executable path, "" if unknown */
	/* Windows: the token's enabled group SIDs (deny-only ones left out), elevation, session. */
	char		group_sids[WFPB_GROUP_SIDS_MAX][WFPB_GROUP_SID_LEN];
	uint32_t	ngroup_sids;
	int		elevated;	/* 1 elevated, 0 not, -1 unknown or not Windows */
	uint32_t	logon_session;	/* Windows session id (TokenSessionId) */
	/*
	 * Windows: a handle to the client process, opened when the identity was
	 * read and held by the pipe server for the whole connection, so the PID
	 * cannot be recycled under the session (hand-over and pulls target that
	 * process). 0 on POSIX. Core passes it on and never closes it.
	 */
	intptr_t	process;
};

struct wfpb_counters {
	uint64_t	requests;
	uint64_t	denials;
	uint64_t	bad_requests;
	uint64_t	sessions_opened;
	uint64_t	sessions_rejected;
	uint64_t	reloads;
};

/* What one principal (by name) holds now. Entries are reused, never freed before the broker. */
struct wfpb_usage {
	char		name[WFPB_NAME_MAX];
	uint32_t	sessions;
	uint32_t	stash;
	uint32_t	listeners;	/* descriptors it holds in listeners (admit.h) */
};

struct wfpb_session;

#define WFPB_HANDOVER_MARK_LEN	32u

/*
 * Listening sockets a restart hands back (systemd's file descriptor store:
 * LISTEN_FDS, named by LISTEN_FDNAMES), for wfpb_broker_open_listeners to take
 * by name ("listener-NAME") instead of opening anew. It sets sock[i] to
 * WFPB_SOCK_NONE for each it takes; the caller closes the rest.
 */
#define WFPB_INHERITED_MAX	32u
struct wfpb_inherited {
	unsigned	n;
	wfpb_sock	sock[WFPB_INHERITED_MAX];
	char		name[WFPB_INHERITED_MAX][WFPB_NAME_MAX + 16];
};

/* A listener the configuration declares, open for the broker's life (wfpb_broker_open_listeners). */
struct wfpb_declared {
	char			name[WFPB_NAME_MAX];
	char			principal[WFPB_NAME_MAX];	/* as configured at start; a reload keeps it */
	struct wfpb_addr	local;				/* as bound */
	wfpb_sock		sock;
};

struct wfpb_broker {
	struct wfpb_config		cfg;
	char				config_path[WFPB_PATH_MAX];	/* "" when none */
	uint64_t			policy_gen;	/* bumped by every reload */
	struct wfpb_noise_keypair	*key;		/* sodium_malloc'd, read-only after init */
	uint64_t			start_ms;
	uint32_t			sessions;
	struct wfpb_counters		n;
	struct wfpb_stash		stash;
	struct wfpb_usage		*usage;
	size_t				nusage;
	struct wfpb_backend		backend;	/* fixed at start; reload does not change it */
	uint32_t			listeners;
	uint32_t			inflight;	/* pending requests across sessions */
	struct wfpb_declared		declared[WFPB_DECLARED_MAX];
	unsigned			ndeclared;
	/* Starts the placeholder of a socket in a frame written later (Windows): random, so no field forges it. */
	uint8_t				handover_mark[WFPB_HANDOVER_MARK_LEN];
	uint64_t			next_listener_id;
	uint64_t			next_session_id;
	int				started;	/* the start event was reported */
	int				stopping;	/* the server is closing every session: their end's reason */
	int				audit_on;
	struct wfpb_audit		audit;
	/* Sessions whose output waits for the audit log, and those it has released. */
	struct wfpb_session		*waiting, *ready;
	/* The core lock (see the top of this file); NULL when one thread serves. */
	void				(*lock)(void *arg);
	void				(*unlock)(void *arg);
	int				(*owned)(void *arg);	/* held by the calling thread? */
	void				*lock_arg;
	uint32_t			workers;	/* threads serving sessions, for Status */
	/* A log that cannot be written is retried with back-off and reported once per change. */
	int				commit_handed;	/* a batch is with the server's committer thread */
	uint64_t			audit_retry_at_ms;
	uint32_t			audit_retry_ms;
	int				audit_reported_broken;
	struct wfpb_admit		admit;		/* sessions per OS identity */
};

static inline void
wfpb_core_enter(struct wfpb_broker *b)
{
	if (b->lock != NULL)
		b->lock(b->lock_arg);
}

static inline void
wfpb_core_leave(struct wfpb_broker *b)
{
	if (b->unlock != NULL)
		b->unlock(b->lock_arg);
}

/* A core entry point reached without the core lock: a bug that must not serve on. */
_Noreturn void wfpb__core_unowned(const char *where);

/* Asserts, where core state is touched, that the calling thread holds the core lock. */
#define WFPB_CORE_OWNED(b) do {							\
	if ((b)->owned != NULL && !(b)->owned((b)->lock_arg))			\
		wfpb__core_unowned(__func__);					\
} while (0)

/*
 * Takes ownership of *cfg and copies key into guarded memory. config_path
 * (may be NULL) is what Reload and SIGHUP re-read. Opens the configured
 * backend. Returns 0, WFPB_E_NOMEM, or WFPB_E_UNSUPPORTED (backend not in
 * this build; logged).
 */
int WFPB_MUST_CHECK wfpb_broker_init(struct wfpb_broker *b, struct wfpb_config *cfg, const char *config_path,
    const struct wfpb_noise_keypair *key, uint64_t now_ms);

/* Replaces the configuration and policy (taking ownership of *cfg); sessions re-resolve. */
void wfpb_broker_reload(struct wfpb_broker *b, struct wfpb_config *cfg);

/*
 * Re-reads config_path and applies it atomically. Returns 0, WFPB_E_NOENT
 * (no file configured), or the parse error with err naming the line; on any
 * error the running configuration stays. Either outcome is logged.
 */
int wfpb_broker_reload_file(struct wfpb_broker *b, struct wfpb_ini_error *err);

/* Periodic work: expires stash entries. Call every ~100 ms. */
void wfpb_broker_tick(struct wfpb_broker *b, uint64_t now_ms);

/* The usage record for a principal name, created at first use; NULL on allocation failure. */
struct wfpb_usage *wfpb_broker_usage(struct wfpb_broker *b, const char *name);


/*
 * Opens the audit log named by the configuration (after wfpb_broker_init)
 * and records the service start. Returns 0 or an error with err filled; the
 * caller must not serve without it when audit is on.
 */
int WFPB_MUST_CHECK wfpb_broker_open_audit(struct wfpb_broker *b, const unsigned char sk[64], uint64_t now_ms,
    char *err, size_t errlen);

/* Records a service-level event (start, stop, reload) with a note. */
void wfpb_broker_audit_event(struct wfpb_broker *b, int kind, const char *note, uint64_t now_ms);

/*
 * Group commit: makes every queued audit record durable with one sync and
 * moves the sessions that waited for it to the ready list (on failure they
 * are marked closing: their responses are never sent). Call once per event
 * loop iteration. Returns 1 when sessions became ready, else 0.
 */
int wfpb_broker_commit(struct wfpb_broker *b, uint64_t now_ms);

/*
 * The same with the write and sync on a committer thread, so the event loop
 * keeps serving meanwhile: _start (loop thread) returns 1 when a batch is to
 * be flushed — hand wfpb_audit_flush_inflight(&b->audit) to the committer;
 * when it is done, _finish (loop thread) releases the sessions whose records
 * were in it and returns as wfpb_broker_commit. Records queued during the
 * flush go in the next batch.
 */
int wfpb_broker_commit_start(struct wfpb_broker *b, uint64_t now_ms);
int wfpb_broker_commit_finish(struct wfpb_broker *b, uint64_t now_ms);

/*
 * The committer's state machine, once for both servers. Call _step once per
 * turn of the server's loop with threaded = whether the server runs a
 * committer thread: WFPB_COMMIT_HANDOFF means a batch is ready — hand
 * wfpb_audit_flush_inflight(&b->audit) to the thread and call _done when it
 * has finished; WFPB_COMMIT_READY means a commit ran inline and sessions
 * were released (wfpb_broker_next_ready); WFPB_COMMIT_IDLE, nothing to do
 * (nothing due, or a batch is already in flight). _done returns 1 when it
 * released sessions. wfpb_broker_commit_busy says whether a batch is in flight.
 */
enum { WFPB_COMMIT_IDLE, WFPB_COMMIT_HANDOFF, WFPB_COMMIT_READY };
int wfpb_broker_commit_step(struct wfpb_broker *b, int threaded, uint64_t now_ms);
int wfpb_broker_commit_done(struct wfpb_broker *b, uint64_t now_ms);
int wfpb_broker_commit_busy(const struct wfpb_broker *b);

/* The next session released by a commit (flush its output), or NULL. */
struct wfpb_session *wfpb_broker_next_ready(struct wfpb_broker *b);

void wfpb_broker_fini(struct wfpb_broker *b);

/*
 * Opens the listeners the configuration declares ([listener NAME]), after
 * wfpb_broker_init and before serving; they stay open until wfpb_broker_fini,
 * whatever sessions come and go, and a reload keeps them as they are. One that
 * in (may be NULL) holds under its name, still listening where the configuration
 * says, is taken instead, with the connections queued on it. 0, or WFPB_E_OS with
 * err naming the one that could not be opened (none is left open).
 */
int WFPB_MUST_CHECK wfpb_broker_open_listeners(struct wfpb_broker *b, struct wfpb_inherited *in, char *err,
    size_t errlen);

/* The declared listener called name, or NULL. */
const struct wfpb_declared *wfpb_broker_declared(const struct wfpb_broker *b, const char *name);

#endif
