/* SPDX-License-Identifier: Apache-2.0 */
/* The JSON writer (json.h). */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

void
wfpb_json_init(struct wfpb_json *j, FILE *f)
{
	memset(j, 0, sizeof(*j));
	j->f = f;
	j->first[0] = 1;
}

void
wfpb_json_init_mem(struct wfpb_json *j)
{
	wfpb_json_init(j, NULL);
}

const char *
wfpb_json_mem(const struct wfpb_json *j, size_t *len)
{
	*len = j->mem_len;
	return j->mem;
}

void
wfpb_json_mem_reset(struct wfpb_json *j)
{
	char	*mem = j->mem;
	size_t	cap = j->mem_cap;

	wfpb_json_init(j, NULL);
	j->mem = mem;
	j->mem_cap = cap;
}

void
wfpb_json_mem_free(struct wfpb_json *j)
{
	free(j->mem);
	j->mem = NULL;
	j->mem_len = j->mem_cap = 0;
}

/* Every byte the writer makes goes through here: to its FILE, or onto its buffer. */
static void
out(struct wfpb_json *j, const char *p, size_t n)
{
	char	*m;
	size_t	cap;

	if (j->f != NULL) {
		fwrite(p, 1, n, j->f);
		return;
	}
	if (j->mem_len + n > j->mem_cap) {
		for (cap = j->mem_cap ? j->mem_cap : 1024; cap < j->mem_len + n; cap *= 2)
			if (cap > WFPB_JSON_MEM_MAX) {
				j->error = 1;
				return;
			}
		if ((m = realloc(j->mem, cap)) == NULL) {
			j->error = 1;
			return;
		}
		j->mem = m;
		j->mem_cap = cap;
	}
	memcpy(j->mem + j->mem_len, p, n);
	j->mem_len += n;
}

static void
outc(struct wfpb_json *j, char c)
{
	if (j->f == NULL && j->mem_len < j->mem_cap) {
		j->mem[j->mem_len++] = c;
		return;
	}
	out(j, &c, 1);
}

size_t
wfpb_utf8_seq(const unsigned char *s, size_t n)
{
	uint32_t	cp;
	size_t		len, i;

	if (n == 0)
		return 0;
	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2, cp = s[0] & 0x1fu;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3, cp = s[0] & 0x0fu;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4, cp = s[0] & 0x07u;
	else
		return 0;
	if (n < len)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3fu);
	}
	/* Overlong forms, UTF-16 surrogates and code points past U+10FFFF are not UTF-8. */
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return len;
}

static int body(struct wfpb_json *j, const unsigned char *s, size_t n);

/* Writes the separator and the key a new member needs; 0, or -1 on misuse. */
static int
member(struct wfpb_json *j, const char *key)
{
	int d = j->depth;

	if (j->error)
		return -1;
	if ((j->in_obj[d] && d > 0) != (key != NULL) || (d == 0 && !j->first[0])) {
		j->error = 1;
		return -1;
	}
	if (!j->first[d])
		outc(j, ',');
	j->first[d] = 0;
	if (key != NULL) {
		(void)body(j, (const unsigned char *)key, strlen(key));
		outc(j, ':');
	}
	return 0;
}

static void
open_level(struct wfpb_json *j, const char *key, int obj)
{
	if (member(j, key) != 0)
		return;
	if (j->depth + 1 >= WFPB_JSON_DEPTH) {
		j->error = 1;
		return;
	}
	outc(j, obj ? '{' : '[');
	j->depth++;
	j->first[j->depth] = 1;
	j->in_obj[j->depth] = (unsigned char)obj;
}

static void
close_level(struct wfpb_json *j, int obj)
{
	if (j->error || j->depth == 0 || j->in_obj[j->depth] != obj) {
		j->error = 1;
		return;
	}
	outc(j, obj ? '}' : ']');
	j->depth--;
}

void
wfpb_json_obj_begin(struct wfpb_json *j, const char *key)
{
	open_level(j, key, 1);
}

void
wfpb_json_obj_end(struct wfpb_json *j)
{
	close_level(j, 1);
}

void
wfpb_json_arr_begin(struct wfpb_json *j, const char *key)
{
	open_level(j, key, 0);
}

void
wfpb_json_arr_end(struct wfpb_json *j)
{
	close_level(j, 0);
}

/* Where escaped text goes: a writer, or a bounded buffer (wfpb_json_escape). */
struct sink {
	struct wfpb_json	*j;
	char			*buf;
	size_t			cap, len;
	int			full;
};

static void
put(struct sink *k, const char *p, size_t n)
{
	if (k->j != NULL) {
		out(k->j, p, n);
		return;
	}
	if (k->len + n > k->cap) {
		k->full = 1;
		return;
	}
	memcpy(k->buf + k->len, p, n);
	k->len += n;
}

/* The one escaping of the project's JSON; returns 1 if some byte was not valid UTF-8 (written as U+FFFD). */
static int
escape(struct sink *k, const unsigned char *s, size_t n)
{
	size_t	i = 0, len, run = 0;
	int	lossy = 0;
	char	u[8];

	/* Bytes written as they are accumulate in a run [run, i), put in one go. */
	while (i < n) {
		unsigned char c = s[i];

		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
			i++;	/* printable ASCII, most of what is written */
			continue;
		}
		len = wfpb_utf8_seq(s + i, n - i);
		if (len > 1 || (len == 1 && c >= 0x20 && c != 0x7f && c != '"' && c != '\\')) {
			i += len;
			continue;
		}
		put(k, (const char *)s + run, i - run);
		if (len == 0) {
			put(k, "\\ufffd", 6);
			lossy = 1;
			i++;
			run = i;
			continue;
		}
		if (c == '"' || c == '\\') {
			u[0] = '\\';
			u[1] = (char)c;
			put(k, u, 2);
		} else if (c == '\n') {
			put(k, "\\n", 2);
		} else if (c == '\t') {
			put(k, "\\t", 2);
		} else {
			snprintf(u, sizeof(u), "\\u%04x", c);
			put(k, u, 6);
		}
		i += len;
		run = i;
	}
	put(k, (const char *)s + run, i - run);
	return lossy;
}

/* The string's body, quoted; returns 1 if some byte was not valid UTF-8. */
static int
body(struct wfpb_json *j, const unsigned char *s, size_t n)
{
	struct sink	k = { j, NULL, 0, 0, 0 };
	int		lossy;

	outc(j, '"');
	lossy = escape(&k, s, n);
	outc(j, '"');
	return lossy;
}

int
wfpb_json_escape(const char *s, size_t n, char *out, size_t cap, size_t *len)
{
	struct sink	k = { NULL, out, cap, 0, 0 };
	int		lossy = escape(&k, (const unsigned char *)s, n);

	*len = k.len;
	return k.full ? -1 : lossy;
}

void
wfpb_json_strn(struct wfpb_json *j, const char *key, const char *s, size_t n)
{
	char	hexkey[128];
	int	lossy;

	if (member(j, key) != 0)
		return;
	if (s == NULL) {
		out(j, "null", 4);
		return;
	}
	lossy = body(j, (const unsigned char *)s, n);
	if (lossy && key != NULL && (size_t)snprintf(hexkey, sizeof(hexkey), "%s_hex", key) < sizeof(hexkey))
		wfpb_json_hex(j, hexkey, (const uint8_t *)s, n);
}

void
wfpb_json_str(struct wfpb_json *j, const char *key, const char *s)
{
	wfpb_json_strn(j, key, s, s != NULL ? strlen(s) : 0);
}

void
wfpb_json_u64(struct wfpb_json *j, const char *key, uint64_t v)
{
	char	b[24];
	int	n;

	if (member(j, key) == 0 && (n = snprintf(b, sizeof(b), "%" PRIu64, v)) > 0)
		out(j, b, (size_t)n);
}

void
wfpb_json_i64(struct wfpb_json *j, const char *key, int64_t v)
{
	char	b[24];
	int	n;

	if (member(j, key) == 0 && (n = snprintf(b, sizeof(b), "%" PRId64, v)) > 0)
		out(j, b, (size_t)n);
}

void
wfpb_json_bool(struct wfpb_json *j, const char *key, int v)
{
	if (member(j, key) == 0)
		out(j, v ? "true" : "false", v ? 4 : 5);
}

void
wfpb_json_hex(struct wfpb_json *j, const char *key, const uint8_t *p, size_t n)
{
	static const char	digits[] = "0123456789abcdef";
	char			b[512];
	size_t			i, k = 0;

	if (member(j, key) != 0)
		return;
	outc(j, '"');
	/* A record's bytes are most of an exported line: in blocks, not a formatted call per byte. */
	for (i = 0; i < n; i++) {
		b[k++] = digits[p[i] >> 4];
		b[k++] = digits[p[i] & 15];
		if (k == sizeof(b)) {
			out(j, b, k);
			k = 0;
		}
	}
	out(j, b, k);
	outc(j, '"');
}

int
wfpb_json_end(struct wfpb_json *j)
{
	if (j->error || j->depth != 0 || j->first[0]) {
		j->error = 1;
		return -1;
	}
	outc(j, '\n');
	j->first[0] = 1;	/* ready for the next line's value */
	return j->error || (j->f != NULL && ferror(j->f)) ? -1 : 0;
}
