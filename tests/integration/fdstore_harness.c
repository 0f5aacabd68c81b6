/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fdstore-harness NOTIFY_PATH LOG GAP_MS BROKERD ARGS...: plays systemd's side of
 * a Type=notify service with a file descriptor store, for a test. It binds the
 * notify socket, starts BROKERD with NOTIFY_SOCKET set, appends every message it
 * receives to LOG (one line each), and keeps each descriptor sent with
 * FDSTORE=1 under its FDNAME, as systemd does. On SIGUSR1 it restarts the
 * service: SIGTERM, wait for its exit, GAP_MS with nothing running (the store
 * still holding the sockets), then start it again with the stored descriptors
 * from 3 on and LISTEN_FDS, LISTEN_FDNAMES and LISTEN_PID, as sd_listen_fds(3)
 * reads them. On SIGTERM it stops the service and exits.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define STORE_MAX	16

static int	stored[STORE_MAX];
static char	names[STORE_MAX][96];
static int	nstored;

static void
keep(const char *name, int fd)
{
	int i;

	for (i = 0; i < nstored; i++) {
		if (strcmp(names[i], name) == 0) {
			close(stored[i]);
			stored[i] = fd;
			return;
		}
	}
	if (nstored == STORE_MAX) {
		close(fd);
		return;
	}
	snprintf(names[nstored], sizeof(names[0]), "%s", name);
	stored[nstored++] = fd;
}

static pid_t
start(const char *notify_path, char **argv)
{
	char	fds[16], fdnames[STORE_MAX * 97] = "", pid[16];
	int	high[STORE_MAX], i;
	pid_t	child = fork();

	if (child != 0)
		return child;
	/* Above any number the store uses, then into place from 3 on, inheritable. */
	for (i = 0; i < nstored; i++)
		high[i] = fcntl(stored[i], F_DUPFD, 100);
	for (i = 0; i < nstored; i++) {
		dup2(high[i], 3 + i);
		close(high[i]);
		strcat(fdnames, i ? ":" : "");
		strcat(fdnames, names[i]);
	}
	setenv("NOTIFY_SOCKET", notify_path, 1);
	if (nstored > 0) {
		snprintf(fds, sizeof(fds), "%d", nstored);
		snprintf(pid, sizeof(pid), "%d", (int)getpid());
		setenv("LISTEN_FDS", fds, 1);
		setenv("LISTEN_FDNAMES", fdnames, 1);
		setenv("LISTEN_PID", pid, 1);
	}
	execv(argv[0], argv);
	_exit(127);
}

/* One datagram: its text to log (newlines as spaces), its descriptor kept if it asks for the store. */
static void
receive(int ns, FILE *log)
{
	char		msg[4096], *name;
	union {
		struct cmsghdr	h;
		char		b[CMSG_SPACE(sizeof(int))];
	} u;
	struct iovec	iov = { msg, sizeof(msg) - 1 };
	struct msghdr	m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b, .msg_controllen = sizeof(u.b) };
	struct cmsghdr	*c;
	ssize_t		n, i;
	int		fd = -1;

	if ((n = recvmsg(ns, &m, MSG_CMSG_CLOEXEC)) <= 0)
		return;
	msg[n] = '\0';
	for (c = CMSG_FIRSTHDR(&m); c != NULL; c = CMSG_NXTHDR(&m, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
			memcpy(&fd, CMSG_DATA(c), sizeof(fd));
	if (fd >= 0 && strstr(msg, "FDSTORE=1") != NULL && (name = strstr(msg, "FDNAME=")) != NULL) {
		char	one[96];
		size_t	len;

		name += strlen("FDNAME=");
		len = strcspn(name, "\n");
		snprintf(one, sizeof(one), "%.*s", (int)len, name);
		keep(one, fd);
	} else if (fd >= 0) {
		close(fd);
	}
	for (i = 0; i < n; i++)
		if (msg[i] == '\n')
			msg[i] = ' ';
	fprintf(log, "%s\n", msg);
	fflush(log);
}

int
main(int argc, char **argv)
{
	struct sockaddr_un	sa = { .sun_family = AF_UNIX };
	struct signalfd_siginfo	si;
	struct timespec		gap;
	struct pollfd		p[2];
	sigset_t		mask;
	FILE			*log;
	pid_t			child;
	long			gap_ms;
	int			ns, sf;

	if (argc < 5 || strlen(argv[1]) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "usage: fdstore-harness NOTIFY_PATH LOG GAP_MS BROKERD ARGS...\n");
		return 2;
	}
	gap_ms = strtol(argv[3], NULL, 10);
	gap.tv_sec = gap_ms / 1000;
	gap.tv_nsec = (gap_ms % 1000) * 1000000L;
	memcpy(sa.sun_path, argv[1], strlen(argv[1]));
	unlink(argv[1]);
	if ((ns = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0 || bind(ns, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    (log = fopen(argv[2], "a")) == NULL) {
		perror("fdstore-harness");
		return 1;
	}
	sigemptyset(&mask);
	sigaddset(&mask, SIGUSR1);
	sigaddset(&mask, SIGTERM);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	if ((sf = signalfd(-1, &mask, SFD_CLOEXEC)) < 0)
		return 1;
	child = start(argv[1], argv + 4);
	p[0].fd = ns;
	p[0].events = POLLIN;
	p[1].fd = sf;
	p[1].events = POLLIN;
	for (;;) {
		if (poll(p, 2, -1) < 0)
			continue;
		if (p[0].revents & POLLIN)
			receive(ns, log);
		if (!(p[1].revents & POLLIN) || read(sf, &si, sizeof(si)) != (ssize_t)sizeof(si))
			continue;
		kill(child, SIGTERM);
		/* What it says while stopping is read as it goes, so its last messages are logged. */
		while (waitpid(child, NULL, WNOHANG) == 0) {
			struct pollfd q = { ns, POLLIN, 0 };

			if (poll(&q, 1, 50) > 0)
				receive(ns, log);
		}
		if (si.ssi_signo == SIGTERM)
			return 0;
		fprintf(log, "harness: stopped; restarting in %ld ms with %d stored descriptors\n", gap_ms, nstored);
		fflush(log);
		nanosleep(&gap, NULL);
		child = start(argv[1], argv + 4);
	}
}
