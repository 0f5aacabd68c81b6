/* SPDX-License-Identifier: Apache-2.0 */
/* The stash: a chained hash table over random handles plus a creation-order list. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "stash.h"

#define BUCKETS_MIN	256u

void
wfpb_stash_init(struct wfpb_stash *st, wfpb_stash_free_fn on_free, void *arg)
{
	memset(st, 0, sizeof(*st));
	st->on_free = on_free;
	st->on_free_arg = arg;
}

static size_t
bucket_of(const struct wfpb_stash *st, const uint8_t id[WFPB_STASH_ID_LEN])
{
	uint64_t h;

	/* Handles are uniformly random: their first 8 bytes are a good hash. */
	memcpy(&h, id, sizeof(h));
	return (size_t)(h & (st->nbuckets - 1));
}

static int
grow(struct wfpb_stash *st)
{
	struct wfpb_stash_entry	**nb, *e, *next;
	size_t			n = st->nbuckets ? st->nbuckets * 2 : BUCKETS_MIN, i, old = st->nbuckets;
	struct wfpb_stash_entry	**ob = st->buckets;

	if ((nb = calloc(n, sizeof(*nb))) == NULL)
		return WFPB_E_NOMEM;
	st->buckets = nb;
	st->nbuckets = n;
	for (i = 0; i < old; i++) {
		for (e = ob[i]; e != NULL; e = next) {
			size_t b = bucket_of(st, e->id);

			next = e->hnext;
			e->hnext = nb[b];
			nb[b] = e;
		}
	}
	free(ob);
	return 0;
}

int
wfpb_stash_put(struct wfpb_stash *st, const char *owner, struct wfpb_stash_entry **session_list,
    const uint8_t *blob, size_t len, unsigned flags, uint64_t expires_ms, uint8_t id[WFPB_STASH_ID_LEN],
    const struct wfpb_stash_entry **entry)
{
	struct wfpb_stash_entry	*e;
	size_t			b;

	if (st->count >= st->nbuckets && grow(st) != 0)
		return WFPB_E_NOMEM;
	if ((e = calloc(1, sizeof(*e))) == NULL || (e->blob = malloc(len ? len : 1)) == NULL) {
		free(e);
		return WFPB_E_NOMEM;
	}
	/* 128 random bits: a collision is not a case to handle, but it must not alias. */
	do
		randombytes_buf(e->id, sizeof(e->id));
	while (wfpb_stash_get(st, e->id, owner, 0) != NULL);
	snprintf(e->owner, sizeof(e->owner), "%s", owner);
	if (session_list != NULL) {
		e->slist = session_list;
		e->snext = *session_list;
		if (*session_list)
			(*session_list)->sprev = e;
		*session_list = e;
	}
	e->expires_ms = expires_ms;
	e->queried = (flags & WFPB_STASH_QUERIED) != 0;
	e->once = (flags & WFPB_STASH_ONCE) != 0;
	memcpy(e->blob, blob, len);
	e->len = len;
	crypto_generichash(e->hash, sizeof(e->hash), blob, len, NULL, 0);
	b = bucket_of(st, e->id);
	e->hnext = st->buckets[b];
	st->buckets[b] = e;
	e->prev = st->newest;
	if (st->newest)
		st->newest->next = e;
	else
		st->oldest = e;
	st->newest = e;
	st->count++;
	st->bytes += len;
	memcpy(id, e->id, WFPB_STASH_ID_LEN);
	if (entry != NULL)
		*entry = e;
	return 0;
}

static struct wfpb_stash_entry **
find(struct wfpb_stash *st, const uint8_t id[WFPB_STASH_ID_LEN])
{
	struct wfpb_stash_entry **pp;

	if (st->nbuckets == 0)
		return NULL;
	for (pp = &st->buckets[bucket_of(st, id)]; *pp != NULL; pp = &(*pp)->hnext)
		if (sodium_memcmp((*pp)->id, id, WFPB_STASH_ID_LEN) == 0)
			return pp;
	return NULL;
}

static void
unlink_free(struct wfpb_stash *st, struct wfpb_stash_entry **pp)
{
	struct wfpb_stash_entry *e = *pp;

	*pp = e->hnext;
	if (e->prev)
		e->prev->next = e->next;
	else
		st->oldest = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		st->newest = e->prev;
	if (e->slist != NULL) {
		if (e->sprev)
			e->sprev->snext = e->snext;
		else
			*e->slist = e->snext;
		if (e->snext)
			e->snext->sprev = e->sprev;
	}
	st->count--;
	st->bytes -= e->len;
	if (st->on_free)
		st->on_free(st->on_free_arg, e);
	sodium_memzero(e->blob, e->len);
	free(e->blob);
	sodium_memzero(e, sizeof(*e));
	free(e);
}

static void
remove_entry(struct wfpb_stash *st, struct wfpb_stash_entry *e)
{
	struct wfpb_stash_entry **pp = find(st, e->id);

	if (pp == NULL)
		abort();	/* listed but not hashed: the store is corrupt */
	unlink_free(st, pp);
}

void
wfpb_stash_note_flow(struct wfpb_stash *st, const uint8_t id[WFPB_STASH_ID_LEN], uint64_t flow_id,
    const struct wfpb_addr *orig_dst)
{
	struct wfpb_stash_entry **pp = find(st, id);

	if (pp == NULL)
		return;
	(*pp)->flow_id = flow_id;
	(*pp)->orig_dst = *orig_dst;
}

int
wfpb_stash_take(struct wfpb_stash *st, const uint8_t id[WFPB_STASH_ID_LEN], const char *owner, int taken)
{
	struct wfpb_stash_entry **pp = find(st, id);

	if (pp == NULL || strcmp((*pp)->owner, owner) != 0)
		return WFPB_E_NOENT;
	if ((*pp)->once)
		(*pp)->taken = taken;
	return 0;
}

const struct wfpb_stash_entry *
wfpb_stash_get(struct wfpb_stash *st, const uint8_t id[WFPB_STASH_ID_LEN], const char *owner, uint64_t now_ms)
{
	struct wfpb_stash_entry **pp = find(st, id);

	if (pp == NULL || strcmp((*pp)->owner, owner) != 0)
		return NULL;
	if (now_ms != 0 && (*pp)->expires_ms <= now_ms) {
		unlink_free(st, pp);
		return NULL;
	}
	return *pp;
}

int
wfpb_stash_release(struct wfpb_stash *st, const uint8_t id[WFPB_STASH_ID_LEN], const char *owner)
{
	struct wfpb_stash_entry **pp = find(st, id);

	if (pp == NULL || strcmp((*pp)->owner, owner) != 0)
		return WFPB_E_NOENT;
	unlink_free(st, pp);
	return 0;
}

void
wfpb_stash_release_session(struct wfpb_stash *st, struct wfpb_stash_entry **session_list)
{
	while (*session_list != NULL)
		remove_entry(st, *session_list);
}

void
wfpb_stash_expire(struct wfpb_stash *st, uint64_t now_ms)
{
	while (st->oldest != NULL && st->oldest->expires_ms <= now_ms)
		remove_entry(st, st->oldest);
}

void
wfpb_stash_fini(struct wfpb_stash *st)
{
	while (st->oldest != NULL)
		remove_entry(st, st->oldest);
	free(st->buckets);
	st->buckets = NULL;
	st->nbuckets = 0;
}
