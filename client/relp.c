/* SPDX-License-Identifier: Apache-2.0 */
/* The RELP client (relp.h). */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#ifdef WFPB_HAVE_GNUTLS
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#endif

#include "relp.h"
#include "wfpb.h"

#define TXNR_MAX	999999999u	/* nine digits; after it the numbers start again at 1 */
#define OPEN_OFFER	"relp_version=0\nrelp_software=wfpbroker\ncommands=syslog"

struct wfpb_relp {
	int		fd;
	int		timeout_ms;
	unsigned	window;
	unsigned	next_txnr;
	unsigned	unacked[WFPB_RELP_WINDOW_MAX];	/* the txnrs awaiting an answer, oldest first (a ring) */
	unsigned	head, count;
	char		*rx;				/* what was read and not yet parsed */
	size_t		rx_len, rx_cap;
	char		*tx;				/* frames not yet written (written by wfpb_relp_acks) */
	size_t		tx_len, tx_cap;
	int64_t		until;				/* stopping: no wait ends later than this (0: none) */
#ifdef WFPB_HAVE_GNUTLS
	gnutls_session_t			tls;
	gnutls_certificate_credentials_t	cred;
#endif
};

static void
say(char *err, size_t cap, const char *fmt, ...)
{
	va_list ap;

	if (cap == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, cap, fmt, ap);
	va_end(ap);
}

static int64_t
mono_ms(void)
{
	return (int64_t)(wfpb_monotonic_us() / 1000);
}

static int
left_ms(int64_t deadline)
{
	int64_t d = deadline - mono_ms();

	return d < 0 ? 0 : d > 60000 ? 60000 : (int)d;
}

/* A deadline of a wait, no later than the stop's (wfpb_relp_stop): one bound for the whole stop. */
static int64_t
bounded(const struct wfpb_relp *c, int64_t deadline)
{
	return c->until != 0 && c->until < deadline ? c->until : deadline;
}

/* Waits until fd is ready for events; 1 ready, 0 timed out, -1 error. */
static int
wait_fd(int fd, short events, int ms)
{
	struct pollfd	p = { .fd = fd, .events = events };
	int		n;

	do
		n = poll(&p, 1, ms);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -1 : n;
}

int
wfpb_relp_tls_available(void)
{
#ifdef WFPB_HAVE_GNUTLS
	return 1;
#else
	return 0;
#endif
}

#ifdef WFPB_HAVE_GNUTLS
/*
 * A GnuTLS result as a socket call gives its own: n; -1 with errno EAGAIN and *want what the
 * record layer waits for (it may need to read to write, and the reverse); -2 with err.
 */
static ssize_t
tls_io(struct wfpb_relp *c, ssize_t n, short *want, const char *what, char *err, size_t cap)
{
	if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) {
		*want = gnutls_record_get_direction(c->tls) ? POLLOUT : POLLIN;
		errno = EAGAIN;
		return -1;
	}
	if (n < 0) {
		say(err, cap, "TLS %s: %s", what, gnutls_strerror((int)n));
		return -2;
	}
	return n;
}
#endif

/* Writes all of p before the deadline; 0, or -1 with err. */
static int
write_all(struct wfpb_relp *c, const char *p, size_t len, int64_t deadline, char *err, size_t cap)
{
	while (len > 0) {
		ssize_t n;
		short	want = POLLOUT;

#ifdef WFPB_HAVE_GNUTLS
		if (c->tls != NULL) {
			if ((n = tls_io(c, gnutls_record_send(c->tls, p, len), &want, "send", err, cap)) == -2)
				return -1;
		} else
#endif
			n = send(c->fd, p, len, MSG_NOSIGNAL);
		if (n >= 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
			say(err, cap, "send: %s", strerror(errno));
			return -1;
		}
		if (wait_fd(c->fd, want, left_ms(deadline)) <= 0) {
			say(err, cap, "send: timed out");
			return -1;
		}
	}
	return 0;
}

/* Makes room in rx for at least one more byte, within the bound on a frame. 0, or -1 with err. */
static int
rx_room(struct wfpb_relp *c, char *err, size_t cap)
{
	size_t	ncap = c->rx_cap ? c->rx_cap * 2 : 4096;
	char	*nrx;

	if (c->rx_len < c->rx_cap)
		return 0;
	if (ncap > WFPB_RELP_FRAME_MAX + 64) {
		say(err, cap, "the server sent a frame longer than %u bytes", (unsigned)WFPB_RELP_FRAME_MAX);
		return -1;
	}
	if ((nrx = realloc(c->rx, ncap)) == NULL) {
		say(err, cap, "out of memory");
		return -1;
	}
	c->rx = nrx;
	c->rx_cap = ncap;
	return 0;
}

/*
 * Reads what is there, waiting up to ms for something: >0 bytes added to rx, 0 nothing within
 * ms, -1 with err (the peer closed, an error, rx full).
 */
static int
read_some(struct wfpb_relp *c, int ms, char *err, size_t cap)
{
	ssize_t n;

	if (rx_room(c, err, cap) != 0)
		return -1;
	for (;;) {
		short want = POLLIN;

#ifdef WFPB_HAVE_GNUTLS
		if (c->tls != NULL) {
			if ((n = tls_io(c, gnutls_record_recv(c->tls, c->rx + c->rx_len, c->rx_cap - c->rx_len), &want,
			    "receive", err, cap)) == -2)
				return -1;
		} else
#endif
			n = recv(c->fd, c->rx + c->rx_len, c->rx_cap - c->rx_len, 0);
		if (n > 0) {
			c->rx_len += (size_t)n;
			return (int)n;
		}
		if (n == 0) {
			say(err, cap, "the server closed the connection");
			return -1;
		}
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
			say(err, cap, "receive: %s", strerror(errno));
			return -1;
		}
		if (ms <= 0)
			return 0;
		int r = wait_fd(c->fd, want, ms);

		if (r < 0) {
			say(err, cap, "poll: %s", strerror(errno));
			return -1;
		}
		if (r == 0)
			return 0;
		ms = 0;	/* readable now: one more read, then report what came */
	}
}

/* Parses a decimal of 1..9 digits at *p (advancing it); -1 when there is none or it is too long. */
static long
digits(const char **p, const char *end)
{
	long	v = 0;
	int	n = 0;

	while (*p < end && **p >= '0' && **p <= '9') {
		if (++n > 9)
			return -1;
		v = v * 10 + (**p - '0');
		(*p)++;
	}
	return n == 0 ? -1 : v;
}

/*
 * One complete frame at the start of buf: 1 with its parts (data points into buf) and its
 * length, 0 when more bytes are needed, -1 when what is there cannot be a frame.
 */
static int
parse_frame(const char *buf, size_t n, long *txnr, const char **cmd, size_t *cmd_len, const char **data,
    size_t *data_len, size_t *frame_len)
{
	const char	*p = buf, *end = buf + n, *q;
	long		len;

	/* Incomplete headers are told from bad ones by whether the bytes seen so far could start one. */
	if ((*txnr = digits(&p, end)) < 0)
		return p == end && n < 10 ? 0 : -1;
	if (p == end)
		return 0;
	if (*p++ != ' ')
		return -1;
	for (q = p; q < end && q - p < 32 && ((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z')); q++)
		;
	if (q == end)
		return q - p < 32 ? 0 : -1;
	if (q == p || *q != ' ')
		return -1;
	*cmd = p;
	*cmd_len = (size_t)(q - p);
	p = q + 1;
	if ((len = digits(&p, end)) < 0)
		return p == end ? 0 : -1;
	if (p == end)
		return 0;
	if (len > WFPB_RELP_FRAME_MAX)
		return -1;
	if (len > 0) {
		if (*p++ != ' ')
			return -1;
		if ((size_t)(end - p) < (size_t)len + 1)
			return 0;
	}
	*data = p;
	*data_len = (size_t)len;
	p += len;
	if (p == end)
		return 0;
	if (*p++ != '\n')
		return -1;
	*frame_len = (size_t)(p - buf);
	return 1;
}

static void
drop_frame(struct wfpb_relp *c, size_t n)
{
	memmove(c->rx, c->rx + n, c->rx_len - n);
	c->rx_len -= n;
}

/*
 * Handles one frame: the answer to the oldest unanswered command, or the server closing.
 * 1 acknowledged, -1 with err otherwise. (The open's answer is checked by its caller.)
 */
static int
take_answer(struct wfpb_relp *c, long txnr, const char *cmd, size_t cmd_len, const char *data, size_t data_len,
    char *err, size_t cap)
{
	if (cmd_len == 11 && memcmp(cmd, "serverclose", 11) == 0) {
		say(err, cap, "the server is closing the session");
		return -1;
	}
	if (cmd_len != 3 || memcmp(cmd, "rsp", 3) != 0) {
		say(err, cap, "the server sent a \"%.*s\" command", (int)cmd_len, cmd);
		return -1;
	}
	if (c->count == 0 || (unsigned long)txnr != c->unacked[c->head]) {
		say(err, cap, "an answer to transaction %ld, which is not the oldest one waiting", txnr);
		return -1;
	}
	if (data_len < 3 || memcmp(data, "200", 3) != 0 || (data_len > 3 && data[3] != ' ')) {
		size_t n = data_len;

		for (size_t i = 0; i < data_len; i++)
			if (data[i] == '\n') {
				n = i;
				break;
			}
		say(err, cap, "the server refused transaction %ld: %.*s", txnr, (int)(n > 80 ? 80 : n), data);
		return -1;
	}
	c->head = (c->head + 1) % WFPB_RELP_WINDOW_MAX;
	c->count--;
	return 1;
}

/* Writes the frames queued in tx; 0, or -1 with err. */
static int
flush(struct wfpb_relp *c, char *err, size_t cap)
{
	if (c->tx_len == 0)
		return 0;
	if (write_all(c, c->tx, c->tx_len, bounded(c, mono_ms() + c->timeout_ms), err, cap) != 0)
		return -1;
	c->tx_len = 0;
	return 0;
}

/* Queues one command frame (written in one go with the others, at the next flush). */
static int
send_command(struct wfpb_relp *c, const char *cmd, const char *data, size_t len, char *err, size_t cap)
{
	char		hdr[64];
	unsigned	txnr = c->next_txnr;
	int		n;
	size_t		need;

	if (c->count >= c->window) {
		say(err, cap, "the window is full");
		return -1;
	}
	n = snprintf(hdr, sizeof(hdr), len > 0 ? "%u %s %zu " : "%u %s %zu", txnr, cmd, len);
	need = c->tx_len + (size_t)n + len + 1;
	if (need > c->tx_cap) {
		size_t	ncap = c->tx_cap ? c->tx_cap : 65536;
		char	*ntx;

		while (ncap < need)
			ncap *= 2;
		if ((ntx = realloc(c->tx, ncap)) == NULL) {
			say(err, cap, "out of memory");
			return -1;
		}
		c->tx = ntx;
		c->tx_cap = ncap;
	}
	memcpy(c->tx + c->tx_len, hdr, (size_t)n);
	memcpy(c->tx + c->tx_len + (size_t)n, data, len);
	c->tx[need - 1] = '\n';
	c->tx_len = need;
	c->unacked[(c->head + c->count) % WFPB_RELP_WINDOW_MAX] = txnr;
	c->count++;
	c->next_txnr = txnr == TXNR_MAX ? 1 : txnr + 1;
	/* A large batch goes out without waiting for the next flush. */
	return c->tx_len >= 65536 ? flush(c, err, cap) : 0;
}

/* Waits for the answer to the newest command (the only one waiting); 0, or -1 with err. */
static int
await_one(struct wfpb_relp *c, const char **data, size_t *data_len, size_t *frame_len, char *err, size_t cap)
{
	int64_t		deadline = mono_ms() + c->timeout_ms;
	long		txnr;
	const char	*cmd;
	size_t		cmd_len;
	int		r;

	if (flush(c, err, cap) != 0)
		return -1;
	while ((r = parse_frame(c->rx, c->rx_len, &txnr, &cmd, &cmd_len, data, data_len, frame_len)) == 0) {
		int n = read_some(c, left_ms(deadline), err, cap);

		if (n < 0)
			return -1;
		if (n == 0) {
			say(err, cap, "no answer from the server within %d ms", c->timeout_ms);
			return -1;
		}
	}
	if (r < 0) {
		say(err, cap, "the server sent a malformed frame");
		return -1;
	}
	return take_answer(c, txnr, cmd, cmd_len, *data, *data_len, err, cap) == 1 ? 0 : -1;
}

#ifdef WFPB_HAVE_GNUTLS
static int
tls_start(struct wfpb_relp *c, const struct wfpb_relp_config *cfg, char *err, size_t cap)
{
	const char	*name = cfg->server_name != NULL ? cfg->server_name : cfg->host;
	int		rc;
	int64_t		deadline = mono_ms() + c->timeout_ms;

	if ((rc = gnutls_certificate_allocate_credentials(&c->cred)) < 0)
		goto fail;
	/* The CA given, and only it: a collector's certificate from any other CA is refused. */
	if ((rc = gnutls_certificate_set_x509_trust_file(c->cred, cfg->ca_file, GNUTLS_X509_FMT_PEM)) <= 0) {
		say(err, cap, "TLS CA file %s: %s", cfg->ca_file, rc == 0 ? "no certificate in it" :
		    gnutls_strerror(rc));
		return -1;
	}
	if (cfg->cert_file != NULL && (rc = gnutls_certificate_set_x509_key_file(c->cred, cfg->cert_file,
	    cfg->key_file != NULL ? cfg->key_file : cfg->cert_file, GNUTLS_X509_FMT_PEM)) < 0) {
		say(err, cap, "TLS certificate %s: %s", cfg->cert_file, gnutls_strerror(rc));
		return -1;
	}
	if ((rc = gnutls_init(&c->tls, GNUTLS_CLIENT | GNUTLS_NONBLOCK)) < 0 ||
	    (rc = gnutls_set_default_priority(c->tls)) < 0 ||
	    (rc = gnutls_credentials_set(c->tls, GNUTLS_CRD_CERTIFICATE, c->cred)) < 0)
		goto fail;
	/* SNI for a name (not for an address); the certificate is checked against it either way. */
	if (strspn(name, "0123456789.:") != strlen(name))
		(void)gnutls_server_name_set(c->tls, GNUTLS_NAME_DNS, name, strlen(name));
	gnutls_session_set_verify_cert(c->tls, name, 0);
	gnutls_transport_set_int(c->tls, c->fd);
	while ((rc = gnutls_handshake(c->tls)) < 0) {
		if (gnutls_error_is_fatal(rc)) {
			if (rc == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR) {
				gnutls_datum_t	why;
				unsigned	status = gnutls_session_get_verify_cert_status(c->tls);

				if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &why, 0) == 0) {
					say(err, cap, "TLS: the collector's certificate: %s", why.data);
					gnutls_free(why.data);
					return -1;
				}
			}
			goto fail;
		}
		if (wait_fd(c->fd, gnutls_record_get_direction(c->tls) ? POLLOUT : POLLIN, left_ms(deadline)) <= 0) {
			say(err, cap, "TLS handshake: timed out");
			return -1;
		}
	}
	return 0;
fail:
	say(err, cap, "TLS: %s", gnutls_strerror(rc));
	return -1;
}
#endif

/* A non-blocking TCP connection to host:port within the timeout; the descriptor, or -1 with err. */
static int
dial(const struct wfpb_relp_config *cfg, int timeout_ms, char *err, size_t cap)
{
	struct addrinfo	hints = { .ai_socktype = SOCK_STREAM, .ai_family = AF_UNSPEC }, *res, *ai;
	int		rc, fd = -1;

	if ((rc = getaddrinfo(cfg->host, cfg->port, &hints, &res)) != 0) {
		say(err, cap, "%s: %s", cfg->host, gai_strerror(rc));
		return -1;
	}
	say(err, cap, "%s:%s: no address", cfg->host, cfg->port);
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		int		soerr = 0;
		socklen_t	sl = sizeof(soerr);

		if ((fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol)) < 0)
			continue;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		if (errno == EINPROGRESS && wait_fd(fd, POLLOUT, timeout_ms) == 1 &&
		    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr == 0)
			break;
		say(err, cap, "connect to %s:%s: %s", cfg->host, cfg->port, soerr ? strerror(soerr) :
		    errno == EINPROGRESS ? "timed out" : strerror(errno));
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fd;
}

int
wfpb_relp_connect(const struct wfpb_relp_config *cfg, struct wfpb_relp **out, char *err, size_t cap)
{
	struct wfpb_relp	*c;
	const char		*data;
	size_t			data_len, frame_len;

	*out = NULL;
	if (cfg->window < 1 || cfg->window > WFPB_RELP_WINDOW_MAX) {
		say(err, cap, "window %u is not in 1..%u", cfg->window, (unsigned)WFPB_RELP_WINDOW_MAX);
		return -1;
	}
#ifndef WFPB_HAVE_GNUTLS
	if (cfg->ca_file != NULL) {
		say(err, cap, "this build has no TLS");
		return -1;
	}
#endif
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		say(err, cap, "out of memory");
		return -1;
	}
	c->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : 10000;
	c->window = 1;	/* the open is answered before anything else is sent */
	c->next_txnr = 1;
	if ((c->fd = dial(cfg, c->timeout_ms, err, cap)) < 0) {
		free(c);
		return -1;
	}
#ifdef WFPB_HAVE_GNUTLS
	if (cfg->ca_file != NULL && tls_start(c, cfg, err, cap) != 0)
		goto fail;
#endif
	if (send_command(c, "open", OPEN_OFFER, strlen(OPEN_OFFER), err, cap) != 0 ||
	    await_one(c, &data, &data_len, &frame_len, err, cap) != 0)
		goto fail;
	/* The server's offers follow "200 OK\n": it must take syslog messages. */
	{
		const char	*p = data, *end = data + data_len, *line;
		int		syslog = 0;

		while (p < end) {
			line = p;
			while (p < end && *p != '\n')
				p++;
			if ((size_t)(p - line) >= 9 && memcmp(line, "commands=", 9) == 0) {
				const char *v = line + 9;

				while (v < p) {
					const char *e = v;

					while (e < p && *e != ',')
						e++;
					if (e - v == 6 && memcmp(v, "syslog", 6) == 0)
						syslog = 1;
					v = e + 1;
				}
			}
			p++;
		}
		if (!syslog) {
			say(err, cap, "the server does not offer the syslog command");
			goto fail;
		}
	}
	drop_frame(c, frame_len);
	c->window = cfg->window;
	*out = c;
	return 0;
fail:
	wfpb_relp_close(c, 0);
	return -1;
}

int
wfpb_relp_send(struct wfpb_relp *c, const char *msg, size_t len, char *err, size_t cap)
{
	return send_command(c, "syslog", msg, len, err, cap);
}

/*
 * Takes the complete answers in rx, oldest first, adding to *acked; what they took is dropped
 * from rx once, not frame by frame. 0, or -1 with err.
 */
static int
take_answers(struct wfpb_relp *c, size_t *acked, char *err, size_t cap)
{
	long		txnr;
	const char	*cmd, *data;
	size_t		cmd_len, data_len, frame_len, off = 0;
	int		r;

	while ((r = parse_frame(c->rx + off, c->rx_len - off, &txnr, &cmd, &cmd_len, &data, &data_len,
	    &frame_len)) == 1) {
		if (take_answer(c, txnr, cmd, cmd_len, data, data_len, err, cap) != 1)
			break;
		off += frame_len;
		(*acked)++;
	}
	if (off > 0)
		drop_frame(c, off);
	if (r == 1)
		return -1;
	if (r < 0) {
		say(err, cap, "the server sent a malformed frame");
		return -1;
	}
	return 0;
}

int
wfpb_relp_acks(struct wfpb_relp *c, int wait_ms, size_t *acked, char *err, size_t cap)
{
	int64_t	deadline = bounded(c, mono_ms() + (wait_ms > 0 ? wait_ms : 0));
	int	r;

	*acked = 0;
	if (flush(c, err, cap) != 0)
		return -1;
	for (;;) {
		if (take_answers(c, acked, err, cap) != 0)
			return -1;
		/*
		 * Wait only while nothing came yet, and only until one deadline: an answer that
		 * arrives a byte at a time must not restart the wait at every byte. Then take
		 * what else is already there.
		 */
		r = read_some(c, *acked == 0 ? left_ms(deadline) : 0, err, cap);
		if (r < 0)
			return -1;
		if (r == 0)
			return 0;
	}
}

struct wfpb_relp *
wfpb__relp_detached(unsigned window)
{
	struct wfpb_relp *c;

	if (window < 1 || window > WFPB_RELP_WINDOW_MAX || (c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->fd = -1;
	c->timeout_ms = 1;
	c->window = window;
	c->next_txnr = 1;
	return c;
}

int
wfpb__relp_take(struct wfpb_relp *c, const char *in, size_t n, size_t *acked, char *err, size_t cap)
{
	*acked = 0;
	while (n > 0) {
		size_t room, k;

		if (rx_room(c, err, cap) != 0)
			return -1;
		room = c->rx_cap - c->rx_len;
		k = n < room ? n : room;
		memcpy(c->rx + c->rx_len, in, k);
		c->rx_len += k;
		in += k;
		n -= k;
		if (take_answers(c, acked, err, cap) != 0)
			return -1;
	}
	return 0;
}

unsigned
wfpb_relp_unacked(const struct wfpb_relp *c)
{
	return c->count;
}

size_t
wfpb_relp_stop(struct wfpb_relp *c, int ms)
{
	char	e[160];
	size_t	n, acked = 0;

	if (c == NULL)
		return 0;
	c->until = mono_ms() + (ms > 0 ? ms : 0);
	/* A collector that answers a byte at a time gets this one bound, not a fresh one per byte or step. */
	while (c->count > 0 && left_ms(c->until) > 0) {
		if (wfpb_relp_acks(c, left_ms(c->until), &n, e, sizeof(e)) != 0) {
			acked += n;
			break;
		}
		acked += n;
	}
	wfpb_relp_close(c, c->count == 0 && left_ms(c->until) > 0);
	return acked;
}

void
wfpb_relp_close(struct wfpb_relp *c, int graceful)
{
	if (c == NULL)
		return;
	if (graceful) {
		char		e[160];
		size_t		acked;
		int64_t		deadline = bounded(c, mono_ms() + c->timeout_ms);

		/* Answers still due come first, in order; then the close's own. */
		c->window = WFPB_RELP_WINDOW_MAX;
		if (c->count < WFPB_RELP_WINDOW_MAX && send_command(c, "close", "", 0, e, sizeof(e)) == 0)
			while (c->count > 0 && left_ms(deadline) > 0 &&
			    wfpb_relp_acks(c, left_ms(deadline), &acked, e, sizeof(e)) == 0)
				;
#ifdef WFPB_HAVE_GNUTLS
		if (c->tls != NULL)
			(void)gnutls_bye(c->tls, GNUTLS_SHUT_WR);
#endif
	}
#ifdef WFPB_HAVE_GNUTLS
	if (c->tls != NULL)
		gnutls_deinit(c->tls);
	if (c->cred != NULL)
		gnutls_certificate_free_credentials(c->cred);
#endif
	if (c->fd >= 0)
		close(c->fd);
	free(c->rx);
	free(c->tx);
	free(c);
}
