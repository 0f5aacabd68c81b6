/* SPDX-License-Identifier: Apache-2.0 */
/*
 * scale-test ENDPOINT SERVER_PUB BROKER_PID N: opens N authenticated sessions
 * to a running broker and leaves them idle, checks that the last one still
 * gets answers and that the broker's resident memory grew by at most 32 KiB
 * per session (DESIGN.md §9), then closes them all and checks the broker
 * answers a new session. Prints the figures.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "wfpb.h"

static long
rss_kib(const char *pid)
{
	char	path[64], line[256];
	long	kib = -1;
	FILE	*f;

	snprintf(path, sizeof(path), "/proc/%s/status", pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

int
main(int argc, char **argv)
{
	struct wfpb_open_opts	o = WFPB_OPEN_OPTS_INIT;
	struct wfpb_client	**c, *fresh;
	struct rlimit		rl;
	char			err[256];
	long			n, i, before, after;
	double			per;
	uint64_t		t0;

	if (argc != 5 || (n = strtol(argv[4], NULL, 10)) < 1)
		return 2;
	o.endpoint = argv[1];
	o.server_key_path = argv[2];
	o.timeout_ms = 10000;
	rl.rlim_cur = rl.rlim_max = (rlim_t)n + 64;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
		perror("scale-test: setrlimit");
		return 1;
	}
	if ((c = calloc((size_t)n, sizeof(*c))) == NULL)
		return 1;
	before = rss_kib(argv[3]);
	t0 = wfpb_monotonic_us();
	for (i = 0; i < n; i++) {
		if (wfpb_open(&o, &c[i], err, sizeof(err)) != 0) {
			printf("FAIL session %ld of %ld: %s\n", i + 1, n, err);
			return 1;
		}
	}
	after = rss_kib(argv[3]);
	per = (double)(after - before) * 1024.0 / (double)n;
	printf("%ld sessions open in %.1f s; broker RSS %ld KiB -> %ld KiB: %.0f bytes per idle session\n", n,
	    (double)(wfpb_monotonic_us() - t0) / 1e6, before, after, per);
	if (wfpb_ping(c[n - 1], (const uint8_t *)"last", 4, NULL) != 0 || wfpb_ping(c[0], NULL, 0, NULL) != 0) {
		printf("FAIL the first or last session does not answer with %ld open\n", n);
		return 1;
	}
	for (i = 0; i < n; i++)
		wfpb_close(c[i]);
	free(c);
	if (wfpb_open(&o, &fresh, err, sizeof(err)) != 0 || wfpb_ping(fresh, NULL, 0, NULL) != 0) {
		printf("FAIL a new session after closing them all: %s\n", err);
		return 1;
	}
	wfpb_close(fresh);
	if (per > 32 * 1024) {
		printf("FAIL %.0f bytes per idle session is over the 32 KiB target\n", per);
		return 1;
	}
	printf("ok   %ld idle sessions held within 32 KiB each\n", n);
	printf("1 passed, 0 failed\n");
	return 0;
}
