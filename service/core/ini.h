/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A strict INI reader for the broker's configuration and policy: sections,
 * key = value pairs, ';' or '#' comment lines. No OS calls; the caller hands
 * over the file's bytes. Any syntax error stops the parse and reports its
 * line, so a bad file is rejected whole.
 */
#ifndef WFPB_INI_H
#define WFPB_INI_H

#include <stddef.h>

#include "wfpb_error.h"

#define WFPB_INI_LINE_MAX	1024u
#define WFPB_INI_NAME_MAX	128u

/* Called for each pair; returns 0 to go on or a negative code to stop (the line is reported). */
typedef int (*wfpb_ini_fn)(void *arg, const char *section, const char *key, const char *value);

struct wfpb_ini_error {
	unsigned	line;		/* 1-based; 0 when the error is not tied to a line */
	char		message[160];
};

/*
 * Parses text (len bytes, need not be NUL-terminated). Returns 0, or
 * WFPB_E_CONFIG with err filled, or the callback's code with err->line set.
 */
int WFPB_MUST_CHECK wfpb_ini_parse(const char *text, size_t len, wfpb_ini_fn fn, void *arg,
    struct wfpb_ini_error *err);

#endif
