/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Policy with injected identities, on both targets: who matches which
 * principal, and what the dispatch table lets each one do. Under Wine every
 * process has the same SID, so this is where per-user authorisation of the
 * Windows build is proven.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "keyfile.h"
#include "session.h"
#include "wfpbroker.pb-c.h"

/* Nothing here hands sockets over. */
static wfpb_sock no_attach;

static struct wfpb_noise_keypair server_kp, agent_kp;

static const char *policy_text =
    "[service]\n"
    "max_sessions_per_principal = 2\n"
    "[principal app1]\nuid = 1001\nops = stash fetch\nmax_stash = 2\n"
    "[principal app2]\nuid = 1002\nops = stash fetch\n"
    "[principal ops-group]\ngid = 600\nops = admin\n"
    "[principal win-admin]\nsid = S-1-5-21-1-2-3-500\nops = admin stash fetch\n"
    "[principal agent]\nuid = 1005\nkey = %s\nops = stash\n"
    "[principal solo]\nuid = 1006\nops = stash\nmax_sessions = 1\n"
    "[principal win-admins]\ngroup_sid = S-1-5-32-544\nelevated = yes\nops = admin\n"
    "[principal win-users]\ngroup_sid = S-1-5-32-545\nops = stash\n";

static struct wfpb_broker	b;

static struct wfpb_identity
posix_id(int64_t uid, int64_t gid)
{
	struct wfpb_identity id = { .known = 1, .pid = 100, .uid = uid, .gid = gid };

	snprintf(id.user, sizeof(id.user), "%lld", (long long)uid);
	return id;
}

static struct wfpb_identity
win_id(const char *sid)
{
	struct wfpb_identity id = { .known = 1, .pid = 200, .uid = -1, .gid = -1 };

	snprintf(id.user, sizeof(id.user), "%s", sid);
	return id;
}

static int
setup(void **state)
{
	struct wfpb_config	base, cfg;
	struct wfpb_ini_error	err;
	char			text[2048], hex[WFPB_KEY_HEXLEN + 1];

	(void)state;
	if (sodium_init() < 0)
		return -1;
	wfpb_noise_keypair_generate(&server_kp);
	wfpb_noise_keypair_generate(&agent_kp);
	sodium_bin2hex(hex, sizeof(hex), agent_kp.pub, sizeof(agent_kp.pub));
	snprintf(text, sizeof(text), policy_text, hex);
	wfpb_config_defaults(&base, "/x", "/y");
	if (wfpb_config_parse(text, strlen(text), &base, &cfg, &err) != 0) {
		fprintf(stderr, "line %u: %s\n", err.line, err.message);
		return -1;
	}
	return wfpb_broker_init(&b, &cfg, NULL, &server_kp, 1000);
}

static int
teardown(void **state)
{
	(void)state;
	wfpb_broker_fini(&b);
	return 0;
}

static void
matching(void **state)
{
	struct wfpb_identity		id;
	const struct wfpb_principal	*p;

	(void)state;
	id = posix_id(1001, 1001);
	p = wfpb_policy_match(&b.cfg, &id, NULL);
	assert_non_null(p);
	assert_string_equal(p->name, "app1");
	/* A supplementary group matches a gid principal. */
	id = posix_id(4000, 4000);
	assert_null(wfpb_policy_match(&b.cfg, &id, NULL));
	id.groups[0] = 17;
	id.groups[1] = 600;
	id.ngroups = 2;
	p = wfpb_policy_match(&b.cfg, &id, NULL);
	assert_non_null(p);
	assert_string_equal(p->name, "ops-group");
	/* SIDs match Windows identities only, exactly. */
	id = win_id("S-1-5-21-1-2-3-500");
	p = wfpb_policy_match(&b.cfg, &id, NULL);
	assert_non_null(p);
	assert_string_equal(p->name, "win-admin");
	id = win_id("S-1-5-21-1-2-3-5000");
	assert_null(wfpb_policy_match(&b.cfg, &id, NULL));
	/* Windows groups: the token's enabled group SIDs, and its elevation where the section asks. */
	id = win_id("S-1-5-21-9-9-9-1001");
	snprintf(id.group_sids[0], sizeof(id.group_sids[0]), "S-1-5-32-544");
	id.ngroup_sids = 1;
	id.elevated = 1;
	assert_string_equal(wfpb_policy_match(&b.cfg, &id, NULL)->name, "win-admins");
	id.elevated = 0;	/* the same administrator, not elevated */
	assert_null(wfpb_policy_match(&b.cfg, &id, NULL));
	id.elevated = -1;	/* elevation unknown: never assumed */
	assert_null(wfpb_policy_match(&b.cfg, &id, NULL));
	snprintf(id.group_sids[0], sizeof(id.group_sids[0]), "s-1-5-32-545");	/* SIDs ignore case */
	assert_string_equal(wfpb_policy_match(&b.cfg, &id, NULL)->name, "win-users");
	id.ngroup_sids = 0;
	assert_null(wfpb_policy_match(&b.cfg, &id, NULL));
	/* Group SIDs and elevation are Windows matchers: a POSIX identity never meets them. */
	id = posix_id(4001, 4001);
	snprintf(id.group_sids[0], sizeof(id.group_sids[0]), "S-1-5-32-545");
	id.ngroup_sids = 1;
	id.elevated = 1;
	assert_null(wfpb_policy_match(&b.cfg, &id, NULL));
	/* uid AND key: either alone is not enough. */
	id = posix_id(1005, 1005);
	assert_null(wfpb_policy_match(&b.cfg, &id, NULL));
	assert_null(wfpb_policy_match(&b.cfg, &id, server_kp.pub));
	p = wfpb_policy_match(&b.cfg, &id, agent_kp.pub);
	assert_non_null(p);
	assert_string_equal(p->name, "agent");
	id = posix_id(1001, 1001);
	assert_string_equal(wfpb_policy_match(&b.cfg, &id, agent_kp.pub)->name, "app1");
	/* An identity the kernel could not give matches nothing, whatever the key. */
	id = posix_id(1005, 1005);
	id.known = 0;
	assert_null(wfpb_policy_match(&b.cfg, &id, agent_kp.pub));
	assert_true(wfpb_config_key_enrolled(&b.cfg, agent_kp.pub));
	assert_false(wfpb_config_key_enrolled(&b.cfg, server_kp.pub));
}

/* A session established over NK (or IK with ckey) for an injected identity. */
struct client {
	struct wfpb_session	*s;
	struct wfpb_channel	c;
	uint64_t		next_id;
};

static void
client_open(struct client *cl, struct wfpb_identity id, const struct wfpb_noise_keypair *ckey)
{
	const uint8_t	*p;
	size_t		len, used;

	cl->next_id = 1;
	cl->s = wfpb_session_new(&b, &id, 1000);
	assert_non_null(cl->s);
	assert_int_equal(wfpb_channel_client_start(&cl->c, server_kp.pub, ckey), 0);
	p = wfpb_channel_output(&cl->c, &len);
	assert_int_equal(wfpb_session_input(cl->s, p, len, 1001), 0);
	wfpb_channel_output_done(&cl->c, len);
	p = wfpb_session_output(cl->s, &len, &no_attach);
	assert_int_equal(wfpb_channel_feed(&cl->c, p, len, &used), WFPB_CHANNEL_ESTABLISHED);
	wfpb_session_output_done(cl->s, len);
}

static void
client_close(struct client *cl)
{
	wfpb_channel_free(&cl->c);
	wfpb_session_free(cl->s);
}

static Wfpbroker__V1__Response *
call(struct client *cl, Wfpbroker__V1__Request *rq)
{
	uint8_t		buf[4096];
	const uint8_t	*p, *m;
	size_t		n, len, used, mlen;

	rq->request_id = cl->next_id++;
	n = wfpbroker__v1__request__pack(rq, buf);
	assert_int_equal(wfpb_channel_send(&cl->c, buf, n), 0);
	p = wfpb_channel_output(&cl->c, &len);
	assert_int_equal(wfpb_session_input(cl->s, p, len, 2000), 0);
	wfpb_channel_output_done(&cl->c, len);
	p = wfpb_session_output(cl->s, &len, &no_attach);
	assert_int_equal(wfpb_channel_feed(&cl->c, p, len, &used), WFPB_CHANNEL_MESSAGE);
	wfpb_session_output_done(cl->s, len);
	m = wfpb_channel_message(&cl->c, &mlen);
	return wfpbroker__v1__response__unpack(NULL, mlen, m);
}

/* Stash; returns the status code and the handle in id on success. */
static int
do_stash(struct client *cl, const char *blob, uint8_t id[WFPB_STASH_ID_LEN], char *msg, size_t msglen)
{
	Wfpbroker__V1__Request		rq = WFPBROKER__V1__REQUEST__INIT;
	Wfpbroker__V1__StashRequest	st = WFPBROKER__V1__STASH_REQUEST__INIT;
	Wfpbroker__V1__Response		*r;
	int				code;

	st.blob.data = (uint8_t *)(uintptr_t)blob;
	st.blob.len = strlen(blob);
	rq.op_case = WFPBROKER__V1__REQUEST__OP_STASH;
	rq.stash = &st;
	r = call(cl, &rq);
	assert_non_null(r);
	code = r->status->code;
	if (msg != NULL)
		snprintf(msg, msglen, "%s", r->status->message);
	if (code == 0) {
		assert_int_equal(r->stash->handle->id.len, WFPB_STASH_ID_LEN);
		memcpy(id, r->stash->handle->id.data, WFPB_STASH_ID_LEN);
	}
	wfpbroker__v1__response__free_unpacked(r, NULL);
	return code;
}

static int
do_fetch(struct client *cl, const uint8_t id[WFPB_STASH_ID_LEN], const char *want)
{
	Wfpbroker__V1__Request		rq = WFPBROKER__V1__REQUEST__INIT;
	Wfpbroker__V1__FetchRequest	f = WFPBROKER__V1__FETCH_REQUEST__INIT;
	Wfpbroker__V1__StashHandle	h = WFPBROKER__V1__STASH_HANDLE__INIT;
	Wfpbroker__V1__Response		*r;
	int				code;

	h.id.data = (uint8_t *)(uintptr_t)id;
	h.id.len = WFPB_STASH_ID_LEN;
	f.handle = &h;
	rq.op_case = WFPBROKER__V1__REQUEST__OP_FETCH;
	rq.fetch = &f;
	r = call(cl, &rq);
	code = r->status->code;
	if (code == 0) {
		assert_int_equal(r->fetch->blob.len, strlen(want));
		assert_memory_equal(r->fetch->blob.data, want, strlen(want));
	}
	wfpbroker__v1__response__free_unpacked(r, NULL);
	return code;
}

static int
do_status(struct client *cl)
{
	Wfpbroker__V1__Request		rq = WFPBROKER__V1__REQUEST__INIT;
	Wfpbroker__V1__StatusRequest	st = WFPBROKER__V1__STATUS_REQUEST__INIT;
	Wfpbroker__V1__Response		*r;
	int				code;

	rq.op_case = WFPBROKER__V1__REQUEST__OP_STATUS;
	rq.status = &st;
	r = call(cl, &rq);
	code = r->status->code;
	wfpbroker__v1__response__free_unpacked(r, NULL);
	return code;
}

static void
grants_and_ownership(void **state)
{
	struct client	app1, app2, admin, nobody, unknown;
	uint8_t		id[WFPB_STASH_ID_LEN], id2[WFPB_STASH_ID_LEN];
	char		msg[256];
	struct wfpb_identity dark = posix_id(1001, 1001);

	(void)state;
	client_open(&app1, posix_id(1001, 1001), NULL);
	client_open(&app2, posix_id(1002, 1002), NULL);
	client_open(&admin, win_id("S-1-5-21-1-2-3-500"), NULL);
	client_open(&nobody, posix_id(3000, 3000), NULL);
	dark.known = 0;
	client_open(&unknown, dark, NULL);

	assert_int_equal(do_stash(&app1, "records", id, NULL, 0), 0);
	assert_int_equal(do_fetch(&app1, id, "records"), 0);
	assert_int_equal(do_fetch(&app2, id, ""), WFPBROKER__V1__STATUS_CODE__NOT_FOUND);
	assert_int_equal(do_fetch(&admin, id, ""), WFPBROKER__V1__STATUS_CODE__NOT_FOUND);
	assert_int_equal(do_status(&app1), WFPBROKER__V1__STATUS_CODE__DENIED);
	assert_int_equal(do_status(&admin), 0);
	assert_int_equal(do_stash(&nobody, "x", id2, msg, sizeof(msg)), WFPBROKER__V1__STATUS_CODE__DENIED);
	assert_non_null(strstr(msg, "no principal matches user 3000"));
	assert_int_equal(do_stash(&unknown, "x", id2, msg, sizeof(msg)), WFPBROKER__V1__STATUS_CODE__DENIED);
	assert_non_null(strstr(msg, "identity could not be read"));
	/* app1's quota is 2 entries. */
	assert_int_equal(do_stash(&app1, "two", id2, NULL, 0), 0);
	assert_int_equal(do_stash(&app1, "three", id2, msg, sizeof(msg)), WFPBROKER__V1__STATUS_CODE__QUOTA);
	assert_int_equal(do_stash(&app2, "other principal", id2, NULL, 0), 0);
	assert_int_equal(b.n.denials, 3);	/* QUOTA is not a policy denial */

	/* Session-lifetime entries go with the session: app1's quota frees up. */
	client_close(&app1);
	assert_int_equal(b.stash.count, 1);
	client_open(&app1, posix_id(1001, 1001), NULL);
	assert_int_equal(do_fetch(&app1, id, ""), WFPBROKER__V1__STATUS_CODE__NOT_FOUND);
	assert_int_equal(do_stash(&app1, "again", id2, NULL, 0), 0);

	client_close(&app1);
	client_close(&app2);
	client_close(&admin);
	client_close(&nobody);
	client_close(&unknown);
	assert_int_equal(b.sessions, 0);
	assert_int_equal(b.stash.count, 0);
}

static void
key_principal_needs_ik(void **state)
{
	struct client	nk, ik;
	uint8_t		id[WFPB_STASH_ID_LEN];

	(void)state;
	client_open(&nk, posix_id(1005, 1005), NULL);
	client_open(&ik, posix_id(1005, 1005), &agent_kp);
	assert_int_equal(do_stash(&nk, "x", id, NULL, 0), WFPBROKER__V1__STATUS_CODE__DENIED);
	assert_int_equal(do_stash(&ik, "x", id, NULL, 0), 0);
	client_close(&nk);
	client_close(&ik);
}

static void
per_principal_session_limit(void **state)
{
	struct client	a, c;
	uint8_t		id[WFPB_STASH_ID_LEN];
	char		msg[256];

	(void)state;
	client_open(&a, posix_id(1006, 1006), NULL);
	client_open(&c, posix_id(1006, 1006), NULL);
	assert_int_equal(do_stash(&a, "x", id, NULL, 0), 0);
	assert_int_equal(do_stash(&c, "x", id, msg, sizeof(msg)), WFPBROKER__V1__STATUS_CODE__QUOTA);
	assert_non_null(strstr(msg, "session limit"));
	client_close(&a);
	client_close(&c);
	/* The slot is free again once the first session is gone. */
	client_open(&c, posix_id(1006, 1006), NULL);
	assert_int_equal(do_stash(&c, "x", id, NULL, 0), 0);
	client_close(&c);
}

static void
reload_revokes_at_the_next_request(void **state)
{
	struct client		a;
	struct wfpb_config	cfg;
	struct wfpb_ini_error	err;
	uint8_t			id[WFPB_STASH_ID_LEN];
	static const char	text[] = "[principal app1]\nuid = 1001\nops = fetch\n";

	(void)state;
	client_open(&a, posix_id(1001, 1001), NULL);
	assert_int_equal(do_stash(&a, "x", id, NULL, 0), 0);
	assert_int_equal(wfpb_config_parse(text, sizeof(text) - 1, &b.cfg, &cfg, &err), 0);
	wfpb_broker_reload(&b, &cfg);
	assert_int_equal(do_stash(&a, "y", id, NULL, 0), WFPBROKER__V1__STATUS_CODE__DENIED);
	client_close(&a);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(matching, setup, teardown),
		cmocka_unit_test_setup_teardown(grants_and_ownership, setup, teardown),
		cmocka_unit_test_setup_teardown(key_principal_needs_ik, setup, teardown),
		cmocka_unit_test_setup_teardown(per_principal_session_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(reload_revokes_at_the_next_request, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
