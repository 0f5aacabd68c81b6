/* SPDX-License-Identifier: Apache-2.0 */
/*
 * connload: new TCP connections per second, for bench/conn_rate.sh.
 *
 *   connload echo PORTFILE
 *       an epoll echo server on 127.0.0.1 (one thread), the origin of the benchmark; writes its port
 *   connload run PORT CONCURRENCY SECONDS
 *       keeps CONCURRENCY connections in flight to 127.0.0.1:PORT for SECONDS, each one
 *       connect -> 6 bytes -> their echo -> close, and prints
 *       "conns N rate R/s p50 A us p99 B us errors E" (latency: from connect() to the echo's last byte)
 *
 * One thread and epoll on each side, so that it is not what limits the systems it measures.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MSG		"hello\n"
#define MSG_LEN		6
#define STALL_US	5000000ull

static uint64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int
echo_server(const char *portfile)
{
	struct sockaddr_in	sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct epoll_event	ev, evs[256];
	socklen_t		len = sizeof(sa);
	char			buf[4096];
	int			l, ep, n, i, fd, one = 1;
	FILE			*f;

	if ((l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0)) < 0 ||
	    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(l, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(l, 4096) != 0 ||
	    getsockname(l, (struct sockaddr *)&sa, &len) != 0 || (ep = epoll_create1(0)) < 0) {
		perror("connload echo");
		return 1;
	}
	if ((f = fopen(portfile, "w")) == NULL)
		return 1;
	fprintf(f, "%u\n", ntohs(sa.sin_port));
	fclose(f);
	ev.events = EPOLLIN;
	ev.data.fd = l;
	epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev);
	for (;;) {
		if ((n = epoll_wait(ep, evs, 256, -1)) < 0 && errno != EINTR)
			return 1;
		for (i = 0; i < n; i++) {
			if (evs[i].data.fd == l) {
				while ((fd = accept4(l, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
					ev.events = EPOLLIN;
					ev.data.fd = fd;
					epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
				}
				continue;
			}
			fd = evs[i].data.fd;
			ssize_t got = recv(fd, buf, sizeof(buf), 0);

			if (got > 0) {
				(void)!send(fd, buf, (size_t)got, MSG_NOSIGNAL);
			} else if (got == 0 || (errno != EAGAIN && errno != EINTR)) {
				close(fd);	/* closing removes it from the epoll set */
			}
		}
	}
}

struct slot {
	int		fd;		/* -1 when the last start failed: retried by the sweep */
	int		sent;
	int		echoed;		/* bytes of the echo received */
	uint64_t	t0;
};

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static int
start(struct slot *s, int ep, unsigned port)
{
	struct sockaddr_in	sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				    .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct epoll_event	ev;

	s->sent = s->echoed = 0;
	s->t0 = now_us();
	if ((s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0)) < 0)
		return -1;
	if (connect(s->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 && errno != EINPROGRESS) {
		close(s->fd);
		s->fd = -1;
		return -1;
	}
	ev.events = EPOLLOUT | EPOLLIN;
	ev.data.ptr = s;
	return epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &ev);
}

static int
run(unsigned port, unsigned conc, double seconds)
{
	struct epoll_event	evs[512];
	struct slot		*slots = calloc(conc, sizeof(*slots));
	uint64_t		*lat = NULL, t_end, t_start;
	size_t			nlat = 0, cap = 0;
	unsigned long		errors = 0;
	unsigned		i;
	int			ep = epoll_create1(0), n, k;

	if (slots == NULL || ep < 0)
		return 1;
	t_start = now_us();
	t_end = t_start + (uint64_t)(seconds * 1e6);
	for (i = 0; i < conc; i++)
		if (start(&slots[i], ep, port) != 0)
			errors++;
	while (now_us() < t_end) {
		n = epoll_wait(ep, evs, 512, 100);
		for (k = 0; k < n; k++) {
			struct slot	*s = evs[k].data.ptr;
			char		buf[64];
			ssize_t		got;

			if (evs[k].events & (EPOLLERR | EPOLLHUP))
				goto failed;
			if ((evs[k].events & EPOLLOUT) && !s->sent) {
				struct epoll_event ev = { .events = EPOLLIN, .data.ptr = s };

				if (send(s->fd, MSG, MSG_LEN, MSG_NOSIGNAL) != MSG_LEN)
					goto failed;
				s->sent = 1;
				epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &ev);
				continue;
			}
			if (evs[k].events & EPOLLIN) {
				if ((got = recv(s->fd, buf, sizeof(buf), 0)) <= 0)
					goto failed;
				if ((s->echoed += (int)got) < MSG_LEN)
					continue;
				if (nlat == cap) {
					cap = cap ? 2 * cap : 65536;
					if ((lat = realloc(lat, cap * sizeof(*lat))) == NULL)
						return 1;
				}
				lat[nlat++] = now_us() - s->t0;
				close(s->fd);
				if (start(s, ep, port) != 0)
					errors++;
			}
			continue;
failed:
			errors++;
			close(s->fd);
			if (start(s, ep, port) != 0)
				errors++;
		}
		/* A connection that has made no progress for 5 s is counted as failed and replaced. */
		for (i = 0; i < conc; i++) {
			if (slots[i].fd >= 0 && now_us() - slots[i].t0 <= STALL_US)
				continue;
			if (slots[i].fd >= 0) {
				errors++;
				close(slots[i].fd);
			}
			if (start(&slots[i], ep, port) != 0)
				errors++;
		}
	}
	for (i = 0; i < conc; i++)
		if (slots[i].fd >= 0)
			close(slots[i].fd);
	free(slots);
	close(ep);
	if (nlat == 0) {
		printf("conns 0 rate 0/s p50 0 us p99 0 us errors %lu\n", errors);
		free(lat);
		return 1;
	}
	qsort(lat, nlat, sizeof(*lat), cmp_u64);
	printf("conns %zu rate %.0f/s p50 %llu us p99 %llu us errors %lu\n", nlat,
	    (double)nlat / ((double)(now_us() - t_start) / 1e6), (unsigned long long)lat[nlat / 2],
	    (unsigned long long)lat[(nlat * 99) / 100], errors);
	free(lat);
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "echo") == 0)
		return echo_server(argv[2]);
	if (argc == 5 && strcmp(argv[1], "run") == 0)
		return run((unsigned)atoi(argv[2]), (unsigned)atoi(argv[3]), atof(argv[4]));
	fprintf(stderr, "usage: connload echo PORTFILE | connload run PORT CONCURRENCY SECONDS\n");
	return 2;
}
