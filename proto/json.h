/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The one JSON writer for everything the project prints as JSON (audit
 * export, wfpbctl status --json, the Windows selftest): streaming, to a
 * FILE, always valid JSON (RFC 8259) whatever bytes it is given.
 *
 * Strings: valid UTF-8 passes through; '"', '\\' and control characters are
 * escaped. A string that is not valid UTF-8 is written with U+FFFD in place
 * of each byte that is not part of a valid sequence and, when it has a key,
 * followed by KEY_hex, its exact bytes in lower-case hex, so nothing is lost
 * (docs/AUDIT.md). Nesting is bounded (WFPB_JSON_DEPTH); misuse sets an
 * error rather than writing invalid output.
 */
#ifndef WFPB_JSON_H
#define WFPB_JSON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define WFPB_JSON_DEPTH	16

#define WFPB_JSON_MEM_MAX	(16u * 1024u * 1024u)	/* a writer to memory never holds more */

struct wfpb_json {
	FILE		*f;		/* NULL: the writer's own buffer (wfpb_json_init_mem) */
	char		*mem;
	size_t		mem_len, mem_cap;
	int		depth;
	int		error;			/* misuse: unbalanced, too deep, a key where none belongs */
	unsigned char	first[WFPB_JSON_DEPTH];	/* no member written yet at this level */
	unsigned char	in_obj[WFPB_JSON_DEPTH];	/* 1: object (members have keys), 0: array */
};

void wfpb_json_init(struct wfpb_json *j, FILE *f);

/*
 * A writer into memory: _mem gives what was written so far, _mem_reset starts
 * over (keeping the buffer), _mem_free releases it. Past WFPB_JSON_MEM_MAX, or
 * when memory runs out, the writer's error is set.
 */
void wfpb_json_init_mem(struct wfpb_json *j);
const char *wfpb_json_mem(const struct wfpb_json *j, size_t *len);
void wfpb_json_mem_reset(struct wfpb_json *j);
void wfpb_json_mem_free(struct wfpb_json *j);

/* key is the member name inside an object and NULL inside an array or at the top. */
void wfpb_json_obj_begin(struct wfpb_json *j, const char *key);
void wfpb_json_obj_end(struct wfpb_json *j);
void wfpb_json_arr_begin(struct wfpb_json *j, const char *key);
void wfpb_json_arr_end(struct wfpb_json *j);

/* s NULL writes null. */
void wfpb_json_str(struct wfpb_json *j, const char *key, const char *s);
void wfpb_json_strn(struct wfpb_json *j, const char *key, const char *s, size_t n);
void wfpb_json_u64(struct wfpb_json *j, const char *key, uint64_t v);
void wfpb_json_i64(struct wfpb_json *j, const char *key, int64_t v);
void wfpb_json_bool(struct wfpb_json *j, const char *key, int v);
/* Bytes as a string of lower-case hex digits. */
void wfpb_json_hex(struct wfpb_json *j, const char *key, const uint8_t *p, size_t n);

/* Ends a top-level value with a newline (one JSON value a line). 0, or -1 after misuse or a write error. */
int wfpb_json_end(struct wfpb_json *j);

/*
 * The text a string value gets between its quotes, into out (cap bytes, no NUL): *len bytes.
 * Returns 1 when some byte was not valid UTF-8 (a KEY_hex twin follows it in a line), 0 when
 * all was, -1 when out is too small. Checking a line against its record compares these.
 */
int wfpb_json_escape(const char *s, size_t n, char *out, size_t cap, size_t *len);

/* The length of the valid UTF-8 sequence at s (1..4), or 0 if the bytes there do not start one. */
size_t wfpb_utf8_seq(const unsigned char *s, size_t n);

#endif
