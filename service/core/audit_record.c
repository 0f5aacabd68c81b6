/* SPDX-License-Identifier: Apache-2.0 */
/* What an audit record names, and building it from a session, a request and its reply (dispatch_int.h). */
#include "dispatch_int.h"
#include "session.h"

void
wfpb__audit_addr(struct reply *rp, const struct wfpb_addr *a)
{
	if (rp->n_audit_addr < WFPB_AUDIT_ADDRS_MAX)
		rp->audit_addr[rp->n_audit_addr++] = *a;
}

/* The blob an answer's audit record names: its hash is the stash entry's when it came from one. */
void
wfpb__audit_blob(struct reply *rp, const uint8_t *blob, size_t len, const uint8_t *hash)
{
	if (hash != NULL) {
		memcpy(rp->audit_hash, hash, sizeof(rp->audit_hash));
		rp->has_audit_hash = 1;
		return;
	}
	rp->audit_blob = blob;
	rp->audit_blob_len = len;
}

static void
principal_pb(const struct wfpb_session *s, Wfpbroker__V1__Principal *p, uint8_t fp[32])
{
	const uint8_t *key = wfpb_channel_peer_key(&s->ch);

	wfpbroker__v1__principal__init(p);
	p->user = (char *)(uintptr_t)s->id.user;
	p->pid = s->id.pid;
	p->image = (char *)(uintptr_t)s->id.image;
	p->name = (char *)(uintptr_t)s->principal;
	if (key != NULL) {
		crypto_generichash(fp, 32, key, WFPB_NOISE_DHLEN, NULL, 0);
		p->key_fingerprint.data = fp;
		p->key_fingerprint.len = 32;
	}
}

/*
 * Queues the audit record of one request. For an effectful op the session's
 * output then waits for the record to be durable (the response is already
 * queued behind it). Returns the record's seq, 0 when none was queued.
 */
uint64_t
wfpb__audit_request(struct wfpb_session *s, const struct wfpb_op *op, uint64_t request_id, const struct reply *rp,
    const struct outcome *o, uint64_t started_ms, uint64_t now_ms)
{
	Wfpbroker__V1__AuditRecord	r = WFPBROKER__V1__AUDIT_RECORD__INIT;
	Wfpbroker__V1__Principal	p;
	/* The request's addresses, then the original destination. */
	Wfpbroker__V1__Address		a[WFPB_AUDIT_ADDRS_MAX + 1], *ap[WFPB_AUDIT_ADDRS_MAX];
	uint8_t				abytes[WFPB_AUDIT_ADDRS_MAX + 1][16], fp[32], bh[32];
	ProtobufCBinaryData		hash;
	unsigned			i;
	uint64_t			seq;

	if (!s->broker->audit_on)
		return 0;
	/* Requests without effect from a session no principal claims: counted into the summary. */
	if (wfpb_admit_summarised(s, op != NULL && (op->flags & DURABLE))) {
		s->broker->admit.summary.pings++;
		return 0;
	}
	/* Refused by the audit rate limit: counted too, or the refusals would be the flood. */
	if (o->code == WFPBROKER__V1__STATUS_CODE__QUOTA && rp->rate_limited)
		return 0;
	principal_pb(s, &p, fp);
	r.kind = WFPBROKER__V1__AUDIT_KIND__AUDIT_REQUEST;
	r.principal = &p;
	r.op = (char *)(uintptr_t)(op ? op->name : "unknown");
	for (i = 0; i < rp->n_audit_addr; i++) {
		wfpbroker__v1__address__init(&a[i]);
		a[i].family = rp->audit_addr[i].family == WFPB_AF_INET6 ? WFPBROKER__V1__ADDRESS_FAMILY__AF_INET6 :
		    WFPBROKER__V1__ADDRESS_FAMILY__AF_INET;
		memcpy(abytes[i], rp->audit_addr[i].addr, 16);
		a[i].addr.data = abytes[i];
		a[i].addr.len = wfpb_addr_len(rp->audit_addr[i].family);
		a[i].port = rp->audit_addr[i].port;
		ap[i] = &a[i];
	}
	r.n_addresses = rp->n_audit_addr;
	r.addresses = ap;
	if ((rp->audit_blob != NULL && rp->audit_blob_len > 0) || rp->has_audit_hash) {
		if (rp->has_audit_hash)
			memcpy(bh, rp->audit_hash, sizeof(bh));
		else
			crypto_generichash(bh, sizeof(bh), rp->audit_blob, rp->audit_blob_len, NULL, 0);
		hash.data = bh;
		hash.len = sizeof(bh);
		r.n_blob_hashes = 1;
		r.blob_hashes = &hash;
	}
	r.flow_id = rp->flow_id;
	if (rp->orig_dst.family != 0) {
		i = WFPB_AUDIT_ADDRS_MAX;
		wfpbroker__v1__address__init(&a[i]);
		a[i].family = rp->orig_dst.family == WFPB_AF_INET6 ? WFPBROKER__V1__ADDRESS_FAMILY__AF_INET6 :
		    WFPBROKER__V1__ADDRESS_FAMILY__AF_INET;
		memcpy(abytes[i], rp->orig_dst.addr, 16);
		a[i].addr.data = abytes[i];
		a[i].addr.len = wfpb_addr_len(rp->orig_dst.family);
		a[i].port = rp->orig_dst.port;
		r.original_destination = &a[i];
	}
	r.status = o->code;
	r.latency_us = now_ms > started_ms ? (uint32_t)((now_ms - started_ms) * 1000u) : 0;
	r.request_id = request_id;
	r.session_id = s->session_id;
	r.message = (char *)(uintptr_t)o->message;
	/*
	 * The last of the queue is an administrator's (WFPB_AUDIT_ADMIN_RESERVE): another
	 * request's record that would eat into it is counted as lost instead, as it would
	 * be once the queue is full, so Status still answers, and is recorded, meanwhile.
	 */
	if (wfpb_audit_has_room(&s->broker->audit, op != NULL && op->perm == WFPB_PERM_ADMIN ? 0 :
	    WFPB_AUDIT_ADMIN_RESERVE)) {
		seq = wfpb_audit_append(&s->broker->audit, &r, now_ms);
	} else {
		s->broker->audit.dropped++;
		seq = 0;
	}
	/*
	 * A refusal because the log is unwritable did nothing and cannot wait for
	 * the log: it goes out at once, its record queued for when the log returns.
	 */
	if (o->code == WFPBROKER__V1__STATUS_CODE__UNAVAILABLE &&
	    (s->broker->audit.broken || !wfpb_audit_has_room(&s->broker->audit, 0)))
		return seq;
	/* A session that is ending answers nothing: there is no answer to hold back. */
	if (s->ending)
		return seq;
	if (seq == 0 && (o->code == WFPBROKER__V1__STATUS_CODE__OK || (op != NULL && (op->flags & DURABLE)))) {
		/* A success, or any answer of an effectful op, whose record could not be queued never goes out. */
		s->audit_failed = 1;
		s->closing = 1;
		wfpb_session_end_reason(s, "an audit record of its could not be queued");
	} else if (seq != 0 && op != NULL && (op->flags & DURABLE)) {
		wfpb__session_wait_audit(s, seq);
	}
	return seq;
}

void
wfpb__audit_handover_failed(struct wfpb_session *s, uint64_t request_id, int os_err)
{
	Wfpbroker__V1__AuditRecord	r = WFPBROKER__V1__AUDIT_RECORD__INIT;
	Wfpbroker__V1__Principal	p;
	uint8_t				fp[32];
	char				msg[160];

	WFPB_CORE_OWNED(s->broker);
	if (!s->broker->audit_on)
		return;
	principal_pb(s, &p, fp);
	snprintf(msg, sizeof(msg), "handover: the socket of request %llu could not be duplicated into the client "
	    "(error %d); its answer went without it and the broker closed it", (unsigned long long)request_id, os_err);
	r.kind = WFPBROKER__V1__AUDIT_KIND__AUDIT_REQUEST;
	r.principal = &p;
	r.op = (char *)(uintptr_t)"handover";
	r.status = WFPBROKER__V1__STATUS_CODE__INTERNAL;
	r.request_id = request_id;
	r.session_id = s->session_id;
	r.message = msg;
	(void)wfpb_audit_append(&s->broker->audit, &r, s->last_ms);
}

void
wfpb__dispatch_session_event(struct wfpb_session *s, int start)
{
	Wfpbroker__V1__AuditRecord	r = WFPBROKER__V1__AUDIT_RECORD__INIT;
	Wfpbroker__V1__Principal	p;
	uint8_t				fp[32];

	WFPB_CORE_OWNED(s->broker);
	if (!s->broker->audit_on)
		return;
	/*
	 * A session no principal claims is counted, not recorded: anyone can open
	 * one. A recorded start is owed its end, whatever the policy says by then.
	 */
	if (start && wfpb_admit_summarised(s, 0)) {
		s->broker->admit.summary.sessions++;
		return;
	}
	if (!start && !s->started)
		return;
	principal_pb(s, &p, fp);
	r.kind = start ? WFPBROKER__V1__AUDIT_KIND__AUDIT_SESSION_START : WFPBROKER__V1__AUDIT_KIND__AUDIT_SESSION_END;
	r.principal = &p;
	r.session_id = s->session_id;
	if (start)
		s->started = 1;
	else
		r.message = (char *)(uintptr_t)(s->end_reason != NULL ? s->end_reason : "the client closed the session");
	(void)wfpb_audit_append(&s->broker->audit, &r, s->last_ms);
}
