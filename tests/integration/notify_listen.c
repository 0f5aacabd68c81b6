/* SPDX-License-Identifier: Apache-2.0 */
/*
 * notify-listen PATH OUT: plays systemd's side of sd_notify(3) for a test.
 * Binds a datagram socket at PATH and appends each message it receives to
 * OUT as one line (the message's newlines become spaces), until killed.
 */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int
main(int argc, char **argv)
{
	struct sockaddr_un	sa = { .sun_family = AF_UNIX };
	char			msg[4096];
	ssize_t			n, i;
	FILE			*out;
	int			fd;

	if (argc != 3 || strlen(argv[1]) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "usage: notify-listen PATH OUT\n");
		return 2;
	}
	memcpy(sa.sun_path, argv[1], strlen(argv[1]));
	unlink(argv[1]);
	if ((fd = socket(AF_UNIX, SOCK_DGRAM, 0)) < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    (out = fopen(argv[2], "a")) == NULL) {
		perror("notify-listen");
		return 1;
	}
	while ((n = recv(fd, msg, sizeof(msg), 0)) >= 0) {
		for (i = 0; i < n; i++)
			fputc(msg[i] == '\n' ? ' ' : msg[i], out);
		fputc('\n', out);
		fflush(out);
	}
	return 1;
}
