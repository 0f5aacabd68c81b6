/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The blob store behind Stash/Fetch/Release and the records Accept and
 * QueryRecords keep. Handles are 16 random bytes; lookup is O(1) through a
 * hash table keyed by the handle. An entry belongs to one principal (by
 * name) and, unless created with principal lifetime, to one session. Every
 * blob is wiped when its entry goes. A lookup by any other principal is
 * indistinguishable from a missing handle.
 */
#ifndef WFPB_STASH_H
#define WFPB_STASH_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "wfpb_error.h"

#define WFPB_STASH_ID_LEN	16u

struct wfpb_stash_entry {
	uint8_t			id[WFPB_STASH_ID_LEN];
	char			owner[WFPB_NAME_MAX];
	struct wfpb_stash_entry	**slist;	/* owning session's list head, NULL for principal lifetime */
	struct wfpb_stash_entry	*sprev, *snext;	/* that list */
	uint64_t		expires_ms;
	uint8_t			*blob;
	size_t			len;
	uint8_t			hash[32];	/* BLAKE2b-256 of blob, computed once, for the audit log */
	int			queried;	/* records the broker read itself (Accept, QueryRecords) */
	int			once;		/* released by the first request that applies it (Lifetime ONCE) */
	int			taken;		/* ONCE: a waiting request holds it; no other may use it */
	uint64_t		flow_id;	/* queried records: the flow they came from (audit), else 0 */
	struct wfpb_addr	orig_dst;	/* and where it was going, family 0 when unknown */
	struct wfpb_stash_entry	*hnext;		/* hash chain */
	struct wfpb_stash_entry	*prev, *next;	/* creation order, for expiry */
};

/* Called for every entry that leaves the store, before it is wiped. */
typedef void (*wfpb_stash_free_fn)(void *arg, const struct wfpb_stash_entry *e);

struct wfpb_stash {
	struct wfpb_stash_entry	**buckets;
	size_t			nbuckets;	/* a power of two */
	size_t			count;
	size_t			bytes;
	struct wfpb_stash_entry	*oldest, *newest;
	wfpb_stash_free_fn	on_free;
	void			*on_free_arg;
};

void wfpb_stash_init(struct wfpb_stash *st, wfpb_stash_free_fn on_free, void *arg);

#define WFPB_STASH_QUERIED	0x1u	/* records the broker read from a socket itself */
#define WFPB_STASH_ONCE		0x2u	/* to be released by the request that applies it (the dispatcher does) */

/*
 * Copies blob into a new entry. session_list is the owning session's list
 * head (the session keeps it, initialised to NULL), or NULL for principal
 * lifetime. flags: WFPB_STASH_QUERIED for records the broker read from a
 * socket itself, not for bytes a client gave it (provenance: only the former
 * are applied without the apply_foreign grant); WFPB_STASH_ONCE. Writes the
 * new handle into id and, when entry is not NULL, the new entry into *entry.
 * Returns 0 or WFPB_E_NOMEM.
 */
int WFPB_MUST_CHECK wfpb_stash_put(struct wfpb_stash *st, const char *owner, struct wfpb_stash_entry **session_list,
    const uint8_t *blob, size_t len, unsigned flags, uint64_t expires_ms, uint8_t id[WFPB_STASH_ID_LEN],
    const struct wfpb_stash_entry **entry);

/* The entry for id if owner owns it and it has not expired, else NULL. */
const struct wfpb_stash_entry *wfpb_stash_get(struct wfpb_stash *st, const uint8_t id[WFPB_STASH_ID_LEN],
    const char *owner, uint64_t now_ms);

/*
 * An entry of Lifetime ONCE that a waiting request will apply is taken
 * (taken = 1): no other request may use it until that one releases it (it
 * was applied) or gives it back (taken = 0: it failed). Entries of other
 * lifetimes are not marked. 0 or WFPB_E_NOENT.
 */
int wfpb_stash_take(struct wfpb_stash *st, const uint8_t id[WFPB_STASH_ID_LEN], const char *owner, int taken);

/* Notes the flow queried records came from (the audit log's flow_id and original destination). */
void wfpb_stash_note_flow(struct wfpb_stash *st, const uint8_t id[WFPB_STASH_ID_LEN], uint64_t flow_id,
    const struct wfpb_addr *orig_dst);

/* Removes an entry owner owns. 0 or WFPB_E_NOENT. */
int WFPB_MUST_CHECK wfpb_stash_release(struct wfpb_stash *st, const uint8_t id[WFPB_STASH_ID_LEN],
    const char *owner);

/* Removes every entry on a session's list (undo on disconnect): O(its entries). */
void wfpb_stash_release_session(struct wfpb_stash *st, struct wfpb_stash_entry **session_list);

/*
 * Removes expired entries from the oldest on, stopping at the first live one:
 * O(expired). After a reload shortens the TTL, a later entry may outlive its
 * expiry here until those before it go, but wfpb_stash_get never returns it.
 */
void wfpb_stash_expire(struct wfpb_stash *st, uint64_t now_ms);

/* Removes everything. */
void wfpb_stash_fini(struct wfpb_stash *st);

#endif
