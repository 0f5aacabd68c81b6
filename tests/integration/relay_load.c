/* SPDX-License-Identifier: Apache-2.0 */
/*
 * relay-load ORIGIN_PORT_FILE RELAY_PORT_FILE N: N clients at once through one
 * relay to an echo origin of this process's own, which holds back its echo
 * to the first connection it accepts for HOLD_MS. Each client connects,
 * sends 6 bytes and waits for them back. Passes when the N - 1 others are
 * all echoed while the first is still held (one slow upstream stalls no
 * other connection), then the held one too, each exactly. It writes its
 * origin's port to the first file, and starts once the second names the
 * relay's port.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HOLD_MS		3000
#define DEADLINE_MS	20000
#define MSG_LEN		6

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void
nonblock(int fd)
{
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

struct end {
	int	fd;
	char	buf[MSG_LEN];
	int	have, sent, done;
	int	held;		/* origin side: the first connection, echoed after HOLD_MS */
	uint64_t at;		/* client side: when it was echoed */
};

int
main(int argc, char **argv)
{
	struct sockaddr_in	sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t		len = sizeof(sin);
	struct end		*cl, *og;
	struct pollfd		*pfd;
	uint64_t		t0, held_until = 0;
	unsigned		n, i, nog = 0, echoed = 0, others_before_held = 0, held_idx = 0;
	int			l, one = 1, rport, rc;
	FILE			*f;

	if (argc != 4 || (n = (unsigned)atoi(argv[3])) == 0 || n > 4096) {
		fprintf(stderr, "usage: relay-load ORIGIN_PORT_FILE RELAY_PORT_FILE N\n");
		return 2;
	}
	if ((l = socket(AF_INET, SOCK_STREAM, 0)) < 0 || setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(l, (struct sockaddr *)&sin, sizeof(sin)) != 0 || listen(l, 4096) != 0 ||
	    getsockname(l, (struct sockaddr *)&sin, &len) != 0 || (f = fopen(argv[1], "w")) == NULL) {
		perror("relay-load: origin");
		return 1;
	}
	fprintf(f, "%u\n", ntohs(sin.sin_port));
	fclose(f);
	nonblock(l);
	/* The caller starts the relay with the origin's port, then names the relay's. */
	for (i = 0, rport = 0; i < 200 && rport == 0; i++) {
		if ((f = fopen(argv[2], "r")) != NULL) {
			if (fscanf(f, "%d", &rport) != 1)
				rport = 0;
			fclose(f);
		}
		if (rport == 0)
			usleep(50000);
	}
	if (rport <= 0 || rport > 65535) {
		fprintf(stderr, "relay-load: no relay port in %s\n", argv[2]);
		return 1;
	}
	cl = calloc(n, sizeof(*cl));
	og = calloc(n, sizeof(*og));
	pfd = calloc(2 * n + 1, sizeof(*pfd));
	if (cl == NULL || og == NULL || pfd == NULL)
		return 1;
	/* Every client at once. */
	sin.sin_port = htons((uint16_t)rport);
	t0 = now_ms();
	for (i = 0; i < n; i++) {
		if ((cl[i].fd = socket(AF_INET, SOCK_STREAM, 0)) < 0) {
			perror("relay-load: socket");
			return 1;
		}
		nonblock(cl[i].fd);
		if (connect(cl[i].fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 && errno != EINPROGRESS) {
			perror("relay-load: connect");
			return 1;
		}
		snprintf(cl[i].buf, sizeof(cl[i].buf), "%05u", i % 100000u);
	}
	while (echoed < n && now_ms() - t0 < DEADLINE_MS) {
		unsigned k = 0;

		pfd[k].fd = l;
		pfd[k++].events = POLLIN;
		for (i = 0; i < n; i++) {
			pfd[k].fd = cl[i].done ? -1 : cl[i].fd;
			pfd[k++].events = (short)(cl[i].sent < MSG_LEN ? POLLOUT : POLLIN);
		}
		for (i = 0; i < nog; i++) {
			pfd[k].fd = og[i].done || (og[i].held && now_ms() < held_until) ? -1 : og[i].fd;
			pfd[k++].events = (short)(og[i].have < MSG_LEN ? POLLIN : POLLOUT);
		}
		(void)poll(pfd, k, 20);
		while (nog < n && (og[nog].fd = accept(l, NULL, NULL)) >= 0) {
			nonblock(og[nog].fd);
			if (nog == 0) {
				og[0].held = 1;
				held_until = now_ms() + HOLD_MS;
			}
			nog++;
		}
		for (i = 0; i < nog; i++) {
			struct end *e = &og[i];
			ssize_t r;

			if (e->done || (e->held && now_ms() < held_until))
				continue;
			if (e->have < MSG_LEN && (r = recv(e->fd, e->buf + e->have, MSG_LEN - e->have, 0)) > 0)
				e->have += (int)r;
			if (e->have == MSG_LEN && (r = send(e->fd, e->buf + e->sent, MSG_LEN - e->sent, MSG_NOSIGNAL)) > 0)
				e->sent += (int)r;
			if (e->sent == MSG_LEN)
				e->done = 1;
		}
		for (i = 0; i < n; i++) {
			struct end *e = &cl[i];
			ssize_t r;

			if (e->done)
				continue;
			if (e->sent < MSG_LEN && (r = send(e->fd, e->buf + e->sent, MSG_LEN - e->sent, MSG_NOSIGNAL)) > 0)
				e->sent += (int)r;
			if (e->sent == MSG_LEN && (r = recv(e->fd, e->buf + e->have, MSG_LEN - e->have, 0)) > 0)
				e->have += (int)r;
			if (e->have == MSG_LEN) {
				char want[MSG_LEN + 1];

				snprintf(want, sizeof(want), "%05u", i % 100000u);
				if (memcmp(e->buf, want, MSG_LEN) != 0) {
					fprintf(stderr, "relay-load: client %u got %.6s back\n", i, e->buf);
					return 1;
				}
				e->done = 1;
				e->at = now_ms();
				echoed++;
			}
		}
		/* Which client is the held one: the one whose bytes the held origin connection carries. */
		if (nog > 0 && og[0].have == MSG_LEN)
			held_idx = (unsigned)atoi(og[0].buf);
	}
	for (i = 0; i < n; i++)
		if (i != held_idx && cl[i].done && cl[i].at < held_until)
			others_before_held++;
	printf("relay-load: %u of %u echoed in %llu ms; %u of the %u others before the held one was released\n",
	    echoed, n, (unsigned long long)(now_ms() - t0), others_before_held, n - 1);
	rc = echoed != n || others_before_held != n - 1 || !cl[held_idx].done || cl[held_idx].at < held_until;
	if (rc)
		fprintf(stderr, "relay-load: FAIL (held client %u echoed %s)\n", held_idx,
		    cl[held_idx].done ? "before its upstream answered" : "never");
	for (i = 0; i < n; i++)
		close(cl[i].fd);
	for (i = 0; i < nog; i++)
		close(og[i].fd);
	close(l);
	free(cl);
	free(og);
	free(pfd);
	return rc;
}
