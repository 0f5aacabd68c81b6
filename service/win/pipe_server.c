/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Named-pipe server on one I/O completion port, served by a pool of worker
 * threads. Each connection has at most one read and one write in flight.
 *
 * Locks, always taken in this order:
 *   conn->lock	a connection and its session; held by the one worker
 *		serving a completion (or a sweep, or a commit's release) for it
 *   core	everything sessions share (broker.h), installed as the broker's
 *		core lock; session.c takes it around dispatch, so handshakes and
 *		decryption of different clients run in parallel
 *   sv->list	the list of connections and each one's holds
 * A connection is freed by whoever leaves it last: closing, no operation in
 * flight and no hold (a sweep or a release that found it in the list and is
 * about to take its lock), so no completion or waiter ever names freed
 * memory. ERROR_PIPE_CONNECTED and ERROR_NO_DATA are the normal races of a
 * client that connected, or left, before we looked.
 */
#include <winsock2.h>
#include <windows.h>
#include <sddl.h>

#include <stdlib.h>
#include <string.h>

#include "identity_win.h"
#include "log.h"
#include "pipe_server.h"
#include "service_win.h"
#include "session.h"
#include "wide_win.h"

#define PIPE_BUF_SIZE	65536u
#define READ_CHUNK	16384u
#define TICK_MS		100u
#define KEY_STOP	1u
#define KEY_COMMIT	2u	/* the committer thread finished a batch */
#define KEY_RELOAD	3u	/* re-read the configuration (SERVICE_CONTROL_PARAMCHANGE) */
#define DRAIN_MS	5000u
#define WORKERS_AUTO_MIN 2u
#define WORKERS_AUTO_MAX 8u
#define RELEASE_BATCH	64u	/* sessions a commit releases per turn of the core lock */

struct pconn {
	CRITICAL_SECTION	lock;
	HANDLE			pipe;
	OVERLAPPED		ov_connect, ov_read, ov_write, ov_watch;
	struct wfpb_pipe_server	*sv;
	/*
	 * The sockets pending requests wait on share one event (WSAEventSelect),
	 * a registered wait on it posts a completion, and the session then checks
	 * each without blocking.
	 */
	HANDLE			watch_event, wait_handle;
	volatile LONG		fired;
	int			pending;	/* operations in flight */
	int			identified;
	HANDLE			process;	/* the client process, pinned for the connection (identity_win.h) */
	int			read_paused;	/* no read armed: the session is over its output budget */
	int			closing;
	struct wfpb_session	*s;
	uint8_t			*wbuf;		/* the in-flight write's bytes */
	/* sv->list: */
	int			holds;		/* threads about to take the lock without a completion */
	int			linked;
	struct pconn		*prev, *next;
	uint8_t			rbuf[READ_CHUNK];
};

struct wfpb_pipe_server {
	struct wfpb_broker	*b;
	HANDLE			iocp;
	wchar_t			*name;
	SRWLOCK			core;		/* the broker's core lock */
	volatile LONG		core_owner;	/* the thread id holding it, 0 when free */
	SRWLOCK			list;		/* conns, nconns, and every conn's holds and linked */
	struct pconn		*conns;		/* every live instance, listening ones included */
	size_t			nconns;
	volatile LONG		stop;
	HANDLE			*workers;	/* the pool beyond the thread that calls _run */
	unsigned		nworkers;	/* threads serving, that one included */
	volatile LONG64		last_sweep;
	volatile LONG		sweeping;
	/*
	 * The committer thread writes and flushes audit batches while the
	 * workers serve; it posts KEY_COMMIT when one is done.
	 */
	HANDLE			committer, commit_go;
	volatile LONG		commit_quit;

};

static uint64_t
now_ms(void)
{
	return GetTickCount64();
}

static void
core_enter(struct wfpb_pipe_server *sv)
{
	AcquireSRWLockExclusive(&sv->core);
	InterlockedExchange(&sv->core_owner, (LONG)GetCurrentThreadId());
}

static void
core_leave(struct wfpb_pipe_server *sv)
{
	InterlockedExchange(&sv->core_owner, 0);
	ReleaseSRWLockExclusive(&sv->core);
}

/* The broker's core-lock hooks (broker.h). */
static void
core_lock(void *arg)
{
	core_enter(arg);
}

static void
core_unlock(void *arg)
{
	core_leave(arg);
}

static int
core_owned(void *arg)
{
	struct wfpb_pipe_server *sv = arg;

	return InterlockedCompareExchange(&sv->core_owner, 0, 0) == (LONG)GetCurrentThreadId();
}

static void
conn_free(struct wfpb_pipe_server *sv, struct pconn *c)
{
	if (c->pipe != INVALID_HANDLE_VALUE)
		CloseHandle(c->pipe);
	if (c->s != NULL) {
		core_enter(sv);
		wfpb_session_free(c->s);
		core_leave(sv);
	}
	/* After the session: its sockets, which name the event, are closed. */
	if (c->watch_event != NULL)
		CloseHandle(c->watch_event);
	/* After the session: nothing names the process any more. */
	if (c->process != NULL)
		CloseHandle(c->process);
	free(c->wbuf);
	DeleteCriticalSection(&c->lock);
	free(c);
}

/*
 * Releases the connection's lock; frees it if this was the last use: closing,
 * nothing in flight, nobody holding it. Only a linked connection can gain a
 * hold, and unlinking happens under the same list lock, so exactly one thread
 * frees it and nobody waits on its lock then.
 */
static void
conn_leave(struct wfpb_pipe_server *sv, struct pconn *c)
{
	int gone = 0;

	if (c->closing && c->pending == 0) {
		AcquireSRWLockExclusive(&sv->list);
		if (c->holds == 0 && c->linked) {
			if (c->prev)
				c->prev->next = c->next;
			else
				sv->conns = c->next;
			if (c->next)
				c->next->prev = c->prev;
			c->linked = 0;
			sv->nconns--;
			gone = 1;
		}
		ReleaseSRWLockExclusive(&sv->list);
	}
	LeaveCriticalSection(&c->lock);
	if (gone)
		conn_free(sv, c);
}

/* Takes the lock of a connection held with hold_locked; the hold goes. */
static void
conn_enter_held(struct wfpb_pipe_server *sv, struct pconn *c)
{
	EnterCriticalSection(&c->lock);
	AcquireSRWLockExclusive(&sv->list);
	c->holds--;
	ReleaseSRWLockExclusive(&sv->list);
}

static void CALLBACK
watch_fired(void *arg, BOOLEAN timed_out)
{
	struct pconn *c = arg;

	(void)timed_out;
	InterlockedExchange(&c->fired, 1);
	PostQueuedCompletionStatus(c->sv->iocp, 0, (ULONG_PTR)c, &c->ov_watch);
}

/* Stops waiting; a completion already posted still arrives and is counted then. */
static void
disarm(struct pconn *c)
{
	if (c->wait_handle == NULL)
		return;
	UnregisterWaitEx(c->wait_handle, INVALID_HANDLE_VALUE);
	c->wait_handle = NULL;
	if (!InterlockedExchange(&c->fired, 0))
		c->pending--;
}

/*
 * Keeps the session's watched sockets selected into its event and a wait
 * registered on it while any is watched (session.h). A socket no request
 * waits on any more is not deselected: it may be closed already and its
 * handle value another session's socket by now, and a listener left
 * selected costs at most one spurious pass. A socket just selected may have
 * become ready before: the event is set once so the session checks.
 */
static void
sync_watch(struct pconn *c)
{
	struct wfpb_watch	*w;
	unsigned		n, i;
	int			added = 0;

	if (c->s == NULL || c->closing) {
		disarm(c);
		return;
	}
	if (wfpb_session_watches_changed(c->s)) {
		if (c->watch_event == NULL && (c->watch_event = CreateEventW(NULL, FALSE, FALSE, NULL)) == NULL) {
			wfpb_log(WFPB_LOG_ERR, "CreateEventW: error %lu; pending requests can only time out",
			    GetLastError());
			return;
		}
		w = wfpb_session_watches(c->s, &n);
		for (i = 0; i < n; i++) {
			if (w[i].refs == 0 || w[i].server != NULL)
				continue;
			/* A listener's wait: a connection (TCP) or a datagram (UDP, a Flow); each never fires for the other. */
			if (WSAEventSelect((SOCKET)w[i].sock, c->watch_event, w[i].want_write ? FD_CONNECT :
			    FD_ACCEPT | FD_READ) != 0) {
				wfpb_log(WFPB_LOG_WARN, "WSAEventSelect: error %d", WSAGetLastError());
				continue;
			}
			w[i].server = c;
			added = 1;
		}
		wfpb_session_watches_synced(c->s);
	}
	(void)wfpb_session_watches(c->s, &n);
	if (n == 0) {
		disarm(c);
		return;
	}
	if (c->wait_handle == NULL) {
		c->fired = 0;
		if (!RegisterWaitForSingleObject(&c->wait_handle, c->watch_event, watch_fired, c, INFINITE,
		    WT_EXECUTEONLYONCE)) {
			wfpb_log(WFPB_LOG_WARN, "RegisterWaitForSingleObject: error %lu", GetLastError());
			c->wait_handle = NULL;
			return;
		}
		c->pending++;
	}
	if (added)
		SetEvent(c->watch_event);
}

/* Starts closing: cancel what is in flight; conn_leave frees it once the last completion is in. */
static void
conn_close(struct pconn *c)
{
	if (c->closing)
		return;
	disarm(c);
	c->closing = 1;
	if (c->pending > 0)
		CancelIoEx(c->pipe, NULL);
	/*
	 * No DisconnectNamedPipe: it discards what the client has not read yet
	 * (a reject notice, a last answer). Instances are never reused, so
	 * closing the handle is enough, and the client reads to the end.
	 */
}

/* Creates a listening instance and starts ConnectNamedPipe on it. */
static int
listen_instance(struct wfpb_pipe_server *sv, int first)
{
	SECURITY_ATTRIBUTES	sa = { .nLength = sizeof(sa) };
	struct pconn		*c;
	DWORD			err;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return WFPB_E_NOMEM;
	c->sv = sv;
	if (!ConvertStringSecurityDescriptorToSecurityDescriptorW(WFPB_PIPE_SDDL, SDDL_REVISION_1,
	    &sa.lpSecurityDescriptor, NULL)) {
		err = GetLastError();
		free(c);
		wfpb_log(WFPB_LOG_ERR, "pipe: SDDL: error %lu", err);
		return WFPB_E_IO;
	}
	c->pipe = CreateNamedPipeW(sv->name, PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED |
	    (first ? FILE_FLAG_FIRST_PIPE_INSTANCE : 0), PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT |
	    PIPE_REJECT_REMOTE_CLIENTS, PIPE_UNLIMITED_INSTANCES, PIPE_BUF_SIZE, PIPE_BUF_SIZE, 0, &sa);
	err = GetLastError();
	LocalFree(sa.lpSecurityDescriptor);
	if (c->pipe == INVALID_HANDLE_VALUE) {
		free(c);
		wfpb_log(WFPB_LOG_ERR, "pipe: CreateNamedPipeW: error %lu%s", err,
		    err == ERROR_ACCESS_DENIED && first ? " (another process owns the pipe name)" : "");
		return err == ERROR_ACCESS_DENIED ? WFPB_E_ACCESS : WFPB_E_IO;
	}
	/* The completion key names the connection; the OVERLAPPED names the operation. */
	if (CreateIoCompletionPort(c->pipe, sv->iocp, (ULONG_PTR)c, 0) == NULL) {
		err = GetLastError();
		CloseHandle(c->pipe);
		free(c);
		wfpb_log(WFPB_LOG_ERR, "pipe: CreateIoCompletionPort: error %lu", err);
		return WFPB_E_IO;
	}
	InitializeCriticalSection(&c->lock);
	/* Held from before its first operation: that completion may reach another worker at once. */
	EnterCriticalSection(&c->lock);
	AcquireSRWLockExclusive(&sv->list);
	c->next = sv->conns;
	if (sv->conns)
		sv->conns->prev = c;
	sv->conns = c;
	c->linked = 1;
	sv->nconns++;
	ReleaseSRWLockExclusive(&sv->list);
	c->pending++;
	if (!ConnectNamedPipe(c->pipe, &c->ov_connect)) {
		err = GetLastError();
		if (err == ERROR_PIPE_CONNECTED) {
			/* The client beat us to it; no packet was queued, so post one. */
			PostQueuedCompletionStatus(sv->iocp, 0, (ULONG_PTR)c, &c->ov_connect);
		} else if (err != ERROR_IO_PENDING) {
			c->pending--;
			wfpb_log(WFPB_LOG_WARN, "pipe: ConnectNamedPipe: error %lu", err);
			conn_close(c);
		}
	}
	conn_leave(sv, c);
	return 0;
}

static void
start_read(struct pconn *c)
{
	memset(&c->ov_read, 0, sizeof(c->ov_read));
	c->pending++;
	if (ReadFile(c->pipe, c->rbuf, sizeof(c->rbuf), NULL, &c->ov_read) || GetLastError() == ERROR_IO_PENDING)
		return;
	c->pending--;
	conn_close(c);
}

/* Starts a write of all pending session output if none is in flight. */
static void
pump_write(struct pconn *c)
{
	const uint8_t	*p;
	wfpb_sock	attach;
	size_t		len;

	if (c->wbuf != NULL || c->s == NULL || c->closing)
		return;
	/* Sockets travel inside the frames on Windows (duplicated as the session releases them): no attachment. */
	if ((p = wfpb_session_output(c->s, &len, &attach)) == NULL) {
		if (c->s->closing)
			conn_close(c);
		return;
	}
	if ((c->wbuf = malloc(len)) == NULL) {
		conn_close(c);
		return;
	}
	/* Copied: the session may append (and reallocate) while this write is in flight. */
	memcpy(c->wbuf, p, len);
	wfpb_session_output_done(c->s, len);
	memset(&c->ov_write, 0, sizeof(c->ov_write));
	c->pending++;
	if (!WriteFile(c->pipe, c->wbuf, (DWORD)len, NULL, &c->ov_write) && GetLastError() != ERROR_IO_PENDING) {
		c->pending--;
		free(c->wbuf);
		c->wbuf = NULL;
		conn_close(c);
	}
}

/* Refuses a connection past the session limit: a busy notice, then close. */
static void
refuse_busy(struct wfpb_pipe_server *sv, struct pconn *c)
{
	uint8_t	notice[WFPB_REJECT_MAX + 2];
	size_t	len = wfpb_admit_busy_notice(sv->b, notice, sizeof(notice));

	if (len > 0 && (c->wbuf = malloc(len)) != NULL) {
		memcpy(c->wbuf, notice, len);
		memset(&c->ov_write, 0, sizeof(c->ov_write));
		c->pending++;
		if (!WriteFile(c->pipe, c->wbuf, (DWORD)len, NULL, &c->ov_write) &&
		    GetLastError() != ERROR_IO_PENDING)
			c->pending--;
	}
	/* Closing, but not cancelled: the notice's write completes, and then the instance goes. */
	c->closing = 1;
}

/* A client connected: it counts against the limit from now, not from its first byte. */
static void
on_connect(struct wfpb_pipe_server *sv, struct pconn *c)
{
	struct wfpb_identity	unknown = { .known = 0, .uid = -1, .gid = -1 };
	int			busy;

	/* The identity is readable only after the client writes; its per-user cap applies then (on_read). */
	core_enter(sv);
	busy = wfpb_admit_session(sv->b, NULL) != 0;
	if (!busy)
		c->s = wfpb_session_new(sv->b, &unknown, now_ms());
	core_leave(sv);
	if (busy) {
		refuse_busy(sv, c);
		return;
	}
	if (c->s == NULL) {
		conn_close(c);
		return;
	}
	c->s->user = c;
	start_read(c);
}

static void
on_read(struct pconn *c, DWORD n)
{
	struct wfpb_identity	id;
	int			rc;

	/* The client's token is readable once it has written: identify on the first read. */
	if (!c->identified) {
		wfpb__identify_pipe_client(c->pipe, &id);
		c->process = (HANDLE)id.process;
		/* Past the identity's session cap the session queues a busy notice and is closing. */
		(void)wfpb_session_set_identity(c->s, &id);
		c->identified = 1;
	}
	rc = wfpb_session_input(c->s, c->rbuf, n, now_ms());
	if (rc < 0 && rc != WFPB_E_STATE)
		wfpb_log(WFPB_LOG_INFO, "session pid %u closed: %s", (unsigned)c->s->id.pid, wfpb_strerror(rc));
	sync_watch(c);
	pump_write(c);
	if (c->closing || c->s->closing)
		return;
	/* Backpressure: a client that does not read its answers is not read either. */
	if (wfpb_session_wants_input(c->s))
		start_read(c);
	else
		c->read_paused = 1;
}

/* A write completed: held requests may run again, and a paused read resumes. */
static void
on_written(struct pconn *c)
{
	if (c->s == NULL)
		return;
	if (wfpb_session_unthrottle(c->s, now_ms()) < 0) {
		conn_close(c);
		return;
	}
	sync_watch(c);
	pump_write(c);
	if (c->closing || c->s->closing || !c->read_paused || !wfpb_session_wants_input(c->s))
		return;
	c->read_paused = 0;
	start_read(c);
}

/* Serves one completion for c, whose lock the caller holds. */
static void
on_completion(struct wfpb_pipe_server *sv, struct pconn *c, OVERLAPPED *ov, DWORD n, BOOL ok, DWORD err)
{
	int is_read, is_write, rc;

	if (ov != &c->ov_connect && ov != &c->ov_read && ov != &c->ov_write && ov != &c->ov_watch)
		abort();	/* a completion for an unknown operation: our bookkeeping is broken */
	c->pending--;
	if (ov == &c->ov_watch) {
		/* The wait fired once; release it before anything re-arms. */
		if (c->wait_handle != NULL)
			UnregisterWaitEx(c->wait_handle, INVALID_HANDLE_VALUE);
		c->wait_handle = NULL;
		c->fired = 0;
		if (c->closing || sv->stop || c->s == NULL) {
			conn_close(c);
			return;
		}
		/* One event for all its sockets: each request checks its own. */
		if ((rc = wfpb_session_resume(c->s, WFPB_SOCK_NONE, now_ms())) < 0)
			wfpb_log(WFPB_LOG_INFO, "session pid %u closed: %s", (unsigned)c->s->id.pid,
			    wfpb_strerror(rc));
		sync_watch(c);
		pump_write(c);
		return;
	}
	is_read = ov == &c->ov_read;
	is_write = ov == &c->ov_write;
	if (is_write) {
		free(c->wbuf);
		c->wbuf = NULL;
	}
	if (c->closing || sv->stop) {
		conn_close(c);
		return;
	}
	if (ov == &c->ov_connect) {
		/* A client holds this instance now; the next one waits for the next client. */
		if (listen_instance(sv, 0) != 0)
			wfpb_log(WFPB_LOG_ERR, "pipe: cannot create a new listening instance");
		if (!ok && err != ERROR_PIPE_CONNECTED) {
			conn_close(c);
			return;
		}
		on_connect(sv, c);
		return;
	}
	if (!ok || (is_read && n == 0)) {
		conn_close(c);
		return;
	}
	if (is_read)
		on_read(c, n);
	else if (is_write)
		on_written(c);
}

/*
 * Every connection whose deadline passed: a pending operation times out, a
 * silent handshake or idle session is closed. One worker at a time sweeps.
 */
static void
sweep(struct wfpb_pipe_server *sv)
{
	struct pconn	**held, *c;
	size_t		n = 0, i;
	uint64_t	now = now_ms();

	AcquireSRWLockExclusive(&sv->list);
	if ((held = malloc((sv->nconns + 1) * sizeof(*held))) != NULL) {
		for (c = sv->conns; c != NULL; c = c->next) {
			c->holds++;
			held[n++] = c;
		}
	}
	ReleaseSRWLockExclusive(&sv->list);
	if (held == NULL)
		return;	/* out of memory: the next tick tries again */
	for (i = 0; i < n; i++) {
		c = held[i];
		conn_enter_held(sv, c);
		if (c->s != NULL && !c->closing) {
			switch (wfpb_session_sweep(c->s, now)) {
			case WFPB_SWEEP_KEEP:
				break;
			case WFPB_SWEEP_CLOSE:
				conn_close(c);
				break;
			case WFPB_SWEEP_FLUSH:
				sync_watch(c);
				pump_write(c);
				break;
			}
		}
		conn_leave(sv, c);
	}
	free(held);
}

int
wfpb_pipe_server_new(struct wfpb_broker *b, struct wfpb_pipe_server **out)
{
	struct wfpb_pipe_server	*sv;
	SYSTEM_INFO		si;
	int			rc;

	*out = NULL;
	if (_strnicmp(b->cfg.endpoint, "\\\\.\\pipe\\", 9) != 0 || strlen(b->cfg.endpoint) > 256) {
		wfpb_log(WFPB_LOG_ERR, "endpoint %s: must be a local pipe name \\\\.\\pipe\\NAME", b->cfg.endpoint);
		return WFPB_E_CONFIG;
	}
	if ((sv = calloc(1, sizeof(*sv))) == NULL || (sv->name = wfpb__widen(b->cfg.endpoint)) == NULL) {
		free(sv);
		return WFPB_E_NOMEM;
	}
	sv->b = b;
	InitializeSRWLock(&sv->core);
	InitializeSRWLock(&sv->list);
	sv->nworkers = b->cfg.workers;
	if (sv->nworkers == 0) {
		GetSystemInfo(&si);
		sv->nworkers = si.dwNumberOfProcessors;
		if (sv->nworkers < WORKERS_AUTO_MIN)
			sv->nworkers = WORKERS_AUTO_MIN;
		if (sv->nworkers > WORKERS_AUTO_MAX)
			sv->nworkers = WORKERS_AUTO_MAX;
	}
	if ((sv->iocp = CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 0, sv->nworkers)) == NULL) {
		wfpb_pipe_server_free(sv);
		return WFPB_E_IO;
	}
	if ((rc = listen_instance(sv, 1)) != 0) {
		wfpb_pipe_server_free(sv);
		return rc;
	}
	*out = sv;
	return 0;
}

static DWORD WINAPI
committer_main(LPVOID arg)
{
	struct wfpb_pipe_server *sv = arg;

	for (;;) {
		WaitForSingleObject(sv->commit_go, INFINITE);
		if (InterlockedCompareExchange(&sv->commit_quit, 0, 0))
			return 0;
		wfpb_audit_flush_inflight(&sv->b->audit);
		PostQueuedCompletionStatus(sv->iocp, 0, KEY_COMMIT, NULL);
	}
}

/*
 * The sessions a commit released get their answers. Called with the core
 * lock held; returns with it released. They are taken off the ready list a
 * batch at a time under the core lock, held, and written under their own.
 */
static void
release_ready(struct wfpb_pipe_server *sv)
{
	struct wfpb_session	*s;
	struct pconn		*batch[RELEASE_BATCH];
	unsigned		n, i;

	for (;;) {
		n = 0;
		AcquireSRWLockExclusive(&sv->list);
		while (n < RELEASE_BATCH && (s = wfpb_broker_next_ready(sv->b)) != NULL) {
			/* Unlinked: its connection is on its way to conn_free, which frees the session. */
			if (!((struct pconn *)s->user)->linked)
				continue;
			batch[n] = s->user;
			batch[n++]->holds++;
		}
		ReleaseSRWLockExclusive(&sv->list);
		core_leave(sv);
		if (n == 0)
			return;
		for (i = 0; i < n; i++) {
			conn_enter_held(sv, batch[i]);
			if (batch[i]->s != NULL) {
				wfpb_session_released(batch[i]->s, now_ms());
				pump_write(batch[i]);
			}
			conn_leave(sv, batch[i]);
		}
		core_enter(sv);
	}
}

/* After a completion: start a batch if one is due (inline when there is no committer). */
static void
commit_step(struct wfpb_pipe_server *sv)
{
	int step;

	core_enter(sv);
	step = wfpb_broker_commit_step(sv->b, sv->committer != NULL, now_ms());
	if (step == WFPB_COMMIT_READY) {
		release_ready(sv);
		return;
	}
	if (step == WFPB_COMMIT_HANDOFF)
		SetEvent(sv->commit_go);
	core_leave(sv);
}

static void
commit_done(struct wfpb_pipe_server *sv)
{
	core_enter(sv);
	if (wfpb_broker_commit_done(sv->b, now_ms())) {
		release_ready(sv);
		return;
	}
	core_leave(sv);
}

/* One dequeued packet. Returns 0, or 1 for KEY_STOP. */
static int
serve_packet(struct wfpb_pipe_server *sv, OVERLAPPED *ov, ULONG_PTR key, DWORD n, BOOL ok, DWORD err)
{
	struct pconn *c;

	if (ov != NULL) {
		c = (struct pconn *)key;
		EnterCriticalSection(&c->lock);
		on_completion(sv, c, ov, n, ok, err);
		conn_leave(sv, c);
	} else if (ok && key == KEY_COMMIT) {
		commit_done(sv);
	} else if (ok && key == KEY_STOP) {
		return 1;
	} else if (ok && key == KEY_RELOAD) {
		struct wfpb_ini_error why;

		/* The broker logs the outcome, a refused file with its line included. */
		core_enter(sv);
		(void)wfpb_broker_reload_file(sv->b, &why);
		core_leave(sv);
	}
	return 0;
}

/* Waits up to ms for one packet and serves it. Returns as serve_packet, or 0 on a timeout. */
static int
serve_one(struct wfpb_pipe_server *sv, DWORD ms)
{
	OVERLAPPED	*ov = NULL;
	ULONG_PTR	key = 0;
	DWORD		n = 0, err;
	BOOL		ok;

	ok = GetQueuedCompletionStatus(sv->iocp, &n, &key, &ov, ms);
	err = ok ? 0 : GetLastError();
	if (!ok && ov == NULL)
		return 0;	/* timed out */
	return serve_packet(sv, ov, key, n, ok, err);
}

/* Every worker: serve packets; whoever first sees the tick due sweeps and ticks the broker. */
static DWORD WINAPI
worker_main(LPVOID arg)
{
	struct wfpb_pipe_server	*sv = arg;
	LONG64			last;
	uint64_t		now;

	while (!sv->stop) {
		if (serve_one(sv, TICK_MS))
			break;
		now = now_ms();
		last = InterlockedCompareExchange64(&sv->last_sweep, 0, 0);
		if (now - (uint64_t)last >= TICK_MS && !InterlockedExchange(&sv->sweeping, 1)) {
			if (InterlockedCompareExchange64(&sv->last_sweep, (LONG64)now, last) == last) {
				sweep(sv);
				core_enter(sv);
				wfpb_broker_tick(sv->b, now_ms());
				core_leave(sv);
			}
			InterlockedExchange(&sv->sweeping, 0);
		}
		/* Group commit: one FlushFileBuffers for the records queued so far, while serving on. */
		commit_step(sv);
	}
	return 0;
}

/* At stop: the batch in flight is finished, serving completions meanwhile, then the thread ends. */
static void
committer_stop(struct wfpb_pipe_server *sv, uint64_t until)
{
	int busy = 1;

	if (sv->committer == NULL)
		return;
	while (now_ms() < until) {
		core_enter(sv);
		busy = wfpb_broker_commit_busy(sv->b);
		core_leave(sv);
		if (!busy)
			break;
		(void)serve_one(sv, TICK_MS);
	}
	/* The thread must be gone before the audit log closes, even if its flush is slow. */
	InterlockedExchange(&sv->commit_quit, 1);
	SetEvent(sv->commit_go);
	WaitForSingleObject(sv->committer, INFINITE);
	CloseHandle(sv->committer);
	sv->committer = NULL;
	if (busy)
		commit_done(sv);	/* its KEY_COMMIT is left in the port, unread */
}

int
wfpb_pipe_server_run(struct wfpb_pipe_server *sv)
{
	uint64_t	until;
	struct pconn	*c, *next;
	unsigned	i, started = 0;

	if ((sv->commit_go = CreateEventW(NULL, FALSE, FALSE, NULL)) != NULL &&
	    (sv->committer = CreateThread(NULL, 0, committer_main, sv, 0, NULL)) == NULL)
		wfpb_log(WFPB_LOG_WARN, "no committer thread: audit commits run on the workers");
	/* From here the core is shared: install its lock before any second thread can touch it. */
	sv->b->lock = core_lock;
	sv->b->unlock = core_unlock;
	sv->b->owned = core_owned;
	sv->b->lock_arg = sv;
	sv->last_sweep = (LONG64)now_ms();
	if (sv->nworkers > 1 && (sv->workers = calloc(sv->nworkers - 1, sizeof(*sv->workers))) != NULL) {
		for (i = 0; i + 1 < sv->nworkers; i++) {
			if ((sv->workers[i] = CreateThread(NULL, 0, worker_main, sv, 0, NULL)) == NULL)
				break;
			started++;
		}
	}
	if (started + 1 < sv->nworkers)
		wfpb_log(WFPB_LOG_WARN, "started %u of %u workers", started + 1, sv->nworkers);
	sv->nworkers = started + 1;
	core_enter(sv);
	sv->b->workers = sv->nworkers;
	core_leave(sv);
	wfpb_log(WFPB_LOG_INFO, "listening on %s with %u workers", sv->b->cfg.endpoint, sv->nworkers);
	(void)worker_main(sv);
	InterlockedExchange(&sv->stop, 1);
	/* Each worker ends on its own KEY_STOP or, at the latest, one tick after stop was set. */
	for (i = 0; i < started; i++) {
		WaitForSingleObject(sv->workers[i], INFINITE);
		CloseHandle(sv->workers[i]);
	}
	free(sv->workers);
	sv->workers = NULL;
	/* One thread from here on: finish the audit batch in flight, then close every session. */
	committer_stop(sv, now_ms() + DRAIN_MS);
	wfpb_log(WFPB_LOG_INFO, "stopping: closing %u sessions", sv->b->sessions);
	sv->b->stopping = 1;	/* the reason their end records give */
	for (c = sv->conns; c != NULL; c = next) {
		next = c->next;
		EnterCriticalSection(&c->lock);
		conn_close(c);
		conn_leave(sv, c);
	}
	/* Drain: every cancelled operation still completes before its memory goes. */
	until = now_ms() + DRAIN_MS;
	while (sv->conns != NULL && now_ms() < until) {
		wfpb_service_report_stopping();	/* the SCM sees the stop advance while it drains */
		(void)serve_one(sv, TICK_MS);
	}
	return sv->conns == NULL ? 0 : WFPB_E_TIMEOUT;
}

void
wfpb_pipe_server_stop(struct wfpb_pipe_server *sv)
{
	unsigned i;

	InterlockedExchange(&sv->stop, 1);
	for (i = 0; i < (sv->nworkers ? sv->nworkers : 1); i++)
		PostQueuedCompletionStatus(sv->iocp, 0, KEY_STOP, NULL);
}

void
wfpb_pipe_server_reload(struct wfpb_pipe_server *sv)
{
	PostQueuedCompletionStatus(sv->iocp, 0, KEY_RELOAD, NULL);
}

void
wfpb_pipe_server_free(struct wfpb_pipe_server *sv)
{
	struct pconn *c;

	if (sv == NULL)
		return;
	/* Only instances whose operations all completed are freed; others leak deliberately. */
	while ((c = sv->conns) != NULL && c->pending == 0) {
		sv->conns = c->next;
		conn_free(sv, c);
	}
	/* The broker outlives the server: it is single-threaded again. */
	sv->b->lock = sv->b->unlock = NULL;
	sv->b->owned = NULL;
	sv->b->lock_arg = NULL;
	if (sv->commit_go != NULL)
		CloseHandle(sv->commit_go);
	if (sv->iocp != NULL)
		CloseHandle(sv->iocp);
	free(sv->name);
	free(sv);
}
