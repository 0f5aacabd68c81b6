/*
 * wfpb-relay: a transparent relay built on libwfpb, and the example to copy.
 *
 *   wfpb-relay [--endpoint PATH] [--server-key FILE] [--client-key FILE]
 *              --listen ADDR:PORT [--to ADDR:PORT]
 *
 * The broker owns every socket: it creates the listener, accepts each
 * connection (querying its redirect records and context with the privileges
 * the relay does not have), and connects upstream with those records applied
 * before the connect, so the next hop — or WFP — knows this connection is the
 * continuation of the one accepted. The relay only moves bytes. Without --to
 * the upstream is the original destination from the redirect context.
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

static void
usage(void)
{
	fprintf(stderr, "usage: wfpb-relay [--endpoint PATH] [--server-key FILE] [--client-key FILE] "
	    "--listen ADDR:PORT [--to ADDR:PORT]\n");
	exit(2);
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
	int			i;

	for (i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--endpoint") == 0)
			o.endpoint = argv[i + 1];
		else if (strcmp(argv[i], "--server-key") == 0)
			o.server_key_path = argv[i + 1];
		else if (strcmp(argv[i], "--client-key") == 0)
			o.client_key_path = argv[i + 1];
		else if (strcmp(argv[i], "--listen") == 0)
			listen_arg = argv[i + 1];
		else if (strcmp(argv[i], "--to") == 0)
			to_arg = argv[i + 1];
		else
			usage();
	}
	if (i != argc || listen_arg == NULL || wfpb_addr_parse(listen_arg, &listen_at) != 0 ||
	    (to_arg != NULL && wfpb_addr_parse(to_arg, &to) != 0))
		usage();
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);

	if (wfpb_open(&o, &c, err, sizeof(err)) != 0) {
		fprintf(stderr, "wfpb-relay: %s\n", err);
		return 1;
	}
	if (wfpb_listen(c, &listen_at, 0, &lid, &bound) != 0) {
		fprintf(stderr, "wfpb-relay: listen %s: %s\n", listen_arg, wfpb_errmsg(c));
		return 1;
	}
	wfpb_addr_format(&bound, a);
	printf("wfpb-relay: listening on %s, forwarding to %s\n", a, to_arg ? to_arg : "the original destination");

	for (;;) {
		struct wfpb_accepted	acc;
		struct pair		*p;
		pthread_t		t;
		wfpb_socket_t		up;
		int			rc;

		rc = wfpb_accept(c, lid, ACCEPT_TIMEOUT_MS, 0, &acc);
		if (rc == WFPB_E_STATUS && strncmp(wfpb_errmsg(c), "TIMEOUT", 7) == 0)
			continue;
		if (rc != 0) {
			fprintf(stderr, "wfpb-relay: accept: %s\n", wfpb_errmsg(c));
			return 1;
		}
		wfpb_addr_format(&acc.peer, a);
		wfpb_addr_format(&acc.local, b);
		if (to_arg != NULL) {
			dest = to;
		} else if (original_destination(&acc, &dest) != 0 || same_addr(&dest, &bound)) {
			/* Connecting to ourselves would loop; without a destination there is nowhere to go. */
			fprintf(stderr, "wfpb-relay: %s -> %s: no usable original destination; closed\n", a, b);
			wfpb_accepted_free(&acc);
			continue;
		}
		wfpb_addr_format(&dest, d);
		/* The upstream connection carries the accepted connection's records. */
		rc = wfpb_connect(c, acc.has_records ? acc.records : NULL, NULL, 0, &dest, NULL, CONNECT_TIMEOUT_MS,
		    &up, NULL);
		if (acc.has_records && wfpb_release(c, acc.records) != 0)
			fprintf(stderr, "wfpb-relay: release records: %s\n", wfpb_errmsg(c));
		if (rc != 0) {
			fprintf(stderr, "wfpb-relay: %s -> %s => %s: %s\n", a, b, d, wfpb_errmsg(c));
			wfpb_accepted_free(&acc);
			continue;
		}
		printf("wfpb-relay: %s -> %s => %s (records %s)\n", a, b, d, acc.has_records ? "applied" : "none");
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
}
