/* SPDX-License-Identifier: Apache-2.0 */
/* The INI reader. Input is a configuration file an administrator wrote. */
#include <stdio.h>
#include <string.h>

#include "ini.h"

static int
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

static void
trim(const char **s, size_t *n)
{
	while (*n > 0 && is_space(**s)) {
		(*s)++;
		(*n)--;
	}
	while (*n > 0 && is_space((*s)[*n - 1]))
		(*n)--;
}

static int
fail(struct wfpb_ini_error *err, unsigned line, const char *msg)
{
	err->line = line;
	snprintf(err->message, sizeof(err->message), "%s", msg);
	return WFPB_E_CONFIG;
}

/*
 * A comment may also end a line: ';' or '#' after a space or a tab starts one
 * ("max_sessions = 8   ; the default"). Returns the length before it, trimmed.
 */
static size_t
strip_comment(const char *s, size_t n)
{
	size_t i;

	for (i = 1; i < n; i++) {
		if ((s[i] == ';' || s[i] == '#') && (s[i - 1] == ' ' || s[i - 1] == '\t')) {
			n = i;
			break;
		}
	}
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	return n;
}

int
wfpb_ini_parse(const char *text, size_t len, wfpb_ini_fn fn, void *arg, struct wfpb_ini_error *err)
{
	char		section[WFPB_INI_NAME_MAX] = "", key[WFPB_INI_NAME_MAX], value[WFPB_INI_LINE_MAX];
	const char	*p = text, *end = text + len, *nl, *s, *eq;
	size_t		n, kn, vn;
	unsigned	line = 0;
	int		rc;

	err->line = 0;
	err->message[0] = '\0';
	while (p < end) {
		line++;
		nl = memchr(p, '\n', (size_t)(end - p));
		n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		s = p;
		p = nl ? nl + 1 : end;
		if (n >= WFPB_INI_LINE_MAX)
			return fail(err, line, "line too long");
		if (memchr(s, '\0', n) != NULL)
			return fail(err, line, "NUL byte in line");
		trim(&s, &n);
		if (n == 0 || *s == ';' || *s == '#')
			continue;
		n = strip_comment(s, n);
		if (*s == '[') {
			if (s[n - 1] != ']')
				return fail(err, line, "section header without ']'");
			s++;
			n -= 2;
			trim(&s, &n);
			if (n == 0 || n >= sizeof(section))
				return fail(err, line, "empty or too long section name");
			memcpy(section, s, n);
			section[n] = '\0';
			continue;
		}
		if ((eq = memchr(s, '=', n)) == NULL)
			return fail(err, line, "expected 'key = value'");
		kn = (size_t)(eq - s);
		vn = n - kn - 1;
		trim(&s, &kn);
		eq++;
		trim(&eq, &vn);
		if (kn == 0 || kn >= sizeof(key))
			return fail(err, line, "empty or too long key");
		if (section[0] == '\0')
			return fail(err, line, "key outside any section");
		memcpy(key, s, kn);
		key[kn] = '\0';
		memcpy(value, eq, vn);
		value[vn] = '\0';
		if ((rc = fn(arg, section, key, value)) != 0) {
			err->line = line;
			if (err->message[0] == '\0')
				snprintf(err->message, sizeof(err->message), "invalid value for '%.60s' in [%.60s]", key,
				    section);
			return rc;
		}
	}
	return 0;
}
