/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ack-client ENDPOINT SERVER_PUB OUTFILE [COUNT]: Listen on 127.0.0.1:0 (an
 * effectful, durably audited op) then Release, COUNT times or until the
 * broker goes away, appending each acknowledged listener's port to OUTFILE
 * as soon as the answer arrives. Exit 0 when all COUNT succeeded; 1 with the
 * broker's message otherwise.
 *
 * ack-client ENDPOINT SERVER_PUB OUTFILE COUNT --ping: COUNT Pings on one session, as fast as
 * they are answered; OUTFILE gets "pid P ok N unavailable M other K" (other: refused with
 * another status, such as QUOTA from the audit rate) and the message of the first Ping
 * refused UNAVAILABLE. It stops early only when the session fails. Exit 0.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wfpb.h"

static int
pings(const char *endpoint, const char *pub, const char *outfile, long count)
{
	struct wfpb_open_opts	o = WFPB_OPEN_OPTS_INIT;
	struct wfpb_client	*c;
	char			err[256], why[256] = "";
	long			i, ok = 0, unavailable = 0, other = 0;
	FILE			*f;

	o.endpoint = endpoint;
	o.server_key_path = pub;
	o.timeout_ms = 5000;
	if (wfpb_open(&o, &c, err, sizeof(err)) != 0) {
		fprintf(stderr, "ack-client: %s\n", err);
		return 1;
	}
	for (i = 0; i < count; i++) {
		if (wfpb_ping(c, (const uint8_t *)"p", 1, NULL) == 0) {
			ok++;
		} else if (wfpb_status(c) == WFPBROKER_STATUS_UNAVAILABLE) {
			if (unavailable++ == 0)
				snprintf(why, sizeof(why), "%s", wfpb_errmsg(c));
		} else if (wfpb_status(c) != 0) {
			other++;
		} else {
			break;	/* no answer: the session is gone */
		}
	}
	wfpb_close(c);
	if ((f = fopen(outfile, "w")) == NULL)
		return 2;
	fprintf(f, "pid %ld ok %ld unavailable %ld other %ld\n%s\n", (long)getpid(), ok, unavailable, other, why);
	return fclose(f) == 0 ? 0 : 2;
}

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

	if (argc == 6 && strcmp(argv[5], "--ping") == 0)
		return pings(argv[1], argv[2], argv[3], strtol(argv[4], NULL, 10));
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
