/* SPDX-License-Identifier: Apache-2.0 */
/*
 * handover-test ENDPOINT SERVER_PUB: the socket operations through a running
 * wfpbrokerd (sim backend) with real TCP connections on loopback: Listen,
 * Accept with records and context, Connect with records, secondary mode, the
 * policy's address ranges, timeouts, errors, and undo when a client dies
 * holding a pending Accept. The caller's principal needs listen, accept,
 * connect, query, apply, stash, fetch and admin, with listen ranges
 * 127.0.0.1/32:* and connect ranges 127.0.0.1/32:*.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend.h"
#include "itest.h"
#include "wfpb.h"

static const char	*endpoint, *server_pub;
static int		passed, failed;

static struct wfpb_client *
open_client(void)
{
	return itest_open(endpoint, server_pub, NULL);
}

/* A plain TCP connection from this process to 127.0.0.1:port; returns the fd and its local port. */
static int
tcp_connect(uint16_t port, uint16_t *local_port)
{
	struct sockaddr_in	sin = { .sin_family = AF_INET, .sin_port = htons(port) };
	socklen_t		len = sizeof(sin);
	int			fd = socket(AF_INET, SOCK_STREAM, 0);

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0)
		return -1;
	if (local_port != NULL && getsockname(fd, (struct sockaddr *)&sin, &len) == 0)
		*local_port = ntohs(sin.sin_port);
	return fd;
}

/* A listening socket of our own, the "origin" a relay connects to. */
static int
tcp_listen(uint16_t *port)
{
	struct sockaddr_in	sin = { .sin_family = AF_INET };
	socklen_t		len = sizeof(sin);
	int			fd = socket(AF_INET, SOCK_STREAM, 0);

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 || listen(fd, 8) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sin, &len) != 0)
		return -1;
	*port = ntohs(sin.sin_port);
	return fd;
}

static int
roundtrip(int a, int b, const char *text)
{
	char	buf[64];
	ssize_t	n;

	if (write(a, text, strlen(text)) != (ssize_t)strlen(text))
		return -1;
	n = read(b, buf, sizeof(buf));
	return n == (ssize_t)strlen(text) && memcmp(buf, text, (size_t)n) == 0 ? 0 : -1;
}

static int
case_listen_accept_records(void)
{
	struct wfpb_client	*c = open_client();
	struct wfpb_accepted	acc = WFPB_ACCEPTED_INIT;
	struct wfpb_addr	bound, any = itest_loopback(0);
	uint64_t		lid;
	uint8_t			*blob;
	size_t			len;
	uint16_t		cport = 0;
	int			fd;

	CHECK(c != NULL, "open");
	CHECK(wfpb_listen(c, &any, 0, &lid, &bound) == 0, "listen: %s", wfpb_errmsg(c));
	CHECK(bound.port != 0, "no port bound");
	CHECK((fd = tcp_connect(bound.port, &cport)) >= 0, "tcp connect");
	CHECK(wfpb_accept(c, lid, 2000, 0, &acc) == 0, "accept: %s", wfpb_errmsg(c));
	CHECK(acc.sock >= 0, "no socket");
	CHECK(acc.peer.port == cport, "peer port %u, ours %u", acc.peer.port, cport);
	CHECK(acc.local.port == bound.port, "local port");
	CHECK(acc.has_records, "no records handle");
	CHECK(acc.context_len == 2 * WFPB_SIM_HOP_LEN, "context %zu bytes", acc.context_len);
	/* The handed-over socket is the accepted connection, usable in this process. */
	CHECK(roundtrip(fd, (int)acc.sock, "hello through the handed-over socket") == 0, "data path");
	CHECK(roundtrip((int)acc.sock, fd, "and back") == 0, "data path back");
	/* The records were queried natively and stashed: fetch shows the sim blob. */
	CHECK(wfpb_fetch(c, acc.records, &blob, &len) == 0, "fetch: %s", wfpb_errmsg(c));
	CHECK(len == WFPB_SIM_HDR_LEN + WFPB_SIM_HOP_LEN && memcmp(blob, WFPB_SIM_MAGIC, 4) == 0, "blob");
	wfpb_free(blob);
	close(fd);
	wfpb_accepted_free(&acc);
	wfpb_close(c);
	return 0;
}

static int
case_connect_with_records(void)
{
	struct wfpb_client	*c = open_client();
	struct wfpb_accepted	acc = WFPB_ACCEPTED_INIT;
	struct wfpb_status_info	st0 = WFPB_STATUS_INFO_INIT, st1 = WFPB_STATUS_INFO_INIT;
	struct wfpb_addr	bound, any = itest_loopback(0), origin_addr;
	wfpb_socket_t		up;
	uint64_t		lid;
	uint16_t		oport;
	int			origin, fd, ofd;

	CHECK(c != NULL, "open");
	CHECK((origin = tcp_listen(&oport)) >= 0, "origin");
	CHECK(wfpb_server_status(c, &st0) == 0, "status: %s", wfpb_errmsg(c));
	CHECK(wfpb_listen(c, &any, 0, &lid, &bound) == 0, "listen: %s", wfpb_errmsg(c));
	CHECK((fd = tcp_connect(bound.port, NULL)) >= 0, "tcp connect");
	CHECK(wfpb_accept(c, lid, 2000, 0, &acc) == 0, "accept: %s", wfpb_errmsg(c));
	/* A relay's second half: a new connection to the origin carrying the records. */
	origin_addr = itest_loopback(oport);
	CHECK(wfpb_connect(c, acc.records, NULL, 0, &origin_addr, NULL, 2000, &up, NULL) == 0, "connect: %s",
	    wfpb_errmsg(c));
	CHECK((ofd = accept(origin, NULL, NULL)) >= 0, "origin accept");
	CHECK(roundtrip((int)up, ofd, "via the broker's socket") == 0, "connected socket works");
	CHECK(wfpb_server_status(c, &st1) == 0, "status");
	CHECK(st1.records_applied == st0.records_applied + 1, "records_applied %llu -> %llu",
	    (unsigned long long)st0.records_applied, (unsigned long long)st1.records_applied);
	CHECK(st1.listeners >= 1, "listeners %u", st1.listeners);
	close((int)up);
	close(ofd);
	close(fd);
	close(origin);
	wfpb_accepted_free(&acc);
	wfpb_close(c);
	return 0;
}

/*
 * Records kept for one use (a proxy's Accept then Connect): Fetch does not use
 * them up, a Connect the policy refuses does not either, the Connect that
 * applies them releases them, and an unknown lifetime is refused by the library.
 */
static int
case_records_used_once(void)
{
	struct wfpb_client	*c = open_client();
	struct wfpb_accepted	acc = WFPB_ACCEPTED_INIT, bad = WFPB_ACCEPTED_INIT;
	struct wfpb_status_info	st0 = WFPB_STATUS_INFO_INIT, st1 = WFPB_STATUS_INFO_INIT;
	struct wfpb_addr	bound, any = itest_loopback(0), origin_addr, outside = itest_loopback(80);
	wfpb_socket_t		up = WFPB_SOCKET_NONE;
	uint64_t		lid;
	uint16_t		oport;
	uint8_t			*blob = NULL;
	size_t			len;
	int			origin, fd, ofd;

	CHECK(c != NULL, "open");
	CHECK((origin = tcp_listen(&oport)) >= 0, "origin");
	CHECK(wfpb_listen(c, &any, 0, &lid, &bound) == 0, "listen: %s", wfpb_errmsg(c));
	CHECK(wfpb_server_status(c, &st0) == 0, "status: %s", wfpb_errmsg(c));
	CHECK(wfpb_accept(c, lid, 100, WFPB_LIFETIME_ONCE + 1, &bad) == WFPB_E_INVAL, "lifetime 3 accepted");
	CHECK((fd = tcp_connect(bound.port, NULL)) >= 0, "tcp connect");
	CHECK(wfpb_accept(c, lid, 2000, WFPB_LIFETIME_ONCE, &acc) == 0, "accept: %s", wfpb_errmsg(c));
	CHECK(acc.has_records, "no records handle");
	CHECK(wfpb_fetch(c, acc.records, &blob, &len) == 0, "fetch: %s", wfpb_errmsg(c));
	wfpb_free(blob);
	outside.addr[0] = 10;
	outside.addr[3] = 1;
	CHECK(wfpb_connect(c, acc.records, NULL, 0, &outside, NULL, 1000, &up, NULL) == WFPB_E_STATUS &&
	    strstr(wfpb_errmsg(c), "DENIED") != NULL, "connect outside the ranges: %s", wfpb_errmsg(c));
	CHECK(wfpb_fetch(c, acc.records, &blob, &len) == 0, "a refused connect used them up: %s", wfpb_errmsg(c));
	wfpb_free(blob);
	origin_addr = itest_loopback(oport);
	CHECK(wfpb_connect(c, acc.records, NULL, 0, &origin_addr, NULL, 2000, &up, NULL) == 0, "connect: %s",
	    wfpb_errmsg(c));
	CHECK((ofd = accept(origin, NULL, NULL)) >= 0, "origin accept");
	CHECK(roundtrip((int)up, ofd, "records used once") == 0, "connected socket works");
	close((int)up);
	CHECK(wfpb_fetch(c, acc.records, &blob, &len) == WFPB_E_STATUS && strstr(wfpb_errmsg(c), "NOT_FOUND") != NULL,
	    "records still there after the connect that used them: %s", wfpb_errmsg(c));
	CHECK(wfpb_connect(c, acc.records, NULL, 0, &origin_addr, NULL, 2000, &up, NULL) == WFPB_E_STATUS,
	    "records applied twice");
	CHECK(wfpb_server_status(c, &st1) == 0, "status");
	CHECK(st1.stash_entries == st0.stash_entries, "stash entries %u -> %u", st0.stash_entries,
	    st1.stash_entries);
	close(ofd);
	close(fd);
	close(origin);
	wfpb_accepted_free(&acc);
	wfpb_close(c);
	return 0;
}

static int
case_connect_errors(void)
{
	struct wfpb_client	*c = open_client();
	struct wfpb_addr	closed, outside = itest_loopback(80);
	wfpb_socket_t		s = WFPB_SOCKET_NONE;
	static const uint8_t	garbage[] = "not a record";
	uint8_t			good[WFPB_SIM_HDR_LEN + WFPB_SIM_HOP_LEN] = "WFPS\x01\x00\x00\x01";
	uint16_t		port;
	int			l;

	CHECK(c != NULL, "open");
	good[WFPB_SIM_HDR_LEN] = WFPB_AF_INET;
	/* A port nobody listens on: bind and close a listener to find one. */
	CHECK((l = tcp_listen(&port)) >= 0, "listen");
	close(l);
	closed = itest_loopback(port);
	CHECK(wfpb_connect(c, NULL, garbage, sizeof(garbage), &closed, NULL, 1000, &s, NULL) == WFPB_E_STATUS,
	    "garbage records accepted");
	CHECK(strstr(wfpb_errmsg(c), "EINVAL") != NULL, "message: %s", wfpb_errmsg(c));
	CHECK(s == WFPB_SOCKET_NONE, "socket handed over on failure");
	CHECK(wfpb_connect(c, NULL, good, sizeof(good), &closed, NULL, 1000, &s, NULL) == WFPB_E_STATUS,
	    "connect to a closed port succeeded");
	CHECK(strstr(wfpb_errmsg(c), "ECONNREFUSED") != NULL, "message: %s", wfpb_errmsg(c));
	outside.addr[0] = 10;
	CHECK(wfpb_connect(c, NULL, good, sizeof(good), &outside, NULL, 1000, &s, NULL) == WFPB_E_STATUS,
	    "connect outside the ranges succeeded");
	CHECK(strstr(wfpb_errmsg(c), "DENIED: connect: 10.0.0.1:80 is outside") != NULL, "message: %s",
	    wfpb_errmsg(c));
	CHECK(wfpb_ping(c, NULL, 0, NULL) == 0, "session died after errors");
	wfpb_close(c);
	return 0;
}

static int
case_listen_policy_and_release(void)
{
	struct wfpb_client	*c = open_client();
	struct wfpb_accepted	acc = WFPB_ACCEPTED_INIT;
	struct wfpb_addr	outside = itest_loopback(0), any = itest_loopback(0), bound;
	uint64_t		lid;

	CHECK(c != NULL, "open");
	outside.addr[3] = 2;	/* 127.0.0.2 is outside 127.0.0.1/32 */
	CHECK(wfpb_listen(c, &outside, 0, &lid, NULL) == WFPB_E_STATUS, "listen outside the ranges");
	CHECK(strstr(wfpb_errmsg(c), "DENIED") != NULL, "message: %s", wfpb_errmsg(c));
	CHECK(wfpb_listen(c, &any, 0, &lid, &bound) == 0, "listen: %s", wfpb_errmsg(c));
	CHECK(wfpb_release_listener(c, lid) == 0, "release: %s", wfpb_errmsg(c));
	CHECK(wfpb_accept(c, lid, 200, 0, &acc) == WFPB_E_STATUS, "accept on a released listener");
	CHECK(strstr(wfpb_errmsg(c), "NOT_FOUND") != NULL, "message: %s", wfpb_errmsg(c));
	/* The port is really closed. */
	CHECK(tcp_connect(bound.port, NULL) < 0, "released listener still accepts");
	wfpb_close(c);
	return 0;
}

static int
case_accept_timeout(void)
{
	struct wfpb_client	*c = open_client();
	struct wfpb_accepted	acc = WFPB_ACCEPTED_INIT;
	struct wfpb_addr	any = itest_loopback(0);
	uint64_t		lid, t0, dt;

	CHECK(c != NULL, "open");
	CHECK(wfpb_listen(c, &any, 0, &lid, NULL) == 0, "listen");
	t0 = wfpb_monotonic_us();
	CHECK(wfpb_accept(c, lid, 300, 0, &acc) == WFPB_E_STATUS, "accept returned without a connection");
	dt = (wfpb_monotonic_us() - t0) / 1000;
	CHECK(strstr(wfpb_errmsg(c), "TIMEOUT") != NULL, "message: %s", wfpb_errmsg(c));
	CHECK(dt >= 250 && dt < 2000, "timed out after %llu ms", (unsigned long long)dt);
	CHECK(wfpb_ping(c, NULL, 0, NULL) == 0, "session after timeout");
	wfpb_close(c);
	return 0;
}

static int
case_secondary_mode(void)
{
	struct wfpb_client	*c = open_client();
	struct wfpb_records	rec = WFPB_RECORDS_INIT;
	uint16_t		port;
	int			l, cfd, afd, fresh;

	CHECK(c != NULL, "open");
	CHECK((l = tcp_listen(&port)) >= 0, "listen");
	CHECK((cfd = tcp_connect(port, NULL)) >= 0, "connect");
	CHECK((afd = accept(l, NULL, NULL)) >= 0, "accept");
	/* The client owns afd; the broker queries it through a descriptor passed with the request. */
	CHECK(wfpb_query_records(c, afd, 0, &rec) == 0, "query_records: %s", wfpb_errmsg(c));
	CHECK(rec.has_handle && rec.blob_len == WFPB_SIM_HDR_LEN + WFPB_SIM_HOP_LEN, "records");
	CHECK(rec.context_len == 2 * WFPB_SIM_HOP_LEN, "context");
	/* The client keeps its own socket. */
	CHECK(roundtrip(cfd, afd, "still mine") == 0, "client socket after query");
	fresh = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(wfpb_apply_records(c, fresh, rec.handle, NULL, 0) == 0, "apply (handle): %s", wfpb_errmsg(c));
	CHECK(wfpb_apply_records(c, fresh, NULL, rec.blob, rec.blob_len) == 0, "apply (blob): %s", wfpb_errmsg(c));
	CHECK(wfpb_apply_records(c, fresh, NULL, (const uint8_t *)"junk", 4) == WFPB_E_STATUS, "junk applied");
	CHECK(strstr(wfpb_errmsg(c), "EINVAL") != NULL, "message: %s", wfpb_errmsg(c));
	/* Records go on before bind and connect: a connected socket is refused without the ioctl. */
	CHECK(wfpb_apply_records(c, cfd, rec.handle, NULL, 0) == WFPB_E_STATUS &&
	    wfpb_status(c) == WFPBROKER_STATUS_EINVAL, "records applied to a connected socket");
	CHECK(strstr(wfpb_errmsg(c), "before bind and connect") != NULL, "message: %s", wfpb_errmsg(c));
	{
		int			bound = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in	sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };

		CHECK(bound >= 0 && bind(bound, (struct sockaddr *)&sin, sizeof(sin)) == 0, "bind");
		CHECK(wfpb_apply_records(c, bound, rec.handle, NULL, 0) == WFPB_E_STATUS &&
		    wfpb_status(c) == WFPBROKER_STATUS_EINVAL, "records applied to a bound socket");
		close(bound);
	}
	{
		/* Only a TCP socket of AF_INET/AF_INET6: a UDP one of the client's own is refused too. */
		int udp = socket(AF_INET, SOCK_DGRAM, 0);

		CHECK(wfpb_apply_records(c, udp, rec.handle, NULL, 0) == WFPB_E_STATUS &&
		    wfpb_status(c) == WFPBROKER_STATUS_EINVAL, "records applied to a UDP socket");
		CHECK(strstr(wfpb_errmsg(c), "not a TCP socket") != NULL, "message: %s", wfpb_errmsg(c));
		close(udp);
	}
	wfpb_records_free(&rec);
	{
		/* Kept for one use: a refused ApplyRecords leaves them, the one that sets them releases them. */
		int	again = socket(AF_INET, SOCK_STREAM, 0);
		uint8_t	*blob = NULL;
		size_t	len;

		rec = (struct wfpb_records)WFPB_RECORDS_INIT;
		CHECK(wfpb_query_records(c, afd, WFPB_LIFETIME_ONCE, &rec) == 0 && rec.has_handle, "query_records: %s",
		    wfpb_errmsg(c));
		CHECK(wfpb_apply_records(c, cfd, rec.handle, NULL, 0) == WFPB_E_STATUS, "applied to a connected socket");
		CHECK(wfpb_fetch(c, rec.handle, &blob, &len) == 0, "a refused apply used them up: %s", wfpb_errmsg(c));
		wfpb_free(blob);
		CHECK(wfpb_apply_records(c, again, rec.handle, NULL, 0) == 0, "apply (once): %s", wfpb_errmsg(c));
		CHECK(wfpb_fetch(c, rec.handle, &blob, &len) == WFPB_E_STATUS &&
		    wfpb_status(c) == WFPBROKER_STATUS_NOT_FOUND, "records still there after the apply that used them");
		close(again);
		wfpb_records_free(&rec);
	}
	close(fresh);
	close(afd);
	close(cfd);
	close(l);
	wfpb_close(c);
	return 0;
}

/* A client killed while its Accept is pending: the broker releases its listener. */
static int
case_client_killed_mid_accept(void)
{
	struct wfpb_client	*admin = open_client();
	struct wfpb_status_info	st = WFPB_STATUS_INFO_INIT;
	uint32_t		before, stash_before;
	pid_t			pid;
	int			i, pfd[2];

	CHECK(admin != NULL, "open");
	CHECK(wfpb_server_status(admin, &st) == 0, "status");
	before = st.listeners;
	stash_before = st.stash_entries;
	CHECK(pipe(pfd) == 0, "pipe");
	if ((pid = fork()) == 0) {
		struct wfpb_client	*c = open_client();
		struct wfpb_accepted	acc = WFPB_ACCEPTED_INIT;
		struct wfpb_addr	any = itest_loopback(0);
		uint64_t		lid;

		uint8_t			h[WFPB_HANDLE_LEN];

		if (c == NULL || wfpb_listen(c, &any, 0, &lid, NULL) != 0 ||
		    wfpb_stash(c, (const uint8_t *)"mine", 4, 0, h) != 0)
			_exit(1);
		(void)!write(pfd[1], "L", 1);
		if (wfpb_accept(c, lid, 60000, 0, &acc) == 0)
			wfpb_accepted_free(&acc);
		_exit(0);
	}
	close(pfd[1]);
	{
		char ch;

		CHECK(read(pfd[0], &ch, 1) == 1, "child did not listen");
	}
	close(pfd[0]);
	usleep(100000);
	CHECK(wfpb_server_status(admin, &st) == 0 && st.listeners == before + 1, "listener not counted");
	CHECK(st.stash_entries == stash_before + 1, "stash entry not counted");
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	for (i = 0; i < 50; i++) {
		CHECK(wfpb_server_status(admin, &st) == 0, "status");
		if (st.listeners == before && st.stash_entries == stash_before)
			break;
		usleep(20000);
	}
	CHECK(st.listeners == before, "listener of the killed client still held (%u)", st.listeners);
	CHECK(st.stash_entries == stash_before, "stash entry of the killed client still held");
	wfpb_close(admin);
	return 0;
}

struct tcase {
	const char	*name;
	int		(*fn)(void);
};

/*
 * Prepare: the supported path for a client that connects itself. The broker
 * makes an unconnected TCP socket, applies the records it queried (the
 * accepted connection's), and hands it over; the client connects it.
 */
static int
case_prepare(void)
{
	struct wfpb_client	*c = open_client();
	struct wfpb_accepted	acc = WFPB_ACCEPTED_INIT;
	struct wfpb_status_info	st0 = WFPB_STATUS_INFO_INIT, st1 = WFPB_STATUS_INFO_INIT;
	struct wfpb_addr	bound, any = itest_loopback(0);
	struct sockaddr_in	to = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	wfpb_socket_t		s;
	uint64_t		lid;
	uint16_t		oport;
	int			origin, fd, ofd, type = 0;
	socklen_t		len = sizeof(type);

	CHECK(c != NULL, "open");
	CHECK((origin = tcp_listen(&oport)) >= 0, "origin");
	CHECK(wfpb_server_status(c, &st0) == 0, "status: %s", wfpb_errmsg(c));
	CHECK(wfpb_listen(c, &any, 0, &lid, &bound) == 0, "listen: %s", wfpb_errmsg(c));
	CHECK((fd = tcp_connect(bound.port, NULL)) >= 0, "tcp connect");
	CHECK(wfpb_accept(c, lid, 2000, 0, &acc) == 0, "accept: %s", wfpb_errmsg(c));
	/* The broker's reading of where the connection was going (sim: where it arrived), parsed for the proxy. */
	CHECK(acc.has_original_dst && acc.original_dst.port == bound.port, "accept: no original destination");
	CHECK(wfpb_prepare(c, acc.records, NULL, 0, WFPB_AF_INET, &s) == 0, "prepare: %s", wfpb_errmsg(c));
	CHECK(getsockopt((int)s, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_STREAM, "not a TCP socket");
	len = sizeof(to);
	CHECK(getpeername((int)s, (struct sockaddr *)&to, &len) != 0 && errno == ENOTCONN, "handed over connected");
	/*
	 * The attack: listen as the broker on a port of the client's choosing. The socket comes bound
	 * (an ephemeral port the kernel chose): it cannot be bound again, so a listener made of it is
	 * on that port only, never on one a callout redirects to or a service owns.
	 */
	CHECK(getsockname((int)s, (struct sockaddr *)&to, &len) == 0 && to.sin_port != 0,
	    "the prepared socket came unbound");
	to.sin_port = htons(oport);
	CHECK(bind((int)s, (struct sockaddr *)&to, sizeof(to)) != 0 && errno == EINVAL,
	    "a prepared socket could be bound where its client chose");
	CHECK(wfpb_server_status(c, &st1) == 0, "status");
	CHECK(st1.records_applied == st0.records_applied + 1, "records_applied %llu -> %llu",
	    (unsigned long long)st0.records_applied, (unsigned long long)st1.records_applied);
	/* The client connects it itself. */
	to.sin_family = AF_INET;
	to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	to.sin_port = htons(oport);
	CHECK(connect((int)s, (struct sockaddr *)&to, sizeof(to)) == 0, "connect: %s", strerror(errno));
	CHECK((ofd = accept(origin, NULL, NULL)) >= 0, "origin accept");
	CHECK(roundtrip((int)s, ofd, "a prepared socket, connected by its owner") == 0, "data path");
	close((int)s);
	/* Provenance holds as for Connect: a blob of the client's own needs apply_foreign (root has it here). */
	CHECK(wfpb_prepare(c, NULL, NULL, 0, 99, &s) == WFPB_E_STATUS &&
	    wfpb_status(c) == WFPBROKER_STATUS_BAD_REQUEST, "a family that is not one: %s", wfpb_errmsg(c));
	close(ofd);
	close(fd);
	close(origin);
	wfpb_accepted_free(&acc);
	wfpb_close(c);
	return 0;
}

/*
 * Protocol version 2 through the real server: three Accepts wait on one
 * listener while a Stash and a Fetch are answered; three connections then
 * complete them, oldest first, each with its own accepted socket, which
 * works. With answers in order the Stash would wait for the Accepts' 5 s.
 */
static int
case_accepts_wait_while_others_are_answered(void)
{
	struct wfpb_client	*c = open_client();
	struct wfpb_accepted	acc[3] = { WFPB_ACCEPTED_INIT, WFPB_ACCEPTED_INIT, WFPB_ACCEPTED_INIT };
	struct wfpb_completion	done = WFPB_COMPLETION_INIT;
	struct wfpb_addr	bound, any = itest_loopback(0);
	struct pollfd		pfd;
	uint64_t		lid, ids[3], t0;
	uint8_t			handle[WFPB_HANDLE_LEN], *blob;
	uint16_t		cport[3];
	size_t			len;
	int			fd[3], i, n;

	CHECK(c != NULL, "open");
	CHECK(wfpb_listen(c, &any, 0, &lid, &bound) == 0, "listen: %s", wfpb_errmsg(c));
	for (i = 0; i < 3; i++)
		CHECK(wfpb_submit_accept(c, lid, 5000, 0, &acc[i], &acc[i], &ids[i]) == 0, "submit accept: %s",
		    wfpb_errmsg(c));
	t0 = wfpb_monotonic_us();
	CHECK(wfpb_stash(c, (const uint8_t *)"meanwhile", 9, 0, handle) == 0, "stash: %s", wfpb_errmsg(c));
	CHECK(wfpb_fetch(c, handle, &blob, &len) == 0 && len == 9, "fetch: %s", wfpb_errmsg(c));
	wfpb_free(blob);
	CHECK(wfpb_monotonic_us() - t0 < 2000000, "the Stash and Fetch waited %llu us behind the Accepts",
	    (unsigned long long)(wfpb_monotonic_us() - t0));
	CHECK(wfpb_completions_queued(c) == 0 && wfpb_in_flight(c) == 3, "the Accepts did not wait");
	for (i = 0; i < 3; i++) {
		CHECK((fd[i] = tcp_connect(bound.port, &cport[i])) >= 0, "tcp connect");
		pfd.fd = (int)wfpb_wait_handle(c);
		pfd.events = POLLIN;
		n = 0;
		while (n == 0 && poll(&pfd, 1, 5000) == 1)
			CHECK((n = wfpb_complete(c, &done, 1, 0)) >= 0, "complete: %s", wfpb_errmsg(c));
		CHECK(n == 1, "no completion for connection %d", i);
		CHECK(done.rc == 0, "accept %d: %s", i, done.message);
		CHECK(done.request_id == ids[i] && done.user == &acc[i], "connection %d completed request %llu", i,
		    (unsigned long long)done.request_id);
		CHECK(acc[i].peer.port == cport[i], "accept %d: peer port %u, ours %u", i, acc[i].peer.port, cport[i]);
		CHECK(roundtrip(fd[i], (int)acc[i].sock, "through an accept that waited") == 0, "data path %d", i);
	}
	for (i = 0; i < 3; i++) {
		close(fd[i]);
		wfpb_accepted_free(&acc[i]);
	}
	wfpb_close(c);
	return 0;
}

/* struct wfpb_completion as the first layout had it: an array of these must still be filled right. */
struct completion_v0 {
	size_t		size;
	uint64_t	request_id;
	void		*user;
	int		rc;
	int		status;
	char		message[256];
};

/*
 * The asynchronous API a proxy lives in: every step submitted (Listen, an Accept that waits until
 * cancelled, the Cancel), completions that name their operation, the session's limit asked once;
 * and an array of completions of the first layout still filled at its own stride.
 */
static int
case_async_cancel_and_ops(void)
{
	struct wfpb_client	*c = open_client();
	struct wfpb_accepted	acc = WFPB_ACCEPTED_INIT;
	struct wfpb_completion	done[2] = { WFPB_COMPLETION_INIT, WFPB_COMPLETION_INIT };
	struct completion_v0	old[3];
	struct wfpb_addr	bound, any = itest_loopback(0);
	struct pollfd		pfd;
	uint64_t		lid = 0, lid_req, acc_req, cancel_req, rel_req;
	int			n, got = 0, i, limit;

	CHECK(c != NULL, "open");
	CHECK((limit = wfpb_max_inflight(c)) > 1, "max_inflight: %d", limit);
	CHECK(wfpb_max_inflight(c) == limit, "max_inflight changed without asking");
	CHECK(wfpb_submit_listen(c, &any, 0, &lid, &bound, NULL, &lid_req) == 0, "submit listen: %s", wfpb_errmsg(c));
	pfd.fd = (int)wfpb_wait_handle(c);
	pfd.events = POLLIN;
	while (got == 0 && poll(&pfd, 1, 5000) == 1)
		CHECK((got = wfpb_complete(c, done, 1, 0)) >= 0, "complete: %s", wfpb_errmsg(c));
	CHECK(got == 1 && done[0].rc == 0 && done[0].op == WFPB_OP_LISTEN && lid != 0, "listen completed: %s",
	    done[0].message);
	CHECK(wfpb_submit_accept(c, lid, WFPB_WAIT_FOREVER, 0, &acc, &acc, &acc_req) == 0, "submit accept: %s",
	    wfpb_errmsg(c));
	CHECK(wfpb_submit_cancel(c, acc_req, NULL, &cancel_req) == 0, "submit cancel: %s", wfpb_errmsg(c));
	for (got = 0; got < 2 && poll(&pfd, 1, 5000) == 1;) {
		done[0] = (struct wfpb_completion)WFPB_COMPLETION_INIT;
		done[1] = (struct wfpb_completion)WFPB_COMPLETION_INIT;
		CHECK((n = wfpb_complete(c, done, 2, 0)) >= 0, "complete: %s", wfpb_errmsg(c));
		for (i = 0; i < n; i++, got++) {
			if (done[i].request_id == acc_req)
				CHECK(done[i].rc == WFPB_E_STATUS && done[i].status == WFPBROKER_STATUS_CANCELLED &&
				    done[i].op == WFPB_OP_ACCEPT && done[i].user == &acc, "the Accept: %s", done[i].message);
			else
				CHECK(done[i].request_id == cancel_req && done[i].rc == 0 && done[i].op == WFPB_OP_CANCEL,
				    "the Cancel: %s", done[i].message);
		}
	}
	CHECK(got == 2 && wfpb_in_flight(c) == 0, "the Accept and the Cancel did not both complete");
	/* The first layout's array: its stride, its fields, and nothing written past them. */
	memset(old, 0x5a, sizeof(old));
	old[0].size = old[1].size = sizeof(old[0]);
	CHECK(wfpb_submit_release_listener(c, lid, &old, &rel_req) == 0, "submit release: %s", wfpb_errmsg(c));
	for (got = 0; got == 0 && poll(&pfd, 1, 5000) == 1;)
		CHECK((got = wfpb_complete(c, (struct wfpb_completion *)(void *)old, 2, 0)) >= 0, "complete: %s",
		    wfpb_errmsg(c));
	CHECK(got == 1 && old[0].request_id == rel_req && old[0].rc == 0 && old[0].user == &old,
	    "the release, in a first-layout array");
	CHECK(old[1].size == sizeof(old[1]) && old[2].rc == 0x5a5a5a5a, "a first-layout array was written past");
	wfpb_accepted_free(&acc);
	wfpb_close(c);
	return 0;
}

/*
 * A submit never waits for the broker to take its request: against a broker that stops reading
 * (its answers to this client pile up unread, so it stops reading the client's requests), each
 * submit returns at once, the library says it has bytes to write, and every request completes
 * once the client reads and writes as the library asks.
 */
/* POSIX: the socket readable, or writable too while bytes are queued. */
static void
wait_readable_or_writable(struct wfpb_client *c)
{
	struct pollfd pfd = { .fd = (int)wfpb_wait_handle(c) };

	pfd.events = (short)(POLLIN | (wfpb_wants_write(c) ? POLLOUT : 0));
	(void)poll(&pfd, 1, 1000);
}

static int
case_submits_never_wait(void)
{
	struct wfpb_client	*c = open_client();
	uint64_t		slowest;
	unsigned		submitted;

	CHECK(c != NULL, "open");
	CHECK(itest_fill_with_pings(c, &submitted, &slowest) == 0, "filling the socket");
	CHECK(slowest < 200000, "a submit waited %llu us for the broker", (unsigned long long)slowest);
	CHECK(itest_collect_pings(c, submitted, wait_readable_or_writable) == 0, "collecting");
	wfpb_close(c);
	return 0;
}

/*
 * A UDP listener where the broker reads the flows (sim, netfilter): nothing is handed over with
 * it, and a first datagram a proxy brings (wfpb_flow_first, Windows' form) is refused
 * EOPNOTSUPP with the reason, the session serving on.
 */
static int
case_udp_listener_held_only_on_windows(void)
{
	struct wfpb_client		*c = open_client();
	struct wfpb_udp_listener	ul = WFPB_UDP_LISTENER_INIT;
	struct wfpb_flow_first		first = WFPB_FLOW_FIRST_INIT;
	struct wfpb_flow		fl = WFPB_FLOW_INIT;
	struct wfpb_addr		any = itest_loopback(0);

	CHECK(c != NULL, "open");
	CHECK(wfpb_listen_udp_held(c, &any, &ul) == 0, "udp listen: %s", wfpb_errmsg(c));
	CHECK(ul.id != 0 && ul.bound.port != 0 && ul.held == WFPB_SOCKET_NONE, "listener %llu port %u held %d",
	    (unsigned long long)ul.id, ul.bound.port, (int)ul.held);
	first.client = itest_loopback(5555);
	first.payload = (const uint8_t *)"query";
	first.payload_len = 5;
	first.records = (const uint8_t *)"records";
	first.records_len = 7;
	CHECK(wfpb_flow_first(c, ul.id, &first, NULL, 0, &fl) == WFPB_E_STATUS &&
	    wfpb_status(c) == WFPBROKER_STATUS_EOPNOTSUPP && strstr(wfpb_errmsg(c), "reads a flow's first datagram") != NULL,
	    "flow_first where the broker reads flows: %s", wfpb_errmsg(c));
	CHECK(fl.upstream == WFPB_SOCKET_NONE && fl.reply == WFPB_SOCKET_NONE, "a socket handed over on a refusal");
	CHECK(wfpb_release_listener(c, ul.id) == 0, "release: %s", wfpb_errmsg(c));
	wfpb_udp_listener_close(&ul);
	CHECK(wfpb_ping(c, NULL, 0, NULL) == 0, "the session after the refusal");
	wfpb_close(c);
	return 0;
}

static const struct tcase cases[] = {
	{ "prepare_hands_over_an_unconnected_socket_with_records", case_prepare },
	{ "listen_accept_hands_over_socket_records_context", case_listen_accept_records },
	{ "connect_applies_records_and_hands_over", case_connect_with_records },
	{ "connect_errors_are_statuses", case_connect_errors },
	{ "records_used_once_go_with_the_connect_that_applies_them", case_records_used_once },
	{ "listen_ranges_and_release", case_listen_policy_and_release },
	{ "accept_times_out_and_session_lives", case_accept_timeout },
	{ "secondary_mode_query_and_apply", case_secondary_mode },
	{ "client_killed_mid_accept_releases_listener_and_stash", case_client_killed_mid_accept },
	{ "accepts_wait_while_others_are_answered", case_accepts_wait_while_others_are_answered },
	{ "async_listen_accept_forever_cancel_and_ops", case_async_cancel_and_ops },
	{ "submits_never_wait_for_the_broker", case_submits_never_wait },
	{ "udp_listener_held_only_on_windows", case_udp_listener_held_only_on_windows },
};

int
main(int argc, char **argv)
{
	struct itest_usage	base;
	struct wfpb_client	*admin;
	size_t			i;

	if (argc != 3) {
		fprintf(stderr, "usage: handover-test ENDPOINT SERVER_PUB\n");
		return 2;
	}
	endpoint = argv[1];
	server_pub = argv[2];
	setvbuf(stdout, NULL, _IONBF, 0);
	signal(SIGPIPE, SIG_IGN);
	/* A session that outlives every case and reads the broker's resource figures after each. */
	if ((admin = open_client()) == NULL || itest_baseline(admin, &base) != 0) {
		printf("FAIL the broker's resource baseline\n");
		return 1;
	}
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = cases[i].fn();

		if (rc == 0)
			rc = itest_back_to_baseline(admin, &base);

		printf("%s %s\n", rc == 0 ? "ok  " : "FAIL", cases[i].name);
		rc == 0 ? passed++ : failed++;
	}
	wfpb_close(admin);
	printf("%d passed, %d failed\n", passed, failed);
	return failed == 0 ? 0 : 1;
}
