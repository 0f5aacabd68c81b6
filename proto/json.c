/* SPDX-License-Identifier: Apache-2.0 */
/* The JSON writer (json.h). */
#include <inttypes.h>
#include <string.h>

#include "json.h"

void
wfpb_json_init(struct wfpb_json *j, FILE *f)
{
	memset(j, 0, sizeof(*j));
	j->f = f;
	j->first[0] = 1;
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

static int body(FILE *f, const unsigned char *s, size_t n);

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
		fputc(',', j->f);
	j->first[d] = 0;
	if (key != NULL) {
		(void)body(j->f, (const unsigned char *)key, strlen(key));
		fputc(':', j->f);
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
	fputc(obj ? '{' : '[', j->f);
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
	fputc(obj ? '}' : ']', j->f);
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

/* Where escaped text goes: a FILE, or a bounded buffer (wfpb_json_escape). */
struct sink {
	FILE	*f;
	char	*buf;
	size_t	cap, len;
	int	full;
};

static void
put(struct sink *k, const char *p, size_t n)
{
	if (k->f != NULL) {
		fwrite(p, 1, n, k->f);
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
body(FILE *f, const unsigned char *s, size_t n)
{
	struct sink	k = { f, NULL, 0, 0, 0 };
	int		lossy;

	fputc('"', f);
	lossy = escape(&k, s, n);
	fputc('"', f);
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
		fputs("null", j->f);
		return;
	}
	lossy = body(j->f, (const unsigned char *)s, n);
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
	if (member(j, key) == 0)
		fprintf(j->f, "%" PRIu64, v);
}

void
wfpb_json_i64(struct wfpb_json *j, const char *key, int64_t v)
{
	if (member(j, key) == 0)
		fprintf(j->f, "%" PRId64, v);
}

void
wfpb_json_bool(struct wfpb_json *j, const char *key, int v)
{
	if (member(j, key) == 0)
		fputs(v ? "true" : "false", j->f);
}

void
wfpb_json_hex(struct wfpb_json *j, const char *key, const uint8_t *p, size_t n)
{
	static const char	digits[] = "0123456789abcdef";
	char			b[512];
	size_t			i, k = 0;

	if (member(j, key) != 0)
		return;
	fputc('"', j->f);
	/* A record's bytes are most of an exported line: in blocks, not a formatted call per byte. */
	for (i = 0; i < n; i++) {
		b[k++] = digits[p[i] >> 4];
		b[k++] = digits[p[i] & 15];
		if (k == sizeof(b)) {
			fwrite(b, 1, k, j->f);
			k = 0;
		}
	}
	fwrite(b, 1, k, j->f);
	fputc('"', j->f);
}

int
wfpb_json_end(struct wfpb_json *j)
{
	if (j->error || j->depth != 0 || j->first[0]) {
		j->error = 1;
		return -1;
	}
	fputc('\n', j->f);
	j->first[0] = 1;	/* ready for the next line's value */
	return ferror(j->f) ? -1 : 0;
}
