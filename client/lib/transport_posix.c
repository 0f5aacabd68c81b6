/* SPDX-License-Identifier: Apache-2.0 */
/* libwfpb over a Unix stream socket, with poll() deadlines. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "fdpass_posix.h"
#include "transport.h"
#include "wfpb.h"

#define SOCKS_MAX	8

struct wfpb_transport {
	int		fd;
	int		socks[SOCKS_MAX];	/* received with SCM_RIGHTS, oldest first */
	int		nsocks;
	uint32_t	rcvtimeo_ms;		/* the socket's SO_RCVTIMEO now; 0: none set */
};

const char *
wfpb__default_endpoint(void)
{
	return "/run/wfpbroker/wfpbroker.sock";
}

const char *
wfpb__default_server_key(void)
{
	return "/var/lib/wfpbroker/server.pub";
}

int
wfpb__transport_connect(const char *endpoint, uint32_t timeout_ms, struct wfpb_transport **out, char *err,
    size_t errlen)
{
	struct sockaddr_un	sa = { .sun_family = AF_UNIX };
	struct wfpb_transport	*t;
	int			fd, e;

	(void)timeout_ms;	/* connect on a local socket does not wait for a peer */
	*out = NULL;
	if (strlen(endpoint) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "endpoint path too long: %s", endpoint);
		return WFPB_E_INVAL;
	}
	memcpy(sa.sun_path, endpoint, strlen(endpoint) + 1);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return WFPB_E_IO;
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		e = errno;
		close(fd);
		snprintf(err, errlen, "cannot reach the broker at %s: %s", endpoint, strerror(e));
		return e == ENOENT || e == ECONNREFUSED ? WFPB_E_NOENT : e == EACCES ? WFPB_E_ACCESS : WFPB_E_IO;
	}
	if ((t = malloc(sizeof(*t))) == NULL) {
		close(fd);
		return WFPB_E_NOMEM;
	}
	t->fd = fd;
	t->nsocks = 0;
	t->rcvtimeo_ms = 0;
	*out = t;
	return 0;
}

static int
wait_fd(int fd, short events, uint32_t timeout_ms)
{
	struct pollfd	pfd = { .fd = fd, .events = events };
	int		n;

	do
		n = poll(&pfd, 1, (int)timeout_ms);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return WFPB_E_IO;
	return n == 0 ? WFPB_E_TIMEOUT : 0;
}

int
wfpb__transport_write(struct wfpb_transport *t, const uint8_t *p, size_t len, uint32_t timeout_ms)
{
	ssize_t	n;
	int	rc;

	while (len > 0) {
		/* Send first and wait only when the socket is full: a request almost always fits. */
		n = send(t->fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				if ((rc = wait_fd(t->fd, POLLOUT, timeout_ms)) != 0)
					return rc;
				continue;
			}
			return errno == EPIPE || errno == ECONNRESET ? WFPB_E_CLOSED : WFPB_E_IO;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int
wfpb__transport_write_some(struct wfpb_transport *t, const uint8_t *p, size_t len, size_t *done, uint32_t timeout_ms)
{
	ssize_t n;

	(void)timeout_ms;
	*done = 0;
	while (*done < len) {
		n = send(t->fd, p + *done, len - *done, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;	/* full: the rest waits for the socket to be writable */
		if (n < 0)
			return errno == EPIPE || errno == ECONNRESET ? WFPB_E_CLOSED : WFPB_E_IO;
		*done += (size_t)n;
	}
	return 0;
}

int
wfpb__transport_write_sock(struct wfpb_transport *t, const uint8_t *p, size_t len, intptr_t sock,
    uint32_t timeout_ms)
{
	ssize_t	n;
	int	rc;

	do {
		if ((rc = wait_fd(t->fd, POLLOUT, timeout_ms)) != 0)
			return rc;
		n = wfpb__send_fd(t->fd, p, len, (int)sock, 0);
	} while (n < 0 && (errno == EINTR || errno == EAGAIN));
	if (n < 0)
		return errno == EPIPE || errno == ECONNRESET ? WFPB_E_CLOSED : WFPB_E_IO;
	/* The descriptor went with the first byte; the rest is ordinary data. */
	return wfpb__transport_write(t, p + n, len - (size_t)n, timeout_ms);
}

intptr_t
wfpb__transport_take_sock(struct wfpb_transport *t, int nonblocking)
{
	int fd, flags;

	if (t->nsocks == 0)
		return -1;
	fd = t->socks[0];
	memmove(&t->socks[0], &t->socks[1], (size_t)(t->nsocks - 1) * sizeof(int));
	t->nsocks--;
	/* The broker worked on it non-blocking; the application gets an ordinary blocking socket, if it wants one. */
	if (!nonblocking && (flags = fcntl(fd, F_GETFL)) >= 0 && (flags & O_NONBLOCK))
		(void)fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
	return fd;
}

void
wfpb__transport_drop_socks(struct wfpb_transport *t)
{
	while (t->nsocks > 0)
		close(t->socks[--t->nsocks]);
}

/* recv() that keeps SCM_RIGHTS descriptors; beyond SOCKS_MAX they are closed. */
static ssize_t
recv_socks(struct wfpb_transport *t, uint8_t *p, size_t cap)
{
	unsigned n;
	ssize_t got = wfpb__recv_fds(t->fd, p, cap, t->socks + t->nsocks, (unsigned)(SOCKS_MAX - t->nsocks), &n, 0);

	t->nsocks += (int)n;
	return got;
}

int
wfpb__transport_read(struct wfpb_transport *t, uint8_t *p, size_t cap, size_t *got, uint32_t timeout_ms)
{
	ssize_t	n;
	int	rc;

	*got = 0;
	/*
	 * A blocking receive bounded by SO_RCVTIMEO (set only when the timeout
	 * changes) costs one system call per answer instead of poll + recvmsg.
	 */
	if (timeout_ms > 0 && timeout_ms != t->rcvtimeo_ms) {
		struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000 };

		if (setsockopt(t->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == 0)
			t->rcvtimeo_ms = timeout_ms;
	}
	for (;;) {
		int polled = timeout_ms == 0 || timeout_ms != t->rcvtimeo_ms;

		if (polled && (rc = wait_fd(t->fd, POLLIN, timeout_ms)) != 0)
			return rc;
		n = recv_socks(t, p, cap);
		if (n < 0 && (errno == EINTR || (polled && errno == EAGAIN)))
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return WFPB_E_TIMEOUT;	/* SO_RCVTIMEO passed */
		if (n < 0)
			return errno == ECONNRESET ? WFPB_E_CLOSED : WFPB_E_IO;
		if (n == 0)
			return WFPB_E_CLOSED;
		*got = (size_t)n;
		return 0;
	}
}

intptr_t
wfpb__transport_wait_handle(const struct wfpb_transport *t)
{
	return t->fd;
}

void
wfpb__transport_arm(struct wfpb_transport *t)
{
	(void)t;	/* the socket itself is readable while bytes wait */
}

/* POSIX loops wait on the descriptor itself (wfpb_wait_handle): no notices. */
int
wfpb__notify_port(struct wfpb__notify **n, intptr_t port, uintptr_t key)
{
	(void)n;
	(void)port;
	(void)key;
	return WFPB_E_UNSUPPORTED;
}

int
wfpb__notify_socket(struct wfpb__notify **n, intptr_t *rx)
{
	(void)n;
	(void)rx;
	return WFPB_E_UNSUPPORTED;
}

void
wfpb__notify_free(struct wfpb__notify *n)
{
	(void)n;
}

int
wfpb__transport_watch(struct wfpb_transport *t, struct wfpb__notify *n)
{
	(void)t;
	(void)n;
	return WFPB_E_UNSUPPORTED;
}

void
wfpb__transport_rearm(struct wfpb_transport *t, int pending)
{
	(void)t;
	(void)pending;
}

void
wfpb__transport_close(struct wfpb_transport *t)
{
	if (t == NULL)
		return;
	wfpb__transport_drop_socks(t);
	close(t->fd);
	free(t);
}

uint64_t
wfpb__monotonic_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void
wfpb__close_socket(intptr_t sock)
{
	close((int)sock);
}

void
wfpb__sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

int
wfpb__socket_from_info(const uint8_t *info, size_t len, int nonblocking, intptr_t *out)
{
	(void)info;
	(void)len;
	(void)nonblocking;
	*out = -1;
	return WFPB_E_UNSUPPORTED;
}

/* Linux: the broker reads a flow's first datagram itself (wfpb_flow); nothing here to read. */
int
wfpb_udp_recv(wfpb_socket_t held, uint8_t *buf, size_t cap, uint8_t *ctl, size_t ctl_cap,
    struct wfpb_flow_first *out)
{
	(void)held;
	(void)buf;
	(void)cap;
	(void)ctl;
	(void)ctl_cap;
	(void)out;
	return WFPB_E_UNSUPPORTED;
}
