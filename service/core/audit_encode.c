/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The audit record's protobuf encoding, written out by hand: the log encodes
 * one record per request, and protobuf-c's reflective packer (a sizing pass,
 * then a packing pass, both table-driven) cost more than the hash chain. The
 * bytes are exactly protobuf-c's — fields in number order, proto3 defaults
 * omitted, the principal emitted whenever present — which test_audit checks
 * against protobuf-c on every field combination, so either may read them.
 */
#include <string.h>

#include "audit.h"
#include "wfpbroker.pb-c.h"

typedef Wfpbroker__V1__AuditRecord AuditRecord;

struct out {
	uint8_t	*p, *end;
	int	overflow;
};

static void
put_byte(struct out *o, uint8_t b)
{
	if (o->p < o->end)
		*o->p++ = b;
	else
		o->overflow = 1;
}

static void
put_varint(struct out *o, uint64_t v)
{
	while (v >= 0x80) {
		put_byte(o, (uint8_t)(v | 0x80));
		v >>= 7;
	}
	put_byte(o, (uint8_t)v);
}

static void
put_bytes(struct out *o, const void *p, size_t len)
{
	if ((size_t)(o->end - o->p) < len) {
		o->overflow = 1;
		return;
	}
	memcpy(o->p, p, len);
	o->p += len;
}

/* Scalars: tag and value, omitted at zero (proto3). */
static void
put_uint(struct out *o, unsigned field, uint64_t v)
{
	if (v == 0)
		return;
	put_varint(o, (uint64_t)field << 3);
	put_varint(o, v);
}

/* Enums are varints of their int value; a negative one is ten bytes, as protobuf-c writes it. */
static void
put_enum(struct out *o, unsigned field, int v)
{
	if (v == 0)
		return;
	put_varint(o, (uint64_t)field << 3);
	put_varint(o, (uint64_t)(int64_t)v);
}

/* Length-delimited, always written (repeated elements and submessages). */
static void
put_ld(struct out *o, unsigned field, const void *p, size_t len)
{
	put_varint(o, ((uint64_t)field << 3) | 2);
	put_varint(o, len);
	put_bytes(o, p, len);
}

/* Singular bytes and strings: omitted when empty (proto3). */
static void
put_opt_bytes(struct out *o, unsigned field, const ProtobufCBinaryData *b)
{
	if (b->len > 0)
		put_ld(o, field, b->data, b->len);
}

static void
put_opt_string(struct out *o, unsigned field, const char *s)
{
	if (s != NULL && s[0] != '\0')
		put_ld(o, field, s, strlen(s));
}

static size_t
varint_len(uint64_t v)
{
	size_t n = 1;

	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

static size_t
opt_string_len(const char *s)
{
	size_t n = s != NULL ? strlen(s) : 0;

	return n > 0 ? 1 + varint_len(n) + n : 0;
}

static void
put_principal(struct out *o, const Wfpbroker__V1__Principal *pr)
{
	size_t len = opt_string_len(pr->user) + opt_string_len(pr->image) + opt_string_len(pr->name);

	if (pr->pid != 0)
		len += 1 + varint_len(pr->pid);
	if (pr->key_fingerprint.len > 0)
		len += 1 + varint_len(pr->key_fingerprint.len) + pr->key_fingerprint.len;
	put_varint(o, (4u << 3) | 2);
	put_varint(o, len);
	put_opt_string(o, 1, pr->user);
	put_uint(o, 2, pr->pid);
	put_opt_string(o, 3, pr->image);
	put_opt_bytes(o, 4, &pr->key_fingerprint);
	put_opt_string(o, 5, pr->name);
}

static void
put_address_field(struct out *o, unsigned field, const Wfpbroker__V1__Address *a)
{
	size_t len = 0;

	if (a->family != 0)
		len += 1 + varint_len((uint64_t)(int64_t)a->family);
	if (a->addr.len > 0)
		len += 1 + varint_len(a->addr.len) + a->addr.len;
	if (a->port != 0)
		len += 1 + varint_len(a->port);
	if (a->scope_id != 0)
		len += 1 + varint_len(a->scope_id);
	put_varint(o, ((uint64_t)field << 3) | 2);
	put_varint(o, len);
	put_enum(o, 1, a->family);
	put_opt_bytes(o, 2, &a->addr);
	put_uint(o, 3, a->port);
	put_uint(o, 4, a->scope_id);
}

size_t
wfpb__audit_encode(const AuditRecord *r, uint8_t *out, size_t cap)
{
	struct out	o = { out, out + cap, 0 };
	size_t		i;

	put_uint(&o, 1, r->seq);
	put_uint(&o, 2, r->time_unix_ms);
	put_enum(&o, 3, r->kind);
	if (r->principal != NULL)
		put_principal(&o, r->principal);
	put_opt_string(&o, 5, r->op);
	for (i = 0; i < r->n_addresses; i++)
		put_address_field(&o, 6, r->addresses[i]);
	for (i = 0; i < r->n_blob_hashes; i++)
		put_ld(&o, 7, r->blob_hashes[i].data, r->blob_hashes[i].len);
	put_enum(&o, 8, r->status);
	put_uint(&o, 9, r->latency_us);
	put_opt_bytes(&o, 10, &r->prev_hash);
	put_opt_bytes(&o, 11, &r->signature);
	put_uint(&o, 12, r->request_id);
	put_uint(&o, 13, r->session_id);
	put_opt_string(&o, 14, r->message);
	put_uint(&o, 15, r->lost);
	put_uint(&o, 16, r->flow_id);
	if (r->original_destination != NULL)
		put_address_field(&o, 17, r->original_destination);
	return o.overflow ? 0 : (size_t)(o.p - out);
}
