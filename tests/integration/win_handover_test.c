/* SPDX-License-Identifier: Apache-2.0 */
/*
 * win-handover-test ENDPOINT SERVER_PUB: the socket operations through
 * wfpbrokerd.exe over its named pipe, with real Winsock sockets handed over
 * by WSADuplicateSocketW (sim backend): Listen/Accept with records and
 * context, Connect with records, errors as statuses, Accept timeout, and
 * QueryRecords/ApplyRecords on the client's own socket taken by handle.
 * The caller's principal needs listen, accept, connect, fetch, query, apply
 * and admin, with ranges 127.0.0.1/32:*.
 *
 * win-handover-test ENDPOINT SERVER_PUB --wfp: against a broker with
 * backend = wfp under Wine, whose WSAIoctl refuses the redirect codes: the
 * refusal reaches the client as EOPNOTSUPP with a clear message, and the
 * broker keeps serving.
 */
#include <winsock2.h>
#include <ws2tcpip.h>
#include <windows.h>

#include <stdio.h>
#include <string.h>

#include <uv.h>

#include "itest.h"
#include "wfpb.h"

static const char	*endpoint, *server_pub;
static int		passed, failed;

static struct wfpb_client *
open_client(void)
{
	return itest_open(endpoint, server_pub, NULL);
}

static SOCKET
tcp_connect(uint16_t port)
{
	struct sockaddr_in	sin = { .sin_family = AF_INET, .sin_port = htons(port) };
	SOCKET			s = socket(AF_INET, SOCK_STREAM, 0);

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (s == INVALID_SOCKET || connect(s, (struct sockaddr *)&sin, sizeof(sin)) != 0)
		return INVALID_SOCKET;
	return s;
}

static SOCKET
tcp_listen(uint16_t *port)
{
	struct sockaddr_in	sin = { .sin_family = AF_INET };
	int			len = sizeof(sin);
	SOCKET			s = socket(AF_INET, SOCK_STREAM, 0);

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (s == INVALID_SOCKET || bind(s, (struct sockaddr *)&sin, sizeof(sin)) != 0 || listen(s, 8) != 0 ||
	    getsockname(s, (struct sockaddr *)&sin, &len) != 0)
		return INVALID_SOCKET;
	*port = ntohs(sin.sin_port);
	return s;
}

static int
roundtrip(SOCKET a, SOCKET b, const char *text)
{
	char	buf[128];
	int	n, want = (int)strlen(text);

	if (send(a, text, want, 0) != want)
		return -1;
	n = recv(b, buf, sizeof(buf), 0);
	return n == want && memcmp(buf, text, (size_t)n) == 0 ? 0 : -1;
}

/* Prepare: a socket with the accepted connection's records, duplicated unconnected, connected by us. */
static int
case_prepare(void)
{
	struct wfpb_client	*c = open_client();
	struct wfpb_accepted	acc = WFPB_ACCEPTED_INIT;
	struct wfpb_addr	any = itest_loopback(0), bound;
	struct sockaddr_in	to = { .sin_family = AF_INET };
	wfpb_socket_t		s;
	uint64_t		lid;
	uint16_t		oport;
	SOCKET			cl, origin, ofd;
	int			len = sizeof(to);

	CHECK(c != NULL, "open");
	CHECK(wfpb_listen(c, &any, 0, &lid, &bound) == 0, "listen: %s", wfpb_errmsg(c));
	CHECK((cl = tcp_connect(bound.port)) != INVALID_SOCKET, "tcp connect");
	CHECK(wfpb_accept(c, lid, 5000, 0, &acc) == 0 && acc.has_records, "accept: %s", wfpb_errmsg(c));
	CHECK(wfpb_prepare(c, acc.records, NULL, 0, WFPB_AF_INET, &s) == 0, "prepare: %s", wfpb_errmsg(c));
	CHECK(getpeername((SOCKET)s, (struct sockaddr *)&to, &len) != 0 && WSAGetLastError() == WSAENOTCONN,
	    "the prepared socket came connected");
	CHECK((origin = tcp_listen(&oport)) != INVALID_SOCKET, "origin");
	/*
	 * The attack: a listener that WFP takes for wfpbrokerd.exe's, on a port of the client's
	 * choosing. The socket comes bound (an ephemeral port), so it cannot be bound again.
	 */
	len = sizeof(to);
	CHECK(getsockname((SOCKET)s, (struct sockaddr *)&to, &len) == 0 && to.sin_port != 0,
	    "the prepared socket came unbound");
	to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	to.sin_port = htons(oport);
	CHECK(bind((SOCKET)s, (struct sockaddr *)&to, sizeof(to)) != 0 && WSAGetLastError() == WSAEINVAL,
	    "a prepared socket could be bound where its client chose");
	to.sin_family = AF_INET;
	to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	to.sin_port = htons(oport);
	CHECK(connect((SOCKET)s, (struct sockaddr *)&to, sizeof(to)) == 0, "connect: %d", WSAGetLastError());
	CHECK((ofd = accept(origin, NULL, NULL)) != INVALID_SOCKET, "origin accept");
	CHECK(roundtrip((SOCKET)s, ofd, "a prepared socket, connected by its owner") == 0, "data path");
	closesocket((SOCKET)s);
	closesocket(ofd);
	closesocket(origin);
	closesocket(cl);
	wfpb_accepted_free(&acc);
	wfpb_close(c);
	return 0;
}

static int
case_accept_and_connect(void)
{
	struct wfpb_client	*c = open_client();
	struct wfpb_accepted	acc = WFPB_ACCEPTED_INIT;
	struct wfpb_addr	any = itest_loopback(0), bound, origin_addr;
	wfpb_socket_t		up;
	uint64_t		lid;
	uint8_t			*blob;
	size_t			len;
	uint16_t		oport;
	SOCKET			cl, origin, ofd;

	CHECK(c != NULL, "open");
	CHECK(wfpb_listen(c, &any, 0, &lid, &bound) == 0, "listen: %s", wfpb_errmsg(c));
	CHECK((cl = tcp_connect(bound.port)) != INVALID_SOCKET, "tcp connect");
	CHECK(wfpb_accept(c, lid, 5000, 0, &acc) == 0, "accept: %s", wfpb_errmsg(c));
	CHECK(acc.has_records && acc.context_len > 0, "records and context");
	CHECK(roundtrip(cl, (SOCKET)acc.sock, "through a duplicated socket") == 0, "data path");
	CHECK(roundtrip((SOCKET)acc.sock, cl, "and back") == 0, "data path back");
	CHECK(wfpb_fetch(c, acc.records, &blob, &len) == 0 && len > 4 && memcmp(blob, "WFPS", 4) == 0,
	    "records blob: %s", wfpb_errmsg(c));
	wfpb_free(blob);
	CHECK((origin = tcp_listen(&oport)) != INVALID_SOCKET, "origin");
	origin_addr = itest_loopback(oport);
	CHECK(wfpb_connect(c, acc.records, NULL, 0, &origin_addr, NULL, 5000, &up, NULL) == 0, "connect: %s",
	    wfpb_errmsg(c));
	CHECK((ofd = accept(origin, NULL, NULL)) != INVALID_SOCKET, "origin accept");
	CHECK(roundtrip((SOCKET)up, ofd, "upstream with records") == 0, "connected socket works");
	/*
	 * Rebuilt with the broker's own flags: a child process the application
	 * starts does not inherit it. Wine answers GetHandleInformation on a
	 * socket without filling the flags, so there the check cannot be made.
	 */
	{
		DWORD flags = 0xffffffffu;

		CHECK(GetHandleInformation((HANDLE)(uintptr_t)up, &flags), "GetHandleInformation: %lu", GetLastError());
		if (flags == 0xffffffffu)
			printf("  this platform does not report a socket's handle flags: inheritance not checked\n");
		else
			CHECK((flags & HANDLE_FLAG_INHERIT) == 0, "the handed-over socket is inheritable");
	}
	closesocket((SOCKET)up);
	closesocket(ofd);
	closesocket(origin);
	closesocket(cl);
	wfpb_accepted_free(&acc);
	wfpb_close(c);
	return 0;
}

static int
case_errors(void)
{
	struct wfpb_client	*c = open_client();
	struct wfpb_accepted	acc = WFPB_ACCEPTED_INIT;
	struct wfpb_addr	any = itest_loopback(0), outside = itest_loopback(0), closed;
	wfpb_socket_t		s = WFPB_SOCKET_NONE;
	uint64_t		lid;
	uint16_t		port;
	SOCKET			l;

	CHECK(c != NULL, "open");
	CHECK((l = tcp_listen(&port)) != INVALID_SOCKET, "listen");
	closesocket(l);
	closed = itest_loopback(port);
	CHECK(wfpb_connect(c, NULL, (const uint8_t *)"junk", 4, &closed, NULL, 2000, &s, NULL) == WFPB_E_STATUS &&
	    strstr(wfpb_errmsg(c), "EINVAL") != NULL, "garbage records: %s", wfpb_errmsg(c));
	outside.addr[3] = 2;
	CHECK(wfpb_listen(c, &outside, 0, &lid, NULL) == WFPB_E_STATUS && strstr(wfpb_errmsg(c), "DENIED") != NULL,
	    "listen outside the ranges: %s", wfpb_errmsg(c));
	CHECK(wfpb_listen(c, &any, 0, &lid, NULL) == 0, "listen: %s", wfpb_errmsg(c));
	CHECK(wfpb_accept(c, lid, 300, 0, &acc) == WFPB_E_STATUS && strstr(wfpb_errmsg(c), "TIMEOUT") != NULL,
	    "accept without a peer: %s", wfpb_errmsg(c));
	CHECK(wfpb_ping(c, NULL, 0, NULL) == 0, "session after errors");
	CHECK(s == WFPB_SOCKET_NONE, "socket handed over on failure");
	wfpb_close(c);
	return 0;
}

static int
case_wfp_refusal(void)
{
	struct wfpb_client	*c = open_client();
	struct wfpb_accepted	acc = WFPB_ACCEPTED_INIT;
	struct wfpb_addr	any = itest_loopback(0), bound, dest;
	wfpb_socket_t		s = WFPB_SOCKET_NONE;
	uint64_t		lid;
	uint16_t		port;
	SOCKET			cl, l;

	CHECK(c != NULL, "open");
	CHECK(wfpb_listen(c, &any, 0, &lid, &bound) == 0, "listen: %s", wfpb_errmsg(c));
	CHECK((cl = tcp_connect(bound.port)) != INVALID_SOCKET, "tcp connect");
	/*
	 * A connection no callout redirected (here: no WFP at all) is accepted
	 * without records or context, the ioctls' errors carried to the client.
	 */
	CHECK(wfpb_accept(c, lid, 5000, 0, &acc) == 0, "accept of a connection that was not redirected: %s",
	    wfpb_errmsg(c));
	printf("  accept: no records (error %d), no context (error %d)\n", acc.records_error, acc.context_error);
	CHECK(!acc.has_records && acc.context_len == 0, "records or context from nowhere");
	CHECK(acc.records_error == WSAEOPNOTSUPP && acc.context_error == WSAEOPNOTSUPP,
	    "the ioctls' errors are not carried: %d, %d", acc.records_error, acc.context_error);
	CHECK(acc.sock != WFPB_SOCKET_NONE, "no socket handed over");
	wfpb_accepted_free(&acc);
	closesocket(cl);
	CHECK((l = tcp_listen(&port)) != INVALID_SOCKET, "origin");
	dest = itest_loopback(port);
	CHECK(wfpb_connect(c, NULL, (const uint8_t *)"records", 7, &dest, NULL, 2000, &s, NULL) == WFPB_E_STATUS,
	    "connect succeeded without WFP");
	printf("  connect: %s\n", wfpb_errmsg(c));
	CHECK(wfpb_status(c) == WFPBROKER_STATUS_EOPNOTSUPP && strstr(wfpb_errmsg(c), "set records") != NULL,
	    "connect: %s", wfpb_errmsg(c));
	CHECK(s == WFPB_SOCKET_NONE, "a socket was handed over on failure");
	closesocket(l);
	/*
	 * UDP: the listener would go to the proxy with IP_WFP_REDIRECT_RECORDS and _CONTEXT
	 * enabled; Wine has neither option, and the Listen says so rather than hand over a
	 * listener that would never see a flow's records.
	 */
	{
		struct wfpb_udp_listener ul = WFPB_UDP_LISTENER_INIT;

		CHECK(wfpb_listen_udp_held(c, &any, &ul) == WFPB_E_STATUS, "a UDP listener without the redirect options");
		printf("  udp listen: %s\n", wfpb_errmsg(c));
		CHECK(wfpb_status(c) == WFPBROKER_STATUS_EOPNOTSUPP && strstr(wfpb_errmsg(c), "listen") != NULL,
		    "udp listen: %s", wfpb_errmsg(c));
		CHECK(ul.held == WFPB_SOCKET_NONE, "a listener was handed over on failure");
	}
	CHECK(wfpb_ping(c, NULL, 0, NULL) == 0, "the session after the refusals");
	wfpb_close(c);
	return 0;
}

/* Collects on a notice until want completions came: how many did. A notice that finds none is allowed. */
static int
collect(struct wfpb_client *c, int want, int (*wait_notice)(void *), void *arg, struct wfpb_completion *last)
{
	int got = 0, n, notices = 0;

	while (got < want && notices < 50 && wait_notice(arg) == 0) {
		notices++;
		if ((n = wfpb_complete(c, last, 1, 0)) < 0)
			return -1;
		got += n;
	}
	return got;
}

/* A packet on the port with our key within 5 s: 0, else -1. */
static int
port_notice(void *arg)
{
	HANDLE		port = arg;
	DWORD		bytes = 1;
	ULONG_PTR	key = 0;
	OVERLAPPED	*ov = (OVERLAPPED *)1;

	if (!GetQueuedCompletionStatus(port, &bytes, &key, &ov, 5000))
		return -1;
	return key == 42 && bytes == 0 && ov == NULL ? 0 : -1;
}

/* The notice socket readable within 5 s (WSAPoll): 0, else -1. */
static int
socket_notice(void *arg)
{
	WSAPOLLFD pfd = { .fd = *(SOCKET *)arg, .events = POLLRDNORM };

	return WSAPoll(&pfd, 1, 5000) == 1 && (pfd.revents & POLLRDNORM) ? 0 : -1;
}

/*
 * The loops Windows programs use, with the session's answers: a completion port (one packet
 * per notice, our key, no OVERLAPPED) and a WSAPoll set (the notice socket). Nothing comes
 * while nothing is answered; a Ping's answer, three at once, and an Accept that waited until a
 * connection came are each noticed and collected; after collecting, the socket is quiet again.
 */
static int
case_notices_for_ports_and_wsapoll(void)
{
	struct wfpb_client	*c = open_client();
	struct wfpb_completion	done = WFPB_COMPLETION_INIT;
	struct wfpb_accepted	acc = WFPB_ACCEPTED_INIT;
	struct wfpb_addr	any = itest_loopback(0), bound;
	WSAPOLLFD		pfd;
	wfpb_socket_t		ns;
	uint64_t		lid;
	HANDLE			port;
	DWORD			bytes;
	ULONG_PTR		key;
	OVERLAPPED		*ov;
	SOCKET			nsock, cl;
	int			i;

	CHECK(c != NULL, "open");
	CHECK((port = CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 0, 1)) != NULL, "completion port");
	CHECK(wfpb_notify_port(c, (intptr_t)port, 42) == 0, "notify_port: %s", wfpb_errmsg(c));
	CHECK(!GetQueuedCompletionStatus(port, &bytes, &key, &ov, 300) && GetLastError() == WAIT_TIMEOUT,
	    "a packet while nothing was answered");
	CHECK(wfpb_submit_ping(c, NULL, 0, NULL, NULL, NULL) == 0, "submit ping: %s", wfpb_errmsg(c));
	CHECK(collect(c, 1, port_notice, port, &done) == 1 && done.op == WFPB_OP_PING && done.rc == 0,
	    "the Ping's answer through the port");
	for (i = 0; i < 3; i++)
		CHECK(wfpb_submit_ping(c, NULL, 0, NULL, NULL, NULL) == 0, "submit ping: %s", wfpb_errmsg(c));
	CHECK(collect(c, 3, port_notice, port, &done) == 3, "three answers through the port, one by one");

	CHECK(wfpb_notify_socket(c, &ns) == 0, "notify_socket: %s", wfpb_errmsg(c));
	nsock = (SOCKET)ns;
	while (GetQueuedCompletionStatus(port, &bytes, &key, &ov, 0))
		;	/* packets the extra notices left: harmless, drained */
	pfd.fd = nsock;
	pfd.events = POLLRDNORM;
	CHECK(WSAPoll(&pfd, 1, 300) == 0, "the notice socket readable while nothing was answered");
	CHECK(wfpb_listen(c, &any, 0, &lid, &bound) == 0, "listen: %s", wfpb_errmsg(c));
	CHECK(wfpb_submit_accept(c, lid, WFPB_WAIT_FOREVER, 0, &acc, &acc, NULL) == 0, "submit accept: %s",
	    wfpb_errmsg(c));
	/* The Listen's own answer may have left a notice (it was read by the blocking call): collected, none. */
	Sleep(100);
	CHECK(wfpb_complete(c, &done, 1, 0) == 0, "a completion before any connection came");
	CHECK(WSAPoll(&pfd, 1, 300) == 0, "a notice before any connection came");
	CHECK((cl = tcp_connect(bound.port)) != INVALID_SOCKET, "tcp connect");
	CHECK(collect(c, 1, socket_notice, &nsock, &done) == 1 && done.op == WFPB_OP_ACCEPT && done.rc == 0,
	    "the Accept's answer through WSAPoll: %s", done.message);
	CHECK(roundtrip(cl, (SOCKET)acc.sock, "noticed") == 0, "data path of the noticed Accept");
	wfpb_accepted_free(&acc);
	closesocket(cl);
	CHECK(WSAPoll(&pfd, 1, 300) == 0, "the notice socket still readable after collecting");
	CHECK(wfpb_ping(c, NULL, 0, NULL) == 0, "a blocking call among notices: %s", wfpb_errmsg(c));
	wfpb_close(c);
	CloseHandle(port);
	return 0;
}

/* A libuv loop's state: the session, what it collected, and its guard timer. */
struct uv_case {
	struct wfpb_client	*c;
	uv_poll_t		poll;
	uv_timer_t		guard;
	int			want, got, pings, notices, timed_out;
};

static void
uv_on_notice(uv_poll_t *p, int status, int events)
{
	struct uv_case		*u = p->data;
	struct wfpb_completion	done[4] = { WFPB_COMPLETION_INIT, WFPB_COMPLETION_INIT, WFPB_COMPLETION_INIT,
				    WFPB_COMPLETION_INIT };
	int			n, i;

	if (status < 0 || !(events & UV_READABLE))
		return;
	u->notices++;
	while ((n = wfpb_complete(u->c, done, 4, 0)) > 0)
		for (i = 0; i < n; i++) {
			u->got++;
			u->pings += done[i].op == WFPB_OP_PING && done[i].rc == 0;
		}
	if (u->got >= u->want) {
		uv_poll_stop(&u->poll);
		uv_timer_stop(&u->guard);
	}
}

static void
uv_on_guard(uv_timer_t *t)
{
	struct uv_case *u = t->data;

	u->timed_out = 1;
	uv_poll_stop(&u->poll);
}

/*
 * A libuv loop, as a Windows program using libuv runs one: the notice socket in a uv_poll_t
 * (uv_poll_init_socket), three Pings submitted, each answer collected from the poll's callback
 * until all three came, a 5 s guard timer failing the case otherwise.
 */
static int
case_libuv_loop(void)
{
	struct uv_case	u = { .want = 3 };
	uv_loop_t	loop;
	wfpb_socket_t	ns;
	int		i;

	CHECK((u.c = open_client()) != NULL, "open");
	CHECK(wfpb_notify_socket(u.c, &ns) == 0, "notify_socket: %s", wfpb_errmsg(u.c));
	CHECK(uv_loop_init(&loop) == 0, "uv_loop_init");
	CHECK(uv_poll_init_socket(&loop, &u.poll, (uv_os_sock_t)ns) == 0, "uv_poll_init_socket on the notice socket");
	CHECK(uv_timer_init(&loop, &u.guard) == 0, "uv_timer_init");
	u.poll.data = u.guard.data = &u;
	CHECK(uv_poll_start(&u.poll, UV_READABLE, uv_on_notice) == 0, "uv_poll_start");
	CHECK(uv_timer_start(&u.guard, uv_on_guard, 5000, 0) == 0, "uv_timer_start");
	for (i = 0; i < u.want; i++)
		CHECK(wfpb_submit_ping(u.c, NULL, 0, NULL, NULL, NULL) == 0, "submit ping: %s", wfpb_errmsg(u.c));
	(void)uv_run(&loop, UV_RUN_DEFAULT);
	printf("  libuv: %d notices, %d completions, %d Pings answered\n", u.notices, u.got, u.pings);
	CHECK(!u.timed_out && u.pings == 3, "the loop collected %d of 3 Pings (timed out: %d)", u.pings, u.timed_out);
	uv_close((uv_handle_t *)&u.poll, NULL);
	uv_close((uv_handle_t *)&u.guard, NULL);
	(void)uv_run(&loop, UV_RUN_DEFAULT);
	CHECK(uv_loop_close(&loop) == 0, "uv_loop_close");
	wfpb_close(u.c);
	return 0;
}

/*
 * A submit never waits for the broker: Pings of 1 KiB are submitted without reading the
 * answers until the broker, its output budget full, stops reading and the pipe fills; every
 * submit returns at once (wfpb_wants_write then says bytes are queued). Collected on the wait
 * handle, which also wakes the loop when a write ends, every one is answered and nothing stays
 * queued.
 */
/* Windows: the wait handle, which also signals when a write ends. */
static void
wait_handle(struct wfpb_client *c)
{
	(void)WaitForSingleObject((HANDLE)wfpb_wait_handle(c), 1000);
}

static int
case_submits_never_wait(void)
{
	struct wfpb_client	*c = open_client();
	uint64_t		slowest;
	unsigned		submitted;

	CHECK(c != NULL, "open");
	CHECK(itest_fill_with_pings(c, &submitted, &slowest) == 0, "filling the pipe");
	printf("  %u submits before the pipe filled, the slowest %llu us\n", submitted, (unsigned long long)slowest);
	CHECK(slowest < 200000, "a submit waited %llu us for the broker", (unsigned long long)slowest);
	CHECK(itest_collect_pings(c, submitted, wait_handle) == 0, "collecting");
	CHECK(wfpb_ping(c, NULL, 0, NULL) == 0, "a blocking call after: %s", wfpb_errmsg(c));
	wfpb_close(c);
	return 0;
}

/*
 * wfpb_udp_recv on a real UDP socket (what a proxy holding its listener calls): a datagram and
 * who sent it, no control data here (nothing redirected it); one longer than the buffer is
 * WFPB_E_LIMIT and dropped, the next read as it was; none waiting on a non-blocking socket is
 * WFPB_E_AGAIN.
 */
static int
case_udp_recv(void)
{
	struct sockaddr_in	sin = { .sin_family = AF_INET }, from = { .sin_family = AF_INET };
	struct wfpb_flow_first	ff = WFPB_FLOW_FIRST_INIT;
	static uint8_t		ctl[WFPB_UDP_CONTROL_MAX];
	uint8_t			buf[64];
	int			len = sizeof(sin);
	u_long			nb = 1;
	SOCKET			rx, tx;

	sin.sin_addr.s_addr = from.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK((rx = socket(AF_INET, SOCK_DGRAM, IPPROTO_UDP)) != INVALID_SOCKET &&
	    (tx = socket(AF_INET, SOCK_DGRAM, IPPROTO_UDP)) != INVALID_SOCKET, "sockets");
	CHECK(bind(rx, (struct sockaddr *)&sin, sizeof(sin)) == 0 && getsockname(rx, (struct sockaddr *)&sin, &len) == 0 &&
	    bind(tx, (struct sockaddr *)&from, sizeof(from)) == 0, "bind");
	len = sizeof(from);
	CHECK(getsockname(tx, (struct sockaddr *)&from, &len) == 0, "getsockname");
	CHECK(sendto(tx, "hello", 5, 0, (struct sockaddr *)&sin, sizeof(sin)) == 5, "send");
	CHECK(wfpb_udp_recv((wfpb_socket_t)rx, buf, sizeof(buf), ctl, sizeof(ctl), &ff) == 0, "udp_recv");
	CHECK(ff.payload_len == 5 && memcmp(ff.payload, "hello", 5) == 0, "payload of %zu bytes", ff.payload_len);
	CHECK(ff.client.family == WFPB_AF_INET && ff.client.port == ntohs(from.sin_port), "sender port %u",
	    ff.client.port);
	CHECK(ff.records == NULL && ff.records_len == 0 && ff.context_len == 0, "control data from nowhere");
	CHECK(sendto(tx, "a datagram longer than the buffer", 33, 0, (struct sockaddr *)&sin, sizeof(sin)) == 33 &&
	    sendto(tx, "next", 4, 0, (struct sockaddr *)&sin, sizeof(sin)) == 4, "send");
	Sleep(50);
	CHECK(wfpb_udp_recv((wfpb_socket_t)rx, buf, 8, ctl, sizeof(ctl), &ff) == WFPB_E_LIMIT, "a datagram past the buffer");
	CHECK(wfpb_udp_recv((wfpb_socket_t)rx, buf, sizeof(buf), ctl, sizeof(ctl), &ff) == 0 && ff.payload_len == 4 &&
	    memcmp(ff.payload, "next", 4) == 0, "the datagram after it");
	CHECK(ioctlsocket(rx, FIONBIO, &nb) == 0, "non-blocking");
	CHECK(wfpb_udp_recv((wfpb_socket_t)rx, buf, sizeof(buf), ctl, sizeof(ctl), &ff) == WFPB_E_AGAIN, "none waiting");
	closesocket(rx);
	closesocket(tx);
	return 0;
}

/* Wine exports wine_get_version from ntdll; Windows does not. */
static int
under_wine(void)
{
	HMODULE ntdll = GetModuleHandleW(L"ntdll.dll");

	return ntdll != NULL && GetProcAddress(ntdll, "wine_get_version") != NULL;
}

/*
 * Secondary mode by handle: the broker takes the client's own socket with
 * DuplicateHandle, queries or applies records on it, and closes only its copy.
 * Wine's Winsock refuses every duplicated socket handle (WSAENOTSOCK), so
 * there the refusal is what is checked: a clear EINVAL, the client's socket
 * untouched, the session alive. The success path needs real Windows.
 */
static int
case_secondary_by_handle(void)
{
	struct wfpb_client	*c = open_client();
	struct wfpb_status_info	st0 = WFPB_STATUS_INFO_INIT, st1 = WFPB_STATUS_INFO_INIT;
	struct wfpb_records	rec = WFPB_RECORDS_INIT;
	struct sockaddr_in	sin;
	int			slen = sizeof(sin);
	uint16_t		port;
	SOCKET			l, cl, a, fresh;
	HANDLE			ev;
	char			buf[8];

	CHECK(c != NULL, "open");
	CHECK((l = tcp_listen(&port)) != INVALID_SOCKET, "listen");
	CHECK((cl = tcp_connect(port)) != INVALID_SOCKET, "connect");
	CHECK((a = accept(l, NULL, NULL)) != INVALID_SOCKET, "accept");
	CHECK(getsockname(cl, (struct sockaddr *)&sin, &slen) == 0, "getsockname");
	if (under_wine()) {
		CHECK(wfpb_query_records(c, (wfpb_socket_t)a, 0, &rec) == WFPB_E_STATUS &&
		    wfpb_status(c) == WFPBROKER_STATUS_EINVAL && strstr(wfpb_errmsg(c), "not a stream socket") != NULL,
		    "query_records under Wine: %s", wfpb_errmsg(c));
		printf("  Wine refuses the duplicated socket: %s\n", wfpb_errmsg(c));
	} else {
		CHECK(wfpb_query_records(c, (wfpb_socket_t)a, 0, &rec) == 0, "query_records: %s", wfpb_errmsg(c));
		/* sim records name the local address the connection arrived on; the context its peer, then that. */
		CHECK(rec.has_handle && rec.blob_len == 35, "records: handle %d, %zu bytes", rec.has_handle,
		    rec.blob_len);
		CHECK(((rec.blob[33] << 8) | rec.blob[34]) == port, "records name another port");
		CHECK(rec.context_len == 38 && ((rec.context[17] << 8) | rec.context[18]) == ntohs(sin.sin_port),
		    "context names the peer");
		CHECK(wfpb_server_status(c, &st0) == 0, "status: %s", wfpb_errmsg(c));
		CHECK((fresh = socket(AF_INET, SOCK_STREAM, 0)) != INVALID_SOCKET, "socket");
		CHECK(wfpb_apply_records(c, (wfpb_socket_t)fresh, rec.handle, NULL, 0) == 0, "apply_records: %s",
		    wfpb_errmsg(c));
		CHECK(wfpb_server_status(c, &st1) == 0 && st1.records_applied == st0.records_applied + 1,
		    "records_applied did not grow");
		sin.sin_family = AF_INET;
		sin.sin_port = htons(port);
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		CHECK(connect(fresh, (struct sockaddr *)&sin, sizeof(sin)) == 0, "the socket connects after apply");
		closesocket(fresh);
		wfpb_records_free(&rec);
	}
	/* Our socket is still ours and still works. */
	CHECK(send(cl, "abc", 3, 0) == 3 && recv(a, buf, sizeof(buf), 0) == 3 && memcmp(buf, "abc", 3) == 0,
	    "the socket after the broker closed its copy");
	/* A handle that is not a socket, and one that does not exist: refused, the session lives on. */
	CHECK((ev = CreateEventW(NULL, FALSE, FALSE, NULL)) != NULL, "event");
	CHECK(wfpb_query_records(c, (wfpb_socket_t)ev, 0, &rec) == WFPB_E_STATUS &&
	    wfpb_status(c) == WFPBROKER_STATUS_EINVAL && strstr(wfpb_errmsg(c), "not a stream socket") != NULL,
	    "event handle: %s", wfpb_errmsg(c));
	CloseHandle(ev);
	CHECK(wfpb_query_records(c, (wfpb_socket_t)0x7ff0, 0, &rec) == WFPB_E_STATUS &&
	    wfpb_status(c) == WFPBROKER_STATUS_EINVAL, "bogus handle: %s", wfpb_errmsg(c));
	printf("  a bogus handle: %s\n", wfpb_errmsg(c));
	CHECK(wfpb_ping(c, NULL, 0, NULL) == 0, "the session after the refusals");
	closesocket(a);
	closesocket(cl);
	closesocket(l);
	wfpb_close(c);
	return 0;
}

/*
 * Protocol version 2 through the pipe server: three Accepts wait on one
 * listener (one event for the session's sockets, WSAEventSelect) and two
 * Connects are in flight at once; a Fetch is answered meanwhile; each
 * completion comes through the wait handle (an event) with a working socket.
 */
static int
case_requests_in_flight(void)
{
	struct wfpb_client	*c = open_client();
	struct wfpb_accepted	acc[3] = { WFPB_ACCEPTED_INIT, WFPB_ACCEPTED_INIT, WFPB_ACCEPTED_INIT };
	struct wfpb_completion	done = WFPB_COMPLETION_INIT;
	struct wfpb_addr	any = itest_loopback(0), bound, origin_addr;
	wfpb_socket_t		up[2];
	uint64_t		lid;
	uint8_t			*blob, h[WFPB_HANDLE_LEN];
	size_t			len;
	uint16_t		oport;
	SOCKET			cl[3], origin, ofd;
	int			i, n, got;

	CHECK(c != NULL, "open");
	CHECK(wfpb_listen(c, &any, 0, &lid, &bound) == 0, "listen: %s", wfpb_errmsg(c));
	for (i = 0; i < 3; i++)
		CHECK(wfpb_submit_accept(c, lid, 5000, 0, &acc[i], &acc[i], NULL) == 0, "submit accept: %s",
		    wfpb_errmsg(c));
	CHECK(wfpb_stash(c, (const uint8_t *)"meanwhile", 9, 0, h) == 0, "stash while Accepts wait: %s", wfpb_errmsg(c));
	CHECK(wfpb_fetch(c, h, &blob, &len) == 0 && len == 9, "fetch while Accepts wait: %s", wfpb_errmsg(c));
	wfpb_free(blob);
	CHECK(wfpb_in_flight(c) == 3, "%u in flight, want the 3 Accepts", wfpb_in_flight(c));
	for (i = 0; i < 3; i++) {
		CHECK((cl[i] = tcp_connect(bound.port)) != INVALID_SOCKET, "tcp connect");
		for (n = 0; n == 0 && WaitForSingleObject((HANDLE)wfpb_wait_handle(c), 5000) == WAIT_OBJECT_0;)
			CHECK((n = wfpb_complete(c, &done, 1, 0)) >= 0, "complete: %s", wfpb_errmsg(c));
		CHECK(n == 1 && done.rc == 0, "accept %d: %s", i, n == 1 ? done.message : "no completion");
		CHECK(done.user == &acc[i], "connection %d completed another Accept", i);
		CHECK(roundtrip(cl[i], (SOCKET)acc[i].sock, "through an Accept that waited") == 0, "data path %d", i);
	}
	/* Two Connects in flight together. */
	CHECK((origin = tcp_listen(&oport)) != INVALID_SOCKET, "origin");
	origin_addr = itest_loopback(oport);
	for (i = 0; i < 2; i++)
		CHECK(wfpb_submit_connect(c, acc[i].records, NULL, 0, &origin_addr, NULL, 5000, &up[i], NULL, &up[i],
		    NULL) == 0, "submit connect: %s", wfpb_errmsg(c));
	for (got = 0; got < 2 && WaitForSingleObject((HANDLE)wfpb_wait_handle(c), 5000) == WAIT_OBJECT_0;) {
		CHECK((n = wfpb_complete(c, &done, 1, 0)) >= 0, "complete: %s", wfpb_errmsg(c));
		if (n == 1) {
			CHECK(done.rc == 0, "connect: %s", done.message);
			got++;
		}
	}
	CHECK(got == 2, "%d of 2 Connects completed", got);
	for (i = 0; i < 2; i++) {
		CHECK((ofd = accept(origin, NULL, NULL)) != INVALID_SOCKET, "origin accept");
		CHECK(send((SOCKET)up[i], "x", 1, 0) == 1, "send upstream");
		closesocket(ofd);
		closesocket((SOCKET)up[i]);
	}
	closesocket(origin);
	for (i = 0; i < 3; i++) {
		closesocket(cl[i]);
		wfpb_accepted_free(&acc[i]);
	}
	wfpb_close(c);
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct {
		const char	*name;
		int		(*fn)(void);
	} cases[] = {
		{ "accept_and_connect_hand_over_duplicated_sockets", case_accept_and_connect },
		{ "prepare_hands_over_an_unconnected_socket_with_records", case_prepare },
		{ "errors_are_statuses_and_accept_times_out", case_errors },
		{ "secondary_mode_takes_the_clients_socket_by_handle", case_secondary_by_handle },
		{ "requests_in_flight_accepts_wait_connects_overlap", case_requests_in_flight },
		{ "notices_for_completion_ports_and_wsapoll", case_notices_for_ports_and_wsapoll },
		{ "a_libuv_loop_on_the_notice_socket", case_libuv_loop },
		{ "submits_never_wait_for_the_broker", case_submits_never_wait },
		{ "udp_recv_reads_a_datagram_and_its_control_data", case_udp_recv },
	};
	WSADATA	wsa;
	size_t	i;

	if ((argc != 3 && argc != 4) || WSAStartup(MAKEWORD(2, 2), &wsa) != 0) {
		fprintf(stderr, "usage: win-handover-test ENDPOINT SERVER_PUB [--wfp]\n");
		return 2;
	}
	endpoint = argv[1];
	server_pub = argv[2];
	setvbuf(stdout, NULL, _IONBF, 0);
	if (argc == 4) {
		int rc = case_wfp_refusal();

		printf("%s %s\n", rc == 0 ? "ok  " : "FAIL", "wfp_backend_refusal_is_eopnotsupp_and_broker_serves");
		printf("%d passed, %d failed\n", rc == 0, rc != 0);
		return rc == 0 ? 0 : 1;
	}
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = cases[i].fn();

		printf("%s %s\n", rc == 0 ? "ok  " : "FAIL", cases[i].name);
		rc == 0 ? passed++ : failed++;
	}
	printf("%d passed, %d failed\n", passed, failed);
	return failed == 0 ? 0 : 1;
}
