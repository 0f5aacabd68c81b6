/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench-pool: load for the Windows service's worker pool. CLIENTS threads,
 * started together, each for SECONDS either opens and closes NK sessions
 * (a handshake each: the work the pool spreads over its workers) or pings
 * over one session (dispatch: the part under the core lock). Prints one
 * line: "MODE CLIENTS ops/s". bench/wine_pool.sh runs it against the same
 * broker binary with workers = 1 and workers = 2 and prints the ratio.
 *
 *   bench-pool ENDPOINT SERVER_PUB CLIENTS SECONDS handshake|ping
 */
#include <windows.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wfpb.h"

#define CLIENTS_MAX	64

static const char	*endpoint, *server_pub;
static int		handshakes;
static double		seconds;
static volatile LONG	ready, failures;
static HANDLE		go;

struct worker {
	HANDLE		thread;
	unsigned long	ops;
};

static int
open_session(struct wfpb_client **c)
{
	struct wfpb_open_opts	o = WFPB_OPEN_OPTS_INIT;
	char			err[256];

	o.endpoint = endpoint;
	o.server_key_path = server_pub;
	o.timeout_ms = 10000;
	if (wfpb_open(&o, c, err, sizeof(err)) != 0) {
		fprintf(stderr, "bench-pool: open: %s\n", err);
		return -1;
	}
	return 0;
}

static DWORD WINAPI
worker_main(LPVOID arg)
{
	struct worker		*w = arg;
	struct wfpb_client	*c = NULL;
	uint64_t		until;

	if (!handshakes && open_session(&c) != 0) {
		InterlockedIncrement(&failures);
		InterlockedIncrement(&ready);
		return 0;
	}
	InterlockedIncrement(&ready);
	WaitForSingleObject(go, INFINITE);
	until = wfpb_monotonic_us() + (uint64_t)(seconds * 1e6);
	while (wfpb_monotonic_us() < until) {
		if (handshakes) {
			if (open_session(&c) != 0) {
				InterlockedIncrement(&failures);
				break;
			}
			wfpb_close(c);
			c = NULL;
		} else if (wfpb_ping(c, (const uint8_t *)"bench", 5, NULL) != 0) {
			fprintf(stderr, "bench-pool: ping: %s\n", wfpb_errmsg(c));
			InterlockedIncrement(&failures);
			break;
		}
		w->ops++;
	}
	wfpb_close(c);
	return 0;
}

int
main(int argc, char **argv)
{
	struct worker	w[CLIENTS_MAX];
	unsigned long	total = 0;
	uint64_t	t0, t1;
	int		n, i;

	if (argc != 6 || (n = atoi(argv[3])) < 1 || n > CLIENTS_MAX || (seconds = atof(argv[4])) <= 0 ||
	    (strcmp(argv[5], "handshake") != 0 && strcmp(argv[5], "ping") != 0)) {
		fprintf(stderr, "usage: bench-pool ENDPOINT SERVER_PUB CLIENTS SECONDS handshake|ping\n");
		return 2;
	}
	endpoint = argv[1];
	server_pub = argv[2];
	handshakes = strcmp(argv[5], "handshake") == 0;
	if ((go = CreateEventW(NULL, TRUE, FALSE, NULL)) == NULL)
		return 1;
	memset(w, 0, sizeof(w));
	for (i = 0; i < n; i++) {
		if ((w[i].thread = CreateThread(NULL, 0, worker_main, &w[i], 0, NULL)) == NULL) {
			fprintf(stderr, "bench-pool: CreateThread: error %lu\n", GetLastError());
			return 1;
		}
	}
	while (InterlockedCompareExchange(&ready, 0, 0) < n)
		Sleep(1);
	t0 = wfpb_monotonic_us();
	SetEvent(go);
	for (i = 0; i < n; i++) {
		WaitForSingleObject(w[i].thread, INFINITE);
		CloseHandle(w[i].thread);
		total += w[i].ops;
	}
	t1 = wfpb_monotonic_us();
	if (failures != 0) {
		fprintf(stderr, "bench-pool: %ld clients failed\n", (long)failures);
		return 1;
	}
	printf("%s %d %.0f\n", argv[5], n, (double)total / ((double)(t1 - t0) / 1e6));
	return 0;
}
