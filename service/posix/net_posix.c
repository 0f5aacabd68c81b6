/* SPDX-License-Identifier: Apache-2.0 */
/* The socket contract (core/net.h) on POSIX: non-blocking, close-on-exec, errno translated here. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "net.h"

#define WFPB_SOCKLEN socklen_t
#include "sockaddr_conv.h"
#include "status.h"

static int
os_fail(int *os_err)
{
	*os_err = errno;
	return WFPB_E_OS;
}

static int
any_socket(int family, int type, wfpb_sock *out, int *os_err)
{
	int fd;

	*out = WFPB_SOCK_NONE;
	fd = socket(family == WFPB_AF_INET6 ? AF_INET6 : AF_INET, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return os_fail(os_err);
	/* An IPv6 socket reaches IPv6 only: an IPv4-mapped remote must not slip past the IPv4 ranges. */
	if (family == WFPB_AF_INET6) {
		int one = 1;

		if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0) {
			*os_err = errno;
			close(fd);
			return WFPB_E_OS;
		}
	}
	*out = fd;
	return 0;
}

int
wfpb__net_socket(int family, wfpb_sock *out, int *os_err)
{
	return any_socket(family, SOCK_STREAM, out, os_err);
}

int
wfpb__net_udp_socket(int family, wfpb_sock *out, int *os_err)
{
	return any_socket(family, SOCK_DGRAM, out, os_err);
}

int
wfpb__net_send(wfpb_sock s, const uint8_t *p, size_t len, int *os_err)
{
	ssize_t n;

	do
		n = send((int)s, p, len, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return os_fail(os_err);
	return 0;
}

int
wfpb__net_recvfrom(wfpb_sock s, uint8_t *p, size_t cap, size_t *len, struct wfpb_addr *from, int *os_err)
{
	struct sockaddr_storage	ss;
	socklen_t		slen = sizeof(ss);
	ssize_t			n;

	do
		n = recvfrom((int)s, p, cap, MSG_TRUNC, (struct sockaddr *)&ss, &slen);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? WFPB_E_AGAIN : os_fail(os_err);
	*len = (size_t)n;
	from_sockaddr(&ss, from);
	return 0;
}

int
wfpb__net_reuseaddr(wfpb_sock s, int *os_err)
{
	int one = 1;

	return setsockopt((int)s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0 ? 0 : os_fail(os_err);
}

int
wfpb__net_exclusive(wfpb_sock s, int *os_err)
{
	(void)s;
	(void)os_err;
	return 0;
}

int
wfpb__net_bind(wfpb_sock s, const struct wfpb_addr *local, int *os_err)
{
	struct sockaddr_storage	ss;
	socklen_t		len = to_sockaddr(local, &ss);

	if (bind((int)s, (struct sockaddr *)&ss, len) != 0)
		return os_fail(os_err);
	return 0;
}

int
wfpb__net_listen(const struct wfpb_addr *local, int backlog, wfpb_sock *out, struct wfpb_addr *bound,
    int *os_err)
{
	struct sockaddr_storage	ss;
	socklen_t		len = sizeof(ss);
	wfpb_sock		s;
	int			one = 1, rc;

	if ((rc = wfpb__net_socket(local->family, &s, os_err)) != 0)
		return rc;
	(void)setsockopt((int)s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (local->family == WFPB_AF_INET6)
		(void)setsockopt((int)s, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if ((rc = wfpb__net_bind(s, local, os_err)) != 0 || listen((int)s, backlog) != 0 ||
	    getsockname((int)s, (struct sockaddr *)&ss, &len) != 0) {
		if (rc == 0)
			*os_err = errno;
		close((int)s);
		return WFPB_E_OS;
	}
	from_sockaddr(&ss, bound);
	*out = s;
	return 0;
}

int
wfpb__net_accept(wfpb_sock listener, wfpb_sock *out, int *os_err)
{
	int fd;

	*out = WFPB_SOCK_NONE;
	do
		fd = accept4((int)listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	while (fd < 0 && errno == EINTR);
	if (fd < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ECONNABORTED)
			return WFPB_E_AGAIN;
		return os_fail(os_err);
	}
	*out = fd;
	return 0;
}

int
wfpb__net_connect(wfpb_sock s, const struct wfpb_addr *remote, int *os_err)
{
	struct sockaddr_storage	ss;
	socklen_t		len = to_sockaddr(remote, &ss);

	if (connect((int)s, (struct sockaddr *)&ss, len) == 0)
		return 0;
	if (errno == EINPROGRESS || errno == EINTR)
		return WFPB_E_AGAIN;
	return os_fail(os_err);
}

int
wfpb__net_connect_done(wfpb_sock s, int *os_err)
{
	struct pollfd	pfd = { .fd = (int)s, .events = POLLOUT };
	int		err = 0;
	socklen_t	len = sizeof(err);

	/* Writable, or an error or hang-up: the connect is over either way, and SO_ERROR says how. */
	if (poll(&pfd, 1, 0) <= 0)
		return 0;
	if (getsockopt((int)s, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
		err = errno;
	if (err != 0) {
		*os_err = err;
		return -1;
	}
	return 1;
}

int
wfpb__net_addrs(wfpb_sock s, struct wfpb_addr *peer, struct wfpb_addr *local, int *os_err)
{
	struct sockaddr_storage	ss;
	socklen_t		len;

	if (peer != NULL) {
		len = sizeof(ss);
		if (getpeername((int)s, (struct sockaddr *)&ss, &len) != 0)
			return os_fail(os_err);
		from_sockaddr(&ss, peer);
	}
	if (local != NULL) {
		len = sizeof(ss);
		if (getsockname((int)s, (struct sockaddr *)&ss, &len) != 0)
			return os_fail(os_err);
		from_sockaddr(&ss, local);
	}
	return 0;
}

int
wfpb__net_is_listening(wfpb_sock s)
{
	int		on = 0;
	socklen_t	len = sizeof(on);

	return getsockopt((int)s, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) == 0 && on;
}

int
wfpb__net_dup(wfpb_sock s, wfpb_sock *out, int *os_err)
{
	int fd = fcntl((int)s, F_DUPFD_CLOEXEC, 0);

	if (fd < 0)
		return os_fail(os_err);
	*out = fd;
	return 0;
}

void
wfpb__net_close(wfpb_sock s)
{
	if (s != WFPB_SOCK_NONE)
		close((int)s);
}

/*
 * The reaper: one thread that closes client descriptors whose close may wait:
 * a file (a close on a FUSE file waits for its daemon) and a socket the client
 * set to linger for a time (a last close waits until its data is sent or the
 * time is up). The event loop writes them to a pipe and never waits on it.
 */
static int		reaper_in = -1;
static pthread_once_t	reaper_once = PTHREAD_ONCE_INIT;

static void *
reaper_main(void *arg)
{
	int fd, rfd = (int)(intptr_t)arg;

	for (;;) {
		ssize_t n = read(rfd, &fd, sizeof(fd));

		if (n == (ssize_t)sizeof(fd))
			close(fd);
		else if (n == 0 || (n < 0 && errno != EINTR))
			return NULL;
	}
}

static void
reaper_start(void)
{
	pthread_attr_t	attr;
	pthread_t	t;
	sigset_t	all, old;
	int		p[2];

	if (pipe2(p, O_CLOEXEC) != 0)
		return;
	(void)fcntl(p[1], F_SETFL, O_NONBLOCK);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	/* It takes no signals: they stay with the event loop's signalfd. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	if (pthread_create(&t, &attr, reaper_main, (void *)(intptr_t)p[0]) == 0) {
		reaper_in = p[1];
	} else {
		close(p[0]);
		close(p[1]);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
}

/*
 * 1 when closing fd may wait: a socket that lingers for a time ({1, n > 0}). Linger off,
 * or {1, 0} (an abortive close), returns at once. Read, never set: the option belongs to
 * the socket, which the client shares.
 */
static int
lingers(int fd)
{
	struct linger	lg;
	socklen_t	len = sizeof(lg);

	return getsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, &len) == 0 && lg.l_onoff != 0 && lg.l_linger > 0;
}

void
wfpb__net_discard(wfpb_sock s)
{
	static const struct linger	off = { 0, 0 };
	struct stat			st;
	int				fd = (int)s, sock;

	if (s == WFPB_SOCK_NONE)
		return;
	sock = fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
	if (sock && !lingers(fd)) {
		close(fd);
		return;
	}
	pthread_once(&reaper_once, reaper_start);
	if (reaper_in >= 0 && write(reaper_in, &fd, sizeof(fd)) == (ssize_t)sizeof(fd))
		return;
	/*
	 * No reaper, or 16 384 closes already stuck behind it. A socket then loses
	 * its linger (the only time the broker changes a client's option: closing
	 * here must not wait); anything else is closed here, since holding the
	 * descriptor would leak it for good.
	 */
	if (sock)
		(void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &off, sizeof(off));
	close(fd);
}

int
wfpb__net_is_tcp(wfpb_sock s, int *family)
{
	struct stat	st;
	int		v = 0;
	socklen_t	len = sizeof(v);

	*family = 0;
	if (fstat((int)s, &st) != 0 || !S_ISSOCK(st.st_mode))
		return 0;
	if (getsockopt((int)s, SOL_SOCKET, SO_TYPE, &v, &len) != 0 || v != SOCK_STREAM)
		return 0;
	len = sizeof(v);
	if (getsockopt((int)s, SOL_SOCKET, SO_PROTOCOL, &v, &len) != 0 || v != IPPROTO_TCP)
		return 0;
	len = sizeof(v);
	if (getsockopt((int)s, SOL_SOCKET, SO_DOMAIN, &v, &len) != 0)
		return 0;
	if (v == AF_INET)
		*family = WFPB_AF_INET;
	else if (v == AF_INET6)
		*family = WFPB_AF_INET6;
	return *family != 0;
}

int
wfpb__net_is_bound(wfpb_sock s)
{
	struct sockaddr_storage	ss;
	socklen_t		len = sizeof(ss);
	struct wfpb_addr	a;
	static const uint8_t	zero[16];

	if (getpeername((int)s, (struct sockaddr *)&ss, &len) == 0 || errno != ENOTCONN)
		return 1;
	len = sizeof(ss);
	if (getsockname((int)s, (struct sockaddr *)&ss, &len) != 0)
		return 1;
	from_sockaddr(&ss, &a);
	return a.port != 0 || memcmp(a.addr, zero, sizeof(zero)) != 0;
}

int
wfpb__net_status(int e)
{
	switch (e) {
	case EACCES: case EPERM: return WFPB_ST_EACCES;
	case EINVAL: return WFPB_ST_EINVAL;
	case EOPNOTSUPP: return WFPB_ST_EOPNOTSUPP;
	case EFAULT: return WFPB_ST_EFAULT;
	case ENOBUFS: case ENOMEM: case EMFILE: case ENFILE: return WFPB_ST_ENOBUFS;
	case EADDRINUSE: return WFPB_ST_EADDRINUSE;
	case EADDRNOTAVAIL: return WFPB_ST_EADDRNOTAVAIL;
	case ECONNREFUSED: return WFPB_ST_ECONNREFUSED;
	case ENETUNREACH: case EHOSTUNREACH: return WFPB_ST_ENETUNREACH;
	case ETIMEDOUT: return WFPB_ST_ETIMEDOUT;
	case ECONNRESET: case EPIPE: case ENOTCONN: return WFPB_ST_ECONNRESET;
	case EAFNOSUPPORT: return WFPB_ST_EAFNOSUPPORT;
	}
	return WFPB_ST_INTERNAL;
}

const char *
wfpb__net_strerror(int e)
{
	return strerror(e);
}

intptr_t
wfpb__net_pin_process(uint32_t pid, int *os_err)
{
	(void)pid;
	*os_err = ENOSYS;	/* a descriptor travels with SCM_RIGHTS: no process to pin */
	return 0;
}

int
wfpb__net_pull(intptr_t process, uint64_t handle, wfpb_sock *out, int *os_err)
{
	(void)process;
	(void)handle;
	(void)os_err;
	*out = WFPB_SOCK_NONE;
	return WFPB_E_UNSUPPORTED;
}

size_t
wfpb__net_handover_len(void)
{
	return 0;
}

int
wfpb__net_handover(wfpb_sock s, uint32_t pid, intptr_t process, uint8_t *out, size_t cap, size_t *len,
    int *os_err)
{
	/* POSIX hands the descriptor itself over with SCM_RIGHTS. */
	(void)s;
	(void)pid;
	(void)process;
	(void)out;
	(void)cap;
	(void)len;
	(void)os_err;
	return WFPB_E_UNSUPPORTED;
}
