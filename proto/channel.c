/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The secure channel state machine (docs/PROTOCOL.md §2). The responder
 * checks the preamble byte by byte as it arrives, caps handshake messages at
 * WFPB_HANDSHAKE_MSG_MAX, and never decrypts into a buffer it did not size
 * from an already checked length.
 */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "channel.h"

enum {
	ST_PREAMBLE,	/* responder: waiting for the 8-byte preamble */
	ST_HANDSHAKE,	/* waiting for the peer's handshake message */
	ST_TRANSPORT,
	ST_DEAD,
};

/* Output buffers above this size are released once drained. */
#define OUT_KEEP	4096u

static int
out_reserve(struct wfpb_channel *ch, size_t n)
{
	uint8_t	*p;
	size_t	cap;

	if (ch->out_off > 0 && ch->out_off == ch->out_len)
		ch->out_off = ch->out_len = 0;
	if (ch->out_cap - ch->out_len >= n)
		return 0;
	if (ch->out_off > 0) {
		memmove(ch->out, ch->out + ch->out_off, ch->out_len - ch->out_off);
		ch->out_len -= ch->out_off;
		ch->out_off = 0;
		if (ch->out_cap - ch->out_len >= n)
			return 0;
	}
	cap = ch->out_cap ? ch->out_cap : 256;
	while (cap - ch->out_len < n)
		cap *= 2;
	if ((p = realloc(ch->out, cap)) == NULL)
		return WFPB_E_NOMEM;
	ch->out = p;
	ch->out_cap = cap;
	return 0;
}

static int
die(struct wfpb_channel *ch, int rc)
{
	ch->state = ST_DEAD;
	wfpb_noise_handshake_wipe(&ch->hs);
	wfpb_noise_cipher_wipe(&ch->tx);
	wfpb_noise_cipher_wipe(&ch->rx);
	return rc;
}

static int
finish_handshake(struct wfpb_channel *ch)
{
	const uint8_t	*rs = wfpb_noise_handshake_remote_static(&ch->hs);
	int		rc;

	if (rs != NULL) {
		memcpy(ch->peer_static, rs, WFPB_NOISE_DHLEN);
		ch->has_peer_static = 1;
	}
	if ((rc = wfpb_noise_handshake_split(&ch->hs, &ch->tx, &ch->rx, ch->handshake_hash)) != 0)
		return die(ch, rc);
	ch->state = ST_TRANSPORT;
	return WFPB_CHANNEL_ESTABLISHED;
}

int
wfpb_channel_client_start(struct wfpb_channel *ch, const uint8_t server_pub[WFPB_NOISE_DHLEN],
    const struct wfpb_noise_keypair *client)
{
	return wfpb_channel_client_start_fixed(ch, WFPB_PROTOCOL_VERSION, server_pub, client, NULL);
}

int
wfpb_channel_client_start_version(struct wfpb_channel *ch, uint16_t version,
    const uint8_t server_pub[WFPB_NOISE_DHLEN], const struct wfpb_noise_keypair *client)
{
	return wfpb_channel_client_start_fixed(ch, version, server_pub, client, NULL);
}

unsigned
wfpb_channel_version(const struct wfpb_channel *ch)
{
	return ch->version;
}

void
wfpb_channel_server_fix_ephemeral(struct wfpb_channel *ch, const uint8_t e_priv[WFPB_NOISE_DHLEN])
{
	memcpy(ch->fixed_e, e_priv, WFPB_NOISE_DHLEN);
	ch->has_fixed_e = 1;
}

int
wfpb_channel_client_start_fixed(struct wfpb_channel *ch, uint16_t version,
    const uint8_t server_pub[WFPB_NOISE_DHLEN], const struct wfpb_noise_keypair *client, const uint8_t *e_priv)
{
	uint8_t	msg[WFPB_HANDSHAKE_MSG_MAX];
	size_t	len;
	int	rc;

	memset(ch, 0, sizeof(*ch));
	if (version < WFPB_PROTOCOL_VERSION_MIN || version > WFPB_PROTOCOL_VERSION)
		return WFPB_E_VERSION;
	ch->initiator = 1;
	ch->version = version;
	ch->pattern = client != NULL ? WFPB_PATTERN_IK : WFPB_PATTERN_NK;
	wfpb_frame_decoder_init(&ch->dec, WFPB_FRAME_MAX);
	wfpb_preamble_encode(ch->preamble, version, ch->pattern);
	ch->preamble_have = WFPB_PREAMBLE_LEN;
	if ((rc = wfpb_noise_handshake_init(&ch->hs, ch->pattern, 1, ch->preamble, WFPB_PREAMBLE_LEN, client,
	    server_pub)) != 0)
		return die(ch, rc);
	if (e_priv != NULL)
		wfpb_noise_handshake_set_ephemeral(&ch->hs, e_priv);
	if ((rc = wfpb_noise_handshake_write(&ch->hs, NULL, 0, msg, sizeof(msg), &len)) != 0)
		return die(ch, rc);
	if ((rc = out_reserve(ch, WFPB_PREAMBLE_LEN + WFPB_FRAME_HDR + len)) != 0)
		return die(ch, rc);
	memcpy(ch->out + ch->out_len, ch->preamble, WFPB_PREAMBLE_LEN);
	wfpb_frame_header(ch->out + ch->out_len + WFPB_PREAMBLE_LEN, len);
	memcpy(ch->out + ch->out_len + WFPB_PREAMBLE_LEN + WFPB_FRAME_HDR, msg, len);
	ch->out_len += WFPB_PREAMBLE_LEN + WFPB_FRAME_HDR + len;
	ch->state = ST_HANDSHAKE;
	return 0;
}

void
wfpb_channel_server_init(struct wfpb_channel *ch, const struct wfpb_noise_keypair *server_key,
    wfpb_key_check_fn key_check, void *key_check_arg)
{
	memset(ch, 0, sizeof(*ch));
	ch->server_key = server_key;
	ch->key_check = key_check;
	ch->key_check_arg = key_check_arg;
	ch->state = ST_PREAMBLE;
	/* Until the handshake is done, no frame may exceed a handshake message. */
	wfpb_frame_decoder_init(&ch->dec, WFPB_HANDSHAKE_MSG_MAX);
}

static int
queue_frame(struct wfpb_channel *ch, const uint8_t *body, size_t len)
{
	int rc;

	if ((rc = out_reserve(ch, WFPB_FRAME_HDR + len)) != 0)
		return rc;
	wfpb_frame_header(ch->out + ch->out_len, len);
	memcpy(ch->out + ch->out_len + WFPB_FRAME_HDR, body, len);
	ch->out_len += WFPB_FRAME_HDR + len;
	return 0;
}

const char *
wfpb_reject_str(int reason)
{
	switch (reason) {
	case WFPB_REJECT_BAD_MAGIC: return "not a wfpbroker preamble";
	case WFPB_REJECT_VERSION: return "unsupported protocol version";
	case WFPB_REJECT_PATTERN: return "unsupported handshake pattern";
	case WFPB_REJECT_HANDSHAKE: return "handshake failed";
	case WFPB_REJECT_KEY: return "client key not enrolled";
	case WFPB_REJECT_BUSY: return "too many sessions";
	case WFPB_REJECT_DEADLINE: return "handshake deadline passed";
	}
	return "unknown reason";
}

void
wfpb_channel_reject(struct wfpb_channel *ch, enum wfpb_reject reason)
{
	uint8_t		notice[WFPB_REJECT_MAX];
	const char	*text = wfpb_reject_str(reason);
	size_t		n = strlen(text);

	if (n > sizeof(notice) - 1)
		n = sizeof(notice) - 1;
	notice[0] = (uint8_t)reason;
	memcpy(notice + 1, text, n);
	/* Best effort: a notice that cannot be queued is simply not sent. */
	(void)queue_frame(ch, notice, n + 1);
	(void)die(ch, 0);
}

static int
reject_for(int rc)
{
	switch (rc) {
	case WFPB_E_BAD_MAGIC: return WFPB_REJECT_BAD_MAGIC;
	case WFPB_E_VERSION: return WFPB_REJECT_VERSION;
	case WFPB_E_PATTERN: return WFPB_REJECT_PATTERN;
	case WFPB_E_PEER_KEY: return WFPB_REJECT_KEY;
	}
	return WFPB_REJECT_HANDSHAKE;
}

/* Responder: message 1 arrived in a complete frame. */
static int
server_handshake(struct wfpb_channel *ch, const uint8_t *frame, size_t len)
{
	uint8_t		payload[WFPB_HANDSHAKE_MSG_MAX], reply[WFPB_HANDSHAKE_MSG_MAX];
	size_t		plen, rlen;
	const uint8_t	*rs;
	int		rc;

	if ((rc = wfpb_noise_handshake_read(&ch->hs, frame, len, payload, sizeof(payload), &plen)) != 0)
		return rc;
	if (ch->pattern == WFPB_PATTERN_IK) {
		rs = wfpb_noise_handshake_remote_static(&ch->hs);
		if (rs == NULL || ch->key_check == NULL || !ch->key_check(ch->key_check_arg, rs))
			return WFPB_E_PEER_KEY;
	}
	if ((rc = wfpb_noise_handshake_write(&ch->hs, NULL, 0, reply, sizeof(reply), &rlen)) != 0)
		return rc;
	if ((rc = queue_frame(ch, reply, rlen)) != 0)
		return rc;
	/* Transport frames may now use the whole frame range. */
	ch->dec.max = WFPB_FRAME_MAX;
	return finish_handshake(ch);
}

/* Initiator: message 2 (or a reject notice) arrived. */
static int
client_handshake(struct wfpb_channel *ch, const uint8_t *frame, size_t len)
{
	uint8_t	payload[WFPB_HANDSHAKE_MSG_MAX];
	size_t	plen;
	int	rc;

	if (len <= WFPB_REJECT_MAX) {
		ch->reject = frame[0];
		return WFPB_E_REJECTED;
	}
	if (len > WFPB_HANDSHAKE_MSG_MAX)
		return WFPB_E_HANDSHAKE;
	if ((rc = wfpb_noise_handshake_read(&ch->hs, frame, len, payload, sizeof(payload), &plen)) != 0)
		return rc;
	return finish_handshake(ch);
}

int
wfpb_channel_feed(struct wfpb_channel *ch, const uint8_t *in, size_t len, size_t *consumed)
{
	struct wfpb_preamble	p;
	const uint8_t		*frame;
	size_t			used = 0, n, flen, plen;
	int			rc;

	*consumed = 0;
	if (ch->msg != NULL) {
		ch->msg = NULL;
		ch->msg_len = 0;
		wfpb_frame_decoder_next(&ch->dec);
	}
	if (ch->state == ST_DEAD)
		return WFPB_E_STATE;

	if (ch->state == ST_PREAMBLE) {
		while (ch->preamble_have < WFPB_PREAMBLE_LEN && used < len) {
			ch->preamble[ch->preamble_have++] = in[used++];
			/* Refuse a wrong magic at its first wrong byte. */
			if (ch->preamble_have <= 4 && ch->preamble[ch->preamble_have - 1] !=
			    (uint8_t)"WFPB"[ch->preamble_have - 1]) {
				*consumed = used;
				wfpb_channel_reject(ch, WFPB_REJECT_BAD_MAGIC);
				return WFPB_E_BAD_MAGIC;
			}
		}
		*consumed = used;
		if (ch->preamble_have < WFPB_PREAMBLE_LEN)
			return WFPB_CHANNEL_MORE;
		if ((rc = wfpb_preamble_decode(ch->preamble, &p)) != 0) {
			wfpb_channel_reject(ch, reject_for(rc));
			return rc;
		}
		ch->pattern = p.pattern;
		ch->version = p.version;
		if ((rc = wfpb_noise_handshake_init(&ch->hs, p.pattern, 0, ch->preamble, WFPB_PREAMBLE_LEN,
		    ch->server_key, NULL)) != 0) {
			wfpb_channel_reject(ch, WFPB_REJECT_HANDSHAKE);
			return rc;
		}
		if (ch->has_fixed_e) {
			wfpb_noise_handshake_set_ephemeral(&ch->hs, ch->fixed_e);
			sodium_memzero(ch->fixed_e, sizeof(ch->fixed_e));
		}
		ch->state = ST_HANDSHAKE;
	}

	rc = wfpb_frame_decoder_feed(&ch->dec, in + used, len - used, &n);
	used += n;
	*consumed = used;
	if (rc < 0) {
		if (!ch->initiator && ch->state == ST_HANDSHAKE)
			wfpb_channel_reject(ch, WFPB_REJECT_HANDSHAKE);
		return die(ch, rc);
	}
	if (rc == 0)
		return WFPB_CHANNEL_MORE;
	frame = wfpb_frame_decoder_frame(&ch->dec, &flen);

	if (ch->state == ST_HANDSHAKE) {
		rc = ch->initiator ? client_handshake(ch, frame, flen) : server_handshake(ch, frame, flen);
		wfpb_frame_decoder_next(&ch->dec);
		if (rc < 0) {
			if (!ch->initiator)
				wfpb_channel_reject(ch, reject_for(rc));
			return die(ch, rc);
		}
		return rc;
	}

	/* Transport: decrypt in place; the frame buffer becomes the message. */
	if ((rc = wfpb_noise_cipher_decrypt(&ch->rx, NULL, 0, frame, flen, ch->dec.buf, &plen)) != 0) {
		wfpb_frame_decoder_next(&ch->dec);
		return die(ch, rc);
	}
	ch->msg = ch->dec.buf;
	ch->msg_len = plen;
	return WFPB_CHANNEL_MESSAGE;
}

const uint8_t *
wfpb_channel_message(const struct wfpb_channel *ch, size_t *len)
{
	*len = ch->msg_len;
	return ch->msg;
}

int
wfpb_channel_send(struct wfpb_channel *ch, const uint8_t *msg, size_t len)
{
	size_t	clen;
	int	rc;

	if (ch->state != ST_TRANSPORT)
		return WFPB_E_STATE;
	if (len > WFPB_CHANNEL_MSG_MAX)
		return WFPB_E_INVAL;
	if ((rc = out_reserve(ch, WFPB_FRAME_HDR + len + WFPB_NOISE_TAGLEN)) != 0)
		return rc;
	if ((rc = wfpb_noise_cipher_encrypt(&ch->tx, NULL, 0, msg, len, ch->out + ch->out_len + WFPB_FRAME_HDR,
	    &clen)) != 0)
		return die(ch, rc);
	wfpb_frame_header(ch->out + ch->out_len, clen);
	ch->out_len += WFPB_FRAME_HDR + clen;
	return 0;
}

const uint8_t *
wfpb_channel_output(const struct wfpb_channel *ch, size_t *len)
{
	*len = ch->out_len - ch->out_off;
	return *len ? ch->out + ch->out_off : NULL;
}

void
wfpb_channel_output_done(struct wfpb_channel *ch, size_t n)
{
	ch->out_off += n;
	if (ch->out_off < ch->out_len)
		return;
	ch->out_off = ch->out_len = 0;
	if (ch->out_cap > OUT_KEEP) {
		free(ch->out);
		ch->out = NULL;
		ch->out_cap = 0;
	}
}

int
wfpb_channel_established(const struct wfpb_channel *ch)
{
	return ch->state == ST_TRANSPORT;
}

int
wfpb_channel_partial(const struct wfpb_channel *ch)
{
	return ch->state == ST_HANDSHAKE || (ch->state == ST_PREAMBLE && ch->preamble_have > 0) ||
	    wfpb_frame_decoder_partial(&ch->dec);
}

const uint8_t *
wfpb_channel_peer_key(const struct wfpb_channel *ch)
{
	return ch->has_peer_static ? ch->peer_static : NULL;
}

void
wfpb_channel_free(struct wfpb_channel *ch)
{
	(void)die(ch, 0);
	wfpb_frame_decoder_reset(&ch->dec);
	free(ch->out);
	ch->out = NULL;
	ch->out_off = ch->out_len = ch->out_cap = 0;
	ch->msg = NULL;
}
