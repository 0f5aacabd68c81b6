/*
 * libwfpb: handshake and request/response over the secure channel. Responses
 * come from the broker we pinned, but are still checked: request_id must
 * match and the result must be the op we asked for.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "channel.h"
#include "keyfile.h"
#include "transport.h"
#include "wfpb.h"
#include "wfpbroker.pb-c.h"

#define DEFAULT_TIMEOUT_MS	10000u
#define READ_CHUNK		16384u

struct wfpb_client {
	struct wfpb_transport	*t;
	struct wfpb_channel	ch;
	uint32_t		timeout_ms;
	uint64_t		next_id;
	int			status;
	char			err[256];
};

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

/*
 * Reads until the channel reports an event. Input is fed a chunk at a time;
 * the broker sends one response per request, so no bytes past the event are
 * pending in a well-behaved session, and any that are stay in `pending`.
 */
static int
wait_event(struct wfpb_client *c, uint8_t *buf, size_t *pending_off, size_t *pending_len)
{
	size_t	got, used;
	int	ev, rc;

	for (;;) {
		while (*pending_len > 0) {
			ev = wfpb_channel_feed(&c->ch, buf + *pending_off, *pending_len, &used);
			*pending_off += used;
			*pending_len -= used;
			if (ev != WFPB_CHANNEL_MORE)
				return ev;
		}
		*pending_off = 0;
		rc = wfpb__transport_read(c->t, buf, READ_CHUNK, &got, c->timeout_ms);
		if (rc == WFPB_E_CLOSED)
			return fail(c, rc, "the broker closed the session");
		if (rc != 0)
			return fail(c, rc, "reading from the broker: %s", wfpb_strerror(rc));
		*pending_len = got;
	}
}

int
wfpb_open(const struct wfpb_open_opts *opts, struct wfpb_client **out, char *errbuf, size_t errlen)
{
	struct wfpb_noise_keypair	ckey, *ckp = NULL;
	struct wfpb_client		*c;
	uint8_t				server_key[WFPB_NOISE_DHLEN], *buf = NULL;
	const char			*endpoint, *key_path;
	size_t				off = 0, pending = 0;
	int				rc;

	*out = NULL;
	if (sodium_init() < 0)
		return WFPB_E_NOMEM;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return WFPB_E_NOMEM;
	c->timeout_ms = opts->timeout_ms ? opts->timeout_ms : DEFAULT_TIMEOUT_MS;
	c->next_id = 1;
	endpoint = opts->endpoint ? opts->endpoint : wfpb__default_endpoint();
	key_path = opts->server_key_path ? opts->server_key_path : wfpb__default_server_key();

	if (opts->server_key != NULL) {
		memcpy(server_key, opts->server_key, sizeof(server_key));
	} else if ((rc = wfpb_keyfile_load_public(key_path, server_key)) != 0) {
		fail(c, rc, "cannot read the broker's public key %s: %s", key_path, wfpb_strerror(rc));
		goto fail;
	}
	if (opts->client_key_path != NULL) {
		if ((rc = wfpb_keyfile_load_keypair(opts->client_key_path, &ckey)) != 0) {
			fail(c, rc, "cannot read the client key %s: %s", opts->client_key_path, wfpb_strerror(rc));
			goto fail;
		}
		ckp = &ckey;
	}
	if ((rc = wfpb__transport_connect(endpoint, c->timeout_ms, &c->t, c->err, sizeof(c->err))) != 0)
		goto fail;
	rc = wfpb_channel_client_start(&c->ch, server_key, ckp);
	if (ckp != NULL)
		sodium_memzero(&ckey, sizeof(ckey));
	if (rc != 0) {
		fail(c, rc, "handshake: %s", wfpb_strerror(rc));
		goto fail;
	}
	if ((rc = flush(c)) != 0)
		goto fail;
	if ((buf = malloc(READ_CHUNK)) == NULL) {
		rc = WFPB_E_NOMEM;
		goto fail;
	}
	rc = wait_event(c, buf, &off, &pending);
	if (rc == WFPB_E_REJECTED && c->ch.reject == WFPB_REJECT_HANDSHAKE && opts->server_key == NULL) {
		fail(c, rc, "the broker could not complete the handshake: is %s this broker's key?", key_path);
		goto fail;
	}
	if (rc == WFPB_E_REJECTED) {
		fail(c, rc, "the broker refused the session: %s", wfpb_reject_str(c->ch.reject));
		goto fail;
	}
	if (rc == WFPB_E_DECRYPT) {
		fail(c, rc, "handshake failed: the endpoint %s does not hold the pinned broker key", endpoint);
		goto fail;
	}
	if (rc == WFPB_E_CLOSED && opts->client_key_path != NULL) {
		fail(c, rc, "the broker closed the session during the handshake");
		goto fail;
	}
	if (rc < 0) {
		if (c->err[0] == '\0')
			fail(c, rc, "handshake: %s", wfpb_strerror(rc));
		goto fail;
	}
	if (rc != WFPB_CHANNEL_ESTABLISHED || pending != 0) {
		rc = fail(c, WFPB_E_PROTOCOL, "handshake: unexpected data from the broker");
		goto fail;
	}
	free(buf);
	c->err[0] = '\0';
	*out = c;
	return 0;
fail:
	if (errbuf != NULL && errlen > 0)
		snprintf(errbuf, errlen, "%s", c->err[0] ? c->err : wfpb_strerror(rc));
	free(buf);
	wfpb_close(c);
	return rc;
}

void
wfpb_close(struct wfpb_client *c)
{
	if (c == NULL)
		return;
	wfpb__transport_close(c->t);
	wfpb_channel_free(&c->ch);
	sodium_memzero(c, sizeof(*c));
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
 * wfpbroker__v1__response__free_unpacked.
 */
static int
call(struct wfpb_client *c, Wfpbroker__V1__Request *rq, Wfpbroker__V1__Response__ResultCase want,
    Wfpbroker__V1__Response **resp)
{
	Wfpbroker__V1__Response	*r;
	const uint8_t		*msg;
	uint8_t			*buf;
	size_t			len, mlen, off = 0, pending = 0;
	int			rc;

	*resp = NULL;
	c->status = 0;
	c->err[0] = '\0';
	rq->request_id = c->next_id++;
	len = wfpbroker__v1__request__get_packed_size(rq);
	if (len > WFPB_CHANNEL_MSG_MAX)
		return fail(c, WFPB_E_INVAL, "request too large (%zu bytes)", len);
	if ((buf = malloc(len > READ_CHUNK ? len : READ_CHUNK)) == NULL)
		return WFPB_E_NOMEM;
	wfpbroker__v1__request__pack(rq, buf);
	rc = wfpb_channel_send(&c->ch, buf, len);
	if (rc == 0)
		rc = flush(c);
	if (rc == 0) {
		rc = wait_event(c, buf, &off, &pending);
		if (rc >= 0 && (rc != WFPB_CHANNEL_MESSAGE || pending != 0))
			rc = fail(c, WFPB_E_PROTOCOL, "unexpected data from the broker");
		else if (rc == WFPB_E_DECRYPT)
			fail(c, rc, "a response failed authentication (tampered, replayed or reordered)");
		else if (rc < 0 && c->err[0] == '\0')
			fail(c, rc, "%s", wfpb_strerror(rc));
	}
	if (rc < 0) {
		free(buf);
		return rc;
	}
	msg = wfpb_channel_message(&c->ch, &mlen);
	r = wfpbroker__v1__response__unpack(NULL, mlen, msg);
	free(buf);
	if (r == NULL)
		return fail(c, WFPB_E_DECODE, "the broker's response did not decode");
	if (r->request_id != rq->request_id || r->status == NULL) {
		wfpbroker__v1__response__free_unpacked(r, NULL);
		return fail(c, WFPB_E_PROTOCOL, "response does not match the request");
	}
	if (r->status->code != WFPBROKER__V1__STATUS_CODE__OK) {
		c->status = r->status->code;
		fail(c, WFPB_E_STATUS, "%s: %s", wfpb_status_name(r->status->code),
		    r->status->message ? r->status->message : "error");
		wfpbroker__v1__response__free_unpacked(r, NULL);
		return WFPB_E_STATUS;
	}
	if (r->result_case != want) {
		wfpbroker__v1__response__free_unpacked(r, NULL);
		return fail(c, WFPB_E_PROTOCOL, "response carries the wrong result");
	}
	*resp = r;
	return 0;
}

int
wfpb_ping(struct wfpb_client *c, const uint8_t *payload, size_t len, uint32_t *protocol_version)
{
	Wfpbroker__V1__Request		rq = WFPBROKER__V1__REQUEST__INIT;
	Wfpbroker__V1__PingRequest	ping = WFPBROKER__V1__PING_REQUEST__INIT;
	Wfpbroker__V1__Response		*r;
	int				rc;

	ping.payload.data = (uint8_t *)(uintptr_t)payload;
	ping.payload.len = len;
	rq.op_case = WFPBROKER__V1__REQUEST__OP_PING;
	rq.ping = &ping;
	if ((rc = call(c, &rq, WFPBROKER__V1__RESPONSE__RESULT_PING, &r)) != 0)
		return rc;
	if (r->ping->payload.len != len || (len > 0 && memcmp(r->ping->payload.data, payload, len) != 0))
		rc = fail(c, WFPB_E_PROTOCOL, "ping payload came back altered");
	else if (protocol_version != NULL)
		*protocol_version = r->ping->protocol_version;
	wfpbroker__v1__response__free_unpacked(r, NULL);
	return rc;
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

int
wfpb_stash(struct wfpb_client *c, const uint8_t *blob, size_t len, int principal_lifetime,
    uint8_t handle[WFPB_HANDLE_LEN])
{
	Wfpbroker__V1__Request		rq = WFPBROKER__V1__REQUEST__INIT;
	Wfpbroker__V1__StashRequest	st = WFPBROKER__V1__STASH_REQUEST__INIT;
	Wfpbroker__V1__Response		*r;
	int				rc;

	st.blob.data = (uint8_t *)(uintptr_t)blob;
	st.blob.len = len;
	st.lifetime = principal_lifetime ? WFPBROKER__V1__LIFETIME__PRINCIPAL : WFPBROKER__V1__LIFETIME__SESSION;
	rq.op_case = WFPBROKER__V1__REQUEST__OP_STASH;
	rq.stash = &st;
	if ((rc = call(c, &rq, WFPBROKER__V1__RESPONSE__RESULT_STASH, &r)) != 0)
		return rc;
	if (r->stash->handle == NULL || r->stash->handle->id.len != WFPB_HANDLE_LEN)
		rc = fail(c, WFPB_E_PROTOCOL, "stash: the broker returned a malformed handle");
	else
		memcpy(handle, r->stash->handle->id.data, WFPB_HANDLE_LEN);
	wfpbroker__v1__response__free_unpacked(r, NULL);
	return rc;
}

int
wfpb_fetch(struct wfpb_client *c, const uint8_t handle[WFPB_HANDLE_LEN], uint8_t **blob, size_t *len)
{
	Wfpbroker__V1__Request		rq = WFPBROKER__V1__REQUEST__INIT;
	Wfpbroker__V1__FetchRequest	f = WFPBROKER__V1__FETCH_REQUEST__INIT;
	Wfpbroker__V1__StashHandle	h = WFPBROKER__V1__STASH_HANDLE__INIT;
	Wfpbroker__V1__Response		*r;
	int				rc;

	*blob = NULL;
	*len = 0;
	h.id.data = (uint8_t *)(uintptr_t)handle;
	h.id.len = WFPB_HANDLE_LEN;
	f.handle = &h;
	rq.op_case = WFPBROKER__V1__REQUEST__OP_FETCH;
	rq.fetch = &f;
	if ((rc = call(c, &rq, WFPBROKER__V1__RESPONSE__RESULT_FETCH, &r)) != 0)
		return rc;
	if ((*blob = malloc(r->fetch->blob.len ? r->fetch->blob.len : 1)) == NULL) {
		rc = WFPB_E_NOMEM;
	} else {
		memcpy(*blob, r->fetch->blob.data, r->fetch->blob.len);
		*len = r->fetch->blob.len;
	}
	wfpbroker__v1__response__free_unpacked(r, NULL);
	return rc;
}

int
wfpb_release(struct wfpb_client *c, const uint8_t handle[WFPB_HANDLE_LEN])
{
	Wfpbroker__V1__Request		rq = WFPBROKER__V1__REQUEST__INIT;
	Wfpbroker__V1__ReleaseRequest	rl = WFPBROKER__V1__RELEASE_REQUEST__INIT;
	Wfpbroker__V1__StashHandle	h = WFPBROKER__V1__STASH_HANDLE__INIT;
	Wfpbroker__V1__Response		*r;
	int				rc;

	h.id.data = (uint8_t *)(uintptr_t)handle;
	h.id.len = WFPB_HANDLE_LEN;
	rl.target_case = WFPBROKER__V1__RELEASE_REQUEST__TARGET_HANDLE;
	rl.handle = &h;
	rq.op_case = WFPBROKER__V1__REQUEST__OP_RELEASE;
	rq.release = &rl;
	if ((rc = call(c, &rq, WFPBROKER__V1__RESPONSE__RESULT_RELEASE, &r)) != 0)
		return rc;
	wfpbroker__v1__response__free_unpacked(r, NULL);
	return 0;
}

int
wfpb_server_status(struct wfpb_client *c, struct wfpb_status_info *out)
{
	Wfpbroker__V1__Request		rq = WFPBROKER__V1__REQUEST__INIT;
	Wfpbroker__V1__StatusRequest	st = WFPBROKER__V1__STATUS_REQUEST__INIT;
	Wfpbroker__V1__Response		*r;
	Wfpbroker__V1__StatusResponse	*s;
	int				rc;

	rq.op_case = WFPBROKER__V1__REQUEST__OP_STATUS;
	rq.status = &st;
	if ((rc = call(c, &rq, WFPBROKER__V1__RESPONSE__RESULT_STATUS_RESULT, &r)) != 0)
		return rc;
	s = r->status_result;
	memset(out, 0, sizeof(*out));
	out->sessions = s->sessions;
	out->requests = s->requests;
	out->denials = s->denials;
	out->stash_entries = s->stash_entries;
	out->stash_bytes = s->stash_bytes;
	out->listeners = s->listeners;
	out->uptime_ms = s->uptime_ms;
	out->records_applied = s->records_applied;
	snprintf(out->backend, sizeof(out->backend), "%s", s->backend ? s->backend : "");
	wfpbroker__v1__response__free_unpacked(r, NULL);
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
	wfpbroker__v1__response__free_unpacked(r, NULL);
	return 0;
}
