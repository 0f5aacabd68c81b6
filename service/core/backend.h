/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The redirect backends: the three privileged operations on a socket the
 * broker owns. wfp (Windows) performs the SIO_*_WFP_CONNECTION_REDIRECT_*
 * ioctls; netfilter (Linux) reads SO_ORIGINAL_DST and sets SO_MARK; sim is a
 * deterministic stand-in for tests and demos, chosen only by configuration.
 * Each operation returns 0 or an enum wfpb_status (status.h: EINVAL,
 * EACCES, EOPNOTSUPP, ..., each the wire StatusCode it maps to) with the OS
 * error in *os_err when there is one.
 *
 * set_records is called on a socket before bind or connect. blob may be NULL
 * with len 0: the connection carries no records (a Connect without them).
 * own_mark is the calling principal's policy mark (0: none) and mark_mask
 * the bits of a record's marks it may carry on (policy mark_mask, default
 * all); only netfilter uses them, and neither ever comes from the request.
 */
#ifndef WFPB_BACKEND_H
#define WFPB_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "net.h"

/*
 * The most a backend returns for records or for a context: what a callout
 * chooses is bounded here, so that both fit one response (QueryRecords
 * carries both, Accept a context and a WSAPROTOCOL_INFOW) with room to spare
 * in a 65 535-byte frame. Past it a query answers ENOBUFS.
 */
#define WFPB_REDIRECT_MAX	(16u * 1024u)

/* A malloc'd byte buffer a backend fills; the caller frees data. */
struct wfpb_buf {
	uint8_t	*data;
	size_t	len;
};

struct wfpb_backend_ops {
	const char	*name;
	int		(*query_records)(void *ctx, wfpb_sock s, struct wfpb_buf *out, int *os_err);
	int		(*query_context)(void *ctx, wfpb_sock s, struct wfpb_buf *out, int *os_err);
	int		(*set_records)(void *ctx, wfpb_sock s, const uint8_t *blob, size_t len, uint32_t own_mark,
			    uint32_t mark_mask, int *os_err);
	uint64_t	(*records_applied)(void *ctx);
	/*
	 * Where the redirected connection s was going, asked of the OS where it answers, or read
	 * from what this backend's queries returned (its records or its context, in a layout the
	 * backend knows): 0 with *out set, or -1 when it cannot tell. NULL: never known.
	 */
	int		(*original_dst)(void *ctx, wfpb_sock s, const struct wfpb_buf *records,
			    const struct wfpb_buf *context, struct wfpb_addr *out);
	/*
	 * UDP flows (Flow). NULL where the backend has none: UDP listeners are then refused
	 * EOPNOTSUPP. udp_listener sets what a UDP listener of family needs before it binds
	 * (netfilter: IP_TRANSPARENT and the options that deliver a datagram's original
	 * destination and marks). udp_receive reads the next datagram on listener s into buf
	 * (cap bytes; its whole length in *len, even past cap), who sent it, where it was going,
	 * and its records and context (malloc'd, possibly empty): 0, WFPB_E_AGAIN when none
	 * waits, or a status with *os_err. udp_reply makes the flow's reply socket: bound to
	 * orig_dst and connected to client, so that the flow's later datagrams reach it and the
	 * client's replies come from where it meant to go.
	 */
	int		(*udp_listener)(void *ctx, wfpb_sock s, int family, int *os_err);
	int		(*udp_receive)(void *ctx, wfpb_sock s, uint8_t *buf, size_t cap, size_t *len,
			    struct wfpb_addr *from, struct wfpb_addr *orig_dst, struct wfpb_buf *records,
			    struct wfpb_buf *context, int *os_err);
	int		(*udp_reply)(void *ctx, const struct wfpb_addr *orig_dst, const struct wfpb_addr *client,
			    wfpb_sock *out, int *os_err);
	/*
	 * Where a flow stays on its listener (wfp): WFP delivers every datagram of a redirected flow
	 * to the listener's address and port and maps only replies sent from them back to the
	 * client, so the broker has no reply socket to make and does not read the flows: the
	 * listener itself goes to the proxy (udp_receive and udp_reply are then NULL).
	 * udp_send_first sends a flow's first datagram on upstream s (connected) with its records
	 * (len 0: none) as the platform carries them: 0 or a status with *os_err.
	 */
	int		udp_on_listener;
	int		(*udp_send_first)(void *ctx, wfpb_sock s, const uint8_t *payload, size_t len,
			    const uint8_t *records, size_t records_len, int *os_err);
};

struct wfpb_backend {
	const struct wfpb_backend_ops	*ops;
	void				*ctx;
};

/*
 * Opens the backend a configuration names ("sim", "netfilter", "wfp").
 * Returns 0, or WFPB_E_UNSUPPORTED when this build or platform lacks it, or
 * WFPB_E_NOMEM. Never falls back to another backend.
 */
int WFPB_MUST_CHECK wfpb_backend_open(const char *name, struct wfpb_backend *out);
void wfpb_backend_close(struct wfpb_backend *be);

/* The platform's own backends by name (wfp on Windows), with ctx malloc'd; NULL when not built. */
const struct wfpb_backend_ops *wfpb__platform_backend(const char *name, void **ctx);

/* Writes one context hop (WFPB_CONTEXT_HOP_LEN bytes): family 1, address 16, port 2 (BE). */
#define WFPB_CONTEXT_HOP_LEN	19u
void wfpb__hop_put(uint8_t *p, const struct wfpb_addr *a);
/* Reads one: 0, or -1 when its family is not AF_INET or AF_INET6 (or an AF_INET's padding is not zero). */
int wfpb__hop_get(const uint8_t *p, struct wfpb_addr *a);

/* The sim backend (backend/sim.c). */
extern const struct wfpb_backend_ops wfpb_backend_sim;
void *wfpb_sim_new(void);
void wfpb_sim_free(void *ctx);

/* The sim record format, exposed for tests: magic "WFPS", version 1. */
#define WFPB_SIM_MAGIC		"WFPS"
#define WFPB_SIM_HDR_LEN	16u	/* magic 4, version 1, flags 1, hops 2 (BE), serial 8 (BE) */
#define WFPB_SIM_HOP_LEN	19u	/* family 1, address 16, port 2 (BE) */
#define WFPB_SIM_HOPS_MAX	16u

/* The netfilter backend (backend/netfilter_linux.c) and its record format, exposed for tests and fuzzing. */
extern const struct wfpb_backend_ops wfpb_backend_netfilter;
#define WFPB_NF_MAGIC		"WFPN"
#define WFPB_NF_RECORD_LEN	30u	/* magic 4, version 1, family 1, reserved 2, mark 4 (BE), address 16, port 2 (BE) */

struct wfpb_nf_record {
	uint32_t		mark;	/* the marks the accepted connection arrived with */
	struct wfpb_addr	orig_dst;
};

/* Strict: exact length, version 1, a known family, zero padding. 0 or WFPBROKER__V1__STATUS_CODE__EINVAL. */
int wfpb_nf_record_parse(const uint8_t *blob, size_t len, struct wfpb_nf_record *out);
void wfpb_nf_record_encode(const struct wfpb_nf_record *r, uint8_t out[WFPB_NF_RECORD_LEN]);

#endif
