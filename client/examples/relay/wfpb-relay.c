/*
 * wfpb-relay: a transparent relay built on libwfpb, and the example to copy.
 *
 *   wfpb-relay [--endpoint PATH] [--server-key FILE] [--client-key FILE]
 *              [--name NAME] [--no-records] [--max-connections N]
 *              --listen ADDR:PORT [--to ADDR:PORT]
 *
 * The broker owns every socket: it creates the listener, accepts each
 * connection (querying its redirect records and context with the privileges
 * the relay does not have), and connects upstream with those records applied
 * before the connect, so the next hop — or WFP — knows this connection is the
 * continuation of the one accepted. The relay only moves bytes. Without --to
 * the upstream is the original destination from the redirect context.
 *
 * --no-records connects upstream without the accepted connection's records:
 * what a proxy that cannot carry them does, and how cooperating proxies end
 * up redirecting each other's connections forever (tests/integration/
 * proxy_loop.sh shows it). On Linux each line also shows the socket marks,
 * which an unprivileged process may read but not set.
 *
 * One thread per relayed connection; the broker session is used by the main
 * thread only (a libwfpb client is not thread-safe).
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "wfpb.h"

#define ACCEPT_TIMEOUT_MS	30000u
#define CONNECT_TIMEOUT_MS	10000u
#define CONTEXT_HOP_LEN		19u	/* family 1, address 16, port 2 (big-endian) */

struct pair {
	int	down;	/* the accepted client connection */
	int	up;	/* the connection to the destination */
};

static const char *name = "wfpb-relay";

static void
usage(void)
{
	fprintf(stderr, "usage: wfpb-relay [--endpoint PATH] [--server-key FILE] [--client-key FILE] "
	    "[--name NAME] [--no-records] [--max-connections N] --listen ADDR:PORT [--to ADDR:PORT]\n");
	exit(2);
}

/* " mark 0x..." for a socket on Linux, "" elsewhere. */
static const char *
mark_text(int fd, char *buf, size_t size)
{
	buf[0] = '\0';
#ifdef SO_MARK
	{
		unsigned	m = 0;
		socklen_t	len = sizeof(m);

		if (getsockopt(fd, SOL_SOCKET, SO_MARK, &m, &len) == 0)
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

/* The redirect context holds the original remote, then the original destination. */
static int
original_destination(const struct wfpb_accepted *acc, struct wfpb_addr *out)
{
	const uint8_t *hop;

	if (acc->context == NULL || acc->context_len < 2 * CONTEXT_HOP_LEN)
		return -1;
	hop = acc->context + CONTEXT_HOP_LEN;
	memset(out, 0, sizeof(*out));
	out->family = hop[0];
	if (wfpb_addr_len(out->family) == 0)
		return -1;
	memcpy(out->addr, hop + 1, wfpb_addr_len(out->family));
	out->port = (uint16_t)((hop[17] << 8) | hop[18]);
	return 0;
}

static int
same_addr(const struct wfpb_addr *a, const struct wfpb_addr *b)
{
	return a->family == b->family && a->port == b->port && memcmp(a->addr, b->addr, 16) == 0;
}

/* Copies what one side has to the other; on EOF passes the half-close on. */
static int
pump_once(int from, int to, int *open_from)
{
	char	buf[16384];
	ssize_t	n = read(from, buf, sizeof(buf)), off = 0, w;

	if (n <= 0) {
		shutdown(to, SHUT_WR);
		*open_from = 0;
		return n < 0 && errno != ECONNRESET ? -1 : 0;
	}
	while (off < n) {
		if ((w = write(to, buf + off, (size_t)(n - off))) < 0)
			return -1;
		off += w;
	}
	return 0;
}

static void *
relay_pair(void *arg)
{
	struct pair	*p = arg;
	int		down_open = 1, up_open = 1;

	while (down_open || up_open) {
		struct pollfd pfd[2] = {
			{ .fd = down_open ? p->down : -1, .events = POLLIN },
			{ .fd = up_open ? p->up : -1, .events = POLLIN },
		};

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if ((pfd[0].revents & (POLLIN | POLLHUP | POLLERR)) && pump_once(p->down, p->up, &down_open) != 0)
			break;
		if ((pfd[1].revents & (POLLIN | POLLHUP | POLLERR)) && pump_once(p->up, p->down, &up_open) != 0)
			break;
	}
	close(p->down);
	close(p->up);
	free(p);
	return NULL;
}

int
main(int argc, char **argv)
{
	struct wfpb_open_opts	o = { 0 };
	struct wfpb_client	*c;
	struct wfpb_addr	listen_at, to, bound, dest;
	char			err[256], a[WFPB_ADDR_STRLEN], b[WFPB_ADDR_STRLEN], d[WFPB_ADDR_STRLEN];
	const char		*listen_arg = NULL, *to_arg = NULL;
	uint64_t		lid;
	unsigned long		max_conns = 0, relayed = 0;
	int			i, carry_records = 1;

	for (i = 1; i < argc; i++) {
		const char *v = argv[i + 1];

		if (strcmp(argv[i], "--no-records") == 0) {
			carry_records = 0;
			continue;
		}
		if (i + 1 >= argc)
			usage();
		i++;
		if (strcmp(argv[i - 1], "--name") == 0)
			name = v;
		else if (strcmp(argv[i - 1], "--endpoint") == 0)
			o.endpoint = v;
		else if (strcmp(argv[i - 1], "--server-key") == 0)
			o.server_key_path = v;
		else if (strcmp(argv[i - 1], "--client-key") == 0)
			o.client_key_path = v;
		else if (strcmp(argv[i - 1], "--listen") == 0)
			listen_arg = v;
		else if (strcmp(argv[i - 1], "--to") == 0)
			to_arg = v;
		else if (strcmp(argv[i - 1], "--max-connections") == 0 && (max_conns = strtoul(v, NULL, 10)) > 0)
			continue;
		else
			usage();
	}
	if (i != argc || listen_arg == NULL || wfpb_addr_parse(listen_arg, &listen_at) != 0 ||
	    (to_arg != NULL && wfpb_addr_parse(to_arg, &to) != 0))
		usage();
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
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
		struct wfpb_accepted	acc;
		struct pair		*p;
		pthread_t		t;
		wfpb_socket_t		up;
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
		} else if (original_destination(&acc, &dest) != 0 || same_addr(&dest, &bound)) {
			/* Connecting to ourselves would loop; without a destination there is nowhere to go. */
			fprintf(stderr, "%s: %s -> %s: no usable original destination; closed\n", name, a, b);
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
		printf("%s: accepted %s -> %s%s, upstream => %s%s (records %s)\n", name, a, b,
		    mark_text((int)acc.sock, m_in, sizeof(m_in)), d, mark_text((int)up, m_out, sizeof(m_out)),
		    records != NULL ? "applied" : acc.has_records ? "withheld" : "none");
		if ((p = malloc(sizeof(*p))) == NULL) {
			close((int)up);
			wfpb_accepted_free(&acc);
			continue;
		}
		p->down = (int)acc.sock;
		p->up = (int)up;
		acc.sock = WFPB_SOCKET_NONE;	/* the pair owns it now */
		wfpb_accepted_free(&acc);
		if (pthread_create(&t, NULL, relay_pair, p) != 0) {
			close(p->down);
			close(p->up);
			free(p);
			continue;
		}
		pthread_detach(t);
	}
	printf("%s: relayed %lu connections, the --max-connections bound; exiting\n", name, relayed);
	wfpb_close(c);
	return 0;
}
