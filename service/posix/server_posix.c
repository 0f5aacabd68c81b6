/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unix-socket server. One thread, one epoll set: the listener, a signalfd for
 * SIGTERM/SIGINT/SIGHUP, and every connection. Each connection's bytes go to
 * its core session; deadlines are swept on a short tick. Peers are untrusted
 * and may stall, trickle or vanish at any byte.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "fdpass_posix.h"
#include "log.h"
#include "server_posix.h"
#include "session.h"

#define TICK_MS		100
#define LISTEN_BACKOFF_MS	100
#define READ_CHUNK	65536
#define EVENTS_MAX	64

enum { TAG_LISTENER, TAG_SIGNAL, TAG_IO, TAG_WATCH, TAG_COMMIT, TAG_TICK };

/* What an epoll event refers to: the listener, the signalfd, a connection, or a socket its session waits on. */
struct tag {
	int		kind;
	struct conn	*c;
};

/*
 * A socket a session's pending requests wait on, registered with epoll. Once
 * unregistered it names no connection and is freed after the event batch,
 * which may still name it.
 */
struct wtag {
	struct tag	tag;	/* TAG_WATCH; c is NULL once unregistered */
	wfpb_sock	sock;
	struct wtag	*next;	/* the server's retired list */
};

struct conn {
	int			fd;
	struct wfpb_session	*s;
	struct conn		*prev, *next;
	struct tag		io_tag;
	int			out_armed;	/* EPOLLOUT requested */
	int			in_armed;	/* EPOLLIN requested (off while the session is over its output budget) */
	int			dead;		/* closed; freed after the current event batch */
};

/*
 * The committer thread writes and syncs audit batches (wfpb_audit_flush_inflight)
 * while the event loop goes on serving; it says it is done through an eventfd
 * the loop polls. Everything else stays on the loop thread.
 */
struct committer {
	pthread_t		thread;
	pthread_mutex_t		mu;
	pthread_cond_t		cv;
	struct wfpb_audit	*audit;
	int			efd;		/* readable when a batch is done */
	int			go, quit;	/* under mu */
	int			running;	/* the thread exists; else commits are inline */
};

struct server {
	struct wfpb_broker		*b;
	struct committer		cm;
	const struct wfpb_server_opts	*opts;
	int				ep, lfd, sfd;
	int				tfd;	/* the tick (TICK_MS), so the loop waits without a timeout; -1: none */
	/*
	 * Out of descriptors: one held in reserve lets the loop accept a waiting
	 * client to tell it the broker is busy; the listener then rests for
	 * LISTEN_BACKOFF_MS instead of staying readable and spinning the loop.
	 */
	int				reserve;
	uint64_t			listen_paused_until;	/* 0: the listener is armed */
	int				fd_short;		/* reported once per shortage */
	int				notify;			/* tell $NOTIFY_SOCKET of state changes */
	struct conn			*conns;
	struct conn			*graveyard;	/* closed during this batch */
	struct wtag			*retired;	/* watches unregistered during this batch */
	int				stop;
	char				path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	/*
	 * The core lock (broker.h). One thread serves here, so it is never
	 * contended; it is installed anyway, as an error-checking mutex, so that
	 * every Linux test also checks the discipline the Windows worker pool
	 * relies on: shared state touched only with it held, never taken twice.
	 */
	pthread_mutex_t			core;
	pthread_t			core_owner;
	int				core_held;
};

static struct tag listener_tag = { TAG_LISTENER, NULL }, signal_tag = { TAG_SIGNAL, NULL };
static struct tag commit_tag = { TAG_COMMIT, NULL }, tick_tag = { TAG_TICK, NULL };


#define FDS_PER_READ	4

static void
core_lock(void *arg)
{
	struct server	*sv = arg;
	int		e;

	if ((e = pthread_mutex_lock(&sv->core)) != 0) {
		/* EDEADLK: taken twice on one path, which would deadlock the Windows workers. */
		wfpb_log(WFPB_LOG_ERR, "core lock: %s; stopping", strerror(e));
		abort();
	}
	sv->core_owner = pthread_self();
	sv->core_held = 1;
}

static void
core_unlock(void *arg)
{
	struct server *sv = arg;

	sv->core_held = 0;
	pthread_mutex_unlock(&sv->core);
}

static int
core_owned(void *arg)
{
	struct server *sv = arg;

	return sv->core_held && pthread_equal(sv->core_owner, pthread_self());
}

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

#ifndef SO_PEERGROUPS
#define SO_PEERGROUPS	59	/* Linux 4.13 */
#endif
#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD	77	/* Linux 6.5 */
#endif

/*
 * Supplementary groups as the kernel recorded them at connect
 * (SO_PEERGROUPS), like SO_PEERCRED's uid and gid: what the process holds
 * later, or whatever process holds its PID later, does not count. 0, or -1
 * when the kernel cannot say (older than 4.13).
 */
static int
peer_groups(int fd, struct wfpb_identity *id)
{
	gid_t		small[WFPB_GROUPS_MAX], *g = small;
	socklen_t	len = sizeof(small);
	unsigned	i, n;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, g, &len) != 0) {
		/* ERANGE: len is what it needs (at most NGROUPS_MAX, 65 536 groups). */
		if (errno != ERANGE || len > 65536u * sizeof(gid_t) || (g = malloc(len)) == NULL)
			return -1;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, g, &len) != 0) {
			free(g);
			return -1;
		}
	}
	/* Past WFPB_GROUPS_MAX the rest are left out: a group only ever grants, so that fails closed. */
	n = (unsigned)(len / sizeof(g[0]));
	for (i = 0; i < n && i < WFPB_GROUPS_MAX; i++)
		id->groups[i] = (uint32_t)g[i];
	id->ngroups = i;
	if (g != small)
		free(g);
	return 0;
}

/*
 * The fallback for kernels without SO_PEERGROUPS: supplementary groups from
 * /proc/PID/status, read after the fact. If the file cannot be read the
 * groups list stays empty: a gid matcher can then only fail, never succeed
 * wrongly.
 */
static void
read_groups(pid_t pid, struct wfpb_identity *id)
{
	char	path[64], line[1024], *p, *end;
	FILE	*f;
	unsigned long g;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if ((f = fopen(path, "re")) == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, "Groups:", 7) != 0)
			continue;
		for (p = line + 7; id->ngroups < WFPB_GROUPS_MAX; p = end) {
			g = strtoul(p, &end, 10);
			if (end == p)
				break;
			id->groups[id->ngroups++] = (uint32_t)g;
		}
		break;
	}
	fclose(f);
}

static void
identify(int fd, struct wfpb_identity *id)
{
	struct ucred	cred;
	socklen_t	len = sizeof(cred);
	char		link[64];
	ssize_t		n;
	int		pidfd;

	memset(id, 0, sizeof(*id));
	id->uid = id->gid = -1;
	id->elevated = -1;	/* a Windows notion */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || len != sizeof(cred)) {
		wfpb_log(WFPB_LOG_WARN, "SO_PEERCRED failed (%s): session will be denied", strerror(errno));
		return;
	}
	id->pid = (uint32_t)cred.pid;
	id->uid = cred.uid;
	id->gid = cred.gid;
	snprintf(id->user, sizeof(id->user), "%u", (unsigned)cred.uid);
	if (peer_groups(fd, id) != 0)
		read_groups(cred.pid, id);
	/*
	 * The image is only ever read from /proc. A pidfd of the peer (Linux 6.5)
	 * pins its PID: if the process is still alive after the read, the path
	 * was that process's and not a successor's under a recycled PID.
	 */
	len = sizeof(pidfd);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) != 0)
		pidfd = -1;
	snprintf(link, sizeof(link), "/proc/%d/exe", (int)cred.pid);
	/*
	 * A path is absolute; when there is none the field says why in
	 * parentheses (docs/AUDIT.md), so an audit reader never takes an empty
	 * image for a process without one.
	 */
	n = readlink(link, id->image, sizeof(id->image) - 1);
	if (n > 0)
		id->image[n] = '\0';
	else
		snprintf(id->image, sizeof(id->image), "(unreadable: %s)", strerror(errno));
	if (pidfd >= 0) {
		/*
		 * ESRCH: it is gone, and the path may name another process. EPERM
		 * (a broker without CAP_KILL asking about another user's client)
		 * and ENOSYS say nothing about that: keep what was read.
		 */
		if (syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0) != 0 && errno == ESRCH)
			snprintf(id->image, sizeof(id->image), "(unknown: the process exited while it was identified)");
		close(pidfd);
	}
	id->known = 1;
}

/*
 * Closes a connection and releases its session at once; the struct itself
 * waits in the graveyard because later events of this batch may name it.
 */
static void
unwatch(struct server *sv, struct wtag *t)
{
	/* The socket may be closed already (epoll then forgot it): the error is expected. */
	epoll_ctl(sv->ep, EPOLL_CTL_DEL, (int)t->sock, NULL);
	t->tag.c = NULL;
	t->next = sv->retired;
	sv->retired = t;
}

static void
conn_close(struct server *sv, struct conn *c)
{
	struct wfpb_watch	*w;
	unsigned		n, i;

	/* Its sockets close with its session: unregistered first, while they are still its own. */
	w = wfpb_session_watches(c->s, &n);
	for (i = 0; i < n; i++)
		if (w[i].server != NULL)
			unwatch(sv, w[i].server);
	epoll_ctl(sv->ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		sv->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	wfpb_core_enter(sv->b);
	wfpb_session_free(c->s);
	wfpb_core_leave(sv->b);
	c->s = NULL;
	c->dead = 1;
	c->next = sv->graveyard;
	sv->graveyard = c;
}

static void
bury(struct server *sv)
{
	struct conn	*c;
	struct wtag	*t;

	while ((c = sv->graveyard) != NULL) {
		sv->graveyard = c->next;
		free(c);
	}
	while ((t = sv->retired) != NULL) {
		sv->retired = t->next;
		free(t);
	}
}

/*
 * Keeps epoll watching the sockets the session's pending requests wait on
 * (session.h). Every removal goes first: a socket number closed since may be
 * back already as a new entry.
 */
static void
sync_watch(struct server *sv, struct conn *c)
{
	struct epoll_event	ev = { 0 };
	struct wfpb_watch	*w;
	struct wtag		*t;
	unsigned		n, i;

	if (!wfpb_session_watches_changed(c->s))
		return;
	w = wfpb_session_watches(c->s, &n);
	for (i = 0; i < n; i++) {
		if (w[i].refs == 0 && w[i].server != NULL) {
			unwatch(sv, w[i].server);
			w[i].server = NULL;
		}
	}
	for (i = 0; i < n; i++) {
		if (w[i].refs == 0 || w[i].server != NULL)
			continue;
		/* Unwatched, a request can only time out: said in the log, not silent. */
		if ((t = calloc(1, sizeof(*t))) == NULL) {
			wfpb_log(WFPB_LOG_ERR, "out of memory watching a pending request's socket");
			continue;
		}
		t->tag.kind = TAG_WATCH;
		t->tag.c = c;
		t->sock = w[i].sock;
		ev.events = w[i].want_write ? EPOLLOUT : EPOLLIN;
		ev.data.ptr = &t->tag;
		if (epoll_ctl(sv->ep, EPOLL_CTL_ADD, (int)t->sock, &ev) != 0) {
			wfpb_log(WFPB_LOG_ERR, "epoll_ctl (pending request): %s", strerror(errno));
			free(t);
			continue;
		}
		w[i].server = t;
	}
	wfpb_session_watches_synced(c->s);
}

/* Writes pending output; returns 0, or -1 when the connection is gone. */
static int
conn_flush(struct server *sv, struct conn *c)
{
	struct epoll_event	ev = { 0 };
	const uint8_t		*p;
	wfpb_sock		attach;
	size_t			len;
	ssize_t			n;

	int			rc, want_in;

	sync_watch(sv, c);
	for (;;) {
		while ((p = wfpb_session_output(c->s, &len, &attach)) != NULL) {
			n = wfpb__send_fd(c->fd, p, len, (int)attach, MSG_DONTWAIT);
			if (n < 0) {
				if (errno == EINTR)
					continue;
				if (errno == EAGAIN || errno == EWOULDBLOCK)
					break;
				return -1;
			}
			wfpb_session_output_done(c->s, (size_t)n);
		}
		/* Output drained below the budget: the requests held meanwhile run now. */
		if ((rc = wfpb_session_unthrottle(c->s, now_ms())) < 0)
			return -1;
		if (rc == 0)
			break;
		sync_watch(sv, c);
	}
	want_in = wfpb_session_wants_input(c->s);
	if ((p != NULL) != c->out_armed || want_in != c->in_armed) {
		c->out_armed = p != NULL;
		c->in_armed = want_in;
		/* Hang-ups and errors are reported whatever is asked, so a paused client can still be reaped. */
		ev.events = (c->in_armed ? EPOLLIN | EPOLLRDHUP : 0) | (c->out_armed ? EPOLLOUT : 0);
		ev.data.ptr = &c->io_tag;
		epoll_ctl(sv->ep, EPOLL_CTL_MOD, c->fd, &ev);
	}
	if (p == NULL && c->s->closing)
		return -1;
	return 0;
}

/* Refuses a connection past the session limit with a reject notice. */
static void
refuse_busy(struct server *sv, int fd)
{
	uint8_t	notice[WFPB_REJECT_MAX + 2];
	size_t	len = wfpb_admit_busy_notice(sv->b, notice, sizeof(notice));

	if (len > 0)
		(void)!send(fd, notice, len, MSG_NOSIGNAL | MSG_DONTWAIT);
	close(fd);
}

/*
 * No descriptor for a new connection. The reserve makes room to accept the
 * oldest waiting client and refuse it as busy (it learns why, rather than
 * hanging), and the listener rests so the loop does not spin on it.
 */
static void
out_of_descriptors(struct server *sv, int err)
{
	int fd;

	if (!sv->fd_short) {
		wfpb_log(WFPB_LOG_WARN, "out of descriptors (%s): new connections are refused as busy until "
		    "some are free", strerror(err));
		sv->fd_short = 1;
	}
	if (sv->reserve >= 0) {
		close(sv->reserve);
		sv->reserve = -1;
		if ((fd = accept4(sv->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
			wfpb_core_enter(sv->b);
			sv->b->n.sessions_rejected++;
			wfpb_core_leave(sv->b);
			refuse_busy(sv, fd);
		}
		sv->reserve = open("/dev/null", O_RDONLY | O_CLOEXEC);
	}
	epoll_ctl(sv->ep, EPOLL_CTL_DEL, sv->lfd, NULL);
	sv->listen_paused_until = now_ms() + LISTEN_BACKOFF_MS;
}

/* The rest is over: listen again (and find out whether descriptors are back). */
static void
listener_rearm(struct server *sv)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &listener_tag };

	if (sv->listen_paused_until == 0 || now_ms() < sv->listen_paused_until)
		return;
	sv->listen_paused_until = 0;
	if (epoll_ctl(sv->ep, EPOLL_CTL_ADD, sv->lfd, &ev) != 0)
		wfpb_log(WFPB_LOG_ERR, "epoll_ctl (listener): %s", strerror(errno));
}

static void
on_accept(struct server *sv)
{
	struct epoll_event	ev = { 0 };
	struct wfpb_identity	id;
	struct conn		*c;
	int			fd, busy;

	for (;;) {
		fd = accept4(sv->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
				out_of_descriptors(sv, errno);
			else if (errno != EAGAIN && errno != EWOULDBLOCK)
				wfpb_log(WFPB_LOG_WARN, "accept: %s", strerror(errno));
			return;
		}
		if (sv->fd_short) {
			wfpb_log(WFPB_LOG_INFO, "descriptors available again: accepting connections");
			sv->fd_short = 0;
		}
		/* Admission (admit.h) knows the identity before a byte is read: per-user caps apply at once. */
		identify(fd, &id);
		c = NULL;
		wfpb_core_enter(sv->b);
		busy = wfpb_admit_session(sv->b, &id) != 0;
		if (!busy && (c = calloc(1, sizeof(*c))) != NULL)
			c->s = wfpb_session_new(sv->b, &id, now_ms());
		wfpb_core_leave(sv->b);
		if (busy) {
			refuse_busy(sv, fd);
			continue;
		}
		if (c == NULL || c->s == NULL) {
			wfpb_log(WFPB_LOG_ERR, "out of memory accepting a session");
			free(c);
			close(fd);
			continue;
		}
		c->fd = fd;
		c->io_tag.kind = TAG_IO;
		c->io_tag.c = c;
		c->in_armed = 1;
		c->s->user = c;
		c->next = sv->conns;
		if (sv->conns)
			sv->conns->prev = c;
		sv->conns = c;
		ev.events = EPOLLIN | EPOLLRDHUP;
		ev.data.ptr = &c->io_tag;
		if (epoll_ctl(sv->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
			wfpb_log(WFPB_LOG_ERR, "epoll_ctl: %s", strerror(errno));
			conn_close(sv, c);
		}
	}
}

static void
on_readable(struct server *sv, struct conn *c)
{
	static uint8_t	buf[READ_CHUNK];
	wfpb_sock	fds[FDS_PER_READ];
	int		raw[FDS_PER_READ];
	unsigned	nfds, i;
	ssize_t		n;
	int		rc;

	for (;;) {
		n = wfpb__recv_fds(c->fd, buf, sizeof(buf), raw, FDS_PER_READ, &nfds, MSG_DONTWAIT);
		for (i = 0; i < nfds; i++)
			fds[i] = raw[i];
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (nfds > 0)
			wfpb_session_add_fds(c->s, fds, nfds);
		if (n <= 0) {
			conn_close(sv, c);
			return;
		}
		rc = wfpb_session_input(c->s, buf, (size_t)n, now_ms());
		if (rc < 0 && rc != WFPB_E_STATE)
			wfpb_log(WFPB_LOG_INFO, "session pid %u closed: %s", (unsigned)c->s->id.pid,
			    wfpb_strerror(rc));
		/*
		 * Epoll is level-triggered: a short read means the socket is drained
		 * for now, and reading on to EAGAIN would cost a system call per request.
		 */
		if (rc < 0 || (size_t)n < sizeof(buf) || !wfpb_session_wants_input(c->s))
			break;
	}
	if (conn_flush(sv, c) != 0)
		conn_close(sv, c);
}

/* A socket pending requests wait on is ready. */
static void
on_watch(struct server *sv, struct conn *c, wfpb_sock sock)
{
	int rc = wfpb_session_resume(c->s, sock, now_ms());

	if (rc < 0)
		wfpb_log(WFPB_LOG_INFO, "session pid %u closed: %s", (unsigned)c->s->id.pid, wfpb_strerror(rc));
	if (conn_flush(sv, c) != 0)
		conn_close(sv, c);
}

static void
sweep(struct server *sv)
{
	struct conn	*c, *next;
	uint64_t	now = now_ms();

	for (c = sv->conns; c != NULL; c = next) {
		next = c->next;
		switch (wfpb_session_sweep(c->s, now)) {
		case WFPB_SWEEP_KEEP:
			break;
		case WFPB_SWEEP_CLOSE:
			conn_close(sv, c);
			break;
		case WFPB_SWEEP_FLUSH:
			if (conn_flush(sv, c) != 0)
				conn_close(sv, c);
			break;
		}
	}
}

/*
 * systemd Type=notify (sd_notify(3)): one datagram to $NOTIFY_SOCKET per
 * state change. READY=1 once listening and after each reload,
 * RELOADING=1 (with MONOTONIC_USEC, as Type=notify-reload wants) before
 * one, STOPPING=1 when stopping, and STATUS= with what the broker serves.
 */
/* One datagram of n bytes to $NOTIFY_SOCKET, with passed (a descriptor, or -1) as SCM_RIGHTS. */
static void
notify_send(const struct server *sv, const char *msg, size_t n, int passed)
{
	struct sockaddr_un	sa = { .sun_family = AF_UNIX };
	const char		*path = getenv("NOTIFY_SOCKET");
	int			fd;

	if (!sv->notify || path == NULL || strlen(path) >= sizeof(sa.sun_path) || (path[0] != '/' && path[0] != '@'))
		return;
	memcpy(sa.sun_path, path, strlen(path));
	if (sa.sun_path[0] == '@')
		sa.sun_path[0] = '\0';
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
		return;
	if (connect(fd, (struct sockaddr *)&sa, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path))) == 0)
		(void)!wfpb__send_fd(fd, (const uint8_t *)msg, n, passed, 0);
	close(fd);
}

static void
notify(const struct server *sv, const char *fmt, ...)
{
	char	msg[512];
	va_list	ap;
	int	n;

	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(msg))
		return;
	notify_send(sv, msg, (size_t)n, -1);
}

/*
 * The declared listeners go to systemd's file descriptor store (FDSTORE=1,
 * named listener-NAME), so a restart gets them back with LISTEN_FDS and the
 * connections queued on them meanwhile are not lost (wfpb_broker_open_listeners
 * takes them). Sent again after a reload: the store keeps one per name.
 */
static void
notify_fdstore(const struct server *sv)
{
	char		msg[WFPB_NAME_MAX + 48];
	unsigned	i;
	int		n;

	for (i = 0; i < sv->b->ndeclared; i++) {
		n = snprintf(msg, sizeof(msg), "FDSTORE=1\nFDNAME=listener-%s", sv->b->declared[i].name);
		if (n > 0 && (size_t)n < sizeof(msg))
			notify_send(sv, msg, (size_t)n, (int)sv->b->declared[i].sock);
	}
}

static void
notify_ready(const struct server *sv)
{
	notify_fdstore(sv);
	notify(sv, "READY=1\nSTATUS=serving %s, backend %s, %u principals", sv->b->cfg.endpoint, sv->b->cfg.backend,
	    (unsigned)sv->b->cfg.nprincipals);
}

static void
reload(struct server *sv)
{
	struct wfpb_ini_error err;

	struct timespec ts;
	int rc;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	notify(sv, "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading %s",
	    (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000u, sv->b->config_path);
	/* The broker logs the outcome, including a rejected file and its line. */
	wfpb_core_enter(sv->b);
	rc = wfpb_broker_reload_file(sv->b, &err);
	wfpb_core_leave(sv->b);
	notify_ready(sv);
	if (rc != 0)
		notify(sv, "STATUS=serving the previous configuration: %s line %u was refused", sv->b->config_path,
		    err.line);
}

static void
on_signal(struct server *sv)
{
	struct signalfd_siginfo si;

	while (read(sv->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGHUP)
			reload(sv);
		else
			sv->stop = 1;
	}
}

/* Creates the endpoint: parent directory owned by us and not writable by others, socket 0660. */
static int
listen_socket(struct server *sv)
{
	struct sockaddr_un	sa = { .sun_family = AF_UNIX };
	const char		*path = sv->b->cfg.endpoint;
	char			dir[PATH_MAX], *slash;
	struct stat		st;
	struct group		*gr = NULL;
	mode_t			old;
	int			fd;

	if (strlen(path) >= sizeof(sa.sun_path) || path[0] != '/') {
		wfpb_log(WFPB_LOG_ERR, "endpoint %s: must be an absolute path shorter than %zu bytes", path,
		    sizeof(sa.sun_path));
		return WFPB_E_CONFIG;
	}
	snprintf(dir, sizeof(dir), "%s", path);
	if ((slash = strrchr(dir, '/')) != NULL && slash != dir) {
		*slash = '\0';
		if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
			wfpb_log(WFPB_LOG_ERR, "mkdir %s: %s", dir, strerror(errno));
			return WFPB_E_IO;
		}
		if (stat(dir, &st) != 0 || st.st_uid != geteuid() || (st.st_mode & 022) != 0) {
			wfpb_log(WFPB_LOG_ERR, "%s must be owned by uid %u and not group/other-writable", dir,
			    (unsigned)geteuid());
			return WFPB_E_ACCESS;
		}
	}
	if (sv->b->cfg.socket_group[0] != '\0' && (gr = getgrnam(sv->b->cfg.socket_group)) == NULL) {
		wfpb_log(WFPB_LOG_ERR, "socket_group %s: no such group", sv->b->cfg.socket_group);
		return WFPB_E_CONFIG;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	/*
	 * A stale socket from a previous run is replaced; a live one belongs to
	 * another broker and is left alone; anything else is not ours to delete.
	 */
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			wfpb_log(WFPB_LOG_ERR, "%s exists and is not a socket", path);
			return WFPB_E_IO;
		}
		if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) >= 0 &&
		    connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			close(fd);
			wfpb_log(WFPB_LOG_ERR, "%s: another broker is already listening", path);
			return WFPB_E_ACCESS;
		}
		if (fd >= 0)
			close(fd);
		unlink(path);
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
		return WFPB_E_IO;
	old = umask(0117);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		umask(old);
		wfpb_log(WFPB_LOG_ERR, "bind %s: %s", path, strerror(errno));
		close(fd);
		return WFPB_E_IO;
	}
	umask(old);
	/*
	 * The socket already has our group when socket_group is the broker's own
	 * (as under the packaged unit, whose system-call filter refuses chown):
	 * change it only when it differs.
	 */
	if (chmod(path, 0660) != 0 || (gr != NULL && (lstat(path, &st) != 0 ||
	    (st.st_gid != gr->gr_gid && chown(path, (uid_t)-1, gr->gr_gid) != 0))) || listen(fd, SOMAXCONN) != 0) {
		wfpb_log(WFPB_LOG_ERR, "set up %s: %s", path, strerror(errno));
		close(fd);
		unlink(path);
		return WFPB_E_IO;
	}
	memcpy(sv->path, path, strlen(path) + 1);	/* length checked against sun_path above */
	sv->lfd = fd;
	return 0;
}

/* Every descriptor the hard limit allows: sessions, listeners and passed sockets all take one. */
static void
raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max)
		return;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		wfpb_log(WFPB_LOG_WARN, "cannot raise the descriptor limit to %llu: %s",
		    (unsigned long long)rl.rlim_max, strerror(errno));
}

static void *
committer_main(void *arg)
{
	struct committer	*cm = arg;
	uint64_t		one = 1;

	pthread_mutex_lock(&cm->mu);
	for (;;) {
		while (!cm->go && !cm->quit)
			pthread_cond_wait(&cm->cv, &cm->mu);
		if (!cm->go)
			break;
		cm->go = 0;
		pthread_mutex_unlock(&cm->mu);
		wfpb_audit_flush_inflight(cm->audit);
		pthread_mutex_lock(&cm->mu);
		/* Written under the lock: the loop reads the batch's result only after taking it. */
		(void)!write(cm->efd, &one, sizeof(one));
	}
	pthread_mutex_unlock(&cm->mu);
	return NULL;
}

/* Starts the committer; without one (no thread, no eventfd) commits stay inline. */
static void
committer_start(struct server *sv)
{
	struct committer	*cm = &sv->cm;
	struct epoll_event	ev = { .events = EPOLLIN, .data.ptr = &commit_tag };

	cm->audit = &sv->b->audit;
	if ((cm->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
		return;
	pthread_mutex_init(&cm->mu, NULL);
	pthread_cond_init(&cm->cv, NULL);
	/* Created after the signals are blocked, so it inherits the mask and signalfd sees them all. */
	if (pthread_create(&cm->thread, NULL, committer_main, cm) != 0 ||
	    epoll_ctl(sv->ep, EPOLL_CTL_ADD, cm->efd, &ev) != 0) {
		wfpb_log(WFPB_LOG_WARN, "no committer thread: audit commits run on the event loop");
		close(cm->efd);
		cm->efd = -1;
		return;
	}
	cm->running = 1;
}

/* The sessions a commit released get their answers. */
static void
flush_ready(struct server *sv)
{
	struct wfpb_session *s;

	for (;;) {
		struct conn *c;

		wfpb_core_enter(sv->b);
		s = wfpb_broker_next_ready(sv->b);
		wfpb_core_leave(sv->b);
		if (s == NULL)
			return;
		c = s->user;
		wfpb_session_released(s, now_ms());
		if (!c->dead && conn_flush(sv, c) != 0)
			conn_close(sv, c);
	}
}

/* The batch in flight is written: finish it on the loop thread. */
static void
committer_done(struct server *sv)
{
	struct committer	*cm = &sv->cm;
	uint64_t		n;
	int			released;

	if (read(cm->efd, &n, sizeof(n)) != (ssize_t)sizeof(n))
		return;
	pthread_mutex_lock(&cm->mu);	/* pairs with the thread's write under the lock */
	pthread_mutex_unlock(&cm->mu);
	wfpb_core_enter(sv->b);
	released = wfpb_broker_commit_done(sv->b, now_ms());
	wfpb_core_leave(sv->b);
	if (released)
		flush_ready(sv);
}

/* Once per loop iteration: start a batch if one is due (inline when there is no committer). */
static void
commit_step(struct server *sv)
{
	struct committer	*cm = &sv->cm;
	int			step;

	wfpb_core_enter(sv->b);
	step = wfpb_broker_commit_step(sv->b, cm->running, now_ms());
	wfpb_core_leave(sv->b);
	if (step == WFPB_COMMIT_READY) {
		flush_ready(sv);
	} else if (step == WFPB_COMMIT_HANDOFF) {
		pthread_mutex_lock(&cm->mu);
		cm->go = 1;
		pthread_cond_signal(&cm->cv);
		pthread_mutex_unlock(&cm->mu);
	}
}

/* At stop: the batch in flight is finished, then the thread ends. */
static void
committer_stop(struct server *sv)
{
	struct committer	*cm = &sv->cm;
	struct pollfd		pfd = { .fd = cm->efd, .events = POLLIN };

	if (!cm->running)
		return;
	while (wfpb_broker_commit_busy(sv->b)) {
		(void)poll(&pfd, 1, 1000);
		committer_done(sv);
	}
	pthread_mutex_lock(&cm->mu);
	cm->quit = 1;
	pthread_cond_signal(&cm->cv);
	pthread_mutex_unlock(&cm->mu);
	pthread_join(cm->thread, NULL);
	close(cm->efd);
	pthread_mutex_destroy(&cm->mu);
	pthread_cond_destroy(&cm->cv);
	cm->running = 0;
}

int
wfpb_server_run(struct wfpb_broker *b, const struct wfpb_server_opts *opts)
{
	struct server		sv = { .b = b, .opts = opts, .ep = -1, .lfd = -1, .sfd = -1, .tfd = -1, .reserve = -1 };
	struct itimerspec	tick = { { 0, TICK_MS * 1000000L }, { 0, TICK_MS * 1000000L } };
	struct epoll_event	ev = { 0 }, evs[EVENTS_MAX];
	sigset_t		mask;
	pthread_mutexattr_t	ma;
	uint64_t		last_sweep = 0;
	int			i, n, rc, ticked = 0;

	pthread_mutexattr_init(&ma);
	pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ERRORCHECK);
	pthread_mutex_init(&sv.core, &ma);
	pthread_mutexattr_destroy(&ma);
	b->lock = core_lock;
	b->unlock = core_unlock;
	b->owned = core_owned;
	b->lock_arg = &sv;
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) != 0 ||
	    (sv.sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC)) < 0 ||
	    (sv.ep = epoll_create1(EPOLL_CLOEXEC)) < 0) {
		rc = WFPB_E_IO;
		goto close_fds;
	}
	if ((rc = listen_socket(&sv)) != 0)
		goto close_fds;
	raise_fd_limit();
	sv.reserve = open("/dev/null", O_RDONLY | O_CLOEXEC);
	ev.events = EPOLLIN;
	ev.data.ptr = &listener_tag;
	epoll_ctl(sv.ep, EPOLL_CTL_ADD, sv.lfd, &ev);
	ev.data.ptr = &signal_tag;
	epoll_ctl(sv.ep, EPOLL_CTL_ADD, sv.sfd, &ev);
	/*
	 * The tick as a timer of its own: a wait with a timeout arms and cancels
	 * a kernel timer on every turn of the loop, a few percent of a request.
	 */
	ev.data.ptr = &tick_tag;
	if ((sv.tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)) >= 0 &&
	    (timerfd_settime(sv.tfd, 0, &tick, NULL) != 0 || epoll_ctl(sv.ep, EPOLL_CTL_ADD, sv.tfd, &ev) != 0)) {
		close(sv.tfd);
		sv.tfd = -1;
	}
	committer_start(&sv);
	wfpb_log(WFPB_LOG_INFO, "listening on %s", sv.path);
	sv.notify = opts->notify;
	notify_ready(&sv);

	while (!sv.stop) {
		n = epoll_wait(sv.ep, evs, EVENTS_MAX, sv.tfd >= 0 ? -1 : TICK_MS);
		if (n < 0 && errno != EINTR) {
			wfpb_log(WFPB_LOG_ERR, "epoll_wait: %s", strerror(errno));
			break;
		}
		for (i = 0; i < n; i++) {
			struct tag *tag = evs[i].data.ptr;

			if (tag->kind == TAG_LISTENER) {
				on_accept(&sv);
			} else if (tag->kind == TAG_COMMIT) {
				committer_done(&sv);
			} else if (tag->kind == TAG_TICK) {
				uint64_t expirations;

				(void)!read(sv.tfd, &expirations, sizeof(expirations));
				ticked = 1;
			} else if (tag->kind == TAG_SIGNAL) {
				on_signal(&sv);
			} else if (tag->c == NULL || tag->c->dead) {
				continue;	/* unregistered or closed earlier in this batch */
			} else if (tag->kind == TAG_WATCH) {
				on_watch(&sv, tag->c, ((struct wtag *)tag)->sock);
			} else if (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
				on_readable(&sv, tag->c);
			} else if ((evs[i].events & EPOLLOUT) && conn_flush(&sv, tag->c) != 0) {
				conn_close(&sv, tag->c);
			}
		}
		listener_rearm(&sv);
		if (ticked || (sv.tfd < 0 && now_ms() - last_sweep >= TICK_MS)) {
			ticked = 0;
			sweep(&sv);
			wfpb_core_enter(b);
			wfpb_broker_tick(b, now_ms());
			wfpb_core_leave(b);
			last_sweep = now_ms();
		}
		/* Group commit: one sync for the records queued so far, while the loop serves on. */
		commit_step(&sv);
		bury(&sv);
	}
	notify(&sv, "STOPPING=1\nSTATUS=stopping: closing %u sessions", b->sessions);
	committer_stop(&sv);
	wfpb_log(WFPB_LOG_INFO, "stopping: closing %u sessions", b->sessions);
	b->stopping = 1;	/* the reason their end records give */
	while (sv.conns != NULL) {
		(void)conn_flush(&sv, sv.conns);
		conn_close(&sv, sv.conns);
	}
	bury(&sv);
	unlink(sv.path);
	rc = 0;
close_fds:
	if (sv.reserve >= 0)
		close(sv.reserve);
	if (sv.lfd >= 0)
		close(sv.lfd);
	if (sv.ep >= 0)
		close(sv.ep);
	if (sv.sfd >= 0)
		close(sv.sfd);
	if (sv.tfd >= 0)
		close(sv.tfd);
	/* The broker outlives the server: one thread again, no lock. */
	b->lock = b->unlock = NULL;
	b->owned = NULL;
	b->lock_arg = NULL;
	pthread_mutex_destroy(&sv.core);
	return rc;
}
