/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wfpb-relay: a transparent relay built on libwfpb, and the example to copy.
 *
 *   wfpb-relay [--endpoint PATH] [--server-key FILE] [--client-key FILE]
 *              [--name NAME] [--no-records] [--max-connections N] [--accepts N] [--in-flight N]
 *              [--context auto|wfpsampler|wfpb|none] [--pair] (--listen ADDR:PORT | --listener NAME)
 *              [--to ADDR:PORT]
 *
 * --listener NAME accepts on a listener the broker's configuration declares
 * for this relay's principal ([listener NAME]) instead of asking for one: the
 * broker keeps it open while the relay restarts, and the connections that came
 * meanwhile wait for the next run.
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
 * Each connection is one Relay request (wfpb_submit_relay): the broker
 * accepts it, connects upstream with its records and hands both sockets over
 * in one answer, with one audit record; without --to the broker connects to
 * the original destination its backend knows. --pair, and any run that needs
 * the relay itself to choose (--no-records, a --context other than auto),
 * makes each connection an Accept then a Connect instead: the two requests a
 * proxy that decides per connection sends.
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
 * One thread, one loop (poll on Linux, WSAPoll on Windows): several Relays
 * (or Accepts) are kept waiting at the broker (--accepts, 32: each answer waits
 * for its audit record, and fewer waiting leave the group commit half empty),
 * each upstream connect is in flight while others are served, and bytes move
 * without blocking, each direction with its own buffer, half-closes passed
 * on. A dead upstream times out alone (the broker's connect timeout). The
 * broker's answers arrive on libwfpb's wait handle (wfpb.h, asynchronous
 * requests); at most --in-flight (48) requests wait at the broker at once, under
 * its max_inflight. On Windows that handle is an event and WSAPoll takes
 * sockets only, so the loop polls libwfpb's notice socket instead
 * (wfpb_notify_socket), which is readable while answers wait.
 * Builds for Linux and Windows (wfpb-relay.exe, sockets by WSADuplicateSocketW).
 */
#ifdef _WIN32
#include <winsock2.h>
#include <windows.h>
#else
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>
#endif
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <getopt.h>

#include "context.h"
#include "wfpb.h"

/* The few socket calls that differ between the platforms. */
#ifdef _WIN32
typedef SOCKET sock_t;
#define SHUT_WR		SD_SEND
#define poll		WSAPoll
#define sock_close(s)	closesocket(s)
#define WOULD_BLOCK()	(WSAGetLastError() == WSAEWOULDBLOCK)
#else
#include <fcntl.h>
#include <poll.h>
typedef int sock_t;
#define sock_close(s)	close(s)
#define WOULD_BLOCK()	(errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
#endif

#define ACCEPT_TIMEOUT_MS	30000u
#define CONNECT_TIMEOUT_MS	10000u
#define BUF_SIZE		16384

static int
set_nonblocking(sock_t s)
{
#ifdef _WIN32
	u_long on = 1;

	return ioctlsocket(s, FIONBIO, &on) == 0 ? 0 : -1;
#else
	int fl = fcntl(s, F_GETFL);

	return fl >= 0 && fcntl(s, F_SETFL, fl | O_NONBLOCK) == 0 ? 0 : -1;
#endif
}

/* One direction of a relayed connection: bytes read from `from` and not yet written to `to`. */
struct half {
	char	buf[BUF_SIZE];
	int	len, off;
	int	eof;		/* from said EOF (or failed); to was shut down once the buffer was written */
	int	shut;
};

/*
 * A connection: an Accept waiting at the broker, then its upstream Connect
 * in flight, then both sockets relaying.
 */
enum { ACCEPTING, CONNECTING, RELAYING };

struct conn {
	struct conn		*next;
	int			state;
	struct wfpb_accepted	acc;		/* the Accept's result */
	struct wfpb_relayed	rel;		/* or the Relay's */
	wfpb_socket_t		up_sock;	/* the Connect's */
	sock_t			down, up;
	struct half		d2u, u2d;	/* client to upstream, upstream to client */
	char			a[WFPB_ADDR_STRLEN], b[WFPB_ADDR_STRLEN], d[WFPB_ADDR_STRLEN];
	int			dead;		/* finished or failed: freed at the end of the loop's turn */
};

static const char *name = "wfpb-relay";

/* Usage to stdout with status 0 when asked for (--help), else to stderr with status 2. */
static void
usage_exit(int status)
{
	fprintf(status == 0 ? stdout : stderr, "usage: wfpb-relay [--endpoint PATH] [--server-key FILE] "
	    "[--client-key FILE] [--name NAME] [--no-records] [--max-connections N] [--quiet]\n"
	    "       [--accepts N] [--in-flight N] [--context auto|wfpsampler|wfpb|none] [--pair]\n"
	    "       (--listen ADDR:PORT | --listener NAME) [--to ADDR:PORT]\n"
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
	{ "listener", required_argument, NULL, 'L' },
	{ "to", required_argument, NULL, 't' },
	{ "context", required_argument, NULL, 'x' },
	{ "max-connections", required_argument, NULL, 'm' },
	{ "no-records", no_argument, NULL, 'R' },
	{ "direct", no_argument, NULL, 'D' },
	{ "quiet", no_argument, NULL, 'q' },
	{ "accepts", required_argument, NULL, 'A' },
	{ "in-flight", required_argument, NULL, 'I' },
	{ "pair", no_argument, NULL, 'P' },
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

/*
 * Moves what it can of one direction without blocking: 0 while it goes on,
 * -1 when the connection failed. Reading stops while the buffer holds bytes
 * not yet written (poll then waits for `to` to take them).
 */
static int
move(struct half *h, sock_t from, sock_t to)
{
	int n;

	if (h->len == 0 && !h->eof) {
		n = (int)recv(from, h->buf, BUF_SIZE, 0);
		if (n > 0) {
			h->len = n;
			h->off = 0;
		} else if (n == 0) {
			h->eof = 1;
		} else if (!WOULD_BLOCK()) {
			return -1;
		}
	}
	while (h->len > 0) {
		n = (int)send(to, h->buf + h->off, h->len, 0);
		if (n < 0)
			return WOULD_BLOCK() ? 0 : -1;
		h->off += n;
		h->len -= n;
	}
	if (h->eof && !h->shut) {
		shutdown(to, SHUT_WR);	/* the half-close passes on once everything before it has */
		h->shut = 1;
	}
	return 0;
}

/* What poll should wait for on one socket, given the half reading from it and the one writing to it. */
static short
wants(const struct half *reading, const struct half *writing)
{
	return (short)((reading->len == 0 && !reading->eof ? POLLIN : 0) | (writing->len > 0 ? POLLOUT : 0));
}

static void
conn_free(struct conn *cn)
{
	if (cn->state == RELAYING) {
		sock_close(cn->down);
		sock_close(cn->up);
	}
	wfpb_accepted_free(&cn->acc);
	wfpb_relayed_free(&cn->rel);
	free(cn);
}

static struct conn *
conn_new(void)
{
	struct conn *cn = calloc(1, sizeof(*cn));

	if (cn != NULL) {
		cn->acc = (struct wfpb_accepted)WFPB_ACCEPTED_INIT;
		cn->rel = (struct wfpb_relayed)WFPB_RELAYED_INIT;
		cn->up_sock = WFPB_SOCKET_NONE;
	}
	return cn;
}

/*
 * Both sockets are ours: relay them, non-blocking (the broker's arrive so: the session is
 * opened with nonblocking_sockets; --direct's own are made so). 0, or -1 with both closed.
 */
static int
start_relaying(struct conn *cn, sock_t down, sock_t up, int make_nonblocking)
{
	cn->down = down;
	cn->up = up;
	cn->state = RELAYING;
	if (make_nonblocking && (set_nonblocking(down) != 0 || set_nonblocking(up) != 0))
		return -1;
	return 0;
}

/*
 * The sockets of every relaying connection into pfd (from index first),
 * with the connection of each pair in owner. Returns the count.
 */
static unsigned
poll_set(struct conn *list, struct pollfd **pfd, struct conn ***owner, unsigned *cap, unsigned first)
{
	struct conn	*cn;
	unsigned	n = first;

	for (cn = list; cn != NULL; cn = cn->next) {
		if (cn->state != RELAYING)
			continue;
		if (n + 2 > *cap) {
			unsigned	ncap = *cap ? 2 * *cap : 64;
			struct pollfd	*p = realloc(*pfd, ncap * sizeof(**pfd));
			struct conn	**o = p ? realloc(*owner, ncap * sizeof(**owner)) : NULL;

			if (p != NULL)
				*pfd = p;
			if (o == NULL)
				break;	/* out of memory: those not in the set wait for the next turn */
			*owner = o;
			*cap = ncap;
		}
		(*pfd)[n].fd = cn->down;
		(*pfd)[n].events = wants(&cn->d2u, &cn->u2d);
		(*owner)[n++] = cn;
		(*pfd)[n].fd = cn->up;
		(*pfd)[n].events = wants(&cn->u2d, &cn->d2u);
		(*owner)[n++] = cn;
	}
	return n;
}

/* After poll: moves bytes for every connection that had an event; frees the finished. */
static void
relay_step(struct conn **list, const struct pollfd *pfd, struct conn **owner, unsigned first, unsigned n)
{
	struct conn	**pp, *cn;
	unsigned	i;

	for (i = first; i < n; i += 2) {
		cn = owner[i];
		if ((pfd[i].revents | pfd[i + 1].revents) == 0)
			continue;
		if (move(&cn->d2u, cn->down, cn->up) != 0 || move(&cn->u2d, cn->up, cn->down) != 0)
			cn->d2u.shut = cn->u2d.shut = -1;	/* failed: closed below */
	}
	for (pp = list; (cn = *pp) != NULL;) {
		if (cn->dead || (cn->state == RELAYING && ((cn->d2u.shut && cn->u2d.shut) || cn->d2u.shut < 0))) {
			*pp = cn->next;
			conn_free(cn);
		} else {
			pp = &cn->next;
		}
	}
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
 * The relay with no broker, for one connection the listener has: what the
 * broker would do, done here with the privileges the relay then needs (the
 * original destination, then the mark, before connect). The connect blocks:
 * to a loopback origin it is done at once, and it spares the baseline the
 * loop turns the broker's way takes. 1 for a connection, 0 for none waiting.
 */
static int
direct_accept(int l, const struct wfpb_addr *to, struct conn **list, unsigned long *relayed, int quiet)
{
	struct sockaddr_in	sin, orig;
	struct conn		*cn;
	socklen_t		len;
	unsigned		mark;
	int			down, up;

	if ((down = accept(l, NULL, NULL)) < 0)
		return 0;
	len = sizeof(orig);
	(void)getsockopt(down, SOL_IP, SO_ORIGINAL_DST, &orig, &len);	/* fails unless redirected */
	len = sizeof(mark);
	if (getsockopt(down, SOL_SOCKET, SO_MARK, &mark, &len) != 0)
		mark = 0;
	mark |= 0x1;	/* the relay's own bit, as a netfilter principal's */
	to_sin(to, &sin);
	if ((up = socket(AF_INET, SOCK_STREAM, 0)) < 0 || setsockopt(up, SOL_SOCKET, SO_MARK, &mark,
	    sizeof(mark)) != 0 || connect(up, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
	    (cn = conn_new()) == NULL) {
		fprintf(stderr, "%s: upstream: %s\n", name, strerror(errno));
		if (up >= 0)
			close(up);
		close(down);
		return 1;
	}
	++*relayed;
	if (!quiet)
		printf("%s: relayed connection %lu directly\n", name, *relayed);
	if (start_relaying(cn, down, up, 1) != 0)
		cn->dead = 1;
	cn->next = *list;
	*list = cn;
	return 1;
}

static int
direct_listen(const struct wfpb_addr *listen_at, const struct wfpb_addr *to)
{
	struct sockaddr_in	sin;
	socklen_t		len;
	int			l, one = 1;

	if (listen_at->family != WFPB_AF_INET || to->family != WFPB_AF_INET) {
		fprintf(stderr, "%s: --direct relays IPv4 only\n", name);
		return -1;
	}
	to_sin(listen_at, &sin);
	if ((l = socket(AF_INET, SOCK_STREAM, 0)) < 0 || setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one,
	    sizeof(one)) != 0 || bind(l, (struct sockaddr *)&sin, sizeof(sin)) != 0 || listen(l, 1024) != 0 ||
	    set_nonblocking(l) != 0) {
		fprintf(stderr, "%s: listen: %s\n", name, strerror(errno));
		return -1;
	}
	len = sizeof(sin);
	if (getsockname(l, (struct sockaddr *)&sin, &len) == 0)
		printf("%s: listening on 127.0.0.1:%u directly (no broker)\n", name, ntohs(sin.sin_port));
	return l;
}
#endif


/* The relay's state, shared by the loop and the broker's answers. */
struct relay {
	struct wfpb_client	*c;		/* NULL: --direct */
	int			listener;	/* --direct: its own listening socket */
	uint64_t		lid;
	const char		*declared;	/* --listener: a listener the broker's configuration declares */
	struct wfpb_addr	bound, to;
	int			has_to, carry_records, quiet;
	int			pair;		/* Accept then Connect, not Relay */
	enum relay_context	context_kind;
	uint32_t		accepts, in_flight, max_conns;
	unsigned		accepting;	/* Accepts waiting at the broker */
	unsigned long		started, relayed;
	struct conn		*list;
	int			down;		/* the broker ended the session: a new one is being opened */
};

/*
 * The broker ended the session (it restarted, or stopped): a new one, with the relay's own
 * listener opened again where it was (its port kept, if it is free). 0 when the relay can go on,
 * 1 when the broker is not back yet (the loop asks again soon), -1 when it cannot go on.
 */
static int
come_back(struct relay *r)
{
	char a[WFPB_ADDR_STRLEN];

	if (wfpb_reconnect(r->c) != 0)
		return 1;
	if (r->declared == NULL && wfpb_listen(r->c, &r->bound, 0, &r->lid, &r->bound) != 0) {
		wfpb_addr_format(&r->bound, a);
		fprintf(stderr, "%s: listen %s again: %s\n", name, a, wfpb_errmsg(r->c));
		return -1;
	}
	r->down = 0;
	printf("%s: a new session with the broker; accepting again\n", name);
	return 0;
}

/* Keeps r->accepts Accepts waiting, within r->in_flight requests at the broker and --max-connections. */
static int
top_up_accepts(struct relay *r)
{
	struct conn	*cn;
	int		rc;

	if (r->down && (rc = come_back(r)) != 0)
		return rc < 0 ? -1 : 0;
	while (r->accepting < r->accepts && wfpb_in_flight(r->c) < r->in_flight &&
	    (r->max_conns == 0 || r->started + r->accepting < r->max_conns)) {
		if ((cn = conn_new()) == NULL)
			return 0;	/* out of memory: fewer Accepts wait until some is back */
		if (!r->pair) {
			if (wfpb_submit_relay(r->c, r->declared != NULL ? 0 : r->lid, r->declared, r->has_to ? &r->to : NULL,
			    NULL, ACCEPT_TIMEOUT_MS, CONNECT_TIMEOUT_MS, &cn->rel, cn, NULL) != 0) {
				fprintf(stderr, "%s: relay: %s\n", name, wfpb_errmsg(r->c));
				free(cn);
				return -1;
			}
		/* The records are kept for one use: the Connect that carries them upstream releases them. */
		} else if ((r->declared != NULL ?
		    wfpb_submit_accept_declared(r->c, r->declared, ACCEPT_TIMEOUT_MS, WFPB_LIFETIME_ONCE, &cn->acc, cn, NULL) :
		    wfpb_submit_accept(r->c, r->lid, ACCEPT_TIMEOUT_MS, WFPB_LIFETIME_ONCE, &cn->acc, cn, NULL)) != 0) {
			fprintf(stderr, "%s: accept: %s\n", name, wfpb_errmsg(r->c));
			free(cn);
			return -1;
		}
		cn->state = ACCEPTING;
		r->accepting++;
	}
	return 0;
}

/*
 * Records a Connect did not use go back to the broker. After a failed Connect
 * they may have gone with it (they were set on its socket): NOT_FOUND then.
 */
static void
release_records(struct relay *r, struct conn *cn)
{
	if (cn->acc.has_records && wfpb_submit_release(r->c, cn->acc.records, NULL, NULL) != 0)
		fprintf(stderr, "%s: release records: %s\n", name, wfpb_errmsg(r->c));
}

/*
 * An Accept or a Relay completed: 0 with the connection on the relay's list, or -1 with it
 * freed. TIMEOUT means nobody came in ACCEPT_TIMEOUT_MS (the loop submits another); another
 * failure concerns this connection alone.
 */
static int
arrived(struct relay *r, struct conn *cn, const struct wfpb_completion *done, const char *what)
{
	r->accepting--;
	if (done->rc != 0) {
		/* The broker's restart ends every request in flight: said once, by the loop. */
		if (done->status != WFPBROKER_STATUS_TIMEOUT && done->rc != WFPB_E_RESTARTED)
			fprintf(stderr, "%s: %s: %s\n", name, what, done->message);
		conn_free(cn);
		return -1;
	}
	r->started++;
	cn->next = r->list;
	r->list = cn;
	return 0;
}

/* An Accept completed: connect upstream with its records, the Connect in flight while the loop goes on. */
static void
on_accepted(struct relay *r, struct conn *cn, const struct wfpb_completion *done)
{
	struct wfpb_addr	dest;
	char			why[160] = "";

	if (arrived(r, cn, done, "accept") != 0)
		return;
	wfpb_addr_format(&cn->acc.peer, cn->a);
	wfpb_addr_format(&cn->acc.local, cn->b);
	if (r->has_to) {
		dest = r->to;
	} else if (relay_original_destination(r->context_kind, cn->acc.context, cn->acc.context_len, &dest, why,
	    sizeof(why)) != 0 || same_addr(&dest, &r->bound)) {
		/* Connecting to ourselves would loop; without a destination there is nowhere to go. */
		fprintf(stderr, "%s: %s -> %s: no usable original destination (%s); closed\n", name, cn->a, cn->b,
		    why[0] ? why : "it is this relay");
		release_records(r, cn);
		cn->dead = 1;
		return;
	}
	wfpb_addr_format(&dest, cn->d);
	/* The upstream connection carries the accepted connection's records. */
	if (wfpb_submit_connect(r->c, cn->acc.has_records && r->carry_records ? cn->acc.records : NULL, NULL, 0, &dest,
	    NULL, CONNECT_TIMEOUT_MS, &cn->up_sock, NULL, cn, NULL) != 0) {
		fprintf(stderr, "%s: %s -> %s => %s: %s\n", name, cn->a, cn->b, cn->d, wfpb_errmsg(r->c));
		release_records(r, cn);
		cn->dead = 1;
		return;
	}
	cn->state = CONNECTING;
}

/* A Relay completed: both connections are here, the upstream one connected with the records. */
static void
on_relayed(struct relay *r, struct conn *cn, const struct wfpb_completion *done)
{
	char	m_in[32], m_out[32];

	if (arrived(r, cn, done, "relay") != 0)
		return;
	r->relayed++;
	wfpb_addr_format(&cn->rel.peer, cn->a);
	wfpb_addr_format(&cn->rel.local, cn->b);
	wfpb_addr_format(&cn->rel.remote, cn->d);
	if (!r->quiet)
		printf("%s: accepted %s -> %s%s, upstream => %s%s (records %s)\n", name, cn->a, cn->b,
		    mark_text(cn->rel.accepted, m_in, sizeof(m_in)), cn->d, mark_text(cn->rel.upstream, m_out,
		    sizeof(m_out)), cn->rel.records_error == 0 ? "applied" : "none");
	/* The connection owns both sockets now. */
	if (start_relaying(cn, (sock_t)cn->rel.accepted, (sock_t)cn->rel.upstream, 0) != 0)
		cn->dead = 1;
	cn->rel.accepted = cn->rel.upstream = WFPB_SOCKET_NONE;
}

/* A Connect completed: the pair relays. Records it did not carry go back to the broker. */
static void
on_connected(struct relay *r, struct conn *cn, const struct wfpb_completion *done)
{
	char	m_in[32], m_out[32];
	sock_t	down;

	/* Records of a session the broker ended went with it: nothing to release (and no submit to reopen it). */
	if ((done->rc != 0 || !r->carry_records) && done->rc != WFPB_E_RESTARTED)
		release_records(r, cn);
	if (done->rc != 0) {
		/* This one alone: a dead upstream times out without holding up the others. */
		fprintf(stderr, "%s: %s -> %s => %s: %s\n", name, cn->a, cn->b, cn->d, done->message);
		cn->dead = 1;
		return;
	}
	r->relayed++;
	if (!r->quiet)
		printf("%s: accepted %s -> %s%s, upstream => %s%s (records %s)\n", name, cn->a, cn->b,
		    mark_text(cn->acc.sock, m_in, sizeof(m_in)), cn->d, mark_text(cn->up_sock, m_out, sizeof(m_out)),
		    cn->acc.has_records && r->carry_records ? "applied" : cn->acc.has_records ? "withheld" : "none");
	down = (sock_t)cn->acc.sock;
	cn->acc.sock = WFPB_SOCKET_NONE;	/* the connection owns both sockets now */
	if (start_relaying(cn, down, (sock_t)cn->up_sock, 0) != 0)
		cn->dead = 1;
}

/* Everything the broker has answered. 0, or -1 when the session is gone. */
static int
on_answers(struct relay *r)
{
	struct wfpb_completion	done[16];
	struct conn		*cn;
	int			i, k;

	for (;;) {
		for (i = 0; i < 16; i++)
			done[i] = (struct wfpb_completion)WFPB_COMPLETION_INIT;
		if ((k = wfpb_complete(r->c, done, 16, 0)) <= 0)
			break;
		for (i = 0; i < k; i++) {
			if ((cn = done[i].user) == NULL) {	/* a Release */
				if (done[i].rc != 0 && done[i].status != WFPBROKER_STATUS_NOT_FOUND)
					fprintf(stderr, "%s: release records: %s\n", name, done[i].message);
			} else if (cn->state == ACCEPTING && !r->pair) {
				on_relayed(r, cn, &done[i]);
			} else if (cn->state == ACCEPTING) {
				on_accepted(r, cn, &done[i]);
			} else {
				on_connected(r, cn, &done[i]);
			}
		}
	}
	if (k == WFPB_E_RESTARTED) {
		/* Its connections relay on; new ones wait in the listener's queue until the next session. */
		if (!r->down)
			printf("%s: the broker ended the session (restart?); opening a new one\n", name);
		r->down = 1;
		return 0;
	}
	if (k < 0) {
		fprintf(stderr, "%s: the broker session ended: %s\n", name, wfpb_strerror(k));
		return -1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	struct wfpb_open_opts	o = WFPB_OPEN_OPTS_INIT;
#ifdef _WIN32
	wfpb_socket_t		notice = WFPB_SOCKET_NONE;
#endif
	struct relay		r = { .accepts = 32, .in_flight = 48, .context_kind = RELAY_CONTEXT_AUTO,
				    .carry_records = 1, .listener = -1 };
	struct wfpb_addr	listen_at;
	struct pollfd		*pfd = NULL;
	struct conn		**owner = NULL;
	char			err[256], a[WFPB_ADDR_STRLEN];
	const char		*listen_arg = NULL, *to_arg = NULL;
	unsigned		cap = 0, n, first;
	int			opt, direct_mode = 0;

	while ((opt = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
		switch (opt) {
		case 'e': o.endpoint = optarg; break;
		case 'k': o.server_key_path = optarg; break;
		case 'c': o.client_key_path = optarg; break;
		case 'n': name = optarg; break;
		case 'l': listen_arg = optarg; break;
		case 'L': r.declared = optarg; break;
		case 't': to_arg = optarg; break;
		case 'R': r.carry_records = 0; break;
		case 'P': r.pair = 1; break;
		case 'D': direct_mode = 1; break;
		case 'q': r.quiet = 1; break;
		case 'h': usage_exit(0); break;
		case 'V': printf("wfpb-relay %s (libwfpb %s)\n", WFPB_VERSION_STRING, wfpb_version()); return 0;
		case 'x':
			if (relay_context_kind(optarg, &r.context_kind) != 0) {
				fprintf(stderr, "%s: --context %s: not one of auto, wfpsampler, wfpb, none\n", name,
				    optarg);
				return 2;
			}
			break;
		case 'm':
			if (parse_count(optarg, &r.max_conns) != 0) {
				fprintf(stderr, "%s: --max-connections %s: not a number of connections (1..)\n", name,
				    optarg);
				return 2;
			}
			break;
		case 'A':
			if (parse_count(optarg, &r.accepts) != 0) {
				fprintf(stderr, "%s: --accepts %s: not a number of Accepts (1..)\n", name, optarg);
				return 2;
			}
			break;
		case 'I':
			if (parse_count(optarg, &r.in_flight) != 0) {
				fprintf(stderr, "%s: --in-flight %s: not a number of requests (1..)\n", name, optarg);
				return 2;
			}
			break;
		default: usage();
		}
	}
	/* One of --listen (a listener of the relay's own) and --listener (one the broker declares). */
	if (optind != argc || (listen_arg == NULL) == (r.declared == NULL) ||
	    (listen_arg != NULL && wfpb_addr_parse(listen_arg, &listen_at) != 0) ||
	    (to_arg != NULL && wfpb_addr_parse(to_arg, &r.to) != 0) || (direct_mode && r.declared != NULL))
		usage();
	r.has_to = to_arg != NULL;
	/* What only the relay can do (withhold the records, read a context its own way) takes the pair. */
	if (!r.carry_records || r.context_kind != RELAY_CONTEXT_AUTO)
		r.pair = 1;
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
		if (to_arg == NULL || (r.listener = direct_listen(&listen_at, &r.to)) < 0)
			return to_arg == NULL ? (usage(), 2) : 1;
#else
		fprintf(stderr, "%s: --direct is a Linux benchmark baseline\n", name);
		return 2;
#endif
	} else {
		report_own_mark_privilege();
		o.nonblocking_sockets = 1;	/* the loop's sockets are non-blocking; they arrive so */
		o.reconnect = 1;		/* a broker's restart is survived */
		if (wfpb_open(&o, &r.c, err, sizeof(err)) != 0) {
			fprintf(stderr, "%s: %s\n", name, err);
			return 1;
		}
		if (r.declared == NULL && wfpb_listen(r.c, &listen_at, 0, &r.lid, &r.bound) != 0) {
			fprintf(stderr, "%s: listen %s: %s\n", name, listen_arg, wfpb_errmsg(r.c));
			return 1;
		}
#ifdef _WIN32
		if (wfpb_notify_socket(r.c, &notice) != 0) {
			fprintf(stderr, "%s: %s\n", name, wfpb_errmsg(r.c));
			return 1;
		}
#endif
		if (r.declared != NULL)
			printf("%s: accepting on the broker's listener %s, forwarding to %s%s\n", name, r.declared,
			    to_arg ? to_arg : "the original destination", r.carry_records ? "" : ", without records");
		else {
			wfpb_addr_format(&r.bound, a);
			printf("%s: listening on %s, forwarding to %s%s\n", name, a,
			    to_arg ? to_arg : "the original destination", r.carry_records ? "" : ", without records");
		}
	}

	/* The loop: the broker's answers (or the --direct listener) first in the set, then every relayed socket. */
	for (;;) {
		if (r.c != NULL && top_up_accepts(&r) != 0)
			return 1;
		if (r.max_conns != 0 && r.started >= r.max_conns && r.accepting == 0 && r.list == NULL)
			break;
		first = 0;
		if (cap == 0) {
			if ((pfd = malloc(64 * sizeof(*pfd))) == NULL || (owner = malloc(64 * sizeof(*owner))) == NULL)
				return 1;
			cap = 64;
		}
#ifdef _WIN32
		pfd[0].fd = (SOCKET)notice;	/* readable while answers wait (--direct is Linux only) */
#else
		/* While the session is down its handle is the old one's: not waited on, asked again soon. */
		pfd[0].fd = r.c == NULL ? r.listener : r.down ? -1 : (int)wfpb_wait_handle(r.c);
#endif
		pfd[0].events = POLLIN;
		first = 1;
		n = poll_set(r.list, &pfd, &owner, &cap, first);
#ifdef _WIN32
		if (poll(pfd, n, r.down ? 200 : -1) < 0)
			return 1;
#else
		if (poll(pfd, n, r.down ? 200 : -1) < 0 && errno != EINTR)
			return 1;
#endif
		if (pfd[0].revents != 0) {
			if (r.c != NULL && on_answers(&r) != 0)
				return 1;
#ifdef __linux__
			while (r.c == NULL && (r.max_conns == 0 || r.started < r.max_conns) &&
			    direct_accept(r.listener, &r.to, &r.list, &r.started, r.quiet))
				;
#endif
		}
		relay_step(&r.list, pfd, owner, first, n);
	}
	printf("%s: relayed %lu connections, the --max-connections bound; exiting\n", name, r.relayed);
	wfpb_close(r.c);
	free(pfd);
	free(owner);
	return 0;
}
