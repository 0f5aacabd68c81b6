/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wfpb-udp-relay: a transparent UDP relay built on libwfpb, the UDP example to copy (Linux
 * and Windows).
 *
 *   wfpb-udp-relay [--endpoint PATH] [--server-key FILE] [--client-key FILE] [--name NAME]
 *                  [--max-flows N] [--idle-ms MS] [--no-records] --listen ADDR:PORT [--to ADDR:PORT]
 *
 * The broker owns the UDP listener a TPROXY rule delivers flows to. For each new flow one
 * Flow request: the broker reads the flow's first datagram with its records and original
 * destination, sends it upstream with the records applied (to --to, or to where it was
 * going), and hands over two sockets: `reply`, bound to the original destination and
 * connected to the client, on which the flow's later datagrams arrive and from which the
 * answers go back as if from the server, and `upstream`. The relay only moves datagrams
 * between the two until the flow is idle for --idle-ms (10 s). Four Flows wait at the
 * broker at once. --max-flows N: take N flows, and exit once they have ended. --no-records: upstream carries
 * only the relay's own mark, as a proxy that cannot carry records would (how cooperating
 * proxies end up redirecting each other's flows forever: tests/integration/udp_loop.sh).
 *
 * On Windows (the wfp backend) a flow stays on the listener: the broker hands the listener
 * itself over (`held`), the relay reads every datagram with wfpb_udp_recv, gives a new flow's
 * first one (the one that carries records or a context) to the broker with wfpb_flow_first,
 * which sends it upstream with the records and hands the upstream socket over; later
 * datagrams from that client go up on it, and answers go back from the listener.
 *
 * One thread, one poll loop; the broker's answers arrive on libwfpb's wait handle (on Windows
 * its notice socket, which WSAPoll takes).
 */
#ifdef _WIN32
#include <winsock2.h>
#include <ws2tcpip.h>
#include <windows.h>
#else
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#endif
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wfpb.h"

#ifdef _WIN32
typedef SOCKET sock_t;
#define poll		WSAPoll
#define WOULD_BLOCK()	(WSAGetLastError() == WSAEWOULDBLOCK)
#define POLL_FAILED(r)	((r) < 0)
typedef int socklen_t;
#else
typedef int sock_t;
#define WOULD_BLOCK()	(errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
#define POLL_FAILED(r)	((r) < 0 && errno != EINTR)
#endif

#define FLOWS_WAITING	4u
#define FLOW_TIMEOUT_MS	30000u

struct flow {
	struct flow		*next;
	struct wfpb_flow	f;
	struct wfpb_addr	client;		/* held: the flow's client, whose datagrams it carries */
	uint64_t		last_us;	/* the last datagram either way */
	int			waiting;	/* a Flow request at the broker, not yet answered */
};

static const char *name = "wfpb-udp-relay";

static void
usage(int status)
{
	fprintf(status ? stderr : stdout, "usage: wfpb-udp-relay [--endpoint PATH] [--server-key FILE] "
	    "[--client-key FILE] [--name NAME]\n       [--max-flows N] [--idle-ms MS] [--no-records] --listen ADDR:PORT "
	    "[--to ADDR:PORT]\n");
	exit(status);
}

/* The SO_MARK of s, as text (the marks the records put on it), or "" where it cannot be read. */
static const char *
mark_of(sock_t s, char *buf, size_t cap)
{
	buf[0] = '\0';
#ifdef SO_MARK
	{
		uint32_t	mark = 0;
		socklen_t	len = sizeof(mark);

		if (getsockopt(s, SOL_SOCKET, SO_MARK, &mark, &len) == 0)
			snprintf(buf, cap, " mark 0x%x", mark);
	}
#else
	(void)s;
	(void)cap;
#endif
	return buf;
}

/*
 * One datagram from `from` to `to` (to_addr NULL: to's peer; else sent there), if one waits:
 * 1 moved, 0 none, -1 the flow is broken. The sockets are non-blocking.
 */
static int
move(sock_t from, sock_t to, const struct sockaddr *to_addr, socklen_t to_len)
{
	static char	buf[65536];
	int		n = (int)recv(from, buf, sizeof(buf), 0);

	if (n < 0)
		return WOULD_BLOCK() ? 0 : -1;
	if (to_addr == NULL)
		return send(to, buf, n, 0) < 0 && !WOULD_BLOCK() ? -1 : 1;
	return sendto(to, buf, n, 0, to_addr, to_len) < 0 && !WOULD_BLOCK() ? -1 : 1;
}

/* a as a sockaddr, for sendto: its length. */
static socklen_t
to_sockaddr(const struct wfpb_addr *a, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (a->family == WFPB_AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		memcpy(&sin6->sin6_addr, a->addr, 16);
		sin6->sin6_port = htons(a->port);
		return sizeof(*sin6);
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		memcpy(&sin->sin_addr, a->addr, 4);
		sin->sin_port = htons(a->port);
		return sizeof(*sin);
	}
}

static int
same_addr(const struct wfpb_addr *a, const struct wfpb_addr *b)
{
	return a->family == b->family && a->port == b->port && memcmp(a->addr, b->addr, 16) == 0;
}

/*
 * Held (Windows): each datagram waiting on the listener. One that begins a flow (it carries
 * records or a context) goes to the broker in a Flow with it; one from the client of a flow
 * the relay carries goes up on that flow's upstream socket; any other is dropped. 0, or -1
 * when the broker session failed.
 */
static int
read_held(struct wfpb_client *c, sock_t held, uint64_t lid, const struct wfpb_addr *to, unsigned flags,
    struct flow **list, unsigned long max_flows, unsigned long *started_or_waiting)
{
	static uint8_t		buf[65536], ctl[WFPB_UDP_CONTROL_MAX];
	struct wfpb_flow_first	ff = WFPB_FLOW_FIRST_INIT;
	struct flow		*fl;
	int			rc;

	while ((rc = wfpb_udp_recv((wfpb_socket_t)held, buf, sizeof(buf), ctl, sizeof(ctl), &ff)) != WFPB_E_AGAIN) {
		if (rc != 0) {
			fprintf(stderr, "%s: a datagram dropped: %s\n", name, wfpb_strerror(rc));
			if (rc == WFPB_E_OS)
				return 0;
			continue;
		}
		if (ff.records_len == 0 && ff.context_len == 0) {
			for (fl = *list; fl != NULL && (fl->waiting || !same_addr(&fl->client, &ff.client)); fl = fl->next)
				;
			if (fl != NULL && send((sock_t)fl->f.upstream, (const char *)ff.payload, (int)ff.payload_len, 0) >= 0)
				fl->last_us = wfpb_monotonic_us();
			continue;
		}
		if ((max_flows != 0 && *started_or_waiting >= max_flows) || (fl = calloc(1, sizeof(*fl))) == NULL)
			continue;
		fl->f = (struct wfpb_flow)WFPB_FLOW_INIT;
		fl->client = ff.client;
		/* The request is encoded at once: ff may point into buf and ctl, reused below. */
		if (wfpb_submit_flow_first(c, lid, &ff, to, flags, &fl->f, fl, NULL) != 0) {
			fprintf(stderr, "%s: flow: %s\n", name, wfpb_errmsg(c));
			free(fl);
			return -1;
		}
		fl->waiting = 1;
		fl->next = *list;
		*list = fl;
		(*started_or_waiting)++;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "endpoint", required_argument, NULL, 'e' }, { "server-key", required_argument, NULL, 'k' },
		{ "client-key", required_argument, NULL, 'c' }, { "name", required_argument, NULL, 'n' },
		{ "listen", required_argument, NULL, 'l' }, { "to", required_argument, NULL, 't' },
		{ "max-flows", required_argument, NULL, 'm' }, { "idle-ms", required_argument, NULL, 'i' },
		{ "no-records", no_argument, NULL, 'R' }, { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	struct wfpb_open_opts		o = WFPB_OPEN_OPTS_INIT;
	struct wfpb_udp_listener	ul = WFPB_UDP_LISTENER_INIT;
	struct wfpb_completion		done[8];
	struct wfpb_addr		at, to;
	struct wfpb_client		*c;
	struct flow			*list = NULL, *fl, **pp;
	struct pollfd			pfd[2 + 2 * 256];
	struct flow			*owner[256];
	struct sockaddr_storage		ss;
	char				err[256], a[WFPB_ADDR_STRLEN], b[WFPB_ADDR_STRLEN], d[WFPB_ADDR_STRLEN], m[32];
	unsigned long			max_flows = 0, started = 0, ended = 0, idle_ms = 10000;
	unsigned			waiting = 0, n, i, base;
	uint64_t			now;
	unsigned			flags = 0;
	wfpb_socket_t			answers;
	sock_t				held;
	int				opt, has_to = 0, has_at = 0, k;
	socklen_t			sslen;

	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'e': o.endpoint = optarg; break;
		case 'k': o.server_key_path = optarg; break;
		case 'c': o.client_key_path = optarg; break;
		case 'n': name = optarg; break;
		case 'l': has_at = wfpb_addr_parse(optarg, &at) == 0; if (!has_at) usage(2); break;
		case 't': has_to = wfpb_addr_parse(optarg, &to) == 0; if (!has_to) usage(2); break;
		case 'm': max_flows = strtoul(optarg, NULL, 10); break;
		case 'i': idle_ms = strtoul(optarg, NULL, 10); break;
		case 'R': flags |= WFPB_FLOW_WITHOUT_RECORDS; break;
		case 'h': usage(0); break;
		default: usage(2);
		}
	}
	if (!has_at || optind != argc || idle_ms == 0)
		usage(2);
	setvbuf(stdout, NULL, _IOLBF, 0);
	o.nonblocking_sockets = 1;
	if (wfpb_open(&o, &c, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s: %s\n", name, err);
		return 1;
	}
	if (wfpb_listen_udp_held(c, &at, &ul) != 0) {
		fprintf(stderr, "%s: listen: %s\n", name, wfpb_errmsg(c));
		return 1;
	}
	held = (sock_t)ul.held;
#ifdef _WIN32
	/* WSAPoll takes sockets only: the broker's answers come through libwfpb's notice socket. */
	if (wfpb_notify_socket(c, &answers) != 0) {
		fprintf(stderr, "%s: %s\n", name, wfpb_errmsg(c));
		return 1;
	}
	if (ul.held != WFPB_SOCKET_NONE) {
		u_long on = 1;

		(void)ioctlsocket(held, FIONBIO, &on);
	}
#else
	answers = wfpb_wait_handle(c);
#endif
	wfpb_addr_format(&ul.bound, a);
	printf("%s: listening on %s (udp%s), forwarding to %s\n", name, a, ul.held != WFPB_SOCKET_NONE ?
	    ", the listener held here" : "", has_to ? "the --to address" : "the original destination");
	for (;;) {
		/* Where the broker reads the flows: Flows waiting at the broker, for the next new flows. */
		while (ul.held == WFPB_SOCKET_NONE && waiting < FLOWS_WAITING &&
		    (max_flows == 0 || started + waiting < max_flows)) {
			if ((fl = calloc(1, sizeof(*fl))) == NULL)
				break;
			fl->f = (struct wfpb_flow)WFPB_FLOW_INIT;
			if (wfpb_submit_flow(c, ul.id, has_to ? &to : NULL, flags, FLOW_TIMEOUT_MS, &fl->f, fl, NULL) != 0) {
				fprintf(stderr, "%s: flow: %s\n", name, wfpb_errmsg(c));
				return 1;
			}
			fl->waiting = 1;
			fl->next = list;
			list = fl;
			waiting++;
		}
		if (max_flows != 0 && ended >= max_flows)
			break;
		pfd[0] = (struct pollfd){ .fd = (sock_t)answers, .events = POLLIN };
		base = 1;
		if (ul.held != WFPB_SOCKET_NONE)
			pfd[base++] = (struct pollfd){ .fd = held, .events = POLLIN };
		for (n = 0, fl = list; fl != NULL && n < 256; fl = fl->next) {
			if (fl->waiting)
				continue;
			/* Held: the flow's answers leave from the listener, so only upstream is its own. */
			pfd[base + 2 * n] = (struct pollfd){ .fd = (sock_t)(fl->f.reply != WFPB_SOCKET_NONE ? fl->f.reply :
			    fl->f.upstream), .events = (short)(fl->f.reply != WFPB_SOCKET_NONE ? POLLIN : 0) };
			pfd[base + 1 + 2 * n] = (struct pollfd){ .fd = (sock_t)fl->f.upstream, .events = POLLIN };
			owner[n++] = fl;
		}
		if (POLL_FAILED(poll(pfd, base + 2 * n, 200)))
			return 1;
		now = wfpb_monotonic_us();
		for (i = 0; i < n; i++) {
			fl = owner[i];
			if (pfd[base + 2 * i].revents & POLLIN && (k = move((sock_t)fl->f.reply, (sock_t)fl->f.upstream, NULL, 0)) != 0)
				fl->last_us = k > 0 ? now : 0;
			if (!(pfd[base + 1 + 2 * i].revents & (POLLIN | POLLERR | POLLHUP)))
				continue;
			if (fl->f.reply != WFPB_SOCKET_NONE)
				k = move((sock_t)fl->f.upstream, (sock_t)fl->f.reply, NULL, 0);
			else {
				sslen = to_sockaddr(&fl->client, &ss);
				k = move((sock_t)fl->f.upstream, held, (const struct sockaddr *)&ss, sslen);
			}
			if (k != 0)
				fl->last_us = k > 0 ? now : 0;
		}
		if (ul.held != WFPB_SOCKET_NONE && pfd[1].revents &&
		    read_held(c, held, ul.id, has_to ? &to : NULL, flags, &list, max_flows, &started) != 0)
			return 1;
		if (pfd[0].revents) {
			for (i = 0; i < 8; i++)
				done[i] = (struct wfpb_completion)WFPB_COMPLETION_INIT;
			if ((k = wfpb_complete(c, done, 8, 0)) < 0) {
				fprintf(stderr, "%s: the broker session ended: %s\n", name, wfpb_strerror(k));
				return 1;
			}
			for (i = 0; i < (unsigned)k; i++) {
				fl = done[i].user;
				fl->waiting = 0;
				if (ul.held == WFPB_SOCKET_NONE)
					waiting--;
				fl->last_us = now;
				if (done[i].rc != 0) {
					if (done[i].status != WFPBROKER_STATUS_TIMEOUT)
						fprintf(stderr, "%s: flow: %s\n", name, done[i].message);
					fl->last_us = 0;	/* freed below, not counted */
					fl->f.payload_len = (size_t)-1;
					continue;
				}
				if (ul.held == WFPB_SOCKET_NONE)
					started++;
				else
					fl->f.client = fl->client;
				wfpb_addr_format(&fl->f.client, a);
				wfpb_addr_format(&fl->f.original_dst, b);
				wfpb_addr_format(&fl->f.remote, d);
				/* Held, the relay read the first datagram itself: the answer does not carry it back. */
				if (ul.held == WFPB_SOCKET_NONE)
					snprintf(err, sizeof(err), "%zu bytes %s", fl->f.payload_len,
					    fl->f.forwarded ? "forwarded" : "held");
				else
					snprintf(err, sizeof(err), "first datagram %s", fl->f.forwarded ? "forwarded" : "held");
				printf("%s: flow %s -> %s, upstream => %s%s (%s)\n", name, a,
				    fl->f.original_dst.family != 0 ? b : "(not said)", d,
				    mark_of((sock_t)fl->f.upstream, m, sizeof(m)), err);
			}
		}
		/* Flows idle past --idle-ms (or broken, or failed) end. */
		for (pp = &list; (fl = *pp) != NULL;) {
			if (fl->waiting || (fl->last_us != 0 && now - fl->last_us < idle_ms * 1000u)) {
				pp = &fl->next;
				continue;
			}
			*pp = fl->next;
			if (fl->f.payload_len != (size_t)-1)
				ended++;
			else if (ul.held != WFPB_SOCKET_NONE)
				started--;	/* a refused flow is not one of --max-flows */
			wfpb_flow_free(&fl->f);
			free(fl);
		}
	}
	printf("%s: %lu flows ended, the --max-flows bound; exiting\n", name, ended);
	wfpb_udp_listener_close(&ul);
	wfpb_close(c);
	return 0;
}
