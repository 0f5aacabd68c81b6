/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wfpb-relay: a transparent relay built on libwfpb, and the example to copy.
 *
 *   wfpb-relay [--endpoint PATH] [--server-key FILE] [--client-key FILE]
 *              [--name NAME] [--no-records] [--max-connections N]
 *              [--context auto|wfpsampler|wfpb|none] --listen ADDR:PORT [--to ADDR:PORT]
 *
 * The broker owns every socket: it creates the listener, accepts each
 * connection (querying its redirect records and context with the privileges
 * the relay does not have), and connects upstream with those records applied
 * before the connect, so the next hop — or WFP — knows this connection is the
 * continuation of the one accepted. The relay only moves bytes. Without --to
 * the upstream is the original destination from the redirect context, read in
 * the callout's format (--context, context.c): auto (the default) tells
 * Microsoft's WFPSampler layout (two SOCKADDR_STORAGE) from the broker's own
 * backends' (two 19-byte hops) by length; a connection whose context is
 * neither is closed with the reason.
 *
 * --no-records connects upstream without the accepted connection's records:
 * what a proxy that cannot carry them does, and how cooperating proxies end
 * up redirecting each other's connections forever (tests/integration/
 * proxy_loop.sh shows it). On Linux each line also shows the socket marks,
 * which an unprivileged process may read but not set.
 *
 * --direct (Linux, root; a benchmark baseline, bench/conn_rate.sh) runs the
 * same relay without a broker: it listens, accepts and connects itself and
 * makes the netfilter backend's privileged calls (SO_ORIGINAL_DST, SO_MARK)
 * directly, which is what a relay costs when it needs no broker. --quiet
 * drops the line per connection.
 *
 * Two threads per relayed connection, one per direction; the broker session
 * is used by the main thread only (a libwfpb client is not thread-safe).
 * Builds for Linux and Windows (wfpb-relay.exe, sockets by WSADuplicateSocketW).
 */
#ifdef _WIN32
#include <winsock2.h>
#include <windows.h>
#else
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>
#endif
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <getopt.h>

#include "context.h"
#include "wfpb.h"

/* The few socket and thread calls that differ between the platforms. */
#ifdef _WIN32
typedef SOCKET sock_t;
#define SHUT_WR		SD_SEND
#define sock_close(s)	closesocket(s)

struct thread_start {
	void	*(*fn)(void *);
	void	*arg;
};

static DWORD WINAPI
thread_tramp(LPVOID p)
{
	struct thread_start t = *(struct thread_start *)p;

	free(p);
	t.fn(t.arg);
	return 0;
}

/* Starts a detached thread; 0 or -1. */
static int
thread_detached(void *(*fn)(void *), void *arg)
{
	struct thread_start	*t = malloc(sizeof(*t));
	HANDLE			h;

	if (t == NULL)
		return -1;
	t->fn = fn;
	t->arg = arg;
	if ((h = CreateThread(NULL, 0, thread_tramp, t, 0, NULL)) == NULL) {
		free(t);
		return -1;
	}
	CloseHandle(h);
	return 0;
}
#else
typedef int sock_t;
#define sock_close(s)	close(s)

static int
thread_detached(void *(*fn)(void *), void *arg)
{
	pthread_t t;

	if (pthread_create(&t, NULL, fn, arg) != 0)
		return -1;
	pthread_detach(t);
	return 0;
}
#endif

#define ACCEPT_TIMEOUT_MS	30000u
#define CONNECT_TIMEOUT_MS	10000u

/* A relayed connection: one thread per direction; the last one out closes both sockets. */
struct pair {
	sock_t		down;	/* the accepted client connection */
	sock_t		up;	/* the connection to the destination */
	atomic_int	refs;
};

struct direction {
	struct pair	*p;
	sock_t		from, to;
};

static const char *name = "wfpb-relay";

/* Usage to stdout with status 0 when asked for (--help), else to stderr with status 2. */
static void
usage_exit(int status)
{
	fprintf(status == 0 ? stdout : stderr, "usage: wfpb-relay [--endpoint PATH] [--server-key FILE] "
	    "[--client-key FILE] [--name NAME] [--no-records] [--max-connections N] [--quiet]\n"
	    "       [--context auto|wfpsampler|wfpb|none] --listen ADDR:PORT [--to ADDR:PORT]\n"
	    "       wfpb-relay --direct [--quiet] --listen ADDR:PORT --to ADDR:PORT   (Linux, root: no broker)\n"
	    "       wfpb-relay --help | --version\n");
	exit(status);
}

static void
usage(void)
{
	usage_exit(2);
}

static const struct option long_opts[] = {
	{ "endpoint", required_argument, NULL, 'e' },
	{ "server-key", required_argument, NULL, 'k' },
	{ "client-key", required_argument, NULL, 'c' },
	{ "name", required_argument, NULL, 'n' },
	{ "listen", required_argument, NULL, 'l' },
	{ "to", required_argument, NULL, 't' },
	{ "context", required_argument, NULL, 'x' },
	{ "max-connections", required_argument, NULL, 'm' },
	{ "no-records", no_argument, NULL, 'R' },
	{ "direct", no_argument, NULL, 'D' },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

/* A count of 1 or more, all digits: "2x", "-1" and "" are refused rather than read as far as they go. */
static int
parse_count(const char *s, uint32_t *out)
{
	uint64_t v = 0;

	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9' || (v = v * 10 + (uint64_t)(*s - '0')) > UINT32_MAX)
			return -1;
	}
	if (v == 0)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

/* " mark 0x..." for a socket on Linux, "" elsewhere. */
static const char *
mark_text(wfpb_socket_t fd, char *buf, size_t size)
{
	buf[0] = '\0';
#ifdef SO_MARK
	{
		unsigned	m = 0;
		socklen_t	len = sizeof(m);

		if (getsockopt((int)fd, SOL_SOCKET, SO_MARK, &m, &len) == 0)
			snprintf(buf, size, " mark 0x%x", m);
	}
#else
	(void)fd;
	(void)size;
#endif
	return buf;
}

/* Says whether this process could mark its own sockets: a relay that can needs no broker for it. */
static void
report_own_mark_privilege(void)
{
#ifdef SO_MARK
	unsigned	m = 0x1;
	int		s = socket(AF_INET, SOCK_STREAM, 0);

	if (s < 0)
		return;
	if (setsockopt(s, SOL_SOCKET, SO_MARK, &m, sizeof(m)) == 0)
		printf("%s: SO_MARK on its own sockets: allowed (privileged)\n", name);
	else
		printf("%s: SO_MARK on its own sockets: refused (%s); the broker marks them\n", name,
		    errno == EPERM ? "EPERM" : strerror(errno));
	close(s);
#endif
}

static int
same_addr(const struct wfpb_addr *a, const struct wfpb_addr *b)
{
	return a->family == b->family && a->port == b->port && memcmp(a->addr, b->addr, 16) == 0;
}

/* Copies one direction until EOF or an error, then passes the half-close on. */
static void *
pump(void *arg)
{
	struct direction	*d = arg;
	struct pair		*p = d->p;
	char			buf[16384];
	int			n, off, w;

	while ((n = (int)recv(d->from, buf, sizeof(buf), 0)) > 0) {
		for (off = 0; off < n; off += w)
			if ((w = (int)send(d->to, buf + off, n - off, 0)) <= 0)
				goto done;
	}
done:
	shutdown(d->to, SHUT_WR);
	free(d);
	if (atomic_fetch_sub(&p->refs, 1) == 1) {
		sock_close(p->down);
		sock_close(p->up);
		free(p);
	}
	return NULL;
}

/* Starts both directions of a pair; 0, or -1 with nothing started and both sockets closed. */
static int
relay_pair(sock_t down, sock_t up)
{
	struct pair		*p = malloc(sizeof(*p));
	struct direction	*a = malloc(sizeof(*a)), *b = malloc(sizeof(*b));

	if (p == NULL || a == NULL || b == NULL)
		goto fail;
	p->down = down;
	p->up = up;
	atomic_init(&p->refs, 2);
	*a = (struct direction){ p, down, up };
	*b = (struct direction){ p, up, down };
	if (thread_detached(pump, a) != 0)
		goto fail;
	if (thread_detached(pump, b) != 0) {
		/* a runs and owns p; make it the last reference and end the other half ourselves. */
		shutdown(up, SHUT_WR);
		free(b);
		if (atomic_fetch_sub(&p->refs, 1) == 1) {
			sock_close(down);
			sock_close(up);
			free(p);
		}
		return -1;
	}
	return 0;
fail:
	free(p);
	free(a);
	free(b);
	sock_close(down);
	sock_close(up);
	return -1;
}

#ifdef __linux__
#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST	80	/* linux/netfilter_ipv4.h */
#endif
/* A sockaddr for an IPv4 wfpb_addr (the --direct baseline is IPv4 only). */
static void
to_sin(const struct wfpb_addr *a, struct sockaddr_in *sin)
{
	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	memcpy(&sin->sin_addr, a->addr, 4);
	sin->sin_port = htons(a->port);
}

/*
 * The relay with no broker: what the broker would do for each connection, done here with the
 * privileges the relay then needs (the original destination, then the mark, before connect).
 */
static int
direct(const struct wfpb_addr *listen_at, const struct wfpb_addr *to, uint32_t max_conns, int quiet)
{
	struct sockaddr_in	sin, orig;
	socklen_t		len;
	unsigned long		relayed = 0;
	unsigned		mark;
	int			l, down, up, one = 1;

	if (listen_at->family != WFPB_AF_INET || to->family != WFPB_AF_INET) {
		fprintf(stderr, "%s: --direct relays IPv4 only\n", name);
		return 2;
	}
	to_sin(listen_at, &sin);
	if ((l = socket(AF_INET, SOCK_STREAM, 0)) < 0 || setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one,
	    sizeof(one)) != 0 ||
	    bind(l, (struct sockaddr *)&sin, sizeof(sin)) != 0 || listen(l, 1024) != 0) {
		fprintf(stderr, "%s: listen: %s\n", name, strerror(errno));
		return 1;
	}
	len = sizeof(sin);
	if (getsockname(l, (struct sockaddr *)&sin, &len) == 0)
		printf("%s: listening on 127.0.0.1:%u directly (no broker)\n", name, ntohs(sin.sin_port));
	while (max_conns == 0 || relayed < max_conns) {
		if ((down = accept(l, NULL, NULL)) < 0)
			continue;
		len = sizeof(orig);
		(void)getsockopt(down, SOL_IP, SO_ORIGINAL_DST, &orig, &len);	/* fails unless redirected */
		len = sizeof(mark);
		if (getsockopt(down, SOL_SOCKET, SO_MARK, &mark, &len) != 0)
			mark = 0;
		mark |= 0x1;	/* the relay's own bit, as a netfilter principal's */
		to_sin(to, &sin);
		if ((up = socket(AF_INET, SOCK_STREAM, 0)) < 0 || setsockopt(up, SOL_SOCKET, SO_MARK, &mark,
		    sizeof(mark)) != 0 ||
		    connect(up, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
			fprintf(stderr, "%s: upstream: %s\n", name, strerror(errno));
			if (up >= 0)
				close(up);
			close(down);
			continue;
		}
		relayed++;
		if (!quiet)
			printf("%s: relayed connection %lu directly\n", name, relayed);
		if (relay_pair(down, up) != 0)
			fprintf(stderr, "%s: out of threads or memory; connection closed\n", name);
	}
	close(l);
	return 0;
}
#endif

int
main(int argc, char **argv)
{
	struct wfpb_open_opts	o = WFPB_OPEN_OPTS_INIT;
	struct wfpb_client	*c;
	struct wfpb_addr	listen_at, to, bound, dest;
	char			err[256], a[WFPB_ADDR_STRLEN], b[WFPB_ADDR_STRLEN], d[WFPB_ADDR_STRLEN], why[160];
	const char		*listen_arg = NULL, *to_arg = NULL;
	uint64_t		lid;
	uint32_t		max_conns = 0;
	unsigned long		relayed = 0;
	enum relay_context	context_kind = RELAY_CONTEXT_AUTO;
	int			opt, carry_records = 1, direct_mode = 0, quiet = 0;

	while ((opt = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
		switch (opt) {
		case 'e': o.endpoint = optarg; break;
		case 'k': o.server_key_path = optarg; break;
		case 'c': o.client_key_path = optarg; break;
		case 'n': name = optarg; break;
		case 'l': listen_arg = optarg; break;
		case 't': to_arg = optarg; break;
		case 'R': carry_records = 0; break;
		case 'D': direct_mode = 1; break;
		case 'q': quiet = 1; break;
		case 'h': usage_exit(0); break;
		case 'V': printf("wfpb-relay %s (libwfpb %s)\n", WFPB_VERSION_STRING, wfpb_version()); return 0;
		case 'x':
			if (relay_context_kind(optarg, &context_kind) != 0) {
				fprintf(stderr, "%s: --context %s: not one of auto, wfpsampler, wfpb, none\n", name,
				    optarg);
				return 2;
			}
			break;
		case 'm':
			if (parse_count(optarg, &max_conns) != 0) {
				fprintf(stderr, "%s: --max-connections %s: not a number of connections (1..)\n", name,
				    optarg);
				return 2;
			}
			break;
		default: usage();
		}
	}
	if (optind != argc || listen_arg == NULL || wfpb_addr_parse(listen_arg, &listen_at) != 0 ||
	    (to_arg != NULL && wfpb_addr_parse(to_arg, &to) != 0))
		usage();
#ifndef _WIN32
	signal(SIGPIPE, SIG_IGN);
#endif
	/* Line by line where the C library can (on Windows _IOLBF means full buffering). */
#ifdef _WIN32
	setvbuf(stdout, NULL, _IONBF, 0);
#else
	setvbuf(stdout, NULL, _IOLBF, 0);
#endif
	if (direct_mode) {
#ifdef __linux__
		if (to_arg == NULL)
			usage();
		return direct(&listen_at, &to, max_conns, quiet);
#else
		fprintf(stderr, "%s: --direct is a Linux benchmark baseline\n", name);
		return 2;
#endif
	}
	report_own_mark_privilege();

	if (wfpb_open(&o, &c, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s: %s\n", name, err);
		return 1;
	}
	if (wfpb_listen(c, &listen_at, 0, &lid, &bound) != 0) {
		fprintf(stderr, "%s: listen %s: %s\n", name, listen_arg, wfpb_errmsg(c));
		return 1;
	}
	wfpb_addr_format(&bound, a);
	printf("%s: listening on %s, forwarding to %s%s\n", name, a, to_arg ? to_arg : "the original destination",
	    carry_records ? "" : ", without records");

	while (max_conns == 0 || relayed < max_conns) {
		struct wfpb_accepted	acc = WFPB_ACCEPTED_INIT;
		wfpb_socket_t		up;
		sock_t			down;
		const uint8_t		*records;
		char			m_in[32], m_out[32];
		int			rc;

		rc = wfpb_accept(c, lid, ACCEPT_TIMEOUT_MS, 0, &acc);
		if (rc == WFPB_E_STATUS && strncmp(wfpb_errmsg(c), "TIMEOUT", 7) == 0)
			continue;
		if (rc != 0) {
			fprintf(stderr, "%s: accept: %s\n", name, wfpb_errmsg(c));
			return 1;
		}
		wfpb_addr_format(&acc.peer, a);
		wfpb_addr_format(&acc.local, b);
		if (to_arg != NULL) {
			dest = to;
		} else if (relay_original_destination(context_kind, acc.context, acc.context_len, &dest, why,
		    sizeof(why)) != 0 || same_addr(&dest, &bound)) {
			/* Connecting to ourselves would loop; without a destination there is nowhere to go. */
			fprintf(stderr, "%s: %s -> %s: no usable original destination (%s); closed\n", name, a, b,
			    why[0] ? why : "it is this relay");
			wfpb_accepted_free(&acc);
			continue;
		}
		wfpb_addr_format(&dest, d);
		/* The upstream connection carries the accepted connection's records. */
		records = acc.has_records && carry_records ? acc.records : NULL;
		rc = wfpb_connect(c, records, NULL, 0, &dest, NULL, CONNECT_TIMEOUT_MS, &up, NULL);
		if (rc != 0)	/* before the release below replaces the message */
			fprintf(stderr, "%s: %s -> %s => %s: %s\n", name, a, b, d, wfpb_errmsg(c));
		if (acc.has_records && wfpb_release(c, acc.records) != 0)
			fprintf(stderr, "%s: release records: %s\n", name, wfpb_errmsg(c));
		if (rc != 0) {
			wfpb_accepted_free(&acc);
			continue;
		}
		relayed++;
		if (!quiet)
			printf("%s: accepted %s -> %s%s, upstream => %s%s (records %s)\n", name, a, b,
			    mark_text(acc.sock, m_in, sizeof(m_in)), d, mark_text(up, m_out, sizeof(m_out)),
			    records != NULL ? "applied" : acc.has_records ? "withheld" : "none");
		down = (sock_t)acc.sock;
		acc.sock = WFPB_SOCKET_NONE;	/* the pair owns it now */
		wfpb_accepted_free(&acc);
		if (relay_pair(down, (sock_t)up) != 0)
			fprintf(stderr, "%s: out of threads or memory; connection closed\n", name);
	}
	printf("%s: relayed %lu connections, the --max-connections bound; exiting\n", name, relayed);
	wfpb_close(c);
	return 0;
}
