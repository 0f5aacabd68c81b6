/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libwfpb: the client side of the wfpbroker protocol.
 *
 * A struct wfpb_client is one authenticated session with the broker. The
 * calls below block until the broker answers or the timeout passes; the
 * asynchronous interface at the end of this header submits requests without
 * waiting and collects their completions in the caller's own event loop.
 * Both may be used on one client. A client object is not thread-safe: use it
 * from one thread at a time (different clients may be used from different
 * threads at once). The library starts no thread and runs no callback. Every function returns 0 on success or a
 * negative WFPB_E_* code (see wfpb_error.h); when the broker answered with a
 * non-OK status the code is WFPB_E_STATUS and wfpb_status() holds it.
 * wfpb_errmsg() describes the last failure in a sentence.
 *
 * Linking: pkg-config --cflags --libs wfpb, or find_package(wfpb) and the
 * target wfpb::wfpb. The headers are self-contained: wfpb.h with
 * wfpb_addr.h, wfpb_error.h, wfpb_api.h and wfpb_version.h.
 *
 * The ABI rule. libwfpb.so.0 / wfpb.dll keep every function of this header
 * and the layout of every field they have today; later versions add
 * functions and add fields only at the end of a struct. So that a struct can
 * grow, the structs passed in or out (wfpb_open_opts, wfpb_status_info,
 * wfpb_accepted, wfpb_relayed, wfpb_records) begin with a `size` member the caller sets to
 * sizeof the struct it was compiled with; initialise them with the
 * WFPB_*_INIT macros. The library reads and writes only the fields that fit
 * in that size and leaves the rest as the caller set them; a size smaller
 * than this version's first layout is WFPB_E_INVAL. A removed function or a
 * changed field would be a new soname (libwfpb.so.1) and a new DLL name.
 */
#ifndef WFPB_H
#define WFPB_H

#include <stddef.h>
#include <stdint.h>

#include "wfpb_addr.h"
#include "wfpb_api.h"
#include "wfpb_error.h"
#include "wfpb_version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The version of the library loaded at run time ("0.1.0"); WFPB_VERSION_STRING is the headers'. */
WFPB_API const char *wfpb_version(void);

struct wfpb_client;

struct wfpb_open_opts {
	size_t		size;			/* sizeof(struct wfpb_open_opts): WFPB_OPEN_OPTS_INIT */
	const char	*endpoint;		/* NULL: the platform default */
	const char	*server_key_path;	/* pinned broker key file; NULL: default location */
	const uint8_t	*server_key;		/* or the 32-byte key itself (overrides the path) */
	const char	*client_key_path;	/* private key file for IK, NULL for NK */
	uint32_t	timeout_ms;		/* per call; 0 means 10 s */
	/*
	 * Appended to the first layout. 1: sockets the broker hands over stay
	 * non-blocking, as the broker used them and as an event loop wants them
	 * (two fewer system calls each); 0: they arrive blocking.
	 */
	int		nonblocking_sockets;
	/*
	 * Appended too. 1: when the broker ends the session (it restarted, or
	 * stopped), the requests in flight complete with WFPB_E_RESTARTED, and
	 * the next call opens a new session by itself (wfpb_reconnect), with the
	 * same endpoint, pinned key and client key. What belonged to the old
	 * session is gone with it: listener ids, SESSION stash entries. 0: the
	 * client is dead after such an end, and can only be closed.
	 */
	int		reconnect;
};
#define WFPB_OPEN_OPTS_INIT	{ sizeof(struct wfpb_open_opts), NULL, NULL, NULL, NULL, 0, 0, 0 }

/*
 * Opens a new session on a client whose session the broker ended
 * (WFPB_E_RESTARTED; any client, whatever its reconnect option), with the
 * options it was opened with. 0 (also when the session is up: nothing to do),
 * or the error of the attempt (WFPB_E_NOENT while the broker is not back yet):
 * the client stays as it was, and may be asked again. It waits for the
 * broker's handshake answer, up to the client's timeout.
 */
WFPB_API int WFPB_MUST_CHECK wfpb_reconnect(struct wfpb_client *c);

/* The default endpoint and pinned-key path of this platform. */
WFPB_API const char *wfpb_default_endpoint(void);
WFPB_API const char *wfpb_default_server_key(void);

/*
 * Connects and completes the handshake. On success *out owns the session
 * (close with wfpb_close). On failure *out is NULL and, if errbuf is not
 * NULL, errbuf holds a sentence naming the cause (e.g. a squatted endpoint
 * fails as WFPB_E_DECRYPT "... not the pinned key?"). The newest protocol
 * version is offered first; a broker that speaks only version 1 refuses it
 * and the session is opened again on version 1 (wfpb_ping reports which).
 */
WFPB_API int WFPB_MUST_CHECK wfpb_open(const struct wfpb_open_opts *opts, struct wfpb_client **out, char *errbuf,
    size_t errlen);

/* Closes the session and wipes its keys. NULL is a no-op. */
WFPB_API void wfpb_close(struct wfpb_client *c);

/*
 * Pings the broker with an echo payload of len bytes (<= 1024). On success
 * *protocol_version (may be NULL) is the broker's protocol version.
 */
WFPB_API int WFPB_MUST_CHECK wfpb_ping(struct wfpb_client *c, const uint8_t *payload, size_t len,
    uint32_t *protocol_version);

#define WFPB_HANDLE_LEN	16

/*
 * How long a stash entry lives (the `lifetime` of Stash, Accept and
 * QueryRecords): until this session ends; until its TTL, for later sessions
 * of the same principal too; or as a session entry that the first Connect,
 * Prepare or ApplyRecords that applies it to a socket releases (a proxy's
 * Accept then Connect, with no Release after). Fetch does not use an entry
 * up, nor does a request refused before the records reach a socket. Any
 * other value is WFPB_E_INVAL, and nothing is sent.
 */
#define WFPB_LIFETIME_SESSION	0
#define WFPB_LIFETIME_PRINCIPAL	1
#define WFPB_LIFETIME_ONCE	2

/* Stores a blob (1..16 KiB by default) with the broker; writes its handle. Needs the `stash` grant. */
WFPB_API int WFPB_MUST_CHECK wfpb_stash(struct wfpb_client *c, const uint8_t *blob, size_t len, int lifetime,
    uint8_t handle[WFPB_HANDLE_LEN]);

/* Reads a stashed blob back. On success *blob is malloc'd (free with wfpb_free). Needs `fetch`. */
WFPB_API int WFPB_MUST_CHECK wfpb_fetch(struct wfpb_client *c, const uint8_t handle[WFPB_HANDLE_LEN], uint8_t **blob,
    size_t *len);

/* Releases a stash entry this principal owns. */
WFPB_API int WFPB_MUST_CHECK wfpb_release(struct wfpb_client *c, const uint8_t handle[WFPB_HANDLE_LEN]);

struct wfpb_status_info {
	size_t		size;		/* sizeof(struct wfpb_status_info): WFPB_STATUS_INFO_INIT */
	uint32_t	sessions;
	uint64_t	requests;
	uint64_t	denials;
	uint32_t	stash_entries;
	uint64_t	stash_bytes;
	uint32_t	listeners;
	uint64_t	uptime_ms;
	uint64_t	records_applied;
	uint64_t	audit_durable_seq;
	uint64_t	audit_commits;
	uint64_t	audit_max_batch;
	int		audit_broken;
	uint64_t	events_reported;
	uint64_t	rss_bytes;	/* the broker's resident memory; 0 if unknown */
	uint32_t	open_handles;	/* its open descriptors or handles; 0 if unknown */
	uint32_t	workers;	/* threads serving sessions (the Windows completion-port pool) */
	uint32_t	pid;		/* the broker's process id: a WFP callout's localRedirectTargetPID */
	char		backend[16];
	uint32_t	requests_in_flight;	/* requests waiting across sessions; appended to the first layout */
	uint64_t	audit_lost;		/* audit records the broker could not write since it started */
};
#define WFPB_STATUS_INFO_INIT	{ sizeof(struct wfpb_status_info), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, { 0 }, 0, 0 }

/* Broker counters (admin). */
WFPB_API int WFPB_MUST_CHECK wfpb_server_status(struct wfpb_client *c, struct wfpb_status_info *out);

/* Asks the broker to re-read its configuration (admin); *principals may be NULL. */
WFPB_API int WFPB_MUST_CHECK wfpb_reload(struct wfpb_client *c, uint32_t *principals);

/* A socket handed over by the broker: a file descriptor on POSIX, a SOCKET on Windows. */
typedef intptr_t wfpb_socket_t;
#define WFPB_SOCKET_NONE	((wfpb_socket_t)-1)

/*
 * Creates a listener owned by this session (released with it). Needs the
 * `listen` grant and an address inside the principal's listen ranges; port 0
 * picks one, reported in *bound (may be NULL).
 */
WFPB_API int WFPB_MUST_CHECK wfpb_listen(struct wfpb_client *c, const struct wfpb_addr *local, unsigned backlog,
    uint64_t *listener_id, struct wfpb_addr *bound);

/*
 * A UDP listener (needs `udp_listen`; the address inside the principal's udp_listen ranges),
 * for wfpb_flow. Released with wfpb_release_listener.
 */
WFPB_API int WFPB_MUST_CHECK wfpb_listen_udp(struct wfpb_client *c, const struct wfpb_addr *local,
    uint64_t *listener_id, struct wfpb_addr *bound);

/*
 * A UDP listener with what the broker hands over with it: on Windows (the wfp backend) every
 * datagram of a redirected flow reaches the listener's port and replies must leave from it, so
 * the listener itself is the caller's (held: IP_WFP_REDIRECT_RECORDS and _CONTEXT enabled; read
 * a flow's first datagram with WSARecvMsg, give it to wfpb_flow_first, answer the client on it);
 * on Linux held is WFPB_SOCKET_NONE and flows come from wfpb_flow. Release the listener with
 * wfpb_release_listener and close held with wfpb_udp_listener_close.
 */
struct wfpb_udp_listener {
	size_t			size;		/* sizeof(struct wfpb_udp_listener): WFPB_UDP_LISTENER_INIT */
	uint64_t		id;
	struct wfpb_addr	bound;
	wfpb_socket_t		held;
};
#define WFPB_UDP_LISTENER_INIT	{ sizeof(struct wfpb_udp_listener), 0, { 0 }, WFPB_SOCKET_NONE }

WFPB_API int WFPB_MUST_CHECK wfpb_listen_udp_held(struct wfpb_client *c, const struct wfpb_addr *local,
    struct wfpb_udp_listener *out);
WFPB_API void wfpb_udp_listener_close(struct wfpb_udp_listener *l);

/* Releases a listener. */
WFPB_API int WFPB_MUST_CHECK wfpb_release_listener(struct wfpb_client *c, uint64_t listener_id);

/*
 * Sockets the broker hands over (Accept, Connect, Relay) arrive in blocking mode, like
 * accept()'s and socket()'s, unless the session was opened with nonblocking_sockets.
 */
struct wfpb_accepted {
	size_t			size;		/* sizeof(struct wfpb_accepted): WFPB_ACCEPTED_INIT */
	wfpb_socket_t		sock;		/* owned by the caller */
	struct wfpb_addr	peer, local;
	int			has_records;
	uint8_t			records[WFPB_HANDLE_LEN];	/* stash handle of the redirect records */
	uint8_t			*context;	/* redirect context, malloc'd, may be NULL */
	size_t			context_len;
	/*
	 * The OS error of the query when the connection carried no records (it
	 * was not redirected) or no context; 0 when the query succeeded.
	 */
	int			records_error;
	int			context_error;
	/* Appended to the first layout: where the connection was going, when the broker knows it. */
	int			has_original_dst;
	struct wfpb_addr	original_dst;
};
#define WFPB_ACCEPTED_INIT	{ sizeof(struct wfpb_accepted), WFPB_SOCKET_NONE, { 0 }, { 0 }, 0, { 0 }, NULL, 0, 0, 0, \
	0, { 0 } }

/*
 * Waits up to timeout_ms (0: 30 s) for a connection on a listener; the broker
 * queries its records and context natively and stashes the records for
 * lifetime (WFPB_LIFETIME_*). A connection that was not redirected is accepted without records
 * (has_records 0, records_error the OS error), unless the principal has
 * require_records, which is then WFPB_E_STATUS NOT_FOUND. Needs
 * `accept`. Release *out with wfpb_accepted_free (closes sock unless the
 * caller reset it to WFPB_SOCKET_NONE after taking it).
 */
WFPB_API int WFPB_MUST_CHECK wfpb_accept(struct wfpb_client *c, uint64_t listener_id, uint32_t timeout_ms,
    int lifetime, struct wfpb_accepted *out);

/*
 * As wfpb_accept, on a listener the broker's configuration declares for this
 * principal ([listener NAME]), named instead of a listener id: the broker keeps
 * it open whatever sessions come and go, so connections made while the caller
 * was away wait in its queue. Another principal's, or no such name: NOT_FOUND.
 */
WFPB_API int WFPB_MUST_CHECK wfpb_accept_declared(struct wfpb_client *c, const char *listener, uint32_t timeout_ms,
    int lifetime, struct wfpb_accepted *out);
WFPB_API void wfpb_accepted_free(struct wfpb_accepted *a);

/*
 * A relayed connection (wfpb_relay): the accepted connection and the upstream
 * one the broker opened for it, connected, with its records applied. Both
 * sockets are the caller's, in blocking mode.
 */
struct wfpb_relayed {
	size_t			size;		/* sizeof(struct wfpb_relayed): WFPB_RELAYED_INIT */
	wfpb_socket_t		accepted;	/* the client's connection */
	wfpb_socket_t		upstream;	/* connected to remote */
	struct wfpb_addr	peer, local;	/* of accepted */
	struct wfpb_addr	remote;		/* where upstream went */
	struct wfpb_addr	upstream_local;
	int			has_original_dst;
	struct wfpb_addr	original_dst;	/* where the connection was going, when the broker knows it */
	uint8_t			*context;	/* redirect context, malloc'd, may be NULL */
	size_t			context_len;
	int			records_error;	/* as in struct wfpb_accepted */
	int			context_error;
};
#define WFPB_RELAYED_INIT	{ sizeof(struct wfpb_relayed), WFPB_SOCKET_NONE, WFPB_SOCKET_NONE, { 0 }, { 0 }, \
	{ 0 }, { 0 }, 0, { 0 }, NULL, 0, 0, 0 }

/*
 * Accept and Connect in one request, for a transparent proxy: waits up to
 * timeout_ms (0: 30 s) for a connection on the session's listener_id, or on the
 * declared listener called `listener` (then listener_id is 0); the broker
 * queries its records and context, connects upstream to remote (NULL: to the
 * connection's original destination, when the broker's backend knows it, else
 * WFPB_E_STATUS NOT_FOUND), bound to local (may be NULL; the bind ranges), with
 * the records applied, waiting up to connect_timeout_ms (0: 10 s), and hands both
 * over. When the upstream connection fails the accepted one is closed and the
 * broker's status says why. Needs `accept` and `connect`. Release *out with
 * wfpb_relayed_free (closes the sockets the caller did not take).
 */
WFPB_API int WFPB_MUST_CHECK wfpb_relay(struct wfpb_client *c, uint64_t listener_id, const char *listener,
    const struct wfpb_addr *remote, const struct wfpb_addr *local, uint32_t timeout_ms, uint32_t connect_timeout_ms,
    struct wfpb_relayed *out);
WFPB_API void wfpb_relayed_free(struct wfpb_relayed *r);

/*
 * A UDP flow (wfpb_flow): the reply socket, bound to where the client sent its first datagram
 * and connected to the client (the flow's later datagrams arrive on it, and what is sent on it
 * reaches the client from that address), and the upstream socket, with the records applied and
 * connected to remote. Both the caller's, in blocking mode unless nonblocking_sockets.
 */
struct wfpb_flow {
	size_t			size;		/* sizeof(struct wfpb_flow): WFPB_FLOW_INIT */
	wfpb_socket_t		reply, upstream;
	struct wfpb_addr	client, original_dst, remote;
	uint8_t			*payload;	/* the first datagram, malloc'd */
	size_t			payload_len;
	int			forwarded;	/* the broker sent it upstream (not hold_first) */
	uint8_t			*context;	/* redirect context, malloc'd, may be NULL */
	size_t			context_len;
};
#define WFPB_FLOW_INIT	{ sizeof(struct wfpb_flow), WFPB_SOCKET_NONE, WFPB_SOCKET_NONE, { 0 }, { 0 }, { 0 }, \
	NULL, 0, 0, NULL, 0 }

/* wfpb_flow's flags. */
#define WFPB_FLOW_HOLD_FIRST		0x1u	/* the caller sends the first datagram (Linux only) */
#define WFPB_FLOW_WITHOUT_RECORDS	0x2u	/* upstream carries none of the flow's records */

/*
 * Waits up to timeout_ms (0: 30 s) for a new flow on UDP listener listener_id: the broker
 * reads its first datagram with its records and original destination, and sends it upstream
 * to remote (NULL: the original destination) with those records applied, unless flags say
 * otherwise (WFPB_FLOW_*). Needs `udp_flow`; remote inside the udp_connect ranges. Release
 * *out with wfpb_flow_free.
 */
WFPB_API int WFPB_MUST_CHECK wfpb_flow(struct wfpb_client *c, uint64_t listener_id, const struct wfpb_addr *remote,
    unsigned flags, uint32_t timeout_ms, struct wfpb_flow *out);
WFPB_API void wfpb_flow_free(struct wfpb_flow *f);

/*
 * A flow's first datagram as a proxy read it from its held listener (Windows), with the control
 * data WSARecvMsg gave: IP_WFP_REDIRECT_RECORDS (records) and IP_WFP_REDIRECT_CONTEXT (context).
 * Each at most 16 KiB.
 */
struct wfpb_flow_first {
	size_t			size;		/* sizeof(struct wfpb_flow_first): WFPB_FLOW_FIRST_INIT */
	struct wfpb_addr	client;		/* who sent it */
	const uint8_t		*payload, *records, *context;
	size_t			payload_len, records_len, context_len;
};
#define WFPB_FLOW_FIRST_INIT	{ sizeof(struct wfpb_flow_first), { 0 }, NULL, NULL, NULL, 0, 0, 0 }

/*
 * Windows: the broker opens upstream to remote (NULL: the original destination, read from the
 * context where its layout is one docs/CALLOUTS.md lists), sends first's payload on it with the
 * records as WFP requires (one IP_WFP_REDIRECT_RECORDS control message, WSASendMsg), and hands
 * it over in out->upstream (out->reply stays WFPB_SOCKET_NONE: replies go on the held
 * listener). The records are the caller's word: needs `udp_flow` and `apply_foreign`.
 * WFPB_FLOW_HOLD_FIRST only with WFPB_FLOW_WITHOUT_RECORDS (the records travel on that
 * datagram alone). Where the broker reads flows itself (Linux) it is refused EOPNOTSUPP.
 */
WFPB_API int WFPB_MUST_CHECK wfpb_flow_first(struct wfpb_client *c, uint64_t listener_id,
    const struct wfpb_flow_first *first, const struct wfpb_addr *remote, unsigned flags, struct wfpb_flow *out);

/*
 * Windows: the next datagram on a held UDP listener, read with WSARecvMsg together with the
 * records and context WFP attached to it as control data (only a flow's first datagram has
 * them): the payload in buf (cap bytes), the control data in ctl (ctl_cap bytes;
 * WFPB_UDP_CONTROL_MAX is enough), and *out (WFPB_FLOW_FIRST_INIT) pointing into both, ready
 * for wfpb_flow_first when records_len or context_len says a flow begins. The control data is
 * read strictly (a header or data past its buffer, a type twice, more than 16 KiB: refused).
 * 0; WFPB_E_AGAIN when none waits (a non-blocking socket); WFPB_E_LIMIT when the datagram or
 * its control data did not fit (it is dropped); WFPB_E_PROTOCOL; WFPB_E_OS. POSIX:
 * WFPB_E_UNSUPPORTED (the broker reads flows there: wfpb_flow).
 */
#define WFPB_UDP_CONTROL_MAX	(2u * (16u * 1024u + 16u) + 256u)
WFPB_API int WFPB_MUST_CHECK wfpb_udp_recv(wfpb_socket_t held, uint8_t *buf, size_t cap, uint8_t *ctl,
    size_t ctl_cap, struct wfpb_flow_first *out);

/*
 * The broker creates a socket, applies the records (a stash handle, or the
 * blob when handle is NULL; neither: no records, though under netfilter the
 * principal's own mark still goes on) before any bind or connect, binds to local if
 * given, connects to remote within timeout_ms (0: 10 s) and hands the socket
 * over in *sock. Needs `connect` and a remote inside the connect ranges.
 */
WFPB_API int WFPB_MUST_CHECK wfpb_connect(struct wfpb_client *c, const uint8_t *handle, const uint8_t *blob,
    size_t blob_len, const struct wfpb_addr *remote, const struct wfpb_addr *local, uint32_t timeout_ms,
    wfpb_socket_t *sock, struct wfpb_addr *local_out);

struct wfpb_records {
	size_t	size;		/* sizeof(struct wfpb_records): WFPB_RECORDS_INIT */
	int	has_handle;
	uint8_t	handle[WFPB_HANDLE_LEN];
	uint8_t	*blob;		/* malloc'd */
	size_t	blob_len;
	uint8_t	*context;	/* malloc'd */
	size_t	context_len;
	int	records_error;	/* as in struct wfpb_accepted */
	int	context_error;
};
#define WFPB_RECORDS_INIT	{ sizeof(struct wfpb_records), 0, { 0 }, NULL, 0, NULL, 0, 0, 0 }

/*
 * Secondary mode: the broker queries the records of a socket the client
 * owns (sent along with the request; the client keeps its own). Needs
 * `query`. Free *out with wfpb_records_free.
 */
WFPB_API int WFPB_MUST_CHECK wfpb_query_records(struct wfpb_client *c, wfpb_socket_t sock, int lifetime,
    struct wfpb_records *out);
WFPB_API void wfpb_records_free(struct wfpb_records *r);

/*
 * For a client that connects itself: the broker creates an unconnected TCP
 * socket of family (WFPB_AF_INET or WFPB_AF_INET6), applies the records (a
 * stash handle from Accept or QueryRecords; a blob, or a handle of the
 * client's own Stash, only with the `apply_foreign` grant; neither: none,
 * though under netfilter the principal's own mark still goes on) and hands it
 * over in *sock, in blocking mode. The socket comes bound, to the
 * unspecified address and a port the kernel picks from its ephemeral range,
 * so that it cannot become a listener where its client chooses
 * (docs/SECURITY.md); the client sets its options and connects it; the
 * broker's connect ranges do not apply. Needs `prepare`. The supported
 * alternative to wfpb_apply_records on Windows.
 */
WFPB_API int WFPB_MUST_CHECK wfpb_prepare(struct wfpb_client *c, const uint8_t *handle, const uint8_t *blob, size_t blob_len,
    int family, wfpb_socket_t *sock);

/* As wfpb_prepare, bound to local instead (inside the principal's bind ranges; NULL: as wfpb_prepare). */
WFPB_API int WFPB_MUST_CHECK wfpb_prepare_at(struct wfpb_client *c, const uint8_t *handle, const uint8_t *blob,
    size_t blob_len, int family, const struct wfpb_addr *local, wfpb_socket_t *sock);

/* Secondary mode: the broker applies records to the client's socket, which then connects itself. Needs `apply`. */
WFPB_API int WFPB_MUST_CHECK wfpb_apply_records(struct wfpb_client *c, wfpb_socket_t sock, const uint8_t *handle,
    const uint8_t *blob, size_t blob_len);

/* Frees memory libwfpb returned. */
WFPB_API void wfpb_free(void *p);

/* The name of a status code ("DENIED", "QUOTA", ...), for messages. */
WFPB_API const char *wfpb_status_name(int code);

/* A monotonic clock in microseconds, for callers that time calls. */
WFPB_API uint64_t wfpb_monotonic_us(void);

/* Status codes callers commonly test for (values of wfpbroker.v1.StatusCode). */
#define WFPBROKER_STATUS_EACCES		1
#define WFPBROKER_STATUS_EINVAL		2
#define WFPBROKER_STATUS_EOPNOTSUPP	3
#define WFPBROKER_STATUS_DENIED		32
#define WFPBROKER_STATUS_QUOTA		33
#define WFPBROKER_STATUS_NOT_FOUND	34
#define WFPBROKER_STATUS_BAD_REQUEST	35
#define WFPBROKER_STATUS_TIMEOUT	36
#define WFPBROKER_STATUS_UNAVAILABLE	37
#define WFPBROKER_STATUS_CANCELLED	39	/* in audit records only: the session ended first */

/*
 * Asynchronous requests (protocol version 2; on a version-1 session they
 * work too, answered one after another in order). A submit call queues one
 * request, writes it (waiting at most the client's timeout for the
 * transport to take it) and returns its id without waiting for the answer;
 * the broker keeps up to its max_inflight Accepts and Connects waiting per
 * session (one more completes with QUOTA) and answers each when it is done,
 * in any order. The result goes into the caller's own output arguments,
 * which must stay valid until that request completes. Wait for
 * wfpb_wait_handle() to be ready (readable descriptor on POSIX, signalled
 * event HANDLE on Windows; in epoll, poll, WSAPoll/WaitForMultipleObjects,
 * libuv, ...), then call wfpb_complete() to collect what has finished.
 * Blocking calls on the same client may finish other requests meanwhile:
 * their completions wait in a queue, so check wfpb_completions_queued()
 * before waiting on the handle again. Closing the client abandons what is
 * in flight (the broker releases it with the session).
 */
struct wfpb_completion {
	size_t		size;		/* sizeof(struct wfpb_completion): WFPB_COMPLETION_INIT */
	uint64_t	request_id;	/* as the submit call returned it */
	void		*user;		/* as given to the submit call */
	int		rc;		/* 0; WFPB_E_STATUS (status and message say why); another WFPB_E_* */
	int		status;		/* the broker's status code when rc is WFPB_E_STATUS, else 0 */
	char		message[256];	/* a sentence when rc is not 0 */
	/*
	 * Appended to the first layout: the operation it completes (WFPB_OP_*). An array of
	 * completions is read with the stride its first element's size gives, so an array
	 * built with the first layout's size still works.
	 */
	int		op;
};
#define WFPB_COMPLETION_INIT	{ sizeof(struct wfpb_completion), 0, NULL, 0, 0, { 0 }, 0 }

/* The operations a completion names (the protocol's op numbers, docs/PROTOCOL.md §5). */
#define WFPB_OP_PING		10
#define WFPB_OP_LISTEN		11
#define WFPB_OP_ACCEPT		12
#define WFPB_OP_CONNECT		13
#define WFPB_OP_QUERY_RECORDS	14
#define WFPB_OP_APPLY_RECORDS	15
#define WFPB_OP_STASH		16
#define WFPB_OP_FETCH		17
#define WFPB_OP_RELEASE		18
#define WFPB_OP_STATUS		19
#define WFPB_OP_RELOAD		20
#define WFPB_OP_PREPARE		21
#define WFPB_OP_RELAY		22
#define WFPB_OP_FLOW		23
#define WFPB_OP_CANCEL		24

/* A timeout_ms for wfpb_submit_accept, _accept_declared, _relay and _flow: wait until cancelled. */
#define WFPB_WAIT_FOREVER	0xffffffffu

/*
 * Cancels request_id of this session while it waits at the broker (an Accept, Connect, Relay,
 * Flow; an ApplyRecords before its records are set): it completes with WFPB_E_STATUS and status
 * CANCELLED, what it had started undone. This request itself completes OK, or NOT_FOUND when
 * nothing of that id waits (it may have completed meanwhile).
 */
WFPB_API int WFPB_MUST_CHECK wfpb_submit_cancel(struct wfpb_client *c, uint64_t request_id, void *user,
    uint64_t *cancel_id);

/*
 * The requests this session may keep waiting at the broker at once (its max_inflight; 1 for a
 * protocol version 1 session): asked of the broker once (a Ping), then remembered. > 0, or a
 * negative WFPB_E_* when it could not be asked.
 */
WFPB_API int WFPB_MUST_CHECK wfpb_max_inflight(struct wfpb_client *c);

/* As wfpb_ping; *protocol_version (may be NULL) is set on completion. */
WFPB_API int WFPB_MUST_CHECK wfpb_submit_ping(struct wfpb_client *c, const uint8_t *payload, size_t len,
    uint32_t *protocol_version, void *user, uint64_t *request_id);

/* As wfpb_fetch; *blob (wfpb_free) and *len are set on success. */
WFPB_API int WFPB_MUST_CHECK wfpb_submit_fetch(struct wfpb_client *c, const uint8_t handle[WFPB_HANDLE_LEN],
    uint8_t **blob, size_t *len, void *user, uint64_t *request_id);

/* As wfpb_accept; *out (initialised with WFPB_ACCEPTED_INIT) is filled on success. */
WFPB_API int WFPB_MUST_CHECK wfpb_submit_accept(struct wfpb_client *c, uint64_t listener_id, uint32_t timeout_ms,
    int lifetime, struct wfpb_accepted *out, void *user, uint64_t *request_id);

/* As wfpb_accept_declared; *out (initialised with WFPB_ACCEPTED_INIT) is filled on success. */
WFPB_API int WFPB_MUST_CHECK wfpb_submit_accept_declared(struct wfpb_client *c, const char *listener,
    uint32_t timeout_ms, int lifetime, struct wfpb_accepted *out, void *user, uint64_t *request_id);

/* As wfpb_flow; *out (initialised with WFPB_FLOW_INIT) is filled on success. */
WFPB_API int WFPB_MUST_CHECK wfpb_submit_flow(struct wfpb_client *c, uint64_t listener_id,
    const struct wfpb_addr *remote, unsigned flags, uint32_t timeout_ms, struct wfpb_flow *out, void *user,
    uint64_t *request_id);
/* As wfpb_flow_first and wfpb_listen_udp_held; *out is filled on success. */
WFPB_API int WFPB_MUST_CHECK wfpb_submit_flow_first(struct wfpb_client *c, uint64_t listener_id,
    const struct wfpb_flow_first *first, const struct wfpb_addr *remote, unsigned flags, struct wfpb_flow *out,
    void *user, uint64_t *request_id);
WFPB_API int WFPB_MUST_CHECK wfpb_submit_listen_udp_held(struct wfpb_client *c, const struct wfpb_addr *local,
    struct wfpb_udp_listener *out, void *user, uint64_t *request_id);

/* As wfpb_relay; *out (initialised with WFPB_RELAYED_INIT) is filled on success. */
WFPB_API int WFPB_MUST_CHECK wfpb_submit_relay(struct wfpb_client *c, uint64_t listener_id, const char *listener,
    const struct wfpb_addr *remote, const struct wfpb_addr *local, uint32_t timeout_ms, uint32_t connect_timeout_ms,
    struct wfpb_relayed *out, void *user, uint64_t *request_id);

/* As wfpb_connect; *sock and *local_out (may be NULL) are set on success. */
WFPB_API int WFPB_MUST_CHECK wfpb_submit_connect(struct wfpb_client *c, const uint8_t *handle, const uint8_t *blob,
    size_t blob_len, const struct wfpb_addr *remote, const struct wfpb_addr *local, uint32_t timeout_ms,
    wfpb_socket_t *sock, struct wfpb_addr *local_out, void *user, uint64_t *request_id);

/* As wfpb_listen and wfpb_listen_udp; *listener_id and *bound (may be NULL) are set on completion. */
WFPB_API int WFPB_MUST_CHECK wfpb_submit_listen(struct wfpb_client *c, const struct wfpb_addr *local,
    unsigned backlog, uint64_t *listener_id, struct wfpb_addr *bound, void *user, uint64_t *request_id);
WFPB_API int WFPB_MUST_CHECK wfpb_submit_listen_udp(struct wfpb_client *c, const struct wfpb_addr *local,
    uint64_t *listener_id, struct wfpb_addr *bound, void *user, uint64_t *request_id);

/* As wfpb_release_listener. */
WFPB_API int WFPB_MUST_CHECK wfpb_submit_release_listener(struct wfpb_client *c, uint64_t listener_id, void *user,
    uint64_t *request_id);

/* As wfpb_prepare_at (local may be NULL); *sock is set on completion. */
WFPB_API int WFPB_MUST_CHECK wfpb_submit_prepare(struct wfpb_client *c, const uint8_t *handle, const uint8_t *blob,
    size_t blob_len, int family, const struct wfpb_addr *local, wfpb_socket_t *sock, void *user,
    uint64_t *request_id);

/* As wfpb_query_records; *out (initialised with WFPB_RECORDS_INIT) is filled on completion. */
WFPB_API int WFPB_MUST_CHECK wfpb_submit_query_records(struct wfpb_client *c, wfpb_socket_t sock, int lifetime,
    struct wfpb_records *out, void *user, uint64_t *request_id);

/* As wfpb_apply_records: completes once the broker set the records (after their audit record). */
WFPB_API int WFPB_MUST_CHECK wfpb_submit_apply_records(struct wfpb_client *c, wfpb_socket_t sock,
    const uint8_t *handle, const uint8_t *blob, size_t blob_len, void *user, uint64_t *request_id);

/* As wfpb_release: the stash entry goes (the handle is copied into the request at once). */
WFPB_API int WFPB_MUST_CHECK wfpb_submit_release(struct wfpb_client *c, const uint8_t handle[WFPB_HANDLE_LEN],
    void *user, uint64_t *request_id);

/*
 * A submit never waits for the broker to take its request: what the socket does not take at
 * once stays queued, and goes out at the next wfpb_complete (or blocking call). While
 * wfpb_wants_write says 1, wait for the handle to be writable too (POLLOUT) and call
 * wfpb_complete when it is. A submit that carries a socket (QueryRecords, ApplyRecords) is
 * written whole. On Windows a write that the pipe does not end at once stays outstanding and
 * the wait handle (and the notices) also signal when it ends, so there wfpb_wants_write only
 * says bytes are queued: wait on the handle alone.
 */
WFPB_API int wfpb_wants_write(struct wfpb_client *c);

/* What to wait on: a descriptor (POSIX) or an event HANDLE (Windows) as an intptr_t. */
WFPB_API intptr_t wfpb_wait_handle(const struct wfpb_client *c);

/*
 * Windows loops that wait on neither an event nor a descriptor. wfpb_notify_port: whenever
 * answers wait to be collected, one packet is posted to completion port `port` (an HANDLE):
 * lpCompletionKey key, 0 bytes, lpOverlapped NULL. wfpb_notify_socket: *out, a loopback socket
 * the library owns (do not read, write or close it), becomes readable instead: put it in a
 * WSAPoll set or a libuv uv_poll_t (uv_poll_init_socket). On each notice call wfpb_complete;
 * the next notice is armed when it returns, and one is sent at once if more is already
 * waiting, so a notice may find nothing to collect. Both may be used; they survive
 * reconnection. POSIX: WFPB_E_UNSUPPORTED (wfpb_wait_handle is a descriptor any loop takes).
 */
WFPB_API int WFPB_MUST_CHECK wfpb_notify_port(struct wfpb_client *c, intptr_t port, uintptr_t key);
WFPB_API int WFPB_MUST_CHECK wfpb_notify_socket(struct wfpb_client *c, wfpb_socket_t *out);

/*
 * Reads what the broker has sent, without blocking, waiting up to
 * timeout_ms for the first completion when none is ready (0: not at all),
 * and writes up to max completions (each initialised with
 * WFPB_COMPLETION_INIT) to out. Returns how many, or a negative WFPB_E_*
 * when the session is gone: every request still in flight then completes
 * with that code at the following calls. WFPB_E_RESTARTED (the client was
 * opened with reconnect, and the broker ended the session): the next submit
 * or blocking call opens a new session (or call wfpb_reconnect), and the
 * wait handle is the new session's from then on; until then wait with a
 * timeout, not on the old handle. Any other code: the client can only be
 * closed.
 */
WFPB_API int WFPB_MUST_CHECK wfpb_complete(struct wfpb_client *c, struct wfpb_completion *out, unsigned max,
    uint32_t timeout_ms);

/* Completions already read and waiting for wfpb_complete, and requests still in flight. */
WFPB_API unsigned wfpb_completions_queued(const struct wfpb_client *c);
WFPB_API unsigned wfpb_in_flight(const struct wfpb_client *c);

/* The status code of the last WFPB_E_STATUS failure (the .proto's StatusCode), else 0. */
WFPB_API int wfpb_status(const struct wfpb_client *c);

/* A sentence about the last failure on this client; "" after success. */
WFPB_API const char *wfpb_errmsg(const struct wfpb_client *c);

#ifdef __cplusplus
}
#endif

#endif
