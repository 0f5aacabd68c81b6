/*
 * Named-pipe server on one I/O completion port. Each connection has at most
 * one read and one write in flight; a connection being closed is freed only
 * when every operation it started has completed, so no completion ever names
 * freed memory. ERROR_PIPE_CONNECTED and ERROR_NO_DATA are the normal races of
 * a client that connected, or left, before we looked.
 */
#include <winsock2.h>
#include <windows.h>
#include <sddl.h>

#include <stdlib.h>
#include <string.h>

#include "identity_win.h"
#include "log.h"
#include "pipe_server.h"
#include "session.h"
#include "wide_win.h"

#define PIPE_BUF_SIZE	65536u
#define READ_CHUNK	16384u
#define TICK_MS		100u
#define KEY_STOP	1u
#define KEY_COMMIT	2u	/* the committer thread finished a batch */
#define DRAIN_MS	5000u

struct pconn {
	HANDLE			pipe;
	OVERLAPPED		ov_connect, ov_read, ov_write, ov_watch;
	struct wfpb_pipe_server	*sv;
	/* The socket a pending Accept/Connect waits on: an event, a registered wait, a posted completion. */
	wfpb_sock		watched;
	int			watched_write;
	HANDLE			watch_event, wait_handle;
	volatile LONG		fired;
	int			pending;	/* operations in flight */
	int			connected;
	int			identified;
	int			closing;
	struct wfpb_session	*s;
	uint8_t			*wbuf;		/* the in-flight write's bytes */
	struct pconn		*prev, *next;
	uint8_t			rbuf[READ_CHUNK];
};

struct wfpb_pipe_server {
	struct wfpb_broker	*b;
	HANDLE			iocp;
	wchar_t			*name;
	struct pconn		*conns;		/* every live instance, listening ones included */
	volatile LONG		stop;
	/*
	 * The committer thread writes and flushes audit batches while the
	 * completion-port thread serves; it posts KEY_COMMIT when one is done.
	 */
	HANDLE			committer, commit_go;
	volatile LONG		commit_quit;
	int			commit_busy;	/* completion-port thread only */
};

static uint64_t
now_ms(void)
{
	return GetTickCount64();
}

static void
link_conn(struct wfpb_pipe_server *sv, struct pconn *c)
{
	c->next = sv->conns;
	if (sv->conns)
		sv->conns->prev = c;
	sv->conns = c;
}

static void
unlink_free(struct wfpb_pipe_server *sv, struct pconn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		sv->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	if (c->pipe != INVALID_HANDLE_VALUE)
		CloseHandle(c->pipe);
	if (c->watch_event != NULL)
		CloseHandle(c->watch_event);
	wfpb_session_free(c->s);
	free(c->wbuf);
	free(c);
}

static void CALLBACK
watch_fired(void *arg, BOOLEAN timed_out)
{
	struct pconn *c = arg;

	(void)timed_out;
	InterlockedExchange(&c->fired, 1);
	PostQueuedCompletionStatus(c->sv->iocp, 0, (ULONG_PTR)c, &c->ov_watch);
}

/* Stops watching; a completion already posted still arrives and is counted then. */
static void
disarm(struct pconn *c)
{
	if (c->wait_handle == NULL)
		return;
	UnregisterWaitEx(c->wait_handle, INVALID_HANDLE_VALUE);
	c->wait_handle = NULL;
	if (c->watched != WFPB_SOCK_NONE)
		WSAEventSelect((SOCKET)c->watched, NULL, 0);
	if (!InterlockedExchange(&c->fired, 0))
		c->pending--;
	c->watched = WFPB_SOCK_NONE;
}

/* Keeps a wait registered on the socket the session's pending operation needs. */
static void
sync_watch(struct pconn *c)
{
	wfpb_sock	sock = WFPB_SOCK_NONE;
	int		want_write = 0;

	if (c->s == NULL || c->closing || !wfpb_session_waits(c->s, &sock, &want_write))
		sock = WFPB_SOCK_NONE;
	if (sock == c->watched && want_write == c->watched_write && (sock == WFPB_SOCK_NONE || c->wait_handle))
		return;
	disarm(c);
	if (sock == WFPB_SOCK_NONE)
		return;
	if (c->watch_event == NULL && (c->watch_event = CreateEventW(NULL, FALSE, FALSE, NULL)) == NULL)
		return;
	if (WSAEventSelect((SOCKET)sock, c->watch_event, want_write ? FD_CONNECT : FD_ACCEPT) != 0) {
		wfpb_log(WFPB_LOG_WARN, "WSAEventSelect: error %d", WSAGetLastError());
		return;
	}
	c->fired = 0;
	if (!RegisterWaitForSingleObject(&c->wait_handle, c->watch_event, watch_fired, c, INFINITE,
	    WT_EXECUTEONLYONCE)) {
		wfpb_log(WFPB_LOG_WARN, "RegisterWaitForSingleObject: error %lu", GetLastError());
		c->wait_handle = NULL;
		return;
	}
	c->pending++;
	c->watched = sock;
	c->watched_write = want_write;
}

/* Starts closing: cancel what is in flight; the last completion frees it. */
static void
conn_close(struct wfpb_pipe_server *sv, struct pconn *c)
{
	if (!c->closing) {
		disarm(c);
		c->closing = 1;
		if (c->pending > 0)
			CancelIoEx(c->pipe, NULL);
		/*
		 * No DisconnectNamedPipe: it discards what the client has not read
		 * yet (a reject notice, a last answer). Instances are never reused,
		 * so closing the handle is enough, and the client reads to the end.
		 */
	}
	if (c->pending == 0)
		unlink_free(sv, c);
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
	c->watched = WFPB_SOCK_NONE;
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
	link_conn(sv, c);
	c->pending++;
	if (ConnectNamedPipe(c->pipe, &c->ov_connect))
		return 0;	/* completion still queued */
	err = GetLastError();
	if (err == ERROR_IO_PENDING)
		return 0;
	if (err == ERROR_PIPE_CONNECTED) {
		/* The client beat us to it; no packet was queued, so post one. */
		PostQueuedCompletionStatus(sv->iocp, 0, (ULONG_PTR)c, &c->ov_connect);
		return 0;
	}
	c->pending--;
	wfpb_log(WFPB_LOG_WARN, "pipe: ConnectNamedPipe: error %lu", err);
	conn_close(sv, c);
	return 0;
}

static void
start_read(struct wfpb_pipe_server *sv, struct pconn *c)
{
	DWORD err;

	memset(&c->ov_read, 0, sizeof(c->ov_read));
	c->pending++;
	if (ReadFile(c->pipe, c->rbuf, sizeof(c->rbuf), NULL, &c->ov_read))
		return;
	if ((err = GetLastError()) == ERROR_IO_PENDING)
		return;
	c->pending--;
	conn_close(sv, c);
}

/* Starts a write of all pending session output if none is in flight. */
static void
pump_write(struct wfpb_pipe_server *sv, struct pconn *c)
{
	const uint8_t	*p;
	wfpb_sock	attach;
	size_t		len;

	if (c->wbuf != NULL || c->s == NULL)
		return;
	/* No operation creates sockets for pipe clients yet (net_win.c), so nothing is attached. */
	if ((p = wfpb_session_output(c->s, &len, &attach)) == NULL) {
		if (c->s->closing)
			conn_close(sv, c);
		return;
	}
	if ((c->wbuf = malloc(len)) == NULL) {
		conn_close(sv, c);
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
		conn_close(sv, c);
	}
}

/* Refuses a connection past the session limit: a busy notice, then close. */
static void
refuse_busy(struct wfpb_pipe_server *sv, struct pconn *c)
{
	struct wfpb_channel	ch;
	const uint8_t		*p;
	size_t			len;

	wfpb_channel_server_init(&ch, sv->b->key, NULL, NULL);
	wfpb_channel_reject(&ch, WFPB_REJECT_BUSY);
	p = wfpb_channel_output(&ch, &len);
	c->closing = 1;
	if (p != NULL && (c->wbuf = malloc(len)) != NULL) {
		memcpy(c->wbuf, p, len);
		memset(&c->ov_write, 0, sizeof(c->ov_write));
		c->pending++;
		if (!WriteFile(c->pipe, c->wbuf, (DWORD)len, NULL, &c->ov_write) &&
		    GetLastError() != ERROR_IO_PENDING)
			c->pending--;
	}
	wfpb_channel_free(&ch);
	sv->b->n.sessions_rejected++;
	/* With the write in flight, its completion closes the instance. */
	if (c->pending == 0) {
		c->closing = 0;
		conn_close(sv, c);
	}
}

/* A client connected: it counts against the limit from now, not from its first byte. */
static void
on_connect(struct wfpb_pipe_server *sv, struct pconn *c)
{
	struct wfpb_identity unknown = { .known = 0, .uid = -1, .gid = -1 };

	if (sv->b->sessions >= sv->b->cfg.max_sessions) {
		refuse_busy(sv, c);
		return;
	}
	if ((c->s = wfpb_session_new(sv->b, &unknown, now_ms())) == NULL) {
		conn_close(sv, c);
		return;
	}
	c->s->user = c;
	c->connected = 1;
	start_read(sv, c);
}

static void
on_read(struct wfpb_pipe_server *sv, struct pconn *c, DWORD n)
{
	struct wfpb_identity	id;
	int			rc;

	/* The client's token is readable once it has written: identify on the first read. */
	if (!c->identified) {
		wfpb__identify_pipe_client(c->pipe, &id);
		wfpb_session_set_identity(c->s, &id);
		c->identified = 1;
	}
	rc = wfpb_session_input(c->s, c->rbuf, n, now_ms());
	if (rc < 0 && rc != WFPB_E_STATE)
		wfpb_log(WFPB_LOG_INFO, "session pid %u closed: %s", (unsigned)c->s->id.pid, wfpb_strerror(rc));
	sync_watch(c);
	pump_write(sv, c);
	if (!c->closing && !c->s->closing)
		start_read(sv, c);
}

static void
on_completion(struct wfpb_pipe_server *sv, struct pconn *c, OVERLAPPED *ov, DWORD n, BOOL ok)
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
		if (c->watched != WFPB_SOCK_NONE)
			WSAEventSelect((SOCKET)c->watched, NULL, 0);
		c->watched = WFPB_SOCK_NONE;
		if (c->closing || sv->stop || c->s == NULL) {
			conn_close(sv, c);
			return;
		}
		if ((rc = wfpb_session_resume(c->s, now_ms())) < 0)
			wfpb_log(WFPB_LOG_INFO, "session pid %u closed: %s", (unsigned)c->s->id.pid,
			    wfpb_strerror(rc));
		sync_watch(c);
		pump_write(sv, c);
		return;
	}
	is_read = ov == &c->ov_read;
	is_write = ov == &c->ov_write;
	if (is_write) {
		free(c->wbuf);
		c->wbuf = NULL;
	}
	if (c->closing || sv->stop) {
		conn_close(sv, c);
		return;
	}
	if (ov == &c->ov_connect) {
		/* A client holds this instance now; the next one waits for the next client. */
		if (listen_instance(sv, 0) != 0)
			wfpb_log(WFPB_LOG_ERR, "pipe: cannot create a new listening instance");
		if (!ok && GetLastError() != ERROR_PIPE_CONNECTED) {
			conn_close(sv, c);
			return;
		}
		on_connect(sv, c);
		return;
	}
	if (!ok || (is_read && n == 0)) {
		conn_close(sv, c);
		return;
	}
	if (is_read)
		on_read(sv, c, n);
	else if (is_write && c->s != NULL)
		pump_write(sv, c);
	else if (is_write)
		conn_close(sv, c);	/* a busy-reject notice went out */
}

static void
sweep(struct wfpb_pipe_server *sv)
{
	struct pconn	*c, *next;
	uint64_t	now = now_ms();

	for (c = sv->conns; c != NULL; c = next) {
		next = c->next;
		if (c->s == NULL || c->closing || now < wfpb_session_deadline(c->s))
			continue;
		if (c->s->closing) {
			conn_close(sv, c);
			continue;
		}
		(void)wfpb_session_expire(c->s, now);
		sync_watch(c);
		pump_write(sv, c);
	}
}

int
wfpb_pipe_server_new(struct wfpb_broker *b, struct wfpb_pipe_server **out)
{
	struct wfpb_pipe_server	*sv;
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
	if ((sv->iocp = CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 0, 1)) == NULL) {
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

/* The sessions a commit released get their answers. */
static void
release_ready(struct wfpb_pipe_server *sv)
{
	struct wfpb_session *s;

	while ((s = wfpb_broker_next_ready(sv->b)) != NULL)
		pump_write(sv, s->user);
}

/* Once per loop turn: start a batch if one is due (inline when there is no committer). */
static void
commit_step(struct wfpb_pipe_server *sv)
{
	if (sv->committer == NULL) {
		if (wfpb_broker_commit(sv->b, now_ms()))
			release_ready(sv);
		return;
	}
	if (sv->commit_busy || !wfpb_broker_commit_start(sv->b, now_ms()))
		return;
	sv->commit_busy = 1;
	SetEvent(sv->commit_go);
}

static void
commit_done(struct wfpb_pipe_server *sv)
{
	sv->commit_busy = 0;
	if (wfpb_broker_commit_finish(sv->b, now_ms()))
		release_ready(sv);
}

/* At stop: the batch in flight is finished, serving completions meanwhile, then the thread ends. */
static void
committer_stop(struct wfpb_pipe_server *sv, uint64_t until)
{
	OVERLAPPED	*ov;
	ULONG_PTR	key;
	DWORD		n;
	BOOL		ok;

	if (sv->committer == NULL)
		return;
	while (sv->commit_busy && now_ms() < until) {
		ov = NULL;
		ok = GetQueuedCompletionStatus(sv->iocp, &n, &key, &ov, TICK_MS);
		if (ov != NULL)
			on_completion(sv, (struct pconn *)key, ov, n, ok);
		else if (ok && key == KEY_COMMIT)
			commit_done(sv);
	}
	/* The thread must be gone before the audit log closes, even if its flush is slow. */
	InterlockedExchange(&sv->commit_quit, 1);
	SetEvent(sv->commit_go);
	WaitForSingleObject(sv->committer, INFINITE);
	CloseHandle(sv->committer);
	sv->committer = NULL;
	if (sv->commit_busy)
		commit_done(sv);	/* its KEY_COMMIT is left in the port, unread */
}

int
wfpb_pipe_server_run(struct wfpb_pipe_server *sv)
{
	OVERLAPPED	*ov;
	ULONG_PTR	key;
	DWORD		n;
	BOOL		ok;
	uint64_t	last_sweep = now_ms(), until;
	struct pconn	*c, *next;

	if ((sv->commit_go = CreateEventW(NULL, FALSE, FALSE, NULL)) != NULL &&
	    (sv->committer = CreateThread(NULL, 0, committer_main, sv, 0, NULL)) == NULL)
		wfpb_log(WFPB_LOG_WARN, "no committer thread: audit commits run on the completion-port thread");
	wfpb_log(WFPB_LOG_INFO, "listening on %s", sv->b->cfg.endpoint);
	while (!sv->stop) {
		ov = NULL;
		ok = GetQueuedCompletionStatus(sv->iocp, &n, &key, &ov, TICK_MS);
		if (ov != NULL)
			on_completion(sv, (struct pconn *)key, ov, n, ok);
		else if (key == KEY_COMMIT && ok)
			commit_done(sv);
		else if (key == KEY_STOP && ok)
			break;
		if (now_ms() - last_sweep >= TICK_MS) {
			sweep(sv);
			wfpb_broker_tick(sv->b, now_ms());
			last_sweep = now_ms();
		}
		/* Group commit: one FlushFileBuffers for the records queued so far, while serving on. */
		commit_step(sv);
	}
	sv->stop = 1;
	committer_stop(sv, now_ms() + DRAIN_MS);
	wfpb_log(WFPB_LOG_INFO, "stopping: closing %u sessions", sv->b->sessions);
	for (c = sv->conns; c != NULL; c = next) {
		next = c->next;
		conn_close(sv, c);
	}
	/* Drain: every cancelled operation still completes before its memory goes. */
	until = now_ms() + DRAIN_MS;
	while (sv->conns != NULL && now_ms() < until) {
		ov = NULL;
		ok = GetQueuedCompletionStatus(sv->iocp, &n, &key, &ov, TICK_MS);
		if (ov != NULL)
			on_completion(sv, (struct pconn *)key, ov, n, ok);
	}
	return sv->conns == NULL ? 0 : WFPB_E_TIMEOUT;
}

void
wfpb_pipe_server_stop(struct wfpb_pipe_server *sv)
{
	InterlockedExchange(&sv->stop, 1);
	PostQueuedCompletionStatus(sv->iocp, 0, KEY_STOP, NULL);
}

void
wfpb_pipe_server_free(struct wfpb_pipe_server *sv)
{
	if (sv == NULL)
		return;
	/* Only instances whose operations all completed are freed; others leak deliberately. */
	while (sv->conns != NULL && sv->conns->pending == 0)
		unlink_free(sv, sv->conns);
	if (sv->commit_go != NULL)
		CloseHandle(sv->commit_go);
	if (sv->iocp != NULL)
		CloseHandle(sv->iocp);
	free(sv->name);
	free(sv);
}
