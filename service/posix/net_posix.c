/* The socket contract (core/net.h) on POSIX: non-blocking, close-on-exec, errno translated here. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net.h"

#define WFPB_SOCKLEN socklen_t
#include "sockaddr_conv.h"
#include "wfpbroker.pb-c.h"

static int
os_fail(int *os_err)
{
	*os_err = errno;
	return WFPB_E_OS;
}

int
wfpb__net_socket(int family, wfpb_sock *out, int *os_err)
{
	int fd;

	*out = WFPB_SOCK_NONE;
	fd = socket(family == WFPB_AF_INET6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return os_fail(os_err);
	*out = fd;
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
wfpb__net_connect_result(wfpb_sock s, int *os_err)
{
	int		err = 0;
	socklen_t	len = sizeof(err);

	if (getsockopt((int)s, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
		return os_fail(os_err);
	if (err != 0) {
		*os_err = err;
		return WFPB_E_OS;
	}
	return 0;
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

void
wfpb__net_close(wfpb_sock s)
{
	if (s != WFPB_SOCK_NONE)
		close((int)s);
}

int
wfpb__net_status(int e)
{
	switch (e) {
	case EACCES: case EPERM: return WFPBROKER__V1__STATUS_CODE__EACCES;
	case EINVAL: return WFPBROKER__V1__STATUS_CODE__EINVAL;
	case EOPNOTSUPP: return WFPBROKER__V1__STATUS_CODE__EOPNOTSUPP;
	case EFAULT: return WFPBROKER__V1__STATUS_CODE__EFAULT;
	case ENOBUFS: case ENOMEM: case EMFILE: case ENFILE: return WFPBROKER__V1__STATUS_CODE__ENOBUFS;
	case EADDRINUSE: return WFPBROKER__V1__STATUS_CODE__EADDRINUSE;
	case EADDRNOTAVAIL: return WFPBROKER__V1__STATUS_CODE__EADDRNOTAVAIL;
	case ECONNREFUSED: return WFPBROKER__V1__STATUS_CODE__ECONNREFUSED;
	case ENETUNREACH: case EHOSTUNREACH: return WFPBROKER__V1__STATUS_CODE__ENETUNREACH;
	case ETIMEDOUT: return WFPBROKER__V1__STATUS_CODE__ETIMEDOUT;
	case ECONNRESET: case EPIPE: case ENOTCONN: return WFPBROKER__V1__STATUS_CODE__ECONNRESET;
	case EAFNOSUPPORT: return WFPBROKER__V1__STATUS_CODE__EAFNOSUPPORT;
	}
	return WFPBROKER__V1__STATUS_CODE__INTERNAL;
}

const char *
wfpb__net_strerror(int e)
{
	return strerror(e);
}

int
wfpb__net_pull(uint32_t pid, uint64_t handle, wfpb_sock *out, int *os_err)
{
	(void)pid;
	(void)handle;
	(void)os_err;
	*out = WFPB_SOCK_NONE;
	return WFPB_E_UNSUPPORTED;
}

int
wfpb__net_handover(wfpb_sock s, uint32_t pid, uint8_t *out, size_t cap, size_t *len, int *os_err)
{
	/* POSIX hands the descriptor itself over with SCM_RIGHTS. */
	(void)s;
	(void)pid;
	(void)out;
	(void)cap;
	(void)len;
	(void)os_err;
	return WFPB_E_UNSUPPORTED;
}
