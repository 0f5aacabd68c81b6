/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tcp-echo: test helper.
 *   tcp-echo server PORTFILE [ADDR [PORT]]
 *       echo server on ADDR:PORT (IPv4 or IPv6; default 127.0.0.1:0); writes its port to
 *       PORTFILE; forks per connection
 *   tcp-echo client PORT TEXT [ADDR [TIMEOUT_S]]
 *       sends TEXT to ADDR:PORT (default 127.0.0.1), half-closes, prints what
 *       came back; exits 3 when nothing came back within TIMEOUT_S
 *   tcp-echo udp-server PORTFILE [ADDR [PORT]]
 *       answers each datagram with "answer:" and the datagram, from ADDR:PORT
 *   tcp-echo udp-client PORT TEXT [ADDR [TIMEOUT_S]]
 *       sends TEXT as one datagram from a socket connected to ADDR:PORT (so only
 *       a reply from that very address is received), prints the reply; exits 3
 *       when none came within TIMEOUT_S
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

/* ADDR (IPv4 or IPv6, default 127.0.0.1) and PORT into ss; the length, or 0 when ADDR is not an address. */
static socklen_t
make_addr(const char *addr, unsigned port, struct sockaddr_storage *ss)
{
	struct sockaddr_in	*sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (addr != NULL && strchr(addr, ':') != NULL) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		return inet_pton(AF_INET6, addr, &sin6->sin6_addr) == 1 ? sizeof(*sin6) : 0;
	}
	sin->sin_family = AF_INET;
	sin->sin_port = htons((uint16_t)port);
	sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (addr != NULL && inet_pton(AF_INET, addr, &sin->sin_addr) != 1)
		return 0;
	return sizeof(*sin);
}

/* The port s is bound to, written to portfile (where the test waits for it). 0 or -1. */
static int
write_port(int s, const char *portfile)
{
	struct sockaddr_storage	ss;
	socklen_t		len = sizeof(ss);
	FILE			*f;

	if (getsockname(s, (struct sockaddr *)&ss, &len) != 0 || (f = fopen(portfile, "w")) == NULL)
		return -1;
	fprintf(f, "%u\n", ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port :
	    ((struct sockaddr_in *)&ss)->sin_port));
	return fclose(f) == 0 ? 0 : -1;
}

static int
serve(const char *portfile, const char *addr, const char *port)
{
	struct sockaddr_storage	ss;
	socklen_t		len = make_addr(addr, port != NULL ? (unsigned)atoi(port) : 0, &ss);
	char			buf[4096];
	ssize_t			n;
	int			l, c;

	if (len == 0)
		return 2;
	l = socket(ss.ss_family, SOCK_STREAM, 0);
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &(int){ 1 }, sizeof(int));
	if (l < 0 || bind(l, (struct sockaddr *)&ss, len) != 0 || listen(l, 16) != 0 || write_port(l, portfile) != 0)
		return 1;
	signal(SIGCHLD, SIG_IGN);
	for (;;) {
		if ((c = accept(l, NULL, NULL)) < 0)
			continue;
		if (fork() == 0) {
			close(l);
			while ((n = read(c, buf, sizeof(buf))) > 0)
				if (write(c, buf, (size_t)n) != n)
					break;
			_exit(0);
		}
		close(c);
	}
}

static int
client(const char *port, const char *text, const char *addr, const char *timeout_s)
{
	struct sockaddr_storage	ss;
	socklen_t		len = make_addr(addr, (unsigned)atoi(port), &ss);
	char			buf[4096];
	ssize_t			n;
	size_t			got = 0;
	int			s;

	if (len == 0)
		return 2;
	s = socket(ss.ss_family, SOCK_STREAM, 0);
	if (timeout_s != NULL) {
		struct timeval tv = { .tv_sec = atoi(timeout_s) };

		setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	}
	if (s < 0 || connect(s, (struct sockaddr *)&ss, len) != 0)
		return 1;
	if (write(s, text, strlen(text)) != (ssize_t)strlen(text))
		return 1;
	shutdown(s, SHUT_WR);
	while (got < sizeof(buf) - 1 && (n = read(s, buf + got, sizeof(buf) - 1 - got)) > 0)
		got += (size_t)n;
	if (n < 0 && got == 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		fprintf(stderr, "tcp-echo: no reply within %s s\n", timeout_s);
		return 3;
	}
	buf[got] = '\0';
	printf("%s\n", buf);
	return 0;
}

static int
udp_serve(const char *portfile, const char *addr, const char *port)
{
	struct sockaddr_storage	ss, from;
	socklen_t		len = make_addr(addr, port != NULL ? (unsigned)atoi(port) : 0, &ss), flen;
	char			buf[2048];
	ssize_t			n;
	int			u;

	if (len == 0)
		return 2;
	u = socket(ss.ss_family, SOCK_DGRAM, 0);
	if (u < 0 || bind(u, (struct sockaddr *)&ss, len) != 0 || write_port(u, portfile) != 0)
		return 1;
	memcpy(buf, "answer:", 7);
	for (;;) {
		flen = sizeof(from);
		if ((n = recvfrom(u, buf + 7, sizeof(buf) - 7, 0, (struct sockaddr *)&from, &flen)) < 0)
			continue;
		(void)sendto(u, buf, (size_t)n + 7, 0, (struct sockaddr *)&from, flen);
	}
}

static int
udp_client(const char *port, const char *text, const char *addr, const char *timeout_s)
{
	struct sockaddr_storage	ss;
	socklen_t		len = make_addr(addr, (unsigned)atoi(port), &ss);
	struct timeval		tv = { .tv_sec = timeout_s != NULL ? atoi(timeout_s) : 5 };
	char			buf[2048];
	ssize_t			n;
	int			u;

	if (len == 0)
		return 2;
	u = socket(ss.ss_family, SOCK_DGRAM, 0);
	setsockopt(u, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (u < 0 || connect(u, (struct sockaddr *)&ss, len) != 0 || send(u, text, strlen(text), 0) < 0)
		return 1;
	if ((n = recv(u, buf, sizeof(buf) - 1, 0)) < 0) {
		fprintf(stderr, "tcp-echo: no reply within %ld s\n", (long)tv.tv_sec);
		return 3;
	}
	buf[n] = '\0';
	printf("%s\n", buf);
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc >= 3 && argc <= 5 && strcmp(argv[1], "udp-server") == 0)
		return udp_serve(argv[2], argc > 3 ? argv[3] : NULL, argc > 4 ? argv[4] : NULL);
	if (argc >= 4 && argc <= 6 && strcmp(argv[1], "udp-client") == 0)
		return udp_client(argv[2], argv[3], argc > 4 ? argv[4] : NULL, argc > 5 ? argv[5] : NULL);
	if (argc >= 3 && argc <= 5 && strcmp(argv[1], "server") == 0)
		return serve(argv[2], argc > 3 ? argv[3] : NULL, argc > 4 ? argv[4] : NULL);
	if (argc >= 4 && argc <= 6 && strcmp(argv[1], "client") == 0)
		return client(argv[2], argv[3], argc > 4 ? argv[4] : NULL, argc > 5 ? argv[5] : NULL);
	fprintf(stderr, "usage: tcp-echo (server | udp-server) PORTFILE [ADDR [PORT]] | "
	    "(client | udp-client) PORT TEXT [ADDR [TIMEOUT_S]]\n");
	return 2;
}
