/* SPDX-License-Identifier: Apache-2.0 */
/* Broker lifetime, reload, usage accounting and policy matching. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "broker.h"
#include "gpo.h"
#include "fileio.h"
#include "log.h"
#include "net.h"
#include "session.h"
#include "wfpbroker.pb-c.h"

/* Bounds on how long, and how much, unwaited-for records stay in memory. */
#define AUDIT_LAZY_MS		200u
#define AUDIT_RETRY_MIN_MS	100u	/* first pause before a broken log is tried again */
#define AUDIT_RETRY_MAX_MS	5000u	/* the longest */
#define AUDIT_LAZY_BYTES	(64u * 1024u)

void
wfpb__core_unowned(const char *where)
{
	/* Serving on with shared state touched by two threads could corrupt the stash or the audit chain. */
	wfpb_log(WFPB_LOG_ERR, "%s: reached without the core lock; stopping", where);
	abort();
}

static void
stash_freed(void *arg, const struct wfpb_stash_entry *e)
{
	struct wfpb_broker	*b = arg;
	struct wfpb_usage	*u = wfpb_broker_usage(b, e->owner);

	if (u != NULL && u->stash > 0)
		u->stash--;
}

int
wfpb_broker_init(struct wfpb_broker *b, struct wfpb_config *cfg, const char *config_path,
    const struct wfpb_noise_keypair *key, uint64_t now_ms)
{
	memset(b, 0, sizeof(*b));
	if ((b->key = sodium_malloc(sizeof(*b->key))) == NULL)
		return WFPB_E_NOMEM;
	memcpy(b->key, key, sizeof(*key));
	sodium_mprotect_readonly(b->key);
	randombytes_buf(b->handover_mark, sizeof(b->handover_mark));
	b->cfg = *cfg;
	cfg->principals = NULL;
	cfg->nprincipals = 0;
	if (config_path != NULL)
		snprintf(b->config_path, sizeof(b->config_path), "%s", config_path);
	b->start_ms = now_ms;
	b->next_listener_id = 1;
	b->workers = 1;
	wfpb_stash_init(&b->stash, stash_freed, b);
	if (wfpb_backend_open(b->cfg.backend, &b->backend) != 0) {
		wfpb_event(WFPB_EVENT_BACKEND, "backend %s is not available in this build", b->cfg.backend);
		wfpb_broker_fini(b);
		return WFPB_E_UNSUPPORTED;
	}
	b->started = 1;
	/* The PID is what a connect-redirect callout names (docs/CALLOUTS.md): every start says it. */
	wfpb_event(WFPB_EVENT_START, "wfpbrokerd %s started, pid %u, backend %s", WFPB_SERVICE_VERSION,
	    (unsigned)wfpb__process_id(), b->cfg.backend);
	return 0;
}

void
wfpb_broker_reload(struct wfpb_broker *b, struct wfpb_config *cfg)
{
	if (strcmp(cfg->endpoint, b->cfg.endpoint) != 0)
		wfpb_log(WFPB_LOG_WARN, "reload: endpoint changes take effect at the next start");
	if (strcmp(cfg->backend, b->cfg.backend) != 0)
		wfpb_log(WFPB_LOG_WARN, "reload: backend changes take effect at the next start");
	/* The endpoint and backend in use stay what the service started with. */
	memcpy(cfg->endpoint, b->cfg.endpoint, sizeof(cfg->endpoint));
	memcpy(cfg->backend, b->cfg.backend, sizeof(cfg->backend));
	wfpb_config_free(&b->cfg);
	b->cfg = *cfg;
	cfg->principals = NULL;
	cfg->nprincipals = 0;
	b->policy_gen++;
	b->n.reloads++;
}

int
wfpb_broker_reload_file(struct wfpb_broker *b, struct wfpb_ini_error *err)
{
	struct wfpb_config		cfg;
	struct wfpb_gpo			g;
	struct wfpb_setting_sources	src;
	int				rc;

	if (b->config_path[0] == '\0') {
		err->line = 0;
		snprintf(err->message, sizeof(err->message), "the broker was started without a configuration file");
		return WFPB_E_NOENT;
	}
	if ((rc = wfpb_config_load(b->config_path, &b->cfg, &cfg, err)) != 0) {
		wfpb_log(WFPB_LOG_WARN, "reload rejected, keeping the old configuration: %s:%u: %s", b->config_path,
		    err->line, err->message);
		return rc;
	}
	/* Group Policy over the file again, as at start: a reload never undoes it (Windows; none elsewhere). */
	if (wfpb__gpo_read(&g, err->message, sizeof(err->message)) != 0 ||
	    wfpb_config_apply_gpo(&cfg, &b->cfg, &g, &src, err->message, sizeof(err->message)) != 0) {
		err->line = 0;
		wfpb_log(WFPB_LOG_WARN, "reload rejected, keeping the old configuration: %s", err->message);
		wfpb_config_free(&cfg);
		return WFPB_E_CONFIG;
	}
	wfpb_broker_reload(b, &cfg);
	wfpb_broker_audit_event(b, WFPBROKER__V1__AUDIT_KIND__AUDIT_RELOAD, b->config_path, 0);
	wfpb_event(WFPB_EVENT_RELOAD, "configuration reloaded from %s: %u principals", b->config_path,
	    (unsigned)b->cfg.nprincipals);
	return 0;
}

void
wfpb_broker_tick(struct wfpb_broker *b, uint64_t now_ms)
{
	WFPB_CORE_OWNED(b);
	wfpb_stash_expire(&b->stash, now_ms);
	wfpb__admit_summary_flush(b, now_ms, 0);
	wfpb__admit_denials_flush(b, now_ms);
}

struct wfpb_usage *
wfpb_broker_usage(struct wfpb_broker *b, const char *name)
{
	struct wfpb_usage	*u, *idle = NULL;
	size_t			i;

	for (i = 0; i < b->nusage; i++) {
		if (strcmp(b->usage[i].name, name) == 0)
			return &b->usage[i];
		if (idle == NULL && b->usage[i].sessions == 0 && b->usage[i].stash == 0)
			idle = &b->usage[i];
	}
	/* Names come from the policy: reuse an idle record before growing. */
	if (idle == NULL) {
		if ((u = realloc(b->usage, (b->nusage + 1) * sizeof(*u))) == NULL)
			return NULL;
		b->usage = u;
		idle = &b->usage[b->nusage++];
	}
	memset(idle, 0, sizeof(*idle));
	snprintf(idle->name, sizeof(idle->name), "%s", name);
	return idle;
}

int
wfpb_broker_open_audit(struct wfpb_broker *b, const unsigned char sk[64], uint64_t now_ms, char *err,
    size_t errlen)
{
	char	path[WFPB_PATH_MAX + 16];
	int	rc, os_err = 0;

	if (!b->cfg.audit)
		return 0;
	if (b->cfg.audit_log[0] != '\0')
		snprintf(path, sizeof(path), "%s", b->cfg.audit_log);
	else
		snprintf(path, sizeof(path), "%s/audit.log", b->cfg.state_dir);
	if ((rc = wfpb_audit_open(&b->audit, path, sk, b->cfg.checkpoint_every, b->cfg.checkpoint_ms, now_ms,
	    err, errlen)) != 0) {
		wfpb_audit_close(&b->audit);
		return rc;
	}
	if (b->cfg.audit_group_read && wfpb_audit_share_with_group(&b->audit, &os_err) != 0) {
		snprintf(err, errlen, "cannot make %s readable by its group (error %d)", path, os_err);
		wfpb_audit_close(&b->audit);
		return WFPB_E_OS;
	}
	b->audit_on = 1;
	wfpb_broker_audit_event(b, WFPBROKER__V1__AUDIT_KIND__AUDIT_SERVICE_START, "wfpbrokerd " WFPB_SERVICE_VERSION,
	    now_ms);
	b->audit.max_bytes = b->cfg.audit_max_bytes;
	b->audit.keep_files = b->cfg.audit_keep_files;
	(void)wfpb_audit_checkpoint(&b->audit, now_ms, NULL);
	if (wfpb_audit_commit(&b->audit, now_ms) < 0) {
		snprintf(err, errlen, "%s: cannot write (error %d)", path, b->audit.os_err);
		wfpb_audit_close(&b->audit);
		b->audit_on = 0;
		return WFPB_E_OS;
	}
	wfpb_log(WFPB_LOG_INFO, "audit log %s: continuing at seq %llu", path,
	    (unsigned long long)b->audit.next_seq);
	return 0;
}

void
wfpb_broker_audit_event(struct wfpb_broker *b, int kind, const char *note, uint64_t now_ms)
{
	Wfpbroker__V1__AuditRecord r = WFPBROKER__V1__AUDIT_RECORD__INIT;

	if (!b->audit_on)
		return;
	r.kind = (Wfpbroker__V1__AuditKind)kind;
	r.message = (char *)(uintptr_t)note;
	(void)wfpb_audit_append(&b->audit, &r, now_ms);
}

int
wfpb_broker_commit_start(struct wfpb_broker *b, uint64_t now_ms)
{
	WFPB_CORE_OWNED(b);
	if (!b->audit_on || b->audit.inflight)
		return 0;
	/* A broken log is tried again after a pause that doubles up to AUDIT_RETRY_MAX_MS, not every iteration. */
	if (b->audit.broken && now_ms < b->audit_retry_at_ms)
		return 0;
	/*
	 * Records nobody waits for ride the next commit: sync only for a waiter,
	 * a retry of a broken log, or when they have been queued long enough.
	 */
	if (b->waiting == NULL && !b->audit.broken && b->audit.pending_len < AUDIT_LAZY_BYTES &&
	    now_ms - b->audit.last_commit_ms < AUDIT_LAZY_MS)
		return 0;
	b->audit.last_commit_ms = now_ms;
	return wfpb_audit_begin(&b->audit, now_ms);
}

/* A checkpoint became durable: its seq and hash go where editing the file cannot reach (log.h). */
static void
report_anchor(struct wfpb_broker *b)
{
	uint8_t		hash[WFPB_AUDIT_HASH_LEN];
	char		hex[2 * WFPB_AUDIT_HASH_LEN + 1];
	uint64_t	seq;

	if (!wfpb_audit_anchor(&b->audit, &seq, hash))
		return;
	sodium_bin2hex(hex, sizeof(hex), hash, sizeof(hash));
	wfpb_event(WFPB_EVENT_ANCHOR, "audit anchor %llu:%s", (unsigned long long)seq, hex);
}

int
wfpb_broker_commit_finish(struct wfpb_broker *b, uint64_t now_ms)
{
	struct wfpb_session	*s, *next;
	uint64_t		batch_last = b->audit.inflight_last_seq;
	int			rc;

	WFPB_CORE_OWNED(b);
	if (!b->audit.inflight)
		return 0;
	rc = wfpb_audit_end(&b->audit, now_ms);
	if (rc < 0 && b->audit.broken) {
		b->audit_retry_ms = b->audit_retry_ms == 0 ? AUDIT_RETRY_MIN_MS :
		    b->audit_retry_ms >= AUDIT_RETRY_MAX_MS / 2 ? AUDIT_RETRY_MAX_MS : 2 * b->audit_retry_ms;
		b->audit_retry_at_ms = now_ms + b->audit_retry_ms;
		if (!b->audit_reported_broken) {
			wfpb_event(WFPB_EVENT_AUDIT, "audit log cannot be written (error %d): refusing operations with "
			    "effects; retrying every %u s at most", b->audit.os_err, AUDIT_RETRY_MAX_MS / 1000u);
			b->audit_reported_broken = 1;
		}
	} else if (!b->audit.broken) {
		report_anchor(b);
		b->audit_retry_ms = 0;
		if (b->audit_reported_broken) {
			wfpb_event(WFPB_EVENT_AUDIT, "audit log written again: operations with effects are served");
			b->audit_reported_broken = 0;
		}
	}
	/*
	 * Every waiter whose record was in this batch is released, or fails with
	 * it; those whose records were queued meanwhile wait for the next batch.
	 */
	for (s = b->waiting; s != NULL; s = next) {
		next = s->wait_next;
		if (s->audit_wait > batch_last)
			continue;
		/* The session's own thread turns this into closing (wfpb_session_released). */
		if (rc < 0)
			s->wait_failed = 1;
		wfpb__session_wait_ready(s);
	}
	return b->ready != NULL;
}

int
wfpb_broker_commit(struct wfpb_broker *b, uint64_t now_ms)
{
	if (wfpb_broker_commit_start(b, now_ms) == 0)
		return 0;
	wfpb_audit_flush_inflight(&b->audit);
	return wfpb_broker_commit_finish(b, now_ms);
}

int
wfpb_broker_commit_step(struct wfpb_broker *b, int threaded, uint64_t now_ms)
{
	WFPB_CORE_OWNED(b);
	if (!threaded)
		return wfpb_broker_commit(b, now_ms) ? WFPB_COMMIT_READY : WFPB_COMMIT_IDLE;
	if (b->commit_handed || !wfpb_broker_commit_start(b, now_ms))
		return WFPB_COMMIT_IDLE;
	b->commit_handed = 1;
	return WFPB_COMMIT_HANDOFF;
}

int
wfpb_broker_commit_done(struct wfpb_broker *b, uint64_t now_ms)
{
	WFPB_CORE_OWNED(b);
	b->commit_handed = 0;
	return wfpb_broker_commit_finish(b, now_ms);
}

int
wfpb_broker_commit_busy(const struct wfpb_broker *b)
{
	return b->commit_handed;
}

struct wfpb_session *
wfpb_broker_next_ready(struct wfpb_broker *b)
{
	struct wfpb_session *s = b->ready;

	WFPB_CORE_OWNED(b);
	if (s == NULL)
		return NULL;
	b->ready = s->wait_next;
	if (b->ready)
		b->ready->wait_prev = NULL;
	s->wait_next = s->wait_prev = NULL;
	s->wait_state = WFPB_WAIT_NONE;
	return s;
}

/* 1 when s listens at want (want's port 0: any port), with its address in *bound. */
static int
listening_at(wfpb_sock s, const struct wfpb_addr *want, struct wfpb_addr *bound)
{
	struct wfpb_addr	got;
	int			os_err = 0;

	if (!wfpb__net_is_listening(s) || wfpb__net_addrs(s, NULL, &got, &os_err) != 0)
		return 0;
	(void)wfpb_addr_canonical(&got);
	if (got.family != want->family || memcmp(got.addr, want->addr, wfpb_addr_len(want->family)) != 0 ||
	    (want->port != 0 && got.port != want->port))
		return 0;
	*bound = got;
	return 1;
}

/* The socket in handed back as listener-NAME, if it still listens where l says; else WFPB_SOCK_NONE. */
static wfpb_sock
take_inherited(struct wfpb_inherited *in, const struct wfpb_listener_decl *l, struct wfpb_addr *bound)
{
	char		want[WFPB_NAME_MAX + 16];
	wfpb_sock	s;
	unsigned	i;

	snprintf(want, sizeof(want), "listener-%s", l->name);
	for (i = 0; in != NULL && i < in->n; i++) {
		if (in->sock[i] == WFPB_SOCK_NONE || strcmp(in->name[i], want) != 0)
			continue;
		if (!listening_at(in->sock[i], &l->address, bound))
			return WFPB_SOCK_NONE;	/* moved in the configuration since: opened anew */
		s = in->sock[i];
		in->sock[i] = WFPB_SOCK_NONE;
		return s;
	}
	return WFPB_SOCK_NONE;
}

int
wfpb_broker_open_listeners(struct wfpb_broker *b, struct wfpb_inherited *in, char *err, size_t errlen)
{
	const struct wfpb_listener_decl	*l;
	struct wfpb_declared		*d;
	char				text[WFPB_ADDR_STRLEN];
	int				os_err = 0;
	unsigned			i;

	for (i = 0; i < b->cfg.nlisteners; i++) {
		l = &b->cfg.listeners[i];
		d = &b->declared[i];
		memset(d, 0, sizeof(*d));
		snprintf(d->name, sizeof(d->name), "%s", l->name);
		snprintf(d->principal, sizeof(d->principal), "%s", l->principal);
		if ((d->sock = take_inherited(in, l, &d->local)) != WFPB_SOCK_NONE) {
			b->ndeclared++;
			wfpb_addr_format(&d->local, text);
			wfpb_log(WFPB_LOG_INFO, "listener %s on %s, for principal %s (kept across the restart)", d->name,
			    text, d->principal);
			continue;
		}
		if (wfpb__net_listen(&l->address, (int)l->backlog, &d->sock, &d->local, &os_err) != 0) {
			wfpb_addr_format(&l->address, text);
			snprintf(err, errlen, "[listener %s]: cannot listen on %s: %s", l->name, text,
			    wfpb__net_strerror(os_err));
			while (b->ndeclared > 0)
				wfpb__net_close(b->declared[--b->ndeclared].sock);
			return WFPB_E_OS;
		}
		b->ndeclared++;
		wfpb_addr_format(&d->local, text);
		wfpb_log(WFPB_LOG_INFO, "listener %s on %s, for principal %s", d->name, text, d->principal);
	}
	return 0;
}

const struct wfpb_declared *
wfpb_broker_declared(const struct wfpb_broker *b, const char *name)
{
	unsigned i;

	for (i = 0; i < b->ndeclared; i++)
		if (strcmp(b->declared[i].name, name) == 0)
			return &b->declared[i];
	return NULL;
}

void
wfpb_broker_fini(struct wfpb_broker *b)
{
	while (b->ndeclared > 0)
		wfpb__net_close(b->declared[--b->ndeclared].sock);
	wfpb__admit_fini(b);
	if (b->started)
		wfpb_event(WFPB_EVENT_STOP, "%u sessions open at stop", b->sessions);
	b->started = 0;
	if (b->audit_on) {
		wfpb__admit_summary_flush(b, 0, 1);
		wfpb_broker_audit_event(b, WFPBROKER__V1__AUDIT_KIND__AUDIT_SERVICE_STOP, "stopping", 0);
		(void)wfpb_audit_checkpoint(&b->audit, 0, "stopping");
		if (wfpb_audit_commit(&b->audit, 0) > 0)
			report_anchor(b);
		wfpb_audit_close(&b->audit);
		b->audit_on = 0;
	}
	wfpb_stash_fini(&b->stash);
	wfpb_backend_close(&b->backend);
	free(b->usage);
	b->usage = NULL;
	b->nusage = 0;
	wfpb_config_free(&b->cfg);
	sodium_free(b->key);	/* wipes; NULL is a no-op */
	b->key = NULL;
}
