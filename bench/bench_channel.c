/*
 * bench-channel WFPBROKERD WFPBCTL: the cost of the secure channel against its limit,
 * all measured in this one run on this machine.
 *
 *   raw ping-pong   two processes, a Unix stream socket, one message each way
 *                   of the size of an encrypted Ping frame
 *   broker ping     authenticated Ping round trip through a real wfpbrokerd (NK)
 *   handshake       wfpb_open + wfpb_close, NK and IK, per second; compared with
 *                   the X25519 operations the two sides perform (NK 6, IK 10)
 *
 * Prints a table; every ratio's baseline comes from the same run.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "wfpb.h"

#define REPS		5
#define ROUNDS_MAX	4000

/* WFPB_BENCH_QUICK=1 (the test suite's smoke run) shrinks rounds and timings, not the table. */
static int	ROUNDS = ROUNDS_MAX;
static double	HS_SECONDS = 1.0;
#define MSG_SIZE	56	/* a 32-byte-payload Ping: 2 + 38 + 16 */

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Where the peer process runs relative to this one: placement dominates small round trips. */
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
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

struct stats {
	double median, p99;
};

static struct stats
summarize(double *v, size_t n)
{
	struct stats s;

	qsort(v, n, sizeof(*v), cmp_double);
	s.median = v[n / 2];
	s.p99 = v[(n * 99) / 100];
	return s;
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

/* N client processes for `seconds`: Fetch or Listen+Release round trips (broker) or ping-pongs (echo). Returns requests/s. */
static double
concurrent(int nclients, double seconds, struct wfpb_open_opts *o, const char *echo_path, int listen_mode)
{
	int	pfd[2], i;
	long	total = 0, n;
	pid_t	pids[256];
	double	t0;

	if (pipe(pfd) != 0 || nclients > 256)
		exit(1);
	t0 = now_s();
	for (i = 0; i < nclients; i++) {
		if ((pids[i] = fork()) == 0) {
			long count = 0;

			/* Clients may run anywhere: this measures the machine, not a placement. */
			set_any_cpu(0);
			if (echo_path == NULL) {
				struct wfpb_client	*c;
				uint8_t			blob[24] = { 2 }, h[WFPB_HANDLE_LEN], *out;
				size_t			len;

				struct wfpb_addr	any = { .family = WFPB_AF_INET, .addr = { 127, 0, 0, 1 } };
				uint64_t		lid;

				if (wfpb_open(o, &c, NULL, 0) != 0 || wfpb_stash(c, blob, sizeof(blob), 0, h) != 0)
					_exit(1);
				/* Listen is audited durably (its answer waits for the group commit); Release is not. */
				while (now_s() - t0 < seconds) {
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
				}
			} else {
				struct sockaddr_un	sa = { .sun_family = AF_UNIX };
				char			buf[MSG_SIZE] = { 0 };
				int			s = socket(AF_UNIX, SOCK_STREAM, 0);

				memcpy(sa.sun_path, echo_path, strlen(echo_path) + 1);
				if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) != 0)
					_exit(1);
				while (now_s() - t0 < seconds && full_io(s, buf, sizeof(buf), 1) == 0 &&
				    full_io(s, buf, sizeof(buf), 0) == 0)
					count++;
			}
			(void)!write(pfd[1], &count, sizeof(count));
			_exit(0);
		}
	}
	close(pfd[1]);
	while (read(pfd[0], &n, sizeof(n)) == (ssize_t)sizeof(n))
		total += n;
	close(pfd[0]);
	for (i = 0; i < nclients; i++)
		waitpid(pids[i], NULL, 0);
	return (double)total / seconds;
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
		printf("%-30s %10.2f %10.2f %10.2f %-6s", label, sorted[0], sorted[REPS / 2], sorted[REPS - 1], unit);
	else
		printf("%-30s %10.1f %10.1f %10.1f %-6s", label, sorted[0] * scale, sorted[REPS / 2] * scale,
		    sorted[REPS - 1] * scale, unit);
	if (base_median > 0)
		printf("  %6.2fx", sorted[REPS / 2] / base_median);
	printf("\n");
}

int
main(int argc, char **argv)
{
	char			dir[32] = "/tmp/wfpb-bench-", conf[256], sock[256], pub[256], ckey[256];
	char			cmd[1024];
	struct wfpb_open_opts	nk = { 0 }, ik = { 0 };
	double			raw_med[REPS], raw_p99[REPS], br_med[REPS], br_p99[REPS];
	double			nk_hs[REPS], ik_hs[REPS], x[REPS], nk_ratio[REPS], ik_ratio[REPS];
	double			fe_med[REPS], fe_p99[REPS], conc_b[REPS], conc_e[REPS], conc_ratio[REPS];
	double			conc_l[REPS], conc_ln[REPS], conc_lratio[REPS], conc_aratio[REPS];
	char			conf2[256], sock2[256], pub2[256];
	struct wfpb_open_opts	noaudit = { 0 };
	pid_t			pid2;
	char			echo_path[256];
	pid_t			echo_pid;
	FILE			*f;
	pid_t			pid;
	int			r, i;
	char			hex[80];

	if (argc != 3 || sodium_init() < 0) {
		fprintf(stderr, "usage: bench-channel WFPBROKERD WFPBCTL\n");
		return 2;
	}
	if (getenv("WFPB_BENCH_QUICK") != NULL) {
		ROUNDS = 200;
		HS_SECONDS = 0.05;
	}
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
	if ((f = fopen(conf, "w")) == NULL)
		return 1;
	fprintf(f, "[service]\nendpoint = %s\nstate_dir = %s/state\nmax_sessions = 1024\n[principal bench]\nkey = %s\nops = stash fetch\n[principal bench-uid]\nuid = %u\nops = stash fetch listen admin\nlisten = 127.0.0.1/32:*\n",
	    sock, dir, hex, (unsigned)getuid());
	fclose(f);
	if ((pid = fork()) == 0) {
		freopen("/dev/null", "w", stderr);
		execl(argv[1], argv[1], "--config", conf, (char *)NULL);
		_exit(127);
	}
	nk.endpoint = ik.endpoint = sock;
	nk.server_key_path = ik.server_key_path = pub;
	ik.client_key_path = ckey;
	for (i = 0; i < 100; i++) {
		struct wfpb_client *c;

		if (wfpb_open(&nk, &c, NULL, 0) == 0) {
			wfpb_close(c);
			break;
		}
		usleep(50000);
	}

	set_cpu(0, 0);
	for (peer_cpu = 0; peer_cpu < 2; peer_cpu++) {
		set_cpu(pid, peer_cpu);
		for (r = 0; r < REPS; r++) {
			struct stats a = raw_pingpong(), b = broker_ping(&nk), fe = broker_fetch(&nk);

			fe_med[r] = fe.median;
			fe_p99[r] = fe.p99;
			raw_med[r] = a.median;
			raw_p99[r] = a.p99;
			br_med[r] = b.median;
			br_p99[r] = b.p99;
			nk_hs[r] = handshakes_per_s(&nk);
			ik_hs[r] = handshakes_per_s(&ik);
			x[r] = x25519_per_s();
			/* Time per handshake over the time of the X25519 operations inside it. */
			nk_ratio[r] = (1.0 / nk_hs[r]) / (6.0 / x[r]);
			ik_ratio[r] = (1.0 / ik_hs[r]) / (10.0 / x[r]);
		}
		qsort(raw_med, REPS, sizeof(double), cmp_double);
		printf("\n%s: client on CPU 0, peer (echo server or wfpbrokerd) on CPU %d\n",
		    peer_cpu == 0 ? "same core" : "cross core", peer_cpu);
		printf("%d repetitions of %d round trips; min / median / max of the per-repetition figure\n",
		    REPS, ROUNDS);
		printf("%-30s %10s %10s %10s %-6s  %s\n", "", "min", "median", "max", "", "ratio");
		spread("raw ping-pong median", raw_med, 0, "us", 1e6);
		spread("raw ping-pong p99", raw_p99, 0, "us", 1e6);
		spread("broker Ping (NK) median", br_med, raw_med[REPS / 2], "us", 1e6);
		spread("broker Ping (NK) p99", br_p99, 0, "us", 1e6);
		spread("broker Fetch median", fe_med, raw_med[REPS / 2], "us", 1e6);
		spread("broker Fetch p99", fe_p99, 0, "us", 1e6);
		spread("handshakes NK", nk_hs, 0, "/s", 1);
		spread("handshakes IK", ik_hs, 0, "/s", 1);
		spread("X25519 operations", x, 0, "/s", 1);
		spread("NK handshake / its 6 X25519", nk_ratio, 0, "x", 1);
		spread("IK handshake / its 10 X25519", ik_ratio, 0, "x", 1);
	}
	/* Throughput with 32 clients on every core: broker Fetch against a plain epoll echo server. */
	snprintf(echo_path, sizeof(echo_path), "%s/echo.sock", dir);
	echo_pid = start_echo_server(echo_path);
	set_any_cpu(pid);
	set_any_cpu(echo_pid);
	/* The same broker with the audit log off, for the durable-audit ratio. */
	{
		FILE *f2;

		snprintf(conf2, sizeof(conf2), "%s/conf-noaudit", dir);
		snprintf(sock2, sizeof(sock2), "%s/run/b2.sock", dir);
		if ((f2 = fopen(conf2, "w")) == NULL)
			return 1;
		fprintf(f2, "[service]\nendpoint = %s\nstate_dir = %s/state2\nmax_sessions = 1024\naudit = off\n"
		    "[principal bench-uid]\nuid = %u\nops = stash fetch listen\nlisten = 127.0.0.1/32:*\n",
		    sock2, dir, (unsigned)getuid());
		fclose(f2);
		if ((pid2 = fork()) == 0) {
			freopen("/dev/null", "w", stderr);
			execl(argv[1], argv[1], "--config", conf2, (char *)NULL);
			_exit(127);
		}
		noaudit.endpoint = sock2;
		snprintf(pub2, sizeof(pub2), "%s/state2/server.pub", dir);
		noaudit.server_key_path = pub2;
		for (i = 0; i < 100; i++) {
			struct wfpb_client *c;

			if (wfpb_open(&noaudit, &c, NULL, 0) == 0) {
				wfpb_close(c);
				break;
			}
			usleep(50000);
		}
		set_any_cpu(pid2);
	}
	for (r = 0; r < REPS; r++) {
		conc_e[r] = concurrent(32, HS_SECONDS, NULL, echo_path, 0);
		conc_b[r] = concurrent(32, HS_SECONDS, &nk, NULL, 0);
		conc_ratio[r] = conc_b[r] / conc_e[r];
		conc_l[r] = concurrent(32, HS_SECONDS, &nk, NULL, 1);
		conc_ln[r] = concurrent(32, HS_SECONDS, &noaudit, NULL, 1);
		conc_lratio[r] = conc_l[r] / conc_e[r];
		conc_aratio[r] = conc_l[r] / conc_ln[r];
	}
	kill(echo_pid, SIGKILL);
	waitpid(echo_pid, NULL, 0);
	printf("\n32 concurrent clients, %.1f s per repetition, no CPU pinning\n", HS_SECONDS);
	printf("%-30s %10s %10s %10s\n", "", "min", "median", "max");
	spread("plain epoll echo server", conc_e, 0, "req/s", 1);
	spread("broker Fetch", conc_b, 0, "req/s", 1);
	spread("broker Fetch / echo", conc_ratio, 0, "x", 1);
	spread("Listen+Release, audit on", conc_l, 0, "req/s", 1);
	spread("Listen+Release, audit off", conc_ln, 0, "req/s", 1);
	spread("audit on / echo", conc_lratio, 0, "x", 1);
	spread("audit on / audit off", conc_aratio, 0, "x", 1);
	{
		struct wfpb_client	*c;
		struct wfpb_status_info	st;

		if (wfpb_open(&nk, &c, NULL, 0) == 0 && wfpb_server_status(c, &st) == 0) {
			printf("group commit (audit on): %llu records durable in %llu commits, largest batch %llu\n",
			    (unsigned long long)st.audit_durable_seq, (unsigned long long)st.audit_commits,
			    (unsigned long long)st.audit_max_batch);
			wfpb_close(c);
		}
	}
	kill(pid2, SIGTERM);
	waitpid(pid2, NULL, 0);
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : 1;
}
