/*
 * tcp-echo: test helper.
 *   tcp-echo server PORTFILE [ADDR [PORT]]
 *       echo server on ADDR:PORT (default 127.0.0.1:0); writes its port to
 *       PORTFILE; forks per connection
 *   tcp-echo client PORT TEXT [ADDR [TIMEOUT_S]]
 *       sends TEXT to ADDR:PORT (default 127.0.0.1), half-closes, prints what
 *       came back; exits 3 when nothing came back within TIMEOUT_S
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

static int
serve(const char *portfile, const char *addr, const char *port)
{
	struct sockaddr_in	sin = { .sin_family = AF_INET };
	socklen_t		len = sizeof(sin);
	FILE			*f;
	char			buf[4096];
	ssize_t			n;
	int			l = socket(AF_INET, SOCK_STREAM, 0), c;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (addr != NULL && inet_pton(AF_INET, addr, &sin.sin_addr) != 1)
		return 2;
	if (port != NULL)
		sin.sin_port = htons((uint16_t)atoi(port));
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &(int){ 1 }, sizeof(int));
	if (l < 0 || bind(l, (struct sockaddr *)&sin, sizeof(sin)) != 0 || listen(l, 16) != 0 ||
	    getsockname(l, (struct sockaddr *)&sin, &len) != 0 || (f = fopen(portfile, "w")) == NULL)
		return 1;
	fprintf(f, "%u\n", ntohs(sin.sin_port));
	fclose(f);
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
	struct sockaddr_in	sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port)) };
	char			buf[4096];
	ssize_t			n;
	size_t			got = 0;
	int			s = socket(AF_INET, SOCK_STREAM, 0);

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (addr != NULL && inet_pton(AF_INET, addr, &sin.sin_addr) != 1)
		return 2;
	if (timeout_s != NULL) {
		struct timeval tv = { .tv_sec = atoi(timeout_s) };

		setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	}
	if (s < 0 || connect(s, (struct sockaddr *)&sin, sizeof(sin)) != 0)
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

int
main(int argc, char **argv)
{
	if (argc >= 3 && argc <= 5 && strcmp(argv[1], "server") == 0)
		return serve(argv[2], argc > 3 ? argv[3] : NULL, argc > 4 ? argv[4] : NULL);
	if (argc >= 4 && argc <= 6 && strcmp(argv[1], "client") == 0)
		return client(argv[2], argv[3], argc > 4 ? argv[4] : NULL, argc > 5 ? argv[5] : NULL);
	fprintf(stderr, "usage: tcp-echo server PORTFILE [ADDR [PORT]] | client PORT TEXT [ADDR [TIMEOUT_S]]\n");
	return 2;
}
