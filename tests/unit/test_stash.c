/* SPDX-License-Identifier: Apache-2.0 */
/* The stash: ownership, lifetimes, expiry, wiping and growth. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "stash.h"

static int	freed;
static char	last_owner[WFPB_NAME_MAX];

static void
on_free(void *arg, const struct wfpb_stash_entry *e)
{
	(void)arg;
	freed++;
	snprintf(last_owner, sizeof(last_owner), "%s", e->owner);
}

static int
setup(void **state)
{
	(void)state;
	freed = 0;
	return sodium_init() < 0 ? -1 : 0;
}

static void
owner_only(void **state)
{
	struct wfpb_stash		st;
	const struct wfpb_stash_entry	*e;
	uint8_t				id[WFPB_STASH_ID_LEN], other[WFPB_STASH_ID_LEN];

	(void)state;
	wfpb_stash_init(&st, on_free, NULL);
	assert_int_equal(wfpb_stash_put(&st, "app1", NULL, (const uint8_t *)"abc", 3, 0, 1000, id, NULL), 0);
	assert_int_equal(st.count, 1);
	assert_int_equal(st.bytes, 3);
	e = wfpb_stash_get(&st, id, "app1", 10);
	assert_non_null(e);
	assert_int_equal(e->len, 3);
	assert_memory_equal(e->blob, "abc", 3);
	{
		uint8_t h[32];

		/* The hash the audit log records for this blob, computed once when stashed. */
		crypto_generichash(h, sizeof(h), (const uint8_t *)"abc", 3, NULL, 0);
		assert_memory_equal(e->hash, h, sizeof(h));
	}
	/* Another principal sees nothing, cannot release it, and the entry stays. */
	assert_null(wfpb_stash_get(&st, id, "app2", 10));
	assert_int_equal(wfpb_stash_release(&st, id, "app2"), WFPB_E_NOENT);
	assert_int_equal(st.count, 1);
	memcpy(other, id, sizeof(other));
	other[15] ^= 1;
	assert_null(wfpb_stash_get(&st, other, "app1", 10));
	assert_int_equal(wfpb_stash_release(&st, id, "app1"), 0);
	assert_int_equal(freed, 1);
	assert_string_equal(last_owner, "app1");
	assert_null(wfpb_stash_get(&st, id, "app1", 10));
	assert_int_equal(st.count, 0);
	assert_int_equal(st.bytes, 0);
	wfpb_stash_fini(&st);
}

static void
handles_are_random(void **state)
{
	struct wfpb_stash	st;
	uint8_t			a[WFPB_STASH_ID_LEN], b[WFPB_STASH_ID_LEN];

	(void)state;
	wfpb_stash_init(&st, NULL, NULL);
	assert_int_equal(wfpb_stash_put(&st, "p", NULL, (const uint8_t *)"x", 1, 0, 1000, a, NULL), 0);
	assert_int_equal(wfpb_stash_put(&st, "p", NULL, (const uint8_t *)"x", 1, 0, 1000, b, NULL), 0);
	assert_memory_not_equal(a, b, sizeof(a));
	wfpb_stash_fini(&st);
}

static void
session_lifetime(void **state)
{
	struct wfpb_stash	st;
	struct wfpb_stash_entry	*s1 = NULL, *s2 = NULL;
	uint8_t			a[16], b[16], c[16], d[16];

	(void)state;
	wfpb_stash_init(&st, on_free, NULL);
	assert_int_equal(wfpb_stash_put(&st, "p", &s1, (const uint8_t *)"1", 1, 0, 1000, a, NULL), 0);
	assert_int_equal(wfpb_stash_put(&st, "p", &s2, (const uint8_t *)"2", 1, 0, 1000, b, NULL), 0);
	assert_int_equal(wfpb_stash_put(&st, "p", &s1, (const uint8_t *)"3", 1, 0, 1000, c, NULL), 0);
	assert_int_equal(wfpb_stash_put(&st, "p", NULL, (const uint8_t *)"4", 1, 0, 1000, d, NULL), 0);
	/* Releasing one of s1's entries by hand keeps its list consistent. */
	assert_int_equal(wfpb_stash_release(&st, c, "p"), 0);
	wfpb_stash_release_session(&st, &s1);
	assert_null(s1);
	assert_null(wfpb_stash_get(&st, a, "p", 1));
	assert_non_null(wfpb_stash_get(&st, b, "p", 1));
	assert_non_null(wfpb_stash_get(&st, d, "p", 1));
	wfpb_stash_release_session(&st, &s2);
	assert_null(wfpb_stash_get(&st, b, "p", 1));
	/* The principal-lifetime entry survives every session. */
	assert_non_null(wfpb_stash_get(&st, d, "p", 1));
	assert_int_equal(freed, 3);
	wfpb_stash_fini(&st);
	assert_int_equal(freed, 4);
}

static void
expiry(void **state)
{
	struct wfpb_stash	st;
	uint8_t			a[16], b[16];

	(void)state;
	wfpb_stash_init(&st, on_free, NULL);
	assert_int_equal(wfpb_stash_put(&st, "p", NULL, (const uint8_t *)"a", 1, 0, 100, a, NULL), 0);
	assert_int_equal(wfpb_stash_put(&st, "p", NULL, (const uint8_t *)"b", 1, 0, 200, b, NULL), 0);
	wfpb_stash_expire(&st, 99);
	assert_int_equal(st.count, 2);
	wfpb_stash_expire(&st, 100);
	assert_int_equal(st.count, 1);
	/* A lookup past the deadline never returns the entry, sweep or no sweep. */
	assert_null(wfpb_stash_get(&st, b, "p", 200));
	assert_int_equal(st.count, 0);
	assert_int_equal(freed, 2);
	wfpb_stash_fini(&st);
}

/* A session's entry expires at the TTL too, its session still open (PROTOCOL.md §5). */
static void
session_entries_expire_while_the_session_is_open(void **state)
{
	struct wfpb_stash	st;
	struct wfpb_stash_entry	*open_session = NULL;
	uint8_t			a[16];

	(void)state;
	freed = 0;
	wfpb_stash_init(&st, on_free, NULL);
	assert_int_equal(wfpb_stash_put(&st, "p", &open_session, (const uint8_t *)"a", 1, 0, 100, a, NULL), 0);
	assert_non_null(wfpb_stash_get(&st, a, "p", 99));
	wfpb_stash_expire(&st, 100);
	assert_int_equal(st.count, 0);
	assert_null(wfpb_stash_get(&st, a, "p", 101));
	assert_int_equal(freed, 1);
	wfpb_stash_release_session(&st, &open_session);	/* the session ends later: nothing left to free */
	assert_int_equal(freed, 1);
	wfpb_stash_fini(&st);
}

static void
many_entries_grow_the_table(void **state)
{
	struct wfpb_stash	st;
	static uint8_t		ids[5000][16];
	uint8_t			v[4];
	int			i;

	(void)state;
	wfpb_stash_init(&st, NULL, NULL);
	for (i = 0; i < 5000; i++) {
		memcpy(v, &i, sizeof(v));
		assert_int_equal(wfpb_stash_put(&st, "p", NULL, v, sizeof(v), 0, 1000, ids[i], NULL), 0);
	}
	assert_true(st.nbuckets >= 4096);
	for (i = 0; i < 5000; i++) {
		const struct wfpb_stash_entry *e = wfpb_stash_get(&st, ids[i], "p", 1);

		assert_non_null(e);
		assert_memory_equal(e->blob, &i, sizeof(v));
	}
	wfpb_stash_fini(&st);
	assert_int_equal(st.count, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(owner_only, setup),
		cmocka_unit_test_setup(handles_are_random, setup),
		cmocka_unit_test_setup(session_lifetime, setup),
		cmocka_unit_test_setup(expiry, setup),
		cmocka_unit_test_setup(session_entries_expire_while_the_session_is_open, setup),
		cmocka_unit_test_setup(many_entries_grow_the_table, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
