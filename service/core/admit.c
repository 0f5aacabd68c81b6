/* SPDX-License-Identifier: Apache-2.0 */
/* Admission and budgets (admit.h): the per-identity session table and the limits both servers apply. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admit.h"
#include "log.h"
#include "session.h"
#include "wfpbroker.pb-c.h"

/* "" stands for an identity the kernel would not tell: such sessions share one slot. */
static const char *
user_key(const struct wfpb_identity *id)
{
	return id->known ? id->user : "";
}

static size_t
bucket_of(const char *user)
{
	uint32_t	h = 2166136261u;	/* FNV-1a */

	while (*user != '\0')
		h = (h ^ (uint8_t)*user++) * 16777619u;
	return h % WFPB_USER_BUCKETS;
}

static struct wfpb_user_slot *
find_slot(const struct wfpb_admit *a, const char *user)
{
	struct wfpb_user_slot *u;

	for (u = a->buckets[bucket_of(user)]; u != NULL; u = u->next)
		if (strcmp(u->user, user) == 0)
			return u;
	return NULL;
}

uint32_t
wfpb_admit_user_sessions(const struct wfpb_broker *b, const char *user)
{
	const struct wfpb_user_slot *u = find_slot(&b->admit, user);

	return u != NULL ? u->sessions : 0;
}

int
wfpb_admit_session(struct wfpb_broker *b, const struct wfpb_identity *id)
{
	WFPB_CORE_OWNED(b);
	if (b->sessions >= b->cfg.max_sessions) {
		b->n.sessions_rejected++;
		return WFPB_E_LIMIT;
	}
	if (id != NULL && id->known && wfpb_admit_user_sessions(b, user_key(id)) >= b->cfg.max_sessions_per_user) {
		b->n.sessions_rejected++;
		b->admit.rejected_user++;
		return WFPB_E_LIMIT;
	}
	return 0;
}

int
wfpb__admit_user_take(struct wfpb_broker *b, const struct wfpb_identity *id, struct wfpb_user_slot **slot)
{
	struct wfpb_user_slot	*u;
	const char		*key = user_key(id);
	size_t			at;

	*slot = NULL;
	if (!id->known)
		return 0;
	if ((u = find_slot(&b->admit, key)) == NULL) {
		if ((u = calloc(1, sizeof(*u))) == NULL)
			return WFPB_E_NOMEM;
		/* Both are WFPB_SID_MAX bytes: the identity's string always fits. */
		memcpy(u->user, key, strnlen(key, sizeof(u->user) - 1));
		at = bucket_of(u->user);
		u->next = b->admit.buckets[at];
		b->admit.buckets[at] = u;
	}
	if (u->sessions >= b->cfg.max_sessions_per_user) {
		b->n.sessions_rejected++;
		b->admit.rejected_user++;
		if (u->sessions == 0)
			wfpb__admit_user_drop(b, &u);
		return WFPB_E_LIMIT;
	}
	u->sessions++;
	*slot = u;
	return 0;
}

void
wfpb__admit_user_drop(struct wfpb_broker *b, struct wfpb_user_slot **slot)
{
	struct wfpb_user_slot *u = *slot, **link;

	*slot = NULL;
	if (u == NULL)
		return;
	if (u->sessions > 0)
		u->sessions--;
	if (u->sessions > 0)
		return;
	/* The table holds only identities with sessions: it cannot grow past max_sessions. */
	for (link = &b->admit.buckets[bucket_of(u->user)]; *link != NULL; link = &(*link)->next) {
		if (*link == u) {
			*link = u->next;
			free(u);
			return;
		}
	}
}

int
wfpb_admit_output_over(const struct wfpb_session *s)
{
	size_t len = 0;

	(void)wfpb_channel_output(&s->ch, &len);
	return len > s->output_max;	/* the policy's budget, cached by the session under the core lock */
}

uint32_t
wfpb_admit_idle_ms(const struct wfpb_session *s)
{
	const struct wfpb_config *c = &s->broker->cfg;

	if (s->resolved && s->principal[0] == '\0' && c->unmatched_timeout_ms < c->idle_timeout_ms)
		return c->unmatched_timeout_ms;
	return c->idle_timeout_ms;
}

int
wfpb__admit_listener_take(struct wfpb_broker *b, const char *principal, char *owner)
{
	struct wfpb_usage *u = wfpb_broker_usage(b, principal);

	if (u == NULL || u->listeners >= b->cfg.max_listeners_per_principal)
		return WFPB_E_LIMIT;
	u->listeners++;
	snprintf(owner, WFPB_NAME_MAX, "%s", principal);
	return 0;
}

void
wfpb__admit_listener_drop(struct wfpb_broker *b, const char *owner)
{
	struct wfpb_usage *u = wfpb_broker_usage(b, owner);

	if (u != NULL && u->listeners > 0)
		u->listeners--;
}

int
wfpb_admit_summarised(const struct wfpb_session *s, int effectful)
{
	return s->broker->audit_on && s->resolved && s->principal[0] == '\0' && !effectful;
}

int
wfpb_admit_audit_token(struct wfpb_session *s, uint64_t now_ms)
{
	struct wfpb_user_slot	*u = s->user_slot;
	uint64_t		rate, cap, add;

	if (!s->broker->audit_on || u == NULL)
		return 1;
	if (s->policy != NULL)
		rate = s->policy->audit_rate ? s->policy->audit_rate : WFPB_AUDIT_RATE_DEFAULT;
	else
		rate = s->broker->cfg.audit_rate_unmatched;
	cap = rate * 1000u;	/* a second's worth */
	if (u->refill_ms == 0) {
		u->tokens_milli = cap;
	} else if (now_ms > u->refill_ms) {
		add = (now_ms - u->refill_ms) * rate;	/* tokens/s * ms = thousandths */
		u->tokens_milli = u->tokens_milli + add > cap ? cap : u->tokens_milli + add;
	}
	u->refill_ms = now_ms;
	if (u->tokens_milli < 1000u) {
		s->broker->admit.summary.limited++;
		return 0;
	}
	u->tokens_milli -= 1000u;
	return 1;
}

int
wfpb__admit_event_logged(struct wfpb_broker *b, int event, uint64_t now_ms)
{
	struct wfpb_denial_log	*d = &b->admit.denial_log;
	const uint64_t		cap = WFPB_DENIAL_LOG_BURST * 1000u;

	if (d->refill_ms == 0)
		d->tokens_milli = cap;
	else if (now_ms > d->refill_ms)
		d->tokens_milli = d->tokens_milli + (now_ms - d->refill_ms) * WFPB_DENIAL_LOG_RATE > cap ? cap :
		    d->tokens_milli + (now_ms - d->refill_ms) * WFPB_DENIAL_LOG_RATE;
	d->refill_ms = now_ms;
	if (d->tokens_milli >= 1000u) {
		d->tokens_milli -= 1000u;
		return 1;
	}
	if (d->unlogged[0] == 0 && d->unlogged[1] == 0)
		d->unlogged_since_ms = now_ms;
	d->unlogged[event == WFPB_EVENT_BACKEND]++;
	return 0;
}

void
wfpb__admit_denials_flush(struct wfpb_broker *b, uint64_t now_ms)
{
	static const char * const	what[2] = { "denials", "backend refusals" };
	static const int		kind[2] = { WFPB_EVENT_DENIAL, WFPB_EVENT_BACKEND };
	struct wfpb_denial_log		*d = &b->admit.denial_log;
	unsigned			k;

	for (k = 0; k < 2; k++) {
		if (d->unlogged[k] == 0)
			continue;
		wfpb_event(kind[k], "%llu %s not logged in the last %llu ms (over %u a second); Status counts the "
		    "denials%s", (unsigned long long)d->unlogged[k], what[k],
		    (unsigned long long)(now_ms > d->unlogged_since_ms ? now_ms - d->unlogged_since_ms : 0),
		    WFPB_DENIAL_LOG_RATE, b->audit_on ? ", and the audit log has each request that was audited" : "");
		d->unlogged[k] = 0;
	}
}

void
wfpb__admit_summary_flush(struct wfpb_broker *b, uint64_t now_ms, int force)
{
	struct wfpb_summary		*m = &b->admit.summary;
	Wfpbroker__V1__AuditRecord	r = WFPBROKER__V1__AUDIT_RECORD__INIT;
	char				text[192];

	if (now_ms == 0)
		now_ms = m->last_tick_ms;
	m->last_tick_ms = now_ms;
	if (m->since_ms == 0)
		m->since_ms = now_ms;
	if (!b->audit_on || (!force && now_ms - m->since_ms < b->cfg.audit_summary_ms))
		return;
	if (m->sessions != 0 || m->pings != 0 || m->limited != 0) {
		snprintf(text, sizeof(text), "sessions without a principal: %llu, their requests without effect: %llu; "
		    "requests over the audit rate limit: %llu; in the last %llu ms", (unsigned long long)m->sessions,
		    (unsigned long long)m->pings, (unsigned long long)m->limited,
		    (unsigned long long)(now_ms > m->since_ms ? now_ms - m->since_ms : 0));
		r.kind = WFPBROKER__V1__AUDIT_KIND__AUDIT_SUMMARY;
		r.op = (char *)(uintptr_t)"summary";
		r.message = text;
		(void)wfpb_audit_append(&b->audit, &r, now_ms);
	}
	m->sessions = m->pings = m->limited = 0;
	m->since_ms = now_ms;
}

size_t
wfpb_admit_busy_notice(const struct wfpb_broker *b, uint8_t *out, size_t cap)
{
	struct wfpb_channel	ch;
	const uint8_t		*p;
	size_t			len = 0;

	wfpb_channel_server_init(&ch, b->key, NULL, NULL);
	wfpb_channel_reject(&ch, WFPB_REJECT_BUSY);
	if ((p = wfpb_channel_output(&ch, &len)) == NULL || len > cap)
		len = 0;
	else
		memcpy(out, p, len);
	wfpb_channel_free(&ch);
	return len;
}

void
wfpb__admit_fini(struct wfpb_broker *b)
{
	struct wfpb_user_slot	*u;
	size_t			i;

	for (i = 0; i < WFPB_USER_BUCKETS; i++) {
		while ((u = b->admit.buckets[i]) != NULL) {
			b->admit.buckets[i] = u->next;
			free(u);
		}
	}
}
