/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Pieces the bench programs share: the clock, latency summaries, and the
 * D-Bus peer (dbus_peer.c).
 */
#ifndef WFPB_BENCH_H
#define WFPB_BENCH_H

#include <stdlib.h>
#include <sys/types.h>
#include <time.h>

static inline double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

struct stats {
	double median, p99;
};

/* Sorts v in place. */
static inline struct stats
summarize(double *v, size_t n)
{
	struct stats s;

	qsort(v, n, sizeof(*v), cmp_double);
	s.median = v[n / 2];
	s.p99 = v[(n * 99) / 100];
	return s;
}

/* A private dbus-daemon and an sd-bus service offering Fetch(ay) -> ay. */
struct dbus_peer {
	pid_t	daemon, service;
	char	address[256];
};

int dbus_peer_start(struct dbus_peer *p, const char *dir);
void dbus_peer_stop(struct dbus_peer *p);
/* rounds Fetch calls after 200 of warm-up; lat must hold rounds entries. */
struct stats dbus_fetch(const struct dbus_peer *p, int rounds, double *lat);

#endif
