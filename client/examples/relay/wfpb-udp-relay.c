/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wfpb-udp-relay: a transparent UDP relay built on libwfpb, the UDP example to copy (Linux).
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
 * One thread, one poll loop; the broker's answers arrive on libwfpb's wait handle.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "wfpb.h"

#define FLOWS_WAITING	4u
#define FLOW_TIMEOUT_MS	30000u

struct flow {
	struct flow	*next;
	struct wfpb_flow f;
	uint64_t	last_us;	/* the last datagram either way */
	int		waiting;	/* a Flow request at the broker, not yet answered */
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
mark_of(int s, char *buf, size_t cap)
{
	uint32_t	mark = 0;
	socklen_t	len = sizeof(mark);

	buf[0] = '\0';
	if (getsockopt(s, SOL_SOCKET, SO_MARK, &mark, &len) == 0)
		snprintf(buf, cap, " mark 0x%x", mark);
	return buf;
}

/* One datagram from `from` to `to`, if one waits: 1 moved, 0 none, -1 the flow is broken. */
static int
move(int from, int to)
{
	char	buf[65536];
	ssize_t	n = recv(from, buf, sizeof(buf), MSG_DONTWAIT);

	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
	return send(to, buf, (size_t)n, MSG_DONTWAIT) < 0 && errno != EAGAIN ? -1 : 1;
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
	struct wfpb_open_opts	o = WFPB_OPEN_OPTS_INIT;
	struct wfpb_completion	done[8];
	struct wfpb_addr	at, to, bound;
	struct wfpb_client	*c;
	struct flow		*list = NULL, *fl, **pp;
	struct pollfd		pfd[1 + 2 * 256];
	struct flow		*owner[256];
	char			err[256], a[WFPB_ADDR_STRLEN], b[WFPB_ADDR_STRLEN], d[WFPB_ADDR_STRLEN], m[32];
	unsigned long		max_flows = 0, started = 0, ended = 0, idle_ms = 10000;
	unsigned		waiting = 0, n, i;
	uint64_t		lid, now;
	unsigned		flags = 0;
	int			opt, has_to = 0, has_at = 0, k;

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
	if (wfpb_listen_udp(c, &at, &lid, &bound) != 0) {
		fprintf(stderr, "%s: listen %s: %s\n", name, argv[optind - 1], wfpb_errmsg(c));
		return 1;
	}
	wfpb_addr_format(&bound, a);
	printf("%s: listening on %s (udp), forwarding to %s\n", name, a, has_to ? "the --to address" :
	    "the original destination");
	for (;;) {
		/* Flows waiting at the broker, for the next new flows. */
		while (waiting < FLOWS_WAITING && (max_flows == 0 || started + waiting < max_flows)) {
			if ((fl = calloc(1, sizeof(*fl))) == NULL)
				break;
			fl->f = (struct wfpb_flow)WFPB_FLOW_INIT;
			if (wfpb_submit_flow(c, lid, has_to ? &to : NULL, flags, FLOW_TIMEOUT_MS, &fl->f, fl, NULL) != 0) {
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
		pfd[0].fd = (int)wfpb_wait_handle(c);
		pfd[0].events = POLLIN;
		for (n = 0, fl = list; fl != NULL && n < 256; fl = fl->next) {
			if (fl->waiting)
				continue;
			pfd[1 + 2 * n] = (struct pollfd){ .fd = (int)fl->f.reply, .events = POLLIN };
			pfd[2 + 2 * n] = (struct pollfd){ .fd = (int)fl->f.upstream, .events = POLLIN };
			owner[n++] = fl;
		}
		if (poll(pfd, 1 + 2 * n, 200) < 0 && errno != EINTR)
			return 1;
		now = wfpb_monotonic_us();
		for (i = 0; i < n; i++) {
			fl = owner[i];
			if (pfd[1 + 2 * i].revents && (k = move((int)fl->f.reply, (int)fl->f.upstream)) != 0)
				fl->last_us = k > 0 ? now : 0;
			if (pfd[2 + 2 * i].revents && (k = move((int)fl->f.upstream, (int)fl->f.reply)) != 0)
				fl->last_us = k > 0 ? now : 0;
		}
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
				waiting--;
				fl->last_us = now;
				if (done[i].rc != 0) {
					if (done[i].status != WFPBROKER_STATUS_TIMEOUT)
						fprintf(stderr, "%s: flow: %s\n", name, done[i].message);
					fl->last_us = 0;	/* freed below, not counted */
					fl->f.payload_len = (size_t)-1;
					continue;
				}
				started++;
				wfpb_addr_format(&fl->f.client, a);
				wfpb_addr_format(&fl->f.original_dst, b);
				wfpb_addr_format(&fl->f.remote, d);
				printf("%s: flow %s -> %s, upstream => %s%s (%zu bytes %s)\n", name, a, b, d,
				    mark_of((int)fl->f.upstream, m, sizeof(m)), fl->f.payload_len,
				    fl->f.forwarded ? "forwarded" : "held");
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
			else
				fl->f.payload_len = 0;
			wfpb_flow_free(&fl->f);
			free(fl);
		}
	}
	printf("%s: %lu flows ended, the --max-flows bound; exiting\n", name, ended);
	wfpb_close(c);
	return 0;
}
