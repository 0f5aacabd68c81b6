/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ack-client ENDPOINT SERVER_PUB OUTFILE [COUNT]: Listen on 127.0.0.1:0 (an
 * effectful, durably audited op) then Release, COUNT times or until the
 * broker goes away, appending each acknowledged listener's port to OUTFILE
 * as soon as the answer arrives. Exit 0 when all COUNT succeeded; 1 with the
 * broker's message otherwise.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wfpb.h"

int
main(int argc, char **argv)
{
	struct wfpb_open_opts	o = WFPB_OPEN_OPTS_INIT;
	struct wfpb_client	*c;
	struct wfpb_addr	any = { .family = WFPB_AF_INET, .addr = { 127, 0, 0, 1 } }, bound;
	char			err[256], line[32];
	long			count = argc == 5 ? strtol(argv[4], NULL, 10) : -1, i;
	uint64_t		lid;
	int			fd, n;

	if (argc != 4 && argc != 5)
		return 2;
	o.endpoint = argv[1];
	o.server_key_path = argv[2];
	o.timeout_ms = 5000;
	if ((fd = open(argv[3], O_WRONLY | O_APPEND | O_CREAT, 0644)) < 0)
		return 2;
	if (wfpb_open(&o, &c, err, sizeof(err)) != 0) {
		fprintf(stderr, "ack-client: %s\n", err);
		return 1;
	}
	for (i = 0; count < 0 || i < count; i++) {
		if (wfpb_listen(c, &any, 0, &lid, &bound) != 0) {
			fprintf(stderr, "ack-client: listen: %s\n", wfpb_errmsg(c));
			return 1;
		}
		n = snprintf(line, sizeof(line), "%u\n", bound.port);
		if (write(fd, line, (size_t)n) != n)
			return 2;
		if (wfpb_release_listener(c, lid) != 0) {
			fprintf(stderr, "ack-client: release: %s\n", wfpb_errmsg(c));
			return 1;
		}
	}
	wfpb_close(c);
	return 0;
}
