/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A RELP client: the Reliable Event Logging Protocol that rsyslog's imrelp
 * serves (doc/relp.md of librelp is its specification). The audit follower
 * sends each record as one syslog message and moves its cursor only past
 * messages the server acknowledged, so this client exposes what librelp's
 * does not: which frames were acknowledged (docs/DECISIONS.md, "RELP").
 *
 * Frames: "TXNR SP COMMAND SP DATALEN [SP DATA] LF". The server answers every
 * command with "TXNR rsp LEN CODE TEXT", in the order the commands were sent;
 * 200 is success. The client keeps at most `window` commands unanswered.
 * One thread; the descriptor is non-blocking and every wait has a deadline.
 *
 * TLS (GnuTLS, when built with it): the server's certificate must chain to
 * the given CA file alone (not the system's store) and carry the expected
 * name; the client presents its own certificate when given one.
 */
#ifndef WFPB_RELP_H
#define WFPB_RELP_H

#include <stddef.h>
#include <stdint.h>

#define WFPB_RELP_WINDOW_MAX	1024
#define WFPB_RELP_FRAME_MAX	(256 * 1024)	/* the largest answer accepted from a server */

struct wfpb_relp_config {
	const char	*host, *port;
	const char	*ca_file;		/* TLS when not NULL */
	const char	*cert_file, *key_file;	/* the client's certificate and key, or NULL */
	const char	*server_name;		/* the name the certificate must carry; host when NULL */
	uint32_t	window;			/* 1..WFPB_RELP_WINDOW_MAX */
	int		timeout_ms;		/* connect, handshake, a send, the close */
};

struct wfpb_relp;

/* 1 when this build can speak TLS. */
int wfpb_relp_tls_available(void);

/* Connects and opens the session (the "open" offer, "commands=syslog"). 0, or -1 with err. */
int wfpb_relp_connect(const struct wfpb_relp_config *cfg, struct wfpb_relp **out, char *err, size_t cap);

/*
 * Sends one syslog message: queued, and written with the others at the next wfpb_relp_acks (or
 * once 64 KiB are queued). The window must have room (wfpb_relp_unacked < window). 0, or -1 with err.
 */
int wfpb_relp_send(struct wfpb_relp *c, const char *msg, size_t len, char *err, size_t cap);

/*
 * Writes what is queued, then reads the server's answers, waiting up to wait_ms for the first
 * when none is buffered. *acked is how many of the oldest unacknowledged messages were
 * acknowledged, in order (on failure too: those answered before the break). 0, or -1 with err
 * when the session is broken: an error answer, an answer out of order, a malformed frame, the
 * server closing. The messages not acknowledged must be sent again on a new session.
 */
int wfpb_relp_acks(struct wfpb_relp *c, int wait_ms, size_t *acked, char *err, size_t cap);

/* Messages sent and not yet acknowledged. */
unsigned wfpb_relp_unacked(const struct wfpb_relp *c);

/* Closes: with graceful, the "close" command and its answer first (within the timeout). NULL is fine. */
void wfpb_relp_close(struct wfpb_relp *c, int graceful);

/*
 * Stops within ms, whatever the server does: takes the answers still due, then closes
 * politely if all came and time is left, else at once; every wait on the way (writes, answers,
 * the close's answer) ends by the one deadline. Returns how many of the oldest messages were
 * acknowledged meanwhile (the caller moves its cursor past them). c is freed; NULL is fine.
 */
size_t wfpb_relp_stop(struct wfpb_relp *c, int ms);

/*
 * For the fuzzer: a client with no connection (messages sent to it are only queued), and
 * bytes handed to it as if the server had sent them, taken as wfpb_relp_acks takes them.
 * Close it with wfpb_relp_close(c, 0).
 */
struct wfpb_relp *wfpb__relp_detached(unsigned window);
int wfpb__relp_take(struct wfpb_relp *c, const char *in, size_t n, size_t *acked, char *err, size_t cap);

#endif
