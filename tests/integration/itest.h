/*
 * Shared pieces of the integration test programs (broker-test, handover-test,
 * win-handover-test): the CHECK macro and opening a session that reports why
 * it could not.
 */
#ifndef WFPB_ITEST_H
#define WFPB_ITEST_H

#include <stdio.h>

#include "wfpb.h"

/* In a case function returning int: print the failed condition and a message, return -1. */
#define CHECK(cond, ...) do {							\
	if (!(cond)) {								\
		printf("  check failed at line %d: %s: ", __LINE__, #cond);	\
		printf(__VA_ARGS__);						\
		printf("\n");							\
		return -1;							\
	}									\
} while (0)

/* Opens a session (client_key NULL: NK); on failure prints why and returns NULL. */
static inline struct wfpb_client *
itest_open(const char *endpoint, const char *server_pub, const char *client_key)
{
	struct wfpb_open_opts	o = { 0 };
	struct wfpb_client	*c;
	char			err[256];

	o.endpoint = endpoint;
	o.server_key_path = server_pub;
	o.client_key_path = client_key;
	o.timeout_ms = 5000;
	if (wfpb_open(&o, &c, err, sizeof(err)) != 0) {
		printf("  open: %s\n", err);
		return NULL;
	}
	return c;
}

/* 127.0.0.1:port. */
static inline struct wfpb_addr
itest_loopback(uint16_t port)
{
	struct wfpb_addr a = { .family = WFPB_AF_INET, .addr = { 127, 0, 0, 1 }, .port = port };

	return a;
}

#endif
