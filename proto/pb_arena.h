/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A bump allocator for protobuf-c unpacking: a message unpacked, used and
 * freed within one call allocates from a fixed buffer instead of one malloc
 * per field (which showed in profiles). Beyond the buffer it falls back to
 * malloc; frees of arena memory are no-ops, and the whole arena is given back
 * at once with pb_arena_release. Not thread-safe: one arena per thread or
 * per client object.
 */
#ifndef WFPB_PB_ARENA_H
#define WFPB_PB_ARENA_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <protobuf-c/protobuf-c.h>

#define WFPB_PB_ARENA_SIZE	(16u * 1024u)

struct pb_arena {
	union {
		max_align_t	align;
		uint8_t		buf[WFPB_PB_ARENA_SIZE];
	} u;
	size_t			used;
	ProtobufCAllocator	allocator;
};

/* Sanitizer builds allocate every field with malloc, so ASan still sees each one's bounds. */
#if defined(__SANITIZE_ADDRESS__)
#define WFPB_PB_ARENA_BYPASS	1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WFPB_PB_ARENA_BYPASS	1
#endif
#endif
#ifndef WFPB_PB_ARENA_BYPASS
#define WFPB_PB_ARENA_BYPASS	0
#endif

static inline void *
pb_arena_alloc(void *data, size_t size)
{
	struct pb_arena	*a = data;
	size_t		n = (size + _Alignof(max_align_t) - 1) & ~(size_t)(_Alignof(max_align_t) - 1);
	void		*p;

	if (!WFPB_PB_ARENA_BYPASS && n >= size && n <= sizeof(a->u.buf) - a->used) {
		p = a->u.buf + a->used;
		a->used += n;
		return p;
	}
	return malloc(size ? size : 1);
}

static inline void
pb_arena_free(void *data, void *p)
{
	struct pb_arena *a = data;

	if ((uint8_t *)p >= a->u.buf && (uint8_t *)p < a->u.buf + sizeof(a->u.buf))
		return;
	free(p);
}

/* The allocator to pass to protobuf-c's unpack and free_unpacked. */
static inline ProtobufCAllocator *
pb_arena_allocator(struct pb_arena *a)
{
	a->allocator.alloc = pb_arena_alloc;
	a->allocator.free = pb_arena_free;
	a->allocator.allocator_data = a;
	return &a->allocator;
}

/* Where the arena stands now, to give back to with pb_arena_release (nested users release only theirs). */
static inline size_t
pb_arena_mark(const struct pb_arena *a)
{
	return a->used;
}

static inline void
pb_arena_release(struct pb_arena *a, size_t mark)
{
	a->used = mark;
}

#endif
