/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hostile-test: attacks of an ordinary local user on the native broker, each
 * from a real process running under a real uid (the test runs as root and
 * forks attackers that drop to their uid), while a witness session of root
 * measures that the broker keeps serving. The broker runs with the
 * configuration hostile.sh writes; each case states what must hold.
 *
 *   hostile-test ENDPOINT SERVER_PUB BROKER_PID CASE...
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend.h"
#include "channel.h"
#include "itest.h"
#include "itest_raw.h"
#include "keyfile.h"
#include "transport.h"
#include "wfpb.h"
#include "wfpbroker.pb-c.h"

/* hostile.sh's configuration. */
#define UID_NOBODY		1003	/* matches no principal */
#define UID_APP			1001	/* principal app: stash fetch connect */
#define MAX_SESSIONS		32
#define PER_USER		8
#define UNMATCHED_MS		1000
#define OUTPUT_STALL_MS		2000
#define BIND_LO			20000	/* app's bind range: 127.0.0.1/32:20000-20100, below the ephemeral ports */
#define UID_GROUPED		1005	/* matches principal grp only through supplementary group GID_GRP */
#define GID_GRP			1500

/* What a witness ping may take while an attack runs (docs/SECURITY.md). */
#define WITNESS_MAX_US		250000u

static const char	*endpoint, *server_pub_path;
static pid_t		broker_pid;
static uint8_t		server_pub[WFPB_NOISE_DHLEN];
static struct wfpb_client *admin;

/* --- helpers ---------------------------------------------------------------- */

static void
become(uid_t uid)
{
	if (setgroups(0, NULL) != 0 || setresgid(65534, 65534, 65534) != 0 || setresuid(uid, uid, uid) != 0) {
		perror("drop privileges");
		_exit(99);
	}
}

/* A Unix-socket connection to the broker, no protocol spoken. */
static int
unix_connect(void)
{
	struct sockaddr_un	sa = { .sun_family = AF_UNIX };
	int			fd;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", endpoint);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int
send_with_fd(int fd, void *p, size_t len, int passed)
{
	struct iovec	iov = { p, len };
	union {
		struct cmsghdr	h;
		char		b[CMSG_SPACE(sizeof(int))];
	} u;
	struct msghdr	m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b,
			      .msg_controllen = sizeof(u.b) };
	struct cmsghdr	*c = CMSG_FIRSTHDR(&m);

	memset(u.b, 0, sizeof(u.b));
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &passed, sizeof(int));
	return sendmsg(fd, &m, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -1;
}

/* A TCP listener on 127.0.0.1 (port 0: any) that never accepts; returns its fd and port. */
static int
tcp_listener(const char *ip, uint16_t want, int family, uint16_t *port)
{
	struct sockaddr_storage	ss = { 0 };
	socklen_t		len;
	int			fd, one = 1, small = 4096;

	if ((fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(want);
		inet_pton(AF_INET, ip, &sin->sin_addr);
		len = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
		int off = 0;

		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(want);
		inet_pton(AF_INET6, ip, &sin6->sin6_addr);
		len = sizeof(*sin6);
	}
	if (bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, 16) != 0) {
		close(fd);
		return -1;
	}
	len = sizeof(ss);
	getsockname(fd, (struct sockaddr *)&ss, &len);
	*port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port :
	    ((struct sockaddr_in6 *)&ss)->sin6_port);
	return fd;
}

/*
 * A blocking TCP socket whose close() sleeps: SO_LINGER {1, 10 s} and a send
 * buffer the peer (a listener that never reads) will not drain.
 */
static int
lingering_socket(uint16_t port)
{
	struct sockaddr_in	sin = { .sin_family = AF_INET, .sin_port = htons(port) };
	struct linger		lg = { 1, 10 };
	char			junk[4096];
	int			fd, small = 4096, fl;

	memset(junk, 'x', sizeof(junk));
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
		close(fd);
		return -1;
	}
	fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	while (send(fd, junk, sizeof(junk), MSG_NOSIGNAL) > 0)
		;
	fcntl(fd, F_SETFL, fl);
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	return fd;
}

/* The slowest of `n` witness pings spread over `ms`. */
static uint64_t
witness_worst_us(unsigned ms, unsigned n)
{
	uint64_t	worst = 0, t0, dt;
	unsigned	i;

	for (i = 0; i < n; i++) {
		t0 = wfpb_monotonic_us();
		if (wfpb_ping(admin, (const uint8_t *)"w", 1, NULL) != 0) {
			printf("  witness ping failed: %s\n", wfpb_errmsg(admin));
			return UINT64_MAX;
		}
		dt = wfpb_monotonic_us() - t0;
		if (dt > worst)
			worst = dt;
		itest_sleep_ms(ms / n);
	}
	return worst;
}

/* Waits for a child up to ms; kills it past that. Returns its exit status, or -1 if it had to be killed. */
static int
reap(pid_t pid, unsigned ms)
{
	int		st;
	unsigned	waited;

	for (waited = 0; waited < ms; waited += 20) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		itest_sleep_ms(20);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return -1;
}

/* --- 1. a passed descriptor must not freeze the event loop ----------------- */

/*
 * The harness of both cases: a listener that never reads (so the attacker's
 * socket lingers), the attacker forked under uid nobody, and the witness
 * pinging meanwhile. reap_ms bounds how long the attacker may take to finish
 * its steps: generous (a loaded machine, a sanitizer build), since what is
 * judged is the witness, not the attacker's speed.
 */
static int
linger_attack(void (*attacker)(uint16_t port), unsigned reap_ms, const char *what)
{
	uint16_t	port;
	int		lfd, st;
	pid_t		pid;
	uint64_t	worst;

	CHECK((lfd = tcp_listener("127.0.0.1", 0, AF_INET, &port)) >= 0, "listener: %s", strerror(errno));
	if ((pid = fork()) == 0) {
		become(UID_NOBODY);
		attacker(port);
		_exit(0);
	}
	worst = witness_worst_us(1500, 30);
	st = reap(pid, reap_ms);
	close(lfd);
	CHECK(st == 0, "attacker exit %d", st);
	printf("  slowest witness ping while %s: %llu us\n", what, (unsigned long long)worst);
	CHECK(worst < WITNESS_MAX_US, "the loop stalled %llu us %s", (unsigned long long)worst, what);
	return 0;
}

/*
 * Before any handshake: passes a lingering TCP socket with SCM_RIGHTS, drops
 * its own copy and hangs up, three times. The broker holds the last
 * reference; its close must not stall the loop.
 */
static void
linger_before_handshake(uint16_t port)
{
	static uint8_t	preamble[8] = { 'W', 'F', 'P', 'B', 0, 1, 0, 1 };
	int		u, s, i;

	for (i = 0; i < 3; i++) {
		if ((u = unix_connect()) < 0 || (s = lingering_socket(port)) < 0)
			_exit(2);
		if (send_with_fd(u, preamble, sizeof(preamble), s) != 0)
			_exit(3);
		close(s);
		usleep(50000);
		close(u);
	}
}

/* After the handshake: the lingering socket rides a Ping, an op that takes none. */
static void
linger_with_ping(uint16_t port)
{
	Wfpbroker__V1__Request		rq = WFPBROKER__V1__REQUEST__INIT;
	Wfpbroker__V1__PingRequest	ping = WFPBROKER__V1__PING_REQUEST__INIT;
	struct itest_raw			r;
	uint8_t				buf[256];
	const uint8_t			*p;
	size_t				len;
	int				s;

	if (itest_raw_establish(&r, endpoint, server_pub) != 0 || (s = lingering_socket(port)) < 0)
		_exit(2);
	rq.request_id = 1;
	rq.op_case = WFPBROKER__V1__REQUEST__OP_PING;
	rq.ping = &ping;
	len = wfpbroker__v1__request__get_packed_size(&rq);
	wfpbroker__v1__request__pack(&rq, buf);
	if (wfpb_channel_send(&r.ch, buf, len) != 0 || (p = wfpb_channel_output(&r.ch, &len)) == NULL)
		_exit(3);
	if (wfpb__transport_write_sock(r.t, p, len, s, 5000) != 0)
		_exit(4);
	close(s);
	(void)itest_raw_event(&r, 2000);
}

static int
case_linger_fd(void)
{
	return linger_attack(linger_before_handshake, 10000, "descriptors were dropped before the handshake");
}

static int
case_linger_fd_with_ping(void)
{
	return linger_attack(linger_with_ping, 10000, "a descriptor sent with a Ping was dropped");
}

/* --- 2. a client that never reads cannot grow the broker ------------------- */

#define FLOOD_FETCHES	20000u
#define FLOOD_RSS_BOUND	(24u * 1024u * 1024u)	/* growth allowed under the attack (docs/SECURITY.md) */

static void
fetch_flood(void)
{
	struct itest_raw r;

	become(UID_APP);
	if (itest_raw_establish(&r, endpoint, server_pub) != 0 || itest_raw_fetch_flood(&r, FLOOD_FETCHES, 5000) < 0)
		_exit(2);
	/* Hold the connection open without reading: the broker must end it. */
	sleep(30);
	_exit(0);
}

static int
case_output_flood(void)
{
	struct itest_usage	base, u;
	uint64_t		peak = 0, worst;
	unsigned		i;
	pid_t			pid;
	int			gone = 0;

	CHECK(itest_baseline(admin, &base) == 0, "baseline");
	if ((pid = fork()) == 0)
		fetch_flood();
	/* While it floods: the broker's memory stays bounded and the witness is served. */
	worst = 0;
	for (i = 0; i < 40; i++) {
		uint64_t t0 = wfpb_monotonic_us(), dt;

		CHECK(itest_usage_now(admin, &u) == 0, "status");
		dt = wfpb_monotonic_us() - t0;
		if (dt > worst)
			worst = dt;
		if (u.rss > peak)
			peak = u.rss;
		if (i > 5 && u.sessions == base.sessions) {
			gone = 1;
			break;
		}
		itest_sleep_ms(100);
	}
	for (; !gone && i < 40 + (OUTPUT_STALL_MS + 3000) / 100; i++) {
		CHECK(itest_usage_now(admin, &u) == 0, "status");
		if (u.rss > peak)
			peak = u.rss;
		gone = u.sessions == base.sessions;
		itest_sleep_ms(100);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	printf("  broker RSS: baseline %llu KiB, peak %llu KiB under the flood; slowest witness status %llu us\n",
	    (unsigned long long)(base.rss >> 10), (unsigned long long)(peak >> 10), (unsigned long long)worst);
	CHECK(peak <= base.rss + FLOOD_RSS_BOUND, "RSS grew %llu KiB, the bound is %u KiB",
	    (unsigned long long)((peak - base.rss) >> 10), FLOOD_RSS_BOUND >> 10);
	CHECK(gone, "the session that never reads was not closed after output_stall_ms");
	CHECK(worst < WITNESS_MAX_US, "the witness waited %llu us", (unsigned long long)worst);
	return itest_back_to_baseline(admin, &base);
}

/* --- 3. one uid cannot take every session slot ------------------------------- */

static int
case_identity_flood(void)
{
	struct wfpb_client	*c;
	int			ready[2], i, st;
	char			b = 0;
	pid_t			pid, flooder;

	CHECK(pipe(ready) == 0, "pipe");
	if ((flooder = fork()) == 0) {
		int fds[MAX_SESSIONS + 8];

		become(UID_NOBODY);
		close(ready[0]);
		/* Every slot it can get, held open (no handshake: it costs the attacker nothing). */
		for (i = 0; i < MAX_SESSIONS + 8; i++)
			fds[i] = unix_connect();
		(void)!write(ready[1], "x", 1);
		sleep(20);
		for (i = 0; i < MAX_SESSIONS + 8; i++)
			close(fds[i]);
		_exit(0);
	}
	close(ready[1]);
	CHECK(read(ready[0], &b, 1) == 1, "attacker did not get going");
	close(ready[0]);
	itest_sleep_ms(200);
	/* A legitimate principal (uid app) still connects and is served. */
	if ((pid = fork()) == 0) {
		become(UID_APP);
		if ((c = itest_open(endpoint, server_pub_path, NULL)) == NULL)
			_exit(2);
		_exit(wfpb_ping(c, (const uint8_t *)"x", 1, NULL) == 0 ? 0 : 3);
	}
	st = reap(pid, 8000);
	kill(flooder, SIGKILL);
	waitpid(flooder, NULL, 0);
	CHECK(st == 0, "principal app could not open a session while uid %d held the slots (exit %d)",
	    UID_NOBODY, st);
	/* The flooder's slots come back once it is gone. */
	for (i = 0; i < 30; i++) {
		struct itest_usage u;

		CHECK(itest_usage_now(admin, &u) == 0, "status");
		if (u.sessions == 1)
			return 0;
		itest_sleep_ms(100);
	}
	printf("  the flooder's sessions outlived it\n");
	return -1;
}

/* A session of an identity no principal matches is closed after unmatched_timeout_ms, idle or not. */
static int
case_unmatched_timeout(void)
{
	int	st;
	pid_t	pid;

	if ((pid = fork()) == 0) {
		struct itest_raw r;
		int rc;

		become(UID_NOBODY);
		if (itest_raw_establish(&r, endpoint, server_pub) != 0)
			_exit(2);
		rc = itest_raw_event(&r, UNMATCHED_MS * 4);
		/* The broker hangs up; a read timeout means it did not. */
		_exit(rc == WFPB_E_CLOSED ? 0 : 3);
	}
	st = reap(pid, UNMATCHED_MS * 6);
	CHECK(st == 0, "an established session with no principal was still open after %u ms (exit %d)",
	    UNMATCHED_MS * 4, st);
	return 0;
}

/* --- 7 and 8. Connect addresses are policy, in canonical form -------------- */

static struct wfpb_addr
v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d, uint16_t port)
{
	struct wfpb_addr x = { .family = WFPB_AF_INET, .addr = { a, b, c, d }, .port = port };

	return x;
}

/* An IPv6 address whose last four bytes are an IPv4 one, behind prefix bytes 10-11 (0xffff: mapped). */
static struct wfpb_addr
v6_embedding(uint8_t hi, uint8_t a, uint8_t b, uint8_t c, uint8_t d, uint16_t port)
{
	struct wfpb_addr x = { .family = WFPB_AF_INET6, .port = port };

	x.addr[10] = x.addr[11] = hi;
	x.addr[12] = a;
	x.addr[13] = b;
	x.addr[14] = c;
	x.addr[15] = d;
	return x;
}

/* As uid app, Connect to remote (binding local if given); returns the broker's status code (0: connected). */
static int
connect_as_app(struct wfpb_addr remote, const struct wfpb_addr *local)
{
	char	rt[WFPB_ADDR_STRLEN], lt[WFPB_ADDR_STRLEN] = "";
	pid_t	pid;

	wfpb_addr_format(&remote, rt);
	if (local != NULL)
		wfpb_addr_format(local, lt);
	if ((pid = fork()) == 0) {
		struct wfpb_client	*c;
		wfpb_socket_t		s;
		int			rc;

		become(UID_APP);
		if ((c = itest_open(endpoint, server_pub_path, NULL)) == NULL)
			_exit(250);
		rc = wfpb_connect(c, NULL, NULL, 0, &remote, local, 3000, &s, NULL);
		if (rc == 0) {
			close((int)s);
			printf("    %s%s%s: connected\n", rt, local ? " from " : "", lt);
			_exit(0);
		}
		printf("    %s%s%s: %s\n", rt, local ? " from " : "", lt, wfpb_errmsg(c));
		_exit(rc == WFPB_E_STATUS ? wfpb_status(c) : 251);
	}
	return reap(pid, 8000);
}

static int
case_mapped_ipv4(void)
{
	struct wfpb_addr	any6 = { .family = WFPB_AF_INET6 }, lo6 = { .family = WFPB_AF_INET6 };
	uint16_t		p4, p6;
	int			l4, l6, st;

	/* app may connect to 127.0.0.2 and any IPv6 address, not to 127.0.0.1. */
	CHECK((l4 = tcp_listener("127.0.0.1", 0, AF_INET, &p4)) >= 0, "v4 listener");
	CHECK((l6 = tcp_listener("::", 0, AF_INET6, &p6)) >= 0, "v6 listener");
	CHECK((st = connect_as_app(v4(127, 0, 0, 1, p4), NULL)) == WFPBROKER_STATUS_DENIED, "status %d", st);
	CHECK((st = connect_as_app(v6_embedding(0xff, 127, 0, 0, 1, p4), NULL)) == WFPBROKER_STATUS_DENIED,
	    "::ffff:127.0.0.1 reached around the IPv4 ranges (status %d)", st);
	CHECK((st = connect_as_app(v6_embedding(0, 127, 0, 0, 1, p4), NULL)) == WFPBROKER_STATUS_DENIED,
	    "::127.0.0.1 (IPv4-compatible): status %d", st);
	any6.port = p6;
	CHECK((st = connect_as_app(any6, NULL)) != 0, "[::] (unspecified) connected to this host");
	CHECK((st = connect_as_app(v4(0, 0, 0, 0, p4), NULL)) != 0, "0.0.0.0 (unspecified) connected to this host");
	/* The grant itself still works. */
	lo6.addr[15] = 1;
	lo6.port = p6;
	CHECK((st = connect_as_app(lo6, NULL)) == 0, "[::1] is granted: status %d", st);
	close(l4);
	close(l6);
	return 0;
}

static int
case_bind_policy(void)
{
	struct wfpb_addr	l;
	uint16_t		p;
	int			fd, st;

	/* The remote is granted (127.0.0.2, any port); only the local address is at stake. */
	CHECK((fd = tcp_listener("127.0.0.2", 0, AF_INET, &p)) >= 0, "listener");
	CHECK((st = connect_as_app(v4(127, 0, 0, 2, p), NULL)) == 0, "plain connect: status %d", st);
	l = v4(127, 0, 0, 1, 1023);
	CHECK((st = connect_as_app(v4(127, 0, 0, 2, p), &l)) == WFPBROKER_STATUS_DENIED,
	    "bound source port 1023 as root for uid %d (status %d)", UID_APP, st);
	l = v4(127, 0, 0, 3, 0);
	CHECK((st = connect_as_app(v4(127, 0, 0, 2, p), &l)) == WFPBROKER_STATUS_DENIED,
	    "bound a local address outside the bind ranges (status %d)", st);
	l = v4(127, 0, 0, 1, BIND_LO + 50);
	CHECK((st = connect_as_app(v4(127, 0, 0, 2, p), &l)) == 0, "a local address inside the bind range: status %d",
	    st);
	close(fd);
	return 0;
}

/* --- 5. filling the disk through the audit log ------------------------------- */

static long long
file_size(const char *path)
{
	FILE		*f = fopen(path, "rb");
	long long	n;

	if (f == NULL)
		return -1;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fclose(f);
	return n;
}

/* Pipelines n requests (built by make) on a raw session, reading the answers as they come; returns codes seen. */
static int
pipeline(struct itest_raw *r, unsigned n, void (*make)(Wfpbroker__V1__Request *, unsigned), unsigned *ok,
    unsigned *quota)
{
	Wfpbroker__V1__Request	rq;
	Wfpbroker__V1__Response	*resp;
	const uint8_t		*m;
	size_t			mlen;
	unsigned		sent = 0, got = 0;
	int			ev;

	*ok = *quota = 0;
	while (got < n) {
		/* Keep up to 32 in flight: fast, and within any output budget. */
		while (sent < n && sent - got < 32) {
			wfpbroker__v1__request__init(&rq);
			make(&rq, sent);
			rq.request_id = ++sent;
			if (itest_raw_request(r, &rq) != 0)
				return -1;
		}
		if ((ev = itest_raw_event(r, 5000)) != WFPB_CHANNEL_MESSAGE)
			return -1;
		m = wfpb_channel_message(&r->ch, &mlen);
		if ((resp = wfpbroker__v1__response__unpack(NULL, mlen, m)) == NULL || resp->status == NULL)
			return -1;
		if (resp->status->code == 0)
			(*ok)++;
		else if (resp->status->code == WFPBROKER_STATUS_QUOTA)
			(*quota)++;
		wfpbroker__v1__response__free_unpacked(resp, NULL);
		got++;
	}
	return 0;
}

static Wfpbroker__V1__PingRequest flood_ping = WFPBROKER__V1__PING_REQUEST__INIT;

static void
make_ping(Wfpbroker__V1__Request *rq, unsigned i)
{
	(void)i;
	rq->op_case = WFPBROKER__V1__REQUEST__OP_PING;
	rq->ping = &flood_ping;
}

static void
make_listen_denied(Wfpbroker__V1__Request *rq, unsigned i)
{
	static Wfpbroker__V1__ListenRequest	l = WFPBROKER__V1__LISTEN_REQUEST__INIT;
	static Wfpbroker__V1__Address		a = WFPBROKER__V1__ADDRESS__INIT;
	static uint8_t				lo[4] = { 127, 0, 0, 1 };

	(void)i;
	a.family = WFPBROKER__V1__ADDRESS_FAMILY__AF_INET;
	a.addr.data = lo;
	a.addr.len = 4;
	l.local = &a;
	rq->op_case = WFPBROKER__V1__REQUEST__OP_LISTEN;
	rq->listen = &l;
}

#define FLOOD_PINGS		20000u
#define FLOOD_DENIALS		5000u
#define AUDIT_GROWTH_BOUND	(256 * 1024)	/* bytes the log may grow under both floods (docs/SECURITY.md) */

/*
 * uid nobody, which matches no principal, pings as fast as it can and asks
 * for Listen (denied) as fast as it can, in sessions it opens and drops. Every
 * one of those was a record of its own: about 10 MB/s of log from a user with
 * no grants. Pings and sessions without a principal go into a periodic
 * summary; denials stay records but an identity gets only so many a second
 * (QUOTA past that).
 */
static int
case_audit_flood(void)
{
	const char	*log = getenv("WFPB_HOSTILE_AUDIT_LOG");
	long long	before, after;
	int		st;
	pid_t		pid;

	CHECK(log != NULL && (before = file_size(log)) >= 0, "WFPB_HOSTILE_AUDIT_LOG names the audit log");
	if ((pid = fork()) == 0) {
		struct itest_raw	r;
		unsigned	ok, quota, i;

		become(UID_NOBODY);
		for (i = 0; i < 4; i++) {
			if (itest_raw_establish(&r, endpoint, server_pub) != 0 || pipeline(&r, FLOOD_PINGS / 4, make_ping, &ok, &quota) != 0)
				_exit(2);
			if (ok != FLOOD_PINGS / 4)
				_exit(3);	/* pings are answered; only their records are summarised */
			itest_raw_close(&r);
		}
		if (itest_raw_establish(&r, endpoint, server_pub) != 0 || pipeline(&r, FLOOD_DENIALS, make_listen_denied, &ok, &quota) != 0)
			_exit(4);
		printf("    %u denials asked for: %u answered QUOTA (rate limit)\n", FLOOD_DENIALS, quota);
		_exit(quota > 0 ? 0 : 5);
	}
	st = reap(pid, 60000);
	itest_sleep_ms(300);	/* lazily committed records reach the file */
	after = file_size(log);
	printf("  audit log grew %lld bytes for %u pings in 4 sessions and %u denials\n", after - before,
	    FLOOD_PINGS, FLOOD_DENIALS);
	CHECK(st == 0, "the flooder failed (exit %d)", st);
	CHECK(after - before <= AUDIT_GROWTH_BOUND, "the log grew %lld bytes, the bound is %d", after - before,
	    AUDIT_GROWTH_BOUND);
	return 0;
}

#define DENIAL_FLOOD		5000u
#define DENIAL_LOG_BOUND	(32 * 1024)	/* bytes the broker's log may grow under the flood (docs/SECURITY.md) */

/*
 * uid 1001, an ordinary proxy principal with a generous audit rate, asks for
 * Listen (not granted) as fast as it can: each denial was a line in the
 * broker's log and in syslog or the Event Log. They are counted and audited
 * each; the log gets a burst, a few a second, and one line saying how many
 * were left out.
 */
static int
case_denial_flood(void)
{
	const char	*log = getenv("WFPB_HOSTILE_BROKER_LOG");
	long long	before, after;
	int		st;
	pid_t		pid;

	CHECK(log != NULL && (before = file_size(log)) >= 0, "WFPB_HOSTILE_BROKER_LOG names the broker's log");
	if ((pid = fork()) == 0) {
		struct itest_raw	r;
		unsigned		ok, quota;

		become(UID_APP);
		if (itest_raw_establish(&r, endpoint, server_pub) != 0 ||
		    pipeline(&r, DENIAL_FLOOD, make_listen_denied, &ok, &quota) != 0)
			_exit(2);
		_exit(ok == 0 && quota == 0 ? 0 : 3);	/* every one denied, none throttled */
	}
	st = reap(pid, 60000);
	itest_sleep_ms(1200);	/* the broker's tick says how many were not logged */
	after = file_size(log);
	printf("  broker log grew %lld bytes for %u denials\n", after - before, DENIAL_FLOOD);
	CHECK(st == 0, "the flooder failed (exit %d)", st);
	CHECK(after - before <= DENIAL_LOG_BOUND, "the broker's log grew %lld bytes, the bound is %d", after - before,
	    DENIAL_LOG_BOUND);
	return 0;
}

/* --- 4. running the broker out of descriptors ------------------------------- */

/* CPU seconds (user + system) the broker has used, from /proc/PID/stat. */
static double
broker_cpu_s(void)
{
	char		path[64], buf[1024], *p;
	unsigned long	ut = 0, st = 0;
	FILE		*f;
	int		i;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)broker_pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	p = fgets(buf, sizeof(buf), f);
	fclose(f);
	if (p == NULL || (p = strrchr(buf, ')')) == NULL)
		return -1;
	/* After "(comm)": state is field 3; utime and stime are fields 14 and 15. */
	for (i = 3; i < 14 && p != NULL; i++)
		p = strchr(p + 1, ' ');
	if (p == NULL || sscanf(p, " %lu %lu", &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

#define FD_ATTACK_CONNS	200	/* well past the broker's 64 descriptors (hostile.sh: ulimit -n 64) */

/*
 * uid nobody opens connection after connection and holds them until the
 * broker has no descriptor left. The broker must not spin on a listener that
 * stays readable, must keep serving its open sessions, tell new clients it is
 * busy, and take connections again once the attacker leaves.
 */
static int
case_fd_exhaustion(void)
{
	double		cpu0, cpu1;
	uint64_t	worst;
	int		ready[2], st;
	char		b;
	pid_t		pid;

	CHECK(pipe(ready) == 0, "pipe");
	if ((pid = fork()) == 0) {
		int i;

		become(UID_NOBODY);
		close(ready[0]);
		for (i = 0; i < FD_ATTACK_CONNS; i++)
			(void)unix_connect();	/* the broker's backlog holds what it cannot accept */
		(void)!write(ready[1], "x", 1);
		sleep(30);
		_exit(0);
	}
	close(ready[1]);
	CHECK(read(ready[0], &b, 1) == 1, "attacker did not get going");
	close(ready[0]);
	itest_sleep_ms(300);
	cpu0 = broker_cpu_s();
	worst = witness_worst_us(2000, 20);
	cpu1 = broker_cpu_s();
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	printf("  out of descriptors for 2 s: broker CPU %.2f s, slowest witness ping %llu us\n", cpu1 - cpu0,
	    (unsigned long long)worst);
	CHECK(cpu0 >= 0 && cpu1 - cpu0 < 0.3, "the broker spun: %.2f CPU seconds in 2 s", cpu1 - cpu0);
	CHECK(worst < WITNESS_MAX_US, "the witness waited %llu us", (unsigned long long)worst);
	/* Once the attacker is gone, new sessions are served again. */
	itest_sleep_ms(500);
	if ((pid = fork()) == 0) {
		struct wfpb_client *c;

		become(UID_APP);
		if ((c = itest_open(endpoint, server_pub_path, NULL)) == NULL)
			_exit(2);
		_exit(wfpb_ping(c, (const uint8_t *)"x", 1, NULL) == 0 ? 0 : 3);
	}
	st = reap(pid, 8000);
	CHECK(st == 0, "no new session after the attacker left (exit %d)", st);
	return 0;
}

/* --- 6. records provenance ------------------------------------------------------ */

/*
 * app (granted connect, not apply_foreign) hands the broker records it wrote
 * itself — a well-formed sim record, inline and through a Stash of its own —
 * to make its connection look like another vendor's redirected one. Only
 * records the broker queried may be applied for it.
 */
static int
case_foreign_records(void)
{
	int	st, fd;
	uint16_t p;
	pid_t	pid;

	CHECK((fd = tcp_listener("127.0.0.2", 0, AF_INET, &p)) >= 0, "listener");
	if ((pid = fork()) == 0) {
		uint8_t			rec[WFPB_SIM_HDR_LEN + WFPB_SIM_HOP_LEN] = "WFPS\x01\x00\x00\x01";
		uint8_t			h[WFPB_HANDLE_LEN];
		struct wfpb_addr	to = v4(127, 0, 0, 2, p);
		struct wfpb_client	*c;
		wfpb_socket_t		s;
		int			rc;

		rec[WFPB_SIM_HDR_LEN] = WFPB_AF_INET;
		become(UID_APP);
		if ((c = itest_open(endpoint, server_pub_path, NULL)) == NULL)
			_exit(90);
		rc = wfpb_connect(c, NULL, rec, sizeof(rec), &to, NULL, 3000, &s, NULL);
		printf("    inline records: %s\n", rc == 0 ? "applied" : wfpb_errmsg(c));
		if (rc != WFPB_E_STATUS || wfpb_status(c) != WFPBROKER_STATUS_DENIED)
			_exit(91);
		if (wfpb_stash(c, rec, sizeof(rec), 0, h) != 0)
			_exit(92);
		rc = wfpb_connect(c, h, NULL, 0, &to, NULL, 3000, &s, NULL);
		printf("    records stashed by the client: %s\n", rc == 0 ? "applied" : wfpb_errmsg(c));
		if (rc != WFPB_E_STATUS || wfpb_status(c) != WFPBROKER_STATUS_DENIED)
			_exit(93);
		/* Without records the connection is still made: provenance bars forging, not connecting. */
		if (wfpb_connect(c, NULL, NULL, 0, &to, NULL, 3000, &s, NULL) != 0)
			_exit(94);
		close((int)s);
		_exit(0);
	}
	st = reap(pid, 10000);
	close(fd);
	CHECK(st == 0, "client-written records were applied for a principal without apply_foreign (exit %d)", st);
	return 0;
}

/* --- 12. identity is what the kernel recorded at connect ------------------- */

/*
 * uid 1005 connects holding group 1500 (which principal grp is granted
 * through), then drops the group before the broker has looked (the broker is
 * stopped meanwhile, so the order is certain). The broker must judge the
 * credentials the connection was made with, not whatever /proc shows later:
 * the same gap lets a process that exits be replaced by another under its PID.
 */
static int
case_groups_at_connect(void)
{
	int	st, go[2], done[2];
	char	b;
	pid_t	pid;

	CHECK(pipe(go) == 0 && pipe(done) == 0, "pipe");
	if ((pid = fork()) == 0) {
		Wfpbroker__V1__Request		rq = WFPBROKER__V1__REQUEST__INIT;
		Wfpbroker__V1__StashRequest	sr = WFPBROKER__V1__STASH_REQUEST__INIT;
		Wfpbroker__V1__Response		*resp;
		gid_t				g = GID_GRP;
		struct itest_raw			r;
		const uint8_t			*m;
		size_t				mlen;
		int				code;

		close(go[1]);
		close(done[0]);
		/* Real and effective uid 1005, saved uid 0: able to change its groups once more. */
		if (setgroups(1, &g) != 0 || setresgid(65534, 65534, 65534) != 0 || setresuid(UID_GROUPED, UID_GROUPED, 0) != 0)
			_exit(90);
		if (read(go[0], &b, 1) != 1)
			_exit(91);
		if (itest_raw_connect(&r, endpoint) != 0)
			_exit(92);
		if (seteuid(0) != 0 || setgroups(0, NULL) != 0 || setresuid(UID_GROUPED, UID_GROUPED, UID_GROUPED) != 0)
			_exit(93);
		(void)!write(done[1], "x", 1);
		if (wfpb_channel_client_start(&r.ch, server_pub, NULL) != 0 || itest_raw_flush(&r) != 0 ||
		    itest_raw_event(&r, 5000) != WFPB_CHANNEL_ESTABLISHED)
			_exit(94);
		sr.blob.data = (uint8_t *)"g";
		sr.blob.len = 1;
		rq.request_id = 1;
		rq.op_case = WFPBROKER__V1__REQUEST__OP_STASH;
		rq.stash = &sr;
		if (itest_raw_request(&r, &rq) != 0 || itest_raw_event(&r, 5000) != WFPB_CHANNEL_MESSAGE)
			_exit(95);
		m = wfpb_channel_message(&r.ch, &mlen);
		if ((resp = wfpbroker__v1__response__unpack(NULL, mlen, m)) == NULL || resp->status == NULL)
			_exit(96);
		code = (int)resp->status->code;
		if (code != 0)
			printf("    stash as uid %d: %s\n", UID_GROUPED, resp->status->message);
		_exit(code == 0 ? 0 : 97);
	}
	close(go[0]);
	close(done[1]);
	CHECK(kill(broker_pid, SIGSTOP) == 0, "stop the broker: %s", strerror(errno));
	(void)!write(go[1], "x", 1);
	/* The connection is made (the kernel queues it) and the group dropped while the broker sleeps. */
	st = read(done[0], &b, 1) == 1;
	kill(broker_pid, SIGCONT);
	close(go[1]);
	close(done[0]);
	CHECK(st, "the client could not connect and drop its group");
	st = reap(pid, 8000);
	CHECK(st == 0, "the broker judged the groups read after connect, not the connection's (exit %d)", st);
	return 0;
}

/* --- driver ------------------------------------------------------------------ */

struct tcase {
	const char	*name;
	int		(*fn)(void);
};

static const struct tcase cases[] = {
	{ "linger_fd", case_linger_fd },
	{ "linger_fd_with_ping", case_linger_fd_with_ping },
	{ "output_flood", case_output_flood },
	{ "identity_flood", case_identity_flood },
	{ "unmatched_timeout", case_unmatched_timeout },
	{ "mapped_ipv4", case_mapped_ipv4 },
	{ "bind_policy", case_bind_policy },
	{ "groups_at_connect", case_groups_at_connect },
	{ "foreign_records", case_foreign_records },
	{ "fd_exhaustion", case_fd_exhaustion },
	{ "audit_flood", case_audit_flood },
	{ "denial_flood", case_denial_flood },
};

int
main(int argc, char **argv)
{
	int	passed = 0, failed = 0, i;
	size_t	j;

	if (argc < 5) {
		fprintf(stderr, "usage: hostile-test ENDPOINT SERVER_PUB BROKER_PID CASE...\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	endpoint = argv[1];
	server_pub_path = argv[2];
	broker_pid = (pid_t)atoi(argv[3]);
	if (wfpb_keyfile_load_public(server_pub_path, server_pub) != 0) {
		fprintf(stderr, "cannot read %s\n", server_pub_path);
		return 2;
	}
	if ((admin = itest_open(endpoint, server_pub_path, NULL)) == NULL)
		return 2;
	for (i = 4; i < argc; i++) {
		for (j = 0; j < sizeof(cases) / sizeof(cases[0]); j++)
			if (strcmp(cases[j].name, argv[i]) == 0)
				break;
		if (j == sizeof(cases) / sizeof(cases[0])) {
			printf("FAIL %s: no such case\n", argv[i]);
			failed++;
			continue;
		}
		printf("-- %s\n", cases[j].name);
		if (cases[j].fn() == 0) {
			printf("ok   %s\n", cases[j].name);
			passed++;
		} else {
			printf("FAIL %s\n", cases[j].name);
			failed++;
		}
		/* The witness must have lived through it. */
		if (wfpb_ping(admin, (const uint8_t *)"w", 1, NULL) != 0) {
			printf("FAIL the witness session died after %s: %s\n", cases[j].name, wfpb_errmsg(admin));
			failed++;
			wfpb_close(admin);
			if ((admin = itest_open(endpoint, server_pub_path, NULL)) == NULL)
				break;
		}
	}
	wfpb_close(admin);
	printf("%d passed, %d failed\n", passed, failed);
	return failed == 0 ? 0 : 1;
}
