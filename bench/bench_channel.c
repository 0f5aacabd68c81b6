/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench-channel WFPBROKERD WFPBCTL: wfpbroker against its limits and a peer,
 * every figure measured in this one run on this machine (bench/README.md).
 *
 *   raw ping-pong   two processes, a Unix stream socket, one message each way
 *                   of the size of an encrypted Ping frame: the limit
 *   broker          authenticated Ping and Fetch round trips through a real
 *                   wfpbrokerd (NK), audit log on and off
 *   D-Bus           the same Fetch as a method call through a private
 *                   dbus-daemon to an sd-bus service (dbus_peer.c)
 *   socket work     Connect with records and Listen+Accept through the
 *                   broker against the same calls made directly
 *   concurrency     1, 8, 32 and 128 clients against a plain epoll echo server
 *   handshakes      NK and IK per second, against their X25519 operations
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "bench.h"
#include "wfpb.h"

#define REPS		5
#define ROUNDS_MAX	4000

/* WFPB_BENCH_QUICK=1 (the test suite's smoke run) shrinks rounds and timings, not the table. */
static int	ROUNDS = ROUNDS_MAX;
static double	HS_SECONDS = 1.0;
#define MSG_SIZE	56	/* a 32-byte-payload Ping: 2 + 38 + 16 */

/* Where the peer process runs relative to this one (-1: anywhere): placement dominates small round trips. */
static int peer_cpu;

static void
set_cpu(pid_t pid, int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu % (int)sysconf(_SC_NPROCESSORS_ONLN), &set);
	(void)sched_setaffinity(pid, sizeof(set), &set);
}

/* Lets pid run on every core again (undoes set_cpu). */
static void
set_any_cpu(pid_t pid)
{
	cpu_set_t	all;
	int		cpu;

	CPU_ZERO(&all);
	for (cpu = 0; cpu < (int)sysconf(_SC_NPROCESSORS_ONLN); cpu++)
		CPU_SET(cpu, &all);
	(void)sched_setaffinity(pid, sizeof(all), &all);
}

static int
full_io(int fd, void *p, size_t n, int wr)
{
	size_t	done = 0;
	ssize_t	k;

	while (done < n) {
		k = wr ? write(fd, (char *)p + done, n - done) : read(fd, (char *)p + done, n - done);
		if (k <= 0)
			return -1;
		done += (size_t)k;
	}
	return 0;
}

/*
 * The limit: the same wait pattern as the real path (client poll() then
 * recv(), server epoll_wait() then recv()/send()), with no framing, crypto or
 * protobuf, so the ratio isolates what the broker adds.
 */
static struct stats
raw_pingpong(void)
{
	static double		lat[ROUNDS_MAX];
	struct epoll_event	ev = { .events = EPOLLIN };
	struct pollfd		pfd;
	char			buf[MSG_SIZE];
	int			sv[2], i, ep;
	pid_t			pid;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
		exit(1);
	if ((pid = fork()) == 0) {
		if (peer_cpu >= 0)
			set_cpu(0, peer_cpu);
		close(sv[0]);
		ep = epoll_create1(0);
		epoll_ctl(ep, EPOLL_CTL_ADD, sv[1], &ev);
		for (;;) {
			if (epoll_wait(ep, &ev, 1, -1) != 1 || full_io(sv[1], buf, sizeof(buf), 0) != 0 ||
			    full_io(sv[1], buf, sizeof(buf), 1) != 0)
				_exit(0);
		}
	}
	close(sv[1]);
	memset(buf, 7, sizeof(buf));
	pfd.fd = sv[0];
	pfd.events = POLLIN;
	for (i = -200; i < ROUNDS; i++) {	/* 200 rounds of warm-up */
		double t0 = now_s();

		full_io(sv[0], buf, sizeof(buf), 1);
		poll(&pfd, 1, -1);
		full_io(sv[0], buf, sizeof(buf), 0);
		if (i >= 0)
			lat[i] = now_s() - t0;
	}
	close(sv[0]);
	waitpid(pid, NULL, 0);
	return summarize(lat, ROUNDS);
}

static struct stats
broker_ping(struct wfpb_open_opts *o)
{
	static double		lat[ROUNDS_MAX];
	struct wfpb_client	*c;
	char			err[256];
	uint8_t			payload[32] = { 0 };
	int			i;

	if (wfpb_open(o, &c, err, sizeof(err)) != 0) {
		fprintf(stderr, "bench: %s\n", err);
		exit(1);
	}
	for (i = 0; i < 200; i++)
		if (wfpb_ping(c, payload, sizeof(payload), NULL) != 0)
			exit(1);
	for (i = 0; i < ROUNDS; i++) {
		double t0 = now_s();

		if (wfpb_ping(c, payload, sizeof(payload), NULL) != 0) {
			fprintf(stderr, "bench: ping: %s\n", wfpb_errmsg(c));
			exit(1);
		}
		lat[i] = now_s() - t0;
	}
	wfpb_close(c);
	return summarize(lat, ROUNDS);
}

/* Stash once, then Fetch round trips: the broker request DESIGN.md §9 names. */
static struct stats
broker_fetch(struct wfpb_open_opts *o)
{
	static double		lat[ROUNDS_MAX];
	struct wfpb_client	*c;
	uint8_t			blob[24] = { 1 }, h[WFPB_HANDLE_LEN], *out;
	size_t			len;
	int			i;

	if (wfpb_open(o, &c, NULL, 0) != 0 || wfpb_stash(c, blob, sizeof(blob), 0, h) != 0)
		exit(1);
	for (i = -200; i < ROUNDS; i++) {
		double t0 = now_s();

		if (wfpb_fetch(c, h, &out, &len) != 0)
			exit(1);
		wfpb_free(out);
		if (i >= 0)
			lat[i] = now_s() - t0;
	}
	wfpb_close(c);
	return summarize(lat, ROUNDS);
}

/* A plain single-threaded epoll echo server on a Unix socket: the concurrency baseline. */
static pid_t
start_echo_server(const char *path)
{
	struct sockaddr_un	sa = { .sun_family = AF_UNIX };
	struct epoll_event	ev, evs[64];
	char			buf[4096];
	int			l, ep, n, i, fd;
	ssize_t			k;
	pid_t			pid;

	if (strlen(path) >= sizeof(sa.sun_path))
		exit(1);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if ((l = socket(AF_UNIX, SOCK_STREAM, 0)) < 0 || bind(l, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    listen(l, 256) != 0)
		exit(1);
	if ((pid = fork()) != 0) {
		close(l);
		return pid;
	}
	/* A client that leaves with echoes unread (the pipelined run) must not kill the server. */
	signal(SIGPIPE, SIG_IGN);
	ep = epoll_create1(0);
	ev.events = EPOLLIN;
	ev.data.fd = l;
	epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev);
	for (;;) {
		n = epoll_wait(ep, evs, 64, -1);
		for (i = 0; i < n; i++) {
			if (evs[i].data.fd == l) {
				if ((fd = accept(l, NULL, NULL)) >= 0) {
					ev.events = EPOLLIN;
					ev.data.fd = fd;
					epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
				}
				continue;
			}
			fd = evs[i].data.fd;
			if ((k = read(fd, buf, sizeof(buf))) <= 0 || write(fd, buf, (size_t)k) != k) {
				epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
				close(fd);
			}
		}
	}
}

#define CONC_SAMPLES	20000	/* latencies each client keeps for the p99 */
#define PIPE_DEPTH	32	/* requests in flight on one session */
#define PIPE_MSG	56	/* an encrypted 32-byte frame, as raw_pingpong's */

/* A pipelined run that cannot go on says where. */
static void
pipe_fail(int line)
{
	fprintf(stderr, "bench: the pipelined run failed (bench_channel.c:%d)\n", line);
	exit(1);
}

/* One connection to the echo server with PIPE_DEPTH messages always in flight: requests/s. */
static double
echo_pipelined(const char *path, double seconds)
{
	struct sockaddr_un	sa = { .sun_family = AF_UNIX };
	char			buf[PIPE_DEPTH * PIPE_MSG] = { 0 };
	uint64_t		got = 0, done;
	double			t0, t;
	ssize_t			k;
	int			fd, i;

	memcpy(sa.sun_path, path, strlen(path) + 1);
	if ((fd = socket(AF_UNIX, SOCK_STREAM, 0)) < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		pipe_fail(__LINE__);
	for (i = 0; i < PIPE_DEPTH; i++)
		if (full_io(fd, buf, PIPE_MSG, 1) != 0)
			pipe_fail(__LINE__);
	t0 = now_s();
	do {
		/* Every message back is answered by a new one: PIPE_DEPTH stay in flight. */
		if ((k = read(fd, buf, sizeof(buf))) <= 0)
			pipe_fail(__LINE__);
		done = (got + (uint64_t)k) / PIPE_MSG - got / PIPE_MSG;
		got += (uint64_t)k;
		for (; done > 0; done--)
			if (full_io(fd, buf, PIPE_MSG, 1) != 0)
				pipe_fail(__LINE__);
	} while ((t = now_s()) - t0 < seconds);
	close(fd);
	return (double)(got / PIPE_MSG) / (t - t0);
}

/* One broker session with PIPE_DEPTH Fetches always in flight (libwfpb's asynchronous calls): requests/s. */
static double
fetch_pipelined(struct wfpb_open_opts *o, double seconds)
{
	static uint8_t		*blobs[PIPE_DEPTH];
	static size_t		lens[PIPE_DEPTH];
	struct wfpb_completion	done[PIPE_DEPTH];
	struct wfpb_client	*c;
	struct pollfd		pfd;
	uint8_t			blob[24] = { 1 }, h[WFPB_HANDLE_LEN];
	uint64_t		completed = 0;
	double			t0, t;
	int			i, n;

	if (wfpb_open(o, &c, NULL, 0) != 0 || wfpb_stash(c, blob, sizeof(blob), 0, h) != 0)
		pipe_fail(__LINE__);
	for (i = 0; i < PIPE_DEPTH; i++) {
		done[i] = (struct wfpb_completion)WFPB_COMPLETION_INIT;
		if (wfpb_submit_fetch(c, h, &blobs[i], &lens[i], (void *)(intptr_t)i, NULL) != 0)
			pipe_fail(__LINE__);
	}
	pfd.fd = (int)wfpb_wait_handle(c);
	pfd.events = POLLIN;
	t0 = now_s();
	do {
		if (poll(&pfd, 1, 5000) != 1 || (n = wfpb_complete(c, done, PIPE_DEPTH, 0)) < 0)
			pipe_fail(__LINE__);
		for (i = 0; i < n; i++) {
			intptr_t slot = (intptr_t)done[i].user;

			if (done[i].rc != 0)
				pipe_fail(__LINE__);
			wfpb_free(blobs[slot]);
			if (wfpb_submit_fetch(c, h, &blobs[slot], &lens[slot], done[i].user, NULL) != 0)
				pipe_fail(__LINE__);
		}
		completed += (uint64_t)n;
	} while ((t = now_s()) - t0 < seconds);
	/* The last ones are collected before the session goes. */
	while (wfpb_in_flight(c) > 0 && (n = wfpb_complete(c, done, PIPE_DEPTH, 5000)) > 0)
		for (i = 0; i < n; i++)
			wfpb_free(blobs[(intptr_t)done[i].user]);
	wfpb_close(c);
	return (double)completed / (t - t0);
}

/* CPU seconds (user + system) a process has used, from /proc. */
static double
proc_cpu_s(pid_t pid)
{
	char			path[64], buf[1024], *p;
	unsigned long long	ut = 0, st = 0;
	FILE			*f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return 0;
	p = fgets(buf, sizeof(buf), f);
	fclose(f);
	/* After the ")" that ends the command name: state is field 3, utime 14, stime 15. */
	if (p == NULL || (p = strrchr(buf, ')')) == NULL ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		return 0;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* CPU seconds used by this process's waited-for children so far. */
static double
children_cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_CHILDREN, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	    ru.ru_stime.tv_usec / 1e6;
}

/* Where the CPU of a concurrency run went, per request. */
struct cpu_split {
	double	server_s, clients_s;
};

struct conc_report {
	long	count;
	double	lat[64];
};

/*
 * N client processes for `seconds`: Fetch or Listen+Release round trips
 * (broker) or ping-pongs (echo). Returns requests/s; *p99 is the 99th
 * percentile round trip over every client's requests.
 */
static double
concurrent(int nclients, double seconds, struct wfpb_open_opts *o, const char *echo_path, int listen_mode,
    double *p99, pid_t server, struct cpu_split *cpu)
{
	double		server0 = proc_cpu_s(server), clients0 = children_cpu_s();
	static double	all[256 * 64];
	int		pfd[2], ready[2], go[2], i;
	long		total = 0;
	size_t		nall = 0;
	pid_t		pids[256];
	char		b;

	if (pipe(pfd) != 0 || pipe(ready) != 0 || pipe(go) != 0 || nclients > 256)
		exit(1);
	for (i = 0; i < nclients; i++) {
		if ((pids[i] = fork()) == 0) {
			static double	lat[CONC_SAMPLES];
			long		count = 0;
			size_t		n = 0, k;
			double		t, t0;

			/* Clients may run anywhere: this measures the machine, not a placement. */
			set_any_cpu(0);
			close(go[1]);
			/* Connected (and, for the broker, past the handshake) before the clock starts. */
			if (echo_path == NULL) {
				struct wfpb_client	*c;
				uint8_t			blob[24] = { 2 }, h[WFPB_HANDLE_LEN], *out;
				size_t			len;
				struct wfpb_addr	any = { .family = WFPB_AF_INET, .addr = { 127, 0, 0, 1 } };
				uint64_t		lid;

				if (wfpb_open(o, &c, NULL, 0) != 0 || wfpb_stash(c, blob, sizeof(blob), 0, h) != 0)
					_exit(1);
				(void)!write(ready[1], "r", 1);
				close(ready[1]);
				(void)!read(go[0], &b, 1);
				t0 = now_s();
				/* Listen is audited durably (its answer waits for the group commit); Release is not. */
				while ((t = now_s()) - t0 < seconds) {
					if (listen_mode) {
						if (wfpb_listen(c, &any, 0, &lid, NULL) != 0 ||
						    wfpb_release_listener(c, lid) != 0)
							break;
						count += 2;
					} else {
						if (wfpb_fetch(c, h, &out, &len) != 0)
							break;
						wfpb_free(out);
						count++;
					}
					if (n < CONC_SAMPLES)
						lat[n++] = now_s() - t;
				}
			} else {
				struct sockaddr_un	sa = { .sun_family = AF_UNIX };
				char			buf[MSG_SIZE] = { 0 };
				int			s = socket(AF_UNIX, SOCK_STREAM, 0);

				memcpy(sa.sun_path, echo_path, strlen(echo_path) + 1);
				if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) != 0)
					_exit(1);
				(void)!write(ready[1], "r", 1);
				close(ready[1]);
				(void)!read(go[0], &b, 1);
				t0 = now_s();
				while ((t = now_s()) - t0 < seconds && full_io(s, buf, sizeof(buf), 1) == 0 &&
				    full_io(s, buf, sizeof(buf), 0) == 0) {
					count++;
					if (n < CONC_SAMPLES)
						lat[n++] = now_s() - t;
				}
			}
			/* The count and an even sample of 64 latencies, in one write (< PIPE_BUF: not interleaved). */
			{
				struct conc_report rep = { .count = count };

				for (k = 0; k < 64; k++)
					rep.lat[k] = n > 0 ? lat[k * n / 64] : 0;
				(void)!write(pfd[1], &rep, sizeof(rep));
			}
			_exit(0);
		}
	}
	close(pfd[1]);
	close(ready[1]);
	close(go[0]);
	/* Every client ready or dead (each closes its end of `ready` either way), then all start at once. */
	while (read(ready[0], &b, 1) == 1)
		;
	close(ready[0]);
	close(go[1]);
	for (i = 0; i < nclients; i++) {
		struct conc_report rep;

		if (full_io(pfd[0], &rep, sizeof(rep), 0) != 0)
			break;
		total += rep.count;
		memcpy(&all[nall], rep.lat, sizeof(rep.lat));
		nall += 64;
	}
	close(pfd[0]);
	for (i = 0; i < nclients; i++)
		waitpid(pids[i], NULL, 0);
	*p99 = nall > 0 ? summarize(all, nall).p99 : 0;
	if (cpu != NULL && total > 0) {
		/* Includes the clients' set-up (handshakes): an upper bound, small against the run. */
		cpu->server_s = (proc_cpu_s(server) - server0) / (double)total;
		cpu->clients_s = (children_cpu_s() - clients0) / (double)total;
	}
	return (double)total / seconds;
}

/* A valid sim record blob (one hop), what a proxy would pass to Connect. */
static void
sim_blob(uint8_t out[35])
{
	memset(out, 0, 35);
	memcpy(out, "WFPS", 4);
	out[4] = 1;
	out[7] = 1;
	out[16] = 4;
	out[17] = 127;
	out[20] = 1;
}

/* A loopback TCP listener in a child that accepts and closes: the destination of the Connect rows. */
static pid_t
start_sink(uint16_t *port)
{
	struct sockaddr_in	sin = { .sin_family = AF_INET };
	socklen_t		len = sizeof(sin);
	int			l = socket(AF_INET, SOCK_STREAM, 0);
	pid_t			pid;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (l < 0 || bind(l, (struct sockaddr *)&sin, sizeof(sin)) != 0 || listen(l, 1024) != 0 ||
	    getsockname(l, (struct sockaddr *)&sin, &len) != 0)
		exit(1);
	*port = ntohs(sin.sin_port);
	if ((pid = fork()) != 0) {
		close(l);
		return pid;
	}
	for (;;) {
		int c = accept(l, NULL, NULL);

		if (c >= 0)
			close(c);
	}
}

/* Connect with records through the broker (socket handed over), then close it. */
static struct stats
broker_connect(struct wfpb_open_opts *o, uint16_t port, int rounds, double *lat)
{
	struct wfpb_client	*c;
	struct wfpb_addr	to = { .family = WFPB_AF_INET, .addr = { 127, 0, 0, 1 }, .port = port };
	uint8_t			blob[35];
	wfpb_socket_t		s;
	int			i;

	sim_blob(blob);
	if (wfpb_open(o, &c, NULL, 0) != 0)
		exit(1);
	for (i = -20; i < rounds; i++) {
		double t0 = now_s();

		if (wfpb_connect(c, NULL, blob, sizeof(blob), &to, NULL, 0, &s, NULL) != 0) {
			fprintf(stderr, "bench: connect: %s\n", wfpb_errmsg(c));
			exit(1);
		}
		close((int)s);
		if (i >= 0)
			lat[i] = now_s() - t0;
	}
	wfpb_close(c);
	return summarize(lat, (size_t)rounds);
}

/* The same socket + connect done directly by the client. */
static struct stats
direct_connect(uint16_t port, int rounds, double *lat)
{
	struct sockaddr_in	sin = { .sin_family = AF_INET, .sin_port = htons(port) };
	int			i;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (i = -20; i < rounds; i++) {
		double	t0 = now_s();
		int	s = socket(AF_INET, SOCK_STREAM, 0);

		if (s < 0 || connect(s, (struct sockaddr *)&sin, sizeof(sin)) != 0)
			exit(1);
		close(s);
		if (i >= 0)
			lat[i] = now_s() - t0;
	}
	return summarize(lat, (size_t)rounds);
}

/* One record-sized append made durable, in the broker's state directory (same file system). */
static struct stats
append_fdatasync(const char *dir, int rounds, double *lat)
{
	char	path[320], rec[200];
	int	fd, i;

	snprintf(path, sizeof(path), "%s/fsync-probe", dir);
	memset(rec, 0x42, sizeof(rec));
	if ((fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0600)) < 0)
		exit(1);
	for (i = -20; i < rounds; i++) {
		double t0 = now_s();

		if (write(fd, rec, sizeof(rec)) != (ssize_t)sizeof(rec) || fdatasync(fd) != 0)
			exit(1);
		if (i >= 0)
			lat[i] = now_s() - t0;
	}
	close(fd);
	unlink(path);
	return summarize(lat, (size_t)rounds);
}

/* Listen on an ephemeral port, one connection in, Accept it (socket handed over), Release: through the broker. */
static struct stats
broker_listen_accept(struct wfpb_open_opts *o, int rounds, double *lat)
{
	struct wfpb_client	*c;
	struct wfpb_addr	any = { .family = WFPB_AF_INET, .addr = { 127, 0, 0, 1 } }, bound;
	struct wfpb_accepted	acc = WFPB_ACCEPTED_INIT;
	uint64_t		lid;
	int			i;

	if (wfpb_open(o, &c, NULL, 0) != 0)
		exit(1);
	for (i = -20; i < rounds; i++) {
		struct sockaddr_in	sin = { .sin_family = AF_INET };
		double			t0 = now_s();
		int			s = socket(AF_INET, SOCK_STREAM, 0);

		if (wfpb_listen(c, &any, 0, &lid, &bound) != 0)
			exit(1);
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sin.sin_port = htons(bound.port);
		if (s < 0 || connect(s, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
		    wfpb_accept(c, lid, 1000, 0, &acc) != 0 || wfpb_release_listener(c, lid) != 0) {
			fprintf(stderr, "bench: listen/accept: %s\n", wfpb_errmsg(c));
			exit(1);
		}
		if (acc.has_records && wfpb_release(c, acc.records) != 0)
			exit(1);
		wfpb_accepted_free(&acc);
		close(s);
		if (i >= 0)
			lat[i] = now_s() - t0;
	}
	wfpb_close(c);
	return summarize(lat, (size_t)rounds);
}

/* The same socket, bind, listen, connect, accept and closes done directly. */
static struct stats
direct_listen_accept(int rounds, double *lat)
{
	int i;

	for (i = -20; i < rounds; i++) {
		struct sockaddr_in	sin = { .sin_family = AF_INET };
		socklen_t		len = sizeof(sin);
		double			t0 = now_s();
		int			l = socket(AF_INET, SOCK_STREAM, 0), s = socket(AF_INET, SOCK_STREAM, 0), a;

		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (l < 0 || s < 0 || bind(l, (struct sockaddr *)&sin, sizeof(sin)) != 0 || listen(l, 128) != 0 ||
		    getsockname(l, (struct sockaddr *)&sin, &len) != 0 ||
		    connect(s, (struct sockaddr *)&sin, sizeof(sin)) != 0 || (a = accept(l, NULL, NULL)) < 0)
			exit(1);
		close(a);
		close(l);
		close(s);
		if (i >= 0)
			lat[i] = now_s() - t0;
	}
	return summarize(lat, (size_t)rounds);
}

/* The channel's crypto per round trip, in one process: seal and open a request, seal and open a response. */
static double
channel_crypto_s(void)
{
	uint8_t		k[32], n[12] = { 0 }, m[48] = { 0 }, c[64], out[48];
	unsigned long long clen, mlen;
	double		t0;
	int		i, iters = ROUNDS;

	randombytes_buf(k, sizeof(k));
	t0 = now_s();
	for (i = 0; i < iters; i++) {
		n[0] = (uint8_t)i;
		crypto_aead_chacha20poly1305_ietf_encrypt(c, &clen, m, 38, NULL, 0, NULL, n, k);
		if (crypto_aead_chacha20poly1305_ietf_decrypt(out, &mlen, NULL, c, clen, NULL, 0, n, k) != 0)
			exit(1);
		crypto_aead_chacha20poly1305_ietf_encrypt(c, &clen, m, 48, NULL, 0, NULL, n, k);
		if (crypto_aead_chacha20poly1305_ietf_decrypt(out, &mlen, NULL, c, clen, NULL, 0, n, k) != 0)
			exit(1);
	}
	return (now_s() - t0) / iters;
}

static double
handshakes_per_s(struct wfpb_open_opts *o)
{
	struct wfpb_client	*c;
	char			err[256];
	double			t0 = now_s(), t;
	long			n = 0;

	do {
		if (wfpb_open(o, &c, err, sizeof(err)) != 0) {
			fprintf(stderr, "bench: %s\n", err);
			exit(1);
		}
		wfpb_close(c);
		n++;
		t = now_s() - t0;
	} while (t < HS_SECONDS);
	return (double)n / t;
}

static double
x25519_per_s(void)
{
	uint8_t	sk[32], pk[32], out[32];
	double	t0 = now_s(), t;
	long	n = 0;

	randombytes_buf(sk, sizeof(sk));
	crypto_scalarmult_base(pk, sk);
	do {
		for (int i = 0; i < 100; i++)
			if (crypto_scalarmult(out, sk, pk) != 0)
				exit(1);
		n += 100;
		t = now_s() - t0;
	} while (t < HS_SECONDS);
	return (double)n / t;
}

static void
spread(const char *label, double *v, double base_median, const char *unit, double scale)
{
	double sorted[REPS];

	memcpy(sorted, v, sizeof(sorted));
	qsort(sorted, REPS, sizeof(double), cmp_double);
	/* Ratios need two decimals; times and rates do not. */
	if (strcmp(unit, "x") == 0)
		printf("%-36s %10.2f %10.2f %10.2f %-6s", label, sorted[0], sorted[REPS / 2], sorted[REPS - 1], unit);
	else
		printf("%-36s %10.1f %10.1f %10.1f %-6s", label, sorted[0] * scale, sorted[REPS / 2] * scale,
		    sorted[REPS - 1] * scale, unit);
	if (base_median > 0)
		printf("  %6.2fx", sorted[REPS / 2] / base_median);
	printf("\n");
}

/* Helpers this run started, stopped however main() ends (an exit(1) included). */
static pid_t	main_pid, helpers[8];
static int	nhelpers;

static void
stop_helpers(void)
{
	int i;

	if (getpid() != main_pid)
		return;
	for (i = 0; i < nhelpers; i++)
		if (helpers[i] > 0 && kill(helpers[i], SIGKILL) == 0)
			waitpid(helpers[i], NULL, 0);
}

static pid_t
helper(pid_t pid)
{
	if (nhelpers < (int)(sizeof(helpers) / sizeof(helpers[0])))
		helpers[nhelpers++] = pid;
	return pid;
}

/* Starts a broker on conf and waits until it answers. */
static pid_t
start_broker(const char *brokerd, const char *conf, struct wfpb_open_opts *o)
{
	pid_t	pid;
	int	i;

	if ((pid = fork()) == 0) {
		if (freopen("/dev/null", "w", stderr) == NULL)
			_exit(127);
		execl(brokerd, brokerd, "--config", conf, (char *)NULL);
		_exit(127);
	}
	for (i = 0; i < 100; i++) {
		struct wfpb_client *c;

		if (wfpb_open(o, &c, NULL, 0) == 0) {
			wfpb_close(c);
			return pid;
		}
		usleep(50000);
	}
	fprintf(stderr, "bench: %s did not start\n", brokerd);
	exit(1);
}

static void
stop(pid_t pid, int sig)
{
	kill(pid, sig);
	waitpid(pid, NULL, 0);
}

int
main(int argc, char **argv)
{
	static double		lat[ROUNDS_MAX];
	static const int	nclients[] = { 1, 8, 32, 128 };
	char			dir[32] = "/tmp/wfpb-bench-", conf[256], sock[256], pub[256], ckey[256];
	char			conf2[256], sock2[256], pub2[256], echo_path[256], cmd[1024], hex[80];
	struct wfpb_open_opts	nk = WFPB_OPEN_OPTS_INIT, ik = WFPB_OPEN_OPTS_INIT, noaudit = WFPB_OPEN_OPTS_INIT;
	struct dbus_peer	bus = { 0 };
	double			raw_med[REPS], raw_p99[REPS], br_med[REPS], br_p99[REPS];
	double			nk_hs[REPS], ik_hs[REPS], x[REPS], nk_ratio[REPS], ik_ratio[REPS];
	double			fe_med[REPS], fe_p99[REPS], fo_med[REPS], db_med[REPS], db_p99[REPS];
	double			pe[REPS], pf[REPS], pf1[REPS], pf199[REPS], pr[REPS], pr1[REPS];
	double			vs_db[REPS], floor_med[REPS];
	double			cn[REPS], cn_raw[REPS], cn_sync[REPS], cn_direct[REPS], cn_ratio[REPS];
	double			la[REPS], la_direct[REPS], la_ratio[REPS], la_parts[REPS];
	double			ce[REPS], ce99[REPS], con[REPS], con99[REPS], coff[REPS], coff99[REPS];
	double			r_on[REPS], r_off[REPS], cl[REPS], cl99[REPS], cln[REPS], cln99[REPS], cl_r[REPS];
	double			cl_ra[REPS], es[REPS], ec[REPS], bs[REPS], bc[REPS];
	uint16_t		sink_port;
	pid_t			pid, pid2, echo_pid, sink_pid;
	FILE			*f;
	int			r, n, socket_rounds;

	if (argc != 3 || sodium_init() < 0) {
		fprintf(stderr, "usage: bench-channel WFPBROKERD WFPBCTL\n");
		return 2;
	}
	if (getenv("WFPB_BENCH_QUICK") != NULL) {
		ROUNDS = 200;
		HS_SECONDS = 0.05;
	}
	socket_rounds = ROUNDS / 8;
	main_pid = getpid();
	atexit(stop_helpers);
	/* mkdtemp's template: six X after the prefix. */
	memset(dir + strlen(dir), 'X', 6);
	if (mkdtemp(dir) == NULL)
		return 1;
	snprintf(conf, sizeof(conf), "%s/conf", dir);
	snprintf(sock, sizeof(sock), "%s/run/b.sock", dir);
	snprintf(pub, sizeof(pub), "%s/state/server.pub", dir);
	snprintf(ckey, sizeof(ckey), "%s/client.key", dir);
	snprintf(cmd, sizeof(cmd), "%s keygen --out %s/client | tail -n 1", argv[2], dir);
	if ((f = popen(cmd, "r")) == NULL || fgets(hex, sizeof(hex), f) == NULL)
		return 1;
	pclose(f);
	hex[strcspn(hex, "\n")] = '\0';
	/*
	 * Two brokers: the default (audit log on), and one with the audit log off for the ratios.
	 * Every client runs as this one user, so the per-user session cap and the audit rate are
	 * lifted: the benchmark measures the broker's work, not its throttles.
	 */
	if ((f = fopen(conf, "w")) == NULL)
		return 1;
	fprintf(f, "[service]\nendpoint = %s\nstate_dir = %s/state\nbackend = sim\nmax_sessions = 1024\nmax_sessions_per_principal = 256\n"
	    "max_sessions_per_user = 1024\n"
	    "[principal bench]\nkey = %s\nops = stash fetch\naudit_rate = 10000000\n"
	    "[principal bench-uid]\nuid = %u\nops = stash fetch listen accept connect apply_foreign admin\n"
	    "audit_rate = 10000000\nlisten = 127.0.0.1/32:*\nconnect = 127.0.0.1/32:*\n", sock, dir, hex,
	    (unsigned)getuid());
	fclose(f);
	snprintf(conf2, sizeof(conf2), "%s/conf-noaudit", dir);
	snprintf(sock2, sizeof(sock2), "%s/run/b2.sock", dir);
	snprintf(pub2, sizeof(pub2), "%s/state2/server.pub", dir);
	if ((f = fopen(conf2, "w")) == NULL)
		return 1;
	fprintf(f, "[service]\nendpoint = %s\nstate_dir = %s/state2\nbackend = sim\nmax_sessions = 1024\nmax_sessions_per_principal = 256\n"
	    "max_sessions_per_user = 1024\naudit = off\n"
	    "[principal bench-uid]\nuid = %u\nops = stash fetch listen\nlisten = 127.0.0.1/32:*\n",
	    sock2, dir, (unsigned)getuid());
	fclose(f);
	nk.endpoint = ik.endpoint = sock;
	nk.server_key_path = ik.server_key_path = pub;
	ik.client_key_path = ckey;
	noaudit.endpoint = sock2;
	noaudit.server_key_path = pub2;
	pid = helper(start_broker(argv[1], conf, &nk));
	pid2 = helper(start_broker(argv[1], conf2, &noaudit));
	if (dbus_peer_start(&bus, dir) != 0) {
		fprintf(stderr, "bench: the D-Bus peer did not start (dbus-daemon, libsystemd)\n");
		return 1;
	}
	helper(bus.daemon);
	helper(bus.service);

	set_cpu(0, 0);
	for (peer_cpu = 0; peer_cpu < 2; peer_cpu++) {
		set_cpu(pid, peer_cpu);
		set_cpu(pid2, peer_cpu);
		set_cpu(bus.daemon, peer_cpu);
		set_cpu(bus.service, peer_cpu);
		for (r = 0; r < REPS; r++) {
			struct stats a = raw_pingpong(), b = broker_ping(&nk), fe = broker_fetch(&nk);
			struct stats fo = broker_fetch(&noaudit), db = dbus_fetch(&bus, ROUNDS, lat);

			raw_med[r] = a.median;
			raw_p99[r] = a.p99;
			br_med[r] = b.median;
			br_p99[r] = b.p99;
			fe_med[r] = fe.median;
			fe_p99[r] = fe.p99;
			fo_med[r] = fo.median;
			db_med[r] = db.median;
			db_p99[r] = db.p99;
			vs_db[r] = fe.median / db.median;
			/* What the channel cannot avoid: the limit plus two seals and two opens. */
			floor_med[r] = a.median + channel_crypto_s();
			nk_hs[r] = handshakes_per_s(&nk);
			ik_hs[r] = handshakes_per_s(&ik);
			x[r] = x25519_per_s();
			/* Time per handshake over the time of the X25519 operations inside it. */
			nk_ratio[r] = (1.0 / nk_hs[r]) / (6.0 / x[r]);
			ik_ratio[r] = (1.0 / ik_hs[r]) / (10.0 / x[r]);
		}
		qsort(raw_med, REPS, sizeof(double), cmp_double);
		printf("\n%s: client on CPU 0, peer (echo server, wfpbrokerd, dbus-daemon + service) on CPU %d\n",
		    peer_cpu == 0 ? "same core" : "cross core", peer_cpu);
		printf("%d repetitions of %d round trips; min / median / max of the per-repetition figure\n",
		    REPS, ROUNDS);
		printf("%-36s %10s %10s %10s %-6s  %s\n", "", "min", "median", "max", "", "ratio to raw");
		spread("raw ping-pong median", raw_med, 0, "us", 1e6);
		spread("raw ping-pong p99", raw_p99, 0, "us", 1e6);
		spread("raw + channel crypto (floor)", floor_med, raw_med[REPS / 2], "us", 1e6);
		spread("broker Ping (NK) median", br_med, raw_med[REPS / 2], "us", 1e6);
		spread("broker Ping (NK) p99", br_p99, 0, "us", 1e6);
		spread("broker Fetch median", fe_med, raw_med[REPS / 2], "us", 1e6);
		spread("broker Fetch p99", fe_p99, 0, "us", 1e6);
		spread("broker Fetch, audit off, median", fo_med, raw_med[REPS / 2], "us", 1e6);
		spread("D-Bus Fetch (sd-bus) median", db_med, raw_med[REPS / 2], "us", 1e6);
		spread("D-Bus Fetch (sd-bus) p99", db_p99, 0, "us", 1e6);
		spread("broker Fetch / D-Bus Fetch", vs_db, 0, "x", 1);
		spread("handshakes NK", nk_hs, 0, "/s", 1);
		spread("handshakes IK", ik_hs, 0, "/s", 1);
		spread("X25519 operations", x, 0, "/s", 1);
		spread("NK handshake / its 6 X25519", nk_ratio, 0, "x", 1);
		spread("IK handshake / its 10 X25519", ik_ratio, 0, "x", 1);
	}
	dbus_peer_stop(&bus);

	/* Socket work, no pinning: through the broker against the same calls made directly. */
	set_any_cpu(0);
	set_any_cpu(pid);
	set_any_cpu(pid2);
	peer_cpu = -1;
	sink_pid = helper(start_sink(&sink_port));
	for (r = 0; r < REPS; r++) {
		char state[300];

		snprintf(state, sizeof(state), "%s/state", dir);
		cn[r] = broker_connect(&nk, sink_port, socket_rounds, lat).median;
		cn_raw[r] = raw_pingpong().median;
		cn_sync[r] = append_fdatasync(state, socket_rounds, lat).median;
		cn_direct[r] = direct_connect(sink_port, socket_rounds, lat).median;
		cn_ratio[r] = cn[r] / (cn_raw[r] + cn_sync[r] + cn_direct[r]);
		la[r] = broker_listen_accept(&nk, socket_rounds, lat).median;
		la_direct[r] = direct_listen_accept(socket_rounds, lat).median;
		la_ratio[r] = la[r] / la_direct[r];
		/* Four round trips (Listen, Accept, two Releases), two of them durable, and the calls themselves. */
		la_parts[r] = la[r] / (4 * cn_raw[r] + 2 * cn_sync[r] + la_direct[r]);
	}
	stop(sink_pid, SIGKILL);
	printf("\nsocket work (sim backend, audit on, no pinning), %d repetitions of %d\n", REPS, socket_rounds);
	printf("%-36s %10s %10s %10s\n", "", "min", "median", "max");
	spread("Connect with records median", cn, 0, "us", 1e6);
	spread("  parts: raw ping-pong", cn_raw, 0, "us", 1e6);
	spread("  parts: append + fdatasync", cn_sync, 0, "us", 1e6);
	spread("  parts: socket + connect, direct", cn_direct, 0, "us", 1e6);
	spread("Connect / sum of its parts", cn_ratio, 0, "x", 1);
	spread("Listen+Accept+Release median", la, 0, "us", 1e6);
	spread("  the same calls, direct", la_direct, 0, "us", 1e6);
	spread("Listen+Accept / direct", la_ratio, 0, "x", 1);
	spread("Listen+Accept / its parts", la_parts, 0, "x", 1);

	/* Throughput: clients on every core against a plain epoll echo server and the brokers. */
	snprintf(echo_path, sizeof(echo_path), "%s/echo.sock", dir);
	echo_pid = helper(start_echo_server(echo_path));
	set_any_cpu(echo_pid);
	for (n = 0; n < (int)(sizeof(nclients) / sizeof(nclients[0])); n++) {
		for (r = 0; r < REPS; r++) {
			struct cpu_split ecpu = { 0 }, bcpu = { 0 };

			ce[r] = concurrent(nclients[n], HS_SECONDS / 2, NULL, echo_path, 0, &ce99[r], echo_pid, &ecpu);
			con[r] = concurrent(nclients[n], HS_SECONDS / 2, &nk, NULL, 0, &con99[r], pid, &bcpu);
			coff[r] = concurrent(nclients[n], HS_SECONDS / 2, &noaudit, NULL, 0, &coff99[r], pid2, NULL);
			es[r] = ecpu.server_s;
			ec[r] = ecpu.clients_s;
			bs[r] = bcpu.server_s;
			bc[r] = bcpu.clients_s;
			r_on[r] = con[r] / ce[r];
			r_off[r] = coff[r] / ce[r];
			if (nclients[n] == 32) {
				cl[r] = concurrent(32, HS_SECONDS / 2, &nk, NULL, 1, &cl99[r], pid, NULL);
				cln[r] = concurrent(32, HS_SECONDS / 2, &noaudit, NULL, 1, &cln99[r], pid2, NULL);
				cl_r[r] = cl[r] / ce[r];
				cl_ra[r] = cl[r] / cln[r];
			}
		}
		printf("\n%d concurrent client%s, %.2f s per repetition, no CPU pinning\n", nclients[n],
		    nclients[n] == 1 ? "" : "s", HS_SECONDS / 2);
		printf("%-36s %10s %10s %10s\n", "", "min", "median", "max");
		spread("plain epoll echo server", ce, 0, "req/s", 1);
		spread("  echo p99", ce99, 0, "us", 1e6);
		spread("broker Fetch, audit on", con, 0, "req/s", 1);
		spread("  p99", con99, 0, "us", 1e6);
		spread("  / echo", r_on, 0, "x", 1);
		spread("broker Fetch, audit off", coff, 0, "req/s", 1);
		spread("  p99", coff99, 0, "us", 1e6);
		spread("  / echo", r_off, 0, "x", 1);
		spread("CPU per request: echo server", es, 0, "us", 1e6);
		spread("  echo clients", ec, 0, "us", 1e6);
		spread("  broker (audit on)", bs, 0, "us", 1e6);
		spread("  broker clients", bc, 0, "us", 1e6);
		if (nclients[n] == 32) {
			spread("Listen+Release, audit on (durable)", cl, 0, "req/s", 1);
			spread("  p99", cl99, 0, "us", 1e6);
			spread("Listen+Release, audit off", cln, 0, "req/s", 1);
			spread("  durable / echo", cl_r, 0, "x", 1);
			spread("  durable / audit off", cl_ra, 0, "x", 1);
		}
	}
	/* One session, 32 requests in flight, against one connection with 32 messages in flight to the echo server. */
	for (r = 0; r < REPS; r++) {
		pe[r] = echo_pipelined(echo_path, HS_SECONDS / 2);
		pf[r] = fetch_pipelined(&nk, HS_SECONDS / 2);
		pf1[r] = concurrent(1, HS_SECONDS / 2, &nk, NULL, 0, &pf199[r], pid, NULL);
		pr[r] = pf[r] / pe[r];
		pr1[r] = pf[r] / pf1[r];
	}
	printf("\n%d requests in flight on one session (libwfpb asynchronous calls), %.2f s per repetition\n",
	    PIPE_DEPTH, HS_SECONDS / 2);
	printf("%-36s %10s %10s %10s\n", "", "min", "median", "max");
	spread("echo server, one connection", pe, 0, "req/s", 1);
	spread("broker Fetch, audit on", pf, 0, "req/s", 1);
	spread("  / echo", pr, 0, "x", 1);
	spread("  / one Fetch at a time", pr1, 0, "x", 1);
	stop(echo_pid, SIGKILL);
	{
		struct wfpb_client	*c;
		struct wfpb_status_info	st = WFPB_STATUS_INFO_INIT;

		if (wfpb_open(&nk, &c, NULL, 0) == 0 && wfpb_server_status(c, &st) == 0) {
			printf("\ngroup commit (audit on): %llu records durable in %llu commits, largest batch %llu\n",
			    (unsigned long long)st.audit_durable_seq, (unsigned long long)st.audit_commits,
			    (unsigned long long)st.audit_max_batch);
			wfpb_close(c);
		}
	}
	stop(pid2, SIGTERM);
	stop(pid, SIGTERM);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : 1;
}
