/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libwfpb: handshake and requests over the secure channel. Every request is
 * a slot in flight until its answer arrives; answers come in any order
 * (protocol version 2) and are matched by request_id. A blocking call
 * submits and reads until its own answer; answers to other requests that
 * arrive meanwhile are decoded into their callers' arguments and queued as
 * completions for wfpb_complete. Answers come from the broker we pinned, but
 * are still checked: the request_id must be one in flight and the result the
 * op that was asked for.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "channel.h"
#include "keyfile.h"
#include "pb_arena.h"
#include "transport.h"
#include "wfpb.h"
#include "wfpbroker.pb-c.h"
#include "wfpb_version.h"

#define DEFAULT_TIMEOUT_MS	10000u
#define READ_CHUNK		16384u

struct wfpb_client;
struct slot;

/* Copies a successful answer's result into the caller's arguments: 0, or a WFPB_E_* with c->err set. */
typedef int decode_fn(struct wfpb_client *c, const Wfpbroker__V1__Response *r, struct slot *sl);

/* A request in flight. */
struct slot {
	struct slot				*next;
	uint64_t				id;
	Wfpbroker__V1__Response__ResultCase	want;
	decode_fn				*decode;	/* NULL: a blocking call's, which reads its own answer */
	void					*out, *out2;	/* the caller's result arguments */
	void					*user;
};

/* A finished asynchronous request, waiting for wfpb_complete. */
struct done {
	struct done		*next;
	uint64_t		id;
	void			*user;
	int			rc, status, op;
	char			message[256];
};

struct wfpb_client {
	struct wfpb_transport	*t;
	struct wfpb_channel	ch;
	uint32_t		timeout_ms;
	int			nonblocking;	/* handed-over sockets stay non-blocking (wfpb_open_opts) */
	uint32_t		max_inflight;	/* the broker's, once asked (wfpb_max_inflight); 0 before */
	uint64_t		next_id;
	int			status;
	char			err[256];
	struct pb_arena		arena;		/* the one response being read; given back by response_free */
	uint8_t			*in;		/* bytes read and not yet fed to the channel */
	size_t			in_off, in_len;
	struct slot		*slots;		/* in flight */
	unsigned		n_slots;
	struct done		*done, **done_tail;
	unsigned		n_done;
	Wfpbroker__V1__Response	*sync_resp;	/* a blocking call's answer, in the arena */
	int			dead;		/* the session failed (a WFPB_E_*); 0 while it is up */
	struct wfpb__notify	*nt;		/* Windows loops' notices (wfpb_notify_port, _socket), or NULL */
	/* What a new session needs (wfpb_reconnect): the options the client was opened with. */
	int			reconnect;	/* a session the broker ends is opened again by the next call */
	char			*endpoint, *key_path;
	int			key_given;	/* the pinned key came as bytes, not from key_path */
	uint8_t			server_key[WFPB_NOISE_DHLEN];
	struct wfpb_noise_keypair ckey;		/* IK: the client's own key */
	int			has_ckey;
};

/* Frees the response of the last call and gives its arena back (one response at a time). */
static void
response_free(struct wfpb_client *c, Wfpbroker__V1__Response *r)
{
	wfpbroker__v1__response__free_unpacked(r, pb_arena_allocator(&c->arena));
	pb_arena_release(&c->arena, 0);
}

const char *
wfpb_version(void)
{
	return WFPB_VERSION_STRING;
}

/*
 * The ABI rule (wfpb.h): a struct the caller passes begins with its size.
 * This version has added no field to its first layout, so it needs the
 * whole of its own struct; a later version that appends fields keeps the
 * first layout's size as the minimum here and writes a new field only when
 * the caller's size covers it.
 */
static int
sized_ok(const void *p, size_t ours)
{
	return p != NULL && *(const size_t *)p >= ours;
}

/* Zeroes an out struct of ours, its size member kept. */
static void
sized_reset(void *p, size_t ours)
{
	memset((uint8_t *)p + sizeof(size_t), 0, ours - sizeof(size_t));
}

const char *
wfpb_default_endpoint(void)
{
	return wfpb__default_endpoint();
}

const char *
wfpb_default_server_key(void)
{
	return wfpb__default_server_key();
}

static int
fail(struct wfpb_client *c, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->err, sizeof(c->err), fmt, ap);
	va_end(ap);
	return rc;
}

static int
flush(struct wfpb_client *c)
{
	const uint8_t	*p;
	size_t		len;
	int		rc;

	if ((p = wfpb_channel_output(&c->ch, &len)) == NULL)
		return 0;
	if ((rc = wfpb__transport_write(c->t, p, len, c->timeout_ms)) != 0)
		return fail(c, rc, "sending to the broker: %s", wfpb_strerror(rc));
	wfpb_channel_output_done(&c->ch, len);
	return 0;
}

/* Writes what the transport takes now; the rest stays queued in the channel (wfpb_wants_write). */
static int
flush_some(struct wfpb_client *c)
{
	const uint8_t	*p;
	size_t		len, n = 0;
	int		rc;

	if ((p = wfpb_channel_output(&c->ch, &len)) == NULL || len == 0)
		return 0;
	if ((rc = wfpb__transport_write_some(c->t, p, len, &n, c->timeout_ms)) != 0)
		return fail(c, rc, "sending to the broker: %s", wfpb_strerror(rc));
	wfpb_channel_output_done(&c->ch, n);
	return 0;
}

static int
flush_sock(struct wfpb_client *c, intptr_t sock)
{
	const uint8_t	*p;
	size_t		len;
	int		rc;

	if ((p = wfpb_channel_output(&c->ch, &len)) == NULL)
		return 0;
	if ((rc = wfpb__transport_write_sock(c->t, p, len, sock, c->timeout_ms)) != 0)
		return fail(c, rc, "sending a socket to the broker: %s", wfpb_strerror(rc));
	wfpb_channel_output_done(&c->ch, len);
	return 0;
}

/* Feeds buffered input to the channel until it reports an event or the buffer is empty (WFPB_CHANNEL_MORE). */
static int
feed(struct wfpb_client *c)
{
	size_t	used;
	int	ev;

	while (c->in_len > 0) {
		ev = wfpb_channel_feed(&c->ch, c->in + c->in_off, c->in_len, &used);
		c->in_off += used;
		c->in_len -= used;
		if (ev != WFPB_CHANNEL_MORE)
			return ev;
	}
	c->in_off = 0;
	return WFPB_CHANNEL_MORE;
}

/* Reads once into the empty buffer, waiting up to timeout_ms (0: not at all; WFPB_E_TIMEOUT when nothing came). */
static int
read_some(struct wfpb_client *c, uint32_t timeout_ms)
{
	size_t	got;
	int	rc;

	rc = wfpb__transport_read(c->t, c->in, READ_CHUNK, &got, timeout_ms);
	if (rc == WFPB_E_TIMEOUT)
		return rc;
	if (rc == WFPB_E_CLOSED)
		return fail(c, rc, "the broker closed the session");
	if (rc != 0)
		return fail(c, rc, "reading from the broker: %s", wfpb_strerror(rc));
	c->in_off = 0;
	c->in_len = got;
	return 0;
}

/*
 * One step towards an answer: the bytes already read are handled before
 * more are waited for (within timeout_ms). 0, or a negative WFPB_E_* with
 * c->err saying what went wrong.
 */
static int drain(struct wfpb_client *c);

static int
step(struct wfpb_client *c, uint32_t timeout_ms)
{
	int rc;

	if (c->in_len > 0)
		return drain(c);
	if ((rc = read_some(c, timeout_ms)) == WFPB_E_TIMEOUT)
		fail(c, rc, "reading from the broker: %s", wfpb_strerror(rc));
	return rc;
}

/* Reads until the channel reports an event (the handshake), within the client's timeout. */
static int
wait_event(struct wfpb_client *c)
{
	int ev, rc;

	for (;;) {
		if ((ev = feed(c)) != WFPB_CHANNEL_MORE)
			return ev;
		if ((rc = read_some(c, c->timeout_ms)) != 0)
			return rc == WFPB_E_TIMEOUT ? fail(c, rc, "reading from the broker: %s", wfpb_strerror(rc)) : rc;
	}
}

static void
push_done(struct wfpb_client *c, const struct slot *sl, int rc, int status, const char *message)
{
	struct done *d = calloc(1, sizeof(*d));

	/* Out of memory, the completion is lost, but nothing the caller owns is: its arguments stay as set. */
	if (d == NULL)
		return;
	d->id = sl->id;
	d->user = sl->user;
	d->op = (int)sl->want;	/* the result case is the op's number (the .proto gives them alike) */
	d->rc = rc;
	d->status = status;
	snprintf(d->message, sizeof(d->message), "%s", message != NULL ? message : "");
	*c->done_tail = d;
	c->done_tail = &d->next;
	c->n_done++;
}

/*
 * The session is gone: every request in flight completes with rc. When the broker ended it
 * (the connection closed or failed) and the client reconnects, that is WFPB_E_RESTARTED.
 */
static void
kill_session(struct wfpb_client *c, int rc)
{
	struct slot *sl;

	if (c->dead == 0 && c->reconnect && (rc == WFPB_E_CLOSED || rc == WFPB_E_IO)) {
		c->dead = WFPB_E_RESTARTED;
		fail(c, WFPB_E_RESTARTED, "the broker ended the session (it restarted or stopped) before the "
		    "answer; the next call opens a new one");
	}
	if (c->dead == 0)
		c->dead = rc < 0 ? rc : WFPB_E_PROTOCOL;
	while ((sl = c->slots) != NULL) {
		c->slots = sl->next;
		c->n_slots--;
		if (sl->decode != NULL)
			push_done(c, sl, c->dead, 0, c->err[0] ? c->err : wfpb_strerror(c->dead));
		free(sl);
	}
}

/*
 * One answer: a blocking call's is kept for it (1); another's is decoded
 * into its caller's arguments and queued as a completion (0). An answer to
 * no request in flight, or one that does not decode, ends the session.
 */
static int
on_message(struct wfpb_client *c)
{
	ProtobufCAllocator	*alloc = c->sync_resp != NULL ? NULL : pb_arena_allocator(&c->arena);
	Wfpbroker__V1__Response	*r;
	struct slot		**pp, *sl;
	const uint8_t		*msg;
	size_t			mlen;
	int			rc = 0, status = 0;

	/* The arena may hold a blocking call's answer already: the rest then go to the heap. */
	msg = wfpb_channel_message(&c->ch, &mlen);
	if ((r = wfpbroker__v1__response__unpack(alloc, mlen, msg)) == NULL)
		return fail(c, WFPB_E_DECODE, "the broker's response did not decode");
	for (pp = &c->slots; *pp != NULL && (*pp)->id != r->request_id; pp = &(*pp)->next)
		;
	if ((sl = *pp) == NULL || r->status == NULL) {
		rc = fail(c, WFPB_E_PROTOCOL, "the broker answered a request that is not in flight");
		goto out;
	}
	*pp = sl->next;
	c->n_slots--;
	if (sl->decode == NULL) {
		free(sl);
		if (c->sync_resp != NULL) {	/* one blocking call at a time: it cannot be */
			rc = fail(c, WFPB_E_PROTOCOL, "a second answer for a blocking call");
			goto out;
		}
		c->sync_resp = r;
		return 1;
	}
	c->err[0] = '\0';
	if (r->status->code != WFPBROKER__V1__STATUS_CODE__OK) {
		status = r->status->code;
		rc = WFPB_E_STATUS;
		snprintf(c->err, sizeof(c->err), "%s: %s", wfpb_status_name(status),
		    r->status->message ? r->status->message : "error");
	} else if (r->result_case != sl->want) {
		rc = fail(c, WFPB_E_PROTOCOL, "response carries the wrong result");
	} else {
		rc = sl->decode(c, r, sl);
	}
	push_done(c, sl, rc, status, c->err);
	c->err[0] = '\0';
	free(sl);
	rc = 0;
out:
	wfpbroker__v1__response__free_unpacked(r, alloc);
	if (alloc != NULL)
		pb_arena_release(&c->arena, 0);
	return rc;
}

/* Handles every complete answer in the buffer. 0, or a negative WFPB_E_* (the session is then dead). */
static int
drain(struct wfpb_client *c)
{
	int ev, rc;

	for (;;) {
		ev = feed(c);
		if (ev == WFPB_CHANNEL_MORE)
			return 0;
		if (ev == WFPB_E_DECRYPT)
			return fail(c, ev, "a response failed authentication (tampered, replayed or reordered)");
		if (ev < 0)
			return fail(c, ev, "%s", wfpb_strerror(ev));
		if (ev != WFPB_CHANNEL_MESSAGE)
			return fail(c, WFPB_E_PROTOCOL, "unexpected data from the broker");
		if ((rc = on_message(c)) < 0)
			return rc;
	}
}

/*
 * Queues a request and writes it (sock >= 0 travels with its first byte).
 * decode NULL: a blocking call's, whose answer the caller reads itself.
 */
static int
submit(struct wfpb_client *c, Wfpbroker__V1__Request *rq, Wfpbroker__V1__Response__ResultCase want,
    decode_fn *decode, void *out, void *out2, void *user, intptr_t sock, uint64_t *request_id)
{
	struct slot	*sl;
	uint8_t		small[512], *buf = small;
	size_t		len;
	int		rc;

	c->status = 0;
	c->err[0] = '\0';
	/* A session the broker ended is opened again here, for a client that asked for it. */
	if (c->dead == WFPB_E_RESTARTED && c->reconnect && (rc = wfpb_reconnect(c)) != 0)
		return rc;
	if (c->dead)
		return fail(c, c->dead, "the session is gone: %s", wfpb_strerror(c->dead));
	/* A socket rides its own frame's first byte: what is queued before it goes first, whole. */
	if (sock >= 0 && (rc = flush(c)) != 0) {
		kill_session(c, rc);
		return rc;
	}
	rq->request_id = c->next_id++;
	len = wfpbroker__v1__request__get_packed_size(rq);
	if (len > WFPB_CHANNEL_MSG_MAX)
		return fail(c, WFPB_E_INVAL, "request too large (%zu bytes)", len);
	if ((sl = calloc(1, sizeof(*sl))) == NULL || (len > sizeof(small) && (buf = malloc(len)) == NULL)) {
		free(sl);
		return WFPB_E_NOMEM;
	}
	wfpbroker__v1__request__pack(rq, buf);
	rc = wfpb_channel_send(&c->ch, buf, len);
	if (buf != small)
		free(buf);
	/* An asynchronous request never waits to be written: what the socket does not take now stays queued. */
	if (rc == 0)
		rc = sock >= 0 ? flush_sock(c, sock) : decode != NULL ? flush_some(c) : flush(c);
	if (rc != 0) {
		free(sl);
		kill_session(c, rc);
		return rc;
	}
	sl->id = rq->request_id;
	sl->want = want;
	sl->decode = decode;
	sl->out = out;
	sl->out2 = out2;
	sl->user = user;
	sl->next = c->slots;
	c->slots = sl;
	c->n_slots++;
	if (request_id != NULL)
		*request_id = sl->id;
	return 0;
}

/*
 * Connects and completes the handshake with what c keeps of its options: the newest
 * protocol version first; a broker that refuses it (reject notice 2: a broker of an older
 * version, during an upgrade) is asked again, on a new connection, for the one before. The
 * version is in the handshake's prologue, so the session's version is the one both ends
 * agreed on; a refusal is not authenticated, so someone who can answer on the endpoint can
 * make a client speak version 1 (answers in order: slower, no less safe), not anything the
 * broker's key does not vouch for (docs/PROTOCOL.md §3). 0, or an error with c->err set and
 * nothing of the attempt left open.
 */
static int
session_open(struct wfpb_client *c)
{
	uint16_t	version;
	int		rc;

	for (version = WFPB_PROTOCOL_VERSION;; version--) {
		if ((rc = wfpb__transport_connect(c->endpoint, c->timeout_ms, &c->t, c->err, sizeof(c->err))) != 0)
			return rc;
		if ((rc = wfpb_channel_client_start_version(&c->ch, version, c->server_key, c->has_ckey ? &c->ckey :
		    NULL)) != 0) {
			fail(c, rc, "handshake: %s", wfpb_strerror(rc));
			goto fail;
		}
		if ((rc = flush(c)) != 0)
			goto fail;
		rc = wait_event(c);
		if (rc != WFPB_E_REJECTED || c->ch.reject != WFPB_REJECT_VERSION || version == WFPB_PROTOCOL_VERSION_MIN)
			break;
		wfpb__transport_close(c->t);
		c->t = NULL;
		wfpb_channel_free(&c->ch);
		c->in_len = 0;
	}
	if (rc == WFPB_E_REJECTED && c->ch.reject == WFPB_REJECT_HANDSHAKE && !c->key_given)
		fail(c, rc, "the broker could not complete the handshake: is %s this broker's key?", c->key_path);
	else if (rc == WFPB_E_REJECTED)
		fail(c, rc, "the broker refused the session: %s", wfpb_reject_str(c->ch.reject));
	else if (rc == WFPB_E_DECRYPT)
		fail(c, rc, "handshake failed: the endpoint %s does not hold the pinned broker key", c->endpoint);
	else if (rc == WFPB_E_CLOSED && c->has_ckey)
		fail(c, rc, "the broker closed the session during the handshake");
	else if (rc < 0 && c->err[0] == '\0')
		fail(c, rc, "handshake: %s", wfpb_strerror(rc));
	else if (rc >= 0 && (rc != WFPB_CHANNEL_ESTABLISHED || c->in_len != 0))
		rc = fail(c, WFPB_E_PROTOCOL, "handshake: unexpected data from the broker");
	else if (rc >= 0 && c->nt != NULL && (rc = wfpb__transport_watch(c->t, c->nt)) != 0)
		fail(c, rc, "cannot watch the new session for the caller's loop: %s", wfpb_strerror(rc));
	else if (rc >= 0)
		return 0;
fail:
	wfpb__transport_close(c->t);
	c->t = NULL;
	wfpb_channel_free(&c->ch);
	c->in_off = c->in_len = 0;
	return rc;
}

int
wfpb_open(const struct wfpb_open_opts *opts, struct wfpb_client **out, char *errbuf, size_t errlen)
{
	struct wfpb_client	*c;
	int			rc;

	*out = NULL;
	/* The first layout ended at timeout_ms. */
	if (!sized_ok(opts, offsetof(struct wfpb_open_opts, nonblocking_sockets))) {
		if (errbuf != NULL && errlen > 0)
			snprintf(errbuf, errlen, "struct wfpb_open_opts without its size: initialise it with WFPB_OPEN_OPTS_INIT");
		return WFPB_E_INVAL;
	}
	if (sodium_init() < 0)
		return WFPB_E_NOMEM;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return WFPB_E_NOMEM;
	c->timeout_ms = opts->timeout_ms ? opts->timeout_ms : DEFAULT_TIMEOUT_MS;
	c->nonblocking = opts->size >= offsetof(struct wfpb_open_opts, reconnect) && opts->nonblocking_sockets;
	c->reconnect = opts->size >= sizeof(*opts) && opts->reconnect;
	c->next_id = 1;
	c->done_tail = &c->done;
	c->endpoint = strdup(opts->endpoint ? opts->endpoint : wfpb__default_endpoint());
	c->key_path = strdup(opts->server_key_path ? opts->server_key_path : wfpb__default_server_key());
	if ((c->in = malloc(READ_CHUNK)) == NULL || c->endpoint == NULL || c->key_path == NULL) {
		rc = WFPB_E_NOMEM;
		goto fail;
	}
	if ((c->key_given = opts->server_key != NULL)) {
		memcpy(c->server_key, opts->server_key, sizeof(c->server_key));
	} else if ((rc = wfpb_keyfile_load_public(c->key_path, c->server_key)) != 0) {
		fail(c, rc, "cannot read the broker's public key %s: %s", c->key_path, wfpb_strerror(rc));
		goto fail;
	}
	if (opts->client_key_path != NULL) {
		if ((rc = wfpb_keyfile_load_keypair(opts->client_key_path, &c->ckey)) != 0) {
			fail(c, rc, "cannot read the client key %s: %s", opts->client_key_path, wfpb_strerror(rc));
			goto fail;
		}
		c->has_ckey = 1;
	}
	if ((rc = session_open(c)) != 0)
		goto fail;
	c->err[0] = '\0';
	*out = c;
	return 0;
fail:
	if (errbuf != NULL && errlen > 0)
		snprintf(errbuf, errlen, "%s", c->err[0] ? c->err : wfpb_strerror(rc));
	wfpb_close(c);
	return rc;
}

int
wfpb_reconnect(struct wfpb_client *c)
{
	int rc;

	if (c->dead == 0)
		return 0;
	wfpb__transport_close(c->t);
	c->t = NULL;
	wfpb_channel_free(&c->ch);
	c->in_off = c->in_len = 0;
	if (c->sync_resp != NULL) {
		response_free(c, c->sync_resp);
		c->sync_resp = NULL;
	}
	c->err[0] = '\0';
	if ((rc = session_open(c)) != 0)
		return rc;	/* still dead, as it was: asked again later */
	c->dead = 0;
	return 0;
}

void
wfpb_close(struct wfpb_client *c)
{
	struct slot	*sl;
	struct done	*d;

	if (c == NULL)
		return;
	wfpb__transport_close(c->t);
	wfpb__notify_free(c->nt);
	wfpb_channel_free(&c->ch);
	/* What is in flight is abandoned: the broker releases it with the session. */
	while ((sl = c->slots) != NULL) {
		c->slots = sl->next;
		free(sl);
	}
	while ((d = c->done) != NULL) {
		c->done = d->next;
		free(d);
	}
	free(c->in);
	free(c->endpoint);
	free(c->key_path);
	sodium_memzero(c, sizeof(*c));	/* the client key with it */
	free(c);
}

uint64_t
wfpb_monotonic_us(void)
{
	return wfpb__monotonic_us();
}

int
wfpb_status(const struct wfpb_client *c)
{
	return c->status;
}

const char *
wfpb_errmsg(const struct wfpb_client *c)
{
	return c->err;
}

/*
 * Sends rq (request_id filled in here) and returns the unpacked response,
 * checked for id, status and result kind. *resp is freed by the caller with
 * response_free.
 */
static int call_sock(struct wfpb_client *, Wfpbroker__V1__Request *, Wfpbroker__V1__Response__ResultCase,
    Wfpbroker__V1__Response **, intptr_t);

static int
call(struct wfpb_client *c, Wfpbroker__V1__Request *rq, Wfpbroker__V1__Response__ResultCase want,
    Wfpbroker__V1__Response **resp)
{
	return call_sock(c, rq, want, resp, -1);
}

/*
 * As call(), passing sock (>= 0) with the request's first byte: submits, then
 * reads until its own answer. Only answers without a socket come back this
 * way: one that hands a socket over is decoded when it arrives (submit with
 * a decode_fn), so sockets and answers are matched in arrival order even
 * when asynchronous answers are read in the same pass.
 */
static int
call_sock(struct wfpb_client *c, Wfpbroker__V1__Request *rq, Wfpbroker__V1__Response__ResultCase want,
    Wfpbroker__V1__Response **resp, intptr_t sock)
{
	Wfpbroker__V1__Response	*r;
	int			rc = 0;

	*resp = NULL;
	if ((rc = submit(c, rq, want, NULL, NULL, NULL, NULL, sock, NULL)) != 0)
		return rc;
	/* Until its own answer, and what was read with it: the answers after ours are queued too. */
	while (rc == 0 && (c->sync_resp == NULL || c->in_len > 0))
		rc = step(c, c->timeout_ms);
	r = c->sync_resp;
	c->sync_resp = NULL;
	if (rc < 0) {
		/* A late answer would no longer be read in step: the session cannot go on. */
		if (r != NULL)
			response_free(c, r);
		kill_session(c, rc);
		return rc;
	}
	if (r->status->code != WFPBROKER__V1__STATUS_CODE__OK) {
		c->status = r->status->code;
		fail(c, WFPB_E_STATUS, "%s: %s", wfpb_status_name(r->status->code),
		    r->status->message ? r->status->message : "error");
		response_free(c, r);
		return WFPB_E_STATUS;
	}
	if (r->result_case != want) {
		response_free(c, r);
		return fail(c, WFPB_E_PROTOCOL, "response carries the wrong result");
	}
	*resp = r;
	return 0;
}

/*
 * Waits for the answer to request id (an asynchronous slot of this client),
 * reading within timeout_ms, and takes its completion: its rc, with status
 * and message where the blocking calls keep them.
 */
static int
wait_for(struct wfpb_client *c, uint64_t id, uint32_t timeout_ms)
{
	struct done	**pp, *d;
	int		rc;

	/* What was submitted and is still queued goes first: the answer cannot come before the request. */
	if (!c->dead && (rc = flush(c)) != 0)
		kill_session(c, rc);	/* every request in flight, this one too, completes with it */
	for (;;) {
		for (pp = &c->done; *pp != NULL && (*pp)->id != id; pp = &(*pp)->next)
			;
		if ((d = *pp) != NULL) {
			if ((*pp = d->next) == NULL)
				c->done_tail = pp;
			c->n_done--;
			rc = d->rc;
			c->status = d->status;
			snprintf(c->err, sizeof(c->err), "%s", d->message);
			free(d);
			/* Answers of submitted requests this call read on its way: a notice says they are there. */
			if (!c->dead)
				wfpb__transport_rearm(c->t, c->n_done > 0 || c->in_len > 0);
			return rc;
		}
		/* On an error every request in flight, this one too, completes with it. */
		if ((rc = step(c, timeout_ms)) < 0)
			kill_session(c, rc);
	}
}

/* What a blocking Ping checks its echo against. */
struct ping_check {
	const uint8_t	*payload;
	size_t		len;
};

static int
decode_ping(struct wfpb_client *c, const Wfpbroker__V1__Response *r, struct slot *sl)
{
	const struct ping_check *pc = sl->out2;

	if (pc != NULL && (r->ping->payload.len != pc->len ||
	    (pc->len > 0 && memcmp(r->ping->payload.data, pc->payload, pc->len) != 0)))
		return fail(c, WFPB_E_PROTOCOL, "ping payload came back altered");
	if (sl->out != NULL)
		*(uint32_t *)sl->out = r->ping->protocol_version;
	return 0;
}

static void
ping_request(Wfpbroker__V1__Request *rq, Wfpbroker__V1__PingRequest *ping, const uint8_t *payload, size_t len)
{
	ping->payload.data = (uint8_t *)(uintptr_t)payload;
	ping->payload.len = len;
	rq->op_case = WFPBROKER__V1__REQUEST__OP_PING;
	rq->ping = ping;
}

int
wfpb_submit_ping(struct wfpb_client *c, const uint8_t *payload, size_t len, uint32_t *protocol_version, void *user,
    uint64_t *request_id)
{
	Wfpbroker__V1__Request		rq = WFPBROKER__V1__REQUEST__INIT;
	Wfpbroker__V1__PingRequest	ping = WFPBROKER__V1__PING_REQUEST__INIT;

	ping_request(&rq, &ping, payload, len);
	return submit(c, &rq, WFPBROKER__V1__RESPONSE__RESULT_PING, decode_ping, protocol_version, NULL, user, -1,
	    request_id);
}

int
wfpb_ping(struct wfpb_client *c, const uint8_t *payload, size_t len, uint32_t *protocol_version)
{
	Wfpbroker__V1__Request		rq = WFPBROKER__V1__REQUEST__INIT;
	Wfpbroker__V1__PingRequest	ping = WFPBROKER__V1__PING_REQUEST__INIT;
	struct ping_check		pc = { payload, len };
	uint64_t			id = 0;
	int				rc;

	ping_request(&rq, &ping, payload, len);
	if ((rc = submit(c, &rq, WFPBROKER__V1__RESPONSE__RESULT_PING, decode_ping, protocol_version, &pc, NULL, -1,
	    &id)) != 0)
		return rc;
	return wait_for(c, id, c->timeout_ms);
}

const char *
wfpb_status_name(int code)
{
	const ProtobufCEnumValue *v =
	    protobuf_c_enum_descriptor_get_value(&wfpbroker__v1__status_code__descriptor, code);

	return v != NULL ? v->name : "UNKNOWN";
}

void
wfpb_free(void *p)
{
	free(p);
}

/* The protocol's Lifetime for WFPB_LIFETIME_*; -1 for anything else. */
static int
lifetime_pb(int lifetime)
{
	switch (lifetime) {
	case WFPB_LIFETIME_SESSION:
		return WFPBROKER__V1__LIFETIME__SESSION;
	case WFPB_LIFETIME_PRINCIPAL:
		return WFPBROKER__V1__LIFETIME__PRINCIPAL;
	case WFPB_LIFETIME_ONCE:
		return WFPBROKER__V1__LIFETIME__ONCE;
	default:
		return -1;
	}
}

int
wfpb_stash(struct wfpb_client *c, const uint8_t *blob, size_t len, int lifetime,
    uint8_t handle[WFPB_HANDLE_LEN])
{
	Wfpbroker__V1__Request		rq = WFPBROKER__V1__REQUEST__INIT;
	Wfpbroker__V1__StashRequest	st = WFPBROKER__V1__STASH_REQUEST__INIT;
	Wfpbroker__V1__Response		*r;
	int				rc;

	if (lifetime_pb(lifetime) < 0)
		return fail(c, WFPB_E_INVAL, "stash: unknown lifetime %d", lifetime);
	st.blob.data = (uint8_t *)(uintptr_t)blob;
	st.blob.len = len;
	st.lifetime = (Wfpbroker__V1__Lifetime)lifetime_pb(lifetime);
	rq.op_case = WFPBROKER__V1__REQUEST__OP_STASH;
	rq.stash = &st;
	if ((rc = call(c, &rq, WFPBROKER__V1__RESPONSE__RESULT_STASH, &r)) != 0)
		return rc;
	if (r->stash->handle == NULL || r->stash->handle->id.len != WFPB_HANDLE_LEN)
		rc = fail(c, WFPB_E_PROTOCOL, "stash: the broker returned a malformed handle");
	else
		memcpy(handle, r->stash->handle->id.data, WFPB_HANDLE_LEN);
	response_free(c, r);
	return rc;
}

static int
decode_fetch(struct wfpb_client *c, const Wfpbroker__V1__Response *r, struct slot *sl)
{
	uint8_t **blob = sl->out;

	(void)c;
	if ((*blob = malloc(r->fetch->blob.len ? r->fetch->blob.len : 1)) == NULL)
		return WFPB_E_NOMEM;
	memcpy(*blob, r->fetch->blob.data, r->fetch->blob.len);
	*(size_t *)sl->out2 = r->fetch->blob.len;
	return 0;
}

int
wfpb_submit_fetch(struct wfpb_client *c, const uint8_t handle[WFPB_HANDLE_LEN], uint8_t **blob, size_t *len,
    void *user, uint64_t *request_id)
{
	Wfpbroker__V1__Request		rq = WFPBROKER__V1__REQUEST__INIT;
	Wfpbroker__V1__FetchRequest	f = WFPBROKER__V1__FETCH_REQUEST__INIT;
	Wfpbroker__V1__StashHandle	h = WFPBROKER__V1__STASH_HANDLE__INIT;

	*blob = NULL;
	*len = 0;
	h.id.data = (uint8_t *)(uintptr_t)handle;
	h.id.len = WFPB_HANDLE_LEN;
	f.handle = &h;
	rq.op_case = WFPBROKER__V1__REQUEST__OP_FETCH;
	rq.fetch = &f;
	return submit(c, &rq, WFPBROKER__V1__RESPONSE__RESULT_FETCH, decode_fetch, blob, len, user, -1, request_id);
}

int
wfpb_fetch(struct wfpb_client *c, const uint8_t handle[WFPB_HANDLE_LEN], uint8_t **blob, size_t *len)
{
	uint64_t	id = 0;
	int		rc;

	if ((rc = wfpb_submit_fetch(c, handle, blob, len, NULL, &id)) != 0)
		return rc;
	return wait_for(c, id, c->timeout_ms);
}

static int
decode_none(struct wfpb_client *c, const Wfpbroker__V1__Response *r, struct slot *sl)
{
	(void)c;
	(void)r;
	(void)sl;
	return 0;
}

int
wfpb_submit_release(struct wfpb_client *c, const uint8_t handle[WFPB_HANDLE_LEN], void *user, uint64_t *request_id)
{
	Wfpbroker__V1__Request		rq = WFPBROKER__V1__REQUEST__INIT;
	Wfpbroker__V1__ReleaseRequest	rl = WFPBROKER__V1__RELEASE_REQUEST__INIT;
	Wfpbroker__V1__StashHandle	h = WFPBROKER__V1__STASH_HANDLE__INIT;

	h.id.data = (uint8_t *)(uintptr_t)handle;
	h.id.len = WFPB_HANDLE_LEN;
	rl.target_case = WFPBROKER__V1__RELEASE_REQUEST__TARGET_HANDLE;
	rl.handle = &h;
	rq.op_case = WFPBROKER__V1__REQUEST__OP_RELEASE;
	rq.release = &rl;
	return submit(c, &rq, WFPBROKER__V1__RESPONSE__RESULT_RELEASE, decode_none, NULL, NULL, user, -1, request_id);
}

int
wfpb_release(struct wfpb_client *c, const uint8_t handle[WFPB_HANDLE_LEN])
{
	uint64_t	id = 0;
	int		rc;

	if ((rc = wfpb_submit_release(c, handle, NULL, &id)) != 0)
		return rc;
	return wait_for(c, id, c->timeout_ms);
}

int
wfpb_server_status(struct wfpb_client *c, struct wfpb_status_info *out)
{
	Wfpbroker__V1__Request		rq = WFPBROKER__V1__REQUEST__INIT;
	Wfpbroker__V1__StatusRequest	st = WFPBROKER__V1__STATUS_REQUEST__INIT;
	Wfpbroker__V1__Response		*r;
	Wfpbroker__V1__StatusResponse	*s;
	size_t				have;
	int				rc;

	/* 0.1's layout ended at backend; requests_in_flight is written only for a caller that has it. */
	if (!sized_ok(out, offsetof(struct wfpb_status_info, requests_in_flight)))
		return fail(c, WFPB_E_INVAL, "struct wfpb_status_info without its size: use WFPB_STATUS_INFO_INIT");
	have = out->size < sizeof(*out) ? out->size : sizeof(*out);
	rq.op_case = WFPBROKER__V1__REQUEST__OP_STATUS;
	rq.status = &st;
	if ((rc = call(c, &rq, WFPBROKER__V1__RESPONSE__RESULT_STATUS_RESULT, &r)) != 0)
		return rc;
	s = r->status_result;
	sized_reset(out, have);
	out->sessions = s->sessions;
	out->requests = s->requests;
	out->denials = s->denials;
	out->stash_entries = s->stash_entries;
	out->stash_bytes = s->stash_bytes;
	out->listeners = s->listeners;
	out->uptime_ms = s->uptime_ms;
	out->records_applied = s->records_applied;
	out->audit_durable_seq = s->audit_durable_seq;
	out->audit_commits = s->audit_commits;
	out->audit_max_batch = s->audit_max_batch;
	out->audit_broken = s->audit_broken;
	out->events_reported = s->events_reported;
	out->rss_bytes = s->rss_bytes;
	out->open_handles = s->open_handles;
	out->workers = s->workers;
	out->pid = s->pid;
	snprintf(out->backend, sizeof(out->backend), "%s", s->backend ? s->backend : "");
	if (have >= offsetof(struct wfpb_status_info, requests_in_flight) + sizeof(out->requests_in_flight))
		out->requests_in_flight = s->requests_in_flight;
	if (have >= offsetof(struct wfpb_status_info, audit_lost) + sizeof(out->audit_lost))
		out->audit_lost = s->audit_lost;
	response_free(c, r);
	return 0;
}

int
wfpb_reload(struct wfpb_client *c, uint32_t *principals)
{
	Wfpbroker__V1__Request		rq = WFPBROKER__V1__REQUEST__INIT;
	Wfpbroker__V1__ReloadRequest	rl = WFPBROKER__V1__RELOAD_REQUEST__INIT;
	Wfpbroker__V1__Response		*r;
	int				rc;

	rq.op_case = WFPBROKER__V1__REQUEST__OP_RELOAD;
	rq.reload = &rl;
	if ((rc = call(c, &rq, WFPBROKER__V1__RESPONSE__RESULT_RELOAD, &r)) != 0)
		return rc;
	if (principals != NULL)
		*principals = r->reload->principals;
	response_free(c, r);
	return 0;
}

static void
addr_to_pb(const struct wfpb_addr *a, Wfpbroker__V1__Address *pb)
{
	wfpbroker__v1__address__init(pb);
	pb->family = a->family == WFPB_AF_INET6 ? WFPBROKER__V1__ADDRESS_FAMILY__AF_INET6 :
	    WFPBROKER__V1__ADDRESS_FAMILY__AF_INET;
	pb->addr.data = (uint8_t *)(uintptr_t)a->addr;
	pb->addr.len = wfpb_addr_len(a->family);
	pb->port = a->port;
	pb->scope_id = a->scope_id;
}

static int
addr_from_pb(const Wfpbroker__V1__Address *pb, struct wfpb_addr *a)
{
	memset(a, 0, sizeof(*a));
	if (pb == NULL)
		return -1;
	a->family = pb->family == WFPBROKER__V1__ADDRESS_FAMILY__AF_INET6 ? WFPB_AF_INET6 : WFPB_AF_INET;
	if (pb->addr.len != wfpb_addr_len(a->family) || pb->port > 65535)
		return -1;
	memcpy(a->addr, pb->addr.data, pb->addr.len);
	a->port = (uint16_t)pb->port;
	a->scope_id = pb->scope_id;
	return 0;
}

/* The socket a response hands over: it must be there, exactly as announced. */
static int
take_socket(struct wfpb_client *c, const Wfpbroker__V1__SocketTransfer *x, unsigned index, wfpb_socket_t *out)
{
	intptr_t	s;
	int		rc;

	if (x != NULL && x->kind_case == WFPBROKER__V1__SOCKET_TRANSFER__KIND_WSA_PROTOCOL_INFO) {
		rc = wfpb__socket_from_info(x->wsa_protocol_info.data, x->wsa_protocol_info.len, c->nonblocking, &s);
		if (rc != 0)
			return fail(c, rc, "cannot open the socket the broker handed over: %s", wfpb_strerror(rc));
		*out = (wfpb_socket_t)s;
		return 0;
	}
	/* Descriptors arrive in the order of their index (docs/PROTOCOL.md §5). */
	if (x == NULL || x->kind_case != WFPBROKER__V1__SOCKET_TRANSFER__KIND_FD_INDEX || x->fd_index != index)
		return fail(c, WFPB_E_PROTOCOL, "the broker's socket hand-over is not one this client can take");
	if ((s = wfpb__transport_take_sock(c->t, c->nonblocking)) < 0)
		return fail(c, WFPB_E_PROTOCOL, "the broker announced a socket but none arrived");
	*out = (wfpb_socket_t)s;
	return 0;
}

/* Closes a handed-over socket the caller did not take, and marks it gone. */
static void
drop_socket(wfpb_socket_t *s)
{
	if (*s != WFPB_SOCKET_NONE)
		wfpb__close_socket(*s);
	*s = WFPB_SOCKET_NONE;
}

static int
decode_listen(struct wfpb_client *c, const Wfpbroker__V1__Response *r, struct slot *sl)
{
	wfpb_socket_t	held = WFPB_SOCKET_NONE;
	int		rc;

	/* A listener handed over to a caller with no place for it (not wfpb_listen_udp_held): taken, and closed. */
	if (r->listen->socket != NULL) {
		if ((rc = take_socket(c, r->listen->socket, 0, &held)) != 0)
			return rc;
		drop_socket(&held);
	}
	*(uint64_t *)sl->out = r->listen->listener_id;
	if (sl->out2 != NULL && addr_from_pb(r->listen->local, sl->out2) != 0)
		return fail(c, WFPB_E_PROTOCOL, "listen: malformed bound address");
	return 0;
}

/* A Listen whose answer decode copies into out and out2. */
static int
submit_listen_with(struct wfpb_client *c, const struct wfpb_addr *local, unsigned backlog,
    Wfpbroker__V1__Protocol proto, decode_fn *decode, void *out, void *out2, void *user, uint64_t *request_id)
{
	Wfpbroker__V1__Request		rq = WFPBROKER__V1__REQUEST__INIT;
	Wfpbroker__V1__ListenRequest	l = WFPBROKER__V1__LISTEN_REQUEST__INIT;
	Wfpbroker__V1__Address		a;

	addr_to_pb(local, &a);
	l.local = &a;
	l.backlog = backlog;
	l.protocol = proto;
	rq.op_case = WFPBROKER__V1__REQUEST__OP_LISTEN;
	rq.listen = &l;
	return submit(c, &rq, WFPBROKER__V1__RESPONSE__RESULT_LISTEN, decode, out, out2, user, -1, request_id);
}

static int
decode_listen_udp_held(struct wfpb_client *c, const Wfpbroker__V1__Response *r, struct slot *sl)
{
	struct wfpb_udp_listener	*out = sl->out;
	int				rc;

	if (r->listen->socket != NULL && (rc = take_socket(c, r->listen->socket, 0, &out->held)) != 0)
		return rc;
	out->id = r->listen->listener_id;
	if (addr_from_pb(r->listen->local, &out->bound) != 0) {
		wfpb_udp_listener_close(out);
		return fail(c, WFPB_E_PROTOCOL, "listen: malformed bound address");
	}
	return 0;
}

int
wfpb_submit_listen_udp_held(struct wfpb_client *c, const struct wfpb_addr *local, struct wfpb_udp_listener *out,
    void *user, uint64_t *request_id)
{
	if (!sized_ok(out, sizeof(*out)))
		return fail(c, WFPB_E_INVAL, "struct wfpb_udp_listener without its size: use WFPB_UDP_LISTENER_INIT");
	sized_reset(out, sizeof(*out));
	out->held = WFPB_SOCKET_NONE;
	return submit_listen_with(c, local, 0, WFPBROKER__V1__PROTOCOL__UDP, decode_listen_udp_held, out, NULL, user,
	    request_id);
}

int
wfpb_listen_udp_held(struct wfpb_client *c, const struct wfpb_addr *local, struct wfpb_udp_listener *out)
{
	uint64_t	id = 0;
	int		rc;

	if ((rc = wfpb_submit_listen_udp_held(c, local, out, NULL, &id)) != 0)
		return rc;
	return wait_for(c, id, c->timeout_ms);
}

void
wfpb_udp_listener_close(struct wfpb_udp_listener *l)
{
	if (!sized_ok(l, sizeof(*l)))
		return;
	drop_socket(&l->held);
}

static int
submit_listen(struct wfpb_client *c, const struct wfpb_addr *local, unsigned backlog, Wfpbroker__V1__Protocol proto,
    uint64_t *listener_id, struct wfpb_addr *bound, void *user, uint64_t *request_id)
{
	return submit_listen_with(c, local, backlog, proto, decode_listen, listener_id, bound, user, request_id);
}

static int
listen_proto(struct wfpb_client *c, const struct wfpb_addr *local, unsigned backlog, Wfpbroker__V1__Protocol proto,
    uint64_t *listener_id, struct wfpb_addr *bound)
{
	uint64_t	id = 0;
	int		rc;

	if ((rc = submit_listen(c, local, backlog, proto, listener_id, bound, NULL, &id)) != 0)
		return rc;
	return wait_for(c, id, c->timeout_ms);
}

int
wfpb_submit_listen(struct wfpb_client *c, const struct wfpb_addr *local, unsigned backlog, uint64_t *listener_id,
    struct wfpb_addr *bound, void *user, uint64_t *request_id)
{
	return submit_listen(c, local, backlog, WFPBROKER__V1__PROTOCOL__TCP, listener_id, bound, user, request_id);
}

int
wfpb_submit_listen_udp(struct wfpb_client *c, const struct wfpb_addr *local, uint64_t *listener_id,
    struct wfpb_addr *bound, void *user, uint64_t *request_id)
{
	return submit_listen(c, local, 0, WFPBROKER__V1__PROTOCOL__UDP, listener_id, bound, user, request_id);
}

int
wfpb_listen(struct wfpb_client *c, const struct wfpb_addr *local, unsigned backlog, uint64_t *listener_id,
    struct wfpb_addr *bound)
{
	return listen_proto(c, local, backlog, WFPBROKER__V1__PROTOCOL__TCP, listener_id, bound);
}

int
wfpb_listen_udp(struct wfpb_client *c, const struct wfpb_addr *local, uint64_t *listener_id, struct wfpb_addr *bound)
{
	return listen_proto(c, local, 0, WFPBROKER__V1__PROTOCOL__UDP, listener_id, bound);
}

/* A copy of the redirect context an answer carries, for the caller (malloc'd; NULL when empty). */
static int
copy_context(const ProtobufCBinaryData *ctx, uint8_t **out, size_t *len)
{
	*out = NULL;
	*len = 0;
	if (ctx->len == 0)
		return 0;
	if ((*out = malloc(ctx->len)) == NULL)
		return WFPB_E_NOMEM;
	memcpy(*out, ctx->data, ctx->len);
	*len = ctx->len;
	return 0;
}

/* The original destination an answer may carry: 1 with *out set, 0 when absent, -1 when malformed. */
static int
original_dst(const Wfpbroker__V1__Address *pb, struct wfpb_addr *out)
{
	if (pb == NULL)
		return 0;
	return addr_from_pb(pb, out) == 0 ? 1 : -1;
}

static int
decode_accept(struct wfpb_client *c, const Wfpbroker__V1__Response *r, struct slot *sl)
{
	const Wfpbroker__V1__AcceptResponse	*ar = r->accept;
	struct wfpb_accepted			*out = sl->out;
	struct wfpb_addr			dst;
	int					rc, has_dst = 0;

	if ((rc = take_socket(c, ar->socket, 0, &out->sock)) == 0) {
		if (addr_from_pb(ar->peer, &out->peer) != 0 || addr_from_pb(ar->local, &out->local) != 0 ||
		    (has_dst = original_dst(ar->original_destination, &dst)) < 0)
			rc = fail(c, WFPB_E_PROTOCOL, "accept: malformed address");
		if (ar->records != NULL && ar->records->id.len == WFPB_HANDLE_LEN) {
			memcpy(out->records, ar->records->id.data, WFPB_HANDLE_LEN);
			out->has_records = 1;
		}
		out->records_error = ar->records_error;
		out->context_error = ar->context_error;
		/* Written only for a caller whose struct has them. */
		if (rc == 0 && out->size >= sizeof(*out) && has_dst) {
			out->has_original_dst = 1;
			out->original_dst = dst;
		}
		if (rc == 0)
			rc = copy_context(&ar->context, &out->context, &out->context_len);
	}
	if (rc != 0)
		wfpb_accepted_free(out);
	return rc;
}

/* An Accept on the session's listener_id, or on the declared listener called name. */
static int
submit_accept(struct wfpb_client *c, uint64_t listener_id, const char *name, uint32_t timeout_ms, int lifetime,
    struct wfpb_accepted *out, void *user, uint64_t *request_id)
{
	Wfpbroker__V1__Request		rq = WFPBROKER__V1__REQUEST__INIT;
	Wfpbroker__V1__AcceptRequest	a = WFPBROKER__V1__ACCEPT_REQUEST__INIT;

	/* The first layout ended at context_error. */
	if (!sized_ok(out, offsetof(struct wfpb_accepted, has_original_dst)))
		return fail(c, WFPB_E_INVAL, "struct wfpb_accepted without its size: use WFPB_ACCEPTED_INIT");
	sized_reset(out, out->size < sizeof(*out) ? out->size : sizeof(*out));
	out->sock = WFPB_SOCKET_NONE;
	if (lifetime_pb(lifetime) < 0)
		return fail(c, WFPB_E_INVAL, "accept: unknown lifetime %d", lifetime);
	a.listener_id = listener_id;
	if (name != NULL)
		a.listener = (char *)(uintptr_t)name;
	a.timeout_ms = timeout_ms;
	a.lifetime = (Wfpbroker__V1__Lifetime)lifetime_pb(lifetime);
	rq.op_case = WFPBROKER__V1__REQUEST__OP_ACCEPT;
	rq.accept = &a;
	return submit(c, &rq, WFPBROKER__V1__RESPONSE__RESULT_ACCEPT, decode_accept, out, NULL, user, -1, request_id);
}

int
wfpb_submit_accept(struct wfpb_client *c, uint64_t listener_id, uint32_t timeout_ms, int lifetime,
    struct wfpb_accepted *out, void *user, uint64_t *request_id)
{
	return submit_accept(c, listener_id, NULL, timeout_ms, lifetime, out, user, request_id);
}

int
wfpb_submit_accept_declared(struct wfpb_client *c, const char *listener, uint32_t timeout_ms, int lifetime,
    struct wfpb_accepted *out, void *user, uint64_t *request_id)
{
	if (listener == NULL || listener[0] == '\0')
		return fail(c, WFPB_E_INVAL, "accept: no listener named");
	return submit_accept(c, 0, listener, timeout_ms, lifetime, out, user, request_id);
}

/* How long a blocking call waits for an answer the broker gives within timeout_ms (0: its default). */
static uint32_t
answer_within(const struct wfpb_client *c, uint32_t timeout_ms, uint32_t broker_default)
{
	uint32_t t = (timeout_ms ? timeout_ms : broker_default) + 5000;

	return t > c->timeout_ms ? t : c->timeout_ms;
}

int
wfpb_accept(struct wfpb_client *c, uint64_t listener_id, uint32_t timeout_ms, int lifetime,
    struct wfpb_accepted *out)
{
	uint64_t	id = 0;
	int		rc;

	if ((rc = wfpb_submit_accept(c, listener_id, timeout_ms, lifetime, out, NULL, &id)) != 0)
		return rc;
	return wait_for(c, id, answer_within(c, timeout_ms, 30000));
}

int
wfpb_accept_declared(struct wfpb_client *c, const char *listener, uint32_t timeout_ms, int lifetime,
    struct wfpb_accepted *out)
{
	uint64_t	id = 0;
	int		rc;

	if ((rc = wfpb_submit_accept_declared(c, listener, timeout_ms, lifetime, out, NULL, &id)) != 0)
		return rc;
	return wait_for(c, id, answer_within(c, timeout_ms, 30000));
}

void
wfpb_accepted_free(struct wfpb_accepted *a)
{
	/* Without its size the struct was never ours to fill (wfpb_accept refused it): touch nothing, close nothing. */
	if (!sized_ok(a, offsetof(struct wfpb_accepted, has_original_dst)))
		return;
	drop_socket(&a->sock);
	free(a->context);
	a->context = NULL;
	a->context_len = 0;
}

static int
decode_relay(struct wfpb_client *c, const Wfpbroker__V1__Response *r, struct slot *sl)
{
	const Wfpbroker__V1__RelayResponse	*rr = r->relay;
	struct wfpb_relayed			*out = sl->out;
	int					rc, has_dst = 0;

	/* Both sockets first, in their order: whatever else is wrong, none stays unowned. */
	if ((rc = take_socket(c, rr->accepted, 0, &out->accepted)) == 0)
		rc = take_socket(c, rr->upstream, 1, &out->upstream);
	if (rc == 0 && (addr_from_pb(rr->peer, &out->peer) != 0 || addr_from_pb(rr->local, &out->local) != 0 ||
	    addr_from_pb(rr->remote, &out->remote) != 0 || addr_from_pb(rr->upstream_local, &out->upstream_local) != 0 ||
	    (has_dst = original_dst(rr->original_destination, &out->original_dst)) < 0))
		rc = fail(c, WFPB_E_PROTOCOL, "relay: malformed address");
	if (rc == 0) {
		out->has_original_dst = has_dst;
		out->records_error = rr->records_error;
		out->context_error = rr->context_error;
		rc = copy_context(&rr->context, &out->context, &out->context_len);
	}
	if (rc != 0)
		wfpb_relayed_free(out);
	return rc;
}

int
wfpb_submit_relay(struct wfpb_client *c, uint64_t listener_id, const char *listener, const struct wfpb_addr *remote,
    const struct wfpb_addr *local, uint32_t timeout_ms, uint32_t connect_timeout_ms, struct wfpb_relayed *out,
    void *user, uint64_t *request_id)
{
	Wfpbroker__V1__Request		rq = WFPBROKER__V1__REQUEST__INIT;
	Wfpbroker__V1__RelayRequest	re = WFPBROKER__V1__RELAY_REQUEST__INIT;
	Wfpbroker__V1__Address		ra, la;

	if (!sized_ok(out, sizeof(*out)))
		return fail(c, WFPB_E_INVAL, "struct wfpb_relayed without its size: use WFPB_RELAYED_INIT");
	sized_reset(out, sizeof(*out));
	out->accepted = out->upstream = WFPB_SOCKET_NONE;
	if ((listener == NULL || listener[0] == '\0') == (listener_id == 0))
		return fail(c, WFPB_E_INVAL, "relay: name one listener, by id or by name");
	re.listener_id = listener_id;
	if (listener != NULL)
		re.listener = (char *)(uintptr_t)listener;
	re.timeout_ms = timeout_ms;
	re.connect_timeout_ms = connect_timeout_ms;
	if (remote != NULL) {
		addr_to_pb(remote, &ra);
		re.remote = &ra;
	}
	if (local != NULL) {
		addr_to_pb(local, &la);
		re.local = &la;
	}
	rq.op_case = WFPBROKER__V1__REQUEST__OP_RELAY;
	rq.relay = &re;
	return submit(c, &rq, WFPBROKER__V1__RESPONSE__RESULT_RELAY, decode_relay, out, NULL, user, -1, request_id);
}

int
wfpb_relay(struct wfpb_client *c, uint64_t listener_id, const char *listener, const struct wfpb_addr *remote,
    const struct wfpb_addr *local, uint32_t timeout_ms, uint32_t connect_timeout_ms, struct wfpb_relayed *out)
{
	uint64_t	id = 0;
	int		rc;

	if ((rc = wfpb_submit_relay(c, listener_id, listener, remote, local, timeout_ms, connect_timeout_ms, out, NULL,
	    &id)) != 0)
		return rc;
	/* The wait for a connection, then the connect. */
	return wait_for(c, id, answer_within(c, timeout_ms, 30000) + (connect_timeout_ms ? connect_timeout_ms : 10000));
}

void
wfpb_relayed_free(struct wfpb_relayed *r)
{
	if (!sized_ok(r, sizeof(*r)))
		return;
	drop_socket(&r->accepted);
	drop_socket(&r->upstream);
	free(r->context);
	r->context = NULL;
	r->context_len = 0;
}

static int
decode_flow(struct wfpb_client *c, const Wfpbroker__V1__Response *r, struct slot *sl)
{
	const Wfpbroker__V1__FlowResponse	*fr = r->flow;
	struct wfpb_flow			*out = sl->out;
	int					rc;

	/* A flow that stays on the listener (Flow.first) has no reply socket: upstream is the only one. */
	if (fr->reply == NULL)
		rc = take_socket(c, fr->upstream, 0, &out->upstream);
	else if ((rc = take_socket(c, fr->reply, 0, &out->reply)) == 0)
		rc = take_socket(c, fr->upstream, 1, &out->upstream);
	if (rc == 0 && (addr_from_pb(fr->client, &out->client) != 0 || original_dst(fr->original_destination,
	    &out->original_dst) < 0 || addr_from_pb(fr->remote, &out->remote) != 0))
		rc = fail(c, WFPB_E_PROTOCOL, "flow: malformed address");
	if (rc == 0 && fr->payload.len > 0) {
		if ((out->payload = malloc(fr->payload.len)) == NULL)
			rc = WFPB_E_NOMEM;
		else {
			memcpy(out->payload, fr->payload.data, fr->payload.len);
			out->payload_len = fr->payload.len;
		}
	}
	if (rc == 0) {
		out->forwarded = fr->forwarded;
		rc = copy_context(&fr->context, &out->context, &out->context_len);
	}
	if (rc != 0)
		wfpb_flow_free(out);
	return rc;
}

/*
 * A Flow (first: the Windows form, with the datagram the proxy read; NULL: the broker reads
 * it), its answer into out.
 */
static int
submit_flow(struct wfpb_client *c, uint64_t listener_id, const struct wfpb_flow_first *first,
    const struct wfpb_addr *remote, unsigned flags, uint32_t timeout_ms, struct wfpb_flow *out, void *user,
    uint64_t *request_id)
{
	Wfpbroker__V1__Request		rq = WFPBROKER__V1__REQUEST__INIT;
	Wfpbroker__V1__FlowRequest	fl = WFPBROKER__V1__FLOW_REQUEST__INIT;
	Wfpbroker__V1__FlowFirst	ff = WFPBROKER__V1__FLOW_FIRST__INIT;
	Wfpbroker__V1__Address		ra, ca;

	if (!sized_ok(out, sizeof(*out)))
		return fail(c, WFPB_E_INVAL, "struct wfpb_flow without its size: use WFPB_FLOW_INIT");
	if (first != NULL && !sized_ok(first, sizeof(*first)))
		return fail(c, WFPB_E_INVAL, "struct wfpb_flow_first without its size: use WFPB_FLOW_FIRST_INIT");
	sized_reset(out, sizeof(*out));
	out->reply = out->upstream = WFPB_SOCKET_NONE;
	fl.listener_id = listener_id;
	fl.timeout_ms = timeout_ms;
	fl.hold_first = (flags & WFPB_FLOW_HOLD_FIRST) != 0;
	fl.without_records = (flags & WFPB_FLOW_WITHOUT_RECORDS) != 0;
	if (remote != NULL) {
		addr_to_pb(remote, &ra);
		fl.remote = &ra;
	}
	if (first != NULL) {
		addr_to_pb(&first->client, &ca);
		ff.client = &ca;
		ff.payload.data = (uint8_t *)(uintptr_t)first->payload;
		ff.payload.len = first->payload_len;
		ff.records.data = (uint8_t *)(uintptr_t)first->records;
		ff.records.len = first->records_len;
		ff.context.data = (uint8_t *)(uintptr_t)first->context;
		ff.context.len = first->context_len;
		fl.first = &ff;
	}
	rq.op_case = WFPBROKER__V1__REQUEST__OP_FLOW;
	rq.flow = &fl;
	return submit(c, &rq, WFPBROKER__V1__RESPONSE__RESULT_FLOW, decode_flow, out, NULL, user, -1, request_id);
}

int
wfpb_submit_flow(struct wfpb_client *c, uint64_t listener_id, const struct wfpb_addr *remote, unsigned flags,
    uint32_t timeout_ms, struct wfpb_flow *out, void *user, uint64_t *request_id)
{
	return submit_flow(c, listener_id, NULL, remote, flags, timeout_ms, out, user, request_id);
}

int
wfpb_submit_flow_first(struct wfpb_client *c, uint64_t listener_id, const struct wfpb_flow_first *first,
    const struct wfpb_addr *remote, unsigned flags, struct wfpb_flow *out, void *user, uint64_t *request_id)
{
	if (first == NULL)
		return fail(c, WFPB_E_INVAL, "flow_first: no datagram");
	return submit_flow(c, listener_id, first, remote, flags, 0, out, user, request_id);
}

int
wfpb_flow_first(struct wfpb_client *c, uint64_t listener_id, const struct wfpb_flow_first *first,
    const struct wfpb_addr *remote, unsigned flags, struct wfpb_flow *out)
{
	uint64_t	id = 0;
	int		rc;

	if ((rc = wfpb_submit_flow_first(c, listener_id, first, remote, flags, out, NULL, &id)) != 0)
		return rc;
	return wait_for(c, id, c->timeout_ms);
}

int
wfpb_flow(struct wfpb_client *c, uint64_t listener_id, const struct wfpb_addr *remote, unsigned flags,
    uint32_t timeout_ms, struct wfpb_flow *out)
{
	uint64_t	id = 0;
	int		rc;

	if ((rc = wfpb_submit_flow(c, listener_id, remote, flags, timeout_ms, out, NULL, &id)) != 0)
		return rc;
	return wait_for(c, id, answer_within(c, timeout_ms, 30000));
}

void
wfpb_flow_free(struct wfpb_flow *f)
{
	if (!sized_ok(f, sizeof(*f)))
		return;
	drop_socket(&f->reply);
	drop_socket(&f->upstream);
	free(f->payload);
	free(f->context);
	f->payload = f->context = NULL;
	f->payload_len = f->context_len = 0;
}

static void
records_to_pb(const uint8_t *handle, const uint8_t *blob, size_t len, Wfpbroker__V1__RecordSource *src,
    Wfpbroker__V1__StashHandle *h)
{
	wfpbroker__v1__record_source__init(src);
	wfpbroker__v1__stash_handle__init(h);
	if (handle != NULL) {
		h->id.data = (uint8_t *)(uintptr_t)handle;
		h->id.len = WFPB_HANDLE_LEN;
		src->source_case = WFPBROKER__V1__RECORD_SOURCE__SOURCE_HANDLE;
		src->handle = h;
	} else {
		src->source_case = WFPBROKER__V1__RECORD_SOURCE__SOURCE_BLOB;
		src->blob.data = (uint8_t *)(uintptr_t)blob;
		src->blob.len = len;
	}
}

static int
decode_connect(struct wfpb_client *c, const Wfpbroker__V1__Response *r, struct slot *sl)
{
	wfpb_socket_t	*sock = sl->out;
	int		rc;

	if ((rc = take_socket(c, r->connect->socket, 0, sock)) == 0 && sl->out2 != NULL &&
	    addr_from_pb(r->connect->local, sl->out2) != 0)
		rc = fail(c, WFPB_E_PROTOCOL, "connect: malformed local address");
	if (rc != 0)
		drop_socket(sock);
	return rc;
}

int
wfpb_submit_connect(struct wfpb_client *c, const uint8_t *handle, const uint8_t *blob, size_t blob_len,
    const struct wfpb_addr *remote, const struct wfpb_addr *local, uint32_t timeout_ms, wfpb_socket_t *sock,
    struct wfpb_addr *local_out, void *user, uint64_t *request_id)
{
	Wfpbroker__V1__Request		rq = WFPBROKER__V1__REQUEST__INIT;
	Wfpbroker__V1__ConnectRequest	cr = WFPBROKER__V1__CONNECT_REQUEST__INIT;
	Wfpbroker__V1__RecordSource	src;
	Wfpbroker__V1__StashHandle	h;
	Wfpbroker__V1__Address		ra, la;

	*sock = WFPB_SOCKET_NONE;
	records_to_pb(handle, blob, blob_len, &src, &h);
	addr_to_pb(remote, &ra);
	if (handle != NULL || blob != NULL)
		cr.records = &src;
	cr.remote = &ra;
	if (local != NULL) {
		addr_to_pb(local, &la);
		cr.local = &la;
	}
	cr.timeout_ms = timeout_ms;
	rq.op_case = WFPBROKER__V1__REQUEST__OP_CONNECT;
	rq.connect = &cr;
	return submit(c, &rq, WFPBROKER__V1__RESPONSE__RESULT_CONNECT, decode_connect, sock, local_out, user, -1,
	    request_id);
}

int
wfpb_connect(struct wfpb_client *c, const uint8_t *handle, const uint8_t *blob, size_t blob_len,
    const struct wfpb_addr *remote, const struct wfpb_addr *local, uint32_t timeout_ms, wfpb_socket_t *sock,
    struct wfpb_addr *local_out)
{
	uint64_t	id = 0;
	int		rc;

	if ((rc = wfpb_submit_connect(c, handle, blob, blob_len, remote, local, timeout_ms, sock, local_out, NULL,
	    &id)) != 0)
		return rc;
	return wait_for(c, id, answer_within(c, timeout_ms, 10000));
}

/*
 * A socket of ours for the broker: on POSIX the descriptor travels with the
 * request (SCM_RIGHTS, index 0); on Windows the broker takes it from this
 * process by its handle value. Returns what call_sock should send alongside.
 */
static intptr_t
socket_to_pb(Wfpbroker__V1__SocketTransfer *x, wfpb_socket_t sock)
{
	wfpbroker__v1__socket_transfer__init(x);
#ifdef _WIN32
	x->kind_case = WFPBROKER__V1__SOCKET_TRANSFER__KIND_HANDLE;
	x->handle = (uint64_t)(uintptr_t)sock;
	return -1;
#else
	x->kind_case = WFPBROKER__V1__SOCKET_TRANSFER__KIND_FD_INDEX;
	x->fd_index = 0;
	return (intptr_t)sock;
#endif
}

static int
decode_query(struct wfpb_client *c, const Wfpbroker__V1__Response *r, struct slot *sl)
{
	const Wfpbroker__V1__QueryRecordsResponse	*qr = r->query_records;
	struct wfpb_records				*out = sl->out;

	(void)c;
	if (qr->records != NULL && qr->records->id.len == WFPB_HANDLE_LEN) {
		memcpy(out->handle, qr->records->id.data, WFPB_HANDLE_LEN);
		out->has_handle = 1;
	}
	if ((qr->blob.len && (out->blob = malloc(qr->blob.len)) == NULL) ||
	    (qr->context.len && (out->context = malloc(qr->context.len)) == NULL)) {
		wfpb_records_free(out);
		return WFPB_E_NOMEM;
	}
	if (qr->blob.len)
		memcpy(out->blob, qr->blob.data, qr->blob.len);
	if (qr->context.len)
		memcpy(out->context, qr->context.data, qr->context.len);
	out->blob_len = qr->blob.len;
	out->context_len = qr->context.len;
	out->records_error = qr->records_error;
	out->context_error = qr->context_error;
	return 0;
}

int
wfpb_submit_query_records(struct wfpb_client *c, wfpb_socket_t sock, int lifetime, struct wfpb_records *out,
    void *user, uint64_t *request_id)
{
	Wfpbroker__V1__Request			rq = WFPBROKER__V1__REQUEST__INIT;
	Wfpbroker__V1__QueryRecordsRequest	q = WFPBROKER__V1__QUERY_RECORDS_REQUEST__INIT;
	Wfpbroker__V1__SocketTransfer		x;
	intptr_t				send_sock;

	if (!sized_ok(out, sizeof(*out)))
		return fail(c, WFPB_E_INVAL, "struct wfpb_records without its size: use WFPB_RECORDS_INIT");
	sized_reset(out, sizeof(*out));
	if (lifetime_pb(lifetime) < 0)
		return fail(c, WFPB_E_INVAL, "query_records: unknown lifetime %d", lifetime);
	send_sock = socket_to_pb(&x, sock);
	q.socket = &x;
	q.lifetime = (Wfpbroker__V1__Lifetime)lifetime_pb(lifetime);
	rq.op_case = WFPBROKER__V1__REQUEST__OP_QUERY_RECORDS;
	rq.query_records = &q;
	return submit(c, &rq, WFPBROKER__V1__RESPONSE__RESULT_QUERY_RECORDS, decode_query, out, NULL, user, send_sock,
	    request_id);
}

int
wfpb_query_records(struct wfpb_client *c, wfpb_socket_t sock, int lifetime, struct wfpb_records *out)
{
	uint64_t	id = 0;
	int		rc;

	if ((rc = wfpb_submit_query_records(c, sock, lifetime, out, NULL, &id)) != 0)
		return rc;
	return wait_for(c, id, c->timeout_ms);
}

void
wfpb_records_free(struct wfpb_records *r)
{
	free(r->blob);
	free(r->context);
	r->blob = r->context = NULL;
	if (sized_ok(r, sizeof(*r)))
		sized_reset(r, sizeof(*r));
}

/* The socket of a Prepare: decoded when its answer arrives, as every answer that carries one, in arrival order. */
static int
decode_prepare(struct wfpb_client *c, const Wfpbroker__V1__Response *r, struct slot *sl)
{
	return take_socket(c, r->prepare->socket, 0, sl->out);
}

int
wfpb_prepare(struct wfpb_client *c, const uint8_t *handle, const uint8_t *blob, size_t blob_len, int family,
    wfpb_socket_t *sock)
{
	return wfpb_prepare_at(c, handle, blob, blob_len, family, NULL, sock);
}

int
wfpb_submit_prepare(struct wfpb_client *c, const uint8_t *handle, const uint8_t *blob, size_t blob_len, int family,
    const struct wfpb_addr *local, wfpb_socket_t *sock, void *user, uint64_t *request_id)
{
	Wfpbroker__V1__Request		rq = WFPBROKER__V1__REQUEST__INIT;
	Wfpbroker__V1__PrepareRequest	pr = WFPBROKER__V1__PREPARE_REQUEST__INIT;
	Wfpbroker__V1__RecordSource	src;
	Wfpbroker__V1__StashHandle	h;
	Wfpbroker__V1__Address		la;

	*sock = WFPB_SOCKET_NONE;
	records_to_pb(handle, blob, blob_len, &src, &h);
	if (handle != NULL || blob != NULL)
		pr.records = &src;
	if (local != NULL) {
		addr_to_pb(local, &la);
		pr.local = &la;
	}
	/* Any other value goes as it is: the broker names a bad family, and a test can send one. */
	pr.family = family == WFPB_AF_INET ? WFPBROKER__V1__ADDRESS_FAMILY__AF_INET :
	    family == WFPB_AF_INET6 ? WFPBROKER__V1__ADDRESS_FAMILY__AF_INET6 : (Wfpbroker__V1__AddressFamily)family;
	rq.op_case = WFPBROKER__V1__REQUEST__OP_PREPARE;
	rq.prepare = &pr;
	return submit(c, &rq, WFPBROKER__V1__RESPONSE__RESULT_PREPARE, decode_prepare, sock, NULL, user, -1,
	    request_id);
}

int
wfpb_prepare_at(struct wfpb_client *c, const uint8_t *handle, const uint8_t *blob, size_t blob_len, int family,
    const struct wfpb_addr *local, wfpb_socket_t *sock)
{
	uint64_t	id = 0;
	int		rc;

	if ((rc = wfpb_submit_prepare(c, handle, blob, blob_len, family, local, sock, NULL, &id)) != 0)
		return rc;
	return wait_for(c, id, c->timeout_ms);
}

int
wfpb_submit_apply_records(struct wfpb_client *c, wfpb_socket_t sock, const uint8_t *handle, const uint8_t *blob,
    size_t blob_len, void *user, uint64_t *request_id)
{
	Wfpbroker__V1__Request			rq = WFPBROKER__V1__REQUEST__INIT;
	Wfpbroker__V1__ApplyRecordsRequest	a = WFPBROKER__V1__APPLY_RECORDS_REQUEST__INIT;
	Wfpbroker__V1__SocketTransfer		x;
	Wfpbroker__V1__RecordSource		src;
	Wfpbroker__V1__StashHandle		h;
	intptr_t				send_sock;

	send_sock = socket_to_pb(&x, sock);
	records_to_pb(handle, blob, blob_len, &src, &h);
	a.socket = &x;
	a.records = &src;
	rq.op_case = WFPBROKER__V1__REQUEST__OP_APPLY_RECORDS;
	rq.apply_records = &a;
	return submit(c, &rq, WFPBROKER__V1__RESPONSE__RESULT_APPLY_RECORDS, decode_none, NULL, NULL, user, send_sock,
	    request_id);
}

int
wfpb_apply_records(struct wfpb_client *c, wfpb_socket_t sock, const uint8_t *handle, const uint8_t *blob,
    size_t blob_len)
{
	uint64_t	id = 0;
	int		rc;

	if ((rc = wfpb_submit_apply_records(c, sock, handle, blob, blob_len, NULL, &id)) != 0)
		return rc;
	return wait_for(c, id, c->timeout_ms);
}

int
wfpb_submit_release_listener(struct wfpb_client *c, uint64_t listener_id, void *user, uint64_t *request_id)
{
	Wfpbroker__V1__Request		rq = WFPBROKER__V1__REQUEST__INIT;
	Wfpbroker__V1__ReleaseRequest	rl = WFPBROKER__V1__RELEASE_REQUEST__INIT;

	rl.target_case = WFPBROKER__V1__RELEASE_REQUEST__TARGET_LISTENER_ID;
	rl.listener_id = listener_id;
	rq.op_case = WFPBROKER__V1__REQUEST__OP_RELEASE;
	rq.release = &rl;
	return submit(c, &rq, WFPBROKER__V1__RESPONSE__RESULT_RELEASE, decode_none, NULL, NULL, user, -1, request_id);
}

int
wfpb_release_listener(struct wfpb_client *c, uint64_t listener_id)
{
	uint64_t	id = 0;
	int		rc;

	if ((rc = wfpb_submit_release_listener(c, listener_id, NULL, &id)) != 0)
		return rc;
	return wait_for(c, id, c->timeout_ms);
}

int
wfpb_submit_cancel(struct wfpb_client *c, uint64_t request_id, void *user, uint64_t *cancel_id)
{
	Wfpbroker__V1__Request		rq = WFPBROKER__V1__REQUEST__INIT;
	Wfpbroker__V1__CancelRequest	cr = WFPBROKER__V1__CANCEL_REQUEST__INIT;

	cr.request_id = request_id;
	rq.op_case = WFPBROKER__V1__REQUEST__OP_CANCEL;
	rq.cancel = &cr;
	return submit(c, &rq, WFPBROKER__V1__RESPONSE__RESULT_CANCEL, decode_none, NULL, NULL, user, -1, cancel_id);
}

static int
decode_max_inflight(struct wfpb_client *c, const Wfpbroker__V1__Response *r, struct slot *sl)
{
	(void)c;
	*(uint32_t *)sl->out = r->ping->protocol_version >= 2 ? r->ping->max_inflight : 1;
	return 0;
}

int
wfpb_max_inflight(struct wfpb_client *c)
{
	Wfpbroker__V1__Request		rq = WFPBROKER__V1__REQUEST__INIT;
	Wfpbroker__V1__PingRequest	ping = WFPBROKER__V1__PING_REQUEST__INIT;
	uint64_t			id = 0;
	uint32_t			n = 0;
	int				rc;

	if (c->max_inflight > 0)
		return (int)c->max_inflight;
	ping_request(&rq, &ping, NULL, 0);
	if ((rc = submit(c, &rq, WFPBROKER__V1__RESPONSE__RESULT_PING, decode_max_inflight, &n, NULL, NULL, -1,
	    &id)) != 0 || (rc = wait_for(c, id, c->timeout_ms)) != 0)
		return rc;
	c->max_inflight = n > 0 ? n : 1;
	return (int)c->max_inflight;
}

int
wfpb_wants_write(struct wfpb_client *c)
{
	size_t len = 0;

	return !c->dead && wfpb_channel_output(&c->ch, &len) != NULL && len > 0;
}

intptr_t
wfpb_wait_handle(const struct wfpb_client *c)
{
	return wfpb__transport_wait_handle(c->t);
}

unsigned
wfpb_completions_queued(const struct wfpb_client *c)
{
	return c->n_done;
}

unsigned
wfpb_in_flight(const struct wfpb_client *c)
{
	return c->n_slots;
}

int
wfpb_complete(struct wfpb_client *c, struct wfpb_completion *out, unsigned max, uint32_t timeout_ms)
{
	struct done	*d;
	unsigned	i, n = 0;
	int		rc;

	/* The caller's stride: its elements are as large as the layout it was compiled with. */
	size_t		stride = max > 0 && out != NULL ? out->size : sizeof(*out);
	const size_t	first = offsetof(struct wfpb_completion, op);

	if (max > 0 && (stride < first || stride > 4096))
		return fail(c, WFPB_E_INVAL, "struct wfpb_completion without its size: use WFPB_COMPLETION_INIT");
	for (i = 0; i < max; i++)
		if (((struct wfpb_completion *)((char *)out + i * stride))->size != stride)
			return fail(c, WFPB_E_INVAL, "struct wfpb_completion without its size: use WFPB_COMPLETION_INIT");
	/* Requests queued by earlier submits go out as the socket takes them. */
	if (!c->dead && (rc = flush_some(c)) != 0)
		kill_session(c, rc);
	for (;;) {
		while (n < max && (d = c->done) != NULL) {
			struct wfpb_completion *e = (struct wfpb_completion *)((char *)out + n * stride);

			if ((c->done = d->next) == NULL)
				c->done_tail = &c->done;
			c->n_done--;
			sized_reset(e, stride < sizeof(*e) ? stride : sizeof(*e));
			e->request_id = d->id;
			e->user = d->user;
			e->rc = d->rc;
			e->status = d->status;
			snprintf(e->message, sizeof(e->message), "%s", d->message);
			if (stride >= sizeof(*e))
				e->op = d->op;
			n++;
			free(d);
		}
		if (n > 0 || max == 0)
			break;
		if (c->dead)
			return c->dead;
		/* Nothing ready: handle what was read, else read, waiting once for the first, then not again. */
		if (c->in_len > 0) {
			rc = drain(c);
		} else {
			rc = read_some(c, timeout_ms);
			timeout_ms = 0;
			if (rc == WFPB_E_TIMEOUT)
				break;
		}
		if (rc < 0)
			kill_session(c, rc);
	}
	/* A write that ended while this waited makes room: the next bytes go out before returning. */
	if (!c->dead && (rc = flush_some(c)) != 0)
		kill_session(c, rc);
	wfpb__transport_arm(c->t);
	if (!c->dead)
		wfpb__transport_rearm(c->t, c->n_done > 0 || c->in_len > 0);
	return (int)n;
}

int
wfpb_notify_port(struct wfpb_client *c, intptr_t port, uintptr_t key)
{
	int rc;

	if ((rc = wfpb__notify_port(&c->nt, port, key)) != 0)
		return fail(c, rc, "notify_port: %s", rc == WFPB_E_UNSUPPORTED ?
		    "Windows only: wait on wfpb_wait_handle, a descriptor" : wfpb_strerror(rc));
	if (!c->dead && (rc = wfpb__transport_watch(c->t, c->nt)) != 0)
		return fail(c, rc, "notify_port: cannot watch the session: %s", wfpb_strerror(rc));
	return 0;
}

int
wfpb_notify_socket(struct wfpb_client *c, wfpb_socket_t *out)
{
	intptr_t	rx;
	int		rc;

	if ((rc = wfpb__notify_socket(&c->nt, &rx)) != 0)
		return fail(c, rc, "notify_socket: %s", rc == WFPB_E_UNSUPPORTED ?
		    "Windows only: wait on wfpb_wait_handle, a descriptor" : wfpb_strerror(rc));
	if (!c->dead && (rc = wfpb__transport_watch(c->t, c->nt)) != 0)
		return fail(c, rc, "notify_socket: cannot watch the session: %s", wfpb_strerror(rc));
	*out = (wfpb_socket_t)rx;
	return 0;
}
