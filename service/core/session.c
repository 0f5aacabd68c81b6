/* Session: channel events in, dispatched responses out. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dispatch.h"
#include "session.h"

static int
key_enrolled(void *arg, const uint8_t pub[WFPB_NOISE_DHLEN])
{
	const struct wfpb_broker *b = arg;

	return wfpb_config_key_enrolled(&b->cfg, pub);
}

struct wfpb_session *
wfpb_session_new(struct wfpb_broker *b, const struct wfpb_identity *id, uint64_t now_ms)
{
	struct wfpb_session *s;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->broker = b;
	s->id = *id;
	s->opened_ms = s->last_ms = now_ms;
	wfpb_channel_server_init(&s->ch, b->key, key_enrolled, b);
	b->sessions++;
	b->n.sessions_opened++;
	return s;
}

static void
uncount(struct wfpb_session *s)
{
	struct wfpb_usage *u;

	if (s->counted && (u = wfpb_broker_usage(s->broker, s->principal)) != NULL && u->sessions > 0)
		u->sessions--;
	s->counted = 0;
}

void
wfpb_session_resolve(struct wfpb_session *s)
{
	struct wfpb_broker		*b = s->broker;
	const struct wfpb_principal	*p;
	struct wfpb_usage		*u;
	uint32_t			limit;

	if (s->resolved && s->policy_gen == b->policy_gen)
		return;
	p = wfpb_policy_match(&b->cfg, &s->id, wfpb_channel_peer_key(&s->ch));
	if (!s->resolved || strcmp(s->principal, p ? p->name : "") != 0) {
		uncount(s);
		s->over_limit = 0;
		snprintf(s->principal, sizeof(s->principal), "%s", p ? p->name : "");
		if (p != NULL) {
			limit = p->max_sessions ? p->max_sessions : b->cfg.max_sessions_per_principal;
			if ((u = wfpb_broker_usage(b, p->name)) == NULL || u->sessions >= limit) {
				s->over_limit = 1;
			} else {
				u->sessions++;
				s->counted = 1;
			}
		}
	}
	s->perms = p ? p->perms : 0;
	s->max_stash = p && p->max_stash ? p->max_stash : b->cfg.stash_max_per_principal;
	s->policy_gen = b->policy_gen;
	s->resolved = 1;
}

void
wfpb_session_set_identity(struct wfpb_session *s, const struct wfpb_identity *id)
{
	s->id = *id;
}

int
wfpb_session_input(struct wfpb_session *s, const uint8_t *in, size_t len, uint64_t now_ms)
{
	const uint8_t	*msg;
	uint8_t		*resp;
	size_t		used, mlen, rlen;
	int		ev, rc;

	if (s->closing)
		return WFPB_E_STATE;
	while (len > 0) {
		ev = wfpb_channel_feed(&s->ch, in, len, &used);
		in += used;
		len -= used;
		if (ev < 0) {
			s->closing = 1;
			return ev;
		}
		if (ev == WFPB_CHANNEL_ESTABLISHED) {
			s->last_ms = now_ms;
			wfpb_session_resolve(s);
		} else if (ev == WFPB_CHANNEL_MESSAGE) {
			s->last_ms = now_ms;
			msg = wfpb_channel_message(&s->ch, &mlen);
			if ((rc = wfpb_dispatch(s, msg, mlen, &resp, &rlen, now_ms)) != 0) {
				s->closing = 1;
				return rc;
			}
			rc = wfpb_channel_send(&s->ch, resp, rlen);
			free(resp);
			if (rc != 0) {
				s->closing = 1;
				return rc;
			}
		}
	}
	return 0;
}

const uint8_t *
wfpb_session_output(const struct wfpb_session *s, size_t *len)
{
	return wfpb_channel_output(&s->ch, len);
}

void
wfpb_session_output_done(struct wfpb_session *s, size_t n)
{
	wfpb_channel_output_done(&s->ch, n);
}

uint64_t
wfpb_session_deadline(const struct wfpb_session *s)
{
	if (!wfpb_channel_established(&s->ch))
		return s->opened_ms + s->broker->cfg.handshake_timeout_ms;
	return s->last_ms + s->broker->cfg.idle_timeout_ms;
}

void
wfpb_session_expire(struct wfpb_session *s)
{
	if (!wfpb_channel_established(&s->ch) && !s->closing)
		wfpb_channel_reject(&s->ch, WFPB_REJECT_DEADLINE);
	s->closing = 1;
}

void
wfpb_session_free(struct wfpb_session *s)
{
	if (s == NULL)
		return;
	wfpb_stash_release_session(&s->broker->stash, &s->stash_list);
	uncount(s);
	wfpb_channel_free(&s->ch);
	s->broker->sessions--;
	free(s);
}
